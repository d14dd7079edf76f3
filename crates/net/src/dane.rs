//! DANE certificate checks for outbound SMTP (RFC 7672, with RFC 6698 and RFC 7671).
//!
//! When an MX host publishes DNSSEC-secure TLSA records, delivery to it requires TLS and the
//! server's certificate must match one of the usable records:
//! - DANE-EE (usage 3): the server's own certificate or its public key matches; no name, chain or
//!   expiry checks (RFC 7672 §3.1.1).
//! - DANE-TA (usage 2): some certificate of the chain the server sends matches and becomes the
//!   only trust anchor; the leaf must chain to it, be valid now, and carry the MX host name or
//!   the recipient domain (RFC 7672 §3.1.2, §3.2).
//!
//! PKIX-TA and PKIX-EE (usages 0 and 1) are unusable for SMTP (RFC 7672 §3.1.3); when no record
//! is usable, TLS is still required but the certificate is not checked (the caller uses the
//! opportunistic configuration with TLS required).

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme};

pub const USAGE_DANE_TA: u8 = 2;
pub const USAGE_DANE_EE: u8 = 3;

/// One TLSA record (RFC 6698 §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
}

impl Tlsa {
    /// RFC 7672 §3.1.3 and RFC 7671 §4: usages DANE-TA and DANE-EE, selectors Cert and SPKI,
    /// matching types Full, SHA2-256 and SHA2-512. Anything else is ignored.
    pub fn is_usable(&self) -> bool {
        matches!(self.usage, USAGE_DANE_TA | USAGE_DANE_EE)
            && self.selector <= 1
            && self.matching <= 2
            && !self.data.is_empty()
    }

    /// Whether `cert` (DER) matches this record's selector and matching type.
    pub fn matches(&self, cert: &[u8]) -> bool {
        let selected: &[u8] = match self.selector {
            0 => cert,
            1 => match x509_parser::parse_x509_certificate(cert) {
                Ok((_, parsed)) => parsed.tbs_certificate.subject_pki.raw,
                Err(_) => return false,
            },
            _ => return false,
        };
        match self.matching {
            0 => selected == self.data.as_slice(),
            1 => ring::digest::digest(&ring::digest::SHA256, selected).as_ref() == self.data,
            2 => ring::digest::digest(&ring::digest::SHA512, selected).as_ref() == self.data,
            _ => false,
        }
    }
}

/// A TLS client configuration (TLS 1.2+) that accepts only a certificate matching one of the
/// usable `records`; `names` are the reference identifiers for DANE-TA (the MX host name first,
/// then the recipient domain).
pub fn client_config(records: Vec<Tlsa>, names: Vec<String>) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(DaneVerifier {
        records: records.into_iter().filter(Tlsa::is_usable).collect(),
        names,
        provider: provider.clone(),
    });
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .expect("ring supports TLS 1.2 and 1.3")
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
    )
}

