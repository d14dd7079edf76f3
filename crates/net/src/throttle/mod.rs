//! Login throttling shared by every protocol: slow guessers down, ban the sources that keep failing,
//! and never lock an account's owner out because somebody else guesses at it.
//!
//! What is counted, over `window` (a count is forgotten after that long without a new failure):
//! - per **source** (an IPv4 address, or an IPv6 /64: the smallest block one subscriber usually
//!   holds, so rotating addresses inside it does not help): every failed login. At
//!   `max_failures_per_ip` the source is banned for `ban`: refused for every account without a
//!   password check.
//! - per **(account, source)** pair: the failures of that source on that account. They set the
//!   delay before the next check (doubling from `base_delay` up to `max_delay`). A success clears
//!   this pair only: an attacker's logins to its own account do not clear its count elsewhere.
//! - per **account**: failures from sources that never logged in to it successfully. At
//!   `max_failures_per_account` the account is banned *for unknown sources*; they also wait as long
//!   as these failures say. The sources that did log in to it before (its *known* sources, at most
//!   `max_known_sources` per account) are neither slowed nor refused by others' failures.
//!
//! Attempts in flight count: an attempt reserves its place before the password is checked and
//! gives it back when it ends, so a client opening many connections at once gets no more checks
//! than one sending them in turn (the extra attempts wait for the first ones, then see the ban).
//!
//! A banned source that is known to an account is not refused outright for that account: its
//! password is still checked (at most `max_failures_per_ip` wrong ones per ban), and a right one
//! gets [`Success::Held`], which the protocols turn into "try again in N minutes". Telling that
//! apart from a wrong password is only an oracle for somebody who already logged in from there.
//!
//! Each failure is logged once at WARN in a fixed format that fail2ban can match (see
//! `docs/fail2ban.md`); each ban and each end of a ban is one line too. Bans are kept by the caller
//! in the store (see `directory::login_sync`), so the admin CLI can list and lift them. Memory is
//! bounded: each table holds at most `max_entries`.

mod log;
mod tables;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use log::{BanEnd, BanOrigin, failure_line, login_success, sanitize_user};
use tables::Tables;

/// Default failures from one source within the window before it is banned.
pub const DEFAULT_MAX_FAILURES_PER_IP: u32 = 10;
/// Default failures on one account from sources unknown to it, within the window, before those
/// sources are refused for it.
pub const DEFAULT_MAX_FAILURES_PER_ACCOUNT: u32 = 20;
pub const DEFAULT_BASE_DELAY: Duration = Duration::from_millis(500);
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(8);
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(15 * 60);
pub const DEFAULT_BAN: Duration = Duration::from_secs(60 * 60);
/// Default bound on each table (sources, accounts, pairs, bans, accounts with known sources).
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;
/// Sources remembered per account as having logged in to it successfully.
pub const DEFAULT_MAX_KNOWN_SOURCES: usize = 16;
/// Longest an attempt waits for attempts in flight from the same source to end; it is then refused.
pub const DEFAULT_ADMISSION_WAIT: Duration = Duration::from_secs(30);
/// A known source already recorded is recorded again (its time refreshed) after this long.
pub const KNOWN_SOURCE_REFRESH: Duration = Duration::from_secs(24 * 60 * 60);
/// Longest user name kept in a log line or used as a key, in characters.
pub const MAX_LOGGED_USER_LEN: usize = 64;
/// Bits of an IPv6 address that identify one client.
const IPV6_PREFIX_BITS: u32 = crate::ip::IPV6_CLIENT_PREFIX_BITS;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleConfig {
    pub max_failures_per_ip: u32,
    pub max_failures_per_account: u32,
    /// Delay after the first failure; it doubles with each further failure.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A failure count is forgotten after this long without a new failure.
    pub window: Duration,
    pub ban: Duration,
    /// Bound on entries in each table.
    pub max_entries: usize,
    pub max_known_sources: usize,
    pub admission_wait: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            max_failures_per_ip: DEFAULT_MAX_FAILURES_PER_IP,
            max_failures_per_account: DEFAULT_MAX_FAILURES_PER_ACCOUNT,
            base_delay: DEFAULT_BASE_DELAY,
            max_delay: DEFAULT_MAX_DELAY,
            window: DEFAULT_WINDOW,
            ban: DEFAULT_BAN,
            max_entries: DEFAULT_MAX_ENTRIES,
            max_known_sources: DEFAULT_MAX_KNOWN_SOURCES,
            admission_wait: DEFAULT_ADMISSION_WAIT,
        }
    }
}

