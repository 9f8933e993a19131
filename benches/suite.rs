//! Suite wall-time benchmark (figures, not a test): the same suite with the same seed run one
//! scenario at a time and with `--jobs 2/3/4` under `--network netns`, printing each run's wall
//! time, the sum of its scenarios' own windows (workload start to stop: warmup, fault, recovery),
//! the overhead ratio (wall time ÷ that sum), the speed-up over the sequential run, and whether
//! its verdict table is the sequential one. Needs root (network namespaces). Runs the stand-in
//! node (not Chronik) unless `CHRONIK_BIN` is set. Run with `cargo xtask bench suite`.
//!
//! Arguments (after `--`): `--jobs 1,2,3,4` (the counts to run; 1 is the reference and always
//! runs first), `--seed N` (default 7), `--scenario NAME` (repeatable; default: the whole default
//! selection), `--toxiproxy-bin PATH` (default: `TOXIPROXY_BIN`, else the embedded server).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use chronik_chaos::results::Results;

const CHAOS: &str = env!("CARGO_BIN_EXE_chronik-chaos");
const STAND_IN: &str = env!("CARGO_BIN_EXE_chronik-stand-in-node");

struct Args {
    jobs: Vec<u16>,
    seed: u64,
    scenarios: Vec<String>,
    toxiproxy_bin: Option<PathBuf>,
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        jobs: vec![1, 2, 3, 4],
        seed: 7,
        scenarios: Vec::new(),
        toxiproxy_bin: std::env::var_os("TOXIPROXY_BIN").filter(|v| !v.is_empty()).map(PathBuf::from),
    };
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            // `cargo bench` adds this to every benchmark's arguments.
            "--bench" => {}
            "--jobs" => {
                let v = value()?;
                a.jobs = v
                    .split(',')
                    .map(|n| n.trim().parse::<u16>().ok().filter(|n| (1..=16).contains(n)))
                    .collect::<Option<Vec<_>>>()
                    .ok_or(format!("--jobs {v}: give counts from 1 to 16, comma-separated (e.g. 1,2,3,4)"))?;
            }
            "--seed" => a.seed = value()?.parse().map_err(|_| "--seed needs a number".to_string())?,
            "--scenario" => a.scenarios.push(value()?),
            "--toxiproxy-bin" => a.toxiproxy_bin = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument {other}: use --jobs, --seed, --scenario, --toxiproxy-bin")),
        }
    }
    a.jobs.retain(|&n| n != 1);
    a.jobs.insert(0, 1);
    Ok(a)
}

/// One run's figures.
struct Run {
    jobs: u16,
    wall: Duration,
    windows: Duration,
    table: Vec<(String, String)>,
}

/// A scenario's own window: from its workload's start to its stop (none when it never ran).
fn window(s: &chronik_chaos::results::ScenarioResult) -> Duration {
    let at = |what: &str| s.timeline.iter().find(|e| e.what.starts_with(what)).map(|e| e.t_ms);
    match (at("workload started"), at("workload stopped")) {
        (Some(a), Some(b)) if b > a => Duration::from_secs_f64((b - a) / 1e3),
        _ => Duration::ZERO,
    }
}

fn run_once(args: &Args, chronik: &Path, jobs: u16, out: &Path) -> Result<Run, String> {
    let mut cmd = Command::new(CHAOS);
    cmd.args(["chaos", "--network", "netns", "--comment", "never", "--fail-on", "never"])
        .arg("--chronik-bin")
        .arg(chronik)
        .args(["--seed", &args.seed.to_string(), "--jobs", &jobs.to_string()])
        .arg("--out")
        .arg(out)
        .env_remove("CHRONIK_BIN")
        .env_remove("TOXIPROXY_BIN");
    for s in &args.scenarios {
        cmd.args(["--scenario", s]);
    }
    if let Some(t) = &args.toxiproxy_bin {
        cmd.arg("--toxiproxy-bin").arg(t);
    }
    let log = out.with_extension("log");
    let file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    cmd.stdout(file.try_clone().map_err(|e| e.to_string())?).stderr(file);
    let started = Instant::now();
    let status = cmd.status().map_err(|e| format!("running {CHAOS}: {e}"))?;
    let wall = started.elapsed();
    if !status.success() {
        let tail = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(15).collect();
        return Err(format!(
            "--jobs {jobs} exited {status}; last lines of {}:\n{}",
            log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    let results = Results::read(&out.join("results.json")).map_err(|e| e.to_string())?;
    Ok(Run {
        jobs,
        wall,
        windows: results.scenarios.iter().map(window).sum(),
        table: results.scenarios.iter().map(|s| (s.name.clone(), s.verdict.to_string())).collect(),
    })
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench suite: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = chronik_chaos::netns::check_privileges() {
        eprintln!("bench suite: it compares runs under --network netns, which cannot run here: {e}");
        return ExitCode::from(2);
    }
    let (chronik, what) = match std::env::var_os("CHRONIK_BIN").filter(|v| !v.is_empty()) {
        Some(p) => (PathBuf::from(p), "Chronik (CHRONIK_BIN)".to_string()),
        None => (PathBuf::from(STAND_IN), "the stand-in node (not Chronik; set CHRONIK_BIN for Chronik)".to_string()),
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    println!(
        "suite: {} with seed {}, on {what}; --network netns; --jobs {}",
        if args.scenarios.is_empty() { "the default selection".to_string() } else { args.scenarios.join(", ") },
        args.seed,
        args.jobs.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
    );
    println!("outputs and logs in {} (removed at the end)", dir.path().display());
    let mut runs: Vec<Run> = Vec::new();
    for &jobs in &args.jobs {
        println!("running --jobs {jobs} …");
        match run_once(&args, &chronik, jobs, &dir.path().join(format!("jobs-{jobs}"))) {
            Ok(r) => {
                println!("  --jobs {jobs}: {:.1} s, {} scenario(s)", r.wall.as_secs_f64(), r.table.len());
                runs.push(r)
            }
            Err(e) => {
                eprintln!("bench suite: {e}");
                return ExitCode::from(2);
            }
        }
    }
    println!();
    println!(
        "{:>4}  {:>9}  {:>14}  {:>8}  {:>8}  verdict table",
        "jobs", "wall", "own windows", "overhead", "speed-up"
    );
    let reference = &runs[0];
    for r in &runs {
        let same = if r.table == reference.table {
            "as sequential".to_string()
        } else {
            let differ: Vec<String> = r
                .table
                .iter()
                .zip(&reference.table)
                .filter(|(a, b)| a != b)
                .map(|((n, v), (_, v0))| format!("{n}: {v} (sequential {v0})"))
                .collect();
            format!("DIFFERS: {}", if differ.is_empty() { "other scenarios".into() } else { differ.join(", ") })
        };
        println!(
            "{:>4}  {:>8.1}s  {:>13.1}s  {:>8.2}  {:>7.2}×  {same}",
            r.jobs,
            r.wall.as_secs_f64(),
            r.windows.as_secs_f64(),
            r.wall.as_secs_f64() / r.windows.as_secs_f64().max(1e-9),
            reference.wall.as_secs_f64() / r.wall.as_secs_f64().max(1e-9),
        );
    }
    println!();
    println!(
        "overhead: wall time ÷ the sum of the scenarios' own windows (workload start to stop), {} scenario(s)",
        reference.table.len()
    );
    ExitCode::SUCCESS
}
