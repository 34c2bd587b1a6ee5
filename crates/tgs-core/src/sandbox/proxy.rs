//! tgs's filtering proxy: the sandboxed agent's only way out.
//!
//! One proxy per session, listening on a Unix socket in a private directory
//! (bound into the sandbox, where [`super::init`] forwards the agent's
//! loopback connections to it). It speaks the two forms agents' HTTP
//! clients use with `HTTP_PROXY`/`HTTPS_PROXY`: `CONNECT host:port` (TLS
//! tunnels) and absolute-form requests (`POST http://host:port/path`, plain
//! HTTP, sent on with `Connection: close`). A target is allowed only when a
//! [`HostRule`] matches it; anything else gets `403` naming the host and the
//! setting to change, and the refusal is reported to the session (its
//! transcript, its record's count). Names are resolved here, outside the
//! sandbox; the agent has no DNS of its own.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::gateway::Route;

/// The longest request head read (request line and headers), in bytes.
const MAX_HEAD: usize = 64 * 1024;

/// How long a connection to an allowed host may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// One allowed target: `host`, `*.domain` (any subdomain, not the domain
/// itself), each optionally with `:port` (else any port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    host: String,
    wildcard: bool,
    port: Option<u16>,
}

impl HostRule {
    /// Errors: an empty name, characters a host name cannot hold, a bad port.
    pub fn parse(rule: &str) -> Result<HostRule, String> {
        let rule = rule.trim().to_ascii_lowercase();
        let (host, port) =
            split_host_port(&rule).ok_or_else(|| format!("{rule:?} is not a host or host:port"))?;
        let (wildcard, name) = match host.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, host),
        };
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
        if !valid {
            return Err(format!("{rule:?} is not a host or host:port"));
        }
        Ok(HostRule {
            host: name.trim_matches(['[', ']']).to_owned(),
            wildcard,
            port,
        })
    }

    /// Whether `host:port` (a name or an address, any case) is allowed.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        let host = host.trim_end_matches('.');
        let name_ok = if self.wildcard {
            host.strip_suffix(&self.host)
                .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1)
        } else {
            host == self.host
        };
        name_ok && self.port.is_none_or(|p| p == port)
    }
}

/// `host:port`, `[v6]:port`, or `host` alone (port `None`).
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (addr, tail) = rest.split_once(']')?;
        let port = match tail.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if tail.is_empty() => None,
            None => return None,
        };
        return Some((addr, port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some((h, Some(p.parse().ok()?))),
        Some(_) => Some((s, None)),
        None => Some((s, None)),
    }
}

/// The rules for a session: its model API's hosts and `allow_hosts`.
pub fn rules(patterns: &[String]) -> Vec<HostRule> {
    patterns
        .iter()
        .filter_map(|p| HostRule::parse(p).ok())
        .collect()
}

/// A refused connection: `host:port` and how it was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub target: String,
}

/// A running proxy; stopped (and its socket removed) when dropped.
pub struct Proxy {
    dir: tempfile::TempDir,
    stop: Arc<AtomicBool>,
    denied: Arc<AtomicU32>,
    /// The first [`MAX_TARGETS_KEPT`] refused targets, each once.
    targets: Arc<std::sync::Mutex<Vec<String>>>,
}

/// How many refused targets a proxy remembers (the count goes on).
const MAX_TARGETS_KEPT: usize = 20;

