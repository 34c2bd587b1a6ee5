//! `tgs thought new`: scaffold a thought directory.

use serde_json::json;

use super::Ctx;
use crate::error::CliResult;
use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The thought's title; its slug names the directory.
    #[arg(long)]
    pub title: String,
    /// The idea, written into README.md's "Idea Spec" section.
    #[arg(long)]
    pub spec: Option<String>,
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let repo = ctx.repo()?;
    let made = tgs_core::scaffold::scaffold(&repo, &args.title, args.spec.as_deref())?;
    if ctx.json {
        output::json(&json!({ "dir": made.dir, "files": made.files }));
    } else {
        anstream::println!("{}", made.dir);
        output::note(format!(
            "created {} from {} templates\nnext: write research.md, then plan.md, and commit them once approved;\n      then `tgs server scan` queues the thought and `tgs server run` has an agent implement it",
            made.dir,
            if made.from_repo_templates { "the repository's" } else { "the built-in" }
        ));
    }
    super::ok()
}
