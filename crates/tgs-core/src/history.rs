//! The state's history, split by month, so that a state change costs the
//! same after years of history as on the first day.
//!
//! A state change reads and rewrites the live backlog and appends to this
//! month's files only: the audit log `tgs/server/audit/<YYYY-MM>.jsonl`,
//! the session metrics `tgs/server/metrics/<YYYY-MM>.csv`, and the archive
//! `tgs/server/archive/<YYYY-MM>.jsonl`, where entries go once nothing more
//! can happen to them (completed, and their pull request merged or closed,
//! or there was none). Views read every month (and the files of the layout
//! before the split, `audit.jsonl` and `metrics.csv`, as the oldest history).
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

/// `2026-11`, the month a change at `t` writes to (UTC).
pub fn month(t: Timestamp) -> String {
    t.strftime("%Y-%m").to_string()
}

pub fn audit_path(month: &str) -> String {
    format!("{AUDIT_DIR}/{month}.jsonl")
}

pub fn metrics_path(month: &str) -> String {
    format!("{METRICS_DIR}/{month}.csv")
}

pub fn archive_path(month: &str) -> String {
    format!("{ARCHIVE_DIR}/{month}.jsonl")
}

/// The record files a change at `now` appends to: audit, metrics, archive.
pub fn current_files(now: Timestamp) -> [String; 3] {
    let m = month(now);
    [audit_path(&m), metrics_path(&m), archive_path(&m)]
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
/// months in order (their names sort by date).
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
        for d in std::fs::read_dir(&path).into_iter().flatten().flatten() {
            let Ok(name) = d.file_name().into_string() else {
                continue;
            };
            let rel = format!("{r}/{name}");
            if kind_of(&rel).is_some_and(|k| kinds.contains(&k)) {
                if let Ok(t) = std::fs::read_to_string(d.path()) {
                    out.push((rel, t));
                }
            }
        }
    }
    sort_oldest_first(&mut out);
    out
}

/// Whether `path` is a month file of `dir` (`<dir>/<YYYY-MM>.<ext>`), for
/// telling history files from anything else under the folder.
pub fn is_month_file(path: &str, dir: &str, ext: &str) -> bool {
    path.strip_prefix(dir)
        .and_then(|r| r.strip_prefix('/'))
        .and_then(|r| r.strip_suffix(ext))
        .and_then(|r| r.strip_suffix('.'))
        .is_some_and(|m| {
            m.len() == 7
                && m.as_bytes()[4] == b'-'
                && m.bytes()
                    .enumerate()
                    .all(|(i, b)| i == 4 || b.is_ascii_digit())
        })
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
                "tgs/server/audit/2026-11.jsonl",
                "tgs/server/metrics/2026-11.csv",
                "tgs/server/archive/2026-11.jsonl"
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
