//! `tgs server backlog next`: the pull model. Claim the next entry and print
//! what an agent should read.

use jiff::SignedDuration;
use serde_json::json;
use tgs_core::backlog::store::Change;

use super::{find_entry, Ctx, WriteArgs};
use crate::error::{CliError, CliResult};
use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Who claims it (default: hostname/user).
    #[arg(long, value_name = "ID")]
    pub claimed_by: Option<String>,
    /// How long the claim holds before others may take it over.
    #[arg(long, value_name = "DURATION", default_value = "6h", value_parser = parse_duration)]
    pub lease: SignedDuration,
    /// Claim this thought rather than the next in line.
    #[arg(long, value_name = "DIR")]
    pub thought: Option<String>,
    #[command(flatten)]
    pub write: WriteArgs,
}

/// Durations such as `90s`, `5m`, `5h30m` or ISO 8601 `PT5H`.
pub fn parse_duration(s: &str) -> Result<SignedDuration, String> {
    let d: SignedDuration = s
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s, 30m or 5h30m"))?;
    if d.is_negative() || d.is_zero() {
        return Err(format!("{s:?} must be positive"));
    }
    Ok(d)
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let repo = ctx.repo()?;
    let topo = ctx.topology(&repo, &args.write, true)?;
    let store = ctx.state(&repo, &topo, &args.write, args.claimed_by.clone())?;
    let claimer = match args.claimed_by {
        Some(id) if id.trim().is_empty() || id.chars().any(char::is_control) => {
            return Err(CliError::usage(
                "--claimed-by must be a non-empty single-line name",
            ))
        }
        Some(id) => id,
        None => tgs_core::clock::default_worker_id(),
    };
    let only = match &args.thought {
        Some(a) => Some(find_entry(&repo, &store.read()?, a)?),
        None => None,
    };
    let now = tgs_core::clock::now();
    let applied = store.update(&args.write.options(), |b| {
        let claim = b.claim(only.as_deref(), &claimer, now, args.lease)?;
        let msg = claim
            .as_ref()
            .map(|c| format!("chore(tgs): claim {} for {claimer}", c.entry.dir));
        Ok(Change::maybe(claim, msg))
    })?;
    let Some(claim) = applied.value else {
        if ctx.json {
            output::json(&serde_json::Value::Null);
        } else {
            output::note(match &only {
                Some(d) => format!("{d} cannot be claimed now"),
                None => "no work: nothing in the backlog can be claimed now".into(),
            });
        }
        return super::ok();
    };
    if let Some(prev) = &claim.reclaimed_from {
        output::warn(format!(
            "took over {} from {prev}, whose lease had expired",
            claim.entry.dir
        ));
    }
    // One listing for the thought, the templates and the repository's
    // context files, on the base branch as this clone last fetched it (no
    // fetch after every claim: racing workers claim in a tight loop).
    let base = topo.known_base(&repo)?;
    let context = match &base.commit {
        Some(rev) => {
            let mut paths = vec![claim.entry.dir.as_str(), tgs_core::thought::TEMPLATES_DIR];
            paths.extend(tgs_core::context::REPO_CONTEXT);
            let entries = repo.ls_tree(rev, &paths)?;
            let (thoughts, _) = tgs_core::thought::index_tree(&entries);
            thoughts
                .iter()
                .find(|t| t.dir == claim.entry.dir)
                .map(|t| tgs_core::context::context_files_in(&entries, t))
        }
        None => None,
    };
    let context = context.unwrap_or_else(|| {
        output::warn(format!("{} is not on {}", claim.entry.dir, base.label));
        Vec::new()
    });
    if ctx.json {
        output::json(&json!({
            "dir": claim.entry.dir,
            "title": claim.entry.title,
            "context_files": context,
        }));
    } else {
        anstream::println!("dir: {}", claim.entry.dir);
        anstream::println!("title: {}", claim.entry.title);
        anstream::println!("context_files:");
        for f in &context {
            anstream::println!("  {f}");
        }
        output::note(format!(
            "claimed {} for {claimer} (attempt {}, lease until {})",
            claim.entry.dir,
            claim.entry.attempts,
            claim
                .entry
                .lease_expires_at
                .map(|t| t.to_string())
                .unwrap_or_default()
        ));
    }
    super::ok()
}
