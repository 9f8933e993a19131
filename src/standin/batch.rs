//! Kafka record batches (magic 2) kept as the client's bytes: the fixed header's fields,
//! splitting a Produce request's records into batches, and stamping a batch with its base
//! offset and leader epoch (neither is covered by the batch CRC, so the bytes stay valid).

use bytes::Bytes;

/// The fixed part of a v2 record batch.
pub const HEADER_LEN: usize = 61;

const BATCH_LENGTH: usize = 8;
const LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORD_COUNT: usize = 57;

/// Attribute bits of transactional and control batches, which the stand-in does not take.
const TRANSACTIONAL_OR_CONTROL: i16 = 0x30;

/// The header fields the broker needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl Header {
    /// Offsets the batch occupies.
    pub fn offsets(&self) -> i64 {
        self.last_offset_delta as i64 + 1
    }

    pub fn is_idempotent(&self) -> bool {
        self.producer_id >= 0
    }

    pub fn is_transactional_or_control(&self) -> bool {
        self.attributes & TRANSACTIONAL_OR_CONTROL != 0
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("record batch truncated")]
    Truncated,
    #[error("record batch magic {0}: only magic 2 is supported")]
    Magic(i8),
    #[error("record batch with no records")]
    Empty,
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The header of one whole batch.
pub fn header(b: &[u8]) -> Result<Header, BatchError> {
    if b.len() < HEADER_LEN {
        return Err(BatchError::Truncated);
    }
    let magic = b[MAGIC] as i8;
    if magic != 2 {
        return Err(BatchError::Magic(magic));
    }
    let h = Header {
        attributes: i16_at(b, ATTRIBUTES),
        last_offset_delta: i32_at(b, LAST_OFFSET_DELTA),
        max_timestamp: i64_at(b, MAX_TIMESTAMP),
        producer_id: i64_at(b, PRODUCER_ID),
        producer_epoch: i16_at(b, PRODUCER_EPOCH),
        base_sequence: i32_at(b, BASE_SEQUENCE),
        record_count: i32_at(b, RECORD_COUNT),
    };
    if h.last_offset_delta < 0 || h.record_count <= 0 {
        return Err(BatchError::Empty);
    }
    Ok(h)
}

/// The batches of a Produce request's `records`, each with its header.
pub fn split(records: &Bytes) -> Result<Vec<(Header, Bytes)>, BatchError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < records.len() {
        if records.len() - at < HEADER_LEN {
            return Err(BatchError::Truncated);
        }
        let length = i32_at(records, at + BATCH_LENGTH);
        if length < (HEADER_LEN - LEADER_EPOCH) as i32 {
            return Err(BatchError::Truncated);
        }
        let end = at + LEADER_EPOCH + length as usize;
        if end > records.len() {
            return Err(BatchError::Truncated);
        }
        let batch = records.slice(at..end);
        out.push((header(&batch)?, batch));
        at = end;
    }
    if out.is_empty() {
        return Err(BatchError::Empty);
    }
    Ok(out)
}

/// The batch with `base_offset` and `leader_epoch` written into its header.
pub fn stamp(b: &[u8], base_offset: i64, leader_epoch: i32) -> Bytes {
    let mut v = b.to_vec();
    v[..8].copy_from_slice(&base_offset.to_be_bytes());
    v[LEADER_EPOCH..LEADER_EPOCH + 4].copy_from_slice(&leader_epoch.to_be_bytes());
    Bytes::from(v)
}

/// A minimal valid-looking batch for tests: `records` offsets, the given producer fields.
#[cfg(test)]
pub fn sample(records: i32, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Bytes {
    let mut v = vec![0u8; HEADER_LEN];
    v[BATCH_LENGTH..BATCH_LENGTH + 4].copy_from_slice(&((HEADER_LEN - LEADER_EPOCH) as i32).to_be_bytes());
    v[MAGIC] = 2;
    v[LAST_OFFSET_DELTA..LAST_OFFSET_DELTA + 4].copy_from_slice(&(records - 1).to_be_bytes());
    v[PRODUCER_ID..PRODUCER_ID + 8].copy_from_slice(&producer_id.to_be_bytes());
    v[PRODUCER_EPOCH..PRODUCER_EPOCH + 2].copy_from_slice(&producer_epoch.to_be_bytes());
    v[BASE_SEQUENCE..BASE_SEQUENCE + 4].copy_from_slice(&base_sequence.to_be_bytes());
    v[RECORD_COUNT..RECORD_COUNT + 4].copy_from_slice(&records.to_be_bytes());
    Bytes::from(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_stamps() {
        let mut two = sample(3, 7, 0, 0).to_vec();
        two.extend_from_slice(&sample(1, 7, 0, 3));
        let batches = split(&Bytes::from(two)).unwrap();
        assert_eq!(batches.len(), 2);
        assert_eq!((batches[0].0.offsets(), batches[1].0.base_sequence), (3, 3));
        let stamped = stamp(&batches[1].1, 42, 5);
        assert_eq!(i64_at(&stamped, 0), 42);
        assert_eq!(i32_at(&stamped, LEADER_EPOCH), 5);
        assert_eq!(header(&stamped).unwrap(), batches[1].0);
    }

    #[test]
    fn refuses_what_it_cannot_store() {
        assert_eq!(split(&Bytes::new()), Err(BatchError::Empty));
        assert_eq!(split(&sample(1, -1, -1, -1).slice(..30)), Err(BatchError::Truncated));
        let mut old = sample(1, -1, -1, -1).to_vec();
        old[MAGIC] = 1;
        assert_eq!(split(&Bytes::from(old)), Err(BatchError::Magic(1)));
    }
}
