//! `tgs server init` on real repositories: what it writes (workflows that
//! parse, pin their actions and keep expressions out of scripts; executable
//! adapters; the server section), and what it refuses to overwrite.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{run, TestEnv, TestRepo};
use serde_json::Value;

const RUN_WF: &str = ".github/workflows/tgs-server-run.yml";
const SCAN_WF: &str = ".github/workflows/tgs-server-scan.yml";
const DASH_WF: &str = ".github/workflows/tgs-server-dashboard.yml";
const REVIEW_WF: &str = ".github/workflows/tgs-server-review.yml";
const CLI_PACKAGE: &str = ".github/tgs-agent-cli/package.json";
const CLI_LOCK: &str = ".github/tgs-agent-cli/package-lock.json";
const CONFIG: &str = "tgs/tgs.yml";
const PROMPT: &str = "tgs/agentops/prompts/impl.md";
const ADAPTERS: [&str; 2] = ["tgs/adapters/claude-code.sh", "tgs/adapters/gemini-code.sh"];
/// In the order init reports them.
const ALL: [&str; 11] = [
    RUN_WF,
    SCAN_WF,
    REVIEW_WF,
    DASH_WF,
    CLI_PACKAGE,
    CLI_LOCK,
    CONFIG,
    PROMPT,
    ADAPTERS[0],
    ADAPTERS[1],
    ".mcp.json",
];

const WORKFLOWS: [&str; 4] = [RUN_WF, SCAN_WF, REVIEW_WF, DASH_WF];

/// tgs's own repository, where the workflows install it from by default.
const OURS: &str = "https://github.com/tgsflow/tgs";
/// The commit the tests have tgs take itself to be built from.
const BUILT: &str = "fedcba9876543210fedcba9876543210fedcba98";

/// `tgs server init`, by a tgs that takes itself to be built from `built`
/// (`TGS_BUILD_COMMIT` at run time; empty: from no known commit).
fn server_init(repo: &TestRepo, built: &str) -> assert_cmd::Command {
    let mut cmd = repo.tgs();
    cmd.env("TGS_BUILD_COMMIT", built).args(["server", "init"]);
    cmd
}

/// The line of a workflow that installs tgs from `url` at `rev`.
fn install_line(url: &str, rev: &str) -> String {
    format!("run: cargo install --locked --git {url} --rev {rev} tgs\n")
}

/// Run init (by a tgs built from [`BUILT`]) and return each file's status, by path.
fn init(repo: &TestRepo, args: &[&str]) -> Vec<(String, String)> {
    init_by(repo, BUILT, args)
}

