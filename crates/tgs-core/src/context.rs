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
    let mut files = thought.ordered_paths();
    let present = repo.ls_tree(rev, REPO_CONTEXT)?;
    for path in REPO_CONTEXT {
        if present
            .iter()
            .any(|e| e.path == *path && e.kind == ObjectKind::Blob && e.mode != "120000")
        {
            files.push((*path).to_owned());
        }
    }
    Ok(files)
}
