//! Crash points for tests: when `TGS_FAILPOINT` names a step, tgs kills
//! itself with SIGKILL there, exactly as a power cut or an OOM kill would.
//! Crash tests use it to stop a writer at every step of a change and check
//! that what is left is consistent and that the next run recovers.

/// Die here if `TGS_FAILPOINT` names this step.
pub fn hit(step: &str) {
    if std::env::var_os("TGS_FAILPOINT").is_some_and(|v| v == step) {
        tracing::debug!("failpoint {step}: killing self");
        // SAFETY: raise(2) has no memory-safety preconditions.
        unsafe {
            libc::raise(libc::SIGKILL);
        }
    }
}

/// The steps of a backlog change, in order, for crash tests to iterate.
pub const BACKLOG_STEPS: &[&str] = &[
    "backlog.locked",
    "backlog.temp-written",
    "backlog.renamed",
    "commit.blob-written",
    "commit.created",
    "commit.ref-updated",
];
