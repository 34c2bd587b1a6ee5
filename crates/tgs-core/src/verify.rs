//! Judging a session's work before anything is handed over.
//!
//! Success needs all of: the agent exited 0 without reporting an error; the
//! branch changes something beyond the base, in the code rather than only
//! under `tgs/`; the thought's implementation summary is written (not the
//! skeleton); nothing under `tgs/server/` changed; the branch keeps to
//! `server.guardrails` (see [`crate::guardrails`]); nothing secret is in
//! what pushing the branch would send (every commit's added lines, paths and
//! message, the implementation summary: see [`crate::secrets`]); and the
//! configured `verify_command`, if any, passes in the worktree.

use std::io::Write;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use crate::git::Git;
use crate::guardrails::{self, Guardrails};
use crate::process::{self, Ending, Signals};
use crate::prompt;
use crate::repo::Repo;
use crate::secrets::{self, Scanner};
use crate::thought::{Stage, ThoughtIndex};
use crate::transcript::{RedactingWriter, Redactor};
use crate::worktree::Worktree;
use crate::Error;

/// Problems with the changed paths, by rule. Pure, for testing.
pub fn check_paths(changed: &[String], thought_dir: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if changed.is_empty() {
        problems.push("the agent changed nothing".to_owned());
        return problems;
    }
    let inside = format!("{thought_dir}/");
    let server: Vec<&String> = changed
        .iter()
        .filter(|p| p.starts_with("tgs/server/"))
        .collect();
    if !server.is_empty() {
        problems.push(format!(
            "the agent changed {} under tgs/server/, which belongs to tgs (e.g. {})",
            server.len(),
            server[0]
        ));
    }
    let elsewhere_in_tgs: Vec<&String> = changed
        .iter()
        .filter(|p| {
            p.starts_with("tgs/") && !p.starts_with(&inside) && !p.starts_with("tgs/server/")
        })
        .collect();
    if !elsewhere_in_tgs.is_empty() {
        problems.push(format!(
            "the agent changed files under tgs/ outside its thought (e.g. {})",
            elsewhere_in_tgs[0]
        ));
    }
    if changed.iter().all(|p| p.starts_with("tgs/")) {
        problems.push(
            "nothing changed outside tgs/: the plan was not implemented in the code".to_owned(),
        );
    }
    problems
}

/// Changes to the approved thought's own files: of the thought's folder,
/// only its implementation summary (`summary`, a path from the top) is the
/// agent's to write. An edited plan or research would be read as approved by
/// the next attempt and by reviewers. Pure, for testing.
pub fn thought_edits(changed: &[String], thought_dir: &str, summary: &str) -> Option<String> {
    let inside = format!("{thought_dir}/");
    let edited: Vec<&String> = changed
        .iter()
        .filter(|p| p.starts_with(&inside) && p.as_str() != summary)
        .collect();
    let first = edited.first()?;
    Some(format!(
        "the agent changed {} of the approved thought's files (e.g. {first}): only its implementation summary ({summary}) is its to write",
        edited.len()
    ))
}

/// Gitlinks the branch adds or changes (mode 160000): a repository the agent
/// made inside its own, committed as a pointer to a commit that exists
/// nowhere; its files are not in the work. From `git diff --raw -z`.
pub fn gitlinks(git: &Git, base: &str, head: &str) -> Result<Option<String>, Error> {
    let out = git
        .cmd(["diff", "--raw", "-z", "--no-renames", base, head])
        .run()?;
    Ok(parse_gitlinks(&out)
        .first()
        .map(|p| format!("{p} is a repository of its own inside the work (a gitlink, mode 160000): its files are not in the work; remove its .git to hand them in")))
}

