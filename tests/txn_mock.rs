//! The transactional workload against librdkafka's mock cluster (a stand-in for Kafka brokers
//! inside the client library, not Chronik): it advertises the transaction APIs, the workload
//! commits and aborts transactions of several producers concurrently, the final read reaches
//! the closing transaction, and the history goes through `checker::txn`.
//!
//! The mock cluster accepts EndTxn but writes no transaction markers and reports no aborted
//! transactions in Fetch (librdkafka `rdkafka_mock_handlers.c`: EndTxn only checks the producer
//! id; Fetch answers LastStableOffset = log end and an empty aborted list), so under
//! `read_committed` it serves aborted records like committed ones. So no test here expects a
//! clean history: `the_mock_cluster_serves_aborted_records` checks every other property of a
//! healthy run, pins that behaviour (the checker catching it on a real run), and fails the day
//! the mock cluster learns transaction markers. A clean history against a server with markers
//! is the `txn-baseline` scenario against Chronik (docs/findings.md, finding 13).

use std::time::{Duration, Instant};

use chronik_chaos::checker::txn::{check, TxnReport};
use chronik_chaos::history::txn::{TxnHistory, TxnOutcome};
use chronik_chaos::txn_workload::{final_read, transactions_supported, TxnConfig, TxnRecorder, TxnWorkload};
use rdkafka::mocking::MockCluster;

/// Runs the workload for `run`, stops it, reads everything back and returns the history.
async fn run(
    mock: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>,
    topic: &str,
    run: Duration,
) -> TxnHistory {
    mock.create_topic(topic, 3, 3).unwrap();
    let cfg = TxnConfig::new(mock.bootstrap_servers(), topic);
    let support = transactions_supported(&cfg.bootstrap, Duration::from_secs(5)).await.unwrap();
    let rec = TxnRecorder::new(Instant::now());
    let wl = TxnWorkload::start(&cfg, rec.clone()).unwrap();
    tokio::time::sleep(run).await;
    let rec = wl.stop().await;
    let fr = final_read(&cfg, &rec, Duration::from_secs(20)).await.unwrap();
    rec.history(cfg.producers, support, fr)
}

fn summary(h: &TxnHistory, r: &TxnReport) -> String {
    format!(
        "committed {} aborted {} failed {} unknown {}; restarts {:?}; final read {:?}; findings {:#?}",
        r.committed,
        r.aborted,
        r.failed,
        r.unknown,
        h.restarts,
        h.final_read,
        r.findings()
    )
}

/// What a healthy run must show whatever the broker does with aborted records.
fn assert_healthy_run(h: &TxnHistory, r: &TxnReport) {
    assert!(r.applicable, "{:?}", r.missing_apis);
    assert!(r.committed >= 20 && r.aborted >= 5, "{}", summary(h, r));
    assert_eq!((r.failed, r.unknown), (0, 0), "{}", summary(h, r));
    // Aborts are deterministic: every 4th transaction of each producer.
    for t in &h.txns {
        let expected = if t.txn % 4 == 3 { TxnOutcome::Aborted } else { TxnOutcome::Committed };
        assert_eq!(t.outcome, expected, "t{}-{}", t.producer, t.txn);
        assert!((2..=4).contains(&t.writes.len()) || t.producer == h.producers, "t{}-{}", t.producer, t.txn);
        // Aborts are preceded by a flush: aborted writes are in the log too.
        assert!(t.writes.iter().all(|w| w.offset.is_some_and(|o| o >= 0)), "every write delivered: {t:?}");
    }
    // Transactions of different producers overlapped in time.
    assert!(h.txns.iter().any(|a| h.txns.iter().any(|b| a.producer != b.producer
        && a.invoked_us < b.completed_us.unwrap()
        && b.invoked_us < a.completed_us.unwrap())));
    assert!(h.final_read.closed && h.final_read.complete, "{:?}", h.final_read);
    assert_eq!(r.committed_values_read, r.committed_values, "every committed value read: {}", summary(h, r));
    assert!(!h.reads.is_empty(), "the live reader read during the run");
    assert!(r.partial.is_empty() && r.lost.is_empty() && r.misordered.is_empty(), "{}", summary(h, r));
    assert!(r.duplicated.is_empty() && r.inconsistent.is_empty() && r.phantom.is_empty(), "{}", summary(h, r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_cluster_advertises_transactions() {
    let mock = MockCluster::new(3).unwrap();
    let s = transactions_supported(&mock.bootstrap_servers(), Duration::from_secs(5)).await.unwrap();
    assert!(s.supported(), "{:?}: {:?}", s, s.missing());
    assert!(s.init_producer_id.is_some() && s.end_txn.is_some() && s.add_partitions_to_txn.is_some(), "{s:?}");
    // Nothing listening: an error that says so, never "unsupported".
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let e = transactions_supported(&closed.to_string(), Duration::from_secs(2)).await.unwrap_err();
    assert!(e.contains("connecting"), "{e}");
}

/// The mock cluster's limit, pinned: everything but aborted records behaves, and the checker
/// finds the aborted records the read_committed readers were served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_cluster_serves_aborted_records() {
    let mock = MockCluster::new(3).unwrap();
    let h = run(&mock, "txn-markers", Duration::from_secs(5)).await;
    let r = check(&h);
    assert_healthy_run(&h, &r);
    let aborted_values: usize =
        h.txns.iter().filter(|t| t.outcome == TxnOutcome::Aborted).map(|t| t.writes.len()).sum();
    let final_aborted = r.aborted_reads.iter().filter(|b| b.reader == "final").count();
    assert_eq!(
        final_aborted, aborted_values,
        "the mock cluster now hides aborted records: add a test that expects no violation at all"
    );
    assert!(r.findings()[0].contains("aborted or failed transactions"), "{:?}", r.findings());
}
