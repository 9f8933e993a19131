//! A tiny process standing in for a Chronik node in tests (it is not Chronik): same command
//! line (`start --config FILE`), same config file, binds the configured Kafka/WAL/Raft ports and
//! an admin API, dials its peers' Raft and WAL addresses from its file (through the proxies) with
//! ping/pong heartbeats, names a leader when a majority is reachable, and answers Kafka
//! Metadata v0 requests with the advertised peer addresses.
//!
//! It also answers the probes of `chronik_chaos::probe`: its Kafka port answers ApiVersions (any
//! version, in the v0 format) and closes on a bad request size; its Raft port, on a connection
//! that starts with the HTTP/2 client preface instead of a heartbeat ping, acts as a minimal
//! HTTP/2 server (SETTINGS, SETTINGS ACK, PING ACK, unknown frames ignored) and closes on
//! anything that is neither.
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
    tokio::spawn(serve(raft, raft_conn));
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

/// The byte a heartbeat sends as its ping (and gets back as its pong).
const HEARTBEAT_PING: u8 = 1;

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
                if s.write_all(&[HEARTBEAT_PING]).await.is_err() {
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

/// Requests larger than this (or with a negative size) close the connection, as a broker's
/// `socket.request.max.bytes` does.
const MAX_KAFKA_REQUEST: i32 = 1 << 20;

/// Kafka: answers Metadata (api key 3) requests in the v0 format with the advertised brokers,
/// and ApiVersions (api key 18) with the v0 response; anything else closes the connection.
async fn kafka_conn(mut s: TcpStream, brokers: Vec<(i32, String)>) {
    loop {
        let mut len = [0u8; 4];
        if s.read_exact(&mut len).await.is_err() {
            return;
        }
        let len = i32::from_be_bytes(len);
        if !(8..=MAX_KAFKA_REQUEST).contains(&len) {
            return;
        }
        let mut req = vec![0u8; len as usize];
        if s.read_exact(&mut req).await.is_err() {
            return;
        }
        let api_key = i16::from_be_bytes([req[0], req[1]]);
        let api_version = i16::from_be_bytes([req[2], req[3]]);
        let correlation = &req[4..8];
        let mut body = Vec::new();
        body.extend_from_slice(correlation);
        match api_key {
            3 => metadata_v0(&mut body, &brokers),
            18 => api_versions_v0(&mut body, api_version),
            _ => return,
        }
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        if s.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// The Metadata v0 response body after the correlation id: the brokers, no topics.
fn metadata_v0(body: &mut Vec<u8>, brokers: &[(i32, String)]) {
    body.extend_from_slice(&(brokers.len() as i32).to_be_bytes());
    for (id, addr) in brokers {
        let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "0"));
        body.extend_from_slice(&id.to_be_bytes());
        body.extend_from_slice(&(host.len() as i16).to_be_bytes());
        body.extend_from_slice(host.as_bytes());
        body.extend_from_slice(&port.parse::<i32>().unwrap_or(0).to_be_bytes());
    }
    body.extend_from_slice(&0i32.to_be_bytes()); // no topics
}

/// The ApiVersions v0 response body after the correlation id: an error code and the supported
/// (api key, min version, max version) triples. Like a broker, a version it does not support
/// gets the v0 format with UNSUPPORTED_VERSION (35) and the list.
fn api_versions_v0(body: &mut Vec<u8>, version: i16) {
    const SUPPORTED: [(i16, i16, i16); 2] = [(3, 0, 0), (18, 0, 0)];
    let error: i16 = if version == 0 { 0 } else { 35 };
    body.extend_from_slice(&error.to_be_bytes());
    body.extend_from_slice(&(SUPPORTED.len() as i32).to_be_bytes());
    for (key, min, max) in SUPPORTED {
        for v in [key, min, max] {
            body.extend_from_slice(&v.to_be_bytes());
        }
    }
}

/// Raft port: a connection whose first byte is a heartbeat ping gets pongs; one that starts with
/// the HTTP/2 client preface (a probe) gets a minimal HTTP/2 server; anything else is closed.
async fn raft_conn(s: TcpStream) {
    let mut first = [0u8; 1];
    match s.peek(&mut first).await {
        Ok(1) if first[0] == HEARTBEAT_PING => pong_conn(s).await,
        Ok(1) => http2_conn(s).await,
        _ => {}
    }
}

const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_SETTINGS: u8 = 0x4;
const FRAME_PING: u8 = 0x6;
const FLAG_ACK: u8 = 0x1;
/// The default SETTINGS_MAX_FRAME_SIZE, which this server never raises.
const MAX_FRAME: usize = 16_384;

/// A minimal HTTP/2 server for probes: checks the preface byte by byte (closing on the first
/// wrong byte), sends an empty SETTINGS, ACKs the client's SETTINGS, answers each PING with a
/// PING ACK carrying its payload, ignores every other frame type, and closes on a frame HTTP/2
/// forbids here (first frame not SETTINGS, oversized, malformed SETTINGS or PING).
async fn http2_conn(mut s: TcpStream) {
    let mut preface = [0u8; 24];
    let mut got = 0;
    while got < preface.len() {
        match s.read(&mut preface[got..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) if preface[got..got + n] != HTTP2_PREFACE[got..got + n] => return,
            Ok(n) => got += n,
        }
    }
    if s.write_all(&http2_frame(FRAME_SETTINGS, 0, &[])).await.is_err() {
        return;
    }
    let mut first = true;
    loop {
        let mut head = [0u8; 9];
        if s.read_exact(&mut head).await.is_err() {
            return;
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        if len > MAX_FRAME || (first && (kind != FRAME_SETTINGS || flags & FLAG_ACK != 0)) {
            return;
        }
        first = false;
        let mut payload = vec![0u8; len];
        if s.read_exact(&mut payload).await.is_err() {
            return;
        }
        let answer = match (kind, flags & FLAG_ACK) {
            (FRAME_SETTINGS | FRAME_PING, _) if stream != 0 => return,
            (FRAME_SETTINGS, 0) if len % 6 == 0 => http2_frame(FRAME_SETTINGS, FLAG_ACK, &[]),
            (FRAME_SETTINGS, _) if len == 0 => continue, // the client's ACK of ours
            (FRAME_PING, 0) if len == 8 => http2_frame(FRAME_PING, FLAG_ACK, &payload),
            (FRAME_PING, _) if len == 8 => continue,
            (FRAME_SETTINGS | FRAME_PING, _) => return,
            _ => continue, // other and unknown frame types: ignored
        };
        if s.write_all(&answer).await.is_err() {
            return;
        }
    }
}

/// One HTTP/2 frame: 24-bit length, type, flags, stream 0, payload.
fn http2_frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags, 0, 0, 0, 0]);
    out.extend_from_slice(payload);
    out
}

#[allow(dead_code)]
fn parse_addr(a: &str) -> Option<SocketAddr> {
    a.parse().ok()
}
