//! `tgs server init`: the files a repository needs to run server mode on
//! GitHub Actions: two workflows, the agent CLI they install (a package.json
//! and its lockfile), a `server:` section in `tgs/tgs.yml`, the
//! implementation prompt and the `tgs agent exec` adapter scripts.
//!
//! The workflows install tgs from a git repository at one full commit,
//! never from a registry: by default tgs's own repository at the commit this
//! tgs was built from. A tgs that does not know that commit writes no
//! workflow unless given a source.
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

/// The tgs version named in the files init writes.
pub const TGS_VERSION: &str = env!("CARGO_PKG_VERSION");
/// tgs's own repository: where the workflows install tgs from by default.
pub const TGS_REPOSITORY: &str = env!("CARGO_PKG_REPOSITORY");

pub const RUN_WORKFLOW: &str = ".github/workflows/tgs-server-run.yml";
pub const SCAN_WORKFLOW: &str = ".github/workflows/tgs-server-scan.yml";
pub const DASHBOARD_WORKFLOW: &str = ".github/workflows/tgs-server-dashboard.yml";
pub const REVIEW_WORKFLOW: &str = ".github/workflows/tgs-server-review.yml";
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
const REVIEW_TEMPLATE: &str = include_str!("init/tgs-server-review.yml");
const AGENT_CLI_PACKAGE_TEMPLATE: &str = include_str!("init/agent-cli-package.json");
const AGENT_CLI_LOCK_TEMPLATE: &str = include_str!("init/agent-cli-package-lock.json");
const ADAPTER_TEMPLATE: &str = include_str!("init/adapter.sh");
const CLAUDE_RUN: &str = include_str!("init/claude-code.run");
const GEMINI_RUN: &str = include_str!("init/gemini-code.run");

/// The `server:` section, appended to an existing `tgs/tgs.yml` as text
/// (see [`server_section`]).
const SERVER_SECTION: &str = include_str!("init/server-section.yml");
const STATE_BRANCH_MARK: &str = "@STATE_BRANCH_LINE@";

/// The `server:` section init writes. It names the state branch explicitly:
/// a branch of its own, or, for a repository that already keeps its state in
/// `branch`'s tree, that branch (until `tgs server state migrate`).
pub fn server_section(state_in: Option<&str>) -> String {
    let line = match state_in {
        None => format!(
            "  state_branch: {} # where the backlog state lives: a branch of its own, only tgs/server/ in it",
            crate::topology::DEFAULT_STATE_BRANCH
        ),
        Some(branch) => format!(
            "  state_branch: {} # this repository keeps its state in that branch's tree; `tgs server state migrate` moves it to a branch of its own",
            serde_json::to_string(branch).expect("a string serializes")
        ),
    };
    SERVER_SECTION.replace(STATE_BRANCH_MARK, &line)
}
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
    /// Where the workflows install tgs from, as given; `None`: the source
    /// the workflows tgs wrote before pin, else `built_from`.
    pub install: Option<InstallSource>,
    /// tgs's own repository at the commit this tgs was built from (see
    /// [`InstallSource::own`]), when it knows it. A pin of that repository
    /// in the workflows moves to it, so that they install the tgs whose
    /// steps they are. `None`, with no source given or found: init refuses.
    pub built_from: Option<InstallSource>,
}

/// Where the generated workflows install tgs from: a git repository (https)
/// at one full commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallSource {
    pub url: String,
    pub rev: String,
}

/// The marks of the install step in the workflow templates.
const INSTALL_MARK: &str = "@INSTALL@";
const INSTALL_KEY_MARK: &str = "@INSTALL_KEY@";
const INSTALL_NOTE_MARK: &str = "@INSTALL_NOTE@";
/// How earlier tgs versions installed tgs: from crates.io, where the name
/// `tgs` is not the project's. Recognised in their files (as the
/// `@INSTALL@` mark), never written.
const EARLIER_CRATES_IO_INSTALL: &str = "cargo install --locked tgs --version @TGS_VERSION@";

