//! The dispatcher: the one owner of claims, state, forge, sinks and pauses.
//!
//! Its loop fills up to K slots with claimed sessions, each run by an
//! executor on a scoped thread, forwards the executors' events to the sinks,
//! and finishes each session when its executor is done: hand-over, then one
//! state change that records the outcome, its metrics row and its kept
//! transcript. Pending hand-overs are retried before new claims. Signals are
//! seen by every executor's supervision (a first one stops each agent
//! gracefully, a second kills every group at once); the dispatcher stops
//! claiming, records each session as released, and leaves.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::accept::Writer;
use super::artifact::ClaimTicket;
use super::attempt::{Job, Msg, Shared, WipChange, WorkResult};
use super::handover::{self, Handover, PrFacts};
use super::implement;
use super::{after, signed, Mode, RunConfig, RunExit, SessionReport};
use super::{outcome, wip};
use crate::agent::driver::{AgentSpec, Invocation, SessionCommand};
use crate::backlog::store::Record;
use crate::backlog::store::{Append, Change};
use crate::backlog::target::{StateTarget, TargetOptions};
use crate::backlog::{lease_end, Backlog, Entry, Pause, Status};
use crate::events::{Disposition, Event, Outcome, Sink};
use crate::forge::{Failure, Forge};
use crate::process::Signals;
use crate::records::{MetricsRow, METRICS_HEADER};
use crate::repo::Repo;
use crate::topology::Topology;
use crate::{clock, git, worktree, Error};

/// The shortest interval `--watch` looks for work at.
pub const WATCH_FLOOR: Duration = Duration::from_secs(10);

/// The audit line of the connections a session's sandbox refused.
fn egress_audit(worker: &str, at: Timestamp, dir: &str, w: &WorkResult) -> Append {
    let more = w.egress_denied as usize > w.egress_targets.len();
    let rec = crate::records::AuditRecord {
        time: at,
        worker: worker.to_owned(),
        action: "egress_denied".into(),
        thought: Some(dir.to_owned()),
        from: None,
        to: None,
        attempt: None,
        reason: Some(format!(
            "{} connection(s) refused by the sandbox: {}{}",
            w.egress_denied,
            w.egress_targets.join(", "),
            if more { ", ..." } else { "" }
        )),
        commit: None,
    };
    Append {
        kind: Record::Audit,
        header: None,
        line: serde_json::to_string(&rec).expect("an audit record serializes"),
    }
}

/// The audit line of a session that kept its agent's work in progress.
fn wip_audit(worker: &str, at: Timestamp, dir: &str, kept: &crate::backlog::Wip) -> Append {
    let reference = super::name_of(dir).map_or_else(|_| dir.to_owned(), |n| wip::wip_ref(&n));
    let rec = crate::records::AuditRecord {
        time: at,
        worker: worker.to_owned(),
        action: "wip_kept".into(),
        thought: Some(dir.to_owned()),
        from: None,
        to: None,
        attempt: Some(kept.attempt),
        reason: Some(format!(
            "{} file(s), {} line(s) kept on {reference}",
            kept.files, kept.lines
        )),
        commit: Some(kept.head.clone()),
    };
    Append {
        kind: Record::Audit,
        header: None,
        line: serde_json::to_string(&rec).expect("an audit record serializes"),
    }
}

/// What `server run --dry-run` shows: the session a run would start now.
pub struct PlannedSession {
    pub entry: Entry,
    /// The agent's command, as its driver makes it.
    pub command: SessionCommand,
    /// With the sandbox on: the whole command line that runs it inside the
    /// sandbox, or why no sandbox can be made here.
    pub sandbox: Option<Result<String, String>>,
}

pub struct Runner<'r> {
    pub repo: &'r Repo,
    pub cfg: RunConfig,
    pub state: StateTarget<'r>,
    pub forge: Option<Box<dyn Forge + 'r>>,
    pub signals: Option<Arc<Signals>>,
    /// The environment agents' environments are picked from.
    pub env: Vec<(String, String)>,
    /// The remote and branches (the base is read from the remote, fetched).
    pub topology: Topology,
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

