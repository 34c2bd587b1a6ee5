//! The dashboard's index page: counts, what needs a human, what runs and
//! what is next, the metrics and their charts, and the whole backlog. With
//! many thousands of thoughts the page stays usable: the open thoughts are
//! one table that [`SCRIPT`] pages and filters in the browser (every row is
//! in the page, so it reads the same without the script), and the completed
//! ones are collapsed by the month they were completed in.

use std::fmt::Write as _;
use std::sync::OnceLock;

use base64::Engine as _;

use super::{
    badge, clip, esc, human_duration, opt_ts, page, pr_closed, pr_link, render_metrics,
    thought_link, ts, Site,
};
use crate::backlog::{Entry, Status};
use crate::report::status::{compute_status, StatusReport};

/// The index page's script: pages the open thoughts' table (100 rows a
/// page) and filters every row of the backlog by the text typed; it adds
/// its controls itself and marks the page (`data-tgs-paged="ok"`) once done.
pub const SCRIPT: &str = include_str!("backlog.js");

/// The Content-Security-Policy source that lets [`SCRIPT`] run, and nothing else.
pub fn script_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        let digest = ring::digest::digest(&ring::digest::SHA256, SCRIPT.as_bytes());
        format!(
            "sha256-{}",
            base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
        )
    })
}

pub(super) fn render(site: &Site) -> String {
    let data = site.data;
    let status = compute_status(&data.backlog, data.now);
    let metrics = data.history.metrics();
    let mut b = String::new();
    let c = &status.counts;
    let _ = write!(
        b,
        "<header>\n<h1>{} · tgs server</h1>\n<p class=\"muted\">Generated {} · <span id=\"total\">{}</span> thoughts in the backlog</p>\n</header>\n",
        esc(&data.project),
        ts(data.now),
        c.total
    );
    b.push_str("<section class=\"cards\" id=\"counts\">\n");
    for s in Status::ALL {
        let _ = writeln!(
            b,
            "<div class=\"card\"><div class=\"n\" id=\"count-{0}\">{1}</div>{2}</div>",
            s.as_str(),
            c.get(s),
            badge(s)
        );
    }
    let _ = writeln!(
        b,
        "<div class=\"card\"><div class=\"n\" id=\"count-needs-human\">{}</div><span class=\"badge attention\">needs a human</span></div>\n</section>",
        status.needs_human.len()
    );

    render_needs_human(&mut b, site, &status);
    render_questions(&mut b, site, &status);
    render_running(&mut b, site, &status);
    render_next(&mut b, site, &status);
    render_metrics(&mut b, &metrics);
    render_backlog(&mut b, site);
    page(
        &format!("{} · tgs server", data.project),
        &b,
        INDEX_CSS,
        Some((SCRIPT, script_hash())),
    )
}

fn render_needs_human(b: &mut String, site: &Site, status: &StatusReport) {
    // What needs a human.
    let _ = writeln!(
        b,
        "<section id=\"needs-human\">\n<h2>Needs a human ({})</h2>",
        status.needs_human.len()
    );
    if status.needs_human.is_empty() {
        b.push_str("<p class=\"muted\">Nothing.</p>\n");
    } else {
        b.push_str("<table>\n<tr><th>Thought</th><th>Why</th><th>Detail</th><th>PR</th></tr>\n");
        for a in &status.needs_human {
            let _ = writeln!(
                b,
                "<tr><td>{}</td><td><span class=\"badge attention\">{}</span></td><td>{}</td><td>{}</td></tr>",
                thought_link(&a.dir, &a.title, site.pages),
                a.reason.as_str(),
                esc(&clip(a.detail.as_deref().unwrap_or_default(), 300)),
                pr_link(a.pr_url.as_deref())
            );
        }
        b.push_str("</table>\n");
    }
    b.push_str("</section>\n");
}

/// Questions agents asked that wait for an answer, and for how long.
fn render_questions(b: &mut String, site: &Site, status: &StatusReport) {
    if status.questions.is_empty() {
        return;
    }
    let _ = writeln!(
        b,
        "<section id=\"questions\">\n<h2>Questions waiting for an answer ({})</h2>\n<table>\n<tr><th>Thought</th><th>Question</th><th class=\"num\">Waiting</th><th>Asked on</th></tr>",
        status.questions.len()
    );
    for q in &status.questions {
        let _ = writeln!(
            b,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            thought_link(&q.dir, &q.title, site.pages),
            esc(&clip(&q.question, 300)),
            human_duration(q.waited_s),
            pr_link(q.posted.as_deref())
        );
    }
    b.push_str("</table>\n<p class=\"muted\">Answer with a comment starting <code>/tgs answer</code> where it was asked, or <code>tgs server backlog answer DIR --text ...</code>.</p>\n</section>\n");
}