#[derive(Debug)]
struct DaneVerifier {
    records: Vec<Tlsa>,
    names: Vec<String>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl DaneVerifier {
    /// DANE-TA: a certificate of the chain matches a record; the chain must then verify up to
    /// it, for one of the reference names.
    fn trust_anchor_ok(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> bool {
        for record in self.records.iter().filter(|r| r.usage == USAGE_DANE_TA) {
            for anchor in intermediates.iter().filter(|c| record.matches(c)) {
                let mut roots = rustls::RootCertStore::empty();
                if roots.add(anchor.clone().into_owned()).is_err() {
                    continue;
                }
                let Ok(verifier) = WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    self.provider.clone(),
                )
                .build() else {
                    continue;
                };
                for name in &self.names {
                    let Ok(server_name) = ServerName::try_from(name.clone()) else {
                        continue;
                    };
                    if verifier
                        .verify_server_cert(end_entity, intermediates, &server_name, &[], now)
                        .is_ok()
                    {
                        return true;
                    }
                }
            }
        }
        false
    }
}

impl ServerCertVerifier for DaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ee = self
            .records
            .iter()
            .any(|r| r.usage == USAGE_DANE_EE && r.matches(end_entity));
        if ee || self.trust_anchor_ok(end_entity, intermediates, now) {
            return Ok(ServerCertVerified::assertion());
        }
        tracing::warn!(
            host = %server_name.to_str(),
            records = self.records.len(),
            "DANE: the server's certificate matches none of its TLSA records"
        );
        Err(rustls::Error::InvalidCertificate(
            CertificateError::ApplicationVerificationFailure,
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(name: &str) -> rcgen::CertifiedKey<rcgen::KeyPair> {
        rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("cert")
    }

    fn spki_sha256(cert: &[u8]) -> Vec<u8> {
        let (_, parsed) = x509_parser::parse_x509_certificate(cert).expect("parse");
        ring::digest::digest(
            &ring::digest::SHA256,
            parsed.tbs_certificate.subject_pki.raw,
        )
        .as_ref()
        .to_vec()
    }

    #[test]
    fn matching_types_and_selectors() {
        let c = self_signed("mx.example.test");
        let der = c.cert.der().to_vec();
        let full = Tlsa {
            usage: 3,
            selector: 0,
            matching: 0,
            data: der.clone(),
        };
        assert!(full.matches(&der));
        let sha256 = Tlsa {
            usage: 3,
            selector: 0,
            matching: 1,
            data: ring::digest::digest(&ring::digest::SHA256, &der)
                .as_ref()
                .to_vec(),
        };
        assert!(sha256.matches(&der));
        let sha512 = Tlsa {
            usage: 3,
            selector: 0,
            matching: 2,
            data: ring::digest::digest(&ring::digest::SHA512, &der)
                .as_ref()
                .to_vec(),
        };
        assert!(sha512.matches(&der));
        let spki = Tlsa {
            usage: 3,
            selector: 1,
            matching: 1,
            data: spki_sha256(&der),
        };
        assert!(spki.matches(&der));
        // The public key of a re-issued certificate with the same key still matches 3 1 1.
        let other = self_signed("mx.example.test");
        assert!(!spki.matches(other.cert.der()));
        assert!(!sha256.matches(other.cert.der()));
        assert!(
            !Tlsa {
                usage: 3,
                selector: 1,
                matching: 1,
                data: vec![0; 32]
            }
            .matches(&der)
        );
        assert!(
            !Tlsa {
                usage: 3,
                selector: 7,
                matching: 1,
                data: vec![0; 32]
            }
            .matches(&der)
        );
    }

    #[test]
    fn pkix_usages_are_unusable_for_smtp() {
        for (usage, usable) in [(0, false), (1, false), (2, true), (3, true), (4, false)] {
            let t = Tlsa {
                usage,
                selector: 1,
                matching: 1,
                data: vec![1; 32],
            };
            assert_eq!(t.is_usable(), usable, "usage {usage}");
        }
        assert!(
            !Tlsa {
                usage: 3,
                selector: 2,
                matching: 1,
                data: vec![1; 32]
            }
            .is_usable()
        );
        assert!(
            !Tlsa {
                usage: 3,
                selector: 1,
                matching: 3,
                data: vec![1; 32]
            }
            .is_usable()
        );
    }

    #[test]
    fn end_entity_verification_ignores_names_and_chains() {
        let c = self_signed("somewhere-else.test");
        let der = CertificateDer::from(c.cert.der().to_vec());
        let v = DaneVerifier {
            records: vec![Tlsa {
                usage: 3,
                selector: 1,
                matching: 1,
                data: spki_sha256(&der),
            }],
            names: vec!["mx.example.test".into()],
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        };
        let name = ServerName::try_from("mx.example.test").unwrap();
        assert!(
            v.verify_server_cert(&der, &[], &name, &[], UnixTime::now())
                .is_ok()
        );
        let wrong = CertificateDer::from(self_signed("mx.example.test").cert.der().to_vec());
        assert!(
            v.verify_server_cert(&wrong, &[], &name, &[], UnixTime::now())
                .is_err()
        );
    }

    #[test]
    fn trust_anchor_verification_checks_chain_and_name() {
        // A private CA issues the MX host's certificate; the TLSA record names the CA.
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Test DANE CA");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_params = rcgen::CertificateParams::new(vec!["mx.example.test".into()]).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
        let leaf_der = CertificateDer::from(leaf.der().to_vec());
        let ca_der = CertificateDer::from(ca.der().to_vec());
        let v = |names: Vec<&str>| DaneVerifier {
            records: vec![Tlsa {
                usage: 2,
                selector: 0,
                matching: 1,
                data: ring::digest::digest(&ring::digest::SHA256, &ca_der)
                    .as_ref()
                    .to_vec(),
            }],
            names: names.into_iter().map(String::from).collect(),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        };
        let sn = ServerName::try_from("mx.example.test").unwrap();
        let now = UnixTime::now();
        let chain = [ca_der.clone()];
        assert!(
            v(vec!["mx.example.test"])
                .verify_server_cert(&leaf_der, &chain, &sn, &[], now)
                .is_ok()
        );
        // Second reference identifier (the recipient domain) only: no match on the name.
        assert!(
            v(vec!["example.test"])
                .verify_server_cert(&leaf_der, &chain, &sn, &[], now)
                .is_err()
        );
        // The anchor must be in the chain the server sends.
        assert!(
            v(vec!["mx.example.test"])
                .verify_server_cert(&leaf_der, &[], &sn, &[], now)
                .is_err()
        );
        // A certificate from another CA does not chain to the anchor.
        let stranger = CertificateDer::from(self_signed("mx.example.test").cert.der().to_vec());
        assert!(
            v(vec!["mx.example.test"])
                .verify_server_cert(&stranger, &chain, &sn, &[], now)
                .is_err()
        );
    }
}
