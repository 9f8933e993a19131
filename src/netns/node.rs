//! One node's network: [`NodeNet`] owns the namespace `<run>-n<id>`, the veth pair
//! (`<run>-h<id>` on the bridge, `eth0` inside with `.10+id`/24, `lo` up, default route via
//! `.1`), the node's front address `.100+id` on the bridge, the nftables table `inet <run>` in
//! the namespace with the faults installed there, and the tbf qdiscs on either end (for all
//! traffic, or only for the node's peers). Dropping it (or [`NodeNet::teardown`]) removes all
//! of that; processes inside are their spawner's to end.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use super::exec::{self, NetnsEnter};
use super::fabric::FabricInner;
use super::nft::{self, Direction, FaultCounters, FaultId, Installed, IpFault};
use super::tc::{self, MatchOn, Qdisc, Shaping, Side};
use super::{cmd, NetnsError};

/// A node's namespace and links.
pub struct NodeNet {
    fabric: Arc<FabricInner>,
    id: u32,
    netns: String,
    host_veth: String,
    addr: Ipv4Addr,
    front: Ipv4Addr,
    made: Made,
    faults: Mutex<Faults>,
    torn_down: bool,
}

#[derive(Default)]
struct Made {
    claimed: bool,
    netns: bool,
    inode: Option<u64>,
    veth: bool,
    front: bool,
    table: bool,
}

#[derive(Default)]
struct Faults {
    next: u32,
    installed: BTreeMap<FaultId, Installed>,
    shaped: BTreeSet<SideKey>,
}

/// `Side` as a set key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum SideKey {
    Node,
    Host,
}

impl From<Side> for SideKey {
    fn from(s: Side) -> SideKey {
        match s {
            Side::Node => SideKey::Node,
            Side::Host => SideKey::Host,
        }
    }
}

impl NodeNet {
    pub(crate) fn create(fabric: Arc<FabricInner>, id: u32) -> Result<NodeNet, NetnsError> {
        let run = fabric.run.clone();
        let mut node = NodeNet {
            id,
            netns: format!("{run}-n{id}"),
            host_veth: format!("{run}-h{id}"),
            addr: fabric.node_addr(id),
            front: fabric.front_addr(id),
            fabric,
            made: Made::default(),
            faults: Mutex::new(Faults::default()),
            torn_down: false,
        };
        // From here on, an error return drops `node`, which removes what was made.
        node.fabric.claim(id)?;
        node.made.claimed = true;
        let ns = node.netns.clone();
        let host = node.host_veth.clone();
        let bridge = node.fabric.bridge.clone();

        cmd::ip(["netns", "add", ns.as_str()]).run()?;
        node.made.netns = true;
        let inode = exec::netns_inode(&ns).ok_or_else(|| NetnsError::ReadBack {
            what: format!("namespace {ns}"),
            wanted: format!("a mount at {}", exec::netns_path(&ns).display()),
            found: "none".into(),
        })?;
        node.made.inode = Some(inode);
        node.fabric.record_namespace(&ns, inode)?;

        cmd::ip(["link", "add", host.as_str(), "type", "veth", "peer", "name", "eth0", "netns", ns.as_str()]).run()?;
        node.made.veth = true;
        cmd::ip(["link", "set", host.as_str(), "master", bridge.as_str()]).run()?;
        cmd::ip(["link", "set", host.as_str(), "up"]).run()?;

        let addr = format!("{}/24", node.addr);
        let gateway = node.fabric.host_addr().to_string();
        cmd::ip(["-n", ns.as_str(), "addr", "add", addr.as_str(), "dev", "eth0"]).run()?;
        cmd::ip(["-n", ns.as_str(), "link", "set", "lo", "up"]).run()?;
        cmd::ip(["-n", ns.as_str(), "link", "set", "eth0", "up"]).run()?;
        cmd::ip(["-n", ns.as_str(), "route", "add", "default", "via", gateway.as_str()]).run()?;

        let front = format!("{}/24", node.front);
        cmd::ip(["addr", "add", front.as_str(), "dev", bridge.as_str()]).run()?;
        node.made.front = true;

        let enter = node.enter()?;
        nft::apply(&enter, &nft::table_commands(&node.fabric.run), false)?;
        node.made.table = true;
        Ok(node)
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    /// The namespace's name (`<run>-n<id>`).
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The veth's end on the bridge, in the root namespace (`<run>-h<id>`).
    pub fn host_veth(&self) -> &str {
        &self.host_veth
    }

    /// The node's address (`.10+id`), on `eth0` inside its namespace.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The node's front address (`.100+id`), on the bridge in the root namespace.
    pub fn front_addr(&self) -> Ipv4Addr {
        self.front
    }

    /// The harness's address as the node reaches it (`.1`).
    pub fn host_addr(&self) -> Ipv4Addr {
        self.fabric.host_addr()
    }

    /// The nftables table in the namespace (`inet <run>`).
    pub fn table(&self) -> &str {
        &self.fabric.run
    }

    /// An open handle on the namespace, to spawn processes or run threads in it.
    pub fn enter(&self) -> Result<NetnsEnter, NetnsError> {
        NetnsEnter::open(&self.netns)
    }

    /// A `Command` for `program` that runs inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Result<std::process::Command, NetnsError> {
        Ok(self.enter()?.command(program))
    }

