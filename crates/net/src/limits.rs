//! Connection limits: in total and per client, for one service (each service has its own
//! budget: see `ConnLimiter`); and logged-in sessions per user.
//!
//! A client is an IPv4 address or an IPv6 /64 ([`crate::ip::client_key`]), as for the login
//! throttle. The maxima can be changed while connections are open (a config reload): connections
//! already admitted stay, new ones are counted against the new maxima.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::ip::client_key;

#[derive(Debug)]
struct Counts {
    max_total: usize,
    max_per_ip: usize,
    total: usize,
    /// Open connections per client key.
    per_ip: HashMap<IpAddr, usize>,
}

/// Counts the open connections of one service (e.g. port 25, or submission on 587 and 465
/// together); `try_acquire` refuses past the limits. A service has its own limiter so that a
/// flood of one (port 25) cannot take the slots of another (submission). Cheap to clone.
#[derive(Debug, Clone)]
pub struct ConnLimiter {
    counts: Arc<Mutex<Counts>>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitExceeded {
    Total,
    PerIp,
}

/// Held for the life of a connection; releases its slot when dropped.
#[derive(Debug)]
pub struct ConnGuard {
    key: IpAddr,
    counts: Arc<Mutex<Counts>>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if let Ok(mut c) = self.counts.lock() {
            c.total = c.total.saturating_sub(1);
            if let Some(n) = c.per_ip.get_mut(&self.key) {
                *n -= 1;
                if *n == 0 {
                    c.per_ip.remove(&self.key);
                }
            }
        }
    }
}

impl ConnLimiter {
    pub fn new(max_total: usize, max_per_ip: usize) -> ConnLimiter {
        ConnLimiter {
            counts: Arc::new(Mutex::new(Counts {
                max_total,
                max_per_ip,
                total: 0,
                per_ip: HashMap::new(),
            })),
        }
    }

    /// New maxima for connections admitted from now on; open ones are not closed.
    pub fn set_limits(&self, max_total: usize, max_per_ip: usize) {
        if let Ok(mut c) = self.counts.lock() {
            c.max_total = max_total;
            c.max_per_ip = max_per_ip;
        }
    }

    /// The current maxima: (in total, per client).
    pub fn limits(&self) -> (usize, usize) {
        self.counts
            .lock()
            .map(|c| (c.max_total, c.max_per_ip))
            .unwrap_or((0, 0))
    }

    pub fn try_acquire(&self, ip: IpAddr) -> Result<ConnGuard, LimitExceeded> {
        let key = client_key(ip);
        let mut c = self.counts.lock().map_err(|_| LimitExceeded::Total)?;
        if c.total >= c.max_total {
            return Err(LimitExceeded::Total);
        }
        let max_per_ip = c.max_per_ip;
        let n = c.per_ip.entry(key).or_insert(0);
        if *n >= max_per_ip {
            if *n == 0 {
                c.per_ip.remove(&key);
            }
            return Err(LimitExceeded::PerIp);
        }
        *n += 1;
        c.total += 1;
        Ok(ConnGuard {
            key,
            counts: self.counts.clone(),
        })
    }

    pub fn open(&self) -> usize {
        self.counts.lock().map(|c| c.total).unwrap_or(0)
    }
}

/// Counts the logged-in sessions of each user; `try_acquire` refuses past `max` for one user
/// (a stolen password or a misconfigured client cannot hold every connection slot). Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct UserSessions {
    /// Shared by the clones, so a config reload reaches every holder.
    max: Arc<AtomicUsize>,
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

/// Held for the life of a logged-in session; releases its slot when dropped.
#[derive(Debug)]
pub struct UserSessionGuard {
    user: String,
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for UserSessionGuard {
    fn drop(&mut self) {
        if let Ok(mut c) = self.counts.lock()
            && let Some(n) = c.get_mut(&self.user)
        {
            *n -= 1;
            if *n == 0 {
                c.remove(&self.user);
            }
        }
    }
}

impl UserSessions {
    pub fn new(max: usize) -> UserSessions {
        UserSessions {
            max: Arc::new(AtomicUsize::new(max)),
            counts: Arc::default(),
        }
    }

