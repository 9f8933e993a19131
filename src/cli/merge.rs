//! `chronik-chaos merge`: joins the results files of `chaos --shard K/N` runs into one
//! `results.json` in selection order and renders the same reports `report` would.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};

use super::chaos::{exit_code, FailOn};
use super::report::ReportFlags;
use crate::results::{Results, ScenarioResult, Shard, Sharding};

#[derive(Debug, Clone, clap::Args)]
pub struct MergeArgs {
    /// The results.json of every shard, 1/N to N/N, in any order.
    #[arg(required = true, value_name = "RESULTS")]
    pub results: Vec<PathBuf>,
    /// Where the merged results.json, junit.xml, report.md and plots/ go.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Which verdicts make the exit code 1: any (FAIL, HANG or ERROR), safety (FAIL only),
    /// never (exit 0 whatever the verdicts; files that do not belong together still exit 2).
    #[arg(long, value_enum, default_value_t = FailOn::Any)]
    pub fail_on: FailOn,
    #[command(flatten)]
    pub common: ReportFlags,
}

pub async fn run(args: MergeArgs) -> anyhow::Result<ExitCode> {
    let mut shards = Vec::new();
    for path in &args.results {
        let (results, sharding) = Results::read_with_sharding(path).map_err(|e| anyhow!(e))?;
        shards.push((path.clone(), results, sharding));
    }
    let (results, sharding) = merge(&shards)?;
    let out = std::path::absolute(&args.out).unwrap_or(args.out.clone());
    let results_file = out.join("results.json");
    results.write_with(&results_file, &sharding).with_context(|| format!("writing {}", results_file.display()))?;
    println!("merged {} shard(s), {} scenario(s): {}", shards.len(), results.scenarios.len(), results_file.display());
    // Exactly what `chronik-chaos report --results OUT/results.json` renders.
    super::report::render(&results, &out, &out, &args.common)?;
    Ok(ExitCode::from(exit_code(&results, args.fail_on)))
}

/// Joins shards `1..=N` of one run: the same tool, seed, Chronik, Toxiproxy and selection, each
/// shard exactly once and complete. The result has the scenarios in selection order, the
/// earliest start, the latest finish and no shard. Errors name the file and what differs.
pub fn merge(shards: &[(PathBuf, Results, Sharding)]) -> anyhow::Result<(Results, Sharding)> {
    let Some((first_path, first, first_sharding)) = shards.first() else {
        bail!("no results files given: pass the results.json of every shard");
    };
    let shard_of = |path: &Path, sharding: &Sharding| -> anyhow::Result<Shard> {
        sharding.shard.ok_or_else(|| {
            anyhow!("{}: has no `shard`; merge takes the results.json of `chaos --shard K/N` runs", path.display())
        })
    };
    let n = shard_of(first_path, first_sharding)?.n;
    let mut by_k: Vec<Option<(&Path, &Results, Option<&Path>)>> = vec![None; n as usize];
    for (path, results, sharding) in shards {
        let shard = shard_of(path, sharding)?;
        let differs = |what: &str, this: String, that: String| {
            anyhow!(
                "{}: {what} {this} differs from {that} in {}; merge only the shards of one run",
                path.display(),
                first_path.display()
            )
        };
        if shard.n != n {
            return Err(differs("shard count (N of --shard K/N)", shard.n.to_string(), n.to_string()));
        }
        if results.tool != first.tool {
            return Err(differs("tool", format!("`{}`", results.tool), format!("`{}`", first.tool)));
        }
        if results.seed != first.seed {
            return Err(differs("seed", results.seed.to_string(), first.seed.to_string()));
        }
        if results.chronik.version != first.chronik.version {
            return Err(differs(
                "Chronik version",
                format!("`{}`", results.chronik.version),
                format!("`{}`", first.chronik.version),
            ));
        }
        if results.chronik.binary != first.chronik.binary {
            return Err(differs(
                "Chronik binary",
                results.chronik.binary.display().to_string(),
                first.chronik.binary.display().to_string(),
            ));
        }
        if results.toxiproxy != first.toxiproxy {
            return Err(differs("Toxiproxy", format!("`{}`", results.toxiproxy), format!("`{}`", first.toxiproxy)));
        }
        if sharding.selection != first_sharding.selection {
            return Err(differs(
                "selection",
                format!("[{}]", sharding.selection.join(", ")),
                format!("[{}]", first_sharding.selection.join(", ")),
            ));
        }
        let slot = &mut by_k[(shard.k - 1) as usize];
        if let Some((other, _, _)) = slot {
            bail!("{}: shard {shard} is also {}; give each shard once", path.display(), other.display());
        }
        let want: Vec<&str> = crate::scenario::shard_of(&sharding.selection, shard)
            .into_iter()
            .map(|(i, _)| sharding.selection[i].as_str())
            .collect();
        let have: Vec<&str> = results.scenarios.iter().map(|s| s.name.as_str()).collect();
        if have != want {
            bail!(
                "{}: shard {shard} holds [{}] but runs [{}] of the selection; was the run interrupted?",
                path.display(),
                have.join(", "),
                want.join(", ")
            );
        }
        *slot = Some((path, results, sharding.out_dir.as_deref()));
    }
    let missing: Vec<String> =
        by_k.iter().enumerate().filter(|(_, s)| s.is_none()).map(|(i, _)| format!("{}/{n}", i + 1)).collect();
    if !missing.is_empty() {
        bail!(
            "shard {} missing: give the results.json of every shard 1/{n} to {n}/{n} (got {})",
            missing.join(", "),
            shards.iter().map(|(p, _, _)| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    // Each shard's paths relative to its own output directory, as a whole run's report shows them.
    let present: Vec<Results> = by_k
        .iter()
        .flatten()
        .map(|(_, r, dir)| match dir {
            Some(dir) => crate::report::relative_to(r, dir),
            None => (*r).clone(),
        })
        .collect();
    // Selection index i is scenario i / n of shard (i mod n) + 1.
    let scenarios: Vec<ScenarioResult> = (0..first_sharding.selection.len())
        .map(|i| present[i % n as usize].scenarios[i / n as usize].clone())
        .collect();
    let merged = Results {
        started_at: present.iter().map(|r| r.started_at.clone()).min().unwrap_or_default(),
        finished_at: present.iter().map(|r| r.finished_at.clone()).max().unwrap_or_default(),
        scenarios,
        ..first.clone()
    };
    Ok((merged, Sharding { shard: None, selection: first_sharding.selection.clone(), out_dir: None }))
}
