//! The test environment: every test gets its own temporary HOME with a pinned
//! git configuration, a pinned clock (`TGS_NOW`) and git repositories with a
//! local bare remote as `origin`, and runs the real `tgs` binary in them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

/// The `tgs` binary the tests drive: `TGS_TEST_BIN` when set (CI points it
/// at the binary `cargo build --release --locked` made, the one users
/// install: dev-dependencies switch on features of shared crates that it
/// lacks), else the one Cargo built for this test run. Under CI (`CI` set)
/// an unset `TGS_TEST_BIN` fails the test: a pass must say which binary it
/// tested.
pub fn tgs_bin() -> PathBuf {
    match std::env::var_os("TGS_TEST_BIN") {
        Some(p) if !p.is_empty() => {
            let p = PathBuf::from(p);
            assert!(p.is_file(), "TGS_TEST_BIN={} is not a file", p.display());
            p
        }
        _ => {
            assert!(
                std::env::var_os("CI").is_none_or(|v| v.is_empty() || v == "false"),
                "under CI, set TGS_TEST_BIN to the tgs binary to test (see .ci/run)"
            );
            PathBuf::from(env!("CARGO_BIN_EXE_tgs"))
        }
    }
}

/// The branch that holds the shared state by default.
pub const STATE: &str = "tgs-state";

/// The time every test runs at unless it moves the clock.
pub const NOW: &str = "2026-01-15T12:00:00Z";

/// Every file under `dir` with its contents, sorted, skipping whatever is
/// named one of `skip` (to see what a command wrote).
pub fn snapshot(dir: &Path, skip: &[&str]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| skip.iter().any(|s| n == *s)) {
                continue;
            }
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else {
                out.push((
                    p.display().to_string(),
                    std::fs::read(&p).unwrap_or_default(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// Whether bubblewrap can make a sandbox here (asked once).
pub fn sandbox_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        ["/usr/bin/bwrap", "/bin/bwrap", "/usr/local/bin/bwrap"]
            .iter()
            .find(|p| Path::new(p).is_file())
            .is_some_and(|bwrap| {
                Command::new(bwrap)
                    .args(["--unshare-all", "--die-with-parent", "--ro-bind", "/", "/"])
                    .args(["--", "/bin/true"])
                    .status()
                    .is_ok_and(|s| s.success())
            })
    })
}

pub struct TestEnv {
    pub tmp: TempDir,
    pub home: PathBuf,
    pub now: String,
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl TestEnv {
    pub fn new() -> TestEnv {
        let tmp = tempfile::Builder::new()
            .prefix("tgs-test-")
            .tempdir()
            .unwrap();
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(
            home.join(".gitconfig"),
            "[user]\n\tname = Test User\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n[core]\n\tautocrlf = false\n[advice]\n\tdetachedHead = false\n",
        )
        .unwrap();
        TestEnv {
            tmp,
            home,
            now: NOW.into(),
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Apply the pinned environment to any command (git or tgs).
    pub fn pin(&self, cmd: &mut Command) {
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("GIT_") || k.starts_with("TGS_") || k.starts_with("GITHUB_") {
                cmd.env_remove(&k);
            }
        }
        cmd.env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", self.home.join(".gitconfig"))
            .env("GIT_AUTHOR_DATE", "2026-01-15T12:00:00Z")
            .env("GIT_COMMITTER_DATE", "2026-01-15T12:00:00Z")
            .env("USER", "tester")
            .env("NO_COLOR", "1")
            .env("LC_ALL", "C")
            .env("TGS_NOW", &self.now)
            // One machine's turns (see `backlog::turn`) per test environment.
            .env("TGS_LOCK_DIR", self.tmp.path().join("locks"));
        // Scripted agents here keep notes beside the repository (counters,
        // markers), which the sandbox (the default) forbids: tests run them
        // uncontained, except those about the sandbox (tests/sandbox.rs and
        // the sandboxed Claude test), which remove this and so run the default.
        cmd.env("TGS_SANDBOX", "off");
    }

    /// A command for `program` that runs as an unprivileged user, the way
    /// tgs and its agents run in real use: root reads any process's `/proc`
    /// files, so a test of what a process of the *same user* cannot read
    /// must not run as root. As root (CI), the command goes through
    /// `setpriv` (util-linux) as uid/gid 65534 (`nobody`; no user needs to
    /// be created) and this environment's directory is handed to that uid
    /// until [`TestEnv::take_back`]; otherwise it is a plain command. As
    /// root without `setpriv`, the test fails.
    pub fn unprivileged(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let Some(setpriv) = Self::setpriv() else {
            let mut cmd = Command::new(program);
            self.pin(&mut cmd);
            return cmd;
        };
        self.chown("65534:65534");
        let mut cmd = Command::new(setpriv);
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(program);
        self.pin(&mut cmd);
        cmd
    }

    /// Give this environment's directory back to root after
    /// [`TestEnv::unprivileged`] (nothing to do when not root).
    pub fn take_back(&self) {
        if Self::setpriv().is_some() {
            self.chown("0:0");
        }
    }

    /// `setpriv`'s path when running as root (None when not root).
    fn setpriv() -> Option<&'static str> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        let found = ["/usr/bin/setpriv", "/bin/setpriv"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        assert!(
            found.is_some(),
            "running as root, the test must run tgs as another user: install setpriv (util-linux)"
        );
        found
    }

    fn chown(&self, owner: &str) {
        let ok = Command::new("chown")
            .args(["-R", owner])
            .arg(self.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "chown -R {owner}");
    }

    /// A new repository `name` with one commit and no remote: state stays local.
    pub fn local_repo(&self, name: &str) -> TestRepo<'_> {
        let root = self.path().join(name);
        let origin = self.path().join(format!("{name}.git"));
        std::fs::create_dir_all(&root).unwrap();
        let r = TestRepo {
            root,
            origin,
            env: self,
        };
        r.git(&["init", "-q", "-b", "main"]);
        r.write("README.md", "# Demo project\n");
        r.write("src/lib.rs", "pub fn answer() -> u32 { 42 }\n");
        r.commit_all("initial commit");
        r
    }

    /// A new repository `name` with one commit and a bare `origin` beside it.
    pub fn repo(&self, name: &str) -> TestRepo<'_> {
        let r = self.local_repo(name);
        let status = self
            .git_cmd(self.path())
            .args(["init", "-q", "--bare", "-b", "main"])
            .arg(&r.origin)
            .status()
            .unwrap();
        assert!(status.success());
        r.git(&["remote", "add", "origin", r.origin.to_str().unwrap()]);
        r.git(&["push", "-q", "-u", "origin", "main"]);
        r
    }

    /// An executable bash script `name` in this environment's directory,
    /// `body` after its `#!/bin/bash` line; returns its path.
    pub fn script(&self, name: &str, body: &str) -> String {
        let path = self.path().join(name);
        script(&path, &format!("#!/bin/bash\n{body}"));
        path.display().to_string()
    }

    pub fn git_cmd(&self, dir: &Path) -> Command {
        let mut c = Command::new("git");
        c.current_dir(dir);
        self.pin(&mut c);
        c
    }

    pub fn tgs_cmd(&self, dir: &Path) -> assert_cmd::Command {
        let mut c = Command::new(tgs_bin());
        c.current_dir(dir);
        self.pin(&mut c);
        assert_cmd::Command::from_std(c)
    }
}

