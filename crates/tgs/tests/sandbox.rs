//! The agent contained (issue 19): scripted hostile agents inside the real
//! sandbox (`server.sandbox.mode: on`, bubblewrap), against the real binary.
//! Each attempt to reach beyond the agent's own repository fails; the
//! session is judged as usual; nothing of the user's changes.
//!
//! Needs bubblewrap and user namespaces; without them each test says so and
//! passes, except under CI (`.ci/run` installs bubblewrap), where it fails.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;

use common::{run, script, TestEnv, TestRepo};

const A: &str = "tgs/thoughts/aaaaaaa-first";

/// Code, the summary and a commit, as an honest agent does.
const WORK: &str = "echo 'pub fn first() {}' >> src/lib.rs\nprintf '# Implementation\\n\\nDone.\\n' > \"$TGS_THOUGHT_DIR/implementation.md\"\ngit add -A && git commit -qm work\n";

/// Whether the sandbox can run here; under CI it must.
fn available() -> bool {
    let ok = common::sandbox_available();
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the sandbox tests: install bubblewrap"
        );
        eprintln!("skipped: bubblewrap cannot make a sandbox here");
    }
    ok
}

/// One approved thought, queued, a plain-command agent running `work`
/// inside the sandbox, which lets it reach `allow`.
fn lab<'e>(env: &'e TestEnv, work: &str, allow: &[String]) -> TestRepo<'e> {
    let agent = env.path().join("agent.sh");
    script(&agent, &format!("#!/bin/bash\n{work}\n"));
    let repo = env.repo("r");
    repo.approved("aaaaaaa-first", "First");
    repo.write(
        "tgs/tgs.yml",
        &format!(
            "server:\n  agent: mine\n  max_attempts: 1\n  kill_grace: 1s\n  sandbox:\n    mode: on\n    allow_hosts: {allow:?}\n    limits: {{ file_size_mb: 1, processes: 64 }}\n    read_paths: [\"{}\", \"{}\"]\n  agents:\n    mine: {{ command: {} }}\n",
            env.path().join("verify.sh").display(),
            env.path().join("fork.py").display(),
            agent.display()
        ),
    );
    repo.publish("a thought");
    let (code, _, err) = run(repo.tgs().args(["server", "scan"]));
    assert_eq!(code, 0, "{err}");
    repo
}

/// tgs as the tests here run it: without the test environment's
/// `TGS_SANDBOX=off`, so the configuration (or the default) decides.
fn tgs(repo: &TestRepo) -> assert_cmd::Command {
    let mut c = repo.tgs();
    c.env_remove("TGS_SANDBOX");
    c
}

/// A loopback HTTP server that answers every request `200 <name>` and
/// counts them.
fn server(name: &'static str) -> (u16, std::sync::Arc<std::sync::atomic::AtomicU32>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
                name.len()
            );
        }
    });
    (port, hits)
}

/// The session's transcript.
fn transcript(repo: &TestRepo) -> String {
    let dir = repo.path("tgs/server/logs");
    let mut all = String::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        all.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
    }
    all
}

/// Every file under `dir`, as [`common::snapshot`] reads it, leaving out the
/// agent's own repository and tgs's transcripts and session files.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    common::snapshot(dir, &[".tgs", "logs", "sessions"])
}

/// A hostile agent tries every way out it has; each fails, while its honest
/// work goes through, and the one host it may reach answers through the proxy.
#[test]
fn a_hostile_agent_reaches_nothing_beyond_its_repository() {
    hostile_agent(false);
}

/// The same corpus with tgs and its agent as an unprivileged user (CI runs
/// as root, who may read and write what file permissions deny others: here
/// only the sandbox stands between the agent and the user's files).
#[test]
fn a_hostile_agent_of_an_unprivileged_user_reaches_nothing_beyond_its_repository() {
    hostile_agent(true);
}

