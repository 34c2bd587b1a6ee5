//! The server-mode backlog: its file format and its state machine.
//!
//! Every change is a pure function of the old [`Backlog`] (see the methods in
//! `machine.rs`), so a writer that lost a race can re-apply the same change to
//! a fresher state instead of merging JSON text. [`store`] does the I/O.

mod machine;
pub mod migrate;
mod revision;
pub mod shared;
pub mod store;
pub mod target;
mod transitions;
pub mod turn;
pub mod validate;
pub mod values;

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

pub use machine::{
    first_line, lease_end, lease_expired, ready_to_claim, AddOutcome, Claim, Order, DEFAULT_LEASE,
};
pub use revision::{InlineNote, ReviewLoop, Revision, RevisionDone, RevisionKind, Seen};
pub use transitions::allowed_actions;

/// The schema version this build reads and writes.
pub const VERSION: &str = "1";

/// The whole backlog file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backlog {
    #[serde(deserialize_with = "version_string")]
    pub version: String,
    #[serde(default)]
    pub thoughts: Vec<Entry>,
    /// Agents no worker may start sessions with for now, by agent name:
    /// the provider refused (rate limits, credit, credentials). Shared by
    /// every worker through the state.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pauses: BTreeMap<String, Pause>,
    /// What today's sessions used, for the daily budgets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Fields this build does not know, kept as they were.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
    /// The values of the file as read that tgs does not use as they were
    /// and read as safe ones (see [`values`]); never written. A change
    /// that takes them (`validate --fix`) writes the file even when nothing
    /// else changed.
    #[serde(skip)]
    pub read_repairs: Vec<values::Repair>,
}

impl Default for Backlog {
    fn default() -> Self {
        Backlog {
            version: VERSION.into(),
            thoughts: Vec::new(),
            pauses: BTreeMap::new(),
            usage: None,
            extra: BTreeMap::new(),
            read_repairs: Vec::new(),
        }
    }
}

/// Sessions started and cost reported on one UTC day, by every worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// `2026-11-30`.
    pub day: String,
    #[serde(default)]
    pub sessions: u32,
    /// A sum an earlier tgs let overflow was written as `null`: it reads
    /// as [`values::MAX_COST_USD`] (the day's budget is spent), never as an
    /// error that makes the whole state unreadable.
    #[serde(default)]
    pub cost_usd: f64,
}

/// Why and until when an agent is paused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// `rate_limited` (it lifts at `until`) or `unavailable` (credit,
    /// credentials, permissions: until a human acts).
    pub kind: String,
    /// When claiming may start again; `None`: when `tgs server resume` says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
    /// What the provider said, redacted and clipped.
    pub reason: String,
    pub since: Timestamp,
    /// Pauses in a row without a session in between (the cool-down grows with them).
    #[serde(default)]
    pub strikes: u32,
    /// Who paused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// The status of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Queued,
    InProgress,
    /// The work is verified and its branch pushed; what is left is the
    /// hand-over (the pull request), retried without another agent session.
    HandoverPending,
    Completed,
    Failed,
    /// The agent asked its humans a question and stopped: the entry waits
    /// for an answer (`backlog answer`, a `/tgs answer` comment, MCP), then
    /// is queued again. See [`Question`].
    NeedsInput,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Queued,
        Status::InProgress,
        Status::HandoverPending,
        Status::Completed,
        Status::Failed,
        Status::NeedsInput,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::InProgress => "in_progress",
            Status::HandoverPending => "handover_pending",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::NeedsInput => "needs_input",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thought in the backlog. The first seven fields are the research
