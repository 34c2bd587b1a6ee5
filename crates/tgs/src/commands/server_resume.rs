//! `tgs server resume AGENT`: lift an agent's pause (set when its provider
//! refused: rate limits lift by themselves, credit and credentials wait for
//! this), for every worker, and close the issue that told humans about it.

use tgs_core::backlog::store::Change;

use super::{Ctx, WriteArgs};
use crate::error::CliResult;
use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The agent (as in server.agent or --agent of `server run`).
    #[arg(value_name = "AGENT")]
    pub agent: String,
    #[command(flatten)]
    pub write: WriteArgs,
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let repo = ctx.repo()?;
    let state = ctx.target(&repo, &args.write)?;
    let agent = args.agent.clone();
    let applied = state.update(&args.write.options(), |b| {
        let was = b.pauses.get(&agent).cloned();
        let msg = b
            .resume(&agent)
            .then(|| format!("chore(tgs): resume {agent}"));
        Ok(Change::maybe(was, msg))
    })?;
    match applied.value {
        None => output::note(format!("the agent {agent} is not paused; nothing changed")),
        Some(p) => {
            output::note(format!(
                "resumed {agent} (it was paused: {}: {})",
                p.kind, p.reason
            ));
            let settings = ctx.settings(&repo)?;
            let origin = repo
                .git()
                .cmd(["remote", "get-url", &settings.remote])
                .output()?;
            let origin = origin.success.then(|| origin.stdout_text());
            if let Ok(Some(gh)) =
                tgs_core::github::GitHub::from_env(|k| std::env::var(k).ok(), origin.as_deref())
            {
                if let Err(e) = gh.resolve_agent_alert(&agent) {
                    output::warn(format!("could not close the issue about {agent}: {e}"));
                }
            }
        }
    }
    if ctx.json {
        output::json(&serde_json::json!({"agent": agent}));
    }
    super::ok()
}
