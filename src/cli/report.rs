//! `chronik-chaos report`: renders `junit.xml`, `report.md` and SVG plots from a `results.json`
//! (optionally against a baseline), and in GitHub Actions the step summary and annotations.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, Context};

use super::EXIT_OK;
use crate::report::{self, actions, RenderOptions};
use crate::results::Results;

#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// The results.json a `chaos` run wrote.
    #[arg(long, value_name = "FILE")]
    pub results: PathBuf,
    /// Where junit.xml, report.md and plots/ go (default: beside the results file).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub common: ReportFlags,
}

/// Report flags shared with `chaos`, which renders the same reports at the end of a run.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportFlags {
    /// A results.json from an earlier run (e.g. the base branch) to compare against: adds
    /// per-scenario deltas of p99 under fault, unavailability and recovery.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Relative growth of a baseline figure that counts as a regression (0.25 = 25 %).
    #[arg(long, default_value_t = 0.25, value_name = "FRACTION")]
    pub tolerance: f64,
    /// Link shown for the run's artifacts (default in GitHub Actions: the run's page).
    #[arg(long, value_name = "URL")]
    pub artifacts_url: Option<String>,
    /// Append the report to this step-summary file (default: $GITHUB_STEP_SUMMARY when set).
    #[arg(long, env = "GITHUB_STEP_SUMMARY", value_name = "FILE")]
    pub step_summary: Option<PathBuf>,
    /// Append the outputs verdict, passed, failed, junit, report and results to this file
    /// (default: $GITHUB_OUTPUT when set).
    #[arg(long, env = "GITHUB_OUTPUT", value_name = "FILE")]
    pub github_output: Option<PathBuf>,
    /// Print `::error` workflow commands for scenarios that did not pass (default: when
    /// $GITHUB_ACTIONS is `true`).
    #[arg(long)]
    pub annotations: bool,
}

pub async fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let results = Results::read(&args.results).map_err(|e| anyhow!(e))?;
    let dir = args.results.parent().unwrap_or(Path::new(".")).to_path_buf();
    let out = args.out.clone().unwrap_or_else(|| dir.clone());
    let base = std::path::absolute(&dir).unwrap_or(dir);
    render(&results, &out, &base, &args.common)?;
    Ok(ExitCode::from(EXIT_OK))
}

/// Renders every report for `results` into `out` and, when asked, the Actions outputs;
/// returns the Markdown (already fitted to GitHub's comment limit).
/// `base` is the directory the results were written in (paths under it are shown relative).
pub fn render(results: &Results, out: &Path, base: &Path, flags: &ReportFlags) -> anyhow::Result<String> {
    if !(0.0..=100.0).contains(&flags.tolerance) {
        anyhow::bail!("--tolerance {} is out of range: give a fraction such as 0.25 for 25 %", flags.tolerance);
    }
    let baseline = match &flags.baseline {
        Some(p) => Some(Results::read(p).map_err(|e| anyhow!("--baseline: {e}"))?),
        None => None,
    };
    let opts = RenderOptions {
        baseline,
        tolerance: flags.tolerance,
        artifacts_url: flags.artifacts_url.clone().or_else(actions::run_url_from_env),
        base_dir: Some(base.to_path_buf()),
    };
    let rendered =
        report::render_all(results, out, &opts).with_context(|| format!("writing reports into {}", out.display()))?;
    println!("junit:  {}", rendered.junit.display());
    println!("report: {} ({} bytes)", rendered.report.display(), rendered.markdown.len());
    println!("plots:  {} SVG file(s) in {}", rendered.plots.len(), out.join("plots").display());
    if let Some(path) = &flags.step_summary {
        let n = actions::append_step_summary(path, &rendered.markdown)
            .with_context(|| format!("appending to the step summary {}", path.display()))?;
        println!("step summary: {n} bytes appended to {}", path.display());
    }
    if let Some(path) = &flags.github_output {
        actions::write_outputs(path, results, out)
            .with_context(|| format!("appending outputs to {}", path.display()))?;
    }
    if flags.annotations || std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true") {
        for a in actions::annotations(results) {
            println!("{a}");
        }
    }
    Ok(rendered.markdown)
}
