//! The console sink of the runner's events. On a terminal, one live line per
//! running session at the bottom, redrawn in place below the log lines;
//! elsewhere (CI logs), plain lines only. With several sessions at once,
//! each session's lines name its thought. The line of a claim for a
//! revision says which review or comment it answers.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use tgs_core::events::{Disposition, Event, Outcome, Sink};
use tgs_core::runner::humanize;

pub struct Console {
    tty: bool,
    quiet: bool,
    /// Running sessions, by thought directory.
    live: BTreeMap<String, Live>,
    /// Live lines drawn below the log, to erase before the next draw (the
    /// cursor is left at the end of the last one).
    drawn_lines: usize,
    last_draw: Option<Instant>,
    released: u32,
    /// Several sessions run at once: prefix lines with the thought.
    parallel: bool,
    /// Why nothing could be claimed is said by the caller (as the error of
    /// a run for one named thought), not by a `no work:` line too.
    no_work_said: bool,
}

struct Live {
    attempt: u32,
    started: Instant,
    action: Option<String>,
    turns: Option<u32>,
    cost: Option<f64>,
    /// Plain output: the last action printed, and when.
    printed: Option<(String, Instant)>,
}

impl Console {
    pub fn new(quiet: bool, parallel: bool) -> Console {
        Console {
            tty: std::io::stderr().is_terminal(),
            quiet,
            live: BTreeMap::new(),
            drawn_lines: 0,
            last_draw: None,
            released: 0,
            parallel,
            no_work_said: false,
        }
    }

    /// Leave out `no work:` lines: the caller says why (a run for one thought).
    pub fn without_no_work(mut self) -> Console {
        self.no_work_said = true;
        self
    }

    /// `claimed DIR (TITLE) for WORKER, attempt N`, and for a revision
    /// `: a revision for changes requested by @alice: URL`.
    fn claimed_line(
        dir: &str,
        title: &str,
        worker: &str,
        attempt: u32,
        answers: Option<&str>,
    ) -> String {
        let title = if title.is_empty() {
            String::new()
        } else {
            format!(" ({title})")
        };
        let revision = answers
            .map(|what| format!(": a revision for {what}"))
            .unwrap_or_default();
        format!("claimed {dir}{title} for {worker}, attempt {attempt}{revision}")
    }

    /// Claims given back in this run (interrupted sessions among them).
    pub fn released(&self) -> u32 {
        self.released
    }

    /// A log line, above the live lines.
    fn line(&mut self, text: String) {
        if self.quiet {
            return;
        }
        self.erase();
        anstream::eprintln!("{}", crate::output::shown(&text));
        self.draw(true);
    }

    /// A line about one session: `  text`, or `  name: text` when several run.
    fn session_line(&mut self, dir: &str, text: &str) {
        let line = if self.parallel {
            format!("  {}: {text}", short(dir))
        } else {
            format!("  {text}")
        };
        self.line(line);
    }

    fn erase(&mut self) {
        if self.tty && self.drawn_lines > 0 {
            // Clear the last line, then climb over the others, clearing each.
            anstream::eprint!("\r\x1b[2K{}", "\x1b[1A\x1b[2K".repeat(self.drawn_lines - 1));
            self.drawn_lines = 0;
        }
    }

