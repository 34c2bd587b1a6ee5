//! Handing verified work over: push its branch, then open (or update) its
//! pull request.
//!
//! The two halves fail differently. A push that fails leaves the work in
//! this clone only: the session counts as failed. A pull request that cannot
//! be opened after the push (rate limits, GitHub down, a token that lacks a
//! permission) loses nothing: the entry waits as `handover_pending` with the
//! pushed head, and a later `run` or `sync-prs` retries only this step, with
//! no agent session. A forge that refuses the pull request because the
//! branch has no commits over the base rejects the work itself.

use std::time::Duration;

use crate::backlog::store::Change;
use crate::backlog::target::StateTarget;
use crate::backlog::{Entry, Status};
use crate::config::PrConfig;
use crate::events::{Disposition, Event, Sink};
use crate::forge::{Failure, Forge, PullRequest};
use crate::github;
use crate::prompt;
use crate::repo::Repo;
use crate::thought::ThoughtIndex;
use crate::{clock, Error, ForgeErrorKind};

/// How a hand-over went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handover {
    /// Done: the pull request (when a forge was asked to open one).
    Done { pr_url: Option<String> },
    /// The branch could not be pushed: the work is in this clone only.
    PushFailed(String),
    /// A revision's branch moved (or went) on the remote while it ran.
    Moved(String),
    /// Pushed; the pull request could not be opened now. Nothing is lost.
    Pending(String),
    /// The pull request was refused for a reason of the work: by the forge,
    /// or by tgs (a secret in its title or body).
    Rejected(String),
    /// Not pushed: the branch on the remote holds work of people's that
    /// tgs never recorded (see [`guard`]). A human must decide.
    Refused(String),
}

/// Whether tgs may push a first session's work over `branch` on `remote`:
/// yes when the branch is not there, or is at `recorded` (the head this
/// state says tgs pushed), or no open pull request of it has a review or
/// comment of people's (a branch left by a crashed hand-over is re-pushed).
/// Otherwise the remote holds work tgs did not move there, under review:
/// `Err(Refused)`; a forge that cannot tell: `Err(PushFailed)`, tried later.
pub fn guard(
    repo: &Repo,
    remote: &str,
    branch: &str,
    recorded: Option<&str>,
    forge: Option<&dyn Forge>,
) -> Result<(), Handover> {
    let Some(tip) = remote_tip(repo, remote, branch) else {
        return Ok(());
    };
    if recorded == Some(tip.as_str()) {
        return Ok(());
    }
    let Some(forge) = forge else {
        return Ok(());
    };
    match forge.human_stake_in(branch) {
        Ok(None) => Ok(()),
        Ok(Some(url)) => Err(Handover::Refused(format!(
            "{branch} on {remote} is the head of the open pull request {url}, which people have reviewed or commented on, at a commit this state never recorded ({}): tgs does not push over it; close that pull request or delete the branch, then retry the thought",
            &tip[..tip.len().min(12)]
        ))),
        Err(e) => Err(Handover::PushFailed(format!(
            "cannot tell whether {branch} is the head of an open pull request: {e}"
        ))),
    }
}

/// The commit `branch` is at on `remote`, if it is there (`git ls-remote`).
fn remote_tip(repo: &Repo, remote: &str, branch: &str) -> Option<String> {
    let r = format!("refs/heads/{branch}");
    let out = repo.git().cmd(["ls-remote", remote, &r]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.split_once('\t').filter(|(_, name)| *name == r))
        .map(|(oid, _)| oid.to_owned())
}

/// What a pull request is made of, besides the entry.
pub struct PrFacts<'a> {
    pub base_branch: &'a str,
    pub agent: &'a str,
    pub turns: Option<u32>,
    pub cost_usd: Option<f64>,
    pub title_prefix: &'a str,
    pub draft: bool,
    pub labels: &'a [String],
    pub reviewers: &'a [String],
    /// `ai.redact_env_keys`: more variables whose values must not be sent.
    pub redact_env_keys: &'a [String],
}

