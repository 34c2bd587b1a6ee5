//! One agent session, from its worktree to its verdict. An executor does not
//! touch the state, the remote or the forge: it gets a claimed entry and the
//! base commit from the dispatcher, reports what it does as events on a
//! channel, and returns a [`WorkResult`] for the dispatcher to hand over and
//! record. Several run at once, each on a thread of its own.

use std::sync::mpsc::Sender;

use super::attempt::{agent_and_verify, WipChange};
pub(crate) use super::attempt::{Job, Msg, Shared, WorkResult};
use super::{wip, SessionFiles};
use crate::backlog::Wip;
use crate::events::{Event, Outcome};
use crate::repo::Repo;
use crate::thought::{Thought, ThoughtIndex, ThoughtName};
use crate::worktree::{self, Worktree};
use crate::{context, prompt, Error};

/// Run the session of `job`; never fails: what goes wrong is the result,
/// a panic of tgs's own included (its threads' panics are resumed here).
pub(crate) fn run(sh: &Shared<'_>, job: &Job, tx: &Sender<Msg>) -> WorkResult {
    let w = WorkResult::new(&sh.cfg.agent, Outcome::Failed, None);
    let worked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        work(sh, job, tx, w.clone())
    }));
    match worked {
        Ok(Ok(w)) => w,
        Ok(Err(e)) => w.over(
            Outcome::Failed,
            format!("tgs could not run the session: {e}"),
        ),
        Err(panic) => w.internal_error(&*panic),
    }
}

fn work(sh: &Shared<'_>, job: &Job, tx: &Sender<Msg>, w: WorkResult) -> Result<WorkResult, Error> {
    let entry = &job.entry;
    let name = super::name_of(&entry.dir)?;
    let index = ThoughtIndex::load_paths(sh.repo, Some(&job.base), &[entry.dir.as_str()])?;
    let Some(thought) = index.find(&entry.dir).cloned() else {
        let mut w = w.over(
            Outcome::Rejected,
            format!(
                "{} is not on {} (committed but not pushed, or removed since it was queued)",
                entry.dir, job.base_label
            ),
        );
        w.final_failure = true;
        return Ok(w);
    };
    let (start, continued, w) = start_of(sh, job, w)?;
    let wt = match worktree::prepare(sh.repo, &name, &start) {
        Ok(wt) => wt,
        Err(e) => return Ok(worktree_problem(w, &name, e)),
    };
    let _ = tx.send(Msg::Event(Box::new(Event::WorktreeReady {
        dir: entry.dir.clone(),
        path: wt.path.clone(),
        branch: wt.branch.clone(),
        base: job.base.clone(),
    })));
    let result = match entry.revision() {
        Some(rev) => super::revise::revise(sh, job, rev, &thought, &wt, continued.as_ref(), w, tx),
        None => first_session(sh, job, &thought, &wt, continued.as_ref(), w, tx),
    };
    let result = result.and_then(|w| keep_work(sh, job, &name, &wt, w));
    worktree::discard(sh.repo, &wt.path);
    // The prompt and context list were the agent's input only.
    let _ = std::fs::remove_dir_all(&SessionFiles::of(sh.repo, &name).dir);
    result
}

/// Where a session starts: from the work in progress an earlier attempt
/// kept (on its start as it is now: the base, or a revision's pull request
/// tip), unless it conflicts with it (then the start itself, the work
/// dropped, and the session's reason will say so); otherwise the start.
fn start_of(
    sh: &Shared<'_>,
    job: &Job,
    mut w: WorkResult,
) -> Result<(String, Option<Wip>, WorkResult), Error> {
    let entry = &job.entry;
    let Some(start) = wip_start(job) else {
        // A revision whose branch is gone: the tip stands in, and the
        // revision is told there is nothing to revise.
        return Ok((job.tip.clone().unwrap_or_else(|| job.base.clone()), None, w));
    };
    let Some(kept) = entry.wip.as_ref() else {
        return Ok((start.to_owned(), None, w));
    };
    match wip::start_from(sh.repo, kept, start)? {
        wip::Start::Continue(at) => Ok((at, Some(kept.clone()), w)),
        wip::Start::Conflict(why) => {
            tracing::warn!("{}: {why}", entry.dir);
            w.wip = WipChange::Drop;
            w.wip_note = Some(why);
            Ok((start.to_owned(), None, w))
        }
        wip::Start::Missing(why) => {
            tracing::warn!("{}: {why}", entry.dir);
            w.wip_note = Some(why);
            Ok((start.to_owned(), None, w))
        }
    }
}

/// The commit a job's work in progress is kept against: the base for a
/// thought's first session, the pull request's tip (from the claim) for a
/// revision; `None` where no work in progress is kept: a revision whose
/// branch is gone, and an update (tgs's own merge of the base, which an
/// attempt redoes from the tip).
pub(super) fn wip_start(job: &Job) -> Option<&str> {
    match job.entry.revision().map(|r| r.kind) {
        None => Some(&job.base),
        Some(crate::backlog::RevisionKind::Update) => None,
        Some(_) => job.tip.as_deref(),
    }
}

