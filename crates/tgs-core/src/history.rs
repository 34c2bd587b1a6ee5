//! The state's history, split by day, so that a state change costs the
//! same after years of history, and in a busy month, as on the first day.
//!
//! A state change reads and rewrites the live backlog and appends to
//! today's files only: the audit log `tgs/server/audit/<YYYY-MM>/<DD>.jsonl`,
//! the session metrics `tgs/server/metrics/<YYYY-MM>/<DD>.csv`, and the
//! archive `tgs/server/archive/<YYYY-MM>/<DD>.jsonl`, where entries go once
//! nothing more can happen to them (completed, and their pull request merged
//! or closed, or there was none). A change thus rewrites (and pushes) one
//! day's lines and a month folder of at most 31 names, never a file that
//! grows with the history. Views read every file, oldest first (the month
//! files `<YYYY-MM>.<ext>` of the layout before, then the single
//! `audit.jsonl` and `metrics.csv` of the one before that, are read as older
//! history; their names sort before the day files of the same month).
//!
//! Moving an entry to the archive resolves the dependencies on it: a thought
//! that waited for it no longer does (its `depends_on` loses that entry), so
//! claims never need to read the archive.
//!
//! Views read the history as a stream of [`HistoryLine`]s, oldest file first,
//! one line at a time ([`each_working_tree_line`] here, the state branch's
//! through one `git cat-file`), so what they hold is what they show, never a
//! whole file; a [`Months`] range leaves out the months a view does not need.

use jiff::Timestamp;

use std::io::BufRead;
use std::path::Path;

use crate::backlog::{Backlog, Entry, Status};

pub const AUDIT_DIR: &str = "tgs/server/audit";
pub const METRICS_DIR: &str = "tgs/server/metrics";
pub const ARCHIVE_DIR: &str = "tgs/server/archive";
/// The audit log of the layout before the split, read as the oldest history.
pub const LEGACY_AUDIT: &str = "tgs/server/audit.jsonl";
/// The metrics of the layout before the split, read as the oldest history.
pub const LEGACY_METRICS: &str = "tgs/server/metrics.csv";

/// `2026-11`, the month of `t` (UTC).
pub fn month(t: Timestamp) -> String {
    t.strftime("%Y-%m").to_string()
}

/// `2026-11/30`, the day file a change at `t` writes to (UTC), without its
/// folder and extension.
pub fn day(t: Timestamp) -> String {
    t.strftime("%Y-%m/%d").to_string()
}

/// The audit file of `period`: a day (`2026-11/30`) or a month of the layout before (`2026-11`).
pub fn audit_path(period: &str) -> String {
    format!("{AUDIT_DIR}/{period}.jsonl")
}

/// The metrics file of `period` (a day or a month, as for [`audit_path`]).
pub fn metrics_path(period: &str) -> String {
    format!("{METRICS_DIR}/{period}.csv")
}

/// The archive file of `period` (a day or a month, as for [`audit_path`]).
pub fn archive_path(period: &str) -> String {
    format!("{ARCHIVE_DIR}/{period}.jsonl")
}

/// The record files a change at `now` appends to: audit, metrics, archive.
pub fn current_files(now: Timestamp) -> [String; 3] {
    let d = day(now);
    [audit_path(&d), metrics_path(&d), archive_path(&d)]
}

/// Whether nothing more can happen to `e`: completed, and its pull request
/// merged or closed unmerged, or it had none.
pub fn archivable(e: &Entry) -> bool {
    e.status == Status::Completed
        && (e.pr_url.is_none() || matches!(e.pr_state.as_deref(), Some("merged" | "closed")))
}

/// Whether a finished entry counts as done for the thoughts that depend on
/// it: completed with its pull request merged, or without one.
pub fn satisfies_dependents(e: &Entry) -> bool {
    e.status == Status::Completed && (e.pr_url.is_none() || e.pr_state.as_deref() == Some("merged"))
}

