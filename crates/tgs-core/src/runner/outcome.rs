//! Judging what happened, as pure functions of what was observed: how an
//! agent session ended, whether the model provider (not the thought) is to
//! blame, and how long to wait before trying again.
//!
//! Nothing here does I/O, so every rule is unit-tested on its own.

use std::time::Duration;

use crate::agent::claude::ClaudeResult;
use crate::events::Outcome;
use crate::process::Ending;
use crate::session::AgentRun;

/// A condition of the model provider that every thought would meet alike:
/// it is not held against the thought (the attempt does not count) and
/// workers stop starting sessions with that agent for a while.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderCondition {
    pub kind: ProviderKind,
    /// What the provider said, one line.
    pub detail: String,
    /// How long the provider asked to wait, when it said.
    pub retry_after: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Rate limits, overload, capacity: it passes by itself.
    RateLimited,
    /// Credit, credentials, permissions: it lasts until a human acts.
    Unavailable,
    /// Not the provider but the agent's configuration: its CLI rejected its
    /// command line or environment. Every thought would meet it alike, and
    /// it too lasts until a human acts.
    Misconfigured,
}

impl ProviderKind {
    pub fn outcome(self) -> Outcome {
        match self {
            ProviderKind::RateLimited => Outcome::RateLimited,
            ProviderKind::Unavailable => Outcome::Unavailable,
            ProviderKind::Misconfigured => Outcome::Misconfigured,
        }
    }

    /// The name kept in session records (`rate_limited`, ...).
    pub fn as_str(self) -> &'static str {
        self.outcome().as_str()
    }

    /// The kind a session record names; `None` for a name tgs never writes.
    pub fn parse(name: &str) -> Option<ProviderKind> {
        [
            ProviderKind::RateLimited,
            ProviderKind::Unavailable,
            ProviderKind::Misconfigured,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }

    /// It lasts until a human resumes the agent (no pause length passes it).
    pub fn until_resumed(self) -> bool {
        self != ProviderKind::RateLimited
    }
}

/// What the agent run alone says about the session.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentVerdict {
    /// It ended well: go on to verification.
    Proceed,
    /// The session is over with this outcome and reason.
    Over(Outcome, String),
    /// The provider refused: see [`ProviderCondition`].
    Provider(ProviderCondition),
}

/// Judge an agent run: how it ended, and what it reported.
pub fn judge_agent(run: &AgentRun, timeout: Duration) -> AgentVerdict {
    if let Some(p) = provider_of_run(run) {
        return AgentVerdict::Provider(p);
    }
    if let Some(p) = rejected_start(run) {
        return AgentVerdict::Provider(p);
    }
    match &run.ending {
        Ending::Interrupted(sig) => {
            return AgentVerdict::Over(Outcome::Cancelled, format!("interrupted by signal {sig}"))
        }
        Ending::TimedOut => {
            return AgentVerdict::Over(
                Outcome::Timeout,
                format!(
                    "the session ran past its timeout of {}",
                    crate::runner::humanize(timeout)
                ),
            )
        }
        Ending::Stalled(quiet) => {
            return AgentVerdict::Over(Outcome::Stalled, stalled_reason(run, *quiet))
        }
        Ending::Stopped(why) => {
            return AgentVerdict::Over(Outcome::Failed, format!("the agent was stopped: {why}"))
        }
        Ending::Exited(s) if s.code().is_none() => {
            return AgentVerdict::Over(
                Outcome::Crashed,
                format!("the agent {}{}", run.ending.describe(), last_line(run)),
            )
        }
        Ending::Exited(s) if !s.success() => {
            // Claude exits 1 on API errors and the turn limit: its own
            // account of why beats the last line of output.
            let why = match &run.reported_failure {
                Some(r) => format!("the agent {}: {r}", run.ending.describe()),
                None => format!("the agent {}{}", run.ending.describe(), last_line(run)),
            };
            return AgentVerdict::Over(Outcome::Failed, why);
        }
        // Exited 0, or stopped after it reported its end: judged on its report.
        Ending::Exited(_) | Ending::StoppedAfterEnd => {}
    }
    match &run.reported_failure {
        Some(why) => AgentVerdict::Over(Outcome::Failed, why.clone()),
        None => AgentVerdict::Proceed,
    }
}

/// A CLI that speaks a stream of events, exited non-zero before its first
/// one (no session, no turn) and said why on stderr did not start a
/// session: it rejected its command line or its environment (`error:
/// unknown option '--bogus-flag'`; Claude's refusal of
/// `--dangerously-skip-permissions` as root). That is the agent's
/// configuration, not the thought: told in the CLI's own words.
pub fn rejected_start(run: &AgentRun) -> Option<ProviderCondition> {
    let refused = matches!(run.ending, Ending::Exited(s) if s.code().is_some_and(|c| c != 0));
    if !refused || run.started != Some(false) {
        return None;
    }
    let words: Vec<&str> = run
        .stderr_tail
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let said = words[words.len().saturating_sub(3)..].join(" ");
    if said.is_empty() {
        return None;
    }
    Some(ProviderCondition {
        kind: ProviderKind::Misconfigured,
        detail: format!(
            "the agent's CLI did not start a session ({}): {}",
            run.ending.describe(),
            one_line(&said, 300)
        ),
        retry_after: None,
    })
}

