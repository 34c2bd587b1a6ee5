//! Running one agent session: the process in its own group, its output
//! streamed through the redactor into the transcript, progress parsed from
//! its JSON events, all in bounded memory whatever it prints.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::agent::claude::{ClaudeProgress, ClaudeResult};
use crate::agent::codex::CodexProgress;
use crate::agent::driver::{OutputFormat, SessionCommand};
use crate::events::SessionStats;
use crate::process::{self, Ending, Signals};
use crate::transcript::{RedactingWriter, Redactor};
use crate::Error;

/// Lines longer than this are logged but not parsed for progress.
const MAX_PARSED_LINE: usize = 1 << 20;
/// How much of the transcript's end is kept for failure reports.
const TAIL: usize = 8 * 1024;

/// A change in what the agent is doing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    pub action: Option<String>,
    pub turns: Option<u32>,
    pub cost_usd: Option<f64>,
}

/// How the session went, before verification.
#[derive(Debug)]
pub struct AgentRun {
    pub ending: Ending,
    pub duration: Duration,
    pub stats: SessionStats,
    /// The agent reported failure although it may have exited 0 (Claude's `is_error`, denials).
    pub reported_failure: Option<String>,
    /// Claude's final `result` event, when there was one.
    pub claude_result: Option<ClaudeResult>,
    /// The error that ended a Codex run (`turn.failed`, `error`), if any.
    pub codex_error: Option<String>,
    /// The end of the (redacted) transcript.
    pub tail: String,
    /// The end of the agent's stderr (redacted): the likeliest reason for a
    /// failure. For a plain-text agent, whose two streams share one pipe, the
    /// end of its whole output in the order it was written.
    pub stderr_tail: String,
    /// Why the transcript file misses output (a full disk), if it does.
    pub transcript_error: Option<String>,
    /// For a CLI that speaks a stream of events: whether it began a session
    /// (its first event, or a turn); `None` for plain-text agents.
    pub started: Option<bool>,
    /// Connections the sandbox's proxy refused (0 without a sandbox).
    pub egress_denied: u32,
    /// What they were for (`host:port`, each once, the first 20).
    pub egress_targets: Vec<String>,
    /// What the agent was last seen doing, from its stream of events (a
    /// tool call), when it speaks one.
    pub last_action: Option<String>,
}

/// The agent's program could not be started.
#[derive(Debug)]
pub struct Missing(pub String);

enum Parser {
    Claude(ClaudeProgress),
    Codex(CodexProgress),
    Text,
}

impl Parser {
    fn observe(&mut self, line: &str) -> Option<Progress> {
        match self {
            Parser::Claude(p) => p.observe(line).then(|| Progress {
                action: p.last_action.clone(),
                turns: Some(p.result.as_ref().map(|r| r.num_turns).unwrap_or(p.turns)),
                cost_usd: p.result.as_ref().and_then(|r| r.total_cost_usd),
            }),
            Parser::Codex(p) => p.observe(line).then(|| Progress {
                action: p.last_action.clone(),
                turns: Some(p.turns),
                cost_usd: None,
            }),
            Parser::Text => None,
        }
    }

    /// What the agent was last seen doing (a tool call), from its events.
    fn last_action(&self) -> Option<&str> {
        match self {
            Parser::Claude(p) => p.last_action.as_deref(),
            Parser::Codex(p) => p.last_action.as_deref(),
            Parser::Text => None,
        }
    }

    /// Whether the agent has reported the end of its work (Claude's
    /// `result`, Codex's `turn.completed` or `turn.failed`).
    fn ended(&self) -> bool {
        match self {
            Parser::Claude(p) => p.result.is_some(),
            Parser::Codex(p) => p.ended,
            Parser::Text => false,
        }
    }
}

/// Keeps the last bytes written through it.
struct TailWriter<W: Write> {
    inner: W,
    tail: Arc<Mutex<Vec<u8>>>,
}

