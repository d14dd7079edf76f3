//! A protocol login: the shared throttle's admission, the delay, the password check, and the
//! bookkeeping of failures, successes and bans — the same for SMTP, IMAP and POP3.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use net::throttle::{Admission, LoginThrottle, NewBan, Source, Success};

use crate::{AccountRecord, AuthError, Directory};

/// How a login attempt ended.
#[derive(Debug)]
pub enum LoginOutcome {
    Ok(AccountRecord),
    /// Wrong password, unknown user, disabled account, or refused without a check (a ban): one
    /// answer for all.
    Failed,
    /// The password is right, but the source is banned: tell the owner to wait `retry_after`.
    /// Only a source that has logged in to this account before gets this (see `docs/config.md`).
    Held {
        retry_after: Duration,
    },
    /// Storage failed: answer with a temporary error.
    Unavailable,
}

impl Directory {
    /// Checks a login for `protocol` ("smtp", "imap", "pop3") from `peer` (loopback when unknown,
    /// e.g. a Unix socket), through the shared login throttle. Bans it starts and sources it
    /// learns are recorded in the store in the background.
    pub async fn login(
        &self,
        throttle: &Arc<LoginThrottle>,
        protocol: &str,
        peer: Option<IpAddr>,
        user: &str,
        password: &str,
    ) -> LoginOutcome {
        let ip = peer.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let account = self.login_key(user);
        let wait_until = tokio::time::Instant::now() + throttle.config().admission_wait;
        let attempt = loop {
            let released = throttle.released();
            tokio::pin!(released);
            released.as_mut().enable();
            match throttle.admit(protocol, ip, &account, user) {
                Admission::Proceed(a) => break a,
                Admission::Refuse(_) => return LoginOutcome::Failed,
                Admission::Wait => {
                    if tokio::time::timeout_at(wait_until, released).await.is_err() {
                        return LoginOutcome::Failed;
                    }
                }
            }
        };
        if !attempt.delay().is_zero() {
            tokio::time::sleep(attempt.delay()).await;
        }
        match self.authenticate(user, password).await {
            Ok(record) => match attempt.succeeded() {
                Success::Granted { record_source } => {
                    if record_source {
                        let keep = throttle.config().max_known_sources;
                        self.record_source(account, Source::of(ip), keep);
                    }
                    LoginOutcome::Ok(record)
                }
                Success::Held { remaining } => LoginOutcome::Held {
                    retry_after: remaining,
                },
            },
            Err(AuthError::Invalid) => {
                let started = attempt.failed(protocol, user);
                for ban in started {
                    self.record_ban(throttle.clone(), ban);
                }
                LoginOutcome::Failed
            }
            Err(AuthError::Unavailable(e)) => {
                // The attempt ends without counting: the client did nothing wrong.
                drop(attempt);
                tracing::warn!(protocol, error = %e, "authentication unavailable");
                LoginOutcome::Unavailable
            }
        }
    }

    /// The key a login is counted under: the normalised address it names, or else the name as
    /// sent, lowercased and made printable (it may end up in a ban that `facteur ban list` prints
    /// on an administrator's terminal).
    pub fn login_key(&self, user: &str) -> String {
        match self.login_address(user) {
            Some(a) => a.to_string(),
            None => net::throttle::sanitize_user(&user.to_lowercase()),
        }
    }

    fn record_source(&self, account: String, source: Source, keep: usize) {
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store
                .login_source_record(&account, &source.to_string(), store::now_unix(), keep)
                .await
            {
                tracing::warn!(account = %account, source = %source, error = %e, "cannot record a login source");
            }
        });
    }

    fn record_ban(&self, throttle: Arc<LoginThrottle>, ban: NewBan) {
        let store = self.store.clone();
        tokio::spawn(async move {
            let record = crate::login_sync::new_ban_record(&ban, store::now_unix());
            match store.ban_add(&record).await {
                Ok(r) => throttle.ban_recorded(&ban.key, ban.serial, r.id),
                Err(e) => {
                    tracing::error!(ban = %ban.key, error = %e, "cannot record a login ban: `facteur ban` will not show it")
                }
            }
        });
    }
}
