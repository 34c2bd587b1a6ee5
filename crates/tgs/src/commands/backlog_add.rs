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
    let head = repo.discovered_head();
    // Check every argument before changing anything.
    let parsed = args
        .dirs
        .iter()
        .map(|a| parse_thought_arg(&repo, a))
        .collect::<Result<Vec<_>, _>>()?;
    let candidates: Vec<String> = parsed.iter().flat_map(|p| p.candidates()).collect();
    let paths: Vec<&str> = candidates.iter().map(String::as_str).collect();
    let index = ThoughtIndex::load_paths(&repo, head, &paths)?;
    let mut found = Vec::new();
    for (arg, p) in args.dirs.iter().zip(&parsed) {
        let Some(t) = p.candidates().iter().find_map(|d| index.find(d)) else {
            let dir = &p.candidates()[0];
            let on_disk = repo.root().join(dir).is_dir();
            let err = CliError::usage(format!(
                "{arg}: {dir} does not exist in the committed tree of HEAD"
            ));
            return Err(if on_disk {
                err.hint(format!(
                    "{dir} exists in the working tree: commit its research and plan first"
                ))
            } else {
                err
            });
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

    let store = ctx.target(&repo, &args.write)?;
    let now = tgs_core::clock::now();
    let applied = store.update(&args.write.options(), |b| {
        let mut outcomes = Vec::new();
        for (t, title) in found.iter().zip(&titles) {
            outcomes.push((t.dir.clone(), b.add(&t.dir, title, args.priority, now)));
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
