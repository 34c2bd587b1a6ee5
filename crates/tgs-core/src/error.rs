//! The library's error type. Each variant says what kind of failure it is, so
//! the CLI can map it to an exit code and a hint without parsing messages.

use std::path::PathBuf;

use crate::git::GitError;
use crate::repo::RepoError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller asked for something that cannot be done as asked (bad input).
    #[error("{0}")]
    Invalid(String),
    /// A backlog entry cannot move as asked from its current status.
    #[error("cannot {action} {dir}: it is {status}")]
    Transition {
        action: &'static str,
        dir: String,
        status: String,
        allowed: Vec<&'static str>,
    },
    /// The state file cannot be read as a backlog; it is left untouched.
    #[error("{} is not a valid backlog: {message}", path.display())]
    Corrupt { path: PathBuf, message: String },
    /// The file was written by a newer tgs; this one may read it but never writes it.
    #[error("{} has version {version}, newer than this tgs understands (1); it will not be rewritten", path.display())]
    NewerVersion { path: PathBuf, version: String },
    /// Another process held a lock of tgs's for too long.
    #[error("timed out waiting for the lock {}{}", path.display(), holder.as_ref().map(|h| format!(", held by {h}")).unwrap_or_default())]
    LockTimeout {
        path: PathBuf,
        /// Who holds it (`process 1234 (sleep)`), when it can be found.
        holder: Option<String>,
    },
    /// A lock of tgs's is held by a process that is not tgs (an agent's
    /// leftover, say): it would never be given back, so it is not waited for.
    #[error("the lock {} is held by {holder}, which is not tgs, so tgs does not wait for it", path.display())]
    LockHeld {
        path: PathBuf,
        /// `process 1234 (sleep)`.
        holder: String,
    },
    /// A compare-and-swap on the state branch kept losing to other writers.
    #[error("{0}")]
    Contention(String),
    /// The repository or its configuration is not set up for what was asked
    /// (a missing remote, no base branch); nothing was changed.
    #[error("{message}")]
    Setup {
        message: String,
        hint: Option<String>,
    },
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The forge (GitHub) answered a request with a failure.
    #[error("{message}")]
    Forge {
        kind: ForgeErrorKind,
        message: String,
    },
    /// Anything else that failed, with context.
    #[error("{0}")]
    Failed(String),
    /// A bug in tgs (a panic) stopped the work; every claim was given back.
    #[error("internal error: {0}")]
    Internal(String),
}

/// What kind of failure a forge request met, for the caller to decide
/// whether to wait and try again, stop, or reject the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForgeErrorKind {
    /// Rate limits, 5xx, the network: worth trying again later.
    Transient,
    /// The token was refused or lacks a permission: a human must act.
    Auth,
    /// The pull request's head has no commits over its base.
    NoCommits,
    /// Any other refusal.
    Refused,
}

impl From<crate::repo::Committed> for Error {
    fn from(e: crate::repo::Committed) -> Self {
        match e {
            crate::repo::Committed::Git(g) => Error::Git(g),
            other => Error::Invalid(other.to_string()),
        }
    }
}

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
