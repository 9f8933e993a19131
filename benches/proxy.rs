//! Proxy benchmark (figures, not a test): stream throughput and added round-trip latency for
//! direct loopback, the embedded server, and a real `toxiproxy-server` when `TOXIPROXY_BIN` is
//! set. Run with `cargo xtask bench proxy`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chronik_chaos::toxiproxy::launcher::{self, LaunchConfig, Launched, ServerChoice};
use chronik_chaos::toxiproxy::NewProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const STREAM_BYTES: usize = 256 << 20;
const ROUND_TRIPS: usize = 20_000;
const MESSAGE: usize = 64;
const RUNS: usize = 3;

struct Figures {
    mb_per_s: f64,
    p50: Duration,
    p99: Duration,
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(run());
}

async fn run() {
    let source = source_server().await;
    let echo = echo_server().await;
    println!(
        "proxy benchmark: loopback, best of {RUNS} streams of {} MiB, {ROUND_TRIPS} round trips of {MESSAGE} bytes",
        STREAM_BYTES >> 20
    );
    let direct = measure(source, echo).await;

    let dir = tempfile::tempdir().unwrap();
    let embedded = start(ServerChoice::Embedded, &dir.path().join("embedded.log")).await;
    let embedded_fig = through(&embedded, source, echo).await;

    let real = match std::env::var_os("TOXIPROXY_BIN").filter(|v| !v.is_empty()) {
        Some(bin) => {
            let l = start(
                ServerChoice::Real { bin: PathBuf::from(bin), found_by: "TOXIPROXY_BIN" },
                &dir.path().join("real.log"),
            )
            .await;
            let f = through(&l, source, echo).await;
            Some((l.kind.to_string(), f))
        }
        None => None,
    };

    println!();
    println!(
        "{:<10} {:>10} {:>9} {:>9} {:>9} {:>12} {:>12}",
        "target", "MB/s", "×direct", "p50 µs", "p99 µs", "added p50", "added p99"
    );
    let row = |name: &str, f: &Figures| {
        println!(
            "{:<10} {:>10.0} {:>9.2} {:>9.1} {:>9.1} {:>12.1} {:>12.1}",
            name,
            f.mb_per_s,
            f.mb_per_s / direct.mb_per_s,
            micros(f.p50),
            micros(f.p99),
            micros(f.p50) - micros(direct.p50),
            micros(f.p99) - micros(direct.p99),
        )
    };
    row("direct", &direct);
    row("embedded", &embedded_fig);
    match &real {
        Some((_, f)) => row("real", f),
        None => println!("{:<10} not measured: set TOXIPROXY_BIN to a real toxiproxy-server", "real"),
    }
    println!();
    let added = micros(embedded_fig.p50) - micros(direct.p50);
    println!("goal: embedded adds ≤ 50 µs at p50 → {:.1} µs: {}", added, if added <= 50.0 { "met" } else { "NOT met" });
    match &real {
        Some((kind, f)) => println!(
            "goal: embedded throughput ≥ real ({kind}) → {:.2}× real: {}",
            embedded_fig.mb_per_s / f.mb_per_s,
            if embedded_fig.mb_per_s >= f.mb_per_s { "met" } else { "NOT met" }
        ),
        None => println!("goal: embedded throughput ≥ real → not measured (no TOXIPROXY_BIN)"),
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn start(choice: ServerChoice, log: &std::path::Path) -> Launched {
    let cfg = LaunchConfig {
        listen: std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap(),
        choice,
        embedded_exe: PathBuf::from(env!("CARGO_BIN_EXE_chronik-chaos")),
        log: log.to_path_buf(),
        ready_timeout: Duration::from_secs(15),
    };
    launcher::launch(&cfg).await.unwrap()
}

async fn through(server: &Launched, source: SocketAddr, echo: SocketAddr) -> Figures {
    let c = server.client();
    let s = c.create_proxy(&NewProxy::new("bench-source", "127.0.0.1:0", source.to_string())).await.unwrap();
    let e = c.create_proxy(&NewProxy::new("bench-echo", "127.0.0.1:0", echo.to_string())).await.unwrap();
    measure(s.listen.parse().unwrap(), e.listen.parse().unwrap()).await
}

async fn measure(source: SocketAddr, echo: SocketAddr) -> Figures {
    let mut best = 0.0f64;
    for _ in 0..RUNS {
        let mut s = TcpStream::connect(source).await.unwrap();
        let mut buf = vec![0u8; 256 * 1024];
        let t = Instant::now();
        let mut got = 0;
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got += n;
        }
        assert_eq!(got, STREAM_BYTES, "stream cut short");
        best = best.max(got as f64 / 1e6 / t.elapsed().as_secs_f64());
    }
    let mut s = TcpStream::connect(echo).await.unwrap();
    s.set_nodelay(true).unwrap();
    let msg = [7u8; MESSAGE];
    let mut back = [0u8; MESSAGE];
    let mut rtts = Vec::with_capacity(ROUND_TRIPS);
    for i in 0..ROUND_TRIPS + 500 {
        let t = Instant::now();
        s.write_all(&msg).await.unwrap();
        s.read_exact(&mut back).await.unwrap();
        if i >= 500 {
            rtts.push(t.elapsed());
        }
    }
    rtts.sort();
    Figures { mb_per_s: best, p50: rtts[rtts.len() / 2], p99: rtts[rtts.len() * 99 / 100] }
}

async fn source_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let chunk = vec![1u8; 256 * 1024];
                let mut left = STREAM_BYTES;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if s.write_all(&chunk[..n]).await.is_err() {
                        return;
                    }
                    left -= n;
                }
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}
