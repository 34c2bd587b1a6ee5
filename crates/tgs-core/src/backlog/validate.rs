//! `backlog validate`: check the file against itself and the base branch's
//! committed tree (as the remote has it: what every worker sees).
//!
//! Checking is a pure function of the file text, the thought index and the
//! time; repairs are applied through the store like any other change, so a
//! repair re-checks the freshest state under the lock. A value tgs does not
//! use as it is (see [`super::values`]) is a problem naming its entry and
//! field and saying what `--fix` sets it to: the value it is read as.

use jiff::Timestamp;
use serde::Serialize;

use super::machine::lease_expired;
use super::values::{Now, Repair};
use super::{store, Backlog, Status};
use crate::thought::{Stage, ThoughtIndex};

/// The kinds of problem, as shown in `--json` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    Unreadable,
    /// An entry that names no thought (no `dir`, or not an object).
    InvalidEntry,
    /// A value of the wrong type or out of bounds (see `values`).
    InvalidValue,
    UnknownStatus,
    UnknownVersion,
    Duplicate,
    MissingFromBase,
    Implemented,
    NoClaimer,
    LeaseExpired,
    UnknownDependency,
}

/// A safe repair for a problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fix {
    /// Drop this later copy of an entry (by position in the file).
    DropDuplicate(usize),
    /// The thought is implemented: record the entry as completed.
    MarkCompleted,
    /// The thought is gone from the tree and nobody works on it: drop it.
    Remove,
    /// Give an abandoned claim back to the queue.
    Requeue,
    /// Write the values read as safe ones (see `values`).
    WriteSafeValue,
}

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    pub message: String,
    #[serde(skip)]
    pub fix: Option<Fix>,
    pub fixable: bool,
}

impl Problem {
    fn new(kind: ProblemKind, dir: Option<&str>, message: String, fix: Option<Fix>) -> Self {
        Problem {
            kind,
            dir: dir.map(str::to_owned),
            message,
            fixable: fix.is_some(),
            fix,
        }
    }