fn hostile_agent(as_nobody: bool) {
    if !available() {
        return;
    }
    let env = TestEnv::new();
    let (allowed, allowed_hits) = server("allowed");
    let (denied, denied_hits) = server("secret");
    std::fs::create_dir_all(env.home.join(".ssh")).unwrap();
    std::fs::write(env.home.join(".ssh/id_ed25519"), "PLANTED-SSH-KEY\n").unwrap();
    let root = env.path().join("r");
    let home = env.home.display();
    let r = root.display();
    let work = format!(
        "say() {{ echo \"probe $1: $2\"; }}\n\
         (cat {home}/.ssh/id_ed25519 2>/dev/null | grep -q PLANTED) && say ssh-key READ || say ssh-key hidden\n\
         (git --git-dir={r}/.git config core.fsmonitor /bin/true 2>/dev/null) && say user-config WRITTEN || say user-config refused\n\
         echo pwned > {r}/pwned.txt 2>/dev/null; echo pwned > {home}/pwned.txt 2>/dev/null\n\
         touch {r}/.git/objects/pwned 2>/dev/null && say user-objects WRITTEN || say user-objects refused\n\
         (exec 3<>/dev/tcp/127.0.0.1/{denied}) 2>/dev/null && say direct-tcp OPEN || say direct-tcp refused\n\
         (getent hosts example.com >/dev/null) && say dns RESOLVED || say dns none\n\
         grep -ls 'server' /proc/[0-9]*/cmdline >/dev/null && say tgs-process SEEN || say tgs-process unseen\n\
         (git --git-dir={r}/.git branch -D side 2>/dev/null) && say user-branch DELETED || say user-branch kept\n\
         (rm -rf {r}/.git/objects/pack 2>/dev/null; ls {r}/.git/objects/pack >/dev/null 2>&1) && say user-pack kept || say user-pack GONE\n\
         (echo x > /dev/udp/8.8.8.8/53) 2>/dev/null && say udp SENT || say udp none\n\
         (cat {r}/.git/config; git --git-dir={r}/.git remote -v) 2>/dev/null | grep -q ghp_ && say remote-token READ || say remote-token hidden\n\
         (head -c 3000000 /dev/zero > /tmp/big) 2>/dev/null; say big-file \"$(stat -c %s /tmp/big)\"\n\
         ask() {{ exec 3<>/dev/tcp/127.0.0.1/3128 && printf \"$1\" >&3 && timeout 10 cat <&3; exec 3>&-; }}\n\
         say proxy-denied \"$(ask 'CONNECT 127.0.0.1:{denied} HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' | head -1)\"\n\
         say proxy-allowed \"$(ask 'GET http://127.0.0.1:{allowed}/x HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' | tail -1)\"\n\
         {WORK}",
    );
    // The verify command runs the agent's code: the same wall holds it.
    let verify = env.path().join("verify.sh");
    script(
        &verify,
        &format!(
            "#!/bin/bash\nif cat {home}/.ssh/id_ed25519 2>/dev/null; then echo 'verify: key READ'; exit 1; fi\n\
             touch {}/verify-escaped 2>/dev/null\n\
             echo 'verify: contained'\n",
            env.path().display()
        ),
    );
    let repo = lab(&env, &work, &[format!("127.0.0.1:{allowed}")]);
    repo.git(&["branch", "side"]);
    repo.git(&[
        "remote",
        "add",
        "mirror",
        "https://x-access-token:ghp_planted0123456789abcdefghijklmnopqr@example.com/r.git",
    ]);
    std::fs::create_dir_all(repo.path(".git/objects/pack")).unwrap();
    let yml = repo.read("tgs/tgs.yml").replace(
        "  max_attempts: 1\n",
        &format!(
            "  max_attempts: 1\n  verify_command: bash {}\n",
            verify.display()
        ),
    );
    repo.write("tgs/tgs.yml", &yml);
    repo.publish("a verify command");
    let before = snapshot(env.path());
    let args = ["server", "run", "--no-pr", "--thought", A];
    let (code, err) = if as_nobody {
        let out = env
            .unprivileged(common::tgs_bin())
            .current_dir(&repo.root)
            .env_remove("TGS_SANDBOX")
            .args(args)
            .output()
            .unwrap();
        env.take_back();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code().unwrap_or(-1), err)
    } else {
        let (code, _, err) = run(tgs(&repo).args(args));
        (code, err)
    };
    let log = transcript(&repo);
    assert_eq!(code, 0, "{err}\n{log}");
    for expected in [
        "probe ssh-key: hidden",
        "probe user-config: refused",
        "probe user-objects: refused",
        "probe direct-tcp: refused",
        "probe dns: none",
        "probe tgs-process: unseen",
        "probe user-branch: kept",
        "probe user-pack: kept",
        "probe udp: none",
        "probe remote-token: hidden",
        "probe big-file: 1048576",
        "probe proxy-denied: HTTP/1.1 403 Forbidden",
        "probe proxy-allowed: allowed",
        "verify: contained",
        &format!("egress denied: 127.0.0.1:{denied}"),
    ] {
        assert!(
            log.contains(expected),
            "{expected:?} not in the transcript:\n{log}"
        );
    }
    assert!(
        !env.path().join("verify-escaped").exists(),
        "the verify command wrote outside"
    );
    assert_eq!(denied_hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(allowed_hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    let after = snapshot(env.path());
    let changed: Vec<&String> = after
        .iter()
        .filter(|f| !before.contains(f))
        .map(|(p, _)| p)
        .filter(|p| !p.contains("/r.git/") && !p.contains("/.git/"))
        .collect();
    assert!(changed.is_empty(), "files changed outside: {changed:?}");
    let e = &repo.remote_backlog()["thoughts"][0];
    assert_eq!(e["status"], "completed", "{e}\n{log}");
    let audit = repo.audit();
    let egress = audit
        .iter()
        .find(|r| r["action"] == "egress_denied")
        .unwrap_or_else(|| panic!("no egress_denied in the audit: {audit:?}"));
    assert_eq!(egress["thought"], A);
    assert!(
        egress["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{denied}")),
        "{egress}"
    );
}

