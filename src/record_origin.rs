//! Which producer wrote a record, as the log says: Kafka Fetch v4 requests sent straight to one
//! node for the offsets of duplicated values, and the headers of the record batches that hold
//! them (producer id, producer epoch, base sequence). Two copies of one value written by one
//! producer under two epochs are the client's re-send after an epoch bump, not the cluster's.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::kafka_wire::{frame, Reader};

/// The producer fields of the record batch that holds one offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordOrigin {
    pub partition: i32,
    pub offset: i64,
    /// -1: written by a producer without idempotence.
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

/// The most Fetch requests one call makes (each returns up to 1 MiB of batches).
const MAX_FETCHES: usize = 40;
const MAX_BYTES: i32 = 1 << 20;

/// Asks the nodes (their Kafka addresses, in order) for the batch headers covering `places` of
/// `topic`; a node that answers with an error or no batch for an offset (a follower) is passed
/// over for the next. Offsets no node covered are missing from the answer.
pub async fn ask(
    nodes: &[SocketAddr],
    topic: &str,
    places: &BTreeSet<(i32, i64)>,
    timeout: Duration,
) -> Vec<RecordOrigin> {
    let mut found: BTreeMap<(i32, i64), RecordOrigin> = BTreeMap::new();
    let mut fetches = 0;
    for &(partition, offset) in places {
        if found.contains_key(&(partition, offset)) {
            continue;
        }
        for addr in nodes {
            if fetches >= MAX_FETCHES {
                return found.into_values().collect();
            }
            fetches += 1;
            let Ok(Ok(batches)) = tokio::time::timeout(timeout, fetch(*addr, topic, partition, offset)).await else {
                continue;
            };
            if !batches.iter().any(|b| b.covers(offset)) {
                continue;
            }
            for &(p, o) in places.range((partition, offset)..=(partition, i64::MAX)) {
                if let Some(b) = batches.iter().find(|b| b.covers(o)) {
                    found.entry((p, o)).or_insert(b.origin(p, o));
                }
            }
            break;
        }
    }
    found.into_values().collect()
}

/// One record batch's header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BatchHeader {
    base_offset: i64,
    last_offset_delta: i32,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
}

impl BatchHeader {
    fn covers(&self, offset: i64) -> bool {
        (self.base_offset..=self.base_offset + self.last_offset_delta as i64).contains(&offset)
    }

    fn origin(&self, partition: i32, offset: i64) -> RecordOrigin {
        RecordOrigin {
            partition,
            offset,
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: self.base_sequence,
        }
    }
}

async fn fetch(addr: SocketAddr, topic: &str, partition: i32, offset: i64) -> Result<Vec<BatchHeader>, String> {
    let correlation = fastrand::i32(1..);
    let mut conn = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
    conn.write_all(&request(correlation, topic, partition, offset)).await.map_err(|e| format!("write: {e}"))?;
    let size = conn.read_i32().await.map_err(|e| format!("read: {e}"))?;
    if !(4..=2 * MAX_BYTES).contains(&size) {
        return Err(format!("response of size {size}"));
    }
    let mut body = vec![0u8; size as usize];
    conn.read_exact(&mut body).await.map_err(|e| format!("read: {e}"))?;
    parse(&body, correlation, topic, partition)
}

/// Fetch v4: header (api key 1, version 4, correlation id, client id), replica id -1, max wait
/// 0 ms, min bytes 1, max bytes, read_uncommitted, one topic and partition from `offset`.
fn request(correlation: i32, topic: &str, partition: i32, offset: i64) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&MAX_BYTES.to_be_bytes());
    b.push(0);
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&(topic.len() as i16).to_be_bytes());
    b.extend_from_slice(topic.as_bytes());
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&partition.to_be_bytes());
    b.extend_from_slice(&offset.to_be_bytes());
    b.extend_from_slice(&MAX_BYTES.to_be_bytes());
    frame(1, 4, correlation, &b)
}

