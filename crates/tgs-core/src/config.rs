//! `tgs/tgs.yml`: the parts tgs reads. Other tools' sections and keys are
//! kept by the file and ignored here; a key under `server:` that tgs does
//! not know, or a near miss of a known name anywhere, is an error (see
//! [`keys`]).
//!
//! Settings resolve in one place: command-line flags (passed in by the CLI)
//! over the repository's `server:` section over the built-in defaults.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::guardrails::{Guardrails, GuardrailsConfig};
use crate::repo::Repo;
use crate::Error;

mod keys;

pub use keys::nearest;

/// Where the configuration lives in a repository.
pub const CONFIG_PATH: &str = "tgs/tgs.yml";

/// A committed configuration larger than this is refused, not read.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The file, as far as tgs reads it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Config {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub ai: AiSection,
    #[serde(default)]
    pub telemetry: TelemetrySection,
    #[serde(default)]
    pub steps: StepsSection,
    #[serde(default)]
    pub mcp: McpSection,
}

/// `mcp:`: what `tgs mcp` lets the agents people work with do.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct McpSection {
    /// The write tools (queue, priority, retry, answer); off by default.
    #[serde(default)]
    pub write: bool,
}

/// `server.questions`: questions from the working agent to its humans
/// (see [`crate::question`]).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct QuestionsConfig {
    /// Questions one thought's agents may ask; one more fails the thought.
    pub max_per_thought: u32,
}

impl Default for QuestionsConfig {
    fn default() -> Self {
        QuestionsConfig { max_per_thought: 3 }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct AiSection {
    /// Environment variable names whose values are redacted.
    #[serde(default)]
    pub redact_env_keys: Vec<String>,
    /// Regular expressions whose matches are redacted.
    #[serde(default)]
    pub redact_patterns: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct TelemetrySection {
    #[serde(default)]
    pub redact_rules: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct StepsSection {
    /// The implementation prompt template, relative to the repository root.
    pub impl_prompt: Option<String>,
}

/// The `server:` section. Every field is optional; see [`Settings`] for defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub agent: Option<String>,
    pub session_timeout: Option<String>,
    /// How long an agent may show no sign of life before it is stopped.
    pub stall_timeout: Option<String>,
    pub max_attempts: Option<u32>,
    pub retry_delay: Option<String>,
    pub retry_delay_max: Option<String>,
    pub state_branch: Option<String>,
    pub base_branch: Option<String>,
    pub remote: Option<String>,
    pub verify_command: Option<String>,
    pub verify_timeout: Option<String>,
    pub kill_grace: Option<String>,
    pub result_grace: Option<String>,
    pub lease_margin: Option<String>,
    #[serde(default)]
    pub agents: BTreeMap<String, AgentConfig>,
    #[serde(default)]
    pub pr: PrConfig,
    /// The most queued entries the backlog holds: scan and add refuse beyond it.
    pub max_queue_depth: Option<usize>,
    #[serde(default)]
    pub budgets: Budgets,
    /// What a branch may change (see [`crate::guardrails`]).
    #[serde(default)]
    pub guardrails: GuardrailsConfig,
    #[serde(default)]
    pub review: ReviewConfig,
    #[serde(default)]
    pub questions: QuestionsConfig,
    /// The wall around each session (see [`crate::sandbox`]).
    #[serde(default)]
    pub sandbox: crate::sandbox::SandboxConfig,
}

/// `server.review`: the review loop (see [`crate::review`]).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ReviewConfig {
    /// Revisions one pull request gets before it goes to a human.
    pub max_revisions: u32,
    /// The word a comment starts with to ask tgs for a revision.
    pub trigger: String,
    /// Revisions are claimed before new thoughts.
    pub revisions_first: bool,
}

impl Default for ReviewConfig {
    fn default() -> Self {
        ReviewConfig {
            max_revisions: 3,
            trigger: "/tgs".into(),
            revisions_first: true,
        }
    }
}

/// `server.budgets`: what runs may spend. Days are UTC days.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Budgets {
    /// Sessions started per day, by all workers together.
    pub daily_sessions: Option<u32>,
    /// Cost reported by agents per day, all workers together (USD).
    pub daily_cost_usd: Option<f64>,
    /// Cost of one thought over all its attempts (USD): past it, the
    /// thought fails for good.
    pub thought_cost_usd: Option<f64>,
}

/// `server.pr`: how pull requests are opened.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrConfig {
    /// The conventional prefix of PR titles.
    #[serde(default = "default_prefix")]
    pub title_prefix: String,
    #[serde(default = "default_labels")]
    pub labels: Vec<String>,
    #[serde(default)]
    pub draft: bool,
    #[serde(default)]
    pub reviewers: Vec<String>,
}

