//! One run's network: [`Fabric`] picks a run prefix (`cc` and four hex digits) and a free
//! `10.a.b.0/24`, records its owner in a state file, and owns the bridge `<run>-br` in the root
//! namespace with the host address `.1` (where the harness and Toxiproxy are reached). Nodes
//! ([`NodeNet`]) hang off it; the bridge goes when the last of them and the `Fabric` are gone.
//!
//! The bridge lives in the root namespace, not in a harness namespace, so that the harness
//! process and Toxiproxy need nothing special: they reach every node's address through the
//! bridge's connected route, and nodes reach `.1` and the front addresses (`.100+id`, added by
//! each `NodeNet`) as local addresses of the root namespace. No forwarding or NAT is involved.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::ip::{self, Ipv4Net};
use super::state::{NamespaceRecord, RunState, StateDir};
use super::tc::{self, NetemSupport};
use super::{check_privileges, cmd, NetnsError, NodeNet, PRODUCT_PREFIX};

/// A run's subnet, `10.a.b.0/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Subnet {
    pub a: u8,
    pub b: u8,
}

impl Subnet {
    /// The address `10.a.b.host`.
    pub fn host(self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, self.a, self.b, host)
    }

    pub fn net(self) -> Ipv4Net {
        Ipv4Net { addr: self.host(0), prefix: 24 }
    }

    pub fn parse(s: &str) -> Option<Subnet> {
        let net = Ipv4Net::parse(s)?;
        let [ten, a, b, zero] = net.addr.octets();
        (ten == 10 && zero == 0 && net.prefix == 24).then_some(Subnet { a, b })
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.net().fmt(f)
    }
}

/// The first of `tries` drawn subnets that overlaps nothing in `in_use`.
pub fn choose_subnet(in_use: &[Ipv4Net], tries: usize, mut draw: impl FnMut() -> Subnet) -> Option<Subnet> {
    (0..tries).map(|_| draw()).find(|s| !in_use.iter().any(|n| n.overlaps(&s.net())))
}

/// A random subnet in 10.128.0.0/9 (the upper half of 10/8, rarer in home and cloud networks).
fn draw_subnet() -> Subnet {
    Subnet { a: fastrand::u8(128..=254), b: fastrand::u8(..) }
}

/// Whether `name` belongs to run `run`: the run prefix alone or followed by `-`.
pub(crate) fn belongs_to(name: &str, run: &str) -> bool {
    name.strip_prefix(run).is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
}

/// One run's network. Cheap to share: nodes hold the same inner state.
pub struct Fabric {
    inner: Arc<FabricInner>,
}

pub(crate) struct FabricInner {
    pub(crate) run: String,
    pub(crate) subnet: Subnet,
    pub(crate) bridge: String,
    states: StateDir,
    state: Mutex<RunState>,
    nodes: Mutex<BTreeSet<u32>>,
    made_bridge: bool,
    torn_down: bool,
}

impl Fabric {
    /// Checks privileges, picks a run prefix and subnet that no run, route or address uses,
    /// writes the state file and creates the bridge with its host address. On any error what
    /// was made is removed before returning.
    pub fn create() -> Result<Fabric, NetnsError> {
        check_privileges()?;
        Fabric::create_in(StateDir::default_dir())
    }

