//! Long sessions that lose nothing: a silent agent is stopped as stalled
//! (every driver: the Claude stream, Codex's events, a plain command, an
//! adapter) and leaves no process; an attempt that ends without a hand-over
//! keeps its work on `refs/tgs/wip/<thought>`, checked like a hand-over;
//! the next attempt starts from it.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{alive, run, TestEnv, TestRepo};
use serde_json::Value;

const T: &str = "tgs/thoughts/abcdef1-add-a-feature";
const WIP_REF: &str = "refs/tgs/wip/abcdef1-add-a-feature";

/// A repository with one approved, queued thought, the agent `name`
/// configured as `agent_yaml`, and `extra` more `server:` keys.
fn lab<'e>(env: &'e TestEnv, name: &str, agent_yaml: &str, extra: &str) -> TestRepo<'e> {
    let repo = env.repo("r");
    repo.approved("abcdef1-add-a-feature", "Add a feature");
    repo.configure_and_scan(
        &format!(
            "server:\n  agent: {name}\n  retry_delay: 1s\n  retry_delay_max: 1s\n  kill_grace: 1s\n{extra}  agents:\n    {name}: {agent_yaml}\n"
        ),
        "approved thought and config",
    );
    repo
}

/// [`lab`] with the script `bin` as the command agent `plain`.
fn plain<'e>(env: &'e TestEnv, bin: &str, extra: &str) -> TestRepo<'e> {
    lab(env, "plain", &format!("{{ command: \"{bin}\" }}"), extra)
}

/// Git in the bare `origin`; panics on failure, returns trimmed stdout.
fn origin_git(repo: &TestRepo, args: &[&str]) -> String {
    let origin = repo.origin.to_str().unwrap();
    repo.git(&[&["--git-dir", origin][..], args].concat())
}

/// The files of the thought's branch on `origin`, a line each.
fn branch_files(repo: &TestRepo) -> String {
    origin_git(
        repo,
        &[
            "ls-tree",
            "-r",
            "--name-only",
            "refs/heads/tgs/abcdef1-add-a-feature",
        ],
    )
}

