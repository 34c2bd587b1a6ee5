//! The backlog as shared state on a remote: workers on separate clones of one
//! bare `origin` racing for the same thoughts.

mod common;

use std::collections::HashSet;
use std::process::{Command, Stdio};

use common::{run, script, TestEnv, TestRepo, STATE};
use serde_json::Value;

fn published<'e>(env: &'e TestEnv, n: usize) -> (TestRepo<'e>, Vec<String>) {
    let repo = env.repo("r");
    let dirs = (0..n)
        .map(|i| {
            repo.approved(
                &format!("{:07x}-thought-{i}", 0xa000000 + i),
                &format!("Thought {i}"),
            )
        })
        .collect();
    repo.publish("thoughts");
    (repo, dirs)
}

fn ok(repo: &TestRepo, args: &[&str]) -> String {
    let (code, out, err) = run(repo.tgs().args(args));
    assert_eq!(code, 0, "tgs {args:?} failed: {err}");
    out
}

/// The state branch's tip on origin.
fn remote_state_tip(repo: &TestRepo) -> String {
    let tip = repo.git(&[
        "ls-remote",
        "origin",
        &format!("refs/heads/{}", common::STATE),
    ]);
    tip.split_whitespace().next().unwrap().to_owned()
}

fn dirs_of(v: &Value) -> Vec<String> {
    v["thoughts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["dir"].as_str().unwrap().to_owned())
        .collect()
}

/// A state change reads and writes its objects in-process where gitoxide
/// serves the repository, and through git processes where it must not
/// (here: a clone whose refs are in reftable); both publish the same way.
#[test]
fn state_objects_in_process_or_through_git_where_gitoxide_must_not() {
    let env = TestEnv::new();
    let (repo, dirs) = published(&env, 3);
    let (code, _, err) = run(repo
        .tgs()
        .env("TGS_LOG", "tgs::git=debug")
        .args(["server", "backlog", "add", &dirs[0], &dirs[1]]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("git fetch") && err.contains("git push"),
        "{err}"
    );
    assert!(
        !err.contains("fast-import") && !err.contains("cat-file --batch (refs/"),
        "in-process: {err}"
    );
    let rt = match repo.try_clone_as("reftable", &["--ref-format=reftable"]) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("this git makes no reftable clones ({e}); the fallback is not exercised");
            return;
        }
    };
    let (code, _, err) = run(rt
        .tgs()
        .env("TGS_LOG", "tgs::git=debug")
        .args(["server", "backlog", "add", &dirs[2]]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("fast-import") && err.contains("cat-file --batch (refs/"),
        "through git: {err}"
    );
    let (code, out, err) =
        run(rt
            .tgs()
            .args(["server", "backlog", "next", "--json", "--claimed-by", "rt"]));
    assert_eq!(code, 0, "{err}");
    let claimed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(claimed["dir"], dirs[0].as_str());
    let remote = repo.remote_backlog();
    assert_eq!(dirs_of(&remote), dirs);
    assert_eq!(remote["thoughts"][0]["claimed_by"], "rt");
    // Both clones end clean, their branches untouched, history intact.
    assert_eq!(rt.head(), repo.head());
    assert_eq!(rt.git(&["status", "--porcelain"]), "");
    assert_eq!(
        rt.git(&["rev-parse", &rt.state_ref()]),
        remote_state_tip(&repo)
    );
    // The first clone builds on the reftable clone's commits in-process.
    ok(&repo, &["server", "backlog", "priority", &dirs[1], "5"]);
    assert_eq!(
        repo.git(&["rev-parse", &repo.state_ref()]),
        remote_state_tip(&repo)
    );
    assert_eq!(repo.remote_backlog()["thoughts"][1]["priority"], 5);
    assert_eq!(repo.remote_backlog()["thoughts"][0]["claimed_by"], "rt");
    repo.git(&["fsck", "--no-dangling"]);
}

#[test]
fn changes_are_pushed_and_the_users_branch_stays() {
    let env = TestEnv::new();
    let (repo, dirs) = published(&env, 2);
    let main = repo.head();
    ok(&repo, &["server", "backlog", "add", &dirs[0]]);
    assert_eq!(dirs_of(&repo.remote_backlog()), [dirs[0].clone()]);
    // The user's branch, its remote counterpart and the tree are as they were.
    assert_eq!(repo.head(), main);
    assert_eq!(repo.git(&["rev-parse", "origin/main"]), main);
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    assert!(!repo.path("tgs/server/backlog.json").exists());

    // A second clone with a stale view re-applies its change to the fresh state.
    let other = repo.clone_as("other");
    ok(
        &repo,
        &["server", "backlog", "add", &dirs[1], "--priority", "3"],
    );
    let stale: Value = serde_json::from_str(&other.git(&[
        "show",
        &format!("origin/{}:tgs/server/backlog.json", common::STATE),
    ]))
    .unwrap();
    assert_eq!(
        dirs_of(&stale),
        [dirs[0].clone()],
        "other has not fetched yet"
    );
    let (code, out, err) = run(other.tgs().args([
        "server",
        "backlog",
        "next",
        "--json",
        "--claimed-by",
        "other",
    ]));
    assert_eq!(code, 0, "{err}");
    let claimed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        claimed["dir"], dirs[1],
        "the claim sees the entry added after the clone"
    );
    let remote = repo.remote_backlog();
    assert_eq!(remote["thoughts"][1]["status"], "in_progress");
    assert_eq!(remote["thoughts"][1]["claimed_by"], "other");
    assert_eq!(other.head(), main);
    // Reads fetch too: the first clone lists the claim made elsewhere.
    let listed: Value = serde_json::from_str(&ok(
        &repo,
        &[
            "server",
            "backlog",
            "list",
            "--json",
            "--status",
            "in_progress",
        ],
    ))
    .unwrap();
    assert_eq!(listed[0]["claimed_by"], "other");
}

