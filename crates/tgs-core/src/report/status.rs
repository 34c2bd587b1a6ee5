//! What the server is doing now, from the backlog alone: counts per status,
//! running sessions, what runs next, and what needs a human. The archive of
//! finished entries is streamed through [`StatusBuilder`], which keeps only
//! what the view shows of it.

use std::collections::HashMap;

use jiff::Timestamp;
use serde::Serialize;

use crate::backlog::{lease_end, lease_expired, Backlog, Entry, Status};

/// Counts of entries per status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub queued: usize,
    pub in_progress: usize,
    pub handover_pending: usize,
    pub completed: usize,
    pub failed: usize,
    pub needs_input: usize,
    pub total: usize,
}

impl Counts {
    pub fn get(&self, s: Status) -> usize {
        match s {
            Status::Queued => self.queued,
            Status::InProgress => self.in_progress,
            Status::HandoverPending => self.handover_pending,
            Status::Completed => self.completed,
            Status::Failed => self.failed,
            Status::NeedsInput => self.needs_input,
        }
    }
}

/// An in-progress entry whose lease still holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Running {
    pub dir: String,
    pub title: String,
    pub worker: Option<String>,
    pub attempt: u32,
    pub claimed_at: Option<Timestamp>,
    /// Seconds since the claim (`None` without `claimed_at`).
    pub elapsed_s: Option<i64>,
    pub lease_expires_at: Option<Timestamp>,
    pub lease_left_s: Option<i64>,
}

/// A claimable entry, in claim order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NextUp {
    pub dir: String,
    pub title: String,
    pub priority: i64,
    pub attempts: u32,
    /// In progress with an expired lease: the next claim takes it over.
    pub reclaim: bool,
}

/// A queued entry that cannot be claimed yet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Waiting {
    pub dir: String,
    pub title: String,
    /// A retry delay still running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Timestamp>,
    /// Dependencies not completed yet.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocked_by: Vec<String>,
}

/// Why an entry needs a human.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttentionReason {
    /// Failed for good (`retry` puts it back).
    Failed,
    /// Claimed, but the claimer stopped renewing its lease.
    LeaseExpired,
    /// Its pull request was closed without being merged.
    PrClosed,
    /// The work is pushed, but opening its pull request keeps failing.
    HandoverFailing,
    /// The review loop handed its pull request back (`tgs:needs-human`).
    ReviewStopped,
}

impl AttentionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            AttentionReason::Failed => "failed",
            AttentionReason::LeaseExpired => "lease expired",
            AttentionReason::PrClosed => "PR closed unmerged",
            AttentionReason::HandoverFailing => "hand-over failing",
            AttentionReason::ReviewStopped => "review loop stopped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attention {
    pub dir: String,
    pub title: String,
    pub reason: AttentionReason,
    /// The last error, or who held the expired lease.
    pub detail: Option<String>,
    pub pr_url: Option<String>,
}

/// The whole status view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    pub now: Timestamp,
    pub counts: Counts,
    pub running: Vec<Running>,
    pub next: Vec<NextUp>,
    pub waiting: Vec<Waiting>,
    pub needs_human: Vec<Attention>,
    /// Agents no session starts with now (their provider refused).
    pub paused: Vec<PausedAgent>,
    /// Live thoughts whose pull request has revisions queued, running or done.
    pub revisions: Vec<Revisions>,
    /// Live thoughts holding work in progress an earlier attempt kept.
    pub wip: Vec<WipLine>,
    /// Questions agents asked that wait for an answer, longest waiting first.
    pub questions: Vec<QuestionLine>,
}

/// A question that waits for an answer, for the status view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuestionLine {
    pub dir: String,
    pub title: String,
    /// The question's first line (the whole is in `backlog show`).
    pub question: String,
    pub asked_at: Timestamp,
    /// Seconds it has waited.
    pub waited_s: i64,
    /// Where humans were asked, if on a forge.
    pub posted: Option<String>,
}

impl QuestionLine {
    fn of(e: &Entry, now: Timestamp) -> Option<QuestionLine> {
        let q = e.waiting_question()?;
        Some(QuestionLine {
            dir: e.dir.clone(),
            title: e.title.clone(),
            question: crate::backlog::first_line(&q.text),
            asked_at: q.asked_at,
            waited_s: (now.as_second() - q.asked_at.as_second()).max(0),
            posted: q.posted.as_ref().map(|p| p.url.clone()),
        })
    }
}

