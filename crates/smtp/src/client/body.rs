//! The message as it goes on the wire: CRLF line endings only (RFC 5321 §2.3.8: no bare CR or LF
//! is ever emitted) and, for DATA, dot-stuffing (§4.5.2) with the `CRLF.CRLF` terminator.

/// Returns the message with every line ending as CRLF (bare LF and bare CR become CRLF) and a final
/// CRLF. Messages accepted by our own server are already in this form; this guards the rest.
pub fn normalize(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 2);
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'\r' => {
                out.extend_from_slice(b"\r\n");
                if raw.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// DATA form of a normalized message: lines starting with "." get a second one, and the
/// terminator follows. `normalized` must come from [`normalize`].
pub fn dot_stuff(normalized: &[u8]) -> Vec<u8> {
    let extra = normalized.iter().filter(|&&b| b == b'.').count().min(1024);
    let mut out = Vec::with_capacity(normalized.len() + extra + 5);
    let mut at_line_start = true;
    for &b in normalized {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// True when the bytes contain anything outside 7-bit ASCII (BODY=8BITMIME is then announced).
pub fn is_8bit(raw: &[u8]) -> bool {
    raw.iter().any(|&b| b >= 0x80)
}

/// True when the header section has UTF-8 (RFC 6532 headers need SMTPUTF8 on the way, RFC 6531 §3.4).
pub fn headers_need_utf8(raw: &[u8]) -> bool {
    let end = message::header_end(raw);
    is_8bit(&raw[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_every_line_ending() {
        assert_eq!(normalize(b"a\nb\rc\r\nd"), b"a\r\nb\r\nc\r\nd\r\n");
        assert_eq!(normalize(b"a\r\n"), b"a\r\n");
        assert_eq!(normalize(b"\r\r\n\n"), b"\r\n\r\n\r\n");
        assert_eq!(normalize(b""), b"");
    }

    #[test]
    fn no_bare_cr_or_lf_survives() {
        let out = normalize(b"x\r\ry\n\nz\r");
        for (i, &b) in out.iter().enumerate() {
            if b == b'\r' {
                assert_eq!(out.get(i + 1), Some(&b'\n'));
            }
            if b == b'\n' {
                assert_eq!(out[i - 1], b'\r');
            }
        }
    }

    #[test]
    fn stuffs_leading_dots_and_terminates() {
        assert_eq!(
            dot_stuff(b".hidden\r\nok.\r\n.\r\n..\r\n"),
            b"..hidden\r\nok.\r\n..\r\n...\r\n.\r\n"
        );
        assert_eq!(dot_stuff(b""), b".\r\n");
    }

    #[test]
    fn detects_utf8_headers_only_in_headers() {
        assert!(!headers_need_utf8(
            b"Subject: hi\r\n\r\nd\xc3\xa9j\xc3\xa0\r\n"
        ));
        assert!(headers_need_utf8(
            b"Subject: d\xc3\xa9j\xc3\xa0\r\n\r\nbody\r\n"
        ));
    }
}