/// Delete the local work branch a session made in the user's clone, once
/// its work is handed over (pushed and recorded): only while it is still at
/// the head handed over, so a branch someone moved meanwhile is kept.
fn forget_local_branch(repo: &Repo, branch: &str, head: &str) {
    let r = format!("refs/heads/{branch}");
    if let Err(e) = repo.git().cmd(["update-ref", "-d", &r, head]).run() {
        tracing::debug!("kept {branch}: {e}");
    }
}

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
                        Writer::ThisRun,
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

    /// Start the implement step of `job` on an executor thread of `scope`.
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
        let out = implement::local_dir(self.repo, &super::name_of(&job.entry.dir)?);
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
        let cmd = spec.command(&[], &inv, "<the implementation prompt>");
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

    /// Hand a finished session's work over, record it, tell humans.
    pub(super) fn finish(
        &self,
        job: &Job,
        started: Timestamp,
        mut w: WorkResult,
        sink: &mut dyn Sink,
    ) -> Result<SessionReport, Error> {
        let entry = &job.entry;
        let mut pending = None;
        let mut pr_url = None;
        if w.outcome == Outcome::Success {
            let handed = catch_unwind(AssertUnwindSafe(|| {
                crate::failpoint::hit("runner.handing-over");
                match entry.revision() {
                    Some(_) => self.hand_over_revision(job, &w, sink),
                    None => self.hand_over(entry, &w, sink),
                }
            }));
            let handed = match handed {
                Ok(h) => h,
                Err(panic) => {
                    w = w.internal_error(&*panic);
                    return self.record(entry, started, w, None, None, sink);
                }
            };
            match handed {
                Handover::Done { pr_url: url } => pr_url = url,
                Handover::PushFailed(why) => {
                    w.outcome = Outcome::Failed;
                    w.reason = Some(why);
                }
                Handover::Moved(why) => {
                    w.outcome = Outcome::Failed;
                    w.reason = Some(why);
                    w.refund = true;
                }
                Handover::Rejected(why) => {
                    w.outcome = Outcome::Rejected;
                    w.reason = Some(why);
                }
                Handover::Refused(why) => {
                    w.outcome = Outcome::Rejected;
                    w.reason = Some(why);
                    w.final_failure = true;
                }
                Handover::Pending(why) => pending = Some(why),
            }
        }
        let handed = (w.outcome == Outcome::Success)
            .then(|| w.branch.clone().zip(w.head.clone()))
            .flatten();
        self.push_wip(entry, &mut w, sink);
        self.post_question(entry, &mut w);
        let dropped = w.wip == WipChange::Drop && entry.wip.is_some();
        let report = self.record(entry, started, w, pr_url, pending, sink)?;
        if let Some((branch, head)) = handed {
            forget_local_branch(self.repo, &branch, &head);
        }
        if dropped {
            self.drop_wip(&entry.dir);
        }
        Ok(report)
    }

    /// Push a session's new work in progress beside the state; one that
    /// cannot be pushed is not recorded (the next attempt could not fetch
    /// it), and the session's reason says so.
    fn push_wip(&self, entry: &Entry, w: &mut WorkResult, sink: &mut dyn Sink) {
        if w.outcome == Outcome::Success {
            w.wip = WipChange::Drop;
        }
        // What the state keeps of the agent's words holds no credential:
        // the transcript's redaction knows named values, not a token the
        // agent printed.
        let scanner = crate::secrets::Scanner::from_env(
            self.env.iter().cloned(),
            &self.cfg.settings.redact_env_keys,
        );
        w.reason = w.reason.as_deref().map(|r| scanner.mask(r));
        w.question = w.question.as_deref().map(|q| scanner.mask(q));
        if let WipChange::Set(kept) = &mut w.wip {
            kept.ended = scanner.mask(&kept.ended);
            kept.last_seen = scanner.mask(&kept.last_seen);
        }
        let WipChange::Set(kept) = &w.wip else {
            return;
        };
        let Ok(name) = super::name_of(&entry.dir) else {
            return;
        };
        let kept_event = Event::WipKept {
            dir: entry.dir.clone(),
            attempt: kept.attempt,
            reference: wip::wip_ref(&name),
            files: kept.files,
            lines: kept.lines,
        };
        let Some(remote) = self.cfg.remote.as_deref().filter(|_| self.cfg.push) else {
            sink.event(&kept_event);
            return;
        };
        if let Err(why) = wip::push(self.repo, remote, &name, &kept.head) {
            tracing::warn!("{}: {why}", entry.dir);
            w.add_note(format!("its work in progress was not kept: {why}"));
            w.wip = WipChange::Keep;
            return;
        }
        sink.event(&kept_event);
    }

    /// Ask humans the agent's question where they will see it (when it is
    /// within `server.questions.max_per_thought`; one beyond fails the
    /// thought instead). A question that cannot be posted still waits: it
    /// is in `status` and can be answered from the command line.
    fn post_question(&self, entry: &Entry, w: &mut WorkResult) {
        let Some(q) = w.question.as_deref() else {
            return;
        };
        let max = self.cfg.settings.questions.max_per_thought;
        if entry.questions.len() >= max as usize {
            return;
        }
        let Some(forge) = self.forge.as_deref().filter(|_| self.cfg.open_pr) else {
            return;
        };
        let post = crate::forge::QuestionPost {
            thought_dir: entry.dir.clone(),
            title: entry.title.clone(),
            question: q.to_owned(),
            number: entry.questions.len() + 1,
            max,
            pr_url: entry.revision().and(entry.pr_url.clone()),
            trigger: self.cfg.settings.review.trigger.clone(),
        };
        if let Some(why) =
            crate::secrets::refuse_pull_request(&self.cfg.settings.redact_env_keys, "", q)
        {
            tracing::warn!("{}: the question was not posted: {why}", entry.dir);
            return;
        }
        match forge.ask_humans(&post) {
            Ok(posted) => w.question_posted = posted,
            Err(e) => tracing::warn!(
                "{}: could not ask the question on {}: {e}",
                entry.dir,
                forge.name()
            ),
        }
    }

    /// Remove a thought's work in progress that its entry no longer holds
    /// (best effort: a ref left behind is overwritten by the next one).
    fn drop_wip(&self, dir: &str) {
        let Ok(name) = super::name_of(dir) else {
            return;
        };
        let remote = self.cfg.remote.as_deref().filter(|_| self.cfg.push);
        wip::delete(self.repo, remote, &name);
    }

    /// Push the verified branch, then open its pull request.
    fn hand_over(&self, entry: &Entry, w: &WorkResult, sink: &mut dyn Sink) -> Handover {
        let (Some(branch), Some(head)) = (&w.branch, &w.head) else {
            return Handover::Done { pr_url: None };
        };
        let Some(remote) = self.cfg.remote.as_deref().filter(|_| self.cfg.push) else {
            return Handover::Done { pr_url: None };
        };
        let forge = self.forge.as_deref().filter(|_| self.cfg.open_pr);
        if let Err(refused) =
            handover::guard(self.repo, remote, branch, entry.head.as_deref(), forge)
        {
            return refused;
        }
        if let Err(why) = handover::push(self.repo, remote, branch, head) {
            return Handover::PushFailed(why);
        }
        crate::failpoint::hit("runner.branch-pushed");
        sink.event(&Event::BranchPushed {
            dir: entry.dir.clone(),
            branch: branch.clone(),
        });
        let Some(forge) = self.forge.as_deref().filter(|_| self.cfg.open_pr) else {
            return Handover::Done { pr_url: None };
        };
        let got = handover::open_pr(self.repo, forge, entry, branch, head, &self.pr_facts(w));
        if let Handover::Done { pr_url: Some(url) } = &got {
            sink.event(&Event::PrOpened {
                dir: entry.dir.clone(),
                url: url.clone(),
            });
        }
        got
    }

    /// Push a revision onto its pull request's branch (forward only: a
    /// branch that moved meanwhile refuses it) and answer on the PR.
    fn hand_over_revision(&self, job: &Job, w: &WorkResult, sink: &mut dyn Sink) -> Handover {
        let entry = &job.entry;
        let (Some(branch), Some(head)) = (&w.branch, &w.head) else {
            return Handover::Done { pr_url: None };
        };
        let Some(remote) = self.cfg.remote.as_deref().filter(|_| self.cfg.push) else {
            return Handover::Done { pr_url: None };
        };
        let tip = job.tip.as_deref().unwrap_or(head);
        match handover::push_forward(self.repo, remote, branch, tip, head) {
            Ok(()) => {}
            // Not the revision's fault: it runs again on what the branch is now
            // (or is cancelled by the next sync if the PR is gone).
            Err(handover::ForwardError::Moved(why)) => return Handover::Moved(why),
            Err(handover::ForwardError::Failed(why)) => return Handover::PushFailed(why),
        }
        sink.event(&Event::BranchPushed {
            dir: entry.dir.clone(),
            branch: branch.clone(),
        });
        let (Some(forge), Some(pr_url), Some(rev)) = (
            self.forge.as_deref().filter(|_| self.cfg.open_pr),
            entry.pr_url.as_deref(),
            entry.revision(),
        ) else {
            return Handover::Done { pr_url: None };
        };
        let reply = handover::revision_reply(
            self.repo,
            entry,
            rev,
            tip,
            head,
            self.cfg.settings.review.max_revisions,
        );
        if let Some(why) =
            crate::secrets::refuse_pull_request(&self.cfg.settings.redact_env_keys, "", &reply)
        {
            tracing::warn!("{}: the reply was not posted: {why}", entry.dir);
        } else if let Err(e) = forge.reply_on_pr(pr_url, &reply) {
            tracing::warn!("{}: could not answer on {pr_url}: {e}", entry.dir);
        }
        Handover::Done { pr_url: None }
    }

    fn pr_facts<'a>(&'a self, w: &WorkResult) -> PrFacts<'a> {
        let pr = &self.cfg.settings.pr;
        PrFacts {
            base_branch: &self.cfg.base_branch,
            agent: &self.cfg.agent,
            turns: w.stats.turns,
            cost_usd: w.stats.cost_usd,
            title_prefix: &pr.title_prefix,
            draft: pr.draft,
            labels: &pr.labels,
            reviewers: &pr.reviewers,
            redact_env_keys: &self.cfg.settings.redact_env_keys,
        }
    }

    /// Record the session's end in the state (one change: the entry, the
    /// metrics row, the kept transcript, a pause), then tell humans and sinks.
    fn record(
        &self,
        entry: &Entry,
        started: Timestamp,
        w: WorkResult,
        pr_url: Option<String>,
        pending: Option<String>,
        sink: &mut dyn Sink,
    ) -> Result<SessionReport, Error> {
        let ended = clock::now();
        // The claim's holder: this worker, or (for a hand-over artifact) the
        // worker that claimed it in another job.
        let worker = entry
            .claimed_by
            .clone()
            .unwrap_or_else(|| self.cfg.worker_id.clone());
        let dir = entry.dir.clone();
        let settings = &self.cfg.settings;
        let delay = outcome::retry_delay(
            settings.retry_delay,
            settings.retry_delay_max,
            entry.attempts,
        );
        let not_before = after(ended, delay);
        let reason_line = w
            .reason
            .as_deref()
            .map(|r| format!("{}: {r}", w.outcome.as_str()));
        let kept = self.kept_transcript(&w, started);
        let agent = self.cfg.agent.clone();
        let row = MetricsRow {
            thought: dir.clone(),
            worker: worker.clone(),
            agent: w.stats.agent.clone(),
            started,
            ended,
            duration_s: ended.duration_since(started).as_secs_f64().max(0.0),
            outcome: w.outcome.as_str().to_owned(),
            attempt: entry.attempts,
            exit_code: w.stats.exit_code,
            turns: w.stats.turns,
            cost_usd: w.stats.cost_usd,
            input_tokens: w.stats.input_tokens,
            output_tokens: w.stats.output_tokens,
            pr_url: pr_url.clone(),
            revision: entry.revision().map(|r| r.kind.as_str().to_owned()),
            sandbox: w.sandbox.map(str::to_owned),
        };
        let max = settings.max_attempts;
        let applied = self.state.update(&Default::default(), |b| {
            // Only the claim's holder may record: a lease taken over by
            // another session (of this worker or another) makes this stale.
            if !b.holds_claim(&dir, &worker, entry.claim_id.as_deref()) {
                return Ok(Change::none((Disposition::TakenOver, None, None, None)));
            }
            // Before settling: a revision that ends there takes its work in
            // progress with it.
            note_wip(b, &dir, &w.wip);
            let (disposition, when, msg) = settle(
                b,
                entry,
                &w,
                pr_url.as_deref(),
                pending.as_deref(),
                reason_line.as_deref(),
                (ended, not_before, max, settings.questions.max_per_thought),
                &agent,
                settings.budgets.thought_cost_usd,
            )?;
            let pause = w
                .provider
                .as_ref()
                .and_then(|_| b.pauses.get(&agent).cloned());
            // What the entry now says went wrong (a budget, say), for the alert.
            let said = b.get(&dir).and_then(|e| e.last_error.clone());
            let mut change = Change::with((disposition, when, pause, said), msg).append(Append {
                kind: Record::Metrics,
                header: Some(METRICS_HEADER),
                line: row.to_csv(),
            });
            if w.egress_denied > 0 {
                change = change.append(egress_audit(&worker, ended, &dir, &w));
            }
            let still_kept = b.get(&dir).is_some_and(|e| e.wip.is_some());
            if let (WipChange::Set(kept), true) = (&w.wip, still_kept) {
                change = change.append(wip_audit(&worker, ended, &dir, kept));
            }
            Ok(match &kept {
                Some((path, gz)) => change.put(path.clone(), gz.clone()),
                None => change,
            })
        })?;
        let (disposition, when, pause, said) = applied.value;
        if disposition == Disposition::TakenOver {
            tracing::warn!(
                "{dir} was taken over by another session; this session's result is not recorded"
            );
        }
        if let (Some(c), Some(p)) = (&w.provider, &pause) {
            sink.event(&Event::AgentPaused {
                agent: agent.clone(),
                kind: p.kind.clone(),
                until: p.until,
                reason: p.reason.clone(),
            });
            // One alert, when the pause begins, not one per refused session.
            if c.kind.until_resumed() && p.strikes == 0 {
                self.alert_unavailable(&agent, p);
            }
        }
        let final_failure = disposition == Disposition::Failed;
        self.alert(
            &dir,
            entry,
            &w,
            final_failure,
            said.as_deref().or(reason_line.as_deref()),
            pr_url.as_deref(),
            disposition,
        );
        sink.event(&Event::SessionEnded {
            dir: dir.clone(),
            worker,
            attempt: entry.attempts,
            outcome: w.outcome,
            reason: w.reason.clone(),
            started,
            ended,
            stats: w.stats.clone(),
            pr_url: pr_url.clone(),
            disposition,
            not_before: when,
            commit: applied.commit,
        });
        if w.internal {
            self.alert_internal(&dir, w.reason.as_deref().unwrap_or("internal error"));
        }
        Ok(SessionReport {
            dir,
            outcome: w.outcome,
            final_failure,
            pr_url,
            internal: w.internal,
            reason: w.reason,
        })
    }

    /// Humans hear about final failures, and about their resolution. A
    /// problem with the alert itself must not change the thought's fate.
    #[allow(clippy::too_many_arguments)]
    fn alert(
        &self,
        dir: &str,
        entry: &Entry,
        w: &WorkResult,
        final_failure: bool,
        reason_line: Option<&str>,
        pr_url: Option<&str>,
        disposition: Disposition,
    ) {
        let Some(forge) = self.forge.as_deref().filter(|_| self.cfg.open_pr) else {
            return;
        };
        let alerted = if final_failure && entry.revision().is_some() {
            match entry.pr_url.as_deref() {
                Some(url) => forge.hand_to_human(url, reason_line.unwrap_or("the revision failed")),
                None => Ok(()),
            }
        } else if final_failure {
            forge
                .alert_failure(&Failure {
                    thought_dir: dir.to_owned(),
                    title: entry.title.clone(),
                    attempts: entry.attempts,
                    last_error: reason_line.unwrap_or_default().to_owned(),
                    log_tail: last_lines(&w.log_tail, 40),
                })
                .map(|_| ())
        } else if disposition == Disposition::Completed {
            forge.resolve_alert(dir, pr_url).map(|_| ())
        } else {
            Ok(())
        };
        if let Err(e) = alerted {
            tracing::warn!(
                "could not update the failure alert of {dir} on {}: {e}",
                forge.name()
            );
        }
    }

    /// Humans hear once that a bug of tgs's ended a session: one open
    /// issue says so, however many sessions it ends.
    fn alert_internal(&self, dir: &str, reason: &str) {
        let Some(forge) = self.forge.as_deref().filter(|_| self.cfg.open_pr) else {
            return;
        };
        if let Err(e) = forge.alert_internal(&format!("{dir}: {reason}")) {
            tracing::warn!(
                "could not report the internal error on {}: {e}",
                forge.name()
            );
        }
    }

    /// One alert for an agent whose provider refused for good (credit,
    /// credentials): sessions with it wait until a human resumes it.
    fn alert_unavailable(&self, agent: &str, p: &Pause) {
        let Some(forge) = self.forge.as_deref().filter(|_| self.cfg.open_pr) else {
            return;
        };
        if let Err(e) = forge.alert_agent(agent, &p.reason) {
            tracing::warn!("could not alert about the agent {agent}: {e}");
        }
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

    /// The state path and compressed end of a session's transcript, to go
    /// with its record (see `archive`); `None` if it cannot be read.
    fn kept_transcript(&self, w: &WorkResult, started: Timestamp) -> Option<(String, Vec<u8>)> {
        let log = w.log.as_deref()?;
        let file = log.file_name()?.to_str()?.to_owned();
        let when = crate::report::parse_transcript_name(&file).map_or(started, |(_, t, _)| t);
        if let Some(gz) = &w.kept_gz {
            return Some((crate::archive::state_path(&file, when), gz.clone()));
        }
        match crate::archive::pack(log, self.cfg.transcript_whole.as_deref()) {
            Ok(gz) => Some((crate::archive::state_path(&file, when), gz)),
            Err(e) => {
                tracing::warn!("could not keep the transcript {}: {e}", log.display());
                None
            }
        }
    }
}

