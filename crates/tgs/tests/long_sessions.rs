//! Long sessions that lose nothing: a silent agent is stopped as stalled
//! (every driver: the Claude stream, Codex's events, a plain command, an
//! adapter) and leaves no process; an attempt that ends without a hand-over
//! keeps its work on `refs/tgs/wip/<thought>`, checked like a hand-over;
//! the next attempt starts from it.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{run, script, TestEnv, TestRepo};
use serde_json::Value;

const T: &str = "tgs/thoughts/abcdef1-add-a-feature";
const WIP_REF: &str = "refs/tgs/wip/abcdef1-add-a-feature";

/// A repository with one approved, queued thought, the agent `name`
/// configured as `agent_yaml`, and `extra` more `server:` keys.
fn lab<'e>(env: &'e TestEnv, name: &str, agent_yaml: &str, extra: &str) -> TestRepo<'e> {
    let repo = env.repo("r");
    repo.approved("abcdef1-add-a-feature", "Add a feature");
    repo.write(
        "tgs/tgs.yml",
        &format!(
            "server:\n  agent: {name}\n  retry_delay: 1s\n  retry_delay_max: 1s\n  kill_grace: 1s\n{extra}  agents:\n    {name}: {agent_yaml}\n"
        ),
    );
    repo.publish("approved thought and config");
    let (code, _, err) = run(repo.tgs().args(["server", "scan"]));
    assert_eq!(code, 0, "{err}");
    repo
}

/// A bash script in the test's directory; returns its path.
fn fake(env: &TestEnv, name: &str, body: &str) -> String {
    let path = env.path().join(name);
    script(&path, &format!("#!/bin/bash\n{body}"));
    path.display().to_string()
}

/// `tgs server run` with the real clock.
fn server_run(repo: &TestRepo, args: &[&str]) -> (i32, String, String) {
    run(repo
        .tgs()
        .env_remove("TGS_NOW")
        .args(["server", "run"])
        .args(args))
}

fn entry(repo: &TestRepo) -> Value {
    repo.remote_backlog()["thoughts"][0].clone()
}

fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
        .map(|s| !s.split(") ").nth(1).unwrap_or("").starts_with('Z'))
        .unwrap_or(false)
}

/// Records its pid and a child's that ignores SIGTERM, then `then`.
fn hold(env: &TestEnv, then: &str) -> String {
    let p = env.path().join("pid");
    format!(
        "echo $$ > {p}.agent\n(trap '' TERM; exec sleep 600) &\necho $! > {p}.child\n{then}",
        p = p.display()
    )
}

fn assert_gone(env: &TestEnv) {
    std::thread::sleep(Duration::from_millis(200));
    for who in ["agent", "child"] {
        let f = env.path().join(format!("pid.{who}"));
        let pid = std::fs::read_to_string(&f).unwrap();
        assert!(!alive(&pid), "the {who} ({}) survived", pid.trim());
    }
}

// ---- Stalls ------------------------------------------------------------------

