//! `tgs thought new` and `tgs thought list` on real repositories: both
//! layouts, the legacy place, skeletons, uncommitted and modified files.

mod common;

use common::{run, TestEnv};
use serde_json::Value;

fn stages(repo: &common::TestRepo) -> Vec<(String, String, String)> {
    let (code, out, err) = run(repo.tgs().args(["thought", "list", "--json"]));
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["dir"].as_str().unwrap().to_owned(),
                t["stage"].as_str().unwrap().to_owned(),
                t["title"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn new_scaffolds_from_builtin_templates() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let short = repo.git(&["rev-parse", "--short", "HEAD"]);
    let (code, out, err) = run(repo.tgs().args([
        "thought",
        "new",
        "--title",
        "Add Dark Mode!",
        "--spec",
        "Users asked.",
    ]));
    assert_eq!(code, 0, "{err}");
    let dir = format!("tgs/thoughts/{short}-add-dark-mode");
    assert_eq!(out.trim(), dir, "the new dir is the only thing on stdout");
    let readme = repo.read(&format!("{dir}/README.md"));
    assert!(
        readme.starts_with(&format!(
            "# {short} - Add Dark Mode!\n\n- Base Hash: `{short}`\n"
        )),
        "{readme}"
    );
    assert!(readme.contains("## Quick Links") && readme.contains("(research.md)"));
    assert!(readme.contains("## Idea Spec\nUsers asked.\n"));
    for f in ["research.md", "plan.md", "implementation.md"] {
        assert!(repo.path(&format!("{dir}/{f}")).is_file(), "{f}");
    }
    // Committed as scaffolded, the skeletons mean nothing was written: a draft.
    repo.commit_all("scaffold");
    assert_eq!(
        stages(&repo),
        vec![(dir.clone(), "draft".into(), "Add Dark Mode!".into())]
    );
    // Filling research and plan approves it; the skeleton implementation.md does not implement it.
    repo.write(
        &format!("{dir}/research.md"),
        "# Research\nReal findings.\n",
    );
    repo.write(&format!("{dir}/plan.md"), "# Plan\nReal steps.\n");
    repo.commit_all("approve");
    assert_eq!(stages(&repo)[0].1, "approved");
}

#[test]
fn new_uses_the_repository_templates_and_refuses_bad_titles() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    repo.write(
        "tgs/agentops/tgs/00_research.md",
        "# Research: <title>\n<findings>\n",
    );
    repo.write("tgs/agentops/tgs/20_plan.md", "# Plan: <title>\n<steps>\n");
    repo.write(
        "tgs/agentops/tgs/50_impl.md",
        "# Implementation\n<summary>\n",
    );
    repo.commit_all("templates");
    let short = repo.git(&["rev-parse", "--short", "HEAD"]);
    let (code, out, _) = run(repo
        .tgs()
        .args(["thought", "new", "--title", "Numbered one"]));
    assert_eq!(code, 0);
    let dir = out.trim().to_owned();
    assert_eq!(dir, format!("tgs/thoughts/{short}-numbered-one"));
    // What tgs knows is filled in; the rest is the author's to write.
    assert_eq!(
        repo.read(&format!("{dir}/00_research.md")),
        "# Research: Numbered one\n<findings>\n"
    );
    assert!(repo
        .read(&format!("{dir}/README.md"))
        .contains("(20_plan.md)"));
    // Same title on the same HEAD: the directory exists already.
    let (code, _, err) = run(repo
        .tgs()
        .args(["thought", "new", "--title", "Numbered one"]));
    assert_eq!(code, 2);
    assert!(err.contains("already exists"), "{err}");
    repo.commit_all("scaffold");
    let short = repo.git(&["rev-parse", "--short", "HEAD"]);
    // Templates of the repository are skeletons too.
    assert_eq!(stages(&repo)[0].1, "draft");
    let (code, _, err) = run(repo.tgs().args(["thought", "new", "--title", " \t "]));
    assert_eq!(code, 2);
    assert!(err.contains("the title is empty"), "{err}");
    // A title cannot smuggle a path.
    let (code, out, _) = run(repo
        .tgs()
        .args(["thought", "new", "--title", "../../etc/passwd"]));
    assert_eq!(code, 0);
    assert_eq!(out.trim(), format!("tgs/thoughts/{short}-etc-passwd"));
}

