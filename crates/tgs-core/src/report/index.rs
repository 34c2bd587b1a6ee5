//! The index the dashboard's thought pages are built from, made in one pass
//! over the history: per thought, its sessions and its latest audit records
//! (at most [`PAGE_ROWS`] of each, the rest counted), in compact form with
//! the names that repeat (workers, agents, actions, statuses) stored once,
//! and the metrics aggregates. So the dashboard's memory grows with what its
//! pages show, not with the length of the audit log, and a page is built
//! without looking at any other thought's records.

use std::collections::HashMap;

use jiff::Timestamp;

use super::metrics::{MetricsAcc, MetricsSummary};
use super::{parsed, Parsed, Records};
use crate::backlog::store::Record;
use crate::history::HistoryLine;
use crate::records::{parse_audit_ref, AuditRecord, AuditRef, MetricsRow};

/// A fast hash for the maps every line of the history goes through (their
/// keys are the state's own names, so a keyed hash buys nothing here).
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// How many sessions and how many audit records a thought page shows at
/// most: the latest ones (the page says how many there are in all).
pub const PAGE_ROWS: usize = 200;

/// Names that repeat across the history, stored once and referred to by number.
#[derive(Debug, Clone, Default)]
struct Names {
    ids: Map<Box<str>, u32>,
    names: Vec<Box<str>>,
}

impl Names {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(id) = self.ids.get(s) {
            return *id;
        }
        let id = u32::try_from(self.names.len()).expect("fewer than 4 billion names");
        self.names.push(s.into());
        self.ids.insert(s.into(), id);
        id
    }

    fn get(&self, id: u32) -> &str {
        &self.names[id as usize]
    }
}

/// One audit record as a thought page shows it (names by number).
#[derive(Debug, Clone)]
struct Event {
    time: Timestamp,
    /// Its place in the history, so records of the same second keep their order.
    seq: u64,
    action: u32,
    from: Option<u32>,
    to: Option<u32>,
    attempt: Option<u32>,
    worker: u32,
    /// Cut to what the page shows.
    reason: Option<Box<str>>,
}

/// One session as a thought page shows it (names by number).
#[derive(Debug, Clone)]
struct Session {
    started: Timestamp,
    attempt: u32,
    seq: u64,
    duration_s: f64,
    outcome: u32,
    agent: u32,
    worker: u32,
    turns: Option<u32>,
    cost_usd: Option<f64>,
    pr_url: Option<Box<str>>,
    sandbox: Option<u32>,
}

#[derive(Debug, Clone, Default)]
struct ThoughtLog {
    sessions: Vec<Session>,
    sessions_total: usize,
    events: Vec<Event>,
    events_total: usize,
}

/// An audit record of a thought page, its names resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct EventView<'a> {
    pub time: Timestamp,
    pub action: &'a str,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub attempt: Option<u32>,
    pub worker: &'a str,
    pub reason: Option<&'a str>,
}

/// A session of a thought page, its names resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionView<'a> {
    pub started: Timestamp,
    pub attempt: u32,
    pub duration_s: f64,
    pub outcome: &'a str,
    pub agent: &'a str,
    pub worker: &'a str,
    pub turns: Option<u32>,
    pub cost_usd: Option<f64>,
    pub pr_url: Option<&'a str>,
    /// Where its agent ran: `bubblewrap`, `off`, or not recorded.
    pub sandbox: Option<&'a str>,
}

/// The latest of a thought's rows and how many there are in all.
#[derive(Debug, Clone, PartialEq)]
pub struct Latest<T> {
    /// Oldest first: at most [`PAGE_ROWS`].
    pub rows: Vec<T>,
    pub total: usize,
}

/// How long an audit reason may be on a page (longer ones are cut).
pub const REASON_CHARS: usize = 300;

/// The history as the dashboard needs it, taken in one line at a time.
#[derive(Debug, Clone, Default)]
pub struct HistoryIndex {
    /// Each thought's place in `logs`.
    thoughts: Map<Box<str>, usize>,
    logs: Vec<ThoughtLog>,
    names: Names,
    metrics: MetricsAcc,
    seq: u64,
    /// Lines of the history that did not parse (skipped, not fatal).
    pub skipped: usize,
}

