//! Recording a session's end, the last part of the hand-over step: one
//! state change (the entry settled by [`settle`], the session's metrics
//! row, its audit lines, its kept transcript, a pause of its agent), made
//! only by the claim's holder, then humans told (alerts) and sinks.
//!
//! Also what the state says of sessions as they start ([`note_claim`]: the
//! day's usage), which the budgets count.

use std::time::Duration;

use jiff::Timestamp;

use super::attempt::{WipChange, WorkResult};
use super::{after, outcome, wip, Runner, SessionReport};
use crate::backlog::store::{Append, Change, Record};
use crate::backlog::{Backlog, Entry, Pause};
use crate::events::{Disposition, Event, Outcome, Sink};
use crate::forge::Failure;
use crate::records::{MetricsRow, METRICS_HEADER};
use crate::{clock, Error};

impl Runner<'_> {
    /// Record the session's end in the state (one change: the entry, the
    /// metrics row, the kept transcript, a pause), then tell humans and sinks.
    pub(super) fn record(
        &self,
        entry: &Entry,
        started: Timestamp,
        w: WorkResult,
        pr_url: Option<String>,
        pending: Option<String>,
        sink: &mut dyn Sink,
    ) -> Result<SessionReport, Error> {
        let ended = clock::now();
        // The claim's holder: this worker, or (for a hand-over artifact) the
        // worker that claimed it in another job.
        let worker = entry
            .claimed_by
            .clone()
            .unwrap_or_else(|| self.cfg.worker_id.clone());
        let dir = entry.dir.clone();
        let settings = &self.cfg.settings;
        let delay = outcome::retry_delay(
            settings.retry_delay,
            settings.retry_delay_max,
            entry.attempts,
        );
        let not_before = after(ended, delay);
        let reason_line = w
            .reason
            .as_deref()
            .map(|r| format!("{}: {r}", w.outcome.as_str()));
        let kept = self.kept_transcript(&w, started);
        let agent = self.cfg.agent.clone();
        let row = MetricsRow {
            thought: dir.clone(),
            worker: worker.clone(),
            agent: w.stats.agent.clone(),
            started,
            ended,
            duration_s: ended.duration_since(started).as_secs_f64().max(0.0),
            outcome: w.outcome.as_str().to_owned(),
            attempt: entry.attempts,
            exit_code: w.stats.exit_code,
            turns: w.stats.turns,
            cost_usd: w.stats.cost_usd,
            input_tokens: w.stats.input_tokens,
            output_tokens: w.stats.output_tokens,
            pr_url: pr_url.clone(),
            revision: entry.revision().map(|r| r.kind.as_str().to_owned()),
            sandbox: w.sandbox.map(str::to_owned),
        };
        let max = settings.max_attempts;
        let applied = self.state.update(&Default::default(), |b| {
            // Only the claim's holder may record: a lease taken over by
            // another session (of this worker or another) makes this stale.
            if !b.holds_claim(&dir, &worker, entry.claim_id.as_deref()) {
                return Ok(Change::none((Disposition::TakenOver, None, None, None)));
            }
            // Before settling: a revision that ends there takes its work in
            // progress with it.
            note_wip(b, &dir, &w.wip);
            let (disposition, when, msg) = settle(
                b,
                entry,
                &w,
                pr_url.as_deref(),
                pending.as_deref(),
                reason_line.as_deref(),
                (ended, not_before, max, settings.questions.max_per_thought),
                &agent,
                settings.budgets.thought_cost_usd,
            )?;
            let pause = w
                .provider
                .as_ref()
                .and_then(|_| b.pauses.get(&agent).cloned());
            // What the entry now says went wrong (a budget, say), for the alert.
            let said = b.get(&dir).and_then(|e| e.last_error.clone());
            let mut change = Change::with((disposition, when, pause, said), msg).append(Append {
                kind: Record::Metrics,
                header: Some(METRICS_HEADER),
                line: row.to_csv(),
            });
            if w.egress_denied > 0 {
                change = change.append(egress_audit(&worker, ended, &dir, &w));
            }
            let still_kept = b.get(&dir).is_some_and(|e| e.wip.is_some());
            if let (WipChange::Set(kept), true) = (&w.wip, still_kept) {
                change = change.append(wip_audit(&worker, ended, &dir, kept));
            }
            Ok(match &kept {
                Some((path, gz)) => change.put(path.clone(), gz.clone()),
                None => change,
            })
        })?;
        let (disposition, when, pause, said) = applied.value;
        if disposition == Disposition::TakenOver {
            tracing::warn!(
                "{dir} was taken over by another session; this session's result is not recorded"
            );
        }
        if let (Some(c), Some(p)) = (&w.provider, &pause) {
            sink.event(&Event::AgentPaused {
                agent: agent.clone(),
                kind: p.kind.clone(),
                until: p.until,
                reason: p.reason.clone(),
            });
            // One alert, when the pause begins, not one per refused session.
            if c.kind.until_resumed() && p.strikes == 0 {
                self.alert_unavailable(&agent, p);
            }
        }
        let final_failure = disposition == Disposition::Failed;
        self.alert(
            &dir,
            entry,
            &w,
            final_failure,
            said.as_deref().or(reason_line.as_deref()),
            pr_url.as_deref(),
            disposition,
        );
        sink.event(&Event::SessionEnded {
            dir: dir.clone(),
            worker,
            attempt: entry.attempts,
            outcome: w.outcome,
            reason: w.reason.clone(),
            started,
            ended,
            stats: w.stats.clone(),
            pr_url: pr_url.clone(),
            disposition,
            not_before: when,
            commit: applied.commit,
        });
        if w.internal {
            self.alert_internal(&dir, w.reason.as_deref().unwrap_or("internal error"));
        }
        Ok(SessionReport {
            dir,
            outcome: w.outcome,
            final_failure,
            pr_url,
            internal: w.internal,
            reason: w.reason,
        })
    }

    /// Humans hear about final failures, and about their resolution. A
    /// problem with the alert itself must not change the thought's fate.
    #[allow(clippy::too_many_arguments)]
    fn alert(
        &self,
        dir: &str,
        entry: &Entry,
        w: &WorkResult,
        final_failure: bool,
        reason_line: Option<&str>,
        pr_url: Option<&str>,
        disposition: Disposition,
    ) {
        let Some(forge) = self.forge.as_deref().filter(|_| self.cfg.open_pr) else {
            return;
        };
        let alerted = if final_failure && entry.revision().is_some() {
            match entry.pr_url.as_deref() {
                Some(url) => forge.hand_to_human(url, reason_line.unwrap_or("the revision failed")),
                None => Ok(()),
            }
        } else if final_failure {
            forge
                .alert_failure(&Failure {
                    thought_dir: dir.to_owned(),
                    title: entry.title.clone(),
                    attempts: entry.attempts,
                    last_error: reason_line.unwrap_or_default().to_owned(),
                    log_tail: last_lines(&w.log_tail, 40),
                })
                .map(|_| ())
        } else if disposition == Disposition::Completed {
            forge.resolve_alert(dir, pr_url).map(|_| ())
        } else {
            Ok(())
        };
        if let Err(e) = alerted {
            tracing::warn!(
                "could not update the failure alert of {dir} on {}: {e}",
                forge.name()
            );
        }
    }

    /// Humans hear once that a bug of tgs's ended a session: one open
    /// issue says so, however many sessions it ends.
    fn alert_internal(&self, dir: &str, reason: &str) {
        let Some(forge) = self.forge.as_deref().filter(|_| self.cfg.open_pr) else {
            return;
        };
        if let Err(e) = forge.alert_internal(&format!("{dir}: {reason}")) {
            tracing::warn!(
                "could not report the internal error on {}: {e}",
                forge.name()
            );
        }
    }

    /// One alert for an agent whose provider refused for good (credit,
    /// credentials): sessions with it wait until a human resumes it.
    fn alert_unavailable(&self, agent: &str, p: &Pause) {
        let Some(forge) = self.forge.as_deref().filter(|_| self.cfg.open_pr) else {
            return;
        };
        if let Err(e) = forge.alert_agent(agent, &p.reason) {
            tracing::warn!("could not alert about the agent {agent}: {e}");
        }
    }

    /// The state path and compressed end of a session's transcript, to go
    /// with its record (see `archive`); `None` if it cannot be read.
    fn kept_transcript(&self, w: &WorkResult, started: Timestamp) -> Option<(String, Vec<u8>)> {
        let log = w.log.as_deref()?;
        let file = log.file_name()?.to_str()?.to_owned();
        let when = crate::report::parse_transcript_name(&file).map_or(started, |(_, t, _)| t);
        if let Some(gz) = &w.kept_gz {
            return Some((crate::archive::state_path(&file, when), gz.clone()));
        }
        match crate::archive::pack(log, self.cfg.transcript_whole.as_deref()) {
            Ok(gz) => Some((crate::archive::state_path(&file, when), gz)),
            Err(e) => {
                tracing::warn!("could not keep the transcript {}: {e}", log.display());
                None
            }
        }
    }
}

