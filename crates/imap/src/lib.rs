//! IMAP4rev2 (RFC 9051) and IMAP4rev1 (RFC 3501) server.
//!
//! `session` is the protocol state machine (bytes in, responses out, an async [`Backend`] for
//! storage and logins); `server` plugs it into the socket driver shared with SMTP and POP3
//! (`net::driver`: STARTTLS on 143, implicit TLS on 993, timeouts, connection limits, IDLE
//! wake-ups, the COMPRESS=DEFLATE stream of `net::compress`); `selected` is the per-session view
//! of the selected mailbox; `command/` holds one module per command family; `encode` writes
//! response data.

pub mod backend;
pub mod command;
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
