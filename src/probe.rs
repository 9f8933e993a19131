//! Probes that measure what a toxic really does to a proxy by talking *through* it: a Kafka
//! ApiVersions or HTTP/2 PING round trip, an HTTP/2 bandwidth transfer, the delay before the far
//! side's close arrives, and how many connections end in a reset.
//!
//! Every probe opens fresh TCP connections and bounds all its waiting by one `timeout`.
//! Measured times start after the connection is open and, for HTTP/2, after the handshake.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// What the proxy's upstream speaks, which decides the probe request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// A Kafka broker: an ApiVersions v0 request, answered by a response with its correlation id.
    Kafka,
    /// A gRPC (HTTP/2) server such as a Raft port: after the connection preface, a PING answered
    /// by a PING ACK.
    Http2,
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot connect to {0} to probe it: {1}")]
    Connect(SocketAddr, #[source] io::Error),
    #[error("probe timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
    #[error("probe of {0} failed: {1}")]
    Io(SocketAddr, #[source] io::Error),
    #[error("probe got an answer it does not understand: {0}; is the probe protocol the one the upstream speaks?")]
    Protocol(String),
    #[error("the probed connection was reset by the far side (ECONNRESET)")]
    Reset,
}

/// The round trips of [`round_trips`]: their median and every sample, in the order measured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoundTrips {
    pub median: Duration,
    pub samples: Vec<Duration>,
}

/// One request/response round trip through `addr` (connect time excluded).
///
/// Kafka: ApiVersions v0 until the whole response with the same correlation id has arrived.
/// HTTP/2: after the preface and the server's first frame, a PING until its PING ACK. (The
/// server's first frame alone is not a round trip: an h2/tonic server sends its SETTINGS as soon
/// as it accepts, before it has read anything.)
pub async fn round_trip(addr: SocketAddr, proto: Protocol, timeout: Duration) -> Result<Duration, ProbeError> {
    let mut conn = Conn::open(addr, timeout).await?;
    match proto {
        Protocol::Kafka => kafka_api_versions(&mut conn).await,
        Protocol::Http2 => {
            http2_handshake(&mut conn).await?;
            http2_ping(&mut conn, 0).await
        }
    }
}

/// Median of `n` round trips on fresh connections, one after the other, with every sample.
/// `n` is at least 1 (0 counts as 1); `timeout` bounds each round trip; the first error ends it.
pub async fn round_trips(
    addr: SocketAddr,
    proto: Protocol,
    n: usize,
    timeout: Duration,
) -> Result<RoundTrips, ProbeError> {
    let mut samples = Vec::with_capacity(n.max(1));
    for _ in 0..n.max(1) {
        samples.push(round_trip(addr, proto, timeout).await?);
    }
    Ok(RoundTrips { median: median(&samples), samples })
}

/// HTTP/2 only: time to push `bytes` upstream and get the PING ACK back (a bandwidth probe).
/// After the handshake, sends `bytes` of payload in frames of an unknown type (which HTTP/2
/// requires the server to ignore), then a PING, and waits for its ACK.
pub async fn transfer(addr: SocketAddr, bytes: usize, timeout: Duration) -> Result<Duration, ProbeError> {
    let mut conn = Conn::open(addr, timeout).await?;
    http2_handshake(&mut conn).await?;
    http2_ping(&mut conn, bytes).await
}

/// Sends garbage the server must reject, and times until the connection is closed by the far
/// side (EOF or reset): a slow_close probe. The garbage is a negative Kafka request size and not
/// the HTTP/2 preface, so Kafka brokers and HTTP/2 servers both close on it.
pub async fn close_delay(addr: SocketAddr, timeout: Duration) -> Result<Duration, ProbeError> {
    let mut conn = Conn::open(addr, timeout).await?;
    let start = Instant::now();
    match conn.write(GARBAGE).await {
        Err(ProbeError::Reset) => return Ok(start.elapsed()),
        other => other?,
    }
    let mut buf = [0u8; 4096];
    loop {
        match conn.read_some(&mut buf, "the server to close the connection after garbage").await {
            Ok(0) | Err(ProbeError::Reset) => return Ok(start.elapsed()),
            Ok(_) => {} // e.g. an HTTP/2 server's SETTINGS and GOAWAY before it closes
            Err(e) => return Err(e),
        }
    }
}

/// Opens `tries` connections in parallel, sends a probe request on each, and counts the ones that
/// end in a connection reset (ECONNRESET) within `timeout`: a reset_peer probe. Answers, other
/// errors and timeouts do not count.
pub async fn resets(addr: SocketAddr, proto: Protocol, tries: usize, timeout: Duration) -> usize {
    let mut probes = JoinSet::new();
    for _ in 0..tries {
        probes.spawn(round_trip(addr, proto, timeout));
    }
    let mut reset = 0;
    while let Some(done) = probes.join_next().await {
        if matches!(done, Ok(Err(ProbeError::Reset))) {
            reset += 1;
        }
    }
    reset
}

