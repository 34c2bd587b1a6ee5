//! What must not leave: secrets in the work an agent hands over.
//!
//! Before a branch is pushed or anything is sent to GitHub, tgs scans what
//! would leave: the lines each commit of the branch adds (every commit, not
//! only the final tree: a secret added in one commit and removed in the next
//! is still in the history that is pushed), the paths it adds, its commit
//! messages and authors, the implementation summary, and the pull request's
//! title and body. It looks for two things:
//!
//! - **Values tgs knows to be secret**: the values of environment variables
//!   named like secrets (see [`name_looks_secret`]: the
//!   agent's model key, every GitHub token tgs holds), and those of
//!   `ai.redact_env_keys`; each in the encodings a leak takes ([`encodings`]):
//!   raw, each line of a multi-line value, base64 (standard and URL-safe) at
//!   each of its three alignments inside a larger blob, URL-encoded,
//!   JSON-escaped, XML-escaped. These are the GitHub Actions runner's
//!   secret-masker encodings, with the base64 alignments computed exactly.
//! - **Well-known credential shapes** ([`RULES`]): GitHub tokens, Anthropic
//!   and OpenAI keys, AWS access key ids, private key blocks. The patterns
//!   are adapted from gitleaks' rule set (`config/gitleaks.toml`, MIT
//!   licence, Copyright (c) 2019 Zachary Rice); only these few are vendored.
//!   No crate on crates.io offers a maintained rule set as a library: the
//!   candidates are young scanners of their own, so the rules are kept here,
//!   with their gitleaks ids.
//!
//! A finding names where (file and line, commit, or which text) and which
//! rule, never the value: findings end up in logs, the backlog's
//! `last_error` and GitHub issues.

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;

use aho_corasick::AhoCorasick;
use base64::Engine;
use regex::bytes::{Regex, RegexSet};

use crate::git::{Git, GitError};
use crate::Error;

/// Shorter values are not treated as secrets: redacting "1" or "true"
/// everywhere would wreck the log and protect nothing.
pub const MIN_SECRET_LEN: usize = 6;

/// Whether an environment variable's name says its value is a secret:
/// `*_KEY`, `*TOKEN*`, `*SECRET*`, `*PASSWORD*` (any case).
pub fn name_looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.ends_with("_KEY")
        || ["TOKEN", "SECRET", "PASSWORD"]
            .iter()
            .any(|word| upper.contains(word))
}

/// A credential shape: a gitleaks rule id and its pattern.
pub struct Rule {
    pub id: &'static str,
    pub pattern: &'static str,
}

/// The credential shapes looked for in everything that leaves. Adapted from
/// gitleaks (MIT): `github-pat`, `github-oauth`, `github-app-token`,
/// `github-refresh-token`, `github-fine-grained-pat`, `anthropic-api-key`,
/// `anthropic-admin-api-key`, `openai-api-key`, `aws-access-token`,
/// `private-key` (the header line alone: the scan goes line by line).
pub const RULES: &[Rule] = &[
    Rule {
        id: "github-pat",
        pattern: r"ghp_[0-9a-zA-Z]{36}",
    },
    Rule {
        id: "github-oauth",
        pattern: r"gho_[0-9a-zA-Z]{36}",
    },
    Rule {
        id: "github-app-token",
        pattern: r"(?:ghu|ghs)_[0-9a-zA-Z]{36}",
    },
    Rule {
        id: "github-refresh-token",
        pattern: r"ghr_[0-9a-zA-Z]{36}",
    },
    Rule {
        id: "github-fine-grained-pat",
        pattern: r"github_pat_\w{82}",
    },
    Rule {
        id: "anthropic-api-key",
        pattern: r"sk-ant-api03-[a-zA-Z0-9_\-]{93}AA",
    },
    Rule {
        id: "anthropic-admin-api-key",
        pattern: r"sk-ant-admin01-[a-zA-Z0-9_\-]{93}AA",
    },
    Rule {
        id: "openai-api-key",
        pattern: r"sk-(?:proj|svcacct|admin)-(?:[A-Za-z0-9_-]{74}|[A-Za-z0-9_-]{58})T3BlbkFJ(?:[A-Za-z0-9_-]{74}|[A-Za-z0-9_-]{58})|sk-[a-zA-Z0-9]{20}T3BlbkFJ[a-zA-Z0-9]{20}",
    },
    Rule {
        id: "aws-access-token",
        // gitleaks allows AWS's documented example keys (…EXAMPLE).
        pattern: r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b",
    },
    Rule {
        id: "private-key",
        pattern: r"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----",
    },
];

/// A value tgs knows to be secret, and where it comes from (a variable's
/// name: said in findings, unlike the value).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    pub name: String,
    pub value: String,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({}, {} bytes)", self.name, self.value.len())
    }
}

