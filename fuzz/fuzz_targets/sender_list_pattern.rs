//! Allow/block list patterns (`filter::lists::Pattern`) on arbitrary text: no panic; a pattern
//! that parses has a canonical form that parses to the same pattern (round trip), and matching
//! it against the input as a sender and any client address never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = filter::lists::Pattern::parse(text) {
        let canonical = p.canonical();
        assert!(canonical.len() <= filter::lists::MAX_PATTERN_LEN + 8);
        assert_eq!(
            filter::lists::Pattern::parse(&canonical).as_ref(),
            Ok(&p),
            "{canonical}"
        );
        let _ = p.matches(
            &[text.to_string()],
            Some(std::net::IpAddr::from([192, 0, 2, data.len() as u8])),
        );
    }
});
