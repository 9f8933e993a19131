//! One proxied connection: two directed links (upstream, downstream), each a reader task and a
//! writer task that runs the data through the proxy's current toxics.
//!
//! Semantics follow Toxiproxy 2.x (`link.go`, `toxics/*.go`): toxicity is drawn once per link
//! when the link first meets a toxic (and again when the toxic is updated); toxics added or
//! removed while a link is open apply to it; when one side ends, the whole connection closes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use crate::toxiproxy::model::{Stream, ToxicKind};

/// A toxic as the proxy holds it; `revision` changes on every create or update.
#[derive(Clone, Debug)]
pub(crate) struct ToxicSpec {
    pub name: String,
    pub stream: Stream,
    pub toxicity: f32,
    pub kind: ToxicKind,
    pub revision: u64,
}

pub(crate) type ToxicList = Arc<Vec<ToxicSpec>>;

/// Byte counters of one direction of one proxy (shared by its links).
#[derive(Debug, Default)]
pub(crate) struct DirectionCounters {
    pub received: AtomicU64,
    pub sent: AtomicU64,
}

/// Signals shared by the four tasks of one connection.
struct Signals {
    /// Ends every task: proxy disabled or deleted, server stopping, or a reset.
    kill: CancellationToken,
    /// Set before `kill` when the connection must end with a TCP RST.
    reset: AtomicBool,
    client_closed: CancellationToken,
    upstream_closed: CancellationToken,
}

impl Signals {
    fn trigger_reset(&self) {
        self.reset.store(true, Ordering::SeqCst);
        self.kill.cancel();
    }
}

/// What one connection needs from its proxy.
pub(crate) struct LinkSetup {
    pub toxics: watch::Receiver<ToxicList>,
    pub kill: CancellationToken,
    pub upstream_counters: Arc<DirectionCounters>,
    pub downstream_counters: Arc<DirectionCounters>,
}

/// Runs a connection to completion: returns when both directions have closed.
pub(crate) async fn run_connection(client: TcpStream, upstream: TcpStream, setup: LinkSetup) {
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let signals = Arc::new(Signals {
        kill: setup.kill,
        reset: AtomicBool::new(false),
        client_closed: CancellationToken::new(),
        upstream_closed: CancellationToken::new(),
    });
    let (client_r, client_w) = client.into_split();
    let (upstream_r, upstream_w) = upstream.into_split();

    let up = direction(
        Stream::Upstream,
        client_r,
        upstream_w,
        signals.clone(),
        setup.toxics.clone(),
        setup.upstream_counters,
    );
    let down = direction(Stream::Downstream, upstream_r, client_w, signals, setup.toxics, setup.downstream_counters);
    tokio::join!(up, down);
}

struct Chunk {
    data: Bytes,
    arrived: Instant,
}

const READ_SIZE: usize = 64 * 1024;
/// Chunks buffered between reader and writer; lets a latency toxic delay without throttling.
const CHANNEL_CHUNKS: usize = 1024;

async fn direction(
    stream: Stream,
    source: OwnedReadHalf,
    dest: OwnedWriteHalf,
    signals: Arc<Signals>,
    toxics: watch::Receiver<ToxicList>,
    counters: Arc<DirectionCounters>,
) {
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let reader = read_loop(stream, source, tx, signals.clone(), counters.clone());
    let mut writer = Writer { stream, dest: Some(dest), signals, toxics, counters, chain: Vec::new() };
    writer.refresh();
    tokio::join!(reader, writer.run(rx));
}

