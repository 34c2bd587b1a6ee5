//! `tgs server run`: claim thoughts and have agents implement them, one
//! session at a time or up to `--parallel K` at once.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::json;
use tgs_core::agent::driver::{AgentSpec, Driver};
use tgs_core::backlog::Status;
use tgs_core::events::{Event, Fanout, Sink};
use tgs_core::process::Signals;
use tgs_core::runner::{Mode, RunConfig, RunExit, Runner};

use super::{Ctx, WriteArgs};
use crate::error::{code, CliError, CliResult};
use crate::output;
use crate::progress::Console;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Fill the session slots once, then stop (the default: one session, or
    /// --parallel K).
    #[arg(long, conflicts_with_all = ["until_empty", "watch"])]
    pub once: bool,
    /// Keep going until nothing is left to claim, waiting out retry delays.
    #[arg(long, conflicts_with = "watch")]
    pub until_empty: bool,
    /// Keep going for ever, looking for work every --interval (longer while idle).
    #[arg(long)]
    pub watch: bool,
    /// How often --watch looks for work (at least 10s).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_interval, requires = "watch")]
    pub interval: Duration,
    /// Run up to K sessions at once, each with its own claim, worktree and branch.
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
    /// Start at most N sessions in all (any mode).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max: Option<u32>,
    /// Work on this thought only; an error when it cannot be claimed now.
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
    /// Run the session of a thought claimed elsewhere (`tgs server matrix`),
    /// from the checkout as it is, changing nothing shared: the work is left
    /// in --handover-out for `tgs server handover`.
    #[arg(long, value_name = "DIR", requires_all = ["handover_out", "claim_id", "attempt"], conflicts_with_all = ["thought", "until_empty", "watch", "parallel", "dry_run"])]
    pub claimed: Option<String>,
    /// The claim's id (from the matrix), with --claimed.
    #[arg(long, value_name = "ID", requires = "claimed")]
    pub claim_id: Option<String>,
    /// The claim's attempt number (from the matrix), with --claimed.
    #[arg(long, value_name = "N", requires = "claimed")]
    pub attempt: Option<u32>,
    /// A claimed revision's start, the tip of its pull request's branch (from the matrix), with --claimed.
    #[arg(long, value_name = "COMMIT", requires = "claimed")]
    pub tip: Option<String>,
    /// Where --claimed leaves its work: the session record, a bundle of the
    /// branch, the end of the transcript.
    #[arg(long, value_name = "DIR", requires = "claimed")]
    pub handover_out: Option<std::path::PathBuf>,
    /// The claimed thought's work in progress, bundled by `tgs server
    /// matrix --wip-out` (with --claimed): the session goes on from it. A
    /// path that does not exist is no work in progress.
    #[arg(long, value_name = "FILE", requires = "claimed")]
    pub wip_bundle: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub write: WriteArgs,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    tgs_core::config::parse_duration(s)
}

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    let floor = tgs_core::runner::WATCH_FLOOR;
    if d < floor {
        return Err(format!(
            "{s:?} is too short: --watch looks for work at most every {}",
            tgs_core::runner::humanize(floor)
        ));
    }
    Ok(d)
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    // The secret rules are compiled, and whether bubblewrap can make a
    // sandbox here is asked, while the state and the configuration are
    // read (both are kept for the run).
    tgs_core::secrets::warm_up();
    if args.claimed.is_some() {
        return run_claimed(ctx, args);
    }
    if std::env::var("TGS_SANDBOX").as_deref() != Ok("off") {
        std::thread::spawn(|| drop(tgs_core::sandbox::probe()));
    }
    let repo = ctx.repo()?;
    if args.write.no_commit {
        return Err(CliError::usage(
            "--no-commit is not supported by server run; use --no-push",
        ));
    }
    let worker_id = args
        .worker_id
        .clone()
        .unwrap_or_else(tgs_core::clock::default_worker_id);
    // Strict even for --dry-run: it shows what a real run would do.
    let topo = ctx.topology(&repo, &args.write, true)?;
    let settings = ctx.server_settings(&repo, &topo)?;
    let state = ctx.state(&repo, &topo, &args.write, Some(worker_id.clone()))?;
    let base_branch = topo.base_branch_name(&repo)?;
    let origin = topo.remote().map(|r| r.url.clone());
    let thought = match &args.thought {
        Some(a) => {
            let all = state.read_all()?;
            let dir = super::find_entry(&repo, &all, a)?;
            // A finished thought is archived, out of the live backlog: say so.
            if let Some(e) = all.get(&dir).filter(|e| e.status == Status::Completed) {
                return Err(CliError::usage(tgs_core::runner::why_not_claimable(
                    &all,
                    e,
                    tgs_core::clock::now(),
                )));
            }
            Some(dir)
        }
        None => None,
    };
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
        push: origin.is_some(),
        open_pr: !args.no_pr,
        remote: topo.remote().map(|r| r.name.clone()),
        base_branch,
        transcript_whole: crate::actions::artifact_hint(),
        parallel: usize::from(args.parallel),
        max_sessions: args.max,
    };
    // Fail early on an unknown, missing or unusable agent, before anything is
    // claimed: that is a set-up problem, not a failed attempt at a thought.
    let spec = AgentSpec::resolve(&cfg.agent, &cfg.settings)?;
    if let Err(err) = check_program(&spec, &cfg.agent, repo.root()) {
        if !args.dry_run {
            return Err(err);
        }
        output::warn(format!(
            "{}{}",
            err.message,
            err.hint.map(|h| format!(" ({h})")).unwrap_or_default()
        ));
    }
    check_sandbox(&cfg.settings)?;
    let forge = if cfg.open_pr && cfg.remote.is_some() {
        tgs_core::github::GitHub::from_env(|k| std::env::var(k).ok(), origin.as_deref())
            .map_err(|e| CliError::from(e).hint("set GITHUB_REPOSITORY=owner/name (and GITHUB_API_URL for GitHub Enterprise), or pass --no-pr"))?
            .map(|gh| Box::new(gh) as Box<dyn tgs_core::forge::Forge>)
    } else {
        None
    };
    if cfg.open_pr && forge.is_none() && cfg.remote.is_some() {
        tracing::info!(
            "no TGS_GITHUB_TOKEN, GITHUB_TOKEN or GH_TOKEN: branches are pushed, no pull request is opened"
        );
    }
    let signals = Signals::install()?;
    let runner = Runner {
        repo: &repo,
        cfg,
        state,
        forge,
        signals: Some(signals),
        env: std::env::vars().collect(),
        topology: topo,
    };
    if args.dry_run {
        return dry_run(ctx, &runner);
    }
    let mut console = Console::new(args.quiet, args.parallel > 1);
    if runner.cfg.thought.is_some() {
        console = console.without_no_work();
    }
    let mut actions = crate::actions::Actions::new();
    let mut lines = JsonLines::default();
    let mut sinks = Fanout::default();
    sinks.push(&mut console);
    if crate::actions::active() {
        sinks.push(&mut actions);
    }
    if ctx.json {
        sinks.push(&mut lines);
    }
    let exit = runner.run(&mut sinks)?;
    if ctx.json {
        output::json_line(&summary_json(&exit));
    }
    match exit {
        RunExit::Interrupted(sig) => {
            output::note(match lines.released.max(console.released()) {
                0 => format!("interrupted by signal {sig}"),
                n => format!("interrupted by signal {sig}: {n} claim(s) given back"),
            });
            Ok(ExitCode::from((128 + sig) as u8))
        }
        RunExit::NotClaimable(why) => Err(CliError::usage(why).hint(
            "`tgs server backlog show DIR` shows the entry; `tgs server status` what can run",
        )),
        RunExit::Done {
            sessions,
            succeeded,
            failed,
            internal,
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
            if internal > 0 {
                return Err(CliError::failed(format!(
                    "{internal} session(s) ended with an internal error of tgs; their claims were given back"
                ))
                .hint("this is a bug in tgs: please report it with the output above"));
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

/// The run's last JSON line: how it ended.
fn summary_json(exit: &RunExit) -> serde_json::Value {
    match exit {
        RunExit::Done {
            sessions,
            succeeded,
            failed,
            internal,
        } => {
            json!({"summary": {"sessions": sessions, "succeeded": succeeded, "failed_for_good": failed, "internal_errors": internal}})
        }
        RunExit::Interrupted(sig) => json!({"summary": {"interrupted_by": sig}}),
        RunExit::NotClaimable(why) => json!({"summary": {"not_claimable": why}}),
    }
}

/// `--json`: one object per session as it ends (JSON Lines on stdout).
#[derive(Default)]
struct JsonLines {
    released: u32,
}

impl Sink for JsonLines {
    fn event(&mut self, e: &Event) {
        match e {
            Event::SessionEnded {
                dir,
                attempt,
                outcome,
                reason,
                started,
                ended,
                stats,
                pr_url,
                disposition,
                not_before,
                ..
            } => {
                if *disposition == tgs_core::events::Disposition::Released {
                    self.released += 1;
                }
                output::json_line(&json!({
                    "thought": dir,
                    "outcome": outcome,
                    "attempt": attempt,
                    "reason": reason,
                    "disposition": disposition,
                    "not_before": not_before,
                    "branch": tgs_core::runner::branch_of(dir),
                    "pr_url": pr_url,
                    "cost_usd": stats.cost_usd,
                    "input_tokens": stats.input_tokens,
                    "output_tokens": stats.output_tokens,
                    "turns": stats.turns,
                    "duration_s": ended.duration_since(*started).as_secs_f64().max(0.0),
                    "agent": stats.agent,
                }))
            }
            Event::HandoverRetried {
                dir,
                pr_url,
                reason,
                disposition,
            } => output::json_line(&json!({
                "thought": dir,
                "handover": disposition,
                "reason": reason,
                "pr_url": pr_url,
            })),
            _ => {}
        }
    }
}

/// The program a session would start, checked as the system will: it must
/// exist and be executable (a path is relative to the worktree, a checkout of
/// the repository; a bare name is looked up on PATH).
/// With `server.sandbox.mode: on`, no agent starts where no sandbox can be
/// made: a set-up error naming the fix, before anything is claimed.
fn check_sandbox(settings: &tgs_core::config::Settings) -> Result<(), CliError> {
    if !settings.sandbox.on {
        // Said when the repository's configuration chose it; TGS_SANDBOX=off
        // is this machine's owner speaking for this run.
        if std::env::var_os("TGS_SANDBOX").is_none() {
            output::warn(
                "agents run uncontained (server.sandbox.mode: off): they have your authority over this machine",
            );
        }
        return Ok(());
    }
    tgs_core::sandbox::probe().map(drop).map_err(|u| {
        let hint = if std::env::var("GITHUB_ACTIONS").as_deref() == Ok("true") {
            format!("{}; workflows written by an earlier `tgs server init` do not prepare the sandbox: run it again", u.hint)
        } else {
            u.hint
        };
        CliError::usage(format!("no sandbox for the agent: {}", u.why)).hint(hint)
    })
}

fn check_program(spec: &AgentSpec, agent: &str, root: &std::path::Path) -> Result<(), CliError> {
    let program = match &spec.driver {
        Driver::Command(words) => words[0].clone(),
        Driver::Adapter(path) => path.display().to_string(),
        _ => spec.bin(),
    };
    let candidates: Vec<std::path::PathBuf> = if program.contains('/') {
        let p = std::path::Path::new(&program);
        vec![if p.is_absolute() {
            p.to_owned()
        } else {
            root.join(p)
        }]
    } else {
        std::env::var_os("PATH")
            .map(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(&program))
                    .collect()
            })
            .unwrap_or_default()
    };
    let found: Vec<&std::path::PathBuf> = candidates.iter().filter(|p| p.is_file()).collect();
    if found.iter().any(|p| executable(p)) {
        return Ok(());
    }
    if let Some(p) = found.first() {
        return Err(CliError::usage(format!(
            "the agent {agent}'s program `{program}` is not executable ({})",
            p.display()
        ))
        .hint(format!("chmod +x {}", p.display())));
    }
    // No shell runs the command: `~` and `$VAR` stay as written.
    let unexpanded = program.starts_with('~') || program.contains('$');
    let hint = match spec.driver.package() {
        _ if unexpanded => format!(
            "tgs runs the program itself, with no shell: `~` and `$VARIABLES` are not expanded; write the full path in server.agents.{agent} (e.g. {})",
            program.replacen('~', &std::env::var("HOME").unwrap_or_else(|_| "/home/you".into()), 1)
        ),
        Some(p) => format!(
            "install {} ({}: the {} package {}), set server.agents.{agent}.bin, or pick another agent with --agent",
            p.product, p.install, p.registry, p.name
        ),
        None => format!("install it, or fix server.agents.{agent} in tgs/tgs.yml"),
    };
    Err(CliError::usage(format!(
        "the agent {agent}'s program `{program}` was not found"
    ))
    .hint(hint))
}

/// Whether this process may execute `path`, as the kernel will decide.
fn executable(path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access(2) reads a NUL-terminated path and touches no memory of ours.
    unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
}

fn dry_run(ctx: &Ctx, runner: &Runner<'_>) -> CliResult {
    let plan = runner.plan()?;
    if let (Err(why), Some(_)) = (&plan, &runner.cfg.thought) {
        return Err(CliError::usage(why.clone()));
    }
    if ctx.json {
        output::json(&match &plan {
            Ok(p) => serde_json::json!({
                "dir": p.entry.dir,
                "title": p.entry.title,
                "attempt": p.entry.attempts,
                "agent": runner.cfg.agent,
                "command": p.command.display(),
                "program": p.command.program,
                "args": p.command.args,
                "sandbox": match &p.sandbox {
                    None => serde_json::json!({"mode": "off"}),
                    Some(Ok(line)) => serde_json::json!({"mode": "on", "command": line}),
                    Some(Err(why)) => serde_json::json!({"mode": "on", "unavailable": why}),
                },
            }),
            Err(_) => serde_json::Value::Null,
        });
        return super::ok();
    }
    match plan {
        Err(why) => output::note(format!("no work: {why}")),
        Ok(p) => {
            let (e, cmd) = (&p.entry, &p.command);
            anstream::println!("would claim: {} ({})", e.dir, e.title);
            anstream::println!("attempt:     {}", e.attempts);
            anstream::println!("worker:      {}", runner.cfg.worker_id);
            anstream::println!("agent:       {}", runner.cfg.agent);
            anstream::println!("command:     {}", cmd.display());
            match &p.sandbox {
                None => anstream::println!("sandbox:     off (server.sandbox.mode: off)"),
                Some(Ok(line)) => anstream::println!("sandbox:     {line}"),
                Some(Err(why)) => anstream::println!("sandbox:     none can be made here: {why}"),
            }
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

/// `--claimed`: one session of a thought claimed by `tgs server matrix`, run
/// without reading or changing the state (the job has no write token).
fn run_claimed(ctx: &Ctx, args: Args) -> CliResult {
    let repo = ctx.repo()?;
    let dir = args.claimed.clone().unwrap_or_default();
    let dir = match super::parse_thought_arg(&repo, &dir)? {
        super::ThoughtArg::Dir(d) => d,
        super::ThoughtArg::Name(n) => format!("{}/{n}", tgs_core::thought::THOUGHTS_DIR),
    };
    let worker_id = args
        .worker_id
        .clone()
        .unwrap_or_else(tgs_core::clock::default_worker_id);
    let ticket = tgs_core::runner::ClaimTicket {
        thought: dir,
        attempt: args.attempt.unwrap_or(1),
        claim_id: args.claim_id.clone().unwrap_or_default(),
        worker: worker_id.clone(),
        tip: args.tip.clone().filter(|t| !t.is_empty()),
    };
    // No remote is used: nothing is fetched, pushed or recorded here.
    let write = WriteArgs {
        no_push: true,
        ..Default::default()
    };
    let topo = ctx.topology(&repo, &write, false)?;
    let settings = ctx.server_settings(&repo, &topo)?;
    let state = ctx.state(&repo, &topo, &write, Some(worker_id.clone()))?;
    let cfg = RunConfig {
        agent: args.agent.clone().unwrap_or_else(|| settings.agent.clone()),
        session_timeout: args.timeout.unwrap_or(settings.session_timeout),
        settings,
        worker_id,
        mode: Mode::Once,
        thought: None,
        push: false,
        open_pr: false,
        remote: None,
        base_branch: String::new(),
        transcript_whole: crate::actions::artifact_hint(),
        parallel: 1,
        max_sessions: None,
    };
    let spec = AgentSpec::resolve(&cfg.agent, &cfg.settings)?;
    check_program(&spec, &cfg.agent, repo.root())?;
    check_sandbox(&cfg.settings)?;
    let runner = Runner {
        repo: &repo,
        cfg,
        state,
        forge: None,
        signals: Some(Signals::install()?),
        env: std::env::vars().collect(),
        topology: topo,
    };
    let out = args.handover_out.clone().unwrap_or_default();
    let mut console = Console::new(args.quiet, false);
    let mut sinks = Fanout::default();
    sinks.push(&mut console);
    let bundle = args.wip_bundle.as_deref().filter(|p| p.exists());
    let report = runner.run_claimed(&ticket, &out, bundle, &mut sinks)?;
    output::note(format!(
        "{}: {}{}; the work is in {} for `tgs server handover`",
        report.dir,
        report.outcome.as_str(),
        report.reason.map(|r| format!(": {r}")).unwrap_or_default(),
        out.display()
    ));
    super::ok()
}
