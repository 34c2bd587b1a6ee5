//! The repository an agent works in: `.tgs/worktrees/<thought>`, a git
//! repository of its own on branch `tgs/<thought>`, started from the fresh
//! tip of the base branch. It borrows the user's objects read-only
//! (`objects/info/alternates`), so it is cheap on a large repository, and
//! shares nothing else with the user's: no refs (the agent cannot move the
//! user's branches), no config, no hooks. Its work comes back through
//! [`hand_in`], which runs no git there: it reads the agent's HEAD as files,
//! commits the leftovers in a git directory of tgs's own that borrows the
//! agent's objects, and fetches the head from there into the user's
//! repository. A directory left by an earlier attempt (or an earlier tgs's
//! git worktree) is replaced, never an error.
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

/// Write what git reads as configuration in a new agent's repository
/// `gitdir`, as tgs wants it: `config` (the identity the agent's commits
/// get, nothing else), the alternates naming the user's objects, `shallow`
/// as the user's; and remove what could run or redirect anything (hooks,
/// `commondir`, `info/attributes`, grafts). The hand-in reads none of it.
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
    ] {
        let p = gitdir.join(gone);
        let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
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
///
/// tgs runs no git in the agent's repository: it reads its `HEAD` (and a
/// merge left unconcluded) as files, then works in a git directory of its
/// own (in the user's git directory, which the agent never saw) that
/// borrows the agent's objects: there the leftovers are committed, with
/// the agent's tree as the work tree and a copy of its index, and from
/// there the head is fetched. No configuration, hook, attribute filter or
/// `core.fsmonitor` of the agent's is ever read.
pub fn hand_in_to(repo: &Repo, wt: &Worktree, full_ref: &str) -> Result<String, Error> {
    let gitdir = wt.path.join(".git");
    let real_dir = std::fs::symlink_metadata(&gitdir).is_ok_and(|m| m.is_dir());
    if !real_dir {
        return Err(Error::invalid(
            "the agent replaced its repository's .git (a link, a file, or gone): its work is not read",
        ));
    }
    // git never makes a symbolic link in a repository's own directory; one
    // there is the agent's, and would lead what tgs reads (its HEAD, its
    // index, its objects) anywhere the link points.
    if let Some(link) = first_link(&gitdir) {
        return Err(Error::invalid(format!(
            "the agent left a symbolic link in its repository's .git ({}): its work is not read",
            link.strip_prefix(&wt.path).unwrap_or(&link).display()
        )));
    }
    let start = agent_head(repo, &gitdir)?;
    // What git would read of the agent's object store beyond its objects:
    // where else to look (it must be the user's objects alone), and commit
    // graphs, which git believes about parents.
    let info = gitdir.join("objects/info");
    std::fs::create_dir_all(&info)?;
    std::fs::write(
        info.join("alternates"),
        format!("{}\n", path_str(&repo.common_dir().join("objects"))?),
    )?;
    for graph in ["commit-graph", "commit-graphs", "multi-pack-index"] {
        let p = info.join(graph);
        let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
    }
    let _ = std::fs::remove_file(gitdir.join("objects/pack/multi-pack-index"));
    let own = HandIn::new(repo, &gitdir)?;
    let head = own.commit_leftovers(&wt.path, &gitdir, &start)?;
    own.git().cmd(["update-ref", HAND_IN_REF, &head]).run()?;
    let out = repo
        .git()
        .fetch(
            path_str(own.dir.path())?,
            &format!("+{HAND_IN_REF}:{full_ref}"),
        )
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

/// The ref the hand-in's own git directory holds the work on.
const HAND_IN_REF: &str = "refs/heads/hand-in";

/// The first symbolic link under `dir` (links not followed), if any.
fn first_link(dir: &Path) -> Option<PathBuf> {
    walkdir::WalkDir::new(dir)
        .follow_links(false)
        .into_iter()
        .flatten()
        .find(|e| e.path_is_symlink())
        .map(|e| e.path().to_owned())
}

/// Where the agent's work stands, read from the files of its `.git`
/// (never by git there): its `HEAD`'s commit, and the other parent of a
/// merge it left unconcluded.
#[derive(Debug, Clone, PartialEq)]
struct AgentHead {
    commit: String,
    merging: Option<String>,
}

/// Read `HEAD` (a commit id, or `ref: refs/heads/...` resolved through the
/// loose ref or `packed-refs`) and `MERGE_HEAD` of the agent's `gitdir`.
///
/// Errors: a HEAD that names no commit, or a ref name git would refuse.
fn agent_head(repo: &Repo, gitdir: &Path) -> Result<AgentHead, Error> {
    let read = |name: &str| {
        let mut f = std::fs::File::open(gitdir.join(name)).ok()?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(&mut f, 4096), &mut text).ok()?;
        Some(text)
    };
    let head = read("HEAD").unwrap_or_default();
    let commit = match head.trim().strip_prefix("ref:").map(str::trim) {
        Some(name) => {
            let valid = name.starts_with("refs/")
                && repo
                    .git()
                    .cmd(["check-ref-format", name])
                    .output()
                    .is_ok_and(|o| o.success);
            if !valid {
                return Err(Error::invalid(format!(
                    "the agent's HEAD names {name:?}, which is not a branch: its work is not read"
                )));
            }
            read(name)
                .map(|t| t.trim().to_owned())
                .or_else(|| packed_ref(&read("packed-refs").unwrap_or_default(), name))
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "the agent's HEAD names {name}, which its repository does not hold: its work is not read"
                    ))
                })?
        }
        None => head.trim().to_owned(),
    };
    if !is_object_id(&commit) {
        return Err(Error::invalid(
            "the agent's HEAD is not a commit: its work is not read",
        ));
    }
    let merging = read("MERGE_HEAD")
        .and_then(|t| t.lines().next().map(str::trim).map(str::to_owned))
        .filter(|c| is_object_id(c));
    Ok(AgentHead { commit, merging })
}

