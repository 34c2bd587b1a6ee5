//! `tgs server run`: claim a thought, let an agent implement it in its own
//! worktree, verify the work, hand it over (push, PR, record), and go on.
//!
//! Every step is reported as an [`Event`]; every state change goes through
//! the [`StateTarget`], so racing workers stay consistent. A failed session
//! is requeued with an exponential, capped, jittered delay until
//! `max_attempts`, then marked failed; an interrupted one gives its claim
//! back without counting the attempt.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::agent::driver::{AgentSpec, Invocation, SessionCommand};
use crate::backlog::store::{Append, Change};
use crate::backlog::target::StateTarget;
use crate::backlog::{Entry, Status};
use crate::config::Settings;
use crate::events::{Event, Outcome, SessionStats, Sink};
use crate::forge::{Failure, Forge, PullRequest};
use crate::process::{Ending, Signals};
use crate::records::{MetricsRow, METRICS_HEADER, METRICS_PATH};
use crate::repo::Repo;
use crate::session::{self, RunOptions};
use crate::thought::{Thought, ThoughtIndex, ThoughtName};
use crate::transcript::Redactor;
use crate::worktree::{self, Worktree, LOGS_DIR};
use crate::{clock, context, github, prompt, verify, Error};

/// How long to keep going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One session (the default, as a 6-hour CI job wants).
    Once,
    /// Until nothing is left that this worker could claim, waiting out retry delays.
    UntilEmpty,
    /// For ever, looking for work every interval.
    Watch(Duration),
}

/// A run's settings after resolution.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub settings: Settings,
    pub agent: String,
    pub worker_id: String,
    pub mode: Mode,
    pub thought: Option<String>,
    pub session_timeout: Duration,
    /// Push branches (and state, through the target).
    pub push: bool,
    pub open_pr: bool,
    /// The branch worktrees start from and PRs target.
    pub base_branch: String,
    /// The remote, when there is one and pushing is on.
    pub remote: Option<String>,
    /// Where the whole transcript of a session of this run can be found
    /// (e.g. the GitHub Actions artifact), said in the kept copy's first line.
    pub transcript_whole: Option<String>,
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunExit {
    Done {
        sessions: u32,
        succeeded: u32,
        /// Thoughts that failed for good in this run (out of attempts).
        failed: u32,
    },
    /// Stopped by this signal; the claim was given back.
    Interrupted(i32),
}

/// What one session came to.
#[derive(Debug, Clone)]
pub struct SessionReport {
    pub dir: String,
    pub outcome: Outcome,
    /// The thought is now `failed`: out of attempts.
    pub final_failure: bool,
    pub pr_url: Option<String>,
    pub reason: Option<String>,
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
    pub topology: crate::topology::Topology,
}

/// The delay before attempt `attempt + 1`: `base * 2^(attempt-1)`, capped, with ±20% jitter.
pub fn retry_delay(base: Duration, max: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    exp.min(max).mul_f64(0.8 + 0.4 * fastrand::f64())
}

fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

impl<'r> Runner<'r> {
    fn interrupted(&self) -> Option<i32> {
        self.signals.as_ref().and_then(|s| s.last())
    }

    fn lease(&self) -> SignedDuration {
        let s = &self.cfg.settings;
        signed(self.cfg.session_timeout + s.verify_timeout + s.lease_margin)
    }

