//! The server's records on the state branch: `tgs/server/audit.jsonl` (one
//! line per state change or server action, append-only) and
//! `tgs/server/metrics.csv` (one row per session). Both are written in the
//! same commit as the backlog change they describe and, like it, re-applied
//! to the freshest state when a push loses a race, so racing workers never
//! lose or duplicate a line.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::HashMap;

pub const AUDIT_PATH: &str = "tgs/server/audit.jsonl";
pub const METRICS_PATH: &str = "tgs/server/metrics.csv";

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub time: Timestamp,
    pub worker: String,
    /// What happened: add, remove, priority, claim, complete, fail, requeue,
    /// release, retry, recover, scan, repair.
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The state commit this change was applied on (a commit cannot name its own id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// The columns of `metrics.csv`, in order.
/// Files written before `revision` existed have one column less; they read the same.
pub const METRICS_HEADER: &str = "thought,worker,agent,started,ended,duration_s,outcome,attempt,exit_code,turns,cost_usd,input_tokens,output_tokens,pr_url,revision,sandbox";

/// One row of the metrics: one session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsRow {
    pub thought: String,
    pub worker: String,
    pub agent: String,
    pub started: Timestamp,
    pub ended: Timestamp,
    pub duration_s: f64,
    /// success, failed, timeout, crashed, rejected, agent_missing, cancelled, rate_limited
    pub outcome: String,
    pub attempt: u32,
    pub exit_code: Option<i32>,
    pub turns: Option<u32>,
    pub cost_usd: Option<f64>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub pr_url: Option<String>,
    /// What a revision session answered (`changes_requested`, `command`,
    /// `update`); empty for a thought's own sessions.
    #[serde(default)]
    pub revision: Option<String>,
    /// Where the agent ran: `bubblewrap` (contained) or `off`; empty in
    /// rows written before tgs recorded it, and for sessions whose agent
    /// never started.
    #[serde(default)]
    pub sandbox: Option<String>,
}

/// The audit records of a change: one per entry added, removed, moved to
/// another status, or reprioritized. Derived from the states themselves, so
/// every command is audited the same way.
pub fn audit_diff(
    before: &crate::backlog::Backlog,
    after: &crate::backlog::Backlog,
    actor: &str,
    now: Timestamp,
    commit: Option<&str>,
) -> Vec<AuditRecord> {
    use crate::backlog::Status;
    let rec = |action: &str,
               e: &crate::backlog::Entry,
               from: Option<Status>,
               to: Option<Status>,
               reason: Option<String>| AuditRecord {
        time: now,
        worker: actor.to_owned(),
        action: action.to_owned(),
        thought: Some(e.dir.clone()),
        from: from.map(|s| s.to_string()),
        to: to.map(|s| s.to_string()),
        attempt: Some(e.attempts).filter(|a| *a > 0),
        reason,
        commit: commit.map(str::to_owned),
    };
    // Indexed: a change to a backlog of n entries costs O(n), not O(n²).
    fn by_dir(b: &crate::backlog::Backlog) -> HashMap<&str, &crate::backlog::Entry> {
        b.thoughts.iter().map(|e| (e.dir.as_str(), e)).collect()
    }
    let (old, new) = (by_dir(before), by_dir(after));
    let mut out = Vec::new();
    for a in &after.thoughts {
        match old.get(a.dir.as_str()).copied() {
            None => out.push(rec("add", a, None, Some(a.status), None)),
            Some(b) if b.status != a.status => {
                let action = match (b.status, a.status) {
                    (_, Status::InProgress) => "claim",
                    (_, Status::HandoverPending) => "handover_pending",
                    (_, Status::Completed) => "complete",
                    (_, Status::Failed) => "fail",
                    (_, Status::NeedsInput) => "question_asked",
                    (Status::NeedsInput, Status::Queued) => "question_answered",
                    (Status::InProgress, Status::Queued) if a.attempts < b.attempts => "release",
                    (Status::InProgress, Status::Queued) => "requeue",
                    (Status::Completed, Status::Queued) => "revise",
                    (_, Status::Queued) => "retry",
                };
                let reason = match action {
                    // Who answered, and how (the answer itself is in the state).
                    "question_answered" => a
                        .questions
                        .last()
                        .and_then(|q| q.answer.as_ref())
                        .map(|x| format!("answered by {} via {}", x.by, x.via)),
                    _ => (a.last_error != b.last_error)
                        .then(|| a.last_error.clone())
                        .flatten(),
                };
                out.push(rec(action, a, Some(b.status), Some(a.status), reason));
            }
            Some(b) if b.handover_tries != a.handover_tries && a.handover_tries > 0 => {
                let mut r = rec("handover_failed", a, Some(b.status), Some(a.status), None);
                r.reason = a.last_error.clone();
                out.push(r);
            }
            Some(b) if b.priority != a.priority => {
                let mut r = rec("priority", a, Some(b.status), Some(a.status), None);
                r.reason = Some(format!("priority {} -> {}", b.priority, a.priority));
                out.push(r);
            }
            Some(_) => {}
        }
    }
    for a in &after.thoughts {
        let b = old.get(a.dir.as_str()).and_then(|b| b.review.as_ref());
        for (action, reason) in review_changes(b, a.review.as_ref()) {
            out.push(rec(&action, a, None, None, Some(reason)));
        }
    }
    for b in &before.thoughts {
        if !new.contains_key(b.dir.as_str()) {
            out.push(rec("remove", b, Some(b.status), None, None));
        }
    }
    out.extend(pause_records(before, after, actor, now, commit));
    out
}

