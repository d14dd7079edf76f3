//! Text for the full-text index: decoded header fields, decoded text parts (RFC 2045 §6
//! transfer decoding, charset conversion to UTF-8, HTML tags removed) and attachment
//! file names, all within one size budget.

use mail_parser::decoders::{charsets::map::charset_decoder, html::html_to_text};
use mail_parser::parsers::MessageStream;
use serde::{Deserialize, Serialize};

use crate::body::BodyPart;
use crate::cache::decoded_text;
use crate::header::{Field, bounded, fields};

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SearchText {
    /// Top-level header fields, one "Name: decoded value\n" per field.
    pub headers: String,
    /// Decoded text of text/* parts, headers of encapsulated messages, and file names.
    pub body: String,
}

/// Appends text to a string without letting the total exceed a byte budget.
pub(crate) struct Budget {
    pub left: usize,
    pub exhausted: bool,
}

impl Budget {
    fn push(&mut self, out: &mut String, text: &str) {
        if text.len() <= self.left {
            out.push_str(text);
            self.left -= text.len();
            return;
        }
        let mut cut = self.left;
        while cut > 0 && !text.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push_str(&text[..cut]);
        self.left -= cut;
        self.exhausted = true;
    }
}

pub(crate) fn header_text(fields: &[Field<'_>], out: &mut String, budget: &mut Budget) {
    for f in fields {
        if budget.exhausted {
            return;
        }
        let line = format!("{}: {}\n", f.name_lossy(), decoded_text(f));
        budget.push(out, &line);
    }
}

pub(crate) fn body_text(
    raw: &[u8],
    part: &BodyPart,
    max_header_bytes: usize,
    out: &mut String,
    budget: &mut Budget,
) {
    if budget.exhausted {
        return;
    }
    if let Some(name) = part.file_name() {
        budget.push(out, name);
        budget.push(out, "\n");
    }
    if !part.children.is_empty() {
        for child in &part.children {
            body_text(raw, child, max_header_bytes, out, budget);
        }
    } else if let Some(msg) = &part.message {
        let (block, _) = bounded(msg.1.header_bytes(raw), max_header_bytes);
        header_text(&fields(block), out, budget);
        body_text(raw, &msg.1, max_header_bytes, out, budget);
    } else if part.content_type == "text" {
        let text = decode_text(part, part.body_bytes(raw), budget.left);
        let text = if part.subtype == "html" {
            html_to_text(&text)
        } else {
            text
        };
        let text = text.trim_end();
        if !text.is_empty() {
            budget.push(out, text);
            budget.push(out, "\n");
        }
    }
}

/// Transfer-decodes and converts a text body to UTF-8. Only about as many input bytes as
/// the budget can use are decoded, cut at a line break.
fn decode_text(part: &BodyPart, body: &[u8], budget: usize) -> String {
    let cap = budget.saturating_mul(2).saturating_add(4);
    let body = if body.len() > cap {
        let cut = &body[..cap];
        cut.iter()
            .rposition(|&b| b == b'\n')
            .map_or(cut, |p| &cut[..p + 1])
    } else {
        body
    };
    let decoded: Vec<u8> = match part.encoding.as_str() {
        "BASE64" => {
            let (end, bytes) = MessageStream::new(body).decode_base64_mime(b"");
            // Not valid base64: index the raw text rather than nothing.
            if end == usize::MAX {
                body.to_vec()
            } else {
                bytes.into_owned()
            }
        }
        "QUOTED-PRINTABLE" => {
            let (end, bytes) = MessageStream::new(body).decode_quoted_printable_mime(b"");
            if end == usize::MAX {
                body.to_vec()
            } else {
                bytes.into_owned()
            }
        }
        _ => body.to_vec(),
    };
    match part
        .param("charset")
        .and_then(|c| charset_decoder(c.as_bytes()))
    {
        Some(decode) => decode(&decoded),
        None => String::from_utf8_lossy(&decoded).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_cuts_on_char_boundary() {
        let mut b = Budget {
            left: 3,
            exhausted: false,
        };
        let mut s = String::new();
        b.push(&mut s, "aéb");
        assert_eq!(s, "aé");
        assert!(b.exhausted);
        b.push(&mut s, "x");
        assert_eq!(s, "aé");
    }

    #[test]
    fn decodes_qp_latin1() {
        let part = BodyPart {
            content_type: "text".into(),
            subtype: "plain".into(),
            params: vec![("charset".into(), "iso-8859-1".into())],
            encoding: "QUOTED-PRINTABLE".into(),
            ..Default::default()
        };
        assert_eq!(
            decode_text(&part, b"caf=E9 soft=\r\nbreak", 100),
            "café softbreak"
        );
    }
}