/// Run init by a tgs built from `built` and return each file's status, by path.
fn init_by(repo: &TestRepo, built: &str, args: &[&str]) -> Vec<(String, String)> {
    let mut cmd = server_init(repo, built);
    cmd.arg("--json").args(args);
    let (code, out, err) = run(&mut cmd);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn status_of(report: &[(String, String)], path: &str) -> String {
    report
        .iter()
        .find(|(p, _)| p == path)
        .unwrap_or_else(|| panic!("{path} not in {report:?}"))
        .1
        .clone()
}

fn yaml(repo: &TestRepo, rel: &str) -> Value {
    tgs_core::init::parse_yaml(&repo.read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every value under a `run:` key, and every `uses:`, anywhere in the document.
fn collect(v: &Value, key: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, val) in m {
                if k == key {
                    if let Some(s) = val.as_str() {
                        out.push(s.to_owned());
                    }
                }
                collect(val, key, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect(x, key, out)),
        _ => {}
    }
}

fn steps(wf: &Value) -> Vec<&Value> {
    wf["jobs"]
        .as_object()
        .unwrap()
        .values()
        // A job that calls a reusable workflow has no steps.
        .flat_map(|j| j["steps"].as_array().into_iter().flatten())
        .collect()
}

fn snapshot(repo: &TestRepo) -> Vec<(String, Vec<u8>, u32)> {
    ALL.iter()
        .map(|p| {
            let path = repo.path(p);
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            (p.to_string(), std::fs::read(&path).unwrap(), mode)
        })
        .collect()
}

#[test]
fn a_fresh_repository_gets_every_file() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let report = init(&repo, &[]);
    assert_eq!(
        report.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
        ALL
    );
    assert!(report.iter().all(|(_, s)| s == "created"), "{report:?}");

    for a in ADAPTERS {
        let mode = std::fs::metadata(repo.path(a))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "{a} is executable");
        assert!(repo.read(a).starts_with("#!/usr/bin/env bash\n"));
    }
    assert!(repo.read(PROMPT).contains("{{impl_file}}"));
    let config = tgs_core::config::Config::parse(&repo.read(CONFIG)).unwrap();
    assert_eq!(config.server.agent.as_deref(), Some("claude-code"));
    assert_eq!(config.steps.impl_prompt.as_deref(), Some(PROMPT));

    for wf in WORKFLOWS {
        let v = yaml(&repo, wf);
        // Least privilege: nothing at the top, each job asks for what it needs.
        assert_eq!(v["permissions"], serde_json::json!({}), "{wf}");
        let mut runs = Vec::new();
        collect(&v, "run", &mut runs);
        assert!(!runs.is_empty());
        for r in &runs {
            assert!(!r.contains("${{"), "{wf}: an expression in a script: {r}");
        }
        let mut uses = Vec::new();
        collect(&v, "uses", &mut uses);
        assert!(!uses.is_empty());
        // A workflow of the repository itself comes at the same commit.
        for u in uses.iter().filter(|u| !u.starts_with("$/")) {
            let (_, sha) = u.split_once('@').unwrap();
            assert!(
                sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
                "{wf}: {u} is not pinned to a commit"
            );
        }
        // Every job checks out without leaving credentials behind.
        for (name, job) in v["jobs"].as_object().unwrap() {
            let checkout: Vec<&Value> = job["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|s| {
                    s["uses"]
                        .as_str()
                        .is_some_and(|u| u.starts_with("actions/checkout@"))
                })
                .collect();
            if checkout.is_empty() {
                continue;
            }
            assert_eq!(checkout.len(), 1, "{wf} {name}");
            assert_eq!(
                checkout[0]["with"]["persist-credentials"], false,
                "{wf} {name}"
            );
            // Jobs that push state need the history.
            if job["permissions"]["contents"] == "write" {
                assert_eq!(checkout[0]["with"]["fetch-depth"], 0, "{wf} {name}");
            }
        }
        assert!(v["concurrency"]["group"].is_string(), "{wf}");
        // Runs and scans push state: never cancelled mid-push. The dashboard
        // only reads, and a newer build replaces an older one.
        let writes = wf != DASH_WF;
        assert_eq!(v["concurrency"]["cancel-in-progress"], !writes, "{wf}");
    }

    // The run: claim, implement (a matrix, read access, no token), hand over.
    let run_wf = yaml(&repo, RUN_WF);
    let jobs = &run_wf["jobs"];
    assert_eq!(
        jobs["claim"]["permissions"],
        serde_json::json!({"contents": "write"})
    );
    let implement = &jobs["implement"];
    assert_eq!(
        implement["permissions"],
        serde_json::json!({"contents": "read"})
    );
    assert_eq!(implement["timeout-minutes"], 360);
    // The session ends (its work kept) before the job is cut: the default
    // session and verify timeouts leave the job room to install tgs and the
    // agent (~10 min) and to keep and upload the work (~5 min).
    let d = tgs_core::config::Settings::resolve(&Default::default()).unwrap();
    let job = std::time::Duration::from_secs(60 * implement["timeout-minutes"].as_u64().unwrap());
    let room = std::time::Duration::from_secs(20 * 60);
    assert!(
        d.session_timeout + d.verify_timeout + room <= job,
        "session_timeout {:?} + verify_timeout {:?} + {room:?} must fit the implement job's {job:?}",
        d.session_timeout,
        d.verify_timeout
    );
    // The implement job starts from the work in progress the claim job bundled.
    let steps = serde_json::to_string(&implement["steps"]).unwrap();
    assert!(steps.contains("--wip-bundle"), "{steps}");
    assert!(serde_json::to_string(&jobs["claim"])
        .unwrap()
        .contains("--wip-out"));
    assert_eq!(implement["needs"], "claim");
    assert_eq!(implement["strategy"]["fail-fast"], false);
    assert!(implement["strategy"]["max-parallel"].is_number());
    assert_eq!(
        implement["strategy"]["matrix"],
        "${{ fromJSON(needs.claim.outputs.matrix) }}"
    );
    let implement_text = serde_json::to_string(implement).unwrap();
    for forbidden in [
        "GITHUB_TOKEN",
        "github.token",
        "app-token",
        "TGS_APP_PRIVATE_KEY",
    ] {
        assert!(
            !implement_text.contains(forbidden),
            "the agent's job holds no GitHub token: {forbidden}"
        );
    }
    assert!(implement_text.contains("ANTHROPIC_API_KEY"));
    let handover = &jobs["handover"];
    assert_eq!(
        handover["permissions"],
        serde_json::json!({"contents": "write", "pull-requests": "write", "issues": "write"})
    );
    assert!(handover["if"].as_str().unwrap().contains("always()"));
    let inputs = &run_wf["on"]["workflow_dispatch"]["inputs"];
    assert_eq!(inputs["max"]["default"], 1);
    assert_eq!(inputs["agent"]["required"], false);
    let text = repo.read(RUN_WF);
    assert!(text.contains(&install_line(OURS, BUILT)), "{text}");
    // The agent CLI comes from the lockfile init wrote beside the workflows.
    assert!(text.contains("npm ci --prefix"), "{text}");
    let package: Value = serde_json::from_str(&repo.read(CLI_PACKAGE)).unwrap();
    let lock: Value = serde_json::from_str(&repo.read(CLI_LOCK)).unwrap();
    let pinned = package["dependencies"]["@anthropic-ai/claude-code"]
        .as_str()
        .unwrap();
    assert_eq!(
        lock["packages"]["node_modules/@anthropic-ai/claude-code"]["version"],
        pinned
    );
    assert!(
        text.contains("  # schedule:\n"),
        "the schedule starts commented out"
    );
    assert!(
        text.contains("    # environment: "),
        "the approval gate too"
    );
    let uploads: Vec<&Value> = implement["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/upload-artifact@"))
        })
        .collect();
    assert_eq!(uploads.len(), 2, "the work and the transcript");
    for u in &uploads {
        assert_eq!(u["if"], "always()");
    }
    assert_eq!(uploads[1]["with"]["path"], "tgs/server/logs/");

    let scan_wf = yaml(&repo, SCAN_WF);
    assert_eq!(
        scan_wf["on"]["push"]["branches"],
        serde_json::json!(["main"])
    );
    assert_eq!(
        scan_wf["on"]["push"]["paths"],
        serde_json::json!(["tgs/thoughts/**"])
    );
    assert_eq!(
        scan_wf["jobs"]["scan"]["permissions"],
        serde_json::json!({"contents": "write"})
    );
}

