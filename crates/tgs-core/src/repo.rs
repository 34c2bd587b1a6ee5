//! Finding the repository tgs works on and reading its committed tree.

use std::path::{Path, PathBuf};

use crate::git::{self, Git, GitError, TreeEntry};

/// A git repository with a working tree, found from a starting directory.
#[derive(Debug, Clone)]
pub struct Repo {
    root: PathBuf,
    common_dir: PathBuf,
    /// Where the caller stood, relative to `root` (`""` at the root, else ending in `/`).
    prefix: String,
    discovered_head: Option<String>,
    head: Head,
    git: Git,
}

/// Where HEAD pointed when the repository was discovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    /// On a branch with commits.
    Branch(String),
    /// Detached at a commit.
    Detached,
    /// On a branch that has no commits yet (a new repository).
    Unborn(String),
}

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{} is not inside a git repository with a working tree", .0.display())]
    NotARepo(PathBuf),
    #[error(transparent)]
    Git(#[from] GitError),
}

impl Repo {
    /// Find the repository containing `start`, as `git -C start` would,
    /// and read where HEAD points in the same `rev-parse`.
    pub fn discover(start: &Path) -> Result<Repo, RepoError> {
        let probe = Git::new(start);
        let out = probe
            .cmd([
                "rev-parse",
                "--path-format=absolute",
                "--show-toplevel",
                "--git-common-dir",
                "--show-prefix",
                "HEAD",
                "--symbolic-full-name",
                "HEAD",
            ])
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut lines = text.lines();
        let (Some(root), Some(common)) = (lines.next(), lines.next()) else {
            return Err(RepoError::NotARepo(start.to_owned()));
        };
        let prefix = lines.next().unwrap_or("").to_owned();
        // In a repository without commits git prints the paths, then fails on HEAD.
        let head_commit = lines
            .next()
            .filter(|h| out.success && h.len() >= 40 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_owned);
        // `refs/heads/<name>`, or `HEAD` when detached.
        let full_name = lines.next().filter(|_| out.success);
        if !out.success && !out.stderr.contains("'HEAD'") {
            return Err(RepoError::NotARepo(start.to_owned()));
        }
        let root = PathBuf::from(root);
        let git = Git::new(&root);
        let head = match full_name {
            Some(r) => match r.strip_prefix("refs/heads/") {
                Some(b) => Head::Branch(b.to_owned()),
                None => Head::Detached,
            },
            // Only a repository without commits gets here: ask which branch is unborn.
            None => {
                let name = git.text(["symbolic-ref", "-q", "--short", "HEAD"]);
                match name {
                    Ok(n) if !n.is_empty() => Head::Unborn(n),
                    _ => Head::Detached,
                }
            }
        };
        Ok(Repo {
            git,
            root,
            common_dir: PathBuf::from(common),
            prefix,
            discovered_head: head_commit,
            head,
        })
    }

    /// The branch checked out when the repository was discovered (`None`:
    /// detached HEAD, or no commits yet).
    pub fn current_branch(&self) -> Option<&str> {
        match &self.head {
            Head::Branch(b) => Some(b),
            _ => None,
        }
    }

    /// Where HEAD pointed when the repository was discovered.
    pub fn head_state(&self) -> &Head {
        &self.head
    }

    /// Why HEAD cannot stand for a branch here, as a person wants to read it
    /// (`None` when it is on a branch with commits).
    pub fn head_problem(&self) -> Option<String> {
        match &self.head {
            Head::Branch(_) => None,
            Head::Detached => Some("HEAD is detached (not on a branch)".into()),
            Head::Unborn(b) => Some(format!(
                "the repository has no commits yet (branch {b} is unborn)"
            )),
        }
    }

    /// The commit HEAD pointed at when the repository was discovered.
    pub fn discovered_head(&self) -> Option<&str> {
        self.discovered_head.as_deref()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn git(&self) -> &Git {
        &self.git
    }

    /// The directory shared by all worktrees (`.git` of the main one): home of tgs's locks.
    pub fn common_dir(&self) -> &Path {
        &self.common_dir
    }

    /// The caller's directory relative to the root, `""` or ending in `/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The commit HEAD points at, or `None` in a repository without commits.
    pub fn head(&self) -> Result<Option<String>, GitError> {
        let out = self
            .git
            .cmd(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"])
            .output()?;
        Ok(out.success.then(|| out.stdout_text()))
    }

    /// Every blob and submodule under the given paths of a commit's tree, in one `ls-tree`.
    pub fn ls_tree(&self, rev: &str, paths: &[&str]) -> Result<Vec<TreeEntry>, GitError> {
        let mut args: Vec<&str> = vec!["ls-tree", "-r", "-z", "--full-tree", rev, "--"];
        args.extend_from_slice(paths);
        let out = self.git.cmd(&args).run()?;
        git::parse_ls_tree(&out).map_err(|detail| GitError::Parse {
            args: args.join(" "),
            detail,
        })
    }
}
