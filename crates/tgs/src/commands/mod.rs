//! The command tree. Each subcommand lives in a module of its own with its
//! arguments and a `run` function; this module wires them together and holds
//! the helpers they share.

pub mod agent_exec;
pub mod backlog_add;
pub mod backlog_answer;
pub mod backlog_list;
pub mod backlog_next;
pub mod backlog_priority;
pub mod backlog_remove;
pub mod backlog_show;
pub mod backlog_transition;
pub mod backlog_validate;
pub mod completions;
pub mod debug;

pub mod demo;
pub mod mcp;
pub mod scan;
pub mod server_dashboard;
pub mod server_handover;
pub mod server_init;
pub mod server_logs;
pub mod server_matrix;
pub mod server_metrics;
pub mod server_recover;
pub mod server_resume;
pub mod server_run;
pub mod server_state;
pub mod server_status;
pub mod server_sync_prs;
pub mod thought_list;
pub mod thought_new;

use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tgs_core::backlog::target::{StateTarget, TargetOptions};
use tgs_core::backlog::Backlog;
use tgs_core::config::{Config, Settings, CONFIG_PATH};
use tgs_core::repo::Repo;
use tgs_core::thought::{Stage, ThoughtIndex, ThoughtName, NAME_RULE, THOUGHTS_DIR};
use tgs_core::topology::{Request, Topology};

use crate::error::{CliError, CliResult};

const AFTER_HELP: &str = "\
Exit codes:
  0    success
  1    the operation failed (git, I/O, the agent; problems found by `validate`)
  2    bad input or usage; nothing was changed
  3    the backlog file is corrupt, invalid or of a newer version (left untouched)
  4    another tgs held the backlog lock too long, or other workers kept
       winning the race for the state branch; try again
  130  interrupted by SIGINT
  143  interrupted by SIGTERM

Environment:
  TGS_LOG    log filter for stderr, e.g. `debug` or `tgs::git=debug`, shown
             with levels and timings (without it: plain `warning:` lines)
  TGS_NOW    pin the clock (RFC 3339), for tests and reproducible runs
  TGS_LOCK_DIR
             where workers of one machine take turns on a state branch
             (default: $XDG_RUNTIME_DIR/tgs, else ~/.cache/tgs/locks)
  NO_COLOR   disable colors";

/// TGSFlow: thoughts, agents and an autonomous server mode.
#[derive(Debug, Parser)]
#[command(name = "tgs", version, about, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    /// Run as if tgs was started in DIR.
    #[arg(short = 'C', value_name = "DIR", global = true)]
    pub chdir: Option<PathBuf>,

    /// Print data as JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and inspect thoughts.
    #[command(subcommand)]
    Thought(ThoughtCommand),
    /// Server mode: the backlog of approved thoughts and its automation.
    #[command(subcommand)]
    Server(ServerCommand),
    /// Run coding agents.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Serve the backlog to an agent over the Model Context Protocol (stdio).
    Mcp(mcp::Args),
    /// Print a shell completion script.
    Completions(completions::Args),
    /// Run the whole server loop on a built-in example (no API key, no network).
    Demo(demo::Args),
    /// The demo's scripted agent (used by `tgs demo`).
    #[command(hide = true)]
    DemoAgent,
    /// Checks of this binary as it was built.
    #[command(hide = true, subcommand)]
    Debug(DebugCommand),
}

