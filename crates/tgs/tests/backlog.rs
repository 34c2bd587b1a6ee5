//! `tgs server backlog ...` and `tgs server scan` on real repositories.

mod common;

use common::{run, TestEnv, TestRepo};
use serde_json::{json, Value};

const A: &str = "tgs/thoughts/aaaaaaa-first";
const B: &str = "tgs/thoughts/bbbbbbb-second";
const C: &str = "tgs/thoughts/ccccccc-third";

fn three(env: &TestEnv) -> TestRepo<'_> {
    let repo = env.repo("r");
    repo.approved("aaaaaaa-first", "First thing");
    repo.approved("bbbbbbb-second", "Second thing");
    repo.approved("ccccccc-third", "Third thing");
    repo.write("CLAUDE.md", "be careful\n");
    repo.write("tgs/agentops/AGENTOPS.md", "workflow\n");
    repo.publish("thoughts");
    repo
}

fn ok(repo: &TestRepo, args: &[&str]) -> String {
    let (code, out, err) = run(repo.tgs().args(args));
    assert_eq!(code, 0, "tgs {args:?} failed: {err}");
    out
}

fn dirs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| e["dir"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn add_normalizes_and_commits_only_the_backlog() {
    let env = TestEnv::new();
    let repo = three(&env);
    // The user has work in progress: a staged file and an unstaged change.
    repo.write("staged.txt", "staged\n");
    repo.git(&["add", "staged.txt"]);
    repo.write("README.md", "# Demo project\nlocal edit\n");
    let before = repo.head();

    ok(&repo, &["server", "backlog", "add", "aaaaaaa-first"]);
    ok(
        &repo,
        &[
            "server",
            "backlog",
            "add",
            "./tgs/thoughts/bbbbbbb-second/",
            "--priority",
            "5",
        ],
    );
    let out = run(env.tgs_cmd(&repo.path("tgs/thoughts")).args([
        "server",
        "backlog",
        "add",
        "ccccccc-third/",
    ]));
    assert_eq!(out.0, 0, "{}", out.2);

    let b = repo.backlog();
    assert_eq!(b["version"], "1");
    assert_eq!(dirs(&b["thoughts"]), [A, B, C]);
    assert_eq!(b["thoughts"][0]["title"], "First thing");
    assert_eq!(b["thoughts"][0]["status"], "queued");
    assert_eq!(b["thoughts"][0]["added_at"], common::NOW);
    assert_eq!(b["thoughts"][0]["started_at"], Value::Null);
    assert_eq!(b["thoughts"][1]["priority"], 5);

    // Three commits on the state branch of its own, an orphan history that
    // holds only the state files; the user's branch is neither moved nor pushed.
    assert_eq!(repo.head(), before);
    assert_eq!(repo.git(&["rev-parse", "origin/main"]), before);
    assert_eq!(repo.state_commit_count(), 3);
    let r = repo.state_ref();
    assert_eq!(
        repo.git(&["rev-list", "--count", "--max-parents=0", &r]),
        "1"
    );
    let files = repo.git(&["ls-tree", "-r", "--name-only", &r]);
    assert_eq!(
        files,
        "tgs/server/audit/2026-01/15.jsonl\ntgs/server/backlog.json"
    );
    assert_eq!(repo.state_subjects(1), [format!("chore(tgs): add {C}")]);
    assert_eq!(
        repo.git(&["branch", "--list", common::STATE]),
        "",
        "no local branch is made for the state"
    );
    // The user's staged file is still staged (and not committed), the edit still there.
    assert_eq!(repo.git(&["diff", "--cached", "--name-only"]), "staged.txt");
    assert_eq!(repo.git(&["diff", "--name-only"]), "README.md");
    assert!(repo
        .git(&["status", "--porcelain"])
        .lines()
        .all(|l| !l.contains("backlog.json")));

    // Adding again changes nothing and says so.
    let (code, _, err) = run(repo.tgs().args(["server", "backlog", "add", A]));
    assert_eq!(code, 0);
    assert!(err.contains("already in the backlog"), "{err}");
    assert_eq!(repo.state_commit_count(), 3);

    // The file is deterministic: 2-space JSON with a trailing newline.
    let text = repo.state_file("tgs/server/backlog.json").unwrap();
    assert!(text.starts_with("{\n  \"version\": \"1\",\n  \"thoughts\": [\n    {\n      \"dir\""));
    assert!(text.ends_with("}\n"));
}

#[test]
fn add_rejects_bad_dirs_and_leaves_the_file_alone() {
    let env = TestEnv::new();
    let repo = three(&env);
    ok(&repo, &["server", "backlog", "add", A]);
    let text = repo.state_file("tgs/server/backlog.json");
    // Committed here, not pushed: not work for anyone yet.
    repo.approved("fffffff-local-only", "Local only");
    repo.commit_all("local thought");
    repo.write("tgs/thoughts/ddddddd-not-committed/research.md", "x\n");
    repo.write("tgs/1234567-legacy/plan.md", "x\n");
    std::os::unix::fs::symlink("/etc", repo.path("tgs/thoughts/eeeeeee-symlink")).unwrap();
    for (arg, needle) in [
        (
            "tgs/thoughts/9999999-missing",
            "does not exist on origin/main",
        ),
        ("ddddddd-not-committed", "commit its research and plan"),
        (
            "fffffff-local-only",
            "is committed here but not on origin/main",
        ),
        ("src", "not a thought name"),
        ("src/aaaaaaa-first", "outside the thoughts folder"),
        ("../r.git", "outside the repository"),
        ("/etc/passwd", "outside the repository"),
        ("tgs/thoughts/not-hex", "not a thought name"),
        (
            "tgs/thoughts/aaaaaaa-first/../../../x",
            "outside the thoughts folder",
        ),
        ("eeeeeee-symlink", "does not exist on origin/main"),
    ] {
        // One bad argument among good ones: nothing is added.
        let (code, _, err) = run(repo.tgs().args(["server", "backlog", "add", B, arg]));
        assert_eq!(code, 2, "{arg}: {err}");
        assert!(err.contains(needle), "{arg}: {err}");
        assert_eq!(repo.state_file("tgs/server/backlog.json"), text, "{arg}");
        assert_eq!(repo.state_commit_count(), 1, "{arg}");
    }
}

#[test]
fn list_show_priority_remove() {
    let env = TestEnv::new();
    let repo = three(&env);
    ok(&repo, &["server", "backlog", "add", A, B]);
    ok(&repo, &["server", "backlog", "add", C, "--priority", "10"]);
    ok(
        &repo,
        &["server", "backlog", "priority", "bbbbbbb-second", "-1"],
    );
    let v: Value =
        serde_json::from_str(&ok(&repo, &["server", "backlog", "list", "--json"])).unwrap();
    assert_eq!(
        dirs(&v),
        [C, A, B],
        "priority high to low, then order of addition"
    );
    let table = ok(&repo, &["server", "backlog", "list"]);
    let header = table.lines().next().unwrap();
    for col in [
        "DIR",
        "TITLE",
        "STATUS",
        "PRIORITY",
        "ATTEMPTS",
        "ADDED",
        "CLAIMED BY",
        "PR",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert!(table.lines().nth(1).unwrap().starts_with(C));
    let shown: Value =
        serde_json::from_str(&ok(&repo, &["server", "backlog", "show", A, "--json"])).unwrap();
    assert_eq!(shown["dir"], A);
    assert_eq!(shown["title"], "First thing");
    ok(&repo, &["server", "backlog", "remove", A]);
    let v: Value = serde_json::from_str(&ok(
        &repo,
        &["server", "backlog", "list", "--json", "--status", "queued"],
    ))
    .unwrap();
    assert_eq!(dirs(&v), [C, B]);
    assert_eq!(repo.state_subjects(1), [format!("chore(tgs): remove {A}")]);
    let (code, _, err) = run(repo.tgs().args(["server", "backlog", "show", A]));
    assert_eq!(code, 2);
    assert!(err.contains("not in the backlog"), "{err}");
    let (code, _, _) = run(repo
        .tgs()
        .args(["server", "backlog", "list", "--status", "nope"]));
    assert_eq!(code, 2);
}

#[test]
fn entries_are_named_by_a_unique_slug() {
    let env = TestEnv::new();
    let repo = three(&env);
    repo.approved("ddddddd-third-thing", "Third thing again");
    repo.approved("eeeeeee-third-thing", "Third thing once more");
    repo.publish("more");
    ok(&repo, &["server", "backlog", "add", A, B, C]);
    // Every command that names an entry takes its slug alone.
    ok(&repo, &["server", "backlog", "priority", "third", "5"]);
    assert_eq!(repo.backlog()["thoughts"][2]["priority"], 5);
    let shown: Value = serde_json::from_str(&ok(
        &repo,
        &["server", "backlog", "show", "second/", "--json"],
    ))
    .unwrap();
    assert_eq!(shown["dir"], B);
    let next: Value = serde_json::from_str(&ok(
        &repo,
        &["server", "backlog", "next", "--thought", "first", "--json"],
    ))
    .unwrap();
    assert_eq!(next["dir"], A);
    ok(&repo, &["server", "backlog", "fail", "first"]);
    ok(&repo, &["server", "backlog", "retry", "first"]);
    let (code, _, err) = run(repo.tgs().args(["server", "logs", "first"]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("{A} has no session transcript")),
        "{err}"
    );
    ok(&repo, &["server", "backlog", "remove", "first"]);
    assert_eq!(dirs(&repo.backlog()["thoughts"]), [B, C]);
    // A slug two entries share names neither: exit 2, both listed.
    ok(
        &repo,
        &[
            "server",
            "backlog",
            "add",
            "ddddddd-third-thing",
            "eeeeeee-third-thing",
        ],
    );
    let text = repo.state_file("tgs/server/backlog.json");
    for cmd in [
        &["priority", "third-thing", "1"][..],
        &["remove", "third-thing"],
    ] {
        let (code, _, err) = run(repo.tgs().args(["server", "backlog"]).args(cmd));
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains("\"third-thing\" is the slug of 2 backlog entries: tgs/thoughts/ddddddd-third-thing, tgs/thoughts/eeeeeee-third-thing"),
            "{err}"
        );
        assert_eq!(repo.state_file("tgs/server/backlog.json"), text);
    }
    let (code, _, err) = run(repo.tgs().args(["server", "backlog", "show", "fourth"]));
    assert_eq!(code, 2);
    assert!(
        err.contains("no backlog entry has the directory, name or slug \"fourth\""),
        "{err}"
    );
}

#[test]
fn list_columns_line_up_with_wide_titles() {
    use unicode_width::UnicodeWidthStr;
    let env = TestEnv::new();
    let repo = env.repo("r");
    repo.approved("aaaaaaa-cjk", "日本語のタイトル");
    repo.approved("bbbbbbb-emoji", "Ship it 🚀 now");
    repo.approved("ccccccc-plain", "Plain title");
    repo.approved(
        "ddddddd-long",
        "日本語のとても長いタイトルはテーブルの列に収まらないので切られます",
    );
    repo.publish("thoughts");
    ok(&repo, &["server", "scan"]);
    let table = ok(&repo, &["server", "backlog", "list"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 5, "{table}");
    let status_at: Vec<usize> = lines
        .iter()
        .map(|l| {
            let i = l.find("STATUS").or_else(|| l.find("queued")).unwrap();
            l[..i].width()
        })
        .collect();
    assert!(
        status_at.iter().all(|&w| w == status_at[0]),
        "{status_at:?}\n{table}"
    );
    // The long title is clipped to the column's 40 terminal columns.
    let long = lines.iter().find(|l| l.contains("ddddddd-long")).unwrap();
    let title = long
        .split("  ")
        .map(str::trim)
        .find(|c| c.ends_with('…'))
        .unwrap();
    assert!(title.width() <= 40 && title.width() >= 39, "{title}");
}

#[test]
fn next_claims_in_order_with_a_lease_and_context() {
    let env = TestEnv::new();
    let repo = three(&env);
    ok(&repo, &["server", "backlog", "add", A, B]);
    ok(&repo, &["server", "backlog", "add", C, "--priority", "3"]);
    let got: Value = serde_json::from_str(&ok(
        &repo,
        &["server", "backlog", "next", "--json", "--claimed-by", "w1"],
    ))
    .unwrap();
    assert_eq!(
        got,
        json!({
            "dir": C,
            "title": "Third thing",
            "context_files": [
                format!("{C}/README.md"),
                format!("{C}/research.md"),
                format!("{C}/plan.md"),
                "tgs/agentops/AGENTOPS.md",
                "CLAUDE.md",
                "README.md",
            ]
        })
    );
    let e = &repo.backlog()["thoughts"][2];
    assert_eq!(e["status"], "in_progress");
    assert_eq!(e["claimed_by"], "w1");
    assert_eq!(e["claimed_at"], common::NOW);
    assert_eq!(e["started_at"], common::NOW);
    assert_eq!(e["lease_expires_at"], "2026-01-15T18:00:00Z");
    assert_eq!(e["attempts"], 1);
    assert_eq!(
        repo.state_subjects(1),
        [format!("chore(tgs): claim {C} for w1")]
    );

    // Plain output: the dir, the title, the files.
    let out = ok(&repo, &["server", "backlog", "next"]);
    assert!(
        out.starts_with(&format!("dir: {A}\ntitle: First thing\ncontext_files:\n")),
        "{out}"
    );
    assert_eq!(
        repo.backlog()["thoughts"][0]["claimed_by"],
        "vm/tester".replace("vm", &hostname())
    );
    ok(&repo, &["server", "backlog", "next", "--lease", "30m"]);
    // Nothing left: null, exit 0, no commit.
    let count = repo.state_commit_count();
    assert_eq!(
        ok(&repo, &["server", "backlog", "next", "--json"]).trim(),
        "null"
    );
    assert_eq!(repo.state_commit_count(), count);

    // When the lease of the third claim (30m) has expired, and the 5 minutes
    // allowed for clock skew between workers have passed, another worker may
    // take it over.
    let later = repo
        .tgs()
        .env("TGS_NOW", "2026-01-15T12:36:00Z")
        .args(["server", "backlog", "next", "--json", "--claimed-by", "w2"])
        .output()
        .unwrap();
    assert!(later.status.success());
    let got: Value = serde_json::from_slice(&later.stdout).unwrap();
    assert_eq!(got["dir"], B);
    assert!(String::from_utf8_lossy(&later.stderr).contains("lease had expired"));
    assert_eq!(repo.backlog()["thoughts"][1]["attempts"], 2);
}

fn hostname() -> String {
    std::process::Command::new("hostname")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap()
}

#[test]
fn transitions_and_invalid_ones() {
    let env = TestEnv::new();
    let repo = three(&env);
    ok(&repo, &["server", "backlog", "add", A, B]);
    // Completing a queued entry is refused with the allowed actions named.
    let (code, _, err) = run(repo.tgs().args(["server", "backlog", "complete", A]));
    assert_eq!(code, 2);
    assert!(
        err.contains("it is queued") && err.contains("next"),
        "{err}"
    );
    ok(&repo, &["server", "backlog", "next"]);
    ok(&repo, &["server", "backlog", "next"]);
    let (code, _, _) = run(repo.tgs().args([
        "server",
        "backlog",
        "complete",
        A,
        "--pr-url",
        "javascript:alert(1)",
    ]));
    assert_eq!(code, 2);
    ok(
        &repo,
        &[
            "server",
            "backlog",
            "complete",
            A,
            "--pr-url",
            "https://github.com/o/r/pull/7",
        ],
    );
    ok(
        &repo,
        &["server", "backlog", "fail", B, "--reason", "tests failed"],
    );
    let b = repo.backlog();
    assert_eq!(b["thoughts"][0]["status"], "completed");
    assert_eq!(b["thoughts"][0]["pr_url"], "https://github.com/o/r/pull/7");
    assert_eq!(b["thoughts"][0]["completed_at"], common::NOW);
    assert_eq!(b["thoughts"][1]["status"], "failed");
    assert_eq!(b["thoughts"][1]["last_error"], "tests failed");
    for args in [["retry", A], ["fail", A], ["complete", A]] {
        let (code, _, err) = run(repo.tgs().args(["server", "backlog"]).args(args));
        assert_eq!(code, 2, "{args:?}");
        assert!(
            err.contains("it is completed") && err.contains("remove"),
            "{err}"
        );
    }
    ok(&repo, &["server", "backlog", "retry", B]);
    let b = repo.backlog();
    assert_eq!(b["thoughts"][1]["status"], "queued");
    assert_eq!(
        b["thoughts"][1].get("attempts"),
        None,
        "a retry starts a fresh budget"
    );
    assert_eq!(
        repo.state_subjects(3),
        [
            format!("chore(tgs): retry {B}"),
            format!("chore(tgs): fail {B}"),
            format!("chore(tgs): complete {A}")
        ]
    );
}

#[test]
fn scan_adds_approved_thoughts_not_yet_seen() {
    let env = TestEnv::new();
    let repo = three(&env);
    repo.thought("ddddddd-draft", &[("research.md", "r\n")]);
    repo.thought(
        "eeeeeee-done",
        &[
            ("research.md", "r\n"),
            ("plan.md", "p\n"),
            ("implementation.md", "done\n"),
        ],
    );
    repo.write(
        "tgs/7777777-legacy-approved/research.md",
        "# Research: Legacy one\n",
    );
    repo.write("tgs/7777777-legacy-approved/plan.md", "p\n");
    repo.publish("more");
    ok(&repo, &["server", "backlog", "add", A]);
    ok(&repo, &["server", "backlog", "next"]);
    ok(&repo, &["server", "backlog", "fail", A]);

    let count = repo.state_commit_count();
    let dry: Value =
        serde_json::from_str(&ok(&repo, &["server", "scan", "--dry-run", "--json"])).unwrap();
    let want = json!([
        {"dir": "tgs/7777777-legacy-approved", "title": "Legacy one"},
        {"dir": B, "title": "Second thing"},
        {"dir": C, "title": "Third thing"},
    ]);
    assert_eq!(dry, want);
    assert_eq!(
        repo.state_commit_count(),
        count,
        "--dry-run changes nothing"
    );
    let added: Value = serde_json::from_str(&ok(&repo, &["server", "scan", "--json"])).unwrap();
    assert_eq!(added, want);
    assert_eq!(
        repo.state_subjects(1),
        ["chore(tgs): scan added 3 thoughts"]
    );
    assert_eq!(
        repo.backlog()["thoughts"][0]["status"],
        "failed",
        "a failed entry is not re-added"
    );
    assert_eq!(ok(&repo, &["server", "scan", "--json"]).trim(), "[]");
    assert_eq!(repo.state_commit_count(), 4);
}

#[test]
fn go_prototype_and_hand_written_files() {
    let env = TestEnv::new();
    let repo = three(&env);
    // As the Go prototype wrote it: nulls, claimed_by/claimed_at, fractional timestamps; plus a field we do not know.
    repo.put_state(&[(
        "tgs/server/backlog.json",
        r#"{"version":"1","thoughts":[
{"dir":"tgs/thoughts/aaaaaaa-first","title":"First thing","priority":10,"status":"in_progress","added_at":"2025-10-22T10:00:00Z","started_at":"2025-10-22T11:00:00.5+02:00","completed_at":null,"claimed_by":"runner-1","claimed_at":"2025-10-22T09:00:00Z","owner":{"team":"core"}},
{"dir":"tgs/thoughts/bbbbbbb-second","title":"Second thing","priority":1,"status":"queued","added_at":"2025-10-22T10:00:00Z","started_at":null,"completed_at":null,"claimed_by":null,"claimed_at":null}
],"generated_by":"tgs-go"}"#,
    )]);
    let v: Value =
        serde_json::from_str(&ok(&repo, &["server", "backlog", "list", "--json"])).unwrap();
    assert_eq!(dirs(&v), [A, B]);
    let shown: Value =
        serde_json::from_str(&ok(&repo, &["server", "backlog", "show", A, "--json"])).unwrap();
    assert_eq!(
        shown["owner"],
        json!({"team": "core"}),
        "show prints the entry as stored"
    );
    assert_eq!(shown["started_at"], "2025-10-22T11:00:00.5+02:00");
    // The Go claim has no lease: it is taken to expire six hours after it was made.
    let (code, _, err) = run(repo.tgs().args(["server", "backlog", "validate"]));
    assert_eq!(code, 1);
    assert!(err.is_empty() || !err.contains("error:"), "{err}");
    // A write keeps unknown fields, top-level and per entry.
    ok(&repo, &["server", "backlog", "add", C]);
    let b = repo.backlog();
    assert_eq!(b["generated_by"], "tgs-go");
    assert_eq!(b["thoughts"][0]["owner"], json!({"team": "core"}));
    assert_eq!(b["thoughts"][0]["claimed_by"], "runner-1");
    assert_eq!(b["thoughts"][2]["dir"], C);
}

