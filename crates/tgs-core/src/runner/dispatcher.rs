//! The dispatcher of `tgs server run`: the one owner of claims, state,
//! forge, sinks and pauses.
//!
//! Its loop claims sessions one at a time (the claim step) into up to K
//! slots, each run by an executor on a scoped thread (the implement step,
//! `implement`), forwards the executors' events to the sinks, and gives
//! each session's artifact to the hand-over step (`accept`) when its
//! executor is done. Pending hand-overs are retried before new claims.
//! Signals are seen by every executor's supervision (a first one stops each
//! agent gracefully, a second kills every group at once); the dispatcher
//! stops claiming, records each session as released, and leaves.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Mutex;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::accept::Writer;
use super::artifact::ClaimTicket;
use super::attempt::{Job, Msg, Shared};
use super::handover;
use super::implement;
use super::record::{day, note_claim};
use super::wip;
use super::{after, signed, Mode, RunExit, Runner, SessionReport};
use crate::agent::driver::{AgentSpec, Invocation, SessionCommand};
use crate::backlog::store::Change;
use crate::backlog::target::{StateTarget, TargetOptions};
use crate::backlog::{lease_end, Backlog, Entry, Pause, Status};
use crate::events::{Event, Outcome, Sink};
use crate::process::Signals;
use crate::repo::Repo;
use crate::topology::Topology;
use crate::{clock, git, worktree, Error};

/// The shortest interval `--watch` looks for work at.
pub const WATCH_FLOOR: Duration = Duration::from_secs(10);

/// What `server run --dry-run` shows: the session a run would start now.
pub struct PlannedSession {
    pub entry: Entry,
    /// The agent's command, as its driver makes it.
    pub command: SessionCommand,
    /// With the sandbox on: the whole command line that runs it inside the
    /// sandbox, or why no sandbox can be made here.
    pub sandbox: Option<Result<String, String>>,
}

/// A session being run: its claim, and where its artifact goes.
struct Slot<'s> {
    job: Job,
    ticket: ClaimTicket,
    out: std::path::PathBuf,
    handle: std::thread::ScopedJoinHandle<'s, ()>,
}

/// What a claim attempt found.
enum Claimed {
    Job(Box<Job>),
    /// Nothing to claim now, and why (said when a named thought was asked for).
    Nothing(String),
}

/// Sessions counted for the run's summary.
#[derive(Default)]
struct Tally {
    sessions: u32,
    succeeded: u32,
    failed: u32,
    internal: u32,
}

impl Tally {
    fn add(&mut self, r: &SessionReport) {
        self.sessions += 1;
        self.succeeded += u32::from(r.outcome == Outcome::Success);
        self.failed += u32::from(r.final_failure);
        self.internal += u32::from(r.internal);
    }

    fn done(&self) -> RunExit {
        RunExit::Done {
            sessions: self.sessions,
            succeeded: self.succeeded,
            failed: self.failed,
            internal: self.internal,
        }
    }
}

/// The claims this run holds (dir → holder and claim id), for giving them
/// back when the run cannot finish its sessions: a panic of the
/// dispatcher, or a watchdog that ends a run deaf to a signal.
#[derive(Default)]
pub(super) struct Held(Mutex<BTreeMap<String, (String, Option<String>)>>);

impl Held {
    fn insert(&self, e: &Entry, worker: &str) {
        let holder = e.claimed_by.clone().unwrap_or_else(|| worker.to_owned());
        self.lock()
            .insert(e.dir.clone(), (holder, e.claim_id.clone()));
    }

