//! The one way tgs runs git.
//!
//! Every git process goes through [`Git::cmd`], which pins the environment so
//! that output is parseable and nothing leaks in from the caller: inherited
//! repository variables (`GIT_DIR`, `GIT_INDEX_FILE`, ...) are removed, messages
//! are in the C locale, stdin is null unless data is given, stderr is captured
//! for error messages, and each call is logged at debug level.
//!
//! Porcelain and plumbing output is parsed by the pure functions at the bottom
//! of this module so they can be unit-tested without a repository.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Variables that redirect git to another repository or index. A `tgs` started
/// from a git hook would otherwise operate on the hook's repository.
const STRIPPED_ENV: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_PREFIX",
    "GIT_NAMESPACE",
    "GIT_QUARANTINE_PATH",
];

/// The names of this process's variables that hold secrets (tokens, keys,
/// passwords: [`crate::transcript::name_looks_secret`]): no git child gets
/// them. Another process of the same user can read a child's
/// `/proc/<pid>/environ`; git gets the forge token through
/// [`crate::credential`] instead.
fn secret_env_names() -> impl Iterator<Item = &'static str> {
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    NAMES
        .get_or_init(|| {
            std::env::vars_os()
                .filter_map(|(k, _)| k.into_string().ok())
                // Every forge token variable (`GITHUB_TOKEN`, ...) is among them.
                .filter(|k| crate::transcript::name_looks_secret(k))
                .collect()
        })
        .iter()
        .map(String::as_str)
}

/// Configuration every git command of tgs carries, as `GIT_CONFIG_*`
/// variables (the command scope, which wins over every file): no hooks and
/// no `core.fsmonitor` command, which an agent could have written into a
/// repository's config or hooks directory for tgs to run with its
/// environment; and what [`route_credentials`] set.
/// Entries the caller's environment already holds keep their places.
fn own_config(cmd: &mut Command) {
    const ALWAYS: [(&str, &str); 2] =
        [("core.hooksPath", "/dev/null"), ("core.fsmonitor", "false")];
    let inherited: usize = std::env::var("GIT_CONFIG_COUNT")
        .ok()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let extra = ALWAYS.iter().map(|(k, v)| (*k, *v)).chain(
        EXTRA_CONFIG
            .get()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let mut n = inherited;
    for (key, value) in extra {
        cmd.env(format!("GIT_CONFIG_KEY_{n}"), key)
            .env(format!("GIT_CONFIG_VALUE_{n}"), value);
        n += 1;
    }
    cmd.env("GIT_CONFIG_COUNT", n.to_string());
}

/// Configuration added to every later git command of this process.
static EXTRA_CONFIG: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();

/// Have every git command from now on carry `entries` (`(key, value)`, in
/// order) in its command-scope configuration: how [`crate::credential`]
/// routes the forge's credentials to its helper. Once per process; false
/// when entries were set already (they are kept).
pub fn route_credentials(entries: Vec<(String, String)>) -> bool {
    EXTRA_CONFIG.set(entries).is_ok()
}

/// A git invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("could not run `git`: {source}")]
    Spawn {
        #[source]
        source: std::io::Error,
    },
    #[error("`git {args}` failed ({status}){}", fmt_stderr(.stderr))]
    Failed {
        args: String,
        status: String,
        stderr: String,
    },
    #[error("unexpected output from `git {args}`: {detail}")]
    Parse { args: String, detail: String },
    /// Reading or writing objects in-process (see `objects`) failed.
    #[error("could not {what} in the object database: {detail}")]
    Objects { what: String, detail: String },
}

fn fmt_stderr(stderr: &str) -> String {
    let s = stderr.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}

/// The `git` program, found on PATH once per process: a bare `git` would be
/// searched for again at every spawn, one failed `execve` per PATH entry
/// before it.
pub fn program_path() -> &'static Path {
    static GIT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    GIT.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .filter(|d| d.is_absolute())
            .map(|d| d.join("git"))
            .find(|p| {
                std::fs::metadata(p)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
            .unwrap_or_else(|| PathBuf::from("git"))
    })
}

/// A handle on one working directory in which git commands run.
#[derive(Debug, Clone)]
pub struct Git {
    dir: PathBuf,
}

