//! The throttle's bounded tables: failure counts with attempts in flight, bans, known sources.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use super::{BanEnd, BanKey, EndedBan, NewBan, Source, ThrottleConfig};

/// When a table is full and nothing has expired, this fraction (1/n) of the oldest entries goes.
const EVICT_FRACTION: usize = 8;

/// Failures within a window: forgotten after `window` without a new one.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Counter {
    pub failures: u32,
    pub last_failure: Option<Instant>,
}

impl Counter {
    fn idle(&self, now: Instant, window: Duration) -> bool {
        self.last_failure
            .is_none_or(|t| now.saturating_duration_since(t) >= window)
    }
}

/// The state of one source, account or (account, source) pair.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Tracked {
    pub counter: Counter,
    /// Attempts admitted and not yet ended.
    pub in_flight: u32,
    /// Pairs only: refused until then (a banned source out of checks on a known account).
    pub blocked_until: Option<Instant>,
}

impl Tracked {
    pub fn fail(&mut self, now: Instant) -> u32 {
        self.counter.failures = self.counter.failures.saturating_add(1);
        self.counter.last_failure = Some(now);
        self.counter.failures
    }

    pub fn blocked(&self, now: Instant) -> bool {
        self.blocked_until.is_some_and(|u| u > now)
    }

    /// Nothing to remember: no recent failure, nothing in flight, not blocked.
    fn idle(&self, now: Instant, window: Duration) -> bool {
        self.in_flight == 0 && self.counter.idle(now, window) && !self.blocked(now)
    }

