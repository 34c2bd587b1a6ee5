//! The backlog's state machine, as pure functions of the old state.
//!
//! ```text
//!   add ──> queued ──claim──> in_progress ──complete──> completed
//!             ^  ^               │  │
//!             │  └──requeue──────┘  └──fail──> failed
//!             └──────────retry─────────────────┘
//!
//!   in_progress ──ask──> needs_input ──answer──> queued
//! ```
//! An `in_progress` entry whose lease has expired may be claimed again.

use super::transitions::check;
use jiff::{SignedDuration, Timestamp};

use super::{Backlog, Entry, Status};
use crate::Error;

/// What `add` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddOutcome {
    Added,
    AlreadyPresent(Status),
}

/// How entries are ordered for claiming, besides priority and age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    /// Revisions of open pull requests go before new thoughts
    /// (`server.review.revisions_first`, default true).
    pub revisions_first: bool,
}

impl Default for Order {
    fn default() -> Self {
        Order {
            revisions_first: true,
        }
    }
}

/// A successful claim.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub entry: Entry,
    /// The lease of an earlier claimer had expired.
    pub reclaimed_from: Option<String>,
}

impl Backlog {
    pub fn position(&self, dir: &str) -> Option<usize> {
        self.thoughts.iter().position(|e| e.dir == dir)
    }

    pub fn get(&self, dir: &str) -> Option<&Entry> {
        self.thoughts.iter().find(|e| e.dir == dir)
    }

    pub(super) fn get_mut(&mut self, dir: &str) -> Result<&mut Entry, Error> {
        self.thoughts
            .iter_mut()
            .find(|e| e.dir == dir)
            .ok_or_else(|| Error::invalid(format!("{dir} is not in the backlog")))
    }

    /// Entries in claim order: revisions of open pull requests first, then
    /// priority high to low, then in order of addition (file order).
    pub fn claim_order(&self) -> Vec<&Entry> {
        self.claim_order_by(Order::default())
    }

    /// Entries in claim order, revisions first or not as `order` says.
    pub fn claim_order_by(&self, order: Order) -> Vec<&Entry> {
        let mut v: Vec<&Entry> = self.thoughts.iter().collect();
        v.sort_by_key(|e| {
            let revision = order.revisions_first && e.revision().is_some();
            (std::cmp::Reverse(revision), std::cmp::Reverse(e.priority))
        });
        v
    }

    /// Whether every dependency of `e` is done: completed with its pull
    /// request merged (or without one). A dependency that is done leaves
    /// `depends_on` when it is archived (see `history`), so one still
    /// listed and no longer live is not done (closed unmerged, or unknown).
    pub fn dependencies_done(&self, e: &Entry) -> bool {
        self.waits_for(e).is_empty()
    }

