//! `net::sasl` on arbitrary input: a SASL response line and a decoded PLAIN message. Properties: no
//! panic; accepted credentials have a non-empty user and contain no NUL; encoding them again as
//! `\0user\0password` parses back to the same credentials.
#![no_main]

use libfuzzer_sys::fuzz_target;
use net::sasl::{decode_response, parse_plain};

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = std::str::from_utf8(data)
        && let Ok(raw) = decode_response(line)
    {
        let _ = parse_plain(&raw);
    }
    if let Ok(c) = parse_plain(data) {
        assert!(!c.authcid.is_empty());
        assert!(!c.authcid.contains('\0') && !c.password.contains('\0'));
        let again = parse_plain(format!("\0{}\0{}", c.authcid, c.password).as_bytes())
            .expect("re-encoded credentials parse");
        assert_eq!(again.authcid, c.authcid);
        assert_eq!(again.password, c.password);
    }
});
