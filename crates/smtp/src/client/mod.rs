//! The SMTP client for outbound delivery (RFC 5321) and for a smarthost: EHLO, opportunistic or
//! required STARTTLS (RFC 3207), AUTH PLAIN (RFC 4954), PIPELINING (RFC 2920), SIZE (RFC 1870),
//! 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531), DSN parameters (RFC 3461) and CHUNKING (RFC 3030).
//!
//! `reply` parses the server's replies, `body` prepares the bytes, `conn` drives one connection.

pub mod body;
pub mod conn;
pub mod reply;

use std::sync::Arc;
use std::time::Duration;

pub use conn::{Connection, Ehlo};
pub use reply::RemoteReply;

/// How hard TLS is required on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// STARTTLS when offered, any certificate (RFC 7435); plaintext when not offered.
    Opportunistic,
    /// STARTTLS required (or implicit TLS), certificate checked by the given configuration.
    Required,
    /// Implicit TLS from the first byte (RFC 8314, port 465).
    Implicit,
    /// Never TLS (tests and trusted local relays only).
    Never,
}

/// Timeouts of RFC 5321 §4.5.3.2 (minimums there: 5 min greeting, 5 min MAIL/RCPT, 2 min DATA
/// initiation, 3 min per data block, 10 min for the final dot).
#[derive(Debug, Clone)]
pub struct Timeouts {
    pub connect: Duration,
    pub command: Duration,
    pub data_end: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(30),
            command: Duration::from_secs(300),
            data_end: Duration::from_secs(600),
        }
    }
}

#[derive(Clone)]
pub struct ClientConfig {
    /// Our name in EHLO.
    pub helo_name: String,
    pub tls_mode: TlsMode,
    /// The TLS configuration: `net::client::opportunistic()` or `net::client::verifying()`.
    pub tls: Arc<rustls::ClientConfig>,
    pub timeouts: Timeouts,
}

/// One recipient of an outbound transaction.
#[derive(Debug, Clone)]
pub struct OutRecipient {
    pub address: String,
    /// RFC 3461 NOTIFY value as received (sent on only when the server offers DSN).
    pub notify: Option<String>,
    pub orcpt: Option<String>,
}

/// The envelope of one outbound transaction.
#[derive(Debug, Clone)]
pub struct OutEnvelope {
    /// Empty for the null reverse-path (bounces).
    pub from: String,
    pub recipients: Vec<OutRecipient>,
    pub envid: Option<String>,
    pub ret: Option<String>,
}

/// What became of one transaction: a reply per recipient (in envelope order). A recipient is
/// delivered when its entry is `Ok`; `Err` holds the reply (temporary or permanent) that refused it.
#[derive(Debug, Clone)]
pub struct TxOutcome {
    pub recipients: Vec<Result<RemoteReply, RemoteReply>>,
}

/// A failure that affects the whole connection or transaction.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("timed out {0}")]
    Timeout(&'static str),
    #[error("TLS failed: {0}")]
    Tls(String),
    #[error("TLS required but the server does not offer STARTTLS")]
    TlsUnavailable,
    #[error("connection lost: {0}")]
    Io(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server refused at a stage that concerns every recipient (greeting, EHLO, MAIL, DATA).
    #[error("{stage}: {reply}")]
    Refused {
        stage: &'static str,
        reply: RemoteReply,
    },
    /// We decline to send: the server cannot take this message (size, SMTPUTF8).
    #[error("{reason}")]
    Unsendable {
        enhanced: &'static str,
        reason: String,
    },
}

impl ClientError {
    /// True when trying again later cannot help (5xx replies and unsendable messages).
    pub fn is_permanent(&self) -> bool {
        match self {
            ClientError::Refused { reply, .. } => reply.is_permanent(),
            ClientError::Unsendable { .. } => true,
            _ => false,
        }
    }

    /// The enhanced status code to report in a DSN for this failure (RFC 3463).
    pub fn enhanced(&self) -> String {
        match self {
            ClientError::Refused { reply, .. } if !reply.enhanced.is_empty() => {
                reply.enhanced.clone()
            }
            ClientError::Refused { reply, .. } if reply.is_permanent() => "5.0.0".into(),
            ClientError::Refused { .. } => "4.0.0".into(),
            ClientError::Unsendable { enhanced, .. } => (*enhanced).into(),
            ClientError::Tls(_) | ClientError::TlsUnavailable => "4.7.5".into(),
            ClientError::Timeout(_) => "4.4.2".into(),
            ClientError::Connect(_) => "4.4.1".into(),
            ClientError::Io(_) => "4.4.2".into(),
            ClientError::Protocol(_) => "4.5.0".into(),
        }
    }
}
