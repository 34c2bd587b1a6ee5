//! A session's reaper: what an agent (or a verify command) starts ends with
//! its session, however it tries to outlive it.
//!
//! tgs runs every agent and verify command under a small process of its
//! own, the reaper (`tgs debug reap -- PROGRAM ARGS...`, the tgs binary
//! itself), which is the leader of the session's process group and a
//! *child subreaper* (`PR_SET_CHILD_SUBREAPER`): every process the session
//! starts stays its descendant even after `setsid`, a double fork or a
//! cleared environment, because orphans are re-parented to it instead of
//! to init. When the program ends (or is stopped), the reaper kills all of
//! its descendants, found from `/proc` ([`crate::procfs`]), and only then
//! ends with the program's own status. If tgs dies (even by SIGKILL), the
//! reaper is told (`PR_SET_PDEATHSIG`) and does the same at once.
//!
//! What it cannot stop without a sandbox: a process of the same user that
//! kills the reaper first (its orphans then go to init) or that asks
//! another service (systemd, cron, at) to start something; the PID
//! namespace of a sandbox closes that.

use std::ffi::{OsStr, OsString};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The program that reaps (tgs's own binary), once the CLI has said so.
static PROGRAM: OnceLock<PathBuf> = OnceLock::new();

/// Run sessions under `program` (the tgs binary, whose `debug reap`
/// subcommand calls [`reap`]). Without it, programs run directly (library
/// tests): their leftovers outside the process group then survive.
pub fn install(program: PathBuf) {
    let _ = PROGRAM.set(program);
}

/// A command that runs `program args` under the reaper (when installed and
/// the program can be started: a program that cannot is spawned directly,
/// so that the caller sees the spawn error as before). `grace` is the time
/// the supervisor gives between SIGTERM and SIGKILL; the reaper kills the
/// session's leftovers a little before it ends. `path` is the PATH the
/// program will be looked up in.
pub fn command(
    program: &OsStr,
    args: &[OsString],
    grace: Duration,
    path: Option<&OsStr>,
) -> Command {
    match PROGRAM.get().filter(|_| startable(program, path)) {
        Some(reaper) => {
            let mut cmd = Command::new(reaper);
            cmd.args(["debug", "reap", "--grace-ms"])
                .arg(own_grace(grace).as_millis().to_string())
                .arg("--")
                .arg(program)
                .args(args);
            cmd
        }
        None => {
            let mut cmd = Command::new(program);
            cmd.args(args);
            cmd
        }
    }
}

/// The reaper's own grace: somewhat shorter than the supervisor's, so that
/// it has killed the leftovers before the supervisor's SIGKILL kills it.
fn own_grace(grace: Duration) -> Duration {
    grace.saturating_sub((grace / 4).min(Duration::from_secs(1)))
}

/// Whether `program` names an executable file (directly, or on `path`).
fn startable(program: &OsStr, path: Option<&OsStr>) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let p = Path::new(program);
    if p.components().count() > 1 || p.is_absolute() {
        return executable(p);
    }
    path.into_iter()
        .flat_map(std::env::split_paths)
        .any(|d| executable(&d.join(p)))
}

/// The reaper itself (`tgs debug reap`): run `program args` (same stdin,
/// stdout, stderr, environment and directory), wait for it, then kill
/// every process it left, and return the status to exit with (a program
/// killed by a signal: the same signal is raised here first).
///
/// Errors: the program cannot be started (the caller exits 127).
pub fn reap(program: &OsStr, args: &[OsString], grace: Duration) -> std::io::Result<i32> {
    let parent = become_reaper();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let mut cmd = Command::new(program);
    cmd.args(args);
    crate::process::die_with_parent(&mut cmd);
    let child = cmd.spawn()?;
    let pid = child.id() as i32;
    let status = wait(pid, parent, &stop, grace);
    kill_descendants();
    Ok(exit_code(status))
}

/// Become a child subreaper that is told (SIGTERM) when tgs dies; returns
/// tgs's pid.
fn become_reaper() -> u32 {
    // SAFETY: prctl with integer arguments and getppid have no memory
    // preconditions; failures leave the defaults (no subreaper: leftovers
    // go to init, as without a reaper).
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0);
        libc::getppid() as u32
    }
}

/// Wait for the program (reaping every other child meanwhile). A stop
/// request gives it `grace`; tgs gone means now. Returns its wait status,
/// or None when it was killed here.
fn wait(pid: i32, parent: u32, stop: &AtomicBool, grace: Duration) -> Option<i32> {
    let mut stopped_at: Option<Instant> = None;
    // Quick at first (a short program's end is seen at once), then every
    // 20 ms for a long one.
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = reap_children(pid) {
            return Some(status);
        }
        // SAFETY: getppid has no preconditions.
        let orphaned = unsafe { libc::getppid() } as u32 != parent;
        if stop.load(Ordering::SeqCst) && stopped_at.is_none() {
            stopped_at = Some(Instant::now());
            // The group had it already, unless it was sent to us alone.
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        if orphaned || stopped_at.is_some_and(|t| t.elapsed() >= grace) {
            return None;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Reap every child that has ended; the program's status if it was one.
fn reap_children(program: i32) -> Option<i32> {
    let mut found = None;
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes only to `status`.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return found;
        }
        if pid == program {
            found = Some(status);
        }
    }
}

/// SIGKILL every descendant until none is left alive (a process may fork
/// between two passes: its child is found by the next), then reap them.
/// Bounded: a process the kernel does not let die (uninterruptible sleep)
/// is left after five seconds.
fn kill_descendants() {
    let me = std::process::id();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let snapshot = crate::procfs::all();
        let alive: Vec<_> = crate::procfs::descendants(&snapshot, me)
            .into_iter()
            .filter(|s| !s.zombie)
            .collect();
        if alive.is_empty() {
            break;
        }
        for s in &alive {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(s.pid as i32, libc::SIGKILL) };
        }
        reap_children(-1);
        std::thread::sleep(Duration::from_millis(5));
    }
    // Reap every zombie too: one whose parent was another descendant comes
    // to us only once that parent is reaped, and left here it would stay
    // (its new parent, our caller's subreaper, may never reap it).
    while Instant::now() < deadline {
        reap_children(-1);
        if crate::procfs::descendants(&crate::procfs::all(), me).is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The exit code that tells the supervisor what the program did: its own
/// code, or its signal raised again here (so tgs sees "killed by signal
/// N"); killed here: SIGKILL.
fn exit_code(status: Option<i32>) -> i32 {
    let status = std::process::ExitStatus::from_raw(status.unwrap_or(libc::SIGKILL));
    if let Some(code) = status.code() {
        return code;
    }
    let sig = status.signal().unwrap_or(libc::SIGKILL);
    // SAFETY: resetting a disposition and raising a signal on ourselves
    // have no memory preconditions; if the process survives, it exits with
    // the shell's convention below.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
    128 + sig
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reapers_grace_ends_before_the_supervisors() {
        assert_eq!(own_grace(Duration::from_secs(10)), Duration::from_secs(9));
        assert_eq!(
            own_grace(Duration::from_secs(1)),
            Duration::from_millis(750)
        );
        assert_eq!(own_grace(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn programs_that_cannot_start_are_not_wrapped() {
        let path = Some(OsStr::new("/usr/bin:/bin"));
        assert!(startable(OsStr::new("sh"), path));
        assert!(!startable(OsStr::new("no-such-program-tgs"), path));
        assert!(!startable(OsStr::new("/nonexistent/x"), path));
        assert!(!startable(OsStr::new("sh"), None));
    }
}
