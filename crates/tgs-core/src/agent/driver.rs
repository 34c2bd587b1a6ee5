//! Session agents: how each coding agent is started for a server session,
//! and what it may see.
//!
//! Least privilege: an agent's process starts from an empty environment and
//! gets the basics (PATH, HOME, locale...), its own model credentials, the
//! variables its configuration names, and the `TGS_*` session variables.
//! Forge tokens (`GITHUB_TOKEN`, `GH_TOKEN`) never reach it, even if named:
//! tgs alone pushes and opens pull requests, after verifying the session.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::config::{AgentConfig, Settings};
use crate::Error;

/// The built-in drivers.
pub const BUILTIN: &[&str] = &["claude-code", "codex", "gemini", "aider"];

/// Variables every agent gets, where set.
const BASE_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TERM",
    "TMPDIR",
    "TZ",
    "XDG_CONFIG_HOME",
    "XDG_CACHE_HOME",
    "XDG_DATA_HOME",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "GOPATH",
    "GOROOT",
    "NODE_PATH",
    "VIRTUAL_ENV",
    "JAVA_HOME",
];

/// Never passed to an agent, whatever the configuration says.
pub const FORBIDDEN_ENV: &[&str] = &[
    "TGS_GITHUB_TOKEN",
    "TGS_APP_PRIVATE_KEY",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "GITHUB_PAT",
    "GH_ENTERPRISE_TOKEN",
];

/// `Name <email>` as (name, email); `None` for anything else.
pub fn split_ident(ident: &str) -> Option<(&str, &str)> {
    let (name, rest) = ident.split_once('<')?;
    let email = rest.strip_suffix('>')?;
    let name = name.trim();
    (!name.is_empty() && !email.is_empty() && !email.contains(['<', '>', '\n']))
        .then_some((name, email))
}

/// How an agent is driven.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Driver {
    ClaudeCode,
    Codex,
    Gemini,
    Aider,
    /// Any command line: the prompt on stdin and in `TGS_PROMPT_FILE`.
    Command(Vec<String>),
    /// A script following the `tgs agent exec` adapter contract.
    Adapter(PathBuf),
}

/// Where a built-in driver's program comes from, for telling people what to install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Package {
    /// What people call the program.
    pub product: &'static str,
    /// `npm` or `PyPI`.
    pub registry: &'static str,
    pub name: &'static str,
    /// The usual command that installs it.
    pub install: &'static str,
}

impl Driver {
    /// The model APIs the driver's CLI talks to (`host:port`): what a
    /// sandboxed session may reach through the proxy without being told.
    pub fn model_hosts(&self) -> &'static [&'static str] {
        match self {
            Driver::ClaudeCode | Driver::Adapter(_) => &["api.anthropic.com:443"],
            Driver::Codex => &["api.openai.com:443", "chatgpt.com:443"],
            Driver::Gemini => &["generativelanguage.googleapis.com:443"],
            Driver::Aider => &["api.anthropic.com:443", "api.openai.com:443"],
            Driver::Command(_) => &[],
        }
    }

    /// The package that provides a built-in driver's program (none for a
    /// `command` or an `adapter`, which are the repository's own).
    pub fn package(&self) -> Option<Package> {
        let (product, registry, name, install) = match self {
            Driver::ClaudeCode => (
                "Claude Code",
                "npm",
                "@anthropic-ai/claude-code",
                "npm install -g @anthropic-ai/claude-code",
            ),
            Driver::Codex => (
                "the Codex CLI",
                "npm",
                "@openai/codex",
                "npm install -g @openai/codex",
            ),
            Driver::Gemini => (
                "the Gemini CLI",
                "npm",
                "@google/gemini-cli",
                "npm install -g @google/gemini-cli",
            ),
            Driver::Aider => (
                "aider",
                "PyPI",
                "aider-chat",
                "python3 -m pip install aider-chat",
            ),
            Driver::Command(_) | Driver::Adapter(_) => return None,
        };
        Some(Package {
            product,
            registry,
            name,
            install,
        })
    }
}

