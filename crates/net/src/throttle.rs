//! Login throttling shared by every protocol: a growing delay after failed logins, a temporary ban of
//! an IP that keeps failing, and a ban of an account guessed at from many IPs.
//!
//! Each failure is logged once at WARN in a fixed format that fail2ban can match (see
//! `docs/fail2ban.md`), so an operator can also ban at the firewall.
//!
//! Failures are counted per IP and per account. A count is forgotten after `window` without a new
//! failure (a slow guesser still reaches the limit), and a ban lasts `ban`. IPv6 clients are counted
//! per /64, the smallest block one subscriber usually holds, so rotating addresses inside it does not
//! help. Memory is bounded: each table holds at most `max_entries`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

/// Default failures from one IP (or IPv6 /64) within the window before it is banned.
pub const DEFAULT_MAX_FAILURES_PER_IP: u32 = 10;
/// Default failures on one account, from any IPs, within the window before it is banned.
pub const DEFAULT_MAX_FAILURES_PER_ACCOUNT: u32 = 20;
pub const DEFAULT_BASE_DELAY: Duration = Duration::from_millis(500);
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(8);
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(15 * 60);
pub const DEFAULT_BAN: Duration = Duration::from_secs(60 * 60);
/// Default bound on tracked IPs, and separately on tracked accounts.
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;
/// Longest user name kept in a log line or used as a key, in characters.
pub const MAX_LOGGED_USER_LEN: usize = 64;
/// When a table is full and nothing has expired, this fraction (1/n) of the oldest entries goes.
const EVICT_FRACTION: usize = 8;

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
    /// Bound on entries in each table (IPs, accounts).
    pub max_entries: usize,
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
        }
    }
}

/// What to do with a login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead, after waiting `delay` (zero when there were no recent failures).
    Allow { delay: Duration },
    /// Refuse without checking the password, for `remaining`.
    Banned { remaining: Duration },
}

/// Source of the current time (injectable for tests).
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    banned_until: Option<Instant>,
}

impl Entry {
    fn banned_at(&self, now: Instant) -> Option<Duration> {
        self.banned_until
            .filter(|&until| until > now)
            .map(|until| until - now)
    }
    /// Neither counting nor banning anything any more.
    fn expired(&self, now: Instant, window: Duration) -> bool {
        self.banned_at(now).is_none() && now.saturating_duration_since(self.last_failure) >= window
    }
}

struct Tables {
    ips: HashMap<IpAddr, Entry>,
    accounts: HashMap<String, Entry>,
    /// Expired entries are swept once per window, so idle memory is returned without a full table.
    last_sweep: Instant,
}

/// Thread-safe login throttle; share it between protocols with an `Arc`.
pub struct LoginThrottle {
    /// Replaceable at run time (a config reload); the tables stay.
    config: RwLock<ThrottleConfig>,
    clock: Clock,
    tables: Mutex<Tables>,
}

impl LoginThrottle {
    pub fn new(config: ThrottleConfig) -> LoginThrottle {
        LoginThrottle::with_clock(config, Arc::new(Instant::now))
    }

    pub fn with_clock(config: ThrottleConfig, clock: Clock) -> LoginThrottle {
        let tables = Tables {
            ips: HashMap::new(),
            accounts: HashMap::new(),
            last_sweep: clock(),
        };
        LoginThrottle {
            config: RwLock::new(config),
            clock,
            tables: Mutex::new(tables),
        }
    }