impl<W: Write> Write for TailWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        process::keep_tail(
            &mut self.tail.lock().unwrap_or_else(|p| p.into_inner()),
            &buf[..n],
            TAIL,
        );
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The transcript file. A write that fails (the disk is full, the file
/// system went read-only) must not stop the session: the agent's work is
/// worth more than its transcript. The first error is kept, later output is
/// counted and dropped, and the session says the transcript is incomplete.
struct DiskLog {
    file: BufWriter<File>,
    error: Option<io::Error>,
    lost: Arc<AtomicU64>,
}

impl DiskLog {
    fn fail(&mut self, e: io::Error, len: usize) {
        self.lost.fetch_add(len as u64, Ordering::Relaxed);
        self.error.get_or_insert(e);
    }
}

impl Write for DiskLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.error.is_some() {
            self.lost.fetch_add(buf.len() as u64, Ordering::Relaxed);
        } else if let Err(e) = self.file.write_all(buf) {
            self.fail(e, buf.len());
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        if self.error.is_none() {
            if let Err(e) = self.file.flush() {
                let pending = self.file.buffer().len();
                self.fail(e, pending);
            }
        }
        Ok(())
    }
}

type Log = Arc<Mutex<RedactingWriter<TailWriter<DiskLog>>>>;

/// Options of one run.
pub struct RunOptions<'a> {
    pub cwd: &'a Path,
    pub prompt: &'a str,
    pub log_path: &'a Path,
    pub redactor: Arc<Redactor>,
    pub timeout: Duration,
    pub grace: Duration,
    /// How long an agent may keep running after it reported its end.
    pub result_grace: Duration,
    pub signals: Option<&'a Signals>,
    pub agent_name: &'a str,
    /// Run the agent inside this sandbox ([`crate::sandbox`]).
    pub sandbox: Option<&'a crate::sandbox::Wall>,
    /// Stop the agent when it shows no sign of life for this long (see
    /// [`crate::stall`]); `None`: never.
    pub stall_timeout: Option<Duration>,
    /// Stop the agent when its repository's filesystem loses more than
    /// this many bytes (see [`crate::diskwatch`]); `None`: not watched.
    pub disk_limit: Option<u64>,
}

