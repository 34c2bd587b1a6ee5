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
    let topo = ctx.topology(&repo, &args.write, !args.dry_run)?;
    let store = ctx.state(&repo, &topo, &args.write, None)?;
    // What is approved is what the remote's base branch holds, fetched:
    // a thought committed here and not pushed is not work for anyone yet.
    let base = super::base_commit(&repo, &topo)?;
    let backlog = store.read_all()?;
    let known: HashSet<&str> = backlog.thoughts.iter().map(|e| e.dir.as_str()).collect();
    // Titles are read while the tree is still being listed.
    let (index, mut titles) =
        ThoughtIndex::load_titled(&repo, Some(&base.1), &["tgs"], |t, stage| {
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
    for dir in super::approved_only_here(&repo, &index, &base.1)? {
        if !known.contains(dir.as_str()) {
            output::warn(format!(
                "{dir}: approved here but not on {}: push it first; not queued",
                base.0
            ));
        }
    }

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
