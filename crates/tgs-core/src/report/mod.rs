//! Views of the server's state for people: the status of the backlog, metrics
//! from `metrics.csv`, session transcripts, and a static HTML site.
//!
//! Everything here is a pure function of what [`load_records`], the backlog
//! and [`list_transcripts`] return, so the CLI commands and the site show the
//! same figures and tests can check them without a repository.

pub mod index;
pub mod metrics;
pub mod site;
pub mod status;

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use jiff::Timestamp;
use regex::Regex;
use serde::Serialize;

use crate::backlog::store::Record;
use crate::backlog::target::StateTarget;
use crate::history::{HistoryLine, Months};
use crate::records::{self, AuditRecord, MetricsRow};
use crate::worktree::LOGS_DIR;

pub use index::HistoryIndex;
pub use metrics::{compute_metrics, MetricsAcc, MetricsSummary};
pub use status::{compute_status, StatusBuilder, StatusReport};

/// The server's records: the audit log and the per-session metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Records {
    pub audit: Vec<AuditRecord>,
    pub metrics: Vec<MetricsRow>,
    /// Lines of either file that did not parse (skipped, not fatal).
    pub skipped: usize,
}

/// Read the records under `root` (a working tree's files), every month.
pub fn load_records(root: &Path) -> Records {
    let mut r = Records::default();
    let kinds = [Record::Audit, Record::Metrics];
    crate::history::each_working_tree_line(root, &kinds, &Months::all(), &mut |l| r.push_line(l));
    r
}

impl Records {
    /// Take in one line of an audit or metrics file (read oldest first);
    /// blank lines and the CSV header are passed over, unreadable lines counted.
    pub fn push_line(&mut self, l: &HistoryLine) {
        match parsed(l) {
            Parsed::Audit(a) => self.audit.push(a),
            Parsed::Metrics(m) => self.metrics.push(m),
            Parsed::Bad => self.skipped += 1,
            Parsed::Nothing => {}
        }
    }
}

/// What one history line holds, for the views.
#[derive(Debug)]
pub enum Parsed {
    Audit(AuditRecord),
    Metrics(MetricsRow),
    /// An audit or metrics line that does not parse (skipped, and counted).
    Bad,
    /// A blank line, a CSV header, or a file of another kind.
    Nothing,
}

/// Parse one line of an audit or metrics file.
pub fn parsed(l: &HistoryLine) -> Parsed {
    let row = match l.kind {
        _ if l.text.trim().is_empty() => return Parsed::Nothing,
        Record::Audit => records::parse_audit_line(l.text).map(Parsed::Audit),
        Record::Metrics if l.number == 0 => return Parsed::Nothing,
        Record::Metrics => records::parse_metrics_line(l.text).map(Parsed::Metrics),
        Record::Archive => return Parsed::Nothing,
    };
    row.unwrap_or(Parsed::Bad)
}

/// The metrics of a state's history over the sessions that ended on or
/// after `since` (UTC day), and how many lines read did not parse. Only the
/// metrics files are read, a line at a time. With `since`, the months from
/// its own on hold every session of the window (a row is written when its
/// session ends, so to a month no earlier than the one it ended in); the
/// months before are read only for the first tries of the thoughts with a
/// session in the window (see [`metrics`]), and of their lines only those
/// thoughts' are parsed.
pub fn read_metrics(
    state: &StateTarget,
    since: Option<jiff::civil::Date>,
) -> Result<(MetricsSummary, usize), crate::Error> {
    let mut acc = MetricsAcc::new(since);
    let mut skipped = 0;
    let kinds = [Record::Metrics];
    let month = since.map(|d| d.strftime("%Y-%m").to_string());
    let window = month
        .as_deref()
        .map_or_else(Months::all, Months::from_month);
    state.each_history_line(&kinds, &window, &mut |l| match parsed(l) {
        Parsed::Metrics(r) => acc.push_at(&r, history_order(l)),
        Parsed::Bad => skipped += 1,
        _ => {}
    })?;
    if let Some(m) = &month {
        state.each_history_line(&kinds, &Months::before_month(m), &mut |l| {
            if l.number == 0 || !acc.wants_earlier(&records::metrics_line_thought(l.text)) {
                return;
            }
            if let Parsed::Metrics(r) = parsed(l) {
                acc.push_at(&r, history_order(l));
            }
        })?;
    }
    Ok((acc.summary(), skipped))
}

/// A line's place in the whole history, whatever order the files are read
/// in: the files before the split first, then the months and days, then the line.
fn history_order(l: &HistoryLine) -> u64 {
    (crate::history::period_order(l.path) << 32) | (l.number as u64 & 0xffff_ffff)
}