    /// A slot for one more session of `user` (compared without case), or `None` at the limit.
    pub fn try_acquire(&self, user: &str) -> Option<UserSessionGuard> {
        let user = user.to_ascii_lowercase();
        let mut c = self.counts.lock().ok()?;
        let n = c.entry(user.clone()).or_insert(0);
        if *n >= self.max() {
            return None;
        }
        *n += 1;
        Some(UserSessionGuard {
            user,
            counts: self.counts.clone(),
        })
    }

    pub fn max(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }

    /// A new maximum for logins from now on; sessions already open stay.
    pub fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Relaxed);
    }

    /// Sessions `user` holds now.
    pub fn held(&self, user: &str) -> usize {
        let user = user.to_ascii_lowercase();
        self.counts
            .lock()
            .map(|c| c.get(&user).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_sessions_are_limited_per_user_and_released() {
        let u = UserSessions::new(2);
        let a1 = u.try_acquire("a@example.com").expect("first");
        let _a2 = u.try_acquire("A@Example.com").expect("second, other case");
        assert!(u.try_acquire("a@example.com").is_none());
        let _b = u.try_acquire("b@example.com").expect("another user");
        assert_eq!(u.held("a@example.com"), 2);
        drop(a1);
        assert_eq!(u.held("a@example.com"), 1);
        u.try_acquire("a@example.com").expect("slot released");
        assert_eq!(u.held("a@example.com"), 1, "the guard was dropped at once");
        assert_eq!(u.held("nobody@example.com"), 0);
    }

    #[test]
    fn limits_total_and_per_ip_and_releases() {
        let l = ConnLimiter::new(3, 2);
        let a: IpAddr = "127.0.0.1".parse().expect("ip");
        let b: IpAddr = "127.0.0.2".parse().expect("ip");
        let g1 = l.try_acquire(a).expect("first");
        let _g2 = l.try_acquire(a).expect("second");
        assert_eq!(l.try_acquire(a).err(), Some(LimitExceeded::PerIp));
        let _g3 = l.try_acquire(b).expect("other ip");
        assert_eq!(l.try_acquire(b).err(), Some(LimitExceeded::Total));
        drop(g1);
        assert_eq!(l.open(), 2);
        l.try_acquire(a).expect("slot released");
    }

    #[test]
    fn ipv6_counted_per_64_and_mapped_ipv4_per_address() {
        let l = ConnLimiter::new(100, 2);
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        let _ga = l.try_acquire(a).expect("first of the /64");
        let _gb = l.try_acquire(b).expect("second of the /64");
        assert_eq!(
            l.try_acquire("2001:db8:1:2::77".parse().expect("ip")).err(),
            Some(LimitExceeded::PerIp),
            "a third address of the same /64"
        );
        l.try_acquire(other).expect("another /64");
        // IPv4 clients seen through a dual-stack listener are not one /64.
        let m1: IpAddr = "::ffff:192.0.2.1".parse().expect("ip");
        let m2: IpAddr = "::ffff:192.0.2.2".parse().expect("ip");
        let _m = [l.try_acquire(m1), l.try_acquire(m1)];
        l.try_acquire(m2).expect("another IPv4 client");
        assert_eq!(
            l.try_acquire("192.0.2.1".parse().expect("ip")).err(),
            Some(LimitExceeded::PerIp),
            "the mapped and the plain form are one client"
        );
    }

    #[test]
    fn new_limits_apply_to_new_connections_only() {
        let l = ConnLimiter::new(10, 10);
        let a: IpAddr = "127.0.0.1".parse().expect("ip");
        let held: Vec<_> = (0..3).map(|_| l.try_acquire(a).expect("slot")).collect();
        l.set_limits(10, 2);
        assert_eq!(l.limits(), (10, 2));
        assert_eq!(l.open(), 3, "open connections stay");
        assert_eq!(l.try_acquire(a).err(), Some(LimitExceeded::PerIp));
        drop(held);
        let _g = l.try_acquire(a).expect("under the new limit");
        l.set_limits(1, 2);
        assert_eq!(l.try_acquire(a).err(), Some(LimitExceeded::Total));
        let u = UserSessions::new(1);
        let _s = u.try_acquire("a@example.com").expect("first");
        assert!(u.try_acquire("a@example.com").is_none());
        u.clone().set_max(2);
        u.try_acquire("a@example.com")
            .expect("raised through a clone");
    }
}
