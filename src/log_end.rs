//! Asks each node separately for the log end of each partition of the test topic: a Kafka
//! ListOffsets v1 request (latest) sent straight to one node's Kafka proxy, so the answer is
//! that node's own, not whatever the client library routes to the leader. A node that does not
//! lead a partition usually answers with an error code, which is recorded as such.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::kafka_wire::{frame, Reader};

/// What one node said about one partition's log end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeLogEnd {
    /// The next offset to be written (the high watermark).
    Offset(i64),
    /// A Kafka error code (6: not the leader).
    Error(i16),
    /// No answer (connection, timeout, malformed response).
    Unreachable(String),
}

/// Asks the node behind `addr` for the latest offset of each of `partitions` of `topic`.
pub async fn ask(addr: SocketAddr, topic: &str, partitions: &[i32], timeout: Duration) -> BTreeMap<i32, NodeLogEnd> {
    match tokio::time::timeout(timeout, exchange(addr, topic, partitions)).await {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => partitions.iter().map(|p| (*p, NodeLogEnd::Unreachable(e.clone()))).collect(),
        Err(_) => {
            partitions.iter().map(|p| (*p, NodeLogEnd::Unreachable(format!("no answer within {timeout:?}")))).collect()
        }
    }
}

async fn exchange(addr: SocketAddr, topic: &str, partitions: &[i32]) -> Result<BTreeMap<i32, NodeLogEnd>, String> {
    let correlation = fastrand::i32(1..);
    let mut conn = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
    conn.write_all(&request(correlation, topic, partitions)).await.map_err(|e| format!("write: {e}"))?;
    let size = conn.read_i32().await.map_err(|e| format!("read: {e}"))?;
    if !(4..=1 << 20).contains(&size) {
        return Err(format!("response of size {size}"));
    }
    let mut body = vec![0u8; size as usize];
    conn.read_exact(&mut body).await.map_err(|e| format!("read: {e}"))?;
    parse(&body, correlation, topic)
}

/// ListOffsets v1: header (api key 2, version 1, correlation id, client id), replica id -1,
/// one topic with each partition at timestamp -1 (latest).
pub fn request(correlation: i32, topic: &str, partitions: &[i32]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&(topic.len() as i16).to_be_bytes());
    b.extend_from_slice(topic.as_bytes());
    b.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
    for p in partitions {
        b.extend_from_slice(&p.to_be_bytes());
        b.extend_from_slice(&(-1i64).to_be_bytes());
    }
    frame(2, 1, correlation, &b)
}

/// Parses a ListOffsets v1 response body (after the size).
pub fn parse(body: &[u8], correlation: i32, topic: &str) -> Result<BTreeMap<i32, NodeLogEnd>, String> {
    let mut r = Reader::new(body, "ListOffsets");
    let got = r.i32()?;
    if got != correlation {
        return Err(format!("correlation id {got}, not {correlation}"));
    }
    let mut out = BTreeMap::new();
    for _ in 0..r.i32()? {
        let name = r.string()?;
        for _ in 0..r.i32()? {
            let (partition, error) = (r.i32()?, r.i16()?);
            let (_timestamp, offset) = (r.i64()?, r.i64()?);
            if name == topic {
                out.insert(partition, if error == 0 { NodeLogEnd::Offset(offset) } else { NodeLogEnd::Error(error) });
            }
        }
    }
    Ok(out)
}

