//! The text tgs puts on GitHub: PR titles and bodies, failure-alert issues
//! and their comments. Pure functions, so they are tested without a server.
//!
//! Thought titles, agent summaries, errors and logs are untrusted: an agent
//! (or whoever wrote the thought) could try to close our markup, hide text in
//! HTML comments, forge sections or ping people. So free text goes in fenced
//! blocks whose fence is longer than any backtick run inside, one-line text is
//! stripped of control characters and markdown-escaped, `@mentions` are
//! broken with a zero-width joiner, and every body stays under GitHub's size
//! limit.

use super::text::{clean_block, is_invisible, neutralize_mentions};

/// A PR title's length bound, in characters (GitHub shows about this much).
pub const MAX_TITLE_CHARS: usize = 72;
/// GitHub's limit for a PR/issue body or comment (65,536), with a margin.
/// Counted in UTF-16 units, which is the stricter way to count.
pub const MAX_BODY_LEN: usize = 65_000;
/// Backtick runs longer than this are shortened before fencing, so a hostile
/// text cannot force a fence as long as itself.
const MAX_BACKTICK_RUN: usize = 32;
/// What the log tail in an alert is bounded to.
const MAX_LOG_TAIL_LEN: usize = 40_000;
/// What the last error in an alert is bounded to.
const MAX_ERROR_LEN: usize = 8_000;

/// The hidden marker that ties a PR or an alert issue to its thought. The
/// directory is percent-encoded outside `[A-Za-z0-9._/-]`, so it can never
/// contain `-->` or a newline.
pub fn thought_marker(thought_dir: &str) -> String {
    format!("<!-- tgs-thought: {} -->", encode_path(thought_dir))
}

/// `prefix` (a conventional-commit type such as `feat:`) and the thought's
/// title on one line, sanitized and bounded to [`MAX_TITLE_CHARS`].
pub fn pr_title(prefix: &str, title: &str) -> String {
    let prefix = one_line(prefix, 24);
    let budget = MAX_TITLE_CHARS
        .saturating_sub(prefix.chars().count() + 1)
        .max(16);
    let mut title = one_line(title, budget);
    if title.is_empty() {
        title = "untitled thought".into();
    }
    let joined = if prefix.is_empty() {
        title
    } else {
        format!("{prefix} {title}")
    };
    neutralize_mentions(&joined)
}

/// What a PR body says about one thought's session.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PrBodyInput {
    /// The thought's directory, e.g. `tgs/thoughts/add-login`.
    pub thought_dir: String,
    pub title: String,
    /// What the agent says it did (markdown from the agent; shown verbatim).
    pub implementation_summary: Option<String>,
    /// Repository-relative paths; an empty one is not linked.
    pub research_path: String,
    pub plan_path: String,
    /// `https://github.com/o/r` ([`super::GitHub::repo_web_url`]); without it
    /// links are relative to the PR page.
    pub repo_web_url: Option<String>,
    pub base_branch: String,
    pub agent: String,
    pub attempts: u32,
    pub duration_secs: u64,
    pub turns: Option<u32>,
    pub cost_usd: Option<f64>,
}

