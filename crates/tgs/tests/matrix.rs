//! The three steps of a run whose agent holds no write token, as the GitHub
//! Actions matrix runs them, here against a local bare remote: `server
//! matrix` claims, `server run --claimed` works in a clone that cannot reach
//! the remote, `server handover` checks the artifacts and hands them over.
//! Missing and tampered artifacts included.

mod common;
#[path = "support/github.rs"]
mod github;
#[path = "support/loopback.rs"]
mod loopback;

use std::path::{Path, PathBuf};

use common::{run, script, TestEnv, TestRepo};
use serde_json::Value;

const WORK: &str = "echo \"pub fn f_$(basename \"$TGS_THOUGHT_DIR\" | tr - _)() {}\" >> src/lib.rs\nprintf '# Implementation\\n\\nDone.\\n' > \"$TGS_THOUGHT_DIR/implementation.md\"\ngit add -A && git commit -qm work\n";

fn queue<'e>(env: &'e TestEnv, n: usize) -> (TestRepo<'e>, Vec<String>) {
    let repo = env.repo("r");
    let dirs: Vec<String> = (0..n)
        .map(|i| {
            repo.approved(
                &format!("{:07x}-thought-{i}", 0xb000000 + i),
                &format!("Thought {i}"),
            )
        })
        .collect();
    // The agent fails thought-1, does the work for the others.
    let agent = env.path().join("agent.sh");
    script(
        &agent,
        &format!("#!/bin/bash\ncase \"$TGS_THOUGHT_DIR\" in *thought-1) echo cannot >&2; exit 4;; esac\nset -e\n{WORK}"),
    );
    repo.configure_and_scan(
        &format!(
            "server:\n  agent: test\n  kill_grace: 1s\n  agents:\n    test: {{ command: \"{}\" }}\n",
            agent.display()
        ),
        "thoughts",
    );
    (repo, dirs)
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

/// The implement job: a fresh clone whose remote is out of reach (no token).
fn implement(env: &TestEnv, repo: &TestRepo, ticket: &Value, out: &Path) -> (i32, String) {
    let name = format!("job-{}", ticket["claim_id"].as_str().unwrap());
    let job = repo.clone_as(&name);
    job.git(&["remote", "set-url", "origin", "/nonexistent/remote.git"]);
    let (code, _, err) = run(job
        .tgs()
        .env_remove("TGS_NOW")
        .args(["server", "run", "--claimed"])
        .arg(ticket["thought"].as_str().unwrap())
        .args(["--claim-id", ticket["claim_id"].as_str().unwrap()])
        .args(["--attempt", &ticket["attempt"].to_string()])
        .args(["--worker-id", ticket["worker"].as_str().unwrap()])
        .arg("--handover-out")
        .arg(out));
    let _ = env;
    (code, err)
}

#[test]
fn claim_implement_and_hand_over_without_a_token_in_the_agents_job() {
    let env = TestEnv::new();
    let (repo, dirs) = queue(&env, 5);
    let (code, out, err) = run(repo.tgs().args([
        "server",
        "matrix",
        "--max",
        "4",
        "--worker-id",
        "actions/77",
        "--json",
    ]));
    assert_eq!(code, 0, "{err}");
    let matrix: Value = serde_json::from_str(out.trim()).unwrap();
    let tickets = matrix["include"].as_array().unwrap().clone();
    assert_eq!(tickets.len(), 4);
    for (t, d) in tickets.iter().zip(&dirs) {
        assert_eq!(t["thought"], d.as_str());
        assert_eq!(t["attempt"], 1);
        assert_eq!(t["worker"], "actions/77");
        assert_eq!(entry(&repo, d)["status"], "in_progress");
    }
    assert_eq!(entry(&repo, &dirs[4])["status"], "queued", "--max 4");
    for (i, d) in dirs.iter().take(4).enumerate() {
        let line = format!("claimed {d} (Thought {i}) for actions/77, attempt 1");
        assert!(err.contains(&line), "each claim names its title: {err}");
    }
    assert_eq!(
        repo.state_subjects(1),
        ["chore(tgs): claim 4 for actions/77"],
        "one state change for the four claims"
    );
    let state_before = repo.state_commit_count();

    let arts = env.path().join("artifacts");
    let art = |i: usize| -> PathBuf { arts.join(format!("session-{i}")) };
    // 0: works. 1: the agent fails. 2: its job dies, no artifact. 3: works,
    // then its artifact is altered.
    for i in [0, 1, 3] {
        let (code, err) = implement(&env, &repo, &tickets[i], &art(i));
        assert_eq!(code, 0, "{i}: {err}");
    }
    assert_eq!(
        repo.state_commit_count(),
        state_before,
        "the implement jobs change nothing shared"
    );
    let branches = repo.git(&["ls-remote", "--heads", "origin", "tgs/*"]);
    assert_eq!(branches, "", "and push nothing");
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(art(0).join("session.json")).unwrap())
            .unwrap();
    assert_eq!(record["outcome"], "success");
    assert!(art(0).join("work.bundle").is_file());
    assert!(art(0).join("transcript.log.gz").is_file());
    assert!(
        !art(1).join("work.bundle").exists(),
        "no bundle of failed work"
    );
    // Tamper: another commit on top of what was recorded.
    tamper(&env, &repo, &art(3));

    let (code, out, err) = run(repo
        .tgs()
        .args(["server", "handover", "--no-pr", "--claims"])
        .arg(matrix.to_string())
        .arg(art(0))
        .arg(art(1))
        .arg(art(2))
        .arg(art(3)));
    assert_eq!(code, 0, "{out}{err}");
    let e0 = entry(&repo, &dirs[0]);
    assert_eq!(e0["status"], "completed", "{e0}");
    let pushed = repo.git(&["ls-remote", "origin", "refs/heads/tgs/b000000-thought-0"]);
    assert!(pushed.starts_with(e0["head"].as_str().unwrap()), "{pushed}");
    let e1 = entry(&repo, &dirs[1]);
    assert_eq!(e1["status"], "queued");
    assert!(
        e1["last_error"].as_str().unwrap().starts_with("failed: "),
        "{e1}"
    );
    let e2 = entry(&repo, &dirs[2]);
    assert_eq!(e2["status"], "queued");
    assert_eq!(e2["attempts"], 1);
    assert!(
        e2["last_error"]
            .as_str()
            .unwrap()
            .contains("left no artifact"),
        "{e2}"
    );
    assert!(
        e2.get("not_before").is_none(),
        "requeued now, not at lease expiry: {e2}"
    );
    let e3 = entry(&repo, &dirs[3]);
    assert_eq!(e3["status"], "queued");
    let last = e3["last_error"].as_str().unwrap();
    assert!(
        last.starts_with("rejected: ") && last.contains("altered"),
        "{last}"
    );
    let tampered = repo.git(&["ls-remote", "origin", "refs/heads/tgs/b000003-thought-3"]);
    assert_eq!(tampered, "", "altered work is not pushed");
    // The records: one metrics row per session (the missing one included), the transcripts kept.
    let metrics = repo.metrics_csv();
    assert_eq!(metrics.lines().count(), 5, "{metrics}");
    let kept = repo.state_files_under("tgs/server/transcripts");
    assert_eq!(
        kept.len(),
        3,
        "{:?}",
        kept.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    // Handing over again changes nothing: the claims are no longer held.
    let count = repo.state_commit_count();
    let (code, _, err) = run(repo
        .tgs()
        .args(["server", "handover", "--no-pr", "--claims"])
        .arg(matrix.to_string())
        .arg(art(0)));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("no longer held"), "{err}");
    assert_eq!(repo.state_commit_count(), count);
}

