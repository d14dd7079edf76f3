//! MIME facade over mail-parser: everything the store caches about a message at append
//! time: the IMAP ENVELOPE and BODYSTRUCTURE (RFC 9051 §7.5.2), the headers SORT/THREAD
//! (RFC 5256) and SEARCH use, and the text for the full-text index.
//!
//! [`analyze`] never fails and never panics: malformed input gives a best-effort result,
//! and the [`Limits`] bound nesting depth, part count, header size and search text. The
//! result is plain data (serde) so the store can keep it as JSON.

mod body;
mod cache;
mod envelope;
mod header;
mod prepared;
mod search;

use serde::{Deserialize, Serialize};

pub use body::BodyPart;
pub use cache::{HeaderCache, MAX_BASE_SUBJECT_INPUT, base_subject};
pub use envelope::{Address, Envelope, parse_address_list};
pub use header::header_end;
pub use prepared::{HeaderField, MAX_URL_LEN, MAX_URLS, Prepared};
pub use search::SearchText;

/// Default maximum MIME nesting depth (multipart and message/rfc822 levels).
pub const DEFAULT_MAX_DEPTH: usize = 50;
/// Default maximum number of MIME parts analysed in one message.
pub const DEFAULT_MAX_PARTS: usize = 2000;
/// Default size of the search text (headers and body together), in bytes.
pub const DEFAULT_MAX_SEARCH_TEXT: usize = 2 * 1024 * 1024;
/// Default maximum size of one header block that is parsed, in bytes.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 1024 * 1024;
/// Hard ceiling on `max_depth`, whatever the configuration says: each MIME level adds
/// two levels of JSON nesting and serde_json refuses to read past 128, and the walk is
/// recursive, so the stack must stay bounded.
pub const MAX_DEPTH_CEILING: usize = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_depth: usize,
    pub max_parts: usize,
    pub max_search_text: usize,
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: DEFAULT_MAX_DEPTH,
            max_parts: DEFAULT_MAX_PARTS,
            max_search_text: DEFAULT_MAX_SEARCH_TEXT,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
        }
    }
}

impl Limits {
    /// `max_depth` capped at [`MAX_DEPTH_CEILING`].
    pub fn effective_depth(&self) -> usize {
        self.max_depth.min(MAX_DEPTH_CEILING)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub envelope: Envelope,
    /// Root part: the BODYSTRUCTURE tree.
    pub body: BodyPart,
    pub headers: HeaderCache,
    pub search: SearchText,
    /// True when a limit stopped part of the analysis (depth, part count, header size or
    /// search text size).
    pub truncated: bool,
}

/// Analyses a raw RFC 5322 message. Never fails: malformed input gives a best-effort
/// result. A panic in the underlying parser (a bug) is contained and yields a minimal
/// analysis marked truncated, so one bad message cannot take down delivery.
pub fn analyze(raw: &[u8], limits: &Limits) -> Analysis {
    std::panic::catch_unwind(|| analyze_unguarded(raw, limits)).unwrap_or_else(|_| fallback(raw))
}

/// [`analyze`] without the panic guard; public so tests and fuzz targets see panics.
#[doc(hidden)]
pub fn analyze_unguarded(raw: &[u8], limits: &Limits) -> Analysis {
    let mut walker = body::Walker {
        raw,
        limits,
        parts: 0,
        truncated: false,
    };
    let hend = header_end(raw);
    let fields = walker.fields(&raw[..hend]);
    let envelope = envelope::from_fields(&fields);
    let headers = cache::from_fields(&fields);
    let body = walker.part(0, raw.len(), 0, false);

    let mut budget = search::Budget {
        left: limits.max_search_text,
        exhausted: false,
    };
    let mut search = SearchText::default();
    search::header_text(&fields, &mut search.headers, &mut budget);
    search::body_text(
        raw,
        &body,
        limits.max_header_bytes,
        &mut search.body,
        &mut budget,
    );

    Analysis {
        envelope,
        body,
        headers,
        search,
        truncated: walker.truncated || budget.exhausted,
    }
}

fn fallback(raw: &[u8]) -> Analysis {
    let len = raw.len() as u64;
    Analysis {
        envelope: Envelope::default(),
        body: BodyPart {
            content_type: "application".into(),
            subtype: "octet-stream".into(),
            encoding: "7BIT".into(),
            size: len,
            body_range: (0, len),
            ..Default::default()
        },
        headers: HeaderCache::default(),
        search: SearchText::default(),
        truncated: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_message() {
        let raw = b"From: A <a@x.org>\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\nhello\r\n";
        let a = analyze(raw, &Limits::default());
        assert_eq!(a.envelope.subject.as_deref(), Some("=?utf-8?q?caf=C3=A9?="));
        assert_eq!(a.envelope.sender, a.envelope.from);
        assert_eq!(a.headers.subject.as_deref(), Some("café"));
        assert_eq!(a.headers.date, Some(1_704_103_200));
        assert_eq!(a.headers.from, vec!["a@x.org"]);
        assert_eq!(a.headers.from_display.as_deref(), Some("A"));
        assert_eq!(a.body.content_type, "text");
        assert_eq!(a.body.params, vec![("charset".into(), "us-ascii".into())]);
        assert_eq!(a.body.body_bytes(raw), b"hello\r\n");
        assert_eq!(a.body.lines, Some(1));
        assert_eq!(a.body.size, 7);
        assert!(a.search.headers.contains("Subject: café\n"));
        assert!(a.search.body.contains("hello"));
        assert!(!a.truncated);
    }

    #[test]
    fn empty_input() {
        let a = analyze(b"", &Limits::default());
        assert_eq!(a.body.size, 0);
        assert_eq!(a.body.header_range, (0, 0));
        assert!(a.envelope.from.is_empty());
    }

    #[test]
    fn search_budget_sets_truncated() {
        let raw = b"Subject: x\n\nsome longer body text";
        let limits = Limits {
            max_search_text: 20,
            ..Limits::default()
        };
        let a = analyze(raw, &limits);
        assert!(a.truncated);
        assert!(a.search.headers.len() + a.search.body.len() <= 20);
    }

    #[test]
    fn depth_ceiling() {
        let l = Limits {
            max_depth: 1000,
            ..Limits::default()
        };
        assert_eq!(l.effective_depth(), MAX_DEPTH_CEILING);
    }
}
