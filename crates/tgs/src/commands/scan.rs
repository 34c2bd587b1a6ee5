//! `tgs server scan`: queue every approved thought the backlog has not seen.

use std::collections::HashSet;

use serde::Serialize;
use tgs_core::backlog::store::Change;
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
    let store = ctx.target(&repo, &args.write)?;
    let head = repo.discovered_head();
    let backlog = store.read()?;
    let known: HashSet<&str> = backlog.thoughts.iter().map(|e| e.dir.as_str()).collect();
    // Titles are read while the tree is still being listed.
    let (index, mut titles) = ThoughtIndex::load_titled(&repo, head, &["tgs"], |t, stage| {
        stage == Stage::Approved && !known.contains(t.dir.as_str())
    })?;
    super::warn_skipped(&index);
    let found: Vec<Found> = index
        .thoughts
        .iter()
        .filter_map(|t| {
            let title = titles.remove(&t.dir)?;
            Some(Found {
                dir: t.dir.clone(),
                title,
            })
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
                Ok(Change::maybe(added, msg))
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
