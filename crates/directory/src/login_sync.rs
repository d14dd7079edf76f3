//! Keeps the login throttle and the store in step. At start, the bans in force and the sources
//! accounts logged in from are loaded; then, every [`SYNC_INTERVAL`], the store's ban changes are
//! applied (lifts by `facteur ban remove`, which runs in another process; bans made by another
//! server sharing the store), expired bans are ended (one log line each), and long-ended bans are
//! purged from the store.

use std::sync::Arc;
use std::time::Duration;

use net::throttle::{BanKey, LoginThrottle, NewBan, Source};
use store::{DynStore, LoginBanRecord, NewLoginBan, StoreError};

/// How often the store is asked for ban changes: the delay before a running server applies
/// `facteur ban remove`.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(2);
/// How often bans that ended long ago are purged from the store.
const PURGE_INTERVAL: Duration = Duration::from_secs(60 * 60);
/// How long an ended ban stays in the store (for servers that were not running when it ended).
const BAN_HISTORY: Duration = Duration::from_secs(24 * 60 * 60);
/// Ban changes read per query.
const PAGE: usize = 1000;

/// The store's form of a ban this process started at `now` (unix seconds).
pub fn new_ban_record(ban: &NewBan, now: i64) -> NewLoginBan {
    let (source, account) = match &ban.key {
        BanKey::Source(s) => (Some(s.to_string()), None),
        BanKey::Account(a) => (None, Some(a.clone())),
    };
    NewLoginBan {
        source,
        account,
        failures: ban.failures,
        created: now,
        until: now.saturating_add(i64::try_from(ban.duration.as_secs()).unwrap_or(i64::MAX)),
    }
}

/// What a stored ban refuses, if the row makes sense.
pub fn ban_key(r: &LoginBanRecord) -> Option<BanKey> {
    match (&r.source, &r.account) {
        (Some(s), None) => Source::parse(s).map(BanKey::Source),
        (None, Some(a)) => Some(BanKey::Account(a.clone())),
        _ => None,
    }
}

struct Sync {
    store: DynStore,
    throttle: Arc<LoginThrottle>,
    /// Position of the last ban change applied.
    seq: i64,
    last_purge: Option<tokio::time::Instant>,
}

/// Loads the store's bans and known sources into `throttle`, then keeps following the store in a
/// background task (for the life of the process).
pub async fn start(
    store: DynStore,
    throttle: Arc<LoginThrottle>,
) -> Result<tokio::task::JoinHandle<()>, StoreError> {
    for r in store.login_sources().await? {
        match Source::parse(&r.source) {
            Some(s) => throttle.remember_source(&r.account, s),
            None => {
                tracing::warn!(source = %r.source, "ignoring a malformed login source in the store")
            }
        }
    }
    let mut sync = Sync {
        store,
        throttle,
        seq: 0,
        last_purge: None,
    };
    sync.step().await?;
    Ok(tokio::spawn(async move {
        let mut tick = tokio::time::interval(SYNC_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = sync.step().await {
                tracing::warn!(error = %e, "cannot read login bans from the store");
            }
        }
    }))
}

impl Sync {
    async fn step(&mut self) -> Result<(), StoreError> {
        loop {
            let changes = self.store.bans_changed_since(self.seq, PAGE).await?;
            let now = store::now_unix();
            for r in &changes {
                self.apply(r, now);
                self.seq = self.seq.max(r.seq);
            }
            if changes.len() < PAGE {
                break;
            }
        }
        self.throttle.expire();
        let due = self
            .last_purge
            .is_none_or(|t| t.elapsed() >= PURGE_INTERVAL);
        if due {
            self.last_purge = Some(tokio::time::Instant::now());
            let before = store::now_unix()
                .saturating_sub(i64::try_from(BAN_HISTORY.as_secs()).unwrap_or(i64::MAX));
            self.store.bans_purge(before).await?;
        }
        Ok(())
    }

    fn apply(&self, r: &LoginBanRecord, now: i64) {
        let Some(key) = ban_key(r) else {
            tracing::warn!(id = r.id, "ignoring a malformed login ban in the store");
            return;
        };
        if r.lifted.is_some() {
            self.throttle.lift(&key, r.id);
        } else if r.until > now {
            let left = Duration::from_secs(u64::try_from(r.until - now).unwrap_or(0));
            self.throttle.install_ban(key, r.id, r.failures, left);
        }
    }
}
