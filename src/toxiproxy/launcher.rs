//! Finding and starting a Toxiproxy server — the real `toxiproxy-server` when one is installed,
//! else our embedded one — owning its lifetime, and the state file that lets `stop` work from
//! another shell.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Client;
use crate::os::{self, PortHolder};
use crate::process::{self, OwnedProcess, Termination};

/// The default API address, as the real server's.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8474";
/// The real server's executable name, looked up on `PATH`.
pub const REAL_SERVER_NAME: &str = "toxiproxy-server";

/// Which server to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerChoice {
    /// A real `toxiproxy-server` binary, and where we learned of it.
    Real { bin: PathBuf, found_by: &'static str },
    /// Our embedded server, run as `<exe> toxiproxy serve`.
    Embedded,
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(
        "{found_by} names {path}, which is not an executable file; fix the path or unset it to use the embedded server"
    )]
    BadBinary { path: PathBuf, found_by: &'static str },
    /// The command line adds how to choose another address (the flag differs per command).
    #[error("cannot start toxiproxy on {addr}: the port is taken, {holder}")]
    PortTaken { addr: SocketAddr, holder: PortHolder },
    #[error(transparent)]
    Spawn(#[from] process::ProcessError),
    #[error("toxiproxy ({what}) exited during start-up ({status}); last lines of {log}:\n{tail}")]
    ExitedEarly { what: String, status: String, log: PathBuf, tail: String },
    #[error(
        "toxiproxy ({what}) did not answer GET /version on {addr} within {timeout:?}; last lines of {log}:\n{tail}"
    )]
    NotReady { what: String, addr: SocketAddr, timeout: Duration, log: PathBuf, tail: String },
    #[error("{addr} answers, but the listener belongs to {holder}, not to the toxiproxy we started (pid {ours}); refusing to use a foreign server")]
    Foreign { addr: SocketAddr, holder: PortHolder, ours: u32 },
}

/// Picks the server: `explicit` (a `--toxiproxy-bin` flag), then `$TOXIPROXY_BIN`, then
/// `toxiproxy-server` on `PATH`, else the embedded server.
pub fn locate(explicit: Option<&Path>) -> Result<ServerChoice, LaunchError> {
    let env = std::env::var_os("TOXIPROXY_BIN").filter(|v| !v.is_empty()).map(PathBuf::from);
    locate_in(explicit, env.as_deref(), std::env::var_os("PATH").as_deref())
}

fn locate_in(
    explicit: Option<&Path>,
    env: Option<&Path>,
    path_var: Option<&std::ffi::OsStr>,
) -> Result<ServerChoice, LaunchError> {
    for (candidate, found_by) in [(explicit, "--toxiproxy-bin"), (env, "TOXIPROXY_BIN")] {
        if let Some(bin) = candidate {
            return if is_executable(bin) {
                Ok(ServerChoice::Real { bin: bin.to_path_buf(), found_by })
            } else {
                Err(LaunchError::BadBinary { path: bin.to_path_buf(), found_by })
            };
        }
    }
    if let Some(path_var) = path_var {
        for dir in std::env::split_paths(path_var) {
            let bin = dir.join(REAL_SERVER_NAME);
            if is_executable(&bin) {
                return Ok(ServerChoice::Real { bin, found_by: "PATH" });
            }
        }
    }
    Ok(ServerChoice::Embedded)
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// Everything needed to start a server.
#[derive(Clone, Debug)]
pub struct LaunchConfig {
    pub listen: SocketAddr,
    pub choice: ServerChoice,
    /// The `chronik-chaos` executable that serves the embedded server.
    pub embedded_exe: PathBuf,
    pub log: PathBuf,
    pub ready_timeout: Duration,
}

/// What kind of server runs, for humans and the state file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ServerKind {
    Real { bin: PathBuf, version: String },
    Embedded { version: String },
}

impl std::fmt::Display for ServerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerKind::Real { bin, version } => write!(f, "real toxiproxy-server {version} ({})", bin.display()),
            ServerKind::Embedded { version } => write!(f, "embedded server ({version})"),
        }
    }
}

