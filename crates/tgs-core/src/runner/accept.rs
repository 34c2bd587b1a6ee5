//! The hand-over step, the last of every session's three (claim,
//! implement, hand over), the same for `tgs server run` and for the GitHub
//! Actions matrix's hand-over job: a session's artifact (see `artifact`)
//! is untrusted input, whoever wrote it, and is accepted only after tgs's
//! own checks, then handed over (push, pull request) and recorded.
//!
//! The checks: the claim is the claim step's word (a [`ClaimTicket`]),
//! never the record's; the bundle must hold the head the record names; the
//! work must pass the rules (scope, guardrails, secrets) from a base tgs
//! knows itself (where the head meets the base branch as the remote has it
//! now, or a revision's pull request tip from the claim, which its head
//! must descend from); a work in progress likewise. Text is bounded and
//! cleaned, figures bounded, the transcript redacted again.
//!
//! Then `finish`: the work handed over (`handover`: the branch
//! pushed, the pull request opened, a revision pushed forward and answered
//! on its PR), the work in progress pushed beside the state, the agent's
//! question posted, and the end recorded (`record`).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use jiff::Timestamp;

use super::artifact::{self, ClaimTicket, SessionRecord};
use super::attempt::{Job, WipChange, WorkResult};
use super::handover::{self, Handover, PrFacts};
use super::{wip, Runner, SessionReport};
use crate::backlog::Entry;
use crate::events::{Event, Outcome, Sink};
use crate::repo::Repo;
use crate::transcript::Redactor;
use crate::{clock, verify, Error};

/// Who wrote an artifact, and what the claim step knows of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Writer {
    /// This process's own implement step (`tgs server run`), started from
    /// `base`, the base branch's commit its claim step fetched: the work
    /// is checked from there.
    ThisRun { base: String },
    /// Another job (the matrix's agent job), which ran tgs beside the
    /// agent: its work is checked from where it meets the base branch as
    /// the remote has it now, what it asks of every worker (a pause) is
    /// bounded, and its word on a bug of tgs's own is not taken.
    OtherJob,
}

/// Why the hand-over does not take a session's work.
#[derive(Debug)]
enum Refusal {
    /// The work breaks a rule, or the artifact does not hold what its
    /// record says: rejected.
    Work(String),
    /// The hand-over could not check it (the base could not be fetched):
    /// not the work's doing; it failed, to be tried again.
    Unchecked(String),
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Refusal {
        Refusal::Work(e.to_string())
    }
}

impl From<crate::git::GitError> for Refusal {
    fn from(e: crate::git::GitError) -> Refusal {
        Refusal::Work(e.to_string())
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Work(why) | Refusal::Unchecked(why) => f.write_str(why),
        }
    }
}

