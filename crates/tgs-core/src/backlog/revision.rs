//! The review loop's part of the state: revisions reviewers asked for on a
//! thought's open pull request, as pure functions of the old backlog.
//!
//! ```text
//!   completed ──queue_revision──> queued ──claim──> in_progress
//!       ^                                              │
//!       └── revision_done / revision_given_up ─────────┘
//!           (queued again while more revisions wait)
//! ```
//! A revision is queued once per review or comment: the ids looked at are
//! kept as watermarks ([`Seen`]), and every worker applies its findings to
//! the freshest state, so two workers (or a re-run) never queue one twice.
//! The revision being worked on is the first of [`ReviewLoop::queue`]; its
//! reviewer's text travels with it in the state, so a session that holds no
//! GitHub token (a matrix job) can still be told what was asked.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{Backlog, Entry, Status};
use crate::Error;

/// What a revision answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevisionKind {
    /// A review that requested changes.
    ChangesRequested,
    /// A `/tgs` comment (conversation or inline).
    Command,
    /// The base moved and the PR no longer merges: bring the base in.
    Update,
}

impl RevisionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RevisionKind::ChangesRequested => "changes_requested",
            RevisionKind::Command => "command",
            RevisionKind::Update => "update",
        }
    }
}

/// An inline review comment, as the prompt quotes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InlineNote {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// The diff hunk the comment is on, clipped.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hunk: String,
    /// The comment, hidden text removed, clipped.
    pub body: String,
}

/// A revision asked for and not done yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    pub kind: RevisionKind,
    /// The review's or comment's id on GitHub (0 for an update).
    pub id: u64,
    /// Where a human reads it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// The reviewer's login (empty for an update).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    pub at: Timestamp,
    /// What the reviewer wrote (a `/tgs` command without its trigger word),
    /// hidden text removed, clipped.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<InlineNote>,
}

/// A revision that ended: done, given up or cancelled (its texts dropped).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionDone {
    pub kind: RevisionKind,
    pub id: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    /// `done`, `failed` or `cancelled`.
    pub outcome: String,
    /// The branch's head after it (done only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    pub at: Timestamp,
}

/// The newest ids looked at, per kind of event: anything at or below is
/// never acted on (or logged as ignored) again. GitHub's ids grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    #[serde(default)]
    pub review: u64,
    #[serde(default)]
    pub comment: u64,
    #[serde(default)]
    pub inline: u64,
}

/// The review loop of one thought's pull request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReviewLoop {
    #[serde(default)]
    pub seen: Seen,
    /// Written by older versions: tgs's own clock at the first look. No
    /// longer read (a machine's clock may be minutes off GitHub's, so it
    /// says nothing about GitHub's times); kept as it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    /// GitHub's time of tgs's first push of the work (or of the pull
    /// request's opening): what reviewers wrote before is not acted on. On
    /// GitHub's clock, compared only with GitHub's times; kept, since later
    /// pushes (revisions, updates) answer only what they were asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed_at: Option<Timestamp>,
    /// Revisions waiting, oldest first; the first is the one claimed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queue: Vec<Revision>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub done: Vec<RevisionDone>,
    /// The PR head whose conflict with the base was last queued as an update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict_head: Option<String>,
    /// Revisions spent before a human last resumed the loop: the limit
    /// counts from there.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub spent_before: usize,
    /// Why the PR was handed to a human (`tgs:needs-human`): nothing more is
    /// queued for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs_human: Option<String>,
}

impl ReviewLoop {
    /// Revisions reviewers asked for that ran to the end (done or failed),
    /// for `max_revisions`; updates from the base do not count.
    pub fn spent(&self) -> usize {
        self.spent_ever().saturating_sub(self.spent_before)
    }

    fn spent_ever(&self) -> usize {
        self.done
            .iter()
            .filter(|d| d.outcome != "cancelled" && d.kind != RevisionKind::Update)
            .count()
    }

    /// A human resumes the loop: it takes requests again, with a fresh
    /// allowance of `max_revisions`.
    pub fn resume(&mut self) {
        self.needs_human = None;
        self.spent_before = self.spent_ever();
    }

    /// Revisions reviewers asked for that wait (updates do not count).
    pub fn waiting(&self) -> usize {
        self.queue
            .iter()
            .filter(|r| r.kind != RevisionKind::Update)
            .count()
    }
}

