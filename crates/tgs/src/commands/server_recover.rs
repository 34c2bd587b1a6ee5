//! `tgs server recover`: give expired claims back to the queue.

use tgs_core::backlog::store::Change;

use super::{Ctx, WriteArgs};
use crate::error::CliResult;
use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub write: WriteArgs,
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let repo = ctx.repo()?;
    let state = ctx.target(&repo, &args.write)?;
    let now = tgs_core::clock::now();
    let applied = state.update(&args.write.options(), |b| {
        let dirs = b.recover_expired(now);
        let msg = (!dirs.is_empty())
            .then(|| format!("chore(tgs): requeue {} expired claim(s)", dirs.len()));
        Ok(Change::maybe(dirs, msg))
    })?;
    if ctx.json {
        output::json(&applied.value);
    } else if applied.value.is_empty() {
        output::note("no expired claims");
    } else {
        for d in &applied.value {
            anstream::println!("{d}");
        }
        output::note(format!("requeued {} expired claim(s)", applied.value.len()));
    }
    super::ok()
}
