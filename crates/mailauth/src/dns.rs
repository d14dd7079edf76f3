//! The resolver every check uses, and the plain lookups outbound delivery needs (MX, addresses,
//! TXT). Answers that settle a question ("no such domain", "no MX") are values; failures worth a
//! retry (timeout, SERVFAIL) are `DnsError::Temporary`, so the queue can tell retry from bounce.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::NetError;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};
use mail_auth::MessageAuthenticator;
use rand::seq::SliceRandom;

/// Per-query timeout when none is configured (hickory's own default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per query and nameserver when none is configured.
pub const DEFAULT_ATTEMPTS: usize = 2;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// Timeout, SERVFAIL, unreachable nameserver: try again later.
    #[error("temporary DNS failure: {0}")]
    Temporary(String),
    /// The question itself is wrong (e.g. not a valid domain name): retrying will not help.
    #[error("DNS: {0}")]
    Permanent(String),
}

impl DnsError {
    pub fn is_temporary(&self) -> bool {
        matches!(self, DnsError::Temporary(_))
    }
}

/// The MX answer for a domain, as outbound delivery needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MxAnswer {
    /// (preference, host) sorted by preference, hosts of equal preference in random order
    /// (RFC 5321 §5.1). Host names are lower case, without the final dot.
    Hosts(Vec<(u16, String)>),
    /// RFC 7505: a single MX "." — the domain accepts no mail.
    NullMx,
    /// The domain exists but has no MX record: the caller falls back to its A/AAAA (RFC 5321
    /// §5.1 implicit MX).
    NoMx,
    /// NXDOMAIN.
    NoDomain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsOptions {
    pub timeout: Duration,
    pub attempts: usize,
    /// Only UDP to the configured nameservers (the in-process mock server speaks only UDP).
    pub udp_only: bool,
}

impl Default for DnsOptions {
    fn default() -> Self {
        DnsOptions {
            timeout: DEFAULT_TIMEOUT,
            attempts: DEFAULT_ATTEMPTS,
            udp_only: false,
        }
    }
}

/// SPF, DKIM, DMARC and ARC checks, plain lookups, all through one hickory resolver (which
/// caches answers for their TTL). Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    pub(crate) inner: MessageAuthenticator,
    /// The same nameservers, for the lookups whose DNSSEC status matters (DANE).
    pub(crate) secure: crate::dnssec::SecureResolver,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

impl Authenticator {
    /// `None`: the system configuration (/etc/resolv.conf). `Some(addrs)`: exactly those
    /// nameservers, over UDP and TCP (tests: a dnsmasq on 127.0.0.x:port).
    pub fn new(nameservers: Option<Vec<SocketAddr>>) -> Result<Authenticator, DnsError> {
        Self::with_options(nameservers, DnsOptions::default())
    }

    pub fn with_options(
        nameservers: Option<Vec<SocketAddr>>,
        options: DnsOptions,
    ) -> Result<Authenticator, DnsError> {
        let (config, mut opts) = match nameservers {
            None => hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| DnsError::Permanent(format!("system resolver configuration: {e}")))?,
            Some(addrs) => {
                let servers = addrs
                    .iter()
                    .map(|sa| {
                        let mut udp = ConnectionConfig::udp();
                        udp.port = sa.port();
                        let mut connections = vec![udp];
                        if !options.udp_only {
                            let mut tcp = ConnectionConfig::tcp();
                            tcp.port = sa.port();
                            connections.push(tcp);
                        }
                        NameServerConfig::new(sa.ip(), true, connections)
                    })
                    .collect();
                let mut opts = ResolverOpts::default();
                // Configured servers answer everything; /etc/hosts must not change the answers.
                opts.use_hosts_file = ResolveHosts::Never;
                (ResolverConfig::from_parts(None, vec![], servers), opts)
            }
        };
        opts.timeout = options.timeout;
        opts.attempts = options.attempts;
        let secure = crate::dnssec::SecureResolver {
            servers: config
                .name_servers()
                .iter()
                .map(|ns| {
                    let port = ns.connections.first().map_or(53, |c| c.port);
                    SocketAddr::new(ns.ip, port)
                })
                .collect(),
            timeout: options.timeout,
            attempts: options.attempts,
        };
        let inner = MessageAuthenticator::new(config, opts)
            .map_err(|e| DnsError::Permanent(format!("resolver: {e}")))?;
        Ok(Authenticator { inner, secure })
    }

    /// DANE's view of an MX host (RFC 7672 §2.2): its TLSA records at `_port._tcp.host` when
    /// they and the host's addresses are DNSSEC-secure according to the resolver's AD bit.
    pub async fn tlsa(&self, host: &str, port: u16) -> Result<crate::dnssec::TlsaLookup, DnsError> {
        self.secure.tlsa(host, port).await
    }

    /// MX hosts of `domain` (RFC 5321 §5.1, RFC 7505).
    pub async fn mx(&self, domain: &str) -> Result<MxAnswer, DnsError> {
        match self.inner.resolver().mx_lookup(fqdn(domain)).await {
            Ok(lookup) => {
                let mut hosts: Vec<(u16, String)> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) => Some((mx.preference, host_name(&mx.exchange.to_ascii()))),
                        _ => None,
                    })
                    .collect();
                // RFC 7505 §3: a single MX whose exchange is the root (".") means "no mail".
                if hosts.len() == 1 && hosts[0].1.is_empty() {
                    return Ok(MxAnswer::NullMx);
                }
                // RFC 7505 §4.3: a null MX mixed with real ones is ignored.
                hosts.retain(|(_, h)| !h.is_empty());
                if hosts.is_empty() {
                    return Ok(MxAnswer::NoMx);
                }
                hosts.shuffle(&mut rand::rng());
                hosts.sort_by_key(|(pref, _)| *pref); // stable: equals keep the random order
                Ok(MxAnswer::Hosts(hosts))
            }
            Err(e) => match no_records(&e) {
                Some(ResponseCode::NXDomain) => Ok(MxAnswer::NoDomain),
                Some(ResponseCode::NoError) => Ok(MxAnswer::NoMx),
                _ => Err(classify(&e)),
            },
        }
    }

    /// IPv6 then IPv4 addresses of `host`; empty when it has none (or does not exist). Fails only
    /// when neither family could be resolved and at least one lookup failed temporarily.
    pub async fn ips(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        let name = fqdn(host);
        let resolver = self.inner.resolver();
        let (v6, v4) = tokio::join!(
            resolver.ipv6_lookup(name.as_str()),
            resolver.ipv4_lookup(name.as_str())
        );
        let mut out = Vec::new();
        let mut failure = None;
        for result in [v6, v4] {
            match result {
                Ok(lookup) => out.extend(lookup.answers().iter().filter_map(|r| match &r.data {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    _ => None,
                })),
                Err(e) if no_records(&e).is_some_and(is_settled) => {}
                Err(e) => failure = Some(classify(&e)),
            }
        }
        match failure {
            Some(err) if out.is_empty() => Err(err),
            _ => Ok(out),
        }
    }

    /// TXT records of `name`, each record's strings joined (RFC 7208 §3.3); empty when none.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, DnsError> {
        match self.inner.resolver().txt_lookup(fqdn(name)).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TXT(txt) => {
                        let bytes: Vec<u8> = txt.txt_data.iter().flatten().copied().collect();
                        Some(String::from_utf8_lossy(&bytes).into_owned())
                    }
                    _ => None,
                })
                .collect()),
            Err(e) if no_records(&e).is_some_and(is_settled) => Ok(vec![]),
            Err(e) => Err(classify(&e)),
        }
    }
}

