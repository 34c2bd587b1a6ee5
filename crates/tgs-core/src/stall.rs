//! Stall detection: an agent that shows no sign of life for
//! `server.stall_timeout` is stopped long before its session timeout.
//!
//! A sign of life is any output on either of its streams (every event of a
//! CLI that speaks a stream of them is a line of output) or any change in
//! its repository (a file written, created or removed, a commit: what a
//! long, quiet build or test run leaves). Output is noted by the pumps that
//! copy it into the transcript, for nothing; the repository is looked at
//! only once the output has been quiet for the whole limit, so a talkative
//! agent never pays for a walk of its tree, and a quiet one pays one walk
//! per limit at most. Works the same for every driver: built-in CLIs, plain
//! commands and adapters.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// When a session's agent last showed a sign of life.
#[derive(Debug)]
pub struct Life {
    start: Instant,
    start_wall: SystemTime,
    /// The last sign of life, in milliseconds after `start`.
    last_ms: AtomicU64,
    repo: PathBuf,
}

impl Life {
    /// Start watching an agent working in `repo` (its repository's top).
    pub fn new(repo: &Path) -> Life {
        Life {
            start: Instant::now(),
            start_wall: SystemTime::now(),
            last_ms: AtomicU64::new(0),
            repo: repo.to_owned(),
        }
    }

    /// The agent wrote something (called by the output pumps).
    pub fn output(&self) {
        self.seen_at(self.start.elapsed());
    }

    fn seen_at(&self, at: Duration) {
        let ms = u64::try_from(at.as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Duration {
        Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// How long the agent has shown no sign of life, if that is `limit` or
    /// more (`None`: it is alive). Walks the repository only when the
    /// output has been quiet for `limit`.
    pub fn stalled(&self, limit: Duration) -> Option<Duration> {
        let now = self.start.elapsed();
        if now.saturating_sub(self.last()) < limit {
            return None;
        }
        let now_wall = SystemTime::now();
        let since = self.start_wall + self.last();
        let recent = now_wall.checked_sub(limit).unwrap_or(since).max(since);
        if let Some(changed) = newest_change(&self.repo, since, recent) {
            let at = changed
                .duration_since(self.start_wall)
                .unwrap_or_default()
                .min(now);
            self.seen_at(at);
        }
        let quiet = now.saturating_sub(self.last());
        (quiet >= limit).then_some(quiet)
    }
}

/// The newest modification time after `since` of anything under `root`
/// (files, directories, links, the `.git` directory included; links not
/// followed), or `None`. Stops at the first one at or after `enough`: the
/// agent is alive, whatever else changed.
pub fn newest_change(root: &Path, since: SystemTime, enough: SystemTime) -> Option<SystemTime> {
    let mut newest: Option<SystemTime> = None;
    for entry in walkdir::WalkDir::new(root).follow_links(false) {
        let Ok(entry) = entry else { continue };
        let Some(modified) = entry.metadata().ok().and_then(|m| m.modified().ok()) else {
            continue;
        };
        if modified > since && newest.is_none_or(|n| modified > n) {
            newest = Some(modified);
            if modified >= enough {
                break;
            }
        }
    }
    newest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn life_in(dir: &Path) -> Life {
        Life::new(dir)
    }

    #[test]
    fn output_is_a_sign_of_life() {
        let dir = tempfile::tempdir().unwrap();
        let life = life_in(dir.path());
        std::thread::sleep(Duration::from_millis(120));
        assert!(life.stalled(Duration::from_millis(100)).is_some());
        life.output();
        assert_eq!(life.stalled(Duration::from_millis(100)), None);
    }

    #[test]
    fn a_change_in_the_repository_is_a_sign_of_life() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        let life = life_in(dir.path());
        std::thread::sleep(Duration::from_millis(150));
        std::fs::write(dir.path().join("a/b/new.txt"), "x").unwrap();
        assert_eq!(life.stalled(Duration::from_millis(100)), None);
        std::thread::sleep(Duration::from_millis(150));
        let quiet = life.stalled(Duration::from_millis(100)).expect("stalled");
        assert!(quiet >= Duration::from_millis(100));
    }

    #[test]
    fn a_removed_file_is_a_change() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/gone.txt"), "x").unwrap();
        let life = life_in(dir.path());
        std::thread::sleep(Duration::from_millis(150));
        std::fs::remove_file(dir.path().join("d/gone.txt")).unwrap();
        assert_eq!(life.stalled(Duration::from_millis(100)), None);
    }

    #[test]
    fn quiet_less_than_the_limit_is_alive() {
        let dir = tempfile::tempdir().unwrap();
        let life = life_in(dir.path());
        assert_eq!(life.stalled(Duration::from_secs(60)), None);
    }
}