/// Keep `item` among the latest [`PAGE_ROWS`] of `rows` by `key`: once
/// full, it takes the place of the oldest if it is newer (O(rows) then, for
/// the rare thought with more records than a page shows).
fn keep_latest<T, K: PartialOrd>(rows: &mut Vec<T>, item: T, key: impl Fn(&T) -> K) {
    if rows.len() < PAGE_ROWS {
        rows.push(item);
        return;
    }
    let oldest = (0..rows.len())
        .reduce(|a, b| if key(&rows[b]) < key(&rows[a]) { b } else { a })
        .expect("full");
    if key(&item) > key(&rows[oldest]) {
        rows[oldest] = item;
    }
}

impl HistoryIndex {
    pub fn new() -> HistoryIndex {
        HistoryIndex::default()
    }

    /// The index of records already read whole (oldest first).
    pub fn from_records(r: &Records) -> HistoryIndex {
        let mut h = HistoryIndex::new();
        r.audit.iter().for_each(|a| h.push_audit(a));
        r.metrics.iter().for_each(|m| h.push_metrics(m));
        h.skipped = r.skipped;
        h
    }

    /// Take in one line of an audit or metrics file (files oldest first).
    pub fn push_line(&mut self, l: &HistoryLine) {
        // Audit lines, the bulk of the history, are read in place.
        if l.kind == Record::Audit && !l.text.trim().is_empty() {
            match parse_audit_ref(l.text) {
                Some(a) => self.push_audit_ref(&a),
                None => self.skipped += 1,
            }
            return;
        }
        match parsed(l) {
            Parsed::Audit(a) => self.push_audit(&a),
            Parsed::Metrics(m) => self.push_metrics(&m),
            Parsed::Bad => self.skipped += 1,
            Parsed::Nothing => {}
        }
    }

    fn log(&mut self, thought: &str) -> &mut ThoughtLog {
        let i = match self.thoughts.get(thought) {
            Some(i) => *i,
            None => {
                self.thoughts.insert(thought.into(), self.logs.len());
                self.logs.push(ThoughtLog::default());
                self.logs.len() - 1
            }
        };
        &mut self.logs[i]
    }

