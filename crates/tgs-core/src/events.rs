//! What the runner reports. Every state transition and server action is a
//! typed [`Event`]; the console, the audit log, the metrics and the dashboard
//! are sinks of the same stream, so they can never disagree.

use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// How a session ended, as recorded and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    /// The agent exited non-zero or reported an error.
    Failed,
    /// The session ran past its timeout and was stopped.
    Timeout,
    /// The agent showed no sign of life for the stall timeout and was stopped.
    Stalled,
    /// The agent died of a signal it was not sent by us.
    Crashed,
    /// The agent ran but its work did not pass verification.
    Rejected,
    /// The agent's program could not be started.
    AgentMissing,
    /// tgs was interrupted; the claim was given back.
    Cancelled,
    /// The model API refused for rate limits or overload.
    RateLimited,
    /// The model provider refused for credit, credentials or permissions.
    Unavailable,
    /// The agent's CLI did not start a session: it rejected its command
    /// line or its environment (an unknown flag, a setting it refuses).
    Misconfigured,
    /// The session could not start for a reason of this machine's (the
    /// branch is checked out in another worktree, say), not the thought's.
    Blocked,
    /// The agent asked its humans a question and stopped (not counted).
    NeedsInput,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failed => "failed",
            Outcome::Timeout => "timeout",
            Outcome::Stalled => "stalled",
            Outcome::Crashed => "crashed",
            Outcome::Rejected => "rejected",
            Outcome::AgentMissing => "agent_missing",
            Outcome::Cancelled => "cancelled",
            Outcome::RateLimited => "rate_limited",
            Outcome::Unavailable => "unavailable",
            Outcome::Misconfigured => "misconfigured",
            Outcome::Blocked => "blocked",
            Outcome::NeedsInput => "needs_input",
        }
    }
}

/// Where a session left its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// Done: the work is handed over.
    Completed,
    /// The work is pushed; its pull request is still to be opened.
    HandoverPending,
    /// Back in the queue after a failed attempt (with a retry delay).
    Requeued,
    /// Given back without counting the attempt (interrupted, the provider
    /// refused, this machine could not run it).
    Released,
    /// Failed for good: a human should look.
    Failed,
    /// Another session took the claim over; this one's end is not recorded.
    TakenOver,
    /// Waiting for an answer to its agent's question.
    NeedsInput,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Completed => "completed",
            Disposition::HandoverPending => "handover_pending",
            Disposition::Requeued => "queued",
            Disposition::Released => "released",
            Disposition::Failed => "failed",
            Disposition::TakenOver => "taken_over",
            Disposition::NeedsInput => "needs_input",
        }
    }
}

/// Figures of one agent session, where the agent reports them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionStats {
    pub agent: String,
    pub exit_code: Option<i32>,
    pub turns: Option<u32>,
    pub cost_usd: Option<f64>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub session_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Expired claims were given back to the queue.
    Recovered {
        dirs: Vec<String>,
        at: Timestamp,
    },
    Claimed {
        dir: String,
        title: String,
        worker: String,
        attempt: u32,
        lease_expires_at: Option<Timestamp>,
        at: Timestamp,
        commit: Option<String>,
        /// For a revision: what it answers (`review::describe`).
        answers: Option<String>,
    },
    /// Nothing can be claimed now.
    NoWork {
        at: Timestamp,
        /// Why, when it is not that the queue has nothing ready (a paused agent).
        reason: Option<String>,
    },
    /// Waiting for a retry delay to pass.
    Waiting {
        until: Timestamp,
    },
    WorktreeReady {
        dir: String,
        path: PathBuf,
        branch: String,
        base: String,
    },
    AgentStarted {
        dir: String,
        agent: String,
        command: String,
        log: PathBuf,
        at: Timestamp,
    },
    AgentProgress {
        dir: String,
        action: Option<String>,
        turns: Option<u32>,
        cost_usd: Option<f64>,
    },
    AgentFinished {
        dir: String,
        ending: String,
        duration: Duration,
        stats: SessionStats,
    },
    Verified {
        dir: String,
        ok: bool,
        problems: Vec<String>,
    },
    BranchPushed {
        dir: String,
        branch: String,
    },
    /// The session's unfinished work was kept for the next attempt, on
    /// `reference` (`refs/tgs/wip/<thought>`), pushed beside the state.
    WipKept {
        dir: String,
        attempt: u32,
        reference: String,
        files: u32,
        lines: u64,
    },
    PrOpened {
        dir: String,
        url: String,
    },
    /// The session is over and recorded.
    SessionEnded {
        dir: String,
        worker: String,
        attempt: u32,
        outcome: Outcome,
        reason: Option<String>,
        started: Timestamp,
        ended: Timestamp,
        stats: SessionStats,
        pr_url: Option<String>,
        /// Where the entry went.
        disposition: Disposition,
        /// When the entry may be claimed again (requeued, released).
        not_before: Option<Timestamp>,
        commit: Option<String>,
    },
    /// A pending hand-over was tried again (no agent session).
    HandoverRetried {
        dir: String,
        pr_url: Option<String>,
        /// Why it is still pending, if it is.
        reason: Option<String>,
        disposition: Disposition,
    },
    /// Workers stop starting sessions with `agent` (the provider refused).
    AgentPaused {
        agent: String,
        kind: String,
        until: Option<Timestamp>,
        reason: String,
    },
}

/// A consumer of events.
pub trait Sink {
    fn event(&mut self, event: &Event);
}

/// Hands each event to several sinks.
#[derive(Default)]
pub struct Fanout<'a> {
    sinks: Vec<&'a mut dyn Sink>,
}

impl<'a> Fanout<'a> {
    pub fn push(&mut self, sink: &'a mut dyn Sink) {
        self.sinks.push(sink);
    }
}

impl Sink for Fanout<'_> {
    fn event(&mut self, event: &Event) {
        for s in self.sinks.iter_mut() {
            s.event(event);
        }
    }
}

/// Collects events, for tests and for summaries.
#[derive(Debug, Default)]
pub struct Recorder {
    pub events: Vec<Event>,
}

impl Sink for Recorder {
    fn event(&mut self, event: &Event) {
        self.events.push(event.clone());
    }
}