    fn create_in(states: StateDir) -> Result<Fabric, NetnsError> {
        let _lock = states.lock()?;
        let me = std::process::id();
        let start_ticks = crate::os::start_ticks(me).unwrap_or(0);
        let namespaces = ip::netns_names()?;
        let links: Vec<String> = ip::links()?.into_iter().map(|l| l.ifname).collect();

        let mut in_use = ip::networks_in_use()?;
        in_use.extend(states.runs().iter().filter_map(|r| states.read(r)).filter_map(|s| Ipv4Net::parse(&s.subnet)));
        const TRIES: usize = 256;
        let subnet = choose_subnet(&in_use, TRIES, draw_subnet).ok_or(NetnsError::NoSubnet { tries: TRIES })?;

        let mut chosen = None;
        for _ in 0..TRIES {
            let run = format!("{PRODUCT_PREFIX}{:04x}", fastrand::u16(..));
            if namespaces.iter().chain(&links).any(|n| belongs_to(n, &run)) {
                continue;
            }
            let state = RunState {
                version: 1,
                run: run.clone(),
                pid: me,
                start_ticks,
                subnet: subnet.to_string(),
                namespaces: vec![],
            };
            if states.create(&state)? {
                chosen = Some(state);
                break;
            }
        }
        let state = chosen.ok_or(NetnsError::NoRunName { tries: TRIES })?;
        let run = state.run.clone();
        let mut inner = FabricInner {
            bridge: format!("{run}-br"),
            run,
            subnet,
            states,
            state: Mutex::new(state),
            nodes: Mutex::new(BTreeSet::new()),
            made_bridge: false,
            torn_down: false,
        };
        cmd::ip(["link", "add", inner.bridge.as_str(), "type", "bridge"]).run()?;
        inner.made_bridge = true;
        let host = format!("{}/24", subnet.host(1));
        cmd::ip(["addr", "add", host.as_str(), "dev", inner.bridge.as_str()]).run()?;
        cmd::ip(["link", "set", inner.bridge.as_str(), "up"]).run()?;
        Ok(Fabric { inner: Arc::new(inner) })
    }

    /// The run prefix every name of this run starts with (`cc1a2b`).
    pub fn run(&self) -> &str {
        &self.inner.run
    }

    pub fn subnet(&self) -> Subnet {
        self.inner.subnet
    }

    /// The bridge in the root namespace.
    pub fn bridge(&self) -> &str {
        &self.inner.bridge
    }

    /// `.1`: the root namespace's address on the bridge (the harness, Toxiproxy's API).
    pub fn host_addr(&self) -> Ipv4Addr {
        self.inner.host_addr()
    }

    /// `.10+id`: node `id`'s address inside its namespace.
    pub fn node_addr(&self, id: u32) -> Ipv4Addr {
        self.inner.node_addr(id)
    }

    /// `.100+id`: an address of the root namespace that stands for node `id` (the proxies in
    /// front of node `id` can listen there, so that a rule in another node's namespace can
    /// tell traffic meant for node `id` by its destination address).
    pub fn front_addr(&self, id: u32) -> Ipv4Addr {
        self.inner.front_addr(id)
    }

    /// The state file that records this run's owner.
    pub fn state_file(&self) -> PathBuf {
        self.inner.states.file_of(&self.inner.run)
    }

    /// Makes node `id`'s namespace, veth pair, addresses and nftables table.
    pub fn node(&self, id: u32) -> Result<NodeNet, NetnsError> {
        NodeNet::create(Arc::clone(&self.inner), id)
    }

    /// Whether tc netem works here: tries it on `lo` of a throwaway namespace `<run>-probe`
    /// (removed again; a sweep removes it if this process dies meanwhile).
    pub fn netem_support(&self) -> NetemSupport {
        let name = format!("{}-probe", self.inner.run);
        if let Err(e) = cmd::ip(["netns", "add", name.as_str()]).run() {
            return NetemSupport::NotAvailable { detail: format!("cannot make a namespace to try it in: {e}") };
        }
        let support = tc::probe_netem(&name);
        if let Err(e) = cmd::ip(["netns", "del", name.as_str()]).run() {
            eprintln!("warning: cannot remove the netem probe namespace {name}: {e}");
        }
        support
    }

    /// Removes the bridge and the state file now. The nodes must be torn down first: while one
    /// lives this returns an error and the bridge goes with the last node.
    pub fn teardown(self) -> Result<(), NetnsError> {
        match Arc::try_unwrap(self.inner) {
            Ok(mut inner) => inner.teardown(),
            Err(_) => Err(NetnsError::Teardown(vec![
                "nodes of this run still exist: the bridge is removed when the last of them is".into(),
            ])),
        }
    }
}

