//! Which remote and which branches tgs works with: the *state branch* that
//! holds the shared backlog state, and the *base branch* that thoughts are
//! read from, worktrees start from and pull requests target.
//!
//! Invariants:
//! - The state lives on a branch of its own by default ([`DEFAULT_STATE_BRANCH`],
//!   an orphan history holding only `tgs/server/**`, made by the first state
//!   change). No user branch is pushed or moved by a state change.
//!   `server.state_branch: main` keeps the state in that branch's tree, as
//!   tgs did before; a repository whose base branch already holds the
//!   backlog file and has no state branch yet is detected as such a *legacy*
//!   layout and keeps working (`tgs server state migrate` moves it).
//! - The base branch is only read, and read as the remote has it (fetched),
//!   never as the local HEAD has it: what the server decides on is what every
//!   worker sees. Its default is the remote's default branch, not the branch
//!   checked out.
//! - A command that changes the state needs the remote it is configured
//!   with; local-only work is asked for explicitly (`--no-push`). Commands
//!   that only read fall back to the local refs.

use crate::repo::Repo;
use crate::Error;

/// The state branch when the configuration names none.
pub const DEFAULT_STATE_BRANCH: &str = "tgs-state";

/// Where the backlog file lives in a tree.
const BACKLOG_FILE: &str = "tgs/server/backlog.json";

/// What the caller asks for (settings and command-line flags).
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The remote's name (`server.remote`).
    pub remote: &'a str,
    /// `server.state_branch`, if set.
    pub state_branch: Option<&'a str>,
    /// `server.base_branch`, if set.
    pub base_branch: Option<&'a str>,
    /// Share state and work through the remote (`--no-push` turns this off).
    pub push: bool,
    /// The command changes the state or runs sessions: a missing remote is
    /// an error then, not a quiet switch to local-only work.
    pub write: bool,
}

/// A remote that exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub name: String,
    pub url: String,
}

/// The remote and branches a command works with, resolved once.
#[derive(Debug)]
pub struct Topology {
    /// The remote to fetch from and push to; `None` for local-only work.
    remote: Option<Remote>,
    /// The remote's name even when it is not used (for labels and hints).
    remote_name: String,
    state_branch: String,
    /// The state lives in the base branch's tree (an explicit
    /// `state_branch` equal to the base, or a detected older layout).
    in_base: bool,
    /// The state branch was detected as the base branch, not configured.
    detected_legacy: bool,
    base: std::sync::OnceLock<Result<String, (String, Option<String>)>>,
    base_configured: Option<String>,
    /// What `refs/remotes/<remote>/HEAD` names, read with the other refs.
    remote_head: Option<String>,
}

/// The tip of the base branch as a command should read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseTip {
    /// `origin/main`, or `main` for local-only work.
    pub label: String,
    /// The branch name (`main`).
    pub branch: String,
    /// Its commit; `None` when the branch has no commits there yet.
    pub commit: Option<String>,
}

impl Topology {
    /// Resolve the remote and the state branch (the base branch is resolved
    /// when first needed: that may ask the remote).
    ///
    /// Errors: [`Error::Setup`] for a missing remote on a write without
    /// `--no-push`, or a state branch name that is not allowed.
    pub fn resolve(repo: &Repo, req: &Request<'_>) -> Result<Topology, Error> {
        if let Some(b) = req.state_branch {
            check_state_branch_name(b)?;
        }
        let url = repo.git().cmd(["remote", "get-url", req.remote]).output()?;
        let remote = if url.success {
            Some(Remote {
                name: req.remote.to_owned(),
                url: url.stdout_text(),
            })
        } else {
            None
        };
        if remote.is_none() && req.push && req.write {
            return Err(Error::Setup {
                message: format!(
                    "the remote `{}` does not exist; tgs shares the backlog state and pushes work through it",
                    req.remote
                ),
                hint: Some(format!(
                    "add it (git remote add {} URL), set server.remote in tgs/tgs.yml, or pass --no-push for local-only work",
                    req.remote
                )),
            });
        }
        let remote = remote.filter(|_| req.push);
        let mut topo = Topology {
            remote,
            remote_name: req.remote.to_owned(),
            state_branch: req.state_branch.unwrap_or(DEFAULT_STATE_BRANCH).to_owned(),
            in_base: false,
            detected_legacy: false,
            base: std::sync::OnceLock::new(),
            base_configured: req.base_branch.map(str::to_owned),
            remote_head: None,
        };
        let known = topo.known_refs(repo)?;
        topo.remote_head = known.remote_head.clone();
        if req.state_branch.is_none() && !known.state_branch {
            topo.detect_legacy(repo)?;
        }
        if !topo.detected_legacy {
            // An explicit state branch equal to the base keeps the older
            // layout; known without asking the remote, or not at all.
            let base = topo.base_configured.as_ref().or(topo.remote_head.as_ref());
            topo.in_base = base == Some(&topo.state_branch);
        }
        Ok(topo)
    }

