//! Contract suite: every client call and every toxic, over real TCP with real servers behind
//! the proxies, asserting the observable effect. Runs against the embedded server always
//! (`embedded::*`) and against a real `toxiproxy-server` when `TOXIPROXY_BIN` is set (`real::*`,
//! ignored otherwise, so a summary counts them as not run).
//!
//! Timing assertions are lower bounds only (a fault must add at least its delay); nothing here
//! asserts that something is fast.

#[macro_use]
mod support;

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use chronik_chaos::toxiproxy::{NewProxy, ProxyUpdate, Stream, Subject, Toxic, ToxicKind, ToxicUpdate, ToxiproxyError};
use support::{echo_server, read_all, read_exact, End, Server};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const SECOND: Duration = Duration::from_secs(1);

against_both_servers!(
    version_and_proxy_lifecycle,
    errors_are_typed_and_name_their_subject,
    populate_creates_then_keeps_or_replaces,
    toxic_crud,
    reset_removes_toxics_and_enables_proxies,
    latency_adds_at_least_the_delay,
    latency_on_upstream_delays_requests,
    bandwidth_caps_throughput,
    timeout_black_holes_then_closes,
    timeout_zero_holds_until_removed,
    reset_peer_resets,
    slicer_delivers_intact_bytes_in_pieces,
    limit_data_closes_after_n_bytes,
    slow_close_delays_the_close,
    disabled_proxy_refuses_and_closes_links,
    toxicity_zero_never_applies_and_one_always_does,
    toxics_added_to_open_links_take_effect,
    metrics_count_bytes_after_close,
);

/// Creates a proxy on a free port in front of `upstream`; returns its listen address.
async fn proxy(server: &Server, name: &str, upstream: std::net::SocketAddr) -> String {
    let p = server.client().create_proxy(&NewProxy::new(name, "127.0.0.1:0", upstream.to_string())).await.unwrap();
    assert!(!p.listen.ends_with(":0"), "server must report the port it bound, got {}", p.listen);
    p.listen
}

async fn connect(addr: &str) -> TcpStream {
    TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("connect {addr}: {e}"))
}

/// Round trip of `msg` through an echo upstream.
async fn echo_rtt(s: &mut TcpStream, msg: &[u8]) -> Duration {
    let t = Instant::now();
    s.write_all(msg).await.unwrap();
    let (got, _) = read_exact(s, msg.len(), 10 * SECOND).await;
    assert_eq!(got, msg);
    t.elapsed()
}

async fn version_and_proxy_lifecycle(server: &Server) {
    let c = server.client();
    assert!(!c.version().await.unwrap().is_empty());
    let echo = echo_server().await;
    let listen = proxy(server, "life", echo).await;

    let all = c.proxies().await.unwrap();
    assert_eq!(all["life"].listen, listen);
    assert_eq!(all["life"].upstream, echo.to_string());
    assert!(all["life"].enabled);
    assert_eq!(c.proxy("life").await.unwrap(), all["life"]);
    echo_rtt(&mut connect(&listen).await, b"hello").await;

    // Disable: the listener closes; enable: same address again.
    let p = c.set_enabled("life", false).await.unwrap();
    assert!(!p.enabled);
    assert_eq!(TcpStream::connect(&listen).await.unwrap_err().kind(), ErrorKind::ConnectionRefused);
    let p = c.set_enabled("life", true).await.unwrap();
    assert!(p.enabled);
    assert_eq!(p.listen, listen);
    echo_rtt(&mut connect(&listen).await, b"again").await;

    // Move the listener and the upstream.
    let new_listen = support::free_addr().to_string();
    let echo2 = echo_server().await;
    let update = ProxyUpdate { listen: Some(new_listen.clone()), upstream: Some(echo2.to_string()), enabled: None };
    let p = c.update_proxy("life", &update).await.unwrap();
    assert_eq!(
        (p.listen.as_str(), p.upstream.as_str(), p.enabled),
        (new_listen.as_str(), echo2.to_string().as_str(), true)
    );
    echo_rtt(&mut connect(&new_listen).await, b"moved").await;

    c.delete_proxy("life").await.unwrap();
    assert!(matches!(c.proxy("life").await, Err(ToxiproxyError::NotFound { .. })));
    assert!(matches!(c.delete_proxy("life").await, Err(ToxiproxyError::NotFound { .. })));
    assert_eq!(TcpStream::connect(&new_listen).await.unwrap_err().kind(), ErrorKind::ConnectionRefused);
}

