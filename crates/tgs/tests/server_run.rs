//! `tgs server run` end to end: real agent scripts in real repositories with
//! a bare `origin`, covering each step and each way a session can fail.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{alive, run, script, TestEnv, TestRepo};
use serde_json::Value;

const T: &str = "tgs/thoughts/abcdef1-add-a-feature";

/// A repository with one approved, queued thought and `agent` (a bash
/// script body) configured as the `test` command agent.
fn setup<'e>(env: &'e TestEnv, agent: &str, server_yaml: &str) -> TestRepo<'e> {
    let repo = env.repo("r");
    repo.approved("abcdef1-add-a-feature", "Add a feature");
    let agent_path = env.path().join("agent.sh");
    script(&agent_path, &format!("#!/bin/bash\n{agent}"));
    repo.write(
        "tgs/tgs.yml",
        &format!(
            "ai:\n  provider: test\nserver:\n  agent: test\n{}  kill_grace: 1s\n{server_yaml}  agents:\n    test: {{ command: \"{}\" }}\n",
            if server_yaml.contains("retry_delay") { "" } else { "  retry_delay: 1s\n" },
            agent_path.display()
        ),
    );
    repo.publish("approved thought and config");
    let (code, _, err) = run(repo.tgs().args(["server", "scan"]));
    assert_eq!(code, 0, "{err}");
    repo
}

/// Does the work properly: code, the summary, a commit.
const GOOD: &str = r#"set -e
echo "pub fn feature() {}" >> src/lib.rs
printf '# Implementation\n\nAdded feature().\n' > "$TGS_THOUGHT_DIR/implementation.md"
git add -A
git commit -qm "Add a feature"
echo "did the work"
"#;

/// (action, from, to) of each audit line about the thought.
fn audit(repo: &TestRepo) -> Vec<(String, String, String)> {
    repo.audit()
        .into_iter()
        .filter(|r| r["thought"] == T)
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or("-").to_owned();
            (s("action"), s("from"), s("to"))
        })
        .collect()
}

/// The outcome column of each metrics row.
fn outcomes(repo: &TestRepo) -> Vec<String> {
    let text = repo.metrics_csv();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("thought,worker,agent,started,ended,duration_s,outcome,attempt,exit_code,turns,cost_usd,input_tokens,output_tokens,pr_url,revision,sandbox")
    );
    lines
        .map(|l| l.split(',').nth(6).unwrap().to_owned())
        .collect()
}

fn a3(a: &str, f: &str, t: &str) -> (String, String, String) {
    (a.into(), f.into(), t.into())
}

fn entry(repo: &TestRepo) -> Value {
    repo.remote_backlog()["thoughts"][0].clone()
}

