//! What an agent, and what it leaves running, cannot reach or hold
//! (issue 18): the token in tgs's git children, a session's leftover
//! processes, the locks tgs takes. Scripted agents and a snooping process
//! of the same (unprivileged) user, against the real binary.

mod common;
#[path = "support/githttp.rs"]
mod githttp;
#[path = "support/loopback.rs"]
mod loopback;

use base64::Engine;
use common::{run, script, TestEnv, TestRepo};

const TOKEN: &str = "ghs_escape_test_token_0123456789abc";
const A: &str = "tgs/thoughts/aaaaaaa-first";

/// Code, the summary and a commit, as an honest agent does.
const WORK: &str = "echo 'pub fn first() {}' >> src/lib.rs\nprintf '# Implementation\\n\\nDone.\\n' > \"$TGS_THOUGHT_DIR/implementation.md\"\ngit add -A && git commit -qm work\n";

/// One approved thought, queued, and a plain-command agent running `work`.
fn lab<'e>(env: &'e TestEnv, work: &str) -> TestRepo<'e> {
    let agent = env.path().join("agent.sh");
    script(&agent, &format!("#!/bin/bash\nset -e\n{work}\n"));
    let repo = env.repo("r");
    repo.approved("aaaaaaa-first", "First");
    repo.write(
        "tgs/tgs.yml",
        &format!(
            "server:\n  agent: mine\n  max_attempts: 1\n  kill_grace: 1s\n  agents:\n    mine: {{ command: {} }}\n",
            agent.display()
        ),
    );
    repo.publish("a thought");
    let (code, _, err) = run(repo.tgs().args(["server", "scan"]));
    assert_eq!(code, 0, "{err}");
    repo
}

/// A process of tgs's user that reads every process's environment and
/// command line (`/proc/<pid>/environ`, `cmdline`) as fast as it can until
/// `stop` exists, and writes each one holding any of `needles` to `report`.
const SNOOPER: &str = r#"
import os, sys
report, stop, host = sys.argv[1], sys.argv[2], sys.argv[3].encode()
needles = [n.encode() for n in sys.argv[4:]]
me = str(os.getpid())
seen = 0

asked = set()

def ask_broker(environ, out):
    # The broker's socket is named in git's configuration: ask it as git's
    # credential helper would, from a process that is not tgs's git.
    import re, socket
    for m in re.finditer(rb"git-credential ([^\s\x00]+)", environ):
        path = m.group(1).strip(b"'").decode()
        if path in asked:
            continue
        asked.add(path)
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            s.sendall(b"protocol=http\nhost=" + host + b"\n")
            s.shutdown(socket.SHUT_WR)
            reply = s.recv(65536)
            out.write(f"asked the broker at {path}: {len(reply)} bytes\n")
            if any(n in reply for n in needles):
                out.write("FOUND in the broker's answer\n")
        except OSError as e:
            out.write(f"asked the broker at {path}: {e}\n")

def launched(pid):
    # The tgs the test started holds the token its caller gave it: it is
    # not dumpable, but only from its first instruction on.
    try:
        return b"server\0run" in open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        return False

with open(report, "a") as out:
    while not os.path.exists(stop):
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or pid == me:
                continue
            for f in ("environ", "cmdline"):
                try:
                    with open(f"/proc/{pid}/{f}", "rb") as h:
                        data = h.read()
                except OSError:
                    continue
                if f == "environ" and b"GIT_" in data:
                    seen += 1
                    ask_broker(data, out)
                if any(n in data for n in needles) and not launched(pid):
                    try:
                        comm = open(f"/proc/{pid}/comm").read().strip()
                    except OSError:
                        comm = "?"
                    try:
                        args = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ")
                    except OSError:
                        args = b"?"
                    out.write(f"FOUND {f} of {pid} {comm}: {args[:200]!r}\n")
                    out.flush()
    out.write(f"read {seen} git environments\n")
"#;

/// The system's Python (an unprivileged user may not reach one installed
/// under root's home).
fn python() -> &'static str {
    ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("python3")
}