/// Apply a session's end to the backlog `b` (whose claim it holds): where
/// the entry goes, when it may be claimed again, and the commit message.
#[allow(clippy::too_many_arguments)]
fn settle(
    b: &mut Backlog,
    entry: &Entry,
    w: &WorkResult,
    pr_url: Option<&str>,
    pending: Option<&str>,
    reason_line: Option<&str>,
    (ended, not_before, max, max_questions): (Timestamp, Option<Timestamp>, u32, u32),
    agent: &str,
    thought_budget: Option<f64>,
) -> Result<(Disposition, Option<Timestamp>, String), Error> {
    let dir = entry.dir.as_str();
    let spent = note_cost(b, dir, w.stats.cost_usd, ended);
    if let Some(q) = &w.question {
        let asked = b.get(dir).map_or(0, |e| e.questions.len());
        if asked >= max_questions as usize {
            let why = format!(
                "needs_input: its agent asked question {} and server.questions.max_per_thought is {max_questions}: {}",
                asked + 1,
                crate::backlog::first_line(q)
            );
            give_up(b, entry, Some(&why), ended)?;
            return Ok((
                Disposition::Failed,
                None,
                format!("chore(tgs): fail {dir} (too many questions)"),
            ));
        }
        b.ask(dir, q, w.question_posted.clone(), ended)?;
        return Ok((
            Disposition::NeedsInput,
            None,
            format!("chore(tgs): {dir} needs input"),
        ));
    }
    if w.branch_gone && entry.revision().is_some() {
        b.revision_cancelled(dir, ended)?;
        return Ok((
            Disposition::Completed,
            None,
            format!("chore(tgs): cancel a revision of {dir} (its branch is gone)"),
        ));
    }
    if w.outcome == Outcome::Success && entry.revision().is_some() {
        b.revision_done(dir, w.head.as_deref().unwrap_or_default(), ended)?;
        return Ok((
            Disposition::Completed,
            None,
            format!("chore(tgs): revise {dir}"),
        ));
    }
    if w.outcome == Outcome::Success {
        let (Some(branch), Some(head)) = (w.branch.as_deref(), w.head.as_deref()) else {
            b.complete(dir, pr_url, ended)?;
            return Ok((
                Disposition::Completed,
                None,
                format!("chore(tgs): complete {dir}"),
            ));
        };
        if let Some(why) = pending {
            let next = after(ended, Duration::from_secs(60));
            b.handover_pending(dir, branch, head, why, next)?;
            return Ok((
                Disposition::HandoverPending,
                next,
                format!("chore(tgs): {dir} pushed; its hand-over is pending"),
            ));
        }
        b.complete(dir, pr_url, ended)?;
        if let Some(e) = b.thoughts.iter_mut().find(|e| e.dir == dir) {
            e.branch = Some(branch.to_owned());
            e.head = Some(head.to_owned());
        }
        return Ok((
            Disposition::Completed,
            None,
            format!("chore(tgs): complete {dir}"),
        ));
    }
    if let Some(c) = &w.provider {
        let strikes = b.pauses.get(agent).map_or(0, |p| p.strikes + 1);
        let until = match (c.kind.until_resumed(), w.untrusted) {
            (false, _) => after(ended, outcome::pause_length(c, strikes)),
            // An artifact's word pauses every worker for a while at most.
            (true, true) => after(ended, Duration::from_secs(super::artifact::MAX_PAUSE_SECS)),
            (true, false) => None,
        };
        b.pause(
            agent,
            Pause {
                kind: w.outcome.as_str().to_owned(),
                until,
                reason: c.detail.clone(),
                since: ended,
                strikes: 0,
                by: Some(entry.claimed_by.clone().unwrap_or_default()),
            },
        );
        b.requeue(dir, reason_line, None, true)?;
        return Ok((
            Disposition::Released,
            until,
            format!(
                "chore(tgs): release {dir}; pause {agent} ({})",
                w.outcome.as_str()
            ),
        ));
    }
    if w.refund {
        // Not the thought's doing: the attempt is given back. A session that
        // could not start here waits a retry delay, or it would loop.
        let when = (w.outcome != Outcome::Cancelled)
            .then_some(not_before)
            .flatten();
        b.requeue(dir, reason_line, when, true)?;
        let why = if w.outcome == Outcome::Cancelled {
            "interrupted"
        } else {
            w.outcome.as_str()
        };
        return Ok((
            Disposition::Released,
            when,
            format!("chore(tgs): release {dir} ({why})"),
        ));
    }
    if w.requeue_now {
        // Counted, but claimable at once (its job vanished: no delay helps).
        b.requeue(dir, reason_line, None, false)?;
        return Ok((
            Disposition::Requeued,
            None,
            format!("chore(tgs): requeue {dir} (no artifact)"),
        ));
    }
    if w.outcome == Outcome::Cancelled {
        b.requeue(dir, reason_line, None, true)?;
        return Ok((
            Disposition::Released,
            None,
            format!("chore(tgs): release {dir} (interrupted)"),
        ));
    }
    let attempts = b.get(dir).map(|e| e.attempts).unwrap_or(0);
    if let Some(cap) = thought_budget.filter(|cap| spent >= *cap) {
        let why = format!(
            "budget: its {attempts} attempt(s) cost ${spent:.2}, which reaches server.budgets.thought_cost_usd (${cap:.2}){}",
            reason_line.map(|r| format!("; the last one {r}")).unwrap_or_default()
        );
        give_up(b, entry, Some(&why), ended)?;
        return Ok((
            Disposition::Failed,
            None,
            format!("chore(tgs): fail {dir} (over its budget)"),
        ));
    }
    if w.final_failure || attempts >= max {
        give_up(b, entry, reason_line, ended)?;
        return Ok((
            Disposition::Failed,
            None,
            format!("chore(tgs): fail {dir} after {attempts} attempts"),
        ));
    }
    b.requeue(dir, reason_line, not_before, false)?;
    Ok((
        Disposition::Requeued,
        not_before,
        format!("chore(tgs): requeue {dir} after attempt {attempts}"),
    ))
}