fn logs(repo: &TestRepo) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo.path("tgs/server/logs"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_good_session_is_verified_pushed_and_completed() {
    let env = TestEnv::new();
    let seen = env.path().join("seen");
    let agent = format!(
        "cp \"$TGS_PROMPT_FILE\" {seen}.prompt\ncat > {seen}.stdin\nenv > {seen}.env\n{GOOD}",
        seen = seen.display()
    );
    let repo = setup(&env, &agent, "");
    let (code, _, err) = run(repo
        .tgs()
        .env("GITHUB_TOKEN", "ghs_must_not_leak_1234")
        .env_remove("TGS_NOW")
        .args(["server", "run", "--no-pr"]));
    assert_eq!(code, 0, "{err}");
    let e = entry(&repo);
    assert_eq!(e["status"], "completed", "{e}");
    assert_eq!(e["branch"], "tgs/abcdef1-add-a-feature");
    assert_eq!(e["attempts"], 1);
    // A finished entry is archived: retrying it says so, not "not in the backlog".
    let (code, _, err) = run(repo.tgs().args(["server", "backlog", "retry", T]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is completed and archived"), "{err}");
    // The branch on origin holds the work.
    let show = env
        .git_cmd(&repo.origin)
        .args(["show", "tgs/abcdef1-add-a-feature:src/lib.rs"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&show.stdout).contains("pub fn feature()"));
    // The prompt names the thought's files and the rules; stdin carries it too.
    let prompt = std::fs::read_to_string(format!("{}.prompt", seen.display())).unwrap();
    assert!(
        prompt.contains(&format!("{T}/research.md")) && prompt.contains(&format!("{T}/plan.md")),
        "{prompt}"
    );
    assert!(prompt.contains(&format!("{T}/implementation.md")));
    assert!(prompt.contains("Do not push"));
    assert_eq!(
        std::fs::read_to_string(format!("{}.stdin", seen.display())).unwrap(),
        prompt
    );
    // Least privilege: no forge token, the session variables present.
    let agent_env = std::fs::read_to_string(format!("{}.env", seen.display())).unwrap();
    assert!(
        !agent_env.contains("ghs_must_not_leak"),
        "the agent saw GITHUB_TOKEN"
    );
    for k in [
        "TGS_THOUGHT_DIR=",
        "TGS_PROMPT_FILE=",
        "TGS_CONTEXT_FILES=",
        "TGS_WORKTREE=",
        "TGS_BRANCH=tgs/abcdef1-add-a-feature",
        "TGS_ATTEMPT=1",
    ] {
        assert!(agent_env.contains(k), "{k} missing");
    }
    // A transcript was kept; the worktree is gone; the main checkout is clean and current.
    let l = logs(&repo);
    assert_eq!(l.len(), 1);
    assert!(l[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("abcdef1-add-a-feature-"));
    assert!(std::fs::read_to_string(&l[0])
        .unwrap()
        .contains("did the work"));
    assert!(!repo.path(".tgs/worktrees/abcdef1-add-a-feature").exists());
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    assert_eq!(repo.head(), repo.git(&["rev-parse", "origin/main"]));
    // The records: one metrics row, and the audit trail of the entry.
    assert_eq!(outcomes(&repo), ["success"]);
    assert_eq!(
        audit(&repo),
        [
            a3("add", "-", "queued"),
            a3("claim", "queued", "in_progress"),
            a3("complete", "in_progress", "completed")
        ]
    );
    // Nothing left to do: the next run says so and succeeds.
    let (code, _, err) = repo.server_run(&["--no-pr"]);
    assert_eq!(code, 0);
    assert!(err.contains("no work"), "{err}");
}

#[test]
fn uncommitted_work_is_committed_by_tgs() {
    let env = TestEnv::new();
    let repo = setup(&env, "echo 'pub fn f() {}' >> src/lib.rs\nprintf '# Impl\\nDone\\n' > \"$TGS_THOUGHT_DIR/implementation.md\"\n", "");
    let (code, _, err) = repo.server_run(&["--no-pr"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(entry(&repo)["status"], "completed");
    let log = env
        .git_cmd(&repo.origin)
        .args(["log", "--format=%s", "-1", "tgs/abcdef1-add-a-feature"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&log.stdout).trim(),
        "tgs: commit work the agent left uncommitted"
    );
}

#[test]
fn a_failing_agent_is_retried_then_failed_for_good() {
    let env = TestEnv::new();
    let repo = setup(
        &env,
        "echo 'working...'\necho 'boom: the model went away' >&2\nexit 3\n",
        "  max_attempts: 2\n  retry_delay: 3s\n",
    );
    let (code, out, err) = repo.server_run(&["--no-pr"]);
    assert_eq!(
        code, 0,
        "a failure that will be retried does not fail the run: {out}{err}"
    );
    let e = entry(&repo);
    assert_eq!(e["status"], "queued");
    assert_eq!(e["attempts"], 1);
    let last = e["last_error"].as_str().unwrap();
    assert!(
        last.starts_with("failed: the agent exited with status 3"),
        "{last}"
    );
    assert!(last.contains("boom: the model went away"), "{last}");
    assert!(e["not_before"].is_string(), "a retry delay is set: {e}");
    // The transcript keeps the order the agent wrote its two streams in.
    let log = std::fs::read_to_string(&logs(&repo)[0]).unwrap();
    let (a, b) = (
        log.find("working...").unwrap(),
        log.find("boom: the model").unwrap(),
    );
    assert!(a < b, "{log}");
    // Before the delay passes nothing is claimable; --until-empty waits it out and fails for good.
    let started = Instant::now();
    let (code, _, err) = repo.server_run(&["--until-empty", "--no-pr"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "it waited for the retry delay"
    );
    let e = entry(&repo);
    assert_eq!(e["status"], "failed");
    assert_eq!(e["attempts"], 2);
    assert!(err.contains("failed for good"), "{err}");
    assert_eq!(logs(&repo).len(), 2, "one transcript per attempt");
    assert_eq!(outcomes(&repo), ["failed", "failed"]);
    let trail: Vec<String> = audit(&repo).into_iter().map(|(a, _, _)| a).collect();
    assert_eq!(trail, ["add", "claim", "requeue", "claim", "fail"]);
}

#[test]
fn a_hanging_agent_and_its_grandchildren_are_stopped_at_the_timeout() {
    let env = TestEnv::new();
    let pids = env.path().join("pids");
    let agent = format!(
        "echo $$ > {p}.agent\n(trap '' TERM; sleep 300) &\necho $! > {p}.child\ntrap '' TERM\nsleep 300\n",
        p = pids.display()
    );
    let repo = setup(&env, &agent, "");
    let started = Instant::now();
    let (code, _, err) = repo.server_run(&["--no-pr", "--timeout", "2s"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    let e = entry(&repo);
    assert!(
        e["last_error"]
            .as_str()
            .unwrap()
            .starts_with("timeout: the session ran past its timeout of 2s"),
        "{e}"
    );
    assert_eq!(outcomes(&repo), ["timeout"]);
    std::thread::sleep(Duration::from_millis(200));
    for who in ["agent", "child"] {
        let pid = std::fs::read_to_string(format!("{}.{who}", pids.display())).unwrap();
        assert!(!alive(&pid), "the {who} ({}) survived", pid.trim());
    }
}

#[test]
fn a_crashing_agent_is_told_apart() {
    let env = TestEnv::new();
    let repo = setup(&env, "kill -SEGV $$\n", "");
    let (code, _, err) = repo.server_run(&["--no-pr"]);
    assert_eq!(code, 0, "{err}");
    let last = entry(&repo)["last_error"].as_str().unwrap().to_owned();
    assert!(
        last.starts_with("crashed: the agent was killed by signal 11"),
        "{last}"
    );
}

#[test]
fn a_missing_agent_binary_is_told_apart() {
    let env = TestEnv::new();
    let repo = setup(&env, "", "");
    repo.write(
        "tgs/tgs.yml",
        "server:\n  agent: ghost\n  agents:\n    ghost: { command: /nonexistent/agent --flag }\n",
    );
    repo.publish("ghost agent");
    // Caught before anything is claimed: a set-up problem, not a failed attempt.
    let (code, _, err) = repo.server_run(&["--no-pr"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("`/nonexistent/agent` was not found") && err.contains("hint:"),
        "{err}"
    );
    let e = entry(&repo);
    assert_eq!(e["status"], "queued");
    assert_eq!(e.get("attempts"), None);
    // `~` is not expanded (no shell runs the command): the hint says so.
    repo.write(
        "tgs/tgs.yml",
        "server:\n  agent: ghost\n  agents:\n    ghost: { command: \"~/bin/agent.sh\" }\n",
    );
    repo.publish("tilde agent");
    let (code, _, err) = repo.server_run(&["--no-pr"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no shell: `~` and `$VARIABLES` are not expanded"),
        "{err}"
    );
    // One that exists but is not executable is caught the same way, by
    // asking the system, not by claiming and failing (issue 10, input 5).
    let not_exec = env.path().join("not-executable");
    std::fs::write(&not_exec, "#!/bin/sh\nexit 0\n").unwrap();
    repo.write(
        "tgs/tgs.yml",
        &format!(
            "server:\n  agent: ghost\n  agents:\n    ghost: {{ command: {} }}\n",
            not_exec.display()
        ),
    );
    repo.publish("unstartable agent");
    let (code, _, err) = repo.server_run(&["--no-pr"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("is not executable") && err.contains("hint: chmod +x"),
        "{err}"
    );
    let e = entry(&repo);
    assert_eq!(e["status"], "queued", "nothing claimed");
    assert_eq!(e.get("attempts"), None);
}

#[test]
fn a_missing_builtin_agent_names_the_package_to_install() {
    let env = TestEnv::new();
    let repo = setup(&env, "", "");
    // A PATH with git and nothing else, whatever this machine has installed.
    let bin = env.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let git = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v git"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    std::os::unix::fs::symlink(git.trim(), bin.join("git")).unwrap();
    for (agent, program, install) in [
        (
            "claude-code",
            "claude",
            "npm install -g @anthropic-ai/claude-code: the npm package @anthropic-ai/claude-code",
        ),
        (
            "codex",
            "codex",
            "npm install -g @openai/codex: the npm package @openai/codex",
        ),
        (
            "gemini",
            "gemini",
            "npm install -g @google/gemini-cli: the npm package @google/gemini-cli",
        ),
        (
            "aider",
            "aider",
            "python3 -m pip install aider-chat: the PyPI package aider-chat",
        ),
    ] {
        let (code, _, err) = run(repo
            .tgs()
            .env_remove("TGS_NOW")
            .env("PATH", &bin)
            .args(["server", "run", "--no-pr", "--agent", agent]));
        assert_eq!(code, 2, "{agent}: {err}");
        assert!(
            err.contains(&format!(
                "the agent {agent}'s program `{program}` was not found"
            )),
            "{err}"
        );
        assert!(err.contains(install), "{agent}: {err}");
        assert!(
            err.contains(&format!("set server.agents.{agent}.bin")),
            "{err}"
        );
    }
    assert_eq!(entry(&repo)["status"], "queued");
}

#[test]
fn verification_rejects_bad_work() {
    for (agent, needle) in [
        ("exit 0\n", "the agent changed nothing"),
        ("echo 'x' >> src/lib.rs\ngit commit -qam code\n", "implementation summary"),
        (
            "echo x >> src/lib.rs\nprintf '# Impl\\nDone\\n' > \"$TGS_THOUGHT_DIR/implementation.md\"\nmkdir -p tgs/server\necho '{}' > tgs/server/backlog.json\ngit add -A\ngit commit -qm sneaky\n",
            "under tgs/server/",
        ),
        (
            "printf '# Impl\\nDone\\n' > \"$TGS_THOUGHT_DIR/implementation.md\"\ngit add -A\ngit commit -qm only-summary\n",
            "nothing changed outside tgs/",
        ),
    ] {
        let env = TestEnv::new();
        let repo = setup(&env, agent, "");
        let (code, _, err) = repo.server_run(&["--no-pr"]);
        assert_eq!(code, 0, "{err}");
        let e = entry(&repo);
        let last = e["last_error"].as_str().unwrap_or_else(|| panic!("{needle}: {e}"));
        assert!(last.starts_with("rejected: ") && last.contains(needle), "{needle}: {last}");
        assert_eq!(e["status"], "queued");
        let branch = env.git_cmd(&repo.origin).args(["rev-parse", "--verify", "-q", "refs/heads/tgs/abcdef1-add-a-feature"]).output().unwrap();
        assert!(!branch.status.success(), "rejected work is not pushed");
    }
}

#[test]
fn an_implementation_template_filled_in_by_thought_new_is_not_a_summary() {
    let env = TestEnv::new();
    let repo = setup(
        &env,
        "echo 'pub fn f() {}' >> src/lib.rs\ngit commit -qam code\n",
        "",
    );
    // A thought made by `thought new`: its implementation.md is the template
    // with the title, date and hash filled in; the agent leaves it so.
    let (code, out, err) = run(repo
        .tgs()
        .args(["thought", "new", "--title", "Add another"]));
    assert_eq!(code, 0, "{err}");
    let dir = out.trim().to_owned();
    assert!(repo
        .read(&format!("{dir}/implementation.md"))
        .starts_with("# Implementation: Add another\n"));
    repo.write(&format!("{dir}/research.md"), "# Research\nFound it.\n");
    repo.write(&format!("{dir}/plan.md"), "# Plan\n1. Do it.\n");
    repo.publish("another approved thought");
    let (code, out, err) = run(repo
        .tgs()
        .args(["thought", "list", "--stage", "approved", "--json"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&dir), "{out}");
    let (code, _, err) = run(repo.tgs().args(["server", "backlog", "add", &dir]));
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("warning"), "{err}");
    let (code, _, err) = repo.server_run(&["--no-pr", "--thought", &dir]);
    assert_eq!(code, 0, "{err}");
    let b = repo.remote_backlog();
    let e = b["thoughts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["dir"] == dir.as_str())
        .unwrap();
    let last = e["last_error"].as_str().unwrap_or_default();
    assert!(
        last.starts_with("rejected: ") && last.contains("implementation summary"),
        "{e}"
    );
}

#[test]
fn the_verify_command_decides() {
    let env = TestEnv::new();
    let repo = setup(
        &env,
        GOOD,
        "  verify_command: grep -q 'pub fn feature' src/lib.rs && echo verify-ran\n",
    );
    let (code, _, err) = repo.server_run(&["--no-pr"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(entry(&repo)["status"], "completed");
    assert!(std::fs::read_to_string(&logs(&repo)[0])
        .unwrap()
        .contains("verify-ran"));

    let env = TestEnv::new();
    let repo = setup(&env, GOOD, "  verify_command: echo tests failed; exit 4\n");
    let (code, _, err) = repo.server_run(&["--no-pr"]);
    assert_eq!(code, 0, "{err}");
    let last = entry(&repo)["last_error"].as_str().unwrap().to_owned();
    assert!(
        last.contains("the verify command `echo tests failed; exit 4` exited with status 4"),
        "{last}"
    );
}

#[test]
fn floods_are_streamed_and_secrets_redacted() {
    let env = TestEnv::new();
    let agent = format!(
        "head -c 30000000 /dev/zero | tr '\\0' 'x'\necho\nprintf 'key=%s' \"${{SERVICE_API_KEY:0:9}}\"\nsleep 0.2\nprintf '%s\\n' \"${{SERVICE_API_KEY:9}}\"\necho 'token tok_abcdefghij here'\necho \"the forge token: ${{GITHUB_TOKEN:-absent}}\"\n{GOOD}"
    );
    let repo = setup(&env, &agent, "");
    repo.write(
        "tgs/tgs.yml",
        &format!(
            "ai:\n  redact_patterns: ['tok_[a-z]{{10}}']\nserver:\n  agent: test\n  agents:\n    test: {{ command: \"{}\", env: [SERVICE_API_KEY] }}\n",
            env.path().join("agent.sh").display()
        ),
    );
    repo.publish("config");
    let (code, _, err) = run(repo
        .tgs()
        .env_remove("TGS_NOW")
        .env("SERVICE_API_KEY", "sk-live-0123456789abcdef")
        .env("GITHUB_TOKEN", "ghs_forge_token_value")
        .args(["server", "run", "--no-pr"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(entry(&repo)["status"], "completed");
    let log = std::fs::read(&logs(&repo)[0]).unwrap();
    assert!(
        log.len() > 30_000_000,
        "the whole output is kept: {}",
        log.len()
    );
    let text = String::from_utf8_lossy(&log[log.len() - 4000..]).into_owned();
    assert!(text.contains("key=[REDACTED]"), "{text}");
    assert!(
        !text.contains("0123456789abcdef") && !text.contains("sk-live"),
        "{text}"
    );
    assert!(text.contains("token [REDACTED] here"), "{text}");
    assert!(text.contains("the forge token: absent"), "{text}");
}

#[test]
fn a_legacy_adapter_script_works_unchanged() {
    let env = TestEnv::new();
    let repo = setup(&env, "", "");
    let adapter = r#"#!/usr/bin/env bash
# An adapter as in tgs/adapters: flags, CONTEXT_FILES, a prompt file.
set -euo pipefail
while [ $# -gt 0 ]; do case "$1" in --prompt-file) PROMPT_FILE="$2"; shift 2;; *) shift;; esac; done
test -s "$PROMPT_FILE"
echo "$CONTEXT_FILES" | grep -q research.md
echo "pub fn adapted() {}" >> src/lib.rs
printf '# Impl\nVia the adapter.\n' > "$TGS_THOUGHT_DIR/implementation.md"
echo "adapter: RETURN_MODE=$RETURN_MODE"
"#;
    script(&repo.path("tgs/adapters/my-agent.sh"), adapter);
    repo.write(
        "tgs/tgs.yml",
        "server:\n  agent: legacy\n  agents:\n    legacy: { adapter: tgs/adapters/my-agent.sh }\n",
    );
    repo.publish("adapter");
    let (code, _, err) = repo.server_run(&["--no-pr"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        entry(&repo)["status"],
        "completed",
        "{}",
        std::fs::read_to_string(&logs(&repo)[0]).unwrap()
    );
    assert!(std::fs::read_to_string(&logs(&repo)[0])
        .unwrap()
        .contains("adapter: RETURN_MODE=text"));
}

#[test]
fn dry_run_changes_nothing() {
    let env = TestEnv::new();
    let repo = setup(&env, GOOD, "");
    let before = repo.git(&["ls-remote", "origin"]);
    let (code, out, err) = repo.server_run(&["--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("would claim: {T}")), "{out}");
    assert!(
        out.contains("command:") && out.contains("agent.sh"),
        "{out}"
    );
    let (code, out, _) = repo.server_run(&["--dry-run", "--json"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["dir"], T);
    assert_eq!(repo.git(&["ls-remote", "origin"]), before);
    assert_eq!(entry(&repo)["status"], "queued");
}

#[test]
fn an_expired_claim_is_recovered_and_taken() {
    let env = TestEnv::new();
    let repo = setup(&env, GOOD, "");
    // A worker claimed it and died; its lease ran out.
    let (code, _, err) = run(repo.tgs().env("TGS_NOW", "2026-01-01T00:00:00Z").args([
        "server",
        "backlog",
        "next",
        "--claimed-by",
        "dead-worker",
        "--lease",
        "1h",
    ]));
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = run(repo
        .tgs()
        .env("TGS_NOW", "2026-01-01T02:00:00Z")
        .args(["server", "recover", "--json"]));
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        serde_json::json!([T])
    );
    let e = entry(&repo);
    assert_eq!(e["status"], "queued");
    assert!(e["last_error"].as_str().unwrap().contains("dead-worker"));
    // And `run` recovers by itself on its way.
    run(repo.tgs().env("TGS_NOW", "2026-01-01T03:00:00Z").args([
        "server",
        "backlog",
        "next",
        "--claimed-by",
        "dead-again",
        "--lease",
        "1h",
    ]));
    let (code, _, err) = repo.server_run(&["--no-pr", "--worker-id", "alive"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("requeued 1 expired claim"), "{err}");
    let e = entry(&repo);
    assert_eq!(e["status"], "completed");
    assert_eq!(e["claimed_by"], "alive");
}

#[test]
fn signals_give_the_claim_back() {
    for (sig, code) in [("INT", 130), ("TERM", 143)] {
        let env = TestEnv::new();
        let pids = env.path().join("pid");
        let repo = setup(
            &env,
            &format!("echo $$ > {}\nsleep 300\n", pids.display()),
            "",
        );
        let mut c = Command::new(common::tgs_bin());
        c.current_dir(&repo.root)
            .args(["server", "run", "--no-pr"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        env.pin(&mut c);
        c.env_remove("TGS_NOW");
        let child = c.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !pids.exists() {
            assert!(Instant::now() < deadline, "the agent never started");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(100));
        Command::new("kill")
            .args([&format!("-{sig}"), &child.id().to_string()])
            .status()
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let e = entry(&repo);
        assert_eq!(e["status"], "queued", "{e}");
        assert_eq!(
            e.get("attempts"),
            None,
            "the interrupted attempt does not count: {e}"
        );
        assert!(
            !alive(&std::fs::read_to_string(&pids).unwrap()),
            "the agent survived"
        );
    }
}

#[test]
fn racing_workers_complete_each_thought_once() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let n = 10;
    for i in 0..n {
        repo.approved(
            &format!("{:07x}-thought-{i}", 0xb000000 + i),
            &format!("Thought {i}"),
        );
    }
    let agent_path = env.path().join("agent.sh");
    script(&agent_path, &format!("#!/bin/bash\n{GOOD}"));
    repo.write(
        "tgs/tgs.yml",
        &format!(
            "server:\n  agent: test\n  agents:\n    test: {{ command: \"{}\" }}\n",
            agent_path.display()
        ),
    );
    repo.publish("thoughts");
    assert_eq!(run(repo.tgs().args(["server", "scan"])).0, 0);
    let workers: Vec<TestRepo> = (0..4).map(|i| repo.clone_as(&format!("w{i}"))).collect();
    let children: Vec<_> = workers
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let mut c = Command::new(common::tgs_bin());
            c.current_dir(&w.root)
                .args([
                    "server",
                    "run",
                    "--until-empty",
                    "--no-pr",
                    "--worker-id",
                    &format!("w{i}"),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            env.pin(&mut c);
            c.spawn().unwrap()
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "worker {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let b = repo.remote_backlog();
    let entries = b["thoughts"].as_array().unwrap();
    assert_eq!(entries.len(), n);
    for e in entries {
        assert_eq!(e["status"], "completed", "{e}");
        assert_eq!(e["attempts"], 1, "claimed exactly once: {e}");
    }
    let branches = repo.git(&["ls-remote", "--heads", "origin", "tgs/*"]);
    assert_eq!(branches.lines().count(), n);
    // Records re-applied like every state change: no row lost, none doubled.
    assert_eq!(outcomes(&repo), vec!["success"; n]);
    let audit = repo.audit();
    let claims = audit.iter().filter(|r| r["action"] == "claim").count();
    let completes = audit.iter().filter(|r| r["action"] == "complete").count();
    assert_eq!((claims, completes), (n, n));
}

#[test]
fn the_demo_runs_the_whole_loop() {
    let env = TestEnv::new();
    let dir = env.path().join("demo");
    let (code, _, err) = run(env.tgs_cmd(env.path()).env_remove("TGS_NOW").args([
        "demo",
        "--dir",
        dir.to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{err}");
    let project = dir.join("project");
    let (code, out, _) = run(env
        .tgs_cmd(&project)
        .args(["server", "backlog", "list", "--json"]));
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    let statuses: Vec<(&str, i64)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["status"].as_str().unwrap(),
                e["attempts"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [("completed", 1), ("completed", 1), ("completed", 2)]
    );
    assert!(err.contains("Done. Look around"), "{err}");
    assert!(Path::new(&project.join("tgs/server/logs")).is_dir());
}
