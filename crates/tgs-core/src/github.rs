//! GitHub through its REST API: opening (or updating) the pull request for
//! a thought's branch, failure-alert issues, and reading a PR's state.
//!
//! Blocking, like the rest of tgs, over `ureq` with rustls. Idempotent where
//! it matters: a PR is looked up by its head branch before one is opened, and
//! GitHub's "A pull request already exists" answer turns into an update, so a
//! crash between "PR opened" and "recorded" never leaves two PRs. Alert issues
//! are found again by a hidden marker in their body.
//!
//! Rate limits and 5xx answers are retried with bounded waits; other failures
//! become [`Error::Failed`] messages that say what to fix. The token only ever
//! travels in the `Authorization` header (marked sensitive) and is never
//! logged or shown.

mod content;
mod markdown;
mod remote;
mod reviews;
mod text;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use ureq::http::{self, header, HeaderValue};

use crate::backlog::Posted;
use crate::forge::{Forge, OpenedPr, PullRequest};
use crate::{Error, ForgeErrorKind};

pub use content::{
    alert_body, alert_comment, alert_title, code_span, fenced, inline, one_line, pr_body, pr_title,
    resolve_comment, revision_reply, thought_marker, FailureAlert, PrBodyInput, RevisionReply,
    MAX_BODY_LEN, MAX_TITLE_CHARS, REPLY_MARKER,
};
pub use remote::{
    parse_remote_url, parse_slug, pick_token, redact_url, Config, RemoteRepo, DEFAULT_API_URL,
    TOKEN_VARS,
};
pub use reviews::{parse_event, parse_pr_info, PrInfo, NEEDS_HUMAN_LABEL};
pub use text::neutralize_mentions;

/// The label of failure-alert issues (GitHub creates it on first use).
pub const FAILED_LABEL: &str = "tgs:failed";
/// The REST API version tgs is written against.
pub const API_VERSION: &str = "2022-11-28";
/// Response bodies larger than this are refused (a page of 100 PRs is far less).
const MAX_RESPONSE_BYTES: u64 = 32 * 1024 * 1024;
/// Pages of 100 open alert issues read at most when looking for one.
const MAX_ISSUE_PAGES: u32 = 10;
/// GitHub asks for at least a minute after a secondary rate limit without
/// saying how long.
const SECONDARY_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// Where a pull request stands, for `tgs server sync-prs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrState {
    Open,
    Merged,
    ClosedUnmerged,
}

/// How rate-limited and failing (5xx, network) requests are retried.
#[derive(Clone)]
pub struct RetryPolicy {
    /// Tries per request, the first included (at least 1).
    pub max_attempts: u32,
    /// The first wait after a 5xx or network failure; doubled each time.
    pub base_delay: Duration,
    /// The longest single wait after a 5xx or network failure.
    pub max_delay: Duration,
    /// All waits for one request together. A rate limit that resets later
    /// than this fails at once with a message saying when it resets.
    pub max_total_wait: Duration,
    sleep: Arc<dyn Fn(Duration) + Send + Sync>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            max_total_wait: Duration::from_secs(120),
            sleep: Arc::new(crate::clock::sleep),
        }
    }
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_attempts", &self.max_attempts)
            .field("base_delay", &self.base_delay)
            .field("max_delay", &self.max_delay)
            .field("max_total_wait", &self.max_total_wait)
            .finish_non_exhaustive()
    }
}

impl RetryPolicy {
    /// A policy that sleeps for real; see the fields for what each bounds.
    pub fn new(
        max_attempts: u32,
        base_delay: Duration,
        max_delay: Duration,
        max_total_wait: Duration,
    ) -> Self {
        RetryPolicy {
            max_attempts,
            base_delay,
            max_delay,
            max_total_wait,
            ..RetryPolicy::default()
        }
    }

    /// Wait with `sleep` instead of `std::thread::sleep`: tests record the
    /// waits a rate limit asks for without spending them.
    pub fn with_sleep(mut self, sleep: impl Fn(Duration) + Send + Sync + 'static) -> Self {
        self.sleep = Arc::new(sleep);
        self
    }

