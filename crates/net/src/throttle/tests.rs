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

/// The delay of an admitted attempt (dropped without counting), or None when not admitted.
fn delay_of(t: &LoginThrottle, from: IpAddr, account: &str) -> Option<Duration> {
    match t.admit("imap", from, account, account) {
        Admission::Proceed(a) => Some(a.delay()),
        _ => None,
    }
}

fn ms(n: u64) -> Option<Duration> {
    Some(Duration::from_millis(n))
}

fn fail(t: &LoginThrottle, from: IpAddr, account: &str) -> Vec<NewBan> {
    match t.admit("imap", from, account, account) {
        Admission::Proceed(a) => a.failed("imap", account),
        Admission::Refuse(r) => panic!("refused ({r:?}) from {from} on {account}"),
        Admission::Wait => panic!("told to wait from {from} on {account}"),
    }
}

fn succeed(t: &LoginThrottle, from: IpAddr, account: &str) -> Success {
    match t.admit("imap", from, account, account) {
        Admission::Proceed(a) => a.succeeded(),
        Admission::Refuse(r) => panic!("refused ({r:?}) from {from} on {account}"),
        Admission::Wait => panic!("told to wait from {from} on {account}"),
    }
}

fn refusal(t: &LoginThrottle, from: IpAddr, account: &str) -> Option<Refusal> {
    match t.admit("imap", from, account, account) {
        Admission::Refuse(r) => Some(r),
        _ => None,
    }
}

fn source_ban(n: u8) -> BanKey {
    BanKey::Source(Source::of(ip(n)))
}

fn lenient() -> ThrottleConfig {
    ThrottleConfig {
        max_failures_per_ip: 1000,
        max_failures_per_account: 1000,
        ..Default::default()
    }
}

#[test]
fn delay_grows_per_account_and_source_and_is_capped() {
    let (t, _) = throttle(lenient());
    assert_eq!(delay_of(&t, ip(1), "bob@example.com"), ms(0));
    for expected in [500, 1000, 2000, 4000, 8000, 8000, 8000] {
        fail(&t, ip(1), "bob@example.com");
        assert_eq!(delay_of(&t, ip(1), "BOB@example.com"), ms(expected));
    }
    // The same source on another account: its own pair, not delayed.
    assert_eq!(delay_of(&t, ip(1), "carol@example.com"), ms(0));
    // Another unknown source on the guessed account waits as the account's failures say.
    assert_eq!(delay_of(&t, ip(2), "bob@example.com"), ms(8000));
    assert_eq!(delay_of(&t, ip(2), "carol@example.com"), ms(0));
    assert_eq!(t.delay(u32::MAX), DEFAULT_MAX_DELAY);
}

#[test]
fn a_known_source_is_not_slowed_by_others_failures() {
    let (t, _) = throttle(lenient());
    assert_eq!(
        succeed(&t, ip(1), "bob@example.com"),
        Success::Granted {
            record_source: true
        }
    );
    for n in 10..30 {
        fail(&t, ip(n), "bob@example.com");
    }
    assert_eq!(delay_of(&t, ip(1), "bob@example.com"), ms(0));
    assert_eq!(delay_of(&t, ip(99), "bob@example.com"), ms(8000));
    // Its own failures do slow it.
    fail(&t, ip(1), "bob@example.com");
    assert_eq!(delay_of(&t, ip(1), "bob@example.com"), ms(500));
}

#[test]
fn source_banned_at_the_limit_then_expires() {
    let (t, clock) = throttle(ThrottleConfig::default());
    for i in 0..DEFAULT_MAX_FAILURES_PER_IP - 1 {
        assert!(fail(&t, ip(1), &format!("user{i}@example.com")).is_empty());
    }
    let started = fail(&t, ip(1), "last@example.com");
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].key, source_ban(1));
    assert_eq!(started[0].failures, DEFAULT_MAX_FAILURES_PER_IP);
    assert_eq!(started[0].duration, DEFAULT_BAN);
    // Refused for every account, without a check; other sources are not.
    assert_eq!(
        refusal(&t, ip(1), "innocent@example.com"),
        Some(Refusal::Source)
    );
    assert_eq!(delay_of(&t, ip(2), "innocent@example.com"), ms(0));
    clock.advance(DEFAULT_BAN - Duration::from_secs(1));
    assert!(t.expire().is_empty());
    assert_eq!(t.bans()[0].remaining, Duration::from_secs(1));
    assert_eq!(t.bans()[0].refused, 1);
    clock.advance(Duration::from_secs(1));
    let ended = t.expire();
    assert_eq!(ended.len(), 1);
    assert_eq!(
        (ended[0].key.clone(), ended[0].end, ended[0].refused),
        (source_ban(1), BanEnd::Expired, 1)
    );
    assert!(t.bans().is_empty());
    // Counting starts again from zero.
    assert!(fail(&t, ip(1), "x@example.com").is_empty());
}

