//! `tgs mcp`: the backlog over the Model Context Protocol, for the agents
//! people work with (Claude Code, Codex, any MCP client), on stdio, with
//! the protocol's official Rust SDK (`rmcp`).
//!
//! Two servers:
//! - [`BacklogServer`] (`tgs mcp`): read tools (the backlog, an entry and
//!   why it waits, the server's status, a session's transcript end, a
//!   thought's audit, the thoughts and their stages) and, when `mcp.write:
//!   true` in `tgs/tgs.yml`, write tools (queue, priority, retry, answer a
//!   question), and the thoughts' files as resources (`tgs://thoughts/<name>/<file>`,
//!   as committed at HEAD). Reads go through the same library calls as the CLI; writes
//!   run tgs's own command (this very binary) so that they take the same
//!   race-safe state changes, checks and errors, and are audited with the
//!   MCP client's name (`mcp:<client>`).
//! - [`AskServer`] (`tgs mcp --ask FILE`): the session-scoped server an
//!   agent at work reaches from inside its sandbox, whose only tool,
//!   `ask_humans`, writes the question to `FILE` (see [`tgs_core::question`]).
//!
//! Every text a tool returns passes the transcripts' redaction (the values
//! of secret environment variables, `ai.redact_patterns`) and the mask of
//! credential shapes: no tool shows a token.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_handler, tool_router, RoleServer, ServerHandler, ServiceExt};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::commands::{find_entry, Ctx};
use crate::error::{CliError, CliResult};

/// Serve `server` on stdin/stdout until the client goes away.
fn serve<S: ServerHandler>(server: S) -> CliResult<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failed("cannot start the MCP server").cause(e.to_string()))?;
    rt.block_on(async move {
        let running = server.serve(rmcp::transport::stdio()).await.map_err(|e| {
            CliError::failed("the MCP client did not start a session").cause(e.to_string())
        })?;
        running
            .waiting()
            .await
            .map_err(|e| CliError::failed("the MCP session ended badly").cause(e.to_string()))?;
        Ok(())
    })
}

/// Run `tgs mcp` in the current directory's repository.
pub fn run_backlog(write: bool) -> CliResult<()> {
    serve(BacklogServer::new(write))
}

/// Run `tgs mcp --ask FILE`.
pub fn run_ask(file: PathBuf) -> CliResult<()> {
    serve(AskServer::new(file))
}

/// What every text a tool returns passes: the values of secret environment
/// variables and the repository's redaction patterns replaced (as in a
/// transcript), credential shapes masked. Built once per server.
struct Redaction {
    scanner: tgs_core::secrets::Scanner,
    redactor: Option<tgs_core::transcript::Redactor>,
}

impl Redaction {
    /// From this process's environment and the `ai.redact_env_keys` and
    /// redaction patterns of the repository here (none when it cannot be
    /// read: the defaults still apply).
    fn here() -> Redaction {
        let ctx = Ctx { json: true };
        let (keys, patterns) = ctx
            .repo()
            .and_then(|r| ctx.settings(&r))
            .map(|s| (s.redact_env_keys, s.redact_patterns))
            .unwrap_or_default();
        let env: Vec<(String, String)> = std::env::vars().collect();
        let scanner = tgs_core::secrets::Scanner::from_env(env.iter().cloned(), &keys);
        let redactor = tgs_core::transcript::Redactor::for_secrets(
            tgs_core::transcript::Redactor::secret_env_values(env, &keys),
            &patterns,
        )
        .ok();
        Redaction { scanner, redactor }
    }

    fn redact(&self, text: &str) -> String {
        let masked = self.scanner.mask(text);
        match &self.redactor {
            Some(r) => r.redact(&masked),
            None => masked,
        }
    }

    /// What a tool returns: its JSON (or text), redacted; or the CLI's
    /// error text (`error:` / `caused by:` / `hint:`) as a tool error the
    /// model reads.
    fn result(&self, got: CliResult<Value>) -> CallToolResult {
        match got {
            Ok(Value::String(text)) => {
                CallToolResult::success(vec![ContentBlock::text(self.redact(&text))])
            }
            Ok(v) => {
                let text = serde_json::to_string_pretty(&v).unwrap_or_default();
                CallToolResult::success(vec![ContentBlock::text(self.redact(&text))])
            }
            Err(e) => CallToolResult::error(vec![ContentBlock::text(self.redact(&e.plain()))]),
        }
    }
}