/// Run the agent to its end. `on_progress` is called on this thread.
pub fn run_agent(
    cmd: &SessionCommand,
    o: &RunOptions<'_>,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<Result<AgentRun, Missing>, Error> {
    if let Some(dir) = o.log_path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = File::create(o.log_path)?;
    let lost = Arc::new(AtomicU64::new(0));
    let tail = Arc::new(Mutex::new(Vec::new()));
    let log: Log = Arc::new(Mutex::new(RedactingWriter::new(
        TailWriter {
            inner: DiskLog {
                file: BufWriter::with_capacity(64 * 1024, file),
                error: None,
                lost: lost.clone(),
            },
            tail: tail.clone(),
        },
        o.redactor.clone(),
    )));
    {
        let mut l = log.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(l, "# tgs session: {} in {}", cmd.display(), o.cwd.display());
    }

    let args: Vec<std::ffi::OsString> = cmd.args.iter().map(Into::into).collect();
    let path = cmd
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_ref());
    // Inside the sandbox, each refused connection is a line of the transcript.
    let launch = crate::sandbox::Launch::new(o.sandbox, cmd.program.as_ref(), args, &log, true)?;
    let mut command = crate::reaper::command(&launch.program, &launch.args, o.grace, path);
    command
        .current_dir(o.cwd)
        .env_clear()
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .stdin(if cmd.prompt_on_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    // A plain-text agent's stdout and stderr share one pipe, so the transcript
    // keeps the order it wrote them in. JSON agents' stdout is parsed alone.
    let parse = cmd.format != OutputFormat::Text;
    let merged = if parse { None } else { Some(std::io::pipe()?) };
    match &merged {
        Some((_, w)) => {
            command.stdout(w.try_clone()?).stderr(w.try_clone()?);
        }
        None => {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
    }
    process::own_group(&mut command);
    process::die_with_parent(&mut command);
    let started = Instant::now();
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
            ) =>
        {
            let msg = format!("cannot start {}: {e}", cmd.program);
            let mut l = log.lock().unwrap_or_else(|p| p.into_inner());
            let _ = writeln!(l, "# {msg}");
            return Ok(Err(Missing(msg)));
        }
        Err(e) => return Err(e.into()),
    };
    crate::failpoint::hit("session.agent-running");
    if let Some(mut stdin) = child.stdin.take() {
        let prompt = o.prompt.to_owned();
        std::thread::spawn(move || {
            let _ = stdin.write_all(prompt.as_bytes());
        });
    }
    // Bounded (16 lines of at most 1 MiB): if the parser falls behind, the pump waits (and so does the
    // agent's next write) instead of queueing output in memory. Plain-text
    // agents have nothing to parse, so their lines are not queued at all.
    let (tx, rx) = mpsc::sync_channel::<String>(16);
    // Our copies of the shared pipe's write end must go, or it never ends.
    drop(command);
    let merged = merged.map(|(reader, _writer)| reader);
    let err_tail = Arc::new(Mutex::new(Vec::new()));
    let life = Arc::new(crate::stall::Life::new(o.cwd));
    let mut disk = o
        .disk_limit
        .and_then(|limit| crate::diskwatch::DiskWatch::new(o.cwd, limit));
    let (out, err) = match merged {
        Some(reader) => (
            pump(reader, log.clone(), None, Some(err_tail.clone()), &life),
            None,
        ),
        None => (
            pump(
                child.stdout.take().expect("piped"),
                log.clone(),
                parse.then_some(tx),
                None,
                &life,
            ),
            Some(pump(
                child.stderr.take().expect("piped"),
                log.clone(),
                None,
                Some(err_tail.clone()),
                &life,
            )),
        ),
    };

    let mut parser = match cmd.format {
        OutputFormat::ClaudeStreamJson => Parser::Claude(ClaudeProgress::default()),
        OutputFormat::CodexJson => Parser::Codex(CodexProgress::default()),
        OutputFormat::Text => Parser::Text,
    };
    let mut drain = |parser: &mut Parser| {
        while let Ok(line) = rx.try_recv() {
            if let Some(p) = parser.observe(&line) {
                on_progress(p);
            }
        }
    };
    // Once the agent has reported its end, it gets `result_grace` to exit:
    // an MCP server or a dev server it started may hold it up for ever.
    let mut ended_at: Option<Instant> = None;
    let ending =
        process::supervise_with(&mut child, Some(o.timeout), o.grace, o.signals, &mut || {
            drain(&mut parser);
            if ended_at.is_none() && parser.ended() {
                ended_at = Some(Instant::now());
            }
            match ended_at {
                Some(t) if t.elapsed() >= o.result_grace => return process::Tick::StopAfterEnd,
                // An agent that reported its end is not judged for stalling.
                Some(_) => return process::Tick::Continue,
                None => {}
            }
            if let Some(why) = disk.as_mut().and_then(crate::diskwatch::DiskWatch::check) {
                return process::Tick::Stop(why);
            }
            match o.stall_timeout.and_then(|limit| life.stalled(limit)) {
                Some(quiet) => process::Tick::Stalled(quiet),
                None => process::Tick::Continue,
            }
        })?;
    // A pump that panicked is a bug of tgs's: the session ends as an
    // internal error (its executor catches it), not with a silent gap.
    process::rejoin(out);
    if let Some(err) = err {
        process::rejoin(err);
    }
    drain(&mut parser);
    let duration = started.elapsed();
    {
        let mut l = log.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(
            l,
            "\n# tgs: the agent {} after {:.1}s",
            ending.describe(),
            duration.as_secs_f64()
        );
    }
    // Every thread holding the log has ended: finish the redactor and flush the file.
    let mut transcript_error = None;
    if let Ok(m) = Arc::try_unwrap(log) {
        let w = m.into_inner().unwrap_or_else(|p| p.into_inner());
        let mut tw = w.finish()?;
        tw.flush()?;
        transcript_error = tw.inner.error.take().map(|e| {
            format!(
                "the transcript {} is incomplete ({e}): {} bytes of output could not be written",
                o.log_path.display(),
                lost.load(Ordering::Relaxed)
            )
        });
    }
    let tail =
        String::from_utf8_lossy(&tail.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    let stderr_tail = o.redactor.redact(&String::from_utf8_lossy(
        &err_tail.lock().unwrap_or_else(|p| p.into_inner()),
    ));

    let mut stats = SessionStats {
        agent: o.agent_name.to_owned(),
        exit_code: match ending {
            Ending::Exited(s) => s.code(),
            _ => None,
        },
        ..Default::default()
    };
    let started = match &parser {
        Parser::Claude(p) => Some(p.session_id.is_some() || p.turns > 0 || p.result.is_some()),
        Parser::Codex(p) => Some(p.thread_id.is_some() || p.turns > 0),
        Parser::Text => None,
    };
    let last_action = parser.last_action().map(|a| o.redactor.redact(a));
    let mut reported_failure = None;
    let mut claude_result = None;
    let mut codex_error = None;
    match &parser {
        Parser::Claude(p) => {
            if let Some(r) = &p.result {
                stats.turns = Some(r.num_turns);
                stats.cost_usd = r.total_cost_usd;
                stats.input_tokens = Some(r.input_tokens);
                stats.output_tokens = Some(r.output_tokens);
                stats.session_id = r.session_id.clone();
                claude_result = Some(r.clone());
            } else {
                stats.turns = Some(p.turns);
                stats.session_id = p.session_id.clone();
            }
            // Claude exits 1 on API errors and the turn limit: its own account
            // of why beats the last line of output, whatever the exit status.
            reported_failure = p.failure(true);
        }
        Parser::Codex(p) => {
            stats.turns = Some(p.turns);
            stats.input_tokens = Some(p.input_tokens);
            stats.output_tokens = Some(p.output_tokens);
            stats.session_id = p.thread_id.clone();
            reported_failure = p.error.clone();
            codex_error = p.error.clone();
        }
        Parser::Text => {}
    }
    Ok(Ok(AgentRun {
        ending,
        duration,
        stats,
        reported_failure,
        claude_result,
        codex_error,
        tail,
        stderr_tail,
        transcript_error,
        started,
        egress_denied: launch.proxy.as_ref().map_or(0, |p| p.denied()),
        egress_targets: launch
            .proxy
            .as_ref()
            .map(|p| p.denied_targets())
            .unwrap_or_default(),
        last_action,
    }))
}

