//! Settings of the IMAP service (filled from `facteur.toml`).

use std::time::Duration;

/// Longest command line, CRLF included, outside literals.
pub const DEFAULT_LINE_LENGTH: usize = 64 * 1024;
/// Default size limit of a message (APPEND) and of any literal.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 50 * 1024 * 1024;
/// Largest synchronizing literal accepted before login (LOGIN arguments need no more).
pub const PRE_AUTH_MAX_LITERAL: u32 = 8 * 1024;
/// Deepest nesting of SEARCH keys (parentheses, NOT, OR) evaluated. Fixed rather than
/// configurable: evaluation recurses, and this bound keeps the stack small whatever is set.
pub const MAX_SEARCH_DEPTH: usize = 32;
/// Default for [`ImapConfig::max_search_keys`].
pub const DEFAULT_MAX_SEARCH_KEYS: usize = 1000;

#[derive(Debug, Clone)]
pub struct ImapConfig {
    /// Announced in the greeting.
    pub hostname: String,
    /// Largest APPEND, and largest literal of any command.
    pub max_message_size: u64,
    /// Longest command line (outside literals), CRLF included.
    pub line_length: usize,
    /// Bad commands (and failed logins) before the connection is closed.
    pub max_errors: u32,
    /// Inactivity allowed before login.
    pub pre_auth_timeout: Duration,
    /// Inactivity allowed after login, IDLE included (RFC 9051 §5.4: at least 30 minutes).
    pub idle_timeout: Duration,
    /// Most search keys (each criterion, OR and NOT counted) one SEARCH, SORT or THREAD may
    /// carry; more is refused with `NO [LIMIT]` before anything is evaluated.
    pub max_search_keys: usize,
}

impl ImapConfig {
    /// Largest command held in memory, lines and literals together: one message of
    /// `max_message_size` with command lines around it. A MULTIAPPEND batch is bounded by it too.
    pub fn max_command_size(&self) -> u64 {
        self.max_message_size
            .saturating_add(self.line_length as u64 * 2)
            .min(u64::from(u32::MAX))
    }
}

impl Default for ImapConfig {
    fn default() -> Self {
        ImapConfig {
            hostname: "localhost".into(),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            line_length: DEFAULT_LINE_LENGTH,
            max_errors: 10,
            pre_auth_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(30 * 60),
            max_search_keys: DEFAULT_MAX_SEARCH_KEYS,
        }
    }
}
