//! Thoughts: their names, the two layouts and the legacy place, and their stage.
//!
//! A thought's stage is read from the committed tree of HEAD ("committed =
//! approved"), never from the working tree. It is computed from one
//! `git ls-tree` listing by pure functions; blob contents are read only for
//! README headings (titles) and for the files that may be templates filled in
//! by `thought new` (see `template`), both in one batch each, and only for the
//! thoughts a command needs.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::git::{self, ObjectKind, TreeEntry, TreeEntryRef};
use crate::repo::Repo;
use crate::template;
use crate::Error;

/// Where thoughts live today.
pub const THOUGHTS_DIR: &str = "tgs/thoughts";
/// The folder holding the templates a new thought is scaffolded from.
pub const TEMPLATES_DIR: &str = "tgs/agentops/tgs";

/// The naming rule of thought folders, as told to people whose folder breaks it.
pub const NAME_RULE: &str =
    "<hex hash>-<slug>, in ASCII letters, digits, '-', '_' and '.', e.g. 3f2a9c1-add-dark-mode";

/// A validated thought directory name: `<hex>-<slug>`.
///
/// This is untrusted input (it comes from the tree, files and the command
/// line), so it is kept to characters that are safe in paths, branch names
/// and URLs: no separators, no `..`, no leading dot or dash.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ThoughtName(String);

impl ThoughtName {
    pub fn parse(name: &str) -> Option<ThoughtName> {
        let (hash, slug) = name.split_once('-')?;
        let hash_ok = (7..=64).contains(&hash.len())
            && hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let slug_ok = !slug.is_empty()
            && slug.len() <= 200
            && slug.as_bytes()[0].is_ascii_alphanumeric()
            && slug
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && !slug.contains("..")
            && !slug.ends_with(".lock");
        (hash_ok && slug_ok).then(|| ThoughtName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> &str {
        self.0.split_once('-').map(|(h, _)| h).unwrap_or("")
    }

    pub fn slug(&self) -> &str {
        self.0.split_once('-').map(|(_, s)| s).unwrap_or("")
    }

    /// A readable title made from the slug, for thoughts that name none.
    pub fn title_from_slug(&self) -> String {
        let words = self.slug().replace(['-', '_'], " ");
        let mut c = words.chars();
        match c.next() {
            Some(f) => f.to_uppercase().chain(c).collect(),
            None => String::new(),
        }
    }
}

impl std::fmt::Display for ThoughtName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The slug of a thought whose title gives none (`<hash>-thought`): a bare
/// hash is not a thought name.
pub const FALLBACK_SLUG: &str = "thought";

/// Turn a title into the kebab slug used in directory names: transliterated
/// to ASCII (`Café` → `cafe`, `日本語` → `ri-ben-yu`), lowercase, runs of
/// anything but `[a-z0-9]` become one `-`, trimmed, bounded to 60 bytes at a
/// word boundary. Empty when nothing is left (see [`FALLBACK_SLUG`]).
pub fn slugify(title: &str) -> String {
    let ascii = deunicode::deunicode_with_tofu(title, " ");
    let mut slug = String::new();
    for ch in ascii.chars().map(|c| c.to_ascii_lowercase()) {
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            slug.push(ch);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    while slug.ends_with('-') {
        slug.pop();
    }
    const MAX: usize = 60;
    if slug.len() > MAX {
        let cut = slug[..MAX].rfind('-').filter(|&i| i > 0).unwrap_or(MAX);
        slug.truncate(cut);
    }
    slug
}

/// How far a thought has come, as a careful reader of the committed tree sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Research or plan missing, not committed, or still the unfilled skeleton.
    Draft,
    /// Research and plan committed and written; no implementation summary yet.
    Approved,
    /// The implementation summary is committed and written.
    Implemented,
}

impl Stage {
    pub const ALL: [Stage; 3] = [Stage::Draft, Stage::Approved, Stage::Implemented];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Draft => "draft",
            Stage::Approved => "approved",
            Stage::Implemented => "implemented",
        }
    }
}

/// The part a file plays in a thought, in either layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Readme,
    Research,
    Spec,
    Plan,
    Tasks,
    Approval,
    Implementation,
    Doc,
}

impl Role {
    /// The role of a file directly inside a thought directory, by name.
    pub fn of(file: &str) -> Option<Role> {
        Some(match file {
            "README.md" => Role::Readme,
            "research.md" | "00_research.md" => Role::Research,
            "10_spec.md" | "10_specs.md" => Role::Spec,
            "plan.md" | "20_plan.md" => Role::Plan,
            "30_tasks.md" => Role::Tasks,
            "40_approval.md" => Role::Approval,
            "implementation.md" | "50_impl.md" => Role::Implementation,
            "60_doc.md" => Role::Doc,
            _ => return None,
        })
    }
}