#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Compile every built-in pattern (exit 1 naming any that fails).
    SelfCheck,
    /// The credential helper tgs's own git runs (never by hand): asks the
    /// broker of the tgs that started git, over SOCKET.
    GitCredential {
        socket: std::path::PathBuf,
        /// git's operation: get, store or erase.
        operation: String,
    },
    /// The reaper tgs runs each agent and verify command under (never by
    /// hand): runs PROGRAM, then kills whatever it left running.
    Reap {
        /// How long the program gets between SIGTERM and SIGKILL.
        #[arg(long)]
        grace_ms: u64,
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        program: Vec<std::ffi::OsString>,
    },
    /// The first process inside a session's sandbox (never by hand): a
    /// bridge from the sandbox's loopback PORT to tgs's proxy at SOCKET,
    /// then PROGRAM.
    SandboxInit {
        #[arg(long)]
        socket: std::path::PathBuf,
        #[arg(long)]
        port: u16,
        /// RLIMIT_NPROC for the program.
        #[arg(long)]
        max_processes: u64,
        /// RLIMIT_FSIZE, in bytes.
        #[arg(long)]
        max_file_size: u64,
        /// RLIMIT_AS, in bytes (none if not given).
        #[arg(long)]
        max_memory: Option<u64>,
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        program: Vec<std::ffi::OsString>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ThoughtCommand {
    /// Scaffold a new thought directory.
    New(thought_new::Args),
    /// List every thought with its stage, read from HEAD.
    List(thought_list::Args),
}

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Manage the backlog (tgs/server/backlog.json).
    #[command(subcommand)]
    Backlog(BacklogCommand),
    /// Add every approved thought that is not in the backlog yet.
    Scan(scan::Args),
    /// Claim thoughts and have a coding agent implement them.
    Run(server_run::Args),
    /// Claim up to N thoughts at once and print them as a GitHub Actions job matrix.
    Matrix(server_matrix::Args),
    /// Check the artifacts of sessions run without write access, and hand them over.
    Handover(server_handover::Args),
    /// Give claims whose lease expired back to the queue.
    Recover(server_recover::Args),
    /// Let workers start sessions with an agent again (its provider had refused).
    Resume(server_resume::Args),
    /// Record whether completed entries' pull requests are open, merged or closed.
    SyncPrs(server_sync_prs::Args),
    /// What runs now, what runs next, and what needs a human.
    Status(server_status::Args),
    /// Throughput, success rates, durations and cost from the session metrics.
    Metrics(server_metrics::Args),
    /// Print a thought's session transcript (the latest, or --attempt N).
    Logs(server_logs::Args),
    /// Write a static status site (HTML, no external requests) to a folder.
    Dashboard(server_dashboard::Args),
    /// Write the GitHub Actions workflows, config, prompt and adapters server mode needs.
    Init(server_init::Args),
    /// Where the shared state lives.
    #[command(subcommand)]
    State(StateCommand),
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Move the state out of the base branch's tree onto a branch of its own.
    Migrate(server_state::MigrateArgs),
    /// Push the state this clone last fetched back to the remote, where the
    /// state branch was deleted.
    Restore(server_state::RestoreArgs),
}

#[derive(Debug, Subcommand)]
pub enum BacklogCommand {
    /// Add thoughts to the backlog.
    Add(backlog_add::Args),
    /// List entries in claim order.
    List(backlog_list::Args),
    /// Show one entry.
    Show(backlog_show::Args),
    /// Remove an entry.
    Remove(backlog_remove::Args),
    /// Set an entry's priority (higher runs first).
    Priority(backlog_priority::Args),
    /// Claim the next entry and print what an agent should read.
    Next(backlog_next::Args),
    /// Mark a claimed entry completed.
    Complete(backlog_transition::CompleteArgs),
    /// Mark a claimed entry failed.
    Fail(backlog_transition::FailArgs),
    /// Put a failed entry back in the queue.
    Retry(backlog_transition::RetryArgs),
    /// Answer the question an agent asked; the entry is queued again.
    Answer(backlog_answer::Args),
    /// Check the backlog against the repository.
    Validate(backlog_validate::Args),
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Run an adapter script (the contract of the Go `tgs agent exec`).
    Exec(agent_exec::Args),
}

/// Settings the environment overrides: `TGS_SANDBOX=on|off` (a machine
/// without bubblewrap whose owner accepts uncontained agents, a test run).
fn with_env(mut s: Settings) -> CliResult<Settings> {
    match std::env::var("TGS_SANDBOX").ok().as_deref() {
        None | Some("") => {}
        Some("on") => s.sandbox.on = true,
        Some("off") => s.sandbox.on = false,
        Some(other) => {
            return Err(CliError::usage(format!(
                "TGS_SANDBOX={other:?} is not `on` or `off`"
            )))
        }
    }
    Ok(s)
}

/// What switched the sandbox off: the variable, or the configuration.
pub fn sandbox_switch() -> &'static str {
    match std::env::var("TGS_SANDBOX").as_deref() {
        Ok("off") => "TGS_SANDBOX=off",
        _ => "server.sandbox.mode: off",
    }
}

/// What every command may need, resolved from the global arguments.
pub struct Ctx {
    pub json: bool,
}

impl Ctx {
    pub fn repo(&self) -> CliResult<Repo> {
        Ok(Repo::discover(Path::new("."))?)
    }

