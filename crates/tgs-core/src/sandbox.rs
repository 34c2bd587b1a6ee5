//! The wall around an agent session (Linux, bubblewrap).
//!
//! With `server.sandbox.mode: on` (the default), every agent and verify command runs as
//! `bwrap [flags] -- tgs debug sandbox-init ... -- PROGRAM ARGS`, under the
//! session's reaper ([`crate::reaper`]) outside it. Inside:
//! - the filesystem is read-only, with the user's home, `/tmp`, `/var/tmp`,
//!   `/run` (the SSH agent's and docker's sockets, tgs's locks) and the
//!   user's repository replaced by empty private directories; only the
//!   agent's own repository is writable (and the private HOME and /tmp);
//!   the user's objects (which it borrows), the session's prompt files, the
//!   agent's program and `server.sandbox.read_paths` are visible read-only;
//! - new user, PID, IPC, UTS, cgroup and network namespaces: the agent sees
//!   and signals only its own processes, and has no network but its own
//!   loopback, where [`init`] listens and forwards each connection to tgs's
//!   filtering proxy ([`proxy`]) through a Unix socket bound in;
//! - a new session (no terminal injection with `TIOCSTI`), no capabilities,
//!   no new privileges, and it dies with tgs.
//!
//! [`probe`] tells whether bubblewrap works here; [`Plan::bwrap_args`] is
//! a pure function of the paths, unit-tested.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::Error;

pub mod gateway;
pub mod init;
pub mod proxy;
pub mod relay;

/// Where bubblewrap may be: system directories only, never a PATH entry an
/// agent could have written.
const BWRAP_PATHS: &[&str] = &["/usr/bin/bwrap", "/bin/bwrap", "/usr/local/bin/bwrap"];

/// Where the proxy's socket appears inside the sandbox.
pub const PROXY_SOCKET_INSIDE: &str = "/run/tgs/proxy.sock";

/// The loopback port inside the sandbox where [`init`] accepts the agent's
/// proxy connections (`HTTP_PROXY=http://127.0.0.1:PORT`).
pub const PROXY_PORT_INSIDE: u16 = 3128;

/// `server.sandbox` in `tgs/tgs.yml`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SandboxConfig {
    /// `on` (the default) or `off` (agents run with the user's authority).
    pub mode: Option<String>,
    /// Hosts (`example.com`, `*.example.com`) or `host:port` the agent may
    /// reach through the proxy, beyond its model's API.
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    /// More paths the agent may read (its CLI's files, a toolchain).
    #[serde(default)]
    pub read_paths: Vec<String>,
    /// Bounds on what the agent's processes may take.
    #[serde(default)]
    pub limits: LimitsConfig,
}

/// `server.sandbox.limits`: each optional.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Processes of the agent's user at once (`RLIMIT_NPROC`; not enforced
    /// for root). Default 4096.
    pub processes: Option<u64>,
    /// The largest file a process may write, in MiB (`RLIMIT_FSIZE`).
    /// Default 10240 (10 GiB).
    pub file_size_mb: Option<u64>,
    /// Address space of each process, in MiB (`RLIMIT_AS`). Default: none
    /// (Node.js CLIs reserve gigabytes of address space they never use).
    pub memory_mb: Option<u64>,
    /// Each private scratch filesystem (the private HOME, `/tmp`,
    /// `/var/tmp`, `/run`, `/dev/shm`: memory, not disk), in MiB. Default 1024.
    pub scratch_mb: Option<u64>,
    /// What the agent's repository's filesystem may lose during a session,
    /// in MiB (see [`crate::diskwatch`]). Default 20480 (20 GiB).
    pub disk_mb: Option<u64>,
}

/// The limits a sandbox applies to the agent's processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub processes: u64,
    /// Bytes.
    pub file_size: u64,
    /// Bytes, when bounded.
    pub memory: Option<u64>,
    /// Bytes, each tmpfs.
    pub scratch: u64,
    /// Bytes the repository's filesystem may lose in one session.
    pub disk: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            processes: 4096,
            file_size: 10240 << 20,
            memory: None,
            scratch: 1024 << 20,
            disk: 20480 << 20,
        }
    }
}

/// `server.sandbox`, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxSettings {
    pub on: bool,
    pub allow_hosts: Vec<String>,
    pub read_paths: Vec<PathBuf>,
    pub limits: Limits,
}