/// Where a login comes from, as counted: an IPv4 address (IPv4-mapped IPv6 too), or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Source(IpAddr);

impl Source {
    /// The same key the connection limits count by (`crate::ip::client_key`).
    pub fn of(ip: IpAddr) -> Source {
        Source(crate::ip::client_key(ip))
    }

    /// An address (`203.0.113.9`, `2001:db8::1`) or the source's own form (`2001:db8::/64`).
    pub fn parse(s: &str) -> Option<Source> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let ip: IpAddr = addr.parse().ok()?;
        match (ip, prefix) {
            (_, None) => Some(Source::of(ip)),
            (IpAddr::V6(_), Some(p)) if p == IPV6_PREFIX_BITS.to_string() => Some(Source::of(ip)),
            _ => None,
        }
    }

    /// Whether `ip` belongs to this source.
    pub fn contains(&self, ip: IpAddr) -> bool {
        Source::of(ip) == *self
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/{IPV6_PREFIX_BITS}"),
        }
    }
}

/// What a ban refuses: a source (for every account), or an account (to its unknown sources).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BanKey {
    Source(Source),
    Account(String),
}

impl fmt::Display for BanKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BanKey::Source(s) => write!(f, "{s}"),
            BanKey::Account(a) => write!(f, "{a}"),
        }
    }
}

/// A ban that this process just started; the caller records it in the store, then calls
/// [`LoginThrottle::ban_recorded`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBan {
    pub key: BanKey,
    pub failures: u32,
    pub duration: Duration,
    /// Identifies this ban in this process until it has a store id.
    pub serial: u64,
}

/// A ban that ended (expired, or lifted by an administrator), already logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndedBan {
    pub key: BanKey,
    pub id: Option<i64>,
    pub failures: u32,
    /// Attempts refused during the ban.
    pub refused: u64,
    pub end: BanEnd,
}

/// A ban in force, as [`LoginThrottle::bans`] lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanView {
    pub key: BanKey,
    pub id: Option<i64>,
    pub failures: u32,
    pub remaining: Duration,
    pub refused: u64,
}

/// Why an attempt is refused without a password check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The source is banned (and not known to this account, or out of checks for it).
    Source,
    /// The account is banned for sources unknown to it.
    Account,
    /// The source (or account) has used up its checks without a ban in force here (its ban was
    /// evicted from a full table): refused until its count is forgotten.
    Busy,
}

/// The answer to [`LoginThrottle::admit`].
pub enum Admission<'a> {
    /// Check the password after [`Attempt::delay`], then end the attempt with
    /// [`Attempt::succeeded`] or [`Attempt::failed`] (dropping it ends it without counting).
    Proceed(Attempt<'a>),
    /// Refuse with the ordinary failure, without checking the password.
    Refuse(Refusal),
    /// Attempts in flight hold every remaining check of this source or account: wait for
    /// [`LoginThrottle::released`], then ask again.
    Wait,
}

/// How a successful password check ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Success {
    /// Logged in. `record_source`: the source is new to the account (or its record is old), so
    /// the caller should record it in the store.
    Granted { record_source: bool },
    /// The password is right, but the source is banned: the owner must wait `remaining`.
    Held { remaining: Duration },
}

/// Source of the current time (injectable for tests).
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// Which counters an attempt holds a place in.
#[derive(Debug, Clone, Copy, Default)]
struct Reserved {
    source: bool,
    account: bool,
    pair: bool,
}

/// One login attempt admitted by the throttle. Ends its reservation when dropped.
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    ip: IpAddr,
    source: Source,
    account: String,
    /// The source has logged in to this account before.
    known: bool,
    /// The source is banned and this is its owner check (see [`Success::Held`]).
    banned: bool,
    reserved: Reserved,
    delay: Duration,
    ended: bool,
}