/// The commit `name` has in a `packed-refs` file's text. Pure.
fn packed_ref(text: &str, name: &str) -> Option<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('^'))
        .find_map(|l| {
            let (id, r) = l.split_once(' ')?;
            (r.trim() == name).then(|| id.to_owned())
        })
}

/// 40 (SHA-1) or 64 (SHA-256) lower-case hex digits. Pure.
fn is_object_id(s: &str) -> bool {
    matches!(s.len(), 40 | 64)
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The name a hand-in's git directory starts with, in `<git dir>/tgs`.
const HAND_IN_PREFIX: &str = "hand-in-";

/// A hand-in takes seconds: one whose directory is older than this was
/// left by a tgs that was killed during it.
const HAND_IN_LEFT_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// Remove the hand-in directories in `parent` that killed runs left (best
/// effort: one that cannot be removed is left for the next time).
fn sweep_hand_ins(parent: &Path) {
    sweep(parent, |name, path| {
        name.starts_with(HAND_IN_PREFIX) && untouched_for(path, HAND_IN_LEFT_AFTER)
    });
}

/// Remove each folder of `parent` that `left(name, path)` says a killed
/// run left behind (best effort: one that cannot be removed is logged and
/// left for the next time). The folders of tgs's own in its git directory
/// (hand-ins, session artifacts) are swept this way.
pub(crate) fn sweep(parent: &Path, left: impl Fn(&str, &Path) -> bool) {
    for d in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        let path = d.path();
        if left(&d.file_name().to_string_lossy(), &path) {
            if let Err(e) = std::fs::remove_dir_all(&path) {
                tracing::warn!("{}: {e}", path.display());
            }
        }
    }
}

/// Whether `path` was last changed more than `age` ago (false when that
/// cannot be told).
pub(crate) fn untouched_for(path: &Path, age: std::time::Duration) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|e| e > age))
}

/// A git directory of tgs's own for one hand-in, removed when dropped. It
/// borrows the agent's objects and the user's (`objects/info/alternates`),
/// has no configuration, no hooks, and its own index.
struct HandIn {
    dir: tempfile::TempDir,
    /// `Name <email>`, as the user's repository commits.
    identity: String,
}

impl HandIn {
    fn new(repo: &Repo, agent_gitdir: &Path) -> Result<HandIn, Error> {
        let parent = repo.common_dir().join("tgs");
        std::fs::create_dir_all(&parent)?;
        sweep_hand_ins(&parent);
        let dir = tempfile::Builder::new()
            .prefix(HAND_IN_PREFIX)
            .tempdir_in(&parent)?;
        repo.git()
            .cmd([
                "init",
                "--quiet",
                "--bare",
                "--template=",
                path_str(dir.path())?,
            ])
            .run()?;
        let info = dir.path().join("objects/info");
        std::fs::create_dir_all(&info)?;
        std::fs::write(
            info.join("alternates"),
            format!(
                "{}\n{}\n",
                path_str(&agent_gitdir.join("objects"))?,
                path_str(&repo.common_dir().join("objects"))?
            ),
        )?;
        Ok(HandIn {
            dir,
            identity: crate::git::committer_ident(repo.git()),
        })
    }

