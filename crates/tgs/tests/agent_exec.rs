//! `tgs agent exec`: the adapter contract of the Go command, checked with real
//! shell scripts as adapters that record what they receive.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{run, script, TestEnv, TestRepo};

/// The environment variables of the contract.
const CONTRACT_ENV: &[&str] = &[
    "CLAUDE_CMD",
    "RETURN_MODE",
    "TIMEOUT_SEC",
    "OUT_PATH",
    "CONTEXT_FILES",
    "PROMPT_TEXT",
];

/// What a recording adapter saw.
struct Record {
    dir: PathBuf,
}

impl Record {
    /// Whether the adapter ran at all.
    fn ran(&self) -> bool {
        self.dir.join("ran").exists()
    }

    /// Its arguments, one per element.
    fn args(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.dir.join("args")).expect("the adapter ran");
        text.lines().map(str::to_owned).collect()
    }

    /// An environment variable as the adapter saw it; `None` when unset.
    fn env(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join("env").join(name)).ok()
    }
}

/// Write an adapter at `rel` (inside the repo) that records its arguments
/// (one per line) and each contract variable (one file per variable, only
/// when set) under a directory outside the repo, then prints `adapter-ok`.
fn recording_adapter(repo: &TestRepo, rel: &str) -> Record {
    let dir = repo
        .env
        .path()
        .join(format!("record-{}", rel.replace('/', "_")));
    let env_dir = dir.join("env");
    let mut body = format!(
        "#!/bin/bash\nset -e\nmkdir -p '{env}'\nprintf '%s\\n' \"$@\" > '{dir}/args'\n",
        env = env_dir.display(),
        dir = dir.display()
    );
    for v in CONTRACT_ENV {
        body.push_str(&format!(
            "if [ -n \"${{{v}+set}}\" ]; then printf '%s' \"${v}\" > '{env}/{v}'; fi\n",
            env = env_dir.display()
        ));
    }
    body.push_str(&format!("touch '{}/ran'\necho adapter-ok\n", dir.display()));
    script(&repo.path(rel), &body);
    Record { dir }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// Whether `pid` is a live (not zombie) process.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .unwrap_or("X");
            !matches!(state, "Z" | "X" | "x")
        }
    }
}

/// The live (not zombie) processes whose process group is `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        // After the command: state, ppid, pgrp.
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[2] == pgid.to_string() && !matches!(fields[0], "Z" | "X") {
            found.push(pid);
        }
    }
    found
}

/// Wait up to `limit` for `cond` to hold.
fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Read a pid an adapter wrote to `path`, waiting for it to appear.
fn read_pid(path: &Path) -> u32 {
    let mut pid = None;
    assert!(
        eventually(Duration::from_secs(10), || {
            pid = std::fs::read_to_string(path)
                .ok()
                .and_then(|s| s.trim().parse().ok());
            pid.is_some()
        }),
        "no pid in {}",
        path.display()
    );
    pid.unwrap()
}

/// A `tgs` run whose output goes to files, so that a stray grandchild
/// holding a pipe cannot hang the test.
struct Spawned {
    child: std::process::Child,
    stdout: PathBuf,
    stderr: PathBuf,
    start: Instant,
}

struct Finished {
    code: Option<i32>,
    stdout: PathBuf,
    stderr: String,
    elapsed: Duration,
}

fn spawn_tgs(repo: &TestRepo, args: &[&str]) -> Spawned {
    let stdout = repo.env.path().join("tgs.stdout");
    let stderr = repo.env.path().join("tgs.stderr");
    let mut cmd = Command::new(common::tgs_bin());
    cmd.current_dir(&repo.root);
    repo.env.pin(&mut cmd);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap());
    let child = cmd.spawn().unwrap();
    Spawned {
        child,
        stdout,
        stderr,
        start: Instant::now(),
    }
}

