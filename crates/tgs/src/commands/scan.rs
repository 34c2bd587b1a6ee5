//! `tgs server scan`: queue every approved thought the backlog has not seen.

use std::collections::HashSet;

use serde::Serialize;
use tgs_core::backlog::store::Change;
use tgs_core::backlog::{AddOutcome, Backlog, Status};
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
    /// What its README says it waits for (`- Depends on:`), still to be done.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    depends_on: Vec<String>,
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
            let read = titles.remove(&t.dir)?;
            Some(Found {
                dir: t.dir.clone(),
                title: read.title,
                depends_on: read.depends_on,
            })
        })
        .collect();
    let found = with_dependencies(found, &backlog);
    for dir in super::approved_only_here(&repo, &index, &base.1)? {
        if !known.contains(dir.as_str()) {
            output::warn(format!(
                "{dir}: approved here but not on {}: push it first; not queued",
                base.0
            ));
        }
    }

    let max_depth = ctx.settings(&repo)?.max_queue_depth;
    let mut full = Vec::new();
    let added = if args.dry_run || found.is_empty() {
        found
    } else {
        let now = tgs_core::clock::now();
        let applied = store.update(&args.write.options(), |b| {
            full.clear();
            // Re-check against the state under the lock: another writer may have added some.
            let mut added: Vec<Found> = Vec::new();
            for f in &found {
                let queued = b
                    .thoughts
                    .iter()
                    .filter(|e| e.status == Status::Queued)
                    .count();
                if max_depth.is_some_and(|max| queued >= max) {
                    full.push(f.dir.clone());
                    continue;
                }
                if b.add(&f.dir, &f.title, 0, now) != AddOutcome::Added {
                    continue;
                }
                if let Some(cycle) = b.cycle_through(&f.dir, &f.depends_on) {
                    output::warn(format!(
                        "{}: not queued: its dependencies make a cycle: {}",
                        f.dir,
                        cycle.join(" → ")
                    ));
                    b.remove(&f.dir)?;
                    continue;
                }
                if let Some(e) = b.thoughts.iter_mut().find(|e| e.dir == f.dir) {
                    e.depends_on = f.depends_on.clone();
                }
                added.push(f.clone());
            }
            let msg = (!added.is_empty()).then(|| match added.as_slice() {
                [one] => format!("chore(tgs): scan added {}", one.dir),
                many => format!("chore(tgs): scan added {} thoughts", many.len()),
            });
            Ok(Change::maybe(added, msg))
        })?;
        applied.value
    };
    if !full.is_empty() {
        output::warn(format!(
            "{} approved thought(s) not queued: the queue is full (server.max_queue_depth {}): {}",
            full.len(),
            max_depth.unwrap_or_default(),
            full.join(", ")
        ));
    }
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

/// Keep of each found thought's declared dependencies (its README's
/// `- Depends on:`) those still to be done. A dependency the backlog does not
/// know and this scan does not add keeps its thought out of the queue, said.
fn with_dependencies(found: Vec<Found>, known: &Backlog) -> Vec<Found> {
    let coming: HashSet<String> = found.iter().map(|f| f.dir.clone()).collect();
    let mut out = Vec::new();
    for mut f in found {
        let mut deps = Vec::new();
        let mut unknown = Vec::new();
        for d in std::mem::take(&mut f.depends_on) {
            match known.get(&d) {
                Some(e) if tgs_core::history::satisfies_dependents(e) => {}
                Some(_) => deps.push(d),
                None if coming.contains(&d) => deps.push(d),
                None => unknown.push(d),
            }
        }
        if !unknown.is_empty() {
            output::warn(format!(
                "{}: not queued: it depends on {}, which the backlog does not know (queue it first)",
                f.dir,
                unknown.join(", ")
            ));
            continue;
        }
        f.depends_on = deps;
        out.push(f);
    }
    out
}
