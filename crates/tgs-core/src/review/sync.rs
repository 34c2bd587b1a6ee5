//! Noticing: one pass of `tgs server sync-prs` over the pull requests tgs
//! opened. GitHub is asked first, outside the state transaction (it may be
//! slow); then one state change records what became of each PR, cancels the
//! revisions of merged or closed ones, and queues the revisions reviewers
//! asked for, re-checked against the freshest state's watermarks so that a
//! review is acted on once however many workers look at it.
//!
//! What came before tgs's work was on the pull request is told by GitHub's
//! time of tgs's first push ([`Push`]), asked of GitHub on the first look
//! and kept (`pushed_at`): tgs's own clock is never compared with GitHub's.

use std::collections::HashMap;

use jiff::Timestamp;

use super::{decide, mark, Findings, PrEvent, Push, Source};
use crate::backlog::store::{Append, Change, Record};
use crate::backlog::target::StateTarget;
use crate::backlog::{Backlog, Entry, Revision, RevisionKind, Status};
use crate::config::ReviewConfig;
use crate::github::{parse_pr_ref, GitHub, PrInfo, PrState};
use crate::records::AuditRecord;
use crate::{clock, Error};

/// What GitHub said about one entry's pull request.
#[derive(Debug, Clone)]
struct Look {
    dir: String,
    pr_url: String,
    state: PrState,
    findings: Findings,
    /// The PR conflicts with its base at this head.
    conflict_at: Option<String>,
    /// tgs's first push of the work, as GitHub knows it (what came before
    /// is not acted on).
    push: Push,
}

/// What a sync did, per thought.
#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    /// `(dir, "open" | "merged" | "closed")` of every PR looked at.
    pub pr_states: Vec<(String, &'static str)>,
    /// PR states that changed.
    pub changed: usize,
    /// `(dir, what)` of every revision queued.
    pub queued: Vec<(String, String)>,
    /// `(dir, what)` of events ignored (untrusted authors).
    pub ignored: Vec<(String, String)>,
    /// `(dir, n)` revisions cancelled because the PR was merged or closed.
    pub cancelled: Vec<(String, usize)>,
    /// `(dir, pr_url, why)` of PRs handed to a human by this sync.
    pub to_human: Vec<(String, String, String)>,
    /// `(dir, problem)` of PRs that could not be read.
    pub problems: Vec<(String, String)>,
    /// `(dir, who)` of the agents' questions answered on GitHub.
    pub answered: Vec<(String, String)>,
}

/// What the comments after one waiting question said.
#[derive(Debug, Clone)]
struct AnswerLook {
    dir: String,
    asked_at: Timestamp,
    found: super::answers::Found,
}

/// Look at every pull request of `state`'s entries (or only `only_pr`),
/// record what changed, and hand PRs over the revision limit to humans.
pub fn sync(
    gh: &GitHub,
    state: &StateTarget<'_>,
    review: &ReviewConfig,
    only_pr: Option<u64>,
    worker: &str,
) -> Result<SyncReport, Error> {
    let backlog = state.read()?;
    let mut report = SyncReport::default();
    let mut looks = Vec::new();
    let mut writers: HashMap<String, bool> = HashMap::new();
    for e in backlog.thoughts.iter().filter(|e| watched(e)) {
        let url = e.pr_url.clone().unwrap_or_default();
        let n = match parse_pr_ref(&url, &gh.config().owner, &gh.config().name) {
            Ok(n) => n,
            Err(err) => {
                if only_pr.is_none() {
                    report.problems.push((e.dir.clone(), err.to_string()));
                }
                continue;
            }
        };
        if only_pr.is_some_and(|o| o != n) {
            continue;
        }
        match look(gh, e, n, &url, review, &mut writers) {
            Ok(l) => looks.push(l),
            Err(err) => report.problems.push((e.dir.clone(), err.to_string())),
        }
    }
    let answers = if only_pr.is_none() {
        look_for_answers(gh, &backlog, review, &mut writers, &mut report)
    } else {
        Vec::new()
    };
    let now = clock::now();
    let applied = state.update(&Default::default(), |b| {
        let mut r = SyncReport::default();
        let mut audit = Vec::new();
        for l in &looks {
            apply(b, l, review, now, &mut r, &mut audit, worker)?;
        }
        let moved = apply_answers(b, &answers, now, &mut r, &mut audit, worker);
        let msg = (r.changed
            + r.queued.len()
            + r.cancelled.len()
            + r.to_human.len()
            + audit.len()
            + moved
            > 0)
        .then(|| {
            format!(
                "chore(tgs): sync {} pull request(s); {} revision(s) queued",
                looks.len(),
                r.queued.len()
            )
        });
        let mut change = Change::maybe(r, msg);
        for line in audit {
            change = change.append(line);
        }
        Ok(change)
    })?;
    let mut done = applied.value;
    for (dir, url, why) in &done.to_human {
        if let Err(e) = crate::forge::Forge::hand_to_human(gh, url, why) {
            done.problems
                .push((dir.clone(), format!("could not label {url}: {e}")));
        }
    }
    done.pr_states = looks
        .iter()
        .map(|l| (l.dir.clone(), state_name(l.state)))
        .collect();
    done.problems.extend(report.problems);
    Ok(done)
}

