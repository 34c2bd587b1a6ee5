//! `tgs server backlog add`: queue thoughts.

use serde_json::json;
use tgs_core::backlog::store::Change;
use tgs_core::backlog::{AddOutcome, Backlog, Entry, Status};
use tgs_core::thought::{Stage, ThoughtIndex};

use super::{parse_thought_arg, Ctx, WriteArgs};
use crate::error::{CliError, CliResult};
use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Thought directories: `tgs/thoughts/x`, `x`, or a path to one.
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<String>,
    /// Priority (higher runs first).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i64,
    /// Start these only once OTHER is done (completed, its pull request
    /// merged); repeatable. OTHER must be in the backlog.
    #[arg(long, value_name = "OTHER")]
    pub after: Vec<String>,
    #[command(flatten)]
    pub write: WriteArgs,
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let repo = ctx.repo()?;
    // Check every argument before changing anything.
    let parsed = args
        .dirs
        .iter()
        .map(|a| parse_thought_arg(&repo, a))
        .collect::<Result<Vec<_>, _>>()?;
    let topo = ctx.topology(&repo, &args.write, true)?;
    // Queued work must be on the remote's base branch, where every worker
    // (and the worktree of the session) will look for it.
    let (base, commit) = super::base_commit(&repo, &topo)?;
    let candidates: Vec<String> = parsed.iter().flat_map(|p| p.candidates()).collect();
    let paths: Vec<&str> = candidates.iter().map(String::as_str).collect();
    let index = ThoughtIndex::load_paths(&repo, Some(&commit), &paths)?;
    let mut found = Vec::new();
    for (arg, p) in args.dirs.iter().zip(&parsed) {
        let Some(t) = p.candidates().iter().find_map(|d| index.find(d)) else {
            return Err(not_on_base(&repo, arg, &p.candidates(), &base)?);
        };
        if !found
            .iter()
            .any(|x: &&tgs_core::thought::Thought| x.dir == t.dir)
        {
            found.push(t);
        }
    }
    let titles = index.titles(&repo, &found)?;
    for t in &found {
        let stage = index.stage(t);
        if stage != Stage::Approved {
            output::warn(format!("{} is {}, not approved", t.dir, stage.as_str()));
        }
    }

    let store = ctx.state(&repo, &topo, &args.write, None)?;
    // Finished entries live in the archive: they are known, not added again.
    let archive = store.read_archive()?;
    let archived: std::collections::HashSet<String> =
        archive.iter().map(|e| e.dir.clone()).collect();
    let after = dependencies(&repo, &store.read()?, &archive, &args.after)?;
    let max_depth = ctx.settings(&repo)?.max_queue_depth;
    let now = tgs_core::clock::now();
    let applied = store.update(&args.write.options(), |b| {
        let mut outcomes = Vec::new();
        for (t, title) in found.iter().zip(&titles) {
            let outcome = if archived.contains(&t.dir) {
                AddOutcome::AlreadyPresent(tgs_core::backlog::Status::Completed)
            } else {
                b.add(&t.dir, title, args.priority, now)
            };
            if !after.is_empty() && outcome != AddOutcome::AlreadyPresent(Status::Completed) {
                if let Some(cycle) = b.cycle_through(&t.dir, &after) {
                    return Err(tgs_core::Error::invalid(format!(
                        "the dependencies would make a cycle: {}",
                        cycle.join(" → ")
                    )));
                }
                if let Some(e) = b.thoughts.iter_mut().find(|e| e.dir == t.dir) {
                    for d in &after {
                        if !e.depends_on.contains(d) {
                            e.depends_on.push(d.clone());
                        }
                    }
                }
            }
            outcomes.push((t.dir.clone(), outcome));
        }
        if let Some(max) = max_depth {
            let queued = b.thoughts.iter().filter(|e| e.status == Status::Queued).count();
            if queued > max {
                return Err(tgs_core::Error::invalid(format!(
                    "the queue would hold {queued} thoughts, more than server.max_queue_depth ({max}); nothing was added"
                )));
            }
        }
        let added: Vec<&String> = outcomes
            .iter()
            .filter(|(_, o)| *o == AddOutcome::Added)
            .map(|(d, _)| d)
            .collect();
        let message = match added.as_slice() {
            [] if !after.is_empty() => Some("chore(tgs): set dependencies".to_owned()),
            [] => None,
            [one] => Some(format!("chore(tgs): add {one}")),
            many => Some(format!(
                "chore(tgs): add {} thoughts to the backlog",
                many.len()
            )),
        };
        Ok(Change::maybe(outcomes, message))
    })?;
    let mut report = Vec::new();
    for (dir, outcome) in &applied.value {
        match outcome {
            AddOutcome::Added => {
                output::note(format!("added {dir} (priority {})", args.priority));
                report.push(json!({ "dir": dir, "added": true }));
            }
            AddOutcome::AlreadyPresent(status) => {
                output::note(format!(
                    "{dir} is already in the backlog ({status}); nothing changed"
                ));
                report.push(json!({ "dir": dir, "added": false, "status": status }));
            }
        }
    }
    if ctx.json {
        output::json(&report);
    }
    super::ok()
}

/// Why a thought is not on the base: committed here only, only in the
/// working tree, or nowhere.
fn not_on_base(
    repo: &tgs_core::repo::Repo,
    arg: &str,
    candidates: &[String],
    base: &str,
) -> CliResult<CliError> {
    let here = match repo.discovered_head() {
        Some(head) => {
            let paths: Vec<&str> = candidates.iter().map(String::as_str).collect();
            let index = ThoughtIndex::load_paths(repo, Some(head), &paths)?;
            candidates.iter().find(|d| index.find(d).is_some()).cloned()
        }
        None => None,
    };
    let dir = here.clone().unwrap_or_else(|| candidates[0].clone());
    Ok(match here {
        Some(_) => CliError::usage(format!("{arg}: {dir} is committed here but not on {base}"))
            .hint("push it first: the server reads thoughts from the remote's base branch"),
        // A real directory only: a symlink (to /etc, say) is no thought.
        None if std::fs::symlink_metadata(repo.root().join(&dir)).is_ok_and(|m| m.is_dir()) => {
            CliError::usage(format!("{arg}: {dir} is not committed")).hint(format!(
                "commit its research and plan and push them to {base} first"
            ))
        }
        None => CliError::usage(format!("{arg}: {dir} does not exist on {base}")),
    })
}

/// The directories `--after` names, checked: each must be in the backlog
/// (live, or archived). One that is archived and done is no dependency.
fn dependencies(
    repo: &tgs_core::repo::Repo,
    live: &Backlog,
    archive: &[Entry],
    after: &[String],
) -> CliResult<Vec<String>> {
    let mut out = Vec::new();
    for arg in after {
        let candidates = parse_thought_arg(repo, arg)?.candidates();
        if let Some(d) = candidates.iter().find(|d| live.get(d).is_some()) {
            out.push(d.clone());
            continue;
        }
        match archive.iter().find(|e| candidates.contains(&e.dir)) {
            Some(e) if tgs_core::history::satisfies_dependents(e) => {
                output::note(format!("{} is done already: no need to wait for it", e.dir));
            }
            Some(e) => out.push(e.dir.clone()),
            None => {
                return Err(CliError::usage(format!(
                    "--after {arg}: {} is not in the backlog",
                    candidates[0]
                ))
                .hint("add it first: a thought can only wait for one the backlog knows"))
            }
        }
    }
    Ok(out)
}
