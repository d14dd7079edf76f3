//! What a HELO/EHLO argument claims (RFC 5321 §4.1.1.1: a fully qualified domain name or, when
//! the client has none, an address literal), and whether that claim is plausible.

use std::net::IpAddr;

use super::dnsbl::{MAX_NAME, is_domain};

/// Longest HELO argument looked at; longer ones are `Invalid`.
pub const MAX_HELO: usize = MAX_NAME + 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Helo {
    /// `[192.0.2.1]` or `[IPv6:2001:db8::1]` (RFC 5321 §4.1.3).
    Literal(IpAddr),
    /// A name with at least two labels, lower case, without the final dot.
    Fqdn(String),
    /// A single label (`localhost`, `EXCHANGE01`), a bare IP address or anything else.
    Invalid,
}

/// Reads a HELO argument.
pub fn parse(arg: &str) -> Helo {
    let arg = arg.trim();
    if arg.len() > MAX_HELO {
        return Helo::Invalid;
    }
    if let Some(inner) = arg.strip_prefix('[').and_then(|a| a.strip_suffix(']')) {
        let ip = match inner.get(..5) {
            Some(p) if p.eq_ignore_ascii_case("IPv6:") => inner[5..]
                .parse::<std::net::Ipv6Addr>()
                .ok()
                .map(IpAddr::V6),
            _ => inner.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4),
        };
        return ip.map_or(Helo::Invalid, Helo::Literal);
    }
    let name = arg.trim_end_matches('.').to_ascii_lowercase();
    if is_domain(&name) {
        Helo::Fqdn(name)
    } else {
        Helo::Invalid
    }
}

/// The canonical form of a parsed HELO argument (what a conforming client would send).
pub fn render(h: &Helo) -> Option<String> {
    match h {
        Helo::Literal(IpAddr::V4(v4)) => Some(format!("[{v4}]")),
        Helo::Literal(IpAddr::V6(v6)) => Some(format!("[IPv6:{v6}]")),
        Helo::Fqdn(n) => Some(n.clone()),
        Helo::Invalid => None,
    }
}

/// An IPv4-mapped IPv6 peer (`::ffff:192.0.2.1`, a dual-stack listener) is the IPv4 client.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// What is wrong with a HELO, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeloProblem {
    /// An address literal that is not the client's address.
    LiteralMismatch,
    /// Our own host name or one of our domains: no outside client is us.
    ClaimsOurs,
    /// Not a fully qualified domain name nor an address literal.
    NotFqdn,
}

impl HeloProblem {
    pub fn symbol(self) -> &'static str {
        match self {
            HeloProblem::LiteralMismatch => "HELO_LITERAL_MISMATCH",
            HeloProblem::ClaimsOurs => "HELO_CLAIMS_OURS",
            HeloProblem::NotFqdn => "HELO_NOT_FQDN",
        }
    }
}

/// Judges a HELO from `peer`; `ours` says whether a name is our host name or one of our domains.
pub fn judge(arg: &str, peer: IpAddr, ours: impl Fn(&str) -> bool) -> Option<HeloProblem> {
    match parse(arg) {
        Helo::Literal(ip) if canonical(ip) != canonical(peer) => Some(HeloProblem::LiteralMismatch),
        Helo::Literal(_) => None,
        Helo::Fqdn(name) if ours(&name) => Some(HeloProblem::ClaimsOurs),
        Helo::Fqdn(_) => None,
        Helo::Invalid => Some(HeloProblem::NotFqdn),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_literals() {
        assert_eq!(
            parse("Mail.Example.COM."),
            Helo::Fqdn("mail.example.com".into())
        );
        assert_eq!(
            parse("[192.0.2.1]"),
            Helo::Literal("192.0.2.1".parse().unwrap())
        );
        assert_eq!(
            parse("[IPv6:2001:db8::1]"),
            Helo::Literal("2001:db8::1".parse().unwrap())
        );
        assert_eq!(parse("[ipv6:::1]"), Helo::Literal("::1".parse().unwrap()));
        for bad in [
            "localhost",
            "192.0.2.1",
            "[192.0.2.256]",
            "[2001:db8::1]",
            "",
            "a b.com",
            "[]",
        ] {
            assert_eq!(parse(bad), Helo::Invalid, "{bad}");
        }
    }

    #[test]
    fn judges_claims() {
        let peer: IpAddr = "192.0.2.7".parse().unwrap();
        let ours = |n: &str| n == "mx.example.com" || n == "example.com";
        assert_eq!(judge("client.far.test", peer, ours), None);
        assert_eq!(judge("[192.0.2.7]", peer, ours), None);
        // A dual-stack listener sees the IPv4 client as ::ffff:192.0.2.7.
        assert_eq!(
            judge("[192.0.2.7]", "::ffff:192.0.2.7".parse().unwrap(), ours),
            None
        );
        assert_eq!(
            judge("[192.0.2.8]", peer, ours),
            Some(HeloProblem::LiteralMismatch)
        );
        assert_eq!(
            judge("MX.example.com", peer, ours),
            Some(HeloProblem::ClaimsOurs)
        );
        assert_eq!(
            judge("example.com", peer, ours),
            Some(HeloProblem::ClaimsOurs)
        );
        assert_eq!(judge("EXCHANGE01", peer, ours), Some(HeloProblem::NotFqdn));
    }
}
