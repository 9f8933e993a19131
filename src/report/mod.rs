//! Reports rendered from `results.json` alone: JUnit XML, the Markdown resilience report, SVG
//! plots, baseline deltas, GitHub Actions outputs, and the size limits they must respect.

pub mod actions;
pub mod baseline;
pub mod escape;
pub mod fit;
pub mod junit;
pub mod markdown;
pub mod plot;

use std::path::{Path, PathBuf};

use crate::liveness::{LatencyStats, Liveness, Phase};
use crate::results::Results;

/// A duration in ms, human-sized: `850 µs`, `12.3 ms`, `403 ms`, `2.51 s`, `95.4 s`.
pub fn fmt_ms(ms: f64) -> String {
    if !ms.is_finite() {
        "n/a".into()
    } else if ms < 1.0 {
        format!("{:.0} µs", ms * 1e3)
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 10_000.0 {
        format!("{:.2} s", ms / 1e3)
    } else {
        format!("{:.1} s", ms / 1e3)
    }
}

pub fn phase_latency(l: &Liveness, p: Phase) -> Option<&LatencyStats> {
    l.latency.get(&p).filter(|s| s.count > 0)
}

/// What to render and where.
#[derive(Clone, Debug, Default)]
pub struct RenderOptions {
    /// Compare against this earlier run.
    pub baseline: Option<Results>,
    /// Relative growth beyond which a figure counts as a regression (0.25 = 25 %).
    pub tolerance: f64,
    /// A link to the run's artifacts (e.g. the GitHub Actions run page).
    pub artifacts_url: Option<String>,
    /// The directory the results were written in: paths under it are shown relative to it
    /// (results hold absolute paths of the machine that ran, which mean nothing elsewhere).
    pub base_dir: Option<PathBuf>,
}

/// `results` with every `BASE/` prefix removed from its text and paths.
pub fn relative_to(results: &Results, base: &Path) -> Results {
    let prefix = format!("{}/", base.display());
    let json = serde_json::to_string(results).expect("results serialize");
    // A base whose JSON form differs from its text (quotes, backslashes) is left alone.
    if serde_json::to_string(&prefix).map(|q| q[1..q.len() - 1] == prefix).unwrap_or(false) {
        if let Ok(r) = serde_json::from_str(&json.replace(&prefix, "")) {
            return r;
        }
    }
    results.clone()
}

/// What [`render_all`] wrote.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub junit: PathBuf,
    pub report: PathBuf,
    pub plots: Vec<PathBuf>,
    /// The Markdown, already fitted to GitHub's comment limit (with room for the comment's marker).
    pub markdown: String,
}

/// Writes `junit.xml`, `report.md` and `plots/*.svg` into `out`.
pub fn render_all(results: &Results, out: &Path, opts: &RenderOptions) -> std::io::Result<Rendered> {
    let relative;
    let results = match &opts.base_dir {
        Some(base) => {
            relative = relative_to(results, base);
            &relative
        }
        None => results,
    };
    std::fs::create_dir_all(out)?;
    let plots_dir = out.join("plots");
    std::fs::create_dir_all(&plots_dir)?;
    let mut plots = Vec::new();
    for (i, s) in results.scenarios.iter().enumerate() {
        if let Some(svg) = plot::scenario_svg(s) {
            let path = plots_dir.join(plot::file_name(i, s));
            write_atomically(&path, svg.as_bytes())?;
            plots.push(path);
        }
    }
    let junit = out.join("junit.xml");
    write_atomically(&junit, junit::render(results).as_bytes())?;
    let markdown = markdown::render(results, opts, fit::REPORT_BUDGET);
    let report = out.join("report.md");
    write_atomically(&report, markdown.as_bytes())?;
    Ok(Rendered { junit, report, plots, markdown })
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}