impl SandboxSettings {
    /// Errors: a mode other than `on`/`off`, a relative read path, a host
    /// pattern that is not a name (`*.` prefix and `:port` allowed).
    pub fn resolve(c: &SandboxConfig) -> Result<SandboxSettings, Error> {
        let on = match c.mode.as_deref() {
            Some("off") => false,
            None | Some("on") => true,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "server.sandbox.mode: {other:?} is not `on` or `off`"
                )))
            }
        };
        for h in &c.allow_hosts {
            proxy::HostRule::parse(h)
                .map_err(|e| Error::invalid(format!("server.sandbox.allow_hosts: {e}")))?;
        }
        let read_paths = c
            .read_paths
            .iter()
            .map(|p| {
                let p = PathBuf::from(p);
                if p.is_absolute() {
                    Ok(p)
                } else {
                    Err(Error::invalid(format!(
                        "server.sandbox.read_paths: {} is not an absolute path",
                        p.display()
                    )))
                }
            })
            .collect::<Result<_, _>>()?;
        let l = &c.limits;
        let mib = |name: &str, v: u64| {
            v.checked_mul(1 << 20).filter(|b| *b > 0).ok_or_else(|| {
                Error::invalid(format!(
                    "server.sandbox.limits.{name}: {v} is not a size in MiB"
                ))
            })
        };
        let d = Limits::default();
        let limits = Limits {
            processes: match l.processes {
                Some(0) => {
                    return Err(Error::invalid(
                        "server.sandbox.limits.processes: 0 processes leaves the agent none",
                    ))
                }
                Some(n) => n,
                None => d.processes,
            },
            file_size: l
                .file_size_mb
                .map(|v| mib("file_size_mb", v))
                .transpose()?
                .unwrap_or(d.file_size),
            memory: l.memory_mb.map(|v| mib("memory_mb", v)).transpose()?,
            scratch: l
                .scratch_mb
                .map(|v| mib("scratch_mb", v))
                .transpose()?
                .unwrap_or(d.scratch),
            disk: l
                .disk_mb
                .map(|v| mib("disk_mb", v))
                .transpose()?
                .unwrap_or(d.disk),
        };
        Ok(SandboxSettings {
            on,
            allow_hosts: c.allow_hosts.clone(),
            read_paths,
            limits,
        })
    }
}

/// Why no sandbox can be made here, with the fix.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{why}")]
pub struct Unavailable {
    pub why: String,
    pub hint: String,
}

/// Find bubblewrap and check it can make the namespaces a session needs.
///
/// Errors: [`Unavailable`] when it is missing, or when user namespaces are
/// refused (a sysctl, AppArmor on Ubuntu 24.04), with the fix as a hint.
pub fn probe() -> Result<PathBuf, Unavailable> {
    // Asked once per process: the answer does not change during a run.
    static PROBED: std::sync::OnceLock<Result<PathBuf, Unavailable>> = std::sync::OnceLock::new();
    PROBED.get_or_init(probe_now).clone()
}

fn probe_now() -> Result<PathBuf, Unavailable> {
    if !cfg!(target_os = "linux") {
        return Err(Unavailable {
            why: "the sandbox needs Linux (bubblewrap)".into(),
            hint: "set server.sandbox.mode: off to run agents uncontained".into(),
        });
    }
    let Some(bwrap) = BWRAP_PATHS.iter().map(PathBuf::from).find(|p| p.is_file()) else {
        return Err(Unavailable {
            why: "bubblewrap (bwrap) is not installed".into(),
            hint: "install the distribution's `bubblewrap` package (apt-get install bubblewrap), or set server.sandbox.mode: off".into(),
        });
    };
    let out = std::process::Command::new(&bwrap)
        .args(["--unshare-all", "--die-with-parent", "--ro-bind", "/", "/"])
        .args(["--", "/bin/true"])
        .env_clear()
        .output();
    match out {
        Ok(o) if o.status.success() => Ok(bwrap),
        Ok(o) => Err(Unavailable {
            why: format!(
                "bubblewrap cannot make a sandbox here: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            hint: "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1; on Ubuntu 24.04 kernel.apparmor_restrict_unprivileged_userns=0), or set server.sandbox.mode: off".into(),
        }),
        Err(e) => Err(Unavailable {
            why: format!("cannot run {}: {e}", bwrap.display()),
            hint: "reinstall the `bubblewrap` package, or set server.sandbox.mode: off".into(),
        }),
    }
}