    /// The remote, when the state and the work go through one.
    pub fn remote(&self) -> Option<&Remote> {
        self.remote.as_ref()
    }

    pub fn state_branch(&self) -> &str {
        &self.state_branch
    }

    /// Whether the state lives in the base branch's tree (the older layout).
    pub fn state_in_base(&self) -> bool {
        self.in_base
    }

    /// Whether that older layout was detected rather than configured: the
    /// caller should say how to move the state to a branch of its own.
    pub fn detected_legacy(&self) -> bool {
        self.detected_legacy
    }

    /// `origin/tgs-state`, or `tgs-state` for local-only work.
    pub fn state_label(&self) -> String {
        self.label(&self.state_branch)
    }

    fn label(&self, branch: &str) -> String {
        match &self.remote {
            Some(r) => format!("{}/{branch}", r.name),
            None => branch.to_owned(),
        }
    }

    /// Which of the refs this resolution looks at exist, in one process.
    fn known_refs(&self, repo: &Repo) -> Result<KnownRefs, Error> {
        let r = &self.remote_name;
        let remote_state = format!("refs/remotes/{r}/{}", self.state_branch);
        let local_state = format!("refs/heads/{}", self.state_branch);
        let remote_head = format!("refs/remotes/{r}/HEAD");
        let out = repo
            .git()
            .cmd([
                "for-each-ref",
                "--format=%(refname)%09%(symref)",
                &remote_state,
                &local_state,
                &remote_head,
            ])
            .output()?;
        Ok(parse_known_refs(
            &out.stdout_text(),
            &remote_state,
            &local_state,
            &remote_head,
            &format!("refs/remotes/{r}/"),
        ))
    }

    /// No state branch is known yet: if the base branch's tree already holds
    /// the backlog file, the repository keeps its state there (the older
    /// layout), unless the remote has a state branch this clone has not seen.
    fn detect_legacy(&mut self, repo: &Repo) -> Result<(), Error> {
        let Ok(base) = self.base_branch_name(repo) else {
            return Ok(());
        };
        let base_ref = match &self.remote {
            Some(r) => format!("refs/remotes/{}/{base}", r.name),
            None => format!("refs/heads/{base}"),
        };
        let has_file = repo
            .git()
            .cmd(["cat-file", "-e", &format!("{base_ref}:{BACKLOG_FILE}")])
            .output()?
            .success;
        if !has_file {
            return Ok(());
        }
        if let Some(r) = &self.remote {
            let probe = repo
                .git()
                .cmd([
                    "ls-remote",
                    "--exit-code",
                    "--heads",
                    &r.name,
                    &self.state_branch,
                ])
                .output()?;
            if probe.success {
                return Ok(());
            }
        }
        tracing::debug!("the backlog lives in {base}'s tree: the older layout");
        self.state_branch = base;
        self.in_base = true;
        self.detected_legacy = true;
        Ok(())
    }

    /// The base branch's name: configured, else the remote's default branch,
    /// else (local-only work) the branch checked out.
    ///
    /// Errors: [`Error::Setup`] when none can be found (a remote without
    /// branches, a detached HEAD or a repository without commits).
    pub fn base_branch_name(&self, repo: &Repo) -> Result<String, Error> {
        self.base
            .get_or_init(|| self.find_base(repo))
            .clone()
            .map_err(|(message, hint)| Error::Setup { message, hint })
    }

