//! Per-socket TCP byte counters from the kernel through `NETLINK_SOCK_DIAG` (what `ss -ti` reads):
//! `tcpi_bytes_acked` and `tcpi_bytes_received` of every IPv4 TCP socket, so a fault can be proven
//! to have stopped bytes. Linux only; no dependency beyond `libc`.
#![cfg(target_os = "linux")]

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// One TCP socket's counters, from the kernel (NETLINK_SOCK_DIAG, INET_DIAG_INFO).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockCounters {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// TCP state number as the kernel reports it (1 = ESTABLISHED).
    pub state: u8,
    pub inode: u32,
    /// tcpi_bytes_acked: bytes sent by this socket and acknowledged by the peer.
    pub bytes_acked: u64,
    /// tcpi_bytes_received: bytes received by this socket.
    pub bytes_received: u64,
}

/// Every IPv4 TCP socket in the calling process's network namespace (all states), with counters.
pub fn tcp_sockets() -> io::Result<Vec<SockCounters>> {
    let fd = open_sock_diag()?;
    send_request(&fd)?;
    let mut buf = vec![0u8; RECV_BUF_LEN];
    let mut sockets = Vec::new();
    loop {
        let len = recv_datagram(&fd, &mut buf)?;
        let (batch, done) = parse_dump(&buf[..len])?;
        sockets.extend(batch);
        if done {
            return Ok(sockets);
        }
    }
}

/// The sockets whose local or remote port is `port` (helper over tcp_sockets()).
pub fn with_port(all: &[SockCounters], port: u16) -> Vec<SockCounters> {
    all.iter().filter(|s| s.local.port() == port || s.remote.port() == port).copied().collect()
}

// Constants from linux/netlink.h, linux/sock_diag.h and linux/inet_diag.h.
const NETLINK_SOCK_DIAG: libc::c_int = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300; // NLM_F_ROOT | NLM_F_MATCH
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const INET_DIAG_INFO: u16 = 2;
const ALL_TCP_STATES: u32 = 0xffff_ffff;
const REQUEST_SEQ: u32 = 1;

const NLMSG_HDR_LEN: usize = 16;
/// `struct inet_diag_req_v2`: family, protocol, ext, pad (u8 each), states (u32), sockid (48).
const INET_DIAG_REQ_V2_LEN: usize = 56;
const INET_DIAG_SOCKID_LEN: usize = 48;
/// `struct inet_diag_msg`: family, state, timer, retrans (u8 each), sockid (48), then
/// expires, rqueue, wqueue, uid, inode (u32 each).
const INET_DIAG_MSG_LEN: usize = 72;
const RTA_HDR_LEN: usize = 4;

/// Offsets into `struct tcp_info` (linux/tcp.h, uapi). Layout: 8 single-byte fields (state,
/// ca_state, retransmits, probes, backoff, options, the two wscale nibbles, the
/// app_limited/fastopen bits) fill bytes 0..8; then 24 u32 fields from `tcpi_rto` to
/// `tcpi_total_retrans` fill 8..104; then the u64s `tcpi_pacing_rate` (104),
/// `tcpi_max_pacing_rate` (112), `tcpi_bytes_acked` (120), `tcpi_bytes_received` (128).
/// Checked with `offsetof` in C against this machine's `<linux/tcp.h>`, and in the test
/// `tcp_info_offsets_follow_libc_layout` against `libc::tcp_info`'s `tcpi_total_retrans`.
const TCPI_BYTES_ACKED: usize = 120;
const TCPI_BYTES_RECEIVED: usize = 128;
/// An `INET_DIAG_INFO` payload shorter than this predates the byte counters (Linux < 4.1 for
/// `tcpi_bytes_received`): both counters read as 0.
const TCPI_MIN_LEN_WITH_BYTES: usize = 136;

/// Larger than the kernel's dump skb (at most 32 KiB), so no datagram is truncated.
const RECV_BUF_LEN: usize = 64 * 1024;
/// A dump answers within microseconds; the timeout only guards against a hang.
const RECV_TIMEOUT: Duration = Duration::from_secs(5);

