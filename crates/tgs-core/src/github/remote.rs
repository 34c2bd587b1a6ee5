//! Which GitHub repository tgs talks to, and how: the token, `owner/name`
//! and the API base, read from environment variables (passed in, so this is
//! pure) or, for `owner/name`, from the `origin` remote's URL.

use std::fmt;

use crate::Error;

/// The public GitHub API; `GITHUB_API_URL` overrides it (Enterprise, tests).
pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// What tgs needs to reach one repository. `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    pub token: String,
    /// The variable the token came from, for messages (never the token itself).
    pub token_var: &'static str,
    pub owner: String,
    pub name: String,
    /// Without a trailing slash, e.g. `https://api.github.com`.
    pub api_url: String,
    /// The web address of the repository (`https://github.com/o/r`), for
    /// links in PR bodies; None when it cannot be told from the API base.
    pub web_url: Option<String>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("token", &"<redacted>")
            .field("token_var", &self.token_var)
            .field("owner", &self.owner)
            .field("name", &self.name)
            .field("api_url", &self.api_url)
            .field("web_url", &self.web_url)
            .finish()
    }
}

/// Where tgs looks for its GitHub token, in order: `TGS_GITHUB_TOKEN` (set
/// on purpose for tgs: an App installation token or a personal access token,
/// whose events start workflows), then the usual `GITHUB_TOKEN` and
/// `GH_TOKEN`.
pub const TOKEN_VARS: [&str; 3] = ["TGS_GITHUB_TOKEN", "GITHUB_TOKEN", "GH_TOKEN"];

/// The token and the variable it came from, the first of [`TOKEN_VARS`]
/// that `var` (which trims and treats empty as unset) has.
pub fn pick_token(var: impl Fn(&str) -> Option<String>) -> Option<(String, &'static str)> {
    TOKEN_VARS.iter().find_map(|k| var(k).map(|t| (t, *k)))
}

impl Config {
    /// `owner/name`.
    pub fn slug(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }

    /// Read the configuration from `vars` (a lookup such as
    /// `|k| std::env::var(k).ok()`) and the origin URL. None when no token is
    /// set: GitHub is then simply not used. Errors when a token is set but the
    /// repository cannot be told, so a misconfiguration is not silent.
    ///
    /// - token: the first of [`TOKEN_VARS`] set (empty counts as unset);
    /// - repository: `GITHUB_REPOSITORY` (`owner/name`), else the origin URL;
    /// - API base: `GITHUB_API_URL`, else `https://api.github.com`;
    /// - web base for links: `GITHUB_SERVER_URL`, else told from the API base.
    pub fn from_vars(
        vars: impl Fn(&str) -> Option<String>,
        origin_url: Option<&str>,
    ) -> Result<Option<Config>, Error> {
        let var = |k: &str| {
            vars(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let Some((token, token_var)) = pick_token(var) else {
            return Ok(None);
        };
        // Checked here so a bad value fails early and no message echoes it.
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::invalid(format!(
                "{token_var} contains spaces or control characters; it must be the bare token"
            )));
        }
        let api_explicit = var("GITHUB_API_URL");
        let api_url = match &api_explicit {
            Some(u) => base_url(u, "GITHUB_API_URL")?,
            None => DEFAULT_API_URL.to_owned(),
        };
        let (owner, name) = match var("GITHUB_REPOSITORY") {
            Some(slug) => parse_slug(&slug).map_err(|why| {
                Error::invalid(format!(
                    "GITHUB_REPOSITORY={slug:?} is not owner/name: {why}"
                ))
            })?,
            None => {
                let Some(url) = origin_url.map(str::trim).filter(|u| !u.is_empty()) else {
                    return Err(Error::invalid(format!(
                        "{token_var} is set but the GitHub repository is unknown: there is no \
                         origin remote; set GITHUB_REPOSITORY=owner/name"
                    )));
                };
                let remote = parse_remote_url(url)?;
                // An https origin on another host is GitHub Enterprise: without
                // GITHUB_API_URL tgs would ask github.com about a namesake.
                // (ssh hosts may be aliases from ~/.ssh/config, so they pass.)
                if api_explicit.is_none() && remote.https && !is_github_dot_com(&remote.host) {
                    return Err(Error::invalid(format!(
                        "the origin is on {host}, not github.com: set GITHUB_API_URL \
                         (for GitHub Enterprise: https://{host}/api/v3)",
                        host = remote.host
                    )));
                }
                (remote.owner, remote.name)
            }
        };
        let server = match var("GITHUB_SERVER_URL") {
            Some(u) => Some(base_url(&u, "GITHUB_SERVER_URL")?),
            None => web_base_from_api(&api_url),
        };
        let web_url = server.map(|s| format!("{s}/{owner}/{name}"));
        Ok(Some(Config {
            token,
            token_var,
            owner,
            name,
            api_url,
            web_url,
        }))
    }
}

