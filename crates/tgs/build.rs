//! Records the commit of the tgs repository this binary is built from, as
//! `TGS_BUILD_COMMIT` in the crate's environment (empty when unknown):
//! `tgs server init` pins the tgs the generated workflows install to it.
//!
//! - `TGS_BUILD_COMMIT` set in the build's environment wins: a full commit
//!   (40 lowercase hex digits), or empty for none. For builds without git
//!   metadata, such as from a source tarball.
//! - Else, in a git checkout whose top level is this workspace, the commit
//!   checked out (HEAD) when the build's inputs (the two crates' manifests
//!   and sources, the workspace manifest and lockfile) are as committed:
//!   nothing changed, staged or untracked among them.
//! - Else none: a modified checkout builds a tgs that is no commit's.
//!
//! The script re-runs only when one of those inputs, HEAD or the branch it
//! names changes, never on every build (and then only this thin crate is
//! built again); git is asked not to refresh the index, so its own run
//! changes nothing in the checkout.

use std::path::{Path, PathBuf};
use std::process::Command;

const VAR: &str = "TGS_BUILD_COMMIT";

/// What the binary is built from, relative to the workspace root.
const INPUTS: &[&str] = &[
    "Cargo.toml",
    "Cargo.lock",
    "crates/tgs/Cargo.toml",
    "crates/tgs/build.rs",
    "crates/tgs/src",
    "crates/tgs-core/Cargo.toml",
    "crates/tgs-core/src",
];

fn main() {
    println!("cargo:rerun-if-env-changed={VAR}");
    let commit = match std::env::var(VAR) {
        Ok(given) => {
            assert!(
                given.is_empty() || is_full_commit(&given),
                "{VAR}={given:?}: give a full commit id (40 lowercase hex digits), or leave it empty for none"
            );
            println!("cargo:rerun-if-changed=build.rs");
            given
        }
        Err(_) => {
            let manifest =
                PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
            // This crate is crates/tgs: the workspace is two levels up.
            let root = manifest
                .ancestors()
                .nth(2)
                .expect("crates/tgs has a workspace");
            for input in INPUTS {
                println!("cargo:rerun-if-changed={}", root.join(input).display());
            }
            checked_out(root).unwrap_or_default()
        }
    };
    println!("cargo:rustc-env={VAR}={commit}");
}

fn is_full_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// HEAD of the git checkout whose top level is `root`, when the build's
/// inputs there are as committed; also has cargo watch what moves HEAD.
fn checked_out(root: &Path) -> Option<String> {
    // Not a checkout of its own (a packaged crate under target/, a copy
    // vendored into another repository): that repository's HEAD is not ours.
    if !git(root, &["rev-parse", "--show-prefix"])?
        .trim()
        .is_empty()
    {
        return None;
    }
    let dirs = git(
        root,
        &[
            "rev-parse",
            "--path-format=absolute",
            "--git-dir",
            "--git-common-dir",
        ],
    )?;
    let mut dirs = dirs.lines().map(PathBuf::from);
    let (git_dir, common_dir) = (dirs.next()?, dirs.next()?);
    // What a commit, a checkout or a reset moves; not the index, which any
    // `git status` may rewrite: that would rebuild the crate for nothing.
    let mut watched = vec![
        git_dir.join("HEAD"),
        git_dir.join("logs/HEAD"),
        common_dir.join("packed-refs"),
    ];
    if let Some(branch) = git(root, &["symbolic-ref", "--quiet", "HEAD"]) {
        watched.push(common_dir.join(branch.trim()));
    }
    // A path that does not exist would re-run the script on every build.
    for path in watched.iter().filter(|p| p.is_file()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    let head = git(root, &["rev-parse", "--verify", "--quiet", "HEAD"])?;
    let head = head.trim();
    let mut status = vec![
        "--no-optional-locks",
        "status",
        "--porcelain",
        "--untracked-files=normal",
        "--",
    ];
    status.extend(INPUTS);
    let changed = git(root, &status)?;
    (is_full_commit(head) && changed.trim().is_empty()).then(|| head.to_owned())
}

/// `git args` in `dir`: its output when it succeeds. The variables that
/// would point git at another repository are left out.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_COMMON_DIR")
        .env_remove("GIT_OBJECT_DIRECTORY")
        .env_remove("GIT_ALTERNATE_OBJECT_DIRECTORIES")
        .env_remove("GIT_NAMESPACE")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok()
}