/// The session's change to its thought's work in progress, in the entry.
fn note_wip(b: &mut Backlog, dir: &str, change: &WipChange) {
    let Some(e) = b.thoughts.iter_mut().find(|e| e.dir == dir) else {
        return;
    };
    match change {
        WipChange::Keep => {}
        WipChange::Set(kept) => e.wip = Some(kept.clone()),
        WipChange::Drop => e.wip = None,
    }
}

/// A session failed for good: the thought fails, or (a revision) its pull
/// request goes to a human and stays open.
fn give_up(b: &mut Backlog, entry: &Entry, why: Option<&str>, now: Timestamp) -> Result<(), Error> {
    if entry.revision().is_some() {
        let why = why.unwrap_or("the revision failed");
        return b.revision_given_up(&entry.dir, why, now);
    }
    b.fail(&entry.dir, why)
}

/// `2026-11-30`, the UTC day budgets count in.
fn day(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d").to_string()
}

/// Record on the state that a session starts: its agent on the entry, one
/// more session in today's usage.
pub(super) fn note_claim(b: &mut Backlog, dir: &str, agent: &str, now: Timestamp) {
    if let Some(e) = b.thoughts.iter_mut().find(|e| e.dir == dir) {
        e.agent = Some(agent.to_owned());
    }
    let today = day(now);
    let u = b.usage.get_or_insert_with(|| crate::backlog::Usage {
        day: today.clone(),
        sessions: 0,
        cost_usd: 0.0,
    });
    if u.day != today {
        *u = crate::backlog::Usage {
            day: today,
            sessions: 0,
            cost_usd: 0.0,
        };
    }
    u.sessions = u.sessions.saturating_add(1);
}

