//! `directory::parse_address` and `split_plus` on arbitrary UTF-8. Properties: no panic; a
//! parsed address is normalised, i.e. its printed form parses back to the same value (so a
//! stored key is found again); the plus split gives back pieces of the local part.
#![no_main]

use directory::address::{MAX_DOMAIN_LEN, MAX_LOCAL_PART_LEN};
use directory::{Address, parse_address, split_plus};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };

    let (base, tag) = split_plus(input);
    match tag {
        Some(tag) => {
            assert!(!base.is_empty(), "empty base with a tag");
            assert_eq!(format!("{base}+{tag}"), input, "split lost characters");
        }
        None => assert_eq!(base, input),
    }

    if let Ok((local, domain)) = parse_address(input) {
        assert!(!local.is_empty() && local.len() <= MAX_LOCAL_PART_LEN);
        assert!(!domain.is_empty() && domain.len() <= MAX_DOMAIN_LEN);
        let printed = format!("{local}@{domain}");
        let again = parse_address(&printed)
            .unwrap_or_else(|e| panic!("{printed:?} (from {input:?}) does not re-parse: {e}"));
        assert_eq!(again, (local.clone(), domain.clone()), "not idempotent");
        let addr = Address::parse(&printed).expect("Address::parse agrees with parse_address");
        assert_eq!(addr.to_string(), printed);
        let (b, t) = addr.split_plus();
        assert!(local.starts_with(b));
        if let Some(t) = t {
            assert!(local.ends_with(t));
        }
    }
});
