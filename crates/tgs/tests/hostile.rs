//! The hostile-input corpus (`tests/hostile/`): thought names with shell
//! metacharacters, `..`, absolute paths, control characters, look-alikes and
//! 10 KB of text; titles, summaries and agent output meant to break out of
//! a PR body, an issue, a commit message, a branch name or the dashboard;
//! thoughts whose files are symlinks out of the repository; backlog files
//! truncated, of wrong types, with duplicate keys, huge, of a future
//! version, with a BOM. Each is refused with a clear error or rendered
//! inert, and nothing is written that should not be.

mod common;
#[path = "support/github.rs"]
mod github;
#[path = "support/loopback.rs"]
mod loopback;

use std::path::Path;

use common::{run, script, TestEnv, TestRepo};
use github::FakeGitHub;
use serde_json::Value;

const TOKEN: &str = "ghs_hostile_token_0123456789";

fn corpus(file: &str, key: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/hostile")
        .join(file);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// Every file under `dir`, as [`common::snapshot`] reads it, skipping `.git` (to see that a
/// command wrote nothing).
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    common::snapshot(dir, &[".git"])
}

/// What is on origin: every ref and its commit.
fn remote_refs(repo: &TestRepo) -> String {
    repo.git(&["ls-remote", "origin"])
}

#[test]
fn hostile_names_are_refused_and_change_nothing() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    repo.approved("aaaaaaa-first", "First");
    repo.publish("thoughts");
    let ok = repo
        .tgs()
        .args(["server", "backlog", "add", "aaaaaaa-first"])
        .output()
        .unwrap();
    assert!(ok.status.success());
    let refs = remote_refs(&repo);
    let files = snapshot(env.path());
    let names = corpus("names.json", "names");
    assert!(names.len() >= 40);
    for name in &names {
        let shown: String = name.chars().take(40).collect();
        for cmd in [
            &["server", "backlog", "add", "--"][..],
            &["server", "backlog", "show", "--"],
            &["server", "backlog", "remove", "--"],
            &["server", "backlog", "priority", "--"],
            &["server", "run", "--thought"],
            &["server", "logs", "--"],
        ] {
            let mut c = repo.tgs();
            c.args(cmd).arg(name);
            if cmd[2] == "priority" {
                c.arg("5");
            }
            let (code, out, err) = run(&mut c);
            assert_eq!(code, 2, "{cmd:?} {shown:?}: {out}{err}");
            assert!(err.starts_with("error: "), "{cmd:?} {shown:?}: {err}");
            assert!(!err.contains("panicked"), "{err}");
            // The name is shown, never acted on: no control character of it
            // reaches the terminal.
            assert!(
                !err.chars()
                    .any(|c| c.is_control() && c != '\n' && c != '\t'),
                "{cmd:?} {shown:?}: {err:?}"
            );
        }
    }
    assert_eq!(remote_refs(&repo), refs, "nothing reached origin");
    assert_eq!(snapshot(env.path()), files, "no file was written");
    assert!(!Path::new("/tmp/tgs-pwned").exists());
}

