//! `tgs`: the TGSFlow command line. This crate is the thin layer over
//! `tgs-core`: it parses arguments (one module per subcommand under
//! `commands/`), resolves them into calls on the core, prints the results,
//! and maps errors to the documented exit codes.

mod actions;
mod commands;
mod error;
mod mcp;
mod output;
mod progress;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

use crate::commands::Cli;

fn main() -> ExitCode {
    not_dumpable();
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

/// Agents run as the same user as tgs, and a process of the same user may
/// read another's `/proc/<pid>/environ` and memory, where the GitHub token
/// tgs pushes with is. A process that is not dumpable has its `/proc` files
/// owned by root and cannot be ptraced by its peers; the flag is reset by
/// `execve`, so git, the agent and the verify command are unaffected. Set
/// for every command (those that hold no token lose nothing but core dumps).
fn not_dumpable() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_DUMPABLE) takes plain integers and changes only
    // this process's dumpable flag; its failure leaves things as they were.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

/// Logs go to stderr. Without `TGS_LOG`, warnings and errors are plain
/// `warning: ...` / `error: ...` lines like the CLI's own; `TGS_LOG` takes a
/// filter such as `debug` or `tgs::git=debug` and shows levels with timings.
fn init_logging() {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{Layer, Registry};
    let detailed: Option<Targets> = std::env::var("TGS_LOG").ok().and_then(|s| s.parse().ok());
    let filter = detailed
        .clone()
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::WARN));
    let color = anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never;
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(color);
    let layer: Box<dyn Layer<Registry> + Send + Sync> = if detailed.is_some() {
        layer
            .with_timer(tracing_subscriber::fmt::time::uptime())
            .with_target(false)
            .boxed()
    } else {
        layer.event_format(Plain).boxed()
    };
    tracing_subscriber::registry()
        .with(layer)
        .with(filter)
        .init();
}

/// `warning: <message>`, as `output::warn` prints it: no time, no level column.
struct Plain;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for Plain
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        use anstyle::{AnsiColor, Style};
        use tracing::Level;
        use tracing_subscriber::fmt::FormatFields as _;
        let (word, color) = match *event.metadata().level() {
            Level::ERROR => ("error", AnsiColor::Red),
            Level::WARN => ("warning", AnsiColor::Yellow),
            Level::INFO => ("info", AnsiColor::Cyan),
            _ => ("debug", AnsiColor::Blue),
        };
        let style = if writer.has_ansi_escapes() {
            Style::new().fg_color(Some(color.into())).bold()
        } else {
            Style::new()
        };
        write!(writer, "{style}{word}:{style:#} ")?;
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
