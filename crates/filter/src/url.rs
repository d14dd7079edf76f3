//! URLs: found in text (`http://`, `https://`, `www.`) and in HTML attributes, split into the
//! parts the classifier uses (RFC 3986 §3: scheme, authority, path, query). Not a validating
//! parser: spam writes URLs browsers accept, so this one accepts what a browser would roughly
//! follow, and flags the tricks (user info before the host, IP literals, percent-encoded hosts).

use std::net::{IpAddr, Ipv4Addr};

/// Longest URL considered, in bytes; the rest is cut.
pub const MAX_URL_BYTES: usize = 2048;
/// Longest host name used as a token, in bytes (DNS allows 253).
pub const MAX_HOST_BYTES: usize = 253;

/// Calls `found` with each URL of plain `text`, in order, until it returns false.
pub(crate) fn find_in_text(text: &str, mut found: impl FnMut(&str) -> bool) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        let start = matches!(rest[0], b'h' | b'H' | b'w' | b'W')
            && (starts_with_ci(rest, b"http://")
                || starts_with_ci(rest, b"https://")
                || starts_with_ci(rest, b"www."))
            // "www." inside a word ("awww.") is not a URL.
            && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric());
        if !start {
            i += 1;
            continue;
        }
        let mut end = i;
        while end < bytes.len() && end - i < MAX_URL_BYTES && !is_url_end(bytes[end]) {
            end += 1;
        }
        while end > i && matches!(bytes[end - 1], b'.' | b',' | b';' | b':' | b'!' | b'?') {
            end -= 1;
        }
        // Cut on a character boundary (the scan stops on ASCII, but MAX_URL_BYTES may not).
        while end > i && !text.is_char_boundary(end) {
            end -= 1;
        }
        if end > i && !found(&text[i..end]) {
            return;
        }
        i = end.max(i + 1);
    }
}