/// The paths a session's sandbox is made of.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The agent's repository: the only place it may write (besides its
    /// private HOME and /tmp), and where it starts.
    pub work: PathBuf,
    /// Hidden: the user's home, the user's repository root, its git
    /// directory (when outside the root).
    pub hide: Vec<PathBuf>,
    /// Visible read-only inside what is hidden: the user's objects, the
    /// session's prompt files, the agent's program, the tgs binary,
    /// `read_paths`.
    pub read: Vec<PathBuf>,
    /// tgs's proxy socket, bound at [`PROXY_SOCKET_INSIDE`].
    pub proxy_socket: Option<PathBuf>,
    /// The user's HOME: hidden, and the agent's private HOME is made there
    /// (so its CLI finds `~`), empty.
    pub home: Option<PathBuf>,
    /// The size of each private tmpfs, in bytes (`None`: bubblewrap's
    /// default, half the memory, each).
    pub scratch: Option<u64>,
}

impl Plan {
    /// A private tmpfs over `path`, of [`Plan::scratch`] bytes at most: an
    /// agent that fills it fills its own memory allowance, not the machine's.
    fn tmpfs(&self, a: &mut Vec<OsString>, path: &Path) {
        if let Some(size) = self.scratch {
            a.extend(["--size".into(), size.to_string().into()]);
        }
        a.extend(["--tmpfs".into(), path.as_os_str().to_owned()]);
    }

    /// bubblewrap's arguments, up to (not including) the `--` before the
    /// program. Mounts are made in order: the whole filesystem read-only,
    /// private directories over what is hidden, then what must be seen.
    pub fn bwrap_args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |xs: &[&str]| a.extend(xs.iter().map(OsString::from));
        push(&[
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
        ]);
        let mut hidden: Vec<PathBuf> = ["/tmp", "/var/tmp", "/run", "/dev/shm"]
            .iter()
            .map(PathBuf::from)
            .collect();
        hidden.extend(self.home.iter().cloned());
        hidden.extend(self.hide.iter().cloned());
        hidden.sort_by_key(|p| p.components().count());
        hidden.dedup();
        for h in &hidden {
            self.tmpfs(&mut a, h);
        }
        let mut read: Vec<&PathBuf> = self.read.iter().filter(|p| p.exists()).collect();
        read.sort_by_key(|p| p.components().count());
        read.dedup();
        // A read path that is itself hidden (the program's package tree is
        // the user's home, say) stays hidden: what must not be seen wins.
        for r in read.into_iter().filter(|r| !hidden.contains(r)) {
            a.extend([
                "--ro-bind".into(),
                r.clone().into_os_string(),
                r.clone().into_os_string(),
            ]);
            // A read path that holds a hidden one shows it again: hide it
            // anew (what must be seen inside comes next).
            for h in hidden.iter().filter(|h| h.starts_with(r) && *h != r) {
                self.tmpfs(&mut a, h);
            }
        }
        a.extend([
            "--bind".into(),
            self.work.clone().into_os_string(),
            self.work.clone().into_os_string(),
        ]);
        if let Some(s) = &self.proxy_socket {
            a.extend([
                "--ro-bind".into(),
                s.clone().into_os_string(),
                PROXY_SOCKET_INSIDE.into(),
            ]);
        }
        a.extend(["--chdir".into(), self.work.clone().into_os_string()]);
        a
    }
}

/// A session's sandbox, ready to wrap its command.
#[derive(Debug, Clone)]
pub struct Wall {
    /// bubblewrap, as [`probe`] found it.
    pub bwrap: PathBuf,
    /// The tgs binary (its `debug sandbox-init` runs inside).
    pub tgs: PathBuf,
    pub plan: Plan,
    /// Where the agent may connect, through the proxy.
    pub rules: Vec<proxy::HostRule>,
    /// The model APIs whose keys the proxy holds for the agent.
    pub routes: Vec<gateway::Route>,
    pub limits: Limits,
}