    /// The dependencies of `e` that are not done yet.
    pub fn waits_for<'a>(&self, e: &'a Entry) -> Vec<&'a str> {
        e.depends_on
            .iter()
            .filter(|d| {
                !self
                    .get(d)
                    .is_some_and(crate::history::satisfies_dependents)
            })
            .map(String::as_str)
            .collect()
    }

    /// A cycle the dependencies of `dir` would close, named in order
    /// (`a → b → a`), if `dir` depended on `deps`.
    pub fn cycle_through(&self, dir: &str, deps: &[String]) -> Option<Vec<String>> {
        fn walk(b: &Backlog, at: &str, target: &str, path: &mut Vec<String>) -> bool {
            if path.len() > b.thoughts.len() + 1 {
                return false;
            }
            let Some(e) = b.get(at) else { return false };
            for d in &e.depends_on {
                path.push(d.clone());
                if d == target || walk(b, d, target, path) {
                    return true;
                }
                path.pop();
            }
            false
        }
        for d in deps {
            let mut path = vec![dir.to_owned(), d.clone()];
            if d == dir || walk(self, d, dir, &mut path) {
                return Some(path);
            }
        }
        None
    }

    /// Whether `e` may be claimed now: queued and past any retry delay, or in
    /// progress with an expired lease; and its dependencies are done.
    pub fn is_claimable(&self, e: &Entry, now: Timestamp) -> bool {
        ready_to_claim(e, now) && self.dependencies_done(e)
    }

    pub fn add(&mut self, dir: &str, title: &str, priority: i64, now: Timestamp) -> AddOutcome {
        if let Some(e) = self.get(dir) {
            return AddOutcome::AlreadyPresent(e.status);
        }
        self.thoughts
            .push(Entry::new(dir.into(), title.into(), priority, now));
        AddOutcome::Added
    }

    pub fn remove(&mut self, dir: &str) -> Result<Entry, Error> {
        let i = self
            .position(dir)
            .ok_or_else(|| Error::invalid(format!("{dir} is not in the backlog")))?;
        Ok(self.thoughts.remove(i))
    }

    /// Set the priority; returns the old one.
    pub fn set_priority(&mut self, dir: &str, priority: i64) -> Result<i64, Error> {
        let e = self.get_mut(dir)?;
        check(
            e,
            "reprioritize",
            &[Status::Queued, Status::Failed, Status::NeedsInput],
        )?;
        Ok(std::mem::replace(&mut e.priority, priority))
    }

    /// Claim the next claimable entry (or the one named), for `lease`.
    pub fn claim(
        &mut self,
        only: Option<&str>,
        claimer: &str,
        now: Timestamp,
        lease: SignedDuration,
    ) -> Result<Option<Claim>, Error> {
        self.claim_in(Order::default(), only, claimer, now, lease)
    }

    /// [`Backlog::claim`] in the claim order `order`.
    pub fn claim_in(
        &mut self,
        order: Order,
        only: Option<&str>,
        claimer: &str,
        now: Timestamp,
        lease: SignedDuration,
    ) -> Result<Option<Claim>, Error> {
        let dir = match only {
            Some(dir) => {
                let e = self
                    .get(dir)
                    .ok_or_else(|| Error::invalid(format!("{dir} is not in the backlog")))?;
                if !self.is_claimable(e, now) {
                    return Ok(None);
                }
                dir.to_owned()
            }
            None => match self
                .claim_order_by(order)
                .into_iter()
                .find(|e| self.is_claimable(e, now))
            {
                Some(e) => e.dir.clone(),
                None => return Ok(None),
            },
        };
        let e = self.get_mut(&dir)?;
        let reclaimed_from =
            (e.status == Status::InProgress).then(|| e.claimed_by.clone().unwrap_or_default());
        e.status = Status::InProgress;
        e.claimed_by = Some(claimer.to_owned());
        e.claimed_at = Some(now);
        e.started_at = Some(now);
        e.completed_at = None;
        e.lease_expires_at = Some(now.saturating_add(lease).unwrap_or(now));
        e.not_before = None;
        e.claim_id = Some(new_claim_id());
        e.attempts = e.attempts.saturating_add(1);
        Ok(Some(Claim {
            entry: e.clone(),
            reclaimed_from,
        }))
    }

    /// Requeue every in-progress entry whose lease has expired; returns their dirs.
    /// The lost attempt still counts: a session that never reported back failed.
    pub fn recover_expired(&mut self, now: Timestamp) -> Vec<String> {
        let mut dirs = Vec::new();
        for e in self.thoughts.iter_mut().filter(|e| lease_expired(e, now)) {
            e.status = Status::Queued;
            e.lease_expires_at = None;
            e.not_before = None;
            e.last_error = Some(format!(
                "the claim by {} expired without a report",
                e.claimed_by.as_deref().unwrap_or("an unknown worker")
            ));
            dirs.push(e.dir.clone());
        }
        dirs
    }

    pub fn complete(
        &mut self,
        dir: &str,
        pr_url: Option<&str>,
        now: Timestamp,
    ) -> Result<(), Error> {
        let e = self.get_mut(dir)?;
        check(
            e,
            "complete",
            &[Status::InProgress, Status::HandoverPending],
        )?;
        e.status = Status::Completed;
        e.completed_at = Some(now);
        e.lease_expires_at = None;
        e.not_before = None;
        e.claim_id = None;
        e.handover_tries = 0;
        // Earlier attempts' errors stay in the audit log; on a completed entry they only mislead.
        e.last_error = None;
        if let Some(url) = pr_url {
            e.pr_url = Some(url.to_owned());
        }
        super::revision::end_revision(e, now);
        Ok(())
    }

    pub fn fail(&mut self, dir: &str, reason: Option<&str>) -> Result<(), Error> {
        let e = self.get_mut(dir)?;
        check(e, "fail", &[Status::InProgress, Status::HandoverPending])?;
        // A failed entry runs nothing more: revisions waiting are cancelled.
        super::revision::cancel_queue(e, crate::clock::now());
        e.status = Status::Failed;
        e.lease_expires_at = None;
        e.not_before = None;
        e.claim_id = None;
        if let Some(r) = reason {
            e.last_error = Some(r.to_owned());
        }
        Ok(())
    }

    /// Put a failed entry back in the queue with a fresh budget of attempts;
    /// for a completed one whose pull request was handed to a human, resume
    /// its review loop.
    pub fn retry(&mut self, dir: &str) -> Result<(), Error> {
        self.retry_with(dir, false)
    }

    /// [`Backlog::retry`]; `fresh` also drops the work in progress an
    /// earlier attempt kept, so the next one starts from the base. A queued
    /// entry may be retried fresh (its WIP dropped, nothing else changed).
    pub fn retry_with(&mut self, dir: &str, fresh: bool) -> Result<(), Error> {
        let e = self.get_mut(dir)?;
        if fresh {
            if e.status == Status::Queued {
                e.wip = None;
                return Ok(());
            }
            if e.status != Status::Completed {
                check(e, "retry", &[Status::Failed, Status::HandoverPending])?;
            }
            e.wip = None;
        }
        if e.status == Status::Completed {
            if let Some(r) = e.review.as_mut().filter(|r| r.needs_human.is_some()) {
                r.resume();
                e.last_error = None;
                return Ok(());
            }
        }
        check(e, "retry", &[Status::Failed, Status::HandoverPending])?;
        e.status = Status::Queued;
        e.attempts = 0;
        e.handover_tries = 0;
        e.head = None;
        e.not_before = None;
        e.started_at = None;
        e.lease_expires_at = None;
        Ok(())
    }

    /// Give an in-progress entry back to the queue, e.g. after a failed attempt
    /// (`not_before` delays the next one) or an interrupted session
    /// (`refund` takes the attempt back).
    pub fn requeue(
        &mut self,
        dir: &str,
        reason: Option<&str>,
        not_before: Option<Timestamp>,
        refund: bool,
    ) -> Result<(), Error> {
        let e = self.get_mut(dir)?;
        check(e, "requeue", &[Status::InProgress])?;
        e.status = Status::Queued;
        e.lease_expires_at = None;
        e.claim_id = None;
        e.not_before = not_before;
        if refund {
            e.attempts = e.attempts.saturating_sub(1);
        }
        if let Some(r) = reason {
            e.last_error = Some(r.to_owned());
        }
        Ok(())
    }
}

