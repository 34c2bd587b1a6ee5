//! `tgs server init`: write the GitHub Actions workflows, the `server:`
//! section of tgs/tgs.yml, the implementation prompt and the adapter scripts
//! that server mode needs, never replacing a file the user changed unless
//! `--force`.

use serde_json::json;
use tgs_core::init::{self, Options, Status};

use super::Ctx;
use crate::error::CliResult;
use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Replace generated files that were changed since tgs wrote them
    /// (a `server:` section already in tgs/tgs.yml is always kept).
    #[arg(long)]
    pub force: bool,
    /// Install tgs in the workflows from this git repository (https URL)
    /// instead of crates.io.
    #[arg(long, value_name = "GIT_URL")]
    pub install_from: Option<String>,
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let repo = ctx.repo()?;
    let files = init::init(
        &repo,
        &Options {
            force: args.force,
            install_from: args.install_from.clone(),
        },
    )?;
    if ctx.json {
        output::json(&json!({ "version": init::TGS_VERSION, "files": files }));
        return super::ok();
    }
    let rows: Vec<Vec<String>> = files
        .iter()
        .map(|f| {
            vec![
                f.status.as_str().to_owned(),
                f.path.clone(),
                f.note.clone().unwrap_or_default(),
            ]
        })
        .collect();
    output::table(&["STATUS", "FILE", "NOTE"], &rows);
    if files.iter().any(|f| f.status == Status::Kept) {
        output::note("kept files were left as they are; `tgs server init --force` replaces the ones tgs generates");
    }
    if files.iter().any(|f| {
        matches!(
            f.status,
            Status::Created | Status::Updated | Status::Overwritten
        )
    }) {
        output::note(match &args.install_from {
            Some(url) => format!(
                "next: commit these files and add the ANTHROPIC_API_KEY secret; the workflows install tgs from {url}"
            ),
            None => format!(
                "next: commit these files, add the ANTHROPIC_API_KEY secret, and make tgs {} installable by `cargo install` (or rerun with --install-from GIT_URL; see {})",
                init::TGS_VERSION,
                init::RUN_WORKFLOW
            ),
        });
    }
    super::ok()
}
