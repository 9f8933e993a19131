//! GitHub Actions outputs of a run: the job's step summary (`$GITHUB_STEP_SUMMARY`, at most
//! 1 MiB per step), `::error` annotations for scenarios that did not pass, and the run's URL.

use std::io::Write as _;
use std::path::Path;

use super::escape::{strip_controls, workflow_data, workflow_property};
use super::fit::{fit_markdown, STEP_SUMMARY_LIMIT};
use crate::results::Results;
use crate::verdict::Verdict;

/// Appends `markdown` to the step summary file, cut so the file stays within GitHub's limit.
/// Returns the number of bytes appended.
pub fn append_step_summary(path: &Path, markdown: &str) -> std::io::Result<usize> {
    let existing = std::fs::metadata(path).map(|m| m.len() as usize).unwrap_or(0);
    let budget = STEP_SUMMARY_LIMIT.saturating_sub(existing + 1);
    let body = fit_markdown(markdown, budget);
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(body.as_bytes())?;
    f.write_all(b"\n")?;
    Ok(body.len() + 1)
}

/// One `::error` workflow command per scenario that did not pass.
pub fn annotations(r: &Results) -> Vec<String> {
    r.scenarios
        .iter()
        .filter(|s| s.verdict != Verdict::Pass)
        .map(|s| {
            let title = format!("chaos scenario {} {}", strip_controls(&s.name), s.verdict);
            let reasons = if s.explanation.is_empty() {
                "(no explanation recorded)".to_string()
            } else {
                s.explanation.join("\n")
            };
            let message: String = strip_controls(&reasons).chars().take(4000).collect();
            format!("::error title={}::{}", workflow_property(&title), workflow_data(&message))
        })
        .collect()
}

/// The URL of the current Actions run (where its artifacts are), from the runner's environment.
pub fn run_url_from_env() -> Option<String> {
    let server = std::env::var("GITHUB_SERVER_URL").ok()?;
    let repo = std::env::var("GITHUB_REPOSITORY").ok()?;
    let run = std::env::var("GITHUB_RUN_ID").ok()?;
    Some(format!("{server}/{repo}/actions/runs/{run}"))
}
