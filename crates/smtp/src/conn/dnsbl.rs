//! DNS blocklists and allowlists (RFC 5782): the query names for an IP address (IPv4 octets or
//! IPv6 nibbles, reversed) or a domain under a zone, what an answer means, and a cache of
//! answers bounded in size and in time.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest domain name (RFC 1035 §2.3.4), without the final dot.
pub const MAX_NAME: usize = 253;
/// Longest label (RFC 1035 §2.3.4).
pub const MAX_LABEL: usize = 63;

/// What a zone lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneKind {
    /// Client IP addresses (RFC 5782 §2.1, §2.4).
    Ip,
    /// Domains (RFC 5782 §2.2): the sender's domain and the HELO name.
    Domain,
}

/// What a listing does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneAction {
    /// Add the zone's score.
    Score,
    /// Refuse the transaction (554 at MAIL) unless an allowlist lists the client.
    Reject,
    /// An allowlist (DNSWL): add the zone's score (usually negative), skip greylisting and the
    /// blocklists' reject actions.
    Allow,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    /// Lower case, without the final dot.
    pub zone: String,
    pub kind: ZoneKind,
    pub action: ZoneAction,
    pub score: f64,
    /// Answers that count as a listing; empty: any 127.0.0.0/8 answer (RFC 5782 §2.3) except
    /// the 127.255.255.0/24 error codes.
    pub codes: Vec<Ipv4Addr>,
}

/// The name to query for `ip` in `zone` (RFC 5782 §2.1: IPv4 octets reversed; §2.4: the 32
/// nibbles of an IPv6 address reversed).
pub fn ip_query(ip: IpAddr, zone: &str) -> String {
    let mut s = String::with_capacity(72 + zone.len());
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            for b in o.iter().rev() {
                s.push_str(&b.to_string());
                s.push('.');
            }
        }
        IpAddr::V6(v6) => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            for b in v6.octets().iter().rev() {
                s.push(HEX[usize::from(b & 0xf)] as char);
                s.push('.');
                s.push(HEX[usize::from(b >> 4)] as char);
                s.push('.');
            }
        }
    }
    s.push_str(zone);
    s
}

/// The address a query name of [`ip_query`] stands for: the inverse, for tests and fuzzing.
pub fn ip_from_query(name: &str, zone: &str) -> Option<IpAddr> {
    let prefix = name.strip_suffix(zone)?.strip_suffix('.')?;
    let labels: Vec<&str> = prefix.split('.').collect();
    match labels.len() {
        4 => {
            let mut o = [0u8; 4];
            for (i, l) in labels.iter().rev().enumerate() {
                // Canonical decimal only (no leading zeros), as ip_query writes them.
                if l.is_empty() || (l.len() > 1 && l.starts_with('0')) {
                    return None;
                }
                o[i] = l.parse().ok()?;
            }
            Some(IpAddr::V4(Ipv4Addr::from(o)))
        }
        32 => {
            let mut v: u128 = 0;
            for l in labels.iter().rev() {
                let [c] = l.as_bytes() else { return None };
                let d = match c {
                    b'0'..=b'9' => c - b'0',
                    b'a'..=b'f' => c - b'a' + 10,
                    _ => return None,
                };
                v = (v << 4) | u128::from(d);
            }
            Some(IpAddr::V6(v.into()))
        }
        _ => None,
    }
}

/// The name to query for `domain` in `zone` (RFC 5782 §2.2), or `None` when the domain is not a
/// plausible host name or the result would be too long to be a DNS name.
pub fn domain_query(domain: &str, zone: &str) -> Option<String> {
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    if !is_domain(&d) {
        return None;
    }
    let name = format!("{d}.{zone}");
    (name.len() <= MAX_NAME).then_some(name)
}

/// At least two labels of letters, digits and hyphens (and underscores, seen in the wild), no
/// empty or over-long label, not all-numeric at the top (an IP address is not a domain).
pub fn is_domain(d: &str) -> bool {
    if d.is_empty() || d.len() > MAX_NAME || !d.contains('.') {
        return false;
    }
    let ok_labels = d.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= MAX_LABEL
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    let top_alpha = d
        .rsplit('.')
        .next()
        .is_some_and(|t| t.bytes().any(|b| b.is_ascii_alphabetic()));
    ok_labels && top_alpha
}

/// What one zone said about one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// Listed, with the answers that counted.
    Listed(Vec<Ipv4Addr>),
    NotListed,
    /// The zone answered with an error code (127.255.255.x: "query refused", "typo", "rate
    /// limited", as Spamhaus uses them) or something outside 127.0.0.0/8: no verdict, logged.
    Refused(Vec<Ipv4Addr>),
}

/// RFC 5782 §2.3: listings are 127.0.0.0/8; 127.255.255.0/24 is used by blocklists for errors.
pub fn interpret(zone: &Zone, answers: &[Ipv4Addr]) -> Listing {
    if answers.is_empty() {
        return Listing::NotListed;
    }
    let bad: Vec<Ipv4Addr> = answers
        .iter()
        .copied()
        .filter(|a| a.octets()[0] != 127 || a.octets()[..3] == [127, 255, 255])
        .collect();
    if !bad.is_empty() {
        return Listing::Refused(bad);
    }
    let counted: Vec<Ipv4Addr> = answers
        .iter()
        .copied()
        .filter(|a| zone.codes.is_empty() || zone.codes.contains(a))
        .collect();
    if counted.is_empty() {
        Listing::NotListed
    } else {
        Listing::Listed(counted)
    }
}

