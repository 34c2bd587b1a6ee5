//! Where the backlog state lives for a command: the state branch on the
//! remote (shared by every worker), or this working tree (local only).

use super::shared::SharedState;
use super::store::{Applied, Change, Record, Store, WriteOptions};
use super::Backlog;
use crate::repo::Repo;
use crate::topology::Topology;
use crate::Error;

/// What the caller asked for, beyond the [`Topology`].
#[derive(Debug, Clone)]
pub struct TargetOptions {
    /// Record changes as commits (`--no-commit` turns this off; implies local).
    pub commit: bool,
    /// Who makes the changes, for the audit log (default: hostname/user).
    pub actor: Option<String>,
    /// The command only reads: one fetch serves all its reads.
    pub read_only: bool,
}

impl Default for TargetOptions {
    fn default() -> Self {
        TargetOptions {
            commit: true,
            actor: None,
            read_only: false,
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
    /// The state branch of `topo`: on its remote, else as a local ref; the
    /// working tree's file only for `--no-commit`, or when the state branch
    /// is the one checked out and there is no remote (its commits then go
    /// on that branch, as they always did).
    pub fn resolve(
        repo: &'r Repo,
        topo: &Topology,
        opts: &TargetOptions,
    ) -> Result<StateTarget<'r>, Error> {
        let actor = opts
            .actor
            .clone()
            .unwrap_or_else(crate::clock::default_worker_id);
        let branch = topo.state_branch();
        let here = repo.current_branch() == Some(branch);
        let ro = |s: SharedState<'r>| if opts.read_only { s.read_only() } else { s };
        Ok(match topo.remote() {
            _ if !opts.commit => StateTarget::Local(Store::new(repo).with_actor(actor)),
            Some(r) => StateTarget::Shared(Box::new(ro(SharedState::new(
                repo,
                branch,
                Some(r.name.clone()),
            )
            .with_checked_out(here)
            .with_actor(actor)
            .with_remote_url(r.url.as_str())))),
            None if here => StateTarget::Local(Store::new(repo).with_actor(actor)),
            None => StateTarget::Shared(Box::new(
                SharedState::new(repo, branch, None)
                    .with_checked_out(false)
                    .with_actor(actor),
            )),
        })
    }

    /// Where the state is, for messages: `origin/main`, `main`, or the file.
    pub fn describe(&self) -> String {
        match self {
            StateTarget::Local(s) => s.path().display().to_string(),
            StateTarget::Shared(s) => s.describe(),
        }
    }

    /// Blobs under `prefix` in the state: (path, blob id, bytes). The
    /// working tree's store keeps none (its transcripts are files).
    pub fn list(&self, prefix: &str) -> Result<Vec<(String, String, u64)>, Error> {
        match self {
            StateTarget::Local(_) => Ok(Vec::new()),
            StateTarget::Shared(s) => s.list(prefix),
        }
    }

    /// Fetch again on the next read (see [`SharedState::read_only`]).
    pub fn refresh(&self) {
        if let StateTarget::Shared(s) = self {
            s.refresh();
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

    /// Every line of the history files of these kinds that `months` wants,
    /// oldest file first, streamed (see [`crate::history::HistoryLine`]).
    pub fn each_history_line(
        &self,
        kinds: &[Record],
        months: &crate::history::Months,
        each: &mut dyn FnMut(&crate::history::HistoryLine),
    ) -> Result<(), Error> {
        match self {
            StateTarget::Local(s) => {
                crate::history::each_working_tree_line(s.root(), kinds, months, each);
                Ok(())
            }
            StateTarget::Shared(s) => s.each_history_line(kinds, months, each),
        }
    }

    /// Every archived entry (finished, moved out of the live backlog),
    /// oldest first, parsed one line at a time; unreadable lines are skipped.
    pub fn each_archived(&self, each: &mut dyn FnMut(super::Entry)) -> Result<(), Error> {
        let all = crate::history::Months::all();
        self.each_history_line(&[Record::Archive], &all, &mut |l| {
            if let Some(e) = crate::history::parse_archive_line(l.text) {
                each(e);
            }
        })
    }

    /// The archived entries (finished, moved out of the live backlog), oldest first.
    pub fn read_archive(&self) -> Result<Vec<super::Entry>, Error> {
        let mut out = Vec::new();
        self.each_archived(&mut |e| out.push(e))?;
        Ok(out)
    }

    /// The live backlog with the archived entries after it: every entry the
    /// state knows, for views and for "is it known" checks.
    pub fn read_all(&self) -> Result<Backlog, Error> {
        self.read_all_where(|_| true)
    }

    /// The live backlog with the archived entries that `keep` keeps after
    /// it (an entry live and archived is the live one), reading the archive
    /// a line at a time so that only the kept entries are held.
    pub fn read_all_where(&self, keep: impl Fn(&super::Entry) -> bool) -> Result<Backlog, Error> {
        let mut b = self.read()?;
        let live: std::collections::HashSet<String> =
            b.thoughts.iter().map(|e| e.dir.clone()).collect();
        let mut archived = Vec::new();
        self.each_archived(&mut |e| {
            if !live.contains(&e.dir) && keep(&e) {
                archived.push(e);
            }
        })?;
        b.thoughts.append(&mut archived);
        Ok(b)
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