/// Re-make the artifact's bundle with a commit the session record does not name.
fn tamper(env: &TestEnv, repo: &TestRepo, art: &Path) {
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(art.join("session.json")).unwrap()).unwrap();
    let branch = record["branch"].as_str().unwrap();
    let base = record["base"].as_str().unwrap();
    let evil = repo.clone_as("evil");
    let out = evil.git_out(&[
        "fetch",
        "-q",
        art.join("work.bundle").to_str().unwrap(),
        &format!("+refs/heads/{branch}:refs/heads/{branch}"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    evil.git(&["checkout", "-q", branch]);
    evil.write(".github/workflows/evil.yml", "on: push\n");
    evil.commit_all("sneak a workflow in");
    std::fs::remove_file(art.join("work.bundle")).unwrap();
    evil.git(&[
        "bundle",
        "create",
        "-q",
        art.join("work.bundle").to_str().unwrap(),
        &format!("{base}..{branch}"),
    ]);
    let _ = env;
}

#[test]
fn a_forged_artifact_is_checked_again_as_a_session_would_be() {
    const TOKEN: &str = "ghs_handover_token_0123456789abcdef";
    let env = TestEnv::new();
    let (repo, dirs) = queue(&env, 1);
    let (_, out, _) = run(repo
        .tgs()
        .args(["server", "matrix", "--max", "1", "--worker-id", "w"]));
    let matrix: Value = serde_json::from_str(out.trim()).unwrap();
    let art = env.path().join("a0");
    let (code, err) = implement(&env, &repo, &matrix["include"][0], &art);
    assert_eq!(code, 0, "{err}");
    // Whoever controls the implement job re-makes the bundle with a workflow
    // and the hand-over job's token in it, and a record that matches.
    tamper(&env, &repo, &art);
    let evil = env.path().join("evil");
    std::fs::write(evil.join("leak.txt"), format!("token={TOKEN}\n")).unwrap();
    let g = |args: &[&str]| {
        let out = env.git_cmd(&evil).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    g(&["add", "-A"]);
    g(&["commit", "-qm", "more"]);
    let mut record: Value =
        serde_json::from_str(&std::fs::read_to_string(art.join("session.json")).unwrap()).unwrap();
    let branch = record["branch"].as_str().unwrap().to_owned();
    let base = record["base"].as_str().unwrap().to_owned();
    record["head"] = g(&["rev-parse", "HEAD"]).into();
    std::fs::write(art.join("session.json"), record.to_string()).unwrap();
    std::fs::remove_file(art.join("work.bundle")).unwrap();
    g(&[
        "bundle",
        "create",
        "-q",
        art.join("work.bundle").to_str().unwrap(),
        &format!("{base}..{branch}"),
    ]);
    let (code, _, err) = run(repo
        .tgs()
        .env("GITHUB_TOKEN", TOKEN)
        .args(["server", "handover", "--no-pr", "--claims"])
        .arg(matrix.to_string())
        .arg(&art));
    assert_eq!(code, 0, "{err}");
    let e = entry(&repo, &dirs[0]);
    let last = e["last_error"].as_str().unwrap();
    assert!(last.starts_with("rejected: "), "{last}");
    assert!(
        last.contains(".github/workflows/evil.yml"),
        "guardrails: {last}"
    );
    assert!(
        last.contains("leak.txt") && last.contains("GITHUB_TOKEN"),
        "secrets: {last}"
    );
    assert!(!last.contains(TOKEN), "{last}");
    assert_eq!(repo.git(&["ls-remote", "--heads", "origin", "tgs/*"]), "");
}

#[test]
fn a_corrupt_bundle_is_rejected_and_nothing_is_pushed() {
    let env = TestEnv::new();
    let (repo, dirs) = queue(&env, 1);
    let (_, out, _) = run(repo
        .tgs()
        .args(["server", "matrix", "--max", "1", "--worker-id", "w"]));
    let matrix: Value = serde_json::from_str(out.trim()).unwrap();
    let art = env.path().join("a0");
    let (code, err) = implement(&env, &repo, &matrix["include"][0], &art);
    assert_eq!(code, 0, "{err}");
    let bundle = art.join("work.bundle");
    let len = std::fs::metadata(&bundle).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&bundle)
        .unwrap();
    f.set_len(len / 2).unwrap();
    let (code, _, err) = run(repo
        .tgs()
        .args(["server", "handover", "--no-pr", "--claims"])
        .arg(matrix.to_string())
        .arg(&art));
    assert_eq!(code, 0, "{err}");
    let e = entry(&repo, &dirs[0]);
    let last = e["last_error"].as_str().unwrap();
    assert!(
        last.starts_with("rejected: ") && last.contains("bundle"),
        "{last}"
    );
    assert_eq!(repo.git(&["ls-remote", "--heads", "origin", "tgs/*"]), "");
}

#[test]
fn no_work_is_an_empty_matrix() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let (code, out, err) = run(repo.tgs().args(["server", "matrix", "--max", "3"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "{\"include\":[]}");
    // In Actions the matrix and its size are step outputs.
    let output = env.path().join("gh-output");
    let (code, _, err) = run(repo
        .tgs()
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", &output)
        .args(["server", "matrix", "--max", "3"]));
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&output).unwrap();
    assert!(
        text.contains("\n{\"include\":[]}\n") && text.starts_with("matrix<<"),
        "{text}"
    );
    assert!(text.contains("count<<") && text.contains("\n0\n"), "{text}");
}

/// The artifact's own claim and the state: what the claim job handed out.
fn claimed_and_implemented(env: &TestEnv, repo: &TestRepo) -> (Value, PathBuf) {
    let (_, out, _) = run(repo
        .tgs()
        .args(["server", "matrix", "--max", "1", "--worker-id", "w"]));
    let matrix: Value = serde_json::from_str(out.trim()).unwrap();
    let art = env.path().join("a0");
    let (code, err) = implement(env, repo, &matrix["include"][0], &art);
    assert_eq!(code, 0, "{err}");
    (matrix, art)
}

fn edit_record(art: &Path, edit: impl FnOnce(&mut Value)) {
    let path = art.join("session.json");
    let mut record: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut record);
    std::fs::write(&path, record.to_string()).unwrap();
}

fn hand_over(repo: &TestRepo, matrix: &Value, art: &Path, env: &[(&str, &str)]) {
    let mut c = repo.tgs();
    c.envs(env.iter().copied())
        .args(["server", "handover", "--no-pr", "--claims"])
        .arg(matrix.to_string())
        .arg(art);
    let (code, out, err) = run(&mut c);
    assert_eq!(code, 0, "{out}{err}");
}

/// The record is data, never a source of paths or commits: a transcript
/// path naming another file is not read (the transcript is the artifact's
/// own file, redacted again), and a `base` moved onto the offending commit
/// does not hide it from the checks.
#[test]
fn a_record_names_no_file_and_no_base_that_tgs_believes() {
    const TOKEN: &str = "ghs_record_token_0123456789abcdef";
    let env = TestEnv::new();
    let (repo, dirs) = queue(&env, 1);
    let (matrix, art) = claimed_and_implemented(&env, &repo);
    // A file holding the hand-over job's token, named by the record.
    let secret = env.path().join("environ");
    std::fs::write(&secret, format!("GITHUB_TOKEN={TOKEN}\n")).unwrap();
    std::fs::remove_file(art.join("transcript.log.gz")).unwrap();
    // The work adds a workflow after the base; the record's base says the
    // workflow's commit is where the work started.
    tamper(&env, &repo, &art);
    let evil = env.path().join("evil");
    let workflow_commit = env
        .git_cmd(&evil)
        .args(["rev-parse", "HEAD"])
        .output()
        .unwrap();
    let workflow_commit = String::from_utf8_lossy(&workflow_commit.stdout)
        .trim()
        .to_owned();
    std::fs::write(evil.join("more.txt"), "more\n").unwrap();
    for args in [&["add", "-A"][..], &["commit", "-qm", "more"]] {
        assert!(env.git_cmd(&evil).args(args).status().unwrap().success());
    }
    let head = env
        .git_cmd(&evil)
        .args(["rev-parse", "HEAD"])
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    let mut base = String::new();
    edit_record(&art, |r| {
        base = r["base"].as_str().unwrap().to_owned();
        r["transcript"] = secret.to_str().unwrap().into();
        r["base"] = workflow_commit.clone().into();
        r["head"] = head.clone().into();
    });
    let branch = "tgs/b000000-thought-0";
    std::fs::remove_file(art.join("work.bundle")).unwrap();
    let bundled = env
        .git_cmd(&evil)
        .args(["bundle", "create", "-q"])
        .arg(art.join("work.bundle"))
        .arg(format!("{base}..{branch}"))
        .status()
        .unwrap();
    assert!(bundled.success());
    hand_over(&repo, &matrix, &art, &[("GITHUB_TOKEN", TOKEN)]);
    let e = entry(&repo, &dirs[0]);
    let last = e["last_error"].as_str().unwrap();
    assert!(
        last.starts_with("rejected: ") && last.contains(".github/workflows/evil.yml"),
        "the workflow is seen from tgs's own base: {last}"
    );
    assert_eq!(repo.git(&["ls-remote", "--heads", "origin", "tgs/*"]), "");
    // Whatever the state keeps of the session's transcript, the named file
    // is not in it.
    let (_, out, err) = run(repo.tgs().args(["server", "logs", &dirs[0], "--raw"]));
    assert!(
        !out.contains(TOKEN) && !out.contains("GITHUB_TOKEN="),
        "{out}{err}"
    );
}

/// Numbers and conditions a record reports are believed only within
/// bounds: a cost of 1e300 is not counted (the state stays readable for
/// every command), and a provider "unavailable" from an artifact pauses
/// the agent for an hour at most, not until a human resumes it.
#[test]
fn a_records_figures_and_provider_are_bounded() {
    let env = TestEnv::new();
    let (repo, dirs) = queue(&env, 2);
    let (matrix, art) = claimed_and_implemented(&env, &repo);
    edit_record(&art, |r| {
        r["stats"]["cost_usd"] = serde_json::json!(1e300);
        r["stats"]["input_tokens"] = serde_json::json!(u64::MAX);
        r["outcome"] = "unavailable".into();
        r["reason"] = "credit\n::error::forged".into();
        r["provider"] = serde_json::json!(["unavailable", "Credit balance is too low", null]);
        r["branch"] = Value::Null;
        r["head"] = Value::Null;
        r["refund"] = true.into();
    });
    hand_over(&repo, &matrix, &art, &[]);
    let e = entry(&repo, &dirs[0]);
    assert!(e.get("cost_usd").is_none_or(Value::is_null), "{e}");
    let pause = &repo.remote_backlog()["pauses"]["test"];
    assert!(pause["until"].is_string(), "a bounded pause: {pause}");
    let until: jiff::Timestamp = pause["until"].as_str().unwrap().parse().unwrap();
    let since: jiff::Timestamp = pause["since"].as_str().unwrap().parse().unwrap();
    assert!(
        until.duration_since(since) <= jiff::SignedDuration::from_hours(1),
        "{pause}"
    );
    assert!(
        !e["last_error"].as_str().unwrap_or_default().contains('\n'),
        "{e}"
    );
    for args in [
        &["server", "status"][..],
        &["server", "backlog", "validate"],
    ] {
        let (code, out, err) = run(repo.tgs().args(args));
        assert_eq!(code, 0, "{args:?}: {out}{err}");
    }
}

/// Workflow commands after newlines, in every text field of a record.
const FORGED: &str =
    "x\n::set-output name=x::y\n::add-mask::foo\n::error::pwned\n::stop-commands::tok\nend";

/// Lines of `log` (a job's stdout or stderr in GitHub Actions) that the
/// runner would execute and that tgs did not write on purpose: tgs writes
/// groups, annotations with a title, masks and a stop-commands block around
/// a transcript (whose lines are skipped), never anything else.
fn foreign_workflow_commands(log: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut stopped: Option<String> = None;
    for line in log.lines() {
        let line = line.trim_start();
        if let Some(end) = &stopped {
            if line == end {
                stopped = None;
            }
            continue;
        }
        let Some(cmd) = line.strip_prefix("::") else {
            continue;
        };
        if let Some(token) = cmd.strip_prefix("stop-commands::tgs-") {
            stopped = Some(format!("::tgs-{token}::"));
            continue;
        }
        let own = cmd.starts_with("group::")
            || cmd == "endgroup::"
            || ["error", "warning", "notice"]
                .iter()
                .any(|l| cmd.starts_with(&format!("{l} title=tgs::")))
            || cmd.starts_with("add-mask::") && !FORGED.contains(line);
        if !own {
            out.push(line);
        }
    }
    out
}

/// A record's text reaches the hand-over job's log as text: a reason (and
/// the provider's words, the agent's name, the session id) with workflow
/// commands after newlines starts no line of it with `::`, except what tgs
/// writes itself.
#[test]
fn a_records_text_never_becomes_a_workflow_command() {
    let env = TestEnv::new();
    let (repo, dirs) = queue(&env, 1);
    let (matrix, art) = claimed_and_implemented(&env, &repo);
    edit_record(&art, |r| {
        r["outcome"] = "failed".into();
        r["reason"] = FORGED.into();
        r["stats"]["agent"] = FORGED.into();
        r["stats"]["session_id"] = FORGED.into();
        r["provider"] = serde_json::json!(["rate_limited", FORGED, 60]);
        r["branch"] = Value::Null;
        r["head"] = Value::Null;
    });
    let (code, out, err) = run(repo
        .tgs()
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", env.path().join("gh-output"))
        .env("GITHUB_STEP_SUMMARY", env.path().join("gh-summary"))
        .args(["server", "handover", "--no-pr", "--claims"])
        .arg(matrix.to_string())
        .arg(&art));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("pwned"),
        "the reason is shown (as text): {err}"
    );
    for (name, log) in [("stdout", &out), ("stderr", &err)] {
        let foreign = foreign_workflow_commands(log);
        assert!(foreign.is_empty(), "{name}: {foreign:?}\n{log}");
    }
    let e = entry(&repo, &dirs[0]);
    assert!(e["last_error"].as_str().unwrap().contains("pwned"), "{e}");
}

