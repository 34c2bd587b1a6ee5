//! Text from untrusted sources (thoughts, agents, reviewers) made inert for
//! GitHub, shared by what tgs writes there (`content`) and the markdown it
//! renders (`markdown`): no control or invisible formatting characters, no
//! mentions that notify anyone.

const ZWJ: char = '\u{200D}';

/// Break `@name` mentions (and `@org/team`) with a zero-width joiner after
/// the `@`, so text from a thought cannot notify anyone. An `@` inside a word
/// (e-mail addresses) is not a mention and is left alone.
pub fn neutralize_mentions(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut prev: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '@' {
            let after_word = prev.is_some_and(|p| p.is_alphanumeric() || p == '_' || p == '`');
            let next_is_name = chars.peek().is_some_and(|n| n.is_ascii_alphanumeric());
            if !after_word && next_is_name {
                out.push(ZWJ);
            }
        }
        prev = Some(c);
    }
    out
}

/// Multi-line text for a fence: `\r\n` and lone `\r` become `\n`, other
/// control characters (but tabs) and invisible formatting ones are dropped.
pub(crate) fn clean_block(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .chars()
        .filter(|c| *c == '\n' || *c == '\t' || !(c.is_control() || is_invisible(*c)))
        .collect()
}

/// Bidi controls and zero-width characters that can hide or reorder text.
pub(super) fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{00AD}')
}