/// The paths `git diff --raw -z` shows with a new mode of 160000. Pure.
pub fn parse_gitlinks(out: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut fields = out.split(|b| *b == 0);
    while let Some(meta) = fields.next() {
        if meta.is_empty() {
            continue;
        }
        let Some(path) = fields.next() else { break };
        // `:100644 160000 <old> <new> A`
        let new_mode = meta.split(|b| *b == b' ').nth(1);
        if new_mode == Some(b"160000") {
            found.push(String::from_utf8_lossy(path).into_owned());
        }
    }
    found
}

/// Conflict markers the branch adds (`git diff --check` names them): a
/// merge resolved in name only.
pub fn conflict_markers(git: &Git, base: &str, head: &str) -> Result<Vec<String>, Error> {
    let out = git.cmd(["diff", "--check", base, head]).output()?;
    let text = out.stdout_text();
    let places: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("leftover conflict marker"))
        .filter_map(|l| l.rsplit_once(':').map(|(place, _)| place))
        .take(5)
        .collect();
    Ok((!places.is_empty())
        .then(|| format!("conflict markers are left in {}", places.join(", ")))
        .into_iter()
        .collect())
}

/// Parse `git diff --name-only -z`.
pub fn parse_name_list(out: &[u8]) -> Vec<String> {
    out.split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect()
}

/// The verdict on a session's branch.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    pub head: String,
    pub changed: Vec<String>,
    pub problems: Vec<String>,
}

/// What a branch is checked against besides the fixed rules.
pub struct BranchRules<'a> {
    /// `server.guardrails`: what the branch may change.
    pub guardrails: &'a Guardrails,
    /// The secrets that must not leave, and the credential shapes.
    pub secrets: &'a Scanner,
}

/// Check the work at `head` (a commit of `repo`, handed in from the agent's
/// repository: [`crate::worktree::hand_in`]) against the rules, reading only
/// `repo`, then run the verify command in the agent's repository `wt`.
#[allow(clippy::too_many_arguments)]
pub fn verify(
    repo: &Repo,
    wt: &Worktree,
    head: &str,
    thought_dir: &str,
    rules: &BranchRules<'_>,
    verify_command: Option<&str>,
    verify_timeout: Duration,
    env: &[(String, String)],
    log: &std::path::Path,
    redactor: Arc<Redactor>,
    signals: Option<&Signals>,
    sandbox: Option<&crate::sandbox::Wall>,
) -> Result<Verdict, Error> {
    let git = repo.git();
    let head = head.to_owned();
    let changed = parse_name_list(
        &git.cmd(["diff", "--name-only", "-z", &wt.base, &head])
            .run()?,
    );
    let mut problems = check_paths(&changed, thought_dir);
    problems.extend(conflict_markers(git, &wt.base, &head)?);
    problems.extend(guardrails::check_branch(
        git,
        &wt.base,
        &head,
        rules.guardrails,
    )?);
    problems.extend(gitlinks(git, &wt.base, &head)?);
    let index = ThoughtIndex::load_paths(repo, Some(&head), &[thought_dir])?;
    let summary = index.find(thought_dir).map(prompt::impl_file);
    if let Some(p) = summary
        .as_deref()
        .and_then(|s| thought_edits(&changed, thought_dir, s))
    {
        problems.push(p);
    }
    match index.find(thought_dir) {
        Some(t) if index.stage(t) == Stage::Implemented => {}
        Some(_) => problems.push(format!(
            "the implementation summary of {thought_dir} was not written (missing, or still the template)"
        )),
        None => problems.push(format!("{thought_dir} is gone from the branch")),
    }
    if let Some(p) = secrets::problem(&scan_branch(git, &wt.base, &head, summary, rules.secrets)?) {
        problems.push(p);
    }
    if problems.is_empty() {
        if let Some(cmd) = verify_command {
            if let Some(p) = run_verify_command(
                cmd,
                wt,
                verify_timeout,
                env,
                log,
                redactor,
                signals,
                sandbox,
            )? {
                problems.push(p);
            }
        }
    }
    Ok(Verdict {
        head,
        changed,
        problems,
    })
}

