//! The command line of `chronik-chaos`: flags resolved once into typed arguments, then dispatched.

mod baseline;
mod chaos;
mod check;
mod cluster;
mod comment;
mod jobs;
mod merge;
mod replay;
mod report;
mod toxiproxy;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::cluster::supervisor::{self, NodeBinary};
use crate::cluster::{PortRole, PortsTaken};
use crate::toxiproxy::launcher::LaunchError;

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
    /// Join the results.json files of `chaos --shard K/N` runs (every shard once, same run)
    /// into one results.json in selection order and render its reports as `report` does;
    /// exit 1 when a scenario did not pass (see --fail-on), 2 when the files do not belong together.
    Merge(merge::MergeArgs),
    /// Find the pull request's base-branch results for --baseline: the newest successful run of
    /// this workflow on the base branch that kept this job's artifact; its results.json is
    /// written to --dir (exit 0 with one line when there is none).
    Baseline(baseline::BaselineArgs),
}

/// The variable `cargo xtask` sets to the command the user ran (`cargo xtask chaos`, `cargo
/// xtask cluster`, `cargo xtask toxiproxy`) when it runs this binary, so that hints name flags
/// as that command takes them.
pub const INVOKED_AS_ENV: &str = "CHRONIK_CHAOS_INVOKED_AS";

/// Flags `cargo xtask chaos` takes itself; every other flag of `chronik-chaos chaos` goes after `--`.
const XTASK_CHAOS_FLAGS: &[&str] = &[
    "--scenario",
    "--seed",
    "--out",
    "--toxiproxy-bin",
    "--baseline",
    "--comment",
    "--list",
    "--chronik-bin",
    "--chronik-dir",
    "--profile",
    "--clone",
    "--chronik-ref",
    "--stand-in",
    "--scenarios-file",
];
/// Flags of `chronik-chaos cluster start` that `cargo xtask cluster start` forwards.
const XTASK_CLUSTER_START_FLAGS: &[&str] = &["--chronik-bin", "--nodes", "--base-port", "--toxiproxy-bin"];
/// Flags of `chronik-chaos toxiproxy start` that `cargo xtask toxiproxy start` forwards.
const XTASK_TOXIPROXY_START_FLAGS: &[&str] = &["--listen", "--toxiproxy-bin"];

/// The command the user ran, which decides how a hint writes a flag or a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvokedAs {
    /// `chronik-chaos` itself (no `CHRONIK_CHAOS_INVOKED_AS`).
    Binary,
    XtaskChaos,
    XtaskCluster,
    XtaskToxiproxy,
}

impl InvokedAs {
    /// From `CHRONIK_CHAOS_INVOKED_AS`; unset or unknown means the binary itself.
    pub fn from_env() -> InvokedAs {
        InvokedAs::parse(std::env::var(INVOKED_AS_ENV).ok().as_deref())
    }

    pub fn parse(value: Option<&str>) -> InvokedAs {
        let words: Vec<&str> = value.unwrap_or_default().split_whitespace().collect();
        match words.as_slice() {
            ["cargo", "xtask", "chaos", ..] => InvokedAs::XtaskChaos,
            ["cargo", "xtask", "cluster", ..] => InvokedAs::XtaskCluster,
            ["cargo", "xtask", "toxiproxy", ..] => InvokedAs::XtaskToxiproxy,
            _ => InvokedAs::Binary,
        }
    }

    /// How the user writes the binary's `flag` (with `value`, e.g. `ADDR`; empty for a switch)
    /// in the command they ran, in backticks; `None` when that command cannot pass it.
    pub fn flag(self, flag: &str, value: &str) -> Option<String> {
        let arg = if value.is_empty() { flag.to_string() } else { format!("{flag} {value}") };
        match self {
            InvokedAs::Binary => Some(format!("`{arg}`")),
            InvokedAs::XtaskChaos if XTASK_CHAOS_FLAGS.contains(&flag) => Some(format!("`cargo xtask chaos {arg}`")),
            InvokedAs::XtaskChaos => Some(format!("`cargo xtask chaos -- {arg}`")),
            InvokedAs::XtaskCluster if XTASK_CLUSTER_START_FLAGS.contains(&flag) => {
                Some(format!("`cargo xtask cluster start {arg}`"))
            }
            InvokedAs::XtaskToxiproxy if XTASK_TOXIPROXY_START_FLAGS.contains(&flag) => {
                Some(format!("`cargo xtask toxiproxy start {arg}`"))
            }
            InvokedAs::XtaskCluster | InvokedAs::XtaskToxiproxy => None,
        }
    }

