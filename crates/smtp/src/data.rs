//! Message data: the DATA reader (RFC 5321 §4.1.1.4, §4.5.2) and checks of BDAT chunks (RFC 3030).
//!
//! Only CRLF "." CRLF ends DATA — with the dot line preceded by CRLF — so none of the malformed
//! end-of-data sequences used for SMTP smuggling (`\n.\n`, `\n.\r\n`, `\r.\r`, ...) can end a message
//! or start a second one. Memory is bounded by the message size limit.

use crate::config::BareNewline;

/// Why a received message is refused once its data is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataError {
    TooBig,
    LineTooLong,
    BareNewline,
    /// A NUL octet: never valid in text (RFC 5321 §4.1.1.4 data is text lines), and a relay that
    /// drops NULs would turn `CRLF NUL . CRLF` into an end of data (smuggling).
    Nul,
}

pub struct DataReader {
    out: Vec<u8>,
    line: Vec<u8>,
    line_len: usize,
    /// First byte of the current line, kept even when the line itself is not (after an error).
    first: Option<u8>,
    max_size: u64,
    max_line: usize,
    policy: BareNewline,
    error: Option<DataError>,
    pending_cr: bool,
    /// The previous line ended with CRLF (true at the start: the DATA command's CRLF).
    prev_crlf: bool,
    received: u64,
}

impl DataReader {
    pub fn new(max_size: u64, max_line: usize, policy: BareNewline) -> DataReader {
        DataReader {
            out: Vec::new(),
            line: Vec::new(),
            line_len: 0,
            first: None,
            max_size,
            max_line,
            policy,
            error: None,
            pending_cr: false,
            prev_crlf: true,
            received: 0,
        }
    }

    /// Bytes received so far (for the minimum data rate).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Consumes input; returns how many bytes were used and whether the end of data was reached.
    pub fn feed(&mut self, input: &[u8]) -> (usize, bool) {
        for (i, &b) in input.iter().enumerate() {
            self.received += 1;
            if self.pending_cr {
                self.pending_cr = false;
                if b == b'\n' {
                    if self.end_line(true) {
                        return (i + 1, true);
                    }
                    continue;
                }
                // A CR not followed by LF.
                self.bare();
                self.end_line(false);
            }
            match b {
                b'\r' => self.pending_cr = true,
                b'\n' => {
                    self.bare();
                    self.end_line(false);
                }
                0 => {
                    self.fail(DataError::Nul);
                    self.line_len += 1;
                }
                _ => {
                    if self.line_len == 0 {
                        self.first = Some(b);
                    }
                    self.line_len += 1;
                    if self.line_len + 2 > self.max_line {
                        self.fail(DataError::LineTooLong);
                    } else if self.error.is_none() {
                        self.line.push(b);
                    }
                }
            }
        }
        (input.len(), false)
    }

    fn bare(&mut self) {
        if self.policy == BareNewline::Reject {
            self.fail(DataError::BareNewline);
        }
    }

    fn fail(&mut self, e: DataError) {
        if self.error.is_none() {
            self.error = Some(e);
            // Nothing more is kept: the message will be refused.
            self.out = Vec::new();
            self.line = Vec::new();
        }
    }

    /// Ends the current line; returns true when it was the end-of-data line.
    fn end_line(&mut self, crlf: bool) -> bool {
        let is_end = crlf && self.prev_crlf && self.line_len == 1 && self.first == Some(b'.');
        self.prev_crlf = crlf;
        if is_end {
            return true;
        }
        if self.error.is_none() {
            // RFC 5321 §4.5.2: remove the first of a leading dot (transparency).
            let start = usize::from(self.line.first() == Some(&b'.'));
            let new_len = self.out.len() as u64 + (self.line.len() - start) as u64 + 2;
            if new_len > self.max_size {
                self.fail(DataError::TooBig);
            } else {
                self.out.extend_from_slice(&self.line[start..]);
                self.out.extend_from_slice(b"\r\n");
            }
        }
        self.line.clear();
        self.line_len = 0;
        self.first = None;
        false
    }

    pub fn finish(self) -> Result<Vec<u8>, DataError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.out),
        }
    }
}