/// A record's question is the agent's word like the rest: one carrying
/// the hand-over job's token is recorded masked, one too long (or a
/// `needs_input` without any) fails the attempt instead of waiting on it.
#[test]
fn a_records_question_is_bounded_and_masked() {
    const TOKEN: &str = "ghs_question_record_token_0123456789";
    // The question, handed over by a job holding `secret` (name, value).
    let asked_holding = |question: Value, secret: (&str, &str)| {
        let env = TestEnv::new();
        let (repo, dirs) = queue(&env, 1);
        let (matrix, art) = claimed_and_implemented(&env, &repo);
        edit_record(&art, |r| {
            r["outcome"] = "needs_input".into();
            r["reason"] = "a question".into();
            r["question"] = question;
            r["branch"] = Value::Null;
            r["head"] = Value::Null;
        });
        hand_over(&repo, &matrix, &art, &[secret]);
        entry(&repo, &dirs[0])
    };
    let asked = |question: Value| asked_holding(question, ("GITHUB_TOKEN", TOKEN));
    let e = asked(format!("Which port?\x1b[2J ours is {TOKEN}").into());
    assert_eq!(e["status"], "needs_input", "{e}");
    let q = e["questions"][0]["text"].as_str().unwrap();
    assert!(
        q.starts_with("Which port?") && !q.contains(TOKEN) && !q.contains('\x1b'),
        "{q}"
    );
    // Masked again by the hand-over job, whose mask is longer than its short
    // secret: the question is kept within its bound, not beyond it.
    let question = "pin 7654321 ".repeat(16 * 1024 / 12);
    let e = asked_holding(question.into(), ("PIN_TOKEN", "7654321"));
    assert_eq!(e["status"], "needs_input", "{e}");
    let q = e["questions"][0]["text"].as_str().unwrap();
    assert!(
        q.len() <= 16 * 1024 && !q.contains("7654321"),
        "{}",
        q.len()
    );
    for (question, why) in [
        (
            Value::from("x".repeat(20_000)),
            "its question was not taken: the question is 20000 bytes",
        ),
        (Value::Null, "holds none"),
    ] {
        let e = asked(question);
        assert_eq!(e["status"], "queued", "{e}");
        let last = e["last_error"].as_str().unwrap();
        assert!(last.starts_with("failed: ") && last.contains(why), "{last}");
        assert!(e.get("questions").is_none_or(Value::is_null), "{e}");
    }
}

