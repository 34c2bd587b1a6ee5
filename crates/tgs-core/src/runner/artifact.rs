//! The hand-over artifact of a session run without write access (GitHub's
//! "safe outputs"): the agent's job has no token and changes nothing shared;
//! it leaves what it did in a folder that a separate job, which holds the
//! token, checks again and hands over.
//!
//! The folder holds `session.json` (the claim it ran under and how the
//! session went: outcome, reason, figures, the branch's head), `work.bundle`
//! (a git bundle of the work branch from its base, when the session
//! succeeded) and `transcript.log.gz` (the end of the redacted transcript,
//! as the state branch keeps it). Nothing in it is trusted by the job that
//! reads it: the claim is checked against the state, the bundle's head
//! against the record, and the work against the rules, again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::attempt::{WipChange, WorkResult};
use super::outcome::{ProviderCondition, ProviderKind};
use crate::events::{Outcome, SessionStats};
use crate::repo::Repo;
use crate::transcript::Redactor;
use crate::Error;

pub const RECORD_FILE: &str = "session.json";
pub const BUNDLE_FILE: &str = "work.bundle";
pub const TRANSCRIPT_FILE: &str = "transcript.log.gz";
/// The work in progress of a session that ended without work to hand over.
pub const WIP_BUNDLE_FILE: &str = "wip.bundle";
/// The largest `session.json` read (a record is a few KiB).
const MAX_RECORD_BYTES: u64 = 1 << 20;

/// One claim handed out by `tgs server matrix`: what the agent's job needs
/// to run the session and the hand-over job needs to record it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimTicket {
    pub thought: String,
    pub attempt: u32,
    pub claim_id: String,
    /// Who holds the claim (the worker that made it).
    pub worker: String,
    /// A revision's start: the tip of its pull request's branch when it was
    /// claimed (the implement job's checkout must hold it: fetch-depth 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tip: Option<String>,
}

impl ClaimTicket {
    /// The ticket of `entry`'s claim (as the claim's state change left it),
    /// with the revision's start `tip`.
    pub(crate) fn of(entry: &crate::backlog::Entry, tip: Option<String>) -> ClaimTicket {
        ClaimTicket {
            thought: entry.dir.clone(),
            attempt: entry.attempts,
            claim_id: entry.claim_id.clone().unwrap_or_default(),
            worker: entry.claimed_by.clone().unwrap_or_default(),
            tip,
        }
    }
}

/// What a session did, as `session.json` says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub ticket: ClaimTicket,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub stats: SessionStats,
    pub started: jiff::Timestamp,
    pub ended: jiff::Timestamp,
    /// The base commit the work started from.
    pub base: String,
    /// A revision's start (the pull request branch's tip).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tip: Option<String>,
    /// The verified branch and head (success only).
    pub branch: Option<String>,
    pub head: Option<String>,
    pub refund: bool,
    pub final_failure: bool,
    /// The provider's condition (`rate_limited`/`unavailable`), its text and wait.
    pub provider: Option<(String, String, Option<u64>)>,
    /// The transcript's file name where the session ran.
    pub transcript: Option<String>,
    /// Work in progress kept by a session that did not succeed (its
    /// commits in `wip.bundle`), checked again by the hand-over job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wip: Option<RecordedWip>,
    /// The session dropped the thought's work in progress (it conflicted
    /// with the base, or the work is done).
    #[serde(default)]
    pub wip_dropped: bool,
    /// The question the agent asked its humans (outcome `needs_input`),
    /// for the hand-over job to post and record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    /// Where the agent ran (`bubblewrap` or `off`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// Connections the sandbox refused the agent, and a few of their
    /// targets, for the hand-over job's audit.
    #[serde(default)]
    pub egress_denied: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress_targets: Vec<String>,
    /// A bug of tgs's own (a panic) ended the session: humans are told
    /// (when this process wrote the record).
    #[serde(default)]
    pub internal: bool,
}

/// What a record says of its work in progress (all of it the agent's
/// job's word: the head is checked against the bundle, the work against
/// the rules, the text bounded and cleaned).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedWip {
    pub head: String,
    /// How the agent's job says the session ended: shown nowhere; the
    /// hand-over job records its own reading of the outcome instead.
    pub ended: String,
    #[serde(default)]
    pub last_seen: String,
}

