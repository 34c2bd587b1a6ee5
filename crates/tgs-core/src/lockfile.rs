//! Advisory file locks with a bound on the wait: every lock tgs takes is
//! given up after a while with an error naming who holds it, so a process
//! that holds one for ever (an agent's leftover that took it on purpose, a
//! stuck tgs) never hangs every later run. A lock held by a process that is
//! not tgs fails at once: only tgs takes tgs's locks, so such a holder will
//! not give it back. The kernel frees a lock when its holder dies.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::Error;

/// Lock `path` (created if missing) exclusively, waiting at most `timeout`.
///
/// Errors: [`Error::LockTimeout`] naming the holding process when it can be
/// found (`/proc/locks`), or the I/O error that opening or locking met.
pub fn lock(path: &Path, timeout: Duration) -> Result<File, Error> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    let start = Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            // Only tgs takes tgs's locks: any other holder (an agent's
            // leftover that took it on purpose) will not give it back.
            Err(std::fs::TryLockError::WouldBlock) if foreign_holder(&file).is_some() => {
                return Err(Error::LockHeld {
                    path: path.to_owned(),
                    holder: foreign_holder(&file).unwrap_or_default(),
                })
            }
            Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < timeout => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::LockTimeout {
                    path: path.to_owned(),
                    holder: holder(&file),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
    }
}

/// `process 1234 (sleep)`: who holds a lock on `file`, from `/proc/locks`.
pub fn holder(file: &File) -> Option<String> {
    holder_pid(file).map(describe)
}

/// Who holds a lock on `file`, when that is not a tgs (the same binary as
/// this process): `process 1234 (sleep)`. None when the holder is a tgs or
/// cannot be told.
pub fn foreign_holder(file: &File) -> Option<String> {
    let pid = holder_pid(file)?;
    let exe = |p: String| std::fs::canonicalize(p).ok();
    let theirs = exe(format!("/proc/{pid}/exe"));
    // Another user's process (unreadable link) is not judged.
    (theirs.is_some() && theirs != exe("/proc/self/exe".into())).then(|| describe(pid))
}

fn holder_pid(file: &File) -> Option<u32> {
    let meta = file.metadata().ok()?;
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    holder_in(&locks, meta.ino())
}

fn describe(pid: u32) -> String {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    match comm.trim() {
        "" => format!("process {pid}"),
        name => format!("process {pid} ({name})"),
    }
}

/// The pid holding a lock on inode `ino` in `/proc/locks` text: lines such
/// as `1: FLOCK  ADVISORY  WRITE 1234 00:2a:5678 0 EOF`.
fn holder_in(locks: &str, ino: u64) -> Option<u32> {
    locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // A waiter's line has `->` after the number.
        let f = if f.get(1) == Some(&"->") {
            &f[1..]
        } else {
            &f[..]
        };
        let inode = f.get(5)?.rsplit(':').next()?.parse::<u64>().ok()?;
        (inode == ino && f.get(1) != Some(&"->")).then(|| f.get(4)?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_locks_lines_are_read() {
        let text = "1: FLOCK  ADVISORY  WRITE 4321 00:2a:77 0 EOF\n2: POSIX  ADVISORY  WRITE 99 fd:01:5 0 EOF\n";
        assert_eq!(holder_in(text, 77), Some(4321));
        assert_eq!(holder_in(text, 5), Some(99));
        assert_eq!(holder_in(text, 8), None);
    }

    #[test]
    fn a_lock_held_elsewhere_times_out_naming_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let mut child = std::process::Command::new("flock")
            .arg(&path)
            .args(["sleep", "30"])
            .spawn()
            .unwrap();
        let start = Instant::now();
        while lock(&path, Duration::ZERO).is_ok() {
            // Not taken yet by the child: give it back and wait.
            assert!(start.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(20));
        }
        // A holder that is not tgs will never give it back: no waiting.
        let asked = Instant::now();
        let e = lock(&path, Duration::from_secs(600)).unwrap_err();
        assert!(
            asked.elapsed() < Duration::from_secs(60),
            "waited for a foreign holder"
        );
        let _ = child.kill();
        let _ = child.wait();
        let said = e.to_string();
        assert!(
            said.contains("x.lock")
                && said.contains("held by process")
                && said.contains("(flock), which is not tgs"),
            "{said}"
        );
    }
}
