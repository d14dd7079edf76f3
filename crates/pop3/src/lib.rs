//! POP3 server (RFC 1939) with CAPA and response codes (RFC 2449, RFC 3206), STLS (RFC 2595)
//! and SASL PLAIN (RFC 5034).
//!
//! `session` is the protocol state machine (bytes in, replies out, an async [`Backend`] for
//! storage and logins); `server` is the thin socket driver (STLS on 110, implicit TLS on 995,
//! timeouts, connection limits); `lock` keeps one POP3 session per maildrop; `delay` remembers
//! logins for LOGIN-DELAY.

pub mod backend;
pub mod config;
pub mod delay;
pub mod lock;
pub mod server;
pub mod session;

pub use backend::{Backend, MailBackend};
pub use config::{Expire, Pop3Config};

#[cfg(test)]
mod tests;
