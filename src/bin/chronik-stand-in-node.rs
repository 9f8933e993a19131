//! A tiny process standing in for a Chronik node in tests (it is not Chronik): same command
//! line (`start --config FILE`), same config file, binds the configured Kafka/WAL/Raft ports and
//! an admin API, dials its peers' Raft and WAL addresses from its file (through the proxies) with
//! ping/pong heartbeats, names a leader when a majority is reachable, and answers Kafka
//! Metadata v0 requests with the advertised peer addresses.
//!
//! Test knobs (environment): `STAND_IN_IGNORE_SIGTERM=1` ignores SIGTERM;
//! `STAND_IN_EXIT_AFTER_MS=N` exits with code 3 after N ms (a crash); such a node never reports a
//! leader before it crashes, so a test of a crash during start-up cannot race readiness.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Deserialize)]
struct Config {
    node_id: u64,
    bind: Bind,
    peers: Vec<Peer>,
}

#[derive(Deserialize)]
struct Bind {
    kafka: String,
    wal: String,
    raft: String,
}

#[derive(Deserialize, Clone)]
struct Peer {
    id: u64,
    kafka: String,
    wal: String,
    raft: String,
}

/// Last pong time per peer id.
type Seen = Arc<Mutex<BTreeMap<u64, Instant>>>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let config_path = match args.iter().position(|a| a == "--config") {
        Some(i) if args.get(1).map(String::as_str) == Some("start") && i + 1 < args.len() => args[i + 1].clone(),
        _ => {
            eprintln!("usage: chronik-stand-in-node start --config FILE");
            std::process::exit(2);
        }
    };
    let text = std::fs::read_to_string(&config_path).unwrap_or_else(|e| {
        eprintln!("cannot read {config_path}: {e}");
        std::process::exit(2)
    });
    let cfg: Config = toml::from_str(&text).unwrap_or_else(|e| {
        eprintln!("bad config {config_path}: {e}");
        std::process::exit(2)
    });
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(run(cfg));
}

fn port_from_env(name: &str, default: u16) -> u16 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn run(cfg: Config) {
    let id = cfg.node_id;
    let admin_port = port_from_env("CHRONIK_CHAOS_NODE_ADMIN_PORT", 10000 + id as u16);
    let seen: Seen = Arc::new(Mutex::new(BTreeMap::new()));
    let total = cfg.peers.len();

    let kafka = TcpListener::bind(&cfg.bind.kafka).await.expect("bind kafka");
    let wal = TcpListener::bind(&cfg.bind.wal).await.expect("bind wal");
    let raft = TcpListener::bind(&cfg.bind.raft).await.expect("bind raft");
    let admin = TcpListener::bind(("127.0.0.1", admin_port)).await.expect("bind admin");
    println!(
        "stand-in node {id}: kafka {} wal {} raft {} admin {admin_port}",
        cfg.bind.kafka, cfg.bind.wal, cfg.bind.raft
    );

    let advertised: Vec<(i32, String)> = cfg.peers.iter().map(|p| (p.id as i32, p.kafka.clone())).collect();
    tokio::spawn(serve(kafka, move |s| kafka_conn(s, advertised.clone())));
    tokio::spawn(serve(wal, pong_conn));
    tokio::spawn(serve(raft, pong_conn));
    let (seen2, ids): (Seen, Vec<u64>) = (seen.clone(), cfg.peers.iter().map(|p| p.id).collect());
    tokio::spawn(serve(admin, move |s| admin_conn(s, id, total, ids.clone(), seen2.clone())));
    for peer in cfg.peers.iter().filter(|p| p.id != id).cloned() {
        tokio::spawn(heartbeat(peer.raft.clone(), peer.id, Some(seen.clone())));
        tokio::spawn(heartbeat(peer.wal.clone(), peer.id, None));
    }

    if let Some(ms) = std::env::var("STAND_IN_EXIT_AFTER_MS").ok().and_then(|v| v.parse().ok()) {
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            println!("stand-in node {id}: crashing on purpose");
            std::process::exit(3);
        });
    }
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).unwrap();
    let ignore = std::env::var("STAND_IN_IGNORE_SIGTERM").is_ok_and(|v| v == "1");
    loop {
        term.recv().await;
        if ignore {
            println!("stand-in node {id}: ignoring SIGTERM");
        } else {
            println!("stand-in node {id}: SIGTERM, exiting");
            return;
        }
    }
}

