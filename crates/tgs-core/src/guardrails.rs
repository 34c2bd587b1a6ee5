//! Nothing unreviewed lands: `server.guardrails` in `tgs/tgs.yml`, checked
//! on a branch's diff against its base before anything is pushed.
//!
//! ```yaml
//! server:
//!   guardrails:
//!     deny_paths: [".github/workflows/**", "tgs/server/**", ".gitmodules"]  # the default
//!     allow_paths: ["src/**", "tests/**", "tgs/thoughts/**"]  # if set, every changed path matches one
//!     max_changed_files: 50
//!     max_diff_lines: 2000        # added + deleted lines
//!     executable_paths: ["scripts/**"]  # new executable files only here (default: nowhere)
//! ```
//!
//! Every key is optional. Patterns are globs matched against the whole path
//! from the repository's root: `*` stays within one directory, `**` spans
//! any number (`**/*.sh` is a shell script anywhere). A `deny_paths` that is
//! set replaces the default list (`deny_paths: []` denies nothing). A
//! deletion or a mode change counts as a change of its path. Symbolic links
//! may not point out of the repository (an absolute target, or `..` climbing
//! above the root), whatever the configuration.
//!
//! [`check`] is pure (the rules against a list of [`Change`]s);
//! [`check_branch`] reads the changes of a branch with git and checks them,
//! for `verify` and for any command that re-checks a branch later.

use std::fmt::Write as _;

use glob::{MatchOptions, Pattern};
use serde::Deserialize;

use crate::git::Git;
use crate::Error;

/// The default `deny_paths`: CI workflows (they run with the repository's
/// secrets), tgs's own state, and submodules (code fetched from elsewhere).
pub const DEFAULT_DENY: &[&str] = &[".github/workflows/**", "tgs/server/**", ".gitmodules"];

/// How many offending paths a problem names before "and N more".
const NAMED: usize = 5;

/// `server.guardrails` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardrailsConfig {
    pub deny_paths: Option<Vec<String>>,
    pub allow_paths: Option<Vec<String>>,
    pub max_changed_files: Option<usize>,
    pub max_diff_lines: Option<u64>,
    pub executable_paths: Option<Vec<String>>,
}

/// A list of glob patterns, kept with their text for messages.
#[derive(Debug, Clone, Default)]
pub struct Globs {
    patterns: Vec<Pattern>,
}

