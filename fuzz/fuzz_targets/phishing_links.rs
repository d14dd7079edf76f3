//! The phishing heuristics (`malware::phishing::analyze`: HTML link extraction, URL hosts,
//! punycode and confusable checks, display names) on arbitrary messages, and clamd's reply
//! parser on arbitrary replies: no panic; a bounded number of signals, each a PHISH_ symbol with
//! a finite, non-negative score and a bounded detail; the same input gives the same signals.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use malware::phishing::{Identities, analyze};

fuzz_target!(|data: &[u8]| {
    let ours = Identities {
        domains: vec!["example.com".into(), "acme.test".into()],
        names: vec!["Alice Martin".into()],
    };
    let prepared = message::Prepared::new(Arc::from(data), &message::Limits::default());
    let signals = analyze(&prepared, &ours);
    // Ten kinds, at most three details each.
    assert!(signals.len() <= 30, "{}", signals.len());
    for s in &signals {
        assert!(s.symbol.starts_with("PHISH_"));
        assert!(s.score.is_finite() && s.score >= 0.0);
        assert!(s.detail.len() <= 4 * 1024, "{}", s.detail.len());
    }
    assert_eq!(analyze(&prepared, &ours), signals);

    if let Ok(malware::clamd::Scan::Infected(name)) = malware::clamd::parse_reply(data) {
        assert!(name.chars().count() <= 200 && !name.chars().any(char::is_control));
    }
});
