//! What Linux's `/proc` says about processes and TCP sockets: liveness, identity (start time,
//! command line), listening ports and who holds them, and the connections of a process.

use std::collections::HashMap;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};

/// A process as `/proc` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    /// `comm`: the executable name, at most 15 bytes.
    pub name: String,
    pub cmdline: Vec<String>,
}

impl std::fmt::Display for ProcessInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cmd = if self.cmdline.is_empty() { self.name.clone() } else { self.cmdline.join(" ") };
        let cmd: String = cmd.chars().take(120).collect();
        write!(f, "pid {} ({cmd})", self.pid)
    }
}

/// Whether `pid` names a live (non-zombie) process.
pub fn pid_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat_fields(&stat).and_then(|f| f.first().map(|s| *s != "Z" && *s != "X")).unwrap_or(false),
        Err(_) => false,
    }
}

/// The one-letter state of a process (`R`, `S`, `T` stopped, `Z` zombie, ...).
pub fn process_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_fields(&stat)?.first()?.chars().next()
}

/// The process start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`); with the
/// pid it identifies a process even after the pid is reused.
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after `comm`: state is field 3, starttime field 22 → index 19.
    stat_fields(&stat)?.get(19)?.parse().ok()
}

/// The fields of `/proc/<pid>/stat` after the `(comm)` field.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let close = stat.rfind(')')?;
    Some(stat[close + 1..].split_whitespace().collect())
}

/// The live processes whose process group is `pgid` (the leader included while it runs).
pub fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(procs) = fs::read_dir("/proc") else { return Vec::new() };
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
            let Some(f) = stat_fields(&stat) else { return false };
            // state, ppid, pgrp
            f.first().is_some_and(|s| *s != "Z" && *s != "X") && f.get(2).and_then(|g| g.parse().ok()) == Some(pgid)
        })
        .collect()
}

pub fn process_info(pid: u32) -> Option<ProcessInfo> {
    let name = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?.trim().to_string();
    let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|b| *b == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into_owned()).collect()
        })
        .unwrap_or_default();
    Some(ProcessInfo { pid, name, cmdline })
}

/// TCP socket states as in `include/net/tcp_states.h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpState {
    Established,
    Listen,
    Other(u8),
}

/// One row of `/proc/net/tcp` or `/proc/net/tcp6`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpSocket {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: TcpState,
    pub inode: u64,
}

/// Every TCP socket of this network namespace.
pub fn tcp_sockets() -> Vec<TcpSocket> {
    let mut out = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = fs::read_to_string(file) {
            out.extend(parse_proc_net_tcp(&text));
        }
    }
    out
}

/// Parses the text of `/proc/net/tcp` or `/proc/net/tcp6`.
pub fn parse_proc_net_tcp(text: &str) -> Vec<TcpSocket> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local = parse_hex_addr(f.get(1)?)?;
            let remote = parse_hex_addr(f.get(2)?)?;
            let state = match u8::from_str_radix(f.get(3)?, 16).ok()? {
                0x01 => TcpState::Established,
                0x0A => TcpState::Listen,
                s => TcpState::Other(s),
            };
            let inode = f.get(9)?.parse().ok()?;
            Some(TcpSocket { local, remote, state, inode })
        })
        .collect()
}

