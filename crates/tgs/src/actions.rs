//! GitHub Actions: when `GITHUB_ACTIONS=true`, tgs masks secret values before
//! anything prints, writes step outputs and a markdown step summary, turns
//! failures into `::error::` annotations, and folds each transcript's end into
//! a `::group::`. It also gives tgs's own git commands (never the agent's) the
//! workflow token, since checkouts are made with `persist-credentials: false`.

use std::io::Write;
use std::path::PathBuf;

use tgs_core::events::{Event, Outcome, Sink};
use tgs_core::github;
use tgs_core::transcript::Redactor;

/// Whether tgs runs inside a GitHub Actions job.
pub fn active() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

/// Escape a workflow command's message (`%`, CR, LF).
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escape a workflow command's property value (also `:` and `,`).
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Mask every secret-looking value of the environment in the job's log.
pub fn mask_secrets(extra_keys: &[String]) {
    let values = Redactor::secret_env_values(std::env::vars(), extra_keys);
    // On stderr: stdout is for data (`--json`) that workflow steps parse.
    let mut out = std::io::stderr().lock();
    for v in values.iter().filter(|v| v.len() >= 6) {
        // A multi-line secret is masked line by line.
        for line in v.lines().filter(|l| !l.trim().is_empty()) {
            let _ = writeln!(out, "::add-mask::{}", escape_data(line));
        }
    }
}

/// Let tgs's own git processes authenticate to GitHub with the workflow
/// token, through tgs's credential broker ([`tgs_core::credential`]): the
/// token is in no git child's environment or command line, where another
/// process of the runner's user could read it. Returns the broker, which
/// serves for as long as it is kept; None without a token (or when no
/// broker could start: then git runs without the token and says so).
pub fn authenticate_git() -> Option<tgs_core::credential::Broker> {
    let (token, var) = tgs_core::github::pick_token(env_token)?;
    if var == "GITHUB_TOKEN" {
        warn_workflow_token();
    }
    let server = std::env::var("GITHUB_SERVER_URL").unwrap_or_else(|_| "https://github.com".into());
    let started = std::env::current_exe()
        .and_then(|tgs| tgs_core::credential::Broker::start(token, &server, &tgs));
    match started {
        Ok(broker) => Some(broker),
        Err(e) => {
            tracing::warn!(
                "git will push without {var}: tgs's credential broker could not start: {e}"
            );
            None
        }
    }
}

/// Write a step output (`$GITHUB_OUTPUT`) when tgs runs in GitHub Actions.
pub fn set_output(name: &str, value: &str) {
    if active() {
        Actions::new().output(name, value);
    }
}

/// Where a run's whole transcripts are in GitHub Actions: the artifact the
/// run workflow uploads (`tgs-server-logs-<run id>-<attempt>`) of this run.
pub fn artifact_hint() -> Option<String> {
    if !active() {
        return None;
    }
    let run = std::env::var("GITHUB_RUN_ID").ok()?;
    let attempt = std::env::var("GITHUB_RUN_ATTEMPT").unwrap_or_else(|_| "1".into());
    // The workflow names the artifact when a run uploads several (a matrix).
    let name = std::env::var("TGS_LOGS_ARTIFACT")
        .ok()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| format!("tgs-server-logs-{run}-{attempt}"));
    let url = match (
        std::env::var("GITHUB_SERVER_URL"),
        std::env::var("GITHUB_REPOSITORY"),
    ) {
        (Ok(s), Ok(r)) => format!(" of {}/{r}/actions/runs/{run}", s.trim_end_matches('/')),
        _ => String::new(),
    };
    Some(format!("the artifact {name}{url}"))
}

