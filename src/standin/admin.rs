//! The admin HTTP API the harness reads (`src/cluster/admin.rs`): `/admin/status` (the
//! cluster-level leader this node sees and, per partition, leader, epoch, replicas, ISR, high
//! watermark and log end as this node knows them) and `/admin/health`. Every answer carries a
//! `Date` header from this node's wall clock, as Chronik's (hyper) does: a clock skew is read
//! from it.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::broker::Broker;

/// What the admin API reports.
#[derive(Clone, Copy, Debug)]
pub struct AdminOptions {
    /// Never report a cluster-level leader (a node about to crash on purpose, or the
    /// `startup-hang` bug).
    pub hide_leader: bool,
}

pub async fn serve(listener: TcpListener, broker: Arc<Broker>, options: AdminOptions) {
    while let Ok((s, _)) = listener.accept().await {
        tokio::spawn(conn(s, broker.clone(), options));
    }
}

/// The `/admin/status` body.
pub fn status(broker: &Broker, options: AdminOptions) -> serde_json::Value {
    let ids = broker.config.ids();
    let leader = if options.hide_leader { None } else { broker.reach.leader(broker.id(), ids.len()) };
    let st = broker.lock();
    let now = Instant::now();
    let mut partitions = Vec::new();
    for meta in st.topics.values() {
        for index in 0..meta.partitions {
            let look = broker.look(&st, meta, index);
            let local = st.partitions.get(&(meta.name.clone(), index));
            partitions.push(json!({
                "topic": meta.name,
                "partition": index,
                "leader": look.leader,
                "leader_epoch": look.epoch,
                "replicas": look.replicas,
                "isr": look.isr,
                "high_watermark": local.map(|p| p.high_watermark()),
                "log_end": local.map(|p| p.log.end_offset()),
                "in_sync_now": local.map(|p| p.isr(now)),
            }));
        }
    }
    json!({
        "node_id": broker.id(),
        "leader_id": leader,
        "is_leader": leader == Some(broker.id()),
        "nodes": ids,
        "partitions": partitions,
        "server": "chronik-chaos stand-in (not Chronik)",
        "bugs": broker.knobs.bugs.to_string(),
    })
}

async fn conn(mut s: TcpStream, broker: Arc<Broker>, options: AdminOptions) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 64 * 1024 {
            return;
        }
    }
    let request = String::from_utf8_lossy(&buf);
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (code, body) = match path.as_str() {
        "/admin/status" => ("200 OK", status(&broker, options)),
        "/admin/health" => {
            let leader =
                if options.hide_leader { None } else { broker.reach.leader(broker.id(), broker.config.ids().len()) };
            (
                "200 OK",
                json!({"status": "ok", "node_id": broker.id(), "is_leader": leader == Some(broker.id()), "cluster_nodes": broker.config.ids().len()}),
            )
        }
        _ => ("404 Not Found", json!({"error": "not found"})),
    };
    let body = body.to_string();
    let resp = format!(
        "HTTP/1.1 {code}\r\ndate: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        httpdate::fmt_http_date(SystemTime::now()),
        body.len()
    );
    let _ = s.write_all(resp.as_bytes()).await;
}
