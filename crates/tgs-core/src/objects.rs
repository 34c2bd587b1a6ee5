//! Reading and writing git objects in-process (gitoxide), for the hot path
//! of a shared state change.
//!
//! A state change reads three files at the freshly fetched tip and writes
//! them back as one commit. Done with git processes that is a `cat-file` and
//! a `fast-import` (which spawns an `unpack-objects`), and all of it happens
//! while this machine's turn on the remote is held, where every millisecond
//! is paid by every waiting worker. Here the same work is a handful of loose
//! object reads and writes in this process.
//!
//! Only the object database is used: refs are read here but always changed
//! by git itself (`push`, `update-ref`, `merge`), so git's locking and hooks
//! stay in charge of them. Repositories gitoxide should not touch (another
//! ref storage such as reftable, another hash, group-shared permissions or
//! fsynced object files) get `None` from [`Objects::open`], and the caller
//! keeps to git processes.

use std::path::Path;

use crate::git::{GitError, StateRead};

/// The object database of one repository.
pub struct Objects {
    repo: gix::ThreadSafeRepository,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Objects").finish_non_exhaustive()
    }
}

fn err(what: &str, e: impl std::fmt::Display) -> GitError {
    GitError::Objects {
        what: what.to_owned(),
        detail: e.to_string(),
    }
}

impl Objects {
    /// Open the repository whose working tree (or git dir) is `dir`, or
    /// `None` when it should be left to git processes.
    pub fn open(dir: &Path) -> Option<Objects> {
        // Objects as they are, never as `refs/replace/` would have them.
        let opts = gix::open::Options::default().config_overrides(["core.useReplaceRefs=false"]);
        let repo = match gix::open_opts(dir, opts) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("objects in-process: cannot open {}: {e}", dir.display());
                return None;
            }
        };
        let config = repo.config_snapshot();
        let ref_storage = config.string("extensions.refStorage");
        let shared = config.string("core.sharedRepository");
        let fsync = config.string("core.fsync");
        let leave_to_git = ref_storage.is_some_and(|s| !s.eq_ignore_ascii_case(b"files"))
            || repo.object_hash() != gix::hash::Kind::Sha1
            // Object files that git would write group- or world-readable, or
            // fsync: promises gitoxide's writer does not keep.
            || shared.is_some_and(|s| !matches!(s.to_ascii_lowercase().as_slice(), b"false" | b"umask" | b"0" | b"no" | b"off"))
            || config.boolean("core.fsyncObjectFiles") == Some(true)
            || fsync.is_some_and(|s| {
                s.split(|b| *b == b',').any(|c| {
                    matches!(c.trim_ascii(), b"loose-object" | b"objects" | b"committed" | b"added" | b"all")
                })
            });
        if leave_to_git {
            tracing::debug!("objects in-process: not for this repository's settings");
            return None;
        }
        Some(Objects { repo: repo.into() })
    }

    /// What `StateReader::read` reads, without a process: the commit `rev`
    /// names, the blobs at `rev:<path>`, and the commit `also` names.
    pub fn read(
        &self,
        rev: &str,
        paths: &[&str],
        also: Option<&str>,
    ) -> Result<StateRead, GitError> {
        let repo = self.repo.to_thread_local();
        let tip = peel(&repo, rev)?;
        let mut blobs = Vec::with_capacity(paths.len());
        if let Some(tip) = tip {
            let tree = repo
                .find_commit(tip)
                .map_err(|e| err("find commit", e))?
                .tree()
                .map_err(|e| err("read tree", e))?;
            for path in paths {
                let entry = tree
                    .lookup_entry_by_path(path)
                    .map_err(|e| err("look up path", e))?;
                blobs.push(match entry {
                    Some(e) if e.mode().is_blob() => {
                        Some(e.object().map_err(|e| err("read blob", e))?.detach().data)
                    }
                    _ => None,
                });
            }
        } else {
            blobs.resize(paths.len(), None);
        }
        let other = match also {
            Some(r) => peel(&repo, r)?.map(|id| id.to_string()),
            None => None,
        };
        Ok((tip.map(|t| t.to_string()), blobs, other))
    }

    /// Write `files` over the tree of `parent` (or an empty tree) and a commit
    /// of that tree on `parent`; returns the commit's id. Nothing refers to it
    /// until the caller publishes it (loose objects outlive `gc` for weeks).
    pub fn commit(
        &self,
        parent: Option<&str>,
        files: &[(&str, &[u8])],
        ident: &str,
        when: i64,
        message: &str,
    ) -> Result<String, GitError> {
        let repo = self.repo.to_thread_local();
        let parent = parent
            .map(|p| {
                gix::ObjectId::from_hex(p.as_bytes()).map_err(|e| err("parse the parent id", e))
            })
            .transpose()?;
        let base = match parent {
            Some(p) => repo
                .find_commit(p)
                .map_err(|e| err("find parent", e))?
                .tree()
                .map_err(|e| err("read parent tree", e))?,
            None => repo.empty_tree(),
        };
        let mut editor = base.edit().map_err(|e| err("edit tree", e))?;
        for (path, data) in files {
            let blob = repo.write_blob(data).map_err(|e| err("write blob", e))?;
            editor
                .upsert(*path, gix::object::tree::EntryKind::Blob, blob.detach())
                .map_err(|e| err("edit tree", e))?;
        }
        let tree = editor.write().map_err(|e| err("write tree", e))?.detach();
        let (name, email) = split_ident(ident);
        let sig = gix::actor::Signature {
            name: name.into(),
            email: email.into(),
            time: gix::date::Time::new(when, 0),
        };
        let commit = gix::objs::Commit {
            tree,
            parents: parent.into_iter().collect(),
            author: sig.clone(),
            committer: sig,
            encoding: None,
            message: message.into(),
            extra_headers: Vec::new(),
        };
        let id = repo
            .write_object(&commit)
            .map_err(|e| err("write commit", e))?;
        Ok(id.to_string())
    }
}