/// The secrets of an environment: variables named like secrets (`*_KEY`,
/// `*TOKEN*`, `*SECRET*`, `*PASSWORD*`) and those named in `extra_keys`,
/// with values of at least [`MIN_SECRET_LEN`] bytes.
pub fn known_secrets(
    vars: impl IntoIterator<Item = (String, String)>,
    extra_keys: &[String],
) -> Vec<Secret> {
    let mut out: Vec<Secret> = vars
        .into_iter()
        .filter(|(name, value)| {
            value.len() >= MIN_SECRET_LEN
                && (name_looks_secret(name) || extra_keys.iter().any(|k| k == name))
        })
        .map(|(name, value)| Secret { name, value })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// How a secret is written in a leak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Raw,
    /// One line of a multi-line value.
    Line,
    /// Base64 of a blob holding the value at an offset of 0, 1 or 2 (mod 3).
    Base64(u8),
    /// The same, URL-safe alphabet.
    Base64Url(u8),
    UrlEncoded,
    JsonEscaped,
    XmlEscaped,
    /// Hexadecimal, in lower or upper case.
    Hex,
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Encoding::Raw => f.write_str("as is"),
            Encoding::Line => f.write_str("a line of it"),
            Encoding::Base64(_) => f.write_str("base64-encoded"),
            Encoding::Base64Url(_) => f.write_str("base64url-encoded"),
            Encoding::Hex => f.write_str("hex-encoded"),
            Encoding::UrlEncoded => f.write_str("URL-encoded"),
            Encoding::JsonEscaped => f.write_str("JSON-escaped"),
            Encoding::XmlEscaped => f.write_str("XML-escaped"),
        }
    }
}

/// The forms `value` takes when it leaks: each distinct string at least
/// [`MIN_SECRET_LEN`] bytes long, the raw value first.
///
/// Base64 at alignment `k` is the part of the encoding of `k` unknown bytes
/// followed by the value followed by unknown bytes that depends on the value
/// alone: the characters mixing in a neighbour's bits are cut, so the string
/// is found inside any blob that holds the value at an offset of `k` (mod 3).
pub fn encodings(value: &str) -> Vec<(Encoding, String)> {
    let mut out: Vec<(Encoding, String)> = Vec::new();
    let mut add = |e: Encoding, s: String| {
        if s.len() >= MIN_SECRET_LEN && !out.iter().any(|(_, t)| *t == s) {
            out.push((e, s));
        }
    };
    add(Encoding::Raw, value.to_owned());
    if value.contains('\n') {
        for line in value.lines() {
            add(Encoding::Line, line.trim().to_owned());
        }
    }
    for k in 0..3u8 {
        add(
            Encoding::Base64(k),
            base64_aligned(&base64::engine::general_purpose::STANDARD_NO_PAD, value, k),
        );
        add(
            Encoding::Base64Url(k),
            base64_aligned(&base64::engine::general_purpose::URL_SAFE_NO_PAD, value, k),
        );
    }
    add(
        Encoding::UrlEncoded,
        percent_encoding::utf8_percent_encode(value, URI_COMPONENT).to_string(),
    );
    let json = serde_json::to_string(value).unwrap_or_default();
    add(
        Encoding::JsonEscaped,
        json.get(1..json.len().saturating_sub(1))
            .unwrap_or_default()
            .to_owned(),
    );
    add(
        Encoding::XmlEscaped,
        value
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&apos;"),
    );
    let hex: String = value.bytes().map(|b| format!("{b:02x}")).collect();
    add(Encoding::Hex, hex.to_ascii_uppercase());
    add(Encoding::Hex, hex);
    out
}

/// What `encodeURIComponent` leaves alone: letters, digits and `-_.!~*'()`.
const URI_COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

fn base64_aligned(engine: &impl Engine, value: &str, k: u8) -> String {
    let k = usize::from(k);
    let mut bytes = vec![0u8; k];
    bytes.extend_from_slice(value.as_bytes());
    let encoded = engine.encode(&bytes);
    // Characters fully determined by the value's bytes: from the first
    // group boundary after the unknown prefix...
    let skip = [0, 2, 3][k];
    // ...to the last character not mixing in a byte after the value.
    let n = bytes.len();
    let end = 4 * (n / 3) + [0, 1, 2][n % 3];
    encoded.get(skip..end).unwrap_or_default().to_owned()
}

/// One thing found: where, and by which rule. Never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// A path in the repository, or what the text is (`the pull request's body`).
    pub place: String,
    /// 1-based, in the file as that commit has it (or in the text).
    pub line: Option<usize>,
    /// The commit that adds it (short hash).
    pub commit: Option<String>,
    /// `github-pat`, or `the value of ANTHROPIC_API_KEY (base64-encoded)`.
    pub rule: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.place)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if let Some(c) = &self.commit {
            write!(f, " (commit {c})")?;
        }
        write!(f, ": {}", self.rule)
    }
}

/// How many findings a problem names before "and N more".
const NAMED: usize = 3;

