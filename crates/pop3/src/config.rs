//! Settings of the POP3 service (filled from `facteur.toml`).

use std::time::Duration;

/// Longest command line, CRLF included. RFC 2449 §4 allows 255 octets for a command; we accept up
/// to 512 so that an AUTH PLAIN initial response with a long password still fits.
pub const DEFAULT_LINE_LENGTH: usize = 512;
/// RFC 1939 §3: the inactivity autologout timer must be at least 10 minutes.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Bad commands (and failed logins) before the connection is closed.
pub const DEFAULT_MAX_ERRORS: u32 = 10;

/// RFC 2449 §6.7 EXPIRE: the minimum number of days the server keeps a message after a client
/// retrieved it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expire {
    /// Messages are never removed by the server (`EXPIRE NEVER`).
    #[default]
    Never,
    /// `EXPIRE n`. With 0 the client may not leave mail on the server: the messages it retrieved
    /// are removed when the session ends with QUIT. Other values are advertised only: the server
    /// keeps mail longer than any minimum, which the RFC allows.
    Days(u32),
}

#[derive(Debug, Clone)]
pub struct Pop3Config {
    /// Announced in the greeting.
    pub hostname: String,
    /// Longest command line, CRLF included.
    pub line_length: usize,
    /// Bad commands (and failed logins) before the connection is closed.
    pub max_errors: u32,
    /// Time from the connection's start within which the client must log in (a deadline, not
    /// reset by activity).
    pub pre_auth_timeout: Duration,
    /// Inactivity allowed after login.
    pub idle_timeout: Duration,
    /// Advertised in CAPA (RFC 2449 §6.7).
    pub expire: Expire,
    /// RFC 2449 §6.5: shortest time between two logins to one account; `None`: no limit, and
    /// LOGIN-DELAY is not advertised.
    pub login_delay: Option<Duration>,
}

impl Default for Pop3Config {
    fn default() -> Self {
        Pop3Config {
            hostname: "localhost".into(),
            line_length: DEFAULT_LINE_LENGTH,
            max_errors: DEFAULT_MAX_ERRORS,
            pre_auth_timeout: Duration::from_secs(60),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            expire: Expire::Never,
            login_delay: None,
        }
    }
}