/// The audit line of the connections a session's sandbox refused.
fn egress_audit(worker: &str, at: Timestamp, dir: &str, w: &WorkResult) -> Append {
    let more = w.egress_denied as usize > w.egress_targets.len();
    let rec = crate::records::AuditRecord {
        time: at,
        worker: worker.to_owned(),
        action: "egress_denied".into(),
        thought: Some(dir.to_owned()),
        from: None,
        to: None,
        attempt: None,
        reason: Some(format!(
            "{} connection(s) refused by the sandbox: {}{}",
            w.egress_denied,
            w.egress_targets.join(", "),
            if more { ", ..." } else { "" }
        )),
        commit: None,
    };
    Append {
        kind: Record::Audit,
        header: None,
        line: serde_json::to_string(&rec).expect("an audit record serializes"),
    }
}

/// The audit line of a session that kept its agent's work in progress.
fn wip_audit(worker: &str, at: Timestamp, dir: &str, kept: &crate::backlog::Wip) -> Append {
    let reference = super::name_of(dir).map_or_else(|_| dir.to_owned(), |n| wip::wip_ref(&n));
    let rec = crate::records::AuditRecord {
        time: at,
        worker: worker.to_owned(),
        action: "wip_kept".into(),
        thought: Some(dir.to_owned()),
        from: None,
        to: None,
        attempt: Some(kept.attempt),
        reason: Some(format!(
            "{} file(s), {} line(s) kept on {reference}",
            kept.files, kept.lines
        )),
        commit: Some(kept.head.clone()),
    };
    Append {
        kind: Record::Audit,
        header: None,
        line: serde_json::to_string(&rec).expect("an audit record serializes"),
    }
}

