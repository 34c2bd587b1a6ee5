//! Questions from the working agent to its humans: an agent that writes
//! `tgs-question.md` and ends stops its attempt as `needs_input` (not
//! counted, its work kept); the question is asked on the thought's alert
//! issue; a `/tgs answer` comment from a writer (or `backlog answer`)
//! queues it again; the next attempt starts from the kept work with the
//! question and the answer quoted in its prompt. Bad input changes nothing.

mod common;
#[path = "support/github.rs"]
mod github;
#[path = "support/loopback.rs"]
mod loopback;

use common::{run, TestEnv, TestRepo};
use github::FakeGitHub;
use serde_json::Value;

const TOKEN: &str = "ghs_question_token_0123456789";
const NAME: &str = "abcdef1-add-a-port";
const DIR: &str = "tgs/thoughts/abcdef1-add-a-port";
const WIP_REF: &str = "refs/tgs/wip/abcdef1-add-a-port";

/// An agent that, without an answer in its prompt, commits a first part and
/// asks `question` (the file's text); with one, finishes using the answer.
/// Every prompt is copied to `prompts/prompt-N.txt`.
fn asking_agent(env: &TestEnv, question: &str) -> String {
    let prompts = env.path().join("prompts");
    std::fs::create_dir_all(&prompts).unwrap();
    std::fs::write(env.path().join("question.txt"), question).unwrap();
    env.script(
        "agent.sh",
        &format!(
            r#"set -e
p={prompts}
n=$(ls "$p" | wc -l)
cp "$TGS_PROMPT_FILE" "$p/prompt-$n.txt"
if grep -q '^<<<answer ' "$TGS_PROMPT_FILE"; then
  answer=$(sed -n '/^<<<answer /,/^<<<end of answer /p' "$TGS_PROMPT_FILE" | sed '1d;$d' | tail -n 1)
  echo "pub const PORT: &str = \"$answer\";" >> src/lib.rs
  printf '# Implementation\n\nThe port, as answered.\n' > "$TGS_THOUGHT_DIR/implementation.md"
  git add -A && git commit -qm "Use the answered port"
  exit 0
fi
echo "pub fn part_one() {{}}" >> src/lib.rs
git add -A && git commit -qm "Part one"
cp {question} tgs-question.md
"#,
            prompts = prompts.display(),
            question = env.path().join("question.txt").display(),
        ),
    )
}

fn lab<'e>(env: &'e TestEnv, agent: &str, extra: &str) -> TestRepo<'e> {
    let repo = env.repo("r");
    repo.approved(NAME, "Add a port");
    repo.configure_and_scan(
        &format!(
            "server:\n  agent: test\n  max_attempts: 2\n  retry_delay: 1s\n  retry_delay_max: 1s\n{extra}  agents:\n    test: {{ command: \"{agent}\" }}\n"
        ),
        "approved thought and config",
    );
    repo
}

/// An agent that implements the thought; asked for a revision, leaves part
/// of it uncommitted and asks which port; given the answer, checks that the
/// part is still there (and that its prompt says an earlier session got
/// that far), then finishes.
fn revising_agent(env: &TestEnv) -> String {
    env.script(
        "agent.sh",
        r#"set -e
if grep -q '^<<<answer ' "$TGS_PROMPT_FILE"; then
  # The revision's first part, kept while the question waited, is here.
  grep -q 'revision, part one' src/lib.rs || { echo 'part one is lost'; exit 3; }
  grep -q 'An earlier session' "$TGS_PROMPT_FILE" || { echo 'not told'; exit 3; }
  answer=$(sed -n '/^<<<answer /,/^<<<end of answer /p' "$TGS_PROMPT_FILE" | sed '1d;$d' | tail -n 1)
  echo "// port $answer" >> src/lib.rs
  git add -A && git commit -qm "Revise with the answered port"
  exit 0
fi
if grep -q 'reviewer-input' "$TGS_PROMPT_FILE"; then
  echo "// revision, part one" >> src/lib.rs
  echo 'Which port did the reviewer mean?' > tgs-question.md
  exit 0
fi
echo "pub fn part_one() {}" >> src/lib.rs
printf '# Implementation\n\nDone.\n' > "$TGS_THOUGHT_DIR/implementation.md"
git add -A && git commit -qm "Implement"
"#,
    )
}