/// An attempt that ends without work to hand over keeps what its agent did
/// (see [`wip`]); one that succeeded leaves nothing to keep.
fn keep_work(
    sh: &Shared<'_>,
    job: &Job,
    name: &ThoughtName,
    wt: &Worktree,
    mut w: WorkResult,
) -> Result<WorkResult, Error> {
    let entry = &job.entry;
    let no_agent = matches!(w.outcome, Outcome::AgentMissing | Outcome::Blocked);
    let Some(start) = wip_start(job).filter(|_| !no_agent && w.log.is_some()) else {
        return Ok(w);
    };
    if w.outcome == Outcome::Success {
        w.wip = WipChange::Drop;
        return Ok(w);
    }
    // A question left behind by a session that was cancelled is not work.
    let _ = std::fs::remove_file(wt.path.join(crate::question::FILE));
    let scanner =
        crate::secrets::Scanner::from_env(sh.env.iter().cloned(), &sh.cfg.settings.redact_env_keys);
    let rules = wip::Rules {
        thought_dir: &entry.dir,
        guardrails: &sh.cfg.settings.guardrails,
        secrets: &scanner,
    };
    match wip::take(sh.repo, wt, name, start, &rules)? {
        wip::Taken::Kept { head, files, lines } => {
            let ended = w.ended();
            w.wip = WipChange::Set(Wip {
                head,
                base: start.to_owned(),
                attempt: entry.attempts,
                ended: ended.chars().take(300).collect(),
                files,
                lines,
                at: crate::clock::now(),
                last_seen: wip::last_seen(&w.log_tail),
            });
        }
        wip::Taken::Nothing => {}
        wip::Taken::Refused(why) => {
            w.wip = WipChange::Drop;
            w.wip_note = Some(format!("its work in progress was not kept: {why}"));
        }
    }
    Ok(w)
}

/// A worktree that cannot be made: the branch checked out in a worktree of
/// the user's own is this machine's problem, said plainly, and not held
/// against the thought.
fn worktree_problem(w: WorkResult, name: &ThoughtName, e: Error) -> WorkResult {
    if let Error::LockHeld { .. } = e {
        let mut w = w.over(Outcome::Blocked, e.to_string());
        w.refund = true;
        return w;
    }
    let text = e.to_string();
    let branch = worktree::branch_for(name);
    let elsewhere = [
        "used by worktree at",
        "checked out at",
        "already used by worktree",
    ]
    .iter()
    .find_map(|needle| text.split_once(needle).map(|(_, rest)| rest));
    match elsewhere {
        Some(rest) => {
            let path = rest
                .trim()
                .trim_matches(|c| c == '\'' || c == '"')
                .lines()
                .next()
                .unwrap_or_default()
                .trim_end_matches(['\'', '"']);
            let mut w = w.over(
                Outcome::Blocked,
                format!(
                    "the branch {branch} is checked out in the worktree at {path}, so tgs cannot use it; remove that worktree (git worktree remove {path}) or switch it to another branch"
                ),
            );
            w.refund = true;
            w
        }
        None => w.over(
            Outcome::Failed,
            format!("tgs could not prepare the worktree: {text}"),
        ),
    }
}

/// A thought's first session: the implementation prompt, the agent, the
/// checks (against the base, whatever work in progress it started from).
fn first_session(
    sh: &Shared<'_>,
    job: &Job,
    thought: &Thought,
    wt: &Worktree,
    continued: Option<&Wip>,
    w: WorkResult,
    tx: &Sender<Msg>,
) -> Result<WorkResult, Error> {
    let cfg = sh.cfg;
    let entry = &job.entry;
    let context = context::context_files(sh.repo, &job.base, thought)?;
    let template = match &cfg.settings.impl_prompt {
        Some(p) => committed_template(sh.repo, &job.base, p)?,
        None => prompt::BUILTIN.to_owned(),
    };
    let continuation = continued.map(|kept| wip::continuation(kept, &wt.branch, &job.base));
    let answered = crate::question::prompt_block(&entry.questions);
    let continuation = match (continuation, answered) {
        (Some(c), Some(a)) => Some(format!("{c}\n{a}")),
        (c, a) => c.or(a),
    };
    let how_to_ask = crate::question::how_to_ask(cfg.settings.questions.max_per_thought);
    let text = prompt::render(
        &template,
        &prompt::PromptVars {
            thought,
            title: &entry.title,
            context_files: &context,
            branch: &wt.branch,
            attempt: entry.attempts,
            last_error: entry.last_error.as_deref(),
            continuation: continuation.as_deref(),
            how_to_ask: Some(&how_to_ask),
        },
    );
    agent_and_verify(sh, entry, wt, &job.base, &text, &context, w, tx)
}

/// The prompt template `path` as committed in `base`: the file in a working
/// tree is not read, since an agent may have rewritten it.
fn committed_template(repo: &Repo, base: &str, path: &str) -> Result<String, Error> {
    let why = |m: String| Error::invalid(format!("steps.impl_prompt {path}: {m}"));
    let bytes = repo
        .read_committed(base, path.trim_start_matches("./"), 1 << 20)
        .map_err(|e| why(e.to_string()))?
        .ok_or_else(|| why(format!("not committed in {}", &base[..base.len().min(12)])))?;
    String::from_utf8(bytes).map_err(|_| why("not UTF-8".into()))
}