/// Apply a session's end to the backlog `b` (whose claim it holds): where
/// the entry goes, when it may be claimed again, and the commit message.
#[allow(clippy::too_many_arguments)]
fn settle(
    b: &mut Backlog,
    entry: &Entry,
    w: &WorkResult,
    pr_url: Option<&str>,
    pending: Option<&str>,
    reason_line: Option<&str>,
    (ended, not_before, max, max_questions): (Timestamp, Option<Timestamp>, u32, u32),
    agent: &str,
    thought_budget: Option<f64>,
) -> Result<(Disposition, Option<Timestamp>, String), Error> {
    let dir = entry.dir.as_str();
    let spent = note_cost(b, dir, w.stats.cost_usd, ended);
    if let Some(q) = &w.question {
        let asked = b.get(dir).map_or(0, |e| e.questions.len());
        if asked >= max_questions as usize {
            let why = format!(
                "needs_input: its agent asked question {} and server.questions.max_per_thought is {max_questions}: {}",
                asked + 1,
                crate::backlog::first_line(q)
            );
            give_up(b, entry, Some(&why), ended)?;
            return Ok((
                Disposition::Failed,
                None,
                format!("chore(tgs): fail {dir} (too many questions)"),
            ));
        }
        b.ask(dir, q, w.question_posted.clone(), ended)?;
        return Ok((
            Disposition::NeedsInput,
            None,
            format!("chore(tgs): {dir} needs input"),
        ));
    }
    if w.branch_gone && entry.revision().is_some() {
        b.revision_cancelled(dir, ended)?;
        return Ok((
            Disposition::Completed,
            None,
            format!("chore(tgs): cancel a revision of {dir} (its branch is gone)"),
        ));
    }
    if w.outcome == Outcome::Success && entry.revision().is_some() {
        b.revision_done(dir, w.head.as_deref().unwrap_or_default(), ended)?;
        return Ok((
            Disposition::Completed,
            None,
            format!("chore(tgs): revise {dir}"),
        ));
    }
    if w.outcome == Outcome::Success {
        let (Some(branch), Some(head)) = (w.branch.as_deref(), w.head.as_deref()) else {
            b.complete(dir, pr_url, ended)?;
            return Ok((
                Disposition::Completed,
                None,
                format!("chore(tgs): complete {dir}"),
            ));
        };
        if let Some(why) = pending {
            let next = after(ended, Duration::from_secs(60));
            b.handover_pending(dir, branch, head, why, next)?;
            return Ok((
                Disposition::HandoverPending,
                next,
                format!("chore(tgs): {dir} pushed; its hand-over is pending"),
            ));
        }
        b.complete(dir, pr_url, ended)?;
        if let Some(e) = b.thoughts.iter_mut().find(|e| e.dir == dir) {
            e.branch = Some(branch.to_owned());
            e.head = Some(head.to_owned());
        }
        return Ok((
            Disposition::Completed,
            None,
            format!("chore(tgs): complete {dir}"),
        ));
    }
    if let Some(c) = &w.provider {
        let strikes = b.pauses.get(agent).map_or(0, |p| p.strikes + 1);
        let until = match (c.kind.until_resumed(), w.untrusted) {
            (false, _) => after(ended, outcome::pause_length(c, strikes)),
            // An artifact's word pauses every worker for a while at most.
            (true, true) => after(ended, Duration::from_secs(super::artifact::MAX_PAUSE_SECS)),
            (true, false) => None,
        };
        b.pause(
            agent,
            Pause {
                kind: w.outcome.as_str().to_owned(),
                until,
                reason: c.detail.clone(),
                since: ended,
                strikes: 0,
                by: Some(entry.claimed_by.clone().unwrap_or_default()),
            },
        );
        b.requeue(dir, reason_line, None, true)?;
        return Ok((
            Disposition::Released,
            until,
            format!(
                "chore(tgs): release {dir}; pause {agent} ({})",
                w.outcome.as_str()
            ),
        ));
    }
    if w.refund {
        // Not the thought's doing: the attempt is given back. A session that
        // could not start here waits a retry delay, or it would loop.
        let when = (w.outcome != Outcome::Cancelled)
            .then_some(not_before)
            .flatten();
        b.requeue(dir, reason_line, when, true)?;
        let why = if w.outcome == Outcome::Cancelled {
            "interrupted"
        } else {
            w.outcome.as_str()
        };
        return Ok((
            Disposition::Released,
            when,
            format!("chore(tgs): release {dir} ({why})"),
        ));
    }
    if w.requeue_now {
        // Counted, but claimable at once (its job vanished: no delay helps).
        b.requeue(dir, reason_line, None, false)?;
        return Ok((
            Disposition::Requeued,
            None,
            format!("chore(tgs): requeue {dir} (no artifact)"),
        ));
    }
    if w.outcome == Outcome::Cancelled {
        b.requeue(dir, reason_line, None, true)?;
        return Ok((
            Disposition::Released,
            None,
            format!("chore(tgs): release {dir} (interrupted)"),
        ));
    }
    let attempts = b.get(dir).map(|e| e.attempts).unwrap_or(0);
    if let Some(cap) = thought_budget.filter(|cap| spent >= *cap) {
        let why = format!(
            "budget: its {attempts} attempt(s) cost ${spent:.2}, which reaches server.budgets.thought_cost_usd (${cap:.2}){}",
            reason_line.map(|r| format!("; the last one {r}")).unwrap_or_default()
        );
        give_up(b, entry, Some(&why), ended)?;
        return Ok((
            Disposition::Failed,
            None,
            format!("chore(tgs): fail {dir} (over its budget)"),
        ));
    }
    if w.final_failure || attempts >= max {
        give_up(b, entry, reason_line, ended)?;
        return Ok((
            Disposition::Failed,
            None,
            format!("chore(tgs): fail {dir} after {attempts} attempts"),
        ));
    }
    b.requeue(dir, reason_line, not_before, false)?;
    Ok((
        Disposition::Requeued,
        not_before,
        format!("chore(tgs): requeue {dir} after attempt {attempts}"),
    ))
}

