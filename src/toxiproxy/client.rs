//! Typed async client for the whole Toxiproxy 2.x HTTP API (reqwest + serde).

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::{Subject, ToxiproxyError};
use super::metrics::ProxyBytes;
use super::model::{NewProxy, Proxy, ProxyUpdate, Toxic, ToxicUpdate};

type Result<T> = std::result::Result<T, ToxiproxyError>;

/// A client for one Toxiproxy server (real or embedded).
///
/// Updates use `POST`, which every 2.x server accepts (2.6+ also takes `PATCH` and logs
/// `POST` as deprecated); [`Client::with_patch_updates`] switches to `PATCH`.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    update_method: Method,
}

impl Client {
    /// `api` is `host:port` or a `http://host:port` URL.
    pub fn new(api: &str) -> Client {
        let base = if api.starts_with("http://") || api.starts_with("https://") {
            api.trim_end_matches('/').to_string()
        } else {
            format!("http://{api}")
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .no_proxy()
            .build()
            .expect("a reqwest client with no TLS and no system proxy always builds");
        Client { http, base, update_method: Method::POST }
    }

    pub fn with_patch_updates(mut self) -> Client {
        self.update_method = Method::PATCH;
        self
    }

    /// The API base URL, e.g. `http://127.0.0.1:8474`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `GET /version`. Accepts both the JSON form (2.7+) and the plain-text form of older servers.
    pub async fn version(&self) -> Result<String> {
        let body = self.text(Method::GET, "/version", Subject::Server).await?;
        #[derive(serde::Deserialize)]
        struct V {
            version: String,
        }
        Ok(match serde_json::from_str::<V>(&body) {
            Ok(v) => v.version,
            Err(_) => body.trim().to_string(),
        })
    }

    /// `GET /proxies`, ordered by name.
    pub async fn proxies(&self) -> Result<BTreeMap<String, Proxy>> {
        self.json(Method::GET, "/proxies", None::<&()>, Subject::Proxies).await
    }

    /// `POST /proxies`.
    pub async fn create_proxy(&self, proxy: &NewProxy) -> Result<Proxy> {
        self.json(Method::POST, "/proxies", Some(proxy), Subject::Proxy(proxy.name.clone())).await
    }

    /// `GET /proxies/{name}`.
    pub async fn proxy(&self, name: &str) -> Result<Proxy> {
        self.json(Method::GET, &proxy_path(name), None::<&()>, Subject::Proxy(name.into())).await
    }

    /// Update listen/upstream/enabled of a proxy; fields left `None` keep their value.
    pub async fn update_proxy(&self, name: &str, update: &ProxyUpdate) -> Result<Proxy> {
        self.json(self.update_method.clone(), &proxy_path(name), Some(update), Subject::Proxy(name.into())).await
    }

    /// Enable (listen, accept) or disable (close the listener and every open link) a proxy.
    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<Proxy> {
        self.update_proxy(name, &ProxyUpdate { enabled: Some(enabled), ..ProxyUpdate::default() }).await
    }

    /// `DELETE /proxies/{name}`.
    pub async fn delete_proxy(&self, name: &str) -> Result<()> {
        self.empty(Method::DELETE, &proxy_path(name), None::<&()>, Subject::Proxy(name.into())).await
    }

    /// `POST /populate`: create or replace the given proxies in one call.
    pub async fn populate(&self, proxies: &[NewProxy]) -> Result<Vec<Proxy>> {
        #[derive(serde::Deserialize)]
        struct Populated {
            #[serde(default)]
            proxies: Option<Vec<Proxy>>,
        }
        let p: Populated = self.json(Method::POST, "/populate", Some(&proxies), Subject::Proxies).await?;
        Ok(p.proxies.unwrap_or_default())
    }

    /// `POST /reset`: enable every proxy and remove every toxic.
    pub async fn reset(&self) -> Result<()> {
        self.empty(Method::POST, "/reset", None::<&()>, Subject::Server).await
    }

    /// `GET /proxies/{proxy}/toxics`.
    pub async fn toxics(&self, proxy: &str) -> Result<Vec<Toxic>> {
        let subject = Subject::Toxics { proxy: proxy.into() };
        self.json(Method::GET, &format!("{}/toxics", proxy_path(proxy)), None::<&()>, subject).await
    }

    /// `POST /proxies/{proxy}/toxics`.
    pub async fn create_toxic(&self, proxy: &str, toxic: &Toxic) -> Result<Toxic> {
        let subject = Subject::Toxic { proxy: proxy.into(), toxic: toxic.name.clone() };
        self.json(Method::POST, &format!("{}/toxics", proxy_path(proxy)), Some(toxic), subject).await
    }

    /// `GET /proxies/{proxy}/toxics/{name}`.
    pub async fn toxic(&self, proxy: &str, name: &str) -> Result<Toxic> {
        let subject = Subject::Toxic { proxy: proxy.into(), toxic: name.into() };
        self.json(Method::GET, &toxic_path(proxy, name), None::<&()>, subject).await
    }

    /// Update a toxic's toxicity and/or attributes.
    pub async fn update_toxic(&self, proxy: &str, name: &str, update: &ToxicUpdate) -> Result<Toxic> {
        let subject = Subject::Toxic { proxy: proxy.into(), toxic: name.into() };
        self.json(self.update_method.clone(), &toxic_path(proxy, name), Some(update), subject).await
    }

    /// `DELETE /proxies/{proxy}/toxics/{name}`.
    pub async fn delete_toxic(&self, proxy: &str, name: &str) -> Result<()> {
        let subject = Subject::Toxic { proxy: proxy.into(), toxic: name.into() };
        self.empty(Method::DELETE, &toxic_path(proxy, name), None::<&()>, subject).await
    }

    /// `GET /metrics` as Prometheus text. The real server serves it only when started with
    /// `-proxy-metrics` or `-runtime-metrics`, and its byte counters move only when a connection closes.
    pub async fn metrics_text(&self) -> Result<String> {
        self.text(Method::GET, "/metrics", Subject::Server).await
    }

    /// Per-proxy byte counters parsed from `/metrics`.
    pub async fn proxy_bytes(&self) -> Result<BTreeMap<String, ProxyBytes>> {
        Ok(super::metrics::parse_proxy_bytes(&self.metrics_text().await?))
    }

    async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        subject: &Subject,
    ) -> Result<(StatusCode, String)> {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(body) = body {
            req = req.json(body);
        }
        let unreachable = |source| ToxiproxyError::Unreachable { api: self.base.clone(), source };
        let resp = req.send().await.map_err(unreachable)?;
        let status = resp.status();
        let text = resp.text().await.map_err(unreachable)?;
        if !status.is_success() {
            return Err(ToxiproxyError::from_status(subject.clone(), status.as_u16(), &text));
        }
        Ok((status, text))
    }