async fn errors_are_typed_and_name_their_subject(server: &Server) {
    let c = server.client();
    let echo = echo_server().await;
    proxy(server, "errs", echo).await;

    let dup = c.create_proxy(&NewProxy::new("errs", "127.0.0.1:0", echo.to_string())).await.unwrap_err();
    assert!(matches!(&dup, ToxiproxyError::Conflict { subject: Subject::Proxy(p), .. } if p == "errs"), "{dup}");
    assert!(dup.to_string().contains("proxy `errs` already exists (409)"), "{dup}");

    let missing = c.proxy("nope").await.unwrap_err();
    assert!(matches!(&missing, ToxiproxyError::NotFound { message, .. } if message == "proxy not found"), "{missing}");

    let no_upstream = c.create_proxy(&NewProxy::new("x", "127.0.0.1:0", "")).await.unwrap_err();
    assert!(matches!(&no_upstream, ToxiproxyError::BadRequest { message, .. } if message.contains("upstream")));

    let lat = Toxic::new(ToxicKind::Latency { latency: 1, jitter: 0 }, Stream::Downstream).named("lat");
    c.create_toxic("errs", &lat).await.unwrap();
    let dup = c.create_toxic("errs", &lat).await.unwrap_err();
    assert!(matches!(&dup, ToxiproxyError::Conflict { message, .. } if message == "toxic already exists"), "{dup}");

    let unknown = Toxic::new(
        ToxicKind::Unknown { type_name: "packet_loss".into(), attributes: serde_json::json!({}) },
        Stream::Upstream,
    );
    let e = c.create_toxic("errs", &unknown).await.unwrap_err();
    assert!(matches!(&e, ToxiproxyError::BadRequest { message, .. } if message == "invalid toxic type"), "{e}");

    let e = c.toxic("errs", "ghost").await.unwrap_err();
    assert!(matches!(&e, ToxiproxyError::NotFound { message, .. } if message == "toxic not found"), "{e}");
    assert!(e.to_string().contains("toxic `ghost` on proxy `errs`"), "{e}");
    let e = c.create_toxic("ghost-proxy", &lat).await.unwrap_err();
    assert!(matches!(&e, ToxiproxyError::NotFound { message, .. } if message == "proxy not found"), "{e}");

    // Nothing listens here: a typed "unreachable" error that says what to do.
    let dead = chronik_chaos::toxiproxy::Client::new(&support::free_addr().to_string());
    let e = dead.version().await.unwrap_err();
    assert!(matches!(e, ToxiproxyError::Unreachable { .. }), "{e}");
    assert!(e.to_string().contains("cargo xtask toxiproxy start"), "{e}");
}

async fn populate_creates_then_keeps_or_replaces(server: &Server) {
    let c = server.client();
    let (e1, e2) = (echo_server().await, echo_server().await);
    let listen_a = support::free_addr().to_string();
    let listen_b = support::free_addr().to_string();
    let set = vec![NewProxy::new("pa", &listen_a, e1.to_string()), NewProxy::new("pb", &listen_b, e1.to_string())];
    let made = c.populate(&set).await.unwrap();
    assert_eq!(made.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["pa", "pb"]);
    c.create_toxic("pa", &Toxic::new(ToxicKind::Latency { latency: 1, jitter: 0 }, Stream::Upstream)).await.unwrap();

    // Same config: kept as is (toxics stay). Changed upstream: replaced (fresh, no toxics).
    let set = vec![NewProxy::new("pa", &listen_a, e1.to_string()), NewProxy::new("pb", &listen_b, e2.to_string())];
    c.populate(&set).await.unwrap();
    let all = c.proxies().await.unwrap();
    assert_eq!(all["pa"].toxics.len(), 1);
    assert_eq!(all["pb"].upstream, e2.to_string());
    echo_rtt(&mut connect(&listen_b).await, b"populated").await;

    let e = c.populate(&[NewProxy::new("", &listen_a, e1.to_string())]).await.unwrap_err();
    assert!(matches!(&e, ToxiproxyError::BadRequest { message, .. } if message.contains("name")), "{e}");
}

