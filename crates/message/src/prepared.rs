//! A message analysed once, for everything that looks at it on the way in: the inbound checks and
//! (later) the filters and Sieve read its header fields, text, URLs and attachments; DKIM signing
//! reads its From; the store caches its analysis and the full-text indexer its search text.
//!
//! Delivery puts trace fields on top of the message (`Received:`, `Authentication-Results:`,
//! `DKIM-Signature:`, `Return-Path:`). [`Prepared::analysis_with_prefix`] derives the analysis of
//! the stored copy from the one already made, without walking the body again: the result is
//! exactly [`crate::analyze`] of the prefixed bytes (checked by a property test and a fuzz target),
//! and where a limit could make the two differ it analyses the prefixed bytes in full instead.

use std::sync::{Arc, OnceLock};

use crate::body::BodyPart;
use crate::header::{self, Field};
use crate::search::{Budget, SearchText, header_text};
use crate::{Analysis, Limits, analyze, cache, envelope};

/// Most URLs kept per message (hostile messages may carry hundreds of thousands).
pub const MAX_URLS: usize = 1000;
/// Longest URL kept, in bytes.
pub const MAX_URL_LEN: usize = 2048;

/// Header fields read by the ENVELOPE, the header cache and the root part's MIME fields: a prefix
/// that carries one of these changes what [`crate::analyze`] finds.
const ANALYSED_FIELDS: &[&str] = &[
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "bcc",
    "date",
    "subject",
    "in-reply-to",
    "message-id",
    "references",
];
const MIME_FIELDS: &[&str] = &[
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
    "content-language",
    "content-id",
    "content-description",
    "content-md5",
    "content-location",
];

/// One header field of the top-level header: its name as written and its value unfolded (RFC 5322
/// §2.2.3), 8-bit bytes that are not UTF-8 replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderField {
    pub name: String,
    pub value: String,
}

/// A message as received, with its analysis (ENVELOPE, BODYSTRUCTURE, header cache, search text).
#[derive(Debug)]
pub struct Prepared {
    raw: Arc<[u8]>,
    analysis: Arc<Analysis>,
    limits: Limits,
    urls: OnceLock<Vec<String>>,
}

impl Prepared {
    /// Analyses `raw` (CPU: call it off the async threads for large messages).
    pub fn new(raw: Arc<[u8]>, limits: &Limits) -> Prepared {
        let analysis = Arc::new(analyze(&raw, limits));
        Prepared {
            raw,
            analysis,
            limits: *limits,
            urls: OnceLock::new(),
        }
    }

    pub fn raw(&self) -> &Arc<[u8]> {
        &self.raw
    }

