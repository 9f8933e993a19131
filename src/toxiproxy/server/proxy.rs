//! One proxy of the embedded server: its listener, its open connections, its toxics and counters.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::link::{run_connection, DirectionCounters, LinkSetup, ToxicList, ToxicSpec};
use super::ApiError;
use crate::toxiproxy::model::{Proxy, Toxic};

static REVISION: AtomicU64 = AtomicU64::new(1);

pub(crate) fn next_revision() -> u64 {
    REVISION.fetch_add(1, Ordering::Relaxed)
}

/// Counters of one proxy, shared with its links.
#[derive(Default)]
pub(crate) struct ProxyCounters {
    pub upstream: Arc<DirectionCounters>,
    pub downstream: Arc<DirectionCounters>,
    pub connections_total: AtomicU64,
    pub connections_open: Arc<AtomicU64>,
}

pub(crate) struct ProxyEntry {
    pub name: String,
    inner: Mutex<Inner>,
    toxics: watch::Sender<ToxicList>,
    pub counters: Arc<ProxyCounters>,
    /// Cancelled when the server stops; every listener generation is a child of it.
    root: CancellationToken,
}

struct Inner {
    listen: String,
    upstream: String,
    /// The running listener (its token and accept task); `None` when disabled.
    generation: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

impl ProxyEntry {
    pub fn new(name: String, listen: String, upstream: String, root: CancellationToken) -> ProxyEntry {
        let listen = if listen.is_empty() { "127.0.0.1:0".to_string() } else { listen };
        ProxyEntry {
            name,
            inner: Mutex::new(Inner { listen, upstream, generation: None }),
            toxics: watch::Sender::new(Arc::new(Vec::new())),
            counters: Arc::new(ProxyCounters::default()),
            root,
        }
    }

    pub fn enabled(&self) -> bool {
        self.inner.lock().unwrap().generation.is_some()
    }

    pub fn listen(&self) -> String {
        self.inner.lock().unwrap().listen.clone()
    }

    pub fn upstream(&self) -> String {
        self.inner.lock().unwrap().upstream.clone()
    }

    /// Binds the listener and starts accepting; a no-op when already enabled.
    pub fn start(&self) -> Result<(), ApiError> {
        let mut inner = self.inner.lock().unwrap();
        if inner.generation.is_some() {
            return Ok(());
        }
        let std_listener = std::net::TcpListener::bind(inner.listen.as_str())
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| ApiError::internal(format!("listen tcp {}: {e}", inner.listen)))?;
        let listener = TcpListener::from_std(std_listener)
            .map_err(|e| ApiError::internal(format!("listen tcp {}: {e}", inner.listen)))?;
        let local = listener.local_addr().map_err(|e| ApiError::internal(e.to_string()))?;
        inner.listen = local.to_string();
        let token = self.root.child_token();
        let task = tokio::spawn(accept_loop(
            listener,
            inner.upstream.clone(),
            token.clone(),
            self.toxics.subscribe(),
            self.counters.clone(),
        ));
        inner.generation = Some((token, task));
        Ok(())
    }

    /// Closes the listener and every open link, and waits until the port is released; a
    /// no-op when already disabled.
    pub async fn stop(&self) {
        let generation = self.inner.lock().unwrap().generation.take();
        if let Some((token, task)) = generation {
            token.cancel();
            let _ = task.await;
        }
    }

    /// Like [`ProxyEntry::stop`] without waiting for the listener to close.
    pub fn stop_now(&self) {
        if let Some((token, _)) = self.inner.lock().unwrap().generation.take() {
            token.cancel();
        }
    }

    /// Whether `listen`/`upstream` differ from ours (listen compared after resolution).
    pub fn differs(&self, listen: &str, upstream: &str) -> bool {
        let inner = self.inner.lock().unwrap();
        let resolved = resolve(listen).map(|a| a.to_string()).unwrap_or_else(|| listen.to_string());
        resolved != inner.listen || upstream != inner.upstream
    }

    /// Applies an update the way the real server does: stop on an address change, then follow `enabled`.
    pub async fn update(&self, listen: String, upstream: String, enabled: bool) -> Result<(), ApiError> {
        if self.differs(&listen, &upstream) {
            self.stop().await;
            let mut inner = self.inner.lock().unwrap();
            inner.listen = listen;
            inner.upstream = upstream;
        }
        if enabled {
            self.start()
        } else {
            self.stop().await;
            Ok(())
        }
    }

