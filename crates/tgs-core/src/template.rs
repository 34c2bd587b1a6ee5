//! Built-in thought templates and skeleton recognition (`thought new`
//! fills them in: see `scaffold`).
//!
//! A file that is still byte-for-byte a template (the repository's own in
//! `tgs/agentops/tgs/`, or one of ours) is an unfilled skeleton: nothing was
//! written in it. Comparing blob ids lets a scan judge ten thousand thoughts
//! without reading a single file.
//!
//! `thought new` fills in what it knows ([`FILLED`]: the title, the date, the
//! base hash), so its copies are no longer byte-for-byte the templates. A
//! copy that differs from its template only on the lines of those
//! placeholders is still a skeleton ([`filled_skeleton_pattern`]). That takes
//! reading the file, which is done only where blob ids do not settle the
//! stage, for the thoughts a command needs, and only for thoughts whose
//! README says `thought new` made them ([`readme_is_scaffolded`]): thoughts
//! written by hand or by older tools are judged by blob ids alone, as before.

use std::collections::HashSet;
use std::path::Path;

use crate::git::blob_oid_sha1;

/// The templates used when a repository has none of its own.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "research.md",
        "# Research: <Title>\n\n- Date: <YYYY-MM-DD>\n- Base Hash: <hash>\n\n## 1. Problem Statement\n<What is the problem and why does it matter?>\n\n## 2. Current State\n<What exists today?>\n\n## 3. Constraints & Assumptions\n<Technical and product constraints.>\n\n## 4. Risks & Impact\n<What could go wrong?>\n\n## 5. Alternatives Considered\n<Options with pros and cons.>\n\n## 6. Recommendation\n<The chosen approach and why.>\n\n---\n\n**Approval Checkpoint:** reply `APPROVE research` or `REQUEST CHANGES: <notes>`.\n",
    ),
    (
        "plan.md",
        "# Plan: <Title>\n\n## Goal\n<What will be true when this is done?>\n\n## Steps\n1. <Step>\n\n## Files to Change\n- <path>: <change>\n\n## Tests\n<How the change is verified.>\n\n## Rollback\n<How to undo it.>\n\n---\n\n**Approval Checkpoint:** reply `APPROVE plan` or `REQUEST CHANGES: <notes>`.\n",
    ),
    (
        "implementation.md",
        "# Implementation: <Title>\n\n## Summary\n<What was implemented.>\n\n## Changes\n- <path>: <change>\n\n## Verification\n<Tests run and their results.>\n\n## Follow-ups\n<Anything left for later.>\n",
    ),
];

/// The placeholders `thought new` fills in, in any template.
pub const FILLED: [&str; 4] = ["<Title>", "<title>", "<YYYY-MM-DD>", "<hash>"];

/// What `thought new` knows when it copies a template.
#[derive(Debug, Clone, Copy)]
pub struct Fill<'a> {
    pub title: &'a str,
    /// `YYYY-MM-DD`, UTC.
    pub date: &'a str,
    /// The short base hash.
    pub hash: &'a str,
}

impl Fill<'_> {
    fn value(&self, placeholder: &str) -> &str {
        match placeholder {
            "<YYYY-MM-DD>" => self.date,
            "<hash>" => self.hash,
            _ => self.title,
        }
    }
}

/// A template's text cut at the placeholders of [`FILLED`]: `Ok(literal)` or `Err(placeholder)`.
fn segments(text: &str) -> Vec<Result<&str, &'static str>> {
    let mut out = Vec::new();
    let mut literal = 0;
    let mut at = 0;
    while let Some(i) = text[at..].find('<').map(|i| at + i) {
        match FILLED.iter().find(|p| text[i..].starts_with(**p)) {
            Some(p) => {
                if literal < i {
                    out.push(Ok(&text[literal..i]));
                }
                out.push(Err(*p));
                at = i + p.len();
                literal = at;
            }
            None => at = i + 1,
        }
    }
    if literal < text.len() {
        out.push(Ok(&text[literal..]));
    }
    out
}

/// A template with the placeholders of [`FILLED`] filled in, in one pass (a
/// title that itself says `<hash>` is left as it is). A template that is not
/// UTF-8 is copied as it is.
pub fn fill(template: &[u8], with: &Fill<'_>) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(template) else {
        return template.to_vec();
    };
    segments(text)
        .into_iter()
        .map(|s| s.unwrap_or_else(|p| with.value(p)))
        .collect::<String>()
        .into_bytes()
}

/// What a copy of `template` made by `thought new` and not written in since
/// looks like: the template's text with each placeholder of [`FILLED`]
/// standing for any text on its line (what tgs filled in, or a title changed
/// by hand). `None` when the template has no such placeholder, or is not
/// UTF-8: then its blob id alone recognises its copies.
pub fn filled_skeleton_pattern(template: &[u8]) -> Option<regex::bytes::Regex> {
    let text = std::str::from_utf8(template).ok()?;
    let segs = segments(text);
    if segs.iter().all(Result::is_ok) {
        return None;
    }
    let mut pattern = String::from(r"\A");
    for s in segs {
        match s {
            Ok(literal) => pattern.push_str(&regex::escape(literal)),
            Err(_) => pattern.push_str(r"[^\n]*"),
        }
    }
    pattern.push_str(r"\z");
    regex::bytes::RegexBuilder::new(&pattern)
        .size_limit(1 << 22)
        .build()
        .ok()
}

/// Whether `text` has a placeholder that [`filled_skeleton_pattern`] turns
/// into a wildcard (so that it gives a pattern).
pub fn has_filled_placeholder(text: &str) -> bool {
    segments(text).iter().any(Result::is_err)
}