    /// "pass `…`" for a flag the user's command takes, else what can: the binary's own
    /// `subcommand` run directly.
    pub fn pass(self, subcommand: &str, flag: &str, value: &str) -> String {
        match self.flag(flag, value) {
            Some(f) => format!("pass {f}"),
            None => format!(
                "`{}` has no {flag}; run the binary directly: `chronik-chaos {subcommand} {flag} {value}`",
                self.xtask_name().unwrap_or("chronik-chaos")
            ),
        }
    }

    /// How the user runs the binary's `subcommand` (e.g. `cluster stop`), in backticks; run
    /// directly, with `--state-dir` when the state is not in the default place.
    pub fn command(self, subcommand: &str, state_dir: &std::path::Path) -> String {
        if self != InvokedAs::Binary {
            return format!("`cargo xtask {subcommand}`");
        }
        if state_dir == std::path::Path::new(DEFAULT_STATE_DIR) {
            format!("`chronik-chaos {subcommand}`")
        } else {
            format!("`chronik-chaos {subcommand} --state-dir {}`", state_dir.display())
        }
    }

    /// The xtask command, when the user ran one.
    pub fn xtask_name(self) -> Option<&'static str> {
        match self {
            InvokedAs::Binary => None,
            InvokedAs::XtaskChaos => Some("cargo xtask chaos"),
            InvokedAs::XtaskCluster => Some("cargo xtask cluster start"),
            InvokedAs::XtaskToxiproxy => Some("cargo xtask toxiproxy start"),
        }
    }
}

/// Checks that `bin` is a Chronik server (or the chronik-chaos stand-in) by running `bin
/// version`, before anything starts; otherwise an error naming the flag, the path and what it
/// printed.
pub fn check_chronik_bin(bin: &std::path::Path, via: InvokedAs) -> anyhow::Result<NodeBinary> {
    let named = if via == InvokedAs::Binary { "--chronik-bin / $CHRONIK_BIN" } else { "--chronik-bin" };
    if !bin.is_file() {
        anyhow::bail!(
            "{named} names {}, which is not a file; build one with `cargo xtask chronik build --chronik-dir DIR`",
            bin.display()
        );
    }
    supervisor::identify(bin, supervisor::IDENTIFY_TIMEOUT).map_err(|e| {
        anyhow::anyhow!(
            "{named} names {}, which is not a Chronik server: {e}. Pass a chronik-server binary \
             (`cargo xtask chronik build --chronik-dir DIR` builds one)",
            bin.display()
        )
    })
}

/// A Toxiproxy launch error, with how the user's command picks another address when the
/// port is taken (`flag` of the binary's `subcommand`).
pub fn launch_error(e: LaunchError, via: InvokedAs, subcommand: &str, flag: &str) -> anyhow::Error {
    match e {
        LaunchError::PortTaken { .. } => {
            anyhow::anyhow!("{e}; stop that process or {}", via.pass(subcommand, flag, "ADDR"))
        }
        other => other.into(),
    }
}

/// Taken ports, each with its holder, and how to free or move them in the user's command.
pub fn ports_taken_message(e: &PortsTaken, via: InvokedAs, subcommand: &str, what: &str) -> String {
    let mut how = vec![format!(
        "stop what holds them (a cluster from another shell: {})",
        via.command("cluster stop", std::path::Path::new(DEFAULT_STATE_DIR))
    )];
    if e.any(PortRole::Plan) {
        how.push(format!("for node and proxy ports {}", via.pass(subcommand, "--base-port", "PORT")));
    }
    if e.any(PortRole::ToxiproxyApi) {
        how.push(format!("for the Toxiproxy API {}", via.pass(subcommand, "--toxiproxy-listen", "ADDR")));
    }
    if e.any(PortRole::Fixed) {
        how.push(
            "Chronik's fixed ports (admin 10000+id, metrics 13000+id, unified API 6091+id) cannot be moved".to_string(),
        );
    }
    format!("{what}: {}.\nTo fix: {}", e.lines(), how.join(";\n  "))
}

