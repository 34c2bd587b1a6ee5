//! The static dashboard: `index.html` and one `thoughts/<name>.html` per
//! thought, for GitHub Pages or a plain `file://` open.
//!
//! The pages are self-contained: inline CSS, charts as inline SVG, no font,
//! image or stylesheet from anywhere, and a Content-Security-Policy that
//! forbids loading anything should a future change slip one in. The one
//! script is tgs's own, inline in the index page (paging and filtering the
//! backlog; the page reads the same without it), and the policy lets only
//! that script run, by its hash. The only external URLs are pull-request
//! links (`<a href>`, navigation, never loaded), and only http(s) ones. All
//! thought text goes through [`escape_html`]. [`render_each`] is pure and
//! sorts everything, so the same state and clock give byte-identical files.
//!
//! The pages come from the backlog and a [`HistoryIndex`] made in one pass
//! over the history, and are handed out one at a time ([`render_each`],
//! [`SiteWriter`]), so a site of many thousands of thoughts is never whole
//! in memory and each page costs what it shows.

mod index_page;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use jiff::Timestamp;

use super::clip;
use super::index::{EventView, HistoryIndex, SessionView};
use super::metrics::MetricsSummary;
use super::status::pr_closed;
use super::{escape_html as esc, escape_html_into as esc_into, human_duration, safe_http_url};
use super::{thought_name, Transcript};
use crate::backlog::{Backlog, Entry, Status};

pub use index_page::{script_hash, SCRIPT};

/// How many lines of each transcript a thought page shows.
pub const EXCERPT_LINES: usize = 40;
/// How many days the charts cover (the most recent ones).
pub const CHART_DAYS: usize = 60;

/// The end of one transcript, read for a thought page.
#[derive(Debug, Clone, PartialEq)]
pub struct Excerpt {
    pub transcript: Transcript,
    pub lines: Vec<String>,
    /// Why the file could not be read, if it could not.
    pub error: Option<String>,
}

/// Everything the site shows, loaded once.
#[derive(Debug, Clone)]
pub struct SiteData {
    /// Shown in the page titles (the repository's folder name).
    pub project: String,
    pub now: Timestamp,
    /// Every entry: the live backlog, then the archived ones.
    pub backlog: Backlog,
    /// The history, indexed per thought in one pass.
    pub history: HistoryIndex,
    /// Transcript excerpts per thought name, oldest first.
    pub excerpts: BTreeMap<String, Vec<Excerpt>>,
    /// Excerpts and error texts were left out on purpose (`--no-excerpts`).
    pub excerpts_left_out: bool,
}

impl SiteData {
    /// The site's data, with an excerpt of each of `transcripts` that
    /// belongs to a thought of the state, read by `tail` (its last lines).
    pub fn load(
        project: &str,
        backlog: Backlog,
        history: HistoryIndex,
        now: Timestamp,
        transcripts: Vec<Transcript>,
        tail: impl Fn(&Transcript) -> std::io::Result<Vec<String>>,
    ) -> SiteData {
        let names: BTreeSet<String> = thought_dirs(&backlog, &history)
            .iter()
            .map(|d| thought_name(d).to_owned())
            .collect();
        let mut excerpts: BTreeMap<String, Vec<Excerpt>> = BTreeMap::new();
        for t in transcripts {
            if !names.contains(&t.name) {
                continue;
            }
            let (lines, error) = match tail(&t) {
                Ok(l) => (l.iter().map(|l| strip_ansi(l)).collect(), None),
                Err(e) => (Vec::new(), Some(e.to_string())),
            };
            excerpts.entry(t.name.clone()).or_default().push(Excerpt {
                transcript: t,
                lines,
                error,
            });
        }
        SiteData {
            project: project.to_owned(),
            now,
            backlog,
            history,
            excerpts,
            excerpts_left_out: false,
        }
    }

    /// The same site without what sessions printed: no transcript excerpt,
    /// no error text (`last_error`, the reasons in the history). For a site
    /// that may be public while the repository is not.
    pub fn without_excerpts(mut self) -> SiteData {
        self.excerpts.clear();
        self.excerpts_left_out = true;
        for e in &mut self.backlog.thoughts {
            e.last_error = None;
            if let Some(w) = &mut e.wip {
                w.ended.clear();
                w.last_seen.clear();
            }
            // What agents asked and people answered stays in the repository.
            for q in &mut e.questions {
                q.text = "(left out of this site)".into();
                if let Some(a) = &mut q.answer {
                    a.text = "(left out of this site)".into();
                }
            }
        }
        self.history.forget_reasons();
        self
    }
}

/// Remove terminal escape sequences (colors, titles) that agents print: in a
/// page they would only show as noise.
pub(crate) fn strip_ansi(line: &str) -> String {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(
            r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[ -/]+[0-~]|[@-Z\\-_])",
        )
        .expect("valid regex")
    });
    re.replace_all(line, "").into_owned()
}

/// One file of the site: a `/`-separated path relative to the output folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteFile {
    pub path: String,
    pub content: String,
}

/// Every thought the site has a page for: the backlog's, then those that
/// only the records still mention (removed from the backlog), sorted.
fn thought_dirs(backlog: &Backlog, history: &HistoryIndex) -> Vec<String> {
    let mut seen = BTreeSet::new();
    // A hand-edited backlog may list a directory twice: one page for it.
    let mut dirs: Vec<String> = backlog
        .thoughts
        .iter()
        .filter(|e| seen.insert(e.dir.as_str()))
        .map(|e| e.dir.clone())
        .collect();
    let known: BTreeSet<&str> = dirs.iter().map(String::as_str).collect();
    let others: BTreeSet<String> = history
        .dirs()
        .filter(|d| !d.is_empty() && !known.contains(d))
        .map(str::to_owned)
        .collect();
    dirs.extend(others);
    dirs
}