/// What changed in a review loop, as (action, reason): revisions queued
/// and ended, the pull request handed to a human.
fn review_changes(
    before: Option<&crate::backlog::ReviewLoop>,
    after: Option<&crate::backlog::ReviewLoop>,
) -> Vec<(String, String)> {
    let Some(a) = after else { return Vec::new() };
    let empty = crate::backlog::ReviewLoop::default();
    let b = before.unwrap_or(&empty);
    let mut out = Vec::new();
    let known = |id: u64, kind| {
        b.queue.iter().any(|r| r.id == id && r.kind == kind)
            || b.done.iter().any(|r| r.id == id && r.kind == kind)
    };
    for r in a.queue.iter().filter(|r| !known(r.id, r.kind)) {
        out.push((
            "revision_queued".to_owned(),
            crate::review::describe(r.kind, &r.author, &r.url),
        ));
    }
    for d in a.done.iter().skip(b.done.len()) {
        out.push((
            format!("revision_{}", d.outcome),
            crate::review::describe(d.kind, &d.author, &d.url),
        ));
    }
    match (&b.needs_human, &a.needs_human) {
        (None, Some(why)) => out.push(("needs_human".to_owned(), why.clone())),
        (Some(_), None) => out.push((
            "review_resumed".to_owned(),
            "the review loop resumes".to_owned(),
        )),
        _ => {}
    }
    out
}

/// The audit records of agents paused or resumed.
fn pause_records(
    before: &crate::backlog::Backlog,
    after: &crate::backlog::Backlog,
    actor: &str,
    now: Timestamp,
    commit: Option<&str>,
) -> Vec<AuditRecord> {
    let rec = |action: &str, agent: &str, reason: Option<String>| AuditRecord {
        time: now,
        worker: actor.to_owned(),
        action: action.to_owned(),
        thought: None,
        from: None,
        to: None,
        attempt: None,
        reason: Some(match reason {
            Some(r) => format!("agent {agent}: {r}"),
            None => format!("agent {agent}"),
        }),
        commit: commit.map(str::to_owned),
    };
    let mut out = Vec::new();
    for (agent, p) in &after.pauses {
        if before.pauses.get(agent) != Some(p) {
            let until = p
                .until
                .map(|t| format!(" until {t}"))
                .unwrap_or_else(|| " until a human resumes it".into());
            out.push(rec(
                "pause",
                agent,
                Some(format!("{}{until}: {}", p.kind, p.reason)),
            ));
        }
    }
    for agent in before.pauses.keys() {
        if !after.pauses.contains_key(agent) {
            out.push(rec("resume", agent, None));
        }
    }
    out
}

