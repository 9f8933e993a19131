//! Test support shared by the integration tests: small real TCP servers to put behind proxies
//! (echo, closer, source) and the Toxiproxy servers under test (embedded, or real when
//! `TOXIPROXY_BIN` is set).

#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use chronik_chaos::topology::{FixedPorts, Plan, TopologySpec};
use chronik_chaos::toxiproxy::launcher::{self, LaunchConfig, Launched, ServerChoice};
use chronik_chaos::toxiproxy::server::EmbeddedServer;
use chronik_chaos::toxiproxy::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A Toxiproxy server under test.
pub enum Server {
    Embedded(EmbeddedServer),
    Real { launched: Box<Launched>, _dir: tempfile::TempDir },
}

impl Server {
    pub fn client(&self) -> Client {
        match self {
            Server::Embedded(s) => s.client(),
            Server::Real { launched, .. } => launched.client(),
        }
    }

    pub fn is_real(&self) -> bool {
        matches!(self, Server::Real { .. })
    }
}

/// The embedded server, in this process, on a free port.
pub async fn embedded() -> Server {
    Server::Embedded(EmbeddedServer::start("127.0.0.1:0".parse().unwrap()).await.unwrap())
}

/// The real server named by `TOXIPROXY_BIN`; without it the calling test fails (such tests
/// are `#[ignore]`d, so they run only when asked for).
pub async fn real(test: &str) -> Server {
    let Some(bin) = std::env::var_os("TOXIPROXY_BIN").filter(|v| !v.is_empty()) else {
        // These tests are #[ignore]d unless asked for; asked for without the binary, they fail.
        panic!("{test} needs TOXIPROXY_BIN pointing at a real toxiproxy-server");
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = LaunchConfig {
        listen: free_addr(),
        choice: ServerChoice::Real { bin: PathBuf::from(bin), found_by: "TOXIPROXY_BIN" },
        embedded_exe: PathBuf::from(env!("CARGO_BIN_EXE_chronik-chaos")),
        log: dir.path().join("toxiproxy.log"),
        ready_timeout: Duration::from_secs(15),
    };
    let launched = launcher::launch(&cfg).await.unwrap();
    Server::Real { launched: Box::new(launched), _dir: dir }
}

/// A loopback address with a port that was free a moment ago.
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// An echo server: writes back every byte it reads, per connection.
pub async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// A server that closes every connection as soon as it accepts it.
pub async fn closer_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            drop(s);
        }
    });
    addr
}

/// A server that writes `len` bytes (a repeating pattern) to each connection, then closes it.
pub async fn source_server(len: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let data = pattern(len);
                let _ = s.write_all(&data).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Reads until EOF, error or `limit` elapses. Returns the bytes, how it ended, and the number of reads.
pub async fn read_all(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, End, usize) {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut reads = 0;
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return (out, End::StillOpen, reads),
            Ok(Ok(0)) => return (out, End::Eof, reads),
            Ok(Ok(n)) => {
                reads += 1;
                out.extend_from_slice(&buf[..n]);
            }
            Ok(Err(e)) => return (out, End::Error(e.kind()), reads),
        }
    }
}

/// Reads exactly `n` bytes or fails the test after `limit`.
pub async fn read_exact(s: &mut TcpStream, n: usize, limit: Duration) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut reads = 0;
    let deadline = tokio::time::Instant::now() + limit;
    while out.len() < n {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => panic!("read {} of {n} bytes before the {limit:?} limit", out.len()),
            Ok(Ok(0)) => panic!("EOF after {} of {n} bytes", out.len()),
            Ok(Ok(k)) => {
                reads += 1;
                out.extend_from_slice(&buf[..k]);
            }
            Ok(Err(e)) => panic!("read error after {} of {n} bytes: {e}", out.len()),
        }
    }
    (out, reads)
}

/// How a read sequence ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    Eof,
    Error(std::io::ErrorKind),
    StillOpen,
}

