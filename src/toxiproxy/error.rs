//! Typed errors of the Toxiproxy client: what was asked of which proxy or toxic, and what the server answered.

use std::fmt;

/// What a request was about, so that an error can name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    Server,
    Proxies,
    Proxy(String),
    Toxics { proxy: String },
    Toxic { proxy: String, toxic: String },
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Server => f.write_str("the server"),
            Subject::Proxies => f.write_str("the proxy list"),
            Subject::Proxy(p) => write!(f, "proxy `{p}`"),
            Subject::Toxics { proxy } => write!(f, "the toxics of proxy `{proxy}`"),
            Subject::Toxic { proxy, toxic } => write!(f, "toxic `{toxic}` on proxy `{proxy}`"),
        }
    }
}

/// Errors from [`crate::toxiproxy::Client`]. Callers match on the variant (e.g. treat
/// `NotFound` on delete as done); the message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum ToxiproxyError {
    #[error("toxiproxy at {api} did not answer ({source}); is it running? `cargo xtask toxiproxy start` starts one")]
    Unreachable {
        api: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{subject} not found (404): server said \"{message}\"")]
    NotFound { subject: Subject, message: String },
    #[error("{subject} already exists (409): server said \"{message}\"; pick another name or delete it first")]
    Conflict { subject: Subject, message: String },
    #[error("toxiproxy rejected the request for {subject} (400): server said \"{message}\"")]
    BadRequest { subject: Subject, message: String },
    #[error("toxiproxy answered {status} for {subject}: {message}")]
    Status { subject: Subject, status: u16, message: String },
    #[error("toxiproxy sent an answer for {subject} that is not what the 2.x API documents: {detail}")]
    Protocol { subject: Subject, detail: String },
}

impl ToxiproxyError {
    /// The HTTP status the server answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ToxiproxyError::NotFound { .. } => Some(404),
            ToxiproxyError::Conflict { .. } => Some(409),
            ToxiproxyError::BadRequest { .. } => Some(400),
            ToxiproxyError::Status { status, .. } => Some(*status),
            ToxiproxyError::Unreachable { .. } | ToxiproxyError::Protocol { .. } => None,
        }
    }

    pub(crate) fn from_status(subject: Subject, status: u16, body: &str) -> ToxiproxyError {
        // Both servers send {"error": "...", "status": N}; fall back to the raw body.
        let message = serde_json::from_str::<super::model::ApiErrorBody>(body)
            .map(|b| b.error)
            .unwrap_or_else(|_| body.trim().chars().take(500).collect());
        match status {
            404 => ToxiproxyError::NotFound { subject, message },
            409 => ToxiproxyError::Conflict { subject, message },
            400 => ToxiproxyError::BadRequest { subject, message },
            _ => ToxiproxyError::Status { subject, status, message },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_subject_and_the_server_answer() {
        let subject = Subject::Toxic { proxy: "kafka-n1".into(), toxic: "lag".into() };
        let e = ToxiproxyError::from_status(subject, 404, r#"{"error":"toxic not found","status":404}"#);
        assert_eq!(e.to_string(), "toxic `lag` on proxy `kafka-n1` not found (404): server said \"toxic not found\"");
        assert_eq!(e.status(), Some(404));

        let e = ToxiproxyError::from_status(
            Subject::Proxy("a".into()),
            409,
            r#"{"error":"proxy already exists","status":409}"#,
        );
        assert!(matches!(e, ToxiproxyError::Conflict { .. }));
        assert!(e.to_string().contains("proxy `a` already exists"));

        let e = ToxiproxyError::from_status(Subject::Proxies, 500, "boom\n");
        assert_eq!(e.to_string(), "toxiproxy answered 500 for the proxy list: boom");
    }
}
