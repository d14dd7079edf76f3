//! Inbound checks as stages (maddy's model): each check may look at the connection, the HELO name,
//! the sender, each recipient and, at the end of data, the content, and at each stage accept, add
//! a score with its reasons, add header fields on top of the message (a tag), send the message to
//! the recipients' Junk folders, or refuse with a typed error.
//!
//! The session runs the connection and HELO stages once, when its first transaction starts (as
//! maddy does: a refusal then answers MAIL, which every client handles, rather than the greeting),
//! the sender stage at MAIL and the recipient stage at each accepted RCPT. The content stage runs
//! in delivery, over the [`message::Prepared`] message every later step reuses. What the stages
//! said accumulates in a [`CheckState`] carried with the transaction.
//!
//! A refusal is a [`CheckError`]: the reply code, enhanced status code and a generic text for the
//! client, whether it is temporary, and a detail that goes to the log only.

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use message::Prepared;
use net::stream::TlsInfo;

use crate::backend::{AuthUser, Envelope, Mode, Recipient};
use crate::reply::Reply;

/// A check's refusal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reply} (check {check}: {detail})")]
pub struct CheckError {
    /// What the client is told: RFC 5321 §4.2 code, RFC 3463 enhanced code, a generic text.
    pub reply: Reply,
    /// Which check refused.
    pub check: &'static str,
    /// Why, for the log only (never sent to the client).
    pub detail: String,
}

impl CheckError {
    pub fn new(
        check: &'static str,
        code: u16,
        enhanced: &'static str,
        text: impl Into<String>,
        detail: impl Into<String>,
    ) -> CheckError {
        CheckError {
            reply: Reply::new(code, enhanced, text),
            check,
            detail: detail.into(),
        }
    }

    /// A 4xx refusal: the client should try again later.
    pub fn is_temporary(&self) -> bool {
        self.reply.is_temporary()
    }
}

/// Where an accepted message goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Disposition {
    /// The recipients' INBOX.
    #[default]
    Accept,
    /// The recipients' Junk folder (RFC 6154 `\Junk`), INBOX for an account without one.
    Junk,
    /// Held in the store's quarantine (listed, released or deleted with `facteur quarantine`,
    /// expired after `quarantine.retention_days`), for every recipient of the transaction.
    Quarantine,
}

/// One contribution to a message's score, for the log and (later) the spam headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    pub check: &'static str,
    /// Short symbol, e.g. `DMARC_QUARANTINE`.
    pub name: String,
    pub score: f64,
    pub detail: String,
}

/// What one check says at one stage when it does not refuse.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    pub score: f64,
    pub reasons: Vec<Reason>,
    /// Whole header fields (`Name: value\r\n`) to put on top of the message.
    pub headers: String,
    pub disposition: Disposition,
}

impl Verdict {
    pub fn accept() -> Verdict {
        Verdict::default()
    }
}

pub type CheckResult = Result<Verdict, CheckError>;

/// What is known about the connection at a stage.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo<'a> {
    pub mode: Mode,
    pub peer: Option<IpAddr>,
    pub tls: Option<&'a TlsInfo>,
    pub auth: Option<&'a AuthUser>,
    /// The HELO/EHLO argument (empty before one was given).
    pub helo: &'a str,
}

/// One inbound check. Every stage accepts unless the check says otherwise.
#[async_trait]
pub trait Check: Send + Sync {
    /// Name for logs and reasons.
    fn name(&self) -> &'static str;

    /// The client's address (and TLS, login): DNS blocklists, rate limits.
    async fn connection(&self, _conn: &ConnInfo<'_>) -> CheckResult {
        Ok(Verdict::accept())
    }

    /// The HELO/EHLO name.
    async fn helo(&self, _conn: &ConnInfo<'_>) -> CheckResult {
        Ok(Verdict::accept())
    }

    /// MAIL FROM (empty for the null reverse-path).
    async fn sender(&self, _conn: &ConnInfo<'_>, _from: &str) -> CheckResult {
        Ok(Verdict::accept())
    }

    /// One recipient, already resolved (and accepted) by the directory.
    async fn recipient(&self, _conn: &ConnInfo<'_>, _from: &str, _rcpt: &Recipient) -> CheckResult {
        Ok(Verdict::accept())
    }

    /// The whole message at the end of data.
    async fn content(&self, _envelope: &Envelope, _message: &Prepared) -> CheckResult {
        Ok(Verdict::accept())
    }
}

/// The sum of what the stages said about one transaction so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckState {
    pub score: f64,
    pub reasons: Vec<Reason>,
    /// Header fields to put on top of the message, in the order the checks gave them.
    pub headers: String,
    pub disposition: Disposition,
}

impl CheckState {
    pub fn add(&mut self, v: Verdict) {
        self.score += v.score;
        self.reasons.extend(v.reasons);
        self.headers.push_str(&v.headers);
        self.disposition = self.disposition.max(v.disposition);
    }
}