#[test]
fn corrupt_and_newer_files_are_never_overwritten() {
    let env = TestEnv::new();
    let repo = three(&env);
    let corrupt = "{\n  \"version\": \"1\",\n  \"thoughts\": [\n    {\"dir\": \"tgs/thoughts/aaaaaaa-first\",}\n  ]\n}\n";
    repo.put_state(&[("tgs/server/backlog.json", corrupt)]);
    for args in [
        vec!["server", "backlog", "add", B],
        vec!["server", "backlog", "list"],
        vec!["server", "backlog", "next"],
        vec!["server", "scan"],
    ] {
        let (code, _, err) = run(repo.tgs().args(&args));
        assert_eq!(code, 3, "{args:?}: {err}");
        assert!(err.contains("line 4, column"), "{err}");
        assert_eq!(repo.state_file("tgs/server/backlog.json").unwrap(), corrupt);
    }
    // validate says so as an error, with the place, and exits 3 like the rest.
    for fix in [&[][..], &["--fix"]] {
        let (code, out, err) = run(repo.tgs().args(["server", "backlog", "validate"]).args(fix));
        assert_eq!(code, 3, "{fix:?}: {out}{err}");
        assert!(
            err.starts_with("error: tgs/server/backlog.json: cannot read the file: line 4, column"),
            "{err}"
        );
        assert_eq!(out, "");
        assert_eq!(repo.state_file("tgs/server/backlog.json").unwrap(), corrupt);
    }
    let (code, out, _) = run(repo.tgs().args(["server", "backlog", "validate", "--json"]));
    assert_eq!(code, 3);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["problems"][0]["kind"], "unreadable");

    let newer = r#"{"version":"2","thoughts":[{"dir":"tgs/thoughts/aaaaaaa-first","title":"T","status":"queued","shiny":true}]}"#;
    repo.put_state(&[("tgs/server/backlog.json", newer)]);
    assert!(
        ok(&repo, &["server", "backlog", "list"]).contains(A),
        "a newer file is read"
    );
    let (code, _, err) = run(repo.tgs().args(["server", "backlog", "add", B]));
    assert_eq!(code, 3);
    assert!(err.contains("newer"), "{err}");
    assert_eq!(repo.state_file("tgs/server/backlog.json").unwrap(), newer);
}