/// The default `--state-dir`.
pub const DEFAULT_STATE_DIR: &str = "target/chronik-chaos";

/// Where `start` records the server it started, so other shells can find it.
/// Defaults to `target/chronik-chaos` under the current directory.
#[derive(Debug, Clone, clap::Args)]
pub struct StateArgs {
    /// Directory for the state file and server log.
    #[arg(long, env = "CHRONIK_CHAOS_STATE_DIR", default_value = DEFAULT_STATE_DIR, value_name = "DIR")]
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
        Command::Merge(args) => merge::run(args).await,
        Command::Baseline(args) => baseline::run(args).await,
    }
}

/// Resolves on the first SIGINT or SIGTERM.
pub async fn interrupted() {
    Interrupts::install().recv().await
}

/// SIGINT and SIGTERM, caught from the moment `install` returns (a signal that arrives before
/// anything awaits `recv` is kept, not lost, and never kills the process half-way).
pub struct Interrupts {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Interrupts {
    pub fn install() -> Interrupts {
        use tokio::signal::unix::{signal, SignalKind};
        Interrupts {
            term: signal(SignalKind::terminate()).expect("installing a SIGTERM handler"),
            int: signal(SignalKind::interrupt()).expect("installing a SIGINT handler"),
        }
    }

    /// Resolves at the next SIGINT or SIGTERM (or one already caught).
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::cluster::TakenPort;
    use crate::os::PortHolder;
    use expect_test::expect;

    const ALL: [InvokedAs; 4] =
        [InvokedAs::Binary, InvokedAs::XtaskChaos, InvokedAs::XtaskCluster, InvokedAs::XtaskToxiproxy];

    #[test]
    fn the_variable_names_the_users_command() {
        assert_eq!(InvokedAs::parse(None), InvokedAs::Binary);
        assert_eq!(InvokedAs::parse(Some("cargo xtask chaos")), InvokedAs::XtaskChaos);
        assert_eq!(InvokedAs::parse(Some(" cargo  xtask cluster start")), InvokedAs::XtaskCluster);
        assert_eq!(InvokedAs::parse(Some("cargo xtask toxiproxy")), InvokedAs::XtaskToxiproxy);
        assert_eq!(InvokedAs::parse(Some("cargo xtask bench")), InvokedAs::Binary);
    }

