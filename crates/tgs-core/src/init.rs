//! `tgs server init`: the files a repository needs to run server mode on
//! GitHub Actions: two workflows, the agent CLI they install (a package.json
//! and its lockfile), a `server:` section in `tgs/tgs.yml`, the
//! implementation prompt and the `tgs agent exec` adapter scripts.
//!
//! A generated file is *ours* while its content is what this tgs would write,
//! or what an earlier tgs wrote (the same template with another version in
//! it, or an earlier template listed here): init keeps ours up to date and
//! never replaces a file the user changed unless forced. Comparing with the
//! templates, rather than recording hashes in a manifest, leaves nothing
//! extra in the repository to drift out of date.

use std::io::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::config::{Config, Settings, CONFIG_PATH};
use crate::repo::Repo;
use crate::Error;

/// The tgs version written into the workflows (they install exactly this one).
pub const TGS_VERSION: &str = env!("CARGO_PKG_VERSION");

pub const RUN_WORKFLOW: &str = ".github/workflows/tgs-server-run.yml";
pub const SCAN_WORKFLOW: &str = ".github/workflows/tgs-server-scan.yml";
pub const DASHBOARD_WORKFLOW: &str = ".github/workflows/tgs-server-dashboard.yml";
/// The agent CLI the run workflow installs, pinned by a lockfile (`npm ci`):
/// an unpinned `npm install -g` would run whatever was published last.
pub const AGENT_CLI_PACKAGE: &str = ".github/tgs-agent-cli/package.json";
pub const AGENT_CLI_LOCK: &str = ".github/tgs-agent-cli/package-lock.json";
pub const IMPL_PROMPT: &str = "tgs/agentops/prompts/impl.md";
pub const CLAUDE_ADAPTER: &str = "tgs/adapters/claude-code.sh";
pub const GEMINI_ADAPTER: &str = "tgs/adapters/gemini-code.sh";

/// Where a template says "the version of tgs": any version matches it when
/// telling our files from the user's.
const VERSION_MARK: &str = "@TGS_VERSION@";
const BRANCH_MARK: &str = "@DEFAULT_BRANCH@";

const RUN_TEMPLATE: &str = include_str!("init/tgs-server-run.yml");
const SCAN_TEMPLATE: &str = include_str!("init/tgs-server-scan.yml");
const DASHBOARD_TEMPLATE: &str = include_str!("init/tgs-server-dashboard.yml");
const AGENT_CLI_PACKAGE_TEMPLATE: &str = include_str!("init/agent-cli-package.json");
const AGENT_CLI_LOCK_TEMPLATE: &str = include_str!("init/agent-cli-package-lock.json");
const ADAPTER_TEMPLATE: &str = include_str!("init/adapter.sh");
const CLAUDE_RUN: &str = include_str!("init/claude-code.run");
const GEMINI_RUN: &str = include_str!("init/gemini-code.run");

/// The `server:` section, appended to an existing `tgs/tgs.yml` as text.
pub const SERVER_SECTION: &str = include_str!("init/server-section.yml");
/// Points tgs at the prompt file init writes; added when there is no `steps:`.
const STEPS_SECTION: &str = include_str!("init/steps-section.yml");
const CONFIG_HEADER: &str = "\
# TGSFlow project configuration. tgs reads the sections below and keeps any
# other section (ai, triggers, guardrails, agents, telemetry, context) as it is.
";

/// What init did with one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It did not exist.
    Created,
    /// It already was what init writes.
    Unchanged,
    /// It was ours, from another tgs version (or `tgs.yml` gained a section).
    Updated,
    /// The user changed it, so it was left alone.
    Kept,
    /// The user changed it and `--force` replaced it.
    Overwritten,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Unchanged => "unchanged",
            Status::Updated => "updated",
            Status::Kept => "kept",
            Status::Overwritten => "overwritten",
        }
    }
}

/// One line of init's report.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// Repository-relative path.
    pub path: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Replace files the user changed.
    pub force: bool,
    /// Install tgs in the workflows from this git repository instead of
    /// crates.io (`cargo install --locked --git <url> tgs`).
    pub install_from: Option<String>,
}

/// The line the workflows install tgs with.
const CRATES_IO_INSTALL: &str = "cargo install --locked tgs --version @TGS_VERSION@";

/// A git URL safe to write into a workflow's `run:` line: https, no spaces,
/// quotes, shell or expression syntax.
pub fn check_install_url(url: &str) -> Result<(), Error> {
    let ok = url.starts_with("https://")
        && url.len() < 300
        && url
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~:/@%+".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "--install-from {url:?}: give an https git URL such as https://github.com/owner/tgs"
        )))
    }
}

