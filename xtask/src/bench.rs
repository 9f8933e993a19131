//! `cargo xtask bench proxy|suite`: runs a benchmark target (figures, not pass/fail).

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use xshell::{cmd, Shell};

/// Print performance figures. Set TOXIPROXY_BIN to include (proxy) or use (suite) a real
/// toxiproxy-server.
#[derive(Debug, Args)]
pub struct Bench {
    /// Which benchmark to run.
    #[arg(value_enum)]
    which: Which,
    /// suite: the job counts to compare with the sequential run (1 always runs first).
    #[arg(long, value_name = "N,N,…", default_value = "1,2,3,4")]
    jobs: String,
    /// suite: the seed every run uses.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// suite: run only this scenario (repeatable; default: the whole default selection).
    #[arg(long = "scenario", value_name = "NAME")]
    scenarios: Vec<String>,
    /// suite: the chronik-server to run (default: $CHRONIK_BIN, else the stand-in node).
    #[arg(long, value_name = "PATH")]
    chronik_bin: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Which {
    /// Throughput and added latency: direct loopback vs the embedded server vs a real one.
    Proxy,
    /// The suite's wall time sequential and with --jobs 2/3/4 (--network netns, root), the
    /// overhead ratio (wall time ÷ the scenarios' own windows), and whether the verdicts agree.
    Suite,
}

impl Bench {
    pub fn run(self, sh: &Shell) -> anyhow::Result<u8> {
        match self.which {
            Which::Proxy => crate::clean_cmd(cmd!(sh, "cargo bench --package chronik-chaos --bench proxy")).run()?,
            Which::Suite => {
                let mut args = vec!["--jobs".to_string(), self.jobs, "--seed".to_string(), self.seed.to_string()];
                for s in self.scenarios {
                    args.extend(["--scenario".to_string(), s]);
                }
                let mut c =
                    crate::clean_cmd(cmd!(sh, "cargo bench --package chronik-chaos --bench suite -- {args...}"));
                let chronik = self.chronik_bin.or_else(|| std::env::var_os("CHRONIK_BIN").map(PathBuf::from));
                c = match chronik.filter(|p| !p.as_os_str().is_empty()) {
                    Some(p) => c.env("CHRONIK_BIN", p),
                    None => c.env_remove("CHRONIK_BIN"),
                };
                if c.run().is_err() {
                    return Ok(2);
                }
            }
        }
        Ok(0)
    }
}
