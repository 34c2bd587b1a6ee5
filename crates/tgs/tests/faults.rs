//! Crashes and injected faults: tgs killed (SIGKILL) at every step of a
//! session, the remote gone or refusing, GitHub failing, the disk full, the
//! clocks of two workers apart. Each ends with a clear outcome, a state that
//! validates, and, once the fault is gone, exactly one pull request per
//! thought.

mod common;
#[path = "support/github.rs"]
mod github;
#[path = "support/loopback.rs"]
mod loopback;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{run, script, TestEnv, TestRepo};
use github::{FakeGitHub, Fault};
use serde_json::{json, Value};

const TOKEN: &str = "ghs_faults_token_0123456789";
const A: &str = "tgs/thoughts/aaaaaaa-first";
/// Past every lease taken at `common::NOW` (5h session + 30m verify + 15m margin).
const LATER: &str = "2026-01-16T12:00:00Z";

/// The crash points of a session, in order (`tgs_core::failpoint::SESSION_STEPS`).
const SESSION_STEPS: &[&str] = &[
    "shared.committed#1",
    "shared.pushed#1",
    "session.agent-running",
    "runner.implemented",
    "runner.branch-pushed",
    "runner.pr-requesting",
    "runner.pr-opened",
    "shared.committed#2",
    "shared.pushed#2",
];

struct Lab<'e> {
    env: &'e TestEnv,
    repo: TestRepo<'e>,
    gh: FakeGitHub,
}

/// One approved thought; the agent appends a function, writes the summary and
/// commits, after running `before` (a shell snippet).
fn lab<'e>(env: &'e TestEnv, before: &str) -> Lab<'e> {
    let repo = env.repo("r");
    repo.approved("aaaaaaa-first", "First");
    let agent = env.path().join("agent.sh");
    script(
        &agent,
        &format!(
            "#!/bin/bash\nset -e\n{before}\necho \"pub fn f_$TGS_ATTEMPT() {{}}\" >> src/lib.rs\nprintf '# Implementation\\n\\nDone.\\n' > \"$TGS_THOUGHT_DIR/implementation.md\"\ngit add -A && git commit -qm work\n"
        ),
    );
    repo.write(
        "tgs/tgs.yml",
        &format!(
            "server:\n  agent: test\n  kill_grace: 1s\n  agents:\n    test: {{ command: \"{}\" }}\n",
            agent.display()
        ),
    );
    repo.publish("thoughts");
    let gh = FakeGitHub::start("octo", "demo", TOKEN);
    Lab { env, repo, gh }
}

