//! Consumer groups on the stand-in broker (`chronik-stand-in-node`, "chronik-chaos stand-in",
//! not Chronik): three nodes behind the embedded Toxiproxy and rdkafka consumers that
//! `subscribe`. Two members split a topic's partitions and read every record once; the member
//! left alone takes over the other's partitions at the committed offsets; a restarted (killed)
//! coordinator keeps committed offsets; and each group bug switch shows its fault:
//! `offset-fetch-ahead` makes a new member start 10 past the commit, `duplicate-assignment`
//! gives two members the same partitions.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chronik_chaos::cluster::Cluster;
use chronik_chaos::toxiproxy::server::EmbeddedServer;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

const TOPIC: &str = "queue";
const PARTITIONS: i32 = 3;

/// Every case starts a three-node cluster; on two cores, one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Generous: the machine is slow, and a rebalance waits for every member's next heartbeat.
const LIMIT: Duration = Duration::from_secs(90);

async fn start(run_dir: PathBuf, env: &[(&str, &str)]) -> (Cluster, EmbeddedServer) {
    support::start_standin(run_dir, env).await
}

/// The node logs, for a failure message.
fn logs(c: &Cluster) -> String {
    support::node_logs(c, 25)
}

fn client(c: &Cluster) -> ClientConfig {
    support::bootstrap_client(c)
}

async fn create_topic(c: &Cluster) {
    let admin: AdminClient<DefaultClientContext> = client(c).create().unwrap();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let topic = NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(3));
    let created = admin.create_topics([&topic], &opts).await.unwrap();
    assert!(matches!(created.as_slice(), [Ok(_)]), "{created:?}\n{}", logs(c));
}

/// Sends `v{i}` for every `i` in `range` to partition `i % 3` (acks=all); returns where each
/// was acknowledged. Every one must be.
async fn produce(c: &Cluster, range: std::ops::Range<usize>) -> BTreeMap<String, (i32, i64)> {
    let p: FutureProducer = client(c)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()
        .unwrap();
    let mut pending = Vec::new();
    for i in range {
        let v = format!("v{i}");
        let record = FutureRecord::<(), str>::to(TOPIC).partition(i as i32 % PARTITIONS).payload(v.as_str());
        let delivery = p.send_result(record).map_err(|(e, _)| e.to_string());
        pending.push((v, delivery));
    }
    let mut acked = BTreeMap::new();
    for (v, delivery) in pending {
        let at = match delivery {
            Ok(fut) => match fut.await {
                Ok(Ok(d)) => (d.partition, d.offset),
                Ok(Err((e, _))) => panic!("{v} not acknowledged: {e}\n{}", logs(c)),
                Err(_) => panic!("{v}: delivery future cancelled"),
            },
            Err(e) => panic!("{v} not sent: {e}"),
        };
        acked.insert(v, at);
    }
    acked
}

/// One record read: partition, offset, value.
type Read = (i32, i64, String);

/// One group member: an rdkafka consumer that subscribed to the topic, and what it read.
struct Member {
    name: &'static str,
    consumer: BaseConsumer,
    reads: Vec<Read>,
    errors: Vec<String>,
    /// Commit each record read (async), as a manual-commit consumer does.
    commit_each: bool,
}

/// How a member commits: librdkafka's auto-commit, or a commit per record read.
#[derive(Clone, Copy, PartialEq)]
enum Commits {
    Auto,
    EachRecord,
    /// Only what the test commits explicitly.
    Explicit,
}

impl Member {
    fn join(c: &Cluster, name: &'static str, group: &str, commits: Commits) -> Member {
        let consumer: BaseConsumer = client(c)
            .set("group.id", group)
            .set("client.id", name)
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", if commits == Commits::Auto { "true" } else { "false" })
            .set("auto.commit.interval.ms", "500")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500")
            .set("enable.partition.eof", "false")
            .create()
            .unwrap();
        consumer.subscribe(&[TOPIC]).unwrap();
        Member { name, consumer, reads: Vec::new(), errors: Vec::new(), commit_each: commits == Commits::EachRecord }
    }

    fn poll(&mut self, wait: Duration) {
        match self.consumer.poll(wait) {
            None => {}
            Some(Err(e)) => self.errors.push(e.to_string()),
            Some(Ok(m)) => {
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                self.reads.push((m.partition(), m.offset(), value));
                if self.commit_each {
                    if let Err(e) = self.consumer.commit_message(&m, CommitMode::Async) {
                        self.errors.push(format!("commit: {e}"));
                    }
                }
            }
        }
    }