    pub fn config(&self) -> ThrottleConfig {
        match self.config.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// New settings from now on (a config reload); failures counted and bans given stay.
    pub fn set_config(&self, config: ThrottleConfig) {
        match self.config.write() {
            Ok(mut c) => *c = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
    }

    /// Whether a login from `ip` (for `user`, when already known) may proceed, and after what delay.
    pub fn check(&self, ip: IpAddr, user: Option<&str>) -> Verdict {
        let now = (self.clock)();
        let t = self.lock();
        let ip_entry = self.live(t.ips.get(&ip_key(ip)), now);
        let account_entry = user.and_then(|u| self.live(t.accounts.get(&account_key(u)), now));
        let banned = [ip_entry, account_entry]
            .into_iter()
            .flatten()
            .filter_map(|e| e.banned_at(now))
            .max();
        if let Some(remaining) = banned {
            return Verdict::Banned { remaining };
        }
        let failures = [ip_entry, account_entry]
            .into_iter()
            .flatten()
            .map(|e| e.failures)
            .max()
            .unwrap_or(0);
        Verdict::Allow {
            delay: self.delay(failures),
        }
    }

    /// Counts a failed login and logs it (one WARN line, see [`failure_line`]). Returns the verdict
    /// for the next attempt from this IP for this user.
    pub fn record_failure(&self, protocol: &str, ip: IpAddr, user: &str) -> Verdict {
        let now = (self.clock)();
        let config = self.config();
        let ip_failures = {
            let mut t = self.lock();
            if now.saturating_duration_since(t.last_sweep) >= config.window {
                let window = config.window;
                t.ips.retain(|_, e| !e.expired(now, window));
                t.accounts.retain(|_, e| !e.expired(now, window));
                t.last_sweep = now;
            }
            let ip_failures = bump(
                &mut t.ips,
                ip_key(ip),
                now,
                &config,
                config.max_failures_per_ip,
            );
            bump(
                &mut t.accounts,
                account_key(user),
                now,
                &config,
                config.max_failures_per_account,
            );
            ip_failures
        };
        tracing::warn!("{}", failure_line(protocol, ip, user, ip_failures));
        self.check(ip, Some(user))
    }

    /// A successful login clears the failures of its account and of its IP.
    pub fn record_success(&self, ip: IpAddr, user: &str) {
        let mut t = self.lock();
        t.ips.remove(&ip_key(ip));
        t.accounts.remove(&account_key(user));
    }

    /// Number of tracked IPs and accounts (for metrics).
    pub fn tracked(&self) -> (usize, usize) {
        let t = self.lock();
        (t.ips.len(), t.accounts.len())
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        // The tables stay consistent even if a holder panicked: every update is a single insert.
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn live<'a>(&self, e: Option<&'a Entry>, now: Instant) -> Option<&'a Entry> {
        let window = self.config().window;
        e.filter(|e| !e.expired(now, window))
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

/// Adds a failure to `key`'s entry, banning it at `limit`; returns its failure count.
fn bump<K: std::hash::Hash + Eq + Clone>(
    table: &mut HashMap<K, Entry>,
    key: K,
    now: Instant,
    config: &ThrottleConfig,
    limit: u32,
) -> u32 {
    if !table.contains_key(&key) && table.len() >= config.max_entries {
        make_room(table, now, config);
    }
    let entry = table.entry(key).or_insert(Entry {
        failures: 0,
        last_failure: now,
        banned_until: None,
    });
    if entry.expired(now, config.window) {
        *entry = Entry {
            failures: 0,
            last_failure: now,
            banned_until: None,
        };
    }
    entry.failures = entry.failures.saturating_add(1);
    entry.last_failure = now;
    if entry.failures >= limit && entry.banned_until.is_none() {
        entry.banned_until = Some(now + config.ban);
    }
    entry.failures
}

/// Drops expired entries; if the table is still full, drops the oldest eighth, unbanned entries
/// first (so a flood of new IPs cannot flush the bans). Amortised O(1) per insert.
fn make_room<K: std::hash::Hash + Eq + Clone>(
    table: &mut HashMap<K, Entry>,
    now: Instant,
    config: &ThrottleConfig,
) {
    table.retain(|_, e| !e.expired(now, config.window));
    if table.len() < config.max_entries {
        return;
    }
    let mut ages: Vec<((bool, Instant), K)> = table
        .iter()
        .map(|(k, e)| ((e.banned_at(now).is_some(), e.last_failure), k.clone()))
        .collect();
    let n = (table.len() / EVICT_FRACTION).max(1).min(ages.len());
    ages.select_nth_unstable_by_key(n - 1, |(age, _)| *age);
    for (_, k) in ages.into_iter().take(n) {
        table.remove(&k);
    }
}

// IPv4 (and IPv4-mapped IPv6) addresses as they are; other IPv6 addresses by their /64: the
// key the connection limits count by too.
use crate::ip::client_key as ip_key;

/// Accounts are counted case-insensitively, as the directory matches them, with a bounded key.
fn account_key(user: &str) -> String {
    user.chars()
        .take(4 * MAX_LOGGED_USER_LEN)
        .flat_map(char::to_lowercase)
        .collect()
}

/// A user name safe to log: printable ASCII without spaces (anything else becomes `?`), at most
/// [`MAX_LOGGED_USER_LEN`] characters, so a client cannot forge log lines or fields.
pub fn sanitize_user(user: &str) -> String {
    user.chars()
        .take(MAX_LOGGED_USER_LEN)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

/// The log line of one failed login, matched by the fail2ban filter in `docs/fail2ban.md`:
/// `auth failure: protocol=<p> ip=<ip> user=<u> failures=<n>`.
pub fn failure_line(protocol: &str, ip: IpAddr, user: &str, failures: u32) -> String {
    format!(
        "auth failure: protocol={} ip={ip} user={} failures={failures}",
        sanitize_user(protocol),
        sanitize_user(user)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    struct ManualClock(Arc<Mutex<Instant>>);

    impl ManualClock {
        fn advance(&self, d: Duration) {
            *self.0.lock().unwrap() += d;
        }
    }

    fn throttle(config: ThrottleConfig) -> (LoginThrottle, ManualClock) {
        let now = Arc::new(Mutex::new(Instant::now()));
        let c = now.clone();
        let t = LoginThrottle::with_clock(config, Arc::new(move || *c.lock().unwrap()));
        (t, ManualClock(now))
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, n))
    }

    fn allow(ms: u64) -> Verdict {
        Verdict::Allow {
            delay: Duration::from_millis(ms),
        }
    }

    #[test]
    fn delay_grows_and_is_capped() {
        let (t, _) = throttle(ThrottleConfig {
            max_failures_per_ip: 100,
            max_failures_per_account: 100,
            ..Default::default()
        });
        assert_eq!(t.check(ip(1), None), allow(0));
        let expected = [500, 1000, 2000, 4000, 8000, 8000, 8000];
        for ms in expected {
            assert_eq!(
                t.record_failure("imap", ip(1), "bob@example.com"),
                allow(ms)
            );
            assert_eq!(t.check(ip(1), None), allow(ms));
        }
        // Another IP guessing the same account waits as long; an unrelated login does not.
        assert_eq!(t.check(ip(2), Some("BOB@example.com")), allow(8000));
        assert_eq!(t.check(ip(2), Some("carol@example.com")), allow(0));
        assert_eq!(t.delay(u32::MAX), DEFAULT_MAX_DELAY);
    }

    #[test]
    fn ip_banned_after_limit() {
        let (t, clock) = throttle(ThrottleConfig::default());
        for i in 0..DEFAULT_MAX_FAILURES_PER_IP - 1 {
            assert!(matches!(
                t.record_failure("smtp", ip(1), &format!("user{i}")),
                Verdict::Allow { .. }
            ));
        }
        let v = t.record_failure("smtp", ip(1), "last");
        assert_eq!(
            v,
            Verdict::Banned {
                remaining: DEFAULT_BAN
            }
        );
        assert!(matches!(
            t.check(ip(1), Some("innocent")),
            Verdict::Banned { .. }
        ));
        assert_eq!(t.check(ip(2), Some("user0")), allow(500));
        clock.advance(DEFAULT_BAN - Duration::from_secs(1));
        assert_eq!(
            t.check(ip(1), None),
            Verdict::Banned {
                remaining: Duration::from_secs(1)
            }
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(t.check(ip(1), None), allow(0));
    }

    #[test]
    fn new_settings_apply_and_counts_stay() {
        let (t, _) = throttle(ThrottleConfig::default());
        t.record_failure("smtp", ip(1), "a");
        assert_eq!(t.check(ip(1), None), allow(500));
        t.set_config(ThrottleConfig {
            max_failures_per_ip: 2,
            base_delay: Duration::from_millis(100),
            ..ThrottleConfig::default()
        });
        assert_eq!(t.config().max_failures_per_ip, 2);
        assert_eq!(
            t.check(ip(1), None),
            allow(100),
            "the failure counted stays"
        );
        t.record_failure("smtp", ip(1), "b");
        assert!(matches!(t.check(ip(1), None), Verdict::Banned { .. }));
    }

    #[test]
    fn ipv6_counted_per_64() {
        let (t, _) = throttle(ThrottleConfig {
            max_failures_per_ip: 2,
            ..Default::default()
        });
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        t.record_failure("imap", a, "x");
        t.record_failure("imap", b, "y");
        assert!(matches!(t.check(a, None), Verdict::Banned { .. }));
        assert_eq!(t.check(other, None), allow(0));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(ip_key(mapped), ip(7));
    }

    #[test]
    fn account_banned_across_ips() {
        let (t, _) = throttle(ThrottleConfig {
            max_failures_per_account: 5,
            ..Default::default()
        });
        for n in 1..=5 {
            t.record_failure("pop3", ip(n), "Victim@example.com");
        }
        // The account is banned from every IP, the IPs only for that account.
        assert!(matches!(
            t.check(ip(1), Some("victim@example.com")),
            Verdict::Banned { .. }
        ));
        assert!(matches!(
            t.check(ip(99), Some("victim@example.com")),
            Verdict::Banned { .. }
        ));
        assert_eq!(t.check(ip(99), Some("other@example.com")), allow(0));
        assert_eq!(t.check(ip(1), Some("other@example.com")), allow(500));
        assert_eq!(t.check(ip(99), None), allow(0));
    }

    #[test]
    fn window_expiry() {
        let (t, clock) = throttle(ThrottleConfig::default());
        for _ in 0..3 {
            t.record_failure("imap", ip(1), "bob");
        }
        assert_eq!(t.check(ip(1), Some("bob")), allow(2000));
        // Each failure restarts the window.
        clock.advance(DEFAULT_WINDOW - Duration::from_secs(1));
        assert_eq!(t.record_failure("imap", ip(1), "bob"), allow(4000));
        clock.advance(DEFAULT_WINDOW - Duration::from_secs(1));
        assert_eq!(t.check(ip(1), Some("bob")), allow(4000));
        clock.advance(Duration::from_secs(1));
        assert_eq!(t.check(ip(1), Some("bob")), allow(0));
        // Counting starts again from one.
        assert_eq!(t.record_failure("imap", ip(1), "bob"), allow(500));
    }

    #[test]
    fn success_clears() {
        let (t, _) = throttle(ThrottleConfig::default());
        for _ in 0..4 {
            t.record_failure("imap", ip(1), "bob");
        }
        t.record_failure("imap", ip(2), "bob");
        // Five failures on the account: 500 ms doubled four times.
        assert_eq!(t.check(ip(2), Some("bob")), allow(8000));
        t.record_success(ip(1), "BOB");
        assert_eq!(t.check(ip(1), Some("bob")), allow(0));
        // The other IP keeps its own count.
        assert_eq!(t.check(ip(2), None), allow(500));
        assert_eq!(t.tracked(), (1, 0));
    }

    #[test]
    fn memory_is_bounded() {
        let max = 1000;
        let (t, clock) = throttle(ThrottleConfig {
            max_entries: max,
            max_failures_per_ip: 2,
            ..Default::default()
        });
        // A banned IP survives a flood of new ones.
        t.record_failure("smtp", ip(1), "a");
        t.record_failure("smtp", ip(1), "a");
        for n in 0..10_000u32 {
            let addr = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
            t.record_failure("smtp", addr, &format!("user{n}"));
            let (ips, accounts) = t.tracked();
            assert!(ips <= max && accounts <= max, "{ips} {accounts}");
        }
        assert!(matches!(t.check(ip(1), None), Verdict::Banned { .. }));
        // Expired entries are swept once a window has passed.
        clock.advance(DEFAULT_WINDOW);
        t.record_failure("smtp", ip(3), "fresh");
        assert_eq!(t.tracked(), (2, 1));
    }

    #[test]
    fn log_line_is_sanitized() {
        assert_eq!(sanitize_user("bob@example.com"), "bob@example.com");
        assert_eq!(
            sanitize_user("a b\r\nauth failure: ip=1.2.3.4"),
            "a?b??auth?failure:?ip=1.2.3.4"
        );
        assert_eq!(sanitize_user("élodie"), "?lodie");
        assert_eq!(sanitize_user(&"x".repeat(500)).len(), MAX_LOGGED_USER_LEN);
    }

    /// Matches the fail2ban filter `auth failure: protocol=\S+ ip=<HOST> user=` by hand, since the
    /// `regex` crate is not a dependency: the literal prefix, a non-space protocol, a parseable IP.
    fn matches_filter(line: &str) -> Option<IpAddr> {
        let rest = line.strip_prefix("auth failure: protocol=")?;
        let (protocol, rest) = rest.split_once(' ')?;
        if protocol.is_empty() || protocol.chars().any(char::is_whitespace) {
            return None;
        }
        let rest = rest.strip_prefix("ip=")?;
        let (host, rest) = rest.split_once(' ')?;
        rest.starts_with("user=").then_some(())?;
        // Exactly one `user=` after the host, and no line break: nothing for a second match to use.
        if line.contains('\n') || line.contains('\r') || line.matches("auth failure:").count() != 1
        {
            return None;
        }
        host.parse().ok()
    }

    #[test]
    fn failure_line_matches_fail2ban_filter() {
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        for (addr, user) in [
            (ip(7), "bob@example.com"),
            (v6, "évil user\nauth failure: protocol=x ip=10.0.0.1 user="),
        ] {
            let line = failure_line("imap", addr, user, 3);
            assert_eq!(matches_filter(&line), Some(addr), "{line}");
            assert!(line.ends_with(" failures=3"), "{line}");
        }
        assert_eq!(
            failure_line("smtp", ip(7), "Bob", 1),
            "auth failure: protocol=smtp ip=192.0.2.7 user=Bob failures=1"
        );
    }
}
