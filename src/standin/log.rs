//! A partition's log on disk: entries (record batches stamped with their base offset and
//! leader epoch, and the empty leader-change markers a new leader appends), appended with an
//! fsync, truncated, and read back at start-up (a torn last entry is cut off).
//!
//! File format, one record per entry: `u32` length of the rest, `u8` kind (0 batch, 1
//! marker), `i32` epoch, `i64` base offset, then the batch bytes.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::batch::{self, Header};

const KIND_BATCH: u8 = 0;
const KIND_MARKER: u8 = 1;
const RECORD_HEAD: usize = 4 + 1 + 4 + 8;

/// What an entry holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// A client's batch, stamped with the entry's base offset and epoch.
    Batch { bytes: Bytes, header: Header },
    /// A leader-change marker: occupies no offset and is never served to clients; it gives a
    /// new leader an entry of its own epoch to commit (Raft's no-op).
    Marker,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub base_offset: i64,
    pub epoch: i32,
    pub payload: Payload,
}

impl Entry {
    /// The offset after this entry's last record.
    pub fn end_offset(&self) -> i64 {
        match &self.payload {
            Payload::Batch { header, .. } => self.base_offset + header.offsets(),
            Payload::Marker => self.base_offset,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        match &self.payload {
            Payload::Batch { bytes, .. } => bytes,
            Payload::Marker => &[],
        }
    }

    pub fn is_marker(&self) -> bool {
        matches!(self.payload, Payload::Marker)
    }

    /// A batch entry from bytes already stamped with `base_offset` and `epoch`.
    pub fn batch(base_offset: i64, epoch: i32, bytes: Bytes) -> Result<Entry, batch::BatchError> {
        let header = batch::header(&bytes)?;
        Ok(Entry { base_offset, epoch, payload: Payload::Batch { bytes, header } })
    }
}

/// How a log is kept.
#[derive(Clone, Copy, Debug)]
pub struct LogOptions {
    /// fsync after every append and truncation.
    pub fsync: bool,
    /// Batches dropped from the end when an existing log is opened (the
    /// `lose-unflushed-tail` bug); 0 when correct.
    pub drop_on_open: usize,
}

/// One partition's log.
#[derive(Debug)]
pub struct PartitionLog {
    path: PathBuf,
    file: File,
    entries: Vec<Entry>,
    /// File position of each entry, and of the end.
    positions: Vec<u64>,
    options: LogOptions,
}

impl PartitionLog {
    /// Opens (or creates) `dir/log`. Returns the log and how many batches were dropped because
    /// of `drop_on_open`.
    pub fn open(dir: &Path, options: LogOptions) -> io::Result<(PartitionLog, usize)> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("log");
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        let (mut entries, mut positions) = (Vec::new(), vec![0u64]);
        let mut at = 0usize;
        while let Some((entry, len)) = parse_record(&data[at..]) {
            entries.push(entry);
            at += len;
            positions.push(at as u64);
        }
        let mut log = PartitionLog { path, file, entries, positions, options };
        if at < data.len() {
            // A torn last record: the crash came mid-write; it was never acknowledged.
            log.truncate(log.entries.len())?;
        }
        let mut dropped = 0;
        if options.drop_on_open > 0 {
            let mut keep = log.entries.len();
            while keep > 0 && dropped < options.drop_on_open {
                keep -= 1;
                if !log.entries[keep].is_marker() {
                    dropped += 1;
                }
            }
            log.truncate(keep)?;
        }
        Ok((log, dropped))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The log end offset.
    pub fn end_offset(&self) -> i64 {
        self.end_of(self.entries.len())
    }

    /// The end offset of the first `n` entries.
    pub fn end_of(&self, n: usize) -> i64 {
        if n == 0 {
            0
        } else {
            self.entries[n - 1].end_offset()
        }
    }

    /// The epoch of the first `n` entries' last one; -1 for none.
    pub fn epoch_of(&self, n: usize) -> i32 {
        if n == 0 {
            -1
        } else {
            self.entries[n - 1].epoch
        }
    }

    pub fn last_epoch(&self) -> i32 {
        self.epoch_of(self.entries.len())
    }

    pub fn append(&mut self, entry: Entry) -> io::Result<()> {
        let end = *self.positions.last().expect("positions start with 0");
        let mut record = Vec::with_capacity(RECORD_HEAD + entry.bytes().len());
        record.extend_from_slice(&((RECORD_HEAD - 4 + entry.bytes().len()) as u32).to_be_bytes());
        record.push(if entry.is_marker() { KIND_MARKER } else { KIND_BATCH });
        record.extend_from_slice(&entry.epoch.to_be_bytes());
        record.extend_from_slice(&entry.base_offset.to_be_bytes());
        record.extend_from_slice(entry.bytes());
        self.file.seek(SeekFrom::Start(end))?;
        self.file.write_all(&record)?;
        if self.options.fsync {
            self.file.sync_data()?;
        }
        self.positions.push(end + record.len() as u64);
        self.entries.push(entry);
        Ok(())
    }

