//! The first process of tgs's inside a sandbox (`tgs debug sandbox-init`):
//! it listens on the sandbox's own loopback, where the agent's
//! `HTTP_PROXY`/`HTTPS_PROXY` point, forwards each connection to tgs's
//! proxy through the Unix socket bound in ([`super::PROXY_SOCKET_INSIDE`]),
//! and runs the agent's program, ending with its status.
//!
//! The agent may kill it or take its port: it gains nothing, since the
//! socket leads only to the proxy, which filters every connection.

use std::ffi::{OsStr, OsString};
use std::io;
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;

/// Listen on `127.0.0.1:port` (and `[::1]:port` where there is one),
/// forwarding to `socket`, bound this process and its descendants by
/// `limits`, then run `program args` and return the status to exit with
/// (`128 + signal` for a program killed by one).
///
/// Errors: the port cannot be listened on, a limit cannot be set, or the
/// program cannot start.
pub fn run(
    socket: &Path,
    port: u16,
    limits: &super::Limits,
    program: &OsStr,
    args: &[OsString],
) -> io::Result<i32> {
    set_limit(libc::RLIMIT_NPROC, limits.processes)?;
    set_limit(libc::RLIMIT_FSIZE, limits.file_size)?;
    if let Some(m) = limits.memory {
        set_limit(libc::RLIMIT_AS, m)?;
    }
    let v4 = TcpListener::bind(("127.0.0.1", port))?;
    spawn_bridge(v4, socket);
    if let Ok(v6) = TcpListener::bind(("::1", port)) {
        spawn_bridge(v6, socket);
    }
    let status = Command::new(program).args(args).status()?;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// Lower a limit (soft and hard: the agent cannot raise it again).
fn set_limit(resource: libc::__rlimit_resource_t, value: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: value as libc::rlim_t,
        rlim_max: value as libc::rlim_t,
    };
    // SAFETY: setrlimit reads the struct we pass; no other preconditions.
    if unsafe { libc::setrlimit(resource, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn spawn_bridge(listener: TcpListener, socket: &Path) {
    let socket = socket.to_owned();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let socket = socket.clone();
            std::thread::spawn(move || {
                if let Ok(up) = UnixStream::connect(&socket) {
                    super::relay::both_ways(conn, up);
                }
            });
        }
    });
}
