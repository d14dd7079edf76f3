//! Message data: the DATA reader (RFC 5321 §4.1.1.4, §4.5.2) and checks of BDAT chunks (RFC 3030).
//!
//! Only CRLF "." CRLF ends DATA — with the dot line preceded by CRLF — so none of the malformed
//! end-of-data sequences used for SMTP smuggling (`\n.\n`, `\n.\r\n`, `\r.\r`, ...) can end a message
//! or start a second one. The readers append to a caller's buffer, which `spool` keeps in memory or
//! writes to a file, so memory is bounded by the spool's threshold and budget, not the message size.

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
    /// Message bytes produced so far (dot-unstuffed), for the size limit.
    produced: u64,
}

impl DataReader {
    pub fn new(max_size: u64, max_line: usize, policy: BareNewline) -> DataReader {
        DataReader {
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
            produced: 0,
        }
    }

    /// Bytes received so far (for the minimum data rate).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// True once the message is known to be refused: the caller may drop what it kept.
    pub fn failed(&self) -> bool {
        self.error.is_some()
    }

    /// Consumes input, appending the message's bytes to `out`; returns how many input bytes
    /// were used and whether the end of data was reached. Nothing is appended after an error.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, bool) {
        for (i, &b) in input.iter().enumerate() {
            self.received += 1;
            if self.pending_cr {
                self.pending_cr = false;
                if b == b'\n' {
                    if self.end_line(true, out) {
                        return (i + 1, true);
                    }
                    continue;
                }
                // A CR not followed by LF.
                self.bare();
                self.end_line(false, out);
            }
            match b {
                b'\r' => self.pending_cr = true,
                b'\n' => {
                    self.bare();
                    self.end_line(false, out);
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
            self.line = Vec::new();
        }
    }

    /// Ends the current line; returns true when it was the end-of-data line.
    fn end_line(&mut self, crlf: bool, out: &mut Vec<u8>) -> bool {
        let is_end = crlf && self.prev_crlf && self.line_len == 1 && self.first == Some(b'.');
        self.prev_crlf = crlf;
        if is_end {
            return true;
        }
        if self.error.is_none() {
            // RFC 5321 §4.5.2: remove the first of a leading dot (transparency).
            let start = usize::from(self.line.first() == Some(&b'.'));
            let new_len = self.produced + (self.line.len() - start) as u64 + 2;
            if new_len > self.max_size {
                self.fail(DataError::TooBig);
            } else {
                out.extend_from_slice(&self.line[start..]);
                out.extend_from_slice(b"\r\n");
                self.produced = new_len;
            }
        }
        self.line.clear();
        self.line_len = 0;
        self.first = None;
        false
    }

    /// Whether the message received is acceptable (its bytes went to the `out` buffers).
    pub fn finish(self) -> Result<(), DataError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Checks (and with `Normalize`, repairs) the line endings of a BDAT message as its chunks arrive
/// (RFC 3030 chunks carry raw octets, so nothing is unstuffed): a NUL or an overlong line refuses
/// the message; a bare CR or LF refuses it under `Reject` and becomes CRLF under `Normalize`.
#[derive(Debug)]
pub struct ChunkChecker {
    max_line: usize,
    policy: BareNewline,
    prev_cr: bool,
    line: usize,
    bare: bool,
    error: Option<DataError>,
}

impl ChunkChecker {
    pub fn new(max_line: usize, policy: BareNewline) -> ChunkChecker {
        ChunkChecker {
            max_line,
            policy,
            prev_cr: false,
            line: 0,
            bare: false,
            error: None,
        }
    }

    pub fn failed(&self) -> bool {
        self.error.is_some() || (self.bare && self.policy == BareNewline::Reject)
    }

    /// Checks `chunk` and appends the message's bytes to `out` (nothing once it failed).
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        for &b in chunk {
            if self.error.is_some() {
                return;
            }
            if std::mem::take(&mut self.prev_cr) {
                out.extend_from_slice(b"\r\n");
                self.line = 0;
                if b == b'\n' {
                    continue;
                }
                // A CR not followed by LF.
                self.bare = true;
            }
            match b {
                b'\r' => self.prev_cr = true,
                b'\n' => {
                    self.bare = true;
                    self.line = 0;
                    out.extend_from_slice(b"\r\n");
                }
                0 => self.error = Some(DataError::Nul),
                _ => {
                    self.line += 1;
                    if self.line + 2 > self.max_line {
                        self.error = Some(DataError::LineTooLong);
                    } else {
                        out.push(b);
                    }
                }
            }
        }
    }

    /// The verdict once the last chunk was fed; appends a final bare CR's line end.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), DataError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if std::mem::take(&mut self.prev_cr) {
            self.bare = true;
            out.extend_from_slice(b"\r\n");
        }
        if self.bare && self.policy == BareNewline::Reject {
            return Err(DataError::BareNewline);
        }
        Ok(())
    }
}