/// Read the comments where each waiting question was asked (outside the
/// state transaction: GitHub may be slow).
fn look_for_answers(
    gh: &GitHub,
    backlog: &Backlog,
    review: &ReviewConfig,
    writers: &mut HashMap<String, bool>,
    report: &mut SyncReport,
) -> Vec<AnswerLook> {
    let mut out = Vec::new();
    for e in super::answers::waiting(backlog) {
        let Some(q) = e.questions.last() else {
            continue;
        };
        let Some(posted) = &q.posted else { continue };
        match gh.issue_comments(posted.number) {
            Ok(comments) => {
                let mut trusted = |ev: &PrEvent| writer(gh, writers, ev);
                out.push(AnswerLook {
                    dir: e.dir.clone(),
                    asked_at: q.asked_at,
                    found: super::answers::find(
                        &comments,
                        posted.after,
                        &review.trigger,
                        &mut trusted,
                    ),
                });
            }
            Err(err) => report.problems.push((e.dir.clone(), err.to_string())),
        }
    }
    out
}

/// Record the answers found in the freshest state `b` (each once); returns
/// how many entries changed (an answer, or a watermark moved).
fn apply_answers(
    b: &mut Backlog,
    looks: &[AnswerLook],
    now: Timestamp,
    r: &mut SyncReport,
    audit: &mut Vec<Append>,
    worker: &str,
) -> usize {
    let mut moved = 0;
    for l in looks {
        let before = b.get(&l.dir).cloned();
        for said in &l.found.ignored {
            audit.push(audit_line(worker, now, &l.dir, "answer_ignored", said));
        }
        if let Some(by) = super::answers::apply(b, &l.dir, l.asked_at, &l.found) {
            r.answered.push((l.dir.clone(), by));
        }
        if b.get(&l.dir) != before.as_ref() {
            moved += 1;
        }
    }
    moved
}

/// Whether `ev`'s author may steer tgs: write access, asked of GitHub once
/// per login; the association GitHub shows when the token may not ask.
fn writer(gh: &GitHub, writers: &mut HashMap<String, bool>, ev: &PrEvent) -> bool {
    if let Some(known) = writers.get(&ev.author) {
        return *known;
    }
    let may = match gh.can_write(&ev.author) {
        Ok(Some(w)) => w,
        Ok(None) | Err(_) => super::trusted_association(&ev.association),
    };
    writers.insert(ev.author.clone(), may);
    may
}

/// Entries whose pull request tgs follows: opened and not finished with.
fn watched(e: &Entry) -> bool {
    e.pr_url.is_some()
        && matches!(
            e.status,
            Status::Completed | Status::Queued | Status::InProgress
        )
}

fn state_name(s: PrState) -> &'static str {
    match s {
        PrState::Open => "open",
        PrState::Merged => "merged",
        PrState::ClosedUnmerged => "closed",
    }
}

