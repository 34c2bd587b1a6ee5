//! `tgs_core::github` against a loopback fake of GitHub's REST API
//! (`support/github.rs`): idempotent PR opening (including the "already
//! exists" race), labels and reviewers, error messages, retries of rate
//! limits and 5xx answers, failure-alert issues, and PR states.
//!
//! Waits are recorded by the retry policy instead of slept, so the tests
//! check what a rate limit asked for and still run in milliseconds.

#[path = "support/github.rs"]
mod fake;
#[path = "support/loopback.rs"]
mod loopback;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fake::{FakeGitHub, Fault};
use serde_json::json;
use tgs_core::forge::{Forge, PullRequest};
use tgs_core::github::{
    pr_body, pr_title, FailureAlert, GitHub, PrBodyInput, PrState, RetryPolicy, FAILED_LABEL,
};

const TOKEN: &str = "ghp_test_token_0123456789";
const PULLS: &str = "/repos/acme/widgets/pulls";
const ISSUES: &str = "/repos/acme/widgets/issues";

type Slept = Arc<Mutex<Vec<Duration>>>;

/// A client for the fake's acme/widgets whose waits are recorded, not slept.
fn client_with(api: &str, token: &str, repo: &str) -> (GitHub, Slept) {
    let vars = [
        ("GITHUB_TOKEN", token.to_owned()),
        ("GITHUB_REPOSITORY", repo.to_owned()),
        ("GITHUB_API_URL", api.to_owned()),
    ];
    let gh = GitHub::from_env(
        |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()),
        None,
    )
    .unwrap()
    .expect("a token is set");
    let slept: Slept = Arc::default();
    let record = slept.clone();
    let policy = RetryPolicy::new(
        4,
        Duration::from_millis(10),
        Duration::from_millis(40),
        Duration::from_secs(120),
    )
    .with_sleep(move |d| record.lock().unwrap().push(d));
    (gh.with_retry_policy(policy), slept)
}

fn client(fake: &FakeGitHub) -> (GitHub, Slept) {
    client_with(&fake.api_url(), TOKEN, "acme/widgets")
}

fn slept(s: &Slept) -> Vec<Duration> {
    s.lock().unwrap().clone()
}

fn pr(head: &str, title: &str) -> PullRequest {
    PullRequest {
        head: head.into(),
        base: "main".into(),
        title: pr_title("feat:", title),
        body: pr_body(&PrBodyInput {
            thought_dir: format!("tgs/thoughts/{title}"),
            title: title.into(),
            implementation_summary: Some("Did it.".into()),
            research_path: "research.md".into(),
            plan_path: "plan.md".into(),
            repo_web_url: None,
            base_branch: "main".into(),
            agent: "claude".into(),
            attempts: 1,
            duration_secs: 60,
            turns: Some(3),
            cost_usd: None,
        }),
        draft: false,
        labels: Vec::new(),
        reviewers: Vec::new(),
    }
}

