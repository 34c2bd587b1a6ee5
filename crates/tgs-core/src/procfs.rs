//! What `/proc` says about processes: parents, groups and sessions, read in
//! one pass over `/proc` (never a process per question), parsed by pure
//! functions.
//!
//! Used to find what a session started ([`descendants`]) and who is asking
//! for the forge token ([`descends_through_git`]). Linux only; elsewhere
//! every answer is empty.

use std::collections::HashMap;
use std::path::Path;

/// The fields of `/proc/<pid>/stat` tgs uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub pid: u32,
    pub ppid: u32,
    pub pgid: u32,
    pub sid: u32,
    /// Ended and not yet reaped by its parent (state `Z`): it holds nothing
    /// and cannot be killed.
    pub zombie: bool,
    /// Clock ticks after boot when the process started: with the pid, an
    /// identity that pid reuse cannot fake.
    pub start: u64,
}

/// Parse one `/proc/<pid>/stat` line. The command name (field 2) is in
/// parentheses and may hold spaces and parentheses itself, so fields are
/// counted from the *last* `)`.
pub fn parse_stat(line: &str) -> Option<Stat> {
    let (head, rest) = line.rsplit_once(')')?;
    let pid = head.split_once(" (")?.0.trim().parse().ok()?;
    // rest: " S ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
    // cmajflt utime stime cutime cstime priority nice num_threads
    // itrealvalue starttime ..." (state is field 3 of the whole line).
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| fields.get(i)?.parse().ok();
    Some(Stat {
        pid,
        zombie: *fields.first()? == "Z",
        ppid: num(1)? as u32,
        pgid: num(2)? as u32,
        sid: num(3)? as u32,
        start: num(19)?,
    })
}

/// One process's stat, if it still exists.
pub fn stat(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Every process visible now (one read of `/proc`).
pub fn all() -> Vec<Stat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(stat)
        .collect()
}

/// The processes under `root` (its children, theirs, ...), not `root`
/// itself, from a snapshot such as [`all`].
pub fn descendants(snapshot: &[Stat], root: u32) -> Vec<Stat> {
    let mut children: HashMap<u32, Vec<&Stat>> = HashMap::new();
    for s in snapshot {
        children.entry(s.ppid).or_default().push(s);
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for c in children.get(&p).into_iter().flatten() {
            // A pid is its own parent only in a broken snapshot; never loop.
            if c.pid != root && !out.iter().any(|o: &Stat| o.pid == c.pid) {
                out.push(**c);
                todo.push(c.pid);
            }
        }
    }
    out
}

/// Whether `peer` was started, through any number of processes, by a `git`
/// (the program at `git`) that is a child of `ancestor` (tgs). An agent is also tgs's descendant,
/// but through the agent's own program, never directly through git.
pub fn descends_through_git(peer: u32, ancestor: u32, git: &Path) -> bool {
    let mut pid = peer;
    for _ in 0..32 {
        let Some(s) = stat(pid) else {
            return false;
        };
        if s.ppid == ancestor {
            return same_file(&format!("/proc/{pid}/exe"), git);
        }
        if s.ppid <= 1 {
            return false;
        }
        pid = s.ppid;
    }
    false
}

/// Whether the link `link` (a `/proc/<pid>/exe`) resolves to `path`.
fn same_file(link: &str, path: &Path) -> bool {
    match (std::fs::canonicalize(link), std::fs::canonicalize(path)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let line =
            "4242 (a (b) c) S 17 4242 4240 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100";
        let s = parse_stat(line).unwrap();
        assert_eq!(
            s,
            Stat {
                pid: 4242,
                ppid: 17,
                pgid: 4242,
                sid: 4240,
                zombie: false,
                start: 987654
            }
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn descendants_follow_parents_through_every_generation() {
        let s = |pid, ppid| Stat {
            pid,
            ppid,
            pgid: pid,
            sid: pid,
            zombie: false,
            start: 0,
        };
        let snap = [s(10, 1), s(11, 10), s(12, 11), s(13, 1), s(14, 12)];
        let mut got: Vec<u32> = descendants(&snap, 10).iter().map(|x| x.pid).collect();
        got.sort();
        assert_eq!(got, [11, 12, 14]);
        assert!(descendants(&snap, 13).is_empty());
    }

    #[test]
    fn this_process_is_read_back_and_is_not_gits() {
        let me = std::process::id();
        let s = stat(me).unwrap();
        assert_eq!(s.pid, me);
        assert!(!descends_through_git(me, s.ppid, Path::new("/usr/bin/git")));
    }
}