    fn find_base(&self, repo: &Repo) -> Result<String, (String, Option<String>)> {
        if let Some(b) = &self.base_configured {
            return Ok(b.clone());
        }
        if let Some(h) = &self.remote_head {
            return Ok(h.clone());
        }
        if let Some(r) = &self.remote {
            let out = repo
                .git()
                .cmd(["ls-remote", "--symref", &r.name, "HEAD"])
                .output()
                .map_err(|e| (e.to_string(), None))?;
            if let Some(b) = parse_ls_remote_symref(&out.stdout_text()) {
                return Ok(b);
            }
            let why = if out.success {
                format!(
                    "the remote `{}` has no default branch yet (nothing was pushed to it)",
                    r.name
                )
            } else {
                format!(
                    "could not ask the remote `{}` for its default branch: {}",
                    r.name,
                    out.stderr.trim()
                )
            };
            return Err((
                why,
                Some(
                    "push your default branch first, or set server.base_branch in tgs/tgs.yml"
                        .into(),
                ),
            ));
        }
        match repo.current_branch() {
            Some(b) => Ok(b.to_owned()),
            None => Err((
                format!(
                    "{}: there is no base branch to read thoughts from",
                    repo.head_problem().unwrap_or_default()
                ),
                Some(match repo.head_state() {
                    crate::repo::Head::Unborn(_) => {
                        "commit the thoughts first (or set server.base_branch in tgs/tgs.yml)"
                            .into()
                    }
                    _ => "check out a branch, or set server.base_branch in tgs/tgs.yml".into(),
                }),
            )),
        }
    }

    /// `origin/main`, or `main` for local-only work.
    pub fn base_label(&self, repo: &Repo) -> Result<String, Error> {
        Ok(self.label(&self.base_branch_name(repo)?))
    }

    /// The base branch's tip as this clone last fetched it, without asking
    /// the remote (fetched only when this clone has never seen it): for
    /// information that may be a little behind, off the hot path.
    pub fn known_base(&self, repo: &Repo) -> Result<BaseTip, Error> {
        let branch = self.base_branch_name(repo)?;
        let full = match &self.remote {
            Some(r) => format!("refs/remotes/{}/{branch}", r.name),
            None => format!("refs/heads/{branch}"),
        };
        match rev_parse_commit(repo, &full)? {
            Some(commit) => Ok(BaseTip {
                label: self.label(&branch),
                branch,
                commit: Some(commit),
            }),
            None => self.fetch_base(repo),
        }
    }

    /// The base branch's tip, freshly fetched from the remote (the local
    /// branch for local-only work).
    pub fn fetch_base(&self, repo: &Repo) -> Result<BaseTip, Error> {
        let branch = self.base_branch_name(repo)?;
        let label = self.label(&branch);
        let full = match &self.remote {
            Some(r) => {
                let tracking = format!("refs/remotes/{}/{branch}", r.name);
                let spec = format!("+refs/heads/{branch}:{tracking}");
                let out = repo.git().fetch(&r.name, &spec).output()?;
                if !out.success {
                    if out.stderr.contains("couldn't find remote ref") {
                        return Ok(BaseTip {
                            label,
                            branch,
                            commit: None,
                        });
                    }
                    return Err(Error::Failed(format!(
                        "could not fetch {branch} from {}: {}",
                        r.name,
                        out.stderr.trim()
                    )));
                }
                tracking
            }
            None => format!("refs/heads/{branch}"),
        };
        Ok(BaseTip {
            label,
            branch,
            commit: rev_parse_commit(repo, &full)?,
        })
    }
}

/// The commit a full ref name points at, if it exists.
fn rev_parse_commit(repo: &Repo, full: &str) -> Result<Option<String>, Error> {
    let out = repo
        .git()
        .cmd([
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{full}^{{commit}}"),
        ])
        .output()?;
    Ok(out.success.then(|| out.stdout_text()))
}