#[test]
fn a_second_init_changes_nothing() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    init(&repo, &[]);
    let before = snapshot(&repo);
    let report = init(&repo, &[]);
    assert!(report.iter().all(|(_, s)| s == "unchanged"), "{report:?}");
    assert_eq!(snapshot(&repo), before);
    let report = init(&repo, &["--force"]);
    assert!(report.iter().all(|(_, s)| s == "unchanged"), "{report:?}");
    assert_eq!(snapshot(&repo), before);
}

#[test]
fn a_users_edit_is_kept_unless_forced() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    init(&repo, &[]);
    let ours = repo.read(RUN_WF);
    let mine = ours.replace("timeout-minutes: 360", "timeout-minutes: 120");
    repo.write(RUN_WF, &mine);
    repo.write(ADAPTERS[0], "#!/bin/sh\necho my adapter\n");

    let (code, out, err) = run(&mut server_init(&repo, BUILT));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("kept") && out.contains(RUN_WF), "{out}");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(repo.read(RUN_WF), mine);
    assert_eq!(repo.read(ADAPTERS[0]), "#!/bin/sh\necho my adapter\n");

    let report = init(&repo, &["--force"]);
    assert_eq!(status_of(&report, RUN_WF), "overwritten");
    assert_eq!(status_of(&report, ADAPTERS[0]), "overwritten");
    assert_eq!(status_of(&report, SCAN_WF), "unchanged");
    assert_eq!(repo.read(RUN_WF), ours);
    let mode = std::fs::metadata(repo.path(ADAPTERS[0]))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111);
}

#[test]
fn a_file_another_version_wrote_is_updated() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    init(&repo, &[]);
    let ours = repo.read(SCAN_WF);
    let version = env!("CARGO_PKG_VERSION");
    let older = ours.replace(version, "0.0.9");
    assert_ne!(older, ours);
    repo.write(SCAN_WF, &older);
    let report = init(&repo, &[]);
    assert_eq!(status_of(&report, SCAN_WF), "updated");
    assert_eq!(repo.read(SCAN_WF), ours);
}

#[test]
fn an_existing_config_is_kept_byte_for_byte_and_gains_the_server_section() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    // No final newline, comments, odd spacing, sections tgs does not read.
    let original = "# Project config\nai:\n  provider: anthropic   # the default\n  redact_env_keys: [MY_CRED]\n\nguardrails:\n  max_diff_lines: 500\n# trailing comment";
    repo.write(CONFIG, original);
    let report = init(&repo, &[]);
    assert_eq!(status_of(&report, CONFIG), "updated");
    let now = repo.read(CONFIG);
    assert!(now.starts_with(original), "{now}");
    let added = &now[original.len()..];
    assert!(added.starts_with("\n\n"), "{added:?}");
    assert!(added.contains("\nserver:\n"), "{added}");
    assert!(added.contains("\nsteps:\n  impl_prompt: tgs/agentops/prompts/impl.md\n"));
    let v = tgs_core::init::parse_yaml(&now).unwrap();
    assert_eq!(v["ai"]["redact_env_keys"][0], "MY_CRED");
    assert_eq!(v["guardrails"]["max_diff_lines"], 500);
    assert_eq!(v["server"]["agent"], "claude-code");

    let report = init(&repo, &[]);
    assert_eq!(status_of(&report, CONFIG), "unchanged");
    assert_eq!(repo.read(CONFIG), now);
}

#[test]
fn an_existing_server_section_is_kept_even_when_forced() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let original = "steps:\n  impl_prompt: prompts/mine.md\nserver:\n  agent: codex # mine\n";
    repo.write(CONFIG, original);
    for args in [&[][..], &["--force"][..]] {
        let report = init(&repo, args);
        assert_eq!(status_of(&report, CONFIG), "kept");
        assert_eq!(repo.read(CONFIG), original);
    }
}

#[test]
fn a_config_with_steps_gains_only_the_server_section() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let original = "steps:\n  impl_prompt: prompts/mine.md\n";
    repo.write(CONFIG, original);
    init(&repo, &[]);
    let now = repo.read(CONFIG);
    assert!(now.starts_with(original));
    assert!(!now[original.len()..].contains("steps:"), "{now}");
    let v = tgs_core::init::parse_yaml(&now).unwrap();
    assert_eq!(v["steps"]["impl_prompt"], "prompts/mine.md");
    assert_eq!(v["server"]["remote"], "origin");
}

