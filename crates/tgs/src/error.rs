//! The one error type at the CLI boundary: a message, its causes, an optional
//! hint, and the documented exit code it maps to.

use crate::output::shown;
use std::fmt::Write as _;
use std::process::ExitCode;

use tgs_core::Error;

/// Exit codes, as documented in `tgs --help` and README.md.
pub mod code {
    /// Success.
    pub const OK: u8 = 0;
    /// The operation failed (git, I/O, an adapter, problems found by `validate`).
    pub const FAILED: u8 = 1;
    /// Bad input or usage: nothing was changed.
    pub const USAGE: u8 = 2;
    /// The backlog file is corrupt, invalid or of a newer version: a human must look.
    pub const STATE: u8 = 3;
    /// Another tgs held the backlog lock for too long: try again.
    pub const BUSY: u8 = 4;
}

#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub causes: Vec<String>,
    pub hint: Option<String>,
    pub code: u8,
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            causes: Vec::new(),
            hint: None,
            code: code::USAGE,
        }
    }

    pub fn failed(message: impl Into<String>) -> Self {
        CliError {
            code: code::FAILED,
            ..CliError::usage(message)
        }
    }

    /// The backlog file is corrupt, invalid or of a newer version.
    pub fn state(message: impl Into<String>) -> Self {
        CliError {
            code: code::STATE,
            ..CliError::usage(message)
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn cause(mut self, cause: impl Into<String>) -> Self {
        self.causes.push(cause.into());
        self
    }

    /// The error as plain text, `error:` / `caused by:` / `hint:` a line
    /// each (what an MCP client's model reads).
    pub fn plain(&self) -> String {
        let mut out = format!("error: {}\n", self.message);
        for c in &self.causes {
            let _ = writeln!(out, "caused by: {}", c.trim_end());
        }
        if let Some(h) = &self.hint {
            let _ = writeln!(out, "hint: {h}");
        }
        out
    }

    /// Print as `error:` / `caused by:` / `hint:` on stderr.
    pub fn report(&self) -> ExitCode {
        use anstyle::{AnsiColor, Style};
        let red = Style::new().fg_color(Some(AnsiColor::Red.into())).bold();
        let cyan = Style::new().fg_color(Some(AnsiColor::Cyan.into())).bold();
        let mut out = String::new();
        let _ = writeln!(out, "{red}error:{red:#} {}", shown(&self.message));
        for c in &self.causes {
            for (i, line) in shown(c.trim_end()).lines().enumerate() {
                if i == 0 {
                    let _ = writeln!(out, "  {red}caused by:{red:#} {line}");
                } else {
                    let _ = writeln!(out, "             {line}");
                }
            }
        }
        if let Some(h) = &self.hint {
            let _ = writeln!(out, "  {cyan}hint:{cyan:#} {}", shown(h));
        }
        anstream::eprint!("{out}");
        ExitCode::from(self.code)
    }
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        let mut causes = Vec::new();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            causes.push(s.to_string());
            src = s.source();
        }
        let (code, hint) = match &e {
            Error::Invalid(_) => (code::USAGE, None),
            Error::Setup { hint, .. } => (code::USAGE, hint.clone()),
            Error::Transition { allowed, .. } => (
                code::USAGE,
                Some(format!("from this status you may: {}", allowed.join(", "))),
            ),
            Error::Corrupt { .. } => (
                code::STATE,
                Some("fix the file by hand (it was not changed), or see `tgs server backlog validate`".into()),
            ),
            Error::NewerVersion { .. } => (
                code::STATE,
                Some("upgrade tgs to change this backlog".into()),
            ),
            Error::LockTimeout { .. } => (
                code::BUSY,
                Some("another process holds it: let it finish and try again, or stop it if it should not be running".into()),
            ),
            Error::LockHeld { .. } => (
                code::FAILED,
                Some("a program other than tgs took tgs's lock (an agent's leftover?): end that process, then run again".into()),
            ),
            Error::Contention(_) => (code::BUSY, Some("other workers kept winning the race; try again".into())),
            Error::Repo(tgs_core::repo::RepoError::NotARepo(_)) => (
                code::USAGE,
                Some("run tgs inside a git repository, or point at one with -C DIR".into()),
            ),
            Error::Internal(_) => (
                code::FAILED,
                Some("this is a bug in tgs: every claim was given back; please report it with the output above".into()),
            ),
            _ => (code::FAILED, None),
        };
        CliError {
            message: e.to_string(),
            causes,
            hint,
            code,
        }
    }
}

macro_rules! via_core_error {
    ($($t:ty),*) => {$(
        impl From<$t> for CliError {
            fn from(e: $t) -> Self {
                CliError::from(Error::from(e))
            }
        }
    )*};
}
via_core_error!(
    std::io::Error,
    tgs_core::git::GitError,
    tgs_core::repo::RepoError
);

pub type CliResult<T = ExitCode> = Result<T, CliError>;