/// A file of a thought as committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThoughtFile {
    /// Path relative to the thought directory (may contain `/` for nested files).
    pub name: String,
    pub oid: String,
    /// Its size in bytes, when the listing said.
    pub size: Option<u64>,
}

/// A thought found in the committed tree.
#[derive(Debug, Clone)]
pub struct Thought {
    /// Repository-relative directory, e.g. `tgs/thoughts/abc1234-x`.
    pub dir: String,
    pub name: ThoughtName,
    pub legacy: bool,
    pub files: Vec<ThoughtFile>,
}

impl Thought {
    fn file(&self, role: Role) -> Option<&ThoughtFile> {
        // When both layouts' names are present the classic name wins; order is stable either way.
        self.files
            .iter()
            .filter(|f| !f.name.contains('/') && Role::of(&f.name) == Some(role))
            .min_by_key(|f| f.name.starts_with(|c: char| c.is_ascii_digit()))
    }

    /// The stage, given the blob ids that are known skeletons.
    ///
    /// A file that is a template filled in by `thought new` is a skeleton too,
    /// but only reading it tells (`ThoughtIndex` does): from blob ids alone
    /// this is the highest stage the thought may have.
    pub fn stage(&self, skeletons: &HashSet<String>) -> Stage {
        let written = |role| self.file(role).is_some_and(|f| !skeletons.contains(&f.oid));
        if written(Role::Implementation) {
            Stage::Implemented
        } else if written(Role::Research) && written(Role::Plan) {
            Stage::Approved
        } else {
            Stage::Draft
        }
    }

    /// The files whose being written raised the thought to `stage`, and which
    /// may yet turn out to be filled-in templates: none for a draft.
    pub fn maybe_filled(&self, stage: Stage) -> Vec<&ThoughtFile> {
        let roles: &[Role] = match stage {
            Stage::Draft => &[],
            Stage::Approved => &[Role::Research, Role::Plan],
            Stage::Implemented => &[Role::Implementation, Role::Research, Role::Plan],
        };
        roles.iter().filter_map(|&r| self.file(r)).collect()
    }

    /// Repository-relative paths of the thought's files in reading order:
    /// README, then the workflow's files in their order, then the rest by name.
    pub fn ordered_paths(&self) -> Vec<String> {
        let mut files: Vec<&ThoughtFile> = self.files.iter().collect();
        files.sort_by(|a, b| {
            let ra = Role::of(&a.name).filter(|_| !a.name.contains('/'));
            let rb = Role::of(&b.name).filter(|_| !b.name.contains('/'));
            match (ra, rb) {
                (Some(x), Some(y)) => x.cmp(&y).then(a.name.cmp(&b.name)),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => a.name.cmp(&b.name),
            }
        });
        files
            .into_iter()
            .map(|f| format!("{}/{}", self.dir, f.name))
            .collect()
    }

    /// The blob to read the title from: README.md, else research.
    pub fn title_source(&self) -> Option<(&ThoughtFile, Role)> {
        self.file(Role::Readme)
            .map(|f| (f, Role::Readme))
            .or_else(|| self.file(Role::Research).map(|f| (f, Role::Research)))
    }
}

/// Groups a path-sorted tree listing into thoughts as it streams by.
///
/// `git ls-tree -r` lists paths in byte order, so a thought's files are
/// contiguous and each thought is complete when the next path leaves it.
/// It is then judged at once, unless the repository's templates (which sort
/// after some legacy thoughts) may still come: those wait until they are known.
pub struct Indexer {
    thoughts: Vec<Thought>,
    skipped: Vec<String>,
    skeletons: HashSet<String>,
    templates: Vec<String>,
    templates_final: bool,
    open: bool,
    pending: Vec<usize>,
}

impl Default for Indexer {
    fn default() -> Self {
        Indexer {
            thoughts: Vec::new(),
            skipped: Vec::new(),
            skeletons: template::builtin_skeleton_oids(),
            templates: Vec::new(),
            templates_final: false,
            open: false,
            pending: Vec::new(),
        }
    }
}

/// Called with each thought and its stage (from blob ids) as soon as it is judged.
pub type Emit<'a> = dyn FnMut(&Thought, Stage) + 'a;

