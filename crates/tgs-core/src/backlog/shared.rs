//! The backlog as shared state on a branch, for many workers on many clones.
//!
//! A change is a compare-and-swap on the state branch of the remote: fetch
//! the tip, apply the change (a pure function) to the backlog found there,
//! commit on top of that tip (objects written in-process, see `objects`, or
//! by `fast-import`), push. A push that is not a fast
//! forward is rejected by the remote: another worker got there first, so we
//! fetch again and re-apply the same change to the fresher state, after a
//! jittered, growing pause. There is never a textual merge of the JSON, and
//! the local branch is only ever fast-forwarded, so no worker can be left on
//! a diverged branch, a half-made commit or a held lock.
//!
//! Without a remote the same loop runs against the local branch ref, with
//! `update-ref`'s compare-and-swap in place of the push. Workers of one
//! machine take turns around each attempt (see `turn`), so only workers on
//! different machines ever lose a push to each other.

use std::time::Duration;

use super::store::{self, Applied, Change, BACKLOG_PATH};
use super::Backlog;
use crate::git::{self, Git};
/// The record files' texts at a tip, by path (a missing file is absent).
type RecordTexts = std::collections::HashMap<String, String>;
use crate::repo::Repo;
use crate::Error;

/// How a push of a state commit went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushResult {
    Pushed,
    /// The remote moved on: fetch and try again.
    Stale,
    /// The remote refused for good (protected branch, hook): a human must act.
    Refused(String),
}

/// Whether git's message says another process held or moved a ref it was
/// updating (`cannot lock ref ...: is at X but expected Y`).
fn lost_ref_race(message: &str) -> bool {
    [
        "cannot lock ref",
        "but expected",
        "unable to create",
        "File exists",
    ]
    .iter()
    .any(|s| message.contains(s))
}

/// Read `git push --porcelain` output for the one ref pushed.
pub fn parse_push_porcelain(stdout: &str) -> Option<PushResult> {
    for line in stdout.lines() {
        let mut parts = line.split('\t');
        let (Some(flag), Some(_refs), Some(summary)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        return Some(match flag {
            " " | "+" | "-" | "*" | "=" => PushResult::Pushed,
            "!" if summary.starts_with("[rejected]") => PushResult::Stale,
            // Another push held or moved the ref at the same moment: a lost race too.
            "!" if [
                "stale info",
                "fetch first",
                "failed to update ref",
                "cannot lock ref",
                "failed to lock",
                "incorrect old value",
            ]
            .iter()
            .any(|s| summary.contains(s)) =>
            {
                PushResult::Stale
            }
            "!" => PushResult::Refused(summary.trim().to_owned()),
            _ => continue,
        });
    }
    None
}

/// Where the state lives and how to reach it.
#[derive(Debug)]
pub struct SharedState<'r> {
    repo: &'r Repo,
    branch: String,
    /// `None`: local only (compare-and-swap on the local ref).
    remote: Option<String>,
    /// How many times to try before giving up.
    pub max_tries: u32,
    /// The first pause after a lost race; it doubles up to `max_pause`.
    pub first_pause: Duration,
    pub max_pause: Duration,
    /// Where commits wait to be published (one ref per process, deleted after).
    scratch_ref: String,
    ident: std::sync::OnceLock<String>,
    checked_out: std::sync::OnceLock<bool>,
    local_tip: std::sync::Mutex<Option<String>>,
    /// Who makes the changes, for the audit log.
    actor: String,
    /// The remote's URL, naming this machine's turn on it (see `turn`).
    remote_url: Option<String>,
    /// How long to wait for the turn before going ahead without it.
    pub turn_wait: Duration,
    /// The object database in-process, `None` where git processes must do.
    objects: std::sync::OnceLock<Option<crate::objects::Objects>>,
    /// Read-only use: fetch once per process (see [`SharedState::read_only`]).
    single_fetch: bool,
    /// The ref the last fetch left the state in, when `single_fetch`.
    fetched: std::sync::Mutex<Option<String>>,
}

