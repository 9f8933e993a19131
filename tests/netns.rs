//! The network-namespace substrate against the real kernel (root, `ip`, `nft`, `tc`):
//! teardown leaves no namespace, link, rule, state file or process behind after success, an
//! error, a panic and a SIGKILL of the owner (then the sweep removes the leftovers);
//! connectivity between a node, the harness side and another node; a drop rule's timeout and
//! counter; loss at 10% counted by the kernel; tbf applied and removed; netem detection; the
//! privilege error of an unprivileged process. Every test is ignored without `--include-ignored`
//! (`.ci/run` passes it when it runs as root with those tools, and skips `netns_` otherwise).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chronik_chaos::netns::{
    self, check_privileges, ip, nft, Direction, Fabric, IpFault, NetemSupport, NetnsError, NodeNet, Side,
};

const ROLE: &str = "CHRONIK_CHAOS_NETNS_TEST_ROLE";
const ROLE_DIR: &str = "CHRONIK_CHAOS_NETNS_TEST_DIR";

/// A process we spawned; dropped → SIGKILL and reaped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a run leaves to check afterwards: its name and its namespaces' inodes.
struct Trace {
    run: String,
    inodes: Vec<u64>,
}

fn trace(fabric: &Fabric, nodes: &[&NodeNet]) -> Trace {
    Trace { run: fabric.run().to_string(), inodes: nodes.iter().map(|n| n.enter().unwrap().inode().unwrap()).collect() }
}

/// Everything of `run` that still exists.
fn leftovers(t: &Trace) -> Vec<String> {
    let mine = |n: &str| netns::sweep::run_of(n, netns::PRODUCT_PREFIX) == Some(t.run.as_str());
    let mut left: Vec<String> = ip::netns_names().unwrap().into_iter().filter(|n| mine(n)).collect();
    left.extend(ip::links().unwrap().into_iter().map(|l| l.ifname).filter(|n| mine(n)));
    left.extend(nft::tables(None).unwrap().into_iter().filter(|t| mine(&t.name)).map(|t| format!("table {}", t.name)));
    let state = Path::new(netns::STATE_DIR).join(format!("{}.json", t.run));
    if state.exists() {
        left.push(state.display().to_string());
    }
    for inode in &t.inodes {
        left.extend(netns::exec::processes_in(*inode).into_iter().map(|p| format!("pid {p} in net:[{inode}]")));
    }
    left
}

fn assert_clean(t: &Trace) {
    let left = leftovers(t);
    assert!(left.is_empty(), "run {} left behind: {left:?}", t.run);
}

