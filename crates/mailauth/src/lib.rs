//! Mail authentication: SPF (RFC 7208), DKIM (RFC 6376, RFC 8463), DMARC (RFC 7489 as revised by
//! DMARCbis), ARC (RFC 8617) verification and DKIM signing, wrapping the `mail-auth` crate.
//!
//! Everything that needs DNS goes through one [`Authenticator`], which owns a hickory resolver. Its
//! nameservers are configurable, so tests point it at a DNS server on loopback: [`mock::MockDns`]
//! in unit tests, dnsmasq in the end-to-end tests. Nothing here talks to a public resolver unless
//! the system configuration says so.

pub mod dkim;
pub mod dns;
pub mod dnssec;
pub mod mock;
pub mod verify;

pub use dkim::{DkimAlgorithm, DkimError, DkimKey, SIGNED_HEADERS};
pub use dns::{Authenticator, DnsError, DnsOptions, MxAnswer, V4Answer};
pub use dnssec::{TlsaLookup, TlsaRecord};
pub use verify::{
    ArcOutcome, AuthOutcome, DkimOutcome, DmarcOutcome, DmarcPolicy, SpfIdentity, SpfOutcome,
    Verdict, VerifyInput,
};