/// Runs each named `async fn(&Server)` test against the embedded server (`embedded::*`) and a
/// real `toxiproxy-server` (`real::*`, ignored unless `TOXIPROXY_BIN` is given and the run
/// includes ignored tests, as `.ci/run` does then).
#[macro_export]
macro_rules! against_both_servers {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let server = $crate::support::embedded().await;
                    $crate::$name(&server).await;
                }
            )*
        }
        mod real {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs TOXIPROXY_BIN (a real toxiproxy-server); .ci/run includes it when set"]
                async fn $name() {
                    let server = $crate::support::real(stringify!($name)).await;
                    $crate::$name(&server).await;
                }
            )*
        }
    };
}

/// A three-node plan at `base` whose fixed ports (admin, metrics, unified API) sit right above
/// it, so stand-in clusters of several tests can run side by side.
pub fn standin_topology(base: u16) -> TopologySpec {
    TopologySpec {
        nodes: 3,
        host: IpAddr::from([127, 0, 0, 1]),
        base_port: base,
        fixed: FixedPorts { admin_base: base + 400, metrics_base: base + 420, unified_api_base: base + 440 },
        addressing: Default::default(),
    }
}

/// A base port from `first` on (in steps of 500) whose whole plan (base..base+459) is free now,
/// below the kernel's ephemeral range (so no client socket or `127.0.0.1:0` listener of a
/// concurrent test can take one of its ports between the check and the bind), and not handed to
/// another test of this process before (so two tests running side by side never share a range).
pub fn free_standin_base(first: u16) -> u16 {
    const SPAN: u16 = 460;
    static CLAIMED: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse::<u16>().ok()))
        .unwrap_or(32768);
    let slots: Vec<u16> = (0..)
        .map(|k: u16| first + k * 500)
        .take_while(|b| b.checked_add(SPAN).is_some_and(|end| end <= ephemeral_low))
        .collect();
    assert!(!slots.is_empty(), "no stand-in port range from {first} fits below the ephemeral ports ({ephemeral_low})");
    let mut claimed = CLAIMED.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..50 {
        let base = slots[fastrand::usize(0..slots.len())];
        let overlaps = claimed.iter().any(|&c| base < c + SPAN && c < base + SPAN);
        if !overlaps
            && chronik_chaos::cluster::preflight_ports(&Plan::new(standin_topology(base)).unwrap(), None).is_ok()
        {
            claimed.push(base);
            return base;
        }
    }
    panic!("no free stand-in port range from {first} below {ephemeral_low} (claimed so far: {claimed:?})");
}

/// `cmd` as `cargo xtask` runs the binary: `invoked_as` is the user's command, which xtask
/// puts in `CHRONIK_CHAOS_INVOKED_AS` (`None`: the binary run directly). No Toxiproxy or
/// Chronik from the user's environment, and only the system's PATH.
pub fn as_invoked(cmd: &mut std::process::Command, invoked_as: Option<&str>) -> std::process::Output {
    cmd.env_remove("TOXIPROXY_BIN").env_remove("CHRONIK_BIN").env("PATH", "/usr/bin:/bin");
    match invoked_as {
        Some(v) => cmd.env("CHRONIK_CHAOS_INVOKED_AS", v),
        None => cmd.env_remove("CHRONIK_CHAOS_INVOKED_AS"),
    };
    cmd.output().unwrap()
}

/// A finished command's stdout and stderr, as one text.
pub fn text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A three-node stand-in cluster's spec (`chronik-stand-in-node`, not Chronik) on free ports
/// from `first_base`, its nodes run with `env`, under `run_dir`.
pub fn standin_cluster_spec(
    first_base: u16,
    run_dir: PathBuf,
    env: &[(&str, &str)],
) -> chronik_chaos::cluster::ClusterSpec {
    chronik_chaos::cluster::ClusterSpec {
        topology: standin_topology(free_standin_base(first_base)),
        settings: chronik_chaos::cluster::config::ClusterSettings::default(),
        node: chronik_chaos::cluster::supervisor::NodeCommand {
            program: PathBuf::from(env!("CARGO_BIN_EXE_chronik-stand-in-node")),
            rust_log: "info".into(),
            stop_grace: Duration::from_secs(2),
            extra_env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            faketime: None,
        },
        run_dir,
        ready_timeout: Duration::from_secs(30),
        data_dir_limit: None,
        network: Default::default(),
    }
}

