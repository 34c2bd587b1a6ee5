//! A loopback fake of the GitHub REST API, for testing `tgs_core::github`
//! against a real HTTP server (`GITHUB_API_URL=http://127.0.0.1:PORT`).
//!
//! It keeps pull requests and issues in memory for one repository and serves
//! what tgs uses: pulls list/create/update/get (with `mergeable` and the
//! head's sha), requested reviewers, reviews and inline review comments,
//! issue labels, issues list/create/update, conversation comments (on issues
//! and pull requests), collaborator permissions and the repository's
//! activity (the pushes tests tell it of). Every request is recorded.
//!
//! It keeps its own clock, as GitHub does: every timestamp it reports
//! (`created_at`, `submitted_at`, an activity's `timestamp`) is [`FakeGitHub::now`],
//! which starts at [`CLOCK`] (the time tests pin tgs's clock to) and moves
//! only when a test moves it, so tests can put GitHub's clock ahead of or
//! behind tgs's.
//! Tests script failures ([`Fault`]: any status, headers and body, for the
//! next matching requests) and the "opened meanwhile" race
//! ([`FakeGitHub::hide_open_pulls`]).
//!
//! Bounded: it listens on 127.0.0.1 only, on a port the system picks, stops
//! when dropped, and stops by itself after [`LIFETIME`] whatever happens.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use jiff::Timestamp;
use serde_json::{json, Value};

/// The server stops by itself after this long.
pub const LIFETIME: Duration = Duration::from_secs(120);
/// Where the fake's `html_url`s point (never fetched).
pub const WEB: &str = "https://github.example";
/// The fake's clock when it starts: tests' pinned `TGS_NOW`.
pub const CLOCK: &str = "2026-01-15T12:00:00Z";

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, e.g. `/repos/o/r/pulls?state=open`.
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON (`Null` when there is none).
    pub body: Value,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `METHOD /path` without the query, e.g. `POST /repos/o/r/pulls`.
    pub fn route(&self) -> String {
        let path = self.path.split('?').next().unwrap_or_default();
        format!("{} {path}", self.method)
    }
}

/// A scripted answer for the next `times` requests whose `METHOD /path`
/// (query included) contains `route`.
#[derive(Debug, Clone)]
pub struct Fault {
    pub route: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    pub times: usize,
}

impl Fault {
    pub fn new(route: &str, status: u16, body: Value) -> Fault {
        Fault {
            route: route.to_owned(),
            status,
            headers: Vec::new(),
            body,
            times: 1,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Fault {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn times(mut self, n: usize) -> Fault {
        self.times = n;
        self
    }
}

/// A pull request as the fake keeps it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Pull {
    pub number: u64,
    pub head: String,
    pub base: String,
    pub title: String,
    pub body: String,
    pub draft: bool,
    pub state: String,
    pub merged: bool,
    pub labels: Vec<String>,
    pub reviewers: Vec<String>,
    pub team_reviewers: Vec<String>,
    /// `None`: GitHub has not computed it yet.
    pub mergeable: Option<bool>,
    pub head_sha: String,
    /// The head is in another repository.
    pub from_fork: bool,
    /// When it was opened, on the fake's clock.
    pub created_at: String,
    /// Reviews, conversation comments and inline comments, as GitHub lists them.
    pub reviews: Vec<Value>,
    pub comments: Vec<Value>,
    pub inline: Vec<Value>,
}

/// An issue as the fake keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub state: String,
    pub state_reason: Option<String>,
    pub labels: Vec<String>,
    pub comments: Vec<String>,
    /// The comments as GitHub lists them (`GET /issues/{n}/comments`).
    pub events: Vec<Value>,
}

struct Shared {
    owner: String,
    repo: String,
    token: String,
    /// Issues and pulls share numbers, as on GitHub.
    next_number: u64,
    pulls: Vec<Pull>,
    issues: Vec<Issue>,
    faults: VecDeque<Fault>,
    /// Open-pull lists that answer `[]` (a PR opened meanwhile elsewhere).
    hidden_lists: usize,
    /// Heads for which POST /pulls answers "No commits between".
    no_commits: Vec<String>,
    requests: Vec<Request>,
    /// Collaborator permissions by login (others: `read`).
    permissions: Vec<(String, String)>,
    /// Ids of reviews and comments, growing as GitHub's do.
    next_id: u64,
    /// GitHub's clock (see [`FakeGitHub::set_clock`]).
    clock: Timestamp,
    /// Pushes the tests told of, as `GET /activity` lists them (oldest first).
    activity: Vec<Value>,
}

/// A running fake; it stops when dropped.
pub struct FakeGitHub {
    server: crate::loopback::Loopback,
    state: Arc<Mutex<Shared>>,
}

impl FakeGitHub {
    /// A fake serving `owner/repo`, accepting only `Bearer <token>`.
    pub fn start(owner: &str, repo: &str, token: &str) -> FakeGitHub {
        let state = Arc::new(Mutex::new(Shared {
            owner: owner.to_owned(),
            repo: repo.to_owned(),
            token: token.to_owned(),
            next_number: 1,
            pulls: Vec::new(),
            issues: Vec::new(),
            faults: VecDeque::new(),
            hidden_lists: 0,
            no_commits: Vec::new(),
            requests: Vec::new(),
            permissions: Vec::new(),
            next_id: 1000,
            clock: CLOCK.parse().unwrap(),
            activity: Vec::new(),
        }));
        let app = Router::new().fallback(handle).with_state(state.clone());
        FakeGitHub {
            server: crate::loopback::Loopback::serve("fake-github", app, LIFETIME),
            state,
        }
    }