impl Backlog {
    /// The agent of an in-progress entry asked its humans `question` and
    /// stopped: the entry waits for an answer, the attempt given back (a
    /// question is not a failure). The caller has checked the text (at
    /// most [`super::MAX_QUESTION`] bytes, redacted).
    pub fn ask(
        &mut self,
        dir: &str,
        question: &str,
        posted: Option<super::Posted>,
        now: Timestamp,
    ) -> Result<(), Error> {
        let e = self.get_mut(dir)?;
        check(e, "ask a question for", &[Status::InProgress])?;
        e.status = Status::NeedsInput;
        e.lease_expires_at = None;
        e.claim_id = None;
        e.not_before = None;
        e.attempts = e.attempts.saturating_sub(1);
        e.last_error = Some(format!("needs_input: {}", first_line(question)));
        e.questions.push(super::Question {
            text: question.to_owned(),
            asked_at: now,
            attempt: e.attempts.saturating_add(1),
            posted,
            answer: None,
        });
        Ok(())
    }

    /// Answer the question `dir` waits on: the entry is queued again, its
    /// next attempt told the question and `answer`. Refused (and nothing
    /// changed) unless it waits on a question, or if `asked_at` names
    /// another question than the one waiting (it was answered meanwhile).
    pub fn answer(
        &mut self,
        dir: &str,
        answer: super::Answer,
        asked_at: Option<Timestamp>,
    ) -> Result<(), Error> {
        let e = self.get_mut(dir)?;
        check(e, "answer", &[Status::NeedsInput])?;
        if answer.text.trim().is_empty() {
            return Err(Error::invalid("the answer is empty"));
        }
        if answer.text.len() > super::MAX_ANSWER {
            return Err(Error::invalid(format!(
                "the answer is {} bytes; an answer may be at most {} bytes",
                answer.text.len(),
                super::MAX_ANSWER
            )));
        }
        let Some(q) = e.questions.last_mut().filter(|q| q.answer.is_none()) else {
            return Err(Error::invalid(format!("{dir} waits on no question")));
        };
        if asked_at.is_some_and(|t| t != q.asked_at) {
            return Err(Error::invalid(format!(
                "the question of {dir} was answered meanwhile"
            )));
        }
        q.answer = Some(answer);
        e.status = Status::Queued;
        e.not_before = None;
        e.last_error = None;
        Ok(())
    }