/// The line of a README written by `thought new` that gives its date.
const DATE_LINE: &str = "- Date: ";

/// Whether a README was written by `thought new` (it has the date line in its
/// first lines), so the thought's files may be filled-in templates.
pub fn readme_is_scaffolded(blob: &[u8]) -> bool {
    blob.split(|&b| b == b'\n')
        .take(8)
        .any(|line| line.starts_with(DATE_LINE.as_bytes()))
}

/// Patterns of the built-in templates' filled copies, made once.
pub fn builtin_filled_patterns() -> &'static [regex::bytes::Regex] {
    static PATTERNS: std::sync::OnceLock<Vec<regex::bytes::Regex>> = std::sync::OnceLock::new();
    PATTERNS.get_or_init(|| {
        BUILTIN
            .iter()
            .filter_map(|(_, body)| filled_skeleton_pattern(body.as_bytes()))
            .collect()
    })
}

/// Blob ids of the built-in templates, recognised as skeletons in any repository.
pub fn builtin_skeleton_oids() -> HashSet<String> {
    BUILTIN
        .iter()
        .map(|(_, body)| blob_oid_sha1(body.as_bytes()))
        .collect()
}

/// The README.md of a new thought, in the format existing repositories use,
/// with the date it was made (which tells it was made by `thought new`).
pub fn readme(with: &Fill<'_>, files: &[String], spec: Option<&str>) -> String {
    let Fill { title, date, hash } = *with;
    let mut s = format!(
        "# {hash} - {title}\n\n- Base Hash: `{hash}`\n{DATE_LINE}{date}\n\n## Quick Links\n"
    );
    for f in files {
        let label = Path::new(f)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(f)
            .trim_start_matches(|c: char| c.is_ascii_digit() || c == '_');
        let mut label: Vec<char> = label.replace(['_', '-'], " ").chars().collect();
        if let Some(c) = label.first_mut() {
            *c = c.to_ascii_uppercase();
        }
        s.push_str(&format!("- [{}]({f})\n", label.iter().collect::<String>()));
    }
    if let Some(spec) = spec.map(str::trim).filter(|s| !s.is_empty()) {
        s.push_str(&format!("\n## Idea Spec\n{spec}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_format() {
        let with = Fill {
            title: "Add dark mode",
            date: "2026-01-15",
            hash: "abc1234",
        };
        let r = readme(
            &with,
            &["research.md".into(), "20_plan.md".into()],
            Some("Users want it."),
        );
        assert!(r.starts_with(
            "# abc1234 - Add dark mode\n\n- Base Hash: `abc1234`\n- Date: 2026-01-15\n\n"
        ));
        assert!(r.contains("- [Research](research.md)\n- [Plan](20_plan.md)\n"));
        assert!(r.ends_with("## Idea Spec\nUsers want it.\n"));
        assert!(!readme(&with, &[], Some("  ")).contains("Idea Spec"));
        assert!(readme_is_scaffolded(r.as_bytes()));
        // READMEs written by hand or by older tools.
        assert!(!readme_is_scaffolded(
            b"# abc1234 - Add dark mode\n\n- Base Hash: `abc1234`\n\n## Quick Links\n"
        ));
    }

    #[test]
    fn filling_placeholders() {
        let with = Fill {
            title: "Café <hash> 🚀",
            date: "2026-01-15",
            hash: "abc1234",
        };
        let t =
            "# Research: <Title>\n- Date: <YYYY-MM-DD>\n- Base Hash: <hash>\n<title> <What?> <\n";
        assert_eq!(
            String::from_utf8(fill(t.as_bytes(), &with)).unwrap(),
            "# Research: Café <hash> 🚀\n- Date: 2026-01-15\n- Base Hash: abc1234\nCafé <hash> 🚀 <What?> <\n"
        );
        assert_eq!(fill(b"\xff<Title>", &with), b"\xff<Title>");
        assert_eq!(fill(b"no placeholders", &with), b"no placeholders");
    }

    #[test]
    fn filled_copies_of_every_builtin_are_skeletons() {
        let with = Fill {
            title: "日本語のタイトル (v2.0) [x]*",
            date: "2026-01-15",
            hash: "abc1234",
        };
        let patterns = builtin_filled_patterns();
        assert_eq!(patterns.len(), BUILTIN.len());
        for (name, body) in BUILTIN {
            let copy = fill(body.as_bytes(), &with);
            assert_ne!(copy, body.as_bytes(), "{name}");
            assert!(patterns.iter().any(|p| p.is_match(&copy)), "{name}");
            // A changed title is still nothing written.
            let retitled = String::from_utf8(copy.clone())
                .unwrap()
                .replacen("日本語", "Better", 1);
            assert!(
                patterns.iter().any(|p| p.is_match(retitled.as_bytes())),
                "{name}"
            );
            // Anything written is not a skeleton any more.
            let mut written = copy.clone();
            written.extend_from_slice(b"We found that...\n");
            assert!(!patterns.iter().any(|p| p.is_match(&written)), "{name}");
            let answered = String::from_utf8(copy)
                .unwrap()
                .replacen("<", "It works because ", 1);
            assert!(
                !patterns.iter().any(|p| p.is_match(answered.as_bytes())),
                "{name}"
            );
        }
        assert!(filled_skeleton_pattern(b"# Plan\n<steps>\n").is_none());
        assert!(filled_skeleton_pattern(b"\xff<Title>").is_none());
    }

    #[test]
    fn builtins_are_distinct_skeletons() {
        assert_eq!(builtin_skeleton_oids().len(), BUILTIN.len());
    }
}