impl Spawned {
    /// Wait for tgs to end, killing it (and failing) after `limit`.
    fn wait(mut self, limit: Duration) -> Finished {
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Finished {
                    code: status.code(),
                    stdout: self.stdout,
                    stderr: std::fs::read_to_string(&self.stderr).unwrap_or_default(),
                    elapsed: self.start.elapsed(),
                };
            }
            if self.start.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "tgs still running after {limit:?}; stderr:\n{}",
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

// 1. What the adapter receives.

#[test]
fn adapter_receives_flags_and_env_for_a_prompt_file() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let rec = recording_adapter(&repo, "adapter.sh");
    repo.write("prompt.md", "Do the thing.\n");
    repo.write("ctx.txt", "README.md\n");
    repo.write("docs/a.md", "a\n");
    let (code, stdout, stderr) = run(repo.tgs().args([
        "agent",
        "exec",
        "--adapter-path",
        "adapter.sh",
        "--prompt-file",
        "prompt.md",
        "--context",
        "src/lib.rs",
        "--context-list",
        "ctx.txt",
        "--context-glob",
        "docs/*.md",
        "--return-mode",
        "text",
        "--claude-cmd",
        "my-claude --fast",
        "--out",
        "answer.txt",
        "--suggestions-dir",
        "out/sugg",
        "--verbose",
        "--timeout",
        "30",
    ]));
    assert_eq!(code, 0, "stderr: {stderr}");
    assert_eq!(
        rec.args(),
        strings(&[
            "--return-mode",
            "text",
            "--claude-cmd",
            "my-claude --fast",
            "--prompt-file",
            "prompt.md",
            "--context-list",
            "ctx.txt",
            "--context-glob",
            "docs/*.md",
            "--out",
            "answer.txt",
            "--suggestions-dir",
            "out/sugg",
            "--verbose",
            "--timeout",
            "30",
        ])
    );
    assert_eq!(rec.env("CLAUDE_CMD").as_deref(), Some("my-claude --fast"));
    assert_eq!(rec.env("RETURN_MODE").as_deref(), Some("text"));
    assert_eq!(rec.env("TIMEOUT_SEC").as_deref(), Some("30"));
    assert_eq!(rec.env("OUT_PATH").as_deref(), Some("answer.txt"));
    assert_eq!(
        rec.env("CONTEXT_FILES").as_deref(),
        Some("src/lib.rs\nREADME.md\ndocs/a.md")
    );
    assert_eq!(
        rec.env("PROMPT_TEXT"),
        None,
        "PROMPT_TEXT is for inline prompts only"
    );
    // With --out the adapter's stdout is not the answer: it goes to stderr.
    assert!(!stdout.contains("adapter-ok"), "stdout: {stdout}");
    assert!(stderr.contains("adapter-ok"), "stderr: {stderr}");
}

#[test]
fn adapter_receives_flags_and_env_for_an_inline_prompt_with_defaults() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let rec = recording_adapter(&repo, "adapter.sh");
    let (code, stdout, stderr) = run(repo.tgs().args([
        "agent",
        "exec",
        "--adapter-path",
        "adapter.sh",
        "--prompt-text",
        "Fix it,\nplease",
        "--context",
        "README.md",
    ]));
    assert_eq!(code, 0, "stderr: {stderr}");
    assert_eq!(stdout, "adapter-ok\n");
    // The prompt holds a newline, so it spans two recorded lines.
    assert_eq!(
        rec.args(),
        strings(&[
            "--return-mode",
            "patch_or_text",
            "--claude-cmd",
            "claude",
            "--prompt-text",
            "Fix it,",
            "please",
            "--suggestions-dir",
            "tgs/suggestions",
            "--timeout",
            "0",
        ])
    );
    assert_eq!(rec.env("CLAUDE_CMD").as_deref(), Some("claude"));
    assert_eq!(rec.env("RETURN_MODE").as_deref(), Some("patch_or_text"));
    assert_eq!(rec.env("TIMEOUT_SEC").as_deref(), Some("0"));
    assert_eq!(rec.env("OUT_PATH").as_deref(), Some(""));
    assert_eq!(rec.env("CONTEXT_FILES").as_deref(), Some("README.md"));
    assert_eq!(rec.env("PROMPT_TEXT").as_deref(), Some("Fix it,\nplease"));
}

