//! `store::BlobId::from_hex` on arbitrary UTF-8 (blob file names are read back from disk by
//! `check-store`): no panic, and an accepted id prints back to the same hex, lowercased.
#![no_main]

use libfuzzer_sys::fuzz_target;
use store::BlobId;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(id) = BlobId::from_hex(s) {
        assert_eq!(id.to_hex(), s.to_ascii_lowercase());
        assert_eq!(BlobId::from_hex(&id.to_hex()), Some(id));
        let _ = format!("{id:?}");
    }
});
