//! `tgs server backlog validate`: check the backlog against the repository.

use std::process::ExitCode;

use serde_json::json;
use tgs_core::backlog::store::Change;
use tgs_core::backlog::validate::{self, ProblemKind};
use tgs_core::thought::ThoughtIndex;

use super::{Ctx, WriteArgs};
use crate::error::{code, CliError, CliResult};
use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Repair what is safe (duplicates, abandoned claims, implemented or vanished thoughts,
    /// values tgs does not use as they are: each set to the safe value it is read as).
    #[arg(long)]
    pub fix: bool,
    #[command(flatten)]
    pub write: WriteArgs,
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    // It lists each value read as a safe one itself.
    tgs_core::backlog::store::repairs_listed_elsewhere();
    let repo = ctx.repo()?;
    let topo = ctx.topology(&repo, &args.write, args.fix)?;
    let store = ctx.state(&repo, &topo, &args.write, None)?;
    // Judged against the remote's base branch, never this clone's HEAD: a
    // local commit not pushed yet must not make a teammate's entry vanish.
    let (base, commit) = super::base_commit(&repo, &topo)?;
    let index = ThoughtIndex::load(&repo, Some(&commit))?;
    super::warn_skipped(&index);
    let now = tgs_core::clock::now();
    let text = store.read_text()?;
    let archived: std::collections::HashSet<String> =
        store.read_archive()?.into_iter().map(|e| e.dir).collect();
    let mut problems = validate::check(text.as_deref(), &index, &base, &archived, now);
    // A file that cannot be read at all is an error (exit 3), not a list of problems.
    if let Some(p) = problems.iter().find(|p| p.kind == ProblemKind::Unreadable) {
        if ctx.json {
            output::json(&json!({ "ok": false, "problems": problems, "fixed": [] }));
        }
        return Err(
            CliError::state(format!("{}: {p}", tgs_core::backlog::store::BACKLOG_PATH))
                .hint("fix the file by hand; it was left as it was"),
        );
    }
    let mut fixed = Vec::new();
    if args.fix && problems.iter().any(|p| p.fixable) {
        let applied = store.update(&args.write.options(), |b| {
            let done = validate::repair(b, &index, &base, &archived, now);
            let msg = (!done.is_empty())
                .then(|| format!("chore(tgs): repair the backlog ({} fixes)", done.len()));
            Ok(Change::maybe(done, msg))
        })?;
        fixed = applied.value;
        problems = validate::check(store.read_text()?.as_deref(), &index, &base, &archived, now);
    }
    if ctx.json {
        output::json(&json!({ "ok": problems.is_empty(), "problems": problems, "fixed": fixed }));
    } else {
        // Dirs come from the file: shown inert, as every line tgs prints.
        for f in &fixed {
            anstream::println!("{}", output::shown(&format!("fixed: {f}")));
        }
        for p in &problems {
            anstream::println!("{}", output::shown(&p.to_string()));
        }
        if problems.is_empty() {
            output::note(format!(
                "{} is valid",
                tgs_core::backlog::store::BACKLOG_PATH
            ));
        } else if !args.fix && problems.iter().any(|p| p.fixable) {
            output::note("some of these can be repaired with --fix");
        }
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(code::FAILED)
    })
}