fn default_prefix() -> String {
    "feat:".into()
}

fn default_labels() -> Vec<String> {
    vec!["tgs".into()]
}

impl Default for PrConfig {
    fn default() -> Self {
        PrConfig {
            title_prefix: default_prefix(),
            labels: default_labels(),
            draft: false,
            reviewers: Vec::new(),
        }
    }
}

/// One entry of `server.agents`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// A command line (split like a shell would, but never run by one).
    pub command: Option<String>,
    /// An adapter script following the `tgs agent exec` contract.
    pub adapter: Option<String>,
    /// The built-in driver this agent uses: claude-code, codex, gemini, aider.
    pub driver: Option<String>,
    pub model: Option<String>,
    pub permission_mode: Option<String>,
    pub max_turns: Option<u32>,
    /// The CLI to run, for the built-in drivers (default: the usual name).
    pub bin: Option<String>,
    /// Extra arguments for the built-in drivers.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables passed through to the agent, beyond its model key.
    #[serde(default)]
    pub env: Vec<String>,
    /// Sessions of this agent at once, counted across every worker.
    pub max_concurrent: Option<u32>,
    /// `server.stall_timeout` for this agent.
    pub stall_timeout: Option<String>,
}

impl Config {
    /// Read `tgs/tgs.yml` under `root`; a missing file is the default configuration.
    pub fn load(root: &Path) -> Result<Config, Error> {
        let path = root.join(CONFIG_PATH);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => return Err(e.into()),
        };
        Self::parse(&text)
    }

    /// Read `tgs/tgs.yml` as committed in `rev` (never the working tree):
    /// what server mode decides by, since the thoughts it runs are read
    /// from the same commit and an agent may have edited the working copy.
    /// A commit without the file is the default configuration.
    ///
    /// Errors: those of [`Config::parse`] (prefixed with the commit's
    /// `label`), a committed link or directory in the file's place, a file
    /// over 1 MiB, git failing.
    pub fn load_committed(repo: &Repo, rev: &str, label: &str) -> Result<Config, Error> {
        let Some(bytes) = repo.read_committed(rev, CONFIG_PATH, MAX_CONFIG_BYTES)? else {
            return Ok(Config::default());
        };
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::invalid(format!("{CONFIG_PATH} in {label} is not UTF-8")))?;
        Self::parse(&text).map_err(|e| match e {
            Error::Invalid(m) => Error::invalid(format!("{m} (as committed in {label})")),
            other => other,
        })
    }

    /// Whether the working copy's `tgs/tgs.yml` is not the one committed in
    /// `rev` (edited, added, removed, or unreadable): worth a warning, since
    /// server mode follows the commit. Errors: git failing.
    pub fn working_copy_differs(repo: &Repo, rev: &str) -> Result<bool, Error> {
        let committed = match repo.read_committed(rev, CONFIG_PATH, MAX_CONFIG_BYTES) {
            Ok(c) => c,
            Err(crate::repo::Committed::Git(e)) => return Err(e.into()),
            Err(_) => return Ok(true),
        };
        let working = match std::fs::read(repo.root().join(CONFIG_PATH)) {
            Ok(w) => Some(w),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(_) => return Ok(true),
        };
        Ok(committed != working)
    }

    /// Parse the file's text. Errors: YAML that does not parse, a value of
    /// the wrong type, a key under `server:` tgs does not know, or a near
    /// miss of a known key elsewhere (each with its line and column).
    pub fn parse(text: &str) -> Result<Config, Error> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let value: yaml_serde::Value = yaml_serde::from_str(text)
            .map_err(|e| Error::invalid(format!("{CONFIG_PATH}: {e}")))?;
        keys::check_shared(text, &value)?;
        yaml_serde::from_str(text).map_err(|e| keys::explain(&e))
    }
}

/// Parse durations such as `90s`, `5m`, `5h30m` (or ISO 8601 `PT5H`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d: jiff::SignedDuration = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s, 30m or 5h30m"))?;
    if d.is_negative() {
        return Err(format!("{s:?} must not be negative"));
    }
    d.try_into().map_err(|e| format!("{s:?}: {e}"))
}

