//! `tgs demo`: the whole server loop on a built-in example, with no API key
//! and no network. It builds a throwaway repository with a bare `origin`,
//! three approved thoughts and a scripted agent (`tgs demo-agent`, this very
//! binary) that really edits code and writes the implementation summary;
//! its first attempt at one thought fails, to show the retry. Then it runs
//! the real `tgs server scan` and `tgs server run --until-empty` there.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use super::Ctx;
use crate::error::{CliError, CliResult};
use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Build the demo here (default: a new temporary directory, kept afterwards).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

const THOUGHTS: &[(&str, &str, &str)] = &[
    (
        "a1b2c3d-add-a-greeting",
        "Add a greeting",
        "Add `greeting()` returning \"hello\" to src/lib.rs.",
    ),
    (
        "b2c3d4e-add-a-farewell",
        "Add a farewell",
        "Add `farewell()` returning \"goodbye\" to src/lib.rs.",
    ),
    (
        "c3d4e5f-flaky-counter",
        "Count the words",
        "Add `word_count(s)` to src/lib.rs. (The demo agent fails its first attempt here.)",
    ),
];

fn git(dir: &Path, args: &[&str]) -> CliResult<()> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
        .output()?;
    if !out.status.success() {
        return Err(CliError::failed(format!("git {} failed", args.join(" ")))
            .cause(String::from_utf8_lossy(&out.stderr).into_owned()));
    }
    Ok(())
}

fn write(root: &Path, rel: &str, body: &str) -> CliResult<()> {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("has parent"))?;
    std::fs::write(p, body)?;
    Ok(())
}

pub fn run(_ctx: &Ctx, args: Args) -> CliResult {
    let base = match args.dir {
        Some(d) => {
            std::fs::create_dir_all(&d)?;
            std::path::absolute(&d)?
        }
        None => tempfile::Builder::new()
            .prefix("tgs-demo-")
            .tempdir()?
            .keep(),
    };
    let origin = base.join("origin.git");
    let project = base.join("project");
    if project.exists() {
        return Err(
            CliError::usage(format!("{} exists already", project.display()))
                .hint("pass another --dir"),
        );
    }
    let exe = std::env::current_exe()?;
    let exe = exe
        .to_str()
        .ok_or_else(|| CliError::failed("the tgs executable's path is not UTF-8"))?;

    output::note(format!("building the demo in {}", base.display()));
    git(&base, &["init", "-q", "--bare", "-b", "main", "origin.git"])?;
    git(&base, &["init", "-q", "-b", "main", "project"])?;
    git(&project, &["config", "user.name", "tgs demo"])?;
    git(&project, &["config", "user.email", "demo@tgs.invalid"])?;
    git(&project, &["config", "commit.gpgsign", "false"])?;
    write(
        &project,
        "README.md",
        "# Demo project\n\nA tiny library that tgs's demo agent extends.\n",
    )?;
    write(
        &project,
        "src/lib.rs",
        "//! The demo library.\n\npub fn answer() -> u32 {\n    42\n}\n",
    )?;
    let agent_cmd =
        shlex::try_join([exe, "demo-agent"]).map_err(|e| CliError::failed(e.to_string()))?;
    // Contained where this machine can, and said plainly where it cannot.
    let sandbox = match tgs_core::sandbox::probe() {
        Ok(_) => {
            output::note("the demo's agent sessions run in the sandbox (bubblewrap)");
            "on"
        }
        Err(u) => {
            output::warn(format!(
                "the demo's agent sessions run uncontained: {} ({})",
                u.why, u.hint
            ));
            "off"
        }
    };
    write(
        &project,
        "tgs/tgs.yml",
        &format!(
            "# tgs demo configuration\nserver:\n  agent: demo\n  max_attempts: 3\n  retry_delay: 2s\n  session_timeout: 2m\n  sandbox: {{ mode: {sandbox} }}\n  agents:\n    demo: {{ command: {} }}\n",
            serde_json::to_string(&agent_cmd).expect("a string serializes")
        ),
    )?;
    write(
        &project,
        "tgs/agentops/AGENTOPS.md",
        "# AGENTOPS\n\nThoughts are approved by humans; agents implement approved plans.\n",
    )?;
    for (name, title, plan) in THOUGHTS {
        let hash = &name[..7];
        let dir = format!("tgs/thoughts/{name}");
        write(
            &project,
            &format!("{dir}/README.md"),
            &format!("# {hash} - {title}\n\n- Base Hash: `{hash}`\n"),
        )?;
        write(
            &project,
            &format!("{dir}/research.md"),
            &format!("# Research: {title}\n\nThe library needs it.\n"),
        )?;
        write(
            &project,
            &format!("{dir}/plan.md"),
            &format!("# Plan: {title}\n\n1. {plan}\n"),
        )?;
    }
    git(&project, &["add", "-A"])?;
    git(
        &project,
        &[
            "commit",
            "-q",
            "-m",
            "Demo project with three approved thoughts",
        ],
    )?;
    git(
        &project,
        &[
            "remote",
            "add",
            "origin",
            origin.to_str().unwrap_or_default(),
        ],
    )?;
    git(&project, &["push", "-q", "-u", "origin", "main"])?;

    for step in [
        &["server", "scan"][..],
        &[
            "server",
            "run",
            "--until-empty",
            "--no-pr",
            "--worker-id",
            "demo-worker",
        ][..],
    ] {
        output::note(format!("\n$ tgs {}", step.join(" ")));
        let status = Command::new(exe)
            .arg("-C")
            .arg(&project)
            .args(step)
            .env("NO_COLOR", std::env::var("NO_COLOR").unwrap_or_default())
            .status()?;
        if !status.success() {
            return Err(CliError::failed(format!(
                "`tgs {}` failed in the demo",
                step.join(" ")
            )));
        }
    }
    output::note(format!(
        "\nDone. Look around:\n  cd {p}\n  tgs server backlog list            # every thought completed, the flaky one on attempt 2\n  ls tgs/server/logs/                 # the session transcripts\n  git log --oneline origin/tgs-state  # the state commits, on a branch of their own\n  git branch -r                       # a tgs/<thought> branch per thought, pushed to origin\n  git show origin/tgs/{t}      # what the agent did
  tgs server dashboard --out site     # a static status site (open site/index.html)

The demo lives in {base}; delete it when you are done.",
        p = project.display(),
        t = THOUGHTS[0].0,
        base = base.display()
    ));
    Ok(ExitCode::SUCCESS)
}

