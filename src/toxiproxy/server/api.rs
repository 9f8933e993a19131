//! HTTP routing and handlers of the embedded server, mirroring Toxiproxy 2.x `api.go`:
//! same routes, methods, status codes, JSON bodies and error messages.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::proxy::ProxyEntry;
use super::{ApiError, State, EMBEDDED_VERSION};
use crate::toxiproxy::metrics::{escape_label, CONNECTIONS_OPEN, CONNECTIONS_TOTAL, RECEIVED_BYTES, SENT_BYTES};
use crate::toxiproxy::model::{Stream, Toxic, ToxicKind};

type Resp = Response<Full<Bytes>>;

const MAX_BODY: usize = 1 << 20;

pub(crate) async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Resp, std::convert::Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Ok(error(&ApiError::new(400, format!("bad request body: {e}")))),
    };
    let segments: Vec<String> = path.trim_matches('/').split('/').map(percent_decode).collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let result = route(&state, &method, &segs, &body).await;
    Ok(match result {
        Ok(resp) => resp,
        Err(e) => error(&e),
    })
}

async fn route(state: &State, method: &Method, segs: &[&str], body: &[u8]) -> Result<Resp, ApiError> {
    use Method as M;
    match (method, segs) {
        (&M::GET, ["version"]) => Ok(json_resp(
            StatusCode::OK,
            &json!({ "version": EMBEDDED_VERSION, "compatible_with": "toxiproxy 2.12 HTTP API" }),
        )),
        (&M::GET, ["metrics"]) => Ok(metrics(state)),
        (&M::POST, ["reset"]) => reset(state),
        (&M::GET, ["proxies"]) => {
            let all = state.proxies.lock().unwrap().clone();
            let map: serde_json::Map<String, Value> =
                all.iter().map(|(k, p)| (k.clone(), serde_json::to_value(p.to_model()).unwrap())).collect();
            Ok(json_resp(StatusCode::OK, &Value::Object(map)))
        }
        (&M::POST, ["proxies"]) => create_proxy(state, body),
        (&M::POST, ["populate"]) => populate(state, body).await,
        (&M::GET, ["proxies", p]) => Ok(json_resp(StatusCode::OK, &get(state, p)?.to_model())),
        (&M::POST | &M::PATCH, ["proxies", p]) => update_proxy(state, p, body).await,
        (&M::DELETE, ["proxies", p]) => {
            let removed = state.proxies.lock().unwrap().remove(*p);
            match removed {
                Some(proxy) => {
                    proxy.stop().await;
                    Ok(no_content())
                }
                None => Err(proxy_not_found()),
            }
        }
        (&M::GET, ["proxies", p, "toxics"]) => Ok(json_resp(StatusCode::OK, &get(state, p)?.toxics())),
        (&M::POST, ["proxies", p, "toxics"]) => {
            let proxy = get(state, p)?;
            let toxic = parse_new_toxic(body)?;
            Ok(json_resp(StatusCode::OK, &proxy.add_toxic(toxic)?))
        }
        (&M::GET, ["proxies", p, "toxics", t]) => {
            let toxic = get(state, p)?.toxic(t).ok_or_else(|| ApiError::new(404, "toxic not found"))?;
            Ok(json_resp(StatusCode::OK, &toxic))
        }
        (&M::POST | &M::PATCH, ["proxies", p, "toxics", t]) => {
            let proxy = get(state, p)?;
            let patch: Value = parse_json(body)?;
            let toxic = proxy.update_toxic(t, |toxic| apply_toxic_patch(toxic, &patch))?;
            Ok(json_resp(StatusCode::OK, &toxic))
        }
        (&M::DELETE, ["proxies", p, "toxics", t]) => {
            get(state, p)?.remove_toxic(t)?;
            Ok(no_content())
        }
        (_, ["version" | "metrics" | "reset" | "proxies" | "populate", ..]) if known_path(segs) => {
            Err(ApiError::new(405, "method not allowed"))
        }
        _ => Err(ApiError::new(404, "404 page not found")),
    }
}

fn known_path(segs: &[&str]) -> bool {
    matches!(segs, ["version"] | ["metrics"] | ["reset"] | ["proxies"] | ["populate"] | ["proxies", _])
        || matches!(segs, ["proxies", _, "toxics"] | ["proxies", _, "toxics", _])
}

fn get(state: &State, name: &str) -> Result<Arc<ProxyEntry>, ApiError> {
    state.proxies.lock().unwrap().get(name).cloned().ok_or_else(proxy_not_found)
}

fn proxy_not_found() -> ApiError {
    ApiError::new(404, "proxy not found")
}

fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::new(400, format!("bad request body: {e}")))
}

#[derive(Deserialize)]
struct ProxyInput {
    #[serde(default)]
    name: String,
    #[serde(default)]
    listen: String,
    #[serde(default)]
    upstream: String,
    enabled: Option<bool>,
}

fn create_proxy(state: &State, body: &[u8]) -> Result<Resp, ApiError> {
    let input: ProxyInput = parse_json(body)?;
    if input.name.is_empty() {
        return Err(ApiError::new(400, "missing required field: name"));
    }
    if input.upstream.is_empty() {
        return Err(ApiError::new(400, "missing required field: upstream"));
    }
    let mut proxies = state.proxies.lock().unwrap();
    if proxies.contains_key(&input.name) {
        return Err(ApiError::new(409, "proxy already exists"));
    }
    let proxy = Arc::new(ProxyEntry::new(input.name.clone(), input.listen, input.upstream, state.root.clone()));
    if input.enabled.unwrap_or(true) {
        proxy.start()?;
    }
    proxies.insert(input.name, proxy.clone());
    Ok(json_resp(StatusCode::CREATED, &proxy.to_model()))
}

async fn populate(state: &State, body: &[u8]) -> Result<Resp, ApiError> {
    let inputs: Vec<ProxyInput> = parse_json(body)?;
    for (i, p) in inputs.iter().enumerate() {
        if p.name.is_empty() {
            return Err(ApiError::new(400, format!("missing required field: name at proxy {}", i + 1)));
        }
        if p.upstream.is_empty() {
            return Err(ApiError::new(400, format!("missing required field: upstream at proxy {}", i + 1)));
        }
    }
    let mut done = Vec::new();
    let mut failure = None;
    for input in inputs {
        let existing = state.proxies.lock().unwrap().get(&input.name).cloned();
        if let Some(existing) = existing {
            if !existing.differs(&input.listen, &input.upstream) {
                done.push(existing.to_model());
                continue;
            }
            existing.stop().await;
        }
        let proxy = Arc::new(ProxyEntry::new(input.name.clone(), input.listen, input.upstream, state.root.clone()));
        if input.enabled.unwrap_or(true) {
            if let Err(e) = proxy.start() {
                failure = Some(e);
                break;
            }
        }
        state.proxies.lock().unwrap().insert(input.name, proxy.clone());
        done.push(proxy.to_model());
    }
    Ok(match failure {
        None => json_resp(StatusCode::CREATED, &json!({ "proxies": done })),
        Some(e) => json_resp(
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &json!({ "error": e.message, "status": e.status, "proxies": done }),
        ),
    })
}

async fn update_proxy(state: &State, name: &str, body: &[u8]) -> Result<Resp, ApiError> {
    let proxy = get(state, name)?;
    let input: ProxyInput = parse_json(body)?;
    let listen = if input.listen.is_empty() { proxy.listen() } else { input.listen };
    let upstream = if input.upstream.is_empty() { proxy.upstream() } else { input.upstream };
    let enabled = input.enabled.unwrap_or_else(|| proxy.enabled());
    proxy.update(listen, upstream, enabled).await?;
    Ok(json_resp(StatusCode::OK, &proxy.to_model()))
}

fn reset(state: &State) -> Result<Resp, ApiError> {
    let all = state.proxies.lock().unwrap().clone();
    for proxy in all.values() {
        proxy.start()?;
        proxy.remove_all_toxics();
    }
    Ok(no_content())
}

/// Parses a new toxic with the real server's defaults and checks, in its order.
fn parse_new_toxic(body: &[u8]) -> Result<Toxic, ApiError> {
    let v: Value = parse_json(body)?;
    let obj = v.as_object().ok_or_else(|| ApiError::new(400, "bad request body: expected a JSON object"))?;
    let text = |key: &str| -> Result<String, ApiError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(ApiError::new(400, format!("bad request body: `{key}` must be a string, got {other}"))),
        }
    };
    let stream_text = text("stream")?;
    let stream = if stream_text.is_empty() {
        Stream::Downstream
    } else {
        Stream::parse(&stream_text)
            .ok_or_else(|| ApiError::new(400, "stream was invalid, can be either upstream or downstream"))?
    };
    let type_name = text("type")?;
    let toxicity = match obj.get("toxicity") {
        None | Some(Value::Null) => 1.0,
        Some(v) => v
            .as_f64()
            .ok_or_else(|| ApiError::new(400, format!("bad request body: `toxicity` must be a number, got {v}")))?
            as f32,
    };
    let attributes = obj.get("attributes").cloned().unwrap_or(Value::Null);
    let kind = match ToxicKind::from_parts(&type_name, &Value::Null) {
        Ok(Some(_)) => ToxicKind::from_parts(&type_name, &attributes)
            .map_err(|e| ApiError::new(400, format!("bad request body: {e}")))?
            .expect("type checked above"),
        _ => return Err(ApiError::new(400, "invalid toxic type")),
    };
    let mut name = text("name")?;
    if name.is_empty() {
        name = format!("{type_name}_{stream}");
    }
    Ok(Toxic { name, stream, toxicity, kind })
}

