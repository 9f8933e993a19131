//! `chaos --jobs N`: scenarios side by side, on N lanes. Each lane is a thread with its own
//! async runtime, network fabric (bridge and subnet: its nodes' fixed ports live in their own
//! namespaces) and Toxiproxy server (API port `--toxiproxy-listen` + lane), and runs one
//! scenario at a time on a fresh cluster. Scenarios keep the seeds of a sequential run and
//! their results keep its order, so results.json and the reports are the ones a sequential run
//! of the same scenarios writes.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;

use crate::cluster::net::Network;
use crate::results::ScenarioResult;
use crate::runner::{self, SuiteConfig, SuiteEnd};
use crate::scenario::Scenario;
use crate::toxiproxy::launcher::{self, LaunchConfig};

/// One scenario to run, with its place in the run (results are ordered by it) and its seed.
#[derive(Clone, Debug)]
pub struct Job {
    pub index: usize,
    pub seed: u64,
    pub scenario: Scenario,
}

/// What every lane shares: the suite settings, how lane 0 starts Toxiproxy (lane k listens on
/// port + k and logs to `toxiproxy-<k+1>.log`), and whether each lane makes its own fabric and
/// puts it in the settings' `network` (`--network netns`).
#[derive(Clone, Debug)]
pub struct LaneSpec {
    pub cfg: SuiteConfig,
    pub launch: LaunchConfig,
    pub netns: bool,
}

/// What a lane tells the run, in the order it happens.
#[derive(Debug)]
enum Report {
    /// The lane's fabric and Toxiproxy are up.
    Ready {
        lane: usize,
        toxiproxy: String,
    },
    Result {
        index: usize,
        result: Box<ScenarioResult>,
    },
    /// The lane stopped its running scenario (its cluster torn down) because the run was
    /// interrupted; that scenario has no result.
    Interrupted {
        during: String,
    },
    /// The lane could not set itself up; it ran nothing.
    Failed {
        lane: usize,
        error: String,
    },
}

/// How the lanes ended, and the Toxiproxy the first lane that came up runs.
#[derive(Debug)]
pub struct Ended {
    pub end: SuiteEnd,
    pub toxiproxy: Option<String>,
}

/// Lane `lane`'s Toxiproxy: lane 0 as configured, the others on the next API ports.
pub fn lane_launch(base: &LaunchConfig, lane: usize) -> anyhow::Result<LaunchConfig> {
    if lane == 0 {
        return Ok(base.clone());
    }
    let port = base
        .listen
        .port()
        .checked_add(u16::try_from(lane).unwrap_or(u16::MAX))
        .context("--toxiproxy-listen: no port left above it for every job's Toxiproxy API")?;
    let log = base.log.with_file_name(format!("toxiproxy-{}.log", lane + 1));
    Ok(LaunchConfig { listen: SocketAddr::new(base.listen.ip(), port), log, ..base.clone() })
}

