//! `cargo xtask toxiproxy start|status|reset|stop`: hands off to `chronik-chaos toxiproxy`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// Start, inspect, reset or stop a Toxiproxy server. State lives in target/chronik-chaos, so
/// every subcommand works from any shell in this checkout.
#[derive(Debug, Args)]
pub struct Toxiproxy {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Start the real toxiproxy-server if found (--toxiproxy-bin, $TOXIPROXY_BIN, PATH), else the embedded one.
    Start {
        /// API address to listen on.
        #[arg(long, default_value = "127.0.0.1:8474")]
        listen: String,
        /// A real toxiproxy-server binary to use.
        #[arg(long, value_name = "PATH")]
        toxiproxy_bin: Option<PathBuf>,
    },
    /// Show the server, its proxies, toxics and byte counters.
    Status,
    /// Remove every toxic and re-enable every proxy.
    Reset,
    /// Stop the server and clear its state.
    Stop,
}

impl Toxiproxy {
    pub fn run(self) -> anyhow::Result<u8> {
        let state_dir = crate::target_dir().join("chronik-chaos");
        let mut args: Vec<String> = vec!["toxiproxy".into()];
        match self.action {
            Action::Start { listen, toxiproxy_bin } => {
                args.extend(["start".into(), "--listen".into(), listen]);
                if let Some(bin) = toxiproxy_bin {
                    args.extend(["--toxiproxy-bin".into(), crate::absolute(&bin).display().to_string()]);
                }
            }
            Action::Status => args.push("status".into()),
            Action::Reset => args.push("reset".into()),
            Action::Stop => args.push("stop".into()),
        }
        args.extend(["--state-dir".into(), state_dir.display().to_string()]);
        crate::run_chaos_binary(&args, "cargo xtask toxiproxy")
    }
}
