//! The forge token for tgs's own git, over a private channel.
//!
//! A token in a child's environment or command line is readable by every
//! other process of the same user (`/proc/<pid>/environ` of a `git fetch`
//! is dumpable even when tgs is not), and an agent's leftover process is
//! such a process. So tgs's git never holds the token in either: every git
//! command tgs runs carries, in `GIT_CONFIG_*` variables (no secret in them),
//! a credential helper for the forge's URL that is tgs itself
//! (`tgs debug git-credential SOCKET get`). That helper asks this process's
//! [`Broker`] over a Unix socket; the broker answers only a peer whose
//! ancestry leads, through a `git` that tgs started, to tgs itself
//! (`SO_PEERCRED` and `/proc/<pid>/stat`), so an agent that finds the
//! socket gets nothing. The helper makes itself non-dumpable before it
//! asks, and git keeps the answer in its memory only.
//!
//! What this does not stop: a process that can ptrace git (Yama
//! `ptrace_scope` 0 and the same user) could read git's memory; the
//! sandbox (a PID namespace) is the answer to that.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The largest request or answer exchanged (git sends a few short lines).
const MAX_MESSAGE: u64 = 64 * 1024;

/// How long one exchange may take before the broker drops the peer.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// A running broker: a socket in a private directory and the thread that
/// answers on it. The directory goes when the broker is dropped; the thread
/// ends with the process.
pub struct Broker {
    _dir: tempfile::TempDir,
    socket: PathBuf,
}

impl Broker {
    /// Serve `token` (as `x-access-token`, GitHub's user name for app and
    /// workflow tokens) to tgs's git for URLs under `server_url` (e.g.
    /// `https://github.com`), with `helper` (the tgs binary) as the helper
    /// program. Once per process: a second call keeps the first routing.
    ///
    /// Errors: the socket cannot be made (no writable temporary directory).
    pub fn start(token: String, server_url: &str, helper: &Path) -> std::io::Result<Broker> {
        let private = |d: PathBuf| {
            tempfile::Builder::new()
                .prefix("tgs-credential-")
                .tempdir_in(d)
        };
        let dir = runtime_dir()
            .map(private)
            .and_then(Result::ok)
            .map_or_else(|| private(std::env::temp_dir()), Ok)?;
        let socket = dir.path().join("socket");
        let listener = UnixListener::bind(&socket)?;
        let server = server_url.trim_end_matches('/').to_owned();
        let (scheme, host) = scheme_and_host(&server);
        let (scheme, host) = (scheme.to_owned(), host.to_owned());
        std::thread::Builder::new()
            .name("tgs-credential".into())
            .spawn(move || serve(listener, &token, &scheme, &host))?;
        crate::git::route_credentials(helper_config(&server, helper, &socket));
        Ok(Broker { _dir: dir, socket })
    }

    /// The socket's path (for tests and `--dry-run` accounts).
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

/// `$XDG_RUNTIME_DIR` (a per-user 0700 directory) when set; the system's
/// temporary directory is the fallback (the socket's own directory is
/// 0700 wherever it is).
fn runtime_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_dir())
}

/// The entries: other helpers for this URL reset (an empty value), then
/// the broker's helper. The helper path is shell-quoted (git runs a `!`
/// helper with the shell); it is tgs's own binary, never a path the agent
/// chose.
fn helper_config(server: &str, helper: &Path, socket: &Path) -> Vec<(String, String)> {
    let quote = |p: &Path| {
        shlex::try_quote(&p.to_string_lossy())
            .map(|q| q.into_owned())
            .unwrap_or_default()
    };
    let key = format!("credential.{server}.helper");
    vec![
        (key.clone(), String::new()),
        (
            key,
            format!("!{} debug git-credential {}", quote(helper), quote(socket)),
        ),
    ]
}