/// Add a session's reported cost to its entry and to today's usage; returns
/// the entry's cost over all its attempts.
fn note_cost(b: &mut Backlog, dir: &str, cost: Option<f64>, now: Timestamp) -> f64 {
    let cost = cost.filter(|c| c.is_finite() && *c > 0.0).unwrap_or(0.0);
    let today = day(now);
    if cost > 0.0 {
        match b.usage.as_mut() {
            Some(u) if u.day == today => u.cost_usd = saturating_sum(u.cost_usd, cost),
            _ => {
                b.usage = Some(crate::backlog::Usage {
                    day: today,
                    sessions: 0,
                    cost_usd: cost,
                })
            }
        }
    }
    let Some(e) = b.thoughts.iter_mut().find(|e| e.dir == dir) else {
        return cost;
    };
    if cost > 0.0 {
        e.cost_usd = Some(saturating_sum(e.cost_usd.unwrap_or(0.0), cost));
    }
    e.cost_usd.unwrap_or(0.0)
}

/// `a + b`, at most [`MAX_COST_USD`](crate::backlog::values::MAX_COST_USD):
/// a sum that overflowed to infinity was written as `null`, and one beyond
/// the bound is no real cost (validate would report it).
fn saturating_sum(a: f64, b: f64) -> f64 {
    let s = a + b;
    if s.is_finite() {
        s.min(crate::backlog::values::MAX_COST_USD)
    } else {
        crate::backlog::values::MAX_COST_USD
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

/// The last `n` lines of `text`.
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
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
