//! `tgs server status`, `metrics`, `logs` and `dashboard` on a real
//! repository whose backlog, records and transcripts are written by hand,
//! with exact figures, `--json` shapes, and escaping of hostile thought text.

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{run, TestEnv, TestRepo};
use serde_json::{json, Value};

const A: &str = "tgs/thoughts/aaaaaaa-first";
const B: &str = "tgs/thoughts/bbbbbbb-second";
const C: &str = "tgs/thoughts/ccccccc-third";
const D: &str = "tgs/thoughts/ddddddd-hostile";
const E: &str = "tgs/thoughts/eeeeeee-fifth";
const F: &str = "tgs/thoughts/fffffff-closed";
const HOSTILE: &str = "<script>alert(1)</script>\"><img src=x onerror=alert(2)>";

fn backlog(b_status: &str) -> Value {
    json!({
        "version": "1",
        "thoughts": [
            {"dir": A, "title": "First thing", "priority": 0, "status": "completed",
             "attempts": 2, "pr_url": "https://github.com/o/r/pull/1"},
            {"dir": B, "title": "Second thing", "priority": 0, "status": b_status,
             "claimed_by": "host/w1", "claimed_at": "2026-01-15T11:30:00Z",
             "lease_expires_at": "2026-01-15T13:00:00Z", "attempts": 1},
            {"dir": C, "title": "Third thing", "priority": 0, "status": "failed",
             "attempts": 3, "last_error": "tests failed: 3 errors"},
            {"dir": D, "title": HOSTILE, "priority": 5, "status": "queued",
             "pr_url": "javascript:alert(3)"},
            {"dir": E, "title": "Fifth thing", "priority": 1, "status": "queued"},
            {"dir": F, "title": "Closed PR", "priority": 0, "status": "completed",
             "attempts": 1, "pr_url": "https://github.com/o/r/pull/6", "pr_state": "closed"}
        ]
    })
}

const METRICS: &str = "\
thought,worker,agent,started,ended,duration_s,outcome,attempt,exit_code,turns,cost_usd,input_tokens,output_tokens,pr_url
tgs/thoughts/aaaaaaa-first,w1,claude-code,2026-01-13T10:00:00Z,2026-01-13T10:10:00Z,600.0,failed,1,1,4,0.2500,10,1,
tgs/thoughts/aaaaaaa-first,w1,claude-code,2026-01-14T09:00:00Z,2026-01-14T09:20:00Z,1200.0,success,2,0,9,0.5000,10,1,https://github.com/o/r/pull/1
tgs/thoughts/ccccccc-third,w2,claude-code,2026-01-13T12:00:00Z,2026-01-13T12:30:00Z,1800.0,failed,1,1,7,0.1250,10,1,
tgs/thoughts/ccccccc-third,w2,claude-code,2026-01-14T12:00:00Z,2026-01-14T13:00:00Z,3600.0,timeout,2,,,,,,
tgs/thoughts/ccccccc-third,w1,claude-code,2026-01-15T08:00:00Z,2026-01-15T08:05:00Z,300.0,crashed,3,137,2,0.0625,10,1,
tgs/thoughts/fffffff-closed,w1,claude-code,2026-01-14T15:00:00Z,2026-01-14T15:15:00Z,900.0,success,1,0,5,0.5000,10,1,https://github.com/o/r/pull/6
";

const AUDIT: &str = r#"{"time":"2026-01-13T10:00:00Z","worker":"w1","action":"claim","thought":"tgs/thoughts/aaaaaaa-first","from":"queued","to":"in_progress","attempt":1}
{"time":"2026-01-13T10:10:00Z","worker":"w1","action":"requeue","thought":"tgs/thoughts/aaaaaaa-first","from":"in_progress","to":"queued","attempt":1,"reason":"<b>tests</b> failed"}
not json
"#;

const LOGS: &str = "tgs/server/logs";

/// A repository whose state branch (local: there is no remote) holds the
/// backlog and records above, with the transcripts in the working tree.
fn fixture(env: &TestEnv) -> TestRepo<'_> {
    let repo = env.local_repo("r");
    repo.put_state(&[
        (
            "tgs/server/backlog.json",
            &serde_json::to_string_pretty(&backlog("in_progress")).unwrap(),
        ),
        ("tgs/server/metrics.csv", METRICS),
        ("tgs/server/audit.jsonl", AUDIT),
    ]);
    repo.write(
        &format!("{LOGS}/aaaaaaa-first-20260114T090000Z.log"),
        "attempt two\nall good\n",
    );
    repo.write(
        &format!("{LOGS}/aaaaaaa-first-20260113T100000Z.log"),
        "attempt one\nfailed here\n",
    );
    repo.write(
        &format!("{LOGS}/bbbbbbb-second-20260115T113000Z.log"),
        "working...\n",
    );
    repo.write(
        &format!("{LOGS}/ccccccc-third-20260115T080000Z.log"),
        "<script>alert('log')</script>\nsegfault\n",
    );
    repo
}

