//! Traffic control on a node's links: tc tbf bandwidth (on the namespace's `eth0` for what the
//! node sends, on the veth's host end for what it receives), either for everything or, behind an
//! htb root and u32 filters, for some peer addresses only ([`Shaping`]); qdiscs and their
//! counters read back from `tc -s -j`, and netem detection (this kernel may not have
//! `sch_netem`; that is reported, never an error).

use std::net::Ipv4Addr;

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
    /// The class it hangs under (`1:1`); `None` for the root.
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub options: QdiscOptions,
    /// Its counters, printed with `tc -s` only (`None` otherwise, never zeros).
    #[serde(flatten)]
    pub stats: Option<QdiscStats>,
}

/// The tbf options (`rate` in bytes per second, `burst` in bytes, `lat` in microseconds), and
/// htb's count of packets that matched no class and went out unshaped (`direct_packets_stat`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct QdiscOptions {
    #[serde(default)]
    pub rate: Option<u64>,
    #[serde(default)]
    pub burst: Option<u64>,
    #[serde(default)]
    pub lat: Option<u64>,
    #[serde(default)]
    pub direct_packets_stat: Option<u64>,
}

/// A qdisc's counters as `tc -s -j` prints them: what it sent, how often a packet had to wait
/// for want of tokens (`overlimits`: for tbf, traffic held back by the rate), what it dropped
/// (its queue was full: more than `latency` worth of data waiting), and what waits now.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct QdiscStats {
    pub bytes: u64,
    pub packets: u64,
    pub drops: u64,
    pub overlimits: u64,
    pub requeues: u64,
    /// Bytes queued now.
    pub backlog: u64,
    /// Packets queued now.
    pub qlen: u64,
}

impl QdiscStats {
    /// The counters that grew since `before` (saturating: a counter that went back counts 0);
    /// `backlog` and `qlen` are the current ones.
    pub fn since(&self, before: &QdiscStats) -> QdiscStats {
        QdiscStats {
            bytes: self.bytes.saturating_sub(before.bytes),
            packets: self.packets.saturating_sub(before.packets),
            drops: self.drops.saturating_sub(before.drops),
            overlimits: self.overlimits.saturating_sub(before.overlimits),
            requeues: self.requeues.saturating_sub(before.requeues),
            backlog: self.backlog,
            qlen: self.qlen,
        }
    }
}

/// The smallest tbf bucket: two full Ethernet frames. A larger (GSO) packet is cut into
/// segments by tbf itself, so a small bucket passes everything, and at low rates a burst the
/// size of the traffic's own (Chronik's inter-node traffic is a few KB/s) still meets the limit.
const MIN_BURST: u64 = 2 * 1514;

/// The `tc ... root tbf ...` arguments for a rate in bits per second: a burst of 10 ms at that
/// rate (at least [`MIN_BURST`]) and at most 200 ms of queue.
pub(crate) fn tbf_args(rate_bits_per_sec: u64) -> Vec<String> {
    let burst = (rate_bits_per_sec / 8 / 100).max(MIN_BURST);
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

/// Which address of a packet a peer shaping's filters match: on `eth0` in the namespace (what
/// the node sends) the destination, on the veth's host end (what it receives) the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOn {
    Destination,
    Source,
}

impl MatchOn {
    /// The word in `u32 match ip dst|src`.
    fn word(self) -> &'static str {
        match self {
            MatchOn::Destination => "dst",
            MatchOn::Source => "src",
        }
    }

    /// The byte offset of that address in the IPv4 header, as u32 prints it (`off`).
    fn offset(self) -> u64 {
        match self {
            MatchOn::Destination => 16,
            MatchOn::Source => 12,
        }
    }
}

/// The handles of a peer shaping: the htb root, its one class, the tbf in that class.
pub const SHAPING_ROOT: &str = "1:";
pub const SHAPING_CLASS: &str = "1:1";
pub const SHAPING_TBF: &str = "10:";

