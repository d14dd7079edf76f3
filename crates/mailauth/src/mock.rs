//! A DNS server on loopback that answers from maps, for deterministic tests (after mox's mock
//! resolver). It sits behind the real resolver, so tests exercise the same code paths as
//! production: hickory's answer handling and `mail-auth`'s record parsing.
//!
//! Names answer NXDOMAIN unless some record exists at them; a name with records but none of the
//! asked type answers NOERROR with no data. Names can be made to answer SERVFAIL or never answer.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, MX, PTR, TXT};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;

use crate::dns::{Authenticator, DnsError, DnsOptions};

/// How long the mock's resolver waits for an answer: short, since only "timeout" names are slow.
pub const MOCK_TIMEOUT: Duration = Duration::from_millis(300);
const TTL: u32 = 300;
/// TXT character-strings are at most 255 bytes (RFC 1035 §3.3).
const TXT_CHUNK: usize = 255;
const MAX_UDP: usize = 4096;

#[derive(Debug, Clone)]
enum Rec {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Mx(u16, String),
    Txt(Vec<Vec<u8>>),
    Ptr(String),
}

/// The records a [`MockDns`] serves. Names are case-insensitive, with or without the final dot.
#[derive(Debug, Clone, Default)]
pub struct Zone {
    records: HashMap<String, Vec<Rec>>,
    servfail: HashSet<String>,
    timeout: HashSet<String>,
    timeout_no_data: HashSet<String>,
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The in-addr.arpa / ip6.arpa name of an address (RFC 1035 §3.5, RFC 3596 §2.5).
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::new();
            for byte in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

impl Zone {
    pub fn new() -> Zone {
        Zone::default()
    }

    fn push(&mut self, name: &str, rec: Rec) -> &mut Zone {
        self.records.entry(key(name)).or_default().push(rec);
        self
    }

    pub fn a(&mut self, name: &str, ip: Ipv4Addr) -> &mut Zone {
        self.push(name, Rec::A(ip))
    }

    pub fn aaaa(&mut self, name: &str, ip: Ipv6Addr) -> &mut Zone {
        self.push(name, Rec::Aaaa(ip))
    }

    /// An A or AAAA record, whichever `ip` is.
    pub fn ip(&mut self, name: &str, ip: IpAddr) -> &mut Zone {
        match ip {
            IpAddr::V4(v4) => self.a(name, v4),
            IpAddr::V6(v6) => self.aaaa(name, v6),
        }
    }

    /// `host` "" or "." publishes a null MX (RFC 7505).
    pub fn mx(&mut self, name: &str, preference: u16, host: &str) -> &mut Zone {
        self.push(name, Rec::Mx(preference, key(host)))
    }

    /// One TXT record; split into 255-byte character-strings as a zone file would.
    pub fn txt(&mut self, name: &str, value: &str) -> &mut Zone {
        self.txt_bytes(name, value.as_bytes())
    }

    pub fn txt_bytes(&mut self, name: &str, value: &[u8]) -> &mut Zone {
        let chunks = if value.is_empty() {
            vec![vec![]]
        } else {
            value.chunks(TXT_CHUNK).map(<[u8]>::to_vec).collect()
        };
        self.push(name, Rec::Txt(chunks))
    }

    /// One TXT record made of these character-strings, kept as given.
    pub fn txt_strings(&mut self, name: &str, strings: &[&[u8]]) -> &mut Zone {
        self.push(name, Rec::Txt(strings.iter().map(|s| s.to_vec()).collect()))
    }

    /// A PTR record at the reverse name of `ip`.
    pub fn ptr(&mut self, ip: IpAddr, host: &str) -> &mut Zone {
        self.ptr_at(&reverse_name(ip), host)
    }

    /// A PTR record at an explicit name.
    pub fn ptr_at(&mut self, name: &str, host: &str) -> &mut Zone {
        self.push(name, Rec::Ptr(key(host)))
    }

    /// Every query for `name` answers SERVFAIL.
    pub fn servfail(&mut self, name: &str) -> &mut Zone {
        self.servfail.insert(key(name));
        self
    }

    /// Queries for `name` are never answered (the resolver times out).
    pub fn timeout(&mut self, name: &str) -> &mut Zone {
        self.timeout.insert(key(name));
        self
    }

