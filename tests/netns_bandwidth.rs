//! The IP-layer bandwidth limit (`kind = "bandwidth"`, `layer = "ip"`) against the real kernel:
//! a node's peer limit (htb root, tbf, u32 filters) shapes what the node exchanges with a peer's
//! address both ways and nothing else, its tbf counters show it, and removing it leaves the
//! default qdisc; the built-in `ip-inter-node-bandwidth` run with stand-in nodes
//! (`chronik-stand-in-node`, not Chronik) under `--network netns` is proven by the tbf qdiscs'
//! counters, and nothing of the run is left (namespace, veth, bridge, nft table, state file,
//! node process). The `netns_*` tests need root with `ip`, `tc` and `nft` (`.ci/run` skips them
//! by name otherwise).

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chronik_chaos::cluster::net::Network;
use chronik_chaos::netns::tc::QdiscStats;
use chronik_chaos::netns::{Direction, Fabric, NodeNet, Side};
use chronik_chaos::os;
use chronik_chaos::runner::{self, SuiteConfig, SuiteEnd};
use chronik_chaos::scenario;
use chronik_chaos::topology::TopologySpec;
use chronik_chaos::toxiproxy::server::EmbeddedServer;
use chronik_chaos::verdict::Verdict;

const NEEDS_ROOT: &str = "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and ip, tc, nft";

/// The node pids a scenario's progress named (`[name] nodes started (n1=… n2=… n3=…)`).
fn node_pids(lines: &[String], scenario: &str) -> Vec<u32> {
    let prefix = format!("[{scenario}] nodes started (");
    lines
        .iter()
        .filter_map(|l| l.split_once(&prefix).map(|(_, rest)| rest))
        .flat_map(|rest| rest.split(')').next().unwrap_or_default().split_whitespace())
        .filter_map(|kv| kv.split_once('=')?.1.parse().ok())
        .collect()
}

/// The number before `what` in `text` (`30 times (overlimits)`).
fn number_before(text: &str, what: &str) -> Option<u64> {
    let (head, _) = text.split_once(what)?;
    head.split_whitespace().last()?.parse().ok()
}

/// Moves `bytes` over one TCP connection that `node` dials to `listener` (in the root
/// namespace): from the node when `upload`, else to it. The time it took.
fn transfer(node: &NodeNet, listener: &TcpListener, bytes: usize, upload: bool) -> Duration {
    let addr = listener.local_addr().unwrap();
    let started = Instant::now();
    let dialled =
        node.enter().unwrap().run(|| TcpStream::connect_timeout(&addr, Duration::from_secs(10))).unwrap().unwrap();
    let (accepted, _) = listener.accept().unwrap();
    let (mut from, mut to) = if upload { (dialled, accepted) } else { (accepted, dialled) };
    let writer = std::thread::spawn(move || {
        from.write_all(&vec![7u8; bytes]).unwrap();
    });
    let mut got = Vec::new();
    to.read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    assert_eq!(got.len(), bytes);
    started.elapsed()
}

/// The tbf counters of node `node`'s peer limit on one end, read from the kernel now.
fn tbf(node: &NodeNet, side: Side) -> QdiscStats {
    node.shaping(side).unwrap().tbf.and_then(|t| t.stats).unwrap_or_else(|| panic!("no peer tbf on {side:?}"))
}

