//! The prepared message on arbitrary bytes: the analysis it derives for a copy with trace fields
//! on top must equal a full analysis of that copy (the store caches the derived one, so a
//! difference would serve wrong ENVELOPE/BODYSTRUCTURE data); URL extraction stays within its
//! bounds and returns pieces of the decoded text; attachments are leaf parts of the message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use message::{Limits, MAX_URL_LEN, MAX_URLS, Prepared, analyze_unguarded};

const PREFIXES: &[&[u8]] = &[
    b"",
    b"Return-Path: <a@b.test>\r\n",
    b"Received: from h ([127.0.0.1])\r\n\tby mx.test (Facteur) with ESMTP id 1;\r\n\tThu, 1 Jan 1970 00:00:00 +0000\r\n",
    b"Authentication-Results: mx.test; spf=pass\r\nDKIM-Signature: v=1; d=b.test;\r\n\tb=x\r\n",
    b"Message-ID: <1@mx.test>\r\nDate: Thu, 1 Jan 1970 00:00:00 +0000\r\n",
    b"Content-Type: text/plain\r\n",
];

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, raw)) = data.split_first() else { return };
    let prefix = PREFIXES[ctl as usize % PREFIXES.len()];
    // Small limits in half the runs, so the fallbacks (header and text budgets) are reached.
    let limits = if ctl & 0x80 != 0 {
        Limits { max_search_text: 200, max_header_bytes: 300, max_parts: 8, max_depth: 3 }
    } else {
        Limits::default()
    };
    let p = Prepared::new(raw.to_vec().into(), &limits);
    let full = analyze_unguarded(&[prefix, raw].concat(), &limits);
    assert_eq!(p.analysis_with_prefix(prefix), full, "derived analysis differs");

    let urls = p.urls();
    assert!(urls.len() <= MAX_URLS);
    let text = &p.analysis().search;
    for u in urls {
        assert!(u.len() <= MAX_URL_LEN);
        assert!(text.headers.contains(u.as_str()) || text.body.contains(u.as_str()));
    }
    for a in p.attachments() {
        assert!(a.children.is_empty(), "an attachment is a leaf part");
        assert!(a.body_range.1 <= raw.len() as u64);
    }
});
