//! Supervising child processes: each runs in its own process group so that a
//! timeout or a signal stops it *and every grandchild*, first politely
//! (SIGTERM), then, after a grace period, for certain (SIGKILL).
//!
//! Signals sent to tgs itself are recorded by [`Signals`] and turned into a
//! graceful stop of the child; a second signal kills at once.

use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a child gets between SIGTERM and SIGKILL, unless told otherwise.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// How many children may be supervised at once (sessions run in parallel,
/// each with its verify command).
const MAX_GROUPS: usize = 128;

/// The process groups of the children being supervised (0: a free slot), so
/// that a second signal can kill every one of them from the signal handler
/// itself, which may only touch atomics.
static CHILD_GROUPS: [AtomicI32; MAX_GROUPS] = [const { AtomicI32::new(0) }; MAX_GROUPS];

/// Remember `pgid` for the signal handler; returns its slot (`None` when all
/// are taken: the group is then only stopped by its own supervision).
fn register_group(pgid: i32) -> Option<usize> {
    CHILD_GROUPS.iter().position(|slot| {
        slot.compare_exchange(0, pgid, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    })
}

/// SIGINT and SIGTERM received by this process.
#[derive(Debug, Default)]
pub struct Signals {
    count: AtomicUsize,
    last: AtomicI32,
}

impl Signals {
    /// Install the handlers (once per process) and return the shared record.
    pub fn install() -> io::Result<Arc<Signals>> {
        static SIGNALS: OnceLock<Arc<Signals>> = OnceLock::new();
        if let Some(s) = SIGNALS.get() {
            return Ok(s.clone());
        }
        let s = Arc::new(Signals::default());
        for sig in [libc::SIGINT, libc::SIGTERM] {
            let rec = s.clone();
            // A second signal means "now": kill the child's group and leave at
            // once, whatever tgs was doing.
            // SAFETY: the handler only uses atomics, kill(2) and _exit(2), all
            // async-signal-safe.
            unsafe {
                signal_hook::low_level::register(sig, move || {
                    rec.last.store(sig, Ordering::SeqCst);
                    if rec.count.fetch_add(1, Ordering::SeqCst) >= 1 {
                        kill_all_groups();
                        libc::_exit(128 + sig);
                    }
                })?;
            }
        }
        Ok(SIGNALS.get_or_init(|| s).clone())
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Stop as a first SIGTERM would (tgs itself decided to stop: a bug
    /// was caught), unless a signal came already.
    pub fn stop(&self) {
        if self
            .count
            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            self.last.store(libc::SIGTERM, Ordering::SeqCst);
        }
    }

    /// The last signal received, if any.
    pub fn last(&self) -> Option<i32> {
        (self.count() > 0).then(|| self.last.load(Ordering::SeqCst))
    }
}

/// Wait for a helper thread (a stream's pump); its panic goes on in the
/// caller, so that a bug is never a silent gap in a transcript.
pub fn rejoin(handle: JoinHandle<()>) {
    if let Err(p) = handle.join() {
        std::panic::resume_unwind(p);
    }
}

/// SIGKILL the process group of every child being supervised (tgs is about
/// to exit without waiting for them). Only atomics and kill(2): safe to
/// call from a signal handler.
pub fn kill_all_groups() {
    for slot in &CHILD_GROUPS {
        let group = slot.load(Ordering::SeqCst);
        if group > 0 {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
        }
    }
}

/// Put the command in a new process group of its own (pgid = its pid).
pub fn own_group(cmd: &mut Command) -> &mut Command {
    cmd.process_group(0)
}

/// Have the kernel SIGKILL the child when the thread that spawned it ends,
/// tgs's death included (a SIGKILL or an OOM kill leaves no time to stop
/// it). Only the child itself: what it started is found by [`kill_strays`]
/// when the next session takes its place.
pub fn die_with_parent(cmd: &mut Command) -> &mut Command {
    // SAFETY: the closure runs between fork and exec and only calls prctl(2),
    // getppid(2) and _exit(2), which are async-signal-safe.
    unsafe {
        let parent = libc::getpid();
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent died before the prctl: nobody will supervise us.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        })
    }
}

