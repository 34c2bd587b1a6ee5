//! The backlog as shared state on a branch, for many workers on many clones.
//!
//! A change is a compare-and-swap on the state branch of the remote: fetch
//! the tip, apply the change (a pure function) to the backlog found there,
//! commit on top of that tip with plumbing, push. A push that is not a fast
//! forward is rejected by the remote: another worker got there first, so we
//! fetch again and re-apply the same change to the fresher state, after a
//! jittered, growing pause. There is never a textual merge of the JSON, and
//! the local branch is only ever fast-forwarded, so no worker can be left on
//! a diverged branch, a half-made commit or a held lock.
//!
//! Without a remote the same loop runs against the local branch ref, with
//! `update-ref`'s compare-and-swap in place of the push.

use std::time::Duration;

use super::store::{self, Applied, Change, BACKLOG_PATH};
use super::Backlog;
use crate::git::{self, Git};
use crate::repo::Repo;
use crate::Error;

/// How a push of a state commit went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushResult {
    Pushed,
    /// The remote moved on: fetch and try again.
    Stale,
    /// The remote refused for good (protected branch, hook): a human must act.
    Refused(String),
}

/// Read `git push --porcelain` output for the one ref pushed.
pub fn parse_push_porcelain(stdout: &str) -> Option<PushResult> {
    for line in stdout.lines() {
        let mut parts = line.split('\t');
        let (Some(flag), Some(_refs), Some(summary)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        return Some(match flag {
            " " | "+" | "-" | "*" | "=" => PushResult::Pushed,
            "!" if summary.starts_with("[rejected]") => PushResult::Stale,
            // Another push held or moved the ref at the same moment: a lost race too.
            "!" if [
                "stale info",
                "fetch first",
                "failed to update ref",
                "cannot lock ref",
                "failed to lock",
                "incorrect old value",
            ]
            .iter()
            .any(|s| summary.contains(s)) =>
            {
                PushResult::Stale
            }
            "!" => PushResult::Refused(summary.trim().to_owned()),
            _ => continue,
        });
    }
    None
}

/// Where the state lives and how to reach it.
#[derive(Debug, Clone)]
pub struct SharedState<'r> {
    repo: &'r Repo,
    branch: String,
    /// `None`: local only (compare-and-swap on the local ref).
    remote: Option<String>,
    /// How many times to try before giving up.
    pub max_tries: u32,
    /// The first pause after a lost race; it doubles up to `max_pause`.
    pub first_pause: Duration,
    pub max_pause: Duration,
}

impl<'r> SharedState<'r> {
    pub fn new(repo: &'r Repo, branch: impl Into<String>, remote: Option<String>) -> Self {
        SharedState {
            repo,
            branch: branch.into(),
            remote,
            max_tries: 40,
            first_pause: Duration::from_millis(20),
            max_pause: Duration::from_secs(2),
        }
    }

    pub fn branch(&self) -> &str {
        &self.branch
    }

    pub fn remote(&self) -> Option<&str> {
        self.remote.as_deref()
    }

    fn git(&self) -> &Git {
        self.repo.git()
    }

    fn remote_ref(&self) -> Option<String> {
        self.remote
            .as_ref()
            .map(|r| format!("refs/remotes/{r}/{}", self.branch))
    }

    fn local_ref(&self) -> String {
        format!("refs/heads/{}", self.branch)
    }

    /// Fetch the state branch and return its tip (`None` if it does not exist anywhere yet).
    pub fn fetch(&self) -> Result<Option<String>, Error> {
        if let (Some(remote), Some(rref)) = (&self.remote, self.remote_ref()) {
            let spec = format!("+refs/heads/{}:{rref}", self.branch);
            let out = self
                .git()
                .cmd([
                    "fetch",
                    "--quiet",
                    "--no-tags",
                    "--no-write-fetch-head",
                    remote,
                    &spec,
                ])
                .output()?;
            if out.success {
                return rev(self.git(), &rref);
            }
            if !out.stderr.contains("couldn't find remote ref") {
                return Err(Error::Failed(format!(
                    "could not fetch the state branch {} from {remote}: {}",
                    self.branch,
                    out.stderr.trim()
                )));
            }
            // The remote has no state branch yet: start from the local one.
        }
        rev(self.git(), &self.local_ref())
    }

    /// The backlog at the tip of the state branch, freshly fetched.
    pub fn read(&self) -> Result<(Backlog, Option<String>), Error> {
        let tip = self.fetch()?;
        Ok((self.read_at(tip.as_deref())?, tip))
    }