    /// Run sessions as the mode says.
    pub fn run(&mut self, sink: &mut dyn Sink) -> Result<RunExit, Error> {
        let mut sessions = 0;
        let mut succeeded = 0;
        let mut failed = 0;
        loop {
            if let Some(sig) = self.interrupted() {
                return Ok(RunExit::Interrupted(sig));
            }
            match self.session(sink)? {
                Some(report) => {
                    sessions += 1;
                    if report.outcome == Outcome::Success {
                        succeeded += 1;
                    }
                    if report.final_failure {
                        failed += 1;
                    }
                    if report.outcome == Outcome::Cancelled {
                        return Ok(RunExit::Interrupted(
                            self.interrupted().unwrap_or(libc::SIGTERM),
                        ));
                    }
                    if self.cfg.mode == Mode::Once || self.cfg.thought.is_some() {
                        return Ok(RunExit::Done {
                            sessions,
                            succeeded,
                            failed,
                        });
                    }
                }
                None => match self.cfg.mode {
                    Mode::Once => {
                        return Ok(RunExit::Done {
                            sessions,
                            succeeded,
                            failed,
                        })
                    }
                    Mode::UntilEmpty => match self.next_retry()? {
                        // A pinned clock (TGS_NOW) never reaches a retry delay.
                        Some(_) if clock::is_pinned() => {
                            return Ok(RunExit::Done {
                                sessions,
                                succeeded,
                                failed,
                            })
                        }
                        Some(until) => {
                            sink.event(&Event::Waiting { until });
                            if !self.sleep_until(until) {
                                return Ok(RunExit::Interrupted(
                                    self.interrupted().unwrap_or(libc::SIGTERM),
                                ));
                            }
                        }
                        None => {
                            return Ok(RunExit::Done {
                                sessions,
                                succeeded,
                                failed,
                            })
                        }
                    },
                    Mode::Watch(every) => {
                        let until = clock::now()
                            .saturating_add(signed(every))
                            .unwrap_or_else(|_| clock::now());
                        if !self.sleep_until(until) {
                            return Ok(RunExit::Interrupted(
                                self.interrupted().unwrap_or(libc::SIGTERM),
                            ));
                        }
                    }
                },
            }
        }
    }