    /// Keeps the first `n` entries.
    pub fn truncate(&mut self, n: usize) -> io::Result<()> {
        let n = n.min(self.entries.len());
        self.entries.truncate(n);
        self.positions.truncate(n + 1);
        self.file.set_len(self.positions[n])?;
        if self.options.fsync {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// The index of the first entry that ends after `offset` (the one holding it).
    fn holding(&self, offset: i64) -> usize {
        self.entries.partition_point(|e| e.end_offset() <= offset)
    }

    /// The batches from the one holding `offset`, not past `limit` (the high watermark), at
    /// most `max_bytes` unless the first alone is larger.
    pub fn read(&self, offset: i64, limit: i64, max_bytes: usize) -> Bytes {
        let mut out = Vec::new();
        for e in &self.entries[self.holding(offset)..] {
            if e.end_offset() > limit {
                break;
            }
            if e.is_marker() {
                continue;
            }
            if !out.is_empty() && out.len() + e.bytes().len() > max_bytes {
                break;
            }
            out.extend_from_slice(e.bytes());
        }
        Bytes::from(out)
    }

    /// OffsetForLeaderEpoch: the largest epoch in the log not above `epoch`, and the offset
    /// where the next epoch starts (the log end for the last one). `(-1, -1)` if every entry
    /// has a larger epoch.
    pub fn end_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let after = self.entries.partition_point(|e| e.epoch <= epoch);
        if after == 0 {
            return if self.entries.is_empty() { (epoch, 0) } else { (-1, -1) };
        }
        let found = self.entries[after - 1].epoch;
        let end = self.entries.get(after).map_or_else(|| self.end_offset(), |e| e.base_offset);
        (found, end)
    }

    /// ListOffsets by time: the first batch below `limit` whose max timestamp is at least `ts`.
    pub fn offset_for_timestamp(&self, ts: i64, limit: i64) -> Option<(i64, i64)> {
        self.entries.iter().take_while(|e| e.end_offset() <= limit).find_map(|e| match &e.payload {
            Payload::Batch { header, .. } if header.max_timestamp >= ts => Some((e.base_offset, header.max_timestamp)),
            _ => None,
        })
    }
}

/// One record from the start of `data`, and its length; `None` when incomplete or corrupt.
fn parse_record(data: &[u8]) -> Option<(Entry, usize)> {
    if data.len() < RECORD_HEAD {
        return None;
    }
    let rest = u32::from_be_bytes(data[..4].try_into().ok()?) as usize;
    let len = 4 + rest;
    if rest < RECORD_HEAD - 4 || data.len() < len {
        return None;
    }
    let kind = data[4];
    let epoch = i32::from_be_bytes(data[5..9].try_into().ok()?);
    let base_offset = i64::from_be_bytes(data[9..17].try_into().ok()?);
    let entry = match kind {
        KIND_MARKER => Entry { base_offset, epoch, payload: Payload::Marker },
        KIND_BATCH => Entry::batch(base_offset, epoch, Bytes::copy_from_slice(&data[RECORD_HEAD..len])).ok()?,
        _ => return None,
    };
    Some((entry, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAFE: LogOptions = LogOptions { fsync: true, drop_on_open: 0 };

    fn batch_at(log: &PartitionLog, records: i32, epoch: i32) -> Entry {
        let base = log.end_offset();
        Entry::batch(base, epoch, batch::stamp(&batch::sample(records, -1, -1, -1), base, epoch)).unwrap()
    }

    #[test]
    fn survives_reopening_and_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), SAFE).unwrap();
        log.append(batch_at(&log, 2, 0)).unwrap();
        log.append(Entry { base_offset: 2, epoch: 1, payload: Payload::Marker }).unwrap();
        log.append(batch_at(&log, 3, 1)).unwrap();
        assert_eq!((log.len(), log.end_offset(), log.last_epoch()), (3, 5, 1));
        drop(log);
        // Half a record more: cut off on open.
        let mut f = OpenOptions::new().append(true).open(dir.path().join("log")).unwrap();
        f.write_all(&[0, 0, 0, 90, 0, 1]).unwrap();
        let (log, dropped) = PartitionLog::open(dir.path(), SAFE).unwrap();
        assert_eq!((log.len(), log.end_offset(), dropped), (3, 5, 0));
        assert_eq!(log.end_for_epoch(0), (0, 2));
        assert_eq!(log.end_for_epoch(1), (1, 5));
        assert_eq!(log.end_for_epoch(7), (1, 5));
        // Reads skip the marker and stop at the limit.
        assert_eq!(log.read(0, 5, 1 << 20).len(), 2 * batch::HEADER_LEN);
        assert_eq!(log.read(1, 2, 1 << 20).len(), batch::HEADER_LEN);
        assert_eq!(log.read(3, 5, 1 << 20).len(), batch::HEADER_LEN);
        assert!(log.read(5, 5, 1 << 20).is_empty());
    }

    #[test]
    fn truncates_and_drops_a_tail_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = PartitionLog::open(dir.path(), SAFE).unwrap();
        for _ in 0..4 {
            log.append(batch_at(&log, 1, 0)).unwrap();
        }
        log.truncate(3).unwrap();
        assert_eq!(log.end_offset(), 3);
        log.append(batch_at(&log, 1, 2)).unwrap();
        drop(log);
        let (log, dropped) = PartitionLog::open(dir.path(), LogOptions { fsync: false, drop_on_open: 2 }).unwrap();
        assert_eq!((log.len(), dropped), (2, 2));
        assert_eq!(log.last_epoch(), 0);
    }
}