/// How to read the agent's stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    ClaudeStreamJson,
    CodexJson,
    Text,
}

/// A resolved agent.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    pub name: String,
    pub driver: Driver,
    pub config: AgentConfig,
}

/// The session facts an agent's command line and environment are made from.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    pub worktree: &'a Path,
    pub prompt_file: &'a Path,
    pub context_list: &'a Path,
    pub context_files: &'a [String],
    pub thought_dir: &'a str,
    pub branch: &'a str,
    pub attempt: u32,
    pub timeout_secs: u64,
    /// tgs's own git identity (`Name <email>`): the agent commits with it,
    /// unless the configuration passes `GIT_AUTHOR_*`/`GIT_COMMITTER_*` through.
    pub identity: Option<&'a str>,
}

/// The process to start.
#[derive(Debug, Clone)]
pub struct SessionCommand {
    pub program: String,
    pub args: Vec<String>,
    /// Feed the prompt on stdin (else stdin is null).
    pub prompt_on_stdin: bool,
    pub env: Vec<(String, String)>,
    pub format: OutputFormat,
}

impl SessionCommand {
    /// A readable rendering for `--dry-run` and logs (quoted like a shell would, never run by one).
    pub fn display(&self) -> String {
        let mut parts = vec![self.program.clone()];
        parts.extend(self.args.iter().cloned());
        shlex::try_join(parts.iter().map(String::as_str)).unwrap_or_else(|_| parts.join(" "))
    }
}

impl AgentSpec {
    /// Find the agent `name`: an entry of `server.agents`, or a built-in driver.
    pub fn resolve(name: &str, settings: &Settings) -> Result<AgentSpec, Error> {
        let config = settings.agents.get(name).cloned().unwrap_or_default();
        let driver = if let Some(cmd) = config.command.as_deref() {
            let words = shlex::split(cmd).filter(|w| !w.is_empty()).ok_or_else(|| {
                Error::invalid(format!(
                    "server.agents.{name}.command: cannot split {cmd:?} into words"
                ))
            })?;
            Driver::Command(words)
        } else if let Some(adapter) = config.adapter.as_deref() {
            Driver::Adapter(PathBuf::from(adapter))
        } else {
            match config.driver.as_deref().unwrap_or(name) {
                "claude-code" | "claude" => Driver::ClaudeCode,
                "codex" => Driver::Codex,
                "gemini" => Driver::Gemini,
                "aider" => Driver::Aider,
                other => {
                    return Err(Error::invalid(format!(
                        "unknown agent {other:?}: use one of {} or define it under server.agents in tgs/tgs.yml",
                        BUILTIN.join(", ")
                    )))
                }
            }
        };
        Ok(AgentSpec {
            name: name.to_owned(),
            driver,
            config,
        })
    }

