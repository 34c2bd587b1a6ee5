//! `tgs server logs`: print a thought's session transcript (already redacted
//! when it was written), streamed so a huge log never sits in memory, and
//! optionally follow a running session as it grows. A Claude Code
//! transcript is shown as its conversation (`--raw`: the file as it is); on
//! a terminal, control characters the agent printed (escape sequences that
//! could set the clipboard or rewrite the screen) are shown escaped.

use std::fs::File;
use std::io::{self, IsTerminal, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use tgs_core::agent::conversation::Conversation;
use tgs_core::archive::TRANSCRIPTS_DIR;
use tgs_core::backlog::{Backlog, Status};
use tgs_core::process::Signals;
use tgs_core::report::{kept_text, list_transcripts, thought_name};

use super::{lookup_entry, may_answer, parse_thought_arg, Ctx};
use crate::error::{CliError, CliResult};
use crate::output;

/// How often `--follow` looks for new bytes.
const POLL: Duration = Duration::from_millis(200);
/// How often `--follow` re-reads the backlog (it may fetch the state branch).
const STATUS_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The thought: its directory or its bare name.
    #[arg(value_name = "DIR")]
    pub dir: String,
    /// Print the Nth session's transcript (1 = the first); default: the latest.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub attempt: Option<u32>,
    /// Keep printing what the running session appends, until it is no longer
    /// in progress (or Ctrl-C).
    #[arg(long)]
    pub follow: bool,
    /// Print the transcript exactly as written (a Claude session's JSON
    /// events), instead of as a conversation.
    #[arg(long)]
    pub raw: bool,
}

#[derive(Serialize)]
struct SessionJson<'a> {
    n: usize,
    file: &'a str,
    /// The whole transcript in this clone, if the session ran here.
    path: Option<&'a Path>,
    /// Its kept end on the state branch (a blob id), once recorded.
    kept: Option<&'a str>,
    started: jiff::Timestamp,
    bytes: Option<u64>,
}

#[derive(Serialize)]
struct LogsJson<'a> {
    dir: &'a str,
    in_backlog: bool,
    sessions: Vec<SessionJson<'a>>,
    selected: usize,
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    if ctx.json && args.follow {
        return Err(CliError::usage(
            "--follow prints text; it cannot be combined with --json",
        ));
    }
    let repo = ctx.repo()?;
    let target = ctx.reader(&repo)?;
    // The backlog only tells whether the session still runs (and what a bare
    // slug names); a thought removed from it (or an unreadable backlog) still
    // has its transcripts. Of the archive, only the entries the argument may
    // name are kept.
    let backlog = target.read_all_where(may_answer(&repo, &args.dir)).ok();
    let entry = match &backlog {
        Some(b) => lookup_entry(&repo, b, &args.dir)?,
        None => None,
    };
    let candidates = match entry {
        Some(dir) => vec![dir],
        None => parse_thought_arg(&repo, &args.dir)?.candidates(),
    };
    let in_backlog = backlog
        .as_ref()
        .and_then(|b| candidates.iter().find(|d| b.get(d).is_some()))
        .cloned();
    let dir = in_backlog.clone().unwrap_or_else(|| candidates[0].clone());
    let name = thought_name(&dir).to_owned();
    let kept = target.list(TRANSCRIPTS_DIR)?;
    let sessions = list_transcripts(repo.root(), &kept, &name);
    if sessions.is_empty() {
        return Err(if in_backlog.is_some() {
            CliError::failed(format!("{dir} has no session transcript yet"))
                .hint("`tgs server run` records one when a session ends")
        } else {
            CliError::usage(format!("{dir} is not in the backlog and has no transcript"))
                .hint("`tgs server backlog list` shows the backlog")
        });
    }
    let n = args.attempt.map_or(sessions.len(), |a| a as usize);
    if n > sessions.len() {
        return Err(CliError::usage(format!(
            "{dir} has {} session transcript(s); there is no session {n}",
            sessions.len()
        )));
    }
    let chosen = &sessions[n - 1];
    if ctx.json {
        output::json(&LogsJson {
            dir: &dir,
            in_backlog: in_backlog.is_some(),
            sessions: sessions
                .iter()
                .enumerate()
                .map(|(i, t)| SessionJson {
                    n: i + 1,
                    file: &t.file,
                    path: t.path.as_deref(),
                    kept: t.kept.as_deref(),
                    started: t.started,
                    bytes: t.bytes,
                })
                .collect(),
            selected: n,
        });
        return super::ok();
    }
    output::note(format!(
        "session {n} of {}: {} (started {})",
        sessions.len(),
        chosen.file,
        chosen.started
    ));
    let stdout = io::stdout();
    let tty = stdout.is_terminal();
    let mut out = View {
        out: stdout.lock(),
        conversation: (!args.raw).then(Conversation::default),
        tty,
        partial: Vec::new(),
    };
    let Some(path) = &chosen.path else {
        // Recorded elsewhere: its kept end, from the state branch.
        let oid = chosen.kept.as_deref().unwrap_or_default();
        let text = kept_text(&repo, oid)?;
        pipe_ok(out.write_all(&text).and_then(|()| out.finish()))?;
        output::note(format!(
            "that is the end of the transcript as the state branch keeps it (at most {} KiB); the whole one is where the session ran{}",
            tgs_core::archive::KEEP_BYTES / 1024,
            if args.follow { " (it cannot be followed from here)" } else { "" }
        ));
        return super::ok();
    };
    let mut file = File::open(path)?;
    if !pipe_ok(copy_new(&mut file, &mut out))? {
        return super::ok();
    }
    if !args.follow {
        pipe_ok(out.finish())?;
        return super::ok();
    }
    let running = |b: &Backlog| {
        in_backlog
            .as_deref()
            .and_then(|d| b.get(d))
            .is_some_and(|e| e.status == Status::InProgress)
    };
    if n != sessions.len() || !backlog.as_ref().is_some_and(running) {
        output::note("that session is not running; nothing to follow");
        return super::ok();
    }
    let here = sessions.iter().filter(|t| t.path.is_some()).count();
    let followed = follow(&mut file, &mut out, || {
        // Over when the entry leaves in_progress, or when a newer session of
        // the same thought started (this one was then abandoned).
        target.refresh();
        let done = target.read().is_ok_and(|b| !running(&b));
        let newer = list_transcripts(repo.root(), &[], &name).len() > here;
        done || newer
    });
    pipe_ok(out.finish())?;
    followed
}