/// The PR body: a hidden thought marker, the summary (fenced), links to the
/// research and plan on the base branch, and the session's figures.
pub fn pr_body(s: &PrBodyInput) -> String {
    let mut head = String::new();
    head.push_str(&thought_marker(&s.thought_dir));
    head.push_str("\n## ");
    head.push_str(&inline(&non_empty(
        &one_line(&s.title, 200),
        "Untitled thought",
    )));
    head.push_str("\n\nImplemented by tgs from the thought ");
    head.push_str(&code_span(&one_line(&s.thought_dir, 300)));
    head.push_str(".\n\n### Implementation summary\n\n");

    let mut tail = String::from("\n");
    let links: Vec<(&str, &str)> = [("Research", &s.research_path), ("Plan", &s.plan_path)]
        .into_iter()
        .filter(|(_, p)| !p.trim().is_empty())
        .map(|(k, p)| (k, p.as_str()))
        .collect();
    if !links.is_empty() {
        tail.push_str("### Thought\n\n");
        for (label, path) in links {
            let url = blob_url(s.repo_web_url.as_deref(), &s.base_branch, path);
            tail.push_str(&format!(
                "- {label}: [{}]({url})\n",
                code_span(&one_line(path, 300))
            ));
        }
        tail.push('\n');
    }
    tail.push_str("### Session\n\n| Figure | Value |\n| --- | --- |\n");
    let mut row = |k: &str, v: String| tail.push_str(&format!("| {k} | {v} |\n"));
    row(
        "Agent",
        inline(&non_empty(&one_line(&s.agent, 60), "unknown")),
    );
    row("Attempts", s.attempts.to_string());
    row("Duration", duration(s.duration_secs));
    if let Some(t) = s.turns {
        row("Turns", t.to_string());
    }
    if let Some(c) = s.cost_usd.filter(|c| c.is_finite() && *c >= 0.0) {
        row("Cost", cost(c));
    }
    tail.push_str(&format!(
        "\n<sub>Opened by tgs {}; retries of this thought update this pull request.</sub>\n",
        env!("CARGO_PKG_VERSION")
    ));

    let summary = s
        .implementation_summary
        .as_deref()
        .filter(|t| !t.trim().is_empty());
    let middle = match summary {
        None => "_No implementation summary was recorded._\n".to_owned(),
        Some(text) => {
            let room = MAX_BODY_LEN.saturating_sub(len16(&head) + len16(&tail));
            // Rendered when it fits; a summary too long for the body is
            // shown as text, cut, with a note.
            let html = super::markdown::summary_html(text);
            if len16(&html) <= room {
                html
            } else {
                fenced_head(text, room)
            }
        }
    };
    bound(format!("{head}{middle}{tail}"))
}

/// A failed thought, as reported in its alert issue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailureAlert {
    pub thought_dir: String,
    pub title: String,
    pub attempts: u32,
    pub last_error: String,
    /// The end of the session log, already redacted by the caller.
    pub log_tail: String,
}

/// The alert issue's title: `tgs: <thought title> failed`.
/// The title of the issue about an agent that cannot start sessions.
pub fn agent_alert_title(agent: &str) -> String {
    neutralize_mentions(&format!(
        "tgs: the agent {} cannot start sessions",
        one_line(agent, 80)
    ))
}

/// What the issue about an internal error says: the first one seen, that
/// the claims were given back, and what to do.
pub fn internal_alert_text(detail: &str) -> String {
    bound(format!(
        "A bug in tgs (a panic) ended a session. Its claim was given back without counting an attempt, and the run went on; later sessions that meet it are not reported again while this issue is open.\n\n### The first one\n\n{d}\n\nPlease report it to the tgs project with the run's output, then close this issue.\n",
        d = fenced(&clean_block(detail), "text"),
    ))
}

/// What the issue about an agent says: why, and how to resume it.
pub fn agent_alert_text(agent: &str, detail: &str) -> String {
    let agent = one_line(agent, 80);
    bound(format!(
        "Sessions with {a} cannot start until a human acts, so no worker starts sessions with it: its model provider refused for good (credit, credentials, permissions), or its CLI rejected its command line or environment (the agent's settings in tgs/tgs.yml, or the machine's). No thought's attempt was counted.\n\n### What was said\n\n{d}\n\nWhen it is fixed: `tgs server resume {agent}` (this issue is then closed).\n",
        a = code_span(&agent),
        d = fenced(&clean_block(detail), "text"),
    ))
}

pub fn alert_title(title: &str) -> String {
    let t = non_empty(&one_line(title, MAX_TITLE_CHARS), "untitled thought");
    neutralize_mentions(&format!("tgs: {t} failed"))
}

