//! The network-namespace substrate for `--network netns` (used by `cluster::net` in runs, one
//! fabric per run or per `--jobs` lane): a per-run [`Fabric`] (bridge and host addresses in the root namespace), one
//! [`NodeNet`] per node (namespace, veth, address, nftables table), processes started inside a
//! namespace ([`NetnsEnter`]), IP-layer faults with kernel counters ([`IpFault`]), tc tbf
//! bandwidth, netem detection, the privilege check and the sweep of a killed run's leftovers.
//! Everything is owned: dropping a `NodeNet` or the last handle of a `Fabric` removes what it
//! made. Layout, names and what is not done yet: docs/netns.md.
//!
//! It shells out to `ip`, `nft` and `tc` with `std::process::Command` (one argv entry per
//! argument, never a command line built with `format!`; nftables commands go in as JSON on
//! stdin) and reads state back from their JSON output (`ip -j`, `nft -j`, `tc -j`) with serde.
//! These calls block for milliseconds; the runner makes them on its async threads (a few per
//! fault).

mod cmd;
pub mod exec;
pub mod fabric;
pub mod ip;
pub mod nft;
pub mod node;
pub mod privilege;
pub mod state;
pub mod sweep;
pub mod tc;

use std::path::PathBuf;

pub use exec::NetnsEnter;
pub use fabric::{Fabric, Subnet};
pub use nft::{Counter, Direction, FaultCounters, FaultId, FlowCounters, IpFault};
pub use node::NodeNet;
pub use privilege::{check_privileges, Missing, PrivilegeError};
pub use sweep::{sweep, Swept, SweptRun};
pub use tc::{NetemSupport, Qdisc, Side};

/// The fixed first letters of every name this module gives (namespaces, links, nft tables,
/// state files); a run's prefix is this and four hex digits (`cc1a2b`).
pub const PRODUCT_PREFIX: &str = "cc";

/// Where runs record their owner (pid and start time) so that a later sweep can tell a
/// killed run's leftovers from a live run's objects.
pub const STATE_DIR: &str = "/run/chronik-chaos/netns";

/// The highest node id: node addresses are `.10+id` and front addresses `.100+id` in a /24.
pub const MAX_NODE_ID: u32 = 89;

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error(transparent)]
    Privileges(#[from] PrivilegeError),
    #[error("cannot run `{command}`: {source}")]
    Spawn { command: String, source: std::io::Error },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command { command: String, status: String, stderr: String },
    #[error("cannot parse what `{command}` printed: {source}; it printed: {output}")]
    Json { command: String, output: String, source: serde_json::Error },
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("no free 10.x.y.0/24 subnet after {tries} tries: every one overlaps a route, an address or another run")]
    NoSubnet { tries: usize },
    #[error("no free run prefix after {tries} tries: remove leftovers with a sweep")]
    NoRunName { tries: usize },
    #[error("node id {0} is out of range: ids are 1..={MAX_NODE_ID}")]
    NodeId(u32),
    #[error("node {0} already has a namespace in this run")]
    NodeExists(u32),
    #[error("invalid fault: {0}")]
    InvalidFault(String),
    #[error("no fault {0} is installed on this node")]
    UnknownFault(FaultId),
    #[error("{what} read back as {found}, not {wanted}")]
    ReadBack { what: String, wanted: String, found: String },
    #[error("teardown left something behind: {}", .0.join("; "))]
    Teardown(Vec<String>),
}