impl Indexer {
    pub fn push(&mut self, e: TreeEntryRef<'_>, emit: &mut Emit<'_>) {
        const TEMPLATE_PREFIX: &str = "tgs/agentops/tgs/";
        if let Some(file) = e.path.strip_prefix(TEMPLATE_PREFIX) {
            self.close(emit);
            if e.kind == ObjectKind::Blob && e.mode != "120000" && !file.contains('/') {
                self.skeletons.insert(e.oid.to_owned());
                self.templates.push(e.oid.to_owned());
            }
            return;
        }
        if !self.templates_final && e.path > TEMPLATE_PREFIX {
            self.templates_final = true;
            self.flush(emit);
        }
        // Symlinks are never thought files: their target could lie anywhere.
        let thought_file = (e.kind == ObjectKind::Blob && e.mode != "120000")
            .then(|| thought_path(e.path))
            .flatten();
        let Some((parent, name, file)) = thought_file else {
            self.close(emit);
            return;
        };
        let same = self.open
            && self.thoughts.last().is_some_and(|t| {
                t.dir.len() == parent.len() + 1 + name.len()
                    && t.dir.starts_with(parent)
                    && t.dir.ends_with(name)
            });
        if !same {
            self.close(emit);
            let Some(tn) = ThoughtName::parse(name) else {
                self.skip(parent, name);
                return;
            };
            self.thoughts.push(Thought {
                dir: format!("{parent}/{name}"),
                name: tn,
                legacy: parent == "tgs",
                files: Vec::new(),
            });
            self.open = true;
        }
        if let Some(t) = self.thoughts.last_mut() {
            t.files.push(ThoughtFile {
                name: file.to_owned(),
                oid: e.oid.to_owned(),
                size: e.size,
            });
        }
    }

    /// Note a folder under `tgs/thoughts/` whose name is not a thought name
    /// (once: its files are contiguous). Hidden folders are not thoughts, and
    /// the legacy place `tgs/<name>` holds other folders of tgs too.
    fn skip(&mut self, parent: &str, name: &str) {
        if parent != THOUGHTS_DIR || name.starts_with('.') {
            return;
        }
        let dir = format!("{parent}/{name}");
        if self.skipped.last() != Some(&dir) {
            self.skipped.push(dir);
        }
    }

    fn close(&mut self, emit: &mut Emit<'_>) {
        if !std::mem::take(&mut self.open) {
            return;
        }
        let i = self.thoughts.len() - 1;
        if self.templates_final {
            emit(&self.thoughts[i], self.thoughts[i].stage(&self.skeletons));
        } else {
            self.pending.push(i);
        }
    }

    fn flush(&mut self, emit: &mut Emit<'_>) {
        for i in std::mem::take(&mut self.pending) {
            emit(&self.thoughts[i], self.thoughts[i].stage(&self.skeletons));
        }
    }

    /// The listing ended: judge what is left and return the index.
    pub fn finish(mut self, emit: &mut Emit<'_>) -> ThoughtIndex {
        self.close(emit);
        self.templates_final = true;
        self.flush(emit);
        ThoughtIndex {
            thoughts: self.thoughts,
            skeletons: self.skeletons,
            skipped: self.skipped,
        }
    }
}

/// `(parent, name, file)` for a path inside a candidate thought directory:
/// `tgs/thoughts/<name>/<file>` or the legacy `tgs/<name>/<file>`.
fn thought_path(path: &str) -> Option<(&str, &str, &str)> {
    let (parent, rest) = if let Some(r) = path.strip_prefix("tgs/thoughts/") {
        ("tgs/thoughts", r)
    } else {
        ("tgs", path.strip_prefix("tgs/")?)
    };
    let (name, file) = rest.split_once('/')?;
    Some((parent, name, file))
}

/// Split a committed tree listing into thoughts (both layouts and the legacy
/// place), sorted by directory, and the blob ids of the repository's templates.
/// (No file is read: [`Thought::stage`] on these is judged by blob ids alone.)
pub fn index_tree(entries: &[TreeEntry]) -> (Vec<Thought>, Vec<String>) {
    let mut sorted: Vec<&TreeEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut ix = Indexer::default();
    let mut ignore = |_: &Thought, _: Stage| {};
    for e in sorted {
        ix.push(
            TreeEntryRef {
                mode: &e.mode,
                kind: e.kind,
                oid: &e.oid,
                path: &e.path,
                size: None,
            },
            &mut ignore,
        );
    }
    let templates = ix.templates.clone();
    (ix.finish(&mut ignore).thoughts, templates)
}

/// Extract a title from a README (`# <hash> - <Title>`) or any markdown's first heading.
pub fn title_from_markdown(text: &str, role: Role) -> Option<String> {
    title_from_heading(&first_heading(text.as_bytes())?, role)
}

