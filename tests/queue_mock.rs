//! The queue workload against librdkafka's mock cluster (a stand-in for Kafka brokers inside
//! the client library, not Chronik; it coordinates groups): members split the partitions,
//! consume every acknowledged write and commit in both modes, and the group rules find nothing
//! wrong in the history; keyed writes keep each key's order through produce and consumption.

use std::time::{Duration, Instant};

use chronik_chaos::checker::{check, group, keys};
use chronik_chaos::group_workload::{GroupConfig, GroupWorkload};
use chronik_chaos::history::group::{CommitMode, RebalanceKind};
use chronik_chaos::history::{History, TopicSettings};
use chronik_chaos::workload::{self, Recorder, Workload, WorkloadConfig};
use rdkafka::mocking::MockCluster;

fn config(bootstrap: String, topic: &str) -> WorkloadConfig {
    let mut cfg = WorkloadConfig::new(bootstrap, topic);
    cfg.rate_per_producer = 100.0;
    cfg.message_timeout = Duration::from_millis(3000);
    cfg
}

/// Producers and a group run for `run_for`; then the final read and the group's drain.
async fn run(cfg: &WorkloadConfig, g: &GroupConfig, run_for: Duration) -> History {
    let rec = Recorder::new(Instant::now());
    let wl = Workload::start(cfg, rec.clone()).unwrap();
    let members = GroupWorkload::start(cfg, g, rec.start()).unwrap();
    tokio::time::sleep(run_for).await;
    let rec = wl.stop().await;
    let (sends, live_reads) = rec.take();
    let topic = TopicSettings { name: cfg.topic.clone(), partitions: cfg.partitions, ..TopicSettings::default() };
    let mut h = History { ordered_producers: true, sends, reads: live_reads, topic, ..History::default() };
    let log_end = workload::log_ends(cfg, Duration::from_secs(5)).await;
    h.final_read = workload::final_read(cfg, &rec, h.highest_acked(), log_end, Duration::from_secs(20)).await.unwrap();
    h.reads.extend(rec.take().1);
    h.group = Some(members.drain(&h.final_read.targets, Duration::from_secs(30)).await);
    h
}

fn assert_clean(h: &History) -> group::GroupReport {
    let a = check(h);
    assert!(!a.safety_violated() && a.unseen.is_empty(), "{:?}", a.summary());
    let r = group::check(h, 30_000.0).expect("a group ran");
    assert_eq!(r.safety_violations(), 0, "{r:#?}");
    assert!(r.not_reached.is_empty(), "{:?}", r.not_reached);
    assert!(r.drained, "the drain reached every partition's end");
    assert!(r.convergence.converged_us.is_some(), "{:?}", r.convergence);
    assert!(r.consumed >= h.acked(), "consumed {} of {} acknowledged", r.consumed, h.acked());
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_split_the_partitions_and_consume_every_write_with_manual_commits() {
    let mock = MockCluster::new(3).unwrap();
    mock.create_topic("queue-manual", 3, 3).unwrap();
    let cfg = config(mock.bootstrap_servers(), "queue-manual");
    let g = GroupConfig { group_id: "chaos-manual".into(), members: 3, commit: CommitMode::Manual };
    let h = run(&cfg, &g, Duration::from_secs(8)).await;
    assert!(h.acked() >= 500, "acked {}", h.acked());
    let r = assert_clean(&h);
    let gh = h.group.as_ref().unwrap();
    // Every member was assigned something, the assignments were disjoint, and members polled.
    for c in 0..3 {
        assert!(gh.rebalances.iter().any(|e| e.consumer == c && e.kind == RebalanceKind::Assign), "member {c}");
        assert!(gh.rebalances.iter().all(|e| !e.member_id.is_empty() || e.kind != RebalanceKind::Assign));
    }
    assert!(gh.polls.iter().map(|p| p.consumer).collect::<std::collections::BTreeSet<_>>().len() >= 2);
    // Manual commits carry the time they were asked.
    assert!(r.commits_ok > 0, "{:?} {:?}", &gh.commits[..gh.commits.len().min(5)], gh.errors);
    assert!(gh.commits.iter().filter(|c| c.error.is_none()).all(|c| c.invoked_us.is_some_and(|i| i <= c.completed_us)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_commits_are_recorded_with_their_offsets() {
    let mock = MockCluster::new(3).unwrap();
    mock.create_topic("queue-auto", 3, 3).unwrap();
    let cfg = config(mock.bootstrap_servers(), "queue-auto");
    let g = GroupConfig { group_id: "chaos-auto".into(), members: 2, commit: CommitMode::Auto };
    let h = run(&cfg, &g, Duration::from_secs(6)).await;
    let r = assert_clean(&h);
    let gh = h.group.as_ref().unwrap();
    assert!(r.commits_ok > 0, "librdkafka committed on its own");
    assert!(gh.commits.iter().all(|c| c.invoked_us.is_none()), "automatic commits have no asking time");
    assert!(gh.commits.iter().any(|c| c.offsets.iter().any(|(_, o)| *o > 0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_writes_keep_each_keys_order_through_the_group() {
    let mock = MockCluster::new(3).unwrap();
    mock.create_topic("queue-keyed", 3, 3).unwrap();
    let mut cfg = config(mock.bootstrap_servers(), "queue-keyed");
    cfg.keys = Some(6);
    let g = GroupConfig { group_id: "chaos-keyed".into(), members: 2, commit: CommitMode::Manual };
    let h = run(&cfg, &g, Duration::from_secs(5)).await;
    assert_clean(&h);
    let k = keys::check(&h);
    assert_eq!(k.keys, 6);
    assert!(k.reorders.is_empty() && k.split_keys.is_empty(), "{k:?}");
    // The partitioner placed keys: more than one partition got writes.
    let parts: std::collections::BTreeSet<i32> = h.reads.iter().filter(|r| r.final_read).map(|r| r.partition).collect();
    assert!(parts.len() > 1, "{parts:?}");
}
