//! The Kafka workload (rdkafka): creates the test topic, runs producers with `acks=all` that
//! write unique values at a set rate and record every send as invoke → ok / fail / info, a
//! consumer that polls during the run, and the final read after every fault is healed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use tokio_util::sync::CancellationToken;

use crate::history::{value_of, FinalRead, Outcome, Read, Send};
use crate::partition_reader::PartitionReader;

/// What the workload does.
#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    pub bootstrap: String,
    pub topic: String,
    pub partitions: i32,
    pub replication_factor: i32,
    pub producers: u32,
    /// Sends per second, per producer.
    pub rate_per_producer: f64,
    pub idempotence: bool,
    /// A send with no answer after this long is indeterminate (`info`).
    pub message_timeout: Duration,
    /// Extra librdkafka settings for every client.
    pub client_extra: Vec<(String, String)>,
}

impl WorkloadConfig {
    pub fn new(bootstrap: impl Into<String>, topic: impl Into<String>) -> WorkloadConfig {
        WorkloadConfig {
            bootstrap: bootstrap.into(),
            topic: topic.into(),
            partitions: 3,
            replication_factor: 3,
            producers: 2,
            rate_per_producer: 50.0,
            idempotence: true,
            message_timeout: Duration::from_secs(10),
            client_extra: Vec::new(),
        }
    }

    fn client(&self) -> ClientConfig {
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
}

impl Recorder {
    pub fn new(start: Instant) -> Arc<Recorder> {
        Arc::new(Recorder { start, sends: Mutex::new(Vec::new()), reads: Mutex::new(Vec::new()) })
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

/// Creates the topic; an existing topic with that name is accepted.
pub async fn create_topic(cfg: &WorkloadConfig, timeout: Duration) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = cfg.client().create().map_err(|e| format!("admin client: {e}"))?;
    let topic = NewTopic::new(&cfg.topic, cfg.partitions, TopicReplication::Fixed(cfg.replication_factor));
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

/// Running producers and the live consumer.
pub struct Workload {
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    recorder: Arc<Recorder>,
}

impl Workload {
    /// Starts `cfg.producers` producers and one live consumer, recording into `recorder`.
    pub fn start(cfg: &WorkloadConfig, recorder: Arc<Recorder>) -> Result<Workload, String> {
        let stop = CancellationToken::new();
        let mut tasks = Vec::new();
        for p in 0..cfg.producers {
            let mut c = cfg.client();
            c.set("acks", "all")
                .set("enable.idempotence", if cfg.idempotence { "true" } else { "false" })
                .set("message.timeout.ms", cfg.message_timeout.as_millis().to_string())
                .set("linger.ms", "0");
            if !cfg.idempotence {
                // Keep each producer's order without idempotence: one request at a time.
                c.set("max.in.flight.requests.per.connection", "1");
            }
            let producer: FutureProducer = c.create().map_err(|e| format!("producer {p}: {e}"))?;
            tasks.push(tokio::spawn(produce_loop(p, producer, cfg.clone(), recorder.clone(), stop.clone())));
        }
        let reader = reader(cfg, "live")?;
        tasks.push(tokio::spawn(consume_loop(reader, recorder.clone(), stop.clone())));
        Ok(Workload { stop, tasks, recorder })
    }

    /// Stops sending, waits for every outstanding send to resolve (or time out), stops the
    /// live consumer.
    pub async fn stop(self) -> Arc<Recorder> {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        self.recorder
    }
}

async fn produce_loop(
    p: u32,
    producer: FutureProducer,
    cfg: WorkloadConfig,
    rec: Arc<Recorder>,
    stop: CancellationToken,
) {
    let producer = Arc::new(producer);
    let interval = Duration::from_secs_f64(1.0 / cfg.rate_per_producer.max(0.001));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut inflight = Vec::new();
    let mut seq = 0u64;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let value = value_of(p, seq);
        let partition = (seq % cfg.partitions.max(1) as u64) as i32;
        let invoked_us = rec.now_us();
        let (producer, rec, topic) = (producer.clone(), rec.clone(), cfg.topic.clone());
        inflight.push(tokio::spawn(async move {
            let record = FutureRecord::<(), str>::to(&topic).partition(partition).payload(&value);
            let outcome = match producer.send(record, Duration::from_secs(0)).await {
                Ok(delivery) => Outcome::Ok { partition: delivery.partition, offset: delivery.offset },
                Err((e, _)) => classify(&e),
            };
            rec.send(Send { producer: p, seq, value, invoked_us, completed_us: Some(rec.now_us()), outcome });
        }));
        seq += 1;
        inflight.retain(|h| !h.is_finished());
    }
    for h in inflight {
        let _ = h.await;
    }
}

/// A send error is a definite failure only when the broker rejected the write outright;
/// everything else (timeouts, lost connections, not-enough-replicas-after-append) is
/// indeterminate.
pub fn classify(e: &KafkaError) -> Outcome {
    use RDKafkaErrorCode as C;
    let code = e.rdkafka_error_code();
    let definite = matches!(
        code,
        Some(
            C::InvalidMessage
                | C::MessageSizeTooLarge
                | C::InvalidTopic
                | C::MessageBatchTooLarge
                | C::NotEnoughReplicas
                | C::InvalidRequiredAcks
                | C::TopicAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::UnsupportedForMessageFormat
                | C::InvalidRecord
        )
    );
    let error = e.to_string();
    if definite {
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

/// Polls up to 500 messages (or until `wait` passes without one); records them. Returns the
/// places read and the first error, if any.
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
            Err(e) => return (seen, Some(e)),
        }
    }
    (seen, None)
}

/// The final read: a fresh consumer, every partition from the beginning, until each reaches
/// its target offset (the highest acknowledged one) or `deadline` passes.
pub async fn final_read(
    cfg: &WorkloadConfig,
    rec: &Arc<Recorder>,
    targets: BTreeMap<i32, i64>,
    deadline: Duration,
) -> Result<FinalRead, String> {
    let consumer = Arc::new(reader(cfg, "final")?);
    let started = Instant::now();
    let mut reached: BTreeMap<i32, i64> = BTreeMap::new();
    let mut errors: Vec<String> = Vec::new();
    let done = |reached: &BTreeMap<i32, i64>| targets.iter().all(|(p, t)| reached.get(p).is_some_and(|r| r >= t));
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
    Ok(FinalRead { complete: done(&reached), targets, reached, errors })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_outright_rejections_are_definite_failures() {
        let timeout = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        assert!(matches!(classify(&timeout), Outcome::Info { .. }));
        let transport = KafkaError::MessageProduction(RDKafkaErrorCode::BrokerTransportFailure);
        assert!(matches!(classify(&transport), Outcome::Info { .. }));
        let after_append = KafkaError::MessageProduction(RDKafkaErrorCode::NotEnoughReplicasAfterAppend);
        assert!(matches!(classify(&after_append), Outcome::Info { .. }));
        let rejected = KafkaError::MessageProduction(RDKafkaErrorCode::NotEnoughReplicas);
        assert!(matches!(classify(&rejected), Outcome::Fail { .. }));
    }
}
