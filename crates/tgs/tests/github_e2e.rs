//! End to end as the GitHub Actions workflows run tgs: the `GITHUB_*`
//! environment (output and summary files included), a local bare remote and
//! a loopback fake of the GitHub REST API.

mod common;
#[path = "support/github.rs"]
mod github;
#[path = "support/loopback.rs"]
mod loopback;

use std::os::unix::process::ExitStatusExt;

use common::{run, script, TestEnv, TestRepo};
use github::FakeGitHub;
use serde_json::Value;

const TOKEN: &str = "ghs_e2e_token_0123456789";

struct World<'e> {
    env: &'e TestEnv,
    repo: TestRepo<'e>,
    gh: FakeGitHub,
    fail_dir: std::path::PathBuf,
}

/// Three approved thoughts; the agent fails a thought while `fail/<name>` exists.
fn world(env: &TestEnv) -> World<'_> {
    let repo = env.repo("r");
    for (n, t) in [
        ("aaaaaaa-first", "First <b>bold</b> @someone"),
        ("bbbbbbb-second", "Second"),
        ("ccccccc-third", "Third"),
    ] {
        repo.approved(n, t);
    }
    let fail_dir = env.path().join("fail");
    std::fs::create_dir_all(&fail_dir).unwrap();
    let agent = env.path().join("agent.sh");
    script(
        &agent,
        &format!(
            "#!/bin/bash\nset -e\nname=$(basename \"$TGS_THOUGHT_DIR\")\nif [ -e {fail}/$name ]; then echo \"cannot do $name\" >&2; exit 2; fi\necho \"pub fn f_${{name//-/_}}() {{}}\" >> src/lib.rs\nprintf '# Implementation\\n\\nAdded a function for %s.\\n' \"$name\" > \"$TGS_THOUGHT_DIR/implementation.md\"\ngit add -A && git commit -qm \"Implement $name\"\n",
            fail = fail_dir.display()
        ),
    );
    repo.write(
        "tgs/tgs.yml",
        &format!("server:\n  agent: test\n  max_attempts: 1\n  agents:\n    test: {{ command: \"{}\" }}\n", agent.display()),
    );
    repo.publish("thoughts");
    let gh = FakeGitHub::start("octo", "demo", TOKEN);
    World {
        env,
        repo,
        gh,
        fail_dir,
    }
}

impl World<'_> {
    /// `tgs` as a workflow step runs it.
    fn step(&self, args: &[&str]) -> assert_cmd::Command {
        let mut c = self.repo.tgs();
        c.env("GITHUB_ACTIONS", "true")
            .env("GITHUB_TOKEN", TOKEN)
            .env("GITHUB_REPOSITORY", "octo/demo")
            .env("GITHUB_API_URL", self.gh.api_url())
            .env("GITHUB_OUTPUT", self.env.path().join("output"))
            .env("GITHUB_STEP_SUMMARY", self.env.path().join("summary"))
            .args(args);
        c
    }

    fn entry(&self, dir: &str) -> Value {
        self.repo.remote_backlog()["thoughts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["dir"] == dir)
            .unwrap()
            .clone()
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.env.path().join(name)).unwrap_or_default()
    }
}

