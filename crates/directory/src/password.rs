//! Credentials: Argon2id hashing into PHC strings, verification, generated passwords.
//!
//! Hashing and verifying are deliberately slow (tens of milliseconds): callers on the async runtime
//! run them on the blocking pool (`Directory` does).

use std::fmt;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Shortest password accepted when one is set.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest password accepted, in octets: a bound on work per request, far above real passwords.
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Length of a generated password.
pub const GENERATED_PASSWORD_LEN: usize = 20;
/// Alphabet of generated passwords: letters and digits without look-alikes (0/O/o, 1/l/I).
/// 56 symbols, so 20 characters carry about 116 bits.
const READABLE_ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// Lowest zxcvbn score (0 to 4) a new password needs by default. 3 is "safely unguessable:
/// moderate protection from an offline slow-hash scenario" (about 10^8 guesses and more), which
/// common words with a digit (`Password1`), keyboard walks and the account's own name fail.
pub const DEFAULT_MIN_PASSWORD_SCORE: u8 = 3;
/// Highest zxcvbn score.
pub const MAX_PASSWORD_SCORE: u8 = 4;
/// Characters the strength estimator looks at: its matching grows faster than linearly with the
/// length, and a password whose first 100 characters are strong is strong (Dropbox's own advice).
pub const STRENGTH_CHECK_MAX_CHARS: usize = 100;
/// Generated passwords drawn before giving up on one that passes the strength check (a 20-character
/// random password from 56 symbols fails it with negligible probability).
const MAX_GENERATION_ATTEMPTS: usize = 16;

/// Why a password is too easy to guess: zxcvbn's score and its feedback, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weakness {
    pub score: u8,
    pub required: u8,
    /// zxcvbn's warning and suggestions, e.g. "This is a top-10 common password."
    pub feedback: Vec<String>,
}

impl fmt::Display for Weakness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "password too easy to guess (strength {} of 4, at least {} needed)",
            self.score, self.required
        )?;
        if !self.feedback.is_empty() {
            write!(f, ": {}", self.feedback.join(" "))?;
        }
        Ok(())
    }
}

/// Estimates how guessable `password` is with zxcvbn, knowing the words an attacker would try
/// first (`user_inputs`: the address, its parts, the display name). `Err` when the score is below
/// `min_score`.
pub fn check_strength(password: &str, user_inputs: &[&str], min_score: u8) -> Result<(), Weakness> {
    if min_score == 0 {
        return Ok(());
    }
    let checked: String = password.chars().take(STRENGTH_CHECK_MAX_CHARS).collect();
    let entropy = zxcvbn::zxcvbn(&checked, user_inputs);
    let score = u8::from(entropy.score());
    if score >= min_score {
        return Ok(());
    }
    let mut feedback = Vec::new();
    if let Some(fb) = entropy.feedback() {
        if let Some(w) = fb.warning() {
            feedback.push(w.to_string());
        }
        feedback.extend(fb.suggestions().iter().map(ToString::to_string));
    }
    if feedback.is_empty() {
        feedback.push("Add more words or characters that are less common.".into());
    }
    Err(Weakness {
        score,
        required: min_score,
        feedback,
    })
}

/// A generated password ([`generate_password`]) that passes [`check_strength`] for these inputs.
pub fn generate_strong_password(user_inputs: &[&str], min_score: u8) -> Option<String> {
    (0..MAX_GENERATION_ATTEMPTS)
        .map(|_| generate_password())
        .find(|p| check_strength(p, user_inputs, min_score).is_ok())
}

/// Argon2id cost parameters (OWASP's recommended minimum by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HashParams {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl HashParams {
    pub const DEFAULT_MEMORY_KIB: u32 = 19_456;
    pub const DEFAULT_ITERATIONS: u32 = 2;
    pub const DEFAULT_PARALLELISM: u32 = 1;

    fn argon2(&self) -> Result<Argon2<'static>, PasswordError> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| PasswordError::Params(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// Checks that Argon2 accepts these parameters.
    pub fn validate(&self) -> Result<(), PasswordError> {
        self.argon2().map(|_| ())
    }
}

