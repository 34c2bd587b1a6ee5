//! `tgs server run` driving the real Claude Code CLI, whose model is a
//! loopback fake of the Messages API (`support/anthropic.rs`).
//!
//! The CLI is found through `TGS_TEST_CLAUDE` (`.ci/run` installs it from
//! npm and sets it). Without it these tests are ignored (`cargo test` says
//! so); `--include-ignored` runs them, and then a missing CLI fails them:
//! nothing is skipped in silence. `TGS_TEST_SHOW=1`
//! prints the end-to-end session's transcript and tgs's output.

#[path = "support/anthropic.rs"]
mod anthropic;
mod common;
#[path = "support/loopback.rs"]
mod loopback;

use std::path::PathBuf;

use anthropic::{FakeAnthropic, Request, Turn, CWD};
use common::{run, TestEnv, TestRepo};
use serde_json::{json, Value};

const NAME: &str = "abcdef1-add-a-feature";
const T: &str = "tgs/thoughts/abcdef1-add-a-feature";
const BRANCH: &str = "tgs/abcdef1-add-a-feature";
const FEATURE: &str = "pub fn feature() -> u32 {\n    7\n}\n";
const SUMMARY: &str =
    "# Implementation: Add a feature\n\nAdded `feature()` in src/feature.rs, as the plan asked.\n";

/// Why these tests are ignored by a plain `cargo test`: the harness says
/// so in its summary, and `--include-ignored` (as `.ci/run` does) runs them.
const NEEDS: &str = "the Claude Code CLI tests need TGS_TEST_CLAUDE";

/// The Claude Code CLI to test; a test that runs without it fails.
fn claude() -> PathBuf {
    let p = std::env::var_os("TGS_TEST_CLAUDE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!("{NEEDS}: npm install @anthropic-ai/claude-code and point TGS_TEST_CLAUDE at node_modules/.bin/claude (see README)")
        });
    assert!(
        p.is_file(),
        "TGS_TEST_CLAUDE={} is not a file: install @anthropic-ai/claude-code (see .ci/run)",
        p.display()
    );
    p
}

/// A test API key, different in every run.
fn api_key() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("sk-ant-test-{:x}{:x}", std::process::id(), nanos)
}

/// A repository with one approved, queued thought and the claude-code
/// agent configured to run `bin`, with `settings` (YAML flow mapping entries).
fn setup<'e>(env: &'e TestEnv, bin: &std::path::Path, settings: &str) -> TestRepo<'e> {
    let repo = env.repo("r");
    repo.approved(NAME, "Add a feature");
    repo.write(
        "tgs/tgs.yml",
        &format!(
            "ai:\n  provider: anthropic\nserver:\n  agent: claude-code\n  retry_delay: 1s\n  kill_grace: 1s\n  agents:\n    claude-code: {{ bin: \"{}\", {settings} }}\n",
            bin.display()
        ),
    );
    repo.publish("approved thought and config");
    let (code, _, err) = run(repo.tgs().args(["server", "scan"]));
    assert_eq!(code, 0, "{err}");
    repo
}

