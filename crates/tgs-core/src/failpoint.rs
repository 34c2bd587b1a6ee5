//! Fault points for tests: when `TGS_FAILPOINT` names a step, tgs fails
//! there. By default it kills itself with SIGKILL, exactly as a power cut
//! or an OOM kill would: crash tests stop a writer at every step of a change
//! and check that what is left is consistent and that the next run
//! recovers. With `:panic` the step panics (a bug in tgs), and with `:hang`
//! it blocks for ever, deaf to signals (a thread stuck in a system call).
//!
//! `TGS_FAILPOINT=step` fails the first time `step` is reached;
//! `TGS_FAILPOINT=step#N` the N-th time (a session reaches
//! `shared.committed` once for its claim and once for its outcome);
//! `TGS_FAILPOINT=step#N:panic` panics there instead.

use std::sync::atomic::{AtomicUsize, Ordering};

/// How many times the named step was reached in this process.
static REACHED: AtomicUsize = AtomicUsize::new(0);

/// Fail here if `TGS_FAILPOINT` names this step (and this is its N-th time).
pub fn hit(step: &str) {
    let Some(want) = std::env::var_os("TGS_FAILPOINT") else {
        return;
    };
    let want = want.to_string_lossy();
    let (name, nth, action) = parse(&want);
    if name != step || REACHED.fetch_add(1, Ordering::SeqCst) + 1 != nth {
        return;
    }
    tracing::debug!("failpoint {step}#{nth}: {action}");
    match action {
        "panic" => panic!("failpoint {step}#{nth}"),
        "hang" => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
        // SAFETY: raise(2) has no memory-safety preconditions.
        _ => unsafe {
            libc::raise(libc::SIGKILL);
        },
    }
}

/// `step#N:action` → (`step`, N, `action`); `N` defaults to 1 and the
/// action to `kill`.
fn parse(spec: &str) -> (&str, usize, &str) {
    let (spec, action) = spec.rsplit_once(':').unwrap_or((spec, "kill"));
    match spec.rsplit_once('#') {
        Some((name, n)) => (name, n.parse().unwrap_or(1), action),
        None => (spec, 1, action),
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
    "runner.implemented",
    "runner.branch-pushed",
    "runner.pr-requesting",
    "runner.pr-opened",
    "shared.committed#2",
    "shared.pushed#2",
];

/// The places a panic is injected by the tests (`step:panic`): each must
/// end its session as `crashed: internal error` with the claim given back,
/// and the run must go on. The executor, its output pump, verification and
/// the hand-over.
pub const PANIC_STEPS: &[&str] = &[
    "session.agent-running",
    "session.output",
    "verify.running",
    "runner.handing-over",
];

#[cfg(test)]
mod tests {
    #[test]
    fn specs() {
        assert_eq!(super::parse("a.b"), ("a.b", 1, "kill"));
        assert_eq!(super::parse("a.b#2"), ("a.b", 2, "kill"));
        assert_eq!(super::parse("a.b#x"), ("a.b", 1, "kill"));
        assert_eq!(super::parse("a.b#2:panic"), ("a.b", 2, "panic"));
        assert_eq!(super::parse("a.b:hang"), ("a.b", 1, "hang"));
    }
}
