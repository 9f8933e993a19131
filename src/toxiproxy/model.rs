//! The Toxiproxy 2.x JSON data model: proxies, toxics and their attributes, shared by the client and the embedded server.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A proxy as the server reports it (`GET /proxies/{name}`).
///
/// Unknown fields are ignored so that newer servers can add some.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Proxy {
    pub name: String,
    /// The address the proxy listens on, as resolved by the server (`127.0.0.1:0` becomes a real port).
    pub listen: String,
    pub upstream: String,
    pub enabled: bool,
    #[serde(default)]
    pub toxics: Vec<Toxic>,
}

/// The body of `POST /proxies` and one element of `POST /populate`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewProxy {
    pub name: String,
    /// Defaults on the server to `127.0.0.1:0`-like behaviour when empty; we always send one.
    pub listen: String,
    pub upstream: String,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

impl NewProxy {
    pub fn new(name: impl Into<String>, listen: impl Into<String>, upstream: impl Into<String>) -> Self {
        NewProxy { name: name.into(), listen: listen.into(), upstream: upstream.into(), enabled: true }
    }
}

/// The body of a proxy update: every field left `None` keeps its current value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProxyUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Which direction of a connection a toxic acts on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Client → upstream server.
    Upstream,
    /// Upstream server → client (Toxiproxy's default).
    #[default]
    Downstream,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }

    pub fn parse(s: &str) -> Option<Stream> {
        match s {
            "upstream" => Some(Stream::Upstream),
            "downstream" => Some(Stream::Downstream),
            _ => None,
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One toxic with its common fields. `toxicity` is the probability, drawn once per
/// connection (per link) when the toxic meets it, that the toxic applies to that connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawToxic", into = "RawToxic")]
pub struct Toxic {
    pub name: String,
    pub stream: Stream,
    pub toxicity: f32,
    pub kind: ToxicKind,
}

impl Toxic {
    /// A toxic with Toxiproxy's defaults: name `<type>_<stream>`, toxicity 1.
    pub fn new(kind: ToxicKind, stream: Stream) -> Toxic {
        Toxic { name: format!("{}_{}", kind.type_name(), stream), stream, toxicity: 1.0, kind }
    }

    pub fn named(mut self, name: impl Into<String>) -> Toxic {
        self.name = name.into();
        self
    }

    pub fn with_toxicity(mut self, toxicity: f32) -> Toxic {
        self.toxicity = toxicity;
        self
    }
}

/// Every toxic type of Toxiproxy 2.x with its attributes, in the server's units.
#[derive(Clone, Debug, PartialEq)]
pub enum ToxicKind {
    /// Delays each chunk by `latency` ms ± `jitter` ms.
    Latency { latency: i64, jitter: i64 },
    /// Caps throughput at `rate` KB/s; a rate of 0 or less holds all data until removed.
    Bandwidth { rate: i64 },
    /// Delays the close of the connection by `delay` ms.
    SlowClose { delay: i64 },
    /// Stops all data; closes the connection after `timeout` ms (0: never, until the toxic is removed).
    Timeout { timeout: i64 },
    /// Resets the connection (TCP RST) on the next data, after `timeout` ms.
    ResetPeer { timeout: i64 },
    /// Slices chunks into pieces of `average_size` ± `size_variation` bytes, `delay` µs apart.
    Slicer { average_size: i64, size_variation: i64, delay: i64 },
    /// Closes the connection after `bytes` bytes in this direction.
    LimitData { bytes: i64 },
    /// A type this client does not know, kept as the server sent it.
    Unknown { type_name: String, attributes: Value },
}

impl ToxicKind {
    /// The `type` string the API uses.
    pub fn type_name(&self) -> &str {
        match self {
            ToxicKind::Latency { .. } => "latency",
            ToxicKind::Bandwidth { .. } => "bandwidth",
            ToxicKind::SlowClose { .. } => "slow_close",
            ToxicKind::Timeout { .. } => "timeout",
            ToxicKind::ResetPeer { .. } => "reset_peer",
            ToxicKind::Slicer { .. } => "slicer",
            ToxicKind::LimitData { .. } => "limit_data",
            ToxicKind::Unknown { type_name, .. } => type_name,
        }
    }

    /// The `attributes` object the API uses.
    pub fn attributes(&self) -> Value {
        use serde_json::json;
        match self {
            ToxicKind::Latency { latency, jitter } => json!({ "latency": latency, "jitter": jitter }),
            ToxicKind::Bandwidth { rate } => json!({ "rate": rate }),
            ToxicKind::SlowClose { delay } => json!({ "delay": delay }),
            ToxicKind::Timeout { timeout } => json!({ "timeout": timeout }),
            ToxicKind::ResetPeer { timeout } => json!({ "timeout": timeout }),
            ToxicKind::Slicer { average_size, size_variation, delay } => {
                json!({ "average_size": average_size, "size_variation": size_variation, "delay": delay })
            }
            ToxicKind::LimitData { bytes } => json!({ "bytes": bytes }),
            ToxicKind::Unknown { attributes, .. } => attributes.clone(),
        }
    }

    /// Builds a kind from the API's `type` and `attributes`; missing attributes are 0 as on
    /// the real server. Returns `None` for a type Toxiproxy 2.x does not have.
    pub fn from_parts(type_name: &str, attributes: &Value) -> Result<Option<ToxicKind>, String> {
        let int = |key: &str| -> Result<i64, String> {
            match attributes.get(key) {
                None | Some(Value::Null) => Ok(0),
                Some(v) => v.as_i64().ok_or_else(|| format!("attribute `{key}` must be an integer, got {v}")),
            }
        };
        if !(attributes.is_object() || attributes.is_null()) {
            return Err(format!("attributes must be an object, got {attributes}"));
        }
        Ok(Some(match type_name {
            "latency" => ToxicKind::Latency { latency: int("latency")?, jitter: int("jitter")? },
            "bandwidth" => ToxicKind::Bandwidth { rate: int("rate")? },
            "slow_close" => ToxicKind::SlowClose { delay: int("delay")? },
            "timeout" => ToxicKind::Timeout { timeout: int("timeout")? },
            "reset_peer" => ToxicKind::ResetPeer { timeout: int("timeout")? },
            "slicer" => ToxicKind::Slicer {
                average_size: int("average_size")?,
                size_variation: int("size_variation")?,
                delay: int("delay")?,
            },
            "limit_data" => ToxicKind::LimitData { bytes: int("bytes")? },
            _ => return Ok(None),
        }))
    }

    /// Applies a partial `attributes` object over this kind, as the real server's update does.
    pub fn merged(&self, patch: &Value) -> Result<ToxicKind, String> {
        let mut attrs = self.attributes();
        if let (Some(base), Some(patch)) = (attrs.as_object_mut(), patch.as_object()) {
            for (k, v) in patch {
                base.insert(k.clone(), v.clone());
            }
        } else if !patch.is_null() {
            return Err(format!("attributes must be an object, got {patch}"));
        }
        match ToxicKind::from_parts(self.type_name(), &attrs)? {
            Some(kind) => Ok(kind),
            None => Ok(ToxicKind::Unknown { type_name: self.type_name().to_string(), attributes: attrs }),
        }
    }
}

impl fmt::Display for Toxic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} {}", self.name, self.kind.type_name(), self.stream)?;
        if let Some(obj) = self.kind.attributes().as_object() {
            for (k, v) in obj {
                write!(f, " {k}={v}")?;
            }
        }
        if self.toxicity < 1.0 {
            write!(f, " toxicity={}", self.toxicity)?;
        }
        f.write_str(")")
    }
}

