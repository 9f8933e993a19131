//! Reading partitions with no consumer group: librdkafka's per-partition ("simple") consumer
//! API (`rd_kafka_consume_start_queue` / `rd_kafka_consume_queue`), the one kcat uses.
//!
//! Why not `BaseConsumer::assign`: librdkafka's `assign()` needs a `group.id`, and a
//! `group.id` makes librdkafka look up the group coordinator (FindCoordinator) even when
//! partitions are assigned by hand. Chronik v2.10.4 answers FindCoordinator with coordinator
//! id 1 at the *answering* node's address; librdkafka then re-points its broker-1 connection
//! at that node, and every fetch for a partition led by node 1 goes to a follower, which
//! answers with no data and no error (docs/findings.md, finding 2). The history checker needs
//! reads that involve no coordination at all, so the workload reads through this type.

use std::ffi::{CStr, CString};
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::ClientConfig;

/// One message read: partition, offset, payload.
pub type Record = (i32, i64, Vec<u8>);

/// A client reading some partitions of one topic from the beginning, without a group.
pub struct PartitionReader {
    // Field order matters for Drop: the handles below are released in `drop` before the
    // client (which owns `rd_kafka_t`) is dropped.
    topic: *mut rd::rd_kafka_topic_t,
    queue: *mut rd::rd_kafka_queue_t,
    partitions: Vec<i32>,
    client: BaseConsumer,
}

// librdkafka's handles are thread-safe; the raw pointers are owned by this value alone.
unsafe impl Send for PartitionReader {}
unsafe impl Sync for PartitionReader {}

fn last_error(what: &str) -> String {
    let code = RDKafkaErrorCode::from(unsafe { rd::rd_kafka_last_error() });
    format!("{what}: {code}")
}

impl PartitionReader {
    /// Starts reading `partitions` of `topic` from the beginning. `config` must not set
    /// `group.id` (it is removed if present).
    pub fn start(mut config: ClientConfig, topic: &str, partitions: &[i32]) -> Result<PartitionReader, String> {
        config.remove("group.id");
        config.set("enable.partition.eof", "false");
        // An out-of-range offset is an error the history records, never a silent jump to the
        // log end (librdkafka's default) that would hide data.
        config.set("auto.offset.reset", "error");
        let client: BaseConsumer = config.create().map_err(|e| format!("reader client: {e}"))?;
        let rk = client.client().native_ptr();
        let name = CString::new(topic).map_err(|_| format!("topic name {topic:?} contains a NUL byte"))?;
        // SAFETY: `rk` is a live client owned by `client`; a null topic config means defaults.
        let topic_ptr = unsafe { rd::rd_kafka_topic_new(rk, name.as_ptr(), std::ptr::null_mut()) };
        if topic_ptr.is_null() {
            return Err(last_error(&format!("opening topic {topic}")));
        }
        // SAFETY: as above.
        let queue = unsafe { rd::rd_kafka_queue_new(rk) };
        let mut reader = PartitionReader { topic: topic_ptr, queue, partitions: Vec::new(), client };
        for &p in partitions {
            // SAFETY: `topic` and `queue` are live handles of this client.
            let rc = unsafe {
                rd::rd_kafka_consume_start_queue(reader.topic, p, rd::RD_KAFKA_OFFSET_BEGINNING as i64, reader.queue)
            };
            if rc == -1 {
                return Err(last_error(&format!("starting to read {topic} [{p}]")));
            }
            reader.partitions.push(p);
        }
        Ok(reader)
    }

    /// Waits up to `wait` for the next message of any partition. `Ok(None)` when none came;
    /// `Err((partition, error))` when a partition reported an error instead.
    pub fn poll(&self, wait: Duration) -> Result<Option<Record>, (i32, String)> {
        // Serve the client's own events (errors, logs queued on the main queue).
        let _ = self.client.poll(Duration::ZERO);
        let ms = wait.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: `queue` is live until `drop`; the returned message is destroyed below.
        let m = unsafe { rd::rd_kafka_consume_queue(self.queue, ms) };
        if m.is_null() {
            return Ok(None);
        }
        // SAFETY: non-null messages from librdkafka are valid until destroyed.
        let msg = unsafe { &*m };
        let result = if msg.err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            if msg.err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__PARTITION_EOF {
                Ok(None)
            } else {
                // SAFETY: errstr returns a NUL-terminated string owned by the message.
                let detail = unsafe { CStr::from_ptr(rd::rd_kafka_message_errstr(m)) }.to_string_lossy().into_owned();
                Err((msg.partition, format!("{}: {detail}", RDKafkaErrorCode::from(msg.err))))
            }
        } else {
            let payload = if msg.payload.is_null() {
                Vec::new()
            } else {
                // SAFETY: `payload` points at `len` bytes owned by the message.
                unsafe { std::slice::from_raw_parts(msg.payload as *const u8, msg.len) }.to_vec()
            };
            Ok(Some((msg.partition, msg.offset, payload)))
        };
        // SAFETY: destroyed exactly once, after the last use of `msg`.
        unsafe { rd::rd_kafka_message_destroy(m) };
        result
    }
}

impl Drop for PartitionReader {
    fn drop(&mut self) {
        // SAFETY: every handle is live and released exactly once, before `client` drops.
        unsafe {
            for &p in &self.partitions {
                rd::rd_kafka_consume_stop(self.topic, p);
            }
            rd::rd_kafka_queue_destroy(self.queue);
            rd::rd_kafka_topic_destroy(self.topic);
        }
    }
}
