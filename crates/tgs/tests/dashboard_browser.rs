//! The dashboard in a real browser: headless Chromium (Debian's `chromium`,
//! path in `TGS_TEST_CHROMIUM`) opens the generated `index.html` from disk,
//! and the rendered DOM must show the right counts and links, the hostile
//! title as text, and no request may leave the page. A screenshot is kept in
//! `target/test-artifacts/` for people to look at.
//!
//! They need Chromium, so a plain `cargo test` ignores them (and says so);
//! `--include-ignored` (as `.ci/run` does) runs them, and then a missing
//! browser fails them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{run, TestEnv, TestRepo};
use serde_json::{json, Value};

const HOSTILE: &str = "<script>alert(1)</script>\"><img src=x onerror=alert(2)>";

/// The browser; a test that runs without it fails.
fn chromium() -> PathBuf {
    std::env::var_os("TGS_TEST_CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/usr/bin/chromium")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "Chromium is missing (TGS_TEST_CHROMIUM={:?}): `apt-get install chromium` (see README)",
                std::env::var_os("TGS_TEST_CHROMIUM")
            )
        })
}

/// A backlog with one entry per status, a hostile title, a PR, records and a transcript.
fn fixture(env: &TestEnv) -> TestRepo<'_> {
    let repo = env.local_repo("r");
    let backlog = json!({
        "version": "1",
        "thoughts": [
            {"dir": "tgs/thoughts/aaaaaaa-first", "title": "First thing", "status": "completed",
             "attempts": 1, "pr_url": "https://github.com/o/r/pull/1"},
            {"dir": "tgs/thoughts/bbbbbbb-second", "title": "Second thing", "status": "in_progress",
             "claimed_by": "host/w1", "claimed_at": "2026-01-15T11:30:00Z",
             "lease_expires_at": "2026-01-15T13:00:00Z", "attempts": 1},
            {"dir": "tgs/thoughts/ccccccc-third", "title": "Third thing", "status": "failed",
             "attempts": 3, "last_error": "tests failed"},
            {"dir": "tgs/thoughts/ddddddd-hostile", "title": HOSTILE, "priority": 5,
             "status": "queued", "pr_url": "javascript:alert(3)"},
            {"dir": "tgs/thoughts/eeeeeee-fifth", "title": "Fifth thing", "status": "queued"}
        ]
    });
    repo.put_state(&[
        ("tgs/server/backlog.json", &backlog.to_string()),
        (
        "tgs/server/metrics.csv",
        "thought,worker,agent,started,ended,duration_s,outcome,attempt,exit_code,turns,cost_usd,input_tokens,output_tokens,pr_url\n\
         tgs/thoughts/aaaaaaa-first,w1,claude-code,2026-01-13T10:00:00Z,2026-01-13T10:20:00Z,1200.0,success,1,0,9,0.5000,10,1,https://github.com/o/r/pull/1\n\
         tgs/thoughts/ccccccc-third,w1,claude-code,2026-01-13T12:00:00Z,2026-01-13T12:05:00Z,300.0,failed,1,1,3,0.2500,10,1,\n\
         tgs/thoughts/ccccccc-third,w1,claude-code,2026-01-14T12:00:00Z,2026-01-14T13:00:00Z,3600.0,timeout,2,,,,,,\n\
         tgs/thoughts/ccccccc-third,w2,claude-code,2026-01-15T08:00:00Z,2026-01-15T08:40:00Z,2400.0,failed,3,1,20,1.2500,10,1,\n",
        ),
    ]);
    repo.write(
        "tgs/server/logs/ccccccc-third-20260115T080000Z.log",
        "running tests\n<img src=http://evil.example/x onerror=alert(4)>\ntests failed\n",
    );
    repo
}

struct Browser {
    bin: PathBuf,
    tmp: PathBuf,
    runs: usize,
}

impl Browser {
    /// Run Chromium headless on `url` with `extra` flags; fails after 90 s.
    /// Run chromium on `url`; a browser that crashed (its crash reporter
    /// speaks: a 2-core machine under a parallel test run starves it at
    /// times) is run again, twice at most, before the test fails.
    fn run(&mut self, extra: &[String], url: &str) -> Output {
        let mut out = self.run_once(extra, url);
        for _ in 0..2 {
            let crashed =
                !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("crashpad");
            if !crashed {
                break;
            }
            eprintln!("chromium crashed ({}) on {url}; again", out.status);
            out = self.run_once(extra, url);
        }
        assert!(
            out.status.success(),
            "chromium failed ({}) on {url}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .join("\n")
        );
        out
    }