    /// The raw file at the freshly fetched tip, `None` if there is none.
    pub fn read_text(&self) -> Result<Option<String>, Error> {
        let tip = self.fetch()?;
        self.text_at(tip.as_deref())
    }

    fn text_at(&self, tip: Option<&str>) -> Result<Option<String>, Error> {
        let Some(tip) = tip else {
            return Ok(None);
        };
        let out = self
            .git()
            .cmd(["cat-file", "blob", &format!("{tip}:{BACKLOG_PATH}")])
            .output()?;
        if !out.success {
            return Ok(None);
        }
        String::from_utf8(out.stdout)
            .map(Some)
            .map_err(|_| Error::Corrupt {
                path: BACKLOG_PATH.into(),
                message: format!("not UTF-8 text at {tip}"),
            })
    }

    fn read_at(&self, tip: Option<&str>) -> Result<Backlog, Error> {
        match self.text_at(tip)? {
            Some(text) => store::parse(&text, std::path::Path::new(BACKLOG_PATH)),
            None => Ok(Backlog::default()),
        }
    }

    /// Apply `f` to the freshest state and publish the result, retrying on
    /// lost races. `f` may run several times, each time on a fresher state.
    pub fn update<T>(
        &self,
        mut f: impl FnMut(&mut Backlog) -> Result<Change<T>, Error>,
    ) -> Result<Applied<T>, Error> {
        let mut pause = self.first_pause;
        for attempt in 1..=self.max_tries {
            let tip = self.fetch()?;
            let before = self.read_at(tip.as_deref())?;
            store::check_writable(&before, std::path::Path::new(BACKLOG_PATH))?;
            let mut after = before.clone();
            let change = f(&mut after)?;
            let Some(message) = change.message.filter(|_| after != before) else {
                self.sync_local(tip.as_deref(), tip.as_deref());
                return Ok(Applied {
                    value: change.value,
                    commit: None,
                    changed: false,
                });
            };
            let text = store::to_json(&after);
            let commit = self.commit_on(tip.as_deref(), text.as_bytes(), &message)?;
            crate::failpoint::hit("shared.committed");
            match self.publish(tip.as_deref(), &commit)? {
                PushResult::Pushed => {
                    crate::failpoint::hit("shared.pushed");
                    self.sync_local(tip.as_deref(), Some(&commit));
                    return Ok(Applied {
                        value: change.value,
                        commit: Some(commit),
                        changed: true,
                    });
                }
                PushResult::Stale => {
                    tracing::debug!("state push {attempt} lost a race; retrying in {pause:?}");
                    // Full jitter: racing workers spread out instead of colliding again.
                    let jittered = pause.mul_f64(0.5 + fastrand::f64());
                    std::thread::sleep(jittered);
                    pause = (pause * 2).min(self.max_pause);
                }
                PushResult::Refused(why) => {
                    return Err(Error::Failed(format!(
                        "{} refused the state commit on {}: {why}",
                        self.remote.as_deref().unwrap_or("the repository"),
                        self.branch
                    )))
                }
            }
        }
        Err(Error::Contention(format!(
            "gave up updating the backlog on {} after {} tries: other workers kept changing it",
            self.branch, self.max_tries
        )))
    }

    fn commit_on(&self, tip: Option<&str>, data: &[u8], message: &str) -> Result<String, Error> {
        let git = self.git();
        let blob = String::from_utf8_lossy(
            &git.cmd(["hash-object", "-w", "--stdin"])
                .stdin(data)
                .run()?,
        )
        .trim()
        .to_owned();
        let base_tree = match tip {
            Some(t) => Some(git.text(["rev-parse", &format!("{t}^{{tree}}")])?),
            None => None,
        };
        let tree = git::tree_with_blobs(git, base_tree.as_deref(), &[(BACKLOG_PATH, &blob)])?;
        let parents: Vec<&str> = tip.into_iter().collect();
        store::commit_tree(git, &tree, &parents, message)
    }

    /// Make `commit` the new tip: a push to the remote, or a compare-and-swap of the local ref.
    fn publish(&self, tip: Option<&str>, commit: &str) -> Result<PushResult, Error> {
        let Some(remote) = &self.remote else {
            let old = tip.unwrap_or("0000000000000000000000000000000000000000");
            let out = self
                .git()
                .cmd(["update-ref", &self.local_ref(), commit, old])
                .output()?;
            return Ok(if out.success {
                PushResult::Pushed
            } else {
                PushResult::Stale
            });
        };
        let spec = format!("{commit}:refs/heads/{}", self.branch);
        let out = self
            .git()
            .cmd(["push", "--porcelain", "--quiet", remote, &spec])
            .output()?;
        match parse_push_porcelain(&out.stdout_text()) {
            Some(PushResult::Pushed) => {
                if let Some(rref) = self.remote_ref() {
                    let _ = self.git().cmd(["update-ref", &rref, commit]).output();
                }
                Ok(PushResult::Pushed)
            }
            Some(other) => Ok(other),
            None if out.success => Ok(PushResult::Pushed),
            None => Err(Error::Failed(format!(
                "could not push the state branch {} to {remote}: {}",
                self.branch,
                out.stderr.trim()
            ))),
        }
    }

