//! The embedded Toxiproxy-compatible server: the 2.x HTTP API and JSON shapes, every 2.x toxic,
//! and live per-proxy byte and connection counters at `/metrics`.
//!
//! Built on tokio and hyper (already in the tree through reqwest) rather than the `noxious`
//! crate, which is unmaintained, lacks `reset_peer` and pins old dependencies.

mod api;
mod link;
mod proxy;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::proxy::ProxyEntry;
use super::Client;

/// The version string `/version` reports, so that launchers and humans can tell the embedded server apart.
pub const EMBEDDED_VERSION: &str = concat!("chronik-chaos-embedded-", env!("CARGO_PKG_VERSION"));

/// An API error with the real server's message and status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, message)
    }
}

/// State shared by the API handlers.
pub(crate) struct State {
    proxies: Mutex<BTreeMap<String, Arc<ProxyEntry>>>,
    /// Parent of every proxy's listener token.
    root: CancellationToken,
}

/// A running embedded server. Dropping it (or [`EmbeddedServer::shutdown`]) closes the API
/// listener, every proxy listener and every proxied connection.
pub struct EmbeddedServer {
    addr: SocketAddr,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl EmbeddedServer {
    /// Binds the API on `addr` (port 0 picks a free port) and serves in the background.
    pub async fn start(addr: SocketAddr) -> std::io::Result<EmbeddedServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve_listener(listener, stop.clone()));
        Ok(EmbeddedServer { addr, stop, task: Some(task) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A client for this server.
    pub fn client(&self) -> Client {
        Client::new(&self.addr.to_string())
    }

    /// Stops serving and waits until every proxy is closed.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for EmbeddedServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Serves the API on `addr` until `until` completes (used by `chronik-chaos toxiproxy serve`).
pub async fn serve(addr: SocketAddr, until: impl Future<Output = ()>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let stop = CancellationToken::new();
    let task = tokio::spawn(serve_listener(listener, stop.clone()));
    until.await;
    stop.cancel();
    let _ = task.await;
    Ok(local)
}

async fn serve_listener(listener: TcpListener, stop: CancellationToken) {
    let state = Arc::new(State { proxies: Mutex::new(BTreeMap::new()), root: stop.child_token() });
    loop {
        let (stream, _) = tokio::select! {
            _ = stop.cancelled() => break,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let state = state.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| api::handle(state.clone(), req));
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.cancelled() => conn.as_mut().graceful_shutdown(),
            }
        });
    }
    // Close every proxy and link.
    state.root.cancel();
    let proxies = std::mem::take(&mut *state.proxies.lock().unwrap());
    for p in proxies.values() {
        p.stop().await;
    }
}
