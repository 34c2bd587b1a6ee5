//! Scheduling and limits: dependencies (`--after`, `- Depends on:` in a
//! README) that hold a thought until the one it needs is done and merged,
//! cycles and unknown dependencies refused, the queue's depth, an agent's
//! sessions at once, daily budgets and a thought's budget over its attempts,
//! and a paused agent that `matrix` honours too.

mod common;
#[path = "support/github.rs"]
mod github;
#[path = "support/loopback.rs"]
mod loopback;

use common::{run, script, TestEnv, TestRepo};
use github::FakeGitHub;
use serde_json::Value;

const TOKEN: &str = "ghs_sched_token_0123456789";
const WORK: &str = "echo \"pub fn f_$(basename \"$TGS_THOUGHT_DIR\" | tr - _)() {}\" >> src/lib.rs\nprintf '# Implementation\\n\\nDone.\\n' > \"$TGS_THOUGHT_DIR/implementation.md\"\ngit add -A && git commit -qm work\n";

fn dir(i: usize) -> String {
    format!("tgs/thoughts/{:07x}-thought-{i}", 0xc000000 + i)
}

/// `n` approved thoughts (not queued) and `agent` (a bash body) as `test`;
/// `server` adds keys to `server:`, `agent_keys` to the agent's entry.
fn repo_with<'e>(env: &'e TestEnv, n: usize, agent: &str, server: &str) -> TestRepo<'e> {
    repo_with_agent(env, n, agent, server, "")
}

fn repo_with_agent<'e>(
    env: &'e TestEnv,
    n: usize,
    agent: &str,
    server: &str,
    agent_keys: &str,
) -> TestRepo<'e> {
    let repo = env.repo("r");
    for i in 0..n {
        repo.approved(
            &format!("{:07x}-thought-{i}", 0xc000000 + i),
            &format!("Thought {i}"),
        );
    }
    let path = env.path().join("agent.sh");
    script(&path, &format!("#!/bin/bash\n{agent}"));
    repo.write(
        "tgs/tgs.yml",
        &format!(
            "server:\n  agent: test\n  retry_delay: 1s\n  kill_grace: 1s\n{server}  agents:\n    test: {{ command: \"{}\"{agent_keys} }}\n",
            path.display(),
        ),
    );
    repo.publish("thoughts");
    repo
}

fn ok(repo: &TestRepo, args: &[&str]) -> String {
    let (code, out, err) = run(repo.tgs().args(args));
    assert_eq!(code, 0, "tgs {args:?}: {err}");
    out
}