/// `tgs server run --once --no-pr` against `fake`, with `extra` variables.
fn server_run(
    repo: &TestRepo,
    fake: &FakeAnthropic,
    key: &str,
    extra: &[(&str, &str)],
) -> (i32, String, String) {
    let mut cmd = repo.tgs();
    cmd.env_remove("TGS_NOW")
        .env("ANTHROPIC_BASE_URL", fake.base_url())
        .env("ANTHROPIC_API_KEY", key)
        .env("DISABLE_TELEMETRY", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("CLAUDE_CODE_MAX_RETRIES", "0")
        // Nothing of the machine's own Claude setup may leak in.
        .env_remove("ANTHROPIC_AUTH_TOKEN")
        .env_remove("ANTHROPIC_MODEL")
        .env_remove("CLAUDE_CODE_OAUTH_TOKEN")
        .env_remove("CLAUDE_CODE_USE_BEDROCK")
        .env_remove("CLAUDE_CODE_USE_VERTEX")
        .env_remove("IS_SANDBOX")
        .args(["server", "run", "--once", "--no-pr", "--timeout", "90s"]);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

fn entry(repo: &TestRepo) -> Value {
    repo.remote_backlog()["thoughts"][0].clone()
}

fn transcripts(repo: &TestRepo) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo.path("tgs/server/logs"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// The one transcript of the session.
fn transcript(repo: &TestRepo) -> String {
    let logs = transcripts(repo);
    assert_eq!(logs.len(), 1, "{logs:?}");
    std::fs::read_to_string(&logs[0]).unwrap()
}

/// The stream-json events of a transcript (its JSON lines).
fn events(transcript: &str) -> Vec<Value> {
    transcript
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn origin_file(repo: &TestRepo, rev_path: &str) -> String {
    let out = repo
        .env
        .git_cmd(&repo.origin)
        .args(["show", rev_path])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git show {rev_path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn all_requests(fake: &FakeAnthropic) -> String {
    fake.requests()
        .iter()
        .map(Request::everything)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
#[ignore = "needs the Claude Code CLI in TGS_TEST_CLAUDE"]
fn claude_implements_a_thought_end_to_end() {
    let bin = claude();
    let env = TestEnv::new();
    let repo = setup(&env, &bin, "max_turns: 20");
    let key = api_key();
    let forge_token = "ghs_forge_token_must_not_reach_claude_5150";
    let fake = FakeAnthropic::start(vec![
        // A relative path: the CLI resolves it in its working directory.
        Turn::write("src/feature.rs", FEATURE),
        // An absolute one, from the working directory the system prompt names.
        Turn::write(&format!("{CWD}/{T}/implementation.md"), SUMMARY),
        Turn::bash("env"),
        Turn::bash("git add -A && git commit -qm 'Add feature()'"),
        Turn::text("Implemented the plan: feature() is in src/feature.rs."),
    ]);
    let (code, out, err) = server_run(&repo, &fake, &key, &[("GITHUB_TOKEN", forge_token)]);
    let requests = fake.model_requests();
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(!out.contains(&key) && !err.contains(&key));
    assert_eq!(fake.turns_left(), 0, "the CLI stopped early:\n{err}");
    // One request per model turn, each streamed and authenticated with the key.
    assert_eq!(requests.len(), 5, "{err}");
    for r in &requests {
        assert!(r.path.starts_with("/v1/messages"), "{}", r.path);
        assert_eq!(r.body["stream"], true);
        assert_eq!(r.header("x-api-key"), Some(key.as_str()));
    }

    // The backlog records the success; origin has the branch with the work.
    let e = entry(&repo);
    assert_eq!(e["status"], "completed", "{e}\n{err}");
    assert_eq!(e["branch"], BRANCH);
    assert_eq!(e["attempts"], 1);
    assert_eq!(
        origin_file(&repo, &format!("{BRANCH}:src/feature.rs")),
        FEATURE
    );
    assert_eq!(
        origin_file(&repo, &format!("{BRANCH}:{T}/implementation.md")),
        SUMMARY
    );
    let subjects = env
        .git_cmd(&repo.origin)
        .args(["log", "--format=%s", &format!("main..{BRANCH}")])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&subjects.stdout).trim(),
        "Add feature()",
        "the agent's own commit is the branch's only one"
    );
    assert!(!repo.path(&format!(".tgs/worktrees/{NAME}")).exists());

    // The CLI ran in the session's worktree, and got tgs's prompt.
    let first = &requests[0];
    let cwd = first
        .cwd()
        .expect("the system prompt names the working directory");
    assert!(cwd.ends_with(&format!(".tgs/worktrees/{NAME}")), "{cwd}");
    let prompt = first.user_text();
    for f in ["research.md", "plan.md", "implementation.md"] {
        assert!(
            prompt.contains(&format!("{T}/{f}")),
            "{f} not in the prompt:\n{prompt}"
        );
    }
    assert!(prompt.contains(BRANCH), "{prompt}");

    // The tool results came back in the following requests: the files were
    // written, and `env` shows the least-privilege environment.
    let results = requests[4].tool_results();
    assert_eq!(results.len(), 4, "{results:?}");
    assert!(results[0].contains("src/feature.rs"), "{}", results[0]);
    let agent_env = &results[2];
    assert!(
        agent_env.contains(&format!("TGS_THOUGHT_DIR={T}")),
        "{agent_env}"
    );
    assert!(
        agent_env.contains(&format!("TGS_BRANCH={BRANCH}")),
        "{agent_env}"
    );
    assert!(agent_env.contains("TGS_WORKTREE="), "{agent_env}");
    assert!(
        agent_env.contains("IS_SANDBOX=1") || !is_root(),
        "{agent_env}"
    );
    assert!(
        !agent_env.contains(forge_token),
        "GITHUB_TOKEN reached the agent"
    );
    assert!(!agent_env.contains("GITHUB_TOKEN"), "{agent_env}");
    // Nor did it reach the API in any header or body.
    assert!(!all_requests(&fake).contains(forge_token));

    // The transcript keeps the stream-json events, with the key redacted
    // (the `env` tool result printed it).
    let log = transcript(&repo);
    if std::env::var_os("TGS_TEST_SHOW").is_some() {
        eprintln!("{log}\n{err}");
    }
    assert!(!log.contains(&key), "the API key is in the transcript");
    assert!(!log.contains(forge_token));
    assert!(log.contains("[REDACTED]"), "{log}");
    let evs = events(&log);
    let kinds: Vec<String> = evs
        .iter()
        .map(|e| {
            let t = e["type"].as_str().unwrap_or_default();
            match e["subtype"].as_str() {
                Some(s) => format!("{t}/{s}"),
                None => t.to_owned(),
            }
        })
        .collect();
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("system/init"),
        "{kinds:?}"
    );
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("result/success"),
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| *k == "assistant").count(),
        5,
        "{kinds:?}"
    );
    let result = evs.last().unwrap();
    assert_eq!(result["is_error"], false);
    assert_eq!(result["num_turns"], 5);
    assert_eq!(
        result["result"],
        "Implemented the plan: feature() is in src/feature.rs."
    );
    assert_eq!(evs[0]["permissionMode"], "bypassPermissions");
    assert!(evs[0]["cwd"].as_str().unwrap_or_default().ends_with(NAME));
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The API answers every request with `turn`: the attempt fails, is
/// requeued (not failed for good: `server run` exits 0), and says why.
fn api_error_session(turn: Turn) -> (Value, String, Vec<Request>) {
    let bin = claude();
    let env = TestEnv::new();
    let repo = setup(&env, &bin, "max_turns: 20");
    let key = api_key();
    let fake = FakeAnthropic::always(turn);
    let (code, out, err) = server_run(&repo, &fake, &key, &[]);
    assert_eq!(
        code, 0,
        "a retryable failure is no failed run\nstdout:\n{out}\nstderr:\n{err}"
    );
    let e = entry(&repo);
    assert_eq!(e["status"], "queued", "{e}\n{err}");
    assert!(
        !origin_has_branch(&repo),
        "a failed session pushed its branch"
    );
    let log = transcript(&repo);
    assert!(!log.contains(&key), "the API key is in the transcript");
    let pauses = repo.remote_backlog()["pauses"].clone();
    (
        json!({"entry": e, "pauses": pauses}),
        log,
        fake.model_requests(),
    )
}

fn origin_has_branch(repo: &TestRepo) -> bool {
    repo.env
        .git_cmd(&repo.origin)
        .args([
            "rev-parse",
            "--verify",
            "-q",
            &format!("refs/heads/{BRANCH}"),
        ])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
#[ignore = "needs the Claude Code CLI in TGS_TEST_CLAUDE"]
fn an_overloaded_api_is_a_rate_limited_attempt() {
    let (got, log, requests) = api_error_session(Turn::overloaded());
    // CLAUDE_CODE_MAX_RETRIES=0: one request, no retry.
    assert_eq!(requests.len(), 1, "{log}");
    // The provider's condition, not the thought's: the attempt is not
    // counted, and the agent is paused for every worker.
    let e = &got["entry"];
    assert_eq!(e.get("attempts"), None, "{e}");
    let pause = &got["pauses"]["claude-code"];
    assert_eq!(pause["kind"], "rate_limited", "{got}");
    assert!(pause["until"].is_string(), "{got}");
    let last_error = e["last_error"].as_str().unwrap_or_default();
    eprintln!("last_error: {last_error}");
    assert!(last_error.starts_with("rate_limited:"), "{last_error}");
    assert!(last_error.contains("529"), "{last_error}");
    let result = events(&log).into_iter().last().unwrap();
    assert_eq!(result["type"], "result");
    assert_eq!(result["is_error"], true);
    assert_eq!(result["api_error_status"], 529);
}

#[test]
#[ignore = "needs the Claude Code CLI in TGS_TEST_CLAUDE"]
fn an_invalid_request_is_a_failed_attempt() {
    let (got, log, requests) = api_error_session(Turn::error(
        400,
        "invalid_request_error",
        "fake: model not served here",
    ));
    assert_eq!(requests.len(), 1, "{log}");
    let e = &got["entry"];
    assert_eq!(e["attempts"], 1, "{e}");
    assert!(e["not_before"].is_string(), "{e}");
    assert!(got["pauses"].is_null(), "{got}");
    let last_error = e["last_error"].as_str().unwrap_or_default();
    eprintln!("last_error: {last_error}");
    assert!(last_error.starts_with("failed:"), "{last_error}");
    assert!(last_error.contains("400"), "{last_error}");
    assert!(
        last_error.contains("API Error") || last_error.contains("API error"),
        "{last_error}"
    );
    let result = events(&log).into_iter().last().unwrap();
    assert_eq!(result["is_error"], true);
    assert_eq!(result["api_error_status"], 400);
}

#[test]
#[ignore = "needs the Claude Code CLI in TGS_TEST_CLAUDE"]
fn denied_writes_are_no_success() {
    let bin = claude();
    let env = TestEnv::new();
    // Without bypassPermissions, print mode denies Write and Bash, yet exits 0.
    let repo = setup(&env, &bin, "max_turns: 20, permission_mode: default");
    let key = api_key();
    let fake = FakeAnthropic::start(vec![
        Turn::write("src/feature.rs", FEATURE),
        Turn::write(&format!("{T}/implementation.md"), SUMMARY),
        Turn::text("I could not write the files."),
    ]);
    let (code, out, err) = server_run(&repo, &fake, &key, &[]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let requests = fake.model_requests();
    assert_eq!(requests.len(), 3, "{err}");
    let results = requests[2].tool_results();
    assert!(
        results.iter().all(|r| r.contains("permission")),
        "{results:?}"
    );
    let log = transcript(&repo);
    let evs = events(&log);
    assert_eq!(evs[0]["permissionMode"], "default", "{log}");
    let result = evs.last().unwrap();
    assert_eq!(result["type"], "result");
    assert_eq!(result["is_error"], false, "the CLI calls it a success");
    assert_eq!(
        result["permission_denials"].as_array().map(Vec::len),
        Some(2)
    );
    // tgs does not.
    let e = entry(&repo);
    assert_eq!(e["status"], "queued", "{e}");
    assert_eq!(e["attempts"], 1);
    let last_error = e["last_error"].as_str().unwrap_or_default();
    eprintln!("last_error: {last_error}");
    assert!(last_error.starts_with("failed:"), "{last_error}");
    assert!(
        last_error.contains("permission denied for Write"),
        "{last_error}"
    );
    assert!(!origin_has_branch(&repo));
}

#[test]
#[ignore = "needs the Claude Code CLI in TGS_TEST_CLAUDE"]
fn the_turn_limit_is_a_failed_attempt() {
    let bin = claude();
    let env = TestEnv::new();
    let repo = setup(&env, &bin, "max_turns: 1");
    let key = api_key();
    let fake = FakeAnthropic::start(vec![
        Turn::write("src/feature.rs", FEATURE),
        Turn::write(&format!("{T}/implementation.md"), SUMMARY),
        Turn::text("Done."),
    ]);
    let (code, out, err) = server_run(&repo, &fake, &key, &[]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let log = transcript(&repo);
    assert!(log.contains("--max-turns 1"), "{log}");
    // The CLI stops after the first tool use (exit 1, error_max_turns).
    assert_eq!(fake.model_requests().len(), 1, "{log}");
    let result = events(&log).into_iter().last().unwrap();
    assert_eq!(result["subtype"], "error_max_turns", "{log}");
    assert_eq!(result["is_error"], true);
    let e = entry(&repo);
    assert_eq!(e["status"], "queued", "{e}");
    let last_error = e["last_error"].as_str().unwrap_or_default();
    eprintln!("last_error: {last_error}");
    assert!(last_error.starts_with("failed:"), "{last_error}");
    assert!(
        last_error.contains("max_turns") || last_error.contains("turn limit"),
        "{last_error}"
    );
    assert!(!origin_has_branch(&repo), "work cut short was handed over");
}

/// The real CLI inside the sandbox (`server.sandbox.mode: on`): it reaches
/// the fake Messages API only through tgs's proxy, which holds the key (the
/// CLI has a stand-in; every request arrives with the real key), does the
/// work with its tools, and a second loopback server that is not allowed
/// receives nothing, though the agent's `Bash` tries it.
#[test]
#[ignore = "needs the Claude Code CLI in TGS_TEST_CLAUDE"]
fn claude_works_inside_the_sandbox_through_the_proxy() {
    let bin = claude();
    if !std::path::Path::new("/usr/bin/bwrap").is_file() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install bubblewrap"
        );
        eprintln!("skipped: no bubblewrap here");
        return;
    }
    let env = TestEnv::new();
    let repo = setup(&env, &bin, "max_turns: 20 }\n  sandbox: { mode: on");
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other_port = other.local_addr().unwrap().port();
    other.set_nonblocking(true).unwrap();
    let key = api_key();
    let fake = FakeAnthropic::start(vec![
        Turn::write("src/feature.rs", FEATURE),
        Turn::write(&format!("{CWD}/{T}/implementation.md"), SUMMARY),
        Turn::bash(&format!(
            "curl -sS -m 5 http://127.0.0.1:{other_port}/ ; (exec 3<>/dev/tcp/127.0.0.1/{other_port}) ; cat ~/.gitconfig ; env ; echo probed"
        )),
        Turn::bash("git add -A && git commit -qm 'Add feature()'"),
        Turn::text("Implemented the plan."),
    ]);
    let (code, out, err) = server_run(&repo, &fake, &key, &[("TGS_SANDBOX", "on")]);
    let log = transcripts(&repo)
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect::<String>();
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}\n{log}");
    assert_eq!(fake.turns_left(), 0, "the CLI stopped early:\n{err}\n{log}");
    let e = entry(&repo);
    assert_eq!(e["status"], "completed", "{e}\n{err}\n{log}");
    assert_eq!(
        origin_file(&repo, &format!("{BRANCH}:src/feature.rs")),
        FEATURE
    );
    assert!(
        other.accept().is_err(),
        "the server that is not allowed was reached"
    );
    let results = fake.model_requests()[3].tool_results();
    assert!(results[2].contains("probed"), "{results:?}");
    assert!(
        !results[2].contains("defaultBranch"),
        "the user's home was visible: {}",
        results[2]
    );
    assert!(
        log.contains(&format!("egress denied: 127.0.0.1:{other_port}")),
        "{log}"
    );
    assert!(!results[2].contains(&key), "the key entered the sandbox");
    assert!(
        results[2].contains("ANTHROPIC_API_KEY=tgs-stand-in-anthropic-"),
        "{}",
        results[2]
    );
    for r in fake.model_requests() {
        assert_eq!(r.header("x-api-key"), Some(key.as_str()), "{}", r.path);
    }
}

/// The agent asks its humans through the session's `ask_humans` tool
/// (`tgs mcp --ask`, which Claude starts inside the sandbox): the attempt
/// ends `needs_input`, not counted, with the question in the state.
#[test]
#[ignore = "needs the Claude Code CLI in TGS_TEST_CLAUDE"]
fn claude_asks_its_humans_through_the_session_tool() {
    let bin = claude();
    let contained = std::path::Path::new("/usr/bin/bwrap").is_file();
    assert!(
        contained || std::env::var_os("CI").is_none(),
        "CI must install bubblewrap"
    );
    let env = TestEnv::new();
    let repo = setup(&env, &bin, "max_turns: 20 }\n  sandbox: { mode: on");
    let key = api_key();
    let fake = FakeAnthropic::start(vec![
        Turn::write("src/feature.rs", FEATURE),
        Turn::tool(
            "mcp__tgs__ask_humans",
            json!({"question": "Should feature() return 7 or 8?"}),
        ),
        Turn::text("I asked the team and stop here."),
    ]);
    let sandbox = if contained { "on" } else { "off" };
    let (code, out, err) = server_run(&repo, &fake, &key, &[("TGS_SANDBOX", sandbox)]);
    let log = transcript(&repo);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}\n{log}");
    let results: Vec<String> = fake
        .model_requests()
        .iter()
        .flat_map(|r| r.tool_results())
        .collect();
    assert!(
        results
            .iter()
            .any(|r| r.contains("Your question is recorded")),
        "the tool did not answer: {results:?}\n{log}"
    );
    let e = entry(&repo);
    assert_eq!(e["status"], "needs_input", "{e}\n{err}\n{log}");
    assert_eq!(
        e["questions"][0]["text"], "Should feature() return 7 or 8?",
        "{e}"
    );
    assert_eq!(e["attempts"].as_u64().unwrap_or(0), 0, "{e}");
    assert!(e["wip"]["head"].is_string(), "its work was not kept: {e}");
}