/// The checks, in order. Cheap to clone.
#[derive(Clone, Default)]
pub struct Pipeline {
    checks: Vec<Arc<dyn Check>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.checks.iter().map(|c| c.name()))
            .finish()
    }
}

/// Which stage, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connection,
    Helo,
    Sender,
    Recipient,
    Content,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Connection => "connection",
            Stage::Helo => "helo",
            Stage::Sender => "sender",
            Stage::Recipient => "recipient",
            Stage::Content => "content",
        }
    }
}

impl Pipeline {
    pub fn new(checks: Vec<Arc<dyn Check>>) -> Pipeline {
        Pipeline { checks }
    }

    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    pub fn push(&mut self, check: Arc<dyn Check>) {
        self.checks.push(check);
    }

    /// Connection and HELO stages together (the session runs them once, at its first MAIL).
    pub async fn connection(
        &self,
        conn: &ConnInfo<'_>,
        state: &mut CheckState,
    ) -> Result<(), CheckError> {
        for c in &self.checks {
            let v = c.connection(conn).await;
            absorb(Stage::Connection, conn.peer, v, state)?;
        }
        for c in &self.checks {
            let v = c.helo(conn).await;
            absorb(Stage::Helo, conn.peer, v, state)?;
        }
        Ok(())
    }

    pub async fn sender(
        &self,
        conn: &ConnInfo<'_>,
        from: &str,
        state: &mut CheckState,
    ) -> Result<(), CheckError> {
        for c in &self.checks {
            let v = c.sender(conn, from).await;
            absorb(Stage::Sender, conn.peer, v, state)?;
        }
        Ok(())
    }

    pub async fn recipient(
        &self,
        conn: &ConnInfo<'_>,
        from: &str,
        rcpt: &Recipient,
        state: &mut CheckState,
    ) -> Result<(), CheckError> {
        for c in &self.checks {
            let v = c.recipient(conn, from, rcpt).await;
            absorb(Stage::Recipient, conn.peer, v, state)?;
        }
        Ok(())
    }

    pub async fn content(
        &self,
        envelope: &Envelope,
        message: &Prepared,
        state: &mut CheckState,
    ) -> Result<(), CheckError> {
        // A refusal here is logged by delivery, in the one line of the message's verdict.
        for c in &self.checks {
            match c.content(envelope, message).await {
                Ok(v) => state.add(v),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Adds a verdict to the state, or logs the refusal (with its detail) and passes it on.
fn absorb(
    stage: Stage,
    peer: Option<IpAddr>,
    v: CheckResult,
    state: &mut CheckState,
) -> Result<(), CheckError> {
    match v {
        Ok(v) => {
            state.add(v);
            Ok(())
        }
        Err(e) => {
            tracing::info!(
                stage = stage.name(),
                check = e.check,
                peer = peer.map(tracing::field::display),
                reply = %e.reply,
                detail = %e.detail,
                "refused by an inbound check"
            );
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Scorer;

    #[async_trait]
    impl Check for Scorer {
        fn name(&self) -> &'static str {
            "scorer"
        }
        async fn sender(&self, _: &ConnInfo<'_>, from: &str) -> CheckResult {
            if from.ends_with("@blocked.test") {
                return Err(CheckError::new(
                    "scorer",
                    550,
                    "5.7.1",
                    "Sender refused",
                    format!("{from} is on the block list"),
                ));
            }
            Ok(Verdict {
                score: 1.5,
                reasons: vec![Reason {
                    check: "scorer",
                    name: "ODD_SENDER".into(),
                    score: 1.5,
                    detail: String::new(),
                }],
                headers: "X-Test: 1\r\n".into(),
                disposition: if from.starts_with("junk") {
                    Disposition::Junk
                } else {
                    Disposition::Accept
                },
            })
        }
    }

    #[tokio::test]
    async fn verdicts_accumulate_and_refusals_stop() {
        let p = Pipeline::new(vec![Arc::new(Scorer), Arc::new(Scorer)]);
        let conn = ConnInfo {
            mode: Mode::Mx,
            peer: None,
            tls: None,
            auth: None,
            helo: "h",
        };
        let mut state = CheckState::default();
        p.connection(&conn, &mut state).await.expect("accepts");
        p.sender(&conn, "junk@x.test", &mut state)
            .await
            .expect("accepts");
        assert_eq!(state.score, 3.0);
        assert_eq!(state.reasons.len(), 2);
        assert_eq!(state.headers, "X-Test: 1\r\nX-Test: 1\r\n");
        assert_eq!(state.disposition, Disposition::Junk);
        let e = p
            .sender(&conn, "a@blocked.test", &mut state)
            .await
            .expect_err("refused");
        assert_eq!(e.reply.to_string(), "550 5.7.1 Sender refused");
        assert!(!e.is_temporary());
        assert!(
            !e.reply.text.contains("block list"),
            "detail stays in the log"
        );
    }
}