/// Push `branch` (at `head`) to `remote`; the ref is forced because the
/// branch is tgs's own, re-made by each attempt.
pub fn push(repo: &Repo, remote: &str, branch: &str, head: &str) -> Result<(), String> {
    let out = push_spec(repo, remote, &format!("+{head}:refs/heads/{branch}"))?;
    if out.success {
        Ok(())
    } else {
        Err(format!("could not push {branch}: {}", out.stderr.trim()))
    }
}

/// How pushing a revision went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardError {
    /// The branch is no longer at `tip` on the remote: someone pushed to it,
    /// or it was deleted (its PR merged or closed).
    Moved(String),
    Failed(String),
}

/// Push `head` onto `branch` on `remote` only if the remote still has it at
/// `tip` (the commit the revision started from): a branch that moved or was
/// deleted meanwhile refuses it, nothing of anyone's is lost, and no deleted
/// branch comes back.
pub fn push_forward(
    repo: &Repo,
    remote: &str,
    branch: &str,
    tip: &str,
    head: &str,
) -> Result<(), ForwardError> {
    let lease = format!("--force-with-lease=refs/heads/{branch}:{tip}");
    let spec = format!("{head}:refs/heads/{branch}");
    let out = repo
        .git()
        .cmd([
            "push",
            "--quiet",
            "--porcelain",
            "--no-verify",
            &lease,
            remote,
            &spec,
        ])
        .output()
        .map_err(|e| ForwardError::Failed(e.to_string()))?;
    if out.success {
        return Ok(());
    }
    let text = format!("{}\n{}", out.stdout_text(), out.stderr);
    if text.contains("[rejected]")
        || text.contains("stale info")
        || text.contains("non-fast-forward")
    {
        return Err(ForwardError::Moved(format!(
            "{branch} moved on {remote} while the revision ran (pushed to, or deleted); the revision was not pushed"
        )));
    }
    Err(ForwardError::Failed(format!(
        "could not push {branch}: {}",
        out.stderr.trim()
    )))
}

/// `git push` of one refspec, hooks skipped (tgs checked the work itself).
pub(super) fn push_spec(
    repo: &Repo,
    remote: &str,
    spec: &str,
) -> Result<crate::git::GitOutput, String> {
    repo.git()
        .cmd([
            "push",
            "--quiet",
            "--porcelain",
            "--no-verify",
            remote,
            spec,
        ])
        .output()
        .map_err(|e| e.to_string())
}

/// The reply on a pull request for revision `rev`, which moved its branch
/// from `tip` to `head`.
pub fn revision_reply(
    repo: &Repo,
    entry: &Entry,
    rev: &crate::backlog::Revision,
    tip: &str,
    head: &str,
    max: u32,
) -> String {
    use crate::backlog::RevisionKind;
    let range = format!("{tip}..{head}");
    let update = rev.kind == RevisionKind::Update;
    // An update's merge brings the base's commits: name only the branch's own.
    let mut log = vec!["log", "--reverse", "--format=%h%x09%s"];
    if update {
        log.push("--first-parent");
    }
    log.push(&range);
    let commits = repo
        .git()
        .text(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(id, s)| (id.to_owned(), s.to_owned()))
        .collect();
    let files = if update {
        Vec::new()
    } else {
        repo.git()
            .cmd(["diff", "--name-only", "-z", tip, head])
            .run()
            .map(|o| crate::verify::parse_name_list(&o))
            .unwrap_or_default()
    };
    let answers = match rev.kind {
        RevisionKind::ChangesRequested => {
            format!("the review by @{} that requested changes", rev.author)
        }
        RevisionKind::Command => format!("the comment by @{} asking for it", rev.author),
        RevisionKind::Update => "the conflict with the base branch".to_owned(),
    };
    let number = entry.review.as_ref().map_or(0, |r| r.spent()) + usize::from(!update);
    github::revision_reply(&github::RevisionReply {
        number,
        max,
        answers,
        url: rev.url.clone(),
        from: tip.to_owned(),
        to: head.to_owned(),
        commits,
        files,
    })
}

