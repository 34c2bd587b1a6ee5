//! `tgs agent exec`: the adapter contract of the Go `tgs`, kept exactly so
//! existing `tgs/adapters/*.sh` scripts work unchanged.
//!
//! Input is validated first (a bad request exits 2 before anything runs);
//! the adapter then runs in its own process group with its stdout relayed
//! as it comes and its stderr streamed through with the tail kept for the
//! error report.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::{self, Ending, Signals, Tee};
use crate::Error;

pub mod claude;
pub mod codex;
pub mod conversation;
pub mod driver;

/// The adapter used when none is named.
pub const DEFAULT_ADAPTER: &str = "tgs/adapters/claude-code.sh";

/// How the adapter should answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnMode {
    PatchOrText,
    Text,
}

impl ReturnMode {
    pub fn parse(s: &str) -> Option<ReturnMode> {
        match s {
            "patch_or_text" => Some(ReturnMode::PatchOrText),
            "text" => Some(ReturnMode::Text),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ReturnMode::PatchOrText => "patch_or_text",
            ReturnMode::Text => "text",
        }
    }
}

/// The request as given on the command line, before validation.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    pub adapter_path: PathBuf,
    pub prompt_file: Option<PathBuf>,
    pub prompt_text: Option<String>,
    pub context: Vec<PathBuf>,
    pub context_list: Option<PathBuf>,
    pub context_glob: Option<String>,
    pub return_mode: String,
    pub timeout_secs: u64,
    pub out: Option<PathBuf>,
    pub suggestions_dir: PathBuf,
    pub claude_cmd: String,
    pub verbose: bool,
}

/// Where the prompt comes from, after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    File(PathBuf),
    Text(String),
}

/// A validated request: everything needed to start the adapter.
#[derive(Debug, Clone)]
pub struct ExecPlan {
    pub req: ExecRequest,
    pub prompt: Prompt,
    pub return_mode: ReturnMode,
    pub context_files: Vec<String>,
}

/// Check the request as the Go command did: a non-blank prompt (text wins
/// over file), at least one context file, each existing, de-duplicated in
/// first-seen order.
pub fn validate(req: ExecRequest) -> Result<ExecPlan, Error> {
    let return_mode = ReturnMode::parse(&req.return_mode).ok_or_else(|| {
        Error::invalid(format!(
            "--return-mode must be patch_or_text or text, not {:?}",
            req.return_mode
        ))
    })?;
    let prompt = match (&req.prompt_text, &req.prompt_file) {
        (Some(t), _) if !t.trim().is_empty() => Prompt::Text(t.clone()),
        (Some(_), _) => return Err(Error::invalid("the prompt is blank (--prompt-text)")),
        (None, Some(f)) => {
            let text = std::fs::read_to_string(f).map_err(|e| {
                Error::invalid(format!("cannot read the prompt file {}: {e}", f.display()))
            })?;
            if text.trim().is_empty() {
                return Err(Error::invalid(format!(
                    "the prompt file {} is blank",
                    f.display()
                )));
            }
            Prompt::File(f.clone())
        }
        (None, None) => {
            return Err(Error::invalid(
                "a prompt is required: give --prompt-file or --prompt-text",
            ))
        }
    };

    let mut candidates: Vec<String> = req
        .context
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if let Some(list) = &req.context_list {
        let text = std::fs::read_to_string(list).map_err(|e| {
            Error::invalid(format!(
                "cannot read the context list {}: {e}",
                list.display()
            ))
        })?;
        candidates.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned),
        );
    }
    if let Some(pattern) = &req.context_glob {
        let mut matched: Vec<String> = glob::glob(pattern)
            .map_err(|e| Error::invalid(format!("bad --context-glob {pattern:?}: {e}")))?
            .filter_map(Result::ok)
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        matched.sort();
        candidates.extend(matched);
    }
    let mut context_files: Vec<String> = Vec::new();
    for c in candidates {
        if !context_files.contains(&c) {
            context_files.push(c);
        }
    }
    if context_files.is_empty() {
        return Err(Error::invalid(
            "at least one context file is required: give --context, --context-list or --context-glob",
        ));
    }
    let missing: Vec<&str> = context_files
        .iter()
        .filter(|c| !Path::new(c).exists())
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(Error::invalid(format!(
            "context file(s) not found: {}",
            missing.join(", ")
        )));
    }
    if !req.adapter_path.is_file() {
        return Err(Error::invalid(format!(
            "adapter not found: {}",
            req.adapter_path.display()
        )));
    }
    Ok(ExecPlan {
        req,
        prompt,
        return_mode,
        context_files,
    })
}