pub struct TestRepo<'e> {
    pub root: PathBuf,
    pub origin: PathBuf,
    pub env: &'e TestEnv,
}

impl<'e> TestRepo<'e> {
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root.join(rel)).unwrap()
    }

    /// Run git here; panics on failure, returns trimmed stdout.
    pub fn git(&self, args: &[&str]) -> String {
        let out = self.git_out(args);
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
    }

    pub fn git_out(&self, args: &[&str]) -> Output {
        self.env.git_cmd(&self.root).args(args).output().unwrap()
    }

    pub fn commit_all(&self, msg: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", msg]);
    }

    /// Write a thought's files (name relative to `tgs/thoughts/`).
    pub fn thought(&self, name: &str, files: &[(&str, &str)]) -> String {
        let dir = format!("tgs/thoughts/{name}");
        for (f, body) in files {
            self.write(&format!("{dir}/{f}"), body);
        }
        dir
    }

    /// A thought with a README, research and plan: approved once committed.
    pub fn approved(&self, name: &str, title: &str) -> String {
        let hash = name.split('-').next().unwrap();
        self.thought(
            name,
            &[
                (
                    "README.md",
                    &format!("# {hash} - {title}\n\n- Base Hash: `{hash}`\n"),
                ),
                (
                    "research.md",
                    &format!("# Research: {title}\n\nWe looked into it.\n"),
                ),
                ("plan.md", &format!("# Plan: {title}\n\n1. Do it.\n")),
            ],
        )
    }

    pub fn tgs(&self) -> assert_cmd::Command {
        self.env.tgs_cmd(&self.root)
    }

    /// `tgs server run ARGS` here with the real clock (leases, retry
    /// delays and grace periods are real time): (exit code, stdout, stderr).
    pub fn server_run(&self, args: &[&str]) -> (i32, String, String) {
        run(self
            .tgs()
            .env_remove("TGS_NOW")
            .args(["server", "run"])
            .args(args))
    }

    /// Every entry the shared state holds (see [`TestRepo::state_file`]): the
    /// live backlog, with the archived entries (finished ones) after it.
    pub fn backlog(&self) -> serde_json::Value {
        let mut b = self.live_backlog();
        let archived = self.archived();
        let list = b["thoughts"].as_array_mut().unwrap();
        for a in archived {
            if !list.iter().any(|e| e["dir"] == a["dir"]) {
                list.push(a);
            }
        }
        b
    }

    /// The live backlog file of the shared state, without the archive.
    pub fn live_backlog(&self) -> serde_json::Value {
        let text = self
            .state_file("tgs/server/backlog.json")
            .expect("the state branch holds a backlog");
        serde_json::from_str(&text).unwrap()
    }

    /// The backlog file of the working tree (`--no-commit` writes only that).
    pub fn worktree_backlog(&self) -> serde_json::Value {
        serde_json::from_str(&self.read("tgs/server/backlog.json")).unwrap()
    }

    /// A file of the shared state: on origin's state branch when this
    /// repository has a remote, else on the local state branch (local-only work).
    pub fn state_file(&self, path: &str) -> Option<String> {
        let spec = format!("{}:{path}", self.state_ref());
        let out = self.git_out(&["show", &spec]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Where the shared state is: origin's state branch as last fetched
    /// (fetched now), else the local state branch.
    pub fn state_ref(&self) -> String {
        if self.has_origin() {
            let _ = self.git_out(&[
                "fetch",
                "-q",
                "origin",
                &format!("+refs/heads/{STATE}:refs/remotes/origin/{STATE}"),
            ]);
            format!("refs/remotes/origin/{STATE}")
        } else {
            format!("refs/heads/{STATE}")
        }
    }

    fn has_origin(&self) -> bool {
        self.git_out(&["remote", "get-url", "origin"])
            .status
            .success()
    }

    /// The files of the shared state under `dir` (path, text), in path order.
    pub fn state_files_under(&self, dir: &str) -> Vec<(String, String)> {
        let r = self.state_ref();
        let listing = self.git_out(&["ls-tree", "-r", "--name-only", &r, dir]);
        String::from_utf8_lossy(&listing.stdout)
            .lines()
            .filter_map(|p| self.state_file(p).map(|t| (p.to_owned(), t)))
            .collect()
    }

    /// Every audit record of the shared state, oldest first (the file of
    /// the layout before the split, then the months).
    pub fn audit(&self) -> Vec<serde_json::Value> {
        let mut text = self
            .state_file("tgs/server/audit.jsonl")
            .unwrap_or_default();
        for (_, t) in self.state_files_under("tgs/server/audit") {
            text.push_str(&t);
        }
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The session metrics of the shared state as one CSV text: the header,
    /// then every month's rows, oldest first.
    pub fn metrics_csv(&self) -> String {
        let mut out = String::new();
        for (_, t) in self.state_files_under("tgs/server/metrics") {
            let mut lines = t.lines();
            let header = lines.next().unwrap_or_default();
            if out.is_empty() {
                out.push_str(header);
                out.push('\n');
            }
            for l in lines {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// The entries archived on the shared state (finished, out of the live backlog).
    pub fn archived(&self) -> Vec<serde_json::Value> {
        self.state_files_under("tgs/server/archive")
            .iter()
            .flat_map(|(_, t)| {
                t.lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The subjects of the state branch's commits, newest first.
    pub fn state_subjects(&self, n: usize) -> Vec<String> {
        let r = self.state_ref();
        self.git(&["log", &format!("-{n}"), "--format=%s", &r])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Commits on the state branch.
    pub fn state_commit_count(&self) -> usize {
        let r = self.state_ref();
        self.git(&["rev-list", "--count", &r]).parse().unwrap()
    }

    /// Put files on the shared state branch as a commit of their own (made
    /// with plumbing, pushed when there is a remote), as another tool or a
    /// human editing the state would.
    pub fn put_state(&self, files: &[(&str, &str)]) {
        let r = self.state_ref();
        let parent = self.git_out(&["rev-parse", "--verify", "-q", &r]);
        let parent = String::from_utf8_lossy(&parent.stdout).trim().to_owned();
        let index = self
            .env
            .path()
            .join(format!("put-state-{}.index", files.len()));
        let _ = std::fs::remove_file(&index);
        let git = |args: &[&str]| -> String {
            let out = self
                .env
                .git_cmd(&self.root)
                .env("GIT_INDEX_FILE", &index)
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "git {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        if parent.is_empty() {
            git(&["read-tree", "--empty"]);
        } else {
            git(&["read-tree", &parent]);
        }
        for (path, text) in files {
            let tmp = self.env.path().join("put-state.blob");
            std::fs::write(&tmp, text).unwrap();
            let oid = git(&["hash-object", "-w", tmp.to_str().unwrap()]);
            git(&[
                "update-index",
                "--add",
                "--cacheinfo",
                &format!("100644,{oid},{path}"),
            ]);
        }
        let tree = git(&["write-tree"]);
        let mut args = vec!["commit-tree", tree.as_str(), "-m", "test: edit the state"];
        if !parent.is_empty() {
            args.extend(["-p", parent.as_str()]);
        }
        let commit = git(&args);
        if self.has_origin() {
            self.git(&[
                "push",
                "-q",
                "origin",
                &format!("{commit}:refs/heads/{STATE}"),
            ]);
            self.state_ref();
        } else {
            self.git(&["update-ref", &format!("refs/heads/{STATE}"), &commit]);
        }
        let _ = std::fs::remove_file(&index);
    }

    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }

    /// Commit everything and push it to `origin`.
    pub fn publish(&self, msg: &str) {
        self.commit_all(msg);
        self.git(&["push", "-q", "origin", "HEAD"]);
    }

    /// Write `tgs_yml` as `tgs/tgs.yml`, publish it with what else was
    /// written (`msg`), and queue the approved thoughts (`server scan`).
    pub fn configure_and_scan(&self, tgs_yml: &str, msg: &str) {
        self.write("tgs/tgs.yml", tgs_yml);
        self.publish(msg);
        let (code, _, err) = run(self.tgs().args(["server", "scan"]));
        assert_eq!(code, 0, "{err}");
    }

    /// A clone of `origin` named `name`, as another worker would have.
    pub fn clone_as(&self, name: &str) -> TestRepo<'e> {
        let out = self.try_clone_as(name, &[]);
        assert!(
            out.as_ref().is_ok(),
            "{}",
            out.as_ref().err().cloned().unwrap_or_default()
        );
        out.unwrap()
    }

    /// A clone made with extra `git clone` options; `Err(stderr)` if git refused.
    pub fn try_clone_as(&self, name: &str, options: &[&str]) -> Result<TestRepo<'e>, String> {
        let root = self.env.path().join(name);
        let out = self
            .env
            .git_cmd(self.env.path())
            .args(["clone", "-q"])
            .args(options)
            .args([self.origin.to_str().unwrap(), root.to_str().unwrap()])
            .output()
            .unwrap();
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(TestRepo {
            root,
            origin: self.origin.clone(),
            env: self.env,
        })
    }

    /// Every entry of origin's state branch, the archived ones after the
    /// live ones (fetched first).
    pub fn remote_backlog(&self) -> serde_json::Value {
        assert!(self.has_origin(), "no origin");
        self.backlog()
    }

    /// Lock files under `.git` (`index.lock`, `*.lock` refs) that stay: a git process a killed tgs started
    /// (auto-maintenance after a fetch or a commit) may still hold one for a
    /// moment and then release it; only a lock still there after 10 s would
    /// leave the clone stuck.
    pub fn git_locks(&self) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let locks = self.git_locks_now();
            if locks.is_empty() || std::time::Instant::now() > deadline {
                return locks;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    fn git_locks_now(&self) -> Vec<String> {
        fn walk(dir: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "lock") {
                    out.push(p.display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root.join(".git"), &mut out);
        out
    }

    pub fn commit_count(&self) -> usize {
        self.git(&["rev-list", "--count", "HEAD"]).parse().unwrap()
    }
}

/// Run an assert_cmd command and return (exit code, stdout, stderr).
pub fn run(cmd: &mut assert_cmd::Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Whether process `pid` (as text, a pid file's content) is alive: a
/// zombie has exited and counts as dead.
pub fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
        .map(|s| !s.split(") ").nth(1).unwrap_or("").starts_with('Z'))
        .unwrap_or(false)
}

/// Write an executable script.
pub fn script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}