/// The wire shape of a toxic.
#[derive(Serialize, Deserialize)]
struct RawToxic {
    #[serde(default)]
    name: String,
    #[serde(rename = "type")]
    type_name: String,
    #[serde(default)]
    stream: Stream,
    #[serde(default = "one")]
    toxicity: f32,
    #[serde(default)]
    attributes: Value,
}

fn one() -> f32 {
    1.0
}

impl TryFrom<RawToxic> for Toxic {
    type Error = String;

    fn try_from(raw: RawToxic) -> Result<Toxic, String> {
        let kind = ToxicKind::from_parts(&raw.type_name, &raw.attributes)?
            .unwrap_or(ToxicKind::Unknown { type_name: raw.type_name.clone(), attributes: raw.attributes });
        let name = if raw.name.is_empty() { format!("{}_{}", raw.type_name, raw.stream) } else { raw.name };
        Ok(Toxic { name, stream: raw.stream, toxicity: raw.toxicity, kind })
    }
}

impl From<Toxic> for RawToxic {
    fn from(t: Toxic) -> RawToxic {
        RawToxic {
            name: t.name,
            type_name: t.kind.type_name().to_string(),
            stream: t.stream,
            toxicity: t.toxicity,
            attributes: t.kind.attributes(),
        }
    }
}

