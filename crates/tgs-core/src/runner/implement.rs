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
use std::time::Duration;

use super::artifact::{self, ClaimTicket, SessionRecord};
use super::attempt::{Job, Msg, Shared, WorkResult};
use super::executor;
use crate::events::Outcome;
use crate::repo::Repo;
use crate::thought::ThoughtName;
use crate::worktree;
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
    let wrote = artifact::write(
        sh.repo,
        out,
        &record,
        w.log.as_deref(),
        sh.cfg.transcript_whole.as_deref(),
    );
    if let Err(e) = &wrote {
        // The hand-over says why, rather than finding no record at all.
        let why = format!("tgs could not leave the session's work for its hand-over: {e}");
        let failed = WorkResult::new(&sh.cfg.agent, Outcome::Failed, Some(why));
        let record = SessionRecord::of(ticket, &failed, &job.base, started, clock::now());
        let _ = std::fs::remove_dir_all(out);
        if artifact::write(sh.repo, out, &record, None, None).is_ok() {
            return Ok(());
        }
    }
    wrote
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
    // `<name>.<id>` exactly: a thought's name may hold a dot, not an id.
    let of_this = |file: &str| {
        file.strip_prefix(&earlier)
            .is_some_and(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()))
    };
    worktree::sweep(&all, |file, path| {
        of_this(file) || worktree::untouched_for(path, lease)
    });
    // The id is tgs's own (hex); kept to what a file name may hold.
    let id: String = claim_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(64)
        .collect();
    all.join(format!("{earlier}{id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Earlier folders of the thought go; another thought's, whose name
    /// starts the same and holds a dot, stays.
    #[test]
    fn a_claims_folder_replaces_only_its_thoughts_earlier_ones() {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("git")
            .args(["init", "-q"])
            .arg(dir.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .status()
            .unwrap();
        assert!(ok.success());
        let repo = Repo::discover(dir.path()).unwrap();
        let all = dir.path().join(".git/tgs/artifacts");
        for d in [
            "abc1234-foo.0a1b",
            "abc1234-foo.v2.0c0d",
            "abc1234-foobar.0e0f",
        ] {
            std::fs::create_dir_all(all.join(d)).unwrap();
        }
        let name = ThoughtName::parse("abc1234-foo").unwrap();
        let got = local_dir(&repo, &name, "00ff", Duration::from_secs(3600));
        assert_eq!(got, all.join("abc1234-foo.00ff"));
        let mut left: Vec<String> = std::fs::read_dir(&all)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["abc1234-foo.v2.0c0d", "abc1234-foobar.0e0f"]);
    }
}