/// The MCP client's name, for the audit: `mcp:claude-code`.
fn client_name(ctx: &RequestContext<RoleServer>) -> String {
    let name = ctx
        .client_info()
        .map(|i| i.name)
        .unwrap_or_else(|| "client".into());
    let clean: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .take(40)
        .collect();
    format!("mcp:{}", if clean.is_empty() { "client" } else { &clean })
}

/// Run this tgs with `args` and the audit actor `actor`, `stdin` on its
/// standard input: what it printed on stdout, or its error as the CLI
/// prints it (`error:` / `caused by:` / `hint:`). The binary is tgs's own
/// (never one from the repository).
fn run_tgs(args: &[&str], actor: &str, stdin: Option<&str>) -> CliResult<String> {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::failed("cannot find tgs's own binary").cause(e.to_string()))?;
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .env("TGS_ACTOR", actor)
        .env("NO_COLOR", "1")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| CliError::failed("cannot run tgs").cause(e.to_string()))?;
    if let (Some(text), Some(mut w)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        let _ = w.write_all(text.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| CliError::failed("cannot run tgs").cause(e.to_string()))?;
    if !out.status.success() {
        return Err(cli_error(&String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The error a tgs command printed, read back from its lines.
fn cli_error(stderr: &str) -> CliError {
    let mut lines = stderr.trim().lines();
    let first = lines.next().unwrap_or("tgs failed");
    let mut e = CliError::usage(first.trim_start_matches("error: ").to_owned());
    for l in lines {
        let l = l.trim();
        if let Some(h) = l.strip_prefix("hint: ") {
            e = e.hint(h.to_owned());
        } else if let Some(c) = l.strip_prefix("caused by: ") {
            e = e.cause(c.to_owned());
        }
    }
    e
}

/// [`run_tgs`] with `--json`: the JSON it printed.
fn tgs(args: &[&str], actor: &str, stdin: Option<&str>) -> CliResult<Value> {
    let out = run_tgs(&[&["--json"], args].concat(), actor, stdin)?;
    Ok(serde_json::from_str(&out).unwrap_or_else(|_| json!({ "said": out.trim() })))
}

/// The repository and the backlog (live and archived) as a reader sees it.
fn read_backlog() -> CliResult<(tgs_core::repo::Repo, tgs_core::backlog::Backlog)> {
    let ctx = Ctx { json: true };
    let repo = ctx.repo()?;
    let backlog = ctx.reader(&repo)?.read_all()?;
    Ok((repo, backlog))
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListParams {
    /// Only entries with this status: queued, in_progress, handover_pending,
    /// completed, failed, needs_input.
    #[serde(default)]
    pub status: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ThoughtParams {
    /// The thought: `tgs/thoughts/<hash>-<slug>`, or its short name.
    pub thought: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct TranscriptParams {
    /// The thought: `tgs/thoughts/<hash>-<slug>`, or its short name.
    pub thought: String,
    /// How many lines of the end of its last session's transcript (default 80, at most 2000).
    #[serde(default)]
    pub lines: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AuditParams {
    /// The thought whose audit lines to show (all thoughts when absent).
    #[serde(default)]
    pub thought: Option<String>,
    /// The most recent lines to return (default 50, at most 1000).
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct StageParams {
    /// Only thoughts in this stage: draft, approved, implemented.
    #[serde(default)]
    pub stage: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct QueueParams {
    /// The approved thought to queue.
    pub thought: String,
    /// Its priority (higher runs first; default 0).
    #[serde(default)]
    pub priority: Option<i64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct PriorityParams {
    /// The thought.
    pub thought: String,
    /// The new priority (higher runs first).
    pub priority: i64,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RetryParams {
    /// The failed thought.
    pub thought: String,
    /// Drop the work in progress an earlier attempt kept.
    #[serde(default)]
    pub fresh: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AnswerParams {
    /// The thought whose agent asked.
    pub thought: String,
    /// The answer (at most 16 KiB).
    pub text: String,
}

/// The tools `mcp.write: true` adds.
const WRITE_TOOLS: [&str; 4] = [
    "backlog_queue",
    "backlog_set_priority",
    "backlog_retry",
    "answer_question",
];

/// `tgs mcp`: the backlog's tools.
#[derive(Clone)]
pub struct BacklogServer {
    tool_router: ToolRouter<Self>,
    redaction: std::sync::Arc<Redaction>,
}

impl BacklogServer {
    pub fn new(write: bool) -> Self {
        let mut tool_router = Self::tool_router();
        if !write {
            for name in WRITE_TOOLS {
                tool_router.remove_route(name);
            }
        }
        BacklogServer {
            tool_router,
            redaction: std::sync::Arc::new(Redaction::here()),
        }
    }
}

#[tool_router]
impl BacklogServer {
    #[tool(
        description = "List the server-mode backlog in claim order: each thought's status, priority, attempts, pull request, last error and why it waits.",
        annotations(read_only_hint = true)
    )]
    fn backlog_list(&self, Parameters(p): Parameters<ListParams>) -> CallToolResult {
        self.redaction.result(list(p.status.as_deref()))
    }

    #[tool(
        description = "Show one backlog entry: its status, why it waits, its last error, its pull request, its kept work in progress and its questions.",
        annotations(read_only_hint = true)
    )]
    fn backlog_show(&self, Parameters(p): Parameters<ThoughtParams>) -> CallToolResult {
        self.redaction.result(show(&p.thought))
    }

    #[tool(
        description = "The server's status: counts per status, running sessions, what runs next, what waits, questions waiting for an answer, what needs a human.",
        annotations(read_only_hint = true)
    )]
    fn server_status(&self) -> CallToolResult {
        self.redaction.result(read_backlog().map(|(_, b)| {
            let report = tgs_core::report::compute_status(&b, tgs_core::clock::now());
            serde_json::to_value(report).unwrap_or(Value::Null)
        }))
    }

    #[tool(
        description = "The end of a thought's last session transcript (redacted).",
        annotations(read_only_hint = true)
    )]
    fn session_transcript(&self, Parameters(p): Parameters<TranscriptParams>) -> CallToolResult {
        self.redaction
            .result(transcript(&p.thought, p.lines.unwrap_or(80).clamp(1, 2000)))
    }

    #[tool(
        description = "The audit log of the server's state changes, for one thought or all, most recent last.",
        annotations(read_only_hint = true)
    )]
    fn audit_log(&self, Parameters(p): Parameters<AuditParams>) -> CallToolResult {
        self.redaction.result(audit(
            p.thought.as_deref(),
            p.limit.unwrap_or(50).clamp(1, 1000),
        ))
    }

    #[tool(
        description = "The repository's thoughts and their stages (draft, approved, implemented).",
        annotations(read_only_hint = true)
    )]
    fn thought_list(&self, Parameters(p): Parameters<StageParams>) -> CallToolResult {
        let mut args = vec!["thought", "list"];
        if let Some(s) = p.stage.as_deref() {
            args.extend(["--stage", s]);
        }
        self.redaction.result(tgs(&args, "mcp", None))
    }

    #[tool(description = "Queue an approved thought for implementation (mcp.write).")]
    fn backlog_queue(
        &self,
        Parameters(p): Parameters<QueueParams>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let priority = p.priority.unwrap_or(0).to_string();
        let args = [
            "server",
            "backlog",
            "add",
            p.thought.as_str(),
            "--priority",
            priority.as_str(),
        ];
        self.redaction.result(tgs(&args, &client_name(&ctx), None))
    }

    #[tool(description = "Set a queued or failed thought's priority (mcp.write).")]
    fn backlog_set_priority(
        &self,
        Parameters(p): Parameters<PriorityParams>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let priority = p.priority.to_string();
        let args = [
            "server",
            "backlog",
            "priority",
            p.thought.as_str(),
            "--",
            priority.as_str(),
        ];
        self.redaction.result(tgs(&args, &client_name(&ctx), None))
    }

    #[tool(
        description = "Queue a failed thought again, with a fresh budget of attempts (mcp.write)."
    )]
    fn backlog_retry(
        &self,
        Parameters(p): Parameters<RetryParams>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let mut args = vec!["server", "backlog", "retry", p.thought.as_str()];
        if p.fresh {
            args.push("--fresh");
        }
        self.redaction.result(tgs(&args, &client_name(&ctx), None))
    }

    #[tool(
        description = "Answer the question a thought's agent asked; the thought is queued again (mcp.write)."
    )]
    fn answer_question(
        &self,
        Parameters(p): Parameters<AnswerParams>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let who = client_name(&ctx);
        let args = [
            "server",
            "backlog",
            "answer",
            p.thought.as_str(),
            "--file",
            "-",
            "--by",
            who.as_str(),
            "--via",
            "mcp",
        ];
        self.redaction.result(tgs(&args, &who, Some(&p.text)))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for BacklogServer {
    async fn list_resources(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListResourcesResult, rmcp::ErrorData> {
        let resources = thought_resources().map_err(|e| internal(&self.redaction, &e))?;
        Ok(rmcp::model::ListResourcesResult::with_all_items(resources))
    }

    async fn read_resource(
        &self,
        request: rmcp::model::ReadResourceRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ReadResourceResponse, rmcp::ErrorData> {
        let text = read_thought_file(&request.uri).map_err(|e| match e {
            Unread::NotFound(why) => rmcp::ErrorData::resource_not_found(why, None),
            Unread::Failed(e) => internal(&self.redaction, &e),
        })?;
        let contents = rmcp::model::ResourceContents::TextResourceContents {
            uri: request.uri,
            mime_type: Some(MARKDOWN.into()),
            text: self.redaction.redact(&text),
            meta: None,
        };
        Ok(rmcp::model::ReadResourceResult::new(vec![contents]).into())
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
            .with_server_info(rmcp::model::Implementation::new("tgs", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "tgs's server-mode backlog of this repository: thoughts (approved research and plans) that agents implement into pull requests. Read tools always; write tools when tgs/tgs.yml says mcp.write: true.",
            )
    }
}

// ---- Resources: the thoughts' files, as committed at HEAD --------------------

/// The URI of a thought's file: `tgs://thoughts/<name>/<file>`.
const RESOURCE_PREFIX: &str = "tgs://thoughts/";
const MARKDOWN: &str = "text/markdown";
/// The largest thought file served, in bytes.
const MAX_RESOURCE: u64 = 1 << 20;

/// Why a resource was not read.
enum Unread {
    /// No such thought file at HEAD (or not one tgs serves), and why.
    NotFound(String),
    Failed(CliError),
}

fn internal(redaction: &Redaction, e: &CliError) -> rmcp::ErrorData {
    rmcp::ErrorData::internal_error(redaction.redact(&e.plain()), None)
}

/// Every file of every thought committed at HEAD, in each thought's
/// reading order (README, research, plan, implementation, the rest).
fn thought_resources() -> CliResult<Vec<rmcp::model::Resource>> {
    let ctx = Ctx { json: true };
    let repo = ctx.repo()?;
    let index = tgs_core::thought::ThoughtIndex::load(&repo, repo.discovered_head())?;
    let mut out = Vec::new();
    for t in &index.thoughts {
        for path in t.ordered_paths() {
            let Some(file) = path.strip_prefix(&format!("{}/", t.dir)) else {
                continue;
            };
            let size = t.files.iter().find(|f| f.name == file).and_then(|f| f.size);
            let mut r = rmcp::model::Resource::new(
                format!("{RESOURCE_PREFIX}{}/{file}", t.name.as_str()),
                format!("{}/{file}", t.name.as_str()),
            )
            .with_description(format!(
                "{file} of the thought {} ({})",
                t.dir,
                index.stage(t).as_str()
            ));
            if file.ends_with(".md") {
                r = r.with_mime_type(MARKDOWN);
            }
            if let Some(size) = size {
                r = r.with_size(size);
            }
            out.push(r);
        }
    }
    Ok(out)
}

/// The text of the thought file `uri` names, as committed at HEAD. Only a
/// file the index lists is read (the URI is looked up, never joined into
/// a path): UTF-8, at most [`MAX_RESOURCE`] bytes.
fn read_thought_file(uri: &str) -> Result<String, Unread> {
    let not_found = |why: &str| Unread::NotFound(format!("{uri}: {why}"));
    let (name, file) = uri
        .strip_prefix(RESOURCE_PREFIX)
        .and_then(|rest| rest.split_once('/'))
        .ok_or_else(|| not_found("not a thought file (tgs://thoughts/<name>/<file>)"))?;
    let ctx = Ctx { json: true };
    let repo = ctx.repo().map_err(Unread::Failed)?;
    let head = repo
        .discovered_head()
        .ok_or_else(|| not_found("the repository has no commits"))?
        .to_owned();
    let index = tgs_core::thought::ThoughtIndex::load(&repo, Some(&head))
        .map_err(|e| Unread::Failed(e.into()))?;
    let thought = index
        .thoughts
        .iter()
        .find(|t| t.name.as_str() == name)
        .ok_or_else(|| not_found("no such thought committed at HEAD"))?;
    if !thought.files.iter().any(|f| f.name == file) {
        return Err(not_found("the thought has no such file at HEAD"));
    }
    let path = format!("{}/{file}", thought.dir);
    let bytes = repo
        .read_committed(&head, &path, MAX_RESOURCE)
        .map_err(|e| not_found(&e.to_string()))?
        .ok_or_else(|| not_found("the thought has no such file at HEAD"))?;
    String::from_utf8(bytes).map_err(|_| not_found("not UTF-8 text"))
}

/// The backlog in claim order, `status` only.
fn list(status: Option<&str>) -> CliResult<Value> {
    let status = crate::commands::backlog_list::parse_status(status)?;
    let (_, b) = read_backlog()?;
    let now = tgs_core::clock::now();
    let rows: Vec<Value> = b
        .claim_order()
        .into_iter()
        .filter(|e| status.is_none_or(|s| e.status == s))
        .map(|e| {
            json!({
                "dir": e.dir, "title": e.title, "status": e.status, "priority": e.priority,
                "attempts": e.attempts, "pr_url": e.pr_url, "last_error": e.last_error,
                "question": e.waiting_question().map(|q| tgs_core::backlog::first_line(&q.text)),
                "why_waiting": (!b.is_claimable(e, now))
                    .then(|| tgs_core::runner::why_not_claimable(&b, e, now)),
            })
        })
        .collect();
    Ok(Value::Array(rows))
}

/// One entry, with why it cannot be claimed now.
fn show(arg: &str) -> CliResult<Value> {
    let (repo, b) = read_backlog()?;
    let dir = find_entry(&repo, &b, arg)?;
    let e = b
        .get(&dir)
        .ok_or_else(|| CliError::usage(format!("{dir} is not in the backlog")))?;
    let now = tgs_core::clock::now();
    let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
    if !b.is_claimable(e, now) {
        v["why_waiting"] = json!(tgs_core::runner::why_not_claimable(&b, e, now));
    }
    Ok(v)
}

/// The last `lines` lines of `arg`'s last session transcript.
fn transcript(arg: &str, lines: u32) -> CliResult<Value> {
    let text = run_tgs(&["server", "logs", arg], "mcp", None)?;
    let all: Vec<&str> = text.lines().collect();
    let from = all.len().saturating_sub(lines as usize);
    Ok(Value::String(all[from..].join("\n")))
}

/// The audit lines of `thought` (or all), the last `limit`.
fn audit(thought: Option<&str>, limit: u32) -> CliResult<Value> {
    use tgs_core::backlog::store::Record;
    let ctx = Ctx { json: true };
    let repo = ctx.repo()?;
    let state = ctx.reader(&repo)?;
    let dir = match thought {
        Some(t) => Some(find_entry(&repo, &state.read_all()?, t)?),
        None => None,
    };
    let mut lines = std::collections::VecDeque::new();
    state.each_history_line(
        &[Record::Audit],
        &tgs_core::history::Months::all(),
        &mut |l| {
            let Ok(v) = serde_json::from_str::<Value>(l.text) else {
                return;
            };
            if dir.as_deref().is_none_or(|d| v["thought"] == d) {
                lines.push_back(v);
                if lines.len() > limit as usize {
                    lines.pop_front();
                }
            }
        },
    )?;
    Ok(Value::Array(lines.into()))
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AskParams {
    /// Your question for the team, in a few sentences: what you need to
    /// know and why you cannot decide it yourself (at most 16 KiB).
    pub question: String,
}

/// `tgs mcp --ask FILE`: the one tool of an agent at work.
#[derive(Clone)]
pub struct AskServer {
    tool_router: ToolRouter<Self>,
    file: PathBuf,
}

impl AskServer {
    pub fn new(file: PathBuf) -> Self {
        AskServer {
            tool_router: Self::tool_router(),
            file,
        }
    }
}

#[tool_router]
impl AskServer {
    #[tool(
        description = "Ask the team a question you cannot answer yourself (an ambiguous plan, a missing credential, a choice that is theirs), then end your session: tgs keeps your work and starts the next session from it with their answer."
    )]
    fn ask_humans(&self, Parameters(p): Parameters<AskParams>) -> CallToolResult {
        match tgs_core::question::write(&self.file, &p.question) {
            Ok(()) => CallToolResult::success(vec![ContentBlock::text(
                "Your question is recorded. Commit what you have and end your session now; the next session starts from your work with the team's answer.",
            )]),
            Err(why) => CallToolResult::error(vec![ContentBlock::text(format!("error: {why}"))]),
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for AskServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(rmcp::model::Implementation::new("tgs-session", env!("CARGO_PKG_VERSION")))
            .with_instructions("Ask the team a question when only they can answer it (ask_humans), then end your session.")
    }
}
