//! `cargo xtask cluster start|status|stop`: builds Chronik (or takes a binary), then hands off to
//! `chronik-chaos cluster` (replaces Chronik's tests/cluster/{start,stop}.sh).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use xshell::Shell;

use crate::chronik::BuildArgs;

/// Start, inspect or stop a Chronik cluster whose every byte crosses a proxy. State lives in
/// target/chronik-chaos, so every subcommand works from any shell in this checkout.
#[derive(Debug, Args)]
pub struct Cluster {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Build chronik-server (or take --chronik-bin), start Toxiproxy, the proxies and the nodes,
    /// wait for a leader, prove the wiring, and leave the cluster running.
    Start {
        #[command(flatten)]
        build: BuildArgs,
        /// Number of nodes (3 to 9).
        #[arg(long, default_value_t = 3)]
        nodes: u8,
        /// First port of the plan (nodes base+10i.., proxies base+100..base+399).
        #[arg(long, default_value_t = 20000)]
        base_port: u16,
        /// A real toxiproxy-server to use (else $TOXIPROXY_BIN, PATH, or the embedded server).
        #[arg(long, value_name = "PATH")]
        toxiproxy_bin: Option<PathBuf>,
    },
    /// Show nodes, pids, leader, partitions and proxies with byte counters.
    Status,
    /// Stop every node and the cluster's Toxiproxy; clear the state.
    Stop,
}

impl Cluster {
    pub fn run(self, sh: &Shell) -> anyhow::Result<u8> {
        let state_dir = crate::target_dir().join("chronik-chaos");
        let mut args: Vec<String> = vec!["cluster".into()];
        match self.action {
            Action::Start { build, nodes, base_port, toxiproxy_bin } => {
                let bin = build.resolve(sh)?;
                args.extend(["start".into(), "--chronik-bin".into(), bin.display().to_string()]);
                args.extend(["--nodes".into(), nodes.to_string(), "--base-port".into(), base_port.to_string()]);
                if let Some(t) = toxiproxy_bin {
                    args.extend(["--toxiproxy-bin".into(), crate::absolute(&t).display().to_string()]);
                }
            }
            Action::Status => args.push("status".into()),
            Action::Stop => args.push("stop".into()),
        }
        args.extend(["--state-dir".into(), state_dir.display().to_string()]);
        crate::run_chaos_binary(&args, "cargo xtask cluster")
    }
}