impl ExecPlan {
    /// The adapter's arguments, in the order the Go command passed them.
    pub fn adapter_args(&self) -> Vec<String> {
        let r = &self.req;
        let mut a = vec![
            "--return-mode".into(),
            self.return_mode.as_str().into(),
            "--claude-cmd".into(),
            r.claude_cmd.clone(),
        ];
        match &self.prompt {
            Prompt::File(f) => a.extend(["--prompt-file".into(), f.to_string_lossy().into_owned()]),
            Prompt::Text(t) => a.extend(["--prompt-text".into(), t.clone()]),
        }
        if let Some(l) = &r.context_list {
            a.extend(["--context-list".into(), l.to_string_lossy().into_owned()]);
        }
        if let Some(g) = &r.context_glob {
            a.extend(["--context-glob".into(), g.clone()]);
        }
        if let Some(o) = &r.out {
            a.extend(["--out".into(), o.to_string_lossy().into_owned()]);
        }
        a.extend([
            "--suggestions-dir".into(),
            r.suggestions_dir.to_string_lossy().into_owned(),
        ]);
        if r.verbose {
            a.push("--verbose".into());
        }
        a.extend(["--timeout".into(), r.timeout_secs.to_string()]);
        a
    }

    /// The adapter's environment additions.
    pub fn adapter_env(&self) -> Vec<(&'static str, String)> {
        let r = &self.req;
        let mut env = vec![
            ("CLAUDE_CMD", r.claude_cmd.clone()),
            ("RETURN_MODE", self.return_mode.as_str().to_owned()),
            ("TIMEOUT_SEC", r.timeout_secs.to_string()),
            (
                "OUT_PATH",
                r.out
                    .as_ref()
                    .map(|o| o.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
            ("CONTEXT_FILES", self.context_files.join("\n")),
        ];
        if let Prompt::Text(t) = &self.prompt {
            env.push(("PROMPT_TEXT", t.clone()));
        }
        env
    }

    fn command(&self, program: &Path, via_shell: bool) -> Command {
        let mut cmd = if via_shell {
            let mut c = Command::new("bash");
            c.arg(program);
            c
        } else {
            Command::new(program)
        };
        // PROMPT_TEXT is set for inline prompts only: never pass on our caller's.
        cmd.env_remove("PROMPT_TEXT");
        cmd.args(self.adapter_args()).envs(self.adapter_env());
        cmd
    }
}

/// How the adapter run ended.
#[derive(Debug)]
pub struct ExecOutcome {
    pub ending: Ending,
    /// The last few kilobytes of the adapter's stderr.
    pub stderr_tail: String,
}

/// Run the adapter. Its stdout goes to our stdout (or, with `--out`, to our
/// stderr, since the adapter writes its answer to the file); its stderr is
/// streamed to ours.
pub fn run(plan: &ExecPlan, signals: Option<&Signals>) -> Result<ExecOutcome, Error> {
    let program = absolute(&plan.req.adapter_path);
    let spawn = |via_shell: bool| -> io::Result<std::process::Child> {
        let mut cmd = plan.command(&program, via_shell);
        cmd.stdin(Stdio::null()).stderr(Stdio::piped());
        if plan.req.out.is_some() {
            cmd.stdout(io::stderr());
        } else {
            cmd.stdout(Stdio::inherit());
        }
        process::own_group(&mut cmd).spawn()
    };
    let mut child = match spawn(false) {
        // A script without its executable bit: run it the way its authors did.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => spawn(true),
        other => other,
    }
    .map_err(|e| {
        Error::Failed(format!(
            "could not start the adapter {}: {e}",
            program.display()
        ))
    })?;
    let tee = Tee::spawn(
        child.stderr.take().expect("piped stderr"),
        io::stderr(),
        8 * 1024,
    );
    let timeout = (plan.req.timeout_secs > 0).then(|| Duration::from_secs(plan.req.timeout_secs));
    let ending = process::supervise(&mut child, timeout, process::DEFAULT_GRACE, signals)?;
    Ok(ExecOutcome {
        ending,
        stderr_tail: tee.finish(),
    })
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() || p.components().count() > 1 {
        std::path::absolute(p).unwrap_or_else(|_| p.to_owned())
    } else {
        // A bare name would be looked up on PATH; an adapter path is a file here.
        Path::new(".").join(p)
    }
}