/// The verdict's problem for `findings` (`None` if there are none):
/// `secret: config.env:1 (commit 1a2b3c4): the value of ANTHROPIC_API_KEY`.
pub fn problem(findings: &[Finding]) -> Option<String> {
    if findings.is_empty() {
        return None;
    }
    let mut s = format!(
        "secret: {}",
        findings
            .iter()
            .take(NAMED)
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    if findings.len() > NAMED {
        s.push_str(&format!(" and {} more", findings.len() - NAMED));
    }
    Some(s)
}

/// The hand-over's last check before a pull request is sent: the reason to
/// refuse it when its title or body holds a secret of this process's
/// environment (and of the variables named in `extra`, the settings'
/// `ai.redact_env_keys`) or a credential shape. The branch was checked
/// before it was pushed ([`crate::verify::scan_branch`]); this guards what
/// only the pull request carries.
pub fn refuse_pull_request(extra: &[String], title: &str, body: &str) -> Option<String> {
    let scanner = Scanner::from_env(std::env::vars(), extra);
    problem(&scanner.scan_pull_request(title, body))
}

/// Lines longer than this are scanned in pieces (overlapping by the longest
/// literal), so memory stays bounded whatever the diff holds.
const PIECE: usize = 1 << 20;

/// The matcher: known values in their encodings, and the rules.
pub struct Scanner {
    literals: Option<AhoCorasick>,
    /// For each literal: `the value of NAME (encoding)`.
    labels: Vec<String>,
    longest: usize,
    rules: &'static RegexSet,
    rule_res: &'static [Regex],
}

impl fmt::Debug for Scanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scanner")
            .field("literals", &self.labels.len())
            .field("rules", &RULES.len())
            .finish()
    }
}

/// Compile [`RULES`] now, on a thread of their own (tens of milliseconds
/// of CPU), so that the first session's checks do not wait for it: a
/// command that will scan calls this first thing.
pub fn warm_up() {
    std::thread::spawn(|| {
        let _ = compiled_rules();
    });
}

/// [`RULES`] compiled, once per process: every session builds scanners
/// (its checks, its kept work, what the state keeps of its words).
fn compiled_rules() -> (&'static RegexSet, &'static [Regex]) {
    static COMPILED: std::sync::OnceLock<(RegexSet, Vec<Regex>)> = std::sync::OnceLock::new();
    let (set, each) = COMPILED.get_or_init(|| {
        let set = RegexSet::new(RULES.iter().map(|r| r.pattern)).expect("valid rules");
        let each = RULES
            .iter()
            .map(|r| Regex::new(r.pattern).expect("valid rule"))
            .collect();
        (set, each)
    });
    (set, each)
}

impl Scanner {
    /// A scanner for these secrets (in every encoding) and [`RULES`].
    pub fn new(secrets: &[Secret]) -> Scanner {
        let mut pats = Vec::new();
        let mut labels = Vec::new();
        for s in secrets {
            for (e, form) in encodings(&s.value) {
                labels.push(match e {
                    Encoding::Raw => format!("the value of {}", s.name),
                    e => format!("the value of {} ({e})", s.name),
                });
                pats.push(form);
            }
        }
        let longest = pats.iter().map(String::len).max().unwrap_or(0);
        let literals = if pats.is_empty() {
            None
        } else {
            // Literal strings always build; a failure (too many states)
            // would leave the values unchecked, so it is not swallowed.
            Some(AhoCorasick::new(&pats).expect("an automaton of literal strings"))
        };
        let (rules, rule_res) = compiled_rules();
        Scanner {
            literals,
            labels,
            longest,
            rules,
            rule_res,
        }
    }

    /// A scanner for the secrets of `vars` (see [`known_secrets`]).
    pub fn from_env(
        vars: impl IntoIterator<Item = (String, String)>,
        extra_keys: &[String],
    ) -> Scanner {
        Scanner::new(&known_secrets(vars, extra_keys))
    }

    /// The rules `text` breaks: known values first, then shapes; each once.
    pub fn hits(&self, text: &[u8]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let Some(ac) = &self.literals {
            for m in ac.find_overlapping_iter(text) {
                let label = &self.labels[m.pattern().as_usize()];
                if !out.contains(label) {
                    out.push(label.clone());
                }
            }
        }
        if self.rules.is_match(text) {
            for i in self.rules.matches(text).iter() {
                let real = self.rule_res[i].find_iter(text).any(|m| {
                    // gitleaks' allowance for AWS's documented examples.
                    !(RULES[i].id == "aws-access-token" && m.as_bytes().ends_with(b"EXAMPLE"))
                });
                if real && !out.iter().any(|o| o == RULES[i].id) {
                    out.push(RULES[i].id.to_owned());
                }
            }
        }
        out
    }