    /// The wait before try `attempt + 1` after a 5xx or network failure.
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// A client for one repository.
pub struct GitHub {
    cfg: Config,
    agent: ureq::Agent,
    retry: RetryPolicy,
}

impl fmt::Debug for GitHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitHub")
            .field("cfg", &self.cfg)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl GitHub {
    pub fn new(cfg: Config) -> GitHub {
        let agent = ureq::Agent::config_builder()
            // 4xx/5xx are answers to read (GitHub explains them in the body).
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        GitHub {
            cfg,
            agent,
            retry: RetryPolicy::default(),
        }
    }

    /// The client the environment asks for, or None without a token; see
    /// [`Config::from_vars`]. `vars` is a lookup such as
    /// `|k| std::env::var(k).ok()`, `origin_url` the origin remote's URL.
    pub fn from_env(
        vars: impl Fn(&str) -> Option<String>,
        origin_url: Option<&str>,
    ) -> Result<Option<GitHub>, Error> {
        Ok(Config::from_vars(vars, origin_url)?.map(GitHub::new))
    }

    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// `owner/name`.
    pub fn repo(&self) -> String {
        self.cfg.slug()
    }

    /// `https://github.com/o/r`, for [`PrBodyInput::repo_web_url`].
    pub fn repo_web_url(&self) -> Option<String> {
        self.cfg.web_url.clone()
    }

    /// The open PR whose head is `branch` (in this repository), if any.
    pub fn find_open_pr(&self, branch: &str) -> Result<Option<OpenedPr>, Error> {
        self.open_pr_for(branch).map_err(|e| self.error(e))
    }

    /// Whether the PR (a number, `#12`, or its URL) is open, merged, or
    /// closed without merging.
    pub fn pr_state(&self, pr_url_or_number: &str) -> Result<PrState, Error> {
        let n = parse_pr_ref(pr_url_or_number, &self.cfg.owner, &self.cfg.name)?;
        let pr = self
            .call(&Call::get(
                format!("{}/pulls/{n}", self.repo_path()),
                format!("reading pull request #{n}"),
                "pull requests: read",
            ))
            .map_err(|e| self.error(e))?;
        Ok(pr_state_of(&pr))
    }

    /// Tell humans that `agent` cannot start sessions (its provider refused:
    /// credit, credentials): one issue labeled [`FAILED_LABEL`] per agent,
    /// commented on while it stays open. Returns its URL.
    pub fn alert_agent(&self, agent: &str, detail: &str) -> Result<String, Error> {
        let marker = agent_marker(agent);
        let open = self.open_marked(&marker).map_err(|e| self.error(e))?;
        let text = content::agent_alert_text(agent, detail);
        if let Some((number, url)) = open.into_iter().next() {
            self.comment(number, &text, "commenting on the agent's issue")
                .map_err(|e| self.error(e))?;
            return Ok(url);
        }
        let mut call = Call::post(
            format!("{}/issues", self.repo_path()),
            json!({
                "title": content::agent_alert_title(agent),
                "body": format!("{marker}\n{text}"),
                "labels": [FAILED_LABEL],
            }),
            "opening the agent's issue".to_owned(),
            "issues: write",
        );
        call.retry_failures = false;
        let issue = self.call(&call).map_err(|e| self.error(e))?;
        Ok(html_url(&issue))
    }

    /// Tell humans that a bug of tgs's ended a session: one issue labeled
    /// [`FAILED_LABEL`], opened only when none is open (said once, not per
    /// session). Returns its URL when it was opened now.
    pub fn alert_internal(&self, detail: &str) -> Result<Option<String>, Error> {
        let open = self
            .open_marked(INTERNAL_MARKER)
            .map_err(|e| self.error(e))?;
        if !open.is_empty() {
            return Ok(None);
        }
        let mut call = Call::post(
            format!("{}/issues", self.repo_path()),
            json!({
                "title": "tgs: a session ended with an internal error",
                "body": format!("{INTERNAL_MARKER}\n{}", content::internal_alert_text(detail)),
                "labels": [FAILED_LABEL],
            }),
            "opening the internal-error issue".to_owned(),
            "issues: write",
        );
        call.retry_failures = false;
        let issue = self.call(&call).map_err(|e| self.error(e))?;
        Ok(Some(html_url(&issue)))
    }

    /// Close the open issue about `agent`, if any (it was resumed).
    pub fn resolve_agent_alert(&self, agent: &str) -> Result<Option<String>, Error> {
        let open = self
            .open_marked(&agent_marker(agent))
            .map_err(|e| self.error(e))?;
        for (number, _) in &open {
            self.comment(
                *number,
                &format!("Resumed: sessions with {} start again.\n", code_span(agent)),
                "commenting on the agent's issue",
            )
            .map_err(|e| self.error(e))?;
            self.call(&Call::patch(
                format!("{}/issues/{number}", self.repo_path()),
                json!({ "state": "closed", "state_reason": "completed" }),
                format!("closing the agent's issue #{number}"),
                "issues: write",
            ))
            .map_err(|e| self.error(e))?;
        }
        Ok(open.into_iter().next().map(|(_, url)| url))
    }

    /// Report a failed thought: open an issue labeled [`FAILED_LABEL`], or
    /// comment on the one already open for this thought. Returns its URL.
    pub fn alert_failure(&self, a: &FailureAlert) -> Result<String, Error> {
        if a.thought_dir.trim().is_empty() {
            return Err(Error::invalid(
                "a failure alert needs the thought's directory",
            ));
        }
        let mut round = 0;
        loop {
            round += 1;
            let open = self
                .open_alerts(&a.thought_dir)
                .map_err(|e| self.error(e))?;
            if let Some((number, url)) = open.into_iter().next() {
                self.comment(number, &alert_comment(a), "commenting on the failure issue")
                    .map_err(|e| self.error(e))?;
                return Ok(url);
            }
            match self.create_alert(a) {
                Ok(url) => return Ok(url),
                // Creating an issue is not idempotent, so it is not retried
                // blindly: it may have been created before the 5xx, which the
                // search at the top of the loop then finds.
                Err(e) if e.transient() && round < self.retry.max_attempts => {
                    (self.retry.sleep)(self.retry.backoff(round));
                }
                Err(e) => return Err(self.error(e)),
            }
        }
    }

    /// Ask humans an agent's question (see [`crate::forge::Forge::ask_humans`]).
    pub fn ask_humans(&self, q: &crate::forge::QuestionPost) -> Result<Posted, Error> {
        let text = content::question_text(q);
        if let Some(pr_url) = &q.pr_url {
            let n = parse_pr_ref(pr_url, &self.cfg.owner, &self.cfg.name)?;
            let (url, id) = self
                .comment_with_id(n, &text, "asking the agent's question on pull request")
                .map_err(|e| self.error(e))?;
            return Ok(Posted {
                url,
                number: n,
                after: id,
            });
        }
        let open = self
            .open_alerts(&q.thought_dir)
            .map_err(|e| self.error(e))?;
        if let Some((n, _)) = open.into_iter().next() {
            let (url, id) = self
                .comment_with_id(n, &text, "asking the agent's question on issue")
                .map_err(|e| self.error(e))?;
            return Ok(Posted {
                url,
                number: n,
                after: id,
            });
        }
        let mut call = Call::post(
            format!("{}/issues", self.repo_path()),
            json!({
                "title": content::question_title(&q.title),
                "body": format!("{}\n{text}", thought_marker(&q.thought_dir)),
                "labels": [FAILED_LABEL],
            }),
            "opening an issue for the agent's question".to_owned(),
            "issues: write",
        );
        call.retry_failures = false;
        let v = self.call(&call).map_err(|e| self.error(e))?;
        Ok(Posted {
            url: html_url(&v),
            number: v["number"].as_u64().unwrap_or_default(),
            after: 0,
        })
    }

    /// The conversation comments of issue (or pull request) `number`.
    pub fn issue_comments(&self, number: u64) -> Result<Vec<crate::review::PrEvent>, Error> {
        self.list(
            &format!("{}/issues/{number}/comments", self.repo_path()),
            number,
            crate::review::Source::Comment,
        )
    }

    /// After a success: comment on and close the thought's open alert issue
    /// (every one, should there be several). Returns the (first) issue's URL,
    /// or None when none was open.
    pub fn resolve_alert(
        &self,
        thought_dir: &str,
        pr_url: Option<&str>,
    ) -> Result<Option<String>, Error> {
        let open = self.open_alerts(thought_dir).map_err(|e| self.error(e))?;
        let text = resolve_comment(thought_dir, pr_url);
        for (number, _) in &open {
            self.comment(*number, &text, "commenting on the failure issue")
                .map_err(|e| self.error(e))?;
            self.call(&Call::patch(
                format!("{}/issues/{number}", self.repo_path()),
                json!({ "state": "closed", "state_reason": "completed" }),
                format!("closing failure issue #{number}"),
                "issues: write",
            ))
            .map_err(|e| self.error(e))?;
        }
        Ok(open.into_iter().next().map(|(_, url)| url))
    }

    fn repo_path(&self) -> String {
        format!("/repos/{}/{}", self.cfg.owner, self.cfg.name)
    }

    fn error(&self, e: ApiError) -> Error {
        let kind = if e.transient() {
            ForgeErrorKind::Transient
        } else if e.status() == Some(422) && e.mentions("no commits between") {
            ForgeErrorKind::NoCommits
        } else if matches!(e.status(), Some(401 | 403)) {
            ForgeErrorKind::Auth
        } else {
            ForgeErrorKind::Refused
        };
        Error::Forge {
            kind,
            message: e.message(&self.cfg),
        }
    }

    fn open_pr_for(&self, branch: &str) -> Result<Option<OpenedPr>, ApiError> {
        let head = format!("{}:{branch}", self.cfg.owner);
        let list = self.call(&Call::get(
            format!(
                "{}/pulls?state=open&head={}&per_page=100",
                self.repo_path(),
                query(&head)
            ),
            format!("looking for an open pull request for {branch}"),
            "pull requests: read",
        ))?;
        let found = list
            .as_array()
            .into_iter()
            .flatten()
            // GitHub filters by head already; a server that ignored the
            // filter must not make tgs update someone else's PR.
            .filter(|p| p["head"]["ref"].as_str().is_none_or(|r| r == branch))
            .filter_map(|p| Some((p["number"].as_u64()?, html_url(p))))
            .min_by_key(|(n, _)| *n);
        Ok(found.map(|(number, url)| OpenedPr {
            url,
            number,
            updated: true,
        }))
    }

    fn create_pr(&self, pr: &PullRequest, draft: bool) -> Result<OpenedPr, ApiError> {
        let v = self.call(&Call::post(
            format!("{}/pulls", self.repo_path()),
            json!({
                "title": pr.title,
                "head": pr.head,
                "base": pr.base,
                "body": pr.body,
                "draft": draft,
            }),
            format!("opening a pull request for {}", pr.head),
            "pull requests: write",
        ))?;
        Ok(OpenedPr {
            number: v["number"].as_u64().unwrap_or_default(),
            url: html_url(&v),
            updated: false,
        })
    }

    fn update_pr(&self, number: u64, pr: &PullRequest) -> Result<OpenedPr, ApiError> {
        let v = self.call(&Call::patch(
            format!("{}/pulls/{number}", self.repo_path()),
            json!({ "title": pr.title, "body": pr.body }),
            format!("updating pull request #{number}"),
            "pull requests: write",
        ))?;
        Ok(OpenedPr {
            number,
            url: html_url(&v),
            updated: true,
        })
    }

    /// After "A pull request already exists": find it, waiting a little in
    /// case GitHub's list lags behind its check.
    fn refind_pr(&self, branch: &str) -> Result<Option<OpenedPr>, ApiError> {
        for round in 1..=3 {
            if let Some(pr) = self.open_pr_for(branch)? {
                return Ok(Some(pr));
            }
            if round < 3 {
                (self.retry.sleep)(self.retry.backoff(round));
            }
        }
        Ok(None)
    }

    fn open_or_update(&self, pr: &PullRequest) -> Result<OpenedPr, ApiError> {
        let opened = match self.open_pr_for(&pr.head)? {
            Some(existing) => self.update_pr(existing.number, pr)?,
            None => match self.create_pr(pr, pr.draft) {
                Ok(o) => o,
                // Opened between the lookup and now (an earlier run that
                // crashed before recording it, or another worker).
                Err(e) if e.status() == Some(422) && e.mentions("already exists") => {
                    match self.refind_pr(&pr.head)? {
                        Some(existing) => self.update_pr(existing.number, pr)?,
                        None => return Err(e),
                    }
                }
                // Private repositories on some plans have no draft PRs.
                Err(e) if pr.draft && e.status() == Some(422) && e.mentions("draft") => {
                    tracing::warn!(target: "tgs::github", "draft pull requests are not supported here; opening a ready one");
                    self.create_pr(pr, false)?
                }
                Err(e) => return Err(e),
            },
        };
        let n = opened.number;
        if !pr.labels.is_empty() {
            let r = self.call(&Call::post(
                format!("{}/issues/{n}/labels", self.repo_path()),
                json!({ "labels": pr.labels }),
                format!("labeling pull request #{n}"),
                "issues: write",
            ));
            tolerate_unprocessable(r, "labels")?;
        }
        if !pr.reviewers.is_empty() {
            // `org/team` names a team; anything else a user.
            let (teams, users): (Vec<&String>, Vec<&String>) =
                pr.reviewers.iter().partition(|r| r.contains('/'));
            let teams: Vec<&str> = teams.iter().filter_map(|t| t.rsplit('/').next()).collect();
            let r = self.call(&Call::post(
                format!("{}/pulls/{n}/requested_reviewers", self.repo_path()),
                json!({ "reviewers": users, "team_reviewers": teams }),
                format!("requesting reviewers on pull request #{n}"),
                "pull requests: write",
            ));
            tolerate_unprocessable(r, "reviewers")?;
        }
        Ok(opened)
    }

    /// Open alert issues for `thought_dir`, lowest number first.
    fn open_alerts(&self, thought_dir: &str) -> Result<Vec<(u64, String)>, ApiError> {
        self.open_marked(&thought_marker(thought_dir))
    }

    /// Open issues labeled [`FAILED_LABEL`] whose body carries `marker` on a line of its own.
    fn open_marked(&self, marker: &str) -> Result<Vec<(u64, String)>, ApiError> {
        let mut found = Vec::new();
        for page in 1..=MAX_ISSUE_PAGES {
            let list = self.call(&Call::get(
                format!(
                    "{}/issues?state=open&labels={}&per_page=100&page={page}",
                    self.repo_path(),
                    query(FAILED_LABEL)
                ),
                "looking for the failure issue".to_owned(),
                "issues: read",
            ))?;
            let items = list.as_array().cloned().unwrap_or_default();
            for issue in &items {
                // The issues list includes PRs, whose bodies also carry a marker.
                let is_pr = issue.get("pull_request").is_some_and(|p| !p.is_null());
                // The marker is the body's first line: a marker further down
                // is text (a log tail quoting another thought's marker) and
                // must not tie this issue to that thought.
                let marked = issue["body"]
                    .as_str()
                    .is_some_and(|b| b.lines().next().is_some_and(|l| l.trim() == marker));
                if let (false, true, Some(n)) = (is_pr, marked, issue["number"].as_u64()) {
                    found.push((n, html_url(issue)));
                }
            }
            if items.len() < 100 {
                break;
            }
        }
        found.sort();
        Ok(found)
    }

    fn create_alert(&self, a: &FailureAlert) -> Result<String, ApiError> {
        let mut call = Call::post(
            format!("{}/issues", self.repo_path()),
            json!({
                "title": alert_title(&a.title),
                "body": alert_body(a),
                "labels": [FAILED_LABEL],
            }),
            "opening the failure issue".to_owned(),
            "issues: write",
        );
        call.retry_failures = false;
        let v = self.call(&call)?;
        let n = v["number"].as_u64().unwrap_or_default();
        // GitHub drops labels silently for tokens without push access; the
        // label is how the issue is found again, so insist on it.
        let labeled =
            v["labels"].as_array().into_iter().flatten().any(|l| {
                l["name"].as_str() == Some(FAILED_LABEL) || l.as_str() == Some(FAILED_LABEL)
            });
        if !labeled {
            self.call(&Call::post(
                format!("{}/issues/{n}/labels", self.repo_path()),
                json!({ "labels": [FAILED_LABEL] }),
                format!("labeling failure issue #{n}"),
                "issues: write",
            ))?;
        }
        Ok(html_url(&v))
    }

    /// Comment on issue `number`; returns the comment's URL and id.
    fn comment_with_id(
        &self,
        number: u64,
        body: &str,
        action: &str,
    ) -> Result<(String, u64), ApiError> {
        let v = self.call(&Call::post(
            format!("{}/issues/{number}/comments", self.repo_path()),
            json!({ "body": body }),
            format!("{action} #{number}"),
            "issues: write",
        ))?;
        Ok((html_url(&v), v["id"].as_u64().unwrap_or_default()))
    }

    fn comment(&self, number: u64, body: &str, action: &str) -> Result<(), ApiError> {
        self.call(&Call::post(
            format!("{}/issues/{number}/comments", self.repo_path()),
            json!({ "body": body }),
            format!("{action} #{number}"),
            "issues: write",
        ))
        .map(|_| ())
    }

    /// One API request, retried on rate limits and (when allowed) on 5xx
    /// answers and network failures, within the retry policy's bounds.
    fn call(&self, c: &Call) -> Result<Value, ApiError> {
        let url = format!("{}{}", self.cfg.api_url, c.path);
        let p = &self.retry;
        let mut waited = Duration::ZERO;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (problem, wait) = match self.send(c.verb, &url, c.body.as_ref()) {
                Err(e) => {
                    let wait = c.retry_failures.then(|| p.backoff(attempt));
                    (Problem::Transport(e), wait)
                }
                Ok(r) if (200..300).contains(&r.status) => {
                    return Ok(serde_json::from_str(&r.body).unwrap_or(Value::Null));
                }
                Ok(r) => {
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    if let Some(asked) = rate_limit_wait(&r, now) {
                        let wait = asked.unwrap_or_else(|| p.backoff(attempt));
                        (
                            Problem::RateLimited {
                                status: r.status,
                                wait,
                            },
                            Some(wait),
                        )
                    } else if r.status >= 500 {
                        let wait = c.retry_failures.then(|| p.backoff(attempt));
                        (
                            Problem::Server {
                                status: r.status,
                                tries: attempt,
                            },
                            wait,
                        )
                    } else {
                        let (message, errors) = github_message(&r.body);
                        return Err(c.fail(Problem::Status {
                            status: r.status,
                            message,
                            errors,
                        }));
                    }
                }
            };
            let Some(wait) = wait else {
                return Err(c.fail(problem));
            };
            if attempt >= p.max_attempts.max(1) || waited + wait > p.max_total_wait {
                return Err(c.fail(problem));
            }
            tracing::debug!(target: "tgs::github", "{} {}: {}; retrying in {:?}", c.verb.as_str(), c.path, problem.short(), wait);
            (p.sleep)(wait);
            waited += wait;
        }
    }