#[test]
fn sources_are_ipv4_addresses_or_ipv6_64s() {
    let (t, _) = throttle(ThrottleConfig {
        max_failures_per_ip: 2,
        ..Default::default()
    });
    let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
    let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
    let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
    fail(&t, a, "x@example.com");
    let started = fail(&t, b, "y@example.com");
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].key.to_string(), "2001:db8:1:2::/64");
    assert_eq!(refusal(&t, a, "z@example.com"), Some(Refusal::Source));
    assert_eq!(delay_of(&t, other, "z@example.com"), ms(0));

    let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
    assert_eq!(Source::of(mapped), Source::of(ip(7)));
    assert_eq!(Source::of(ip(7)).to_string(), "192.0.2.7");
    for (text, source) in [
        ("192.0.2.7", Some("192.0.2.7")),
        ("2001:db8:1:2::1", Some("2001:db8:1:2::/64")),
        ("2001:db8:1:2::/64", Some("2001:db8:1:2::/64")),
        (" 2001:db8:1:2:ffff::9/64 ", Some("2001:db8:1:2::/64")),
        ("2001:db8::/48", None),
        ("192.0.2.0/24", None),
        ("bob@example.com", None),
    ] {
        assert_eq!(
            Source::parse(text).map(|s| s.to_string()).as_deref(),
            source,
            "{text}"
        );
    }
    assert!(Source::of(a).contains(b) && !Source::of(a).contains(other));
}

#[test]
fn distributed_guessing_bans_the_account_for_unknown_sources_only() {
    let (t, _) = throttle(ThrottleConfig {
        base_delay: Duration::ZERO,
        ..Default::default()
    });
    let owner = ip(1);
    assert!(matches!(
        succeed(&t, owner, "victim@example.com"),
        Success::Granted { .. }
    ));
    let mut started = Vec::new();
    for n in 10..10 + DEFAULT_MAX_FAILURES_PER_ACCOUNT as u8 {
        started.extend(fail(&t, ip(n), "Victim@example.com"));
    }
    assert_eq!(
        started.iter().map(|b| b.key.clone()).collect::<Vec<_>>(),
        [BanKey::Account("victim@example.com".into())]
    );
    // Unknown sources are refused for it, attackers included; not for other accounts.
    assert_eq!(
        refusal(&t, ip(99), "victim@example.com"),
        Some(Refusal::Account)
    );
    assert_eq!(
        refusal(&t, ip(10), "victim@example.com"),
        Some(Refusal::Account)
    );
    assert_eq!(delay_of(&t, ip(99), "other@example.com"), ms(0));
    // The owner logs in as usual, undelayed.
    assert_eq!(delay_of(&t, owner, "victim@example.com"), ms(0));
    assert_eq!(
        succeed(&t, owner, "victim@example.com"),
        Success::Granted {
            record_source: false
        }
    );
    // Its failures on the account do not count towards the account's ban.
    let (t, _) = throttle(ThrottleConfig {
        max_failures_per_account: 2,
        ..Default::default()
    });
    succeed(&t, owner, "bob@example.com");
    for _ in 0..3 {
        assert!(fail(&t, owner, "bob@example.com").is_empty());
    }
}

#[test]
fn a_success_clears_only_its_own_pair() {
    let (t, _) = throttle(ThrottleConfig {
        base_delay: Duration::ZERO,
        ..Default::default()
    });
    // An attacker with an account of its own interleaves its logins with guesses at others.
    let mut started = Vec::new();
    for i in 0..DEFAULT_MAX_FAILURES_PER_IP {
        assert!(matches!(
            succeed(&t, ip(1), "mallory@example.com"),
            Success::Granted { .. }
        ));
        started.extend(fail(&t, ip(1), &format!("target{i}@example.com")));
    }
    assert_eq!(
        started.iter().map(|b| b.key.clone()).collect::<Vec<_>>(),
        [source_ban(1)]
    );
    assert_eq!(
        refusal(&t, ip(1), "target0@example.com"),
        Some(Refusal::Source)
    );

    // A success clears the delay of its (account, source) pair, nothing else.
    let (t, _) = throttle(lenient());
    for _ in 0..3 {
        fail(&t, ip(1), "bob@example.com");
        fail(&t, ip(1), "carol@example.com");
    }
    succeed(&t, ip(1), "bob@example.com");
    assert_eq!(delay_of(&t, ip(1), "bob@example.com"), ms(0));
    assert_eq!(delay_of(&t, ip(1), "carol@example.com"), ms(2000));
}