    /// git in this directory (nothing of the agent's read as configuration).
    fn git(&self) -> Git {
        Git::new(self.dir.path())
    }

    /// git here with `work` as the work tree and this directory's index.
    fn on(&self, work: &Path, args: &[&str]) -> crate::git::GitCommand {
        self.git()
            .cmd(args)
            .env("GIT_DIR", self.dir.path())
            .env("GIT_WORK_TREE", work)
            .env("GIT_INDEX_FILE", self.dir.path().join("index"))
    }

    /// Commit what the agent left uncommitted in `work` on `start` (a merge
    /// it left unconcluded is concluded with both parents): the new head,
    /// or `start`'s commit when nothing was left. The agent's index is
    /// copied (its file-status cache spares hashing every file again); one
    /// git cannot use is replaced by `start`'s tree.
    fn commit_leftovers(
        &self,
        work: &Path,
        agent_gitdir: &Path,
        start: &AgentHead,
    ) -> Result<String, Error> {
        let index = self.dir.path().join("index");
        let copied = std::fs::copy(agent_gitdir.join("index"), &index).is_ok();
        if !copied || !self.on(work, &["add", "-A"]).output()?.success {
            let _ = std::fs::remove_file(&index);
            self.on(work, &["read-tree", &start.commit]).run()?;
            self.on(work, &["add", "-A"]).run()?;
        }
        let tree = self.on(work, &["write-tree"]).run()?;
        let tree = String::from_utf8_lossy(&tree).trim().to_owned();
        let start_tree = self
            .git()
            .text(["rev-parse", &format!("{}^{{tree}}", start.commit)])?;
        if tree == start_tree && start.merging.is_none() {
            return Ok(start.commit.clone());
        }
        let mut args = vec!["commit-tree", tree.as_str(), "-p", start.commit.as_str()];
        if let Some(other) = &start.merging {
            args.extend(["-p", other.as_str()]);
        }
        args.extend(["-m", "tgs: commit work the agent left uncommitted"]);
        // The identity the user's repository commits with (this directory
        // has no configuration of its own).
        let (name, email) = split_ident(&self.identity);
        let out = self
            .git()
            .cmd(&args)
            .env("GIT_AUTHOR_NAME", name)
            .env("GIT_AUTHOR_EMAIL", email)
            .env("GIT_COMMITTER_NAME", name)
            .env("GIT_COMMITTER_EMAIL", email)
            .run()?;
        Ok(String::from_utf8_lossy(&out).trim().to_owned())
    }
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
    fn hand_in_directories_left_by_a_killed_run_are_swept() {
        let parent = tempfile::tempdir().unwrap();
        for d in ["hand-in-old", "hand-in-new", "artifacts"] {
            std::fs::create_dir_all(parent.path().join(d).join("objects")).unwrap();
        }
        for d in ["hand-in-old", "artifacts"] {
            let ok = std::process::Command::new("touch")
                .args(["-d", "2 hours ago"])
                .arg(parent.path().join(d))
                .status()
                .unwrap();
            assert!(ok.success());
        }
        sweep_hand_ins(parent.path());
        let mut left: Vec<String> = std::fs::read_dir(parent.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["artifacts", "hand-in-new"]);
    }

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
    fn packed_refs_and_object_ids_are_read_as_git_writes_them() {
        let a = "a".repeat(40);
        let b = "b".repeat(40);
        let text = format!(
            "# pack-refs with: peeled fully-peeled sorted\n{a} refs/heads/main\n^{b}\n{b} refs/heads/tgs/x\n"
        );
        assert_eq!(packed_ref(&text, "refs/heads/tgs/x"), Some(b.clone()));
        assert_eq!(packed_ref(&text, "refs/heads/main"), Some(a.clone()));
        assert_eq!(packed_ref(&text, "refs/heads/other"), None);
        assert!(is_object_id(&a) && is_object_id(&"0".repeat(64)));
        for bad in [
            "",
            "abc",
            &"A".repeat(40),
            &format!("{a}\n"),
            &"g".repeat(40),
        ] {
            assert!(!is_object_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn identities_become_quoted_config_values() {
        assert_eq!(split_ident("A B <a@b>"), ("A B", "a@b"));
        assert_eq!(split_ident("junk"), ("tgs", "tgs@localhost"));
        assert_eq!(config_value("x\"y\\z\n[core]"), "\"x\\\"y\\\\z[core]\"");
    }
}
