//! The Raft links: each node pings every peer over that peer's proxied Raft address every
//! 100 ms; a pong within 500 ms marks the peer reachable. From that view come the node's
//! cluster-level leader (the lowest id among the reachable nodes when they are a majority,
//! as the admin API reports it) and whether a partition candidate may stand (it must reach a
//! majority). The Raft port also answers HTTP/2 probes (see [`super::http2`]).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The byte a heartbeat sends as its ping (and gets back as its pong).
pub const PING: u8 = 1;
/// A peer is reachable when it answered a ping this recently.
pub const REACHABLE_WITHIN: Duration = Duration::from_secs(1);

/// The last pong time per peer.
#[derive(Debug, Default)]
pub struct Reachability {
    seen: Mutex<BTreeMap<u64, Instant>>,
}

impl Reachability {
    pub fn saw(&self, peer: u64) {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).insert(peer, Instant::now());
    }

    /// Peers that answered within [`REACHABLE_WITHIN`].
    pub fn reachable(&self) -> Vec<u64> {
        let now = Instant::now();
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(**t) < REACHABLE_WITHIN)
            .map(|(p, _)| *p)
            .collect()
    }

    /// Whether `me` and the peers it reaches are a majority of `group`.
    pub fn majority_of(&self, me: u64, group: &[u64]) -> bool {
        let reachable = self.reachable();
        let n = group.iter().filter(|id| **id == me || reachable.contains(id)).count();
        n * 2 > group.len()
    }

    /// The cluster-level leader: the lowest id among `me` and the reachable peers, when they
    /// are a majority of `total` nodes.
    pub fn leader(&self, me: u64, total: usize) -> Option<u64> {
        let mut ids = self.reachable();
        ids.push(me);
        (ids.len() * 2 > total).then(|| *ids.iter().min().expect("holds me"))
    }
}

/// Keeps a connection to `addr` open, pinging every 100 ms; a pong within 500 ms marks `peer`
/// seen. A black-holed link keeps its connection and stays unseen.
pub async fn ping_loop(addr: String, peer: u64, reach: std::sync::Arc<Reachability>) {
    loop {
        if let Ok(mut s) = TcpStream::connect(&addr).await {
            let mut b = [0u8; 1];
            loop {
                if s.write_all(&[PING]).await.is_err() {
                    break;
                }
                match tokio::time::timeout(Duration::from_millis(500), s.read(&mut b)).await {
                    Ok(Ok(1)) => reach.saw(peer),
                    Ok(_) => break,
                    Err(_) => {}
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Answers each ping byte with a pong byte.
pub async fn pong_conn(mut s: TcpStream) {
    let mut b = [0u8; 1];
    while let Ok(1) = s.read(&mut b).await {
        if s.write_all(&b).await.is_err() {
            return;
        }
    }
}

/// Raft port: a connection whose first byte is a ping gets pongs; one that starts otherwise
/// (the HTTP/2 client preface of a probe) gets the minimal HTTP/2 server.
pub async fn raft_conn(s: TcpStream) {
    let mut first = [0u8; 1];
    match s.peek(&mut first).await {
        Ok(1) if first[0] == PING => pong_conn(s).await,
        Ok(1) => super::http2::serve_conn(s).await,
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_and_majority_follow_what_is_reachable() {
        let r = Reachability::default();
        assert_eq!(r.leader(2, 3), None);
        assert!(!r.majority_of(2, &[1, 2, 3]));
        r.saw(3);
        assert_eq!(r.leader(2, 3), Some(2));
        assert!(r.majority_of(2, &[1, 2, 3]));
        r.saw(1);
        assert_eq!(r.leader(2, 3), Some(1));
        assert!(r.majority_of(2, &[2]));
    }
}