/// `no sign of life for 20m (no output, no change in its repository); last
/// seen: <its last action, or its last line of output>`.
fn stalled_reason(run: &AgentRun, quiet: Duration) -> String {
    let seen = run
        .last_action
        .as_deref()
        .map(|a| a.chars().take(200).collect())
        .or_else(|| last_output(run))
        .map(|l| format!("; last seen: {l}"))
        .unwrap_or_default();
    format!(
        "no sign of life for {} (no output, no change in its repository){seen}",
        crate::runner::humanize(quiet)
    )
}

/// The last line the agent wrote on stderr, else on stdout, as ` (last output: ...)`.
fn last_line(run: &AgentRun) -> String {
    last_output(run)
        .map(|l| format!(" (last output: {l})"))
        .unwrap_or_default()
}

/// The last line the agent wrote on stderr, else on stdout (not tgs's own
/// `# tgs` lines), at most 200 characters.
fn last_output(run: &AgentRun) -> Option<String> {
    run.stderr_tail
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .or_else(|| {
            run.tail
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty() && !l.starts_with("# tgs"))
        })
        .map(|l| l.chars().take(200).collect())
}

/// A provider condition the run reports: Claude's result, a Codex error.
/// (Text agents report none in a way tgs can trust; see [`provider_of_output`].)
pub fn provider_of_run(run: &AgentRun) -> Option<ProviderCondition> {
    if let Some(r) = &run.claude_result {
        return provider_of_claude(r);
    }
    run.codex_error.as_deref().and_then(provider_of_text)
}

/// Claude's `result` event: an API error of the provider's making.
pub fn provider_of_claude(r: &ClaudeResult) -> Option<ProviderCondition> {
    if !r.is_error && !r.subtype.starts_with("error") {
        return None;
    }
    let text = r.result.as_deref().unwrap_or_default();
    let detail = |what: &str| {
        let t = one_line(text, 200);
        if t.is_empty() {
            what.to_owned()
        } else {
            format!("{what}: {t}")
        }
    };
    let kind = match r.api_error_status {
        Some(429 | 529) => ProviderKind::RateLimited,
        Some(401..=403) => ProviderKind::Unavailable,
        _ => return provider_of_text(text),
    };
    let status = r.api_error_status.unwrap_or_default();
    Some(ProviderCondition {
        kind,
        detail: detail(&format!("API error {status}")),
        retry_after: retry_after_in(text),
    })
}

/// What a provider's error text says, by the phrases providers use; `None`
/// when it reads like anything else.
pub fn provider_of_text(text: &str) -> Option<ProviderCondition> {
    let t = text.to_ascii_lowercase();
    const UNAVAILABLE: &[&str] = &[
        "credit balance is too low",
        "insufficient_quota",
        "exceeded your current quota",
        "billing",
        "invalid x-api-key",
        "invalid api key",
        "invalid_api_key",
        "incorrect api key",
        "authentication_error",
        "oauth_org_not_allowed",
        "permission_error",
        "api key not valid",
        "unauthenticated",
    ];
    const RATE_LIMITED: &[&str] = &[
        "rate limit",
        "rate_limit",
        "ratelimit",
        "too many requests",
        "resource_exhausted",
        "overloaded",
        "at capacity",
        " 429",
        "429 ",
        "(429)",
        " 529",
        "503 service unavailable",
        "temporarily unavailable",
    ];
    let kind = if UNAVAILABLE.iter().any(|p| t.contains(p)) {
        ProviderKind::Unavailable
    } else if RATE_LIMITED.iter().any(|p| t.contains(p)) || t.starts_with("429") {
        ProviderKind::RateLimited
    } else {
        return None;
    };
    Some(ProviderCondition {
        kind,
        detail: one_line(text, 200),
        retry_after: retry_after_in(text),
    })
}

/// A text agent that changed nothing, and whose output ends in a provider's
/// error (Gemini exits 0 with `429 RESOURCE_EXHAUSTED` on stderr): judged by
/// the last lines only, so a mention earlier in a long session is not taken.
pub fn provider_of_output(output_tail: &str) -> Option<ProviderCondition> {
    let lines: Vec<&str> = output_tail
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("# tgs"))
        .collect();
    let last = &lines[lines.len().saturating_sub(20)..];
    provider_of_text(&last.join("\n"))
}

/// A wait the text asks for: `retry-after: 30`, `retry after 30 seconds`,
/// `"retryDelay": "32s"`, `try again in 20s`.
pub fn retry_after_in(text: &str) -> Option<Duration> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(
            r#"(?i)(?:retry[-_ ]?after|retrydelay|try again in)\W{0,4}(\d{1,6}(?:\.\d+)?)\s*(ms|s|sec|secs|seconds?|m|min|minutes?)?"#,
        )
        .expect("a valid pattern")
    });
    let c = re.captures(text)?;
    let n: f64 = c[1].parse().ok()?;
    let secs = match c.get(2).map(|m| m.as_str().to_ascii_lowercase()) {
        Some(u) if u == "ms" => n / 1000.0,
        Some(u) if u.starts_with('m') => n * 60.0,
        _ => n,
    };
    Some(Duration::from_secs_f64(secs.clamp(0.0, 24.0 * 3600.0)))
}