/// The `tc` argument lists (after `[-n netns]`) that limit the packets to or from `peers` on
/// `dev` to `rate_bits_per_sec` and leave the rest alone: an htb root whose unclassified
/// packets go out through its direct queue unshaped (`default 0`), one class far faster than
/// any limit (10 Gbit/s) holding a tbf at the rate (the burst and queue of [`tbf_args`]), and
/// one u32 filter per peer address sending its packets to that class.
pub(crate) fn peer_shaping_args(
    dev: &str,
    rate_bits_per_sec: u64,
    peers: &[Ipv4Addr],
    on: MatchOn,
) -> Vec<Vec<String>> {
    let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<String>>();
    let mut out = vec![
        words(&["qdisc", "replace", "dev", dev, "root", "handle", SHAPING_ROOT, "htb", "default", "0"]),
        words(&[
            "class",
            "add",
            "dev",
            dev,
            "parent",
            SHAPING_ROOT,
            "classid",
            SHAPING_CLASS,
            "htb",
            "rate",
            "10gbit",
            "ceil",
            "10gbit",
            "burst",
            "1m",
            "cburst",
            "1m",
            "quantum",
            "60000",
        ]),
    ];
    let mut tbf = words(&["qdisc", "add", "dev", dev, "parent", SHAPING_CLASS, "handle", SHAPING_TBF]);
    tbf.extend(tbf_args(rate_bits_per_sec));
    out.push(tbf);
    for peer in peers {
        let addr = format!("{peer}/32");
        out.push(words(&[
            "filter",
            "add",
            "dev",
            dev,
            "parent",
            SHAPING_ROOT,
            "protocol",
            "ip",
            "prio",
            "1",
            "u32",
            "match",
            "ip",
            on.word(),
            &addr,
            "flowid",
            SHAPING_CLASS,
        ]));
    }
    out
}

/// What a device's qdiscs show now: its root, and the tbf of a peer shaping when the root is
/// one (`None` otherwise), with their counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shaping {
    pub root: Qdisc,
    pub tbf: Option<Qdisc>,
}

impl Shaping {
    /// Picks the root and the peer shaping's tbf out of `tc -s -j qdisc show`.
    pub fn from_qdiscs(qdiscs: Vec<Qdisc>) -> Option<Shaping> {
        let root = qdiscs.iter().find(|q| q.root)?.clone();
        let tbf = (root.kind == "htb" && root.handle == SHAPING_ROOT)
            .then(|| qdiscs.into_iter().find(|q| q.kind == "tbf" && q.parent.as_deref() == Some(SHAPING_CLASS)))
            .flatten();
        Some(Shaping { root, tbf })
    }

    /// Whether a peer shaping (htb root or a tbf anywhere) is still there.
    pub fn shaped(&self) -> bool {
        self.tbf.is_some() || matches!(self.root.kind.as_str(), "htb" | "tbf")
    }
}

/// The root qdisc of `dev` and a peer shaping's tbf under it, with counters (`tc -s -j`).
pub fn shaping(netns: Option<&str>, dev: &str) -> Result<Shaping, NetnsError> {
    let mut args: Vec<String> = netns.map(|n| vec!["-n".to_string(), n.to_string()]).unwrap_or_default();
    args.extend(["-s", "-j", "qdisc", "show", "dev", dev].map(String::from));
    let qdiscs: Vec<Qdisc> = cmd::tc(args).json()?;
    Shaping::from_qdiscs(qdiscs).ok_or_else(|| NetnsError::ReadBack {
        what: format!("the qdiscs of {dev}"),
        wanted: "a root qdisc".into(),
        found: "none".into(),
    })
}

/// One filter as `tc -j filter show` prints it (only what a peer shaping's read-back needs).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Filter {
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub options: Option<FilterOptions>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct FilterOptions {
    #[serde(default)]
    pub flowid: Option<String>,
    /// One u32 key (`{"value":"a8c070c","mask":"ffffffff","off":12}`), or several.
    #[serde(default, rename = "match")]
    pub keys: Option<serde_json::Value>,
}