#[test]
fn hostile_titles_make_safe_thought_dirs() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let outside = snapshot(env.path());
    for name in corpus("names.json", "names")
        .iter()
        .chain(&corpus("texts.json", "texts"))
        // An argument cannot hold a NUL.
        .filter(|n| !n.contains('\0'))
    {
        let (code, out, err) = run(repo.tgs().args(["thought", "new", "--title"]).arg(name));
        assert!(code == 0 || code == 2, "{name:?}: {out}{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // Every thought made is a plain directory right under tgs/thoughts,
    // named with [a-z0-9-] only.
    for e in std::fs::read_dir(repo.path("tgs/thoughts"))
        .unwrap()
        .flatten()
    {
        let n = e.file_name().to_string_lossy().into_owned();
        assert!(
            !n.is_empty()
                && n.len() <= 80
                && n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{n:?}"
        );
        assert!(e.file_type().unwrap().is_dir());
    }
    // Nothing appeared outside the repository.
    let now: Vec<_> = snapshot(env.path())
        .into_iter()
        .filter(|(p, _)| !p.starts_with(&repo.root.display().to_string()))
        .collect();
    let before: Vec<_> = outside
        .into_iter()
        .filter(|(p, _)| !p.starts_with(&repo.root.display().to_string()))
        .collect();
    assert_eq!(now, before);
}

/// Markup outside fenced code blocks that is not escaped: `<` without a
/// backslash (but for tgs's own marker and `<sub>`), and links.
/// One of the tags tgs itself writes when it renders the implementation
/// summary's markdown (its text escaped inside them).
fn tgs_tag(at: &str) -> bool {
    const TAGS: &[&str] = &[
        "p",
        "h4",
        "h5",
        "h6",
        "ul",
        "ol",
        "li",
        "code",
        "pre",
        "strong",
        "em",
        "del",
        "blockquote",
        "hr",
        "br",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "a",
        "input",
    ];
    let rest = at.strip_prefix('<').unwrap_or(at);
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    TAGS.iter().any(|t| {
        rest.strip_prefix(t)
            .is_some_and(|after| after.starts_with(['>', ' ', '/']))
    })
}

fn live_markup(body: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut fence: Option<String> = None;
    for line in body.lines() {
        let t = line.trim_start();
        if let Some(f) = &fence {
            if t.starts_with(f.as_str()) && t.trim_end().chars().all(|c| c == '`') {
                fence = None;
            }
            continue;
        }
        if t.starts_with("```") {
            fence = Some(t.chars().take_while(|c| *c == '`').collect());
            continue;
        }
        if t.starts_with("<!-- tgs-") || t.starts_with("<sub>") {
            continue;
        }
        let b = line.as_bytes();
        for (i, c) in b.iter().enumerate() {
            if *c == b'<' && (i == 0 || b[i - 1] != b'\\') && !tgs_tag(&line[i..]) {
                found.push(line.to_owned());
            }
        }
        let lower = line.to_ascii_lowercase();
        if line.contains("](javascript:")
            || line.contains("](https://evil")
            || lower.contains("href=\"javascript:")
            || lower.contains("href=\"data:")
        {
            found.push(line.to_owned());
        }
    }
    found
}

#[test]
fn hostile_text_is_inert_in_prs_issues_commits_branches_and_the_dashboard() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let texts = corpus("texts.json", "texts");
    let store = env.path().join("texts");
    std::fs::create_dir_all(&store).unwrap();
    let mut dirs = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let name = format!("{:07x}-t{i}", 0xa000000 + i);
        // The title is the README's first heading: one line of it.
        let title: String = text.lines().next().unwrap_or("").to_owned();
        dirs.push(repo.approved(&name, &title));
        std::fs::write(store.join(&name), text).unwrap();
    }
    // The agent writes the hostile text as its summary and in its output;
    // the last thought fails, with the text as its error.
    let agent = env.path().join("agent.sh");
    let last = format!("{:07x}-t{}", 0xa000000 + texts.len() - 1, texts.len() - 1);
    script(
        &agent,
        &format!(
            "#!/bin/bash\nset -e\nname=$(basename \"$TGS_THOUGHT_DIR\")\ncat {store}/$name\ncat {store}/$name >&2\nif [ \"$name\" = \"{last}\" ]; then exit 3; fi\necho \"pub fn f_${{name//-/_}}() {{}}\" >> src/lib.rs\ncp {store}/$name \"$TGS_THOUGHT_DIR/implementation.md\"\ngit add -A && git commit -qm \"$(cat {store}/$name)\"\n",
            store = store.display(),
            last = last,
        ),
    );
    repo.write(
        "tgs/tgs.yml",
        &format!(
            "server:\n  agent: test\n  max_attempts: 1\n  agents:\n    test: {{ command: \"{}\" }}\n",
            agent.display()
        ),
    );
    repo.publish("thoughts");
    let gh = FakeGitHub::start("octo", "demo", TOKEN);
    let step = |args: &[&str]| {
        let mut c = repo.tgs();
        c.env("GITHUB_TOKEN", TOKEN)
            .env("GITHUB_REPOSITORY", "octo/demo")
            .env("GITHUB_API_URL", gh.api_url())
            .args(args);
        c
    };
    let (code, _, err) = run(&mut step(&["server", "scan"]));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&mut step(&["server", "run", "--until-empty"]));
    assert_eq!(code, 1, "the last thought failed for good: {err}");
    assert!(!err.contains("panicked"), "{err}");

    let pulls = gh.pulls();
    assert_eq!(pulls.len(), texts.len() - 1, "{err}");
    for p in &pulls {
        assert!(p.title.starts_with("feat: "), "{:?}", p.title);
        assert!(p.title.chars().count() <= 72, "{:?}", p.title);
        assert!(!p.title.chars().any(char::is_control), "{:?}", p.title);
        assert!(
            !p.title.contains("@octocat"),
            "mentions are broken: {:?}",
            p.title
        );
        assert!(
            p.head.starts_with("tgs/a")
                && p.head
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '/'),
            "{}",
            p.head
        );
        // tgs's marker is the first line; one quoted further down is text.
        assert!(
            p.body.starts_with(&format!(
                "<!-- tgs-thought: {} -->\n",
                p.head.replace("tgs/", "tgs/thoughts/")
            )),
            "{}",
            p.body
        );
        assert_eq!(live_markup(&p.body), Vec::<String>::new(), "{}", p.body);
        assert!(!p.body.contains(TOKEN));
    }
    let issues = gh.issues();
    assert_eq!(issues.len(), 1, "{issues:?}");
    let issue = &issues[0];
    assert!(!issue.title.chars().any(char::is_control));
    assert_eq!(
        live_markup(&issue.body),
        Vec::<String>::new(),
        "{}",
        issue.body
    );
    assert!(!issue.body.contains("@octocat"), "{}", issue.body);

    // State commits: one line each, naming dirs only.
    for s in repo.state_subjects(200) {
        assert!(s.starts_with("chore(tgs): "), "{s:?}");
        assert!(!s.chars().any(char::is_control), "{s:?}");
    }
    // The dashboard shows the text, never runs it.
    let out = env.path().join("site");
    let (code, _, err) = run(repo.tgs().args(["server", "dashboard", "--out"]).arg(&out));
    assert_eq!(code, 0, "{err}");
    // tgs's own script, in the index page (allowed by its hash), is its code.
    let own = format!("<script>{}</script>", tgs_core::report::site::SCRIPT);
    for (path, bytes) in snapshot(&out) {
        let html = String::from_utf8_lossy(&bytes)
            .replace(&own, "")
            .to_lowercase();
        // Escaped text holds `&lt;`: every `<` starts one of tgs's own tags
        // (the charts are its inline SVG), none of which runs anything.
        for tag in html
            .split('<')
            .skip(1)
            .map(|t| t.split('>').next().unwrap_or(""))
        {
            let name = tag.split_whitespace().next().unwrap_or("");
            assert!(
                !["script", "img", "iframe", "object", "embed"].contains(&name),
                "{path}: <{tag}>"
            );
            for bad in ["onerror=", "onload=", "javascript:", "evil.example"] {
                assert!(!tag.contains(bad), "{path}: <{tag}>");
            }
        }
    }
    let _ = dirs;
}