    /// The repository's `tgs/tgs.yml` settings, with `TGS_SANDBOX` over
    /// its `server.sandbox.mode`.
    pub fn settings(&self, repo: &Repo) -> CliResult<Settings> {
        with_env(Settings::resolve(&Config::load(repo.root())?)?)
    }

    /// Server mode's settings: `tgs/tgs.yml` as committed on the base
    /// branch's tip (the commit whose thoughts it runs), not the working
    /// copy an agent may have edited, with a warning when the two differ.
    /// Where the state and base live (remote, branches) stays as the working
    /// copy's settings found them: they located the base this reads.
    pub fn server_settings(&self, repo: &Repo, topo: &Topology) -> CliResult<Settings> {
        let local = self.settings(repo)?;
        let base = match topo.fetch_base(repo) {
            Ok(b) => b,
            // No base yet (nothing committed): nothing to read but the working copy.
            Err(tgs_core::Error::Setup { .. }) => return Ok(local),
            Err(e) => return Err(e.into()),
        };
        let Some(commit) = &base.commit else {
            return Ok(local);
        };
        if Config::working_copy_differs(repo, commit)? {
            crate::output::warn(format!(
                "{CONFIG_PATH} in your working copy differs from {}'s; server mode uses {}'s (commit {})",
                base.label,
                base.label,
                &commit[..commit.len().min(12)]
            ));
            crate::output::note(format!(
                "  hint: commit (and push) your change to {CONFIG_PATH} for server mode to use it"
            ));
        }
        let mut settings = with_env(Settings::resolve(&Config::load_committed(
            repo,
            commit,
            &base.label,
        )?)?)?;
        settings.remote = local.remote;
        settings.state_branch = local.state_branch;
        settings.base_branch = local.base_branch;
        Ok(settings)
    }

    /// The remote and branches a command works with. `writes`: the command
    /// changes the state or runs sessions, so a missing remote is an error
    /// (unless `--no-push`).
    pub fn topology(&self, repo: &Repo, write: &WriteArgs, writes: bool) -> CliResult<Topology> {
        let topo = self.quiet_topology(repo, write, writes)?;
        if topo.detected_legacy() {
            crate::output::warn(format!(
                "the backlog state lives in {}'s tree (tgs/server/), so every state change is a commit on that branch",
                topo.state_label()
            ));
            crate::output::note(
                "  hint: `tgs server state migrate` moves it to a branch of its own; set server.state_branch to keep it where it is",
            );
        }
        Ok(topo)
    }

    /// [`Ctx::topology`] without its warning about a legacy layout.
    pub fn quiet_topology(
        &self,
        repo: &Repo,
        write: &WriteArgs,
        writes: bool,
    ) -> CliResult<Topology> {
        let settings = self.settings(repo)?;
        Ok(Topology::resolve(
            repo,
            &Request {
                remote: &settings.remote,
                state_branch: settings.state_branch.as_deref(),
                base_branch: settings.base_branch.as_deref(),
                push: !write.no_push,
                write: writes,
            },
        )?)
    }

    /// Where the backlog state lives for a command that changes it.
    pub fn target<'r>(&self, repo: &'r Repo, write: &WriteArgs) -> CliResult<StateTarget<'r>> {
        self.target_as(repo, write, None)
    }

    /// [`Ctx::target`], recording changes in the audit log as `actor`.
    pub fn target_as<'r>(
        &self,
        repo: &'r Repo,
        write: &WriteArgs,
        actor: Option<String>,
    ) -> CliResult<StateTarget<'r>> {
        let topo = self.topology(repo, write, true)?;
        self.state(repo, &topo, write, actor)
    }

    /// Where the backlog state lives for a command that only reads it: the
    /// remote's state when there is a remote, else the local one.
    pub fn reader<'r>(&self, repo: &'r Repo) -> CliResult<StateTarget<'r>> {
        let topo = self.topology(repo, &WriteArgs::default(), false)?;
        Ok(StateTarget::resolve(
            repo,
            &topo,
            &TargetOptions {
                read_only: true,
                ..Default::default()
            },
        )?)
    }

    /// The state of `topo`, as `write` asks.
    pub fn state<'r>(
        &self,
        repo: &'r Repo,
        topo: &Topology,
        write: &WriteArgs,
        actor: Option<String>,
    ) -> CliResult<StateTarget<'r>> {
        // `TGS_ACTOR` names who acts when the command does not (`tgs mcp`
        // runs tgs's commands for its client: `mcp:claude-code`).
        let actor = actor.or_else(|| std::env::var("TGS_ACTOR").ok().filter(|a| !a.is_empty()));
        Ok(StateTarget::resolve(
            repo,
            topo,
            &TargetOptions {
                commit: !write.no_commit,
                actor,
                read_only: false,
            },
        )?)
    }
}

