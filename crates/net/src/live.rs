//! A setting that a config reload (SIGHUP) can replace while the server runs. Each connection
//! takes a snapshot when it starts and keeps it to the end, so one session never sees two
//! configurations.

use std::sync::{Arc, RwLock};

/// The current value, shared by every clone; [`Live::set`] replaces it for later readers.
#[derive(Debug)]
pub struct Live<T> {
    current: Arc<RwLock<Arc<T>>>,
}

impl<T> Clone for Live<T> {
    fn clone(&self) -> Self {
        Live {
            current: self.current.clone(),
        }
    }
}

impl<T> Live<T> {
    pub fn new(value: T) -> Live<T> {
        Live {
            current: Arc::new(RwLock::new(Arc::new(value))),
        }
    }

    /// The value now (a cheap `Arc` clone).
    pub fn get(&self) -> Arc<T> {
        match self.current.read() {
            Ok(v) => v.clone(),
            // Every write is a single assignment: a poisoned lock still holds a whole value.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the value for everyone who reads it from now on.
    pub fn set(&self, value: T) {
        let value = Arc::new(value);
        match self.current.write() {
            Ok(mut v) => *v = value,
            Err(poisoned) => *poisoned.into_inner() = value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_keep_their_snapshot_and_later_readers_see_the_new_value() {
        let live = Live::new(1);
        let other = live.clone();
        let before = live.get();
        other.set(2);
        assert_eq!(*before, 1);
        assert_eq!(*live.get(), 2);
    }
}