impl Lab<'_> {
    /// `tgs` as a workflow step runs it, against the fake GitHub.
    fn step(&self, args: &[&str]) -> assert_cmd::Command {
        let mut c = self.repo.tgs();
        c.env("GITHUB_TOKEN", TOKEN)
            .env("GITHUB_REPOSITORY", "octo/demo")
            .env("GITHUB_API_URL", self.gh.api_url())
            .args(args);
        c
    }

    /// The same, as a process to start and kill.
    fn spawnable(&self, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(common::tgs_bin());
        c.current_dir(&self.repo.root);
        self.env.pin(&mut c);
        c.env("GITHUB_TOKEN", TOKEN)
            .env("GITHUB_REPOSITORY", "octo/demo")
            .env("GITHUB_API_URL", self.gh.api_url())
            .args(args);
        c
    }

    fn entry(&self, dir: &str) -> Value {
        self.repo.remote_backlog()["thoughts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["dir"] == dir)
            .cloned()
            .unwrap_or(Value::Null)
    }

    fn worktree(&self) -> PathBuf {
        self.repo.path(".tgs/worktrees/aaaaaaa-first")
    }

    /// The run that recovers: later than any lease, until nothing is left.
    fn recover(&self) -> (i32, String, String) {
        run(self
            .step(&["server", "run", "--until-empty"])
            .env("TGS_NOW", LATER))
    }

    /// What must hold once a fault is gone and a run has recovered: one PR
    /// for the thought, its entry completed and naming it, the branch on
    /// the remote at the recorded head, a backlog that validates, no
    /// worktree, lock or agent left behind.
    fn assert_whole(&self, ctx: &str) {
        let pulls = self.gh.pulls();
        let mine: Vec<_> = pulls
            .iter()
            .filter(|p| p.head == "tgs/aaaaaaa-first")
            .collect();
        assert_eq!(mine.len(), 1, "{ctx}: one PR: {pulls:?}");
        let e = self.entry(A);
        assert_eq!(e["status"], "completed", "{ctx}: {e}");
        assert_eq!(
            e["pr_url"],
            format!("https://github.example/octo/demo/pull/{}", mine[0].number),
            "{ctx}"
        );
        let remote_head = self
            .repo
            .git(&["ls-remote", "origin", "refs/heads/tgs/aaaaaaa-first"]);
        assert!(
            remote_head.starts_with(e["head"].as_str().unwrap_or("-")),
            "{ctx}: the recorded head is the pushed one: {remote_head} {e}"
        );
        let (code, out, err) = run(&mut self.step(&["server", "backlog", "validate"]));
        assert_eq!(code, 0, "{ctx}: validate: {out}{err}");
        let worktrees = self.repo.git(&["worktree", "list", "--porcelain"]);
        assert_eq!(
            worktrees.matches("worktree ").count(),
            1,
            "{ctx}: no worktree left: {worktrees}"
        );
        let locks: Vec<_> = self
            .repo
            .git_locks()
            .into_iter()
            .filter(|l| !l.contains("/.git/tgs/"))
            .collect();
        assert!(locks.is_empty(), "{ctx}: {locks:?}");
        let strays = agents_in(&self.worktree());
        assert!(strays.is_empty(), "{ctx}: agents still running: {strays:?}");
    }
}

/// Processes whose environment says they are an agent working in `wt`.
fn agents_in(wt: &Path) -> Vec<u32> {
    let marker = format!("TGS_WORKTREE={}", wt.display());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            // A zombie has no environment left: it runs nothing.
            env.split(|b| *b == 0).any(|v| v == marker.as_bytes())
        })
        .collect()
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn killed_at_every_step_of_a_session_then_one_pull_request() {
    for step in SESSION_STEPS {
        let env = TestEnv::new();
        let lab = lab(&env, "");
        run(&mut lab.step(&["server", "scan"]));
        let out = lab
            .step(&["server", "run", "--thought", A])
            .env("TGS_FAILPOINT", step)
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            Some(9),
            "{step}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (code, _, err) = lab.recover();
        assert_eq!(code, 0, "{step}: {err}");
        lab.assert_whole(step);
        // The record is true: every attempt that started is in the audit log,
        // and no more than one completion.
        let completions = lab
            .repo
            .audit()
            .iter()
            .filter(|r| r["action"] == "complete")
            .count();
        assert_eq!(completions, 1, "{step}");
    }
}

/// The folders in `.git/tgs/artifacts`, by name.
fn artifact_dirs(lab: &Lab<'_>) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(lab.repo.path(".git/tgs/artifacts"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A session killed once its artifact is written leaves it behind; the run
/// that takes the thought again removes it, and with it any folder older
/// than a lease (another thought's, from a run killed long ago), while a
/// recent one is left to its session.
#[test]
fn artifacts_left_by_a_killed_run_are_removed() {
    let env = TestEnv::new();
    let lab = lab(&env, "");
    run(&mut lab.step(&["server", "scan"]));
    let out = lab
        .step(&["server", "run", "--thought", A])
        .env("TGS_FAILPOINT", "runner.implemented")
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), Some(9));
    let left = artifact_dirs(&lab);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].starts_with("aaaaaaa-first."), "{left:?}");
    let arts = lab.repo.path(".git/tgs/artifacts");
    assert!(arts.join(&left[0]).join("session.json").is_file());
    for (name, age) in [
        ("zzzzzzz-old.0a1b", "7 hours ago"),
        ("yyyyyyy-new.2c3d", "1 hour ago"),
    ] {
        std::fs::create_dir_all(arts.join(name)).unwrap();
        std::fs::write(arts.join(name).join("session.json"), "{}").unwrap();
        let ok = std::process::Command::new("touch")
            .args(["-d", age])
            .arg(arts.join(name))
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let (code, _, err) = lab.recover();
    assert_eq!(code, 0, "{err}");
    lab.assert_whole("runner.implemented");
    assert_eq!(artifact_dirs(&lab), ["yyyyyyy-new.2c3d"]);
}

