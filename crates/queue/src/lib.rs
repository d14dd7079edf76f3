//! The outbound queue: durable entries (in the store) worked by a scheduler that routes each
//! destination domain (smarthost or MX), delivers with the SMTP client, retries with back-off and
//! returns delivery status notifications (RFC 3464) to senders.

pub mod attempt;
pub mod config;
pub mod dns;
pub mod dsn;
pub mod mta_sts;
pub mod route;
pub mod scheduler;

pub use attempt::{Deliverer, RcptResult, client_configs, is_pending};
pub use config::{OutboundTls, QueueConfig, Relay, RelaySecurity};
pub use dns::{DnsError, MxAnswer, Resolver, StaticResolver};
pub use scheduler::{Injector, Queue};