/// A file name for each thought's page: its name with anything outside
/// `[A-Za-z0-9._-]` replaced (hand-edited backlogs may hold anything), made
/// unique with `-2`, `-3`... in sorted order so it is stable.
fn page_names(dirs: &[String]) -> BTreeMap<String, String> {
    let mut sorted: Vec<&String> = dirs.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut used = BTreeSet::new();
    let mut out = BTreeMap::new();
    for dir in sorted {
        let mut base: String = thought_name(dir)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if base.is_empty() || base.starts_with('.') {
            base.insert(0, 't');
        }
        let mut name = base.clone();
        let mut n = 2;
        while !used.insert(name.clone()) {
            name = format!("{base}-{n}");
            n += 1;
        }
        out.insert(dir.clone(), format!("{name}.html"));
    }
    out
}

/// Hand every page of the site to `each`, one at a time, in path order:
/// `index.html`, then `thoughts/<name>.html`. Stops at the first error.
pub fn render_each<E>(
    data: &SiteData,
    mut each: impl FnMut(SiteFile) -> Result<(), E>,
) -> Result<(), E> {
    let dirs = thought_dirs(&data.backlog, &data.history);
    let pages = page_names(&dirs);
    // The first entry of each directory, as `Backlog::get` finds it.
    let mut entries: HashMap<&str, &Entry> = HashMap::with_capacity(data.backlog.thoughts.len());
    for e in &data.backlog.thoughts {
        entries.entry(e.dir.as_str()).or_insert(e);
    }
    let site = Site {
        data,
        dirs: &dirs,
        pages: &pages,
        entries: &entries,
    };
    each(SiteFile {
        path: "index.html".into(),
        content: index_page::render(&site),
    })?;
    let mut by_page: Vec<(&String, &String)> = pages.iter().map(|(d, p)| (p, d)).collect();
    by_page.sort();
    for (page, dir) in by_page {
        each(SiteFile {
            path: format!("thoughts/{page}"),
            content: render_thought(&site, dir),
        })?;
    }
    Ok(())
}

/// Every page of the site, in path order (see [`render_each`]).
pub fn render_site(data: &SiteData) -> Vec<SiteFile> {
    let mut files = Vec::new();
    let _ = render_each(data, |f| {
        files.push(f);
        Ok::<(), ()>(())
    });
    files
}

/// What a page is rendered from: the data, and the lookups made once.
struct Site<'a> {
    data: &'a SiteData,
    /// Every thought with a page (see [`thought_dirs`]).
    dirs: &'a [String],
    /// Each thought's page file name.
    pages: &'a BTreeMap<String, String>,
    /// Each directory's entry in the backlog.
    entries: &'a HashMap<&'a str, &'a Entry>,
}

/// What [`write_site`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct WriteReport {
    /// Files whose content changed (or that are new).
    pub written: Vec<String>,
    pub unchanged: usize,
    /// Pages of thoughts that are gone.
    pub removed: Vec<String>,
}

/// Write the site under `out`. Files whose content is unchanged are not
/// rewritten; `thoughts/*.html` files the site no longer has are removed
/// (that folder belongs to the site). A `.nojekyll` marker tells GitHub Pages
/// to serve the files as they are.
pub fn write_site(out: &Path, files: &[SiteFile]) -> std::io::Result<WriteReport> {
    let mut w = SiteWriter::new(out)?;
    for f in files {
        w.write(f)?;
    }
    w.finish()
}

/// [`write_site`] one file at a time, for pages rendered one at a time.
pub struct SiteWriter {
    out: std::path::PathBuf,
    report: WriteReport,
    /// The paths written or unchanged, for telling stale pages.
    keep: BTreeSet<String>,
}

impl SiteWriter {
    /// Start a site under `out` (its `thoughts/` folder is created).
    pub fn new(out: &Path) -> std::io::Result<SiteWriter> {
        std::fs::create_dir_all(out.join("thoughts"))?;
        Ok(SiteWriter {
            out: out.to_owned(),
            report: WriteReport::default(),
            keep: BTreeSet::new(),
        })
    }

    /// Write `f` unless the file already holds it.
    pub fn write(&mut self, f: &SiteFile) -> std::io::Result<()> {
        self.keep.insert(f.path.clone());
        let path = self.out.join(&f.path);
        if std::fs::read(&path).is_ok_and(|old| old == f.content.as_bytes()) {
            self.report.unchanged += 1;
            return Ok(());
        }
        // `thoughts/` is made once, in `new`: no syscall per page for it.
        if let Some(parent) = path.parent().filter(|p| *p != self.out.join("thoughts")) {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &f.content)?;
        self.report.written.push(f.path.clone());
        Ok(())
    }

    /// Write the `.nojekyll` marker and remove the pages the site no longer has.
    pub fn finish(mut self) -> std::io::Result<WriteReport> {
        let pages = std::mem::take(&mut self.keep);
        self.write(&SiteFile {
            path: ".nojekyll".into(),
            content: String::new(),
        })?;
        let mut stale = Vec::new();
        for d in std::fs::read_dir(self.out.join("thoughts"))?.filter_map(Result::ok) {
            let name = d.file_name().to_string_lossy().into_owned();
            let rel = format!("thoughts/{name}");
            if name.ends_with(".html") && !pages.contains(rel.as_str()) && d.path().is_file() {
                stale.push((rel, d.path()));
            }
        }
        stale.sort();
        for (rel, path) in stale {
            std::fs::remove_file(path)?;
            self.report.removed.push(rel);
        }
        Ok(self.report)
    }
}

