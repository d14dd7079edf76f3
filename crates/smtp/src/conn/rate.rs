//! Per-client rate limits on the MX port: messages (MAIL commands, as Postfix's anvil counts
//! them) and recipients per fixed window, by IPv4 address or IPv6 /64 (one host's usual share).
//! In memory: a restart forgets the counts, which only ever lets a client send more.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Clients tracked at once by default (a few MB of memory).
pub const DEFAULT_MAX_CLIENTS: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateConfig {
    pub window: Duration,
    /// MAIL commands per window; 0 = no limit.
    pub messages: u32,
    /// Accepted RCPT commands per window; 0 = no limit.
    pub recipients: u32,
    /// Clients tracked at once; past that, windows that ended are forgotten, then the oldest.
    pub max_clients: usize,
}

impl RateConfig {
    pub fn is_off(&self) -> bool {
        self.messages == 0 && self.recipients == 0
    }
}

/// Which counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Messages,
    Recipients,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    messages: u32,
    recipients: u32,
}

pub struct RateLimiter {
    cfg: RateConfig,
    clients: Mutex<HashMap<IpAddr, Window>>,
}

/// The key a client is counted under: IPv4 address, or the /64 of an IPv6 address.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match super::helo::canonical(ip) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

impl RateLimiter {
    pub fn new(cfg: RateConfig) -> RateLimiter {
        RateLimiter {
            cfg,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one more of `what` for `ip`; false (and not counted) when the limit is reached.
    pub fn allow(&self, ip: IpAddr, what: Counter, now: Instant) -> bool {
        let limit = match what {
            Counter::Messages => self.cfg.messages,
            Counter::Recipients => self.cfg.recipients,
        };
        if limit == 0 {
            return true;
        }
        let key = client_key(ip);
        let mut map = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(&key) && map.len() >= self.cfg.max_clients {
            let window = self.cfg.window;
            map.retain(|_, w| now.saturating_duration_since(w.start) < window);
            if map.len() >= self.cfg.max_clients {
                let oldest = map.iter().min_by_key(|(_, w)| w.start).map(|(k, _)| *k);
                if let Some(k) = oldest {
                    map.remove(&k);
                }
            }
        }
        let w = map.entry(key).or_insert(Window {
            start: now,
            messages: 0,
            recipients: 0,
        });
        if now.saturating_duration_since(w.start) >= self.cfg.window {
            *w = Window {
                start: now,
                messages: 0,
                recipients: 0,
            };
        }
        let n = match what {
            Counter::Messages => &mut w.messages,
            Counter::Recipients => &mut w.recipients,
        };
        if *n >= limit {
            return false;
        }
        *n += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_window_and_per_64() {
        let r = RateLimiter::new(RateConfig {
            window: Duration::from_secs(60),
            messages: 2,
            recipients: 0,
            max_clients: 2,
        });
        let t0 = Instant::now();
        let a: IpAddr = "2001:db8:1:2::5".parse().unwrap();
        let same64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert!(r.allow(a, Counter::Messages, t0));
        assert!(r.allow(same64, Counter::Messages, t0));
        assert!(!r.allow(a, Counter::Messages, t0), "third in the /64");
        assert!(r.allow(a, Counter::Recipients, t0), "no recipient limit");
        let b: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(r.allow(b, Counter::Messages, t0));
        // A new window starts afresh.
        assert!(r.allow(a, Counter::Messages, t0 + Duration::from_secs(60)));
        // Over max_clients, the oldest window is forgotten.
        let c: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(r.allow(c, Counter::Messages, t0 + Duration::from_secs(61)));
        assert!(r.clients.lock().unwrap().len() <= 2);
    }
}
