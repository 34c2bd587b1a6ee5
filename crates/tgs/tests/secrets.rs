//! Nothing secret leaves through the work (issue 12): an agent that writes
//! its model key into a file, into the implementation summary or into its
//! streamed output gets nothing pushed, no pull request, and a transcript
//! without the key; the rejection names the file, the line and the rule,
//! never the value. And nothing unreviewed lands: `server.guardrails`.
//! Scripted stand-ins for the agent CLIs and a loopback GitHub, as in
//! field_reports.rs.

mod common;
#[path = "support/github.rs"]
mod github;
#[path = "support/loopback.rs"]
mod loopback;

use common::{run, script, TestEnv, TestRepo};
use github::FakeGitHub;
use serde_json::Value;

const TOKEN: &str = "ghs_secrets_test_token_0123456789";
/// The agent's model key: not of any well-known shape, so only knowing the
/// value finds it.
const KEY: &str = "sk-ant-test-Zq7Lr2Vx9Wm4Np8Ks3Jd6Hf1Gb5Tc0YaQe";
const A: &str = "tgs/thoughts/aaaaaaa-first";

/// Code, the summary and a commit, as an honest agent does.
const WORK: &str = "echo 'pub fn first() {}' >> src/lib.rs\nprintf '# Implementation\\n\\nDone.\\n' > \"$TGS_THOUGHT_DIR/implementation.md\"\ngit add -A && git commit -qm work\n";

/// One approved thought, queued, and a `claude` stand-in doing `work` and
/// printing `events` (stream-json lines) before its result.
fn lab<'e>(env: &'e TestEnv, work: &str, events: &str, extra: &str) -> TestRepo<'e> {
    let bin = env.path().join("claude");
    script(
        &bin,
        &format!(
            "#!/bin/bash\ncat > /dev/null\nset -e\n{work}\n\
             echo '{{\"type\":\"system\",\"subtype\":\"init\",\"session_id\":\"s1\",\"model\":\"fake\"}}'\n\
             {events}\n\
             echo '{{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"num_turns\":1,\"session_id\":\"s1\",\"result\":\"Done.\"}}'\n"
        ),
    );
    let repo = env.repo("r");
    repo.approved("aaaaaaa-first", "First");
    repo.write(
        "tgs/tgs.yml",
        &format!(
            "server:\n  agent: claude-code\n  max_attempts: 1\n  kill_grace: 1s\n{extra}  agents:\n    claude-code: {{ driver: claude-code, bin: {} }}\n",
            bin.display()
        ),
    );
    repo.publish("a thought");
    let (code, _, err) = run(repo.tgs().args(["server", "scan"]));
    assert_eq!(code, 0, "{err}");
    repo
}