/// document's schema and always written (nulls included) so that files stay
/// familiar; the rest are written only when set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub dir: String,
    #[serde(default)]
    pub title: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub priority: i64,
    #[serde(default = "queued")]
    pub status: Status,
    #[serde(default)]
    pub added_at: Option<Timestamp>,
    #[serde(default)]
    pub started_at: Option<Timestamp>,
    #[serde(default)]
    pub completed_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_expires_at: Option<Timestamp>,
    /// The agent the current (or last) claim was made for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The cost agents reported over all attempts (USD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// The identity of the current claim: only the session that holds it may
    /// record its end (a lease taken over by another session changes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_id: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_zero"
    )]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The commit of `branch` that was verified and handed over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
    /// Hand-overs tried since the branch was pushed (not agent attempts).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_zero"
    )]
    pub handover_tries: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr_url: Option<String>,
    /// What became of the PR, as `sync-prs` last saw it: open, merged, closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr_state: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub depends_on: Vec<String>,
    /// The review loop of its open pull request: revisions asked for and done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<ReviewLoop>,
    /// The work an attempt left unfinished, kept for the next one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wip: Option<Wip>,
    /// The questions its agents asked, oldest first, with their answers
    /// (the last one unanswered while the entry is `needs_input`).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub questions: Vec<Question>,
    /// Fields this build does not know, kept as they were.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Entry {
    pub fn new(dir: String, title: String, priority: i64, now: Timestamp) -> Entry {
        Entry {
            dir,
            title,
            priority,
            status: Status::Queued,
            added_at: Some(now),
            started_at: None,
            completed_at: None,
            claimed_by: None,
            claimed_at: None,
            lease_expires_at: None,
            agent: None,
            cost_usd: None,
            claim_id: None,
            attempts: 0,
            not_before: None,
            last_error: None,
            branch: None,
            head: None,
            handover_tries: 0,
            pr_url: None,
            pr_state: None,
            depends_on: Vec::new(),
            review: None,
            wip: None,
            questions: Vec::new(),
            extra: BTreeMap::new(),
        }
    }

    /// The question it waits on: the last one, unanswered, while the
    /// entry is `needs_input`.
    pub fn waiting_question(&self) -> Option<&Question> {
        self.questions
            .last()
            .filter(|q| self.status == Status::NeedsInput && q.answer.is_none())
    }
}

/// A question an agent asked its humans (`tgs-question.md`, or the
/// session's `ask_humans` tool), and the answer it got. Both texts are
/// untrusted: the next attempt's prompt quotes them as data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Question {
    /// What the agent asked, redacted (credential shapes masked), at most
    /// [`crate::backlog::MAX_QUESTION`] bytes.
    pub text: String,
    pub asked_at: Timestamp,
    /// The attempt that asked it.
    pub attempt: u32,
    /// Where humans were asked (the alert issue, or the pull request of a
    /// revision); `None` without a forge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posted: Option<Posted>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<Answer>,
}

/// Where a question was posted on the forge: comments on issue (or pull
/// request) `number` with an id above `after` may answer it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posted {
    pub url: String,
    pub number: u64,
    /// The id of tgs's own comment that asked: the watermark answers are
    /// read after, so that one is taken once and none from before counts.
    #[serde(default)]
    pub after: u64,
}

/// The answer to a [`Question`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// What the human said (hidden text removed, clipped).
    pub text: String,
    /// Who: a GitHub login, the local user, or the MCP client's name.
    pub by: String,
    pub at: Timestamp,
    /// How it came: `github`, `cli` or `mcp`.
    pub via: String,
    /// The comment that said it, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// The longest question tgs keeps, in bytes (a longer one is refused).
pub const MAX_QUESTION: usize = 16 * 1024;
/// The longest answer tgs keeps, in bytes (a longer one is refused).
pub const MAX_ANSWER: usize = 16 * 1024;

/// Work in progress: what an attempt that ended without a hand-over had
/// done, committed onto `refs/tgs/wip/<thought>` beside the state (see
/// `runner::wip`). The next attempt starts from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wip {
    /// The commit `refs/tgs/wip/<thought>` holds.
    pub head: String,
    /// The base commit the attempt started from (the work is `base..head`).
    pub base: String,
    /// The attempt that made it.
    pub attempt: u32,
    /// How that attempt ended: `timeout: ...`, `stalled: ...` (clipped).
    pub ended: String,
    /// Files it changes against `base`, and lines added plus removed.
    pub files: u32,
    pub lines: u64,
    pub at: Timestamp,
    /// What the agent was doing last: the end of its redacted transcript
    /// (at most 2 KiB), for the next attempt's prompt.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_seen: String,
}

fn queued() -> Status {
    Status::Queued
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Hand-written files sometimes say `"version": 1`.
fn version_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "version must be a string such as \"1\", found {other}"
        ))),
    }
}
