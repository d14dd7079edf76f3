//! Settings of the SMTP, submission and LMTP services (filled from `facteur.toml`).

use std::sync::Arc;
use std::time::Duration;

use crate::spool::SpoolConfig;

/// What to do with a bare LF (or CR) in a command or in message data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareNewline {
    /// Refuse: commands get 500 5.5.2, messages 550 5.5.2 after the end of DATA (the default).
    Reject,
    /// Accept a bare LF as a line ending (stored as CRLF). DATA still ends only at CRLF.CRLF, so
    /// smuggling stays impossible.
    Normalize,
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// Announced in the greeting, EHLO and Received headers.
    pub hostname: String,
    pub max_message_size: u64,
    pub max_recipients: usize,
    /// Longest command line, CRLF included (RFC 5321 §4.5.3.1.4: at least 512).
    pub line_length: usize,
    /// Longest line of message text, CRLF included (RFC 5321 §4.5.3.1.6: 1000).
    pub text_line_length: usize,
    /// Errors (bad commands, refused recipients) before the connection is closed.
    pub max_errors: u32,
    /// NOOP, RSET, VRFY, EXPN and HELP allowed between accepted messages before each further one
    /// counts as an error.
    pub max_junk_commands: u32,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    /// Below this many bytes per second (averaged after `data_timeout / 10`), DATA is abandoned.
    pub min_data_rate: u64,
    pub bare_newline: BareNewline,
    /// VRFY answers 252 (cannot verify) when false, as recommended (RFC 5321 §3.5.3, §7.3).
    pub vrfy: bool,
    /// Wait this long before the greeting; a client that talks first is dropped (RFC 5321 §4.3.1).
    pub greeting_delay: Duration,
    /// Domain of `<postmaster>` without a domain (RFC 5321 §4.5.1).
    pub primary_domain: String,
    /// Where message data waits while it is received (memory budget, spool folder).
    pub spool: Arc<SpoolConfig>,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            hostname: "localhost".into(),
            max_message_size: 50 * 1024 * 1024,
            max_recipients: 100,
            line_length: 512,
            text_line_length: 1000,
            max_errors: 10,
            max_junk_commands: 100,
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
            min_data_rate: 1024,
            bare_newline: BareNewline::Reject,
            vrfy: false,
            greeting_delay: Duration::ZERO,
            primary_domain: "localhost".into(),
            spool: Arc::new(SpoolConfig::default()),
        }
    }
}