/// An artifact whose record cannot be read is said to be unreadable, not
/// missing: its job did leave one.
#[test]
fn an_unreadable_record_is_told_apart_from_a_missing_artifact() {
    let env = TestEnv::new();
    let (repo, dirs) = queue(&env, 1);
    let (matrix, art) = claimed_and_implemented(&env, &repo);
    let claim_id = matrix["include"][0]["claim_id"].as_str().unwrap();
    let named = env.path().join(format!("tgs-handover-{claim_id}"));
    std::fs::rename(&art, &named).unwrap();
    std::fs::write(named.join("session.json"), "x".repeat(2 << 20)).unwrap();
    hand_over(&repo, &matrix, &named, &[]);
    let e = entry(&repo, &dirs[0]);
    let last = e["last_error"].as_str().unwrap();
    assert!(
        last.starts_with("crashed: the session's artifact could not be read (")
            && last.contains("too large to be a session record"),
        "{last}"
    );
}

/// One repository for [`one_path`]: one approved thought, `agent` its
/// agent (2 s session timeout), scanned.
fn one_thought<'e>(env: &'e TestEnv, name: &str, agent: &str) -> (TestRepo<'e>, String) {
    let repo = env.repo(name);
    let dir = repo.approved("0c0ffee-one-path", "One path");
    repo.configure_and_scan(
        &format!(
            "server:\n  agent: test\n  kill_grace: 1s\n  session_timeout: 2s\n  max_attempts: 3\n  agents:\n    test: {{ command: \"{agent}\" }}\n"
        ),
        "thoughts",
    );
    (repo, dir)
}