    fn send(&self, verb: Verb, url: &str, body: Option<&Value>) -> Result<Reply, String> {
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", self.cfg.token))
            .map_err(|_| format!("{} is not a valid HTTP header value", self.cfg.token_var))?;
        auth.set_sensitive(true);
        let builder = http::Request::builder()
            .method(verb.as_str())
            .uri(url)
            .header(header::AUTHORIZATION, auth)
            .header(header::ACCEPT, "application/vnd.github+json")
            .header("x-github-api-version", API_VERSION)
            .header(
                header::USER_AGENT,
                concat!("tgs/", env!("CARGO_PKG_VERSION")),
            );
        let sent = match body {
            None => builder
                .body(())
                .map_err(|e| format!("bad request {url}: {e}"))
                .and_then(|r| self.agent.run(r).map_err(|e| e.to_string())),
            Some(v) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(v.to_string())
                .map_err(|e| format!("bad request {url}: {e}"))
                .and_then(|r| self.agent.run(r).map_err(|e| e.to_string())),
        };
        let mut res = sent?;
        let text = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_owned())
        };
        let (retry_after, remaining, reset, date) = (
            text("retry-after"),
            text("x-ratelimit-remaining"),
            text("x-ratelimit-reset"),
            text("date"),
        );
        let status = res.status().as_u16();
        let body = res
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .lossy_utf8(true)
            .read_to_string()
            .map_err(|e| e.to_string())?;
        Ok(Reply {
            status,
            body,
            retry_after,
            remaining,
            reset,
            date,
        })
    }
}