/// Escape text for HTML element content and quoted attribute values.
/// Every piece of thought text (titles, errors, logs) goes through this.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    escape_html_into(&mut out, s);
    out
}

/// [`escape_html`], appended to `out`.
pub fn escape_html_into(out: &mut String, s: &str) {
    // Runs of plain text are copied whole: pages are mostly such runs.
    let mut plain = 0;
    for (i, c) in s.char_indices() {
        let with = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            '"' => "&quot;",
            '\'' => "&#39;",
            // Control characters other than tab/newline have no business in a
            // page and NUL is a parse error; make them visible instead.
            c if c.is_control() && c != '\n' && c != '\t' => "\u{FFFD}",
            _ => continue,
        };
        out.push_str(&s[plain..i]);
        out.push_str(with);
        plain = i + c.len_utf8();
    }
    out.push_str(&s[plain..]);
}

/// `url` if it is a plain http(s) link, for an `href`; `None` otherwise
/// (`javascript:`, `data:`, relative paths, anything with spaces or controls).
pub fn safe_http_url(url: &str) -> Option<&str> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let scheme_ok = lower.starts_with("https://") || lower.starts_with("http://");
    let clean = !url.chars().any(|c| {
        c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '<' | '>' | '`' | '\\')
    });
    let has_host = url
        .split_once("://")
        .is_some_and(|(_, rest)| !rest.is_empty() && !rest.starts_with('/'));
    (scheme_ok && clean && has_host).then_some(url)
}

/// A duration for people: `45s`, `5m30s`, `2h05m` (negative: `-5m00s`).
pub fn human_duration(secs: i64) -> String {
    let sign = if secs < 0 { "-" } else { "" };
    let s = secs.unsigned_abs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{sign}{h}h{m:02}m")
    } else if m > 0 {
        format!("{sign}{m}m{sec:02}s")
    } else {
        format!("{sign}{sec}s")
    }
}

/// The thought's name: the last component of its directory.
pub fn thought_name(dir: &str) -> &str {
    dir.trim_end_matches('/').rsplit('/').next().unwrap_or(dir)
}

/// One session's transcript: the whole file under `tgs/server/logs` where
/// the session ran, and/or its kept end on the state branch (see `archive`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transcript {
    /// The thought name the file is for.
    pub name: String,
    /// The file name.
    pub file: String,
    /// The whole transcript in this clone, if the session ran here.
    pub path: Option<PathBuf>,
    /// The blob id of the kept end on the state branch, once recorded.
    pub kept: Option<String>,
    /// When the session started (from the file name, to the second).
    pub started: Timestamp,
    /// The `-N` suffix the runner adds when two sessions start in the same second (1 without).
    pub seq: u32,
    /// The local file's size (`None` when only the kept copy is here).
    pub bytes: Option<u64>,
}

/// `<name>-<UTC %Y%m%dT%H%M%SZ>[-N].log`, as the runner names transcripts.
fn transcript_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^(.+)-(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z(?:-(\d+))?\.log$")
            .expect("valid regex")
    })
}

/// Parse a transcript file name into (name, start, seq).
pub fn parse_transcript_name(file: &str) -> Option<(String, Timestamp, u32)> {
    let c = transcript_re().captures(file)?;
    let g = |i: usize| c.get(i).map_or("", |m| m.as_str());
    let started = format!("{}-{}-{}T{}:{}:{}Z", g(2), g(3), g(4), g(5), g(6), g(7))
        .parse()
        .ok()?;
    let seq = c.get(8).map_or(Some(1), |m| m.as_str().parse().ok())?;
    Some((g(1).to_owned(), started, seq))
}

/// Every transcript: the files under `root`'s logs folder and the kept
/// copies `kept` lists (`(path, blob id, bytes)` on the state branch, as
/// [`crate::backlog::target::StateTarget::list`] gives them), one entry per
/// session, sorted by thought name, then by start time.
pub fn list_all_transcripts(root: &Path, kept: &[(String, String, u64)]) -> Vec<Transcript> {
    let mut by_file: BTreeMap<String, Transcript> = BTreeMap::new();
    let blank = |file: &str| {
        let (name, started, seq) = parse_transcript_name(file)?;
        Some(Transcript {
            name,
            file: file.to_owned(),
            path: None,
            kept: None,
            started,
            seq,
            bytes: None,
        })
    };
    for (path, oid, _) in kept {
        let Some(file) = crate::archive::file_of(path) else {
            continue;
        };
        if let Some(t) = blank(file) {
            by_file.entry(t.file.clone()).or_insert(t).kept = Some(oid.clone());
        }
    }
    for d in std::fs::read_dir(root.join(LOGS_DIR))
        .into_iter()
        .flatten()
        .flatten()
    {
        let Ok(file) = d.file_name().into_string() else {
            continue;
        };
        let Some(meta) = d.metadata().ok().filter(|m| m.is_file()) else {
            continue;
        };
        if let Some(t) = blank(&file) {
            let t = by_file.entry(t.file.clone()).or_insert(t);
            t.path = Some(d.path());
            t.bytes = Some(meta.len());
        }
    }
    let mut out: Vec<Transcript> = by_file.into_values().collect();
    out.sort_by(|a, b| {
        (&a.name, a.started, a.seq, &a.file).cmp(&(&b.name, b.started, b.seq, &b.file))
    });
    out
}