    pub fn len(&self) -> usize {
        self.raw.len()
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The analysis, search text included.
    pub fn analysis(&self) -> &Arc<Analysis> {
        &self.analysis
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The decoded text that search indexes (top-level header fields, then text parts).
    pub fn search_text(&self) -> &SearchText {
        &self.analysis.search
    }

    /// The top-level header fields in order (bounded by the header size limit).
    pub fn header_fields(&self) -> Vec<HeaderField> {
        self.fields()
            .iter()
            .map(|f| HeaderField {
                name: f.name_lossy(),
                value: f.unfolded(),
            })
            .collect()
    }

    /// How many top-level header fields are named `name` (case-insensitive).
    pub fn field_count(&self, name: &str) -> usize {
        self.fields().iter().filter(|f| f.is(name)).count()
    }

    fn fields(&self) -> Vec<Field<'_>> {
        let end = header::header_end(&self.raw);
        let (block, _) = header::bounded(&self.raw[..end], self.limits.max_header_bytes);
        header::fields(block)
    }

    /// Leaf parts that are attachments: a Content-Disposition of `attachment`, or a file name, or
    /// a type that is neither text nor multipart (images, archives, executables, ...).
    pub fn attachments(&self) -> Vec<&BodyPart> {
        let mut out = Vec::new();
        collect_attachments(&self.analysis.body, true, &mut out);
        out
    }

    /// `http`, `https`, `ftp` and `mailto` URLs found in the decoded text (HTML parts are reduced to
    /// text first, so `href` targets that are not shown as text are not seen), in order, at most
    /// [`MAX_URLS`], each at most [`MAX_URL_LEN`] bytes. Computed on first use.
    pub fn urls(&self) -> &[String] {
        self.urls.get_or_init(|| {
            let mut out = Vec::new();
            for text in [&self.analysis.search.headers, &self.analysis.search.body] {
                find_urls(text, &mut out);
            }
            out
        })
    }

    /// The analysis of `prefix` followed by this message, where `prefix` is whole header fields
    /// (each line ended by LF, no blank line) put on top at delivery. Equal to
    /// `analyze(prefix ++ raw)`.
    pub fn analysis_with_prefix(&self, prefix: &[u8]) -> Analysis {
        with_prefix(&self.raw, &self.analysis, prefix, &self.limits)
            .unwrap_or_else(|| analyze(&[prefix, &self.raw[..]].concat(), &self.limits))
    }
}

fn collect_attachments<'a>(part: &'a BodyPart, root: bool, out: &mut Vec<&'a BodyPart>) {
    if !part.children.is_empty() {
        for c in &part.children {
            collect_attachments(c, false, out);
        }
        return;
    }
    if let Some(inner) = &part.message {
        out.push(part);
        collect_attachments(&inner.1, false, out);
        return;
    }
    let disposed = part
        .disposition
        .as_ref()
        .is_some_and(|(d, _)| d == "attachment");
    let typed = part.content_type != "text" && !(root && part.content_type == "multipart");
    if disposed || part.file_name().is_some() || typed {
        out.push(part);
    }
}

fn find_urls(text: &str, out: &mut Vec<String>) {
    const SCHEMES: &[&str] = &["https://", "http://", "ftp://", "mailto:"];
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() && out.len() < MAX_URLS {
        let rest = &text[i..];
        let hit = SCHEMES.iter().find(|s| {
            rest.len() >= s.len() && rest.as_bytes()[..s.len()].eq_ignore_ascii_case(s.as_bytes())
        });
        match hit {
            // A scheme inside a word ("xhttp://") is not the start of a URL.
            Some(s) if i == 0 || !bytes[i - 1].is_ascii_alphanumeric() => {
                let end = rest
                    .char_indices()
                    .find(|(_, c)| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\''))
                    .map_or(rest.len(), |(p, _)| p);
                let url = rest[..end].trim_end_matches(['.', ',', ';', ':', ')', ']', '!', '?']);
                if url.len() > s.len() && url.len() <= MAX_URL_LEN {
                    out.push(url.to_string());
                }
                i += end.max(1);
            }
            _ => {
                i += rest.chars().next().map_or(1, char::len_utf8);
            }
        }
        while i < bytes.len() && !text.is_char_boundary(i) {
            i += 1;
        }
    }
}