/// An A lookup's answer with the smallest TTL among its records (for callers that keep their
/// own cache, such as the DNS blocklist check). `addrs` is empty for NXDOMAIN or no data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V4Answer {
    pub addrs: Vec<std::net::Ipv4Addr>,
    /// Seconds; `None` for a negative answer (the caller picks its negative-cache time).
    pub ttl: Option<u32>,
}

impl Authenticator {
    /// IPv4 addresses of `name` with their TTL (DNS blocklists, RFC 5782 §2.1).
    pub async fn a_ttl(&self, name: &str) -> Result<V4Answer, DnsError> {
        match self
            .inner
            .resolver()
            .lookup(fqdn(name), RecordType::A)
            .await
        {
            Ok(lookup) => {
                let mut ttl: Option<u32> = None;
                let mut addrs = Vec::new();
                for r in lookup.answers() {
                    if let RData::A(a) = &r.data {
                        addrs.push(a.0);
                        ttl = Some(ttl.map_or(r.ttl, |t| t.min(r.ttl)));
                    }
                }
                Ok(V4Answer { addrs, ttl })
            }
            Err(e) if no_records(&e).is_some_and(is_settled) => Ok(V4Answer {
                addrs: vec![],
                ttl: None,
            }),
            Err(e) => Err(classify(&e)),
        }
    }

    /// Host names of the PTR records of `ip` (lower case, without the final dot); empty when
    /// none (RFC 1035 §3.5, RFC 3596 §2.5).
    pub async fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, DnsError> {
        let name = crate::mock::reverse_name(ip);
        self.records(&name, RecordType::PTR, |data| match data {
            RData::PTR(p) => Some(host_name(&p.0.to_ascii())),
            _ => None,
        })
        .await
    }
}

impl Authenticator {
    /// SRV records of `name` as "priority weight port target" (target without the final dot);
    /// empty when none. For `facteur dns --check`.
    pub async fn srv(&self, name: &str) -> Result<Vec<String>, DnsError> {
        self.records(name, RecordType::SRV, |data| match data {
            RData::SRV(s) => Some(format!(
                "{} {} {} {}",
                s.priority,
                s.weight,
                s.port,
                host_name(&s.target.to_ascii())
            )),
            _ => None,
        })
        .await
    }

    /// CNAME targets of `name` (lower case, without the final dot); empty when none.
    pub async fn cname(&self, name: &str) -> Result<Vec<String>, DnsError> {
        self.records(name, RecordType::CNAME, |data| match data {
            RData::CNAME(c) => Some(host_name(&c.0.to_ascii())),
            _ => None,
        })
        .await
    }

    async fn records(
        &self,
        name: &str,
        rtype: RecordType,
        present: impl Fn(&RData) -> Option<String>,
    ) -> Result<Vec<String>, DnsError> {
        match self.inner.resolver().lookup(fqdn(name), rtype).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|r| present(&r.data))
                .collect()),
            Err(e) if no_records(&e).is_some_and(is_settled) => Ok(vec![]),
            Err(e) => Err(classify(&e)),
        }
    }
}

/// Absolute name: no search-list expansion for mail.
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

fn host_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The response code of a "no records" answer.
fn no_records(e: &NetError) -> Option<ResponseCode> {
    match e {
        NetError::Dns(hickory_resolver::net::DnsError::NoRecordsFound(nr)) => {
            Some(nr.response_code)
        }
        _ => None,
    }
}

/// NXDOMAIN and NOERROR-without-data settle the question; other codes (SERVFAIL, REFUSED) do not.
fn is_settled(code: ResponseCode) -> bool {
    matches!(code, ResponseCode::NXDomain | ResponseCode::NoError)
}

fn classify(e: &NetError) -> DnsError {
    match e {
        NetError::Proto(_) => DnsError::Permanent(e.to_string()),
        _ => DnsError::Temporary(e.to_string()),
    }
}