impl Forge for GitHub {
    fn name(&self) -> &str {
        "GitHub"
    }

    fn open_or_update_pr(&self, pr: &PullRequest) -> Result<OpenedPr, Error> {
        if pr.head.trim().is_empty() || pr.base.trim().is_empty() {
            return Err(Error::invalid(
                "a pull request needs a head and a base branch",
            ));
        }
        if pr.head == pr.base {
            return Err(Error::invalid(format!(
                "a pull request cannot merge {} into itself",
                pr.head
            )));
        }
        self.open_or_update(pr).map_err(|e| self.error(e))
    }

    fn web_url(&self) -> Option<String> {
        self.repo_web_url()
    }

    fn alert_failure(&self, f: &crate::forge::Failure) -> Result<Option<String>, Error> {
        let alert = FailureAlert {
            thought_dir: f.thought_dir.clone(),
            title: f.title.clone(),
            attempts: f.attempts,
            last_error: f.last_error.clone(),
            log_tail: f.log_tail.clone(),
        };
        GitHub::alert_failure(self, &alert).map(Some)
    }

    fn resolve_alert(
        &self,
        thought_dir: &str,
        pr_url: Option<&str>,
    ) -> Result<Option<String>, Error> {
        GitHub::resolve_alert(self, thought_dir, pr_url)
    }