#[test]
fn the_scan_workflow_follows_the_default_branch() {
    let env = TestEnv::new();
    let repo = env.local_repo("r");
    repo.git(&["branch", "-m", "trunk"]);
    init(&repo, &[]);
    assert_eq!(
        yaml(&repo, SCAN_WF)["on"]["push"]["branches"],
        serde_json::json!(["trunk"])
    );
}

#[test]
fn an_invalid_config_fails_before_changing_it() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    repo.write(CONFIG, "ai: [\n");
    let (code, _, err) = run(&mut server_init(&repo, BUILT));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("tgs/tgs.yml"), "{err}");
    assert_eq!(repo.read(CONFIG), "ai: [\n");
    assert!(!repo.path(".github").exists(), "nothing else was written");
}

/// The adapter follows the `tgs agent exec` contract: a fake `claude` sees the
/// prompt and the context paths on stdin, and a diff answer becomes a patch.
#[test]
fn the_claude_adapter_runs_through_agent_exec() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    init(&repo, &[]);
    let fake = env.path().join("bin/claude");
    let seen = env.path().join("seen");
    common::script(
        &fake,
        &format!(
            "#!/bin/sh\necho \"$@\" > '{0}.args'\ncat > '{0}.stdin'\nprintf '%s\\n' '--- a/src/lib.rs' '+++ b/src/lib.rs' '@@ -1 +1 @@' '-old' '+new'\n",
            seen.display()
        ),
    );
    let (code, out, err) = run(repo.tgs().args([
        "agent",
        "exec",
        "--prompt-text",
        "Refactor it.",
        "--context",
        "src/lib.rs",
        "--claude-cmd",
        fake.to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{err}");
    let args = std::fs::read_to_string(seen.with_extension("args")).unwrap();
    assert!(
        args.contains("-p --output-format text --add-dir src"),
        "{args}"
    );
    let stdin = std::fs::read_to_string(seen.with_extension("stdin")).unwrap();
    assert!(stdin.starts_with("Refactor it.\n"), "{stdin}");
    assert!(stdin.contains("- src/lib.rs\n"), "{stdin}");
    let patch = out.trim();
    assert!(
        patch.starts_with("tgs/suggestions/") && patch.ends_with(".patch"),
        "{out}"
    );
    assert!(repo.read(patch).contains("+new\n"));

    // --return-mode text: the answer as it is.
    let (code, out, err) = run(repo.tgs().args([
        "agent",
        "exec",
        "--prompt-text",
        "Refactor it.",
        "--context",
        "src/lib.rs",
        "--return-mode",
        "text",
        "--claude-cmd",
        fake.to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("--- a/src/lib.rs\n"), "{out}");
}

/// The Gemini adapter runs GEMINI_CMD with the request as its prompt and
/// returns a text answer as it is.
#[test]
fn the_gemini_adapter_runs_through_agent_exec() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    init(&repo, &[]);
    let fake = env.path().join("bin/gemini");
    let seen = env.path().join("seen.args");
    common::script(
        &fake,
        &format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\necho 'Looks fine to me.'\n",
            seen.display()
        ),
    );
    let (code, out, err) = run(repo.tgs().env("GEMINI_CMD", &fake).args([
        "agent",
        "exec",
        "--adapter-path",
        ADAPTERS[1],
        "--prompt-text",
        "Review it.",
        "--context",
        "src/lib.rs",
    ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "Looks fine to me.\n");
    let args = std::fs::read_to_string(&seen).unwrap();
    assert!(args.starts_with("-p\nReview it.\n"), "{args}");
    assert!(args.contains("- src/lib.rs"), "{args}");
}

const REV: &str = "0123456789abcdef0123456789abcdef01234567";

#[test]
fn install_from_a_git_repository_pinned_to_a_commit() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    // A URL without a commit is refused: the workflows install exactly one.
    let (code, _, err) =
        run(server_init(&repo, BUILT).args(["--install-from", "https://github.com/acme/tgs"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--install-rev"), "{err}");
    assert!(!repo.path(RUN_WF).exists(), "nothing written");
    let pinned = [
        "--install-from",
        "https://github.com/acme/tgs",
        "--install-rev",
        REV,
    ];
    init(&repo, &pinned);
    for wf in WORKFLOWS {
        let text = repo.read(wf);
        assert!(
            text.contains(&install_line("https://github.com/acme/tgs", REV)),
            "{wf}"
        );
        assert!(
            !text.contains("cargo install --locked tgs --version"),
            "{wf}"
        );
        // The cache holds exactly that build, and the comment says where it comes from.
        assert!(
            text.contains(&format!(
                "key: tgs-${{{{ runner.os }}}}-${{{{ runner.arch }}}}-git-{REV}\n"
            )),
            "{wf}"
        );
        assert!(
            text.contains(&format!(
                "# From https://github.com/acme/tgs at commit {REV}"
            )),
            "{wf}"
        );
    }
    // Again with the same options, or with none: every file unchanged, byte for byte.
    let before = snapshot(&repo);
    for args in [&pinned[..], &[]] {
        let report = init(&repo, args);
        assert!(
            report.iter().all(|(_, st)| st == "unchanged"),
            "{args:?}: {report:?}"
        );
        assert_eq!(snapshot(&repo), before, "{args:?}");
    }
    // A new commit moves the pin; --force keeps the source it is given.
    let rev2 = "89abcdef0123456789abcdef0123456789abcdef";
    let report = init(
        &repo,
        &[
            "--install-from",
            "https://github.com/acme/tgs",
            "--install-rev",
            rev2,
        ],
    );
    assert_eq!(status_of(&report, RUN_WF), "updated");
    assert!(repo.read(RUN_WF).contains(&format!("--rev {rev2} tgs")));
    let edited = repo
        .read(DASH_WF)
        .replace("timeout-minutes: 30", "timeout-minutes: 31");
    repo.write(DASH_WF, &edited);
    let report = init(
        &repo,
        &[
            "--force",
            "--install-from",
            "https://github.com/acme/tgs",
            "--install-rev",
            REV,
        ],
    );
    assert_eq!(status_of(&report, DASH_WF), "overwritten");
    for wf in WORKFLOWS {
        assert!(repo.read(wf).contains(&format!("--rev {REV} tgs")), "{wf}");
    }
    // Nothing that could become shell or an expression gets in.
    for (url, rev) in [
        ("https://x/$(id)", REV),
        ("http://plain.example/tgs", REV),
        ("https://x/a b", REV),
        ("https://x/${{ github.token }}", REV),
        ("https://github.com/acme/tgs", "main"),
        ("https://github.com/acme/tgs", "0123456"),
        (
            "https://github.com/acme/tgs",
            "0123456789ABCDEF0123456789ABCDEF01234567",
        ),
        ("https://github.com/acme/tgs", "$(id)"),
    ] {
        let (code, _, err) = run(server_init(&repo, BUILT).args([
            "--force",
            "--install-from",
            url,
            "--install-rev",
            rev,
        ]));
        assert_eq!(code, 2, "{url} {rev}: {err}");
    }
}

/// The workflows that start work use a token whose events start workflows,
/// minted from a GitHub App when one is configured, and only tgs gets it.
#[test]
fn tokens_that_trigger_ci_reach_tgs_only() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    init(&repo, &[]);
    for wf in [RUN_WF, SCAN_WF, REVIEW_WF] {
        let v = yaml(&repo, wf);
        let all = steps(&v);
        let app = all
            .iter()
            .find(|s| s["id"] == "app-token")
            .unwrap_or_else(|| panic!("{wf}: no app token step"));
        assert!(
            app["uses"]
                .as_str()
                .unwrap()
                .starts_with("actions/create-github-app-token@")
                && app["uses"].as_str().unwrap().len() > 70,
            "{wf}: pinned by commit"
        );
        assert_eq!(app["if"], "vars.TGS_APP_ID != ''", "{wf}");
        assert_eq!(app["with"]["client-id"], "${{ vars.TGS_APP_ID }}");
        assert_eq!(
            app["with"]["private-key"],
            "${{ secrets.TGS_APP_PRIVATE_KEY }}"
        );
        assert_eq!(app["with"]["permission-contents"], "write", "{wf}: scoped");
        let tgs_step = all
            .iter()
            .find(|s| s["run"].as_str().is_some_and(|r| r.contains("tgs server ")))
            .unwrap();
        assert_eq!(
            tgs_step["env"]["TGS_GITHUB_TOKEN"],
            "${{ steps.app-token.outputs.token || secrets.TGS_GITHUB_TOKEN }}",
            "{wf}"
        );
    }
    let text = repo.read(RUN_WF);
    assert!(
        text.contains("permission-pull-requests: write")
            && text.contains("permission-issues: write")
    );
    // The dashboard follows the state-changing workflows, not a push.
    let dash = yaml(&repo, DASH_WF);
    assert!(dash["on"]["push"].is_null(), "{}", dash["on"]);
    assert_eq!(
        dash["on"]["workflow_run"]["workflows"],
        serde_json::json!(["tgs server run", "tgs server scan", "tgs server review"])
    );
    assert!(dash["on"]["schedule"].is_array());
    let dash_text = repo.read(DASH_WF);
    assert!(dash_text.contains("--no-excerpts"));
    assert!(dash_text.contains("may be public even when the repository is private"));
}

/// The configuration names the state branch; a repository whose branch
/// already holds the state keeps it there until migrated.
#[test]
fn the_state_branch_is_written_into_the_configuration() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    init(&repo, &[]);
    let cfg = yaml(&repo, CONFIG);
    assert_eq!(cfg["server"]["state_branch"], "tgs-state");

    let env = TestEnv::new();
    let older = env.repo("old");
    older.write(
        "tgs/server/backlog.json",
        "{\"version\":\"1\",\"thoughts\":[]}\n",
    );
    older.publish("state in main");
    init(&older, &[]);
    let cfg = yaml(&older, CONFIG);
    assert_eq!(cfg["server"]["state_branch"], "main");
    assert!(older.read(CONFIG).contains("tgs server state migrate"));
}

/// In GitHub Actions, falling back to the workflow's own token is said once,
/// with what it costs; a token set for tgs is used without a word.
#[test]
fn the_workflow_token_fallback_is_warned_about() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let list = |extra: &[(&str, &str)]| {
        let mut cmd = repo.tgs();
        cmd.env("GITHUB_ACTIONS", "true")
            .env("GITHUB_TOKEN", "ghs_workflowtoken1234");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        run(cmd.args(["server", "backlog", "list"]))
    };
    let (code, _, err) = list(&[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err.matches("::warning").count(), 1, "{err}");
    assert!(
        err.contains("start no workflow runs") && err.contains("TGS_GITHUB_TOKEN"),
        "{err}"
    );
    let (code, _, err) = list(&[("TGS_GITHUB_TOKEN", "ghs_apptoken5678")]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("::warning"), "{err}");
    // Only in the command that tells the runner to mask it.
    assert!(
        err.lines()
            .filter(|l| l.contains("ghs_apptoken5678"))
            .all(|l| l == "::add-mask::ghs_apptoken5678"),
        "{err}"
    );
}

/// The review loop's workflow: it notices with a token that may write the
/// state, then runs the run workflow's jobs (the agent's job reads only);
/// nothing of the event but the PR's number reaches a script.
#[test]
fn the_review_workflow_notices_then_revises_through_the_run_jobs() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    init(&repo, &[]);
    let v = yaml(&repo, REVIEW_WF);
    assert_eq!(
        v["on"]["pull_request_review"]["types"],
        serde_json::json!(["submitted"])
    );
    assert_eq!(
        v["on"]["issue_comment"]["types"],
        serde_json::json!(["created"])
    );
    let notice = &v["jobs"]["notice"];
    let cond = notice["if"].as_str().unwrap();
    assert!(
        cond.contains("github.event.pull_request.head.repo.full_name == github.repository"),
        "{cond}"
    );
    assert!(
        cond.contains("startsWith(github.event.pull_request.head.ref, 'tgs/')"),
        "{cond}"
    );
    assert_eq!(
        notice["permissions"],
        serde_json::json!({"contents": "write", "pull-requests": "write", "issues": "write"})
    );
    let steps = notice["steps"].as_array().unwrap();
    let sync = steps.iter().find(|s| s["id"] == "notice").unwrap();
    assert_eq!(sync["run"], "tgs server sync-prs --pr \"$TGS_PR\"");
    assert_eq!(
        sync["env"]["TGS_PR"],
        "${{ github.event.pull_request.number || github.event.issue.number }}"
    );
    let text = repo.read(REVIEW_WF);
    for field in ["comment.body }}", "review.body }}", "head.ref }}"] {
        assert!(
            !text.contains(field),
            "event text in an expression that reaches a step: {field}"
        );
    }
    let revise = &v["jobs"]["revise"];
    assert_eq!(revise["uses"], "$/.github/workflows/tgs-server-run.yml");
    assert_eq!(revise["needs"], "notice");
    assert_eq!(revise["if"], "needs.notice.outputs.queued > 0");
    assert!(revise["secrets"]["ANTHROPIC_API_KEY"].is_string());
    // The run workflow can be called so.
    let run_wf = yaml(&repo, RUN_WF);
    assert!(run_wf["on"]["workflow_call"]["inputs"]["max"].is_object());
    assert!(run_wf["on"]["workflow_call"]["secrets"]["ANTHROPIC_API_KEY"].is_object());
}

/// The workflows install tgs from a source the project controls, pinned:
/// by default its own repository at the commit this tgs was built from,
/// never crates.io (where the name `tgs` is not the project's, so any
/// crate published as `tgs` would run in jobs that hold write tokens).
#[test]
fn by_default_the_workflows_install_the_commit_tgs_was_built_from() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let (code, out, err) = run(server_init(&repo, BUILT).arg("--json"));
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["install"], serde_json::json!({"git": OURS, "rev": BUILT}));
    for wf in WORKFLOWS {
        let text = repo.read(wf);
        assert!(text.contains(&install_line(OURS, BUILT)), "{wf}");
        assert!(!text.contains("--version"), "{wf}: a registry install");
        assert!(!text.contains("crates.io"), "{wf}");
    }
}

/// The commit the build recorded (see crates/tgs/build.rs) is the default;
/// a tgs built from no known commit refuses.
#[test]
fn the_commit_recorded_at_build_time_is_the_default() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let (code, out, err) = run(repo.tgs().args(["server", "init", "--json"]));
    match env!("TGS_BUILD_COMMIT") {
        "" => {
            assert_eq!(code, 2, "{out}{err}");
            assert!(!repo.path(".github").exists());
        }
        built => {
            assert_eq!(code, 0, "{err}");
            assert!(repo.read(RUN_WF).contains(&install_line(OURS, built)));
        }
    }
}

