//! Sizes as people write them: `"50M"`, `"2G"`, `"512K"`, or a plain number of bytes. One parser
//! for the config file's size keys and the CLI's `--quota`, so both accept the same words.

use std::fmt;

use serde::de::{self, Deserializer, Unexpected, Visitor};

/// What a size key accepts, in words (also serde's "expected" text).
pub const SIZE_WORDS: &str =
    "a size: a number of bytes, or a string such as \"50M\", \"2G\" or \"512K\"";

/// Parses `1048576`, `512K`, `50M`, `2G`, `1T` (K, M, G and T are binary multiples: 1024, 1024²,
/// ...; `KB`, `KiB` and the like mean the same). Space between number and unit is allowed.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(digits_end);
    let bad = || format!("{s:?} is not a size (examples: 50M, 2G, 512K, 1048576)");
    if digits.is_empty() {
        return Err(bad());
    }
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    let n: u64 = digits.parse().map_err(|_| format!("{s:?} is too large"))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

struct SizeVisitor;

impl Visitor<'_> for SizeVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SIZE_WORDS)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        parse_size(v).map_err(|_| E::invalid_value(Unexpected::Str(v), &self))
    }
}

/// `deserialize_with` for a `u64` size key.
pub fn bytes_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(SizeVisitor)
}

/// `deserialize_with` for a `usize` size key.
pub fn bytes_usize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let v = d.deserialize_any(SizeVisitor)?;
    usize::try_from(v).map_err(|_| {
        de::Error::invalid_value(Unexpected::Unsigned(v), &"a size that fits this machine")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("50M"), Ok(50 << 20));
        assert_eq!(parse_size("50 MiB"), Ok(50 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("1TB"), Ok(1 << 40));
        assert_eq!(parse_size(" 7 "), Ok(7));
        for bad in ["", "M", "12Q", "-1", "1.5G", "0x10", "5 M B"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(
            parse_size("99999999999T")
                .unwrap_err()
                .contains("too large")
        );
        assert!(parse_size("99999999999999999999999").is_err());
    }
}
