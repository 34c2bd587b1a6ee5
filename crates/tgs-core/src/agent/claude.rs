//! Claude Code's `--output-format stream-json --verbose` output, parsed one
//! line at a time into live progress and the session's final result.
//!
//! Pure: no I/O, no printing. The format is not versioned and grows with
//! every release, so every field is optional, unknown fields and events are
//! ignored, a field of the wrong type reads as absent, and no input panics.
//! The small text helpers at the bottom are shared with [`super::codex`].

use serde::Serialize;
use serde_json::Value;

/// The longest `last_action`, in characters: it is shown on a status line.
pub const MAX_ACTION: usize = 80;
/// The longest final text kept in [`ClaudeResult::result`], in characters.
pub const MAX_RESULT: usize = 2000;
/// Enough for any real id, model name or subtype; guards against junk.
const MAX_IDENT: usize = 200;
/// A malformed result could list denials without end; the names are for a
/// message, so a few hundred are plenty.
const MAX_DENIALS: usize = 256;
/// Tools whose denial means the session could not change anything.
const WRITE_TOOLS: [&str; 5] = ["Write", "Edit", "MultiEdit", "Bash", "NotebookEdit"];

/// The final `result` event of a Claude Code session.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClaudeResult {
    pub subtype: String,
    pub is_error: bool,
    pub api_error_status: Option<u16>,
    pub num_turns: u32,
    pub duration_ms: u64,
    pub total_cost_usd: Option<f64>,
    /// `usage.input_tokens` + `cache_creation_input_tokens` +
    /// `cache_read_input_tokens`: with prompt caching the first alone is tiny.
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub session_id: Option<String>,
    /// Names of the tools whose use was denied (from
    /// `permission_denials[].tool_name`), one per denial.
    pub permission_denials: Vec<String>,
    /// The final text, bounded to [`MAX_RESULT`] chars.
    pub result: Option<String>,
}

impl ClaudeResult {
    /// Read a `result` event; `None` when it is not one.
    pub fn from_event(event: &Value) -> Option<ClaudeResult> {
        if str_at(event, "type") != Some("result") {
            return None;
        }
        let usage = event.get("usage").unwrap_or(&Value::Null);
        let input_tokens = [
            "input_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        ]
        .iter()
        .fold(0u64, |sum, k| sum.saturating_add(u64_at(usage, k)));
        let permission_denials = event
            .get("permission_denials")
            .and_then(Value::as_array)
            .map(|denials| {
                denials
                    .iter()
                    .filter_map(|d| match d {
                        Value::String(s) => Some(s.as_str()),
                        _ => str_at(d, "tool_name"),
                    })
                    .map(|name| first_line(name, MAX_IDENT))
                    .filter(|name| !name.is_empty())
                    .take(MAX_DENIALS)
                    .collect()
            })
            .unwrap_or_default();
        Some(ClaudeResult {
            subtype: str_at(event, "subtype")
                .map(|s| first_line(s, MAX_IDENT))
                .unwrap_or_default(),
            is_error: event
                .get("is_error")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            api_error_status: event.get("api_error_status").and_then(status_code),
            num_turns: u32::try_from(u64_at(event, "num_turns")).unwrap_or(u32::MAX),
            duration_ms: u64_at(event, "duration_ms"),
            total_cost_usd: event
                .get("total_cost_usd")
                .and_then(Value::as_f64)
                .filter(|c| c.is_finite()),
            input_tokens,
            output_tokens: u64_at(usage, "output_tokens"),
            session_id: ident_at(event, "session_id"),
            permission_denials,
            result: str_at(event, "result").map(|t| bounded_text(t, MAX_RESULT)),
        })
    }
}

/// Live progress of a session, fed one output line at a time.
#[derive(Debug, Clone, Default)]
pub struct ClaudeProgress {
    pub session_id: Option<String>,
    pub model: Option<String>,
    /// Assistant messages seen so far (a proxy for turns while running).
    pub turns: u32,
    /// The latest action, e.g. "Edit src/lib.rs", "Bash: cargo test",
    /// "thinking": single line, at most [`MAX_ACTION`] chars.
    pub last_action: Option<String>,
    pub api_retries: u32,
    pub result: Option<ClaudeResult>,
    /// From `system/init`: file paths under it are shown relative to it.
    cwd: Option<String>,
    /// Claude Code emits one `assistant` event per content block, all with
    /// the same message id, so turns are counted on a change of id.
    last_message_id: Option<String>,
}

impl ClaudeProgress {
    /// Observe one line of `--output-format stream-json` output. Lines that
    /// are not JSON, or JSON of unknown shape, are ignored (return false);
    /// return true when something changed.
    pub fn observe(&mut self, line: &str) -> bool {
        let Some(event) = parse_object(line) else {
            return false;
        };
        let kind = str_at(&event, "type");
        if !matches!(kind, Some("system" | "assistant" | "user" | "result")) {
            return false;
        }
        let mut changed = set(&mut self.session_id, ident_at(&event, "session_id"));
        match kind {
            Some("system") => changed |= self.observe_system(&event),
            Some("assistant") => changed |= self.observe_assistant(&event),
            Some("result") => {
                // A second result (not seen in practice) replaces the first:
                // the last word on the session is the one to judge.
                self.result = ClaudeResult::from_event(&event);
                changed = true;
            }
            // Tool results carry nothing shown while running.
            _ => {}
        }
        changed
    }