#[test]
fn validate_reports_and_fixes() {
    let env = TestEnv::new();
    let repo = three(&env);
    repo.thought(
        "ddddddd-done",
        &[
            ("research.md", "r\n"),
            ("plan.md", "p\n"),
            ("implementation.md", "done\n"),
        ],
    );
    repo.publish("done");
    let entry = |dir: &str, status: &str, extra: Value| {
        let mut e = json!({"dir": dir, "title": "t", "priority": 0, "status": status, "added_at": "2026-01-01T00:00:00Z", "started_at": null, "completed_at": null});
        e.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        e
    };
    let file = json!({"version": "1", "thoughts": [
        entry(A, "queued", json!({})),
        entry(A, "queued", json!({})),
        entry("tgs/thoughts/9999999-gone", "queued", json!({})),
        entry("tgs/thoughts/ddddddd-done", "queued", json!({})),
        entry(B, "in_progress", json!({})),
        entry(C, "in_progress", json!({"claimed_by": "w", "lease_expires_at": "2026-01-15T11:00:00Z", "depends_on": ["tgs/thoughts/8888888-unknown"]})),
    ]});
    repo.put_state(&[(
        "tgs/server/backlog.json",
        &serde_json::to_string_pretty(&file).unwrap(),
    )]);
    let (code, out, _) = run(repo.tgs().args(["server", "backlog", "validate"]));
    assert_eq!(code, 1);
    for needle in [
        "tgs/thoughts/aaaaaaa-first: listed more than once",
        "tgs/thoughts/9999999-gone: the thought is not on origin/main",
        "tgs/thoughts/ddddddd-done: the thought is implemented but the entry is queued",
        "tgs/thoughts/bbbbbbb-second: in progress but claimed by nobody",
        "tgs/thoughts/ccccccc-third: in progress by w but the lease expired",
        "depends on tgs/thoughts/8888888-unknown, which is not in the backlog",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in\n{out}");
    }
    assert_eq!(out.lines().count(), 6, "{out}");
    let v: Value =
        serde_json::from_str(&run(repo.tgs().args(["server", "backlog", "validate", "--json"])).1)
            .unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["problems"].as_array().unwrap().len(), 6);

    let (code, out, _) = run(repo.tgs().args(["server", "backlog", "validate", "--fix"]));
    assert_eq!(code, 1, "the unknown dependency needs a human\n{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("fixed: ")).count(),
        5,
        "{out}"
    );
    // The implemented thought, completed with no pull request, is finished:
    // it moves from the live file to the archive.
    let b = repo.live_backlog();
    assert_eq!(dirs(&b["thoughts"]), [A, B, C]);
    assert_eq!(b["thoughts"][1]["status"], "queued");
    assert_eq!(b["thoughts"][2]["status"], "queued");
    let archived = repo.archived();
    assert_eq!(archived.len(), 1);
    assert_eq!(archived[0]["dir"], "tgs/thoughts/ddddddd-done");
    assert_eq!(archived[0]["status"], "completed");
    // Archived, it is still shown.
    let shown = ok(
        &repo,
        &[
            "--json",
            "server",
            "backlog",
            "show",
            "tgs/thoughts/ddddddd-done",
        ],
    );
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["status"], "completed", "{shown}");
    assert_eq!(
        repo.state_subjects(1),
        ["chore(tgs): repair the backlog (5 fixes)"]
    );
    let (_, out, _) = run(repo.tgs().args(["server", "backlog", "validate"]));
    assert_eq!(out.lines().count(), 1, "{out}");
}

