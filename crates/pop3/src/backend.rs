//! What the POP3 state machine needs from the rest of the server: logins (through the directory
//! and the shared login throttle), the mail store, and the maildrop locks.

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use directory::{Directory, LoginOutcome};
use net::throttle::LoginThrottle;
use store::{AccountId, DynStore};

use crate::delay::LoginTimes;
use crate::lock::MaildropLocks;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Logged in: the account and its address.
    Ok(AccountId, String),
    /// Wrong credentials, unknown user, or refused without a check (banned): one answer for all.
    Failed,
    /// The password is right but the client's address is banned: wait `retry_after`.
    Held {
        retry_after: std::time::Duration,
    },
    Unavailable,
}

#[async_trait]
pub trait Backend: Send + Sync {
    async fn authenticate(&self, peer: Option<IpAddr>, user: &str, password: &str) -> AuthOutcome;
    fn store(&self) -> &DynStore;
    fn locks(&self) -> &MaildropLocks;
    /// Last login per account, for LOGIN-DELAY (RFC 2449 §6.5).
    fn login_times(&self) -> &LoginTimes;
}

/// The real backend: store, directory and the login throttle shared with the other protocols.
pub struct MailBackend {
    pub store: DynStore,
    pub directory: Directory,
    pub throttle: Arc<LoginThrottle>,
    pub locks: MaildropLocks,
    pub login_times: LoginTimes,
}

#[async_trait]
impl Backend for MailBackend {
    async fn authenticate(&self, peer: Option<IpAddr>, user: &str, password: &str) -> AuthOutcome {
        match self
            .directory
            .login(&self.throttle, "pop3", peer, user, password)
            .await
        {
            LoginOutcome::Ok(acc) => AuthOutcome::Ok(acc.id, acc.address()),
            // A banned client gets the ordinary failure: nothing tells it the password was not tried.
            LoginOutcome::Failed => AuthOutcome::Failed,
            LoginOutcome::Held { retry_after } => AuthOutcome::Held { retry_after },
            LoginOutcome::Unavailable => AuthOutcome::Unavailable,
        }
    }

    fn store(&self) -> &DynStore {
        &self.store
    }

    fn locks(&self) -> &MaildropLocks {
        &self.locks
    }

    fn login_times(&self) -> &LoginTimes {
        &self.login_times
    }
}