fn open_sock_diag() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with constant arguments; no memory is passed.
    let raw = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, NETLINK_SOCK_DIAG) };
    if raw < 0 {
        let err = io::Error::last_os_error();
        return Err(io::Error::new(err.kind(), format!("cannot open a NETLINK_SOCK_DIAG socket: {err}")));
    }
    // SAFETY: `raw` is a fresh, valid descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let timeout = libc::timeval { tv_sec: RECV_TIMEOUT.as_secs() as libc::time_t, tv_usec: 0 };
    // SAFETY: `timeout` is a live `timeval` and the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&timeout as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

fn send_request(fd: &OwnedFd) -> io::Result<()> {
    let request = build_request(REQUEST_SEQ);
    // SAFETY: `sockaddr_nl` is plain old data for which all-zero bytes are valid.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    loop {
        // SAFETY: `request` and `kernel` are live for the call and the lengths passed are theirs.
        let sent = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                request.as_ptr().cast(),
                request.len(),
                0,
                (&kernel as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent >= 0 {
            return if sent as usize == request.len() {
                Ok(())
            } else {
                Err(io::Error::other(format!("sock_diag request sent {sent} of {} bytes", request.len())))
            };
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// One datagram; its length, or an error if it did not fit in `buf`.
fn recv_datagram(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is live and writable for its whole length. With MSG_TRUNC the kernel still
        // writes at most `buf.len()` bytes but returns the datagram's real length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_TRUNC) };
        if n >= 0 {
            let n = n as usize;
            if n > buf.len() {
                return Err(io::Error::other(format!(
                    "sock_diag datagram of {n} bytes exceeds the {} byte buffer",
                    buf.len()
                )));
            }
            return Ok(n);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// `nlmsghdr` + `inet_diag_req_v2` asking for a dump of every IPv4 TCP socket with `tcp_info`.
fn build_request(seq: u32) -> Vec<u8> {
    let len = NLMSG_HDR_LEN + INET_DIAG_REQ_V2_LEN;
    let mut req = Vec::with_capacity(len);
    req.extend_from_slice(&(len as u32).to_ne_bytes());
    req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req.extend_from_slice(&seq.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: 0, the kernel assigns ours
    req.push(libc::AF_INET as u8); // sdiag_family
    req.push(libc::IPPROTO_TCP as u8); // sdiag_protocol
    req.push(1 << (INET_DIAG_INFO - 1) as u8); // idiag_ext: ask for INET_DIAG_INFO
    req.push(0); // pad
    req.extend_from_slice(&ALL_TCP_STATES.to_ne_bytes()); // idiag_states
    req.extend_from_slice(&[0u8; INET_DIAG_SOCKID_LEN]); // id: no filter
    debug_assert_eq!(req.len(), len);
    req
}

/// Parses one received datagram of a sock_diag dump: the sockets it describes and whether it
/// ended the dump (`NLMSG_DONE`). An `NLMSG_ERROR` becomes the kernel's errno.
fn parse_dump(buf: &[u8]) -> io::Result<(Vec<SockCounters>, bool)> {
    let mut sockets = Vec::new();
    let mut rest = buf;
    while rest.len() >= NLMSG_HDR_LEN {
        let msg_len = u32_ne(rest, 0) as usize;
        let msg_type = u16_ne(rest, 4);
        if msg_len < NLMSG_HDR_LEN || msg_len > rest.len() {
            return Err(malformed(format!("netlink message length {msg_len} with {} bytes left", rest.len())));
        }
        let payload = &rest[NLMSG_HDR_LEN..msg_len];
        match msg_type {
            NLMSG_DONE => {
                // A dump may end with a negative errno in place of 0.
                if payload.len() >= 4 && i32_ne(payload, 0) < 0 {
                    return Err(io::Error::from_raw_os_error(-i32_ne(payload, 0)));
                }
                return Ok((sockets, true));
            }
            NLMSG_ERROR => {
                if payload.len() < 4 {
                    return Err(malformed("truncated NLMSG_ERROR".to_string()));
                }
                let errno = -i32_ne(payload, 0);
                if errno != 0 {
                    return Err(io::Error::from_raw_os_error(errno));
                }
                // errno 0 is an acknowledgement, not a failure.
            }
            SOCK_DIAG_BY_FAMILY => sockets.push(parse_inet_diag_msg(payload)?),
            _ => {} // NLMSG_NOOP and anything else: nothing to read
        }
        rest = &rest[align4(msg_len).min(rest.len())..];
    }
    Ok((sockets, false))
}

/// One `inet_diag_msg` followed by its rtattrs. TIME_WAIT and SYN_RECV mini-sockets carry no
/// `INET_DIAG_INFO` (and inode 0): their counters read as 0.
fn parse_inet_diag_msg(msg: &[u8]) -> io::Result<SockCounters> {
    if msg.len() < INET_DIAG_MSG_LEN {
        return Err(malformed(format!("inet_diag_msg of {} bytes, expected at least {INET_DIAG_MSG_LEN}", msg.len())));
    }
    let family = msg[0];
    let state = msg[1];
    let sport = u16::from_be_bytes([msg[4], msg[5]]);
    let dport = u16::from_be_bytes([msg[6], msg[7]]);
    let src = ip_addr(family, &msg[8..24])?;
    let dst = ip_addr(family, &msg[24..40])?;
    let inode = u32_ne(msg, 68);
    let mut counters = SockCounters {
        local: SocketAddr::new(src, sport),
        remote: SocketAddr::new(dst, dport),
        state,
        inode,
        bytes_acked: 0,
        bytes_received: 0,
    };
    let mut attrs = &msg[align4(INET_DIAG_MSG_LEN).min(msg.len())..];
    while attrs.len() >= RTA_HDR_LEN {
        let attr_len = u16_ne(attrs, 0) as usize;
        let attr_type = u16_ne(attrs, 2);
        if attr_len < RTA_HDR_LEN || attr_len > attrs.len() {
            return Err(malformed(format!("rtattr length {attr_len} with {} bytes left", attrs.len())));
        }
        let data = &attrs[RTA_HDR_LEN..attr_len];
        if attr_type == INET_DIAG_INFO && data.len() >= TCPI_MIN_LEN_WITH_BYTES {
            counters.bytes_acked = u64_ne(data, TCPI_BYTES_ACKED);
            counters.bytes_received = u64_ne(data, TCPI_BYTES_RECEIVED);
        }
        attrs = &attrs[align4(attr_len).min(attrs.len())..];
    }
    Ok(counters)
}

fn ip_addr(family: u8, bytes: &[u8]) -> io::Result<IpAddr> {
    match libc::c_int::from(family) {
        libc::AF_INET => Ok(IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))),
        libc::AF_INET6 => {
            let octets: [u8; 16] = bytes[..16].try_into().expect("slice of 16 bytes");
            Ok(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        other => Err(malformed(format!("inet_diag_msg with address family {other}"))),
    }
}

fn malformed(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("malformed sock_diag reply: {what}"))
}

fn align4(len: usize) -> usize {
    (len + 3) & !3
}

// Callers check lengths first; these panic only on a bug in this module.
fn u16_ne(buf: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes(buf[at..at + 2].try_into().expect("2 bytes"))
}

fn u32_ne(buf: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}

fn i32_ne(buf: &[u8], at: usize) -> i32 {
    i32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_ne(buf: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(buf[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::Instant;

    fn nlmsg(msg_type: u16, payload: &[u8]) -> Vec<u8> {
        let len = NLMSG_HDR_LEN + payload.len();
        let mut out = Vec::new();
        out.extend_from_slice(&(len as u32).to_ne_bytes());
        out.extend_from_slice(&msg_type.to_ne_bytes());
        out.extend_from_slice(&0x2u16.to_ne_bytes()); // NLM_F_MULTI
        out.extend_from_slice(&REQUEST_SEQ.to_ne_bytes());
        out.extend_from_slice(&4242u32.to_ne_bytes());
        out.extend_from_slice(payload);
        out.resize(align4(out.len()), 0);
        out
    }

    fn rtattr(attr_type: u16, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&((RTA_HDR_LEN + data.len()) as u16).to_ne_bytes());
        out.extend_from_slice(&attr_type.to_ne_bytes());
        out.extend_from_slice(data);
        out.resize(align4(out.len()), 0);
        out
    }

    /// An IPv4 `inet_diag_msg` for 127.0.0.1:`sport` -> 127.0.0.2:`dport` with a `tcp_info` of
    /// `info_len` bytes carrying the two counters.
    fn diag_msg(sport: u16, dport: u16, info_len: usize, acked: u64, received: u64) -> Vec<u8> {
        let mut msg = vec![libc::AF_INET as u8, 1, 0, 0];
        msg.extend_from_slice(&sport.to_be_bytes());
        msg.extend_from_slice(&dport.to_be_bytes());
        let mut src = [0u8; 16];
        src[..4].copy_from_slice(&[127, 0, 0, 1]);
        let mut dst = [0u8; 16];
        dst[..4].copy_from_slice(&[127, 0, 0, 2]);
        msg.extend_from_slice(&src);
        msg.extend_from_slice(&dst);
        msg.extend_from_slice(&0u32.to_ne_bytes()); // if
        msg.extend_from_slice(&[0xAA; 8]); // cookie
        for field in [0u32, 0, 0, 1000, 777_777] {
            msg.extend_from_slice(&field.to_ne_bytes()); // expires, rqueue, wqueue, uid, inode
        }
        assert_eq!(msg.len(), INET_DIAG_MSG_LEN);
        // Another attribute first, so the walk over rtattrs is exercised (INET_DIAG_CONG = 4).
        msg.extend(rtattr(4, b"cubic\0"));
        let mut info = vec![0xEEu8; info_len];
        if info_len >= TCPI_MIN_LEN_WITH_BYTES {
            info[TCPI_BYTES_ACKED..TCPI_BYTES_ACKED + 8].copy_from_slice(&acked.to_ne_bytes());
            info[TCPI_BYTES_RECEIVED..TCPI_BYTES_RECEIVED + 8].copy_from_slice(&received.to_ne_bytes());
        }
        msg.extend(rtattr(INET_DIAG_INFO, &info));
        msg
    }

    fn loopback(last: u8, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)), port)
    }

    #[test]
    fn parse_dump_reads_counters_then_done() {
        let mut buf = nlmsg(SOCK_DIAG_BY_FAMILY, &diag_msg(40000, 9092, 232, 123_456_789_012, 42));
        buf.extend(nlmsg(NLMSG_DONE, &0i32.to_ne_bytes()));
        let (sockets, done) = parse_dump(&buf).unwrap();
        assert!(done);
        assert_eq!(
            sockets,
            vec![SockCounters {
                local: loopback(1, 40000),
                remote: loopback(2, 9092),
                state: 1,
                inode: 777_777,
                bytes_acked: 123_456_789_012,
                bytes_received: 42,
            }]
        );
    }

    #[test]
    fn parse_dump_without_done_asks_for_more() {
        let mut buf = nlmsg(SOCK_DIAG_BY_FAMILY, &diag_msg(1, 2, 232, 5, 6));
        buf.extend(nlmsg(SOCK_DIAG_BY_FAMILY, &diag_msg(3, 4, 232, 7, 8)));
        let (sockets, done) = parse_dump(&buf).unwrap();
        assert!(!done);
        let ports: Vec<_> = sockets.iter().map(|s| (s.local.port(), s.bytes_acked, s.bytes_received)).collect();
        assert_eq!(ports, vec![(1, 5, 6), (3, 7, 8)]);
    }

    #[test]
    fn parse_dump_short_tcp_info_reads_zero_counters() {
        // A tcp_info that ends before tcpi_bytes_received (an old kernel): counters 0, not garbage.
        let buf = nlmsg(SOCK_DIAG_BY_FAMILY, &diag_msg(1, 2, 104, 5, 6));
        let (sockets, _) = parse_dump(&buf).unwrap();
        assert_eq!((sockets[0].bytes_acked, sockets[0].bytes_received), (0, 0));
    }

    #[test]
    fn parse_dump_error_is_the_kernel_errno() {
        let mut payload = (-libc::EACCES).to_ne_bytes().to_vec();
        payload.extend_from_slice(&build_request(REQUEST_SEQ)[..NLMSG_HDR_LEN]);
        let err = parse_dump(&nlmsg(NLMSG_ERROR, &payload)).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EACCES));
    }

    #[test]
    fn parse_dump_rejects_truncated_messages() {
        let buf = nlmsg(SOCK_DIAG_BY_FAMILY, &diag_msg(1, 2, 232, 5, 6));
        let err = parse_dump(&buf[..buf.len() - 8]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        let err = parse_dump(&nlmsg(SOCK_DIAG_BY_FAMILY, &[0u8; 40])).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    }

    #[test]
    fn request_matches_kernel_layout() {
        let req = build_request(7);
        assert_eq!(req.len(), 72);
        assert_eq!(u32_ne(&req, 0), 72);
        assert_eq!(u16_ne(&req, 4), 20);
        assert_eq!(u16_ne(&req, 6), 0x301);
        assert_eq!(u32_ne(&req, 8), 7);
        assert_eq!(&req[16..20], &[libc::AF_INET as u8, libc::IPPROTO_TCP as u8, 0b10, 0]);
        assert_eq!(u32_ne(&req, 20), 0xffff_ffff);
        assert!(req[24..].iter().all(|b| *b == 0));
    }

    #[test]
    fn tcp_info_offsets_follow_libc_layout() {
        // libc's tcp_info (glibc's copy) stops at tcpi_total_retrans; the kernel's continues with
        // u64 tcpi_pacing_rate, tcpi_max_pacing_rate, tcpi_bytes_acked, tcpi_bytes_received.
        let total_retrans = std::mem::offset_of!(libc::tcp_info, tcpi_total_retrans);
        assert_eq!(total_retrans, 100);
        let pacing_rate = align4(total_retrans + 4).next_multiple_of(8);
        assert_eq!(TCPI_BYTES_ACKED, pacing_rate + 2 * 8);
        assert_eq!(TCPI_BYTES_RECEIVED, pacing_rate + 3 * 8);
        assert_eq!(TCPI_MIN_LEN_WITH_BYTES, TCPI_BYTES_RECEIVED + 8);
    }

    #[test]
    fn with_port_matches_local_or_remote() {
        let sock = |local: u16, remote: u16| SockCounters {
            local: loopback(1, local),
            remote: loopback(1, remote),
            state: 1,
            inode: 0,
            bytes_acked: 0,
            bytes_received: 0,
        };
        let all = [sock(9092, 50000), sock(50000, 9092), sock(1, 2)];
        assert_eq!(with_port(&all, 9092), vec![all[0], all[1]]);
        assert_eq!(with_port(&all, 2), vec![all[2]]);
        assert!(with_port(&all, 3).is_empty());
    }

    #[test]
    fn live_loopback_counters_see_bytes() {
        const BYTES: usize = 10_000;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        client.write_all(&[0x5A; BYTES]).unwrap();
        let mut got = vec![0u8; BYTES];
        server.read_exact(&mut got).unwrap();
        let client_addr = client.local_addr().unwrap();
        let server_addr = server.local_addr().unwrap();

        let deadline = Instant::now() + Duration::from_secs(2);
        let (client_sock, server_sock) = loop {
            let all = tcp_sockets().unwrap_or_else(|e| {
                panic!("sock_diag unavailable ({e}); this test needs NETLINK_SOCK_DIAG (check `ss -ti`)")
            });
            let find = |local: SocketAddr, remote: SocketAddr| {
                all.iter().find(|s| s.local == local && s.remote == remote).copied()
            };
            let client_sock = find(client_addr, server_addr);
            let server_sock = find(server_addr, client_addr);
            let counted = matches!((client_sock, server_sock), (Some(c), Some(s))
                if c.bytes_acked >= BYTES as u64 && s.bytes_received >= BYTES as u64);
            if counted || Instant::now() > deadline {
                break (client_sock, server_sock);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let client_sock = client_sock.unwrap_or_else(|| panic!("no socket {client_addr} -> {server_addr} in the dump"));
        let server_sock = server_sock.unwrap_or_else(|| panic!("no socket {server_addr} -> {client_addr} in the dump"));
        assert_eq!(client_sock.state, 1, "client socket not ESTABLISHED: {client_sock:?}");
        assert_ne!(client_sock.inode, 0, "{client_sock:?}");
        assert!(client_sock.bytes_acked >= BYTES as u64, "client acked too few bytes: {client_sock:?}");
        assert!(server_sock.bytes_received >= BYTES as u64, "server received too few bytes: {server_sock:?}");
        let on_port = with_port(&tcp_sockets().unwrap(), server_addr.port());
        assert!(on_port.iter().any(|s| s.local == client_addr), "{on_port:?}");
    }
}