    fn alert_agent(&self, agent: &str, detail: &str) -> Result<Option<String>, Error> {
        GitHub::alert_agent(self, agent, detail).map(Some)
    }

    fn resolve_agent_alert(&self, agent: &str) -> Result<Option<String>, Error> {
        GitHub::resolve_agent_alert(self, agent)
    }

    fn alert_internal(&self, detail: &str) -> Result<Option<String>, Error> {
        GitHub::alert_internal(self, detail)
    }

    fn human_stake_in(&self, branch: &str) -> Result<Option<String>, Error> {
        let Some(pr) = self.find_open_pr(branch)? else {
            return Ok(None);
        };
        let a = self.pr_activity(pr.number)?;
        let spoken = (a.reviews.iter().chain(&a.comments).chain(&a.inline))
            .any(|e| !e.body.trim_start().starts_with(content::REPLY_MARKER));
        Ok(spoken.then_some(pr.url))
    }

    fn reply_on_pr(&self, pr_url: &str, body: &str) -> Result<Option<String>, Error> {
        let n = parse_pr_ref(pr_url, &self.cfg.owner, &self.cfg.name)?;
        self.comment_on_pr(n, body).map(Some)
    }

    fn ask_humans(&self, q: &crate::forge::QuestionPost) -> Result<Option<Posted>, Error> {
        GitHub::ask_humans(self, q).map(Some)
    }

    fn hand_to_human(&self, pr_url: &str, why: &str) -> Result<(), Error> {
        let n = parse_pr_ref(pr_url, &self.cfg.owner, &self.cfg.name)?;
        self.label_pr(n, NEEDS_HUMAN_LABEL)?;
        self.comment_on_pr(n, &content::needs_human_comment(why))?;
        Ok(())
    }
}

/// The marker of the issue about an agent.
/// The first line of the issue that reports internal errors.
const INTERNAL_MARKER: &str = "<!-- tgs-internal-error -->";

fn agent_marker(agent: &str) -> String {
    format!("<!-- tgs-agent: {} -->", content::encode_path(agent))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Get,
    Post,
    Patch,
}

impl Verb {
    fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Patch => "PATCH",
        }
    }
}

/// One request and what to say when it fails.
struct Call {
    verb: Verb,
    /// From the API base, query included: `/repos/o/r/pulls?state=open`.
    path: String,
    body: Option<Value>,
    /// What was being done, for messages: "opening a pull request for x".
    action: String,
    /// The token permission the request needs, named in 403 messages.
    permission: &'static str,
    /// Retry 5xx answers and network failures (rate limits always are).
    retry_failures: bool,
}