/// The text of the first markdown heading, looked for in the first 64 KiB.
pub fn first_heading(blob: &[u8]) -> Option<String> {
    let head = &blob[..blob.len().min(64 * 1024)];
    let text = String::from_utf8_lossy(head);
    let line = text.lines().map(str::trim).find(|l| l.starts_with('#'))?;
    Some(line.trim_start_matches('#').trim().to_owned())
}

/// The thoughts a README declares this one depends on: lines
/// `- Depends on: <dir>[, <dir>...]` in its header list (before the first
/// `## ` section), each a thought directory (`tgs/thoughts/x`) or name (`x`),
/// as `tgs/thoughts/<name>`. Anything that is not a thought name is skipped.
pub fn declared_dependencies(readme: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in readme.lines().take_while(|l| !l.starts_with("## ")) {
        let l = line.trim();
        let Some(rest) = l
            .strip_prefix("- ")
            .or_else(|| l.strip_prefix("* "))
            .map(str::trim)
        else {
            continue;
        };
        let Some((key, value)) = rest.split_once(':') else {
            continue;
        };
        if !key.trim().eq_ignore_ascii_case("depends on") {
            continue;
        }
        for item in value
            .split([',', ' '])
            .map(|v| v.trim().trim_matches('`').trim_end_matches('/'))
        {
            let name = item.rsplit('/').next().unwrap_or(item);
            if let Some(n) = ThoughtName::parse(name) {
                let dir = format!("{THOUGHTS_DIR}/{n}");
                if !out.contains(&dir) {
                    out.push(dir);
                }
            }
        }
    }
    out
}

/// The title a heading gives, for a file of this role.
pub fn title_from_heading(heading: &str, role: Role) -> Option<String> {
    let title = match role {
        Role::Readme => match heading.split_once(" - ") {
            Some((hash, t)) if ThoughtName::parse(&format!("{hash}-x")).is_some() => t.trim(),
            _ => heading,
        },
        _ => heading
            .strip_prefix("Research:")
            .or_else(|| heading.strip_prefix("Research -"))
            .unwrap_or(heading)
            .trim(),
    };
    // Placeholders such as `<Title>` are not titles.
    let clean = sanitize_title(title);
    let placeholder = clean.starts_with('<') && clean.ends_with('>');
    (!clean.is_empty() && !placeholder).then_some(clean)
}

/// Bound a title and strip control characters so it is safe to show and store.
pub fn sanitize_title(title: &str) -> String {
    let s = one_line_title(title);
    if s.chars().count() <= MAX_TITLE_CHARS {
        return s;
    }
    // At a word boundary when there is one in the last quarter, with an
    // ellipsis that says something was left out.
    let cut: String = s.chars().take(MAX_TITLE_CHARS - 1).collect();
    let at = cut
        .rfind(' ')
        .filter(|&i| cut[..i].chars().count() >= MAX_TITLE_CHARS * 3 / 4)
        .unwrap_or(cut.len());
    format!("{}…", cut[..at].trim_end())
}

/// The longest title kept, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

/// A title on one line: control characters as spaces, runs of white space as one.
pub fn one_line_title(title: &str) -> String {
    let s: String = title
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Which `cat-file` answer holds a title, and how to read it.
type TitleTicket = (usize, Role);

/// What is kept of a README: its first heading, and whether `thought new` wrote it.
struct Readme {
    heading: Option<String>,
    scaffolded: bool,
    /// Its `- Depends on:` lines (see [`declared_dependencies`]).
    depends_on: Vec<String>,
    /// Nothing but whitespace: the file is not written (the same reader
    /// serves small research, plan and summary files for this alone).
    blank: bool,
}

fn read_readme(blob: &[u8]) -> Readme {
    Readme {
        blank: blob.iter().all(u8::is_ascii_whitespace),
        heading: first_heading(blob),
        scaffolded: template::readme_is_scaffolded(blob),
        depends_on: declared_dependencies(&String::from_utf8_lossy(
            &blob[..blob.len().min(64 * 1024)],
        )),
    }
}

/// What `load_titled` reads of a wanted thought.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Titled {
    pub title: String,
    /// The thoughts its README says it depends on.
    pub depends_on: Vec<String>,
}

/// A thought whose stage is not settled by blob ids: some of its files may be
/// templates filled in by `thought new`, or blank.
struct Unsure {
    dir: String,
    /// The files that raised its stage and may yet not count (blob ids),
    /// with the ticket of those read to see whether they are blank.
    files: Vec<(String, Option<usize>)>,
    /// The title's ticket (the README's, which also tells whether `thought
    /// new` made the thought; else the research's).
    title: Option<TitleTicket>,
    fallback: String,
}

/// The largest file read to see whether it is blank. Whitespace is not
/// written: an empty or blank plan does not approve a thought. (A file of
/// more than 4 KiB of whitespace alone is not met in practice, and reading
/// every file would slow the listing of a large repository.)
const BLANK_MAX: u64 = 4096;

