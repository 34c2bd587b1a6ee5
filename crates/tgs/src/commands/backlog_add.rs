//! `tgs server backlog add`: queue thoughts.

use serde_json::json;
use tgs_core::backlog::store::Change;
use tgs_core::backlog::AddOutcome;
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
    let archived: std::collections::HashSet<String> =
        store.read_archive()?.into_iter().map(|e| e.dir).collect();
    let now = tgs_core::clock::now();
    let applied = store.update(&args.write.options(), |b| {
        let mut outcomes = Vec::new();
        for (t, title) in found.iter().zip(&titles) {
            let outcome = if archived.contains(&t.dir) {
                AddOutcome::AlreadyPresent(tgs_core::backlog::Status::Completed)
            } else {
                b.add(&t.dir, title, args.priority, now)
            };
            outcomes.push((t.dir.clone(), outcome));
        }
        let added: Vec<&String> = outcomes
            .iter()
            .filter(|(_, o)| *o == AddOutcome::Added)
            .map(|(d, _)| d)
            .collect();
        let message = match added.as_slice() {
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