    /// The problem of a value read as a safe one.
    fn of_repair(r: &Repair) -> Problem {
        let kind = match (&r.now, r.field.as_str()) {
            (Now::Dropped, _) => ProblemKind::InvalidEntry,
            (_, "status") => ProblemKind::UnknownStatus,
            _ => ProblemKind::InvalidValue,
        };
        Problem::new(
            kind,
            r.dir.as_deref(),
            r.message(),
            Some(Fix::WriteSafeValue),
        )
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.dir {
            Some(d) => write!(f, "{d}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Check the file's text: values read as safe ones first, then the
/// semantic checks (on the file as read). A file that is not a backlog at
/// all is one `Unreadable` problem.
/// `base` names the tree `index` was read from, for messages (`origin/main`).
/// `archived`: the directories of archived entries (known, for dependencies).
pub fn check(
    text: Option<&str>,
    index: &ThoughtIndex,
    base: &str,
    archived: &std::collections::HashSet<String>,
    now: Timestamp,
) -> Vec<Problem> {
    let Some(text) = text else {
        return Vec::new();
    };
    let b = match store::read_backlog(text) {
        Ok(b) => b,
        Err(e) => {
            return vec![Problem::new(
                ProblemKind::Unreadable,
                None,
                format!("cannot read the file: {}", store::describe_json_error(&e)),
                None,
            )]
        }
    };
    let mut problems = Vec::new();
    if b.version != super::VERSION {
        problems.push(Problem::new(
            ProblemKind::UnknownVersion,
            None,
            format!(
                "version {:?} is not the version this tgs writes (\"1\")",
                b.version
            ),
            None,
        ));
    }
    problems.extend(b.read_repairs.iter().map(Problem::of_repair));
    problems.extend(semantic(&b, index, base, archived, now));
    problems
}

fn semantic(
    b: &Backlog,
    index: &ThoughtIndex,
    base: &str,
    archived: &std::collections::HashSet<String>,
    now: Timestamp,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, e) in b.thoughts.iter().enumerate() {
        let dir = Some(e.dir.as_str());
        if !seen.insert(e.dir.as_str()) {
            problems.push(Problem::new(
                ProblemKind::Duplicate,
                dir,
                format!(
                    "listed more than once (entry {} repeats an earlier one)",
                    i + 1
                ),
                Some(Fix::DropDuplicate(i)),
            ));
            continue;
        }
        match index.find(&e.dir) {
            None => {
                let fix =
                    matches!(e.status, Status::Queued | Status::Failed).then_some(Fix::Remove);
                problems.push(Problem::new(
                    ProblemKind::MissingFromBase,
                    dir,
                    format!("the thought is not on {base} (status {})", e.status),
                    fix,
                ));
            }
            Some(t) if index.stage(t) == Stage::Implemented && e.status != Status::Completed => {
                let fix = matches!(e.status, Status::Queued | Status::Failed)
                    .then_some(Fix::MarkCompleted);
                problems.push(Problem::new(
                    ProblemKind::Implemented,
                    dir,
                    format!("the thought is implemented but the entry is {}", e.status),
                    fix,
                ));
            }
            Some(_) => {}
        }
        if e.status == Status::InProgress {
            if e.claimed_by.as_deref().is_none_or(str::is_empty) {
                problems.push(Problem::new(
                    ProblemKind::NoClaimer,
                    dir,
                    "in progress but claimed by nobody".into(),
                    Some(Fix::Requeue),
                ));
            } else if lease_expired(e, now) {
                problems.push(Problem::new(
                    ProblemKind::LeaseExpired,
                    dir,
                    format!(
                        "in progress by {} but the lease expired{}",
                        e.claimed_by.as_deref().unwrap_or_default(),
                        e.lease_expires_at
                            .map(|t| format!(" at {t}"))
                            .unwrap_or_default()
                    ),
                    Some(Fix::Requeue),
                ));
            }
        }
        for d in &e.depends_on {
            if b.get(d).is_none() && !archived.contains(d) {
                problems.push(Problem::new(
                    ProblemKind::UnknownDependency,
                    dir,
                    format!("depends on {d}, which is not in the backlog"),
                    None,
                ));
            }
        }
    }
    problems
}

/// Apply the safe repairs to a parsed backlog; returns one line per repair.
pub fn repair(
    b: &mut Backlog,
    index: &ThoughtIndex,
    base: &str,
    archived: &std::collections::HashSet<String>,
    now: Timestamp,
) -> Vec<String> {
    let problems = semantic(b, index, base, archived, now);
    // Taken, they are written: the backlog is no longer the file as read.
    let mut done: Vec<String> = std::mem::take(&mut b.read_repairs)
        .iter()
        .map(|r| match &r.dir {
            Some(d) => format!("{d}: {}", r.done()),
            None => r.done(),
        })
        .collect();
    // Drop duplicates from the end so earlier positions stay valid.
    let mut drops: Vec<usize> = problems
        .iter()
        .filter_map(|p| match p.fix {
            Some(Fix::DropDuplicate(i)) => Some(i),
            _ => None,
        })
        .collect();
    drops.sort_unstable();
    for i in drops.into_iter().rev() {
        let e = b.thoughts.remove(i);
        done.push(format!("{}: dropped a duplicate entry", e.dir));
    }
    for p in &problems {
        let Some(dir) = p.dir.as_deref() else {
            continue;
        };
        let repaired = match p.fix {
            Some(Fix::MarkCompleted) => b.thoughts.iter_mut().find(|e| e.dir == dir).map(|e| {
                e.status = Status::Completed;
                e.completed_at = Some(now);
                e.lease_expires_at = None;
                e.not_before = None;
                "marked completed (the thought is implemented)"
            }),
            Some(Fix::Remove) => b
                .remove(dir)
                .ok()
                .map(|_| "removed (the thought is not on the base branch)"),
            Some(Fix::Requeue) => b
                .requeue(
                    dir,
                    Some("requeued by validate --fix: abandoned claim"),
                    None,
                    false,
                )
                .ok()
                .map(|_| "requeued (abandoned claim)"),
            _ => None,
        };
        if let Some(what) = repaired {
            done.push(format!("{dir}: {what}"));
        }
    }
    done
}
