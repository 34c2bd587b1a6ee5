//! `tgs server backlog list`: entries in claim order.

use tgs_core::backlog::{Entry, Status};

use super::Ctx;
use crate::error::{CliError, CliResult};
use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only entries with this status (queued, in_progress, handover_pending,
    /// completed, failed, needs_input).
    #[arg(long, value_name = "S")]
    pub status: Option<String>,
}

/// The status `s` names (`None`: every status); an unknown one is a
/// usage error naming them all.
pub fn parse_status(s: Option<&str>) -> CliResult<Option<Status>> {
    s.map(|s| {
        Status::parse(s).ok_or_else(|| {
            CliError::usage(format!("unknown status {s:?}")).hint(format!(
                "use one of {}",
                Status::ALL.map(Status::as_str).join(", ")
            ))
        })
    })
    .transpose()
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let status = parse_status(args.status.as_deref())?;
    let repo = ctx.repo()?;
    let backlog = ctx.reader(&repo)?.read_all()?;
    let now = tgs_core::clock::now();
    let entries: Vec<&Entry> = backlog
        .claim_order()
        .into_iter()
        .filter(|e| status.is_none_or(|s| e.status == s))
        .collect();
    if ctx.json {
        output::json(&entries);
        return super::ok();
    }
    if entries.is_empty() {
        output::note(match (status, backlog.thoughts.len()) {
            (_, 0) => "the backlog is empty".to_owned(),
            (Some(s), n) => format!("no entry is {s} ({n} in the backlog)"),
            (None, _) => "the backlog is empty".to_owned(),
        });
        return super::ok();
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.dir.clone(),
                output::clip(&e.title, 40),
                e.status.to_string(),
                e.priority.to_string(),
                e.attempts.to_string(),
                e.added_at
                    .map(|t| t.strftime("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_default(),
                // Who holds it now: a requeued or finished entry keeps its
                // last claimer in the file, but nobody holds it.
                if e.status == Status::InProgress {
                    e.claimed_by.clone().unwrap_or_default()
                } else {
                    String::new()
                },
                match (&e.pr_url, &e.pr_state) {
                    (Some(u), Some(s)) => format!("{u} ({s})"),
                    (Some(u), None) => u.clone(),
                    _ => String::new(),
                },
                waits(&backlog, e, now),
                tgs_core::review::summary(e)
                    .map(|s| output::clip(&s, 60))
                    .unwrap_or_default(),
            ]
        })
        .collect();
    output::table(
        &[
            "DIR",
            "TITLE",
            "STATUS",
            "PRIORITY",
            "ATTEMPTS",
            "ADDED",
            "CLAIMED BY",
            "PR",
            "WAITS FOR",
            "REVIEW",
        ],
        &rows,
    );
    super::ok()
}

/// Why a queued entry cannot be claimed yet: its dependencies, its retry delay.
fn waits(b: &tgs_core::backlog::Backlog, e: &Entry, now: jiff::Timestamp) -> String {
    if e.status != Status::Queued {
        return String::new();
    }
    let deps = b.waits_for(e);
    if !deps.is_empty() {
        return deps.join(", ");
    }
    match e.not_before.filter(|t| *t > now) {
        Some(t) => format!("retry delay until {}", t.strftime("%Y-%m-%d %H:%M:%S")),
        None => String::new(),
    }
}