/// The longest partial line held back while waiting for its end; a longer
/// one (a flood without newlines) is shown as it is, in pieces.
const MAX_PARTIAL: usize = 1 << 20;

/// Where the transcript goes: line by line through the conversation view
/// (unless `--raw`), with control characters escaped on a terminal.
struct View<W: Write> {
    out: W,
    conversation: Option<Conversation>,
    tty: bool,
    /// The start of a line whose end has not come yet.
    partial: Vec<u8>,
}

impl<W: Write> View<W> {
    /// The raw file to a pipe or a file: bytes as they are.
    fn passes_through(&self) -> bool {
        self.conversation.is_none() && !self.tty
    }

    /// Show one line (`ended`: it had its newline). Events of the
    /// conversation are rendered; any other line is written as it is (its
    /// bytes, or escaped on a terminal).
    fn emit(&mut self, line: &[u8], ended: bool) -> io::Result<()> {
        let rendered = match (&mut self.conversation, std::str::from_utf8(line)) {
            (Some(c), Ok(text)) => c.render(text),
            _ => None,
        };
        let Some(lines) = rendered else {
            match self.tty {
                true => self
                    .out
                    .write_all(crate::output::inert(&String::from_utf8_lossy(line)).as_bytes())?,
                false => self.out.write_all(line)?,
            }
            return match ended {
                true => self.out.write_all(b"\n"),
                false => Ok(()),
            };
        };
        for l in lines {
            self.out.write_all(crate::output::inert(&l).as_bytes())?;
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }

    /// Show what is left of a last line without its end, and flush.
    fn finish(&mut self) -> io::Result<()> {
        if !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            self.emit(&rest, false)?;
        }
        self.out.flush()
    }
}

impl<W: Write> Write for View<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.passes_through() {
            return self.out.write_all(buf).map(|()| buf.len());
        }
        self.partial.extend_from_slice(buf);
        let mut start = 0;
        while let Some(i) = memchr::memchr(b'\n', &self.partial[start..]) {
            let line = self.partial[start..start + i].to_vec();
            self.emit(&line, true)?;
            start += i + 1;
        }
        self.partial.drain(..start);
        if self.partial.len() > MAX_PARTIAL {
            let piece = std::mem::take(&mut self.partial);
            self.emit(&piece, false)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Print what gets appended to `file` until `finished` says so or a signal
/// arrives; the last bytes are drained after the session ends.
fn follow(file: &mut File, out: &mut impl Write, mut finished: impl FnMut() -> bool) -> CliResult {
    let signals = Signals::install()?;
    let mut last_check = Instant::now();
    loop {
        if signals.count() > 0 {
            break;
        }
        std::thread::sleep(POLL);
        if !pipe_ok(copy_new(file, out))? {
            break;
        }
        if last_check.elapsed() >= STATUS_EVERY {
            last_check = Instant::now();
            if finished() {
                pipe_ok(copy_new(file, out))?;
                break;
            }
        }
    }
    super::ok()
}

/// Copy what the file has past the current position, in bounded memory.
fn copy_new(file: &mut File, out: &mut impl Write) -> io::Result<()> {
    // A file that shrank was rewritten: start over rather than wait for ever.
    let pos = file.stream_position()?;
    if file.metadata()?.len() < pos {
        file.seek(SeekFrom::Start(0))?;
    }
    io::copy(file, out)?;
    out.flush()
}

/// A closed stdout (`| head`) ends the output quietly: `Ok(false)`.
fn pipe_ok(r: io::Result<()>) -> CliResult<bool> {
    match r {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(raw: bool, tty: bool, chunks: &[&[u8]]) -> String {
        let mut v = View {
            out: Vec::new(),
            conversation: (!raw).then(Conversation::default),
            tty,
            partial: Vec::new(),
        };
        for c in chunks {
            v.write_all(c).unwrap();
        }
        v.finish().unwrap();
        String::from_utf8(v.out).unwrap()
    }

    #[test]
    fn escape_sequences_never_reach_a_terminal() {
        // OSC 52 (set the clipboard), OSC 8 (a link), erase the line.
        let hostile: &[u8] = b"a\x1b]52;c;ZXZpbA==\x07b\x1b]8;;http://x\x1b\\c\x1b[2K\n";
        for raw in [false, true] {
            let out = shown(raw, true, &[hostile]);
            assert!(!out.contains('\x1b') && !out.contains('\x07'), "{out:?}");
            assert!(out.contains("\\u{1b}]52;c;ZXZpbA=="), "{out:?}");
        }
        // To a pipe, --raw is the file byte for byte.
        assert_eq!(shown(true, false, &[hostile]).as_bytes(), hostile);
    }

    #[test]
    fn lines_split_across_writes_are_rendered_whole() {
        let event = br#"{"type":"assistant","message":{"content":[{"type":"text","text":"hi"}]}}"#;
        let out = shown(
            false,
            false,
            &[&event[..10], &event[10..], b"\nlast without end"],
        );
        assert_eq!(out, "assistant: hi\nlast without end");
    }
}