impl Attempt<'_> {
    /// How long to wait before checking the password.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// The password was right.
    pub fn succeeded(mut self) -> Success {
        self.ended = true;
        let th = self.throttle;
        let now = th.now();
        let outcome = {
            let mut t = th.lock();
            th.release(&mut t, &self);
            t.pairs.remove(&(self.account.clone(), self.source));
            let record = t.remember(&self.account, self.source, now, th.config().max_entries);
            match t.ban_left(&BanKey::Source(self.source), now) {
                Some(remaining) if self.banned => Success::Held { remaining },
                _ => Success::Granted {
                    record_source: record,
                },
            }
        };
        th.released.notify_waiters();
        outcome
    }

    /// The password was wrong (or the user unknown, or the account disabled: all alike). Logs the
    /// failure line and returns the bans this failure started.
    pub fn failed(mut self, protocol: &str, user: &str) -> Vec<NewBan> {
        self.ended = true;
        let th = self.throttle;
        let cfg = &th.config();
        let now = th.now();
        let mut started = Vec::new();
        let source_failures = {
            let mut t = th.lock();
            th.release(&mut t, &self);
            t.sweep_if_due(now, cfg.window);
            let max = cfg.max_entries;
            let pair_failures = t
                .pair(&self.account, self.source, now, cfg.window, max)
                .fail(now);
            let source_failures = t.source(self.source, now, cfg.window, max).fail(now);
            let source_key = BanKey::Source(self.source);
            if self.banned {
                // An owner check that failed: once the source has used up its checks on this
                // account, it is refused here too until the ban ends.
                if pair_failures >= cfg.max_failures_per_ip
                    && let Some(until) = t.bans.get(&source_key).map(|b| b.until)
                {
                    t.pair(&self.account, self.source, now, cfg.window, max)
                        .blocked_until = Some(until);
                }
            } else {
                if source_failures >= cfg.max_failures_per_ip
                    && t.ban_left(&source_key, now).is_none()
                {
                    started.push(t.start_ban(source_key, source_failures, now, cfg));
                }
                if !self.known {
                    let account_failures = t.account(&self.account, now, cfg.window, max).fail(now);
                    let account_key = BanKey::Account(self.account.clone());
                    if account_failures >= cfg.max_failures_per_account
                        && t.ban_left(&account_key, now).is_none()
                    {
                        started.push(t.start_ban(account_key, account_failures, now, cfg));
                    }
                }
            }
            source_failures
        };
        log::failure(protocol, self.ip, user, source_failures);
        for b in &started {
            log::ban_started(&b.key, b.failures, b.duration, BanOrigin::Failures);
        }
        th.released.notify_waiters();
        started
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.ended {
            let mut t = self.throttle.lock();
            self.throttle.release(&mut t, self);
            drop(t);
            self.throttle.released.notify_waiters();
        }
    }
}

/// Thread-safe login throttle; share it between protocols with an `Arc`.
pub struct LoginThrottle {
    /// Replaceable at run time (a config reload); the tables stay.
    config: std::sync::RwLock<ThrottleConfig>,
    clock: Clock,
    tables: Mutex<Tables>,
    released: tokio::sync::Notify,
}

impl LoginThrottle {
    pub fn new(config: ThrottleConfig) -> LoginThrottle {
        LoginThrottle::with_clock(config, Arc::new(Instant::now))
    }

    pub fn with_clock(config: ThrottleConfig, clock: Clock) -> LoginThrottle {
        let tables = Tables::new(clock(), config.max_known_sources);
        LoginThrottle {
            config: std::sync::RwLock::new(config),
            clock,
            tables: Mutex::new(tables),
            released: tokio::sync::Notify::new(),
        }
    }

