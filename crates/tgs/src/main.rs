//! `tgs`: the TGSFlow command line. This crate is the thin layer over
//! `tgs-core`: it parses arguments (one module per subcommand under
//! `commands/`), resolves them into calls on the core, prints the results,
//! and maps errors to the documented exit codes.

mod actions;
mod commands;
mod error;
mod output;
mod progress;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

use crate::commands::Cli;

fn main() -> ExitCode {
    init_logging();
    let args = commands::agent_exec::go_style_flags(std::env::args_os().collect::<Vec<OsString>>());
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help and version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                error::code::USAGE
            } else {
                error::code::OK
            });
        }
    };
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => e.report(),
    }
}

/// Logs go to stderr; `TGS_LOG` takes a filter such as `debug` or `tgs::git=debug`.
fn init_logging() {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let filter: Targets = std::env::var("TGS_LOG")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::WARN));
    let color = anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never;
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(color)
                .with_timer(tracing_subscriber::fmt::time::uptime())
                .with_target(false),
        )
        .with(filter)
        .init();
}