async fn toxic_crud(server: &Server) {
    let c = server.client();
    proxy(server, "crud", echo_server().await).await;
    let t =
        Toxic::new(ToxicKind::Latency { latency: 100, jitter: 10 }, Stream::Upstream).named("lag").with_toxicity(0.5);
    let made = c.create_toxic("crud", &t).await.unwrap();
    assert_eq!(made, t);
    assert_eq!(c.toxics("crud").await.unwrap(), vec![t.clone()]);
    assert_eq!(c.toxic("crud", "lag").await.unwrap(), t);

    // Partial attributes keep the rest; toxicity changes.
    let update = ToxicUpdate { toxicity: Some(1.0), attributes: Some(serde_json::json!({"latency": 250})) };
    let updated = c.update_toxic("crud", "lag", &update).await.unwrap();
    assert_eq!(updated.kind, ToxicKind::Latency { latency: 250, jitter: 10 });
    assert_eq!(updated.toxicity, 1.0);
    assert_eq!(c.proxy("crud").await.unwrap().toxics, vec![updated]);

    // The same through PATCH (Toxiproxy 2.6+).
    let patch = c.clone().with_patch_updates();
    let update = ToxicUpdate { toxicity: None, attributes: Some(serde_json::json!({"jitter": 0})) };
    let updated = patch.update_toxic("crud", "lag", &update).await.unwrap();
    assert_eq!(updated.kind, ToxicKind::Latency { latency: 250, jitter: 0 });
    assert_eq!(updated.toxicity, 1.0, "toxicity left out keeps its value");
    let p = patch.set_enabled("crud", false).await.unwrap();
    assert!(!p.enabled);
    patch.set_enabled("crud", true).await.unwrap();

    // Default name is <type>_<stream>.
    let unnamed = Toxic::new(ToxicKind::Bandwidth { rate: 10 }, Stream::Downstream);
    assert_eq!(c.create_toxic("crud", &unnamed).await.unwrap().name, "bandwidth_downstream");

    c.delete_toxic("crud", "lag").await.unwrap();
    c.delete_toxic("crud", "bandwidth_downstream").await.unwrap();
    assert!(c.toxics("crud").await.unwrap().is_empty());
    assert!(matches!(c.delete_toxic("crud", "lag").await, Err(ToxiproxyError::NotFound { .. })));
}

async fn reset_removes_toxics_and_enables_proxies(server: &Server) {
    let c = server.client();
    let l1 = proxy(server, "r1", echo_server().await).await;
    proxy(server, "r2", echo_server().await).await;
    c.create_toxic("r1", &Toxic::new(ToxicKind::Timeout { timeout: 0 }, Stream::Downstream)).await.unwrap();
    c.create_toxic("r2", &Toxic::new(ToxicKind::Latency { latency: 5, jitter: 0 }, Stream::Upstream)).await.unwrap();
    c.set_enabled("r2", false).await.unwrap();
    c.reset().await.unwrap();
    let all = c.proxies().await.unwrap();
    assert!(all.values().all(|p| p.enabled && p.toxics.is_empty()), "{all:?}");
    echo_rtt(&mut connect(&l1).await, b"after reset").await;
}

async fn latency_adds_at_least_the_delay(server: &Server) {
    let c = server.client();
    let listen = proxy(server, "lat", echo_server().await).await;
    c.create_toxic("lat", &Toxic::new(ToxicKind::Latency { latency: 200, jitter: 0 }, Stream::Downstream))
        .await
        .unwrap();
    let mut s = connect(&listen).await;
    for _ in 0..3 {
        let rtt = echo_rtt(&mut s, b"ping").await;
        assert!(rtt >= Duration::from_millis(195), "round trip {rtt:?} is shorter than the 200 ms latency");
    }
}

async fn latency_on_upstream_delays_requests(server: &Server) {
    let c = server.client();
    let listen = proxy(server, "latup", echo_server().await).await;
    let t = Toxic::new(ToxicKind::Latency { latency: 150, jitter: 50 }, Stream::Upstream);
    c.create_toxic("latup", &t).await.unwrap();
    let rtt = echo_rtt(&mut connect(&listen).await, b"ping").await;
    assert!(rtt >= Duration::from_millis(95), "round trip {rtt:?} is shorter than 150 ms - 50 ms jitter");
}

async fn bandwidth_caps_throughput(server: &Server) {
    let c = server.client();
    let len = 100 * 1000;
    let listen = proxy(server, "bw", support::source_server(len).await).await;
    // 50 KB/s: 100 KB take 2 s.
    c.create_toxic("bw", &Toxic::new(ToxicKind::Bandwidth { rate: 50 }, Stream::Downstream)).await.unwrap();
    let t = Instant::now();
    let (got, end, _) = read_all(&mut connect(&listen).await, 20 * SECOND).await;
    let took = t.elapsed();
    assert_eq!(end, End::Eof);
    assert_eq!(got, support::pattern(len), "bandwidth must not alter the bytes");
    assert!(took >= Duration::from_millis(1600), "100 KB at 50 KB/s took {took:?}, expected about 2 s");
}