#[test]
fn thought_files_that_are_symlinks_out_of_the_repository_are_not_read() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    repo.approved("aaaaaaa-first", "First");
    repo.thought("bbbbbbb-linked", &[("README.md", "# bbbbbbb - Linked\n")]);
    std::os::unix::fs::symlink(
        "/etc/passwd",
        repo.path("tgs/thoughts/bbbbbbb-linked/research.md"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "/etc/hostname",
        repo.path("tgs/thoughts/bbbbbbb-linked/plan.md"),
    )
    .unwrap();
    std::os::unix::fs::symlink("/etc", repo.path("tgs/thoughts/ccccccc-dir")).unwrap();
    repo.publish("thoughts");
    let (code, out, err) = run(repo.tgs().args(["server", "scan", "--json"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("aaaaaaa-first"), "{out}");
    assert!(
        !out.contains("bbbbbbb-linked"),
        "a symlinked plan is no plan: {out}"
    );
    assert!(!out.contains("ccccccc-dir"), "{out}");
    // Added by hand, the thought is a draft: its links are not its files.
    let (code, _, err) = run(repo
        .tgs()
        .args(["server", "backlog", "add", "bbbbbbb-linked"]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("is draft, not approved"), "{err}");
    // A thought folder that is a link is no thought.
    let (code, _, err) = run(repo.tgs().args(["server", "backlog", "add", "ccccccc-dir"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not exist on origin/main"), "{err}");
    let (code, out, err) = run(repo.tgs().args(["thought", "list"]));
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("root:"), "{out}");
}

#[test]
fn hostile_backlog_files_are_refused_and_left_untouched() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile/backlogs");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    assert!(files.len() >= 10);
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read(&file).unwrap();
        check_backlog(&name, &String::from_utf8_lossy(&text));
    }
    // Huge: 200,000 entries and a 1 MB title are read, or refused, never a crash.
    let mut huge = String::from("{\"version\":\"1\",\"thoughts\":[");
    for i in 0..200_000 {
        if i > 0 {
            huge.push(',');
        }
        huge.push_str(&format!(
            "{{\"dir\":\"tgs/thoughts/{i:07x}-x\",\"title\":\"T\",\"priority\":0,\"status\":\"completed\",\"attempts\":1}}"
        ));
    }
    huge.push_str(&format!(
        ",{{\"dir\":\"tgs/thoughts/fffffff-big\",\"title\":\"{}\",\"priority\":0,\"status\":\"failed\",\"attempts\":1}}]}}",
        "b".repeat(1 << 20)
    ));
    check_backlog("huge", &huge);
}

/// Put `text` as the state's backlog; every command either reads it or
/// refuses it with exit 3, and none changes it.
fn check_backlog(name: &str, text: &str) {
    let env = TestEnv::new();
    let repo = env.repo("r");
    repo.approved("aaaaaaa-first", "First");
    repo.approved("bbbbbbb-second", "Second");
    repo.publish("thoughts");
    repo.put_state(&[("tgs/server/backlog.json", text)]);
    let before = repo.state_ref();
    for args in [
        &["server", "backlog", "list"][..],
        &["server", "status"],
        &["server", "backlog", "validate"],
        &["server", "backlog", "validate", "--fix"],
        &["server", "backlog", "add", "bbbbbbb-second"],
        &["server", "scan"],
        &["server", "run", "--dry-run"],
    ] {
        let (code, out, err) = run(repo.tgs().args(args));
        assert!(!err.contains("panicked"), "{name} {args:?}: {err}");
        assert!(
            [0, 1, 3].contains(&code),
            "{name} {args:?}: exit {code}: {out}{err}"
        );
        if code != 0 {
            // An error, or validate's list of problems.
            assert!(
                err.contains("error: ") || !out.trim().is_empty(),
                "{name} {args:?}: {out}{err}"
            );
        }
        let mutating = args.contains(&"add") || args.contains(&"scan") || args.contains(&"--fix");
        if !mutating || code != 0 {
            assert_eq!(repo.state_ref(), before, "{name} {args:?}: the state moved");
        }
    }
}
