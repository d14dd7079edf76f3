//! `facteur::config::parse` on arbitrary UTF-8: it must not panic, and a refused file must give
//! an error that renders (the renderer slices the text around the error's span, a classic
//! place for an out-of-bounds or non-char-boundary panic). An accepted file round-trips: the
//! config serialised back to TOML parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for privileged in [false, true] {
        match facteur::config::parse_for(text, "fuzz.toml", privileged) {
            Ok(config) => {
                let text = toml::to_string(&config).expect("config serialises");
                let again = facteur::config::parse_for(&text, "again.toml", privileged)
                    .unwrap_or_else(|e| panic!("serialised config refused: {e}\n{text}"));
                assert_eq!(again, config, "TOML round trip changed the config");
            }
            Err(e) => {
                let _ = e.to_string();
                let _ = e.line();
            }
        }
    }
});