    /// The earliest retry delay among queued entries this worker may still take.
    fn next_retry(&self) -> Result<Option<Timestamp>, Error> {
        let b = self.state.read()?;
        Ok(b.thoughts
            .iter()
            .filter(|e| e.status == Status::Queued)
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

    /// What `--dry-run` shows: the entry that would be claimed and the agent command.
    pub fn plan(&self) -> Result<Option<(Entry, SessionCommand)>, Error> {
        let mut b = self.state.read()?;
        let now = clock::now();
        b.recover_expired(now);
        let Some(claim) = b.claim(
            self.cfg.thought.as_deref(),
            &self.cfg.worker_id,
            now,
            self.lease(),
        )?
        else {
            return Ok(None);
        };
        let name = name_of(&claim.entry.dir)?;
        let wt = self
            .repo
            .root()
            .join(worktree::WORKTREES_DIR)
            .join(name.as_str());
        let files = session_files(self.repo, &name);
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
        };
        let cmd = spec.command(&[], &inv, "<the implementation prompt>");
        Ok(Some((claim.entry, cmd)))
    }

    /// One session, or `None` when there is nothing to claim.
    pub fn session(&mut self, sink: &mut dyn Sink) -> Result<Option<SessionReport>, Error> {
        let worker = self.cfg.worker_id.clone();
        let only = self.cfg.thought.clone();
        let lease = self.lease();
        let now = clock::now();
        let applied = self.state.update(&Default::default(), |b| {
            let recovered = b.recover_expired(now);
            let claim = b.claim(only.as_deref(), &worker, now, lease)?;
            let msg = match (&claim, recovered.len()) {
                (Some(c), 0) => Some(format!("chore(tgs): claim {} for {worker}", c.entry.dir)),
                (Some(c), n) => Some(format!(
                    "chore(tgs): claim {} for {worker}; requeue {n} expired",
                    c.entry.dir
                )),
                (None, 0) => None,
                (None, n) => Some(format!("chore(tgs): requeue {n} expired claims")),
            };
            Ok(Change::maybe((claim, recovered), msg))
        })?;
        let (claim, recovered) = applied.value;
        if !recovered.is_empty() {
            sink.event(&Event::Recovered {
                dirs: recovered,
                at: now,
            });
        }
        let Some(claim) = claim else {
            sink.event(&Event::NoWork { at: now });
            return Ok(None);
        };
        let entry = claim.entry;
        sink.event(&Event::Claimed {
            dir: entry.dir.clone(),
            title: entry.title.clone(),
            worker: worker.clone(),
            attempt: entry.attempts,
            lease_expires_at: entry.lease_expires_at,
            at: now,
            commit: applied.commit,
        });
        let started = now;
        let w = match self.work(&entry, sink) {
            Ok(w) => w,
            Err(e) => WorkResult::new(
                &self.cfg.agent,
                Outcome::Failed,
                Some(format!("tgs could not run the session: {e}")),
            ),
        };
        self.record(&entry, started, w, sink)
    }

    /// Record the session's end in the backlog and report it.
    fn record(
        &mut self,
        entry: &Entry,
        started: Timestamp,
        w: WorkResult,
        sink: &mut dyn Sink,
    ) -> Result<Option<SessionReport>, Error> {
        let WorkResult {
            outcome,
            reason,
            stats,
            pr_url,
            branch,
            log_tail,
            log,
        } = w;
        let kept = log
            .as_deref()
            .and_then(|p| self.kept_transcript(p, started));
        let ended = clock::now();
        let worker = self.cfg.worker_id.clone();
        let dir = entry.dir.clone();
        let max = self.cfg.settings.max_attempts;
        let delay = retry_delay(
            self.cfg.settings.retry_delay,
            self.cfg.settings.retry_delay_max,
            entry.attempts,
        );
        let not_before = ended
            .saturating_add(signed(delay))
            .ok()
            .and_then(|t| t.round(jiff::Unit::Second).ok());
        let reason_line = reason
            .as_deref()
            .map(|r| format!("{}: {r}", outcome.as_str()));
        let attempt_no = entry.attempts;
        let applied = self.state.update(&Default::default(), |b| {
            // Only the claimer may record: if the lease expired and someone
            // else took the thought over, this session's result is stale.
            let ours = b.get(&dir).is_some_and(|e| {
                e.status == Status::InProgress && e.claimed_by.as_deref() == Some(worker.as_str())
            });
            if !ours {
                return Ok(Change::none(None));
            }
            let (status, msg) = match outcome {
                Outcome::Success => {
                    b.complete(&dir, pr_url.as_deref(), ended)?;
                    if let Some(e) = b.thoughts.iter_mut().find(|e| e.dir == dir) {
                        e.branch = branch.clone();
                    }
                    (Status::Completed, format!("chore(tgs): complete {dir}"))
                }
                Outcome::Cancelled => {
                    b.requeue(&dir, reason_line.as_deref(), None, true)?;
                    (
                        Status::Queued,
                        format!("chore(tgs): release {dir} (interrupted)"),
                    )
                }
                _ => {
                    let attempts = b.get(&dir).map(|e| e.attempts).unwrap_or(0);
                    if attempts >= max {
                        b.fail(&dir, reason_line.as_deref())?;
                        (
                            Status::Failed,
                            format!("chore(tgs): fail {dir} after {attempts} attempts"),
                        )
                    } else {
                        b.requeue(&dir, reason_line.as_deref(), not_before, false)?;
                        (
                            Status::Queued,
                            format!("chore(tgs): requeue {dir} after attempt {attempts}"),
                        )
                    }
                }
            };
            // One metrics row per session, in the same commit as its outcome.
            let row = MetricsRow {
                thought: dir.clone(),
                worker: worker.clone(),
                agent: stats.agent.clone(),
                started,
                ended,
                duration_s: ended.duration_since(started).as_secs_f64().max(0.0),
                outcome: outcome.as_str().to_owned(),
                attempt: attempt_no,
                exit_code: stats.exit_code,
                turns: stats.turns,
                cost_usd: stats.cost_usd,
                input_tokens: stats.input_tokens,
                output_tokens: stats.output_tokens,
                pr_url: pr_url.clone(),
            };
            let change = Change::with(Some(status), msg).append(Append {
                path: METRICS_PATH,
                header: Some(METRICS_HEADER),
                line: row.to_csv(),
            });
            Ok(match &kept {
                Some((path, gz)) => change.put(path.clone(), gz.clone()),
                None => change,
            })
        })?;
        let status = match applied.value {
            Some(s) => s.to_string(),
            None => {
                tracing::warn!(
                    "{dir} was taken over by another worker; this session's result is not recorded"
                );
                "taken_over".to_owned()
            }
        };
        let final_failure = status == "failed";
        // Humans hear about final failures, and about their resolution. A
        // problem with the alert itself must not change the thought's fate.
        if let Some(forge) = self.forge.as_ref().filter(|_| self.cfg.open_pr) {
            let alerted = if final_failure {
                forge
                    .alert_failure(&Failure {
                        thought_dir: dir.clone(),
                        title: entry.title.clone(),
                        attempts: entry.attempts,
                        last_error: reason_line.clone().unwrap_or_default(),
                        log_tail: log_tail
                            .lines()
                            .rev()
                            .take(40)
                            .collect::<Vec<_>>()
                            .into_iter()
                            .rev()
                            .collect::<Vec<_>>()
                            .join("\n"),
                    })
                    .map(|_| ())
            } else if outcome == Outcome::Success && status == "completed" {
                forge.resolve_alert(&dir, pr_url.as_deref()).map(|_| ())
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
        sink.event(&Event::SessionEnded {
            dir: dir.clone(),
            worker,
            attempt: entry.attempts,
            outcome,
            reason: reason.clone(),
            started,
            ended,
            stats,
            pr_url: pr_url.clone(),
            not_before: (status == "queued" && outcome != Outcome::Cancelled)
                .then_some(not_before)
                .flatten(),
            status,
            commit: applied.commit,
        });
        Ok(Some(SessionReport {
            dir,
            outcome,
            final_failure,
            pr_url,
            reason,
        }))
    }

    /// The state path and compressed end of a session's transcript, to go
    /// with its record (see `archive`); `None` if it cannot be read.
    fn kept_transcript(
        &self,
        log: &std::path::Path,
        started: Timestamp,
    ) -> Option<(String, Vec<u8>)> {
        let file = log.file_name()?.to_str()?.to_owned();
        let when = crate::report::parse_transcript_name(&file).map_or(started, |(_, t, _)| t);
        match crate::archive::pack(log, self.cfg.transcript_whole.as_deref()) {
            Ok(gz) => Some((crate::archive::state_path(&file, when), gz)),
            Err(e) => {
                tracing::warn!("could not keep the transcript {}: {e}", log.display());
                None
            }
        }
    }

    /// Worktree, agent, verification, hand-over. Returns what `record` needs.
    fn work(&mut self, entry: &Entry, sink: &mut dyn Sink) -> Result<WorkResult, Error> {
        let name = name_of(&entry.dir)?;
        let mut w = WorkResult::new(&self.cfg.agent, Outcome::Failed, None);
        let (label, base) = self.fresh_base()?;
        let index = ThoughtIndex::load_paths(self.repo, Some(&base), &[entry.dir.as_str()])?;
        let Some(thought) = index.find(&entry.dir).cloned() else {
            w.outcome = Outcome::Rejected;
            w.reason = Some(format!(
                "{} is not on {label} (committed but not pushed, or removed since it was queued)",
                entry.dir
            ));
            return Ok(w);
        };
        let wt = worktree::prepare(self.repo, &name, &base)?;
        sink.event(&Event::WorktreeReady {
            dir: entry.dir.clone(),
            path: wt.path.clone(),
            branch: wt.branch.clone(),
            base: base.clone(),
        });
        let result = self.agent_and_verify(entry, &thought, &wt, &mut w, sink);
        worktree::discard(self.repo, &wt.path);
        let (outcome, reason) = result?;
        w.outcome = outcome;
        w.reason = reason;
        if outcome != Outcome::Success {
            return Ok(w);
        }
        w.branch = Some(wt.branch.clone());
        // Hand over: push the branch, open the PR.
        let Some(remote) = self.cfg.remote.clone().filter(|_| self.cfg.push) else {
            return Ok(w);
        };
        let spec = format!("+refs/heads/{0}:refs/heads/{0}", wt.branch);
        let out = self
            .repo
            .git()
            .cmd(["push", "--quiet", "--porcelain", &remote, &spec])
            .output()?;
        if !out.success {
            w.outcome = Outcome::Failed;
            w.reason = Some(format!(
                "could not push {}: {}",
                wt.branch,
                out.stderr.trim()
            ));
            return Ok(w);
        }
        sink.event(&Event::BranchPushed {
            dir: entry.dir.clone(),
            branch: wt.branch.clone(),
        });
        let Some(forge) = self.forge.as_ref().filter(|_| self.cfg.open_pr) else {
            return Ok(w);
        };
        let summary = self
            .repo
            .git()
            .cmd([
                "cat-file",
                "blob",
                &format!("refs/heads/{}:{}", wt.branch, prompt::impl_file(&thought)),
            ])
            .output()
            .ok()
            .filter(|o| o.success)
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        let pr_cfg = &self.cfg.settings.pr;
        let body = github::pr_body(&github::PrBodyInput {
            thought_dir: entry.dir.clone(),
            title: entry.title.clone(),
            implementation_summary: summary,
            research_path: prompt::research_file(&thought),
            plan_path: prompt::plan_file(&thought),
            repo_web_url: forge.web_url(),
            base_branch: self.cfg.base_branch.clone(),
            agent: self.cfg.agent.clone(),
            attempts: entry.attempts,
            duration_secs: clock::now()
                .duration_since(entry.claimed_at.unwrap_or_else(clock::now))
                .as_secs()
                .max(0) as u64,
            turns: w.stats.turns,
            cost_usd: w.stats.cost_usd,
        });
        let pr = PullRequest {
            head: wt.branch.clone(),
            base: self.cfg.base_branch.clone(),
            title: github::pr_title(&pr_cfg.title_prefix, &entry.title),
            body,
            draft: pr_cfg.draft,
            labels: pr_cfg.labels.clone(),
            reviewers: pr_cfg.reviewers.clone(),
        };
        match forge.open_or_update_pr(&pr) {
            Ok(opened) => {
                sink.event(&Event::PrOpened {
                    dir: entry.dir.clone(),
                    url: opened.url.clone(),
                });
                crate::failpoint::hit("runner.pr-opened");
                w.pr_url = Some(opened.url);
            }
            Err(e) => {
                w.outcome = Outcome::Failed;
                w.reason = Some(format!("could not open the pull request: {e}"));
            }
        }
        Ok(w)
    }

    fn agent_and_verify(
        &mut self,
        entry: &Entry,
        thought: &Thought,
        wt: &Worktree,
        w: &mut WorkResult,
        sink: &mut dyn Sink,
    ) -> Result<(Outcome, Option<String>), Error> {
        let name = name_of(&entry.dir)?;
        let context = context::context_files(self.repo, &wt.base, thought)?;
        let template = match &self.cfg.settings.impl_prompt {
            Some(p) => std::fs::read_to_string(self.repo.root().join(p))
                .map_err(|e| Error::invalid(format!("steps.impl_prompt {p}: {e}")))?,
            None => prompt::BUILTIN.to_owned(),
        };
        let text = prompt::render(
            &template,
            &prompt::PromptVars {
                thought,
                title: &entry.title,
                context_files: &context,
                branch: &wt.branch,
                attempt: entry.attempts,
                last_error: entry.last_error.as_deref(),
            },
        );
        let files = session_files(self.repo, &name);
        std::fs::create_dir_all(&files.dir)?;
        std::fs::write(&files.prompt, &text)?;
        let abs_context: Vec<String> = context.clone();
        std::fs::write(&files.context, abs_context.join("\n") + "\n")?;
        let spec = AgentSpec::resolve(&self.cfg.agent, &self.cfg.settings)?;
        let inv = Invocation {
            worktree: &wt.path,
            prompt_file: &files.prompt,
            context_list: &files.context,
            context_files: &context,
            thought_dir: &entry.dir,
            branch: &wt.branch,
            attempt: entry.attempts,
            timeout_secs: self.cfg.session_timeout.as_secs(),
        };
        let cmd = spec.command(&self.env, &inv, &text);
        let redactor = Arc::new(Redactor::new(
            Redactor::secret_env_values(
                self.env.iter().cloned(),
                &self.cfg.settings.redact_env_keys,
            ),
            &self.cfg.settings.redact_patterns,
        )?);
        let stamp = clock::now().strftime("%Y%m%dT%H%M%SZ").to_string();
        let log = unused_path(
            &self.repo.root().join(LOGS_DIR),
            &format!("{name}-{stamp}"),
            "log",
        );
        sink.event(&Event::AgentStarted {
            dir: entry.dir.clone(),
            agent: self.cfg.agent.clone(),
            command: cmd.display(),
            log: log.clone(),
            at: clock::now(),
        });
        let dir = entry.dir.clone();
        let red = redactor.clone();
        let run = session::run_agent(
            &cmd,
            &RunOptions {
                cwd: &wt.path,
                prompt: &text,
                log_path: &log,
                redactor: redactor.clone(),
                timeout: self.cfg.session_timeout,
                grace: self.cfg.settings.kill_grace,
                signals: self.signals.as_deref(),
                agent_name: &self.cfg.agent,
            },
            &mut |p| {
                sink.event(&Event::AgentProgress {
                    dir: dir.clone(),
                    action: p.action.map(|a| red.redact(&a)),
                    turns: p.turns,
                    cost_usd: p.cost_usd,
                })
            },
        )?;
        let run = match run {
            Ok(r) => r,
            Err(session::Missing(why)) => return Ok((Outcome::AgentMissing, Some(why))),
        };
        w.stats = run.stats.clone();
        w.log_tail = run.tail.clone();
        w.log = Some(log.clone());
        sink.event(&Event::AgentFinished {
            dir: entry.dir.clone(),
            ending: run.ending.describe(),
            duration: run.duration,
            stats: run.stats.clone(),
        });
        // The last line the agent wrote on stderr, else on stdout.
        let last_line = || {
            run.stderr_tail
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .or_else(|| {
                    run.tail
                        .lines()
                        .rev()
                        .find(|l| !l.trim().is_empty() && !l.starts_with("# tgs"))
                })
                .map(|l| {
                    format!(
                        " (last output: {})",
                        l.chars().take(200).collect::<String>()
                    )
                })
                .unwrap_or_default()
        };
        match run.ending {
            Ending::Interrupted(sig) => {
                return Ok((
                    Outcome::Cancelled,
                    Some(format!("interrupted by signal {sig}")),
                ))
            }
            Ending::TimedOut => {
                return Ok((
                    Outcome::Timeout,
                    Some(format!(
                        "the session ran past its timeout of {}",
                        humanize(self.cfg.session_timeout)
                    )),
                ))
            }
            Ending::Exited(s) if s.code().is_none() => {
                return Ok((
                    Outcome::Crashed,
                    Some(format!(
                        "the agent {}{}",
                        run.ending.describe(),
                        last_line()
                    )),
                ))
            }
            Ending::Exited(s) if !s.success() => {
                let outcome = if run.rate_limited {
                    Outcome::RateLimited
                } else {
                    Outcome::Failed
                };
                // Claude exits 1 on API errors and the turn limit: its own
                // account of why beats the last line of output.
                let why = match &run.reported_failure {
                    Some(r) => format!("the agent {}: {r}", run.ending.describe()),
                    None => format!("the agent {}{}", run.ending.describe(), last_line()),
                };
                return Ok((outcome, Some(why)));
            }
            Ending::Exited(_) => {}
        }
        if let Some(why) = run.reported_failure {
            let outcome = if run.rate_limited {
                Outcome::RateLimited
            } else {
                Outcome::Failed
            };
            return Ok((outcome, Some(why)));
        }
        if let Some(sig) = self.interrupted() {
            return Ok((
                Outcome::Cancelled,
                Some(format!("interrupted by signal {sig}")),
            ));
        }
        let verify_env: Vec<(String, String)> = cmd
            .env
            .iter()
            .filter(|(k, _)| !crate::transcript::name_looks_secret(k))
            .cloned()
            .collect();
        let verdict = verify::verify(
            self.repo,
            wt,
            &entry.dir,
            self.cfg.settings.verify_command.as_deref(),
            self.cfg.settings.verify_timeout,
            &verify_env,
            &log,
            redactor,
            self.signals.as_deref(),
        )?;
        sink.event(&Event::Verified {
            dir: entry.dir.clone(),
            ok: verdict.problems.is_empty(),
            problems: verdict.problems.clone(),
        });
        if let Some(sig) = self.interrupted() {
            return Ok((
                Outcome::Cancelled,
                Some(format!("interrupted by signal {sig}")),
            ));
        }
        if !verdict.problems.is_empty() {
            return Ok((Outcome::Rejected, Some(verdict.problems.join("; "))));
        }
        Ok((Outcome::Success, None))
    }

    /// The tip of the base branch, fetched from the remote when there is one.
    fn fresh_base(&self) -> Result<(String, String), Error> {
        let tip = self.topology.fetch_base(self.repo)?;
        match tip.commit {
            Some(c) => Ok((tip.label, c)),
            None => Err(Error::Setup {
                message: format!("{} has no commits yet", tip.label),
                hint: Some(format!("push {} first", tip.branch)),
            }),
        }
    }
}

/// What a session came to, before it is recorded.
#[derive(Debug, Clone)]
struct WorkResult {
    outcome: Outcome,
    reason: Option<String>,
    stats: SessionStats,
    pr_url: Option<String>,
    branch: Option<String>,
    /// The end of the (redacted) transcript, for failure alerts.
    log_tail: String,
    /// The transcript file, once the agent ran.
    log: Option<PathBuf>,
}

impl WorkResult {
    fn new(agent: &str, outcome: Outcome, reason: Option<String>) -> WorkResult {
        WorkResult {
            outcome,
            reason,
            stats: SessionStats {
                agent: agent.to_owned(),
                ..Default::default()
            },
            pr_url: None,
            branch: None,
            log_tail: String::new(),
            log: None,
        }
    }
}

/// Where a session's prompt and context list are written: in the git
/// directory, so that nothing of tgs's ends up in the agent's commits.
struct SessionFiles {
    dir: PathBuf,
    prompt: PathBuf,
    context: PathBuf,
}

fn session_files(repo: &Repo, name: &ThoughtName) -> SessionFiles {
    let dir = repo
        .common_dir()
        .join("tgs")
        .join("sessions")
        .join(name.as_str());
    SessionFiles {
        prompt: dir.join("prompt.md"),
        context: dir.join("context.txt"),
        dir,
    }
}

fn name_of(dir: &str) -> Result<ThoughtName, Error> {
    dir.rsplit('/')
        .next()
        .and_then(ThoughtName::parse)
        .ok_or_else(|| Error::invalid(format!("{dir} is not a thought directory")))
}

/// `dir/stem.ext`, or `dir/stem-2.ext`... if taken: a second attempt in the
/// same second must not overwrite the first one's transcript.
fn unused_path(dir: &std::path::Path, stem: &str, ext: &str) -> PathBuf {
    let mut p = dir.join(format!("{stem}.{ext}"));
    let mut n = 2;
    while p.exists() {
        p = dir.join(format!("{stem}-{n}.{ext}"));
        n += 1;
    }
    p
}

/// `5h30m`, `90s`.
pub fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if sec > 0 || out.is_empty() {
        out.push_str(&format!("{sec}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_cap_and_jitter() {
        let base = Duration::from_secs(60);
        let max = Duration::from_secs(600);
        for _ in 0..50 {
            let d1 = retry_delay(base, max, 1).as_secs_f64();
            let d3 = retry_delay(base, max, 3).as_secs_f64();
            let d9 = retry_delay(base, max, 9).as_secs_f64();
            assert!((48.0..72.0).contains(&d1), "{d1}");
            assert!((192.0..288.0).contains(&d3), "{d3}");
            assert!((480.0..720.0).contains(&d9), "{d9}");
        }
    }

    #[test]
    fn humanized() {
        assert_eq!(humanize(Duration::from_secs(5 * 3600 + 1800)), "5h30m");
        assert_eq!(humanize(Duration::from_secs(90)), "1m30s");
        assert_eq!(humanize(Duration::ZERO), "0s");
    }
}
