//! Escaping of untrusted text (scenario names, explanations, log excerpts) for every sink the
//! reports write to: Markdown/HTML, XML, and GitHub workflow commands.

/// Removes ANSI escape sequences and every control character except newline and tab.
pub fn strip_controls(s: &str) -> String {
    let plain = crate::process::strip_ansi(s);
    plain.chars().filter(|&c| c == '\n' || c == '\t' || !c.is_control()).collect()
}

/// Text safe inline in Markdown, including inside a table cell or after a list marker: HTML
/// is neutralised, the punctuation that can start inline markup is backslash-escaped (as is a
/// leading block marker), line breaks become spaces, URLs cannot autolink, and `@` cannot
/// mention anyone.
pub fn md(s: &str) -> String {
    let text: String =
        strip_controls(s).chars().map(|c| if matches!(c, '\n' | '\r' | '\t') { ' ' } else { c }).collect();
    let mut out = String::with_capacity(text.len() + 8);
    // A block marker at the start (`# x`, `- x`, `1. x`, `=`) would start a heading or list.
    let digits = text.chars().take_while(char::is_ascii_digit).count();
    if text.starts_with(['#', '-', '+', '=']) {
        out.push('\\');
    }
    let ordered_marker = (digits > 0 && text[digits..].starts_with(['.', ')'])).then_some(digits);
    let mut chars = text.chars().enumerate().peekable();
    while let Some((i, c)) = chars.next() {
        if Some(i) == ordered_marker {
            out.push('\\');
        }
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // A word joiner after `@` keeps GitHub from turning it into a mention.
            '@' if chars.peek().is_some_and(|p| p.1.is_alphanumeric()) => out.push_str("@\u{2060}"),
            // ... and before the number of `#123`, `owner/repo#123` or `GH-123` from turning it
            // into a link and a cross-reference.
            '#' if chars.peek().is_some_and(|p| p.1.is_ascii_digit()) => out.push_str("#\u{2060}"),
            '-' if out.ends_with("GH") && chars.peek().is_some_and(|p| p.1.is_ascii_digit()) => {
                out.push_str("-\u{2060}")
            }
            // `scheme://` and `www.` would autolink.
            ':' if chars.peek().map(|p| p.1) == Some('/') => out.push_str("\\:"),
            '.' if out.ends_with("www") => out.push_str("\\."),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' | '$' | '!' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Text safe inside an HTML block such as `<summary>`, where GitHub does not read Markdown
/// (a backslash escape would show): HTML-escaped, on one line, with the same word joiners as
/// [`md`] against mentions and issue references.
pub fn html_inline(s: &str) -> String {
    let text: String =
        strip_controls(s).chars().map(|c| if matches!(c, '\n' | '\r' | '\t') { ' ' } else { c }).collect();
    let mut out = String::with_capacity(text.len() + 8);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let next_digit = chars.peek().is_some_and(char::is_ascii_digit);
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '@' if chars.peek().is_some_and(|p| p.is_alphanumeric()) => out.push_str("@\u{2060}"),
            '#' if next_digit => out.push_str("#\u{2060}"),
            '-' if next_digit && out.ends_with("GH") => out.push_str("-\u{2060}"),
            c => out.push(c),
        }
    }
    out
}

/// A fenced code block holding `s` verbatim (controls stripped): the fence is longer than any
/// backtick run inside, so nothing in `s` can close it.
pub fn code_block(s: &str, lang: &str) -> String {
    let body = strip_controls(s);
    let longest = body.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat((longest + 1).max(3));
    let mut out = format!("{fence}{lang}\n{body}");
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&fence);
    out.push('\n');
    out
}

/// A string made of `[a-z0-9-]` only, for file names derived from scenario names.
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').chars().take(60).collect::<String>();
    if out.is_empty() {
        "scenario".into()
    } else {
        out
    }
}

/// Text legal in XML 1.0 (the XML writer escapes `<`, `&` and quotes; this removes what no
/// escaping can carry: control characters and non-characters).
pub fn xml_text(s: &str) -> String {
    strip_controls(s).chars().filter(|&c| !matches!(c, '\u{FFFE}' | '\u{FFFF}')).collect()
}

/// The message of a workflow command (`::error::MESSAGE`).
pub fn workflow_data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// A property value of a workflow command (`::error title=VALUE::`).
pub fn workflow_property(s: &str) -> String {
    workflow_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_cannot_be_injected() {
        let hostile = "x|y <img src=x onerror=alert(1)> [link](http://e) **b** `c` @octocat\n# h";
        let out = md(hostile);
        assert!(!out.contains('<') && !out.contains('\n'), "{out}");
        assert!(out.contains("\\|") && out.contains("\\[link\\](http\\://e)"), "{out}");
        assert_eq!(md("# heading"), "\\# heading");
        assert_eq!(md("12. item"), "12\\. item");
        assert_eq!(md("see www.example.com"), "see www\\.example.com");
        assert_eq!(
            md("inject: 1 fault(s) on leader=n3"),
            "inject: 1 fault(s) on leader=n3",
            "ordinary text stays readable"
        );
        assert!(out.contains("@\u{2060}octocat"));
        assert_eq!(md("a\x1b[31mred\x1b[0m\x07"), "ared");
    }

    #[test]
    fn issue_references_do_not_link() {
        let j = '\u{2060}';
        assert_eq!(md("fixes #12 and owner/repo#7, GH-3"), format!("fixes #{j}12 and owner/repo#{j}7, GH-{j}3"));
        // Near misses stay as they are.
        assert_eq!(md("a # b, #x, GH-x, UGH-"), "a # b, #x, GH-x, UGH-");
    }

    #[test]
    fn summary_text_is_html_escaped_not_markdown_escaped() {
        let j = '\u{2060}';
        assert_eq!(html_inline("my_scenario *x* `y`"), "my_scenario *x* `y`");
        assert_eq!(
            html_inline("<b>\"q\" & @bob #5\nGH-6</b>"),
            format!("&lt;b&gt;&quot;q&quot; &amp; @{j}bob #{j}5 GH-{j}6&lt;/b&gt;")
        );
        assert!(!html_inline("a</summary><script>").contains('<'));
    }

    #[test]
    fn a_code_block_cannot_be_closed_from_inside() {
        let block = code_block("a\n```\n</details>\n````x", "text");
        assert!(block.starts_with("`````text\n"), "{block}");
        assert!(block.ends_with("\n`````\n"));
    }

    #[test]
    fn slugs_and_workflow_commands() {
        assert_eq!(slug("../../etc/Passwd <x>"), "etc-passwd-x");
        assert_eq!(slug("###"), "scenario");
        assert_eq!(workflow_data("50%\r\nx"), "50%25%0D%0Ax");
        assert_eq!(workflow_property("a:b,c"), "a%3Ab%2Cc");
        assert_eq!(xml_text("a\x00b\u{FFFE}c\td"), "abc\td");
    }
}
