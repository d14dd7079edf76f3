//! MIME structure (RFC 2045, RFC 2046) as IMAP BODYSTRUCTURE needs it
//! (RFC 9051 §7.5.2, "BODYSTRUCTURE", with extension data).
//!
//! The structure walk is done here rather than with mail-parser's part list because IMAP
//! needs exact byte ranges for BODY[n.HEADER]/BODY[n.MIME]/BODY[n], RFC 2046 §5.1.1
//! boundary matching (delimiters only at line start, the CRLF before a delimiter
//! belongs to it), and explicit depth and part-count limits. mail-parser still parses
//! each field (Content-Type with RFC 2231 parameters, Content-Disposition).

use mail_parser::{ContentType, HeaderValue, parsers::MessageStream};
use serde::{Deserialize, Serialize};

use crate::Limits;
use crate::envelope::{self, Envelope};
use crate::header::{self, Field, find_byte, first, raw_value};

/// One node of the BODYSTRUCTURE tree.
///
/// Invariants the IMAP encoder can rely on: `content_type == "multipart"` exactly when
/// `children` is non-empty (a multipart that cannot be split is reported as text/plain,
/// see [`Walker::part`]); `message` is Some only for message/rfc822 or message/global
/// parts whose encapsulated message could be parsed in place (emit body-type-msg),
/// otherwise the part is basic or text; `lines` is Some for text/* and when `message` is
/// Some.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BodyPart {
    /// Media type, lowercase ("text", "multipart", ...).
    pub content_type: String,
    /// Media subtype, lowercase.
    pub subtype: String,
    /// Content-Type parameters, names lowercase, RFC 2231 continuations and charsets
    /// decoded.
    pub params: Vec<(String, String)>,
    /// Raw Content-ID.
    pub id: Option<String>,
    /// Raw Content-Description (encoded words not decoded).
    pub description: Option<String>,
    /// Content-Transfer-Encoding, uppercase; "7BIT" when absent (RFC 2045 §6.1).
    pub encoding: String,
    /// Octets of the body as stored.
    pub size: u64,
    pub lines: Option<u64>,
    /// Raw Content-MD5 (RFC 1864).
    pub md5: Option<String>,
    /// Content-Disposition (RFC 2183): type lowercase, parameters as for `params`.
    pub disposition: Option<(String, Vec<(String, String)>)>,
    /// Content-Language tags (RFC 3282).
    pub language: Vec<String>,
    /// Raw Content-Location (RFC 2557).
    pub location: Option<String>,
    /// Byte range of this part's header in the raw message, blank line included
    /// (BODY[n.MIME], or BODY[HEADER] for the root and encapsulated messages).
    pub header_range: (u64, u64),
    /// Byte range of this part's body (BODY[n], BODY[TEXT]).
    pub body_range: (u64, u64),
    pub children: Vec<BodyPart>,
    /// Encapsulated message (RFC 2046 §5.2.1, RFC 6532 §3.7): its envelope and root part.
    pub message: Option<Box<(Envelope, BodyPart)>>,
}

impl BodyPart {
    pub fn param(&self, name: &str) -> Option<&str> {
        find_param(&self.params, name)
    }

    /// File name from Content-Disposition "filename" or Content-Type "name".
    pub fn file_name(&self) -> Option<&str> {
        self.disposition
            .as_ref()
            .and_then(|(_, p)| find_param(p, "filename"))
            .or_else(|| self.param("name"))
    }

    pub fn header_bytes<'a>(&self, raw: &'a [u8]) -> &'a [u8] {
        slice(raw, self.header_range)
    }

    pub fn body_bytes<'a>(&self, raw: &'a [u8]) -> &'a [u8] {
        slice(raw, self.body_range)
    }
}

fn slice(raw: &[u8], (start, end): (u64, u64)) -> &[u8] {
    let start = usize::try_from(start).unwrap_or(usize::MAX);
    let end = usize::try_from(end).unwrap_or(usize::MAX);
    raw.get(start..end).unwrap_or_default()
}

fn find_param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

pub(crate) struct Walker<'a> {
    pub raw: &'a [u8],
    pub limits: &'a Limits,
    pub parts: usize,
    pub truncated: bool,
}

