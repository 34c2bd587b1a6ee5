//! A loopback fake of Anthropic's Messages API, for tests that run the real
//! Claude Code CLI against it (`ANTHROPIC_BASE_URL=http://127.0.0.1:PORT`).
//!
//! It answers `POST /v1/messages` the way the CLI expects: server-sent events
//! (message_start, content_block_start/delta/stop, message_delta,
//! message_stop), one canned [`Turn`] per request, in order. Once the script
//! is used up it ends the conversation with a short text. Every request is
//! recorded (path, headers, JSON body) for the test to inspect.
//!
//! Bounded: it listens on 127.0.0.1 only, on a port the system picks,
//! answers at most [`MAX_REQUESTS`] model requests, stops when dropped, and
//! stops by itself after [`LIFETIME`] whatever happens.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use serde_json::{json, Value};

/// The server stops by itself after this long.
pub const LIFETIME: Duration = Duration::from_secs(180);
/// Model requests answered at most; later ones get an error.
pub const MAX_REQUESTS: usize = 64;
/// In a tool input's strings, replaced by the session's working directory
/// (read from the system prompt's "Primary working directory: ...").
pub const CWD: &str = "{cwd}";

/// One model turn: what the fake answers to one request.
#[derive(Debug, Clone)]
pub enum Turn {
    /// The assistant calls a tool (stop_reason tool_use).
    Tool { name: String, input: Value },
    /// The assistant says something and ends its turn (stop_reason end_turn).
    Text(String),
    /// An HTTP error with the API's error body, e.g. 529 overloaded_error.
    Error {
        status: u16,
        kind: String,
        message: String,
    },
}

impl Turn {
    pub fn tool(name: &str, input: Value) -> Turn {
        Turn::Tool {
            name: name.to_owned(),
            input,
        }
    }

    /// `Write` `content` to `file_path` (relative to the working directory,
    /// or absolute through [`CWD`]).
    pub fn write(file_path: &str, content: &str) -> Turn {
        Turn::tool(
            "Write",
            json!({ "file_path": file_path, "content": content }),
        )
    }

    pub fn bash(command: &str) -> Turn {
        Turn::tool(
            "Bash",
            json!({ "command": command, "description": "run a command" }),
        )
    }

    pub fn text(text: &str) -> Turn {
        Turn::Text(text.to_owned())
    }

    pub fn error(status: u16, kind: &str, message: &str) -> Turn {
        Turn::Error {
            status,
            kind: kind.to_owned(),
            message: message.to_owned(),
        }
    }

    /// 529 overloaded_error, as the API answers when it is overloaded.
    pub fn overloaded() -> Turn {
        Turn::error(529, "overloaded_error", "Overloaded")
    }
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, e.g. `/v1/messages?beta=true`.
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body as received.
    pub raw: String,
    /// The body parsed as JSON (`Null` when it is not JSON).
    pub body: Value,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Everything the request carried, headers and body, as one string.
    pub fn everything(&self) -> String {
        let mut s = format!("{} {}\n", self.method, self.path);
        for (k, v) in &self.headers {
            s.push_str(&format!("{k}: {v}\n"));
        }
        s.push_str(&self.raw);
        s
    }

    /// The texts of the system prompt.
    pub fn system_text(&self) -> String {
        texts(self.body.get("system").unwrap_or(&Value::Null))
    }

