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

pub trait Forge {
    /// A short name for messages, e.g. "GitHub".
    fn name(&self) -> &str;
    /// Open a PR for `pr.head`, or update the open one: never two for one head.
    fn open_or_update_pr(&self, pr: &PullRequest) -> Result<OpenedPr, Error>;
}