    /// `text` with every known value and every credential shape replaced
    /// by `[REDACTED]`: for text tgs keeps in the shared state (a reason, the
    /// end of an agent's output), which the transcript's redaction of named
    /// values alone lets a token pasted by the agent through.
    pub fn mask(&self, text: &str) -> String {
        let mut bytes = text.as_bytes().to_vec();
        if let Some(ac) = &self.literals {
            bytes = ac.replace_all_bytes(&bytes, &vec![&b"[REDACTED]"[..]; self.labels.len()]);
        }
        for (i, re) in self.rule_res.iter().enumerate() {
            if re.is_match(&bytes) {
                let id = RULES[i].id;
                bytes = re
                    .replace_all(&bytes, |c: &regex::bytes::Captures<'_>| {
                        let m = c.get(0).map_or(&b""[..], |m| m.as_bytes());
                        if id == "aws-access-token" && m.ends_with(b"EXAMPLE") {
                            m.to_vec()
                        } else {
                            b"[REDACTED]".to_vec()
                        }
                    })
                    .into_owned();
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Scan a text line by line: each hit is a finding at `place:line`.
    pub fn scan_text(&self, place: &str, text: &str) -> Vec<Finding> {
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            for rule in self.hits(line.as_bytes()) {
                out.push(Finding {
                    place: place.to_owned(),
                    line: Some(i + 1),
                    commit: None,
                    rule,
                });
            }
        }
        // A multi-line value is found whole too.
        if let Some(ac) = &self.literals {
            for m in ac.find_overlapping_iter(text) {
                let label = &self.labels[m.pattern().as_usize()];
                if !out.iter().any(|f| &f.rule == label) {
                    out.push(Finding {
                        place: place.to_owned(),
                        line: Some(text[..m.start()].lines().count().max(1)),
                        commit: None,
                        rule: label.clone(),
                    });
                }
            }
        }
        out
    }

    /// Scan a pull request before it is sent: its title and its body.
    pub fn scan_pull_request(&self, title: &str, body: &str) -> Vec<Finding> {
        let mut out = self.scan_text("the pull request's title", title);
        out.extend(self.scan_text("the pull request's body", body));
        out
    }

    /// Scan what pushing `head` would send beyond `base`: for every commit
    /// of `base..head`, the paths it adds and the lines it adds (a merge:
    /// against its first parent), from one `git log -p` streamed so that
    /// memory stays bounded whatever the size of the history; then each
    /// commit's raw object ([`Scanner::scan_commits`]).
    pub fn scan_history(&self, git: &Git, base: &str, head: &str) -> Result<Vec<Finding>, Error> {
        let range = format!("{base}..{head}");
        let args = [
            "-c",
            "core.quotePath=false",
            "log",
            "--reverse",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "--text",
            "--patch",
            "--unified=0",
            "--find-renames",
            "--diff-merges=first-parent",
            "--format=tformat:%x00tgs-commit %H",
            &range,
            "--",
        ];
        let shown = args.join(" ");
        let mut child = git
            .cmd(args)
            .spawn_session(Stdio::null(), Stdio::piped())
            .map_err(Error::from)?;
        let stderr = child.stderr.take().expect("piped stderr");
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut s);
            s
        });
        let stdout = child.stdout.take().expect("piped stdout");
        let mut parser = LogScan::new(self);
        let read = parser.read(BufReader::with_capacity(1 << 16, stdout));
        let status = child.wait()?;
        let stderr = err_reader.join().unwrap_or_default();
        read?;
        if !status.success() {
            return Err(GitError::Failed {
                args: shown,
                status: status.to_string(),
                stderr,
            }
            .into());
        }
        let (mut findings, commits) = parser.finish();
        findings.extend(self.scan_commits(git, &commits)?);
        Ok(findings)
    }

    /// Scan the raw objects of `commits` (full ids): every header (author,
    /// committer, and any other an agent wrote) and the whole message. A
    /// message is read as git stores and pushes it, NUL bytes and what
    /// follows them included: `git log`'s `%B` stops at the first NUL. One
    /// `git cat-file --batch` for all of them, read a line at a time.
    pub fn scan_commits(&self, git: &Git, commits: &[String]) -> Result<Vec<Finding>, Error> {
        let mut scan = ObjectScan::new(self, commits);
        crate::git::each_blob_line(git, commits, |i, line| scan.line(i, line))?;
        Ok(scan.findings)
    }
}

/// Where the scan of raw commit objects is.
struct ObjectScan<'s> {
    scanner: &'s Scanner,
    commits: &'s [String],
    /// The commit whose lines come now.
    current: usize,
    /// `None` in its headers; then how many lines into its message.
    message_line: Option<usize>,
    findings: Vec<Finding>,
}

impl<'s> ObjectScan<'s> {
    fn new(scanner: &'s Scanner, commits: &'s [String]) -> Self {
        ObjectScan {
            scanner,
            commits,
            current: usize::MAX,
            message_line: None,
            findings: Vec::new(),
        }
    }

