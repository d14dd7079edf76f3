//! Property tests: what one side of our SMTP code writes, the other side reads back unchanged.
//! - A server reply (`Reply::to_bytes`) parsed by the client (`client::reply::parse`).
//! - A message prepared for DATA by the client (`normalize` + `dot_stuff`) read by the server's
//!   `DataReader`: the same bytes, ended exactly at the terminator, whatever the content.
//! - SRS: `reverse(forward(sender)) == sender`.

use proptest::prelude::*;
use smtp::BareNewline;
use smtp::client::body::{dot_stuff, normalize};
use smtp::client::reply::parse;
use smtp::data::DataReader;
use smtp::reply::Reply;
use smtp::srs::Srs;

const ENHANCED: &[&str] = &["", "2.0.0", "2.1.5", "4.3.0", "4.7.0", "5.1.1", "5.7.1"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn server_replies_parse_back(
        code in prop_oneof![200u16..=299, 400u16..=499, 500u16..=599],
        enhanced_idx in 0..ENHANCED.len(),
        lines in proptest::collection::vec("[ -~]{0,80}", 1..5),
    ) {
        // The enhanced code must belong to the reply's class (RFC 3463); otherwise none.
        let e = ENHANCED[enhanced_idx];
        let e = if e.starts_with(char::from(b'0' + (code / 100) as u8)) { e } else { "" };
        let text = lines.join("\n");
        let wire = Reply::new(code, e, text.clone()).to_bytes();
        let (parsed, used) = parse(&wire).expect("our own reply parses");
        prop_assert_eq!(used, wire.len());
        prop_assert_eq!(parsed.code, code);
        prop_assert_eq!(parsed.enhanced.as_str(), e);
        // Each line's text comes back, without trailing CR.
        let expected: Vec<String> = lines.iter().map(|l| l.trim_end_matches('\r').to_string()).collect();
        let got: Vec<String> = parsed.text.split('\n').map(str::to_string).collect();
        if e.is_empty() {
            // Without an enhanced code a line that looks like one would be read as one; our
            // replies always carry one except the greeting, so only compare when it cannot.
            if !lines.iter().any(|l| l.split(' ').next().is_some_and(|w| w.split('.').count() == 3)) {
                prop_assert_eq!(got, expected);
            }
        } else {
            prop_assert_eq!(got, expected);
        }
    }

    #[test]
    fn data_written_by_the_client_is_read_back_by_the_server(
        body in proptest::collection::vec(
            prop_oneof![
                Just(b'.'), Just(b'\r'), Just(b'\n'), Just(b'a'), Just(b' '),
                (0x21u8..=0x7e), (0x80u8..=0xff)
            ],
            0..600,
        )
    ) {
        let wire_message = normalize(&body);
        let stuffed = dot_stuff(&wire_message);
        let mut reader = DataReader::new(1 << 20, 1 << 16, BareNewline::Reject);
        let mut got = Vec::new();
        let (used, done) = reader.feed(&stuffed, &mut got);
        prop_assert!(done, "the terminator ends the data");
        prop_assert_eq!(used, stuffed.len(), "and nothing before it does");
        reader.finish().expect("no bare CR/LF, no NUL, within limits");
        prop_assert_eq!(got, wire_message);
    }

    #[test]
    fn srs_reverses_what_it_forwards(
        local in "[a-z0-9][a-z0-9.+_=-]{0,30}",
        domain in "[a-z][a-z0-9-]{0,20}\\.[a-z]{2,6}",
        now in 1_000_000_000i64..2_000_000_000,
        secret in proptest::collection::vec(any::<u8>(), 1..40),
    ) {
        let srs = Srs::new(&secret, "fwd.example");
        let sender = format!("{local}@{domain}");
        let rewritten = srs.forward(&sender, now);
        let (l, d) = rewritten.rsplit_once('@').unwrap();
        prop_assert_eq!(d, "fwd.example");
        prop_assert_eq!(srs.reverse(l, now + 86_400).unwrap(), Some(sender));
    }
}