impl Git {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Git { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Start building `git -C <dir> <args>`.
    pub fn cmd<I, S>(&self, args: I) -> GitCommand
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let mut cmd = Command::new(program_path());
        cmd.arg("-C").arg(&self.dir).args(&args);
        for var in STRIPPED_ENV.iter().copied().chain(secret_env_names()) {
            cmd.env_remove(var);
        }
        own_config(&mut cmd);
        cmd.env("LC_MESSAGES", "C")
            .env("LANGUAGE", "C")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_LITERAL_PATHSPECS", "1")
            // What tgs checks must be what it pushes: an agent that wrote
            // `refs/replace/<its head>` (or a graft) would otherwise have
            // every check read a clean commit in place of its work.
            .env("GIT_NO_REPLACE_OBJECTS", "1")
            .env("GIT_GRAFT_FILE", "/nonexistent/tgs-no-grafts");
        GitCommand {
            cmd,
            args,
            stdin: None,
        }
    }

    /// `git fetch` of one refspec from `source` (a remote, a path, a
    /// bundle): quiet, no tags, no `FETCH_HEAD`, no look for submodule
    /// commits (which reads the whole index).
    pub fn fetch(&self, source: impl AsRef<OsStr>, spec: &str) -> GitCommand {
        let source: &OsStr = source.as_ref();
        let args: [&OsStr; 7] = [
            "fetch".as_ref(),
            "--quiet".as_ref(),
            "--no-tags".as_ref(),
            "--no-write-fetch-head".as_ref(),
            "--no-recurse-submodules".as_ref(),
            source,
            spec.as_ref(),
        ];
        self.cmd(args)
    }

    /// Run a command and return its stdout as UTF-8 text, trimmed of the final newline.
    pub fn text<I, S>(&self, args: I) -> Result<String, GitError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = self.cmd(args).run()?;
        let mut s = String::from_utf8_lossy(&out).into_owned();
        while s.ends_with('\n') || s.ends_with('\r') {
            s.pop();
        }
        Ok(s)
    }
}

/// One git invocation being built.
pub struct GitCommand {
    cmd: Command,
    args: Vec<OsString>,
    stdin: Option<Vec<u8>>,
}

/// What a git process printed and how it ended.
#[derive(Debug)]
pub struct GitOutput {
    pub success: bool,
    pub stdout: Vec<u8>,
    pub stderr: String,
    status: String,
}

impl GitCommand {
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.cmd.env(key, value);
        self
    }

    /// Run at a lower CPU priority (nice 10, inherited by git's own children):
    /// for work that should yield to another worker's critical section.
    pub fn background(mut self) -> Self {
        use std::os::unix::process::CommandExt;
        // SAFETY: setpriority(2) is async-signal-safe and touches only the
        // child, between fork and exec; its failure is harmless.
        unsafe {
            self.cmd.pre_exec(|| {
                libc::setpriority(libc::PRIO_PROCESS, 0, 10);
                Ok(())
            });
        }
        self
    }

    /// Feed these bytes to the process's stdin (otherwise stdin is null).
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }

    fn display_args(&self) -> String {
        self.args
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Start the process with stdout piped, for a session that talks to it
    /// (stdin and stderr as given), instead of running it to completion.
    pub fn spawn_session(
        mut self,
        stdin: Stdio,
        stderr: Stdio,
    ) -> Result<std::process::Child, GitError> {
        self.cmd
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|source| GitError::Spawn { source })
    }

    /// Run to completion whatever the exit status.
    pub fn output(mut self) -> Result<GitOutput, GitError> {
        let shown = self.display_args();
        tracing::debug!(target: "tgs::git", dir = %self.cmd.get_current_dir().map(|p| p.display().to_string()).unwrap_or_default(), "git {shown}");
        self.cmd
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self
            .cmd
            .spawn()
            .map_err(|source| GitError::Spawn { source })?;
        // Write stdin from a thread so a large input cannot deadlock against a full stdout pipe.
        let writer = match (self.stdin.take(), child.stdin.take()) {
            (Some(data), Some(mut pipe)) => Some(std::thread::spawn(move || {
                let _ = pipe.write_all(&data);
            })),
            _ => None,
        };
        let out = child
            .wait_with_output()
            .map_err(|source| GitError::Spawn { source })?;
        if let Some(w) = writer {
            let _ = w.join();
        }
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            tracing::debug!(target: "tgs::git", "git {shown} -> {}: {}", out.status, stderr.trim());
        }
        Ok(GitOutput {
            success: out.status.success(),
            stdout: out.stdout,
            stderr,
            status: out.status.to_string(),
        })
    }

    /// Run and fail unless git exits 0; returns stdout.
    pub fn run(self) -> Result<Vec<u8>, GitError> {
        let args = self.display_args();
        let out = self.output()?;
        if out.success {
            Ok(out.stdout)
        } else {
            Err(GitError::Failed {
                args,
                status: out.status,
                stderr: out.stderr,
            })
        }
    }
}