    async fn json<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        subject: Subject,
    ) -> Result<T> {
        let (_, text) = self.send(method, path, body, &subject).await?;
        serde_json::from_str(&text).map_err(|e| ToxiproxyError::Protocol {
            subject,
            detail: format!("{e}; body was: {}", text.chars().take(300).collect::<String>()),
        })
    }

    async fn empty<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        subject: Subject,
    ) -> Result<()> {
        self.send(method, path, body, &subject).await.map(|_| ())
    }

    async fn text(&self, method: Method, path: &str, subject: Subject) -> Result<String> {
        self.send(method, path, None::<&()>, &subject).await.map(|(_, t)| t)
    }
}

fn proxy_path(name: &str) -> String {
    format!("/proxies/{}", crate::percent::encode(name))
}

fn toxic_path(proxy: &str, toxic: &str) -> String {
    format!("{}/toxics/{}", proxy_path(proxy), crate::percent::encode(toxic))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded() {
        assert_eq!(toxic_path("kafka-n1", "lat ency/x"), "/proxies/kafka-n1/toxics/lat%20ency%2Fx");
        assert_eq!(Client::new("127.0.0.1:8474").base_url(), "http://127.0.0.1:8474");
        assert_eq!(Client::new("http://h:1/").base_url(), "http://h:1");
    }
}