/// Spawns `sleep 600` inside the node's namespace in its own process group.
fn sleeper(node: &NodeNet) -> Proc {
    let mut cmd = node.command("sleep").unwrap();
    cmd.arg("600").process_group(0).stdin(Stdio::null());
    let child = cmd.spawn().unwrap();
    wait_for("the sleeper to be inside the namespace", || node.processes().contains(&child.id()));
    Proc(child)
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs this test binary again with one test and a role for it.
fn run_self(test: &str, role: &str, dir: &Path) -> Command {
    run_test_binary(&std::env::current_exe().unwrap(), test, role, dir)
}

/// As [`run_self`], with this test binary at `exe` (a copy).
fn run_test_binary(exe: &Path, test: &str, role: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(exe);
    cmd.args([test, "--exact", "--include-ignored", "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env(ROLE_DIR, dir)
        .stdin(Stdio::null());
    cmd
}

const NEEDS_ROOT: &str = "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and ip, tc, nft";

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and ip, tc, nft"]
fn netns_teardown_after_success_leaves_nothing() {
    let fabric = Fabric::create().expect(NEEDS_ROOT);
    let n1 = fabric.node(1).unwrap();
    let n2 = fabric.node(2).unwrap();
    let t = trace(&fabric, &[&n1, &n2]);
    assert_eq!(n1.netns(), format!("{}-n1", t.run));
    assert_eq!(n1.addr(), fabric.subnet().host(11));
    assert_eq!(n2.front_addr(), fabric.subnet().host(102));
    let routes = ip::routes_in(n1.netns()).unwrap();
    assert!(
        routes.iter().any(|r| r.dst == "default" && r.gateway == Some(fabric.host_addr().to_string())),
        "{routes:?}"
    );
    n1.inject(&IpFault::Drop { peers: vec![n2.addr()], direction: Direction::Both }).unwrap();
    n2.inject(&IpFault::Loss { percent: 5, peers: vec![], direction: Direction::Inbound }).unwrap();
    n2.limit_bandwidth(10_000_000, Direction::Both).unwrap();
    {
        let _p = sleeper(&n1);
        assert_eq!(n1.processes().len(), 1);
    }
    assert!(!leftovers(&t).is_empty());
    n1.teardown().unwrap();
    n2.teardown().unwrap();
    fabric.teardown().unwrap();
    assert_clean(&t);
}

fn build_then_fail(out: &mut Option<Trace>) -> Result<(), NetnsError> {
    let fabric = Fabric::create()?;
    let n1 = fabric.node(1)?;
    n1.inject(&IpFault::Drop { peers: vec![fabric.host_addr()], direction: Direction::Outbound })?;
    n1.limit_bandwidth(1_000_000, Direction::Outbound)?;
    *out = Some(trace(&fabric, &[&n1]));
    let _p = sleeper(&n1);
    let _again = fabric.node(1)?; // the error: node 1 exists
    unreachable!("a second node 1 is refused");
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and ip, tc, nft"]
fn netns_teardown_after_an_error_return_leaves_nothing() {
    let mut t = None;
    let err = build_then_fail(&mut t).unwrap_err();
    assert!(matches!(err, NetnsError::NodeExists(1)), "{err}");
    assert_clean(&t.unwrap());

    // An error in the middle of making a node (an id out of range) leaves nothing either.
    let fabric = Fabric::create().unwrap();
    let t = trace(&fabric, &[]);
    assert!(matches!(fabric.node(90), Err(NetnsError::NodeId(90))));
    // ... and one halfway through: the veth's name is taken after the namespace exists.
    let squatter = format!("{}-h2", fabric.run());
    let status = Command::new("ip").args(["link", "add", squatter.as_str(), "type", "bridge"]).status().unwrap();
    assert!(status.success());
    let err = fabric.node(2).err().expect("the veth cannot be made");
    println!("node 2 failed halfway: {err}");
    assert!(!ip::netns_names().unwrap().contains(&format!("{}-n2", fabric.run())), "the half-made namespace is gone");
    assert!(Command::new("ip").args(["link", "del", squatter.as_str()]).status().unwrap().success());
    let n2 = fabric.node(2).expect("node 2 can be made once the name is free");
    drop(n2);
    drop(fabric);
    assert_clean(&t);
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and ip, tc, nft"]
fn netns_teardown_after_a_panic_leaves_nothing() {
    let seen = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let fabric = Fabric::create().unwrap();
        let n1 = fabric.node(1).unwrap();
        let n3 = fabric.node(3).unwrap();
        n3.inject(&IpFault::Loss { percent: 50, peers: vec![n1.addr()], direction: Direction::Both }).unwrap();
        *seen.lock().unwrap() = Some(trace(&fabric, &[&n1, &n3]));
        let _p = sleeper(&n3);
        panic!("a scenario panics with its network up");
    }));
    assert!(result.is_err());
    assert_clean(&seen.into_inner().unwrap().unwrap());
}

/// What the child of the SIGKILL test reports once its run is up.
#[derive(serde::Serialize, serde::Deserialize)]
struct ChildReport {
    run: String,
    inodes: Vec<u64>,
    sleeper: u32,
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and ip, tc, nft"]
fn netns_leftovers_of_a_killed_run_are_swept() {
    const TEST: &str = "netns_leftovers_of_a_killed_run_are_swept";
    if std::env::var(ROLE).as_deref() == Ok("killed-owner") {
        // The child: build a run, start a process in it, report, and wait to be killed.
        let dir = PathBuf::from(std::env::var(ROLE_DIR).unwrap());
        let fabric = Fabric::create().unwrap();
        let n1 = fabric.node(1).unwrap();
        let n2 = fabric.node(2).unwrap();
        n1.inject(&IpFault::Drop { peers: vec![n2.addr()], direction: Direction::Both }).unwrap();
        n2.limit_bandwidth(1_000_000, Direction::Inbound).unwrap();
        let sleeper = sleeper(&n2);
        let t = trace(&fabric, &[&n1, &n2]);
        let report = ChildReport { run: t.run, inodes: t.inodes, sleeper: sleeper.0.id() };
        std::fs::write(dir.join("report.json.tmp"), serde_json::to_vec(&report).unwrap()).unwrap();
        std::fs::rename(dir.join("report.json.tmp"), dir.join("report.json")).unwrap();
        std::mem::forget(sleeper);
        loop {
            std::thread::sleep(Duration::from_secs(60));
        }
    }
    check_privileges().expect(NEEDS_ROOT);
    let dir = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(dir.path().join("child.log")).unwrap();
    let child =
        run_self(TEST, "killed-owner", dir.path()).stdout(log.try_clone().unwrap()).stderr(log).spawn().unwrap();
    let mut child = Proc(child);
    let report_path = dir.path().join("report.json");
    wait_for("the child to report its run", || {
        if let Ok(Some(status)) = child.0.try_wait() {
            let log = std::fs::read_to_string(dir.path().join("child.log")).unwrap_or_default();
            panic!("the child ended ({status}) before its run was up:\n{log}");
        }
        report_path.exists()
    });
    let report: ChildReport = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    let t = Trace { run: report.run.clone(), inodes: report.inodes.clone() };

    child.0.kill().unwrap(); // SIGKILL: no destructor runs
    child.0.wait().unwrap();
    let left = leftovers(&t);
    println!("after SIGKILL of the owner, run {} left: {left:?}", t.run);
    assert!(left.iter().any(|l| l == &format!("{}-n1", t.run)), "{left:?}");
    assert!(left.iter().any(|l| l == &format!("{}-br", t.run)), "{left:?}");
    assert!(left.iter().any(|l| l.starts_with(&format!("pid {} ", report.sleeper))), "{left:?}");

    let swept = netns::sweep(netns::PRODUCT_PREFIX).unwrap();
    print!("sweep notice:\n{swept}");
    let run = swept.runs.iter().find(|r| r.run == t.run).expect("the sweep names the killed run");
    assert!(run.errors.is_empty(), "{:?}", run.errors);
    assert_eq!(run.namespaces, [format!("{}-n1", t.run), format!("{}-n2", t.run)]);
    assert!(run.links.contains(&format!("{}-br", t.run)), "{:?}", run.links);
    assert!(
        run.killed.iter().any(|k| k.starts_with(&format!("pid {} (sleep 600", report.sleeper))),
        "{:?}",
        run.killed
    );
    assert!(run.state_file.is_some());
    assert!(!swept.live.contains(&t.run));
    assert_clean(&t);
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and ip, tc, nft"]
fn netns_a_node_reaches_the_harness_side_and_another_node() {
    let fabric = Fabric::create().expect(NEEDS_ROOT);
    let n1 = fabric.node(1).unwrap();
    let n2 = fabric.node(2).unwrap();

    // A process in n1 (bash) writes to listeners on the harness address, on n2's front address
    // (both in the root namespace) and on n2's own address (inside n2).
    let harness = TcpListener::bind((fabric.host_addr(), 0)).unwrap();
    let front = TcpListener::bind((n2.front_addr(), 0)).unwrap();
    let inside_n2 = n2.enter().unwrap().run(|| TcpListener::bind((n2.addr(), 0))).unwrap().unwrap();
    for (what, listener) in [("harness", &harness), ("front of n2", &front), ("n2", &inside_n2)] {
        let addr = listener.local_addr().unwrap();
        let mut cmd = n1.command("timeout").unwrap();
        cmd.args(["20", "bash", "-c", r#"echo "hello from $0" > "/dev/tcp/$1/$2""#, "n1"])
            .arg(addr.ip().to_string())
            .arg(addr.port().to_string());
        let child = Proc(cmd.spawn().unwrap());
        let (mut conn, peer) = listener.accept().unwrap();
        let mut text = String::new();
        conn.read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello from n1\n", "{what}");
        assert_eq!(peer.ip(), n1.addr(), "{what}: the connection comes from n1's address");
        let mut child = child;
        assert!(child.0.wait().unwrap().success(), "{what}");
        println!("n1 ({}) reached the {what} at {addr}", n1.addr());
    }

    // The harness reaches a listener inside a node's namespace at the node's address.
    let addr = inside_n2.local_addr().unwrap();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
    s.write_all(b"ping").unwrap();
    let (_, peer) = inside_n2.accept().unwrap();
    assert_eq!(peer.ip(), fabric.host_addr());
}

/// Connects from inside `node`'s namespace.
fn connect_from(node: &NodeNet, addr: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    node.enter().unwrap().run(|| TcpStream::connect_timeout(&addr, timeout)).unwrap()
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and ip, tc, nft"]
fn netns_a_drop_rule_times_out_connections_and_counts_packets() {
    let fabric = Fabric::create().expect(NEEDS_ROOT);
    let n1 = fabric.node(1).unwrap();
    let n2 = fabric.node(2).unwrap();
    let front2_listener = TcpListener::bind((n2.front_addr(), 0)).unwrap();
    let front2 = front2_listener.local_addr().unwrap();
    let harness_listener = TcpListener::bind((fabric.host_addr(), 0)).unwrap();
    let harness = harness_listener.local_addr().unwrap();
    connect_from(&n1, front2, Duration::from_secs(10)).expect("reachable before the fault");

    for direction in [Direction::Outbound, Direction::Inbound] {
        let id = n1.inject(&IpFault::Drop { peers: vec![n2.addr(), n2.front_addr()], direction }).unwrap();
        let err = connect_from(&n1, front2, Duration::from_secs(2)).expect_err("the drop rule blocks n1 → front of n2");
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
        connect_from(&n1, harness, Duration::from_secs(10)).expect("the harness address is not dropped");
        let counters = n1.counters(id).unwrap();
        println!("{direction:?} drop: connect to {front2} timed out; counters {:?}", counters.flows);
        assert_eq!(counters.flows.len(), 1);
        assert_eq!(counters.flows[0].direction, direction);
        assert!(counters.dropped_packets() > 0, "{counters:?}");
        assert!(counters.flows[0].dropped.bytes > 0, "{counters:?}");
        let last = n1.heal(id).unwrap();
        assert!(last.dropped_packets() >= counters.dropped_packets());
        assert!(n1.faults().is_empty());
        connect_from(&n1, front2, Duration::from_secs(10)).expect("reachable again after heal");
        let table = nft_counters_in(&n1);
        assert!(table.is_empty(), "heal removed the counters too: {table:?}");
    }
}

/// The names of the counters in the node's table.
fn nft_counters_in(node: &NodeNet) -> Vec<String> {
    let out = node.command("nft").unwrap().args(["-j", "list", "counters"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i.get("counter")?.get("name")?.as_str().map(str::to_string))
        .collect()
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and ip, tc, nft"]
fn netns_loss_at_10_percent_is_counted_by_the_kernel() {
    const SENT: u64 = 500;
    let fabric = Fabric::create().expect(NEEDS_ROOT);
    let n1 = fabric.node(1).unwrap();
    let receiver = UdpSocket::bind((fabric.host_addr(), 0)).unwrap();
    receiver.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let to = receiver.local_addr().unwrap();
    let id = n1
        .inject(&IpFault::Loss { percent: 10, peers: vec![fabric.host_addr()], direction: Direction::Outbound })
        .unwrap();
    // The harness side reads while n1 sends (a socket buffer holds only a few hundred).
    let received = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let collector = {
        let (received, stop, from) = (received.clone(), stop.clone(), n1.addr());
        std::thread::spawn(move || {
            let mut buf = [0u8; 8];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok((8, peer)) = receiver.recv_from(&mut buf) {
                    assert_eq!(peer.ip(), from);
                    received.lock().unwrap().insert(u64::from_be_bytes(buf));
                }
            }
        })
    };

    // 500 UDP pings from n1 to the harness side, one every 2 ms. A datagram dropped in the
    // sender's own output chain fails its send with EPERM.
    let refused = n1
        .enter()
        .unwrap()
        .run(|| {
            let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
            let mut refused = 0u64;
            for seq in 0..SENT {
                match s.send_to(&seq.to_be_bytes(), to) {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => refused += 1,
                    Err(e) => panic!("send {seq}: {e}"),
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            refused
        })
        .unwrap();
    let counters = n1.counters(id).unwrap();
    let dropped = counters.dropped_packets();
    assert_eq!(counters.seen_packets(), Some(SENT), "the loss rule saw every ping: {counters:?}");
    assert_eq!(refused, dropped, "each dropped ping failed its send (EPERM)");
    // Every ping the kernel did not drop arrives (polled, no time bound asserted).
    let expected = SENT - dropped;
    wait_for("every ping that was not dropped", || received.lock().unwrap().len() as u64 >= expected);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    collector.join().unwrap();
    let received = received.lock().unwrap().clone();
    let rate = dropped as f64 / SENT as f64;
    println!(
        "loss 10%: {dropped} of {SENT} pings dropped by the kernel ({:.1}%), {} received, {refused} sends refused",
        rate * 100.0,
        received.len()
    );
    assert_eq!(received.len() as u64, SENT - dropped, "received + dropped = sent");
    assert!((0.02..=0.25).contains(&rate), "measured loss {rate} outside 2%..25%");
    let last = n1.heal(id).unwrap();
    assert_eq!(last.dropped_packets(), dropped);
}

/// Sends `bytes` from inside `node` to a listener on the harness side; the time it took.
fn transfer(node: &NodeNet, to: &TcpListener, bytes: usize) -> Duration {
    let addr = to.local_addr().unwrap();
    let started = Instant::now();
    let sender =
        node.enter().unwrap().run(|| TcpStream::connect_timeout(&addr, Duration::from_secs(10))).unwrap().unwrap();
    let writer = std::thread::spawn(move || {
        let mut sender = sender;
        sender.write_all(&vec![7u8; bytes]).unwrap();
    });
    let (mut conn, _) = to.accept().unwrap();
    let mut got = Vec::new();
    conn.read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    assert_eq!(got.len(), bytes);
    started.elapsed()
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and ip, tc, nft"]
fn netns_tbf_limits_bandwidth_and_is_removed() {
    let fabric = Fabric::create().expect(NEEDS_ROOT);
    let n1 = fabric.node(1).unwrap();
    let harness = TcpListener::bind((fabric.host_addr(), 0)).unwrap();
    let default_qdisc = n1.root_qdisc(Side::Node).unwrap().kind;

    let rate_bits = 8_000_000; // 1 MB/s
    let qdiscs = n1.limit_bandwidth(rate_bits, Direction::Both).unwrap();
    assert_eq!(qdiscs.len(), 2);
    for side in [Side::Node, Side::Host] {
        let q = n1.root_qdisc(side).unwrap();
        assert_eq!((q.kind.as_str(), q.options.rate), ("tbf", Some(1_000_000)), "{side:?}");
    }
    const BYTES: usize = 2_000_000;
    let shaped = transfer(&n1, &harness, BYTES);
    println!("tbf at 8 Mbit/s: {BYTES} bytes in {shaped:?} ({:.2} MB/s)", BYTES as f64 / shaped.as_secs_f64() / 1e6);
    assert!(shaped >= Duration::from_millis(1500), "2 MB through 1 MB/s takes at least 1.5 s, took {shaped:?}");

    n1.clear_bandwidth().unwrap();
    for side in [Side::Node, Side::Host] {
        let q = n1.root_qdisc(side).unwrap();
        assert_ne!(q.kind, "tbf", "{side:?}");
    }
    assert_eq!(n1.root_qdisc(Side::Node).unwrap().kind, default_qdisc);
    let free = transfer(&n1, &harness, BYTES);
    println!("without tbf: {BYTES} bytes in {free:?} ({:.1} MB/s)", BYTES as f64 / free.as_secs_f64() / 1e6);
    n1.clear_bandwidth().unwrap(); // nothing left to clear is not an error
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and ip, tc, nft"]
fn netns_netem_support_is_reported_without_failing() {
    let fabric = Fabric::create().expect(NEEDS_ROOT);
    let support = fabric.netem_support();
    println!("{support}");
    if let NetemSupport::NotAvailable { detail } = &support {
        assert!(!detail.is_empty());
    }
    let probe = format!("{}-probe", fabric.run());
    assert!(!ip::netns_names().unwrap().contains(&probe), "the probe namespace is removed");
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and ip, tc, nft"]
fn netns_privilege_error_names_what_an_unprivileged_process_lacks() {
    const TEST: &str = "netns_privilege_error_names_what_an_unprivileged_process_lacks";
    if std::env::var(ROLE).as_deref() == Ok("unprivileged") {
        let err = check_privileges().unwrap_err();
        println!("PRIVILEGE_ERROR: {err}");
        let err = Fabric::create().err().expect("an unprivileged process cannot make a fabric");
        println!("FABRIC_ERROR: {err}");
        return;
    }
    check_privileges().expect(NEEDS_ROOT);
    let dir = tempfile::tempdir().unwrap();
    // Nobody may not reach this binary where it was built (a checkout under a 0700 directory):
    // it runs a copy, in a directory nobody may enter.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.path().join("netns-test");
    std::fs::copy(std::env::current_exe().unwrap(), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = run_test_binary(&copy, TEST, "unprivileged", dir.path());
    cmd.current_dir(dir.path()).uid(65534).gid(65534);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("PRIVILEGE_ERROR: ").map(|(_, e)| e))
        .unwrap_or_else(|| panic!("{stdout}"));
    println!("{line}");
    for needed in ["CAP_NET_ADMIN", "CAP_SYS_ADMIN", "--network proxy"] {
        assert!(line.contains(needed), "{line}");
    }
    assert!(stdout.contains("FABRIC_ERROR: --network netns cannot run here"), "{stdout}");
}