/// Quote a CSV field when it needs it (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

impl MetricsRow {
    /// The row as one CSV line (no newline).
    pub fn to_csv(&self) -> String {
        let opt = |v: Option<String>| v.unwrap_or_default();
        [
            csv_field(&self.thought),
            csv_field(&self.worker),
            csv_field(&self.agent),
            self.started.to_string(),
            self.ended.to_string(),
            format!("{:.1}", self.duration_s),
            csv_field(&self.outcome),
            self.attempt.to_string(),
            opt(self.exit_code.map(|c| c.to_string())),
            opt(self.turns.map(|t| t.to_string())),
            opt(self.cost_usd.map(|c| format!("{c:.4}"))),
            opt(self.input_tokens.map(|t| t.to_string())),
            opt(self.output_tokens.map(|t| t.to_string())),
            csv_field(self.pr_url.as_deref().unwrap_or_default()),
            csv_field(self.revision.as_deref().unwrap_or_default()),
            csv_field(self.sandbox.as_deref().unwrap_or_default()),
        ]
        .join(",")
    }
}

/// Split one CSV line into fields (quotes and doubled quotes handled).
pub fn split_csv_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if cur.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    fields.push(cur);
    fields
}

/// Parse `metrics.csv`; rows that do not parse are skipped (and counted).
pub fn parse_metrics(text: &str) -> (Vec<MetricsRow>, usize) {
    let mut rows = Vec::new();
    let mut bad = 0;
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        match parse_metrics_line(line) {
            Some(r) => rows.push(r),
            None => bad += 1,
        }
    }
    (rows, bad)
}

/// One row of `metrics.csv` (not the header, not a blank line).
pub fn parse_metrics_line(line: &str) -> Option<MetricsRow> {
    // Without quotes, a comma ends every field: split in place.
    let quoted;
    let f: Vec<&str> = if line.contains('"') {
        quoted = split_csv_line(line);
        quoted.iter().map(String::as_str).collect()
    } else {
        line.split(',').collect()
    };
    let get = |i: usize| f.get(i).copied().unwrap_or("");
    let opt = |i: usize| Some(get(i)).filter(|s| !s.is_empty());
    Some(MetricsRow {
        thought: get(0).to_owned(),
        worker: get(1).to_owned(),
        agent: get(2).to_owned(),
        started: get(3).parse().ok()?,
        ended: get(4).parse().ok()?,
        duration_s: get(5).parse().ok()?,
        outcome: get(6).to_owned(),
        attempt: get(7).parse().ok()?,
        exit_code: opt(8).and_then(|s| s.parse().ok()),
        turns: opt(9).and_then(|s| s.parse().ok()),
        cost_usd: opt(10).and_then(|s| s.parse().ok()),
        input_tokens: opt(11).and_then(|s| s.parse().ok()),
        output_tokens: opt(12).and_then(|s| s.parse().ok()),
        pr_url: opt(13).map(str::to_owned),
        revision: opt(14).map(str::to_owned),
        sandbox: opt(15).map(str::to_owned),
    })
}

/// The thought of a metrics row (its first field) without parsing the rest,
/// for passes that look at a few thoughts' rows only.
pub fn metrics_line_thought(line: &str) -> std::borrow::Cow<'_, str> {
    match line.split_once(',') {
        Some((first, _)) if !first.starts_with('"') => first.into(),
        None if !line.starts_with('"') => line.into(),
        _ => split_csv_line(line).swap_remove(0).into(),
    }
}