impl Globs {
    /// Compile `patterns`; an invalid one is named with `key`.
    pub fn new(key: &str, patterns: &[impl AsRef<str>]) -> Result<Globs, Error> {
        let patterns = patterns
            .iter()
            .map(|p| {
                Pattern::new(p.as_ref()).map_err(|e| {
                    Error::invalid(format!(
                        "tgs/tgs.yml: server.guardrails.{key}: {:?} is not a glob pattern: {e}",
                        p.as_ref()
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Globs { patterns })
    }

    pub fn matches(&self, path: &str) -> bool {
        let opts = MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        self.patterns.iter().any(|p| p.matches_with(path, opts))
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    fn describe(&self) -> String {
        self.patterns
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The guardrails after resolution.
#[derive(Debug, Clone)]
pub struct Guardrails {
    pub deny_paths: Globs,
    pub allow_paths: Option<Globs>,
    pub max_changed_files: Option<usize>,
    pub max_diff_lines: Option<u64>,
    pub executable_paths: Globs,
}

impl Default for Guardrails {
    fn default() -> Self {
        Guardrails::resolve(&GuardrailsConfig::default()).expect("the defaults are valid")
    }
}

impl Guardrails {
    pub fn resolve(c: &GuardrailsConfig) -> Result<Guardrails, Error> {
        let deny = match &c.deny_paths {
            Some(d) => Globs::new("deny_paths", d)?,
            None => Globs::new("deny_paths", DEFAULT_DENY)?,
        };
        Ok(Guardrails {
            deny_paths: deny,
            allow_paths: c
                .allow_paths
                .as_ref()
                .map(|a| Globs::new("allow_paths", a))
                .transpose()?,
            max_changed_files: c.max_changed_files,
            max_diff_lines: c.max_diff_lines,
            executable_paths: Globs::new(
                "executable_paths",
                c.executable_paths.as_deref().unwrap_or_default(),
            )?,
        })
    }
}

/// One path a branch changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    /// Octal modes as git gives them (`100644`, `100755`, `120000`; 0: absent).
    pub old_mode: u32,
    pub new_mode: u32,
    /// Lines added and deleted (0 for a binary file).
    pub added: u64,
    pub deleted: u64,
    /// The blob the branch leaves at the path (git's id; zeros if deleted).
    pub new_oid: String,
    /// What a symbolic link the branch leaves points to.
    pub link_target: Option<String>,
}

const EXECUTABLE: u32 = 0o100755;
const SYMLINK: u32 = 0o120000;

/// The guardrails `changes` break, one problem per rule, each naming the
/// offending paths. Pure.
pub fn check(changes: &[Change], g: &Guardrails) -> Vec<String> {
    let mut problems = Vec::new();
    let denied: Vec<&str> = changes
        .iter()
        .filter(|c| g.deny_paths.matches(&c.path))
        .map(|c| c.path.as_str())
        .collect();
    if !denied.is_empty() {
        problems.push(format!(
            "guardrail deny_paths: the branch changes {} (denied: {})",
            few(&denied),
            g.deny_paths.describe()
        ));
    }
    if let Some(allow) = &g.allow_paths {
        let outside: Vec<&str> = changes
            .iter()
            .filter(|c| !allow.matches(&c.path))
            .map(|c| c.path.as_str())
            .collect();
        if !outside.is_empty() {
            problems.push(format!(
                "guardrail allow_paths: the branch changes {}, outside the allowed paths ({})",
                few(&outside),
                allow.describe()
            ));
        }
    }
    if let Some(max) = g.max_changed_files {
        if changes.len() > max {
            problems.push(format!(
                "guardrail max_changed_files: the branch changes {} files (at most {max})",
                changes.len()
            ));
        }
    }
    if let Some(max) = g.max_diff_lines {
        let total: u64 = changes.iter().map(|c| c.added + c.deleted).sum();
        if total > max {
            let mut biggest: Vec<&Change> = changes.iter().collect();
            biggest.sort_by_key(|c| std::cmp::Reverse(c.added + c.deleted));
            let named: Vec<String> = biggest
                .iter()
                .take(3)
                .map(|c| format!("{} ({})", c.path, c.added + c.deleted))
                .collect();
            problems.push(format!(
                "guardrail max_diff_lines: the branch changes {total} lines (at most {max}); the most in {}",
                named.join(", ")
            ));
        }
    }
    let escaping: Vec<String> = changes
        .iter()
        .filter_map(|c| {
            let target = c.link_target.as_deref()?;
            link_escapes(&c.path, target).map(|why| format!("{} ({why})", c.path))
        })
        .collect();
    if !escaping.is_empty() {
        let refs: Vec<&str> = escaping.iter().map(String::as_str).collect();
        problems.push(format!(
            "guardrail symlinks: {} point{} out of the repository",
            few(&refs),
            if escaping.len() == 1 { "s" } else { "" }
        ));
    }
    let executables: Vec<&str> = changes
        .iter()
        .filter(|c| c.new_mode == EXECUTABLE && c.old_mode != EXECUTABLE)
        .filter(|c| !g.executable_paths.matches(&c.path))
        .map(|c| c.path.as_str())
        .collect();
    if !executables.is_empty() {
        let mut p = format!(
            "guardrail executable_paths: the branch makes {} executable",
            few(&executables)
        );
        if g.executable_paths.is_empty() {
            p.push_str(" (no path is allowed new executables)");
        } else {
            let _ = write!(p, " (allowed only under {})", g.executable_paths.describe());
        }
        problems.push(p);
    }
    problems
}

/// `a, b, c and 4 more`.
fn few(paths: &[&str]) -> String {
    let mut s = paths
        .iter()
        .take(NAMED)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if paths.len() > NAMED {
        let _ = write!(s, " and {} more", paths.len() - NAMED);
    }
    s
}

/// Why a link at `path` to `target` leaves the repository, if it does.
pub fn link_escapes(path: &str, target: &str) -> Option<&'static str> {
    if target.starts_with('/') {
        return Some("an absolute target");
    }
    let mut depth: Vec<&str> = path.split('/').collect();
    depth.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if depth.pop().is_none() {
                    return Some("its target climbs above the root");
                }
            }
            p => depth.push(p),
        }
    }
    None
}

/// The changes of `head` over `base`: `git diff --raw` and `--numstat` (no
/// rename detection: a rename is a deletion and an addition, both checked),
/// and one `git cat-file --batch` for the targets of symbolic links (by
/// blob id, so that no path needs quoting).
pub fn changes(git: &Git, base: &str, head: &str) -> Result<Vec<Change>, Error> {
    let raw = git
        .cmd([
            "diff",
            "--raw",
            "-z",
            "--no-renames",
            "--no-abbrev",
            "--no-ext-diff",
            base,
            head,
        ])
        .run()?;
    let mut out = parse_raw(&raw);
    let numstat = git
        .cmd([
            "diff",
            "--numstat",
            "-z",
            "--no-renames",
            "--no-ext-diff",
            "--no-textconv",
            base,
            head,
        ])
        .run()?;
    for (path, added, deleted) in parse_numstat(&numstat) {
        if let Some(c) = out.iter_mut().find(|c| c.path == path) {
            c.added = added;
            c.deleted = deleted;
        }
    }
    let links: Vec<usize> = (0..out.len())
        .filter(|&i| out[i].new_mode == SYMLINK)
        .collect();
    if !links.is_empty() {
        let mut input = String::new();
        for &i in &links {
            let _ = writeln!(input, "{}", out[i].new_oid);
        }
        let batch = git.cmd(["cat-file", "--batch"]).stdin(input).run()?;
        let mut rest = &batch[..];
        for &i in &links {
            let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                break;
            };
            let header = String::from_utf8_lossy(&rest[..nl]).into_owned();
            rest = &rest[nl + 1..];
            match crate::git::parse_batch_header(&header) {
                Some(Some(size)) if rest.len() > size => {
                    out[i].link_target = Some(String::from_utf8_lossy(&rest[..size]).into_owned());
                    rest = &rest[size + 1..];
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// `git diff --raw -z`: `:old new oldsha newsha S\0path\0`.
pub fn parse_raw(out: &[u8]) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut fields = out.split(|&b| b == 0);
    while let Some(meta) = fields.next() {
        let Some(meta) = meta.strip_prefix(b":") else {
            continue;
        };
        let Some(path) = fields.next() else { break };
        let meta = String::from_utf8_lossy(meta);
        let mut parts = meta.split(' ');
        let mode = |s: Option<&str>| s.and_then(|m| u32::from_str_radix(m, 8).ok()).unwrap_or(0);
        let old_mode = mode(parts.next());
        let new_mode = mode(parts.next());
        let new_oid = parts.nth(1).unwrap_or_default().to_owned();
        changes.push(Change {
            path: String::from_utf8_lossy(path).into_owned(),
            old_mode,
            new_mode,
            new_oid,
            added: 0,
            deleted: 0,
            link_target: None,
        });
    }
    changes
}

/// `git diff --numstat -z` without renames: `added\tdeleted\tpath\0`
/// (`-` for a binary file).
pub fn parse_numstat(out: &[u8]) -> Vec<(String, u64, u64)> {
    out.split(|&b| b == 0)
        .filter_map(|rec| {
            let rec = String::from_utf8_lossy(rec);
            let mut parts = rec.splitn(3, '\t');
            let added = parts.next()?.parse().unwrap_or(0);
            let deleted = parts.next()?.parse().unwrap_or(0);
            Some((parts.next()?.to_owned(), added, deleted))
        })
        .collect()
}

/// The guardrails the branch at `head` breaks over `base`.
pub fn check_branch(
    git: &Git,
    base: &str,
    head: &str,
    g: &Guardrails,
) -> Result<Vec<String>, Error> {
    Ok(check(&changes(git, base, head)?, g))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(path: &str) -> Change {
        Change {
            path: path.into(),
            old_mode: 0o100644,
            new_mode: 0o100644,
            added: 1,
            deleted: 0,
            new_oid: String::new(),
            link_target: None,
        }
    }

    fn rules(yaml: &str) -> Guardrails {
        let c: GuardrailsConfig = yaml_serde::from_str(yaml).unwrap();
        Guardrails::resolve(&c).unwrap()
    }

    #[test]
    fn default_deny_paths() {
        let g = Guardrails::default();
        let ok = [change("src/lib.rs"), change(".github/dependabot.yml")];
        assert!(check(&ok, &g).is_empty());
        for bad in [
            ".github/workflows/ci.yml",
            ".github/workflows/deep/x.yml",
            "tgs/server/backlog.json",
            ".gitmodules",
        ] {
            let p = check(&[change("src/a.rs"), change(bad)], &g);
            assert_eq!(p.len(), 1, "{bad}: {p:?}");
            assert!(
                p[0].starts_with("guardrail deny_paths: the branch changes "),
                "{p:?}"
            );
            assert!(p[0].contains(bad), "{p:?}");
        }
        // Set, the list replaces the default.
        let g = rules("deny_paths: ['secrets/*']");
        assert!(check(&[change(".gitmodules")], &g).is_empty());
        assert_eq!(check(&[change("secrets/a")], &g).len(), 1);
        assert!(
            check(&[change("secrets/a/b")], &g).is_empty(),
            "* stays in a directory"
        );
    }

    #[test]
    fn allow_paths_name_a_few_then_how_many_more() {
        let g = rules("allow_paths: ['src/**', 'tgs/thoughts/**']");
        assert!(check(
            &[change("src/a/b.rs"), change("tgs/thoughts/x/impl.md")],
            &g
        )
        .is_empty());
        let many: Vec<Change> = (0..8).map(|i| change(&format!("docs/{i}.md"))).collect();
        let p = check(&many, &g);
        assert_eq!(p.len(), 1);
        assert!(
            p[0].contains("docs/0.md, docs/1.md, docs/2.md, docs/3.md, docs/4.md and 3 more, outside the allowed paths (src/**, tgs/thoughts/**)"),
            "{p:?}"
        );
    }

    #[test]
    fn sizes() {
        let g = rules("max_changed_files: 2\nmax_diff_lines: 10");
        let mut c = vec![change("a"), change("b")];
        assert!(check(&c, &g).is_empty());
        c.push(change("c"));
        assert_eq!(
            check(&c, &g),
            ["guardrail max_changed_files: the branch changes 3 files (at most 2)"]
        );
        let mut big = change("big.rs");
        big.added = 8;
        big.deleted = 4;
        let p = check(&[big, change("a")], &g);
        assert_eq!(
            p,
            ["guardrail max_diff_lines: the branch changes 13 lines (at most 10); the most in big.rs (12), a (1)"]
        );
    }

    #[test]
    fn symlinks_out_of_the_repository() {
        assert_eq!(
            link_escapes("a/link", "/etc/passwd"),
            Some("an absolute target")
        );
        assert_eq!(
            link_escapes("a/link", "../../x"),
            Some("its target climbs above the root")
        );
        assert_eq!(
            link_escapes("link", ".."),
            Some("its target climbs above the root")
        );
        assert_eq!(link_escapes("a/b/link", "../../x"), None);
        assert_eq!(link_escapes("a/link", "./b/../c"), None);
        assert_eq!(
            link_escapes("a/link", "b/../../../x"),
            Some("its target climbs above the root")
        );
        let g = Guardrails::default();
        let mut l = change("docs/link");
        l.new_mode = SYMLINK;
        l.link_target = Some("../../home".into());
        let p = check(&[l], &g);
        assert_eq!(
            p,
            ["guardrail symlinks: docs/link (its target climbs above the root) points out of the repository"]
        );
    }

    #[test]
    fn new_executables_only_where_allowed() {
        let mut x = change("scripts/run.sh");
        x.new_mode = EXECUTABLE;
        let p = check(std::slice::from_ref(&x), &Guardrails::default());
        assert_eq!(
            p,
            ["guardrail executable_paths: the branch makes scripts/run.sh executable (no path is allowed new executables)"]
        );
        assert!(check(&[x.clone()], &rules("executable_paths: ['scripts/**']")).is_empty());
        // Already executable: not new.
        x.old_mode = EXECUTABLE;
        assert!(check(&[x], &Guardrails::default()).is_empty());
    }

    #[test]
    fn bad_patterns_and_keys_are_errors() {
        let c: GuardrailsConfig = yaml_serde::from_str("deny_paths: ['a/[']").unwrap();
        let e = Guardrails::resolve(&c).unwrap_err().to_string();
        assert!(e.contains("server.guardrails.deny_paths"), "{e}");
        assert!(yaml_serde::from_str::<GuardrailsConfig>("max_files: 3").is_err());
    }

    #[test]
    fn git_outputs_parse() {
        let raw = b":000000 100755 0000 1111 A\0run.sh\0:100644 000000 2222 0000 D\0old name.txt\0:000000 120000 0000 3333 A\0link\0";
        let c = parse_raw(raw);
        assert_eq!(c.len(), 3);
        assert_eq!((c[0].old_mode, c[0].new_mode), (0, EXECUTABLE));
        assert_eq!(c[1].path, "old name.txt");
        assert_eq!(c[2].new_mode, SYMLINK);
        assert_eq!(c[2].new_oid, "3333");
        assert_eq!(
            parse_numstat(b"3\t1\ta.rs\0-\t-\tlogo.png\0"),
            [("a.rs".to_owned(), 3, 1), ("logo.png".to_owned(), 0, 0)]
        );
    }
}
