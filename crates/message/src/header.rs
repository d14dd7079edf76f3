//! Header block splitting: where a header ends, its fields, and their raw values.
//!
//! IMAP serves headers as stored bytes and reports ENVELOPE/BODYSTRUCTURE strings as
//! raw (undecoded) values, so this module works on the bytes themselves rather than on
//! mail-parser's decoded view.

use mail_parser::{HeaderValue, parsers::MessageStream};

/// Offset just after the blank line that ends the header block at the start of `raw`
/// (RFC 5322 §2.1: header fields, then an empty line, then the body), or `raw.len()`
/// when there is no blank line (the whole input is header). Accepts CRLF and bare LF.
pub fn header_end(raw: &[u8]) -> usize {
    // A block that starts with an empty line has an empty header.
    if raw.starts_with(b"\r\n") {
        return 2;
    }
    if raw.starts_with(b"\n") {
        return 1;
    }
    let mut pos = 0;
    while let Some(nl) = find_byte(&raw[pos..], b'\n') {
        let next = pos + nl + 1;
        match raw.get(next..) {
            Some([b'\n', ..]) => return next + 1,
            Some([b'\r', b'\n', ..]) => return next + 2,
            _ => pos = next,
        }
    }
    raw.len()
}

pub(crate) fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// One header field as stored: its name and its raw value (everything after the colon,
/// folding line breaks included, final line break excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
}

impl Field<'_> {
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }

    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(self.name).into_owned()
    }

    /// RFC 5322 §2.2.3 unfolding (CRLF followed by WSP is removed), then trimmed;
    /// 8-bit bytes that are not UTF-8 (RFC 6532 allows UTF-8) are replaced lossily.
    pub fn unfolded(&self) -> String {
        unfold(self.value)
    }

    /// Runs one of mail-parser's structured field parsers over the raw value. Those
    /// parsers stop at a line break not followed by WSP, so one is appended.
    pub fn parse_with(
        &self,
        parser: for<'b> fn(&mut MessageStream<'b>) -> HeaderValue<'b>,
    ) -> HeaderValue<'static> {
        let mut buf = Vec::with_capacity(self.value.len() + 2);
        buf.extend_from_slice(self.value);
        buf.extend_from_slice(b"\r\n");
        let mut stream = MessageStream::new(&buf);
        parser(&mut stream).into_owned()
    }
}

pub(crate) fn unfold(value: &[u8]) -> String {
    let bytes: Vec<u8> = value
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    String::from_utf8_lossy(&bytes).trim().to_string()
}

/// Splits a header block into fields. Lines that are neither a field (`name:`) nor a
/// continuation (leading WSP) are skipped: best effort on malformed input.
pub(crate) fn fields(block: &[u8]) -> Vec<Field<'_>> {
    let mut out: Vec<Field<'_>> = Vec::new();
    // Start and end of the value of the field being built.
    let mut current: Option<(&[u8], usize, usize)> = None;
    let mut pos = 0;
    while pos < block.len() {
        let line_end = find_byte(&block[pos..], b'\n').map_or(block.len(), |n| pos + n + 1);
        let line = &block[pos..line_end];
        let content = trim_eol(line);
        if content.is_empty() {
            // Blank line: end of the header block.
            break;
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            if let Some((_, _, end)) = current.as_mut() {
                *end = pos + content.len();
            }
        } else {
            if let Some((name, start, end)) = current.take() {
                out.push(Field {
                    name,
                    value: &block[start..end],
                });
            }
            if let Some(colon) = find_byte(content, b':') {
                let name = trim_trailing_wsp(&content[..colon]);
                // RFC 5322 §3.6.8: field names are printable US-ASCII except colon.
                if !name.is_empty() && name.iter().all(|b| (33..=126).contains(b)) {
                    current = Some((name, pos + colon + 1, pos + content.len()));
                }
            }
        }
        pos = line_end;
    }
    if let Some((name, start, end)) = current {
        out.push(Field {
            name,
            value: &block[start..end],
        });
    }
    out
}

/// Cuts a header block to at most `max` bytes, at a line boundary. Returns the block and
/// whether it was cut.
pub(crate) fn bounded(block: &[u8], max: usize) -> (&[u8], bool) {
    if block.len() <= max {
        return (block, false);
    }
    let cut = &block[..max];
    let end = cut.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    (&block[..end], true)
}

pub(crate) fn first<'a, 'b>(fields: &'b [Field<'a>], name: &str) -> Option<&'b Field<'a>> {
    fields.iter().find(|f| f.is(name))
}

/// Raw value of the first field with this name, unfolded and trimmed; None when absent
/// or empty (IMAP reports NIL).
pub(crate) fn raw_value(fields: &[Field<'_>], name: &str) -> Option<String> {
    first(fields, name)
        .map(Field::unfolded)
        .filter(|v| !v.is_empty())
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim_trailing_wsp(s: &[u8]) -> &[u8] {
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |p| p + 1);
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_end_variants() {
        assert_eq!(header_end(b"A: b\r\n\r\nbody"), 8);
        assert_eq!(header_end(b"A: b\n\nbody"), 6);
        assert_eq!(header_end(b"\r\nbody"), 2);
        assert_eq!(header_end(b"\nbody"), 1);
        assert_eq!(header_end(b"A: b\r\nC: d"), 10);
        assert_eq!(header_end(b""), 0);
        // A CR-only line is not a blank line under bare-LF parsing, but CRLF-CRLF is.
        assert_eq!(header_end(b"A: b\n\r\nx"), 7);
    }

    #[test]
    fn fields_fold_and_skip_garbage() {
        let block = b"Subject: hello\r\n  world\r\nnot a header\r\nX-A : 1\r\n\r\nbody: no";
        let f = fields(block);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].name, b"Subject");
        assert_eq!(f[0].value, b" hello\r\n  world");
        assert_eq!(f[0].unfolded(), "hello  world");
        assert_eq!(f[1].name, b"X-A");
        assert_eq!(f[1].unfolded(), "1");
    }

    #[test]
    fn bounded_cuts_at_line() {
        let (b, cut) = bounded(b"A: 1\nB: 2\nC: 3\n", 12);
        assert!(cut);
        assert_eq!(b, b"A: 1\nB: 2\n");
        let (b, cut) = bounded(b"A: 1\n", 12);
        assert!(!cut);
        assert_eq!(b, b"A: 1\n");
    }
}