    pub fn config(&self) -> ThrottleConfig {
        match self.config.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// New settings from now on (a config reload); failures counted and bans given stay. The
    /// bound on known sources per account stays as the tables were made with.
    pub fn set_config(&self, config: ThrottleConfig) {
        match self.config.write() {
            Ok(mut c) => *c = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
    }

    /// Decides whether a login to `account` (as the directory normalises it) from `ip` may check
    /// its password. `protocol` and `user` (as sent) only go into the log.
    pub fn admit(&self, protocol: &str, ip: IpAddr, account: &str, user: &str) -> Admission<'_> {
        let cfg = &self.config();
        let now = self.now();
        let source = Source::of(ip);
        let account = account_key(account);
        let mut t = self.lock();
        let known = t.is_known(&account, source);
        let mut attempt = Attempt {
            throttle: self,
            ip,
            source,
            account: account.clone(),
            known,
            banned: false,
            reserved: Reserved::default(),
            delay: Duration::ZERO,
            ended: true,
        };
        let source_key = BanKey::Source(source);
        if t.ban_left(&source_key, now).is_some() {
            let (failures, in_flight, blocked) = t.pair_counts(&account, source, now, cfg.window);
            if !known || blocked || failures >= cfg.max_failures_per_ip {
                t.count_refusal(&source_key);
                drop(t);
                log::refused(protocol, ip, user, &source_key);
                return Admission::Refuse(Refusal::Source);
            }
            if failures + in_flight >= cfg.max_failures_per_ip {
                return Admission::Wait;
            }
            t.pair(&account, source, now, cfg.window, cfg.max_entries)
                .in_flight += 1;
            attempt.banned = true;
            attempt.reserved.pair = true;
            attempt.delay = self.delay(failures);
            attempt.ended = false;
            return Admission::Proceed(attempt);
        }
        let account_ban = BanKey::Account(account.clone());
        if !known && t.ban_left(&account_ban, now).is_some() {
            t.count_refusal(&account_ban);
            drop(t);
            log::refused(protocol, ip, user, &account_ban);
            return Admission::Refuse(Refusal::Account);
        }
        let (src_failures, src_in_flight, _) = t.source_counts(source, now, cfg.window);
        let (acc_failures, acc_in_flight, _) = if known {
            (0, 0, false)
        } else {
            t.account_counts(&account, now, cfg.window)
        };
        // Over a limit without a ban (its ban was evicted from a full table): refused until the
        // count is forgotten.
        if src_failures >= cfg.max_failures_per_ip
            || (!known && acc_failures >= cfg.max_failures_per_account)
        {
            return Admission::Refuse(Refusal::Busy);
        }
        if src_failures + src_in_flight >= cfg.max_failures_per_ip
            || (!known && acc_failures + acc_in_flight >= cfg.max_failures_per_account)
        {
            return Admission::Wait;
        }
        let (pair_failures, _, _) = t.pair_counts(&account, source, now, cfg.window);
        t.source(source, now, cfg.window, cfg.max_entries).in_flight += 1;
        attempt.reserved.source = true;
        if !known {
            t.account(&account, now, cfg.window, cfg.max_entries)
                .in_flight += 1;
            attempt.reserved.account = true;
        }
        attempt.delay = self.delay(pair_failures.max(acc_failures));
        attempt.ended = false;
        Admission::Proceed(attempt)
    }

    /// Completes when an attempt in flight ends: create it (and `enable` it) before calling
    /// [`LoginThrottle::admit`], so that a release in between is not missed.
    pub fn released(&self) -> tokio::sync::futures::Notified<'_> {
        self.released.notified()
    }

    /// Remembers that `account` logged in from `source` (loading the store's record at start).
    pub fn remember_source(&self, account: &str, source: Source) {
        let now = self.now();
        let mut t = self.lock();
        t.load_known(
            &account_key(account),
            source,
            now,
            self.config().max_entries,
        );
    }

    /// The store accepted the ban `serial` under `id`.
    pub fn ban_recorded(&self, key: &BanKey, serial: u64, id: i64) {
        let mut t = self.lock();
        if let Some(b) = t.bans.get_mut(key)
            && b.serial == serial
        {
            b.id = Some(id);
        }
    }

