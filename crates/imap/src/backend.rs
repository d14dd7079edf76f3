//! What the IMAP state machine needs from the rest of the server: logins (through the directory
//! and the shared login throttle), the mail store, and quotas.

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use directory::{Directory, LoginOutcome};
use net::limits::UserSessions;
use net::throttle::LoginThrottle;
use store::{AccountId, DynStore, MailboxId, SpamClass, Uid};

/// An authenticated user of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    pub account_id: AccountId,
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    Ok(AuthUser),
    /// Wrong credentials, unknown user, or refused without a check (banned): one answer for all.
    Failed,
    /// The password is right but the client's address is banned: wait `retry_after`.
    Held {
        retry_after: std::time::Duration,
    },
    Unavailable,
}

/// Learning from what users do (implemented by the binary over the content classifier, so this
/// crate depends on no filter): a message filed into Junk is spam, one taken out of Junk (to
/// anything but Trash) is ham. Called after the COPY or MOVE succeeded, before its reply, with
/// the messages' new place; a failure is the learner's to log, never the client's.
#[async_trait]
pub trait Learner: Send + Sync {
    async fn learn(&self, account: AccountId, mailbox: MailboxId, uids: &[Uid], class: SpamClass);
}

#[async_trait]
pub trait Backend: Send + Sync {
    async fn authenticate(&self, peer: Option<IpAddr>, user: &str, password: &str) -> AuthOutcome;
    fn store(&self) -> &DynStore;
    /// Whether storing `messages` more messages of `bytes` bytes in all would exceed the
    /// account's quota.
    async fn over_quota(&self, account: AccountId, bytes: u64, messages: u64) -> bool;
    /// The count of logged-in sessions per user, when there is a limit on it.
    fn user_sessions(&self) -> Option<&UserSessions> {
        None
    }
    /// Who learns from messages moved into and out of Junk, if anyone.
    fn learner(&self) -> Option<&dyn Learner> {
        None
    }
}

/// The real backend: store, directory and the login throttle shared with the other protocols.
pub struct MailBackend {
    pub store: DynStore,
    pub directory: Directory,
    pub throttle: Arc<LoginThrottle>,
    /// Logged-in sessions per user (`limits.max_connections_per_user`).
    pub user_sessions: UserSessions,
    /// Learning from moves into and out of Junk.
    pub learner: Option<Arc<dyn Learner>>,
}

#[async_trait]
impl Backend for MailBackend {
    async fn authenticate(&self, peer: Option<IpAddr>, user: &str, password: &str) -> AuthOutcome {
        match self
            .directory
            .login(&self.throttle, "imap", peer, user, password)
            .await
        {
            LoginOutcome::Ok(acc) => AuthOutcome::Ok(AuthUser {
                account_id: acc.id,
                address: acc.address(),
            }),
            // A banned client gets the ordinary failure: nothing tells it the password was not tried.
            LoginOutcome::Failed => AuthOutcome::Failed,
            LoginOutcome::Held { retry_after } => AuthOutcome::Held { retry_after },
            LoginOutcome::Unavailable => AuthOutcome::Unavailable,
        }
    }

    fn store(&self) -> &DynStore {
        &self.store
    }

    fn user_sessions(&self) -> Option<&UserSessions> {
        Some(&self.user_sessions)
    }

    fn learner(&self) -> Option<&dyn Learner> {
        self.learner.as_deref()
    }

    async fn over_quota(&self, account: AccountId, bytes: u64, messages: u64) -> bool {
        let Ok(Some(acc)) = self.store.account_get_by_id(account).await else {
            return false;
        };
        let Ok(usage) = self.store.quota_usage(account).await else {
            return false;
        };
        acc.quota_bytes.is_some_and(|q| usage.bytes + bytes > q)
            || acc
                .quota_messages
                .is_some_and(|q| usage.messages + messages > q)
    }
}