#[test]
fn killed_while_a_handover_is_pending_then_one_pull_request() {
    for step in [
        "runner.pr-requesting",
        "runner.pr-opened",
        "shared.committed#1",
        "shared.pushed#1",
    ] {
        let env = TestEnv::new();
        let lab = lab(&env, "");
        run(&mut lab.step(&["server", "scan"]));
        // GitHub down for longer than the client retries: the work waits.
        lab.gh.fault(
            Fault::new(
                "POST /repos/octo/demo/pulls",
                502,
                json!({"message": "Bad Gateway"}),
            )
            .times(10),
        );
        let (code, _, err) = run(&mut lab.step(&["server", "run", "--thought", A]));
        assert_eq!(code, 0, "{step}: {err}");
        assert_eq!(lab.entry(A)["status"], "handover_pending", "{step}");
        lab.gh.clear_faults();
        let out = lab
            .step(&["server", "sync-prs"])
            .env("TGS_NOW", LATER)
            .env("TGS_FAILPOINT", step)
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            Some(9),
            "{step}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (code, _, err) = run(lab
            .step(&["server", "sync-prs"])
            .env("TGS_NOW", "2026-01-17T12:00:00Z"));
        assert_eq!(code, 0, "{step}: {err}");
        lab.assert_whole(step);
        assert_eq!(
            lab.entry(A)["attempts"],
            1,
            "{step}: a hand-over is no attempt"
        );
    }
}

#[test]
fn an_agent_outlives_no_killed_tgs() {
    let env = TestEnv::new();
    let stray = env.path().join("stray.pid");
    let started = env.path().join("started");
    // The first attempt leaves a process of its own in the background, then
    // works slowly; tgs is killed meanwhile.
    let lab = lab(
        &env,
        &format!(
            "if [ \"$TGS_ATTEMPT\" = 1 ]; then sleep 300 & echo \"$$ $!\" > {stray}; touch {started}; sleep 300; fi",
            stray = stray.display(),
            started = started.display()
        ),
    );
    run(&mut lab.step(&["server", "scan"]));
    let mut tgs = lab
        .spawnable(&["server", "run", "--thought", A])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the agent", Duration::from_secs(30), || started.exists());
    let pids: Vec<u32> = std::fs::read_to_string(&stray)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let (agent, background) = (pids[0], pids[1]);
    tgs.kill().unwrap();
    tgs.wait().unwrap();
    // The agent dies with tgs, and so does what it started: its session's
    // reaper is told of tgs's death and kills them all.
    wait_for(
        "the session to die with tgs",
        Duration::from_secs(10),
        || {
            let left = agents_in(&lab.worktree());
            !left.contains(&agent) && !left.contains(&background)
        },
    );
    let (code, _, err) = lab.recover();
    assert_eq!(code, 0, "{err}");
    lab.assert_whole("killed with its agent running");
}