/// Run a stalled session of `agent_yaml` and check how it ended.
fn stalls(name: &str, agent_yaml: &dyn Fn(&TestEnv) -> String, last_seen: &str) {
    let env = TestEnv::new();
    let yaml = agent_yaml(&env);
    let repo = lab(
        &env,
        name,
        &yaml,
        "  stall_timeout: 2s\n  session_timeout: 5m\n  max_attempts: 1\n",
    );
    let t = Instant::now();
    let (code, _, err) = server_run(&repo, &["--no-pr"]);
    assert_eq!(code, 1, "failed for good: {err}");
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    let e = entry(&repo);
    let last = e["last_error"].as_str().unwrap_or_default();
    assert!(
        last.starts_with(
            "stalled: no sign of life for 2s (no output, no change in its repository); last seen: "
        ),
        "{name}: {e}\n{err}"
    );
    assert!(last.contains(last_seen), "{name}: {last}");
    assert_eq!(e["status"], "failed", "{e}");
    let metrics = repo.metrics_csv();
    assert!(metrics.contains(",stalled,"), "{metrics}");
    let audit = repo.audit();
    assert!(
        audit.iter().any(|r| r["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("stalled:"))),
        "{audit:?}"
    );
    assert_gone(&env);
}

#[test]
fn a_silent_plain_command_is_stopped_as_stalled() {
    stalls(
        "plain",
        &|env| {
            let bin = fake(
                env,
                "agent.sh",
                &hold(env, "echo 'reading the plan'\ntrap '' TERM\nsleep 600\n"),
            );
            format!("{{ command: \"{bin}\" }}")
        },
        "reading the plan",
    );
}

#[test]
fn a_silent_claude_stream_is_stopped_as_stalled() {
    stalls(
        "claude-code",
        &|env| {
            let events = r#"{"type":"system","subtype":"init","session_id":"s1","model":"fake"}
{"type":"assistant","message":{"id":"m1","content":[{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"cargo test --workspace"}}]},"session_id":"s1"}"#;
            let bin = fake(
                env,
                "claude",
                &hold(
                    env,
                    &format!(
                        "cat > /dev/null\necho '{}'\necho '{}'\nsleep 600\n",
                        events.lines().next().unwrap(),
                        events.lines().nth(1).unwrap()
                    ),
                ),
            );
            format!("{{ driver: claude-code, bin: {bin} }}")
        },
        "cargo test --workspace",
    );
}

#[test]
fn a_silent_codex_turn_is_stopped_as_stalled() {
    stalls(
        "codex",
        &|env| {
            let bin = fake(
                env,
                "codex",
                &hold(env, "echo '{\"type\":\"thread.started\",\"thread_id\":\"t1\"}'\necho '{\"type\":\"turn.started\"}'\necho '{\"type\":\"item.started\",\"item\":{\"id\":\"i1\",\"type\":\"command_execution\",\"command\":\"make check\",\"status\":\"in_progress\"}}'\nsleep 600\n"),
            );
            format!("{{ driver: codex, bin: {bin} }}")
        },
        "make check",
    );
}

#[test]
fn a_silent_adapter_is_stopped_as_stalled() {
    stalls(
        "legacy",
        &|env| {
            let bin = fake(
                env,
                "adapter.sh",
                &hold(env, "echo 'adapter: thinking'\nsleep 600\n"),
            );
            format!("{{ adapter: {bin} }}")
        },
        "adapter: thinking",
    );
}

#[test]
fn a_quiet_agent_that_changes_its_repository_is_alive() {
    let env = TestEnv::new();
    // No output for 5 s, but a file changes every half second: not a stall.
    let bin = fake(
        &env,
        "agent.sh",
        "for i in $(seq 1 10); do sleep 0.5; echo $i > build.log; done\nrm build.log\necho 'pub fn feature() {}' >> src/lib.rs\nprintf '# Implementation\\n\\nDone.\\n' > \"$TGS_THOUGHT_DIR/implementation.md\"\n",
    );
    let repo = lab(
        &env,
        "plain",
        &format!("{{ command: \"{bin}\" }}"),
        "  stall_timeout: 2s\n",
    );
    let (code, _, err) = server_run(&repo, &["--no-pr"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(entry(&repo)["status"], "completed", "{err}");
}

#[test]
fn a_stall_timeout_per_agent_and_a_bad_one_are_read() {
    let env = TestEnv::new();
    let bin = fake(&env, "agent.sh", &hold(&env, "echo hi\nsleep 600\n"));
    // The agent's own setting wins over the server's.
    let repo = lab(
        &env,
        "plain",
        &format!("{{ command: \"{bin}\", stall_timeout: 1s }}"),
        "  stall_timeout: 10m\n  max_attempts: 1\n",
    );
    let (code, _, err) = server_run(&repo, &["--no-pr"]);
    assert_eq!(code, 1, "{err}");
    let last = entry(&repo)["last_error"].as_str().unwrap().to_owned();
    assert!(
        last.starts_with("stalled: no sign of life for 1s"),
        "{last}"
    );

    repo.write(
        "tgs/tgs.yml",
        "server:\n  agent: plain\n  stall_timeout: soon\n  agents:\n    plain: { command: x }\n",
    );
    repo.publish("bad");
    let (code, _, err) = server_run(&repo, &["--no-pr"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("server.stall_timeout"), "{err}");
}