/// A tgs that does not know the commit it was built from (a modified
/// checkout, no git) has nothing to pin: init says what to pass and
/// changes nothing, not even a workflow an earlier tgs wrote.
#[test]
fn without_a_commit_to_pin_init_refuses_and_changes_nothing() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let (code, out, err) = run(&mut server_init(&repo, ""));
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        err.contains("hint: ") && err.contains("--install-from URL --install-rev COMMIT"),
        "{err}"
    );
    assert!(!repo.path(".github").exists() && !repo.path("tgs").exists());
    assert_eq!(repo.git(&["status", "--porcelain", "--ignored"]), "");

    // Workflows an earlier tgs wrote, installing from crates.io, stay as they are.
    init(&repo, &[]);
    for wf in WORKFLOWS {
        repo.write(wf, &crates_io_install(&repo.read(wf)));
    }
    let before = snapshot(&repo);
    let (code, _, err) = run(&mut server_init(&repo, ""));
    assert_eq!(code, 2, "{err}");
    assert_eq!(snapshot(&repo), before);
    // Given a source, init writes it.
    let acme = "https://github.com/acme/tgs";
    let report = init_by(&repo, "", &["--install-from", acme, "--install-rev", REV]);
    for wf in WORKFLOWS {
        assert_eq!(status_of(&report, wf), "updated", "{wf}");
        assert!(repo.read(wf).contains(&install_line(acme, REV)), "{wf}");
    }
}