    /// Bring the local state branch (and, if it is checked out, the working
    /// tree) forward to `new`, but only as a fast forward of a clean state:
    /// anything else is left alone, for the state lives on the remote.
    fn sync_local(&self, _old: Option<&str>, new: Option<&str>) {
        let Some(new) = new else { return };
        if self.remote.is_none() {
            // The local ref is the state itself; only a checked-out branch needs its files updated.
            if self.checked_out() {
                self.update_worktree_files(None, new);
            }
            return;
        }
        let git = self.git();
        let local = rev(git, &self.local_ref()).ok().flatten();
        if local.as_deref() == Some(new) {
            return;
        }
        if let Some(l) = &local {
            let ff = git
                .cmd(["merge-base", "--is-ancestor", l, new])
                .output()
                .is_ok_and(|o| o.success);
            if !ff {
                tracing::warn!(
                    "the local branch {} has diverged from {}/{}; leaving it as it is (the backlog state lives on the remote)",
                    self.branch,
                    self.remote.as_deref().unwrap_or_default(),
                    self.branch
                );
                return;
            }
        }
        if self.checked_out() {
            self.update_worktree_files(local.as_deref(), new);
        } else {
            let old = local.unwrap_or_else(|| "0000000000000000000000000000000000000000".into());
            let _ = git
                .cmd(["update-ref", &self.local_ref(), new, &old])
                .output();
        }
    }

    fn checked_out(&self) -> bool {
        self.git()
            .text(["symbolic-ref", "-q", "HEAD"])
            .is_ok_and(|h| h == self.local_ref())
    }

    /// Fast-forward the checked-out branch with a two-tree `read-tree -m -u`,
    /// which updates index and files like a checkout and refuses to overwrite
    /// local changes.
    fn update_worktree_files(&self, old: Option<&str>, new: &str) {
        let git = self.git();
        let head = rev(git, "HEAD").ok().flatten();
        let from = old.map(str::to_owned).or(head);
        let Some(from) = from else { return };
        if self.remote.is_none() && from == new {
            return;
        }
        let merged = git.cmd(["read-tree", "-m", "-u", &from, new]).output();
        match merged {
            Ok(o) if o.success => {
                if self.remote.is_some() {
                    let _ = git
                        .cmd(["update-ref", &self.local_ref(), new, &from])
                        .output();
                }
            }
            Ok(o) => tracing::warn!(
                "could not bring the working tree forward to the new backlog state: {}",
                o.stderr.trim()
            ),
            Err(e) => tracing::warn!("could not bring the working tree forward: {e}"),
        }
    }
}

fn rev(git: &Git, name: &str) -> Result<Option<String>, Error> {
    let out = git
        .cmd([
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{name}^{{commit}}"),
        ])
        .output()?;
    Ok(out.success.then(|| out.stdout_text()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_porcelain() {
        let ok = "To /tmp/o.git\n \tabc:refs/heads/main\t1111..2222\nDone\n";
        assert_eq!(parse_push_porcelain(ok), Some(PushResult::Pushed));
        let stale = "To /tmp/o.git\n!\tabc:refs/heads/main\t[rejected] (fetch first)\nDone\n";
        assert_eq!(parse_push_porcelain(stale), Some(PushResult::Stale));
        let nff = "To x\n!\tabc:refs/heads/main\t[rejected] (non-fast-forward)\nDone\n";
        assert_eq!(parse_push_porcelain(nff), Some(PushResult::Stale));
        let hook = "To x\n!\tabc:refs/heads/main\t[remote rejected] (protected branch hook declined)\nDone\n";
        assert!(
            matches!(parse_push_porcelain(hook), Some(PushResult::Refused(r)) if r.contains("protected"))
        );
        let raced =
            "To x\n!\tabc:refs/heads/main\t[remote rejected] (failed to update ref)\nDone\n";
        assert_eq!(parse_push_porcelain(raced), Some(PushResult::Stale));
        assert_eq!(parse_push_porcelain("fatal: nope\n"), None);
    }
}
