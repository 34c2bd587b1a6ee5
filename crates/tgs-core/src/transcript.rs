//! Session transcripts: a coding agent's output copied to a file with secrets
//! redacted.
//!
//! Agents echo environment variables, tokens and command output, and a
//! transcript kept for review must not carry them. [`RedactingWriter`] sits
//! between the agent's output and the transcript file and replaces with
//! [`REDACTED`] every literal secret value (typically the values of
//! environment variables with secret-looking names) and every match of the
//! configured regular expressions (token formats). Agents can run for hours,
//! so the writer streams in bounded memory, and it works on bytes because
//! their output need not be UTF-8.
//!
//! Redaction runs in two stages:
//! 1. Literal secrets are searched for in the byte stream without regard to
//!    lines, since a value may contain newlines (a PEM key). The last
//!    `max_secret_len - 1` bytes are held back until later bytes show whether
//!    a secret starts there. Occurrences that overlap are merged into one
//!    redacted span, so no fragment of either secret survives.
//! 2. Lines that are stream-json delta events (an agent streaming its text
//!    in pieces) are joined: a secret split across consecutive events is
//!    found in the concatenation of their texts and redacted in each (see
//!    `Joiner` for how and why).
//! 3. Patterns run on the result one line at a time (a line ends at `\n`,
//!    which is not part of what the patterns see), so the unfinished line is
//!    held back until its newline arrives.
//!
//! [`Redactor::for_secrets`] adds each secret's encodings (base64 at each
//! alignment, URL-encoded, JSON- and XML-escaped, each line of a multi-line
//! value) to the literals, as the GitHub Actions runner's masker does.
//!
//! If no line is longer than [`MAX_LINE`], the streamed output is exactly
//! [`Redactor::redact_bytes`] of the whole input, however the writes split it.
//!
//! Limitation: a line longer than [`MAX_LINE`] goes to the patterns in pieces
//! of `MAX_LINE` bytes, so a pattern match that crosses a piece boundary may be
//! missed. Literal secrets are always redacted, whatever the line length.

use std::fmt;
use std::io::{self, Write};
use std::sync::Arc;

use regex::bytes::{Regex, RegexBuilder, RegexSet};

use crate::Error;

/// What redaction replaces a secret with.
pub const REDACTED: &str = "[REDACTED]";

/// The longest line the patterns see whole. Longer lines are cut into pieces of
/// this size, so memory stays bounded.
pub const MAX_LINE: usize = 64 * 1024;

/// What counts as a secret (see `secrets`), as the redaction uses it.
pub use crate::secrets::{name_looks_secret, MIN_SECRET_LEN};

/// How much input the writer handles per step. This bounds its transient
/// buffers when a caller writes a huge slice in one call.
const CHUNK: usize = 16 * 1024;

/// Room for many long secrets (keys and certificates) in the single literal
/// matcher. The regex crate's default of 10 MB is meant for patterns typed by
/// hand.
const LITERAL_SIZE_LIMIT: usize = 64 << 20;

/// Values to hide and patterns to hide.
#[derive(Clone)]
pub struct Redactor {
    /// One alternation of the escaped secrets, longest first. The regex crate
    /// prefers earlier branches among matches at the same start, so the
    /// longest secret starting at a position wins.
    literals: Option<Regex>,
    /// The literal values, longest first (never printed).
    values: Vec<String>,
    secret_count: usize,
    max_len: usize,
    patterns: Vec<Regex>,
    /// The same patterns as one set: a single pass tells whether a line needs
    /// any work.
    pattern_set: RegexSet,
}

impl fmt::Debug for Redactor {
    // Derived Debug would print the literal matcher, and with it every secret.
    // Debug output tends to end up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secret_count)
            .field("max_secret_len", &self.max_len)
            .field("patterns", &self.pattern_set.patterns())
            .finish()
    }
}