    fn remove(&self, dir: &str) {
        self.lock().remove(dir);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (String, Option<String>)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How long past `kill_grace` a signalled run may take to record its
/// sessions before the watchdog gives the claims back and exits.
const WATCHDOG_MARGIN: Duration = Duration::from_secs(10);

/// What the watchdog needs: the runner itself stays on its thread (its
/// state holds handles that are not `Sync`), so the watchdog opens the
/// state anew if it must give the claims back.
struct Watchdog<'a> {
    repo: &'a Repo,
    topology: &'a Topology,
    worker: &'a str,
    /// `kill_grace` and [`WATCHDOG_MARGIN`].
    grace: Duration,
}

impl Watchdog<'_> {
    /// After a first signal, a run that has not ended within its grace (a
    /// thread stuck in a lock or a system call) is ended here: agents
    /// killed, claims given back, exit `128 + signal`.
    fn watch(&self, signals: &Signals, held: &Held, done: &AtomicBool) {
        let wait = |until: Option<std::time::Instant>| loop {
            if done.load(Ordering::SeqCst) {
                return false;
            }
            match until {
                None if signals.count() > 0 => return true,
                Some(t) if std::time::Instant::now() >= t => return true,
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        if !wait(None) || !wait(Some(std::time::Instant::now() + self.grace)) {
            return;
        }
        let sig = signals.last().unwrap_or(libc::SIGTERM);
        tracing::warn!(
            "the run did not end within its grace after signal {sig}: its claims are given back and tgs exits"
        );
        crate::process::kill_all_groups();
        let code = 128 + sig;
        std::thread::spawn(move || {
            std::thread::sleep(GIVE_BACK_LIMIT);
            std::process::exit(code);
        });
        let opts = TargetOptions {
            actor: Some(self.worker.to_owned()),
            ..Default::default()
        };
        match StateTarget::resolve(self.repo, self.topology, &opts) {
            Ok(state) => give_back(
                &state,
                held,
                &format!("cancelled: tgs was stopped by signal {sig}"),
            ),
            Err(e) => {
                tracing::warn!("could not give the claims back ({e}): their leases will expire")
            }
        }
        std::process::exit(code);
    }
}

/// Give back every claim in `held` still held, in one state change (the
/// attempts are not counted). A failure is logged: the leases then expire.
fn give_back(state: &StateTarget<'_>, held: &Held, why: &str) {
    let claims: Vec<_> = held.lock().clone().into_iter().collect();
    if claims.is_empty() {
        return;
    }
    let given = state.update(&Default::default(), |b| {
        let mut n = 0;
        for (dir, (holder, claim_id)) in &claims {
            if b.holds_claim(dir, holder, claim_id.as_deref()) {
                b.requeue(dir, Some(why), None, true)?;
                n += 1;
            }
        }
        let msg = (n > 0).then(|| format!("chore(tgs): give back {n} claim(s): {why}"));
        Ok(Change::maybe(n, msg))
    });
    match given {
        Ok(_) => held.lock().clear(),
        Err(e) => tracing::warn!("could not give the claims back ({e}): their leases will expire"),
    }
}

/// How long the watchdog's own giving back may take before tgs exits anyway
/// (the leases then expire as after a crash).
const GIVE_BACK_LIMIT: Duration = Duration::from_secs(20);

impl<'r> Runner<'r> {
    fn interrupted(&self) -> Option<i32> {
        self.signals.as_ref().and_then(|s| s.last())
    }

    pub(super) fn lease(&self) -> SignedDuration {
        let s = &self.cfg.settings;
        signed(self.cfg.session_timeout + s.verify_timeout + s.lease_margin)
    }

    /// The claim order the configuration asks for.
    pub(super) fn order(&self) -> crate::backlog::Order {
        crate::backlog::Order {
            revisions_first: self.cfg.settings.review.revisions_first,
        }
    }

    /// Sessions this run may start in all.
    fn budget(&self) -> u32 {
        if self.cfg.thought.is_some() {
            return 1;
        }
        match (self.cfg.max_sessions, self.cfg.mode) {
            (Some(n), _) => n,
            (None, Mode::Once) => self.cfg.parallel.max(1) as u32,
            (None, _) => u32::MAX,
        }
    }

    /// Run sessions as the mode says, up to `parallel` at once.
    ///
    /// Errors: what stops the whole run (the state cannot be read or
    /// written, the base cannot be fetched), and [`Error::Internal`] when a
    /// bug of the dispatcher's own panicked: its sessions are stopped and
    /// every claim is given back first. A panic inside a session ends only
    /// that session (see [`RunExit::Done`]'s `internal`).
    pub fn run(&self, sink: &mut dyn Sink) -> Result<RunExit, Error> {
        worktree::ensure_excluded(self.repo)?;
        let identity = git::committer_ident(self.repo.git());
        let stop = self.signals.clone().unwrap_or_default();
        let shared = Shared {
            repo: self.repo,
            cfg: &self.cfg,
            env: &self.env,
            signals: Some(&stop),
            identity: &identity,
        };
        let held = Held::default();
        let done = AtomicBool::new(false);
        let dispatched = std::thread::scope(|outer| {
            if self.signals.is_some() {
                let dog = Watchdog {
                    repo: self.repo,
                    topology: &self.topology,
                    worker: &self.cfg.worker_id,
                    grace: self.cfg.settings.kill_grace + WATCHDOG_MARGIN,
                };
                let (stop, held, done) = (&stop, &held, &done);
                outer.spawn(move || dog.watch(stop, held, done));
            }
            let dispatched = std::thread::scope(|scope| {
                let d = catch_unwind(AssertUnwindSafe(|| {
                    self.dispatch(scope, &shared, sink, &held)
                }));
                if d.is_err() {
                    // The sessions stop as for a signal; the scope waits for them.
                    stop.stop();
                }
                d
            });
            done.store(true, Ordering::SeqCst);
            dispatched
        });
        dispatched.unwrap_or_else(|panic| {
            let said = crate::selfcheck::panic_message(&*panic);
            give_back(&self.state, &held, &format!("internal error: {said}"));
            Err(Error::Internal(said))
        })
    }

    fn dispatch<'s>(
        &self,
        scope: &'s std::thread::Scope<'s, '_>,
        shared: &'s Shared<'s>,
        sink: &mut dyn Sink,
        held: &Held,
    ) -> Result<RunExit, Error> {
        let k = self.cfg.parallel.max(1);
        let budget = self.budget();
        let redactor = self.artifact_redactor()?;
        let (tx, rx) = mpsc::channel::<Msg>();
        let mut running: BTreeMap<String, Slot<'s>> = BTreeMap::new();
        let mut tally = Tally::default();
        let mut started = 0u32;
        let mut claiming = true;
        let mut idle_polls = 0u32;
        loop {
            let interrupted = self.interrupted();
            if interrupted.is_some() {
                claiming = false;
            }
            let mut nothing = None;
            if claiming && running.len() < k {
                self.retry_handovers(sink)?;
            }
            while claiming && running.len() < k && started < budget {
                match self.claim(sink)? {
                    Claimed::Job(job) => {
                        started += 1;
                        idle_polls = 0;
                        let slot = self.start(scope, shared, *job, tx.clone())?;
                        held.insert(&slot.job.entry, &self.cfg.worker_id);
                        running.insert(slot.job.entry.dir.clone(), slot);
                        crate::failpoint::hit("runner.dispatching");
                        if self.cfg.thought.is_some() {
                            claiming = false;
                        }
                    }
                    Claimed::Nothing(why) => {
                        nothing = Some(why);
                        break;
                    }
                }
            }
            if started >= budget {
                claiming = false;
            }
            if running.is_empty() {
                if let Some(sig) = interrupted {
                    return Ok(RunExit::Interrupted(sig));
                }
                if let (Some(why), Some(_), 0) = (&nothing, &self.cfg.thought, started) {
                    return Ok(RunExit::NotClaimable(why.clone()));
                }
                if !claiming {
                    return Ok(tally.done());
                }
                match self.cfg.mode {
                    Mode::Once => return Ok(tally.done()),
                    Mode::UntilEmpty => match self.next_retry()? {
                        // A pinned clock (TGS_NOW) never reaches a retry delay.
                        Some(_) if clock::is_pinned() => return Ok(tally.done()),
                        Some(until) => {
                            sink.event(&Event::Waiting { until });
                            if !self.sleep_until(until) {
                                continue;
                            }
                        }
                        None => return Ok(tally.done()),
                    },
                    Mode::Watch(every) => {
                        let wait = idle_wait(every, idle_polls);
                        idle_polls = idle_polls.saturating_add(1);
                        let until = after(clock::now(), wait).unwrap_or_else(clock::now);
                        self.sleep_until(until);
                    }
                }
                continue;
            }
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(Msg::Event(e)) => sink.event(&e),
                Ok(Msg::Done(dir)) => {
                    let Some(slot) = running.remove(&dir) else {
                        continue;
                    };
                    let _ = slot.handle.join();
                    crate::failpoint::hit("runner.implemented");
                    let report = self.accept(
                        &slot.job.entry,
                        &slot.ticket,
                        &slot.out,
                        Writer::ThisRun {
                            base: slot.job.base.clone(),
                        },
                        &redactor,
                        sink,
                    );
                    let _ = std::fs::remove_dir_all(&slot.out);
                    let report = report?;
                    held.remove(&dir);
                    if report.outcome == Outcome::Cancelled {
                        claiming = false;
                    }
                    tally.add(&report);
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
            }
        }
    }

    /// Start the implement step of `job` on an executor thread of `scope`,
    /// its artifact going to a folder of its claim's.
    ///
    /// Errors: the thought's directory names no thought (never for a
    /// claimed entry).
    fn start<'s>(
        &self,
        scope: &'s std::thread::Scope<'s, '_>,
        shared: &'s Shared<'s>,
        job: Job,
        tx: mpsc::Sender<Msg>,
    ) -> Result<Slot<'s>, Error> {
        let ticket = ClaimTicket::of(&job.entry, job.tip.clone());
        let name = super::name_of(&job.entry.dir)?;
        let lease = self.lease().unsigned_abs();
        let out = implement::local_dir(self.repo, &name, &ticket.claim_id, lease);
        let handle = {
            let (job, ticket, out) = (job.clone(), ticket.clone(), out.clone());
            scope.spawn(move || {
                let wrote = catch_unwind(AssertUnwindSafe(|| {
                    implement::implement(shared, &ticket, &job, &out, &tx)
                }));
                match wrote {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!("{}: {e}", job.entry.dir),
                    Err(_) => tracing::warn!("{}: the implement step panicked", job.entry.dir),
                }
                let _ = tx.send(Msg::Done(job.entry.dir.clone()));
            })
        };
        Ok(Slot {
            job,
            ticket,
            out,
            handle,
        })
    }

    /// The earliest retry delay among queued entries this worker may still take.
    fn next_retry(&self) -> Result<Option<Timestamp>, Error> {
        let b = self.state.read()?;
        Ok(b.thoughts
            .iter()
            .filter(|e| matches!(e.status, Status::Queued | Status::HandoverPending))
            .filter_map(|e| e.not_before)
            .min())
    }

    /// Sleep until `until` (by the real clock), waking for signals. False if interrupted.
    fn sleep_until(&self, until: Timestamp) -> bool {
        loop {
            if self.interrupted().is_some() {
                return false;
            }
            let left = until.duration_since(clock::now());
            if left <= SignedDuration::ZERO {
                return true;
            }
            let step = left.min(SignedDuration::from_millis(200));
            std::thread::sleep(step.try_into().unwrap_or(Duration::from_millis(200)));
            if clock::is_pinned() {
                // A pinned clock never moves: do not wait for it.
                return true;
            }
        }
    }

    /// What `--dry-run` shows: the entry that would be claimed and the agent
    /// command, or why nothing would be.
    pub fn plan(&self) -> Result<Result<PlannedSession, String>, Error> {
        let mut b = self.state.read()?;
        let now = clock::now();
        b.recover_expired(now);
        if let Some(why) = self.why_not(&b, now) {
            return Ok(Err(why));
        }
        let Some(claim) = b.claim(
            self.cfg.thought.as_deref(),
            &self.cfg.worker_id,
            now,
            self.lease(),
        )?
        else {
            return Ok(Err("nothing in the backlog can be claimed now".into()));
        };
        let name = super::name_of(&claim.entry.dir)?;
        let wt = self
            .repo
            .root()
            .join(worktree::WORKTREES_DIR)
            .join(name.as_str());
        let files = super::SessionFiles::of(self.repo, &name);
        let spec = AgentSpec::resolve(&self.cfg.agent, &self.cfg.settings)?;
        let inv = Invocation {
            worktree: &wt,
            prompt_file: &files.prompt,
            context_list: &files.context,
            context_files: &[],
            thought_dir: &claim.entry.dir,
            branch: &worktree::branch_for(&name),
            attempt: claim.entry.attempts,
            timeout_secs: self.cfg.session_timeout.as_secs(),
            identity: None,
        };
        // Its environment as a session's would be (only its words are
        // shown): with the sandbox on, the model gateway's stand-ins, which
        // a CLI that does not read them is pointed at (Codex).
        let mut cmd = spec.command(&self.env, &inv, "<the implementation prompt>");
        if self.cfg.settings.sandbox.on {
            cmd.env = crate::sandbox::gateway::plan(&cmd.env).1;
        }
        spec.fit_endpoint(&mut cmd);
        let sandbox = self.cfg.settings.sandbox.on.then(|| {
            crate::sandbox::Wall::for_session(
                self.repo,
                &self.cfg.settings.sandbox,
                &spec.driver,
                &cmd,
                &wt,
                &files.dir,
            )
            .map(|wall| {
                let args: Vec<std::ffi::OsString> = cmd.args.iter().map(Into::into).collect();
                let socket = Path::new("<the session's proxy socket>");
                let (program, args) = wall.wrap(socket, cmd.program.as_ref(), &args);
                let words: Vec<String> = std::iter::once(program)
                    .chain(args)
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect();
                shlex::try_join(words.iter().map(String::as_str))
                    .unwrap_or_else(|_| words.join(" "))
            })
            .map_err(|e| match e {
                Error::Setup { message, hint } => {
                    format!(
                        "{message}{}",
                        hint.map(|h| format!(" (hint: {h})")).unwrap_or_default()
                    )
                }
                e => e.to_string(),
            })
        });
        Ok(Ok(PlannedSession {
            entry: claim.entry,
            command: cmd,
            sandbox,
        }))
    }

    /// Why nothing can be claimed for this run, when that is not the queue's
    /// being empty: the agent is paused, or the named thought is not claimable.
    pub(super) fn why_not(&self, b: &Backlog, now: Timestamp) -> Option<String> {
        if let Some(p) = b.paused(&self.cfg.agent, now) {
            return Some(describe_pause(&self.cfg.agent, p));
        }
        if let Some(why) = self.over_limits(b, now) {
            return Some(why);
        }
        let dir = self.cfg.thought.as_deref()?;
        let e = b.get(dir)?;
        if b.is_claimable(e, now) {
            return None;
        }
        Some(why_not_claimable(b, e, now))
    }

    /// A limit that stops new sessions now: a daily budget spent, or the
    /// agent's sessions at once (`max_concurrent`, counted over every worker).
    fn over_limits(&self, b: &Backlog, now: Timestamp) -> Option<String> {
        let budgets = &self.cfg.settings.budgets;
        let today = day(now);
        if let Some(u) = b.usage.as_ref().filter(|u| u.day == today) {
            if let Some(max) = budgets.daily_sessions.filter(|m| u.sessions >= *m) {
                return Some(format!(
                    "the daily budget of {max} session(s) is spent ({} today); it renews at 00:00 UTC",
                    u.sessions
                ));
            }
            if let Some(max) = budgets.daily_cost_usd.filter(|m| u.cost_usd >= *m) {
                return Some(format!(
                    "the daily budget of ${max:.2} is spent (${:.2} today); it renews at 00:00 UTC",
                    u.cost_usd
                ));
            }
        }
        let agent = &self.cfg.agent;
        let max = self
            .cfg
            .settings
            .agents
            .get(agent)
            .and_then(|a| a.max_concurrent)?;
        let running = b
            .thoughts
            .iter()
            .filter(|e| {
                e.status == Status::InProgress
                    && e.agent.as_deref() == Some(agent)
                    && !crate::backlog::lease_expired(e, now)
            })
            .count() as u32;
        (running >= max).then(|| {
            format!("the agent {agent} runs {running} session(s), its most at once (max_concurrent {max})")
        })
    }

    /// Claim the next session (one state change) and fetch the base it starts from.
    fn claim(&self, sink: &mut dyn Sink) -> Result<Claimed, Error> {
        let worker = self.cfg.worker_id.clone();
        let only = self.cfg.thought.clone();
        let lease = self.lease();
        let now = clock::now();
        let applied = self.state.update(&Default::default(), |b| {
            let recovered = b.recover_expired(now);
            let why = self.why_not(b, now);
            let claim = match why {
                Some(_) => None,
                None => b.claim_in(self.order(), only.as_deref(), &worker, now, lease)?,
            };
            if let Some(c) = &claim {
                note_claim(b, &c.entry.dir, &self.cfg.agent, now);
            }
            let msg = match (&claim, recovered.len()) {
                (Some(c), 0) => Some(format!("chore(tgs): claim {} for {worker}", c.entry.dir)),
                (Some(c), n) => Some(format!(
                    "chore(tgs): claim {} for {worker}; requeue {n} expired",
                    c.entry.dir
                )),
                (None, 0) => None,
                (None, n) => Some(format!("chore(tgs): requeue {n} expired claims")),
            };
            Ok(Change::maybe((claim, recovered, why), msg))
        })?;
        let (claim, recovered, why) = applied.value;
        if !recovered.is_empty() {
            sink.event(&Event::Recovered {
                dirs: recovered,
                at: now,
            });
        }
        let Some(claim) = claim else {
            sink.event(&Event::NoWork {
                at: now,
                reason: why.clone(),
            });
            let why = why.unwrap_or_else(|| "nothing in the backlog can be claimed now".into());
            return Ok(Claimed::Nothing(why));
        };
        let entry = claim.entry;
        sink.event(&Event::Claimed {
            dir: entry.dir.clone(),
            title: entry.title.clone(),
            worker,
            attempt: entry.attempts,
            lease_expires_at: entry.lease_expires_at,
            at: now,
            commit: applied.commit,
            answers: entry.revision().map(crate::review::describe_revision),
        });
        let tip = self.topology.fetch_base(self.repo)?;
        let base = tip.commit.ok_or_else(|| Error::Setup {
            message: format!("{} has no commits yet", tip.label),
            hint: Some(format!("push {} first", tip.branch)),
        })?;
        // A revision starts from its pull request's branch as the remote has it.
        let pr_tip = match (entry.revision(), self.cfg.remote.as_deref()) {
            (Some(_), Some(remote)) => entry
                .branch
                .clone()
                .or_else(|| super::branch_of(&entry.dir))
                .and_then(|b| handover::fetch_branch(self.repo, remote, &b)),
            _ => None,
        };
        // Work in progress kept by an earlier attempt (on this machine or
        // another) is fetched beside the state: the session starts from it.
        if let (Some(_), Some(remote)) = (&entry.wip, self.cfg.remote.as_deref()) {
            wip::fetch(self.repo, remote, &super::name_of(&entry.dir)?);
        }
        Ok(Claimed::Job(Box::new(Job {
            entry,
            base_label: tip.label,
            base,
            tip: pr_tip,
        })))
    }

    /// Retry the hand-overs that are due: open the pull request of work that
    /// was pushed earlier, with no agent session.
    fn retry_handovers(&self, sink: &mut dyn Sink) -> Result<(), Error> {
        let Some(remote) = self.cfg.remote.as_deref().filter(|_| self.cfg.push) else {
            return Ok(());
        };
        let Some(forge) = self.forge.as_deref().filter(|_| self.cfg.open_pr) else {
            return Ok(());
        };
        handover::Pending {
            repo: self.repo,
            state: &self.state,
            forge,
            remote,
            pr: &self.cfg.settings.pr,
            base_branch: &self.cfg.base_branch,
            agent: &self.cfg.agent,
            redact_env_keys: &self.cfg.settings.redact_env_keys,
        }
        .retry_due(sink, &|| self.interrupted().is_some())?;
        Ok(())
    }
}

