//! One attempt's agent and checks: the types every executor shares (the
//! job, its messages, its result) and [`agent_and_verify`], which runs the
//! agent in its repository (inside the sandbox when it is on), takes its
//! work in, and checks it. Both a thought's first session
//! ([`super::executor`]) and a revision ([`super::revise`]) end here.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::Arc;

use super::outcome::{self, AgentVerdict, ProviderCondition};
use super::{RunConfig, SessionFiles};
use crate::agent::driver::{AgentSpec, Invocation};
use crate::backlog::Entry;
use crate::events::{Event, Outcome, SessionStats};
use crate::process::Signals;
use crate::repo::Repo;
use crate::session::{self, RunOptions};
use crate::transcript::Redactor;
use crate::worktree::{self, Worktree, LOGS_DIR};
use crate::{clock, verify, Error};

/// What every executor of a run shares (read only).
pub(crate) struct Shared<'a> {
    pub repo: &'a Repo,
    pub cfg: &'a RunConfig,
    /// The environment agents' environments are picked from.
    pub env: &'a [(String, String)],
    pub signals: Option<&'a Signals>,
    /// tgs's own git identity (`Name <email>`), given to the agent to commit with.
    pub identity: &'a str,
}

/// A claimed session to run.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub entry: Entry,
    /// The base branch as the remote has it: `origin/main`, and its commit.
    pub base_label: String,
    pub base: String,
    /// A revision's start: the tip of the pull request's branch as the
    /// remote has it (a human may have pushed to it).
    pub tip: Option<String>,
}

/// What an executor sends the dispatcher.
pub(crate) enum Msg {
    Event(Box<Event>),
    /// The implement step of this thought's session is over: its artifact
    /// is written (or could not be, which the hand-over step sees).
    Done(String),
}

/// What a session came to, before it is handed over and recorded.
#[derive(Debug, Clone)]
pub(crate) struct WorkResult {
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub stats: SessionStats,
    /// The verified branch and its head (success only).
    pub branch: Option<String>,
    pub head: Option<String>,
    /// The end of the (redacted) transcript, for failure alerts.
    pub log_tail: String,
    /// The transcript file, once the agent ran.
    pub log: Option<PathBuf>,
    /// The kept end of the transcript, already packed (a hand-over artifact's).
    pub kept_gz: Option<Vec<u8>>,
    /// The model provider refused: pause the agent.
    pub provider: Option<ProviderCondition>,
    /// Not the thought's doing: the claim goes back without counting the attempt.
    pub refund: bool,
    /// No later attempt can help: the thought fails for good now.
    pub final_failure: bool,
    /// Requeue without a retry delay (the session's job vanished).
    pub requeue_now: bool,
    /// A revision whose pull request branch is gone from the remote (merged
    /// or closed and deleted): there is nothing left to revise.
    pub branch_gone: bool,
    /// A bug in tgs (a panic) ended the session: see [`WorkResult::internal_error`].
    pub internal: bool,
    /// It comes from an artifact (the agent's job's word): what it asks of
    /// every worker (a pause) is bounded.
    pub untrusted: bool,
    /// Connections the sandbox refused the agent, and to what (audited).
    pub egress_denied: u32,
    pub egress_targets: Vec<String>,
    /// Where the agent ran, for the metrics: `bubblewrap` or `off` (`None`
    /// when no agent started).
    pub sandbox: Option<&'static str>,
    /// What the session does to its thought's work in progress.
    pub wip: WipChange,
    /// What became of the work in progress worth a word in the record (not
    /// kept: why; a conflict with the base).
    pub wip_note: Option<String>,
    /// The question the agent asked its humans (redacted): the attempt ends
    /// `needs_input` and the entry waits for an answer.
    pub question: Option<String>,
    /// Where the question was posted for humans to answer.
    pub question_posted: Option<crate::backlog::Posted>,
}

/// What a session does to its thought's work in progress ([`super::wip`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) enum WipChange {
    /// Leave the entry's as it is (nothing new was made).
    #[default]
    Keep,
    /// Keep this one (its head on the local WIP ref, still to be pushed).
    Set(crate::backlog::Wip),
    /// Drop the entry's (it conflicts with the base, or the thought is done).
    Drop,
}