/// Which refs exist, from `for-each-ref --format=%(refname)%09%(symref)`.
#[derive(Debug, Default, PartialEq, Eq)]
struct KnownRefs {
    state_branch: bool,
    /// The branch `refs/remotes/<remote>/HEAD` points to.
    remote_head: Option<String>,
}

fn parse_known_refs(
    out: &str,
    remote_state: &str,
    local_state: &str,
    remote_head: &str,
    remote_prefix: &str,
) -> KnownRefs {
    let mut k = KnownRefs::default();
    for line in out.lines() {
        let (name, target) = line.split_once('\t').unwrap_or((line, ""));
        if name == remote_state || name == local_state {
            k.state_branch = true;
        } else if name == remote_head {
            k.remote_head = target
                .strip_prefix(remote_prefix)
                .filter(|b| !b.is_empty())
                .map(str::to_owned);
        }
    }
    k
}

/// The branch `ls-remote --symref REMOTE HEAD` names (`ref: refs/heads/main\tHEAD`).
fn parse_ls_remote_symref(out: &str) -> Option<String> {
    out.lines().find_map(|l| {
        let rest = l.strip_prefix("ref: refs/heads/")?;
        let (branch, what) = rest.split_once('\t')?;
        (what == "HEAD" && !branch.is_empty()).then(|| branch.to_owned())
    })
}

/// A state branch must be a plain branch name that cannot collide with the
/// work branches `tgs/<thought>` (git cannot hold both `tgs` and `tgs/x`).
pub fn check_state_branch_name(name: &str) -> Result<(), Error> {
    let bad_char = |c: char| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c);
    let malformed = name.is_empty()
        || name.starts_with(['-', '/', '.'])
        || name.ends_with(['/', '.'])
        || name.ends_with(".lock")
        || name.contains("..")
        || name.contains("//")
        || name.contains("@{")
        || name == "@"
        || name.chars().any(bad_char);
    if malformed {
        return Err(Error::Setup {
            message: format!("server.state_branch {name:?} is not a valid branch name"),
            hint: Some(format!("the default is {DEFAULT_STATE_BRANCH}")),
        });
    }
    if name == "tgs" || name.starts_with("tgs/") {
        return Err(Error::Setup {
            message: format!(
                "server.state_branch {name:?} collides with the work branches tgs/<thought>"
            ),
            hint: Some(format!(
                "use a name outside tgs/, such as {DEFAULT_STATE_BRANCH}"
            )),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_refs_are_read_from_one_listing() {
        let out =
            "refs/remotes/origin/HEAD\trefs/remotes/origin/main\nrefs/remotes/origin/tgs-state\t\n";
        let k = parse_known_refs(
            out,
            "refs/remotes/origin/tgs-state",
            "refs/heads/tgs-state",
            "refs/remotes/origin/HEAD",
            "refs/remotes/origin/",
        );
        assert_eq!(
            k,
            KnownRefs {
                state_branch: true,
                remote_head: Some("main".into())
            }
        );
        let none = parse_known_refs(
            "",
            "refs/remotes/origin/tgs-state",
            "refs/heads/tgs-state",
            "refs/remotes/origin/HEAD",
            "refs/remotes/origin/",
        );
        assert_eq!(none, KnownRefs::default());
    }

    #[test]
    fn default_branch_from_ls_remote() {
        let out = "ref: refs/heads/trunk\tHEAD\n1234567890123456789012345678901234567890\tHEAD\n";
        assert_eq!(parse_ls_remote_symref(out).as_deref(), Some("trunk"));
        assert_eq!(parse_ls_remote_symref(""), None);
        assert_eq!(
            parse_ls_remote_symref("1234\trefs/heads/main\n"),
            None,
            "no symref line: no default branch"
        );
    }

    #[test]
    fn state_branch_names() {
        for ok in ["tgs-state", "main", "ops/tgs-state", "state.v2"] {
            assert!(check_state_branch_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "tgs",
            "tgs/state",
            "-x",
            "a..b",
            "a b",
            "x.lock",
            "a:b",
            "@",
            "a/",
            "a\nb",
        ] {
            assert!(check_state_branch_name(bad).is_err(), "{bad:?}");
        }
    }
}
