//! Printing data: JSON on stdout, aligned tables, and notes on stderr.

use serde::Serialize;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Print a value as 2-space JSON with a trailing newline.
pub fn json<T: Serialize + ?Sized>(value: &T) {
    let text = serde_json::to_string_pretty(value).expect("serializable");
    anstream::println!("{text}");
}

/// Print a value as one line of JSON (JSON Lines: one object per event).
pub fn json_line<T: Serialize + ?Sized>(value: &T) {
    let text = serde_json::to_string(value).expect("serializable");
    anstream::println!("{text}");
}

/// A note for the person at the terminal (stderr, never data).
pub fn note(msg: impl std::fmt::Display) {
    anstream::eprintln!("{}", shown(&msg.to_string()));
}

/// `s` as tgs prints a line of its own that may quote untrusted text: safe
/// on a terminal ([`inert`]), and in GitHub Actions no line of it can be
/// read as a workflow command (`::set-output`, `::add-mask::`, `::error`):
/// a line starting with `::` has its colons shown as `∶∶`.
pub fn shown(s: &str) -> String {
    let safe = inert(s);
    if !crate::actions::active() {
        return safe.into_owned();
    }
    no_workflow_commands(&safe)
}

/// Every line of `s` that would start a workflow command, defused.
pub fn no_workflow_commands(s: &str) -> String {
    s.split_inclusive('\n')
        .map(|line| {
            let body = line.trim_start();
            match body.strip_prefix("::") {
                Some(rest) => format!("{}\u{2236}\u{2236}{rest}", &line[..line.len() - body.len()]),
                None => line.to_owned(),
            }
        })
        .collect()
}

/// A warning on stderr.
pub fn warn(msg: impl std::fmt::Display) {
    let y = anstyle::Style::new()
        .fg_color(Some(anstyle::AnsiColor::Yellow.into()))
        .bold();
    anstream::eprintln!("{y}warning:{y:#} {}", shown(&msg.to_string()));
}

/// `s` safe to print on a terminal: control characters other than newlines
/// and tabs (escape sequences, carriage returns) and the invisible
/// characters that reorder or hide text (bidi overrides, zero-width ones)
/// are shown escaped, as `\u{1b}`. Messages quote thought names, titles and
/// what remotes and agents said, all untrusted.
pub fn inert(s: &str) -> std::borrow::Cow<'_, str> {
    fn hidden(c: char) -> bool {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
    }
    if !s.chars().any(hidden) {
        return s.into();
    }
    s.chars()
        .map(|c| {
            if hidden(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// The columns `s` takes in a terminal: wide CJK characters and emoji count two.
pub fn width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

/// Shorten `s` to at most `max` terminal columns, ending it with an ellipsis.
pub fn clip(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_owned();
    }
    let room = max.saturating_sub(1);
    let mut t = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = c.width().unwrap_or(1);
        if used + w > room {
            break;
        }
        t.push(c);
        used += w;
    }
    t.push('…');
    t
}

/// Rows under a header as lines, columns padded to their widest cell (in
/// terminal columns); the last column is not padded.
fn layout(header: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(width(c));
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            s.push_str(c);
            if i + 1 < cells.len() {
                s.push_str(&" ".repeat(widths[i] - width(c) + 2));
            }
        }
        // Empty cells at the end leave no trailing blanks.
        s.truncate(s.trim_end().len());
        s
    };
    std::iter::once(line(header.to_vec()))
        .chain(
            rows.iter()
                .map(|r| line(r.iter().map(String::as_str).collect())),
        )
        .collect()
}

/// Print rows under a header, columns padded to their widest cell; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let bold = anstyle::Style::new().bold();
    let mut out = String::new();
    for (i, l) in layout(header, rows).iter().enumerate() {
        if i == 0 {
            out.push_str(&format!("{bold}{l}{bold:#}\n"));
        } else {
            out.push_str(l);
            out.push('\n');
        }
    }
    anstream::print!("{out}");
}

#[cfg(test)]
mod tests {

    #[test]
    fn no_line_becomes_a_workflow_command() {
        let s = "rejected: x\n::set-output name=a::b\n  ::add-mask::v\nok ::error:: mid-line\n";
        let d = super::no_workflow_commands(s);
        assert!(d.lines().all(|l| !l.trim_start().starts_with("::")), "{d}");
        assert!(
            d.contains("\u{2236}\u{2236}set-output") && d.contains("ok ::error:: mid-line"),
            "{d}"
        );
    }

    use super::*;

    #[test]
    fn clip_by_terminal_columns() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("abcdefghij", 5), "abcd…");
        // Each of these takes two columns.
        assert_eq!(clip("日本語のタイトル", 16), "日本語のタイトル");
        assert_eq!(clip("日本語のタイトル", 7), "日本語…");
        assert_eq!(width(&clip("日本語のタイトル", 8)), 7);
        assert_eq!(clip("Ship it 🚀🚀🚀", 10), "Ship it …");
        assert!(width(&clip("🚀🚀🚀🚀", 5)) <= 5);
    }

    #[test]
    fn columns_line_up_with_wide_characters() {
        let rows = vec![
            vec![
                "a".to_owned(),
                "日本語のタイトル".to_owned(),
                "queued".to_owned(),
            ],
            vec!["b".to_owned(), "Ship it 🚀".to_owned(), "failed".to_owned()],
            vec!["c".to_owned(), "Café".to_owned(), "completed".to_owned()],
        ];
        let lines = layout(&["DIR", "TITLE", "STATUS"], &rows);
        let at: Vec<usize> = lines
            .iter()
            .map(|l| {
                let i = ["STATUS", "queued", "failed", "completed"]
                    .iter()
                    .find_map(|w| l.find(w))
                    .unwrap();
                width(&l[..i])
            })
            .collect();
        assert_eq!(at, [23, 23, 23, 23], "{lines:#?}");
        assert!(lines.iter().all(|l| !l.ends_with(' ')));
    }
}

#[cfg(test)]
mod inert_tests {
    #[test]
    fn escapes_what_a_terminal_would_act_on() {
        assert_eq!(super::inert("plain\nnext\tcol"), "plain\nnext\tcol");
        assert_eq!(super::inert("a\rb\x1b[2J"), "a\\u{d}b\\u{1b}[2J");
        assert_eq!(super::inert("x\u{202e}y"), "x\\u{202e}y");
    }
}