    /// Queries for `name` of a type it has no records of are never answered.
    pub fn timeout_when_no_data(&mut self, name: &str) -> &mut Zone {
        self.timeout_no_data.insert(key(name));
        self
    }

    /// `None`: do not answer. Otherwise the response code and records of the answer.
    fn answer(&self, name: &str, qtype: RecordType) -> Option<(ResponseCode, Vec<RData>)> {
        if self.timeout.contains(name) {
            return None;
        }
        if self.servfail.contains(name) {
            return Some((ResponseCode::ServFail, vec![]));
        }
        let Some(records) = self.records.get(name) else {
            if self.timeout_no_data.contains(name) {
                return None;
            }
            return Some((ResponseCode::NXDomain, vec![]));
        };
        let data = records
            .iter()
            .filter_map(|rec| match (rec, qtype) {
                (Rec::A(ip), RecordType::A) => Some(RData::A(A(*ip))),
                (Rec::Aaaa(ip), RecordType::AAAA) => Some(RData::AAAA(AAAA(*ip))),
                (Rec::Mx(pref, host), RecordType::MX) => {
                    Some(RData::MX(MX::new(*pref, wire_name(host)?)))
                }
                (Rec::Txt(strings), RecordType::TXT) => Some(RData::TXT(TXT::from_bytes(
                    strings.iter().map(Vec::as_slice).collect(),
                ))),
                (Rec::Ptr(host), RecordType::PTR) => Some(RData::PTR(PTR(wire_name(host)?))),
                _ => None,
            })
            .collect::<Vec<_>>();
        if data.is_empty() && self.timeout_no_data.contains(name) {
            return None;
        }
        Some((ResponseCode::NoError, data))
    }
}

/// Labels taken as they are: test data has names no zone file would accept (spaces, '%', ':').
fn wire_name(name: &str) -> Option<Name> {
    if name.is_empty() {
        return Some(Name::root());
    }
    Name::from_labels(name.split('.').map(str::as_bytes)).ok()
}

/// The lookup key of a name on the wire: its raw labels, lower case, joined by dots.
fn query_key(name: &Name) -> String {
    let labels: Vec<String> = name
        .iter()
        .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
        .collect();
    labels.join(".")
}

/// A running mock DNS server on 127.0.0.1 (UDP). Stops when dropped.
pub struct MockDns {
    addr: SocketAddr,
    zone: Arc<RwLock<Zone>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockDns {
    pub async fn start(zone: Zone) -> std::io::Result<MockDns> {
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        let addr = socket.local_addr()?;
        let zone = Arc::new(RwLock::new(zone));
        let task = tokio::spawn(serve(socket, zone.clone()));
        Ok(MockDns { addr, zone, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Change the records while running. The resolver caches answers: use a new
    /// [`Authenticator`] to see the change for names already asked.
    pub fn update(&self, f: impl FnOnce(&mut Zone)) {
        let mut zone = self.zone.write().unwrap_or_else(|e| e.into_inner());
        f(&mut zone);
    }

    /// An authenticator that asks only this server, with a short timeout.
    pub fn authenticator(&self) -> Result<Authenticator, DnsError> {
        Authenticator::with_options(
            Some(vec![self.addr]),
            DnsOptions {
                timeout: MOCK_TIMEOUT,
                attempts: 1,
                udp_only: true,
            },
        )
    }
}

async fn serve(socket: UdpSocket, zone: Arc<RwLock<Zone>>) {
    let mut buf = vec![0u8; MAX_UDP];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let Some(reply) = respond(&buf[..len], &zone) else {
            continue;
        };
        let _ = socket.send_to(&reply, peer).await;
    }
}

fn respond(query: &[u8], zone: &RwLock<Zone>) -> Option<Vec<u8>> {
    let request = Message::from_vec(query).ok()?;
    if request.metadata.message_type != MessageType::Query {
        return None;
    }
    let question = request.queries.first()?.clone();
    let answer = {
        let zone = zone.read().unwrap_or_else(|e| e.into_inner());
        zone.answer(&query_key(question.name()), question.query_type())
    };
    let (code, data) = answer?;
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.response_code = code;
    response.metadata.authoritative = true;
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.add_query(question.clone());
    for rdata in data {
        response.add_answer(Record::from_rdata(question.name().clone(), TTL, rdata));
    }
    response.to_vec().ok()
}
