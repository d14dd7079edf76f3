//! `facteur::config::parse` on arbitrary UTF-8: it must not panic, and a refused file must give
//! an error that renders (the renderer slices the text around the error's span, a classic
//! place for an out-of-bounds or non-char-boundary panic). An accepted file round-trips: the
//! config serialised back to TOML parses to the same value. A refused file reports each of its
//! errors on its own, every one with text, none of them a list itself, in line order.
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
                let errors = e.errors();
                assert!(!errors.is_empty(), "an error with no errors: {e}");
                let mut last_line = 0;
                for one in &errors {
                    assert!(
                        !matches!(one, facteur::config::ConfigError::Many(_)),
                        "nested list"
                    );
                    assert!(!one.to_string().is_empty());
                    if errors.len() > 1
                        && let Some(line) = one.line()
                    {
                        assert!(line >= last_line, "errors out of line order: {e}");
                        last_line = line;
                    }
                }
                assert_eq!(e.line(), errors.iter().find_map(|x| x.line()));
            }
        }
    }
});