/// The body of a toxic update: toxicity and/or a partial attributes object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ToxicUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub toxicity: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Value>,
}

/// The error body both servers send: `{"error": "...", "status": 404}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    pub error: String,
    pub status: u16,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A proxy as the real Toxiproxy 2.12 server prints it, with an extra field a newer one might add.
    const REAL_PROXY: &str = r#"{"name":"kafka-n1","listen":"127.0.0.1:19092","upstream":"127.0.0.1:9092",
        "enabled":true,"future_field":{"x":1},"toxics":[
        {"attributes":{"latency":100,"jitter":20},"name":"latency_downstream","type":"latency","stream":"downstream","toxicity":1},
        {"attributes":{"average_size":10,"size_variation":2,"delay":5},"name":"s","type":"slicer","stream":"upstream","toxicity":0.5},
        {"attributes":{"whatever":true},"name":"x","type":"debug","stream":"upstream","toxicity":1}]}"#;

    #[test]
    fn parses_real_server_proxy_and_ignores_unknown_fields() {
        let p: Proxy = serde_json::from_str(REAL_PROXY).unwrap();
        assert_eq!(p.name, "kafka-n1");
        assert_eq!(p.toxics.len(), 3);
        assert_eq!(p.toxics[0].kind, ToxicKind::Latency { latency: 100, jitter: 20 });
        assert_eq!(p.toxics[1].kind, ToxicKind::Slicer { average_size: 10, size_variation: 2, delay: 5 });
        assert_eq!(p.toxics[1].stream, Stream::Upstream);
        assert_eq!(p.toxics[1].toxicity, 0.5);
        assert!(matches!(&p.toxics[2].kind, ToxicKind::Unknown { type_name, .. } if type_name == "debug"));
    }

    #[test]
    fn every_kind_round_trips_through_json() {
        let kinds = [
            ToxicKind::Latency { latency: 5, jitter: 1 },
            ToxicKind::Bandwidth { rate: 100 },
            ToxicKind::SlowClose { delay: 10 },
            ToxicKind::Timeout { timeout: 0 },
            ToxicKind::ResetPeer { timeout: 3 },
            ToxicKind::Slicer { average_size: 8, size_variation: 2, delay: 100 },
            ToxicKind::LimitData { bytes: 42 },
        ];
        for kind in kinds {
            let t = Toxic::new(kind, Stream::Upstream).with_toxicity(0.25);
            let json = serde_json::to_string(&t).unwrap();
            let back: Toxic = serde_json::from_str(&json).unwrap();
            assert_eq!(back, t, "{json}");
        }
    }

    #[test]
    fn defaults_match_toxiproxy() {
        let t: Toxic = serde_json::from_str(r#"{"type":"latency","attributes":{"latency":7}}"#).unwrap();
        assert_eq!(t.name, "latency_downstream");
        assert_eq!(t.stream, Stream::Downstream);
        assert_eq!(t.toxicity, 1.0);
        assert_eq!(t.kind, ToxicKind::Latency { latency: 7, jitter: 0 });
    }

    #[test]
    fn non_integer_attribute_is_rejected_with_its_name() {
        let err = ToxicKind::from_parts("latency", &serde_json::json!({"latency": "slow"})).unwrap_err();
        assert!(err.contains("`latency`"), "{err}");
    }

    #[test]
    fn partial_update_keeps_other_attributes() {
        let k = ToxicKind::Latency { latency: 100, jitter: 5 };
        let merged = k.merged(&serde_json::json!({"latency": 300})).unwrap();
        assert_eq!(merged, ToxicKind::Latency { latency: 300, jitter: 5 });
    }

    #[test]
    fn display_names_every_attribute() {
        let t = Toxic::new(ToxicKind::Latency { latency: 100, jitter: 20 }, Stream::Upstream).with_toxicity(0.5);
        assert_eq!(t.to_string(), "latency_upstream (latency upstream jitter=20 latency=100 toxicity=0.5)");
    }
}