#[test]
fn prompt_text_from_the_callers_environment_does_not_leak_into_a_prompt_file_run() {
    // An adapter that itself runs `tgs agent exec --prompt-file ...` (or a
    // shell that exported PROMPT_TEXT) must not hand its inline prompt on.
    let env = TestEnv::new();
    let repo = env.repo("r");
    let rec = recording_adapter(&repo, "adapter.sh");
    repo.write("prompt.md", "The real prompt.\n");
    let (code, _, stderr) = run(repo.tgs().env("PROMPT_TEXT", "a stale prompt").args([
        "agent",
        "exec",
        "--adapter-path",
        "adapter.sh",
        "--prompt-file",
        "prompt.md",
        "--context",
        "README.md",
    ]));
    assert_eq!(code, 0, "stderr: {stderr}");
    assert_eq!(rec.env("PROMPT_TEXT"), None);
}

// 2. Go-style flags.

#[test]
fn go_style_single_dash_flags_are_accepted() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let rec = recording_adapter(&repo, "adapter.sh");
    repo.write("a.md", "a\n");
    let (code, stdout, stderr) = run(repo.tgs().args([
        "agent",
        "exec",
        "-adapter-path",
        "adapter.sh",
        "-prompt-text",
        "hi",
        "-context",
        "a.md",
        "-timeout",
        "5",
        "-verbose=true",
    ]));
    assert_eq!(code, 0, "stderr: {stderr}");
    assert_eq!(stdout, "adapter-ok\n");
    assert_eq!(
        rec.args(),
        strings(&[
            "--return-mode",
            "patch_or_text",
            "--claude-cmd",
            "claude",
            "--prompt-text",
            "hi",
            "--suggestions-dir",
            "tgs/suggestions",
            "--verbose",
            "--timeout",
            "5",
        ])
    );
    assert_eq!(rec.env("CONTEXT_FILES").as_deref(), Some("a.md"));
    assert_eq!(rec.env("TIMEOUT_SEC").as_deref(), Some("5"));
}

#[test]
fn flag_equals_value_forms_are_accepted() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let rec = recording_adapter(&repo, "adapter.sh");
    repo.write("a.md", "a\n");
    let (code, _, stderr) = run(repo.tgs().args([
        "agent",
        "exec",
        "--adapter-path=adapter.sh",
        "--prompt-text=hi there",
        "-context=a.md",
        "--context=README.md",
        "--timeout=7",
        "-return-mode=text",
        "--claude-cmd=cc",
        "--out=o.txt",
        "--suggestions-dir=s",
        "-verbose=false",
    ]));
    assert_eq!(code, 0, "stderr: {stderr}");
    assert_eq!(
        rec.args(),
        strings(&[
            "--return-mode",
            "text",
            "--claude-cmd",
            "cc",
            "--prompt-text",
            "hi there",
            "--out",
            "o.txt",
            "--suggestions-dir",
            "s",
            "--timeout",
            "7",
        ])
    );
    assert_eq!(rec.env("CONTEXT_FILES").as_deref(), Some("a.md\nREADME.md"));
    assert_eq!(rec.env("OUT_PATH").as_deref(), Some("o.txt"));
    assert_eq!(rec.env("PROMPT_TEXT").as_deref(), Some("hi there"));
}

// 3. Inline text wins over the file.

#[test]
fn prompt_text_wins_over_prompt_file() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let rec = recording_adapter(&repo, "adapter.sh");
    repo.write("prompt.md", "From the file.\n");
    let (code, _, stderr) = run(repo.tgs().args([
        "agent",
        "exec",
        "--adapter-path",
        "adapter.sh",
        "--prompt-file",
        "prompt.md",
        "--prompt-text",
        "inline",
        "--context",
        "README.md",
    ]));
    assert_eq!(code, 0, "stderr: {stderr}");
    let args = rec.args();
    assert!(!args.contains(&"--prompt-file".to_owned()), "{args:?}");
    let at = args
        .iter()
        .position(|a| a == "--prompt-text")
        .expect("--prompt-text");
    assert_eq!(args[at + 1], "inline");
    assert_eq!(rec.env("PROMPT_TEXT").as_deref(), Some("inline"));
}

// 4. Input errors exit 2 and nothing runs.