impl Default for HashParams {
    fn default() -> Self {
        HashParams {
            memory_kib: Self::DEFAULT_MEMORY_KIB,
            iterations: Self::DEFAULT_ITERATIONS,
            parallelism: Self::DEFAULT_PARALLELISM,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("invalid Argon2 parameters: {0}")]
    Params(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// A secret that never shows in `Debug` or `Display` output (logs, panics, traces).
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(secret: impl Into<String>) -> Password {
        Password(secret.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Password {
    fn from(s: String) -> Self {
        Password(s)
    }
}

/// Hashes `password` with Argon2id and a random salt into a PHC string (`$argon2id$v=19$m=...`).
pub fn hash_password(password: &str, params: &HashParams) -> Result<String, PasswordError> {
    params
        .argon2()?
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `phc`. The parameters come from the PHC string, so
/// hashes made with older parameters keep working. The final comparison is constant time (argon2
/// compares outputs with `subtle`). A malformed PHC string verifies nothing.
pub fn verify(phc: &str, password: &str) -> bool {
    // The `Argon2` instance's own parameters are ignored: verification uses those of `phc`.
    Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

/// A random password of [`GENERATED_PASSWORD_LEN`] characters from a readable alphabet, drawn from
/// the thread-local CSPRNG.
pub fn generate_password() -> String {
    let mut rng = rand::rng();
    (0..GENERATED_PASSWORD_LEN)
        .map(|_| char::from(READABLE_ALPHABET[rng.random_range(0..READABLE_ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap parameters so the tests stay fast; the defaults are exercised once.
    const FAST: HashParams = HashParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn hash_and_verify() {
        let phc = hash_password("correct horse", &FAST).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert!(verify(&phc, "correct horse"));
        assert!(!verify(&phc, "correct horsf"));
        assert!(!verify(&phc, ""));
    }

    #[test]
    fn salts_differ() {
        assert_ne!(
            hash_password("same", &FAST).unwrap(),
            hash_password("same", &FAST).unwrap()
        );
    }

    #[test]
    fn default_params() {
        let phc = hash_password("pässwörd", &HashParams::default()).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify(&phc, "pässwörd"));
    }

    #[test]
    fn malformed_phc_never_verifies() {
        assert!(!verify("", "x"));
        assert!(!verify("not a hash", "not a hash"));
        assert!(!verify("$argon2id$v=19$m=64,t=1,p=1$", ""));
    }

    #[test]
    fn invalid_params_rejected() {
        assert!(
            HashParams {
                memory_kib: 1,
                iterations: 1,
                parallelism: 1
            }
            .validate()
            .is_err()
        );
        assert!(
            HashParams {
                memory_kib: 64,
                iterations: 1,
                parallelism: 0
            }
            .validate()
            .is_err()
        );
        assert!(HashParams::default().validate().is_ok());
    }

    #[test]
    fn generated_passwords() {
        let a = generate_password();
        assert_eq!(a.chars().count(), GENERATED_PASSWORD_LEN);
        assert!(a.bytes().all(|b| READABLE_ALPHABET.contains(&b)));
        assert!(a.len() >= MIN_PASSWORD_LEN);
        assert_ne!(a, generate_password());
    }

    #[test]
    fn weak_passwords_are_refused_with_feedback() {
        let inputs = [
            "alice@example.com",
            "alice",
            "example.com",
            "example",
            "Alice Martin",
        ];
        for weak in [
            "password",
            "Password1",
            "alice@example.com",
            "qwertyuiop",
            "alicemartin",
        ] {
            let e = check_strength(weak, &inputs, DEFAULT_MIN_PASSWORD_SCORE).expect_err(weak);
            assert!(e.score < DEFAULT_MIN_PASSWORD_SCORE, "{weak}: {e}");
            assert!(!e.feedback.is_empty(), "{weak}: no explanation");
            assert!(
                e.to_string().starts_with("password too easy to guess"),
                "{e}"
            );
        }
        for strong in [
            "correct horse battery staple",
            "Tq7#vW2m!pZr",
            "velvet-otter-quarry-93",
        ] {
            assert!(
                check_strength(strong, &inputs, DEFAULT_MIN_PASSWORD_SCORE).is_ok(),
                "{strong}"
            );
        }
        // Score 0 turns the check off; a very long password is judged on its start.
        assert!(check_strength("password", &inputs, 0).is_ok());
        let long = format!("{}{}", generate_password().repeat(6), "x".repeat(5000));
        assert!(check_strength(&long, &inputs, MAX_PASSWORD_SCORE).is_ok());
    }

    #[test]
    fn generated_passwords_pass_the_strictest_check() {
        let inputs = ["bob@example.com", "bob"];
        for _ in 0..20 {
            let p = generate_strong_password(&inputs, MAX_PASSWORD_SCORE).unwrap();
            assert!(
                check_strength(&p, &inputs, MAX_PASSWORD_SCORE).is_ok(),
                "{p}"
            );
        }
    }

    #[test]
    fn password_redacted() {
        let p = Password::new("hunter2hunter2");
        assert_eq!(format!("{p:?}"), "Password(<redacted>)");
        assert_eq!(format!("{p}"), "<redacted>");
        assert_eq!(p.expose(), "hunter2hunter2");
    }
}