fn with_github(cmd: &mut assert_cmd::Command, gh: &FakeGitHub) {
    cmd.env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_REPOSITORY", "octo/demo")
        .env("GITHUB_API_URL", gh.api_url());
}

fn gh_ok(repo: &TestRepo, gh: &FakeGitHub, args: &[&str]) -> String {
    let mut c = repo.tgs();
    with_github(&mut c, gh);
    let (code, out, err) = run(c.env_remove("TGS_NOW").args(args));
    assert_eq!(code, 0, "{args:?}: {out}{err}");
    out + &err
}

fn entry(repo: &TestRepo) -> Value {
    repo.remote_backlog()["thoughts"][0].clone()
}

fn prompt(env: &TestEnv, n: usize) -> String {
    std::fs::read_to_string(env.path().join(format!("prompts/prompt-{n}.txt"))).unwrap()
}

/// `src/lib.rs` on the thought's branch as the remote has it.
fn origin_lib(repo: &TestRepo) -> String {
    let origin = repo.origin.to_str().unwrap();
    repo.git(&[
        "--git-dir",
        origin,
        "show",
        &format!("refs/heads/{BRANCH}:src/lib.rs"),
    ])
}

fn origin_has(repo: &TestRepo, r: &str) -> bool {
    let origin = repo.origin.to_str().unwrap();
    repo.git_out(&["--git-dir", origin, "rev-parse", "--verify", "-q", r])
        .status
        .success()
}

