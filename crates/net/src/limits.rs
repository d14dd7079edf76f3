//! Connection limits: in total and per client IP, shared by every listener of a protocol; and
//! logged-in sessions per user.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

#[derive(Debug)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Counts open connections; `try_acquire` refuses past the limits. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ConnLimiter {
    max_total: usize,
    max_per_ip: usize,
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
    ip: IpAddr,
    counts: Arc<Mutex<Counts>>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if let Ok(mut c) = self.counts.lock() {
            c.total = c.total.saturating_sub(1);
            if let Some(n) = c.per_ip.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    c.per_ip.remove(&self.ip);
                }
            }
        }
    }
}

impl ConnLimiter {
    pub fn new(max_total: usize, max_per_ip: usize) -> ConnLimiter {
        ConnLimiter {
            max_total,
            max_per_ip,
            counts: Arc::new(Mutex::new(Counts {
                total: 0,
                per_ip: HashMap::new(),
            })),
        }
    }

    pub fn try_acquire(&self, ip: IpAddr) -> Result<ConnGuard, LimitExceeded> {
        let mut c = self.counts.lock().map_err(|_| LimitExceeded::Total)?;
        if c.total >= self.max_total {
            return Err(LimitExceeded::Total);
        }
        let n = c.per_ip.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            return Err(LimitExceeded::PerIp);
        }
        *n += 1;
        c.total += 1;
        Ok(ConnGuard {
            ip,
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
    max: usize,
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
            max,
            counts: Arc::default(),
        }
    }

    /// A slot for one more session of `user` (compared without case), or `None` at the limit.
    pub fn try_acquire(&self, user: &str) -> Option<UserSessionGuard> {
        let user = user.to_ascii_lowercase();
        let mut c = self.counts.lock().ok()?;
        let n = c.entry(user.clone()).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(UserSessionGuard {
            user,
            counts: self.counts.clone(),
        })
    }

    pub fn max(&self) -> usize {
        self.max
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
}