/// Parses a Fetch v4 response body (after the size): the batch headers of `topic`/`partition`,
/// or the partition's error code.
fn parse(body: &[u8], correlation: i32, topic: &str, partition: i32) -> Result<Vec<BatchHeader>, String> {
    let mut r = Reader::new(body, "Fetch");
    let got = r.i32()?;
    if got != correlation {
        return Err(format!("correlation id {got}, not {correlation}"));
    }
    let _throttle = r.i32()?;
    let mut out = Vec::new();
    for _ in 0..r.i32()? {
        let name = r.string()?;
        for _ in 0..r.i32()? {
            let (p, error) = (r.i32()?, r.i16()?);
            let (_high_watermark, _last_stable) = (r.i64()?, r.i64()?);
            for _ in 0..r.i32()?.max(0) {
                let (_producer, _first_offset) = (r.i64()?, r.i64()?);
            }
            let len = r.i32()?;
            let records = r.take(len.max(0) as usize)?;
            if name == topic && p == partition {
                if error != 0 {
                    return Err(format!("error code {error}"));
                }
                out = batches(records);
            }
        }
    }
    Ok(out)
}

/// The headers of the whole record batches (magic 2) in `records`; a partial last batch (the
/// fetch's size limit) is left out.
fn batches(records: &[u8]) -> Vec<BatchHeader> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(head) = records.get(at..at + 61) {
        let i64_at = |i: usize| i64::from_be_bytes(head[i..i + 8].try_into().unwrap());
        let i32_at = |i: usize| i32::from_be_bytes(head[i..i + 4].try_into().unwrap());
        let length = i32_at(8);
        let end = at + 12 + length.max(0) as usize;
        if length < 49 || end > records.len() || head[16] != 2 {
            break;
        }
        out.push(BatchHeader {
            base_offset: i64_at(0),
            last_offset_delta: i32_at(23),
            producer_id: i64_at(43),
            producer_epoch: i16::from_be_bytes(head[51..53].try_into().unwrap()),
            base_sequence: i32_at(53),
        });
        at = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A magic-2 batch header for `records` records (bodies left empty: only headers are read).
    fn batch(base_offset: i64, records: i32, pid: i64, epoch: i16, seq: i32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&base_offset.to_be_bytes());
        b.extend_from_slice(&49i32.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        b.push(2);
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&(records - 1).to_be_bytes());
        b.extend_from_slice(&0i64.to_be_bytes());
        b.extend_from_slice(&0i64.to_be_bytes());
        b.extend_from_slice(&pid.to_be_bytes());
        b.extend_from_slice(&epoch.to_be_bytes());
        b.extend_from_slice(&seq.to_be_bytes());
        b.extend_from_slice(&records.to_be_bytes());
        b
    }

    fn response(correlation: i32, topic: &str, partition: i32, error: i16, records: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&correlation.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&(topic.len() as i16).to_be_bytes());
        b.extend_from_slice(topic.as_bytes());
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&partition.to_be_bytes());
        b.extend_from_slice(&error.to_be_bytes());
        b.extend_from_slice(&900i64.to_be_bytes());
        b.extend_from_slice(&900i64.to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&(records.len() as i32).to_be_bytes());
        b.extend_from_slice(records);
        b
    }

    #[test]
    fn the_request_is_a_fetch_v4_for_one_partition_from_the_offset() {
        let r = request(7, "t", 2, 169);
        assert_eq!(i32::from_be_bytes(r[..4].try_into().unwrap()) as usize, r.len() - 4);
        assert_eq!(&r[4..8], &[0, 1, 0, 4], "api key 1 (Fetch), version 4");
        assert_eq!(&r[r.len() - 16..r.len() - 12], &2i32.to_be_bytes());
        assert_eq!(&r[r.len() - 12..r.len() - 4], &169i64.to_be_bytes());
    }

    #[test]
    fn batch_headers_say_which_producer_and_epoch_wrote_each_offset() {
        let mut records = batch(168, 1, 67297, 2, 0);
        records.extend(batch(169, 165, 67297, 2, 1));
        records.extend(&batch(334, 3, 59522, 3, 160)[..30]);
        let got = parse(&response(7, "t", 0, 0, &records), 7, "t", 0).unwrap();
        assert_eq!(got.len(), 2, "the partial third batch is left out");
        assert!(got[1].covers(169) && got[1].covers(333) && !got[1].covers(334));
        assert_eq!(
            got[1].origin(0, 200),
            RecordOrigin { partition: 0, offset: 200, producer_id: 67297, producer_epoch: 2, base_sequence: 1 }
        );
        assert_eq!(parse(&response(7, "t", 0, 6, &[]), 7, "t", 0).unwrap_err(), "error code 6");
        assert!(parse(&response(8, "t", 0, 0, &records), 7, "t", 0).unwrap_err().contains("correlation"));
        assert!(parse(&response(7, "t", 0, 0, &records)[..40], 7, "t", 0).unwrap_err().contains("truncated"));
    }
}
