//! The Kafka workload (rdkafka): creates the test topic (with `min.insync.replicas` set, then
//! read back), runs producers with `acks=all` that enqueue unique values in sequence order and
//! record every send as invoke → ok / fail / info (librdkafka's persistence status decides fail
//! versus indeterminate; the broker that answered is kept), a reader that polls during the run,
//! and the final read to the log end after every fault is healed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::bindings as rd;
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientConfig;
use tokio_util::sync::CancellationToken;

use crate::history::{value_of, FinalRead, KeySeq, Outcome, Read, ReaderEvent, Send, Setting, TopicSettings};
use crate::partition_reader::PartitionReader;

/// What the workload does.
#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    pub bootstrap: String,
    pub topic: String,
    pub partitions: i32,
    pub replication_factor: i32,
    /// Set on the topic at creation (`min.insync.replicas`), then read back.
    pub min_insync_replicas: i32,
    pub producers: u32,
    /// Sends per second, per producer.
    pub rate_per_producer: f64,
    pub idempotence: bool,
    /// A send with no answer after this long is indeterminate (`info`).
    pub message_timeout: Duration,
    /// Extra librdkafka settings for every client.
    pub client_extra: Vec<(String, String)>,
    /// Keyed writes: this many keys (`k0`, `k1`, ...), key `kN` written only by producer
    /// `N mod producers`, each with its own sequence; the partition comes from the key
    /// (librdkafka's `murmur2_random`, as Java clients hash). `None`: unkeyed, round robin.
    pub keys: Option<u32>,
}

impl WorkloadConfig {
    pub fn new(bootstrap: impl Into<String>, topic: impl Into<String>) -> WorkloadConfig {
        WorkloadConfig {
            bootstrap: bootstrap.into(),
            topic: topic.into(),
            partitions: 3,
            replication_factor: 3,
            min_insync_replicas: 2,
            producers: 2,
            rate_per_producer: 50.0,
            idempotence: true,
            message_timeout: Duration::from_secs(10),
            client_extra: Vec::new(),
            keys: None,
        }
    }

    pub(crate) fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap).set("client.id", "chronik-chaos");
        for (k, v) in &self.client_extra {
            c.set(k, v);
        }
        c
    }
}

/// Where every operation is recorded, with µs since `start`.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    sends: Mutex<Vec<Send>>,
    reads: Mutex<Vec<Read>>,
    reader_events: Mutex<Vec<ReaderEvent>>,
}

impl Recorder {
    pub fn new(start: Instant) -> Arc<Recorder> {
        Arc::new(Recorder {
            start,
            sends: Mutex::new(Vec::new()),
            reads: Mutex::new(Vec::new()),
            reader_events: Mutex::new(Vec::new()),
        })
    }

    pub fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    fn send(&self, s: Send) {
        self.sends.lock().unwrap().push(s);
    }

    fn read(&self, r: Read) {
        self.reads.lock().unwrap().push(r);
    }

    fn reader_event(&self, e: ReaderEvent) {
        self.reader_events.lock().unwrap().push(e);
    }

    /// Reader errors recorded so far (taken out).
    pub fn take_reader_events(&self) -> Vec<ReaderEvent> {
        std::mem::take(&mut *self.reader_events.lock().unwrap())
    }

    /// Acknowledged writes so far (for progress lines).
    pub fn acked(&self) -> usize {
        self.sends.lock().unwrap().iter().filter(|s| matches!(s.outcome, Outcome::Ok { .. })).count()
    }

    /// Everything recorded, sorted by time.
    pub fn take(&self) -> (Vec<Send>, Vec<Read>) {
        let mut sends = std::mem::take(&mut *self.sends.lock().unwrap());
        let mut reads = std::mem::take(&mut *self.reads.lock().unwrap());
        sends.sort_by_key(|s| (s.invoked_us, s.producer, s.seq));
        reads.sort_by_key(|r| r.at_us);
        (sends, reads)
    }
}

