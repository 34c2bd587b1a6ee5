//! A state file never becomes unreadable through one value.
//!
//! The backlog is written by tgs, by earlier versions of it, by the Go
//! prototype and by hand. One value tgs cannot use (a cost of `null` or
//! `-5`, a time that does not parse, a status it does not know, a count of
//! `-1`, a title holding an escape sequence, an entry without its `dir`)
//! used to make the whole file unreadable: every command of every worker
//! exited 3, `validate --fix` included. Such a value is now read as a safe
//! one and remembered as a [`Repair`]: commands go on (saying once that the
//! file holds such values), `backlog validate` lists each one, naming the
//! entry and the field, and `--fix` writes the safe values. Every write
//! goes through [`check_values`] too, so tgs never writes a value it would
//! refuse to read.
//!
//! Two passes: [`repair_json`] runs on the JSON of a file that does not
//! read as a backlog (wrong types, unknown statuses, missing fields), field
//! by field; [`check_values`] runs on every backlog read or written (values
//! of the right type out of bounds, control characters). The safe values:
//!
//! | value | read as |
//! |---|---|
//! | an unknown status | `failed`: nothing runs it again until a human says `backlog retry` |
//! | a time that does not parse | none (a lease: the claim counts as expired) |
//! | a count that is negative or not a number / beyond [`MAX_COUNT`] | 0 / [`MAX_COUNT`] |
//! | an entry's cost that is not a number | none |
//! | the day's cost that is not a number (an overflow written as `null`) | [`MAX_COST_USD`]: the day's budget is spent |
//! | a negative cost / one beyond [`MAX_COST_USD`] | 0 / [`MAX_COST_USD`] |
//! | control characters in text | spaces (newlines and tabs stay in `last_error` and a pause's reason) |
//! | an entry without a `dir`, or that is not an object | the entry is dropped: it names no thought |
//! | a pause's missing `kind`, `reason`, `since` | `unavailable`, empty, 1970-01-01 (paused until a human resumes it, unless its `until` reads) |
//! | the day's usage without its `day` | none (today's use counts from zero) |
//! | `version` missing | `"1"` |
//! | any other field of the wrong type | none (its default) |

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{Backlog, Entry, Pause, ReviewLoop, Status, Usage};

/// The largest cost the state records, in USD (an entry's over all its
/// attempts, or a day's): more is no real cost, and sums stop here.
pub const MAX_COST_USD: f64 = 1e9;

/// The largest count the state records (attempts, sessions, strikes): more
/// is no real count, and a count that reached `u32::MAX` would wrap.
pub const MAX_COUNT: u32 = 1_000_000;

/// One value of the file that tgs does not use as it is, and what it is
/// read (and repaired) as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// The entry's dir, when the value is an entry's.
    pub dir: Option<String>,
    /// What holds the value: `cost_usd`, `usage.cost_usd`,
    /// `pauses.claude-code.until`; `entry 3` for an entry dropped whole.
    pub field: String,
    /// What is wrong, quoting the value (as JSON, clipped).
    pub problem: String,
    pub now: Now,
}

/// What a value that tgs does not use is read as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Now {
    /// This value (as JSON).
    Set(String),
    /// Nothing: the field is removed (its default).
    Removed,
    /// The entry is dropped: it names no thought.
    Dropped,
}

impl Repair {
    fn new(dir: Option<&str>, field: &str, problem: String, now: Now) -> Repair {
        Repair {
            dir: dir.map(str::to_owned),
            field: field.to_owned(),
            problem,
            now,
        }
    }

    fn set(dir: Option<&str>, field: &str, problem: String, now: impl std::fmt::Display) -> Repair {
        Repair::new(dir, field, problem, Now::Set(now.to_string()))
    }

