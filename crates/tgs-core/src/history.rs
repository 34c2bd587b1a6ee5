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

use jiff::Timestamp;

use std::path::Path;

use crate::backlog::store::Record;
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

/// The record files a change at `now` appends to: audit, metrics, archive.
pub fn current_files(now: Timestamp) -> [String; 3] {
    let d = day(now);
    [
        format!("{AUDIT_DIR}/{d}.jsonl"),
        format!("{METRICS_DIR}/{d}.csv"),
        format!("{ARCHIVE_DIR}/{d}.jsonl"),
    ]
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
        .filter_map(|l| match serde_json::from_str::<Entry>(l) {
            Ok(e) => Some(e),
            Err(_) => {
                bad += 1;
                None
            }
        })
        .collect();
    (entries, bad)
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

/// Order history files oldest first: the files before the split, then the
/// months and days in order (their names sort by date, a month file of the
/// layout before before the day files of its month: `.` sorts before `/`).
pub fn sort_oldest_first(files: &mut [(String, String)]) {
    files.sort_by(|(a, _), (b, _)| {
        let legacy = |p: &str| p != LEGACY_AUDIT && p != LEGACY_METRICS;
        (legacy(a), a).cmp(&(legacy(b), b))
    });
}

/// The history files of these kinds in a working tree (`root`), oldest first.
pub fn working_tree_files(root: &Path, kinds: &[Record]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for r in roots(kinds) {
        let path = root.join(r);
        if path.is_file() {
            if let Ok(t) = std::fs::read_to_string(&path) {
                out.push((r.to_owned(), t));
            }
            continue;
        }
        collect_files(&path, r, kinds, 2, &mut out);
    }
    sort_oldest_first(&mut out);
    out
}

/// The history files of `kinds` under `dir` (named `rel`), down `depth`
/// levels (a month folder and its day files).
fn collect_files(
    dir: &Path,
    rel: &str,
    kinds: &[Record],
    depth: u32,
    out: &mut Vec<(String, String)>,
) {
    for d in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(name) = d.file_name().into_string() else {
            continue;
        };
        let path = format!("{rel}/{name}");
        if d.file_type().is_ok_and(|t| t.is_dir()) && depth > 1 {
            collect_files(&d.path(), &path, kinds, depth - 1, out);
        } else if kind_of(&path).is_some_and(|k| kinds.contains(&k)) {
            if let Ok(t) = std::fs::read_to_string(d.path()) {
                out.push((path, t));
            }
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