    fn run_once(&mut self, extra: &[String], url: &str) -> Output {
        self.runs += 1;
        let profile = self.tmp.join(format!("profile-{}", self.runs));
        let mut cmd = Command::new(&self.bin);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            // Keep the browser's own background traffic off the network (the
            // requests still show in the logs, where they are told apart).
            "--host-resolver-rules=MAP * ~NOTFOUND",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        // Chromium writes caches and crash databases under HOME and XDG dirs.
        .env("HOME", &self.tmp)
        .env("XDG_CONFIG_HOME", self.tmp.join("config"))
        .env("XDG_CACHE_HOME", self.tmp.join("cache"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start chromium");
        // Drain the pipes while waiting: --v=1 writes megabytes to stderr.
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let t_out = std::thread::spawn(move || {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut out, &mut v).map(|_| v)
        });
        let t_err = std::thread::spawn(move || {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut err, &mut v).map(|_| v)
        });
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > Duration::from_secs(90) {
                let _ = child.kill();
                panic!("chromium did not finish within 90 s on {url}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Output {
            status,
            stdout: t_out.join().unwrap().unwrap(),
            stderr: t_err.join().unwrap().unwrap(),
        }
    }

    /// The rendered DOM of `page`, with every URL request the browser logged.
    fn dump_dom(&mut self, page: &Path) -> (String, Requests) {
        let netlog = self.tmp.join(format!("netlog-{}.json", self.runs + 1));
        let out = self.run(
            &[
                "--enable-logging=stderr".into(),
                "--v=1".into(),
                format!("--log-net-log={}", netlog.display()),
                "--dump-dom".into(),
            ],
            &file_url(page),
        );
        let text = std::fs::read_to_string(&netlog).expect("chromium wrote the net log");
        let requests = Requests {
            netlog: page_requests(&parse_netlog(&text)),
            stderr: logged_requests(&String::from_utf8_lossy(&out.stderr)),
        };
        (String::from_utf8(out.stdout).unwrap(), requests)
    }

    /// A 1280x900 screenshot of `page`, saved to `shot`.
    fn screenshot(&mut self, page: &Path, shot: &Path) {
        self.run(
            &[
                format!("--screenshot={}", shot.display()),
                "--window-size=1280,900".into(),
                "--hide-scrollbars".into(),
            ],
            &file_url(page),
        );
        let png = std::fs::read(shot).expect("chromium wrote the screenshot");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
        let dim = |i: usize| u32::from_be_bytes(png[i..i + 4].try_into().unwrap());
        assert_eq!((dim(16), dim(20)), (1280, 900), "screenshot size");
    }
}

fn file_url(p: &Path) -> String {
    format!("file://{}", p.canonicalize().unwrap().display())
}

struct Requests {
    /// http(s)/ws(s) requests the net log attributes to the page (file://).
    netlog: Vec<String>,
    /// Every URL request in the verbose log, the browser's own included.
    stderr: Vec<String>,
}

/// Chromium's net log; one cut short (a browser that died) is closed by hand.
fn parse_netlog(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| {
        let trimmed = text.trim_end().trim_end_matches(',');
        serde_json::from_str(&format!("{trimmed}]}}")).expect("a readable net log")
    })
}

/// Network URLs whose request came from a `file://` page. The browser's own
/// background requests (updates, sign-in) carry no page origin and no
/// `file://` isolation key, so they are told apart from the page's.
fn page_requests(netlog: &Value) -> Vec<String> {
    let mut urls = Vec::new();
    for e in netlog["events"].as_array().into_iter().flatten() {
        let p = &e["params"];
        let Some(url) = p["url"].as_str() else {
            continue;
        };
        let network = ["http:", "https:", "ws:", "wss:"]
            .iter()
            .any(|s| url.starts_with(s));
        let from_page = p["initiator"]
            .as_str()
            .is_some_and(|i| i == "null" || i.starts_with("file:"))
            || ["network_isolation_key", "site_for_cookies"]
                .iter()
                .any(|k| p[k].as_str().is_some_and(|v| v.contains("file://")));
        if network && from_page && !urls.iter().any(|u| u == url) {
            urls.push(url.to_owned());
        }
    }
    urls
}