impl Proxy {
    /// Listen on a new socket in a private directory under `parent` (or the
    /// system's temporary directory); `on_denied` hears of each refusal,
    /// from the connection's thread.
    /// Requests for a [`Route`]'s host go to its model API with the key
    /// ([`super::gateway`]).
    pub fn start(
        parent: Option<&Path>,
        rules: Vec<HostRule>,
        routes: Vec<Route>,
        on_denied: Arc<dyn Fn(&Denied) + Send + Sync>,
    ) -> io::Result<Proxy> {
        let mut b = tempfile::Builder::new();
        b.prefix("tgs-proxy-");
        let dir = match parent {
            Some(p) => b.tempdir_in(p)?,
            None => b.tempdir()?,
        };
        // Blocking: a connection is served the moment it comes (the drop
        // wakes the loop with one of its own to stop it).
        let listener = UnixListener::bind(dir.path().join("proxy.sock"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let denied = Arc::new(AtomicU32::new(0));
        let targets = Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = targets.clone();
        let on_denied: Arc<dyn Fn(&Denied) + Send + Sync> = Arc::new(move |d: &Denied| {
            let mut t = kept.lock().unwrap_or_else(|p| p.into_inner());
            if t.len() < MAX_TARGETS_KEPT && !t.contains(&d.target) {
                t.push(d.target.clone());
            }
            drop(t);
            on_denied(d);
        });
        let rules = Arc::new((rules, routes));
        let (s, d) = (stop.clone(), denied.clone());
        std::thread::Builder::new()
            .name("tgs-proxy".into())
            .spawn(move || accept_loop(listener, rules, s, d, on_denied))?;
        Ok(Proxy {
            dir,
            stop,
            denied,
            targets,
        })
    }

    /// The socket to bind into the sandbox.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("proxy.sock")
    }

    /// How many connections were refused so far.
    pub fn denied(&self) -> u32 {
        self.denied.load(Ordering::Relaxed)
    }

    /// The targets refused so far (`host:port`, each once, the first 20).
    pub fn denied_targets(&self) -> Vec<String> {
        self.targets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop, which then sees `stop`.
        let _ = std::os::unix::net::UnixStream::connect(self.socket());
    }
}

/// The proxy's rules and the gateway's routes.
type Policy = (Vec<HostRule>, Vec<Route>);

fn accept_loop(
    listener: UnixListener,
    rules: Arc<Policy>,
    stop: Arc<AtomicBool>,
    denied: Arc<AtomicU32>,
    on_denied: Arc<dyn Fn(&Denied) + Send + Sync>,
) {
    loop {
        let accepted = listener.accept();
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match accepted {
            Ok((conn, _)) => {
                let (rules, denied, on_denied) = (rules.clone(), denied.clone(), on_denied.clone());
                let _ = std::thread::Builder::new()
                    .name("tgs-proxy-conn".into())
                    .spawn(move || {
                        // Told before the agent hears the refusal.
                        let refused = |d: &Denied| {
                            denied.fetch_add(1, Ordering::Relaxed);
                            on_denied(d);
                        };
                        serve(conn, &rules, &refused);
                    });
            }
            // A transient failure (too many open files): breathe, go on.
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A parsed request head: what to reach and what to send it first.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// `CONNECT host:port`: a tunnel.
    Connect { host: String, port: u16 },
    /// An absolute-form request: sent on as `head` (origin-form, with
    /// `Connection: close`).
    Forward {
        host: String,
        port: u16,
        head: Vec<u8>,
    },
}

/// Parse a request head (up to and including the blank line).
///
/// Errors: a malformed request line, a target that is not absolute
/// (`http://...`) or `host:port`, a scheme other than http.
pub fn parse_head(head: &[u8]) -> Result<Request, String> {
    let text = std::str::from_utf8(head).map_err(|_| "the request head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("bad request line {line:?}"));
    };
    if method == "CONNECT" {
        let (host, port) = split_host_port(target)
            .and_then(|(h, p)| Some((h, p?)))
            .ok_or_else(|| format!("CONNECT to {target:?}: not host:port"))?;
        return Ok(Request::Connect {
            host: host.to_owned(),
            port,
        });
    }
    let rest = target
        .strip_prefix("http://")
        .ok_or_else(|| format!("{target:?} is not an absolute http:// target"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) =
        split_host_port(authority).ok_or_else(|| format!("{authority:?} is not host[:port]"))?;
    let mut out = format!("{method} {path} {version}\r\n");
    for h in lines.filter(|l| !l.is_empty()) {
        let name = h.split(':').next().unwrap_or_default().to_ascii_lowercase();
        if !matches!(
            name.as_str(),
            "connection" | "proxy-connection" | "keep-alive"
        ) && !name.starts_with("proxy-")
        {
            out.push_str(h);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    Ok(Request::Forward {
        host: host.to_owned(),
        port: port.unwrap_or(80),
        head: out.into_bytes(),
    })
}

/// Serve one connection; `refused` hears of a refusal before the client.
/// (`None` only ends it early.)
fn serve(conn: UnixStream, policy: &Policy, refused: &dyn Fn(&Denied)) -> Option<()> {
    let (rules, routes) = policy;
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let head = read_head(&mut reader).ok()?;
    let mut client = conn;
    let req = match parse_head(&head) {
        Ok(r) => r,
        Err(why) => {
            let _ = respond(
                &mut client,
                "400 Bad Request",
                &format!("tgs proxy: {why}\n"),
            );
            return None;
        }
    };
    let (host, port) = match &req {
        Request::Connect { host, port } | Request::Forward { host, port, .. } => (host, *port),
    };
    let target = format!("{host}:{port}");
    if let Request::Forward { .. } = &req {
        if let Some(route) = routes.iter().find(|r| r.host.eq_ignore_ascii_case(host)) {
            super::gateway::forward(route, &head, &mut reader, &mut client);
            return None;
        }
    }
    if !rules.iter().any(|r| r.allows(host, port)) {
        let text =
            format!("tgs sandbox: {target} is not an allowed host (server.sandbox.allow_hosts)\n");
        refused(&Denied { target });
        let _ = respond(&mut client, "403 Forbidden", &text);
        return None;
    }
    let upstream = match connect(host, port) {
        Ok(s) => s,
        Err(e) => {
            let _ = respond(
                &mut client,
                "502 Bad Gateway",
                &format!("tgs proxy: {target}: {e}\n"),
            );
            return None;
        }
    };
    let mut up = upstream;
    let first = match req {
        Request::Connect { .. } => {
            if client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .is_err()
            {
                return None;
            }
            Vec::new()
        }
        Request::Forward { head, .. } => head,
    };
    if up.write_all(&first).is_err() || up.write_all(reader.buffer()).is_err() {
        return None;
    }
    super::relay::both_ways(client, up);
    None
}

fn connect(host: &str, port: u16) -> io::Result<TcpStream> {
    use std::net::ToSocketAddrs;
    let mut last = io::Error::other("the name has no address");
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Read up to the blank line ending a request head, at most [`MAX_HEAD`].
fn read_head(r: &mut BufReader<UnixStream>) -> io::Result<Vec<u8>> {
    let mut head = Vec::new();
    loop {
        let n = r
            .by_ref()
            .take(MAX_HEAD as u64)
            .read_until(b'\n', &mut head)?;
        if n == 0 || head.len() >= MAX_HEAD {
            return Err(io::Error::other("no complete request head"));
        }
        if head.ends_with(b"\r\n\r\n") || head == b"\r\n" {
            return Ok(head);
        }
    }
}

fn respond(w: &mut impl Write, status: &str, body: &str) -> io::Result<()> {
    write!(
        w,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_hosts_and_ports() {
        let r = |s: &str| HostRule::parse(s).unwrap();
        assert!(r("api.anthropic.com").allows("API.anthropic.com", 443));
        assert!(r("api.anthropic.com:443").allows("api.anthropic.com", 443));
        assert!(!r("api.anthropic.com:443").allows("api.anthropic.com", 80));
        assert!(!r("api.anthropic.com").allows("evil-api.anthropic.com", 443));
        assert!(!r("anthropic.com").allows("api.anthropic.com", 443));
        assert!(r("*.pypi.org").allows("files.pypi.org", 443));
        assert!(!r("*.pypi.org").allows("pypi.org", 443));
        assert!(!r("*.pypi.org").allows("evilpypi.org", 443));
        assert!(r("127.0.0.1:8080").allows("127.0.0.1", 8080));
        assert!(!r("127.0.0.1:8080").allows("127.0.0.1", 8081));
        assert!(r("[::1]:8080").allows("[::1]", 8080));
        for bad in ["", "a b", "x/y", "h:port", "h:99999"] {
            assert!(HostRule::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn heads_are_parsed_and_rewritten() {
        assert_eq!(
            parse_head(b"CONNECT api.anthropic.com:443 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok(Request::Connect {
                host: "api.anthropic.com".into(),
                port: 443
            })
        );
        let Ok(Request::Forward { host, port, head }) = parse_head(
            b"POST http://127.0.0.1:9/v1/messages?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9\r\nProxy-Connection: keep-alive\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n",
        ) else {
            panic!()
        };
        assert_eq!((host.as_str(), port), ("127.0.0.1", 9));
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "POST /v1/messages?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
        );
        assert!(parse_head(b"GET /relative HTTP/1.1\r\n\r\n").is_err());
        assert!(parse_head(b"GET https://x/ HTTP/1.1\r\n\r\n").is_err());
        assert!(parse_head(b"CONNECT nohost HTTP/1.1\r\n\r\n").is_err());
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
    }

    /// A real exchange: an allowed plain request reaches a loopback server,
    /// a refused one is counted and answered 403.
    #[test]
    fn allowed_requests_pass_and_others_are_refused() {
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap();
            assert!(buf[..n].starts_with(b"GET /ok HTTP/1.1\r\n"));
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
                .unwrap();
        });
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let proxy = Proxy::start(
            None,
            rules(&[format!("127.0.0.1:{port}")]),
            Vec::new(),
            Arc::new(move |d: &Denied| s2.lock().unwrap().push(d.target.clone())),
        )
        .unwrap();
        let ask = |req: String| {
            let mut c = UnixStream::connect(proxy.socket()).unwrap();
            c.write_all(req.as_bytes()).unwrap();
            let mut out = String::new();
            c.read_to_string(&mut out).unwrap();
            out
        };
        let ok = ask(format!(
            "GET http://127.0.0.1:{port}/ok HTTP/1.1\r\nHost: x\r\n\r\n"
        ));
        assert!(
            ok.starts_with("HTTP/1.1 200 OK") && ok.ends_with("hi"),
            "{ok}"
        );
        let no = ask("CONNECT example.com:443 HTTP/1.1\r\n\r\n".into());
        assert!(
            no.starts_with("HTTP/1.1 403") && no.contains("example.com:443"),
            "{no}"
        );
        assert_eq!(proxy.denied(), 1);
        assert_eq!(*seen.lock().unwrap(), ["example.com:443"]);
    }
}
