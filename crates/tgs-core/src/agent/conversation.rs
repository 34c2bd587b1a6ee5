//! A Claude Code transcript (`--output-format stream-json`, one JSON event a
//! line) read as the conversation it records, for `tgs server logs`: what
//! the assistant said, each tool it used and what came back, retries, and
//! the result. Lines that are not such events (tgs's own `# tgs` lines,
//! stderr, events of unknown shape) are kept as they are, so nothing of the
//! transcript is hidden; `--raw` prints the file itself.
//!
//! Pure: no I/O. The text it returns is the agent's, already redacted when
//! the transcript was written; the caller still neutralises it for where it
//! goes (a terminal).

use serde_json::Value;

use super::claude::{first_line, parse_object, str_at, tool_action, MAX_ACTION};

/// The longest tool result shown, in characters (its first line).
const MAX_TOOL_RESULT: usize = 200;

/// Renders a transcript line by line; it remembers the session's working
/// directory (from its `init` event) to show paths relative to it.
#[derive(Debug, Default)]
pub struct Conversation {
    cwd: Option<String>,
}

impl Conversation {
    /// The lines an event reads as (empty for one with nothing to show);
    /// `None` for a line that is no event of the conversation, which the
    /// caller keeps as it is.
    pub fn render(&mut self, line: &str) -> Option<Vec<String>> {
        let event = parse_object(line)?;
        Some(match str_at(&event, "type")? {
            "system" => self.system(&event).into_iter().collect(),
            "assistant" => self.assistant(&event),
            "user" => tool_results(&event),
            "result" => vec![result(&event)],
            _ => return None,
        })
    }

    fn system(&mut self, event: &Value) -> Option<String> {
        match str_at(event, "subtype") {
            Some("init") => {
                self.cwd = str_at(event, "cwd").map(str::to_owned);
                Some(format!(
                    "── session {} · model {} · in {}",
                    str_at(event, "session_id").unwrap_or("?"),
                    str_at(event, "model").unwrap_or("?"),
                    self.cwd.as_deref().unwrap_or("?")
                ))
            }
            Some("api_retry") => Some("   (the model API failed; Claude retries)".to_owned()),
            _ => None,
        }
    }

    fn assistant(&self, event: &Value) -> Vec<String> {
        let blocks = event["message"]["content"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut out = Vec::new();
        for b in blocks {
            match str_at(b, "type") {
                Some("text") => {
                    let text = str_at(b, "text").unwrap_or_default().trim_end();
                    for (i, l) in text.lines().enumerate() {
                        out.push(if i == 0 {
                            format!("assistant: {l}")
                        } else {
                            format!("           {l}")
                        });
                    }
                }
                Some("tool_use") => out.push(format!(
                    "   → {}",
                    tool_action(
                        str_at(b, "name").unwrap_or("tool"),
                        b.get("input").unwrap_or(&Value::Null),
                        self.cwd.as_deref()
                    )
                )),
                Some("thinking" | "redacted_thinking") => out.push("   (thinking)".to_owned()),
                _ => {}
            }
        }
        out
    }
}

/// The tool results a `user` event carries: `← <first line>`.
fn tool_results(event: &Value) -> Vec<String> {
    let blocks = event["message"]["content"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    blocks
        .iter()
        .filter(|b| str_at(b, "type") == Some("tool_result"))
        .map(|b| {
            let text = match &b["content"] {
                Value::String(s) => s.clone(),
                Value::Array(parts) => parts
                    .iter()
                    .filter_map(|p| str_at(p, "text"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                _ => String::new(),
            };
            let shown = first_line(&text, MAX_TOOL_RESULT);
            let failed = b["is_error"].as_bool() == Some(true);
            match (failed, shown.is_empty()) {
                (true, _) => format!("   ← error: {shown}"),
                (false, true) => "   ← (no output)".to_owned(),
                (false, false) => format!("   ← {shown}"),
            }
        })
        .collect()
}

/// The session's last word: `── result: ...`.
fn result(event: &Value) -> String {
    let failed = event["is_error"].as_bool() == Some(true);
    let mut parts = vec![if failed { "error" } else { "success" }.to_owned()];
    if let Some(n) = event["num_turns"].as_u64() {
        parts.push(format!("{n} turn(s)"));
    }
    if let Some(c) = event["total_cost_usd"].as_f64().filter(|c| c.is_finite()) {
        parts.push(format!("${c:.4}"));
    }
    let text = first_line(str_at(event, "result").unwrap_or_default(), MAX_ACTION * 2);
    if !text.is_empty() {
        parts.push(text);
    }
    format!("── result: {}", parts.join(" · "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_reads_as_a_conversation() {
        let mut c = Conversation::default();
        let lines = [
            "# tgs session: claude -p in /w",
            r#"{"type":"system","subtype":"init","session_id":"s1","model":"opus","cwd":"/w"}"#,
            r#"{"type":"assistant","message":{"id":"m1","content":[{"type":"thinking","thinking":"hm"},{"type":"text","text":"I will add it.\nThen test."},{"type":"tool_use","name":"Edit","input":{"file_path":"/w/src/lib.rs"}}]}}"#,
            r#"{"type":"user","message":{"content":[{"type":"tool_result","content":"ok\nmore","is_error":false}]}}"#,
            r#"{"type":"user","message":{"content":[{"type":"tool_result","content":[{"type":"text","text":"boom"}],"is_error":true}]}}"#,
            r#"{"type":"system","subtype":"api_retry"}"#,
            r#"{"type":"result","subtype":"success","is_error":false,"num_turns":3,"total_cost_usd":0.0123,"result":"Done."}"#,
            r#"{"type":"stream_event","x":1}"#,
            "not json at all",
        ];
        let shown: Vec<String> = lines
            .iter()
            .flat_map(|l| c.render(l).unwrap_or_else(|| vec![l.to_string()]))
            .collect();
        assert_eq!(
            shown,
            [
                "# tgs session: claude -p in /w",
                "── session s1 · model opus · in /w",
                "   (thinking)",
                "assistant: I will add it.",
                "           Then test.",
                "   → Edit src/lib.rs",
                "   ← ok …",
                "   ← error: boom",
                "   (the model API failed; Claude retries)",
                "── result: success · 3 turn(s) · $0.0123 · Done.",
                r#"{"type":"stream_event","x":1}"#,
                "not json at all",
            ]
        );
    }
}