/// A thought's kept work in progress, for the status view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WipLine {
    pub dir: String,
    pub title: String,
    /// The attempt that made it, and how that attempt ended (first line).
    pub attempt: u32,
    pub ended: String,
    pub files: u32,
    pub lines: u64,
}

impl WipLine {
    fn of(e: &Entry) -> Option<WipLine> {
        let w = e.wip.as_ref()?;
        Some(WipLine {
            dir: e.dir.clone(),
            title: e.title.clone(),
            attempt: w.attempt,
            ended: w.ended.lines().next().unwrap_or_default().to_owned(),
            files: w.files,
            lines: w.lines,
        })
    }

    /// `attempt 2 kept 3 file(s), 40 line(s) (timeout: ...)`.
    pub fn describe(&self) -> String {
        format!(
            "attempt {} kept {} file(s), {} line(s) ({})",
            self.attempt, self.files, self.lines, self.ended
        )
    }
}

/// The review loop of one thought, for the status view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Revisions {
    pub dir: String,
    pub title: String,
    pub pr_url: Option<String>,
    /// One line: what runs or waits, how many are done (see `review::summary`).
    pub summary: String,
    /// `(what, url)` of the reviews and comments answered or to answer, oldest first.
    pub answers: Vec<(String, String)>,
}

/// The review loop of `e`, if it has one worth showing.
fn revisions_of(e: &Entry) -> Option<Revisions> {
    let summary = crate::review::summary(e)?;
    let r = e.review.as_ref()?;
    let done = r.done.iter().map(|d| {
        let what = format!("{} ({})", d.kind.as_str(), d.outcome);
        (what, d.url.clone())
    });
    let queued = r
        .queue
        .iter()
        .map(|q| (crate::review::what(q), q.url.clone()));
    Some(Revisions {
        dir: e.dir.clone(),
        title: e.title.clone(),
        pr_url: e.pr_url.clone(),
        summary,
        answers: done.chain(queued).collect(),
    })
}

/// An agent paused for every worker.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PausedAgent {
    pub agent: String,
    pub kind: String,
    /// `None`: until `tgs server resume`.
    pub until: Option<Timestamp>,
    pub reason: String,
}

/// Whether the entry's PR was closed unmerged (`pr_state`, set by
/// `sync-prs`; also read from unknown fields, where files written before the
/// field existed keep it).
pub fn pr_closed(e: &Entry) -> bool {
    e.pr_state
        .as_deref()
        .or_else(|| e.extra.get("pr_state").and_then(|v| v.as_str()))
        .is_some_and(|s| s.eq_ignore_ascii_case("closed"))
}

/// Failed hand-overs after which a human is told (the tries go on).
pub const HANDOVER_TRIES_BEFORE_ALERT: u32 = 3;

/// Compute the status view of `backlog` at `now`.
pub fn compute_status(backlog: &Backlog, now: Timestamp) -> StatusReport {
    StatusBuilder::new(backlog, now).finish()
}

/// The status view of a live backlog and the archived entries read after
/// it, one at a time. A finished entry only adds to the counts, to what
/// needs a human (a pull request closed unmerged) and to the answer for a
/// dependency on it, so that is all that is kept of the archive; the result
/// is [`compute_status`] of the live backlog with the archive appended.
pub struct StatusBuilder<'a> {
    live: &'a Backlog,
    now: Timestamp,
    /// The first live entry of each directory (what `Backlog::get` finds).
    by_dir: HashMap<&'a str, &'a Entry>,
    counts: Counts,
    needs_human: Vec<Attention>,
    /// Whether each dependency of a live entry, not live itself, is done:
    /// its first archived entry says so (`None`: not seen yet).
    archived_deps: HashMap<&'a str, Option<bool>>,
    /// Archived entries that are not completed (a hand-edited archive): kept
    /// whole, as they may be running, next or waiting.
    unfinished: Vec<Entry>,
}

