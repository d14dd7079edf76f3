//! Networking shared by every protocol: TLS, connection streams, connection limits, login throttling,
//! and what protocols need to log client input safely.

pub mod accept;
pub mod client;
pub mod dane;
pub mod limits;
pub mod log;
pub mod sasl;
pub mod stream;
pub mod throttle;
pub mod tls;
