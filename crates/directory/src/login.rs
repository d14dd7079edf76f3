//! A protocol login: the shared throttle's verdict, the growing delay, the password check, and the
//! bookkeeping of failures and successes — the same for SMTP, IMAP and POP3.

use std::net::{IpAddr, Ipv4Addr};

use net::throttle::{LoginThrottle, Verdict};

use crate::{AccountRecord, AuthError, Directory};

/// How a login attempt ended.
#[derive(Debug)]
pub enum LoginOutcome {
    Ok(AccountRecord),
    /// Wrong password, unknown user or disabled account: one answer for all.
    Failed,
    /// Refused without checking: too many recent failures from this IP or on this account.
    Banned,
    /// Storage failed: answer with a temporary error.
    Unavailable,
}

impl Directory {
    /// Checks a login for `protocol` ("smtp", "imap", "pop3") from `peer` (loopback when unknown,
    /// e.g. a Unix socket), through the shared login throttle.
    pub async fn login(
        &self,
        throttle: &LoginThrottle,
        protocol: &str,
        peer: Option<IpAddr>,
        user: &str,
        password: &str,
    ) -> LoginOutcome {
        let ip = peer.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        match throttle.check(ip, Some(user)) {
            Verdict::Banned { .. } => return LoginOutcome::Banned,
            Verdict::Allow { delay } if !delay.is_zero() => tokio::time::sleep(delay).await,
            Verdict::Allow { .. } => {}
        }
        match self.authenticate(user, password).await {
            Ok(account) => {
                throttle.record_success(ip, user);
                LoginOutcome::Ok(account)
            }
            Err(AuthError::Invalid) => match throttle.record_failure(protocol, ip, user) {
                Verdict::Banned { .. } => LoginOutcome::Banned,
                Verdict::Allow { .. } => LoginOutcome::Failed,
            },
            Err(AuthError::Unavailable(e)) => {
                tracing::warn!(protocol, error = %e, "authentication unavailable");
                LoginOutcome::Unavailable
            }
        }
    }
}
