//! `tgs debug ...` (hidden): `self-check`, checks of the binary as it was
//! built, for packagers and for the tests that drive the installed binary;
//! `git-credential`, the helper tgs's own git runs to get the forge token
//! from tgs's broker.

use super::DebugCommand;
use crate::error::{CliError, CliResult};

/// Run a debug command: first of all, before the environment is read for
/// anything else (the helper runs in git's environment).
pub fn run(command: DebugCommand) -> CliResult {
    match command {
        DebugCommand::SelfCheck => self_check(),
        DebugCommand::GitCredential { socket, operation } => {
            // git treats a helper's failure as "no credentials": no output.
            tgs_core::credential::helper(&socket, &operation).map_err(|e| {
                CliError::failed("the credential broker did not answer").cause(e.to_string())
            })?;
            super::ok()
        }
        DebugCommand::Reap { grace_ms, program } => reap(grace_ms, &program),
        DebugCommand::SandboxInit {
            socket,
            port,
            max_processes,
            max_file_size,
            max_memory,
            program,
        } => {
            let limits = tgs_core::sandbox::Limits {
                processes: max_processes,
                file_size: max_file_size,
                memory: max_memory,
                // Applied outside: the tmpfs sizes by bubblewrap, the disk by tgs.
                ..Default::default()
            };
            let code = match tgs_core::sandbox::init::run(
                &socket,
                port,
                &limits,
                &program[0],
                &program[1..],
            ) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!(
                        "tgs sandbox: cannot start {}: {e}",
                        program[0].to_string_lossy()
                    );
                    127
                }
            };
            Ok(std::process::ExitCode::from(code.clamp(0, 255) as u8))
        }
    }
}

/// Run the reaper; exit as the program did (127 when it cannot start, as
/// a shell does).
fn reap(grace_ms: u64, program: &[std::ffi::OsString]) -> CliResult {
    let grace = std::time::Duration::from_millis(grace_ms);
    let code = match tgs_core::reaper::reap(&program[0], &program[1..], grace) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tgs: cannot start {}: {e}", program[0].to_string_lossy());
            127
        }
    };
    Ok(std::process::ExitCode::from(code.clamp(0, 255) as u8))
}

/// Compile every built-in pattern; a failure names each one that failed.
fn self_check() -> CliResult {
    match tgs_core::selfcheck::patterns() {
        Ok(n) => {
            println!("ok: {n} checks of the built-in patterns passed");
            super::ok()
        }
        Err(failed) => Err(failed.into_iter().fold(
            CliError::failed("this tgs binary cannot compile its own patterns").hint(
                "build tgs with the regex features Cargo.toml declares (`cargo install --locked`)",
            ),
            CliError::cause,
        )),
    }
}