/// What the state says of a session, without what differs by run (times,
/// ids, commits, who).
fn as_recorded(repo: &TestRepo, dir: &str) -> (Value, String, Vec<String>) {
    let mut e = entry(repo, dir);
    let o = e.as_object_mut().unwrap();
    for k in [
        "queued_at",
        "updated_at",
        "not_before",
        "claim_id",
        "claimed_by",
        "claimed_at",
        "lease_expires_at",
        "started_at",
        "completed_at",
        "head",
    ] {
        o.remove(k);
    }
    if let Some(w) = o.get_mut("wip").and_then(Value::as_object_mut) {
        for k in ["head", "base", "at"] {
            w.remove(k);
        }
    }
    if let Some(qs) = o.get_mut("questions").and_then(Value::as_array_mut) {
        for q in qs.iter_mut().filter_map(Value::as_object_mut) {
            q.remove("asked_at");
        }
    }
    let metrics = repo.metrics_csv();
    let outcome = metrics.lines().nth(1).unwrap_or_default().to_owned();
    let header: Vec<&str> = metrics
        .lines()
        .next()
        .unwrap_or_default()
        .split(',')
        .collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let row: Vec<&str> = outcome.split(',').collect();
    let kept = format!("{} {}", row[col("outcome")], row[col("sandbox")]);
    let audit = repo
        .audit()
        .iter()
        .map(|a| {
            format!(
                "{} {}",
                a["action"].as_str().unwrap_or_default(),
                a["reason"].as_str().unwrap_or_default()
            )
        })
        .collect();
    (e, kept, audit)
}

