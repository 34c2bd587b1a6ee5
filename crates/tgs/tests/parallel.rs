//! `tgs server run --parallel K`: sessions at once, each with its own claim,
//! worktree and branch; signals that stop them all and give every claim
//! back; one session's crash or timeout that does not disturb the others;
//! and workers with the same identity on two clones, each running several
//! sessions, completing each thought once.

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{run, script, TestEnv, TestRepo};
use serde_json::Value;

/// A repository with `n` approved, queued thoughts and `agent` (a bash body)
/// as the `test` command agent.
fn queue<'e>(env: &'e TestEnv, n: usize, agent: &str, extra: &str) -> (TestRepo<'e>, Vec<String>) {
    let repo = env.repo("r");
    let dirs: Vec<String> = (0..n)
        .map(|i| {
            repo.approved(
                &format!("{:07x}-thought-{i}", 0xa000000 + i),
                &format!("Thought {i}"),
            )
        })
        .collect();
    let path = env.path().join("agent.sh");
    script(&path, &format!("#!/bin/bash\n{agent}"));
    repo.write(
        "tgs/tgs.yml",
        &format!(
            "server:\n  agent: test\n  retry_delay: 1s\n{}{extra}  agents:\n    test: {{ command: \"{}\" }}\n",
            if extra.contains("kill_grace") { "" } else { "  kill_grace: 1s\n" },
            path.display()
        ),
    );
    repo.publish("thoughts");
    let (code, _, err) = run(repo.tgs().args(["server", "scan"]));
    assert_eq!(code, 0, "{err}");
    (repo, dirs)
}

const WORK: &str = "echo \"pub fn f_$(basename \"$TGS_THOUGHT_DIR\" | tr - _)() {}\" >> src/lib.rs\nprintf '# Implementation\\n\\nDone.\\n' > \"$TGS_THOUGHT_DIR/implementation.md\"\ngit add -A && git commit -qm work\n";

fn statuses(repo: &TestRepo) -> HashMap<String, Value> {
    repo.remote_backlog()["thoughts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["dir"].as_str().unwrap().to_owned(), e.clone()))
        .collect()
}

fn tgs_run(repo: &TestRepo, args: &[&str]) -> (i32, String, String) {
    run(repo
        .tgs()
        .env_remove("TGS_NOW")
        .args(["server", "run", "--no-pr"])
        .args(args))
}

#[test]
fn k_sessions_run_at_once_and_max_bounds_them() {
    let env = TestEnv::new();
    let spans = env.path().join("spans");
    let agent = format!(
        "set -e\necho \"start $(date +%s.%N)\" >> {s}\nsleep 2\n{WORK}echo \"end $(date +%s.%N)\" >> {s}\n",
        s = spans.display()
    );
    let (repo, dirs) = queue(&env, 5, &agent, "");
    let t = Instant::now();
    let (code, _, err) = tgs_run(&repo, &["--parallel", "4", "--max", "4", "--until-empty"]);
    assert_eq!(code, 0, "{err}");
    let took = t.elapsed();
    let st = statuses(&repo);
    let done: Vec<&String> = dirs
        .iter()
        .filter(|d| st[*d]["status"] == "completed")
        .collect();
    assert_eq!(done.len(), 4, "--max 4: {err}");
    // The four sessions overlapped: every one started before any ended.
    let text = std::fs::read_to_string(&spans).unwrap();
    let times = |k: &str| -> Vec<f64> {
        text.lines()
            .filter_map(|l| l.strip_prefix(k))
            .map(|t| t.trim().parse().unwrap())
            .collect()
    };
    let (starts, ends) = (times("start "), times("end "));
    assert_eq!((starts.len(), ends.len()), (4, 4), "{text}");
    let last_start = starts.iter().cloned().fold(f64::MIN, f64::max);
    let first_end = ends.iter().cloned().fold(f64::MAX, f64::min);
    assert!(
        last_start < first_end,
        "the sessions ran one after another: {text}"
    );
    assert!(took < Duration::from_secs(60), "{took:?}");
    // Each on its own branch, each pushed.
    for d in &done {
        let b = format!("refs/heads/tgs/{}", d.rsplit('/').next().unwrap());
        assert!(!repo.git(&["ls-remote", "origin", &b]).is_empty(), "{b}");
    }
    // Every line of a session names its thought when several run at once.
    assert!(err.contains(": agent test started"), "{err}");
}

/// One session crashes, one hangs past its timeout, one works: the others
/// are not disturbed by either.
#[test]
fn one_crash_and_one_timeout_do_not_disturb_the_others() {
    let env = TestEnv::new();
    let agent = format!(
        "case \"$TGS_THOUGHT_DIR\" in\n  *thought-0) kill -9 $$ ;;\n  *thought-1) sleep 600 & wait ;;\n  *) sleep 1\n{WORK};;\nesac\n"
    );
    let (repo, dirs) = queue(
        &env,
        3,
        &agent,
        "  session_timeout: 4s\n  max_attempts: 2\n",
    );
    let t = Instant::now();
    let (code, _, err) = tgs_run(&repo, &["--parallel", "3"]);
    assert_eq!(code, 0, "{err}");
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    let st = statuses(&repo);
    let last = |d: &String| st[d]["last_error"].as_str().unwrap_or_default().to_owned();
    assert!(
        last(&dirs[0]).starts_with("crashed: "),
        "{}",
        last(&dirs[0])
    );
    assert!(
        last(&dirs[1]).starts_with("timeout: "),
        "{}",
        last(&dirs[1])
    );
    assert_eq!(st[&dirs[2]]["status"], "completed", "{err}");
    for d in &dirs[..2] {
        assert_eq!(st[d]["status"], "queued");
        assert_eq!(st[d]["attempts"], 1);
    }
}

fn pids_alive(pids: &[i32]) -> Vec<i32> {
    pids.iter()
        .copied()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .map(|s| !s.split(") ").nth(1).unwrap_or("").starts_with('Z'))
                .unwrap_or(false)
        })
        .collect()
}