/// With the sandbox on (the default) and no bubblewrap to be found, no
/// agent starts: a set-up error naming the package, before anything is
/// claimed. Where bubblewrap is installed, tgs runs in a mount namespace
/// where /usr/bin/bwrap is /dev/null (bubblewrap itself makes it).
#[test]
fn no_sandbox_no_agent_unless_it_is_switched_off() {
    let env = TestEnv::new();
    let repo = lab(&env, WORK, &[]);
    let yml = repo.read("tgs/tgs.yml").replace("    mode: on\n", "");
    repo.write("tgs/tgs.yml", &yml);
    repo.publish("the default mode");
    let (code, err) = if available() {
        let mut c = std::process::Command::new("bwrap");
        c.args(["--dev-bind", "/", "/"]);
        for p in ["/usr/bin/bwrap", "/bin/bwrap", "/usr/local/bin/bwrap"] {
            if Path::new(p).exists() && !Path::new(p).is_symlink() {
                c.args(["--ro-bind", "/dev/null", p]);
            }
        }
        c.arg("--")
            .arg(common::tgs_bin())
            .args(["server", "run", "--no-pr", "--thought", A])
            .current_dir(&repo.root);
        env.pin(&mut c);
        c.env_remove("TGS_SANDBOX");
        let out = c.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    } else {
        let (code, _, err) = run(tgs(&repo).args(["server", "run", "--no-pr", "--thought", A]));
        (code, err)
    };
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no sandbox for the agent")
            && err.contains("bubblewrap")
            && err.contains("hint:"),
        "{err}"
    );
    assert_eq!(repo.remote_backlog()["thoughts"][0]["status"], "queued");
    // Said explicitly, the agent runs uncontained.
    let yml = repo
        .read("tgs/tgs.yml")
        .replace("  sandbox:\n", "  sandbox:\n    mode: off\n");
    repo.write("tgs/tgs.yml", &yml);
    repo.publish("sandbox off");
    let (code, _, err) = run(tgs(&repo).args(["server", "run", "--no-pr", "--thought", A]));
    assert_eq!(code, 0, "{err}");
    let csv = repo.metrics_csv();
    assert!(csv.lines().last().unwrap().ends_with(",off"), "{csv}");
}