/// The transcripts of thought `name`, oldest first (see [`list_all_transcripts`]).
pub fn list_transcripts(
    root: &Path,
    kept: &[(String, String, u64)],
    name: &str,
) -> Vec<Transcript> {
    list_all_transcripts(root, kept)
        .into_iter()
        .filter(|t| t.name == name)
        .collect()
}

/// The text of a kept transcript: its blob read with `git cat-file`, unpacked.
pub fn kept_text(repo: &crate::repo::Repo, oid: &str) -> std::io::Result<Vec<u8>> {
    let gz = repo
        .git()
        .cmd(["cat-file", "blob", oid])
        .run()
        .map_err(std::io::Error::other)?;
    crate::archive::unpack(&gz)
}

/// How much of a transcript's end [`tail_lines`] reads at most.
pub const TAIL_BYTES: u64 = 64 * 1024;
/// How long a line of an excerpt may be (longer ones are cut).
pub const TAIL_LINE_CHARS: usize = 400;

/// The last `n` lines of a file, reading at most [`TAIL_BYTES`] from its end
/// (transcripts can be huge). Invalid UTF-8 is replaced, long lines are cut.
pub fn tail_lines(path: &Path, n: usize) -> std::io::Result<Vec<String>> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let start = len.saturating_sub(TAIL_BYTES);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.take(TAIL_BYTES).read_to_end(&mut buf)?;
    Ok(last_lines(&buf, start > 0, n))
}

/// The last `n` lines of `text` (at most [`TAIL_BYTES`] of its end), as
/// [`tail_lines`] gives them; `cut`: the text starts mid-line.
pub fn tail_lines_of(text: &[u8], n: usize) -> Vec<String> {
    let start = text.len().saturating_sub(TAIL_BYTES as usize);
    last_lines(&text[start..], start > 0, n)
}

fn last_lines(buf: &[u8], cut: bool, n: usize) -> Vec<String> {
    let text = String::from_utf8_lossy(buf);
    let mut lines: Vec<&str> = text.lines().collect();
    // Reading from the middle of the file: the first line is a fragment.
    if cut && lines.len() > 1 {
        lines.remove(0);
    }
    let skip = lines.len().saturating_sub(n);
    lines[skip..]
        .iter()
        .map(|l| {
            if l.chars().count() > TAIL_LINE_CHARS {
                let mut s: String = l.chars().take(TAIL_LINE_CHARS).collect();
                s.push('…');
                s
            } else {
                (*l).to_owned()
            }
        })
        .collect()
}

