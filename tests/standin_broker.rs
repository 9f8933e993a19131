//! The stand-in broker (`chronik-stand-in-node`, "chronik-chaos stand-in", not Chronik) as a
//! Kafka cluster for librdkafka: three nodes behind the embedded Toxiproxy, started by the
//! harness's own `Cluster::start`. Acknowledged writes are read back once each at their
//! acknowledged offsets (and the log's batch headers, read with a raw Fetch, name their
//! producer); killing a partition leader fails over and loses nothing; and one bug
//! switch (`STAND_IN_BUG=ack-before-replication`) is shown both ways: with every WAL link cut,
//! the correct broker refuses acks=all writes and the buggy one acknowledges them.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chronik_chaos::cluster::Cluster;
use chronik_chaos::partition_reader::PartitionReader;
use chronik_chaos::record_origin;
use chronik_chaos::topology::LinkKind;
use chronik_chaos::toxiproxy::server::EmbeddedServer;
use chronik_chaos::toxiproxy::{Stream, Toxic, ToxicKind};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

const TOPIC: &str = "standin";

async fn start(run_dir: PathBuf, env: &[(&str, &str)]) -> (Cluster, EmbeddedServer) {
    support::start_standin(run_dir, env).await
}

/// The node logs, for a failure message.
fn logs(c: &Cluster) -> String {
    support::node_logs(c, 15)
}

fn client(c: &Cluster) -> ClientConfig {
    support::bootstrap_client(c)
}

/// Creates the test topic (3 partitions, replication factor 3, min.insync.replicas 2) and
/// checks that the cluster reports those settings back (Metadata and DescribeConfigs).
async fn create_topic(c: &Cluster) {
    let admin: AdminClient<DefaultClientContext> = client(c).create().unwrap();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let topic = NewTopic::new(TOPIC, 3, TopicReplication::Fixed(3)).set("min.insync.replicas", "2");
    let created = admin.create_topics([&topic], &opts).await.unwrap();
    assert!(matches!(created.as_slice(), [Ok(_)]), "{created:?}\n{}", logs(c));
    let configs = admin.describe_configs([&ResourceSpecifier::Topic(TOPIC)], &opts).await.unwrap();
    let min_isr = configs[0].as_ref().ok().and_then(|r| r.get("min.insync.replicas")).and_then(|e| e.value.clone());
    assert_eq!(min_isr.as_deref(), Some("2"), "{configs:?}");
    let consumer: BaseConsumer = client(c).create().unwrap();
    let replicas = tokio::task::spawn_blocking(move || {
        let md = consumer.fetch_metadata(Some(TOPIC), Duration::from_secs(10)).unwrap();
        md.topics()[0].partitions().iter().map(|p| (p.id(), p.replicas().to_vec())).collect::<BTreeMap<_, _>>()
    })
    .await
    .unwrap();
    assert_eq!(replicas.get(&0), Some(&vec![1, 2, 3]), "partition 0's preferred leader is node 1: {replicas:?}");
    assert_eq!(replicas.get(&1), Some(&vec![2, 3, 1]), "{replicas:?}");
    assert_eq!(replicas.len(), 3, "{replicas:?}");
}

fn producer(c: &Cluster, message_timeout: Duration) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", c.plan.bootstrap_servers())
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", message_timeout.as_millis().to_string())
        .create()
        .unwrap()
}

/// Sends `values[i]` to partition `partition_of(i)`, all at once; returns where each was
/// acknowledged (`None`: not acknowledged, with the error).
async fn produce(
    p: &FutureProducer,
    values: &[String],
    partition_of: impl Fn(usize) -> i32,
) -> Vec<Result<(i32, i64), String>> {
    let mut pending = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let record = FutureRecord::<(), str>::to(TOPIC).partition(partition_of(i)).payload(v.as_str());
        pending.push(p.send_result(record).map_err(|(e, _)| e.to_string()));
    }
    let mut out = Vec::new();
    for d in pending {
        out.push(match d {
            Err(e) => Err(e),
            Ok(fut) => match fut.await {
                Ok(Ok(d)) => Ok((d.partition, d.offset)),
                Ok(Err((e, _))) => Err(e.to_string()),
                Err(_) => Err("delivery future cancelled".into()),
            },
        });
    }
    out
}

