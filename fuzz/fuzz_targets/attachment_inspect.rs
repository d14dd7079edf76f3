//! Attachment inspection (`malware::inspect_file`, with the zip walk, the content sniffer and
//! the name rules) on arbitrary bytes, and on arbitrary messages (`inspect_message`): no panic;
//! at most `MAX_FINDINGS` findings, each naming a printable file; the same input gives the same
//! findings; content that starts like a Windows executable is always found as one.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use malware::{Category, Limits};

fuzz_target!(|data: &[u8]| {
    // Small limits, so fuzzed inputs reach them.
    let limits = Limits {
        max_attachments: 8,
        max_file_size: 64 * 1024,
        max_depth: 3,
        max_entries: 16,
        max_uncompressed: 256 * 1024,
        max_ratio: 50,
    };
    let name = data
        .iter()
        .position(|&b| b == 0)
        .map(|p| String::from_utf8_lossy(&data[..p]).into_owned());
    let findings = malware::inspect_file(name.as_deref(), data, &limits);
    assert!(findings.len() <= malware::inspect::MAX_FINDINGS);
    for f in &findings {
        assert!(!f.file.chars().any(char::is_control), "{:?}", f.file);
    }
    assert_eq!(
        malware::inspect_file(name.as_deref(), data, &limits),
        findings
    );
    if data.starts_with(b"MZ") {
        assert!(findings.iter().any(|f| f.category == Category::Executable));
    }
    if let Some(n) = &name {
        let _ = malware::names::classify(n);
    }

    let prepared = message::Prepared::new(Arc::from(data), &message::Limits::default());
    let m = malware::inspect_message(&prepared, &limits);
    assert!(m.len() <= malware::inspect::MAX_FINDINGS);
});