/// Ask GitHub about entry `e`'s PR `n`.
fn look(
    gh: &GitHub,
    e: &Entry,
    n: u64,
    url: &str,
    review: &ReviewConfig,
    writers: &mut HashMap<String, bool>,
) -> Result<Look, Error> {
    let info = gh.pr_info(n)?;
    let mut l = Look {
        dir: e.dir.clone(),
        pr_url: url.to_owned(),
        state: info.state,
        findings: Findings::default(),
        conflict_at: None,
        push: Push::default(),
    };
    let with_human = e.review.as_ref().is_some_and(|r| r.needs_human.is_some());
    // A PR from a fork is not tgs's: nothing on it steers tgs.
    if info.state != PrState::Open || info.from_fork || with_human {
        return Ok(l);
    }
    let activity = gh.pr_activity(n)?;
    l.push = push_of(e, &info, |branch, sha| gh.pushed_at(branch, sha));
    let mut trusted = |ev: &PrEvent| writer(gh, writers, ev);
    l.findings = decide(
        &activity,
        e.review.as_ref(),
        &review.trigger,
        &l.push,
        &mut trusted,
    );
    if info.mergeable == Some(false) {
        l.conflict_at = Some(info.head_sha);
    }
    Ok(l)
}

/// tgs's first push of `e`'s work as GitHub knows it, from what its pull
/// request `info` says and `pushed_at` (GitHub's record of a push of a
/// branch to a commit). The time is the one kept from the first look; else,
/// on the first look, GitHub's record of the push of the head tgs pushed;
/// else when the PR was opened. That last is never later than anything on
/// the PR: tgs opens it after pushing, and one opened before (by an earlier
/// run) only makes older reviews count. A loop looked at before (by a
/// version that kept no GitHub time) asks no record: its head may be a
/// later push by now, and what came between must still count.
fn push_of(
    e: &Entry,
    info: &PrInfo,
    pushed_at: impl FnOnce(&str, &str) -> Option<Timestamp>,
) -> Push {
    let kept = e.review.as_ref().and_then(|r| r.pushed_at);
    let first_look = e.review.is_none();
    let branch = match info.head_ref.as_str() {
        "" => e.branch.clone().unwrap_or_default(),
        b => b.to_owned(),
    };
    let recorded = || match (&e.head, first_look) {
        (Some(head), true) => pushed_at(&branch, head),
        _ => None,
    };
    let at = kept.or_else(recorded).or(info.created_at);
    let heads = [e.head.as_deref(), Some(info.head_sha.as_str())]
        .into_iter()
        .flatten()
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .collect();
    Push { at, heads }
}

/// Apply one look to the freshest state `b`.
fn apply(
    b: &mut Backlog,
    l: &Look,
    review: &ReviewConfig,
    now: Timestamp,
    r: &mut SyncReport,
    audit: &mut Vec<Append>,
    worker: &str,
) -> Result<(), Error> {
    let Some(e) = b.thoughts.iter_mut().find(|e| e.dir == l.dir) else {
        return Ok(());
    };
    let name = state_name(l.state);
    if e.pr_state.as_deref() != Some(name) {
        e.pr_state = Some(name.to_owned());
        r.changed += 1;
    }
    if l.state != PrState::Open {
        let n = b.cancel_revisions(&l.dir, now)?;
        if n > 0 {
            r.cancelled.push((l.dir.clone(), n));
        }
        return Ok(());
    }
    let fresh = e.review.clone().unwrap_or_default();
    if fresh.needs_human.is_some() {
        return Ok(());
    }
    // Only what no one has looked at yet (another worker may have).
    let new = |s: Source, id: u64| id > mark(&fresh.seen, s);
    for ig in l.findings.ignored.iter().filter(|i| new(i.source, i.id)) {
        let said = ig.describe();
        audit.push(audit_line(worker, now, &l.dir, "review_ignored", &said));
        r.ignored.push((l.dir.clone(), said));
    }
    let mut wanted: Vec<Revision> = l
        .findings
        .queue
        .iter()
        .filter(|(s, rev)| new(*s, rev.id))
        .map(|(_, rev)| rev.clone())
        .collect();
    let conflict_new = l
        .conflict_at
        .as_ref()
        .is_some_and(|h| fresh.conflict_head.as_ref() != Some(h))
        && !fresh.queue.iter().any(|q| q.kind == RevisionKind::Update);
    if conflict_new {
        wanted.push(update_revision(&l.pr_url, now));
    }
    {
        let rl = e.review.get_or_insert_with(Default::default);
        if rl.pushed_at.is_none() {
            rl.pushed_at = l.push.at;
        }
        rl.seen.review = rl.seen.review.max(l.findings.seen.review);
        rl.seen.comment = rl.seen.comment.max(l.findings.seen.comment);
        rl.seen.inline = rl.seen.inline.max(l.findings.seen.inline);
        if conflict_new {
            rl.conflict_head = l.conflict_at.clone();
        }
    }
    for rev in wanted {
        let rl = b
            .get(&l.dir)
            .and_then(|e| e.review.clone())
            .unwrap_or_default();
        let counted = rev.kind != RevisionKind::Update;
        if counted && rl.spent() + rl.waiting() >= review.max_revisions as usize {
            let why = format!(
                "it reached server.review.max_revisions ({}); {} asked for more",
                review.max_revisions,
                describe(&rev)
            );
            b.needs_human(&l.dir, &why)?;
            r.to_human.push((l.dir.clone(), l.pr_url.clone(), why));
            break;
        }
        r.queued.push((l.dir.clone(), describe(&rev)));
        b.queue_revision(&l.dir, rev)?;
    }
    Ok(())
}