impl GitOutput {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).trim_end().to_owned()
    }
}

/// A `git cat-file --batch` process that takes requests while it answers
/// them, so it can run alongside the process that produces the object ids.
/// Each answer is handed to `digest` on a reader thread; only what it
/// returns is kept, never the whole blob.
pub struct CatFile<T: Send + 'static> {
    /// Requests, written in batches whenever the buffer fills. The reader
    /// thread always drains git's stdout, so writing here cannot deadlock.
    stdin: Option<std::io::BufWriter<std::process::ChildStdin>>,
    reader: Option<std::thread::JoinHandle<Result<Vec<Option<T>>, GitError>>>,
    child: std::process::Child,
    requested: usize,
}

impl<T: Send + 'static> CatFile<T> {
    pub fn spawn(
        git: &Git,
        digest: impl Fn(usize, &[u8]) -> T + Send + 'static,
    ) -> Result<CatFile<T>, GitError> {
        tracing::debug!(target: "tgs::git", "git cat-file --batch (streaming)");
        let mut child = git
            .cmd(["cat-file", "--batch"])
            .spawn_session(Stdio::piped(), Stdio::null())?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let reader = std::thread::spawn(move || {
            let mut reader = BufReader::with_capacity(1 << 16, stdout);
            let mut out = Vec::new();
            let mut header = String::new();
            let mut buf = Vec::new();
            loop {
                header.clear();
                match reader.read_line(&mut header) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(source) => return Err(GitError::Spawn { source }),
                }
                let parsed =
                    parse_batch_header(header.trim_end()).ok_or_else(|| GitError::Parse {
                        args: "cat-file --batch".into(),
                        detail: format!("bad header {header:?}"),
                    })?;
                match parsed {
                    None => out.push(None),
                    Some(size) => {
                        buf.resize(size + 1, 0);
                        reader
                            .read_exact(&mut buf)
                            .map_err(|source| GitError::Spawn { source })?;
                        out.push(Some(digest(out.len(), &buf[..size])));
                    }
                }
            }
            Ok(out)
        });
        Ok(CatFile {
            stdin: Some(std::io::BufWriter::with_capacity(16 * 1024, stdin)),
            reader: Some(reader),
            child,
            requested: 0,
        })
    }

    /// Ask for an object; returns its ticket (the index of its answer).
    pub fn request(&mut self, oid: &str) -> usize {
        if let Some(w) = &mut self.stdin {
            let _ = w.write_all(oid.as_bytes());
            let _ = w.write_all(b"\n");
        }
        self.requested += 1;
        self.requested - 1
    }

    /// Close the request stream and collect the answers, by ticket.
    pub fn finish(mut self) -> Result<Vec<Option<T>>, GitError> {
        if let Some(mut w) = self.stdin.take() {
            let _ = w.flush();
        }
        let out = match self.reader.take().map(|r| r.join()) {
            Some(Ok(res)) => res?,
            _ => Vec::new(),
        };
        let _ = self.child.wait();
        if out.len() != self.requested {
            return Err(GitError::Parse {
                args: "cat-file --batch".into(),
                detail: format!("asked for {} objects, got {}", self.requested, out.len()),
            });
        }
        Ok(out)
    }
}