impl WorkResult {
    pub fn new(agent: &str, outcome: Outcome, reason: Option<String>) -> WorkResult {
        WorkResult {
            outcome,
            reason,
            stats: SessionStats {
                agent: agent.to_owned(),
                ..Default::default()
            },
            branch: None,
            head: None,
            log_tail: String::new(),
            log: None,
            kept_gz: None,
            provider: None,
            refund: false,
            final_failure: false,
            requeue_now: false,
            branch_gone: false,
            internal: false,
            untrusted: false,
            egress_denied: 0,
            egress_targets: Vec::new(),
            sandbox: None,
            wip: WipChange::Keep,
            wip_note: None,
            question: None,
            question_posted: None,
        }
    }

    /// A panic of tgs's own ended the session: `crashed: internal error`,
    /// the attempt given back (not the thought's doing), humans told.
    pub fn internal_error(mut self, panic: &(dyn std::any::Any + Send)) -> WorkResult {
        self.outcome = Outcome::Crashed;
        self.reason = Some(format!(
            "internal error: {}",
            crate::selfcheck::panic_message(panic)
        ));
        self.refund = true;
        self.internal = true;
        self.branch = None;
        self.head = None;
        self
    }

    /// How the session ended, in one line: `outcome: reason`, or the
    /// outcome alone.
    pub fn ended(&self) -> String {
        match &self.reason {
            Some(r) => format!("{}: {r}", self.outcome.as_str()),
            None => self.outcome.as_str().to_owned(),
        }
    }

    /// Add `note` to the reason (`reason; note`), or make it the reason.
    pub fn add_note(&mut self, note: String) {
        self.reason = Some(match self.reason.take() {
            Some(r) => format!("{r}; {note}"),
            None => note,
        });
    }

    pub(super) fn over(mut self, outcome: Outcome, reason: String) -> WorkResult {
        self.outcome = outcome;
        self.reason = Some(reason);
        self
    }

    /// The agent asked `question` and stopped: not the thought's failure.
    fn asked(mut self, question: String) -> WorkResult {
        self.outcome = Outcome::NeedsInput;
        self.reason = Some(crate::backlog::first_line(&question));
        self.question = Some(question);
        self
    }

    fn provider(mut self, c: ProviderCondition) -> WorkResult {
        self.outcome = c.kind.outcome();
        self.reason = Some(c.detail.clone());
        self.refund = true;
        self.provider = Some(c);
        self
    }
}