#[test]
fn attempts_in_flight_count_against_the_limit() {
    let (t, _) = throttle(ThrottleConfig::default());
    let limit = DEFAULT_MAX_FAILURES_PER_IP as usize;
    let mut admitted = Vec::new();
    let mut waiting = 0;
    for i in 0..40 {
        match t.admit("imap", ip(1), &format!("u{i}@example.com"), "u") {
            Admission::Proceed(a) => admitted.push(a),
            Admission::Wait => waiting += 1,
            Admission::Refuse(r) => panic!("refused {r:?}"),
        }
    }
    assert_eq!((admitted.len(), waiting), (limit, 40 - limit));
    // One ending without a verdict (e.g. the store failed) gives its place back.
    admitted.pop();
    match t.admit("imap", ip(1), "v@example.com", "v") {
        Admission::Proceed(a) => admitted.push(a),
        _ => panic!("not admitted after a release"),
    }
    // A success gives it back too.
    assert!(matches!(
        admitted.pop().map(Attempt::succeeded),
        Some(Success::Granted { .. })
    ));
    let again = match t.admit("imap", ip(1), "w@example.com", "w") {
        Admission::Proceed(a) => a,
        _ => panic!("not admitted after a success"),
    };
    admitted.push(again);
    // Each failure takes its place for good: when they have all failed, the source is banned and
    // those that waited are refused without a check.
    let mut started = Vec::new();
    for a in admitted.drain(..) {
        assert!(matches!(
            t.admit("imap", ip(1), "late@example.com", "late"),
            Admission::Wait
        ));
        started.extend(a.failed("imap", "x"));
    }
    assert_eq!(started.len(), 1);
    assert_eq!(
        refusal(&t, ip(1), "late@example.com"),
        Some(Refusal::Source)
    );

    // Distributed attempts in flight on one account count against the account's limit.
    let (t, _) = throttle(ThrottleConfig {
        max_failures_per_account: 3,
        ..Default::default()
    });
    let held: Vec<_> = (10..13)
        .map(|n| match t.admit("imap", ip(n), "bob@example.com", "bob") {
            Admission::Proceed(a) => a,
            _ => panic!("not admitted"),
        })
        .collect();
    assert!(matches!(
        t.admit("imap", ip(20), "bob@example.com", "bob"),
        Admission::Wait
    ));
    drop(held);
    assert!(matches!(
        t.admit("imap", ip(20), "bob@example.com", "bob"),
        Admission::Proceed(_)
    ));
}

#[test]
fn a_banned_known_source_gets_its_password_checked_a_few_times() {
    let (t, clock) = throttle(ThrottleConfig {
        base_delay: Duration::ZERO,
        ..Default::default()
    });
    let office = ip(1);
    succeed(&t, office, "owner@example.com");
    // Somebody else behind the same address gets it banned.
    for i in 0..DEFAULT_MAX_FAILURES_PER_IP {
        fail(&t, office, &format!("guess{i}@example.com"));
    }
    clock.advance(Duration::from_secs(60));
    // The owner's right password is recognised, but it must wait for the ban.
    assert_eq!(
        succeed(&t, office, "owner@example.com"),
        Success::Held {
            remaining: DEFAULT_BAN - Duration::from_secs(60)
        }
    );
    // Accounts that never logged in from there are refused without a check.
    assert_eq!(
        refusal(&t, office, "guess0@example.com"),
        Some(Refusal::Source)
    );
    // Wrong passwords on the owner's account: checked up to the per-source limit, then refused.
    for _ in 0..DEFAULT_MAX_FAILURES_PER_IP {
        assert!(fail(&t, office, "owner@example.com").is_empty());
    }
    assert_eq!(
        refusal(&t, office, "owner@example.com"),
        Some(Refusal::Source)
    );
    // Still refused after the failures' window, until the ban ends.
    clock.advance(DEFAULT_WINDOW);
    assert_eq!(
        refusal(&t, office, "owner@example.com"),
        Some(Refusal::Source)
    );
    // Lifted: everything is forgotten, the owner logs in.
    let id = 7;
    t.ban_recorded(&source_ban(1), 1, id);
    assert_eq!(t.lift(&source_ban(1), id + 1), None, "another ban's lift");
    let ended = t.lift(&source_ban(1), id).expect("lifted");
    assert_eq!(ended.end, BanEnd::Lifted);
    assert_eq!(
        succeed(&t, office, "owner@example.com"),
        Success::Granted {
            record_source: false
        }
    );
    assert!(fail(&t, office, "guess0@example.com").is_empty());
}

