//! Many real `tgs` processes changing one backlog at once, and processes
//! killed with SIGKILL in the middle of a change.

mod common;

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{TestEnv, TestRepo};
use serde_json::Value;

/// How a test repository keeps its state.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Layout {
    /// The default: a state branch of its own on the remote `origin`.
    Shared,
    /// Local-only, with the state in the checked-out branch's tree
    /// (`server.state_branch: main`, `--no-push`): the working-tree store.
    WorkingTree,
}

fn many_thoughts<'e>(env: &'e TestEnv, n: usize, layout: Layout) -> (TestRepo<'e>, Vec<String>) {
    let repo = match layout {
        Layout::Shared => env.repo("r"),
        Layout::WorkingTree => env.local_repo("r"),
    };
    let dirs = (0..n)
        .map(|i| {
            repo.approved(
                &format!("{:07x}-thought-{i}", 0xa000000 + i),
                &format!("Thought {i}"),
            )
        })
        .collect();
    if layout == Layout::WorkingTree {
        repo.write("tgs/tgs.yml", "server:\n  state_branch: main\n");
        repo.commit_all("thoughts");
    } else {
        repo.publish("thoughts");
    }
    (repo, dirs)
}

/// The flags a change needs in this layout.
fn flags(layout: Layout) -> &'static [&'static str] {
    match layout {
        Layout::Shared => &[],
        Layout::WorkingTree => &["--no-push"],
    }
}

fn tgs(env: &TestEnv, repo: &TestRepo, args: &[&str]) -> Command {
    let mut c = Command::new(common::tgs_bin());
    c.current_dir(&repo.root)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    env.pin(&mut c);
    c
}