/// Creates the topic, with `min.insync.replicas` set when `with_min_isr`; an existing topic with
/// that name is accepted.
pub async fn create_topic(cfg: &WorkloadConfig, with_min_isr: bool, timeout: Duration) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = cfg.client().create().map_err(|e| format!("admin client: {e}"))?;
    let min_isr = cfg.min_insync_replicas.to_string();
    let mut topic = NewTopic::new(&cfg.topic, cfg.partitions, TopicReplication::Fixed(cfg.replication_factor));
    if with_min_isr {
        topic = topic.set("min.insync.replicas", &min_isr);
    }
    let opts = AdminOptions::new().operation_timeout(Some(timeout)).request_timeout(Some(timeout));
    let results =
        admin.create_topics([&topic], &opts).await.map_err(|e| format!("creating topic {}: {e}", cfg.topic))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => return Err(format!("creating topic {t}: {code}")),
        }
    }
    Ok(())
}

/// The topic's settings as the cluster reports them: replication factor and replicas from
/// Metadata, `min.insync.replicas` from DescribeConfigs. What it will not say stays `None`;
/// `min_isr_requested` says whether the topic was created with the setting.
pub async fn read_topic_settings(cfg: &WorkloadConfig, min_isr_requested: bool, timeout: Duration) -> TopicSettings {
    let mut t = TopicSettings {
        name: cfg.topic.clone(),
        partitions: cfg.partitions,
        replication_factor: Setting { requested: Some(cfg.replication_factor as i64), read_back: None },
        min_insync_replicas: Setting {
            requested: min_isr_requested.then_some(cfg.min_insync_replicas as i64),
            read_back: None,
        },
        replicas: BTreeMap::new(),
    };
    let (client, topic) = (cfg.client(), cfg.topic.clone());
    let md = tokio::task::spawn_blocking(move || -> Option<BTreeMap<i32, Vec<u8>>> {
        let consumer: BaseConsumer = client.create().ok()?;
        let md = consumer.fetch_metadata(Some(&topic), timeout).ok()?;
        let t = md.topics().iter().find(|t| t.name() == topic)?;
        Some(
            t.partitions()
                .iter()
                .map(|p| (p.id(), p.replicas().iter().filter_map(|r| u8::try_from(*r).ok()).collect()))
                .collect(),
        )
    })
    .await
    .ok()
    .flatten();
    if let Some(replicas) = md {
        let counts: std::collections::BTreeSet<usize> = replicas.values().map(Vec::len).collect();
        if counts.len() == 1 && !counts.contains(&0) {
            t.replication_factor.read_back = counts.into_iter().next().map(|n| n as i64);
        }
        t.replicas = replicas.into_iter().filter(|(_, r)| !r.is_empty()).collect();
    }
    if let Ok(admin) = cfg.client().create::<AdminClient<DefaultClientContext>>() {
        let opts = AdminOptions::new().request_timeout(Some(timeout));
        let spec = ResourceSpecifier::Topic(&cfg.topic);
        // A server may answer with no resource at all: then it did not say.
        if let Ok(Ok(Some(Ok(res)))) = tokio::time::timeout(timeout, admin.describe_configs([&spec], &opts))
            .await
            .map(|r| r.map(|v| v.into_iter().next()))
        {
            t.min_insync_replicas.read_back =
                res.get("min.insync.replicas").and_then(|e| e.value.as_deref()).and_then(|v| v.parse().ok());
        }
    }
    t
}

/// The leader of each partition of the topic, from a Metadata request through the proxies.
pub async fn partition_leaders(cfg: &WorkloadConfig, timeout: Duration) -> Result<BTreeMap<i32, i32>, String> {
    let client = cfg.client();
    let topic = cfg.topic.clone();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = client.create().map_err(|e| format!("metadata client: {e}"))?;
        let md = consumer.fetch_metadata(Some(&topic), timeout).map_err(|e| format!("metadata for {topic}: {e}"))?;
        let t =
            md.topics().iter().find(|t| t.name() == topic).ok_or_else(|| format!("topic {topic} not in metadata"))?;
        Ok(t.partitions().iter().map(|p| (p.id(), p.leader())).collect())
    })
    .await
    .map_err(|e| format!("metadata task: {e}"))?
}

