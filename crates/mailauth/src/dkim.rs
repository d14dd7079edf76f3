//! DKIM signing keys and signatures (RFC 6376; Ed25519 per RFC 8463). Signing is done by ring
//! through `mail-auth`; ring cannot generate RSA keys, so RSA generation uses the `rsa` crate.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mail_auth::common::crypto::{self, Algorithm, Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::{HeaderWriter, Writable};
use mail_auth::dkim::{Canonicalization, DkimSigner};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// RSA modulus size of generated keys (RFC 8301 §3.2: at least 1024, 2048 recommended).
pub const RSA_BITS: usize = 2048;
/// PEM body line length (RFC 7468 §2).
const PEM_LINE: usize = 64;

/// Header fields we sign, when present (RFC 6376 §5.4.1). Listed fields that are absent are
/// signed as absent, so they cannot be added later; From is listed twice so that a second From
/// cannot be added either ("over-signing", RFC 6376 §8.15).
pub const SIGNED_HEADERS: &[&str] = &[
    "From",
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Reply-To",
    "In-Reply-To",
    "References",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DkimAlgorithm {
    Ed25519,
    Rsa,
}

impl DkimAlgorithm {
    /// The name stored with keys and used in `k=` (RFC 6376 §3.6.1, RFC 8463 §4).
    pub fn as_str(self) -> &'static str {
        match self {
            DkimAlgorithm::Ed25519 => "ed25519",
            DkimAlgorithm::Rsa => "rsa",
        }
    }
}

impl fmt::Display for DkimAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DkimAlgorithm {
    type Err = DkimError;
    fn from_str(s: &str) -> Result<Self, DkimError> {
        match s.to_ascii_lowercase().as_str() {
            "ed25519" => Ok(DkimAlgorithm::Ed25519),
            "rsa" => Ok(DkimAlgorithm::Rsa),
            other => Err(DkimError::Key(format!("unknown DKIM algorithm {other:?}"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DkimError {
    #[error("DKIM key: {0}")]
    Key(String),
    #[error("DKIM signing: {0}")]
    Sign(String),
}

/// A DKIM private key with what signing needs already parsed. `Debug` shows no key material.
pub struct DkimKey {
    algorithm: DkimAlgorithm,
    pkcs8: Vec<u8>,
    /// The `p=` value: raw 32 bytes for Ed25519, SubjectPublicKeyInfo DER for RSA.
    public_key: Vec<u8>,
    signer: crypto::DkimKey,
}

impl fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DkimKey")
            .field("algorithm", &self.algorithm)
            .field("public_key", &STANDARD.encode(&self.public_key))
            .finish_non_exhaustive()
    }
}

fn key_err(e: impl fmt::Display) -> DkimError {
    DkimError::Key(e.to_string())
}

impl DkimKey {
    pub fn generate(algorithm: DkimAlgorithm) -> Result<DkimKey, DkimError> {
        let pkcs8 = match algorithm {
            DkimAlgorithm::Ed25519 => Ed25519Key::generate_pkcs8().map_err(key_err)?,
            DkimAlgorithm::Rsa => {
                let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, RSA_BITS)
                    .map_err(key_err)?;
                key.to_pkcs8_der().map_err(key_err)?.as_bytes().to_vec()
            }
        };
        Self::from_pkcs8_der(&pkcs8)
    }

    /// A PKCS#8 private key, Ed25519 or RSA (the algorithm is read from the key).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<DkimKey, DkimError> {
        if let Ok(key) = Ed25519Key::from_pkcs8_maybe_unchecked_der(der) {
            return Ok(DkimKey {
                algorithm: DkimAlgorithm::Ed25519,
                pkcs8: der.to_vec(),
                public_key: key.public_key(),
                signer: crypto::DkimKey::Ed25519(key),
            });
        }
        let rsa_key = rsa::RsaPrivateKey::from_pkcs8_der(der)
            .map_err(|e| DkimError::Key(format!("neither Ed25519 nor RSA PKCS#8: {e}")))?;
        let public_key = rsa_key
            .to_public_key()
            .to_public_key_der()
            .map_err(key_err)?
            .as_bytes()
            .to_vec();
        let signer = RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(
            PrivatePkcs8KeyDer::from(der.to_vec()),
        ))
        .map_err(key_err)?;
        Ok(DkimKey {
            algorithm: DkimAlgorithm::Rsa,
            pkcs8: der.to_vec(),
            public_key,
            signer: crypto::DkimKey::Rsa(signer),
        })
    }

    /// `-----BEGIN PRIVATE KEY-----` PEM (RFC 7468 §10), as [`DkimKey::to_pkcs8_pem`] writes.
    pub fn from_pkcs8_pem(pem: &str) -> Result<DkimKey, DkimError> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).map_err(key_err)?;
        Self::from_pkcs8_der(der.secret_pkcs8_der())
    }

    pub fn to_pkcs8_pem(&self) -> String {
        let b64 = STANDARD.encode(&self.pkcs8);
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for line in b64.as_bytes().chunks(PEM_LINE) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        pem
    }

    pub fn algorithm(&self) -> DkimAlgorithm {
        self.algorithm
    }

    /// The TXT record to publish at `<selector>._domainkey.<domain>` (RFC 6376 §3.6.1).
    pub fn dns_txt_record(&self) -> String {
        format!(
            "v=DKIM1; k={}; p={}",
            self.algorithm,
            STANDARD.encode(&self.public_key)
        )
    }

    /// The `DKIM-Signature: ...\r\n` header field to prepend to `raw_message`: relaxed/relaxed,
    /// SHA-256, over [`SIGNED_HEADERS`], with `t=` and no expiry.
    pub fn sign(
        &self,
        raw_message: &[u8],
        domain: &str,
        selector: &str,
    ) -> Result<String, DkimError> {
        self.sign_with_expiry(raw_message, domain, selector, None)
    }

    /// As [`DkimKey::sign`] over the concatenation of `parts` (trace fields, then the message as
    /// received), without joining them.
    pub fn sign_parts(
        &self,
        parts: &[&[u8]],
        domain: &str,
        selector: &str,
    ) -> Result<String, DkimError> {
        let signature = DkimSigner::from_key(KeyRef(&self.signer))
            .domain(domain)
            .selector(selector)
            .headers(SIGNED_HEADERS.iter().copied())
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed)
            .sign_chained(parts.iter().copied())
            .map_err(|e| DkimError::Sign(e.to_string()))?;
        Ok(signature.to_header())
    }

    /// As [`DkimKey::sign`], with `x=` set `expiry` after `t=` when given (RFC 6376 §3.5).
    pub fn sign_with_expiry(
        &self,
        raw_message: &[u8],
        domain: &str,
        selector: &str,
        expiry: Option<Duration>,
    ) -> Result<String, DkimError> {
        let mut signer = DkimSigner::from_key(KeyRef(&self.signer))
            .domain(domain)
            .selector(selector)
            .headers(SIGNED_HEADERS.iter().copied())
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed);
        if let Some(expiry) = expiry {
            signer = signer.expiration(expiry.as_secs().max(1));
        }
        let signature = signer
            .sign(raw_message)
            .map_err(|e| DkimError::Sign(e.to_string()))?;
        Ok(signature.to_header())
    }
}

