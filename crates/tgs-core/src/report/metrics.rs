//! Figures from `metrics.csv`: throughput, success rates, durations, cost and
//! retries. [`compute_metrics`] is pure, so its figures are checked exactly.
//!
//! Definitions (all days are UTC, a session belongs to the day it ended):
//! - a session is one row; it succeeded if its outcome is `success`;
//! - throughput is the number of succeeded sessions per day;
//! - a thought's first try is its earliest session in *all* rows (so a
//!   `--since` window does not turn a second attempt into a first one);
//!   first-try success rate = thoughts in the window whose first try
//!   succeeded / thoughts with a session in the window;
//! - retries = sessions in the window that are not their thought's first try;
//! - the median of an even count is the mean of the middle two; p90 is the
//!   nearest-rank value (the smallest duration with >= 90% at or below it).

use std::collections::{BTreeMap, HashMap};

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use jiff::ToSpan;
use serde::Serialize;

use crate::records::MetricsRow;

/// Figures for one UTC day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayFigures {
    pub date: Date,
    pub sessions: usize,
    /// Succeeded sessions: the day's throughput.
    pub completed: usize,
    pub success_rate: Option<f64>,
    pub cost_usd: f64,
    /// Sessions that reported a cost.
    pub sessions_with_cost: usize,
}

/// Figures for one thought (within the window).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThoughtFigures {
    pub thought: String,
    pub sessions: usize,
    pub succeeded: usize,
    pub first_try_success: bool,
    pub retries: usize,
    pub cost_usd: f64,
    /// Sessions that reported a cost.
    pub sessions_with_cost: usize,
    pub duration_s: f64,
}

/// How far a cost figure goes: a sum over the sessions whose agent reported
/// a cost, which may be none of them (then the cost is unknown, not zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostCoverage {
    /// Sessions there were, and none reported a cost.
    Unknown,
    /// `reported` of `sessions` reported a cost.
    Partial { reported: usize, sessions: usize },
    /// Every session reported a cost (or there was none).
    Complete,
}

impl CostCoverage {
    pub fn of(reported: usize, sessions: usize) -> CostCoverage {
        if reported >= sessions {
            CostCoverage::Complete
        } else if reported == 0 {
            CostCoverage::Unknown
        } else {
            CostCoverage::Partial { reported, sessions }
        }
    }

    /// The figure in short: `$1.44`, `$1.44 (5 of 6 sessions)` or `unknown`.
    pub fn label(self, usd: f64) -> String {
        match self {
            CostCoverage::Complete => format!("${usd:.2}"),
            CostCoverage::Partial { reported, sessions } => {
                format!("${usd:.2} ({reported} of {sessions} sessions)")
            }
            CostCoverage::Unknown => "unknown".into(),
        }
    }

    /// What a reader of the figure should know, if anything.
    pub fn note(self) -> Option<String> {
        match self {
            CostCoverage::Complete => None,
            CostCoverage::Partial { reported, sessions } => Some(format!(
                "the total covers the {reported} of {sessions} sessions whose agent reported a cost"
            )),
            CostCoverage::Unknown => Some("no agent reported a cost".into()),
        }
    }