/// Run the agent on `text` in `wt`, then check the branch: its rules from
/// `rules_base` (the worktree's base, or the base branch for a merge).
#[allow(clippy::too_many_arguments)]
pub(super) fn agent_and_verify(
    sh: &Shared<'_>,
    entry: &Entry,
    wt: &Worktree,
    rules_base: &str,
    text: &str,
    context: &[String],
    mut w: WorkResult,
    tx: &Sender<Msg>,
) -> Result<WorkResult, Error> {
    let cfg = sh.cfg;
    let name = super::name_of(&entry.dir)?;
    let files = SessionFiles::of(sh.repo, &name);
    std::fs::create_dir_all(&files.dir)?;
    std::fs::write(&files.prompt, text)?;
    std::fs::write(&files.context, context.join("\n") + "\n")?;
    let spec = AgentSpec::resolve(&cfg.agent, &cfg.settings)?;
    let inv = Invocation {
        worktree: &wt.path,
        prompt_file: &files.prompt,
        context_list: &files.context,
        context_files: context,
        thought_dir: &entry.dir,
        branch: &wt.branch,
        attempt: entry.attempts,
        timeout_secs: cfg.session_timeout.as_secs(),
        identity: Some(sh.identity),
    };
    let mut cmd = spec.command(sh.env, &inv, text);
    let mut wall = cfg
        .settings
        .sandbox
        .on
        .then(|| {
            crate::sandbox::Wall::for_session(
                sh.repo,
                &cfg.settings.sandbox,
                &spec.driver,
                &cmd,
                &wt.path,
                &files.dir,
            )
        })
        .transpose()?;
    if let Some(wall) = wall.as_mut() {
        // The model key stays outside: the agent gets a stand-in.
        let (routes, env) = crate::sandbox::gateway::plan(&cmd.env);
        wall.routes = routes;
        cmd.env = env;
    }
    spec.fit_endpoint(&mut cmd);
    let redactor = Arc::new(Redactor::for_secrets(
        Redactor::secret_env_values(sh.env.iter().cloned(), &cfg.settings.redact_env_keys),
        &cfg.settings.redact_patterns,
    )?);
    let stamp = clock::now().strftime("%Y%m%dT%H%M%SZ").to_string();
    let log = super::unused_path(
        &sh.repo.root().join(LOGS_DIR),
        &format!("{name}-{stamp}"),
        "log",
    );
    let _ = tx.send(Msg::Event(Box::new(Event::AgentStarted {
        dir: entry.dir.clone(),
        agent: cfg.agent.clone(),
        command: cmd.display(),
        log: log.clone(),
        at: clock::now(),
    })));
    let dir = entry.dir.clone();
    let red = redactor.clone();
    let run = session::run_agent(
        &cmd,
        &RunOptions {
            cwd: &wt.path,
            prompt: text,
            log_path: &log,
            redactor: redactor.clone(),
            timeout: cfg.session_timeout,
            grace: cfg.settings.kill_grace,
            result_grace: cfg.settings.result_grace,
            signals: sh.signals,
            agent_name: &cfg.agent,
            sandbox: wall.as_ref(),
            stall_timeout: cfg.settings.stall_timeout_of(&cfg.agent),
            disk_limit: Some(cfg.settings.sandbox.limits.disk),
        },
        &mut |p| {
            let _ = tx.send(Msg::Event(Box::new(Event::AgentProgress {
                dir: dir.clone(),
                action: p.action.map(|a| red.redact(&a)),
                turns: p.turns,
                cost_usd: p.cost_usd,
            })));
        },
    )?;
    w.log = Some(log.clone());
    let run = match run {
        Ok(r) => r,
        Err(session::Missing(why)) => return Ok(w.over(Outcome::AgentMissing, why)),
    };
    w.stats = run.stats.clone();
    w.log_tail = run.tail.clone();
    w.sandbox = Some(sandbox_name(wall.is_some()));
    w.egress_denied = run.egress_denied;
    w.egress_targets = run.egress_targets.clone();
    if let Some(why) = &run.transcript_error {
        tracing::warn!("{}: {why}", entry.dir);
    }
    let _ = tx.send(Msg::Event(Box::new(Event::AgentFinished {
        dir: entry.dir.clone(),
        ending: run.ending.describe(),
        duration: run.duration,
        stats: run.stats.clone(),
    })));
    let verdict = outcome::judge_agent(&run, cfg.session_timeout);
    if let AgentVerdict::Provider(c) = verdict {
        return Ok(w.provider(c));
    }
    let interrupted = sh.signals.and_then(Signals::last);
    let cancelled = matches!(verdict, AgentVerdict::Over(Outcome::Cancelled, _));
    if interrupted.is_none() && !cancelled {
        // A question asked ends the attempt whatever way the agent then ended.
        match crate::question::take(&wt.path) {
            Ok(Some(q)) => return Ok(w.asked(crate::question::fit(redactor.redact(&q)))),
            Ok(None) => {}
            Err(why) => {
                let why = format!("its question was not taken: {why}");
                return Ok(w.over(Outcome::Failed, why));
            }
        }
    }
    if let AgentVerdict::Over(o, why) = verdict {
        return Ok(w.over(o, why));
    }
    if let Some(sig) = interrupted {
        return Ok(w.over(Outcome::Cancelled, format!("interrupted by signal {sig}")));
    }
    let head = match worktree::hand_in(sh.repo, wt) {
        Ok(head) => head,
        Err(e) => return Ok(hand_in_problem(w, e)),
    };
    // The work must build on where the session started (the base, or a
    // revision's tip from the claim): a history that dropped commits (a
    // reviewer's, an earlier revision's) is never pushed over them.
    if !verify::descends(sh.repo, &wt.base, &head)? {
        return Ok(w.over(
            Outcome::Rejected,
            format!(
                "the work ({}) does not build on where the session started ({})",
                &head[..head.len().min(12)],
                &wt.base[..wt.base.len().min(12)]
            ),
        ));
    }
    let checked = Worktree {
        path: wt.path.clone(),
        branch: wt.branch.clone(),
        base: rules_base.to_owned(),
    };
    let ctx = VerifyCtx {
        agent_env: &cmd.env,
        log: &log,
        sandbox: wall.as_ref(),
    };
    verify_work(sh, entry, &checked, &head, &ctx, redactor, &run, w, tx)
}