fn apply_toxic_patch(toxic: &mut Toxic, patch: &Value) -> Result<(), ApiError> {
    let obj = patch.as_object().ok_or_else(|| ApiError::new(400, "bad request body: expected a JSON object"))?;
    if let Some(attrs) = obj.get("attributes") {
        toxic.kind = toxic.kind.merged(attrs).map_err(|e| ApiError::new(400, format!("bad request body: {e}")))?;
    }
    if let Some(t) = obj.get("toxicity") {
        toxic.toxicity = t
            .as_f64()
            .ok_or_else(|| ApiError::new(400, format!("bad request body: `toxicity` must be a number, got {t}")))?
            as f32;
    }
    Ok(())
}

fn metrics(state: &State) -> Resp {
    use std::fmt::Write;
    use std::sync::atomic::Ordering::Relaxed;
    let all = state.proxies.lock().unwrap().clone();
    let mut out = String::new();
    let mut section = |name: &str, kind: &str, help: &str, rows: &mut dyn Iterator<Item = (String, u64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in rows {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    };
    let labels = |p: &ProxyEntry, dir: &str| {
        format!(
            "direction=\"{dir}\",listener=\"{}\",proxy=\"{}\",upstream=\"{}\"",
            escape_label(&p.listen()),
            escape_label(&p.name),
            escape_label(&p.upstream())
        )
    };
    let bytes = |sent: bool| {
        let labels = &labels;
        all.values()
            .flat_map(move |p| {
                [("upstream", &p.counters.upstream), ("downstream", &p.counters.downstream)].map(|(dir, c)| {
                    let v = if sent { c.sent.load(Relaxed) } else { c.received.load(Relaxed) };
                    (labels(p, dir), v)
                })
            })
            .collect::<Vec<_>>()
    };
    section(
        RECEIVED_BYTES,
        "counter",
        "Bytes received by the proxy from the source side of a link (live).",
        &mut bytes(false).into_iter(),
    );
    section(
        SENT_BYTES,
        "counter",
        "Bytes written by the proxy to the destination side of a link (live).",
        &mut bytes(true).into_iter(),
    );
    let per_proxy = |f: &dyn Fn(&ProxyEntry) -> u64| {
        all.values().map(|p| (format!("proxy=\"{}\"", escape_label(&p.name)), f(p))).collect::<Vec<_>>()
    };
    section(
        CONNECTIONS_TOTAL,
        "counter",
        "Connections accepted by the proxy.",
        &mut per_proxy(&|p| p.counters.connections_total.load(Relaxed)).into_iter(),
    );
    section(
        CONNECTIONS_OPEN,
        "gauge",
        "Connections open through the proxy.",
        &mut per_proxy(&|p| p.counters.connections_open.load(Relaxed)).into_iter(),
    );
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
        .body(Full::new(Bytes::from(out)))
        .unwrap()
}

fn json_resp<T: serde::Serialize + ?Sized>(status: StatusCode, value: &T) -> Resp {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(value).unwrap())))
        .unwrap()
}

fn no_content() -> Resp {
    Response::builder().status(StatusCode::NO_CONTENT).body(Full::new(Bytes::new())).unwrap()
}

fn error(e: &ApiError) -> Resp {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_resp(status, &json!({ "error": e.message, "status": e.status }))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_toxic_defaults_and_errors_match_the_real_server() {
        let t = parse_new_toxic(br#"{"type":"latency","attributes":{"latency":5}}"#).unwrap();
        assert_eq!((t.name.as_str(), t.stream, t.toxicity), ("latency_downstream", Stream::Downstream, 1.0));
        let e = parse_new_toxic(br#"{"type":"latency","stream":"sideways"}"#).unwrap_err();
        assert_eq!(e, ApiError::new(400, "stream was invalid, can be either upstream or downstream"));
        let e = parse_new_toxic(br#"{"type":"packet_loss"}"#).unwrap_err();
        assert_eq!(e, ApiError::new(400, "invalid toxic type"));
        let e = parse_new_toxic(b"{nope").unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.starts_with("bad request body"), "{}", e.message);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%2Fc"), "a b/c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