    fn observe_system(&mut self, event: &Value) -> bool {
        match str_at(event, "subtype") {
            Some("init") => {
                let mut changed = set(&mut self.model, ident_at(event, "model"));
                changed |= set(&mut self.cwd, str_at(event, "cwd").map(str::to_owned));
                changed
            }
            Some("api_retry") => {
                self.api_retries = self.api_retries.saturating_add(1);
                true
            }
            _ => false,
        }
    }

    fn observe_assistant(&mut self, event: &Value) -> bool {
        let message = event.get("message").unwrap_or(&Value::Null);
        let mut changed = false;
        if self.model.is_none() {
            changed |= set(&mut self.model, ident_at(message, "model"));
        }
        // A subagent's messages (under a Task tool use) show as activity but
        // are not turns of this session.
        let subagent = event
            .get("parent_tool_use_id")
            .is_some_and(|p| !p.is_null());
        if !subagent {
            let id = ident_at(message, "id");
            if id.is_none() || id != self.last_message_id {
                self.turns = self.turns.saturating_add(1);
                changed = true;
            }
            self.last_message_id = id;
        }
        let blocks = message
            .get("content")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let action = latest_action(blocks, self.cwd.as_deref());
        changed | set(&mut self.last_action, action)
    }

    /// Whether the session's result says it failed: no result event,
    /// `is_error` (or an `error_*` subtype, which some versions report with
    /// `is_error` false), or, when `writes_expected`, denied use of
    /// Write/Edit/MultiEdit/Bash/NotebookEdit (print mode denies those yet
    /// exits 0: a session that did nothing). Returns a short reason.
    pub fn failure(&self, writes_expected: bool) -> Option<String> {
        let Some(r) = &self.result else {
            return Some("no result event: the session ended before finishing".to_owned());
        };
        if r.is_error || r.subtype.starts_with("error") {
            let what = match (r.api_error_status, r.subtype.as_str()) {
                (Some(status), _) => format!("API error {status}"),
                (None, "error_max_turns") => {
                    format!("reached the turn limit ({} turns)", r.num_turns)
                }
                (None, "error_during_execution") => "error during execution".to_owned(),
                (None, "success" | "") => "the session reported an error".to_owned(),
                (None, other) => format!("the session ended with {other}"),
            };
            let detail = r
                .result
                .as_deref()
                .map(|t| flat_line(t, 160))
                .filter(|d| !d.is_empty());
            return Some(match detail {
                Some(d) => format!("{what}: {d}"),
                None => what,
            });
        }
        if writes_expected {
            let mut blocked: Vec<&str> = Vec::new();
            for name in &r.permission_denials {
                if WRITE_TOOLS.contains(&name.as_str()) && !blocked.contains(&name.as_str()) {
                    blocked.push(name);
                }
            }
            if !blocked.is_empty() {
                return Some(format!(
                    "permission denied for {}: the session could not make its changes",
                    blocked.join(", ")
                ));
            }
        }
        None
    }
}

/// The action an assistant message shows: its last tool use, else the first
/// line of its text, else "thinking" for a thinking block.
fn latest_action(blocks: &[Value], cwd: Option<&str>) -> Option<String> {
    if let Some(tool) = blocks
        .iter()
        .rev()
        .find(|b| str_at(b, "type") == Some("tool_use"))
    {
        let name = str_at(tool, "name").unwrap_or("tool");
        return Some(tool_action(
            name,
            tool.get("input").unwrap_or(&Value::Null),
            cwd,
        ));
    }
    let text = blocks
        .iter()
        .filter(|b| str_at(b, "type") == Some("text"))
        .filter_map(|b| str_at(b, "text"))
        .map(|t| first_line(t, MAX_ACTION))
        .find(|t| !t.is_empty());
    if text.is_some() {
        return text;
    }
    blocks
        .iter()
        .any(|b| matches!(str_at(b, "type"), Some("thinking" | "redacted_thinking")))
        .then(|| "thinking".to_owned())
}

/// "Edit src/lib.rs", "Bash: cargo test", "Grep: fn main": the tool's name
/// and its most telling input. Paths come first (Read, Edit, Write); then
/// free text (command, pattern, ...) ahead of a directory path, which says
/// less (Grep and Glob take both).
pub(super) fn tool_action(name: &str, input: &Value, cwd: Option<&str>) -> String {
    let name = first_line(name, MAX_ACTION);
    let name = if name.is_empty() {
        "tool".to_owned()
    } else {
        name
    };
    let non_blank = |key: &str| str_at(input, key).filter(|v| !v.trim().is_empty());
    if let Some(p) = ["file_path", "notebook_path"]
        .into_iter()
        .find_map(non_blank)
    {
        return labelled(&name, " ", &relative(p, cwd), "", true);
    }
    let text_keys = [
        "command",
        "pattern",
        "url",
        "query",
        "description",
        "prompt",
    ];
    if let Some(v) = text_keys.into_iter().find_map(non_blank) {
        return labelled(&name, ": ", v, "", false);
    }
    if let Some(p) = non_blank("path") {
        return labelled(&name, " ", &relative(p, cwd), "", true);
    }
    name
}

fn relative(path: &str, cwd: Option<&str>) -> String {
    let Some(cwd) = cwd
        .map(|c| c.trim_end_matches('/'))
        .filter(|c| !c.is_empty())
    else {
        return path.to_owned();
    };
    match path.strip_prefix(cwd) {
        Some("" | "/") => ".".to_owned(),
        Some(rest) if rest.starts_with('/') => rest.trim_start_matches('/').to_owned(),
        _ => path.to_owned(),
    }
}

// ---- Shared helpers (also used by `codex`) --------------------------------

/// Parse a line that should hold one JSON object; anything else is `None`.
pub(super) fn parse_object(line: &str) -> Option<Value> {
    let line = line.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    // Agents print the odd plain-text line; skip those without parsing.
    if !line.starts_with('{') {
        return None;
    }
    // serde_json bounds nesting depth, so hostile input cannot overflow the stack.
    serde_json::from_str::<Value>(line)
        .ok()
        .filter(Value::is_object)
}

pub(super) fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// A count: non-negative integers, or floats (some encoders write `3.0`);
/// anything else is 0.
pub(super) fn u64_at(v: &Value, key: &str) -> u64 {
    match v.get(key) {
        Some(Value::Number(n)) => n.as_u64().unwrap_or_else(|| {
            // `as` saturates: huge floats give u64::MAX, negatives and NaN 0.
            n.as_f64().filter(|f| *f > 0.0).map_or(0, |f| f as u64)
        }),
        _ => 0,
    }
}

/// An HTTP status, as a number or a numeric string.
fn status_code(v: &Value) -> Option<u16> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An id or name: single line, bounded, absent when blank.
pub(super) fn ident_at(v: &Value, key: &str) -> Option<String> {
    str_at(v, key)
        .map(|s| first_line(s, MAX_IDENT))
        .filter(|s| !s.is_empty())
}

/// Store `new` when it is present and differs; report whether it did.
pub(super) fn set(slot: &mut Option<String>, new: Option<String>) -> bool {
    match new {
        Some(n) if slot.as_deref() != Some(n.as_str()) => {
            *slot = Some(n);
            true
        }
        _ => false,
    }
}

/// `label` + `sep` + `value` + `suffix`, within [`MAX_ACTION`] chars. A
/// path too long keeps its end (the file name); other text keeps its start.
pub(super) fn labelled(label: &str, sep: &str, value: &str, suffix: &str, is_path: bool) -> String {
    let used = label.chars().count() + sep.chars().count() + suffix.chars().count();
    let room = MAX_ACTION.saturating_sub(used).max(16);
    let value = if is_path {
        let clean = first_line(value, 4096);
        let n = clean.chars().count();
        if n > room {
            let tail: String = clean.chars().skip(n - (room - 1)).collect();
            format!("…{tail}")
        } else {
            clean
        }
    } else {
        first_line(value, room)
    };
    first_line(&format!("{label}{sep}{value}{suffix}"), MAX_ACTION)
}

/// The first non-blank line of `text`, made safe for a status line: control
/// and invisible formatting characters (which could rewrite the terminal or
/// hide text) become spaces, runs of spaces collapse, and at most `max`
/// chars are kept, ending in "…" when anything was cut, including further
/// lines.
pub(super) fn first_line(text: &str, max: usize) -> String {
    clean_line(text, max, true)
}

/// Like [`first_line`] but with every line joined: for error messages,
/// whose later lines often say what went wrong.
pub(super) fn flat_line(text: &str, max: usize) -> String {
    clean_line(text, max, false)
}

fn clean_line(text: &str, max: usize, stop_at_break: bool) -> String {
    if max == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut n = 0usize;
    let mut gap = false;
    let mut cut = false;
    let mut more_lines = false;
    let mut chars = text.trim_start_matches(is_blank).chars();
    while let Some(c) = chars.next() {
        if stop_at_break && is_line_break(c) {
            more_lines = !chars.as_str().trim_start_matches(is_blank).is_empty();
            break;
        }
        if is_blank(c) {
            gap = true;
            continue;
        }
        if gap && n > 0 {
            out.push(' ');
            n += 1;
        }
        gap = false;
        out.push(c);
        n += 1;
        if n > max {
            cut = true;
            break;
        }
    }
    if more_lines && n + 2 <= max {
        // The whole first line fits: mark that more followed, apart from it.
        out.push_str(" …");
    } else if cut || more_lines {
        // Keep max - 1 chars and mark the cut.
        let end = out
            .char_indices()
            .nth(max - 1)
            .map_or(out.len(), |(i, _)| i);
        out.truncate(end);
        out.truncate(out.trim_end().len());
        out.push('…');
    }
    out
}

/// Multi-line text (the final answer) bounded to `max` chars: newlines and
/// tabs kept, other control characters dropped (`\r\n` becomes `\n`).
pub(super) fn bounded_text(text: &str, max: usize) -> String {
    if max == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut n = 0usize;
    for c in text.chars() {
        if (c.is_control() && c != '\n' && c != '\t') || is_invisible(c) {
            continue;
        }
        if n == max {
            // Replace the last kept char with the mark, staying within max.
            out.pop();
            out.push('…');
            return out;
        }
        out.push(c);
        n += 1;
    }
    out
}

fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r' | '\u{0b}' | '\u{0c}' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

fn is_blank(c: char) -> bool {
    c.is_whitespace() || c.is_control() || is_invisible(c)
}

/// Zero-width and bidirectional formatting characters.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}'
    )
}