/// A repository named by a git remote URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRepo {
    /// The host as written (an ssh alias, maybe), without user or port.
    pub host: String,
    pub owner: String,
    pub name: String,
    /// Written as an http(s) URL (so the host is a real host name).
    pub https: bool,
}

/// Parse a GitHub remote URL: `https://github.com/o/r(.git)`,
/// `https://host/o/r`, `git@github.com:o/r.git`, `ssh://git@host(:port)/o/r.git`.
/// Anything else (local paths, `file://`, nested groups) is rejected with a
/// message that says what to do. Credentials in the URL are never echoed.
pub fn parse_remote_url(url: &str) -> Result<RemoteRepo, Error> {
    let url = url.trim();
    let reject = |why: &str| {
        Error::invalid(format!(
            "the origin URL {} is not a GitHub repository URL ({why}); expected \
             https://github.com/OWNER/REPO(.git), git@github.com:OWNER/REPO.git or \
             ssh://git@HOST/OWNER/REPO.git, or set GITHUB_REPOSITORY=OWNER/REPO",
            redact_url(url)
        ))
    };
    let lower = url.to_ascii_lowercase();
    let scheme_rest = ["https://", "http://", "ssh://", "git+ssh://"]
        .iter()
        .find(|p| lower.starts_with(**p))
        .map(|p| (p.starts_with("http"), &url[p.len()..]));
    let (host, path, https) = if let Some((https, rest)) = scheme_rest {
        let (authority, path) = rest.split_once('/').ok_or_else(|| reject("no path"))?;
        // user:password@host:port -> host
        let host = authority.rsplit('@').next().unwrap_or_default();
        let host = strip_port(host);
        (host, path, https)
    } else if url.contains("://") {
        return Err(reject("unsupported scheme"));
    } else if let Some((before, path)) = url.split_once(':') {
        // scp-like `[user@]host:owner/repo(.git)`; a path after the colon
        // that starts with '/' or a host with '/' is a local path instead.
        if before.contains('/') || before.contains('\\') || path.starts_with('/') {
            return Err(reject("a local path"));
        }
        let host = before.rsplit('@').next().unwrap_or_default();
        (host, path, false)
    } else {
        return Err(reject("a local path"));
    };
    if host.is_empty() {
        return Err(reject("no host"));
    }
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let (owner, name) = parse_slug(path).map_err(|why| reject(&why))?;
    Ok(RemoteRepo {
        host: host.to_ascii_lowercase(),
        owner,
        name,
        https,
    })
}

/// `owner/name`, checked against GitHub's character rules.
pub fn parse_slug(slug: &str) -> Result<(String, String), String> {
    let parts: Vec<&str> = slug.split('/').collect();
    let [owner, name] = parts.as_slice() else {
        return Err("the path must be exactly OWNER/REPO".into());
    };
    let owner_ok = !owner.is_empty()
        && owner.len() <= 39
        && owner.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !owner_ok {
        return Err(format!("{owner:?} is not a valid owner name"));
    }
    let name_ok = !name.is_empty()
        && name.len() <= 100
        && *name != "."
        && *name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok {
        return Err(format!("{name:?} is not a valid repository name"));
    }
    Ok(((*owner).to_owned(), (*name).to_owned()))
}

/// The URL with any `user:password@` replaced, for messages.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..end].rfind('@') {
            return format!("{scheme}://***@{}", &rest[at + 1..]);
        }
    }
    url.to_owned()
}

fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

fn is_github_dot_com(host: &str) -> bool {
    matches!(host, "github.com" | "www.github.com" | "ssh.github.com")
}

