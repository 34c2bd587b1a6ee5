//! `tgs thought list`: every thought and its stage, read from HEAD.

use serde::Serialize;
use tgs_core::thought::ThoughtIndex;

use super::Ctx;
use crate::error::CliResult;
use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only thoughts in this stage (draft, approved, implemented).
    #[arg(long, value_parser = ["draft", "approved", "implemented"])]
    pub stage: Option<String>,
}

#[derive(Serialize)]
struct Row<'a> {
    dir: &'a str,
    title: String,
    stage: &'static str,
    legacy: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let repo = ctx.repo()?;
    let head = repo.head()?;
    let index = ThoughtIndex::load(&repo, head.as_deref())?;
    let chosen: Vec<_> = index
        .thoughts
        .iter()
        .filter(|t| {
            args.stage
                .as_deref()
                .is_none_or(|s| index.stage(t).as_str() == s)
        })
        .collect();
    let titles = index.titles(&repo, &chosen)?;
    let rows: Vec<Row> = chosen
        .iter()
        .zip(titles)
        .map(|(t, title)| Row {
            dir: &t.dir,
            title,
            stage: index.stage(t).as_str(),
            legacy: t.legacy,
        })
        .collect();
    if ctx.json {
        output::json(&rows);
    } else if rows.is_empty() {
        output::note("no thoughts committed at HEAD");
    } else {
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| vec![r.stage.to_owned(), r.dir.to_owned(), r.title.clone()])
            .collect();
        output::table(&["STAGE", "DIR", "TITLE"], &table);
    }
    super::ok()
}