/// Whether `f` is small enough that it may be blank (its size unknown: no).
fn may_be_blank(f: &ThoughtFile) -> bool {
    f.size.is_some_and(|s| s <= BLANK_MAX)
}

/// Which of `files` are templates filled in by `thought new`, by matching
/// them against the built-in templates and the repository's (`templates`),
/// read in one `cat-file` process; the templates come first and become
/// patterns as they arrive.
fn filled_templates(
    repo: &Repo,
    templates: &[String],
    files: &[&str],
) -> Result<HashSet<String>, Error> {
    let n = templates.len();
    let patterns = std::cell::RefCell::new(Vec::new());
    let mut cat = git::CatFile::spawn(repo.git(), move |ticket, blob| {
        if ticket < n {
            patterns
                .borrow_mut()
                .extend(template::filled_skeleton_pattern(blob));
            return false;
        }
        template::builtin_filled_patterns()
            .iter()
            .chain(patterns.borrow().iter())
            .any(|p| p.is_match(blob))
    })?;
    for oid in templates
        .iter()
        .map(String::as_str)
        .chain(files.iter().copied())
    {
        cat.request(oid);
    }
    let verdicts = cat.finish()?;
    Ok(files
        .iter()
        .zip(verdicts.iter().skip(n))
        .filter(|(_, v)| **v == Some(true))
        .map(|(f, _)| f.to_string())
        .collect())
}

/// The thoughts of a repository at a commit, with what is needed to judge them.
#[derive(Debug, Clone, Default)]
pub struct ThoughtIndex {
    pub thoughts: Vec<Thought>,
    pub skeletons: HashSet<String>,
    /// Folders under `tgs/thoughts/` passed over because their name breaks
    /// the naming rule ([`NAME_RULE`]), for the caller to report.
    pub skipped: Vec<String>,
}

impl ThoughtIndex {
    /// Read every thought committed at `rev` in one pass over the tree, with
    /// exact stages (the files that may be filled-in templates are read).
    pub fn load(repo: &Repo, rev: Option<&str>) -> Result<ThoughtIndex, Error> {
        Self::load_paths(repo, rev, &["tgs"])
    }

    /// Read only the given thought directories (and the templates), for commands that touch a few.
    pub fn load_paths(
        repo: &Repo,
        rev: Option<&str>,
        paths: &[&str],
    ) -> Result<ThoughtIndex, Error> {
        Ok(Self::load_inner(repo, rev, paths, false, |_, _| true)?.0)
    }

    /// Stream the listing and, for each thought `want` picks as it is judged,
    /// read its title in a `cat-file` process running alongside the listing.
    /// Returns the index and the titles of the wanted thoughts, by directory.
    ///
    /// `want` must be a plain predicate: it may be asked about a thought more
    /// than once. When blob ids do not settle a thought's stage (it has a
    /// README, and a file that raised its stage may be a template filled in
    /// by `thought new`), `want` is first asked about each stage the thought
    /// may have; only if it wants one of them is the README read (and, if
    /// `thought new` made the thought, those files), and it is then asked
    /// about the stage found. [`ThoughtIndex::stage`] is exact for every
    /// thought that `want` wanted at some stage.
    pub fn load_titled(
        repo: &Repo,
        rev: Option<&str>,
        paths: &[&str],
        want: impl FnMut(&Thought, Stage) -> bool,
    ) -> Result<(ThoughtIndex, HashMap<String, Titled>), Error> {
        Self::load_inner(repo, rev, paths, true, want)
    }