fn ok(repo: &TestRepo, args: &[&str]) -> String {
    let (code, out, err) = run(repo.tgs().args(args));
    assert_eq!(code, 0, "tgs {args:?} failed: {err}");
    out
}

fn ok_json(repo: &TestRepo, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(repo, &all)).unwrap()
}

fn dirs(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| e["dir"].as_str().unwrap())
        .collect()
}

#[test]
fn status_shows_counts_running_next_and_needs_human() {
    let env = TestEnv::new();
    let repo = fixture(&env);
    let s = ok_json(&repo, &["server", "status"]);
    assert_eq!(
        s["counts"],
        json!({"queued": 2, "in_progress": 1, "handover_pending": 0, "completed": 2, "failed": 1, "needs_input": 0, "total": 6})
    );
    assert_eq!(s["now"], "2026-01-15T12:00:00Z");
    assert_eq!(
        s["running"],
        json!([{
            "dir": B, "title": "Second thing", "worker": "host/w1", "attempt": 1,
            "claimed_at": "2026-01-15T11:30:00Z", "elapsed_s": 1800,
            "lease_expires_at": "2026-01-15T13:00:00Z", "lease_left_s": 3600
        }])
    );
    assert_eq!(dirs(&s["next"]), [D, E]);
    assert_eq!(s["next"][0]["reclaim"], false);
    let human: Vec<(&str, &str)> = s["needs_human"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["dir"].as_str().unwrap(), a["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(human, [(C, "failed"), (F, "pr_closed")]);
    assert_eq!(s["needs_human"][0]["detail"], "tests failed: 3 errors");
    assert_eq!(
        s["needs_human"][1]["pr_url"],
        "https://github.com/o/r/pull/6"
    );

    let text = ok(&repo, &["server", "status"]);
    assert!(
        text.starts_with("backlog: 6 thought(s): 2 queued, 1 in progress, 2 completed, 1 failed\n")
    );
    assert!(text.contains("running (1)"), "{text}");
    assert!(text.contains("host/w1"), "{text}");
    assert!(text.contains("30m00s"), "{text}");
    assert!(text.contains("1h00m"), "{text}");
    assert!(text.contains(&format!("  1. {D}")), "{text}");
    assert!(text.contains(&format!("  2. {E}")), "{text}");
    assert!(text.contains("needs a human (2)"), "{text}");
    assert!(
        text.contains(&format!("{C}  failed: tests failed: 3 errors")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{F}  PR closed unmerged (https://github.com/o/r/pull/6)"
        )),
        "{text}"
    );

    // Once the lease has run out, the claim needs a human and is next to be reclaimed.
    let mut late = repo.tgs();
    late.env("TGS_NOW", "2026-01-15T14:00:00Z");
    let (code, out, _) = run(late.args(["--json", "server", "status"]));
    assert_eq!(code, 0);
    let s: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["running"], json!([]));
    assert_eq!(dirs(&s["next"]), [D, E, B]);
    assert_eq!(s["next"][2]["reclaim"], true);
    assert!(dirs(&s["needs_human"]).contains(&B));
}

#[test]
fn status_of_an_empty_repository() {
    let env = TestEnv::new();
    let repo = env.local_repo("r");
    let s = ok_json(&repo, &["server", "status"]);
    assert_eq!(s["counts"]["total"], 0);
    assert_eq!(s["running"], json!([]));
    let text = ok(&repo, &["server", "status"]);
    assert!(text.contains("backlog: 0 thought(s)"), "{text}");
}

/// Agents that report no cost (a `command` agent, say): the cost is unknown, not $0.00.
#[test]
fn a_cost_no_agent_reported_is_unknown() {
    let env = TestEnv::new();
    let repo = fixture(&env);
    let no_cost: String = METRICS
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(',').collect();
            if f[0] != "thought" {
                f[10] = "";
            }
            f.join(",") + "\n"
        })
        .collect();
    repo.put_state(&[("tgs/server/metrics.csv", &no_cost)]);
    let m = ok_json(&repo, &["server", "metrics"]);
    assert_eq!(
        (&m["cost_usd"], &m["sessions_with_cost"]),
        (&json!(0.0), &json!(0))
    );
    let text = ok(&repo, &["server", "metrics"]);
    assert!(
        text.contains("cost        unknown: no agent reported a cost"),
        "{text}"
    );
    assert!(!text.contains("$0.00"), "{text}");
    let out_dir = env.path().join("site");
    let (code, _, err) = run(repo
        .tgs()
        .args(["server", "dashboard", "--out"])
        .arg(&out_dir));
    assert_eq!(code, 0, "{err}");
    let index = std::fs::read_to_string(out_dir.join("index.html")).unwrap();
    assert!(
        index.contains("id=\"m-total-cost\" title=\"no agent reported a cost\">unknown<"),
        "{index}"
    );
    assert!(index.contains("2026-01-13: unknown (no agent reported a cost)"));
}