/// A three-node stand-in cluster behind a fresh embedded Toxiproxy, its ports from
/// [`standin_cluster_spec`] at base 21250 (tests that use it run one at a time).
pub async fn start_standin(
    run_dir: PathBuf,
    env: &[(&str, &str)],
) -> (chronik_chaos::cluster::Cluster, EmbeddedServer) {
    use chronik_chaos::cluster::{Cluster, ToxiproxySource};
    let toxi = EmbeddedServer::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let spec = standin_cluster_spec(21250, run_dir, env);
    let cluster = Cluster::start(&spec, ToxiproxySource::Existing(toxi.client()), &|_| {}).await.unwrap();
    (cluster, toxi)
}

/// The last `lines` of every node's log, for a failure message.
pub fn node_logs(c: &chronik_chaos::cluster::Cluster, lines: usize) -> String {
    c.supervisor
        .nodes()
        .iter()
        .map(|n| format!("--- node {} ---\n{}", n.id(), chronik_chaos::process::log_tail(&n.files.log, lines)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A librdkafka client configuration bootstrapped at the cluster's proxies.
pub fn bootstrap_client(c: &chronik_chaos::cluster::Cluster) -> rdkafka::ClientConfig {
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", c.plan.bootstrap_servers());
    config
}

/// A suite configuration for stand-in nodes (`chronik-stand-in-node`): quiet node logs, no
/// metrics watched, one start-up attempt, 20 s to be ready, no bug switched on, the proxy
/// network. Tests override what they vary.
pub fn standin_suite(topology: TopologySpec, out_dir: PathBuf, seed: u64) -> chronik_chaos::runner::SuiteConfig {
    chronik_chaos::runner::SuiteConfig {
        chronik_bin: PathBuf::from(env!("CARGO_BIN_EXE_chronik-stand-in-node")),
        topology,
        node_log: "info".into(),
        out_dir,
        seed,
        client_extra: Vec::new(),
        watch_metrics: Vec::new(),
        must_move: Vec::new(),
        ready_timeout: Duration::from_secs(20),
        start_attempts: 1,
        node_env: Vec::new(),
        network: Default::default(),
    }
}

/// Everything of netns run `run` (a fabric's prefix) that is still there: namespaces, links
/// (bridge, veths), nft tables, the state file.
pub fn netns_leftovers(run: &str) -> Vec<String> {
    use chronik_chaos::netns::{ip, STATE_DIR};
    let mine = |n: &str| n == run || n.starts_with(&format!("{run}-"));
    let mut out: Vec<String> = ip::netns_names().unwrap().into_iter().filter(|n| mine(n)).collect();
    out.extend(ip::links().unwrap().into_iter().map(|l| l.ifname).filter(|n| mine(n)));
    let tables = std::process::Command::new("nft").args(["list", "tables"]).output().unwrap();
    out.extend(String::from_utf8_lossy(&tables.stdout).lines().filter(|l| l.contains(run)).map(str::to_string));
    let state = std::path::Path::new(STATE_DIR).join(format!("{run}.json"));
    if state.exists() {
        out.push(state.display().to_string());
    }
    out
}

/// Sends SIGINT (Ctrl-C) to `child` and waits up to two minutes for it to end; its exit status
/// and stderr.
pub fn interrupt_and_wait(child: &mut std::process::Child) -> (std::process::ExitStatus, String) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "the chaos process did not end after Ctrl-C");
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}