/// The commit a ref names, `None` if there is no such ref.
fn peel(repo: &gix::Repository, name: &str) -> Result<Option<gix::ObjectId>, GitError> {
    let mut r = match repo.try_find_reference(name) {
        Ok(Some(r)) => r,
        Ok(None) => return Ok(None),
        Err(e) => return Err(err("find reference", e)),
    };
    let id = r.peel_to_id().map_err(|e| err("peel reference", e))?;
    // Like `cat-file`'s `<ref>^{commit}`: a ref to anything but a commit is none.
    let object = id.object().map_err(|e| err("read object", e))?;
    Ok(object.peel_to_commit().ok().map(|c| c.id))
}

/// `Name <email>` into its two parts.
fn split_ident(ident: &str) -> (&str, &str) {
    match (ident.rfind('<'), ident.rfind('>')) {
        (Some(l), Some(r)) if l < r => (ident[..l].trim_end(), &ident[l + 1..r]),
        _ => (ident.trim(), ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// git in `dir`, away from this machine's configuration.
    fn git(dir: &Path, args: &[&str]) -> std::process::Output {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .unwrap()
    }

    fn repo_with(config: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        assert!(git(dir.path(), &["init", "-q"]).status.success());
        for (k, v) in config {
            assert!(git(dir.path(), &["config", k, v]).status.success());
        }
        dir
    }

    #[test]
    fn settings_gitoxide_would_not_keep_are_left_to_git() {
        assert!(Objects::open(repo_with(&[]).path()).is_some());
        assert!(Objects::open(repo_with(&[("core.sharedRepository", "umask")]).path()).is_some());
        assert!(Objects::open(repo_with(&[("core.fsync", "reference")]).path()).is_some());
        for (k, v) in [
            ("core.sharedRepository", "group"),
            ("core.sharedRepository", "0660"),
            ("core.fsyncObjectFiles", "true"),
            ("core.fsync", "reference,loose-object"),
            ("core.fsync", "all"),
        ] {
            assert!(
                Objects::open(repo_with(&[(k, v)]).path()).is_none(),
                "{k}={v}"
            );
        }
    }

    #[test]
    fn commits_read_back_as_written() {
        let dir = repo_with(&[]);
        let o = Objects::open(dir.path()).unwrap();
        let files: [(&str, &[u8]); 2] = [
            ("tgs/server/backlog.json", b"{}\n"),
            ("tgs/server/audit.jsonl", b""),
        ];
        let first = o
            .commit(None, &files, "T U <t@u>", 1_700_000_000, "first\n")
            .unwrap();
        let files: [(&str, &[u8]); 1] = [("tgs/server/backlog.json", b"{\"v\":1}\n")];
        let second = o
            .commit(Some(&first), &files, "T U <t@u>", 1_700_000_001, "second\n")
            .unwrap();
        let show = git(dir.path(), &["cat-file", "-p", &second]);
        let text = String::from_utf8_lossy(&show.stdout);
        assert!(text.contains(&format!("parent {first}")), "{text}");
        assert!(
            text.contains("committer T U <t@u> 1700000001 +0000"),
            "{text}"
        );
        git(dir.path(), &["update-ref", "refs/heads/state", &second]);
        let (tip, blobs, other) = o
            .read(
                "refs/heads/state",
                &[
                    "tgs/server/backlog.json",
                    "tgs/server/audit.jsonl",
                    "missing",
                ],
                Some("refs/heads/none"),
            )
            .unwrap();
        assert_eq!(tip.as_deref(), Some(second.as_str()));
        assert_eq!(blobs[0].as_deref(), Some(&b"{\"v\":1}\n"[..]));
        assert_eq!(blobs[1].as_deref(), Some(&b""[..]), "kept from the parent");
        assert_eq!(blobs[2], None);
        assert_eq!(other, None);
        let fsck = git(dir.path(), &["fsck", "--strict"]);
        assert!(
            fsck.status.success(),
            "{}",
            String::from_utf8_lossy(&fsck.stderr)
        );
    }

    #[test]
    fn idents_split() {
        assert_eq!(split_ident("A B <a@b>"), ("A B", "a@b"));
        assert_eq!(split_ident("tgs <tgs@localhost>"), ("tgs", "tgs@localhost"));
        assert_eq!(split_ident("odd"), ("odd", ""));
    }
}
