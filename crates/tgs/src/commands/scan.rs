//! `tgs server scan`: queue every approved thought the backlog has not seen.

use serde::Serialize;
use tgs_core::backlog::store::{Change, Store};
use tgs_core::backlog::AddOutcome;
use tgs_core::thought::{Stage, ThoughtIndex};

use super::{Ctx, WriteArgs};
use crate::error::CliResult;
use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show what would be added without changing anything.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Serialize, Clone)]
struct Found {
    dir: String,
    title: String,
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let repo = ctx.repo()?;
    let store = Store::new(&repo);
    let head = repo.head()?;
    let index = ThoughtIndex::load(&repo, head.as_deref())?;
    let backlog = store.read()?;
    let new: Vec<_> = index
        .thoughts
        .iter()
        .filter(|t| index.stage(t) == Stage::Approved && backlog.get(&t.dir).is_none())
        .collect();
    let titles = index.titles(&repo, &new)?;
    let found: Vec<Found> = new
        .iter()
        .zip(titles)
        .map(|(t, title)| Found {
            dir: t.dir.clone(),
            title,
        })
        .collect();

    let added = if args.dry_run || found.is_empty() {
        found
    } else {
        let now = tgs_core::clock::now();
        store
            .update(&args.write.options(), |b| {
                // Re-check against the state under the lock: another writer may have added some.
                let added: Vec<Found> = found
                    .iter()
                    .filter(|f| b.add(&f.dir, &f.title, 0, now) == AddOutcome::Added)
                    .cloned()
                    .collect();
                let msg = (!added.is_empty()).then(|| match added.as_slice() {
                    [one] => format!("chore(tgs): scan added {}", one.dir),
                    many => format!("chore(tgs): scan added {} thoughts", many.len()),
                });
                Ok(Change {
                    value: added,
                    message: msg,
                })
            })?
            .value
    };
    if ctx.json {
        output::json(&added);
    } else {
        let rows: Vec<Vec<String>> = added
            .iter()
            .map(|f| vec![f.dir.clone(), f.title.clone()])
            .collect();
        if !rows.is_empty() {
            output::table(&["DIR", "TITLE"], &rows);
        }
        output::note(format!(
            "{} {} approved thought(s)",
            if args.dry_run { "would add" } else { "added" },
            added.len()
        ));
    }
    super::ok()
}
