//! SMTP replies: a basic code (RFC 5321 §4.2), an enhanced status code (RFC 3463, announced with
//! ENHANCEDSTATUSCODES, RFC 2034) and a text. The text is what the client sees; details go to the log.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// "x.y.z"; empty for the greeting and replies RFC 2034 exempts (220, 221 may carry one too).
    pub enhanced: &'static str,
    pub text: String,
}

impl Reply {
    pub fn new(code: u16, enhanced: &'static str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced,
            text: text.into(),
        }
    }

    /// A 4xx reply: the client should try again later.
    pub fn is_temporary(&self) -> bool {
        (400..500).contains(&self.code)
    }

    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// Wire form: one line, or several (`250-...`) when the text has several lines.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }

    pub fn write_to(&self, out: &mut Vec<u8>) {
        let lines: Vec<&str> = self.text.split('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            let line = line.trim_end_matches('\r');
            if self.enhanced.is_empty() {
                out.extend_from_slice(format!("{}{}{}\r\n", self.code, sep, line).as_bytes());
            } else {
                out.extend_from_slice(
                    format!("{}{}{} {}\r\n", self.code, sep, self.enhanced, line).as_bytes(),
                );
            }
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.enhanced.is_empty() {
            write!(f, "{} {}", self.code, self.text)
        } else {
            write!(f, "{} {} {}", self.code, self.enhanced, self.text)
        }
    }
}

// Replies used in several places. Codes follow RFC 5321 §4.2.3 and RFC 3463 / the IANA registry.
pub fn ok(text: &str) -> Reply {
    Reply::new(250, "2.0.0", text)
}
pub fn syntax(text: &str) -> Reply {
    Reply::new(501, "5.5.4", text)
}
pub fn bad_sequence(text: &str) -> Reply {
    Reply::new(503, "5.5.1", text)
}
pub fn line_too_long() -> Reply {
    Reply::new(500, "5.5.6", "Line too long")
}
pub fn unknown_command() -> Reply {
    Reply::new(500, "5.5.2", "Command not recognized")
}
pub fn bare_newline() -> Reply {
    // RFC 5321 §2.3.8: lines end with CRLF only; a bare CR or LF is refused (SMTP smuggling).
    Reply::new(
        500,
        "5.5.2",
        "Bare CR or LF not allowed; lines must end with CRLF",
    )
}
pub fn too_many_errors() -> Reply {
    Reply::new(421, "4.7.0", "Too many errors, closing connection")
}
pub fn timeout() -> Reply {
    Reply::new(421, "4.4.2", "Timeout, closing connection")
}
/// RFC 5321 §3.8: a server that must shut down answers 421 and closes; RFC 3463 X.3.2: the
/// system is not accepting network messages.
pub fn shutting_down() -> Reply {
    Reply::new(421, "4.3.2", "Service shutting down")
}
pub fn local_error() -> Reply {
    Reply::new(451, "4.3.0", "Local error in processing, try again later")
}
pub fn storage_full() -> Reply {
    Reply::new(452, "4.3.1", "Insufficient system storage, try again later")
}
pub fn too_big() -> Reply {
    Reply::new(
        552,
        "5.3.4",
        "Message size exceeds fixed maximum message size",
    )
}