/// Move the archivable entries out of `b`, in file order, and take them off
/// the dependencies of the others when they satisfy them. Returns them.
pub fn take_archivable(b: &mut Backlog) -> Vec<Entry> {
    if !b.thoughts.iter().any(archivable) {
        return Vec::new();
    }
    let (gone, live): (Vec<Entry>, Vec<Entry>) = std::mem::take(&mut b.thoughts)
        .into_iter()
        .partition(archivable);
    b.thoughts = live;
    let done: Vec<&str> = gone
        .iter()
        .filter(|e| satisfies_dependents(e))
        .map(|e| e.dir.as_str())
        .collect();
    if !done.is_empty() {
        for e in &mut b.thoughts {
            e.depends_on.retain(|d| !done.contains(&d.as_str()));
        }
    }
    gone
}

/// Parse an archive file: one entry per line; unreadable lines are counted.
pub fn parse_archive(text: &str) -> (Vec<Entry>, usize) {
    let mut bad = 0;
    let entries = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let e = parse_archive_line(l);
            bad += usize::from(e.is_none());
            e
        })
        .collect();
    (entries, bad)
}

/// One line of an archive file (`None`: blank, or no entry). An entry
/// holding a value tgs does not use is read with a safe one instead (see
/// `backlog::values`), as a live one is: it does not vanish from views.
pub fn parse_archive_line(line: &str) -> Option<Entry> {
    if line.trim().is_empty() {
        return None;
    }
    serde_json::from_str(line)
        .ok()
        .or_else(|| crate::backlog::values::repair_entry_json(line))
}

/// The kinds of record files a change appends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    Audit,
    Metrics,
    Archive,
}

impl Record {
    /// This month's file of this kind, for a change at `now`.
    pub fn path(self, now: jiff::Timestamp) -> String {
        let [audit, metrics, archive] = current_files(now);
        match self {
            Record::Audit => audit,
            Record::Metrics => metrics,
            Record::Archive => archive,
        }
    }
}

/// The kind of history file `path` is, if it is one (a month file, or a
/// file of the layout before the split).
pub fn kind_of(path: &str) -> Option<Record> {
    if path == LEGACY_AUDIT || is_month_file(path, AUDIT_DIR, "jsonl") {
        Some(Record::Audit)
    } else if path == LEGACY_METRICS || is_month_file(path, METRICS_DIR, "csv") {
        Some(Record::Metrics)
    } else if is_month_file(path, ARCHIVE_DIR, "jsonl") {
        Some(Record::Archive)
    } else {
        None
    }
}

/// The paths to list for these kinds of history (folders and older files).
pub fn roots(kinds: &[Record]) -> Vec<&'static str> {
    let mut out = Vec::new();
    for k in kinds {
        match k {
            Record::Audit => out.extend([LEGACY_AUDIT, AUDIT_DIR]),
            Record::Metrics => out.extend([LEGACY_METRICS, METRICS_DIR]),
            Record::Archive => out.push(ARCHIVE_DIR),
        }
    }
    out
}

/// Order history files (path, anything) oldest first: the files before the
/// split, then the months and days in order (their names sort by date, a
/// month file of the layout before before the day files of its month: `.`
/// sorts before `/`).
pub fn sort_oldest_first<T>(files: &mut [(String, T)]) {
    files.sort_by(|(a, _), (b, _)| oldest_first(a, b));
}

fn oldest_first(a: &str, b: &str) -> std::cmp::Ordering {
    let month = |p: &str| p != LEGACY_AUDIT && p != LEGACY_METRICS;
    (month(a), a).cmp(&(month(b), b))
}

/// Which months of history a view reads: `[from, until)`, either end open
/// (`YYYY-MM`). The files of the layout before the split hold any month, so
/// they are read unless `legacy` is false.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Months {
    pub from: Option<String>,
    pub until: Option<String>,
    pub legacy: bool,
}

impl Months {
    /// Every month, and the files before the split.
    pub fn all() -> Months {
        Months {
            from: None,
            until: None,
            legacy: true,
        }
    }