/// The addresses the u32 filters under a peer shaping's root send to its class, matched `on`
/// destination or source (one whole-address key per filter, as [`peer_shaping_args`] adds
/// them); keys of another shape are left out, so a read-back sees them missing.
pub fn shaped_addresses(filters: &[Filter], on: MatchOn) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    for f in filters {
        let Some(o) = &f.options else { continue };
        if f.kind != "u32" || f.parent.as_deref() != Some(SHAPING_ROOT) || o.flowid.as_deref() != Some(SHAPING_CLASS) {
            continue;
        }
        let keys = match &o.keys {
            Some(serde_json::Value::Array(keys)) => keys.clone(),
            Some(key) => vec![key.clone()],
            None => continue,
        };
        if let [key] = keys.as_slice() {
            let value = key.get("value").and_then(|v| v.as_str()).and_then(|v| u32::from_str_radix(v, 16).ok());
            let whole = key.get("mask").and_then(|v| v.as_str()) == Some("ffffffff");
            if let (Some(v), true, Some(off)) = (value, whole, key.get("off").and_then(|v| v.as_u64())) {
                if off == on.offset() {
                    out.push(Ipv4Addr::from(v));
                }
            }
        }
    }
    out.sort();
    out
}

/// Limits the packets to or from `peers` on `dev` with [`peer_shaping_args`] and reads it back:
/// the tbf at the rate under an htb root, and exactly one filter per peer. On an error the
/// caller removes the root (what was added stays until then).
pub(crate) fn set_peer_shaping(
    netns: Option<&str>,
    dev: &str,
    rate_bits_per_sec: u64,
    peers: &[Ipv4Addr],
    on: MatchOn,
) -> Result<Shaping, NetnsError> {
    let mut want = peers.to_vec();
    want.sort();
    want.dedup();
    let ns_args: Vec<String> = netns.map(|n| vec!["-n".to_string(), n.to_string()]).unwrap_or_default();
    for args in peer_shaping_args(dev, rate_bits_per_sec, &want, on) {
        cmd::tc(ns_args.iter().cloned().chain(args)).run()?;
    }
    let shaping = shaping(netns, dev)?;
    let wanted = rate_bits_per_sec / 8;
    match &shaping.tbf {
        Some(tbf) if tbf.options.rate == Some(wanted) => {}
        other => {
            return Err(NetnsError::ReadBack {
                what: format!("the qdiscs of {dev}"),
                wanted: format!("an htb root {SHAPING_ROOT} with a tbf at {wanted} bytes/s under {SHAPING_CLASS}"),
                found: format!(
                    "root {} {}, tbf at {:?} bytes/s",
                    shaping.root.kind,
                    shaping.root.handle,
                    other.as_ref().map(|t| t.options.rate)
                ),
            })
        }
    }
    let filters: Vec<Filter> =
        cmd::tc(ns_args.into_iter().chain(["-j", "filter", "show", "dev", dev].map(String::from))).json()?;
    let found = shaped_addresses(&filters, on);
    if found != want {
        return Err(NetnsError::ReadBack {
            what: format!("the u32 filters of {dev}"),
            wanted: format!("ip {} in {want:?}", on.word()),
            found: format!("{found:?}"),
        });
    }
    Ok(shaping)
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
        assert_eq!(tbf_args(4_000_000), ["tbf", "rate", "4000000bit", "burst", "5000", "latency", "200ms"]);
        // At low rates the bucket is two full frames, not 10 ms of traffic.
        assert_eq!(tbf_args(8_000), ["tbf", "rate", "8000bit", "burst", "3028", "latency", "200ms"]);
        assert_eq!(tbf_args(100_000_000)[4], "125000");
    }

    // Captured on this machine (iproute2 6.1, kernel 6.18) with `tc -n NS -s -j qdisc show dev
    // D` and `tc -n NS -j filter show dev D`: a peer shaping at 256 kbit/s while a 128 KB transfer
    // to the shaped peer was under way, after it and a transfer to an unshaped address, and the
    // device after `tc qdisc del dev D root`.
    const SHAPING_DURING: &str = r#"[{"kind":"htb","handle":"1:","root":true,"refcnt":3,"options":{"r2q":10,"default":"0","direct_packets_stat":0,"direct_qlen":1000},"bytes":103806,"packets":75,"drops":12,"overlimits":0,"requeues":0,"backlog":18168,"qlen":12},{"kind":"tbf","handle":"10:","parent":"1:1","options":{"rate":32000,"burst":16384,"lat":200000},"bytes":103806,"packets":75,"drops":35,"overlimits":54,"requeues":0,"backlog":18168,"qlen":12}]"#;
    const SHAPING_AFTER: &str = r#"[{"kind":"htb","handle":"1:","root":true,"refcnt":3,"options":{"r2q":10,"default":"0","direct_packets_stat":38,"direct_qlen":1000},"bytes":1303552,"packets":884,"drops":42,"overlimits":0,"requeues":0,"backlog":0,"qlen":0},{"kind":"tbf","handle":"10:","parent":"1:1","options":{"rate":32000,"burst":16384,"lat":200000},"bytes":206194,"packets":145,"drops":86,"overlimits":211,"requeues":0,"backlog":0,"qlen":0}]"#;
    const HEALED: &str = r#"[{"kind":"noqueue","handle":"0:","root":true,"refcnt":2,"options":{},"bytes":0,"packets":0,"drops":0,"overlimits":0,"requeues":0,"backlog":0,"qlen":0}]"#;
    const FILTERS_SRC: &str = r#"[{"parent":"1:","protocol":"ip","pref":1,"kind":"u32","chain":0},{"parent":"1:","protocol":"ip","pref":1,"kind":"u32","chain":0,"options":{"fh":"800:","ht_divisor":1}},{"parent":"1:","protocol":"ip","pref":1,"kind":"u32","chain":0,"options":{"fh":"800::800","order":2048,"key_ht":"800","bkt":"0","flowid":"1:1","not_in_hw":true,"match":{"value":"a8c070c","mask":"ffffffff","offmask":"","off":12}}},{"parent":"1:","protocol":"ip","pref":1,"kind":"u32","chain":0,"options":{"fh":"800::801","order":2049,"key_ht":"800","bkt":"0","flowid":"1:1","not_in_hw":true,"match":{"value":"a8c0766","mask":"ffffffff","offmask":"","off":12}}}]"#;
    const FILTER_DST: &str = r#"[{"parent":"1:","protocol":"ip","pref":1,"kind":"u32","chain":0,"options":{"fh":"800::800","order":2048,"key_ht":"800","bkt":"0","flowid":"1:1","not_in_hw":true,"match":{"value":"afa0002","mask":"ffffffff","offmask":"","off":16}}}]"#;

    fn shaping_of(json: &str) -> Shaping {
        Shaping::from_qdiscs(serde_json::from_str(json).unwrap()).unwrap()
    }

    #[test]
    fn a_peer_shapings_counters_are_read_from_tc_s_json() {
        let during = shaping_of(SHAPING_DURING);
        assert_eq!((during.root.kind.as_str(), during.root.options.direct_packets_stat), ("htb", Some(0)));
        let tbf = during.tbf.clone().expect("the tbf under 1:1");
        assert_eq!((tbf.handle.as_str(), tbf.options.rate), ("10:", Some(32_000)));
        let held = QdiscStats {
            bytes: 103_806,
            packets: 75,
            drops: 35,
            overlimits: 54,
            requeues: 0,
            backlog: 18_168,
            qlen: 12,
        };
        assert_eq!(tbf.stats, Some(held));
        assert!(during.shaped());
        // The counters grow; what is queued is the current figure.
        let after = shaping_of(SHAPING_AFTER);
        let grew = after.tbf.unwrap().stats.unwrap().since(&held);
        assert_eq!((grew.bytes, grew.packets, grew.drops, grew.overlimits, grew.backlog), (102_388, 70, 51, 157, 0));
        assert_eq!(after.root.options.direct_packets_stat, Some(38));
        // Healed: the default root, no tbf.
        let healed = shaping_of(HEALED);
        assert_eq!((healed.root.kind.as_str(), &healed.tbf, healed.shaped()), ("noqueue", &None, false));
        assert_eq!(healed.root.stats.map(|s| s.packets), Some(0));
        // Without -s there are no counters, not zeros.
        let plain: Vec<Qdisc> = serde_json::from_str(
            r#"[{"kind":"tbf","handle":"8001:","root":true,"refcnt":3,"options":{"rate":500000,"burst":4096,"lat":400000}}]"#,
        )
        .unwrap();
        assert_eq!(plain[0].stats, None);
        // A plain tbf at the root (limit_bandwidth) is shaping too, but not a peer shaping's tbf.
        let root_tbf = Shaping::from_qdiscs(plain).unwrap();
        assert!(root_tbf.shaped() && root_tbf.tbf.is_none());
        // A tbf under another class is not the peer shaping's.
        let other = SHAPING_DURING.replace(r#""parent":"1:1""#, r#""parent":"1:2""#);
        assert_eq!(shaping_of(&other).tbf, None);
        assert_eq!(Shaping::from_qdiscs(Vec::new()), None);
    }

    #[test]
    fn a_peer_shapings_filters_are_read_back_by_address_and_direction() {
        let src: Vec<Filter> = serde_json::from_str(FILTERS_SRC).unwrap();
        let want: Vec<Ipv4Addr> = vec!["10.140.7.12".parse().unwrap(), "10.140.7.102".parse().unwrap()];
        assert_eq!(shaped_addresses(&src, MatchOn::Source), want);
        assert_eq!(shaped_addresses(&src, MatchOn::Destination), Vec::<Ipv4Addr>::new());
        let dst: Vec<Filter> = serde_json::from_str(FILTER_DST).unwrap();
        assert_eq!(shaped_addresses(&dst, MatchOn::Destination), ["10.250.0.2".parse::<Ipv4Addr>().unwrap()]);
        // To another class, or a partial mask: not a peer filter.
        let elsewhere: Vec<Filter> =
            serde_json::from_str(&FILTER_DST.replace(r#""flowid":"1:1""#, r#""flowid":"1:2""#)).unwrap();
        assert!(shaped_addresses(&elsewhere, MatchOn::Destination).is_empty());
        let partial: Vec<Filter> = serde_json::from_str(&FILTER_DST.replace("ffffffff", "ffffff00")).unwrap();
        assert!(shaped_addresses(&partial, MatchOn::Destination).is_empty());
        assert!(shaped_addresses(&serde_json::from_str::<Vec<Filter>>("[]").unwrap(), MatchOn::Source).is_empty());
    }

    #[test]
    fn a_peer_shaping_is_htb_a_class_a_tbf_and_one_filter_per_peer() {
        let peers: Vec<Ipv4Addr> = vec!["10.1.2.12".parse().unwrap(), "10.1.2.102".parse().unwrap()];
        let args = peer_shaping_args("eth0", 512_000, &peers, MatchOn::Destination);
        let lines: Vec<String> = args.iter().map(|a| a.join(" ")).collect();
        assert_eq!(
            lines,
            [
                "qdisc replace dev eth0 root handle 1: htb default 0",
                "class add dev eth0 parent 1: classid 1:1 htb rate 10gbit ceil 10gbit burst 1m cburst 1m quantum 60000",
                "qdisc add dev eth0 parent 1:1 handle 10: tbf rate 512000bit burst 3028 latency 200ms",
                "filter add dev eth0 parent 1: protocol ip prio 1 u32 match ip dst 10.1.2.12/32 flowid 1:1",
                "filter add dev eth0 parent 1: protocol ip prio 1 u32 match ip dst 10.1.2.102/32 flowid 1:1",
            ]
        );
        let host = peer_shaping_args("cc1a2b-h1", 512_000, &peers[..1], MatchOn::Source);
        assert_eq!(
            host.last().unwrap().join(" "),
            "filter add dev cc1a2b-h1 parent 1: protocol ip prio 1 u32 match ip src 10.1.2.12/32 flowid 1:1"
        );
    }

    #[test]
    fn netem_absence_is_said_plainly() {
        let none = NetemSupport::NotAvailable { detail: "Error: Specified qdisc kind is unknown.".into() };
        assert!(none.to_string().starts_with("tc netem is not available on this kernel"));
    }
}
