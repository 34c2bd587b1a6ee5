//! `tgs server dashboard`: write the static status site (index.html and one
//! page per thought) for GitHub Pages or a local browser; see
//! `tgs_core::report::site` for what the pages hold and guarantee.

use std::path::PathBuf;

use serde::Serialize;
use tgs_core::archive::TRANSCRIPTS_DIR;
use tgs_core::backlog::store::Record;
use tgs_core::history::Months;
use tgs_core::report::site::{render_each, SiteData, SiteWriter, WriteReport, EXCERPT_LINES};
use tgs_core::report::{kept_text, list_all_transcripts, tail_lines, tail_lines_of, HistoryIndex};

use super::Ctx;
use crate::error::{CliError, CliResult};
use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The folder to write the site to (created if missing; its `thoughts/`
    /// folder belongs to the site: pages of removed thoughts are deleted).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Leave transcript excerpts and error texts out (for a site that may be
    /// public while the repository is not).
    #[arg(long)]
    pub no_excerpts: bool,
}

#[derive(Serialize)]
struct Written<'a> {
    out: &'a std::path::Path,
    index: PathBuf,
    files: usize,
    written: &'a [String],
    unchanged: usize,
    removed: &'a [String],
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let repo = ctx.repo()?;
    let state = ctx.reader(&repo)?;
    let backlog = state.read_all()?;
    // One pass over the history, indexed per thought as it streams by.
    let mut history = HistoryIndex::new();
    let kinds = [Record::Audit, Record::Metrics];
    state.each_history_line(&kinds, &Months::all(), &mut |l| history.push_line(l))?;
    let project = repo
        .root()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "tgs".into());
    let transcripts = if args.no_excerpts {
        Vec::new()
    } else {
        list_all_transcripts(repo.root(), &state.list(TRANSCRIPTS_DIR)?)
    };
    let data = SiteData::load(
        &project,
        backlog,
        history,
        tgs_core::clock::now(),
        transcripts,
        |t| match (&t.path, &t.kept) {
            (Some(p), _) => tail_lines(p, EXCERPT_LINES),
            (None, Some(oid)) => Ok(tail_lines_of(&kept_text(&repo, oid)?, EXCERPT_LINES)),
            (None, None) => Ok(Vec::new()),
        },
    );
    let data = if args.no_excerpts {
        data.without_excerpts()
    } else {
        data
    };
    if data.history.skipped > 0 {
        output::warn(format!(
            "skipped {} unreadable line(s) of the server records",
            data.history.skipped
        ));
    }
    let (files, report) = write(&args.out, &data).map_err(|e| {
        CliError::failed(format!("cannot write the site to {}", args.out.display()))
            .cause(e.to_string())
    })?;
    // The process ends here: freeing every entry and record one by one
    // would only cost time.
    std::mem::forget(data);
    let index = args.out.join("index.html");
    if ctx.json {
        output::json(&Written {
            out: &args.out,
            index,
            files,
            written: &report.written,
            unchanged: report.unchanged,
            removed: &report.removed,
        });
        return super::ok();
    }
    anstream::println!("{}", index.display());
    output::note(format!(
        "{} page(s); {} file(s) written, {} unchanged, {} stale page(s) removed",
        files,
        report.written.len(),
        report.unchanged,
        report.removed.len()
    ));
    super::ok()
}

/// Render the pages one at a time and write each at once: the site is never
/// whole in memory. Returns how many files the site has.
fn write(out: &std::path::Path, data: &SiteData) -> std::io::Result<(usize, WriteReport)> {
    let mut writer = SiteWriter::new(out)?;
    let mut files = 0;
    render_each(data, |f| {
        files += 1;
        writer.write(&f)
    })?;
    Ok((files, writer.finish()?))
}