#[test]
fn metrics_have_exact_figures() {
    let env = TestEnv::new();
    let repo = fixture(&env);
    let m = ok_json(&repo, &["server", "metrics"]);
    assert_eq!(m["since"], Value::Null);
    assert_eq!(m["sessions"], 6);
    assert_eq!(m["succeeded"], 2);
    assert_eq!(m["success_rate"], 0.3333);
    assert_eq!(m["thoughts"], 3);
    assert_eq!(m["first_try_successes"], 1);
    assert_eq!(m["first_try_success_rate"], 0.3333);
    assert_eq!(m["retries"], 3);
    assert_eq!(
        m["duration"],
        json!({"median_s": 1050.0, "p90_s": 3600.0, "max_s": 3600.0})
    );
    assert_eq!(m["cost_usd"], 1.4375);
    assert_eq!(m["sessions_with_cost"], 5);
    assert_eq!(
        m["outcomes"],
        json!({"crashed": 1, "failed": 2, "success": 2, "timeout": 1})
    );
    assert_eq!(
        m["per_day"],
        json!([
            {"date": "2026-01-13", "sessions": 2, "completed": 0, "success_rate": 0.0, "cost_usd": 0.375, "sessions_with_cost": 2},
            {"date": "2026-01-14", "sessions": 3, "completed": 2, "success_rate": 0.6667, "cost_usd": 1.0, "sessions_with_cost": 2},
            {"date": "2026-01-15", "sessions": 1, "completed": 0, "success_rate": 0.0, "cost_usd": 0.0625, "sessions_with_cost": 1}
        ])
    );
    assert_eq!(
        m["per_thought"][1],
        json!({"thought": C, "sessions": 3, "succeeded": 0, "first_try_success": false,
               "retries": 2, "cost_usd": 0.1875, "sessions_with_cost": 2, "duration_s": 5700.0})
    );
    assert_eq!(m["per_thought"][2]["first_try_success"], true);

    let since = ok_json(&repo, &["server", "metrics", "--since", "2026-01-14"]);
    assert_eq!(since["since"], "2026-01-14");
    assert_eq!(
        (
            &since["sessions"],
            &since["succeeded"],
            &since["success_rate"]
        ),
        (&json!(4), &json!(2), &json!(0.5))
    );
    assert_eq!(
        (&since["retries"], &since["cost_usd"]),
        (&json!(3), &json!(1.0625))
    );
    assert_eq!(since["per_day"].as_array().unwrap().len(), 2);

    let text = ok(&repo, &["server", "metrics"]);
    assert!(
        text.contains("sessions    6 (2 succeeded, 33.3%)"),
        "{text}"
    );
    assert!(
        text.contains("first try   1 of 3 thoughts succeeded at once (33.3%)"),
        "{text}"
    );
    assert!(text.contains("median 17m30s, p90 1h00m"), "{text}");
    // One session (a timeout) reported no cost: the total says what it covers.
    assert!(
        text.contains(
            "cost        $1.44: the total covers the 5 of 6 sessions whose agent reported a cost"
        ),
        "{text}"
    );
    assert!(
        text.contains("$0.19 (2 of 3 sessions)"),
        "per thought: {text}"
    );
    assert!(text.contains("$1.44"), "{text}");
    assert!(
        text.contains("2026-01-14  2          3         66.7%    $1.00"),
        "{text}"
    );

    let (code, _, err) = run(repo
        .tgs()
        .args(["server", "metrics", "--since", "last week"]));
    assert_eq!(code, 2);
    assert!(err.contains("YYYY-MM-DD"), "{err}");
}

