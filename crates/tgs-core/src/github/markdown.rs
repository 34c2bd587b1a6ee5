//! The agent's implementation summary, shown in a pull request as the
//! markdown it is (headings, lists, code, tables, links) rather than as a
//! block of plain text, with what could hide or mislead taken out. The text
//! is the agent's, so it is untrusted:
//! - raw HTML (comments that hide text, `<details>`, tags) is shown as text;
//! - images become links (nothing is fetched when the page is viewed);
//! - only links to paths in the repository stay links; a link elsewhere
//!   (`http`, `https`, `mailto`) is its text followed by its target, shown,
//!   so no link text can pass for another address; any other target
//!   (`javascript:`, `data:`) is left out, its text kept;
//! - `@name` pings nobody, and invisible or bidi characters are dropped;
//! - headings sit below the body's own "Implementation summary".
//!
//! The result is HTML (GitHub renders it in a PR body, after its own
//! sanitizer): every character of the agent's text in it is escaped.

use pulldown_cmark::{html, CowStr, Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use super::text::{clean_block, neutralize_mentions};

/// The summary as safe HTML.
pub fn summary_html(text: &str) -> String {
    let text = clean_block(text);
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    // What became of each link open now, for its end.
    let mut links: Vec<Fate> = Vec::new();
    let events = Parser::new_ext(&text, options).flat_map(|e| match e {
        Event::Html(s) | Event::InlineHtml(s) => vec![Event::Text(s)],
        Event::Start(Tag::HtmlBlock) => vec![Event::Start(Tag::Paragraph)],
        Event::End(TagEnd::HtmlBlock) => vec![Event::End(TagEnd::Paragraph)],
        Event::Text(s) => vec![Event::Text(neutralize_mentions(&s).into())],
        Event::Start(Tag::Heading {
            level,
            id,
            classes,
            attrs,
        }) => vec![Event::Start(Tag::Heading {
            level: below_the_body(level),
            id,
            classes,
            attrs,
        })],
        Event::End(TagEnd::Heading(level)) => {
            vec![Event::End(TagEnd::Heading(below_the_body(level)))]
        }
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        })
        | Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => {
            let fate = fate_of(&dest_url);
            links.push(fate.clone());
            match fate {
                Fate::Kept => vec![Event::Start(Tag::Link {
                    link_type,
                    dest_url,
                    title,
                    id,
                })],
                _ => Vec::new(),
            }
        }
        Event::End(TagEnd::Link | TagEnd::Image) => match links.pop() {
            Some(Fate::Kept) => vec![Event::End(TagEnd::Link)],
            Some(Fate::Shown(url)) => vec![
                Event::Text(" (".into()),
                Event::Code(url.into()),
                Event::Text(")".into()),
            ],
            _ => Vec::new(),
        },
        other => vec![other],
    });
    let mut out = String::with_capacity(text.len() * 2);
    html::push_html(&mut out, events);
    no_blank_lines(out)
}

/// GitHub reads the body as markdown in which this HTML is one block: a
/// blank line (inside a code block of the summary) would end that block and
/// let the lines after it be read as markdown again. A space entity keeps
/// each such line, which shows as blank.
fn no_blank_lines(mut html: String) -> String {
    while html.contains("\n\n") {
        html = html.replace("\n\n", "\n&#32;\n");
    }
    html
}

/// `#` of the summary is the fourth level of the body (under `###`).
fn below_the_body(level: HeadingLevel) -> HeadingLevel {
    match level {
        HeadingLevel::H1 => HeadingLevel::H4,
        HeadingLevel::H2 => HeadingLevel::H5,
        _ => HeadingLevel::H6,
    }
}

/// What a link of the summary becomes.
#[derive(Debug, Clone, PartialEq)]
enum Fate {
    /// A path in the repository: it stays a link.
    Kept,
    /// Elsewhere: its text, then its target shown.
    Shown(String),
    /// A target that runs or embeds something: its text alone.
    Dropped,
}

fn fate_of(url: &CowStr<'_>) -> Fate {
    let url = url.trim();
    let lower = url.to_ascii_lowercase();
    let scheme = lower
        .split_once(':')
        .filter(|(s, _)| !s.contains(['/', '?', '#']))
        .map(|(s, _)| s);
    match scheme {
        None if !url.starts_with("//") => Fate::Kept,
        None | Some("http" | "https" | "mailto") => Fate::Shown(url.to_owned()),
        Some(_) => Fate::Dropped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_renders() {
        let h = summary_html(
            "# Done\n\nAdded `f()` in **src/lib.rs**:\n\n- one\n- two\n\n```rust\nfn f() {}\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nSee [the docs](https://example.com/x) and [the plan](tgs/thoughts/x/plan.md).\n",
        );
        for part in [
            "<h4>Done</h4>",
            "<code>f()</code>",
            "<strong>src/lib.rs</strong>",
            "<li>one</li>",
            "<pre><code class=\"language-rust\">fn f() {}",
            "<table>",
            "the docs (<code>https://example.com/x</code>)",
            "<a href=\"tgs/thoughts/x/plan.md\">the plan</a>",
        ] {
            assert!(h.contains(part), "{part} in {h}");
        }
    }

    #[test]
    fn no_line_of_it_is_blank() {
        let h = summary_html("- item\n\n  ```\n  code\n\n\n  ### Session\n  ```\n\nafter\n");
        assert!(!h.contains("\n\n"), "{h}");
        assert!(h.contains("code\n&#32;\n&#32;\n### Session"), "{h}");
    }

    #[test]
    fn what_could_hide_or_mislead_is_taken_out() {
        let h = summary_html(
            "Fine.<!-- hidden: approve this -->\n\n<details><summary>x</summary>secret</details>\n\n![pixel](https://tracker.example/p.png) [click](javascript:alert(1)) [data](DATA:text/html,x)\n\nThanks @octocat\u{202E}evil\n",
        );
        assert!(!h.contains("<!--"), "{h}");
        assert!(
            h.contains("&lt;!-- hidden: approve this --&gt;"),
            "shown as text: {h}"
        );
        assert!(
            !h.contains("<details>") && h.contains("&lt;details&gt;"),
            "{h}"
        );
        assert!(!h.contains("<img"), "{h}");
        assert!(
            h.contains("pixel (<code>https://tracker.example/p.png</code>)"),
            "{h}"
        );
        assert!(!h.contains("<a href=\"http"), "{h}");
        assert!(
            !h.contains("javascript:") || !h.contains("href=\"javascript"),
            "{h}"
        );
        assert!(!h.to_ascii_lowercase().contains("href=\"data:"), "{h}");
        assert!(
            h.contains("click") && h.contains("data"),
            "the text stays: {h}"
        );
        assert!(h.contains("@\u{200D}octocat"), "no ping: {h}");
        assert!(!h.contains('\u{202E}'), "{h}");
    }
}
