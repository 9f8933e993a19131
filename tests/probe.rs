//! The probes of `chronik_chaos::probe` through a Toxiproxy proxy in front of a stand-in node
//! (`chronik-stand-in-node`: its Kafka port answers ApiVersions, its Raft port HTTP/2): each probe
//! without a toxic, then with the toxic it measures, showing the toxic's effect. Runs against the
//! embedded server always (`embedded::*`) and against a real `toxiproxy-server` when
//! `TOXIPROXY_BIN` is set (`real::*`: ignored otherwise, so the summary counts them as not run).
//!
//! Timing assertions are lower bounds only (a fault must add at least its delay).

#[macro_use]
mod support;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use chronik_chaos::probe::{self, ProbeError, Protocol};
use chronik_chaos::process::OwnedProcess;
use chronik_chaos::toxiproxy::{NewProxy, Stream, Toxic, ToxicKind};
use support::{free_addr, Server};
use tokio::net::TcpStream;

const STAND_IN: &str = env!("CARGO_BIN_EXE_chronik-stand-in-node");
const PATIENCE: Duration = Duration::from_secs(10);

against_both_servers!(
    round_trip_shows_downstream_latency,
    round_trip_times_out_in_a_black_hole,
    transfer_shows_upstream_bandwidth,
    close_delay_shows_slow_close,
    resets_count_reset_peer,
    a_probe_of_the_wrong_protocol_fails,
);

/// A stand-in node on free ports, stopped (its process group) on drop.
struct StandIn {
    kafka: SocketAddr,
    raft: SocketAddr,
    process: OwnedProcess,
    _dir: tempfile::TempDir,
}

impl StandIn {
    async fn start() -> StandIn {
        let dir = tempfile::tempdir().unwrap();
        let (kafka, wal, raft) = (free_addr(), free_addr(), free_addr());
        let config = dir.path().join("node.toml");
        let text = format!(
            "node_id = 1\n\n[bind]\nkafka = \"{kafka}\"\nwal = \"{wal}\"\nraft = \"{raft}\"\n\n\
             [[peers]]\nid = 1\nkafka = \"{kafka}\"\nwal = \"{wal}\"\nraft = \"{raft}\"\n"
        );
        std::fs::write(&config, text).unwrap();
        let args: Vec<OsString> = vec!["start".into(), "--config".into(), config.into()];
        let env = [("CHRONIK_CHAOS_NODE_ADMIN_PORT".to_string(), free_addr().port().to_string())];
        let process = OwnedProcess::spawn("stand-in", Path::new(STAND_IN), &args, &env, &dir.path().join("node.log"))
            .unwrap()
            .with_grace(Duration::from_secs(2));
        let node = StandIn { kafka, raft, process, _dir: dir };
        node.await_listening().await;
        node
    }

