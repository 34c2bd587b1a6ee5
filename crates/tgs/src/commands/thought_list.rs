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
    let head = repo.discovered_head();
    let (index, mut titles) = ThoughtIndex::load_titled(&repo, head, &["tgs"], |_, stage| {
        args.stage.as_deref().is_none_or(|s| stage.as_str() == s)
    })?;
    super::warn_skipped(&index);
    let rows: Vec<Row> = index
        .thoughts
        .iter()
        .filter_map(|t| {
            Some(Row {
                dir: &t.dir,
                title: titles.remove(&t.dir)?.title,
                stage: index.stage(t).as_str(),
                legacy: t.legacy,
            })
        })
        .collect();
    if ctx.json {
        output::json(&rows);
    } else if rows.is_empty() {
        output::note(match &args.stage {
            Some(st) if !index.thoughts.is_empty() => format!(
                "no thought is {st} ({} committed at HEAD)",
                index.thoughts.len()
            ),
            _ => "no thoughts committed at HEAD (a thought is listed once its files are committed)"
                .to_owned(),
        });
    } else {
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| vec![r.stage.to_owned(), r.dir.to_owned(), r.title.clone()])
            .collect();
        output::table(&["STAGE", "DIR", "TITLE"], &table);
        output::note(
            "(this clone's view: stages as committed at HEAD; the server reads the remote's base branch)",
        );
    }
    super::ok()
}
