//! Sieve scripts as users upload them (`facteur sieve put`, later ManageSieve) on arbitrary
//! bytes. Properties: compiling never panics; a refused script names a line within the script
//! (or 0 for the whole script); a script over the size limit is refused; an accepted script's
//! stored compiled form loads back (in a fresh engine, no cache) to the same program.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sievefilter::{COMPILED_FORMAT, Engine, Limits};

const MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_script_size: MAX,
        ..Limits::default()
    };
    let engine = Engine::new(limits.clone(), "mx.fuzz.test");
    match engine.compile(data) {
        Ok(compiled) => {
            assert!(data.len() <= MAX);
            let script = store::SieveScript {
                owner: store::SieveOwner::Account(1),
                name: "f".into(),
                content: data.to_vec(),
                compiled: Some(compiled.stored.clone()),
                compiled_format: COMPILED_FORMAT.into(),
                active: true,
                updated: 0,
            };
            let fresh = Engine::new(limits, "mx.fuzz.test");
            let loaded = fresh.program(&script).expect("stored program loads");
            assert_eq!(*loaded, *compiled.program);
        }
        Err(e) => {
            let lines = data.split(|&b| b == b'\n').count();
            assert!(e.line <= lines + 1, "line {} of {lines}: {e}", e.line);
            assert!(!e.message.is_empty());
        }
    }
});
