//! Replies from a remote SMTP server (RFC 5321 §4.2): a code, an optional enhanced status code
//! (RFC 3463) and text, possibly over several lines. Read with a bound on size so a hostile server
//! cannot make us buffer without end.

use std::fmt;

/// RFC 5321 §4.5.3.1.5 allows reply lines of 512 octets; real servers send longer texts, so we
/// accept up to this before calling the reply malformed.
pub const MAX_REPLY_LINE: usize = 4096;
/// A multi-line reply (EHLO) larger than this is refused.
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteReply {
    pub code: u16,
    /// "x.y.z" when the server sent one, else empty.
    pub enhanced: String,
    /// The text of every line, joined with "\n" (without codes).
    pub text: String,
}

impl RemoteReply {
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
    pub fn is_temporary(&self) -> bool {
        (400..500).contains(&self.code)
    }
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }
    /// The lines after the first (EHLO keywords).
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.text.split('\n')
    }
}

impl fmt::Display for RemoteReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.text.replace('\n', " / ");
        if self.enhanced.is_empty() {
            write!(f, "{} {}", self.code, text)
        } else {
            write!(f, "{} {} {}", self.code, self.enhanced, text)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// More bytes are needed.
    Incomplete,
    /// Not an SMTP reply (bad code, mixed codes, over-long).
    Malformed(String),
}

/// Parses one complete reply at the start of `buf`. Returns it and the bytes consumed.
pub fn parse(buf: &[u8]) -> Result<(RemoteReply, usize), ParseError> {
    let mut pos = 0;
    let mut code: Option<u16> = None;
    let mut enhanced = String::new();
    let mut lines: Vec<String> = Vec::new();
    loop {
        let rest = &buf[pos..];
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            if rest.len() > MAX_REPLY_LINE || pos + rest.len() > MAX_REPLY_BYTES {
                return Err(ParseError::Malformed("reply line too long".into()));
            }
            return Err(ParseError::Incomplete);
        };
        if nl > MAX_REPLY_LINE {
            return Err(ParseError::Malformed("reply line too long".into()));
        }
        let line = &rest[..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        pos += nl + 1;
        if pos > MAX_REPLY_BYTES {
            return Err(ParseError::Malformed("reply too long".into()));
        }
        if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
            return Err(ParseError::Malformed(format!(
                "not a reply: {:?}",
                String::from_utf8_lossy(&line[..line.len().min(64)])
            )));
        }
        let this = u16::from(line[0] - b'0') * 100
            + u16::from(line[1] - b'0') * 10
            + u16::from(line[2] - b'0');
        if !(200..600).contains(&this) {
            return Err(ParseError::Malformed(format!("reply code {this}")));
        }
        if code.is_some_and(|c| c != this) {
            return Err(ParseError::Malformed("mixed codes in one reply".into()));
        }
        code = Some(this);
        let last = match line.get(3) {
            None | Some(b' ') => true,
            Some(b'-') => false,
            Some(_) => return Err(ParseError::Malformed("bad separator".into())),
        };
        let mut text = String::from_utf8_lossy(line.get(4..).unwrap_or_default()).into_owned();
        // RFC 3463 in the first line: class.subject.detail, class matching the code's first digit.
        if lines.is_empty()
            && let Some((first, tail)) = text.split_once(' ').or(Some((text.as_str(), "")))
            && is_enhanced(first, this)
        {
            enhanced = first.to_string();
            text = tail.to_string();
        } else if !lines.is_empty()
            && !enhanced.is_empty()
            && let Some(tail) = text.strip_prefix(&format!("{enhanced} "))
        {
            text = tail.to_string();
        }
        lines.push(text);
        if last {
            return Ok((
                RemoteReply {
                    code: this,
                    enhanced,
                    text: lines.join("\n"),
                },
                pos,
            ));
        }
    }
}

fn is_enhanced(s: &str, code: u16) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
        && parts[0] == (code / 100).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_multi_line() {
        let (r, n) = parse(b"250 2.1.0 Ok\r\nrest").unwrap();
        assert_eq!(
            (r.code, r.enhanced.as_str(), r.text.as_str(), n),
            (250, "2.1.0", "Ok", 14)
        );
        let (r, _) = parse(b"250-mx.example\r\n250-PIPELINING\r\n250 SIZE 100\r\n").unwrap();
        assert_eq!(r.text, "mx.example\nPIPELINING\nSIZE 100");
        assert_eq!(r.enhanced, "");
        let (r, _) = parse(b"554\r\n").unwrap();
        assert_eq!((r.code, r.text.as_str()), (554, ""));
    }

    #[test]
    fn incomplete_and_malformed() {
        assert_eq!(parse(b"250-a\r\n250 b"), Err(ParseError::Incomplete));
        assert!(matches!(parse(b"hello\r\n"), Err(ParseError::Malformed(_))));
        assert!(matches!(
            parse(b"250-a\r\n550 b\r\n"),
            Err(ParseError::Malformed(_))
        ));
        assert!(matches!(parse(b"099 x\r\n"), Err(ParseError::Malformed(_))));
        let long = vec![b'2'; MAX_REPLY_LINE + 10];
        assert!(matches!(parse(&long), Err(ParseError::Malformed(_))));
    }

    #[test]
    fn enhanced_code_must_match_class() {
        let (r, _) = parse(b"550 4.1.1 odd\r\n").unwrap();
        assert_eq!(r.enhanced, "");
        assert_eq!(r.text, "4.1.1 odd");
        let (r, _) = parse(b"550-5.1.1 no such user\r\n550 5.1.1 really\r\n").unwrap();
        assert_eq!(r.text, "no such user\nreally");
    }
}