    fn load_inner(
        repo: &Repo,
        rev: Option<&str>,
        paths: &[&str],
        titled: bool,
        mut want: impl FnMut(&Thought, Stage) -> bool,
    ) -> Result<(ThoughtIndex, HashMap<String, Titled>), Error> {
        let Some(rev) = rev else {
            return Ok((ThoughtIndex::default_with_builtins(), HashMap::new()));
        };
        let mut with_templates: Vec<&str> = paths.to_vec();
        if !paths.contains(&"tgs") {
            with_templates.push(TEMPLATES_DIR);
        }
        // Started before the listing so that both processes start up at once.
        // Without titles it is started when a README is first needed.
        let mut cat = if titled {
            Some(git::CatFile::spawn(repo.git(), |_, blob| {
                read_readme(blob)
            })?)
        } else {
            None
        };
        let mut failed: Option<Error> = None;
        // (dir, ticket of its title blob, fallback title)
        let mut wanted: Vec<(String, Option<TitleTicket>, String)> = Vec::new();
        let mut unsure: Vec<Unsure> = Vec::new();
        let mut ix = Indexer::default();
        let (index, templates) = {
            let mut emit = |t: &Thought, stage: Stage| {
                let files = t.maybe_filled(stage);
                let scaffold = t.file(Role::Readme).is_some() && !files.is_empty();
                if !scaffold && !files.iter().any(|f| may_be_blank(f)) {
                    if want(t, stage) {
                        let title = t
                            .title_source()
                            .and_then(|(f, role)| cat.as_mut().map(|c| (c.request(&f.oid), role)));
                        wanted.push((t.dir.clone(), title, t.name.title_from_slug()));
                    }
                    return;
                };
                // Is any stage it may turn out to have of interest?
                if !Stage::ALL
                    .into_iter()
                    .filter(|&s| s <= stage)
                    .any(|s| want(t, s))
                {
                    return;
                }
                if cat.is_none() && failed.is_none() {
                    match git::CatFile::spawn(repo.git(), |_, blob| read_readme(blob)) {
                        Ok(c) => cat = Some(c),
                        Err(e) => failed = Some(e.into()),
                    }
                }
                let Some(c) = cat.as_mut() else {
                    return;
                };
                unsure.push(Unsure {
                    dir: t.dir.clone(),
                    files: files
                        .into_iter()
                        .map(|f| (f.oid.clone(), may_be_blank(f).then(|| c.request(&f.oid))))
                        .collect(),
                    title: t.title_source().map(|(f, role)| (c.request(&f.oid), role)),
                    fallback: t.name.title_from_slug(),
                });
            };
            git::stream_ls_tree(repo.git(), rev, &with_templates, |e| ix.push(e, &mut emit))?;
            let templates = ix.templates.clone();
            (ix.finish(&mut emit), templates)
        };
        if let Some(e) = failed {
            return Err(e);
        }
        let readmes = match cat {
            Some(c) => c.finish()?,
            None => Vec::new(),
        };
        let readme = |i: usize| readmes.get(i).and_then(Option::as_ref);
        // Only the files of thoughts that `thought new` made can be its filled-in templates.
        let mut index = index;
        let scaffolded = |u: &Unsure| {
            u.title.is_some_and(|(i, role)| {
                role == Role::Readme && readme(i).is_some_and(|r| r.scaffolded)
            })
        };
        let suspects: Vec<&str> = unsure
            .iter()
            .filter(|u| scaffolded(u))
            .flat_map(|u| u.files.iter().map(|(oid, _)| oid.as_str()))
            .filter(|oid| !index.skeletons.contains(*oid))
            .collect();
        if !suspects.is_empty() {
            let filled = filled_templates(repo, &templates, &suspects)?;
            index.skeletons.extend(filled);
        }
        let blank = unsure
            .iter()
            .flat_map(|u| &u.files)
            .filter(|(_, ticket)| ticket.and_then(readme).is_some_and(|r| r.blank));
        index
            .skeletons
            .extend(blank.map(|(oid, _)| oid.clone()).collect::<Vec<_>>());
        for u in unsure {
            let Some(t) = index.find(&u.dir) else {
                continue;
            };
            if want(t, index.stage(t)) {
                wanted.push((u.dir, u.title, u.fallback));
            }
        }
        let titles = wanted
            .into_iter()
            .map(|(dir, ticket, fallback)| {
                let read = ticket.and_then(|(i, role)| Some((readme(i)?, role)));
                let title = read
                    .and_then(|(r, role)| title_from_heading(r.heading.as_ref()?, role))
                    .unwrap_or(fallback);
                let depends_on = read
                    .filter(|(_, role)| *role == Role::Readme)
                    .map(|(r, _)| r.depends_on.clone())
                    .unwrap_or_default();
                (dir, Titled { title, depends_on })
            })
            .collect();
        Ok((index, titles))
    }

    fn default_with_builtins() -> ThoughtIndex {
        ThoughtIndex {
            thoughts: Vec::new(),
            skeletons: template::builtin_skeleton_oids(),
            skipped: Vec::new(),
        }
    }

    pub fn find(&self, dir: &str) -> Option<&Thought> {
        self.thoughts
            .binary_search_by(|t| t.dir.as_str().cmp(dir))
            .ok()
            .map(|i| &self.thoughts[i])
    }

    pub fn stage(&self, t: &Thought) -> Stage {
        t.stage(&self.skeletons)
    }

