//! Networking shared by every protocol: the socket driver under the SMTP, IMAP and POP3 servers
//! (admission, TLS, deadlines, timed writes, COMPRESS, polite shutdown), TLS, connection streams,
//! connection limits, login throttling, settings a config reload can replace, and what protocols
//! need to log client input safely.

pub mod accept;
pub mod client;
pub mod compress;
pub mod dane;
pub mod driver;
pub mod ip;
pub mod limits;
pub mod live;
pub mod log;
pub mod sasl;
pub mod shutdown;
pub mod stream;
pub mod throttle;
pub mod tls;
