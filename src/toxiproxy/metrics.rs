//! Proxy metric names shared with the real Toxiproxy, and parsing of its Prometheus `/metrics` text.

use std::collections::BTreeMap;

/// Bytes read from the source side of a link, labelled `direction`, `proxy`, `listener`, `upstream`
/// (the real server's name and labels).
pub const RECEIVED_BYTES: &str = "toxiproxy_proxy_received_bytes_total";
/// Bytes written to the destination side of a link (same labels).
pub const SENT_BYTES: &str = "toxiproxy_proxy_sent_bytes_total";
/// Connections accepted by a proxy (label `proxy`). Only the embedded server has it: the
/// real server has no connection counter, so this lives in our own namespace.
pub const CONNECTIONS_TOTAL: &str = "chronik_chaos_proxy_connections_total";
/// Connections open right now through a proxy (label `proxy`); embedded server only.
pub const CONNECTIONS_OPEN: &str = "chronik_chaos_proxy_connections_open";

/// Byte and connection counters of one proxy, summed over its label sets.
///
/// With the real server, byte counters move only when a connection closes; with the
/// embedded server they move as bytes flow. `connections_*` are `None` when the server
/// does not export them (the real one), never 0 in their place.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyBytes {
    /// Client → upstream bytes received by the proxy.
    pub upstream_received: u64,
    pub upstream_sent: u64,
    /// Upstream → client bytes received by the proxy.
    pub downstream_received: u64,
    pub downstream_sent: u64,
    pub connections_total: Option<u64>,
    pub connections_open: Option<u64>,
}

/// One parsed sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the sample lines of Prometheus text exposition format; comments and malformed lines are skipped.
pub fn parse_samples(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => (&line[..i], &line[i..]),
        None => return None,
    };
    let mut labels = BTreeMap::new();
    let rest = if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let mut end = None;
        // label="value",label2="value"} value
        loop {
            // key
            let mut key = String::new();
            let mut c = chars.next()?;
            while c.1 == ' ' || c.1 == ',' {
                c = chars.next()?;
            }
            if c.1 == '}' {
                end = Some(c.0 + 1);
                break;
            }
            while c.1 != '=' {
                key.push(c.1);
                c = chars.next()?;
            }
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut value = String::new();
            loop {
                let (_, ch) = chars.next()?;
                match ch {
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    '"' => break,
                    other => value.push(other),
                }
            }
            labels.insert(key.trim().to_string(), value);
            if end.is_some() {
                break;
            }
        }
        &body[end?..]
    } else {
        rest
    };
    let value_text = rest.split_whitespace().next()?;
    let value = match value_text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample { name: name.to_string(), labels, value })
}

/// Sums the byte and connection counters by proxy name.
pub fn parse_proxy_bytes(text: &str) -> BTreeMap<String, ProxyBytes> {
    let mut out: BTreeMap<String, ProxyBytes> = BTreeMap::new();
    for s in parse_samples(text) {
        let Some(proxy) = s.labels.get("proxy") else { continue };
        let v = s.value.max(0.0) as u64;
        let entry = out.entry(proxy.clone()).or_default();
        let upstream = s.labels.get("direction").map(String::as_str) == Some("upstream");
        match s.name.as_str() {
            RECEIVED_BYTES if upstream => entry.upstream_received += v,
            RECEIVED_BYTES => entry.downstream_received += v,
            SENT_BYTES if upstream => entry.upstream_sent += v,
            SENT_BYTES => entry.downstream_sent += v,
            CONNECTIONS_TOTAL => *entry.connections_total.get_or_insert(0) += v,
            CONNECTIONS_OPEN => *entry.connections_open.get_or_insert(0) += v,
            _ => {}
        }
    }
    out
}

/// Escapes a label value for the text exposition format.
pub fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_server_output() {
        // Shape of the real server's output (client_golang), one link closed on each direction.
        let text = r#"# HELP toxiproxy_proxy_received_bytes_total
# TYPE toxiproxy_proxy_received_bytes_total counter
toxiproxy_proxy_received_bytes_total{direction="downstream",listener="127.0.0.1:19092",proxy="kafka-n1",upstream="127.0.0.1:9092"} 1234
toxiproxy_proxy_received_bytes_total{direction="upstream",listener="127.0.0.1:19092",proxy="kafka-n1",upstream="127.0.0.1:9092"} 99
toxiproxy_proxy_sent_bytes_total{direction="upstream",listener="127.0.0.1:19092",proxy="kafka-n1",upstream="127.0.0.1:9092"} 98
go_goroutines 12
"#;
        let m = parse_proxy_bytes(text);
        let k = &m["kafka-n1"];
        assert_eq!(k.downstream_received, 1234);
        assert_eq!(k.upstream_received, 99);
        assert_eq!(k.upstream_sent, 98);
        assert_eq!(k.connections_total, None, "absent counters stay absent, not zero");
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn parses_escaped_labels_and_exponents() {
        let s = parse_samples("m{a=\"x\\\"y\",b=\"1,2}\"} 1.5e3\n");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].labels["a"], "x\"y");
        assert_eq!(s[0].labels["b"], "1,2}");
        assert_eq!(s[0].value, 1500.0);
        assert_eq!(parse_samples("plain 3\n")[0].value, 3.0);
        assert!(parse_samples("broken{a=\"x\" 3\n").is_empty());
    }
}
