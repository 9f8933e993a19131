//! Client for a Chronik node's admin HTTP API (`/admin/status`, `/admin/health`): who leads
//! Raft, which node leads each partition, and the node's wall clock (its answers' `Date` header).

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// `GET /admin/status`. Unknown fields are ignored; fields a version lacks default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node_id: u64,
    /// The Raft leader this node knows of; `None` until one is known.
    #[serde(default)]
    pub leader_id: Option<u64>,
    #[serde(default)]
    pub is_leader: bool,
    #[serde(default)]
    pub partitions: Vec<PartitionStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionStatus {
    pub topic: String,
    pub partition: i32,
    #[serde(default)]
    pub leader: Option<u64>,
    #[serde(default)]
    pub replicas: Vec<u64>,
    #[serde(default)]
    pub isr: Vec<u64>,
}

/// The node's wall clock as its answer to one request showed it: the `Date` header (whole
/// seconds, rounded down) stamped between `sent` and `received` by our clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeClock {
    pub sent: SystemTime,
    pub received: SystemTime,
    pub date: SystemTime,
}

/// Admin API of one node.
#[derive(Clone, Debug)]
pub struct AdminClient {
    http: reqwest::Client,
    base: String,
    api_key: Option<String>,
}

impl AdminClient {
    /// The admin API at `addr` (loopback, or the node's own address in netns mode); the key is
    /// sent as `X-API-Key` when `CHRONIK_ADMIN_API_KEY` is set.
    pub fn new(addr: std::net::SocketAddr) -> AdminClient {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .connect_timeout(Duration::from_secs(1))
            .no_proxy()
            .build()
            .expect("a plain-HTTP reqwest client always builds");
        AdminClient {
            http,
            base: format!("http://{addr}"),
            api_key: std::env::var("CHRONIK_ADMIN_API_KEY").ok().filter(|k| !k.is_empty()),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub async fn status(&self) -> Result<NodeStatus, String> {
        let mut req = self.http.get(format!("{}/admin/status", self.base));
        if let Some(key) = &self.api_key {
            req = req.header("X-API-Key", key);
        }
        let resp = req.send().await.map_err(|e| format!("no answer from {}: {e}", self.base))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| format!("reading {}: {e}", self.base))?;
        if !status.is_success() {
            let hint =
                if status.as_u16() == 401 || status.as_u16() == 403 { " (set CHRONIK_ADMIN_API_KEY)" } else { "" };
            return Err(format!("{}/admin/status answered {status}{hint}: {}", self.base, body.trim()));
        }
        serde_json::from_str(&body)
            .map_err(|e| format!("{}/admin/status: unexpected JSON ({e}): {}", self.base, body.trim()))
    }
}

impl AdminClient {
    /// Reads the node's clock from the `Date` header of its answer to `/admin/health` (any
    /// status counts: the header is the server's, whatever the answer).
    pub async fn clock(&self) -> Result<NodeClock, String> {
        let mut req = self.http.get(format!("{}/admin/health", self.base));
        if let Some(key) = &self.api_key {
            req = req.header("X-API-Key", key);
        }
        let sent = SystemTime::now();
        let resp = req.send().await.map_err(|e| format!("no answer from {}: {e}", self.base))?;
        let received = SystemTime::now();
        let header = resp
            .headers()
            .get("date")
            .ok_or_else(|| format!("{}/admin/health answered without a Date header", self.base))?;
        let text = header.to_str().map_err(|e| format!("{}: unreadable Date header: {e}", self.base))?;
        let date = httpdate::parse_http_date(text)
            .map_err(|e| format!("{}: Date header `{text}` is not an HTTP date: {e}", self.base))?;
        Ok(NodeClock { sent, received, date })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_with_and_without_a_leader() {
        let s: NodeStatus = serde_json::from_str(
            r#"{"node_id":2,"leader_id":1,"is_leader":false,"nodes":[1,2,3],"extra":true,
                "partitions":[{"topic":"t","partition":0,"leader":3,"replicas":[1,2,3],"isr":[3,1]}]}"#,
        )
        .unwrap();
        assert_eq!(s.leader_id, Some(1));
        assert_eq!(s.partitions[0].leader, Some(3));
        let s: NodeStatus = serde_json::from_str(r#"{"node_id":2,"leader_id":null,"is_leader":false}"#).unwrap();
        assert_eq!(s.leader_id, None);
        assert!(s.partitions.is_empty());
    }
}