    /// The live processes inside the namespace.
    pub fn processes(&self) -> Vec<u32> {
        self.made.inode.map(exec::processes_in).unwrap_or_default()
    }

    /// Installs `fault` in the namespace's table, each rule with its own named counter.
    pub fn inject(&self, fault: &IpFault) -> Result<FaultId, NetnsError> {
        if let IpFault::Loss { percent, .. } = fault {
            if !(1..=100).contains(percent) {
                return Err(NetnsError::InvalidFault(format!("a loss rate of {percent}% (it is 1..=100)")));
            }
        }
        let mut faults = self.faults.lock().unwrap();
        faults.next += 1;
        let id = FaultId(faults.next);
        let (commands, planned) = nft::plan(self.table(), id, fault);
        let echo = nft::apply(&self.enter()?, &commands, true)?;
        let installed = nft::installed_from_echo(id, &planned, &echo)?;
        faults.installed.insert(id, installed);
        Ok(id)
    }

    /// The counters of an installed fault, read from the kernel now.
    pub fn counters(&self, id: FaultId) -> Result<FaultCounters, NetnsError> {
        let faults = self.faults.lock().unwrap();
        let installed = faults.installed.get(&id).ok_or(NetnsError::UnknownFault(id))?;
        let listing = nft::list_counters(&self.enter()?, self.table())?;
        nft::counters_of(installed, &listing)
    }

    /// Removes a fault's rules and counters; returns the counters as they were just before.
    pub fn heal(&self, id: FaultId) -> Result<FaultCounters, NetnsError> {
        let mut faults = self.faults.lock().unwrap();
        let installed = faults.installed.get(&id).ok_or(NetnsError::UnknownFault(id))?;
        let enter = self.enter()?;
        let last = nft::counters_of(installed, &nft::list_counters(&enter, self.table())?)?;
        nft::apply(&enter, &nft::heal_commands(self.table(), installed), false)?;
        faults.installed.remove(&id);
        Ok(last)
    }

    /// The faults installed now.
    pub fn faults(&self) -> Vec<FaultId> {
        self.faults.lock().unwrap().installed.keys().copied().collect()
    }

    /// Limits the node's bandwidth with tc tbf: `Outbound` on `eth0` in the namespace,
    /// `Inbound` on the host end of the veth, `Both` on both. Returns the qdiscs read back.
    pub fn limit_bandwidth(&self, rate_bits_per_sec: u64, direction: Direction) -> Result<Vec<Qdisc>, NetnsError> {
        let mut faults = self.faults.lock().unwrap();
        let mut read_back = Vec::new();
        for &flow in direction.flows() {
            let side = if flow == Direction::Outbound { Side::Node } else { Side::Host };
            faults.shaped.insert(side.into());
            let (netns, dev) = self.dev(side);
            read_back.push(tc::set_tbf(netns, dev, rate_bits_per_sec)?);
        }
        Ok(read_back)
    }

    /// Limits only what the node exchanges with `peers` to `rate_bits_per_sec`, with a tbf
    /// behind an htb root and one u32 filter per peer address (`tc::peer_shaping_args`):
    /// `Outbound` on `eth0` in the namespace (packets to a peer), `Inbound` on the host end of
    /// the veth (packets from a peer), `Both` on both; every other packet passes unshaped. Each
    /// end is read back (the tbf at the rate, one filter per peer). An end already shaped is
    /// refused; `clear_bandwidth` removes them (also what a failed call added).
    pub fn limit_peer_bandwidth(
        &self,
        rate_bits_per_sec: u64,
        peers: &[Ipv4Addr],
        direction: Direction,
    ) -> Result<Vec<(Side, Shaping)>, NetnsError> {
        if peers.is_empty() || rate_bits_per_sec < 8 {
            return Err(NetnsError::InvalidFault(format!(
                "a peer bandwidth limit needs peers and a rate of at least 8 bit/s (got {} peers, {rate_bits_per_sec} bit/s)",
                peers.len()
            )));
        }
        let mut faults = self.faults.lock().unwrap();
        let mut read_back = Vec::new();
        for &flow in direction.flows() {
            let (side, on) = if flow == Direction::Outbound {
                (Side::Node, MatchOn::Destination)
            } else {
                (Side::Host, MatchOn::Source)
            };
            let (netns, dev) = self.dev(side);
            if !faults.shaped.insert(side.into()) {
                return Err(NetnsError::InvalidFault(format!(
                    "{dev} of node {} already has a bandwidth limit; remove it first",
                    self.id
                )));
            }
            read_back.push((side, tc::set_peer_shaping(netns, dev, rate_bits_per_sec, peers, on)?));
        }
        Ok(read_back)
    }