/// A backlog holding A (queued) with `field` (raw JSON, after a comma)
/// and the file's own fields `top` (raw JSON, after a comma).
fn with_values(field: &str, top: &str) -> String {
    format!(
        "{{\"version\":\"1\",\"thoughts\":[{{\"dir\":\"{A}\",\"title\":\"First thing\",\"priority\":0,\"status\":\"queued\",\"added_at\":\"2026-01-01T00:00:00Z\"{field}}}{top}"
    )
}

/// One value tgs does not use as it is, in the state branch's backlog: every
/// command still reads the state (saying once that `validate --fix` repairs
/// it), `validate` names the entry, the field and what `--fix` sets it to,
/// `--fix` writes that, and afterwards nothing is left to say.
#[test]
fn one_bad_value_never_makes_the_state_unreadable() {
    let env = TestEnv::new();
    let repo = three(&env);
    let a = format!("{A}: ");
    let cases = [
        // The day's cost an earlier tgs let overflow (written as null).
        (
            with_values("", "],\"usage\":{\"day\":\"2026-01-15\",\"sessions\":1,\"cost_usd\":null}}"),
            "usage.cost_usd null is no number: --fix sets it to 1000000000.0".to_owned(),
        ),
        (
            with_values(",\"cost_usd\":-5", "]}"),
            format!("{a}cost_usd -5.0 is negative: --fix sets it to 0.0"),
        ),
        (
            with_values(",\"cost_usd\":\"NaN\"", "]}"),
            format!("{a}cost_usd \"NaN\" is no number: --fix removes it"),
        ),
        (
            with_values(",\"cost_usd\":1e300", "]}"),
            format!("{a}cost_usd 1e+300 is more than any cost (1e9 USD): --fix sets it to 1000000000.0"),
        ),
        (
            with_values(",\"started_at\":\"yesterday\"", "]}"),
            format!("{a}started_at \"yesterday\" is no time: --fix removes it"),
        ),
        (
            with_values(",\"attempts\":-1", "]}"),
            format!("{a}attempts -1 is no count: --fix sets it to 0"),
        ),
        (
            with_values(",\"attempts\":1e12", "]}"),
            format!("{a}attempts 1000000000000.0 is no count: --fix sets it to 1000000"),
        ),
        (
            with_values(",\"title\":\"First\\u001b]52;c;aGk=\\u0007\"", "]}"),
            format!("{a}title \"First\\u001b]52;c;aGk=\\u0007\" holds control characters: --fix sets it to \"First ]52;c;aGk= \""),
        ),
        (
            with_values("", ",{\"title\":\"Lost\",\"status\":\"queued\"}]}"),
            "entry 2 has no dir, so it names no thought: --fix removes the entry".to_owned(),
        ),
        (
            with_values("", "],\"pauses\":{\"test\":{\"kind\":\"rate_limited\",\"reason\":\"slow\"}}}"),
            "pauses.test.since is missing: --fix sets it to \"1970-01-01T00:00:00Z\"".to_owned(),
        ),
    ];
    for (text, problem) in cases {
        repo.put_state(&[("tgs/server/backlog.json", &text)]);
        let (code, _, err) = run(repo.tgs().args(["server", "status"]));
        assert_eq!(code, 0, "{text}: {err}");
        assert!(
            err.contains("`tgs server backlog validate --fix`"),
            "{text}: {err}"
        );
        let (code, out, _) = run(repo.tgs().args(["server", "backlog", "validate"]));
        assert_eq!((code, out.trim()), (1, problem.as_str()), "{text}");
        let (code, out, err) = run(repo.tgs().args(["server", "backlog", "validate", "--fix"]));
        assert_eq!(code, 0, "{text}: {out}{err}");
        let (_, fix) = problem.split_once(": --fix ").unwrap();
        let done = fix
            .replace("sets it to", "set to")
            .replace("removes the entry", "removed")
            .replace("removes it", "removed");
        assert!(
            out.contains("fixed: ") && out.contains(&done),
            "{text}: {out}"
        );
        for args in [
            &["server", "status"][..],
            &["server", "backlog", "validate"],
        ] {
            let (code, out, err) = run(repo.tgs().args(args));
            assert_eq!(code, 0, "{text}: {args:?}: {out}{err}");
            assert!(!err.contains("warning"), "{text}: {args:?}: {err}");
        }
    }
    let b = repo.live_backlog();
    assert_eq!(dirs(&b["thoughts"]), [A], "the entry without a dir is gone");
    assert_eq!(b["pauses"]["test"]["since"], "1970-01-01T00:00:00Z");
}

