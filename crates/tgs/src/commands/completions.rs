//! `tgs completions`: shell completion scripts.

use clap::CommandFactory;

use crate::error::CliResult;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to complete for.
    pub shell: clap_complete::Shell,
}

pub fn run(args: Args) -> CliResult {
    let mut cmd = super::Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "tgs", &mut std::io::stdout());
    super::ok()
}
