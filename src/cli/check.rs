//! `chronik-chaos check`: re-decides a saved run (`histories/<name>.json`) offline, with the
//! checker of this build, and prints the verdict and every reason.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use super::{EXIT_OK, EXIT_SCENARIO_FAILURES};
use crate::decision::{self, SavedRun};
use crate::verdict::Verdict;

#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// A history file a `chaos` run wrote (`<out>/histories/<scenario>.json`).
    #[arg(value_name = "HISTORY")]
    pub history: PathBuf,
}

pub async fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let run = read(&args.history)?;
    let d = decision::decide(&run);
    println!("{}: {}", run.scenario, d.verdict);
    for r in &d.reasons {
        println!("  {r}");
    }
    let q = &d.checked.quorum;
    println!(
        "  ({} writes, {} acknowledged; {} acknowledged during a fault checked for a quorum, {} indeterminate; min.insync.replicas {})",
        run.history.sends.len(),
        run.history.acked(),
        q.checked,
        q.indeterminate,
        q.min_insync_source
    );
    Ok(ExitCode::from(if d.verdict == Verdict::Pass { EXIT_OK } else { EXIT_SCENARIO_FAILURES }))
}

/// Reads a history file, saying what is wrong with one that is not.
pub fn read(path: &Path) -> anyhow::Result<SavedRun> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a chronik-chaos history file (written as histories/<scenario>.json by `chronik-chaos chaos`)",
            path.display()
        )
    })
}