/// A full commit id, as git writes it: 40 lowercase hex digits.
fn is_full_commit(rev: &str) -> bool {
    rev.len() == 40 && rev.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl InstallSource {
    /// A pinned git source: an https URL and a full 40-hex commit, both safe
    /// to write into a workflow's `run:` line.
    pub fn git(url: &str, rev: &str) -> Result<InstallSource, Error> {
        check_install_url(url)?;
        if !is_full_commit(rev) {
            return Err(Error::invalid(format!(
                "--install-rev {rev:?}: give the full 40-character commit id (lowercase hex) to install"
            )));
        }
        Ok(InstallSource {
            url: url.to_owned(),
            rev: rev.to_owned(),
        })
    }

    /// tgs's own repository ([`TGS_REPOSITORY`]) at `commit`, the commit
    /// this tgs was built from (`TGS_BUILD_COMMIT`).
    pub fn own(commit: &str) -> Result<InstallSource, Error> {
        if !is_full_commit(commit) {
            return Err(Error::invalid(format!(
                "TGS_BUILD_COMMIT {commit:?}: give the full 40-character commit id (lowercase hex), or leave it empty for none"
            )));
        }
        InstallSource::git(TGS_REPOSITORY, commit)
    }

    /// The `run:` line of the install step.
    fn command(&self) -> String {
        let InstallSource { url, rev } = self;
        format!("cargo install --locked --git {url} --rev {rev} tgs")
    }

    /// The part of the cache key that names what is installed.
    fn cache_key(&self) -> String {
        format!("git-{}", self.rev)
    }

    /// The comment above the install step.
    fn note(&self) -> String {
        let InstallSource { url, rev } = self;
        format!(
            "From {url} at commit {rev} (`tgs server init --install-from URL --install-rev COMMIT` moves it)."
        )
    }

    /// Where a workflow tgs wrote installs tgs from: `Ok(None)` when it pins
    /// no git source (an earlier tgs's crates.io install), `Err(url)` for an
    /// unpinned git source (written by an earlier tgs) that needs a commit.
    pub fn read_from(workflow: &str) -> Result<Option<InstallSource>, String> {
        let pinned = regex::Regex::new(
            r"cargo install --locked --git ([A-Za-z0-9._~:/@%+-]+) --rev ([0-9a-f]{40}) tgs\n",
        )
        .expect("a valid pattern");
        if let Some(c) = pinned.captures(workflow) {
            return Ok(Some(InstallSource {
                url: c[1].to_owned(),
                rev: c[2].to_owned(),
            }));
        }
        let unpinned =
            regex::Regex::new(r"cargo install --locked --git ([A-Za-z0-9._~:/@%+-]+) tgs\n")
                .expect("a valid pattern");
        match unpinned.captures(workflow) {
            Some(c) => Err(c[1].to_owned()),
            None => Ok(None),
        }
    }
}

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
    /// The template, with every mark that may vary between the files of
    /// different tgs versions and options left in (the version, the install
    /// source): [`Generated::content`] fills them in, and tells ours from
    /// the user's.
    template: String,
    /// Templates earlier tgs versions wrote, also recognised as ours. When a
    /// template changes, its previous text goes here (as an `include_str!`
    /// of a copy), so repositories set up by that version keep updating.
    earlier: Vec<String>,
    executable: bool,
}

impl Generated {
    /// The file, installing tgs from `install`.
    fn content(&self, install: &InstallSource) -> String {
        self.template
            .replace(INSTALL_NOTE_MARK, &install.note())
            .replace(INSTALL_KEY_MARK, &install.cache_key())
            .replace(INSTALL_MARK, &install.command())
            .replace(VERSION_MARK, TGS_VERSION)
    }

    /// Whether `text` is what some tgs version wrote from one of our
    /// templates, with whatever install source.
    fn is_ours(&self, text: &str) -> bool {
        std::iter::once(&self.template)
            .chain(&self.earlier)
            .any(|t| template_matches(t, text))
    }
}