/// `server status` says whether sessions run contained here.
#[test]
fn status_says_whether_agents_are_contained() {
    let env = TestEnv::new();
    let repo = lab(&env, WORK, &[]);
    let (code, out, err) = run(tgs(&repo).args(["server", "status"]));
    assert_eq!(code, 0, "{err}");
    let expected = if available() {
        "agents: contained (bubblewrap)"
    } else {
        "agents: none start: no sandbox here"
    };
    assert!(out.contains(expected), "{out}");
    // As `server run` decides: a working copy's change alone changes nothing.
    let yml = repo.read("tgs/tgs.yml").replace("mode: on", "mode: off");
    repo.write("tgs/tgs.yml", &yml);
    let (_, out, err) = run(tgs(&repo).args(["server", "status"]));
    assert!(out.contains(expected), "{out}");
    assert!(err.contains("differs from origin/main's"), "{err}");
    repo.publish("sandbox off");
    let (_, out, _) = run(tgs(&repo).args(["server", "status"]));
    assert!(
        out.contains("agents: not contained (server.sandbox.mode: off)"),
        "{out}"
    );
    let (_, out, _) = run(repo.tgs().args(["server", "status"]));
    assert!(
        out.contains("agents: not contained (TGS_SANDBOX=off)"),
        "{out}"
    );
}

