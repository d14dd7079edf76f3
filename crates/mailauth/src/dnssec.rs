//! Lookups whose DNSSEC status matters (DANE, RFC 7672): TLSA records and the addresses of an MX
//! host, asked with the DO and AD bits set, and trusted as "secure" only when the resolver sets
//! the AD bit in its answer (RFC 6840 §5.7).
//!
//! Facteur does not validate signatures itself: like Postfix, Exim and mox it relies on a
//! validating resolver (unbound, or one the operator trusts on a network path they trust, such
//! as loopback). A resolver that does not validate never sets AD, so every answer is "insecure"
//! and DANE simply does not apply: a non-validating resolver can never make mail wait.
//!
//! hickory's resolver hides the header of its answers and sends neither DO nor AD without its own
//! validator, so these few queries are built with hickory's message codec and sent here: UDP,
//! then TCP when the answer is truncated.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::proto::op::{Edns, Message, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::dns::DnsError;

/// Largest answer read over UDP (the EDNS buffer size of DNS flag day 2020) or TCP.
const UDP_PAYLOAD: u16 = 1232;
const MAX_TCP_ANSWER: usize = 65535;

/// An answer and whether the resolver vouched for it.
#[derive(Debug, Clone)]
pub struct SecureAnswer {
    pub code: ResponseCode,
    /// The AD bit: every RRset in the answer and authority sections was validated.
    pub authentic: bool,
    pub records: Vec<Record>,
}

/// One TLSA record (RFC 6698 §2.1) as numbers and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsaRecord {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
}

/// What DANE finds for one MX host (RFC 7672 §2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsaLookup {
    /// The host's addresses or its TLSA RRset are not DNSSEC-secure, or there is no TLSA
    /// record: DANE does not apply.
    NotApplicable,
    /// A secure, non-empty TLSA RRset.
    Records(Vec<TlsaRecord>),
}

/// Queries with DO+AD to a list of nameservers (the first that answers wins).
#[derive(Debug, Clone)]
pub struct SecureResolver {
    pub servers: Vec<SocketAddr>,
    pub timeout: Duration,
    pub attempts: usize,
}

impl SecureResolver {
    /// One question; an answer is any response (NXDOMAIN included). Timeouts and unreachable
    /// servers are tried `attempts` times per server before a temporary error.
    pub async fn query(&self, name: &str, rtype: RecordType) -> Result<SecureAnswer, DnsError> {
        let name = Name::from_ascii(fqdn(name))
            .map_err(|e| DnsError::Permanent(format!("{name}: {e}")))?;
        let mut last = DnsError::Temporary("no nameserver configured".into());
        for _ in 0..self.attempts.max(1) {
            for server in &self.servers {
                match tokio::time::timeout(self.timeout, ask(*server, &name, rtype)).await {
                    Ok(Ok(answer)) => return Ok(answer),
                    Ok(Err(e)) => last = e,
                    Err(_) => {
                        last = DnsError::Temporary(format!("{server}: timeout asking {name}"))
                    }
                }
            }
        }
        Err(last)
    }

    /// RFC 7672 §2.2.2: DANE applies to `host` only when its address records and its TLSA
    /// records at `_port._tcp.host` are secure. A lookup that fails once the addresses are known
    /// to be secure is a temporary error (the host must not be used without its TLSA records).
    pub async fn tlsa(&self, host: &str, port: u16) -> Result<TlsaLookup, DnsError> {
        let mut secure_addresses = false;
        for rtype in [RecordType::A, RecordType::AAAA] {
            let a = self.query(host, rtype).await?;
            let has = a.records.iter().any(|r| r.record_type() == rtype);
            if has {
                if !a.authentic {
                    return Ok(TlsaLookup::NotApplicable);
                }
                secure_addresses = true;
            }
        }
        if !secure_addresses {
            return Ok(TlsaLookup::NotApplicable);
        }
        let answer = self
            .query(&format!("_{port}._tcp.{}", fqdn(host)), RecordType::TLSA)
            .await?;
        let records: Vec<TlsaRecord> = answer
            .records
            .iter()
            .filter_map(|r| match &r.data {
                RData::TLSA(t) => Some(TlsaRecord {
                    usage: u8::from(t.cert_usage),
                    selector: u8::from(t.selector),
                    matching: u8::from(t.matching),
                    data: t.cert_data.clone(),
                }),
                _ => None,
            })
            .collect();
        if !answer.authentic || records.is_empty() {
            return Ok(TlsaLookup::NotApplicable);
        }
        Ok(TlsaLookup::Records(records))
    }
}

async fn ask(server: SocketAddr, name: &Name, rtype: RecordType) -> Result<SecureAnswer, DnsError> {
    let mut query = Message::query();
    query.add_query(Query::query(name.clone(), rtype));
    query.metadata.recursion_desired = true;
    // RFC 6840 §5.7: AD in a query asks for AD in the answer; DO asks for DNSSEC records.
    query.metadata.authentic_data = true;
    let mut edns = Edns::new();
    edns.set_max_payload(UDP_PAYLOAD).set_dnssec_ok(true);
    query.set_edns(edns);
    let wire = query
        .to_vec()
        .map_err(|e| DnsError::Permanent(format!("encoding a query for {name}: {e}")))?;
    let temp = |e: std::io::Error| DnsError::Temporary(format!("{server}: {e}"));

    let socket = UdpSocket::bind(if server.is_ipv6() {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    })
    .await
    .map_err(temp)?;
    socket.connect(server).await.map_err(temp)?;
    socket.send(&wire).await.map_err(temp)?;
    let mut buf = vec![0u8; usize::from(UDP_PAYLOAD).max(512)];
    let response = loop {
        let n = socket.recv(&mut buf).await.map_err(temp)?;
        // Anything that is not the answer to this query (wrong id or question) is ignored.
        match Message::from_vec(&buf[..n]) {
            Ok(m) if m.metadata.id == query.metadata.id && m.queries == query.queries => break m,
            _ => continue,
        }
    };
    let response = if response.metadata.truncation {
        let mut tcp = TcpStream::connect(server).await.map_err(temp)?;
        let mut framed = (wire.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&wire);
        tcp.write_all(&framed).await.map_err(temp)?;
        let len = usize::from(tcp.read_u16().await.map_err(temp)?);
        let mut body = vec![0u8; len.min(MAX_TCP_ANSWER)];
        tcp.read_exact(&mut body).await.map_err(temp)?;
        let m = Message::from_vec(&body)
            .map_err(|e| DnsError::Temporary(format!("{server}: bad answer: {e}")))?;
        if m.metadata.id != query.metadata.id || m.queries != query.queries {
            return Err(DnsError::Temporary(format!(
                "{server}: answer does not match the question"
            )));
        }
        m
    } else {
        response
    };
    let code = response.metadata.response_code;
    if !matches!(code, ResponseCode::NoError | ResponseCode::NXDomain) {
        // SERVFAIL is also what a validating resolver answers for bogus data.
        return Err(DnsError::Temporary(format!(
            "{server}: {code} for {name} {rtype}"
        )));
    }
    Ok(SecureAnswer {
        code,
        authentic: response.metadata.authentic_data,
        records: response.answers,
    })
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}