#[test]
fn new_fills_in_title_date_and_hash_and_its_copies_stay_skeletons() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let short = repo.git(&["rev-parse", "--short", "HEAD"]);
    let (code, out, err) = run(repo
        .tgs()
        .args(["thought", "new", "--title", "Café <hash> 🚀"]));
    assert_eq!(code, 0, "{err}");
    let dir = out.trim().to_owned();
    let research = repo.read(&format!("{dir}/research.md"));
    assert!(
        research.starts_with(&format!(
            "# Research: Café <hash> 🚀\n\n- Date: 2026-01-15\n- Base Hash: {short}\n"
        )),
        "{research}"
    );
    assert!(repo
        .read(&format!("{dir}/plan.md"))
        .starts_with("# Plan: Café <hash> 🚀\n"));
    for f in ["research.md", "plan.md", "implementation.md"] {
        let body = repo.read(&format!("{dir}/{f}")).replace("Café <hash>", "");
        for p in ["<Title>", "<YYYY-MM-DD>", "<hash>"] {
            assert!(!body.contains(p), "{f} still has {p}:\n{body}");
        }
    }
    // Committed as made, nothing is written in it: a draft, which scan leaves alone.
    repo.publish("scaffold");
    let stage = |repo: &common::TestRepo| stages(repo)[0].1.clone();
    assert_eq!(stage(&repo), "draft");
    let (code, out, err) = run(repo.tgs().args(["server", "scan", "--dry-run", "--json"]));
    assert_eq!((code, out.trim()), (0, "[]"), "{err}");
    // A heading changed by hand is still nothing written.
    let retitled = research.replacen("Café <hash> 🚀", "A better title", 1);
    repo.write(&format!("{dir}/research.md"), &retitled);
    repo.write(
        &format!("{dir}/plan.md"),
        "# Plan: A better title\n\n1. Do it.\n",
    );
    repo.publish("retitle");
    assert_eq!(stage(&repo), "draft");
    // Research and plan written: approved, not implemented, though
    // implementation.md is no longer byte for byte the template.
    repo.write(
        &format!("{dir}/research.md"),
        &format!("{retitled}\nWe found out.\n"),
    );
    repo.publish("research");
    assert_eq!(stage(&repo), "approved");
    let (code, out, err) = run(repo.tgs().args(["server", "scan", "--dry-run", "--json"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&dir), "{out}");
    let (_, out, _) = run(repo
        .tgs()
        .args(["thought", "list", "--stage", "implemented", "--json"]));
    assert_eq!(out.trim(), "[]");
    let (_, out, _) = run(repo
        .tgs()
        .args(["thought", "list", "--stage", "approved", "--json"]));
    assert!(out.contains(&dir), "{out}");
}

/// Telling a filled-in template from written text takes reading files: only
/// for the thoughts `thought new` made, and only those a command needs.
#[test]
fn files_are_read_only_for_thoughts_that_thought_new_made() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    repo.approved("aaaaaaa-by-hand", "By hand");
    repo.publish("by hand");
    let cat_files = |args: &[&str]| {
        let (code, _, err) = run(repo.tgs().env("TGS_LOG", "tgs::git=debug").args(args));
        assert_eq!(code, 0, "{err}");
        err.matches("git cat-file --batch").count()
    };
    let scan = ["server", "scan", "--dry-run"];
    assert_eq!(cat_files(&scan), 1, "titles only");
    let (_, out, _) = run(repo.tgs().args(["thought", "new", "--title", "Made"]));
    let dir = out.trim().to_owned();
    repo.write(&format!("{dir}/research.md"), "# Research\nFound.\n");
    repo.write(&format!("{dir}/plan.md"), "# Plan\n1. Do.\n");
    repo.publish("made");
    assert_eq!(cat_files(&scan), 2, "titles, then the made thought's files");
    let (code, _, err) =
        run(repo
            .tgs()
            .args(["server", "backlog", "add", "aaaaaaa-by-hand", &dir]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(cat_files(&scan), 1, "nothing to judge once both are queued");
}

#[test]
fn new_transliterates_titles_into_ascii_slugs() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let short = repo.git(&["rev-parse", "--short", "HEAD"]);
    let cases = [
        ("日本語のタイトル", "ri-ben-yu-notaitoru"),
        ("Café crème: naïve résumé", "cafe-creme-naive-resume"),
        ("Ship it 🚀", "ship-it-rocket"),
        // Nothing to make a slug from: the hash and `thought`.
        ("!!! ???", "thought"),
    ];
    let mut expect = Vec::new();
    for (title, slug) in cases {
        let (code, out, err) = run(repo.tgs().args(["thought", "new", "--title", title]));
        assert_eq!(code, 0, "{title}: {err}");
        let dir = format!("tgs/thoughts/{short}-{slug}");
        assert_eq!(out.trim(), dir, "{title}");
        // The title keeps its own script.
        assert!(
            repo.read(&format!("{dir}/README.md"))
                .starts_with(&format!("# {short} - {title}\n")),
            "{title}"
        );
        expect.push((dir, "draft".to_owned(), title.to_owned()));
    }
    repo.commit_all("scaffold");
    expect.sort();
    assert_eq!(stages(&repo), expect);
}