    /// The figure with its note: `$1.44`, `$1.44: the total covers ...`, `unknown: no agent ...`.
    pub fn describe(self, usd: f64) -> String {
        match (self, self.note()) {
            (CostCoverage::Unknown, Some(n)) => format!("unknown: {n}"),
            (_, Some(n)) => format!("${usd:.2}: {n}"),
            (_, None) => format!("${usd:.2}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DurationStats {
    pub median_s: f64,
    pub p90_s: f64,
    pub max_s: f64,
}

/// A bar of the duration histogram: sessions with `min_s <= duration < max_s`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    pub label: &'static str,
    pub min_s: f64,
    pub max_s: Option<f64>,
    pub sessions: usize,
}

/// Everything `tgs server metrics` and the dashboard show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricsSummary {
    pub since: Option<Date>,
    pub sessions: usize,
    pub succeeded: usize,
    pub success_rate: Option<f64>,
    pub thoughts: usize,
    pub first_try_successes: usize,
    pub first_try_success_rate: Option<f64>,
    pub retries: usize,
    /// Sessions per outcome.
    pub outcomes: BTreeMap<String, usize>,
    pub duration: Option<DurationStats>,
    pub duration_buckets: Vec<Bucket>,
    /// The sum of the costs reported: see [`MetricsSummary::cost_coverage`].
    pub cost_usd: f64,
    /// Sessions that reported a cost.
    pub sessions_with_cost: usize,
    /// Every day from the first to the last session in the window, gaps included.
    pub per_day: Vec<DayFigures>,
    /// Sorted by thought directory.
    pub per_thought: Vec<ThoughtFigures>,
    /// The agents' questions to their humans (from the backlog, not the
    /// session rows): see [`question_figures`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub questions: Option<QuestionFigures>,
    /// Sessions whose agent ran in the sandbox, and sessions whose agent
    /// ran without it (rows that do not say are in neither).
    pub contained: usize,
    pub not_contained: usize,
}

/// How the agents' questions went: asked, answered, waiting, and how long
/// people took to answer (seconds, GitHub's or the answering clock's time).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QuestionFigures {
    pub asked: usize,
    pub answered: usize,
    pub waiting: usize,
    /// The median time to an answer, over the answered ones.
    pub median_answer_s: Option<i64>,
    /// How long the oldest waiting question has waited.
    pub longest_waiting_s: Option<i64>,
}

/// The figures of every question the entries of `b` hold, at `now`.
pub fn question_figures(b: &crate::backlog::Backlog, now: jiff::Timestamp) -> QuestionFigures {
    let mut f = QuestionFigures::default();
    let mut waits = Vec::new();
    for e in &b.thoughts {
        for q in &e.questions {
            f.asked += 1;
            match &q.answer {
                Some(a) => {
                    f.answered += 1;
                    waits.push((a.at.as_second() - q.asked_at.as_second()).max(0));
                }
                None if e.status == crate::backlog::Status::NeedsInput => {
                    f.waiting += 1;
                    let w = (now.as_second() - q.asked_at.as_second()).max(0);
                    f.longest_waiting_s = Some(f.longest_waiting_s.map_or(w, |l| l.max(w)));
                }
                None => {}
            }
        }
    }
    waits.sort_unstable();
    f.median_answer_s = waits.get(waits.len().saturating_sub(1) / 2).copied();
    f
}

const BUCKETS: [(&str, f64, Option<f64>); 7] = [
    ("<5m", 0.0, Some(300.0)),
    ("5–15m", 300.0, Some(900.0)),
    ("15–30m", 900.0, Some(1800.0)),
    ("30m–1h", 1800.0, Some(3600.0)),
    ("1–2h", 3600.0, Some(7200.0)),
    ("2–4h", 7200.0, Some(14400.0)),
    ("≥4h", 14400.0, None),
];

impl MetricsSummary {
    pub fn cost_coverage(&self) -> CostCoverage {
        CostCoverage::of(self.sessions_with_cost, self.sessions)
    }
}

impl DayFigures {
    pub fn cost_coverage(&self) -> CostCoverage {
        CostCoverage::of(self.sessions_with_cost, self.sessions)
    }
}

impl ThoughtFigures {
    pub fn cost_coverage(&self) -> CostCoverage {
        CostCoverage::of(self.sessions_with_cost, self.sessions)
    }
}

/// The longest run of days `per_day` fills in.
const MAX_FILLED_DAYS: i32 = 1000;

/// Round to `dp` decimals, so sums of costs print as people expect.
fn round(x: f64, dp: i32) -> f64 {
    let f = 10f64.powi(dp);
    (x * f).round() / f
}

fn rate(n: usize, d: usize) -> Option<f64> {
    (d > 0).then(|| round(n as f64 / d as f64, 4))
}

fn day_of(row: &MetricsRow) -> Date {
    row.ended.to_zoned(TimeZone::UTC).date()
}

fn succeeded(row: &MetricsRow) -> bool {
    row.outcome == "success"
}

