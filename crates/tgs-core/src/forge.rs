//! Where pull requests are opened. The runner talks to a [`Forge`]; the
//! GitHub implementation lives in its own module. Without a forge, branches
//! are pushed and no PR is opened.

use crate::Error;

/// A pull request to open (or update, if one is open for the head branch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub head: String,
    pub base: String,
    pub title: String,
    pub body: String,
    pub draft: bool,
    pub labels: Vec<String>,
    pub reviewers: Vec<String>,
}

/// An opened or updated pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedPr {
    pub url: String,
    pub number: u64,
    /// It existed already and was updated, not opened anew.
    pub updated: bool,
}

/// A thought that failed for good, for the alert a human should see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub thought_dir: String,
    pub title: String,
    pub attempts: u32,
    pub last_error: String,
    /// The end of the session's transcript, already redacted.
    pub log_tail: String,
}

/// A question an agent asked, for the humans who can answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuestionPost {
    pub thought_dir: String,
    pub title: String,
    /// The question, redacted (untrusted: shown as text, never rendered).
    pub question: String,
    /// Its number among the thought's questions, and the most it may ask.
    pub number: usize,
    pub max: u32,
    /// A revision's pull request: the question goes there, not to an issue.
    pub pr_url: Option<String>,
    /// The word answers start with (`/tgs`).
    pub trigger: String,
}

pub trait Forge {
    /// A short name for messages, e.g. "GitHub".
    fn name(&self) -> &str;
    /// Open a PR for `pr.head`, or update the open one: never two for one head.
    fn open_or_update_pr(&self, pr: &PullRequest) -> Result<OpenedPr, Error>;
    /// The repository's web address, for links in PR bodies.
    fn web_url(&self) -> Option<String> {
        None
    }
    /// Tell humans a thought failed for good (an issue, or a comment on the
    /// open one). Returns where, if anywhere.
    fn alert_failure(&self, _failure: &Failure) -> Result<Option<String>, Error> {
        Ok(None)
    }
    /// Tell humans an agent cannot start sessions until they act (its
    /// provider refused: credit, credentials). Returns where, if anywhere.
    fn alert_agent(&self, _agent: &str, _detail: &str) -> Result<Option<String>, Error> {
        Ok(None)
    }
    /// Whether people have a stake in the open pull request whose head is
    /// `branch`: a review or a comment that is not tgs's own. Returns its
    /// URL if so; `Ok(None)` when no pull request is open for it or nobody
    /// has spoken on it.
    fn human_stake_in(&self, _branch: &str) -> Result<Option<String>, Error> {
        Ok(None)
    }
    /// Tell humans once that a bug of tgs's (a panic) ended a session: an
    /// issue, opened only when none is open. Returns where, if anywhere.
    fn alert_internal(&self, _detail: &str) -> Result<Option<String>, Error> {
        Ok(None)
    }
    /// The agent was resumed: close its alert. Returns what was closed.
    fn resolve_agent_alert(&self, _agent: &str) -> Result<Option<String>, Error> {
        Ok(None)
    }
    /// Answer on the pull request at `pr_url` (a comment: what a revision
    /// changed). Returns the comment's URL, if any.
    fn reply_on_pr(&self, _pr_url: &str, _body: &str) -> Result<Option<String>, Error> {
        Ok(None)
    }
    /// Hand the pull request at `pr_url` back to humans: the label
    /// `tgs:needs-human` and one comment saying `why`.
    fn hand_to_human(&self, _pr_url: &str, _why: &str) -> Result<(), Error> {
        Ok(())
    }
    /// Ask humans an agent's question: on the thought's alert issue (opened
    /// if none is open) or on a revision's pull request. Returns where, and
    /// the comment after which answers count; `None` without a forge.
    fn ask_humans(&self, _q: &QuestionPost) -> Result<Option<crate::backlog::Posted>, Error> {
        Ok(None)
    }
    /// A thought succeeded after an alert: close the alert. Returns what was closed.
    fn resolve_alert(
        &self,
        _thought_dir: &str,
        _pr_url: Option<&str>,
    ) -> Result<Option<String>, Error> {
        Ok(None)
    }
}