    /// The problem, and what `--fix` does: `cost_usd -5.0 is negative:
    /// --fix sets it to 0.0`.
    pub fn message(&self) -> String {
        let action = match &self.now {
            Now::Set(v) => format!("sets it to {v}"),
            Now::Removed => "removes it".into(),
            Now::Dropped => "removes the entry".into(),
        };
        format!("{} {}: --fix {action}", self.field, self.problem)
    }

    /// What `--fix` did: `cost_usd set to 0`.
    pub fn done(&self) -> String {
        match &self.now {
            Now::Set(v) => format!("{} set to {v}", self.field),
            Now::Removed | Now::Dropped => format!("{} removed", self.field),
        }
    }
}

/// A value as a problem quotes it: JSON (control characters escaped), at
/// most 60 characters.
fn quoted(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() <= 60 {
        return s;
    }
    let mut t: String = s.chars().take(59).collect();
    t.push('…');
    t
}

/// The time a pause whose `since` cannot be read is taken to start at.
const EPOCH: &str = "1970-01-01T00:00:00Z";

/// The fields of the file [`repair_json`] repairs apart from the rest.
const PARTS: [&str; 3] = ["thoughts", "pauses", "usage"];

/// Repair, in the JSON of a file that does not read as a backlog, each
/// value that keeps it from reading (see the module's table). `None` when
/// the file's shape is not a backlog's (not an object, `thoughts` not a
/// list): no value can stand in for the whole.
pub fn repair_json(v: &mut Value) -> Option<Vec<Repair>> {
    let top = v.as_object_mut()?;
    if !top.get("thoughts").is_none_or(Value::is_array) {
        return None;
    }
    let mut out = Vec::new();
    if let Some(Value::Array(items)) = top.get_mut("thoughts") {
        repair_entries(items, &mut out);
    }
    if let Some(pauses) = top.get_mut("pauses") {
        repair_pauses(pauses, &mut out);
    }
    if let Some(u) = top.get_mut("usage").filter(|u| !reads::<Option<Usage>>(u)) {
        if repair_usage(u, &mut out).is_none() {
            top.remove("usage");
        }
    }
    let keys: Vec<String> = top
        .keys()
        .filter(|k| !PARTS.contains(&k.as_str()))
        .cloned()
        .collect();
    let mut rest: Map<String, Value> = keys.iter().filter_map(|k| top.remove_entry(k)).collect();
    let version = [("version", Value::from(super::VERSION))];
    repair_fields::<Backlog>(&mut rest, &version, None, "", backlog_fallback, &mut out);
    top.extend(rest);
    Some(out)
}

/// The safe value of a field of the file itself that does not read.
fn backlog_fallback(field: &str, _: &Value, _: &mut Vec<Repair>, _: Option<&str>) -> Option<Value> {
    (field == "version").then(|| super::VERSION.into())
}

/// Whether `v` reads as a `T`.
fn reads<T: DeserializeOwned>(v: &Value) -> bool {
    T::deserialize(v).is_ok()
}

/// How a field that does not read is repaired: its safe value (`None`:
/// removed), given the field, its value, the repairs so far and the
/// entry's dir.
type Fallback = fn(&str, &Value, &mut Vec<Repair>, Option<&str>) -> Option<Value>;

/// The entries that do not read, repaired field by field; one without a
/// dir (or that is not an object) is dropped.
fn repair_entries(items: &mut Vec<Value>, out: &mut Vec<Repair>) {
    let mut n = 0;
    items.retain_mut(|item| {
        n += 1;
        if reads::<Entry>(item) {
            return true;
        }
        let Some(dir) = item.get("dir").and_then(Value::as_str).map(str::to_owned) else {
            let why = match item.get("dir") {
                _ if !item.is_object() => format!("{} is not an entry", quoted(item)),
                None => "has no dir, so it names no thought".to_owned(),
                Some(d) => format!("has the dir {}, which names no thought", quoted(d)),
            };
            out.push(Repair::new(None, &format!("entry {n}"), why, Now::Dropped));
            return false;
        };
        let obj = item.as_object_mut().expect("an object with a dir");
        let dir_field = [("dir", Value::from(dir.as_str()))];
        repair_fields::<Entry>(obj, &dir_field, Some(&dir), "", entry_fallback, out);
        if reads::<Entry>(item) {
            return true;
        }
        let why = "cannot be read".to_owned();
        out.push(Repair::new(
            Some(&dir),
            &format!("entry {n}"),
            why,
            Now::Dropped,
        ));
        false
    });
}