/// Open (or update) the pull request of `entry`'s work at `head`.
pub fn open_pr(
    repo: &Repo,
    forge: &dyn Forge,
    entry: &Entry,
    branch: &str,
    head: &str,
    facts: &PrFacts<'_>,
) -> Handover {
    let pr = match pull_request(repo, forge, entry, branch, head, facts) {
        Ok(pr) => pr,
        Err(e) => return Handover::Pending(format!("could not prepare the pull request: {e}")),
    };
    if let Some(why) =
        crate::secrets::refuse_pull_request(facts.redact_env_keys, &pr.title, &pr.body)
    {
        return Handover::Rejected(why);
    }
    crate::failpoint::hit("runner.pr-requesting");
    match forge.open_or_update_pr(&pr) {
        Ok(opened) => {
            crate::failpoint::hit("runner.pr-opened");
            Handover::Done {
                pr_url: Some(opened.url),
            }
        }
        Err(Error::Forge {
            kind: ForgeErrorKind::NoCommits,
            message,
        }) => Handover::Rejected(format!(
            "{} has no commits over {}: {message}",
            branch, facts.base_branch
        )),
        Err(e) => Handover::Pending(format!("could not open the pull request: {e}")),
    }
}

/// The pull request for the work at `head`: its title from the entry, its
/// body from the implementation summary the branch holds.
fn pull_request(
    repo: &Repo,
    forge: &dyn Forge,
    entry: &Entry,
    branch: &str,
    head: &str,
    f: &PrFacts<'_>,
) -> Result<PullRequest, Error> {
    let index = ThoughtIndex::load_paths(repo, Some(head), &[entry.dir.as_str()])?;
    let thought = index
        .find(&entry.dir)
        .ok_or_else(|| Error::Failed(format!("{} is not on {branch}", entry.dir)))?;
    let summary = repo
        .git()
        .cmd([
            "cat-file",
            "blob",
            &format!("{head}:{}", prompt::impl_file(thought)),
        ])
        .output()
        .ok()
        .filter(|o| o.success)
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    let body = github::pr_body(&github::PrBodyInput {
        thought_dir: entry.dir.clone(),
        title: entry.title.clone(),
        implementation_summary: summary,
        research_path: prompt::research_file(thought),
        plan_path: prompt::plan_file(thought),
        repo_web_url: forge.web_url(),
        base_branch: f.base_branch.to_owned(),
        agent: f.agent.to_owned(),
        attempts: entry.attempts,
        duration_secs: clock::now()
            .duration_since(entry.claimed_at.unwrap_or_else(clock::now))
            .as_secs()
            .max(0) as u64,
        turns: f.turns,
        cost_usd: f.cost_usd,
    });
    Ok(PullRequest {
        head: branch.to_owned(),
        base: f.base_branch.to_owned(),
        title: github::pr_title(f.title_prefix, &entry.title),
        body,
        draft: f.draft,
        labels: f.labels.to_vec(),
        reviewers: f.reviewers.to_vec(),
    })
}

/// Bring the pushed branch of a pending hand-over into this clone (another
/// worker may have pushed it): returns the head it has there, if any.
pub fn fetch_branch(repo: &Repo, remote: &str, branch: &str) -> Option<String> {
    let spec = format!("+refs/heads/{branch}:refs/remotes/{remote}/{branch}");
    let out = repo.git().fetch(remote, &spec).output().ok()?;
    if !out.success {
        return None;
    }
    repo.git()
        .text([
            "rev-parse",
            &format!("refs/remotes/{remote}/{branch}^{{commit}}"),
        ])
        .ok()
}

/// The pending hand-overs of a state, and what retrying them needs.
pub struct Pending<'a, 'r> {
    pub repo: &'a Repo,
    pub state: &'a StateTarget<'r>,
    pub forge: &'a dyn Forge,
    pub remote: &'a str,
    pub pr: &'a PrConfig,
    pub base_branch: &'a str,
    pub agent: &'a str,
    pub redact_env_keys: &'a [String],
}

