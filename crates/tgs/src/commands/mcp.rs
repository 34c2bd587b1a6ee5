//! `tgs mcp`: serve the backlog to an MCP client on stdio (see [`crate::mcp`]).

use std::path::PathBuf;

use super::Ctx;
use crate::error::CliResult;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The session-scoped server an agent at work reaches from its sandbox:
    /// its only tool, `ask_humans`, writes the question to this file.
    #[arg(long, value_name = "FILE")]
    pub ask: Option<PathBuf>,
}

pub fn run(ctx: &Ctx, a: Args) -> CliResult {
    if let Some(file) = a.ask {
        crate::mcp::run_ask(file)?;
        return super::ok();
    }
    // The write tools only where the committed configuration allows them.
    let repo = ctx.repo()?;
    let write = tgs_core::config::Config::load(repo.root())?.mcp.write;
    crate::mcp::run_backlog(write)?;
    super::ok()
}