/// Run `git ls-tree -r -z --full-tree <rev> -- <paths>` and hand each entry
/// to `f` as it arrives, without collecting the listing.
pub fn stream_ls_tree(
    git: &Git,
    rev: &str,
    paths: &[&str],
    mut f: impl FnMut(TreeEntryRef<'_>),
) -> Result<(), GitError> {
    let mut args: Vec<&str> = vec!["ls-tree", "-r", "-z", "--long", "--full-tree", rev, "--"];
    args.extend_from_slice(paths);
    let shown = args.join(" ");
    tracing::debug!(target: "tgs::git", "git {shown}");
    let mut child = git
        .cmd(&args)
        .spawn_session(Stdio::null(), Stdio::piped())?;
    let stderr = child.stderr.take().expect("piped stderr");
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut s);
        s
    });
    let stdout = child.stdout.take().expect("piped stdout");
    widen_pipe(&stdout);
    let mut reader = BufReader::with_capacity(1 << 18, stdout);
    let mut rec = Vec::with_capacity(256);
    let mut bad = None;
    loop {
        rec.clear();
        match reader.read_until(0, &mut rec) {
            Ok(0) => break,
            Ok(_) => {}
            Err(source) => return Err(GitError::Spawn { source }),
        }
        if rec.last() == Some(&0) {
            rec.pop();
        }
        // A path that is not UTF-8 is passed on with its bytes escaped, so
        // that the caller can name it (a thought folder it must warn of)
        // rather than never see it.
        let escaped;
        let parsed = match std::str::from_utf8(&rec) {
            Ok(_) => parse_ls_tree_record(&rec),
            Err(_) => {
                escaped = escape_non_utf8(&rec);
                parse_ls_tree_record(escaped.as_bytes())
            }
        };
        match parsed {
            Ok(Some(e)) => f(e),
            Ok(None) => {}
            Err(d) => {
                bad.get_or_insert(d);
            }
        }
    }
    let status = child.wait().map_err(|source| GitError::Spawn { source })?;
    let stderr = err_reader.join().unwrap_or_default();
    if !status.success() {
        return Err(GitError::Failed {
            args: shown,
            status: status.to_string(),
            stderr,
        });
    }
    match bad {
        Some(detail) => Err(GitError::Parse {
            args: shown,
            detail,
        }),
        None => Ok(()),
    }
}

/// Ask for a 1 MiB pipe buffer: git writes its listing in 4 KiB pieces, and
/// a deeper pipe means far fewer wake-ups of the reader.
fn widen_pipe(pipe: &impl std::os::fd::AsRawFd) {
    // SAFETY: fcntl on a valid descriptor we own; failure is harmless.
    unsafe {
        libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20);
    }
}

/// One `ls-tree -z` record, borrowed from the output buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeEntryRef<'a> {
    pub mode: &'a str,
    pub kind: ObjectKind,
    pub oid: &'a str,
    pub path: &'a str,
    /// The blob's size in bytes, when listed with `--long`.
    pub size: Option<u64>,
}

impl TreeEntryRef<'_> {
    pub fn to_owned(&self) -> TreeEntry {
        TreeEntry {
            mode: self.mode.to_owned(),
            kind: self.kind,
            oid: self.oid.to_owned(),
            path: self.path.to_owned(),
        }
    }
}

/// Parse one record (`<mode> <type> <oid>\t<path>`). `Ok(None)` for a path
/// that is not UTF-8: no thought or state file can have such a name.
/// `bytes` as text, each byte that is not part of valid UTF-8 written as
/// `\xNN` (so the text is never taken for the name it stands for).
pub fn escape_non_utf8(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

pub fn parse_ls_tree_record(rec: &[u8]) -> Result<Option<TreeEntryRef<'_>>, String> {
    let Ok(rec) = std::str::from_utf8(rec) else {
        return Ok(None);
    };
    let (meta, path) = rec
        .split_once('\t')
        .ok_or_else(|| format!("no tab in {rec:?}"))?;
    let mut m = meta.split(' ').filter(|s| !s.is_empty());
    let (Some(mode), Some(kind), Some(oid)) = (m.next(), m.next(), m.next()) else {
        return Err(format!("bad entry {rec:?}"));
    };
    // `--long` adds the size (`-` for trees and submodules).
    let size = m.next().and_then(|s| s.parse().ok());
    let kind = match kind {
        "blob" => ObjectKind::Blob,
        "tree" => ObjectKind::Tree,
        "commit" => ObjectKind::Commit,
        other => return Err(format!("unknown object type {other:?}")),
    };
    Ok(Some(TreeEntryRef {
        mode,
        kind,
        oid,
        path,
        size,
    }))
}