/// A file init writes whole.
struct Generated {
    path: &'static str,
    /// The template with everything but the version filled in.
    template: String,
    /// Templates earlier tgs versions wrote, also recognised as ours. When a
    /// template changes, its previous text goes here (as an `include_str!`
    /// of a copy), so repositories set up by that version keep updating.
    earlier: Vec<String>,
    executable: bool,
}

impl Generated {
    fn content(&self) -> String {
        self.template.replace(VERSION_MARK, TGS_VERSION)
    }

    /// Whether `text` is what some tgs version wrote from one of our templates.
    fn is_ours(&self, text: &str) -> bool {
        std::iter::once(&self.template)
            .chain(&self.earlier)
            .any(|t| template_matches(t, text))
    }
}

/// `text` equals `template` with some version string in place of every mark.
fn template_matches(template: &str, text: &str) -> bool {
    let parts: Vec<String> = template.split(VERSION_MARK).map(regex::escape).collect();
    let pattern = format!(r"\A{}\z", parts.join(r"[0-9A-Za-z.+-]+"));
    regex::Regex::new(&pattern).is_ok_and(|re| re.is_match(text))
}

/// The files init writes whole, in the order it reports them.
fn generated(default_branch: &str) -> Vec<Generated> {
    generated_with(default_branch, None)
}

fn generated_with(default_branch: &str, install_from: Option<&str>) -> Vec<Generated> {
    let install = match install_from {
        Some(url) => format!("cargo install --locked --git {url} tgs"),
        None => CRATES_IO_INSTALL.to_owned(),
    };
    let workflow = |t: &str| t.replace(CRATES_IO_INSTALL, &install);
    // A JSON string is a valid YAML double-quoted scalar, whatever the name holds.
    let branch = serde_json::to_string(default_branch).expect("a string serializes");
    // The adapters share the contract; they differ in the CLI they run and how.
    let adapter = |name: &str, title: &str, cmd: &str, claude_cmd_flag: &str, run: &str| {
        ADAPTER_TEMPLATE
            .replace("@NAME@", name)
            .replace("@TITLE@", title)
            .replace("@AGENT_CMD@", cmd)
            .replace("@CLAUDE_CMD_FLAG@", claude_cmd_flag)
            .replace("@RUN_AGENT@", run.trim_end())
    };
    vec![
        Generated {
            path: RUN_WORKFLOW,
            template: workflow(RUN_TEMPLATE),
            earlier: Vec::new(),
            executable: false,
        },
        Generated {
            path: SCAN_WORKFLOW,
            template: workflow(SCAN_TEMPLATE).replace(BRANCH_MARK, &branch),
            earlier: Vec::new(),
            executable: false,
        },
        Generated {
            path: DASHBOARD_WORKFLOW,
            template: workflow(DASHBOARD_TEMPLATE).replace(BRANCH_MARK, &branch),
            earlier: Vec::new(),
            executable: false,
        },
        Generated {
            path: AGENT_CLI_PACKAGE,
            template: AGENT_CLI_PACKAGE_TEMPLATE.to_owned(),
            earlier: Vec::new(),
            executable: false,
        },
        Generated {
            path: AGENT_CLI_LOCK,
            template: AGENT_CLI_LOCK_TEMPLATE.to_owned(),
            earlier: Vec::new(),
            executable: false,
        },
        Generated {
            path: IMPL_PROMPT,
            // The built-in prompt itself: the file starts as exactly what tgs
            // uses without one, ready to be edited.
            template: crate::prompt::BUILTIN.to_owned(),
            earlier: Vec::new(),
            executable: false,
        },
        Generated {
            path: CLAUDE_ADAPTER,
            template: adapter(
                "claude-code",
                "Claude Code",
                "${CLAUDE_CMD:-claude}",
                "agent_cmd=$2",
                CLAUDE_RUN,
            ),
            earlier: Vec::new(),
            executable: true,
        },
        Generated {
            path: GEMINI_ADAPTER,
            template: adapter(
                "gemini-code",
                "the Gemini CLI",
                "${GEMINI_CMD:-gemini}",
                // tgs passes its default `claude`: it names Claude's CLI, not this one.
                ":",
                GEMINI_RUN,
            ),
            earlier: Vec::new(),
            executable: true,
        },
    ]
}

