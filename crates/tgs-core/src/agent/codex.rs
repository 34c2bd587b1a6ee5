//! The Codex CLI's `codex exec --json` output, parsed one line at a time
//! into live progress: thread id, turns, token use, the latest action, and
//! the error that ended the run, if any.
//!
//! Pure: no I/O, no printing. As with Claude Code, every field is optional,
//! unknown events and item types are ignored, and no input panics. Codex
//! reports no cost, so tokens are all there is to show.

use serde_json::Value;

use super::claude::{first_line, flat_line, ident_at, labelled, parse_object, set, str_at, u64_at};

/// The longest error message kept, in characters.
const MAX_ERROR: usize = 300;

/// Live progress of a `codex exec --json` run, fed one output line at a time.
#[derive(Debug, Clone, Default)]
pub struct CodexProgress {
    pub thread_id: Option<String>,
    /// `turn.completed` events seen.
    pub turns: u32,
    /// The latest action: "$ cargo test" for a command, "Edit src/lib.rs"
    /// for a file change, the first line of an agent message. Single line,
    /// at most [`super::claude::MAX_ACTION`] chars.
    pub last_action: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// From `turn.failed` or `error` events; cleared by a later
    /// `turn.completed`.
    pub error: Option<String>,
    /// A turn completed or failed: the run has reported its end.
    pub ended: bool,
}

impl CodexProgress {
    /// Observe one line of `codex exec --json` output. Lines that are not
    /// JSON, or JSON of unknown shape, are ignored (return false); return
    /// true when something changed.
    pub fn observe(&mut self, line: &str) -> bool {
        let Some(event) = parse_object(line) else {
            return false;
        };
        match str_at(&event, "type") {
            Some("thread.started") => set(&mut self.thread_id, ident_at(&event, "thread_id")),
            Some("turn.completed") => {
                // `input_tokens` already includes `cached_input_tokens`.
                let usage = event.get("usage").unwrap_or(&Value::Null);
                self.turns = self.turns.saturating_add(1);
                self.input_tokens = self
                    .input_tokens
                    .saturating_add(u64_at(usage, "input_tokens"));
                self.output_tokens = self
                    .output_tokens
                    .saturating_add(u64_at(usage, "output_tokens"));
                // Codex reports recoverable trouble (e.g. "Reconnecting...
                // 1/5") as `error` events; a turn that then completes has
                // recovered from it.
                self.error = None;
                self.ended = true;
                true
            }
            Some("turn.failed") => {
                let message = error_message(event.get("error")).unwrap_or("the turn failed");
                self.ended = true;
                set(&mut self.error, Some(flat_line(message, MAX_ERROR)));
                true
            }
            Some("error") => {
                let message = str_at(&event, "message")
                    .or_else(|| error_message(event.get("error")))
                    .unwrap_or("error");
                set(&mut self.error, Some(flat_line(message, MAX_ERROR)))
            }
            Some("item.started" | "item.updated" | "item.completed") => {
                let item = event.get("item").unwrap_or(&Value::Null);
                set(&mut self.last_action, item_action(item))
            }
            // turn.started and anything newer say nothing worth showing.
            _ => false,
        }
    }
}

/// `{"message": "..."}` or a bare string; blank reads as absent.
fn error_message(v: Option<&Value>) -> Option<&str> {
    let message = match v? {
        Value::String(s) => Some(s.as_str()),
        other => str_at(other, "message"),
    };
    message.filter(|m| !m.trim().is_empty())
}

/// What a thread item shows, or `None` for items that say nothing (errors
/// items are warnings, not failures; unknown types are skipped).
fn item_action(item: &Value) -> Option<String> {
    match str_at(item, "type")? {
        "command_execution" => {
            let command = command_text(item.get("command")?)?;
            Some(labelled("$", " ", &command, "", false))
        }
        "file_change" => file_change_action(item),
        "agent_message" => str_at(item, "text")
            .map(|t| first_line(t, super::claude::MAX_ACTION))
            .filter(|t| !t.is_empty()),
        "reasoning" => Some("thinking".to_owned()),
        "mcp_tool_call" => {
            let server = str_at(item, "server").unwrap_or_default();
            let tool = str_at(item, "tool").unwrap_or("tool");
            let name = if server.is_empty() {
                tool.to_owned()
            } else {
                format!("{server}/{tool}")
            };
            Some(labelled("MCP", " ", &name, "", false))
        }
        "web_search" => {
            let query = str_at(item, "query").unwrap_or_default();
            Some(labelled("Search", ": ", query, "", false))
        }
        "todo_list" => todo_action(item),
        _ => None,
    }
}