/// The demo's scripted agent: it reads the session from the `TGS_*`
/// environment like any `command` agent, edits src/lib.rs, writes the
/// implementation summary and commits. It fails the first attempt at a
/// thought whose name contains "flaky".
pub fn agent() -> CliResult {
    let var = |k: &str| {
        std::env::var(k).map_err(|_| {
            CliError::usage(format!("{k} is not set: run me through `tgs server run`"))
        })
    };
    let dir = var("TGS_THOUGHT_DIR")?;
    let attempt: u32 = var("TGS_ATTEMPT")?.parse().unwrap_or(1);
    let name = dir.rsplit('/').next().unwrap_or_default().to_owned();
    println!("demo agent: reading {dir}/plan.md (attempt {attempt})");
    if name.contains("flaky") && attempt == 1 {
        eprintln!("demo agent: simulated failure: the model API timed out");
        return Ok(ExitCode::from(1));
    }
    let slug = name.split_once('-').map(|(_, s)| s).unwrap_or(&name);
    let func = slug.replace('-', "_");
    let body = match func.as_str() {
        "add_a_greeting" => "pub fn greeting() -> &'static str {\n    \"hello\"\n}\n".to_owned(),
        "add_a_farewell" => "pub fn farewell() -> &'static str {\n    \"goodbye\"\n}\n".to_owned(),
        "flaky_counter" => {
            "pub fn word_count(s: &str) -> usize {\n    s.split_whitespace().count()\n}\n"
                .to_owned()
        }
        other => format!("pub fn {other}() {{}}\n"),
    };
    let mut lib = std::fs::read_to_string("src/lib.rs")?;
    lib.push('\n');
    lib.push_str(&body);
    std::fs::write("src/lib.rs", lib)?;
    println!("demo agent: edited src/lib.rs");
    std::fs::write(
        format!("{dir}/implementation.md"),
        format!("# Implementation\n\n## Summary\nAdded to src/lib.rs:\n\n```rust\n{body}```\n\n## Verification\nThe demo has no tests to run.\n"),
    )?;
    println!("demo agent: wrote {dir}/implementation.md");
    let status = Command::new("git").args(["add", "-A"]).status()?;
    let status = if status.success() {
        Command::new("git")
            .args(["commit", "-q", "-m", &format!("Implement {name}")])
            .status()?
    } else {
        status
    };
    if !status.success() {
        return Err(CliError::failed("git commit failed in the demo agent"));
    }
    println!("demo agent: committed");
    Ok(ExitCode::SUCCESS)
}