const KAFKA_CLIENT_ID: &str = "chronik-chaos-probe";
const API_VERSIONS: i16 = 18;
/// Larger answers to ApiVersions are not a Kafka broker talking.
const MAX_KAFKA_RESPONSE: usize = 1 << 20;

const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_SETTINGS: u8 = 0x4;
const FRAME_PING: u8 = 0x6;
/// A frame type HTTP/2 does not define; receivers must ignore it (RFC 9113 §4.1).
const FRAME_UNKNOWN: u8 = 0xF0;
const FLAG_ACK: u8 = 0x1;
/// The default SETTINGS_MAX_FRAME_SIZE; the probe announces no other.
const MAX_FRAME: usize = 16_384;

/// Rejected by Kafka (negative request size) and by HTTP/2 (not the preface).
const GARBAGE: &[u8] = b"\xff\xff\xff\xffchronik-chaos-probe: garbage, not a request\r\n\r\n";

/// An open probe connection and the deadline of all its waiting.
struct Conn {
    stream: TcpStream,
    addr: SocketAddr,
    deadline: Instant,
    timeout: Duration,
}

impl Conn {
    async fn open(addr: SocketAddr, timeout: Duration) -> Result<Conn, ProbeError> {
        let deadline = Instant::now() + timeout;
        let stream = match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => return Err(ProbeError::Timeout { what: format!("a connection to {addr}"), after: timeout }),
            Ok(Err(e)) => return Err(ProbeError::Connect(addr, e)),
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        Ok(Conn { stream, addr, deadline, timeout })
    }

    fn timed_out(&self, what: &str) -> ProbeError {
        ProbeError::Timeout { what: format!("{what} from {}", self.addr), after: self.timeout }
    }

    fn failed(&self, e: io::Error) -> ProbeError {
        match e.kind() {
            io::ErrorKind::ConnectionReset => ProbeError::Reset,
            _ => ProbeError::Io(self.addr, e),
        }
    }

    async fn write(&mut self, data: &[u8]) -> Result<(), ProbeError> {
        match tokio::time::timeout_at(self.deadline, self.stream.write_all(data)).await {
            Err(_) => Err(self.timed_out("room to send the probe request")),
            Ok(r) => r.map_err(|e| self.failed(e)),
        }
    }

    /// One read; `Ok(0)` is EOF.
    async fn read_some(&mut self, buf: &mut [u8], what: &str) -> Result<usize, ProbeError> {
        match tokio::time::timeout_at(self.deadline, self.stream.read(buf)).await {
            Err(_) => Err(self.timed_out(what)),
            Ok(r) => r.map_err(|e| self.failed(e)),
        }
    }

    async fn read_exact(&mut self, buf: &mut [u8], what: &str) -> Result<(), ProbeError> {
        let mut got = 0;
        while got < buf.len() {
            match self.read_some(&mut buf[got..], what).await? {
                0 => return Err(ProbeError::Protocol(format!("{} closed the connection before {what}", self.addr))),
                n => got += n,
            }
        }
        Ok(())
    }
}

/// ApiVersions v0: the size-prefixed request header (key, version, correlation id, client id)
/// with an empty body.
fn api_versions_request(correlation: i32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&API_VERSIONS.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&correlation.to_be_bytes());
    body.extend_from_slice(&(KAFKA_CLIENT_ID.len() as i16).to_be_bytes());
    body.extend_from_slice(KAFKA_CLIENT_ID.as_bytes());
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

async fn kafka_api_versions(conn: &mut Conn) -> Result<Duration, ProbeError> {
    const WHAT: &str = "the kafka ApiVersions response";
    let correlation = fastrand::i32(1..);
    let start = Instant::now();
    conn.write(&api_versions_request(correlation)).await?;
    let mut size = [0u8; 4];
    conn.read_exact(&mut size, WHAT).await?;
    let size = i32::from_be_bytes(size);
    if !(4..=MAX_KAFKA_RESPONSE as i32).contains(&size) {
        return Err(ProbeError::Protocol(format!("{} sent a kafka response of size {size}", conn.addr)));
    }
    let mut response = vec![0u8; size as usize];
    conn.read_exact(&mut response, WHAT).await?;
    let took = start.elapsed();
    let got = i32::from_be_bytes([response[0], response[1], response[2], response[3]]);
    if got != correlation {
        return Err(ProbeError::Protocol(format!(
            "{} answered ApiVersions with correlation id {got}, not {correlation}",
            conn.addr
        )));
    }
    Ok(took)
}