/// A workload's running tasks and the token that stops them. Dropped without `stop` (a
/// scenario that ended early), it cancels at once: the tasks must not go on writing to proxy
/// addresses the next scenario re-creates.
#[derive(Default)]
pub(crate) struct Tasks {
    stop: CancellationToken,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Tasks {
    /// The token the tasks watch.
    pub(crate) fn token(&self) -> CancellationToken {
        self.stop.clone()
    }

    pub(crate) fn push(&mut self, handle: tokio::task::JoinHandle<()>) {
        self.handles.push(handle);
    }

    /// Cancels and waits for every task to end.
    pub(crate) async fn stop(&mut self) {
        self.stop.cancel();
        for t in std::mem::take(&mut self.handles) {
            let _ = t.await;
        }
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Running producers and the live consumer.
pub struct Workload {
    tasks: Tasks,
    recorder: Arc<Recorder>,
}

impl Workload {
    /// Starts `cfg.producers` producers and one live consumer, recording into `recorder`.
    pub fn start(cfg: &WorkloadConfig, recorder: Arc<Recorder>) -> Result<Workload, String> {
        let mut tasks = Tasks::default();
        let stop = tasks.token();
        for p in 0..cfg.producers {
            let mut c = cfg.client();
            c.set("acks", "all")
                .set("enable.idempotence", if cfg.idempotence { "true" } else { "false" })
                .set("message.timeout.ms", cfg.message_timeout.as_millis().to_string())
                .set("linger.ms", "0");
            if cfg.keys.is_some() {
                c.set("partitioner", "murmur2_random");
            }
            if !cfg.idempotence {
                // Keep each producer's order without idempotence: one request at a time.
                c.set("max.in.flight.requests.per.connection", "1");
            }
            let producer: ThreadedProducer<Delivery> =
                c.create_with_context(Delivery { rec: recorder.clone() }).map_err(|e| format!("producer {p}: {e}"))?;
            tasks.push(tokio::spawn(produce_loop(p, producer, cfg.clone(), recorder.clone(), stop.clone())));
        }
        let reader = reader(cfg, "live")?;
        tasks.push(tokio::spawn(consume_loop(reader, recorder.clone(), stop.clone())));
        Ok(Workload { tasks, recorder })
    }

    /// Stops sending, waits for every outstanding send to resolve (or time out), stops the
    /// live consumer. (Dropped without this, it stops at once: see [`Tasks`].)
    pub async fn stop(mut self) -> Arc<Recorder> {
        self.tasks.stop().await;
        self.recorder.clone()
    }
}

/// One send waiting for its delivery report.
struct Pending {
    producer: u32,
    seq: u64,
    value: String,
    invoked_us: u64,
    key: Option<KeySeq>,
}

/// The producers' context: librdkafka calls `delivery` once per send, on its own thread,
/// with the message's persistence status and the broker that answered.
struct Delivery {
    rec: Arc<Recorder>,
}

impl ClientContext for Delivery {}

impl ProducerContext for Delivery {
    type DeliveryOpaque = Box<Pending>;

    fn delivery(&self, result: &DeliveryResult<'_>, p: Box<Pending>) {
        let completed_us = Some(self.rec.now_us());
        let (outcome, broker) = match result {
            Ok(m) => {
                // SAFETY: `m.ptr()` is the live message librdkafka hands to this callback.
                let broker = unsafe { rd::rd_kafka_message_broker_id(m.ptr()) };
                (Outcome::Ok { partition: m.partition(), offset: m.offset() }, broker)
            }
            Err((e, m)) => {
                // SAFETY: as above.
                let (status, broker) =
                    unsafe { (rd::rd_kafka_message_status(m.ptr()), rd::rd_kafka_message_broker_id(m.ptr())) };
                (classify(e, status), broker)
            }
        };
        self.rec.send(Send {
            producer: p.producer,
            seq: p.seq,
            value: p.value,
            invoked_us: p.invoked_us,
            completed_us,
            outcome,
            broker: (broker >= 0).then_some(broker),
            key: p.key,
        });
    }
}

/// Enqueues one send per tick, synchronously and in sequence order, so that librdkafka sees a
/// producer's values in the order of their sequence numbers; delivery is recorded apart.
async fn produce_loop(
    p: u32,
    producer: ThreadedProducer<Delivery>,
    cfg: WorkloadConfig,
    rec: Arc<Recorder>,
    stop: CancellationToken,
) {
    let interval = Duration::from_secs_f64(1.0 / cfg.rate_per_producer.max(0.001));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    let mut keys = Keys::of_producer(p, cfg.producers, cfg.keys);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let value = value_of(p, seq);
        let key = keys.as_mut().map(Keys::next);
        let invoked_us = rec.now_us();
        let key_name = key.as_ref().map(|k| k.key.clone());
        let pending = Box::new(Pending { producer: p, seq, value: value.clone(), invoked_us, key });
        let record = BaseRecord::<str, str, Box<Pending>>::with_opaque_to(&cfg.topic, pending).payload(value.as_str());
        let record = match &key_name {
            Some(k) => record.key(k.as_str()),
            None => record.partition((seq % cfg.partitions.max(1) as u64) as i32),
        };
        if let Err((e, record)) = producer.send(record) {
            // Not enqueued (e.g. the local queue is full): definitely not written.
            let p = record.delivery_opaque;
            rec.send(Send {
                producer: p.producer,
                seq: p.seq,
                value: p.value,
                invoked_us: p.invoked_us,
                completed_us: Some(rec.now_us()),
                outcome: Outcome::Fail { error: format!("not enqueued: {e}") },
                broker: None,
                key: p.key,
            });
        }
        seq += 1;
    }
    // Every enqueued send resolves by message.timeout.ms; wait for that (and a margin).
    let wait = cfg.message_timeout + Duration::from_secs(5);
    let _ = tokio::task::spawn_blocking(move || {
        let _ = producer.flush(wait);
        drop(producer);
    })
    .await;
}

/// One producer's keys in keyed mode: the keys it owns, taken in turn, each with its own
/// sequence.
#[derive(Debug)]
struct Keys {
    owned: Vec<u32>,
    next: usize,
    seqs: BTreeMap<u32, u64>,
}

impl Keys {
    /// Producer `p` of `producers` owns keys `k` with `k mod producers == p` (`None`: unkeyed,
    /// or no key falls to it).
    fn of_producer(p: u32, producers: u32, keys: Option<u32>) -> Option<Keys> {
        let owned: Vec<u32> = (0..keys?).filter(|k| k % producers.max(1) == p).collect();
        (!owned.is_empty()).then(|| Keys { owned, next: 0, seqs: BTreeMap::new() })
    }

    fn next(&mut self) -> KeySeq {
        let k = self.owned[self.next % self.owned.len()];
        self.next += 1;
        let seq = self.seqs.entry(k).or_insert(0);
        let out = KeySeq { key: format!("k{k}"), seq: *seq };
        *seq += 1;
        out
    }
}

/// A failed send is a definite failure only when librdkafka says the message was not
/// persisted (never sent, or rejected outright by the broker); a possibly persisted one
/// (timeouts after sending, lost connections, not-enough-replicas-after-append) is
/// indeterminate.
pub fn classify(e: &KafkaError, status: rd::rd_kafka_msg_status_t) -> Outcome {
    let error = e.to_string();
    if status == rd::rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_NOT_PERSISTED {
        Outcome::Fail { error }
    } else {
        Outcome::Info { error }
    }
}

/// A reader of every partition from the beginning with no consumer group (see
/// `partition_reader.rs` for why not `assign`).
fn reader(cfg: &WorkloadConfig, role: &str) -> Result<PartitionReader, String> {
    let partitions: Vec<i32> = (0..cfg.partitions).collect();
    PartitionReader::start(cfg.client(), &cfg.topic, &partitions).map_err(|e| format!("{role} reader: {e}"))
}

async fn consume_loop(reader: PartitionReader, rec: Arc<Recorder>, stop: CancellationToken) {
    let reader = Arc::new(reader);
    while !stop.is_cancelled() {
        let (c, r) = (reader.clone(), rec.clone());
        let batch = tokio::task::spawn_blocking(move || poll_batch(&c, &r, false, Duration::from_millis(100)).0).await;
        if batch.is_err() {
            break;
        }
    }
}

/// Polls up to 500 messages (or until `wait` passes without one); records them, and records an
/// error a partition gave instead of a record as a reader event. Returns the places read and
/// the first error, if any.
fn poll_batch(
    reader: &PartitionReader,
    rec: &Recorder,
    final_read: bool,
    wait: Duration,
) -> (Vec<(i32, i64)>, Option<String>) {
    let mut seen = Vec::new();
    for _ in 0..500 {
        match reader.poll(wait) {
            Ok(Some((partition, offset, payload))) => {
                let value = String::from_utf8_lossy(&payload).into_owned();
                rec.read(Read { partition, offset, value, at_us: rec.now_us(), final_read });
                seen.push((partition, offset));
            }
            Ok(None) => break,
            Err((partition, error)) => {
                rec.reader_event(ReaderEvent { at_us: rec.now_us(), final_read, partition, error: error.clone() });
                return (seen, Some(error));
            }
        }
    }
    (seen, None)
}

/// The high watermark of each partition (the log end) as its leader reports it; `None` for a
/// partition whose leader would not say.
pub async fn log_ends(cfg: &WorkloadConfig, timeout: Duration) -> BTreeMap<i32, Option<i64>> {
    let (client, topic, partitions) = (cfg.client(), cfg.topic.clone(), cfg.partitions);
    tokio::task::spawn_blocking(move || {
        let consumer: Option<BaseConsumer> = client.create().ok();
        (0..partitions)
            .map(|p| {
                (p, consumer.as_ref().and_then(|c| c.fetch_watermarks(&topic, p, timeout).ok()).map(|(_, high)| high))
            })
            .collect()
    })
    .await
    .unwrap_or_default()
}

/// The final read: a fresh reader, every partition from the beginning, until each reaches its
/// target (the last offset of its log, by `log_end`; else its highest acknowledged offset) or
/// `deadline` passes.
pub async fn final_read(
    cfg: &WorkloadConfig,
    rec: &Arc<Recorder>,
    highest_acked: BTreeMap<i32, i64>,
    log_end: BTreeMap<i32, Option<i64>>,
    deadline: Duration,
) -> Result<FinalRead, String> {
    let targets: BTreeMap<i32, i64> = (0..cfg.partitions)
        .map(|p| match log_end.get(&p).copied().flatten() {
            Some(end) => (p, end - 1),
            None => (p, highest_acked.get(&p).copied().unwrap_or(-1)),
        })
        .collect();
    let consumer = Arc::new(reader(cfg, "final")?);
    let started = Instant::now();
    let mut reached: BTreeMap<i32, i64> = BTreeMap::new();
    let mut errors: Vec<String> = Vec::new();
    let done =
        |reached: &BTreeMap<i32, i64>| targets.iter().all(|(p, t)| *t < 0 || reached.get(p).is_some_and(|r| r >= t));
    while !done(&reached) && started.elapsed() < deadline {
        let (c, r) = (consumer.clone(), rec.clone());
        let (seen, error) = tokio::task::spawn_blocking(move || poll_batch(&c, &r, true, Duration::from_millis(200)))
            .await
            .map_err(|e| format!("final read task: {e}"))?;
        for (p, o) in seen {
            let e = reached.entry(p).or_insert(o);
            *e = (*e).max(o);
        }
        if let Some(e) = error {
            if errors.len() < 10 && !errors.contains(&e) {
                errors.push(e);
            }
        }
    }
    Ok(FinalRead { complete: done(&reached), targets, log_end, reached, errors, per_node_log_end: BTreeMap::new() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rd::rd_kafka_msg_status_t as S;

    #[test]
    fn each_key_has_one_producer_and_its_own_sequence() {
        let mut a = Keys::of_producer(0, 2, Some(5)).unwrap();
        let mut b = Keys::of_producer(1, 2, Some(5)).unwrap();
        let got: Vec<(String, u64)> = (0..4).map(|_| a.next()).map(|k| (k.key, k.seq)).collect();
        let want = [("k0", 0), ("k2", 0), ("k4", 0), ("k0", 1)];
        assert_eq!(got, want.map(|(k, s)| (k.to_string(), s)));
        assert_eq!(b.next(), KeySeq { key: "k1".into(), seq: 0 });
        // Fewer keys than producers: the last producer owns none; unkeyed: no keys at all.
        assert!(Keys::of_producer(2, 3, Some(2)).is_none());
        assert!(Keys::of_producer(0, 2, None).is_none());
    }

    #[test]
    fn librdkafkas_persistence_status_decides_fail_versus_indeterminate() {
        let timeout = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        assert!(matches!(classify(&timeout, S::RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED), Outcome::Info { .. }));
        // Timed out in the local queue, never sent: definitely not written.
        assert!(matches!(classify(&timeout, S::RD_KAFKA_MSG_STATUS_NOT_PERSISTED), Outcome::Fail { .. }));
        let after_append = KafkaError::MessageProduction(RDKafkaErrorCode::NotEnoughReplicasAfterAppend);
        assert!(matches!(classify(&after_append, S::RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED), Outcome::Info { .. }));
        let rejected = KafkaError::MessageProduction(RDKafkaErrorCode::NotEnoughReplicas);
        assert!(matches!(classify(&rejected, S::RD_KAFKA_MSG_STATUS_NOT_PERSISTED), Outcome::Fail { .. }));
    }
}