impl Wall {
    /// The sandbox of a session of `driver` running `cmd` in the agent's
    /// repository `work`: the user's home, repository and git directory
    /// hidden; the user's objects, the session's files (`session_dir`) and
    /// the program visible; `work` writable; the model's API (the driver's
    /// hosts, the hosts of `*_BASE_URL` in `cmd`'s environment) and
    /// `allow_hosts` reachable through the proxy.
    ///
    /// Errors: [`Error::Setup`] when no sandbox can be made here.
    pub fn for_session(
        repo: &crate::repo::Repo,
        settings: &SandboxSettings,
        driver: &crate::agent::driver::Driver,
        cmd: &crate::agent::driver::SessionCommand,
        work: &Path,
        session_dir: &Path,
    ) -> Result<Wall, Error> {
        let bwrap = probe().map_err(|u| Error::Setup {
            message: u.why,
            hint: Some(u.hint),
        })?;
        // The agent's PATH, else (a dry run's command has no environment) ours.
        let own_path = std::env::var_os("PATH");
        let path = cmd
            .env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| OsStr::new(v))
            .or(own_path.as_deref());
        let mut read = vec![repo.common_dir().join("objects"), session_dir.to_owned()];
        read.extend(program_roots(&cmd.program, path, work));
        read.extend(settings.read_paths.iter().cloned());
        let mut hide = vec![repo.root().to_owned(), repo.common_dir().to_owned()];
        hide.extend(std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from));
        // As root the agent is root inside too, and could read root's
        // files: root's home is hidden whatever HOME says.
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            hide.push(PathBuf::from("/root"));
        }
        let mut hosts: Vec<String> = driver.model_hosts().iter().map(|h| h.to_string()).collect();
        for (k, v) in &cmd.env {
            if k.ends_with("_BASE_URL") {
                hosts.extend(url_host_port(v));
            }
        }
        hosts.extend(settings.allow_hosts.iter().cloned());
        Ok(Wall {
            bwrap,
            tgs: std::env::current_exe()?,
            plan: Plan {
                work: work.to_owned(),
                hide,
                read,
                proxy_socket: None,
                home: std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .filter(|h| h != Path::new("/")),
                scratch: Some(settings.limits.scratch),
            },
            rules: proxy::rules(&hosts),
            routes: Vec::new(),
            limits: settings.limits,
        })
    }

    /// The command line that runs `program args` inside the sandbox, with
    /// the proxy listening on `socket`: `(bwrap, its arguments)`.
    pub fn wrap(
        &self,
        socket: &Path,
        program: &OsStr,
        args: &[OsString],
    ) -> (OsString, Vec<OsString>) {
        let mut plan = self.plan.clone();
        plan.proxy_socket = Some(socket.to_owned());
        plan.read.push(self.tgs.clone());
        let mut a = plan.bwrap_args();
        a.push("--".into());
        a.push(self.tgs.clone().into_os_string());
        for x in [
            "debug",
            "sandbox-init",
            "--socket",
            PROXY_SOCKET_INSIDE,
            "--port",
        ] {
            a.push(x.into());
        }
        a.push(PROXY_PORT_INSIDE.to_string().into());
        a.push(format!("--max-processes={}", self.limits.processes).into());
        a.push(format!("--max-file-size={}", self.limits.file_size).into());
        if let Some(m) = self.limits.memory {
            a.push(format!("--max-memory={m}").into());
        }
        a.push("--".into());
        a.push(program.to_owned());
        a.extend(args.iter().cloned());
        (self.bwrap.clone().into_os_string(), a)
    }

    /// The variables that send the agent's HTTP clients to the proxy.
    pub fn proxy_env() -> Vec<(String, String)> {
        let url = format!("http://127.0.0.1:{PROXY_PORT_INSIDE}");
        ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"]
            .iter()
            .map(|k| (k.to_string(), url.clone()))
            .collect()
    }
}

/// A program as a session starts it: inside the wall when there is one,
/// with the proxy (kept alive by this value) that is its way out.
pub struct Launch {
    pub program: OsString,
    pub args: Vec<OsString>,
    /// Variables to add to the program's environment (the proxy's).
    pub env: Vec<(String, String)>,
    pub proxy: Option<proxy::Proxy>,
}

impl Launch {
    /// `program args` unchanged without a wall; inside `wall` otherwise,
    /// with a proxy of its own whose refusals become lines of `log`.
    /// `model`: the gateway serves its model API (the agent; not its
    /// verify command, which holds no key).
    ///
    /// Errors: the proxy's socket cannot be made.
    pub fn new<W: std::io::Write + Send + 'static>(
        wall: Option<&Wall>,
        program: &OsStr,
        args: Vec<OsString>,
        log: &std::sync::Arc<std::sync::Mutex<W>>,
        model: bool,
    ) -> std::io::Result<Launch> {
        let Some(wall) = wall else {
            return Ok(Launch {
                program: program.to_owned(),
                args,
                env: Vec::new(),
                proxy: None,
            });
        };
        let log = log.clone();
        let on_denied = std::sync::Arc::new(move |d: &proxy::Denied| {
            let mut l = log.lock().unwrap_or_else(|p| p.into_inner());
            let _ = writeln!(
                l,
                "# tgs sandbox: egress denied: {} (not in server.sandbox.allow_hosts)",
                d.target
            );
        });
        let routes = if model {
            wall.routes.clone()
        } else {
            Vec::new()
        };
        let proxy = proxy::Proxy::start(None, wall.rules.clone(), routes, on_denied)?;
        let (program, args) = wall.wrap(&proxy.socket(), program, &args);
        Ok(Launch {
            program,
            args,
            env: Wall::proxy_env(),
            proxy: Some(proxy),
        })
    }
}