/// The command as the user would type it. Codex runs most commands as
/// `bash -lc '<script>'`; the script is the telling part.
fn command_text(command: &Value) -> Option<String> {
    let words: Vec<String> = match command {
        Value::String(s) => match shlex::split(s) {
            Some(words) => words,
            None => return Some(s.clone()),
        },
        // Older versions gave argv as an array.
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => return None,
    };
    if let [shell, flag, script] = words.as_slice() {
        let shell_name = shell.rsplit('/').next().unwrap_or_default();
        if matches!(shell_name, "bash" | "sh" | "zsh" | "dash")
            && flag.starts_with('-')
            && flag.ends_with('c')
        {
            return Some(script.clone());
        }
    }
    match command {
        Value::String(s) => Some(s.clone()),
        _ => Some(
            shlex::try_join(words.iter().map(String::as_str)).unwrap_or_else(|_| words.join(" ")),
        ),
    }
}

/// "Edit src/lib.rs", "Add src/new.rs +2 more": the first changed file and
/// how it changed.
fn file_change_action(item: &Value) -> Option<String> {
    let changes: Vec<&Value> = item
        .get("changes")?
        .as_array()?
        .iter()
        .filter(|c| str_at(c, "path").is_some_and(|p| !p.trim().is_empty()))
        .collect();
    let first = changes.first()?;
    let path = str_at(first, "path")?;
    // `kind` is "add" / "delete" / "update", or an object with that `type`.
    let kind = match first.get("kind") {
        Some(Value::String(k)) => k.as_str(),
        Some(k) => str_at(k, "type").unwrap_or_default(),
        None => "",
    };
    let verb = match kind {
        "add" => "Add",
        "delete" => "Delete",
        _ => "Edit",
    };
    let more = match changes.len() {
        0 | 1 => String::new(),
        n => format!(" +{} more", n - 1),
    };
    Some(labelled(verb, " ", path, &more, true))
}

/// "Plan 1/3: Write the feature": progress through Codex's to-do list and
/// the next step.
fn todo_action(item: &Value) -> Option<String> {
    let items = item.get("items")?.as_array()?;
    if items.is_empty() {
        return None;
    }
    let done = items
        .iter()
        .filter(|i| i.get("completed").and_then(Value::as_bool) == Some(true))
        .count();
    let label = format!("Plan {done}/{}", items.len());
    let next = items
        .iter()
        .filter(|i| i.get("completed").and_then(Value::as_bool) != Some(true))
        .find_map(|i| str_at(i, "text").filter(|t| !t.trim().is_empty()));
    Some(match next {
        Some(text) => labelled(&label, ": ", text, "", false),
        None => format!("{label} done"),
    })
}

#[cfg(test)]
mod tests {
    use super::super::claude::{fuzz, MAX_ACTION};
    use super::*;
    use proptest::prelude::*;

    const THREAD: &str =
        r#"{"type":"thread.started","thread_id":"0199a213-81c0-7800-8aa1-bbab2a035a53"}"#;
    const TURN: &str = r#"{"type":"turn.started"}"#;
    const CMD_STARTED: &str = r#"{"type":"item.started","item":{"id":"item_1","type":"command_execution","command":"bash -lc 'cargo test -p tgs-core'","aggregated_output":"","exit_code":null,"status":"in_progress"}}"#;
    const CMD_DONE: &str = r#"{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":"bash -lc 'cargo test -p tgs-core'","aggregated_output":"test result: ok\n","exit_code":0,"status":"completed"}}"#;
    const MESSAGE: &str = r#"{"type":"item.completed","item":{"id":"item_2","type":"agent_message","text":"\nAll tests pass.\nDetails follow."}}"#;
    const FILES: &str = r#"{"type":"item.completed","item":{"id":"item_3","type":"file_change","changes":[{"path":"src/lib.rs","kind":"update"},{"path":"src/new.rs","kind":"add"}],"status":"completed"}}"#;
    const USAGE: &str = r#"{"type":"turn.completed","usage":{"input_tokens":24763,"cached_input_tokens":24448,"output_tokens":122}}"#;
    const FAILED: &str = r#"{"type":"turn.failed","error":{"message":"unexpected status 401 Unauthorized:\n{\"error\":\"bad key\"}"}}"#;
    const ERROR: &str = r#"{"type":"error","message":"stream error: exceeded retry limit, last status: 500 Internal Server Error"}"#;