/// `tgs server run` takes the matrix's steps in one process (claim,
/// implement, hand over): a session ends the same, in the state, the
/// metrics and the audit, whichever way it ran. Before, the matrix lost
/// what the local run said of a work in progress it would not keep.
#[test]
fn a_session_ends_the_same_in_server_run_and_in_the_matrix() {
    let secret =
        "echo 'token = \"ghp_0123456789abcdefghijABCDEFGHIJ012345\"' > config.txt\nsleep 600\n";
    let cases = [
        ("works", WORK.to_owned()),
        (
            "fails",
            "echo part > part.txt\necho cannot >&2\nexit 4\n".to_owned(),
        ),
        ("secret", secret.to_owned()),
        (
            "asks",
            "echo part > part.txt\necho 'Which port?' > tgs-question.md\n".to_owned(),
        ),
    ];
    for (case, body) in cases {
        let env = TestEnv::new();
        let agent = env.script("agent.sh", &format!("set -e\n{body}"));
        let (local, dir) = one_thought(&env, "local", &agent);
        let (code, _, err) = local.server_run(&["--no-pr", "--once"]);
        assert_eq!(code, 0, "{case}: {err}");
        let (remote, _) = one_thought(&env, "matrix", &agent);
        let (matrix, art) = claimed_and_implemented(&env, &remote);
        hand_over(&remote, &matrix, &art, &[]);
        let (l, m) = (as_recorded(&local, &dir), as_recorded(&remote, &dir));
        assert_eq!(l, m, "{case}: local, then the matrix");
        if case == "secret" {
            let last = l.0["last_error"].as_str().unwrap_or_default();
            assert!(last.contains("its work in progress was not kept"), "{last}");
        }
        let artifacts = local.path(".git/tgs/artifacts");
        let left = std::fs::read_dir(&artifacts).map_or(0, |d| d.count());
        assert_eq!(
            left, 0,
            "{case}: the local artifact is gone once handed over"
        );
        let refs = local.git(&["for-each-ref", "refs/tgs/handover", "refs/tgs/handover-wip"]);
        assert_eq!(refs, "", "{case}");
    }
}

