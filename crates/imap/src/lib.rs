//! IMAP4rev2 (RFC 9051) and IMAP4rev1 (RFC 3501) server.
//!
//! `session` is the protocol state machine (bytes in, responses out, an async [`Backend`] for
//! storage and logins); `server` is the thin socket driver (STARTTLS on 143, implicit TLS on 993,
//! timeouts, connection limits, IDLE wake-ups) and `compress` its COMPRESS=DEFLATE stream wrapper;
//! `selected` is the per-session view of the selected mailbox; `command/` holds one module per
//! command family; `encode` writes response data.

pub mod backend;
pub mod command;
pub mod compress;
pub mod config;
pub mod encode;
pub mod selected;
pub mod server;
pub mod session;
pub mod utf7;

pub use backend::{Backend, MailBackend};

#[cfg(test)]
mod tests;
pub use config::ImapConfig;