    /// Line `line` of commit `i`'s raw object: headers up to the first
    /// empty line, the message after it.
    fn line(&mut self, i: usize, line: &[u8]) {
        if i != self.current {
            self.current = i;
            self.message_line = None;
        }
        let (place, number) = match &mut self.message_line {
            None if line.is_empty() => {
                self.message_line = Some(0);
                return;
            }
            None if line.starts_with(b"author ") => ("the author of a commit", None),
            None if line.starts_with(b"committer ") => ("the committer of a commit", None),
            None => ("a header of a commit", None),
            Some(n) => {
                *n += 1;
                ("the message of a commit", Some(*n))
            }
        };
        let commit = self.commits.get(i).map(|c| c[..c.len().min(7)].to_owned());
        for rule in self.scanner.hits(line) {
            let f = Finding {
                place: place.to_owned(),
                line: number,
                commit: commit.clone(),
                rule,
            };
            if !self.findings.contains(&f) {
                self.findings.push(f);
            }
        }
    }
}

/// Where the `git log -p` parser is.
#[derive(PartialEq, Eq)]
enum Part {
    Start,
    /// A file's diff header (before its first hunk).
    FileHeader,
    /// A hunk: the new file's line number of the next added line.
    Hunk(usize),
}

/// The diffs of a `git log -p` whose format line is `\0tgs-commit <id>`:
/// messages and identities are not in it (see [`Scanner::scan_commits`]).
struct LogScan<'s> {
    scanner: &'s Scanner,
    part: Part,
    /// The current commit, short.
    commit: String,
    /// Every commit of the log, full ids, in order.
    commits: Vec<String>,
    path: String,
    /// The current path holds a secret: it is not said.
    path_hidden: bool,
    findings: Vec<Finding>,
}

impl<'s> LogScan<'s> {
    fn new(scanner: &'s Scanner) -> Self {
        LogScan {
            scanner,
            part: Part::Start,
            commit: String::new(),
            commits: Vec::new(),
            path: String::new(),
            path_hidden: false,
            findings: Vec::new(),
        }
    }

    fn read(&mut self, mut r: impl BufRead) -> Result<(), Error> {
        let mut buf = Vec::with_capacity(1024);
        // The end of the previous piece of an over-long line, searched again
        // with the next piece so that nothing straddling the cut is missed;
        // and whether that line is one to scan (an added one).
        let overlap = self.scanner.longest.max(256);
        let mut carry: Option<(bool, Vec<u8>)> = None;
        loop {
            buf.clear();
            let n = (&mut r).take(PIECE as u64).read_until(b'\n', &mut buf)?;
            if n == 0 {
                break;
            }
            let whole = buf.last() == Some(&b'\n');
            if whole {
                buf.pop();
            }
            let piece = match carry.take() {
                None => {
                    let scanned = matches!(self.part, Part::Hunk(_)) && buf.starts_with(b"+");
                    self.line(&buf, whole);
                    if whole {
                        continue;
                    }
                    (scanned, std::mem::take(&mut buf))
                }
                Some((scanned, mut piece)) => {
                    piece.extend_from_slice(&buf);
                    if scanned {
                        self.content(&piece);
                    }
                    if whole {
                        if let (true, Part::Hunk(n)) = (scanned, &mut self.part) {
                            *n += 1;
                        }
                        continue;
                    }
                    (scanned, piece)
                }
            };
            let (scanned, piece) = piece;
            carry = Some((
                scanned,
                piece[piece.len().saturating_sub(overlap)..].to_vec(),
            ));
        }
        Ok(())
    }

