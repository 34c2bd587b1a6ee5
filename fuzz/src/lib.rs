//! What each fuzz target checks, as plain functions of the input bytes:
//! the targets in `fuzz_targets/` call them under libFuzzer, and the tests
//! below replay the seed corpus through them.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use tgs_core::agent::claude::{ClaudeProgress, MAX_ACTION};
use tgs_core::agent::codex::CodexProgress;
use tgs_core::backlog::store;
use tgs_core::thought::{slugify, ThoughtName};
use tgs_core::transcript::{RedactingWriter, Redactor};

/// `backlog::store::parse`: never panics; what it accepts is written back
/// and read again to the same backlog, and writing is stable.
pub fn backlog_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(b) = store::parse(text, Path::new("backlog.json")) else {
        return;
    };
    let written = store::to_json(&b);
    let again = store::parse(&written, Path::new("backlog.json")).expect("its own output parses");
    assert_eq!(store::to_json(&again), written, "writing is stable");
}

/// `slugify` gives a slug `ThoughtName::parse` accepts (with a hash), or
/// nothing; `ThoughtName::parse` accepts only names safe in paths and refs.
pub fn thought_name(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let slug = slugify(&text);
    assert!(slug.len() <= 60, "slug too long");
    assert!(
        slug.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
        "slug alphabet"
    );
    assert!(
        !slug.starts_with('-') && !slug.ends_with('-'),
        "slug trimmed"
    );
    assert!(!slug.contains("--"), "one dash per run");
    if !slug.is_empty() {
        assert!(
            ThoughtName::parse(&format!("abcdef0-{slug}")).is_some(),
            "slug accepted"
        );
    }
    if let Some(n) = ThoughtName::parse(&text) {
        let s = n.as_str();
        assert!(!s.contains('/') && !s.contains("..") && !s.contains('\\'));
        assert!(!s.starts_with('.') && !s.starts_with('-'));
        assert!(s.is_ascii() && !s.ends_with(".lock"));
        assert!(s.starts_with(n.hash()));
    }
}

fn action_ok(a: &Option<String>) {
    if let Some(a) = a {
        assert!(!a.contains('\n') && !a.contains('\r'), "single line");
        assert!(a.chars().count() <= MAX_ACTION, "bounded");
    }
}

/// Claude's stream-json parser, a line at a time: never panics, and its
/// action stays one bounded line.
pub fn claude_events(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut p = ClaudeProgress::default();
    for line in text.lines() {
        p.observe(line);
        action_ok(&p.last_action);
    }
}

/// Codex's `exec --json` parser, likewise.
pub fn codex_events(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut p = CodexProgress::default();
    for line in text.lines() {
        p.observe(line);
        action_ok(&p.last_action);
    }
}

thread_local! {
    /// The last redactor built: mutations often keep the secrets and change
    /// the text, and building the matcher is most of an execution's cost.
    static LAST: std::cell::RefCell<Option<(Vec<String>, Arc<Redactor>)>> = const { std::cell::RefCell::new(None) };
}

fn redactor_for(secrets: &[String]) -> Arc<Redactor> {
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((s, r)) = last.as_ref() {
            if s == secrets {
                return r.clone();
            }
        }
        let r = Arc::new(Redactor::for_secrets(secrets.to_vec(), &[]).expect("redactor"));
        *last = Some((secrets.to_vec(), r.clone()));
        r
    })
}

/// The redactor: whatever the secrets, the text and the chunking of the
/// writes, no secret survives (in the bytes, nor in the joined text of
/// stream-json delta events), and streaming gives what redacting the whole
/// text gives.
///
/// Input: byte 0 picks how many secrets (1-3) and byte 1 the chunk sizes;
/// then each secret is 6-21 bytes mapped onto a small alphabet (so that
/// secrets and text overlap often); the rest is the text, and every other
/// run of it is also written as text_delta events cut where its bytes say.
pub fn redactor(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    const ALPHABET: &[u8] = b"ab-x\n\"";
    let n = usize::from(data[0] % 3) + 1;
    let chunk_seed = usize::from(data[1]);
    let mut rest = &data[2..];
    let mut secrets = Vec::new();
    for _ in 0..n {
        let Some((&len, r)) = rest.split_first() else {
            return;
        };
        let len = usize::from(len % 16) + 6;
        if r.len() < len {
            return;
        }
        let s: String = r[..len]
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
            .collect();
        secrets.push(s);
        rest = &r[len..];
    }
    // The text: plain pieces, and the same bytes as delta events.
    let mut text = Vec::new();
    for (i, piece) in rest.chunks(7).enumerate() {
        let mapped: String = piece
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
            .collect();
        let mapped = if piece.first().is_some_and(|b| b % 5 == 0) {
            // Sometimes a whole secret, cut in two events.
            secrets[i % secrets.len()].clone() + &mapped
        } else {
            mapped
        };
        if i % 2 == 0 {
            text.extend_from_slice(mapped.as_bytes());
        } else {
            let cut = usize::from(piece[0]) % (mapped.len() + 1);
            for part in [&mapped[..cut], &mapped[cut..]] {
                let line = serde_json::json!({
                    "type": "stream_event",
                    "event": {"type": "content_block_delta", "index": 0,
                              "delta": {"type": "text_delta", "text": part}}
                });
                text.push(b'\n');
                text.extend_from_slice(line.to_string().as_bytes());
                text.push(b'\n');
            }
        }
    }
    let r = redactor_for(&secrets);
    let whole = r.redact_bytes(&text);
    let mut w = RedactingWriter::new(Vec::new(), r.clone());
    let mut at = 0;
    let mut k = chunk_seed;
    while at < text.len() {
        let size = 1 + k % 97;
        k = k.wrapping_mul(31).wrapping_add(7);
        let end = (at + size).min(text.len());
        w.write_all(&text[at..end]).expect("write");
        at = end;
    }
    let streamed = w.finish().expect("finish");
    assert!(streamed == whole, "streaming differs from whole redaction");
    let joined: String = String::from_utf8_lossy(&whole)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["event"]["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    for s in &secrets {
        assert!(
            !whole.windows(s.len()).any(|w| w == s.as_bytes()),
            "a secret survived in the bytes"
        );
        assert!(
            !joined.contains(s.as_str()),
            "a secret survived across events"
        );
    }
}

#[cfg(test)]
mod tests {
    /// Every file of the seed corpus through its target's checks.
    #[test]
    fn the_seed_corpus_passes() {
        let targets: [(&str, fn(&[u8])); 5] = [
            ("backlog_parse", super::backlog_parse),
            ("thought_name", super::thought_name),
            ("claude_events", super::claude_events),
            ("codex_events", super::codex_events),
            ("redactor", super::redactor),
        ];
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        for (name, check) in targets {
            let dir = root.join(name);
            let mut n = 0;
            for f in std::fs::read_dir(&dir).expect("a seed corpus") {
                check(&std::fs::read(f.unwrap().path()).unwrap());
                n += 1;
            }
            assert!(n > 0, "{name} has seeds");
        }
    }
}