/// An http(s) base URL without a trailing slash.
fn base_url(value: &str, var: &str) -> Result<String, Error> {
    let v = value.trim_end_matches('/');
    let lower = v.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !r.contains(char::is_whitespace) => Ok(v.to_owned()),
        _ => Err(Error::invalid(format!(
            "{var}={} is not an http(s) URL",
            redact_url(value)
        ))),
    }
}

/// `https://api.github.com` -> `https://github.com`; Enterprise's
/// `https://host/api/v3` -> `https://host`; anything else is unknown.
fn web_base_from_api(api: &str) -> Option<String> {
    let lower = api.to_ascii_lowercase();
    if lower == DEFAULT_API_URL {
        return Some("https://github.com".into());
    }
    lower
        .ends_with("/api/v3")
        .then(|| api[..api.len() - "/api/v3".len()].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    fn remote(url: &str) -> (String, String, String) {
        let r = parse_remote_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        (r.host, r.owner, r.name)
    }

    #[test]
    fn no_token_means_no_github() {
        let got = Config::from_vars(vars(&[("GITHUB_REPOSITORY", "o/r")]), None).unwrap();
        assert!(got.is_none());
        // Empty values count as unset, and the origin is not even looked at.
        let got = Config::from_vars(vars(&[("GH_TOKEN", " ")]), Some("/tmp/x")).unwrap();
        assert!(got.is_none());
    }

    #[test]
    fn token_and_repository_from_variables() {
        let c = Config::from_vars(
            vars(&[
                ("GITHUB_TOKEN", "ghp_a\n"),
                ("GITHUB_REPOSITORY", "acme/widgets"),
            ]),
            Some("git@github.com:other/thing.git"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.token, "ghp_a");
        assert_eq!(c.token_var, "GITHUB_TOKEN");
        assert_eq!(
            c.slug(),
            "acme/widgets",
            "GITHUB_REPOSITORY wins over origin"
        );
        assert_eq!(c.api_url, DEFAULT_API_URL);
        assert_eq!(
            c.web_url.as_deref(),
            Some("https://github.com/acme/widgets")
        );
        assert!(!format!("{c:?}").contains("ghp_a"), "Debug hides the token");
    }

    #[test]
    fn gh_token_and_origin() {
        let c = Config::from_vars(
            vars(&[("GH_TOKEN", "t")]),
            Some("https://github.com/acme/widgets.git"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.token_var, "GH_TOKEN");
        {
            let t = Config::from_vars(
                vars(&[
                    ("TGS_GITHUB_TOKEN", "app"),
                    ("GITHUB_TOKEN", "workflow"),
                    ("GITHUB_REPOSITORY", "o/r"),
                ]),
                None,
            )
            .unwrap()
            .unwrap();
            assert_eq!(t.token_var, "TGS_GITHUB_TOKEN", "a token set for tgs wins");
            let t = Config::from_vars(
                vars(&[
                    ("TGS_GITHUB_TOKEN", " "),
                    ("GITHUB_TOKEN", "workflow"),
                    ("GITHUB_REPOSITORY", "o/r"),
                ]),
                None,
            )
            .unwrap()
            .unwrap();
            assert_eq!(
                t.token_var, "GITHUB_TOKEN",
                "an empty secret counts as unset"
            );
        }
        assert_eq!((c.owner.as_str(), c.name.as_str()), ("acme", "widgets"));
    }

    #[test]
    fn api_and_server_urls() {
        let c = Config::from_vars(
            vars(&[
                ("GITHUB_TOKEN", "t"),
                ("GITHUB_API_URL", "https://ghe.example.com/api/v3/"),
            ]),
            Some("https://ghe.example.com/acme/widgets"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.api_url, "https://ghe.example.com/api/v3");
        assert_eq!(
            c.web_url.as_deref(),
            Some("https://ghe.example.com/acme/widgets")
        );
        let c = Config::from_vars(
            vars(&[
                ("GITHUB_TOKEN", "t"),
                ("GITHUB_API_URL", "http://127.0.0.1:4000"),
                ("GITHUB_REPOSITORY", "o/r"),
            ]),
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.api_url, "http://127.0.0.1:4000");
        assert_eq!(
            c.web_url, None,
            "a loopback API says nothing of the web host"
        );
        let c = Config::from_vars(
            vars(&[
                ("GITHUB_TOKEN", "t"),
                ("GITHUB_REPOSITORY", "o/r"),
                ("GITHUB_SERVER_URL", "https://gh.example/"),
            ]),
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.web_url.as_deref(), Some("https://gh.example/o/r"));
    }

    #[test]
    fn configuration_errors_are_clear() {
        let err = |v: &[(&str, &str)], origin: Option<&str>| {
            Config::from_vars(vars(v), origin).unwrap_err().to_string()
        };
        let e = err(&[("GITHUB_TOKEN", "t")], None);
        assert!(e.contains("GITHUB_REPOSITORY=owner/name"), "{e}");
        let e = err(
            &[("GITHUB_TOKEN", "t"), ("GITHUB_REPOSITORY", "just-a-name")],
            None,
        );
        assert!(e.contains("not owner/name"), "{e}");
        let e = err(&[("GITHUB_TOKEN", "t")], Some("/srv/git/repo.git"));
        assert!(e.contains("not a GitHub repository URL"), "{e}");
        let e = err(
            &[("GITHUB_TOKEN", "t")],
            Some("https://ghe.example.com/o/r"),
        );
        assert!(e.contains("GITHUB_API_URL"), "{e}");
        let e = err(
            &[
                ("GITHUB_TOKEN", "t"),
                ("GITHUB_API_URL", "ftp://x"),
                ("GITHUB_REPOSITORY", "o/r"),
            ],
            None,
        );
        assert!(e.contains("not an http(s) URL"), "{e}");
        let e = err(
            &[("GITHUB_TOKEN", "a b"), ("GITHUB_REPOSITORY", "o/r")],
            None,
        );
        assert!(
            e.contains("GITHUB_TOKEN contains spaces") && !e.contains("a b"),
            "{e}"
        );
    }

    #[test]
    fn remote_urls_that_name_a_repository() {
        let gh = |o: &str, r: &str| ("github.com".to_owned(), o.to_owned(), r.to_owned());
        assert_eq!(remote("https://github.com/o/r.git"), gh("o", "r"));
        assert_eq!(remote("https://github.com/o/r"), gh("o", "r"));
        assert_eq!(remote("https://github.com/o/r/"), gh("o", "r"));
        assert_eq!(remote("HTTPS://GitHub.com/o/r.git"), gh("o", "r"));
        assert_eq!(
            remote("https://x-access-token:secret@github.com/o/r.git"),
            gh("o", "r")
        );
        assert_eq!(remote("git@github.com:o/r.git"), gh("o", "r"));
        assert_eq!(remote("github.com:o/r"), gh("o", "r"));
        assert_eq!(remote("ssh://git@github.com/o/r.git"), gh("o", "r"));
        assert_eq!(remote("ssh://git@github.com:22/o/r.git"), gh("o", "r"));
        assert_eq!(remote("git+ssh://git@github.com/o/r"), gh("o", "r"));
        assert_eq!(
            remote("https://ghe.example.com:8443/team-a/my.repo_x"),
            (
                "ghe.example.com".into(),
                "team-a".into(),
                "my.repo_x".into()
            )
        );
        assert_eq!(
            remote("git@work-alias:o/r.git"),
            ("work-alias".into(), "o".into(), "r".into())
        );
        assert!(parse_remote_url("https://github.com/o/r").unwrap().https);
        assert!(!parse_remote_url("git@github.com:o/r.git").unwrap().https);
    }

    #[test]
    fn remote_urls_that_do_not() {
        for url in [
            "",
            "/srv/git/repo.git",
            "../repo",
            "file:///srv/git/repo.git",
            "C:\\repos\\r",
            "git@github.com:/abs/path.git",
            "https://github.com/o",
            "https://github.com/o/r/extra",
            "https://gitlab.com/group/sub/r.git",
            "https://github.com/o/r?x=1",
            "https://github.com/o/..",
            "ftp://github.com/o/r",
            "https:///o/r",
        ] {
            assert!(parse_remote_url(url).is_err(), "{url:?} should be rejected");
        }
        let e = parse_remote_url("https://user:hunter2@example.com/a/b/c")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "credentials are not echoed: {e}");
        assert!(e.contains("https://***@example.com/a/b/c"), "{e}");
    }
}
