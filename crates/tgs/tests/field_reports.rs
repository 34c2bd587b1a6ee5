//! Failures that people running coding agents headless have reported,
//! replayed against `tgs server run` with scripted stand-ins for the agent
//! CLIs (a `server.agents.X: { driver: ..., bin: ./fake }` entry) and a
//! loopback GitHub: sessions that outlive their result, hand-overs that
//! fail after the push, agents that cannot commit, provider conditions that
//! are not the thought's fault, and what the run command says and prints.

mod common;
#[path = "support/github.rs"]
mod github;
#[path = "support/loopback.rs"]
mod loopback;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{run, TestEnv, TestRepo};
use github::{FakeGitHub, Fault};
use serde_json::{json, Value};

const TOKEN: &str = "ghs_field_token_0123456789";
/// Five minutes after the pinned clock: a pending hand-over is due then.
const LATER: &str = "2026-01-15T12:05:00Z";
const A: &str = "tgs/thoughts/aaaaaaa-first";
const B: &str = "tgs/thoughts/bbbbbbb-second";

/// What an honest agent does: code, the summary, a commit.
const WORK: &str = "echo \"pub fn f_$(basename \"$TGS_THOUGHT_DIR\" | tr - _)() {}\" >> src/lib.rs\nprintf '# Implementation\\n\\nDone.\\n' > \"$TGS_THOUGHT_DIR/implementation.md\"\ngit add -A && git commit -qm work\n";

/// A repository with two approved thoughts, queued, and `agent` configured
/// (`yaml` is its `server.agents` entry; `extra` more `server:` keys).
fn lab<'e>(env: &'e TestEnv, agent: &str, yaml: &str, extra: &str) -> TestRepo<'e> {
    let repo = env.repo("r");
    repo.approved("aaaaaaa-first", "First");
    repo.approved("bbbbbbb-second", "Second");
    repo.configure_and_scan(
        &format!(
            "server:\n  agent: {agent}\n  retry_delay: 1s\n  kill_grace: 1s\n{extra}  agents:\n    {agent}: {yaml}\n"
        ),
        "two thoughts",
    );
    repo
}

/// Count the sessions a stand-in was started for.
fn counter(env: &TestEnv) -> String {
    format!("echo x >> {}\n", env.path().join("sessions").display())
}

