//! The implement step, the second of every session's three (claim,
//! implement, hand over), the same for `tgs server run` and for the GitHub
//! Actions matrix's agent job: run the claimed session (see `executor`) and
//! leave what it did as an artifact (see `artifact`): the session record, a
//! bundle of the work or of the work in progress, the end of the transcript.
//!
//! Nothing shared is changed here (no state, no remote, no forge): what the
//! session made is the agent's, so it is untrusted input for the hand-over
//! step (`accept`), which checks it again whichever process wrote it. A
//! local run writes its artifacts in its git directory, out of the agent's
//! sight (the sandbox hides the user's repository but its objects); the
//! matrix's agent job in a folder it uploads.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::time::{Duration, SystemTime};

use super::artifact::{self, ClaimTicket, SessionRecord};
use super::attempt::{Job, Msg, Shared};
use super::executor;
use crate::repo::Repo;
use crate::thought::ThoughtName;
use crate::{clock, Error};

/// Run the session of `job`, claimed as `ticket`, and write its artifact
/// into `out` (created; an earlier one there is replaced). Events go to
/// `tx`; the caller sends the session's end.
///
/// Errors: only the artifact's own (it cannot be written): the session's
/// problems are its record's outcome and reason. The hand-over step reads
/// a missing artifact as a session that crashed.
pub(crate) fn implement(
    sh: &Shared<'_>,
    ticket: &ClaimTicket,
    job: &Job,
    out: &Path,
    tx: &Sender<Msg>,
) -> Result<(), Error> {
    if out.exists() {
        std::fs::remove_dir_all(out)?;
    }
    let started = clock::now();
    let mut w = executor::run(sh, job, tx);
    // What became of the work in progress is said in the reason: the record
    // carries no other text of it.
    if let Some(note) = w.wip_note.take() {
        w.add_note(note);
    }
    let record = SessionRecord::of(ticket, &w, &job.base, started, clock::now());
    artifact::write(
        sh.repo,
        out,
        &record,
        w.log.as_deref(),
        sh.cfg.transcript_whole.as_deref(),
    )
}

/// Where a local run leaves the artifact of `name`'s session claimed as
/// `claim_id`: `<git dir>/tgs/artifacts/<name>.<claim id>`, one folder a
/// claim (a session whose lease another session of this clone took over
/// must not find the newer one's artifact as its own).
///
/// Folders nothing will hand over are removed on the way (best effort):
/// earlier claims' of this thought, and any older than `lease` (no claim
/// outlives its lease), left by a run that was killed.
pub(crate) fn local_dir(
    repo: &Repo,
    name: &ThoughtName,
    claim_id: &str,
    lease: Duration,
) -> PathBuf {
    let all = repo.common_dir().join("tgs").join("artifacts");
    let earlier = format!("{}.", name.as_str());
    let now = SystemTime::now();
    for d in std::fs::read_dir(&all).into_iter().flatten().flatten() {
        let stale = d
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age > lease));
        if stale || d.file_name().to_string_lossy().starts_with(&earlier) {
            if let Err(e) = std::fs::remove_dir_all(d.path()) {
                tracing::warn!("{}: {e}", d.path().display());
            }
        }
    }
    // The id is tgs's own (hex); kept to what a file name may hold.
    let id: String = claim_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(64)
        .collect();
    all.join(format!("{earlier}{id}"))
}