/// A token variable's value, trimmed; empty counts as unset.
fn env_token(k: &str) -> Option<String> {
    std::env::var(k)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Say once, with the consequence, that tgs falls back to the workflow's
/// own token: GitHub starts no workflow run for what it does.
fn warn_workflow_token() {
    let msg = "tgs uses the workflow's GITHUB_TOKEN: pull requests it opens and state it pushes start no workflow runs (no checks on the pull requests, no dashboard build). Set TGS_GITHUB_TOKEN from a GitHub App (variable TGS_APP_ID, secret TGS_APP_PRIVATE_KEY) or a fine-grained token (secret TGS_GITHUB_TOKEN).";
    eprintln!("::warning title=tgs::{}", escape_data(msg));
}

/// The Actions sink of the runner's events.
pub struct Actions {
    output: Option<PathBuf>,
    summary: Option<PathBuf>,
    wrote_summary_header: bool,
    /// The running session's transcript, shown when it ends.
    log: Option<PathBuf>,
}

impl Actions {
    pub fn new() -> Actions {
        let path = |k: &str| {
            std::env::var_os(k)
                .map(PathBuf::from)
                .filter(|p| !p.as_os_str().is_empty())
        };
        Actions {
            output: path("GITHUB_OUTPUT"),
            summary: path("GITHUB_STEP_SUMMARY"),
            wrote_summary_header: false,
            log: None,
        }
    }

    fn append(path: &Option<PathBuf>, text: &str) {
        if let Some(p) = path {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
            {
                let _ = f.write_all(text.as_bytes());
            }
        }
    }

    /// `name<<DELIM` multi-line syntax: safe whatever the value holds.
    fn output(&self, name: &str, value: &str) {
        let delim = format!("TGS_EOF_{}", fastrand_token());
        Self::append(
            &self.output,
            &format!("{name}<<{delim}\n{value}\n{delim}\n"),
        );
    }
}

fn fastrand_token() -> String {
    format!(
        "{:016x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0) as u64
            ^ std::process::id() as u64
    )
}

impl Sink for Actions {
    fn event(&mut self, e: &Event) {
        let Event::SessionEnded {
            dir,
            outcome,
            reason,
            attempt,
            started,
            ended,
            stats,
            pr_url,
            disposition,
            ..
        } = e
        else {
            if let Event::AgentStarted { log, .. } = e {
                self.log = Some(log.clone());
            }
            return;
        };
        if let Some(log) = self.log.take() {
            print_transcript_group(dir, &log);
        }
        self.output("thought", dir);
        self.output("outcome", outcome.as_str());
        self.output("status", disposition.as_str());
        self.output("pr_url", pr_url.as_deref().unwrap_or_default());
        if !self.wrote_summary_header {
            Self::append(
                &self.summary,
                "## tgs server run\n\n| thought | outcome | attempt | duration | turns | cost | pull request |\n|---|---|---|---|---|---|---|\n",
            );
            self.wrote_summary_header = true;
        }
        let secs = ended.duration_since(*started).as_secs().max(0) as u64;
        let pr = match pr_url
            .as_deref()
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        {
            Some(u) => format!(
                "[{}]({u})",
                github::inline(u.rsplit('/').next().unwrap_or(u))
            ),
            None => "-".into(),
        };
        Self::append(
            &self.summary,
            &format!(
                "| {} | {} | {attempt} | {} | {} | {} | {pr} |\n",
                github::code_span(dir),
                outcome.as_str(),
                tgs_core::runner::humanize(std::time::Duration::from_secs(secs)),
                stats
                    .turns
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "-".into()),
                stats
                    .cost_usd
                    .map(|c| format!("${c:.2}"))
                    .unwrap_or_else(|| "-".into()),
            ),
        );
        if *outcome != Outcome::Success {
            let level = if *disposition == tgs_core::events::Disposition::Failed {
                "error"
            } else {
                "warning"
            };
            let msg = format!(
                "{dir}: {}: {}",
                outcome.as_str(),
                reason.as_deref().unwrap_or("no reason given")
            );
            // On stderr, like every workflow command tgs writes: stdout is
            // for data (`--json`).
            eprintln!(
                "::{level} title={}::{}",
                escape_property("tgs"),
                escape_data(&msg)
            );
        }
    }
}

/// Print the end of a transcript inside a collapsible group.
pub fn print_transcript_group(dir: &str, log: &std::path::Path) {
    let Ok(text) = tail_of(log, 64 * 1024) else {
        return;
    };
    eprintln!(
        "::group::{}",
        escape_data(&format!("transcript of {dir} (end of {})", log.display()))
    );
    // The transcript is already redacted; stop-commands keep its lines from being read as workflow commands.
    let token = format!("tgs-{}", fastrand_token());
    eprintln!("::stop-commands::{token}");
    eprintln!("{text}");
    eprintln!("::{token}::");
    eprintln!("::endgroup::");
}

fn tail_of(path: &std::path::Path, max: u64) -> std::io::Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(max)))?;
    let mut buf = Vec::new();
    f.take(max).read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_command_escaping() {
        assert_eq!(escape_data("a%b\r\nc"), "a%25b%0D%0Ac");
        assert_eq!(escape_property("x:y,z"), "x%3Ay%2Cz");
    }
}