#[test]
fn metrics_without_records() {
    let env = TestEnv::new();
    let repo = env.local_repo("r");
    let m = ok_json(&repo, &["server", "metrics"]);
    assert_eq!(
        (&m["sessions"], &m["success_rate"]),
        (&json!(0), &Value::Null)
    );
    let (code, out, err) = run(repo.tgs().args(["server", "metrics"]));
    assert_eq!((code, out.as_str()), (0, ""));
    assert!(err.contains("no session recorded yet"), "{err}");
}

#[test]
fn logs_print_the_latest_or_the_nth_session() {
    let env = TestEnv::new();
    let repo = fixture(&env);
    assert_eq!(ok(&repo, &["server", "logs", A]), "attempt two\nall good\n");
    assert_eq!(
        ok(
            &repo,
            &["server", "logs", "aaaaaaa-first", "--attempt", "1"]
        ),
        "attempt one\nfailed here\n"
    );
    assert_eq!(
        ok(
            &repo,
            &[
                "server",
                "logs",
                "./tgs/thoughts/aaaaaaa-first/",
                "--attempt",
                "2"
            ]
        ),
        "attempt two\nall good\n"
    );
    // A completed session with --follow prints it and stops at once.
    assert_eq!(
        ok(&repo, &["server", "logs", A, "--follow"]),
        "attempt two\nall good\n"
    );

    let j = ok_json(&repo, &["server", "logs", A]);
    assert_eq!(j["dir"], A);
    assert_eq!(j["in_backlog"], true);
    assert_eq!(j["selected"], 2);
    let files: Vec<&str> = j["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["file"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        [
            "aaaaaaa-first-20260113T100000Z.log",
            "aaaaaaa-first-20260114T090000Z.log"
        ]
    );
    assert_eq!(j["sessions"][0]["n"], 1);
    assert_eq!(j["sessions"][0]["started"], "2026-01-13T10:00:00Z");
    assert_eq!(j["sessions"][0]["bytes"], 24);

    // A thought removed from the backlog keeps its transcripts.
    repo.write(
        &format!("{LOGS}/0123abc-gone-20260101T000000Z.log"),
        "old\n",
    );
    assert_eq!(ok(&repo, &["server", "logs", "0123abc-gone"]), "old\n");
}

#[test]
fn logs_errors() {
    let env = TestEnv::new();
    let repo = fixture(&env);
    let (code, out, err) = run(repo.tgs().args(["server", "logs", "9999999-missing"]));
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(
        err.contains("tgs/thoughts/9999999-missing is not in the backlog and has no transcript"),
        "{err}"
    );
    let (code, _, err) = run(repo.tgs().args(["server", "logs", E]));
    assert_eq!(code, 1);
    assert!(err.contains("has no session transcript yet"), "{err}");
    let (code, _, err) = run(repo.tgs().args(["server", "logs", A, "--attempt", "3"]));
    assert_eq!(code, 2);
    assert!(
        err.contains("has 2 session transcript(s); there is no session 3"),
        "{err}"
    );
    let (code, _, _) = run(repo.tgs().args(["server", "logs", A, "--attempt", "0"]));
    assert_eq!(code, 2);
    let (code, _, err) = run(repo.tgs().args(["server", "logs", "../etc"]));
    assert_eq!(code, 2, "{err}");
    let (code, _, _) = run(repo.tgs().args(["--json", "server", "logs", A, "--follow"]));
    assert_eq!(code, 2);
}

#[test]
fn logs_stream_a_large_transcript_unchanged() {
    let env = TestEnv::new();
    let repo = fixture(&env);
    let mut body = Vec::with_capacity(6 << 20);
    let mut i = 0u64;
    while body.len() < 6 << 20 {
        writeln!(body, "line {i} {}", "x".repeat((i % 97) as usize)).unwrap();
        i += 1;
    }
    body.extend_from_slice(b"\xff\xfe not utf-8, no newline");
    std::fs::write(
        repo.path(&format!("{LOGS}/ccccccc-third-20260115T090000Z.log")),
        &body,
    )
    .unwrap();
    let out = repo.tgs().args(["server", "logs", C]).output().unwrap();
    assert!(out.status.success());
    assert!(
        out.stdout == body,
        "transcript differs ({} bytes out)",
        out.stdout.len()
    );
}