/// How an attempt reads the state: in-process, or a `cat-file` started early.
enum Reader<'a> {
    InProcess(&'a crate::objects::Objects),
    Process(git::StateReader),
}

/// How an attempt writes its commit: in-process, or a `fast-import` started early.
enum Writer<'a> {
    InProcess(&'a crate::objects::Objects),
    Process(git::FastImport),
}

impl<'r> SharedState<'r> {
    pub fn new(repo: &'r Repo, branch: impl Into<String>, remote: Option<String>) -> Self {
        SharedState {
            repo,
            branch: branch.into(),
            remote,
            max_tries: 40,
            first_pause: Duration::from_millis(5),
            max_pause: Duration::from_secs(2),
            scratch_ref: format!("refs/tgs/scratch/{}", std::process::id()),
            ident: std::sync::OnceLock::new(),
            checked_out: std::sync::OnceLock::new(),
            local_tip: std::sync::Mutex::new(None),
            actor: crate::clock::default_worker_id(),
            remote_url: None,
            turn_wait: Duration::from_secs(30),
            objects: std::sync::OnceLock::new(),
            single_fetch: false,
            fetched: std::sync::Mutex::new(None),
        }
    }

    /// For a command that only reads: the state is fetched once, and every
    /// read of this process (backlog, records, transcripts) sees that one
    /// state, until [`SharedState::refresh`]. Changes always fetch afresh.
    pub fn read_only(mut self) -> Self {
        self.single_fetch = true;
        self
    }

    /// Fetch again on the next read (for a reader that watches the state).
    pub fn refresh(&self) {
        *self.fetched.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Take turns with the other workers of this machine on this remote
    /// before each attempt (see `turn`): `url` names the remote.
    pub fn with_remote_url(mut self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.remote_url = (!url.is_empty()).then_some(url);
        self
    }

    /// Tell the state whether its branch is the one checked out (saves a git call).
    pub fn with_checked_out(self, yes: bool) -> Self {
        let _ = self.checked_out.set(yes);
        self
    }

    pub fn with_actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = actor.into();
        self
    }

    pub fn branch(&self) -> &str {
        &self.branch
    }

    pub fn remote(&self) -> Option<&str> {
        self.remote.as_deref()
    }

    fn git(&self) -> &Git {
        self.repo.git()
    }

    fn remote_ref(&self) -> Option<String> {
        self.remote
            .as_ref()
            .map(|r| format!("refs/remotes/{r}/{}", self.branch))
    }

    fn local_ref(&self) -> String {
        format!("refs/heads/{}", self.branch)
    }

    /// Fetch the state branch; returns the ref that now holds the freshest
    /// state (the remote-tracking ref, or the local branch when the remote
    /// has no state branch yet or there is no remote).
    fn fetch_ref(&self) -> Result<String, Error> {
        if !self.single_fetch {
            return self.fetch_ref_with(false);
        }
        let mut fetched = self.fetched.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = fetched.as_ref() {
            return Ok(r.clone());
        }
        let r = self.fetch_ref_with(false)?;
        *fetched = Some(r.clone());
        Ok(r)
    }

    /// `background`: a fetch that catches up while another worker of this
    /// machine has the turn; it yields the CPU to that worker.
    fn fetch_ref_with(&self, background: bool) -> Result<String, Error> {
        let (Some(remote), Some(rref)) = (&self.remote, self.remote_ref()) else {
            return Ok(self.local_ref());
        };
        if self.fetch_once(remote, &rref, background)? {
            return Ok(rref);
        }
        if let Some(last) = self.last_seen(&rref) {
            // Another tgs of this clone may have just made the branch (its
            // tracking ref is written after its push): ask once more.
            if self.fetch_once(remote, &rref, background)? {
                return Ok(rref);
            }
            return Err(self.gone(remote, &last));
        }
        Ok(self.local_ref())
    }