/// Checks (and with `Normalize`, repairs) the line endings of a complete BDAT message.
pub fn check_chunked(
    mut msg: Vec<u8>,
    max_line: usize,
    policy: BareNewline,
) -> Result<Vec<u8>, DataError> {
    let mut bare = false;
    let mut line = 0usize;
    for (i, &b) in msg.iter().enumerate() {
        match b {
            b'\n' if i == 0 || msg[i - 1] != b'\r' => {
                bare = true;
                line = 0;
            }
            b'\n' => line = 0,
            b'\r' if msg.get(i + 1) != Some(&b'\n') => {
                bare = true;
                line = 0;
            }
            b'\r' => {}
            0 => return Err(DataError::Nul),
            _ => {
                line += 1;
                if line + 2 > max_line {
                    return Err(DataError::LineTooLong);
                }
            }
        }
    }
    if !bare {
        return Ok(msg);
    }
    if policy == BareNewline::Reject {
        return Err(DataError::BareNewline);
    }
    let mut out = Vec::with_capacity(msg.len() + 64);
    let mut i = 0;
    while i < msg.len() {
        match msg[i] {
            b'\r' if msg.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 2;
            }
            b'\r' | b'\n' => {
                out.extend_from_slice(b"\r\n");
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    msg.clear();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(input: &[u8], policy: BareNewline) -> (Result<Vec<u8>, DataError>, usize, bool) {
        let mut r = DataReader::new(1 << 20, 1000, policy);
        let (used, done) = r.feed(input);
        (r.finish(), used, done)
    }

    #[test]
    fn ends_only_at_crlf_dot_crlf() {
        let (msg, used, done) = read(
            b"Subject: x\r\n\r\nbody\r\n..dot\r\n.\r\nQUIT\r\n",
            BareNewline::Reject,
        );
        assert!(done);
        assert_eq!(used, 30);
        assert_eq!(msg.expect("ok"), b"Subject: x\r\n\r\nbody\r\n.dot\r\n");
    }

    #[test]
    fn smuggling_sequences_never_end_data() {
        for seq in [
            &b"\n.\n"[..],
            b"\n.\r\n",
            b"\r.\r",
            b"\r.\n",
            b"\n.\r",
            b"\r.\r\n",
            b"\r\n.\r",
            b"\r\n\0.\r\n",
        ] {
            let mut input = b"Subject: a\r\n\r\nx".to_vec();
            input.extend_from_slice(seq);
            input.extend_from_slice(b"MAIL FROM:<evil@x>\r\n");
            for policy in [BareNewline::Reject, BareNewline::Normalize] {
                let mut r = DataReader::new(1 << 20, 1000, policy);
                let (_, done) = r.feed(&input);
                assert!(!done, "{seq:?} ended DATA ({policy:?})");
                // The real end still works afterwards.
                let (_, done) = r.feed(b"\r\n.\r\n");
                assert!(done, "{seq:?}: real end not seen");
                let expected = if seq == b"\r\n\0.\r\n" {
                    Some(DataError::Nul)
                } else if policy == BareNewline::Reject {
                    Some(DataError::BareNewline)
                } else {
                    None
                };
                if expected.is_some() {
                    assert_eq!(r.finish().err(), expected, "{seq:?}");
                }
            }
        }
    }

    #[test]
    fn split_input_and_limits() {
        let mut r = DataReader::new(1 << 20, 1000, BareNewline::Reject);
        let input = b"a\r\nb\r\n.\r\n";
        for (i, b) in input.iter().enumerate() {
            let (_, done) = r.feed(&[*b]);
            assert_eq!(done, i == input.len() - 1);
        }
        assert_eq!(r.finish().expect("ok"), b"a\r\nb\r\n");
        let (msg, _, done) = read(
            &[b"x".repeat(1200).as_slice(), b"\r\n.\r\n"].concat(),
            BareNewline::Reject,
        );
        assert!(done);
        assert_eq!(msg.err(), Some(DataError::LineTooLong));
        let mut r = DataReader::new(10, 1000, BareNewline::Reject);
        let (_, done) = r.feed(b"0123456789abc\r\n.\r\n");
        assert!(done);
        assert_eq!(r.finish().err(), Some(DataError::TooBig));
        let (msg, _, _) = read(b"a\nb\r\n.\r\n", BareNewline::Normalize);
        assert_eq!(msg.expect("normalized"), b"a\r\nb\r\n");
    }

    #[test]
    fn chunked() {
        assert_eq!(
            check_chunked(b"a\r\nb\r\n".to_vec(), 1000, BareNewline::Reject),
            Ok(b"a\r\nb\r\n".to_vec())
        );
        assert_eq!(
            check_chunked(b"a\nb".to_vec(), 1000, BareNewline::Reject),
            Err(DataError::BareNewline)
        );
        assert_eq!(
            check_chunked(b"a\nb\rc".to_vec(), 1000, BareNewline::Normalize),
            Ok(b"a\r\nb\r\nc".to_vec())
        );
    }
}
