//! Fitting Markdown under a size limit: cut at a line boundary, close what the cut left open
//! (code fences, `<details>`), and say that it was cut. The last resort after the renderer has
//! already dropped detail by structure (see `markdown.rs`).

/// GitHub's limit for an issue or pull-request comment body (it counts characters; we count
/// bytes, which are never fewer, so a body that fits in bytes fits).
pub const GITHUB_COMMENT_LIMIT: usize = 65_536;
/// What the report itself may take of a comment: the sticky comment puts a marker line before
/// it (`<!-- chronik-chaos:report[:ID] -->`), so the renderer leaves room for that and chooses
/// its level of detail against this budget; the comment is then never cut blindly.
pub const REPORT_BUDGET: usize = GITHUB_COMMENT_LIMIT - 512;
/// GitHub's limit for one step's `$GITHUB_STEP_SUMMARY` content.
pub const STEP_SUMMARY_LIMIT: usize = 1024 * 1024;

/// The notice appended to a cut report.
pub fn notice(limit: usize) -> String {
    format!(
        "\n\n> [!WARNING]\n> This report was cut to fit a limit of {limit} bytes. The full report is in `report.md` \
         and `results.json` among the run's artifacts.\n"
    )
}

/// Returns `text` unchanged when it fits in `limit` bytes; otherwise its longest prefix that
/// ends at a line boundary and, with closers for any open code fence or `<details>` block and
/// the [`notice`], fits in `limit` bytes.
pub fn fit_markdown(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let notice = notice(limit);
    // Walk whole lines, tracking what is open, and keep the longest prefix that fits with its closers.
    let mut best = String::new();
    let mut kept = 0usize;
    let mut fence: Option<String> = None;
    let mut details = 0usize;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let mut next_fence = fence.clone();
        let mut next_details = details;
        match &fence {
            Some(open) if trimmed.trim_end() == open.as_str() => next_fence = None,
            Some(_) => {}
            None => {
                let ticks: String = trimmed.chars().take_while(|&c| c == '`').collect();
                if ticks.len() >= 3 {
                    next_fence = Some(ticks);
                } else {
                    next_details += trimmed.matches("<details").count();
                    next_details = next_details.saturating_sub(trimmed.matches("</details>").count());
                }
            }
        }
        let closers = closers(&next_fence, next_details, line.ends_with('\n'));
        if kept + line.len() + closers.len() + notice.len() > limit {
            break;
        }
        kept += line.len();
        fence = next_fence;
        details = next_details;
        best.clear();
        best.push_str(&closers);
    }
    let mut out = String::with_capacity(kept + best.len() + notice.len());
    out.push_str(&text[..kept]);
    if kept == 0 {
        best = closers(&None, 0, true);
    }
    out.push_str(&best);
    out.push_str(&notice);
    if out.len() > limit {
        // Only when the limit is smaller than the notice itself.
        let mut end = limit;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}

fn closers(fence: &Option<String>, details: usize, ends_with_newline: bool) -> String {
    let mut s = String::new();
    if !ends_with_newline {
        s.push('\n');
    }
    if let Some(f) = fence {
        s.push_str(f);
        s.push('\n');
    }
    for _ in 0..details {
        s.push_str("\n</details>\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_untouched() {
        assert_eq!(fit_markdown("# hi\n", 100), "# hi\n");
    }

    #[test]
    fn cuts_at_a_line_boundary_and_says_so() {
        let text: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        let out = fit_markdown(&text, 2000);
        assert!(out.len() <= 2000, "{}", out.len());
        assert!(out.ends_with(&notice(2000)));
        let body = out.strip_suffix(&notice(2000)).unwrap();
        assert!(text.starts_with(body), "a prefix of whole lines");
        assert!(body.ends_with('\n'));
        assert!(body.len() > 2000 - notice(2000).len() - 10, "keeps as much as fits");
    }

    #[test]
    fn closes_an_open_code_fence_and_details() {
        let mut text = String::from("# Report\n<details><summary>log</summary>\n\n````text\n");
        text.extend((0..500).map(|i| format!("log line {i} with ``` inside\n")));
        text.push_str("````\n</details>\n");
        let out = fit_markdown(&text, 3000);
        assert!(out.len() <= 3000);
        let body = out.strip_suffix(&notice(3000)).unwrap();
        assert!(body.ends_with("````\n\n</details>\n"), "{}", &body[body.len() - 40..]);
        // The ``` inside a four-backtick fence neither opens nor closes anything.
        assert_eq!(body.matches("\n````\n").count(), 1, "only the closer");
    }

    #[test]
    fn closes_every_nested_details_block() {
        let mut text = String::from("# Report\n<details><summary>a</summary>\n\n");
        text.push_str("<details><summary>b</summary>\n\n");
        text.extend((0..500).map(|i| format!("- item {i}\n")));
        text.push_str("\n</details>\n</details>\n");
        let out = fit_markdown(&text, 2500);
        assert!(out.len() <= 2500);
        let body = out.strip_suffix(&notice(2500)).unwrap();
        assert_eq!(body.matches("<details>").count(), 2);
        assert_eq!(body.matches("</details>").count(), 2, "{}", &body[body.len() - 60..]);
    }

    #[test]
    fn the_report_budget_leaves_room_for_the_longest_marker_line() {
        let marker = format!("<!-- chronik-chaos:report:{} -->\n", "x".repeat(100));
        assert!(REPORT_BUDGET + marker.len() <= GITHUB_COMMENT_LIMIT);
    }

    #[test]
    fn a_limit_below_the_notice_still_holds() {
        let out = fit_markdown(&"x\n".repeat(100), 20);
        assert!(out.len() <= 20);
    }
}