/// Packets htb sent past the limit on one end (`direct_packets_stat`).
fn unshaped(node: &NodeNet, side: Side) -> u64 {
    node.shaping(side).unwrap().root.options.direct_packets_stat.expect("an htb root")
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and ip, tc, nft"]
fn netns_peer_bandwidth_limit_shapes_only_traffic_with_the_peers_and_is_removed() {
    let fabric = Fabric::create().expect(NEEDS_ROOT);
    let n1 = fabric.node(1).unwrap();
    let n2 = fabric.node(2).unwrap();
    let default_root = n1.shaping(Side::Node).unwrap().root.kind;
    // The peer as node 1 meets it: the proxies to node 2 listen on its front address (in the
    // root namespace); the harness on the host address.
    let peer = TcpListener::bind((n2.front_addr(), 0)).unwrap();
    let harness = TcpListener::bind((fabric.host_addr(), 0)).unwrap();
    let peers: Vec<Ipv4Addr> = vec![n2.addr(), n2.front_addr()];

    let rate_bits = 256_000; // 32 KB/s
    let read = n1.limit_peer_bandwidth(rate_bits, &peers, Direction::Both).unwrap();
    assert_eq!(read.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [Side::Node, Side::Host]);
    for (side, shaping) in &read {
        assert_eq!(shaping.root.kind, "htb", "{side:?}");
        assert_eq!(shaping.tbf.as_ref().and_then(|t| t.options.rate), Some(32_000), "{side:?}");
    }
    // A second limit on the same ends is refused, naming the device.
    let e = n1.limit_peer_bandwidth(rate_bits, &peers, Direction::Outbound).unwrap_err().to_string();
    assert!(e.contains("eth0 of node 1 already has a bandwidth limit"), "{e}");

    // Traffic with the harness passes through htb's direct queue: the tbfs see none of it.
    const FREE: usize = 4_000_000;
    let free_up = transfer(&n1, &harness, FREE, true);
    let free_down = transfer(&n1, &harness, FREE, false);
    println!("with the harness: {FREE} B up in {free_up:?}, down in {free_down:?}");
    assert_eq!((tbf(&n1, Side::Node).packets, tbf(&n1, Side::Host).packets), (0, 0));
    assert!(unshaped(&n1, Side::Node) > 0 && unshaped(&n1, Side::Host) > 0);

    // With the peer: each way through its tbf, at the rate (16 KiB of burst aside).
    const BYTES: usize = 96_000;
    for (side, upload) in [(Side::Node, true), (Side::Host, false)] {
        let took = transfer(&n1, &peer, BYTES, upload);
        let stats = tbf(&n1, side);
        println!(
            "with the peer, {}: {BYTES} B in {took:?} ({:.1} KB/s); tbf {side:?}: {stats:?}",
            if upload { "up" } else { "down" },
            BYTES as f64 / took.as_secs_f64() / 1e3
        );
        assert!(took >= Duration::from_secs(2), "96 KB through 32 KB/s takes at least 2 s, took {took:?}");
        assert!(stats.bytes >= BYTES as u64, "{side:?}: {stats:?}");
        assert!(stats.overlimits > 0, "{side:?}: traffic was held back: {stats:?}");
    }

    n1.clear_bandwidth().unwrap();
    for side in [Side::Node, Side::Host] {
        let after = n1.shaping(side).unwrap();
        assert!(!after.shaped(), "{side:?}: {after:?}");
    }
    assert_eq!(n1.shaping(Side::Node).unwrap().root.kind, default_root);
    let after = transfer(&n1, &peer, BYTES, true);
    println!("with the peer, limit removed: {BYTES} B in {after:?}");
    // Without peers there is nothing to limit.
    let e = n1.limit_peer_bandwidth(rate_bits, &[], Direction::Both).unwrap_err().to_string();
    assert!(e.contains("needs peers"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and ip, tc, nft"]
async fn netns_ip_inter_node_bandwidth_is_proven_by_tbf_counters_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fabric = Arc::new(Fabric::create().expect(NEEDS_ROOT));
    let run = fabric.run().to_string();
    let toxiproxy = EmbeddedServer::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let client = toxiproxy.client();
    let cfg = SuiteConfig {
        network: Network::Netns(Arc::clone(&fabric)),
        ..support::standin_suite(TopologySpec::default(), dir.path().join("out"), 29)
    };
    drop(fabric);
    let lines = Mutex::new(Vec::<String>::new());
    let progress = |line: &str| {
        eprintln!("{line}");
        lines.lock().unwrap().push(line.to_string());
    };
    let (mut results, mut left) = (Vec::new(), Vec::new());
    let end = runner::run_suite(
        &cfg,
        &client,
        &scenario::select(&scenario::builtin(), &["ip-inter-node-bandwidth".to_string()]).unwrap(),
        &progress,
        &mut |r| {
            // After the scenario only the run's bridge and state file remain.
            let pids = node_pids(&lines.lock().unwrap(), &r.name);
            let objects: Vec<String> = support::netns_leftovers(&run)
                .into_iter()
                .filter(|o| o != &format!("{run}-br") && !o.ends_with(".json"))
                .collect();
            left.push((pids.len(), pids.into_iter().filter(|p| os::pid_alive(*p)).count(), objects));
            results.push(r);
            Ok(())
        },
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(end, SuiteEnd::Finished);
    let r = &results[0];
    let f = &r.fidelity;
    for e in f.evidence.iter().chain(&f.problems) {
        println!("{e}");
    }
    assert_eq!(r.verdict, Verdict::Pass, "{:#?}", (&r.explanation, f));
    assert!(f.proven, "{f:?}");
    // Proven by the kernel: the tbfs held traffic back (or dropped some) during the hold.
    let line = f.evidence.iter().find(|e| e.starts_with("IP-layer bandwidth at 1000 B/s")).expect("tbf evidence");
    let held = number_before(line, "times (overlimits)").unwrap();
    let dropped = number_before(line, "packets dropped").unwrap();
    assert!(held + dropped > 0, "{line}");
    assert!(number_before(line, "B in").unwrap() > 0, "{line}");
    // Every node's both ends were read, each with its counters.
    for n in 1..=3 {
        assert!(line.contains(&format!("n{n} to peers (eth0): ")), "{line}");
        assert!(line.contains(&format!("n{n} from peers ({run}-h{n}): ")), "{line}");
    }
    assert!(f.evidence.iter().any(|e| e.starts_with("in place: tc tbf at 1000 B/s")), "{f:?}");
    // Heal removed every limit, read back from tc.
    let healed = f.evidence.iter().find(|e| e.starts_with("removed: the bandwidth limits of 6 veth end(s)"));
    assert!(healed.is_some_and(|e| e.contains("none is shaped")), "{f:?}");
    let (started, alive, objects) = &left[0];
    assert_eq!((*started, *alive), (3, 0), "three node pids named, none left running");
    assert!(objects.is_empty(), "left {objects:?}");

    // The run's network goes with its last handle.
    drop(cfg);
    assert_eq!(support::netns_leftovers(&run), Vec::<String>::new());
}