/// Run `tgs agent exec` with `args` after the adapter path; assert exit 2
/// with an error message and that the adapter never ran.
fn assert_input_error(setup: impl FnOnce(&TestRepo), args: &[&str], expect: &str) {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let rec = recording_adapter(&repo, "adapter.sh");
    setup(&repo);
    let (code, stdout, stderr) = run(repo
        .tgs()
        .args(["agent", "exec", "--adapter-path", "adapter.sh"])
        .args(args));
    assert_eq!(code, 2, "args {args:?}\nstdout: {stdout}\nstderr: {stderr}");
    assert!(!rec.ran(), "the adapter ran for {args:?}");
    assert!(
        stderr.contains(expect),
        "stderr for {args:?} lacks {expect:?}: {stderr}"
    );
}

#[test]
fn no_prompt_is_an_input_error() {
    assert_input_error(|_| {}, &["--context", "README.md"], "prompt is required");
}

#[test]
fn blank_prompt_text_is_an_input_error() {
    assert_input_error(
        |_| {},
        &["--prompt-text", "   ", "--context", "README.md"],
        "blank",
    );
}

#[test]
fn blank_prompt_text_does_not_fall_back_to_the_prompt_file() {
    assert_input_error(
        |r| r.write("prompt.md", "A real prompt.\n"),
        &[
            "--prompt-text",
            " \n\t",
            "--prompt-file",
            "prompt.md",
            "--context",
            "README.md",
        ],
        "blank",
    );
}

#[test]
fn blank_prompt_file_is_an_input_error() {
    assert_input_error(
        |r| r.write("prompt.md", "  \n\n\t\n"),
        &["--prompt-file", "prompt.md", "--context", "README.md"],
        "blank",
    );
}

#[test]
fn missing_prompt_file_is_an_input_error() {
    assert_input_error(
        |_| {},
        &["--prompt-file", "nope.md", "--context", "README.md"],
        "nope.md",
    );
}

#[test]
fn no_context_is_an_input_error() {
    assert_input_error(|_| {}, &["--prompt-text", "hi"], "context");
}

#[test]
fn a_glob_matching_nothing_is_no_context() {
    assert_input_error(
        |_| {},
        &["--prompt-text", "hi", "--context-glob", "nothing/*.md"],
        "context",
    );
}

#[test]
fn missing_context_file_is_an_input_error() {
    assert_input_error(
        |_| {},
        &[
            "--prompt-text",
            "hi",
            "--context",
            "README.md",
            "--context",
            "missing.md",
        ],
        "missing.md",
    );
}

#[test]
fn missing_file_in_a_context_list_is_an_input_error() {
    assert_input_error(
        |r| r.write("list.txt", "README.md\ngone.md\n"),
        &["--prompt-text", "hi", "--context-list", "list.txt"],
        "gone.md",
    );
}

#[test]
fn bad_return_mode_is_an_input_error() {
    assert_input_error(
        |_| {},
        &[
            "--prompt-text",
            "hi",
            "--context",
            "README.md",
            "--return-mode",
            "json",
        ],
        "return-mode",
    );
}

#[test]
fn missing_adapter_is_an_input_error() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    // The default adapter path does not exist in this repo either.
    for adapter in [vec!["--adapter-path", "no/such/adapter.sh"], vec![]] {
        let (code, _, stderr) = run(repo.tgs().args(["agent", "exec"]).args(&adapter).args([
            "--prompt-text",
            "hi",
            "--context",
            "README.md",
        ]));
        assert_eq!(code, 2, "{adapter:?}: {stderr}");
        assert!(stderr.contains("adapter not found"), "{stderr}");
    }
}

// 5. Context de-duplication.