impl Call {
    fn get(path: String, action: String, permission: &'static str) -> Call {
        Call {
            verb: Verb::Get,
            path,
            body: None,
            action,
            permission,
            retry_failures: true,
        }
    }

    fn post(path: String, body: Value, action: String, permission: &'static str) -> Call {
        Call {
            verb: Verb::Post,
            body: Some(body),
            ..Call::get(path, action, permission)
        }
    }

    fn patch(path: String, body: Value, action: String, permission: &'static str) -> Call {
        Call {
            verb: Verb::Patch,
            body: Some(body),
            ..Call::get(path, action, permission)
        }
    }

    fn fail(&self, problem: Problem) -> ApiError {
        ApiError {
            problem,
            action: self.action.clone(),
            permission: self.permission,
        }
    }
}

/// An HTTP answer, with the headers that steer retries.
#[derive(Debug, Clone, Default)]
struct Reply {
    status: u16,
    body: String,
    retry_after: Option<String>,
    remaining: Option<String>,
    reset: Option<String>,
    /// GitHub's clock when it answered (`Date`).
    date: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Problem {
    /// No HTTP answer (connection refused, timeout, TLS).
    Transport(String),
    /// Rate limited; the last wait asked for.
    RateLimited { status: u16, wait: Duration },
    /// A 5xx answer, after `tries` tries.
    Server { status: u16, tries: u32 },
    /// Any other answer: GitHub's message and its `errors[]`.
    Status {
        status: u16,
        message: String,
        errors: Vec<String>,
    },
}

impl Problem {
    fn short(&self) -> String {
        match self {
            Problem::Transport(e) => e.clone(),
            Problem::RateLimited { status, .. } => format!("rate limited (HTTP {status})"),
            Problem::Server { status, .. } | Problem::Status { status, .. } => {
                format!("HTTP {status}")
            }
        }
    }
}

/// A failed request, turned into an [`Error`] by [`ApiError::message`].
#[derive(Debug, Clone)]
struct ApiError {
    problem: Problem,
    action: String,
    permission: &'static str,
}

impl ApiError {
    fn status(&self) -> Option<u16> {
        match &self.problem {
            Problem::Transport(_) => None,
            Problem::RateLimited { status, .. }
            | Problem::Server { status, .. }
            | Problem::Status { status, .. } => Some(*status),
        }
    }

    /// Whether GitHub's message or errors mention `needle` (any case).
    fn mentions(&self, needle: &str) -> bool {
        let needle = needle.to_lowercase();
        match &self.problem {
            Problem::Status {
                message, errors, ..
            } => std::iter::once(message)
                .chain(errors)
                .any(|m| m.to_lowercase().contains(&needle)),
            _ => false,
        }
    }

    /// A failure worth trying again later (not a refusal).
    fn transient(&self) -> bool {
        matches!(
            self.problem,
            Problem::Transport(_) | Problem::Server { .. } | Problem::RateLimited { .. }
        )
    }

