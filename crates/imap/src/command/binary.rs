//! BINARY (RFC 3516, RFC 9051 §6.4.5 and §7.5.2): the content of a section with its
//! Content-Transfer-Encoding removed, for `FETCH BINARY[...]` and `BINARY.SIZE[...]`.
//!
//! The decoders are written here rather than taken from mail-parser (which `message` uses for
//! search text) because RFC 2045 asks decoders to be lenient where mail-parser gives up: characters
//! outside the base64 alphabet are ignored (§6.8), and a `=` in quoted-printable that does not start
//! an escape is kept as it is (§6.7, note 1). Decoding therefore never fails; only an encoding we do
//! not know does (`UNKNOWN-CTE`). Each decoder makes one pass and never produces more bytes than it
//! reads.

use std::num::NonZeroU32;

use message::{Analysis, BodyPart};

use super::fetch::find_part;

/// A Content-Transfer-Encoding we can remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cte {
    /// 7bit, 8bit, binary: the content is not encoded (RFC 2045 §6.2).
    Identity,
    Base64,
    QuotedPrintable,
}

/// The encoding named by a Content-Transfer-Encoding value (as `message` stores it, uppercase);
/// `None` for one we do not know (RFC 3516 §4.3: answer `NO [UNKNOWN-CTE]`).
pub fn cte(value: &str) -> Option<Cte> {
    // Only the token counts: "base64 (comment)" is base64.
    let token = value
        .trim()
        .split(|c: char| c.is_whitespace() || c == '(' || c == ';')
        .next()
        .unwrap_or_default();
    match token.to_ascii_uppercase().as_str() {
        // A blank value is taken as absent: 7bit (RFC 2045 §6.1).
        "" | "7BIT" | "8BIT" | "BINARY" => Some(Cte::Identity),
        "BASE64" => Some(Cte::Base64),
        "QUOTED-PRINTABLE" => Some(Cte::QuotedPrintable),
        _ => None,
    }
}

/// The section's encoding is not one we can remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownCte;

/// What a `section-binary` names, and how its content is turned into the response.
enum Target<'a> {
    /// Bytes sent as stored: the whole message (`BINARY[]`), or a composite part (multipart,
    /// encapsulated message), which RFC 2045 §6.4 allows only in 7bit, 8bit or binary, and whose
    /// own parts keep their encodings.
    AsStored((u64, u64)),
    /// A leaf part: its body with `Cte` removed.
    Leaf(&'a BodyPart, Cte),
    /// No such part: an empty string, as for BODY[] (RFC 9051 §6.4.5).
    Missing,
}

fn target<'a>(
    a: &'a Analysis,
    raw_len: u64,
    path: &[NonZeroU32],
) -> Result<Target<'a>, UnknownCte> {
    if path.is_empty() {
        return Ok(Target::AsStored((0, raw_len)));
    }
    let Some(part) = find_part(&a.body, path) else {
        return Ok(Target::Missing);
    };
    if !part.children.is_empty() || part.message.is_some() {
        return Ok(Target::AsStored(part.body_range));
    }
    cte(&part.encoding)
        .map(|c| Target::Leaf(part, c))
        .ok_or(UnknownCte)
}

/// Whether BINARY of `path` can be answered for this message, without reading its bytes (checked
/// before \Seen is set or any response is sent).
pub fn check(a: &Analysis, path: &[NonZeroU32]) -> Result<(), UnknownCte> {
    target(a, 0, path).map(|_| ())
}

/// The decoded content of the section `path` of the message `raw`.
pub fn content(raw: &[u8], a: &Analysis, path: &[NonZeroU32]) -> Result<Vec<u8>, UnknownCte> {
    let cut = |(s, e): (u64, u64)| {
        let s = (s as usize).min(raw.len());
        let e = (e as usize).clamp(s, raw.len());
        &raw[s..e]
    };
    Ok(match target(a, raw.len() as u64, path)? {
        Target::AsStored(range) => cut(range).to_vec(),
        Target::Missing => Vec::new(),
        Target::Leaf(part, c) => decode(c, cut(part.body_range)),
    })
}

/// The length of [`content`] (`BINARY.SIZE`), without copying what needs no decoding.
pub fn size(raw: &[u8], a: &Analysis, path: &[NonZeroU32]) -> Result<usize, UnknownCte> {
    let len = |(s, e): (u64, u64)| {
        let s = (s as usize).min(raw.len());
        (e as usize).clamp(s, raw.len()) - s
    };
    Ok(match target(a, raw.len() as u64, path)? {
        Target::AsStored(range) => len(range),
        Target::Leaf(part, Cte::Identity) => len(part.body_range),
        Target::Missing => 0,
        Target::Leaf(_, _) => content(raw, a, path)?.len(),
    })
}

pub fn decode(c: Cte, data: &[u8]) -> Vec<u8> {
    match c {
        Cte::Identity => data.to_vec(),
        Cte::Base64 => base64(data),
        Cte::QuotedPrintable => quoted_printable(data),
    }
}

fn b64_value(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    } as u32)
}

/// RFC 2045 §6.8: characters outside the alphabet (line breaks, white space, garbage) are ignored;
/// `=` ends a group. Encoders that concatenated several padded chunks are read through.
fn base64(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 4 * 3 + 2);
    let mut acc: u32 = 0;
    let mut n = 0;
    for &c in data {
        if let Some(v) = b64_value(c) {
            acc = (acc << 6) | v;
            n += 1;
            if n == 4 {
                out.extend_from_slice(&acc.to_be_bytes()[1..]);
                acc = 0;
                n = 0;
            }
        } else if c == b'=' && n > 0 {
            flush(&mut out, acc, n);
            acc = 0;
            n = 0;
        }
    }
    flush(&mut out, acc, n);
    out
}

