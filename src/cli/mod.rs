//! The command line of `chronik-chaos`: flags resolved once into typed arguments, then dispatched.

mod chaos;
mod check;
mod cluster;
mod comment;
mod report;
mod toxiproxy;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Every scenario passed (or the command did what it was asked).
pub const EXIT_OK: u8 = 0;
/// At least one scenario failed; reports were still written.
pub const EXIT_SCENARIO_FAILURES: u8 = 1;
/// The harness itself failed (bad input, a port taken, a server that would not start).
pub const EXIT_HARNESS: u8 = 2;

/// Proves whether a Chronik cluster survives a bad network.
///
/// Runs Toxiproxy (the real server when installed, else an embedded compatible one) and a
/// Chronik cluster whose every client and inter-node byte crosses a proxy.
///
/// Exit codes: 0 success, 1 scenario failures, 2 harness error.
#[derive(Debug, Parser)]
#[command(name = "chronik-chaos", version, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start, inspect, reset or stop a Toxiproxy server, or serve the embedded one.
    #[command(subcommand)]
    Toxiproxy(toxiproxy::ToxiproxyCommand),
    /// Start, inspect or stop a Chronik cluster whose every byte crosses a proxy.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Run the chaos scenarios against a Chronik binary; write results.json and the reports.
    Chaos(chaos::ChaosArgs),
    /// Render junit.xml, report.md and SVG plots from a results.json (optionally against a
    /// baseline results.json); in GitHub Actions also the step summary and annotations.
    Report(report::ReportArgs),
    /// Post the Markdown report as the pull request's sticky comment (skips, exit 0, on forks).
    Comment(comment::CommentArgs),
    /// Re-decide a saved run offline from its history file (histories/<scenario>.json), with
    /// this build's checker: prints the verdict and every reason; exit 0 PASS, 1 otherwise.
    Check(check::CheckArgs),
}

/// Where `start` records the server it started, so other shells can find it.
/// Defaults to `target/chronik-chaos` under the current directory.
#[derive(Debug, Clone, clap::Args)]
pub struct StateArgs {
    /// Directory for the state file and server log.
    #[arg(long, env = "CHRONIK_CHAOS_STATE_DIR", default_value = "target/chronik-chaos", value_name = "DIR")]
    pub state_dir: PathBuf,
}

/// Parses `std::env::args` and runs the command.
pub fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(run(cli));
    // Do not wait for blocking work an interrupted command left behind (e.g. a metadata fetch).
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Toxiproxy(cmd) => toxiproxy::run(cmd).await,
        Command::Cluster(cmd) => cluster::run(cmd).await,
        Command::Chaos(args) => chaos::run(args).await,
        Command::Report(args) => report::run(args).await,
        Command::Comment(args) => comment::run(args).await,
        Command::Check(args) => check::run(args).await,
    }
}

/// Resolves on the first SIGINT or SIGTERM.
pub async fn interrupted() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