/// The alert issue's body: marker, what failed, the last error, the log tail.
pub fn alert_body(a: &FailureAlert) -> String {
    let head = format!(
        "{marker}\ntgs could not land the thought {dir} ({attempts}).\n\n\
         This issue gets a comment on each further failure and is closed when \
         the thought succeeds.\n\n",
        marker = thought_marker(&a.thought_dir),
        dir = code_span(&one_line(&a.thought_dir, 300)),
        attempts = attempts(a.attempts),
    );
    bound(format!("{head}{}", failure_details(a, len16(&head))))
}

/// A comment for a further failure on the open alert issue.
pub fn alert_comment(a: &FailureAlert) -> String {
    let head = format!(
        "Failed again ({}) for {}.\n\n",
        attempts(a.attempts),
        code_span(&one_line(&a.thought_dir, 300))
    );
    bound(format!("{head}{}", failure_details(a, len16(&head))))
}

/// The comment that closes an alert once the thought succeeded.
pub fn resolve_comment(thought_dir: &str, pr_url: Option<&str>) -> String {
    let mut s = format!(
        "Resolved: the thought {} succeeded",
        code_span(&one_line(thought_dir, 300))
    );
    match pr_url.map(|u| one_line(u, 500)) {
        Some(u) if is_http_url(&u) => s.push_str(&format!(" in {u}.\n")),
        _ => s.push_str(".\n"),
    }
    s
}

/// The title of an issue opened for an agent's question.
pub fn question_title(title: &str) -> String {
    let t = non_empty(&one_line(title, MAX_TITLE_CHARS), "untitled thought");
    neutralize_mentions(&format!("tgs: {t} needs input"))
}

/// An agent's question for humans, with how to answer it. The question is
/// the agent's text: fenced, never rendered, bounded.
pub fn question_text(q: &crate::forge::QuestionPost) -> String {
    let dir = code_span(&one_line(&q.thought_dir, 300));
    let answer = code_span(&format!("{} answer", one_line(&q.trigger, 40)));
    let cli = code_span(&format!(
        "tgs server backlog answer {} --text \"...\"",
        one_line(&q.thought_dir, 300)
    ));
    bound(format!(
        "{REPLY_MARKER}\nThe agent working on {dir} has a question (question {n} of at most {max}) and has stopped until it is answered; its work so far is kept.\n\n{question}\n\
         To answer, comment with {answer} followed by your answer (only people with write access are heard; the first answer is taken), or run {cli}. The next session starts from the kept work with the question and your answer.\n",
        n = q.number,
        max = q.max,
        question = fenced(&bound_head(&clean_block(&q.question), MAX_ERROR_LEN * 2), "text"),
    ))
}

/// The comment that hands a pull request back to humans.
pub fn needs_human_comment(why: &str) -> String {
    format!(
        "{REPLY_MARKER}\ntgs stops revising this pull request; it needs a human now.\n\n{}",
        fenced(&bound_head(&clean_block(why), MAX_ERROR_LEN), "text")
    )
}

/// The first line of every comment tgs leaves on a pull request: the review
/// loop never reads one as a request, whatever the trigger word.
pub const REPLY_MARKER: &str = "<!-- tgs:reply -->";

/// What a revision changed, for the reply on its pull request.
#[derive(Debug, Clone, Default)]
pub struct RevisionReply {
    /// This revision's number and the most a pull request gets.
    pub number: usize,
    pub max: u32,
    /// What it answers: "the review by @alice that requested changes".
    pub answers: String,
    /// Where that review or comment is (linked when an http(s) URL).
    pub url: String,
    pub from: String,
    pub to: String,
    /// The new commits, oldest first: short id and subject.
    pub commits: Vec<(String, String)>,
    pub files: Vec<String>,
}

