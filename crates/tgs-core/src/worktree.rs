//! The isolated git worktree an agent works in: `.tgs/worktrees/<thought>`
//! on branch `tgs/<thought>`, started from the fresh tip of the base branch.
//! A worktree or branch left by an earlier attempt is replaced, never an error.

use std::path::{Path, PathBuf};

use crate::repo::Repo;
use crate::thought::ThoughtName;
use crate::Error;

/// Where worktrees live, relative to the repository root (ignored through `info/exclude`).
pub const WORKTREES_DIR: &str = ".tgs/worktrees";
/// Where session transcripts go (not committed).
pub const LOGS_DIR: &str = "tgs/server/logs";

#[derive(Debug, Clone)]
pub struct Worktree {
    pub path: PathBuf,
    pub branch: String,
    /// The commit the branch started from.
    pub base: String,
}

/// The branch a thought's work goes on.
pub fn branch_for(name: &ThoughtName) -> String {
    format!("tgs/{name}")
}

/// Keep tgs's own files out of `git status` without touching the user's `.gitignore`.
pub fn ensure_excluded(repo: &Repo) -> Result<(), Error> {
    let path = repo.common_dir().join("info").join("exclude");
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    let mut add = String::new();
    for pattern in ["/.tgs/", &format!("/{LOGS_DIR}/")] {
        if !current.lines().any(|l| l.trim() == pattern) {
            add.push_str(pattern);
            add.push('\n');
        }
    }
    if add.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(path.parent().expect("has parent"))?;
    let mut text = current;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str("# tgs server mode\n");
    text.push_str(&add);
    std::fs::write(&path, text)?;
    Ok(())
}

/// Git's worktree records (`.git/worktrees/`) are changed one tgs at a time
/// per repository: a `prune` run while another session's `worktree add` is
/// still initializing would remove that worktree's record under it. An
/// advisory lock in the git directory, freed by the kernel if tgs dies;
/// a holder that keeps it past [`RECORDS_LOCK_TIMEOUT`] (an agent's
/// leftover that took it) is an error naming it, never a hang.
fn records_lock(repo: &Repo) -> Result<std::fs::File, Error> {
    let path = repo.common_dir().join("tgs").join("worktrees.lock");
    crate::lockfile::lock(&path, RECORDS_LOCK_TIMEOUT)
}

/// How long a session waits for another's worktree change (a `worktree
/// add` of a large repository takes a while).
const RECORDS_LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Create (or re-create) the worktree for a thought at `base`.
pub fn prepare(repo: &Repo, name: &ThoughtName, base: &str) -> Result<Worktree, Error> {
    let _records = records_lock(repo)?;
    ensure_excluded(repo)?;
    let path = repo.root().join(WORKTREES_DIR).join(name.as_str());
    let branch = branch_for(name);
    // An agent of a tgs that died (killed, out of memory, its machine
    // rebooted into the same clone) may still be writing here.
    let strays = crate::process::kill_strays(&format!("TGS_WORKTREE={}", path.display()));
    if strays > 0 {
        tracing::warn!(
            "stopped {strays} process(es) left running in {} by an earlier session",
            path.display()
        );
    }
    remove(repo, &path);
    std::fs::create_dir_all(path.parent().expect("has parent"))?;
    // -B resets a branch left by an earlier attempt; --force takes it even if
    // a stale worktree record still names it.
    repo.git()
        .cmd([
            "worktree",
            "add",
            "--force",
            "--quiet",
            "-B",
            &branch,
            path_str(&path)?,
            base,
        ])
        .run()?;
    Ok(Worktree {
        path,
        branch,
        base: base.to_owned(),
    })
}

/// Remove a worktree directory and git's record of it; errors are not fatal.
pub fn discard(repo: &Repo, path: &Path) {
    let _records = records_lock(repo);
    remove(repo, path);
}

fn remove(repo: &Repo, path: &Path) {
    if path.exists() {
        if let Some(p) = path.to_str() {
            let _ = repo
                .git()
                .cmd(["worktree", "remove", "--force", "--force", p])
                .output();
        }
        if path.exists() {
            let _ = std::fs::remove_dir_all(path);
        }
    }
    let _ = repo.git().cmd(["worktree", "prune"]).output();
}

fn path_str(p: &Path) -> Result<&str, Error> {
    p.to_str()
        .ok_or_else(|| Error::Failed(format!("{} is not valid UTF-8", p.display())))
}