#[test]
fn a_question_is_asked_on_github_answered_by_a_writer_and_the_next_attempt_goes_on() {
    let env = TestEnv::new();
    let agent = asking_agent(&env, "Which port should the server listen on?\n");
    let repo = lab(&env, &agent, "");
    let gh = FakeGitHub::start("octo", "demo", TOKEN);

    let out = gh_ok(&repo, &gh, &["server", "run", "--thought", NAME]);
    assert!(out.contains("needs_input: Which port"), "{out}");
    let e = entry(&repo);
    assert_eq!(e["status"], "needs_input", "{e:#}");
    // A question is not a failure: the attempt is given back.
    assert_eq!(e["attempts"].as_u64().unwrap_or(0), 0, "{e:#}");
    assert_eq!(
        e["questions"][0]["text"],
        "Which port should the server listen on?"
    );
    assert!(origin_has(&repo, WIP_REF), "its work is kept");
    // Asked where people are: an issue for the thought, with how to answer.
    let issues = gh.issues();
    assert_eq!(issues.len(), 1, "{issues:?}");
    let issue = &issues[0];
    assert!(issue.title.contains("needs input"), "{}", issue.title);
    assert!(issue
        .body
        .contains("Which port should the server listen on?"));
    assert!(issue.body.contains("/tgs answer"), "{}", issue.body);
    assert_eq!(e["questions"][0]["posted"]["number"], issue.number);
    // Status and the list show it waiting.
    let status = gh_ok(&repo, &gh, &["server", "status"]);
    assert!(
        status.contains("questions waiting for an answer (1)"),
        "{status}"
    );
    assert!(status.contains("Which port"), "{status}");
    let (_, json, _) = run(repo.tgs().args(["--json", "server", "status"]));
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["counts"]["needs_input"], 1, "{v:#}");
    assert_eq!(v["questions"][0]["dir"], DIR);
    // Nothing to claim while it waits.
    let (code, out, err) = repo.server_run(&["--thought", NAME, "--no-pr"]);
    assert!(code == 2, "{code}: {out}{err}");
    assert!(
        format!("{out}{err}").contains("waits for an answer"),
        "{out}{err}"
    );

    // Someone without write access answers first; then a writer.
    gh.set_permission("alice", "write");
    gh.add_issue_comment(issue.number, "mallory", "NONE", "/tgs answer 6666");
    gh.add_issue_comment(issue.number, "bob", "NONE", "I would say 7777, no?");
    gh.add_issue_comment(issue.number, "alice", "MEMBER", "/tgs answer 8080");
    let synced = gh_ok(&repo, &gh, &["server", "sync-prs"]);
    assert!(synced.contains("answered by @alice"), "{synced}");
    let e = entry(&repo);
    assert_eq!(e["status"], "queued", "{e:#}");
    assert_eq!(e["questions"][0]["answer"]["text"], "8080");
    assert_eq!(e["questions"][0]["answer"]["by"], "@alice");
    let audit = repo.audit();
    let actions: Vec<&str> = audit.iter().filter_map(|a| a["action"].as_str()).collect();
    assert!(actions.contains(&"question_asked"), "{actions:?}");
    assert!(actions.contains(&"question_answered"), "{actions:?}");
    let ignored: Vec<&Value> = audit
        .iter()
        .filter(|a| a["action"] == "answer_ignored")
        .collect();
    assert_eq!(ignored.len(), 1, "{ignored:?}");
    assert!(ignored[0]["reason"].as_str().unwrap().contains("@mallory"));
    // Exactly once: a second sync changes nothing.
    let before = repo.state_commit_count();
    gh_ok(&repo, &gh, &["server", "sync-prs"]);
    assert_eq!(repo.state_commit_count(), before);

    // The next attempt starts from the kept work, with the answer.
    gh_ok(&repo, &gh, &["server", "run", "--thought", NAME]);
    let e = entry(&repo);
    assert_eq!(e["status"], "completed", "{e:#}");
    let p = prompt(&env, 1);
    assert!(p.contains("Which port should the server listen on?"), "{p}");
    assert!(p.contains("Answer by @alice"), "{p}");
    assert!(!p.contains("6666") && !p.contains("7777"), "{p}");
    let origin = repo.origin.to_str().unwrap();
    let lib = repo.git(&[
        "--git-dir",
        origin,
        "show",
        "refs/heads/tgs/abcdef1-add-a-port:src/lib.rs",
    ]);
    assert!(
        lib.contains("part_one") && lib.contains("\"8080\""),
        "{lib}"
    );
    assert!(
        !origin_has(&repo, WIP_REF),
        "the kept work is gone once done"
    );
    // The question's file never reaches the branch.
    let files = repo.git(&[
        "--git-dir",
        origin,
        "ls-tree",
        "-r",
        "--name-only",
        "refs/heads/tgs/abcdef1-add-a-port",
    ]);
    assert!(!files.contains("tgs-question.md"), "{files}");
    // The issue is closed with the thought done.
    assert_eq!(gh.issues()[0].state, "closed");
}