#[test]
fn list_reads_stages_from_head_across_layouts() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    repo.write(
        "tgs/agentops/tgs/research.md",
        "# Research: <Title>\n<text>\n",
    );
    repo.write(
        "tgs/agentops/tgs/implementation.md",
        "# Implementation: <Title>\n<text>\n",
    );
    // Classic layout, approved, with an unfilled implementation skeleton.
    repo.approved("aaaaaaa-classic-approved", "Classic approved");
    repo.write(
        "tgs/thoughts/aaaaaaa-classic-approved/implementation.md",
        "# Implementation: <Title>\n<text>\n",
    );
    // Numbered layout, implemented.
    repo.thought(
        "bbbbbbb-numbered-done",
        &[
            ("00_research.md", "# Research: numbered\nfacts\n"),
            ("10_spec.md", "spec\n"),
            ("20_plan.md", "plan\n"),
            (
                "40_approval.md",
                "Approver: A\nRole: lead\nDate: 2026-01-01\n",
            ),
            ("50_impl.md", "# Done\nIt works.\n"),
        ],
    );
    // Research is the skeleton: a draft, whatever the plan says.
    repo.thought(
        "ccccccc-skeleton-research",
        &[
            ("research.md", "# Research: <Title>\n<text>\n"),
            ("plan.md", "real plan\n"),
        ],
    );
    // Plan never committed.
    repo.thought(
        "ddddddd-uncommitted-plan",
        &[("research.md", "# Research: U\nfacts\n")],
    );
    // No README: the title comes from research.md's heading, then the slug.
    repo.thought(
        "eeeeeee-no-readme",
        &[
            ("research.md", "# Research: Titled by research\nx\n"),
            ("plan.md", "p\n"),
        ],
    );
    repo.thought("fffffff-from-the-slug", &[("plan.md", "p\n")]);
    // Legacy place.
    repo.write(
        "tgs/1234567-legacy-thought/research.md",
        "# Research: Legacy\nx\n",
    );
    repo.write("tgs/1234567-legacy-thought/plan.md", "p\n");
    // Not thoughts.
    repo.write("tgs/thoughts/notes/research.md", "x\n");
    repo.write("tgs/agentops/AGENTOPS.md", "agents\n");
    repo.commit_all("thoughts");
    // After the commit: an uncommitted plan, and a committed research modified in the working tree.
    repo.write(
        "tgs/thoughts/ddddddd-uncommitted-plan/plan.md",
        "plan written, not committed\n",
    );
    repo.write(
        "tgs/thoughts/ccccccc-skeleton-research/research.md",
        "filled in but not committed\n",
    );
    repo.write(
        "tgs/thoughts/aaaaaaa-classic-approved/plan.md",
        "edited locally\n",
    );

    let got = stages(&repo);
    let expect: Vec<(String, String, String)> = [
        ("tgs/1234567-legacy-thought", "approved", "Legacy"),
        (
            "tgs/thoughts/aaaaaaa-classic-approved",
            "approved",
            "Classic approved",
        ),
        (
            "tgs/thoughts/bbbbbbb-numbered-done",
            "implemented",
            "numbered",
        ),
        (
            "tgs/thoughts/ccccccc-skeleton-research",
            "draft",
            "Skeleton research",
        ),
        ("tgs/thoughts/ddddddd-uncommitted-plan", "draft", "U"),
        (
            "tgs/thoughts/eeeeeee-no-readme",
            "approved",
            "Titled by research",
        ),
        (
            "tgs/thoughts/fffffff-from-the-slug",
            "draft",
            "From the slug",
        ),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(got, expect);

    // The table form and the stage filter.
    let (code, out, _) = run(repo
        .tgs()
        .args(["thought", "list", "--stage", "implemented"]));
    assert_eq!(code, 0);
    assert!(out.starts_with("STAGE"), "{out}");
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(!out.contains('\u{1b}'), "NO_COLOR is honored");
}