/// SIGINT mid-run: every agent's group is stopped, every claim given back
/// (attempts not counted), exit 130. A second signal kills at once.
#[test]
fn signals_stop_every_session_and_give_every_claim_back() {
    for twice in [false, true] {
        let env = TestEnv::new();
        let pids = env.path().join("pids");
        // Each agent starts a grandchild; with `twice` they ignore SIGTERM.
        let agent = format!(
            "{}sleep 600 &\necho $! >> {p}\necho $$ >> {p}\nwait\n",
            if twice { "trap '' TERM\n" } else { "" },
            p = pids.display()
        );
        let (repo, dirs) = queue(&env, 3, &agent, "  kill_grace: 30s\n");
        let mut cmd = Command::new(common::tgs_bin());
        env.pin(&mut cmd);
        let child = cmd
            .current_dir(&repo.root)
            .env_remove("TGS_NOW")
            .args(["server", "run", "--no-pr", "--parallel", "3"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let started = || {
            std::fs::read_to_string(&pids)
                .map(|s| s.lines().count())
                .unwrap_or(0)
        };
        while started() < 6 {
            assert!(Instant::now() < deadline, "the agents did not all start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let t = Instant::now();
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGINT);
        }
        if twice {
            std::thread::sleep(Duration::from_millis(500));
            unsafe {
                libc::kill(child.id() as i32, libc::SIGINT);
            }
        }
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{err}");
        assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
        let all: Vec<i32> = std::fs::read_to_string(&pids)
            .unwrap()
            .lines()
            .map(|l| l.trim().parse().unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(pids_alive(&all), Vec::<i32>::new(), "twice={twice}: {err}");
        if !twice {
            assert!(err.contains("3 claim(s) given back"), "{err}");
            let st = statuses(&repo);
            for d in &dirs {
                assert_eq!(st[d]["status"], "queued", "{d}: {}", st[d]);
                assert_eq!(st[d].get("attempts"), None, "not counted: {}", st[d]);
            }
        }
    }
}

/// Two clones of one origin, the same default worker id, each running three
/// sessions at once until the queue is empty: each thought is completed
/// exactly once, by whichever claimed it, and recorded once.
#[test]
fn two_parallel_workers_with_one_identity_complete_each_thought_once() {
    let env = TestEnv::new();
    let (repo, dirs) = queue(&env, 8, &format!("sleep 0.3\n{WORK}"), "");
    let clones: Vec<TestRepo> = ["w1", "w2"].iter().map(|n| repo.clone_as(n)).collect();
    let children: Vec<_> = clones
        .iter()
        .map(|c| {
            let mut cmd = Command::new(common::tgs_bin());
            env.pin(&mut cmd);
            cmd.current_dir(&c.root)
                .env_remove("TGS_NOW")
                .args([
                    "server",
                    "run",
                    "--no-pr",
                    "--parallel",
                    "3",
                    "--until-empty",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let st = statuses(&repo);
    let requeues: Vec<Value> = repo
        .audit()
        .into_iter()
        .filter(|r| r["action"] == "requeue")
        .collect();
    for d in &dirs {
        assert_eq!(st[d]["status"], "completed", "{d}: {}", st[d]);
        assert_eq!(st[d]["attempts"], 1, "{d}: {}\n{requeues:?}", st[d]);
    }
    let metrics = repo.metrics_csv();
    let rows: Vec<&str> = metrics.lines().skip(1).collect();
    assert_eq!(rows.len(), 8, "one session each: {metrics}");
    let completes = repo
        .audit()
        .iter()
        .filter(|r| r["action"] == "complete")
        .count();
    assert_eq!(completes, 8);
}
