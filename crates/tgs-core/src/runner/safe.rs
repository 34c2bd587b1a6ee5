//! The three steps of a run whose agent holds no write token (GitHub's
//! "safe outputs"), as the GitHub Actions matrix runs them, each in a job of
//! its own:
//!
//! 1. [`Runner::claim_batch`] (write access to the state): up to N claims
//!    in one state change, each a [`ClaimTicket`].
//! 2. [`Runner::run_claimed`] (read access only, no GitHub token): the
//!    session of one ticket, from the checkout as it is: the implement step
//!    (`implement`) every session takes, `tgs server run`'s too, leaving
//!    the work in an artifact folder (see `artifact`); nothing shared is
//!    changed.
//! 3. [`Runner::hand_over_artifacts`] (write access): each artifact taken
//!    by the hand-over step every session takes (`accept`: the claim
//!    against the state, the bundle against the record, the work against
//!    the rules, then handed over and recorded); a ticket whose artifact is
//!    missing (its job was cancelled, timed out or crashed) is recorded as
//!    such and requeued at once.
//!
//! What differs from `tgs server run` is only where the steps run: there,
//! the dispatcher claims one session at a time and its executors'
//! artifacts stay in the git directory.

use std::path::{Path, PathBuf};

use super::accept::Writer;
use super::artifact::{self, ClaimTicket, SessionRecord};
use super::attempt::{Job, Msg, Shared};
use super::{implement, Runner, SessionReport};
use crate::backlog::store::Change;
use crate::backlog::{Backlog, Entry};
use crate::events::{Event, Sink};
use crate::{clock, git, Error};

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
                super::record::note_claim(b, &c.entry.dir, &self.cfg.agent, now);
                // A revision's tip is fetched once the claims are made.
                let tip = c.entry.revision().map(|_| String::new());
                tickets.push(ClaimTicket::of(&c.entry, tip));
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
        // The entry as the claim left it (a revision's, the last attempt's
        // error for the prompt), when this checkout holds the state branch.
        let mut entry = match (self.claimed_entry(ticket), &ticket.tip) {
            (Some(e), _) => e,
            (None, Some(_)) => return Err(self.revision_not_here(ticket)),
            (None, None) => Entry::new(ticket.thought.clone(), title.clone(), 0, now),
        };
        entry.wip = self.claimed_wip(&entry, ticket, wip_bundle);
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
        self.run_one(ticket, &job, out, sink)?;
        let record = artifact::read(out)?;
        Ok(SessionReport {
            dir: ticket.thought.clone(),
            outcome: record.outcome,
            final_failure: false,
            pr_url: None,
            internal: record.internal,
            reason: record.reason,
        })
    }

    /// The work in progress the claim's entry holds (as the state branch
    /// in this checkout has it), brought in from `bundle`; `None` when there
    /// is none. A bundle that cannot be read leaves the WIP missing: the
    /// session says so and starts from the base.
    fn claimed_wip(
        &self,
        entry: &Entry,
        ticket: &ClaimTicket,
        bundle: Option<&Path>,
    ) -> Option<crate::backlog::Wip> {
        let kept = entry.wip.clone()?;
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

    /// A claimed revision whose entry is not in this checkout's state
    /// branch (the claim job recorded it before this job checked out).
    fn revision_not_here(&self, ticket: &ClaimTicket) -> Error {
        Error::Setup {
            message: format!(
                "the claimed revision of {} is not in this checkout's state branch ({})",
                ticket.thought,
                self.topology.state_branch()
            ),
            hint: Some("check out with fetch-depth: 0, after the claim job".into()),
        }
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

    /// The implement step of `ticket`'s session on a thread of its own (the
    /// same as a local run's executors), its events forwarded to `sink`,
    /// its artifact left in `out`.
    fn run_one(
        &self,
        ticket: &ClaimTicket,
        job: &Job,
        out: &Path,
        sink: &mut dyn Sink,
    ) -> Result<(), Error> {
        crate::worktree::ensure_excluded(self.repo)?;
        let identity = git::committer_ident(self.repo.git());
        let shared = Shared {
            repo: self.repo,
            cfg: &self.cfg,
            env: &self.env,
            signals: self.signals.as_deref(),
            identity: &identity,
        };
        let (tx, rx) = std::sync::mpsc::channel::<Msg>();
        std::thread::scope(|scope| {
            let shared = &shared;
            let done = scope.spawn(move || {
                let wrote = implement::implement(shared, ticket, job, out, &tx);
                let _ = tx.send(Msg::Done(job.entry.dir.clone()));
                wrote
            });
            for m in rx.iter() {
                match m {
                    Msg::Event(e) => sink.event(&e),
                    Msg::Done(_) => break,
                }
            }
            done.join()
                .unwrap_or_else(|_| Err(Error::Failed("the session ended without a result".into())))
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
        let redactor = self.artifact_redactor()?;
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
                Some((dir, _)) => self.accept(&entry, t, dir, Writer::OtherJob, &redactor, sink)?,
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
}

/// The entry of `t`'s claim, if the claim still holds it.
fn held(b: &Backlog, t: &ClaimTicket) -> Option<Entry> {
    b.holds_claim(&t.thought, &t.worker, Some(&t.claim_id))
        .then(|| b.get(&t.thought).cloned())
        .flatten()
}
