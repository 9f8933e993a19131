//! The minimal HTTP/2 server the Raft port runs for probes (`chronik_chaos::probe`): checks
//! the client preface byte by byte, sends an empty SETTINGS, ACKs the client's SETTINGS,
//! answers each PING with a PING ACK carrying its payload, ignores every other frame type, and
//! closes on anything HTTP/2 forbids here.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_SETTINGS: u8 = 0x4;
const FRAME_PING: u8 = 0x6;
const FLAG_ACK: u8 = 0x1;
/// The default SETTINGS_MAX_FRAME_SIZE, which this server never raises.
const MAX_FRAME: usize = 16_384;

/// A minimal HTTP/2 server for probes: checks the preface byte by byte (closing on the first
/// wrong byte), sends an empty SETTINGS, ACKs the client's SETTINGS, answers each PING with a
/// PING ACK carrying its payload, ignores every other frame type, and closes on a frame HTTP/2
/// forbids here (first frame not SETTINGS, oversized, malformed SETTINGS or PING).
pub async fn serve_conn(mut s: TcpStream) {
    let mut preface = [0u8; 24];
    let mut got = 0;
    while got < preface.len() {
        match s.read(&mut preface[got..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) if preface[got..got + n] != HTTP2_PREFACE[got..got + n] => return,
            Ok(n) => got += n,
        }
    }
    if s.write_all(&http2_frame(FRAME_SETTINGS, 0, &[])).await.is_err() {
        return;
    }
    let mut first = true;
    loop {
        let mut head = [0u8; 9];
        if s.read_exact(&mut head).await.is_err() {
            return;
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        if len > MAX_FRAME || (first && (kind != FRAME_SETTINGS || flags & FLAG_ACK != 0)) {
            return;
        }
        first = false;
        let mut payload = vec![0u8; len];
        if s.read_exact(&mut payload).await.is_err() {
            return;
        }
        let answer = match (kind, flags & FLAG_ACK) {
            (FRAME_SETTINGS | FRAME_PING, _) if stream != 0 => return,
            (FRAME_SETTINGS, 0) if len % 6 == 0 => http2_frame(FRAME_SETTINGS, FLAG_ACK, &[]),
            (FRAME_SETTINGS, _) if len == 0 => continue, // the client's ACK of ours
            (FRAME_PING, 0) if len == 8 => http2_frame(FRAME_PING, FLAG_ACK, &payload),
            (FRAME_PING, _) if len == 8 => continue,
            (FRAME_SETTINGS | FRAME_PING, _) => return,
            _ => continue, // other and unknown frame types: ignored
        };
        if s.write_all(&answer).await.is_err() {
            return;
        }
    }
}

/// One HTTP/2 frame: 24-bit length, type, flags, stream 0, payload.
fn http2_frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags, 0, 0, 0, 0]);
    out.extend_from_slice(payload);
    out
}
