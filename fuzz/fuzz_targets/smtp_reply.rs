//! The SMTP client's reply parser (what a remote server sends us) on arbitrary bytes. Properties:
//! no panic; a parsed reply consumed only bytes it was given, re-parses the same from exactly
//! those bytes, and has a three-digit code; "more bytes needed" is only ever asked while the
//! input is within the size bounds, so a hostile server cannot make us buffer without end.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtp::client::reply::{MAX_REPLY_BYTES, MAX_REPLY_LINE, ParseError, parse};

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok((reply, used)) => {
            assert!(used > 0 && used <= data.len());
            assert!((200..600).contains(&reply.code), "{reply:?}");
            assert_eq!(parse(&data[..used]), Ok((reply.clone(), used)));
            assert!(reply.to_string().starts_with(&reply.code.to_string()));
        }
        Err(ParseError::Incomplete) => {
            assert!(data.len() <= MAX_REPLY_BYTES + MAX_REPLY_LINE, "{} bytes", data.len());
        }
        Err(ParseError::Malformed(_)) => {}
    }
});