/// An unknown status is read as `failed` (nothing runs it until a human
/// retries it), listed by `validate --json` with its kind; and a change
/// made meanwhile by any command writes the safe values too, never one
/// that tgs would refuse.
#[test]
fn an_unknown_status_is_failed_until_a_human_retries_it() {
    let env = TestEnv::new();
    let repo = three(&env);
    repo.put_state(&[(
        "tgs/server/backlog.json",
        &with_values(",\"status\":\"done\",\"cost_usd\":-3", "]}"),
    )]);
    let v: Value =
        serde_json::from_str(&run(repo.tgs().args(["server", "backlog", "validate", "--json"])).1)
            .unwrap();
    let kinds: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["unknown_status", "invalid_value"], "{v}");
    assert_eq!(v["problems"][0]["dir"], A);
    assert_eq!(v["problems"][0]["fixable"], true);
    let (code, out, err) = run(repo.tgs().args(["server", "backlog", "next"]));
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains(A), "a failed entry is not claimed: {out}");
    ok(&repo, &["server", "backlog", "add", C]);
    let e = &repo.live_backlog()["thoughts"][0];
    assert_eq!(
        (e["status"].as_str(), e["cost_usd"].as_f64()),
        (Some("failed"), Some(0.0)),
        "{e}"
    );
    ok(&repo, &["server", "backlog", "retry", A]);
}