/// Write what server mode needs into the repository; see the module docs.
pub fn init(repo: &Repo, opts: &Options) -> Result<Vec<FileReport>, Error> {
    let root = repo.root();
    let branch = default_branch(repo);
    let mut reports = Vec::new();
    // The configuration is read first: a file init cannot extend stops it
    // before anything is written.
    let config = plan_config(root)?;
    if let Some(url) = &opts.install_from {
        check_install_url(url)?;
    }
    let files = generated_with(&branch, opts.install_from.as_deref());
    // Workflows and what they install first, then the configuration, then
    // what the agent reads.
    let split = files
        .iter()
        .position(|g| !g.path.starts_with(".github/"))
        .unwrap_or(files.len());
    let (workflows, rest) = files.split_at(split);
    for g in workflows {
        reports.push(write_generated(root, g, opts.force)?);
    }
    if let Some((body, mode)) = &config.write {
        write_file_mode(&root.join(CONFIG_PATH), body.as_bytes(), *mode)?;
    }
    reports.push(config.report);
    for g in rest {
        reports.push(write_generated(root, g, opts.force)?);
    }
    Ok(reports)
}

/// The branch approved thoughts land on: `server.base_branch`, else the
/// remote's default branch, else the branch checked out, else `main`.
fn default_branch(repo: &Repo) -> String {
    let settings = Config::load(repo.root())
        .ok()
        .and_then(|c| Settings::resolve(&c).ok());
    if let Some(b) = settings.as_ref().and_then(|s| s.base_branch.clone()) {
        return b;
    }
    let remote = settings.map_or_else(|| "origin".to_owned(), |s| s.remote);
    let head = format!("refs/remotes/{remote}/HEAD");
    if let Ok(out) = repo
        .git()
        .cmd(["symbolic-ref", "--quiet", "--short", head.as_str()])
        .output()
    {
        let name = out.stdout_text();
        if let Some(b) = name.trim().strip_prefix(&format!("{remote}/")) {
            if out.success && !b.is_empty() {
                return b.to_owned();
            }
        }
    }
    repo.current_branch().unwrap_or("main").to_owned()
}

fn report(path: &str, status: Status, note: Option<&str>) -> FileReport {
    FileReport {
        path: path.to_owned(),
        status,
        note: note.map(str::to_owned),
    }
}

fn write_generated(root: &Path, g: &Generated, force: bool) -> Result<FileReport, Error> {
    let path = root.join(g.path);
    let want = g.content();
    // symlink_metadata: a link is never followed, so init cannot write outside the repository.
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            write_file(&path, want.as_bytes(), g.executable)?;
            return Ok(report(g.path, Status::Created, None));
        }
        Err(e) => return Err(e.into()),
    };
    if meta.is_dir() {
        return Ok(report(
            g.path,
            Status::Kept,
            Some("a directory is in the way; move it to let init write the file"),
        ));
    }
    if meta.is_file() {
        let have = std::fs::read(&path)?;
        if have == want.as_bytes() {
            if g.executable && !is_executable(&meta) {
                set_mode(&path, 0o755)?;
                return Ok(report(g.path, Status::Updated, Some("made executable")));
            }
            return Ok(report(g.path, Status::Unchanged, None));
        }
        if std::str::from_utf8(&have).is_ok_and(|t| g.is_ours(t)) {
            write_file(&path, want.as_bytes(), g.executable)?;
            return Ok(report(
                g.path,
                Status::Updated,
                Some("written by another tgs version"),
            ));
        }
    }
    if !force {
        let why = if meta.is_file() {
            "changed since tgs wrote it; --force replaces it"
        } else {
            "not a regular file; --force replaces it"
        };
        return Ok(report(g.path, Status::Kept, Some(why)));
    }
    write_file(&path, want.as_bytes(), g.executable)?;
    Ok(report(g.path, Status::Overwritten, None))
}

/// What init does to `tgs/tgs.yml`, worked out before anything is written.
struct ConfigPlan {
    report: FileReport,
    /// The new content and file mode, when it changes.
    write: Option<(String, u32)>,
}