    pub fn toxics(&self) -> Vec<Toxic> {
        self.toxics.borrow().iter().map(spec_to_toxic).collect()
    }

    pub fn toxic(&self, name: &str) -> Option<Toxic> {
        self.toxics.borrow().iter().find(|t| t.name == name).map(spec_to_toxic)
    }

    pub fn add_toxic(&self, toxic: Toxic) -> Result<Toxic, ApiError> {
        let mut result = Ok(());
        self.toxics.send_if_modified(|list| {
            if list.iter().any(|t| t.name == toxic.name) {
                result = Err(ApiError::new(409, "toxic already exists"));
                return false;
            }
            let mut next = list.as_ref().clone();
            next.push(ToxicSpec {
                name: toxic.name.clone(),
                stream: toxic.stream,
                toxicity: toxic.toxicity,
                kind: toxic.kind.clone(),
                revision: next_revision(),
            });
            *list = Arc::new(next);
            true
        });
        result.map(|()| toxic)
    }

    pub fn update_toxic(
        &self,
        name: &str,
        f: impl FnOnce(&mut Toxic) -> Result<(), ApiError>,
    ) -> Result<Toxic, ApiError> {
        let mut result = Err(ApiError::new(404, "toxic not found"));
        self.toxics.send_if_modified(|list| {
            let Some(i) = list.iter().position(|t| t.name == name) else { return false };
            let mut toxic = spec_to_toxic(&list[i]);
            if let Err(e) = f(&mut toxic) {
                result = Err(e);
                return false;
            }
            let mut next = list.as_ref().clone();
            next[i].toxicity = toxic.toxicity;
            next[i].kind = toxic.kind.clone();
            next[i].revision = next_revision();
            *list = Arc::new(next);
            result = Ok(toxic);
            true
        });
        result
    }

    pub fn remove_toxic(&self, name: &str) -> Result<(), ApiError> {
        let mut found = false;
        self.toxics.send_if_modified(|list| {
            let Some(i) = list.iter().position(|t| t.name == name) else { return false };
            let mut next = list.as_ref().clone();
            next.remove(i);
            *list = Arc::new(next);
            found = true;
            true
        });
        if found {
            Ok(())
        } else {
            Err(ApiError::new(404, "toxic not found"))
        }
    }

    pub fn remove_all_toxics(&self) {
        self.toxics.send_if_modified(|list| {
            if list.is_empty() {
                return false;
            }
            *list = Arc::new(Vec::new());
            true
        });
    }

    pub fn to_model(&self) -> Proxy {
        let inner = self.inner.lock().unwrap();
        Proxy {
            name: self.name.clone(),
            listen: inner.listen.clone(),
            upstream: inner.upstream.clone(),
            enabled: inner.generation.is_some(),
            toxics: self.toxics(),
        }
    }
}

impl Drop for ProxyEntry {
    fn drop(&mut self) {
        self.stop_now();
    }
}

fn spec_to_toxic(s: &ToxicSpec) -> Toxic {
    Toxic { name: s.name.clone(), stream: s.stream, toxicity: s.toxicity, kind: s.kind.clone() }
}

fn resolve(addr: &str) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs().ok()?.next()
}

async fn accept_loop(
    listener: TcpListener,
    upstream: String,
    token: CancellationToken,
    toxics: watch::Receiver<ToxicList>,
    counters: Arc<ProxyCounters>,
) {
    loop {
        let client = tokio::select! {
            _ = token.cancelled() => return,
            r = listener.accept() => match r {
                Ok((client, _)) => client,
                Err(_) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        counters.connections_total.fetch_add(1, Ordering::Relaxed);
        let setup = LinkSetup {
            toxics: toxics.clone(),
            kill: token.child_token(),
            upstream_counters: counters.upstream.clone(),
            downstream_counters: counters.downstream.clone(),
        };
        let open = counters.connections_open.clone();
        let upstream = upstream.clone();
        tokio::spawn(async move {
            open.fetch_add(1, Ordering::Relaxed);
            let dialled = tokio::select! {
                _ = setup.kill.cancelled() => None,
                r = TcpStream::connect(upstream.as_str()) => r.ok(),
            };
            // As the real server: a failed upstream dial closes the client at once.
            if let Some(up) = dialled {
                run_connection(client, up, setup).await;
            }
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}