    fn assignment(&self) -> BTreeSet<i32> {
        let tpl = self.consumer.assignment().unwrap();
        tpl.elements().iter().map(|e| e.partition()).collect()
    }

    /// Commits `offset` (the next record to read) for each partition, synchronously.
    fn commit(&self, offsets: &BTreeMap<i32, i64>) {
        let mut tpl = TopicPartitionList::new();
        for (p, o) in offsets {
            tpl.add_partition_offset(TOPIC, *p, Offset::Offset(*o)).unwrap();
        }
        self.consumer
            .commit(&tpl, CommitMode::Sync)
            .unwrap_or_else(|e| panic!("{} commit {offsets:?}: {e}", self.name));
    }

    /// Commits the positions reached, synchronously ("no offset" when all are committed).
    fn commit_positions(&self) {
        match self.consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => panic!("{} commit: {e}", self.name),
        }
    }

    /// Each partition's offsets read, in order.
    fn offsets(&self) -> BTreeMap<i32, Vec<i64>> {
        let mut out: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
        for (p, o, _) in &self.reads {
            out.entry(*p).or_default().push(*o);
        }
        out
    }

    fn describe(&self) -> String {
        let errors = &self.errors[self.errors.len().saturating_sub(5)..];
        format!("{}: assigned {:?}, read {:?}, last errors {errors:?}", self.name, self.assignment(), self.offsets())
    }
}

/// Polls every member in turn until `done` holds (true) or `LIMIT` passes (false). Blocking:
/// call it through `block_in_place`.
fn poll_until(members: &mut [&mut Member], mut done: impl FnMut(&[&mut Member]) -> bool) -> bool {
    let started = Instant::now();
    loop {
        for m in members.iter_mut() {
            m.poll(Duration::from_millis(50));
        }
        if done(members) {
            return true;
        }
        if started.elapsed() > LIMIT {
            return false;
        }
    }
}

/// Polls for `settle` more, so a rebalance under way shows.
fn poll_for(members: &mut [&mut Member], settle: Duration) {
    let started = Instant::now();
    while started.elapsed() < settle {
        for m in members.iter_mut() {
            m.poll(Duration::from_millis(50));
        }
    }
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Polls until every member has partitions, then a little longer; returns the assignments.
fn await_assignments(c: &Cluster, members: &mut [&mut Member]) -> Vec<BTreeSet<i32>> {
    let all_assigned = poll_until(members, |ms| ms.iter().all(|m| !m.assignment().is_empty()));
    let state: Vec<String> = members.iter().map(|m| m.describe()).collect();
    assert!(all_assigned, "not every member got partitions: {state:#?}\n{}", logs(c));
    poll_for(members, Duration::from_secs(3));
    members.iter().map(|m| m.assignment()).collect()
}

/// The group's committed offsets, as OffsetFetch answers them (-1: none), from a client
/// that does not join the group.
fn committed(c: &Cluster, group: &str) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = client(c).set("group.id", group).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(TOPIC, p);
    }
    let started = Instant::now();
    loop {
        match consumer.committed_offsets(tpl.clone(), Duration::from_secs(10)) {
            Ok(got) => {
                return got
                    .elements()
                    .iter()
                    .map(|e| (e.partition(), if let Offset::Offset(o) = e.offset() { o } else { -1 }))
                    .collect()
            }
            Err(e) => assert!(started.elapsed() < LIMIT, "no committed offsets for {group}: {e}\n{}", logs(c)),
        }
    }
}

/// The records of `acked` on `partition` from `from` on, as (offset, value).
fn expected_from(acked: &BTreeMap<String, (i32, i64)>, partition: i32, from: i64) -> Vec<(i64, String)> {
    let mut out: Vec<(i64, String)> =
        acked.iter().filter(|(_, (p, o))| *p == partition && *o >= from).map(|(v, (_, o))| (*o, v.clone())).collect();
    out.sort();
    out
}