/// `server run --dry-run` prints the exact command that would run the
/// agent inside the sandbox.
#[test]
fn dry_run_prints_the_sandbox_command() {
    if !available() {
        return;
    }
    let env = TestEnv::new();
    let repo = lab(&env, WORK, &[]);
    let (code, out, err) = run(tgs(&repo).args(["server", "run", "--dry-run"]));
    assert_eq!(code, 0, "{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("sandbox:"))
        .unwrap_or_else(|| panic!("no sandbox line:\n{out}"));
    for part in [
        "bwrap --unshare-all --die-with-parent --new-session --cap-drop ALL",
        "--bind",
        ".tgs/worktrees/aaaaaaa-first",
        "debug sandbox-init",
        "agent.sh",
    ] {
        assert!(line.contains(part), "{part:?} not in {line}");
    }
    let (_, out, _) = run(tgs(&repo).args(["--json", "server", "run", "--dry-run"]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["sandbox"]["mode"], "on", "{v}");
}

/// The dry run shows a Codex agent's command as a session would run it:
/// inside the sandbox, pointed at the model gateway (Codex ignores
/// `OPENAI_BASE_URL`), the key a stand-in named, never the key. Before, the
/// printed command lacked the provider it would be given.
#[test]
fn dry_run_shows_codex_pointed_at_the_gateway() {
    if !available() {
        return;
    }
    let env = TestEnv::new();
    let repo = lab(&env, WORK, &[]);
    let bin = env.script("codex", "exit 0\n");
    repo.write(
        "tgs/tgs.yml",
        &format!("server:\n  agent: codex\n  sandbox: {{ mode: on }}\n  agents:\n    codex: {{ driver: codex, bin: {bin} }}\n"),
    );
    repo.publish("codex");
    let key = "sk-proj-dryrun0123456789abcdef0123456789abcdef";
    let (code, out, err) =
        run(tgs(&repo)
            .env("OPENAI_API_KEY", key)
            .args(["--json", "server", "run", "--dry-run"]));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let command = v["command"].as_str().unwrap();
    for part in [
        "model_provider=\"tgs\"",
        "model_providers.tgs.base_url=\"http://openai.model.tgs.invalid",
        "model_providers.tgs.env_key=\"OPENAI_API_KEY\"",
    ] {
        assert!(command.contains(part), "{part} not in {command}");
    }
    assert!(!out.contains(key), "{out}");
}

/// An agent that forks without bound is held to `limits.processes`: the
/// machine stays usable, and what it does after is done. Run as an
/// unprivileged user (the limit does not bind root).
#[test]
fn a_fork_bomb_is_bounded() {
    if !available() {
        return;
    }
    let env = TestEnv::new();
    let fork = env.path().join("fork.py");
    std::fs::write(
        &fork,
        "import os, time\nkids = 0\nfor i in range(300):\n    try:\n        pid = os.fork()\n    except OSError:\n        break\n    if pid == 0:\n        time.sleep(2)\n        os._exit(0)\n    kids += 1\nprint('probe processes:', kids, flush=True)\nfor _ in range(kids):\n    os.wait()\n",
    )
    .unwrap();
    let work = format!("/usr/bin/python3 {}\n{WORK}", fork.display());
    let repo = lab(&env, &work, &[]);
    let yml = repo
        .read("tgs/tgs.yml")
        .replace("processes: 64", "processes: 40");
    repo.write("tgs/tgs.yml", &yml);
    repo.publish("fewer processes");
    let out = env
        .unprivileged(common::tgs_bin())
        .current_dir(&repo.root)
        .env_remove("TGS_SANDBOX")
        .args(["server", "run", "--no-pr", "--thought", A])
        .output()
        .unwrap();
    env.take_back();
    let log = transcript(&repo);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}\n{log}");
    let n: usize = log
        .lines()
        .find_map(|l| l.strip_prefix("probe processes: "))
        .unwrap_or_else(|| panic!("no count:\n{log}"))
        .trim()
        .parse()
        .unwrap();
    assert!(n <= 45, "{n} processes ran at once:\n{log}");
    assert_eq!(
        repo.remote_backlog()["thoughts"][0]["status"],
        "completed",
        "{log}"
    );
}

/// An agent whose program sits in the user's home (found by a new user's
/// trial: its directory was bound, home and all) sees nothing else there.
#[test]
fn a_program_in_the_home_directory_does_not_show_the_home() {
    if !available() {
        return;
    }
    let env = TestEnv::new();
    std::fs::create_dir_all(env.home.join(".ssh")).unwrap();
    std::fs::write(env.home.join(".ssh/id_rsa"), "PLANTED-SSH-KEY\n").unwrap();
    let repo = lab(&env, WORK, &[]);
    let agent = env.home.join("agent.sh");
    script(
        &agent,
        &format!(
            "#!/bin/bash\n(grep -q PLANTED {}/.ssh/id_rsa) 2>/dev/null && echo 'probe key: READ' || echo 'probe key: hidden'\n{WORK}",
            env.home.display()
        ),
    );
    let yml = repo.read("tgs/tgs.yml").replace(
        &env.path().join("agent.sh").display().to_string(),
        &agent.display().to_string(),
    );
    repo.write("tgs/tgs.yml", &yml);
    repo.publish("the agent in the home");
    let (code, _, err) = run(tgs(&repo).args(["server", "run", "--no-pr", "--thought", A]));
    let log = transcript(&repo);
    assert_eq!(code, 0, "{err}\n{log}");
    assert!(log.contains("probe key: hidden"), "{log}");
}

/// What a contained session leaves says so, locally and through the
/// matrix's artifact: the metrics row names the sandbox (the dashboard
/// counts it), and the connections the sandbox refused in the agent's job
/// reach the hand-over job's audit. A session run with the sandbox off
/// says `off`.
#[test]
fn sessions_record_their_containment_and_the_matrix_its_refusals() {
    if !available() {
        return;
    }
    let env = TestEnv::new();
    let (denied, hits) = server("secret");
    let work = format!(
        "(exec 3<>/dev/tcp/127.0.0.1/3128 && printf 'CONNECT 127.0.0.1:{denied} HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' >&3 && timeout 5 head -1 <&3)\n{WORK}"
    );
    let repo = lab(&env, &work, &[]);
    let (_, out, _) =
        run(tgs(&repo).args(["server", "matrix", "--max", "1", "--worker-id", "actions/1"]));
    let matrix: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let t = &matrix["include"][0];
    let job = repo.clone_as("job");
    job.git(&["remote", "set-url", "origin", "/nonexistent/remote.git"]);
    let art = env.path().join("art");
    let mut c = job.tgs();
    c.env_remove("TGS_SANDBOX")
        .args(["server", "run", "--claimed", A])
        .args(["--claim-id", t["claim_id"].as_str().unwrap()])
        .args(["--attempt", &t["attempt"].to_string()])
        .args(["--worker-id", "actions/1", "--handover-out"])
        .arg(&art);
    let (code, out, err) = run(&mut c);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(tgs(&repo)
        .args(["server", "handover", "--no-pr", "--claims"])
        .arg(matrix.to_string())
        .arg(&art));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    let audit = repo.audit();
    let egress = audit
        .iter()
        .find(|r| r["action"] == "egress_denied")
        .unwrap_or_else(|| panic!("the artifact's refusals were not audited: {audit:?}"));
    assert!(
        egress["reason"].as_str().unwrap().starts_with(&format!(
            "1 connection(s) refused by the sandbox: 127.0.0.1:{denied}"
        )),
        "{egress}"
    );
    let csv = repo.metrics_csv();
    assert!(csv.lines().next().unwrap().ends_with(",sandbox"), "{csv}");
    assert!(
        csv.lines().nth(1).unwrap().ends_with(",bubblewrap"),
        "{csv}"
    );
    let site = env.path().join("site");
    let (code, _, err) = run(tgs(&repo).args(["server", "dashboard", "--out"]).arg(&site));
    assert_eq!(code, 0, "{err}");
    let index = std::fs::read_to_string(site.join("index.html")).unwrap();
    assert!(
        index.contains("<dd id=\"m-contained\">all 1 sessions (bubblewrap)</dd>"),
        "{index}"
    );
}

/// An agent that fills what it can write: its private scratch filesystems
/// stop at `limits.scratch_mb` (memory, not the machine's), and writing
/// file after file into its repository stops the session once the disk
/// lost more than `limits.disk_mb`, long before the agent is done.
#[test]
fn filling_the_disk_or_the_memory_stops_at_the_limits() {
    if !available() {
        return;
    }
    let env = TestEnv::new();
    let work = "for d in /tmp \"$HOME\" /dev/shm; do\n  \
                  head -c 40000000 /dev/zero > \"$d/fill\" 2>/dev/null\n  \
                  echo \"probe scratch $d: $(( $(stat -c %s \"$d/fill\" 2>/dev/null || echo 0) / 1048576 ))\"\n  \
                  rm -f \"$d/fill\"\n\
                done\n\
                for i in $(seq 1 400); do head -c 1000000 /dev/zero > fill-$i.bin; sleep 0.02; done\n\
                echo 'probe disk: all written'\n";
    let repo = lab(&env, work, &[]);
    let yml = repo.read("tgs/tgs.yml").replace(
        "limits: { file_size_mb: 1, processes: 64 }",
        "limits: { processes: 64, scratch_mb: 8, disk_mb: 40 }",
    );
    repo.write("tgs/tgs.yml", &yml);
    repo.publish("small limits");
    let started = std::time::Instant::now();
    let (code, _, err) = run(tgs(&repo).args(["server", "run", "--no-pr", "--thought", A]));
    let log = transcript(&repo);
    assert_eq!(code, 1, "{err}\n{log}");
    for d in ["/tmp", "/dev/shm"] {
        let n: u64 = log
            .lines()
            .find_map(|l| l.strip_prefix(&format!("probe scratch {d}: ")))
            .unwrap_or_else(|| panic!("no {d} probe:\n{log}"))
            .trim()
            .parse()
            .unwrap();
        assert!(n <= 8, "{d} held {n} MiB:\n{log}");
    }
    assert!(!log.contains("probe disk: all written"), "{log}");
    let e = &repo.remote_backlog()["thoughts"][0];
    let last = e["last_error"].as_str().unwrap_or_default();
    assert!(
        last.contains("more than server.sandbox.limits.disk_mb (40 MiB)"),
        "{last}\n{log}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "stopped only after {:?}",
        started.elapsed()
    );
}

/// An agent run from a terminal (tgs under a pseudo-terminal, as an
/// unprivileged user) tries to type into that terminal (`TIOCSTI` on every
/// descriptor it has and on `/dev/tty`), to find, signal and trace
/// processes outside its sandbox, and finally kills every process it can
/// (`kill -KILL -1`). None of it reaches tgs: tgs records how the session
/// ended.
#[test]
fn the_agent_cannot_type_into_the_terminal_nor_signal_or_trace_tgs() {
    if !available() || !Path::new("/usr/bin/script").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have script (util-linux)"
        );
        return;
    }
    let env = TestEnv::new();
    let probe = env.path().join("probe.py");
    std::fs::write(
        &probe,
        r##"import ctypes, errno, fcntl, os, signal, termios
def say(k, v): print(f"probe {k}: {v}", flush=True)
fds = [0, 1, 2]
try:
    fds.append(os.open("/dev/tty", os.O_RDWR)); say("dev-tty", "OPENED")
except OSError:
    say("dev-tty", "refused")
typed = []
for fd in fds:
    try:
        fcntl.ioctl(fd, termios.TIOCSTI, b"#"); typed.append(fd)
    except OSError:
        pass
say("tiocsti", f"TYPED into {typed}" if typed else "refused")
reach = []
for pid in range(1, 1 << 16):
    try:
        os.kill(pid, 0); reach.append(pid)
    except PermissionError:
        reach.append(pid)
    except ProcessLookupError:
        pass
say("signalable", len(reach))
libc = ctypes.CDLL(None, use_errno=True)
cmds = []
for pid in reach:
    try:
        cmds.append(open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode())
    except OSError:
        cmds.append("?")
say("tgs-seen", "SEEN" if any("server run" in c for c in cmds) else "unseen")
"##,
    )
    .unwrap();
    let work = format!(
        "/usr/bin/python3 {}\n{WORK}/usr/bin/python3 -c 'import os, signal; os.kill(-1, signal.SIGKILL)'\necho 'probe survived: yes'\n",
        probe.display()
    );
    let repo = lab(&env, &work, &[]);
    let yml = repo.read("tgs/tgs.yml").replace(
        &format!("\"{}\"]", env.path().join("fork.py").display()),
        &format!(
            "\"{}\", \"{}\"]",
            env.path().join("fork.py").display(),
            probe.display()
        ),
    );
    repo.write("tgs/tgs.yml", &yml);
    repo.publish("the probe");
    let line = format!(
        "{} server run --no-pr --thought {A}",
        common::tgs_bin().display()
    );
    let out = env
        .unprivileged("/usr/bin/script")
        .current_dir(&repo.root)
        .env_remove("TGS_SANDBOX")
        .args(["-qec", &line, "/dev/null"])
        .output()
        .unwrap();
    env.take_back();
    let log = transcript(&repo);
    let said = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "probe dev-tty: refused",
        "probe tiocsti: refused",
        "probe tgs-seen: unseen",
    ] {
        assert!(log.contains(expected), "{expected:?} not in:\n{log}");
    }
    let n: usize = log
        .lines()
        .find_map(|l| l.strip_prefix("probe signalable: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(n <= 8, "{n} processes could be signalled:\n{log}");
    assert!(!log.contains("probe survived"), "{log}");
    // tgs lived to record the agent's end (the sandbox's init reports the
    // agent killed by signal 9 as status 137), and said so on the terminal.
    let e = &repo.remote_backlog()["thoughts"][0];
    let last = e["last_error"].as_str().unwrap_or_default();
    assert!(
        last.contains("status 137") || last.contains("signal 9"),
        "{e}\n{said}\n{log}"
    );
    assert!(said.contains(last), "{said}");
}

/// An agent that leaves symbolic links in its repository's `.git` (its
/// branches' directory pointing at the user's, its `config` at a file of
/// the user's) steers none of tgs's writes through them: tgs reads nothing
/// there and writes nothing; the user's branch and file are as they were.
#[test]
fn links_in_the_agents_git_directory_lead_tgs_nowhere() {
    if !available() {
        return;
    }
    let env = TestEnv::new();
    let victim = env.path().join("victim.txt");
    std::fs::write(&victim, "precious\n").unwrap();
    let work = format!(
        "{WORK}user=$(dirname \"$(cat .git/objects/info/alternates)\")\n\
         echo 'pub fn more() {{}}' >> src/lib.rs\n\
         git symbolic-ref HEAD refs/heads/main\n\
         rm -rf .git/refs/heads && ln -s \"$user/refs/heads\" .git/refs/heads\n\
         rm -f .git/config && ln -s {} .git/config\n",
        victim.display()
    );
    let repo = lab(&env, &work, &[]);
    let main = repo.git(&["rev-parse", "refs/heads/main"]);
    let (_, _, err) = run(tgs(&repo).args(["server", "run", "--no-pr", "--thought", A]));
    let log = transcript(&repo);
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "precious\n",
        "{err}\n{log}"
    );
    assert_eq!(
        repo.git(&["rev-parse", "refs/heads/main"]),
        main,
        "{err}\n{log}"
    );
    let e = &repo.remote_backlog()["thoughts"][0];
    let last = e["last_error"].as_str().unwrap_or_default();
    assert!(last.contains("symbolic link"), "{e}\n{err}\n{log}");
    assert_eq!(repo.git(&["ls-remote", "origin", "refs/heads/tgs/*"]), "");
}