    /// Whether the claim `claim_id` (by `claimer`) still holds `dir`: the
    /// entry is in progress under that very claim. Claims written without an
    /// id (older tgs) are matched by claimer alone.
    pub fn holds_claim(&self, dir: &str, claimer: &str, claim_id: Option<&str>) -> bool {
        self.get(dir).is_some_and(|e| {
            e.status == Status::InProgress
                && e.claimed_by.as_deref() == Some(claimer)
                && (e.claim_id.is_none() || e.claim_id.as_deref() == claim_id)
        })
    }

    /// The work of an in-progress entry is pushed (`branch` at `head`) and
    /// only its hand-over is left: no lease, no agent session any more.
    pub fn handover_pending(
        &mut self,
        dir: &str,
        branch: &str,
        head: &str,
        reason: &str,
        not_before: Option<Timestamp>,
    ) -> Result<(), Error> {
        let e = self.get_mut(dir)?;
        check(e, "hand over", &[Status::InProgress])?;
        e.status = Status::HandoverPending;
        e.lease_expires_at = None;
        e.claim_id = None;
        e.branch = Some(branch.to_owned());
        e.head = Some(head.to_owned());
        e.handover_tries = 1;
        e.not_before = not_before;
        e.last_error = Some(reason.to_owned());
        Ok(())
    }

    /// Another hand-over of a pending entry failed: count it, delay the next.
    pub fn handover_failed(
        &mut self,
        dir: &str,
        reason: &str,
        not_before: Option<Timestamp>,
    ) -> Result<u32, Error> {
        let e = self.get_mut(dir)?;
        check(e, "record a hand-over of", &[Status::HandoverPending])?;
        e.handover_tries = e.handover_tries.saturating_add(1);
        e.not_before = not_before;
        e.last_error = Some(reason.to_owned());
        Ok(e.handover_tries)
    }

    /// Entries whose hand-over is pending and due at `now`, in file order.
    pub fn handovers_due(&self, now: Timestamp) -> Vec<&Entry> {
        self.thoughts
            .iter()
            .filter(|e| {
                e.status == Status::HandoverPending && e.not_before.is_none_or(|t| t <= now)
            })
            .collect()
    }

    /// Pause `agent` (see [`super::Pause`]); a pause already there grows its strikes.
    pub fn pause(&mut self, agent: &str, mut pause: super::Pause) {
        if let Some(old) = self.pauses.get(agent) {
            pause.strikes = pause.strikes.max(old.strikes + 1);
            pause.since = old.since;
        }
        self.pauses.insert(agent.to_owned(), pause);
    }

    /// Lift `agent`'s pause; returns whether there was one.
    pub fn resume(&mut self, agent: &str) -> bool {
        self.pauses.remove(agent).is_some()
    }

    /// `agent`'s pause, if one holds at `now` (a pause whose time passed does not).
    pub fn paused(&self, agent: &str, now: Timestamp) -> Option<&super::Pause> {
        self.pauses
            .get(agent)
            .filter(|p| p.until.is_none_or(|t| t > now))
    }
}

/// The first non-empty line of `text`, at most 200 characters.
pub fn first_line(text: &str) -> String {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let line = line.trim();
    match line.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &line[..i]),
        None => line.to_owned(),
    }
}

/// A fresh claim identity: 16 hex digits.
fn new_claim_id() -> String {
    format!("{:016x}", fastrand::u64(..))
}

/// The lease assumed for claims that carry none (files of the Go prototype).
pub const DEFAULT_LEASE: SignedDuration = SignedDuration::from_hours(6);

/// When an entry's claim ends: its lease, or [`DEFAULT_LEASE`] after the
/// claim for claims that carry none (`None`: no trace of a claim at all).
pub fn lease_end(e: &Entry) -> Option<Timestamp> {
    e.lease_expires_at.or_else(|| {
        e.claimed_at
            .or(e.started_at)
            .and_then(|t| t.checked_add(DEFAULT_LEASE).ok())
    })
}