impl Runner<'_> {
    /// The redaction of what an artifact carries: the secrets this process
    /// holds (its environment's, by `redact_env_keys`) and the patterns.
    ///
    /// Errors: a `redact_patterns` entry that is not a valid pattern.
    pub(crate) fn artifact_redactor(&self) -> Result<Redactor, Error> {
        Redactor::for_secrets(
            Redactor::secret_env_values(std::env::vars(), &self.cfg.settings.redact_env_keys),
            &self.cfg.settings.redact_patterns,
        )
    }

    /// Accept the artifact in `dir` of `entry`'s session, claimed as
    /// `ticket`: checked, handed over, recorded. An artifact that cannot be
    /// read is recorded as a crashed session, requeued now.
    ///
    /// Errors: what stops the run (the state cannot be written).
    pub(crate) fn accept(
        &self,
        entry: &Entry,
        ticket: &ClaimTicket,
        dir: &Path,
        writer: Writer,
        redactor: &Redactor,
        sink: &mut dyn Sink,
    ) -> Result<SessionReport, Error> {
        let record = match artifact::read(dir) {
            Ok(r) if r.ticket == *ticket => r,
            Ok(_) => {
                let why = "its record names another claim";
                return self.record_missing(entry, Some(why), sink);
            }
            Err(e) => return self.record_missing(entry, Some(&e.to_string()), sink),
        };
        let report = self.hand_over_one(entry, ticket, dir, &record, &writer, redactor, sink);
        self.forget_handover_refs(&entry.dir);
        report
    }

    /// The refs the checks brought the bundles in under, once done with.
    fn forget_handover_refs(&self, dir: &str) {
        let (Some(branch), Ok(name)) = (super::branch_of(dir), super::name_of(dir)) else {
            return;
        };
        for r in [
            format!("refs/tgs/handover/{branch}"),
            format!("refs/tgs/handover-wip/{name}"),
        ] {
            let _ = self.repo.git().cmd(["update-ref", "-d", &r]).output();
        }
    }

    /// Whether `sha` names a commit this repository holds.
    pub(super) fn has_commit(&self, sha: &str) -> bool {
        !sha.is_empty()
            && self
                .repo
                .git()
                .cmd(["cat-file", "-e", &format!("{sha}^{{commit}}")])
                .output()
                .is_ok_and(|o| o.success)
    }

    /// `ticket` is the claim job's word (trusted); `record` the agent's
    /// job's: its base and tip are never believed (see [`Self::recheck`]).
    #[allow(clippy::too_many_arguments)]
    fn hand_over_one(
        &self,
        entry: &Entry,
        ticket: &ClaimTicket,
        dir: &Path,
        record: &SessionRecord,
        writer: &Writer,
        redactor: &Redactor,
        sink: &mut dyn Sink,
    ) -> Result<SessionReport, Error> {
        let mut w = record.work_result(dir, redactor, *writer == Writer::OtherJob);
        // Not the record's word: a revision's branch is gone when its claim
        // found no tip.
        w.branch_gone = entry.revision().is_some() && ticket.tip.is_none();
        let mut base = String::new();
        if let Some(recorded) = record
            .wip
            .as_ref()
            .filter(|_| w.outcome != Outcome::Success)
        {
            // How it ended is this job's reading of the record (outcome and
            // cleaned reason), never the record's own account of it.
            match self.recheck_wip(entry, ticket, dir, recorded, &w.ended(), writer) {
                Ok(kept) => w.wip = WipChange::Set(kept),
                Err(why) => w.add_note(format!("its work in progress was not kept: {why}")),
            }
        }
        if w.outcome == Outcome::Success {
            match self.recheck(entry, ticket, dir, record, writer) {
                Ok(b) => base = b,
                Err(refusal) => {
                    w.outcome = match refusal {
                        Refusal::Work(_) => Outcome::Rejected,
                        Refusal::Unchecked(_) => Outcome::Failed,
                    };
                    w.reason = Some(match refusal {
                        Refusal::Work(why) => why,
                        Refusal::Unchecked(why) => {
                            format!("the hand-over could not check the work: {why}")
                        }
                    });
                    w.branch = None;
                    w.head = None;
                }
            }
        }
        let job = Job {
            entry: entry.clone(),
            base_label: "the base branch".into(),
            base,
            tip: ticket.tip.clone(),
        };
        self.finish(&job, record.started, w, sink)
    }

    /// The work of a successful record, checked again: the bundle must hold
    /// the recorded head, and the work must pass the rules from a base tgs
    /// knows itself (see [`Self::work_base`]), or for a revision from the
    /// tip the claim recorded (which it must descend from). Never the
    /// record's base or tip, which the agent's job could write. An update
    /// that is exactly git's clean merge of the base into the tip holds
    /// nothing of an agent's and is taken as it is. Returns the base used.
    fn recheck(
        &self,
        entry: &Entry,
        ticket: &ClaimTicket,
        dir: &Path,
        record: &SessionRecord,
        writer: &Writer,
    ) -> Result<String, Refusal> {
        let (Some(branch), Some(head)) = (&record.branch, &record.head) else {
            return Err(Refusal::Work(
                "the record says success but names no branch".into(),
            ));
        };
        let expected = super::branch_of(&entry.dir).unwrap_or_default();
        if *branch != expected {
            return Err(Refusal::Work(format!(
                "the record names the branch {branch}, not {expected}"
            )));
        }
        let got = artifact::unbundle(self.repo, dir, branch)?;
        if got != *head {
            return Err(Refusal::Work(format!(
                "the bundle's {branch} is at {got}, not at the recorded {head}: the artifact was altered"
            )));
        }
        // The same rules as the session's own checks, with the secrets this
        // job holds (its tokens) and the credential shapes.
        let scanner =
            crate::secrets::Scanner::from_env(std::env::vars(), &self.cfg.settings.redact_env_keys);
        let rules = verify::BranchRules {
            guardrails: &self.cfg.settings.guardrails,
            secrets: &scanner,
        };
        // A revision adds to its PR branch's tip (an update merges the base:
        // then the PR as a whole is checked against the base).
        let on_base = self.work_base(writer, head)?;
        let tip = || {
            ticket.tip.clone().ok_or_else(|| {
                Refusal::Work("the claim of this revision recorded no pull request tip".into())
            })
        };
        let rules_base = match entry.revision().map(|r| r.kind) {
            None => Some(on_base.clone()),
            Some(crate::backlog::RevisionKind::Update) => {
                (!self.is_clean_merge(head, &tip()?, &on_base)).then(|| on_base.clone())
            }
            Some(_) => Some(tip()?),
        };
        if let Some(rules_base) = rules_base {
            let problems =
                verify::recheck_branch(self.repo, &rules_base, head, &entry.dir, &rules)?;
            if !problems.is_empty() {
                return Err(Refusal::Work(problems.join("; ")));
            }
        }
        // The hand-over pushes the branch ref: make it point at the work.
        self.repo
            .git()
            .cmd(["update-ref", &format!("refs/heads/{branch}"), head])
            .run()?;
        Ok(on_base)
    }

    /// Where the work of `head` starts, as tgs knows it: the base its claim
    /// step fetched (this run's own session), or where `head` meets the
    /// base branch as the remote has it now (fetched: another job's).
    fn work_base(&self, writer: &Writer, head: &str) -> Result<String, Refusal> {
        match writer {
            Writer::ThisRun { base } => Ok(base.clone()),
            Writer::OtherJob => self.where_it_meets_the_base(head),
        }
    }

    /// Whether `head` is git's own clean merge of `base` into `tip`: its
    /// parents those two, its tree the one `git merge-tree` makes of them.
    fn is_clean_merge(&self, head: &str, tip: &str, base: &str) -> bool {
        let git = self.repo.git();
        let parents = git.text(["rev-list", "--parents", "-n", "1", head]);
        let Ok(parents) = parents else {
            return false;
        };
        if parents.split_whitespace().skip(1).collect::<Vec<_>>() != [tip, base] {
            return false;
        }
        let merged = git
            .cmd(["merge-tree", "--write-tree", "--no-messages", tip, base])
            .output();
        let tree = git.text(["rev-parse", &format!("{head}^{{tree}}")]);
        match (merged, tree) {
            (Ok(m), Ok(tree)) => m.success && m.stdout_text().trim() == tree,
            _ => false,
        }
    }

    /// The work in progress of a record, checked again as a hand-over's
    /// work is: the bundle must hold the recorded head, and the work from
    /// where it meets the base must pass the WIP's rules (secrets,
    /// guardrails, tgs's paths). Text is bounded and cleaned.
    fn recheck_wip(
        &self,
        entry: &Entry,
        ticket: &ClaimTicket,
        dir: &Path,
        recorded: &artifact::RecordedWip,
        ended: &str,
        writer: &Writer,
    ) -> Result<crate::backlog::Wip, String> {
        let name = super::name_of(&entry.dir).map_err(|e| e.to_string())?;
        let from = super::wip::wip_ref(&name);
        let to = format!("refs/tgs/handover-wip/{name}");
        let bundle = dir.join(artifact::WIP_BUNDLE_FILE);
        let got =
            artifact::fetch_bundle(self.repo, &bundle, &from, &to).map_err(|e| e.to_string())?;
        if got != recorded.head {
            return Err(format!(
                "the bundle holds {got}, not the recorded {}: the artifact was altered",
                recorded.head
            ));
        }
        // A revision's work is what it adds to the tip the claim recorded.
        let base = match &ticket.tip {
            Some(tip) if self.has_commit(tip) => tip.clone(),
            Some(tip) => return Err(format!("it does not build on the pull request's tip {tip}")),
            None => self.work_base(writer, &got).map_err(|r| r.to_string())?,
        };
        let scanner =
            crate::secrets::Scanner::from_env(std::env::vars(), &self.cfg.settings.redact_env_keys);
        let rules = super::wip::Rules {
            thought_dir: &entry.dir,
            guardrails: &self.cfg.settings.guardrails,
            secrets: &scanner,
        };
        let (files, lines) =
            super::wip::check(self.repo, &base, &got, &rules).map_err(|e| e.to_string())??;
        Ok(crate::backlog::Wip {
            head: got,
            base,
            attempt: ticket.attempt,
            ended: artifact::clean_text(ended, 300),
            files,
            lines,
            at: clock::now(),
            last_seen: artifact::clean_block(&recorded.last_seen, super::wip::LAST_SEEN_BYTES),
        })
    }

    /// Where `head` meets the base branch as the remote has it now (fetched):
    /// every change from there to `head` is the work's.
    fn where_it_meets_the_base(&self, head: &str) -> Result<String, Refusal> {
        let tip = self
            .topology
            .fetch_base(self.repo)
            .map_err(|e| Refusal::Unchecked(e.to_string()))?;
        let base = tip
            .commit
            .ok_or_else(|| Refusal::Unchecked(format!("{} has no commits", tip.label)))?;
        let out = self.repo.git().cmd(["merge-base", &base, head]).output()?;
        let meet = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !out.success || meet.is_empty() {
            return Err(Refusal::Work(format!(
                "the work ({head}) shares no history with {}",
                tip.label
            )));
        }
        Ok(meet)
    }

    /// A claimed session whose artifact never came (its job was cancelled,
    /// timed out or crashed) or cannot be read (`unreadable` says why).
    /// Recorded as crashed, requeued now.
    pub(super) fn record_missing(
        &self,
        entry: &Entry,
        unreadable: Option<&str>,
        sink: &mut dyn Sink,
    ) -> Result<SessionReport, Error> {
        let reason = match unreadable {
            Some(e) => format!("the session's artifact could not be read ({e})"),
            None => "the session's job left no artifact (cancelled, timed out or crashed)".into(),
        };
        let mut w = WorkResult::new(&self.cfg.agent, Outcome::Crashed, Some(reason));
        w.requeue_now = true;
        let job = Job {
            entry: entry.clone(),
            base_label: String::new(),
            base: String::new(),
            tip: None,
        };
        self.finish(&job, entry.claimed_at.unwrap_or_else(clock::now), w, sink)
    }

    /// Hand a finished session's work over, record it, tell humans.
    pub(super) fn finish(
        &self,
        job: &Job,
        started: Timestamp,
        mut w: WorkResult,
        sink: &mut dyn Sink,
    ) -> Result<SessionReport, Error> {
        let entry = &job.entry;
        let mut pending = None;
        let mut pr_url = None;
        if w.outcome == Outcome::Success {
            let handed = catch_unwind(AssertUnwindSafe(|| {
                crate::failpoint::hit("runner.handing-over");
                match entry.revision() {
                    Some(_) => self.hand_over_revision(job, &w, sink),
                    None => self.hand_over(entry, &w, sink),
                }
            }));
            let handed = match handed {
                Ok(h) => h,
                Err(panic) => {
                    w = w.internal_error(&*panic);
                    return self.record(entry, started, w, None, None, sink);
                }
            };
            match handed {
                Handover::Done { pr_url: url } => pr_url = url,
                Handover::PushFailed(why) => {
                    w.outcome = Outcome::Failed;
                    w.reason = Some(why);
                }
                Handover::Moved(why) => {
                    w.outcome = Outcome::Failed;
                    w.reason = Some(why);
                    w.refund = true;
                }
                Handover::Rejected(why) => {
                    w.outcome = Outcome::Rejected;
                    w.reason = Some(why);
                }
                Handover::Refused(why) => {
                    w.outcome = Outcome::Rejected;
                    w.reason = Some(why);
                    w.final_failure = true;
                }
                Handover::Pending(why) => pending = Some(why),
            }
        }
        let handed = (w.outcome == Outcome::Success)
            .then(|| w.branch.clone().zip(w.head.clone()))
            .flatten();
        self.push_wip(entry, &mut w, sink);
        self.post_question(entry, &mut w);
        let dropped = w.wip == WipChange::Drop && entry.wip.is_some();
        let report = self.record(entry, started, w, pr_url, pending, sink)?;
        if let Some((branch, head)) = handed {
            forget_local_branch(self.repo, &branch, &head);
        }
        if dropped {
            self.drop_wip(&entry.dir);
        }
        Ok(report)
    }

    /// Push a session's new work in progress beside the state; one that
    /// cannot be pushed is not recorded (the next attempt could not fetch
    /// it), and the session's reason says so.
    fn push_wip(&self, entry: &Entry, w: &mut WorkResult, sink: &mut dyn Sink) {
        if w.outcome == Outcome::Success {
            w.wip = WipChange::Drop;
        }
        // What the state keeps of the agent's words holds no credential:
        // the transcript's redaction knows named values, not a token the
        // agent printed.
        let scanner = crate::secrets::Scanner::from_env(
            self.env.iter().cloned(),
            &self.cfg.settings.redact_env_keys,
        );
        w.reason = w.reason.as_deref().map(|r| scanner.mask(r));
        w.question = w.question.as_deref().map(|q| scanner.mask(q));
        if let WipChange::Set(kept) = &mut w.wip {
            kept.ended = scanner.mask(&kept.ended);
            kept.last_seen = scanner.mask(&kept.last_seen);
        }
        let WipChange::Set(kept) = &w.wip else {
            return;
        };
        let Ok(name) = super::name_of(&entry.dir) else {
            return;
        };
        let kept_event = Event::WipKept {
            dir: entry.dir.clone(),
            attempt: kept.attempt,
            reference: wip::wip_ref(&name),
            files: kept.files,
            lines: kept.lines,
        };
        let Some(remote) = self.cfg.remote.as_deref().filter(|_| self.cfg.push) else {
            sink.event(&kept_event);
            return;
        };
        if let Err(why) = wip::push(self.repo, remote, &name, &kept.head) {
            tracing::warn!("{}: {why}", entry.dir);
            w.add_note(format!("its work in progress was not kept: {why}"));
            w.wip = WipChange::Keep;
            return;
        }
        sink.event(&kept_event);
    }

    /// Ask humans the agent's question where they will see it (when it is
    /// within `server.questions.max_per_thought`; one beyond fails the
    /// thought instead). A question that cannot be posted still waits: it
    /// is in `status` and can be answered from the command line.
    fn post_question(&self, entry: &Entry, w: &mut WorkResult) {
        let Some(q) = w.question.as_deref() else {
            return;
        };
        let max = self.cfg.settings.questions.max_per_thought;
        if entry.questions.len() >= max as usize {
            return;
        }
        let Some(forge) = self.forge.as_deref().filter(|_| self.cfg.open_pr) else {
            return;
        };
        let post = crate::forge::QuestionPost {
            thought_dir: entry.dir.clone(),
            title: entry.title.clone(),
            question: q.to_owned(),
            number: entry.questions.len() + 1,
            max,
            pr_url: entry.revision().and(entry.pr_url.clone()),
            trigger: self.cfg.settings.review.trigger.clone(),
        };
        if let Some(why) =
            crate::secrets::refuse_pull_request(&self.cfg.settings.redact_env_keys, "", q)
        {
            tracing::warn!("{}: the question was not posted: {why}", entry.dir);
            return;
        }
        match forge.ask_humans(&post) {
            Ok(posted) => w.question_posted = posted,
            Err(e) => tracing::warn!(
                "{}: could not ask the question on {}: {e}",
                entry.dir,
                forge.name()
            ),
        }
    }

    /// Remove a thought's work in progress that its entry no longer holds
    /// (best effort: a ref left behind is overwritten by the next one).
    fn drop_wip(&self, dir: &str) {
        let Ok(name) = super::name_of(dir) else {
            return;
        };
        let remote = self.cfg.remote.as_deref().filter(|_| self.cfg.push);
        wip::delete(self.repo, remote, &name);
    }

    /// Push the verified branch, then open its pull request.
    fn hand_over(&self, entry: &Entry, w: &WorkResult, sink: &mut dyn Sink) -> Handover {
        let (Some(branch), Some(head)) = (&w.branch, &w.head) else {
            return Handover::Done { pr_url: None };
        };
        let Some(remote) = self.cfg.remote.as_deref().filter(|_| self.cfg.push) else {
            return Handover::Done { pr_url: None };
        };
        let forge = self.forge.as_deref().filter(|_| self.cfg.open_pr);
        if let Err(refused) =
            handover::guard(self.repo, remote, branch, entry.head.as_deref(), forge)
        {
            return refused;
        }
        if let Err(why) = handover::push(self.repo, remote, branch, head) {
            return Handover::PushFailed(why);
        }
        crate::failpoint::hit("runner.branch-pushed");
        sink.event(&Event::BranchPushed {
            dir: entry.dir.clone(),
            branch: branch.clone(),
        });
        let Some(forge) = self.forge.as_deref().filter(|_| self.cfg.open_pr) else {
            return Handover::Done { pr_url: None };
        };
        let got = handover::open_pr(self.repo, forge, entry, branch, head, &self.pr_facts(w));
        if let Handover::Done { pr_url: Some(url) } = &got {
            sink.event(&Event::PrOpened {
                dir: entry.dir.clone(),
                url: url.clone(),
            });
        }
        got
    }

    /// Push a revision onto its pull request's branch (forward only: a
    /// branch that moved meanwhile refuses it) and answer on the PR.
    fn hand_over_revision(&self, job: &Job, w: &WorkResult, sink: &mut dyn Sink) -> Handover {
        let entry = &job.entry;
        let (Some(branch), Some(head)) = (&w.branch, &w.head) else {
            return Handover::Done { pr_url: None };
        };
        let Some(remote) = self.cfg.remote.as_deref().filter(|_| self.cfg.push) else {
            return Handover::Done { pr_url: None };
        };
        let tip = job.tip.as_deref().unwrap_or(head);
        match handover::push_forward(self.repo, remote, branch, tip, head) {
            Ok(()) => {}
            // Not the revision's fault: it runs again on what the branch is now
            // (or is cancelled by the next sync if the PR is gone).
            Err(handover::ForwardError::Moved(why)) => return Handover::Moved(why),
            Err(handover::ForwardError::Failed(why)) => return Handover::PushFailed(why),
        }
        sink.event(&Event::BranchPushed {
            dir: entry.dir.clone(),
            branch: branch.clone(),
        });
        let (Some(forge), Some(pr_url), Some(rev)) = (
            self.forge.as_deref().filter(|_| self.cfg.open_pr),
            entry.pr_url.as_deref(),
            entry.revision(),
        ) else {
            return Handover::Done { pr_url: None };
        };
        let reply = handover::revision_reply(
            self.repo,
            entry,
            rev,
            tip,
            head,
            self.cfg.settings.review.max_revisions,
        );
        if let Some(why) =
            crate::secrets::refuse_pull_request(&self.cfg.settings.redact_env_keys, "", &reply)
        {
            tracing::warn!("{}: the reply was not posted: {why}", entry.dir);
        } else if let Err(e) = forge.reply_on_pr(pr_url, &reply) {
            tracing::warn!("{}: could not answer on {pr_url}: {e}", entry.dir);
        }
        Handover::Done { pr_url: None }
    }

    fn pr_facts<'a>(&'a self, w: &WorkResult) -> PrFacts<'a> {
        let pr = &self.cfg.settings.pr;
        PrFacts {
            base_branch: &self.cfg.base_branch,
            agent: &self.cfg.agent,
            turns: w.stats.turns,
            cost_usd: w.stats.cost_usd,
            title_prefix: &pr.title_prefix,
            draft: pr.draft,
            labels: &pr.labels,
            reviewers: &pr.reviewers,
            redact_env_keys: &self.cfg.settings.redact_env_keys,
        }
    }
}

/// Delete the local work branch a session made in the user's clone, once
/// its work is handed over (pushed and recorded): only while it is still at
/// the head handed over, so a branch someone moved meanwhile is kept.
fn forget_local_branch(repo: &Repo, branch: &str, head: &str) {
    let r = format!("refs/heads/{branch}");
    if let Err(e) = repo.git().cmd(["update-ref", "-d", &r, head]).run() {
        tracing::debug!("kept {branch}: {e}");
    }
}
