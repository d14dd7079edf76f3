//! The SMTP command parser on arbitrary lines. Properties: no panic; every refusal is a 5xx reply
//! with an enhanced status code; a parsed path's address re-parses to the same mailbox.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtp::command::{Command, parse, parse_mailbox};

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else { return };
    for utf8 in [false, true] {
        match parse(line, utf8) {
            Err(r) => {
                assert!((500..600).contains(&r.code), "{r}");
                assert!(!r.enhanced.is_empty());
            }
            Ok(Command::Mail { from: Some(m), .. }) | Ok(Command::Rcpt { to: m, .. }) if !m.domain.is_empty() => {
                let again = parse_mailbox(&m.address()).unwrap_or_else(|| panic!("{:?} does not re-parse", m.address()));
                assert_eq!(again, m);
            }
            Ok(_) => {}
        }
    }
});