/// Workflows an earlier tgs wrote to install tgs from crates.io are still
/// recognised as tgs's: init moves them to the pinned commit.
#[test]
fn a_crates_io_install_an_earlier_tgs_wrote_moves_to_the_pinned_commit() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    init(&repo, &[]);
    let now = snapshot(&repo);
    for wf in WORKFLOWS {
        let old = crates_io_install(&repo.read(wf));
        assert!(old.contains("cargo install --locked tgs --version 0.1.0\n"));
        repo.write(wf, &old);
    }
    let report = init(&repo, &[]);
    for wf in WORKFLOWS {
        assert_eq!(status_of(&report, wf), "updated", "{wf}");
    }
    assert_eq!(snapshot(&repo), now);
}

/// A pin of tgs's own repository follows the tgs that writes the workflows
/// (their steps are that tgs's); a source given by hand is kept.
#[test]
fn a_pin_of_tgs_own_repository_follows_the_tgs_that_writes_it() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    init(&repo, &[]);
    let later = "89abcdef0123456789abcdef0123456789abcdef";
    let report = init_by(&repo, later, &[]);
    for wf in WORKFLOWS {
        assert_eq!(status_of(&report, wf), "updated", "{wf}");
        assert!(repo.read(wf).contains(&install_line(OURS, later)), "{wf}");
    }
    // A tgs that knows no commit keeps the pin it finds.
    let before = snapshot(&repo);
    let report = init_by(&repo, "", &[]);
    assert!(report.iter().all(|(_, s)| s == "unchanged"), "{report:?}");
    assert_eq!(snapshot(&repo), before);
    // Another repository, given by hand, stays until given another.
    let acme = "https://github.com/acme/tgs";
    init(&repo, &["--install-from", acme, "--install-rev", REV]);
    let before = snapshot(&repo);
    for built in [BUILT, later, ""] {
        let report = init_by(&repo, built, &[]);
        assert!(report.iter().all(|(_, s)| s == "unchanged"), "{report:?}");
        assert_eq!(snapshot(&repo), before);
    }
}

