//! `tgs server handover --claims MATRIX ARTIFACT_DIR...`: the job with
//! write access checks each session's artifact again (the claim against the
//! state, the bundle against the record, the work against the rules),
//! pushes the branch, opens the pull request, records the outcome and alerts;
//! a claimed thought whose artifact is missing is recorded as such and
//! requeued at once.

use std::path::PathBuf;
use std::process::ExitCode;

use tgs_core::events::{Fanout, Outcome};
use tgs_core::runner::{ClaimTicket, Mode, RunConfig, Runner};

use super::{Ctx, WriteArgs};
use crate::error::{code, CliError, CliResult};
use crate::output;
use crate::progress::Console;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The claims of this run: the JSON `tgs server matrix` printed.
    #[arg(long, value_name = "JSON")]
    pub claims: String,
    /// The artifact folders the sessions left (missing ones are fine: their
    /// claims are recorded as sessions that left nothing).
    #[arg(value_name = "ARTIFACT_DIR")]
    pub dirs: Vec<PathBuf>,
    /// Do not open pull requests (the branches are still pushed).
    #[arg(long)]
    pub no_pr: bool,
    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(serde::Deserialize)]
struct Matrix {
    include: Vec<ClaimTicket>,
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    tgs_core::secrets::warm_up();
    let matrix: Matrix = serde_json::from_str(&args.claims).map_err(|e| {
        CliError::usage(format!(
            "--claims is not the JSON of `tgs server matrix`: {e}"
        ))
    })?;
    let repo = ctx.repo()?;
    let topo = ctx.topology(&repo, &args.write, true)?;
    let settings = ctx.server_settings(&repo, &topo)?;
    let state = ctx.state(&repo, &topo, &args.write, None)?;
    let origin = topo.remote().map(|r| r.url.clone());
    let forge = if !args.no_pr && origin.is_some() {
        tgs_core::github::GitHub::from_env(|k| std::env::var(k).ok(), origin.as_deref())?
            .map(|gh| Box::new(gh) as Box<dyn tgs_core::forge::Forge>)
    } else {
        None
    };
    let cfg = RunConfig {
        agent: settings.agent.clone(),
        session_timeout: settings.session_timeout,
        worker_id: tgs_core::clock::default_worker_id(),
        mode: Mode::Once,
        thought: None,
        push: origin.is_some(),
        open_pr: !args.no_pr,
        remote: topo.remote().map(|r| r.name.clone()),
        base_branch: topo.base_branch_name(&repo)?,
        transcript_whole: crate::actions::artifact_hint(),
        parallel: 1,
        max_sessions: None,
        settings,
    };
    let runner = Runner {
        repo: &repo,
        cfg,
        state,
        forge,
        signals: None,
        env: Vec::new(),
        topology: topo,
    };
    let mut console = Console::new(false, true);
    let mut actions = crate::actions::Actions::new();
    let mut sinks = Fanout::default();
    sinks.push(&mut console);
    if crate::actions::active() {
        sinks.push(&mut actions);
    }
    let dirs: Vec<PathBuf> = args.dirs.into_iter().filter(|d| d.is_dir()).collect();
    let reports = runner.hand_over_artifacts(&matrix.include, &dirs, &mut sinks)?;
    let failed = reports.iter().filter(|r| r.final_failure).count();
    let ok = reports
        .iter()
        .filter(|r| r.outcome == Outcome::Success)
        .count();
    if ctx.json {
        output::json(&serde_json::json!({
            "sessions": reports.len(),
            "succeeded": ok,
            "failed_for_good": failed,
        }));
    }
    output::note(format!("{ok} of {} session(s) handed over", reports.len()));
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(code::FAILED)
    })
}