/// How far apart the clocks of two workers may be. A lease is written with
/// the claimer's clock and read with another worker's: a claim is taken
/// over only once it ended this long ago, so that a worker whose clock runs
/// ahead does not take a claim whose holder is still within its lease (the
/// holder stops its session by its own clock, before the lease ends).
pub const CLOCK_SKEW: SignedDuration = SignedDuration::from_mins(5);

/// Whether `e` could be claimed now but for its dependencies: queued and
/// past any retry delay, or in progress with an expired lease.
pub fn ready_to_claim(e: &Entry, now: Timestamp) -> bool {
    match e.status {
        Status::Queued => e.not_before.is_none_or(|t| t <= now),
        Status::InProgress => lease_expired(e, now),
        _ => false,
    }
}

/// An in-progress entry whose lease ran out (by more than [`CLOCK_SKEW`]),
/// so that no entry can be stuck for ever.
pub fn lease_expired(e: &Entry, now: Timestamp) -> bool {
    e.status == Status::InProgress
        && lease_end(e).is_none_or(|t| t.checked_add(CLOCK_SKEW).map_or(true, |t| t <= now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }
    const HOUR: SignedDuration = SignedDuration::from_hours(1);

    #[test]
    fn claim_order_is_priority_then_addition() {
        let mut b = Backlog::default();
        b.add("a", "A", 0, t(0));
        b.add("b", "B", 5, t(1));
        b.add("c", "C", 5, t(2));
        b.add("d", "D", -1, t(3));
        let order: Vec<_> = b.claim_order().iter().map(|e| e.dir.as_str()).collect();
        assert_eq!(order, ["b", "c", "a", "d"]);
        let c = b.claim(None, "w1", t(10), HOUR).unwrap().unwrap();
        assert_eq!(c.entry.dir, "b");
        assert_eq!(c.entry.attempts, 1);
        assert_eq!(c.entry.lease_expires_at, Some(t(3610)));
        assert_eq!(
            b.claim(None, "w2", t(10), HOUR).unwrap().unwrap().entry.dir,
            "c"
        );
    }

    #[test]
    fn retry_fresh_drops_the_work_in_progress_and_plain_retry_keeps_it() {
        let wip = crate::backlog::Wip {
            head: "a".repeat(40),
            base: "b".repeat(40),
            attempt: 1,
            ended: "timeout: x".into(),
            files: 1,
            lines: 1,
            at: t(0),
            last_seen: String::new(),
        };
        let mut b = Backlog::default();
        b.add("a", "A", 0, t(0));
        b.thoughts[0].wip = Some(wip.clone());
        // Queued: fresh drops it, nothing else changes.
        let before = b.thoughts[0].clone();
        b.retry_with("a", true).unwrap();
        assert_eq!(b.thoughts[0].wip, None);
        assert_eq!(b.thoughts[0].status, before.status);
        // Failed: a plain retry keeps it, a fresh one drops it.
        b.thoughts[0].status = Status::Failed;
        b.thoughts[0].wip = Some(wip);
        b.retry("a").unwrap();
        assert!(b.thoughts[0].wip.is_some());
        b.thoughts[0].status = Status::Failed;
        b.retry_with("a", true).unwrap();
        assert_eq!(
            (b.thoughts[0].status, b.thoughts[0].wip.clone()),
            (Status::Queued, None)
        );
        // In progress: refused, as a plain retry is.
        b.thoughts[0].status = Status::InProgress;
        assert!(b.retry_with("a", true).is_err());
    }

    #[test]
    fn retry_delay_and_dependencies_gate_claims() {
        let mut b = Backlog::default();
        b.add("a", "A", 0, t(0));
        b.add("b", "B", 9, t(0));
        b.thoughts[1].depends_on = vec!["a".into()];
        b.claim(Some("a"), "w", t(1), HOUR).unwrap().unwrap();
        b.requeue("a", Some("boom"), Some(t(100)), false).unwrap();
        assert_eq!(b.claim(None, "w", t(50), HOUR).unwrap(), None);
        assert_eq!(
            b.claim(None, "w", t(100), HOUR).unwrap().unwrap().entry.dir,
            "a"
        );
        assert_eq!(b.get("a").unwrap().attempts, 2);
        b.complete("a", Some("https://x/pr/1"), t(200)).unwrap();
        // Completed with its pull request still open: not done yet.
        assert_eq!(b.claim(None, "w", t(201), HOUR).unwrap(), None);
        b.thoughts[0].pr_state = Some("merged".into());
        assert_eq!(
            b.claim(None, "w", t(202), HOUR).unwrap().unwrap().entry.dir,
            "b"
        );
    }

    #[test]
    fn expired_leases_are_claimable_again() {
        let mut b = Backlog::default();
        b.add("a", "A", 0, t(0));
        b.claim(None, "w1", t(0), HOUR).unwrap().unwrap();
        // The lease ends at 3600; another worker's clock may be ahead by up
        // to CLOCK_SKEW (300s).
        assert_eq!(b.claim(None, "w2", t(3899), HOUR).unwrap(), None);
        let c = b.claim(None, "w2", t(3900), HOUR).unwrap().unwrap();
        assert_eq!(c.reclaimed_from.as_deref(), Some("w1"));
        assert_eq!(c.entry.claimed_by.as_deref(), Some("w2"));
    }

    #[test]
    fn invalid_transitions_name_the_allowed_ones() {
        let mut b = Backlog::default();
        b.add("a", "A", 0, t(0));
        let err = b.complete("a", None, t(1)).unwrap_err();
        match err {
            Error::Transition {
                status, allowed, ..
            } => {
                assert_eq!(status, "queued");
                assert!(allowed.contains(&"next"));
            }
            other => panic!("{other:?}"),
        }
        b.claim(None, "w", t(1), HOUR).unwrap();
        b.complete("a", None, t(2)).unwrap();
        for r in [
            b.retry("a"),
            b.fail("a", None),
            b.set_priority("a", 3).map(|_| ()),
        ] {
            assert!(matches!(r, Err(Error::Transition { .. })));
        }
        assert!(matches!(
            b.complete("zzz", None, t(3)),
            Err(Error::Invalid(_))
        ));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(u8, i8),
        Claim(u8),
        ClaimAny,
        Complete(u8),
        Revise(u8),
        ReviseDone(u8, bool),
        Fail(u8),
        Retry(u8),
        Requeue(u8, bool),
        Remove(u8),
        Priority(u8, i8),
        Ask(u8),
        Answer(u8),
        Tick(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        let d = 0u8..6;
        prop_oneof![
            (d.clone(), any::<i8>()).prop_map(|(a, p)| Op::Add(a, p)),
            d.clone().prop_map(Op::Claim),
            Just(Op::ClaimAny),
            d.clone().prop_map(Op::Complete),
            d.clone().prop_map(Op::Revise),
            (d.clone(), any::<bool>()).prop_map(|(a, ok)| Op::ReviseDone(a, ok)),
            d.clone().prop_map(Op::Fail),
            d.clone().prop_map(Op::Retry),
            (d.clone(), any::<bool>()).prop_map(|(a, r)| Op::Requeue(a, r)),
            d.clone().prop_map(Op::Remove),
            (d.clone(), any::<i8>()).prop_map(|(a, p)| Op::Priority(a, p)),
            d.clone().prop_map(Op::Ask),
            d.prop_map(Op::Answer),
            (0u16..7200).prop_map(Op::Tick),
        ]
    }

    proptest! {
        /// Whatever sequence of operations is applied: dirs stay unique, a
        /// failed operation changes nothing, completed entries never move,
        /// in-progress entries always carry a claimer and a lease, and the
        /// file round-trips through JSON unchanged.
        #[test]
        fn state_machine_invariants(ops in proptest::collection::vec(op(), 0..60)) {
            let mut b = Backlog::default();
            let mut now = t(0);
            for op in ops {
                let before = b.clone();
                let name = |i: u8| format!("tgs/thoughts/abcdef{i}-t");
                let completed_before: Vec<Entry> = b.thoughts.iter().filter(|e| e.status == Status::Completed).cloned().collect();
                let res: Result<(), Error> = match op {
                    Op::Add(i, p) => { b.add(&name(i), "T", p.into(), now); Ok(()) }
                    Op::Claim(i) => b.claim(Some(&name(i)), "w", now, HOUR).map(|_| ()),
                    Op::ClaimAny => {
                        let claimable = b.thoughts.iter().any(|e| b.is_claimable(e, now));
                        let c = b.claim(None, "w", now, HOUR).unwrap();
                        prop_assert_eq!(claimable, c.is_some());
                        Ok(())
                    }
                    Op::Complete(i) => b.complete(&name(i), Some("https://github.example/pull/1"), now),
                    Op::Revise(i) => {
                        let rev = super::super::Revision {
                            kind: super::super::RevisionKind::Command,
                            id: u64::from(i),
                            url: String::new(),
                            author: "a".into(),
                            at: now,
                            text: String::new(),
                            notes: Vec::new(),
                        };
                        let r = b.queue_revision(&name(i), rev);
                        // The one way a completed entry moves: a reviewer asks for more.
                        if r.is_ok() { continue; }
                        r
                    }
                    Op::ReviseDone(i, ok) => {
                        let revising = b.get(&name(i)).is_some_and(|e| e.revision().is_some());
                        let r = if ok { b.revision_done(&name(i), "abc", now) } else { b.revision_given_up(&name(i), "x", now) };
                        if revising && r.is_ok() { continue; }
                        r
                    }
                    Op::Fail(i) => b.fail(&name(i), Some("x")),
                    Op::Retry(i) => {
                        let with_human = b.get(&name(i)).is_some_and(|e| e.status == Status::Completed);
                        let r = b.retry(&name(i));
                        // A completed entry's review loop may resume: the entry stays completed.
                        if with_human && r.is_ok() {
                            prop_assert_eq!(b.get(&name(i)).map(|e| e.status), Some(Status::Completed));
                            continue;
                        }
                        r
                    }
                    Op::Requeue(i, r) => b.requeue(&name(i), None, Some(now), r),
                    Op::Remove(i) => {
                        let was_completed = b.get(&name(i)).map(|e| e.status == Status::Completed);
                        let r = b.remove(&name(i)).map(|_| ());
                        if was_completed == Some(true) { continue; }
                        r
                    }
                    Op::Priority(i, p) => b.set_priority(&name(i), p.into()).map(|_| ()),
                    Op::Ask(i) => {
                        let before = b.get(&name(i)).map(|e| e.attempts);
                        let r = b.ask(&name(i), "which flag?", None, now);
                        if r.is_ok() {
                            // A question is not a failure: the attempt is given back.
                            let e = b.get(&name(i)).unwrap();
                            prop_assert_eq!(Some(e.attempts + 1), before);
                            prop_assert!(e.waiting_question().is_some());
                            prop_assert!(!b.is_claimable(e, now));
                        }
                        r
                    }
                    Op::Answer(i) => {
                        let a = super::super::Answer { text: "yes".into(), by: "h".into(), at: now, via: "cli".into(), url: None };
                        let r = b.answer(&name(i), a, None);
                        if r.is_ok() {
                            let e = b.get(&name(i)).unwrap();
                            prop_assert_eq!(e.status, Status::Queued);
                            prop_assert!(e.questions.last().unwrap().answer.is_some());
                        }
                        r
                    }
                    Op::Tick(s) => { now = now.saturating_add(SignedDuration::from_secs(s.into())).unwrap(); Ok(()) }
                };
                if res.is_err() {
                    prop_assert_eq!(&b, &before);
                }
                let mut dirs: Vec<&str> = b.thoughts.iter().map(|e| e.dir.as_str()).collect();
                let n = dirs.len();
                dirs.sort(); dirs.dedup();
                prop_assert_eq!(dirs.len(), n);
                for e in &b.thoughts {
                    if e.status == Status::InProgress {
                        prop_assert!(e.claimed_by.is_some() && e.lease_expires_at.is_some());
                    }
                    // Only an entry that waits has an unanswered question.
                    let open = e.questions.iter().filter(|q| q.answer.is_none()).count();
                    prop_assert_eq!(open, usize::from(e.status == Status::NeedsInput), "{:?}", e);
                    // Revisions wait only on an entry that will run them
                    // (once its question is answered, for one waiting on it).
                    if e.review.as_ref().is_some_and(|r| !r.queue.is_empty()) {
                        prop_assert!(matches!(e.status, Status::Queued | Status::InProgress | Status::NeedsInput), "{:?}", e);
                        prop_assert!(e.pr_url.is_some());
                    }
                }
                for c in completed_before {
                    prop_assert_eq!(Some(&c), b.get(&c.dir));
                }
                let json = super::super::store::to_json(&b);
                prop_assert_eq!(&super::super::store::parse(&json, std::path::Path::new("x")).unwrap(), &b);
            }
        }
    }
}
