//! `tgs agent exec`: run an adapter script under the Go command's contract.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use tgs_core::agent::{self, ExecRequest};
use tgs_core::process::{Ending, Signals};

use super::Ctx;
use crate::error::{code, CliError, CliResult};

/// The flags of the Go command; Go's `flag` package accepts `-name` as well as `--name`.
const GO_FLAGS: &[&str] = &[
    "adapter-path",
    "prompt-file",
    "prompt-text",
    "context",
    "context-list",
    "context-glob",
    "return-mode",
    "timeout",
    "out",
    "suggestions-dir",
    "claude-cmd",
    "verbose",
];

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The adapter script to run.
    #[arg(long, default_value = agent::DEFAULT_ADAPTER)]
    pub adapter_path: PathBuf,
    /// A file holding the prompt.
    #[arg(long)]
    pub prompt_file: Option<PathBuf>,
    /// The prompt itself (wins over --prompt-file).
    #[arg(long)]
    pub prompt_text: Option<String>,
    /// A context file (repeatable).
    #[arg(long)]
    pub context: Vec<PathBuf>,
    /// A file listing context files, one per line.
    #[arg(long)]
    pub context_list: Option<PathBuf>,
    /// A glob of context files, expanded in sorted order.
    #[arg(long)]
    pub context_glob: Option<String>,
    /// patch_or_text or text.
    #[arg(long, default_value = "patch_or_text")]
    pub return_mode: String,
    /// Seconds before the adapter and everything it started are stopped (0 = none).
    #[arg(long, default_value_t = 0)]
    pub timeout: u64,
    /// Where the adapter writes its answer.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Where patches are written.
    #[arg(long, default_value = "tgs/suggestions")]
    pub suggestions_dir: PathBuf,
    /// The Claude command the adapter runs.
    #[arg(long, default_value = "claude")]
    pub claude_cmd: String,
    /// Tell the adapter to be verbose, and show the command run.
    #[arg(long)]
    pub verbose: bool,
}

/// Rewrite Go-style flags after `agent exec` (`-timeout 5`, `-verbose=true`)
/// into the forms clap parses. Other arguments are left alone.
pub fn go_style_flags(args: Vec<OsString>) -> Vec<OsString> {
    let pos = args
        .windows(2)
        .position(|w| w[0] == "agent" && w[1] == "exec");
    let Some(pos) = pos else { return args };
    let mut out: Vec<OsString> = args[..pos + 2].to_vec();
    let mut rest = args[pos + 2..].iter();
    while let Some(a) = rest.next() {
        let Some(s) = a.to_str() else {
            out.push(a.clone());
            continue;
        };
        if s == "--" {
            out.push(a.clone());
            out.extend(rest.cloned());
            break;
        }
        let body = s.strip_prefix("--").or_else(|| s.strip_prefix('-'));
        let Some(body) = body else {
            out.push(a.clone());
            continue;
        };
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        if !GO_FLAGS.contains(&name) {
            out.push(a.clone());
            continue;
        }
        match (name, value) {
            ("verbose", Some("false" | "0" | "f" | "F" | "FALSE" | "False")) => {}
            ("verbose", Some(_)) => out.push("--verbose".into()),
            (_, Some(v)) => out.push(format!("--{name}={v}").into()),
            ("verbose", None) => out.push("--verbose".into()),
            // Like Go's flag package, a string flag takes the next argument
            // as its value even when it starts with `-`.
            (_, None) => match rest.next() {
                Some(v) => {
                    let mut joined = OsString::from(format!("--{name}="));
                    joined.push(v);
                    out.push(joined);
                }
                None => out.push(format!("--{name}").into()),
            },
        }
    }
    out
}

pub fn run(_ctx: &Ctx, a: Args) -> CliResult {
    let plan = agent::validate(ExecRequest {
        adapter_path: a.adapter_path,
        prompt_file: a.prompt_file,
        prompt_text: a.prompt_text,
        context: a.context,
        context_list: a.context_list,
        context_glob: a.context_glob,
        return_mode: a.return_mode,
        timeout_secs: a.timeout,
        out: a.out,
        suggestions_dir: a.suggestions_dir,
        claude_cmd: a.claude_cmd,
        verbose: a.verbose,
    })?;
    if plan.req.verbose {
        crate::output::note(format!(
            "running {} with {} context file(s)",
            plan.req.adapter_path.display(),
            plan.context_files.len()
        ));
    }
    let signals = Signals::install()?;
    let outcome = agent::run(&plan, Some(&signals))?;
    let adapter = plan.req.adapter_path.display();
    match outcome.ending {
        e if e.success() => Ok(ExitCode::SUCCESS),
        Ending::Interrupted(sig) => {
            crate::output::note(format!("interrupted: stopped {adapter}"));
            Ok(ExitCode::from((128 + sig) as u8))
        }
        Ending::TimedOut => Err(CliError::failed(format!(
            "adapter {adapter} timed out after {}s; it and its children were stopped",
            plan.req.timeout_secs
        ))),
        e => {
            let mut err = CliError::failed(format!("adapter {adapter} {}", e.describe()));
            err.code = code::FAILED;
            let tail = outcome.stderr_tail.trim();
            Ok(err
                .cause(if tail.is_empty() {
                    "it printed nothing on stderr".to_owned()
                } else {
                    format!("its stderr ended with:\n{tail}")
                })
                .report())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::go_style_flags;

    fn conv(v: &[&str]) -> Vec<String> {
        go_style_flags(v.iter().map(Into::into).collect())
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect()
    }

    #[test]
    fn go_flags_are_rewritten_only_after_agent_exec() {
        assert_eq!(
            conv(&[
                "tgs",
                "agent",
                "exec",
                "-timeout",
                "5",
                "-verbose=false",
                "-context=a",
                "--out",
                "o",
                "-x"
            ]),
            [
                "tgs",
                "agent",
                "exec",
                "--timeout=5",
                "--context=a",
                "--out=o",
                "-x"
            ]
        );
        assert_eq!(
            conv(&["tgs", "-C", "d", "thought", "list"]),
            ["tgs", "-C", "d", "thought", "list"]
        );
        assert_eq!(
            conv(&["tgs", "agent", "exec", "-verbose", "--", "-timeout"]),
            ["tgs", "agent", "exec", "--verbose", "--", "-timeout"]
        );
        assert_eq!(
            conv(&[
                "tgs",
                "agent",
                "exec",
                "-prompt-text",
                "-fix it",
                "--context",
                "-a.md"
            ]),
            [
                "tgs",
                "agent",
                "exec",
                "--prompt-text=-fix it",
                "--context=-a.md"
            ]
        );
    }
}