/// The bytes of an incomplete group of `n` sextets (a single sextet carries no whole byte).
fn flush(out: &mut Vec<u8>, acc: u32, n: usize) {
    match n {
        2 => out.push((acc >> 4) as u8),
        3 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
        _ => {}
    }
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        // RFC 2045 §6.7 (1): lowercase is not valid, but a robust decoder accepts it.
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// RFC 2045 §6.7: `=XX` escapes, soft line breaks (`=` at the end of a line, trailing white space
/// allowed), trailing white space of a line removed (rule 3: transport padding), line breaks kept
/// as they are. A `=` that is neither is kept literally (note 1).
fn quoted_printable(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    // Where the run of literal white space at the end of `out` starts (dropped at a line break).
    let mut ws_from = 0;
    let mut i = 0;
    while i < data.len() {
        let c = data[i];
        match c {
            b'=' => {
                let rest = &data[i + 1..];
                if let (Some(h), Some(l)) = (
                    rest.first().copied().and_then(hex),
                    rest.get(1).copied().and_then(hex),
                ) {
                    out.push((h << 4) | l);
                    ws_from = out.len();
                    i += 3;
                    continue;
                }
                // Soft line break: "=" then optional white space, then CRLF or LF (or the end).
                let pad = rest
                    .iter()
                    .take_while(|&&b| b == b' ' || b == b'\t')
                    .count();
                let after = &rest[pad..];
                if after.is_empty() || after.starts_with(b"\n") || after.starts_with(b"\r\n") {
                    // White space before the "=" is data (the encoder put it there).
                    i += 1 + pad + after.iter().position(|&b| b == b'\n').map_or(0, |p| p + 1);
                    ws_from = out.len();
                    continue;
                }
                out.push(b'=');
                ws_from = out.len();
            }
            b'\r' if data.get(i + 1) == Some(&b'\n') => {
                out.truncate(ws_from);
                out.extend_from_slice(b"\r\n");
                ws_from = out.len();
                i += 2;
                continue;
            }
            b'\n' => {
                out.truncate(ws_from);
                out.push(b'\n');
                ws_from = out.len();
            }
            b' ' | b'\t' => out.push(c),
            _ => {
                out.push(c);
                ws_from = out.len();
            }
        }
        i += 1;
    }
    out
}

/// `BINARY[...]` content as the response carries it (RFC 9051 §7.5.2): a literal8 when it contains
/// NUL, else a plain literal (RFC 3516 §4.3: SHOULD, so clients see at once there is no NUL).
pub fn literal(out: &mut Vec<u8>, value: &[u8]) {
    if value.contains(&0) {
        out.push(b'~');
    }
    out.extend_from_slice(format!("{{{}}}\r\n", value.len()).as_bytes());
    out.extend_from_slice(value);
}

/// `section-binary` of a response: the part numbers joined by dots.
pub fn section_spec(path: &[NonZeroU32]) -> String {
    path.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_by_token() {
        assert_eq!(cte("BASE64"), Some(Cte::Base64));
        assert_eq!(cte(" base64 (comment)"), Some(Cte::Base64));
        assert_eq!(cte("Quoted-Printable"), Some(Cte::QuotedPrintable));
        assert_eq!(cte("8bit"), Some(Cte::Identity));
        assert_eq!(cte(""), Some(Cte::Identity));
        assert_eq!(cte("x-uuencode"), None);
    }

    #[test]
    fn base64_ignores_what_is_not_in_the_alphabet() {
        assert_eq!(base64(b"aGVs\r\nbG8=\r\n"), b"hello");
        assert_eq!(base64(b"aG VsbG8*-- x"), b"hello1");
        assert_eq!(base64(b"AA=="), b"\0");
        assert_eq!(base64(b"aGk=aGk="), b"hihi");
        assert_eq!(base64(b"QQ"), b"A");
        assert_eq!(base64(b"Q"), b"");
        assert_eq!(base64(b""), b"");
        // Never more out than in.
        for len in 0..64 {
            let input: Vec<u8> = (0..len).map(|i| b"AZaz09+/="[i % 9]).collect();
            assert!(base64(&input).len() <= input.len());
        }
    }

    #[test]
    fn quoted_printable_rules() {
        assert_eq!(quoted_printable(b"caf=C3=A9\r\n"), "café\r\n".as_bytes());
        assert_eq!(quoted_printable(b"soft=\r\nbreak"), b"softbreak");
        assert_eq!(quoted_printable(b"soft= \t\r\nbreak"), b"softbreak");
        assert_eq!(quoted_printable(b"lf=\nonly\n"), b"lfonly\n");
        assert_eq!(quoted_printable(b"pad  \r\nx\t\n"), b"pad\r\nx\n");
        assert_eq!(quoted_printable(b"kept=20\r\n"), b"kept \r\n");
        assert_eq!(quoted_printable(b"a=ZZb=3"), b"a=ZZb=3");
        assert_eq!(quoted_printable(b"lower=e9"), b"lower\xe9");
        assert_eq!(quoted_printable(b"nul=00end="), b"nul\0end");
        assert_eq!(quoted_printable(b"bare\rcr"), b"bare\rcr");
    }

    #[test]
    fn literal8_only_with_nul() {
        let mut o = Vec::new();
        literal(&mut o, b"a\0b");
        assert_eq!(o, b"~{3}\r\na\0b");
        let mut o = Vec::new();
        literal(&mut o, b"\xff\xfe");
        assert_eq!(o, b"{2}\r\n\xff\xfe");
    }
}