    /// The month `m` (`YYYY-MM`) and the ones after it, and the files before the split.
    pub fn from_month(m: &str) -> Months {
        Months {
            from: Some(m.to_owned()),
            ..Months::all()
        }
    }

    /// Only the months before `m` (`YYYY-MM`).
    pub fn before_month(m: &str) -> Months {
        Months {
            from: None,
            until: Some(m.to_owned()),
            legacy: false,
        }
    }

    /// Whether the history file `path` is in the range.
    pub fn wants(&self, path: &str) -> bool {
        match month_of(path) {
            None => self.legacy,
            Some(m) => {
                self.from.as_deref().is_none_or(|f| m >= f)
                    && self.until.as_deref().is_none_or(|u| m < u)
            }
        }
    }
}

/// The month (`YYYY-MM`) of a month or day file of the history, `None` for
/// the files of the layout before the split.
pub fn month_of(path: &str) -> Option<&str> {
    if kind_of(path).is_none() || path == LEGACY_AUDIT || path == LEGACY_METRICS {
        return None;
    }
    // `<dir>/2026-11.jsonl` (a month file) or `<dir>/2026-11/30.jsonl` (a day file).
    let mut parts = path.rsplit('/');
    let name = parts.next()?;
    let month = name.split('.').next()?;
    if month.len() == 7 {
        Some(month)
    } else {
        parts.next()
    }
}

/// Where history file `path` stands in time, as a number that orders files
/// oldest first: `YYYYMMDD` for a day file, `YYYYMM00` for a month file of
/// the layout before (before the days of its month), 0 for the files before
/// the split.
pub fn period_order(path: &str) -> u64 {
    let Some(month) = month_of(path) else {
        return 0;
    };
    let m: u64 = month.replace('-', "").parse().unwrap_or(0);
    let day = path
        .rsplit('/')
        .next()
        .and_then(|name| name.split('.').next())
        .filter(|d| d.len() == 2)
        .and_then(|d| d.parse::<u64>().ok())
        .unwrap_or(0);
    m * 100 + day
}

/// One line of a history file, as the views read them.
#[derive(Debug, Clone, Copy)]
pub struct HistoryLine<'a> {
    pub kind: Record,
    /// The file (`tgs/server/audit/2026-11.jsonl`, or a file before the split).
    pub path: &'a str,
    /// The line's index in its file (0: the first, a CSV file's header).
    pub number: usize,
    /// The text, without its line ending; invalid UTF-8 replaced.
    pub text: &'a str,
}

/// Hand `each` the line `bytes` of history file `path` (line `number`), as
/// `str::lines` would give it: without a final `\r`, invalid UTF-8 replaced.
pub fn visit_line(
    kind: Record,
    path: &str,
    number: usize,
    bytes: &[u8],
    each: &mut dyn FnMut(&HistoryLine),
) {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    // Checking is much faster than replacing, and lines are nearly always valid.
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => std::borrow::Cow::Borrowed(t),
        Err(_) => String::from_utf8_lossy(bytes),
    };
    each(&HistoryLine {
        kind,
        path,
        number,
        text: &text,
    });
}

/// The paths of the history files of these kinds in a working tree
/// (`root`) that `months` wants, oldest first.
pub fn working_tree_paths(root: &Path, kinds: &[Record], months: &Months) -> Vec<String> {
    let mut out = Vec::new();
    for r in roots(kinds) {
        if root.join(r).is_file() {
            out.push(r.to_owned());
            continue;
        }
        collect_paths(&root.join(r), r, kinds, 2, &mut out);
    }
    out.retain(|p| months.wants(p));
    out.sort_by(|a, b| oldest_first(a, b));
    out
}

/// The history files of `kinds` under `dir` (named `rel`), down `depth`
/// levels (a month folder and its day files).
fn collect_paths(dir: &Path, rel: &str, kinds: &[Record], depth: u32, out: &mut Vec<String>) {
    for d in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(name) = d.file_name().into_string() else {
            continue;
        };
        let path = format!("{rel}/{name}");
        if d.file_type().is_ok_and(|t| t.is_dir()) && depth > 1 {
            collect_paths(&d.path(), &path, kinds, depth - 1, out);
        } else if kind_of(&path).is_some_and(|k| kinds.contains(&k)) {
            out.push(path);
        }
    }
}