async fn timeout_black_holes_then_closes(server: &Server) {
    let c = server.client();
    let listen = proxy(server, "to", echo_server().await).await;
    c.create_toxic("to", &Toxic::new(ToxicKind::Timeout { timeout: 500 }, Stream::Downstream)).await.unwrap();
    let mut s = connect(&listen).await;
    let t = Instant::now();
    s.write_all(b"anyone?").await.unwrap();
    let (got, end, _) = read_all(&mut s, 10 * SECOND).await;
    assert!(got.is_empty(), "a timeout toxic must not deliver data, got {got:?}");
    assert_ne!(end, End::StillOpen, "the connection must close after the timeout");
    assert!(t.elapsed() >= Duration::from_millis(450), "closed after {:?}, before the 500 ms timeout", t.elapsed());
}

async fn timeout_zero_holds_until_removed(server: &Server) {
    let c = server.client();
    let listen = proxy(server, "hole", echo_server().await).await;
    c.create_toxic("hole", &Toxic::new(ToxicKind::Timeout { timeout: 0 }, Stream::Downstream).named("hole"))
        .await
        .unwrap();
    let mut s = connect(&listen).await;
    s.write_all(b"into the void").await.unwrap();
    let (got, end, _) = read_all(&mut s, Duration::from_millis(800)).await;
    assert!(got.is_empty(), "black hole delivered {got:?}");
    assert_eq!(end, End::StillOpen, "timeout 0 must keep the connection open");
    // Removing it closes the links it held (Toxiproxy's cleanup), new connections work.
    c.delete_toxic("hole", "hole").await.unwrap();
    let (got, end, _) = read_all(&mut s, 10 * SECOND).await;
    assert!(got.is_empty(), "data swallowed by the black hole must not reappear: {got:?}");
    assert_ne!(end, End::StillOpen, "removing the timeout toxic must close the link it held");
    echo_rtt(&mut connect(&listen).await, b"fresh").await;
}

async fn reset_peer_resets(server: &Server) {
    let c = server.client();
    let listen = proxy(server, "rst", echo_server().await).await;
    c.create_toxic("rst", &Toxic::new(ToxicKind::ResetPeer { timeout: 0 }, Stream::Downstream)).await.unwrap();
    let mut s = connect(&listen).await;
    s.write_all(b"x").await.unwrap();
    let (got, end, _) = read_all(&mut s, 10 * SECOND).await;
    assert!(got.is_empty(), "{got:?}");
    assert_eq!(end, End::Error(ErrorKind::ConnectionReset), "reset_peer must end the connection with a TCP RST");
}

async fn slicer_delivers_intact_bytes_in_pieces(server: &Server) {
    let c = server.client();
    let listen = proxy(server, "slice", echo_server().await).await;
    let t = Toxic::new(ToxicKind::Slicer { average_size: 100, size_variation: 20, delay: 10_000 }, Stream::Downstream);
    c.create_toxic("slice", &t).await.unwrap();
    let mut s = connect(&listen).await;
    let msg = support::pattern(2000);
    let start = Instant::now();
    s.write_all(&msg).await.unwrap();
    let (got, reads) = read_exact(&mut s, msg.len(), 20 * SECOND).await;
    assert_eq!(got, msg, "slicer must deliver the bytes intact and in order");
    assert!(reads >= 2, "2000 bytes sliced into ~100-byte pieces arrived in {reads} read");
    // ~20 pieces, 10 ms apart.
    assert!(start.elapsed() >= Duration::from_millis(100), "pieces arrived in {:?}", start.elapsed());
}

async fn limit_data_closes_after_n_bytes(server: &Server) {
    let c = server.client();
    let listen = proxy(server, "limit", echo_server().await).await;
    c.create_toxic("limit", &Toxic::new(ToxicKind::LimitData { bytes: 100 }, Stream::Downstream)).await.unwrap();
    let mut s = connect(&listen).await;
    s.write_all(&support::pattern(1000)).await.unwrap();
    let (got, end, _) = read_all(&mut s, 10 * SECOND).await;
    assert_eq!(got, support::pattern(100), "exactly the first 100 bytes");
    assert_ne!(end, End::StillOpen);
}