    fn fed(lines: &[&str]) -> CodexProgress {
        let mut p = CodexProgress::default();
        for l in lines {
            p.observe(l);
        }
        p
    }

    #[test]
    fn a_whole_run() {
        let mut p = CodexProgress::default();
        assert!(p.observe(THREAD));
        assert_eq!(
            p.thread_id.as_deref(),
            Some("0199a213-81c0-7800-8aa1-bbab2a035a53")
        );
        assert!(!p.observe(TURN));
        assert!(p.observe(CMD_STARTED));
        assert_eq!(p.last_action.as_deref(), Some("$ cargo test -p tgs-core"));
        assert!(!p.observe(CMD_DONE), "same action again");
        assert!(p.observe(FILES));
        assert_eq!(p.last_action.as_deref(), Some("Edit src/lib.rs +1 more"));
        assert!(p.observe(MESSAGE));
        assert_eq!(p.last_action.as_deref(), Some("All tests pass. …"));
        assert!(p.observe(USAGE));
        assert_eq!((p.turns, p.input_tokens, p.output_tokens), (1, 24763, 122));
        assert!(p.observe(USAGE));
        assert_eq!((p.turns, p.input_tokens, p.output_tokens), (2, 49526, 244));
        assert_eq!(p.error, None);
    }

    #[test]
    fn commands() {
        let act = |line: &str| fed(&[line]).last_action;
        let item = |cmd: &str| {
            serde_json::json!({"type":"item.started","item":{"type":"command_execution","command":cmd}})
                .to_string()
        };
        assert_eq!(act(&item("ls -la")).as_deref(), Some("$ ls -la"));
        assert_eq!(
            act(&item("/bin/bash -lc \"cd x && make\"")).as_deref(),
            Some("$ cd x && make")
        );
        assert_eq!(
            act(&item("bash -lc 'unterminated")).as_deref(),
            Some("$ bash -lc 'unterminated")
        );
        let argv = r#"{"type":"item.started","item":{"type":"command_execution","command":["sh","-c","echo hi\necho there"]}}"#;
        assert_eq!(act(argv).as_deref(), Some("$ echo hi …"));
        let argv = r#"{"type":"item.started","item":{"type":"command_execution","command":["git","commit","-m","a b"]}}"#;
        assert_eq!(act(argv).as_deref(), Some("$ git commit -m 'a b'"));
        let none = r#"{"type":"item.started","item":{"type":"command_execution"}}"#;
        assert_eq!(act(none), None);
        let long = act(&item(&"y".repeat(5000))).unwrap();
        assert_eq!(long.chars().count(), MAX_ACTION);
    }