#[test]
fn the_remote_gone_during_a_session_then_back() {
    let env = TestEnv::new();
    // The agent works, then the remote goes away (the network, the host).
    let origin = env.path().join("r.git");
    let away = env.path().join("r.git.away");
    let lab = lab(
        &env,
        &format!(
            "if [ \"$TGS_ATTEMPT\" = 1 ]; then mv {} {}; fi",
            origin.display(),
            away.display()
        ),
    );
    run(&mut lab.step(&["server", "scan"]));
    let (code, out, err) = run(&mut lab.step(&["server", "run", "--thought", A]));
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("error:"), "a clear error: {err}");
    assert!(!err.contains("panicked"), "{err}");
    // Nothing was handed over; the claim stands until its lease ends.
    assert!(lab.gh.pulls().is_empty());
    std::fs::rename(&away, &origin).unwrap();
    assert_eq!(lab.entry(A)["status"], "in_progress");
    let (code, _, err) = lab.recover();
    assert_eq!(code, 0, "{err}");
    lab.assert_whole("the remote gone");
}

#[test]
fn a_remote_refusing_pushes_for_a_while() {
    let env = TestEnv::new();
    let lab = lab(&env, "");
    run(&mut lab.step(&["server", "scan"]));
    // A hook that declines every push until it is removed: not a race, so
    // no endless retry, and a message that says what the remote said.
    let hook = lab.repo.origin.join("hooks/pre-receive");
    script(
        &hook,
        "#!/bin/sh\necho 'pushes are frozen for maintenance' >&2\nexit 1\n",
    );
    let start = Instant::now();
    let (code, _, err) = run(&mut lab.step(&["server", "run", "--thought", A]));
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "no endless retry"
    );
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("pushes are frozen"), "{err}");
    assert_eq!(lab.entry(A)["status"], "queued", "nothing was claimed");
    assert!(lab.gh.pulls().is_empty());
    // Pushes accepted again: the claim is made and the work handed over.
    std::fs::remove_file(&hook).unwrap();
    let (code, _, err) = lab.recover();
    assert_eq!(code, 0, "{err}");
    lab.assert_whole("a refusing remote");
}

#[test]
fn a_work_branch_refused_then_accepted() {
    let env = TestEnv::new();
    let lab = lab(&env, "");
    run(&mut lab.step(&["server", "scan"]));
    // The remote refuses the work branches (a rule on tgs/*), not the state.
    let hook = lab.repo.origin.join("hooks/pre-receive");
    script(
        &hook,
        "#!/bin/sh\nwhile read old new ref; do case $ref in refs/heads/tgs/*) echo \"$ref: branch rule\" >&2; exit 1;; esac; done\n",
    );
    let (code, _, err) = run(&mut lab.step(&["server", "run", "--thought", A]));
    assert_eq!(code, 0, "{err}");
    let e = lab.entry(A);
    assert_eq!(e["status"], "queued", "{e}");
    assert!(
        e["last_error"].as_str().unwrap().contains("branch rule"),
        "{e}"
    );
    assert!(lab.gh.pulls().is_empty());
    std::fs::remove_file(&hook).unwrap();
    let (code, _, err) = lab.recover();
    assert_eq!(code, 0, "{err}");
    lab.assert_whole("a refused work branch");
}

#[test]
fn github_failing_in_each_way_loses_nothing() {
    // (status, headers, message, what the record says): a 5xx outage, the
    // primary rate limit spent, a validation error.
    type Headers<'a> = &'a [(&'a str, &'a str)];
    let faults: [(u16, Headers, &str, &str); 3] = [
        (503, &[], "Service Unavailable", "HTTP 503"),
        (
            403,
            &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1")],
            "API rate limit exceeded",
            "rate limit",
        ),
        (422, &[], "Validation Failed", "Validation Failed"),
    ];
    for (status, headers, message, says) in faults {
        let env = TestEnv::new();
        let lab = lab(&env, "");
        run(&mut lab.step(&["server", "scan"]));
        let mut f = Fault::new(
            "POST /repos/octo/demo/pulls",
            status,
            json!({ "message": message }),
        )
        .times(10);
        for (k, v) in headers {
            f = f.header(k, v);
        }
        lab.gh.fault(f);
        let (code, _, err) = run(&mut lab.step(&["server", "run", "--thought", A]));
        assert_eq!(code, 0, "{status}: {err}");
        let e = lab.entry(A);
        assert_eq!(e["status"], "handover_pending", "{status}: {e}");
        assert!(
            e["last_error"].as_str().unwrap().contains(says),
            "{status}: {e}"
        );
        lab.gh.clear_faults();
        let (code, _, err) = run(lab.step(&["server", "sync-prs"]).env("TGS_NOW", LATER));
        assert_eq!(code, 0, "{status}: {err}");
        lab.assert_whole(&format!("GitHub {status}"));
    }
}