    #[test]
    fn hints_write_flags_as_the_users_command_takes_them() {
        let rows = [
            ("chaos", "--toxiproxy-listen", "ADDR"),
            ("chaos", "--scenario", "NAME"),
            ("chaos", "--base-port", "PORT"),
            ("cluster start", "--base-port", "PORT"),
            ("cluster start", "--toxiproxy-listen", "ADDR"),
            ("toxiproxy start", "--listen", "ADDR"),
            ("toxiproxy start", "--state-dir", "DIR"),
        ];
        let mut table = String::new();
        for via in ALL {
            table.push_str(&format!("{via:?}\n"));
            // The subcommand each invocation runs (the binary runs any).
            let runs = match via {
                InvokedAs::Binary => "",
                InvokedAs::XtaskChaos => "chaos",
                InvokedAs::XtaskCluster => "cluster start",
                InvokedAs::XtaskToxiproxy => "toxiproxy start",
            };
            for (sub, flag, value) in rows.iter().filter(|r| runs.is_empty() || r.0 == runs) {
                table.push_str(&format!("  {sub} {flag}: {}\n", via.pass(sub, flag, value)));
            }
            let (default, other) = (Path::new(DEFAULT_STATE_DIR), Path::new("/tmp/s"));
            let stop = [via.command("cluster stop", default), via.command("toxiproxy stop", other)];
            table.push_str(&format!("  stop: {}\n", stop.join(" | ")));
        }
        expect![[r#"
            Binary
              chaos --toxiproxy-listen: pass `--toxiproxy-listen ADDR`
              chaos --scenario: pass `--scenario NAME`
              chaos --base-port: pass `--base-port PORT`
              cluster start --base-port: pass `--base-port PORT`
              cluster start --toxiproxy-listen: pass `--toxiproxy-listen ADDR`
              toxiproxy start --listen: pass `--listen ADDR`
              toxiproxy start --state-dir: pass `--state-dir DIR`
              stop: `chronik-chaos cluster stop` | `chronik-chaos toxiproxy stop --state-dir /tmp/s`
            XtaskChaos
              chaos --toxiproxy-listen: pass `cargo xtask chaos -- --toxiproxy-listen ADDR`
              chaos --scenario: pass `cargo xtask chaos --scenario NAME`
              chaos --base-port: pass `cargo xtask chaos -- --base-port PORT`
              stop: `cargo xtask cluster stop` | `cargo xtask toxiproxy stop`
            XtaskCluster
              cluster start --base-port: pass `cargo xtask cluster start --base-port PORT`
              cluster start --toxiproxy-listen: `cargo xtask cluster start` has no --toxiproxy-listen; run the binary directly: `chronik-chaos cluster start --toxiproxy-listen ADDR`
              stop: `cargo xtask cluster stop` | `cargo xtask toxiproxy stop`
            XtaskToxiproxy
              toxiproxy start --listen: pass `cargo xtask toxiproxy start --listen ADDR`
              toxiproxy start --state-dir: `cargo xtask toxiproxy start` has no --state-dir; run the binary directly: `chronik-chaos toxiproxy start --state-dir DIR`
              stop: `cargo xtask cluster stop` | `cargo xtask toxiproxy stop`
        "#]].assert_eq(&table);
    }

    #[test]
    fn taken_ports_say_who_holds_them_and_what_moves_them() {
        let taken = |port, what: &str, role| TakenPort { port, what: what.into(), role, holder: PortHolder::Unknown };
        let e = PortsTaken {
            taken: vec![
                taken(20101, "proxy kafka-n1", PortRole::Plan),
                taken(10002, "node 2 admin API (fixed by Chronik)", PortRole::Fixed),
                taken(8474, "the Toxiproxy API", PortRole::ToxiproxyApi),
            ],
        };
        let both = format!(
            "{}\n\n{}",
            ports_taken_message(&e, InvokedAs::XtaskChaos, "chaos", "the run cannot start"),
            ports_taken_message(&e, InvokedAs::XtaskCluster, "cluster start", "cannot start the cluster")
        );
        expect![[r#"
            the run cannot start: port 20101 (proxy kafka-n1) is taken, held by a process we cannot see (another user?);
              port 10002 (node 2 admin API (fixed by Chronik)) is taken, held by a process we cannot see (another user?);
              port 8474 (the Toxiproxy API) is taken, held by a process we cannot see (another user?).
            To fix: stop what holds them (a cluster from another shell: `cargo xtask cluster stop`);
              for node and proxy ports pass `cargo xtask chaos -- --base-port PORT`;
              for the Toxiproxy API pass `cargo xtask chaos -- --toxiproxy-listen ADDR`;
              Chronik's fixed ports (admin 10000+id, metrics 13000+id, unified API 6091+id) cannot be moved

            cannot start the cluster: port 20101 (proxy kafka-n1) is taken, held by a process we cannot see (another user?);
              port 10002 (node 2 admin API (fixed by Chronik)) is taken, held by a process we cannot see (another user?);
              port 8474 (the Toxiproxy API) is taken, held by a process we cannot see (another user?).
            To fix: stop what holds them (a cluster from another shell: `cargo xtask cluster stop`);
              for node and proxy ports pass `cargo xtask cluster start --base-port PORT`;
              for the Toxiproxy API `cargo xtask cluster start` has no --toxiproxy-listen; run the binary directly: `chronik-chaos cluster start --toxiproxy-listen ADDR`;
              Chronik's fixed ports (admin 10000+id, metrics 13000+id, unified API 6091+id) cannot be moved
        "#]]
        .assert_eq(&(both + "\n"));
    }
}
