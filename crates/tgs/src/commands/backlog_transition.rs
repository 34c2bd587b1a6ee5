//! `tgs server backlog complete|fail|retry`: move a claimed or failed entry on.

use tgs_core::backlog::store::Change;
use tgs_core::backlog::Backlog;

use super::{find_entry, Ctx, WriteArgs};
use crate::error::{CliError, CliResult};
use crate::output;

#[derive(Debug, clap::Args)]
pub struct CompleteArgs {
    /// The thought directory.
    #[arg(value_name = "DIR")]
    pub dir: String,
    /// The pull request that carries the work.
    #[arg(long, value_name = "URL")]
    pub pr_url: Option<String>,
    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Debug, clap::Args)]
pub struct FailArgs {
    /// The thought directory.
    #[arg(value_name = "DIR")]
    pub dir: String,
    /// Why it failed (recorded as last_error).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Debug, clap::Args)]
pub struct RetryArgs {
    /// The thought directory.
    #[arg(value_name = "DIR")]
    pub dir: String,
    /// Drop the work in progress an earlier attempt kept: the next attempt
    /// starts from the base instead of going on from it.
    #[arg(long)]
    pub fresh: bool,
    #[command(flatten)]
    pub write: WriteArgs,
}

fn transition(
    ctx: &Ctx,
    arg: &str,
    write: &WriteArgs,
    verb: &str,
    mut f: impl FnMut(&mut Backlog, &str) -> tgs_core::Result<()>,
) -> CliResult {
    let repo = ctx.repo()?;
    let store = ctx.target(&repo, write)?;
    let live = store.read()?;
    if super::lookup_entry(&repo, &live, arg)?.is_none() {
        // A finished entry is archived: say so, not "not in the backlog".
        let all = store.read_all()?;
        if let Some(dir) = super::lookup_entry(&repo, &all, arg)? {
            let status = all
                .get(&dir)
                .map(|e| e.status.as_str())
                .unwrap_or("finished");
            return Err(CliError::usage(format!(
                "{dir} is {status} and archived: `{verb}` applies to the entries still in the backlog"
            ))
            .hint(format!("`tgs server backlog show {dir}` shows how it ended")));
        }
    }
    let dir = find_entry(&repo, &live, arg)?;
    let applied = store.update(&write.options(), |b| {
        f(b, &dir)?;
        let entry = b.get(&dir).cloned();
        Ok(Change::with(entry, format!("chore(tgs): {verb} {dir}")))
    })?;
    if let Some(e) = applied.value {
        output::note(format!("{dir} is now {}", e.status));
        if ctx.json {
            output::json(&e);
        }
    }
    super::ok()
}

pub fn complete(ctx: &Ctx, a: CompleteArgs) -> CliResult {
    if let Some(url) = &a.pr_url {
        let ok = (url.starts_with("https://") || url.starts_with("http://"))
            && !url.chars().any(|c| c.is_whitespace() || c.is_control());
        if !ok {
            return Err(CliError::usage(format!(
                "--pr-url {url:?} is not an http(s) URL"
            )));
        }
    }
    let now = tgs_core::clock::now();
    transition(ctx, &a.dir, &a.write, "complete", |b, d| {
        b.complete(d, a.pr_url.as_deref(), now)
    })
}

pub fn fail(ctx: &Ctx, a: FailArgs) -> CliResult {
    let reason = a.reason.as_deref().map(|r| {
        let clean: String = r
            .chars()
            .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
            .collect();
        output::clip(clean.trim(), 2000)
    });
    transition(ctx, &a.dir, &a.write, "fail", |b, d| {
        b.fail(d, reason.as_deref())
    })
}

pub fn retry(ctx: &Ctx, a: RetryArgs) -> CliResult {
    let verb = if a.fresh { "retry (fresh)" } else { "retry" };
    let kept = if a.fresh { kept_wip(ctx, &a)? } else { None };
    transition(ctx, &a.dir, &a.write, verb, |b, d| b.retry_with(d, a.fresh))?;
    if let Some((dir, attempt)) = kept {
        // The entry no longer names it: its ref goes too, here and on the
        // remote (best effort: the next kept work replaces it anyway).
        let repo = ctx.repo()?;
        let topo = ctx.quiet_topology(&repo, &a.write, false)?;
        let remote = topo
            .remote()
            .filter(|_| !a.write.no_push)
            .map(|r| r.name.clone());
        if let Some(name) = dir
            .rsplit('/')
            .next()
            .and_then(tgs_core::thought::ThoughtName::parse)
        {
            tgs_core::runner::wip::delete(&repo, remote.as_deref(), &name);
        }
        output::note(format!(
            "dropped the work in progress attempt {attempt} kept: the next attempt starts from the base"
        ));
    }
    super::ok()
}

/// The entry `a.dir` names and the attempt of the work in progress it
/// keeps, if it keeps one.
fn kept_wip(ctx: &Ctx, a: &RetryArgs) -> CliResult<Option<(String, u32)>> {
    let repo = ctx.repo()?;
    let store = ctx.target(&repo, &a.write)?;
    let live = store.read()?;
    let Some(dir) = super::lookup_entry(&repo, &live, &a.dir)? else {
        return Ok(None);
    };
    Ok(live
        .get(&dir)
        .and_then(|e| e.wip.as_ref())
        .map(|w| (dir.clone(), w.attempt)))
}
