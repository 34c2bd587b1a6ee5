//! Keys of `tgs/tgs.yml` that tgs does not know: a typo must never switch a
//! setting off in silence (`verfy_command:` once turned verification off).
//!
//! The file is shared by the TGSFlow tools, so two rules apply:
//! - `server:` is tgs's own: every key under it, at any depth, must be one
//!   tgs reads (serde's `deny_unknown_fields`); [`explain`] turns serde's
//!   message into one with the line, the column and the nearest known name.
//! - the top level and the sections other tools own with tgs (`ai`,
//!   `steps`, `telemetry`, `context`, `guardrails`) may hold keys tgs does
//!   not know, which are kept and ignored, as the conventions ask; but a key
//!   that is a near miss of a known one (`sever`, `modle`) is a typo, and
//!   [`check_shared`] rejects it. `triggers` and `agents` belong to other
//!   tools and are left alone.

use crate::Error;

use super::CONFIG_PATH;

/// Top-level sections: tgs's own and those of the other TGSFlow tools.
const SECTIONS: &[&str] = &[
    "server",
    "ai",
    "triggers",
    "guardrails",
    "agents",
    "steps",
    "telemetry",
    "context",
    "mcp",
];

/// The keys of the shared sections, as the TGSFlow conventions list them.
const SHARED_KEYS: &[(&str, &[&str])] = &[
    (
        "ai",
        &[
            "provider",
            "model",
            "timeouts",
            "retry",
            "redact_env_keys",
            "redact_patterns",
        ],
    ),
    ("steps", &["impl_prompt", "plan_prompt", "review_prompt"]),
    ("mcp", &["write"]),
    ("telemetry", &["log_dir", "redact_rules"]),
    ("context", &["thoughts_dir", "include_globs"]),
    (
        "guardrails",
        &[
            "allow_paths",
            "deny_paths",
            "max_diff_lines",
            "required_checks",
            "commit_convention",
        ],
    ),
];

/// The known name `key` most likely misspells, if any: within two edits
/// (one for names of four characters or fewer), letter case aside.
pub fn nearest<'a>(key: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = key.to_ascii_lowercase();
    let limit = if key.chars().count() <= 4 { 1 } else { 2 };
    known
        .into_iter()
        .map(|k| (strsim::damerau_levenshtein(&lower, k), k))
        .filter(|(d, k)| *d <= limit && *k != key)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Reject near misses at the top level and in the shared sections.
pub fn check_shared(text: &str, value: &yaml_serde::Value) -> Result<(), Error> {
    let Some(top) = value.as_mapping() else {
        return Ok(());
    };
    for (k, v) in top {
        let Some(key) = k.as_str() else { continue };
        if SECTIONS.contains(&key) {
            let Some((_, known)) = SHARED_KEYS.iter().find(|(s, _)| *s == key) else {
                continue;
            };
            for inner in v.as_mapping().into_iter().flat_map(|m| m.keys()) {
                let Some(name) = inner.as_str() else { continue };
                if known.contains(&name) {
                    continue;
                }
                if let Some(near) = nearest(name, known.iter().copied()) {
                    return Err(unknown(
                        name,
                        key,
                        near,
                        locate(text, Some(key), name),
                        known,
                    ));
                }
            }
        } else if let Some(near) = nearest(key, SECTIONS.iter().copied()) {
            return Err(unknown(key, "", near, locate(text, None, key), SECTIONS));
        }
    }
    Ok(())
}

/// Turn serde's "unknown field" error under `server:` into a located
/// error naming the nearest known key; any other error is said as it is.
pub fn explain(e: &yaml_serde::Error) -> Error {
    let message = e.to_string();
    let Some(parsed) = parse_unknown_field(&message) else {
        return Error::invalid(format!("{CONFIG_PATH}: {message}"));
    };
    let at = e.location().map(|l| (l.line(), l.column()));
    let known: Vec<&str> = parsed.expected.iter().map(String::as_str).collect();
    match nearest(&parsed.key, known.iter().copied()) {
        Some(near) => unknown(&parsed.key, &parsed.section, near, at, &known),
        None => Error::Setup {
            message: format!(
                "{}: unknown key `{}`{}",
                place(at),
                parsed.key,
                within(&parsed.section)
            ),
            hint: Some(format!("the keys known here are {}", list(&known))),
        },
    }
}

