//! `tgs server matrix --max N`: claim up to N thoughts in one state change
//! and print them as a GitHub Actions job matrix,
//! `{"include":[{"thought":...,"attempt":...,"claim_id":...,"worker":...}]}`
//! (an empty `include` when there is no work). In Actions it is also
//! written to `$GITHUB_OUTPUT` as `matrix` and `count`.

use std::time::Duration;

use serde_json::json;
use tgs_core::events::Fanout;
use tgs_core::runner::{Mode, RunConfig, Runner};

use super::{Ctx, WriteArgs};
use crate::error::CliResult;
use crate::output;
use crate::progress::Console;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Claim at most N thoughts.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub max: u32,
    /// The agent the sessions will use (default: server.agent): no claim
    /// is made while it is paused.
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
    /// Who claims, in the state (default: hostname/user); the hand-over
    /// records the sessions under the same name.
    #[arg(long, value_name = "ID")]
    pub worker_id: Option<String>,
    /// The session timeout the leases are made for (default: server.session_timeout).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Bundle the work in progress of each claimed thought that has one
    /// into DIR/<claim id>.bundle, for its session's job (`tgs server run
    /// --claimed ... --wip-bundle`), which holds no token to fetch it.
    #[arg(long, value_name = "DIR")]
    pub wip_out: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub write: WriteArgs,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    tgs_core::config::parse_duration(s)
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let repo = ctx.repo()?;
    let worker_id = args
        .worker_id
        .clone()
        .unwrap_or_else(tgs_core::clock::default_worker_id);
    let topo = ctx.topology(&repo, &args.write, true)?;
    let settings = ctx.server_settings(&repo, &topo)?;
    let state = ctx.state(&repo, &topo, &args.write, Some(worker_id.clone()))?;
    let cfg = RunConfig {
        agent: args.agent.clone().unwrap_or_else(|| settings.agent.clone()),
        session_timeout: args.timeout.unwrap_or(settings.session_timeout),
        settings,
        worker_id,
        mode: Mode::Once,
        thought: None,
        push: topo.remote().is_some(),
        open_pr: false,
        remote: topo.remote().map(|r| r.name.clone()),
        base_branch: topo.base_branch_name(&repo)?,
        transcript_whole: None,
        parallel: 1,
        max_sessions: None,
    };
    let runner = Runner {
        repo: &repo,
        cfg,
        state,
        forge: None,
        signals: None,
        env: Vec::new(),
        topology: topo,
    };
    let mut console = Console::new(false, true);
    let mut sinks = Fanout::default();
    sinks.push(&mut console);
    let tickets = runner.claim_batch(args.max, &mut sinks)?;
    if let Some(dir) = &args.wip_out {
        runner.bundle_wips(&tickets, dir)?;
    }
    let matrix = json!({ "include": tickets });
    output::json_line(&matrix);
    crate::actions::set_output("matrix", &matrix.to_string());
    crate::actions::set_output("count", &tickets.len().to_string());
    if !ctx.json {
        output::note(format!("claimed {} thought(s)", tickets.len()));
    }
    super::ok()
}
