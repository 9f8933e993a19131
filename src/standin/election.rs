//! Partition leader elections. Every 100 ms each node looks at the partitions it follows: one
//! whose leader it has not heard for [`ELECTION_TIMEOUT`] plus a stagger by its place among the
//! replicas (so the preferred, lower-placed replica tries first), while its Raft-link
//! heartbeats reach a majority of the replicas, makes it a candidate for the next epoch. It asks
//! the other replicas over its WAL links; with a majority of votes (its own included) it leads.
//! Votes follow [`super::partition::grant_vote`]: only a log at least as up to date wins, so
//! every committed entry survives. The `no-failover` bug turns all of this off (the links it
//! holds stay open: replication and topic syncs go on).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::broker::{Broker, PartitionKey};
use super::bugs::Bug;
use super::partition::ELECTION_TIMEOUT;
use super::replication::{Links, VoteCall, VoteReq, CALL_TIMEOUT};

/// Extra wait per place among the replicas.
pub const STAGGER: Duration = Duration::from_millis(500);
const TICK: Duration = Duration::from_millis(100);

/// How long replica `me` waits without its leader before standing.
pub fn patience(me: u64, replicas: &[u64]) -> Duration {
    let place = replicas.iter().position(|r| *r == me).unwrap_or(replicas.len());
    ELECTION_TIMEOUT + STAGGER * place as u32
}

/// Runs elections for this node until the process ends.
pub async fn run(broker: Arc<Broker>, links: Links) {
    if broker.has(Bug::NoFailover) {
        // No elections, but the WAL links live on: they end when `links` is dropped.
        let _links = links;
        return std::future::pending().await;
    }
    let campaigning = Arc::new(std::sync::Mutex::new(BTreeSet::<PartitionKey>::new()));
    loop {
        tokio::time::sleep(TICK).await;
        let now = Instant::now();
        let mut stand = Vec::new();
        {
            let mut st = broker.lock();
            let busy = campaigning.lock().unwrap_or_else(|e| e.into_inner());
            for (key, p) in st.partitions.iter_mut() {
                if p.is_leader() || busy.contains(key) {
                    continue;
                }
                if p.silence(now) < patience(broker.id(), &p.spec.replicas) {
                    continue;
                }
                if !broker.reach.majority_of(broker.id(), &p.spec.replicas) {
                    continue;
                }
                match p.stand(now) {
                    Ok(req) => stand.push((key.clone(), req, p.spec.replicas.clone())),
                    Err(e) => println!("stand-in node {}: cannot stand for {}-{}: {e}", broker.id(), key.0, key.1),
                }
            }
        }
        for (key, req, replicas) in stand {
            campaigning.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone());
            let (broker, links, campaigning) = (broker.clone(), links.clone(), campaigning.clone());
            tokio::spawn(async move {
                campaign(&broker, &links, &key, req, &replicas).await;
                campaigning.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
            });
        }
    }
}

/// Asks every other replica for its vote; leads on a majority.
async fn campaign(broker: &Broker, links: &Links, key: &PartitionKey, req: VoteReq, replicas: &[u64]) {
    let deadline = Instant::now() + CALL_TIMEOUT * 2;
    let mut answers = Vec::new();
    for peer in replicas.iter().copied().filter(|r| *r != broker.id()) {
        let (tx, rx) = oneshot::channel();
        if links.ask(peer, VoteCall { req: req.clone(), deadline, reply: tx }) {
            answers.push(rx);
        }
    }
    let mut votes = 1;
    for rx in answers {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Ok(Ok(reply)) = tokio::time::timeout(left, rx).await {
            votes += usize::from(reply.granted);
        }
    }
    if votes * 2 <= replicas.len() {
        return;
    }
    let mut st = broker.lock();
    let Some(p) = st.partitions.get_mut(key) else { return };
    match p.win(req.epoch) {
        Ok(true) => {
            println!(
                "stand-in node {}: leads {}-{} at epoch {} ({votes} of {} votes; log end {})",
                broker.id(),
                key.0,
                key.1,
                req.epoch,
                replicas.len(),
                p.log.end_offset()
            );
            drop(st);
            broker.bump();
        }
        Ok(false) => {}
        Err(e) => println!("stand-in node {}: cannot take over {}-{}: {e}", broker.id(), key.0, key.1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preferred_replica_tries_first() {
        assert_eq!(patience(2, &[2, 3, 1]), ELECTION_TIMEOUT);
        assert_eq!(patience(1, &[2, 3, 1]), ELECTION_TIMEOUT + STAGGER * 2);
    }
}