/// The session's change to its thought's work in progress, in the entry.
fn note_wip(b: &mut Backlog, dir: &str, change: &WipChange) {
    let Some(e) = b.thoughts.iter_mut().find(|e| e.dir == dir) else {
        return;
    };
    match change {
        WipChange::Keep => {}
        WipChange::Set(kept) => e.wip = Some(kept.clone()),
        WipChange::Drop => e.wip = None,
    }
}

/// A session failed for good: the thought fails, or (a revision) its pull
/// request goes to a human and stays open.
fn give_up(b: &mut Backlog, entry: &Entry, why: Option<&str>, now: Timestamp) -> Result<(), Error> {
    if entry.revision().is_some() {
        let why = why.unwrap_or("the revision failed");
        return b.revision_given_up(&entry.dir, why, now);
    }
    b.fail(&entry.dir, why)
}

/// `2026-11-30`, the UTC day budgets count in.
pub(super) fn day(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d").to_string()
}

/// Record on the state that a session starts: its agent on the entry, one
/// more session in today's usage.
pub(super) fn note_claim(b: &mut Backlog, dir: &str, agent: &str, now: Timestamp) {
    if let Some(e) = b.thoughts.iter_mut().find(|e| e.dir == dir) {
        e.agent = Some(agent.to_owned());
    }
    let today = day(now);
    let u = b.usage.get_or_insert_with(|| crate::backlog::Usage {
        day: today.clone(),
        sessions: 0,
        cost_usd: 0.0,
    });
    if u.day != today {
        *u = crate::backlog::Usage {
            day: today,
            sessions: 0,
            cost_usd: 0.0,
        };
    }
    u.sessions = u.sessions.saturating_add(1);
}