async fn read_loop(
    stream: Stream,
    mut source: OwnedReadHalf,
    tx: mpsc::Sender<Chunk>,
    signals: Arc<Signals>,
    counters: Arc<DirectionCounters>,
) {
    // The socket this direction reads from; when the other direction closes it, we see EOF.
    let source_closed = match stream {
        Stream::Upstream => signals.client_closed.clone(),
        Stream::Downstream => signals.upstream_closed.clone(),
    };
    let mut buf = BytesMut::with_capacity(READ_SIZE);
    loop {
        buf.reserve(READ_SIZE);
        let n = tokio::select! {
            _ = signals.kill.cancelled() => break,
            _ = source_closed.cancelled() => break,
            r = source.read_buf(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
        };
        counters.received.fetch_add(n as u64, Ordering::Relaxed);
        let chunk = Chunk { data: buf.split().freeze(), arrived: Instant::now() };
        tokio::select! {
            _ = signals.kill.cancelled() => break,
            r = tx.send(chunk) => if r.is_err() { break },
        }
    }
    if signals.reset.load(Ordering::SeqCst) {
        set_linger_zero(source.as_ref());
    }
}

fn set_linger_zero(s: &TcpStream) {
    let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
}

/// The per-link state of one toxic.
struct LinkToxic {
    name: String,
    revision: u64,
    kind: ToxicKind,
    applies: bool,
    limit_sent: u64,
    bandwidth_free: Option<Instant>,
    timeout_deadline: Option<Instant>,
}

impl LinkToxic {
    fn new(spec: &ToxicSpec, now: Instant) -> LinkToxic {
        let mut t = LinkToxic {
            name: spec.name.clone(),
            revision: spec.revision,
            kind: spec.kind.clone(),
            applies: false,
            limit_sent: 0,
            bandwidth_free: None,
            timeout_deadline: None,
        };
        t.activate(spec, now);
        t
    }

    /// Draws toxicity and (re)arms timers, as a Toxiproxy stub does each time it (re)starts.
    fn activate(&mut self, spec: &ToxicSpec, now: Instant) {
        self.revision = spec.revision;
        self.kind = spec.kind.clone();
        self.applies = fastrand::f32() < spec.toxicity;
        self.timeout_deadline = match self.kind {
            ToxicKind::Timeout { timeout } if self.applies && timeout > 0 => {
                Some(now + Duration::from_millis(timeout as u64))
            }
            _ => None,
        };
    }
}

/// One step of the plan for a chunk.
enum Step {
    Write {
        from: usize,
        to: usize,
        at: Instant,
    },
    /// Stop here until the toxics change (bandwidth 0); then re-plan the rest.
    Hold {
        from: usize,
    },
    /// Orderly close after applying the slow_close toxics that follow `stage`.
    Close {
        at: Instant,
        stage: usize,
    },
    Reset {
        at: Instant,
    },
}

enum Flow {
    Continue,
    End,
}

enum Event {
    Killed,
    Changed,
    /// An armed timeout toxic at this stage expired.
    TimedOut(usize),
    Due,
}

struct Writer {
    stream: Stream,
    dest: Option<OwnedWriteHalf>,
    signals: Arc<Signals>,
    toxics: watch::Receiver<ToxicList>,
    counters: Arc<DirectionCounters>,
    chain: Vec<LinkToxic>,
}

impl Writer {
    async fn run(&mut self, mut rx: mpsc::Receiver<Chunk>) {
        loop {
            let deadline = self.timeout_deadline();
            let flow = tokio::select! {
                biased;
                _ = self.signals.kill.cancelled() => Flow::End,
                r = self.toxics.changed() => match r {
                    Ok(()) => self.on_toxics_changed().await,
                    Err(_) => Flow::End,
                },
                _ = sleep_until_opt(deadline.map(|d| d.0)) => self.close(deadline.map_or(0, |d| d.1)).await,
                chunk = rx.recv() => match chunk {
                    Some(chunk) => self.process(chunk).await,
                    None => self.close_on_eof().await,
                },
            };
            if let Flow::End = flow {
                break;
            }
        }
        self.finish();
    }

    fn finish(&mut self) {
        if let Some(dest) = self.dest.take() {
            if self.signals.reset.load(Ordering::SeqCst) {
                set_linger_zero(dest.as_ref());
                // No FIN before the RST.
                dest.forget();
            }
        }
    }

    /// The earliest armed timeout toxic: (deadline, stage).
    fn timeout_deadline(&self) -> Option<(Instant, usize)> {
        self.chain.iter().enumerate().filter_map(|(i, t)| t.timeout_deadline.map(|d| (d, i))).min()
    }

    /// Rebuilds the chain from the proxy's toxics; returns the stage of an applied timeout
    /// toxic that was removed (its removal closes the link, as Toxiproxy's cleanup does).
    fn refresh(&mut self) -> Option<usize> {
        let now = Instant::now();
        let specs = self.toxics.borrow_and_update().clone();
        let mut old = std::mem::take(&mut self.chain);
        let mut removed_timeout = None;
        for (i, t) in old.iter().enumerate() {
            let still = specs.iter().any(|s| s.stream == self.stream && s.name == t.name);
            if !still && t.applies && matches!(t.kind, ToxicKind::Timeout { .. }) && removed_timeout.is_none() {
                removed_timeout = Some(i);
            }
        }
        for spec in specs.iter().filter(|s| s.stream == self.stream) {
            let t = match old.iter().position(|t| t.name == spec.name) {
                Some(i) => {
                    let mut t = old.swap_remove(i);
                    if t.revision != spec.revision {
                        t.activate(spec, now);
                    }
                    t
                }
                None => LinkToxic::new(spec, now),
            };
            self.chain.push(t);
        }
        removed_timeout
    }

    async fn on_toxics_changed(&mut self) -> Flow {
        match self.refresh() {
            // Closes as if from the start of the chain: toxics after the removed one still apply.
            Some(_) => self.close(0).await,
            None => Flow::Continue,
        }
    }

    async fn process(&mut self, chunk: Chunk) -> Flow {
        let mut from = 0;
        loop {
            if self.chain.iter().all(|t| !t.applies) {
                // Fast path: no toxic on this link.
                return self.write(&chunk.data[from..]).await;
            }
            let steps = self.plan(chunk.data.len(), from, chunk.arrived);
            let mut held_at = None;
            for step in steps {
                let flow = match step {
                    Step::Write { from: a, to: b, at } => match self.wait_until(at).await {
                        Flow::Continue => self.write(&chunk.data[a..b]).await,
                        Flow::End => Flow::End,
                    },
                    Step::Close { at, stage } => match self.wait_until(at).await {
                        Flow::Continue => self.close(stage + 1).await,
                        Flow::End => Flow::End,
                    },
                    Step::Reset { at } => {
                        if let Flow::Continue = self.wait_until(at).await {
                            self.signals.trigger_reset();
                        }
                        Flow::End
                    }
                    Step::Hold { from: rest } => {
                        held_at = Some(rest);
                        Flow::Continue
                    }
                };
                if let Flow::End = flow {
                    return Flow::End;
                }
            }
            match held_at {
                None => return Flow::Continue,
                Some(rest) => {
                    from = rest;
                    if let Flow::End = self.wait_for_change().await {
                        return Flow::End;
                    }
                }
            }
        }
    }

    /// Runs `len - from` bytes through the chain, in order, and says when each piece goes out.
    fn plan(&mut self, len: usize, from: usize, arrived: Instant) -> Vec<Step> {
        let now = Instant::now();
        let mut pieces: Vec<(usize, usize, Instant)> = vec![(from, len, now)];
        let mut terminal: Option<Step> = None;
        for (stage, t) in self.chain.iter_mut().enumerate() {
            if !t.applies || pieces.is_empty() {
                continue;
            }
            match t.kind {
                ToxicKind::Latency { latency, jitter } => {
                    let mut delay = latency;
                    if jitter > 0 {
                        delay += fastrand::i64(0..jitter * 2) - jitter;
                    }
                    let due = arrived + Duration::from_millis(delay.max(0) as u64);
                    for p in &mut pieces {
                        p.2 = p.2.max(due);
                    }
                }
                ToxicKind::Bandwidth { rate } if rate <= 0 => {
                    let first = pieces[0].0;
                    pieces.clear();
                    terminal = Some(Step::Hold { from: first });
                }
                ToxicKind::Bandwidth { rate } => {
                    let max = (rate as usize).saturating_mul(100).max(1);
                    let mut out = Vec::new();
                    for (a, b, at) in pieces.drain(..) {
                        let mut s = a;
                        while s < b {
                            let e = (s + max).min(b);
                            let start = at.max(t.bandwidth_free.unwrap_or(at));
                            // rate is KB/s: len bytes take len / (rate * 1000) seconds.
                            let due = start + Duration::from_micros(((e - s) as u64 * 1000) / rate as u64);
                            t.bandwidth_free = Some(due);
                            out.push((s, e, due));
                            s = e;
                        }
                    }
                    pieces = out;
                }
                ToxicKind::Slicer { average_size, size_variation, delay } => {
                    let mut out = Vec::new();
                    let mut last = now;
                    for (a, b, at) in pieces.drain(..) {
                        let cuts = slice(a, b, average_size.max(1) as usize, size_variation.max(0) as usize);
                        let mut due = at.max(last);
                        for w in cuts.windows(2) {
                            out.push((w[0], w[1], due));
                            last = due;
                            due += Duration::from_micros(delay.max(0) as u64);
                        }
                    }
                    pieces = out;
                }
                ToxicKind::LimitData { bytes } => {
                    let mut remaining = (bytes.max(0) as u64).saturating_sub(t.limit_sent);
                    let mut out = Vec::new();
                    let mut last_at = now;
                    for (a, b, at) in pieces.drain(..) {
                        if remaining == 0 {
                            break;
                        }
                        let e = a + ((b - a) as u64).min(remaining) as usize;
                        remaining -= (e - a) as u64;
                        t.limit_sent += (e - a) as u64;
                        last_at = at;
                        out.push((a, e, at));
                    }
                    pieces = out;
                    if remaining == 0 {
                        terminal = Some(Step::Close { at: last_at, stage });
                    }
                }
                ToxicKind::Timeout { .. } => {
                    // Black hole: data is dropped, never delayed.
                    pieces.clear();
                }
                ToxicKind::ResetPeer { timeout } => {
                    let at = pieces[0].2 + Duration::from_millis(timeout.max(0) as u64);
                    pieces.clear();
                    terminal = Some(Step::Reset { at });
                }
                ToxicKind::SlowClose { .. } | ToxicKind::Unknown { .. } => {}
            }
            if terminal.is_some() {
                break;
            }
        }
        let mut steps: Vec<Step> = pieces.into_iter().map(|(from, to, at)| Step::Write { from, to, at }).collect();
        steps.extend(terminal);
        steps
    }

    /// Waits for the first of: a kill, a toxic change, an armed timeout toxic, or `at`.
    async fn next_event(&mut self, at: Option<Instant>) -> Event {
        let deadline = self.timeout_deadline();
        tokio::select! {
            biased;
            _ = self.signals.kill.cancelled() => Event::Killed,
            r = self.toxics.changed() => if r.is_ok() { Event::Changed } else { Event::Killed },
            _ = sleep_until_opt(deadline.map(|d| d.0)) => Event::TimedOut(deadline.map_or(0, |d| d.1)),
            _ = sleep_until_opt(at) => Event::Due,
        }
    }

    /// Sleeps until `at`, still following toxic changes, timeouts and kills.
    async fn wait_until(&mut self, at: Instant) -> Flow {
        while Instant::now() < at {
            match self.next_event(Some(at)).await {
                Event::Killed => return Flow::End,
                Event::Changed => {
                    if let Flow::End = self.on_toxics_changed().await {
                        return Flow::End;
                    }
                }
                Event::TimedOut(stage) => return self.close(stage).await,
                Event::Due => break,
            }
        }
        Flow::Continue
    }

    /// Waits for the toxics to change (a held link), still following timeouts and kills.
    async fn wait_for_change(&mut self) -> Flow {
        match self.next_event(None).await {
            Event::Killed => Flow::End,
            Event::Changed => self.on_toxics_changed().await,
            Event::TimedOut(stage) => self.close(stage).await,
            Event::Due => Flow::Continue,
        }
    }

    async fn write(&mut self, data: &[u8]) -> Flow {
        let Some(dest) = self.dest.as_mut() else { return Flow::End };
        tokio::select! {
            _ = self.signals.kill.cancelled() => Flow::End,
            r = dest.write_all(data) => match r {
                Ok(()) => {
                    self.counters.sent.fetch_add(data.len() as u64, Ordering::Relaxed);
                    Flow::Continue
                }
                Err(_) => {
                    // The destination is gone: end the whole connection.
                    self.mark_dest_closed();
                    Flow::End
                }
            },
        }
    }

    async fn close_on_eof(&mut self) -> Flow {
        self.close(0).await
    }

    /// Orderly close of the destination after the slow_close toxics from `stage` on.
    async fn close(&mut self, stage: usize) -> Flow {
        let delay: u64 = self
            .chain
            .iter()
            .skip(stage)
            .filter(|t| t.applies)
            .filter_map(|t| match t.kind {
                ToxicKind::SlowClose { delay } => Some(delay.max(0) as u64),
                _ => None,
            })
            .sum();
        if delay > 0 {
            tokio::select! {
                _ = self.signals.kill.cancelled() => return Flow::End,
                _ = tokio::time::sleep(Duration::from_millis(delay)) => {}
            }
        }
        if let Some(mut dest) = self.dest.take() {
            let _ = dest.shutdown().await;
            // Dropping the half closes our side of the socket once the reader drops too.
        }
        self.mark_dest_closed();
        Flow::End
    }

    fn mark_dest_closed(&self) {
        match self.stream {
            Stream::Upstream => self.signals.upstream_closed.cancel(),
            Stream::Downstream => self.signals.client_closed.cancel(),
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Toxiproxy's slicer: bisects `[start, end)` until pieces are `average ± variation` bytes.
/// Returns the cut points, first `start`, last `end`.
pub(crate) fn slice(start: usize, end: usize, average: usize, variation: usize) -> Vec<usize> {
    let mut cuts = vec![start];
    slice_into(start, end, average, variation, &mut cuts);
    cuts
}

fn slice_into(start: usize, end: usize, average: usize, variation: usize, cuts: &mut Vec<usize>) {
    let len = end - start;
    if len <= 1 || len.saturating_sub(average) <= variation {
        cuts.push(end);
        return;
    }
    let mut mid = start + len / 2;
    if variation > 0 {
        let shift = fastrand::usize(0..variation * 2) as isize - variation as isize;
        mid = (mid as isize + shift).clamp(start as isize + 1, end as isize - 1) as usize;
    }
    slice_into(start, mid, average, variation, cuts);
    slice_into(mid, end, average, variation, cuts);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slicer_cuts_cover_the_range_in_order() {
        for (len, avg, var) in [(1000, 10, 2), (1, 5, 0), (17, 1, 0), (4096, 100, 50), (5, 0, 0)] {
            let cuts = slice(0, len, avg, var);
            assert_eq!(cuts.first(), Some(&0));
            assert_eq!(cuts.last(), Some(&len));
            assert!(cuts.windows(2).all(|w| w[0] < w[1]), "{cuts:?}");
            let max_piece = cuts.windows(2).map(|w| w[1] - w[0]).max().unwrap();
            assert!(max_piece <= (avg + var).max(1) * 2, "len={len} avg={avg} var={var} max={max_piece}");
        }
    }
}