fn unknown(
    key: &str,
    section: &str,
    near: &str,
    at: Option<(usize, usize)>,
    known: &[&str],
) -> Error {
    Error::Setup {
        message: format!(
            "{}: unknown key `{key}`{}: did you mean `{near}`?",
            place(at),
            within(section)
        ),
        hint: Some(format!("the keys known here are {}", list(known))),
    }
}

fn place(at: Option<(usize, usize)>) -> String {
    match at {
        Some((line, col)) => format!("{CONFIG_PATH}:{line}:{col}"),
        None => CONFIG_PATH.to_owned(),
    }
}

fn within(section: &str) -> String {
    if section.is_empty() {
        " at the top level".to_owned()
    } else {
        format!(" in `{section}`")
    }
}

fn list(known: &[&str]) -> String {
    known
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The line and column (1-based) where `key` is written: at the top level,
/// or inside the top-level `section`. Only block mappings are found; flow
/// ones (`ai: {modle: x}`) give no place.
fn locate(text: &str, section: Option<&str>, key: &str) -> Option<(usize, usize)> {
    let starts = |line: &str, k: &str| {
        line.strip_prefix(k)
            .is_some_and(|rest| rest.trim_start().starts_with(':'))
    };
    let mut inside = section.is_none();
    for (i, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let body = line.trim_start();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        if indent == 0 {
            if section.is_none() && starts(body, key) {
                return Some((i + 1, 1));
            }
            inside = section.is_some_and(|s| starts(body, s));
        } else if inside && section.is_some() && starts(body, key) {
            return Some((i + 1, indent + 1));
        }
    }
    None
}

/// serde's "unknown field" message, taken apart.
#[derive(Debug, PartialEq)]
struct UnknownField {
    /// Where the field is, dotted (`server.agents.claude-code`).
    section: String,
    key: String,
    expected: Vec<String>,
}

/// `server.pr: unknown field `x`, expected one of `a`, `b` at line 3 column 5`
/// (the section path is yaml_serde's; the location is taken from the error).
fn parse_unknown_field(message: &str) -> Option<UnknownField> {
    let idx = message.find("unknown field `")?;
    let section = message[..idx].trim_end().trim_end_matches(':').to_owned();
    let rest = &message[idx + "unknown field `".len()..];
    let (key, rest) = rest.split_once('`')?;
    let rest = rest.split(" at line ").next().unwrap_or(rest);
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    Some(UnknownField {
        section,
        key: key.to_owned(),
        expected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_are_found_and_other_names_are_not() {
        let known = ["verify_command", "verify_timeout", "model", "max_turns"];
        assert_eq!(nearest("verfy_command", known), Some("verify_command"));
        assert_eq!(nearest("modle", known), Some("model"));
        assert_eq!(nearest("max_turn", known), Some("max_turns"));
        assert_eq!(nearest("Model", known), Some("model"));
        assert_eq!(nearest("provider", known), None);
        assert_eq!(nearest("sever", SECTIONS.iter().copied()), Some("server"));
        assert_eq!(nearest("workflows", SECTIONS.iter().copied()), None);
    }

    #[test]
    fn serde_messages_are_taken_apart() {
        let m = "server.agents.claude-code: unknown field `modle`, expected one of `command`, `model` at line 4 column 7";
        assert_eq!(
            parse_unknown_field(m),
            Some(UnknownField {
                section: "server.agents.claude-code".into(),
                key: "modle".into(),
                expected: vec!["command".into(), "model".into()],
            })
        );
        let m = "unknown field `x`, expected `a` or `b`";
        let u = parse_unknown_field(m).unwrap();
        assert_eq!((u.section.as_str(), u.expected.len()), ("", 2));
        assert_eq!(parse_unknown_field("invalid type: string"), None);
    }

    #[test]
    fn keys_are_located() {
        let text = "# c\nai:\n  provider: x\n  modle: y\nserver:\n  agent: a\nsever: {}\n";
        assert_eq!(locate(text, Some("ai"), "modle"), Some((4, 3)));
        assert_eq!(locate(text, None, "sever"), Some((7, 1)));
        assert_eq!(locate(text, Some("server"), "modle"), None);
    }
}