    /// Applies a ban read from the store (made before a restart, or by another server) with
    /// `remaining` time left. Returns whether it is new here (and logged).
    pub fn install_ban(&self, key: BanKey, id: i64, failures: u32, remaining: Duration) -> bool {
        let now = self.now();
        let installed = {
            let mut t = self.lock();
            t.install_ban(
                key.clone(),
                id,
                failures,
                now + remaining,
                now,
                self.config().max_entries,
            )
        };
        if installed {
            log::ban_started(&key, failures, remaining, BanOrigin::Store);
        }
        installed
    }

    /// Lifts the ban of `key` (an administrator removed the ban `id` from the store): its counts
    /// start again from zero. `None` when no such ban is in force here.
    pub fn lift(&self, key: &BanKey, id: i64) -> Option<EndedBan> {
        let ended = {
            let mut t = self.lock();
            let matches = t
                .bans
                .get(key)
                .is_some_and(|b| b.id.is_none_or(|own| own == id));
            if !matches {
                return None;
            }
            t.end_ban(key, BanEnd::Lifted)
        };
        if let Some(e) = &ended {
            log::ban_ended(&e.key, e.failures, e.refused, e.end);
        }
        self.released.notify_waiters();
        ended
    }

    /// Ends the bans whose time is up (logging each) and forgets idle counts. Call it every few
    /// seconds so that an expiry is logged when it happens.
    pub fn expire(&self) -> Vec<EndedBan> {
        let now = self.now();
        let ended = {
            let mut t = self.lock();
            let over: Vec<BanKey> = t
                .bans
                .iter()
                .filter(|(_, b)| b.until <= now)
                .map(|(k, _)| k.clone())
                .collect();
            let ended: Vec<EndedBan> = over
                .iter()
                .filter_map(|k| t.end_ban(k, BanEnd::Expired))
                .collect();
            t.sweep_if_due(now, self.config().window);
            ended
        };
        for e in &ended {
            log::ban_ended(&e.key, e.failures, e.refused, e.end);
        }
        ended
    }

    /// The bans in force, soonest end first.
    pub fn bans(&self) -> Vec<BanView> {
        let now = self.now();
        let t = self.lock();
        let mut v: Vec<BanView> = t
            .bans
            .iter()
            .filter(|(_, b)| b.until > now)
            .map(|(k, b)| BanView {
                key: k.clone(),
                id: b.id,
                failures: b.failures,
                remaining: b.until - now,
                refused: b.refused,
            })
            .collect();
        v.sort_by(|a, b| a.remaining.cmp(&b.remaining).then(a.id.cmp(&b.id)));
        v
    }

    /// Number of tracked sources, accounts, pairs, bans and accounts with known sources.
    pub fn tracked(&self) -> [usize; 5] {
        let t = self.lock();
        [
            t.sources.len(),
            t.accounts.len(),
            t.pairs.len(),
            t.bans.len(),
            t.known.len(),
        ]
    }

    fn now(&self) -> Instant {
        (self.clock)()
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        // The tables stay consistent even if a holder panicked: every update is a few field writes.
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn release(&self, t: &mut Tables, a: &Attempt<'_>) {
        if a.reserved.source
            && let Some(e) = t.sources.get_mut(&a.source)
        {
            e.in_flight = e.in_flight.saturating_sub(1);
        }
        if a.reserved.account
            && let Some(e) = t.accounts.get_mut(&a.account)
        {
            e.in_flight = e.in_flight.saturating_sub(1);
        }
        if a.reserved.pair
            && let Some(e) = t.pairs.get_mut(&(a.account.clone(), a.source))
        {
            e.in_flight = e.in_flight.saturating_sub(1);
        }
    }

    /// base * 2^(n-1), capped at max; zero without failures.
    fn delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let doublings = (failures - 1).min(31);
        let config = self.config();
        config
            .base_delay
            .saturating_mul(1u32 << doublings)
            .min(config.max_delay)
    }
}

/// Whole minutes left of `d`, rounded up, at least 1: for "try again in N minutes".
pub fn minutes_left(d: Duration) -> u64 {
    d.as_secs().div_ceil(60).max(1)
}

/// Accounts are counted case-insensitively, as the directory matches them, with a bounded key.
fn account_key(user: &str) -> String {
    user.chars()
        .take(4 * MAX_LOGGED_USER_LEN)
        .flat_map(char::to_lowercase)
        .collect()
}