impl Entry {
    /// The revision this entry's next (or current) session works on.
    pub fn revision(&self) -> Option<&Revision> {
        match self.status {
            Status::Queued | Status::InProgress => self.review.as_ref()?.queue.first(),
            _ => None,
        }
    }
}

impl Backlog {
    /// Queue `rev` on `dir`, whose pull request is open. A completed entry
    /// is queued again with a fresh budget of attempts (its cost stays: it
    /// counts towards the thought's budget); one whose revision waits on
    /// its agent's question keeps waiting, the new revision behind it.
    /// Fails for an entry without a pull request or one handed to a human.
    pub fn queue_revision(&mut self, dir: &str, rev: Revision) -> Result<(), Error> {
        let e = self.get_mut(dir)?;
        let revising = e.review.as_ref().is_some_and(|r| !r.queue.is_empty());
        if e.pr_url.is_none()
            || !(matches!(
                e.status,
                Status::Completed | Status::Queued | Status::InProgress
            ) || e.status == Status::NeedsInput && revising)
        {
            return Err(Error::invalid(format!(
                "{dir} has no open pull request to revise ({})",
                e.status
            )));
        }
        let review = e.review.get_or_insert_with(Default::default);
        if review.needs_human.is_some() {
            return Err(Error::invalid(format!("{dir} is with a human")));
        }
        if e.status == Status::Completed {
            e.status = Status::Queued;
            e.attempts = 0;
            e.not_before = None;
            e.last_error = None;
            e.started_at = None;
        }
        review.queue.push(rev);
        Ok(())
    }

    /// The revision being worked on ended well: the branch is at `commit`.
    /// The entry is completed, or queued for the next revision.
    pub fn revision_done(&mut self, dir: &str, commit: &str, now: Timestamp) -> Result<(), Error> {
        // `complete` ends the revision being worked on (see `end_revision`).
        self.complete(dir, None, now)?;
        let e = self.get_mut(dir)?;
        e.head = Some(commit.to_owned());
        if let Some(d) = e.review.as_mut().and_then(|r| r.done.last_mut()) {
            d.commit = Some(commit.to_owned());
        }
        Ok(())
    }

    /// The revision being worked on failed for good: the PR goes to a human
    /// (`why`), and nothing else queued for it runs.
    pub fn revision_given_up(&mut self, dir: &str, why: &str, now: Timestamp) -> Result<(), Error> {
        let e = self.get_mut(dir)?;
        super::transitions::check(e, "give up on", &[Status::InProgress])?;
        end_current(e, "failed", None, now);
        cancel_queue(e, now);
        if let Some(r) = e.review.as_mut() {
            r.needs_human = Some(why.to_owned());
        }
        self.complete(dir, None, now)?;
        self.get_mut(dir)?.last_error = Some(why.to_owned());
        Ok(())
    }

    /// The revision being worked on has nothing left to revise (its branch
    /// is gone): it and the ones waiting are cancelled, and the entry is
    /// completed as it was.
    pub fn revision_cancelled(&mut self, dir: &str, now: Timestamp) -> Result<(), Error> {
        let e = self.get_mut(dir)?;
        super::transitions::check(e, "cancel a revision of", &[Status::InProgress])?;
        cancel_queue(e, now);
        self.complete(dir, None, now)
    }

    /// The PR was merged or closed: revisions not yet started are cancelled
    /// (one being worked on ends by itself). Returns how many.
    pub fn cancel_revisions(&mut self, dir: &str, now: Timestamp) -> Result<usize, Error> {
        let e = self.get_mut(dir)?;
        let running = e.status == Status::InProgress;
        let Some(r) = e.review.as_mut() else {
            return Ok(0);
        };
        let keep = usize::from(running).min(r.queue.len());
        let cancelled: Vec<Revision> = r.queue.drain(keep..).collect();
        r.done
            .extend(cancelled.iter().map(|c| ended(c, "cancelled", None, now)));
        // A revision waiting on its agent's question is cancelled too: no
        // answer may bring it back as a first session.
        if matches!(e.status, Status::Queued | Status::NeedsInput) && !cancelled.is_empty() {
            e.status = Status::Completed;
            e.completed_at = Some(now);
            e.not_before = None;
            e.wip = None;
        }
        Ok(cancelled.len())
    }