#[test]
fn bans_from_the_store_apply_and_end() {
    let (t, clock) = throttle(ThrottleConfig::default());
    let key = BanKey::Account("bob@example.com".into());
    assert!(t.install_ban(key.clone(), 3, 20, Duration::from_secs(100)));
    assert!(
        !t.install_ban(key.clone(), 3, 20, Duration::from_secs(100)),
        "the same ban twice"
    );
    assert!(
        !t.install_ban(key.clone(), 4, 20, Duration::from_secs(50)),
        "a shorter one"
    );
    assert_eq!(
        refusal(&t, ip(1), "BOB@example.com"),
        Some(Refusal::Account)
    );
    t.remember_source("bob@example.com", Source::of(ip(2)));
    assert!(matches!(
        succeed(&t, ip(2), "bob@example.com"),
        Success::Granted {
            record_source: false
        }
    ));
    assert_eq!(
        t.bans(),
        [BanView {
            key: key.clone(),
            id: Some(3),
            failures: 20,
            remaining: Duration::from_secs(100),
            refused: 1,
        }]
    );
    clock.advance(Duration::from_secs(100));
    assert_eq!(t.expire().len(), 1);
    assert!(t.bans().is_empty());
    assert_eq!(delay_of(&t, ip(1), "bob@example.com"), ms(0));
}

#[test]
fn known_sources_are_bounded_and_refreshed() {
    let (t, clock) = throttle(ThrottleConfig {
        max_known_sources: 2,
        max_entries: 16,
        ..Default::default()
    });
    for n in 1..=3 {
        assert_eq!(
            succeed(&t, ip(n), "bob@example.com"),
            Success::Granted {
                record_source: true
            }
        );
        clock.advance(Duration::from_secs(1));
    }
    // The least recent of three went.
    let t2 = |n| t.lock().is_known("bob@example.com", Source::of(ip(n)));
    assert!(!t2(1) && t2(2) && t2(3));
    assert_eq!(
        succeed(&t, ip(3), "bob@example.com"),
        Success::Granted {
            record_source: false
        }
    );
    clock.advance(KNOWN_SOURCE_REFRESH);
    assert_eq!(
        succeed(&t, ip(3), "bob@example.com"),
        Success::Granted {
            record_source: true
        }
    );
    // Accounts with known sources are bounded too.
    for i in 0..100 {
        succeed(&t, ip(9), &format!("user{i}@example.com"));
        assert!(t.tracked()[4] <= 16);
    }
}

#[test]
fn memory_is_bounded() {
    let max = 1000;
    let (t, clock) = throttle(ThrottleConfig {
        max_entries: max,
        max_failures_per_ip: 2,
        ..Default::default()
    });
    // A banned source survives a flood of new ones.
    fail(&t, ip(1), "a@example.com");
    fail(&t, ip(1), "a@example.com");
    for n in 0..10_000u32 {
        let addr = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
        fail(&t, addr, &format!("user{n}@example.com"));
        assert!(t.tracked().iter().all(|&n| n <= max), "{:?}", t.tracked());
    }
    assert_eq!(refusal(&t, ip(1), "a@example.com"), Some(Refusal::Source));
    // Idle counts are swept once a window has passed; the ban stays until it ends.
    clock.advance(DEFAULT_WINDOW);
    fail(&t, ip(3), "fresh@example.com");
    assert_eq!(t.tracked(), [1, 1, 1, 1, 0]);
    assert_eq!(refusal(&t, ip(1), "a@example.com"), Some(Refusal::Source));
}

#[tokio::test]
async fn a_waiting_attempt_is_woken_when_one_ends() {
    let t = LoginThrottle::new(ThrottleConfig {
        max_failures_per_ip: 1,
        ..Default::default()
    });
    let first = match t.admit("imap", ip(1), "a@example.com", "a") {
        Admission::Proceed(a) => a,
        _ => panic!("not admitted"),
    };
    let waiter = async {
        let mut waits = 0;
        loop {
            let released = t.released();
            tokio::pin!(released);
            released.as_mut().enable();
            match t.admit("imap", ip(1), "b@example.com", "b") {
                Admission::Proceed(a) => {
                    a.succeeded();
                    return waits;
                }
                Admission::Wait => {
                    waits += 1;
                    released.await;
                }
                Admission::Refuse(r) => panic!("refused {r:?}"),
            }
        }
    };
    let releaser = async {
        tokio::task::yield_now().await;
        first.succeeded();
    };
    // The timeout only turns a missed wake-up into a failure instead of a hang.
    let (waits, ()) = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::join!(waiter, releaser)
    })
    .await
    .expect("the waiting attempt was never woken");
    assert_eq!(waits, 1);
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
    if line.contains('\n') || line.contains('\r') || line.matches("auth failure:").count() != 1 {
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

#[test]
fn minutes_left_rounds_up() {
    let m = |s| minutes_left(Duration::from_secs(s));
    assert_eq!(
        (m(0), m(1), m(60), m(61), m(3599), m(3600)),
        (1, 1, 1, 2, 60, 60)
    );
}
