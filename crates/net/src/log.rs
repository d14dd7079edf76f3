//! What every protocol needs to log safely: client text made printable and short before it goes
//! into a log line, and a budget that bounds the lines one client can cause.
//!
//! A client chooses how often a refusal happens (50,000 pipelined `RCPT` once wrote 10.5 MB of
//! log); an operator needs the first few to see what happened, and a count of the rest. So each
//! session logs its first [`LOGGED_PER_SESSION`] refusals one by one, and counts the others for one
//! summary line when it ends.

use std::collections::BTreeMap;

/// Refusals a session logs one by one before it only counts them.
pub const LOGGED_PER_SESSION: u32 = 10;

/// Longest client text (a command line, a user name) put into a protocol trace, in characters.
pub const MAX_TRACE_TEXT: usize = 200;

/// `bytes` as text for a log line: invalid UTF-8 and control characters (line breaks included, so
/// a client cannot start a forged line) become `?`, and it is cut to `max` characters, with `…`
/// showing that something was cut.
pub fn printable(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len().min(max + 3));
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        out.push(if c.is_control() || c == '\u{FFFD}' {
            '?'
        } else {
            c
        });
    }
    out
}

/// A session's refusals: which to log, and the counts for the summary at its end.
#[derive(Debug, Default, Clone)]
pub struct RefusalLog {
    /// Refusals by reply code (`"452"`, `"BAD"`, `"-ERR"`): a handful of distinct keys.
    counts: BTreeMap<String, u64>,
    logged: u32,
    suppressed: u64,
}

impl RefusalLog {
    /// Counts a refusal with reply code `code`; true when it should be logged on its own line.
    pub fn record(&mut self, code: &str) -> bool {
        match self.counts.get_mut(code) {
            Some(n) => *n += 1,
            None => {
                self.counts.insert(code.to_string(), 1);
            }
        }
        if self.logged < LOGGED_PER_SESSION {
            self.logged += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// Refusals counted but not logged one by one.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }

    /// All refusals counted.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// The counts by code for a summary line, e.g. `452:49900 500:10`.
    pub fn summary(&self) -> String {
        self.counts
            .iter()
            .map(|(code, n)| format!("{code}:{n}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_removes_line_breaks_and_cuts() {
        assert_eq!(printable(b"RCPT TO:<a@b>\r\nX", 100), "RCPT TO:<a@b>??X");
        assert_eq!(printable(b"\xff\x1b[31m", 100), "??[31m");
        assert_eq!(printable("héllo".as_bytes(), 3), "hél…");
        assert_eq!(printable(b"abc", 3), "abc");
    }

    #[test]
    fn refusals_beyond_the_budget_are_only_counted() {
        let mut log = RefusalLog::default();
        let logged = (0..50_000)
            .filter(|i| log.record(if i % 2 == 0 { "452" } else { "500" }))
            .count();
        assert_eq!(logged, LOGGED_PER_SESSION as usize);
        assert_eq!(log.suppressed(), 50_000 - u64::from(LOGGED_PER_SESSION));
        assert_eq!(log.total(), 50_000);
        assert_eq!(log.summary(), "452:25000 500:25000");
    }
}