    /// Hand `dir`'s PR to a human (`why`): nothing more is queued for it.
    pub fn needs_human(&mut self, dir: &str, why: &str) -> Result<(), Error> {
        let e = self.get_mut(dir)?;
        e.review.get_or_insert_with(Default::default).needs_human = Some(why.to_owned());
        Ok(())
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn ended(r: &Revision, outcome: &str, commit: Option<&str>, at: Timestamp) -> RevisionDone {
    RevisionDone {
        kind: r.kind,
        id: r.id,
        url: r.url.clone(),
        author: r.author.clone(),
        outcome: outcome.to_owned(),
        commit: commit.map(str::to_owned),
        at,
    }
}

/// End the revision being worked on; its work in progress ends with it
/// (the next revision starts from the pull request's tip).
fn end_current(e: &mut Entry, outcome: &str, commit: Option<&str>, now: Timestamp) {
    if let Some(r) = e.review.as_mut() {
        if !r.queue.is_empty() {
            e.wip = None;
            let cur = r.queue.remove(0);
            r.done.push(ended(&cur, outcome, commit, now));
        }
    }
}

pub(super) fn cancel_queue(e: &mut Entry, now: Timestamp) {
    if let Some(r) = e.review.as_mut().filter(|r| !r.queue.is_empty()) {
        e.wip = None;
        let rest: Vec<Revision> = r.queue.drain(..).collect();
        r.done
            .extend(rest.iter().map(|c| ended(c, "cancelled", None, now)));
    }
}

/// A session of `e` completed: the revision it worked on (if any) is done,
/// and the entry goes back to the queue while more revisions wait.
pub(super) fn end_revision(e: &mut Entry, now: Timestamp) {
    if e.review.as_ref().is_some_and(|r| !r.queue.is_empty()) {
        let head = e.head.clone();
        end_current(e, "done", head.as_deref(), now);
        requeue_if_waiting(e);
    }
}

/// A completed entry with revisions still waiting goes back to the queue.
fn requeue_if_waiting(e: &mut Entry) {
    if e.review.as_ref().is_some_and(|r| !r.queue.is_empty()) {
        e.status = Status::Queued;
        e.attempts = 0;
        e.started_at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn rev(id: u64) -> Revision {
        Revision {
            kind: RevisionKind::ChangesRequested,
            id,
            url: format!("https://github.example/r/{id}"),
            author: "alice".into(),
            at: t(0),
            text: "rename it".into(),
            notes: vec![],
        }
    }

    fn completed() -> Backlog {
        let mut b = Backlog::default();
        b.add("d", "T", 0, t(0));
        b.claim(None, "w", t(1), SignedDuration::from_hours(1))
            .unwrap();
        b.complete("d", Some("https://github.example/pull/1"), t(2))
            .unwrap();
        b
    }

    #[test]
    fn a_revision_requeues_a_completed_entry_and_ends_in_it_again() {
        let mut b = completed();
        b.queue_revision("d", rev(7)).unwrap();
        b.queue_revision("d", rev(8)).unwrap();
        let e = b.get("d").unwrap();
        assert_eq!((e.status, e.attempts), (Status::Queued, 0));
        assert_eq!(e.revision().unwrap().id, 7);
        let c = b
            .claim(None, "w", t(3), SignedDuration::from_hours(1))
            .unwrap()
            .unwrap();
        assert_eq!(c.entry.revision().unwrap().id, 7);
        b.revision_done("d", "abc", t(4)).unwrap();
        let e = b.get("d").unwrap();
        assert_eq!(e.status, Status::Queued, "the second revision waits");
        assert_eq!(e.revision().unwrap().id, 8);
        assert_eq!(e.pr_url.as_deref(), Some("https://github.example/pull/1"));
        b.claim(None, "w", t(5), SignedDuration::from_hours(1))
            .unwrap()
            .unwrap();
        b.revision_done("d", "def", t(6)).unwrap();
        let e = b.get("d").unwrap();
        assert_eq!(e.status, Status::Completed);
        let r = e.review.as_ref().unwrap();
        assert_eq!(r.spent(), 2);
        assert_eq!(r.done[1].commit.as_deref(), Some("def"));
        assert!(e.revision().is_none());
    }

    #[test]
    fn giving_up_hands_the_pr_to_a_human_and_cancels_the_rest() {
        let mut b = completed();
        b.queue_revision("d", rev(7)).unwrap();
        b.queue_revision("d", rev(8)).unwrap();
        b.claim(None, "w", t(3), SignedDuration::from_hours(1))
            .unwrap();
        b.revision_given_up("d", "verify failed", t(4)).unwrap();
        let e = b.get("d").unwrap();
        assert_eq!(e.status, Status::Completed);
        let r = e.review.as_ref().unwrap();
        assert!(r.queue.is_empty());
        assert_eq!(r.needs_human.as_deref(), Some("verify failed"));
        let outcomes: Vec<&str> = r.done.iter().map(|d| d.outcome.as_str()).collect();
        assert_eq!(outcomes, ["failed", "cancelled"]);
        assert!(b.queue_revision("d", rev(9)).is_err());
    }

    #[test]
    fn a_merged_pr_cancels_what_has_not_started() {
        let mut b = completed();
        b.queue_revision("d", rev(7)).unwrap();
        assert_eq!(b.cancel_revisions("d", t(3)).unwrap(), 1);
        assert_eq!(b.get("d").unwrap().status, Status::Completed);
        // One being worked on is left to end by itself.
        let mut b = completed();
        b.queue_revision("d", rev(7)).unwrap();
        b.queue_revision("d", rev(8)).unwrap();
        b.claim(None, "w", t(3), SignedDuration::from_hours(1))
            .unwrap();
        assert_eq!(b.cancel_revisions("d", t(4)).unwrap(), 1);
        let e = b.get("d").unwrap();
        assert_eq!(
            (e.status, e.revision().unwrap().id),
            (Status::InProgress, 7)
        );
    }

    fn wip() -> crate::backlog::Wip {
        crate::backlog::Wip {
            head: "a".repeat(40),
            base: "b".repeat(40),
            attempt: 1,
            ended: "needs_input: which port?".into(),
            files: 1,
            lines: 1,
            at: t(0),
            last_seen: String::new(),
        }
    }

    /// A revision's work in progress lives while it waits on its question,
    /// and ends with the revision however it ends.
    #[test]
    fn a_revisions_work_in_progress_ends_with_it() {
        let claimed = || {
            let mut b = completed();
            b.queue_revision("d", rev(7)).unwrap();
            b.queue_revision("d", rev(8)).unwrap();
            b.claim(None, "w", t(3), SignedDuration::from_hours(1))
                .unwrap();
            b.thoughts[0].wip = Some(wip());
            b
        };
        let mut b = claimed();
        b.ask("d", "which port?", None, t(4)).unwrap();
        assert!(b.get("d").unwrap().wip.is_some(), "kept while it waits");
        let mut done = claimed();
        done.revision_done("d", "abc", t(4)).unwrap();
        let e = done.get("d").unwrap();
        assert_eq!((e.status, e.revision().unwrap().id), (Status::Queued, 8));
        assert!(e.wip.is_none(), "the next revision starts from the tip");
        let mut given_up = claimed();
        given_up
            .revision_given_up("d", "verify failed", t(4))
            .unwrap();
        assert!(given_up.get("d").unwrap().wip.is_none());
        // A review that comes while the question waits queues behind it.
        b.queue_revision("d", rev(9)).unwrap();
        let e = b.get("d").unwrap();
        assert_eq!(e.status, Status::NeedsInput);
        assert_eq!(e.review.as_ref().unwrap().queue.len(), 3);
        // Merged while its question waits: cancelled, never run again as
        // a first session when the answer comes.
        b.cancel_revisions("d", t(5)).unwrap();
        let e = b.get("d").unwrap();
        assert_eq!(e.status, Status::Completed);
        assert!(e.wip.is_none() && e.revision().is_none());
        assert!(b.answer("d", answer(), None).is_err());
    }

    fn answer() -> crate::backlog::Answer {
        crate::backlog::Answer {
            text: "8080".into(),
            by: "alice".into(),
            at: t(6),
            via: "cli".into(),
            url: None,
        }
    }

    #[test]
    fn a_review_loop_written_before_pushed_at_existed_reads_as_it_was() {
        let old = r#"{"seen":{"review":7},"since":"2026-01-15T12:00:00Z","queue":[]}"#;
        let r: ReviewLoop = serde_json::from_str(old).unwrap();
        assert_eq!((r.seen.review, r.pushed_at), (7, None));
        assert_eq!(r.since, Some("2026-01-15T12:00:00Z".parse().unwrap()));
        let back = serde_json::to_string(&r).unwrap();
        assert_eq!(
            back,
            r#"{"seen":{"review":7,"comment":0,"inline":0},"since":"2026-01-15T12:00:00Z"}"#
        );
    }

    #[test]
    fn only_an_entry_with_a_pull_request_is_revised() {
        let mut b = Backlog::default();
        b.add("d", "T", 0, t(0));
        let before = b.clone();
        assert!(b.queue_revision("d", rev(1)).is_err());
        assert_eq!(b, before);
    }
}