/// How long `--watch` waits after the `idle`-th poll in a row that found
/// nothing: the interval (at least [`WATCH_FLOOR`]), doubling while idle up
/// to eight times it.
pub fn idle_wait(every: Duration, idle: u32) -> Duration {
    let every = every.max(WATCH_FLOOR);
    every.saturating_mul(1u32 << idle.min(3))
}

/// Why `e` cannot be claimed now, as the backlog commands would say it.
pub fn why_not_claimable(b: &Backlog, e: &Entry, now: Timestamp) -> String {
    let dir = &e.dir;
    match e.status {
        Status::Completed => format!(
            "{dir} is completed{}",
            e.pr_url.as_deref().map(|u| format!(" ({u})")).unwrap_or_default()
        ),
        Status::Failed => format!(
            "{dir} failed for good{}; `tgs server backlog retry {dir}` queues it again",
            e.last_error.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
        ),
        Status::NeedsInput => format!(
            "{dir} waits for an answer to its agent's question{}; `tgs server backlog answer {dir} --text ...` answers it",
            e.waiting_question().map(|q| format!(" ({})", crate::backlog::first_line(&q.text))).unwrap_or_default()
        ),
        Status::HandoverPending => format!(
            "{dir} is done and pushed; only its hand-over is pending (retried by `tgs server run` and `sync-prs`)"
        ),
        Status::InProgress => format!(
            "{dir} is in progress by {}{}",
            e.claimed_by.as_deref().unwrap_or("another worker"),
            lease_end(e).map(|t| format!(" (lease until {t})")).unwrap_or_default()
        ),
        Status::Queued => {
            if let Some(t) = e.not_before.filter(|t| *t > now) {
                return format!("{dir} waits for its retry delay until {t}");
            }
            let blocked = b.waits_for(e);
            if blocked.is_empty() {
                format!("{dir} cannot be claimed now")
            } else {
                format!("{dir} waits for {}", blocked.join(", "))
            }
        }
    }
}