/// Parse `audit.jsonl`; lines that do not parse are skipped (and counted).
pub fn parse_audit(text: &str) -> (Vec<AuditRecord>, usize) {
    let mut out = Vec::new();
    let mut bad = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match parse_audit_line(line) {
            Some(r) => out.push(r),
            None => bad += 1,
        }
    }
    (out, bad)
}

/// One line of `audit.jsonl` (not a blank one).
pub fn parse_audit_line(line: &str) -> Option<AuditRecord> {
    serde_json::from_str(line).ok()
}

/// An audit line read in place: [`AuditRecord`]'s fields, borrowed from the
/// line where it has no escapes, for views that read every line and keep
/// little of each. A line parses as this exactly when it parses as an
/// [`AuditRecord`].
#[derive(Debug, Deserialize)]
pub struct AuditRef<'a> {
    pub time: Timestamp,
    #[serde(borrow)]
    pub worker: Cow<'a, str>,
    #[serde(borrow)]
    pub action: Cow<'a, str>,
    #[serde(default, borrow)]
    pub thought: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub from: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub to: Option<Cow<'a, str>>,
    #[serde(default)]
    pub attempt: Option<u32>,
    #[serde(default, borrow)]
    pub reason: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub commit: Option<Cow<'a, str>>,
}

/// One line of `audit.jsonl`, read in place (see [`AuditRef`]).
pub fn parse_audit_ref(line: &str) -> Option<AuditRef<'_>> {
    serde_json::from_str(line).ok()
}