/// A server we started and own: dropping it stops it.
pub struct Launched {
    process: OwnedProcess,
    pub api: SocketAddr,
    pub kind: ServerKind,
}

impl Launched {
    pub fn client(&self) -> Client {
        Client::new(&self.api.to_string())
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    /// Stops the server (SIGTERM, grace, SIGKILL).
    pub fn stop(mut self) -> Termination {
        self.process.terminate()
    }

    /// Leaves the server running and returns the state that lets another process stop it.
    pub fn detach(self) -> ServerState {
        let log = self.process.log_path().to_path_buf();
        let pid = self.process.detach();
        ServerState {
            pid,
            start_ticks: os::start_ticks(pid).unwrap_or(0),
            api: self.api,
            server: self.kind,
            log,
            started_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        }
    }
}

/// Starts the chosen server and waits until it answers `GET /version`.
pub async fn launch(cfg: &LaunchConfig) -> Result<Launched, LaunchError> {
    if let Some(holder) = os::port_holder(cfg.listen) {
        return Err(LaunchError::PortTaken { addr: cfg.listen, holder });
    }
    let (program, args, what): (PathBuf, Vec<OsString>, String) = match &cfg.choice {
        ServerChoice::Real { bin, .. } => (
            bin.clone(),
            vec![
                "-host".into(),
                cfg.listen.ip().to_string().into(),
                "-port".into(),
                cfg.listen.port().to_string().into(),
                // Byte counters per proxy; they move when a connection closes.
                "-proxy-metrics".into(),
            ],
            format!("real, {}", bin.display()),
        ),
        ServerChoice::Embedded => (
            cfg.embedded_exe.clone(),
            vec!["toxiproxy".into(), "serve".into(), "--listen".into(), cfg.listen.to_string().into()],
            "embedded".to_string(),
        ),
    };
    let mut process =
        OwnedProcess::spawn("toxiproxy", &program, &args, &[], &cfg.log)?.with_grace(Duration::from_secs(5));
    let client = Client::new(&cfg.listen.to_string());
    let started = Instant::now();
    let version = loop {
        if let Some(status) = process.try_exit() {
            return Err(LaunchError::ExitedEarly {
                what,
                status: process::describe_exit(status),
                log: cfg.log.clone(),
                tail: process.log_tail(20),
            });
        }
        if let Ok(v) = client.version().await {
            break v;
        }
        if started.elapsed() > cfg.ready_timeout {
            let tail = process.log_tail(20);
            process.terminate();
            return Err(LaunchError::NotReady {
                what,
                addr: cfg.listen,
                timeout: cfg.ready_timeout,
                log: cfg.log.clone(),
                tail,
            });
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    // Whoever answered must be the process we started, not something that raced us to the port.
    if let Some(PortHolder::Process(p)) = os::port_holder(cfg.listen) {
        if p.pid != process.pid() {
            let ours = process.pid();
            process.terminate();
            return Err(LaunchError::Foreign { addr: cfg.listen, holder: PortHolder::Process(p), ours });
        }
    }
    let kind = match &cfg.choice {
        ServerChoice::Real { bin, .. } => ServerKind::Real { bin: bin.clone(), version },
        ServerChoice::Embedded => ServerKind::Embedded { version },
    };
    Ok(Launched { process, api: cfg.listen, kind })
}

/// What `toxiproxy start` records so that `status`, `reset` and `stop` work from another shell.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerState {
    pub pid: u32,
    /// Process start time: tells our process from a later one that reused the pid.
    pub start_ticks: u64,
    pub api: SocketAddr,
    pub server: ServerKind,
    pub log: PathBuf,
    pub started_at: String,
}

/// What the state file says about the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recorded {
    Nothing,
    Running(ServerState),
    /// The recorded process is gone (crash, reboot, kill -9) or its pid now belongs to another process.
    Stale(ServerState),
}

/// The directory holding `toxiproxy.json` and the server log (under `target/` by default).
#[derive(Clone, Debug)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    pub fn new(dir: impl Into<PathBuf>) -> StateDir {
        StateDir { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn state_file(&self) -> PathBuf {
        self.dir.join("toxiproxy.json")
    }

    pub fn log_file(&self) -> PathBuf {
        self.dir.join("toxiproxy.log")
    }

    pub fn inspect(&self) -> anyhow::Result<Recorded> {
        use anyhow::Context;
        let path = self.state_file();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Recorded::Nothing),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let state: ServerState = match serde_json::from_str(&text) {
            Ok(s) => s,
            Err(e) => anyhow::bail!(
                "{} is not a state file this version understands ({e}); if no toxiproxy of ours runs, delete it",
                path.display()
            ),
        };
        let alive = os::pid_alive(state.pid) && os::start_ticks(state.pid) == Some(state.start_ticks);
        Ok(if alive { Recorded::Running(state) } else { Recorded::Stale(state) })
    }

