//! A revision session: the review loop's follow-up on a thought's open pull
//! request, in a worktree of the branch's current tip.
//!
//! A review or a `/tgs` comment gets an agent session with the revision
//! prompt, checked like a first session but on what it adds to the tip. An
//! update (the base moved and the PR conflicts) is a merge of the base done
//! by tgs itself when it is clean (no agent); only real conflicts get an
//! agent session, whose result is then checked as the whole pull request
//! against the new base, with no conflict marker left. Either way the
//! branch moves forward only: tgs never rewrites a reviewer's or a human's
//! commits.

use std::sync::mpsc::Sender;

use super::attempt::{agent_and_verify, Job, Msg, Shared, WorkResult};
use crate::backlog::{Revision, RevisionKind, Wip};
use crate::events::Outcome;
use crate::git::Git;
use crate::thought::Thought;
use crate::worktree::Worktree;
use crate::{context, prompt, verify, Error};

/// Run the revision `rev` of `job` in `wt`, made at the branch's tip (the
/// claim's) or at the work in progress `continued` an earlier attempt of
/// this revision kept on it. What is checked is what the revision adds to
/// the tip, however far earlier attempts got.
#[allow(clippy::too_many_arguments)]
pub(super) fn revise(
    sh: &Shared<'_>,
    job: &Job,
    rev: &Revision,
    thought: &Thought,
    wt: &Worktree,
    continued: Option<&Wip>,
    mut w: WorkResult,
    tx: &Sender<Msg>,
) -> Result<WorkResult, Error> {
    let entry = &job.entry;
    let Some(tip) = job.tip.as_deref() else {
        w.outcome = Outcome::Rejected;
        w.reason = Some(format!(
            "the branch of {}'s pull request is gone from the remote (merged or closed): nothing to revise",
            entry.dir
        ));
        w.branch_gone = true;
        return Ok(w);
    };
    let git = Git::new(&wt.path);
    let branch_stat = git
        .text(["diff", "--stat=100", &job.base, tip])
        .unwrap_or_default();
    let context = context::context_files(sh.repo, &job.base, thought)?;
    let mut conflicts = Vec::new();
    let mut rules_base = tip;
    if rev.kind == RevisionKind::Update {
        match merge_base_in(&git, &job.base, &job.base_label)? {
            Merge::Clean => {
                // Made by tgs's git before any agent ran: taken as it is.
                w.outcome = Outcome::Success;
                w.branch = Some(wt.branch.clone());
                w.head = Some(crate::worktree::hand_in(sh.repo, wt)?);
                return Ok(w);
            }
            Merge::Conflicts(files) => conflicts = files,
            Merge::Failed(why) => {
                w.outcome = Outcome::Failed;
                w.reason = Some(why);
                return Ok(w);
            }
        }
        // The merge brings the base's changes: the pull request as a whole,
        // against the new base, is what is checked.
        rules_base = &job.base;
    }
    let nonce = format!("{:016x}", fastrand::u64(..));
    let text = prompt::revision(&prompt::RevisionPrompt {
        thought,
        title: &entry.title,
        branch: &wt.branch,
        base_label: &job.base_label,
        context_files: &context,
        branch_stat: &branch_stat,
        revision: rev,
        conflicts: &conflicts,
        attempt: entry.attempts,
        last_error: entry.last_error.as_deref(),
        nonce: &nonce,
    });
    // How far an earlier attempt got, the questions asked so far and their
    // answers, and how to ask.
    let mut text = text;
    if let Some(kept) = continued {
        text.push('\n');
        text.push_str(&super::wip::continuation(kept, &wt.branch, tip));
    }
    if let Some(answered) = crate::question::prompt_block(&entry.questions) {
        text.push('\n');
        text.push_str(&answered);
    }
    let max = sh.cfg.settings.questions.max_per_thought;
    text.push_str(&format!("\n{}\n", crate::question::how_to_ask(max)));
    let w = agent_and_verify(sh, entry, wt, rules_base, &text, &context, w, tx)?;
    Ok(nothing_new(w, tip))
}

/// A revision whose head is still the tip did nothing the reviewer asked.
fn nothing_new(mut w: WorkResult, tip: &str) -> WorkResult {
    if w.outcome == Outcome::Success && w.head.as_deref() == Some(tip) {
        w.outcome = Outcome::Rejected;
        w.reason = Some("the revision changed nothing".into());
        w.branch = None;
        w.head = None;
    }
    w
}

/// How merging the base into the branch went.
enum Merge {
    /// Merged (or already up to date): the head is to be handed in.
    Clean,
    /// Left in progress, these files in conflict.
    Conflicts(Vec<String>),
    Failed(String),
}

/// Merge `base` into the worktree's branch, as tgs (never a rebase: the
/// branch's commits, a reviewer's among them, stay as they are).
fn merge_base_in(git: &Git, base: &str, label: &str) -> Result<Merge, Error> {
    let message = format!("Merge {label} into this branch (tgs: the base moved)");
    let out = git
        .cmd(["merge", "--no-edit", "--no-verify", "-m", &message, base])
        .output()?;
    if out.success {
        return Ok(Merge::Clean);
    }
    let files = verify::parse_name_list(
        &git.cmd(["diff", "--name-only", "--diff-filter=U", "-z"])
            .run()?,
    );
    if files.is_empty() {
        return Ok(Merge::Failed(format!(
            "could not merge {label}: {}",
            out.stderr.trim()
        )));
    }
    Ok(Merge::Conflicts(files))
}
