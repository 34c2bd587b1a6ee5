//! `tgs server run`: claim thoughts, let agents implement them in worktrees
//! of their own, verify the work, hand it over (push, pull request, record),
//! and go on; up to K sessions at once.
//!
//! Every session takes three steps, the GitHub Actions matrix's three jobs
//! (`safe.rs`) and `tgs server run` alike: claim; implement (`implement.rs`:
//! the agent's session, run by `executor.rs`, leaves its work as an
//! artifact, see `artifact.rs`); hand over (`accept.rs`: the artifact
//! checked again as untrusted input, then pushed, its pull request opened
//! by `handover.rs`, and recorded). One code path, wherever the steps run.
//!
//! The local shape follows nextest's runner. One dispatcher ([`Runner`], in
//! `dispatcher.rs`) owns everything shared: the claims and the state target,
//! the forge, the sinks, the pauses of agents whose provider refused, the
//! hand-overs still pending. Executors run the implement step of one
//! session each on a thread of their own and report typed events on a
//! channel; they never touch the state, the remote or the forge. What
//! happened is judged by pure functions (`outcome.rs`).
//!
//! Every state change goes through the [`StateTarget`]'s compare-and-swap,
//! so racing workers on other machines stay consistent. A failed session is
//! requeued after an exponential, capped, jittered delay until
//! `max_attempts`, then failed; a session that was not the thought's doing
//! (interrupted, the provider refused, the machine could not run it) gives
//! its claim back without counting the attempt. A claim is recorded only by
//! the session that holds it (its claim id), never by one whose lease was
//! taken over.

mod accept;
pub mod artifact;
mod attempt;
mod dispatcher;
mod executor;
mod handover;
mod implement;
pub mod outcome;
mod record;
mod revise;
mod safe;
pub mod wip;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::Settings;
use crate::events::Outcome;
use crate::forge::Forge;
use crate::process::Signals;
use crate::repo::Repo;
use crate::thought::ThoughtName;
use crate::topology::Topology;
use crate::Error;

pub use crate::backlog::target::StateTarget;
pub use artifact::{ClaimTicket, SessionRecord};
pub use dispatcher::{describe_pause, idle_wait, why_not_claimable, WATCH_FLOOR};
pub use handover::{fetch_branch, Handover, Pending};
pub use outcome::retry_delay;

/// A run of sessions: the repository, the run's settings, the state it
/// claims from and records in, the forge it hands over to. Its steps are
/// spread over the modules of `runner` (see above), each an `impl` of it.
pub struct Runner<'r> {
    pub repo: &'r Repo,
    pub cfg: RunConfig,
    pub state: StateTarget<'r>,
    pub forge: Option<Box<dyn Forge + 'r>>,
    pub signals: Option<Arc<Signals>>,
    /// The environment agents' environments are picked from.
    pub env: Vec<(String, String)>,
    /// The remote and branches (the base is read from the remote, fetched).
    pub topology: Topology,
}

/// How long to keep going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Fill the slots once (one session, or `--parallel K`), then stop: what
    /// a 6-hour CI job wants.
    Once,
    /// Until nothing is left that this worker could claim, waiting out retry delays.
    UntilEmpty,
    /// For ever, looking for work every interval (longer while idle).
    Watch(Duration),
}

/// A run's settings after resolution.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub settings: Settings,
    pub agent: String,
    pub worker_id: String,
    pub mode: Mode,
    pub thought: Option<String>,
    pub session_timeout: Duration,
    /// Push branches (and state, through the target).
    pub push: bool,
    pub open_pr: bool,
    /// The branch worktrees start from and PRs target.
    pub base_branch: String,
    /// The remote, when there is one and pushing is on.
    pub remote: Option<String>,
    /// Where the whole transcript of a session of this run can be found
    /// (e.g. the GitHub Actions artifact), said in the kept copy's first line.
    pub transcript_whole: Option<String>,
    /// Sessions at once (K, at least 1).
    pub parallel: usize,
    /// Sessions in all (N); `None`: the mode decides.
    pub max_sessions: Option<u32>,
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunExit {
    Done {
        sessions: u32,
        succeeded: u32,
        /// Thoughts that failed for good in this run (out of attempts).
        failed: u32,
        /// Sessions a bug of tgs's (a panic) ended; their claims were given
        /// back, and the run went on. The process must exit non-zero.
        internal: u32,
    },
    /// Stopped by this signal; every claim was given back.
    Interrupted(i32),
    /// The thought asked for (`--thought`) cannot be claimed: why.
    NotClaimable(String),
}

/// What one session came to.
#[derive(Debug, Clone)]
pub struct SessionReport {
    pub dir: String,
    pub outcome: Outcome,
    /// The thought is now `failed`: out of attempts.
    pub final_failure: bool,
    pub pr_url: Option<String>,
    pub reason: Option<String>,
    /// A bug of tgs's (a panic) ended the session.
    pub internal: bool,
}

/// Where a session's prompt and context list are written: in the git
/// directory, so that nothing of tgs's ends up in the agent's commits.
pub(crate) struct SessionFiles {
    pub(crate) dir: PathBuf,
    prompt: PathBuf,
    context: PathBuf,
}

impl SessionFiles {
    pub(crate) fn of(repo: &Repo, name: &ThoughtName) -> SessionFiles {
        let dir = repo
            .common_dir()
            .join("tgs")
            .join("sessions")
            .join(name.as_str());
        SessionFiles {
            prompt: dir.join("prompt.md"),
            context: dir.join("context.txt"),
            dir,
        }
    }
}

/// The work branch of a thought directory (`tgs/<name>`), if it names one.
pub fn branch_of(dir: &str) -> Option<String> {
    name_of(dir).ok().map(|n| crate::worktree::branch_for(&n))
}

pub(crate) fn name_of(dir: &str) -> Result<ThoughtName, Error> {
    dir.rsplit('/')
        .next()
        .and_then(ThoughtName::parse)
        .ok_or_else(|| Error::invalid(format!("{dir} is not a thought directory")))
}

/// `dir/stem.ext`, or `dir/stem-2.ext`... if taken: a second attempt in the
/// same second must not overwrite the first one's transcript.
pub(crate) fn unused_path(dir: &Path, stem: &str, ext: &str) -> PathBuf {
    let mut p = dir.join(format!("{stem}.{ext}"));
    let mut n = 2;
    while p.exists() {
        p = dir.join(format!("{stem}-{n}.{ext}"));
        n += 1;
    }
    p
}

/// `5h30m`, `90s`.
pub fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if sec > 0 || out.is_empty() {
        out.push_str(&format!("{sec}s"));
    }
    out
}

fn signed(d: Duration) -> jiff::SignedDuration {
    jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX)
}

/// `now + d`, to the second.
fn after(now: jiff::Timestamp, d: Duration) -> Option<jiff::Timestamp> {
    now.saturating_add(signed(d))
        .ok()
        .and_then(|t| t.round(jiff::Unit::Second).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanized() {
        assert_eq!(humanize(Duration::from_secs(5 * 3600 + 1800)), "5h30m");
        assert_eq!(humanize(Duration::from_secs(90)), "1m30s");
        assert_eq!(humanize(Duration::ZERO), "0s");
    }
}