async fn serve<F, Fut>(listener: TcpListener, handler: F)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    while let Ok((s, _)) = listener.accept().await {
        tokio::spawn(handler(s));
    }
}

/// Answers each ping byte with a pong byte.
async fn pong_conn(mut s: TcpStream) {
    let mut b = [0u8; 1];
    while let Ok(1) = s.read(&mut b).await {
        if s.write_all(&b).await.is_err() {
            return;
        }
    }
}

/// Keeps a connection to `addr` open, pinging every 100 ms; a pong within 500 ms marks the peer seen.
async fn heartbeat(addr: String, peer: u64, seen: Option<Seen>) {
    loop {
        if let Ok(mut s) = TcpStream::connect(&addr).await {
            let mut b = [0u8; 1];
            loop {
                if s.write_all(&[1]).await.is_err() {
                    break;
                }
                match tokio::time::timeout(Duration::from_millis(500), s.read(&mut b)).await {
                    Ok(Ok(1)) => {
                        if let Some(seen) = &seen {
                            seen.lock().unwrap().insert(peer, Instant::now());
                        }
                    }
                    Ok(_) => break,
                    Err(_) => {} // black-holed: keep the connection, stay unseen
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn leader(id: u64, total: usize, seen: &Seen) -> Option<u64> {
    let now = Instant::now();
    let mut reachable: Vec<u64> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, t)| now.duration_since(**t) < Duration::from_secs(1))
        .map(|(p, _)| *p)
        .collect();
    reachable.push(id);
    (reachable.len() * 2 > total).then(|| *reachable.iter().min().unwrap())
}

async fn admin_conn(mut s: TcpStream, id: u64, total: usize, ids: Vec<u64>, seen: Seen) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let request = String::from_utf8_lossy(&buf);
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
    let crashing = std::env::var_os("STAND_IN_EXIT_AFTER_MS").is_some();
    let leader = if crashing { None } else { leader(id, total, &seen) };
    let (status, body) = match path.as_str() {
        "/admin/status" => (
            "200 OK",
            serde_json::json!({"node_id": id, "leader_id": leader, "is_leader": leader == Some(id), "nodes": ids, "partitions": []}),
        ),
        "/admin/health" => (
            "200 OK",
            serde_json::json!({"status": "ok", "node_id": id, "is_leader": leader == Some(id), "cluster_nodes": ids.len()}),
        ),
        _ => ("404 Not Found", serde_json::json!({"error": "not found"})),
    };
    let body = body.to_string();
    let resp = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(resp.as_bytes()).await;
}

/// Kafka: answers Metadata (api key 3) requests in the v0 format with the advertised brokers.
async fn kafka_conn(mut s: TcpStream, brokers: Vec<(i32, String)>) {
    loop {
        let mut len = [0u8; 4];
        if s.read_exact(&mut len).await.is_err() {
            return;
        }
        let mut req = vec![0u8; u32::from_be_bytes(len) as usize];
        if s.read_exact(&mut req).await.is_err() || req.len() < 8 {
            return;
        }
        let api_key = i16::from_be_bytes([req[0], req[1]]);
        let correlation = &req[4..8];
        if api_key != 3 {
            return;
        }
        let mut body = Vec::new();
        body.extend_from_slice(correlation);
        body.extend_from_slice(&(brokers.len() as i32).to_be_bytes());
        for (id, addr) in &brokers {
            let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "0"));
            body.extend_from_slice(&id.to_be_bytes());
            body.extend_from_slice(&(host.len() as i16).to_be_bytes());
            body.extend_from_slice(host.as_bytes());
            body.extend_from_slice(&port.parse::<i32>().unwrap_or(0).to_be_bytes());
        }
        body.extend_from_slice(&0i32.to_be_bytes()); // no topics
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        if s.write_all(&out).await.is_err() {
            return;
        }
    }
}

#[allow(dead_code)]
fn parse_addr(a: &str) -> Option<SocketAddr> {
    a.parse().ok()
}
