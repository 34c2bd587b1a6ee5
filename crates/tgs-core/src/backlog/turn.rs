//! Taking turns on one machine before racing on the remote.
//!
//! The remote's compare-and-swap is what keeps the shared state right, on any
//! number of machines. But workers on the *same* machine gain nothing from
//! racing one another: every push that loses was work thrown away, on cores
//! the winner needed (with 8 workers on 2 cores, half the claim race's time
//! went to doomed attempts). So before its fetch-apply-push, a worker takes a
//! per-user, per-machine turn for that remote branch: an advisory `flock` on
//! a file named after the remote and branch. Losing to another machine is
//! still handled by the compare-and-swap and its backoff.
//!
//! The turn is only an optimization, so it can never block or break a change:
//! the kernel releases it when its holder dies, a worker that waits too long
//! (a holder stuck on a slow network) goes ahead without it, and anything that
//! keeps it from being taken (no private directory for it) means going ahead
//! without it too. A turn held by a process that is not tgs (an agent's
//! leftover that took it on purpose) is warned of once, naming the holder,
//! and the process goes on without that turn: no state change waits for it.

use std::fs::File;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// A held turn; dropping it (or dying) gives it to the next worker.
#[derive(Debug)]
pub struct Turn {
    _file: File,
}

/// Where turns live: `TGS_LOCK_DIR`, else the user's runtime directory, else
/// the user's cache. Never a shared directory such as /tmp, where another
/// user could plant the file.
pub fn lock_dir() -> Option<PathBuf> {
    let from_env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = from_env("TGS_LOCK_DIR") {
        return Some(d);
    }
    if let Some(d) = from_env("XDG_RUNTIME_DIR") {
        return Some(d.join("tgs"));
    }
    from_env("HOME").map(|h| h.join(".cache").join("tgs").join("locks"))
}

/// The lock file's name for one state branch of one remote.
pub fn file_name(remote_url: &str, branch: &str) -> String {
    let mut h = sha1_smol::Sha1::new();
    // Length-prefixed, so no choice of the two strings can make two keys one.
    h.update(format!("{}:{remote_url}{branch}", remote_url.len()).as_bytes());
    format!("state-{}.lock", &h.digest().to_string()[..16])
}

/// Wait up to `wait` for this machine's turn on `branch` of `remote_url`.
/// `None`: go ahead without one (waited too long, or no place for it).
///
/// While the turn is busy, one waiter at a time stands *on deck* (a second
/// lock) and runs `catch_up` (a fetch) before it waits for the turn itself,
/// so the objects the other workers pushed are already here when its turn
/// comes and the fetch inside the turn has only the last commit to bring.
/// The catching up runs beside the holder's push instead of after it.
pub fn take(
    remote_url: &str,
    branch: &str,
    wait: Duration,
    catch_up: impl FnOnce(),
) -> Option<Turn> {
    take_in(&lock_dir()?, remote_url, branch, wait, catch_up)
}

fn take_in(
    dir: &std::path::Path,
    remote_url: &str,
    branch: &str,
    wait: Duration,
    catch_up: impl FnOnce(),
) -> Option<Turn> {
    if let Err(e) = create_private_dir(dir) {
        tracing::debug!("no turn taken: cannot make {}: {e}", dir.display());
        return None;
    }
    let name = file_name(remote_url, branch);
    if given_up(&dir.join(&name)) {
        return None;
    }
    let turn = open(&dir.join(&name))?;
    match turn.try_lock() {
        Ok(()) => return Some(Turn { _file: turn }),
        Err(std::fs::TryLockError::WouldBlock) => {}
        Err(std::fs::TryLockError::Error(e)) => {
            tracing::debug!("no turn taken: {e}");
            return None;
        }
    }
    let deck_path = dir.join(name.replace(".lock", ".deck"));
    let deck = open(&deck_path);
    for (file, path) in [(Some(&turn), dir.join(&name)), (deck.as_ref(), deck_path)] {
        if let Some(holder) = file.and_then(crate::lockfile::foreign_holder) {
            give_up(&path, &holder);
            return None;
        }
    }
    let deck = deck.and_then(|f| lock_within(f, wait));
    if deck.is_some() {
        catch_up();
    }
    let turn = lock_within(turn, wait);
    // Only now, so that exactly one waiter catches up during each turn.
    drop(deck);
    if turn.is_none() {
        let holder = File::open(dir.join(&name))
            .ok()
            .and_then(|f| crate::lockfile::holder(&f))
            .unwrap_or_else(|| "another process".into());
        tracing::debug!(
            "waited {wait:?} for this machine's turn on {branch}, held by {holder}; going ahead without it"
        );
    }
    turn.map(|f| Turn { _file: f })
}