fn entry(repo: &TestRepo, d: &str) -> Value {
    repo.remote_backlog()["thoughts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["dir"] == d)
        .cloned()
        .unwrap_or_else(|| panic!("{d} not in the state"))
}

fn tgs_run(repo: &TestRepo, args: &[&str]) -> (i32, String, String) {
    run(repo
        .tgs()
        .env_remove("TGS_NOW")
        .args(["server", "run", "--no-pr"])
        .args(args))
}

#[test]
fn a_thought_waits_for_the_one_it_depends_on() {
    let env = TestEnv::new();
    let order = env.path().join("order");
    let repo = repo_with(
        &env,
        3,
        &format!(
            "set -e\nbasename \"$TGS_THOUGHT_DIR\" >> {}\n{WORK}",
            order.display()
        ),
        "",
    );
    // 0 waits for 1, at a higher priority: it still runs second.
    ok(&repo, &["server", "backlog", "add", &dir(1)]);
    ok(
        &repo,
        &[
            "server",
            "backlog",
            "add",
            &dir(0),
            "--priority",
            "9",
            "--after",
            &dir(1),
        ],
    );
    assert_eq!(
        entry(&repo, &dir(0))["depends_on"],
        serde_json::json!([dir(1)])
    );
    let table = ok(&repo, &["server", "backlog", "list"]);
    assert!(
        table.lines().next().unwrap().contains("WAITS FOR"),
        "{table}"
    );
    let row = table.lines().find(|l| l.starts_with(&dir(0))).unwrap();
    assert!(row.ends_with(&dir(1)), "{table}");
    let status = ok(&repo, &["--json", "server", "status"]);
    let s: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(s["waiting"][0]["blocked_by"], serde_json::json!([dir(1)]));
    // `run --thought` says why it cannot run.
    let (code, _, err) = tgs_run(&repo, &["--thought", &dir(0)]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("waits for {}", dir(1))), "{err}");
    let (code, _, err) = tgs_run(&repo, &["--until-empty"]);
    assert_eq!(code, 0, "{err}");
    let ran = std::fs::read_to_string(&order).unwrap();
    assert_eq!(ran, "c000001-thought-1\nc000000-thought-0\n");
    // Done, archived, and the dependency resolved.
    assert_eq!(entry(&repo, &dir(0))["status"], "completed");
    assert!(repo.live_backlog()["thoughts"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn a_dependency_with_an_open_pull_request_is_not_done_until_merged() {
    let env = TestEnv::new();
    let repo = repo_with(&env, 2, &format!("set -e\n{WORK}"), "");
    let gh = FakeGitHub::start("octo", "demo", TOKEN);
    let step = |args: &[&str]| {
        let mut c = repo.tgs();
        c.env("GITHUB_TOKEN", TOKEN)
            .env("GITHUB_REPOSITORY", "octo/demo")
            .env("GITHUB_API_URL", gh.api_url())
            .args(args);
        run(&mut c)
    };
    ok(&repo, &["server", "backlog", "add", &dir(0)]);
    ok(
        &repo,
        &["server", "backlog", "add", &dir(1), "--after", &dir(0)],
    );
    let (code, _, err) = step(&["server", "run", "--until-empty"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(entry(&repo, &dir(0))["status"], "completed");
    assert_eq!(
        entry(&repo, &dir(1))["status"],
        "queued",
        "its PR is open: {err}"
    );
    // Merged: sync-prs records it, the dependency is done.
    let n = gh.pulls()[0].number;
    gh.close_pull(n, true);
    let (code, _, err) = step(&["server", "sync-prs"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(entry(&repo, &dir(1))["depends_on"], Value::Null, "resolved");
    let (code, _, err) = step(&["server", "run"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(entry(&repo, &dir(1))["status"], "completed", "{err}");
}

#[test]
fn cycles_and_unknown_dependencies_are_refused() {
    let env = TestEnv::new();
    let repo = repo_with(&env, 3, WORK, "");
    ok(
        &repo,
        &["server", "backlog", "add", &dir(0), &dir(1), &dir(2)],
    );
    ok(
        &repo,
        &["server", "backlog", "add", &dir(1), "--after", &dir(0)],
    );
    ok(
        &repo,
        &["server", "backlog", "add", &dir(2), "--after", &dir(1)],
    );
    let count = repo.state_commit_count();
    let (code, _, err) =
        run(repo
            .tgs()
            .args(["server", "backlog", "add", &dir(0), "--after", &dir(2)]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "would make a cycle: {} → {} → {} → {}",
            dir(0),
            dir(2),
            dir(1),
            dir(0)
        )),
        "{err}"
    );
    assert_eq!(repo.state_commit_count(), count, "nothing changed");
    let (code, _, err) = run(repo.tgs().args([
        "server",
        "backlog",
        "add",
        &dir(0),
        "--after",
        "ddddddd-nowhere",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is not in the backlog"), "{err}");
}

#[test]
fn scan_picks_up_declared_dependencies() {
    let env = TestEnv::new();
    let repo = repo_with(&env, 0, WORK, "");
    let a = repo.approved("aaaaaaa-base", "Base");
    let b = repo.thought(
        "bbbbbbb-on-top",
        &[
            (
                "README.md",
                "# bbbbbbb - On top\n\n- Base Hash: `bbbbbbb`\n- Depends on: aaaaaaa-base\n",
            ),
            ("research.md", "# Research: On top\n\nFound.\n"),
            ("plan.md", "# Plan: On top\n\n1. Do.\n"),
        ],
    );
    let c = repo.thought(
        "ccccccc-orphan",
        &[
            (
                "README.md",
                "# ccccccc - Orphan\n\n- Depends on: `9999999-nowhere`\n",
            ),
            ("research.md", "# Research\n\nFound.\n"),
            ("plan.md", "# Plan\n\n1. Do.\n"),
        ],
    );
    repo.publish("dependent thoughts");
    let (code, _, err) = run(repo.tgs().args(["server", "scan"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(entry(&repo, &b)["depends_on"], serde_json::json!([a]));
    assert_eq!(entry(&repo, &a)["status"], "queued");
    assert!(
        err.contains(&format!(
            "{c}: not queued: it depends on tgs/thoughts/9999999-nowhere"
        )),
        "{err}"
    );
    assert!(repo.remote_backlog()["thoughts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["dir"] != c.as_str()));
}

#[test]
fn the_queue_has_a_depth() {
    let env = TestEnv::new();
    let repo = repo_with(&env, 4, WORK, "  max_queue_depth: 2\n");
    let (code, _, err) =
        run(repo
            .tgs()
            .args(["server", "backlog", "add", &dir(0), &dir(1), &dir(2)]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("more than server.max_queue_depth (2)"),
        "{err}"
    );
    let (code, _, err) = run(repo.tgs().args(["server", "scan"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("2 approved thought(s) not queued: the queue is full"),
        "{err}"
    );
    assert_eq!(repo.live_backlog()["thoughts"].as_array().unwrap().len(), 2);
}

#[test]
fn an_agent_runs_at_most_max_concurrent_sessions_over_every_worker() {
    let env = TestEnv::new();
    let spans = env.path().join("spans");
    let agent = format!(
        "set -e\necho \"start $(date +%s.%N)\" >> {s}\nsleep 1\n{WORK}echo \"end $(date +%s.%N)\" >> {s}\n",
        s = spans.display()
    );
    let repo = repo_with_agent(&env, 3, &agent, "", ", max_concurrent: 1");
    ok(&repo, &["server", "scan"]);
    let (code, _, err) = tgs_run(&repo, &["--parallel", "3", "--until-empty"]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&spans).unwrap();
    let mut events: Vec<(f64, i32)> = text
        .lines()
        .map(|l| {
            let (k, t) = l.split_once(' ').unwrap();
            (t.parse().unwrap(), if k == "start" { 1 } else { -1 })
        })
        .collect();
    events.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mut at_once = 0;
    for (_, d) in events {
        at_once += d;
        assert!(at_once <= 1, "two sessions at once: {text}");
    }
    for i in 0..3 {
        assert_eq!(entry(&repo, &dir(i))["status"], "completed");
    }
}

#[test]
fn daily_budgets_stop_new_sessions() {
    let env = TestEnv::new();
    let repo = repo_with(
        &env,
        3,
        &format!("set -e\n{WORK}"),
        "  budgets: { daily_sessions: 2 }\n",
    );
    ok(&repo, &["server", "scan"]);
    let (code, _, err) = tgs_run(&repo, &["--until-empty"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("the daily budget of 2 session(s) is spent"),
        "{err}"
    );
    assert_eq!(entry(&repo, &dir(2))["status"], "queued");
    let usage = &repo.remote_backlog()["usage"];
    assert_eq!(usage["sessions"], 2, "{usage}");
    // The matrix honours it too.
    let (code, out, err) = run(repo
        .tgs()
        .env_remove("TGS_NOW")
        .args(["server", "matrix", "--max", "3"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "{\"include\":[]}");
    assert!(err.contains("daily budget"), "{err}");
}

/// A Claude stand-in that fails and reports what each attempt cost.
fn costly_failure(env: &TestEnv, cost: &str) -> String {
    let path = env.path().join("claude");
    script(
        &path,
        &format!(
            "#!/bin/bash\ncat >/dev/null\necho '{{\"type\":\"result\",\"subtype\":\"error_during_execution\",\"is_error\":true,\"num_turns\":9,\"total_cost_usd\":{cost},\"result\":\"tests still fail\",\"session_id\":\"s\"}}'\nexit 1\n"
        ),
    );
    path.display().to_string()
}

#[test]
fn a_thought_fails_for_good_once_its_attempts_reach_its_budget() {
    let env = TestEnv::new();
    let bin = costly_failure(&env, "0.30");
    let repo = env.repo("r");
    repo.approved("ddddddd-pricey", "Pricey");
    repo.write(
        "tgs/tgs.yml",
        &format!(
            "server:\n  agent: claude-code\n  retry_delay: 1s\n  max_attempts: 5\n  budgets: {{ thought_cost_usd: 0.5 }}\n  agents:\n    claude-code: {{ driver: claude-code, bin: {bin} }}\n"
        ),
    );
    repo.publish("a pricey thought");
    ok(&repo, &["server", "scan"]);
    let gh = FakeGitHub::start("octo", "demo", TOKEN);
    let (code, _, err) = run(repo
        .tgs()
        .env_remove("TGS_NOW")
        .env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_REPOSITORY", "octo/demo")
        .env("GITHUB_API_URL", gh.api_url())
        .args(["server", "run", "--until-empty"]));
    assert_eq!(code, 1, "failed for good: {err}");
    let e = entry(&repo, "tgs/thoughts/ddddddd-pricey");
    assert_eq!(e["status"], "failed", "{e}");
    assert_eq!(
        e["attempts"], 2,
        "stopped at the budget, not at max_attempts: {e}"
    );
    assert_eq!(e["cost_usd"], 0.6);
    let last = e["last_error"].as_str().unwrap();
    assert!(
        last.starts_with("budget: ") && last.contains("thought_cost_usd"),
        "{last}"
    );
    let issues = gh.issues();
    assert_eq!(issues.len(), 1);
    assert!(issues[0].body.contains("budget"), "{}", issues[0].body);
}

#[test]
fn a_paused_agent_gets_no_matrix_claims_until_resumed() {
    let env = TestEnv::new();
    let repo = repo_with(&env, 1, WORK, "");
    ok(&repo, &["server", "scan"]);
    repo.put_state(&[(
        "tgs/server/backlog.json",
        &serde_json::to_string(&{
            let mut b = repo.live_backlog();
            b["pauses"] = serde_json::json!({"test": {"kind": "unavailable", "reason": "credit", "since": "2026-01-15T11:00:00Z", "strikes": 0}});
            b
        })
        .unwrap(),
    )]);
    let (code, out, err) = run(repo.tgs().args(["server", "matrix", "--max", "2"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "{\"include\":[]}");
    assert!(
        err.contains("the agent test is paused until a human resumes it"),
        "{err}"
    );
    ok(&repo, &["server", "resume", "test"]);
    let (_, out, _) = run(repo.tgs().args(["server", "matrix", "--max", "2"]));
    assert!(out.contains(&dir(0)), "{out}");
    assert!(repo.audit().iter().any(|r| r["action"] == "resume"));
}