fn render_running(b: &mut String, site: &Site, status: &StatusReport) {
    // Running sessions.
    let _ = writeln!(
        b,
        "<section id=\"running\">\n<h2>Running ({})</h2>",
        status.running.len()
    );
    if status.running.is_empty() {
        b.push_str("<p class=\"muted\">No session is running.</p>\n");
    } else {
        b.push_str("<table>\n<tr><th>Thought</th><th>Worker</th><th class=\"num\">Attempt</th><th>Claimed</th><th class=\"num\">Elapsed</th><th class=\"num\">Lease left</th></tr>\n");
        for r in &status.running {
            let _ = writeln!(
                b,
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                thought_link(&r.dir, &r.title, site.pages),
                esc(r.worker.as_deref().unwrap_or_default()),
                r.attempt,
                opt_ts(r.claimed_at),
                r.elapsed_s.map(human_duration).unwrap_or_default(),
                r.lease_left_s.map(human_duration).unwrap_or_default()
            );
        }
        b.push_str("</table>\n");
    }
    b.push_str("</section>\n");
}

fn render_next(b: &mut String, site: &Site, status: &StatusReport) {
    // Next up.
    let _ = writeln!(
        b,
        "<section id=\"next\">\n<h2>Next up ({})</h2>",
        status.next.len()
    );
    if status.next.is_empty() {
        b.push_str("<p class=\"muted\">Nothing can be claimed now.</p>\n");
    } else {
        b.push_str("<ol>\n");
        for n in status.next.iter().take(LIST_MAX) {
            let shown = if n.title.trim().is_empty() {
                &n.dir
            } else {
                &n.title
            };
            let _ = writeln!(
                b,
                "<li><a href=\"thoughts/{}\">{}</a> <span class=\"muted\">priority {}{}</span></li>",
                esc(&site.pages[&n.dir]),
                esc(shown),
                n.priority,
                if n.reclaim { ", lease expired: will be reclaimed" } else { "" }
            );
        }
        b.push_str("</ol>\n");
        more(b, status.next.len());
    }
    if !status.waiting.is_empty() {
        let _ = writeln!(
            b,
            "<p class=\"muted\">Waiting: {}</p>",
            status.waiting.len()
        );
        b.push_str("<ul>\n");
        for w in status.waiting.iter().take(LIST_MAX) {
            let mut why = Vec::new();
            if let Some(t) = w.not_before {
                why.push(format!("retry after {}", ts(t)));
            }
            if !w.blocked_by.is_empty() {
                why.push(format!("waits for {}", w.blocked_by.join(", ")));
            }
            let _ = writeln!(
                b,
                "<li><a href=\"thoughts/{}\">{}</a> <span class=\"muted\">{}</span></li>",
                esc(&site.pages[&w.dir]),
                esc(if w.title.trim().is_empty() {
                    &w.dir
                } else {
                    &w.title
                }),
                esc(&why.join("; "))
            );
        }
        b.push_str("</ul>\n");
        more(b, status.waiting.len());
    }
    b.push_str("</section>\n");
}

/// How many of the thoughts next up (and of those waiting) the index names:
/// the backlog table below has them all.
const LIST_MAX: usize = 50;

/// Say how many of `n` a list left out, if it left any out.
fn more(b: &mut String, n: usize) {
    if n > LIST_MAX {
        let _ = writeln!(
            b,
            "<p class=\"muted\">And {} more: the backlog below lists every open thought.</p>",
            n - LIST_MAX
        );
    }
}

/// Styles of the index page only (the thought pages do without them).
pub(super) const INDEX_CSS: &str = "\
[hidden]{display:none!important}
.tools{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin:8px 0}
.tools input{flex:1 1 260px;padding:4px 8px;font:inherit;border:1px solid var(--line);border-radius:6px}
.tools button{font:inherit;padding:3px 10px;border:1px solid var(--line);border-radius:6px;background:var(--soft);cursor:pointer}
.tools button:disabled{opacity:.5;cursor:default}
details.month,details.gone{border:1px solid var(--line);border-radius:6px;margin:6px 0;padding:0 8px}
details summary{cursor:pointer;padding:4px 0;font-weight:600}
";

