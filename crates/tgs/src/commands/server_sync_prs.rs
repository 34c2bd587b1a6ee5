//! `tgs server sync-prs`: record on completed entries whether their pull
//! request is open, merged or closed unmerged, and retry the hand-overs that
//! are pending (work pushed, its pull request not opened yet).

use serde_json::json;
use tgs_core::github::GitHub;

use super::{Ctx, WriteArgs};
use crate::error::{CliError, CliResult};
use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this pull request (its number), as the review workflow does.
    #[arg(long, value_name = "NUMBER")]
    pub pr: Option<u64>,
    #[command(flatten)]
    pub write: WriteArgs,
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let repo = ctx.repo()?;
    let remote = ctx.settings(&repo)?.remote;
    let origin = repo.git().cmd(["remote", "get-url", &remote]).output()?;
    let origin = origin.success.then(|| origin.stdout_text());
    let gh = GitHub::from_env(|k| std::env::var(k).ok(), origin.as_deref())?.ok_or_else(|| {
        CliError::usage("no GitHub token: set TGS_GITHUB_TOKEN, GITHUB_TOKEN or GH_TOKEN")
            .hint("the token needs read access to pull requests")
    })?;
    let topo = ctx.topology(&repo, &args.write, true)?;
    // The review loop's rules (who may ask, the PR template) as committed.
    let settings = ctx.server_settings(&repo, &topo)?;
    let state = ctx.state(&repo, &topo, &args.write, None)?;
    let mut handed = HandedOver::default();
    if let Some(remote) = topo.remote() {
        let base_branch = topo.base_branch_name(&repo)?;
        tgs_core::runner::Pending {
            repo: &repo,
            state: &state,
            forge: &gh,
            remote: &remote.name,
            pr: &settings.pr,
            base_branch: &base_branch,
            agent: &settings.agent,
            redact_env_keys: &settings.redact_env_keys,
        }
        .retry_due(&mut handed, &|| false)?;
    }
    let review = &settings.review;
    let synced = tgs_core::review::sync::sync(
        &gh,
        &state,
        review,
        args.pr,
        &tgs_core::clock::default_worker_id(),
    )?;
    crate::actions::set_output("queued", &synced.queued.len().to_string());
    for (dir, problem) in &synced.problems {
        output::warn(format!("{dir}: {problem}"));
    }
    if ctx.json {
        output::json(&json!({
            "pull_requests": synced.pr_states.iter().map(|(d, s)| json!({"dir": d, "pr_state": s})).collect::<Vec<_>>(),
            "handovers": handed.0.iter().map(|(d, disposition, url)| json!({"dir": d, "handover": disposition, "pr_url": url})).collect::<Vec<_>>(),
            "revisions_queued": synced.queued.iter().map(|(d, w)| json!({"dir": d, "what": w})).collect::<Vec<_>>(),
            "ignored": synced.ignored.iter().map(|(d, w)| json!({"dir": d, "what": w})).collect::<Vec<_>>(),
            "cancelled": synced.cancelled.iter().map(|(d, n)| json!({"dir": d, "revisions": n})).collect::<Vec<_>>(),
            "needs_human": synced.to_human.iter().map(|(d, u, w)| json!({"dir": d, "pr_url": u, "why": w})).collect::<Vec<_>>(),
            "answered": synced.answered.iter().map(|(d, by)| json!({"dir": d, "by": by})).collect::<Vec<_>>(),
        }));
    } else {
        for (d, disposition, url) in &handed.0 {
            match url {
                Some(u) => anstream::println!("handed over {d}: {u}"),
                None => anstream::println!("hand-over {} {d}", disposition.as_str()),
            }
        }
        for (d, s) in &synced.pr_states {
            anstream::println!("{s:7} {d}");
        }
        for (d, w) in &synced.queued {
            anstream::println!("revision queued for {d}: {w}");
        }
        for (d, n) in &synced.cancelled {
            anstream::println!("{n} revision(s) of {d} cancelled: its pull request is closed");
        }
        for (d, w) in &synced.ignored {
            anstream::println!("ignored on {d}: {w}");
        }
        for (d, u, w) in &synced.to_human {
            anstream::println!("{u} ({d}) needs a human: {w}");
        }
        for (d, by) in &synced.answered {
            anstream::println!("{d}: its agent's question was answered by {by}; queued again");
        }
        output::note(format!(
            "{} pull request(s) checked, {} changed, {} revision(s) queued",
            synced.pr_states.len(),
            synced.changed,
            synced.queued.len()
        ));
    }
    if let (Some(n), true) = (
        args.pr,
        synced.pr_states.is_empty() && synced.problems.is_empty(),
    ) {
        return Err(CliError::usage(format!(
            "no thought in the backlog has pull request #{n}"
        ))
        .hint("the review loop follows the pull requests tgs opened; `tgs server backlog list` shows them"));
    }
    if !synced.problems.is_empty() {
        return Err(CliError::failed(format!(
            "{} pull request(s) could not be read; what could be was recorded",
            synced.problems.len()
        )));
    }
    super::ok()
}

/// The pending hand-overs retried, as they went.
#[derive(Default)]
struct HandedOver(Vec<(String, tgs_core::events::Disposition, Option<String>)>);

impl tgs_core::events::Sink for HandedOver {
    fn event(&mut self, e: &tgs_core::events::Event) {
        if let tgs_core::events::Event::HandoverRetried {
            dir,
            pr_url,
            disposition,
            reason,
        } = e
        {
            if let Some(r) = reason {
                output::warn(format!("{dir}: the hand-over is still pending: {r}"));
            }
            self.0.push((dir.clone(), *disposition, pr_url.clone()));
        }
    }
}