    /// A whole line (or the first piece of a long one).
    fn line(&mut self, line: &[u8], whole: bool) {
        if let Some(rest) = line.strip_prefix(b"\0tgs-commit ") {
            let id = String::from_utf8_lossy(rest).into_owned();
            self.commit = id[..id.len().min(7)].to_owned();
            self.commits.push(id);
            self.part = Part::Start;
            return;
        }
        if line.starts_with(b"diff --git ") {
            self.part = Part::FileHeader;
            self.path.clear();
            self.path_hidden = false;
            return;
        }
        match self.part {
            Part::FileHeader | Part::Hunk(_) if line.starts_with(b"@@ ") => {
                self.part = Part::Hunk(hunk_start(line).unwrap_or(1));
            }
            Part::FileHeader => {
                let new_path = line
                    .strip_prefix(b"+++ ")
                    .or_else(|| line.strip_prefix(b"rename to "))
                    .or_else(|| line.strip_prefix(b"copy to "));
                if let Some(p) = new_path {
                    if p == b"/dev/null" {
                        return;
                    }
                    let p = unquote(p);
                    let p = if line.starts_with(b"+++ ") {
                        p.strip_prefix("b/").map(str::to_owned).unwrap_or(p)
                    } else {
                        p
                    };
                    let hits = self.scanner.hits(p.as_bytes());
                    self.path_hidden = !hits.is_empty();
                    for rule in hits {
                        self.findings.push(Finding {
                            place: "the name of a file it adds".into(),
                            line: None,
                            commit: Some(self.commit.clone()),
                            rule,
                        });
                    }
                    self.path = p;
                }
            }
            Part::Hunk(_) => {
                if let Some(added) = line.strip_prefix(b"+") {
                    self.content(added);
                    if whole {
                        if let Part::Hunk(n) = &mut self.part {
                            *n += 1;
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// An added line (or a piece of one) at the current line number.
    fn content(&mut self, text: &[u8]) {
        let Part::Hunk(n) = self.part else {
            return;
        };
        for rule in self.scanner.hits(text) {
            let place = if self.path_hidden {
                "a file whose name holds a secret".to_owned()
            } else {
                self.path.clone()
            };
            let f = Finding {
                place,
                line: Some(n),
                commit: Some(self.commit.clone()),
                rule,
            };
            if !self.findings.contains(&f) {
                self.findings.push(f);
            }
        }
    }

    /// The findings, and every commit of the log (full ids).
    fn finish(self) -> (Vec<Finding>, Vec<String>) {
        (self.findings, self.commits)
    }
}

/// The new file's first line in a hunk header `@@ -a,b +c,d @@`.
fn hunk_start(line: &[u8]) -> Option<usize> {
    let s = std::str::from_utf8(line).ok()?;
    let plus = s.split(' ').find(|w| w.starts_with('+'))?;
    plus[1..].split(',').next()?.parse().ok()
}

/// A path as git prints it: C-quoted (`"a\"b\303\251"`) when unusual.
fn unquote(p: &[u8]) -> String {
    let Some(inner) = p.strip_prefix(b"\"").and_then(|p| p.strip_suffix(b"\"")) else {
        return String::from_utf8_lossy(p).into_owned();
    };
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        let b = inner[i];
        if b != b'\\' || i + 1 == inner.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let c = inner[i + 1];
        i += 2;
        match c {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let digits: Vec<u8> = std::iter::once(c)
                    .chain(inner[i..].iter().copied().take(2))
                    .take_while(u8::is_ascii_digit)
                    .collect();
                i += digits.len() - 1;
                let v = digits.iter().fold(0u32, |a, d| a * 8 + u32::from(d - b'0'));
                out.push(v as u8);
            }
            other => out.push(other),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_hides_values_and_shapes_and_keeps_the_rest() {
        let sc = Scanner::from_env(
            [("MY_TOKEN".to_owned(), "s3cr3t-value-123456".to_owned())],
            &[],
        );
        let text = "found ghp_0123456789abcdefghijABCDEFGHIJ012345 and s3cr3t-value-123456; doc AKIAIOSFODNN7EXAMPLE";
        let masked = sc.mask(text);
        assert!(!masked.contains("ghp_0123"), "{masked}");
        assert!(!masked.contains("s3cr3t-value"), "{masked}");
        assert!(
            masked.starts_with("found [REDACTED] and [REDACTED];"),
            "{masked}"
        );
        assert!(
            masked.contains("AKIAIOSFODNN7EXAMPLE"),
            "the documented example stays: {masked}"
        );
        assert!(sc.hits(masked.as_bytes()).is_empty(), "{masked}");
    }

    const KEY: &str = "sk-ant-api03-test-value-0123456789abcdefghijklmnop";

    fn scanner() -> Scanner {
        Scanner::new(&[Secret {
            name: "ANTHROPIC_API_KEY".into(),
            value: KEY.into(),
        }])
    }

    #[test]
    fn base64_at_every_alignment_is_found_inside_a_larger_blob() {
        let s = scanner();
        for prefix in ["", "x", "xy", "xyz", "Authorization: "] {
            for suffix in ["", "!", "!?", "!?."] {
                let blob = format!("{prefix}{KEY}{suffix}");
                for engine in [
                    &base64::engine::general_purpose::STANDARD,
                    &base64::engine::general_purpose::URL_SAFE,
                ] {
                    let encoded = engine.encode(blob.as_bytes());
                    let hits = s.hits(format!("token={encoded};").as_bytes());
                    assert!(
                        hits.iter().any(|h| h.contains("base64")),
                        "prefix {prefix:?}, suffix {suffix:?}: {hits:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn url_json_and_xml_forms_are_found() {
        let v = "pa ss\"w&rd/with\\odd<chars>";
        let s = Scanner::new(&[Secret {
            name: "DB_PASSWORD".into(),
            value: v.into(),
        }]);
        let url = percent_encoding::utf8_percent_encode(v, URI_COMPONENT).to_string();
        assert!(s.hits(format!("https://x/?p={url}").as_bytes())[0].contains("URL-encoded"));
        let json = serde_json::json!({ "p": v }).to_string();
        assert!(s.hits(json.as_bytes())[0].contains("JSON-escaped"));
        let xml = "<p>pa ss&quot;w&amp;rd/with\\odd&lt;chars&gt;</p>";
        assert!(s.hits(xml.as_bytes())[0].contains("XML-escaped"));
        assert_eq!(s.hits(v.as_bytes()), ["the value of DB_PASSWORD"]);
        assert!(s.hits(b"nothing here").is_empty());
        let hex: String = v.bytes().map(|b| format!("{b:02x}")).collect();
        for form in [hex.clone(), hex.to_ascii_uppercase()] {
            let blob = format!("const K: &str = \"{form}\";");
            assert!(s.hits(blob.as_bytes())[0].contains("hex-encoded"), "{form}");
        }
    }

    #[test]
    fn credential_shapes_are_found_and_examples_allowed() {
        let s = Scanner::new(&[]);
        let cases = [
            (
                "ghp_0123456789abcdefghijklmnopqrstuvwxyz".to_owned(),
                "github-pat",
            ),
            (
                "gho_0123456789abcdefghijklmnopqrstuvwxyz".to_owned(),
                "github-oauth",
            ),
            (
                "ghs_0123456789abcdefghijklmnopqrstuvwxyz".to_owned(),
                "github-app-token",
            ),
            (
                "ghu_0123456789abcdefghijklmnopqrstuvwxyz".to_owned(),
                "github-app-token",
            ),
            (
                "ghr_0123456789abcdefghijklmnopqrstuvwxyz".to_owned(),
                "github-refresh-token",
            ),
            (
                format!("github_pat_{}", "A1b2".repeat(20) + "xy"),
                "github-fine-grained-pat",
            ),
            (
                format!("sk-ant-api03-{}AA", "a".repeat(93)),
                "anthropic-api-key",
            ),
            (
                format!("sk-proj-{}T3BlbkFJ{}", "b".repeat(74), "c".repeat(74)),
                "openai-api-key",
            ),
            (
                format!("sk-{}T3BlbkFJ{}", "d".repeat(20), "e".repeat(20)),
                "openai-api-key",
            ),
            ("AKIAQWERTYUIOPASDFGH".to_owned(), "aws-access-token"),
            ("ASIAQWERTYUIOPASDFGH".to_owned(), "aws-access-token"),
            (
                "-----BEGIN OPENSSH PRIVATE KEY-----".to_owned(),
                "private-key",
            ),
            ("-----BEGIN RSA PRIVATE KEY-----".to_owned(), "private-key"),
        ];
        for (text, rule) in cases {
            assert_eq!(
                s.hits(format!("x = \"{text}\"").as_bytes()),
                [rule],
                "{rule}"
            );
        }
        for fine in [
            "AKIAIOSFODNN7EXAMPLE",
            "ghp_short",
            "-----BEGIN PUBLIC KEY-----",
            "sk-ant-short",
        ] {
            assert!(s.hits(fine.as_bytes()).is_empty(), "{fine}");
        }
    }

    #[test]
    fn problems_name_places_and_rules_never_values() {
        let s = scanner();
        let text = format!("line one\nkey={KEY}\n");
        let f = s.scan_text("the implementation summary", &text);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].line, Some(2));
        let p = problem(&f).unwrap();
        assert!(!p.contains(KEY), "{p}");
        assert!(
            p.starts_with("secret: the implementation summary:2: the value of ANTHROPIC_API_KEY"),
            "{p}"
        );
        let many: Vec<Finding> = (1..=5)
            .map(|i| Finding {
                place: "a.txt".into(),
                line: Some(i),
                commit: Some("abc1234".into()),
                rule: "github-pat".into(),
            })
            .collect();
        let p = problem(&many).unwrap();
        assert!(
            p.contains("a.txt:3 (commit abc1234): github-pat and 2 more"),
            "{p}"
        );
        assert!(problem(&[]).is_none());
    }

    #[test]
    fn multi_line_values_are_found_line_by_line_too() {
        let pem = "-----BEGIN X-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END X-----";
        let s = Scanner::new(&[Secret {
            name: "DEPLOY_KEY".into(),
            value: pem.into(),
        }]);
        let hits = s.hits(b"+MIIEvQIBADANBgkqhkiG9w0BAQEFAASC");
        assert!(hits[0].contains("a line of it"), "{hits:?}");
        let f = s.scan_text("t", &format!("a\n{pem}\n"));
        assert!(
            f.iter().any(|f| f.rule == "the value of DEPLOY_KEY"),
            "{f:?}"
        );
    }

    #[test]
    fn known_secrets_take_secret_names_and_extra_keys() {
        let vars = [
            ("ANTHROPIC_API_KEY", "sk-ant-xyz-123"),
            ("GITHUB_TOKEN", "ghs_abcdef"),
            ("PATH", "/usr/bin:/bin"),
            ("MY_CRED", "hunter22"),
            ("SHORT_TOKEN", "abc"),
        ];
        let got = known_secrets(
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
            &["MY_CRED".into()],
        );
        let names: Vec<&str> = got.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["ANTHROPIC_API_KEY", "GITHUB_TOKEN", "MY_CRED"]);
        assert!(!format!("{got:?}").contains("hunter22"));
    }

    #[test]
    fn git_paths_and_hunks_parse() {
        assert_eq!(unquote(b"plain/path.rs"), "plain/path.rs");
        assert_eq!(unquote(b"\"b/a\\\"b\\303\\251\\tz\""), "b/a\"bé\tz");
        assert_eq!(hunk_start(b"@@ -0,0 +1,3 @@"), Some(1));
        assert_eq!(hunk_start(b"@@ -5 +7 @@ fn x()"), Some(7));
    }

    #[test]
    fn a_log_is_scanned_commit_by_commit_with_line_numbers() {
        let s = scanner();
        let log = format!(
            "\0tgs-commit 1111111aaaa\n\n\
             diff --git a/config.env b/config.env\nnew file mode 100644\nindex 0000000..1111111\n\
             --- /dev/null\n+++ b/config.env\n@@ -0,0 +1,2 @@\n+name=x\n+key={KEY}\n\
             \0tgs-commit 2222222bbbb\n\n\
             diff --git a/config.env b/config.env\nindex 1111111..2222222 100644\n\
             --- a/config.env\n+++ b/config.env\n@@ -2 +1,0 @@\n-key={KEY}\n"
        );
        let mut p = LogScan::new(&s);
        p.read(log.as_bytes()).unwrap();
        let (f, commits) = p.finish();
        let shown: Vec<String> = f.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["config.env:2 (commit 1111111): the value of ANTHROPIC_API_KEY"]
        );
        assert_eq!(commits, ["1111111aaaa", "2222222bbbb"]);
    }

    #[test]
    fn a_raw_commit_is_scanned_whole_nul_bytes_and_all() {
        let s = scanner();
        let commits = ["1111111aaaa".to_owned(), "2222222bbbb".to_owned()];
        let mut scan = ObjectScan::new(&s, &commits);
        let first = format!(
            "tree 4b825dc642cb6eb9a060e54bf8d69288fbdd4904\nauthor A <{KEY}@x> 1 +0000\n\
             committer C <c@x> 1 +0000\nx-extra {KEY}\n\nfix\0{KEY}\n\nbody"
        );
        let second = format!("tree 4b8\nauthor A <a@x> 1 +0000\n\nclean\n\0\0{KEY}");
        for (i, object) in [first, second].iter().enumerate() {
            for line in object.as_bytes().split(|b| *b == b'\n') {
                scan.line(i, line);
            }
        }
        let shown: Vec<String> = scan.findings.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "the author of a commit (commit 1111111): the value of ANTHROPIC_API_KEY",
                "a header of a commit (commit 1111111): the value of ANTHROPIC_API_KEY",
                "the message of a commit:1 (commit 1111111): the value of ANTHROPIC_API_KEY",
                "the message of a commit:2 (commit 2222222): the value of ANTHROPIC_API_KEY",
            ]
        );
    }

    /// `git` in `dir`, with no user or system configuration.
    fn git_in(dir: &std::path::Path, args: &[&str], stdin: &[u8]) -> String {
        let out = Git::new(dir)
            .cmd(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "a")
            .env("GIT_AUTHOR_EMAIL", "a@x")
            .env("GIT_COMMITTER_NAME", "c")
            .env("GIT_COMMITTER_EMAIL", "c@x")
            .stdin(stdin)
            .run()
            .unwrap();
        String::from_utf8(out).unwrap().trim().to_owned()
    }

    #[test]
    fn a_key_after_a_nul_in_a_commit_message_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        git_in(d, &["init", "-q"], b"");
        let tree = git_in(d, &["mktree"], b"");
        let base = git_in(d, &["commit-tree", &tree, "-m", "base"], b"");
        // `git commit` refuses a NUL in a message; the object can still be
        // written, and pushed.
        let raw = format!(
            "tree {tree}\nparent {base}\nauthor a <a@x> 1 +0000\ncommitter c <c@x> 1 +0000\n\nfix\0{KEY}\n"
        );
        let head = git_in(
            d,
            &[
                "hash-object",
                "-t",
                "commit",
                "-w",
                "--literally",
                "--stdin",
            ],
            raw.as_bytes(),
        );
        let f = scanner().scan_history(&Git::new(d), &base, &head).unwrap();
        let shown: Vec<String> = f.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [format!(
                "the message of a commit:1 (commit {}): the value of ANTHROPIC_API_KEY",
                &head[..7]
            )]
        );
    }

    #[test]
    fn over_long_lines_are_scanned_in_pieces_without_missing_the_cut() {
        let s = scanner();
        for at in [PIECE - 10, PIECE - 1, PIECE, PIECE + 5, 3 * PIECE - 20] {
            let mut line = vec![b'.'; at];
            line.extend_from_slice(KEY.as_bytes());
            line.extend_from_slice(&[b'.'; 100]);
            let mut log = b"\0tgs-commit 3333333\n\ndiff --git a/x b/x\n--- /dev/null\n+++ b/big.min.js\n@@ -0,0 +1 @@\n+".to_vec();
            log.extend_from_slice(&line);
            log.extend_from_slice(b"\n+after\n");
            let mut p = LogScan::new(&s);
            p.read(&log[..]).unwrap();
            let (f, _) = p.finish();
            assert_eq!(f.len(), 1, "at {at}: {f:?}");
            assert_eq!(f[0].line, Some(1));
        }
    }
}