/// `text` (a workflow tgs wrote) as tgs 0.1.0 wrote it to install itself
/// from crates.io: the install command, the cache key and the comment.
fn crates_io_install(text: &str) -> String {
    let install = between(text, "cargo install --locked --git ", " tgs\n");
    let key = between(text, "}}-git-", "\n");
    let mut out = String::new();
    for line in text
        .replace(&install, "cargo install --locked tgs --version 0.1.0\n")
        .replace(&key, "}}-0.1.0\n")
        .split_inclusive('\n')
    {
        match line.find("# From ") {
            Some(i) => out.push_str(&format!(
                "{}# From crates.io: tgs 0.1.0, the version that wrote this file (`tgs server init` after an upgrade moves it).\n",
                &line[..i]
            )),
            None => out.push_str(line),
        }
    }
    out
}

/// The first text in `text` from `start` to the next `end`, both included.
fn between(text: &str, start: &str, end: &str) -> String {
    let i = text.find(start).unwrap();
    let j = text[i..].find(end).unwrap() + i + end.len();
    text[i..j].to_owned()
}

/// Whether a job runs code of the agent's: it runs a session, or installs
/// the agent CLI.
fn runs_agent(job: &Value) -> bool {
    let mut runs = Vec::new();
    collect(job, "run", &mut runs);
    runs.iter()
        .any(|r| r.contains("tgs server run") || r.contains("tgs-agent-cli"))
}

