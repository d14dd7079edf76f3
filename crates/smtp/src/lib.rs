//! SMTP: inbound MX (port 25), authenticated submission (587 with STARTTLS, 465 with implicit TLS),
//! and LMTP, with durable local delivery and the outbound queue as destination for remote recipients.
//!
//! `session` is the protocol state machine (bytes in, replies out); `server` is the thin socket
//! driver around it; `pipeline` runs the inbound check stages, `spool` holds message data while it
//! is received, and `delivery` prepares, checks and stores accepted messages.

pub mod backend;
pub mod checks;
pub mod client;
pub mod command;
pub mod config;
pub mod conn;
pub mod data;
pub mod delivery;
pub mod id;
pub mod pipeline;
pub mod received;
pub mod reply;
pub mod server;
pub mod session;
pub mod sieve;
pub mod spool;
pub mod srs;
pub mod target;
pub mod verdict;

pub use backend::{Backend, Mode};
pub use config::{BareNewline, SmtpConfig};