/// Add a session's reported cost to its entry and to today's usage; returns
/// the entry's cost over all its attempts.
fn note_cost(b: &mut Backlog, dir: &str, cost: Option<f64>, now: Timestamp) -> f64 {
    let cost = cost.filter(|c| c.is_finite() && *c > 0.0).unwrap_or(0.0);
    let today = day(now);
    if cost > 0.0 {
        match b.usage.as_mut() {
            Some(u) if u.day == today => u.cost_usd = saturating_sum(u.cost_usd, cost),
            _ => {
                b.usage = Some(crate::backlog::Usage {
                    day: today,
                    sessions: 0,
                    cost_usd: cost,
                })
            }
        }
    }
    let Some(e) = b.thoughts.iter_mut().find(|e| e.dir == dir) else {
        return cost;
    };
    if cost > 0.0 {
        e.cost_usd = Some(saturating_sum(e.cost_usd.unwrap_or(0.0), cost));
    }
    e.cost_usd.unwrap_or(0.0)
}

/// `a + b`, at most [`MAX_COST_USD`](crate::backlog::values::MAX_COST_USD):
/// a sum that overflowed to infinity was written as `null`, and one beyond
/// the bound is no real cost (validate would report it).
fn saturating_sum(a: f64, b: f64) -> f64 {
    let s = a + b;
    if s.is_finite() {
        s.min(crate::backlog::values::MAX_COST_USD)
    } else {
        crate::backlog::values::MAX_COST_USD
    }
}

/// The last `n` lines of `text`.
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