/// `host:port` of an `http(s)://` URL (a model API's base URL), when it is one.
pub fn url_host_port(url: &str) -> Option<String> {
    let (default, rest) = match url.trim() {
        u if u.starts_with("https://") => (443, &u[8..]),
        u if u.starts_with("http://") => (80, &u[7..]),
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    if authority.is_empty() {
        return None;
    }
    let has_port = if authority.starts_with('[') {
        authority.contains("]:")
    } else {
        authority.contains(':')
    };
    Some(if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:{default}")
    })
}

/// What an agent's program needs to be readable: the file (as named and as
/// its real path) and, for a program inside a `node_modules` tree (npm's
/// CLIs), the directory holding that tree. `program` as the session will start it
/// (a name is looked up in `path`).
pub fn program_roots(program: &str, path: Option<&std::ffi::OsStr>, cwd: &Path) -> Vec<PathBuf> {
    let found = if program.contains('/') {
        Some(cwd.join(program))
    } else {
        path.and_then(|p| {
            std::env::split_paths(p)
                .map(|d| d.join(program))
                .find(|c| c.is_file())
        })
    };
    let Some(found) = found else {
        return Vec::new();
    };
    let mut roots = Vec::new();
    for p in [Some(found.clone()), std::fs::canonicalize(&found).ok()]
        .into_iter()
        .flatten()
    {
        // The file alone: its directory may be the user's home or hold
        // other repositories (`read_paths` adds what else it needs).
        roots.push(p.clone());
        let comps: Vec<_> = p.components().collect();
        if let Some(i) = comps.iter().position(|c| c.as_os_str() == "node_modules") {
            roots.push(comps[..i].iter().collect());
        }
    }
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan over real directories (bubblewrap needs its sources to exist):
    /// `<tmp>/home/u` with the repository `r` in it.
    fn plan(t: &Path) -> Plan {
        let home = t.join("home/u");
        let r = home.join("r");
        std::fs::create_dir_all(r.join(".git/objects")).unwrap();
        std::fs::create_dir_all(r.join(".tgs/worktrees/x")).unwrap();
        Plan {
            work: r.join(".tgs/worktrees/x"),
            hide: vec![r.clone()],
            read: vec![r.join(".git/objects"), t.join("nonexistent")],
            proxy_socket: Some("/run/user/1/tgs-x/proxy.sock".into()),
            home: Some(home),
            scratch: Some(8 << 20),
        }
    }

    fn args(p: &Plan) -> Vec<String> {
        p.bwrap_args()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    fn at(a: &[String], xs: &[&str]) -> usize {
        a.windows(xs.len())
            .position(|w| w == xs)
            .unwrap_or_else(|| panic!("{xs:?} not in {a:?}"))
    }

    #[test]
    fn hidden_first_then_what_must_be_seen() {
        let t = tempfile::tempdir().unwrap();
        let p = plan(t.path());
        let a = args(&p);
        let s = |p: &Path| p.to_str().unwrap().to_owned();
        let (home, r) = (s(&t.path().join("home/u")), s(&t.path().join("home/u/r")));
        let (objects, work) = (format!("{r}/.git/objects"), format!("{r}/.tgs/worktrees/x"));
        for f in ["--unshare-all", "--die-with-parent", "--new-session"] {
            at(&a, &[f]);
        }
        at(&a, &["--cap-drop", "ALL"]);
        let hidden_home = at(&a, &["--tmpfs", &home]);
        let hidden_repo = at(&a, &["--tmpfs", &r]);
        let seen = at(&a, &["--ro-bind", &objects, &objects]);
        let writable = at(&a, &["--bind", &work, &work]);
        assert!(
            hidden_home < hidden_repo && hidden_repo < seen && seen < writable,
            "{a:?}"
        );
        at(
            &a,
            &[
                "--ro-bind",
                "/run/user/1/tgs-x/proxy.sock",
                PROXY_SOCKET_INSIDE,
            ],
        );
        assert!(
            !a.iter().any(|x| x.ends_with("nonexistent")),
            "missing paths are left out"
        );
        assert_eq!(a[a.len() - 2..], ["--chdir".to_owned(), work]);
    }

    #[test]
    fn a_read_path_above_a_hidden_one_hides_it_again() {
        let t = tempfile::tempdir().unwrap();
        let mut p = plan(t.path());
        // The program's directory holds the user's home (a test's layout).
        p.read.push(t.path().to_owned());
        let a = args(&p);
        let top = t.path().to_str().unwrap();
        let bound = at(&a, &["--ro-bind", top, top]);
        let home = t.path().join("home/u");
        let home = home.to_str().unwrap();
        let later: Vec<&[String]> = a[bound..].windows(2).collect();
        assert!(
            later.iter().any(|w| w[0] == "--tmpfs" && w[1] == home),
            "{a:?}"
        );
    }

    #[test]
    fn a_read_path_that_is_hidden_stays_hidden() {
        let t = tempfile::tempdir().unwrap();
        let mut p = plan(t.path());
        let home = t.path().join("home/u");
        p.read.push(home.clone());
        let a = args(&p);
        let home = home.to_str().unwrap();
        assert!(
            !a.windows(2).any(|w| w[0] == "--ro-bind" && w[1] == home),
            "{a:?}"
        );
    }

    #[test]
    fn settings_are_checked() {
        let ok = SandboxSettings::resolve(&SandboxConfig {
            mode: Some("on".into()),
            allow_hosts: vec!["registry.npmjs.org".into(), "*.pypi.org:443".into()],
            read_paths: vec!["/opt/tools".into()],
            limits: LimitsConfig::default(),
        })
        .unwrap();
        assert!(ok.on);
        assert_eq!(ok.limits, Limits::default());
        let d = SandboxSettings::resolve(&SandboxConfig::default()).unwrap();
        assert!(d.on, "on by default");
        let l = SandboxSettings::resolve(&SandboxConfig {
            limits: LimitsConfig {
                processes: Some(100),
                file_size_mb: Some(2),
                memory_mb: Some(8192),
                scratch_mb: Some(16),
                disk_mb: Some(100),
            },
            ..Default::default()
        })
        .unwrap()
        .limits;
        assert_eq!(
            (l.processes, l.file_size, l.memory, l.scratch, l.disk),
            (100, 2 << 20, Some(8192 << 20), 16 << 20, 100 << 20)
        );
        for bad in [
            SandboxConfig {
                mode: Some("maybe".into()),
                ..Default::default()
            },
            SandboxConfig {
                read_paths: vec!["relative".into()],
                ..Default::default()
            },
            SandboxConfig {
                allow_hosts: vec!["bad host/".into()],
                ..Default::default()
            },
            SandboxConfig {
                limits: LimitsConfig {
                    processes: Some(0),
                    ..Default::default()
                },
                ..Default::default()
            },
            SandboxConfig {
                limits: LimitsConfig {
                    file_size_mb: Some(u64::MAX),
                    ..Default::default()
                },
                ..Default::default()
            },
            SandboxConfig {
                limits: LimitsConfig {
                    disk_mb: Some(0),
                    ..Default::default()
                },
                ..Default::default()
            },
        ] {
            assert!(SandboxSettings::resolve(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn base_urls_give_host_and_port() {
        assert_eq!(
            url_host_port("https://api.anthropic.com").as_deref(),
            Some("api.anthropic.com:443")
        );
        assert_eq!(
            url_host_port("http://127.0.0.1:8080/v1").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(url_host_port("http://u:p@h/x").as_deref(), Some("h:80"));
        assert_eq!(url_host_port("http://[::1]:9/").as_deref(), Some("[::1]:9"));
        assert_eq!(url_host_port("http://[::1]/").as_deref(), Some("[::1]:80"));
        assert_eq!(url_host_port("ftp://x"), None);
        assert_eq!(url_host_port("http://"), None);
    }

    #[test]
    fn npm_programs_bring_their_tree() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("pkg/node_modules/.bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("claude"), "").unwrap();
        let roots = program_roots("claude", Some(bin.as_os_str()), Path::new("/"));
        assert!(roots.contains(&dir.path().join("pkg")), "{roots:?}");
        assert!(program_roots("nowhere", Some(bin.as_os_str()), Path::new("/")).is_empty());
    }
}