#[test]
fn context_is_deduplicated_in_first_seen_order() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let rec = recording_adapter(&repo, "adapter.sh");
    // Created out of order: the glob is expanded sorted, not in directory order.
    for f in ["docs/c.md", "docs/a.md", "docs/b.md"] {
        repo.write(f, "x\n");
    }
    repo.write("docs/skip.txt", "not markdown\n");
    repo.write(
        "list.txt",
        "src/lib.rs\nREADME.md\n\n  docs/c.md  \nsrc/lib.rs\n",
    );
    let (code, _, stderr) = run(repo.tgs().args([
        "agent",
        "exec",
        "--adapter-path",
        "adapter.sh",
        "--prompt-text",
        "hi",
        "--context",
        "docs/b.md",
        "--context",
        "README.md",
        "--context",
        "docs/b.md",
        "--context-list",
        "list.txt",
        "--context-glob",
        "docs/*.md",
    ]));
    assert_eq!(code, 0, "stderr: {stderr}");
    assert_eq!(
        rec.env("CONTEXT_FILES").as_deref(),
        Some("docs/b.md\nREADME.md\nsrc/lib.rs\ndocs/c.md\ndocs/a.md")
    );
}

// 6. Output relay and adapter failure.

#[test]
fn adapter_stdout_is_relayed_and_failure_shows_its_stderr() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    script(
        &repo.path("adapter.sh"),
        "#!/bin/bash\necho 'the answer'\necho 'adapter says: boom' >&2\nexit 3\n",
    );
    let (code, stdout, stderr) = run(repo.tgs().args([
        "agent",
        "exec",
        "--adapter-path",
        "adapter.sh",
        "--prompt-text",
        "hi",
        "--context",
        "README.md",
    ]));
    assert_eq!(code, 1, "stderr: {stderr}");
    assert_eq!(stdout, "the answer\n");
    assert!(stderr.contains("adapter says: boom"), "stderr: {stderr}");
    assert!(stderr.contains("exited with status 3"), "stderr: {stderr}");
}

#[test]
fn an_adapter_without_its_executable_bit_runs_with_bash() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    repo.write("adapter.sh", "echo \"plain $RETURN_MODE\"\n");
    let (code, stdout, stderr) = run(repo.tgs().args([
        "agent",
        "exec",
        "--adapter-path",
        "adapter.sh",
        "--prompt-text",
        "hi",
        "--context",
        "README.md",
    ]));
    assert_eq!(code, 0, "stderr: {stderr}");
    assert_eq!(stdout, "plain patch_or_text\n");
}

// 7. Timeouts stop the adapter and everything it started.

#[test]
fn timeout_stops_the_adapter_and_its_grandchildren() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let pids = env.path().join("pids");
    script(
        &repo.path("adapter.sh"),
        &format!(
            "#!/bin/bash\necho $$ > '{p}/adapter.tmp'\nsleep 300 &\necho $! > '{p}/grandchild'\nmv '{p}/adapter.tmp' '{p}/adapter'\nsleep 300\n",
            p = pids.display()
        ),
    );
    std::fs::create_dir_all(&pids).unwrap();
    let done = spawn_tgs(
        &repo,
        &[
            "agent",
            "exec",
            "--adapter-path",
            "adapter.sh",
            "--prompt-text",
            "hi",
            "--context",
            "README.md",
            "--timeout",
            "1",
        ],
    )
    .wait(Duration::from_secs(15));
    assert_eq!(done.code, Some(1), "stderr: {}", done.stderr);
    assert!(done.stderr.contains("timed out"), "stderr: {}", done.stderr);
    assert!(done.elapsed >= Duration::from_secs(1), "{:?}", done.elapsed);
    let adapter = read_pid(&pids.join("adapter"));
    let grandchild = read_pid(&pids.join("grandchild"));
    assert!(
        eventually(Duration::from_secs(3), || !alive(adapter)
            && !alive(grandchild)),
        "still alive: adapter {adapter} {}, grandchild {grandchild} {}",
        alive(adapter),
        alive(grandchild)
    );
    assert_eq!(group_members(adapter), Vec::<u32>::new());
}