    /// Fetch the state branch into `rref`: `Ok(false)` when the remote has
    /// no such branch.
    fn fetch_once(&self, remote: &str, rref: &str, background: bool) -> Result<bool, Error> {
        // Other tgs processes of this clone update the same tracking ref
        // (a push writes it too): git's lock on it is a race lost, not a
        // failure; whoever won wrote a state at least as fresh.
        let mut tries = 0;
        loop {
            match self.fetch_attempt(remote, rref, background) {
                Err(Error::Failed(m)) if tries < 8 && lost_ref_race(&m) => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(fastrand::u64(5..=40)));
                }
                other => return other,
            }
        }
    }

    fn fetch_attempt(&self, remote: &str, rref: &str, background: bool) -> Result<bool, Error> {
        let spec = format!("+refs/heads/{}:{rref}", self.branch);
        let mut cmd = self.git().cmd([
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "--no-auto-gc",
            "--no-show-forced-updates",
            // Nor a look for submodule commits, which reads the whole index.
            "--no-recurse-submodules",
            remote,
            &spec,
        ]);
        if background {
            cmd = cmd.background();
        }
        let out = cmd.output()?;
        if out.success {
            return Ok(true);
        }
        if out.stderr.contains("couldn't find remote ref") {
            return Ok(false);
        }
        Err(Error::Failed(format!(
            "could not fetch the state branch {} from {remote}: {}",
            self.branch,
            out.stderr.trim()
        )))
    }

    /// The commit `rref` (the remote-tracking ref) still names: the state
    /// this clone last fetched, kept by git when the branch went away.
    fn last_seen(&self, rref: &str) -> Option<String> {
        let out = self
            .git()
            .cmd([
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{rref}^{{commit}}"),
            ])
            .output()
            .ok()?;
        out.success
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// The state branch existed (this clone fetched it) and is gone from the
    /// remote: reading it as empty would queue every thought again and push
    /// over branches of open pull requests, so it is an error.
    fn gone(&self, remote: &str, last: &str) -> Error {
        Error::Setup {
            message: format!(
                "the state branch {} is gone from {remote}, though this clone last fetched it at {}",
                self.branch,
                &last[..last.len().min(12)]
            ),
            hint: Some(format!(
                "if it was deleted by mistake, `tgs server state restore` pushes the last state this clone knows back to {remote}; if you removed it on purpose to start afresh, forget it here with `git update-ref -d refs/remotes/{remote}/{}`",
                self.branch
            )),
        }
    }

    /// Push the state this clone last fetched back to the remote, where the
    /// state branch is gone (`tgs server state restore`). Returns the commit
    /// restored. Errors: no remote, the branch is on the remote (nothing to
    /// restore), this clone never fetched it, or the push fails (the push
    /// only creates the branch: one that reappeared meanwhile is kept).
    pub fn restore(&self) -> Result<String, Error> {
        let (Some(remote), Some(rref)) = (self.remote.as_deref(), self.remote_ref()) else {
            return Err(Error::invalid(
                "the state has no remote: there is nothing to restore",
            ));
        };
        match self.fetch_ref_with(false) {
            Ok(_) => {
                return Err(Error::invalid(format!(
                    "the state branch {} is on {remote}: there is nothing to restore",
                    self.branch
                )))
            }
            Err(Error::Setup { .. }) => {}
            Err(e) => return Err(e),
        }
        let last = self.last_seen(&rref).ok_or_else(|| {
            Error::invalid(format!(
                "this clone never fetched the state branch {}: there is nothing to restore",
                self.branch
            ))
        })?;
        let lease = format!("--force-with-lease=refs/heads/{}:", self.branch);
        let spec = format!("{last}:refs/heads/{}", self.branch);
        let out = self
            .git()
            .cmd(["push", "--quiet", "--no-verify", &lease, remote, &spec])
            .output()?;
        if !out.success {
            return Err(Error::Failed(format!(
                "could not push {} to {remote}: {}",
                self.branch,
                out.stderr.trim()
            )));
        }
        Ok(last)
    }

    /// Fetch, then read the tip, the backlog file at it and the local
    /// branch's tip, in one process.
    fn fetch_state(&self) -> Result<(Option<String>, Option<String>), Error> {
        let reader = self.reader()?;
        let (tip, text, _) = self.fetch_state_using(reader, &[])?;
        Ok((tip, text))
    }

    fn objects(&self) -> Option<&crate::objects::Objects> {
        self.objects
            .get_or_init(|| crate::objects::Objects::open(self.repo.root()))
            .as_ref()
    }

    /// In-process if possible; else a `cat-file` started now, so that its
    /// start-up overlaps the fetch.
    fn reader(&self) -> Result<Reader<'_>, Error> {
        Ok(match self.objects() {
            Some(o) => Reader::InProcess(o),
            None => Reader::Process(git::StateReader::spawn(self.git())?),
        })
    }

    fn writer(&self) -> Result<Writer<'_>, Error> {
        Ok(match self.objects() {
            Some(o) => Writer::InProcess(o),
            None => Writer::Process(git::FastImport::spawn(self.git())?),
        })
    }

    /// Fetch, then read at the tip the backlog and the `records` files (this
    /// month's, for a change being built on this tip) in one session.
    fn fetch_state_using(
        &self,
        reader: Reader<'_>,
        records: &[String],
    ) -> Result<(Option<String>, Option<String>, RecordTexts), Error> {
        let r = self.fetch_ref()?;
        let local = self.local_ref();
        let mut paths = vec![BACKLOG_PATH];
        paths.extend(records.iter().map(String::as_str));
        let (tip, mut blobs, local_tip) = match reader {
            Reader::InProcess(o) => o.read(&r, &paths, Some(&local))?,
            Reader::Process(p) => p.read(&r, &paths, Some(&local))?,
        };
        *self.local_tip.lock().unwrap_or_else(|p| p.into_inner()) = local_tip;
        let record_texts: RecordTexts = records
            .iter()
            .zip(blobs.drain(1..))
            .filter_map(|(p, b)| b.map(|b| (p.clone(), String::from_utf8_lossy(&b).into_owned())))
            .collect();
        let text = match blobs.pop().flatten() {
            Some(b) => Some(String::from_utf8(b).map_err(|_| Error::Corrupt {
                path: BACKLOG_PATH.into(),
                message: format!("not UTF-8 text at {}", tip.as_deref().unwrap_or("?")),
            })?),
            None => None,
        };
        Ok((tip, text, record_texts))
    }

    /// The tip of the state branch, freshly fetched.
    pub fn fetch(&self) -> Result<Option<String>, Error> {
        Ok(self.fetch_state()?.0)
    }

    /// The backlog at the tip of the state branch, freshly fetched.
    pub fn read(&self) -> Result<(Backlog, Option<String>), Error> {
        let (tip, text) = self.fetch_state()?;
        Ok((parse_or_empty(text.as_deref())?, tip))
    }

    /// Other files at the freshly fetched tip (e.g. the records), in one `cat-file`.
    pub fn read_files(&self, paths: &[&str]) -> Result<Vec<Option<String>>, Error> {
        let (tip, _) = self.fetch_state()?;
        let Some(tip) = tip else {
            return Ok(vec![None; paths.len()]);
        };
        let mut cat =
            git::CatFile::spawn(self.git(), |_, b| String::from_utf8_lossy(b).into_owned())?;
        let tickets: Vec<usize> = paths
            .iter()
            .map(|p| cat.request(&format!("{tip}:{p}")))
            .collect();
        let answers = cat.finish()?;
        Ok(tickets
            .into_iter()
            .map(|i| answers.get(i).cloned().flatten())
            .collect())
    }

    /// Blobs and their sizes under `prefix` at the freshly fetched tip, in one
    /// `ls-tree`: (path, blob id, bytes).
    pub fn list(&self, prefix: &str) -> Result<Vec<(String, String, u64)>, Error> {
        let (tip, _) = self.fetch_state()?;
        let Some(tip) = tip else {
            return Ok(Vec::new());
        };
        let out = self
            .git()
            .cmd([
                "ls-tree",
                "-r",
                "-l",
                "-z",
                "--full-tree",
                &tip,
                "--",
                prefix,
            ])
            .run()?;
        Ok(git::parse_ls_tree_long(&out))
    }

    /// Every line of the history files of these kinds that `months` wants,
    /// at the freshly fetched tip, oldest file first: one `ls-tree` and one
    /// `cat-file` whose output is read line by line (see
    /// [`crate::history::HistoryLine`]).
    pub fn each_history_line(
        &self,
        kinds: &[super::store::Record],
        months: &crate::history::Months,
        each: &mut dyn FnMut(&crate::history::HistoryLine),
    ) -> Result<(), Error> {
        let (tip, _) = self.fetch_state()?;
        let Some(tip) = tip else {
            return Ok(());
        };
        let mut args = vec!["ls-tree", "-r", "-l", "-z", "--full-tree", &tip, "--"];
        let roots = crate::history::roots(kinds);
        args.extend(roots.iter().copied());
        let mut wanted: Vec<(String, String)> =
            git::parse_ls_tree_long(&self.git().cmd(&args).run()?)
                .into_iter()
                .filter(|(p, _, _)| {
                    crate::history::kind_of(p).is_some_and(|k| kinds.contains(&k))
                        && months.wants(p)
                })
                .map(|(p, oid, _)| (p, oid))
                .collect();
        crate::history::sort_oldest_first(&mut wanted);
        let oids: Vec<String> = wanted.iter().map(|(_, oid)| oid.clone()).collect();
        let kinds: Vec<_> = wanted
            .iter()
            .map(|(p, _)| crate::history::kind_of(p).expect("a history file"))
            .collect();
        let mut number = (usize::MAX, 0);
        git::each_blob_line(self.git(), &oids, |i, line| {
            number = if number.0 == i {
                (i, number.1 + 1)
            } else {
                (i, 0)
            };
            crate::history::visit_line(kinds[i], &wanted[i].0, number.1, line, each);
        })?;
        Ok(())
    }

    /// The raw file at the freshly fetched tip, `None` if there is none.
    pub fn read_text(&self) -> Result<Option<String>, Error> {
        Ok(self.fetch_state()?.1)
    }

    /// Apply `f` to the freshest state and publish the result, retrying on
    /// lost races. `f` may run several times, each time on a fresher state.
    pub fn update<T>(
        &self,
        mut f: impl FnMut(&mut Backlog) -> Result<Change<T>, Error>,
    ) -> Result<Applied<T>, Error> {
        let mut doublings = 0u32;
        // Known before the turn is taken, so the turn is spent on the remote.
        self.ident();
        for attempt in 1..=self.max_tries {
            let started = std::time::Instant::now();
            // Ready before the turn is taken (processes started, or the object
            // database opened), so the turn is spent on the remote.
            let reader = self.reader()?;
            let writer = self.writer()?;
            let turn = self.take_turn();
            // One clock reading per attempt: the month files read are the
            // ones written.
            let now = crate::clock::now();
            let month_files = crate::history::current_files(now);
            let (tip, current, record_texts) = self.fetch_state_using(reader, &month_files)?;
            let before = parse_or_empty(current.as_deref())?;
            store::check_writable(&before, std::path::Path::new(BACKLOG_PATH))?;
            let mut after = before.clone();
            let change = f(&mut after)?;
            let Some(message) = change.message.filter(|_| after != before) else {
                drop(turn);
                self.sync_local(tip.as_deref(), tip.as_deref());
                return Ok(Applied {
                    value: change.value,
                    commit: None,
                    changed: false,
                });
            };
            let written = store::change_files(
                &before,
                &mut after,
                &change.appends,
                &self.actor,
                now,
                tip.as_deref(),
                |p| record_texts.get(p).cloned(),
            );
            let mut files: Vec<(&str, &[u8])> = written
                .iter()
                .map(|(p, d)| (p.as_str(), d.as_slice()))
                .collect();
            files.extend(change.puts.iter().map(|(p, d)| (p.as_str(), d.as_slice())));
            let commit = self.commit_on(writer, tip.as_deref(), &files, &message)?;
            crate::failpoint::hit("shared.committed");
            let published = self.publish(tip.as_deref(), &commit)?;
            // What is left is this clone's own business: the next worker may go.
            drop(turn);
            match published {
                PushResult::Pushed => {
                    crate::failpoint::hit("shared.pushed");
                    self.sync_local(tip.as_deref(), Some(&commit));
                    return Ok(Applied {
                        value: change.value,
                        commit: Some(commit),
                        changed: true,
                    });
                }
                PushResult::Stale => {
                    let pause = self.backoff(started.elapsed(), doublings);
                    doublings += 1;
                    tracing::debug!("state push {attempt} lost a race; retrying in {pause:?}");
                    std::thread::sleep(pause);
                }
                PushResult::Refused(why) => {
                    return Err(Error::Failed(format!(
                        "{} refused the state commit on {}: {why}",
                        self.remote.as_deref().unwrap_or("the repository"),
                        self.branch
                    )))
                }
            }
        }
        Err(Error::Contention(format!(
            "gave up updating the backlog on {} after {} tries: other workers kept changing it",
            self.branch, self.max_tries
        )))
    }

    /// Make the state branch, which must not exist yet, with `files` as its
    /// first (orphan) commit; returns the commit. A branch that exists, or
    /// that another worker makes first, is an error: nothing is overwritten.
    pub fn create(&self, files: &[(&str, &[u8])], message: &str) -> Result<String, Error> {
        self.ident();
        let writer = self.writer()?;
        if let Some(tip) = self.fetch()? {
            return Err(Error::invalid(format!(
                "the state branch {} exists already (at {})",
                self.describe(),
                &tip[..tip.len().min(12)]
            )));
        }
        let commit = self.commit_on(writer, None, files, message)?;
        match self.publish(None, &commit)? {
            PushResult::Pushed => Ok(commit),
            PushResult::Stale => Err(Error::Contention(format!(
                "another worker made the state branch {} meanwhile",
                self.describe()
            ))),
            PushResult::Refused(why) => Err(Error::Failed(format!(
                "{} refused the state branch {}: {why}",
                self.remote.as_deref().unwrap_or("the repository"),
                self.branch
            ))),
        }
    }

    /// `origin/tgs-state`, or `tgs-state` when local.
    pub fn describe(&self) -> String {
        match &self.remote {
            Some(r) => format!("{r}/{}", self.branch),
            None => self.branch.clone(),
        }
    }

    fn ident(&self) -> &str {
        self.ident.get_or_init(|| git::committer_ident(self.git()))
    }

    /// This machine's turn on the remote branch, if there is a remote.
    fn take_turn(&self) -> Option<super::turn::Turn> {
        let url = self.remote_url.as_deref()?;
        super::turn::take(url, &self.branch, self.turn_wait, || {
            if let Err(e) = self.fetch_ref_with(true) {
                tracing::debug!("catching up while waiting: {e}");
            }
        })
    }

    /// The pause after a lost race. Its scale is the attempt just lost: when
    /// many workers share few cores every attempt is slow, and a pause shorter
    /// than one attempt only sends the loser back into the same crowd, taking
    /// CPU from the worker whose push is about to land. It doubles with each
    /// loss, and full jitter spreads the losers out.
    fn backoff(&self, attempt: Duration, doublings: u32) -> Duration {
        let scale = attempt.max(self.first_pause) * 2u32.pow(doublings.min(16));
        scale.min(self.max_pause).mul_f64(fastrand::f64())
    }

    /// Where `fast-import` writes a new state commit before it is published
    /// (commits written in-process need no ref). With a remote, the
    /// remote-tracking ref itself: after a successful push it is
    /// right as it stands, and after a lost race the next fetch (a forced
    /// update) puts it back. Without one, a scratch ref of this process.
    fn commit_ref(&self) -> String {
        self.remote_ref()
            .unwrap_or_else(|| self.scratch_ref.clone())
    }

    fn commit_on(
        &self,
        writer: Writer<'_>,
        tip: Option<&str>,
        files: &[(&str, &[u8])],
        message: &str,
    ) -> Result<String, Error> {
        let ident = self.ident();
        let when = crate::clock::now().as_second();
        Ok(match writer {
            Writer::InProcess(o) => o.commit(tip, files, ident, when, message)?,
            Writer::Process(p) => p.commit(&self.commit_ref(), tip, files, ident, when, message)?,
        })
    }

    /// Make `commit` the new tip: a push to the remote, or a compare-and-swap of the local ref.
    fn publish(&self, tip: Option<&str>, commit: &str) -> Result<PushResult, Error> {
        let Some(remote) = &self.remote else {
            let old = tip.unwrap_or("0000000000000000000000000000000000000000");
            let out = self
                .git()
                .cmd(["update-ref", &self.local_ref(), commit, old])
                .output()?;
            return Ok(if out.success {
                PushResult::Pushed
            } else {
                PushResult::Stale
            });
        };
        let spec = format!("{commit}:refs/heads/{}", self.branch);
        let out = self
            .git()
            // --no-verify: a state commit is tgs's own; the user's pre-push
            // hooks (tests, linters) are for their work, not for this.
            .cmd([
                "push",
                "--porcelain",
                "--quiet",
                "--no-verify",
                remote,
                &spec,
            ])
            .output()?;
        match parse_push_porcelain(&out.stdout_text()) {
            // The remote-tracking ref already holds the commit (see commit_ref).
            Some(PushResult::Pushed) => Ok(PushResult::Pushed),
            Some(PushResult::Refused(why)) => Ok(PushResult::Refused(
                match crate::git::remote_message(&out.stderr) {
                    Some(said) => format!("{why}; the remote said: {said}"),
                    None => why,
                },
            )),
            Some(other) => Ok(other),
            None if out.success => Ok(PushResult::Pushed),
            None => Err(Error::Failed(format!(
                "could not push the state branch {} to {remote}: {}",
                self.branch,
                out.stderr.trim()
            ))),
        }
    }

    /// Bring the local state branch (and, if it is checked out, the working
    /// tree) forward to `new`, but only as a fast forward of a clean state:
    /// anything else is left alone, for the state lives on the remote. The
    /// scratch ref goes in the same `update-ref` transaction.
    fn sync_local(&self, old: Option<&str>, new: Option<&str>) {
        let git = self.git();
        // Only fast-import in the local mode leaves a scratch ref behind (see commit_ref).
        let mut tx = if self.remote.is_none() && self.objects().is_none() {
            format!("delete {}\n", self.scratch_ref)
        } else {
            String::new()
        };
        if let Some(new) = new {
            let local = if self.remote.is_none() {
                // publish() already moved the local ref by compare-and-swap.
                old.map(str::to_owned)
            } else {
                // Read in the same cat-file session as the state itself.
                self.local_tip
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
            };
            let behind = local.as_deref() != Some(new);
            if self.remote.is_some() && behind && self.checked_out() {
                // Branch, index and files in one step (see fast_forward_checkout).
                self.fast_forward_checkout(new);
            } else if let (true, true, Some(l)) = (self.remote.is_some(), behind, local.as_deref())
            {
                // Only a local branch that exists follows: a state branch of
                // its own needs none (the remote-tracking ref is enough), and
                // the user's branch list stays theirs.
                let fast_forward = Some(l) == old
                    || git
                        .cmd(["merge-base", "--is-ancestor", l, new])
                        .output()
                        .is_ok_and(|o| o.success);
                if fast_forward {
                    tx.push_str(&format!("update {} {new} {l}\n", self.local_ref()));
                } else {
                    self.warn_diverged();
                }
            } else if self.remote.is_none() && self.checked_out() {
                if let Some(from) = local.as_deref().filter(|f| *f != new) {
                    self.update_worktree_files(from, new);
                }
            }
        }
        if tx.is_empty() {
            return;
        }
        match git.cmd(["update-ref", "--stdin"]).stdin(tx).output() {
            Ok(o) if !o.success => tracing::debug!("local sync: {}", o.stderr.trim()),
            _ => {}
        }
    }

    fn warn_diverged(&self) {
        tracing::warn!(
            "the local branch {} has diverged from {}/{}; leaving it as it is (the backlog state lives on the remote)",
            self.branch,
            self.remote.as_deref().unwrap_or_default(),
            self.branch
        );
    }

    /// Fast-forward the checked-out state branch to `new`: one `git merge
    /// --ff-only` moves the branch, the index and the files, refuses a
    /// diverged branch and refuses to overwrite local changes. Nothing of the
    /// user's runs: no hooks, no auto-stash, no signature policy, no
    /// background maintenance.
    fn fast_forward_checkout(&self, new: &str) {
        let out = self
            .git()
            .cmd([
                "-c",
                "core.hooksPath=/dev/null",
                "-c",
                "merge.autoStash=false",
                "-c",
                "merge.verifySignatures=false",
                "-c",
                "maintenance.auto=false",
                "merge",
                "--ff-only",
                "--quiet",
                "--no-stat",
                new,
            ])
            // After the push: off the critical path of the next worker.
            .background()
            .output();
        match out {
            Ok(o) if o.success => {}
            Ok(o) if o.stderr.contains("Not possible to fast-forward") => self.warn_diverged(),
            Ok(o) => tracing::warn!(
                "could not bring the working tree forward to the new backlog state: {}",
                o.stderr.trim()
            ),
            Err(e) => tracing::warn!("could not bring the working tree forward: {e}"),
        }
    }

    fn checked_out(&self) -> bool {
        *self.checked_out.get_or_init(|| {
            self.git()
                .text(["symbolic-ref", "-q", "HEAD"])
                .is_ok_and(|h| h == self.local_ref())
        })
    }

    /// Move the checked-out files from `from` to `new` with a two-tree
    /// `read-tree -m -u`, which updates index and files like a checkout and
    /// refuses to overwrite local changes.
    fn update_worktree_files(&self, from: &str, new: &str) -> bool {
        match self
            .git()
            .cmd(["read-tree", "-m", "-u", from, new])
            .output()
        {
            Ok(o) if o.success => true,
            Ok(o) => {
                tracing::warn!(
                    "could not bring the working tree forward to the new backlog state: {}",
                    o.stderr.trim()
                );
                false
            }
            Err(e) => {
                tracing::warn!("could not bring the working tree forward: {e}");
                false
            }
        }
    }
}