impl FabricInner {
    pub(crate) fn host_addr(&self) -> Ipv4Addr {
        self.subnet.host(1)
    }

    pub(crate) fn node_addr(&self, id: u32) -> Ipv4Addr {
        self.subnet.host(10 + id.min(super::MAX_NODE_ID) as u8)
    }

    pub(crate) fn front_addr(&self, id: u32) -> Ipv4Addr {
        self.subnet.host(100 + id.min(super::MAX_NODE_ID) as u8)
    }

    /// Claims node id `id` for this run.
    pub(crate) fn claim(&self, id: u32) -> Result<(), NetnsError> {
        if id == 0 || id > super::MAX_NODE_ID {
            return Err(NetnsError::NodeId(id));
        }
        if !self.nodes.lock().unwrap().insert(id) {
            return Err(NetnsError::NodeExists(id));
        }
        Ok(())
    }

    pub(crate) fn release(&self, id: u32) {
        self.nodes.lock().unwrap().remove(&id);
    }

    /// Adds a namespace to the state file (so a sweep finds its processes by inode).
    pub(crate) fn record_namespace(&self, name: &str, inode: u64) -> Result<(), NetnsError> {
        let mut state = self.state.lock().unwrap();
        state.namespaces.retain(|n| n.name != name);
        state.namespaces.push(NamespaceRecord { name: name.to_string(), inode });
        self.states.write(&state)
    }

    pub(crate) fn forget_namespace(&self, name: &str) -> Result<(), NetnsError> {
        let mut state = self.state.lock().unwrap();
        state.namespaces.retain(|n| n.name != name);
        self.states.write(&state)
    }

    fn teardown(&mut self) -> Result<(), NetnsError> {
        self.torn_down = true;
        let mut errors = Vec::new();
        if self.made_bridge {
            match cmd::ip(["link", "del", self.bridge.as_str()]).run() {
                Ok(_) => {}
                Err(e) if cmd::is_missing(&e) => {}
                Err(e) => errors.push(e.to_string()),
            }
        }
        if errors.is_empty() {
            // Kept when something is left, so that a sweep can finish the job.
            if let Err(e) = self.states.remove(&self.run) {
                errors.push(e.to_string());
            }
            Ok(())
        } else {
            Err(NetnsError::Teardown(errors))
        }
    }
}

impl Drop for FabricInner {
    fn drop(&mut self) {
        if !self.torn_down {
            if let Err(e) = self.teardown() {
                eprintln!("warning: run {}: {e}", self.run);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subnet_avoids_routes_addresses_and_other_runs() {
        let in_use: Vec<Ipv4Net> =
            ["10.128.0.0/9", "10.0.0.0/16", "192.0.2.0/24"].iter().map(|s| Ipv4Net::parse(s).unwrap()).collect();
        let mut draws = [Subnet { a: 200, b: 1 }, Subnet { a: 5, b: 9 }].into_iter();
        assert_eq!(choose_subnet(&in_use, 5, || draws.next().unwrap()), Some(Subnet { a: 5, b: 9 }));
        assert_eq!(choose_subnet(&in_use, 3, || Subnet { a: 200, b: 1 }), None);
        let s = Subnet { a: 201, b: 7 };
        assert_eq!(s.to_string(), "10.201.7.0/24");
        assert_eq!(Subnet::parse("10.201.7.0/24"), Some(s));
        assert_eq!(Subnet::parse("10.201.7.0/16"), None);
        assert_eq!(s.host(11), Ipv4Addr::new(10, 201, 7, 11));
    }

    #[test]
    fn names_belong_to_a_run_by_its_prefix_and_a_dash() {
        assert!(belongs_to("cc1a2b-n1", "cc1a2b"));
        assert!(belongs_to("cc1a2b", "cc1a2b"));
        assert!(!belongs_to("cc1a2bc-n1", "cc1a2b"));
        assert!(!belongs_to("cc5", "cc1a2b"));
    }
}