    /// For `GITHUB_API_URL`.
    pub fn api_url(&self) -> String {
        self.server.url()
    }

    /// Answer the next matching request(s) with `fault` instead.
    pub fn fault(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    /// Forget the faults not yet answered: GitHub is back.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// The next `n` open-pull lists answer `[]`, as if the PR had been
    /// opened by someone else just after tgs looked.
    pub fn hide_open_pulls(&self, n: usize) {
        self.lock().hidden_lists = n;
    }

    /// Set GitHub's clock to `at` (RFC 3339).
    pub fn set_clock(&self, at: &str) {
        self.lock().clock = at.parse().expect("an RFC 3339 time");
    }

    /// Move GitHub's clock by `secs` (negative: back).
    pub fn advance(&self, secs: i64) {
        let mut s = self.lock();
        s.clock += jiff::SignedDuration::from_secs(secs);
    }

    /// GitHub's clock now, as it writes timestamps.
    pub fn now(&self) -> String {
        self.lock().clock.to_string()
    }

    /// GitHub noticed a push of `sha` to `branch` now (the fake does not see
    /// git): `GET /activity` lists it.
    pub fn record_push(&self, branch: &str, sha: &str) {
        let mut s = self.lock();
        let id = s.take_id();
        let at = s.clock.to_string();
        s.activity.push(json!({
            "id": id, "before": "0000000000000000000000000000000000000000", "after": sha,
            "ref": format!("refs/heads/{branch}"), "timestamp": at, "activity_type": "push",
            "actor": {"login": "tgs-bot[bot]"},
        }));
    }

    /// POST /pulls for `head` answers "No commits between".
    pub fn no_commits_for(&self, head: &str) {
        self.lock().no_commits.push(head.to_owned());
    }

    /// Put an open PR in place (opened by an earlier run); returns its number.
    pub fn add_pull(&self, head: &str, base: &str, title: &str) -> u64 {
        let mut s = self.lock();
        let number = s.take_number();
        let created_at = s.clock.to_string();
        s.pulls.push(Pull {
            number,
            head: head.to_owned(),
            base: base.to_owned(),
            title: title.to_owned(),
            body: String::new(),
            draft: false,
            state: "open".into(),
            merged: false,
            labels: Vec::new(),
            reviewers: Vec::new(),
            team_reviewers: Vec::new(),
            created_at,
            ..Pull::default()
        });
        number
    }

    /// `login` has `permission` (admin, write, read, none) on the repository.
    pub fn set_permission(&self, login: &str, permission: &str) {
        self.lock()
            .permissions
            .push((login.to_owned(), permission.to_owned()));
    }

    /// A review on PR `number`: `state` CHANGES_REQUESTED, APPROVED or
    /// COMMENTED, with inline comments `(path, line, body)`, submitted now on
    /// the PR's head as the fake has it (`head_sha`). Returns its id.
    pub fn add_review(
        &self,
        number: u64,
        login: &str,
        association: &str,
        state: &str,
        body: &str,
        inline: &[(&str, u64, &str)],
    ) -> u64 {
        let mut s = self.lock();
        let id = s.take_id();
        let url = format!("{}#pullrequestreview-{id}", s.pull_url(number));
        let (at, commit) = (s.clock.to_string(), s.pull_mut(number).head_sha.clone());
        let review = json!({
            "id": id, "user": {"login": login, "type": "User"}, "author_association": association,
            "body": body, "state": state, "html_url": url,
            "submitted_at": at, "commit_id": commit,
        });
        let mut notes = Vec::new();
        for (path, line, text) in inline {
            let cid = s.take_id();
            notes.push(json!({
                "id": cid, "pull_request_review_id": id, "user": {"login": login},
                "author_association": association, "body": text, "path": path, "line": line,
                "diff_hunk": "@@ -1,2 +1,2 @@\n-old\n+new", "created_at": at,
                "commit_id": commit, "original_commit_id": commit,
                "html_url": format!("{}#discussion_r{cid}", s.pull_url(number)),
            }));
        }
        let p = s.pull_mut(number);
        p.reviews.push(review);
        p.inline.extend(notes);
        id
    }

    /// A conversation comment on PR `number`; returns its id.
    pub fn add_comment(&self, number: u64, login: &str, association: &str, body: &str) -> u64 {
        let mut s = self.lock();
        let id = s.take_id();
        let url = format!("{}#issuecomment-{id}", s.pull_url(number));
        let at = s.clock.to_string();
        s.pull_mut(number).comments.push(json!({
            "id": id, "user": {"login": login, "type": "User"}, "author_association": association,
            "body": body, "html_url": url, "created_at": at,
        }));
        id
    }

    /// A comment on issue `number` by someone else than tgs; returns its id.
    pub fn add_issue_comment(
        &self,
        number: u64,
        login: &str,
        association: &str,
        body: &str,
    ) -> u64 {
        let mut s = self.lock();
        let id = s.take_id();
        let at = s.clock.to_string();
        let web = format!(
            "{WEB}/{}/{}/issues/{number}#issuecomment-{id}",
            s.owner, s.repo
        );
        let i = s
            .issues
            .iter_mut()
            .find(|i| i.number == number)
            .expect("no such issue");
        i.comments.push(body.to_owned());
        i.events.push(json!({
            "id": id, "user": {"login": login, "type": "User"}, "author_association": association,
            "body": body, "html_url": web, "created_at": at,
        }));
        id
    }

    /// The bodies of the conversation comments on PR `number`, oldest first.
    pub fn pull_comments(&self, number: u64) -> Vec<String> {
        let mut s = self.lock();
        s.pull_mut(number)
            .comments
            .iter()
            .map(|c| c["body"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Close a PR, merged or not.
    pub fn close_pull(&self, number: u64, merged: bool) {
        let mut s = self.lock();
        let p = s
            .pulls
            .iter_mut()
            .find(|p| p.number == number)
            .expect("a pull");
        p.state = "closed".into();
        p.merged = merged;
    }

    /// Change a PR in place (its body or labels, say).
    pub fn edit_pull(&self, number: u64, edit: impl FnOnce(&mut Pull)) {
        let mut s = self.lock();
        edit(
            s.pulls
                .iter_mut()
                .find(|p| p.number == number)
                .expect("a pull"),
        );
    }

    pub fn pulls(&self) -> Vec<Pull> {
        self.lock().pulls.clone()
    }

    pub fn issues(&self) -> Vec<Issue> {
        self.lock().issues.clone()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// `METHOD /path` of every request, in order.
    pub fn routes(&self) -> Vec<String> {
        self.requests().iter().map(Request::route).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Shared {
    fn take_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn pull_url(&self, number: u64) -> String {
        format!("{WEB}/{}/{}/pull/{number}", self.owner, self.repo)
    }

    fn pull_mut(&mut self, number: u64) -> &mut Pull {
        self.pulls
            .iter_mut()
            .find(|p| p.number == number)
            .expect("a pull")
    }

    fn take_number(&mut self) -> u64 {
        let n = self.next_number;
        self.next_number += 1;
        n
    }

    fn pull_json(&self, p: &Pull) -> Value {
        json!({
            "number": p.number,
            "html_url": format!("{WEB}/{}/{}/pull/{}", self.owner, self.repo, p.number),
            "state": p.state,
            "title": p.title,
            "body": p.body,
            "draft": p.draft,
            "merged": p.merged,
            "merged_at": if p.merged { json!("2024-05-01T12:00:00Z") } else { Value::Null },
            "head": {
                "ref": p.head, "label": format!("{}:{}", self.owner, p.head), "sha": p.head_sha,
                "repo": { "full_name": if p.from_fork { "fork/demo".to_owned() } else { format!("{}/{}", self.owner, self.repo) } },
            },
            "base": { "ref": p.base, "repo": { "full_name": format!("{}/{}", self.owner, self.repo) } },
            "mergeable": p.mergeable,
            "created_at": p.created_at,
            "labels": names(&p.labels),
            "requested_reviewers": p.reviewers.iter().map(|r| json!({ "login": r })).collect::<Vec<_>>(),
        })
    }

    fn issue_json(&self, i: &Issue) -> Value {
        json!({
            "number": i.number,
            "html_url": format!("{WEB}/{}/{}/issues/{}", self.owner, self.repo, i.number),
            "title": i.title,
            "body": i.body,
            "state": i.state,
            "state_reason": i.state_reason,
            "labels": names(&i.labels),
            "comments": i.comments.len(),
        })
    }

    /// A PR as the issues list shows it.
    fn pull_as_issue(&self, p: &Pull) -> Value {
        json!({
            "number": p.number,
            "html_url": format!("{WEB}/{}/{}/pull/{}", self.owner, self.repo, p.number),
            "title": p.title,
            "body": p.body,
            "state": p.state,
            "labels": names(&p.labels),
            "pull_request": { "url": "pr" },
        })
    }
}

fn names(labels: &[String]) -> Vec<Value> {
    labels.iter().map(|l| json!({ "name": l })).collect()
}

/// Query parameters, percent-decoded.
fn query(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn reply(status: u16, body: Value) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json; charset=utf-8")
        .header("x-ratelimit-remaining", "4999")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn invalid(message: &str) -> Response {
    reply(
        422,
        json!({
            "message": "Validation Failed",
            "errors": [{ "resource": "PullRequest", "code": "custom", "message": message }],
        }),
    )
}

fn not_found() -> Response {
    reply(404, json!({ "message": "Not Found" }))
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
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let request = Request {
        method: method.as_str().to_owned(),
        path: path.clone(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.clone(),
    };
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    s.requests.push(request.clone());

    let full = format!("{} {path}", request.method);
    if let Some(i) = s.faults.iter().position(|f| full.contains(&f.route)) {
        let f = s.faults[i].clone();
        if f.times <= 1 {
            s.faults.remove(i);
        } else {
            s.faults[i].times -= 1;
        }
        let mut r = reply(f.status, f.body);
        for (k, v) in f.headers {
            r.headers_mut().insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        return r;
    }
    if request.header("authorization") != Some(&format!("Bearer {}", s.token)) {
        return reply(401, json!({ "message": "Bad credentials" }));
    }
    let prefix = format!("/repos/{}/{}/", s.owner, s.repo);
    let Some(rest) = uri.path().strip_prefix(&prefix) else {
        return not_found();
    };
    let segs: Vec<&str> = rest.split('/').collect();
    let q = query(&uri);
    let param = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let text = |k: &str| body[k].as_str().unwrap_or_default().to_owned();
    let list = |k: &str| -> Vec<String> {
        body[k]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    };

    match (request.method.as_str(), segs.as_slice()) {
        ("GET", ["pulls"]) => {
            if s.hidden_lists > 0 {
                s.hidden_lists -= 1;
                return reply(200, json!([]));
            }
            let state = param("state").unwrap_or_else(|| "open".into());
            let head = param("head");
            let owner = s.owner.clone();
            let found: Vec<Value> = s
                .pulls
                .iter()
                .filter(|p| state == "all" || p.state == state)
                .filter(|p| {
                    head.as_ref()
                        .is_none_or(|h| *h == format!("{owner}:{}", p.head))
                })
                .map(|p| s.pull_json(p))
                .collect();
            reply(200, Value::Array(found))
        }
        ("POST", ["pulls"]) => {
            let (head, base, title) = (text("head"), text("base"), text("title"));
            if head.is_empty() || base.is_empty() || title.is_empty() {
                return reply(
                    422,
                    json!({ "message": "Invalid request: head, base and title are required" }),
                );
            }
            if s.pulls.iter().any(|p| p.head == head && p.state == "open") {
                return invalid(&format!(
                    "A pull request already exists for {}:{head}.",
                    s.owner
                ));
            }
            if s.no_commits.contains(&head) {
                return invalid(&format!("No commits between {base} and {head}"));
            }
            let number = s.take_number();
            let pull = Pull {
                number,
                head,
                base,
                title,
                body: text("body"),
                draft: body["draft"].as_bool().unwrap_or(false),
                state: "open".into(),
                merged: false,
                labels: Vec::new(),
                reviewers: Vec::new(),
                team_reviewers: Vec::new(),
                mergeable: Some(true),
                head_sha: format!("sha-{number}"),
                created_at: s.clock.to_string(),
                ..Pull::default()
            };
            let v = s.pull_json(&pull);
            s.pulls.push(pull);
            reply(201, v)
        }
        (m @ ("GET" | "PATCH"), ["pulls", n]) => {
            let n: u64 = n.parse().unwrap_or(0);
            let Some(i) = s.pulls.iter().position(|p| p.number == n) else {
                return not_found();
            };
            if m == "PATCH" {
                let p = &mut s.pulls[i];
                if let Some(t) = body["title"].as_str() {
                    p.title = t.to_owned();
                }
                if let Some(b) = body["body"].as_str() {
                    p.body = b.to_owned();
                }
                if let Some(st) = body["state"].as_str() {
                    p.state = st.to_owned();
                }
            }
            let v = s.pull_json(&s.pulls[i]);
            reply(200, v)
        }
        ("POST", ["pulls", n, "requested_reviewers"]) => {
            let n: u64 = n.parse().unwrap_or(0);
            let (users, teams) = (list("reviewers"), list("team_reviewers"));
            if users.iter().any(|u| u == "not-a-collaborator") {
                return invalid("Reviews may only be requested from collaborators. One or more of the users or teams you specified is not a collaborator of the acme/widgets repository.");
            }
            let Some(p) = s.pulls.iter_mut().find(|p| p.number == n) else {
                return not_found();
            };
            for u in users {
                if !p.reviewers.contains(&u) {
                    p.reviewers.push(u);
                }
            }
            for t in teams {
                if !p.team_reviewers.contains(&t) {
                    p.team_reviewers.push(t);
                }
            }
            let p = p.clone();
            reply(201, s.pull_json(&p))
        }
        ("POST", ["issues", n, "labels"]) => {
            let n: u64 = n.parse().unwrap_or(0);
            let labels = list("labels");
            let target = if let Some(p) = s.pulls.iter_mut().find(|p| p.number == n) {
                &mut p.labels
            } else if let Some(i) = s.issues.iter_mut().find(|i| i.number == n) {
                &mut i.labels
            } else {
                return not_found();
            };
            for l in labels {
                if !target.contains(&l) {
                    target.push(l);
                }
            }
            reply(200, Value::Array(names(target)))
        }
        ("GET", ["issues"]) => {
            let state = param("state").unwrap_or_else(|| "open".into());
            let wanted: Vec<String> = param("labels")
                .map(|l| l.split(',').map(str::to_owned).collect())
                .unwrap_or_default();
            let per_page: usize = param("per_page").and_then(|v| v.parse().ok()).unwrap_or(30);
            let page: usize = param("page").and_then(|v| v.parse().ok()).unwrap_or(1);
            let matches = |st: &str, labels: &[String]| {
                (state == "all" || st == state) && wanted.iter().all(|w| labels.contains(w))
            };
            let mut all: Vec<(u64, Value)> = s
                .issues
                .iter()
                .filter(|i| matches(&i.state, &i.labels))
                .map(|i| (i.number, s.issue_json(i)))
                .chain(
                    s.pulls
                        .iter()
                        .filter(|p| matches(&p.state, &p.labels))
                        .map(|p| (p.number, s.pull_as_issue(p))),
                )
                .collect();
            // Newest first, as GitHub lists them.
            all.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
            let page: Vec<Value> = all
                .into_iter()
                .skip((page.max(1) - 1) * per_page)
                .take(per_page)
                .map(|(_, v)| v)
                .collect();
            reply(200, Value::Array(page))
        }
        ("POST", ["issues"]) => {
            let number = s.take_number();
            let issue = Issue {
                number,
                title: text("title"),
                body: text("body"),
                state: "open".into(),
                state_reason: None,
                labels: list("labels"),
                comments: Vec::new(),
                events: Vec::new(),
            };
            let v = s.issue_json(&issue);
            s.issues.push(issue);
            reply(201, v)
        }
        ("PATCH", ["issues", n]) => {
            let n: u64 = n.parse().unwrap_or(0);
            let Some(i) = s.issues.iter_mut().find(|i| i.number == n) else {
                return not_found();
            };
            if let Some(st) = body["state"].as_str() {
                i.state = st.to_owned();
            }
            if let Some(r) = body["state_reason"].as_str() {
                i.state_reason = Some(r.to_owned());
            }
            let i = i.clone();
            reply(200, s.issue_json(&i))
        }
        ("POST", ["issues", n, "comments"])
            if s.pulls.iter().any(|p| p.number.to_string() == *n) =>
        {
            let n: u64 = n.parse().unwrap_or(0);
            let id = s.take_id();
            let url = format!("{}#issuecomment-{id}", s.pull_url(n));
            let c = json!({
                "id": id, "user": {"login": "tgs-bot[bot]", "type": "Bot"}, "author_association": "NONE",
                "body": text("body"), "html_url": url, "created_at": s.clock.to_string(),
            });
            s.pull_mut(n).comments.push(c.clone());
            reply(201, c)
        }
        ("GET", ["issues", n, "comments"])
            if s.issues.iter().any(|i| i.number.to_string() == *n) =>
        {
            let n: u64 = n.parse().unwrap_or(0);
            let Some(i) = s.issues.iter().find(|i| i.number == n) else {
                return not_found();
            };
            reply(200, Value::Array(i.events.clone()))
        }
        ("GET", ["pulls", n, list @ ("reviews" | "comments")])
        | ("GET", [list @ "issues", n, "comments"]) => {
            let n: u64 = n.parse().unwrap_or(0);
            let per_page: usize = param("per_page").and_then(|v| v.parse().ok()).unwrap_or(30);
            let page: usize = param("page").and_then(|v| v.parse().ok()).unwrap_or(1);
            let Some(p) = s.pulls.iter().find(|p| p.number == n) else {
                return not_found();
            };
            let all = match *list {
                "reviews" => &p.reviews,
                "comments" => &p.inline,
                _ => &p.comments,
            };
            let page: Vec<Value> = all
                .iter()
                .skip((page.max(1) - 1) * per_page)
                .take(per_page)
                .cloned()
                .collect();
            reply(200, Value::Array(page))
        }
        ("GET", ["activity"]) => {
            // Newest first, as GitHub lists them, filtered by `ref`.
            let wanted = param("ref");
            let found: Vec<Value> = s
                .activity
                .iter()
                .rev()
                .filter(|a| wanted.as_deref().is_none_or(|r| a["ref"] == r))
                .cloned()
                .collect();
            reply(200, Value::Array(found))
        }
        ("GET", ["collaborators", login, "permission"]) => {
            let perm = s
                .permissions
                .iter()
                .rev()
                .find(|(l, _)| l == login)
                .map(|(_, p)| p.clone())
                .unwrap_or_else(|| "read".into());
            reply(
                200,
                json!({ "permission": perm, "role_name": perm, "user": { "login": login } }),
            )
        }
        ("POST", ["issues", n, "comments"]) => {
            let n: u64 = n.parse().unwrap_or(0);
            let id = s.take_id();
            let at = s.clock.to_string();
            let web = format!("{WEB}/{}/{}/issues/{n}#issuecomment-{id}", s.owner, s.repo);
            let Some(i) = s.issues.iter_mut().find(|i| i.number == n) else {
                return not_found();
            };
            let c = json!({
                "id": id, "user": {"login": "tgs-bot[bot]", "type": "Bot"}, "author_association": "NONE",
                "body": text("body"), "html_url": web, "created_at": at,
            });
            i.comments.push(text("body"));
            i.events.push(c.clone());
            reply(201, c)
        }
        _ => not_found(),
    }
}
