//! `tgs server run`: claim thoughts and have an agent implement them.

use std::process::ExitCode;
use std::time::Duration;

use tgs_core::events::Fanout;
use tgs_core::process::Signals;
use tgs_core::runner::{Mode, RunConfig, RunExit, Runner};

use super::{Ctx, WriteArgs};
use crate::error::{code, CliError, CliResult};
use crate::output;
use crate::progress::Console;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// One session, then stop (the default).
    #[arg(long, conflicts_with_all = ["until_empty", "watch"])]
    pub once: bool,
    /// Keep going until nothing is left to claim, waiting out retry delays.
    #[arg(long, conflicts_with = "watch")]
    pub until_empty: bool,
    /// Keep going for ever, looking for work every --interval.
    #[arg(long)]
    pub watch: bool,
    /// How often --watch looks for work.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration, requires = "watch")]
    pub interval: Duration,
    /// Work on this thought only.
    #[arg(long, value_name = "DIR")]
    pub thought: Option<String>,
    /// The agent to use (default: server.agent in tgs/tgs.yml, else claude-code).
    #[arg(long, value_name = "NAME")]
    pub agent: Option<String>,
    /// Stop a session after this long (default: server.session_timeout, else 5h).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Who this worker is, in claims (default: hostname/user).
    #[arg(long, value_name = "ID")]
    pub worker_id: Option<String>,
    /// Show what would be claimed and the agent command; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not open a pull request (the branch is still pushed).
    #[arg(long)]
    pub no_pr: bool,
    /// Only errors and the final summary.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub write: WriteArgs,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    tgs_core::config::parse_duration(s)
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let repo = ctx.repo()?;
    let settings = ctx.settings(&repo)?;
    if args.write.no_commit {
        return Err(CliError::usage(
            "--no-commit is not supported by server run; use --no-push",
        ));
    }
    let worker_id = args
        .worker_id
        .clone()
        .unwrap_or_else(tgs_core::clock::default_worker_id);
    let state = ctx.target_as(&repo, &args.write, Some(worker_id.clone()))?;
    let current = repo.current_branch().map(str::to_owned);
    let base_branch = settings
        .base_branch
        .clone()
        .or_else(|| settings.state_branch.clone())
        .or(current)
        .ok_or_else(|| {
            CliError::usage(
                "HEAD is detached: set server.base_branch in tgs/tgs.yml or check out a branch",
            )
        })?;
    // Asked once: whether there is a remote, and its URL for the forge.
    let origin = repo
        .git()
        .cmd(["remote", "get-url", &settings.remote])
        .output()?;
    let origin = origin.success.then(|| origin.stdout_text());
    let has_remote = origin.is_some();
    let thought = match &args.thought {
        Some(a) => Some(super::find_entry(&repo, &state.read()?, a)?),
        None => None,
    };
    let worker_id = args
        .worker_id
        .clone()
        .unwrap_or_else(tgs_core::clock::default_worker_id);
    let remote = (!args.write.no_push && has_remote).then(|| settings.remote.clone());
    let mode = if args.until_empty {
        Mode::UntilEmpty
    } else if args.watch {
        Mode::Watch(args.interval)
    } else {
        Mode::Once
    };
    let cfg = RunConfig {
        agent: args.agent.clone().unwrap_or_else(|| settings.agent.clone()),
        session_timeout: args.timeout.unwrap_or(settings.session_timeout),
        settings,
        worker_id,
        mode,
        thought,
        push: !args.write.no_push && has_remote,
        open_pr: !args.no_pr,
        remote,
        base_branch,
    };
    // Fail early on an unknown or missing agent, before anything is claimed:
    // a missing CLI is a set-up problem, not a failed attempt at a thought.
    let spec = tgs_core::agent::driver::AgentSpec::resolve(&cfg.agent, &cfg.settings)?;
    let program = agent_program(&spec);
    if !program_exists(&program, repo.root()) {
        let err = CliError::usage(format!(
            "the agent {}'s program `{program}` was not found",
            cfg.agent
        ));
        let hint = match spec.driver.package() {
            Some(p) => format!(
                "install {} ({}: the {} package {}), set server.agents.{}.bin, or pick another agent with --agent",
                p.product, p.install, p.registry, p.name, cfg.agent
            ),
            None => format!("install it, or fix server.agents.{} in tgs/tgs.yml", cfg.agent),
        };
        if !args.dry_run {
            return Err(err.hint(hint));
        }
        output::warn(format!("{} ({hint})", err.message));
    }
    let forge = if cfg.open_pr && cfg.remote.is_some() {
        tgs_core::github::GitHub::from_env(|k| std::env::var(k).ok(), origin.as_deref())
            .map_err(|e| CliError::from(e).hint("set GITHUB_REPOSITORY=owner/name (and GITHUB_API_URL for GitHub Enterprise), or pass --no-pr"))?
            .map(|gh| Box::new(gh) as Box<dyn tgs_core::forge::Forge>)
    } else {
        None
    };
    if cfg.open_pr && forge.is_none() && cfg.remote.is_some() {
        tracing::info!(
            "no GITHUB_TOKEN or GH_TOKEN: branches are pushed, no pull request is opened"
        );
    }
    let signals = Signals::install()?;
    let mut runner = Runner {
        repo: &repo,
        cfg,
        state,
        forge,
        signals: Some(signals),
        env: std::env::vars().collect(),
    };
    if args.dry_run {
        return dry_run(ctx, &runner);
    }
    let mut console = Console::new(args.quiet);
    let mut actions = crate::actions::Actions::new();
    let mut sinks = Fanout::default();
    sinks.push(&mut console);
    if crate::actions::active() {
        sinks.push(&mut actions);
    }
    match runner.run(&mut sinks)? {
        RunExit::Interrupted(sig) => {
            output::note(format!(
                "interrupted by signal {sig}: the claim was given back"
            ));
            Ok(ExitCode::from((128 + sig) as u8))
        }
        RunExit::Done {
            sessions,
            succeeded,
            failed,
        } => {
            if sessions > 0 {
                output::note(format!(
                    "{succeeded} of {sessions} session(s) succeeded{}",
                    if failed > 0 {
                        format!("; {failed} thought(s) failed for good")
                    } else {
                        String::new()
                    }
                ));
            }
            // Attempts that will be retried are not failures of the run.
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(code::FAILED)
            })
        }
    }
}

