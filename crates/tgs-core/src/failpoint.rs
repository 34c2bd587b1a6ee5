//! Crash points for tests: when `TGS_FAILPOINT` names a step, tgs kills
//! itself with SIGKILL there, exactly as a power cut or an OOM kill would.
//! Crash tests use it to stop a writer at every step of a change and check
//! that what is left is consistent and that the next run recovers.
//!
//! `TGS_FAILPOINT=step` dies the first time `step` is reached;
//! `TGS_FAILPOINT=step#N` the N-th time (a session reaches
//! `shared.committed` once for its claim and once for its outcome).

use std::sync::atomic::{AtomicUsize, Ordering};

/// How many times the named step was reached in this process.
static REACHED: AtomicUsize = AtomicUsize::new(0);

/// Die here if `TGS_FAILPOINT` names this step (and this is its N-th time).
pub fn hit(step: &str) {
    let Some(want) = std::env::var_os("TGS_FAILPOINT") else {
        return;
    };
    let want = want.to_string_lossy();
    let (name, nth) = parse(&want);
    if name != step || REACHED.fetch_add(1, Ordering::SeqCst) + 1 != nth {
        return;
    }
    tracing::debug!("failpoint {step}#{nth}: killing self");
    // SAFETY: raise(2) has no memory-safety preconditions.
    unsafe {
        libc::raise(libc::SIGKILL);
    }
}

/// `step#N` → (`step`, N); `step` → (`step`, 1).
fn parse(spec: &str) -> (&str, usize) {
    match spec.rsplit_once('#') {
        Some((name, n)) => (name, n.parse().unwrap_or(1)),
        None => (spec, 1),
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

/// The steps of a server session, in order: the claim committed and not
/// pushed, pushed; the agent running; the branch pushed; the pull request
/// requested, opened; the outcome committed and not pushed, pushed.
pub const SESSION_STEPS: &[&str] = &[
    "shared.committed#1",
    "shared.pushed#1",
    "session.agent-running",
    "runner.branch-pushed",
    "runner.pr-requesting",
    "runner.pr-opened",
    "shared.committed#2",
    "shared.pushed#2",
];

#[cfg(test)]
mod tests {
    #[test]
    fn specs() {
        assert_eq!(super::parse("a.b"), ("a.b", 1));
        assert_eq!(super::parse("a.b#2"), ("a.b", 2));
        assert_eq!(super::parse("a.b#x"), ("a.b", 1));
    }
}