/// Generators of JSON-ish lines for the never-panics properties of both
/// parsers: mostly objects with a known event type and fields drawn from the
/// names the parsers read, holding values of any type, so that lookups hit
/// wrong types, nulls and nesting; some cut short; some arbitrary text.
#[cfg(test)]
pub(super) mod fuzz {
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    const WORDS: &[&str] = &[
        "system",
        "init",
        "api_retry",
        "assistant",
        "user",
        "result",
        "success",
        "error_max_turns",
        "error_during_execution",
        "tool_use",
        "text",
        "thinking",
        "tool_result",
        "Write",
        "Edit",
        "Bash",
        "Read",
        "thread.started",
        "turn.started",
        "turn.completed",
        "turn.failed",
        "item.started",
        "item.updated",
        "item.completed",
        "error",
        "command_execution",
        "agent_message",
        "file_change",
        "reasoning",
        "todo_list",
        "mcp_tool_call",
        "web_search",
        "add",
        "update",
        "delete",
        "bash -lc 'ls'",
        "bash -lc '",
        "/work/proj",
        "/work/proj/src/lib.rs",
        "",
        " \n ",
        "\u{1b}[31m\n\r",
        "\u{202e}x",
    ];
    const KEYS: &[&str] = &[
        "type",
        "subtype",
        "session_id",
        "model",
        "cwd",
        "message",
        "id",
        "content",
        "name",
        "input",
        "file_path",
        "notebook_path",
        "path",
        "command",
        "pattern",
        "url",
        "query",
        "text",
        "result",
        "is_error",
        "api_error_status",
        "num_turns",
        "duration_ms",
        "total_cost_usd",
        "usage",
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "permission_denials",
        "tool_name",
        "parent_tool_use_id",
        "thread_id",
        "item",
        "changes",
        "kind",
        "status",
        "exit_code",
        "items",
        "completed",
        "error",
        "server",
        "tool",
        "cached_input_tokens",
    ];

    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => proptest::sample::select(WORDS).prop_map(str::to_owned),
            1 => any::<String>(),
        ]
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => proptest::sample::select(KEYS).prop_map(str::to_owned),
            1 => any::<String>(),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            word().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((key(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
            ]
        })
    }

    fn event() -> impl Strategy<Value = String> {
        (
            word(),
            word(),
            proptest::collection::vec((key(), value()), 0..8),
        )
            .prop_map(|(kind, subtype, fields)| {
                let mut m = Map::new();
                m.insert("type".into(), Value::String(kind));
                m.insert("subtype".into(), Value::String(subtype));
                m.extend(fields);
                Value::Object(m).to_string()
            })
    }

    /// A content block or thread item: a typed object with random fields.
    fn block() -> impl Strategy<Value = Value> {
        (word(), proptest::collection::vec((key(), value()), 0..6)).prop_map(|(kind, fields)| {
            let mut m = Map::new();
            m.insert("type".into(), Value::String(kind));
            m.extend(fields);
            Value::Object(m)
        })
    }

    /// The nested shapes random fields rarely reach: assistant messages
    /// with content blocks, and Codex items.
    fn nested() -> impl Strategy<Value = String> {
        let blocks = proptest::collection::vec(block(), 0..5);
        prop_oneof![
            (word(), blocks, value()).prop_map(|(id, content, parent)| {
                serde_json::json!({"type": "assistant", "parent_tool_use_id": parent,
                    "message": {"id": id, "content": content}})
                .to_string()
            }),
            (word(), block()).prop_map(|(kind, item)| {
                serde_json::json!({"type": kind, "item": item}).to_string()
            }),
        ]
    }

    pub fn line() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => event(),
            3 => nested(),
            1 => (event(), any::<proptest::sample::Index>()).prop_map(|(s, i)| {
                let mut cut = i.index(s.len() + 1);
                while !s.is_char_boundary(cut) {
                    cut -= 1;
                }
                s[..cut].to_owned()
            }),
            1 => any::<String>(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const INIT: &str = r#"{"type":"system","subtype":"init","cwd":"/work/proj","session_id":"3f2a9c40-7b18-4c6d-9e51-8a2b1d4f0c73","tools":["Task","Bash","Glob","Grep","Read","Edit","Write"],"mcp_servers":[],"model":"claude-sonnet-4-5-20250929","permissionMode":"default","slash_commands":["compact"],"apiKeySource":"ANTHROPIC_API_KEY","claude_code_version":"2.1.197","output_style":"default","agents":[],"skills":[],"plugins":[],"uuid":"0b1c"}"#;
    const TEXT: &str = r#"{"type":"assistant","message":{"model":"claude-sonnet-4-5-20250929","id":"msg_01A","type":"message","role":"assistant","content":[{"type":"text","text":"\n\nI'll look at the parser first.\nThen fix it."}],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":3,"cache_creation_input_tokens":5000,"cache_read_input_tokens":0,"output_tokens":2,"service_tier":"standard"},"context_management":null},"parent_tool_use_id":null,"session_id":"3f2a9c40-7b18-4c6d-9e51-8a2b1d4f0c73","uuid":"a1"}"#;
    // The same API message continues with a tool use, as a separate event.
    const EDIT: &str = r#"{"type":"assistant","message":{"model":"claude-sonnet-4-5-20250929","id":"msg_01A","type":"message","role":"assistant","content":[{"type":"tool_use","id":"toolu_01","name":"Edit","input":{"file_path":"/work/proj/src/lib.rs","old_string":"a","new_string":"b"}}],"stop_reason":null,"usage":{"input_tokens":3,"output_tokens":120}},"parent_tool_use_id":null,"session_id":"3f2a9c40-7b18-4c6d-9e51-8a2b1d4f0c73","uuid":"a2"}"#;
    const BASH: &str = r#"{"type":"assistant","message":{"id":"msg_01B","type":"message","role":"assistant","content":[{"type":"text","text":"Now the tests."},{"type":"tool_use","id":"toolu_02","name":"Bash","input":{"command":"cargo test -p tgs-core\n  --quiet","description":"Run the tests"}}]},"parent_tool_use_id":null,"session_id":"3f2a9c40-7b18-4c6d-9e51-8a2b1d4f0c73"}"#;
    const TOOL_RESULT: &str = r#"{"type":"user","message":{"role":"user","content":[{"tool_use_id":"toolu_02","type":"tool_result","content":"test result: ok. 12 passed","is_error":false}]},"parent_tool_use_id":null,"session_id":"3f2a9c40-7b18-4c6d-9e51-8a2b1d4f0c73","uuid":"u1","tool_use_result":{"stdout":"ok","stderr":"","interrupted":false}}"#;
    const RETRY: &str = r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":10,"retry_delay_ms":600,"error_status":529,"error":"overloaded","session_id":"3f2a9c40-7b18-4c6d-9e51-8a2b1d4f0c73","uuid":"r1"}"#;
    const SUCCESS: &str = r#"{"type":"result","subtype":"success","is_error":false,"duration_ms":84213,"duration_api_ms":71920,"num_turns":7,"result":"Fixed the parser.\r\nAll tests pass.","session_id":"3f2a9c40-7b18-4c6d-9e51-8a2b1d4f0c73","total_cost_usd":0.1834,"usage":{"input_tokens":21,"cache_creation_input_tokens":12000,"cache_read_input_tokens":80000,"output_tokens":2400,"server_tool_use":{"web_search_requests":0},"service_tier":"standard"},"modelUsage":{"claude-sonnet-4-5-20250929":{"inputTokens":21,"outputTokens":2400,"costUSD":0.1834}},"permission_denials":[],"uuid":"z1"}"#;
    const API_ERROR: &str = r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":529,"duration_ms":75012,"duration_api_ms":0,"num_turns":1,"result":"API Error: 529 {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}","session_id":"3f2a","total_cost_usd":0,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0},"modelUsage":{},"permission_denials":[],"uuid":"z2"}"#;
    const DENIED: &str = r#"{"type":"result","subtype":"success","is_error":false,"duration_ms":9000,"num_turns":4,"result":"I need permission to write the file.","session_id":"3f2a","total_cost_usd":0.02,"usage":{"input_tokens":10,"output_tokens":300},"permission_denials":[{"tool_name":"Write","tool_use_id":"toolu_03","tool_input":{"file_path":"/work/proj/README.md","content":"x"}},{"tool_name":"Bash","tool_use_id":"toolu_04","tool_input":{"command":"cargo fmt"}},{"tool_name":"Write","tool_use_id":"toolu_05","tool_input":{"file_path":"/work/proj/b.md"}}]}"#;
    const MAX_TURNS: &str = r#"{"type":"result","subtype":"error_max_turns","is_error":false,"duration_ms":30000,"duration_api_ms":28000,"num_turns":3,"session_id":"3f2a","total_cost_usd":0.05,"usage":{"input_tokens":100,"output_tokens":50},"permission_denials":[]}"#;

    fn fed(lines: &[&str]) -> ClaudeProgress {
        let mut p = ClaudeProgress::default();
        for l in lines {
            p.observe(l);
        }
        p
    }

    #[test]
    fn init_sets_session_and_model() {
        let mut p = ClaudeProgress::default();
        assert!(p.observe(INIT));
        assert_eq!(
            p.session_id.as_deref(),
            Some("3f2a9c40-7b18-4c6d-9e51-8a2b1d4f0c73")
        );
        assert_eq!(p.model.as_deref(), Some("claude-sonnet-4-5-20250929"));
        assert_eq!(p.turns, 0);
        assert!(!p.observe(INIT), "nothing new the second time");
    }

    #[test]
    fn assistant_text_then_tool_use_of_one_message_is_one_turn() {
        let mut p = fed(&[INIT]);
        assert!(p.observe(TEXT));
        assert_eq!(p.turns, 1);
        assert_eq!(
            p.last_action.as_deref(),
            Some("I'll look at the parser first. …")
        );
        assert!(p.observe(EDIT));
        assert_eq!(p.turns, 1, "same message id");
        assert_eq!(p.last_action.as_deref(), Some("Edit src/lib.rs"));
        assert!(p.observe(BASH));
        assert_eq!(p.turns, 2);
        // The tool use wins over the text; only the command's first line.
        assert_eq!(
            p.last_action.as_deref(),
            Some("Bash: cargo test -p tgs-core …")
        );
    }

    #[test]
    fn tool_actions_pick_the_telling_input() {
        let cwd = Some("/work/proj");
        let act =
            |name: &str, input: &str| tool_action(name, &serde_json::from_str(input).unwrap(), cwd);
        assert_eq!(
            act(
                "Write",
                r#"{"file_path":"/work/proj/README.md","content":"x"}"#
            ),
            "Write README.md"
        );
        assert_eq!(
            act("Read", r#"{"file_path":"/etc/hosts"}"#),
            "Read /etc/hosts"
        );
        assert_eq!(
            act("Read", r#"{"file_path":"/work/project/a"}"#),
            "Read /work/project/a"
        );
        assert_eq!(
            act("Grep", r#"{"pattern":"fn main","path":"/work/proj/src"}"#),
            "Grep: fn main"
        );
        assert_eq!(act("Glob", r#"{"path":"/work/proj/src"}"#), "Glob src");
        assert_eq!(
            act("WebFetch", r#"{"url":"https://example.com","prompt":"x"}"#),
            "WebFetch: https://example.com"
        );
        assert_eq!(act("TodoWrite", r#"{"todos":[]}"#), "TodoWrite");
        assert_eq!(act("", "null"), "tool");
        let long = format!(
            r#"{{"file_path":"/work/proj/{}/main.rs"}}"#,
            "d".repeat(200)
        );
        let a = act("Edit", &long);
        assert_eq!(a.chars().count(), MAX_ACTION);
        assert!(a.starts_with("Edit …") && a.ends_with("d/main.rs"), "{a}");
    }

    #[test]
    fn thinking_only_message() {
        let p = fed(&[
            r#"{"type":"assistant","message":{"id":"m1","content":[{"type":"thinking","thinking":"hmm","signature":"s"}]}}"#,
        ]);
        assert_eq!(p.last_action.as_deref(), Some("thinking"));
        assert_eq!(p.turns, 1);
    }

    #[test]
    fn subagent_messages_show_but_do_not_count() {
        let mut p = fed(&[INIT, BASH]);
        assert!(p.observe(
            r#"{"type":"assistant","message":{"id":"m9","content":[{"type":"tool_use","id":"t","name":"Read","input":{"file_path":"/work/proj/src/main.rs"}}]},"parent_tool_use_id":"toolu_99"}"#
        ));
        assert_eq!(p.turns, 1);
        assert_eq!(p.last_action.as_deref(), Some("Read src/main.rs"));
    }

    #[test]
    fn tool_result_changes_nothing() {
        let mut p = fed(&[INIT, BASH]);
        let before = format!("{p:?}");
        assert!(!p.observe(TOOL_RESULT));
        assert_eq!(format!("{p:?}"), before);
    }

    #[test]
    fn api_retries_are_counted() {
        let mut p = fed(&[INIT]);
        assert!(p.observe(RETRY));
        assert!(p.observe(RETRY));
        assert_eq!(p.api_retries, 2);
    }

    #[test]
    fn success_result() {
        let mut p = fed(&[INIT, TEXT, EDIT, BASH, TOOL_RESULT]);
        assert_eq!(
            p.failure(true).as_deref(),
            Some("no result event: the session ended before finishing")
        );
        assert!(p.observe(SUCCESS));
        let r = p.result.clone().unwrap();
        assert_eq!(
            r,
            ClaudeResult {
                subtype: "success".into(),
                is_error: false,
                api_error_status: None,
                num_turns: 7,
                duration_ms: 84213,
                total_cost_usd: Some(0.1834),
                input_tokens: 92021,
                output_tokens: 2400,
                session_id: Some("3f2a9c40-7b18-4c6d-9e51-8a2b1d4f0c73".into()),
                permission_denials: vec![],
                result: Some("Fixed the parser.\nAll tests pass.".into()),
            }
        );
        assert_eq!(p.failure(true), None);
        assert_eq!(p.failure(false), None);
        // It serializes for reports.
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["input_tokens"], 92021);
    }

    #[test]
    fn api_error_with_success_subtype_is_a_failure() {
        let p = fed(&[INIT, RETRY, API_ERROR]);
        let r = p.result.as_ref().unwrap();
        assert_eq!(r.subtype, "success");
        assert!(r.is_error);
        assert_eq!(r.api_error_status, Some(529));
        assert_eq!(r.total_cost_usd, Some(0.0));
        let why = p.failure(false).unwrap();
        assert!(why.starts_with("API error 529: API Error: 529 {"), "{why}");
        assert!(why.chars().count() < 200);
    }

    #[test]
    fn permission_denials_fail_only_when_writes_are_expected() {
        let p = fed(&[INIT, DENIED]);
        let r = p.result.as_ref().unwrap();
        assert_eq!(r.permission_denials, ["Write", "Bash", "Write"]);
        assert_eq!(
            p.failure(true).as_deref(),
            Some("permission denied for Write, Bash: the session could not make its changes")
        );
        assert_eq!(p.failure(false), None);
        // A denied read-only tool does not block writing.
        let p = fed(&[
            r#"{"type":"result","subtype":"success","is_error":false,"permission_denials":[{"tool_name":"WebFetch"}]}"#,
        ]);
        assert_eq!(p.failure(true), None);
    }

    #[test]
    fn max_turns_is_a_failure_even_without_is_error() {
        let p = fed(&[INIT, MAX_TURNS]);
        assert_eq!(p.result.as_ref().unwrap().subtype, "error_max_turns");
        assert_eq!(
            p.failure(false).as_deref(),
            Some("reached the turn limit (3 turns)")
        );
        let p = fed(&[r#"{"type":"result","subtype":"error_during_execution","is_error":true}"#]);
        assert_eq!(p.failure(false).as_deref(), Some("error during execution"));
    }

    #[test]
    fn missing_and_mistyped_fields_default() {
        let p = fed(&[r#"{"type":"result"}"#]);
        assert_eq!(p.result, Some(ClaudeResult::default()));
        assert_eq!(p.failure(true), None);
        let p = fed(&[
            r#"{"type":"result","num_turns":-3,"duration_ms":1.5e300,"api_error_status":"503","total_cost_usd":"x","usage":[1],"permission_denials":{"a":1},"is_error":"yes","session_id":7}"#,
        ]);
        let r = p.result.unwrap();
        assert_eq!(
            (r.num_turns, r.duration_ms, r.api_error_status),
            (0, u64::MAX, Some(503))
        );
        assert_eq!(
            (r.total_cost_usd, r.is_error, r.session_id),
            (None, false, None)
        );
        let p = fed(&[r#"{"type":"result","num_turns":99999999999}"#]);
        assert_eq!(p.result.unwrap().num_turns, u32::MAX);
    }

    #[test]
    fn junk_is_ignored() {
        let mut p = ClaudeProgress::default();
        for line in [
            "",
            "   ",
            "not json",
            "{",
            "[1,2]",
            "\"result\"",
            r#"{"type":"stream_event","event":{"type":"content_block_delta"}}"#,
            r#"{"type":"something_new","session_id":"x"}"#,
            r#"{"type":"system","subtype":"hook_response"}"#,
            r#"{"no_type":true}"#,
        ] {
            assert!(!p.observe(line), "{line:?}");
        }
        assert!(format!("{p:?}").contains("session_id: None"));
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(!p.observe(&deep));
    }

    #[test]
    fn last_action_is_sanitized_and_bounded() {
        let long = "x".repeat(10_000);
        let line = serde_json::json!({"type":"assistant","message":{"content":[
            {"type":"text","text":format!("\u{1b}[2J\u{202e}evil\ttext {long}")}]}})
        .to_string();
        let p = fed(&[line.as_str()]);
        let a = p.last_action.unwrap();
        assert!(a.starts_with("[2J evil text xxx"), "{a}");
        assert_eq!(a.chars().count(), MAX_ACTION);
        assert!(a.ends_with('…'));
        assert!(!a.chars().any(|c| c.is_control()));
        let huge = serde_json::json!({"type":"result","result":long}).to_string();
        let p = fed(&[huge.as_str()]);
        let r = p.result.unwrap().result.unwrap();
        assert_eq!(r.chars().count(), MAX_RESULT);
        assert!(r.ends_with('…'));
    }

    #[test]
    fn line_helpers() {
        assert_eq!(first_line("  \n\n a  b \n c", 80), "a b …");
        assert_eq!(first_line("abc\nd", 4), "abc…");
        assert_eq!(first_line("abc\nd", 5), "abc …");
        assert_eq!(first_line("abc", 3), "abc");
        assert_eq!(first_line("abcd", 3), "ab…");
        assert_eq!(first_line("abc \n \t", 80), "abc");
        assert_eq!(first_line("anything", 0), "");
        assert_eq!(flat_line("a\nb\r\nc", 80), "a b c");
        assert_eq!(bounded_text("a\r\nb\u{7}", 10), "a\nb");
        assert_eq!(bounded_text("abc", 2), "a…");
        assert_eq!(bounded_text("ab", 2), "ab");
        assert_eq!(bounded_text("ab", 0), "");
    }

    proptest! {
        #[test]
        fn never_panics_on_jsonish_lines(
            lines in proptest::collection::vec(fuzz::line(), 0..24),
            writes in any::<bool>(),
        ) {
            let mut p = ClaudeProgress::default();
            for l in &lines {
                p.observe(l);
            }
            let _ = p.failure(writes);
            if let Some(a) = &p.last_action {
                prop_assert!(!a.is_empty() && a.chars().count() <= MAX_ACTION, "{a:?}");
                prop_assert!(!a.chars().any(char::is_control), "{a:?}");
            }
            if let Some(text) = p.result.as_ref().and_then(|r| r.result.as_ref()) {
                prop_assert!(text.chars().count() <= MAX_RESULT);
            }
        }

        #[test]
        fn never_panics_on_arbitrary_text(s in any::<String>(), writes in any::<bool>()) {
            let mut p = ClaudeProgress::default();
            p.observe(&s);
            let _ = p.failure(writes);
        }

        #[test]
        fn lines_are_clean_and_bounded(s in any::<String>(), max in 0usize..100) {
            for line in [first_line(&s, max), flat_line(&s, max)] {
                prop_assert!(line.chars().count() <= max, "{line:?}");
                prop_assert!(!line.chars().any(|c| c.is_control() || is_invisible(c)), "{line:?}");
                prop_assert_eq!(line.trim(), line.as_str());
            }
            prop_assert!(bounded_text(&s, max).chars().count() <= max);
        }
    }
}