#[test]
fn folders_that_break_the_naming_rule_are_reported_not_skipped_silently() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    repo.approved("abcdef1-good", "Good");
    for bad in ["My Idea", "日本語", "abcdef1-Café", "notes"] {
        repo.thought(bad, &[("research.md", "r\n"), ("plan.md", "p\n")]);
    }
    // Hidden folders and loose files are not thought folders to begin with.
    repo.write("tgs/thoughts/.obsidian/app.json", "{}\n");
    repo.write("tgs/thoughts/README.md", "Thoughts live here.\n");
    // A folder whose name is not UTF-8 at all.
    {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(b"abcdef2-\xff-latin1");
        let dir = repo.path("tgs/thoughts").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("plan.md"), "p\n").unwrap();
    }
    repo.publish("thoughts");
    for args in [
        &["thought", "list"][..],
        &["thought", "list", "--json"],
        &["server", "scan", "--dry-run"],
        &["server", "backlog", "validate"],
    ] {
        let (code, out, err) = run(repo.tgs().args(args));
        assert_eq!(code, 0, "{args:?}: {err}");
        if args[0] == "thought" || args[1] == "scan" {
            assert!(out.contains("abcdef1-good"), "{args:?}: {out}");
        }
        for bad in ["My Idea", "日本語", "abcdef1-Café", "notes"] {
            let line = format!(
                "warning: tgs/thoughts/{bad}: not a thought folder name (<hex hash>-<slug>"
            );
            assert_eq!(err.matches(&line).count(), 1, "{args:?}: {err}");
        }
        let line = "warning: tgs/thoughts/abcdef2-\\xff-latin1: not a thought folder name";
        assert_eq!(err.matches(line).count(), 1, "{args:?}: {err}");
        assert_eq!(err.matches("warning:").count(), 5, "{args:?}: {err}");
        assert!(!out.contains("warning"), "warnings stay off stdout: {out}");
    }
}

#[test]
fn global_flags_and_plumbing() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    repo.approved("abcdef1-one", "One");
    repo.commit_all("t");
    // -C runs as if started there, from anywhere.
    let (code, out, _) = run(env.tgs_cmd(env.path()).args([
        "-C",
        repo.root.to_str().unwrap(),
        "thought",
        "list",
        "--json",
    ]));
    assert_eq!(code, 0);
    assert!(out.contains("abcdef1-one"));
    // From a subdirectory the repository root is found.
    let (code, out, _) = run(env
        .tgs_cmd(&repo.path("src"))
        .args(["thought", "list", "--json"]));
    assert_eq!(code, 0);
    assert!(out.contains("abcdef1-one"));
    // Outside a repository: usage error with a hint.
    let (code, _, err) = run(env.tgs_cmd(env.path()).args(["thought", "list"]));
    assert_eq!(code, 2);
    assert!(err.contains("error:") && err.contains("hint:"), "{err}");
    let (code, out, _) = run(env.tgs_cmd(env.path()).arg("--version"));
    assert_eq!(code, 0);
    assert!(out.starts_with("tgs "));
    let (code, out, _) = run(env.tgs_cmd(env.path()).args(["completions", "bash"]));
    assert_eq!(code, 0);
    assert!(out.contains("_tgs"));
    let (code, _, err) = run(env.tgs_cmd(env.path()).args(["no-such-command"]));
    assert_eq!(code, 2, "{err}");
    let (code, out, _) = run(env.tgs_cmd(env.path()).arg("--help"));
    assert_eq!(code, 0);
    assert!(out.contains("Exit codes:"));
    for code in ["0 ", "1 ", "2 ", "3 ", "4 "] {
        assert!(
            out.contains(&format!("\n  {code}   ")),
            "exit code {code}: {out}"
        );
    }
    assert!(out.contains("\n  130  interrupted by SIGINT\n"), "{out}");
    assert!(out.contains("\n  143  interrupted by SIGTERM\n"), "{out}");
}

