//! Modified UTF-7 mailbox names (RFC 3501 §5.1.3), for clients that enabled neither IMAP4rev2
//! nor UTF8=ACCEPT. The store keeps names in UTF-8; they are encoded on the way out and decoded
//! on the way in.

use base64::Engine;
use base64::alphabet::IMAP_MUTF7;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Modified BASE64 (RFC 3501 §5.1.3: `,` for `/`, no padding).
const MBASE64: GeneralPurpose = GeneralPurpose::new(
    &IMAP_MUTF7,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

/// UTF-8 name to modified UTF-7.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        out.push('&');
        out.push_str(&MBASE64.encode(bytes));
        out.push('-');
        pending.clear();
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// Modified UTF-7 to UTF-8; `None` if the bytes are not valid modified UTF-7.
pub fn decode(name: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut i = 0;
    while i < name.len() {
        let b = name[i];
        if !(0x20..0x7f).contains(&b) {
            return None;
        }
        if b != b'&' {
            out.push(b as char);
            i += 1;
            continue;
        }
        let end = name[i + 1..].iter().position(|&c| c == b'-')? + i + 1;
        let run = &name[i + 1..end];
        if run.is_empty() {
            out.push('&');
        } else {
            let bytes = MBASE64.decode(run).ok()?;
            if bytes.len() % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect();
            let text = String::from_utf16(&units).ok()?;
            // RFC 3501 §5.1.3: printable ASCII must not be encoded (one spelling per name).
            if text.chars().any(|c| (' '..='~').contains(&c)) {
                return None;
            }
            out.push_str(&text);
        }
        i = end + 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3501_examples_and_round_trips() {
        assert_eq!(
            encode("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
        assert_eq!(
            decode(b"~peter/mail/&U,BTFw-/&ZeVnLIqe-").as_deref(),
            Some("~peter/mail/台北/日本語")
        );
        assert_eq!(encode("R&D"), "R&-D");
        assert_eq!(decode(b"R&-D").as_deref(), Some("R&D"));
        for name in [
            "Entwürfe",
            "Gesendete Objekte",
            "📬 Inbox",
            "a&b/ç&é",
            "INBOX",
        ] {
            assert_eq!(
                decode(encode(name).as_bytes()).as_deref(),
                Some(name),
                "{name}"
            );
        }
        assert_eq!(decode(b"R&D"), None);
        assert_eq!(decode(b"&AGE-"), None); // "a" must not be encoded
        assert_eq!(decode("caf\u{e9}".as_bytes()), None);
    }
}
