//! `tgs server backlog answer`: answer the question an agent asked.

use std::io::Read;

use super::{find_entry, Ctx, WriteArgs};
use crate::error::{CliError, CliResult};
use crate::output;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["text", "file"])))]
pub struct Args {
    /// The thought directory whose agent asked.
    #[arg(value_name = "DIR")]
    pub dir: String,
    /// The answer.
    #[arg(long, value_name = "TEXT")]
    pub text: Option<String>,
    /// Read the answer from a file (`-`: standard input).
    #[arg(long, value_name = "PATH")]
    pub file: Option<std::path::PathBuf>,
    /// Who answers, for the record (default: the git user of this clone,
    /// else the login name).
    #[arg(long, value_name = "NAME")]
    pub by: Option<String>,
    /// How the answer came, for the record (`tgs mcp` says `mcp`).
    #[arg(long, hide = true, default_value = "cli", value_parser = ["cli", "mcp"])]
    pub via: String,
    #[command(flatten)]
    pub write: WriteArgs,
}

pub fn run(ctx: &Ctx, a: Args) -> CliResult {
    let text = match (&a.text, &a.file) {
        (Some(t), _) => t.clone(),
        (None, Some(path)) => read_answer(path)?,
        (None, None) => unreachable!("clap requires one"),
    };
    let repo = ctx.repo()?;
    let store = ctx.target(&repo, &a.write)?;
    let live = store.read()?;
    let dir = find_entry(&repo, &live, &a.dir)?;
    let Some(q) = live.get(&dir).and_then(|e| e.waiting_question()) else {
        let status = live.get(&dir).map(|e| e.status.as_str()).unwrap_or("gone");
        return Err(
            CliError::usage(format!("{dir} waits on no question (it is {status})"))
                .hint("`tgs server status` lists the questions that wait for an answer"),
        );
    };
    let asked = tgs_core::backlog::first_line(&q.text);
    let by = a.by.clone().unwrap_or_else(|| local_user(&repo));
    let e = tgs_core::question::answer(&store, &a.write.options(), &dir, &text, &by, &a.via)?;
    output::note(format!(
        "answered {dir} ({asked}): it is {} again; the next attempt gets the answer",
        e.status
    ));
    if ctx.json {
        output::json(&e);
    }
    super::ok()
}

/// The answer in `path` (`-`: standard input), at most one byte more than
/// tgs takes, so that a longer one is refused with its limit.
fn read_answer(path: &std::path::Path) -> CliResult<String> {
    let limit = tgs_core::backlog::MAX_ANSWER as u64 + 1;
    let mut bytes = Vec::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().take(limit).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(limit).read_to_end(&mut bytes))
    };
    read.map_err(|e| {
        CliError::usage(format!("cannot read {}", path.display())).cause(e.to_string())
    })?;
    String::from_utf8(bytes)
        .map_err(|_| CliError::usage(format!("{} is not UTF-8 text", path.display())))
}

/// Who answers from this clone: its git `user.name`, else the login name.
fn local_user(repo: &tgs_core::repo::Repo) -> String {
    repo.git()
        .text(["config", "user.name"])
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("USER").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "a local user".into())
}