    /// The texts the user's messages carry (the prompt among them).
    pub fn user_text(&self) -> String {
        self.messages("user")
            .map(|m| texts(m.get("content").unwrap_or(&Value::Null)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The contents of every tool_result block in the conversation so far.
    pub fn tool_results(&self) -> Vec<String> {
        self.messages("user")
            .filter_map(|m| m.get("content").and_then(Value::as_array))
            .flatten()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
            .map(|b| texts(b.get("content").unwrap_or(&Value::Null)))
            .collect()
    }

    /// The working directory the system prompt names.
    pub fn cwd(&self) -> Option<String> {
        let system = self.system_text();
        let (_, rest) = system.split_once("Primary working directory: ")?;
        Some(rest.lines().next()?.trim().to_owned())
    }

    fn messages<'a>(&'a self, role: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.body
            .get("messages")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(move |m| m.get("role").and_then(Value::as_str) == Some(role))
    }
}

/// A string, or the `text` of each block of an array, joined by newlines.
fn texts(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .map(|b| match b {
                Value::String(s) => s.clone(),
                _ => b
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

struct Shared {
    script: VecDeque<Turn>,
    /// Answers every request when set (the script is ignored).
    always: Option<Turn>,
    requests: Vec<Request>,
    answered: usize,
}

/// A running fake; it stops when dropped.
pub struct FakeAnthropic {
    server: crate::loopback::Loopback,
    state: Arc<Mutex<Shared>>,
}

impl FakeAnthropic {
    /// Answer requests with `turns`, in order, then end the conversation.
    pub fn start(turns: Vec<Turn>) -> FakeAnthropic {
        Self::spawn(turns.into(), None)
    }

    /// Answer every request with `turn` (an error, typically).
    pub fn always(turn: Turn) -> FakeAnthropic {
        Self::spawn(VecDeque::new(), Some(turn))
    }

    fn spawn(script: VecDeque<Turn>, always: Option<Turn>) -> FakeAnthropic {
        let state = Arc::new(Mutex::new(Shared {
            script,
            always,
            requests: Vec::new(),
            answered: 0,
        }));
        let app = Router::new().fallback(handle).with_state(state.clone());
        FakeAnthropic {
            server: crate::loopback::Loopback::serve("fake-anthropic", app, LIFETIME),
            state,
        }
    }

    /// For `ANTHROPIC_BASE_URL`.
    pub fn base_url(&self) -> String {
        self.server.url()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// The model requests (`POST /v1/messages`) received so far.
    pub fn model_requests(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| is_messages(&r.method, &r.path))
            .collect()
    }

    /// Scripted turns not used.
    pub fn turns_left(&self) -> usize {
        self.lock().script.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn is_messages(method: &str, path: &str) -> bool {
    method == "POST" && (path == "/v1/messages" || path.starts_with("/v1/messages?"))
}

async fn handle(
    State(state): State<Arc<Mutex<Shared>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| uri.path().to_owned());
    let raw = String::from_utf8_lossy(&body).into_owned();
    let request = Request {
        method: method.as_str().to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: serde_json::from_str(&raw).unwrap_or(Value::Null),
        raw,
        path,
    };
    let messages = is_messages(&request.method, &request.path);
    let cwd = request.cwd();
    let model = request
        .body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("claude-test")
        .to_owned();
    let (turn, n) = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        s.requests.push(request);
        if !messages {
            (None, 0)
        } else {
            s.answered += 1;
            let n = s.answered;
            let turn = if n > MAX_REQUESTS {
                Turn::error(400, "invalid_request_error", "the fake's request limit")
            } else if let Some(t) = &s.always {
                t.clone()
            } else {
                s.script.pop_front().unwrap_or_else(|| Turn::text("Done."))
            };
            (Some(turn), n)
        }
    };
    match turn {
        None => error_response(404, "not_found_error", "the fake serves /v1/messages only"),
        Some(Turn::Error {
            status,
            kind,
            message,
        }) => error_response(status, &kind, &message),
        Some(turn) => sse_response(&events(&turn, n, &model, cwd.as_deref())),
    }
}

fn error_response(status: u16, kind: &str, message: &str) -> Response {
    let body = json!({ "type": "error", "error": { "type": kind, "message": message } });
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .header("request-id", "req_fake")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn sse_response(events: &[Value]) -> Response {
    let mut text = String::new();
    for e in events {
        let kind = e["type"].as_str().unwrap_or("unknown");
        text.push_str(&format!("event: {kind}\ndata: {e}\n\n"));
    }
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .header("request-id", "req_fake")
        .body(Body::from(text))
        .unwrap()
}

/// Replace [`CWD`] in every string of `v`.
fn with_cwd(v: &Value, cwd: Option<&str>) -> Value {
    match v {
        Value::String(s) => match cwd {
            Some(c) => Value::String(s.replace(CWD, c)),
            None => v.clone(),
        },
        Value::Array(a) => Value::Array(a.iter().map(|x| with_cwd(x, cwd)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), with_cwd(x, cwd)))
                .collect(),
        ),
        _ => v.clone(),
    }
}

/// The stream of one assistant message for `turn`.
fn events(turn: &Turn, n: usize, model: &str, cwd: Option<&str>) -> Vec<Value> {
    let (block, delta, stop_reason) = match turn {
        Turn::Tool { name, input } => (
            json!({ "type": "tool_use", "id": format!("toolu_fake_{n}"), "name": name, "input": {} }),
            json!({ "type": "input_json_delta", "partial_json": with_cwd(input, cwd).to_string() }),
            "tool_use",
        ),
        Turn::Text(text) => (
            json!({ "type": "text", "text": "" }),
            json!({ "type": "text_delta", "text": text }),
            "end_turn",
        ),
        Turn::Error { .. } => unreachable!("errors are not streamed"),
    };
    vec![
        json!({
            "type": "message_start",
            "message": {
                "id": format!("msg_fake_{n}"),
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": { "input_tokens": 100, "output_tokens": 1 }
            }
        }),
        json!({ "type": "content_block_start", "index": 0, "content_block": block }),
        json!({ "type": "content_block_delta", "index": 0, "delta": delta }),
        json!({ "type": "content_block_stop", "index": 0 }),
        json!({
            "type": "message_delta",
            "delta": { "stop_reason": stop_reason, "stop_sequence": null },
            "usage": { "output_tokens": 20 }
        }),
        json!({ "type": "message_stop" }),
    ]
}