/// The turn (and deck) files found held by a process that is not tgs: this
/// process goes ahead without them from then on (turns are an
/// optimization), instead of waiting at every state change.
static GIVEN_UP: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn given_up(path: &Path) -> bool {
    GIVEN_UP
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .any(|p| p == path)
}

fn give_up(path: &Path, holder: &str) {
    let mut all = GIVEN_UP.lock().unwrap_or_else(|p| p.into_inner());
    if !all.iter().any(|p| p == path) {
        all.push(path.to_owned());
        tracing::warn!(
            "this machine's turn lock {} is held by {holder}, which is not tgs: going on without it",
            path.display()
        );
    }
}

fn open(path: &std::path::Path) -> Option<File> {
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .inspect_err(|e| tracing::debug!("no turn taken: cannot open {}: {e}", path.display()))
        .ok()
}

/// Lock `file`, waiting at most `wait`. A blocking lock in a helper thread,
/// so the kernel wakes us the moment it is free (no polling) and we can still
/// stop waiting: if we give up, the thread's later `send` fails or lands in a
/// dropped channel, and the file, with its lock, is dropped there.
fn lock_within(file: File, wait: Duration) -> Option<File> {
    if file.try_lock().is_ok() {
        return Some(file);
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        if file.lock().is_ok() {
            let _ = tx.send(file);
        }
    });
    rx.recv_timeout(wait).ok()
}

fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_depend_on_remote_and_branch_only() {
        let a = file_name("/srv/o.git", "main");
        assert_eq!(a, file_name("/srv/o.git", "main"));
        assert_ne!(a, file_name("/srv/o.git", "state"));
        assert_ne!(a, file_name("/srv/p.git", "main"));
        // No separator trick makes two keys one.
        assert_ne!(file_name("ab", "c"), file_name("a", "bc"));
        assert!(a.starts_with("state-") && a.ends_with(".lock"));
    }

    #[test]
    fn one_turn_at_a_time_and_the_next_one_wakes() {
        let dir = tempfile::tempdir().unwrap();
        let locks = dir.path().join("locks");
        let short = Duration::from_millis(50);
        let none = || {};
        let first = take_in(&locks, "/o.git", "main", short, none).expect("a free turn");
        let mut caught_up = false;
        let second = take_in(&locks, "/o.git", "main", short, || caught_up = true);
        assert!(second.is_none(), "taken");
        assert!(caught_up, "a waiter catches up while it waits");
        // Another branch is another turn.
        assert!(take_in(&locks, "/o.git", "state", short, none).is_some());
        // A waiter gets the turn as soon as it is given back; only one waiter
        // at a time is on deck.
        let l = locks.clone();
        let waiter = std::thread::spawn(move || {
            let deck = std::sync::atomic::AtomicBool::new(false);
            let t = take_in(&l, "/o.git", "main", Duration::from_secs(30), || {
                deck.store(true, std::sync::atomic::Ordering::SeqCst)
            });
            t.is_some() && deck.load(std::sync::atomic::Ordering::SeqCst)
        });
        std::thread::sleep(Duration::from_millis(100));
        let mut third_caught_up = false;
        let third = take_in(&locks, "/o.git", "main", short, || third_caught_up = true);
        assert!(third.is_none() && !third_caught_up, "the deck is taken");
        drop(first);
        assert!(waiter.join().unwrap());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("locks"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "private to the user");
    }

    #[test]
    fn a_turn_held_by_another_program_is_not_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let locks = dir.path().join("locks");
        create_private_dir(&locks).unwrap();
        let path = locks.join(file_name("/o.git", "held"));
        let mut holder = std::process::Command::new("flock")
            .arg(&path)
            .args(["sleep", "60"])
            .spawn()
            .unwrap();
        while open(&path).unwrap().try_lock().is_ok() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let asked = std::time::Instant::now();
        let mut caught_up = false;
        let turn = take_in(&locks, "/o.git", "held", Duration::from_secs(600), || {
            caught_up = true
        });
        let _ = holder.kill();
        let _ = holder.wait();
        assert!(turn.is_none() && !caught_up);
        assert!(asked.elapsed() < Duration::from_secs(60), "waited for it");
        assert!(given_up(&path), "and not again");
    }

    #[test]
    fn no_place_for_it_means_no_turn() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        assert!(take_in(&file.join("locks"), "/o.git", "main", Duration::ZERO, || {}).is_none());
    }
}