#[test]
fn timeout_kills_an_adapter_that_ignores_sigterm() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let pids = env.path().join("pids");
    std::fs::create_dir_all(&pids).unwrap();
    script(
        &repo.path("adapter.sh"),
        &format!(
            "#!/bin/bash\ntrap '' TERM\nsleep 300 &\necho $! > '{p}/grandchild'\necho $$ > '{p}/adapter'\nwhile :; do sleep 1; done\n",
            p = pids.display()
        ),
    );
    let done = spawn_tgs(
        &repo,
        &[
            "agent",
            "exec",
            "--adapter-path",
            "adapter.sh",
            "--prompt-text",
            "hi",
            "--context",
            "README.md",
            "--timeout",
            "1",
        ],
    )
    .wait(Duration::from_secs(25));
    assert_eq!(done.code, Some(1), "stderr: {}", done.stderr);
    assert!(done.stderr.contains("timed out"), "stderr: {}", done.stderr);
    let adapter = read_pid(&pids.join("adapter"));
    let grandchild = read_pid(&pids.join("grandchild"));
    assert!(
        eventually(Duration::from_secs(3), || !alive(adapter)
            && !alive(grandchild)),
        "still alive: adapter {adapter} {}, grandchild {grandchild} {}",
        alive(adapter),
        alive(grandchild)
    );
    assert_eq!(group_members(adapter), Vec::<u32>::new());
}

// 8. Output is streamed, not collected.

#[test]
fn large_adapter_output_is_streamed_through() {
    const SIZE: u64 = 200_000_000;
    let env = TestEnv::new();
    let repo = env.repo("r");
    script(
        &repo.path("adapter.sh"),
        &format!("#!/bin/bash\nhead -c {SIZE} /dev/zero | tr '\\0' 'x'\n"),
    );
    let done = spawn_tgs(
        &repo,
        &[
            "agent",
            "exec",
            "--adapter-path",
            "adapter.sh",
            "--prompt-text",
            "hi",
            "--context",
            "README.md",
        ],
    )
    .wait(Duration::from_secs(120));
    assert_eq!(done.code, Some(0), "stderr: {}", done.stderr);
    assert_eq!(std::fs::metadata(&done.stdout).unwrap().len(), SIZE);
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(&done.stdout).unwrap();
    let mut head = [0u8; 16];
    f.read_exact(&mut head).unwrap();
    f.seek(SeekFrom::End(-16)).unwrap();
    let mut tail = [0u8; 16];
    f.read_exact(&mut tail).unwrap();
    assert_eq!((head, tail), ([b'x'; 16], [b'x'; 16]));
}

// 9. SIGINT to tgs stops the adapter's whole group.

#[test]
fn sigint_stops_the_adapter_group_and_exits_130() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let pids = env.path().join("pids");
    std::fs::create_dir_all(&pids).unwrap();
    script(
        &repo.path("adapter.sh"),
        &format!(
            "#!/bin/bash\nsleep 300 &\necho $! > '{p}/grandchild'\necho $$ > '{p}/adapter.tmp'\nmv '{p}/adapter.tmp' '{p}/adapter'\nsleep 300\n",
            p = pids.display()
        ),
    );
    let spawned = spawn_tgs(
        &repo,
        &[
            "agent",
            "exec",
            "--adapter-path",
            "adapter.sh",
            "--prompt-text",
            "hi",
            "--context",
            "README.md",
        ],
    );
    // The adapter is running once it wrote its pid; tgs handles signals by then.
    let adapter = read_pid(&pids.join("adapter"));
    let grandchild = read_pid(&pids.join("grandchild"));
    let tgs_pid = spawned.child.id().to_string();
    let status = Command::new("kill")
        .args(["-INT", &tgs_pid])
        .status()
        .unwrap();
    assert!(status.success());
    let done = spawned.wait(Duration::from_secs(20));
    assert_eq!(done.code, Some(130), "stderr: {}", done.stderr);
    assert!(
        eventually(Duration::from_secs(3), || group_members(adapter).is_empty()),
        "the adapter's group {adapter} is still alive: {:?}",
        group_members(adapter)
    );
    assert!(!alive(adapter) && !alive(grandchild));
}

