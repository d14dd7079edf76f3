//! What the SMTP state machine asks of the rest of the server: authenticate a login, accept a
//! sender and recipients, and deliver a message durably. The real implementation is
//! [`crate::delivery::MailBackend`]; tests may use another.

use std::net::IpAddr;

use async_trait::async_trait;
use net::stream::TlsInfo;

use crate::pipeline::{CheckState, Pipeline};
use crate::reply::Reply;
use crate::spool::MessageData;

/// Which service a session serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Port 25: mail from the internet for our domains. No AUTH.
    Mx,
    /// Ports 587/465 (RFC 6409, 8314): staff sending, AUTH required.
    Submission,
    /// LMTP (RFC 2033): final delivery for a front MTA, per-recipient replies.
    Lmtp,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Mx => "smtp",
            Mode::Submission => "submission",
            Mode::Lmtp => "lmtp",
        }
    }
}

/// An authenticated user of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    pub account_id: i64,
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    Ok(AuthUser),
    /// Wrong credentials (or unknown user: the same answer).
    Failed,
    /// The password is right but the client's address is banned: wait `retry_after`.
    Held {
        retry_after: std::time::Duration,
    },
    Unavailable,
}

/// Where one accepted recipient's copy goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptTarget {
    /// Local accounts (ids) and their INBOX is the destination.
    pub local: Vec<i64>,
    /// Remote addresses: into the outbound queue.
    pub external: Vec<String>,
}

/// RFC 3461 parameters of one recipient.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recipient {
    /// As the client gave it (for logs, DSNs, the Received "for" clause).
    pub address: String,
    pub target: RcptTarget,
    pub notify: Option<String>,
    pub orcpt: Option<String>,
}

/// Everything known about a transaction when its data is complete.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub mode: Mode,
    pub peer: Option<IpAddr>,
    pub helo: String,
    pub esmtp: bool,
    pub tls: Option<TlsInfo>,
    pub auth: Option<AuthUser>,
    /// Empty for the null reverse-path.
    pub from: String,
    pub recipients: Vec<Recipient>,
    pub smtputf8: bool,
    pub body_8bit: bool,
    pub ret: Option<String>,
    pub envid: Option<String>,
    /// Identifier for logs and the Received header.
    pub id: String,
    /// What the connection, HELO, sender and recipient check stages said.
    pub checks: CheckState,
}

#[async_trait]
pub trait Backend: Send + Sync {
    async fn authenticate(&self, peer: Option<IpAddr>, user: &str, password: &str) -> AuthOutcome;
    /// Submission: may this user send as `from`? (`Err` carries the reply, e.g. 553 5.7.1.)
    async fn check_sender(
        &self,
        auth: Option<&AuthUser>,
        from: Option<&str>,
        mode: Mode,
    ) -> Result<(), Reply>;
    /// Resolves a recipient: accepted with its target, or refused with the reply.
    async fn check_recipient(
        &self,
        mode: Mode,
        auth: Option<&AuthUser>,
        local: &str,
        domain: &str,
        literal: bool,
    ) -> Result<RcptTarget, Reply>;
    /// The inbound check stages the session runs (connection, HELO, sender, recipient); the
    /// content stage runs in [`Backend::deliver`].
    fn pipeline(&self) -> Option<&Pipeline> {
        None
    }
    /// Checks the content and stores the message durably for every recipient. Returns one result
    /// per recipient; outside LMTP the results are all equal (all delivered, or none).
    async fn deliver(&self, envelope: &Envelope, message: MessageData) -> Vec<Result<(), Reply>>;
}