    /// Take in the next audit record (one about no thought goes on no page).
    pub fn push_audit(&mut self, a: &AuditRecord) {
        fn o(s: &Option<String>) -> Option<std::borrow::Cow<'_, str>> {
            s.as_deref().map(Into::into)
        }
        self.push_audit_ref(&AuditRef {
            time: a.time,
            worker: a.worker.as_str().into(),
            action: a.action.as_str().into(),
            thought: o(&a.thought),
            from: o(&a.from),
            to: o(&a.to),
            attempt: a.attempt,
            reason: o(&a.reason),
            commit: None,
        });
    }

    /// Take in the next audit record, read in place.
    pub fn push_audit_ref(&mut self, a: &AuditRef) {
        let Some(thought) = a.thought.as_deref() else {
            return;
        };
        self.seq += 1;
        let n = &mut self.names;
        let e = Event {
            time: a.time,
            seq: self.seq,
            action: n.id(&a.action),
            from: a.from.as_deref().map(|s| n.id(s)),
            to: a.to.as_deref().map(|s| n.id(s)),
            attempt: a.attempt,
            worker: n.id(&a.worker),
            reason: a
                .reason
                .as_deref()
                .map(|r| super::clip(r, REASON_CHARS).into()),
        };
        let log = self.log(thought);
        log.events_total += 1;
        keep_latest(&mut log.events, e, |e| (e.time, e.seq));
    }

    /// Take in the next metrics row.
    pub fn push_metrics(&mut self, r: &MetricsRow) {
        self.metrics.push(r);
        self.seq += 1;
        let n = &mut self.names;
        let s = Session {
            started: r.started,
            attempt: r.attempt,
            seq: self.seq,
            duration_s: r.duration_s,
            outcome: n.id(&r.outcome),
            agent: n.id(&r.agent),
            worker: n.id(&r.worker),
            turns: r.turns,
            cost_usd: r.cost_usd,
            pr_url: r.pr_url.as_deref().map(Into::into),
            sandbox: r.sandbox.as_deref().map(|s| n.id(s)),
        };
        let log = self.log(&r.thought);
        log.sessions_total += 1;
        keep_latest(&mut log.sessions, s, |s| (s.started, s.attempt, s.seq));
    }

    /// The figures over every session (see [`super::metrics`]).
    pub fn metrics(&self) -> MetricsSummary {
        self.metrics.summary()
    }

    /// Every thought the history mentions, in no particular order.
    pub fn dirs(&self) -> impl Iterator<Item = &str> {
        self.thoughts.keys().map(|k| &**k)
    }

    fn get(&self, dir: &str) -> Option<&ThoughtLog> {
        self.thoughts.get(dir).map(|i| &self.logs[*i])
    }

    /// Leave out every reason of the audit records (text sessions printed).
    pub fn forget_reasons(&mut self) {
        for log in &mut self.logs {
            log.events.iter_mut().for_each(|e| e.reason = None);
        }
    }

    /// The latest sessions of `dir`, by start then attempt.
    pub fn sessions(&self, dir: &str) -> Latest<SessionView<'_>> {
        let Some(log) = self.get(dir) else {
            return Latest {
                rows: Vec::new(),
                total: 0,
            };
        };
        let mut rows: Vec<&Session> = log.sessions.iter().collect();
        rows.sort_by_key(|s| (s.started, s.attempt, s.seq));
        let n = &self.names;
        let rows = rows
            .into_iter()
            .map(|s| SessionView {
                started: s.started,
                attempt: s.attempt,
                duration_s: s.duration_s,
                outcome: n.get(s.outcome),
                agent: n.get(s.agent),
                worker: n.get(s.worker),
                turns: s.turns,
                cost_usd: s.cost_usd,
                pr_url: s.pr_url.as_deref(),
                sandbox: s.sandbox.map(|i| n.get(i)),
            })
            .collect();
        Latest {
            rows,
            total: log.sessions_total,
        }
    }

    /// The latest audit records of `dir`, by time.
    pub fn history(&self, dir: &str) -> Latest<EventView<'_>> {
        let Some(log) = self.get(dir) else {
            return Latest {
                rows: Vec::new(),
                total: 0,
            };
        };
        let mut rows: Vec<&Event> = log.events.iter().collect();
        rows.sort_by_key(|e| (e.time, e.seq));
        let n = &self.names;
        let rows = rows
            .into_iter()
            .map(|e| EventView {
                time: e.time,
                action: n.get(e.action),
                from: e.from.map(|i| n.get(i)),
                to: e.to.map(|i| n.get(i)),
                attempt: e.attempt,
                worker: n.get(e.worker),
                reason: e.reason.as_deref(),
            })
            .collect();
        Latest {
            rows,
            total: log.events_total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audit(sec: i64, thought: &str, action: &str) -> AuditRecord {
        AuditRecord {
            time: Timestamp::from_second(1_700_000_000 + sec).unwrap(),
            worker: "w".into(),
            action: action.into(),
            thought: Some(thought.into()),
            from: None,
            to: Some("queued".into()),
            attempt: None,
            reason: Some("r".repeat(REASON_CHARS + 50)),
            commit: None,
        }
    }

    #[test]
    fn a_page_keeps_the_latest_rows_and_counts_them_all() {
        let mut h = HistoryIndex::new();
        // Out of order, with ties: the latest PAGE_ROWS by time, ties in file order.
        for i in (0..PAGE_ROWS as i64 + 50).rev() {
            h.push_audit(&audit(i / 2, "a", &format!("x{i}")));
        }
        h.push_audit(&audit(0, "b", "add"));
        let a = h.history("a");
        assert_eq!((a.rows.len(), a.total), (PAGE_ROWS, PAGE_ROWS + 50));
        assert_eq!(
            a.rows[0].time,
            Timestamp::from_second(1_700_000_025).unwrap()
        );
        assert_eq!(a.rows.last().unwrap().action, "x248");
        assert!(a.rows.windows(2).all(|w| w[0].time <= w[1].time));
        assert_eq!(
            a.rows[0].reason.unwrap().chars().count(),
            REASON_CHARS,
            "cut as the page shows it"
        );
        assert_eq!(h.history("b").total, 1);
        assert_eq!(
            h.history("c"),
            Latest {
                rows: vec![],
                total: 0
            }
        );
        let mut dirs: Vec<&str> = h.dirs().collect();
        dirs.sort();
        assert_eq!(dirs, ["a", "b"]);
        h.forget_reasons();
        assert!(h.history("a").rows.iter().all(|e| e.reason.is_none()));
    }
}