pub fn run(cli: Cli) -> CliResult {
    if let Some(dir) = &cli.chdir {
        std::env::set_current_dir(dir).map_err(|e| {
            CliError::usage(format!("cannot change to {}", dir.display())).cause(e.to_string())
        })?;
    }
    if let Command::Debug(c) = cli.command {
        return debug::run(c);
    }
    // Agents and verify commands run under the reaper: this very binary.
    if let Ok(tgs) = std::env::current_exe() {
        tgs_core::reaper::install(tgs);
    }
    // Before anything prints: secrets masked, tgs's own git authenticated
    // (the broker serves until this function returns).
    let _broker = crate::actions::active().then(|| {
        crate::actions::mask_secrets(&[]);
        crate::actions::authenticate_git()
    });
    let ctx = Ctx { json: cli.json };
    match cli.command {
        Command::Thought(ThoughtCommand::New(a)) => thought_new::run(&ctx, a),
        Command::Thought(ThoughtCommand::List(a)) => thought_list::run(&ctx, a),
        Command::Server(ServerCommand::Scan(a)) => scan::run(&ctx, a),
        Command::Server(ServerCommand::Run(a)) => server_run::run(&ctx, a),
        Command::Server(ServerCommand::Matrix(a)) => server_matrix::run(&ctx, a),
        Command::Server(ServerCommand::Handover(a)) => server_handover::run(&ctx, a),
        Command::Server(ServerCommand::Recover(a)) => server_recover::run(&ctx, a),
        Command::Server(ServerCommand::Resume(a)) => server_resume::run(&ctx, a),
        Command::Server(ServerCommand::SyncPrs(a)) => server_sync_prs::run(&ctx, a),
        Command::Server(ServerCommand::Status(a)) => server_status::run(&ctx, a),
        Command::Server(ServerCommand::Metrics(a)) => server_metrics::run(&ctx, a),
        Command::Server(ServerCommand::Logs(a)) => server_logs::run(&ctx, a),
        Command::Server(ServerCommand::Dashboard(a)) => server_dashboard::run(&ctx, a),
        Command::Server(ServerCommand::Init(a)) => server_init::run(&ctx, a),
        Command::Server(ServerCommand::State(StateCommand::Migrate(a))) => {
            server_state::migrate(&ctx, a)
        }
        Command::Server(ServerCommand::State(StateCommand::Restore(a))) => {
            server_state::restore(&ctx, a)
        }
        Command::Server(ServerCommand::Backlog(b)) => match b {
            BacklogCommand::Add(a) => backlog_add::run(&ctx, a),
            BacklogCommand::List(a) => backlog_list::run(&ctx, a),
            BacklogCommand::Show(a) => backlog_show::run(&ctx, a),
            BacklogCommand::Remove(a) => backlog_remove::run(&ctx, a),
            BacklogCommand::Priority(a) => backlog_priority::run(&ctx, a),
            BacklogCommand::Next(a) => backlog_next::run(&ctx, a),
            BacklogCommand::Complete(a) => backlog_transition::complete(&ctx, a),
            BacklogCommand::Fail(a) => backlog_transition::fail(&ctx, a),
            BacklogCommand::Retry(a) => backlog_transition::retry(&ctx, a),
            BacklogCommand::Answer(a) => backlog_answer::run(&ctx, a),
            BacklogCommand::Validate(a) => backlog_validate::run(&ctx, a),
        },
        Command::Agent(AgentCommand::Exec(a)) => agent_exec::run(&ctx, a),
        Command::Mcp(a) => mcp::run(&ctx, a),
        Command::Completions(a) => completions::run(a),
        Command::Demo(a) => demo::run(&ctx, a),
        Command::DemoAgent => demo::agent(),
        Command::Debug(_) => unreachable!("debug commands are run first"),
    }
}

/// Options shared by commands that change the backlog.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct WriteArgs {
    /// Write the file but do not record the change as a commit (local only).
    #[arg(long)]
    pub no_commit: bool,
    /// Change the local state only; do not fetch from or push to the remote.
    #[arg(long)]
    pub no_push: bool,
}

