//! A loopback git server over smart HTTP that wants a token, as GitHub
//! does: `http://127.0.0.1:PORT/<repo>.git` serves the bare repositories
//! under a directory through `git http-backend` (CGI), and answers 401 to
//! any request without `Authorization: Basic x-access-token:<token>`.
//! Records how many requests came with the right token and with none.

#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use base64::Engine;

use super::loopback::Loopback;

struct Shared {
    root: PathBuf,
    basic: String,
    authorized: AtomicUsize,
    refused: AtomicUsize,
}

pub struct GitHttp {
    server: Loopback,
    shared: Arc<Shared>,
}

impl GitHttp {
    /// Serve the bare repositories under `root`, wanting `token`.
    pub fn start(root: impl Into<PathBuf>, token: &str) -> GitHttp {
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
        let shared = Arc::new(Shared {
            root: root.into(),
            basic: format!("Basic {basic}"),
            authorized: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        GitHttp {
            server: Loopback::serve("fake-git-http", app, Duration::from_secs(120)),
            shared,
        }
    }

    /// `http://127.0.0.1:PORT`, the server's base (for `GITHUB_SERVER_URL`).
    pub fn base(&self) -> String {
        self.server.url()
    }

    /// The URL of the repository `name` (`<root>/<name>` on disk).
    pub fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.server.url())
    }

    /// Requests served with the right token.
    pub fn authorized(&self) -> usize {
        self.shared.authorized.load(Ordering::SeqCst)
    }

    /// Requests refused (no token, or a wrong one).
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }
}

async fn handle(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(s.basic.as_str()) {
        s.refused.fetch_add(1, Ordering::SeqCst);
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header("WWW-Authenticate", "Basic realm=\"fake\"")
            .body(Body::empty())
            .unwrap();
    }
    s.authorized.fetch_add(1, Ordering::SeqCst);
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let root = s.root.clone();
    tokio::task::spawn_blocking(move || cgi(&root, &method, &uri, &content_type, &body))
        .await
        .unwrap()
}

/// Run `git http-backend` for one request and turn its CGI answer into a
/// response.
fn cgi(root: &std::path::Path, method: &Method, uri: &Uri, ctype: &str, body: &[u8]) -> Response {
    let mut child = Command::new("git")
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        // The repositories may belong to another user (a test running tgs
        // unprivileged): serving them is what this server is for.
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "safe.directory")
        .env("GIT_CONFIG_VALUE_0", "*")
        .env("REMOTE_USER", "x-access-token")
        .env("REQUEST_METHOD", method.as_str())
        .env("PATH_INFO", uri.path())
        .env("QUERY_STRING", uri.query().unwrap_or(""))
        .env("CONTENT_TYPE", ctype)
        .env("CONTENT_LENGTH", body.len().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("git http-backend");
    let mut stdin = child.stdin.take().unwrap();
    let input = body.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let split = out
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| {
            out.stdout
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, 2))
        })
        .expect("CGI headers");
    let (head, rest) = out.stdout.split_at(split.0);
    let mut response = Response::builder();
    for line in String::from_utf8_lossy(head).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("status") {
            let code: u16 = value.trim()[..3].parse().unwrap();
            response = response.status(code);
        } else {
            response = response.header(name.trim(), value.trim());
        }
    }
    response.body(Body::from(rest[split.1..].to_vec())).unwrap()
}
