//! What delivery asks of DNS: MX hosts of a domain, addresses of a host, TXT records. Behind a
//! trait so tests can answer from maps; the server uses `mailauth::Authenticator`, whose
//! nameservers are configurable so tests point it at a DNS server on loopback.

use std::collections::HashMap;
use std::net::IpAddr;

use async_trait::async_trait;
use net::dane::Tlsa;

/// What an MX lookup settles (hosts, null MX, no MX, no domain): the `mailauth` type.
pub use mailauth::MxAnswer;

#[derive(Debug, Clone, thiserror::Error)]
#[error("DNS: {0}")]
pub struct DnsError(pub String);

#[async_trait]
pub trait Resolver: Send + Sync {
    /// A temporary failure (SERVFAIL, timeout) is an `Err`; answers that settle the question
    /// (including "no such domain") are `Ok`.
    async fn mx(&self, domain: &str) -> Result<MxAnswer, DnsError>;
    /// IPv6 and IPv4 addresses of a host; empty when it has none.
    async fn ips(&self, host: &str) -> Result<Vec<IpAddr>, DnsError>;
    /// TXT records of a name, each with its strings joined; empty when there are none.
    async fn txt(&self, name: &str) -> Result<Vec<String>, DnsError>;
    /// DANE (RFC 7672 §2.2): the TLSA records of `host` for `port` when DNSSEC vouches for them
    /// and for the host's addresses; `None` when DANE does not apply. An `Err` means the host's
    /// records are signed but could not be read: the host must not be used for now.
    async fn tlsa(&self, _host: &str, _port: u16) -> Result<Option<Vec<Tlsa>>, DnsError> {
        Ok(None)
    }
}

/// Answers from maps, for tests.
#[derive(Debug, Default, Clone)]
pub struct StaticResolver {
    pub mx: HashMap<String, MxAnswer>,
    pub hosts: HashMap<String, Vec<IpAddr>>,
    pub txt: HashMap<String, Vec<String>>,
    /// DNSSEC-secure TLSA records by "host:port" (anything else: DANE does not apply).
    pub tlsa: HashMap<String, Vec<Tlsa>>,
    /// Names whose lookups fail temporarily.
    pub failing: Vec<String>,
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[async_trait]
impl Resolver for StaticResolver {
    async fn mx(&self, domain: &str) -> Result<MxAnswer, DnsError> {
        let k = key(domain);
        if self.failing.contains(&k) {
            return Err(DnsError(format!("SERVFAIL for {k}")));
        }
        Ok(self
            .mx
            .get(&k)
            .cloned()
            .unwrap_or(if self.hosts.contains_key(&k) {
                MxAnswer::NoMx
            } else {
                MxAnswer::NoDomain
            }))
    }

    async fn ips(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        let k = key(host);
        if self.failing.contains(&k) {
            return Err(DnsError(format!("SERVFAIL for {k}")));
        }
        Ok(self.hosts.get(&k).cloned().unwrap_or_default())
    }

    async fn txt(&self, name: &str) -> Result<Vec<String>, DnsError> {
        let k = key(name);
        if self.failing.contains(&k) {
            return Err(DnsError(format!("SERVFAIL for {k}")));
        }
        Ok(self.txt.get(&k).cloned().unwrap_or_default())
    }

    async fn tlsa(&self, host: &str, port: u16) -> Result<Option<Vec<Tlsa>>, DnsError> {
        let k = key(host);
        if self.failing.contains(&format!("_{port}._tcp.{k}")) {
            return Err(DnsError(format!("SERVFAIL for TLSA of {k}")));
        }
        Ok(self.tlsa.get(&format!("{k}:{port}")).cloned())
    }
}

/// The server's resolver: `mailauth`'s (hickory with the system configuration or the `[dns]`
/// nameservers), shared with the SPF/DKIM/DMARC checks and its cache.
#[async_trait]
impl Resolver for mailauth::Authenticator {
    async fn mx(&self, domain: &str) -> Result<MxAnswer, DnsError> {
        mailauth::Authenticator::mx(self, domain)
            .await
            .map_err(|e| DnsError(e.to_string()))
    }

    async fn ips(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        mailauth::Authenticator::ips(self, host)
            .await
            .map_err(|e| DnsError(e.to_string()))
    }

    async fn txt(&self, name: &str) -> Result<Vec<String>, DnsError> {
        mailauth::Authenticator::txt(self, name)
            .await
            .map_err(|e| DnsError(e.to_string()))
    }

    async fn tlsa(&self, host: &str, port: u16) -> Result<Option<Vec<Tlsa>>, DnsError> {
        match mailauth::Authenticator::tlsa(self, host, port).await {
            Ok(mailauth::TlsaLookup::NotApplicable) => Ok(None),
            Ok(mailauth::TlsaLookup::Records(records)) => Ok(Some(
                records
                    .into_iter()
                    .map(|r| Tlsa {
                        usage: r.usage,
                        selector: r.selector,
                        matching: r.matching,
                        data: r.data,
                    })
                    .collect(),
            )),
            Err(e) => Err(DnsError(e.to_string())),
        }
    }
}
