//! Where the backlog state lives for a command: the state branch on the
//! remote (shared by every worker), or this working tree (local only).

use super::shared::SharedState;
use super::store::{Applied, Change, Store, WriteOptions};
use super::Backlog;
use crate::repo::Repo;
use crate::Error;

/// What the caller asked for.
#[derive(Debug, Clone)]
pub struct TargetOptions {
    /// The state branch (`None`: the branch checked out).
    pub state_branch: Option<String>,
    /// The remote that holds the shared state.
    pub remote: String,
    /// Publish changes to the remote (`--no-push` turns this off).
    pub push: bool,
    /// Record changes as commits (`--no-commit` turns this off; implies local).
    pub commit: bool,
    /// Who makes the changes, for the audit log (default: hostname/user).
    pub actor: Option<String>,
}

impl Default for TargetOptions {
    fn default() -> Self {
        TargetOptions {
            state_branch: None,
            remote: "origin".into(),
            push: true,
            commit: true,
            actor: None,
        }
    }
}

pub enum StateTarget<'r> {
    /// The working tree's file, committed on the checked-out branch.
    Local(Store<'r>),
    /// A state branch, on the remote or as a local ref.
    Shared(Box<SharedState<'r>>),
}

impl<'r> StateTarget<'r> {
    pub fn resolve(repo: &'r Repo, opts: &TargetOptions) -> Result<StateTarget<'r>, Error> {
        let current = repo.current_branch().map(str::to_owned);
        let branch = opts.state_branch.clone().or(current.clone());
        let url = repo
            .git()
            .cmd(["remote", "get-url", &opts.remote])
            .output()?;
        let has_remote = url.success;
        let actor = opts
            .actor
            .clone()
            .unwrap_or_else(crate::clock::default_worker_id);
        Ok(match branch {
            Some(b) if opts.commit && opts.push && has_remote => {
                let here = current.as_deref() == Some(b.as_str());
                StateTarget::Shared(Box::new(
                    SharedState::new(repo, b, Some(opts.remote.clone()))
                        .with_checked_out(here)
                        .with_actor(actor)
                        .with_remote_url(url.stdout_text().trim()),
                ))
            }
            Some(b) if opts.commit && current.as_deref() != Some(b.as_str()) => {
                StateTarget::Shared(Box::new(
                    SharedState::new(repo, b, None)
                        .with_checked_out(false)
                        .with_actor(actor),
                ))
            }
            _ => StateTarget::Local(Store::new(repo).with_actor(actor)),
        })
    }

    /// Where the state is, for messages: `origin/main`, `main`, or the file.
    pub fn describe(&self) -> String {
        match self {
            StateTarget::Local(s) => s.path().display().to_string(),
            StateTarget::Shared(s) => match s.remote() {
                Some(r) => format!("{r}/{}", s.branch()),
                None => s.branch().to_owned(),
            },
        }
    }

    pub fn read(&self) -> Result<Backlog, Error> {
        match self {
            StateTarget::Local(s) => s.read(),
            StateTarget::Shared(s) => Ok(s.read()?.0),
        }
    }

    pub fn read_text(&self) -> Result<Option<String>, Error> {
        match self {
            StateTarget::Local(s) => s.read_text(),
            StateTarget::Shared(s) => s.read_text(),
        }
    }

    /// Other state files (the records), where this target keeps them.
    pub fn read_files(&self, paths: &[&str]) -> Result<Vec<Option<String>>, Error> {
        match self {
            StateTarget::Local(s) => Ok(paths
                .iter()
                .map(|p| std::fs::read_to_string(s.root().join(p)).ok())
                .collect()),
            StateTarget::Shared(s) => s.read_files(paths),
        }
    }

    /// The records (audit log and metrics) of this state.
    pub fn read_records(&self) -> Result<crate::report::Records, Error> {
        use crate::records::{AUDIT_PATH, METRICS_PATH};
        let texts = self.read_files(&[AUDIT_PATH, METRICS_PATH])?;
        Ok(crate::report::load_records_with(|p| {
            let i = if p == AUDIT_PATH { 0 } else { 1 };
            texts.get(i).cloned().flatten()
        }))
    }

    pub fn update<T>(
        &self,
        opts: &WriteOptions,
        f: impl FnMut(&mut Backlog) -> Result<Change<T>, Error>,
    ) -> Result<Applied<T>, Error> {
        match self {
            StateTarget::Local(s) => s.update(opts, f),
            StateTarget::Shared(s) => s.update(f),
        }
    }
}