#[test]
fn racing_workers_on_clones_of_one_machine_take_turns() {
    race_on_clones(true);
}

#[test]
fn racing_workers_on_clones_of_many_machines_claim_each_thought_exactly_once() {
    race_on_clones(false);
}

/// Six workers on six clones claim 60 thoughts. On one machine they share
/// the host's turn (see `backlog::turn`), so no push is ever lost; on many
/// (a turn directory each) the remote's compare-and-swap alone keeps order.
fn race_on_clones(one_machine: bool) {
    let env = TestEnv::new();
    let (repo, dirs) = published(&env, 60);
    let mut add = repo.tgs();
    add.args(["server", "backlog", "add"]).args(&dirs);
    let (code, _, err) = run(&mut add);
    assert_eq!(code, 0, "{err}");
    let workers: Vec<TestRepo> = (0..6).map(|i| repo.clone_as(&format!("w{i}"))).collect();
    // Each worker claims until there is no work left, as `server run --until-empty` would.
    let loops: Vec<_> = workers
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let bin = common::tgs_bin();
            let bin = bin.display();
            let body = format!(
                "#!/bin/sh\nset -e\nn=0\nwhile :; do out=$('{bin}' server backlog next --json --claimed-by w{i}); [ \"$out\" = null ] && break; echo \"$out\" | tr -d '\\n'; echo; n=$((n+1)); [ $n -le 100 ] || exit 9; done\n"
            );
            let path = env.path().join(format!("worker{i}.sh"));
            script(&path, &body);
            let mut c = Command::new(&path);
            c.current_dir(&w.root).stdout(Stdio::piped()).stderr(Stdio::piped());
            env.pin(&mut c);
            c.env("TGS_LOG", "tgs_core::backlog=debug");
            if !one_machine {
                c.env("TGS_LOCK_DIR", env.path().join(format!("machine{i}")));
            }
            c.spawn().unwrap()
        })
        .collect();
    let mut claimed = Vec::new();
    for (i, c) in loops.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "worker {i}: {err}");
        if one_machine {
            assert!(!err.contains("lost a race"), "worker {i} raced: {err}");
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            claimed.push((i, v["dir"].as_str().unwrap().to_owned()));
        }
    }
    let unique: HashSet<&String> = claimed.iter().map(|(_, d)| d).collect();
    assert_eq!(claimed.len(), 60, "every thought claimed once: {claimed:?}");
    assert_eq!(unique.len(), 60);
    // The remote agrees, and names the claimer each worker saw.
    let remote = repo.remote_backlog();
    for (i, d) in &claimed {
        let e = remote["thoughts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["dir"] == d.as_str())
            .unwrap();
        assert_eq!(e["status"], "in_progress");
        assert_eq!(e["claimed_by"], format!("w{i}"));
    }
    // No worker is left behind: each clone is clean, its branch untouched,
    // and it knows the state's tip.
    let tip = remote_state_tip(&repo);
    for w in &workers {
        assert_eq!(w.git(&["status", "--porcelain"]), "");
        assert_eq!(w.head(), repo.head());
        assert_eq!(
            w.git(&["rev-parse", &format!("origin/{}", common::STATE)]),
            tip
        );
    }
    let spread: HashSet<usize> = claimed.iter().map(|(i, _)| *i).collect();
    assert!(
        spread.len() > 1,
        "work was shared among workers: {spread:?}"
    );
}