/// Each field of `obj` whose value alone keeps it from reading as a `T`
/// (tried with `required` beside it), replaced by its `fallback` or
/// removed; then each of `required` that is missing, set to the value
/// given. Each one a [`Repair`] named `prefix` + field.
fn repair_fields<T: DeserializeOwned>(
    obj: &mut Map<String, Value>,
    required: &[(&str, Value)],
    dir: Option<&str>,
    prefix: &str,
    fallback: Fallback,
    out: &mut Vec<Repair>,
) {
    let keys: Vec<String> = obj.keys().cloned().collect();
    for key in keys {
        let value = obj[&key].clone();
        if reads_beside::<T>(required, &key, &value) {
            continue;
        }
        let before = out.len();
        let now = fallback(&key, &value, out, dir);
        if out.len() == before || now.is_none() {
            let to = now.as_ref().map_or(Now::Removed, |v| Now::Set(quoted(v)));
            out.push(Repair::new(
                dir,
                &format!("{prefix}{key}"),
                problem_of(&key, &value),
                to,
            ));
        }
        match now {
            Some(v) => obj.insert(key, v),
            None => obj.remove(&key),
        };
    }
    for (key, value) in required {
        if !obj.contains_key(*key) {
            let field = format!("{prefix}{key}");
            out.push(Repair::set(dir, &field, "is missing".into(), quoted(value)));
            obj.insert((*key).to_owned(), value.clone());
        }
    }
}

/// Whether `key: value` reads as (part of) a `T`, with `required` beside it.
fn reads_beside<T: DeserializeOwned>(required: &[(&str, Value)], key: &str, value: &Value) -> bool {
    let mut probe: Map<String, Value> = required
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    probe.insert(key.to_owned(), value.clone());
    reads::<T>(&Value::Object(probe))
}

/// What is wrong with `value` in `field`, as a problem says it.
fn problem_of(field: &str, value: &Value) -> String {
    let q = quoted(value);
    let time = field.ends_with("_at") || matches!(field, "until" | "since" | "not_before" | "at");
    match field {
        "status" => format!("{q} is no status tgs knows"),
        "cost_usd" => format!("{q} is no number"),
        "attempts" | "handover_tries" | "sessions" | "strikes" | "spent_before" => {
            format!("{q} is no count")
        }
        "priority" => format!("{q} is no integer"),
        _ if time => format!("{q} is no time"),
        _ => format!("{q} is not a value tgs reads there"),
    }
}

/// A count for `v`: its integer part within `0..=MAX_COUNT`, or 0.
fn count(v: &Value) -> Value {
    let n = v.as_f64().filter(|n| n.is_finite()).unwrap_or(0.0);
    Value::from(n.clamp(0.0, f64::from(MAX_COUNT)) as u32)
}

/// An integer for `v`: its integer part (within `i64`), or 0.
fn integer(v: &Value) -> Value {
    let n = v.as_f64().filter(|n| n.is_finite()).unwrap_or(0.0);
    Value::from(n.clamp(i64::MIN as f64, i64::MAX as f64) as i64)
}

/// The strings of a list (other items dropped), or an empty list.
fn strings(v: &Value) -> Value {
    let items = v.as_array().map(Vec::as_slice).unwrap_or_default();
    Value::Array(items.iter().filter(|i| i.is_string()).cloned().collect())
}

/// The items of the list `v` that read as a `T`.
fn readable<T: DeserializeOwned>(v: &Value) -> Option<Value> {
    let items = v.as_array()?.iter().filter(|i| reads::<T>(i));
    Some(Value::Array(items.cloned().collect()))
}

