//! Stable 64-bit token hashes.
//!
//! Models in the store are keyed by these values, so the function must never change without a
//! new [`crate::FEATURE_VERSION`] (a model trained with other hashes is useless): hence a hash
//! written out here rather than `std`'s `DefaultHasher`, whose output may change between Rust
//! releases. FNV-1a over the bytes, then the SplitMix64 finaliser so that nearby inputs spread
//! over the whole range.

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// Odd constants of the pair combination (golden ratio and a SplitMix64 multiplier).
const PAIR_LEFT: u64 = 0x9e37_79b9_7f4a_7c15;
const PAIR_GAP: u64 = 0xd6e8_feb8_6659_fd93;

/// SplitMix64's finaliser: a bijection with good avalanche.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Hash of a token: its zone (so "subject:free" and body "free" differ) and its text.
pub(crate) fn token(zone: u8, text: &[u8]) -> u64 {
    let mut h = FNV_OFFSET ^ u64::from(zone);
    h = h.wrapping_mul(FNV_PRIME);
    for &b in text {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    mix(h)
}

/// Hash of an orthogonal sparse bigram: the earlier word, the later one and the number of words
/// skipped between them (0 for neighbours). Ordered: (a, b) and (b, a) differ.
pub(crate) fn pair(a: u64, b: u64, gap: u8) -> u64 {
    mix(a.wrapping_mul(PAIR_LEFT) ^ b.rotate_left(23) ^ (u64::from(gap) + 1).wrapping_mul(PAIR_GAP))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values pinned: a change here silently invalidates every stored model.
    #[test]
    fn hashes_are_pinned() {
        assert_eq!(token(0, b"free"), token(0, b"free"));
        assert_ne!(token(0, b"free"), token(1, b"free"));
        assert_ne!(pair(1, 2, 0), pair(2, 1, 0));
        assert_ne!(pair(1, 2, 0), pair(1, 2, 1));
        // Computed independently (Python) from the definition above.
        assert_eq!(token(0, b"free"), 0x992b_fdc7_7d3c_9c49);
        assert_eq!(
            pair(token(0, b"free"), token(0, b"money"), 1),
            0xb17c_e78c_39d1_62c2
        );
    }
}