    fn message(&self, cfg: &Config) -> String {
        let repo = cfg.slug();
        let said = |m: &str| {
            if m.is_empty() {
                String::new()
            } else {
                format!(" (GitHub said: {m})")
            }
        };
        let reason = match &self.problem {
            Problem::Transport(e) => format!("cannot reach {}: {e}", cfg.api_url),
            Problem::RateLimited { status, wait } => format!(
                "the API rate limit is exhausted (HTTP {status}); it frees up in about {}s; \
                 try again then",
                wait.as_secs().max(1)
            ),
            Problem::Server { status, tries } => format!(
                "GitHub answered HTTP {status} ({tries} {}); try again later",
                if *tries == 1 { "try" } else { "tries" }
            ),
            Problem::Status {
                status: 401,
                message,
                ..
            } => format!(
                "the token was rejected (TGS_GITHUB_TOKEN/GITHUB_TOKEN/GH_TOKEN; this one is from {}){}",
                cfg.token_var,
                said(message)
            ),
            Problem::Status {
                status: 403,
                message,
                ..
            } => format!(
                "the token lacks the \"{}\" permission on {repo}{}",
                self.permission,
                said(message)
            ),
            Problem::Status { status: 404, .. } => {
                format!("repository {repo} not found, or the token cannot see it")
            }
            Problem::Status {
                status: 422,
                message,
                errors,
            } => {
                if errors.is_empty() {
                    non_empty_or(message, "GitHub refused the request (HTTP 422)")
                } else {
                    errors.join("; ")
                }
            }
            Problem::Status {
                status, message, ..
            } => format!("HTTP {status}{}", said(message)),
        };
        format!("GitHub ({}): {reason}", self.action)
    }
}

/// Labels and reviewers are extras: one GitHub refuses as unprocessable (a
/// reviewer who is not a collaborator, the PR's author) must not fail a PR
/// that is open. Other failures (permissions, outages) still do.
fn tolerate_unprocessable(r: Result<Value, ApiError>, what: &str) -> Result<(), ApiError> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.status() == Some(422) => {
            let (msg, errs) = match &e.problem {
                Problem::Status {
                    message, errors, ..
                } => (message.clone(), errors.join("; ")),
                _ => (String::new(), String::new()),
            };
            tracing::warn!(target: "tgs::github", "GitHub did not take the {what}: {msg} {errs}");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Whether an answer is a rate limit, and if so the wait it asks for (None:
/// it does not say, back off as usual). The reset time is on GitHub's clock,
/// so it is counted from GitHub's `Date`; `now` (this machine's clock, in
/// seconds since the epoch, maybe minutes off) only when GitHub sent none.
fn rate_limit_wait(r: &Reply, now: u64) -> Option<Option<Duration>> {
    let now = r.date.as_deref().and_then(http_date).unwrap_or(now);
    let exhausted = r.remaining.as_deref() == Some("0");
    let secondary = r.body.to_lowercase().contains("secondary rate limit");
    let limited = r.status == 429
        || (r.status == 403
            && (exhausted
                || r.retry_after.is_some()
                || secondary
                || r.body.to_lowercase().contains("rate limit exceeded")));
    if !limited {
        return None;
    }
    if let Some(secs) = r.retry_after.as_deref().and_then(|s| s.parse::<u64>().ok()) {
        return Some(Some(Duration::from_secs(secs)));
    }
    if let (true, Some(reset)) = (
        exhausted,
        r.reset.as_deref().and_then(|s| s.parse::<u64>().ok()),
    ) {
        // A second more: the reset time is rounded down to the second.
        return Some(Some(Duration::from_secs(reset.saturating_sub(now) + 1)));
    }
    if secondary {
        return Some(Some(SECONDARY_LIMIT_WAIT));
    }
    Some(None)
}

/// An HTTP `Date` (`Sun, 06 Nov 1994 08:49:37 GMT`), in seconds since the epoch.
fn http_date(s: &str) -> Option<u64> {
    let t = jiff::fmt::rfc2822::parse(s).ok()?.timestamp();
    u64::try_from(t.as_second()).ok()
}

/// GitHub's `message` and the texts of its `errors[]` (strings, or objects
/// with a `message`, or `resource`/`field`/`code`), each one bounded line.
fn github_message(body: &str) -> (String, Vec<String>) {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let message = v["message"]
        .as_str()
        .map(|m| one_line(m, 300))
        .unwrap_or_else(|| one_line(body, 200));
    let errors = v["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            if let Some(s) = e.as_str() {
                return Some(s.to_owned());
            }
            if let Some(m) = e["message"].as_str() {
                return Some(m.to_owned());
            }
            let part = |k: &str| e[k].as_str().unwrap_or("").to_owned();
            let (res, field, code) = (part("resource"), part("field"), part("code"));
            (!code.is_empty()).then(|| {
                format!("{res}.{field} {code}")
                    .trim_start_matches('.')
                    .to_owned()
            })
        })
        .map(|m| one_line(&m, 300))
        .collect();
    (message, errors)
}

fn pr_state_of(pr: &Value) -> PrState {
    let merged = pr["merged"].as_bool() == Some(true)
        || pr["merged_at"].as_str().is_some_and(|s| !s.is_empty());
    if merged {
        PrState::Merged
    } else if pr["state"].as_str() == Some("open") {
        PrState::Open
    } else {
        PrState::ClosedUnmerged
    }
}

/// A PR number from `12`, `#12`, or a URL ending in `/o/r/pull/12` (the
/// web page) or `/repos/o/r/pulls/12` (the API), which must name `owner/name`.
pub fn parse_pr_ref(pr: &str, owner: &str, name: &str) -> Result<u64, Error> {
    let s = pr.trim();
    let bad = || Error::invalid(format!("{s:?} is not a pull request number or URL"));
    let digits = s.strip_prefix('#').unwrap_or(s);
    if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
        return digits.parse().map_err(|_| bad());
    }
    let cut = s.split(['?', '#']).next().unwrap_or(s);
    let segs: Vec<&str> = cut.trim_end_matches('/').split('/').collect();
    let at = segs
        .iter()
        .rposition(|seg| *seg == "pull" || *seg == "pulls")
        .ok_or_else(bad)?;
    let number: u64 = segs
        .get(at + 1)
        .and_then(|n| n.parse().ok())
        .ok_or_else(bad)?;
    let (o, r) = match at.checked_sub(2) {
        Some(i) => (segs[i], segs[i + 1]),
        None => return Err(bad()),
    };
    if !o.eq_ignore_ascii_case(owner) || !r.eq_ignore_ascii_case(name) {
        return Err(Error::invalid(format!(
            "{s} is a pull request of {o}/{r}, not of {owner}/{name}"
        )));
    }
    Ok(number)
}

fn html_url(v: &Value) -> String {
    v["html_url"].as_str().unwrap_or_default().to_owned()
}

fn non_empty_or(s: &str, default: &str) -> String {
    if s.trim().is_empty() {
        default.to_owned()
    } else {
        s.to_owned()
    }
}

