//! `tgs server backlog show`: one entry, as stored.

use serde_json::Value;

use super::{find_entry, Ctx};
use crate::error::CliResult;
use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The thought directory.
    #[arg(value_name = "DIR")]
    pub dir: String,
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let repo = ctx.repo()?;
    let store = ctx.reader(&repo)?;
    let backlog = store.read_all()?;
    let dir = find_entry(&repo, &backlog, &args.dir)?;
    // Print the object exactly as the file has it, unknown fields and all.
    let raw: Value =
        serde_json::from_str(&store.read_text()?.unwrap_or_default()).unwrap_or(Value::Null);
    let stored = raw
        .get("thoughts")
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter()
                .find(|e| e.get("dir").and_then(Value::as_str) == Some(&dir))
        })
        .cloned()
        // Not in the live file: an archived entry, as the archive keeps it.
        .or_else(|| backlog.get(&dir).and_then(|e| serde_json::to_value(e).ok()))
        .unwrap_or(Value::Null);
    if ctx.json {
        output::json(&stored);
        return super::ok();
    }
    let wip = backlog.get(&dir).and_then(|e| e.wip.clone());
    let waiting = backlog
        .get(&dir)
        .and_then(|e| e.waiting_question())
        .cloned();
    if let Value::Object(map) = stored {
        let width = map.keys().map(|k| k.len()).max().unwrap_or(0);
        for (k, v) in map {
            let shown = match v {
                Value::String(s) => s,
                Value::Null => "-".into(),
                other => other.to_string(),
            };
            anstream::println!("{k:width$}  {shown}");
        }
    }
    if let Some(q) = waiting {
        let text = format!(
            "\nits agent asked (attempt {}, {}), and it waits for an answer{}:\n{}\n(answer: `tgs server backlog answer {dir} --text ...`{})",
            q.attempt,
            q.asked_at,
            q.posted.as_ref().map(|p| format!(" on {}", p.url)).unwrap_or_default(),
            tgs_core::github::neutralize_mentions(&q.text),
            q.posted.as_ref().map(|_| ", or a `/tgs answer ...` comment there").unwrap_or_default(),
        );
        anstream::println!("{}", output::shown(&text));
    }
    let name = dir
        .rsplit('/')
        .next()
        .and_then(tgs_core::thought::ThoughtName::parse);
    if let (Some(w), Some(name)) = (wip, name) {
        anstream::println!(
            "\nwork in progress kept by attempt {} ({} file(s), {} line(s)) on {}: the next attempt goes on from it (`tgs server backlog retry {dir} --fresh` drops it)",
            w.attempt,
            w.files,
            w.lines,
            tgs_core::runner::wip::wip_ref(&name)
        );
    }
    super::ok()
}