impl<'a> StatusBuilder<'a> {
    pub fn new(live: &'a Backlog, now: Timestamp) -> StatusBuilder<'a> {
        let mut by_dir = HashMap::with_capacity(live.thoughts.len());
        for e in &live.thoughts {
            by_dir.entry(e.dir.as_str()).or_insert(e);
        }
        let archived_deps = live
            .thoughts
            .iter()
            .flat_map(|e| &e.depends_on)
            .filter(|d| !by_dir.contains_key(d.as_str()))
            .map(|d| (d.as_str(), None))
            .collect();
        let mut b = StatusBuilder {
            live,
            now,
            by_dir,
            counts: Counts::default(),
            needs_human: Vec::new(),
            archived_deps,
            unfinished: Vec::new(),
        };
        for e in &live.thoughts {
            b.take_in(e);
        }
        b
    }

    /// Take in the next archived entry (one that is also live is skipped).
    pub fn archived(&mut self, e: Entry) {
        if self.by_dir.contains_key(e.dir.as_str()) {
            return;
        }
        self.take_in(&e);
        if let Some(slot @ None) = self.archived_deps.get_mut(e.dir.as_str()) {
            *slot = Some(crate::history::satisfies_dependents(&e));
        }
        if e.status != Status::Completed {
            self.unfinished.push(e);
        }
    }

    fn take_in(&mut self, e: &Entry) {
        self.counts.add(e.status);
        self.needs_human.extend(attentions(e, self.now));
    }

    /// The dependencies of `e` that are not done yet (`Backlog::waits_for`
    /// over the live entries, then the archived ones).
    fn waits_for(&self, e: &Entry) -> Vec<String> {
        let done = |d: &str| match self.by_dir.get(d) {
            Some(live) => crate::history::satisfies_dependents(live),
            None => self.archived_deps.get(d).copied().flatten() == Some(true),
        };
        e.depends_on.iter().filter(|d| !done(d)).cloned().collect()
    }

    fn claimable(&self, e: &Entry) -> bool {
        crate::backlog::ready_to_claim(e, self.now) && self.waits_for(e).is_empty()
    }

    pub fn finish(mut self) -> StatusReport {
        let now = self.now;
        let mut order: Vec<&Entry> = self.live.thoughts.iter().chain(&self.unfinished).collect();
        order.sort_by_key(|e| std::cmp::Reverse(e.priority));
        let running = order
            .iter()
            .filter(|e| e.status == Status::InProgress && !lease_expired(e, now))
            .map(|e| running(e, now))
            .collect();
        let next = order
            .iter()
            .filter(|e| self.claimable(e))
            .map(|e| NextUp {
                dir: e.dir.clone(),
                title: e.title.clone(),
                priority: e.priority,
                attempts: e.attempts,
                reclaim: e.status == Status::InProgress,
            })
            .collect();
        let waiting = order
            .iter()
            .filter(|e| e.status == Status::Queued && !self.claimable(e))
            .map(|e| Waiting {
                dir: e.dir.clone(),
                title: e.title.clone(),
                not_before: e.not_before.filter(|t| *t > now),
                blocked_by: self.waits_for(e),
            })
            .collect();
        // File order within each reason, so a person reads the list the same way each time.
        self.needs_human.sort_by_key(|a| a.reason);
        let live = self.live;
        let paused = live
            .pauses
            .iter()
            .filter(|(a, _)| live.paused(a, now).is_some())
            .map(|(a, p)| PausedAgent {
                agent: a.clone(),
                kind: p.kind.clone(),
                until: p.until,
                reason: p.reason.clone(),
            })
            .collect();
        // The loop is on open pull requests, which are live entries.
        let revisions = live.thoughts.iter().filter_map(revisions_of).collect();
        let wip = live.thoughts.iter().filter_map(WipLine::of).collect();
        let mut questions: Vec<QuestionLine> = live
            .thoughts
            .iter()
            .filter_map(|e| QuestionLine::of(e, now))
            .collect();
        questions.sort_by_key(|q| q.asked_at);
        StatusReport {
            questions,
            now,
            paused,
            revisions,
            wip,
            counts: self.counts,
            running,
            next,
            waiting,
            needs_human: self.needs_human,
        }
    }
}

impl Counts {
    fn add(&mut self, s: Status) {
        match s {
            Status::Queued => self.queued += 1,
            Status::InProgress => self.in_progress += 1,
            Status::HandoverPending => self.handover_pending += 1,
            Status::Completed => self.completed += 1,
            Status::Failed => self.failed += 1,
            Status::NeedsInput => self.needs_input += 1,
        }
        self.total += 1;
    }
}

fn running(e: &Entry, now: Timestamp) -> Running {
    let secs = |a: Timestamp, b: Timestamp| a.as_second() - b.as_second();
    let lease = lease_end(e);
    Running {
        dir: e.dir.clone(),
        title: e.title.clone(),
        worker: e.claimed_by.clone(),
        attempt: e.attempts,
        claimed_at: e.claimed_at,
        elapsed_s: e.claimed_at.map(|c| secs(now, c)),
        lease_expires_at: lease,
        lease_left_s: lease.map(|l| secs(l, now)),
    }
}

/// Why `e` needs a human, if it does (in the order the view lists them).
fn attentions(e: &Entry, now: Timestamp) -> Vec<Attention> {
    let attention = |reason, detail: Option<String>| Attention {
        dir: e.dir.clone(),
        title: e.title.clone(),
        reason,
        detail,
        pr_url: e.pr_url.clone(),
    };
    let mut out = Vec::new();
    if e.status == Status::Failed {
        out.push(attention(AttentionReason::Failed, e.last_error.clone()));
    }
    if e.status == Status::HandoverPending && e.handover_tries >= HANDOVER_TRIES_BEFORE_ALERT {
        out.push(attention(
            AttentionReason::HandoverFailing,
            e.last_error.clone(),
        ));
    }
    if lease_expired(e, now) {
        let who = e.claimed_by.as_deref().unwrap_or("an unknown worker");
        let since = lease_end(e).map(|t| format!(" at {t}")).unwrap_or_default();
        out.push(attention(
            AttentionReason::LeaseExpired,
            Some(format!("the claim by {who} expired{since}")),
        ));
    }
    if pr_closed(e) {
        out.push(attention(AttentionReason::PrClosed, None));
    }
    if let Some(why) = e.review.as_ref().and_then(|r| r.needs_human.clone()) {
        out.push(attention(AttentionReason::ReviewStopped, Some(why)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn status_sections() {
        let now = t("2026-01-15T12:00:00Z");
        let mut b = Backlog::default();
        b.add("q-low", "Low", 0, now);
        b.add("q-high", "High", 5, now);
        b.add("run", "Running", 0, now);
        b.add("stale", "Stale", 0, now);
        b.add("done", "Done", 0, now);
        b.add("bad", "Bad", 0, now);
        b.add("later", "Later", 9, now);
        b.add("dep", "Dep", 9, now);
        let e = &mut b.thoughts;
        e[2].status = Status::InProgress;
        e[2].claimed_by = Some("w1".into());
        e[2].claimed_at = Some(t("2026-01-15T11:30:00Z"));
        e[2].lease_expires_at = Some(t("2026-01-15T13:00:00Z"));
        e[2].attempts = 2;
        e[3].status = Status::InProgress;
        e[3].claimed_by = Some("w2".into());
        e[3].claimed_at = Some(t("2026-01-15T01:00:00Z"));
        e[3].lease_expires_at = Some(t("2026-01-15T11:00:00Z"));
        e[4].status = Status::Completed;
        e[4].pr_state = Some("closed".into());
        e[4].pr_url = Some("https://github.com/o/r/pull/4".into());
        e[5].status = Status::Failed;
        e[5].last_error = Some("tests failed".into());
        e[6].not_before = Some(t("2026-01-15T12:30:00Z"));
        e[7].depends_on = vec!["bad".into()];

        let s = compute_status(&b, now);
        assert_eq!(
            s.counts,
            Counts {
                queued: 4,
                in_progress: 2,
                handover_pending: 0,
                completed: 1,
                failed: 1,
                needs_input: 0,
                total: 8
            }
        );
        assert_eq!(s.running.len(), 1);
        let r = &s.running[0];
        assert_eq!(
            (r.dir.as_str(), r.elapsed_s, r.lease_left_s),
            ("run", Some(1800), Some(3600))
        );
        let next: Vec<_> = s.next.iter().map(|n| (n.dir.as_str(), n.reclaim)).collect();
        assert_eq!(next, [("q-high", false), ("q-low", false), ("stale", true)]);
        let waiting: Vec<_> = s.waiting.iter().map(|w| w.dir.as_str()).collect();
        assert_eq!(waiting, ["later", "dep"]);
        assert_eq!(s.waiting[1].blocked_by, ["bad"]);
        let human: Vec<_> = s
            .needs_human
            .iter()
            .map(|a| (a.dir.as_str(), a.reason))
            .collect();
        assert_eq!(
            human,
            [
                ("bad", AttentionReason::Failed),
                ("stale", AttentionReason::LeaseExpired),
                ("done", AttentionReason::PrClosed)
            ]
        );
        assert_eq!(s.needs_human[0].detail.as_deref(), Some("tests failed"));
    }
}