    /// The model credentials and settings each built-in driver reads.
    fn model_env(&self) -> &'static [&'static str] {
        match self.driver {
            Driver::ClaudeCode | Driver::Adapter(_) => &[
                "ANTHROPIC_API_KEY",
                "ANTHROPIC_AUTH_TOKEN",
                "ANTHROPIC_BASE_URL",
                "ANTHROPIC_MODEL",
                "CLAUDE_CODE_OAUTH_TOKEN",
                "CLAUDE_CODE_USE_BEDROCK",
                "CLAUDE_CODE_USE_VERTEX",
                "CLAUDE_CODE_MAX_RETRIES",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
                "DISABLE_TELEMETRY",
                "DISABLE_AUTOUPDATER",
                "IS_SANDBOX",
                "AWS_REGION",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN",
                "CLOUD_ML_REGION",
                "ANTHROPIC_VERTEX_PROJECT_ID",
                "GOOGLE_APPLICATION_CREDENTIALS",
            ],
            Driver::Codex => &["OPENAI_API_KEY", "OPENAI_BASE_URL", "CODEX_HOME"],
            Driver::Gemini => &[
                "GEMINI_API_KEY",
                "GOOGLE_API_KEY",
                "GOOGLE_CLOUD_PROJECT",
                "GOOGLE_CLOUD_LOCATION",
                "GOOGLE_GENAI_USE_VERTEXAI",
                "GOOGLE_APPLICATION_CREDENTIALS",
            ],
            Driver::Aider => &[
                "OPENAI_API_KEY",
                "ANTHROPIC_API_KEY",
                "GEMINI_API_KEY",
                "OPENROUTER_API_KEY",
                "DEEPSEEK_API_KEY",
                "OPENAI_API_BASE",
                "AIDER_MODEL",
            ],
            Driver::Command(_) => &[],
        }
    }

    /// The environment the agent's process starts with (from an empty one).
    pub fn environment(
        &self,
        from: &[(String, String)],
        inv: &Invocation<'_>,
    ) -> Vec<(String, String)> {
        let wanted = |k: &str| {
            BASE_ENV.contains(&k)
                || self.model_env().contains(&k)
                || self.config.env.iter().any(|e| e == k)
        };
        let mut env: Vec<(String, String)> = from
            .iter()
            .filter(|(k, _)| wanted(k) && !FORBIDDEN_ENV.contains(&k.as_str()))
            .cloned()
            .collect();
        let session = [
            ("TGS_THOUGHT_DIR", inv.thought_dir.to_owned()),
            ("TGS_PROMPT_FILE", inv.prompt_file.display().to_string()),
            ("TGS_CONTEXT_FILES", inv.context_files.join("\n")),
            ("TGS_WORKTREE", inv.worktree.display().to_string()),
            ("TGS_BRANCH", inv.branch.to_owned()),
            ("TGS_ATTEMPT", inv.attempt.to_string()),
        ];
        env.extend(session.into_iter().map(|(k, v)| (k.to_owned(), v)));
        if let Some((name, email)) = inv.identity.and_then(split_ident) {
            // The agent's environment is built from nothing, so git would not
            // find an identity that tgs's own came from (environment
            // variables, a GIT_CONFIG_GLOBAL file): give it the one tgs
            // commits with, as variables (no configuration file, which could
            // carry credentials).
            for (k, v) in [
                ("GIT_AUTHOR_NAME", name),
                ("GIT_AUTHOR_EMAIL", email),
                ("GIT_COMMITTER_NAME", name),
                ("GIT_COMMITTER_EMAIL", email),
            ] {
                if !env.iter().any(|(e, _)| e == k) {
                    env.push((k.to_owned(), v.to_owned()));
                }
            }
        }
        if self.driver == Driver::ClaudeCode {
            // Quiet, offline-friendly runs; a root container needs IS_SANDBOX for bypassPermissions.
            for (k, v) in [("DISABLE_AUTOUPDATER", "1"), ("DISABLE_TELEMETRY", "1")] {
                if !env.iter().any(|(e, _)| e == k) {
                    env.push((k.into(), v.into()));
                }
            }
            // SAFETY: geteuid has no preconditions.
            let root = unsafe { libc::geteuid() } == 0;
            if root
                && self.permission_mode() == "bypassPermissions"
                && !env.iter().any(|(e, _)| e == "IS_SANDBOX")
            {
                env.push(("IS_SANDBOX".into(), "1".into()));
            }
        }
        if let Driver::Adapter(_) = self.driver {
            env.extend([
                ("CLAUDE_CMD".to_owned(), self.bin()),
                ("RETURN_MODE".to_owned(), "text".to_owned()),
                ("TIMEOUT_SEC".to_owned(), inv.timeout_secs.to_string()),
                ("OUT_PATH".to_owned(), String::new()),
                ("CONTEXT_FILES".to_owned(), inv.context_files.join("\n")),
            ]);
        }
        env
    }

    fn permission_mode(&self) -> &str {
        self.config
            .permission_mode
            .as_deref()
            .unwrap_or("bypassPermissions")
    }

    /// The program a built-in driver runs.
    pub fn bin(&self) -> String {
        if let Some(b) = &self.config.bin {
            return b.clone();
        }
        match self.driver {
            Driver::ClaudeCode | Driver::Adapter(_) => "claude",
            Driver::Codex => "codex",
            Driver::Gemini => "gemini",
            Driver::Aider => "aider",
            Driver::Command(_) => "",
        }
        .to_owned()
    }

    /// Point `cmd` (this agent's, its environment final: after the model
    /// gateway's stand-ins) at the model endpoint its environment names,
    /// for CLIs that do not read it from there (Codex).
    pub fn fit_endpoint(&self, cmd: &mut SessionCommand) {
        if matches!(self.driver, Driver::Codex) {
            point_codex_at(cmd);
        }
    }

    /// The command for one session.
    pub fn command(
        &self,
        from_env: &[(String, String)],
        inv: &Invocation<'_>,
        prompt: &str,
    ) -> SessionCommand {
        let c = &self.config;
        let mut args: Vec<String> = Vec::new();
        let (program, prompt_on_stdin, format) = match &self.driver {
            Driver::ClaudeCode => {
                args.extend(
                    ["-p", "--output-format", "stream-json", "--verbose"].map(String::from),
                );
                args.extend([
                    "--permission-mode".into(),
                    self.permission_mode().to_owned(),
                ]);
                if let Some(m) = &c.model {
                    args.extend(["--model".into(), m.clone()]);
                }
                if let Some(n) = c.max_turns {
                    args.extend(["--max-turns".into(), n.to_string()]);
                }
                if let Some(config) = session_mcp_config(inv.worktree) {
                    args.extend(["--mcp-config".into(), config]);
                }
                (self.bin(), true, OutputFormat::ClaudeStreamJson)
            }
            Driver::Codex => {
                args.extend(
                    [
                        "exec",
                        "--json",
                        "--skip-git-repo-check",
                        "-s",
                        "danger-full-access",
                    ]
                    .map(String::from),
                );
                if let Some(m) = &c.model {
                    args.extend(["-m".into(), m.clone()]);
                }
                if let Some((exe, ask)) = session_mcp_server(inv.worktree) {
                    args.extend(codex_config("mcp_servers.tgs.command", &json!(exe)));
                    args.extend(codex_config("mcp_servers.tgs.args", &json!(ask)));
                }
                args.extend(c.args.iter().cloned());
                // The prompt is the last argument; stdin stays closed so codex does not wait on it.
                args.push(prompt.to_owned());
                (self.bin(), false, OutputFormat::CodexJson)
            }
            Driver::Gemini => {
                args.extend(["--yolo".into()]);
                if let Some(m) = &c.model {
                    args.extend(["-m".into(), m.clone()]);
                }
                args.extend(c.args.iter().cloned());
                args.extend(["-p".into(), prompt.to_owned()]);
                (self.bin(), false, OutputFormat::Text)
            }
            Driver::Aider => {
                args.extend(
                    [
                        "--yes-always",
                        "--no-check-update",
                        "--no-pretty",
                        "--no-stream",
                    ]
                    .map(String::from),
                );
                if let Some(m) = &c.model {
                    args.extend(["--model".into(), m.clone()]);
                }
                args.extend(c.args.iter().cloned());
                args.extend([
                    "--message-file".into(),
                    inv.prompt_file.display().to_string(),
                ]);
                (self.bin(), false, OutputFormat::Text)
            }
            Driver::Command(words) => {
                args.extend(words[1..].iter().cloned());
                (words[0].clone(), true, OutputFormat::Text)
            }
            Driver::Adapter(path) => {
                args.extend([
                    "--return-mode".into(),
                    "text".into(),
                    "--claude-cmd".into(),
                    self.bin(),
                    "--prompt-file".into(),
                    inv.prompt_file.display().to_string(),
                    "--context-list".into(),
                    inv.context_list.display().to_string(),
                    "--suggestions-dir".into(),
                    "tgs/suggestions".into(),
                    "--timeout".into(),
                    inv.timeout_secs.to_string(),
                ]);
                (path.display().to_string(), false, OutputFormat::Text)
            }
        };
        if matches!(self.driver, Driver::ClaudeCode) {
            args.extend(c.args.iter().cloned());
        }
        SessionCommand {
            program,
            args,
            prompt_on_stdin,
            env: self.environment(from_env, inv),
            format,
        }
    }
}