#[test]
fn logs_follow_a_running_session_until_it_ends() {
    let env = TestEnv::new();
    let repo = fixture(&env);
    let log = repo.path(&format!("{LOGS}/bbbbbbb-second-20260115T113000Z.log"));
    let mut cmd = Command::new(common::tgs_bin());
    cmd.current_dir(&repo.root);
    env.pin(&mut cmd);
    let child = cmd
        .args(["server", "logs", "bbbbbbb-second", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    append(&log, "step 2\n");
    std::thread::sleep(Duration::from_millis(700));
    append(&log, "step 3, done\n");
    // The session ends: the entry leaves in_progress.
    repo.put_state(&[(
        "tgs/server/backlog.json",
        &serde_json::to_string_pretty(&backlog("completed")).unwrap(),
    )]);
    let out = wait_with_timeout(child, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "working...\nstep 2\nstep 3, done\n"
    );
}

#[test]
fn logs_follow_stops_on_ctrl_c() {
    let env = TestEnv::new();
    let repo = fixture(&env);
    let log = repo.path(&format!("{LOGS}/bbbbbbb-second-20260115T113000Z.log"));
    let mut cmd = Command::new(common::tgs_bin());
    cmd.current_dir(&repo.root);
    env.pin(&mut cmd);
    let mut child = cmd
        .args(["server", "logs", B, "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Read stdout on a thread so that waiting for output can time out.
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = |needle: &str| {
        let start = Instant::now();
        while !String::from_utf8_lossy(&seen).contains(needle) {
            let left = Duration::from_secs(30).saturating_sub(start.elapsed());
            match rx.recv_timeout(left) {
                Ok(chunk) => seen.extend(chunk),
                Err(_) => panic!("no {needle:?} in {:?}", String::from_utf8_lossy(&seen)),
            }
        }
    };
    wait_for("working...\n");
    // Appended bytes are printed only by the follow loop, so once they show,
    // the Ctrl-C handler is in place.
    append(&log, "still going\n");
    wait_for("still going\n");
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "Ctrl-C did not stop --follow"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(code.success(), "{code:?}");
    reader.join().unwrap();
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn wait_with_timeout(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("the command did not stop within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Every (attribute, value) of every tag that can point elsewhere.
fn references(html: &str) -> Vec<(&'static str, String)> {
    let mut refs = Vec::new();
    for tag in html
        .split('<')
        .skip(1)
        .map(|s| s.split('>').next().unwrap_or(s))
    {
        let lower = tag.to_ascii_lowercase();
        for attr in [
            "src",
            "href",
            "srcset",
            "poster",
            "data",
            "action",
            "xlink:href",
        ] {
            let pat = format!("{attr}=");
            for (i, _) in lower.match_indices(&pat) {
                // Only whole attribute names (`data-x=` or `xhref=` are not these).
                if !lower[..i].ends_with([' ', '\n', '\t']) {
                    continue;
                }
                let value = lower[i + pat.len()..].trim_start_matches(['"', '\'']);
                let value = value.split(['"', '\'', ' ']).next().unwrap_or("");
                refs.push((attr, value.to_owned()));
            }
        }
    }
    refs
}

/// `html` without tgs's own script: the index page has it once, exactly as
/// tgs wrote it, with a policy that lets only it run (by its hash); no other
/// page has a script or lets one run.
fn without_own_script(page: &str, html: &str) -> String {
    use tgs_core::report::site::{script_hash, SCRIPT};
    let own = format!("<script>{SCRIPT}</script>");
    if page == "index.html" {
        assert_eq!(html.matches("<script").count(), 1, "{page}");
        assert_eq!(html.matches(&own).count(), 1, "{page}");
        let policy = format!(
            "content=\"default-src 'none'; script-src '{}'; style-src",
            script_hash()
        );
        assert!(html.contains(&policy), "{page}");
    } else {
        assert!(!html.contains("script-src"), "{page}");
    }
    html.replace(&own, "")
}

#[test]
fn dashboard_writes_an_escaped_self_contained_site() {
    let env = TestEnv::new();
    let repo = fixture(&env);
    let out_dir = env.path().join("site");
    let (code, stdout, err) = run(repo
        .tgs()
        .args(["server", "dashboard", "--out"])
        .arg(&out_dir));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        stdout.trim(),
        out_dir.join("index.html").display().to_string()
    );
    let read = |rel: &str| std::fs::read_to_string(out_dir.join(rel)).unwrap();
    let index = read("index.html");

    for (status, n) in [
        ("queued", 2),
        ("in_progress", 1),
        ("completed", 2),
        ("failed", 1),
    ] {
        assert!(
            index.contains(&format!("id=\"count-{status}\">{n}<")),
            "{status}"
        );
    }
    assert!(index.contains("id=\"count-needs-human\">2<"));
    assert!(index.contains("<a href=\"thoughts/aaaaaaa-first.html\">First thing</a>"));
    assert!(index.contains("href=\"https://github.com/o/r/pull/1\""));
    assert!(index.contains("<span class=\"badge failed\">failed</span>"));
    assert!(index.contains("id=\"m-success-rate\">33.3% (2 of 6)<"));
    assert!(index.contains(
        "id=\"m-total-cost\" title=\"the total covers the 5 of 6 sessions whose agent reported a cost\">$1.44 (5 of 6 sessions)<"
    ));
    for chart in [
        "chart-throughput",
        "chart-success",
        "chart-duration",
        "chart-cost",
    ] {
        assert!(
            index.contains(&format!("<figure id=\"{chart}\">")),
            "{chart}"
        );
    }
    // The hostile title is text, never markup; its javascript: PR link is no link.
    assert!(index.contains(
        "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"
    ));
    assert!(!index.contains("href=\"javascript:"));

    let pages: Vec<String> = {
        let mut v: Vec<String> = std::fs::read_dir(out_dir.join("thoughts"))
            .unwrap()
            .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        pages,
        [
            "aaaaaaa-first.html",
            "bbbbbbb-second.html",
            "ccccccc-third.html",
            "ddddddd-hostile.html",
            "eeeeeee-fifth.html",
            "fffffff-closed.html"
        ]
    );
    let a = read("thoughts/aaaaaaa-first.html");
    assert!(a.contains("<h2>Sessions (2)</h2>"));
    assert!(a.contains("<h2>Transcripts (2)</h2>"));
    assert!(a.contains("attempt one\nfailed here</pre>"));
    assert!(a.contains("&lt;b&gt;tests&lt;/b&gt; failed"));
    assert!(a.contains("href=\"../index.html\""));
    let c = read("thoughts/ccccccc-third.html");
    assert!(c.contains("&lt;script&gt;alert(&#39;log&#39;)&lt;/script&gt;\nsegfault"));
    let d = read("thoughts/ddddddd-hostile.html");
    assert!(d.contains("<h1>&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x onerror=alert(2)&gt;</h1>"));

    // Self-contained: nothing is loaded; the only absolute links are the PRs.
    for page in std::iter::once("index.html".to_owned())
        .chain(pages.iter().map(|p| format!("thoughts/{p}")))
    {
        let html = without_own_script(&page, &read(&page));
        let lower = html.to_ascii_lowercase();
        for bad in [
            "<script", "<img", "<iframe", "<link", "<object", "<embed", "url(", "@import",
        ] {
            assert!(!lower.contains(bad), "{page} contains {bad}");
        }
        // The hostile `javascript:` PR URL is shown as text, never as an attribute.
        assert!(!lower.contains("=\"javascript:"), "{page}");
        for (attr, value) in references(&html) {
            let r = format!("{attr}={value}");
            assert_eq!(attr, "href", "{page}: {r}");
            let external = value.starts_with("https://github.com/o/r/pull/");
            assert!(
                external || !value.contains(':') && !value.starts_with("//"),
                "{page}: {r}"
            );
        }
    }

    let index_refs = references(&index);
    assert!(index_refs.contains(&("href", "thoughts/aaaaaaa-first.html".into())));
    assert!(index_refs.contains(&("href", "https://github.com/o/r/pull/6".into())));

    // Deterministic: a second run writes nothing new.
    let before: Vec<(String, String)> = std::iter::once("index.html".to_owned())
        .chain(pages.iter().map(|p| format!("thoughts/{p}")))
        .map(|p| (read(&p), p))
        .collect();
    let j = ok_json(
        &repo,
        &["server", "dashboard", "--out", out_dir.to_str().unwrap()],
    );
    assert_eq!(j["files"], 7);
    assert_eq!(j["written"], json!([]));
    assert_eq!(j["unchanged"], 8);
    assert_eq!(j["removed"], json!([]));
    for (content, p) in before {
        assert_eq!(read(&p), content, "{p}");
    }

    // A thought removed from the backlog but still in the records keeps its page;
    // one with no trace at all loses it.
    let mut b = backlog("in_progress");
    b["thoughts"]
        .as_array_mut()
        .unwrap()
        .retain(|e| e["dir"] != E && e["dir"] != A);
    repo.put_state(&[("tgs/server/backlog.json", &b.to_string())]);
    let j = ok_json(
        &repo,
        &["server", "dashboard", "--out", out_dir.to_str().unwrap()],
    );
    assert_eq!(j["removed"], json!(["thoughts/eeeeeee-fifth.html"]));
    assert!(read("index.html").contains("No longer in the backlog"));
    assert!(out_dir.join("thoughts/aaaaaaa-first.html").exists());
}

// A history split by month, with the files of the layout before the split
// as its oldest part and finished entries in the archive: the views give the
// figures tgs gave when it read every file whole (set TGS_TEST_REFERENCE_BIN
// to an older tgs to compare the outputs with it as well).
const T1: &str = "tgs/thoughts/a000001-merged";
const T2: &str = "tgs/thoughts/a000002-closed";
const T3: &str = "tgs/thoughts/a000003-retried";
const L1: &str = "tgs/thoughts/b000001-after-merged";
const L2: &str = "tgs/thoughts/b000002-after-closed";
const L3: &str = "tgs/thoughts/b000003-running";

fn monthly_fixture(env: &TestEnv) -> TestRepo<'_> {
    let repo = env.local_repo("m");
    let live = json!({"version": "1", "thoughts": [
        {"dir": L1, "title": "After merged", "priority": 1, "status": "queued", "depends_on": [T1]},
        {"dir": L2, "title": "After closed", "priority": 2, "status": "queued", "depends_on": [T2]},
        {"dir": L3, "title": "Running", "status": "in_progress", "claimed_by": "w1",
         "claimed_at": "2026-01-15T11:00:00Z", "lease_expires_at": "2026-01-15T13:00:00Z", "attempts": 1},
        {"dir": T3, "title": "Retried, live again", "status": "failed", "attempts": 2, "last_error": "boom"}
    ]});
    let entry = |dir: &str, pr: &str| {
        json!({"dir": dir, "title": dir, "status": "completed", "completed_at": "2025-12-20T10:00:00Z",
               "pr_url": "https://github.com/o/r/pull/9", "pr_state": pr})
        .to_string()
    };
    let h = "thought,worker,agent,started,ended,duration_s,outcome,attempt,exit_code,turns,cost_usd,input_tokens,output_tokens,pr_url\n";
    let row = |t: &str, day: &str, dur: u32, outcome: &str, attempt: u32, cost: &str| {
        format!("{t},w1,claude-code,{day}T10:00:00Z,{day}T11:00:00Z,{dur}.0,{outcome},{attempt},0,3,{cost},1,1,\n")
    };
    let audit = |t: &str, day: &str, action: &str| {
        format!("{{\"time\":\"{day}T10:00:00Z\",\"worker\":\"w1\",\"action\":\"{action}\",\"thought\":\"{t}\",\"to\":\"queued\"}}\n")
    };
    let legacy_metrics = format!("{h}{}", row(T1, "2025-11-02", 600, "failed", 1, "0.2500"));
    let dec = format!(
        "{h}{}{}{}not,a,row\n",
        row(T1, "2025-12-03", 1200, "success", 2, "0.5000"),
        row(T2, "2025-12-04", 300, "success", 1, ""),
        row(T3, "2025-12-05", 900, "failed", 1, "0.1250"),
    );
    let jan = format!(
        "{h}{}{}{}",
        row(T3, "2026-01-06", 1800, "success", 2, "1.0000"),
        row(T1, "2026-01-07", 60, "success", 1, "0.0625"),
        row(L3, "2026-01-08", 3600, "timeout", 1, ""),
    );
    repo.put_state(&[
        ("tgs/server/backlog.json", &live.to_string()),
        (
            "tgs/server/archive/2025-12.jsonl",
            &format!("{}\n{}\n", entry(T1, "merged"), entry(T2, "closed")),
        ),
        (
            "tgs/server/archive/2026-01.jsonl",
            &format!("{}\nnot json\n", entry(T3, "merged")),
        ),
        ("tgs/server/metrics.csv", &legacy_metrics),
        ("tgs/server/metrics/2025-12.csv", &dec),
        ("tgs/server/metrics/2026-01.csv", &jan),
        ("tgs/server/audit.jsonl", &audit(T1, "2025-11-01", "add")),
        (
            "tgs/server/audit/2025-12.jsonl",
            &format!(
                "{}{}",
                audit(T2, "2025-12-01", "add"),
                audit(T1, "2025-12-03", "complete")
            ),
        ),
        (
            "tgs/server/audit/2026-01.jsonl",
            &format!("{}{{bad\n", audit(T3, "2026-01-06", "complete")),
        ),
    ]);
    repo
}

#[test]
fn views_of_a_history_by_month_give_the_same_figures() {
    let env = TestEnv::new();
    let repo = monthly_fixture(&env);
    let m = ok_json(&repo, &["server", "metrics"]);
    assert_eq!(
        (
            &m["sessions"],
            &m["succeeded"],
            &m["thoughts"],
            &m["retries"]
        ),
        (&json!(7), &json!(4), &json!(4), &json!(3))
    );
    // T1 failed first (before the split), T2 succeeded at once, T3 failed
    // first; L3 timed out: one first-try success of four.
    assert_eq!(m["first_try_successes"], 1);
    assert_eq!(m["cost_usd"], 1.9375);
    assert_eq!(
        m["duration"],
        json!({"median_s": 900.0, "p90_s": 3600.0, "max_s": 3600.0})
    );
    assert_eq!(m["per_day"].as_array().unwrap().len(), 68);

    // January only: T1's success on the 7th and T3's on the 6th are
    // retries, known from the months before the window.
    let s = ok_json(&repo, &["server", "metrics", "--since", "2026-01-01"]);
    assert_eq!(
        (
            &s["sessions"],
            &s["succeeded"],
            &s["thoughts"],
            &s["retries"]
        ),
        (&json!(3), &json!(2), &json!(3), &json!(2))
    );
    assert_eq!(
        (&s["first_try_successes"], &s["cost_usd"]),
        (&json!(0), &json!(1.0625))
    );
    let firsts: Vec<(&str, bool, u64)> = s["per_thought"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["thought"].as_str().unwrap(),
                t["first_try_success"].as_bool().unwrap(),
                t["retries"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(firsts, [(T1, false, 1), (T3, false, 1), (L3, false, 0)]);

    let st = ok_json(&repo, &["server", "status"]);
    assert_eq!(
        st["counts"],
        json!({"queued": 2, "in_progress": 1, "handover_pending": 0, "completed": 2, "failed": 1, "needs_input": 0, "total": 6})
    );
    // L1's dependency is archived and merged; L2's was closed unmerged.
    assert_eq!(dirs(&st["next"]), [L1]);
    assert_eq!(dirs(&st["waiting"]), [L2]);
    assert_eq!(st["waiting"][0]["blocked_by"], json!([T2]));
    let human: Vec<(&str, &str)> = st["needs_human"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["dir"].as_str().unwrap(), a["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(human, [(T3, "failed"), (T2, "pr_closed")]);

    let site = env.path().join("site");
    let j = ok_json(
        &repo,
        &["server", "dashboard", "--out", site.to_str().unwrap()],
    );
    assert_eq!(j["files"], 7);
    let read = |rel: &str| std::fs::read_to_string(site.join(rel)).unwrap();
    let t1 = read("thoughts/a000001-merged.html");
    assert!(
        t1.contains("<h2>Sessions (3)</h2>") && t1.contains("<h2>History (2)</h2>"),
        "{t1}"
    );
    let t3 = read("thoughts/a000003-retried.html");
    assert!(
        t3.contains("<span class=\"badge failed\">failed</span>"),
        "the live entry"
    );
    let index = read("index.html");
    assert!(
        index.contains("id=\"m-success-rate\">57.1% (4 of 7)<"),
        "{index}"
    );
    assert!(index.contains("id=\"count-completed\">2<"));
    assert!(index
        .contains("<details class=\"month\" id=\"done-2025-12\"><summary>2025-12 · 2 completed"));

    if let Some(reference) = std::env::var_os("TGS_TEST_REFERENCE_BIN") {
        same_as_reference(&env, &repo, Path::new(&reference), &site);
    }
}

/// The outputs of `reference` (an older tgs) on the same state: the same
/// JSON, the same thought pages, and the index the same up to its backlog.
fn same_as_reference(env: &TestEnv, repo: &TestRepo, reference: &Path, site: &Path) {
    let run_ref = |args: &[&str]| {
        let mut c = Command::new(reference);
        c.current_dir(&repo.root);
        env.pin(&mut c);
        let out = c.args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    for args in [
        &["--json", "server", "metrics"][..],
        &["--json", "server", "metrics", "--since", "2026-01-01"],
        &["--json", "server", "metrics", "--since", "2025-12-04"],
        &["--json", "server", "status"],
    ] {
        let ours: Value = serde_json::from_str(&ok(repo, args)).unwrap();
        let theirs: Value = serde_json::from_str(&run_ref(args)).unwrap();
        assert_eq!(ours, theirs, "{args:?}");
    }
    let old = env.path().join("site-reference");
    run_ref(&["server", "dashboard", "--out", old.to_str().unwrap()]);
    let pages = |dir: &Path| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = std::fs::read_dir(dir.join("thoughts"))
            .unwrap()
            .map(|d| d.unwrap().path())
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read_to_string(p).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(pages(site), pages(&old));
    let upto_backlog = |dir: &Path| {
        let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
        let main = html.split("<main>").nth(1).unwrap().to_owned();
        main.split("<section id=\"backlog\">")
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(upto_backlog(site), upto_backlog(&old));
}