/// The lines of objects `oids` (blobs, or commits read raw), in order,
/// streamed from one `git cat-file --batch`: `each(i, line)` sees every line
/// of object `i` (without its `\n`), so no object is ever held whole.
/// Missing objects have no lines.
pub fn each_blob_line(
    git: &Git,
    oids: &[String],
    mut each: impl FnMut(usize, &[u8]),
) -> Result<(), GitError> {
    let mut child = git
        .cmd(["cat-file", "--batch"])
        .spawn_session(Stdio::piped(), Stdio::null())?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut requests = Vec::with_capacity(oids.len() * 41);
    for o in oids {
        requests.extend_from_slice(o.as_bytes());
        requests.push(b'\n');
    }
    // Written from a thread: git answers while it reads, and its answers
    // fill the stdout pipe until they are read here.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&requests);
    });
    let mut reader = BufReader::with_capacity(1 << 16, child.stdout.take().expect("piped stdout"));
    let read = read_blob_lines(&mut reader, oids.len(), &mut each);
    drop(reader);
    let _ = writer.join();
    let _ = child.wait();
    read
}

fn read_blob_lines(
    reader: &mut impl BufRead,
    blobs: usize,
    each: &mut impl FnMut(usize, &[u8]),
) -> Result<(), GitError> {
    let io = |source| GitError::Spawn { source };
    let (mut header, mut line) = (String::new(), Vec::new());
    for i in 0..blobs {
        header.clear();
        reader.read_line(&mut header).map_err(io)?;
        let size = parse_batch_header(header.trim_end()).ok_or_else(|| GitError::Parse {
            args: "cat-file --batch".into(),
            detail: format!("bad header {header:?}"),
        })?;
        let Some(size) = size else { continue };
        let mut blob = (&mut *reader).take(size as u64);
        loop {
            line.clear();
            if blob.read_until(b'\n', &mut line).map_err(io)? == 0 {
                break;
            }
            each(i, line.strip_suffix(b"\n").unwrap_or(&line));
        }
        // The blob ends with a newline of the protocol's.
        reader.read_exact(&mut [0u8]).map_err(io)?;
    }
    Ok(())
}

/// Parse a `cat-file --batch` header: `Some(Some(size))` for an object,
/// `Some(None)` for `<oid> missing`, `None` when unparseable.
pub fn parse_batch_header(line: &str) -> Option<Option<usize>> {
    let mut parts = line.split(' ');
    let _oid = parts.next()?;
    let kind = parts.next()?;
    if kind == "missing" || kind == "ambiguous" {
        return Some(None);
    }
    let size = parts.next()?.parse().ok()?;
    Some(Some(size))
}

/// One entry of `git ls-tree -z` output (`<mode> <type> <oid>\t<path>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    pub mode: String,
    pub kind: ObjectKind,
    pub oid: String,
    pub path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Blob,
    Tree,
    Commit,
}

/// Parse NUL-separated `git ls-tree -z` output. Entries whose path is not UTF-8
/// are skipped: no thought or state file can have such a name.
/// Parse `ls-tree -r -l -z` output into (path, blob id, size) for the
/// blobs; other records (submodules, malformed ones) are skipped.
pub fn parse_ls_tree_long(out: &[u8]) -> Vec<(String, String, u64)> {
    out.split(|b| *b == 0)
        .filter_map(|rec| {
            // `<mode> SP <type> SP <object> SP+ <size> TAB <path>`
            let rec = std::str::from_utf8(rec).ok()?;
            let (meta, path) = rec.split_once('\t')?;
            let mut f = meta.split_ascii_whitespace();
            let (_mode, kind, oid, size) = (f.next()?, f.next()?, f.next()?, f.next()?);
            (kind == "blob").then_some(())?;
            Some((path.to_owned(), oid.to_owned(), size.parse().ok()?))
        })
        .collect()
}

pub fn parse_ls_tree(out: &[u8]) -> Result<Vec<TreeEntry>, String> {
    let mut entries = Vec::new();
    for rec in out.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        if let Some(e) = parse_ls_tree_record(rec)? {
            entries.push(e.to_owned());
        }
    }
    Ok(entries)
}

/// Format entries as `git mktree -z` input.
pub fn format_mktree(entries: &[TreeEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let kind = match e.kind {
            ObjectKind::Blob => "blob",
            ObjectKind::Tree => "tree",
            ObjectKind::Commit => "commit",
        };
        out.extend_from_slice(format!("{} {} {}\t{}", e.mode, kind, e.oid, e.path).as_bytes());
        out.push(0);
    }
    out
}