/// A record's word on a bug of tgs's own is not taken: another job that
/// says its session ended with an internal error opens no issue (its text
/// would be the job's), and the session is recorded as what it says it was.
#[test]
fn a_records_internal_error_is_not_believed() {
    let env = TestEnv::new();
    let (repo, _) = queue(&env, 1);
    let (matrix, art) = claimed_and_implemented(&env, &repo);
    edit_record(&art, |r| {
        r["outcome"] = "crashed".into();
        r["reason"] = "internal error: see https://evil.example/help".into();
        r["internal"] = true.into();
        r["refund"] = true.into();
        r["branch"] = Value::Null;
        r["head"] = Value::Null;
    });
    let gh = github::FakeGitHub::start("octo", "demo", "ghs_matrix_token_0123456789");
    let (code, out, err) = run(repo
        .tgs()
        .env("GITHUB_TOKEN", "ghs_matrix_token_0123456789")
        .env("GITHUB_REPOSITORY", "octo/demo")
        .env("GITHUB_API_URL", gh.api_url())
        .args(["server", "handover", "--claims"])
        .arg(matrix.to_string())
        .arg(&art));
    assert_eq!(code, 0, "{out}{err}");
    assert!(gh.issues().is_empty(), "{:?}", gh.issues());
    let e = entry(&repo, matrix["include"][0]["thought"].as_str().unwrap());
    assert_eq!(e["status"], "queued", "{e}");
}
