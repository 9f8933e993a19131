//! `cargo xtask bench proxy`: runs the proxy benchmark (figures, not pass/fail).

use clap::{Args, ValueEnum};
use xshell::{cmd, Shell};

/// Print performance figures. Set TOXIPROXY_BIN to include a real toxiproxy-server.
#[derive(Debug, Args)]
pub struct Bench {
    /// Which benchmark to run.
    #[arg(value_enum)]
    which: Which,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Which {
    /// Throughput and added latency: direct loopback vs the embedded server vs a real one.
    Proxy,
}

impl Bench {
    pub fn run(self, sh: &Shell) -> anyhow::Result<u8> {
        match self.which {
            Which::Proxy => crate::clean_cmd(cmd!(sh, "cargo bench --package chronik-chaos --bench proxy")).run()?,
        }
        Ok(0)
    }
}