/// The git blob id (SHA-1 object format) of some contents, as `git hash-object` computes it.
pub fn blob_oid_sha1(content: &[u8]) -> String {
    let mut h = sha1_smol::Sha1::new();
    h.update(format!("blob {}\0", content.len()).as_bytes());
    h.update(content);
    h.digest().to_string()
}

/// Build a new tree from `base` (a tree id, or `None` for an empty tree) with
/// the given blobs written at the given slash-separated paths, one `ls-tree`
/// and one `mktree` per directory on the way. The rest of the tree is shared,
/// so the cost does not grow with the size of the repository.
pub fn tree_with_blobs(
    git: &Git,
    base: Option<&str>,
    files: &[(&str, &str)],
) -> Result<String, GitError> {
    let mut entries = match base {
        Some(tree) => {
            let out = git.cmd(["ls-tree", "-z", tree]).run()?;
            parse_ls_tree(&out).map_err(|detail| GitError::Parse {
                args: format!("ls-tree -z {tree}"),
                detail,
            })?
        }
        None => Vec::new(),
    };
    // Group the files by their first path component.
    let mut here: Vec<(&str, &str)> = Vec::new();
    let mut sub: std::collections::BTreeMap<&str, Vec<(&str, &str)>> = Default::default();
    for (path, oid) in files {
        match path.split_once('/') {
            None => here.push((path, oid)),
            Some((dir, rest)) => sub.entry(dir).or_default().push((rest, oid)),
        }
    }
    for (name, oid) in here {
        entries.retain(|e| e.path != name);
        entries.push(TreeEntry {
            mode: "100644".into(),
            kind: ObjectKind::Blob,
            oid: oid.to_owned(),
            path: name.to_owned(),
        });
    }
    for (dir, files) in sub {
        let existing = entries
            .iter()
            .position(|e| e.path == dir)
            .map(|i| entries.remove(i));
        let base = existing
            .as_ref()
            .filter(|e| e.kind == ObjectKind::Tree)
            .map(|e| e.oid.clone());
        let oid = tree_with_blobs(git, base.as_deref(), &files)?;
        entries.push(TreeEntry {
            mode: "040000".into(),
            kind: ObjectKind::Tree,
            oid,
            path: dir.to_owned(),
        });
    }
    let out = git
        .cmd(["mktree", "-z"])
        .stdin(format_mktree(&entries))
        .run()?;
    Ok(String::from_utf8_lossy(&out).trim().to_owned())
}

/// What [`StateReader::read`] finds: the tip, the files at it, the other ref's commit.
pub type StateRead = (Option<String>, Vec<Option<Vec<u8>>>, Option<String>);

/// A `git cat-file --batch` started ahead of its questions, so that its
/// start-up is paid while something else (a fetch, a wait) goes on. It names
/// refs only when asked, so it sees what a later fetch brought.
pub struct StateReader {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    out: BufReader<std::process::ChildStdout>,
}

impl StateReader {
    pub fn spawn(git: &Git) -> Result<StateReader, GitError> {
        let mut child = git
            .cmd(["cat-file", "--batch"])
            .spawn_session(Stdio::piped(), Stdio::null())?;
        let stdin = child.stdin.take().expect("piped stdin");
        let out = BufReader::new(child.stdout.take().expect("piped stdout"));
        Ok(StateReader { child, stdin, out })
    }

    /// Resolve `rev` and read the blobs at `rev:<path>` for each path: the
    /// commit id first, then the files at exactly that commit, so they always
    /// agree; `also` (e.g. the local branch) is resolved in the same process.
    pub fn read(
        mut self,
        rev: &str,
        paths: &[&str],
        also: Option<&str>,
    ) -> Result<StateRead, GitError> {
        tracing::debug!(target: "tgs::git", "git cat-file --batch ({rev}, {paths:?})");
        let tip = self.ask(&format!("{rev}^{{commit}}"))?.map(|(oid, _)| oid);
        let mut blobs = Vec::with_capacity(paths.len());
        for path in paths {
            blobs.push(match &tip {
                Some(t) => self.ask(&format!("{t}:{path}"))?.map(|(_, b)| b),
                None => None,
            });
        }
        let other = match also {
            Some(r) => self.ask(&format!("{r}^{{commit}}"))?.map(|(oid, _)| oid),
            None => None,
        };
        Ok((tip, blobs, other))
    }