fn alert(dir: &str, attempts: u32) -> FailureAlert {
    FailureAlert {
        thought_dir: dir.into(),
        title: "Add login".into(),
        attempts,
        last_error: format!("verify failed on attempt {attempts}"),
        log_tail: "cargo test\nerror: 1 failed".into(),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn opens_one_pr_per_head_and_updates_it_afterwards() {
    let fake = FakeGitHub::start("acme", "widgets", TOKEN);
    let (gh, _) = client(&fake);
    let mut first = pr("tgs/add-login", "add-login");
    first.draft = true;
    let opened = gh.open_or_update_pr(&first).unwrap();
    assert_eq!(opened.number, 1);
    assert!(!opened.updated);
    assert_eq!(opened.url, format!("{}/acme/widgets/pull/1", fake::WEB));

    let pulls = fake.pulls();
    assert_eq!(pulls.len(), 1);
    let p = &pulls[0];
    assert_eq!(
        (p.head.as_str(), p.base.as_str()),
        ("tgs/add-login", "main")
    );
    assert_eq!(p.title, "feat: add-login");
    assert_eq!(p.body, first.body);
    assert!(p.draft && p.body.contains("<p>Did it.</p>"), "{}", p.body);

    // The lookup names the head as owner:branch; headers are GitHub's.
    let reqs = fake.requests();
    assert_eq!(
        reqs[0].path,
        format!("{PULLS}?state=open&head=acme%3Atgs%2Fadd-login&per_page=100")
    );
    for r in &reqs {
        assert_eq!(r.header("authorization"), Some(&*format!("Bearer {TOKEN}")));
        assert_eq!(r.header("accept"), Some("application/vnd.github+json"));
        assert_eq!(r.header("x-github-api-version"), Some("2022-11-28"));
        assert!(r.header("user-agent").unwrap().starts_with("tgs/"));
    }
    assert_eq!(
        fake.routes(),
        [format!("GET {PULLS}"), format!("POST {PULLS}")]
    );

    // A retry of the thought updates the PR in place.
    let second = pr("tgs/add-login", "add-login-v2");
    let again = gh.open_or_update_pr(&second).unwrap();
    assert_eq!((again.number, again.updated), (1, true));
    assert_eq!(again.url, opened.url);
    let pulls = fake.pulls();
    assert_eq!(pulls.len(), 1, "never two PRs for one head");
    assert_eq!(pulls[0].title, "feat: add-login-v2");
    assert_eq!(pulls[0].body, second.body);
    assert_eq!(
        fake.routes()[2..],
        [format!("GET {PULLS}"), format!("PATCH {PULLS}/1")]
    );
}

#[test]
fn already_exists_answer_turns_into_an_update() {
    // An earlier run opened the PR and crashed before recording it; the
    // lookup misses it (GitHub opened it just after tgs looked).
    let fake = FakeGitHub::start("acme", "widgets", TOKEN);
    let existing = fake.add_pull("tgs/x", "main", "old title");
    fake.hide_open_pulls(1);
    let (gh, _) = client(&fake);
    let opened = gh.open_or_update_pr(&pr("tgs/x", "x")).unwrap();
    assert_eq!((opened.number, opened.updated), (existing, true));
    let pulls = fake.pulls();
    assert_eq!(pulls.len(), 1);
    assert_eq!(pulls[0].title, "feat: x");
    assert_eq!(
        fake.routes(),
        [
            format!("GET {PULLS}"),
            format!("POST {PULLS}"),
            format!("GET {PULLS}"),
            format!("PATCH {PULLS}/{existing}"),
        ]
    );
}

#[test]
fn labels_and_reviewers_are_added() {
    let fake = FakeGitHub::start("acme", "widgets", TOKEN);
    let (gh, _) = client(&fake);
    let mut p = pr("tgs/y", "y");
    p.labels = vec!["tgs".into(), "automated".into()];
    p.reviewers = vec!["alice".into(), "acme/core".into()];
    let opened = gh.open_or_update_pr(&p).unwrap();
    let n = opened.number;
    let pull = fake.pulls().remove(0);
    assert_eq!(pull.labels, ["tgs", "automated"]);
    assert_eq!(pull.reviewers, ["alice"]);
    assert_eq!(pull.team_reviewers, ["core"]);
    assert_eq!(
        fake.routes()[2..],
        [
            format!("POST {ISSUES}/{n}/labels"),
            format!("POST {PULLS}/{n}/requested_reviewers"),
        ]
    );
    // A reviewer GitHub will not take does not fail a PR that is open.
    let mut q = pr("tgs/z", "z");
    q.reviewers = vec!["not-a-collaborator".into()];
    let opened = gh.open_or_update_pr(&q).unwrap();
    assert!(!opened.updated);
    assert_eq!(fake.pulls().len(), 2);
}

#[test]
fn refusals_read_well() {
    let fake = FakeGitHub::start("acme", "widgets", TOKEN);
    let err = |gh: &GitHub, head: &str| {
        gh.open_or_update_pr(&pr(head, "t"))
            .unwrap_err()
            .to_string()
    };

    let (bad_token, _) = client_with(&fake.api_url(), "ghp_wrong_secret", "acme/widgets");
    let m = err(&bad_token, "tgs/a");
    assert!(
        m.contains("the token was rejected (TGS_GITHUB_TOKEN/GITHUB_TOKEN/GH_TOKEN"),
        "{m}"
    );
    assert!(
        !m.contains("ghp_wrong_secret"),
        "the token is never shown: {m}"
    );

    let (gh, _) = client(&fake);
    fake.fault(Fault::new(
        &format!("POST {PULLS}"),
        403,
        json!({ "message": "Resource not accessible by personal access token" }),
    ));
    let m = err(&gh, "tgs/b");
    assert!(
        m.contains("lacks the \"pull requests: write\" permission on acme/widgets"),
        "{m}"
    );

    let (missing, _) = client_with(&fake.api_url(), TOKEN, "acme/gone");
    let m = err(&missing, "tgs/c");
    assert!(
        m.contains("repository acme/gone not found, or the token cannot see it"),
        "{m}"
    );

    fake.no_commits_for("tgs/d");
    let m = err(&gh, "tgs/d");
    assert!(m.ends_with("): No commits between main and tgs/d"), "{m}");
    assert!(
        m.starts_with("GitHub (opening a pull request for tgs/d)"),
        "{m}"
    );
    assert!(fake.pulls().is_empty());

    // Nothing listens there: said so, after the bounded retries.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (nowhere, slept_) = client_with(&format!("http://127.0.0.1:{port}"), TOKEN, "acme/widgets");
    let m = err(&nowhere, "tgs/e");
    assert!(m.contains("cannot reach http://127.0.0.1:"), "{m}");
    assert_eq!(slept(&slept_).len(), 3, "4 tries, 3 waits");
}

#[test]
fn too_many_requests_waits_as_retry_after_says() {
    let fake = FakeGitHub::start("acme", "widgets", TOKEN);
    let (gh, waits) = client(&fake);
    fake.fault(
        Fault::new(
            &format!("GET {PULLS}"),
            429,
            json!({ "message": "Too many requests" }),
        )
        .header("retry-after", "3"),
    );
    let opened = gh.open_or_update_pr(&pr("tgs/r", "r")).unwrap();
    assert!(!opened.updated);
    assert_eq!(slept(&waits), [Duration::from_secs(3)]);
    assert_eq!(fake.pulls().len(), 1);
}

#[test]
fn bad_gateway_is_retried_with_backoff() {
    let fake = FakeGitHub::start("acme", "widgets", TOKEN);
    let (gh, waits) = client(&fake);
    fake.fault(
        Fault::new(
            &format!("POST {PULLS}"),
            502,
            json!({ "message": "Bad Gateway" }),
        )
        .times(2),
    );
    let opened = gh.open_or_update_pr(&pr("tgs/g", "g")).unwrap();
    assert_eq!(opened.number, 1);
    assert_eq!(
        slept(&waits),
        [Duration::from_millis(10), Duration::from_millis(20)]
    );
    assert_eq!(fake.pulls().len(), 1);

    // A lasting outage gives up after max_attempts, saying so.
    fake.fault(Fault::new(&format!("GET {PULLS}/1"), 503, json!({})).times(10));
    let m = gh.pr_state("1").unwrap_err().to_string();
    assert!(
        m.contains("GitHub answered HTTP 503 (4 tries); try again later"),
        "{m}"
    );
}

#[test]
fn exhausted_rate_limit_waits_for_the_reset() {
    let fake = FakeGitHub::start("acme", "widgets", TOKEN);
    let (gh, waits) = client(&fake);
    let reset = (unix_now() + 30).to_string();
    fake.fault(
        Fault::new(
            &format!("GET {PULLS}"),
            403,
            json!({ "message": "API rate limit exceeded" }),
        )
        .header("x-ratelimit-remaining", "0")
        .header("x-ratelimit-reset", &reset),
    );
    gh.open_or_update_pr(&pr("tgs/l", "l")).unwrap();
    let w = slept(&waits);
    assert_eq!(w.len(), 1);
    assert!((29..=32).contains(&w[0].as_secs()), "{w:?}");

    // A reset beyond what tgs waits fails at once instead of hanging.
    let reset = (unix_now() + 3600).to_string();
    fake.fault(
        Fault::new(
            &format!("GET {PULLS}"),
            403,
            json!({ "message": "API rate limit exceeded" }),
        )
        .header("x-ratelimit-remaining", "0")
        .header("x-ratelimit-reset", &reset),
    );
    let before = fake.requests().len();
    let m = gh
        .open_or_update_pr(&pr("tgs/m", "m"))
        .unwrap_err()
        .to_string();
    assert!(m.contains("rate limit is exhausted (HTTP 403)"), "{m}");
    assert_eq!(fake.requests().len(), before + 1, "no retry");
    assert_eq!(slept(&waits).len(), 1, "no wait either");
}

#[test]
fn failure_alert_opens_once_then_comments_and_resolves() {
    let fake = FakeGitHub::start("acme", "widgets", TOKEN);
    let (gh, _) = client(&fake);
    // A PR carrying the same marker and label must not be taken for the alert.
    let decoy = fake.add_pull("tgs/login", "main", "feat: login");
    fake.edit_pull(decoy, |p| {
        p.body = "<!-- tgs-thought: tgs/thoughts/login -->\n".into();
        p.labels = vec![FAILED_LABEL.into()];
    });

    let url = gh.alert_failure(&alert("tgs/thoughts/login", 1)).unwrap();
    let issues = fake.issues();
    assert_eq!(issues.len(), 1);
    let issue = &issues[0];
    assert_eq!(
        url,
        format!("{}/acme/widgets/issues/{}", fake::WEB, issue.number)
    );
    assert_eq!(issue.title, "tgs: Add login failed");
    assert_eq!(issue.labels, [FAILED_LABEL]);
    assert!(
        issue
            .body
            .starts_with("<!-- tgs-thought: tgs/thoughts/login -->\n"),
        "{}",
        issue.body
    );
    assert!(
        issue.body.contains("verify failed on attempt 1") && issue.body.contains("error: 1 failed")
    );

    // The second failure comments on the same issue.
    let again = gh.alert_failure(&alert("tgs/thoughts/login", 2)).unwrap();
    assert_eq!(again, url);
    let issues = fake.issues();
    assert_eq!(issues.len(), 1, "one issue per thought");
    assert_eq!(issues[0].comments.len(), 1);
    assert!(issues[0].comments[0].contains("verify failed on attempt 2"));

    // Another thought gets its own issue.
    let other = gh.alert_failure(&alert("tgs/thoughts/login-2", 1)).unwrap();
    assert_ne!(other, url);
    assert_eq!(fake.issues().len(), 2);

    // Success closes the thought's issue with a comment; then nothing is open.
    let pr_url = "https://github.example/acme/widgets/pull/9";
    let closed = gh
        .resolve_alert("tgs/thoughts/login", Some(pr_url))
        .unwrap();
    assert_eq!(closed.as_deref(), Some(url.as_str()));
    let issue = fake
        .issues()
        .into_iter()
        .find(|i| i.number == issues[0].number)
        .unwrap();
    assert_eq!(issue.state, "closed");
    assert_eq!(issue.state_reason.as_deref(), Some("completed"));
    assert!(issue.comments.last().unwrap().contains(pr_url));
    assert_eq!(gh.resolve_alert("tgs/thoughts/login", None).unwrap(), None);
    let still_open: Vec<_> = fake
        .issues()
        .into_iter()
        .filter(|i| i.state == "open")
        .collect();
    assert_eq!(still_open.len(), 1, "the other thought's alert stays open");

    // After it was closed, a new failure opens a new issue.
    let fresh = gh.alert_failure(&alert("tgs/thoughts/login", 3)).unwrap();
    assert_ne!(fresh, url);
}

#[test]
fn a_marker_quoted_in_an_alert_ties_it_to_no_other_thought() {
    let fake = FakeGitHub::start("acme", "widgets", TOKEN);
    let (gh, _) = client(&fake);
    // An agent's output (in the alert's log tail) quotes another thought's marker.
    let mut a = alert("tgs/thoughts/evil", 1);
    a.log_tail = "done\n<!-- tgs-thought: tgs/thoughts/login -->\n".into();
    let evil = gh.alert_failure(&a).unwrap();
    // The other thought's success closes nothing of it; its failure gets its own issue.
    assert_eq!(gh.resolve_alert("tgs/thoughts/login", None).unwrap(), None);
    let login = gh.alert_failure(&alert("tgs/thoughts/login", 1)).unwrap();
    assert_ne!(login, evil);
    let issues = fake.issues();
    assert_eq!(issues.len(), 2);
    assert!(issues
        .iter()
        .all(|i| i.state == "open" && i.comments.is_empty()));
}

#[test]
fn alert_issue_creation_is_not_repeated_blindly() {
    let fake = FakeGitHub::start("acme", "widgets", TOKEN);
    let (gh, waits) = client(&fake);
    fake.fault(Fault::new(
        &format!("POST {ISSUES}"),
        502,
        json!({ "message": "Bad Gateway" }),
    ));
    let url = gh.alert_failure(&alert("tgs/thoughts/flaky", 1)).unwrap();
    assert!(url.ends_with("/issues/1"), "{url}");
    assert_eq!(fake.issues().len(), 1);
    // After the 502 it looked again before creating.
    assert_eq!(
        fake.routes(),
        [
            format!("GET {ISSUES}"),
            format!("POST {ISSUES}"),
            format!("GET {ISSUES}"),
            format!("POST {ISSUES}"),
        ]
    );
    assert_eq!(slept(&waits).len(), 1);
}

#[test]
fn pr_state_open_merged_closed() {
    let fake = FakeGitHub::start("acme", "widgets", TOKEN);
    let (gh, _) = client(&fake);
    let open = fake.add_pull("tgs/o", "main", "o");
    let merged = fake.add_pull("tgs/m", "main", "m");
    let closed = fake.add_pull("tgs/c", "main", "c");
    fake.close_pull(merged, true);
    fake.close_pull(closed, false);
    assert_eq!(gh.pr_state(&open.to_string()).unwrap(), PrState::Open);
    let url = format!("{}/acme/widgets/pull/{merged}", fake::WEB);
    assert_eq!(gh.pr_state(&url).unwrap(), PrState::Merged);
    assert_eq!(
        gh.pr_state(&format!("#{closed}")).unwrap(),
        PrState::ClosedUnmerged
    );
    let m = gh.pr_state("99").unwrap_err().to_string();
    assert!(m.contains("not found"), "{m}");
    let m = gh
        .pr_state("https://github.com/someone/else/pull/1")
        .unwrap_err()
        .to_string();
    assert!(m.contains("not of acme/widgets"), "{m}");
}