/// The cached tgs binary is restored by the jobs that hold write tokens: a
/// job that runs the agent may restore it, never save to it (the action
/// that saves is not there, and the cache service refuses its saves), so
/// only jobs that run no agent code save it. A workflow that may not save
/// (`cache-mode: read`) has no step that tries.
#[test]
fn only_jobs_that_run_no_agent_save_the_tgs_cache() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    init(&repo, &[]);
    let mut agents = 0;
    for wf in WORKFLOWS {
        let v = yaml(&repo, wf);
        let read_only = v["cache-mode"] == "read";
        let mut keys = Vec::new();
        for (name, job) in v["jobs"].as_object().unwrap() {
            let agent = runs_agent(job);
            agents += usize::from(agent);
            if agent {
                assert_eq!(job["cache-mode"], "read", "{wf} {name}");
            }
            for step in job["steps"].as_array().into_iter().flatten() {
                let Some(uses) = step["uses"].as_str() else {
                    continue;
                };
                if !uses.starts_with("actions/cache") {
                    continue;
                }
                keys.push(step["with"]["key"].clone());
                let restores_only = uses.starts_with("actions/cache/restore@");
                assert!(
                    restores_only || !(agent || read_only),
                    "{wf} {name}: {uses} saves the cache"
                );
            }
        }
        keys.dedup();
        assert!(keys.len() <= 1, "{wf}: one binary, one key: {keys:?}");
    }
    assert_eq!(agents, 1, "the run workflow's implement job");
    let run_wf = yaml(&repo, RUN_WF);
    let cache_of = |job: &str| -> Vec<String> {
        run_wf["jobs"][job]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["uses"].as_str())
            .filter(|u| u.starts_with("actions/cache"))
            .map(|u| u.split_once('@').unwrap().0.to_owned())
            .collect()
    };
    // The claim job, first and agent-free, saves; the others restore.
    assert_eq!(cache_of("claim"), ["actions/cache"]);
    assert_eq!(cache_of("implement"), ["actions/cache/restore"]);
    assert_eq!(cache_of("handover"), ["actions/cache/restore"]);
}

/// The dashboard deploys to GitHub Pages, which fails until Pages is set
/// up: its automatic triggers (the timer, the runs it follows) build
/// nothing until the repository variable TGS_PAGES says Pages is on.
#[test]
fn the_dashboard_waits_for_pages_to_be_set_up() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    init(&repo, &[]);
    let dash = yaml(&repo, DASH_WF);
    assert!(dash["on"]["schedule"].is_array());
    let jobs = dash["jobs"].as_object().unwrap();
    let guard = "vars.TGS_PAGES == 'true' || github.event_name == 'workflow_dispatch'";
    for (name, job) in jobs {
        // Guarded itself, or after a job that is (a skipped need skips it).
        let guarded = job["if"] == guard
            || job["needs"]
                .as_str()
                .is_some_and(|n| jobs[n]["if"] == guard && job["if"].is_null());
        assert!(guarded, "{name}: {}", job["if"]);
    }
    assert!(repo.read(DASH_WF).contains("TGS_PAGES"));
    let readme = include_str!("../../../README.md");
    assert!(
        readme.contains("`TGS_PAGES`"),
        "README.md tells how to turn it on"
    );
}

/// A job that runs `always()` runs even when a job it needs failed, was
/// cancelled or skipped, and then that job's outputs are empty: it must
/// check the job succeeded before reading them. Counts are compared as
/// numbers, so an empty one is no work.
#[test]
fn jobs_that_always_run_read_only_the_outputs_of_jobs_that_succeeded() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    init(&repo, &[]);
    for wf in WORKFLOWS {
        let v = yaml(&repo, wf);
        for (name, job) in v["jobs"].as_object().unwrap() {
            let cond = job["if"].as_str().unwrap_or_default();
            if !cond.contains("always()") {
                continue;
            }
            let needs: Vec<&str> = match &job["needs"] {
                Value::String(n) => vec![n.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            for n in needs {
                if cond.contains(&format!("needs.{n}.outputs.")) {
                    assert!(
                        cond.contains(&format!("needs.{n}.result == 'success'")),
                        "{wf} {name}: {cond}"
                    );
                }
            }
        }
    }
    let run_wf = yaml(&repo, RUN_WF);
    assert_eq!(
        run_wf["jobs"]["handover"]["if"],
        "always() && needs.claim.result == 'success' && needs.claim.outputs.count > 0"
    );
    assert_eq!(
        run_wf["jobs"]["implement"]["if"],
        "needs.claim.outputs.count > 0"
    );
}

#[test]
fn tgs_mcp_is_registered_in_the_projects_mcp_json_keeping_what_is_there() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let report = init(&repo, &[]);
    assert_eq!(status_of(&report, ".mcp.json"), "created");
    let v: Value = serde_json::from_str(&repo.read(".mcp.json")).unwrap();
    assert_eq!(v["mcpServers"]["tgs"]["command"], "tgs");
    assert_eq!(v["mcpServers"]["tgs"]["args"][0], "mcp");

    // Another server of the user's: kept, tgs added beside it.
    let env = TestEnv::new();
    let repo = env.repo("r");
    repo.write(
        ".mcp.json",
        r#"{"mcpServers": {"db": {"command": "db-mcp", "args": ["--ro"]}}, "other": 1}"#,
    );
    assert_eq!(status_of(&init(&repo, &[]), ".mcp.json"), "updated");
    let v: Value = serde_json::from_str(&repo.read(".mcp.json")).unwrap();
    assert_eq!(v["mcpServers"]["db"]["args"][0], "--ro");
    assert_eq!(v["other"], 1);
    assert_eq!(v["mcpServers"]["tgs"]["command"], "tgs");

    // A tgs entry of the user's, or a file that is not JSON: left alone.
    for text in [
        r#"{"mcpServers": {"tgs": {"command": "/opt/tgs", "args": ["mcp"]}}}"#,
        "{ not json",
    ] {
        let env = TestEnv::new();
        let repo = env.repo("r");
        repo.write(".mcp.json", text);
        assert_eq!(status_of(&init(&repo, &["--force"]), ".mcp.json"), "kept");
        assert_eq!(repo.read(".mcp.json"), text);
    }
}