/// SIGKILL every process of this user whose environment holds `marker`
/// (`NAME=value`, as an agent's `TGS_WORKTREE=<path>`): what a session of a
/// tgs that died left running, found before its worktree is re-made.
/// Returns how many were killed. Processes that cannot be read (another
/// user's, gone meanwhile) are skipped.
pub fn kill_strays(marker: &str) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let me = std::process::id();
    let mut killed = 0;
    for pid in dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
    {
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|v| v == marker.as_bytes()) {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
            killed += 1;
        }
    }
    killed
}

/// Send `sig` to the whole process group `pgid`.
pub fn signal_group(pgid: u32, sig: i32) {
    // SAFETY: kill(2) with a negative pid targets a process group; no memory is involved.
    unsafe {
        libc::kill(-(pgid as i32), sig);
    }
}

/// How a supervised child ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// It exited (or died of a signal it was not sent by us).
    Exited(ExitStatus),
    /// It ran past its timeout and was stopped.
    TimedOut,
    /// tgs received this signal and stopped it.
    Interrupted(i32),
    /// It reported the end of its work, then kept running past the grace it
    /// was given, and was stopped: judged on what it reported.
    StoppedAfterEnd,
    /// It showed no sign of life for this long and was stopped.
    Stalled(Duration),
    /// tgs stopped it, for this reason (it filled the disk, say).
    Stopped(String),
}

impl Ending {
    pub fn success(&self) -> bool {
        matches!(self, Ending::Exited(s) if s.success())
    }

    /// A readable account, e.g. "exited with status 3" or "killed by signal 9".
    pub fn describe(&self) -> String {
        match self {
            Ending::Exited(s) => match (s.code(), s.signal()) {
                (Some(c), _) => format!("exited with status {c}"),
                (None, Some(sig)) => format!("was killed by signal {sig}"),
                _ => "ended".into(),
            },
            Ending::TimedOut => "timed out".into(),
            Ending::Interrupted(sig) => format!("was stopped by signal {sig}"),
            Ending::StoppedAfterEnd => {
                "was stopped after it reported its end and kept running".into()
            }
            Ending::Stalled(_) => "was stopped as stalled".into(),
            Ending::Stopped(why) => format!("was stopped: {why}"),
        }
    }
}

/// Wait for a child spawned with [`own_group`], enforcing `timeout` and
/// reacting to `signals`. On timeout or signal: SIGTERM to the group, up to
/// `grace` to exit, then SIGKILL to the group. The group is always reaped of
/// stragglers with a final SIGKILL, so no grandchild outlives the session.
pub fn supervise(
    child: &mut Child,
    timeout: Option<Duration>,
    grace: Duration,
    signals: Option<&Signals>,
) -> io::Result<Ending> {
    supervise_with(child, timeout, grace, signals, &mut || Tick::Continue)
}

/// What the caller of [`supervise_with`] wants after a poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tick {
    Continue,
    /// Stop the child (it reported its end and outstayed its grace).
    StopAfterEnd,
    /// Stop the child: no sign of life for this long.
    Stalled(Duration),
    /// Stop the child, for this reason.
    Stop(String),
}