fn sessions(env: &TestEnv) -> usize {
    std::fs::read_to_string(env.path().join("sessions"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

fn entry(repo: &TestRepo, dir: &str) -> Value {
    repo.remote_backlog()["thoughts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["dir"] == dir)
        .cloned()
        .unwrap()
}

fn claude_event(kind: &str) -> String {
    match kind {
        "init" => r#"{"type":"system","subtype":"init","session_id":"s1","model":"fake"}"#.into(),
        "text" => r#"{"type":"assistant","message":{"id":"m1","content":[{"type":"text","text":"working on it"}]}}"#.into(),
        "success" => r#"{"type":"result","subtype":"success","is_error":false,"num_turns":3,"total_cost_usd":0.25,"usage":{"input_tokens":100,"output_tokens":50},"session_id":"s1","result":"Implemented."}"#.into(),
        other => other.to_owned(),
    }
}

/// A `claude` stand-in: does `work`, prints the init, a turn and `result`, then `after`.
fn fake_claude(env: &TestEnv, work: &str, result: &str, after: &str) -> String {
    env.script(
        "claude",
        &format!(
            "cat > /dev/null\n{}{work}\necho '{}'\necho '{}'\necho '{}'\n{after}",
            counter(env),
            claude_event("init"),
            claude_event("text"),
            claude_event(result),
        ),
    )
}

// ---- 1. Alive after its result -----------------------------------------

#[test]
fn an_agent_alive_after_its_result_is_stopped_and_judged_on_it() {
    let env = TestEnv::new();
    // Claude's result, then a foreground process that holds on (an MCP or dev server).
    let bin = fake_claude(&env, WORK, "success", "sleep 600\n");
    let repo = lab(
        &env,
        "claude-code",
        &format!("{{ driver: claude-code, bin: {bin} }}"),
        "  result_grace: 1s\n  session_timeout: 2m\n",
    );
    let t = Instant::now();
    let (code, _, err) = repo.server_run(&["--no-pr", "--thought", A]);
    assert_eq!(code, 0, "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "waited {:?}",
        t.elapsed()
    );
    let e = entry(&repo, A);
    assert_eq!(e["status"], "completed", "{e}\n{err}");
    assert!(err.contains("stopped after it reported its end"), "{err}");
    // The cost it reported is recorded.
    let metrics = repo.metrics_csv();
    assert!(
        metrics.lines().nth(1).unwrap().contains(",success,"),
        "{metrics}"
    );
    assert!(metrics.contains(",0.2500,"), "{metrics}");

    // The same for Codex: its end is the turn's end.
    let env = TestEnv::new();
    let bin = env.script("codex",
        &format!(
            "{WORK}echo '{{\"type\":\"thread.started\",\"thread_id\":\"t1\"}}'\necho '{{\"type\":\"turn.started\"}}'\necho '{{\"type\":\"turn.completed\",\"usage\":{{\"input_tokens\":10,\"output_tokens\":5}}}}'\nsleep 600\n"
        ),
    );
    let repo = lab(
        &env,
        "codex",
        &format!("{{ driver: codex, bin: {bin} }}"),
        "  result_grace: 1s\n  session_timeout: 2m\n",
    );
    let t = Instant::now();
    let (code, _, err) = repo.server_run(&["--no-pr", "--thought", A]);
    assert_eq!(code, 0, "{err}");
    assert!(t.elapsed() < Duration::from_secs(60));
    assert_eq!(entry(&repo, A)["status"], "completed", "{err}");
}

// ---- 2. Hand-over failures keep the work ---------------------------------

fn gh_step(repo: &TestRepo, gh: &FakeGitHub, args: &[&str]) -> assert_cmd::Command {
    let mut c = repo.tgs();
    c.env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_REPOSITORY", "octo/demo")
        .env("GITHUB_API_URL", gh.api_url())
        .args(args);
    c
}

fn command_lab<'e>(env: &'e TestEnv) -> TestRepo<'e> {
    let agent = env.script("agent.sh", &format!("{}set -e\n{WORK}", counter(env)));
    lab(env, "test", &format!("{{ command: \"{agent}\" }}"), "")
}

#[test]
fn a_failed_pull_request_keeps_the_work_and_retries_only_the_handover() {
    let env = TestEnv::new();
    let repo = command_lab(&env);
    let gh = FakeGitHub::start("octo", "demo", TOKEN);
    // GitHub's secondary rate limit, five times in a row: more than the
    // client's retries.
    gh.fault(
        Fault::new(
            "POST /repos/octo/demo/pulls",
            403,
            json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}),
        )
        .header("x-ratelimit-remaining", "4290")
        .header("retry-after", "3")
        .times(5),
    );
    let (code, _, err) = run(&mut gh_step(&repo, &gh, &["server", "run", "--thought", A]));
    assert_eq!(code, 0, "{err}");
    let e = entry(&repo, A);
    assert_eq!(e["status"], "handover_pending", "{e}\n{err}");
    assert_eq!(e["attempts"], 1);
    let head = e["head"].as_str().unwrap().to_owned();
    let pushed = repo.git(&["ls-remote", "origin", "refs/heads/tgs/aaaaaaa-first"]);
    assert!(
        pushed.starts_with(&head),
        "the work is on the remote: {pushed}"
    );
    assert!(
        e["last_error"].as_str().unwrap().contains("rate limit"),
        "{e}"
    );
    assert_eq!(sessions(&env), 1);
    assert!(gh.pulls().is_empty());
    // The next run, once the hand-over is due, hands it over without an
    // agent session, then goes on.
    let (code, _, err) =
        run(gh_step(&repo, &gh, &["server", "run", "--thought", B]).env("TGS_NOW", LATER));
    assert_eq!(code, 0, "{err}");
    let e = entry(&repo, A);
    assert_eq!(e["status"], "completed", "{e}\n{err}");
    assert_eq!(e["attempts"], 1, "a hand-over retry is no attempt");
    assert_eq!(
        sessions(&env),
        2,
        "one session for each thought, none again for A"
    );
    let pulls = gh.pulls();
    assert_eq!(pulls.len(), 2, "{pulls:?}");
    assert!(e["pr_url"].as_str().unwrap().contains("/pull/"));
    let actions: Vec<String> = repo
        .audit()
        .iter()
        .filter(|r| r["thought"] == A)
        .map(|r| r["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions, ["add", "claim", "handover_pending", "complete"]);
}

#[test]
fn sync_prs_retries_a_pending_handover_and_a_5xx_is_no_attempt() {
    let env = TestEnv::new();
    let repo = command_lab(&env);
    let gh = FakeGitHub::start("octo", "demo", TOKEN);
    gh.fault(
        Fault::new(
            "POST /repos/octo/demo/pulls",
            502,
            json!({"message": "Bad Gateway"}),
        )
        .times(5),
    );
    let (code, _, err) = run(&mut gh_step(&repo, &gh, &["server", "run", "--thought", A]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(entry(&repo, A)["status"], "handover_pending", "{err}");
    let (code, out, err) = run(gh_step(&repo, &gh, &["server", "sync-prs"]).env("TGS_NOW", LATER));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("handed over tgs/thoughts/aaaaaaa-first"),
        "{out}{err}"
    );
    assert_eq!(entry(&repo, A)["status"], "completed");
    assert_eq!(sessions(&env), 1);
}

#[test]
fn no_commits_between_is_a_rejection_not_a_crash() {
    let env = TestEnv::new();
    let repo = command_lab(&env);
    let gh = FakeGitHub::start("octo", "demo", TOKEN);
    gh.no_commits_for("tgs/aaaaaaa-first");
    let (code, _, err) = run(&mut gh_step(&repo, &gh, &["server", "run", "--thought", A]));
    assert_eq!(code, 0, "{err}");
    let e = entry(&repo, A);
    let last = e["last_error"].as_str().unwrap_or_default();
    assert!(
        last.starts_with("rejected: ") && last.contains("no commits over"),
        "{e}"
    );
    assert_eq!(e["status"], "queued");
}

// ---- 3. The agent commits with tgs's identity ----------------------------

#[test]
fn the_agent_commits_with_the_identity_tgs_commits_with() {
    let env = TestEnv::new();
    let repo = command_lab(&env);
    // tgs's identity comes from GIT_CONFIG_GLOBAL, a file outside HOME; the
    // agent's HOME knows none (and forbids guessing one).
    let identity = env.path().join("identity.gitconfig");
    std::fs::write(
        &identity,
        "[user]\n\tname = Ida Entity\n\temail = ida@example.com\n",
    )
    .unwrap();
    let home = env.path().join("bare-home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join(".gitconfig"), "[user]\n\tuseConfigOnly = true\n").unwrap();
    let (code, _, err) = run(repo
        .tgs()
        .env_remove("TGS_NOW")
        .env("HOME", &home)
        .env("GIT_CONFIG_GLOBAL", &identity)
        .args(["server", "run", "--no-pr", "--thought", A]));
    assert_eq!(code, 0, "{err}");
    let e = entry(&repo, A);
    assert_eq!(e["status"], "completed", "{e}\n{err}");
    let author = repo.git(&[
        "log",
        "-1",
        "--format=%an <%ae>",
        "origin/tgs/aaaaaaa-first",
    ]);
    assert_eq!(author, "Ida Entity <ida@example.com>");
}

// ---- 4. Provider conditions are not the thought's fault ------------------

#[test]
fn credit_and_credentials_pause_the_agent_until_a_human_resumes_it() {
    let env = TestEnv::new();
    let credit = r#"{"type":"result","subtype":"success","is_error":true,"num_turns":0,"result":"Credit balance is too low","session_id":"s1"}"#;
    let bin = fake_claude(&env, "", credit, "exit 1\n");
    let repo = lab(
        &env,
        "claude-code",
        &format!("{{ driver: claude-code, bin: {bin} }}"),
        "",
    );
    let gh = FakeGitHub::start("octo", "demo", TOKEN);
    let (code, _, err) =
        run(gh_step(&repo, &gh, &["server", "run", "--until-empty"]).env_remove("TGS_NOW"));
    assert_eq!(code, 0, "{err}");
    let e = entry(&repo, A);
    assert_eq!(e["status"], "queued", "{e}");
    assert_eq!(e.get("attempts"), None, "not counted: {e}");
    assert!(
        e["last_error"]
            .as_str()
            .unwrap()
            .starts_with("unavailable: "),
        "{e}"
    );
    assert_eq!(
        sessions(&env),
        1,
        "the worker stopped claiming for that agent"
    );
    let pause = &repo.remote_backlog()["pauses"]["claude-code"];
    assert_eq!(pause["kind"], "unavailable");
    assert!(pause.get("until").is_none(), "until a human acts: {pause}");
    assert!(repo.audit().iter().any(|r| r["action"] == "pause"));
    let issues = gh.issues();
    assert_eq!(issues.len(), 1, "one alert: {issues:?}");
    assert!(issues[0].title.contains("claude-code"), "{issues:?}");
    // Later runs start nothing and say why; no second alert.
    let (code, _, err) = run(gh_step(&repo, &gh, &["server", "run"]).env_remove("TGS_NOW"));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("paused until a human resumes it"), "{err}");
    assert_eq!(sessions(&env), 1);
    let status = run(repo.tgs().args(["server", "status"])).1;
    assert!(
        status.contains("paused agents (1)") && status.contains("claude-code"),
        "{status}"
    );
    // A human resumes it: the pause and the issue are gone.
    let (code, _, err) = run(&mut gh_step(
        &repo,
        &gh,
        &["server", "resume", "claude-code"],
    ));
    assert_eq!(code, 0, "{err}");
    assert!(repo.remote_backlog().get("pauses").is_none());
    assert_eq!(gh.issues()[0].state, "closed");
}

/// A repository whose agent is a Claude Code stand-in ending with the
/// stream-json `result` line given, exit 1.
fn claude_lab<'e>(env: &'e TestEnv, result: &str) -> TestRepo<'e> {
    let bin = fake_claude(env, "", result, "exit 1\n");
    lab(
        env,
        "claude-code",
        &format!("{{ driver: claude-code, bin: {bin} }}"),
        "",
    )
}

/// A local session's provider asking for a long wait is waited out as
/// asked: only another job's word (an artifact's) is bounded to an hour.
/// Before, every session's was, since `server run` hands its sessions over
/// through an artifact too.
#[test]
fn a_local_pause_lasts_as_long_as_the_provider_asks() {
    let env = TestEnv::new();
    let limited = r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":429,"num_turns":0,"result":"API Error: 429 rate_limit_error; retry after 7200 seconds","session_id":"s1"}"#;
    let repo = claude_lab(&env, limited);
    let (code, _, err) = repo.server_run(&["--no-pr", "--once"]);
    assert_eq!(code, 0, "{err}");
    let pause = &repo.remote_backlog()["pauses"]["claude-code"];
    let at = |k: &str| {
        pause[k]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap()
    };
    let waits = at("until").duration_since(at("since")).as_secs();
    assert!((7100..=7300).contains(&waits), "{waits} s: {pause}");
}

#[test]
fn rate_limits_and_capacity_are_waited_out_not_counted() {
    // Claude: API error 429.
    let env = TestEnv::new();
    let limited = r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":429,"num_turns":0,"result":"API Error: 429 rate_limit_error","session_id":"s1"}"#;
    let repo = claude_lab(&env, limited);
    let (code, _, err) = repo.server_run(&["--no-pr", "--until-empty"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(sessions(&env), 1, "no second claim while paused: {err}");
    let e = entry(&repo, A);
    assert_eq!(e.get("attempts"), None, "{e}");
    assert!(
        e["last_error"]
            .as_str()
            .unwrap()
            .starts_with("rate_limited: "),
        "{e}"
    );
    let pause = &repo.remote_backlog()["pauses"]["claude-code"];
    assert_eq!(pause["kind"], "rate_limited", "{pause}");
    assert!(pause["until"].is_string(), "{pause}");

    // Codex: the model at capacity.
    let env = TestEnv::new();
    let bin = env.script("codex",
        &format!(
            "{}echo '{{\"type\":\"thread.started\",\"thread_id\":\"t1\"}}'\necho '{{\"type\":\"turn.failed\",\"error\":{{\"message\":\"stream error: model at capacity, please retry later\"}}}}'\nexit 1\n",
            counter(&env)
        ),
    );
    let repo = lab(
        &env,
        "codex",
        &format!("{{ driver: codex, bin: {bin} }}"),
        "",
    );
    let (code, _, err) = repo.server_run(&["--no-pr", "--thought", A]);
    assert_eq!(code, 0, "{err}");
    let e = entry(&repo, A);
    assert_eq!(e.get("attempts"), None, "{e}");
    assert!(
        e["last_error"]
            .as_str()
            .unwrap()
            .starts_with("rate_limited: "),
        "{e}"
    );

    // Gemini: exit 0, a 429 on stderr, nothing done.
    let env = TestEnv::new();
    let bin = env.script("gemini",
        &format!(
            "{}echo 'Loaded cached credentials.'\necho '[API Error: {{\"error\":{{\"code\":429,\"message\":\"Resource has been exhausted (e.g. check quota).\",\"status\":\"RESOURCE_EXHAUSTED\"}}}}]' >&2\nexit 0\n",
            counter(&env)
        ),
    );
    let repo = lab(
        &env,
        "gemini",
        &format!("{{ driver: gemini, bin: {bin} }}"),
        "",
    );
    let (code, _, err) = repo.server_run(&["--no-pr", "--thought", A]);
    assert_eq!(code, 0, "{err}");
    let e = entry(&repo, A);
    assert_eq!(e.get("attempts"), None, "{e}");
    assert!(
        e["last_error"]
            .as_str()
            .unwrap()
            .starts_with("rate_limited: "),
        "{e}"
    );

    // A transient Codex error it recovers from is a success.
    let env = TestEnv::new();
    let bin = env.script("codex",
        &format!(
            "{WORK}echo '{{\"type\":\"thread.started\",\"thread_id\":\"t1\"}}'\necho '{{\"type\":\"error\",\"message\":\"Reconnecting... 1/5\"}}'\necho '{{\"type\":\"turn.completed\",\"usage\":{{\"input_tokens\":1,\"output_tokens\":1}}}}'\n"
        ),
    );
    let repo = lab(
        &env,
        "codex",
        &format!("{{ driver: codex, bin: {bin} }}"),
        "",
    );
    let (code, _, err) = repo.server_run(&["--no-pr", "--thought", A]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(entry(&repo, A)["status"], "completed", "{err}");
}

// ---- 6. The branch checked out elsewhere ---------------------------------

#[test]
fn a_branch_checked_out_in_the_users_worktree_is_said_plainly_and_not_counted() {
    let env = TestEnv::new();
    let repo = command_lab(&env);
    let mine = env.path().join("my-worktree");
    repo.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        "tgs/aaaaaaa-first",
        mine.to_str().unwrap(),
    ]);
    let (code, _, err) = repo.server_run(&["--no-pr", "--thought", A]);
    assert_eq!(code, 0, "{err}");
    let e = entry(&repo, A);
    let last = e["last_error"].as_str().unwrap_or_default();
    assert!(
        last.starts_with("blocked: the branch tgs/aaaaaaa-first is checked out in the worktree at")
            && last.contains("git worktree remove"),
        "{last}"
    );
    assert_eq!(
        e.get("attempts"),
        None,
        "an environment problem is no attempt: {e}"
    );
    assert_eq!(sessions(&env), 0);
    assert!(
        mine.join("src/lib.rs").exists(),
        "the user's worktree is left alone"
    );
}

// ---- 7. run --thought of a thought that cannot run -----------------------

#[test]
fn run_thought_says_why_it_cannot_run_and_fails() {
    let env = TestEnv::new();
    let repo = command_lab(&env);
    ok(
        &repo,
        &[
            "server",
            "backlog",
            "next",
            "--thought",
            A,
            "--claimed-by",
            "w9",
        ],
    );
    // (At the pinned clock: the claim's lease holds.)
    let (code, _, err) = run(repo
        .tgs()
        .args(["server", "run", "--no-pr", "--thought", A]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("is in progress by w9") && err.contains("lease until"),
        "{err}"
    );
    assert_eq!(
        err.matches("is in progress by w9").count(),
        1,
        "said once: {err}"
    );
    assert!(err.starts_with("error: "), "{err}");
    ok(&repo, &["server", "backlog", "fail", A]);
    let (code, _, err) = repo.server_run(&["--no-pr", "--thought", A]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("failed for good") && err.contains("backlog retry"),
        "{err}"
    );
    ok(&repo, &["server", "backlog", "retry", A]);
    let (code, _, err) = repo.server_run(&["--no-pr", "--thought", A]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = repo.server_run(&["--no-pr", "--thought", A]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("{A} is completed")), "{err}");
    // Waiting out a retry delay: the agent fails B once.
    // (At the pinned clock, which the delay never passes.)
    std::fs::write(env.path().join("agent.sh"), "#!/bin/bash\nexit 3\n").unwrap();
    let (code, _, err) = run(repo
        .tgs()
        .args(["server", "run", "--no-pr", "--thought", B]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(repo.tgs().args(["server", "run", "--thought", B]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("waits for its retry delay until"), "{err}");
}

fn ok(repo: &TestRepo, args: &[&str]) -> String {
    let (code, out, err) = run(repo.tgs().args(args));
    assert_eq!(code, 0, "tgs {args:?}: {err}");
    out
}

// ---- 8. --watch has a floor ----------------------------------------------

#[test]
fn watch_intervals_have_a_floor() {
    let env = TestEnv::new();
    let repo = command_lab(&env);
    let (code, _, err) = repo.server_run(&["--watch", "--interval", "0s"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("too short") && err.contains("10s"), "{err}");
}

// ---- 9. --json ------------------------------------------------------------

#[test]
fn run_json_prints_one_object_per_session_then_a_summary() {
    let env = TestEnv::new();
    let repo = command_lab(&env);
    let (code, out, err) = run(repo
        .tgs()
        .env_remove("TGS_NOW")
        .env("GITHUB_ACTIONS", "true")
        .args(["--json", "server", "run", "--no-pr", "--until-empty"]));
    assert_eq!(code, 0, "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(lines.len(), 3, "{out}");
    for (l, dir) in lines.iter().zip([A, B]) {
        assert_eq!(l["thought"], dir);
        assert_eq!(l["outcome"], "success");
        assert_eq!(l["attempt"], 1);
        assert_eq!(l["disposition"], "completed");
        assert_eq!(
            l["branch"],
            format!("tgs/{}", dir.rsplit('/').next().unwrap())
        );
        assert!(l["duration_s"].is_number());
        for k in [
            "reason",
            "pr_url",
            "cost_usd",
            "input_tokens",
            "output_tokens",
        ] {
            assert!(l.get(k).is_some(), "{k} in {l}");
        }
    }
    assert_eq!(
        lines[2],
        json!({"summary": {"sessions": 2, "succeeded": 2, "failed_for_good": 0, "internal_errors": 0}})
    );
    // In Actions the workflow commands go to stderr.
    assert!(err.contains("::group::"), "{err}");
}

// ---- 11. Small things ------------------------------------------------------

#[test]
fn ctrl_c_while_idle_gives_back_no_claim() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let agent = env.script("agent.sh", "exit 0\n");
    repo.write(
        "tgs/tgs.yml",
        &format!("server:\n  agent: t\n  agents:\n    t: {{ command: \"{agent}\" }}\n"),
    );
    repo.publish("an agent, no work");
    let mut cmd = Command::new(common::tgs_bin());
    env.pin(&mut cmd);
    let child = cmd
        .current_dir(&repo.root)
        .env_remove("TGS_NOW")
        .args(["server", "run", "--no-pr", "--watch", "--interval", "10s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted by signal 2"), "{err}");
    assert!(!err.contains("given back"), "no claim was held: {err}");
}

#[test]
fn claimed_by_is_shown_only_while_held() {
    let env = TestEnv::new();
    let repo = command_lab(&env);
    ok(
        &repo,
        &[
            "server",
            "backlog",
            "next",
            "--thought",
            A,
            "--claimed-by",
            "w1",
        ],
    );
    ok(&repo, &["server", "backlog", "fail", A]);
    ok(&repo, &["server", "backlog", "retry", A]);
    ok(
        &repo,
        &[
            "server",
            "backlog",
            "next",
            "--thought",
            B,
            "--claimed-by",
            "w2",
        ],
    );
    let table = ok(&repo, &["server", "backlog", "list"]);
    let row = |dir: &str| {
        table
            .lines()
            .find(|l| l.starts_with(dir))
            .unwrap()
            .to_owned()
    };
    assert!(!row(A).contains("w1"), "{table}");
    assert!(row(B).contains("w2"), "{table}");
}

// ---- An agent CLI that rejects its command line -------------------------

/// A CLI that refuses its command line (an unknown flag in `args`) or its
/// environment (Claude refuses `--dangerously-skip-permissions` as root
/// when `IS_SANDBOX` is not `1`) starts no session: the outcome says its
/// own words, no attempt is counted, the agent is paused until a human
/// resumes it, and humans are told once. Claude and Codex alike.
#[test]
fn an_agent_cli_that_rejects_its_command_line_is_a_configuration_error_told_once() {
    for (driver, words) in [
        ("claude-code", "error: unknown option '--bogus-flag'"),
        (
            "claude-code",
            "--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons",
        ),
        ("codex", "error: unexpected argument '--bogus-flag' found"),
    ] {
        let env = TestEnv::new();
        let bin = env.script(driver,
            &format!("cat > /dev/null\n{}echo \"{words}\" >&2\nexit 1\n", counter(&env)),
        );
        let repo = lab(
            &env,
            driver,
            &format!("{{ driver: {driver}, bin: {bin}, args: ['--bogus-flag'] }}"),
            "",
        );
        let gh = FakeGitHub::start("octo", "demo", TOKEN);
        let (code, _, err) =
            run(gh_step(&repo, &gh, &["server", "run", "--until-empty"]).env_remove("TGS_NOW"));
        assert_eq!(code, 0, "{driver}: {err}");
        let e = entry(&repo, A);
        assert_eq!(e["status"], "queued", "{driver}: {e}");
        assert_eq!(e.get("attempts"), None, "{driver}: not counted: {e}");
        let said = e["last_error"].as_str().unwrap_or_default();
        assert!(
            said.starts_with("misconfigured: the agent's CLI did not start a session")
                && said.contains(words),
            "{driver}: the CLI's own words: {said}"
        );
        assert!(!said.contains("no result event"), "{driver}: {said}");
        assert_eq!(sessions(&env), 1, "{driver}: one session, then the agent waits");
        let pause = &repo.remote_backlog()["pauses"][driver];
        assert_eq!(pause["kind"], "misconfigured", "{driver}: {pause}");
        assert!(pause.get("until").is_none(), "{driver}: until a human acts: {pause}");
        let issues = gh.issues();
        assert_eq!(issues.len(), 1, "{driver}: told once: {issues:?}");
        assert!(issues[0].body.contains(words), "{driver}: {}", issues[0].body);
        let (code, _, err) = run(gh_step(&repo, &gh, &["server", "run"]).env_remove("TGS_NOW"));
        assert_eq!(code, 0, "{err}");
        assert_eq!((sessions(&env), gh.issues().len()), (1, 1), "{driver}");
    }
}

// ---- server logs reads a Claude session as its conversation ---------------

/// The lab with a Claude stand-in that implements the first thought, run
/// once for it (no PR).
fn one_claude_session(env: &TestEnv) -> TestRepo<'_> {
    let bin = fake_claude(env, WORK, "success", "");
    let repo = lab(
        env,
        "claude-code",
        &format!("{{ driver: claude-code, bin: {bin} }}"),
        "",
    );
    let (code, _, err) = repo.server_run(&["--no-pr", "--thought", A]);
    assert_eq!(code, 0, "{err}");
    repo
}

#[test]
fn server_logs_shows_a_claude_session_as_a_conversation_and_raw_on_request() {
    let env = TestEnv::new();
    let repo = one_claude_session(&env);
    let (code, out, err) = run(repo.tgs().args(["server", "logs", A]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("── session s1 · model fake"), "{out}");
    assert!(out.contains("\nassistant: working on it\n"), "{out}");
    assert!(
        out.contains("── result: success · 3 turn(s) · $0.2500 · Implemented."),
        "{out}"
    );
    assert!(!out.contains(r#"{"type""#), "no raw events: {out}");
    assert!(
        out.starts_with("# tgs session: "),
        "tgs's own lines stay: {out}"
    );
    let (code, raw, err) = run(repo.tgs().args(["server", "logs", A, "--raw"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        raw.contains(r#"{"type":"result","subtype":"success""#),
        "{raw}"
    );
    assert!(!raw.contains("assistant: working on it"), "{raw}");
}

// ---- Nothing left behind in the user's clone -----------------------------

/// After a session is handed over, the user's clone keeps no local work
/// branch and no prompt folder of it.
#[test]
fn a_handed_over_session_leaves_no_branch_or_prompt_folder_behind() {
    let env = TestEnv::new();
    let repo = one_claude_session(&env);
    assert_eq!(entry(&repo, A)["status"], "completed");
    let local = repo.git(&["for-each-ref", "--format=%(refname)", "refs/heads/tgs/"]);
    assert_eq!(local, "", "no local work branch is left");
    let sessions = repo.path(".git/tgs/sessions");
    let left: Vec<_> = std::fs::read_dir(&sessions)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "no prompt folder is left: {left:?}");
    assert!(
        !repo
            .git(&["ls-remote", "origin", "refs/heads/tgs/aaaaaaa-first"])
            .is_empty(),
        "the work is on the remote"
    );
}