/// `("https", "github.com")` from `https://github.com`; a URL without a
/// scheme is taken as https.
fn scheme_and_host(url: &str) -> (&str, &str) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    (scheme, rest.split('/').next().unwrap_or(rest))
}

/// Answer peers until the process ends; each one on this thread, briefly.
fn serve(listener: UnixListener, token: &str, scheme: &str, host: &str) {
    for stream in listener.incoming().flatten() {
        let _ = answer(stream, token, scheme, host);
    }
}

/// One exchange: a peer that is not tgs's git, or that asks for another
/// host, is answered with nothing (git then fails as without credentials).
fn answer(mut stream: UnixStream, token: &str, scheme: &str, host: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(EXCHANGE_TIMEOUT))?;
    stream.set_write_timeout(Some(EXCHANGE_TIMEOUT))?;
    let peer = peer_pid(&stream)?;
    let mut request = String::new();
    (&mut stream)
        .take(MAX_MESSAGE)
        .read_to_string(&mut request)?;
    let me = std::process::id();
    if !crate::procfs::descends_through_git(peer, me, crate::git::program_path()) {
        tracing::warn!("refused the GitHub token to process {peer}: not a git that tgs started");
        return Ok(());
    }
    if !asks_for(&request, scheme, host) {
        return Ok(());
    }
    stream.write_all(format!("username=x-access-token\npassword={token}\n").as_bytes())
}

/// Whether git's request (`protocol=...`, `host=...` lines) is for the
/// broker's forge.
pub fn asks_for(request: &str, scheme: &str, host: &str) -> bool {
    let field = |name: &str| {
        request
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
    };
    field("protocol") == Some(scheme) && field("host") == Some(host)
}

/// The process at the other end of a Unix socket.
fn peer_pid(stream: &UnixStream) -> std::io::Result<u32> {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, which is a
    // properly sized and aligned ucred.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cred.pid as u32)
}

/// The helper's side (`tgs debug git-credential SOCKET OPERATION`): for
/// `get`, pass git's request (stdin) to the broker and its answer to git
/// (stdout); `store` and `erase` have nothing to do. The caller makes the
/// process non-dumpable first.
pub fn helper(socket: &Path, operation: &str) -> std::io::Result<()> {
    if operation != "get" {
        return Ok(());
    }
    let mut request = Vec::new();
    std::io::stdin()
        .take(MAX_MESSAGE)
        .read_to_end(&mut request)?;
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(EXCHANGE_TIMEOUT))?;
    stream.write_all(&request)?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut reply = Vec::new();
    stream.take(MAX_MESSAGE).read_to_end(&mut reply)?;
    std::io::stdout().write_all(&reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_helper_is_quoted_for_the_shell_and_resets_other_helpers() {
        let c = helper_config(
            "https://github.com",
            Path::new("/opt/my tools/tgs"),
            Path::new("/run/user/1/tgs-credential-x/socket"),
        );
        assert_eq!(
            c[0],
            ("credential.https://github.com.helper".into(), String::new())
        );
        assert_eq!(
            c[1].1,
            "!'/opt/my tools/tgs' debug git-credential /run/user/1/tgs-credential-x/socket"
        );
    }

    #[test]
    fn only_the_forges_host_and_scheme_are_answered() {
        let req = "protocol=https\nhost=github.com\npath=o/r.git\n";
        assert!(asks_for(req, "https", "github.com"));
        assert!(!asks_for(req, "http", "github.com"));
        assert!(!asks_for(
            "protocol=https\nhost=evil.example\n",
            "https",
            "github.com"
        ));
        assert!(!asks_for(
            "protocol=https\nhost=github.com.evil\n",
            "https",
            "github.com"
        ));
        assert_eq!(
            scheme_and_host("http://127.0.0.1:8080"),
            ("http", "127.0.0.1:8080")
        );
        assert_eq!(
            scheme_and_host("https://ghe.example/"),
            ("https", "ghe.example")
        );
    }
}