impl SessionRecord {
    pub(crate) fn of(
        ticket: &ClaimTicket,
        w: &WorkResult,
        base: &str,
        started: jiff::Timestamp,
        ended: jiff::Timestamp,
    ) -> SessionRecord {
        SessionRecord {
            ticket: ticket.clone(),
            outcome: w.outcome,
            reason: w.reason.clone(),
            stats: w.stats.clone(),
            started,
            ended,
            base: base.to_owned(),
            tip: ticket.tip.clone(),
            branch: w.branch.clone(),
            head: w.head.clone(),
            refund: w.refund,
            final_failure: w.final_failure,
            provider: w.provider.as_ref().map(|c| {
                (
                    c.kind.as_str().to_owned(),
                    c.detail.clone(),
                    c.retry_after.map(|d| d.as_secs()),
                )
            }),
            transcript: w
                .log
                .as_deref()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned()),
            wip: match &w.wip {
                WipChange::Set(k) => Some(RecordedWip {
                    head: k.head.clone(),
                    ended: k.ended.clone(),
                    last_seen: k.last_seen.clone(),
                }),
                _ => None,
            },
            wip_dropped: w.wip == WipChange::Drop,
            question: w.question.clone(),
            sandbox: w.sandbox.map(str::to_owned),
            egress_denied: w.egress_denied,
            egress_targets: w.egress_targets.clone(),
            internal: w.internal,
        }
    }

    /// The result to record, as the dispatcher records any session. The
    /// record is the agent's job's word, so it is data to validate, field
    /// by field: text bounded and stripped of control characters, numbers
    /// finite and bounded, the transcript only the artifact's own file in
    /// `dir` (bounded, redacted again with `redactor`), never a path the
    /// record names; the work is checked again by the caller. A record of
    /// another job's is `untrusted`: the pause it asks of every worker is
    /// bounded (its wait here, the rest in `settle`), and its word on a bug
    /// of tgs's own is not taken.
    pub(crate) fn work_result(
        &self,
        dir: &Path,
        redactor: &Redactor,
        untrusted: bool,
    ) -> WorkResult {
        let agent = clean_text(&self.stats.agent, 80);
        let reason = self
            .reason
            .as_deref()
            .map(|r| clean_text(r, MAX_REASON_CHARS));
        let mut w = WorkResult::new(&agent, self.outcome, reason);
        w.stats = bounded_stats(&self.stats, agent);
        w.branch = self.branch.clone();
        w.head = self.head.clone();
        w.refund = self.refund;
        w.final_failure = self.final_failure;
        w.internal = self.internal && !untrusted;
        w.untrusted = untrusted;
        let max_pause = if untrusted { MAX_PAUSE_SECS } else { u64::MAX };
        // Set only once the hand-over job has checked it (see `safe`).
        w.wip = if self.wip_dropped {
            WipChange::Drop
        } else {
            WipChange::Keep
        };
        w.provider = self
            .provider
            .as_ref()
            .map(|(kind, detail, wait)| ProviderCondition {
                kind: ProviderKind::parse(kind).unwrap_or(ProviderKind::RateLimited),
                detail: clean_text(detail, 300),
                retry_after: wait.map(|s| Duration::from_secs(s.min(max_pause))),
            });
        w.sandbox = match self.sandbox.as_deref() {
            Some("bubblewrap") => Some(super::attempt::sandbox_name(true)),
            Some("off") => Some(super::attempt::sandbox_name(false)),
            _ => None,
        };
        w.egress_denied = self.egress_denied.min(MAX_EGRESS);
        w.egress_targets = self
            .egress_targets
            .iter()
            .take(MAX_EGRESS_TARGETS)
            .map(|t| clean_text(t, 120))
            .collect();
        if self.outcome == Outcome::NeedsInput {
            match self.question.as_deref().map(clean_question) {
                Some(Ok(q)) => w.question = Some(crate::question::fit(redactor.redact(&q))),
                Some(Err(why)) => {
                    w.outcome = Outcome::Failed;
                    w.reason = Some(format!("its question was not taken: {why}"));
                }
                None => {
                    w.outcome = Outcome::Failed;
                    w.reason = Some("its record says it asked a question, but holds none".into());
                }
            }
        }
        if let Some((gz, tail)) = kept_transcript(dir, redactor) {
            w.kept_gz = Some(gz);
            w.log_tail = tail;
            let name = self.transcript.as_deref().filter(|n| {
                crate::report::parse_transcript_name(n).is_some_and(|(name, _, _)| {
                    Some(name.as_str()) == self.ticket.thought.rsplit('/').next()
                })
            });
            let stamp = self.started.strftime("%Y%m%dT%H%M%SZ");
            let own = format!(
                "{}-{stamp}.log",
                self.ticket.thought.rsplit('/').next().unwrap_or("session")
            );
            w.log = Some(PathBuf::from(name.map_or(own, str::to_owned)));
        }
        w
    }
}