fn parse_hex_addr(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(u32::from_str_radix(ip, 16).ok()?.swap_bytes())),
        32 => {
            let mut bytes = [0u8; 16];
            for word in 0..4 {
                let w = u32::from_str_radix(&ip[word * 8..word * 8 + 8], 16).ok()?.swap_bytes();
                bytes[word * 4..word * 4 + 4].copy_from_slice(&w.to_be_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Socket inode → the pids holding it (a forked child shares its parent's sockets until it
/// execs), lowest pid first.
pub fn socket_owners() -> HashMap<u64, Vec<u32>> {
    let mut owners: HashMap<u64, Vec<u32>> = HashMap::new();
    let Ok(procs) = fs::read_dir("/proc") else { return owners };
    for entry in procs.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        for inode in socket_inodes_of(pid) {
            owners.entry(inode).or_default().push(pid);
        }
    }
    for pids in owners.values_mut() {
        pids.sort_unstable();
        pids.dedup();
    }
    owners
}

/// The inodes of the sockets `pid` holds open.
pub fn socket_inodes_of(pid: u32) -> Vec<u64> {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    fds.flatten()
        .filter_map(|fd| {
            let target = fs::read_link(fd.path()).ok()?;
            let t = target.to_str()?;
            t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// The TCP connections (not listeners) `pid` holds, read from `/proc/PID/net/tcp{,6}`: the
/// sockets of `pid`'s own network namespace (a node in its own namespace included).
pub fn connections_of(pid: u32) -> Vec<TcpSocket> {
    let inodes: std::collections::HashSet<u64> = socket_inodes_of(pid).into_iter().collect();
    let mut all = Vec::new();
    for file in ["tcp", "tcp6"] {
        if let Ok(text) = fs::read_to_string(format!("/proc/{pid}/net/{file}")) {
            all.extend(parse_proc_net_tcp(&text));
        }
    }
    all.into_iter().filter(|s| s.state != TcpState::Listen && inodes.contains(&s.inode)).collect()
}

/// Who holds `addr`'s port, as far as we can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortHolder {
    /// A listening socket on that port belongs to this process.
    Process(ProcessInfo),
    /// Something listens there, but its process is not visible to us (another user or namespace).
    Unknown,
}

impl std::fmt::Display for PortHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortHolder::Process(p) => write!(f, "held by {p}"),
            PortHolder::Unknown => f.write_str("held by a process we cannot see (another user?)"),
        }
    }
}

/// `None` when `addr` can be bound now; otherwise who holds it.
pub fn port_holder(addr: SocketAddr) -> Option<PortHolder> {
    if TcpListener::bind(addr).is_ok() {
        return None;
    }
    let listener = tcp_sockets().into_iter().find(|s| {
        s.state == TcpState::Listen
            && s.local.port() == addr.port()
            && (s.local.ip() == addr.ip() || s.local.ip().is_unspecified() || addr.ip().is_unspecified())
    });
    let holder = listener
        // The lowest pid: the parent rather than a child forked a moment ago.
        .and_then(|s| socket_owners().get(&s.inode).and_then(|pids| pids.first().copied()))
        .and_then(process_info)
        .map(PortHolder::Process)
        .unwrap_or(PortHolder::Unknown);
    Some(holder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_tcp_rows() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2112 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 123456 1 0000000000000000 100 0 0 10 0
   1: 0100007F:C350 0100007F:2112 01 00000000:00000000 00:00000000 00000000     0        0 654321 1 0000000000000000 20 4 30 10 -1
";
        let rows = parse_proc_net_tcp(text);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].local, "127.0.0.1:8466".parse().unwrap());
        assert_eq!(rows[0].state, TcpState::Listen);
        assert_eq!(rows[0].inode, 123456);
        assert_eq!(rows[1].remote, "127.0.0.1:8466".parse().unwrap());
        assert_eq!(rows[1].state, TcpState::Established);
    }

    #[test]
    fn parses_ipv6_loopback() {
        let a = parse_hex_addr("00000000000000000000000001000000:1F90").unwrap();
        assert_eq!(a, "[::1]:8080".parse().unwrap());
    }

    #[test]
    fn finds_the_holder_of_our_own_listener() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        match port_holder(addr) {
            Some(PortHolder::Process(p)) => assert_eq!(p.pid, std::process::id()),
            other => panic!("expected this process to hold {addr}, got {other:?}"),
        }
        drop(l);
        assert_eq!(port_holder(addr), None);
        assert!(pid_alive(std::process::id()));
        assert!(start_ticks(std::process::id()).is_some());
    }
}