#[test]
fn scan_run_and_one_pull_request_per_thought() {
    let env = TestEnv::new();
    let w = world(&env);
    let (code, _, err) = run(&mut w.step(&["server", "scan"]));
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(&mut w.step(&["server", "run", "--thought", "aaaaaaa-first"]));
    assert_eq!(code, 0, "{err}");
    // The token is masked before anything else is printed.
    assert!(err.contains(&format!("::add-mask::{TOKEN}")), "{err}");
    assert!(!out.contains(TOKEN));

    let pulls = w.gh.pulls();
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    let pr = &pulls[0];
    assert_eq!(
        (pr.head.as_str(), pr.base.as_str()),
        ("tgs/aaaaaaa-first", "main")
    );
    assert!(pr.title.starts_with("feat: First"), "{}", pr.title);
    // Titles are plain text on GitHub; a mention in one must still not ping anyone.
    assert!(
        !pr.title.contains("@someone") && !pr.title.contains('\n'),
        "{}",
        pr.title
    );
    assert!(
        pr.body.contains("Added a function for aaaaaaa-first"),
        "{}",
        pr.body
    );
    assert!(
        pr.body.contains("tgs/thoughts/aaaaaaa-first/research.md"),
        "{}",
        pr.body
    );
    assert!(
        pr.body.contains("tgs/thoughts/aaaaaaa-first/plan.md"),
        "{}",
        pr.body
    );
    assert!(
        !pr.body.contains("@someone"),
        "mentions cannot ping people: {}",
        pr.body
    );
    assert_eq!(pr.labels, ["tgs"]);

    let e = w.entry("tgs/thoughts/aaaaaaa-first");
    assert_eq!(e["status"], "completed");
    assert_eq!(
        e["pr_url"],
        format!("https://github.example/octo/demo/pull/{}", pr.number)
    );
    // Step outputs and summary.
    let output = w.read("output");
    assert!(
        output.contains("thought<<") && output.contains("\ntgs/thoughts/aaaaaaa-first\n"),
        "{output}"
    );
    assert!(output.contains("\nsuccess\n"), "{output}");
    assert!(
        output.contains(&format!(
            "\nhttps://github.example/octo/demo/pull/{}\n",
            pr.number
        )),
        "{output}"
    );
    let summary = w.read("summary");
    assert!(
        summary.contains("| thought | outcome |") && summary.contains("aaaaaaa-first"),
        "{summary}"
    );
    // Workflow commands go to stderr: stdout is for data (`--json`).
    assert!(
        err.contains("::group::transcript of tgs/thoughts/aaaaaaa-first")
            && !out.contains("::group::"),
        "{err}"
    );

    // Killed between "PR opened" and "completed": the rerun updates the same PR.
    let killed = w
        .step(&["server", "run", "--thought", "bbbbbbb-second"])
        .env("TGS_FAILPOINT", "runner.pr-opened")
        .output()
        .unwrap();
    assert_eq!(
        killed.status.signal(),
        Some(9),
        "{}",
        String::from_utf8_lossy(&killed.stderr)
    );
    assert_eq!(w.gh.pulls().len(), 2);
    assert_eq!(
        w.entry("tgs/thoughts/bbbbbbb-second")["status"],
        "in_progress"
    );
    // Later, once the dead run's lease has expired, a worker takes it over.
    let (code, _, err) = run(w
        .step(&["server", "run"])
        .env("TGS_NOW", "2026-01-20T00:00:00Z"));
    assert_eq!(code, 0, "{err}");
    let second: Vec<_> =
        w.gh.pulls()
            .into_iter()
            .filter(|p| p.head == "tgs/bbbbbbb-second")
            .collect();
    assert_eq!(second.len(), 1, "still one PR for the branch");
    let e = w.entry("tgs/thoughts/bbbbbbb-second");
    assert_eq!(e["status"], "completed");
    assert_eq!(e["attempts"], 2);
    assert_eq!(
        e["pr_url"],
        format!("https://github.example/octo/demo/pull/{}", second[0].number)
    );

    // sync-prs records what became of them.
    w.gh.close_pull(pr.number, true);
    let (code, _, err) = run(&mut w.step(&["server", "sync-prs"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(w.entry("tgs/thoughts/aaaaaaa-first")["pr_state"], "merged");
    assert_eq!(w.entry("tgs/thoughts/bbbbbbb-second")["pr_state"], "open");
}

#[test]
fn a_final_failure_alerts_once_and_a_later_success_closes_the_alert() {
    let env = TestEnv::new();
    let w = world(&env);
    std::fs::write(w.fail_dir.join("ccccccc-third"), "").unwrap();
    run(&mut w.step(&["server", "scan"]));
    let (code, _, err) = run(&mut w.step(&["server", "run", "--thought", "ccccccc-third"]));
    assert_eq!(code, 1, "a thought failed for good: {err}");
    assert!(
        err.contains("::error title=tgs::tgs/thoughts/ccccccc-third: failed"),
        "{err}"
    );
    assert_eq!(w.entry("tgs/thoughts/ccccccc-third")["status"], "failed");
    let issues = w.gh.issues();
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0].labels, ["tgs:failed"]);
    assert!(
        issues[0].body.contains("tgs/thoughts/ccccccc-third"),
        "{}",
        issues[0].body
    );
    assert!(
        issues[0].body.contains("cannot do ccccccc-third"),
        "the log tail is in the alert: {}",
        issues[0].body
    );
    assert!(!issues[0].body.contains(TOKEN));

    // Retried by a human, failing again: a comment on the same issue.
    run(&mut w.step(&["server", "backlog", "retry", "ccccccc-third"]));
    let (code, _, _) = run(&mut w.step(&["server", "run", "--thought", "ccccccc-third"]));
    assert_eq!(code, 1);
    let issues = w.gh.issues();
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0].comments.len(), 1);

    // Fixed and retried: success closes the alert.
    std::fs::remove_file(w.fail_dir.join("ccccccc-third")).unwrap();
    run(&mut w.step(&["server", "backlog", "retry", "ccccccc-third"]));
    let (code, _, err) = run(&mut w.step(&["server", "run", "--thought", "ccccccc-third"]));
    assert_eq!(code, 0, "{err}");
    let issues = w.gh.issues();
    assert_eq!(issues[0].state, "closed");
    assert_eq!(issues[0].comments.len(), 2);
    assert_eq!(w.gh.pulls().len(), 1);
}

#[test]
fn no_pr_and_configuration_errors() {
    let env = TestEnv::new();
    let w = world(&env);
    run(&mut w.step(&["server", "scan"]));
    let (code, _, err) = run(w
        .step(&["server", "run", "--no-pr"])
        .env_remove("GITHUB_REPOSITORY"));
    assert_eq!(code, 0, "--no-pr needs no GitHub configuration: {err}");
    assert!(w.gh.pulls().is_empty());
    // A token but no repository and a local-path origin: a clear error before anything is claimed.
    let before = w.repo.remote_backlog();
    let (code, _, err) = run(w.step(&["server", "run"]).env_remove("GITHUB_REPOSITORY"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("GITHUB_REPOSITORY"), "{err}");
    assert_eq!(w.repo.remote_backlog(), before);
}