/// Server settings after resolution, with every default filled in.
#[derive(Debug, Clone)]
pub struct Settings {
    pub agent: String,
    pub session_timeout: Duration,
    /// How long a session's agent may show no sign of life (no output, no
    /// change in its repository) before it is stopped as stalled; per agent
    /// (`server.agents.<name>.stall_timeout` over `server.stall_timeout`).
    /// Zero: never.
    pub stall_timeouts: BTreeMap<String, Duration>,
    pub stall_timeout: Duration,
    pub max_attempts: u32,
    pub retry_delay: Duration,
    pub retry_delay_max: Duration,
    /// `None`: the branch checked out.
    pub state_branch: Option<String>,
    /// The branch PRs target and worktrees start from (`None`: the state branch).
    pub base_branch: Option<String>,
    pub remote: String,
    pub verify_command: Option<String>,
    pub verify_timeout: Duration,
    pub kill_grace: Duration,
    /// How long an agent may keep running after it reported its end
    /// (Claude's `result`, Codex's end of turn) before it is stopped.
    pub result_grace: Duration,
    /// Added to the session timeout to make a claim's lease.
    pub lease_margin: Duration,
    pub agents: BTreeMap<String, AgentConfig>,
    pub pr: PrConfig,
    pub max_queue_depth: Option<usize>,
    pub budgets: Budgets,
    pub redact_env_keys: Vec<String>,
    pub redact_patterns: Vec<String>,
    pub impl_prompt: Option<String>,
    pub guardrails: Guardrails,
    pub review: ReviewConfig,
    pub questions: QuestionsConfig,
    pub sandbox: crate::sandbox::SandboxSettings,
}

impl Settings {
    /// The stall timeout of sessions of `agent` (`None`: never stalled).
    pub fn stall_timeout_of(&self, agent: &str) -> Option<Duration> {
        let t = self
            .stall_timeouts
            .get(agent)
            .copied()
            .unwrap_or(self.stall_timeout);
        (!t.is_zero()).then_some(t)
    }

    /// The defaults: a session fits in a 6-hour GitHub Actions job with room to hand over.
    pub fn resolve(config: &Config) -> Result<Settings, Error> {
        let s = &config.server;
        let dur = |v: &Option<String>, name: &str, default: &str| -> Result<Duration, Error> {
            parse_duration(v.as_deref().unwrap_or(default))
                .map_err(|e| Error::invalid(format!("{CONFIG_PATH}: server.{name}: {e}")))
        };
        let redact_patterns = redaction_patterns(config)?;
        Ok(Settings {
            agent: s.agent.clone().unwrap_or_else(|| "claude-code".into()),
            // With verify_timeout (30m), installing tgs and the agent and
            // handing over, one session fits a 6-hour GitHub Actions job.
            session_timeout: dur(&s.session_timeout, "session_timeout", "5h")?,
            stall_timeout: dur(&s.stall_timeout, "stall_timeout", "20m")?,
            stall_timeouts: (s.agents.iter())
                .filter_map(|(name, a)| Some((name, a.stall_timeout.as_ref()?)))
                .map(|(name, v)| {
                    let key = format!("agents.{name}.stall_timeout");
                    Ok((name.clone(), dur(&Some(v.clone()), &key, "20m")?))
                })
                .collect::<Result<_, Error>>()?,
            max_attempts: s.max_attempts.unwrap_or(3).max(1),
            retry_delay: dur(&s.retry_delay, "retry_delay", "5m")?,
            retry_delay_max: dur(&s.retry_delay_max, "retry_delay_max", "6h")?,
            state_branch: s.state_branch.clone(),
            base_branch: s.base_branch.clone(),
            remote: s.remote.clone().unwrap_or_else(|| "origin".into()),
            verify_command: s.verify_command.clone().filter(|c| !c.trim().is_empty()),
            verify_timeout: dur(&s.verify_timeout, "verify_timeout", "30m")?,
            kill_grace: dur(&s.kill_grace, "kill_grace", "10s")?,
            result_grace: dur(&s.result_grace, "result_grace", "30s")?,
            lease_margin: dur(&s.lease_margin, "lease_margin", "15m")?,
            agents: s.agents.clone(),
            pr: s.pr.clone(),
            max_queue_depth: s.max_queue_depth,
            budgets: s.budgets.clone(),
            redact_env_keys: config.ai.redact_env_keys.clone(),
            redact_patterns,
            impl_prompt: config.steps.impl_prompt.clone(),
            guardrails: Guardrails::resolve(&s.guardrails)?,
            review: review_config(&s.review)?,
            questions: s.questions.clone(),
            sandbox: crate::sandbox::SandboxSettings::resolve(&s.sandbox)?,
        })
    }
}