/// The fast path of [`Prepared::analysis_with_prefix`], or None where a limit or the prefix's
/// content could make it differ from a full analysis.
fn with_prefix(raw: &[u8], base: &Analysis, prefix: &[u8], limits: &Limits) -> Option<Analysis> {
    if prefix.is_empty() {
        return Some(base.clone());
    }
    // Whole lines, no blank line, and the message must not start with a continuation line (it
    // would fold into the prefix's last field) nor be truncated by a limit already.
    if base.truncated
        || prefix.last() != Some(&b'\n')
        || header::header_end(prefix) != prefix.len()
        || prefix.starts_with(b"\r\n")
        || prefix.starts_with(b"\n")
        || matches!(raw.first(), Some(b' ' | b'\t'))
    {
        return None;
    }
    let hend = header::header_end(raw);
    if prefix.len() + hend > limits.max_header_bytes {
        return None;
    }
    let prefix_fields = header::fields(prefix);
    if prefix_fields
        .iter()
        .any(|f| MIME_FIELDS.iter().any(|m| f.is(m)))
    {
        return None;
    }
    // The prefix's own header text goes before the message's, within the same budget.
    let mut extra = String::new();
    let mut budget = Budget {
        left: limits.max_search_text,
        exhausted: false,
    };
    header_text(&prefix_fields, &mut extra, &mut budget);
    let total = extra.len() + base.search.headers.len() + base.search.body.len();
    if budget.exhausted || total > limits.max_search_text {
        return None;
    }
    // A text part is decoded only up to about twice the budget left when it is reached; with less
    // budget left the cut could fall elsewhere. Where no part is that large, neither analysis cuts.
    let least_left = limits.max_search_text - total;
    if largest_text_part(&base.body) > least_left.saturating_mul(2) as u64 {
        return None;
    }
    let shift = prefix.len() as u64;
    let mut body = base.body.clone();
    shift_part(&mut body, shift);
    body.header_range.0 = 0;
    let (envelope, headers) = if prefix_fields
        .iter()
        .any(|f| ANALYSED_FIELDS.iter().any(|m| f.is(m)))
    {
        let block = [prefix, &raw[..hend]].concat();
        let fields = header::fields(&block);
        (envelope::from_fields(&fields), cache::from_fields(&fields))
    } else {
        (base.envelope.clone(), base.headers.clone())
    };
    extra.push_str(&base.search.headers);
    Some(Analysis {
        envelope,
        body,
        headers,
        search: SearchText {
            headers: extra,
            body: base.search.body.clone(),
        },
        truncated: false,
    })
}

fn largest_text_part(p: &BodyPart) -> u64 {
    let own = if p.children.is_empty() && p.message.is_none() && p.content_type == "text" {
        p.size
    } else {
        0
    };
    let children = p.children.iter().map(largest_text_part).max().unwrap_or(0);
    let inner = p.message.as_ref().map_or(0, |m| largest_text_part(&m.1));
    own.max(children).max(inner)
}