impl<'a> Walker<'a> {
    /// Header fields of a header block, bounded by `max_header_bytes`.
    pub fn fields(&mut self, block: &'a [u8]) -> Vec<Field<'a>> {
        let (block, cut) = header::bounded(block, self.limits.max_header_bytes);
        self.truncated |= cut;
        header::fields(block)
    }

    /// The part stored at `raw[start..end]`: its header, then its body.
    /// `digest_child`: RFC 2046 §5.1.5, the default type in multipart/digest is
    /// message/rfc822.
    pub fn part(&mut self, start: usize, end: usize, depth: usize, digest_child: bool) -> BodyPart {
        self.parts += 1;
        let raw = self.raw;
        let hend = start + header::header_end(&raw[start..end]);
        let fields = self.fields(&raw[start..hend]);
        let mut part = basic_fields(&fields, digest_child);
        part.header_range = (start as u64, hend as u64);
        part.body_range = (hend as u64, end as u64);
        part.size = (end - hend) as u64;
        let body = &raw[hend..end];

        if part.content_type == "multipart" {
            let children = match part.param("boundary") {
                Some(b) if !b.is_empty() && depth < self.limits.effective_depth() => {
                    let boundary = b.as_bytes().to_vec();
                    let digest = part.subtype == "digest";
                    let mut children = Vec::new();
                    for (s, e) in split_multipart(body, &boundary) {
                        if self.parts >= self.limits.max_parts {
                            self.truncated = true;
                            break;
                        }
                        children.push(self.part(hend + s, hend + e, depth + 1, digest));
                    }
                    children
                }
                Some(b) if !b.is_empty() => {
                    self.truncated = true;
                    Vec::new()
                }
                _ => Vec::new(),
            };
            if children.is_empty() {
                // No boundary parameter, no delimiter line, or the depth limit: the
                // body cannot be split, so report it as text, as RFC 2046 §5.1.1 gives
                // no structure to a multipart without delimiters.
                part.content_type = "text".into();
                part.subtype = "plain".into();
                part.params.retain(|(k, _)| k != "boundary");
            }
            part.children = children;
        } else if part.content_type == "message"
            && matches!(part.subtype.as_str(), "rfc822" | "global")
            && matches!(part.encoding.as_str(), "7BIT" | "8BIT" | "BINARY")
        {
            // RFC 2046 §5.2.1: the encapsulated message is stored as is (no base64/QP),
            // so its parts can be addressed inside the raw blob.
            if depth < self.limits.effective_depth() && self.parts < self.limits.max_parts {
                let nested_hend = hend + header::header_end(body);
                let nested_fields = self.fields(&raw[hend..nested_hend]);
                let env = envelope::from_fields(&nested_fields);
                let inner = self.part(hend, end, depth + 1, false);
                part.message = Some(Box::new((env, inner)));
            } else {
                self.truncated = true;
            }
        }

        if part.content_type == "text" || part.message.is_some() {
            part.lines = Some(count_lines(body));
        }
        part
    }
}

/// RFC 2045/2046 header fields of a part, before looking at the body.
fn basic_fields(fields: &[Field<'_>], digest_child: bool) -> BodyPart {
    let ct = first(fields, "content-type").and_then(|f| match f.parse_with(parse_ct) {
        HeaderValue::ContentType(ct) => Some(ct),
        _ => None,
    });
    let (content_type, subtype, params) = match ct {
        Some(ct) if ct.c_subtype.is_some() && !ct.c_type.is_empty() => (
            ct.c_type.to_ascii_lowercase(),
            ct.c_subtype
                .as_deref()
                .unwrap_or_default()
                .to_ascii_lowercase(),
            attributes(&ct),
        ),
        // RFC 2046 §5.1.5: in a digest the default is message/rfc822.
        _ if digest_child => ("message".into(), "rfc822".into(), Vec::new()),
        // RFC 2045 §5.2: absent or invalid Content-Type means text/plain; charset=us-ascii.
        _ => (
            "text".into(),
            "plain".into(),
            vec![("charset".into(), "us-ascii".into())],
        ),
    };
    let encoding = raw_value(fields, "content-transfer-encoding")
        .map(|e| e.to_ascii_uppercase())
        .unwrap_or_else(|| "7BIT".into());
    let disposition =
        first(fields, "content-disposition").and_then(|f| match f.parse_with(parse_ct) {
            HeaderValue::ContentType(d) if !d.c_type.is_empty() => {
                Some((d.c_type.to_ascii_lowercase(), attributes(&d)))
            }
            _ => None,
        });
    let language = raw_value(fields, "content-language")
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    BodyPart {
        content_type,
        subtype,
        params,
        id: raw_value(fields, "content-id"),
        description: raw_value(fields, "content-description"),
        encoding,
        md5: raw_value(fields, "content-md5"),
        disposition,
        language,
        location: raw_value(fields, "content-location"),
        ..Default::default()
    }
}

fn parse_ct<'x>(s: &mut MessageStream<'x>) -> HeaderValue<'x> {
    s.parse_content_type()
}