    pub fn save(&self, state: &ServerState) -> anyhow::Result<()> {
        use anyhow::Context;
        std::fs::create_dir_all(&self.dir).with_context(|| format!("cannot create {}", self.dir.display()))?;
        let tmp = self.dir.join("toxiproxy.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(state)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, self.state_file())
            .with_context(|| format!("cannot write {}", self.state_file().display()))
    }

    pub fn clear(&self) -> anyhow::Result<()> {
        match std::fs::remove_file(self.state_file()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(anyhow::anyhow!("cannot remove {}: {e}", self.state_file().display()))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exe(dir: &Path, name: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn lookup_order_is_flag_env_path_embedded() {
        let tmp = tempfile::tempdir().unwrap();
        let on_path = exe(tmp.path(), REAL_SERVER_NAME);
        let flag = exe(tmp.path(), "flag-bin");
        let env = exe(tmp.path(), "env-bin");
        let path_var = tmp.path().as_os_str();

        let c = locate_in(Some(&flag), Some(&env), Some(path_var)).unwrap();
        assert_eq!(c, ServerChoice::Real { bin: flag, found_by: "--toxiproxy-bin" });
        let c = locate_in(None, Some(&env), Some(path_var)).unwrap();
        assert_eq!(c, ServerChoice::Real { bin: env, found_by: "TOXIPROXY_BIN" });
        let c = locate_in(None, None, Some(path_var)).unwrap();
        assert_eq!(c, ServerChoice::Real { bin: on_path, found_by: "PATH" });
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(locate_in(None, None, Some(empty.path().as_os_str())).unwrap(), ServerChoice::Embedded);
    }

    #[test]
    fn a_named_binary_that_does_not_exist_is_an_error_not_a_fallback() {
        let err = locate_in(None, Some(Path::new("/nonexistent/toxiproxy-server")), None).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("TOXIPROXY_BIN names /nonexistent/toxiproxy-server"), "{msg}");
    }

    #[test]
    fn state_of_a_dead_pid_is_stale() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::new(tmp.path());
        assert_eq!(dir.inspect().unwrap(), Recorded::Nothing);
        let state = ServerState {
            pid: std::process::id(),
            start_ticks: os::start_ticks(std::process::id()).unwrap(),
            api: "127.0.0.1:8474".parse().unwrap(),
            server: ServerKind::Embedded { version: "x".into() },
            log: tmp.path().join("log"),
            started_at: "now".into(),
        };
        dir.save(&state).unwrap();
        assert_eq!(dir.inspect().unwrap(), Recorded::Running(state.clone()));
        // Same pid, different start time: the pid was reused by another process.
        let reused = ServerState { start_ticks: state.start_ticks + 1, ..state };
        dir.save(&reused).unwrap();
        assert!(matches!(dir.inspect().unwrap(), Recorded::Stale(_)));
        dir.clear().unwrap();
        assert_eq!(dir.inspect().unwrap(), Recorded::Nothing);
        std::fs::write(dir.state_file(), "garbage").unwrap();
        assert!(dir.inspect().unwrap_err().to_string().contains("toxiproxy.json is not a state file"));
    }
}
