//! `chronik-stand-in-node start --config FILE`: a stand-in for a Chronik node in tests (it is
//! not Chronik) — a small Kafka-protocol broker with replication, elections and switchable
//! bugs. Everything lives in the library module `chronik_chaos::standin` (see its docs for the
//! behaviour and the `STAND_IN_*` knobs); this is its thin main.

use chronik_chaos::standin::{self, Knobs, NodeConfig};

/// What `version` prints: the reports name the server a run was against.
pub const VERSION_LINE: &str = concat!("chronik-chaos stand-in broker v", env!("CARGO_PKG_VERSION"), " (not Chronik)");

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("version") {
        println!("{VERSION_LINE}");
        return;
    }
    let config_path = match args.iter().position(|a| a == "--config") {
        Some(i) if args.get(1).map(String::as_str) == Some("start") && i + 1 < args.len() => args[i + 1].clone(),
        _ => {
            eprintln!("usage: chronik-stand-in-node start --config FILE | chronik-stand-in-node version");
            std::process::exit(2);
        }
    };
    let config = NodeConfig::read(std::path::Path::new(&config_path)).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let knobs = Knobs::from_env(config.node_id).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap_or_else(|e| {
        eprintln!("cannot start the runtime: {e}");
        std::process::exit(2)
    });
    if let Err(e) = rt.block_on(standin::run(config, knobs)) {
        eprintln!("{e}");
        std::process::exit(2);
    }
}