fn attributes(ct: &ContentType<'_>) -> Vec<(String, String)> {
    ct.attributes
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|a| (a.name.to_ascii_lowercase(), a.value.to_string()))
        .collect()
}

/// Lines in a body for IMAP body-fld-lines: line breaks, plus a final unterminated line.
fn count_lines(body: &[u8]) -> u64 {
    let breaks = body.iter().filter(|&&b| b == b'\n').count() as u64;
    match body.last() {
        Some(b'\n') | None => breaks,
        Some(_) => breaks + 1,
    }
}

/// Body parts of a multipart body as (start, end) offsets into `body`.
///
/// RFC 2046 §5.1.1: a delimiter line is "--" boundary, optional transport padding
/// (LWSP), then a line break; "--" boundary "--" closes. Delimiters are recognised only
/// at the start of a line, and the line break before a delimiter belongs to it, not to
/// the part. The preamble and epilogue are not parts. A missing close delimiter ends
/// the last part at the end of the body. Returns no parts when no delimiter is found.
pub(crate) fn split_multipart(body: &[u8], boundary: &[u8]) -> Vec<(usize, usize)> {
    let mut parts = Vec::new();
    // Start of the current part (just after its opening delimiter line).
    let mut open: Option<usize> = None;
    let mut pos = 0;
    while pos < body.len() {
        let line_end = find_byte(&body[pos..], b'\n').map_or(body.len(), |n| pos + n + 1);
        let line = &body[pos..line_end];
        if let Some(rest) = line
            .strip_prefix(b"--")
            .and_then(|l| l.strip_prefix(boundary))
        {
            let close = rest.starts_with(b"--");
            let is_delim = close
                || rest
                    .iter()
                    .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
            if is_delim {
                if let Some(start) = open.take() {
                    parts.push((start, part_end(body, start, pos)));
                }
                if close {
                    return parts;
                }
                open = Some(line_end);
            }
        }
        pos = line_end;
    }
    if let Some(start) = open {
        parts.push((start, body.len()));
    }
    parts
}

/// End of a part whose next delimiter line starts at `delim`: the line break before the
/// delimiter is excluded.
fn part_end(body: &[u8], start: usize, delim: usize) -> usize {
    if delim <= start {
        return start;
    }
    let mut end = delim;
    if body.get(end - 1) == Some(&b'\n') {
        end -= 1;
        if end > start && body.get(end - 1) == Some(&b'\r') {
            end -= 1;
        }
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_basic_crlf() {
        let body = b"preamble\r\n--b\r\nA\r\n--b \r\nB\r\n\r\n--b--\r\nepilogue";
        let p = split_multipart(body, b"b");
        let got: Vec<&[u8]> = p.iter().map(|&(s, e)| &body[s..e]).collect();
        assert_eq!(got, vec![&b"A"[..], &b"B\r\n"[..]]);
    }

    #[test]
    fn split_strict_boundary_match() {
        // "--bb" is not a delimiter for boundary "b"; a delimiter mid-line is not one.
        let body = b"--b\nx --b\n--bb\n--b\ny\n";
        let p = split_multipart(body, b"b");
        let got: Vec<&[u8]> = p.iter().map(|&(s, e)| &body[s..e]).collect();
        assert_eq!(got, vec![&b"x --b\n--bb"[..], &b"y\n"[..]]);
    }

    #[test]
    fn split_no_delimiter() {
        assert!(split_multipart(b"no parts here\n", b"b").is_empty());
        assert!(split_multipart(b"", b"b").is_empty());
    }

    #[test]
    fn split_empty_parts() {
        let body = b"--b\n--b\n--b--";
        let p = split_multipart(body, b"b");
        assert_eq!(p, vec![(4, 4), (8, 8)]);
    }

    #[test]
    fn lines() {
        assert_eq!(count_lines(b""), 0);
        assert_eq!(count_lines(b"a"), 1);
        assert_eq!(count_lines(b"a\r\nb\r\n"), 2);
        assert_eq!(count_lines(b"a\nb"), 2);
    }
}
