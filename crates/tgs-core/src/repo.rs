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

/// Why [`Repo::read_committed`] gave no file.
#[derive(Debug, thiserror::Error)]
pub enum Committed {
    #[error(
        "{path} is committed as {} (mode {mode}), not a file",
        committed_kind(mode)
    )]
    NotAFile { path: String, mode: String },
    #[error("{path} is {size} bytes; at most {limit} are read")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error(transparent)]
    Git(#[from] GitError),
}

fn committed_kind(mode: &str) -> &'static str {
    match mode {
        "120000" => "a symbolic link",
        "040000" => "a directory",
        "160000" => "a submodule",
        _ => "something else",
    }
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

    /// The bytes of the regular file `path` in commit `rev`'s tree, read from
    /// the object store (never from the working tree, which an agent may
    /// have written): `Ok(None)` when the commit has no such path.
    ///
    /// Errors: [`Committed::NotAFile`] for a symbolic link, directory or
    /// submodule (a link would be read as its target's name, and following
    /// it could leave the repository), [`Committed::TooLarge`] beyond `limit`
    /// bytes, [`Committed::Git`] when git fails (an unknown `rev`).
    pub fn read_committed(
        &self,
        rev: &str,
        path: &str,
        limit: u64,
    ) -> Result<Option<Vec<u8>>, Committed> {
        let args = ["ls-tree", "-z", "--long", "--full-tree", rev, "--", path];
        let out = self.git.cmd(args).run()?;
        let record = out.split(|b| *b == 0).find(|r| !r.is_empty());
        let Some(entry) = record
            .map(git::parse_ls_tree_record)
            .transpose()
            .map_err(|detail| {
                Committed::Git(GitError::Parse {
                    args: args.join(" "),
                    detail,
                })
            })?
            .flatten()
            .filter(|e| e.path == path)
        else {
            return Ok(None);
        };
        if !matches!(entry.mode, "100644" | "100755") {
            return Err(Committed::NotAFile {
                path: path.to_owned(),
                mode: entry.mode.to_owned(),
            });
        }
        let size = entry.size.unwrap_or(u64::MAX);
        if size > limit {
            return Err(Committed::TooLarge {
                path: path.to_owned(),
                size,
                limit,
            });
        }
        Ok(Some(self.git.cmd(["cat-file", "blob", entry.oid]).run()?))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }

    /// A commit holding a file, a link (to a file outside the repository),
    /// a directory and a large file; then the working tree rewritten.
    #[test]
    fn read_committed_reads_regular_files_of_the_commit_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        git(root, &["init", "-q"]);
        std::fs::create_dir_all(root.join("tgs/dir")).unwrap();
        std::fs::write(root.join("tgs/tgs.yml"), "server: {}\n").unwrap();
        std::fs::write(root.join("tgs/dir/x"), "x").unwrap();
        std::fs::write(root.join("big"), vec![b'a'; 2048]).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("link")).unwrap();
        git(root, &["add", "-A"]);
        git(root, &["commit", "-qm", "c"]);
        std::fs::write(root.join("tgs/tgs.yml"), "edited\n").unwrap();
        let repo = Repo::discover(root).unwrap();
        let read = |p: &str| repo.read_committed("HEAD", p, 1024);
        assert_eq!(read("tgs/tgs.yml").unwrap().unwrap(), b"server: {}\n");
        assert!(read("missing").unwrap().is_none());
        assert!(read("tgs").is_err_and(|e| e.to_string().contains("a directory")));
        assert!(read("link").is_err_and(|e| e.to_string().contains("a symbolic link")));
        assert!(read("big").is_err_and(|e| e.to_string().contains("2048 bytes")));
        assert!(read("tgs/dir/x").unwrap().is_some());
        assert!(matches!(
            repo.read_committed("no-such-rev", "tgs/tgs.yml", 1024),
            Err(Committed::Git(_))
        ));
    }
}
