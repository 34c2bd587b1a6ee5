//! `tgs server init`: write the GitHub Actions workflows, the `server:`
//! section of tgs/tgs.yml, the implementation prompt and the adapter scripts
//! that server mode needs, never replacing a file the user changed unless
//! `--force`.
//!
//! The workflows install tgs pinned to a commit: by default of tgs's own
//! repository, the commit this binary was built from (`TGS_BUILD_COMMIT`,
//! recorded by build.rs; set at run time, it stands in for it, empty for
//! none). Knowing none and given none, init refuses.

use serde_json::json;
use tgs_core::init::{self, InstallSource, Options, Status};

use super::Ctx;
use crate::error::CliResult;
use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Replace generated files that were changed since tgs wrote them
    /// (a `server:` section already in tgs/tgs.yml is always kept).
    #[arg(long)]
    pub force: bool,
    /// Install tgs in the workflows from this git repository (https URL),
    /// at --install-rev. Without it: the source the workflows tgs wrote
    /// before pin, else tgs's own repository at the commit this tgs was
    /// built from (a pin of that repository moves to that commit too);
    /// knowing no commit, init refuses.
    #[arg(long, value_name = "GIT_URL", requires = "install_rev")]
    pub install_from: Option<String>,
    /// The commit of --install-from to install (40 hex digits): the
    /// workflows install exactly that.
    #[arg(long, value_name = "COMMIT", requires = "install_from")]
    pub install_rev: Option<String>,
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let repo = ctx.repo()?;
    let install = match (&args.install_from, &args.install_rev) {
        (Some(url), Some(rev)) => Some(InstallSource::git(url, rev)?),
        _ => None,
    };
    let done = init::init(
        &repo,
        &Options {
            force: args.force,
            install,
            built_from: built_from()?,
        },
    )?;
    let files = done.files;
    let InstallSource { url, rev } = &done.install;
    if ctx.json {
        let install = json!({ "git": url, "rev": rev });
        output::json(&json!({ "version": init::TGS_VERSION, "install": install, "files": files }));
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
        output::note(format!(
            "next: commit these files and add the ANTHROPIC_API_KEY secret; the workflows install tgs from {url} at {rev}"
        ));
    }
    super::ok()
}

/// tgs's own repository at the commit this binary was built from, when it
/// knows it: `TGS_BUILD_COMMIT` at run time when set, else as the build
/// recorded it; empty for none.
fn built_from() -> CliResult<Option<InstallSource>> {
    let commit = std::env::var_os("TGS_BUILD_COMMIT").map_or_else(
        || env!("TGS_BUILD_COMMIT").to_owned(),
        |v| v.to_string_lossy().into_owned(),
    );
    if commit.is_empty() {
        return Ok(None);
    }
    Ok(Some(InstallSource::own(&commit)?))
}
