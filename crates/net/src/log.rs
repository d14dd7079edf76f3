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

/// Length of one window of [`ConnEventLog`].
pub const CONN_EVENT_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
/// Lines one client (IPv4 address or IPv6 /64) may cause per window and kind of event.
pub const CONN_EVENTS_PER_CLIENT: u32 = 5;
/// Lines all clients together may cause per window and kind of event.
pub const CONN_EVENTS_PER_WINDOW: u32 = 200;
/// Clients tracked per window; past it, new clients only count against the total.
const CONN_EVENT_CLIENTS: usize = 10_000;

/// Events a client causes once per connection, before any session exists (refused at a
/// connection limit, a failed TLS handshake): a client opening connections in a loop must not
/// write a line for each, nor may many clients together. In each window of
/// [`CONN_EVENT_WINDOW`], each client's first [`CONN_EVENTS_PER_CLIENT`] events and at most
/// [`CONN_EVENTS_PER_WINDOW`] in all are logged; the others are counted, and the first event of the
/// next window reports how many were left out.
#[derive(Debug, Default)]
pub struct ConnEventLog {
    state: std::sync::Mutex<ConnEventWindow>,
}

#[derive(Debug, Default)]
struct ConnEventWindow {
    started: Option<std::time::Instant>,
    per_client: BTreeMap<std::net::IpAddr, u32>,
    logged: u32,
    suppressed: u64,
}

/// What to do with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnEventVerdict {
    /// Write this event's line.
    pub log: bool,
    /// Events of the previous window that were not logged (to report once, now).
    pub suppressed_before: u64,
}

impl ConnEventLog {
    pub const fn new() -> ConnEventLog {
        ConnEventLog {
            state: std::sync::Mutex::new(ConnEventWindow {
                started: None,
                per_client: BTreeMap::new(),
                logged: 0,
                suppressed: 0,
            }),
        }
    }

    /// Counts an event of `ip` at `now`.
    pub fn record(&self, ip: std::net::IpAddr, now: std::time::Instant) -> ConnEventVerdict {
        let mut w = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut suppressed_before = 0;
        if w.started
            .is_none_or(|t| now.saturating_duration_since(t) >= CONN_EVENT_WINDOW)
        {
            suppressed_before = w.suppressed;
            *w = ConnEventWindow {
                started: Some(now),
                ..ConnEventWindow::default()
            };
        }
        let key = crate::ip::client_key(ip);
        let tracked = w.per_client.len() < CONN_EVENT_CLIENTS || w.per_client.contains_key(&key);
        let client_ok = if tracked {
            let n = w.per_client.entry(key).or_insert(0);
            *n += 1;
            *n <= CONN_EVENTS_PER_CLIENT
        } else {
            false
        };
        let log = client_ok && w.logged < CONN_EVENTS_PER_WINDOW;
        if log {
            w.logged += 1;
        } else {
            w.suppressed += 1;
        }
        ConnEventVerdict {
            log,
            suppressed_before,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_events_are_bounded_per_client_and_in_all_and_reported() {
        let log = ConnEventLog::new();
        let t0 = std::time::Instant::now();
        let a: std::net::IpAddr = "192.0.2.1".parse().expect("ip");
        let logged = (0..1000).filter(|_| log.record(a, t0).log).count();
        assert_eq!(logged, CONN_EVENTS_PER_CLIENT as usize);
        // Many clients: the total bound.
        let many = (0..2000u32)
            .filter(|i| {
                let ip = std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
                log.record(ip, t0).log
            })
            .count();
        assert_eq!(many + logged, CONN_EVENTS_PER_WINDOW as usize);
        // The next window starts afresh and says how many were left out.
        let v = log.record(a, t0 + CONN_EVENT_WINDOW);
        assert!(v.log);
        assert_eq!(
            v.suppressed_before,
            1000 + 2000 - u64::from(CONN_EVENTS_PER_WINDOW)
        );
        assert_eq!(log.record(a, t0 + CONN_EVENT_WINDOW).suppressed_before, 0);
    }

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
