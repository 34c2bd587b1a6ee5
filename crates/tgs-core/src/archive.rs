//! Session transcripts kept with the state, so that any clone (and the Pages
//! dashboard, built from a fresh checkout) can read them.
//!
//! The full transcript stays where the session ran (`tgs/server/logs/`, and
//! the GitHub Actions artifact of the run). What goes to the state branch,
//! in the same commit as the session's record, is its end: at most
//! [`KEEP_BYTES`] of the (already redacted) text, gzip-compressed, under
//! `tgs/server/transcripts/<YYYY-MM>/<DD>/<file>.gz`. A folder per month and
//! per day keeps every tree that a state change rewrites small, however long
//! the history and however busy the month (copies kept by earlier versions
//! directly in the month folder are read as well).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use jiff::Timestamp;

/// Where kept transcripts live on the state branch.
pub const TRANSCRIPTS_DIR: &str = "tgs/server/transcripts";

/// How much of a transcript's end is kept (1 MiB of text).
pub const KEEP_BYTES: u64 = 1 << 20;

/// The state path of transcript `file` (`<name>-<stamp>.log`) of a session
/// that started at `started`.
pub fn state_path(file: &str, started: Timestamp) -> String {
    let day = started.strftime("%Y-%m/%d");
    format!("{TRANSCRIPTS_DIR}/{day}/{file}.gz")
}

/// The transcript file name a kept copy at `path` stands for (`None` for
/// anything else under the folder): `<YYYY-MM>/<DD>/<file>.gz`, or
/// `<YYYY-MM>/<file>.gz` as earlier versions kept them.
pub fn file_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix(TRANSCRIPTS_DIR)?.strip_prefix('/')?;
    let (month, rest) = rest.split_once('/')?;
    let ok_month = month.len() == 7 && month.as_bytes()[4] == b'-';
    let file = match rest.split_once('/') {
        Some((day, file)) if day.len() == 2 && day.bytes().all(|b| b.is_ascii_digit()) => file,
        Some(_) => return None,
        None => rest,
    };
    (ok_month && !file.contains('/'))
        .then(|| file.strip_suffix(".gz"))
        .flatten()
}

/// The end of the transcript at `log` (at most [`KEEP_BYTES`], from a line
/// start), with a first line saying what was left out and where the whole
/// is (`whole`: e.g. the Actions artifact), compressed.
pub fn pack(log: &Path, whole: Option<&str>) -> std::io::Result<Vec<u8>> {
    let mut f = std::fs::File::open(log)?;
    let len = f.metadata()?.len();
    let start = len.saturating_sub(KEEP_BYTES);
    f.seek(SeekFrom::Start(start))?;
    let mut text = Vec::with_capacity((len - start) as usize);
    f.read_to_end(&mut text)?;
    pack_end(&text, len, whole)
}

/// A kept transcript's text (as [`unpack`] gives it) packed again, for
/// keeping elsewhere: its first line, where tgs said what was left out and
/// where the whole one is, stays; it is cut only past what [`unpack`] reads.
pub fn repack(text: &[u8]) -> std::io::Result<Vec<u8>> {
    let start = text.len().saturating_sub(UNPACKED_MAX as usize);
    pack_end(&text[start..], text.len() as u64, None)
}

/// The most [`unpack`] reads of a kept transcript, in bytes: what was kept
/// and room for its first line.
const UNPACKED_MAX: u64 = KEEP_BYTES + 64 * 1024;

/// Pack `text`, the last bytes of a transcript of `len` bytes.
fn pack_end(text: &[u8], len: u64, whole: Option<&str>) -> std::io::Result<Vec<u8>> {
    let start = len - text.len() as u64;
    let mut body: &[u8] = text;
    if start > 0 {
        // Start at a line: the cut falls in the middle of one.
        if let Some(nl) = body.iter().position(|b| *b == b'\n') {
            body = &body[nl + 1..];
        }
    }
    let left_out = len - body.len() as u64;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    if left_out > 0 {
        writeln!(
            gz,
            "# tgs: the first {left_out} bytes of this transcript are left out here{}",
            whole
                .map(|w| format!("; the whole transcript: {w}"))
                .unwrap_or_default()
        )?;
    }
    gz.write_all(body)?;
    gz.finish()
}

/// The text of a kept transcript, read in full (it is at most a little over
/// [`KEEP_BYTES`]; anything decompressing to more is cut there).
pub fn unpack(gz: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .take(UNPACKED_MAX)
        .read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_transcript_packed_again_keeps_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("t.log");
        let line = format!("{}\n", "x".repeat(99));
        std::fs::write(&log, line.repeat(30_000) + "the-last-line\n").unwrap();
        let kept = unpack(&pack(&log, Some("the artifact logs-1")).unwrap()).unwrap();
        let again = unpack(&repack(&kept).unwrap()).unwrap();
        assert_eq!(again, kept);
        let first = String::from_utf8_lossy(&again[..200]).into_owned();
        assert!(first.starts_with("# tgs: the first "), "{first}");
        assert!(
            first.contains("the whole transcript: the artifact logs-1"),
            "{first}"
        );
        let short = unpack(&repack(b"short\n").unwrap()).unwrap();
        assert_eq!(short, b"short\n");
    }

    #[test]
    fn paths_by_month() {
        let t: Timestamp = "2026-01-15T12:00:00Z".parse().unwrap();
        let p = state_path("abc1234-x-20260115T120000Z.log", t);
        assert_eq!(
            p,
            "tgs/server/transcripts/2026-01/15/abc1234-x-20260115T120000Z.log.gz"
        );
        assert_eq!(file_of(&p), Some("abc1234-x-20260115T120000Z.log"));
        assert_eq!(
            file_of("tgs/server/transcripts/2026-01/abc1234-x-20260115T120000Z.log.gz"),
            Some("abc1234-x-20260115T120000Z.log"),
            "as earlier versions kept them"
        );
        assert_eq!(file_of("tgs/server/transcripts/x.gz"), None);
        assert_eq!(file_of("tgs/server/transcripts/2026-01/a/b.gz"), None);
        assert_eq!(file_of("tgs/server/transcripts/2026-01/15/a/b.gz"), None);
        assert_eq!(file_of("tgs/server/audit.jsonl"), None);
    }

    #[test]
    fn small_transcripts_are_kept_whole_and_big_ones_by_their_end() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("s.log");
        std::fs::write(&small, "line 1\nline 2\n").unwrap();
        assert_eq!(
            unpack(&pack(&small, None).unwrap()).unwrap(),
            b"line 1\nline 2\n"
        );

        let big = dir.path().join("b.log");
        let line = "x".repeat(99) + "\n";
        let n = (KEEP_BYTES as usize / line.len()) * 3;
        let mut text = String::with_capacity(n * line.len() + 8);
        for _ in 0..n {
            text.push_str(&line);
        }
        text.push_str("the end\n");
        std::fs::write(&big, &text).unwrap();
        let packed = pack(&big, Some("the artifact tgs-server-logs-1-1")).unwrap();
        assert!(packed.len() < 64 * 1024, "compressed: {}", packed.len());
        let back = String::from_utf8(unpack(&packed).unwrap()).unwrap();
        let first = back.lines().next().unwrap();
        assert!(
            first.starts_with("# tgs: the first ") && first.ends_with("tgs-server-logs-1-1"),
            "{first}"
        );
        assert!(back.ends_with("the end\n"));
        assert!(back.len() as u64 <= KEEP_BYTES + 200);
        // Whole lines only after the note.
        assert!(back.lines().nth(1).unwrap().len() == 99);
    }
}