/// `the agent claude-code is paused until T: rate_limited: ...`.
pub fn describe_pause(agent: &str, p: &Pause) -> String {
    match p.until {
        Some(t) => format!("the agent {agent} is paused until {t} ({}: {})", p.kind, p.reason),
        None => format!(
            "the agent {agent} is paused until a human resumes it with `tgs server resume {agent}` ({}: {})",
            p.kind, p.reason
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watching_has_a_floor_and_backs_off_while_idle() {
        assert_eq!(idle_wait(Duration::ZERO, 0), WATCH_FLOOR);
        assert_eq!(
            idle_wait(Duration::from_secs(60), 0),
            Duration::from_secs(60)
        );
        assert_eq!(
            idle_wait(Duration::from_secs(60), 1),
            Duration::from_secs(120)
        );
        assert_eq!(
            idle_wait(Duration::from_secs(60), 9),
            Duration::from_secs(480)
        );
    }

    #[test]
    fn reasons_a_thought_cannot_be_claimed() {
        let now: Timestamp = "2026-01-15T12:00:00Z".parse().unwrap();
        let mut b = Backlog::default();
        b.add("tgs/thoughts/a-x", "A", 0, now);
        b.add("tgs/thoughts/b-y", "B", 0, now);
        b.thoughts[1].depends_on = vec!["tgs/thoughts/a-x".into()];
        let e = b.thoughts[1].clone();
        assert_eq!(
            why_not_claimable(&b, &e, now),
            "tgs/thoughts/b-y waits for tgs/thoughts/a-x"
        );
        b.thoughts[0].status = Status::Failed;
        let e = b.thoughts[0].clone();
        assert!(why_not_claimable(&b, &e, now).contains("backlog retry"));
        b.thoughts[0].status = Status::Queued;
        b.thoughts[0].not_before = Some("2026-01-15T13:00:00Z".parse().unwrap());
        let e = b.thoughts[0].clone();
        assert!(why_not_claimable(&b, &e, now).contains("retry delay until 2026-01-15T13:00:00Z"));
    }
}
