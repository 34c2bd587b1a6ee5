//! The model gateway: a sandboxed agent's model key stays outside.
//!
//! The agent is given a stand-in for its key (`tgs-stand-in-...`) and a
//! base URL on a name only the proxy knows (`http://anthropic.model.tgs.invalid`);
//! its HTTP client sends its requests there through `HTTP_PROXY`, in plain
//! HTTP, to tgs's proxy, which sends each one on to the real API (TLS
//! where the real base URL is `https://`) with the stand-in replaced by the
//! key, and streams the answer back. A key the agent prints, commits or
//! sends elsewhere is only the stand-in. The same model as GitHub's agentic
//! workflows' API proxy. CLIs that ignore `HTTP_PROXY` cannot reach their
//! model at all then (no network in the sandbox): safe, and said in the
//! README.

use std::io::{self, BufRead, Read, Write};
use std::time::Duration;

use ureq::http;

/// The model APIs whose keys the gateway holds: provider, the variables
/// holding its keys, the variable holding its base URL, the default base.
const PROVIDERS: &[(&str, &[&str], &str, &str)] = &[
    (
        "anthropic",
        &["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"],
        "ANTHROPIC_BASE_URL",
        "https://api.anthropic.com",
    ),
    (
        "openai",
        &["OPENAI_API_KEY"],
        "OPENAI_BASE_URL",
        "https://api.openai.com/v1",
    ),
];

/// The largest request body sent on (a model request with its context).
const MAX_BODY: usize = 64 << 20;

/// One model API behind the gateway.
#[derive(Debug, Clone)]
pub struct Route {
    /// The name the agent reaches it by (`anthropic.model.tgs.invalid`).
    pub host: String,
    /// The real API's origin (`https://api.anthropic.com`), no path.
    pub upstream: String,
    /// `(stand-in, key)` pairs: each stand-in in a header becomes its key.
    pub keys: Vec<(String, String)>,
}

/// The routes for an agent given `env`, and `env` as the agent gets it:
/// each key replaced by a stand-in, each base URL pointed at the gateway.
/// Providers without a key in `env` are left alone.
pub fn plan(env: &[(String, String)]) -> (Vec<Route>, Vec<(String, String)>) {
    let mut env = env.to_vec();
    let mut routes = Vec::new();
    for (provider, key_vars, base_var, default) in PROVIDERS {
        let mut keys = Vec::new();
        for (k, v) in env.iter_mut() {
            if key_vars.contains(&k.as_str()) && !v.is_empty() {
                let stand_in = format!("tgs-stand-in-{provider}-{:016x}", fastrand::u64(..));
                keys.push((stand_in.clone(), std::mem::replace(v, stand_in)));
            }
        }
        if keys.is_empty() {
            continue;
        }
        let base = env
            .iter()
            .find(|(k, _)| k == base_var)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_string());
        let Some((origin, path)) = split_origin(&base) else {
            continue;
        };
        let host = format!("{provider}.model.tgs.invalid");
        env.retain(|(k, _)| k != base_var);
        env.push((
            base_var.to_string(),
            format!("http://{host}{}", path.trim_end_matches('/')),
        ));
        routes.push(Route {
            host,
            upstream: origin,
            keys,
        });
    }
    (routes, env)
}