/// `text` equals `template` with a value of the right shape in place of
/// every mark: a version, an install command, a cache key, a comment.
fn template_matches(template: &str, text: &str) -> bool {
    let version = r"[0-9A-Za-z.+-]+";
    let install = format!(
        r"cargo install --locked (?:tgs --version {version}|--git [A-Za-z0-9._~:/@%+-]+(?: --rev [0-9a-f]{{40}})? tgs)"
    );
    let escaped = regex::escape(&template.replace(EARLIER_CRATES_IO_INSTALL, INSTALL_MARK));
    let pattern = escaped
        .replace(INSTALL_NOTE_MARK, r"[^\n]*")
        .replace(INSTALL_KEY_MARK, version)
        .replace(INSTALL_MARK, &install)
        .replace(VERSION_MARK, version);
    regex::Regex::new(&format!(r"\A{pattern}\z")).is_ok_and(|re| re.is_match(text))
}

/// The workflow templates as tgs wrote them before, still recognised as ours.
const EARLIER_RUN: &[&str] = &[
    include_str!("init/earlier/tgs-server-run.v0.1.0-a.yml"),
    include_str!("init/earlier/tgs-server-run.v0.1.0-b.yml"),
    include_str!("init/earlier/tgs-server-run.v0.1.0-c.yml"),
    include_str!("init/earlier/tgs-server-run.v0.1.0-d.yml"),
    include_str!("init/earlier/tgs-server-run.v0.1.0-e.yml"),
];
const EARLIER_SCAN: &[&str] = &[include_str!("init/earlier/tgs-server-scan.v0.1.0-a.yml")];
const EARLIER_REVIEW: &[&str] = &[include_str!("init/earlier/tgs-server-review.v0.1.0-a.yml")];
const EARLIER_DASHBOARD: &[&str] = &[
    include_str!("init/earlier/tgs-server-dashboard.v0.1.0-a.yml"),
    include_str!("init/earlier/tgs-server-dashboard.v0.1.0-b.yml"),
    include_str!("init/earlier/tgs-server-dashboard.v0.1.0-c.yml"),
];