    #[test]
    fn file_changes() {
        let act = |changes: &str| {
            fed(&[&format!(r#"{{"type":"item.completed","item":{{"type":"file_change","changes":{changes},"status":"completed"}}}}"#)])
                .last_action
        };
        assert_eq!(
            act(r#"[{"path":"a.rs","kind":"add"}]"#).as_deref(),
            Some("Add a.rs")
        );
        assert_eq!(
            act(r#"[{"path":"a.rs","kind":"delete"}]"#).as_deref(),
            Some("Delete a.rs")
        );
        assert_eq!(
            act(r#"[{"path":"a.rs","kind":{"type":"update","move_path":null}}]"#).as_deref(),
            Some("Edit a.rs")
        );
        assert_eq!(act(r#"[{"path":"a.rs"}]"#).as_deref(), Some("Edit a.rs"));
        assert_eq!(act(r#"[]"#), None);
        assert_eq!(act(r#"[{"kind":"add"}]"#), None);
        let long = format!(
            r#"[{{"path":"/{}/lib.rs","kind":"update"}},{{"path":"b"}}]"#,
            "p".repeat(300)
        );
        let a = act(&long).unwrap();
        assert_eq!(a.chars().count(), MAX_ACTION);
        assert!(
            a.starts_with("Edit …p") && a.ends_with("p/lib.rs +1 more"),
            "{a}"
        );
    }

    #[test]
    fn other_items() {
        let act = |item: &str| {
            fed(&[&format!(r#"{{"type":"item.completed","item":{item}}}"#)]).last_action
        };
        assert_eq!(
            act(r#"{"type":"reasoning","text":"**Planning**"}"#).as_deref(),
            Some("thinking")
        );
        assert_eq!(
            act(
                r#"{"type":"mcp_tool_call","server":"fs","tool":"read_file","status":"completed"}"#
            )
            .as_deref(),
            Some("MCP fs/read_file")
        );
        assert_eq!(
            act(r#"{"type":"web_search","query":"serde default"}"#).as_deref(),
            Some("Search: serde default")
        );
        assert_eq!(
            act(r#"{"type":"todo_list","items":[{"text":"Read","completed":true},{"text":"Write the feature","completed":false},{"text":"Test","completed":false}]}"#).as_deref(),
            Some("Plan 1/3: Write the feature")
        );
        assert_eq!(
            act(r#"{"type":"todo_list","items":[{"text":"Read","completed":true}]}"#).as_deref(),
            Some("Plan 1/1 done")
        );
        assert_eq!(
            act(r#"{"type":"error","message":"warning: truncated"}"#),
            None
        );
        assert_eq!(act(r#"{"type":"agent_message","text":"  \n "}"#), None);
        assert_eq!(act(r#"{"type":"something_new"}"#), None);
    }

    #[test]
    fn failures_are_kept_until_a_turn_completes() {
        let mut p = fed(&[THREAD, TURN, FAILED]);
        assert_eq!(
            p.error.as_deref(),
            Some(r#"unexpected status 401 Unauthorized: {"error":"bad key"}"#)
        );
        assert!(p.observe(ERROR));
        assert_eq!(
            p.error.as_deref(),
            Some("stream error: exceeded retry limit, last status: 500 Internal Server Error")
        );
        assert!(!p.observe(ERROR));
        assert!(p.observe(USAGE));
        assert_eq!(p.error, None);
        let p = fed(&[r#"{"type":"turn.failed"}"#]);
        assert_eq!(p.error.as_deref(), Some("the turn failed"));
        let p = fed(&[r#"{"type":"error","error":"boom"}"#]);
        assert_eq!(p.error.as_deref(), Some("boom"));
        let p = fed(&[&format!(
            r#"{{"type":"error","message":"{}"}}"#,
            "e".repeat(10_000)
        )]);
        assert_eq!(p.error.unwrap().chars().count(), MAX_ERROR);
    }

    #[test]
    fn junk_and_odd_fields() {
        let mut p = CodexProgress::default();
        for line in [
            "",
            "Reading prompt from stdin...",
            "{",
            "[]",
            r#"{"type":7}"#,
            r#"{"type":"turn.started"}"#,
            r#"{"type":"item.completed","item":[]}"#,
        ] {
            assert!(!p.observe(line), "{line:?}");
        }
        assert!(p.observe(
            r#"{"type":"turn.completed","usage":{"input_tokens":-5,"output_tokens":"7"}}"#
        ));
        assert_eq!((p.turns, p.input_tokens, p.output_tokens), (1, 0, 0));
        assert!(p.observe(r#"{"type":"turn.completed"}"#));
        assert_eq!(p.turns, 2);
        p.input_tokens = u64::MAX;
        p.observe(USAGE);
        assert_eq!(p.input_tokens, u64::MAX);
    }

    proptest! {
        #[test]
        fn never_panics_on_jsonish_lines(lines in proptest::collection::vec(fuzz::line(), 0..24)) {
            let mut p = CodexProgress::default();
            for l in &lines {
                p.observe(l);
            }
            if let Some(a) = &p.last_action {
                prop_assert!(!a.is_empty() && a.chars().count() <= MAX_ACTION, "{a:?}");
                prop_assert!(!a.chars().any(char::is_control), "{a:?}");
            }
            if let Some(e) = &p.error {
                prop_assert!(e.chars().count() <= MAX_ERROR && !e.chars().any(char::is_control));
            }
        }

        #[test]
        fn never_panics_on_arbitrary_text(s in any::<String>()) {
            let mut p = CodexProgress::default();
            p.observe(&s);
        }
    }
}
