//! RFC 2449 §6.5 LOGIN-DELAY: when each account last logged in, so a login sooner than the
//! configured delay can be refused with `[LOGIN-DELAY]`. In-process, like the maildrop locks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use store::AccountId;

/// Entries kept before old ones (past any delay) are pruned; doubles as the map grows.
const PRUNE_AT: usize = 1024;

#[derive(Debug, Clone, Default)]
pub struct LoginTimes {
    inner: Arc<Mutex<Times>>,
}

#[derive(Debug, Default)]
struct Times {
    last: HashMap<AccountId, Instant>,
    prune_at: usize,
}

impl LoginTimes {
    /// Records a login of `account` at `now` unless its previous one was less than `delay` ago;
    /// then returns how long it must still wait.
    pub fn try_login(
        &self,
        account: AccountId,
        delay: Duration,
        now: Instant,
    ) -> Result<(), Duration> {
        let mut t = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(prev) = t.last.get(&account) {
            let since = now.saturating_duration_since(*prev);
            if since < delay {
                return Err(delay - since);
            }
        }
        t.last.insert(account, now);
        if t.last.len() >= t.prune_at.max(PRUNE_AT) {
            t.last
                .retain(|_, at| now.saturating_duration_since(*at) < delay);
            t.prune_at = t.last.len() * 2;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_login_within_delay_refused() {
        let t = LoginTimes::default();
        let d = Duration::from_secs(60);
        let t0 = Instant::now();
        assert!(t.try_login(1, d, t0).is_ok());
        let wait = t.try_login(1, d, t0 + Duration::from_secs(20)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(40));
        assert!(t.try_login(2, d, t0 + Duration::from_secs(20)).is_ok());
        assert!(t.try_login(1, d, t0 + Duration::from_secs(60)).is_ok());
        assert!(t.try_login(1, d, t0 + Duration::from_secs(61)).is_err());
    }

    #[test]
    fn old_entries_pruned() {
        let t = LoginTimes::default();
        let d = Duration::from_secs(1);
        let t0 = Instant::now();
        for a in 1..PRUNE_AT as AccountId {
            t.try_login(a, d, t0).unwrap();
        }
        t.try_login(0, d, t0 + Duration::from_secs(5)).unwrap();
        assert_eq!(t.inner.lock().unwrap().last.len(), 1);
    }
}
