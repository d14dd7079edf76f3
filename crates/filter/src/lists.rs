//! Allow and block list entries: a sender address (`user@example.com`), a sender domain
//! (`@example.com` or `example.com`, which also matches its subdomains), or an IP address or
//! CIDR block (`192.0.2.7`, `2001:db8::/32`) of the connecting client. Parsed from what the
//! store holds (lowercase, given by an admin through the CLI) and matched against one message.

use std::net::IpAddr;

/// Longest pattern accepted (an address is at most 254 octets, RFC 5321 §4.5.3.1.3).
pub const MAX_PATTERN_LEN: usize = 320;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// A whole address, lowercase.
    Address(String),
    /// A domain and its subdomains, lowercase, without a leading `@` or `.`.
    Domain(String),
    /// An address block: the network address and prefix length.
    Net(IpAddr, u8),
}

/// Why a pattern is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("empty pattern")]
    Empty,
    #[error("longer than {MAX_PATTERN_LEN} characters")]
    TooLong,
    #[error("not an address, a domain, or an IP address or CIDR block: {0:?}")]
    Invalid(String),
}

fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || !c.is_ascii())
        })
}

impl Pattern {
    pub fn parse(s: &str) -> Result<Pattern, PatternError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(PatternError::Empty);
        }
        if s.len() > MAX_PATTERN_LEN {
            return Err(PatternError::TooLong);
        }
        let bad = || PatternError::Invalid(s.to_string());
        if let Ok(ip) = s.parse::<IpAddr>() {
            let len = if ip.is_ipv4() { 32 } else { 128 };
            return Ok(Pattern::Net(ip, len));
        }
        if let Some((net, len)) = s.split_once('/') {
            let ip: IpAddr = net.parse().map_err(|_| bad())?;
            let len: u8 = len.parse().map_err(|_| bad())?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            if len > max {
                return Err(bad());
            }
            return Ok(Pattern::Net(mask(ip, len), len));
        }
        let lower = s.to_lowercase();
        if let Some(d) = lower.strip_prefix('@') {
            let d = d.trim_start_matches('.');
            return valid_domain(d)
                .then(|| Pattern::Domain(d.to_string()))
                .ok_or_else(bad);
        }
        match lower.rsplit_once('@') {
            Some((local, d)) => {
                if local.is_empty() || local.contains(char::is_whitespace) || !valid_domain(d) {
                    return Err(bad());
                }
                Ok(Pattern::Address(lower))
            }
            None => {
                let d = lower.trim_start_matches('.');
                valid_domain(d)
                    .then(|| Pattern::Domain(d.to_string()))
                    .ok_or_else(bad)
            }
        }
    }

    /// The canonical text stored for this pattern.
    pub fn canonical(&self) -> String {
        match self {
            Pattern::Address(a) => a.clone(),
            Pattern::Domain(d) => format!("@{d}"),
            Pattern::Net(ip, len) if (ip.is_ipv4() && *len == 32) || *len == 128 => ip.to_string(),
            Pattern::Net(ip, len) => format!("{ip}/{len}"),
        }
    }

    /// Whether the pattern matches one of the sender addresses or the client's address.
    pub fn matches(&self, senders: &[String], peer: Option<IpAddr>) -> bool {
        match self {
            Pattern::Address(a) => senders.iter().any(|s| s.eq_ignore_ascii_case(a)),
            Pattern::Domain(d) => senders.iter().any(|s| {
                s.rsplit_once('@').is_some_and(|(_, sd)| {
                    let sd = sd.to_ascii_lowercase();
                    sd == *d
                        || (sd.len() > d.len()
                            && sd.ends_with(d.as_str())
                            && sd.as_bytes()[sd.len() - d.len() - 1] == b'.')
                })
            }),
            Pattern::Net(net, len) => peer.is_some_and(|p| {
                let p = match p {
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(p, IpAddr::V4),
                    v4 => v4,
                };
                p.is_ipv4() == net.is_ipv4() && mask(p, *len) == *net
            }),
        }
    }
}

/// `ip` with every bit past `len` cleared.
fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len.min(32)))
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len.min(128)))
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_match() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let p = Pattern::parse("Friend@Example.COM").unwrap();
        assert_eq!(p.canonical(), "friend@example.com");
        assert!(p.matches(&s(&["friend@example.com"]), None));
        assert!(!p.matches(&s(&["other@example.com"]), None));
        let d = Pattern::parse("@example.com").unwrap();
        assert_eq!(Pattern::parse("example.com").unwrap(), d);
        assert!(d.matches(&s(&["a@mail.example.com"]), None));
        assert!(d.matches(&s(&["a@EXAMPLE.com"]), None));
        assert!(!d.matches(&s(&["a@badexample.com"]), None));
        let n = Pattern::parse("192.0.2.77/24").unwrap();
        assert_eq!(n.canonical(), "192.0.2.0/24");
        assert!(n.matches(&[], Some("192.0.2.9".parse().unwrap())));
        assert!(n.matches(&[], Some("::ffff:192.0.2.9".parse().unwrap())));
        assert!(!n.matches(&[], Some("192.0.3.9".parse().unwrap())));
        let one = Pattern::parse("2001:db8::1").unwrap();
        assert_eq!(one.canonical(), "2001:db8::1");
        assert!(one.matches(&[], Some("2001:db8::1".parse().unwrap())));
        assert!(
            Pattern::parse("0.0.0.0/0")
                .unwrap()
                .matches(&[], Some("8.8.8.8".parse().unwrap()))
        );
        for bad in [
            "",
            "1.2.3.4/33",
            "a b@x.com",
            "@",
            "x..y",
            "@-a.com",
            "1.2.3.4/x",
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Pattern::parse(&"a".repeat(400)), Err(PatternError::TooLong));
    }
}