/// The most refused connections a record is believed to report.
const MAX_EGRESS: u32 = 1_000_000;
/// Refused targets kept from a record (the audit names a few).
const MAX_EGRESS_TARGETS: usize = 10;

/// The longest reason kept from a record, in characters.
const MAX_REASON_CHARS: usize = 2000;
/// The longest pause an artifact's provider condition can ask for (1 hour):
/// one job's word must not stop every worker for long.
pub(crate) const MAX_PAUSE_SECS: u64 = 3600;
/// The largest compressed transcript read from an artifact.
const MAX_TRANSCRIPT_GZ: u64 = 4 << 20;
/// What one session may report spending, in USD; more is not believed.
const MAX_COST_USD: f64 = 100_000.0;
/// What one session may report in tokens; more is not believed.
const MAX_TOKENS: u64 = 1 << 40;

/// Several lines of at most `max` bytes (their end kept), control
/// characters other than line breaks as spaces.
pub(crate) fn clean_block(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect();
    super::wip::end_of(&flat, max).trim().to_owned()
}

/// A record's question, as a question file's is taken: bounded
/// ([`crate::question::check`]), control characters other than newlines
/// and tabs as spaces.
fn clean_question(text: &str) -> Result<String, String> {
    let q = crate::question::check(text)?;
    Ok(q.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                ' '
            } else {
                c
            }
        })
        .collect())
}

/// One line of at most `max` characters, control characters as spaces.
pub(crate) fn clean_text(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    flat.trim().to_owned()
}

/// The figures a record reports, believed only when finite and bounded.
fn bounded_stats(s: &SessionStats, agent: String) -> SessionStats {
    SessionStats {
        agent,
        exit_code: s.exit_code,
        turns: s.turns.filter(|t| *t <= 1_000_000),
        cost_usd: s
            .cost_usd
            .filter(|c| c.is_finite() && (0.0..=MAX_COST_USD).contains(c)),
        input_tokens: s.input_tokens.filter(|t| *t <= MAX_TOKENS),
        output_tokens: s.output_tokens.filter(|t| *t <= MAX_TOKENS),
        session_id: s.session_id.as_deref().map(|i| clean_text(i, 120)),
    }
}

/// The artifact's own transcript, bounded and redacted again (the agent's
/// job could have put anything there), packed as the state keeps it, and
/// its last lines (for an alert).
fn kept_transcript(dir: &Path, redactor: &Redactor) -> Option<(Vec<u8>, String)> {
    let path = dir.join(TRANSCRIPT_FILE);
    let meta = std::fs::symlink_metadata(&path).ok()?;
    if !meta.is_file() || meta.len() > MAX_TRANSCRIPT_GZ {
        return None;
    }
    let text = crate::archive::unpack(&std::fs::read(&path).ok()?).ok()?;
    let clean = redactor.redact(&String::from_utf8_lossy(&text));
    let tail = clean_block(&clean, TAIL_BYTES);
    Some((crate::archive::repack(clean.as_bytes()).ok()?, tail))
}

/// How much of a transcript's end an alert quotes, in bytes.
const TAIL_BYTES: usize = 8 << 10;