/// The session-scoped MCP server the agent's CLI starts: tgs's own binary
/// (which the sandbox shows the agent, read-only) in its `ask_humans`
/// mode, writing to the question file of `worktree` (see
/// `tgs_core::question`): (program, arguments); `None` when tgs cannot
/// name its own binary.
fn session_mcp_server(worktree: &Path) -> Option<(String, Vec<String>)> {
    let exe = std::env::current_exe().ok()?;
    let file = worktree.join(crate::question::FILE);
    Some((
        exe.display().to_string(),
        vec!["mcp".into(), "--ask".into(), file.display().to_string()],
    ))
}

/// [`session_mcp_server`] as Claude Code's `--mcp-config` JSON.
fn session_mcp_config(worktree: &Path) -> Option<String> {
    let (exe, args) = session_mcp_server(worktree)?;
    Some(json!({ "mcpServers": { "tgs": { "command": exe, "args": args } } }).to_string())
}

/// `-c key=value` for `codex`, the value as TOML (a JSON string or array
/// of strings is one): never parsed as anything but a value, whatever
/// text it holds.
fn codex_config(key: &str, value: &serde_json::Value) -> [String; 2] {
    ["-c".into(), format!("{key}={value}")]
}

/// The provider `codex` is pointed at when `OPENAI_BASE_URL` names an
/// endpoint (the model gateway's inside the sandbox, or the user's own):
/// Codex ignores that variable, so tgs says it in Codex's own settings,
/// plain HTTP(S) Responses (no WebSocket, which the gateway does not
/// carry), the key from `OPENAI_API_KEY`. Inserted before the prompt
/// (the last argument); a `model_provider` of the agent's own `args`
/// wins.
fn point_codex_at(cmd: &mut SessionCommand) {
    let Some(base) = cmd
        .env
        .iter()
        .find(|(k, _)| k == "OPENAI_BASE_URL")
        .map(|(_, v)| v.clone())
        .filter(|v| !v.is_empty())
    else {
        return;
    };
    if cmd.args.iter().any(|a| a.starts_with("model_provider=")) || cmd.args.is_empty() {
        return;
    }
    let settings = [
        ("model_provider", json!("tgs")),
        ("model_providers.tgs.name", json!("OpenAI (through tgs)")),
        ("model_providers.tgs.base_url", json!(base)),
        ("model_providers.tgs.env_key", json!("OPENAI_API_KEY")),
        ("model_providers.tgs.wire_api", json!("responses")),
        ("model_providers.tgs.supports_websockets", json!(false)),
    ];
    let at = cmd.args.len() - 1;
    let extra: Vec<String> = settings
        .iter()
        .flat_map(|(k, v)| codex_config(k, v))
        .collect();
    cmd.args.splice(at..at, extra);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn settings(yaml: &str) -> Settings {
        Settings::resolve(&Config::parse(yaml).unwrap()).unwrap()
    }

    fn inv<'a>(ctx: &'a [String]) -> Invocation<'a> {
        Invocation {
            worktree: Path::new("/w"),
            prompt_file: Path::new("/w/.prompt"),
            context_list: Path::new("/w/.context"),
            context_files: ctx,
            thought_dir: "tgs/thoughts/abc1234-x",
            branch: "tgs/abc1234-x",
            attempt: 2,
            timeout_secs: 60,
            identity: Some("Tgs Bot <tgs@example.com>"),
        }
    }

    #[test]
    fn every_builtin_driver_names_its_package() {
        let s = settings("server: {}\n");
        let names: Vec<&str> = BUILTIN
            .iter()
            .map(|n| {
                AgentSpec::resolve(n, &s)
                    .unwrap()
                    .driver
                    .package()
                    .unwrap()
                    .name
            })
            .collect();
        assert_eq!(
            names,
            [
                "@anthropic-ai/claude-code",
                "@openai/codex",
                "@google/gemini-cli",
                "aider-chat"
            ]
        );
        let own = settings("server:\n  agents:\n    mine: { command: ./agent.sh }\n");
        assert_eq!(
            AgentSpec::resolve("mine", &own).unwrap().driver.package(),
            None
        );
    }

    #[test]
    fn claude_gets_print_mode_stream_json_and_its_settings() {
        let s = settings("server:\n  agents:\n    claude-code: { model: sonnet, permission_mode: acceptEdits, max_turns: 20 }\n");
        let a = AgentSpec::resolve("claude-code", &s).unwrap();
        let ctx = vec!["a.md".to_string()];
        let c = a.command(&[], &inv(&ctx), "do it");
        assert_eq!(c.program, "claude");
        assert_eq!(
            &c.args[..10],
            &[
                "-p",
                "--output-format",
                "stream-json",
                "--verbose",
                "--permission-mode",
                "acceptEdits",
                "--model",
                "sonnet",
                "--max-turns",
                "20"
            ]
        );
        // The session's own MCP server: tgs's binary, asking into the worktree.
        assert_eq!(c.args[10], "--mcp-config");
        let mcp: serde_json::Value = serde_json::from_str(&c.args[11]).unwrap();
        let server = &mcp["mcpServers"]["tgs"];
        assert_eq!(
            (server["args"][0].as_str(), server["args"][1].as_str()),
            (Some("mcp"), Some("--ask"))
        );
        assert!(server["args"][2]
            .as_str()
            .unwrap()
            .ends_with(crate::question::FILE));
        assert_eq!(c.args.len(), 12);
        assert!(c.prompt_on_stdin);
        assert_eq!(c.format, OutputFormat::ClaudeStreamJson);
    }

    #[test]
    fn the_environment_is_least_privilege() {
        let s = settings("server:\n  agents:\n    mine: { command: \"./agent.sh --fast 'two words'\", env: [EXTRA, GITHUB_TOKEN] }\n");
        let a = AgentSpec::resolve("mine", &s).unwrap();
        assert_eq!(
            a.driver,
            Driver::Command(vec![
                "./agent.sh".into(),
                "--fast".into(),
                "two words".into()
            ])
        );
        let from: Vec<(String, String)> = [
            ("PATH", "/bin"),
            ("HOME", "/home/u"),
            ("GITHUB_TOKEN", "ghs_secret"),
            ("GH_TOKEN", "gho_secret"),
            ("ANTHROPIC_API_KEY", "sk-ant"),
            ("AWS_SECRET_ACCESS_KEY", "aws"),
            ("EXTRA", "yes"),
            ("RANDOM_VAR", "no"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let ctx = vec!["a.md".to_string(), "b.md".to_string()];
        let env = a.command(&from, &inv(&ctx), "p").env;
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        for k in [
            "PATH",
            "HOME",
            "EXTRA",
            "TGS_THOUGHT_DIR",
            "TGS_PROMPT_FILE",
            "TGS_CONTEXT_FILES",
            "TGS_WORKTREE",
            "TGS_BRANCH",
            "TGS_ATTEMPT",
        ] {
            assert!(names.contains(&k), "{k} missing from {names:?}");
        }
        for k in [
            "GITHUB_TOKEN",
            "GH_TOKEN",
            "ANTHROPIC_API_KEY",
            "AWS_SECRET_ACCESS_KEY",
            "RANDOM_VAR",
        ] {
            assert!(!names.contains(&k), "{k} leaked");
        }
        assert!(env.contains(&("TGS_CONTEXT_FILES".into(), "a.md\nb.md".into())));
        // The Claude driver gets its key, never the forge token.
        let claude = AgentSpec::resolve("claude-code", &s).unwrap();
        let names: Vec<String> = claude
            .command(&from, &inv(&ctx), "p")
            .env
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert!(names.contains(&"ANTHROPIC_API_KEY".to_string()));
        assert!(!names.contains(&"GITHUB_TOKEN".to_string()));
    }

    /// Codex ignores `OPENAI_BASE_URL`: tgs says it in Codex's settings,
    /// before the prompt, each value a TOML string whatever it holds; the
    /// session's `ask_humans` server is Codex's too.
    #[test]
    fn codex_is_pointed_at_the_endpoint_its_environment_names() {
        let s = settings("server:\n  agents:\n    oai: { driver: codex }\n    own: { driver: codex, args: [-c, model_provider=azure] }\n");
        let ctx: Vec<String> = vec![];
        let from = vec![(
            "OPENAI_BASE_URL".to_owned(),
            "http://openai.model.tgs.invalid/v1\" x=\"1".to_owned(),
        )];
        let oai = AgentSpec::resolve("oai", &s).unwrap();
        let mut c = oai.command(&from, &inv(&ctx), "the prompt");
        oai.fit_endpoint(&mut c);
        assert_eq!(c.args.last().map(String::as_str), Some("the prompt"));
        let base = c
            .args
            .iter()
            .position(|a| a.starts_with("model_providers.tgs.base_url="))
            .unwrap();
        assert_eq!(c.args[base - 1], "-c");
        assert_eq!(
            c.args[base],
            r#"model_providers.tgs.base_url="http://openai.model.tgs.invalid/v1\" x=\"1""#
        );
        assert!(
            c.args.contains(&"model_provider=\"tgs\"".to_owned()),
            "{:?}",
            c.args
        );
        assert!(c
            .args
            .contains(&"model_providers.tgs.supports_websockets=false".to_owned()));
        let mcp = c
            .args
            .iter()
            .find(|a| a.starts_with("mcp_servers.tgs.args="))
            .unwrap();
        assert!(
            mcp.ends_with(r#"["mcp","--ask","/w/tgs-question.md"]"#),
            "{mcp}"
        );
        // Without an endpoint, or with the user's own provider: left alone.
        let mut c = oai.command(&[], &inv(&ctx), "p");
        oai.fit_endpoint(&mut c);
        assert!(!c.args.iter().any(|a| a.starts_with("model_provider")));
        let own = AgentSpec::resolve("own", &s).unwrap();
        let mut c = own.command(&from, &inv(&ctx), "p");
        own.fit_endpoint(&mut c);
        assert_eq!(
            c.args
                .iter()
                .filter(|a| a.starts_with("model_provider"))
                .count(),
            1
        );
    }

    #[test]
    fn other_drivers_and_errors() {
        let s = settings("server:\n  agents:\n    legacy: { adapter: tgs/adapters/claude-code.sh }\n    oai: { driver: codex, model: o4 }\n");
        let ctx: Vec<String> = vec![];
        let c = AgentSpec::resolve("oai", &s)
            .unwrap()
            .command(&[], &inv(&ctx), "the prompt");
        assert_eq!(c.program, "codex");
        assert_eq!(c.args.last().map(String::as_str), Some("the prompt"));
        assert!(!c.prompt_on_stdin);
        let l = AgentSpec::resolve("legacy", &s)
            .unwrap()
            .command(&[], &inv(&ctx), "p");
        assert_eq!(l.program, "tgs/adapters/claude-code.sh");
        assert!(l
            .args
            .windows(2)
            .any(|w| w == ["--prompt-file", "/w/.prompt"]));
        assert!(l.env.iter().any(|(k, v)| k == "RETURN_MODE" && v == "text"));
        let g = AgentSpec::resolve("gemini", &s)
            .unwrap()
            .command(&[], &inv(&ctx), "p");
        assert_eq!(g.args, ["--yolo", "-p", "p"]);
        let ai = AgentSpec::resolve("aider", &s)
            .unwrap()
            .command(&[], &inv(&ctx), "p");
        assert!(ai
            .args
            .ends_with(&["--message-file".to_string(), "/w/.prompt".to_string()]));
        assert!(AgentSpec::resolve("nope", &s)
            .unwrap_err()
            .to_string()
            .contains("unknown agent"));
        assert!(c.display().starts_with("codex exec --json"));
    }
}
