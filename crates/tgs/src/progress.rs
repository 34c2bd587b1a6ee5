//! The console sink of the runner's events: one live line per session on a
//! terminal, updated in place; plain lines elsewhere (CI logs).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use tgs_core::events::{Disposition, Event, Outcome, Sink};
use tgs_core::runner::humanize;

pub struct Console {
    tty: bool,
    quiet: bool,
    live: Option<Live>,
    last_plain: Option<Instant>,
    last_action: Option<String>,
    released: u32,
}

struct Live {
    dir: String,
    attempt: u32,
    started: Instant,
    action: Option<String>,
    turns: Option<u32>,
    cost: Option<f64>,
    drawn: Option<Instant>,
}

impl Console {
    pub fn new(quiet: bool) -> Console {
        Console {
            tty: std::io::stderr().is_terminal(),
            quiet,
            live: None,
            last_plain: None,
            last_action: None,
            released: 0,
        }
    }

    /// Claims given back in this run (interrupted sessions among them).
    pub fn released(&self) -> u32 {
        self.released
    }

    fn line(&mut self, text: String) {
        if self.quiet {
            return;
        }
        if self.tty && self.live.is_some() {
            anstream::eprint!("\r\x1b[2K");
        }
        anstream::eprintln!("{text}");
        if let Some(l) = &mut self.live {
            l.drawn = None;
        }
        self.redraw(true);
    }

    fn redraw(&mut self, force: bool) {
        if self.quiet || !self.tty {
            return;
        }
        let Some(l) = &mut self.live else { return };
        if !force
            && l.drawn
                .is_some_and(|d| d.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        l.drawn = Some(Instant::now());
        let mut s = format!(
            "  ⠿ {} · {} · attempt {}",
            l.dir,
            humanize(Duration::from_secs(l.started.elapsed().as_secs())),
            l.attempt
        );
        if let Some(a) = &l.action {
            s.push_str(&format!(" · {a}"));
        }
        if let Some(t) = l.turns {
            s.push_str(&format!(" · {t} turns"));
        }
        if let Some(c) = l.cost {
            s.push_str(&format!(" · ${c:.2}"));
        }
        let width = terminal_width();
        let s: String = s.chars().take(width.saturating_sub(1)).collect();
        anstream::eprint!("\r\x1b[2K{s}");
    }
}

fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(120)
}

impl Sink for Console {
    fn event(&mut self, e: &Event) {
        match e {
            Event::Recovered { dirs, .. } => self.line(format!(
                "requeued {} expired claim(s): {}",
                dirs.len(),
                dirs.join(", ")
            )),
            Event::Claimed {
                dir,
                title,
                worker,
                attempt,
                ..
            } => {
                self.line(format!(
                    "claimed {dir} ({title}) for {worker}, attempt {attempt}"
                ));
            }
            Event::NoWork { reason, .. } => self.line(format!(
                "no work: {}",
                reason
                    .as_deref()
                    .unwrap_or("nothing in the backlog can be claimed now")
            )),
            Event::Waiting { until } => {
                self.line(format!("waiting for a retry delay, until {until}"))
            }
            Event::WorktreeReady { path, branch, .. } => {
                self.line(format!("  worktree {} on {branch}", path.display()))
            }
            Event::AgentStarted {
                dir, agent, log, ..
            } => {
                self.line(format!(
                    "  agent {agent} started; transcript: {}",
                    log.display()
                ));
                self.live = Some(Live {
                    dir: dir.clone(),
                    attempt: 0,
                    started: Instant::now(),
                    action: None,
                    turns: None,
                    cost: None,
                    drawn: None,
                });
                self.last_action = None;
                self.redraw(true);
            }
            Event::AgentProgress {
                action,
                turns,
                cost_usd,
                ..
            } => {
                if let Some(l) = &mut self.live {
                    l.action = action.clone().or(l.action.take());
                    l.turns = turns.or(l.turns);
                    l.cost = cost_usd.or(l.cost);
                }
                if self.tty {
                    self.redraw(false);
                } else if action.is_some() && *action != self.last_action && !self.quiet {
                    // Plain output: each new action once, at most one line a second.
                    if self
                        .last_plain
                        .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
                    {
                        anstream::eprintln!("  · {}", action.as_deref().unwrap_or_default());
                        self.last_plain = Some(Instant::now());
                    }
                    self.last_action = action.clone();
                }
            }
            Event::AgentFinished {
                ending,
                duration,
                stats,
                ..
            } => {
                let mut s = format!(
                    "  agent {ending} after {}",
                    humanize(Duration::from_secs(duration.as_secs()))
                );
                if let Some(t) = stats.turns {
                    s.push_str(&format!(", {t} turns"));
                }
                if let Some(c) = stats.cost_usd {
                    s.push_str(&format!(", ${c:.2}"));
                }
                if self.tty {
                    anstream::eprint!("\r\x1b[2K");
                }
                self.live = None;
                self.line(s);
            }
            Event::Verified { ok, problems, .. } => {
                if *ok {
                    self.line("  verified".into());
                } else {
                    for p in problems {
                        self.line(format!("  rejected: {p}"));
                    }
                }
            }
            Event::BranchPushed { branch, .. } => self.line(format!("  pushed {branch}")),
            Event::PrOpened { url, .. } => self.line(format!("  pull request: {url}")),
            Event::HandoverRetried {
                dir,
                pr_url,
                reason,
                disposition,
            } => self.line(match (disposition, pr_url, reason) {
                (Disposition::Completed, Some(url), _) => {
                    format!("{dir}: handed over (pull request {url})")
                }
                (Disposition::Completed, None, _) => format!("{dir}: handed over"),
                (_, _, Some(r)) => format!("{dir}: hand-over still pending: {r}"),
                (d, _, None) => format!("{dir}: hand-over {}", d.as_str()),
            }),
            Event::AgentPaused {
                agent,
                kind,
                until,
                reason,
            } => self.line(match until {
                Some(t) => format!("the agent {agent} is paused until {t} ({kind}: {reason})"),
                None => format!(
                    "the agent {agent} is paused until `tgs server resume {agent}` ({kind}: {reason})"
                ),
            }),
            Event::SessionEnded {
                dir,
                outcome,
                reason,
                disposition,
                not_before,
                ..
            } => {
                let mut s = match outcome {
                    Outcome::Success => format!("{dir}: completed"),
                    o => format!("{dir}: {}", o.as_str()),
                };
                if let Some(r) = reason {
                    s.push_str(&format!(": {r}"));
                }
                match (disposition, not_before) {
                    (Disposition::Requeued, Some(t)) => {
                        s.push_str(&format!(" (requeued; next attempt after {t})"))
                    }
                    (Disposition::Released, Some(t)) => s.push_str(&format!(
                        " (claim given back, the attempt not counted; claimable after {t})"
                    )),
                    (Disposition::Released, None) | (Disposition::Requeued, None) => {
                        s.push_str(" (claim given back)")
                    }
                    (Disposition::HandoverPending, _) => s.push_str(
                        " (pushed; the pull request will be opened by a later run or sync-prs)",
                    ),
                    (Disposition::Failed, _) => {
                        s.push_str(" (failed for good: a human should look)")
                    }
                    (Disposition::TakenOver, _) => {
                        s.push_str(" (taken over by another session: not recorded)")
                    }
                    (Disposition::Completed, _) => {}
                }
                if *disposition == Disposition::Released {
                    self.released += 1;
                }
                self.live = None;
                self.line(s);
            }
        }
    }
}