/// Write the artifact of a session into `dir` (created).
pub fn write(
    repo: &Repo,
    dir: &Path,
    record: &SessionRecord,
    log: Option<&Path>,
    whole: Option<&str>,
) -> Result<(), Error> {
    std::fs::create_dir_all(dir)?;
    if let (Some(branch), Some(head)) = (&record.branch, &record.head) {
        // The branch from its base: the hand-over job has the base.
        let r = format!("refs/heads/{branch}");
        bundle(repo, &dir.join(BUNDLE_FILE), &record.base, head, &r)?;
    }
    if let Some(w) = &record.wip {
        let name = super::name_of(&record.ticket.thought)?;
        let r = super::wip::wip_ref(&name);
        bundle(repo, &dir.join(WIP_BUNDLE_FILE), &record.base, &w.head, &r)?;
    }
    if let Some(log) = log {
        std::fs::write(dir.join(TRANSCRIPT_FILE), crate::archive::pack(log, whole)?)?;
    }
    let text = serde_json::to_string_pretty(record).expect("a record serializes");
    std::fs::write(dir.join(RECORD_FILE), text + "\n")?;
    Ok(())
}

/// Bundle `base..head` into `file`, `head` under the ref `name` (set to it).
pub fn bundle(repo: &Repo, file: &Path, base: &str, head: &str, name: &str) -> Result<(), Error> {
    let git = repo.git();
    git.cmd(["update-ref", "--no-deref", name, head]).run()?;
    let out = git
        .cmd([
            "bundle",
            "create",
            "--quiet",
            path_str(file)?,
            name,
            &format!("^{base}"),
        ])
        .output()?;
    if !out.success {
        return Err(Error::Failed(format!(
            "could not bundle {name} ({head}): {}",
            out.stderr.trim()
        )));
    }
    Ok(())
}

/// Read `session.json` of an artifact folder.
pub fn read(dir: &Path) -> Result<SessionRecord, Error> {
    let path = dir.join(RECORD_FILE);
    let meta =
        std::fs::metadata(&path).map_err(|e| Error::Failed(format!("{}: {e}", path.display())))?;
    if meta.len() > MAX_RECORD_BYTES {
        return Err(Error::Failed(format!(
            "{} is too large to be a session record",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(&path)?;
    serde_json::from_str(&text)
        .map_err(|e| Error::Failed(format!("{} is not a session record: {e}", path.display())))
}

/// Bring the bundled work into the repository under a ref of tgs's own and
/// return the head it holds; the bundle is checked first (`git bundle
/// verify`: its base is here, it is whole).
pub fn unbundle(repo: &Repo, dir: &Path, branch: &str) -> Result<String, Error> {
    fetch_bundle(
        repo,
        &dir.join(BUNDLE_FILE),
        &format!("refs/heads/{branch}"),
        &format!("refs/tgs/handover/{branch}"),
    )
}

/// Bring the ref `from` of the bundle `file` into the repository onto `to`
/// and return the commit it holds; the bundle is checked first (`git
/// bundle verify`: its prerequisites are here, it is whole). Used for the
/// work of a session and for a work in progress (the claim job's bundle
/// for the agent's job, the agent's job's for the hand-over).
pub fn fetch_bundle(repo: &Repo, bundle: &Path, from: &str, to: &str) -> Result<String, Error> {
    let meta = std::fs::symlink_metadata(bundle);
    if !meta.is_ok_and(|m| m.is_file()) {
        return Err(Error::Failed(format!(
            "the artifact holds no bundle {}",
            bundle.file_name().unwrap_or_default().to_string_lossy()
        )));
    }
    let b = path_str(bundle)?;
    let check = repo
        .git()
        .cmd(["bundle", "verify", "--quiet", b])
        .output()?;
    if !check.success {
        return Err(Error::Failed(format!(
            "the artifact's bundle is unreadable: {}",
            check.stderr.trim()
        )));
    }
    let spec = format!("+{from}:{to}");
    let out = repo.git().fetch(b, &spec).output()?;
    if !out.success {
        return Err(Error::Failed(format!(
            "the bundle does not hold {from}: {}",
            out.stderr.trim()
        )));
    }
    Ok(repo
        .git()
        .text(["rev-parse", &format!("{to}^{{commit}}")])?)
}

fn path_str(p: &Path) -> Result<&str, Error> {
    p.to_str()
        .ok_or_else(|| Error::Failed(format!("{} is not valid UTF-8", p.display())))
}