    /// Titles for the given thoughts, reading their README (or research) blobs in one batch.
    pub fn titles(&self, repo: &Repo, thoughts: &[&Thought]) -> Result<Vec<String>, Error> {
        let mut cat = git::CatFile::spawn(repo.git(), |_, blob| first_heading(blob))?;
        let tickets: Vec<Option<TitleTicket>> = thoughts
            .iter()
            .map(|t| {
                t.title_source()
                    .map(|(f, role)| (cat.request(&f.oid), role))
            })
            .collect();
        let headings = cat.finish()?;
        Ok(thoughts
            .iter()
            .zip(tickets)
            .map(|(t, ticket)| {
                ticket
                    .and_then(|(i, role)| {
                        title_from_heading(headings.get(i)?.as_ref()?.as_ref()?, role)
                    })
                    .unwrap_or_else(|| t.name.title_from_slug())
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(path: &str, oid: &str) -> TreeEntry {
        TreeEntry {
            mode: "100644".into(),
            kind: ObjectKind::Blob,
            oid: oid.into(),
            path: path.into(),
        }
    }

    #[test]
    fn names() {
        assert!(ThoughtName::parse("abc1234-feature-x").is_some());
        assert!(ThoughtName::parse("abc1234-Feature_x.v2").is_some());
        for bad in [
            "abc123-short-hash",
            "xyz1234-not-hex",
            "abc1234-",
            "abc1234",
            "abc1234-../x",
            "abc1234-a/b",
            "abc1234-.hidden",
            "abc1234--dash",
            "abc1234-a..b",
            "ABC1234-upper-hash",
            "abc1234-x.lock",
            "",
        ] {
            assert!(ThoughtName::parse(bad).is_none(), "{bad}");
        }
        let n = ThoughtName::parse("abc1234-add-dark_mode").unwrap();
        assert_eq!(n.hash(), "abc1234");
        assert_eq!(n.title_from_slug(), "Add dark mode");
    }

    #[test]
    fn declared_dependencies_in_the_header_list() {
        let readme = "# abc1234 - X\n\n- Base Hash: `abc1234`\n- Depends on: tgs/thoughts/1111111-a, `2222222-b`\n* depends on: 3333333-c/\n- Depends on: not a name\n\n## Idea Spec\n- Depends on: 4444444-d\n";
        assert_eq!(
            declared_dependencies(readme),
            [
                "tgs/thoughts/1111111-a",
                "tgs/thoughts/2222222-b",
                "tgs/thoughts/3333333-c"
            ]
        );
        assert!(declared_dependencies("# x\n").is_empty());
    }

    #[test]
    fn slugs() {
        assert_eq!(slugify("Add Dark Mode!"), "add-dark-mode");
        assert_eq!(slugify("  --Hello,  World--  "), "hello-world");
        assert_eq!(slugify("!!!"), "");
        assert_eq!(slugify(""), "");
        let long = slugify(&"word ".repeat(40));
        assert!(long.len() <= 60 && !long.ends_with('-'), "{long}");
    }

    #[test]
    fn slugs_transliterate_to_ascii() {
        assert_eq!(slugify("Ünïcode wörds"), "unicode-words");
        assert_eq!(
            slugify("Café crème: naïve résumé"),
            "cafe-creme-naive-resume"
        );
        assert_eq!(slugify("日本語のタイトル"), "ri-ben-yu-notaitoru");
        assert_eq!(slugify("Привет, мир"), "privet-mir");
        assert_eq!(slugify("Straße ΑΒΓ"), "strasse-abg");
        assert_eq!(slugify("Ship it 🚀"), "ship-it-rocket");
        // Whatever the script, the result is a valid thought name.
        for t in ["日本語のタイトル", "Café crème", "🚀🚀", "\u{10FFFF}x"] {
            let slug = slugify(t);
            assert!(
                ThoughtName::parse(&format!("abc1234-{slug}")).is_some(),
                "{t}: {slug}"
            );
        }
        let long = slugify(&"日本語".repeat(40));
        assert!(long.len() <= 60 && !long.ends_with('-'), "{long}");
    }

    #[test]
    fn stages_from_the_tree() {
        let skel = "5".repeat(40);
        let entries = vec![
            blob("tgs/thoughts/aaaaaaa-approved/research.md", "1"),
            blob("tgs/thoughts/aaaaaaa-approved/plan.md", "2"),
            blob("tgs/thoughts/aaaaaaa-approved/implementation.md", &skel),
            blob("tgs/thoughts/bbbbbbb-numbered/00_research.md", "3"),
            blob("tgs/thoughts/bbbbbbb-numbered/20_plan.md", "4"),
            blob("tgs/thoughts/bbbbbbb-numbered/50_impl.md", "6"),
            blob("tgs/thoughts/ccccccc-draft/research.md", "7"),
            blob("tgs/thoughts/ddddddd-skeleton-plan/research.md", "8"),
            blob("tgs/thoughts/ddddddd-skeleton-plan/plan.md", &skel),
            blob("tgs/eeeeeee-legacy/research.md", "9"),
            blob("tgs/eeeeeee-legacy/plan.md", "a"),
            blob("tgs/thoughts/not-a-thought/research.md", "b"),
            blob("tgs/agentops/tgs/plan.md", &skel),
            blob("tgs/server/backlog.json", "c"),
            blob("src/main.rs", "d"),
        ];
        let (thoughts, templates) = index_tree(&entries);
        assert_eq!(templates, vec![skel.clone()]);
        let skeletons: HashSet<String> = templates.into_iter().collect();
        let got: Vec<(&str, Stage, bool)> = thoughts
            .iter()
            .map(|t| (t.dir.as_str(), t.stage(&skeletons), t.legacy))
            .collect();
        assert_eq!(
            got,
            vec![
                ("tgs/eeeeeee-legacy", Stage::Approved, true),
                ("tgs/thoughts/aaaaaaa-approved", Stage::Approved, false),
                ("tgs/thoughts/bbbbbbb-numbered", Stage::Implemented, false),
                ("tgs/thoughts/ccccccc-draft", Stage::Draft, false),
                ("tgs/thoughts/ddddddd-skeleton-plan", Stage::Draft, false),
            ]
        );
    }

    #[test]
    fn folders_that_break_the_naming_rule_are_reported_once() {
        let mut entries = vec![
            blob("tgs/thoughts/My Idea/research.md", "1"),
            blob("tgs/thoughts/My Idea/plan.md", "2"),
            blob("tgs/thoughts/abc1234-ok/research.md", "3"),
            blob("tgs/thoughts/abc1234-café/research.md", "4"),
            blob("tgs/thoughts/ABC1234-upper/plan.md", "5"),
            blob("tgs/thoughts/notes/a/b.md", "6"),
            blob("tgs/thoughts/.hidden/x.md", "7"),
            blob("tgs/thoughts/README.md", "8"),
            blob("tgs/server/backlog.json", "9"),
            blob("tgs/agentops/AGENTOPS.md", "a"),
        ];
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let mut ix = Indexer::default();
        let mut ignore = |_: &Thought, _: Stage| {};
        for e in &entries {
            ix.push(
                TreeEntryRef {
                    mode: &e.mode,
                    kind: e.kind,
                    oid: &e.oid,
                    path: &e.path,
                    size: None,
                },
                &mut ignore,
            );
        }
        let index = ix.finish(&mut ignore);
        assert_eq!(index.thoughts.len(), 1);
        assert_eq!(
            index.skipped,
            [
                "tgs/thoughts/ABC1234-upper",
                "tgs/thoughts/My Idea",
                "tgs/thoughts/abc1234-café",
                "tgs/thoughts/notes",
            ]
        );
    }

    #[test]
    fn symlinks_are_not_thought_files() {
        let mut e = blob("tgs/thoughts/aaaaaaa-x/research.md", "1");
        e.mode = "120000".into();
        let (thoughts, _) = index_tree(&[e, blob("tgs/thoughts/aaaaaaa-x/plan.md", "2")]);
        assert_eq!(thoughts[0].stage(&HashSet::new()), Stage::Draft);
    }

    #[test]
    fn reading_order() {
        let (t, _) = index_tree(&[
            blob("tgs/thoughts/aaaaaaa-x/plan.md", "1"),
            blob("tgs/thoughts/aaaaaaa-x/aibrief.md", "2"),
            blob("tgs/thoughts/aaaaaaa-x/research.md", "3"),
            blob("tgs/thoughts/aaaaaaa-x/README.md", "4"),
        ]);
        assert_eq!(
            t[0].ordered_paths(),
            vec![
                "tgs/thoughts/aaaaaaa-x/README.md",
                "tgs/thoughts/aaaaaaa-x/research.md",
                "tgs/thoughts/aaaaaaa-x/plan.md",
                "tgs/thoughts/aaaaaaa-x/aibrief.md",
            ]
        );
    }

    #[test]
    fn titles() {
        assert_eq!(
            title_from_markdown("# abc1234 - Add dark mode\n\n- Base Hash", Role::Readme)
                .as_deref(),
            Some("Add dark mode")
        );
        assert_eq!(
            title_from_markdown("intro\n## Research: Faster scans\n", Role::Research).as_deref(),
            Some("Faster scans")
        );
        assert_eq!(title_from_markdown("# <Title>\n", Role::Research), None);
        assert_eq!(title_from_markdown("no heading", Role::Readme), None);
        assert_eq!(
            title_from_markdown("# a\tb\u{7}  c", Role::Readme).as_deref(),
            Some("a b c")
        );
    }
}