/// How long to pause an agent after its provider refused: what it asked
/// for, else a cool-down that doubles with each pause in a row (1 minute,
/// 2, 4, ... up to an hour).
pub fn pause_length(c: &ProviderCondition, strikes: u32) -> Duration {
    c.retry_after.unwrap_or_else(|| {
        Duration::from_secs(60)
            .saturating_mul(1u32 << strikes.min(6))
            .min(Duration::from_secs(3600))
    })
}

/// The delay before attempt `attempt + 1`: `base * 2^(attempt-1)`, capped,
/// with ±20% jitter.
pub fn retry_delay(base: Duration, max: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    exp.min(max).mul_f64(0.8 + 0.4 * fastrand::f64())
}

fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        let mut s: String = flat.chars().take(max - 1).collect();
        s.push('…');
        s
    } else {
        flat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claude(is_error: bool, status: Option<u16>, text: &str) -> ClaudeResult {
        ClaudeResult {
            subtype: "success".into(),
            is_error,
            api_error_status: status,
            result: Some(text.into()),
            ..Default::default()
        }
    }

    #[test]
    fn claude_provider_conditions() {
        let rl = provider_of_claude(&claude(true, Some(429), "rate_limit_error")).unwrap();
        assert_eq!(rl.kind, ProviderKind::RateLimited);
        let ov = provider_of_claude(&claude(true, Some(529), "Overloaded")).unwrap();
        assert_eq!(ov.kind, ProviderKind::RateLimited);
        for (status, text) in [
            (None, "Credit balance is too low"),
            (Some(401), "invalid x-api-key"),
            (Some(403), "{\"type\":\"error\",\"error\":{\"type\":\"permission_error\",\"message\":\"oauth_org_not_allowed\"}}"),
        ] {
            let c = provider_of_claude(&claude(true, status, text)).unwrap();
            assert_eq!(c.kind, ProviderKind::Unavailable, "{text}");
        }
        // Errors of the session itself are the thought's.
        assert_eq!(
            provider_of_claude(&claude(true, None, "error during execution")),
            None
        );
        assert_eq!(provider_of_claude(&claude(false, None, "all done")), None);
        let mut turns = claude(false, None, "");
        turns.subtype = "error_max_turns".into();
        assert_eq!(provider_of_claude(&turns), None);
    }

    #[test]
    fn text_conditions_and_waits() {
        let c = provider_of_text("stream error: model at capacity, please retry").unwrap();
        assert_eq!(c.kind, ProviderKind::RateLimited);
        let g = provider_of_output(
            "Loaded cached credentials.\n[API Error: {\"error\":{\"code\":429,\"message\":\"Resource has been exhausted\",\"status\":\"RESOURCE_EXHAUSTED\",\"details\":[{\"retryDelay\":\"32s\"}]}}]\n",
        )
        .unwrap();
        assert_eq!(g.kind, ProviderKind::RateLimited);
        assert_eq!(g.retry_after, Some(Duration::from_secs(32)));
        assert_eq!(provider_of_text("error[E0308]: mismatched types"), None);
        assert_eq!(provider_of_text("Reconnecting... 1/5"), None);
        assert_eq!(
            retry_after_in("retry-after: 3"),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            retry_after_in("try again in 2 minutes"),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            retry_after_in("retry after 500ms"),
            Some(Duration::from_millis(500))
        );
        assert_eq!(retry_after_in("nothing"), None);
        // Only the end of a long output counts.
        let mut long = "rate limit mentioned early\n".to_owned();
        long.push_str(&"working\n".repeat(50));
        assert_eq!(provider_of_output(&long), None);
    }

    #[test]
    fn pauses_grow_and_honour_the_provider() {
        let c = provider_of_text("429 Too Many Requests").unwrap();
        assert_eq!(pause_length(&c, 0), Duration::from_secs(60));
        assert_eq!(pause_length(&c, 2), Duration::from_secs(240));
        assert_eq!(pause_length(&c, 30), Duration::from_secs(3600));
        let asked = provider_of_text("429; retry after 7 seconds").unwrap();
        assert_eq!(pause_length(&asked, 5), Duration::from_secs(7));
    }

    #[test]
    fn retry_delays_grow_cap_and_jitter() {
        let base = Duration::from_secs(60);
        let max = Duration::from_secs(600);
        for _ in 0..50 {
            let d1 = retry_delay(base, max, 1).as_secs_f64();
            let d3 = retry_delay(base, max, 3).as_secs_f64();
            let d9 = retry_delay(base, max, 9).as_secs_f64();
            assert!((48.0..72.0).contains(&d1), "{d1}");
            assert!((192.0..288.0).contains(&d3), "{d3}");
            assert!((480.0..720.0).contains(&d9), "{d9}");
        }
    }
}