/// What `reads` holds for `partition`, as (offset, value), in read order.
fn read_on(reads: &[Read], partition: i32) -> Vec<(i64, String)> {
    reads.iter().filter(|(p, _, _)| *p == partition).map(|(_, o, v)| (*o, v.clone())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_split_the_partitions_and_the_survivor_resumes_at_the_commits() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (cluster, _toxi) = start(dir.path().to_path_buf(), &[]).await;
    create_topic(&cluster).await;
    const GROUP: &str = "split";

    // (a) Two members, one auto-committing and one committing each record, share the topic.
    let mut a = Member::join(&cluster, "a", GROUP, Commits::Auto);
    let mut b = Member::join(&cluster, "b", GROUP, Commits::EachRecord);
    let split = blocking(|| await_assignments(&cluster, &mut [&mut a, &mut b]));
    let (mine, theirs) = (&split[0], &split[1]);
    assert!(mine.is_disjoint(theirs), "one partition owned twice: a {mine:?}, b {theirs:?}\n{}", logs(&cluster));
    let union: BTreeSet<i32> = mine.union(theirs).copied().collect();
    assert_eq!(union, (0..PARTITIONS).collect(), "a partition owned by no one: a {mine:?}, b {theirs:?}");

    let acked = produce(&cluster, 0..300).await;
    let read_all =
        blocking(|| poll_until(&mut [&mut a, &mut b], |ms| ms.iter().map(|m| m.reads.len()).sum::<usize>() >= 300));
    poll_for_both(&mut a, &mut b);
    assert!(read_all, "not every record read:\n{}\n{}\n{}", a.describe(), b.describe(), logs(&cluster));
    for (m, owned) in [(&a, mine), (&b, theirs)] {
        for p in 0..PARTITIONS {
            let want = if owned.contains(&p) { expected_from(&acked, p, 0) } else { Vec::new() };
            assert_eq!(read_on(&m.reads, p), want, "{} on partition {p}: {}", m.name, m.describe());
        }
    }

    // Their commits: both members' positions, every partition at its end (100).
    blocking(|| {
        a.commit_positions();
        b.commit_positions();
    });
    let ends: BTreeMap<i32, i64> = (0..PARTITIONS).map(|p| (p, 100)).collect();
    assert_eq!(blocking(|| committed(&cluster, GROUP)), ends, "{}", logs(&cluster));

    // (b) b commits only half of its partitions' records, then leaves: a takes over every
    // partition and resumes at the commits, re-reading b's uncommitted half and nothing else.
    let half: BTreeMap<i32, i64> = theirs.iter().map(|p| (*p, 50)).collect();
    blocking(|| b.commit(&half));
    let mut at_takeover = ends.clone();
    at_takeover.extend(half.clone());
    assert_eq!(blocking(|| committed(&cluster, GROUP)), at_takeover);
    let before = a.reads.len();
    blocking(move || drop(b));
    let took_over = blocking(|| poll_until(&mut [&mut a], |ms| ms[0].assignment().len() == PARTITIONS as usize));
    assert!(took_over, "a never got every partition: {}\n{}", a.describe(), logs(&cluster));
    let more = produce(&cluster, 300..360).await;
    let mut all = acked.clone();
    all.extend(more);
    let want: usize = at_takeover.iter().map(|(p, from)| expected_from(&all, *p, *from).len()).sum();
    let caught_up = blocking(|| poll_until(&mut [&mut a], |ms| ms[0].reads.len() - before >= want));
    blocking(|| poll_for(&mut [&mut a], Duration::from_secs(2)));
    assert!(caught_up, "a read {} of {want} records after the takeover: {}", a.reads.len() - before, a.describe());
    let after = &a.reads[before..];
    for (p, from) in &at_takeover {
        assert_eq!(read_on(after, *p), expected_from(&all, *p, *from), "a on partition {p} after the takeover");
    }
    blocking(move || drop(a));
    cluster.teardown().await;
}

/// A little more polling of both, to catch a record read twice.
fn poll_for_both(a: &mut Member, b: &mut Member) {
    blocking(|| poll_for(&mut [a, b], Duration::from_secs(2)));
}

/// One member commits offset 40 on every partition and leaves; (with `restart`, the
/// coordinator, node 1, is then killed and started again;) a new member of the group reads.
/// Returns the committed offsets a third client sees and the new member's offsets read.
async fn resume_after_commit(env: &[(&str, &str)], restart: bool) -> (BTreeMap<i32, i64>, BTreeMap<i32, Vec<i64>>) {
    let dir = tempfile::tempdir().unwrap();
    let (mut cluster, _toxi) = start(dir.path().to_path_buf(), env).await;
    create_topic(&cluster).await;
    const GROUP: &str = "resume";
    let acked = produce(&cluster, 0..300).await;

    let mut first = Member::join(&cluster, "first", GROUP, Commits::Explicit);
    let whole = blocking(|| await_assignments(&cluster, &mut [&mut first]));
    assert_eq!(whole[0], (0..PARTITIONS).collect(), "a lone member owns every partition");
    let forty: BTreeMap<i32, i64> = (0..PARTITIONS).map(|p| (p, 40)).collect();
    blocking(|| first.commit(&forty));
    blocking(move || drop(first));

    if restart {
        // Node 1, the lowest id, coordinates every group: a crash, then the same data dir.
        cluster.supervisor.kill(1).unwrap();
        cluster.supervisor.start(1).unwrap();
        cluster.supervisor.wait_ready(Duration::from_secs(60)).await.unwrap();
    }
    let seen = blocking(|| committed(&cluster, GROUP));

    let mut next = Member::join(&cluster, "next", GROUP, Commits::Explicit);
    let ends: BTreeMap<i32, i64> =
        (0..PARTITIONS).map(|p| (p, expected_from(&acked, p, 0).last().map_or(0, |(o, _)| o + 1))).collect();
    let done = blocking(|| {
        poll_until(&mut [&mut next], |ms| {
            let read = ms[0].offsets();
            ends.iter().all(|(p, end)| read.get(p).and_then(|o| o.last()).is_some_and(|last| last + 1 >= *end))
        })
    });
    blocking(|| poll_for(&mut [&mut next], Duration::from_secs(2)));
    assert!(done, "the new member did not read to the end: {}\n{}", next.describe(), logs(&cluster));
    let read = next.offsets();
    blocking(move || drop(next));
    cluster.teardown().await;
    (seen, read)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_coordinator_keeps_the_committed_offsets() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (seen, read) = resume_after_commit(&[], true).await;
    assert_eq!(seen, (0..PARTITIONS).map(|p| (p, 40)).collect(), "committed offsets after the restart");
    for p in 0..PARTITIONS {
        // It resumes at the commit and reads on to the end. (Right after the restart the
        // partition's leadership may move, and a fetch may be served again: a record read
        // twice is redelivery, not a wrong resume point, so it is not what this test is about.)
        let got = read.get(&p).cloned().unwrap_or_default();
        assert_eq!(got.first(), Some(&40), "partition {p}: resumes at the commit: {got:?}");
        let distinct: std::collections::BTreeSet<i64> = got.iter().copied().collect();
        assert_eq!(distinct, (40..100).collect(), "partition {p}: reads on from the commit: {got:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_fetch_ahead_makes_a_new_member_skip_ten_records() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let (seen, read) = resume_after_commit(&[("STAND_IN_BUG", "offset-fetch-ahead")], false).await;
    assert_eq!(seen, (0..PARTITIONS).map(|p| (p, 50)).collect(), "OffsetFetch answers 40 + 10");
    for p in 0..PARTITIONS {
        assert_eq!(read.get(&p), Some(&(50..100).collect::<Vec<i64>>()), "partition {p}: records 40..50 skipped");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_assignment_gives_two_members_the_same_partitions() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (cluster, _toxi) = start(dir.path().to_path_buf(), &[("STAND_IN_BUG", "duplicate-assignment")]).await;
    create_topic(&cluster).await;
    let mut a = Member::join(&cluster, "a", "dup", Commits::Auto);
    let mut b = Member::join(&cluster, "b", "dup", Commits::Auto);
    let split = blocking(|| await_assignments(&cluster, &mut [&mut a, &mut b]));
    let shared: BTreeSet<i32> = split[0].intersection(&split[1]).copied().collect();
    assert!(!shared.is_empty(), "the bug gave disjoint assignments: a {:?}, b {:?}", split[0], split[1]);
    assert_eq!(split[0], split[1], "both hold the leader's share");
    let union: BTreeSet<i32> = split[0].union(&split[1]).copied().collect();
    assert_ne!(union, (0..PARTITIONS).collect(), "with range over two members, a partition has no owner");
    blocking(move || drop((a, b)));
    cluster.teardown().await;
}