/// What pushing `head` would send beyond `base` that holds a secret: every
/// commit's added lines, added paths, message and identities, and the
/// implementation summary at `summary` (the pull request's body).
pub fn scan_branch(
    git: &Git,
    base: &str,
    head: &str,
    summary: Option<String>,
    scanner: &Scanner,
) -> Result<Vec<secrets::Finding>, Error> {
    let mut findings = scanner.scan_history(git, base, head)?;
    if let Some(path) = summary {
        let text = git
            .cmd(["cat-file", "blob", &format!("{head}:{path}")])
            .output()?;
        if text.success {
            for f in scanner.scan_text(&path, &String::from_utf8_lossy(&text.stdout)) {
                // Named once: the commit that added it is the better place.
                if !findings
                    .iter()
                    .any(|g| g.place == f.place && g.rule == f.rule)
                {
                    findings.push(f);
                }
            }
        }
    }
    Ok(findings)
}

/// Run `sh -c <cmd>` in the worktree (the command comes from the repository's
/// own configuration, not from thought text); its output goes to the transcript.
#[allow(clippy::too_many_arguments)]
fn run_verify_command(
    cmd: &str,
    wt: &Worktree,
    timeout: Duration,
    env: &[(String, String)],
    log: &std::path::Path,
    redactor: Arc<Redactor>,
    signals: Option<&Signals>,
    sandbox: Option<&crate::sandbox::Wall>,
) -> Result<Option<String>, Error> {
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)?;
    let log_w = Arc::new(std::sync::Mutex::new(RedactingWriter::new(file, redactor)));
    let _ = writeln!(
        log_w.lock().unwrap_or_else(|p| p.into_inner()),
        "\n# tgs: verify: {cmd}"
    );
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_ref());
    // The verify command runs the agent's code (its tests): it gets the
    // agent's wall, and a proxy of its own.
    let sh_args: Vec<std::ffi::OsString> = vec!["-c".into(), cmd.into()];
    let launch = crate::sandbox::Launch::new(sandbox, "sh".as_ref(), sh_args, &log_w, false)?;
    let mut c = crate::reaper::command(&launch.program, &launch.args, process::DEFAULT_GRACE, path);
    c.current_dir(&wt.path)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    process::own_group(&mut c);
    let mut child = c.spawn()?;
    let copy = |from: Box<dyn std::io::Read + Send>,
                to: Arc<std::sync::Mutex<RedactingWriter<std::fs::File>>>| {
        std::thread::spawn(move || {
            let mut from = from;
            let mut buf = [0u8; 16 * 1024];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 {
                    break;
                }
                crate::failpoint::hit("verify.running");
                let _ = to
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .write_all(&buf[..n]);
            }
        })
    };
    let a = copy(Box::new(child.stdout.take().expect("piped")), log_w.clone());
    let b = copy(Box::new(child.stderr.take().expect("piped")), log_w.clone());
    let ending = process::supervise(&mut child, Some(timeout), process::DEFAULT_GRACE, signals)?;
    process::rejoin(a);
    process::rejoin(b);
    if let Ok(m) = Arc::try_unwrap(log_w) {
        let _ = m.into_inner().unwrap_or_else(|p| p.into_inner()).finish();
    }
    Ok(match ending {
        e if e.success() => None,
        Ending::TimedOut => Some(format!("the verify command `{cmd}` timed out")),
        e => Some(format!("the verify command `{cmd}` {}", e.describe())),
    })
}

/// Whether commit `head` has `base` in its history (or is it).
///
/// Errors: git failing.
pub fn descends(repo: &Repo, base: &str, head: &str) -> Result<bool, Error> {
    Ok(repo
        .git()
        .cmd(["merge-base", "--is-ancestor", base, head])
        .output()?
        .success)
}

