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

use std::path::Path;

use super::artifact::{self, ClaimTicket, SessionRecord};
use super::attempt::{Job, WipChange, WorkResult};
use super::{Runner, SessionReport};
use crate::backlog::Entry;
use crate::events::{Outcome, Sink};
use crate::transcript::Redactor;
use crate::{clock, verify, Error};

/// Who wrote an artifact: what it asks of every worker (a pause) is
/// bounded when another job wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Writer {
    /// This process's own implement step (`tgs server run`).
    ThisRun,
    /// Another job (the matrix's agent job), which ran tgs beside the agent.
    OtherJob,
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
        let report = self.hand_over_one(entry, ticket, dir, &record, writer, redactor, sink);
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
        writer: Writer,
        redactor: &Redactor,
        sink: &mut dyn Sink,
    ) -> Result<SessionReport, Error> {
        let mut w = record.work_result(dir, redactor);
        w.untrusted = writer == Writer::OtherJob;
        let mut base = String::new();
        if let Some(recorded) = record
            .wip
            .as_ref()
            .filter(|_| w.outcome != Outcome::Success)
        {
            // How it ended is this job's reading of the record (outcome and
            // cleaned reason), never the record's own account of it.
            match self.recheck_wip(entry, ticket, dir, recorded, &w.ended()) {
                Ok(kept) => w.wip = WipChange::Set(kept),
                Err(why) => w.add_note(format!("its work in progress was not kept: {why}")),
            }
        }
        if w.outcome == Outcome::Success {
            match self.recheck(entry, ticket, dir, record) {
                Ok(b) => base = b,
                Err(why) => {
                    w.outcome = Outcome::Rejected;
                    w.reason = Some(why);
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
    /// knows itself: where the head meets the base branch as the remote has
    /// it now (a first session), or the tip the claim job recorded (a
    /// revision, which must descend from it). Never the record's base or
    /// tip, which the agent's job could write. Returns the base used.
    fn recheck(
        &self,
        entry: &Entry,
        ticket: &ClaimTicket,
        dir: &Path,
        record: &SessionRecord,
    ) -> Result<String, String> {
        let (Some(branch), Some(head)) = (&record.branch, &record.head) else {
            return Err("the record says success but names no branch".into());
        };
        let expected = super::branch_of(&entry.dir).unwrap_or_default();
        if *branch != expected {
            return Err(format!(
                "the record names the branch {branch}, not {expected}"
            ));
        }
        let got = artifact::unbundle(self.repo, dir, branch).map_err(|e| e.to_string())?;
        if got != *head {
            return Err(format!(
                "the bundle's {branch} is at {got}, not at the recorded {head}: the artifact was altered"
            ));
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
        let on_base = self.where_it_meets_the_base(head)?;
        let rules_base = match entry.revision().map(|r| r.kind) {
            Some(crate::backlog::RevisionKind::Update) | None => on_base.clone(),
            Some(_) => ticket.tip.clone().ok_or_else(|| {
                "the claim of this revision recorded no pull request tip".to_owned()
            })?,
        };
        let problems = verify::recheck_branch(self.repo, &rules_base, head, &entry.dir, &rules)
            .map_err(|e| e.to_string())?;
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        // The hand-over pushes the branch ref: make it point at the work.
        self.repo
            .git()
            .cmd(["update-ref", &format!("refs/heads/{branch}"), head])
            .run()
            .map_err(|e| e.to_string())?;
        Ok(on_base)
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
            None => self.where_it_meets_the_base(&got)?,
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
    fn where_it_meets_the_base(&self, head: &str) -> Result<String, String> {
        let tip = self
            .topology
            .fetch_base(self.repo)
            .map_err(|e| e.to_string())?;
        let base = tip
            .commit
            .ok_or_else(|| format!("{} has no commits", tip.label))?;
        let out = self
            .repo
            .git()
            .cmd(["merge-base", &base, head])
            .output()
            .map_err(|e| e.to_string())?;
        let meet = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !out.success || meet.is_empty() {
            return Err(format!(
                "the work ({head}) shares no history with {}",
                tip.label
            ));
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
}