/// `ai.redact_patterns` and `telemetry.redact_rules`, each compiled once
/// here so that a pattern that cannot compile is a configuration error
/// naming it, before any session starts (and never a panic later).
fn redaction_patterns(config: &Config) -> Result<Vec<String>, Error> {
    let named = (config.ai.redact_patterns.iter().enumerate())
        .map(|(i, p)| (format!("ai.redact_patterns[{i}]"), p))
        .chain(
            (config.telemetry.redact_rules.iter().enumerate())
                .map(|(i, p)| (format!("telemetry.redact_rules[{i}]"), p)),
        );
    let mut out = Vec::new();
    for (key, pattern) in named {
        if let Err(e) = regex::bytes::Regex::new(pattern) {
            return Err(Error::Setup {
                message: format!("{CONFIG_PATH}: {key}: the pattern {pattern:?} does not compile"),
                hint: Some(format!(
                    "fix or remove it (regular expressions in Rust's `regex` syntax): {e}"
                )),
            });
        }
        out.push(pattern.clone());
    }
    Ok(out)
}

/// A trigger word is one word that cannot occur by chance at a comment's start.
fn review_config(r: &ReviewConfig) -> Result<ReviewConfig, Error> {
    let t = r.trigger.trim();
    let shown = crate::review::visible(t);
    if t.len() < 2 || t.chars().any(char::is_whitespace) || shown != t || t.starts_with('<') {
        return Err(Error::invalid(format!(
            "{CONFIG_PATH}: server.review.trigger must be one visible word of two or more characters, such as /tgs"
        )));
    }
    Ok(ReviewConfig {
        trigger: t.to_owned(),
        ..r.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_example_parses_and_other_sections_are_ignored() {
        let c = Config::parse(
            "ai:\n  provider: anthropic\n  redact_env_keys: [MY_SERVICE_CRED]\ntriggers: {on: push}\nguardrails:\n  max_diff_lines: 500\nserver:\n  agent: claude-code\n  session_timeout: 5h30m\n  max_attempts: 3\n  retry_delay: 5m\n  state_branch: main\n  verify_command: cargo test\n  agents:\n    claude-code: { model: sonnet, permission_mode: bypassPermissions, max_turns: 200 }\n    my-script:  { command: \"./scripts/agent.sh --fast\" }\n    legacy:     { adapter: tgs/adapters/claude-code.sh }\n",
        )
        .unwrap();
        let s = Settings::resolve(&c).unwrap();
        assert_eq!(s.session_timeout, Duration::from_secs(5 * 3600 + 30 * 60));
        assert_eq!(s.retry_delay, Duration::from_secs(300));
        assert_eq!(s.state_branch.as_deref(), Some("main"));
        assert_eq!(s.verify_command.as_deref(), Some("cargo test"));
        assert_eq!(s.agents["claude-code"].max_turns, Some(200));
        assert_eq!(
            s.agents["my-script"].command.as_deref(),
            Some("./scripts/agent.sh --fast")
        );
        assert_eq!(s.redact_env_keys, ["MY_SERVICE_CRED"]);
    }

    #[test]
    fn the_review_section_is_checked() {
        let s = Settings::resolve(&Config::default()).unwrap();
        assert_eq!(
            (s.review.max_revisions, s.review.trigger.as_str()),
            (3, "/tgs")
        );
        for bad in [
            "server:\n  review: { max_revison: 1 }\n",
            "server:\n  review: { trigger: \"/tgs run\" }\n",
            "server:\n  review: { trigger: \"/tgs\\u200b\" }\n",
            "server:\n  review: { trigger: \"<!--\" }\n",
        ] {
            let parsed = Config::parse(bad);
            assert!(
                parsed.is_err() || Settings::resolve(&parsed.unwrap()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn typos_are_errors_with_their_place_and_the_nearest_name() {
        for (yaml, place, near) in [
            (
                "server:\n  verfy_command: make test\n",
                "tgs.yml:2:3",
                "verify_command",
            ),
            (
                "server:\n  agents:\n    claude-code:\n      modle: opus\n",
                "tgs.yml:4:7",
                "model",
            ),
            (
                "server:\n  agents:\n    claude-code: { max_turn: 3 }\n",
                "tgs.yml:3:",
                "max_turns",
            ),
            ("sever:\n  agent: x\n", "tgs.yml:1:1", "server"),
            (
                "ai:\n  provider: anthropic\n  modle: opus\n",
                "tgs.yml:3:3",
                "model",
            ),
            (
                "server:\n  pr: { title_prefx: x }\n",
                "tgs.yml:2:",
                "title_prefix",
            ),
            (
                "server:\n  budgets: { daily_sesions: 3 }\n",
                "tgs.yml:2:",
                "daily_sessions",
            ),
        ] {
            let e = Config::parse(yaml).unwrap_err();
            let said = e.to_string();
            assert!(said.contains(place), "{yaml}: {said}");
            assert!(
                said.contains(&format!("did you mean `{near}`")),
                "{yaml}: {said}"
            );
            let Error::Setup { hint: Some(h), .. } = e else {
                panic!("{yaml}: no hint");
            };
            assert!(h.contains(&format!("`{near}`")), "{h}");
        }
        // Unknown under server, even far from any known name.
        let said = Config::parse("server:\n  zzz_unrelated: 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            said.contains("unknown key `zzz_unrelated` in `server`"),
            "{said}"
        );
        // Other tools' keys and sections stay allowed.
        Config::parse("workflows: {x: 1}\ntriggers: {on: push}\nagents: [{name: a}]\nai:\n  temperature: 0.2\ncontext:\n  thoughts_dir: tgs\n")
            .unwrap();
    }

    #[test]
    fn redaction_patterns_that_do_not_compile_are_configuration_errors() {
        let c = Config::parse("ai:\n  redact_patterns: ['(?i)token-[a-z]+', 'ok']\ntelemetry:\n  redact_rules: ['(unclosed']\n").unwrap();
        let e = Settings::resolve(&c).unwrap_err().to_string();
        assert!(
            e.contains("telemetry.redact_rules[0]") && e.contains("(unclosed"),
            "{e}"
        );
        let c = Config::parse("ai:\n  redact_patterns: ['\\p{Greek}+', '(?i)straße']\n").unwrap();
        assert_eq!(Settings::resolve(&c).unwrap().redact_patterns.len(), 2);
    }

    #[test]
    fn defaults_and_bad_values() {
        let s = Settings::resolve(&Config::default()).unwrap();
        assert_eq!(s.agent, "claude-code");
        assert_eq!(s.max_attempts, 3);
        // A session and its verification leave at least 20 minutes of a
        // GitHub Actions job's 360 for installing tgs and the agent, and for
        // handing the work over.
        let job = Duration::from_secs(360 * 60);
        assert!(
            s.session_timeout + s.verify_timeout + Duration::from_secs(20 * 60) <= job,
            "{:?} + {:?}",
            s.session_timeout,
            s.verify_timeout
        );
        let bad = Config::parse("server:\n  retry_delay: soon\n").unwrap();
        assert!(Settings::resolve(&bad)
            .unwrap_err()
            .to_string()
            .contains("server.retry_delay"));
        assert!(Config::parse("server: [").is_err());
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h 5m").unwrap(), Duration::from_secs(3900));
    }

    #[test]
    fn guardrails_are_read_from_the_server_section() {
        let s = Settings::resolve(&Config::default()).unwrap();
        assert!(s.guardrails.deny_paths.matches(".github/workflows/ci.yml"));
        assert!(s.guardrails.allow_paths.is_none());
        let c = Config::parse(
            "server:\n  guardrails:\n    allow_paths: ['src/**']\n    max_changed_files: 5\n    max_diff_lines: 100\n    executable_paths: ['bin/*']\n",
        )
        .unwrap();
        let g = Settings::resolve(&c).unwrap().guardrails;
        assert!(g.allow_paths.unwrap().matches("src/a/b.rs"));
        assert_eq!(
            (g.max_changed_files, g.max_diff_lines),
            (Some(5), Some(100))
        );
        assert!(g.executable_paths.matches("bin/tool"));
        assert!(
            g.deny_paths.matches(".gitmodules"),
            "the default deny list stays"
        );
        let bad = Config::parse("server:\n  guardrails:\n    allow_paths: ['[']\n").unwrap();
        assert!(Settings::resolve(&bad)
            .unwrap_err()
            .to_string()
            .contains("server.guardrails.allow_paths"));
    }
}
