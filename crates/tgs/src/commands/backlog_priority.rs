//! `tgs server backlog priority`: reorder the queue.

use tgs_core::backlog::store::Change;

use super::{find_entry, Ctx, WriteArgs};
use crate::error::CliResult;
use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The thought directory.
    #[arg(value_name = "DIR")]
    pub dir: String,
    /// The new priority (higher runs first).
    #[arg(allow_negative_numbers = true)]
    pub priority: i64,
    #[command(flatten)]
    pub write: WriteArgs,
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let repo = ctx.repo()?;
    let store = ctx.target(&repo, &args.write)?;
    let dir = find_entry(&repo, &store.read()?, &args.dir)?;
    let p = args.priority;
    let applied = store.update(&args.write.options(), |b| {
        let old = b.set_priority(&dir, p)?;
        Ok(Change::with(
            old,
            format!("chore(tgs): set priority of {dir} to {p}"),
        ))
    })?;
    output::note(format!("{dir}: priority {} -> {p}", applied.value));
    if ctx.json {
        output::json(&serde_json::json!({ "dir": dir, "priority": p, "previous": applied.value }));
    }
    super::ok()
}