/// Reads every partition from the beginning until every expected value was seen (or 60 s of
/// reading passed); returns each value with every place it was read at.
async fn read_all(c: &Cluster, expected: &BTreeMap<String, (i32, i64)>) -> BTreeMap<String, Vec<(i32, i64)>> {
    let config = client(c);
    let expected = expected.clone();
    tokio::task::spawn_blocking(move || {
        let reader = PartitionReader::start(config, TOPIC, &[0, 1, 2]).unwrap();
        let mut seen: BTreeMap<String, Vec<(i32, i64)>> = BTreeMap::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) && !expected.keys().all(|v| seen.contains_key(v)) {
            // Errors (a leader moving) are retried by librdkafka; keep polling.
            if let Ok(Some((partition, offset, payload))) = reader.poll(Duration::from_millis(200)) {
                seen.entry(String::from_utf8_lossy(&payload).into_owned()).or_default().push((partition, offset));
            }
        }
        // A little longer, to catch duplicates and strays past the expected values.
        let settle = Instant::now();
        while settle.elapsed() < Duration::from_secs(1) {
            if let Ok(Some((partition, offset, payload))) = reader.poll(Duration::from_millis(100)) {
                seen.entry(String::from_utf8_lossy(&payload).into_owned()).or_default().push((partition, offset));
            }
        }
        seen
    })
    .await
    .unwrap()
}

/// Every acknowledged value read exactly once, at its acknowledged place, and nothing else.
fn assert_read_once(acked: &BTreeMap<String, (i32, i64)>, seen: &BTreeMap<String, Vec<(i32, i64)>>, logs: &str) {
    let mut problems = Vec::new();
    for (v, at) in acked {
        match seen.get(v).map(Vec::as_slice) {
            Some([one]) if one == at => {}
            Some(places) => problems.push(format!("{v} acknowledged at {at:?}, read at {places:?}")),
            None => problems.push(format!("{v} acknowledged at {at:?}, never read")),
        }
    }
    for (v, places) in seen {
        if !acked.contains_key(v) {
            problems.push(format!("{v} read at {places:?} but never acknowledged"));
        }
    }
    assert!(problems.is_empty(), "{} problems:\n{}\n{logs}", problems.len(), problems.join("\n"));
}

/// Waits until node `id`'s admin API names a leader for partition 0 whose ISR has all three
/// replicas, as that leader reports it.
async fn await_full_isr(c: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut full = false;
        if let Some(leader) = c.supervisor.partition_leader(TOPIC, 0).await {
            if let Ok(status) = c.supervisor.node(leader).unwrap().admin().status().await {
                full = status.partitions.iter().any(|p| p.partition == 0 && p.isr.len() == 3);
            }
        }
        if full {
            return;
        }
        assert!(Instant::now() < deadline, "partition 0 never had all three replicas in sync\n{}", logs(c));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_are_read_once_and_survive_killing_a_leader() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, _toxi) = start(dir.path().to_path_buf(), &[]).await;
    create_topic(&cluster).await;

    // 300 values with acks=all and idempotence: every one acknowledged, read once in place.
    let p = producer(&cluster, Duration::from_secs(30));
    let values: Vec<String> = (0..300).map(|i| format!("v{i}")).collect();
    let results = produce(&p, &values, |i| (i % 3) as i32).await;
    let mut acked = BTreeMap::new();
    for (v, r) in values.iter().zip(&results) {
        let at = r.as_ref().unwrap_or_else(|e| panic!("{v} not acknowledged: {e}\n{}", logs(&cluster)));
        acked.insert(v.clone(), *at);
    }
    let seen = read_all(&cluster, &acked).await;
    assert_read_once(&acked, &seen, &logs(&cluster));

    // The log's record batches name the producer of each record (`record_origin`, the Fetch
    // the checker's duplicate rule reads): one idempotent producer, epoch 0, every place found.
    let nodes: Vec<_> = cluster.plan.nodes.iter().map(|n| n.advertised_kafka).collect();
    let places: BTreeSet<(i32, i64)> = acked.values().copied().step_by(7).collect();
    let origins = record_origin::ask(&nodes, TOPIC, &places, Duration::from_secs(3)).await;
    let found: BTreeSet<(i32, i64)> = origins.iter().map(|o| (o.partition, o.offset)).collect();
    assert_eq!(found, places, "{origins:?}");
    let pid = origins[0].producer_id;
    assert!(pid >= 0 && origins.iter().all(|o| o.producer_id == pid && o.producer_epoch == 0), "{origins:?}");

    // Kill partition 0's leader: writes to partition 0 succeed again (failover).
    let leader = cluster.supervisor.partition_leader(TOPIC, 0).await.expect("partition 0 has a leader");
    assert_eq!(leader, 1, "partition 0 starts on its preferred leader");
    cluster.supervisor.kill(leader).unwrap();
    let killed = Instant::now();
    let p = producer(&cluster, Duration::from_secs(5));
    let mut attempt = 0;
    loop {
        let v = format!("after-kill-{attempt}");
        attempt += 1;
        let r = produce(&p, std::slice::from_ref(&v), |_| 0).await.remove(0);
        if let Ok(at) = r {
            acked.insert(v, at);
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(15),
            "no write to partition 0 succeeded within 15 s of killing its leader: {r:?}\n{}",
            logs(&cluster)
        );
    }
    let new_leader = cluster.supervisor.partition_leader(TOPIC, 0).await;
    assert!(new_leader.is_some_and(|l| l != leader), "partition 0 moved to another node, got {new_leader:?}");

    // Values written while the old leader is down: acknowledged by the other two.
    let values: Vec<String> = (0..30).map(|i| format!("while-down-{i}")).collect();
    for (v, r) in values.iter().zip(produce(&p, &values, |i| (i % 3) as i32).await) {
        acked.insert(v.clone(), r.unwrap_or_else(|e| panic!("{v} not acknowledged with a node down: {e}")));
    }

    // Restart it on the same data directory: it catches up, and nothing acknowledged is lost.
    cluster.supervisor.restart(leader).unwrap();
    await_full_isr(&cluster).await;
    let seen = read_all(&cluster, &acked).await;
    assert_read_once(&acked, &seen, &logs(&cluster));
    cluster.teardown().await;
}