/// Compares what the nodes said, given each partition's leader as the nodes last named it.
/// Returns disagreements (nodes that answered with different offsets) and notes: a node that
/// does not lead a partition and answers 0 for it while its leader answers more (a Kafka
/// follower answers NOT_LEADER_OR_FOLLOWER) is a protocol oddity, not a divergent log, and is
/// noted apart.
pub fn compare(
    per_node: &BTreeMap<u8, BTreeMap<i32, NodeLogEnd>>,
    leaders: &BTreeMap<i32, u8>,
) -> (Vec<String>, Vec<String>) {
    let mut by_partition: BTreeMap<i32, BTreeMap<u8, i64>> = BTreeMap::new();
    for (n, m) in per_node {
        for (p, e) in m {
            if let NodeLogEnd::Offset(o) = e {
                by_partition.entry(*p).or_default().insert(*n, *o);
            }
        }
    }
    let mut disagreements = Vec::new();
    let mut zero_followers: BTreeMap<u8, Vec<i32>> = BTreeMap::new();
    for (p, mut m) in by_partition {
        let leader = leaders.get(&p).copied();
        if leader.and_then(|l| m.get(&l).copied()).is_some_and(|end| end > 0) {
            let zeros: Vec<u8> = m.iter().filter(|(n, o)| Some(**n) != leader && **o == 0).map(|(n, _)| *n).collect();
            for n in zeros {
                m.remove(&n);
                zero_followers.entry(n).or_default().push(p);
            }
        }
        if m.values().collect::<std::collections::BTreeSet<_>>().len() > 1 {
            let said: Vec<String> = m.iter().map(|(n, o)| format!("n{n}: {o}")).collect();
            disagreements.push(format!("partition {p}: the nodes report different log ends ({})", said.join(", ")));
        }
    }
    let mut notes = Vec::new();
    if !zero_followers.is_empty() {
        let who: Vec<String> = zero_followers
            .into_iter()
            .map(|(n, ps)| {
                let ps: Vec<String> = ps.iter().map(|p| p.to_string()).collect();
                format!("n{n} for {}", ps.join(", "))
            })
            .collect();
        notes.push(format!(
            "nodes answer ListOffsets(latest) with 0 and no error for partitions they do not lead ({}); a Kafka follower answers NOT_LEADER_OR_FOLLOWER",
            who.join("; ")
        ));
    }
    (disagreements, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(correlation: i32, topic: &str, parts: &[(i32, i16, i64)]) -> Vec<u8> {
        let mut b = correlation.to_be_bytes().to_vec();
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&(topic.len() as i16).to_be_bytes());
        b.extend_from_slice(topic.as_bytes());
        b.extend_from_slice(&(parts.len() as i32).to_be_bytes());
        for (p, e, o) in parts {
            b.extend_from_slice(&p.to_be_bytes());
            b.extend_from_slice(&e.to_be_bytes());
            b.extend_from_slice(&(-1i64).to_be_bytes());
            b.extend_from_slice(&o.to_be_bytes());
        }
        b
    }

    #[test]
    fn request_bytes_and_response_parsing() {
        let req = request(7, "t", &[0, 1]);
        assert_eq!(i32::from_be_bytes(req[..4].try_into().unwrap()) as usize, req.len() - 4);
        assert_eq!(&req[4..8], &[0, 2, 0, 1], "api key 2, version 1");
        let body = response(7, "t", &[(0, 0, 42), (1, 6, -1)]);
        let m = parse(&body, 7, "t").unwrap();
        assert_eq!(m[&0], NodeLogEnd::Offset(42));
        assert_eq!(m[&1], NodeLogEnd::Error(6));
        assert!(parse(&body, 8, "t").unwrap_err().contains("correlation id 7"));
        assert!(parse(&body[..body.len() - 3], 7, "t").unwrap_err().contains("truncated"));
    }

    #[test]
    fn only_offsets_that_differ_are_disagreements_and_zero_from_followers_is_a_note() {
        let n = |o: NodeLogEnd| BTreeMap::from([(0, o)]);
        let leaders = BTreeMap::from([(0, 1u8)]);
        let agree = BTreeMap::from([
            (1, n(NodeLogEnd::Offset(9))),
            (2, n(NodeLogEnd::Error(6))),
            (3, n(NodeLogEnd::Offset(9))),
        ]);
        assert_eq!(compare(&agree, &leaders), (vec![], vec![]));
        let split = BTreeMap::from([(1, n(NodeLogEnd::Offset(9))), (3, n(NodeLogEnd::Offset(7)))]);
        assert_eq!(
            compare(&split, &leaders).0,
            vec!["partition 0: the nodes report different log ends (n1: 9, n3: 7)".to_string()]
        );
        // Followers answering 0 (seen with Chronik v2.10.4): a note, not a divergent log.
        let zeros = BTreeMap::from([
            (1, n(NodeLogEnd::Offset(502))),
            (2, n(NodeLogEnd::Offset(0))),
            (3, n(NodeLogEnd::Offset(0))),
        ]);
        let (d, notes) = compare(&zeros, &leaders);
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("for partitions they do not lead (n2 for 0; n3 for 0)"), "{notes:?}");
        // ... but the leader itself answering 0 while a follower has data is a disagreement.
        let (d, _) = compare(&zeros, &BTreeMap::from([(0, 2u8)]));
        assert_eq!(d.len(), 1);
    }
}
