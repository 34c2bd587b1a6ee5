//! `tgs debug self-check` (hidden): checks of the binary as it was built,
//! for packagers and for the tests that drive the installed binary.

use crate::error::{CliError, CliResult};

/// Compile every built-in pattern; a failure names each one that failed.
pub fn self_check() -> CliResult {
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