    fn draw(&mut self, force: bool) {
        if self.quiet || !self.tty || self.live.is_empty() {
            return;
        }
        if !force
            && self
                .last_draw
                .is_some_and(|d| d.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        self.erase();
        self.last_draw = Some(Instant::now());
        let width = terminal_width();
        let lines: Vec<String> = self
            .live
            .iter()
            .map(|(dir, l)| {
                let s = live_text(dir, l);
                s.chars().take(width.saturating_sub(1)).collect()
            })
            .collect();
        anstream::eprint!("{}", lines.join("\n"));
        self.drawn_lines = lines.len();
    }

    fn progress(
        &mut self,
        dir: &str,
        action: Option<&String>,
        turns: Option<u32>,
        cost: Option<f64>,
    ) {
        let Some(l) = self.live.get_mut(dir) else {
            return;
        };
        if let Some(a) = action {
            l.action = Some(a.clone());
        }
        l.turns = turns.or(l.turns);
        l.cost = cost.or(l.cost);
        if self.tty {
            self.draw(false);
            return;
        }
        // Plain output: each new action once, at most one line a second per session.
        let (Some(a), false) = (action, self.quiet) else {
            return;
        };
        let due = l
            .printed
            .as_ref()
            .is_none_or(|(p, t)| p != a && t.elapsed() >= Duration::from_secs(1));
        if due {
            l.printed = Some((a.clone(), Instant::now()));
            let text = format!("· {a}");
            self.session_line(dir, &text);
        }
    }
}

/// `  ⠿ dir · 3m · attempt 2 · Edit src/lib.rs · 12 turns · $0.40`.
fn live_text(dir: &str, l: &Live) -> String {
    let mut s = format!(
        "  ⠿ {dir} · {} · attempt {}",
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
    s
}

/// The thought's name, for line prefixes.
fn short(dir: &str) -> &str {
    dir.rsplit('/').next().unwrap_or(dir)
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
                answers,
                ..
            } => {
                self.live.insert(
                    dir.clone(),
                    Live {
                        attempt: *attempt,
                        started: Instant::now(),
                        action: None,
                        turns: None,
                        cost: None,
                        printed: None,
                    },
                );
                self.line(Console::claimed_line(
                    dir,
                    title,
                    worker,
                    *attempt,
                    answers.as_deref(),
                ));
            }
            Event::NoWork { .. } if self.no_work_said => {}
            Event::NoWork { reason, .. } => self.line(format!(
                "no work: {}",
                reason
                    .as_deref()
                    .unwrap_or("nothing in the backlog can be claimed now")
            )),
            Event::Waiting { until } => {
                self.line(format!("waiting for a retry delay, until {until}"))
            }
            Event::WorktreeReady { dir, path, branch, .. } => {
                let t = format!("worktree {} on {branch}", path.display());
                self.session_line(dir, &t)
            }
            Event::AgentStarted {
                dir, agent, log, ..
            } => {
                if let Some(l) = self.live.get_mut(dir) {
                    l.started = Instant::now();
                }
                let t = format!("agent {agent} started; transcript: {}", log.display());
                self.session_line(dir, &t);
            }
            Event::AgentProgress {
                dir,
                action,
                turns,
                cost_usd,
            } => self.progress(dir, action.as_ref(), *turns, *cost_usd),
            Event::AgentFinished {
                dir,
                ending,
                duration,
                stats,
            } => {
                let mut s = format!(
                    "agent {ending} after {}",
                    humanize(Duration::from_secs(duration.as_secs()))
                );
                if let Some(t) = stats.turns {
                    s.push_str(&format!(", {t} turns"));
                }
                if let Some(c) = stats.cost_usd {
                    s.push_str(&format!(", ${c:.2}"));
                }
                self.session_line(dir, &s);
            }
            Event::Verified { dir, ok, problems } => {
                if *ok {
                    self.session_line(dir, "verified");
                } else {
                    for p in problems {
                        let t = format!("rejected: {p}");
                        self.session_line(dir, &t);
                    }
                }
            }
            Event::BranchPushed { dir, branch } => {
                let t = format!("pushed {branch}");
                self.session_line(dir, &t)
            }
            Event::WipKept {
                dir,
                reference,
                files,
                lines,
                ..
            } => {
                let t = format!(
                    "kept its work in progress on {reference} ({files} file(s), {lines} line(s)): the next attempt goes on from it"
                );
                self.session_line(dir, &t)
            }
            Event::PrOpened { dir, url } => {
                let t = format!("pull request: {url}");
                self.session_line(dir, &t)
            }
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
                self.live.remove(dir);
                if *disposition == Disposition::Released {
                    self.released += 1;
                }
                self.line(ended_line(dir, *outcome, reason.as_deref(), *disposition, *not_before));
            }
        }
    }
}

/// `dir: outcome: reason (where the entry went)`.
fn ended_line(
    dir: &str,
    outcome: Outcome,
    reason: Option<&str>,
    disposition: Disposition,
    not_before: Option<jiff::Timestamp>,
) -> String {
    let mut s = match outcome {
        Outcome::Success => format!("{dir}: completed"),
        o => format!("{dir}: {}", o.as_str()),
    };
    if let Some(r) = reason {
        s.push_str(&format!(": {r}"));
    }
    s.push_str(match (disposition, not_before) {
        (Disposition::Requeued, Some(_)) => "",
        (Disposition::Released, Some(_)) => "",
        (Disposition::Released, None) | (Disposition::Requeued, None) => " (claim given back)",
        (Disposition::HandoverPending, _) => {
            " (pushed; the pull request will be opened by a later run or sync-prs)"
        }
        (Disposition::Failed, _) => " (failed for good: a human should look)",
        (Disposition::TakenOver, _) => " (taken over by another session: not recorded)",
        (Disposition::Completed, _) => "",
        (Disposition::NeedsInput, _) => {
            " (waits for an answer: a `/tgs answer` comment, or `tgs server backlog answer`; the attempt is not counted)"
        }
    });
    match (disposition, not_before) {
        (Disposition::Requeued, Some(t)) => {
            s.push_str(&format!(" (requeued; next attempt after {t})"))
        }
        (Disposition::Released, Some(t)) => s.push_str(&format!(
            " (claim given back, the attempt not counted; claimable after {t})"
        )),
        _ => {}
    }
    s
}