#[test]
#[ignore = "needs root to mount a tmpfs (CI runs as root)"]
fn a_full_disk_under_the_transcript_keeps_the_work() {
    let env = TestEnv::new();
    // An agent whose output floods the transcript, then does its work.
    let lab = lab(&env, "head -c 2000000 /dev/zero | tr '\\0' x; echo");
    run(&mut lab.step(&["server", "scan"]));
    let logs = lab.repo.path("tgs/server/logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mounted = std::process::Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=64k",
            "tgs-test-full",
            logs.to_str().unwrap(),
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(mounted, "mounting a tmpfs needs root (CI runs as root)");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(logs.clone());
    let (code, _, err) = run(&mut lab.step(&["server", "run", "--thought", A]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("is incomplete") && err.contains("No space left on device"),
        "{err}"
    );
    lab.assert_whole("a full disk");
}

#[test]
fn a_worker_whose_clock_runs_ahead_does_not_take_a_live_claim() {
    let env = TestEnv::new();
    let lab = lab(&env, "");
    run(&mut lab.step(&["server", "scan"]));
    // A claims at NOW with a lease of 5h45m, and is still working.
    let (code, out, err) = run(&mut lab.step(&[
        "server",
        "backlog",
        "next",
        "--claimed-by",
        "a",
        "--lease",
        "1h",
        "--json",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(A), "{out}");
    // B's clock is 3 minutes ahead of A's, just past the lease by its own
    // clock: the claim is not taken (the margin absorbs the skew).
    let (code, out, err) = run(lab
        .step(&["server", "backlog", "next", "--claimed-by", "b", "--json"])
        .env("TGS_NOW", "2026-01-15T13:03:00Z"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "null", "{out}");
    assert_eq!(lab.entry(A)["claimed_by"], "a");
    // Well past the lease and the margin, it is taken over.
    let (code, out, err) = run(lab
        .step(&["server", "backlog", "next", "--claimed-by", "b", "--json"])
        .env("TGS_NOW", "2026-01-15T13:10:00Z"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(A), "{out}");
    assert_eq!(lab.entry(A)["claimed_by"], "b");
}

const B: &str = "tgs/thoughts/bbbbbbb-second";

/// The lab with a second thought, a verify command that prints, and an
/// agent that prints before its work (so every output pump runs).
fn lab_of_two<'e>(env: &'e TestEnv, before: &str) -> Lab<'e> {
    let lab = lab(env, &format!("echo working; {before}"));
    lab.repo.approved("bbbbbbb-second", "Second");
    let yml = lab.repo.read("tgs/tgs.yml");
    lab.repo.write(
        "tgs/tgs.yml",
        &yml.replace("server:\n", "server:\n  verify_command: echo verifying\n"),
    );
    lab.repo.publish("second");
    run(&mut lab.step(&["server", "scan"]));
    lab
}

/// A panic in any part of a session (the executor, its output pump,
/// verification, the hand-over) ends that session as `crashed: internal
/// error` with its claim given back uncounted, tells humans once, and the
/// run goes on with the next thought; tgs exits non-zero at the end.
#[test]
fn a_panic_anywhere_in_a_session_ends_only_that_session() {
    for step in tgs_core::failpoint::PANIC_STEPS {
        let env = TestEnv::new();
        let lab = lab_of_two(&env, "");
        let (code, out, err) = run(lab
            .step(&["server", "run", "--until-empty"])
            .env("TGS_FAILPOINT", format!("{step}:panic")));
        assert_eq!(code, 1, "{step}: {out}{err}");
        assert!(
            err.contains("1 session(s) ended with an internal error of tgs"),
            "{step}: {err}"
        );
        let a = lab.entry(A);
        assert_eq!(a["status"], "queued", "{step}: {a}");
        assert_eq!(
            a["attempts"].as_u64().unwrap_or(0),
            0,
            "{step}: the attempt is given back: {a}"
        );
        let said = a["last_error"].as_str().unwrap_or_default();
        assert!(
            said.starts_with("crashed: internal error: failpoint"),
            "{step}: {a}"
        );
        assert_eq!(
            lab.entry(B)["status"],
            "completed",
            "{step}: the run went on"
        );
        let pulls: Vec<_> = lab.gh.pulls().into_iter().map(|p| p.head).collect();
        assert_eq!(pulls, ["tgs/bbbbbbb-second"], "{step}");
        let told: Vec<_> = lab
            .gh
            .issues()
            .into_iter()
            .filter(|i| i.title.contains("internal error"))
            .collect();
        assert_eq!(told.len(), 1, "{step}: humans are told once: {told:?}");
        assert!(told[0].body.contains(A), "{step}: {}", told[0].body);
        let metrics = lab.repo.metrics_csv();
        assert!(metrics.contains(",crashed,"), "{step}: {metrics}");
        let (code, out, err) = run(&mut lab.step(&["server", "backlog", "validate"]));
        assert_eq!(code, 0, "{step}: {out}{err}");
    }
}

/// A panic of the dispatcher itself stops its sessions (the agent here
/// would sleep a minute), gives every claim back uncounted and exits
/// non-zero with an `error:` that says so.
#[test]
fn a_panic_of_the_dispatcher_gives_every_claim_back() {
    let env = TestEnv::new();
    let lab = lab_of_two(&env, "sleep 60");
    let started = Instant::now();
    let (code, out, err) = run(lab
        .step(&["server", "run", "--until-empty", "--parallel", "2"])
        .env("TGS_FAILPOINT", "runner.dispatching:panic"));
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("error: internal error: failpoint runner.dispatching"),
        "{err}"
    );
    assert!(err.contains("every claim was given back"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "the agent was stopped, not waited for: {:?}",
        started.elapsed()
    );
    for dir in [A, B] {
        let e = lab.entry(dir);
        assert_eq!(e["status"], "queued", "{e}");
        assert_eq!(e["attempts"].as_u64().unwrap_or(0), 0, "{e}");
    }
    let (code, out, err) = run(&mut lab.step(&["server", "backlog", "validate"]));
    assert_eq!(code, 0, "{out}{err}");
}

/// A run stuck where no signal reaches it (a thread blocked in the
/// hand-over) still ends after SIGTERM, within its grace: the watchdog
/// gives the claim back and exits 143. A second signal ends it at once.
#[test]
fn a_signal_ends_a_stuck_run_within_its_grace() {
    for signals in [1, 2] {
        let env = TestEnv::new();
        let lab = lab(&env, "");
        run(&mut lab.step(&["server", "scan"]));
        let mut child = lab
            .spawnable(&["server", "run", "--once"])
            .env("TGS_FAILPOINT", "runner.handing-over:hang")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // The agent's commit is on the worktree's branch once it is done.
        let deadline = Instant::now() + Duration::from_secs(60);
        while lab
            .repo
            .git_out(&["rev-parse", "--verify", "-q", "tgs/aaaaaaa-first~1"])
            .status
            .code()
            != Some(0)
        {
            assert!(Instant::now() < deadline, "the agent never finished");
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(500));
        let signalled = Instant::now();
        let status = terminate(&mut child, signals, Duration::from_secs(30));
        assert_eq!(status.code(), Some(143), "{signals} signal(s): {status:?}");
        let a = lab.entry(A);
        if signals == 1 {
            // kill_grace is 1s in the lab, and the watchdog's margin 10s.
            assert!(
                signalled.elapsed() >= Duration::from_secs(10),
                "{:?}",
                signalled.elapsed()
            );
            assert_eq!(a["status"], "queued", "{a}");
            assert_eq!(a["attempts"].as_u64().unwrap_or(0), 0, "{a}");
            assert!(
                a["last_error"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("stopped by signal 15"),
                "{a}"
            );
        } else {
            assert!(
                signalled.elapsed() < Duration::from_secs(5),
                "{:?}",
                signalled.elapsed()
            );
            assert_eq!(
                a["status"], "in_progress",
                "a second signal leaves at once: {a}"
            );
        }
    }
}

/// An agent that writes `refs/replace/<its head>` pointing at a clean
/// commit (and leaves its index and files as that commit has them) does
/// not get its real tree checked as the clean one and pushed: tgs's git
/// never follows replacements, so what it checks is what it pushes.
#[test]
fn replace_refs_never_hide_the_work_from_the_checks() {
    let env = TestEnv::new();
    let lab = lab(&env, "");
    script(
        &env.path().join("agent.sh"),
        "#!/bin/bash\nset -e\necho 'pub fn f() {}' >> src/lib.rs\nprintf '# Implementation\\n\\nDone.\\n' > \"$TGS_THOUGHT_DIR/implementation.md\"\ngit add -A && git commit -qm clean\nclean=$(git rev-parse HEAD)\nmkdir -p .github/workflows\necho 'on: push' > .github/workflows/evil.yml\ngit add -A && git commit -qm work\nreal=$(git rev-parse HEAD)\ngit replace \"$real\" \"$clean\"\ngit read-tree \"$clean\"\nrm -rf .github\n",
    );
    run(&mut lab.step(&["server", "scan"]));
    let (code, out, err) = run(&mut lab.step(&["server", "run", "--no-pr", "--thought", A]));
    assert_eq!(code, 0, "{out}{err}");
    let pushed = lab
        .repo
        .git(&["ls-remote", "origin", "refs/heads/tgs/aaaaaaa-first"]);
    if let Some(head) = pushed.split_whitespace().next() {
        lab.repo.git(&["fetch", "-q", "origin", head]);
        let tree = lab.repo.git(&[
            "-c",
            "core.useReplaceRefs=false",
            "ls-tree",
            "-r",
            "--name-only",
            head,
        ]);
        assert!(
            !tree.contains(".github/workflows/evil.yml"),
            "the pushed work holds the workflow the checks never saw: {tree}"
        );
    }
}

/// The agent of one session replaces the base commit in the user's git
/// directory (`refs/replace/<base>` -> a commit adding a workflow and a
/// token): every later session is checked and pushed on the real base. A
/// later agent's own repository shares no refs with the user's, so what it
/// resets to is the real base; tgs's git never follows replacements; each
/// pushes the real base and its own change, nothing more.
#[test]
fn a_replaced_base_never_taints_a_later_session() {
    let env = TestEnv::new();
    let lab = lab(&env, "");
    lab.repo.approved("bbbbbbb-second", "Second");
    lab.repo.approved("ccccccc-third", "Third");
    lab.repo.publish("more thoughts");
    // The first agent reaches the user's git directory by path (through its
    // alternates) and replaces the base there with a commit that adds a
    // workflow and a credentials file.
    script(
        &env.path().join("agent.sh"),
        "#!/bin/bash\nset -e\ncase \"$TGS_THOUGHT_DIR\" in\n\
         *first)\n  base=$(git rev-parse HEAD)\n  mkdir -p .github/workflows\n  echo 'on: push' > .github/workflows/evil.yml\n\
         \x20 echo 'token=ghp_0123456789abcdefghijklmnopqrstuvwxyz' > creds.txt\n\
         \x20 export GIT_DIR=$(dirname \"$(cat .git/objects/info/alternates)\") GIT_WORK_TREE=$PWD GIT_INDEX_FILE=$PWD/.taint-index\n\
         \x20 git add -A\n\
         \x20 tainted=$(git commit-tree \"$(git write-tree)\" -p \"$base\" -m tainted)\n\
         \x20 git replace \"$base\" \"$tainted\"\n  exit 4;;\n\
         *second) git reset -q --hard HEAD;;\nesac\n\
         echo 'pub fn f() {}' >> src/lib.rs\nprintf '# Implementation\\n\\nDone.\\n' > \"$TGS_THOUGHT_DIR/implementation.md\"\n\
         git add -A && git commit -qm work\n",
    );
    run(&mut lab.step(&["server", "scan"]));
    let base = lab.repo.git(&["rev-parse", "origin/main"]);
    for t in ["aaaaaaa-first", "bbbbbbb-second", "ccccccc-third"] {
        run(&mut lab.step(&["server", "run", "--no-pr", "--thought", t]));
    }
    let replaced = lab.repo.git(&["replace", "-l"]);
    assert_eq!(replaced, base, "the first agent replaced the base");
    let real = |args: &[&str]| {
        let mut all = vec!["-c", "core.useReplaceRefs=false"];
        all.extend_from_slice(args);
        lab.repo.git(&all)
    };
    for t in ["bbbbbbb-second", "ccccccc-third"] {
        let e = lab.entry(&format!("tgs/thoughts/{t}"));
        assert_eq!(e["status"], "completed", "{e}");
        let head = e["head"].as_str().unwrap();
        let pushed = lab
            .repo
            .git(&["ls-remote", "origin", &format!("refs/heads/tgs/{t}")]);
        assert!(pushed.starts_with(head), "{pushed}");
        assert_eq!(real(&["rev-parse", &format!("{head}^")]), base);
        let changed = real(&["diff", "--name-only", &base, head]);
        assert_eq!(
            changed.lines().collect::<Vec<_>>(),
            [
                "src/lib.rs".to_owned(),
                format!("tgs/thoughts/{t}/implementation.md")
            ],
            "only its own change is pushed"
        );
    }
}

/// A leftover of an agent's holding tgs's worktree lock for ever (as an
/// agent could, on purpose) never hangs a run: a lock held by a process that
/// is not tgs is not waited for; the session ends at once, naming the holder,
/// with the claim given back uncounted.
#[test]
fn a_worktree_lock_held_by_another_program_fails_at_once_naming_it() {
    let env = TestEnv::new();
    let lab = lab(&env, "");
    run(&mut lab.step(&["server", "scan"]));
    let lock = lab.repo.path(".git/tgs/worktrees.lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    let mut holder = std::process::Command::new("flock")
        .arg(&lock)
        .args(["sleep", "120"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut child = lab
        .spawnable(&["server", "run", "--once", "--no-pr"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = holder.kill();
            panic!("tgs waited for a lock held by another program");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = holder.kill();
    let _ = holder.wait();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("worktrees.lock") && err.contains(&format!("held by process {}", holder.id())),
        "{status:?}\n{err}"
    );
    let a = lab.entry(A);
    assert_eq!(a["status"], "queued", "the claim is given back: {a}\n{err}");
    assert_eq!(a["attempts"].as_u64().unwrap_or(0), 0, "{a}");
}

/// Send `child` SIGTERM `signals` times (50 ms apart) and wait for it to
/// end, failing past `limit`.
fn terminate(
    child: &mut std::process::Child,
    signals: usize,
    limit: Duration,
) -> std::process::ExitStatus {
    let signalled = Instant::now();
    for _ in 0..signals {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        std::thread::sleep(Duration::from_millis(50));
    }
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(signalled.elapsed() < limit, "tgs did not end after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}
