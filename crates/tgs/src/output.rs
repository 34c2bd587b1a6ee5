//! Printing data: JSON on stdout, aligned tables, and notes on stderr.

use serde::Serialize;

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
    anstream::eprintln!("{msg}");
}

/// A warning on stderr.
pub fn warn(msg: impl std::fmt::Display) {
    let y = anstyle::Style::new()
        .fg_color(Some(anstyle::AnsiColor::Yellow.into()))
        .bold();
    anstream::eprintln!("{y}warning:{y:#} {msg}");
}

/// Shorten `s` to `max` characters with an ellipsis.
pub fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Print rows under a header, columns padded to their widest cell; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let bold = anstyle::Style::new().bold();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        let cells: Vec<&str> = cells.collect();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        s
    };
    let mut out = String::new();
    out.push_str(&format!(
        "{bold}{}{bold:#}\n",
        line(&mut header.iter().copied())
    ));
    for r in rows {
        out.push_str(&line(&mut r.iter().map(String::as_str)));
        out.push('\n');
    }
    anstream::print!("{out}");
}