fn starts_with_ci(hay: &[u8], prefix: &[u8]) -> bool {
    hay.len() >= prefix.len() && hay[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn is_url_end(b: u8) -> bool {
    b.is_ascii_whitespace()
        || b.is_ascii_control()
        || matches!(
            b,
            b'<' | b'>' | b'"' | b'\'' | b'`' | b')' | b']' | b'}' | b'|'
        )
}

/// The parts of a URL the classifier looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Lowercase; "http" for a bare `www.` URL.
    pub scheme: String,
    /// Lowercase, without user info, port or a trailing dot; empty when there is none.
    pub host: String,
    pub ip: bool,
    /// The host is a bare number (`http://3232235777/`), which browsers read as an IPv4 address.
    pub numeric_host: bool,
    pub userinfo: bool,
    pub port: bool,
    /// Percent-encoded octets in the host: an obfuscation.
    pub encoded_host: bool,
    /// Non-ASCII or punycode (`xn--`) labels.
    pub idn: bool,
    /// Path segments (at most [`MAX_SEGMENTS`] counted).
    pub depth: usize,
    /// First path segment, lowercase, when short.
    pub first_segment: Option<String>,
    /// Extension of the last path segment, lowercase, when short and alphanumeric.
    pub extension: Option<String>,
    pub query: bool,
}

/// Path segments counted in [`Url::depth`].
pub const MAX_SEGMENTS: usize = 8;
/// Longest first path segment kept as a token.
const MAX_SEGMENT_BYTES: usize = 24;
/// Longest file extension kept as a token.
const MAX_EXTENSION_BYTES: usize = 5;

/// Splits an absolute `http`/`https`/`ftp` URL or a `www.` one; `None` for other schemes
/// (`mailto:` and the like) and for text without a host.
pub fn parse(s: &str) -> Option<Url> {
    let s = &s[..floor_boundary(s, MAX_URL_BYTES)];
    let (scheme, rest) = if starts_with_ci(s.as_bytes(), b"www.") {
        ("http".to_string(), s)
    } else {
        let colon = s.find(':')?;
        let scheme = s[..colon].to_ascii_lowercase();
        if !matches!(scheme.as_str(), "http" | "https" | "ftp") {
            return None;
        }
        // RFC 3986 §3.2: the authority follows "//"; browsers also accept backslashes.
        let rest = s[colon + 1..].trim_start_matches(['/', '\\']);
        (scheme, rest)
    };
    let auth_end = rest.find(['/', '\\', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..auth_end];
    let tail = &rest[auth_end..];
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(at) => (true, &authority[at + 1..]),
        None => (false, authority),
    };
    let (host, port) = split_port(hostport);
    let encoded_host = host.contains('%');
    let host = host.trim_end_matches('.').to_lowercase();
    if host.is_empty() || host.len() > MAX_HOST_BYTES {
        return None;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let ip = bare.parse::<IpAddr>().is_ok();
    let numeric_host = !ip && host.bytes().all(|b| b.is_ascii_digit() || b == b'x');
    let numeric_host = numeric_host && host.bytes().any(|b| b.is_ascii_digit());
    let numeric_host = numeric_host || (!ip && looks_like_dotted_number(&host));
    let idn = !host.is_ascii() || host.split('.').any(|l| l.starts_with("xn--"));

    let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
    let path = &tail[..path_end];
    let query = tail[path_end..].starts_with('?');
    let segments: Vec<&str> = path
        .split(['/', '\\'])
        .filter(|p| !p.is_empty())
        .take(MAX_SEGMENTS)
        .collect();
    let first_segment = segments
        .first()
        .filter(|s| s.len() <= MAX_SEGMENT_BYTES)
        .map(|s| s.to_lowercase());
    let extension = segments.last().and_then(|last| {
        let dot = last.rfind('.')?;
        let ext = &last[dot + 1..];
        (!ext.is_empty()
            && ext.len() <= MAX_EXTENSION_BYTES
            && ext.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| ext.to_ascii_lowercase())
    });
    Some(Url {
        scheme,
        host,
        ip,
        numeric_host,
        userinfo,
        port,
        encoded_host,
        idn,
        depth: segments.len(),
        first_segment,
        extension,
        query,
    })
}

/// `host:port`, with IPv6 literals in brackets (RFC 3986 §3.2.2).
fn split_port(hostport: &str) -> (&str, bool) {
    if hostport.starts_with('[') {
        return match hostport.find(']') {
            Some(close) => (&hostport[..=close], hostport.len() > close + 1),
            None => (hostport, false),
        };
    }
    match hostport.rfind(':') {
        Some(c) => (&hostport[..c], true),
        None => (hostport, false),
    }
}

/// Hosts such as `0x7f.1` or `0177.0.0.1` that are not dotted-quad text but that browsers
/// still read as an address.
fn looks_like_dotted_number(host: &str) -> bool {
    host.contains('.')
        && host.parse::<Ipv4Addr>().is_err()
        && host.split('.').all(|l| {
            !l.is_empty()
                && (l.bytes().all(|b| b.is_ascii_digit())
                    || (l.starts_with("0x") && l[2..].bytes().all(|b| b.is_ascii_hexdigit())))
        })
}

fn floor_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let mut cut = max;
    while cut > 0 && !s.is_char_boundary(cut) {
        cut -= 1;
    }
    cut
}

/// Registrable domain of a host (the public suffix plus one label), or the host itself when the
/// list has no answer (an unknown suffix, an IP literal).
pub fn registrable(host: &str) -> &str {
    psl::domain_str(host).unwrap_or(host)
}

/// Public suffix of a host, when the list knows it.
pub fn suffix(host: &str) -> Option<&str> {
    psl::suffix_str(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<String> {
        let mut v = Vec::new();
        find_in_text(text, |u| {
            v.push(u.to_string());
            true
        });
        v
    }

    #[test]
    fn finds_urls_in_text() {
        assert_eq!(
            found("see http://a.example.com/x?y=1, and www.b.org. Also HTTPS://C.net!"),
            ["http://a.example.com/x?y=1", "www.b.org", "HTTPS://C.net"]
        );
        assert_eq!(found("awww.no (http://x.org/a)"), ["http://x.org/a"]);
    }

    #[test]
    fn parses_parts() {
        let u = parse("http://user@WWW.Shop.Example.co.uk:8080/cgi-bin/Run.EXE?x=1").expect("url");
        assert_eq!(u.scheme, "http");
        assert_eq!(u.host, "www.shop.example.co.uk");
        assert!(u.userinfo && u.port && u.query && !u.ip);
        assert_eq!(u.depth, 2);
        assert_eq!(u.first_segment.as_deref(), Some("cgi-bin"));
        assert_eq!(u.extension.as_deref(), Some("exe"));
        assert_eq!(registrable(&u.host), "example.co.uk");
        assert_eq!(suffix(&u.host), Some("co.uk"));
    }

    #[test]
    fn address_hosts() {
        assert!(parse("http://192.168.1.1/").expect("url").ip);
        assert!(parse("http://[::1]:80/").expect("url").ip);
        assert!(parse("http://3232235777/").expect("url").numeric_host);
        assert!(parse("http://0x7f.1/").expect("url").numeric_host);
        assert!(!parse("http://example.com/").expect("url").numeric_host);
        assert!(
            parse("http://%77%77.example.com/")
                .expect("url")
                .encoded_host
        );
        assert!(parse("http://xn--80ak6aa92e.com/").expect("url").idn);
    }

    #[test]
    fn other_schemes_and_junk() {
        assert!(parse("mailto:a@b.c").is_none());
        assert!(parse("http://").is_none());
        assert!(parse("no colon").is_none());
        let long = format!("http://{}.com/", "a".repeat(300));
        assert!(parse(&long).is_none());
    }
}
