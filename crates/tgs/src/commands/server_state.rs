//! `tgs server state migrate`: move the state out of the base branch's tree
//! onto a branch of its own; `tgs server state restore`: push back a state
//! branch deleted from the remote.

use tgs_core::backlog::migrate;
use tgs_core::topology::DEFAULT_STATE_BRANCH;

use super::{Ctx, WriteArgs};
use crate::error::{CliError, CliResult};
use crate::output;

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// The state branch to create.
    #[arg(long, value_name = "BRANCH", default_value = DEFAULT_STATE_BRANCH)]
    pub to: String,
    #[command(flatten)]
    pub write: WriteArgs,
}

pub fn migrate(ctx: &Ctx, args: MigrateArgs) -> CliResult {
    let repo = ctx.repo()?;
    let settings = ctx.settings(&repo)?;
    let topo = ctx.topology(&repo, &args.write, true)?;
    let done = migrate::migrate(&repo, &topo, &args.to)?;
    if ctx.json {
        output::json(&done);
        return super::ok();
    }
    output::note(format!(
        "moved the server state from {} to {} ({} files: {})",
        done.from,
        done.to,
        done.files.len(),
        done.files.join(", ")
    ));
    if settings.state_branch.is_some() && settings.state_branch.as_deref() != Some(&args.to) {
        output::note(format!(
            "next: set server.state_branch: {} in tgs/tgs.yml (it names {} now)",
            args.to,
            settings.state_branch.as_deref().unwrap_or_default()
        ));
    }
    output::note(format!(
        "the old files stay in {} until you remove them: git rm -r tgs/server && git commit -m \"chore(tgs): the server state lives on {}\" && git push",
        done.from, args.to
    ));
    super::ok()
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {}

pub fn restore(ctx: &Ctx, _args: RestoreArgs) -> CliResult {
    let repo = ctx.repo()?;
    let topo = ctx.topology(&repo, &WriteArgs::default(), true)?;
    let state = ctx.state(&repo, &topo, &WriteArgs::default(), None)?;
    let tgs_core::backlog::target::StateTarget::Shared(shared) = &state else {
        return Err(CliError::usage(
            "the state is kept in this working tree: there is no state branch to restore",
        ));
    };
    let commit = shared.restore()?;
    if ctx.json {
        output::json(&serde_json::json!({ "restored": commit, "branch": topo.state_branch() }));
        return super::ok();
    }
    output::note(format!(
        "restored {} on {} at {}",
        topo.state_branch(),
        shared.remote().unwrap_or_default(),
        &commit[..commit.len().min(12)]
    ));
    super::ok()
}
