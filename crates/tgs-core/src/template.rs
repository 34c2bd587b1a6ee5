//! Built-in thought templates, skeleton recognition and `thought new` scaffolding.
//!
//! A file that is still byte-for-byte a template (the repository's own in
//! `tgs/agentops/tgs/`, or one of ours) is an unfilled skeleton: nothing was
//! written in it. Comparing blob ids lets a scan judge ten thousand thoughts
//! without reading a single file.

use std::collections::HashSet;
use std::path::Path;

use crate::git::blob_oid_sha1;
use crate::repo::Repo;
use crate::thought::{slugify, ThoughtName, FALLBACK_SLUG, TEMPLATES_DIR, THOUGHTS_DIR};
use crate::Error;

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

/// Blob ids of the built-in templates, recognised as skeletons in any repository.
pub fn builtin_skeleton_oids() -> HashSet<String> {
    BUILTIN
        .iter()
        .map(|(_, body)| blob_oid_sha1(body.as_bytes()))
        .collect()
}

/// The README.md of a new thought, in the format existing repositories use.
pub fn readme(hash: &str, title: &str, files: &[String], spec: Option<&str>) -> String {
    let mut s = format!("# {hash} - {title}\n\n- Base Hash: `{hash}`\n\n## Quick Links\n");
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

/// What `thought new` made.
#[derive(Debug, Clone)]
pub struct Scaffolded {
    /// Repository-relative directory.
    pub dir: String,
    pub name: ThoughtName,
    pub files: Vec<String>,
    pub from_repo_templates: bool,
}

/// Create `tgs/thoughts/<short HEAD>-<slug>/` with the templates and a README.
///
/// The slug is the title transliterated to ASCII ([`slugify`]); a title that
/// leaves nothing (only punctuation, say) gives `<short HEAD>-thought`. The
/// title itself is kept as written, in the README's heading.
pub fn scaffold(repo: &Repo, title: &str, spec: Option<&str>) -> Result<Scaffolded, Error> {
    let title = crate::thought::sanitize_title(title);
    if title.is_empty() {
        return Err(Error::invalid("the title is empty"));
    }
    let slug = Some(slugify(&title))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| FALLBACK_SLUG.to_owned());
    if repo.head()?.is_none() {
        return Err(Error::invalid(
            "the repository has no commits yet; a thought's base hash is the commit it starts from",
        ));
    }
    let hash = repo.git().text(["rev-parse", "--short", "HEAD"])?;
    let name = ThoughtName::parse(&format!("{hash}-{slug}")).ok_or_else(|| {
        Error::invalid(format!(
            "cannot make a thought name from {hash:?} and {slug:?}"
        ))
    })?;
    let dir = format!("{THOUGHTS_DIR}/{name}");
    let abs = repo.root().join(&dir);
    if std::fs::symlink_metadata(&abs).is_ok() {
        return Err(Error::invalid(format!("{dir} already exists")));
    }

    let repo_own = repo_templates(repo)?;
    let from_repo_templates = !repo_own.is_empty();
    let templates = if from_repo_templates {
        repo_own
    } else {
        BUILTIN
            .iter()
            .map(|(n, b)| (n.to_string(), b.as_bytes().to_vec()))
            .collect()
    };

    std::fs::create_dir_all(abs.parent().expect("has parent"))?;
    std::fs::create_dir(&abs)?;
    let mut files = Vec::new();
    for (file, body) in &templates {
        if file == "README.md" {
            continue;
        }
        std::fs::write(abs.join(file), body)?;
        files.push(file.clone());
    }
    files.sort_by_key(|f| crate::thought::Role::of(f));
    std::fs::write(abs.join("README.md"), readme(&hash, &title, &files, spec))?;
    files.insert(0, "README.md".into());
    Ok(Scaffolded {
        dir,
        name,
        files,
        from_repo_templates,
    })
}

/// The repository's template files (regular files directly in the templates folder).
fn repo_templates(repo: &Repo) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let dir = repo.root().join(TEMPLATES_DIR);
    let Ok(read) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in read {
        let entry = entry?;
        // symlink_metadata: a symlinked template could copy any file on the machine into the repo.
        let meta = std::fs::symlink_metadata(entry.path())?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if meta.is_file() && !name.starts_with('.') {
            out.push((name, std::fs::read(entry.path())?));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_format() {
        let r = readme(
            "abc1234",
            "Add dark mode",
            &["research.md".into(), "20_plan.md".into()],
            Some("Users want it."),
        );
        assert!(r.starts_with("# abc1234 - Add dark mode\n\n- Base Hash: `abc1234`\n"));
        assert!(r.contains("- [Research](research.md)\n- [Plan](20_plan.md)\n"));
        assert!(r.ends_with("## Idea Spec\nUsers want it.\n"));
        assert!(!readme("abc1234", "T", &[], Some("  ")).contains("Idea Spec"));
    }

    #[test]
    fn builtins_are_distinct_skeletons() {
        assert_eq!(builtin_skeleton_oids().len(), BUILTIN.len());
    }
}