/// Copy a stream into the log in chunks; with `lines`, also hand complete
/// lines (up to [`MAX_PARSED_LINE`]) to the parser.
fn pump<R: Read + Send + 'static>(
    mut from: R,
    log: Log,
    lines: Option<mpsc::SyncSender<String>>,
    keep_tail: Option<Arc<Mutex<Vec<u8>>>>,
    life: &Arc<crate::stall::Life>,
) -> std::thread::JoinHandle<()> {
    let life = life.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut line: Vec<u8> = Vec::new();
        let mut overlong = false;
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            let chunk = &buf[..n];
            life.output();
            crate::failpoint::hit("session.output");
            {
                let mut l = log.lock().unwrap_or_else(|p| p.into_inner());
                let _ = l.write_all(chunk);
            }
            if let Some(t) = &keep_tail {
                process::keep_tail(
                    &mut t.lock().unwrap_or_else(|p| p.into_inner()),
                    chunk,
                    TAIL,
                );
            }
            let Some(tx) = &lines else { continue };
            for piece in chunk.split_inclusive(|b| *b == b'\n') {
                let complete = piece.last() == Some(&b'\n');
                if !overlong {
                    line.extend_from_slice(piece);
                    if line.len() > MAX_PARSED_LINE {
                        overlong = true;
                        line.clear();
                    }
                }
                if complete {
                    if !overlong {
                        let _ = tx.send(String::from_utf8_lossy(&line).trim_end().to_owned());
                    }
                    line.clear();
                    overlong = false;
                }
            }
        }
        if let Some(tx) = &lines {
            if !line.is_empty() && !overlong {
                let _ = tx.send(String::from_utf8_lossy(&line).trim_end().to_owned());
            }
        }
    })
}
