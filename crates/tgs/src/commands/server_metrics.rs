//! `tgs server metrics`: throughput, success rates, durations, cost and
//! retries from the metrics files of the history (definitions in
//! `tgs_core::report::metrics`; with `--since`, see `tgs_core::report::read_metrics`).

use jiff::civil::Date;
use tgs_core::report::{human_duration, read_metrics};

use super::Ctx;
use crate::error::CliResult;
use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only sessions that ended on or after this UTC day (YYYY-MM-DD).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub since: Option<Date>,
}

fn parse_date(s: &str) -> Result<Date, String> {
    s.parse::<Date>()
        .map_err(|_| format!("{s:?} is not a date of the form YYYY-MM-DD"))
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let repo = ctx.repo()?;
    let reader = ctx.reader(&repo)?;
    let (mut m, skipped) = read_metrics(&reader, args.since)?;
    // Questions are read from the backlog (live and archived), not the rows.
    let backlog = reader.read_all()?;
    let q = tgs_core::report::metrics::question_figures(&backlog, tgs_core::clock::now());
    m.questions = (q.asked > 0).then_some(q);
    if skipped > 0 {
        output::warn(format!(
            "skipped {skipped} unreadable line(s) of the server records"
        ));
    }
    if ctx.json {
        output::json(&m);
        return super::ok();
    }
    if m.sessions == 0 {
        output::note(match args.since {
            Some(d) => format!("no session ended on or after {d}"),
            None => "no session recorded yet (tgs/server/metrics.csv)".into(),
        });
        return super::ok();
    }
    let pct = |r: Option<f64>| r.map(|r| format!("{:.1}%", r * 100.0)).unwrap_or_default();
    let secs = |s: f64| human_duration(s.round() as i64);
    let mut lines = vec![
        (
            "sessions",
            format!(
                "{} ({} succeeded, {})",
                m.sessions,
                m.succeeded,
                pct(m.success_rate)
            ),
        ),
        (
            "first try",
            format!(
                "{} of {} thoughts succeeded at once ({})",
                m.first_try_successes,
                m.thoughts,
                pct(m.first_try_success_rate)
            ),
        ),
        ("retries", m.retries.to_string()),
    ];
    if let Some(d) = &m.duration {
        lines.push((
            "duration",
            format!(
                "median {}, p90 {}, max {}",
                secs(d.median_s),
                secs(d.p90_s),
                secs(d.max_s)
            ),
        ));
    }
    lines.push(("cost", m.cost_coverage().describe(m.cost_usd)));
    let outcomes: Vec<String> = m.outcomes.iter().map(|(k, v)| format!("{k} {v}")).collect();
    lines.push(("outcomes", outcomes.join(", ")));
    if let Some(q) = &m.questions {
        let mut text = format!(
            "{} asked, {} answered, {} waiting",
            q.asked, q.answered, q.waiting
        );
        if let Some(s) = q.median_answer_s {
            text.push_str(&format!("; median answer after {}", human_duration(s)));
        }
        if let Some(s) = q.longest_waiting_s {
            text.push_str(&format!("; the oldest has waited {}", human_duration(s)));
        }
        lines.push(("questions", text));
    }
    for (k, v) in &lines {
        anstream::println!("{k:<10}  {v}");
    }

    anstream::println!();
    let days: Vec<Vec<String>> = m
        .per_day
        .iter()
        .map(|d| {
            vec![
                d.date.to_string(),
                d.completed.to_string(),
                d.sessions.to_string(),
                pct(d.success_rate),
                d.cost_coverage().label(d.cost_usd),
            ]
        })
        .collect();
    output::table(
        &["DAY (UTC)", "COMPLETED", "SESSIONS", "SUCCESS", "COST"],
        &days,
    );

    anstream::println!();
    let thoughts: Vec<Vec<String>> = m
        .per_thought
        .iter()
        .map(|t| {
            vec![
                t.thought.clone(),
                t.sessions.to_string(),
                t.succeeded.to_string(),
                if t.first_try_success { "yes" } else { "no" }.into(),
                t.retries.to_string(),
                secs(t.duration_s),
                t.cost_coverage().label(t.cost_usd),
            ]
        })
        .collect();
    output::table(
        &[
            "THOUGHT",
            "SESSIONS",
            "SUCCEEDED",
            "FIRST TRY",
            "RETRIES",
            "TIME",
            "COST",
        ],
        &thoughts,
    );
    super::ok()
}