/// The safe value of an entry's field that does not read.
fn entry_fallback(
    field: &str,
    v: &Value,
    out: &mut Vec<Repair>,
    dir: Option<&str>,
) -> Option<Value> {
    match field {
        "status" => Some(Status::Failed.as_str().into()),
        "attempts" | "handover_tries" => Some(count(v)),
        "priority" => Some(integer(v)),
        "title" => Some("".into()),
        "depends_on" => Some(strings(v)),
        "review" => {
            let mut r = v.clone();
            let obj = r.as_object_mut()?;
            repair_fields::<ReviewLoop>(obj, &[], dir, "review.", review_fallback, out);
            reads::<ReviewLoop>(&r).then_some(r)
        }
        _ => None,
    }
}

/// The safe value of a review loop's field that does not read: of its
/// revisions, those that read are kept.
fn review_fallback(field: &str, v: &Value, _: &mut Vec<Repair>, _: Option<&str>) -> Option<Value> {
    match field {
        "queue" => readable::<super::Revision>(v),
        "done" => readable::<super::RevisionDone>(v),
        "spent_before" => Some(count(v)),
        _ => None,
    }
}

/// The pauses that do not read, repaired field by field; one that is not
/// an object becomes a pause until a human resumes the agent.
fn repair_pauses(pauses: &mut Value, out: &mut Vec<Repair>) {
    let Some(map) = pauses.as_object_mut() else {
        let why = format!("{} is not a list of pauses", quoted(pauses));
        out.push(Repair::new(None, "pauses", why, Now::Removed));
        *pauses = Value::Object(Map::new());
        return;
    };
    let required = [
        ("kind", Value::from("unavailable")),
        ("reason", Value::from("")),
        ("since", Value::from(EPOCH)),
    ];
    for (agent, p) in map.iter_mut().filter(|(_, p)| !reads::<Pause>(p)) {
        if !p.is_object() {
            let why = format!("{} is not a pause", quoted(p));
            let to = "a pause until a human resumes the agent";
            out.push(Repair::set(None, &format!("pauses.{agent}"), why, to));
            *p = Value::Object(Map::new());
        }
        let obj = p.as_object_mut().expect("an object");
        let prefix = format!("pauses.{agent}.");
        repair_fields::<Pause>(obj, &required, None, &prefix, pause_fallback, out);
    }
}

/// The safe value of a pause's field that does not read.
fn pause_fallback(field: &str, v: &Value, _: &mut Vec<Repair>, _: Option<&str>) -> Option<Value> {
    match field {
        "kind" => Some("unavailable".into()),
        "reason" => Some("".into()),
        "since" => Some(EPOCH.into()),
        "strikes" => Some(count(v)),
        _ => None,
    }
}

/// The day's usage repaired field by field; `None` when it has no day (it
/// is then dropped: today's use counts from zero).
fn repair_usage(u: &mut Value, out: &mut Vec<Repair>) -> Option<()> {
    let day_ok = u.get("day").is_some_and(Value::is_string);
    let Some(obj) = u.as_object_mut().filter(|_| day_ok) else {
        let why = format!("{} has no day", quoted(u));
        out.push(Repair::new(None, "usage", why, Now::Removed));
        return None;
    };
    let day = [("day", obj["day"].clone())];
    repair_fields::<Usage>(obj, &day, None, "usage.", usage_fallback, out);
    Some(())
}

/// The safe value of the day's usage field that does not read: a cost
/// that is not a number (an overflow an earlier tgs wrote as `null`) is the
/// day's budget spent.
fn usage_fallback(field: &str, v: &Value, _: &mut Vec<Repair>, _: Option<&str>) -> Option<Value> {
    match field {
        "cost_usd" => Some(Value::from(MAX_COST_USD)),
        "sessions" => Some(count(v)),
        _ => None,
    }
}

