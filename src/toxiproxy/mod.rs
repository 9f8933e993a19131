//! The Toxiproxy layer: typed client, data model, metrics, the embedded server and the launcher.

pub mod client;
pub mod error;
pub mod launcher;
pub mod metrics;
pub mod model;
pub mod server;

pub use client::Client;
pub use error::{Subject, ToxiproxyError};
pub use model::{NewProxy, Proxy, ProxyUpdate, Stream, Toxic, ToxicKind, ToxicUpdate};
