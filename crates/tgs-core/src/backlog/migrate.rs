//! Moving the state out of the base branch's tree onto a branch of its own
//! (`tgs server state migrate`).
//!
//! Before the state branch of its own, tgs kept `tgs/server/**` in the
//! default branch's tree. Migration copies those files (backlog, audit log,
//! metrics; never the working tree's transcripts) as they are on the remote's
//! base branch into the first, orphan commit of the state branch, which must
//! not exist yet. The base branch itself is left as it is: removing the old
//! files from it is a commit of the user's to make.

use super::shared::SharedState;
use crate::git::{self, ObjectKind};
use crate::repo::Repo;
use crate::topology::{check_state_branch_name, Topology};
use crate::Error;

/// What a migration did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Migrated {
    /// Where the state was read from (`origin/main`).
    pub from: String,
    /// Where it lives now (`origin/tgs-state`).
    pub to: String,
    /// The files carried over, repository-relative.
    pub files: Vec<String>,
    /// The state branch's first commit.
    pub commit: String,
}

/// Copy the state files of the base branch's tree onto the new state branch
/// `to`. Errors: nothing to migrate, `to` exists or is not allowed.
pub fn migrate(repo: &Repo, topo: &Topology, to: &str) -> Result<Migrated, Error> {
    check_state_branch_name(to)?;
    let base = topo.fetch_base(repo)?;
    if base.branch == to {
        return Err(Error::invalid(format!(
            "the state branch must differ from the base branch {}",
            base.branch
        )));
    }
    let Some(commit) = base.commit else {
        return Err(Error::invalid(format!("{} has no commits yet", base.label)));
    };
    let entries = repo.ls_tree(&commit, &["tgs/server"])?;
    let wanted: Vec<_> = entries
        .iter()
        .filter(|e| e.kind == ObjectKind::Blob && !e.path.starts_with("tgs/server/logs/"))
        .collect();
    if !wanted.iter().any(|e| e.path == super::store::BACKLOG_PATH) {
        return Err(Error::invalid(format!(
            "{} holds no {}: there is no state to migrate",
            base.label,
            super::store::BACKLOG_PATH
        )));
    }
    let mut cat = git::CatFile::spawn(repo.git(), |_, blob| blob.to_vec())?;
    let tickets: Vec<usize> = wanted.iter().map(|e| cat.request(&e.oid)).collect();
    let blobs = cat.finish()?;
    let mut files: Vec<(&str, Vec<u8>)> = Vec::new();
    for (e, t) in wanted.iter().zip(tickets) {
        let data =
            blobs.get(t).cloned().flatten().ok_or_else(|| {
                Error::Failed(format!("could not read {} at {}", e.path, base.label))
            })?;
        files.push((e.path.as_str(), data));
    }
    let mut state =
        SharedState::new(repo, to, topo.remote().map(|r| r.name.clone())).with_checked_out(false);
    if let Some(r) = topo.remote() {
        state = state.with_remote_url(r.url.as_str());
    }
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, d)| (*p, d.as_slice())).collect();
    let message = format!(
        "chore(tgs): move the server state from {} to {to}",
        base.branch
    );
    let made = state.create(&refs, &message)?;
    Ok(Migrated {
        from: base.label,
        to: state.describe(),
        files: files.iter().map(|(p, _)| (*p).to_owned()).collect(),
        commit: made,
    })
}