    async fn await_listening(&self) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        for addr in [self.kafka, self.raft] {
            while TcpStream::connect(addr).await.is_err() {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "stand-in node never listened on {addr}; its log ends:\n{}",
                    self.process.log_tail(20)
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// Its Kafka and Raft ports with the probe protocol each speaks.
    fn ports(&self) -> [(&'static str, SocketAddr, Protocol); 2] {
        [("kafka", self.kafka, Protocol::Kafka), ("raft", self.raft, Protocol::Http2)]
    }
}

/// Creates proxy `name` on a free port in front of `upstream`; returns its listen address.
async fn proxy(server: &Server, name: &str, upstream: SocketAddr) -> SocketAddr {
    let p = server.client().create_proxy(&NewProxy::new(name, "127.0.0.1:0", upstream.to_string())).await.unwrap();
    p.listen.parse().unwrap_or_else(|e| panic!("proxy listen address {}: {e}", p.listen))
}

async fn add_toxic(server: &Server, proxy: &str, kind: ToxicKind, stream: Stream) {
    server.client().create_toxic(proxy, &Toxic::new(kind, stream).with_toxicity(1.0)).await.unwrap();
}

async fn round_trip_shows_downstream_latency(server: &Server) {
    let node = StandIn::start().await;
    let latency = Duration::from_millis(200);
    for (name, upstream, proto) in node.ports() {
        let listen = proxy(server, name, upstream).await;
        let clean = probe::round_trips(listen, proto, 3, PATIENCE).await;
        let clean = clean.unwrap_or_else(|e| panic!("{proto:?} round trip through {name} without a toxic: {e}"));
        assert_eq!(clean.samples.len(), 3, "{clean:?}");

        add_toxic(server, name, ToxicKind::Latency { latency: 200, jitter: 0 }, Stream::Downstream).await;
        let slow = probe::round_trips(listen, proto, 3, PATIENCE).await;
        let slow = slow.unwrap_or_else(|e| panic!("{proto:?} round trip through {name} with 200 ms latency: {e}"));
        assert!(
            slow.samples.iter().all(|s| *s >= latency) && slow.median >= latency,
            "{proto:?} through {name} with 200 ms downstream latency: {slow:?} (without: {clean:?})"
        );
    }
}

async fn round_trip_times_out_in_a_black_hole(server: &Server) {
    let node = StandIn::start().await;
    for (name, upstream, proto) in node.ports() {
        let listen = proxy(server, name, upstream).await;
        if let Err(e) = probe::round_trip(listen, proto, PATIENCE).await {
            panic!("{proto:?} round trip through {name} without a toxic: {e}");
        }
        add_toxic(server, name, ToxicKind::Timeout { timeout: 0 }, Stream::Upstream).await;
        let got = probe::round_trip(listen, proto, Duration::from_secs(1)).await;
        assert!(
            matches!(got, Err(ProbeError::Timeout { .. })),
            "{proto:?} through {name} into an upstream black hole must time out, got {got:?}"
        );
    }
}

async fn transfer_shows_upstream_bandwidth(server: &Server) {
    let node = StandIn::start().await;
    let listen = proxy(server, "raft", node.raft).await;
    let bytes = 256 * 1024;
    if let Err(e) = probe::transfer(listen, bytes, PATIENCE).await {
        panic!("transfer of 256 KiB without a toxic: {e}");
    }
    add_toxic(server, "raft", ToxicKind::Bandwidth { rate: 128 }, Stream::Upstream).await;
    let took = probe::transfer(listen, bytes, 3 * PATIENCE).await.unwrap();
    // 262 144 bytes at 128 000 B/s take about 2 s.
    assert!(took >= Duration::from_millis(1500), "256 KiB at 128 KB/s took {took:?}, expected about 2 s");
}

async fn close_delay_shows_slow_close(server: &Server) {
    let node = StandIn::start().await;
    for (name, upstream, _) in node.ports() {
        let listen = proxy(server, name, upstream).await;
        if let Err(e) = probe::close_delay(listen, PATIENCE).await {
            panic!("close after garbage through {name} without a toxic: {e}");
        }
        add_toxic(server, name, ToxicKind::SlowClose { delay: 1000 }, Stream::Downstream).await;
        let took = probe::close_delay(listen, PATIENCE).await.unwrap();
        assert!(took >= Duration::from_secs(1), "close through {name} with a 1 s slow_close arrived after {took:?}");
    }
}

async fn resets_count_reset_peer(server: &Server) {
    let node = StandIn::start().await;
    let tries = 5;
    for (name, upstream, proto) in node.ports() {
        let listen = proxy(server, name, upstream).await;
        assert_eq!(probe::resets(listen, proto, tries, PATIENCE).await, 0, "{proto:?} through {name} without a toxic");
        add_toxic(server, name, ToxicKind::ResetPeer { timeout: 0 }, Stream::Upstream).await;
        assert_eq!(
            probe::resets(listen, proto, tries, PATIENCE).await,
            tries,
            "{proto:?} through {name} with reset_peer on upstream: every try must be reset"
        );
    }
}

/// A probe in the wrong protocol fails (the stand-in closes: EOF, or a reset when it left bytes
/// unread) rather than passing or hanging: the probes check what they receive.
async fn a_probe_of_the_wrong_protocol_fails(server: &Server) {
    let node = StandIn::start().await;
    let kafka = proxy(server, "kafka", node.kafka).await;
    let raft = proxy(server, "raft", node.raft).await;
    for (name, listen, proto) in [("raft", raft, Protocol::Kafka), ("kafka", kafka, Protocol::Http2)] {
        let got = probe::round_trip(listen, proto, PATIENCE).await;
        let refused = matches!(got, Err(ProbeError::Protocol(_) | ProbeError::Reset));
        assert!(refused, "{proto:?} round trip through {name}: {got:?}");
    }
    let got = probe::transfer(kafka, 1024, PATIENCE).await;
    assert!(matches!(got, Err(ProbeError::Protocol(_) | ProbeError::Reset)), "transfer through kafka: {got:?}");
}