impl WriteArgs {
    pub fn options(&self) -> tgs_core::backlog::store::WriteOptions {
        tgs_core::backlog::store::WriteOptions {
            commit: !self.no_commit,
        }
    }
}

pub fn ok() -> CliResult {
    Ok(ExitCode::SUCCESS)
}

/// Where a thought argument points, before checking that the thought exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThoughtArg {
    /// A bare name: `tgs/thoughts/<name>`, or the legacy `tgs/<name>`.
    Name(ThoughtName),
    /// A repository-relative directory of the right shape.
    Dir(String),
}

impl ThoughtArg {
    /// The directories this argument may mean, preferred first.
    pub fn candidates(&self) -> Vec<String> {
        match self {
            ThoughtArg::Name(n) => vec![format!("{THOUGHTS_DIR}/{n}"), format!("tgs/{n}")],
            ThoughtArg::Dir(d) => vec![d.clone()],
        }
    }
}

/// Interpret a thought directory given on the command line: `x`,
/// `tgs/thoughts/x`, `./tgs/thoughts/x/`, a path relative to the current
/// directory, or an absolute path inside the repository. Purely lexical:
/// nothing on disk is followed, so symlinks cannot redirect it.
pub fn parse_thought_arg(repo: &Repo, arg: &str) -> CliResult<ThoughtArg> {
    let trimmed = arg.trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(CliError::usage(format!(
            "{arg:?} is not a thought directory"
        )));
    }
    if !trimmed.contains('/') && trimmed != "." && trimmed != ".." {
        return ThoughtName::parse(trimmed)
            .map(ThoughtArg::Name)
            .ok_or_else(|| bad_name(arg, trimmed));
    }
    let rel = if Path::new(trimmed).is_absolute() {
        let root = repo.root();
        let canon_root = root.canonicalize().unwrap_or_else(|_| root.to_owned());
        let p = Path::new(trimmed);
        let stripped = p
            .strip_prefix(root)
            .or_else(|_| p.strip_prefix(&canon_root))
            .map_err(|_| {
                CliError::usage(format!(
                    "{arg} lies outside the repository {}",
                    root.display()
                ))
            })?;
        stripped.to_string_lossy().into_owned()
    } else {
        format!("{}{trimmed}", repo.prefix())
    };
    let normal = normalize(&rel)
        .ok_or_else(|| CliError::usage(format!("{arg} lies outside the repository")))?;
    let parts: Vec<&str> = normal.split('/').collect();
    let name = match parts.as_slice() {
        ["tgs", "thoughts", name] | ["tgs", name] => *name,
        _ => {
            return Err(CliError::usage(format!(
                "{arg} lies outside the thoughts folder ({THOUGHTS_DIR}/<hash>-<slug>)"
            )))
        }
    };
    ThoughtName::parse(name).ok_or_else(|| bad_name(arg, name))?;
    Ok(ThoughtArg::Dir(normal))
}

/// Warn about the folders under `tgs/thoughts/` that were passed over for their name.
pub fn warn_skipped(index: &ThoughtIndex) {
    for dir in &index.skipped {
        crate::output::warn(format!(
            "{dir}: not a thought folder name ({NAME_RULE}); skipped"
        ));
    }
}

fn bad_name(arg: &str, name: &str) -> CliError {
    CliError::usage(format!(
        "{arg}: {name:?} is not a thought name ({NAME_RULE})"
    ))
}

/// Resolve `.` and `..` lexically; `None` if the path climbs out of the root.
fn normalize(path: &str) -> Option<String> {
    let mut out: Vec<String> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(s) => out.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out.join("/"))
}

/// The base branch's tip as the remote has it (fetched): its label
/// (`origin/main`) and commit. A base without commits is a set-up error.
pub fn base_commit(repo: &Repo, topo: &Topology) -> CliResult<(String, String)> {
    let tip = topo.fetch_base(repo)?;
    match tip.commit {
        Some(c) => Ok((tip.label, c)),
        None => Err(
            CliError::usage(format!("{} has no commits yet", tip.label)).hint(format!(
                "push {} first (thoughts are read from it)",
                tip.branch
            )),
        ),
    }
}