/// What `validate` prints of the file (a dir, a value) can never be read as
/// a workflow command in GitHub Actions.
#[test]
fn validate_prints_no_workflow_command_from_the_file() {
    let env = TestEnv::new();
    let repo = three(&env);
    let evil = "tgs/thoughts/9999999-x\n::error::pwned";
    let file = json!({"version": "1", "thoughts": [
        {"dir": evil, "status": "queued"},
        {"dir": evil, "status": "queued", "cost_usd": -1},
    ]});
    repo.put_state(&[("tgs/server/backlog.json", &file.to_string())]);
    for fix in [&[][..], &["--fix"]] {
        let (_, out, err) = run(repo
            .tgs()
            .env("GITHUB_ACTIONS", "true")
            .args(["server", "backlog", "validate"])
            .args(fix));
        assert!(out.contains("pwned"), "{fix:?}: {out}{err}");
        for line in out.lines().chain(err.lines()) {
            assert!(
                !line.trim_start().starts_with("::"),
                "{fix:?}: {line}\n{out}{err}"
            );
        }
    }
}

#[test]
fn no_commit_writes_the_working_tree_file_only() {
    let env = TestEnv::new();
    let repo = three(&env);
    ok(&repo, &["server", "backlog", "add", B]);
    let head = repo.head();
    ok(&repo, &["server", "backlog", "add", A, "--no-commit"]);
    assert_eq!(repo.head(), head);
    assert_eq!(dirs(&repo.worktree_backlog()["thoughts"]), [A]);
    // The shared state is not touched by it.
    assert_eq!(dirs(&repo.backlog()["thoughts"]), [B]);
    assert_eq!(repo.state_commit_count(), 1);
}
