//! The three steps of a run whose agent holds no write token (GitHub's
//! "safe outputs"), as the GitHub Actions matrix runs them, each in a job of
//! its own:
//!
//! 1. [`Runner::claim_batch`] (write access to the state): up to N claims
//!    in one state change, each a [`ClaimTicket`].
//! 2. [`Runner::run_claimed`] (read access only, no GitHub token): the
//!    session of one ticket, from the checkout as it is; the work is left
//!    in an artifact folder (see `artifact`), nothing shared is changed.
//! 3. [`Runner::hand_over_artifacts`] (write access): each artifact checked
//!    again (the claim against the state, the bundle against the record,
//!    the work against the rules), then handed over and recorded like any
//!    session; a ticket whose artifact is missing (its job was cancelled,
//!    timed out or crashed) is recorded as such and requeued at once.

use std::path::{Path, PathBuf};

use super::artifact::{self, ClaimTicket, SessionRecord};
use super::attempt::WipChange;
use super::executor::{self, Job, Msg, WorkResult};
use super::{Runner, SessionReport};
use crate::backlog::store::Change;
use crate::backlog::{Backlog, Entry};
use crate::events::{Event, Outcome, Sink};
use crate::transcript::Redactor;
use crate::{clock, git, verify, Error};

impl Runner<'_> {
    /// Claim up to `n` sessions in one state change (expired claims are
    /// requeued on the way; a paused agent claims nothing).
    pub fn claim_batch(&self, n: u32, sink: &mut dyn Sink) -> Result<Vec<ClaimTicket>, Error> {
        let worker = self.cfg.worker_id.clone();
        let now = clock::now();
        let lease = self.lease();
        let applied = self.state.update(&Default::default(), |b| {
            let recovered = b.recover_expired(now);
            let mut tickets = Vec::new();
            let mut titles = Vec::new();
            let mut why = self.why_not(b, now);
            while why.is_none() && (tickets.len() as u32) < n {
                let Some(c) = b.claim_in(self.order(), None, &worker, now, lease)? else {
                    break;
                };
                super::dispatcher::note_claim(b, &c.entry.dir, &self.cfg.agent, now);
                tickets.push(ClaimTicket {
                    thought: c.entry.dir.clone(),
                    attempt: c.entry.attempts,
                    claim_id: c.entry.claim_id.clone().unwrap_or_default(),
                    worker: worker.clone(),
                    tip: c.entry.revision().map(|_| String::new()),
                });
                titles.push((
                    c.entry.title.clone(),
                    c.entry.revision().map(crate::review::describe_revision),
                ));
                // The budgets and limits count each claim of the batch.
                why = self.why_not(b, now);
            }
            let msg = (!tickets.is_empty() || !recovered.is_empty()).then(|| {
                format!(
                    "chore(tgs): claim {} for {worker}{}",
                    tickets.len(),
                    if recovered.is_empty() {
                        String::new()
                    } else {
                        format!("; requeue {} expired", recovered.len())
                    }
                )
            });
            Ok(Change::maybe((tickets, titles, why), msg))
        })?;
        let (mut tickets, titles, why) = applied.value;
        // A revision's job starts from its PR branch as the remote has it now.
        for t in tickets.iter_mut().filter(|t| t.tip.is_some()) {
            let branch = super::branch_of(&t.thought).unwrap_or_default();
            t.tip = self
                .cfg
                .remote
                .as_deref()
                .and_then(|r| super::handover::fetch_branch(self.repo, r, &branch));
        }
        if tickets.is_empty() {
            sink.event(&Event::NoWork {
                at: now,
                reason: why,
            });
        }
        for (t, (title, answers)) in tickets.iter().zip(titles) {
            sink.event(&Event::Claimed {
                dir: t.thought.clone(),
                title,
                answers,
                worker: worker.clone(),
                attempt: t.attempt,
                lease_expires_at: None,
                at: now,
                commit: applied.commit.clone(),
            });
        }
        Ok(tickets)
    }

    /// Run the session of `ticket` from the checkout as it is (its HEAD is the
    /// base), without reading or changing the state, and leave the work in
    /// the artifact folder `out`.
    ///
    /// `wip_bundle`: the thought's work in progress, bundled by the claim
    /// job ([`Runner::bundle_wips`]); the session goes on from it when the
    /// state in the checkout says the claim has one.
    pub fn run_claimed(
        &self,
        ticket: &ClaimTicket,
        out: &Path,
        wip_bundle: Option<&Path>,
        sink: &mut dyn Sink,
    ) -> Result<SessionReport, Error> {
        let base = self
            .repo
            .head()?
            .ok_or_else(|| Error::invalid("the checkout has no commits"))?;
        let now = clock::now();
        let title =
            crate::thought::ThoughtIndex::load_paths(self.repo, Some(&base), &[&ticket.thought])
                .ok()
                .and_then(|i| {
                    let t = i.find(&ticket.thought)?.clone();
                    i.titles(self.repo, &[&t]).ok()?.pop()
                })
                .unwrap_or_default();
        let mut entry = match &ticket.tip {
            Some(_) => self.claimed_revision(ticket)?,
            None => Entry::new(ticket.thought.clone(), title.clone(), 0, now),
        };
        entry.wip = self.claimed_wip(ticket, wip_bundle);
        entry.title = title;
        entry.attempts = ticket.attempt;
        entry.claim_id = Some(ticket.claim_id.clone());
        entry.claimed_by = Some(ticket.worker.clone());
        entry.claimed_at = Some(now);
        let job = Job {
            entry,
            base_label: "HEAD".into(),
            base: base.clone(),
            tip: ticket.tip.clone().filter(|t| self.has_commit(t)),
        };
        let w = self.run_one(&job, sink)?;
        let ended = clock::now();
        let record = SessionRecord::of(ticket, &w, &base, now, ended);
        artifact::write(
            self.repo,
            out,
            &record,
            w.log.as_deref(),
            self.cfg.transcript_whole.as_deref(),
        )?;
        Ok(SessionReport {
            dir: ticket.thought.clone(),
            outcome: w.outcome,
            final_failure: false,
            pr_url: None,
            internal: w.internal,
            reason: w.reason,
        })
    }

    /// The work in progress the claim's entry holds (as the state branch
    /// in this checkout has it), brought in from `bundle`; `None` when there
    /// is none. A bundle that cannot be read leaves the WIP missing: the
    /// session says so and starts from the base.
    fn claimed_wip(
        &self,
        ticket: &ClaimTicket,
        bundle: Option<&Path>,
    ) -> Option<crate::backlog::Wip> {
        let kept = self.claimed_entry(ticket).and_then(|e| e.wip)?;
        if let (Some(file), Ok(name)) = (bundle, super::name_of(&ticket.thought)) {
            let r = super::wip::wip_ref(&name);
            match artifact::fetch_bundle(self.repo, file, &r, &r) {
                Ok(head) if head == kept.head => {}
                Ok(head) => tracing::warn!(
                    "{}: the WIP bundle holds {head}, not {}",
                    ticket.thought,
                    kept.head
                ),
                Err(e) => tracing::warn!("{}: {e}", ticket.thought),
            }
        }
        Some(kept)
    }

    /// The claimed revision's entry, as the state branch in this checkout
    /// has it (the claim job recorded it before this job checked out: the
    /// claim's id must match). Read locally: this job holds no token.
    fn claimed_revision(&self, ticket: &ClaimTicket) -> Result<Entry, Error> {
        let branch = self.topology.state_branch();
        if let Some(e) = self
            .claimed_entry(ticket)
            .filter(|e| e.revision().is_some())
        {
            return Ok(e);
        }
        Err(Error::Setup {
            message: format!(
                "the claimed revision of {} is not in this checkout's state branch ({branch})",
                ticket.thought
            ),
            hint: Some("check out with fetch-depth: 0, after the claim job".into()),
        })
    }

    /// The entry of `ticket`'s claim as the state branch in this checkout
    /// has it (its claim id matching), if it is there.
    fn claimed_entry(&self, ticket: &ClaimTicket) -> Option<Entry> {
        let branch = self.topology.state_branch();
        let refs = [
            format!("refs/remotes/{}/{branch}", self.cfg.settings.remote),
            format!("refs/heads/{branch}"),
        ];
        for r in &refs {
            let out = self
                .repo
                .git()
                .cmd([
                    "cat-file",
                    "blob",
                    &format!("{r}:{}", crate::backlog::store::BACKLOG_PATH),
                ])
                .output();
            let Some(out) = out.ok().filter(|o| o.success) else {
                continue;
            };
            let Ok(b) = crate::backlog::store::parse(&out.stdout_text(), std::path::Path::new(r))
            else {
                continue;
            };
            if let Some(e) = b
                .get(&ticket.thought)
                .filter(|e| e.claim_id.as_deref() == Some(ticket.claim_id.as_str()))
            {
                return Some(e.clone());
            }
        }
        None
    }

    /// For the claim job: bundle the work in progress of each claimed
    /// thought that has one into `dir/<claim id>.bundle`, for its agent's
    /// job (which holds no token to fetch it). Returns how many.
    ///
    /// Errors: the state cannot be read, a folder cannot be made.
    pub fn bundle_wips(&self, tickets: &[ClaimTicket], dir: &Path) -> Result<u32, Error> {
        std::fs::create_dir_all(dir)?;
        let b = self.state.read()?;
        let mut n = 0;
        for t in tickets {
            let Some(kept) = b.get(&t.thought).and_then(|e| e.wip.clone()) else {
                continue;
            };
            let name = super::name_of(&t.thought)?;
            if let Some(remote) = self.cfg.remote.as_deref() {
                super::wip::fetch(self.repo, remote, &name);
            }
            let file = dir.join(format!("{}.bundle", t.claim_id));
            let r = super::wip::wip_ref(&name);
            match artifact::bundle(self.repo, &file, &kept.base, &kept.head, &r) {
                Ok(()) => n += 1,
                Err(e) => tracing::warn!("{}: {e}", t.thought),
            }
        }
        Ok(n)
    }

    fn has_commit(&self, sha: &str) -> bool {
        !sha.is_empty()
            && self
                .repo
                .git()
                .cmd(["cat-file", "-e", &format!("{sha}^{{commit}}")])
                .output()
                .is_ok_and(|o| o.success)
    }

    /// One session on an executor thread, its events forwarded to `sink`.
    fn run_one(&self, job: &Job, sink: &mut dyn Sink) -> Result<WorkResult, Error> {
        crate::worktree::ensure_excluded(self.repo)?;
        let identity = git::committer_ident(self.repo.git());
        let shared = executor::Shared {
            repo: self.repo,
            cfg: &self.cfg,
            env: &self.env,
            signals: self.signals.as_deref(),
            identity: &identity,
        };
        let (tx, rx) = std::sync::mpsc::channel::<Msg>();
        std::thread::scope(|scope| {
            let shared = &shared;
            scope.spawn(move || {
                let w = executor::run(shared, job, &tx);
                let _ = tx.send(Msg::Done(job.entry.dir.clone(), Box::new(w)));
            });
            for m in rx.iter() {
                match m {
                    Msg::Event(e) => sink.event(&e),
                    Msg::Done(_, w) => return Ok(*w),
                }
            }
            Err(Error::Failed("the session ended without a result".into()))
        })
    }

    /// Check, hand over and record the artifacts in `dirs` for the `tickets`
    /// claimed; a ticket without an artifact is recorded as a crashed
    /// session and requeued at once.
    pub fn hand_over_artifacts(
        &self,
        tickets: &[ClaimTicket],
        dirs: &[PathBuf],
        sink: &mut dyn Sink,
    ) -> Result<Vec<SessionReport>, Error> {
        let mut records: Vec<(PathBuf, SessionRecord)> = Vec::new();
        // Artifacts whose record cannot be read, with why: a ticket whose
        // artifact (named after its claim id) is one of them left one.
        let mut unreadable: Vec<(PathBuf, String)> = Vec::new();
        for d in dirs {
            match artifact::read(d) {
                Ok(r) => records.push((d.clone(), r)),
                Err(e) => {
                    tracing::warn!("{}: {e}", d.display());
                    unreadable.push((d.clone(), e.to_string()));
                }
            }
        }
        let state = self.state.read()?;
        // The transcripts come from the agent's job: redacted again, with
        // the secrets this job holds.
        let redactor = Redactor::for_secrets(
            Redactor::secret_env_values(std::env::vars(), &self.cfg.settings.redact_env_keys),
            &self.cfg.settings.redact_patterns,
        )?;
        let mut reports = Vec::new();
        for t in tickets {
            let found = records
                .iter()
                .find(|(_, r)| r.ticket.thought == t.thought && r.ticket.claim_id == t.claim_id);
            let Some(entry) = held(&state, t) else {
                tracing::warn!(
                    "{}: the claim is no longer held; its artifact is not handed over",
                    t.thought
                );
                continue;
            };
            let report = match found {
                Some((dir, record)) => {
                    self.hand_over_one(&entry, t, dir, record, &redactor, sink)?
                }
                None => {
                    let why = unreadable
                        .iter()
                        .find(|(d, _)| {
                            d.file_name()
                                .is_some_and(|n| n.to_string_lossy().contains(t.claim_id.as_str()))
                        })
                        .map(|(_, e)| e.as_str());
                    self.record_missing(&entry, why, sink)?
                }
            };
            reports.push(report);
        }
        for (d, r) in &records {
            if !tickets
                .iter()
                .any(|t| t.thought == r.ticket.thought && t.claim_id == r.ticket.claim_id)
            {
                tracing::warn!(
                    "{}: no ticket of this run names it; left alone",
                    d.display()
                );
            }
        }
        Ok(reports)
    }

    /// `ticket` is the claim job's word (trusted); `record` the agent's
    /// job's: its base and tip are never believed (see [`Self::recheck`]).
    fn hand_over_one(
        &self,
        entry: &Entry,
        ticket: &ClaimTicket,
        dir: &Path,
        record: &SessionRecord,
        redactor: &Redactor,
        sink: &mut dyn Sink,
    ) -> Result<SessionReport, Error> {
        let mut w = record.work_result(dir, redactor);
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
    fn record_missing(
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

/// The entry of `t`'s claim, if the claim still holds it.
fn held(b: &Backlog, t: &ClaimTicket) -> Option<Entry> {
    b.holds_claim(&t.thought, &t.worker, Some(&t.claim_id))
        .then(|| b.get(&t.thought).cloned())
        .flatten()
}