impl Pending<'_, '_> {
    /// Retry every hand-over that is due (until `stop` says so); each one
    /// ends in one state change. Returns how many were tried.
    pub fn retry_due(&self, sink: &mut dyn Sink, stop: &dyn Fn() -> bool) -> Result<u32, Error> {
        let now = clock::now();
        let due: Vec<Entry> = self
            .state
            .read()?
            .handovers_due(now)
            .into_iter()
            .cloned()
            .collect();
        let mut tried = 0;
        for e in due {
            if stop() {
                break;
            }
            let branch = e
                .branch
                .clone()
                .or_else(|| super::branch_of(&e.dir))
                .unwrap_or_default();
            let got = match fetch_branch(self.repo, self.remote, &branch) {
                Some(head) => {
                    let facts = PrFacts {
                        base_branch: self.base_branch,
                        agent: self.agent,
                        turns: None,
                        cost_usd: None,
                        title_prefix: &self.pr.title_prefix,
                        draft: self.pr.draft,
                        labels: &self.pr.labels,
                        reviewers: &self.pr.reviewers,
                        redact_env_keys: self.redact_env_keys,
                    };
                    open_pr(self.repo, self.forge, &e, &branch, &head, &facts)
                }
                None => Handover::Pending(format!("{branch} is not on {}", self.remote)),
            };
            self.record(&e, got, sink)?;
            tried += 1;
        }
        Ok(tried)
    }

    /// Record how a retried hand-over went: completed, failed (refused), or
    /// still pending with a growing delay; humans hear at the third failure.
    fn record(&self, e: &Entry, got: Handover, sink: &mut dyn Sink) -> Result<(), Error> {
        let now = clock::now();
        let dir = e.dir.clone();
        let tries = e.handover_tries;
        let backoff = super::outcome::retry_delay(
            Duration::from_secs(60),
            Duration::from_secs(3600),
            tries.max(1),
        );
        let applied = self.state.update(&Default::default(), |b| {
            if b.get(&dir).map(|x| x.status) != Some(Status::HandoverPending) {
                return Ok(Change::none((Disposition::TakenOver, None)));
            }
            Ok(match &got {
                Handover::Done { pr_url } => {
                    b.complete(&dir, pr_url.as_deref(), now)?;
                    Change::with(
                        (Disposition::Completed, None),
                        format!("chore(tgs): complete {dir} (hand-over)"),
                    )
                }
                Handover::Rejected(why) | Handover::Refused(why) => {
                    b.fail(&dir, Some(&format!("rejected: {why}")))?;
                    Change::with(
                        (Disposition::Failed, Some(why.clone())),
                        format!("chore(tgs): fail {dir} (hand-over refused)"),
                    )
                }
                Handover::Pending(why) | Handover::PushFailed(why) | Handover::Moved(why) => {
                    b.handover_failed(&dir, why, super::after(now, backoff))?;
                    Change::with(
                        (Disposition::HandoverPending, Some(why.clone())),
                        format!("chore(tgs): hand-over of {dir} failed again"),
                    )
                }
            })
        })?;
        let (disposition, reason) = applied.value;
        if disposition == Disposition::TakenOver {
            return Ok(());
        }
        let pr_url = match &got {
            Handover::Done { pr_url } => pr_url.clone(),
            _ => None,
        };
        let alerted = match disposition {
            Disposition::Completed => self.forge.resolve_alert(&dir, pr_url.as_deref()).map(|_| ()),
            Disposition::HandoverPending
                if tries + 1 == crate::report::status::HANDOVER_TRIES_BEFORE_ALERT =>
            {
                self.forge
                    .alert_failure(&Failure {
                        thought_dir: dir.clone(),
                        title: e.title.clone(),
                        attempts: e.attempts,
                        last_error: format!(
                            "the work is pushed ({}), but its pull request could not be opened {} times: {}",
                            e.branch.as_deref().unwrap_or_default(),
                            tries + 1,
                            reason.clone().unwrap_or_default()
                        ),
                        log_tail: String::new(),
                    })
                    .map(|_| ())
            }
            _ => Ok(()),
        };
        if let Err(err) = alerted {
            tracing::warn!("could not update the alert of {dir}: {err}");
        }
        sink.event(&Event::HandoverRetried {
            dir,
            pr_url,
            reason,
            disposition,
        });
        Ok(())
    }
}
