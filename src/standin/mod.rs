//! A stand-in for a Chronik node in tests — "chronik-chaos stand-in", never Chronik: a small,
//! deliberately plain Kafka-protocol broker with Chronik's command line (`start --config
//! FILE`) and config file, so that the whole pipeline (librdkafka workload → history checker →
//! verdicts) runs in CI without Chronik. `src/bin/chronik-stand-in-node.rs` is its thin main.
//!
//! What a node does:
//! - binds `[bind]` kafka, wal and raft, and an admin API on `CHRONIK_CHAOS_NODE_ADMIN_PORT`
//!   (else 10000 + node id);
//! - Raft port ([`heartbeat`], [`http2`]): ping/pong heartbeats with every peer through the
//!   peer's proxied `raft` address; the cluster-level leader is the lowest reachable id when a
//!   majority is reachable; a connection starting with the HTTP/2 preface gets a tiny HTTP/2
//!   server (probes);
//! - Kafka port ([`protocol`]): ApiVersions, Metadata (brokers = the `[[peers]].kafka` proxy
//!   addresses), CreateTopics, Produce (acks 0/1/-1, idempotent producers), Fetch, ListOffsets,
//!   OffsetForLeaderEpoch, DescribeConfigs, InitProducerId;
//! - consumer groups ([`group`]): the lowest node id coordinates every group (FindCoordinator,
//!   JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch; classic eager
//!   rebalancing) and keeps committed offsets in `group-offsets.json`;
//! - WAL port ([`replication`]): partition replication, topic sync and vote requests, each node
//!   dialling its peers' proxied `wal` addresses;
//! - partitions ([`partition`], [`log`], [`idempotence`]): partition p's replicas start at node
//!   `(p % n) + 1`, its first leader; logs live under `data_dir` with an fsync per append; the
//!   high watermark only covers entries held by `max(min.insync.replicas, majority)` replicas;
//!   acks=all waits for it;
//! - elections ([`election`]): a follower that has not heard its leader for ~2 s and reaches a
//!   majority stands for the next epoch; the majority's most up-to-date log wins (Raft's rule),
//!   so acknowledged writes survive isolation, one-way cuts, kill -9 and SIGSTOP;
//! - admin ([`admin`]): `/admin/status` with `leader_id` and, per partition, leader, replicas
//!   and ISR.
//!
//! Test knobs (environment): `STAND_IN_IGNORE_SIGTERM=1` ignores SIGTERM;
//! `STAND_IN_EXIT_AFTER_MS=N` exits with code 3 after N ms (a crash), and such a node never
//! reports a leader before it crashes; `STAND_IN_BUG=name[,name...]` switches on deliberate
//! faults, listed in [`bugs`]: `ack-before-replication`, `lose-unflushed-tail`, `no-failover`,
//! `ignore-sequence`, `reorder-batches`, `empty-fetch-from-follower`, `stale-metadata`,
//! `startup-hang`, `offset-fetch-ahead`, `duplicate-assignment`. Without it the broker is
//! correct.

pub mod admin;
pub mod batch;
pub mod broker;
pub mod bugs;
pub mod config;
pub mod election;
pub mod group;
pub mod heartbeat;
pub mod http2;
pub mod idempotence;
pub mod log;
pub mod partition;
pub mod protocol;
pub mod replication;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;

pub use self::bugs::{Bug, Bugs};
pub use self::config::{Knobs, NodeConfig};

use self::admin::AdminOptions;
use self::broker::Broker;

/// Runs a node until SIGTERM (never, with `STAND_IN_IGNORE_SIGTERM=1`). An error means it
/// could not start.
pub async fn run(config: NodeConfig, knobs: Knobs) -> Result<(), String> {
    let id = config.node_id;
    let bind = |addr: String, what: &'static str| async move {
        TcpListener::bind(&addr).await.map_err(|e| format!("stand-in node {id}: cannot bind {what} {addr}: {e}"))
    };
    let kafka = bind(config.bind.kafka.clone(), "kafka").await?;
    let wal = bind(config.bind.wal.clone(), "wal").await?;
    let raft = bind(config.bind.raft.clone(), "raft").await?;
    // The admin API on the Kafka listener's address: loopback, or the node's own address in
    // its namespace (as Chronik's 0.0.0.0 is reachable there).
    let host = config.bind.kafka.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h);
    let admin = bind(format!("{host}:{}", knobs.admin_port), "admin").await?;
    println!(
        "stand-in node {id}: kafka {} wal {} raft {} admin {} (chronik-chaos stand-in, not Chronik; bugs: {})",
        config.bind.kafka,
        config.bind.wal,
        config.bind.raft,
        knobs.admin_port,
        if knobs.bugs.is_empty() { "none".to_string() } else { knobs.bugs.to_string() }
    );
    let hang = knobs.bugs.has(Bug::StartupHang) && {
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        fastrand::Rng::with_seed(seed ^ u64::from(std::process::id())).bool()
    };
    if hang {
        println!("stand-in node {id}: bug startup-hang: this node will never report a leader");
    }
    // A restart: the node starts on data it already holds.
    let restarted = config.data_dir.as_deref().is_some_and(|d| d.join("topics.json").exists());
    let lost = restarted && knobs.bugs.has(Bug::NoLeaderAfterRestart);
    if lost {
        println!("stand-in node {id}: bug no-leader-after-restart: restarted, so it will never name a Raft leader");
    }
    let options = AdminOptions { hide_leader: hang || lost || knobs.exit_after.is_some() };
    let (ignore_sigterm, exit_after) = (knobs.ignore_sigterm, knobs.exit_after);
    let broker = Broker::open(config, knobs).map_err(|e| format!("stand-in node {id}: cannot open its data: {e}"))?;
    println!("stand-in node {id}: data in {}", broker.data_dir.display());

    tokio::spawn(protocol::serve(kafka, broker.clone()));
    tokio::spawn(replication::serve(wal, broker.clone()));
    tokio::spawn(async move {
        while let Ok((s, _)) = raft.accept().await {
            tokio::spawn(heartbeat::raft_conn(s));
        }
    });
    tokio::spawn(admin::serve(admin, broker.clone(), options));
    tokio::spawn(group::run_timers(broker.clone()));
    for peer in broker.config.others() {
        tokio::spawn(heartbeat::ping_loop(peer.raft.clone(), peer.id, broker.reach.clone()));
    }
    let links = replication::start(&broker);
    tokio::spawn(election::run(broker.clone(), links));

    if let Some(after) = exit_after {
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            println!("stand-in node {id}: crashing on purpose");
            std::process::exit(3);
        });
    }
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    loop {
        term.recv().await;
        if ignore_sigterm {
            println!("stand-in node {id}: ignoring SIGTERM");
        } else {
            println!("stand-in node {id}: SIGTERM, exiting");
            // Let in-flight log lines and answers go out.
            tokio::time::sleep(Duration::from_millis(10)).await;
            return Ok(());
        }
    }
}