impl Redactor {
    /// Literal secret values (values shorter than [`MIN_SECRET_LEN`] bytes are
    /// ignored) and regular expressions (invalid ones give
    /// [`Error::Invalid`] naming the pattern). Patterns are matched against
    /// bytes, one line at a time.
    pub fn new(
        values: impl IntoIterator<Item = String>,
        patterns: &[String],
    ) -> Result<Redactor, Error> {
        let mut values: Vec<String> = values
            .into_iter()
            .filter(|v| v.len() >= MIN_SECRET_LEN)
            .collect();
        values.sort_unstable_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        let max_len = values.first().map_or(0, String::len);
        let literals = if values.is_empty() {
            None
        } else {
            let alternation = values
                .iter()
                .map(|v| regex::escape(v))
                .collect::<Vec<_>>()
                .join("|");
            // The regex error would quote the pattern, which is the secrets.
            let re = RegexBuilder::new(&alternation)
                .size_limit(LITERAL_SIZE_LIMIT)
                .build()
                .map_err(|_| {
                    Error::invalid(format!(
                        "cannot build a matcher for {} secret values ({} bytes in all): too large",
                        values.len(),
                        values.iter().map(String::len).sum::<usize>()
                    ))
                })?;
            Some(re)
        };
        let compiled = patterns
            .iter()
            .map(|p| {
                Regex::new(p)
                    .map_err(|e| Error::invalid(format!("invalid redaction pattern {p:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let pattern_set = RegexSet::new(patterns)
            .map_err(|e| Error::invalid(format!("cannot combine the redaction patterns: {e}")))?;
        Ok(Redactor {
            literals,
            secret_count: values.len(),
            values,
            max_len,
            patterns: compiled,
            pattern_set,
        })
    }

    /// A redactor for secret values in every form a leak takes (see
    /// [`crate::secrets::encodings`]: raw, each line of a multi-line value,
    /// base64 at each alignment, URL-encoded, JSON- and XML-escaped: what the
    /// GitHub Actions runner's masker hides, and more), and patterns. This is
    /// the one transcripts use.
    pub fn for_secrets(
        values: impl IntoIterator<Item = String>,
        patterns: &[String],
    ) -> Result<Redactor, Error> {
        let forms = values
            .into_iter()
            .filter(|v| v.len() >= MIN_SECRET_LEN)
            .flat_map(|v| crate::secrets::encodings(&v).into_iter().map(|(_, f)| f))
            .collect::<Vec<_>>();
        Redactor::new(forms, patterns)
    }

    /// The values of environment variables whose names look secret: ending in
    /// `_KEY` or containing `TOKEN`, `SECRET` or `PASSWORD` (case-insensitive),
    /// plus the variables named in `extra_keys` (exact names). `vars` is
    /// usually `std::env::vars()`. Empty and short values are returned too:
    /// [`Redactor::new`] drops them.
    pub fn secret_env_values(
        vars: impl IntoIterator<Item = (String, String)>,
        extra_keys: &[String],
    ) -> Vec<String> {
        vars.into_iter()
            .filter(|(name, _)| name_looks_secret(name) || extra_keys.iter().any(|k| k == name))
            .map(|(_, value)| value)
            .collect()
    }

    /// Redact a whole string at once.
    pub fn redact(&self, text: &str) -> String {
        let out = self.redact_bytes(text.as_bytes());
        // Secrets and REDACTED are whole UTF-8 strings, so redacting valid text
        // keeps it valid. Only a pattern written to match part of a character
        // could break it.
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// Redact a whole byte string at once. [`RedactingWriter`] produces the
    /// same bytes when no line is longer than [`MAX_LINE`].
    pub fn redact_bytes(&self, text: &[u8]) -> Vec<u8> {
        let mut without_literals = Vec::with_capacity(text.len());
        self.redact_literals(text, &mut 0, true, &mut without_literals);
        if !self.by_lines() {
            return without_literals;
        }
        let mut joiner = Joiner::default();
        let mut out = Vec::with_capacity(without_literals.len());
        let mut lines = without_literals.split(|&b| b == b'\n').peekable();
        while let Some(line) = lines.next() {
            let newline = lines.peek().is_some();
            if !newline && line.is_empty() {
                break;
            }
            joiner.line(self, line, newline, line.len() <= MAX_LINE, &mut out);
        }
        joiner.finish(self, &mut out);
        out
    }

    /// Whether output goes through the line stage: for patterns, and for
    /// secrets split across stream-json events.
    fn by_lines(&self) -> bool {
        self.literals.is_some() || !self.patterns.is_empty()
    }

    /// Write a line that left the joiner: patterns, then its newline.
    fn emit_line(&self, line: &[u8], newline: bool, out: &mut Vec<u8>) {
        if self.patterns.is_empty() {
            out.extend_from_slice(line);
        } else {
            self.redact_patterns(line, out);
        }
        if newline {
            out.push(b'\n');
        }
    }

    /// The longest literal secret, in bytes (0 if none).
    pub fn max_secret_len(&self) -> usize {
        self.max_len
    }

    /// Appends `buf` to `out` with literal secrets redacted, and returns how
    /// many leading bytes of `buf` are done. Unless `last`, the bytes after
    /// that must come again, followed by more input: a secret may start there.
    /// `covered` says how many leading bytes of `buf` are inside a secret whose
    /// REDACTED is already written. It is updated for the bytes kept.
    fn redact_literals(
        &self,
        buf: &[u8],
        covered: &mut usize,
        last: bool,
        out: &mut Vec<u8>,
    ) -> usize {
        let Some(re) = &self.literals else {
            out.extend_from_slice(buf);
            return buf.len();
        };
        // A match starting before `decided` has all its bytes here, whichever
        // secret it is, so it cannot become longer later.
        let decided = if last {
            buf.len()
        } else {
            buf.len().saturating_sub(self.max_len - 1)
        };
        if decided == 0 {
            return 0;
        }
        // Everything before `pos` is written out or inside a written REDACTED.
        let mut pos = *covered;
        let mut at = 0;
        // Searching again from one past each match start finds overlapping
        // occurrences too. Those extend the current span, so no part of
        // either secret is left.
        while let Some(m) = re.find_at(buf, at) {
            if m.start() >= decided {
                break;
            }
            if m.start() < pos {
                pos = pos.max(m.end());
            } else {
                out.extend_from_slice(&buf[pos..m.start()]);
                out.extend_from_slice(REDACTED.as_bytes());
                pos = m.end();
            }
            at = m.start() + 1;
        }
        if pos >= decided {
            *covered = pos - decided;
        } else {
            out.extend_from_slice(&buf[pos..decided]);
            *covered = 0;
        }
        decided
    }

    /// Appends `line` (without its newline) to `out`, with pattern matches
    /// redacted. Matches of different patterns that overlap become one
    /// REDACTED.
    fn redact_patterns(&self, line: &[u8], out: &mut Vec<u8>) {
        if !self.pattern_set.is_match(line) {
            out.extend_from_slice(line);
            return;
        }
        let mut spans: Vec<(usize, usize)> = self
            .pattern_set
            .matches(line)
            .iter()
            .flat_map(|i| self.patterns[i].find_iter(line))
            // An empty match hides nothing; redacting it would only insert noise.
            .filter(|m| !m.is_empty())
            .map(|m| (m.start(), m.end()))
            .collect();
        spans.sort_unstable();
        let mut pos = 0;
        for (start, end) in spans {
            if start < pos {
                pos = pos.max(end);
            } else {
                out.extend_from_slice(&line[pos..start]);
                out.extend_from_slice(REDACTED.as_bytes());
                pos = end;
            }
        }
        out.extend_from_slice(&line[pos..]);
    }
}

/// A `Write` adapter that redacts everything written through it before passing
/// it on to the inner writer.
///
/// It works on bytes: output need not be UTF-8, and bytes that are not part of
/// a secret pass through unchanged. It holds back at most one unfinished line
/// (up to [`MAX_LINE`] bytes, and only if there are patterns) plus
/// `max_secret_len - 1` bytes. [`flush`](Write::flush) never lets out held-back
/// bytes that could begin a secret. [`finish`](RedactingWriter::finish) does,
/// after redacting them. Dropping the writer without `finish` also writes the
/// held-back bytes, as `BufWriter` does, but ignores errors.
///
/// Each write costs at least a search through the held-back bytes, so feed it
/// reasonably sized writes (as `io::copy` does), not single bytes. It passes
/// on about one inner `write_all` per 16 KiB of input. After an error from the
/// inner writer, the transcript is incomplete and the writer should be
/// dropped.
pub struct RedactingWriter<W: Write> {
    /// `None` only once `finish` has taken it, so `Drop` has nothing to do.
    inner: Option<W>,
    stages: Stages,
}

/// The redaction state, kept apart from the inner writer so that `finish` can
/// take the writer out first.
struct Stages {
    redactor: Arc<Redactor>,
    /// Bytes that the literal search has not decided yet.
    held: Vec<u8>,
    /// Leading bytes of `held` inside a secret whose REDACTED is written.
    covered: usize,
    /// The unfinished line, waiting for its newline before patterns run.
    line: Vec<u8>,
    /// Events held back while a secret may be split across them.
    joiner: Joiner,
    /// Output of the literal stage. Reused so that writes do not allocate.
    scratch: Vec<u8>,
    /// Output of the pattern stage. Reused too.
    out: Vec<u8>,
}

impl<W: Write> RedactingWriter<W> {
    pub fn new(inner: W, redactor: Arc<Redactor>) -> Self {
        RedactingWriter {
            inner: Some(inner),
            stages: Stages {
                redactor,
                held: Vec::new(),
                covered: 0,
                line: Vec::new(),
                joiner: Joiner::default(),
                scratch: Vec::new(),
                out: Vec::new(),
            },
        }
    }

    /// Flush what is held back (the tail), redacted, and return the inner
    /// writer.
    pub fn finish(mut self) -> io::Result<W> {
        let mut inner = self.inner.take().ok_or_else(finished)?;
        self.stages.push(&mut inner, &[], true)?;
        inner.flush()?;
        Ok(inner)
    }

    /// How many bytes are held back.
    #[cfg(test)]
    fn buffered_len(&self) -> usize {
        self.stages.held.len() + self.stages.line.len() + self.stages.joiner.held_bytes()
    }
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let inner = self.inner.as_mut().ok_or_else(finished)?;
        for chunk in buf.chunks(CHUNK) {
            self.stages.push(inner, chunk, false)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.as_mut().ok_or_else(finished)?.flush()
    }
}

impl<W: Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.as_mut() {
            let result = self
                .stages
                .push(inner, &[], true)
                .and_then(|()| inner.flush());
            if let Err(e) = result {
                tracing::warn!(target: "tgs::transcript", "could not write the end of a transcript: {e}");
            }
        }
    }
}

fn finished() -> io::Error {
    io::Error::other("the redacting writer is finished")
}

impl Stages {
    /// Runs `chunk` through both stages and writes what is decided to `inner`.
    /// With `last`, nothing is held back.
    fn push<W: Write>(&mut self, inner: &mut W, chunk: &[u8], last: bool) -> io::Result<()> {
        self.held.extend_from_slice(chunk);
        self.scratch.clear();
        let done =
            self.redactor
                .redact_literals(&self.held, &mut self.covered, last, &mut self.scratch);
        self.held.drain(..done);
        if !self.redactor.by_lines() {
            return inner.write_all(&self.scratch);
        }
        self.out.clear();
        feed_lines(
            &self.redactor,
            &mut self.joiner,
            &mut self.line,
            &self.scratch,
            &mut self.out,
        );
        if last {
            if !self.line.is_empty() {
                let whole = self.line.len() <= MAX_LINE;
                self.joiner
                    .line(&self.redactor, &self.line, false, whole, &mut self.out);
                self.line.clear();
            }
            self.joiner.finish(&self.redactor, &mut self.out);
        }
        inner.write_all(&self.out)
    }
}

/// Passes `data`, which has no literal secrets left, to the patterns one line at
/// a time. `partial` is the unfinished line from earlier data. Over-long lines
/// go in pieces of `MAX_LINE` bytes.
fn feed_lines(
    r: &Redactor,
    joiner: &mut Joiner,
    partial: &mut Vec<u8>,
    mut data: &[u8],
    out: &mut Vec<u8>,
) {
    while !data.is_empty() {
        let room = MAX_LINE - partial.len();
        let window = &data[..data.len().min(room)];
        let (take, newline) = match memchr::memchr(b'\n', window) {
            Some(i) => (i, true),
            // A full line goes as a piece. If its newline comes next, the
            // piece was the whole line and the output is the same.
            None if window.len() == room => (room, false),
            None => {
                partial.extend_from_slice(data);
                return;
            }
        };
        if partial.is_empty() {
            joiner.line(r, &data[..take], newline, newline, out);
        } else {
            partial.extend_from_slice(&data[..take]);
            joiner.line(r, partial, newline, newline, out);
            partial.clear();
        }
        if newline {
            data = &data[take + 1..];
        } else {
            data = &data[take..];
        }
    }
}

/// How many bytes of lines the joiner holds back at most, whatever comes
/// between two events of a split secret; past this it lets the oldest go.
const JOIN_HOLD: usize = 4 * MAX_LINE;

/// Secrets split across stream-json events.
///
/// An agent streaming its answer (Claude's `--include-partial-messages`)
/// writes it as many events, one JSON line each, whose `delta` carries a
/// piece of the text: `{"type":"stream_event","event":{"type":
/// "content_block_delta","index":0,"delta":{"type":"text_delta","text":
/// "The key is sk-ant-api03-abc"}}}` and then `..."text":"def..."}}}`. In
/// the byte stream the secret is cut by the JSON between the two pieces, so
/// a literal search never sees it whole.
///
/// The joiner reads each line that is such an event (`text_delta`,
/// `thinking_delta`, `input_json_delta`: a `delta` object with a string
/// `text`, `thinking` or `partial_json`), and searches the secrets in the
/// concatenation of the pieces of consecutive events, as the reader of the
/// stream would see the text. A match that spans events is redacted in each
/// event it touches (the piece of the text it covers becomes `[REDACTED]`,
/// and the event is written again as JSON). To do so, an event is held back
/// until the text that follows it is at least `max_secret_len - 1` bytes
/// long: no secret starting in it can still be completed. Lines that are
/// not events wait behind the held ones, so the transcript keeps its order.
///
/// This was chosen over redacting fragments of secrets at event boundaries
/// (the end of an event's text that is a prefix of a secret, the start of
/// the next that is a suffix): streaming models cut text at tokens, a few
/// characters each, so a key comes as many short pieces, each too short to
/// be told from ordinary text; the concatenation finds it whatever the
/// cuts. Fragment redaction is kept only as the fallback for the one case
/// the joiner cannot wait out: when more than [`JOIN_HOLD`] bytes come
/// between two events, the oldest event is let go with the end of its text
/// redacted if it is the start of a secret; the released text is still
/// searched with what follows (`carry`), so the rest of the secret is
/// caught in the next event.
///
/// Patterns (token shapes) see each line alone, as before: they have no
/// maximum length to wait for.
#[derive(Default)]
struct Joiner {
    queue: std::collections::VecDeque<Held>,
    queued_bytes: usize,
    /// The end of the text of events already let go (`max_secret_len - 1`
    /// bytes at most): a secret that started there is found in what follows.
    carry: Vec<u8>,
}

struct Held {
    line: Vec<u8>,
    newline: bool,
    delta: Option<Delta>,
}

struct Delta {
    event: serde_json::Value,
    /// Where the text is in `event` (a JSON pointer).
    pointer: String,
    text: Vec<u8>,
    /// Spans of `text` to redact.
    cuts: Vec<(usize, usize)>,
}

/// The text of a stream-json delta event, and where it is.
fn delta_of(line: &[u8]) -> Option<Delta> {
    // Most lines are not events: a cheap look first.
    if line.trim_ascii_start().first() != Some(&b'{') {
        return None;
    }
    memchr::memmem::find(line, b"_delta\"")?;
    let event: serde_json::Value = serde_json::from_slice(line).ok()?;
    let pointer = find_delta(&event, String::new(), 0)?;
    let text = event.pointer(&pointer)?.as_str()?.as_bytes().to_vec();
    Some(Delta {
        event,
        pointer,
        text,
        cuts: Vec::new(),
    })
}

fn find_delta(v: &serde_json::Value, at: String, depth: usize) -> Option<String> {
    let obj = v.as_object()?;
    if obj
        .get("type")
        .and_then(|t| t.as_str())
        .is_some_and(|t| t.ends_with("_delta"))
    {
        for field in ["text", "thinking", "partial_json"] {
            if obj.get(field).is_some_and(|t| t.is_string()) {
                return Some(format!("{at}/{field}"));
            }
        }
    }
    if depth >= 4 {
        return None;
    }
    obj.iter().find_map(|(k, v)| {
        let k = k.replace('~', "~0").replace('/', "~1");
        find_delta(v, format!("{at}/{k}"), depth + 1)
    })
}

impl Joiner {
    /// Take a line (or a piece of an over-long one: `whole` false) and write
    /// what can go to `out`.
    fn line(&mut self, r: &Redactor, line: &[u8], newline: bool, whole: bool, out: &mut Vec<u8>) {
        let delta = if r.literals.is_some() && whole {
            delta_of(line)
        } else {
            None
        };
        if delta.is_none() && self.queue.is_empty() {
            r.emit_line(line, newline, out);
            return;
        }
        let is_delta = delta.is_some();
        self.queued_bytes += line.len();
        self.queue.push_back(Held {
            line: line.to_vec(),
            newline,
            delta,
        });
        if is_delta {
            self.search(r);
        }
        self.release(r, false, out);
    }

    /// Find the secrets in the text of the held events (after the carry).
    fn search(&mut self, r: &Redactor) {
        let Some(re) = &r.literals else { return };
        let mut joined = self.carry.clone();
        let mut spans = Vec::new();
        for (i, h) in self.queue.iter().enumerate() {
            if let Some(d) = &h.delta {
                spans.push((i, joined.len(), joined.len() + d.text.len()));
                joined.extend_from_slice(&d.text);
            }
        }
        let mut at = 0;
        while let Some(m) = re.find_at(&joined, at) {
            for &(i, a, b) in &spans {
                let (s, e) = (m.start().max(a), m.end().min(b));
                if s < e {
                    if let Some(d) = &mut self.queue[i].delta {
                        d.cuts.push((s - a, e - a));
                    }
                }
            }
            at = m.start() + 1;
        }
    }

    /// Let go what is decided (everything when `all`).
    fn release(&mut self, r: &Redactor, all: bool, out: &mut Vec<u8>) {
        let need = r.max_len.saturating_sub(1);
        while let Some(front) = self.queue.front() {
            let decided = match &front.delta {
                None => true,
                Some(_) => {
                    let after: usize = self
                        .queue
                        .iter()
                        .skip(1)
                        .filter_map(|h| h.delta.as_ref().map(|d| d.text.len()))
                        .sum();
                    after >= need
                }
            };
            let forced = !decided && !all && self.queued_bytes > JOIN_HOLD;
            if !(decided || all || forced) {
                break;
            }
            let mut h = self.queue.pop_front().expect("a front");
            self.queued_bytes -= h.line.len();
            match &mut h.delta {
                None => r.emit_line(&h.line, h.newline, out),
                Some(d) => {
                    if forced {
                        if let Some(n) = r.secret_prefix_at_end(&d.text) {
                            d.cuts.push((d.text.len() - n, d.text.len()));
                        }
                    }
                    self.carry.extend_from_slice(&d.text);
                    let cut = self.carry.len().saturating_sub(need);
                    self.carry.drain(..cut);
                    if d.cuts.is_empty() {
                        r.emit_line(&h.line, h.newline, out);
                    } else {
                        // Written anew, the event passes the literal search
                        // again: its JSON around the text is new bytes.
                        let line = d.rewritten();
                        let mut clean = Vec::with_capacity(line.len());
                        r.redact_literals(&line, &mut 0, true, &mut clean);
                        r.emit_line(&clean, h.newline, out);
                    }
                }
            }
        }
    }

    fn finish(&mut self, r: &Redactor, out: &mut Vec<u8>) {
        self.release(r, true, out);
        self.carry.clear();
    }

    #[cfg(test)]
    fn held_bytes(&self) -> usize {
        self.queued_bytes
    }
}

impl Delta {
    /// The event again, with the cut spans of its text redacted.
    fn rewritten(&mut self) -> Vec<u8> {
        self.cuts.sort_unstable();
        let mut text = Vec::with_capacity(self.text.len());
        let mut pos = 0;
        for &(s, e) in &self.cuts {
            if s < pos {
                pos = pos.max(e);
            } else {
                text.extend_from_slice(&self.text[pos..s]);
                text.extend_from_slice(REDACTED.as_bytes());
                pos = e;
            }
        }
        text.extend_from_slice(&self.text[pos..]);
        let text = String::from_utf8_lossy(&text).into_owned();
        if let Some(t) = self.event.pointer_mut(&self.pointer) {
            *t = serde_json::Value::String(text);
        }
        serde_json::to_vec(&self.event).unwrap_or_else(|_| REDACTED.as_bytes().to_vec())
    }
}

impl Redactor {
    /// The length of the longest end of `text` that begins a secret (at
    /// least 3 bytes, or the whole text), if any.
    fn secret_prefix_at_end(&self, text: &[u8]) -> Option<usize> {
        let longest = self.values.iter().filter_map(|v| {
            let v = v.as_bytes();
            (1..v.len().min(text.len() + 1))
                .rev()
                .find(|&n| text.ends_with(&v[..n]) && (n >= 3 || n == text.len()))
        });
        longest.max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    const GHP: &str = "ghp_[A-Za-z0-9]{20,}";
    const SK_ANT: &str = "sk-ant-[A-Za-z0-9_-]+";

    fn redactor(values: &[&str], patterns: &[&str]) -> Redactor {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        Redactor::new(values.iter().map(|v| v.to_string()), &patterns).expect("valid redactor")
    }

    /// An inner writer the test can still read while the redacting writer owns
    /// a handle to it.
    #[derive(Clone, Default)]
    struct Shared(Rc<RefCell<Vec<u8>>>);

    impl Shared {
        fn contents(&self) -> Vec<u8> {
            self.0.borrow().clone()
        }
    }

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Streams `text` through a writer in chunks of the given sizes (cycled).
    fn stream(r: &Arc<Redactor>, text: &[u8], chunks: &[usize]) -> Vec<u8> {
        let mut w = RedactingWriter::new(Vec::new(), r.clone());
        let mut rest = text;
        for &n in chunks.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (now, later) = rest.split_at(n.clamp(1, rest.len()));
            w.write_all(now).expect("write to a Vec");
            rest = later;
        }
        w.finish().expect("finish into a Vec")
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn redacts_literal_secrets_everywhere() {
        let r = redactor(&["hunter2-secret"], &[]);
        assert_eq!(
            r.redact("a hunter2-secret b\nhunter2-secrethunter2-secret"),
            "a [REDACTED] b\n[REDACTED][REDACTED]"
        );
        assert_eq!(r.redact("nothing here"), "nothing here");
    }

    #[test]
    fn short_empty_and_duplicate_values_are_ignored() {
        let r = redactor(&["", "1", "true", "12345", "123456", "123456"], &[]);
        assert_eq!(r.max_secret_len(), 6);
        assert_eq!(
            r.redact("1 true 12345 x123456x"),
            "1 true 12345 x[REDACTED]x"
        );
        assert!(format!("{r:?}").contains("secrets: 1"));
        assert_eq!(redactor(&[], &[]).max_secret_len(), 0);
    }

    #[test]
    fn invalid_pattern_is_named_in_the_error() {
        let err = Redactor::new(Vec::new(), &["ok".to_string(), "(unclosed".to_string()])
            .expect_err("invalid pattern");
        match err {
            Error::Invalid(msg) => assert!(msg.contains("(unclosed"), "{msg}"),
            other => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn debug_does_not_reveal_secrets() {
        let r = redactor(&["hunter2-secret"], &[GHP]);
        let dbg = format!("{r:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("ghp_"), "{dbg}");
    }

    #[test]
    fn longest_secret_wins_whatever_the_order_given() {
        for values in [["abcdef", "abcdefgh"], ["abcdefgh", "abcdef"]] {
            let r = redactor(&values, &[]);
            assert_eq!(
                r.redact("x abcdefgh y abcdef z"),
                "x [REDACTED] y [REDACTED] z"
            );
        }
    }

    #[test]
    fn overlapping_and_nested_secrets_leave_no_fragment() {
        // Overlapping, neither a prefix of the other.
        let r = redactor(&["abcdef12", "ef123456"], &[]);
        assert_eq!(r.redact("<abcdef123456>"), "<[REDACTED]>");
        // One secret inside another, and a chain of self-overlaps.
        let r = redactor(&["XXsecretvalueYY", "secretvalue", "aaaaaa"], &[]);
        assert_eq!(
            r.redact("-XXsecretvalueYY-secretvalue-"),
            "-[REDACTED]-[REDACTED]-"
        );
        assert_eq!(r.redact("b aaaaaaaaaaa b"), "b [REDACTED] b");
        // Adjacent occurrences stay separate.
        assert_eq!(r.redact("aaaaaa|aaaaaa"), "[REDACTED]|[REDACTED]");
    }

    #[test]
    fn patterns_redact_tokens_per_line() {
        let r = redactor(&[], &[GHP, SK_ANT, "(?s)BEGIN.*END", "^password=.*$"]);
        let text = "use ghp_abcdefghijklmnopqrstuvwxyz now\n\
                    key sk-ant-api03_x-Y9 ok\n\
                    ghp_short stays\n\
                    BEGIN\nEND\n\
                    password=hunter2\n";
        assert_eq!(
            r.redact(text),
            "use [REDACTED] now\nkey [REDACTED] ok\nghp_short stays\nBEGIN\nEND\n[REDACTED]\n"
        );
    }

    #[test]
    fn overlapping_pattern_matches_become_one_redaction() {
        let r = redactor(&[], &["abc123", "123xyz"]);
        assert_eq!(r.redact("-abc123xyz-"), "-[REDACTED]-");
    }

    #[test]
    fn every_split_point_gives_the_same_output() {
        let r = Arc::new(redactor(
            &["hunter2-secret", "hunter2-secret-longer"],
            &[GHP, SK_ANT],
        ));
        let text = b"a hunter2-secret-longer b hunter2-secret\n\
                     tok ghp_abcdefghijklmnopqrstuvwxyz0 and sk-ant-XYZ_12-q end\n\
                     tail hunter2-sec";
        let expected = r.redact_bytes(text);
        assert!(!contains(&expected, b"hunter2-secret"));
        assert!(!contains(&expected, b"ghp_abc"));
        for i in 0..=text.len() {
            for j in i..=text.len() {
                let mut w = RedactingWriter::new(Vec::new(), r.clone());
                for part in [&text[..i], &text[i..j], &text[j..]] {
                    w.write_all(part).expect("write");
                }
                assert_eq!(w.finish().expect("finish"), expected, "split at {i}, {j}");
            }
        }
        assert_eq!(stream(&r, text, &[1]), expected);
    }

    #[test]
    fn binary_bytes_pass_through_except_secrets() {
        let r = Arc::new(redactor(&["hunter2-secret"], &[GHP]));
        let binary: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        let mut text = binary.clone();
        text.extend_from_slice(b"hunter2-secret");
        text.extend_from_slice(&binary);
        let mut expected = binary.clone();
        expected.extend_from_slice(REDACTED.as_bytes());
        expected.extend_from_slice(&binary);
        assert_eq!(r.redact_bytes(&text), expected);
        assert_eq!(stream(&r, &text, &[7, 1, 300]), expected);
    }

    #[test]
    fn flush_keeps_back_a_possible_secret_and_finish_emits_it() {
        let r = Arc::new(redactor(&["hunter2-secret"], &[]));
        let out = Shared::default();
        let mut w = RedactingWriter::new(out.clone(), r.clone());
        w.write_all(b"0123456789 log: hunter2-").expect("write");
        w.flush().expect("flush");
        let so_far = out.contents();
        assert!(!contains(&so_far, b"hunter2"), "{so_far:?}");
        w.write_all(b"secret done\nhunter").expect("write");
        w.flush().expect("flush");
        assert!(!contains(&out.contents(), b"hunter2-secret"));
        w.finish().expect("finish");
        assert_eq!(out.contents(), b"0123456789 log: [REDACTED] done\nhunter");
    }

    #[test]
    fn flush_keeps_back_an_unfinished_line_when_there_are_patterns() {
        let r = Arc::new(redactor(&[], &[GHP]));
        let out = Shared::default();
        let mut w = RedactingWriter::new(out.clone(), r.clone());
        w.write_all(b"line one\ntoken ghp_abcdefghij")
            .expect("write");
        w.flush().expect("flush");
        assert_eq!(out.contents(), b"line one\n");
        w.write_all(b"klmnopqrstuvwxyz").expect("write");
        w.finish().expect("finish");
        assert_eq!(out.contents(), b"line one\ntoken [REDACTED]");
    }

    #[test]
    fn finish_emits_a_short_tail() {
        let r = Arc::new(redactor(&["hunter2-secret"], &[SK_ANT]));
        let mut w = RedactingWriter::new(Vec::new(), r.clone());
        w.write_all(b"abc").expect("write");
        assert_eq!(w.buffered_len(), 3);
        assert_eq!(w.finish().expect("finish"), b"abc");
        assert_eq!(stream(&r, b"x sk-ant-abc", &[4]), b"x [REDACTED]");
    }

    #[test]
    fn dropping_the_writer_emits_the_tail() {
        let r = Arc::new(redactor(&["hunter2-secret"], &[GHP]));
        let out = Shared::default();
        let mut w = RedactingWriter::new(out.clone(), r);
        w.write_all(b"end hunter2-secret").expect("write");
        drop(w);
        assert_eq!(out.contents(), b"end [REDACTED]");
    }

    #[test]
    fn line_of_exactly_max_line_is_matched_whole() {
        let r = Arc::new(redactor(&[], &[GHP]));
        let token = b"ghp_abcdefghijklmnopqrstuvwxyz";
        let mut text = vec![b'x'; MAX_LINE - token.len()];
        text.extend_from_slice(token);
        text.push(b'\n');
        let expected = r.redact_bytes(&text);
        assert!(expected.ends_with(b"x[REDACTED]\n"));
        assert_eq!(stream(&r, &text, &[MAX_LINE - 20, 7, 100]), expected);
    }

    #[test]
    fn over_long_lines_still_hide_every_literal_secret() {
        let secrets = ["hunter2-secret", "multi\nline\nsecret"];
        let mut text = Vec::new();
        // Put secrets across every chunk and piece boundary the writer uses,
        // and tokens well inside the pieces.
        while text.len() < 4 * MAX_LINE {
            let boundary = (text.len() / CHUNK + 1) * CHUNK;
            text.resize(boundary - CHUNK / 2, b'.');
            text.extend_from_slice(b" sk-ant-TOKEN ");
            text.resize(boundary - 5, b'.');
            text.extend_from_slice(secrets[boundary / CHUNK % 2].as_bytes());
        }
        for patterns in [&[][..], &[SK_ANT][..]] {
            let r = Arc::new(redactor(&secrets, patterns));
            let out = stream(&r, &text, &[1000, 3, 4093]);
            for s in secrets {
                assert!(!contains(&out, s.as_bytes()));
            }
            if patterns.is_empty() {
                assert_eq!(out, r.redact_bytes(&text));
            } else {
                assert!(!contains(&out, b"TOKEN"));
            }
        }
    }

    /// Counts what it is given and checks that no secret appears, including
    /// across the boundaries between writes.
    struct SecretFreeSink {
        secrets: Regex,
        tail: Vec<u8>,
        keep: usize,
        total: usize,
    }

    impl Write for SecretFreeSink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.tail.extend_from_slice(buf);
            assert!(!self.secrets.is_match(&self.tail), "secret in the output");
            let cut = self.tail.len().saturating_sub(self.keep);
            self.tail.drain(..cut);
            self.total += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn memory_stays_bounded_whatever_the_output_size() {
        const TOTAL: usize = 100 << 20;
        let secrets = ["hunter2-secret", "another-secret-value-42"];
        let r = Arc::new(redactor(&secrets, &[GHP, SK_ANT]));
        let bound = MAX_LINE + r.max_secret_len() + 16;
        let sink = SecretFreeSink {
            secrets: Regex::new("hunter2-secret|another-secret-value-42").expect("regex"),
            tail: Vec::new(),
            keep: r.max_secret_len(),
            total: 0,
        };
        let mut w = RedactingWriter::new(sink, r.clone());
        // An odd block size, so secrets fall across the writes at varying
        // offsets; one secret is split between the end of a block and the
        // start of the next.
        let mut block = b"value-42 ".to_vec();
        while block.len() < 60_000 {
            block.extend_from_slice(b"lorem ipsum ghp_abcdefghijklmnopqrstuvwxyz hunter2-secret ");
        }
        block.extend_from_slice(b"another-secret-");
        let mut lines = Vec::new();
        while lines.len() < 60_000 {
            lines.extend_from_slice(
                b"compiling crate foo v1.2.3\nkey=sk-ant-abc_DEF-123 hunter2-secret ok\n",
            );
        }
        let mut written = 0;
        for input in [&block, &lines] {
            let mut n = 0;
            while n < TOTAL {
                w.write_all(input).expect("write");
                n += input.len();
                assert!(w.buffered_len() <= bound, "held {} bytes", w.buffered_len());
            }
            written += n;
        }
        let sink = w.finish().expect("finish");
        assert!(sink.total > written / 2);
    }

    #[test]
    fn secret_env_values_picks_secret_looking_names() {
        let vars = [
            ("ANTHROPIC_API_KEY", "sk-ant-value-1"),
            ("GITHUB_TOKEN", "ghp_value_2"),
            ("GH_TOKEN", "ghp_value_3"),
            ("MY_SECRET_THING", "value-4"),
            ("DB_PASSWORD", "value-5"),
            ("db_password", "value-6"),
            ("PATH", "/usr/bin:/bin"),
            ("HOME", "/home/someone"),
            ("KEYBOARD", "us-international"),
            ("DEPLOY_HOOK", "https://hooks.example/abc"),
            ("EMPTY_TOKEN", ""),
            ("SHORT_KEY", "abc"),
        ];
        let vars = || vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        let picked = Redactor::secret_env_values(vars(), &["DEPLOY_HOOK".to_string()]);
        assert_eq!(
            picked,
            [
                "sk-ant-value-1",
                "ghp_value_2",
                "ghp_value_3",
                "value-4",
                "value-5",
                "value-6",
                "https://hooks.example/abc",
                "",
                "abc"
            ]
        );
        let r = Redactor::new(picked, &[]).expect("redactor");
        assert_eq!(r.max_secret_len(), "https://hooks.example/abc".len());
        assert_eq!(
            r.redact("abc value-5 /home/someone"),
            "abc [REDACTED] /home/someone"
        );
        assert_eq!(Redactor::secret_env_values(vars(), &[]).len(), 8);
    }

    const KEY: &str = "sk-ant-test-Zq7Lr2Vx9Wm4Np8Ks3Jd6Hf1Gb5Tc0YaQe";

    fn delta_line(text: &str) -> String {
        serde_json::json!({
            "type": "stream_event",
            "event": {"type": "content_block_delta", "index": 0,
                      "delta": {"type": "text_delta", "text": text}},
            "session_id": "s1"
        })
        .to_string()
            + "\n"
    }

    /// The text the events of `out` carry, joined.
    fn joined_text(out: &[u8]) -> String {
        String::from_utf8_lossy(out)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["event"]["delta"]["text"].as_str().map(str::to_owned))
            .collect()
    }

    fn assert_no_piece(out: &[u8], pieces: &[&str]) {
        for p in pieces {
            assert!(!contains(out, p.as_bytes()), "a piece of the key survived");
        }
    }

    #[test]
    fn a_secret_split_across_two_text_deltas_is_redacted_in_both() {
        let r = Arc::new(Redactor::for_secrets([KEY.to_owned()], &[]).unwrap());
        let (a, b) = KEY.split_at(30);
        let text = format!(
            "{{\"type\":\"system\"}}\n{}{}{}",
            delta_line(&format!("The key is {a}")),
            delta_line(&format!("{b} and that is all.")),
            delta_line("Bye."),
        );
        let whole = r.redact_bytes(text.as_bytes());
        assert_no_piece(&whole, &[a, b]);
        assert_eq!(
            joined_text(&whole),
            "The key is [REDACTED][REDACTED] and that is all.Bye."
        );
        for chunks in [&[1usize][..], &[7, 3], &[64], &[1000]] {
            assert_eq!(stream(&r, text.as_bytes(), chunks), whole);
        }
        // Each output line is still a JSON event.
        for l in String::from_utf8(whole).unwrap().lines() {
            serde_json::from_str::<serde_json::Value>(l).expect("JSON");
        }
    }

    #[test]
    fn a_secret_streamed_a_few_characters_an_event_is_redacted() {
        let r = Arc::new(Redactor::for_secrets([KEY.to_owned()], &[GHP.to_owned()]).unwrap());
        for size in 1..6 {
            let mut text = delta_line("Here: ");
            let pieces: Vec<&str> = KEY
                .as_bytes()
                .chunks(size)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect();
            for p in &pieces {
                text.push_str(&delta_line(p));
            }
            text.push_str("{\"type\":\"ping\"}\n");
            text.push_str(&delta_line(" done"));
            let out = stream(&r, text.as_bytes(), &[13, 5]);
            assert_eq!(out, r.redact_bytes(text.as_bytes()));
            let joined = joined_text(&out);
            assert!(!joined.contains(KEY));
            assert!(joined.starts_with("Here: [REDACTED]"), "{size}");
            assert!(joined.ends_with("[REDACTED] done"), "{size}");
            assert!(String::from_utf8_lossy(&out).contains("\"ping\""));
        }
    }

    #[test]
    fn an_event_written_anew_is_searched_again() {
        // The session id is \u-escaped in the agent's line, which a literal
        // search of the bytes cannot see; writing the event anew (its text
        // holds half of another secret) spells it out, and it is caught.
        let r = Redactor::for_secrets([KEY.to_owned(), "hunter2-other".to_owned()], &[]).unwrap();
        let (a, b) = KEY.split_at(25);
        let first = delta_line(&format!("x {a}"));
        let second = format!(
            "{{\"type\":\"stream_event\",\"event\":{{\"delta\":{{\"type\":\"text_delta\",\"text\":\"{b} y\"}}}},\"session_id\":\"\\u0068unter2-other\"}}\n"
        );
        let out = r.redact_bytes(format!("{first}{second}").as_bytes());
        assert_no_piece(&out, &[a, b, "hunter2-other"]);
        assert!(contains(&out, b"\"session_id\":\"[REDACTED]\""));
    }

    #[test]
    fn thinking_and_tool_input_deltas_are_joined_too() {
        let r = Redactor::for_secrets([KEY.to_owned()], &[]).unwrap();
        let (a, b) = KEY.split_at(11);
        let text = format!(
            "{}\n{}\n",
            serde_json::json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":format!("{{\"cmd\":\"echo {a}")}}),
            serde_json::json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":format!("{b}\"}}")}}),
        );
        let out = r.redact_bytes(text.as_bytes());
        assert_no_piece(&out, &[a, b]);
    }

    #[test]
    fn a_flood_between_the_halves_lets_the_first_go_without_its_fragment() {
        let r = Arc::new(Redactor::for_secrets([KEY.to_owned()], &[]).unwrap());
        let (a, b) = KEY.split_at(20);
        let mut text = delta_line(&format!("start {a}"));
        let noise = format!("{}\n", "x".repeat(1000));
        while text.len() < 2 * JOIN_HOLD {
            text.push_str(&noise);
        }
        text.push_str(&delta_line(&format!("{b} end")));
        let mut w = RedactingWriter::new(Vec::new(), r.clone());
        let mut peak = 0;
        for c in text.as_bytes().chunks(4096) {
            w.write_all(c).unwrap();
            peak = peak.max(w.buffered_len());
        }
        assert!(peak <= JOIN_HOLD + 2 * MAX_LINE, "held {peak}");
        let out = w.finish().unwrap();
        assert_no_piece(&out, &[a, b]);
        assert_eq!(joined_text(&out), "start [REDACTED][REDACTED] end");
    }

    #[test]
    fn encodings_of_secrets_are_redacted() {
        use base64::Engine;
        let r = Redactor::for_secrets(["hunter2-secret-value".to_owned()], &[]).unwrap();
        for blob in [
            "hunter2-secret-value",
            "xhunter2-secret-value!",
            "Basic xyhunter2-secret-value",
        ] {
            let b64 = base64::engine::general_purpose::STANDARD.encode(blob);
            let out = r.redact(&format!("auth {b64} end"));
            assert!(out.contains(REDACTED), "{blob}");
        }
        assert_eq!(r.redact("p=hunter2%2Dsecret"), "p=hunter2%2Dsecret");
        let r = Redactor::for_secrets(["pa ss/w\"rd".to_owned()], &[]).unwrap();
        assert_eq!(r.redact("u=pa%20ss%2Fw%22rd"), "u=[REDACTED]");
        assert_eq!(
            r.redact("{\"p\":\"pa ss/w\\\"rd\"}"),
            "{\"p\":\"[REDACTED]\"}"
        );
    }

    #[derive(Debug, Clone)]
    enum Piece {
        Secret(prop::sample::Index),
        Bytes(Vec<u8>),
    }

    /// Pieces of text: secrets, or filler drawn from the secrets' own alphabet
    /// (so that accidental and overlapping occurrences are common), newlines
    /// and bytes that are not UTF-8.
    fn pieces(filler: &'static [u8]) -> impl Strategy<Value = Vec<Piece>> {
        prop::collection::vec(
            prop_oneof![
                any::<prop::sample::Index>().prop_map(Piece::Secret),
                prop::collection::vec(prop::sample::select(filler), 0..8).prop_map(Piece::Bytes),
            ],
            0..40,
        )
    }

    fn assemble(pieces: &[Piece], secrets: &[String]) -> Vec<u8> {
        let mut text = Vec::new();
        for p in pieces {
            match p {
                Piece::Secret(i) => text.extend_from_slice(i.get(secrets).as_bytes()),
                Piece::Bytes(b) => text.extend_from_slice(b),
            }
        }
        text
    }

    fn secret() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(&b"aab\n"[..]), 6..12)
            .prop_map(|b| String::from_utf8(b).expect("ASCII"))
    }

    proptest! {
        /// A secret cut anywhere into stream-json text deltas, the lines
        /// written in any chunks: no piece of it survives, and the stream
        /// gives what redacting the whole text gives.
        #[test]
        fn secrets_split_across_deltas_never_survive(
            cuts in prop::collection::vec(1usize..47, 0..6),
            chunks in prop::collection::vec(1usize..200, 1..6),
            before in "[a-z ]{0,10}",
        ) {
            let r = Arc::new(Redactor::for_secrets([KEY.to_owned()], &[]).expect("redactor"));
            let mut cuts = cuts.clone();
            cuts.sort_unstable();
            cuts.dedup();
            let mut text = delta_line(&before);
            let mut pos = 0;
            for c in cuts.iter().copied().chain([KEY.len()]) {
                if c > pos {
                    text.push_str(&delta_line(&KEY[pos..c]));
                    pos = c;
                }
            }
            text.push_str(&delta_line(" after"));
            let whole = r.redact_bytes(text.as_bytes());
            prop_assert_eq!(&stream(&r, text.as_bytes(), &chunks), &whole);
            let joined = joined_text(&whole);
            prop_assert!(!joined.contains(KEY));
            prop_assert!(joined.ends_with("[REDACTED] after"));
        }

        /// Literal secrets, split across writes anywhere: the stream gives what
        /// redacting the whole text gives, and no secret survives.
        #[test]
        fn streaming_literals_equals_whole_redaction(
            secrets in prop::collection::vec(secret(), 1..4),
            pieces in pieces(b"aabc\n\x00\xff\xc3"),
            chunks in prop::collection::vec(1usize..24, 1..8),
        ) {
            let text = assemble(&pieces, &secrets);
            let r = Arc::new(Redactor::new(secrets.clone(), &[]).expect("redactor"));
            let whole = r.redact_bytes(&text);
            prop_assert_eq!(&stream(&r, &text, &chunks), &whole);
            for s in &secrets {
                prop_assert!(!contains(&whole, s.as_bytes()), "{:?} survived", s);
            }
        }

        /// With patterns too: the same equality, and no pattern matches any
        /// output line.
        #[test]
        fn streaming_with_patterns_equals_whole_redaction(
            secrets in prop::collection::vec(secret(), 1..3),
            tokens in prop::collection::vec("(ghp_[A-Za-z0-9]{20,26}|sk-ant-[A-Za-z0-9_-]{1,12})", 1..4),
            pieces in pieces(b"ab \n_-\xff"),
            token_at in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
            chunks in prop::collection::vec(1usize..32, 1..8),
        ) {
            let mut text = assemble(&pieces, &secrets);
            for at in &token_at {
                let i = at.index(text.len() + 1);
                let token = at.get(&tokens).as_bytes().to_vec();
                text.splice(i..i, token);
            }
            let patterns = [GHP.to_string(), SK_ANT.to_string()];
            let r = Arc::new(Redactor::new(secrets.clone(), &patterns).expect("redactor"));
            let whole = r.redact_bytes(&text);
            prop_assert_eq!(&stream(&r, &text, &chunks), &whole);
            for s in &secrets {
                prop_assert!(!contains(&whole, s.as_bytes()), "{:?} survived", s);
            }
            let any_pattern = RegexSet::new(patterns).expect("patterns");
            for line in whole.split(|&b| b == b'\n') {
                prop_assert!(!any_pattern.is_match(line), "{:?}", String::from_utf8_lossy(line));
            }
        }
    }
}