/// tgs pushes over HTTP with its token (as in GitHub Actions), while a
/// process of the same user reads every process's environment and command
/// line: git authenticates (through tgs's credential broker), and the
/// token is in none of them, raw or base64-encoded as an HTTP header; the
/// snooper, asking the broker itself as git's helper would, gets nothing.
#[test]
fn the_token_is_in_no_git_childs_environment_or_command_line() {
    let env = TestEnv::new();
    let repo = lab(&env, WORK);
    let server = githttp::GitHttp::start(repo.origin.parent().unwrap(), TOKEN);
    let origin_name = repo
        .origin
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    repo.git(&["remote", "set-url", "origin", &server.url(&origin_name)]);
    let (report, stop) = (env.path().join("snoop"), env.path().join("snoop.stop"));
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{TOKEN}"));
    let mut snooper = env
        .unprivileged(python())
        .arg("-c")
        .arg(SNOOPER)
        .args([&report, &stop])
        .arg(server.base().trim_start_matches("http://"))
        .args([TOKEN, &basic])
        .spawn()
        .unwrap();
    let out = env
        .unprivileged(common::tgs_bin())
        .current_dir(&repo.root)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_SERVER_URL", server.base())
        .env("GITHUB_TOKEN", TOKEN)
        .args(["server", "run", "--no-pr", "--thought", A])
        .output()
        .unwrap();
    std::fs::write(&stop, "").unwrap();
    snooper.wait().unwrap();
    env.take_back();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let report = std::fs::read_to_string(&report).unwrap();
    assert!(
        !report.contains("FOUND"),
        "the token was readable:\n{report}"
    );
    assert!(
        !report.contains("read 0 git environments"),
        "the snooper saw no git process: it proves nothing\n{report}"
    );
    assert!(
        report.contains("asked the broker at "),
        "the snooper never found the broker to ask:\n{report}"
    );
    assert!(server.authorized() > 0, "git never authenticated");
    let bare = repo.origin.to_str().unwrap();
    let pushed = repo.git(&["ls-remote", bare, "refs/heads/tgs/aaaaaaa-first"]);
    assert!(
        !pushed.is_empty(),
        "the branch was not pushed over HTTP: {err}"
    );
}

/// The pids of live processes whose command line holds `needle`.
fn running(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let args = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let zombie = stat.rsplit_once(')')?.1.trim_start().starts_with('Z');
            let args = String::from_utf8_lossy(&args).replace('\0', " ");
            (!zombie && args.contains(needle)).then(|| format!("{pid}: {args}"))
        })
        .collect()
}

/// Every way an agent can leave a process behind that a process group and
/// an environment marker miss: `setsid` with a cleared environment, a
/// double fork into a new session, `nohup` in the background, a process
/// that changes its own group. All end with the session, before tgs does,
/// whether the agent ends by itself or is stopped by its timeout.
#[test]
fn nothing_an_agent_starts_outlives_its_session() {
    for (case, tail, timeout) in [
        ("exits", "", ""),
        ("times out", "sleep 600\n", "  session_timeout: 2s\n"),
    ] {
        let env = TestEnv::new();
        let tag = format!("tgs-leftover-{}", std::process::id());
        let work = format!(
            "{WORK}setsid env -i /bin/bash -c 'exec -a {tag}-setsid sleep 313' < /dev/null > /dev/null 2>&1 &\n\
             (setsid bash -c '(exec -a {tag}-double sleep 313) &' &) < /dev/null > /dev/null 2>&1\n\
             nohup bash -c 'exec -a {tag}-nohup sleep 313' < /dev/null > /dev/null 2>&1 &\n\
             perl -e 'setpgrp(0,0); exec {{\"sleep\"}} \"{tag}-pgrp\", \"313\"' < /dev/null > /dev/null 2>&1 &\n\
             sleep 0.5\n{tail}"
        );
        let repo = lab(&env, &work);
        if !timeout.is_empty() {
            let yml = repo.read("tgs/tgs.yml").replace(
                "  max_attempts: 1\n",
                &format!("  max_attempts: 1\n{timeout}"),
            );
            repo.write("tgs/tgs.yml", &yml);
            repo.publish("a timeout");
        }
        let (_, _, err) = run(repo
            .tgs()
            .args(["server", "run", "--no-pr", "--thought", A]));
        let left = running(&tag);
        for line in &left {
            let pid = line.split(':').next().unwrap();
            let _ = std::process::Command::new("kill")
                .args(["-9", pid])
                .status();
        }
        assert!(left.is_empty(), "{case}: the session left {left:?}\n{err}");
    }
}