/// One HTTP/2 frame on stream 0.
fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags, 0, 0, 0, 0]);
    out.extend_from_slice(payload);
    out
}

struct Frame {
    kind: u8,
    flags: u8,
    payload: Vec<u8>,
}

async fn read_frame(conn: &mut Conn, what: &str) -> Result<Frame, ProbeError> {
    let mut head = [0u8; 9];
    conn.read_exact(&mut head, what).await?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    if len > MAX_FRAME {
        return Err(ProbeError::Protocol(format!(
            "{} sent an HTTP/2 frame of {len} bytes, more than the {MAX_FRAME} allowed",
            conn.addr
        )));
    }
    let mut payload = vec![0u8; len];
    conn.read_exact(&mut payload, what).await?;
    Ok(Frame { kind: head[3], flags: head[4], payload })
}

/// Sends the client preface and an empty SETTINGS; waits for the server's first frame, which
/// must be its SETTINGS.
async fn http2_handshake(conn: &mut Conn) -> Result<(), ProbeError> {
    let mut hello = HTTP2_PREFACE.to_vec();
    hello.extend_from_slice(&frame(FRAME_SETTINGS, 0, &[]));
    conn.write(&hello).await?;
    let first = read_frame(conn, "the server's HTTP/2 SETTINGS").await?;
    if first.kind != FRAME_SETTINGS || first.flags & FLAG_ACK != 0 {
        return Err(ProbeError::Protocol(format!(
            "{} answered the HTTP/2 preface with frame type {:#x} flags {:#x}, not SETTINGS",
            conn.addr, first.kind, first.flags
        )));
    }
    Ok(())
}

/// ACKs the server's SETTINGS, sends `filler` bytes of unknown-type frames and a PING, and times
/// until the PING ACK with the same payload; other frames are skipped.
async fn http2_ping(conn: &mut Conn, filler: usize) -> Result<Duration, ProbeError> {
    let opaque = fastrand::u64(..).to_be_bytes();
    let start = Instant::now();
    conn.write(&frame(FRAME_SETTINGS, FLAG_ACK, &[])).await?;
    let zeros = vec![0u8; MAX_FRAME.min(filler)];
    let mut left = filler;
    while left > 0 {
        let n = left.min(MAX_FRAME);
        conn.write(&frame(FRAME_UNKNOWN, 0, &zeros[..n])).await?;
        left -= n;
    }
    conn.write(&frame(FRAME_PING, 0, &opaque)).await?;
    loop {
        let f = read_frame(conn, "the HTTP/2 PING ACK").await?;
        if f.kind == FRAME_PING && f.flags & FLAG_ACK != 0 && f.payload == opaque {
            return Ok(start.elapsed());
        }
    }
}

/// The middle sample; the mean of the two middle ones when there is an even number.
fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let mid = sorted.len() / 2;
    match sorted.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => sorted[mid],
        _ => (sorted[mid - 1] + sorted[mid]) / 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn median_of_odd_even_and_unsorted_samples() {
        fn check(samples: &[u64], expected: u64) {
            assert_eq!(median(&ms(samples)), Duration::from_millis(expected), "median of {samples:?}");
        }
        check(&[7], 7);
        check(&[30, 10, 20], 20);
        check(&[40, 10, 30, 20], 25);
        check(&[5, 500, 5], 5);
    }

    #[test]
    fn api_versions_request_is_v0_with_the_probe_client_id() {
        let req = api_versions_request(0x0102_0304);
        let mut expected = vec![0, 0, 0, 29, 0, 18, 0, 0, 1, 2, 3, 4, 0, 19];
        expected.extend_from_slice(b"chronik-chaos-probe");
        assert_eq!(req, expected);
    }

    #[test]
    fn frames_have_a_24_bit_length_and_stream_zero() {
        assert_eq!(frame(FRAME_PING, FLAG_ACK, &[9; 8]), [&[0, 0, 8, 6, 1, 0, 0, 0, 0][..], &[9; 8]].concat());
        let big = frame(FRAME_UNKNOWN, 0, &[0; MAX_FRAME]);
        assert_eq!(&big[..5], &[0, 0x40, 0, 0xF0, 0]);
        assert_eq!(big.len(), 9 + MAX_FRAME);
    }

    #[test]
    fn garbage_is_neither_a_kafka_request_nor_the_http2_preface() {
        assert!(i32::from_be_bytes(GARBAGE[..4].try_into().unwrap()) < 0);
        assert!(GARBAGE.len() >= HTTP2_PREFACE.len() && !GARBAGE.starts_with(&HTTP2_PREFACE[..1]));
    }
}