    fn ask(&mut self, spec: &str) -> Result<Option<(String, Vec<u8>)>, GitError> {
        let io = |source| GitError::Spawn { source };
        self.stdin
            .write_all(format!("{spec}\n").as_bytes())
            .map_err(io)?;
        self.stdin.flush().map_err(io)?;
        let mut header = String::new();
        self.out.read_line(&mut header).map_err(io)?;
        let header = header.trim_end();
        let size = parse_batch_header(header).ok_or_else(|| GitError::Parse {
            args: "cat-file --batch".into(),
            detail: format!("bad header {header:?}"),
        })?;
        let Some(size) = size else { return Ok(None) };
        let mut buf = vec![0u8; size + 1];
        self.out.read_exact(&mut buf).map_err(io)?;
        buf.pop();
        Ok(Some((
            header.split(' ').next().unwrap_or_default().to_owned(),
            buf,
        )))
    }
}

impl Drop for StateReader {
    fn drop(&mut self) {
        // Closing stdin (dropped with self) ends the batch; reap the process.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The committer identity git would use (`Name <email>`), or tgs's own when none is configured.
pub fn committer_ident(git: &Git) -> String {
    match git.cmd(["var", "GIT_COMMITTER_IDENT"]).output() {
        Ok(o) if o.success => {
            let line = o.stdout_text();
            // `Name <email> 1700000000 +0000`: keep the name and email.
            match line.rfind('>') {
                Some(i) => line[..=i].to_owned(),
                None => "tgs <tgs@localhost>".to_owned(),
            }
        }
        _ => "tgs <tgs@localhost>".to_owned(),
    }
}

/// A `git fast-import` started ahead of the commit it will write, so that its
/// start-up is paid while something else goes on. Dropped unused, it is told
/// `done` and writes nothing.
pub struct FastImport {
    child: Option<std::process::Child>,
}

const FAST_IMPORT: [&str; 5] = [
    "fast-import",
    "--quiet",
    "--done",
    "--force",
    "--cat-blob-fd=1",
];

impl FastImport {
    pub fn spawn(git: &Git) -> Result<FastImport, GitError> {
        tracing::debug!(target: "tgs::git", "git {} (started)", FAST_IMPORT.join(" "));
        let child = git
            .cmd(FAST_IMPORT)
            .spawn_session(Stdio::piped(), Stdio::piped())?;
        Ok(FastImport { child: Some(child) })
    }

    /// Create a commit on `parent` that writes `files` (blobs, trees and the
    /// commit together) and return its id. The commit is reachable only from
    /// `scratch_ref` until the caller publishes it.
    pub fn commit(
        mut self,
        scratch_ref: &str,
        parent: Option<&str>,
        files: &[(&str, &[u8])],
        ident: &str,
        when: i64,
        message: &str,
    ) -> Result<String, GitError> {
        tracing::debug!(target: "tgs::git", "git fast-import: commit on {scratch_ref}");
        let mut s: Vec<u8> = Vec::new();
        s.extend_from_slice(
            format!("commit {scratch_ref}\nmark :1\ncommitter {ident} {when} +0000\n").as_bytes(),
        );
        s.extend_from_slice(format!("data {}\n", message.len()).as_bytes());
        s.extend_from_slice(message.as_bytes());
        s.push(b'\n');
        if let Some(p) = parent {
            s.extend_from_slice(format!("from {p}\n").as_bytes());
        }
        for (path, data) in files {
            s.extend_from_slice(
                format!("M 100644 inline {path}\ndata {}\n", data.len()).as_bytes(),
            );
            s.extend_from_slice(data);
            s.push(b'\n');
        }
        s.extend_from_slice(b"\nget-mark :1\ndone\n");
        let mut child = self.child.take().expect("a fast-import commits once");
        let mut stdin = child.stdin.take().expect("piped stdin");
        // From a thread: the stream can be larger than the pipe while git,
        // as it reads, may write (its answer, its complaints) to ours.
        let writer = std::thread::spawn(move || stdin.write_all(&s));
        let out = child
            .wait_with_output()
            .map_err(|source| GitError::Spawn { source })?;
        let _ = writer.join();
        if !out.status.success() {
            return Err(GitError::Failed {
                args: FAST_IMPORT.join(" "),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        let oid = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if oid.len() < 40 {
            return Err(GitError::Parse {
                args: "fast-import".into(),
                detail: format!("no commit id in {oid:?}"),
            });
        }
        Ok(oid)
    }
}

impl Drop for FastImport {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(b"done\n");
            }
            let _ = child.wait();
        }
    }
}

/// What a remote's hooks said, from `git push` stderr: its `remote: ` lines,
/// joined, without control characters, at most 400 characters (the text is
/// the remote's, shown to humans and kept in `last_error`). `None` if it
/// said nothing.
pub fn remote_message(stderr: &str) -> Option<String> {
    let said: Vec<String> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("remote:"))
        .map(|l| l.chars().filter(|c| !c.is_control()).collect::<String>())
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty() && !l.starts_with("error: hook declined"))
        .collect();
    if said.is_empty() {
        return None;
    }
    let text = said.join(" / ");
    Some(match text.char_indices().nth(400) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text,
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn bytes_that_are_not_utf8_are_escaped() {
        assert_eq!(
            super::escape_non_utf8(b"tgs/a\xff-b\xc3"),
            "tgs/a\\xff-b\\xc3"
        );
        assert_eq!(super::escape_non_utf8("caf\u{e9}".as_bytes()), "caf\u{e9}");
    }

    use super::*;

    #[test]
    fn remote_messages() {
        let err = "remote: pushes are frozen\x1b[31m\nremote: \nremote: until noon\nTo /tmp/o.git\n ! [remote rejected] x -> x (pre-receive hook declined)\n";
        assert_eq!(
            super::remote_message(err).as_deref(),
            Some("pushes are frozen[31m / until noon")
        );
        assert_eq!(super::remote_message("To x\n ! [rejected]\n"), None);
        assert!(
            super::remote_message(&format!("remote: {}", "y".repeat(1000)))
                .unwrap()
                .ends_with("y...")
        );
    }

    #[test]
    fn ls_tree_long_records() {
        let out = b"100644 blob 1111111111111111111111111111111111111111     120\ttgs/server/transcripts/2026-01/a.log.gz\x00160000 commit 2222222222222222222222222222222222222222       -\tsub\x00100644 blob 3333333333333333333333333333333333333333       7\tname with\ttab\0";
        let got = parse_ls_tree_long(out);
        assert_eq!(
            got,
            [
                (
                    "tgs/server/transcripts/2026-01/a.log.gz".to_owned(),
                    "1111111111111111111111111111111111111111".to_owned(),
                    120
                ),
                (
                    "name with\ttab".to_owned(),
                    "3333333333333333333333333333333333333333".to_owned(),
                    7
                )
            ]
        );
    }

    #[test]
    fn ls_tree_parses_entries_and_tabs_in_names() {
        let out = b"100644 blob 0123456789abcdef0123456789abcdef01234567\ttgs/a b/README.md\x00040000 tree 89abcdef0123456789abcdef0123456789abcdef\ttgs/x\0";
        let e = parse_ls_tree(out).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].path, "tgs/a b/README.md");
        assert_eq!(e[0].kind, ObjectKind::Blob);
        assert_eq!(e[1].kind, ObjectKind::Tree);
        assert_eq!(e[1].mode, "040000");
    }

    #[test]
    fn ls_tree_rejects_garbage() {
        assert!(parse_ls_tree(b"nonsense\0").is_err());
        assert!(parse_ls_tree(b"100644 weird abc\tx\0").is_err());
        assert!(parse_ls_tree(b"").unwrap().is_empty());
    }

    #[test]
    fn mktree_format_round_trips() {
        let entries = vec![TreeEntry {
            mode: "100644".into(),
            kind: ObjectKind::Blob,
            oid: "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391".into(),
            path: "backlog.json".into(),
        }];
        assert_eq!(parse_ls_tree(&format_mktree(&entries)).unwrap(), entries);
    }

    #[test]
    fn blob_ids_match_git() {
        // `printf '' | git hash-object --stdin` and `echo hello | git hash-object --stdin`
        assert_eq!(
            blob_oid_sha1(b""),
            "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
        );
        assert_eq!(
            blob_oid_sha1(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }

    #[test]
    fn batch_headers() {
        assert_eq!(parse_batch_header("abc blob 12"), Some(Some(12)));
        assert_eq!(parse_batch_header("abc missing"), Some(None));
        assert_eq!(parse_batch_header("abc"), None);
    }
}
