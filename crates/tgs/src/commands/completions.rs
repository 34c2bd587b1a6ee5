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
    // Generate into memory: clap_complete panics on a write error, and a
    // reader such as `head` may close the pipe early.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "tgs", &mut script);
    let mut out = std::io::stdout().lock();
    match std::io::Write::write_all(&mut out, &script).and_then(|_| std::io::Write::flush(&mut out))
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => super::ok(),
    }
}