/// Runs `jobs` on `lanes` lanes (at most one per job). `on_result` gets each result in run
/// order, as soon as every earlier one is there too, with the Toxiproxy the first lane that came
/// up runs. `interrupt` resolving (Ctrl-C) stops
/// every lane's scenario, tears its cluster, network and Toxiproxy down, and ends the run as
/// interrupted. A lane that cannot set itself up ends the run with that error, after the other
/// lanes have stopped.
pub async fn run(
    spec: LaneSpec,
    jobs: Vec<Job>,
    lanes: usize,
    progress: fn(&str),
    interrupts: &tokio::sync::Mutex<super::Interrupts>,
    on_result: &mut dyn FnMut(ScenarioResult, &str) -> anyhow::Result<()>,
) -> anyhow::Result<Ended> {
    let lanes = lanes.clamp(1, jobs.len().max(1));
    let total = jobs.len();
    let queue = Arc::new(Mutex::new(jobs.into_iter().collect::<VecDeque<Job>>()));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Report>();
    let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
    let mut threads = Vec::new();
    for lane in 0..lanes {
        let launch = lane_launch(&spec.launch, lane)?;
        let (cfg, queue, tx, cancel) = (spec.cfg.clone(), queue.clone(), tx.clone(), cancel_rx.clone());
        let netns = spec.netns;
        let thread = std::thread::Builder::new()
            .name(format!("job-{}", lane + 1))
            .spawn(move || lane_main(lane, total, cfg, netns, launch, queue, tx, cancel, progress))
            .context("starting a job's thread")?;
        threads.push(thread);
    }
    drop(tx);

    let mut pending: BTreeMap<usize, ScenarioResult> = BTreeMap::new();
    let mut next = 0usize;
    let mut delivered = 0usize;
    let mut end = SuiteEnd::Finished;
    let mut failure: Option<anyhow::Error> = None;
    let mut toxiproxy = None;
    let mut cancelled = false;
    loop {
        let report = tokio::select! {
            r = rx.recv() => r,
            _ = async { interrupts.lock().await.recv().await }, if !cancelled => {
                cancelled = true;
                let _ = cancel_tx.send(true);
                progress("interrupted: stopping every job's scenario, cluster, network and Toxiproxy");
                continue;
            }
        };
        let Some(report) = report else { break };
        match report {
            Report::Ready { lane, toxiproxy: kind } => {
                progress(&format!("job {}: toxiproxy: {kind}", lane + 1));
                toxiproxy.get_or_insert(kind);
            }
            Report::Result { index, result } => {
                pending.insert(index, *result);
                while let Some(r) = pending.remove(&next) {
                    on_result(r, toxiproxy.as_deref().unwrap_or_default())?;
                    next += 1;
                    delivered += 1;
                }
            }
            Report::Interrupted { during } => {
                if matches!(end, SuiteEnd::Finished) {
                    end = SuiteEnd::Interrupted { during };
                }
            }
            Report::Failed { lane, error } => {
                if !cancelled {
                    cancelled = true;
                    let _ = cancel_tx.send(true);
                }
                failure.get_or_insert(anyhow::anyhow!("job {}: {error}", lane + 1));
            }
        }
    }
    for t in threads {
        if t.join().is_err() {
            failure.get_or_insert(anyhow::anyhow!("a job's thread panicked; its cluster and network were dropped"));
        }
    }
    // Results after a gap (a scenario that was interrupted) still count, in run order.
    for r in std::mem::take(&mut pending).into_values() {
        on_result(r, toxiproxy.as_deref().unwrap_or_default())?;
        delivered += 1;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if cancelled && matches!(end, SuiteEnd::Finished) && delivered < total {
        end = SuiteEnd::Interrupted { during: "the run (between scenarios)".into() };
    }
    Ok(Ended { end, toxiproxy })
}

/// One lane: its runtime, fabric and Toxiproxy, then scenarios from the queue until it is
/// empty or the run is cancelled. Everything it started is dropped (stopped, removed) before it
/// returns.
#[allow(clippy::too_many_arguments)]
fn lane_main(
    lane: usize,
    total: usize,
    cfg: SuiteConfig,
    netns: bool,
    launch: LaunchConfig,
    queue: Arc<Mutex<VecDeque<Job>>>,
    tx: tokio::sync::mpsc::UnboundedSender<Report>,
    cancel: tokio::sync::watch::Receiver<bool>,
    progress: fn(&str),
) {
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = tx.send(Report::Failed { lane, error: format!("starting its async runtime: {e}") });
            return;
        }
    };
    runtime.block_on(async move {
        let cancelled = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|c| *c).await;
        };
        let name = format!("job {}", lane + 1);
        let network = match netns {
            false => Network::Proxy,
            true => match crate::netns::Fabric::create() {
                Ok(fabric) => {
                    progress(&format!(
                        "{name}: network: netns, run {} on {} (bridge {})",
                        fabric.run(),
                        fabric.subnet(),
                        fabric.bridge()
                    ));
                    Network::Netns(Arc::new(fabric))
                }
                Err(e) => {
                    let _ = tx.send(Report::Failed { lane, error: format!("creating its network: {e}") });
                    return;
                }
            },
        };
        let launched = tokio::select! {
            l = launcher::launch(&launch) => match l {
                Ok(l) => l,
                Err(e) => {
                    let _ = tx.send(Report::Failed { lane, error: format!("starting Toxiproxy on {}: {e}", launch.listen) });
                    return;
                }
            },
            _ = cancelled(cancel.clone()) => return,
        };
        let _ = tx.send(Report::Ready { lane, toxiproxy: launched.kind.to_string() });
        let client = launched.client();
        let mut cfg = SuiteConfig { network, ..cfg };
        loop {
            if *cancel.borrow() {
                break;
            }
            let Some(job) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front() else { break };
            cfg.seed = job.seed;
            let s = &job.scenario;
            progress(&format!("{name}: scenario {}/{total}: {} — {}", job.index + 1, s.name, s.description));
            let started = Instant::now();
            let result = tokio::select! {
                r = runner::run_scenario(&cfg, &client, s, 0, &progress) => r,
                _ = cancelled(cancel.clone()) => {
                    let _ = tx.send(Report::Interrupted { during: s.name.clone() });
                    break;
                }
            };
            for line in &result.explanation {
                progress(&format!("[{}]   {line}", s.name));
            }
            progress(&format!("{name}: {} done in {:.0} s", s.name, started.elapsed().as_secs_f64()));
            let _ = tx.send(Report::Result { index: job.index, result: Box::new(result) });
        }
        drop(launched);
        drop(cfg);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Duration;

    #[test]
    fn each_lane_has_its_own_toxiproxy_port_and_log() {
        let base = LaunchConfig {
            listen: "127.0.0.1:8474".parse().unwrap(),
            choice: launcher::ServerChoice::Embedded,
            embedded_exe: PathBuf::from("/x/chronik-chaos"),
            log: PathBuf::from("/out/toxiproxy.log"),
            ready_timeout: Duration::from_secs(15),
        };
        let l0 = lane_launch(&base, 0).unwrap();
        let l2 = lane_launch(&base, 2).unwrap();
        assert_eq!(l0.listen, base.listen);
        assert_eq!(l0.log, base.log);
        assert_eq!(l2.listen, "127.0.0.1:8476".parse::<SocketAddr>().unwrap());
        assert_eq!(l2.log, PathBuf::from("/out/toxiproxy-3.log"));
        let top = LaunchConfig { listen: "127.0.0.1:65535".parse().unwrap(), ..base };
        let e = lane_launch(&top, 1).unwrap_err().to_string();
        assert!(e.contains("--toxiproxy-listen"), "{e}");
    }
}