/// An archived entry (a line of an archive file) that does not read as
/// one, repaired as a live one is; `None` when it is no entry.
pub fn repair_entry_json(line: &str) -> Option<Entry> {
    let mut items = vec![serde_json::from_str::<Value>(line).ok()?];
    repair_entries(&mut items, &mut Vec::new());
    let mut e: Entry = serde_json::from_value(items.pop()?).ok()?;
    entry_values(&mut e, &mut Vec::new());
    Some(e)
}

/// Make each value of `b` that has the right type but that tgs does not
/// use (see the module's table) a safe one; returns what was changed.
pub fn check_values(b: &mut Backlog) -> Vec<Repair> {
    let mut out = Vec::new();
    for e in &mut b.thoughts {
        entry_values(e, &mut out);
    }
    if let Some(u) = &mut b.usage {
        let mut cost = Some(u.cost_usd);
        bound_cost(&mut cost, None, "usage.cost_usd", &mut out);
        u.cost_usd = cost.unwrap_or(MAX_COST_USD);
        bound_count(&mut u.sessions, None, "usage.sessions", &mut out);
    }
    for (agent, p) in &mut b.pauses {
        let field = |name: &str| format!("pauses.{agent}.{name}");
        bound_count(&mut p.strikes, None, &field("strikes"), &mut out);
        clean(&mut p.kind, false, None, &field("kind"), &mut out);
        clean(&mut p.reason, true, None, &field("reason"), &mut out);
        if let Some(by) = &mut p.by {
            clean(by, false, None, &field("by"), &mut out);
        }
    }
    out
}

fn entry_values(e: &mut Entry, out: &mut Vec<Repair>) {
    let dir = e.dir.clone();
    let dir = Some(dir.as_str());
    bound_cost(&mut e.cost_usd, dir, "cost_usd", out);
    bound_count(&mut e.attempts, dir, "attempts", out);
    bound_count(&mut e.handover_tries, dir, "handover_tries", out);
    clean(&mut e.title, false, dir, "title", out);
    let texts: [(&str, &mut Option<String>, bool); 8] = [
        ("claimed_by", &mut e.claimed_by, false),
        ("agent", &mut e.agent, false),
        ("claim_id", &mut e.claim_id, false),
        ("last_error", &mut e.last_error, true),
        ("branch", &mut e.branch, false),
        ("head", &mut e.head, false),
        ("pr_url", &mut e.pr_url, false),
        ("pr_state", &mut e.pr_state, false),
    ];
    for (field, text, lines) in texts {
        if let Some(t) = text {
            clean(t, lines, dir, field, out);
        }
    }
    if let Some(r) = &mut e.review {
        let mut spent = u32::try_from(r.spent_before).unwrap_or(u32::MAX);
        bound_count(&mut spent, dir, "review.spent_before", out);
        r.spent_before = spent as usize;
    }
}

/// A cost within `0..=MAX_COST_USD`.
fn bound_cost(cost: &mut Option<f64>, dir: Option<&str>, field: &str, out: &mut Vec<Repair>) {
    let Some(c) = *cost else { return };
    let (why, now) = if !c.is_finite() {
        ("is no number", MAX_COST_USD)
    } else if c < 0.0 {
        ("is negative", 0.0)
    } else if c > MAX_COST_USD {
        ("is more than any cost (1e9 USD)", MAX_COST_USD)
    } else {
        return;
    };
    out.push(Repair::set(
        dir,
        field,
        format!("{} {why}", quoted(&Value::from(c))),
        Value::from(now),
    ));
    *cost = Some(now);
}

/// A count within `0..=MAX_COUNT`.
fn bound_count(n: &mut u32, dir: Option<&str>, field: &str, out: &mut Vec<Repair>) {
    if *n > MAX_COUNT {
        out.push(Repair::set(
            dir,
            field,
            format!("{n} is more than any count"),
            MAX_COUNT,
        ));
        *n = MAX_COUNT;
    }
}