/// Answers (A records, empty for NXDOMAIN) by query name, each kept for its TTL bounded by a
/// maximum, at most `capacity` of them.
pub struct Cache {
    inner: Mutex<HashMap<String, (Vec<Ipv4Addr>, Instant)>>,
    capacity: usize,
    max_ttl: Duration,
    negative_ttl: Duration,
}

impl Cache {
    pub fn new(capacity: usize, max_ttl: Duration, negative_ttl: Duration) -> Cache {
        Cache {
            inner: Mutex::new(HashMap::new()),
            capacity,
            max_ttl,
            negative_ttl,
        }
    }

    pub fn get(&self, name: &str, now: Instant) -> Option<Vec<Ipv4Addr>> {
        let map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(name) {
            Some((a, until)) if *until > now => Some(a.clone()),
            _ => None,
        }
    }

    /// Keeps an answer; `ttl` is the answer's (None for a negative one).
    pub fn put(&self, name: &str, answers: Vec<Ipv4Addr>, ttl: Option<u32>, now: Instant) {
        if self.capacity == 0 {
            return;
        }
        let keep = match ttl {
            Some(t) => Duration::from_secs(u64::from(t)).min(self.max_ttl),
            None => self.negative_ttl.min(self.max_ttl),
        };
        if keep.is_zero() {
            return;
        }
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.capacity && !map.contains_key(name) {
            map.retain(|_, (_, until)| *until > now);
            if map.len() >= self.capacity {
                // Still full of live answers: drop the one that would expire first.
                let soonest = map
                    .iter()
                    .min_by_key(|(_, (_, until))| *until)
                    .map(|(k, _)| k.clone());
                if let Some(k) = soonest {
                    map.remove(&k);
                }
            }
        }
        map.insert(name.to_string(), (answers, now + keep));
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(codes: &[[u8; 4]]) -> Zone {
        Zone {
            zone: "bl.test".into(),
            kind: ZoneKind::Ip,
            action: ZoneAction::Score,
            score: 1.0,
            codes: codes.iter().map(|c| Ipv4Addr::from(*c)).collect(),
        }
    }

    #[test]
    fn query_names_follow_rfc5782() {
        // RFC 5782 §2.1 and §2.4 examples.
        assert_eq!(
            ip_query("192.168.42.23".parse().unwrap(), "dnsbl.example.net"),
            "23.42.168.192.dnsbl.example.net"
        );
        assert_eq!(
            ip_query(
                "2001:db8:1:2:3:4:567:89ab".parse().unwrap(),
                "ugly.example.com"
            ),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example.com"
        );
        for ip in ["127.0.0.1", "::1", "2001:db8::ff00:42:8329", "0.0.0.0"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_from_query(&ip_query(ip, "z.test"), "z.test"), Some(ip));
        }
        assert_eq!(
            domain_query("Example.COM.", "dbl.test").as_deref(),
            Some("example.com.dbl.test")
        );
        assert_eq!(domain_query("localhost", "dbl.test"), None);
        assert_eq!(domain_query("1.2.3.4", "dbl.test"), None);
        assert_eq!(domain_query("a..b", "dbl.test"), None);
        assert_eq!(domain_query(&format!("{}.com", "a".repeat(250)), "z"), None);
    }

    #[test]
    fn answers_are_interpreted() {
        let any = zone(&[]);
        assert_eq!(interpret(&any, &[]), Listing::NotListed);
        assert_eq!(
            interpret(&any, &[Ipv4Addr::new(127, 0, 0, 2)]),
            Listing::Listed(vec![Ipv4Addr::new(127, 0, 0, 2)])
        );
        // Spamhaus-style "query refused" and answers outside 127/8 are no verdict.
        assert!(matches!(
            interpret(&any, &[Ipv4Addr::new(127, 255, 255, 254)]),
            Listing::Refused(_)
        ));
        assert!(matches!(
            interpret(&any, &[Ipv4Addr::new(192, 0, 2, 1)]),
            Listing::Refused(_)
        ));
        let only4 = zone(&[[127, 0, 0, 4]]);
        assert_eq!(
            interpret(&only4, &[Ipv4Addr::new(127, 0, 0, 2)]),
            Listing::NotListed
        );
        assert_eq!(
            interpret(
                &only4,
                &[Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 4)]
            ),
            Listing::Listed(vec![Ipv4Addr::new(127, 0, 0, 4)])
        );
    }

    #[test]
    fn cache_is_bounded_in_size_and_time() {
        let c = Cache::new(2, Duration::from_secs(60), Duration::from_secs(10));
        let t0 = Instant::now();
        let a = vec![Ipv4Addr::new(127, 0, 0, 2)];
        c.put("a", a.clone(), Some(3600), t0);
        c.put("b", vec![], None, t0);
        assert_eq!(c.get("a", t0), Some(a.clone()));
        assert_eq!(c.get("b", t0), Some(vec![]));
        // Negative answers expire after negative_ttl, positive ones after max_ttl at most.
        assert_eq!(c.get("b", t0 + Duration::from_secs(11)), None);
        assert_eq!(c.get("a", t0 + Duration::from_secs(59)), Some(a.clone()));
        assert_eq!(c.get("a", t0 + Duration::from_secs(61)), None);
        // Full: the entry expiring first makes room.
        c.put("c", a.clone(), Some(30), t0);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("b", t0), None);
        assert!(c.get("a", t0).is_some() && c.get("c", t0).is_some());
    }
}
