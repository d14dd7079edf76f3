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
    /// TXT records of a name, each with its strings joined; empty when there are none.
    async fn txt(&self, name: &str) -> Result<Vec<String>, DnsError>;
}

/// Answers from maps, for tests.
#[derive(Debug, Default, Clone)]
pub struct StaticResolver {
    pub mx: HashMap<String, MxAnswer>,
    pub hosts: HashMap<String, Vec<IpAddr>>,
    pub txt: HashMap<String, Vec<String>>,
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
}

/// The real resolver: hickory with the system's configuration or the configured nameservers.
pub struct HickoryResolver {
    inner: hickory_resolver::TokioResolver,
}

impl HickoryResolver {
    /// `nameservers` empty: /etc/resolv.conf. Otherwise those servers, over UDP and TCP.
    pub fn new(nameservers: &[std::net::SocketAddr]) -> Result<HickoryResolver, DnsError> {
        use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
        use hickory_resolver::net::runtime::TokioRuntimeProvider;
        let builder = if nameservers.is_empty() {
            hickory_resolver::TokioResolver::builder_tokio()
                .map_err(|e| DnsError(format!("system resolver configuration: {e}")))?
        } else {
            let servers = nameservers
                .iter()
                .map(|sa| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = sa.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = sa.port();
                    NameServerConfig::new(sa.ip(), true, vec![udp, tcp])
                })
                .collect();
            hickory_resolver::TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, vec![], servers),
                TokioRuntimeProvider::default(),
            )
        };
        let inner = builder
            .build()
            .map_err(|e| DnsError(format!("resolver: {e}")))?;
        Ok(HickoryResolver { inner })
    }
}

/// `Ok(None)` for "no records" answers with their response code; `Err` for failures to retry.
fn no_records(
    e: &hickory_resolver::net::NetError,
) -> Option<hickory_resolver::proto::op::ResponseCode> {
    match e {
        hickory_resolver::net::NetError::Dns(hickory_resolver::net::DnsError::NoRecordsFound(
            nr,
        )) => Some(nr.response_code),
        _ => None,
    }
}

fn fqdn(name: &str) -> String {
    // Absolute names: no search-list expansion for mail routing.
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

#[async_trait]
impl Resolver for HickoryResolver {
    async fn mx(&self, domain: &str) -> Result<MxAnswer, DnsError> {
        use hickory_resolver::proto::op::ResponseCode;
        use hickory_resolver::proto::rr::RData;
        match self.inner.mx_lookup(fqdn(domain)).await {
            Ok(lookup) => {
                let mut hosts = Vec::new();
                for r in lookup.answers() {
                    if let RData::MX(mx) = &r.data {
                        hosts.push((mx.preference, mx.exchange.to_ascii()));
                    }
                }
                // RFC 7505 §3: a single MX with an empty exchange (".") means no mail.
                if hosts.len() == 1 && (hosts[0].1 == "." || hosts[0].1.is_empty()) {
                    return Ok(MxAnswer::NullMx);
                }
                hosts.retain(|(_, h)| h != "." && !h.is_empty());
                if hosts.is_empty() {
                    return Ok(MxAnswer::NoMx);
                }
                Ok(MxAnswer::Hosts(hosts))
            }
            Err(e) => match no_records(&e) {
                Some(ResponseCode::NXDomain) => Ok(MxAnswer::NoDomain),
                Some(ResponseCode::NoError) => Ok(MxAnswer::NoMx),
                _ => Err(DnsError(e.to_string())),
            },
        }
    }

    async fn ips(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        match self.inner.lookup_ip(fqdn(host)).await {
            Ok(l) => Ok(l.iter().collect()),
            Err(e) if no_records(&e).is_some() => Ok(vec![]),
            Err(e) => Err(DnsError(e.to_string())),
        }
    }

    async fn txt(&self, name: &str) -> Result<Vec<String>, DnsError> {
        self.records(name, RecordKind::Txt).await
    }
}

/// Record types `facteur dns --check` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    Txt,
    Srv,
    Cname,
}

impl HickoryResolver {
    /// Records of `name` in presentation form: TXT strings joined, SRV as "priority weight port
    /// target", CNAME as the target (names without the final dot). Empty when there are none.
    pub async fn records(&self, name: &str, kind: RecordKind) -> Result<Vec<String>, DnsError> {
        use hickory_resolver::proto::rr::{RData, RecordType};
        let rtype = match kind {
            RecordKind::Txt => RecordType::TXT,
            RecordKind::Srv => RecordType::SRV,
            RecordKind::Cname => RecordType::CNAME,
        };
        let lookup = match self.inner.lookup(fqdn(name), rtype).await {
            Ok(l) => l,
            Err(e) if no_records(&e).is_some() => return Ok(vec![]),
            Err(e) => return Err(DnsError(e.to_string())),
        };
        let mut out = Vec::new();
        for r in lookup.answers() {
            match &r.data {
                RData::TXT(t) if kind == RecordKind::Txt => out.push(
                    t.txt_data
                        .iter()
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect::<String>(),
                ),
                RData::SRV(s) if kind == RecordKind::Srv => out.push(format!(
                    "{} {} {} {}",
                    s.priority,
                    s.weight,
                    s.port,
                    s.target.to_ascii().trim_end_matches('.')
                )),
                RData::CNAME(c) if kind == RecordKind::Cname => {
                    out.push(c.0.to_ascii().trim_end_matches('.').to_string())
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// MX hosts of `domain` ("preference host"), for reports.
    pub async fn mx_hosts(&self, domain: &str) -> Result<Vec<(u16, String)>, DnsError> {
        match self.mx(domain).await? {
            MxAnswer::Hosts(h) => Ok(h
                .into_iter()
                .map(|(p, h)| (p, h.trim_end_matches('.').to_ascii_lowercase()))
                .collect()),
            MxAnswer::NullMx => Ok(vec![(0, ".".into())]),
            MxAnswer::NoMx | MxAnswer::NoDomain => Ok(vec![]),
        }
    }
}