/// `https://h:p/x/y` as (`https://h:p`, `/x/y`).
fn split_origin(url: &str) -> Option<(String, String)> {
    let scheme_end = url.find("://")? + 3;
    let (scheme, rest) = url.split_at(scheme_end);
    if !matches!(scheme, "http://" | "https://") {
        return None;
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    (!authority.is_empty()).then(|| (format!("{scheme}{authority}"), path.to_owned()))
}

/// Headers never sent on, either way: they describe one connection.
fn hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

/// Send the request whose head is `head` (absolute-form, read already) and
/// whose body follows in `body` on to `route`'s API, and stream its answer
/// to `client`. Errors answer `502` with the reason (never a key).
pub fn forward(route: &Route, head: &[u8], body: &mut impl BufRead, client: &mut impl Write) {
    if let Err(why) = try_forward(route, head, body, client) {
        let text = format!("tgs model gateway: {why}\n");
        let _ = write!(
            client,
            "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
            text.len()
        );
    }
}

fn try_forward(
    route: &Route,
    head: &[u8],
    body: &mut impl BufRead,
    client: &mut impl Write,
) -> Result<(), String> {
    let text = std::str::from_utf8(head).map_err(|_| "the request head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(format!("bad request line {line:?}"));
    };
    let after_scheme = target.strip_prefix("http://").unwrap_or(target);
    let path = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", route.upstream));
    let mut length = 0usize;
    for h in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = h.split_once(':') else {
            continue;
        };
        let (name, mut value) = (name.trim().to_ascii_lowercase(), value.trim().to_owned());
        if name == "content-length" {
            length = value.parse().map_err(|_| "a bad Content-Length")?;
        }
        if name == "transfer-encoding" {
            return Err("chunked request bodies are not supported".into());
        }
        if hop_by_hop(&name) {
            continue;
        }
        for (stand_in, key) in &route.keys {
            value = value.replace(stand_in, key);
        }
        req = req.header(name.as_str(), value);
    }
    if length > MAX_BODY {
        return Err(format!(
            "a request body of {length} bytes is over the limit"
        ));
    }
    let mut data = vec![0u8; length];
    body.read_exact(&mut data).map_err(|e| e.to_string())?;
    let req = req.body(data).map_err(|e| e.to_string())?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut res = agent
        .run(req)
        .map_err(|e| format!("{}: {e}", route.upstream))?;
    let status = res.status();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    for (name, value) in res.headers() {
        if hop_by_hop(name.as_str()) {
            continue;
        }
        if let Ok(v) = value.to_str() {
            out.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    client
        .write_all(out.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut reader = res.body_mut().with_config().limit(u64::MAX).reader();
    copy_flushing(&mut reader, client).map_err(|e| e.to_string())?;
    Ok(())
}

/// Copy, flushing after each read: a streamed answer (server-sent events)
/// reaches the agent as it comes.
fn copy_flushing(from: &mut impl Read, to: &mut impl Write) -> io::Result<()> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return to.flush();
        }
        to.write_all(&buf[..n])?;
        to.flush()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_stand_ins_and_bases_the_gateway() {
        let env = vec![
            ("ANTHROPIC_API_KEY".to_owned(), "sk-ant-real".to_owned()),
            (
                "ANTHROPIC_BASE_URL".to_owned(),
                "http://127.0.0.1:9/".to_owned(),
            ),
            ("OPENAI_API_KEY".to_owned(), String::new()),
            ("PATH".to_owned(), "/bin".to_owned()),
        ];
        let (routes, agent) = plan(&env);
        assert_eq!(routes.len(), 1, "no key, no route: {routes:?}");
        let r = &routes[0];
        assert_eq!(r.host, "anthropic.model.tgs.invalid");
        assert_eq!(r.upstream, "http://127.0.0.1:9");
        assert_eq!(r.keys[0].1, "sk-ant-real");
        let get = |k: &str| agent.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("ANTHROPIC_API_KEY"), Some(r.keys[0].0.as_str()));
        assert_eq!(
            get("ANTHROPIC_BASE_URL"),
            Some("http://anthropic.model.tgs.invalid")
        );
        assert!(!format!("{agent:?}").contains("sk-ant-real"));
        let (routes, agent) = plan(&[("OPENAI_API_KEY".to_owned(), "sk-o".to_owned())]);
        assert_eq!(routes[0].upstream, "https://api.openai.com");
        assert!(agent.contains(&(
            "OPENAI_BASE_URL".to_owned(),
            "http://openai.model.tgs.invalid/v1".to_owned()
        )));
    }

    /// A request with the stand-in reaches the API with the key; the answer
    /// streams back.
    #[test]
    fn the_key_is_put_in_on_the_way_out() {
        let api = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = api.local_addr().unwrap().port();
        let seen = std::thread::spawn(move || {
            let (mut s, _) = api.accept().unwrap();
            let mut r = io::BufReader::new(s.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut l = String::new();
                r.read_line(&mut l).unwrap();
                if l == "\r\n" {
                    break;
                }
                head.push_str(&l);
            }
            let mut body = [0u8; 2];
            r.read_exact(&mut body).unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 5\r\n\r\nevent").unwrap();
            (head, body)
        });
        let env = vec![
            ("ANTHROPIC_API_KEY".to_owned(), "sk-ant-real".to_owned()),
            (
                "ANTHROPIC_BASE_URL".to_owned(),
                format!("http://127.0.0.1:{port}"),
            ),
        ];
        let (routes, agent) = plan(&env);
        let stand_in = &agent[0].1;
        let head = format!(
            "POST http://anthropic.model.tgs.invalid/v1/messages HTTP/1.1\r\nHost: anthropic.model.tgs.invalid\r\nx-api-key: {stand_in}\r\nContent-Length: 2\r\nProxy-Connection: keep-alive\r\n\r\n"
        );
        let mut body = io::BufReader::new(&b"{}"[..]);
        let mut out = Vec::new();
        forward(&routes[0], head.as_bytes(), &mut body, &mut out);
        let (got, sent) = seen.join().unwrap();
        assert!(got.starts_with("POST /v1/messages HTTP/1.1"), "{got}");
        assert!(got.contains("x-api-key: sk-ant-real"), "{got}");
        assert!(!got.contains(stand_in.as_str()) && !got.to_lowercase().contains("proxy-"));
        assert_eq!(&sent, b"{}");
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.starts_with("HTTP/1.1 200 OK\r\n") && out.ends_with("\r\n\r\nevent"),
            "{out}"
        );
        assert!(out.contains("content-type: text/event-stream"), "{out}");
    }
}