fn parse_or_empty(text: Option<&str>) -> Result<Backlog, Error> {
    match text {
        Some(t) => store::parse(t, std::path::Path::new(BACKLOG_PATH)),
        None => Ok(Backlog::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fetch_that_lost_the_tracking_ref_to_another_process_is_a_race() {
        assert!(lost_ref_race(
            "error: cannot lock ref 'refs/remotes/origin/tgs-state': is at 44d6 but expected 6cea"
        ));
        assert!(!lost_ref_race(
            "fatal: could not read from remote repository"
        ));
    }

    #[test]
    fn push_porcelain() {
        let ok = "To /tmp/o.git\n \tabc:refs/heads/main\t1111..2222\nDone\n";
        assert_eq!(parse_push_porcelain(ok), Some(PushResult::Pushed));
        let stale = "To /tmp/o.git\n!\tabc:refs/heads/main\t[rejected] (fetch first)\nDone\n";
        assert_eq!(parse_push_porcelain(stale), Some(PushResult::Stale));
        let nff = "To x\n!\tabc:refs/heads/main\t[rejected] (non-fast-forward)\nDone\n";
        assert_eq!(parse_push_porcelain(nff), Some(PushResult::Stale));
        let hook = "To x\n!\tabc:refs/heads/main\t[remote rejected] (protected branch hook declined)\nDone\n";
        assert!(
            matches!(parse_push_porcelain(hook), Some(PushResult::Refused(r)) if r.contains("protected"))
        );
        let raced =
            "To x\n!\tabc:refs/heads/main\t[remote rejected] (failed to update ref)\nDone\n";
        assert_eq!(parse_push_porcelain(raced), Some(PushResult::Stale));
        assert_eq!(parse_push_porcelain("fatal: nope\n"), None);
    }
}