/// The URLs of `NetworkDelegate::NotifyBeforeURLRequest` lines (`--v=1`).
fn logged_requests(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.split_once("NotifyBeforeURLRequest: "))
        .map(|(_, url)| url.trim().to_owned())
        .collect()
}

/// Hosts of the browser's own services, which it contacts whatever the page.
fn browser_service(url: &str) -> bool {
    let host = url
        .split_once("://")
        .map(|(_, r)| r.split(['/', ':', '?']).next().unwrap_or(""))
        .unwrap_or("");
    [
        "google.com",
        "googleapis.com",
        "gstatic.com",
        "gvt1.com",
        "googleusercontent.com",
    ]
    .iter()
    .any(|d| host == *d || host.ends_with(&format!(".{d}")))
}

/// Requests the page made: from the net log, and any logged request to a
/// host that is not one of the browser's own services.
fn foreign_requests(r: &Requests) -> Vec<String> {
    let mut v = r.netlog.clone();
    for url in &r.stderr {
        let network = url.starts_with("http:") || url.starts_with("https:");
        if network && !browser_service(url) && !v.contains(url) {
            v.push(url.clone());
        }
    }
    v
}

fn artifacts_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/tmp has a parent")
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
#[ignore = "needs Chromium (TGS_TEST_CHROMIUM, or /usr/bin/chromium)"]
fn dashboard_renders_in_chromium_without_network_requests() {
    let bin = chromium();
    let env = TestEnv::new();
    let repo = fixture(&env);
    let site = env.path().join("site");
    let (code, _, err) = run(repo.tgs().args(["server", "dashboard", "--out"]).arg(&site));
    assert_eq!(code, 0, "{err}");
    let tmp = env.path().join("chromium");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut browser = Browser {
        bin,
        tmp: tmp.clone(),
        runs: 0,
    };

    let (dom, requests) = browser.dump_dom(&site.join("index.html"));
    for (status, n) in [
        ("queued", 2),
        ("in_progress", 1),
        ("completed", 1),
        ("failed", 1),
    ] {
        assert!(
            dom.contains(&format!("id=\"count-{status}\">{n}<")),
            "{status}: {dom}"
        );
    }
    assert!(dom.contains("id=\"count-needs-human\">1<"));
    assert!(dom.contains("<h2>Running (1)</h2>"));
    assert!(dom.contains("<a href=\"thoughts/aaaaaaa-first.html\">First thing</a>"));
    assert!(dom.contains("<a class=\"pr\" href=\"https://github.com/o/r/pull/1\""));
    assert!(dom.contains("id=\"m-success-rate\">25.0% (1 of 4)<"));
    assert!(dom.contains("<svg viewBox="), "the charts are rendered");
    // The hostile title became text: no element was created from it.
    assert!(dom
        .contains("&lt;script&gt;alert(1)&lt;/script&gt;\"&gt;&lt;img src=x onerror=alert(2)&gt;"));
    // The one script is tgs's own, and it ran.
    assert_eq!(dom.matches("<script").count(), 1, "{dom}");
    assert!(dom.contains(&format!(
        "<script>{}</script>",
        tgs_core::report::site::SCRIPT
    )));
    assert!(dom.contains("data-tgs-paged=\"ok\""), "{dom}");
    assert!(!dom.contains("<img"), "{dom}");
    assert!(!dom.contains("href=\"javascript:"));
    assert_eq!(foreign_requests(&requests), Vec::<String>::new());

    let (page, requests) = browser.dump_dom(&site.join("thoughts/ccccccc-third.html"));
    assert!(page.contains("<h1>Third thing</h1>"));
    assert!(page.contains("&lt;img src=http://evil.example/x onerror=alert(4)&gt;"));
    assert!(!page.contains("<img"));
    assert!(page.contains("href=\"../index.html\""));
    assert_eq!(foreign_requests(&requests), Vec::<String>::new());

    let shot = tmp.join("dashboard.png");
    browser.screenshot(&site.join("index.html"), &shot);
    let kept = artifacts_dir().join("dashboard.png");
    std::fs::copy(&shot, &kept).unwrap();
    let thought_shot = tmp.join("thought.png");
    browser.screenshot(&site.join("thoughts/ccccccc-third.html"), &thought_shot);
    std::fs::copy(&thought_shot, artifacts_dir().join("dashboard-thought.png")).unwrap();
    eprintln!("screenshot: {}", kept.display());
}