/// Cuts every WAL link, both ways: no follower gets a batch and no vote gets through (the
/// Raft links still show every node alive). Waits until partition 0's leader has only itself
/// in sync.
async fn cut_wal_links(c: &Cluster) -> u8 {
    let leader = c.supervisor.partition_leader(TOPIC, 0).await.expect("partition 0 has a leader");
    for proxy in c.plan.proxies.iter().filter(|p| matches!(p.kind, LinkKind::Wal { .. })) {
        for stream in [Stream::Upstream, Stream::Downstream] {
            let toxic = Toxic::new(ToxicKind::Timeout { timeout: 0 }, stream).with_toxicity(1.0);
            c.toxiproxy.create_toxic(&proxy.name, &toxic).await.unwrap();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = c.supervisor.node(leader).unwrap().admin().status().await.unwrap();
        let isr = status.partitions.iter().find(|p| p.partition == 0).map(|p| p.isr.clone());
        if isr == Some(vec![leader as u64]) {
            return leader;
        }
        assert!(Instant::now() < deadline, "partition 0's ISR never shrank to its leader: {isr:?}\n{}", logs(c));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One acks=all write to partition 0 with every WAL link cut.
async fn write_with_wal_cut(env: &[(&str, &str)]) -> (Result<(i32, i64), String>, String) {
    let dir = tempfile::tempdir().unwrap();
    let (cluster, _toxi) = start(dir.path().to_path_buf(), env).await;
    create_topic(&cluster).await;
    let p = producer(&cluster, Duration::from_secs(30));
    let warm = produce(&p, &["before".to_string()], |_| 0).await.remove(0);
    assert!(warm.is_ok(), "a write before the cut fails: {warm:?}\n{}", logs(&cluster));
    cut_wal_links(&cluster).await;
    let p = producer(&cluster, Duration::from_secs(6));
    let r = produce(&p, &["during-cut".to_string()], |_| 0).await.remove(0);
    let logs = logs(&cluster);
    cluster.teardown().await;
    (r, logs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_before_replication_acknowledges_what_the_correct_broker_refuses() {
    let (correct, logs) = write_with_wal_cut(&[]).await;
    assert!(correct.is_err(), "the correct broker acknowledged an acks=all write no follower got: {correct:?}\n{logs}");
    let (buggy, logs) = write_with_wal_cut(&[("STAND_IN_BUG", "ack-before-replication")]).await;
    assert!(buggy.is_ok(), "with the bug the leader acknowledges from its own log: {buggy:?}\n{logs}");
}