/// Percent-encode a query value (everything but unreserved characters).
fn query(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, headers: &[(&str, &str)], body: &str) -> Reply {
        let h = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| (*v).to_owned())
        };
        Reply {
            status,
            body: body.into(),
            retry_after: h("retry-after"),
            remaining: h("x-ratelimit-remaining"),
            reset: h("x-ratelimit-reset"),
            date: h("date"),
        }
    }

    #[test]
    fn rate_limits_are_told_apart_from_refusals() {
        let secs = |s| Some(Some(Duration::from_secs(s)));
        assert_eq!(
            rate_limit_wait(&reply(429, &[("retry-after", "7")], ""), 0),
            secs(7)
        );
        assert_eq!(rate_limit_wait(&reply(429, &[], ""), 0), Some(None));
        let reset = [
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1030"),
        ];
        assert_eq!(rate_limit_wait(&reply(403, &reset, ""), 1000), secs(31));
        assert_eq!(
            rate_limit_wait(&reply(403, &reset, ""), 2000),
            secs(1),
            "already reset"
        );
        let secondary = r#"{"message":"You have exceeded a secondary rate limit."}"#;
        assert_eq!(rate_limit_wait(&reply(403, &[], secondary), 0), secs(60));
        // A plain 403 is a missing permission, not a limit.
        let plain = r#"{"message":"Resource not accessible by personal access token"}"#;
        assert_eq!(
            rate_limit_wait(&reply(403, &[("x-ratelimit-remaining", "4999")], plain), 0),
            None
        );
        assert_eq!(rate_limit_wait(&reply(502, &[], ""), 0), None);
    }

    #[test]
    fn a_reset_time_is_counted_on_githubs_clock_not_this_machines() {
        // GitHub says it is 1000 s past the epoch, and resets at 1030.
        let date = "Thu, 01 Jan 1970 00:16:40 GMT";
        assert_eq!(http_date(date), Some(1000));
        let limited = [
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1030"),
            ("date", date),
        ];
        let wait = Some(Some(Duration::from_secs(31)));
        // This machine three minutes ahead, then three minutes behind.
        assert_eq!(rate_limit_wait(&reply(403, &limited, ""), 1180), wait);
        assert_eq!(rate_limit_wait(&reply(403, &limited, ""), 820), wait);
        assert_eq!(http_date("yesterday"), None);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
            ..RetryPolicy::default()
        };
        let waits: Vec<u128> = (1..=5).map(|a| p.backoff(a).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
        assert!(format!("{p:?}").contains("max_attempts: 5"));
    }

    #[test]
    fn github_messages_and_errors() {
        let (m, e) = github_message(
            r#"{"message":"Validation Failed","errors":[{"resource":"PullRequest","code":"custom","message":"No commits between main and tgs/x"}]}"#,
        );
        assert_eq!(m, "Validation Failed");
        assert_eq!(e, ["No commits between main and tgs/x"]);
        let (_, e) = github_message(
            r#"{"message":"Validation Failed","errors":[{"resource":"PullRequest","field":"head","code":"invalid"},"plain"]}"#,
        );
        assert_eq!(e, ["PullRequest.head invalid", "plain"]);
        let (m, e) = github_message("<html>bad gateway</html>");
        assert_eq!((m.as_str(), e.len()), ("<html>bad gateway</html>", 0));
    }

    #[test]
    fn error_messages_say_what_to_fix() {
        let cfg = Config::from_vars(
            |k| match k {
                "GH_TOKEN" => Some("secret-token".into()),
                "GITHUB_REPOSITORY" => Some("o/r".into()),
                _ => None,
            },
            None,
        )
        .unwrap()
        .unwrap();
        let e = |status, body: &str| {
            let (message, errors) = github_message(body);
            ApiError {
                problem: Problem::Status {
                    status,
                    message,
                    errors,
                },
                action: "opening a pull request for tgs/x".into(),
                permission: "pull requests: write",
            }
            .message(&cfg)
        };
        let m = e(401, r#"{"message":"Bad credentials"}"#);
        assert!(m.starts_with("GitHub (opening a pull request for tgs/x): the token was rejected (TGS_GITHUB_TOKEN/GITHUB_TOKEN/GH_TOKEN"), "{m}");
        assert!(
            m.contains("from GH_TOKEN") && !m.contains("secret-token"),
            "{m}"
        );
        let m = e(
            403,
            r#"{"message":"Resource not accessible by personal access token"}"#,
        );
        assert!(
            m.contains("lacks the \"pull requests: write\" permission on o/r"),
            "{m}"
        );
        let m = e(404, r#"{"message":"Not Found"}"#);
        assert!(
            m.ends_with("repository o/r not found, or the token cannot see it"),
            "{m}"
        );
        let m = e(
            422,
            r#"{"message":"Validation Failed","errors":[{"message":"No commits between main and tgs/x"}]}"#,
        );
        assert!(m.ends_with(": No commits between main and tgs/x"), "{m}");
        let m = e(410, r#"{"message":"Issues are disabled for this repo"}"#);
        assert!(
            m.ends_with("HTTP 410 (GitHub said: Issues are disabled for this repo)"),
            "{m}"
        );
    }

    #[test]
    fn pr_refs() {
        let n = |s: &str| parse_pr_ref(s, "acme", "widgets");
        assert_eq!(n("12").unwrap(), 12);
        assert_eq!(n(" #7 ").unwrap(), 7);
        assert_eq!(n("https://github.com/acme/widgets/pull/42").unwrap(), 42);
        assert_eq!(
            n("https://github.com/Acme/Widgets/pull/42/files?x=1#y").unwrap(),
            42
        );
        assert_eq!(
            n("https://api.github.com/repos/acme/widgets/pulls/5").unwrap(),
            5
        );
        assert!(n("https://github.com/other/widgets/pull/42")
            .unwrap_err()
            .to_string()
            .contains("not of acme/widgets"));
        for bad in [
            "",
            "#",
            "abc",
            "https://github.com/acme/widgets/issues/3",
            "pull/3",
            "https://github.com/acme/widgets/pull/x",
        ] {
            assert!(n(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pr_states() {
        assert_eq!(
            pr_state_of(&json!({"state": "open", "merged_at": null})),
            PrState::Open
        );
        assert_eq!(
            pr_state_of(&json!({"state": "closed", "merged_at": "2024-01-01T00:00:00Z"})),
            PrState::Merged
        );
        assert_eq!(
            pr_state_of(&json!({"state": "closed", "merged": true})),
            PrState::Merged
        );
        assert_eq!(
            pr_state_of(&json!({"state": "closed", "merged_at": null})),
            PrState::ClosedUnmerged
        );
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(query("acme:tgs/add login"), "acme%3Atgs%2Fadd%20login");
        assert_eq!(query(FAILED_LABEL), "tgs%3Afailed");
    }

    #[test]
    fn debug_never_shows_the_token() {
        let gh = GitHub::from_env(
            |k| (k == "GITHUB_TOKEN").then(|| "ghp_supersecret".to_owned()),
            Some("git@github.com:o/r.git"),
        )
        .unwrap()
        .unwrap();
        let shown = format!("{gh:?}");
        assert!(
            !shown.contains("ghp_supersecret") && shown.contains("<redacted>"),
            "{shown}"
        );
        assert_eq!(gh.repo(), "o/r");
        assert_eq!(gh.repo_web_url().as_deref(), Some("https://github.com/o/r"));
        assert_eq!(gh.name(), "GitHub");
    }
}