async fn slow_close_delays_the_close(server: &Server) {
    let c = server.client();
    let listen = proxy(server, "slow", support::closer_server().await).await;
    c.create_toxic("slow", &Toxic::new(ToxicKind::SlowClose { delay: 600 }, Stream::Downstream)).await.unwrap();
    let t = Instant::now();
    let mut s = connect(&listen).await;
    let (_, end, _) = read_all(&mut s, 10 * SECOND).await;
    assert_ne!(end, End::StillOpen);
    assert!(
        t.elapsed() >= Duration::from_millis(550),
        "upstream closed at once; client saw the close after {:?}",
        t.elapsed()
    );
}

async fn disabled_proxy_refuses_and_closes_links(server: &Server) {
    let c = server.client();
    let listen = proxy(server, "down", echo_server().await).await;
    let mut open = connect(&listen).await;
    echo_rtt(&mut open, b"up").await;
    c.set_enabled("down", false).await.unwrap();
    let (got, end, _) = read_all(&mut open, 10 * SECOND).await;
    assert!(got.is_empty());
    assert_ne!(end, End::StillOpen, "disabling must close open links");
    assert_eq!(TcpStream::connect(&listen).await.unwrap_err().kind(), ErrorKind::ConnectionRefused);
    c.set_enabled("down", true).await.unwrap();
    echo_rtt(&mut connect(&listen).await, b"back").await;
}

async fn toxicity_zero_never_applies_and_one_always_does(server: &Server) {
    let c = server.client();
    let never = proxy(server, "never", echo_server().await).await;
    let always = proxy(server, "always", echo_server().await).await;
    let hole = Toxic::new(ToxicKind::Timeout { timeout: 0 }, Stream::Downstream);
    c.create_toxic("never", &hole.clone().with_toxicity(0.0)).await.unwrap();
    c.create_toxic("always", &hole.with_toxicity(1.0)).await.unwrap();
    for i in 0..10 {
        echo_rtt(&mut connect(&never).await, format!("never {i}").as_bytes()).await;
        let mut s = connect(&always).await;
        s.write_all(b"always").await.unwrap();
        let (got, end, _) = read_all(&mut s, Duration::from_millis(150)).await;
        assert!(
            got.is_empty() && end == End::StillOpen,
            "connection {i}: toxicity 1 must black-hole, got {got:?} {end:?}"
        );
    }
}

async fn toxics_added_to_open_links_take_effect(server: &Server) {
    let c = server.client();
    let listen = proxy(server, "live", echo_server().await).await;
    let mut s = connect(&listen).await;
    echo_rtt(&mut s, b"before").await;
    c.create_toxic("live", &Toxic::new(ToxicKind::Latency { latency: 300, jitter: 0 }, Stream::Upstream))
        .await
        .unwrap();
    let rtt = echo_rtt(&mut s, b"during").await;
    assert!(rtt >= Duration::from_millis(295), "latency added to an open link was not applied: {rtt:?}");
    c.delete_toxic("live", "latency_upstream").await.unwrap();
    echo_rtt(&mut s, b"after").await;
}

async fn metrics_count_bytes_after_close(server: &Server) {
    let c = server.client();
    let listen = proxy(server, "counted", echo_server().await).await;
    let mut s = connect(&listen).await;
    echo_rtt(&mut s, &support::pattern(5000)).await;
    drop(s);
    // Both servers count closed connections (the real one only those).
    let deadline = Instant::now() + 10 * SECOND;
    loop {
        let bytes = c.proxy_bytes().await.unwrap();
        let b = bytes.get("counted").cloned().unwrap_or_default();
        if b.upstream_sent >= 5000 && b.downstream_sent >= 5000 {
            assert!(b.upstream_received >= 5000 && b.downstream_received >= 5000, "{b:?}");
            if !server.is_real() {
                assert_eq!(b.connections_total, Some(1), "{b:?}");
            }
            break;
        }
        assert!(Instant::now() < deadline, "byte counters never reached 5000 each way: {b:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Embedded only: counters move while the connection is still open (the real server's do not).
#[tokio::test]
async fn embedded_counters_are_live() {
    let server = support::embedded().await;
    let c = server.client();
    let listen = proxy(&server, "livebytes", echo_server().await).await;
    let mut s = connect(&listen).await;
    echo_rtt(&mut s, &support::pattern(3000)).await;
    let b = c.proxy_bytes().await.unwrap()["livebytes"].clone();
    assert!(b.upstream_sent >= 3000 && b.downstream_sent >= 3000, "{b:?}");
    assert_eq!(b.connections_open, Some(1));
    drop(s);
}