#[test]
fn a_second_sigint_kills_without_waiting_for_the_grace_period() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let pids = env.path().join("pids");
    std::fs::create_dir_all(&pids).unwrap();
    script(
        &repo.path("adapter.sh"),
        &format!(
            "#!/bin/bash\ntrap '' TERM\nsleep 300 &\necho $! > '{p}/grandchild'\necho $$ > '{p}/adapter.tmp'\nmv '{p}/adapter.tmp' '{p}/adapter'\nwhile :; do sleep 1; done\n",
            p = pids.display()
        ),
    );
    let spawned = spawn_tgs(
        &repo,
        &[
            "agent",
            "exec",
            "--adapter-path",
            "adapter.sh",
            "--prompt-text",
            "hi",
            "--context",
            "README.md",
        ],
    );
    let adapter = read_pid(&pids.join("adapter"));
    let grandchild = read_pid(&pids.join("grandchild"));
    let tgs_pid = spawned.child.id().to_string();
    let start = Instant::now();
    for _ in 0..2 {
        let status = Command::new("kill")
            .args(["-INT", &tgs_pid])
            .status()
            .unwrap();
        assert!(status.success());
        std::thread::sleep(Duration::from_millis(300));
    }
    // Well inside the 10 s grace an adapter ignoring SIGTERM would otherwise get.
    let done = spawned.wait(Duration::from_secs(20));
    assert_eq!(done.code, Some(130), "stderr: {}", done.stderr);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        eventually(Duration::from_secs(3), || group_members(adapter).is_empty()),
        "the adapter's group {adapter} is still alive: {:?}",
        group_members(adapter)
    );
    assert!(!alive(grandchild));
}

#[test]
fn sigterm_to_tgs_stops_the_adapter_and_exits_143() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let pids = env.path().join("pids");
    std::fs::create_dir_all(&pids).unwrap();
    script(
        &repo.path("adapter.sh"),
        &format!(
            "#!/bin/bash\necho $$ > '{p}/adapter.tmp'\nmv '{p}/adapter.tmp' '{p}/adapter'\nsleep 300\n",
            p = pids.display()
        ),
    );
    let spawned = spawn_tgs(
        &repo,
        &[
            "agent",
            "exec",
            "--adapter-path",
            "adapter.sh",
            "--prompt-text",
            "hi",
            "--context",
            "README.md",
        ],
    );
    let adapter = read_pid(&pids.join("adapter"));
    let status = Command::new("kill")
        .args(["-TERM", &spawned.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let done = spawned.wait(Duration::from_secs(20));
    assert_eq!(done.code, Some(143), "stderr: {}", done.stderr);
    assert!(eventually(Duration::from_secs(3), || group_members(
        adapter
    )
    .is_empty()));
}

#[test]
fn background_children_do_not_outlive_a_successful_adapter() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let pids = env.path().join("pids");
    std::fs::create_dir_all(&pids).unwrap();
    // The grandchild keeps stdout and stderr open: tgs must not wait for it.
    script(
        &repo.path("adapter.sh"),
        &format!(
            "#!/bin/bash\nsleep 300 &\necho $! > '{p}/grandchild'\necho done\n",
            p = pids.display()
        ),
    );
    let done = spawn_tgs(
        &repo,
        &[
            "agent",
            "exec",
            "--adapter-path",
            "adapter.sh",
            "--prompt-text",
            "hi",
            "--context",
            "README.md",
        ],
    )
    .wait(Duration::from_secs(15));
    assert_eq!(done.code, Some(0), "stderr: {}", done.stderr);
    assert_eq!(std::fs::read_to_string(&done.stdout).unwrap(), "done\n");
    let grandchild = read_pid(&pids.join("grandchild"));
    assert!(eventually(Duration::from_secs(3), || !alive(grandchild)));
}

/// Go's `flag` takes the next argument as a string flag's value even when it
/// starts with `-`; clap (and the Go-flag rewriting in
/// `crates/tgs/src/commands/agent_exec.rs`) reject it.
#[test]
fn a_value_starting_with_a_dash_is_taken_as_the_value() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let rec = recording_adapter(&repo, "adapter.sh");
    let (code, _, stderr) = run(repo.tgs().args([
        "agent",
        "exec",
        "-adapter-path",
        "adapter.sh",
        "-prompt-text",
        "-verbose is what I want",
        "-context",
        "README.md",
    ]));
    assert_eq!(code, 0, "stderr: {stderr}");
    assert_eq!(
        rec.env("PROMPT_TEXT").as_deref(),
        Some("-verbose is what I want")
    );
}
