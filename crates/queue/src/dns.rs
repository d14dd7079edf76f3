//! What delivery asks of DNS: MX hosts of a domain and addresses of a host. Behind a trait so tests
//! can answer from maps; the server uses hickory-resolver (through `mailauth`), whose nameservers
//! are configurable so tests point it at a DNS server on loopback.

use std::collections::HashMap;
use std::net::IpAddr;

use async_trait::async_trait;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MxAnswer {
    /// (preference, host) as published.
    Hosts(Vec<(u16, String)>),
    /// RFC 7505: the domain declares it takes no mail.
    NullMx,
    /// The domain exists but has no MX: RFC 5321 §5.1 implicit MX (its own A/AAAA).
    NoMx,
    /// NXDOMAIN.
    NoDomain,
}

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
}

/// Answers from maps, for tests.
#[derive(Debug, Default, Clone)]
pub struct StaticResolver {
    pub mx: HashMap<String, MxAnswer>,
    pub hosts: HashMap<String, Vec<IpAddr>>,
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
}
