//! `tgs server run` driving the real Codex CLI (npm `@openai/codex`), whose
//! model is a loopback fake of the Responses API (`support/openai.rs`),
//! inside the sandbox: through tgs's proxy and model gateway, with a
//! stand-in for its key, while a loopback server that is not allowed
//! receives nothing.
//!
//! The CLI is found through `TGS_TEST_CODEX` (`.ci/run` installs the pinned
//! one and sets it). Without it these tests are ignored; `--include-ignored`
//! runs them, and then a missing CLI fails them.

mod common;
#[path = "support/loopback.rs"]
mod loopback;
#[path = "support/openai.rs"]
mod openai;

use std::path::PathBuf;

use common::{run, TestEnv, TestRepo};
use openai::{FakeOpenAi, Turn};
use serde_json::{json, Value};

const NAME: &str = "abcdef1-add-a-feature";
const T: &str = "tgs/thoughts/abcdef1-add-a-feature";
const BRANCH: &str = "tgs/abcdef1-add-a-feature";
const FEATURE: &str = "pub fn feature() -> u32 {\n    7\n}\n";

/// The Codex CLI to test; a test that runs without it fails.
fn codex() -> PathBuf {
    let p = std::env::var_os("TGS_TEST_CODEX")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!("the Codex CLI tests need TGS_TEST_CODEX: npm install @openai/codex and point it at node_modules/.bin/codex (see .ci/run)")
        });
    assert!(p.is_file(), "TGS_TEST_CODEX={} is not a file", p.display());
    p
}

/// Bubblewrap is here (CI installs it); `false` only off CI.
fn contained() -> bool {
    let here = std::path::Path::new("/usr/bin/bwrap").is_file();
    assert!(
        here || std::env::var_os("CI").is_none(),
        "CI must install bubblewrap"
    );
    here
}

/// A repository with one approved, queued thought and the codex agent
/// running `bin` (a model Codex has no metadata for: its plain tool set).
fn setup<'e>(env: &'e TestEnv, bin: &std::path::Path) -> TestRepo<'e> {
    let repo = env.repo("r");
    repo.approved(NAME, "Add a feature");
    repo.write(
        "tgs/tgs.yml",
        &format!(
            "ai:\n  provider: openai\nserver:\n  agent: codex\n  retry_delay: 1s\n  kill_grace: 1s\n  sandbox: {{ mode: on }}\n  agents:\n    codex: {{ bin: \"{}\", model: gpt-4.1 }}\n",
            bin.display()
        ),
    );
    repo.publish("approved thought and config");
    let (code, _, err) = run(repo.tgs().args(["server", "scan"]));
    assert_eq!(code, 0, "{err}");
    repo
}

/// A test API key, different in every run.
fn api_key() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("sk-test-{:x}{:x}", std::process::id(), nanos)
}

fn server_run(repo: &TestRepo, fake: &FakeOpenAi, key: &str) -> (i32, String, String) {
    let sandbox = if contained() { "on" } else { "off" };
    run(repo
        .tgs()
        .env_remove("TGS_NOW")
        .env("OPENAI_BASE_URL", fake.base_url())
        .env("OPENAI_API_KEY", key)
        .env_remove("CODEX_HOME")
        .env("TGS_SANDBOX", sandbox)
        .args(["server", "run", "--once", "--no-pr", "--timeout", "90s"]))
}

fn entry(repo: &TestRepo) -> Value {
    repo.remote_backlog()["thoughts"][0].clone()
}

fn transcript(repo: &TestRepo) -> String {
    std::fs::read_dir(repo.path("tgs/server/logs"))
        .map(|d| {
            d.flatten()
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default()
}

fn origin_file(repo: &TestRepo, rev_path: &str) -> String {
    let out = repo
        .env
        .git_cmd(&repo.origin)
        .args(["show", rev_path])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `printf` of `text` into `path`, as one shell command.
fn write_cmd(path: &str, text: &str) -> String {
    format!("printf '%s' '{}' > {path}", text.replace('\'', r"'\''"))
}

#[test]
#[ignore = "needs the Codex CLI in TGS_TEST_CODEX"]
fn codex_works_inside_the_sandbox_through_the_proxy() {
    let bin = codex();
    let on = contained();
    let env = TestEnv::new();
    let repo = setup(&env, &bin);
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other_port = other.local_addr().unwrap().port();
    other.set_nonblocking(true).unwrap();
    let key = api_key();
    let fake = FakeOpenAi::start(vec![
        Turn::exec(&write_cmd("src/feature.rs", FEATURE)),
        Turn::exec(&write_cmd(
            &format!("{T}/implementation.md"),
            "# Implementation\n\nAdded feature().\n",
        )),
        Turn::exec(&format!(
            "curl -sS -m 5 http://127.0.0.1:{other_port}/ ; (exec 3<>/dev/tcp/127.0.0.1/{other_port}) ; cat ~/.gitconfig ; env ; echo probed"
        )),
        Turn::exec("git add -A && git commit -qm 'Add feature()'"),
        Turn::text("Implemented the plan."),
    ]);
    let (code, out, err) = server_run(&repo, &fake, &key);
    let log = transcript(&repo);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}\n{log}");
    assert_eq!(fake.turns_left(), 0, "the CLI stopped early:\n{err}\n{log}");
    let e = entry(&repo);
    assert_eq!(e["status"], "completed", "{e}\n{err}\n{log}");
    assert_eq!(
        origin_file(&repo, &format!("{BRANCH}:src/feature.rs")),
        FEATURE
    );
    let requests = fake.model_requests();
    let probe = requests[3]
        .tool_outputs()
        .into_iter()
        .find(|o| o.contains("probed"))
        .unwrap_or_else(|| panic!("{:?}", requests[3].tool_outputs()));
    for r in &requests {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {key}").as_str()),
            "{}",
            r.path
        );
    }
    if !on {
        eprintln!("not contained here: the sandbox's part was not checked");
        return;
    }
    assert!(
        other.accept().is_err(),
        "the server that is not allowed was reached"
    );
    assert!(
        !probe.contains("defaultBranch"),
        "the user's home was visible: {probe}"
    );
    assert!(!probe.contains(&key), "the key entered the sandbox");
    assert!(
        probe.contains("OPENAI_API_KEY=tgs-stand-in-openai-"),
        "{probe}"
    );
    assert!(
        log.contains(&format!("egress denied: 127.0.0.1:{other_port}")),
        "{log}"
    );
}

/// Codex reaches the session's `ask_humans` tool (tgs's MCP server, which
/// tgs configures for Codex as for Claude): the attempt ends
/// `needs_input`, not counted, its work kept.
#[test]
#[ignore = "needs the Codex CLI in TGS_TEST_CODEX"]
fn codex_asks_its_humans_through_the_session_tool() {
    let bin = codex();
    let env = TestEnv::new();
    let repo = setup(&env, &bin);
    let key = api_key();
    let fake = FakeOpenAi::start(vec![
        Turn::exec(&write_cmd("src/feature.rs", FEATURE)),
        Turn::mcp(
            "tgs",
            "ask_humans",
            json!({"question": "Should feature() return 7 or 8?"}),
        ),
        Turn::text("I asked the team and stop here."),
    ]);
    let (code, out, err) = server_run(&repo, &fake, &key);
    let log = transcript(&repo);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}\n{log}");
    let outputs: Vec<String> = fake
        .model_requests()
        .iter()
        .flat_map(|r| r.tool_outputs())
        .collect();
    assert!(
        outputs
            .iter()
            .any(|o| o.contains("Your question is recorded")),
        "the tool did not answer: {outputs:?}\n{log}"
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
