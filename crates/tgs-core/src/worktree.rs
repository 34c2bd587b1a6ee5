//! The repository an agent works in: `.tgs/worktrees/<thought>`, a git
//! repository of its own on branch `tgs/<thought>`, started from the fresh
//! tip of the base branch. It borrows the user's objects read-only
//! (`objects/info/alternates`), so it is cheap on a large repository, and
//! shares nothing else with the user's: no refs (the agent cannot move the
//! user's branches), no config, no hooks. Its work comes back through
//! [`hand_in`], which rewrites everything git would read there as
//! configuration before tgs's git touches it, then fetches the head into the
//! user's repository. A directory left by an earlier attempt (or an earlier
//! tgs's git worktree) is replaced, never an error.
use std::path::{Path, PathBuf};

use crate::git::Git;
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

/// Create (or re-create) the agent's repository for a thought at `base`
/// (a commit of the user's repository).
///
/// Errors: the branch checked out in a worktree of the user's (said as git
/// says it, `... is already checked out at '<path>'`: the work could not be
/// handed in), the records lock held elsewhere, git failing.
pub fn prepare(repo: &Repo, name: &ThoughtName, base: &str) -> Result<Worktree, Error> {
    let _records = records_lock(repo)?;
    ensure_excluded(repo)?;
    let path = repo.root().join(WORKTREES_DIR).join(name.as_str());
    let branch = branch_for(name);
    if let Some(at) = checked_out_at(repo, &branch)? {
        return Err(Error::Failed(format!(
            "'{branch}' is already checked out at '{at}'"
        )));
    }
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
    std::fs::create_dir_all(&path)?;
    // No template: no sample hooks, nothing of the user's init.templateDir.
    repo.git()
        .cmd(["init", "--quiet", "--template=", path_str(&path)?])
        .run()?;
    let identity = crate::git::committer_ident(repo.git());
    own_git_files(repo, &path.join(".git"), &identity)?;
    let git = Git::new(&path);
    git.cmd(["update-ref", &format!("refs/heads/{branch}"), base])
        .run()?;
    git.cmd(["symbolic-ref", "HEAD", &format!("refs/heads/{branch}")])
        .run()?;
    git.cmd(["reset", "--hard", "--quiet"]).run()?;
    Ok(Worktree {
        path,
        branch,
        base: base.to_owned(),
    })
}

/// Write what git reads as configuration in the agent's repository
/// `gitdir`, as tgs wants it, over whatever is there: `config` (the
/// identity tgs commits with, nothing else), the alternates naming the
/// user's objects, `shallow` as the user's; and remove what could run or
/// redirect anything (hooks, `commondir`, `info/attributes`, grafts).
fn own_git_files(repo: &Repo, gitdir: &Path, identity: &str) -> Result<(), Error> {
    let (name, email) = split_ident(identity);
    std::fs::write(
        gitdir.join("config"),
        format!(
            "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n[user]\n\tname = {}\n\temail = {}\n",
            config_value(name),
            config_value(email)
        ),
    )?;
    for gone in [
        "hooks",
        "commondir",
        "gitdir",
        "info/attributes",
        "info/grafts",
        "config.worktree",
        // Locks a git the agent ran was killed holding (it is gone now):
        // left, they would make tgs's own `git add` fail and lose the work.
        "index.lock",
        "HEAD.lock",
        "ORIG_HEAD.lock",
        "packed-refs.lock",
    ] {
        let p = gitdir.join(gone);
        let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
    }
    for lock in walkdir::WalkDir::new(gitdir.join("refs"))
        .follow_links(false)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && e.file_name().to_string_lossy().ends_with(".lock"))
    {
        let _ = std::fs::remove_file(lock.path());
    }
    let info = gitdir.join("objects/info");
    std::fs::create_dir_all(&info)?;
    let objects = repo.common_dir().join("objects");
    std::fs::write(
        info.join("alternates"),
        format!("{}\n", path_str(&objects)?),
    )?;
    match std::fs::read(repo.common_dir().join("shallow")) {
        Ok(b) => std::fs::write(gitdir.join("shallow"), b)?,
        Err(_) => {
            let _ = std::fs::remove_file(gitdir.join("shallow"));
        }
    }
    Ok(())
}

/// `Name <email>` split; tgs's own when it does not parse.
fn split_ident(ident: &str) -> (&str, &str) {
    ident
        .split_once(" <")
        .map(|(n, e)| (n.trim(), e.trim_end_matches('>')))
        .unwrap_or(("tgs", "tgs@localhost"))
}

/// A value for a git config file: quoted, with `"` and `\\` escaped and no
/// line breaks.
fn config_value(v: &str) -> String {
    let clean: String = v
        .chars()
        .filter(|c| !c.is_control())
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("\"{clean}\"")
}

/// Where `branch` is checked out in a worktree of the user's, if it is.
fn checked_out_at(repo: &Repo, branch: &str) -> Result<Option<String>, Error> {
    let out = repo
        .git()
        .cmd(["worktree", "list", "--porcelain", "-z"])
        .run()?;
    Ok(parse_checked_out(&out, &format!("refs/heads/{branch}")))
}

/// From `git worktree list --porcelain -z`: the path of the worktree whose
/// HEAD is `full_ref`.
pub fn parse_checked_out(out: &[u8], full_ref: &str) -> Option<String> {
    let mut path = None;
    for field in out.split(|b| *b == 0) {
        let field = String::from_utf8_lossy(field);
        if let Some(p) = field.strip_prefix("worktree ") {
            path = Some(p.to_owned());
        } else if field.strip_prefix("branch ") == Some(full_ref) {
            return path;
        }
    }
    None
}