/// Median (mean of the middle two for an even count) of sorted values.
fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// Nearest-rank percentile of sorted values (`p` in 0..=100).
fn percentile(sorted: &[f64], p: usize) -> f64 {
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// Compute the figures over the sessions that ended on or after `since`.
pub fn compute_metrics(rows: &[MetricsRow], since: Option<Date>) -> MetricsSummary {
    let mut acc = MetricsAcc::new(since);
    for r in rows {
        acc.push(r);
    }
    acc.summary()
}

/// A thought's first try so far: the least (started, attempt), ties going
/// to the row that comes first in the history (`order`).
#[derive(Debug, Clone, Copy)]
struct FirstTry {
    key: (Timestamp, u32, u64),
    success: bool,
    in_window: bool,
}

/// One day's (sessions, succeeded, cost, sessions with a cost).
type DayAcc = (usize, usize, f64, usize);

/// The figures of [`compute_metrics`], taken in one row at a time, so a
/// view streams the history through it and keeps only these aggregates:
/// per day, per thought, and one duration (8 bytes) per session in the window.
#[derive(Debug, Clone, Default)]
pub struct MetricsAcc {
    since: Option<Date>,
    /// Every thought seen, in the window or not (first tries are over all rows).
    first: HashMap<String, FirstTry>,
    /// The thoughts with a session in the window; `retries` and
    /// `first_try_success` are filled in by [`MetricsAcc::summary`].
    by_thought: BTreeMap<String, ThoughtFigures>,
    outcomes: BTreeMap<String, usize>,
    by_day: BTreeMap<Date, DayAcc>,
    durations: Vec<f64>,
    buckets: [usize; BUCKETS.len()],
    cost: f64,
    with_cost: usize,
    ok: usize,
    contained: usize,
    not_contained: usize,
    next_order: u64,
}

impl MetricsAcc {
    /// Figures over the sessions that ended on or after `since` (UTC day).
    pub fn new(since: Option<Date>) -> MetricsAcc {
        MetricsAcc {
            since,
            ..MetricsAcc::default()
        }
    }

    /// Take in the next row of the history, in file order.
    pub fn push(&mut self, r: &MetricsRow) {
        let order = self.next_order;
        self.push_at(r, order);
    }

    /// Take in a row whose place in the whole history is `order` (rows read
    /// out of order, e.g. earlier months after the window, keep their place).
    pub fn push_at(&mut self, r: &MetricsRow, order: u64) {
        self.next_order = self.next_order.max(order + 1);
        let in_window = self.since.is_none_or(|d| day_of(r) >= d);
        let key = (r.started, r.attempt, order);
        let first = FirstTry {
            key,
            success: succeeded(r),
            in_window,
        };
        match self.first.get_mut(r.thought.as_str()) {
            Some(f) if key < f.key => *f = first,
            Some(_) => {}
            None => {
                self.first.insert(r.thought.clone(), first);
            }
        }
        if in_window {
            self.add_to_window(r);
        }
    }

    /// Whether rows of `thought` from before the window still matter: only
    /// for the first try of a thought with a session in the window.
    pub fn wants_earlier(&self, thought: &str) -> bool {
        self.by_thought.contains_key(thought)
    }

    fn add_to_window(&mut self, r: &MetricsRow) {
        let success = succeeded(r);
        let c = r.cost_usd.unwrap_or(0.0);
        let has_cost = usize::from(r.cost_usd.is_some());
        self.ok += usize::from(success);
        self.cost += c;
        self.with_cost += has_cost;
        match r.sandbox.as_deref() {
            Some("bubblewrap") => self.contained += 1,
            Some("off") => self.not_contained += 1,
            _ => {}
        }
        *self.outcomes.entry(r.outcome.clone()).or_insert(0) += 1;
        let d = self.by_day.entry(day_of(r)).or_insert((0, 0, 0.0, 0));
        d.0 += 1;
        d.1 += usize::from(success);
        d.2 += c;
        d.3 += has_cost;
        self.durations.push(r.duration_s);
        if let Some(i) = BUCKETS.iter().rposition(|b| r.duration_s >= b.1) {
            self.buckets[i] += 1;
        }
        if !self.by_thought.contains_key(r.thought.as_str()) {
            self.by_thought
                .insert(r.thought.clone(), ThoughtFigures::empty(&r.thought));
        }
        let t = self
            .by_thought
            .get_mut(r.thought.as_str())
            .expect("inserted");
        t.sessions += 1;
        t.succeeded += usize::from(success);
        t.cost_usd += c;
        t.sessions_with_cost += has_cost;
        t.duration_s += r.duration_s;
    }

    /// The figures of the rows taken in so far.
    pub fn summary(&self) -> MetricsSummary {
        let sessions = self.durations.len();
        let per_thought: Vec<ThoughtFigures> = self
            .by_thought
            .values()
            .map(|t| {
                let first = self.first[t.thought.as_str()];
                ThoughtFigures {
                    first_try_success: first.success,
                    retries: t.sessions - usize::from(first.in_window),
                    cost_usd: round(t.cost_usd, 4),
                    duration_s: round(t.duration_s, 1),
                    ..t.clone()
                }
            })
            .collect();
        let thoughts = per_thought.len();
        let first_ok = per_thought.iter().filter(|t| t.first_try_success).count();
        MetricsSummary {
            since: self.since,
            sessions,
            succeeded: self.ok,
            success_rate: rate(self.ok, sessions),
            thoughts,
            first_try_successes: first_ok,
            first_try_success_rate: rate(first_ok, thoughts),
            retries: per_thought.iter().map(|t| t.retries).sum(),
            outcomes: self.outcomes.clone(),
            duration: duration_stats(&self.durations),
            duration_buckets: self.buckets(),
            cost_usd: round(self.cost, 4),
            sessions_with_cost: self.with_cost,
            per_day: per_day(&self.by_day),
            per_thought,
            questions: None,
            contained: self.contained,
            not_contained: self.not_contained,
        }
    }

    fn buckets(&self) -> Vec<Bucket> {
        BUCKETS
            .iter()
            .zip(self.buckets)
            .map(|(&(label, min_s, max_s), sessions)| Bucket {
                label,
                min_s,
                max_s,
                sessions,
            })
            .collect()
    }
}

impl ThoughtFigures {
    fn empty(thought: &str) -> ThoughtFigures {
        ThoughtFigures {
            thought: thought.to_owned(),
            sessions: 0,
            succeeded: 0,
            first_try_success: false,
            retries: 0,
            cost_usd: 0.0,
            sessions_with_cost: 0,
            duration_s: 0.0,
        }
    }
}

fn duration_stats(durations: &[f64]) -> Option<DurationStats> {
    let mut sorted = durations.to_vec();
    sorted.sort_by(f64::total_cmp);
    (!sorted.is_empty()).then(|| DurationStats {
        median_s: round(median(&sorted), 1),
        p90_s: round(percentile(&sorted, 90), 1),
        max_s: round(*sorted.last().expect("not empty"), 1),
    })
}

/// Every day from the first to the last, so charts show idle days; only the
/// days with sessions when a stray date (a row from year 1) would make that
/// thousands of empty rows.
fn per_day(by_day: &BTreeMap<Date, DayAcc>) -> Vec<DayFigures> {
    let days: Vec<Date> = match (by_day.keys().next(), by_day.keys().next_back()) {
        (Some(&start), Some(&end))
            if start
                .until(end)
                .is_ok_and(|s| s.get_days() <= MAX_FILLED_DAYS) =>
        {
            start.series(1.day()).take_while(|d| *d <= end).collect()
        }
        _ => by_day.keys().copied().collect(),
    };
    days.into_iter()
        .map(|date| {
            let (sessions, completed, c, with_cost) =
                by_day.get(&date).copied().unwrap_or((0, 0, 0.0, 0));
            DayFigures {
                date,
                sessions,
                completed,
                success_rate: rate(completed, sessions),
                cost_usd: round(c, 4),
                sessions_with_cost: with_cost,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{parse_metrics, METRICS_HEADER};

    /// Three thoughts: A fails then succeeds, B succeeds at once, C times
    /// out, crashes, then succeeds. 2026-01-10 has no session.
    fn csv() -> String {
        let rows = [
            "tgs/thoughts/aaaaaaa-a,w1,claude-code,2026-01-09T10:00:00Z,2026-01-09T10:10:00Z,600.0,failed,1,1,5,0.2500,100,10,",
            "tgs/thoughts/aaaaaaa-a,w1,claude-code,2026-01-11T09:00:00Z,2026-01-11T09:20:00Z,1200.0,success,2,0,9,0.5000,100,10,https://github.com/o/r/pull/1",
            "tgs/thoughts/bbbbbbb-b,w2,claude-code,2026-01-11T11:00:00Z,2026-01-11T11:05:00Z,300.0,success,1,0,3,0.1250,100,10,https://github.com/o/r/pull/2",
            "tgs/thoughts/ccccccc-c,w2,claude-code,2026-01-12T08:00:00Z,2026-01-12T09:00:00Z,3600.0,timeout,1,,,,,,",
            "tgs/thoughts/ccccccc-c,w1,claude-code,2026-01-13T08:00:00Z,2026-01-13T08:01:00Z,60.0,crashed,2,137,1,0.0625,5,1,",
            "tgs/thoughts/ccccccc-c,w1,claude-code,2026-01-13T09:00:00Z,2026-01-13T09:30:00Z,1800.0,success,3,0,20,1.0000,900,90,https://github.com/o/r/pull/3",
        ];
        format!("{METRICS_HEADER}\n{}\n", rows.join("\n"))
    }

    fn date(s: &str) -> Date {
        s.parse().unwrap()
    }

    #[test]
    fn figures_over_all_sessions() {
        let (rows, bad) = parse_metrics(&csv());
        assert_eq!((rows.len(), bad), (6, 0));
        let m = compute_metrics(&rows, None);
        assert_eq!((m.sessions, m.succeeded, m.success_rate), (6, 3, Some(0.5)));
        assert_eq!(m.thoughts, 3);
        assert_eq!(
            (m.first_try_successes, m.first_try_success_rate),
            (1, Some(0.3333))
        );
        assert_eq!(m.retries, 3);
        assert_eq!(
            m.duration,
            Some(DurationStats {
                median_s: 900.0,
                p90_s: 3600.0,
                max_s: 3600.0
            })
        );
        assert_eq!((m.cost_usd, m.sessions_with_cost), (1.9375, 5));
        assert_eq!(m.outcomes["success"], 3);
        assert_eq!(m.outcomes["timeout"], 1);
        let days: Vec<_> = m
            .per_day
            .iter()
            .map(|d| (d.date.to_string(), d.sessions, d.completed, d.cost_usd))
            .collect();
        assert_eq!(
            days,
            [
                ("2026-01-09".into(), 1, 0, 0.25),
                ("2026-01-10".into(), 0, 0, 0.0),
                ("2026-01-11".into(), 2, 2, 0.625),
                ("2026-01-12".into(), 1, 0, 0.0),
                ("2026-01-13".into(), 2, 1, 1.0625),
            ]
        );
        assert_eq!(m.per_day[1].success_rate, None);
        assert_eq!(m.per_day[4].success_rate, Some(0.5));
        let per: Vec<_> = m
            .per_thought
            .iter()
            .map(|t| {
                (
                    t.thought.as_str(),
                    t.sessions,
                    t.first_try_success,
                    t.retries,
                    t.cost_usd,
                )
            })
            .collect();
        assert_eq!(
            per,
            [
                ("tgs/thoughts/aaaaaaa-a", 2, false, 1, 0.75),
                ("tgs/thoughts/bbbbbbb-b", 1, true, 0, 0.125),
                ("tgs/thoughts/ccccccc-c", 3, false, 2, 1.0625),
            ]
        );
        let buckets: Vec<_> = m.duration_buckets.iter().map(|b| b.sessions).collect();
        assert_eq!(buckets, [1, 2, 1, 1, 1, 0, 0]);
    }

    #[test]
    fn since_keeps_first_tries_from_before_the_window() {
        let (rows, _) = parse_metrics(&csv());
        let m = compute_metrics(&rows, Some(date("2026-01-11")));
        assert_eq!((m.sessions, m.succeeded, m.success_rate), (5, 3, Some(0.6)));
        // A's first try (before the window) failed: its success on the 11th is a retry.
        assert_eq!((m.thoughts, m.first_try_successes, m.retries), (3, 1, 3));
        assert_eq!(m.per_day.first().map(|d| d.date), Some(date("2026-01-11")));
        assert_eq!(m.cost_usd, 1.6875);
        assert_eq!(
            m.duration.as_ref().map(|d| (d.median_s, d.p90_s)),
            Some((1200.0, 3600.0))
        );
    }

    #[test]
    fn rows_read_out_of_order_keep_their_place() {
        // The window first, then the rows before it (as `--since` reads
        // them), gives the figures of reading them all in order.
        let (rows, _) = parse_metrics(&csv());
        let since = Some(date("2026-01-11"));
        let mut acc = MetricsAcc::new(since);
        for (i, r) in rows.iter().enumerate().skip(1) {
            acc.push_at(r, i as u64);
        }
        assert!(acc.wants_earlier("tgs/thoughts/aaaaaaa-a"));
        assert!(!acc.wants_earlier("tgs/thoughts/zzzzzzz-z"));
        acc.push_at(&rows[0], 0);
        assert_eq!(acc.summary(), compute_metrics(&rows, since));
        // A tie on (start, attempt) goes to the row that comes first.
        let mut twice = rows[1].clone();
        twice.outcome = "failed".into();
        let mut acc = MetricsAcc::new(None);
        acc.push_at(&twice, 9);
        acc.push_at(&rows[1], 1);
        assert!(acc.summary().per_thought[0].first_try_success);
    }

    #[test]
    fn cost_is_unknown_when_no_session_reported_one() {
        let (rows, _) = parse_metrics(&csv());
        let m = compute_metrics(&rows, None);
        // C's timeout reported no cost: the total covers 5 of 6 sessions.
        assert_eq!(
            m.cost_coverage(),
            CostCoverage::Partial {
                reported: 5,
                sessions: 6
            }
        );
        assert_eq!(
            m.cost_coverage().label(m.cost_usd),
            "$1.94 (5 of 6 sessions)"
        );
        assert_eq!(
            m.cost_coverage().describe(m.cost_usd),
            "$1.94: the total covers the 5 of 6 sessions whose agent reported a cost"
        );
        // The 12th had only that session: its cost is unknown, not $0.00.
        assert_eq!(m.per_day[3].cost_coverage(), CostCoverage::Unknown);
        assert_eq!(m.per_day[3].cost_coverage().label(0.0), "unknown");
        // A day without sessions cost nothing.
        assert_eq!(m.per_day[1].cost_coverage(), CostCoverage::Complete);
        assert_eq!(m.per_thought[0].cost_coverage().label(0.75), "$0.75");
        let none: Vec<_> = rows
            .into_iter()
            .map(|mut r| {
                r.cost_usd = None;
                r
            })
            .collect();
        let m = compute_metrics(&none, None);
        assert_eq!(
            (m.cost_usd, m.cost_coverage()),
            (0.0, CostCoverage::Unknown)
        );
        assert_eq!(
            m.cost_coverage().describe(m.cost_usd),
            "unknown: no agent reported a cost"
        );
    }

    #[test]
    fn no_sessions() {
        let m = compute_metrics(&[], None);
        assert_eq!(
            (m.sessions, m.success_rate, m.first_try_success_rate),
            (0, None, None)
        );
        assert!(m.duration.is_none() && m.per_day.is_empty() && m.per_thought.is_empty());
        let later = compute_metrics(&parse_metrics(&csv()).0, Some(date("2027-01-01")));
        assert_eq!(later.sessions, 0);
    }

    #[test]
    fn a_stray_date_does_not_fill_centuries() {
        let (mut rows, _) = parse_metrics(&csv());
        rows[0].ended = "0001-01-01T00:00:00Z".parse().unwrap();
        let m = compute_metrics(&rows, None);
        assert_eq!(m.per_day.len(), 4);
        assert_eq!(m.per_day[0].date, date("0001-01-01"));
    }

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!((median(&v), percentile(&v, 90)), (5.5, 9.0));
        assert_eq!((median(&[7.0]), percentile(&[7.0], 90)), (7.0, 7.0));
        let v: Vec<f64> = (1..=11).map(f64::from).collect();
        assert_eq!((median(&v), percentile(&v, 90)), (6.0, 10.0));
    }
}
