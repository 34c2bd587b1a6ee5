//! `tgs server sync-prs`: record on completed entries whether their pull
//! request is open, merged or closed unmerged, and retry the hand-overs that
//! are pending (work pushed, its pull request not opened yet).

use std::collections::BTreeMap;

use serde_json::json;
use tgs_core::backlog::store::Change;
use tgs_core::backlog::Status;
use tgs_core::github::{GitHub, PrState};

use super::{Ctx, WriteArgs};
use crate::error::{CliError, CliResult};
use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub write: WriteArgs,
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let repo = ctx.repo()?;
    let settings = ctx.settings(&repo)?;
    let origin = repo
        .git()
        .cmd(["remote", "get-url", &settings.remote])
        .output()?;
    let origin = origin.success.then(|| origin.stdout_text());
    let gh = GitHub::from_env(|k| std::env::var(k).ok(), origin.as_deref())?.ok_or_else(|| {
        CliError::usage("no GitHub token: set TGS_GITHUB_TOKEN, GITHUB_TOKEN or GH_TOKEN")
            .hint("the token needs read access to pull requests")
    })?;
    let topo = ctx.topology(&repo, &args.write, true)?;
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
        }
        .retry_due(&mut handed, &|| false)?;
    }
    let backlog = state.read()?;
    // Ask GitHub first, outside the state transaction: it may be slow.
    let mut seen: BTreeMap<String, &'static str> = BTreeMap::new();
    for e in backlog
        .thoughts
        .iter()
        .filter(|e| e.status == Status::Completed)
    {
        let Some(url) = &e.pr_url else { continue };
        let s = match gh.pr_state(url) {
            Ok(PrState::Open) => "open",
            Ok(PrState::Merged) => "merged",
            Ok(PrState::ClosedUnmerged) => "closed",
            Err(err) => {
                output::warn(format!("{}: {err}", e.dir));
                continue;
            }
        };
        seen.insert(e.dir.clone(), s);
    }
    let applied = state.update(&args.write.options(), |b| {
        let mut changed = Vec::new();
        for e in b.thoughts.iter_mut() {
            if let Some(s) = seen.get(&e.dir) {
                if e.pr_state.as_deref() != Some(*s) {
                    e.pr_state = Some((*s).to_owned());
                    changed.push((e.dir.clone(), *s));
                }
            }
        }
        let msg = (!changed.is_empty()).then(|| {
            format!(
                "chore(tgs): sync the state of {} pull request(s)",
                changed.len()
            )
        });
        Ok(Change::maybe(changed, msg))
    })?;
    if ctx.json {
        output::json(
            &seen
                .iter()
                .map(|(d, s)| json!({"dir": d, "pr_state": s}))
                .chain(handed.0.iter().map(|(d, disposition, url)| {
                    json!({"dir": d, "handover": disposition, "pr_url": url})
                }))
                .collect::<Vec<_>>(),
        );
    } else {
        for (d, disposition, url) in &handed.0 {
            match url {
                Some(u) => anstream::println!("handed over {d}: {u}"),
                None => anstream::println!("hand-over {} {d}", disposition.as_str()),
            }
        }
        for (d, s) in &seen {
            anstream::println!("{s:7} {d}");
        }
        output::note(format!(
            "{} pull request(s) checked, {} changed",
            seen.len(),
            applied.value.len()
        ));
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