/// Thoughts approved in this clone's HEAD that the base (at `base`) lacks or
/// holds only as a draft: committed here, not pushed. Empty when HEAD is the base.
pub fn approved_only_here(
    repo: &Repo,
    base_index: &ThoughtIndex,
    base: &str,
) -> CliResult<Vec<String>> {
    let Some(head) = repo.discovered_head().filter(|h| *h != base) else {
        return Ok(Vec::new());
    };
    let here = ThoughtIndex::load(repo, Some(head))?;
    Ok(here
        .thoughts
        .iter()
        .filter(|t| here.stage(t) == Stage::Approved)
        .filter(|t| {
            base_index
                .find(&t.dir)
                .is_none_or(|b| base_index.stage(b) == Stage::Draft)
        })
        .map(|t| t.dir.clone())
        .collect())
}

/// Find the backlog entry a command-line argument names: by its directory or
/// name (see [`parse_thought_arg`]), or by its slug alone (`third-thing` for
/// `tgs/thoughts/ccccccc-third-thing`) when one entry has it.
pub fn find_entry(repo: &Repo, backlog: &Backlog, arg: &str) -> CliResult<String> {
    if let Some(dir) = lookup_entry(repo, backlog, arg)? {
        return Ok(dir);
    }
    let not_in = |dir: &str| {
        CliError::usage(format!("{dir} is not in the backlog"))
            .hint("`tgs server backlog list` shows what is")
    };
    match parse_thought_arg(repo, arg) {
        Ok(parsed) => Err(not_in(&parsed.candidates()[0])),
        Err(_) if slug_arg(arg).is_some() => Err(CliError::usage(format!(
            "no backlog entry has the directory, name or slug {arg:?}"
        ))
        .hint("`tgs server backlog list` shows what is")),
        Err(e) => Err(e),
    }
}

/// [`find_entry`], with `None` when nothing in the backlog answers to `arg`.
/// A slug that more than one entry has is an error naming them.
pub fn lookup_entry(repo: &Repo, backlog: &Backlog, arg: &str) -> CliResult<Option<String>> {
    if let Ok(parsed) = parse_thought_arg(repo, arg) {
        if let Some(dir) = parsed
            .candidates()
            .into_iter()
            .find(|d| backlog.get(d).is_some())
        {
            return Ok(Some(dir));
        }
    }
    let Some(slug) = slug_arg(arg) else {
        return Ok(None);
    };
    let mut found: Vec<&str> = backlog
        .thoughts
        .iter()
        .map(|e| e.dir.as_str())
        .filter(|d| {
            let name = d.rsplit('/').next().unwrap_or(d);
            ThoughtName::parse(name).is_some_and(|n| n.slug() == slug)
        })
        .collect();
    found.sort_unstable();
    found.dedup();
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.to_string())),
        many => Err(CliError::usage(format!(
            "{arg:?} is the slug of {} backlog entries: {}",
            many.len(),
            many.join(", ")
        ))
        .hint("name one by its directory or <hash>-<slug>")),
    }
}

/// Whether `e` is one that [`lookup_entry`] could answer `arg` with: its
/// directory is one `arg` names, or its slug is `arg`. For reading only those
/// entries of a long archive.
pub fn may_answer(repo: &Repo, arg: &str) -> impl Fn(&tgs_core::backlog::Entry) -> bool {
    let dirs = parse_thought_arg(repo, arg)
        .map(|p| p.candidates())
        .unwrap_or_default();
    let slug = slug_arg(arg).map(str::to_owned);
    move |e| {
        let name = e.dir.rsplit('/').next().unwrap_or(&e.dir);
        dirs.contains(&e.dir)
            || slug
                .as_deref()
                .is_some_and(|s| ThoughtName::parse(name).is_some_and(|n| n.slug() == s))
    }
}

/// The slug a bare argument may be (`third-thing`, `third-thing/`).
fn slug_arg(arg: &str) -> Option<&str> {
    let s = arg.trim_end_matches('/');
    (!s.contains('/') && ThoughtName::parse(&format!("0000000-{s}")).is_some()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn lexical_normalization() {
        assert_eq!(
            normalize("./tgs/thoughts/x").as_deref(),
            Some("tgs/thoughts/x")
        );
        assert_eq!(
            normalize("tgs/a/../thoughts/x").as_deref(),
            Some("tgs/thoughts/x")
        );
        assert_eq!(normalize("../x"), None);
        assert_eq!(normalize("tgs/../../x"), None);
    }
}