#[test]
fn a_closed_pipe_is_not_a_crash() {
    use std::process::{Command, Stdio};
    let env = TestEnv::new();
    let mut c = Command::new(common::tgs_bin());
    env.pin(&mut c);
    // `tgs completions bash | head -1`: the reader goes away at once.
    let mut child = c
        .args(["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

/// Whitespace is not written: an empty or blank research or plan leaves a
/// thought a draft (never queued, never run), and a blank implementation
/// summary does not make it implemented. With a README or without.
#[test]
fn blank_files_do_not_approve_or_implement_a_thought() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let research = ("research.md", "# Research\n\nWe looked.\n");
    let plan = ("plan.md", "# Plan\n\n1. Do it.\n");
    repo.thought("aaaaaa1-empty-plan", &[research, ("plan.md", "")]);
    repo.thought(
        "aaaaaa2-blank-plan",
        &[research, ("plan.md", " \n\n\t\r\n  ")],
    );
    repo.thought(
        "aaaaaa3-blank-research",
        &[
            ("README.md", "# aaaaaa3 - Blank research\n"),
            ("research.md", "\n\n"),
            plan,
        ],
    );
    repo.thought(
        "aaaaaa4-blank-summary",
        &[research, plan, ("implementation.md", "\n")],
    );
    repo.thought("aaaaaa5-written", &[research, ("plan.md", "x\n")]);
    repo.publish("thoughts");
    let (code, out, err) = run(repo.tgs().args(["thought", "list", "--json"]));
    assert_eq!(code, 0, "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    let stage = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|t| t["dir"].as_str().unwrap().ends_with(name))
            .map(|t| t["stage"].as_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(stage("aaaaaa1-empty-plan"), "draft", "{out}");
    assert_eq!(stage("aaaaaa2-blank-plan"), "draft", "{out}");
    assert_eq!(stage("aaaaaa3-blank-research"), "draft", "{out}");
    assert_eq!(stage("aaaaaa4-blank-summary"), "approved", "{out}");
    assert_eq!(stage("aaaaaa5-written"), "approved", "{out}");
    let (code, out, err) = run(repo.tgs().args(["server", "scan"]));
    assert_eq!(code, 0, "{out}{err}");
    let queued: Vec<String> = repo.backlog()["thoughts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["dir"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        queued,
        [
            "tgs/thoughts/aaaaaa4-blank-summary",
            "tgs/thoughts/aaaaaa5-written"
        ],
        "{out}{err}"
    );
}

/// A title is one line of at most 200 characters: a longer one is refused
/// with the way to say the rest, and nothing is made. One read from a
/// README heading is cut at a word, with an ellipsis.
#[test]
fn an_overlong_title_is_refused_and_a_long_heading_is_cut_at_a_word() {
    let env = TestEnv::new();
    let repo = env.repo("r");
    let long = "word ".repeat(4320);
    let (code, out, err) = run(repo.tgs().args(["thought", "new", "--title", &long]));
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("the title has 21599 characters; a title has at most 200"),
        "{err}"
    );
    assert!(err.contains("--spec"), "{err}");
    assert!(!repo.path("tgs/thoughts").exists(), "nothing was made");
    let heading = format!("# aaaaaaa - {}\n", "lengthy ".repeat(40));
    repo.thought(
        "aaaaaaa-long",
        &[
            ("README.md", &heading),
            ("research.md", "r\n"),
            ("plan.md", "p\n"),
        ],
    );
    repo.publish("long");
    let (code, out, err) = run(repo.tgs().args(["thought", "list", "--json"]));
    assert_eq!(code, 0, "{err}");
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    let title = list[0]["title"].as_str().unwrap();
    assert!(title.ends_with("lengthy…"), "cut at a word: {title}");
    assert!(title.chars().count() <= 200, "{title}");
}
