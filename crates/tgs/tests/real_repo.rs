//! A team's real repository: the state on a branch of its own, nobody's
//! branch pushed, moved or diverged by tgs, decisions read from the remote's
//! base branch, and clear errors for a detached HEAD, an empty repository
//! and a missing remote.

mod common;

use common::{run, script, TestEnv, TestRepo, STATE};
use serde_json::Value;

const T1: &str = "tgs/thoughts/1111111-first";
const T2: &str = "tgs/thoughts/2222222-second";

fn ok(repo: &TestRepo, args: &[&str]) -> String {
    let (code, out, err) = run(repo.tgs().args(args));
    assert_eq!(code, 0, "tgs {args:?} failed: {err}");
    out
}

fn dirs(v: &Value) -> Vec<String> {
    v["thoughts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["dir"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The branches origin has, with their tips.
fn origin_refs(repo: &TestRepo) -> String {
    let out = repo
        .env
        .git_cmd(&repo.origin)
        .args(["for-each-ref", "--format=%(refname) %(objectname)"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn origin_tip(repo: &TestRepo, branch: &str) -> Option<String> {
    let out = repo
        .env
        .git_cmd(&repo.origin)
        .args([
            "rev-parse",
            "--verify",
            "-q",
            &format!("refs/heads/{branch}"),
        ])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Issue reproduction 1: a thought committed but not pushed, then `scan`.
#[test]
fn scan_before_push_leaves_the_users_branches_alone() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let main = repo.head();
    repo.approved("1111111-first", "First");
    repo.commit_all("approve the first thought");
    let (code, out, err) = run(repo.tgs().args(["server", "scan", "--json"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        "[]",
        "nothing is queued that only this clone has"
    );
    assert!(
        err.contains(&format!(
            "{T1}: approved here but not on origin/main: push it first"
        )),
        "{err}"
    );
    assert_eq!(origin_tip(&repo, "main").as_deref(), Some(main.as_str()));
    // The user's push goes through: origin/main was not moved under them.
    repo.git(&["push", "-q", "origin", "main"]);
    // Once pushed, scan queues it, and origin/main still only has the user's commits.
    let pushed = repo.head();
    ok(&repo, &["server", "scan"]);
    assert_eq!(dirs(&repo.backlog()), [T1]);
    assert_eq!(origin_tip(&repo, "main").as_deref(), Some(pushed.as_str()));

    // On a feature branch with unpushed commits: nothing of it is pushed.
    repo.git(&["checkout", "-q", "-b", "feat"]);
    repo.approved("2222222-second", "Second");
    repo.commit_all("feature work");
    let before = origin_refs(&repo);
    let (code, _, err) = run(repo.tgs().args(["server", "scan"]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("not on origin/main"), "{err}");
    assert_eq!(
        origin_refs(&repo),
        before,
        "no branch of the user's was pushed"
    );
    assert_eq!(origin_tip(&repo, "feat"), None);
    assert_eq!(dirs(&repo.backlog()), [T1]);
}

/// Issue reproduction 2, and the two-clone guarantee: one clone with unpushed
/// commits scans and validates while the other adds; nothing is lost and
/// nobody's `git push` is rejected.
#[test]
fn a_clone_with_unpushed_commits_never_drops_a_teammates_entry() {
    let env = TestEnv::new();
    let origin = env.repo("r");
    origin.approved("1111111-first", "First");
    origin.approved("2222222-second", "Second");
    origin.publish("two approved thoughts");
    let a = origin.clone_as("a");
    let b = origin.clone_as("b");
    a.write("wip.txt", "not pushed yet\n");
    a.commit_all("work in progress");
    ok(&b, &["server", "backlog", "add", T2]);
    ok(&a, &["server", "scan"]);
    let (code, out, err) = run(a.tgs().args(["server", "backlog", "validate", "--fix"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("removed"), "{out}");
    let mut got = dirs(&b.backlog());
    got.sort();
    assert_eq!(got, [T1, T2], "B's entry is still there");
    // Both push their own work without a rejection.
    a.git(&["push", "-q", "origin", "main"]);
    b.git(&["pull", "-q", "--ff-only", "origin", "main"]);
    b.write("b.txt", "b's work\n");
    b.commit_all("b's work");
    b.git(&["push", "-q", "origin", "main"]);
    // And a thought truly gone from origin/main is reported against it.
    origin.put_state(&[(
        "tgs/server/backlog.json",
        r#"{"version":"1","thoughts":[{"dir":"tgs/thoughts/9999999-gone","title":"x","status":"queued"}]}"#,
    )]);
    let (code, out, _) = run(a.tgs().args(["server", "backlog", "validate"]));
    assert_eq!(code, 1);
    assert!(
        out.contains("tgs/thoughts/9999999-gone: the thought is not on origin/main"),
        "{out}"
    );
}

/// Issue reproduction 3: a detached HEAD never receives a tgs commit, and
/// what is shown is the shared state, not the checkout's stale files.
#[test]
fn a_detached_head_is_never_committed_to() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    repo.approved("1111111-first", "First");
    repo.approved("2222222-second", "Second");
    repo.publish("thoughts");
    repo.write("more.txt", "x\n");
    repo.publish("more");
    ok(&repo, &["server", "backlog", "add", T1, T2]);
    ok(&repo, &["server", "backlog", "next", "--claimed-by", "w1"]);
    ok(&repo, &["server", "backlog", "complete", T1]);
    repo.git(&["checkout", "-q", "--detach", "HEAD~1"]);
    let detached = repo.head();
    ok(&repo, &["server", "backlog", "priority", T2, "3"]);
    assert_eq!(repo.head(), detached, "no commit on the detached HEAD");
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    let t2 = repo.backlog()["thoughts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["dir"] == T2)
        .cloned()
        .unwrap();
    assert_eq!(t2["priority"], 3, "pushed to the state branch");
    let status: Value = serde_json::from_str(&ok(&repo, &["--json", "server", "status"])).unwrap();
    assert_eq!(status["counts"]["in_progress"], 0, "{status}");
    assert_eq!(status["counts"]["completed"], 1, "{status}");
}

/// Issue reproduction 3: a repository without commits says so.
#[test]
fn an_empty_repository_says_it_has_no_commits() {
    let env = TestEnv::new();
    // No remote: local-only work must be asked for, then the cause is named.
    let root = env.path().join("empty");
    std::fs::create_dir_all(&root).unwrap();
    let repo = TestRepo {
        root: root.clone(),
        origin: env.path().join("empty.git"),
        env: &env,
    };
    repo.git(&["init", "-q", "-b", "main"]);
    let (code, _, err) = run(repo.tgs().args(["server", "run", "--dry-run", "--no-push"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no commits yet"), "{err}");
    assert!(!err.contains("detached"), "{err}");
    // With an empty remote: its lack of a default branch is named.
    let status = env
        .git_cmd(env.path())
        .args(["init", "-q", "--bare", "-b", "main", "empty.git"])
        .status()
        .unwrap();
    assert!(status.success());
    repo.git(&["remote", "add", "origin", repo.origin.to_str().unwrap()]);
    let (code, _, err) = run(repo.tgs().args(["server", "run", "--dry-run"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("has no default branch yet"), "{err}");
    assert!(!err.contains("detached"), "{err}");
    let (code, _, err) = run(repo.tgs().args(["server", "scan"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no default branch yet"), "{err}");
}

/// Issue reproduction 4: a configured remote that does not exist.
#[test]
fn a_missing_remote_is_an_error_and_no_push_is_explicit() {
    let env = TestEnv::new();
    let repo = env.local_repo("r");
    repo.approved("1111111-first", "First");
    let agent = env.path().join("agent.sh");
    script(&agent, "#!/bin/sh\necho 'pub fn x() {}' >> src/lib.rs\nprintf '# Impl\\nDone\\n' > \"$TGS_THOUGHT_DIR/implementation.md\"\n");
    repo.write(
        "tgs/tgs.yml",
        &format!(
            "server:\n  remote: origin\n  agent: t\n  agents:\n    t: {{ command: \"{}\" }}\n",
            agent.display()
        ),
    );
    repo.commit_all("thought");
    for args in [
        vec!["server", "scan"],
        vec!["server", "backlog", "add", T1],
        vec!["server", "run"],
        vec!["server", "run", "--dry-run"],
    ] {
        let (code, _, err) = run(repo.tgs().args(&args));
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains("the remote `origin` does not exist") && err.contains("--no-push"),
            "{args:?}: {err}"
        );
    }
    let none = repo.git_out(&[
        "rev-parse",
        "--verify",
        "-q",
        &format!("refs/heads/{STATE}"),
    ]);
    assert!(!none.status.success(), "nothing was recorded");
    // Local-only work, asked for: the state is a local branch, the session runs.
    ok(&repo, &["server", "scan", "--no-push"]);
    let (code, _, err) = run(repo
        .tgs()
        .env_remove("TGS_NOW")
        .args(["server", "run", "--no-push"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(repo.backlog()["thoughts"][0]["status"], "completed");
    // Reading needs no remote.
    ok(&repo, &["server", "backlog", "list"]);
}

/// Issue reproduction 5: the default branch's history gets no state commits.
#[test]
fn the_default_branch_gets_no_state_commits() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    repo.approved("1111111-first", "First");
    repo.approved("2222222-second", "Second");
    repo.publish("thoughts");
    let main = origin_tip(&repo, "main").unwrap();
    ok(&repo, &["server", "scan"]);
    ok(&repo, &["server", "backlog", "next"]);
    ok(&repo, &["server", "backlog", "fail", T1]);
    ok(&repo, &["server", "backlog", "retry", T1]);
    ok(&repo, &["server", "recover"]);
    assert_eq!(origin_tip(&repo, "main").as_deref(), Some(main.as_str()));
    assert_eq!(repo.state_commit_count(), 4);
    // The state branch is an orphan history holding only tgs/server/**.
    let r = repo.state_ref();
    let files = repo.git(&["ls-tree", "-r", "--name-only", &r]);
    assert!(
        files.lines().all(|f| f.starts_with("tgs/server/")),
        "{files}"
    );
    let merge_base = repo.git_out(&["merge-base", &r, "main"]);
    assert!(!merge_base.status.success(), "no history shared with main");
}

/// A repository that kept its state in main's tree (tgs before the state
/// branch) keeps working, is told how to move it, and `state migrate` moves
/// backlog, audit and metrics.
#[test]
fn an_older_layout_keeps_working_and_migrates() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    repo.approved("1111111-first", "First");
    repo.approved("2222222-second", "Second");
    repo.write(
        "tgs/server/backlog.json",
        &format!(
            r#"{{"version":"1","thoughts":[{{"dir":"{T1}","title":"First","status":"queued"}}]}}"#
        ),
    );
    repo.write("tgs/server/audit.jsonl", "{\"action\":\"add\"}\n");
    repo.write("tgs/server/metrics.csv", "thought,worker\n");
    repo.publish("state in main, as tgs used to keep it");
    let (code, _, err) = run(repo.tgs().args(["server", "backlog", "add", T2]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("lives in origin/main's tree") && err.contains("tgs server state migrate"),
        "{err}"
    );
    let main: Value =
        serde_json::from_str(&repo.git(&["show", "origin/main:tgs/server/backlog.json"])).unwrap();
    assert_eq!(
        dirs(&main),
        [T1, T2],
        "the older layout is kept until moved"
    );
    assert_eq!(origin_tip(&repo, STATE), None);

    repo.git(&["pull", "-q", "--ff-only"]);
    let (code, _, err) = run(repo.tgs().args(["server", "state", "migrate"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("moved the server state from origin/main to origin/tgs-state"),
        "{err}"
    );
    assert_eq!(dirs(&repo.remote_backlog()), [T1, T2]);
    assert!(repo
        .state_file("tgs/server/audit.jsonl")
        .unwrap()
        .contains("\"action\":\"add\""));
    assert_eq!(
        repo.state_file("tgs/server/metrics.csv").unwrap(),
        "thought,worker\n"
    );
    // From now on the state branch is used, without the warning; main is left alone.
    let main_tip = origin_tip(&repo, "main");
    let (code, _, err) = run(repo.tgs().args(["server", "backlog", "priority", T2, "4"]));
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("warning"), "{err}");
    assert_eq!(repo.remote_backlog()["thoughts"][1]["priority"], 4);
    assert_eq!(origin_tip(&repo, "main"), main_tip);
    // Migrating again is refused: the state branch exists.
    let (code, _, err) = run(repo.tgs().args(["server", "state", "migrate"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("exists already"), "{err}");
}

/// A session's transcript goes with its record to the state branch (its end,
/// compressed), so a fresh clone's `logs` and dashboard show it; the whole
/// one stays where the session ran.
#[test]
fn transcripts_are_reachable_from_any_clone() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    repo.approved("1111111-first", "First");
    let agent = env.path().join("agent.sh");
    // 3 MB of output, then the work.
    script(
        &agent,
        "#!/bin/bash\nfor i in $(seq 1 30000); do printf 'line %06d %s\\n' $i xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done\necho 'pub fn x() {}' >> src/lib.rs\nprintf '# Impl\\nDone\\n' > \"$TGS_THOUGHT_DIR/implementation.md\"\necho the-last-line\n",
    );
    repo.write(
        "tgs/tgs.yml",
        &format!(
            "server:\n  agent: t\n  agents:\n    t: {{ command: \"{}\" }}\n",
            agent.display()
        ),
    );
    repo.publish("thought");
    ok(&repo, &["server", "scan"]);
    let (code, _, err) = run(repo
        .tgs()
        .env_remove("TGS_NOW")
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_RUN_ID", "4242")
        .env("GITHUB_RUN_ATTEMPT", "2")
        .args(["server", "run", "--no-pr"]));
    assert_eq!(code, 0, "{err}");
    let kept = repo.git(&[
        "ls-tree",
        "-r",
        "--name-only",
        &repo.state_ref(),
        "tgs/server/transcripts",
    ]);
    assert_eq!(kept.lines().count(), 1, "{kept}");
    assert!(
        kept.starts_with("tgs/server/transcripts/") && kept.ends_with(".log.gz"),
        "{kept}"
    );

    let other = repo.clone_as("other");
    let (code, out, err) = run(other.tgs().args(["server", "logs", "1111111-first"]));
    assert_eq!(code, 0, "{err}");
    let end = &out[out.len().saturating_sub(300)..];
    assert!(end.contains("the-last-line\n"), "{end}");
    assert!(out.len() <= 1024 * 1024 + 300, "capped: {}", out.len());
    let first = out.lines().next().unwrap();
    assert!(
        first.starts_with("# tgs: the first ")
            && first.contains("the artifact tgs-server-logs-4242-2"),
        "{first}"
    );
    assert!(
        err.contains("the whole one is where the session ran"),
        "{err}"
    );
    let j: Value =
        serde_json::from_str(&ok(&other, &["--json", "server", "logs", "1111111-first"])).unwrap();
    assert_eq!(j["sessions"][0]["path"], Value::Null);
    assert!(j["sessions"][0]["kept"].is_string());
    // The clone where it ran prints the whole transcript.
    let (_, whole, _) = run(repo.tgs().args(["server", "logs", "1111111-first"]));
    assert!(whole.starts_with("# tgs session: ") && whole.contains("\nline 000001 "));
    assert!(whole.len() > 2_500_000, "{}", whole.len());
    // A dashboard built on the fresh clone shows the excerpt, unless asked not to.
    let site = env.path().join("site");
    ok(
        &other,
        &["server", "dashboard", "--out", site.to_str().unwrap()],
    );
    let page = std::fs::read_to_string(site.join("thoughts/1111111-first.html")).unwrap();
    assert!(page.contains("the-last-line"), "excerpt on the page");
    ok(
        &other,
        &[
            "server",
            "dashboard",
            "--no-excerpts",
            "--out",
            site.to_str().unwrap(),
        ],
    );
    let page = std::fs::read_to_string(site.join("thoughts/1111111-first.html")).unwrap();
    assert!(!page.contains("the-last-line"));
    assert!(page.contains("left out of this site"));
}