#[test]
fn answers_from_the_command_line_and_bad_answers_change_nothing() {
    let env = TestEnv::new();
    let agent = asking_agent(&env, "Which port?\n");
    let repo = lab(&env, &agent, "");
    let (code, out, err) = repo.server_run(&["--thought", NAME, "--no-pr"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(entry(&repo)["status"], "needs_input");
    let state = repo.state_ref();

    let big = env.path().join("big.txt");
    std::fs::write(&big, "x".repeat(1 << 20)).unwrap();
    for (args, says) in [
        (vec!["--text", "  "], "the answer is empty"),
        (vec!["--file", big.to_str().unwrap()], "at most 16384 bytes"),
        (vec![], "--text"),
    ] {
        let (code, out, err) = run(repo
            .tgs()
            .args(["server", "backlog", "answer", DIR])
            .args(&args));
        assert_ne!(code, 0, "{args:?}: {out}{err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(repo.state_ref(), state, "{args:?} changed the state");
    }
    let (code, _, err) = run(repo
        .tgs()
        .args(["server", "backlog", "answer", DIR, "--text", "8080"]));
    assert_eq!(code, 0, "{err}");
    let e = entry(&repo);
    assert_eq!(e["status"], "queued");
    assert_eq!(e["questions"][0]["answer"]["via"], "cli");
    assert_eq!(e["questions"][0]["answer"]["by"], "Test User");
    // Answered: a second answer has no question to answer.
    let (code, _, err) = run(repo
        .tgs()
        .args(["server", "backlog", "answer", DIR, "--text", "9090"]));
    assert_ne!(code, 0);
    assert!(err.contains("waits on no question"), "{err}");
    let answered = repo
        .audit()
        .into_iter()
        .find(|a| a["action"] == "question_answered")
        .unwrap();
    assert_eq!(answered["reason"], "answered by Test User via cli");

    let (code, out, err) = repo.server_run(&["--thought", NAME, "--no-pr"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(entry(&repo)["status"], "completed");
    assert!(prompt(&env, 1).contains("8080"));
    // The metrics count the question and how long people took.
    let (code, out, err) = run(repo.tgs().args(["server", "metrics"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 asked, 1 answered, 0 waiting"), "{out}");
    assert!(out.contains("needs_input 1"), "{out}");
}

#[test]
fn a_question_too_long_a_linked_one_and_one_with_a_secret() {
    // Too long: refused, the attempt counted, nothing asked.
    let env = TestEnv::new();
    let agent = asking_agent(&env, &"?".repeat(1 << 20));
    let repo = lab(&env, &agent, "");
    let (code, out, err) = repo.server_run(&["--thought", NAME, "--no-pr", "--once"]);
    assert!(code == 0 || code == 1, "{out}{err}");
    let e = entry(&repo);
    assert_eq!(e["status"], "queued", "{e:#}");
    assert_eq!(e["attempts"], 1);
    assert!(e.get("questions").is_none(), "{e:#}");
    assert!(
        e["last_error"]
            .as_str()
            .unwrap()
            .contains("its question was not taken: the question is"),
        "{e:#}"
    );

    // A link to a file of the user's: never read.
    let env = TestEnv::new();
    let secret = env.home.join("id_ed25519");
    std::fs::write(&secret, "PRIVATE KEY MATERIAL").unwrap();
    let agent = env.script(
        "agent.sh",
        &format!("ln -s {} tgs-question.md\n", secret.display()),
    );
    let repo = lab(&env, &agent, "");
    repo.server_run(&["--thought", NAME, "--no-pr", "--once"]);
    let e = entry(&repo);
    assert!(e.to_string().contains("not a regular file"), "{e:#}");
    assert!(!e.to_string().contains("PRIVATE KEY"), "{e:#}");

    // A credential in the question: masked in the state and on GitHub.
    let env = TestEnv::new();
    let token = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
    let agent = asking_agent(&env, &format!("Is {token} the right token?\n"));
    let repo = lab(&env, &agent, "");
    let gh = FakeGitHub::start("octo", "demo", TOKEN);
    gh_ok(&repo, &gh, &["server", "run", "--thought", NAME]);
    let e = entry(&repo);
    assert_eq!(e["status"], "needs_input", "{e:#}");
    assert!(!e.to_string().contains(token), "{e:#}");
    for i in gh.issues() {
        assert!(
            !i.body.contains(token) && !i.body.contains(TOKEN),
            "{}",
            i.body
        );
    }
}

#[test]
fn questions_are_bounded_per_thought() {
    let env = TestEnv::new();
    // Asks every time, whatever the answer.
    let agent = env.script(
        "agent.sh",
        "echo x >> src/lib.rs\ngit add -A && git commit -qm part\necho 'Which port, again?' > tgs-question.md\n",
    );
    let repo = lab(&env, &agent, "  questions: { max_per_thought: 1 }\n");
    repo.server_run(&["--thought", NAME, "--no-pr"]);
    assert_eq!(entry(&repo)["status"], "needs_input");
    let (code, _, err) = run(repo
        .tgs()
        .args(["server", "backlog", "answer", DIR, "--text", "8080"]));
    assert_eq!(code, 0, "{err}");
    repo.server_run(&["--thought", NAME, "--no-pr"]);
    let e = entry(&repo);
    assert_eq!(e["status"], "failed", "{e:#}");
    assert!(
        e["last_error"]
            .as_str()
            .unwrap()
            .contains("server.questions.max_per_thought is 1"),
        "{e:#}"
    );
    assert_eq!(e["questions"].as_array().unwrap().len(), 1);
}

/// A revision's agent asks: the question goes on the pull request, a
/// writer's `/tgs answer` there answers it (and is no new revision), and
/// the revision runs again with the answer.
#[test]
fn a_revision_asks_on_its_pull_request_and_goes_on_with_the_answer() {
    let env = TestEnv::new();
    let (repo, gh, tip) = revision_requested(&env);
    let branch = BRANCH;
    gh_ok(&repo, &gh, &["server", "run", "--thought", NAME]);
    let e = entry(&repo);
    assert_eq!(e["status"], "needs_input", "{e:#}");
    let comments = gh.pull_comments(1);
    assert!(
        comments
            .iter()
            .any(|c| c.contains("Which port did the reviewer mean?")),
        "{comments:?}"
    );
    assert_eq!(gh.issues().len(), 0, "a revision asks on its pull request");
    // The revision's work so far is kept, against the pull request's tip.
    assert_eq!(e["wip"]["base"], tip.as_str(), "{e:#}");
    assert!(origin_has(&repo, WIP_REF));

    gh.add_comment(1, "alice", "MEMBER", "/tgs answer 9090");
    gh_ok(&repo, &gh, &["server", "sync-prs"]);
    let e = entry(&repo);
    assert_eq!(e["status"], "queued", "{e:#}");
    assert_eq!(
        e["review"]["queue"].as_array().map_or(0, Vec::len),
        1,
        "the answer became a revision: {e:#}"
    );
    gh_ok(&repo, &gh, &["server", "run", "--thought", NAME]);
    let e = entry(&repo);
    assert_eq!(e["status"], "completed", "{e:#}");
    let origin = repo.origin.to_str().unwrap();
    let lib = repo.git(&[
        "--git-dir",
        origin,
        "show",
        &format!("refs/heads/{branch}:src/lib.rs"),
    ]);
    assert!(lib.contains("// port 9090"), "{lib}");
    assert!(lib.contains("// revision, part one"), "{lib}");
    // The branch moved forward only, and the revision's WIP ended with it.
    let reviewed = repo.git(&[
        "--git-dir",
        origin,
        "merge-base",
        "--is-ancestor",
        &tip,
        &format!("refs/heads/{branch}"),
    ]);
    assert_eq!(reviewed, "");
    assert!(e.get("wip").is_none_or(Value::is_null), "{e:#}");
    assert!(!origin_has(&repo, WIP_REF));
}

const BRANCH: &str = "tgs/abcdef1-add-a-port";

/// The thought implemented (PR #1 open at the returned tip) and a writer's
/// `/tgs` comment on it synced: a revision waits.
fn revision_requested(env: &TestEnv) -> (TestRepo<'_>, FakeGitHub, String) {
    let agent = revising_agent(env);
    let repo = lab(env, &agent, "");
    let gh = FakeGitHub::start("octo", "demo", TOKEN);
    gh_ok(&repo, &gh, &["server", "run", "--thought", NAME]);
    assert_eq!(entry(&repo)["status"], "completed");
    let tip = repo.git(&["ls-remote", "origin", &format!("refs/heads/{BRANCH}")]);
    let tip = tip.split_whitespace().next().unwrap().to_owned();
    gh.record_push(BRANCH, &tip);
    gh.edit_pull(1, |p| p.head_sha = tip.clone());
    gh.set_permission("alice", "write");
    gh.add_comment(1, "alice", "MEMBER", "/tgs use the other port");
    gh_ok(&repo, &gh, &["server", "sync-prs"]);
    (repo, gh, tip)
}

/// One matrix round for a claimed session: the claim job (bundling its
/// WIP), the agent's job in a clone with no remote and no token, the
/// hand-over job.
fn matrix_round(env: &TestEnv, repo: &TestRepo, gh: &FakeGitHub, round: usize) {
    let wip_dir = env.path().join(format!("wip-{round}"));
    let mut c = repo.tgs();
    with_github(&mut c, gh);
    let (code, out, err) = run(c
        .env_remove("TGS_NOW")
        .args(["server", "matrix", "--max", "1", "--worker-id", "actions/1"])
        .args(["--json", "--wip-out"])
        .arg(&wip_dir));
    assert_eq!(code, 0, "{err}");
    let matrix: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let t = matrix["include"][0].clone();
    let claim_id = t["claim_id"].as_str().unwrap();
    let bundle = wip_dir.join(format!("{claim_id}.bundle"));
    assert_eq!(bundle.exists(), round > 1, "round {round}: {t}");
    let job = repo.clone_as(&format!("job-{round}"));
    job.git(&["remote", "set-url", "origin", "/nonexistent/remote.git"]);
    let art = env.path().join(format!("art-{round}"));
    let mut implement = job.tgs();
    implement
        .env_remove("TGS_NOW")
        .env_remove("GITHUB_TOKEN")
        .args(["server", "run", "--claimed", DIR])
        .args(["--claim-id", claim_id])
        .args(["--attempt", &t["attempt"].to_string()])
        .args(["--worker-id", "actions/1"]);
    if let Some(tip) = t["tip"].as_str() {
        implement.args(["--tip", tip]);
    }
    let (code, out, err) = run(implement
        .arg("--handover-out")
        .arg(&art)
        .arg("--wip-bundle")
        .arg(&bundle));
    assert_eq!(code, 0, "{out}{err}");
    let mut c = repo.tgs();
    with_github(&mut c, gh);
    let (code, out, err) = run(c
        .env_remove("TGS_NOW")
        .args(["server", "handover", "--claims"])
        .arg(matrix.to_string())
        .arg(&art));
    assert_eq!(code, 0, "{out}{err}");
}

/// `text` answers through the command line; the next matrix round
/// completes the thought.
fn answer_then_round_two(env: &TestEnv, repo: &TestRepo, gh: &FakeGitHub, text: &str) {
    gh_ok(
        repo,
        gh,
        &["server", "backlog", "answer", DIR, "--text", text],
    );
    matrix_round(env, repo, gh, 2);
    let e = entry(repo);
    assert_eq!(e["status"], "completed", "{e:#}");
}

/// The same through the matrix: the agent's job holds no token, the
/// revision's work so far travels as artifacts and bundles.
#[test]
fn a_revision_in_the_matrix_keeps_its_work_while_its_question_waits() {
    let env = TestEnv::new();
    let (repo, gh, tip) = revision_requested(&env);
    matrix_round(&env, &repo, &gh, 1);
    let e = entry(&repo);
    assert_eq!(e["status"], "needs_input", "{e:#}");
    let comments = gh.pull_comments(1);
    assert!(
        comments
            .iter()
            .any(|c| c.contains("Which port did the reviewer mean?")),
        "the hand-over job asks on the pull request: {comments:?}"
    );
    assert_eq!(e["wip"]["base"], tip.as_str(), "{e:#}");
    assert!(origin_has(&repo, WIP_REF));
    answer_then_round_two(&env, &repo, &gh, "7070");
    let lib = origin_lib(&repo);
    assert!(
        lib.contains("// port 7070") && lib.contains("// revision, part one"),
        "{lib}"
    );
    assert!(!origin_has(&repo, WIP_REF));
}

/// A thought's first session in the matrix goes on with the answer as
/// `server run`'s does: the agent's job takes the claimed entry (its
/// questions and answers) from the state branch. Before, it made a blank
/// entry, and the prompt after the answer held none.
#[test]
fn a_first_session_in_the_matrix_goes_on_with_the_answer() {
    let env = TestEnv::new();
    let agent = asking_agent(&env, "Which port?\n");
    let repo = lab(&env, &agent, "");
    let gh = FakeGitHub::start("octo", "demo", TOKEN);
    matrix_round(&env, &repo, &gh, 1);
    let e = entry(&repo);
    assert_eq!(e["status"], "needs_input", "{e:#}");
    assert!(origin_has(&repo, WIP_REF), "the first part is kept");
    answer_then_round_two(&env, &repo, &gh, "8080");
    assert!(prompt(&env, 1).contains("8080"), "{}", prompt(&env, 1));
    let lib = origin_lib(&repo);
    assert!(lib.contains("part_one") && lib.contains("8080"), "{lib}");
}