    /// The root qdisc on one end of the veth and a peer limit's tbf under it, with the kernel's
    /// counters (`tc -s`).
    pub fn shaping(&self, side: Side) -> Result<Shaping, NetnsError> {
        let (netns, dev) = self.dev(side);
        tc::shaping(netns, dev)
    }

    /// Removes the qdiscs `limit_bandwidth` and `limit_peer_bandwidth` added (the ends go back to
    /// their default root qdisc).
    pub fn clear_bandwidth(&self) -> Result<(), NetnsError> {
        let mut faults = self.faults.lock().unwrap();
        let shaped = std::mem::take(&mut faults.shaped);
        for key in shaped {
            let side = if key == SideKey::Node { Side::Node } else { Side::Host };
            let (netns, dev) = self.dev(side);
            match tc::clear_root(netns, dev) {
                Ok(()) => {}
                Err(e) if cmd::is_missing(&e) => {}
                Err(e) => {
                    faults.shaped.insert(key);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// The root qdisc on one end of the veth.
    pub fn root_qdisc(&self, side: Side) -> Result<Qdisc, NetnsError> {
        let (netns, dev) = self.dev(side);
        tc::root_qdisc(netns, dev)
    }

    /// Heals every fault and removes the bandwidth limits; the counters of the healed faults.
    pub fn heal_all(&self) -> Result<Vec<FaultCounters>, NetnsError> {
        let mut healed = Vec::new();
        for id in self.faults() {
            healed.push(self.heal(id)?);
        }
        self.clear_bandwidth()?;
        Ok(healed)
    }

    fn dev(&self, side: Side) -> (Option<&str>, &str) {
        match side {
            Side::Node => (Some(self.netns.as_str()), "eth0"),
            Side::Host => (None, self.host_veth.as_str()),
        }
    }

    /// Removes everything this node made, reporting what could not be removed. Processes still
    /// inside the namespace are reported too (their owner should have ended them first).
    pub fn teardown(mut self) -> Result<(), NetnsError> {
        let errors = self.teardown_steps();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(NetnsError::Teardown(errors))
        }
    }

    fn teardown_steps(&mut self) -> Vec<String> {
        self.torn_down = true;
        let mut errors = Vec::new();
        let mut step = |r: Result<(), NetnsError>| match r {
            Err(e) if !cmd::is_missing(&e) => errors.push(e.to_string()),
            _ => {}
        };
        let alive = self.processes();
        if !alive.is_empty() {
            let who: Vec<String> = alive
                .iter()
                .map(|p| crate::os::process_info(*p).map(|i| i.to_string()).unwrap_or_else(|| format!("pid {p}")))
                .collect();
            step(Err(NetnsError::Teardown(vec![format!(
                "processes still run in namespace {}: {}",
                self.netns,
                who.join(", ")
            )])));
        }
        if self.made.table {
            step(self.enter().and_then(|e| nft::delete_table(&e, &self.fabric.run)));
        }
        if self.made.front {
            let front = format!("{}/24", self.front);
            step(cmd::ip(["addr", "del", front.as_str(), "dev", self.fabric.bridge.as_str()]).run().map(|_| ()));
        }
        if self.made.veth {
            step(cmd::ip(["link", "del", self.host_veth.as_str()]).run().map(|_| ()));
        }
        if self.made.netns {
            step(cmd::ip(["netns", "del", self.netns.as_str()]).run().map(|_| ()));
            step(self.fabric.forget_namespace(&self.netns));
        }
        if self.made.claimed {
            self.fabric.release(self.id);
        }
        errors
    }
}

impl Drop for NodeNet {
    fn drop(&mut self) {
        if !self.torn_down {
            let errors = self.teardown_steps();
            if !errors.is_empty() {
                eprintln!("warning: node {} of run {}: {}", self.id, self.fabric.run, errors.join("; "));
            }
        }
    }
}