/// Append lines to a file's text (adding the header to a new CSV).
pub fn append(existing: Option<&str>, header: Option<&str>, lines: &[String]) -> String {
    let mut s = existing.unwrap_or_default().to_owned();
    // A header tgs wrote before it had its newest columns grows them: the
    // rows are read by position, so the old ones still read.
    if let (Some(h), Some((first, _))) = (header, s.split_once('\n')) {
        if first != h && h.starts_with(first) && h[first.len()..].starts_with(',') {
            s.replace_range(..first.len(), h);
        }
    }
    if s.is_empty() {
        if let Some(h) = header {
            s.push_str(h);
            s.push('\n');
        }
    } else if !s.ends_with('\n') {
        s.push('\n');
    }
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> MetricsRow {
        MetricsRow {
            thought: "tgs/thoughts/abc1234-x".into(),
            worker: "host/u".into(),
            agent: "claude-code".into(),
            started: "2026-01-15T12:00:00Z".parse().unwrap(),
            ended: "2026-01-15T12:30:00Z".parse().unwrap(),
            duration_s: 1800.0,
            outcome: "success".into(),
            attempt: 1,
            exit_code: Some(0),
            turns: Some(12),
            cost_usd: Some(0.4213),
            input_tokens: Some(1000),
            output_tokens: Some(200),
            pr_url: Some("https://github.com/o/r/pull/1".into()),
            revision: None,
            sandbox: Some("bubblewrap".into()),
        }
    }

    #[test]
    fn metrics_round_trip_with_awkward_fields() {
        let mut r = row();
        r.worker = "a \"quoted\", worker".into();
        let text = append(
            None,
            Some(METRICS_HEADER),
            &[r.to_csv(), row().to_csv(), "garbage".into()],
        );
        assert!(text.starts_with(METRICS_HEADER));
        let (rows, bad) = parse_metrics(&text);
        assert_eq!(bad, 1);
        assert_eq!(rows, vec![r, row()]);
    }

    /// A metrics file started by an older tgs keeps its rows; its header
    /// grows the new columns, and its old rows read without them.
    #[test]
    fn an_older_header_grows_the_new_columns() {
        let old_header = METRICS_HEADER.trim_end_matches(",sandbox");
        let mut old = row();
        old.sandbox = None;
        let old_line = old.to_csv();
        let old_line = old_line.trim_end_matches(',');
        let text = append(
            Some(&format!("{old_header}\n{old_line}\n")),
            Some(METRICS_HEADER),
            &[row().to_csv()],
        );
        assert_eq!(text.lines().next(), Some(METRICS_HEADER));
        assert_eq!(parse_metrics(&text), (vec![old, row()], 0));
        // Someone else's header is left alone.
        let text = append(Some("mine,a\n1,2\n"), Some(METRICS_HEADER), &[]);
        assert_eq!(text, "mine,a\n1,2\n");
    }

    #[test]
    fn audit_is_derived_from_the_states() {
        use crate::backlog::Backlog;
        let t = |s: i64| Timestamp::from_second(1_700_000_000 + s).unwrap();
        let hour = jiff::SignedDuration::from_hours(1);
        let mut before = Backlog::default();
        before.add("a", "A", 0, t(0));
        before.add("b", "B", 0, t(0));
        before.add("gone", "G", 0, t(0));
        let mut after = before.clone();
        after.claim(Some("a"), "w", t(1), hour).unwrap();
        after.set_priority("b", 7).unwrap();
        after.remove("gone").unwrap();
        after.add("c", "C", 0, t(1));
        let recs = audit_diff(&before, &after, "me", t(2), Some("abc"));
        let got: Vec<(&str, &str, Option<&str>, Option<&str>)> = recs
            .iter()
            .map(|r| {
                (
                    r.action.as_str(),
                    r.thought.as_deref().unwrap(),
                    r.from.as_deref(),
                    r.to.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("claim", "a", Some("queued"), Some("in_progress")),
                ("priority", "b", Some("queued"), Some("queued")),
                ("add", "c", None, Some("queued")),
                ("remove", "gone", Some("queued"), None),
            ]
        );
        assert_eq!(recs[0].attempt, Some(1));
        assert_eq!(recs[0].commit.as_deref(), Some("abc"));
        let mut later = after.clone();
        later.requeue("a", Some("boom"), None, true).unwrap();
        let r = audit_diff(&after, &later, "me", t(3), None);
        assert_eq!(
            (r[0].action.as_str(), r[0].reason.as_deref()),
            ("release", Some("boom"))
        );
        assert!(audit_diff(&later, &later, "me", t(3), None).is_empty());
    }

    #[test]
    fn audit_lines_read_in_place_parse_as_the_records_do() {
        for line in [
            r#"{"time":"2026-01-15T12:00:00Z","worker":"w","action":"claim","thought":"t","commit":"abc"}"#,
            r#"{"time":"2026-01-15T12:00:00Z","worker":"w\"q","action":"x","reason":"a\nb","thought":null}"#,
            r#"{"time":"2026-01-15T12:00:00Z","worker":"w","action":"x","attempt":"1"}"#,
            r#"{"time":"2026-01-15T12:00:00Z","worker":"w","action":"x","commit":7}"#,
            r#"{"time":"2026-01-15T12:00:00Z","action":"x"}"#,
            r#"{"time":"yesterday","worker":"w","action":"x","extra":[1]}"#,
        ] {
            let owned = parse_audit_line(line);
            let borrowed = parse_audit_ref(line);
            assert_eq!(owned.is_some(), borrowed.is_some(), "{line}");
            if let (Some(o), Some(b)) = (owned, borrowed) {
                assert_eq!(
                    (o.worker.as_str(), o.reason.as_deref(), o.thought.as_deref()),
                    (&*b.worker, b.reason.as_deref(), b.thought.as_deref())
                );
            }
        }
    }

    #[test]
    fn audit_lines() {
        let rec = AuditRecord {
            time: "2026-01-15T12:00:00Z".parse().unwrap(),
            worker: "w".into(),
            action: "claim".into(),
            thought: Some("tgs/thoughts/abc1234-x".into()),
            from: Some("queued".into()),
            to: Some("in_progress".into()),
            attempt: Some(1),
            reason: None,
            commit: None,
        };
        let line = serde_json::to_string(&rec).unwrap();
        let text = append(Some("{\"bad\"\n"), None, &[line]);
        let (recs, bad) = parse_audit(&text);
        assert_eq!((recs, bad), (vec![rec], 1));
    }
}