/// Every line of the history files of these kinds in a working tree that
/// `months` wants, oldest file first, read line by line (unreadable files
/// are left out).
pub fn each_working_tree_line(
    root: &Path,
    kinds: &[Record],
    months: &Months,
    each: &mut dyn FnMut(&HistoryLine),
) {
    let mut buf = Vec::new();
    for path in working_tree_paths(root, kinds, months) {
        let Some(kind) = kind_of(&path) else { continue };
        let Ok(f) = std::fs::File::open(root.join(&path)) else {
            continue;
        };
        let mut r = std::io::BufReader::with_capacity(1 << 16, f);
        let mut number = 0;
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
            visit_line(kind, &path, number, line, each);
            number += 1;
        }
    }
}

/// Whether `path` is a history file of `dir`: a day file
/// (`<dir>/<YYYY-MM>/<DD>.<ext>`) or a month file of the layout before
/// (`<dir>/<YYYY-MM>.<ext>`), for telling history from anything else there.
pub fn is_month_file(path: &str, dir: &str, ext: &str) -> bool {
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let is_month = |m: &str| {
        m.len() == 7 && m.as_bytes()[4] == b'-' && digits(&m[..4], 4) && digits(&m[5..], 2)
    };
    let Some(stem) = path
        .strip_prefix(dir)
        .and_then(|r| r.strip_prefix('/'))
        .and_then(|r| r.strip_suffix(ext))
        .and_then(|r| r.strip_suffix('.'))
    else {
        return false;
    };
    match stem.split_once('/') {
        Some((m, d)) => is_month(m) && digits(d, 2),
        None => is_month(stem),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn months_and_paths() {
        let now = t("2026-11-30T23:59:59Z");
        assert_eq!(
            current_files(now),
            [
                "tgs/server/audit/2026-11/30.jsonl",
                "tgs/server/metrics/2026-11/30.csv",
                "tgs/server/archive/2026-11/30.jsonl"
            ]
        );
        assert!(is_month_file(
            "tgs/server/audit/2026-11/30.jsonl",
            AUDIT_DIR,
            "jsonl"
        ));
        assert!(!is_month_file(
            "tgs/server/audit/2026-11/3.jsonl",
            AUDIT_DIR,
            "jsonl"
        ));
        let mut files: Vec<(String, String)> = [
            "tgs/server/audit/2026-12/01.jsonl",
            "tgs/server/audit/2026-11/30.jsonl",
            "tgs/server/audit/2026-11.jsonl",
            "tgs/server/audit.jsonl",
        ]
        .iter()
        .map(|p| (p.to_string(), String::new()))
        .collect();
        sort_oldest_first(&mut files);
        let order: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            order,
            [
                "tgs/server/audit.jsonl",
                "tgs/server/audit/2026-11.jsonl",
                "tgs/server/audit/2026-11/30.jsonl",
                "tgs/server/audit/2026-12/01.jsonl"
            ]
        );
        assert_eq!(
            month_of("tgs/server/audit/2026-11/30.jsonl"),
            Some("2026-11")
        );
        assert_eq!(period_order("tgs/server/audit/2026-11/30.jsonl"), 20261130);
        assert_eq!(period_order("tgs/server/audit/2026-11.jsonl"), 20261100);
        assert_eq!(period_order("tgs/server/audit.jsonl"), 0);
        assert_eq!(month_of("tgs/server/metrics/2026-10.csv"), Some("2026-10"));
        assert!(Months::from_month("2026-11").wants("tgs/server/audit/2026-11/01.jsonl"));
        assert!(!Months::from_month("2026-12").wants("tgs/server/audit/2026-11/30.jsonl"));
        assert!(is_month_file(
            "tgs/server/audit/2026-11.jsonl",
            AUDIT_DIR,
            "jsonl"
        ));
        assert!(!is_month_file(
            "tgs/server/audit/notes.jsonl",
            AUDIT_DIR,
            "jsonl"
        ));
        assert!(!is_month_file("tgs/server/audit.jsonl", AUDIT_DIR, "jsonl"));
        assert!(!is_month_file(
            "tgs/server/audit/2026-11.csv",
            AUDIT_DIR,
            "jsonl"
        ));
    }

    #[test]
    fn views_read_the_months_they_ask_for_line_by_line() {
        let tmp = tempfile::tempdir().unwrap();
        let put = |rel: &str, text: &[u8]| {
            let p = tmp.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        put(LEGACY_AUDIT, b"old\r\n");
        put(&audit_path("2026-02"), b"feb 1\nfeb \xff2");
        put(&audit_path("2026-01"), b"jan\n\n");
        put(&metrics_path("2026-01"), b"header\nrow\n");
        put(&format!("{AUDIT_DIR}/notes.txt"), b"not history\n");
        let lines = |kinds: &[Record], months: &Months| {
            let mut out = Vec::new();
            each_working_tree_line(tmp.path(), kinds, months, &mut |l| {
                out.push(format!("{} {} {}", l.path, l.number, l.text));
            });
            out
        };
        assert_eq!(
            lines(&[Record::Audit], &Months::all()),
            [
                "tgs/server/audit.jsonl 0 old",
                "tgs/server/audit/2026-01.jsonl 0 jan",
                "tgs/server/audit/2026-01.jsonl 1 ",
                "tgs/server/audit/2026-02.jsonl 0 feb 1",
                "tgs/server/audit/2026-02.jsonl 1 feb \u{FFFD}2",
            ]
        );
        assert_eq!(
            lines(
                &[Record::Audit, Record::Metrics],
                &Months::from_month("2026-02")
            ),
            [
                "tgs/server/audit.jsonl 0 old",
                "tgs/server/audit/2026-02.jsonl 0 feb 1",
                "tgs/server/audit/2026-02.jsonl 1 feb \u{FFFD}2",
            ]
        );
        assert_eq!(
            lines(&[Record::Metrics], &Months::before_month("2026-02")),
            [
                "tgs/server/metrics/2026-01.csv 0 header",
                "tgs/server/metrics/2026-01.csv 1 row"
            ]
        );
        assert_eq!(month_of("tgs/server/metrics/2026-01.csv"), Some("2026-01"));
        assert_eq!(month_of(LEGACY_METRICS), None);
    }

    #[test]
    fn archiving_moves_finished_entries_and_frees_their_dependents() {
        let now = t("2026-01-15T12:00:00Z");
        let mut b = Backlog::default();
        for d in ["a", "b", "c", "d", "e"] {
            b.add(d, d, 0, now);
        }
        b.thoughts[0].status = Status::Completed; // no PR: archived, satisfies
        b.thoughts[1].status = Status::Completed; // PR open: stays
        b.thoughts[1].pr_url = Some("https://x/pull/1".into());
        b.thoughts[2].status = Status::Completed; // PR closed unmerged: archived, does not satisfy
        b.thoughts[2].pr_url = Some("https://x/pull/2".into());
        b.thoughts[2].pr_state = Some("closed".into());
        b.thoughts[3].depends_on = vec!["a".into(), "b".into(), "c".into()];
        let gone = take_archivable(&mut b);
        let dirs = |v: &[Entry]| v.iter().map(|e| e.dir.clone()).collect::<Vec<_>>();
        assert_eq!(dirs(&gone), ["a", "c"]);
        assert_eq!(dirs(&b.thoughts), ["b", "d", "e"]);
        assert_eq!(b.thoughts[1].depends_on, ["b", "c"]);
        assert!(take_archivable(&mut b).is_empty());
        let line = serde_json::to_string(&gone[0]).unwrap();
        let (back, bad) = parse_archive(&format!("{line}\nnot json\n\n"));
        assert_eq!((back.len(), bad), (1, 1));
    }
}
