//! The MTA-STS policy parser (RFC 8461 §3.2; a policy is fetched from the recipient domain's web
//! server, so it is hostile input). Properties: no panic; an accepted policy has a max_age within
//! the RFC's bound and MX patterns in lower case without a trailing dot.
#![no_main]

use libfuzzer_sys::fuzz_target;
use queue::mta_sts::{MAX_AGE_LIMIT, MAX_POLICY_BYTES, parse};

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_POLICY_BYTES {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(p) = parse(text) {
        assert!(p.max_age <= MAX_AGE_LIMIT);
        for mx in &p.mx {
            assert!(!mx.ends_with('.'), "{mx:?}");
            assert_eq!(mx, &mx.to_ascii_lowercase());
        }
    }
});