fn entry(repo: &TestRepo) -> Value {
    repo.remote_backlog()["thoughts"][0].clone()
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
    let (code, _, err) = repo.server_run(&["--no-pr"]);
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
            let bin = env.script(
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
            let bin = env.script(
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
            let bin = env.script("codex",
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
            let bin = env.script(
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
    let bin = env.script("agent.sh",
        "for i in $(seq 1 10); do sleep 0.5; echo $i > build.log; done\nrm build.log\necho 'pub fn feature() {}' >> src/lib.rs\nprintf '# Implementation\\n\\nDone.\\n' > \"$TGS_THOUGHT_DIR/implementation.md\"\n",
    );
    let repo = plain(&env, &bin, "  stall_timeout: 2s\n");
    let (code, _, err) = repo.server_run(&["--no-pr"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(entry(&repo)["status"], "completed", "{err}");
}

#[test]
fn a_stall_timeout_per_agent_and_a_bad_one_are_read() {
    let env = TestEnv::new();
    let bin = env.script("agent.sh", &hold(&env, "echo hi\nsleep 600\n"));
    // The agent's own setting wins over the server's.
    let repo = lab(
        &env,
        "plain",
        &format!("{{ command: \"{bin}\", stall_timeout: 1s }}"),
        "  stall_timeout: 10m\n  max_attempts: 1\n",
    );
    let (code, _, err) = repo.server_run(&["--no-pr"]);
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
    let (code, _, err) = repo.server_run(&["--no-pr"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("server.stall_timeout"), "{err}");
}

// ---- The work kept, and continuation -------------------------------------------

/// An agent that does a third of the thought per attempt: part N of 3 (a
/// file), then `end` (hang, go silent, crash, fail); the attempt that finds
/// parts 1 and 2 writes the third, the code and the summary, and commits.
/// Each attempt's prompt is kept beside the repository as `prompt.N`.
fn thirds(env: &TestEnv, end: &str) -> String {
    let dir = env.path().display();
    env.script(
        "agent.sh",
        &format!(
            r#"n=$(ls parts 2>/dev/null | wc -l)
cp "$TGS_PROMPT_FILE" {dir}/prompt.$TGS_ATTEMPT
mkdir -p parts
echo "part $((n+1))" > parts/$((n+1)).txt
echo "wrote part $((n+1)) of 3"
if [ $n -ge 2 ]; then
  echo "pub fn feature() {{}}" >> src/lib.rs
  printf '# Implementation\n\nAll three parts.\n' > "$TGS_THOUGHT_DIR/implementation.md"
  git add -A && git commit -qm "The last part"
  exit 0
fi
[ $n -eq 0 ] && git add -A && git commit -qm "Part 1"
{end}"#
        ),
    )
}

/// The thought completes at attempt 3 with all three parts on its branch.
fn finishes_in_three(repo: &TestRepo, env: &TestEnv) {
    let e = entry(repo);
    assert_eq!(e["status"], "completed", "{e}");
    assert_eq!(e["attempts"], 3, "{e}");
    assert!(
        e.get("wip").is_none(),
        "a completed thought keeps no WIP: {e}"
    );
    let files = branch_files(repo);
    for part in ["parts/1.txt", "parts/2.txt", "parts/3.txt"] {
        assert!(
            files.contains(part),
            "{part} missing from the branch: {files}"
        );
    }
    // The WIP ref is gone from the remote once the work is handed over.
    let refs = origin_git(repo, &["for-each-ref"]);
    assert!(!refs.contains(WIP_REF), "{refs}");
    // Attempts 2 and 3 were told where the earlier one got.
    let p2 = std::fs::read_to_string(env.path().join("prompt.2")).unwrap();
    assert!(
        p2.contains("An earlier session (of attempt 1) got part of the way"),
        "{p2}"
    );
    assert!(p2.contains("<<<earlier-output "), "{p2}");
    assert!(p2.contains("wrote part 1 of 3"), "{p2}");
    let p1 = std::fs::read_to_string(env.path().join("prompt.1")).unwrap();
    assert!(!p1.contains("An earlier session"), "{p1}");
}

/// Run `tgs server run` until the thought is done (each run one attempt).
fn run_to_the_end(repo: &TestRepo, args: &[&str]) {
    for _ in 0..3 {
        let (code, _, err) = repo.server_run(args);
        assert!(code == 0 || code == 1, "{err}");
        if entry(repo)["status"] == "completed" {
            return;
        }
        // The retry delay (1s) is real time.
        std::thread::sleep(Duration::from_millis(1100));
    }
}

#[test]
fn a_thought_too_long_for_one_session_finishes_over_three_timeouts() {
    let env = TestEnv::new();
    let bin = thirds(&env, "sleep 600\n");
    let repo = plain(&env, &bin, "  session_timeout: 2s\n  max_attempts: 3\n");
    let (code, _, err) = repo.server_run(&["--no-pr", "--once"]);
    assert_eq!(code, 0, "{err}");
    // After the first attempt: the WIP is recorded and pushed beside the state.
    let e = entry(&repo);
    assert_eq!(e["status"], "queued", "{e}");
    let w = &e["wip"];
    assert_eq!(w["attempt"], 1, "{e}");
    assert!(w["ended"].as_str().unwrap().starts_with("timeout: "), "{e}");
    assert_eq!(w["files"], 1, "{e}");
    let head = origin_git(&repo, &["rev-parse", WIP_REF]);
    assert_eq!(w["head"], head.as_str(), "{e}");
    let audit = repo.audit();
    assert!(
        audit.iter().any(|r| r["action"] == "wip_kept"
            && r["attempt"] == 1
            && r["commit"] == head.as_str()),
        "{audit:?}"
    );
    // Status and show say so.
    let (_, status, _) = run(repo.tgs().args(["server", "status"]));
    assert!(
        status.contains("work in progress") && status.contains("attempt 1 kept 1 file(s)"),
        "{status}"
    );
    let (_, show, _) = run(repo.tgs().args(["server", "backlog", "show", T]));
    assert!(show.contains("work in progress"), "{show}");
    run_to_the_end(&repo, &["--no-pr", "--once"]);
    finishes_in_three(&repo, &env);
}

#[test]
fn the_work_is_kept_through_a_stall_a_crash_a_failure_and_a_rejection() {
    // Silent (stalled), killed by a signal (crashed), failed, and "done"
    // without the implementation summary (rejected by verification).
    for end in ["sleep 600\n", "kill -KILL $$\n", "exit 3\n", "exit 0\n"] {
        let env = TestEnv::new();
        let bin = thirds(&env, end);
        let repo = plain(&env, &bin, "  stall_timeout: 1s\n  max_attempts: 3\n");
        run_to_the_end(&repo, &["--no-pr", "--once"]);
        finishes_in_three(&repo, &env);
    }
}

#[test]
fn the_work_is_kept_when_tgs_is_stopped() {
    let env = TestEnv::new();
    let bin = thirds(
        &env,
        &format!(
            "touch {}\nsleep 600\n",
            env.path().join("waiting").display()
        ),
    );
    let repo = plain(&env, &bin, "  max_attempts: 3\n");
    for _ in 0..2 {
        let _ = std::fs::remove_file(env.path().join("waiting"));
        let mut c = Command::new(common::tgs_bin());
        c.current_dir(&repo.root)
            .args(["server", "run", "--no-pr", "--once"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        env.pin(&mut c);
        c.env_remove("TGS_NOW");
        let child = c.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !env.path().join("waiting").exists() {
            assert!(Instant::now() < deadline, "the agent never got there");
            std::thread::sleep(Duration::from_millis(20));
        }
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(143),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let e = entry(&repo);
        assert_eq!(e["status"], "queued", "{e}");
        assert!(
            e["wip"]["ended"].as_str().unwrap().starts_with("cancelled"),
            "{e}"
        );
    }
    // Interrupted attempts are not counted; the third run finishes.
    let (code, _, err) = repo.server_run(&["--no-pr", "--once"]);
    assert_eq!(code, 0, "{err}");
    let e = entry(&repo);
    assert_eq!(e["status"], "completed", "{e}");
    let files = branch_files(&repo);
    assert!(files.contains("parts/3.txt"), "{files}");
}

#[test]
fn work_holding_a_secret_is_never_kept() {
    let env = TestEnv::new();
    let bin = env.script(
        "agent.sh",
        "echo 'token = \"ghp_0123456789abcdefghijABCDEFGHIJ012345\"' > config.txt\nsleep 600\n",
    );
    let repo = plain(&env, &bin, "  session_timeout: 2s\n  max_attempts: 2\n");
    let (code, _, err) = repo.server_run(&["--no-pr", "--once"]);
    assert_eq!(code, 0, "{err}");
    let e = entry(&repo);
    assert!(e.get("wip").is_none(), "{e}");
    let last = e["last_error"].as_str().unwrap();
    assert!(last.contains("its work in progress was not kept"), "{last}");
    let refs = origin_git(&repo, &["for-each-ref"]);
    assert!(!refs.contains("refs/tgs/wip"), "{refs}");
    assert!(repo.git(&["for-each-ref", "refs/tgs/wip"]).is_empty());
}

#[test]
fn work_that_conflicts_with_a_moved_base_starts_fresh() {
    let env = TestEnv::new();
    let bin = thirds(
        &env,
        "echo 'pub fn mine() {}' > src/lib.rs\ngit commit -qam mine\nsleep 600\n",
    );
    let repo = plain(&env, &bin, "  session_timeout: 2s\n  max_attempts: 3\n");
    let (code, _, err) = repo.server_run(&["--no-pr", "--once"]);
    assert_eq!(code, 0, "{err}");
    assert!(entry(&repo).get("wip").is_some());
    // Someone changes the same line on the base.
    repo.write("src/lib.rs", "pub fn theirs() {}\n");
    repo.publish("their change");
    std::thread::sleep(Duration::from_millis(1100));
    let (code, _, err) = repo.server_run(&["--no-pr", "--once"]);
    assert_eq!(code, 0, "{err}");
    let e = entry(&repo);
    let last = e["last_error"].as_str().unwrap();
    assert!(
        last.contains("conflicts with the base as it is now"),
        "{last}"
    );
    // The second attempt started from the base: it wrote part 1 again.
    let p2 = std::fs::read_to_string(env.path().join("prompt.2")).unwrap();
    assert!(!p2.contains("An earlier session"), "{p2}");
    assert_eq!(e["wip"]["attempt"], 2, "{e}");
}

#[test]
fn work_on_a_moved_base_is_replayed_onto_it() {
    let env = TestEnv::new();
    let bin = thirds(&env, "sleep 600\n");
    let repo = plain(&env, &bin, "  session_timeout: 2s\n  max_attempts: 3\n");
    let (code, _, err) = repo.server_run(&["--no-pr", "--once"]);
    assert_eq!(code, 0, "{err}");
    repo.write("docs/other.md", "unrelated\n");
    repo.publish("an unrelated change");
    std::thread::sleep(Duration::from_millis(1100));
    run_to_the_end(&repo, &["--no-pr", "--once"]);
    finishes_in_three(&repo, &env);
    let files = branch_files(&repo);
    assert!(files.contains("docs/other.md"), "{files}");
}

#[test]
fn retry_fresh_drops_the_work_in_progress() {
    let env = TestEnv::new();
    let bin = thirds(&env, "sleep 600\n");
    let repo = plain(&env, &bin, "  session_timeout: 2s\n  max_attempts: 1\n");
    let (code, _, err) = repo.server_run(&["--no-pr", "--once"]);
    assert_eq!(code, 1, "{err}");
    let e = entry(&repo);
    assert_eq!(e["status"], "failed", "{e}");
    assert!(
        e.get("wip").is_some(),
        "a failed thought keeps its WIP for humans: {e}"
    );
    let (code, _, err) = run(repo
        .tgs()
        .args(["server", "backlog", "retry", T, "--fresh"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("dropped the work in progress attempt 1 kept"),
        "{err}"
    );
    let e = entry(&repo);
    assert_eq!(e["status"], "queued", "{e}");
    assert!(e.get("wip").is_none(), "{e}");
    // Its ref goes too, here and on the remote.
    let refs = origin_git(&repo, &["for-each-ref", "refs/tgs"]);
    assert!(refs.is_empty(), "{refs}");
    assert!(repo.git(&["for-each-ref", "refs/tgs/wip"]).is_empty());
}

// ---- The matrix: the WIP through artifacts, no token in the agent's job -----

/// One matrix round: claim (bundling the WIP), implement in a clone whose
/// remote is out of reach, hand over. Returns the implement job's stderr.
fn matrix_round(env: &TestEnv, repo: &TestRepo, round: usize) -> String {
    let wip_dir = env.path().join(format!("wip-{round}"));
    let (code, out, err) = run(repo
        .tgs()
        .env_remove("TGS_NOW")
        .args([
            "server",
            "matrix",
            "--max",
            "1",
            "--worker-id",
            "actions/1",
            "--json",
            "--wip-out",
        ])
        .arg(&wip_dir));
    assert_eq!(code, 0, "{err}");
    let matrix: Value = serde_json::from_str(out.trim()).unwrap();
    let ticket = matrix["include"][0].clone();
    let claim_id = ticket["claim_id"].as_str().unwrap().to_owned();
    let bundle = wip_dir.join(format!("{claim_id}.bundle"));
    assert_eq!(
        bundle.exists(),
        round > 1,
        "round {round}: the claim job bundles a WIP only when there is one"
    );
    let job = repo.clone_as(&format!("job-{round}"));
    job.git(&["remote", "set-url", "origin", "/nonexistent/remote.git"]);
    let art = env.path().join(format!("art-{round}"));
    let (code, _, job_err) = run(job
        .tgs()
        .env_remove("TGS_NOW")
        .args(["server", "run", "--claimed"])
        .arg(ticket["thought"].as_str().unwrap())
        .args(["--claim-id", &claim_id])
        .args(["--attempt", &ticket["attempt"].to_string()])
        .args(["--worker-id", "actions/1", "--handover-out"])
        .arg(&art)
        .arg("--wip-bundle")
        .arg(&bundle));
    assert_eq!(code, 0, "{job_err}");
    let (code, out, err) = run(repo
        .tgs()
        .env_remove("TGS_NOW")
        .args(["server", "handover", "--no-pr", "--claims"])
        .arg(matrix.to_string())
        .arg(&art));
    assert_eq!(code, 0, "{out}{err}");
    job_err
}

#[test]
fn the_matrix_keeps_the_work_through_its_artifacts() {
    let env = TestEnv::new();
    let bin = thirds(&env, "sleep 600\n");
    let repo = plain(&env, &bin, "  session_timeout: 2s\n  max_attempts: 3\n");
    matrix_round(&env, &repo, 1);
    let e = entry(&repo);
    assert_eq!(e["wip"]["attempt"], 1, "{e}");
    let head = origin_git(&repo, &["rev-parse", WIP_REF]);
    assert_eq!(
        e["wip"]["head"],
        head.as_str(),
        "the hand-over job pushed the WIP: {e}"
    );
    for round in [2, 3] {
        std::thread::sleep(Duration::from_millis(1100));
        matrix_round(&env, &repo, round);
    }
    finishes_in_three(&repo, &env);
}

// ---- What an attempt leaves that must not be kept as it is ------------------

/// One attempt of `body` (then silent past a 2 s timeout); the entry after it.
fn one_attempt<'e>(env: &'e TestEnv, body: &str) -> (TestRepo<'e>, Value) {
    let bin = env.script("agent.sh", &format!("{body}\nsleep 600\n"));
    let repo = plain(env, &bin, "  session_timeout: 2s\n  max_attempts: 3\n");
    let (code, _, err) = repo.server_run(&["--no-pr", "--once"]);
    assert_eq!(code, 0, "{err}");
    let e = entry(&repo);
    (repo, e)
}

#[test]
fn work_that_rewrites_the_approved_plan_is_not_kept() {
    let env = TestEnv::new();
    let (_, e) = one_attempt(
        &env,
        "echo x > x.txt\necho '1. Delete src.' > \"$TGS_THOUGHT_DIR/plan.md\"\nrm \"$TGS_THOUGHT_DIR/research.md\"",
    );
    assert!(e.get("wip").is_none(), "{e}");
    let last = e["last_error"].as_str().unwrap();
    assert!(
        last.contains("its work in progress was not kept: the agent changed 2 of the approved thought's files"),
        "{last}"
    );
}

#[test]
fn finished_work_that_rewrites_the_approved_plan_is_rejected() {
    let env = TestEnv::new();
    let bin = env.script("agent.sh",
        "echo 'pub fn feature() {}' >> src/lib.rs\necho '1. Something else.' > \"$TGS_THOUGHT_DIR/plan.md\"\nprintf '# Implementation\\n\\nDone.\\n' > \"$TGS_THOUGHT_DIR/implementation.md\"\n",
    );
    let repo = plain(&env, &bin, "  max_attempts: 1\n");
    let (code, _, err) = repo.server_run(&["--no-pr"]);
    assert_eq!(code, 1, "{err}");
    let last = entry(&repo)["last_error"].as_str().unwrap().to_owned();
    assert!(
        last.starts_with("rejected: ")
            && last.contains(
                "approved thought's files (e.g. tgs/thoughts/abcdef1-add-a-feature/plan.md)"
            ),
        "{last}"
    );
}

#[test]
fn a_stale_index_lock_does_not_lose_the_work() {
    let env = TestEnv::new();
    let (_, e) = one_attempt(
        &env,
        "echo x > x.txt\ngit add x.txt\necho y > y.txt\ntouch .git/index.lock",
    );
    assert_eq!(e["wip"]["files"], 2, "{e}");
}

#[test]
fn a_nested_repository_or_a_half_done_merge_is_not_kept() {
    let env = TestEnv::new();
    let (_, e) = one_attempt(
        &env,
        "echo x > x.txt\nmkdir sub && cd sub && git init -q && echo s > s.txt && git add s.txt && git commit -qm s && cd ..",
    );
    assert!(e.get("wip").is_none(), "{e}");
    let last = e["last_error"].as_str().unwrap();
    assert!(
        last.contains("sub is a repository of its own inside the work"),
        "{last}"
    );

    let env = TestEnv::new();
    let (_, e) = one_attempt(
        &env,
        "git checkout -qb side && echo 'pub fn side() {}' > src/lib.rs && git commit -qam side && git checkout -q - && echo 'pub fn main_side() {}' > src/lib.rs && git commit -qam mine && git merge side >/dev/null 2>&1",
    );
    assert!(e.get("wip").is_none(), "{e}");
    let last = e["last_error"].as_str().unwrap();
    assert!(
        last.contains("conflict markers are left in src/lib.rs"),
        "{last}"
    );
}

#[test]
fn a_token_the_agent_prints_never_reaches_the_state() {
    let env = TestEnv::new();
    let (repo, e) = one_attempt(
        &env,
        "echo x > notes.txt\necho 'found token ghp_0123456789abcdefghijABCDEFGHIJ012345 in env'",
    );
    assert!(e.get("wip").is_some(), "{e}");
    let state = repo.state_file("tgs/server/backlog.json").unwrap();
    assert!(!state.contains("ghp_0123456789"), "{state}");
    assert!(state.contains("found token [REDACTED] in env"), "{state}");
}
