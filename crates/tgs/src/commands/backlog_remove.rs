//! `tgs server backlog remove`: drop an entry.

use tgs_core::backlog::store::Change;

use super::{find_entry, Ctx, WriteArgs};
use crate::error::CliResult;
use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The thought directory.
    #[arg(value_name = "DIR")]
    pub dir: String,
    #[command(flatten)]
    pub write: WriteArgs,
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let repo = ctx.repo()?;
    let store = ctx.target(&repo, &args.write)?;
    let dir = find_entry(&repo, &store.read()?, &args.dir)?;
    let applied = store.update(&args.write.options(), |b| {
        let e = b.remove(&dir)?;
        Ok(Change::with(e, format!("chore(tgs): remove {dir}")))
    })?;
    output::note(format!("removed {dir} (it was {})", applied.value.status));
    if ctx.json {
        output::json(&applied.value);
    }
    super::ok()
}