    /// (failures in the window, attempts in flight, blocked).
    fn counts(&self, now: Instant, window: Duration) -> (u32, u32, bool) {
        let failures = if self.counter.idle(now, window) {
            0
        } else {
            self.counter.failures
        };
        (failures, self.in_flight, self.blocked(now))
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Ban {
    /// Its row in the store, once recorded (or when read from there).
    pub id: Option<i64>,
    pub serial: u64,
    pub failures: u32,
    pub until: Instant,
    /// Attempts refused during the ban.
    pub refused: u64,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct KnownSource {
    source: Source,
    last_success: Instant,
    /// When the caller was last told to record it in the store (`None`: loaded from there).
    recorded: Option<Instant>,
}

pub(super) struct Tables {
    pub sources: HashMap<Source, Tracked>,
    pub accounts: HashMap<String, Tracked>,
    pub pairs: HashMap<(String, Source), Tracked>,
    pub bans: HashMap<BanKey, Ban>,
    pub known: HashMap<String, Vec<KnownSource>>,
    /// Idle entries are swept once per window, so memory is returned without a full table.
    last_sweep: Instant,
    next_serial: u64,
    max_known: usize,
}

impl Tables {
    pub fn new(now: Instant, max_known: usize) -> Tables {
        Tables {
            sources: HashMap::new(),
            accounts: HashMap::new(),
            pairs: HashMap::new(),
            bans: HashMap::new(),
            known: HashMap::new(),
            last_sweep: now,
            next_serial: 0,
            max_known: max_known.max(1),
        }
    }

    pub fn source_counts(&self, s: Source, now: Instant, window: Duration) -> (u32, u32, bool) {
        counts(&self.sources, &s, now, window)
    }

    pub fn account_counts(&self, a: &str, now: Instant, window: Duration) -> (u32, u32, bool) {
        counts(&self.accounts, a, now, window)
    }

    pub fn pair_counts(
        &self,
        a: &str,
        s: Source,
        now: Instant,
        window: Duration,
    ) -> (u32, u32, bool) {
        counts(&self.pairs, &(a.to_string(), s), now, window)
    }

    pub fn source(
        &mut self,
        s: Source,
        now: Instant,
        window: Duration,
        max: usize,
    ) -> &mut Tracked {
        entry(&mut self.sources, s, now, window, max)
    }

    pub fn account(&mut self, a: &str, now: Instant, window: Duration, max: usize) -> &mut Tracked {
        entry(&mut self.accounts, a.to_string(), now, window, max)
    }

    pub fn pair(
        &mut self,
        a: &str,
        s: Source,
        now: Instant,
        window: Duration,
        max: usize,
    ) -> &mut Tracked {
        entry(&mut self.pairs, (a.to_string(), s), now, window, max)
    }

    pub fn ban_left(&self, key: &BanKey, now: Instant) -> Option<Duration> {
        self.bans
            .get(key)
            .filter(|b| b.until > now)
            .map(|b| b.until - now)
    }

    pub fn count_refusal(&mut self, key: &BanKey) {
        if let Some(b) = self.bans.get_mut(key) {
            b.refused = b.refused.saturating_add(1);
        }
    }

    pub fn start_ban(
        &mut self,
        key: BanKey,
        failures: u32,
        now: Instant,
        cfg: &ThrottleConfig,
    ) -> NewBan {
        self.next_serial += 1;
        let serial = self.next_serial;
        self.make_room_for_ban(&key, now, cfg.max_entries);
        self.bans.insert(
            key.clone(),
            Ban {
                id: None,
                serial,
                failures,
                until: now + cfg.ban,
                refused: 0,
            },
        );
        NewBan {
            key,
            failures,
            duration: cfg.ban,
            serial,
        }
    }

    /// A ban from the store: applied unless the same or a longer one is in force here.
    pub fn install_ban(
        &mut self,
        key: BanKey,
        id: i64,
        failures: u32,
        until: Instant,
        now: Instant,
        max: usize,
    ) -> bool {
        if let Some(b) = self.bans.get_mut(&key)
            && b.until > now
        {
            // Not yet recorded: this row is most likely its record, read before the recorder ran.
            if b.id.is_none() {
                b.id = Some(id);
                return false;
            }
            if b.id == Some(id) || b.until >= until {
                return false;
            }
            b.id = Some(id);
            b.until = until;
            b.failures = failures;
            return true;
        }
        self.next_serial += 1;
        let serial = self.next_serial;
        self.make_room_for_ban(&key, now, max);
        self.bans.insert(
            key,
            Ban {
                id: Some(id),
                serial,
                failures,
                until,
                refused: 0,
            },
        );
        true
    }

    /// Removes a ban; what it counted starts again from zero (a lifted source may try again, and
    /// its known accounts are no longer blocked).
    pub fn end_ban(&mut self, key: &BanKey, end: BanEnd) -> Option<EndedBan> {
        let ban = self.bans.remove(key)?;
        match key {
            BanKey::Source(s) => {
                if let Some(e) = self.sources.get_mut(s) {
                    e.counter = Counter::default();
                }
                for ((_, src), p) in self.pairs.iter_mut() {
                    if src == s {
                        p.counter = Counter::default();
                        p.blocked_until = None;
                    }
                }
            }
            BanKey::Account(a) => {
                if let Some(e) = self.accounts.get_mut(a) {
                    e.counter = Counter::default();
                }
            }
        }
        Some(EndedBan {
            key: key.clone(),
            id: ban.id,
            failures: ban.failures,
            refused: ban.refused,
            end,
        })
    }

    pub fn is_known(&self, account: &str, source: Source) -> bool {
        self.known
            .get(account)
            .is_some_and(|v| v.iter().any(|k| k.source == source))
    }

    /// Notes a successful login; returns whether the caller should record it in the store (a new
    /// source, or one last recorded more than [`super::KNOWN_SOURCE_REFRESH`] ago).
    pub fn remember(&mut self, account: &str, source: Source, now: Instant, max: usize) -> bool {
        if !self.known.contains_key(account) && self.known.len() >= max {
            self.evict_known(max);
        }
        let list = self.known.entry(account.to_string()).or_default();
        if let Some(k) = list.iter_mut().find(|k| k.source == source) {
            k.last_success = now;
            let stale = k
                .recorded
                .is_none_or(|r| now.saturating_duration_since(r) >= super::KNOWN_SOURCE_REFRESH);
            if stale {
                k.recorded = Some(now);
            }
            return stale;
        }
        if list.len() >= self.max_known
            && let Some(oldest) = list
                .iter()
                .enumerate()
                .min_by_key(|(_, k)| k.last_success)
                .map(|(i, _)| i)
        {
            list.swap_remove(oldest);
        }
        list.push(KnownSource {
            source,
            last_success: now,
            recorded: Some(now),
        });
        true
    }

    /// Loads a known source from the store: known, but not to be recorded again.
    pub fn load_known(&mut self, account: &str, source: Source, now: Instant, max: usize) {
        if self.remember(account, source, now, max)
            && let Some(k) = self
                .known
                .get_mut(account)
                .and_then(|v| v.iter_mut().find(|k| k.source == source))
        {
            k.recorded = Some(now);
        }
    }

    /// Forgets idle counts once per window.
    pub fn sweep_if_due(&mut self, now: Instant, window: Duration) {
        if now.saturating_duration_since(self.last_sweep) < window {
            return;
        }
        self.sources.retain(|_, e| !e.idle(now, window));
        self.accounts.retain(|_, e| !e.idle(now, window));
        self.pairs.retain(|_, e| !e.idle(now, window));
        self.last_sweep = now;
    }

    /// The accounts whose latest success is oldest lose their known sources first.
    fn evict_known(&mut self, max: usize) {
        let mut ages: Vec<(Instant, String)> = self
            .known
            .iter()
            .filter_map(|(a, v)| {
                v.iter()
                    .map(|k| k.last_success)
                    .max()
                    .map(|t| (t, a.clone()))
            })
            .collect();
        let n = (max / EVICT_FRACTION).max(1).min(ages.len());
        if n == 0 {
            return;
        }
        ages.select_nth_unstable_by(n - 1, |a, b| a.0.cmp(&b.0));
        for (_, a) in ages.into_iter().take(n) {
            self.known.remove(&a);
        }
    }

    /// Bans over and done go first; then those ending soonest.
    fn make_room_for_ban(&mut self, key: &BanKey, now: Instant, max: usize) {
        if self.bans.contains_key(key) || self.bans.len() < max {
            return;
        }
        self.bans.retain(|_, b| b.until > now);
        if self.bans.len() < max {
            return;
        }
        let mut ends: Vec<(Instant, BanKey)> = self
            .bans
            .iter()
            .map(|(k, b)| (b.until, k.clone()))
            .collect();
        let n = (max / EVICT_FRACTION).max(1).min(ends.len());
        ends.select_nth_unstable_by(n - 1, |a, b| a.0.cmp(&b.0));
        for (_, k) in ends.into_iter().take(n) {
            self.bans.remove(&k);
        }
    }
}

fn counts<K, Q>(
    map: &HashMap<K, Tracked>,
    key: &Q,
    now: Instant,
    window: Duration,
) -> (u32, u32, bool)
where
    K: std::borrow::Borrow<Q> + Hash + Eq,
    Q: Hash + Eq + ?Sized,
{
    map.get(key)
        .map(|e| e.counts(now, window))
        .unwrap_or_default()
}

/// The entry of `key`, made if needed (making room in a full table), its count reset if idle.
fn entry<K: Hash + Eq + Clone>(
    map: &mut HashMap<K, Tracked>,
    key: K,
    now: Instant,
    window: Duration,
    max: usize,
) -> &mut Tracked {
    if !map.contains_key(&key) && map.len() >= max {
        make_room(map, now, window, max);
    }
    let e = map.entry(key).or_default();
    if e.counter.idle(now, window) {
        e.counter = Counter::default();
    }
    e
}

/// Drops idle entries; if the table is still full, drops the eighth with the oldest failures,
/// never one with attempts in flight (their reservations must stay counted). Amortised O(1) per
/// insert.
fn make_room<K: Hash + Eq + Clone>(
    map: &mut HashMap<K, Tracked>,
    now: Instant,
    window: Duration,
    max: usize,
) {
    map.retain(|_, e| !e.idle(now, window));
    if map.len() < max {
        return;
    }
    let mut ages: Vec<((bool, Option<Instant>), K)> = map
        .iter()
        .filter(|(_, e)| e.in_flight == 0)
        .map(|(k, e)| ((e.blocked(now), e.counter.last_failure), k.clone()))
        .collect();
    let n = (max / EVICT_FRACTION).max(1).min(ages.len());
    if n == 0 {
        return;
    }
    ages.select_nth_unstable_by(n - 1, |a, b| a.0.cmp(&b.0));
    for (_, k) in ages.into_iter().take(n) {
        map.remove(&k);
    }
}