fn shift_part(p: &mut BodyPart, by: u64) {
    p.header_range = (p.header_range.0 + by, p.header_range.1 + by);
    p.body_range = (p.body_range.0 + by, p.body_range.1 + by);
    for c in &mut p.children {
        shift_part(c, by);
    }
    if let Some(m) = &mut p.message {
        shift_part(&mut m.1, by);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &[u8] = b"Return-Path: <a@b.test>\r\nAuthentication-Results: mx.test; spf=pass\r\n\
DKIM-Signature: v=1; a=rsa-sha256; d=b.test;\r\n\tb=abc\r\n\
Received: from x ([127.0.0.1])\r\n\tby mx.test (Facteur) with ESMTPS id 1;\r\n\tThu, 1 Jan 1970 00:00:00 +0000\r\n";

    fn same(raw: &[u8], prefix: &[u8]) {
        let limits = Limits::default();
        let p = Prepared::new(raw.into(), &limits);
        let fast = p.analysis_with_prefix(prefix);
        let full = analyze(&[prefix, raw].concat(), &limits);
        assert_eq!(
            fast,
            full,
            "prefix {:?} on {:?}",
            String::from_utf8_lossy(prefix),
            String::from_utf8_lossy(raw)
        );
    }

    #[test]
    fn prefix_matches_full_analysis() {
        let multipart = b"From: A <a@x.test>\r\nSubject: hi\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\npre\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello http://x.test/a.\r\n\
--b\r\nContent-Type: message/rfc822\r\n\r\nFrom: c@d.test\r\nSubject: inner\r\n\r\ninner body\r\n\
--b\r\nContent-Type: application/zip; name=a.zip\r\nContent-Transfer-Encoding: base64\r\n\r\nUEsDBA==\r\n--b--\r\n";
        for raw in [
            &b"Subject: x\r\n\r\nbody\r\n"[..],
            multipart,
            b"",
            b"\r\nbody only",
            b"no header at all",
            b" folded first\r\nSubject: x\r\n\r\n",
            b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\n",
        ] {
            for prefix in [
                &b""[..],
                TRACE,
                b"Message-ID: <1@mx.test>\r\nDate: Thu, 1 Jan 1970 00:00:00 +0000\r\n",
                b"Content-Type: text/html\r\n",
                b"X-A: 1\n",
            ] {
                same(raw, prefix);
            }
        }
    }

    #[test]
    fn attachments_and_urls() {
        let raw = b"Subject: see https://a.test/x?y=1 now\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: text/plain\r\n\r\nGo to http://evil.test/login, or mailto:x@y.test. xhttp://no\r\n--b\r\n\
Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"run.exe\"\r\n\r\nMZ\r\n--b--\r\n";
        let p = Prepared::new(raw[..].into(), &Limits::default());
        let names: Vec<_> = p.attachments().iter().map(|a| a.file_name()).collect();
        assert_eq!(names, vec![Some("run.exe")]);
        assert_eq!(
            p.urls(),
            [
                "https://a.test/x?y=1",
                "http://evil.test/login",
                "mailto:x@y.test"
            ]
        );
        assert_eq!(p.field_count("content-type"), 1);
        assert_eq!(p.header_fields()[0].name, "Subject");
    }

    #[test]
    fn url_count_is_bounded() {
        let body = "http://a.test/ ".repeat(MAX_URLS + 10);
        let raw = format!("Subject: x\r\n\r\n{body}\r\n");
        let p = Prepared::new(raw.as_bytes().into(), &Limits::default());
        assert_eq!(p.urls().len(), MAX_URLS);
    }
}

#[cfg(test)]
mod property {
    use proptest::prelude::*;

    use super::*;

    /// Pieces messages are made of: header lines (good, folded, odd), blank lines, MIME
    /// structure, encoded bodies, and garbage.
    fn piece() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(b"Subject: hi\r\n".to_vec()),
            Just(b"From: A <a@x.test>, b@y.test\r\n".to_vec()),
            Just(b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n".to_vec()),
            Just(b"Message-ID: <m@x.test>\r\n".to_vec()),
            Just(b"Content-Type: multipart/mixed; boundary=b\r\n".to_vec()),
            Just(b"Content-Type: text/html; charset=iso-8859-1\r\n".to_vec()),
            Just(b"Content-Transfer-Encoding: base64\r\n".to_vec()),
            Just(b"Content-Type: message/rfc822\r\n".to_vec()),
            Just(b"\tfolded\r\n".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"--b\r\n".to_vec()),
            Just(b"--b--\r\n".to_vec()),
            Just(b"<p>see http://x.test/</p>\r\n".to_vec()),
            Just(b"aGVsbG8=\r\n".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..12),
        ]
    }

    fn prefix_piece() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(b"Received: from h ([127.0.0.1])\r\n\tby mx.test; Thu, 1 Jan 1970 00:00:00 +0000\r\n".to_vec()),
            Just(b"Return-Path: <a@b.test>\r\n".to_vec()),
            Just(b"Authentication-Results: mx.test; dkim=pass\r\n".to_vec()),
            Just(b"Message-ID: <p@mx.test>\r\n".to_vec()),
            Just(b"Date: Thu, 1 Jan 1970 00:00:00 +0000\r\n".to_vec()),
            Just(b"Content-Type: text/plain\r\n".to_vec()),
        ]
    }

    proptest! {
        #[test]
        fn prefixed_analysis_equals_full(
            raw in proptest::collection::vec(piece(), 0..24),
            prefix in proptest::collection::vec(prefix_piece(), 0..4),
            small in any::<bool>(),
        ) {
            let raw = raw.concat();
            let prefix = prefix.concat();
            // Small limits exercise the fallbacks (header and search text budgets).
            let limits = if small {
                Limits { max_search_text: 64, max_header_bytes: 160, max_parts: 4, max_depth: 2 }
            } else {
                Limits::default()
            };
            let p = Prepared::new(raw.clone().into(), &limits);
            let full = analyze(&[&prefix[..], &raw[..]].concat(), &limits);
            prop_assert_eq!(p.analysis_with_prefix(&prefix), full);
        }
    }
}