/// [`supervise`], calling `on_tick` on every poll (at most every 50 ms) so the
/// caller's thread can report progress while it waits, and stop the child.
pub fn supervise_with(
    child: &mut Child,
    timeout: Option<Duration>,
    grace: Duration,
    signals: Option<&Signals>,
    on_tick: &mut dyn FnMut() -> Tick,
) -> io::Result<Ending> {
    let pgid = child.id();
    let _clear = ClearGroup(register_group(pgid as i32));
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    let exited = ExitWatch::of(child.id());
    let reason = loop {
        if let Some(status) = child.try_wait()? {
            // The leader is gone; make sure nothing it started lingers.
            signal_group(pgid, libc::SIGKILL);
            return Ok(Ending::Exited(status));
        }
        // Any signal since the handlers were installed means stop: one that
        // arrived before the child started must not be lost.
        if let Some(s) = signals.filter(|s| s.count() > 0) {
            break Ending::Interrupted(s.last().unwrap_or(libc::SIGTERM));
        }
        if timeout.is_some_and(|t| start.elapsed() >= t) {
            break Ending::TimedOut;
        }
        match on_tick() {
            Tick::Continue => {}
            Tick::StopAfterEnd => break Ending::StoppedAfterEnd,
            Tick::Stalled(quiet) => break Ending::Stalled(quiet),
            Tick::Stop(why) => break Ending::Stopped(why),
        }
        exited.wait(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    };
    tracing::debug!("stopping process group {pgid}: {reason:?}");
    signal_group(pgid, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    let already = signals.map(Signals::count).unwrap_or(0);
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        let again = signals.is_some_and(|s| s.count() > already);
        if again || Instant::now() >= deadline {
            signal_group(pgid, libc::SIGKILL);
            child.wait()?;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    signal_group(pgid, libc::SIGKILL);
    Ok(reason)
}

/// Waits that end early when a child exits: a pidfd (Linux 5.3 and
/// later) polled with the wait as its timeout, so a short session's end
/// is seen at once rather than at the next tick; a plain sleep where there
/// is none.
struct ExitWatch(Option<std::os::fd::OwnedFd>);

impl ExitWatch {
    fn of(pid: u32) -> ExitWatch {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        ExitWatch(i32::try_from(fd).ok().filter(|fd| *fd >= 0).map(|fd| {
            // SAFETY: `fd` was just opened for us and is owned by nobody else.
            unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }
        }))
    }

    /// Sleep for `pause`, or less if the child exits meanwhile.
    fn wait(&self, pause: Duration) {
        let Some(fd) = &self.0 else {
            std::thread::sleep(pause);
            return;
        };
        let mut p = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(fd),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(pause.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd, its count, a timeout.
        unsafe { libc::poll(&mut p, 1, ms) };
    }
}

/// Append `data` to `tail`, keeping only its last `keep` bytes: the end of a
/// stream in bounded memory, whatever its size.
pub fn keep_tail(tail: &mut Vec<u8>, data: &[u8], keep: usize) {
    tail.extend_from_slice(data);
    if tail.len() > keep {
        let cut = tail.len() - keep;
        tail.drain(..cut);
    }
}

/// Frees the supervised group's slot when supervision ends, however it ends.
struct ClearGroup(Option<usize>);

impl Drop for ClearGroup {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            CHILD_GROUPS[i].store(0, Ordering::SeqCst);
        }
    }
}

/// Copies a child's stream to a sink while keeping its last bytes, so that a
/// failure can show the end of stderr without holding all of it in memory.
pub struct Tee {
    handle: JoinHandle<()>,
    tail: Arc<Mutex<Vec<u8>>>,
}

impl Tee {
    pub fn spawn<R, W>(mut from: R, mut to: W, keep: usize) -> Tee
    where
        R: Read + Send + 'static,
        W: Write + Send + 'static,
    {
        let tail = Arc::new(Mutex::new(Vec::new()));
        let t = tail.clone();
        let handle = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                };
                let _ = to.write_all(&buf[..n]);
                let _ = to.flush();
                keep_tail(
                    &mut t.lock().unwrap_or_else(|p| p.into_inner()),
                    &buf[..n],
                    keep,
                );
            }
        });
        Tee { handle, tail }
    }

    /// Wait for the stream to end and return its last bytes as text.
    pub fn finish(self) -> String {
        let _ = self.handle.join();
        let tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&tail).into_owned()
    }
}
