//! `cargo xtask`: thin entry points that build the `chronik-chaos` binary with cargo and hand off to it.

mod bench;
mod chaos;
mod chronik;
mod cluster;
mod toxiproxy;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use xshell::{cmd, Shell};

/// Project tasks for chronik-chaos. Each builds what it needs with cargo, then runs it.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", max_term_width = 100)]
struct Xtask {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Build Chronik, run the chaos suite on a cluster behind Toxiproxy, write the reports.
    ///
    /// Order of work: the scenario selection, scenario files, output directory and Toxiproxy
    /// choice are checked first (seconds); then Chronik is built (a cold build takes tens of
    /// minutes); then every scenario runs on a fresh three-node cluster behind Toxiproxy; then
    /// everything is torn down and junit.xml, report.md, results.json, plots/, histories and
    /// node logs are written to --out.
    ///
    /// Exit codes: 0 every scenario passed; 1 a scenario FAILed, HUNG or ERRORed (the reports
    /// are written); 2 the harness could not run (bad input, build failure, ports taken).
    Chaos(chaos::Chaos),
    /// Start, inspect, reset or stop a Toxiproxy server (replaces test_toxiproxy_setup.sh).
    Toxiproxy(toxiproxy::Toxiproxy),
    /// Start, inspect or stop a Chronik cluster wired through proxies (replaces tests/cluster/*.sh).
    Cluster(cluster::Cluster),
    /// Build chronik-server in a Chronik checkout.
    Chronik(chronik::Chronik),
    /// Print performance figures (benchmarks, not tests).
    Bench(bench::Bench),
}

fn main() -> std::process::ExitCode {
    let xtask = Xtask::parse();
    let sh = match Shell::new() {
        Ok(sh) => sh,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    sh.change_dir(project_root());
    let result = match xtask.task {
        Task::Chaos(c) => c.run(&sh),
        Task::Toxiproxy(t) => t.run(&sh),
        Task::Cluster(c) => c.run(&sh),
        Task::Chronik(c) => c.run(&sh),
        Task::Bench(b) => b.run(&sh),
    };
    match result {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// The workspace root (the parent of `xtask/`).
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace root").to_path_buf()
}

/// `p` made absolute against the directory cargo xtask was started from.
fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf())
    }
}

/// The cargo target directory (honours `CARGO_TARGET_DIR`).
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => project_root().join(dir),
        None => project_root().join("target"),
    }
}

/// Builds the `chronik-chaos` binary and returns its path: release by default, the dev
/// profile when `CHRONIK_CHAOS_PROFILE=dev` (the end-to-end test uses it to reuse the test build).
fn build_chaos_binary(sh: &Shell) -> anyhow::Result<PathBuf> {
    let dev = std::env::var("CHRONIK_CHAOS_PROFILE").is_ok_and(|p| p == "dev");
    if dev {
        eprintln!("xtask: building chronik-chaos (dev profile, CHRONIK_CHAOS_PROFILE=dev)");
        cmd!(sh, "cargo build --package chronik-chaos --bin chronik-chaos").run()?;
        Ok(target_dir().join("debug").join("chronik-chaos"))
    } else {
        eprintln!("xtask: building chronik-chaos (release)");
        cmd!(sh, "cargo build --release --package chronik-chaos --bin chronik-chaos").run()?;
        Ok(target_dir().join("release").join("chronik-chaos"))
    }
}

/// Runs the binary with `args`, passing its exit code through.
fn run_chaos_binary(sh: &Shell, args: &[String]) -> anyhow::Result<u8> {
    let bin = build_chaos_binary(sh)?;
    eprintln!("xtask: {} {}", bin.display(), args.join(" "));
    let status = std::process::Command::new(&bin).args(args).current_dir(project_root()).status()?;
    Ok(status.code().map(|c| c.clamp(0, 255) as u8).unwrap_or(2))
}
