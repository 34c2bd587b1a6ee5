//! Disk use: an agent that fills the disk is stopped before it stops the
//! machine (and tgs's own writes of the state and transcripts with it).
//!
//! The sandbox bounds each file (`RLIMIT_FSIZE`) and each private scratch
//! filesystem (`--size` on its tmpfs), but not how many files an agent
//! writes into its repository, which is on the real disk. tgs notes the
//! free space of the repository's filesystem when the session starts and
//! looks again at most once a second (one `statvfs`, no walk): a session
//! under which the filesystem lost more than `server.sandbox.limits.disk_mb`,
//! or that brought it below its floor, is stopped as failed, with why.
//! What other processes write in the meantime counts too: the figure is a
//! bound on the machine's risk, not a measure of the agent.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Below this much free space (or 1% of the filesystem, if less), a
/// session that has been writing is stopped.
const FLOOR: u64 = 256 << 20;
/// What a session must have written before the floor stops it (a disk
/// nearly full before it started is not its doing).
const WRITTEN_BEFORE_FLOOR: u64 = 64 << 20;
/// How often the free space is looked at.
const EVERY: Duration = Duration::from_secs(1);

/// Free and total bytes of the filesystem holding `path` (for an
/// unprivileged user), or `None` when it cannot be read.
pub fn space(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let unit = st.f_frsize as u64;
    Some((
        (st.f_bavail as u64).saturating_mul(unit),
        (st.f_blocks as u64).saturating_mul(unit),
    ))
}

/// Why a session whose filesystem went from `start_free` to `free` bytes
/// free (of `total`) must stop, given `limit` bytes it may take; `None`
/// while it may go on. Pure, for testing.
pub fn verdict(start_free: u64, free: u64, total: u64, limit: u64) -> Option<String> {
    let taken = start_free.saturating_sub(free);
    let mib = |b: u64| b >> 20;
    if taken > limit {
        return Some(format!(
            "the agent's repository's filesystem lost {} MiB during the session, more than server.sandbox.limits.disk_mb ({} MiB)",
            mib(taken),
            mib(limit)
        ));
    }
    let floor = FLOOR.min(total / 100);
    (free < floor && taken > WRITTEN_BEFORE_FLOOR).then(|| {
        format!(
            "the disk holding the agent's repository is nearly full ({} MiB free, {} MiB taken during the session)",
            mib(free),
            mib(taken)
        )
    })
}

/// The disk use of one session.
#[derive(Debug)]
pub struct DiskWatch {
    path: PathBuf,
    limit: u64,
    start_free: u64,
    last: Instant,
}

impl DiskWatch {
    /// Watch the filesystem of `path`, which may lose `limit` bytes; `None`
    /// when its free space cannot be read (nothing is watched then).
    pub fn new(path: &Path, limit: u64) -> Option<DiskWatch> {
        let (free, _) = space(path)?;
        Some(DiskWatch {
            path: path.to_owned(),
            limit,
            start_free: free,
            last: Instant::now(),
        })
    }

    /// Why the session must stop, at most once a second; `None` otherwise.
    pub fn check(&mut self) -> Option<String> {
        if self.last.elapsed() < EVERY {
            return None;
        }
        self.last = Instant::now();
        let (free, total) = space(&self.path)?;
        verdict(self.start_free, free, total, self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = 1 << 30;
    const M: u64 = 1 << 20;

    #[test]
    fn a_session_may_take_its_limit_and_not_the_last_of_the_disk() {
        assert_eq!(verdict(50 * G, 45 * G, 100 * G, 10 * G), None);
        let why = verdict(50 * G, 39 * G, 100 * G, 10 * G).unwrap();
        assert!(
            why.contains("lost 11264 MiB") && why.contains("(10240 MiB)"),
            "{why}"
        );
        // Nearly full, and the session wrote: stopped.
        let why = verdict(G, 100 * M, 100 * G, 10 * G).unwrap();
        assert!(why.contains("nearly full (100 MiB free"), "{why}");
        // Nearly full before it started: not its doing.
        assert_eq!(verdict(200 * M, 190 * M, 100 * G, 10 * G), None);
        // A small filesystem's floor is 1% of it.
        assert_eq!(verdict(G, 20 * M, G, 10 * G), None);
        // Space freed during the session is no loss.
        assert_eq!(verdict(G, 2 * G, 100 * G, 10 * G), None);
    }

    #[test]
    fn the_space_of_a_real_directory_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let (free, total) = space(dir.path()).unwrap();
        assert!(total > 0 && free <= total);
        assert!(space(Path::new("/nonexistent/x")).is_none());
    }
}
