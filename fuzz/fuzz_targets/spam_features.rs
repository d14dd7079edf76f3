//! The classifier's feature extraction (`filter::extract`, with its URL and HTML scanners) on
//! arbitrary messages: no panic; the output is bounded (at most `max_features` unique features,
//! each printable); the same input gives the same features; every URL the text scanner finds
//! parses without panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// A small limit, so the bound is reached by fuzzed inputs.
const MAX_FEATURES: usize = 300;

fuzz_target!(|data: &[u8]| {
    let limits = filter::Limits {
        max_features: MAX_FEATURES,
        ..filter::Limits::default()
    };
    let analysis = message::analyze_unguarded(data, &message::Limits::default());
    let f = filter::extract(data, &analysis, &limits);
    assert!(f.len() <= MAX_FEATURES);
    assert!(!f.is_empty(), "every message has at least its size class");
    let mut hashes = f.tokens();
    let n = hashes.len();
    hashes.sort_unstable();
    hashes.dedup();
    assert_eq!(hashes.len(), n, "features are unique");
    for i in 0..f.len() {
        let name = f.describe(i);
        assert!(name.len() <= 4 * 1024, "feature name too long: {}", name.len());
    }
    assert_eq!(filter::extract(data, &analysis, &limits).tokens(), f.tokens());
    // The OSB form too (off by default, still supported).
    let osb = filter::Limits {
        osb_window: 5,
        ..limits
    };
    assert!(filter::extract(data, &analysis, &osb).len() <= MAX_FEATURES);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = filter::html::scan(text);
        for word in text.split_whitespace().take(64) {
            let _ = filter::url::parse(word);
        }
    }
});