/// The program a session would start.
fn agent_program(spec: &tgs_core::agent::driver::AgentSpec) -> String {
    use tgs_core::agent::driver::Driver;
    match &spec.driver {
        Driver::Command(words) => words[0].clone(),
        Driver::Adapter(path) => path.display().to_string(),
        _ => spec.bin(),
    }
}

/// Whether `program` can be started: a path (relative ones are relative to the
/// worktree, a checkout of the repository) or a name found on PATH.
fn program_exists(program: &str, root: &std::path::Path) -> bool {
    let p = std::path::Path::new(program);
    if program.contains('/') {
        return if p.is_absolute() {
            p.is_file()
        } else {
            root.join(p).is_file()
        };
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

fn dry_run(ctx: &Ctx, runner: &Runner<'_>) -> CliResult {
    let plan = runner.plan()?;
    if ctx.json {
        output::json(&match &plan {
            Some((e, cmd)) => serde_json::json!({
                "dir": e.dir,
                "title": e.title,
                "attempt": e.attempts,
                "agent": runner.cfg.agent,
                "command": cmd.display(),
                "program": cmd.program,
                "args": cmd.args,
            }),
            None => serde_json::Value::Null,
        });
        return super::ok();
    }
    match plan {
        None => output::note("no work: nothing in the backlog can be claimed now"),
        Some((e, cmd)) => {
            anstream::println!("would claim: {} ({})", e.dir, e.title);
            anstream::println!("attempt:     {}", e.attempts);
            anstream::println!("worker:      {}", runner.cfg.worker_id);
            anstream::println!("agent:       {}", runner.cfg.agent);
            anstream::println!("command:     {}", cmd.display());
            anstream::println!(
                "prompt:      {}",
                if cmd.prompt_on_stdin {
                    "on stdin and in $TGS_PROMPT_FILE"
                } else {
                    "in the arguments or $TGS_PROMPT_FILE"
                }
            );
        }
    }
    super::ok()
}