fn update_revision(url: &str, now: Timestamp) -> Revision {
    Revision {
        kind: RevisionKind::Update,
        id: 0,
        url: url.to_owned(),
        author: String::new(),
        at: now,
        text: String::new(),
        notes: Vec::new(),
    }
}

fn describe(r: &Revision) -> String {
    super::describe(r.kind, &r.author, &r.url)
}

fn audit_line(worker: &str, now: Timestamp, dir: &str, action: &str, reason: &str) -> Append {
    let rec = AuditRecord {
        time: now,
        worker: worker.to_owned(),
        action: action.to_owned(),
        thought: Some(dir.to_owned()),
        from: None,
        to: None,
        attempt: None,
        reason: Some(reason.to_owned()),
        commit: None,
    };
    Append {
        kind: Record::Audit,
        header: None,
        line: serde_json::to_string(&rec).expect("an audit record serializes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backlog::ReviewLoop;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn info() -> PrInfo {
        PrInfo {
            number: 1,
            state: PrState::Open,
            mergeable: Some(true),
            head_sha: "now".into(),
            head_ref: "tgs/x".into(),
            from_fork: false,
            created_at: Some(t(0)),
        }
    }

    /// Completed on tgs's clock far from GitHub's: never read.
    fn entry() -> Entry {
        let mut e = Entry::new("tgs/thoughts/x".into(), "X".into(), 0, t(-900));
        e.completed_at = Some(t(900));
        e.head = Some("pushed".into());
        e
    }

    #[test]
    fn the_first_look_asks_github_when_it_saw_the_push() {
        let mut asked = Vec::new();
        let p = push_of(&entry(), &info(), |branch, sha| {
            asked.push(format!("{branch}@{sha}"));
            Some(t(10))
        });
        assert_eq!(p.at, Some(t(10)));
        assert_eq!(asked, ["tgs/x@pushed"]);
        assert_eq!(p.heads, ["pushed", "now"]);
        // GitHub has no record of it: when the PR was opened.
        assert_eq!(push_of(&entry(), &info(), |_, _| None).at, Some(t(0)));
    }

    #[test]
    fn a_kept_time_holds_and_an_older_loop_falls_back_on_the_prs_opening() {
        let mut e = entry();
        e.review = Some(ReviewLoop {
            pushed_at: Some(t(10)),
            ..Default::default()
        });
        let p = push_of(&e, &info(), |_, _| panic!("asked again"));
        assert_eq!(p.at, Some(t(10)));
        // Looked at by an older version (tgs's clock kept, not GitHub's):
        // its head may be a revision's push by now.
        e.review = Some(ReviewLoop {
            since: Some(t(900)),
            ..Default::default()
        });
        let p = push_of(&e, &info(), |_, _| panic!("a later push's time"));
        assert_eq!(p.at, Some(t(0)));
    }
}
