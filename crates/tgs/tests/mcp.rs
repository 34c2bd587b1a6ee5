//! `tgs mcp`: the backlog over the Model Context Protocol, driven as its
//! clients drive it: JSON-RPC lines on stdio (initialize, tools/list,
//! tools/call), and the real Claude Code CLI using it as its MCP server
//! with a scripted tool call from the loopback Messages API.

#[path = "support/anthropic.rs"]
mod anthropic;
mod common;
#[path = "support/loopback.rs"]
mod loopback;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anthropic::{FakeAnthropic, Turn};
use common::{run, TestEnv, TestRepo};
use serde_json::{json, Value};

const NAME: &str = "abcdef1-add-a-port";
const DIR: &str = "tgs/thoughts/abcdef1-add-a-port";

/// A `tgs mcp` process and its stdio, initialized as a client named `probe`.
struct Client {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
    next: u64,
}

impl Client {
    fn start(env: &TestEnv, dir: &std::path::Path, args: &[&str], vars: &[(&str, &str)]) -> Client {
        let mut cmd = Command::new(common::tgs_bin());
        env.pin(&mut cmd);
        cmd.current_dir(dir)
            .arg("mcp")
            .args(args)
            .envs(vars.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let input = child.stdin.take().unwrap();
        let output = BufReader::new(child.stdout.take().unwrap());
        let mut c = Client {
            child,
            input,
            output,
            next: 1,
        };
        let init = c.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "probe", "version": "1"}}),
        );
        let server = init["result"]["serverInfo"]["name"]
            .as_str()
            .unwrap_or_default();
        assert!(server.starts_with("tgs"), "{init}");
        c.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        c
    }

    fn send(&mut self, v: Value) {
        writeln!(self.input, "{v}").unwrap();
        self.input.flush().unwrap();
    }

    /// Send a request; its response (result or error).
    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next;
        self.next += 1;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let mut line = String::new();
            assert!(
                self.output.read_line(&mut line).unwrap() > 0,
                "tgs mcp closed its output"
            );
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["id"] == id {
                return v;
            }
        }
    }

    fn tools(&mut self) -> Vec<String> {
        let r = self.request("tools/list", json!({}));
        r["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Call `name`: (is an error, its text).
    fn call(&mut self, name: &str, args: Value) -> (bool, String) {
        let r = self.request("tools/call", json!({"name": name, "arguments": args}));
        let res = &r["result"];
        assert!(res.is_object(), "{r}");
        let text = res["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        (res["isError"] == true, text)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lab<'e>(env: &'e TestEnv, mcp: &str) -> TestRepo<'e> {
    let repo = env.repo("r");
    repo.approved(NAME, "Add a port");
    repo.approved("bbbbbbb-other", "Other");
    let agent = env.script("agent.sh", "echo 'Which port?' > tgs-question.md\n");
    repo.write(
        "tgs/tgs.yml",
        &format!("{mcp}server:\n  agent: test\n  agents:\n    test: {{ command: \"{agent}\" }}\n"),
    );
    repo.publish("approved thoughts and config");
    let (code, _, err) = run(repo.tgs().args(["server", "backlog", "add", NAME]));
    assert_eq!(code, 0, "{err}");
    repo
}

fn entry(repo: &TestRepo) -> Value {
    repo.remote_backlog()["thoughts"][0].clone()
}

#[test]
fn read_tools_answer_as_the_cli_and_write_tools_are_off_by_default() {
    let env = TestEnv::new();
    let repo = lab(&env, "");
    let mut c = Client::start(&env, &repo.root, &[], &[]);
    let tools = c.tools();
    for t in [
        "backlog_list",
        "backlog_show",
        "server_status",
        "session_transcript",
        "audit_log",
        "thought_list",
    ] {
        assert!(tools.contains(&t.to_owned()), "{t} missing: {tools:?}");
    }
    for t in [
        "backlog_queue",
        "backlog_set_priority",
        "backlog_retry",
        "answer_question",
    ] {
        assert!(
            !tools.contains(&t.to_owned()),
            "{t} listed without mcp.write"
        );
    }
    let (err, text) = c.call("backlog_list", json!({}));
    assert!(!err, "{text}");
    let list: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(list[0]["dir"], DIR);
    assert_eq!(list[0]["status"], "queued");
    let (err, text) = c.call("backlog_show", json!({"thought": NAME}));
    assert!(!err, "{text}");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["dir"], DIR);
    let (err, text) = c.call("server_status", json!({}));
    assert!(!err && text.contains("\"queued\": 1"), "{text}");
    let (err, text) = c.call("thought_list", json!({"stage": "approved"}));
    assert!(!err && text.contains("bbbbbbb-other"), "{text}");
    let (err, text) = c.call("audit_log", json!({"thought": NAME}));
    assert!(!err && text.contains("\"add\""), "{text}");

    // Bad input: the CLI's error and hint; nothing changes.
    let state = repo.state_ref();
    let (err, text) = c.call("backlog_show", json!({"thought": "zzzzzzz-nope"}));
    assert!(err, "{text}");
    assert!(
        text.starts_with("error: ") && text.contains("hint: "),
        "{text}"
    );
    let (err, text) = c.call("backlog_list", json!({"status": "sleeping"}));
    assert!(err && text.contains("needs_input"), "{text}");
    let (err, text) = c.call("backlog_show", json!({"thought": 7}));
    assert!(err, "wrong type accepted: {text}");
    let r = c.request(
        "tools/call",
        json!({"name": "backlog_retry", "arguments": {"thought": NAME}}),
    );
    assert!(
        r["error"].is_object(),
        "a write tool ran without mcp.write: {r}"
    );
    let r = c.request("tools/call", json!({"name": "rm_rf", "arguments": {}}));
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not found"),
        "{r}"
    );
    assert_eq!(repo.state_ref(), state);
}

#[test]
fn write_tools_change_the_state_as_the_cli_does_audited_with_the_client() {
    let env = TestEnv::new();
    let repo = lab(&env, "mcp:\n  write: true\n");
    // The thought's agent asks a question: the entry waits for an answer.
    let (code, out, err) = repo.server_run(&["--thought", NAME, "--no-pr"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(entry(&repo)["status"], "needs_input");

    let mut c = Client::start(&env, &repo.root, &[], &[]);
    assert!(c.tools().contains(&"answer_question".to_owned()));
    let (err, text) = c.call("backlog_show", json!({"thought": NAME}));
    assert!(!err && text.contains("waits for an answer"), "{text}");

    let state = repo.state_ref();
    let (err, text) = c.call(
        "answer_question",
        json!({"thought": NAME, "text": "x".repeat(1 << 20)}),
    );
    assert!(err && text.contains("at most 16384 bytes"), "{text}");
    assert_eq!(
        repo.state_ref(),
        state,
        "a refused answer changed the state"
    );
    let (err, text) = c.call("answer_question", json!({"thought": NAME, "text": "8080"}));
    assert!(!err, "{text}");
    let e = entry(&repo);
    assert_eq!(e["status"], "queued");
    assert_eq!(e["questions"][0]["answer"]["by"], "mcp:probe");
    assert_eq!(e["questions"][0]["answer"]["via"], "mcp");

    let (err, text) = c.call(
        "backlog_set_priority",
        json!({"thought": NAME, "priority": -3}),
    );
    assert!(!err, "{text}");
    assert_eq!(entry(&repo)["priority"], -3);
    let (err, text) = c.call(
        "backlog_queue",
        json!({"thought": "bbbbbbb-other", "priority": 2}),
    );
    assert!(!err, "{text}");
    let (err, text) = c.call("backlog_retry", json!({"thought": NAME}));
    assert!(
        err && text.contains("error: ") && text.contains("queued"),
        "{text}"
    );
    let audit = repo.audit();
    let by_client: Vec<&Value> = audit
        .iter()
        .filter(|a| a["worker"] == "mcp:probe")
        .collect();
    let actions: Vec<&str> = by_client
        .iter()
        .filter_map(|a| a["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        ["question_answered", "priority", "add"],
        "{audit:?}"
    );
}

#[test]
fn no_tool_shows_a_token() {
    let env = TestEnv::new();
    let repo = lab(&env, "");
    let token = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
    let secret = "hunter2-very-secret-value";
    let mut b = repo.remote_backlog();
    b["thoughts"][0]["last_error"] = json!(format!("push failed with {token} and {secret}"));
    repo.put_state(&[("tgs/server/backlog.json", &b.to_string())]);
    let mut c = Client::start(&env, &repo.root, &[], &[("MY_SERVICE_TOKEN", secret)]);
    for (tool, args) in [
        ("backlog_show", json!({"thought": NAME})),
        ("backlog_list", json!({})),
        ("server_status", json!({})),
    ] {
        let (err, text) = c.call(tool, args);
        assert!(!err, "{tool}: {text}");
        assert!(!text.contains(token), "{tool} showed the token: {text}");
        assert!(!text.contains(secret), "{tool} showed the secret: {text}");
    }
}

/// The thoughts' files are resources, as committed at HEAD: listed in
/// reading order, read through the redaction; a URI is looked up, never
/// joined into a path.
#[test]
fn thought_files_are_resources() {
    let env = TestEnv::new();
    let repo = lab(&env, "");
    let token = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
    let plan = format!("tgs/thoughts/{NAME}/plan.md");
    repo.write(&plan, &format!("# Plan\n\n1. Use the token {token}.\n"));
    repo.write("notes-uncommitted.md", "not committed");
    repo.git(&["add", &plan]);
    repo.git(&["commit", "-qm", "plan"]);
    let mut c = Client::start(&env, &repo.root, &[], &[]);
    let r = c.request("resources/list", json!({}));
    let uris: Vec<&str> = r["result"]["resources"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .iter()
        .map(|x| x["uri"].as_str().unwrap())
        .collect();
    let research = format!("tgs://thoughts/{NAME}/research.md");
    let plan_uri = format!("tgs://thoughts/{NAME}/plan.md");
    let at = |u: &str| uris.iter().position(|x| *x == u);
    assert!(
        at(&research) < at(&plan_uri) && at(&research).is_some(),
        "{uris:?}"
    );
    assert!(
        uris.contains(&"tgs://thoughts/bbbbbbb-other/plan.md"),
        "{uris:?}"
    );
    let r = c.request("resources/read", json!({"uri": plan_uri}));
    let text = r["result"]["contents"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{r}"));
    assert!(
        text.starts_with("# Plan") && !text.contains(token),
        "{text}"
    );
    assert_eq!(r["result"]["contents"][0]["mimeType"], "text/markdown");
    for bad in [
        format!("tgs://thoughts/{NAME}/../../tgs.yml"),
        format!("tgs://thoughts/{NAME}/../bbbbbbb-other/plan.md"),
        "tgs://thoughts/zzzzzzz-none/plan.md".to_owned(),
        "file:///etc/passwd".to_owned(),
        "tgs://thoughts/".to_owned(),
    ] {
        let r = c.request("resources/read", json!({"uri": bad}));
        assert!(r["error"]["message"].is_string(), "{bad}: {r}");
        assert!(!r.to_string().contains("root:"), "{r}");
    }
}

#[test]
fn the_session_tool_asks_and_refuses_bad_questions() {
    let env = TestEnv::new();
    let file = env.path().join("tgs-question.md");
    let mut c = Client::start(&env, env.path(), &["--ask", file.to_str().unwrap()], &[]);
    assert_eq!(c.tools(), ["ask_humans"]);
    let (err, text) = c.call("ask_humans", json!({"question": "x".repeat(1 << 20)}));
    assert!(err && text.contains("at most 16384 bytes"), "{text}");
    assert!(!file.exists());
    let (err, text) = c.call("ask_humans", json!({"question": "  "}));
    assert!(err && text.contains("empty"), "{text}");
    let (err, text) = c.call("ask_humans", json!({"question": "Which port?"}));
    assert!(!err && text.contains("end your session"), "{text}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "Which port?\n");
    // A link planted where the question goes is replaced, never followed.
    let target = env.path().join("target.txt");
    std::fs::write(&target, "keep").unwrap();
    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink(&target, &file).unwrap();
    let (err, _) = c.call("ask_humans", json!({"question": "Again?"}));
    assert!(err);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
}

/// The real Claude Code CLI (`TGS_TEST_CLAUDE`) with `tgs mcp` as its MCP
/// server: the model (the loopback fake) calls `backlog_list`; the CLI's
/// next request carries the tool's result.
#[test]
#[ignore = "needs the Claude Code CLI in TGS_TEST_CLAUDE"]
fn claude_code_uses_tgs_mcp_as_its_mcp_server() {
    let claude = std::env::var_os("TGS_TEST_CLAUDE")
        .filter(|v| !v.is_empty())
        .expect("the Claude Code CLI tests need TGS_TEST_CLAUDE (see README)");
    let env = TestEnv::new();
    let repo = lab(&env, "");
    let fake = FakeAnthropic::start(vec![
        Turn::tool("mcp__tgs__backlog_list", json!({})),
        Turn::text("The backlog holds one queued thought."),
    ]);
    let config = env.path().join("mcp.json");
    std::fs::write(
        &config,
        json!({"mcpServers": {"tgs": {"command": common::tgs_bin(), "args": ["mcp"]}}}).to_string(),
    )
    .unwrap();
    let mut cmd = Command::new(claude);
    env.pin(&mut cmd);
    let out = cmd
        .current_dir(&repo.root)
        .args([
            "-p",
            "What is in the tgs backlog?",
            "--output-format",
            "json",
        ])
        .arg("--mcp-config")
        .arg(&config)
        .args(["--strict-mcp-config", "--dangerously-skip-permissions"])
        .env("ANTHROPIC_BASE_URL", fake.base_url())
        .env("ANTHROPIC_API_KEY", "sk-ant-test-mcp")
        .env("DISABLE_TELEMETRY", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("CLAUDE_CODE_MAX_RETRIES", "0")
        .env("IS_SANDBOX", "1")
        .env("MCP_TIMEOUT", "30000")
        .env_remove("ANTHROPIC_AUTH_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    let requests = fake.model_requests();
    // The tool was offered to the model, under the MCP server's name.
    assert!(
        requests
            .iter()
            .any(|r| r.raw.contains("mcp__tgs__backlog_list")),
        "tgs's tools were not offered: {said}"
    );
    let results: Vec<String> = requests.iter().flat_map(|r| r.tool_results()).collect();
    assert!(
        results
            .iter()
            .any(|r| r.contains(DIR) && r.contains("queued")),
        "the tool's result did not reach the model: {results:?}\n{said}"
    );
}

/// The MCP Inspector's command line client (`TGS_TEST_MCPDO`, pinned in
/// `.ci/run`) connects to `tgs mcp` as an MCP client: the handshake, the
/// tool list with its schemas, a call, and a refused call as a tool error.
#[test]
#[ignore = "needs the MCP Inspector's mcpdo in TGS_TEST_MCPDO"]
fn the_mcp_inspector_connects_lists_and_calls() {
    let mcpdo = std::env::var_os("TGS_TEST_MCPDO")
        .filter(|v| !v.is_empty())
        .expect("the inspector test needs TGS_TEST_MCPDO (see .ci/run)");
    let env = TestEnv::new();
    let repo = lab(&env, "");
    let name = "tgs-under-test";
    let inspector = |args: &[&str]| {
        let mut cmd = Command::new(&mcpdo);
        env.pin(&mut cmd);
        let out = cmd
            .current_dir(&repo.root)
            .env("MCP_CATALOG_PATH", env.path().join("catalog.json"))
            .args(["--plain", "--format", "json"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let tgs = common::tgs_bin();
    let root = repo.root.to_str().unwrap().to_owned();
    let (ok, said) = inspector(&[
        "connect",
        "--cwd",
        &root,
        "--transport",
        "stdio",
        "--connection",
        name,
        "--",
        tgs.to_str().unwrap(),
        "mcp",
    ]);
    assert!(ok, "{said}");
    let conn = ["--connection", name];
    let (ok, said) = inspector(&[&conn[..], &["connections/show"]].concat());
    assert!(ok && said.contains("\"tools\""), "{said}");
    let (ok, said) = inspector(&[&conn[..], &["tools/list"]].concat());
    assert!(ok, "{said}");
    for t in ["backlog_list", "backlog_show", "server_status", "audit_log"] {
        assert!(said.contains(&format!("\"name\": \"{t}\"")), "{t}: {said}");
    }
    assert!(said.contains("\"inputSchema\""), "{said}");
    let (ok, said) = inspector(&[&conn[..], &["tools/call", "backlog_list"]].concat());
    assert!(ok && said.contains(DIR), "{said}");
    let (_, said) = inspector(
        &[
            &conn[..],
            &["tools/call", "backlog_show", "thought:=zzzzzzz-nope"],
        ]
        .concat(),
    );
    assert!(
        said.contains("isError") || said.contains("tool_is_error"),
        "{said}"
    );
    assert!(said.contains("error: "), "{said}");
    let _ = inspector(&[&conn[..], &["disconnect"]].concat());
    // The client keeps a daemon (under this test's HOME): stop it.
    let (ok, said) = inspector(&["daemon", "stop"]);
    assert!(ok, "{said}");
}