/// Signs through a borrowed key, so one parsed key serves every message.
struct KeyRef<'a>(&'a crypto::DkimKey);

impl SigningKey for KeyRef<'_> {
    type Hasher = Sha256;

    fn sign(&self, input: impl Writable) -> mail_auth::Result<Vec<u8>> {
        self.0.sign(input)
    }

    fn algorithm(&self) -> Algorithm {
        self.0.algorithm()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_keeps_the_key() {
        for alg in [DkimAlgorithm::Ed25519, DkimAlgorithm::Rsa] {
            let key = DkimKey::generate(alg).unwrap();
            let pem = key.to_pkcs8_pem();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
            let back = DkimKey::from_pkcs8_pem(&pem).unwrap();
            assert_eq!(back.algorithm(), alg);
            assert_eq!(back.dns_txt_record(), key.dns_txt_record());
            assert!(!format!("{key:?}").contains(&pem[40..70]));
        }
    }

    #[test]
    fn txt_record_names_the_algorithm() {
        let ed = DkimKey::generate(DkimAlgorithm::Ed25519).unwrap();
        let txt = ed.dns_txt_record();
        assert!(txt.starts_with("v=DKIM1; k=ed25519; p="), "{txt}");
        // RFC 8463 §4.2: the raw 32-byte public key.
        assert_eq!(STANDARD.decode(&txt[22..]).unwrap().len(), 32);
        let rsa = DkimKey::generate(DkimAlgorithm::Rsa).unwrap();
        // SubjectPublicKeyInfo of a 2048-bit key starts MIIBIj.
        assert!(
            rsa.dns_txt_record().starts_with("v=DKIM1; k=rsa; p=MIIBIj"),
            "{}",
            rsa.dns_txt_record()
        );
    }

    #[test]
    fn signature_over_signs_from_and_sets_t() {
        let key = DkimKey::generate(DkimAlgorithm::Ed25519).unwrap();
        let msg = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nbody\r\n";
        let header = key.sign(msg, "example.org", "s1").unwrap();
        assert!(header.starts_with("DKIM-Signature: "), "{header}");
        assert!(header.ends_with("\r\n"));
        let unfolded: String = header.split_whitespace().collect();
        assert!(unfolded.contains("a=ed25519-sha256;"), "{unfolded}");
        assert!(unfolded.contains("c=relaxed/relaxed;"), "{unfolded}");
        assert!(unfolded.contains("d=example.org;"), "{unfolded}");
        assert!(unfolded.contains("s=s1;"), "{unfolded}");
        assert!(unfolded.contains("t="), "{unfolded}");
        assert!(!unfolded.contains("x="), "{unfolded}");
        let h = unfolded
            .split(';')
            .find_map(|t| t.strip_prefix("h="))
            .unwrap()
            .to_ascii_lowercase();
        assert_eq!(h.matches("from").count(), 2, "{h}");
        let with_expiry = key
            .sign_with_expiry(msg, "example.org", "s1", Some(Duration::from_secs(3600)))
            .unwrap();
        assert!(with_expiry.contains("x="), "{with_expiry}");
    }

    #[test]
    fn garbage_is_not_a_key() {
        assert!(DkimKey::from_pkcs8_pem("not a key").is_err());
        assert!(DkimKey::from_pkcs8_der(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_err());
        assert!("dsa".parse::<DkimAlgorithm>().is_err());
        assert_eq!("RSA".parse::<DkimAlgorithm>().unwrap(), DkimAlgorithm::Rsa);
    }
}