/// Add the `server:` section (and `steps:` when missing) to `tgs/tgs.yml`
/// as text, leaving every byte already there as it is; create the file when
/// there is none. A file with a `server:` section of its own is left alone,
/// forced or not: it is configuration, not a generated file.
fn plan_config(root: &Path) -> Result<ConfigPlan, Error> {
    let path = root.join(CONFIG_PATH);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(ConfigPlan {
                report: report(CONFIG_PATH, Status::Created, None),
                write: Some((
                    format!("{CONFIG_HEADER}\n{SERVER_SECTION}\n{STEPS_SECTION}"),
                    0o644,
                )),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let before = top_level(&text)?;
    if before.contains_key("server") {
        let report = if text.contains(SERVER_SECTION) {
            report(CONFIG_PATH, Status::Unchanged, None)
        } else {
            report(
                CONFIG_PATH,
                Status::Kept,
                Some("has a server: section of its own"),
            )
        };
        return Ok(ConfigPlan {
            report,
            write: None,
        });
    }
    let with_steps = !before.contains_key("steps");
    let new = append_sections(&text, with_steps);
    // Text appended after a flow mapping (`{ai: ...}`) or a document end would
    // not extend the top level: check it did, and that nothing else moved.
    let after = top_level(&new).ok();
    let intact = after.as_ref().is_some_and(|a| {
        a.contains_key("server") && before.iter().all(|(k, v)| a.get(k) == Some(v))
    });
    if !intact {
        return Err(Error::invalid(format!(
            "cannot add the server: section to {CONFIG_PATH} at its end; add it by hand:\n{SERVER_SECTION}"
        )));
    }
    let mode = std::fs::metadata(&path).map_or(0o644, |m| permissions_mode(&m));
    let note = if with_steps {
        "added the server: and steps: sections"
    } else {
        "added the server: section"
    };
    Ok(ConfigPlan {
        report: report(CONFIG_PATH, Status::Updated, Some(note)),
        write: Some((new, mode)),
    })
}

/// `text` followed by a blank line and our sections.
fn append_sections(text: &str, with_steps: bool) -> String {
    let mut new = text.to_owned();
    if !new.is_empty() && !new.ends_with('\n') {
        new.push('\n');
    }
    if !new.trim().is_empty() {
        new.push('\n');
    }
    new.push_str(SERVER_SECTION);
    if with_steps {
        new.push('\n');
        new.push_str(STEPS_SECTION);
    }
    new
}

/// The top-level mapping of a YAML file (empty for a file of comments only).
fn top_level(text: &str) -> Result<yaml_serde::Mapping, Error> {
    match yaml_serde::from_str::<yaml_serde::Value>(text) {
        Ok(yaml_serde::Value::Mapping(m)) => Ok(m),
        Ok(yaml_serde::Value::Null) => Ok(yaml_serde::Mapping::new()),
        Ok(_) => Err(Error::invalid(format!(
            "{CONFIG_PATH}: the top level is not a mapping of sections"
        ))),
        Err(e) => Err(Error::invalid(format!("{CONFIG_PATH}: {e}"))),
    }
}

/// Parse YAML (a workflow, say) into a JSON value, for checks and tests.
pub fn parse_yaml(text: &str) -> Result<serde_json::Value, Error> {
    yaml_serde::from_str(text).map_err(|e| Error::invalid(e.to_string()))
}

/// Every file init would write, by path, as this version writes it (for a
/// repository whose default branch is `default_branch`).
pub fn contents(default_branch: &str) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = generated(default_branch)
        .iter()
        .map(|g| (g.path, g.content()))
        .collect();
    out.push((
        CONFIG_PATH,
        format!("{CONFIG_HEADER}\n{SERVER_SECTION}\n{STEPS_SECTION}"),
    ));
    out
}

fn write_file(path: &Path, body: &[u8], executable: bool) -> Result<(), Error> {
    write_file_mode(path, body, if executable { 0o755 } else { 0o644 })
}

/// Write atomically: a crash leaves the old file or the new one, never half of
/// one; a symlink at `path` is replaced, not followed.
fn write_file_mode(path: &Path, body: &[u8], mode: u32) -> Result<(), Error> {
    let dir = path.parent().expect("a repository path has a parent");
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tgs-init-")
        .tempfile_in(dir)?;
    tmp.write_all(body)?;
    tmp.as_file().sync_all()?;
    set_mode(tmp.path(), mode)?;
    tmp.persist(path).map_err(|e| Error::Io(e.error))?;
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<(), Error> {
    Ok(())
}

#[cfg(unix)]
fn permissions_mode(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn permissions_mode(_meta: &std::fs::Metadata) -> u32 {
    0o644
}

fn is_executable(meta: &std::fs::Metadata) -> bool {
    permissions_mode(meta) & 0o111 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The template marks left in `text` (none, once rendered).
    fn marks_left(text: &str) -> Vec<&'static str> {
        [
            VERSION_MARK,
            BRANCH_MARK,
            "@NAME@",
            "@TITLE@",
            "@RUN_AGENT@",
        ]
        .into_iter()
        .filter(|m| text.contains(m))
        .collect()
    }

    fn run_workflow() -> Generated {
        generated("main").remove(0)
    }

    #[test]
    fn every_file_renders_without_marks() {
        for (path, body) in contents("main") {
            assert!(
                marks_left(&body).is_empty(),
                "{path}: {:?}",
                marks_left(&body)
            );
            assert!(!body.is_empty(), "{path}");
        }
        let run = run_workflow().content();
        assert!(run.contains(&format!(
            "cargo install --locked tgs --version {TGS_VERSION}\n"
        )));
    }

    #[test]
    fn init_tells_another_versions_file_from_a_users() {
        let g = run_workflow();
        let now = g.content();
        assert!(g.is_ours(&now));
        let older = g.template.replace(VERSION_MARK, "0.0.9-rc.1");
        assert!(g.is_ours(&older));
        assert!(!g.is_ours(&now.replace("timeout-minutes: 360", "timeout-minutes: 60")));
        assert!(!g.is_ours(&format!("{now}# mine\n")));
        // A version only stands where the template has one.
        assert!(!g.is_ours(&now.replace("name: tgs server run\n", "name: 0.1.0\n")));
    }

    #[test]
    fn the_scan_workflow_quotes_the_branch() {
        let scan = &contents("release/2.x")[1].1;
        assert!(scan.contains("    branches: [\"release/2.x\"]"), "{scan}");
        let v = parse_yaml(scan).unwrap();
        assert_eq!(v["on"]["push"]["branches"][0], "release/2.x");
    }

    #[test]
    fn the_server_section_is_the_defaults() {
        let text = format!("{CONFIG_HEADER}\n{SERVER_SECTION}\n{STEPS_SECTION}");
        let c = Config::parse(&text).unwrap();
        let s = Settings::resolve(&c).unwrap();
        let d = Settings::resolve(&Config::default()).unwrap();
        assert_eq!(s.agent, d.agent);
        assert_eq!(s.session_timeout, d.session_timeout);
        assert_eq!(s.max_attempts, d.max_attempts);
        assert_eq!(s.retry_delay, d.retry_delay);
        assert_eq!(s.remote, d.remote);
        assert_eq!(s.verify_timeout, d.verify_timeout);
        assert_eq!(s.kill_grace, d.kill_grace);
        assert_eq!(s.verify_command, None);
        assert_eq!(s.impl_prompt.as_deref(), Some(IMPL_PROMPT));
    }

    #[test]
    fn appending_keeps_every_byte_and_adds_the_sections() {
        let old = "# ours\nai:\n  provider: anthropic # keep me\nsteps:\n  plan_prompt: p.md";
        let new = append_sections(old, false);
        assert!(new.starts_with(old));
        assert_eq!(&new[old.len()..old.len() + 2], "\n\n");
        let top = top_level(&new).unwrap();
        assert!(top.contains_key("server") && top.contains_key("ai"));
        assert_eq!(
            append_sections("", true),
            format!("{SERVER_SECTION}\n{STEPS_SECTION}")
        );
    }

    #[test]
    fn a_flow_mapping_or_a_list_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join(CONFIG_PATH);
        std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
        for text in ["{ai: {provider: x}}\n", "- a\n", "ai: [\n"] {
            std::fs::write(&cfg, text).unwrap();
            assert!(plan_config(dir.path()).is_err(), "{text}");
            assert_eq!(std::fs::read_to_string(&cfg).unwrap(), text);
        }
    }

    #[test]
    fn the_adapters_share_the_contract_and_differ_in_the_agent() {
        let all = contents("main");
        let find = |p: &str| all.iter().find(|(q, _)| *q == p).unwrap().1.clone();
        let claude = find(CLAUDE_ADAPTER);
        let gemini = find(GEMINI_ADAPTER);
        for a in [&claude, &gemini] {
            assert!(a.starts_with("#!/usr/bin/env bash\n"));
            assert!(a.contains("CONTEXT_FILES") && a.contains("--suggestions-dir"));
        }
        assert!(claude.contains("-p --output-format text"));
        assert!(claude.contains("--add-dir"));
        assert!(gemini.contains("GEMINI_CMD"));
        assert_eq!(find(IMPL_PROMPT), crate::prompt::BUILTIN);
    }
}
