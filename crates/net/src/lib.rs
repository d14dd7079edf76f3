//! Networking shared by every protocol: TLS, connection streams, connection limits, login throttling.

pub mod accept;
pub mod client;
pub mod dane;
pub mod limits;
pub mod sasl;
pub mod stream;
pub mod throttle;
pub mod tls;
