//! `chronik-chaos toxiproxy serve|start|status|reset|stop`: the replacement for the old setup script.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;

use super::{InvokedAs, StateArgs, EXIT_HARNESS, EXIT_OK};
use crate::cluster::state::ClusterStateFile;
use crate::process::Termination;
use crate::toxiproxy::launcher::{self, LaunchConfig, Recorded, ServerKind, StateDir};
use crate::toxiproxy::{server, Client};

#[derive(Debug, Subcommand)]
pub enum ToxiproxyCommand {
    /// Run the embedded Toxiproxy-compatible server in the foreground until SIGINT/SIGTERM.
    Serve {
        /// API address to listen on.
        #[arg(long, default_value = launcher::DEFAULT_LISTEN)]
        listen: SocketAddr,
    },
    /// Start a server in the background and record it: the real toxiproxy-server if found
    /// (--toxiproxy-bin, then $TOXIPROXY_BIN, then PATH), else the embedded one.
    Start {
        /// API address to listen on.
        #[arg(long, default_value = launcher::DEFAULT_LISTEN)]
        listen: SocketAddr,
        /// A real toxiproxy-server binary to run instead of looking it up.
        #[arg(long, value_name = "PATH")]
        toxiproxy_bin: Option<PathBuf>,
        /// Seconds to wait for the API to answer.
        #[arg(long, default_value_t = 15)]
        ready_timeout: u64,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Show the recorded server, its proxies, their toxics and byte counters.
    Status {
        /// Query this API address instead of the recorded server.
        #[arg(long)]
        api: Option<String>,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Remove every toxic and re-enable every proxy (POST /reset).
    Reset {
        /// Reset this API address instead of the recorded server.
        #[arg(long)]
        api: Option<String>,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Stop the recorded server (SIGTERM, 5 s grace, then SIGKILL) and clear its state.
    Stop {
        #[command(flatten)]
        state: StateArgs,
    },
}

pub async fn run(cmd: ToxiproxyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ToxiproxyCommand::Serve { listen } => {
            let ready = |addr: SocketAddr| println!("{} embedded toxiproxy API listening on http://{addr}", now());
            serve(listen, ready).await
        }
        ToxiproxyCommand::Start { listen, toxiproxy_bin, ready_timeout, state } => {
            start(listen, toxiproxy_bin, Duration::from_secs(ready_timeout), StateDir::new(state.state_dir)).await
        }
        ToxiproxyCommand::Status { api, state } => status(api, StateDir::new(state.state_dir)).await,
        ToxiproxyCommand::Reset { api, state } => reset(api, StateDir::new(state.state_dir)).await,
        ToxiproxyCommand::Stop { state } => stop(StateDir::new(state.state_dir)),
    }
}

fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

async fn serve(listen: SocketAddr, ready: impl FnOnce(SocketAddr)) -> anyhow::Result<ExitCode> {
    let srv = server::EmbeddedServer::start(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}; is another toxiproxy running there?"))?;
    ready(srv.addr());
    super::interrupted().await;
    println!("{} stopping", now());
    srv.shutdown().await;
    Ok(ExitCode::from(EXIT_OK))
}

async fn start(
    listen: SocketAddr,
    toxiproxy_bin: Option<PathBuf>,
    ready_timeout: Duration,
    state_dir: StateDir,
) -> anyhow::Result<ExitCode> {
    match state_dir.inspect()? {
        Recorded::Running(s) if s.api == listen => {
            println!("toxiproxy already running: {} (pid {}) at http://{}", s.server, s.pid, s.api);
            return Ok(ExitCode::from(EXIT_OK));
        }
        Recorded::Running(s) => {
            let via = InvokedAs::from_env();
            // Through xtask the state directory is fixed (target/chronik-chaos): only `stop` helps.
            let or_elsewhere = match via {
                InvokedAs::Binary => " or pass another --state-dir",
                _ => "",
            };
            anyhow::bail!(
                "a toxiproxy started from {} already runs at http://{} (pid {}); stop it first with {}{or_elsewhere}",
                state_dir.dir().display(),
                s.api,
                s.pid,
                via.command("toxiproxy stop", state_dir.dir())
            )
        }
        Recorded::Stale(s) => {
            println!("note: cleaned a stale state file: pid {} (started {}) is no longer running", s.pid, s.started_at);
            state_dir.clear()?;
        }
        Recorded::Nothing => {}
    }
    if let Some(c) = cluster_toxiproxy(state_dir.dir()).filter(|c| c.api.port() == listen.port()) {
        eprintln!(
            "error: cannot start toxiproxy on {listen}: the toxiproxy of the cluster started from {} runs there \
             (pid {}, {}); {} stops it with the cluster, or {}",
            state_dir.dir().display(),
            c.pid,
            c.server,
            InvokedAs::from_env().command("cluster stop", state_dir.dir()),
            InvokedAs::from_env().pass("toxiproxy start", "--listen", "ADDR"),
        );
        return Ok(ExitCode::from(EXIT_HARNESS));
    }
    let choice = launcher::locate(toxiproxy_bin.as_deref())?;
    let cfg = LaunchConfig {
        listen,
        choice,
        embedded_exe: std::env::current_exe().context("cannot find the chronik-chaos executable")?,
        log: state_dir.log_file(),
        ready_timeout,
    };
    std::fs::create_dir_all(state_dir.dir())
        .with_context(|| format!("cannot create state directory {}", state_dir.dir().display()))?;
    let launched = match launcher::launch(&cfg).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {:#}", super::launch_error(e, InvokedAs::from_env(), "toxiproxy start", "--listen"));
            return Ok(ExitCode::from(EXIT_HARNESS));
        }
    };
    let state = launched.detach();
    if let Err(e) = state_dir.save(&state) {
        // Without a state file nobody could stop it later: stop it now.
        crate::process::terminate_unowned(state.pid, Duration::from_secs(5));
        return Err(e);
    }
    println!("toxiproxy started: {}", state.server);
    println!("  API   http://{}", state.api);
    println!("  pid   {}", state.pid);
    println!("  log   {}", state.log.display());
    println!("  state {}", state_dir.state_file().display());
    Ok(ExitCode::from(EXIT_OK))
}

/// The API to talk to: `--api`, else the recorded running server.
fn target(
    api: Option<String>,
    state_dir: &StateDir,
) -> anyhow::Result<Option<(Client, Option<launcher::ServerState>)>> {
    if let Some(api) = api {
        return Ok(Some((Client::new(&api), None)));
    }
    match state_dir.inspect()? {
        Recorded::Running(s) => Ok(Some((Client::new(&s.api.to_string()), Some(s)))),
        Recorded::Stale(s) => {
            println!(
                "toxiproxy: not running (stale state: pid {} started {} is gone; state file cleaned)",
                s.pid, s.started_at
            );
            state_dir.clear()?;
            Ok(None)
        }
        Recorded::Nothing => match cluster_toxiproxy(state_dir.dir()) {
            Some(c) => {
                println!(
                    "toxiproxy: the cluster's server, started by `cluster start` (state in {}); {} stops it with the cluster",
                    ClusterStateFile::in_dir(state_dir.dir()).path().display(),
                    InvokedAs::from_env().command("cluster stop", state_dir.dir())
                );
                Ok(Some((Client::new(&c.api.to_string()), Some(c))))
            }
            None => {
                println!("toxiproxy: not running (no state in {}); `start` starts one", state_dir.dir().display());
                Ok(None)
            }
        },
    }
}

/// The Toxiproxy server a cluster started from `state_dir` runs (`cluster start` records it
/// in the cluster's state, not in toxiproxy.json), while it is still that process.
fn cluster_toxiproxy(state_dir: &Path) -> Option<launcher::ServerState> {
    let state = ClusterStateFile::in_dir(state_dir).load().ok().flatten()?;
    state.toxiproxy.filter(|t| crate::os::pid_alive(t.pid) && crate::os::start_ticks(t.pid) == Some(t.start_ticks))
}

async fn status(api: Option<String>, state_dir: StateDir) -> anyhow::Result<ExitCode> {
    let Some((client, state)) = target(api, &state_dir)? else { return Ok(ExitCode::from(EXIT_OK)) };
    let version = client.version().await?;
    match &state {
        Some(s) => {
            println!("toxiproxy: running — {} (pid {}, since {})", s.server, s.pid, s.started_at);
            println!("  API {}   log {}", client.base_url(), s.log.display());
        }
        None => println!("toxiproxy at {}: version {version}", client.base_url()),
    }
    let real = matches!(state.as_ref().map(|s| &s.server), Some(ServerKind::Real { .. }))
        || !version.starts_with("chronik-chaos-embedded");
    let proxies = client.proxies().await?;
    let bytes = client.proxy_bytes().await.ok();
    if proxies.is_empty() {
        println!("no proxies");
    } else {
        println!("proxies ({}):", proxies.len());
    }
    for p in proxies.values() {
        let state = if p.enabled { "enabled" } else { "DISABLED" };
        println!("  {:<24} {} -> {}  {state}", p.name, p.listen, p.upstream);
        match bytes.as_ref().and_then(|b| b.get(&p.name)) {
            Some(b) => {
                let conns = match (b.connections_total, b.connections_open) {
                    (Some(t), Some(o)) => format!(", connections {t} ({o} open)"),
                    _ => String::new(),
                };
                println!(
                    "    bytes client->upstream {} / upstream->client {}{conns}",
                    b.upstream_sent, b.downstream_sent
                );
            }
            None if bytes.is_some() => println!("    bytes: none counted yet"),
            None => {}
        }
        for t in &p.toxics {
            println!("    toxic {t}");
        }
    }
    if bytes.is_none() {
        println!("(no /metrics: start the real server with -proxy-metrics for byte counters)");
    } else if real {
        println!("(real server: byte counters move only when a connection closes)");
    }
    Ok(ExitCode::from(EXIT_OK))
}

async fn reset(api: Option<String>, state_dir: StateDir) -> anyhow::Result<ExitCode> {
    let Some((client, _)) = target(api, &state_dir)? else { return Ok(ExitCode::from(EXIT_HARNESS)) };
    let before = client.proxies().await?;
    let toxics: usize = before.values().map(|p| p.toxics.len()).sum();
    let disabled = before.values().filter(|p| !p.enabled).count();
    client.reset().await?;
    let after = client.proxies().await?;
    let left: usize = after.values().map(|p| p.toxics.len()).sum();
    anyhow::ensure!(
        left == 0 && after.values().all(|p| p.enabled),
        "reset answered OK but {left} toxics remain or a proxy is still disabled; read state: {after:?}"
    );
    println!("reset: removed {toxics} toxics, re-enabled {disabled} proxies ({} proxies in all)", after.len());
    Ok(ExitCode::from(EXIT_OK))
}

fn stop(state_dir: StateDir) -> anyhow::Result<ExitCode> {
    match state_dir.inspect()? {
        Recorded::Nothing => match cluster_toxiproxy(state_dir.dir()) {
            Some(c) => println!(
                "toxiproxy: `toxiproxy start` started none here; the toxiproxy at http://{} (pid {}) belongs to the \
                 cluster started from {}: {} stops it with the cluster",
                c.api,
                c.pid,
                state_dir.dir().display(),
                InvokedAs::from_env().command("cluster stop", state_dir.dir())
            ),
            None => println!("toxiproxy: nothing to stop (no state in {})", state_dir.dir().display()),
        },
        Recorded::Stale(s) => {
            println!("toxiproxy: pid {} was already gone; cleaned its stale state file", s.pid);
            state_dir.clear()?;
        }
        Recorded::Running(s) => {
            let how = crate::process::terminate_unowned(s.pid, Duration::from_secs(5));
            anyhow::ensure!(
                !crate::os::pid_alive(s.pid),
                "pid {} is still alive after SIGKILL; state kept in {}",
                s.pid,
                state_dir.state_file().display()
            );
            state_dir.clear()?;
            match how {
                Termination::Killed { grace } => {
                    println!("toxiproxy stopped: pid {} ignored SIGTERM for {grace:?} and was killed", s.pid)
                }
                Termination::Graceful { after, .. } => {
                    println!("toxiproxy stopped: pid {} exited {} ms after SIGTERM", s.pid, after.as_millis())
                }
                Termination::AlreadyExited(_) => println!("toxiproxy stopped: pid {} had already exited", s.pid),
            }
        }
    }
    Ok(ExitCode::from(EXIT_OK))
}