/// `tgs server run` with the key in the environment and the loopback GitHub.
fn server_run(repo: &TestRepo, gh: &FakeGitHub, args: &[&str]) -> (i32, String, String) {
    run(repo
        .tgs()
        .env("ANTHROPIC_API_KEY", KEY)
        .env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_REPOSITORY", "octo/demo")
        .env("GITHUB_API_URL", gh.api_url())
        .args(["server", "run"])
        .args(args))
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

/// Every transcript of the run, concatenated.
fn transcripts(repo: &TestRepo) -> String {
    let mut all = String::new();
    if let Ok(dir) = std::fs::read_dir(repo.path("tgs/server/logs")) {
        for f in dir.flatten() {
            all.push_str(&std::fs::read_to_string(f.path()).unwrap_or_default());
        }
    }
    all
}

/// Fails without quoting `text`, which may hold the key.
fn assert_no_key(text: &str, what: &str) {
    assert!(
        !text.contains(KEY),
        "the key is in {what} (text not shown: it holds the key)"
    );
}

/// The rejection of a session whose branch holds the key: nothing pushed,
/// no pull request, the reason and the alert name the place and the rule.
fn assert_rejected_unpushed(repo: &TestRepo, gh: &FakeGitHub, out: &str, err: &str, place: &str) {
    assert_no_key(out, "stdout");
    assert_no_key(err, "stderr");
    let e = entry(repo, A);
    let last = e["last_error"].as_str().unwrap_or_default().to_owned();
    assert_no_key(&last, "last_error");
    assert_eq!(e["status"], "failed", "{e}");
    assert!(
        last.starts_with(&format!("rejected: secret: {place}")),
        "{last}"
    );
    assert!(last.contains("the value of ANTHROPIC_API_KEY"), "{last}");
    let pushed = repo.git(&["ls-remote", "origin", "refs/heads/tgs/aaaaaaa-first"]);
    assert!(pushed.is_empty(), "the branch was pushed: {pushed}");
    assert!(gh.pulls().is_empty(), "a pull request was opened");
    let issues = gh.issues();
    assert_eq!(issues.len(), 1, "one failure alert");
    assert_no_key(&issues[0].body, "the alert issue");
    assert!(
        issues[0]
            .body
            .contains(&format!("rejected: secret: {place}")),
        "{}",
        issues[0].body
    );
    for r in repo.audit() {
        assert_no_key(&r.to_string(), "the audit log");
    }
}

#[test]
fn a_key_written_into_a_new_file_is_never_pushed() {
    let env = TestEnv::new();
    let work = format!(
        "{WORK}echo \"key=$ANTHROPIC_API_KEY\" > config.env\ngit add -A && git commit -qm config\n"
    );
    let repo = lab(&env, &work, "", "");
    let gh = FakeGitHub::start("octo", "demo", TOKEN);
    let (code, out, err) = server_run(&repo, &gh, &["--thought", A]);
    assert_eq!(code, 1, "the thought failed for good");
    assert_rejected_unpushed(&repo, &gh, &out, &err, "config.env:1 (commit ");
}

#[test]
fn a_key_added_then_removed_is_still_in_the_history_and_never_pushed() {
    let env = TestEnv::new();
    // The final tree is clean; the first commit is not. Base64 of a larger
    // blob this time (what `echo ... | base64` gives).
    let work = format!(
        "{WORK}printf 'auth: %s\\n' \"$(printf 'user:%s' \"$ANTHROPIC_API_KEY\" | base64 -w0)\" > creds.yml\n\
         git add -A && git commit -qm creds\ngit rm -q creds.yml && git commit -qm 'remove creds'\n"
    );
    let repo = lab(&env, &work, "", "");
    let gh = FakeGitHub::start("octo", "demo", TOKEN);
    let (code, out, err) = server_run(&repo, &gh, &["--thought", A]);
    assert_eq!(code, 1);
    assert_rejected_unpushed(&repo, &gh, &out, &err, "creds.yml:1 (commit ");
    let last = entry(&repo, A)["last_error"].as_str().unwrap().to_owned();
    assert!(last.contains("base64"), "{last}");
}

#[test]
fn a_hex_encoded_key_is_never_pushed() {
    let env = TestEnv::new();
    let work = format!(
        "{WORK}printf 'blob = \"%s\"\\n' \"$(printf '%s' \"$ANTHROPIC_API_KEY\" | od -An -tx1 | tr -d ' \\n')\" > data.toml\n\
         git add -A && git commit -qm data\n"
    );
    let repo = lab(&env, &work, "", "");
    let gh = FakeGitHub::start("octo", "demo", TOKEN);
    let (code, out, err) = server_run(&repo, &gh, &["--thought", A]);
    assert_eq!(code, 1);
    assert_rejected_unpushed(&repo, &gh, &out, &err, "data.toml:1 (commit ");
    let last = entry(&repo, A)["last_error"].as_str().unwrap().to_owned();
    assert!(last.contains("hex-encoded"), "{last}");
}

#[test]
fn a_key_after_a_nul_in_a_commit_message_is_never_pushed() {
    let env = TestEnv::new();
    // `git commit` refuses a NUL in a message, but the object can be written
    // and is pushed whole; `git log`'s `%B` stops at the NUL.
    let work = format!(
        "{WORK}t=$(git rev-parse 'HEAD^{{tree}}')\np=$(git rev-parse HEAD)\n\
         c=$(printf 'tree %s\\nparent %s\\nauthor a <a@x> 1 +0000\\ncommitter a <a@x> 1 +0000\\n\\nfix\\0%s\\n' \"$t\" \"$p\" \"$ANTHROPIC_API_KEY\" \
         | git hash-object -t commit -w --literally --stdin)\n\
         git update-ref HEAD \"$c\"\n"
    );
    let repo = lab(&env, &work, "", "");
    let gh = FakeGitHub::start("octo", "demo", TOKEN);
    let (code, out, err) = server_run(&repo, &gh, &["--thought", A]);
    assert_eq!(code, 1);
    assert_rejected_unpushed(&repo, &gh, &out, &err, "the message of a commit:1 (commit ");
}

#[test]
fn a_key_in_the_implementation_summary_never_reaches_github() {
    let env = TestEnv::new();
    let work = "echo 'pub fn first() {}' >> src/lib.rs\nprintf '# Implementation\\n\\nDone. Tested with %s.\\n' \"$ANTHROPIC_API_KEY\" > \"$TGS_THOUGHT_DIR/implementation.md\"\ngit add -A && git commit -qm work\n";
    let repo = lab(&env, work, "", "");
    let gh = FakeGitHub::start("octo", "demo", TOKEN);
    let (code, out, err) = server_run(&repo, &gh, &["--thought", A]);
    assert_eq!(code, 1);
    assert_rejected_unpushed(
        &repo,
        &gh,
        &out,
        &err,
        &format!("{A}/implementation.md:3 (commit "),
    );
    for r in gh.requests() {
        assert_no_key(&format!("{r:?}"), "a request to GitHub");
    }
}

#[test]
fn a_token_in_the_pull_request_title_is_refused_before_it_is_sent() {
    // The branch itself is clean; what only the pull request carries is
    // checked by the hand-over: here the thought's title holds a token.
    let env = TestEnv::new();
    let shaped = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
    let bin = env.path().join("claude");
    script(
        &bin,
        &format!("#!/bin/bash\ncat > /dev/null\nset -e\n{WORK}\necho '{{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"num_turns\":1}}'\n"),
    );
    let repo = env.repo("r");
    repo.approved("aaaaaaa-first", &format!("Rotate {shaped}"));
    repo.write(
        "tgs/tgs.yml",
        &format!(
            "server:\n  agent: claude-code\n  max_attempts: 1\n  agents:\n    claude-code: {{ driver: claude-code, bin: {} }}\n",
            bin.display()
        ),
    );
    repo.publish("a thought");
    let (code, _, err) = run(repo.tgs().args(["server", "scan"]));
    assert_eq!(code, 0, "{err}");
    let gh = FakeGitHub::start("octo", "demo", TOKEN);
    let (_, _, err) = server_run(&repo, &gh, &["--thought", A]);
    assert!(gh.pulls().is_empty(), "a pull request was opened\n{err}");
    let last = entry(&repo, A)["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        last.starts_with("rejected: secret: the pull request's title:1: github-pat"),
        "{last}"
    );
}

#[test]
fn a_key_streamed_in_two_text_deltas_is_not_in_the_transcript() {
    let env = TestEnv::new();
    // Claude's stream-json with partial messages: the key's first 30
    // characters end one text_delta, the rest begins the next.
    let delta = |text: &str| {
        format!(
            "echo '{{\"type\":\"stream_event\",\"event\":{{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"'\"{text}\"'\"}}}},\"session_id\":\"s1\"}}'"
        )
    };
    let events = format!(
        "k=\"$ANTHROPIC_API_KEY\"\n{}\n{}\n{}",
        delta("The key is ${k:0:30}"),
        delta("${k:30} and that is all."),
        // And whole, in one event.
        delta("again: $k."),
    );
    let repo = lab(&env, WORK, &events, "");
    let gh = FakeGitHub::start("octo", "demo", TOKEN);
    let (code, _, err) = server_run(&repo, &gh, &["--thought", A, "--no-pr"]);
    assert_no_key(&err, "stderr");
    assert_eq!(code, 0);
    let log = transcripts(&repo);
    assert!(
        log.contains("text_delta"),
        "the transcript holds the events"
    );
    assert!(log.contains("and that is all."), "the text around is kept");
    assert_no_key(&log, "the transcript");
    assert!(
        !log.contains(&KEY[..30]),
        "the key's first 30 characters are in the transcript"
    );
    assert!(
        !log.contains(&KEY[30..]),
        "the rest of the key is in the transcript"
    );
    assert!(log.contains("[REDACTED]"));
    assert_eq!(entry(&repo, A)["status"], "completed");
}

#[test]
fn guardrails_reject_workflows_executables_links_out_and_size() {
    let env = TestEnv::new();
    let work = format!(
        "{WORK}mkdir -p .github/workflows scripts docs\necho 'on: push' > .github/workflows/ci.yml\n\
         printf '#!/bin/sh\\necho hi\\n' > scripts/run.sh && chmod +x scripts/run.sh\n\
         printf '#!/bin/sh\\n' > tool.sh && chmod +x tool.sh\n\
         ln -s /etc/passwd docs/passwd\nln -s ../../outside docs/up\n\
         for i in 1 2 3 4 5 6 7; do echo $i > docs/n$i.md; done\n\
         git add -A && git commit -qm more\n"
    );
    let repo = lab(
        &env,
        &work,
        "",
        "  guardrails:\n    allow_paths: ['src/**', 'tgs/thoughts/**', 'scripts/**', '.github/**', 'tool.sh']\n    executable_paths: ['scripts/**']\n    max_changed_files: 10\n",
    );
    let gh = FakeGitHub::start("octo", "demo", TOKEN);
    let (code, _, err) = server_run(&repo, &gh, &["--thought", A]);
    assert_eq!(code, 1, "{err}");
    let last = entry(&repo, A)["last_error"].as_str().unwrap().to_owned();
    assert!(last.starts_with("rejected: "), "{last}");
    for expected in [
        "guardrail deny_paths: the branch changes .github/workflows/ci.yml (denied: .github/workflows/**, tgs/server/**, .gitmodules)",
        "guardrail allow_paths: the branch changes docs/n1.md, docs/n2.md, docs/n3.md, docs/n4.md, docs/n5.md and 4 more, outside the allowed paths",
        "guardrail max_changed_files: the branch changes 14 files (at most 10)",
        "guardrail symlinks: docs/passwd (an absolute target), docs/up (its target climbs above the root) point out of the repository",
        "guardrail executable_paths: the branch makes tool.sh executable (allowed only under scripts/**)",
    ] {
        assert!(last.contains(expected), "{expected}\nnot in: {last}");
    }
    let pushed = repo.git(&["ls-remote", "origin", "refs/heads/tgs/aaaaaaa-first"]);
    assert!(pushed.is_empty(), "the branch was pushed: {pushed}");
    assert!(gh.pulls().is_empty());
}

/// The agent runs as the same user as tgs: it must not read tgs's
/// environment (`/proc/<pid>/environ`), where the GitHub token is. Its
/// script walks every ancestor (`PPid` in `/proc/<pid>/status`) and reads
/// each one's environment, tgs running as an unprivileged user
/// ([`TestEnv::unprivileged`]).
#[test]
fn the_agent_cannot_read_the_token_from_its_ancestors_environment() {
    let env = TestEnv::new();
    let report = env.path().join("environ-report");
    let work = format!(
        "{WORK}p=$$\nwhile [ \"$p\" -gt 1 ]; do\n  comm=$(cat /proc/$p/comm 2>/dev/null)\n  \
         if ! cat /proc/$p/environ > /dev/null 2>&1; then echo \"unreadable $p $comm\" >> {r}\n  \
         elif tr '\\0' '\\n' < /proc/$p/environ | grep -qF '{TOKEN}'; then echo \"FOUND $p $comm\" >> {r}\n  \
         else echo \"clean $p $comm\" >> {r}; fi\n  \
         p=$(awk '/^PPid:/ {{print $2}}' /proc/$p/status)\ndone\n",
        r = report.display()
    );
    let repo = lab(&env, &work, "", "");
    let mut cmd = env.unprivileged(common::tgs_bin());
    let out = cmd
        .current_dir(&repo.root)
        .env("GITHUB_TOKEN", TOKEN)
        .env("TGS_GITHUB_TOKEN", TOKEN)
        .env("ANTHROPIC_API_KEY", KEY)
        .args(["server", "run", "--no-pr", "--thought", A])
        .output()
        .unwrap();
    env.take_back();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let report = std::fs::read_to_string(&report).expect("the agent ran and wrote its report");
    assert!(
        !report.contains("FOUND"),
        "the agent read the token in an ancestor's environment:\n{report}"
    );
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("unreadable ") && l.ends_with(" tgs")),
        "tgs is the agent's parent and its environment is not readable:\n{report}"
    );
    assert_eq!(entry(&repo, A)["status"], "completed");
}