/// Text without control characters (but newlines and tabs when `lines`):
/// each one a space. Such text reaches terminals, logs and GitHub.
fn clean(text: &mut String, lines: bool, dir: Option<&str>, field: &str, out: &mut Vec<Repair>) {
    let bad = |c: char| c.is_control() && !(lines && matches!(c, '\n' | '\t'));
    if !text.chars().any(bad) {
        return;
    }
    let fixed: String = text.chars().map(|c| if bad(c) { ' ' } else { c }).collect();
    let why = format!(
        "{} holds control characters",
        quoted(&Value::from(text.as_str()))
    );
    out.push(Repair::set(
        dir,
        field,
        why,
        quoted(&Value::from(fixed.as_str())),
    ));
    *text = fixed;
}

#[cfg(test)]
mod tests {
    use super::super::store::{read_backlog, to_json};
    use super::*;

    /// `{field}: {what it is read as}` for each repair of the file `text`.
    fn repairs(text: &str) -> (Backlog, Vec<String>) {
        let b = read_backlog(text).unwrap();
        let shown = b
            .read_repairs
            .iter()
            .map(|r| format!("{} {}", r.dir.as_deref().unwrap_or("-"), r.done()))
            .collect();
        (b, shown)
    }

    #[test]
    fn each_value_tgs_cannot_use_reads_as_a_safe_one() {
        let text = r#"{"thoughts":[
            {"dir":"t/a","cost_usd":"NaN","added_at":"yesterday","status":"done"},
            {"dir":"t/b","attempts":-1,"handover_tries":1e12,"priority":"high","title":["x"]},
            {"title":"no dir"},
            7,
            {"dir":"t/c","depends_on":["t/a",3],"lease_expires_at":12,"review":{"seen":{"review":-4},"queue":[{"kind":"x"}]}}
        ],
        "usage":{"day":"2026-01-15","sessions":-2,"cost_usd":null},
        "pauses":{"claude":{"kind":"rate_limited","until":"soon","strikes":"many"},"codex":"stop"}}"#;
        let (b, shown) = repairs(text);
        assert_eq!(
            shown,
            [
                "t/a cost_usd removed",
                "t/a added_at removed",
                "t/a status set to \"failed\"",
                "t/b attempts set to 0",
                "t/b handover_tries set to 1000000",
                "t/b priority set to 0",
                "t/b title set to \"\"",
                "- entry 3 removed",
                "- entry 4 removed",
                "t/c depends_on set to [\"t/a\"]",
                "t/c lease_expires_at removed",
                "t/c review.seen removed",
                "t/c review.queue set to []",
                "- pauses.claude.until removed",
                "- pauses.claude.strikes set to 0",
                "- pauses.claude.reason set to \"\"",
                "- pauses.claude.since set to \"1970-01-01T00:00:00Z\"",
                "- pauses.codex set to a pause until a human resumes the agent",
                "- pauses.codex.kind set to \"unavailable\"",
                "- pauses.codex.reason set to \"\"",
                "- pauses.codex.since set to \"1970-01-01T00:00:00Z\"",
                "- usage.sessions set to 0",
                "- usage.cost_usd set to 1000000000.0",
                "- version set to \"1\"",
            ]
        );
        assert_eq!(b.thoughts.len(), 3);
        assert_eq!(b.thoughts[0].status, Status::Failed);
        assert_eq!(b.usage.as_ref().unwrap().cost_usd, MAX_COST_USD);
        assert_eq!(
            b.pauses["codex"].until, None,
            "paused until a human resumes it"
        );
        // Written, the file reads back as it is.
        let again = read_backlog(&to_json(&b)).unwrap();
        assert!(again.read_repairs.is_empty(), "{:?}", again.read_repairs);
    }

    #[test]
    fn values_out_of_bounds_are_bounded_and_text_loses_control_characters() {
        let text = r#"{"version":"1","thoughts":[
            {"dir":"t/a","title":"x\u001b]52;c;aGk=\u0007y","cost_usd":-5,"attempts":4294967295,
             "last_error":"one\ntwo\r\u001b[2K","claimed_by":"w\nx"},
            {"dir":"t/b","cost_usd":1e300}
        ],"usage":{"day":"d","sessions":4000000000,"cost_usd":1.7976931348623157e308}}"#;
        let (mut b, shown) = repairs(text);
        assert_eq!(
            shown,
            [
                "t/a cost_usd set to 0.0",
                "t/a attempts set to 1000000",
                "t/a title set to \"x ]52;c;aGk= y\"",
                "t/a claimed_by set to \"w x\"",
                "t/a last_error set to \"one\\ntwo  [2K\"",
                "t/b cost_usd set to 1000000000.0",
                "- usage.cost_usd set to 1000000000.0",
                "- usage.sessions set to 1000000",
            ]
        );
        let problem = b.read_repairs[0].message();
        assert_eq!(problem, "cost_usd -5.0 is negative: --fix sets it to 0.0");
        // What a change writes is checked again: a sum gone out of bounds
        // is written bounded.
        b.thoughts[1].cost_usd = Some(f64::INFINITY);
        assert_eq!(check_values(&mut b).len(), 1);
        let again = read_backlog(&to_json(&b)).unwrap();
        assert!(again.read_repairs.is_empty(), "{:?}", again.read_repairs);
    }

    #[test]
    fn a_file_not_shaped_as_a_backlog_stays_an_error() {
        for text in [
            r#"{"version":"1","thoughts":{"dir":"t/a"}}"#,
            r#"[]"#,
            r#"{"version":"1","thoughts":[{"dir":"t/a"}],"#,
        ] {
            assert!(read_backlog(text).is_err(), "{text}");
        }
        let e = repair_entry_json(r#"{"dir":"t/a","status":"gone","cost_usd":-1}"#).unwrap();
        assert_eq!((e.status, e.cost_usd), (Status::Failed, Some(0.0)));
        assert!(repair_entry_json(r#"{"title":"x"}"#).is_none());
    }

    /// Any JSON value in any field tgs knows: the file reads, and what is
    /// written of it reads back as it is, with nothing left to repair.
    mod any_value {
        use super::*;
        use proptest::prelude::*;

        const FIELDS: &[&str] = &[
            "title",
            "priority",
            "status",
            "added_at",
            "started_at",
            "claimed_by",
            "lease_expires_at",
            "agent",
            "cost_usd",
            "claim_id",
            "attempts",
            "not_before",
            "last_error",
            "handover_tries",
            "pr_url",
            "depends_on",
            "review",
        ];

        fn value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<f64>()
                    .prop_filter("JSON", |f| f.is_finite())
                    .prop_map(Value::from),
                "[a-z\\x00-\\x1f:]{0,8}".prop_map(Value::from),
                Just(Value::from("2026-01-15T12:00:00Z")),
                Just(Value::from("queued")),
            ];
            leaf.prop_recursive(2, 8, 3, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                    proptest::collection::btree_map("[a-z]{1,6}", inner, 0..3)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #[test]
            fn what_is_written_reads_back_as_it_is(
                fields in proptest::collection::vec((0..FIELDS.len(), value()), 0..6),
                usage in value(),
                pauses in value(),
            ) {
                let mut entry = Map::new();
                entry.insert("dir".into(), "t/a".into());
                for (i, v) in fields {
                    entry.insert(FIELDS[i].into(), v);
                }
                let file = serde_json::json!({
                    "version": "1", "thoughts": [entry], "usage": usage, "pauses": pauses,
                });
                let b = read_backlog(&file.to_string()).unwrap();
                let written = to_json(&b);
                let again = read_backlog(&written).unwrap();
                prop_assert!(again.read_repairs.is_empty(), "{:?}", again.read_repairs);
                prop_assert_eq!(to_json(&again), written);
            }
        }
    }
}