/// tgs killed (SIGKILL) mid-session: what the agent started, in its group
/// or out of it, ends too, without waiting for a later run to find it.
#[test]
fn nothing_an_agent_starts_outlives_a_killed_tgs() {
    let env = TestEnv::new();
    let tag = format!("tgs-orphan-{}", std::process::id());
    let work = format!(
        "{WORK}setsid env -i /bin/bash -c 'exec -a {tag}-setsid sleep 313' < /dev/null > /dev/null 2>&1 &\n\
         exec -a {tag}-agent sleep 313\n"
    );
    let repo = lab(&env, &work);
    let mut tgs = std::process::Command::new(common::tgs_bin());
    env.pin(&mut tgs);
    let mut child = tgs
        .current_dir(&repo.root)
        .args(["server", "run", "--no-pr", "--thought", A])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let until = |what: &str, done: &dyn Fn() -> bool| {
        let start = std::time::Instant::now();
        while !done() {
            assert!(
                start.elapsed().as_secs() < 20,
                "timed out waiting for {what}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    until("the agent", &|| running(&tag).len() == 2);
    child.kill().unwrap();
    child.wait().unwrap();
    until("the session's processes to end", &|| {
        running(&tag).is_empty()
    });
}

/// An agent that rewrites the user's working copy of `tgs/tgs.yml` (its
/// guardrails emptied, another agent command) steers no later session:
/// server mode reads the configuration committed on the base, and says the
/// working copy differs.
#[test]
fn an_agent_that_edits_the_working_copys_configuration_steers_no_later_session() {
    let env = TestEnv::new();
    let planted = env.path().join("planted.sh");
    script(&planted, "#!/bin/bash\ntouch \"$0.ran\"\n");
    let work = format!(
        "case \"$TGS_THOUGHT_DIR\" in\n\
         *aaaaaaa-first)\n\
           root=$(dirname \"$(dirname \"$(cat .git/objects/info/alternates)\")\")\n\
           printf 'server:\\n  agent: mine\\n  max_attempts: 1\\n  guardrails:\\n    deny_paths: []\\n  verify_command: {planted}\\n  agents:\\n    mine: {{ command: %s }}\\n' \"$0\" > \"$root/tgs/tgs.yml\"\n\
           {WORK};;\n\
         *)\n\
           mkdir -p .github/workflows && echo 'on: push' > .github/workflows/evil.yml\n\
           printf '# Implementation\\n\\nDone.\\n' > \"$TGS_THOUGHT_DIR/implementation.md\"\n\
           git add -A && git commit -qm workflow;;\n\
         esac\n",
        planted = planted.display()
    );
    let repo = lab(&env, &work);
    repo.approved("bbbbbbb-second", "Second");
    repo.publish("a second thought");
    let (code, _, err) = run(repo.tgs().args(["server", "scan"]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(repo
        .tgs()
        .args(["server", "run", "--no-pr", "--thought", A]));
    assert_eq!(code, 0, "{err}");
    assert!(
        repo.read("tgs/tgs.yml").contains("deny_paths: []"),
        "the agent did not plant its configuration"
    );
    let second = "tgs/thoughts/bbbbbbb-second";
    let (_, _, err) = run(repo
        .tgs()
        .args(["server", "run", "--no-pr", "--thought", second]));
    let refs = repo.git(&["ls-remote", "origin"]);
    assert!(
        !refs.contains("bbbbbbb"),
        "the workflow was pushed\n{refs}\n{err}"
    );
    let backlog = repo.remote_backlog();
    let entry = backlog["thoughts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["dir"] == second)
        .unwrap();
    assert_eq!(entry["status"], "failed", "{err}");
    assert!(
        entry["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains(".github/workflows/evil.yml"),
        "{entry}"
    );
    assert!(
        !env.path().join("planted.sh.ran").exists(),
        "the planted verify command ran"
    );
    assert!(
        err.contains("tgs/tgs.yml in your working copy differs from origin/main's"),
        "{err}"
    );
}

/// The agent works in a repository of its own: what its git does there
/// (configuration with commands in it, hooks, branches) reaches nothing of
/// the user's repository, and nothing it planted runs when tgs takes the
/// work (the uncommitted part goes through `git add`, where a filter would
/// run).
#[test]
fn the_agents_own_repository_reaches_nothing_of_the_users() {
    let env = TestEnv::new();
    let planted = env.path().join("planted.sh");
    // Run by the agent's own git it does nothing; run by anything else
    // (tgs's git has no TGS_WORKTREE) it leaves a mark.
    script(
        &planted,
        "#!/bin/bash\n[ -n \"$TGS_WORKTREE\" ] || touch \"$0.ran\"\ncat\n",
    );
    let p = planted.display();
    let work = format!(
        "git config core.fsmonitor {p}\n\
         git config filter.x.clean {p}\n\
         git config include.path /dev/null\n\
         echo '* filter=x' > .gitattributes\n\
         mkdir -p .git/hooks && for h in reference-transaction post-commit pre-commit post-checkout; do cp {p} .git/hooks/$h; done\n\
         git branch -f main HEAD && git branch side\n\
         {WORK}\
         echo 'left for tgs' > uncommitted.txt\n"
    );
    let repo = lab(&env, &work);
    let config = std::fs::read(repo.path(".git/config")).unwrap();
    let branches = || {
        repo.git(&[
            "for-each-ref",
            "--format=%(refname) %(objectname)",
            "refs/heads",
        ])
    };
    let before = branches();
    let (code, _, err) = run(repo
        .tgs()
        .args(["server", "run", "--no-pr", "--thought", A]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        repo.remote_backlog()["thoughts"][0]["status"],
        "completed",
        "{err}"
    );
    assert!(
        !env.path().join("planted.sh.ran").exists(),
        "a planted command ran\n{err}"
    );
    assert_eq!(std::fs::read(repo.path(".git/config")).unwrap(), config);
    let head = repo.remote_backlog()["thoughts"][0]["head"]
        .as_str()
        .unwrap()
        .to_owned();
    let after: Vec<String> = branches()
        .lines()
        .filter(|l| !l.starts_with("refs/heads/tgs/"))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        after.join("\n"),
        before,
        "no branch of the user's moved or appeared"
    );
    let files = repo.git(&["ls-tree", "-r", "--name-only", &head]);
    assert!(files.contains("uncommitted.txt"), "{files}");
}

/// Run the session of thought A: it must end with `why` in its last error
/// and nothing of it on origin.
fn refused_and_not_pushed(repo: &TestRepo, why: &str) {
    let (_, _, err) = run(repo
        .tgs()
        .args(["server", "run", "--no-pr", "--thought", A]));
    let e = &repo.remote_backlog()["thoughts"][0];
    assert!(
        e["last_error"].as_str().unwrap_or_default().contains(why),
        "{e}\n{err}"
    );
    assert_eq!(repo.git(&["ls-remote", "origin", "refs/heads/tgs/*"]), "");
}

/// An agent that swaps its repository's `.git` for a pointer at the user's
/// git directory has its work rejected, and tgs runs no git there.
#[test]
fn an_agent_that_replaces_its_git_directory_is_rejected() {
    let env = TestEnv::new();
    let work = format!(
        "{WORK}user=$(dirname \"$(cat .git/objects/info/alternates)\")\n\
         rm -rf .git && echo \"gitdir: $user\" > .git\n"
    );
    let repo = lab(&env, &work);
    refused_and_not_pushed(&repo, "replaced its repository's .git");
}

/// An agent whose history drops the commit its session started from (here
/// it rewrites the whole history as one new root commit) has its work
/// rejected, never pushed over it.
#[test]
fn work_that_does_not_build_on_its_start_is_rejected() {
    let env = TestEnv::new();
    let work = format!("git checkout -q --orphan rewritten && git commit -qm rewritten\n{WORK}");
    let repo = lab(&env, &work);
    refused_and_not_pushed(&repo, "does not build on where the session started");
}