#[test]
fn fifty_concurrent_adds_lose_nothing() {
    let env = TestEnv::new();
    let (repo, dirs) = many_thoughts(&env, 50, Layout::Shared);
    let head = repo.head();
    let children: Vec<_> = dirs
        .iter()
        .map(|d| {
            tgs(&env, &repo, &["server", "backlog", "add", d])
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
    let b = repo.backlog();
    let got: HashSet<&str> = b["thoughts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["dir"].as_str().unwrap())
        .collect();
    assert_eq!(got.len(), 50);
    assert_eq!(got, dirs.iter().map(String::as_str).collect());
    // Every add is its own commit on the state branch; the user's branch and tree are as they were.
    assert_eq!(repo.state_commit_count(), 50);
    assert_eq!(repo.head(), head);
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
}

#[test]
fn racing_claims_take_each_thought_exactly_once() {
    let env = TestEnv::new();
    let (repo, dirs) = many_thoughts(&env, 30, Layout::Shared);
    let mut add = tgs(&env, &repo, &["server", "backlog", "add"]);
    add.args(&dirs);
    assert!(add.output().unwrap().status.success());
    // 40 claimers for 30 thoughts: 30 claims, 10 nulls, no thought twice.
    let children: Vec<_> = (0..40)
        .map(|i| {
            tgs(
                &env,
                &repo,
                &[
                    "server",
                    "backlog",
                    "next",
                    "--json",
                    "--claimed-by",
                    &format!("w{i}"),
                ],
            )
            .spawn()
            .unwrap()
        })
        .collect();
    let mut claimed = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        if !v.is_null() {
            claimed.push(v["dir"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(claimed.len(), 30);
    let unique: HashSet<&String> = claimed.iter().collect();
    assert_eq!(unique.len(), 30);
    let b = repo.backlog();
    let claimers: HashSet<&str> = b["thoughts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["claimed_by"].as_str().unwrap())
        .collect();
    assert_eq!(
        claimers.len(),
        30,
        "each entry names the one worker that claimed it"
    );
}

#[test]
fn sigkill_at_any_point_leaves_a_usable_shared_state() {
    let env = TestEnv::new();
    let (repo, dirs) = many_thoughts(&env, 24, Layout::Shared);
    let head = repo.head();
    // Kill `add` at growing delays, so some die before, during and after the commit and the push.
    for (i, d) in dirs.iter().enumerate() {
        let mut child = tgs(&env, &repo, &["server", "backlog", "add", d])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(1500 * i as u64));
        let _ = child.kill();
        let _ = child.wait();
        // Whatever happened, the state (if any) is whole and the clone is not stuck.
        if let Some(text) = repo.state_file("tgs/server/backlog.json") {
            serde_json::from_str::<Value>(&text)
                .unwrap_or_else(|e| panic!("torn state after kill {i}: {e}\n{text}"));
        }
        let status = repo.git(&["status", "--porcelain", "--untracked-files=all"]);
        assert_eq!(status, "", "kill {i}: the working tree is the user's");
        assert_eq!(repo.head(), head, "kill {i}");
        assert_eq!(repo.git_locks(), Vec::<String>::new(), "kill {i}");
    }
    // The next change goes through.
    let mut add = tgs(&env, &repo, &["server", "backlog", "add"]);
    add.args(&dirs);
    let out = add.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(repo.backlog()["thoughts"].as_array().unwrap().len(), 24);
}

#[test]
fn sigkill_at_any_point_leaves_a_usable_working_tree_backlog() {
    let env = TestEnv::new();
    let layout = Layout::WorkingTree;
    let (repo, dirs) = many_thoughts(&env, 24, layout);
    // Kill `add` at growing delays, so some die before, during and after the write and the commit.
    for (i, d) in dirs.iter().enumerate() {
        let mut child = tgs(&env, &repo, &["server", "backlog", "add", d])
            .args(flags(layout))
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(500 * i as u64));
        let _ = child.kill();
        let _ = child.wait();
        // Whatever happened, the file (if any) is whole and the repository is not stuck.
        if repo.path("tgs/server/backlog.json").exists() {
            let text = repo.read("tgs/server/backlog.json");
            serde_json::from_str::<Value>(&text)
                .unwrap_or_else(|e| panic!("torn write after kill {i}: {e}\n{text}"));
        }
        // At most the backlog file (written, not yet committed) or a dead writer's temp file.
        let status = repo.git(&["status", "--porcelain", "--untracked-files=all"]);
        let expected = |l: &str| {
            (l.ends_with("tgs/server/backlog.json") || l.contains("tgs/server/audit/"))
                || (l.contains("/.backlog.") && l.ends_with(".tmp"))
        };
        assert!(status.lines().all(expected), "kill {i}: {status}");
        assert!(
            !repo.path(".git/index.lock").exists(),
            "kill {i}: a git lock was left"
        );
    }
    // The next change goes through and commits everything the killed ones wrote.
    let mut add = tgs(&env, &repo, &["server", "backlog", "add"]);
    add.args(&dirs).args(flags(layout));
    let out = add.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        repo.worktree_backlog()["thoughts"]
            .as_array()
            .unwrap()
            .len(),
        24
    );
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    let list = |d: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(repo.path(d))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        list("tgs/server"),
        ["audit", "backlog.json"],
        "temp files of killed writers are swept"
    );
    assert_eq!(list("tgs/server/audit"), ["2026-01"]);
    assert_eq!(list("tgs/server/audit/2026-01"), ["15.jsonl"]);
}

/// The steps named in tgs-core's `failpoint::BACKLOG_STEPS`.
const STEPS: &[&str] = &[
    "backlog.locked",
    "backlog.temp-written",
    "backlog.renamed",
    "commit.blob-written",
    "commit.created",
    "commit.ref-updated",
];

#[test]
fn crash_at_every_step_of_a_working_tree_change_then_recover() {
    use std::os::unix::process::ExitStatusExt;
    let layout = Layout::WorkingTree;
    for step in STEPS {
        let env = TestEnv::new();
        let (repo, dirs) = many_thoughts(&env, 2, layout);
        let first = tgs(&env, &repo, &["server", "backlog", "add", &dirs[0]])
            .args(flags(layout))
            .output()
            .unwrap();
        assert!(first.status.success());
        repo.write("user.txt", "staged by the user\n");
        repo.git(&["add", "user.txt"]);
        let before = repo.head();

        let out = tgs(&env, &repo, &["server", "backlog", "add", &dirs[1]])
            .args(flags(layout))
            .env("TGS_FAILPOINT", step)
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            Some(9),
            "{step}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The state is whole: the old or the new file, HEAD the old or the new commit.
        let text = repo.read("tgs/server/backlog.json");
        let b: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{step}: torn file: {e}"));
        let n = b["thoughts"].as_array().unwrap().len();
        assert!(n == 1 || n == 2, "{step}");
        let moved = repo.head() != before;
        assert_eq!(
            moved,
            *step == "commit.ref-updated",
            "{step}: HEAD moves only once the ref is updated"
        );
        assert!(!repo.path(".git/index.lock").exists(), "{step}");
        assert_eq!(
            repo.git(&["diff", "--cached", "--name-only", "--", "user.txt"]),
            "user.txt",
            "{step}: the user's staged file"
        );

        // Recovery: the next change succeeds and the tree ends clean but for the user's file.
        let again = tgs(&env, &repo, &["server", "backlog", "add", &dirs[1]])
            .args(flags(layout))
            .output()
            .unwrap();
        assert!(
            again.status.success(),
            "{step}: {}",
            String::from_utf8_lossy(&again.stderr)
        );
        let committed: Value =
            serde_json::from_str(&repo.git(&["show", "HEAD:tgs/server/backlog.json"])).unwrap();
        assert_eq!(committed["thoughts"].as_array().unwrap().len(), 2, "{step}");
        assert_eq!(
            repo.git(&["status", "--porcelain", "--untracked-files=all"]),
            "A  user.txt",
            "{step}"
        );
    }
}

#[test]
fn crash_at_every_step_of_a_shared_change_then_recover() {
    use std::os::unix::process::ExitStatusExt;
    for step in ["shared.committed", "shared.pushed"] {
        let env = TestEnv::new();
        let (repo, dirs) = many_thoughts(&env, 2, Layout::Shared);
        let first = tgs(&env, &repo, &["server", "backlog", "add", &dirs[0]])
            .output()
            .unwrap();
        assert!(first.status.success());
        let head = repo.head();
        let out = tgs(&env, &repo, &["server", "backlog", "add", &dirs[1]])
            .env("TGS_FAILPOINT", step)
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            Some(9),
            "{step}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The remote holds the old state, or the new one once pushed.
        let n = repo.remote_backlog()["thoughts"].as_array().unwrap().len();
        assert_eq!(n, if step == "shared.pushed" { 2 } else { 1 }, "{step}");
        assert_eq!(repo.head(), head, "{step}");
        // Recovery: the next change succeeds, once.
        let again = tgs(&env, &repo, &["server", "backlog", "add", &dirs[1]])
            .output()
            .unwrap();
        assert!(again.status.success(), "{step}");
        assert_eq!(
            repo.remote_backlog()["thoughts"].as_array().unwrap().len(),
            2,
            "{step}"
        );
        assert_eq!(repo.git(&["status", "--porcelain"]), "", "{step}");
    }
}