/// Check a branch again without running anything of it: the paths it
/// changes from `base` to `head`, and the implementation summary at `head`.
/// For work that arrives from elsewhere (a hand-over artifact), which is
/// trusted no more than the job that made it.
pub fn recheck_branch(
    repo: &Repo,
    base: &str,
    head: &str,
    thought_dir: &str,
    rules: &BranchRules<'_>,
) -> Result<Vec<String>, Error> {
    if !descends(repo, base, head)? {
        return Ok(vec![format!(
            "the work ({head}) does not start from its base ({base})"
        )]);
    }
    let changed = parse_name_list(
        &repo
            .git()
            .cmd(["diff", "--name-only", "-z", base, head])
            .run()?,
    );
    let mut problems = check_paths(&changed, thought_dir);
    problems.extend(conflict_markers(repo.git(), base, head)?);
    problems.extend(guardrails::check_branch(
        repo.git(),
        base,
        head,
        rules.guardrails,
    )?);
    problems.extend(gitlinks(repo.git(), base, head)?);
    let index = ThoughtIndex::load_paths(repo, Some(head), &[thought_dir])?;
    let summary = index.find(thought_dir).map(prompt::impl_file);
    if let Some(p) = summary
        .as_deref()
        .and_then(|s| thought_edits(&changed, thought_dir, s))
    {
        problems.push(p);
    }
    match index.find(thought_dir) {
        Some(t) if index.stage(t) == Stage::Implemented => {}
        Some(_) => problems.push(format!(
            "the implementation summary of {thought_dir} was not written (missing, or still the template)"
        )),
        None => problems.push(format!("{thought_dir} is gone from the branch")),
    }
    let found = scan_branch(repo.git(), base, head, summary, rules.secrets)?;
    problems.extend(secrets::problem(&found));
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_summary_of_the_thought_is_the_agents() {
        let d = "tgs/thoughts/abc1234-x";
        let summary = "tgs/thoughts/abc1234-x/implementation.md";
        let ok = vec![summary.to_owned(), "src/a.rs".to_owned()];
        assert_eq!(thought_edits(&ok, d, summary), None);
        let bad = vec![
            "tgs/thoughts/abc1234-x/plan.md".to_owned(),
            summary.to_owned(),
        ];
        let p = thought_edits(&bad, d, summary).unwrap();
        assert!(p.contains("e.g. tgs/thoughts/abc1234-x/plan.md"), "{p}");
        // A thought whose name starts like this one's is not this one.
        let other = vec!["tgs/thoughts/abc1234-xy/plan.md".to_owned()];
        assert_eq!(thought_edits(&other, d, summary), None);
    }

    #[test]
    fn gitlinks_are_found_in_a_raw_diff() {
        let out =
            b":000000 160000 0000000 5f0b466 A\0sub\0:100644 100644 1111111 2222222 M\0src/a.rs\0";
        assert_eq!(parse_gitlinks(out), ["sub"]);
        assert!(parse_gitlinks(b"").is_empty());
    }

    fn v(paths: &[&str]) -> Vec<String> {
        check_paths(
            &paths.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "tgs/thoughts/abc1234-x",
        )
    }

    #[test]
    fn path_rules() {
        assert!(v(&["src/lib.rs", "tgs/thoughts/abc1234-x/implementation.md"]).is_empty());
        assert_eq!(v(&[]), ["the agent changed nothing"]);
        let p = v(&["src/lib.rs", "tgs/server/backlog.json"]);
        assert!(p[0].contains("tgs/server/"), "{p:?}");
        let p = v(&["src/a.rs", "tgs/thoughts/fffffff-other/plan.md"]);
        assert!(p[0].contains("outside its thought"), "{p:?}");
        let p = v(&["tgs/thoughts/abc1234-x/implementation.md"]);
        assert!(p[0].contains("nothing changed outside tgs/"), "{p:?}");
    }

    #[test]
    fn name_lists() {
        assert_eq!(parse_name_list(b"a b\0src/x.rs\0"), ["a b", "src/x.rs"]);
        assert!(parse_name_list(b"").is_empty());
    }
}