/// `server.state_branch: main`: the state in main's tree, as before the
/// state branch of its own. The checkout follows the state it pushes.
#[test]
fn state_in_main_when_configured_and_the_checkout_follows() {
    let env = TestEnv::new();
    let (repo, dirs) = published(&env, 2);
    repo.write("tgs/tgs.yml", "server:\n  state_branch: main\n");
    repo.publish("keep the state in main");
    let (code, _, err) = run(repo.tgs().args(["server", "backlog", "add", &dirs[0]]));
    assert_eq!(code, 0, "{err}");
    assert!(
        !err.contains("warning"),
        "configured, so no hint to migrate: {err}"
    );
    assert_eq!(repo.head(), repo.git(&["rev-parse", "origin/main"]));
    assert_eq!(dirs_of(&repo.worktree_backlog()), [dirs[0].clone()]);
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    let none = repo.git_out(&["ls-remote", "--exit-code", "origin", common::STATE]);
    assert!(!none.status.success(), "no state branch of its own");
}

#[test]
fn a_diverged_checkout_is_left_alone_and_never_stuck() {
    let env = TestEnv::new();
    let (repo, dirs) = published(&env, 2);
    repo.write("tgs/tgs.yml", "server:\n  state_branch: main\n");
    repo.publish("keep the state in main");
    repo.write("local.txt", "an unpushed commit\n");
    repo.commit_all("local work");
    let mine = repo.head();
    let (code, _, err) = run(repo.tgs().args(["server", "backlog", "add", &dirs[0]]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("diverged"), "{err}");
    assert_eq!(repo.head(), mine, "the user's branch is not rewritten");
    let main: Value =
        serde_json::from_str(&repo.git(&["show", "origin/main:tgs/server/backlog.json"])).unwrap();
    assert_eq!(dirs_of(&main), [dirs[0].clone()]);
    // Later changes still go through.
    ok(&repo, &["server", "backlog", "add", &dirs[1]]);
    let main: Value =
        serde_json::from_str(&repo.git(&["show", "origin/main:tgs/server/backlog.json"])).unwrap();
    assert_eq!(dirs_of(&main), dirs);
}

#[test]
fn warnings_are_plain_lines_unless_tgs_log_asks_for_details() {
    let env = TestEnv::new();
    let (repo, dirs) = published(&env, 2);
    // The state in main's tree, so that an unpushed commit makes a warning.
    repo.write("tgs/tgs.yml", "server:\n  state_branch: main\n");
    repo.publish("keep the state in main");
    repo.write("local.txt", "an unpushed commit\n");
    repo.commit_all("local work");
    let (code, _, err) = run(repo.tgs().args(["server", "backlog", "add", &dirs[0]]));
    assert_eq!(code, 0, "{err}");
    let line = err.lines().find(|l| l.contains("diverged")).unwrap_or("");
    assert!(
        line.starts_with("warning: the local branch main has diverged from origin/main"),
        "{err}"
    );
    assert!(
        !err.contains("WARN"),
        "no log format without TGS_LOG: {err}"
    );
    // With TGS_LOG the detailed format: time since start, level.
    let (code, _, err) = run(repo
        .tgs()
        .env("TGS_LOG", "warn")
        .args(["server", "backlog", "add", &dirs[1]]));
    assert_eq!(code, 0, "{err}");
    let line = err.lines().find(|l| l.contains("diverged")).unwrap_or("");
    let (time, rest) = line.trim_start().split_once(' ').unwrap_or_default();
    assert!(
        time.ends_with('s') && time[..time.len() - 1].parse::<f64>().is_ok(),
        "{err}"
    );
    assert!(rest.trim_start().starts_with("WARN "), "{err}");
}

#[test]
fn no_push_keeps_the_change_local() {
    let env = TestEnv::new();
    let (repo, dirs) = published(&env, 1);
    ok(&repo, &["server", "backlog", "add", &dirs[0], "--no-push"]);
    let local: Value = serde_json::from_str(&repo.git(&[
        "show",
        &format!("refs/heads/{}:tgs/server/backlog.json", common::STATE),
    ]))
    .unwrap();
    assert_eq!(dirs_of(&local), [dirs[0].clone()]);
    let remote_has = repo.git_out(&["ls-remote", "--exit-code", "origin", common::STATE]);
    assert!(!remote_has.status.success(), "nothing reached origin");
}

#[test]
fn a_refusing_remote_is_a_clear_error() {
    let env = TestEnv::new();
    let (repo, dirs) = published(&env, 1);
    script(
        &repo.origin.join("hooks/pre-receive"),
        "#!/bin/sh\necho 'main is protected' >&2\nexit 1\n",
    );
    let (code, _, err) = run(repo.tgs().args(["server", "backlog", "add", &dirs[0]]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("refused the state commit"), "{err}");
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
}

#[test]
fn a_state_branch_of_another_name() {
    let env = TestEnv::new();
    let (repo, dirs) = published(&env, 1);
    repo.write("tgs/tgs.yml", "server:\n  state_branch: ops/tgs\n");
    repo.publish("config");
    let main_before = repo.head();
    ok(&repo, &["server", "backlog", "add", &dirs[0]]);
    assert_eq!(repo.head(), main_before);
    let out = env
        .git_cmd(&repo.origin)
        .args(["show", "ops/tgs:tgs/server/backlog.json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let b: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(dirs_of(&b), [dirs[0].clone()]);
    let listed: Value =
        serde_json::from_str(&ok(&repo, &["server", "backlog", "list", "--json"])).unwrap();
    assert_eq!(listed[0]["dir"], dirs[0]);
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    // A name that would collide with the work branches tgs/<thought> is refused.
    repo.write("tgs/tgs.yml", "server:\n  state_branch: tgs/state\n");
    let (code, _, err) = run(repo.tgs().args(["server", "backlog", "list"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("collides with the work branches"), "{err}");
}

/// Years of history in every layout tgs has written (the single files, the
/// month files, the day files) are all read by the views, and a change
/// writes the live backlog and today's file only.
#[test]
fn a_long_history_in_every_layout_is_read_and_a_change_writes_today_only() {
    let env = TestEnv::new();
    let (repo, dirs) = published(&env, 2);
    ok(&repo, &["server", "backlog", "add", &dirs[0]]);
    let header = tgs_core::records::METRICS_HEADER;
    let row = |day: &str| {
        format!("tgs/thoughts/old-{day},w,claude-code,{day}T10:00:00Z,{day}T10:30:00Z,1800,success,1,0,3,0.5,10,10,\n")
    };
    let audit = |day: &str| {
        format!("{{\"time\":\"{day}T10:00:00Z\",\"worker\":\"w\",\"action\":\"complete\",\"thought\":\"tgs/thoughts/old-{day}\"}}\n")
    };
    let archived = "{\"dir\":\"tgs/thoughts/eeeeeee-archived\",\"title\":\"Archived\",\"priority\":0,\"status\":\"completed\",\"added_at\":null,\"started_at\":null,\"completed_at\":null}\n";
    let files = [
        ("tgs/server/audit.jsonl", audit("2025-06-01")),
        (
            "tgs/server/metrics.csv",
            format!("{header}\n{}", row("2025-06-01")),
        ),
        ("tgs/server/audit/2025-12.jsonl", audit("2025-12-10")),
        (
            "tgs/server/metrics/2025-12.csv",
            format!("{header}\n{}", row("2025-12-10")),
        ),
        ("tgs/server/archive/2025-12.jsonl", archived.to_owned()),
        (
            "tgs/server/metrics/2026-01/14.csv",
            format!("{header}\n{}", row("2026-01-14")),
        ),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(p, t)| (*p, t.as_str())).collect();
    repo.put_state(&files);
    let before = remote_state_tip(&repo);
    ok(&repo, &["server", "backlog", "add", &dirs[1]]);
    let after = remote_state_tip(&repo);
    assert_eq!(
        repo.git(&["diff", "--name-only", &before, &after]),
        "tgs/server/audit/2026-01/15.jsonl\ntgs/server/backlog.json",
        "a change touches the live backlog and today's file only"
    );
    let m: Value = serde_json::from_str(&ok(&repo, &["--json", "server", "metrics"])).unwrap();
    let text = m.to_string();
    for day in ["2025-06-01", "2025-12-10", "2026-01-14"] {
        assert!(text.contains(day), "{day} missing from the metrics: {text}");
    }
    let all = ok(&repo, &["--json", "server", "backlog", "list"]);
    assert!(all.contains("eeeeeee-archived"), "{all}");
    let actions: Vec<String> = repo
        .audit()
        .iter()
        .map(|a| a["time"].as_str().unwrap_or_default()[..10].to_owned())
        .collect();
    assert_eq!(
        actions.first().map(String::as_str),
        Some("2025-06-01"),
        "{actions:?}"
    );
    assert!(actions.contains(&"2025-12-10".to_owned()), "{actions:?}");
}

/// A state branch this clone fetched and that is gone from the remote (a
/// clean-up, a mistaken push) is an error for readers and writers alike,
/// naming the way back; `tgs server state restore` pushes the last state
/// the clone knows, and nothing else brings it back.
#[test]
fn a_deleted_state_branch_is_an_error_until_it_is_restored() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    repo.approved("aaaaaaa-first", "First");
    repo.publish("thoughts");
    let (code, out, err) = run(repo.tgs().args(["server", "scan"]));
    assert_eq!(code, 0, "{out}{err}");
    let before = repo.git(&["rev-parse", &repo.state_ref()]);
    let deleted = env
        .git_cmd(env.path())
        .args([
            "--git-dir",
            repo.origin.to_str().unwrap(),
            "branch",
            "-D",
            STATE,
        ])
        .output()
        .unwrap();
    assert!(deleted.status.success());
    for args in [
        &["server", "status"][..],
        &["server", "scan"],
        &["server", "backlog", "list"],
        &["server", "backlog", "next"],
    ] {
        let (code, out, err) = run(repo.tgs().args(args));
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(
            err.contains("error: the state branch tgs-state is gone from origin"),
            "{args:?}: {err}"
        );
        assert!(err.contains("tgs server state restore"), "{args:?}: {err}");
    }
    let on_origin = |r: &TestRepo| r.git(&["ls-remote", "origin", "refs/heads/tgs-state"]);
    assert_eq!(on_origin(&repo), "", "nothing made the branch again");
    let (code, out, err) = run(repo.tgs().args(["server", "state", "restore"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(on_origin(&repo).starts_with(before.as_str()), "{before}");
    let (code, out, err) = run(repo.tgs().args(["server", "backlog", "list"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("aaaaaaa-first"), "{out}");
    // With the branch there, restore has nothing to do.
    let (code, _, err) = run(repo.tgs().args(["server", "state", "restore"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nothing to restore"), "{err}");
}