/// The files init writes whole, in the order it reports them.
fn generated(default_branch: &str) -> Vec<Generated> {
    // Earlier templates name the branch the same way.
    let earlier = |ts: &[&str], branch: &str| -> Vec<String> {
        ts.iter().map(|t| t.replace(BRANCH_MARK, branch)).collect()
    };
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
            template: RUN_TEMPLATE.to_owned(),
            earlier: earlier(EARLIER_RUN, &branch),
            executable: false,
        },
        Generated {
            path: SCAN_WORKFLOW,
            template: SCAN_TEMPLATE.replace(BRANCH_MARK, &branch),
            earlier: earlier(EARLIER_SCAN, &branch),
            executable: false,
        },
        Generated {
            path: REVIEW_WORKFLOW,
            template: REVIEW_TEMPLATE.to_owned(),
            earlier: earlier(EARLIER_REVIEW, &branch),
            executable: false,
        },
        Generated {
            path: DASHBOARD_WORKFLOW,
            template: DASHBOARD_TEMPLATE.replace(BRANCH_MARK, &branch),
            earlier: earlier(EARLIER_DASHBOARD, &branch),
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

/// What init did.
#[derive(Debug, Clone)]
pub struct Initialized {
    pub files: Vec<FileReport>,
    /// Where the workflows install tgs from.
    pub install: InstallSource,
}

/// Write what server mode needs into the repository; see the module docs.
pub fn init(repo: &Repo, opts: &Options) -> Result<Initialized, Error> {
    let root = repo.root();
    let branch = default_branch(repo);
    let mut reports = Vec::new();
    // Read first: a file init cannot extend, or an install source it cannot
    // keep, stops it before anything is written.
    let section = server_section(state_in_tree(repo, &branch).as_deref());
    let config = plan_config(root, &section)?;
    let install = install_source(root, &branch, opts)?;
    let files = generated(&branch);
    // Workflows and what they install first, then the configuration, then
    // what the agent reads.
    let split = files
        .iter()
        .position(|g| !g.path.starts_with(".github/"))
        .unwrap_or(files.len());
    let (workflows, rest) = files.split_at(split);
    for g in workflows {
        reports.push(write_generated(root, g, &install, opts.force)?);
    }
    if let Some((body, mode)) = &config.write {
        write_file_mode(&root.join(CONFIG_PATH), body.as_bytes(), *mode)?;
    }
    reports.push(config.report);
    for g in rest {
        reports.push(write_generated(root, g, &install, opts.force)?);
    }
    reports.push(register_mcp(root)?);
    Ok(Initialized {
        files: reports,
        install,
    })
}

/// The project's MCP configuration (read by Claude Code and other MCP
/// clients), where `tgs mcp` is registered.
pub const MCP_JSON: &str = ".mcp.json";

/// Register `tgs mcp` in the project's `.mcp.json`: written when there is
/// none, added to the servers of one that has no `tgs` (everything else in
/// it kept), left alone when it names one already or is not a JSON object.
fn register_mcp(root: &Path) -> Result<FileReport, Error> {
    let path = root.join(MCP_JSON);
    let ours = serde_json::json!({ "command": "tgs", "args": ["mcp"] });
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    let mut config = match &text {
        None => serde_json::json!({ "mcpServers": {} }),
        Some(t) => match serde_json::from_str::<serde_json::Value>(t) {
            Ok(v) if v.is_object() && v.get("mcpServers").is_none_or(|m| m.is_object()) => v,
            _ => {
                let why = Some("not a JSON object with mcpServers: add tgs (`tgs mcp`) by hand");
                return Ok(report(MCP_JSON, Status::Kept, why));
            }
        },
    };
    let servers = config
        .as_object_mut()
        .expect("checked: an object")
        .entry("mcpServers")
        .or_insert_with(|| serde_json::json!({}));
    match servers.get("tgs") {
        Some(v) if *v == ours => return Ok(report(MCP_JSON, Status::Unchanged, None)),
        Some(_) => {
            let why = Some("names a tgs server of its own");
            return Ok(report(MCP_JSON, Status::Kept, why));
        }
        None => {}
    }
    servers
        .as_object_mut()
        .expect("checked: an object")
        .insert("tgs".into(), ours);
    let body = serde_json::to_string_pretty(&config).unwrap_or_default() + "\n";
    write_file(&path, body.as_bytes(), false)?;
    let status = if text.is_some() {
        Status::Updated
    } else {
        Status::Created
    };
    Ok(report(
        MCP_JSON,
        status,
        Some("registers `tgs mcp` for MCP clients"),
    ))
}

/// Where the workflows install tgs from: the source given; else the one
/// the run workflow tgs wrote before pins (so running init again keeps
/// it), moved to `built_from` when it is the same repository; else
/// `built_from`. Nothing of those: an error, before anything is written.
fn install_source(root: &Path, branch: &str, opts: &Options) -> Result<InstallSource, Error> {
    if let Some(given) = &opts.install {
        return Ok(given.clone());
    }
    match (previous_install(root, branch)?, &opts.built_from) {
        (Some(before), Some(own)) if before.url == own.url => Ok(own.clone()),
        (Some(before), _) => Ok(before),
        (None, Some(own)) => Ok(own.clone()),
        (None, None) => Err(Error::Setup {
            message: "this tgs does not know the commit it was built from, so the workflows would have no pinned tgs to install; nothing was written".to_owned(),
            hint: Some(format!(
                "pass --install-from URL --install-rev COMMIT (a tgs repository you control and a full commit in it, e.g. --install-from {TGS_REPOSITORY} --install-rev <40-hex commit>), or use a tgs built from a clean checkout or with TGS_BUILD_COMMIT set"
            )),
        }),
    }
}

/// The pinned source the run workflow tgs wrote earlier installs tgs from;
/// `None` when there is none, it is the user's, or it installs from
/// crates.io (as earlier versions did).
fn previous_install(root: &Path, branch: &str) -> Result<Option<InstallSource>, Error> {
    let Ok(text) = std::fs::read_to_string(root.join(RUN_WORKFLOW)) else {
        return Ok(None);
    };
    if !generated(branch).remove(0).is_ours(&text) {
        return Ok(None);
    }
    InstallSource::read_from(&text).map_err(|url| {
        Error::invalid(format!(
            "{RUN_WORKFLOW} installs tgs from {url} without pinning a commit: rerun with --install-from {url} --install-rev COMMIT"
        ))
    })
}

/// The branch whose tree holds the backlog state, for a repository set up
/// before the state branch of its own (its committed `tgs/server/backlog.json`).
fn state_in_tree(repo: &Repo, branch: &str) -> Option<String> {
    let out = repo
        .git()
        .cmd(["cat-file", "-e", "HEAD:tgs/server/backlog.json"])
        .output()
        .ok()?;
    out.success.then(|| branch.to_owned())
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

fn write_generated(
    root: &Path,
    g: &Generated,
    install: &InstallSource,
    force: bool,
) -> Result<FileReport, Error> {
    let path = root.join(g.path);
    let want = g.content(install);
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
fn plan_config(root: &Path, section: &str) -> Result<ConfigPlan, Error> {
    let path = root.join(CONFIG_PATH);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(ConfigPlan {
                report: report(CONFIG_PATH, Status::Created, None),
                write: Some((
                    format!("{CONFIG_HEADER}\n{section}\n{STEPS_SECTION}"),
                    0o644,
                )),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let before = top_level(&text)?;
    if before.contains_key("server") {
        let report = if text.contains(section) {
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
    let new = append_sections(&text, section, with_steps);
    // Text appended after a flow mapping (`{ai: ...}`) or a document end would
    // not extend the top level: check it did, and that nothing else moved.
    let after = top_level(&new).ok();
    let intact = after.as_ref().is_some_and(|a| {
        a.contains_key("server") && before.iter().all(|(k, v)| a.get(k) == Some(v))
    });
    if !intact {
        return Err(Error::invalid(format!(
            "cannot add the server: section to {CONFIG_PATH} at its end; add it by hand:\n{section}"
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
fn append_sections(text: &str, section: &str, with_steps: bool) -> String {
    let mut new = text.to_owned();
    if !new.is_empty() && !new.ends_with('\n') {
        new.push('\n');
    }
    if !new.trim().is_empty() {
        new.push('\n');
    }
    new.push_str(section);
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
/// repository whose default branch is `default_branch`, installing tgs
/// from `install`).
pub fn contents(default_branch: &str, install: &InstallSource) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = generated(default_branch)
        .iter()
        .map(|g| (g.path, g.content(install)))
        .collect();
    out.push((
        CONFIG_PATH,
        format!("{CONFIG_HEADER}\n{}\n{STEPS_SECTION}", server_section(None)),
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
            INSTALL_MARK,
            INSTALL_KEY_MARK,
            INSTALL_NOTE_MARK,
            STATE_BRANCH_MARK,
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

    const REV: &str = "0123456789abcdef0123456789abcdef01234567";

    fn source() -> InstallSource {
        InstallSource::git("https://github.com/o/tgs", REV).unwrap()
    }

    #[test]
    fn every_file_renders_without_marks() {
        for (path, body) in contents("main", &source()) {
            assert!(
                marks_left(&body).is_empty(),
                "{path}: {:?}",
                marks_left(&body)
            );
            assert!(!body.is_empty(), "{path}");
        }
        let run = run_workflow().content(&source());
        assert!(run.contains(&format!(
            "cargo install --locked --git https://github.com/o/tgs --rev {REV} tgs\n"
        )));
    }

    #[test]
    fn an_install_source_is_read_back_from_the_workflow_it_wrote() {
        let own = InstallSource::own(REV).unwrap();
        assert_eq!(own.url, TGS_REPOSITORY);
        for source in [source(), own] {
            let text = run_workflow().content(&source);
            assert_eq!(InstallSource::read_from(&text), Ok(Some(source.clone())));
            // Any source counts as ours.
            assert!(run_workflow().is_ours(&text), "{source:?}");
        }
        let old = EARLIER_RUN[0]
            .replace(
                EARLIER_CRATES_IO_INSTALL,
                "cargo install --locked --git https://github.com/o/tgs tgs",
            )
            .replace(VERSION_MARK, "0.1.0");
        assert!(
            run_workflow().is_ours(&old),
            "an earlier, unpinned file is ours"
        );
        assert_eq!(
            InstallSource::read_from(&old),
            Err("https://github.com/o/tgs".to_owned())
        );
        assert!(InstallSource::git("https://github.com/o/tgs", "main").is_err());
        assert!(InstallSource::own("main").is_err());
        assert!(InstallSource::own("").is_err());
    }

    /// Files earlier versions wrote, installing tgs from crates.io, are
    /// ours (init replaces them) and pin no source (init does not keep it).
    #[test]
    fn an_earlier_crates_io_install_is_ours_and_no_source() {
        let crates_io = |t: &str| {
            t.replace(
                INSTALL_NOTE_MARK,
                "From crates.io: tgs 0.1.0, the version that wrote this file.",
            )
            .replace(INSTALL_KEY_MARK, "0.1.0")
            .replace(INSTALL_MARK, EARLIER_CRATES_IO_INSTALL)
            .replace(VERSION_MARK, "0.1.0")
        };
        let mut workflows = 0;
        for g in generated("main") {
            for t in std::iter::once(&g.template).chain(&g.earlier) {
                let old = crates_io(t);
                if !old.contains("cargo install --locked tgs --version 0.1.0\n") {
                    continue;
                }
                workflows += 1;
                assert!(g.is_ours(&old), "{}", g.path);
                assert_eq!(InstallSource::read_from(&old), Ok(None), "{}", g.path);
            }
        }
        assert!(workflows >= 4 + EARLIER_RUN.len(), "{workflows}");
    }

    #[test]
    fn init_tells_another_versions_file_from_a_users() {
        let g = run_workflow();
        let now = g.content(&source());
        assert!(g.is_ours(&now));
        let older = now.replace(TGS_VERSION, "0.0.9-rc.1");
        assert_ne!(older, now);
        assert!(g.is_ours(&older));
        assert!(!g.is_ours(&now.replace("timeout-minutes: 360", "timeout-minutes: 60")));
        assert!(!g.is_ours(&format!("{now}# mine\n")));
        // A version only stands where the template has one.
        assert!(!g.is_ours(&now.replace("name: tgs server run\n", "name: 0.1.0\n")));
    }

    #[test]
    fn the_scan_workflow_quotes_the_branch() {
        let scan = &contents("release/2.x", &source())[1].1;
        assert!(scan.contains("    branches: [\"release/2.x\"]"), "{scan}");
        let v = parse_yaml(scan).unwrap();
        assert_eq!(v["on"]["push"]["branches"][0], "release/2.x");
    }

    #[test]
    fn the_server_section_is_the_defaults() {
        let text = format!("{CONFIG_HEADER}\n{}\n{STEPS_SECTION}", server_section(None));
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
        let new = append_sections(old, &server_section(None), false);
        assert!(new.starts_with(old));
        assert_eq!(&new[old.len()..old.len() + 2], "\n\n");
        let top = top_level(&new).unwrap();
        assert!(top.contains_key("server") && top.contains_key("ai"));
        assert_eq!(
            append_sections("", &server_section(None), true),
            format!("{}\n{STEPS_SECTION}", server_section(None))
        );
    }

    #[test]
    fn a_flow_mapping_or_a_list_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join(CONFIG_PATH);
        std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
        for text in ["{ai: {provider: x}}\n", "- a\n", "ai: [\n"] {
            std::fs::write(&cfg, text).unwrap();
            assert!(
                plan_config(dir.path(), &server_section(None)).is_err(),
                "{text}"
            );
            assert_eq!(std::fs::read_to_string(&cfg).unwrap(), text);
        }
    }

    #[test]
    fn the_adapters_share_the_contract_and_differ_in_the_agent() {
        let all = contents("main", &source());
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
