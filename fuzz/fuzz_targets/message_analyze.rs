//! `message::analyze` on arbitrary bytes: it must not panic (the unguarded entry point is
//! used, so a parser panic is a crash here rather than a silent fallback), every part's byte
//! ranges must lie inside the message and be ordered, children inside their parent's body,
//! and the analysis must survive the JSON round trip the store caches it through.
#![no_main]

use libfuzzer_sys::fuzz_target;
use message::{Analysis, BodyPart, Limits, analyze_unguarded};

fuzz_target!(|data: &[u8]| {
    let analysis = analyze_unguarded(data, &Limits::default());
    check_part(&analysis.body, data.len() as u64, (0, data.len() as u64));

    let json = serde_json::to_string(&analysis).expect("analysis serialises");
    let back: Analysis = serde_json::from_str(&json).expect("analysis deserialises");
    assert_eq!(back, analysis, "JSON round trip changed the analysis");
});

/// `outer`: the range this part must lie in (its parent's body, or the whole message).
fn check_part(p: &BodyPart, len: u64, outer: (u64, u64)) {
    let (hs, he) = p.header_range;
    let (bs, be) = p.body_range;
    assert!(hs <= he, "header range reversed: {:?}", p.header_range);
    assert_eq!(he, bs, "body does not start where the header ends");
    assert!(bs <= be, "body range reversed: {:?}", p.body_range);
    assert!(
        be <= len,
        "body range past the end: {:?} > {len}",
        p.body_range
    );
    assert!(
        outer.0 <= hs && be <= outer.1,
        "part {:?}..{:?} outside its parent {outer:?}",
        p.header_range,
        p.body_range
    );
    assert_eq!(p.size, be - bs, "size differs from the body range");
    assert_eq!(
        p.content_type == "multipart",
        !p.children.is_empty(),
        "multipart exactly when there are children"
    );
    let mut prev_end = bs;
    for child in &p.children {
        assert!(
            child.header_range.0 >= prev_end,
            "children overlap or are out of order"
        );
        check_part(child, len, (bs, be));
        prev_end = child.body_range.1;
    }
    if let Some(m) = &p.message {
        check_part(&m.1, len, (bs, be));
    }
}
