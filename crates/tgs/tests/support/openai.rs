//! A loopback fake of OpenAI's Responses API, for tests that run the real
//! Codex CLI against it (tgs points Codex at `OPENAI_BASE_URL` through
//! Codex's own provider settings, plain HTTP, no WebSocket).
//!
//! It answers `POST /v1/responses` as server-sent events
//! (`response.created`, `response.output_item.done`, `response.completed`),
//! one canned [`Turn`] per request, in order; once the script is used up it
//! ends with a short message. Every request is recorded for the test.
//! Anything else (a WebSocket upgrade, another path) gets a 404.
//!
//! Bounded like the Messages API fake: 127.0.0.1 only, a port the system
//! picks, at most [`MAX_REQUESTS`] model requests, stopped when dropped or
//! after [`LIFETIME`].

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

pub const LIFETIME: Duration = Duration::from_secs(180);
pub const MAX_REQUESTS: usize = 64;

/// One model turn.
#[derive(Debug, Clone)]
pub enum Turn {
    /// Run `cmd` with Codex's `exec_command` tool.
    Exec(String),
    /// Call `name` of the tool namespace `namespace` (an MCP server's tools
    /// are the namespace `mcp__<server>`).
    Call {
        namespace: String,
        name: String,
        arguments: Value,
    },
    /// Say `text` and end the turn.
    Text(String),
}

impl Turn {
    pub fn exec(cmd: &str) -> Turn {
        Turn::Exec(cmd.to_owned())
    }

    pub fn mcp(server: &str, tool: &str, arguments: Value) -> Turn {
        Turn::Call {
            namespace: format!("mcp__{server}"),
            name: tool.to_owned(),
            arguments,
        }
    }

    pub fn text(text: &str) -> Turn {
        Turn::Text(text.to_owned())
    }
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub raw: String,
    pub body: Value,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The outputs of the tool calls in the conversation so far.
    pub fn tool_outputs(&self) -> Vec<String> {
        self.items()
            .filter(|i| i["type"] == "function_call_output")
            .map(|i| match &i["output"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect()
    }

    /// The texts of the user's messages (the prompt among them).
    pub fn user_text(&self) -> String {
        self.items()
            .filter(|i| i["type"] == "message" && i["role"] == "user")
            .flat_map(|i| i["content"].as_array().cloned().unwrap_or_default())
            .filter_map(|c| c["text"].as_str().map(str::to_owned))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn items(&self) -> impl Iterator<Item = &Value> {
        self.body["input"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
    }
}

struct Shared {
    script: VecDeque<Turn>,
    requests: Vec<Request>,
    answered: usize,
}

/// A running fake; it stops when dropped.
pub struct FakeOpenAi {
    server: crate::loopback::Loopback,
    state: Arc<Mutex<Shared>>,
}

impl FakeOpenAi {
    pub fn start(turns: Vec<Turn>) -> FakeOpenAi {
        let state = Arc::new(Mutex::new(Shared {
            script: turns.into(),
            requests: Vec::new(),
            answered: 0,
        }));
        let app = Router::new().fallback(handle).with_state(state.clone());
        FakeOpenAi {
            server: crate::loopback::Loopback::serve("fake-openai", app, LIFETIME),
            state,
        }
    }

    /// For `OPENAI_BASE_URL` (with the API's `/v1`).
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.server.url())
    }

    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// The model requests (`POST /v1/responses`).
    pub fn model_requests(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| is_responses(&r.method, &r.path))
            .collect()
    }

    pub fn turns_left(&self) -> usize {
        self.lock().script.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn is_responses(method: &str, path: &str) -> bool {
    method == "POST" && path.split('?').next() == Some("/v1/responses")
}

async fn handle(
    State(state): State<Arc<Mutex<Shared>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw = String::from_utf8_lossy(&body).into_owned();
    let request = Request {
        method: method.as_str().to_owned(),
        path: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned()),
        headers: headers
            .iter()
            .map(|(k, v)| {
                let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (k.as_str().to_owned(), v)
            })
            .collect(),
        body: serde_json::from_str(&raw).unwrap_or(Value::Null),
        raw,
    };
    let model = is_responses(&request.method, &request.path);
    let turn = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        s.requests.push(request);
        model.then(|| {
            s.answered += 1;
            let n = s.answered;
            let t = if n > MAX_REQUESTS {
                Turn::text("the fake's request limit")
            } else {
                s.script.pop_front().unwrap_or_else(|| Turn::text("Done."))
            };
            (t, n)
        })
    };
    let Some((turn, n)) = turn else {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::from("the fake serves POST /v1/responses only"))
            .unwrap();
    };
    let mut text = String::new();
    for e in events(&turn, n) {
        let kind = e["type"].as_str().unwrap_or("unknown");
        text.push_str(&format!("event: {kind}\ndata: {e}\n\n"));
    }
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .body(Body::from(text))
        .unwrap()
}

fn events(turn: &Turn, n: usize) -> Vec<Value> {
    let item = match turn {
        Turn::Exec(cmd) => json!({
            "type": "function_call",
            "name": "exec_command",
            "call_id": format!("call_{n}"),
            "arguments": json!({ "cmd": cmd }).to_string(),
        }),
        Turn::Call {
            namespace,
            name,
            arguments,
        } => json!({
            "type": "function_call",
            "namespace": namespace,
            "name": name,
            "call_id": format!("call_{n}"),
            "arguments": arguments.to_string(),
        }),
        Turn::Text(text) => json!({
            "type": "message",
            "role": "assistant",
            "id": format!("msg_{n}"),
            "content": [{ "type": "output_text", "text": text }],
        }),
    };
    let id = format!("resp_{n}");
    vec![
        json!({ "type": "response.created", "response": { "id": id } }),
        json!({ "type": "response.output_item.done", "item": item }),
        json!({
            "type": "response.completed",
            "response": {
                "id": id,
                "usage": {
                    "input_tokens": 100,
                    "input_tokens_details": null,
                    "output_tokens": 20,
                    "output_tokens_details": null,
                    "total_tokens": 120
                }
            }
        }),
    ]
}
