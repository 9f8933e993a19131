//! The observer: samples the cluster while a scenario runs, asking every node separately (its
//! admin API, which no fault cuts) who leads Raft and, per partition of the test topic, the
//! leader, replicas and ISR. Each answer, or the failure to answer, is an [`Observation`] in
//! the history.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::cluster::admin::AdminClient;
use crate::history::{Observation, PartitionView};
use crate::workload::Recorder;

/// A running observer; `stop` returns what it saw.
pub struct Observer {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    seen: Arc<Mutex<Vec<Observation>>>,
    nodes: Vec<(u8, AdminClient)>,
    topic: String,
    rec: Arc<Recorder>,
}

impl Observer {
    /// Starts sampling every `every`.
    pub fn start(nodes: Vec<(u8, AdminClient)>, topic: &str, rec: Arc<Recorder>, every: Duration) -> Observer {
        let stop = CancellationToken::new();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let task = {
            let (stop, seen, nodes, topic, rec) =
                (stop.clone(), seen.clone(), nodes.clone(), topic.to_string(), rec.clone());
            tokio::spawn(async move {
                while !stop.is_cancelled() {
                    let round = round(&nodes, &topic, &rec).await;
                    seen.lock().unwrap().extend(round);
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(every) => {}
                    }
                }
            })
        };
        Observer { stop, task, seen, nodes, topic: topic.to_string(), rec }
    }

    /// One more round now (e.g. after the recovery phase), kept with the rest.
    pub async fn sample(&self) {
        let r = round(&self.nodes, &self.topic, &self.rec).await;
        self.seen.lock().unwrap().extend(r);
    }

    /// Each partition's leader as most of the nodes' latest answers name it.
    pub fn partition_leaders(&self, ids: &[u8]) -> std::collections::BTreeMap<i32, u8> {
        crate::history::majority_leaders(&self.seen.lock().unwrap(), ids)
    }

    /// Whether the latest observation of every node in `ids` answered and all name the same
    /// leader for every partition they list.
    pub fn last_round_agrees(&self, ids: &[u8]) -> bool {
        crate::history::latest_agree(&self.seen.lock().unwrap(), ids)
    }

    pub async fn stop(mut self) -> Vec<Observation> {
        self.stop.cancel();
        let _ = (&mut self.task).await;
        let mut out = std::mem::take(&mut *self.seen.lock().unwrap());
        out.sort_by_key(|o| (o.at_us, o.node));
        out
    }
}

/// An observer dropped without `stop` (a scenario that ended early) stops asking at once.
impl Drop for Observer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Asks every node at once; the time of each observation is when its answer arrived.
pub async fn round(nodes: &[(u8, AdminClient)], topic: &str, rec: &Recorder) -> Vec<Observation> {
    let asks = nodes.iter().map(|(id, admin)| async move {
        let answer = admin.status().await;
        let at_us = rec.now_us();
        match answer {
            Ok(s) => Observation {
                at_us,
                node: *id,
                raft_leader: s.leader_id.and_then(|l| u8::try_from(l).ok()),
                partitions: s
                    .partitions
                    .iter()
                    .filter(|p| p.topic == topic)
                    .map(|p| PartitionView {
                        partition: p.partition,
                        leader: p.leader.and_then(|l| u8::try_from(l).ok()),
                        replicas: p.replicas.iter().filter_map(|r| u8::try_from(*r).ok()).collect(),
                        isr: p.isr.iter().filter_map(|r| u8::try_from(*r).ok()).collect(),
                    })
                    .collect(),
                error: None,
            },
            Err(e) => Observation { at_us, node: *id, raft_leader: None, partitions: Vec::new(), error: Some(e) },
        }
    });
    join_vec(asks.map(Box::pin).collect()).await
}

/// Runs the futures concurrently (a paused node's timeout must not delay the others' answers)
/// and keeps their order.
async fn join_vec<F: std::future::Future + Unpin>(mut fs: Vec<F>) -> Vec<F::Output> {
    use std::future::poll_fn;
    use std::task::Poll;
    let mut outs: Vec<Option<F::Output>> = fs.iter().map(|_| None).collect();
    poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in fs.iter_mut().enumerate() {
            if outs[i].is_none() {
                match std::pin::Pin::new(f).poll(cx) {
                    Poll::Ready(v) => outs[i] = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outs.into_iter().map(|o| o.expect("every future finished")).collect()
}