/// Checks (and with `Normalize`, repairs) the line endings of a complete BDAT message.
pub fn check_chunked(
    msg: Vec<u8>,
    max_line: usize,
    policy: BareNewline,
) -> Result<Vec<u8>, DataError> {
    let mut c = ChunkChecker::new(max_line, policy);
    let mut out = Vec::with_capacity(msg.len());
    c.feed(&msg, &mut out);
    c.finish(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(input: &[u8], policy: BareNewline) -> (Result<Vec<u8>, DataError>, usize, bool) {
        let mut r = DataReader::new(1 << 20, 1000, policy);
        let mut out = Vec::new();
        let (used, done) = r.feed(input, &mut out);
        (r.finish().map(|()| out), used, done)
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
                let mut out = Vec::new();
                let (_, done) = r.feed(&input, &mut out);
                assert!(!done, "{seq:?} ended DATA ({policy:?})");
                // The real end still works afterwards.
                let (_, done) = r.feed(b"\r\n.\r\n", &mut out);
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
        let mut out = Vec::new();
        for (i, b) in input.iter().enumerate() {
            let (_, done) = r.feed(&[*b], &mut out);
            assert_eq!(done, i == input.len() - 1);
        }
        r.finish().expect("ok");
        assert_eq!(out, b"a\r\nb\r\n");
        let (msg, _, done) = read(
            &[b"x".repeat(1200).as_slice(), b"\r\n.\r\n"].concat(),
            BareNewline::Reject,
        );
        assert!(done);
        assert_eq!(msg.err(), Some(DataError::LineTooLong));
        let mut r = DataReader::new(10, 1000, BareNewline::Reject);
        let (_, done) = r.feed(b"0123456789abc\r\n.\r\n", &mut Vec::new());
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
        assert_eq!(
            check_chunked(b"a\r".to_vec(), 1000, BareNewline::Normalize),
            Ok(b"a\r\n".to_vec())
        );
        assert_eq!(
            check_chunked(b"a\0b".to_vec(), 1000, BareNewline::Normalize),
            Err(DataError::Nul)
        );
        assert_eq!(
            check_chunked(
                [b"x".repeat(999), b"\r\n".to_vec()].concat(),
                1000,
                BareNewline::Reject
            ),
            Err(DataError::LineTooLong)
        );
    }

    #[test]
    fn chunk_boundaries_do_not_matter() {
        // A CR at the end of one chunk and its LF at the start of the next is a CRLF.
        let msg = b"Subject: a\r\n\r\nx\ry\nz\r\n";
        for policy in [BareNewline::Reject, BareNewline::Normalize] {
            let whole = check_chunked(msg.to_vec(), 1000, policy);
            for cut in 0..msg.len() {
                let mut c = ChunkChecker::new(1000, policy);
                let mut out = Vec::new();
                c.feed(&msg[..cut], &mut out);
                c.feed(&msg[cut..], &mut out);
                assert_eq!(c.finish(&mut out).map(|()| out), whole, "cut at {cut}");
            }
        }
    }
}
