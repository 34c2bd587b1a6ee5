//! The workflow `tgs server init` writes (`tgs-server-run.yml`), its three
//! jobs run in order as GitHub Actions runs them (see `support/actions.rs`):
//! the claim job's matrix, an implement job per claim with the sandbox its
//! steps prepare and no token, the hand-over job's checks, push and pull
//! request against the loopback GitHub. What GitHub's own runner adds
//! (its images, AppArmor, the cache service) is not here.

mod common;

#[path = "support/actions.rs"]
mod actions;
#[path = "support/github.rs"]
mod github;
#[path = "support/loopback.rs"]
mod loopback;

use std::collections::BTreeMap;
use std::net::TcpListener;

use common::{run, TestEnv};

const TOKEN: &str = "ghs_actions_token_0123456789";

/// An agent that tries a host it may not reach (`$1`: its port), then
/// does the work.
fn agent(env: &TestEnv, port: u16) -> String {
    env.script(
        "agent.sh",
        &format!(
            "curl -sS --max-time 5 -o /dev/null http://127.0.0.1:{port}/ || echo refused\nset -e\necho 'pub fn first() {{}}' >> src/lib.rs\nprintf '# Implementation\\n\\nDone.\\n' > \"$TGS_THOUGHT_DIR/implementation.md\"\ngit add -A && git commit -qm work\n"
        ),
    )
}

/// Stand-ins for what the runner's image has: `sudo` (logged; its
/// `apt-get` and `sysctl` are not run here) and `npm` (logged: the agent
/// CLI is this test's script).
fn shims(env: &TestEnv) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = env.path().join("shims");
    let log = env.path().join("shims.log");
    std::fs::create_dir_all(&dir).unwrap();
    common::script(
        &dir.join("sudo"),
        &format!(
            "#!/bin/bash\necho \"sudo $*\" >> {log}\ncase \"$1\" in apt-get|sysctl) exit 0;; esac\nexec \"$@\"\n",
            log = log.display()
        ),
    );
    common::script(
        &dir.join("npm"),
        &format!("#!/bin/bash\necho \"npm $*\" >> {}\n", log.display()),
    );
    (dir, log)
}

#[test]
fn the_generated_workflow_claims_implements_contained_and_hands_over() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let dir = repo.approved("aaaaaaa-first", "First");
    let forbidden = TcpListener::bind("127.0.0.1:0").unwrap();
    forbidden.set_nonblocking(true).unwrap();
    let port = forbidden.local_addr().unwrap().port();
    let bin = agent(&env, port);
    repo.write(
        "tgs/tgs.yml",
        &format!("server:\n  agent: test\n  kill_grace: 1s\n  agents:\n    test: {{ command: \"{bin}\" }}\n"),
    );
    let (code, _, err) = run(repo
        .tgs()
        .env(
            "TGS_BUILD_COMMIT",
            "fedcba9876543210fedcba9876543210fedcba98",
        )
        .args(["server", "init"]));
    assert_eq!(code, 0, "{err}");
    repo.publish("thought, configuration and workflows");
    let (code, _, err) = run(repo.tgs().args(["server", "scan"]));
    assert_eq!(code, 0, "{err}");
    let gh = github::FakeGitHub::start("octo", "demo", TOKEN);
    let (shim_dir, shim_log) = shims(&env);
    let tgs_dir = common::tgs_bin().parent().unwrap().to_owned();
    let path = format!(
        "{}:{}:{}",
        shim_dir.display(),
        tgs_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let contained = common::sandbox_available();
    let mut base_env = vec![
        ("PATH".to_owned(), path),
        ("USER".into(), "runner".into()),
        ("LC_ALL".into(), "C".into()),
        ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
        ("GITHUB_REPOSITORY".into(), "octo/demo".into()),
        ("GITHUB_API_URL".into(), gh.api_url()),
        (
            "TGS_LOCK_DIR".into(),
            env.path().join("locks").display().to_string(),
        ),
    ];
    if !contained {
        assert!(std::env::var_os("CI").is_none(), "CI must run the sandbox");
        base_env.push(("TGS_SANDBOX".into(), "off".into()));
    }
    let text = repo.read(".github/workflows/tgs-server-run.yml");
    let mut wf = actions::Run {
        workflow: yaml_serde::from_str(&text).unwrap(),
        origin: repo.origin.clone(),
        artifacts: env.path().join("artifacts"),
        base_env,
        inputs: BTreeMap::from([("max".into(), "2".into()), ("agent".into(), String::new())]),
        secrets: BTreeMap::from([("GITHUB_TOKEN".into(), TOKEN.into())]),
        root: env.path().join("runner"),
        run_id: "4242".into(),
        needs: BTreeMap::new(),
    };
    let said = |r: &actions::JobResult| format!("{:#?}", r.steps);

    let claim = wf.job("claim", "claim", BTreeMap::new());
    assert_eq!(claim.failed, None, "{}", said(&claim));
    assert_eq!(claim.outputs["count"], "1", "{}", said(&claim));
    assert!(wf.job_runs("implement"));
    let tickets = wf.matrix("implement");
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0]["thought"], dir);
    for (i, t) in tickets.into_iter().enumerate() {
        let job = wf.job("implement", &format!("implement-{i}"), t);
        assert_eq!(job.failed, None, "{}", said(&job));
    }
    let asked = std::fs::read_to_string(&shim_log).unwrap_or_default();
    assert!(
        asked.contains("sudo apt-get install -y -qq bubblewrap"),
        "{asked}"
    );
    assert!(asked.contains("npm ci --prefix"), "{asked}");
    assert!(wf.job_runs("handover"));
    let handover = wf.job("handover", "handover", BTreeMap::new());
    assert_eq!(handover.failed, None, "{}", said(&handover));

    let e = repo.remote_backlog()["thoughts"][0].clone();
    assert_eq!(e["status"], "completed", "{e:#}\n{}", said(&handover));
    assert_eq!(gh.pulls().len(), 1);
    assert_eq!(e["pr_url"], "https://github.example/octo/demo/pull/1");
    let metrics = repo.metrics_csv();
    let sandbox = if contained { "bubblewrap" } else { "off" };
    assert!(
        metrics.lines().nth(1).unwrap().contains(sandbox),
        "{metrics}"
    );
    if contained {
        assert!(
            forbidden.accept().is_err(),
            "the forbidden host was reached"
        );
        let denied: Vec<_> = repo
            .audit()
            .into_iter()
            .filter(|a| a["action"] == "egress_denied")
            .collect();
        assert_eq!(denied.len(), 1, "{denied:?}");
        assert!(
            denied[0].to_string().contains(&format!("127.0.0.1:{port}")),
            "{denied:?}"
        );
    }
}
