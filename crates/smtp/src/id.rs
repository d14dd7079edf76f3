//! Message identifiers: the id of the `250 ... queued as <id>` reply, of the Received field, of
//! the queue entry and of every log line about the message, to its last delivery attempt.

/// The identifier of a message from its `250 ... queued as` through every delivery attempt
/// (logs, the Received field, the queue entry): 16 hex digits. It is the time in microseconds, or
/// one more than the last identifier when the clock has not moved on, so no two are equal within
/// a process, and a restarted server (whose clock has moved on) makes larger ones. (The random
/// ids before could repeat.) Only a clock set back between two runs could repeat one, and only
/// for a message made in the very microsecond an earlier one was.
pub fn transaction_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last.saturating_add(1));
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return format!("{next:016X}"),
            Err(seen) => last = seen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hex_and_strictly_increasing() {
        let ids: Vec<String> = (0..10_000).map(|_| transaction_id()).collect();
        for id in &ids {
            assert!(
                id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()),
                "{id}"
            );
        }
        // Fixed width: text order is numeric order.
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "not increasing");
    }

    #[test]
    fn ids_from_many_threads_are_unique() {
        let threads: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(|| (0..5_000).map(|_| transaction_id()).collect::<Vec<_>>())
            })
            .collect();
        let mut all: Vec<String> = threads
            .into_iter()
            .flat_map(|t| t.join().expect("thread"))
            .collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "an id was made twice");
    }
}