/// The request checks above pass only if they can see a request: a page
/// that does load things (and has no Content-Security-Policy) must be caught.
#[test]
#[ignore = "needs Chromium (TGS_TEST_CHROMIUM, or /usr/bin/chromium)"]
fn the_request_check_catches_a_page_that_loads_something() {
    let bin = chromium();
    let env = TestEnv::new();
    let tmp = env.path().join("chromium");
    std::fs::create_dir_all(&tmp).unwrap();
    let page = env.path().join("bad.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><head><link rel=\"stylesheet\" href=\"https://cdn.tgs-test.invalid/x.css\"></head>\
         <body><p>bad</p><img src=\"http://img.tgs-test.invalid/x.png\"></body></html>",
    )
    .unwrap();
    let mut browser = Browser { bin, tmp, runs: 0 };
    let (_, requests) = browser.dump_dom(&page);
    let mut found = foreign_requests(&requests);
    found.sort();
    assert_eq!(
        found,
        [
            "http://img.tgs-test.invalid/x.png",
            "https://cdn.tgs-test.invalid/x.css"
        ]
    );
    let mut netlog = requests.netlog.clone();
    netlog.sort();
    assert_eq!(netlog, found, "the net log alone sees both");
}

/// A site of 10,000 thoughts (2,000 open, 8,000 completed over 24 months):
/// the index page renders in Chromium, its script runs to its end and pages
/// the open thoughts (100 rows show), the completed ones are collapsed by
/// month, and nothing is requested. The state is written directly.
#[test]
#[ignore = "needs Chromium (TGS_TEST_CHROMIUM, or /usr/bin/chromium)"]
fn an_index_of_ten_thousand_thoughts_renders_paged() {
    let bin = chromium();
    let env = TestEnv::new();
    let repo = env.local_repo("big");
    let dir = |i: usize| format!("tgs/thoughts/{:07x}-thought-{i}", 0xa00_0000 + i);
    let open: Vec<Value> = (0..2000)
        .map(|i| {
            let status = if i % 10 == 0 { "failed" } else { "queued" };
            json!({"dir": dir(i), "title": format!("Open thought {i}"), "priority": i % 3, "status": status})
        })
        .collect();
    let mut files = vec![(
        "tgs/server/backlog.json".to_owned(),
        json!({"version": "1", "thoughts": open}).to_string(),
    )];
    for m in 0..24 {
        let month = format!("{}-{:02}", 2025 + m / 12, m % 12 + 1);
        let lines: String = (2000 + m..10_000)
            .step_by(24)
            .map(|i| {
                json!({"dir": dir(i), "title": format!("Done thought {i}"), "status": "completed",
                       "completed_at": format!("{month}-20T10:00:00Z")})
                .to_string()
                    + "\n"
            })
            .collect();
        files.push((format!("tgs/server/archive/{month}.jsonl"), lines));
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    repo.put_state(&refs);
    let site = env.path().join("site");
    let started = Instant::now();
    let (code, _, err) = run(repo.tgs().args(["server", "dashboard", "--out"]).arg(&site));
    assert_eq!(code, 0, "{err}");
    eprintln!("dashboard of 10,000 thoughts: {:?}", started.elapsed());
    assert_eq!(
        std::fs::read_dir(site.join("thoughts")).unwrap().count(),
        10_000
    );

    let tmp = env.path().join("chromium");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut browser = Browser { bin, tmp, runs: 0 };
    let started = Instant::now();
    let (dom, requests) = browser.dump_dom(&site.join("index.html"));
    eprintln!("chromium on the index: {:?}", started.elapsed());
    assert!(
        dom.contains("data-tgs-paged=\"ok\""),
        "the script ran to its end"
    );
    assert!(dom.contains("page 1 of 20 · 2000 open"), "paged");
    assert!(dom.contains("<h3>Open (2000)</h3>"));
    assert!(dom.contains("<h3>Completed (8000), by month</h3>"));
    // 1,900 open rows hidden by the script; the months are collapsed, not hidden.
    assert_eq!(dom.matches("<tr hidden=\"\">").count(), 1900);
    assert_eq!(dom.matches("<details class=\"month\"").count(), 24);
    assert!(!dom.contains("<details class=\"month\" open"));
    assert!(
        dom.contains("<summary>2026-12 · 333 completed"),
        "newest month first"
    );
    // What runs next is named for the first 50 only.
    assert!(dom.contains("<h2>Next up (1800)</h2>"));
    assert!(dom.contains("And 1750 more: the backlog below lists every open thought."));
    assert_eq!(foreign_requests(&requests), Vec::<String>::new());
}