/// Bring the agent's work into the user's repository, onto
/// `refs/heads/<branch>`, and return its head (a commit id).
///
/// Only once the agent and everything it started are gone: the agent's
/// `.git` must still be a directory of its own (not a link or a `gitdir:`
/// file pointing elsewhere); what git reads there as configuration is
/// rewritten as tgs wants it ([`own_git_files`]) before tgs's git runs
/// there, so nothing the agent planted (hooks, `core.fsmonitor`, filters,
/// `include.path`, alternates) runs or redirects anything; work left
/// uncommitted is committed by tgs.
///
/// Errors: [`Error::Invalid`] for a replaced `.git` (the agent's doing),
/// [`Error::Failed`] for a fetch git refused.
pub fn hand_in(repo: &Repo, wt: &Worktree) -> Result<String, Error> {
    hand_in_to(repo, wt, &format!("refs/heads/{}", wt.branch))
}

/// [`hand_in`] onto the ref `full_ref` of the user's repository (a work in
/// progress goes on `refs/tgs/wip/<thought>`, not on the branch).
pub fn hand_in_to(repo: &Repo, wt: &Worktree, full_ref: &str) -> Result<String, Error> {
    let gitdir = wt.path.join(".git");
    let real_dir = std::fs::symlink_metadata(&gitdir).is_ok_and(|m| m.is_dir());
    if !real_dir {
        return Err(Error::invalid(
            "the agent replaced its repository's .git (a link, a file, or gone): its work is not read",
        ));
    }
    // git never makes a symbolic link in a repository's own directory; one
    // there is the agent's, and would lead tgs's writes (the files it
    // rewrites below, a ref git updates) anywhere the link points.
    if let Some(link) = first_link(&gitdir) {
        return Err(Error::invalid(format!(
            "the agent left a symbolic link in its repository's .git ({}): its work is not read",
            link.strip_prefix(&wt.path).unwrap_or(&link).display()
        )));
    }
    let identity = crate::git::committer_ident(repo.git());
    own_git_files(repo, &gitdir, &identity)?;
    commit_leftovers(wt)?;
    let out = repo
        .git()
        .fetch(path_str(&wt.path)?, &format!("+HEAD:{full_ref}"))
        .output()?;
    if !out.success {
        return Err(Error::Failed(format!(
            "could not take the work from the agent's repository: {}",
            out.stderr.trim()
        )));
    }
    Ok(repo
        .git()
        .text(["rev-parse", "--verify", &format!("{full_ref}^{{commit}}")])?)
}

/// The first symbolic link under `dir` (links not followed), if any.
fn first_link(dir: &Path) -> Option<PathBuf> {
    walkdir::WalkDir::new(dir)
        .follow_links(false)
        .into_iter()
        .flatten()
        .find(|e| e.path_is_symlink())
        .map(|e| e.path().to_owned())
}

/// Commit what the agent left uncommitted in its repository. Returns whether
/// there was anything.
fn commit_leftovers(wt: &Worktree) -> Result<bool, Error> {
    let git = Git::new(&wt.path);
    git.cmd(["add", "-A"]).run()?;
    if git.cmd(["diff", "--cached", "--quiet"]).output()?.success {
        return Ok(false);
    }
    let tree = git.text(["write-tree"])?;
    let head = git.text(["rev-parse", "HEAD"])?;
    // A merge the agent left unconcluded is concluded with both parents.
    let merging = git
        .cmd(["rev-parse", "-q", "--verify", "MERGE_HEAD^{commit}"])
        .output()?;
    let other = merging.success.then(|| merging.stdout_text());
    let mut parents = vec![head.as_str()];
    parents.extend(other.as_deref());
    let commit = crate::backlog::store::commit_tree(
        &git,
        &tree,
        &parents,
        "tgs: commit work the agent left uncommitted",
    )?;
    git.cmd(["update-ref", "HEAD", &commit, &head]).run()?;
    if other.is_some() {
        // Conclude the merge for git too, or the repository stays "merging".
        let _ = git.cmd(["merge", "--quit"]).output();
    }
    Ok(true)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worktree_holding_a_branch_is_found() {
        let out = b"worktree /r\0HEAD 1111\0branch refs/heads/main\0\0worktree /r/wt two\0HEAD 2222\0branch refs/heads/tgs/x\0\0worktree /r/det\0HEAD 3333\0detached\0\0";
        assert_eq!(
            parse_checked_out(out, "refs/heads/main").as_deref(),
            Some("/r")
        );
        assert_eq!(
            parse_checked_out(out, "refs/heads/tgs/x").as_deref(),
            Some("/r/wt two")
        );
        assert_eq!(parse_checked_out(out, "refs/heads/tgs"), None);
        assert_eq!(parse_checked_out(b"", "refs/heads/main"), None);
    }

    #[test]
    fn identities_become_quoted_config_values() {
        assert_eq!(split_ident("A B <a@b>"), ("A B", "a@b"));
        assert_eq!(split_ident("junk"), ("tgs", "tgs@localhost"));
        assert_eq!(config_value("x\"y\\z\n[core]"), "\"x\\\"y\\\\z[core]\"");
    }
}
