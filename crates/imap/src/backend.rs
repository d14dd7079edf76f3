//! What the IMAP state machine needs from the rest of the server: logins (through the directory
//! and the shared login throttle), the mail store, and quotas.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use async_trait::async_trait;
use directory::{AuthError, Directory};
use net::throttle::{LoginThrottle, Verdict};
use store::{AccountId, DynStore};

/// An authenticated user of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    pub account_id: AccountId,
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    Ok(AuthUser),
    /// Wrong credentials, unknown user, or banned: one answer for all.
    Failed,
    Unavailable,
}

#[async_trait]
pub trait Backend: Send + Sync {
    async fn authenticate(&self, peer: Option<IpAddr>, user: &str, password: &str) -> AuthOutcome;
    fn store(&self) -> &DynStore;
    /// Whether storing `extra` more bytes (one more message) would exceed the account's quota.
    async fn over_quota(&self, account: AccountId, extra: u64) -> bool;
}

/// The real backend: store, directory and the login throttle shared with the other protocols.
pub struct MailBackend {
    pub store: DynStore,
    pub directory: Directory,
    pub throttle: Arc<LoginThrottle>,
}

#[async_trait]
impl Backend for MailBackend {
    async fn authenticate(&self, peer: Option<IpAddr>, user: &str, password: &str) -> AuthOutcome {
        let ip = peer.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        match self.throttle.check(ip, Some(user)) {
            // A banned client gets the ordinary failure: nothing tells it the password was not tried.
            Verdict::Banned { .. } => return AuthOutcome::Failed,
            Verdict::Allow { delay } if !delay.is_zero() => tokio::time::sleep(delay).await,
            Verdict::Allow { .. } => {}
        }
        match self.directory.authenticate(user, password).await {
            Ok(acc) => {
                self.throttle.record_success(ip, user);
                AuthOutcome::Ok(AuthUser {
                    account_id: acc.id,
                    address: acc.address(),
                })
            }
            Err(AuthError::Invalid) => {
                self.throttle.record_failure("imap", ip, user);
                AuthOutcome::Failed
            }
            Err(AuthError::Unavailable(e)) => {
                tracing::warn!(error = %e, "authentication unavailable");
                AuthOutcome::Unavailable
            }
        }
    }

    fn store(&self) -> &DynStore {
        &self.store
    }

    async fn over_quota(&self, account: AccountId, extra: u64) -> bool {
        let Ok(Some(acc)) = self.store.account_get_by_id(account).await else {
            return false;
        };
        let Ok(usage) = self.store.quota_usage(account).await else {
            return false;
        };
        acc.quota_bytes.is_some_and(|q| usage.bytes + extra > q)
            || acc.quota_messages.is_some_and(|q| usage.messages + 1 > q)
    }
}
