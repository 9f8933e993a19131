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

/// Appends the run's outputs to a `$GITHUB_OUTPUT` file: `verdict` (worst), `passed`,
/// `failed` (scenarios that FAILed, HUNG or ERRORed; an N/A one is neither), `junit`, `report`, `results` (paths). Values use the
/// multi-line `name<<DELIMITER` form, so no value can inject another output.
pub fn write_outputs(path: &Path, r: &Results, out_dir: &Path) -> std::io::Result<()> {
    let passed = r.scenarios.iter().filter(|s| s.verdict == Verdict::Pass).count();
    let values = [
        ("verdict", r.worst().to_string()),
        ("passed", passed.to_string()),
        ("failed", r.scenarios.iter().filter(|s| s.verdict > Verdict::NotApplicable).count().to_string()),
        ("junit", out_dir.join("junit.xml").display().to_string()),
        ("report", out_dir.join("report.md").display().to_string()),
        ("results", out_dir.join("results.json").display().to_string()),
    ];
    append_outputs(path, &values)
}

/// Appends step outputs to a `$GITHUB_OUTPUT` file, each in the multi-line `name<<DELIMITER`
/// form with a delimiter the value does not contain.
pub fn append_outputs(path: &Path, values: &[(&str, String)]) -> std::io::Result<()> {
    let mut text = String::new();
    for (name, value) in values {
        let mut delimiter = String::from("CHRONIK_CHAOS_EOF");
        while value.contains(&delimiter) {
            delimiter.push('_');
        }
        text.push_str(&format!("{name}<<{delimiter}\n{value}\n{delimiter}\n"));
    }
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(text.as_bytes())
}

/// The URL of the current Actions run (where its artifacts are), from the runner's environment.
pub fn run_url_from_env() -> Option<String> {
    let server = std::env::var("GITHUB_SERVER_URL").ok()?;
    let repo = std::env::var("GITHUB_REPOSITORY").ok()?;
    let run = std::env::var("GITHUB_RUN_ID").ok()?;
    Some(format!("{server}/{repo}/actions/runs/{run}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_use_delimited_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let r = Results {
            version: crate::results::RESULTS_VERSION,
            tool: String::new(),
            chronik: Default::default(),
            toxiproxy: String::new(),
            seed: 1,
            started_at: String::new(),
            finished_at: String::new(),
            scenarios: vec![],
        };
        write_outputs(&path, &r, Path::new("/o/CHRONIK_CHAOS_EOF\nverdict=PASS")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("verdict<<CHRONIK_CHAOS_EOF\nPASS\nCHRONIK_CHAOS_EOF\npassed<<"), "{text}");
        // A value containing the delimiter gets a longer one.
        assert!(
            text.contains(
                "junit<<CHRONIK_CHAOS_EOF_\n/o/CHRONIK_CHAOS_EOF\nverdict=PASS/junit.xml\nCHRONIK_CHAOS_EOF_\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn step_summary_is_appended_within_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.md");
        std::fs::write(&path, "# Earlier step\n").unwrap();
        append_step_summary(&path, "# Report\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "# Earlier step\n# Report\n\n");
        let huge = "row\n".repeat(STEP_SUMMARY_LIMIT / 2);
        append_step_summary(&path, &huge).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.len() <= STEP_SUMMARY_LIMIT, "{}", text.len());
        assert!(text.trim_end().ends_with("among the run's artifacts."), "cut with a notice");
    }

    #[test]
    fn annotations_are_escaped_workflow_commands() {
        let json = include_str!("../../tests/fixtures/results-hostile.json");
        let r: Results = serde_json::from_str(json).unwrap();
        let a = annotations(&r);
        assert_eq!(a.len(), 2);
        for line in &a {
            assert!(!line.contains('\n') && !line.contains('\r'), "{line}");
            assert!(line.starts_with("::error title=chaos scenario "), "{line}");
        }
        // `%0A::error::spoofed` in a reason stays data: its `%` is encoded.
        assert!(a[0].contains("%250A::error::spoofed"), "{}", a[0]);
    }
}
