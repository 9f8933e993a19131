//! Traffic control on a node's links: tc tbf bandwidth (on the namespace's `eth0` for what the
//! node sends, on the veth's host end for what it receives), qdiscs read back from `tc -j`, and
//! netem detection (this kernel may not have `sch_netem`; that is reported, never an error).

use serde::{Deserialize, Serialize};

use super::cmd;
use super::NetnsError;

/// Which end of a node's veth pair a qdisc sits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// `eth0` inside the namespace: shapes what the node sends.
    Node,
    /// The host end in the root namespace: shapes what the node receives.
    Host,
}

/// One qdisc as `tc -j qdisc show` prints it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Qdisc {
    pub kind: String,
    #[serde(default)]
    pub handle: String,
    #[serde(default)]
    pub root: bool,
    #[serde(default)]
    pub options: QdiscOptions,
}

/// The tbf options (`rate` in bytes per second, `burst` in bytes, `lat` in microseconds).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct QdiscOptions {
    #[serde(default)]
    pub rate: Option<u64>,
    #[serde(default)]
    pub burst: Option<u64>,
    #[serde(default)]
    pub lat: Option<u64>,
}

/// The `tc ... root tbf ...` arguments for a rate in bits per second: a burst of 10 ms at that
/// rate (at least 16 KiB, so one GSO segment fits) and at most 200 ms of queue.
pub(crate) fn tbf_args(rate_bits_per_sec: u64) -> Vec<String> {
    let burst = (rate_bits_per_sec / 8 / 100).max(16 * 1024);
    vec![
        "tbf".into(),
        "rate".into(),
        format!("{rate_bits_per_sec}bit"),
        "burst".into(),
        burst.to_string(),
        "latency".into(),
        "200ms".into(),
    ]
}

/// Replaces the root qdisc of `dev` with tbf at `rate_bits_per_sec` and reads it back.
pub(crate) fn set_tbf(netns: Option<&str>, dev: &str, rate_bits_per_sec: u64) -> Result<Qdisc, NetnsError> {
    let mut args: Vec<String> = netns.map(|n| vec!["-n".to_string(), n.to_string()]).unwrap_or_default();
    args.extend(["qdisc", "replace", "dev", dev, "root"].map(String::from));
    args.extend(tbf_args(rate_bits_per_sec));
    cmd::tc(args).run()?;
    let root = root_qdisc(netns, dev)?;
    let wanted = rate_bits_per_sec / 8;
    if root.kind != "tbf" || root.options.rate != Some(wanted) {
        return Err(NetnsError::ReadBack {
            what: format!("the root qdisc of {dev}"),
            wanted: format!("tbf at {wanted} bytes/s"),
            found: format!("{} at {:?} bytes/s", root.kind, root.options.rate),
        });
    }
    Ok(root)
}

/// Deletes the root qdisc of `dev` (back to the default one).
pub(crate) fn clear_root(netns: Option<&str>, dev: &str) -> Result<(), NetnsError> {
    let mut args: Vec<String> = netns.map(|n| vec!["-n".to_string(), n.to_string()]).unwrap_or_default();
    args.extend(["qdisc", "del", "dev", dev, "root"].map(String::from));
    cmd::tc(args).run().map(|_| ())
}

/// Every qdisc of `dev`.
pub fn qdiscs(netns: Option<&str>, dev: &str) -> Result<Vec<Qdisc>, NetnsError> {
    let mut args: Vec<String> = netns.map(|n| vec!["-n".to_string(), n.to_string()]).unwrap_or_default();
    args.extend(["-j", "qdisc", "show", "dev", dev].map(String::from));
    cmd::tc(args).json()
}

/// The root qdisc of `dev`.
pub fn root_qdisc(netns: Option<&str>, dev: &str) -> Result<Qdisc, NetnsError> {
    qdiscs(netns, dev)?.into_iter().find(|q| q.root).ok_or_else(|| NetnsError::ReadBack {
        what: format!("the qdiscs of {dev}"),
        wanted: "a root qdisc".into(),
        found: "none".into(),
    })
}

/// Whether tc netem (delay, jitter, duplication, reordering, corruption) can be used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "netem")]
pub enum NetemSupport {
    Available,
    /// `detail` is what tc or ip said.
    NotAvailable {
        detail: String,
    },
}

impl std::fmt::Display for NetemSupport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetemSupport::Available => write!(f, "tc netem is available"),
            NetemSupport::NotAvailable { detail } => {
                write!(f, "tc netem is not available on this kernel ({detail}); delay, jitter, duplication, reordering and corruption need it")
            }
        }
    }
}

/// Tries a netem qdisc on `lo` of the throwaway namespace `netns` (made and removed by the
/// caller) and removes it again.
pub(crate) fn probe_netem(netns: &str) -> NetemSupport {
    match cmd::tc(["-n", netns, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"]).run() {
        Ok(_) => {
            let _ = clear_root(Some(netns), "lo");
            NetemSupport::Available
        }
        Err(NetnsError::Command { stderr, .. }) => NetemSupport::NotAvailable { detail: stderr },
        Err(e) => NetemSupport::NotAvailable { detail: e.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tbf_is_read_back_from_tc_json() {
        let q: Vec<Qdisc> = serde_json::from_str(
            r#"[{"kind":"tbf","handle":"8001:","root":true,"refcnt":3,"options":{"rate":500000,"burst":4096,"lat":400000}}]"#,
        )
        .unwrap();
        assert_eq!(q[0].kind, "tbf");
        assert_eq!(q[0].options.rate, Some(500_000));
        let plain: Vec<Qdisc> =
            serde_json::from_str(r#"[{"kind":"noqueue","handle":"0:","root":true,"refcnt":2,"options":{}}]"#).unwrap();
        assert_eq!(plain[0].options, QdiscOptions::default());
        assert_eq!(tbf_args(4_000_000), ["tbf", "rate", "4000000bit", "burst", "16384", "latency", "200ms"]);
        assert_eq!(tbf_args(100_000_000)[4], "125000");
    }

    #[test]
    fn netem_absence_is_said_plainly() {
        let none = NetemSupport::NotAvailable { detail: "Error: Specified qdisc kind is unknown.".into() };
        assert!(none.to_string().starts_with("tc netem is not available on this kernel"));
    }
}