/// Work that could not be taken from the agent's repository: rejected when
/// the agent broke the repository itself, failed otherwise.
fn hand_in_problem(w: WorkResult, e: Error) -> WorkResult {
    match e {
        Error::Invalid(why) => w.over(Outcome::Rejected, why),
        e => w.over(
            Outcome::Failed,
            format!("tgs could not take the agent's work: {e}"),
        ),
    }
}

/// What the verification of a session's work runs with.
struct VerifyCtx<'a> {
    /// The agent's environment (its secrets are left out for verify).
    agent_env: &'a [(String, String)],
    /// The session's transcript, which verify's output goes on.
    log: &'a Path,
    sandbox: Option<&'a crate::sandbox::Wall>,
}

#[allow(clippy::too_many_arguments)]
fn verify_work(
    sh: &Shared<'_>,
    entry: &Entry,
    wt: &Worktree,
    head: &str,
    ctx: &VerifyCtx<'_>,
    redactor: Arc<Redactor>,
    run: &session::AgentRun,
    mut w: WorkResult,
    tx: &Sender<Msg>,
) -> Result<WorkResult, Error> {
    // The verify command gets the agent's environment without its secrets.
    let verify_env: Vec<(String, String)> = ctx
        .agent_env
        .iter()
        .filter(|(k, _)| !crate::secrets::name_looks_secret(k))
        .cloned()
        .collect();
    let scanner =
        crate::secrets::Scanner::from_env(sh.env.iter().cloned(), &sh.cfg.settings.redact_env_keys);
    let verdict = verify::verify(
        sh.repo,
        wt,
        head,
        &entry.dir,
        &verify::BranchRules {
            guardrails: &sh.cfg.settings.guardrails,
            secrets: &scanner,
        },
        sh.cfg.settings.verify_command.as_deref(),
        sh.cfg.settings.verify_timeout,
        &verify_env,
        ctx.log,
        redactor,
        sh.signals,
        ctx.sandbox,
    )?;
    let _ = tx.send(Msg::Event(Box::new(Event::Verified {
        dir: entry.dir.clone(),
        ok: verdict.problems.is_empty(),
        problems: verdict.problems.clone(),
    })));
    if let Some(sig) = sh.signals.and_then(Signals::last) {
        return Ok(w.over(Outcome::Cancelled, format!("interrupted by signal {sig}")));
    }
    if verdict.changed.is_empty() {
        // An agent that changed nothing and whose output ends in a
        // provider's error (Gemini exits 0 on a 429) met the provider, not
        // the plan.
        let output = format!("{}\n{}", run.tail, run.stderr_tail);
        if let Some(c) = outcome::provider_of_output(&output) {
            return Ok(w.provider(c));
        }
    }
    if !verdict.problems.is_empty() {
        return Ok(w.over(Outcome::Rejected, verdict.problems.join("; ")));
    }
    w.outcome = Outcome::Success;
    w.branch = Some(wt.branch.clone());
    w.head = Some(verdict.head);
    Ok(w)
}

/// How the metrics name where an agent ran (see [`WorkResult::sandbox`]).
pub(crate) fn sandbox_name(contained: bool) -> &'static str {
    if contained {
        "bubblewrap"
    } else {
        "off"
    }
}
