//! `tgs server status`: what the server is doing now: counts per status,
//! running sessions, what runs next, and what needs a human.

use tgs_core::backlog::Status;
use tgs_core::report::{human_duration, StatusBuilder};

use super::Ctx;
use crate::error::CliResult;
use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {}

/// Whether this machine's sessions run contained, in a few words:
/// `contained (bubblewrap)`, `not contained (server.sandbox.mode: off)`,
/// or why the sandbox cannot be made here.
fn containment(ctx: &Ctx, repo: &tgs_core::repo::Repo) -> String {
    // As `server run` decides: the configuration committed on the base.
    let settings = ctx
        .quiet_topology(repo, &super::WriteArgs::default(), false)
        .and_then(|topo| ctx.server_settings(repo, &topo))
        .or_else(|_| ctx.settings(repo));
    match settings {
        Ok(s) if !s.sandbox.on => format!("not contained ({})", super::sandbox_switch()),
        Ok(_) => match tgs_core::sandbox::probe() {
            Ok(_) => "contained (bubblewrap)".into(),
            Err(u) => format!("none start: no sandbox here ({}; {})", u.why, u.hint),
        },
        Err(e) => format!("unknown ({})", e.message),
    }
}

pub fn run(ctx: &Ctx, _args: Args) -> CliResult {
    let repo = ctx.repo()?;
    let state = ctx.reader(&repo)?;
    let live = state.read()?;
    // The archive is streamed: only its counts and what needs a human stay.
    let mut status = StatusBuilder::new(&live, tgs_core::clock::now());
    state.each_archived(&mut |e| status.archived(e))?;
    let report = status.finish();
    let contained = containment(ctx, &repo);
    if ctx.json {
        let mut v = serde_json::to_value(&report).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "sandbox".into(),
                serde_json::Value::String(contained.clone()),
            );
        }
        output::json(&v);
        return super::ok();
    }
    let c = &report.counts;
    let mut out = String::new();
    out.push_str(&format!(
        "backlog: {} thought(s): {}\n",
        c.total,
        Status::ALL
            .iter()
            // A hand-over pending or a question waiting is rare: named only when there is one.
            .filter(|s| {
                !matches!(**s, Status::HandoverPending | Status::NeedsInput) || c.get(**s) > 0
            })
            .map(|s| format!("{} {}", c.get(*s), s.as_str().replace('_', " ")))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    out.push_str(&format!("agents: {contained}\n"));
    anstream::print!("{out}");

    heading("running", report.running.len());
    if !report.running.is_empty() {
        let rows: Vec<Vec<String>> = report
            .running
            .iter()
            .map(|r| {
                vec![
                    r.dir.clone(),
                    r.worker.clone().unwrap_or_default(),
                    r.attempt.to_string(),
                    r.elapsed_s.map(human_duration).unwrap_or_default(),
                    r.lease_left_s.map(human_duration).unwrap_or_default(),
                ]
            })
            .collect();
        output::table(
            &["THOUGHT", "WORKER", "ATTEMPT", "ELAPSED", "LEASE LEFT"],
            &rows,
        );
    }

    heading("next", report.next.len());
    for (i, n) in report.next.iter().enumerate() {
        let reclaim = if n.reclaim {
            ", lease expired: reclaim"
        } else {
            ""
        };
        anstream::println!(
            "  {}. {}  {} (priority {}{reclaim})",
            i + 1,
            n.dir,
            output::clip(&n.title, 50),
            n.priority
        );
    }
    if !report.waiting.is_empty() {
        heading("waiting", report.waiting.len());
        for w in &report.waiting {
            let mut why = Vec::new();
            if let Some(t) = w.not_before {
                why.push(format!("retry after {t}"));
            }
            if !w.blocked_by.is_empty() {
                why.push(format!("waits for {}", w.blocked_by.join(", ")));
            }
            anstream::println!("  {}  ({})", w.dir, why.join("; "));
        }
    }

    heading("needs a human", report.needs_human.len());
    for a in &report.needs_human {
        let detail = a
            .detail
            .as_deref()
            .and_then(|d| d.lines().find(|l| !l.trim().is_empty()))
            // `failed: failed: the agent ...` says the same word twice.
            .map(|d| {
                d.strip_prefix(&format!("{}: ", a.reason.as_str()))
                    .unwrap_or(d)
            })
            .map(|d| format!(": {}", output::clip(d, 100)))
            .unwrap_or_default();
        let pr = a
            .pr_url
            .as_deref()
            .map(|u| format!(" ({u})"))
            .unwrap_or_default();
        anstream::println!("  {}  {}{detail}{pr}", a.dir, a.reason.as_str());
    }
    if !report.questions.is_empty() {
        heading("questions waiting for an answer", report.questions.len());
        for q in &report.questions {
            let at = q
                .posted
                .as_deref()
                .map(|u| format!(" ({u})"))
                .unwrap_or_default();
            let line = format!(
                "  {}  asked {} ago: {}{at}",
                q.dir,
                human_duration(q.waited_s),
                output::clip(&q.question, 90)
            );
            anstream::println!("{}", output::shown(&line));
        }
        anstream::println!(
            "  answer with a `/tgs answer ...` comment there, or `tgs server backlog answer DIR --text ...`"
        );
    }
    if !report.revisions.is_empty() {
        heading("review loop", report.revisions.len());
        for r in &report.revisions {
            let pr = r
                .pr_url
                .as_deref()
                .map(|u| format!(" ({u})"))
                .unwrap_or_default();
            anstream::println!("  {}  {}{pr}", r.dir, output::clip(&r.summary, 100));
            for (what, url) in &r.answers {
                // An event GitHub gave no link for is named without one.
                anstream::println!("    {}", tgs_core::review::labelled(what, url));
            }
        }
    }
    if !report.wip.is_empty() {
        heading("work in progress", report.wip.len());
        for w in &report.wip {
            anstream::println!("  {}  {}", w.dir, output::clip(&w.describe(), 100));
        }
    }
    if !report.paused.is_empty() {
        heading("paused agents", report.paused.len());
        for p in &report.paused {
            let until = p
                .until
                .map(|t| format!("until {t}"))
                .unwrap_or_else(|| format!("until `tgs server resume {}`", p.agent));
            anstream::println!("  {}  {}: {}  {until}", p.agent, p.kind, p.reason);
        }
    }
    super::ok()
}

fn heading(what: &str, n: usize) {
    let bold = anstyle::Style::new().bold();
    anstream::println!("\n{bold}{what} ({n}){bold:#}");
}
