//! The files an agent should read for a thought, in reading order.

use crate::git::ObjectKind;
use crate::repo::Repo;
use crate::thought::Thought;
use crate::Error;

/// Repository-wide files worth an agent's attention, in this order, where present.
pub const REPO_CONTEXT: &[&str] = &[
    "tgs/agentops/AGENTOPS.md",
    "CLAUDE.md",
    "AGENTS.md",
    "README.md",
];

/// The thought's files, then the repository's agent instructions and README,
/// each only where committed at `rev`.
pub fn context_files(repo: &Repo, rev: &str, thought: &Thought) -> Result<Vec<String>, Error> {
    Ok(context_files_in(&repo.ls_tree(rev, REPO_CONTEXT)?, thought))
}

/// [`context_files`] from a tree listing that includes [`REPO_CONTEXT`].
pub fn context_files_in(present: &[crate::git::TreeEntry], thought: &Thought) -> Vec<String> {
    let mut files = thought.ordered_paths();
    for path in REPO_CONTEXT {
        if present
            .iter()
            .any(|e| e.path == *path && e.kind == ObjectKind::Blob && e.mode != "120000")
        {
            files.push((*path).to_owned());
        }
    }
    files
}