const CSS: &str = "\
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#fff;--soft:#f6f8fa;--accent:#0969da}
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 -apple-system,BlinkMacSystemFont,\"Segoe UI\",Helvetica,Arial,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:1200px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:24px;margin:8px 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
h3{font-size:15px;margin:18px 0 4px}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
.muted{color:var(--muted)}code,pre{font:12px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{background:var(--soft);border:1px solid var(--line);border-radius:6px;padding:8px 12px;overflow:auto;max-height:480px;white-space:pre-wrap;word-break:break-all}
table{border-collapse:collapse;width:100%;margin:4px 0}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:var(--soft);font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 16px;min-width:130px;background:var(--soft)}
.card .n{font-size:28px;font-weight:600}
.badge{display:inline-block;padding:0 8px;border-radius:10px;font-size:12px;font-weight:600;white-space:nowrap}
.queued{background:#ddf4ff;color:#0550ae}.in_progress{background:#fff8c5;color:#7d4e00}
.completed{background:#dafbe1;color:#116329}.failed{background:#ffebe9;color:#a40e26}.needs_input{background:#fbefff;color:#8250df}.handover_pending{background:#fff1e5;color:#953800}
.attention{background:#ffebe9;color:#a40e26}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px}dl.facts dt{color:var(--muted)}dl.facts dd{margin:0}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:16px}
figure{margin:0;border:1px solid var(--line);border-radius:8px;padding:8px}
figcaption{font-weight:600;margin-bottom:4px}
svg{width:100%;height:auto;display:block}
svg text{font:11px sans-serif;fill:var(--muted)}
svg .bar{fill:#54aeff}svg .bar.ok{fill:#4ac26b}svg .bar.cost{fill:#c297ff}svg .axis{stroke:#8c959f}svg .grid{stroke:#eaeef2}
";

/// A whole HTML document around `body`.
fn document(title: &str, body: &str) -> String {
    page(title, body, "", None)
}

/// A whole HTML document around `body`, with `css` after the common styles
/// and `script` (tgs's own code, inline, and the policy source that allows
/// it by its hash and nothing else) at the end of the body.
fn page(title: &str, body: &str, css: &str, script: Option<(&str, &str)>) -> String {
    let (policy, tag) = match script {
        Some((code, hash)) => (
            format!(" script-src '{hash}';"),
            format!("<script>{code}</script>\n"),
        ),
        None => (String::new(), String::new()),
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none';{policy} style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; form-action 'none'\">\n\
<meta name=\"referrer\" content=\"no-referrer\">\n\
<title>{}</title>\n<style>\n{CSS}{css}</style>\n</head>\n<body>\n<main>\n{body}</main>\n{tag}</body>\n</html>\n",
        esc(title)
    )
}

fn ts(t: Timestamp) -> String {
    let mut s = String::with_capacity(20);
    write_ts(&mut s, t);
    s
}

/// `2026-01-15 12:00 UTC`, as `strftime("%Y-%m-%d %H:%M UTC")` writes it,
/// without its cost for the many thousands of rows of a site.
fn write_ts(b: &mut String, t: Timestamp) {
    let dt = jiff::tz::Offset::UTC.to_datetime(t);
    if (0..=9999).contains(&dt.year()) {
        let _ = write!(
            b,
            "{:04}-{:02}-{:02} {:02}:{:02} UTC",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minute()
        );
    } else {
        let _ = write!(b, "{}", t.strftime("%Y-%m-%d %H:%M UTC"));
    }
}

fn opt_ts(t: Option<Timestamp>) -> String {
    t.map(ts).unwrap_or_default()
}

fn badge(s: Status) -> String {
    format!(
        "<span class=\"badge {}\">{}</span>",
        s.as_str(),
        s.as_str().replace('_', " ")
    )
}

/// A PR link if the URL is http(s); the escaped text otherwise (never a link).
fn pr_link(url: Option<&str>) -> String {
    match url {
        None => String::new(),
        Some(u) => match safe_http_url(u) {
            Some(ok) => {
                let label = ok
                    .rsplit_once("/pull/")
                    .map(|(_, n)| format!("#{n}"))
                    .unwrap_or_else(|| "PR".into());
                format!(
                    "<a class=\"pr\" href=\"{}\" rel=\"noopener noreferrer\">{}</a>",
                    esc(ok),
                    esc(&label)
                )
            }
            None => format!("<span class=\"muted\">{}</span>", esc(u)),
        },
    }
}

fn percent(r: Option<f64>) -> String {
    r.map(|r| format!("{:.1}%", r * 100.0))
        .unwrap_or_else(|| "–".into())
}

fn thought_link(dir: &str, title: &str, pages: &BTreeMap<String, String>) -> String {
    let shown = if title.trim().is_empty() { dir } else { title };
    format!(
        "<a href=\"thoughts/{}\">{}</a><br><code class=\"muted\">{}</code>",
        esc(&pages[dir]),
        esc(shown),
        esc(dir)
    )
}

fn render_metrics(b: &mut String, m: &MetricsSummary) {
    b.push_str("<section id=\"metrics\">\n<h2>Metrics</h2>\n");
    if m.sessions == 0 {
        b.push_str("<p class=\"muted\">No session recorded yet.</p>\n</section>\n");
        return;
    }
    let dur = |f: fn(&super::metrics::DurationStats) -> f64| {
        m.duration
            .as_ref()
            .map(|d| human_duration(f(d).round() as i64))
            .unwrap_or_default()
    };
    let facts = [
        ("sessions", format!("{}", m.sessions)),
        (
            "success-rate",
            format!(
                "{} ({} of {})",
                percent(m.success_rate),
                m.succeeded,
                m.sessions
            ),
        ),
        (
            "first-try",
            format!(
                "{} ({} of {} thoughts)",
                percent(m.first_try_success_rate),
                m.first_try_successes,
                m.thoughts
            ),
        ),
        ("retries", m.retries.to_string()),
        ("median-duration", dur(|d| d.median_s)),
        ("p90-duration", dur(|d| d.p90_s)),
        ("total-cost", m.cost_coverage().label(m.cost_usd)),
        ("contained", containment(m)),
    ];
    let labels = [
        "Sessions",
        "Success rate",
        "First-try success",
        "Retries",
        "Median duration",
        "p90 duration",
        "Total cost",
        "Agents contained",
    ];
    b.push_str("<dl class=\"facts\">\n");
    for ((id, v), label) in facts.iter().zip(labels) {
        // A cost that is not the whole story says why on hover.
        let title = match (*id, m.cost_coverage().note()) {
            ("total-cost", Some(note)) => format!(" title=\"{}\"", esc(&note)),
            _ => String::new(),
        };
        let _ = writeln!(
            b,
            "<dt>{label}</dt><dd id=\"m-{id}\"{title}>{}</dd>",
            esc(v)
        );
    }
    b.push_str("</dl>\n<div class=\"charts\">\n");
    let days = &m.per_day[m.per_day.len().saturating_sub(CHART_DAYS)..];
    let day_label = |d: &jiff::civil::Date| d.strftime("%m-%d").to_string();
    let throughput: Vec<Bar> = days
        .iter()
        .map(|d| Bar {
            label: day_label(&d.date),
            value: d.completed as f64,
            tip: format!(
                "{}: {} completed of {} sessions",
                d.date, d.completed, d.sessions
            ),
        })
        .collect();
    let success: Vec<Bar> = days
        .iter()
        .map(|d| Bar {
            label: day_label(&d.date),
            value: d.success_rate.unwrap_or(0.0) * 100.0,
            tip: match d.success_rate {
                Some(r) => format!("{}: {:.1}% of {} sessions", d.date, r * 100.0, d.sessions),
                None => format!("{}: no session", d.date),
            },
        })
        .collect();
    let durations: Vec<Bar> = m
        .duration_buckets
        .iter()
        .map(|k| Bar {
            label: k.label.to_owned(),
            value: k.sessions as f64,
            tip: format!("{}: {} sessions", k.label, k.sessions),
        })
        .collect();
    let cost: Vec<Bar> = days
        .iter()
        .map(|d| Bar {
            label: day_label(&d.date),
            value: d.cost_usd,
            tip: match d.cost_coverage().note() {
                Some(note) => format!(
                    "{}: {} ({note})",
                    d.date,
                    d.cost_coverage().label(d.cost_usd)
                ),
                None => format!("{}: ${:.2}", d.date, d.cost_usd),
            },
        })
        .collect();
    // Counts label whole numbers only (an axis up to 1 has no "0.25" session).
    let count = |v: f64| {
        if v.fract() == 0.0 {
            format!("{v:.0}")
        } else {
            String::new()
        }
    };
    let pct = |v: f64| format!("{v:.0}%");
    let usd = |v: f64| format!("${v:.2}");
    let charts = [
        (
            "chart-throughput",
            "Throughput: completed sessions per day (UTC)",
            throughput,
            None,
            "bar ok",
            &count as &dyn Fn(f64) -> String,
        ),
        (
            "chart-success",
            "Success rate per day",
            success,
            Some(100.0),
            "bar ok",
            &pct,
        ),
        (
            "chart-duration",
            "Session duration",
            durations,
            None,
            "bar",
            &count,
        ),
        (
            "chart-cost",
            "Cost per day (USD)",
            cost,
            None,
            "bar cost",
            &usd,
        ),
    ];
    for (id, title, bars, max, class, fmt) in charts {
        let _ = writeln!(
            b,
            "<figure id=\"{id}\"><figcaption>{}</figcaption>\n{}</figure>",
            esc(title),
            bar_chart(title, &bars, max, class, fmt)
        );
    }
    b.push_str("</div>\n</section>\n");
}

struct Bar {
    label: String,
    value: f64,
    tip: String,
}

/// 1, 2 or 5 times a power of ten, at least `x` (and at least 1).
/// Whether the agents ran in the sandbox: `all 12 sessions (bubblewrap)`,
/// `3 of 12 sessions (9 without a sandbox)`, or `not recorded` for a
/// history written before tgs recorded it.
fn containment(m: &MetricsSummary) -> String {
    match (m.contained, m.not_contained) {
        (0, 0) => "not recorded".into(),
        (n, 0) => format!("all {n} sessions (bubblewrap)"),
        (0, off) => format!("none: {off} sessions without a sandbox"),
        (n, off) => format!("{n} of {} sessions ({off} without a sandbox)", n + off),
    }
}

fn nice_ceil(x: f64) -> f64 {
    if x <= 1.0 {
        return 1.0;
    }
    let p = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|v| *v >= x - 1e-9)
        .unwrap_or(10.0 * p)
}

/// A bar chart as inline SVG: bars with a tooltip each (`<title>`), a
/// y axis with four grid lines, and at most about ten x labels.
fn bar_chart(
    title: &str,
    bars: &[Bar],
    y_max: Option<f64>,
    class: &str,
    fmt: &dyn Fn(f64) -> String,
) -> String {
    const W: f64 = 560.0;
    const H: f64 = 220.0;
    const L: f64 = 52.0;
    const R: f64 = 8.0;
    const T: f64 = 10.0;
    const B: f64 = 30.0;
    let (pw, ph) = (W - L - R, H - T - B);
    let max = y_max.unwrap_or_else(|| nice_ceil(bars.iter().map(|b| b.value).fold(0.0, f64::max)));
    let mut s = format!(
        "<svg viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">\n",
        esc(title)
    );
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        let y = T + ph - ph * f64::from(i) / 4.0;
        let _ = writeln!(
            s,
            "<line class=\"grid\" x1=\"{L}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>",
            W - R
        );
        let label = fmt(v);
        if !label.is_empty() {
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                L - 6.0,
                y + 4.0,
                esc(&label)
            );
        }
    }
    let _ = writeln!(
        s,
        "<line class=\"axis\" x1=\"{L}\" x2=\"{L}\" y1=\"{T}\" y2=\"{:.1}\"/><line class=\"axis\" x1=\"{L}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>",
        T + ph,
        W - R,
        T + ph,
        T + ph
    );
    let n = bars.len().max(1);
    let slot = pw / n as f64;
    let width = (slot * 0.8).max(1.0);
    let every = n.div_ceil(10);
    for (i, bar) in bars.iter().enumerate() {
        let h = if max > 0.0 {
            (bar.value / max).clamp(0.0, 1.0) * ph
        } else {
            0.0
        };
        let x = L + slot * i as f64 + (slot - width) / 2.0;
        let _ = writeln!(
            s,
            "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"{h:.1}\"><title>{}</title></rect>",
            T + ph - h,
            esc(&bar.tip)
        );
        if i % every == 0 {
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                L + slot * (i as f64 + 0.5),
                H - B + 16.0,
                esc(&bar.label)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

fn fact(b: &mut String, label: &str, value_html: &str) {
    if !value_html.is_empty() {
        let _ = writeln!(b, "<dt>{label}</dt><dd>{value_html}</dd>");
    }
}

/// The review loop of `e`'s pull request: revisions pending, running and
/// done, each linked to the review or comment it answers.
/// The questions the thought's agents asked, and the answers (all text
/// escaped: the agent's and reviewers' words are untrusted).
fn render_questions(b: &mut String, e: &Entry) {
    if e.questions.is_empty() {
        return;
    }
    let _ = writeln!(b, "<h2>Questions ({})</h2>", e.questions.len());
    for q in &e.questions {
        let answer = match &q.answer {
            Some(a) => {
                let waited = a.at.as_second() - q.asked_at.as_second();
                format!(
                    "<p>Answered by {} ({}) after {}:</p>\n<pre>{}</pre>",
                    esc(&a.by),
                    esc(&a.via),
                    super::human_duration(waited.max(0)),
                    esc(&a.text)
                )
            }
            None => format!(
                "<p><span class=\"badge needs_input\">waiting</span> since {}{}</p>",
                ts(q.asked_at),
                q.posted
                    .as_ref()
                    .map(|p| format!(" · {}", pr_link(Some(&p.url))))
                    .unwrap_or_default()
            ),
        };
        let _ = writeln!(
            b,
            "<h3>Attempt {} asked, {}</h3>\n<pre>{}</pre>\n{answer}",
            q.attempt,
            ts(q.asked_at),
            esc(&q.text)
        );
    }
}

fn render_review_loop(b: &mut String, e: &Entry) {
    let Some(summary) = crate::review::summary(e) else {
        return;
    };
    let r = e.review.as_ref().expect("a summary has a loop");
    let _ = writeln!(
        b,
        "<h2>Review loop</h2>\n<p>{}</p>\n<table><thead><tr><th>Revision</th><th>State</th><th>Answers</th></tr></thead><tbody>",
        esc(&summary)
    );
    let link = |url: &str, text: &str| match safe_http_url(url) {
        Some(ok) => format!(
            "<a href=\"{}\" rel=\"noopener noreferrer\">{}</a>",
            esc(ok),
            esc(text)
        ),
        None => esc(text),
    };
    for d in &r.done {
        let who = if d.author.is_empty() {
            String::new()
        } else {
            format!(" by @{}", d.author)
        };
        let _ = writeln!(
            b,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(d.kind.as_str()),
            esc(&d.outcome),
            link(&d.url, &format!("{}{who}", d.kind.as_str()))
        );
    }
    let running = e.status == crate::backlog::Status::InProgress;
    for (i, q) in r.queue.iter().enumerate() {
        let state = if i == 0 && running {
            "running"
        } else {
            "queued"
        };
        let _ = writeln!(
            b,
            "<tr><td>{}</td><td>{state}</td><td>{}</td></tr>",
            esc(q.kind.as_str()),
            link(&q.url, &crate::review::what(q))
        );
    }
    b.push_str("</tbody></table>\n");
}

fn render_thought(site: &Site, dir: &str) -> String {
    let data = site.data;
    let entry: Option<&Entry> = site.entries.get(dir).copied();
    let title = entry
        .map(|e| e.title.as_str())
        .filter(|t| !t.trim().is_empty())
        .unwrap_or(dir);
    let mut b = String::new();
    let _ = writeln!(
        b,
        "<nav><a href=\"../index.html\">← {}</a></nav>\n<h1>{}</h1>\n<p><code>{}</code> {}</p>",
        esc(&data.project),
        esc(title),
        esc(dir),
        entry
            .map(|e| badge(e.status))
            .unwrap_or_else(|| "<span class=\"badge\">not in the backlog</span>".into())
    );
    if let Some(e) = entry {
        b.push_str("<dl class=\"facts\">\n");
        fact(&mut b, "Priority", &e.priority.to_string());
        fact(&mut b, "Attempts", &e.attempts.to_string());
        fact(&mut b, "Added", &opt_ts(e.added_at));
        fact(
            &mut b,
            "Claimed by",
            &esc(e.claimed_by.as_deref().unwrap_or_default()),
        );
        fact(&mut b, "Claimed at", &opt_ts(e.claimed_at));
        fact(&mut b, "Lease until", &opt_ts(e.lease_expires_at));
        fact(&mut b, "Not before", &opt_ts(e.not_before));
        fact(&mut b, "Completed", &opt_ts(e.completed_at));
        fact(
            &mut b,
            "Branch",
            &esc(e.branch.as_deref().unwrap_or_default()),
        );
        let mut pr = pr_link(e.pr_url.as_deref());
        if pr_closed(e) {
            pr.push_str(" <span class=\"badge attention\">closed unmerged</span>");
        }
        fact(&mut b, "Pull request", &pr);
        fact(&mut b, "Depends on", &esc(&e.depends_on.join(", ")));
        if let Some(w) = &e.wip {
            let ended = w.ended.lines().next().unwrap_or_default();
            let how = if ended.is_empty() {
                String::new()
            } else {
                format!(", {}", esc(&clip(ended, 160)))
            };
            fact(
                &mut b,
                "Work in progress",
                &format!(
                    "kept by attempt {} ({} file(s), {} line(s){how}); the next attempt goes on from it",
                    w.attempt, w.files, w.lines
                ),
            );
        }
        b.push_str("</dl>\n");
        render_questions(&mut b, e);
        render_review_loop(&mut b, e);
        if let Some(err) = &e.last_error {
            let _ = writeln!(
                b,
                "<h2>Last error</h2>\n<pre class=\"error\">{}</pre>",
                esc(err)
            );
        }
    }

    render_sessions(&mut b, data, dir);
    render_history(&mut b, data, dir);

    let excerpts = data
        .excerpts
        .get(thought_name(dir))
        .map(Vec::as_slice)
        .unwrap_or_default();
    let _ = writeln!(b, "<h2>Transcripts ({})</h2>", excerpts.len());
    if data.excerpts_left_out {
        b.push_str("<p class=\"muted\">Transcript excerpts and error texts are left out of this site; <code>tgs server logs</code> prints them.</p>\n");
    } else if excerpts.is_empty() {
        b.push_str("<p class=\"muted\">No transcript recorded.</p>\n");
    }
    for (i, x) in excerpts.iter().enumerate() {
        let t = &x.transcript;
        let _ = writeln!(
            b,
            "<h3 id=\"session-{}\">Session {} · started {}</h3>\n<p class=\"muted\"><code>{}</code>{}; the last {} lines (<code>tgs server logs {} --attempt {}</code> prints it all)</p>",
            i + 1,
            i + 1,
            ts(t.started),
            esc(&t.file),
            t.bytes.map(|n| format!(", {n} bytes")).unwrap_or_default(),
            x.lines.len(),
            esc(thought_name(dir)),
            i + 1
        );
        match &x.error {
            Some(e) => {
                let _ = writeln!(b, "<p class=\"muted\">unreadable: {}</p>", esc(e));
            }
            None => {
                let _ = writeln!(b, "<pre class=\"log\">{}</pre>", esc(&x.lines.join("\n")));
            }
        }
    }
    document(&format!("{title} · {}", data.project), &b)
}

/// "the latest 200 of 250" when a page shows only the latest rows.
fn latest_note(shown: usize, total: usize) -> String {
    if shown < total {
        format!("<p class=\"muted\">The latest {shown} of {total}.</p>\n")
    } else {
        String::new()
    }
}

fn render_sessions(b: &mut String, data: &SiteData, dir: &str) {
    let sessions = data.history.sessions(dir);
    let _ = writeln!(b, "<h2>Sessions ({})</h2>", sessions.total);
    if sessions.rows.is_empty() {
        b.push_str("<p class=\"muted\">No session recorded.</p>\n");
        return;
    }
    b.push_str(&latest_note(sessions.rows.len(), sessions.total));
    b.push_str("<table>\n<tr><th class=\"num\">Attempt</th><th>Started</th><th class=\"num\">Duration</th><th>Outcome</th><th>Agent</th><th>Worker</th><th class=\"num\">Turns</th><th class=\"num\">Cost</th><th>PR</th><th>Sandbox</th></tr>\n");
    for r in &sessions.rows {
        session_row(b, r);
    }
    b.push_str("</table>\n");
}

/// One row of a thought's sessions, written in place (a site has one per
/// session recorded).
fn session_row(b: &mut String, r: &SessionView) {
    let _ = write!(b, "<tr><td class=\"num\">{}</td><td>", r.attempt);
    write_ts(b, r.started);
    let class = if r.outcome == "success" {
        "completed"
    } else {
        "failed"
    };
    let _ = write!(
        b,
        "</td><td class=\"num\">{}</td><td><span class=\"badge {class}\">",
        human_duration(r.duration_s.round() as i64)
    );
    esc_into(b, r.outcome);
    b.push_str("</span></td><td>");
    esc_into(b, r.agent);
    b.push_str("</td><td>");
    esc_into(b, r.worker);
    b.push_str("</td><td class=\"num\">");
    if let Some(t) = r.turns {
        let _ = write!(b, "{t}");
    }
    b.push_str("</td><td class=\"num\">");
    if let Some(c) = r.cost_usd {
        let _ = write!(b, "${c:.2}");
    }
    b.push_str("</td><td>");
    b.push_str(&pr_link(r.pr_url));
    b.push_str("</td><td>");
    match r.sandbox {
        Some("off") => b.push_str("<span class=\"badge failed\">off</span>"),
        Some(s) => esc_into(b, s),
        None => b.push_str("<span class=\"muted\">&mdash;</span>"),
    }
    b.push_str("</td></tr>\n");
}

fn render_history(b: &mut String, data: &SiteData, dir: &str) {
    let history = data.history.history(dir);
    let _ = writeln!(b, "<h2>History ({})</h2>", history.total);
    if history.rows.is_empty() {
        b.push_str("<p class=\"muted\">No audit record.</p>\n");
        return;
    }
    b.push_str(&latest_note(history.rows.len(), history.total));
    b.push_str("<table>\n<tr><th>Time</th><th>Action</th><th>Change</th><th class=\"num\">Attempt</th><th>Worker</th><th>Reason</th></tr>\n");
    for a in &history.rows {
        history_row(b, a);
    }
    b.push_str("</table>\n");
}

/// One row of a thought's history, written in place: a site has as many as
/// the audit log has lines.
fn history_row(b: &mut String, a: &EventView) {
    b.push_str("<tr><td>");
    write_ts(b, a.time);
    b.push_str("</td><td>");
    esc_into(b, a.action);
    b.push_str("</td><td>");
    match (a.from, a.to) {
        (Some(f), Some(t)) => {
            esc_into(b, f);
            b.push_str(" → ");
            esc_into(b, t);
        }
        (None, Some(t)) => {
            b.push_str("→ ");
            esc_into(b, t);
        }
        (Some(f), None) => {
            esc_into(b, f);
            b.push_str(" →");
        }
        (None, None) => {}
    }
    b.push_str("</td><td class=\"num\">");
    if let Some(n) = a.attempt {
        let _ = write!(b, "{n}");
    }
    b.push_str("</td><td>");
    esc_into(b, a.worker);
    b.push_str("</td><td>");
    esc_into(b, a.reason.unwrap_or_default());
    b.push_str("</td></tr>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{parse_audit, parse_metrics, METRICS_HEADER};
    use crate::report::Records;

    const HOSTILE: &str = "<script>alert(1)</script>\"><img src=x onerror=alert(2)>";

    fn data() -> SiteData {
        let now: Timestamp = "2026-01-15T12:00:00Z".parse().unwrap();
        let mut backlog = Backlog::default();
        backlog.add("tgs/thoughts/aaaaaaa-evil", HOSTILE, 1, now);
        backlog.add("tgs/thoughts/bbbbbbb-ok", "Fine", 0, now);
        backlog.add("tgs/x/ccccccc-we!rd", "Weird dir", 0, now);
        let e = &mut backlog.thoughts[0];
        e.status = Status::Failed;
        e.last_error = Some("</pre><script>x()</script>".into());
        e.pr_url = Some("javascript:alert(3)".into());
        backlog.thoughts[1].status = Status::Completed;
        backlog.thoughts[1].pr_url = Some("https://github.com/o/r/pull/7".into());
        let csv = format!(
            "{METRICS_HEADER}\ntgs/thoughts/bbbbbbb-ok,w,a,2026-01-14T10:00:00Z,2026-01-14T10:30:00Z,1800.0,success,1,0,3,0.5000,1,1,https://github.com/o/r/pull/7\n\
             tgs/thoughts/ddddddd-gone,w,a,2026-01-13T10:00:00Z,2026-01-13T10:01:00Z,60.0,failed,1,1,3,,1,1,\n"
        );
        let audit = "{\"time\":\"2026-01-14T10:00:00Z\",\"worker\":\"w<b>\",\"action\":\"claim\",\"thought\":\"tgs/thoughts/aaaaaaa-evil\",\"reason\":\"<i>r</i>\"}\n";
        let transcript = Transcript {
            name: "aaaaaaa-evil".into(),
            file: "aaaaaaa-evil-20260114T100000Z.log".into(),
            path: Some("/nonexistent".into()),
            kept: None,
            started: "2026-01-14T10:00:00Z".parse().unwrap(),
            seq: 1,
            bytes: Some(10),
        };
        SiteData {
            project: "proj<&>".into(),
            now,
            backlog,
            history: HistoryIndex::from_records(&Records {
                audit: parse_audit(audit).0,
                metrics: parse_metrics(&csv).0,
                skipped: 0,
            }),
            excerpts: BTreeMap::from([(
                "aaaaaaa-evil".into(),
                vec![Excerpt {
                    transcript,
                    lines: vec!["ok".into(), "<script>steal()</script>".into()],
                    error: None,
                }],
            )]),
            excerpts_left_out: false,
        }
    }

    /// The inside of every tag (`<...>`) of a page.
    fn tags(html: &str) -> Vec<&str> {
        html.split('<')
            .skip(1)
            .map(|s| s.split('>').next().unwrap_or(s))
            .collect()
    }

    #[test]
    fn without_excerpts_no_text_a_session_printed_is_on_the_site() {
        let files = render_site(&data().without_excerpts());
        for f in &files {
            let html = &f.content;
            for secret in ["steal()", "x()</script>", "&lt;i&gt;r&lt;/i&gt;"] {
                assert!(!html.contains(secret), "{}: {secret}", f.path);
            }
        }
        let page = files
            .iter()
            .find(|f| f.path == "thoughts/aaaaaaa-evil.html")
            .unwrap();
        assert!(page.content.contains("are left out of this site"));
    }

    #[test]
    fn a_thoughts_work_in_progress_is_on_its_page_its_text_escaped() {
        let mut d = data();
        d.backlog.thoughts[0].wip = Some(crate::backlog::Wip {
            head: "a".repeat(40),
            base: "b".repeat(40),
            attempt: 2,
            ended: "stalled: <b>no sign</b> of life".into(),
            files: 3,
            lines: 40,
            at: d.now,
            last_seen: "steal()".into(),
        });
        let page = |d: &SiteData| {
            render_site(d)
                .into_iter()
                .find(|f| f.path == "thoughts/aaaaaaa-evil.html")
                .unwrap()
                .content
        };
        let html = page(&d);
        assert!(
            html.contains("kept by attempt 2 (3 file(s), 40 line(s), stalled: &lt;b&gt;no sign"),
            "{html}"
        );
        let html = page(&d.without_excerpts());
        assert!(
            html.contains("kept by attempt 2 (3 file(s), 40 line(s))"),
            "{html}"
        );
        assert!(!html.contains("stalled"), "{html}");
    }

    #[test]
    fn questions_are_on_the_index_and_the_thoughts_page_escaped() {
        let mut d = data();
        let e = &mut d.backlog.thoughts[0];
        e.status = Status::NeedsInput;
        e.questions = vec![crate::backlog::Question {
            text: "Port <script>alert(1)</script> 8080?".into(),
            asked_at: d.now,
            attempt: 1,
            posted: Some(crate::backlog::Posted {
                url: "https://github.com/o/r/issues/4".into(),
                number: 4,
                after: 0,
            }),
            answer: None,
        }];
        let files = render_site(&d);
        let get = |p: &str| files.iter().find(|f| f.path == p).unwrap().content.clone();
        let index = get("index.html");
        assert!(
            index.contains("Questions waiting for an answer (1)"),
            "{index}"
        );
        assert!(index.contains("Port &lt;script&gt;"), "{index}");
        let page = get("thoughts/aaaaaaa-evil.html");
        assert!(page.contains("<h2>Questions (1)</h2>"), "{page}");
        assert!(!page.contains("<script>alert"), "{page}");
        let public = render_site(&d.without_excerpts());
        assert!(public.iter().all(|f| !f.content.contains("8080?")));
    }

    /// Whether agents ran contained is on the index (over the window) and
    /// on each session's row; rows from before tgs recorded it say nothing.
    #[test]
    fn containment_is_on_the_index_and_each_session() {
        let mut d = data();
        let csv = format!(
            "{METRICS_HEADER}\ntgs/thoughts/bbbbbbb-ok,w,a,2026-01-14T10:00:00Z,2026-01-14T10:30:00Z,1800.0,failed,1,0,3,,1,1,,,bubblewrap\n\
             tgs/thoughts/bbbbbbb-ok,w,a,2026-01-14T11:00:00Z,2026-01-14T11:30:00Z,1800.0,success,2,0,3,,1,1,,,off\n\
             tgs/thoughts/bbbbbbb-ok,w,a,2026-01-14T12:00:00Z,2026-01-14T12:30:00Z,1800.0,success,3,0,3,,1,1,\n"
        );
        d.history = HistoryIndex::from_records(&Records {
            audit: vec![],
            metrics: parse_metrics(&csv).0,
            skipped: 0,
        });
        let files = render_site(&d);
        let get = |p: &str| files.iter().find(|f| f.path == p).unwrap().content.clone();
        let index = get("index.html");
        assert!(
            index.contains("<dd id=\"m-contained\">1 of 2 sessions (1 without a sandbox)</dd>"),
            "{index}"
        );
        let page = get("thoughts/bbbbbbb-ok.html");
        assert!(page.contains("<th>Sandbox</th>"), "{page}");
        assert!(page.contains("<td>bubblewrap</td>"), "{page}");
        assert!(
            page.contains("<span class=\"badge failed\">off</span>"),
            "{page}"
        );
        assert!(page.contains("&mdash;"), "{page}");
    }

    /// The page without tgs's own script: the index has it once, as it is,
    /// with a policy that lets only it run; no other page has a script.
    fn without_own_script(f: &SiteFile) -> String {
        let own = format!("<script>{SCRIPT}</script>");
        let policy = format!("default-src 'none'; script-src '{}';", script_hash());
        if f.path == "index.html" {
            assert_eq!(f.content.matches("<script").count(), 1);
            assert_eq!(f.content.matches(&own).count(), 1);
            assert!(f.content.contains(&policy), "{}", f.content);
        } else {
            assert!(!f.content.contains("script-src"), "{}", f.path);
        }
        f.content.replace(&own, "")
    }

    #[test]
    fn the_script_is_allowed_by_its_hash() {
        // `echo -n "$script" | openssl dgst -sha256 -binary | base64` gives the same.
        let h = script_hash();
        assert!(h.starts_with("sha256-") && h.len() == 7 + 44, "{h}");
        assert!(
            !SCRIPT.contains("</") && !SCRIPT.contains('<'),
            "nothing that could end the element"
        );
    }

    #[test]
    fn pages_are_escaped_and_self_contained() {
        let files = render_site(&data());
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "index.html",
                "thoughts/aaaaaaa-evil.html",
                "thoughts/bbbbbbb-ok.html",
                "thoughts/ccccccc-we_rd.html",
                "thoughts/ddddddd-gone.html"
            ]
        );
        for f in &files {
            let html = &without_own_script(f);
            assert!(!html.contains("<script"), "{}", f.path);
            assert!(!html.contains("<img"), "{}", f.path);
            assert!(!html.contains("javascript:alert(3)\""), "{}", f.path);
            for tag in tags(html) {
                let t = tag.to_ascii_lowercase();
                assert!(
                    !t.contains(" src=") && !t.contains(" on"),
                    "{}: {tag}",
                    f.path
                );
                for bad in ["script", "img", "iframe", "link", "object", "embed"] {
                    assert!(!t.starts_with(bad), "{}: {tag}", f.path);
                }
            }
            assert!(
                !html.contains("<i>") && !html.contains("w<b>"),
                "{}",
                f.path
            );
            assert!(html.contains("Content-Security-Policy"));
            // The only absolute URL in a link is the http(s) PR.
            for (i, _) in html.match_indices("href=\"") {
                let url = &html[i + 6..];
                let url = &url[..url.find('"').unwrap()];
                assert!(
                    url == "https://github.com/o/r/pull/7" || !url.contains(':'),
                    "{}: {url}",
                    f.path
                );
            }
        }
        let index = &files[0].content;
        assert!(index.contains(
            "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"
        ));
        assert!(index.contains("<title>proj&lt;&amp;&gt; · tgs server</title>"));
        assert!(index.contains("id=\"count-failed\">1<"));
        assert!(index.contains("href=\"thoughts/ccccccc-we_rd.html\""));
        assert!(index.contains("<a class=\"pr\" href=\"https://github.com/o/r/pull/7\""));
        let evil = &files[1].content;
        assert!(evil.contains("&lt;script&gt;steal()&lt;/script&gt;"));
        assert!(evil.contains("&lt;/pre&gt;&lt;script&gt;x()"));
    }

    #[test]
    fn rendering_is_deterministic() {
        assert_eq!(render_site(&data()), render_site(&data()));
    }

    #[test]
    fn page_names_are_unique_and_safe() {
        let dirs = vec![
            "tgs/thoughts/a-x".to_owned(),
            "tgs/a-x".to_owned(),
            "tgs/thoughts/../../etc".to_owned(),
            "tgs/thoughts/.hidden".to_owned(),
        ];
        let p = page_names(&dirs);
        assert_eq!(p["tgs/a-x"], "a-x.html");
        assert_eq!(p["tgs/thoughts/a-x"], "a-x-2.html");
        assert_eq!(p["tgs/thoughts/../../etc"], "etc.html");
        assert_eq!(p["tgs/thoughts/.hidden"], "t.hidden.html");
    }

    #[test]
    fn write_site_skips_unchanged_and_removes_stale_pages() {
        let tmp = tempfile::tempdir().unwrap();
        let files = render_site(&data());
        std::fs::create_dir_all(tmp.path().join("thoughts")).unwrap();
        std::fs::write(tmp.path().join("thoughts/old.html"), "x").unwrap();
        std::fs::write(tmp.path().join("thoughts/keep.txt"), "x").unwrap();
        let first = write_site(tmp.path(), &files).unwrap();
        assert_eq!(first.written.len(), files.len() + 1);
        assert_eq!(first.removed, ["thoughts/old.html"]);
        assert!(tmp.path().join("thoughts/keep.txt").exists());
        let again = write_site(tmp.path(), &files).unwrap();
        assert!(again.written.is_empty() && again.removed.is_empty());
        assert_eq!(again.unchanged, files.len() + 1);
    }

    #[test]
    fn terminal_escapes_are_stripped() {
        assert_eq!(
            strip_ansi("\x1b[1;31merror\x1b[0m: x \x1b]0;title\x07done\x1b(B"),
            "error: x done"
        );
        assert_eq!(strip_ansi("plain [31m text"), "plain [31m text");
    }

    #[test]
    fn times_are_written_as_strftime_writes_them() {
        for t in [
            "2026-01-15T12:00:59Z",
            "0001-01-01T00:00:00Z",
            "9999-12-30T00:00:00Z",
            "-000001-06-01T00:00:00Z",
            "2024-02-29T07:05:00.999Z",
        ] {
            let t: Timestamp = t.parse().unwrap();
            assert_eq!(ts(t), t.strftime("%Y-%m-%d %H:%M UTC").to_string());
        }
    }

    #[test]
    fn nice_axis_tops() {
        assert_eq!(nice_ceil(0.0), 1.0);
        assert_eq!(nice_ceil(3.0), 5.0);
        assert_eq!(nice_ceil(7.0), 10.0);
        assert_eq!(nice_ceil(10.0), 10.0);
        assert_eq!(nice_ceil(11.0), 20.0);
        assert_eq!(nice_ceil(0.0625 * 100.0), 10.0);
    }
}
