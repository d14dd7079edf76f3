//! IMAP BINARY (RFC 3516) on arbitrary messages: every part path the analysis knows (and one past
//! it) is decoded. Properties: no panic; BINARY.SIZE is the length of BINARY[]; decoding never
//! produces more bytes than the section holds (base64 and quoted-printable only shrink), so a
//! FETCH BINARY can never cost more memory than the message itself.
#![no_main]

use std::num::NonZeroU32;

use imap::command::binary;
use libfuzzer_sys::fuzz_target;
use message::{BodyPart, Limits, analyze};

fuzz_target!(|data: &[u8]| {
    let a = analyze(data, &Limits::default());
    let mut paths: Vec<Vec<NonZeroU32>> = vec![vec![]];
    collect(&a.body, &mut Vec::new(), &mut paths);
    for path in &paths {
        let (Ok(content), Ok(size)) = (
            binary::content(data, &a, path),
            binary::size(data, &a, path),
        ) else {
            // Unknown encoding: both refuse, and check() says so before anything is sent.
            assert!(binary::check(&a, path).is_err(), "check passed where decoding refused: {path:?}");
            continue;
        };
        assert!(binary::check(&a, path).is_ok());
        assert_eq!(size, content.len(), "BINARY.SIZE differs from BINARY[] for {path:?}");
        assert!(content.len() <= data.len(), "decoding grew the data for {path:?}");
    }
});

/// Every child path (1-based), plus one number past the last child of each level.
fn collect(p: &BodyPart, prefix: &mut Vec<NonZeroU32>, out: &mut Vec<Vec<NonZeroU32>>) {
    if out.len() > 64 {
        return;
    }
    for (i, c) in p.children.iter().enumerate() {
        prefix.push(NonZeroU32::new(i as u32 + 1).unwrap());
        out.push(prefix.clone());
        collect(c, prefix, out);
        prefix.pop();
    }
    prefix.push(NonZeroU32::new(p.children.len() as u32 + 1).unwrap());
    out.push(prefix.clone());
    prefix.pop();
}
