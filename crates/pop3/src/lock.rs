//! RFC 1939 §8: one POP3 session per maildrop at a time. An in-process set of locked accounts;
//! the guard releases its account when dropped (QUIT, dropped connection, or a panic).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use store::AccountId;

#[derive(Debug, Clone, Default)]
pub struct MaildropLocks {
    held: Arc<Mutex<HashSet<AccountId>>>,
}

#[derive(Debug)]
pub struct MaildropGuard {
    held: Arc<Mutex<HashSet<AccountId>>>,
    account: AccountId,
}

impl MaildropLocks {
    /// The lock of `account`, or `None` when another session holds it.
    pub fn try_lock(&self, account: AccountId) -> Option<MaildropGuard> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if !held.insert(account) {
            return None;
        }
        Some(MaildropGuard {
            held: self.held.clone(),
            account,
        })
    }
}

impl Drop for MaildropGuard {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.remove(&self.account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_per_account_released_on_drop() {
        let locks = MaildropLocks::default();
        let a = locks.try_lock(1).expect("first");
        assert!(locks.try_lock(1).is_none());
        let _b = locks.try_lock(2).expect("other account");
        drop(a);
        assert!(locks.try_lock(1).is_some());
    }
}