/// The reply a revision leaves on its pull request. Commit subjects and
/// paths come from the agent: shown as code, mentions broken, bounded.
pub fn revision_reply(r: &RevisionReply) -> String {
    let url = one_line(&r.url, 500);
    let answers = one_line(&r.answers, 200);
    let what = if is_http_url(&url) {
        format!("[{answers}]({url})")
    } else {
        answers
    };
    let short = |c: &str| code_span(&c.chars().take(12).collect::<String>());
    let mut s = format!(
        "{REPLY_MARKER}\ntgs revised this pull request (revision {} of at most {}), answering {what}: {}..{}.\n",
        r.number,
        r.max,
        short(&r.from),
        short(&r.to)
    );
    if !r.commits.is_empty() {
        s.push_str("\nCommits:\n");
        for (id, subject) in r.commits.iter().take(50) {
            s.push_str(&format!(
                "- {} {}\n",
                short(id),
                code_span(&neutralize_mentions(&one_line(subject, 200)))
            ));
        }
    }
    if !r.files.is_empty() {
        let shown: Vec<String> = r
            .files
            .iter()
            .take(100)
            .map(|f| code_span(&one_line(f, 300)))
            .collect();
        let more = r.files.len().saturating_sub(shown.len());
        s.push_str(&format!("\nFiles changed: {}", shown.join(", ")));
        if more > 0 {
            s.push_str(&format!(" and {more} more"));
        }
        s.push('\n');
    }
    s
}

fn failure_details(a: &FailureAlert, used: usize) -> String {
    let err = bound_head(&clean_block(&a.last_error), MAX_ERROR_LEN);
    let mut out = String::from("### Last error\n\n");
    out.push_str(&fenced(
        non_empty(&err, "(no error message)").as_str(),
        "text",
    ));
    let log = clean_block(&a.log_tail);
    if !log.trim().is_empty() {
        out.push_str("\n### Log tail (redacted)\n\n");
        let room = MAX_BODY_LEN
            .saturating_sub(used + len16(&out) + 200)
            .min(MAX_LOG_TAIL_LEN);
        out.push_str(&fenced(&bound_tail(&log, room), "text"));
    }
    out
}

/// `text` in a fenced block, cut (keeping its start) so the whole fits `room`.
fn fenced_head(text: &str, room: usize) -> String {
    let clean = clean_block(text);
    // The fence, the info string, newlines and the cut note.
    let overhead = 2 * (MAX_BACKTICK_RUN + 1) + 120;
    fenced(&bound_head(&clean, room.saturating_sub(overhead)), "text")
}

/// A fenced code block: nothing inside can end it early, since its fence is
/// longer than every backtick run in the text.
pub fn fenced(text: &str, info: &str) -> String {
    let text = cap_backtick_runs(text);
    let longest = longest_run(&text, '`');
    let fence = "`".repeat((longest + 1).max(3));
    let nl = if text.ends_with('\n') { "" } else { "\n" };
    format!("{fence}{info}\n{text}{nl}{fence}\n")
}

/// Inline code for a one-line text, delimited by more backticks than it has.
pub fn code_span(text: &str) -> String {
    let text = cap_backtick_runs(&text.replace(['\n', '\r'], " "));
    let ticks = "`".repeat(longest_run(&text, '`') + 1);
    // A space on each side keeps a leading/trailing backtick from joining the
    // delimiter (CommonMark strips one such space).
    let pad = if text.starts_with('`') || text.ends_with('`') || text.starts_with(' ') {
        " "
    } else {
        ""
    };
    format!("{ticks}{pad}{text}{pad}{ticks}")
}

/// One line of plain text: control and invisible formatting characters
/// (bidi overrides, zero-width ones) removed, whitespace collapsed, bounded to
/// `max` characters with an ellipsis.
pub fn one_line(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut space = false;
    for c in text.chars() {
        if c.is_whitespace() || c == '\u{2028}' || c == '\u{2029}' {
            space = !out.is_empty();
        } else if c.is_control() || is_invisible(c) {
            continue;
        } else {
            if space {
                out.push(' ');
                space = false;
            }
            out.push(c);
        }
    }
    truncate_chars(&out, max)
}