/// The controls [`SCRIPT`] shows (hidden without it).
const TOOLS: &str = "<div id=\"backlog-tools\" class=\"tools\" hidden>\n\
<input type=\"search\" id=\"backlog-filter\" placeholder=\"Filter by name, title, status or error\" aria-label=\"Filter the backlog\">\n\
<button type=\"button\" id=\"backlog-prev\">← Previous</button>\n\
<span id=\"backlog-page\" class=\"muted\"></span>\n\
<button type=\"button\" id=\"backlog-next\">Next →</button>\n\
</div>\n";

const HEADER: &str = "<thead><tr><th>Thought</th><th>Status</th><th class=\"num\">Priority</th><th class=\"num\">Attempts</th><th>PR</th><th>Last error</th></tr></thead>\n";

/// The whole backlog: the open thoughts in claim order, then the completed
/// ones by month, newest first, then the thoughts only the history knows.
fn render_backlog(b: &mut String, site: &Site) {
    let thoughts = &site.data.backlog.thoughts;
    let _ = writeln!(
        b,
        "<section id=\"backlog\">\n<h2>Backlog ({})</h2>",
        thoughts.len()
    );
    if thoughts.is_empty() {
        b.push_str("<p class=\"muted\">The backlog is empty.</p>\n");
    } else {
        let (done, open): (Vec<&Entry>, Vec<&Entry>) = site
            .data
            .backlog
            .claim_order()
            .into_iter()
            .partition(|e| e.status == Status::Completed);
        b.push_str(TOOLS);
        render_open(b, site, &open);
        render_completed(b, site, done);
    }
    render_gone(b, site);
    b.push_str("</section>\n");
}

fn render_open(b: &mut String, site: &Site, open: &[&Entry]) {
    let _ = writeln!(b, "<h3>Open ({})</h3>", open.len());
    if open.is_empty() {
        b.push_str("<p class=\"muted\">No open thought.</p>\n");
        return;
    }
    let _ = write!(b, "<table id=\"backlog-open\">\n{HEADER}<tbody>\n");
    for e in open {
        backlog_row(b, site, e);
    }
    b.push_str("</tbody>\n</table>\n");
}

/// The month a thought was completed in (UTC), `None` when it does not say.
fn month(e: &Entry) -> Option<String> {
    e.completed_at.map(|t| t.strftime("%Y-%m").to_string())
}

fn render_completed(b: &mut String, site: &Site, mut done: Vec<&Entry>) {
    if done.is_empty() {
        return;
    }
    // Newest month first, the latest completion first within it; those
    // without a date last. Stable, so ties keep claim order.
    done.sort_by_key(|e| std::cmp::Reverse(e.completed_at));
    let _ = writeln!(b, "<h3>Completed ({}), by month</h3>", done.len());
    for group in done.chunk_by(|a, b| month(a) == month(b)) {
        let m = month(group[0]);
        let _ = write!(
            b,
            "<details class=\"month\" id=\"done-{}\"><summary>{} · {} completed<span class=\"match muted\"></span></summary>\n<table>\n{HEADER}<tbody>\n",
            m.as_deref().unwrap_or("undated"),
            m.as_deref().unwrap_or("No completion date"),
            group.len()
        );
        for e in group {
            backlog_row(b, site, e);
        }
        b.push_str("</tbody>\n</table>\n</details>\n");
    }
}

fn backlog_row(b: &mut String, site: &Site, e: &Entry) {
    let closed = if pr_closed(e) {
        " <span class=\"badge attention\">closed</span>"
    } else {
        ""
    };
    let _ = writeln!(
        b,
        "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}{}</td><td>{}</td></tr>",
        thought_link(&e.dir, &e.title, site.pages),
        badge(e.status),
        e.priority,
        e.attempts,
        pr_link(e.pr_url.as_deref()),
        closed,
        esc(&clip(e.last_error.as_deref().unwrap_or_default(), 160))
    );
}

/// Thoughts removed from the backlog that the history still mentions.
fn render_gone(b: &mut String, site: &Site) {
    let gone: Vec<&String> = site
        .dirs
        .iter()
        .filter(|d| !site.entries.contains_key(d.as_str()))
        .collect();
    if gone.is_empty() {
        return;
    }
    let _ = write!(
        b,
        "<h3>No longer in the backlog ({})</h3>\n<details class=\"gone\"><summary>{} thought(s) only the history mentions</summary>\n<ul>\n",
        gone.len(),
        gone.len()
    );
    for d in gone {
        let _ = writeln!(
            b,
            "<li><a href=\"thoughts/{}\">{}</a></li>",
            esc(&site.pages[d]),
            esc(d)
        );
    }
    b.push_str("</ul>\n</details>\n");
}