/// `s` in at most `max` characters, `…` ending one that was cut (the
/// dashboard's and the index's short texts).
pub(crate) fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_html_neutralizes_hostile_strings() {
        assert_eq!(
            escape_html("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
        assert_eq!(
            escape_html("\"><img src=x onerror=alert(1)>"),
            "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"
        );
        assert_eq!(escape_html("' onmouseover='x"), "&#39; onmouseover=&#39;x");
        assert_eq!(escape_html("a & b &amp;"), "a &amp; b &amp;amp;");
        assert_eq!(
            escape_html("nul\0 esc\u{1b}[31m"),
            "nul\u{FFFD} esc\u{FFFD}[31m"
        );
        assert_eq!(escape_html("tab\tnew\nline ünï"), "tab\tnew\nline ünï");
        for hostile in ["<script>", "\"><img onerror=alert(1)>", "</pre><iframe>"] {
            let e = escape_html(hostile);
            assert!(!e.contains(['<', '>', '"']), "{e}");
        }
    }

    #[test]
    fn only_http_links_are_allowed() {
        assert_eq!(
            safe_http_url("https://github.com/o/r/pull/1"),
            Some("https://github.com/o/r/pull/1")
        );
        assert!(safe_http_url("HTTP://example.com/x").is_some());
        for bad in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            " javascript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "https://x.org/\"><script>",
            "https://x.org/a b",
            "https:///evil",
            "https://",
            "//evil.example/x",
            "vbscript:x",
            "ftp://x.org/",
            "../index.html",
            "",
        ] {
            assert_eq!(safe_http_url(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations_for_people() {
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(45), "45s");
        assert_eq!(human_duration(330), "5m30s");
        assert_eq!(human_duration(7500), "2h05m");
        assert_eq!(human_duration(-300), "-5m00s");
    }

    #[test]
    fn transcript_names() {
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(
            parse_transcript_name("abc1234-add-x-20260115T120000Z.log"),
            Some(("abc1234-add-x".into(), t("2026-01-15T12:00:00Z"), 1))
        );
        assert_eq!(
            parse_transcript_name("abc1234-add-x-20260115T120000Z-3.log"),
            Some(("abc1234-add-x".into(), t("2026-01-15T12:00:00Z"), 3))
        );
        assert_eq!(
            parse_transcript_name("abc1234-x-20261315T120000Z.log"),
            None
        );
        assert_eq!(parse_transcript_name("abc1234-x.log"), None);
        assert_eq!(
            parse_transcript_name("abc1234-x-20260115T120000Z.txt"),
            None
        );
    }

    #[test]
    fn transcripts_sorted_and_tailed() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = tmp.path().join(LOGS_DIR);
        std::fs::create_dir_all(&logs).unwrap();
        for f in [
            "abc-x-20260115T120000Z-2.log",
            "abc-x-20260114T090000Z.log",
            "abc-x-20260115T120000Z.log",
            "abc-x-y-20260101T000000Z.log",
            "notes.txt",
        ] {
            std::fs::write(logs.join(f), f).unwrap();
        }
        // Kept copies on the state branch: one of a session that ran here
        // too (merged with the file), one that ran elsewhere.
        let kept = [
            (
                "tgs/server/transcripts/2026-01/abc-x-20260114T090000Z.log.gz".to_owned(),
                "1111111111111111111111111111111111111111".to_owned(),
                40,
            ),
            (
                "tgs/server/transcripts/2026-01/abc-x-20260113T080000Z.log.gz".to_owned(),
                "2222222222222222222222222222222222222222".to_owned(),
                40,
            ),
            ("tgs/server/transcripts/junk".to_owned(), "3".repeat(40), 1),
        ];
        let got = list_transcripts(tmp.path(), &kept, "abc-x");
        let files: Vec<&str> = got.iter().map(|t| t.file.as_str()).collect();
        assert_eq!(
            files,
            [
                "abc-x-20260113T080000Z.log",
                "abc-x-20260114T090000Z.log",
                "abc-x-20260115T120000Z.log",
                "abc-x-20260115T120000Z-2.log"
            ]
        );
        assert_eq!(
            (got[0].path.is_some(), got[0].kept.is_some()),
            (false, true)
        );
        assert_eq!((got[1].path.is_some(), got[1].kept.is_some()), (true, true));
        assert_eq!(
            (got[2].path.is_some(), got[2].kept.is_some()),
            (true, false)
        );
        assert_eq!(got[1].bytes, Some(26));
        assert_eq!(got[0].bytes, None);
        assert_eq!(list_transcripts(tmp.path(), &[], "abc-x-y").len(), 1);
        assert!(list_transcripts(&tmp.path().join("nope"), &[], "abc-x").is_empty());

        let big = tmp.path().join("big.log");
        let mut text = String::new();
        for i in 0..20_000 {
            text.push_str(&format!("line {i}\n"));
        }
        text.push_str(&"x".repeat(1000));
        std::fs::write(&big, text).unwrap();
        let tail = tail_lines(&big, 3).unwrap();
        assert_eq!(tail[0], "line 19998");
        assert_eq!(tail[1], "line 19999");
        assert_eq!(tail[2].chars().count(), TAIL_LINE_CHARS + 1);
        assert_eq!(tail_lines_of(&std::fs::read(&big).unwrap(), 3), tail);
    }

    #[test]
    fn missing_records_are_empty() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(load_records(tmp.path()), Records::default());
        std::fs::create_dir_all(tmp.path().join("tgs/server")).unwrap();
        std::fs::write(
            tmp.path().join(records::METRICS_PATH),
            format!("{}\nbroken\n", records::METRICS_HEADER),
        )
        .unwrap();
        std::fs::write(tmp.path().join(records::AUDIT_PATH), "{}\n").unwrap();
        let r = load_records(tmp.path());
        assert!(r.metrics.is_empty() && r.audit.is_empty());
        assert_eq!(r.skipped, 2);
    }
}