/// Escape one line for markdown: ASCII punctuation that markdown or HTML
/// reads (`<`, `&`, `[`, `*`, backticks, ...) gets a backslash, and mentions
/// are broken. Used for titles and table cells.
pub fn inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if "\\`*_{}[]()<>#!|~&+-.=:".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    neutralize_mentions(&out)
}

/// A link to `path` on `branch`: a blob URL under the repository's web
/// address, or (without one) relative to the PR page (`/o/r/pull/N`).
fn blob_url(web: Option<&str>, branch: &str, path: &str) -> String {
    let rel = format!("blob/{}/{}", encode_path(branch), encode_path(path));
    match web.filter(|w| is_http_url(w)) {
        Some(w) => format!("{}/{rel}", encode_url(w.trim_end_matches('/'))),
        None => format!("../{rel}"),
    }
}

/// Percent-encode a repository path, dropping empty, `.` and `..` segments.
pub(crate) fn encode_path(path: &str) -> String {
    path.split(['/', '\\'])
        .filter(|seg| !seg.is_empty() && *seg != "." && *seg != "..")
        .map(|seg| {
            let mut out = String::new();
            for b in seg.bytes() {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                    out.push(b as char);
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            out
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Keep a configured URL's characters that are safe inside `(...)`.
fn encode_url(url: &str) -> String {
    url.chars()
        .filter(|c| c.is_ascii_graphic() && !matches!(c, '(' | ')' | '<' | '>' | '"' | '\''))
        .collect()
}

fn is_http_url(u: &str) -> bool {
    (u.starts_with("https://") || u.starts_with("http://")) && !u.contains(char::is_whitespace)
}

fn cap_backtick_runs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = 0;
    for c in text.chars() {
        if c == '`' {
            run += 1;
            if run > MAX_BACKTICK_RUN {
                continue;
            }
        } else {
            run = 0;
        }
        out.push(c);
    }
    out
}

fn longest_run(text: &str, ch: char) -> usize {
    let (mut best, mut run) = (0, 0);
    for c in text.chars() {
        run = if c == ch { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let keep: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{}…", keep.trim_end())
}

/// Length in UTF-16 units, which is how the strictest reading of GitHub's
/// limit counts (an emoji is two).
fn len16(text: &str) -> usize {
    text.encode_utf16().count()
}

/// The start of `text` within `max` UTF-16 units, with a note when cut.
fn bound_head(text: &str, max: usize) -> String {
    if len16(text) <= max {
        return text.to_owned();
    }
    let note_room = 80;
    let mut used = 0;
    let mut end = 0;
    for (i, c) in text.char_indices() {
        used += c.len_utf16();
        if used > max.saturating_sub(note_room) {
            break;
        }
        end = i + c.len_utf8();
    }
    let dropped = text[end..].chars().count();
    format!("{}\n[… {dropped} more characters cut]\n", &text[..end])
}

/// The end of `text` within `max` UTF-16 units, with a note when cut.
fn bound_tail(text: &str, max: usize) -> String {
    if len16(text) <= max {
        return text.to_owned();
    }
    let note_room = 80;
    let mut used = 0;
    let mut start = text.len();
    for (i, c) in text.char_indices().rev() {
        used += c.len_utf16();
        if used > max.saturating_sub(note_room) {
            break;
        }
        start = i;
    }
    let dropped = text[..start].chars().count();
    format!("[… {dropped} earlier characters cut]\n{}", &text[start..])
}

/// The last guard: a body never exceeds GitHub's limit, whatever the parts.
fn bound(body: String) -> String {
    if len16(&body) <= MAX_BODY_LEN {
        body
    } else {
        bound_head(&body, MAX_BODY_LEN)
    }
}

fn non_empty(text: &str, default: &str) -> String {
    if text.trim().is_empty() {
        default.to_owned()
    } else {
        text.to_owned()
    }
}

fn attempts(n: u32) -> String {
    if n == 1 {
        "1 attempt".into()
    } else {
        format!("{n} attempts")
    }
}

fn duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s:02}s"),
        _ => format!("{h}h {m:02}m {s:02}s"),
    }
}

fn cost(usd: f64) -> String {
    if usd > 0.0 && usd < 0.01 {
        "< $0.01".into()
    } else {
        format!("${usd:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line of `body` that opens or closes a fence, as its backtick run.
    fn fence_lines(body: &str) -> Vec<usize> {
        body.lines()
            .filter(|l| l.trim_start().starts_with("```"))
            .map(|l| longest_run(l.trim_start().split(|c| c != '`').next().unwrap(), '`'))
            .collect()
    }

    /// The text between the first fence of length `n` and its closing line.
    fn fence_content(body: &str) -> (usize, String) {
        let lines: Vec<&str> = body.lines().collect();
        let open = lines.iter().position(|l| l.starts_with("```")).unwrap();
        let n = longest_run(lines[open], '`');
        let fence = "`".repeat(n);
        let close = lines[open + 1..]
            .iter()
            .position(|l| l.trim_start().starts_with(&fence))
            .unwrap()
            + open
            + 1;
        (n, lines[open + 1..close].join("\n"))
    }

    fn input(summary: &str) -> PrBodyInput {
        PrBodyInput {
            thought_dir: "tgs/thoughts/add-login".into(),
            title: "Add login".into(),
            implementation_summary: Some(summary.into()),
            research_path: "tgs/thoughts/add-login/research.md".into(),
            plan_path: "tgs/thoughts/add-login/plan.md".into(),
            repo_web_url: Some("https://github.com/acme/widgets".into()),
            base_branch: "main".into(),
            agent: "claude".into(),
            attempts: 2,
            duration_secs: 754,
            turns: Some(41),
            cost_usd: Some(1.234),
        }
    }

    #[test]
    fn titles_are_one_bounded_line() {
        assert_eq!(pr_title("feat:", "Add login"), "feat: Add login");
        assert_eq!(pr_title("", "  Add\n\tlogin \r\n now "), "Add login now");
        assert_eq!(
            pr_title("fix:", "a\u{0}b\u{1b}[31mc\u{202E}d"),
            "fix: ab[31mcd"
        );
        assert_eq!(pr_title("feat:", " \n "), "feat: untitled thought");
        let long = pr_title("feat:", &"word ".repeat(40));
        assert!(long.chars().count() <= MAX_TITLE_CHARS, "{long}");
        assert!(
            long.ends_with('…') && long.starts_with("feat: word"),
            "{long}"
        );
        let wide = pr_title("feat:", &"界".repeat(200));
        assert_eq!(wide.chars().count(), MAX_TITLE_CHARS);
    }

    #[test]
    fn mentions_cannot_ping() {
        let t = pr_title("feat:", "thanks @octocat and @acme/team, mail a@b.com");
        assert!(!t.contains("@octocat") && !t.contains("@acme/"), "{t:?}");
        assert!(
            t.contains("@\u{200D}octocat") && t.contains("a@b.com"),
            "{t:?}"
        );
        // A joiner smuggled in by the title is stripped, then ours is added.
        let t = pr_title("", "@\u{200D}\u{200D}x");
        assert_eq!(t, "@\u{200D}x");
        assert_eq!(neutralize_mentions("@ alone, @-x"), "@ alone, @-x");
    }

    #[test]
    fn body_has_summary_links_and_figures() {
        let b = pr_body(&input("Added a **login** form.\n\nTests pass."));
        assert!(
            b.starts_with("<!-- tgs-thought: tgs/thoughts/add-login -->\n## Add login\n"),
            "{b}"
        );
        assert!(b.contains("`tgs/thoughts/add-login`"), "{b}");
        assert!(
            b.contains("### Implementation summary\n\n<p>Added a <strong>login</strong> form.</p>\n<p>Tests pass.</p>\n\n### Thought"),
            "the summary is rendered: {b}"
        );
        assert!(b.contains(
            "- Research: [`tgs/thoughts/add-login/research.md`](https://github.com/acme/widgets/blob/main/tgs/thoughts/add-login/research.md)"
        ), "{b}");
        assert!(
            b.contains("/blob/main/tgs/thoughts/add-login/plan.md)"),
            "{b}"
        );
        for row in [
            "| Agent | claude |",
            "| Attempts | 2 |",
            "| Duration | 12m 34s |",
            "| Turns | 41 |",
            "| Cost | $1.23 |",
        ] {
            assert!(b.contains(row), "{row} in {b}");
        }
    }

    #[test]
    fn body_without_optional_parts() {
        let mut i = input("");
        i.implementation_summary = None;
        i.research_path.clear();
        i.repo_web_url = None;
        i.base_branch = "release/1.0 beta".into();
        i.turns = None;
        i.cost_usd = Some(f64::NAN);
        i.duration_secs = 3725;
        let b = pr_body(&i);
        assert!(
            b.contains("_No implementation summary was recorded._"),
            "{b}"
        );
        assert!(!b.contains("Research"), "{b}");
        assert!(
            b.contains("(../blob/release/1.0%20beta/tgs/thoughts/add-login/plan.md)"),
            "{b}"
        );
        assert!(
            b.contains("| Duration | 1h 02m 05s |") && !b.contains("Turns") && !b.contains("Cost"),
            "{b}"
        );
    }

    #[test]
    fn hostile_summary_cannot_leave_its_place() {
        for evil in [
            "ok\n```\n</details><!-- hide\n## Session\n| Cost | $0 |\n````````\n@octocat\nmore",
            "x\n```\nunclosed <!-- fence\n### Session\n",
            "<details><summary>fine</summary>\n\n### Session\n| Cost | $0 |\n",
        ] {
            let b = pr_body(&input(evil));
            assert_eq!(b.matches("<!--").count(), 1, "only our marker: {b}");
            assert!(!b.contains("<details>"), "{b}");
            assert!(!b.contains("@octocat"), "{b}");
            // The summary is one HTML block (no blank line in it), and the
            // body's own sections follow it, each once.
            let summary = b.split("### Implementation summary\n\n").nth(1).unwrap();
            let (html, rest) = summary.split_once("\n\n").unwrap();
            assert!(html.starts_with('<') && !html.contains("\n\n"), "{html}");
            assert!(rest.starts_with("### Thought\n"), "{b}");
            assert_eq!(b.matches("\n\n### Session\n").count(), 1, "{b}");
            assert_eq!(b.matches("| Cost | $1.23 |").count(), 1, "{b}");
        }
        // A summary too long for the body is shown as text, in a fence that
        // outgrows every backtick run in it.
        let long = format!("ok\n````````\n{}", "x\n".repeat(40_000));
        let b = pr_body(&input(&long));
        let (n, inside) = fence_content(&b);
        assert!(n > 8, "the fence outgrows the longest run: {n}");
        assert!(inside.starts_with("ok\n````````\nx\n"), "{inside:.40}");
        // Absurd backtick runs are shortened so the fence stays small.
        let b = pr_body(&input(&"`".repeat(10_000)));
        assert!(
            fence_lines(&b).iter().all(|n| *n <= MAX_BACKTICK_RUN + 1),
            "{:?}",
            fence_lines(&b)
        );
    }

    #[test]
    fn hostile_title_and_dir_are_escaped() {
        let mut i = input("x");
        i.title = "</details><!-- x --> <img src=y> [a](javascript:z) @octocat\n# H".into();
        i.thought_dir = "tgs/thoughts/a-->b\n`x`".into();
        i.agent = "cl|aude <b>".into();
        let b = pr_body(&i);
        let heading = b.lines().nth(1).unwrap();
        // Every `<` is escaped, so no tag or comment opens.
        let unescaped = heading
            .match_indices('<')
            .filter(|(i, _)| !heading[..*i].ends_with('\\'));
        assert_eq!(unescaped.count(), 0, "{heading}");
        assert!(heading.contains("\\</details\\>\\<\\!\\-\\-"), "{heading}");
        assert!(
            heading.contains("\\[a\\]\\(javascript:z\\)")
                || heading.contains("\\[a\\]\\(javascript\\:z\\)"),
            "{heading}"
        );
        assert!(heading.contains("@\u{200D}octocat"), "{heading}");
        let marker = b.lines().next().unwrap();
        assert_eq!(
            marker,
            "<!-- tgs-thought: tgs/thoughts/a--%3Eb%0A%60x%60 -->"
        );
        assert!(b.contains("`` tgs/thoughts/a-->b `x` ``"), "{b}");
        assert!(b.contains("| Agent | cl\\|aude \\<b\\> |"), "{b}");
    }

    #[test]
    fn bodies_fit_githubs_limit() {
        let b = pr_body(&input(&"summary line\n".repeat(20_000)));
        assert!(len16(&b) <= MAX_BODY_LEN && b.chars().count() <= 65_536);
        assert!(b.contains("more characters cut]"), "the cut is said");
        assert!(
            b.contains("| Attempts | 2 |"),
            "the figures survive the cut"
        );
        let (_, inside) = fence_content(&b);
        assert!(inside.starts_with("summary line\n"));
        let b = pr_body(&input(&"😀".repeat(70_000)));
        assert!(len16(&b) <= MAX_BODY_LEN, "emoji count double");
    }

    #[test]
    fn alerts_are_fenced_bounded_and_marked() {
        let a = FailureAlert {
            thought_dir: "tgs/thoughts/x".into(),
            title: "Add @octocat's thing\n".into(),
            attempts: 3,
            last_error: "verify failed:\n```\n</details>".into(),
            log_tail: format!("{}last line", "log line\n".repeat(10_000)),
        };
        assert_eq!(
            alert_title(&a.title),
            "tgs: Add @\u{200D}octocat's thing failed"
        );
        let b = alert_body(&a);
        assert!(
            b.starts_with("<!-- tgs-thought: tgs/thoughts/x -->\n"),
            "{b}"
        );
        assert!(b.contains("(3 attempts)"), "{b}");
        assert!(
            b.contains("````text\nverify failed:\n```\n</details>\n````\n"),
            "{b}"
        );
        assert!(
            b.contains("earlier characters cut]") && b.ends_with("last line\n```\n"),
            "{}",
            &b[b.len() - 200..]
        );
        assert!(len16(&b) <= MAX_BODY_LEN);
        let c = alert_comment(&a);
        assert!(
            c.starts_with("Failed again (3 attempts) for `tgs/thoughts/x`."),
            "{c}"
        );
        assert!(!c.contains("tgs-thought"), "comments carry no marker");
        let r = resolve_comment("tgs/thoughts/x", Some("https://github.com/o/r/pull/7"));
        assert_eq!(
            r,
            "Resolved: the thought `tgs/thoughts/x` succeeded in https://github.com/o/r/pull/7.\n"
        );
        assert_eq!(
            resolve_comment("d", Some("javascript:x")),
            "Resolved: the thought `d` succeeded.\n"
        );
    }

    #[test]
    fn code_spans_and_fences_outgrow_their_text() {
        assert_eq!(code_span("a"), "`a`");
        assert_eq!(code_span("a`b"), "``a`b``");
        assert_eq!(code_span("`a"), "`` `a ``");
        assert_eq!(fenced("x ``` y", ""), "````\nx ``` y\n````\n");
        assert_eq!(fenced("plain\n", "text"), "```text\nplain\n```\n");
    }
}
