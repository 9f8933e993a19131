//! `cargo xtask chaos`: checks the request, builds (or clones and builds) Chronik, then hands
//! off to `chronik-chaos chaos`, which runs the suite and writes every report.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use xshell::{cmd, Shell};

use crate::chronik::BuildArgs;

/// The public Chronik repository and the ref `--clone` checks out (the one this harness was
/// last run against; see docs/example-report.md).
pub const CHRONIK_REPO: &str = "https://github.com/lspecian/chronik-stream";
pub const CHRONIK_PINNED_REF: &str = "v2.10.4";

/// Flags of `cargo xtask chaos` (its help text is on `Task::Chaos` in main.rs).
#[derive(Debug, Args)]
pub struct Chaos {
    #[command(flatten)]
    build: BuildArgs,
    /// With no --chronik-dir/--chronik-bin: clone the public Chronik repository at --chronik-ref
    /// into target/chronik-stream (needs network) and build it.
    #[arg(long, conflicts_with_all = ["chronik_dir", "chronik_bin"])]
    clone: bool,
    /// Run against the stand-in broker (`chronik-stand-in-node`, a small replicating
    /// Kafka-protocol broker built with this project, not Chronik): the whole product in
    /// seconds, no Chronik build. For a first try and for developing scenarios.
    #[arg(long, conflicts_with_all = ["chronik_dir", "chronik_bin", "clone"])]
    stand_in: bool,
    /// The ref --clone checks out.
    #[arg(long, default_value = CHRONIK_PINNED_REF, value_name = "REF")]
    chronik_ref: String,
    /// Run only this scenario (repeatable; default: every built-in and --scenarios-file scenario).
    #[arg(long = "scenario", value_name = "NAME")]
    scenarios: Vec<String>,
    /// Add the scenarios of this TOML file (repeatable; see docs/scenarios.md).
    #[arg(long = "scenarios-file", value_name = "FILE")]
    scenario_files: Vec<PathBuf>,
    /// Seed for every random choice; printed by every run so it can be repeated.
    #[arg(long)]
    seed: Option<u64>,
    /// Output directory [default: target/chronik-chaos/run].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// A real toxiproxy-server to use (else $TOXIPROXY_BIN, PATH, or the embedded server).
    #[arg(long, value_name = "PATH")]
    toxiproxy_bin: Option<PathBuf>,
    /// An earlier results.json to compare against (deltas and regressions in the report).
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// The pull request's sticky comment: auto (always inside a GitHub Actions pull-request
    /// workflow, never elsewhere), always, on-failure, never.
    #[arg(long, default_value = "auto", value_name = "MODE")]
    comment: String,
    /// List the scenarios and exit (no Chronik needed).
    #[arg(long)]
    list: bool,
    /// Further flags for `chronik-chaos chaos` (see `chronik-chaos chaos --help`), after `--`.
    #[arg(last = true, value_name = "ARGS")]
    extra: Vec<String>,
}

impl Chaos {
    pub fn run(self, sh: &Shell) -> anyhow::Result<u8> {
        let mut common: Vec<String> = vec!["chaos".into()];
        for f in &self.scenario_files {
            common.extend(["--scenarios-file".into(), crate::absolute(f).display().to_string()]);
        }
        if self.list {
            common.push("--list".into());
            return crate::run_chaos_binary(sh, &common);
        }
        for s in &self.scenarios {
            common.extend(["--scenario".into(), s.clone()]);
        }
        if let Some(seed) = self.seed {
            common.extend(["--seed".into(), seed.to_string()]);
        }
        let out = self
            .out
            .as_ref()
            .map(|o| crate::absolute(o))
            .unwrap_or_else(|| crate::target_dir().join("chronik-chaos/run"));
        common.extend(["--out".into(), out.display().to_string()]);
        if let Some(t) = &self.toxiproxy_bin {
            common.extend(["--toxiproxy-bin".into(), crate::absolute(t).display().to_string()]);
        }
        if let Some(b) = &self.baseline {
            common.extend(["--baseline".into(), crate::absolute(b).display().to_string()]);
        }
        common.extend(["--comment".into(), self.comment.clone()]);
        common.extend(self.extra.iter().cloned());

        // Seconds: everything that can be wrong with the request, before a long build.
        let mut check = common.clone();
        check.push("--dry-run".into());
        let code = crate::run_chaos_binary(sh, &check)?;
        if code != 0 {
            return Ok(2);
        }

        let bin = if self.stand_in {
            eprintln!("xtask: --stand-in: building chronik-stand-in-node (not Chronik; reports name it)");
            cmd!(sh, "cargo build --package chronik-chaos --bin chronik-stand-in-node").run()?;
            crate::target_dir().join("debug").join("chronik-stand-in-node")
        } else if self.clone {
            let dir = crate::target_dir().join("chronik-stream");
            clone(sh, &dir, &self.chronik_ref)?;
            BuildArgs { chronik_dir: Some(dir), chronik_bin: None, profile: self.build.profile }.resolve(sh)?
        } else {
            if self.build.chronik_dir.is_none() && self.build.chronik_bin.is_none() {
                bail!(
                    "no Chronik given. Either\n  \
                     --chronik-dir DIR   a checkout to build (e.g. `git clone {CHRONIK_REPO} ../chronik-stream`), or\n  \
                     --chronik-bin PATH  a chronik-server binary already built, or\n  \
                     --clone             clone {CHRONIK_REPO} at {CHRONIK_PINNED_REF} into target/ (needs network), or\n  \
                     --stand-in          the stand-in broker built with this project (not Chronik), in seconds"
                );
            }
            self.build.resolve(sh)?
        };
        let mut args = common;
        args.extend(["--chronik-bin".into(), bin.display().to_string()]);
        crate::run_chaos_binary(sh, &args)
    }
}

fn clone(sh: &Shell, dir: &std::path::Path, git_ref: &str) -> anyhow::Result<()> {
    if dir.join("Cargo.toml").is_file() {
        eprintln!("xtask: using the existing clone {} (delete it to clone afresh)", dir.display());
        let _dir = sh.push_dir(dir);
        let head = cmd!(sh, "git rev-parse --short HEAD").read().unwrap_or_default();
        eprintln!("xtask: its HEAD is {head}");
        return Ok(());
    }
    eprintln!("xtask: cloning {CHRONIK_REPO} at {git_ref} into {}", dir.display());
    cmd!(sh, "git clone --depth 1 --branch {git_ref} {CHRONIK_REPO} {dir}").run().map_err(|e| {
        anyhow::anyhow!(
            "cloning {CHRONIK_REPO} failed ({e}); without network, clone it elsewhere and pass --chronik-dir DIR"
        )
    })?;
    Ok(())
}
