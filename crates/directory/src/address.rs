//! Parsing and normalisation of mailbox addresses (`local@domain`) as the directory stores them.
//!
//! Accounts and aliases are keyed by a normalised address: the domain in lowercase ASCII (A-labels
//! for IDNs), the local part lowercased (Unicode lowercase for RFC 6531 UTF-8 local parts). RFC 5321
//! §2.4 lets a host treat local parts case-sensitively; like most servers we do not, so `Bob@x` and
//! `bob@x` are one mailbox.

use std::fmt;

/// RFC 5321 §4.5.3.1.1: maximum length of a local part, in octets.
pub const MAX_LOCAL_PART_LEN: usize = 64;
/// RFC 5321 §4.5.3.1.2: maximum length of a domain, in octets.
pub const MAX_DOMAIN_LEN: usize = 255;
/// RFC 1035 §2.3.4: maximum length of one DNS label, in octets.
pub const MAX_LABEL_LEN: usize = 63;
/// Separator of subaddresses (`user+tag@domain`).
pub const PLUS_SEPARATOR: char = '+';

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("missing '@'")]
    MissingAt,
    #[error("empty local part")]
    EmptyLocalPart,
    #[error("empty domain")]
    EmptyDomain,
    #[error("local part longer than {MAX_LOCAL_PART_LEN} octets")]
    LocalPartTooLong,
    #[error("domain longer than {MAX_DOMAIN_LEN} octets")]
    DomainTooLong,
    #[error("quoted local parts are not accepted")]
    QuotedLocalPart,
    #[error("invalid character {0:?} in local part")]
    InvalidLocalChar(char),
    #[error("misplaced '.' in local part")]
    InvalidDot,
    #[error("invalid domain")]
    InvalidDomain,
}

/// A validated, normalised address: lowercase local part and lowercase ASCII domain.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    local: String,
    domain: String,
}

impl Address {
    /// Parses and normalises `input` (see [`parse_address`]).
    pub fn parse(input: &str) -> Result<Address, AddressError> {
        let (local, domain) = parse_preserving_case(input)?;
        let local = local.to_lowercase();
        // Lowercasing can change the octet length of some Unicode characters.
        if local.len() > MAX_LOCAL_PART_LEN {
            return Err(AddressError::LocalPartTooLong);
        }
        Ok(Address { local, domain })
    }

    pub fn local_part(&self) -> &str {
        &self.local
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The local part without its `+tag`, and the tag if there was one.
    pub fn split_plus(&self) -> (&str, Option<&str>) {
        split_plus(&self.local)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

impl TryFrom<&str> for Address {
    type Error = AddressError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Address::parse(s)
    }
}

/// Parses `input` (optionally in `<...>`) into a normalised `(local_part, domain)`.
pub fn parse_address(input: &str) -> Result<(String, String), AddressError> {
    let a = Address::parse(input)?;
    Ok((a.local, a.domain))
}

/// Validates `input` like [`parse_address`] but keeps the local part as written: the local part of
/// a remote address belongs to the remote host (RFC 5321 §2.4), so forwarding targets keep their case.
/// The domain is lowercased.
pub fn parse_preserving_case(input: &str) -> Result<(String, String), AddressError> {
    let inner = input
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(input);
    if inner.starts_with('"') {
        return Err(AddressError::QuotedLocalPart);
    }
    let (local, domain) = inner.rsplit_once('@').ok_or(AddressError::MissingAt)?;
    validate_local_part(local)?;
    let domain = normalize_domain(domain)?;
    Ok((local.to_string(), domain))
}

/// Splits a local part at the first `+`: `user+tag` → (`user`, `Some("tag")`). A leading `+` is not
/// a separator (the base would be empty).
pub fn split_plus(local: &str) -> (&str, Option<&str>) {
    match local.split_once(PLUS_SEPARATOR) {
        Some((base, tag)) if !base.is_empty() => (base, Some(tag)),
        _ => (local, None),
    }
}

/// RFC 5322 §3.2.3 `atext` other than letters and digits.
fn is_atext_special(c: char) -> bool {
    matches!(
        c,
        '!' | '#'
            | '$'
            | '%'
            | '&'
            | '\''
            | '*'
            | '+'
            | '-'
            | '/'
            | '='
            | '?'
            | '^'
            | '_'
            | '`'
            | '{'
            | '|'
            | '}'
            | '~'
    )
}

/// A dot-atom local part (RFC 5322 §3.4.1), with RFC 6531 §3.3 UTF-8 characters allowed.
fn validate_local_part(local: &str) -> Result<(), AddressError> {
    if local.is_empty() {
        return Err(AddressError::EmptyLocalPart);
    }
    if local.len() > MAX_LOCAL_PART_LEN {
        return Err(AddressError::LocalPartTooLong);
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(AddressError::InvalidDot);
    }
    for c in local.chars() {
        let ok = c.is_ascii_alphanumeric()
            || c == '.'
            || is_atext_special(c)
            // RFC 6531 §3.3 UTF8-non-ascii; control and white-space characters stay refused.
            || (!c.is_ascii() && !c.is_control() && !c.is_whitespace());
        if !ok {
            return Err(AddressError::InvalidLocalChar(c));
        }
    }
    Ok(())
}

/// Validates a domain name and returns it in lowercase. Only ASCII LDH names are accepted: an IDN
/// must be given as A-labels (`xn--...`). Address literals (`[192.0.2.1]`) are not mail domains of
/// this server.
pub fn normalize_domain(domain: &str) -> Result<String, AddressError> {
    if domain.is_empty() {
        return Err(AddressError::EmptyDomain);
    }
    if domain.len() > MAX_DOMAIN_LEN {
        return Err(AddressError::DomainTooLong);
    }
    for label in domain.split('.') {
        let valid = !label.is_empty()
            && label.len() <= MAX_LABEL_LEN
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !valid {
            return Err(AddressError::InvalidDomain);
        }
    }
    Ok(domain.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case() {
        assert_eq!(
            parse_address("Bob@Example.COM").unwrap(),
            ("bob".into(), "example.com".into())
        );
        assert_eq!(
            parse_address("<Bob@Example.COM>").unwrap(),
            ("bob".into(), "example.com".into())
        );
    }

    #[test]
    fn utf8_local_part_lowercased() {
        assert_eq!(
            parse_address("ÉLODIE@exemple.fr").unwrap(),
            ("élodie".into(), "exemple.fr".into())
        );
        assert_eq!(parse_address("ΑΒΓ@x.gr").unwrap().0, "αβγ");
    }

    #[test]
    fn preserving_case_keeps_local_part() {
        assert_eq!(
            parse_preserving_case("Bob.Smith@Remote.ORG").unwrap(),
            ("Bob.Smith".into(), "remote.org".into())
        );
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(parse_address("bob"), Err(AddressError::MissingAt));
        assert_eq!(parse_address("@x.org"), Err(AddressError::EmptyLocalPart));
        assert_eq!(parse_address("bob@"), Err(AddressError::EmptyDomain));
        assert_eq!(
            parse_address("\"a b\"@x.org"),
            Err(AddressError::QuotedLocalPart)
        );
        assert_eq!(
            parse_address("<\"a\"@x.org>"),
            Err(AddressError::QuotedLocalPart)
        );
        assert_eq!(
            parse_address("a b@x.org"),
            Err(AddressError::InvalidLocalChar(' '))
        );
        assert_eq!(
            parse_address("a\tb@x.org"),
            Err(AddressError::InvalidLocalChar('\t'))
        );
        assert_eq!(
            parse_address("a\u{7}b@x.org"),
            Err(AddressError::InvalidLocalChar('\u{7}'))
        );
        assert_eq!(
            parse_address("a\u{85}b@x.org"),
            Err(AddressError::InvalidLocalChar('\u{85}'))
        );
        assert_eq!(
            parse_address("a@b@x.org"),
            Err(AddressError::InvalidLocalChar('@'))
        );
        assert_eq!(
            parse_address("a(b)@x.org"),
            Err(AddressError::InvalidLocalChar('('))
        );
        assert_eq!(parse_address(".a@x.org"), Err(AddressError::InvalidDot));
        assert_eq!(parse_address("a.@x.org"), Err(AddressError::InvalidDot));
        assert_eq!(parse_address("a..b@x.org"), Err(AddressError::InvalidDot));
        assert_eq!(parse_address("a@x..org"), Err(AddressError::InvalidDomain));
        assert_eq!(parse_address("a@-x.org"), Err(AddressError::InvalidDomain));
        assert_eq!(parse_address("a@x_y.org"), Err(AddressError::InvalidDomain));
        assert_eq!(parse_address("a@x.org."), Err(AddressError::InvalidDomain));
        assert_eq!(
            parse_address("a@[192.0.2.1]"),
            Err(AddressError::InvalidDomain)
        );
        assert_eq!(
            parse_address("a@exemple.fé"),
            Err(AddressError::InvalidDomain)
        );
        assert_eq!(parse_address("a@x.org "), Err(AddressError::InvalidDomain));
        assert_eq!(
            parse_address(" a@x.org"),
            Err(AddressError::InvalidLocalChar(' '))
        );
    }

    #[test]
    fn length_limits() {
        let local64 = "a".repeat(MAX_LOCAL_PART_LEN);
        assert!(parse_address(&format!("{local64}@x.org")).is_ok());
        assert_eq!(
            parse_address(&format!("{local64}a@x.org")),
            Err(AddressError::LocalPartTooLong)
        );
        // 32 two-octet characters are 64 octets.
        assert!(parse_address(&format!("{}@x.org", "é".repeat(32))).is_ok());
        assert_eq!(
            parse_address(&format!("{}@x.org", "é".repeat(33))),
            Err(AddressError::LocalPartTooLong)
        );

        let label = "a".repeat(MAX_LABEL_LEN);
        assert_eq!(
            parse_address(&format!("a@{label}a.org")),
            Err(AddressError::InvalidDomain)
        );
        let domain = [label.as_str(); 4].join("."); // 4*63 + 3 = 255
        assert_eq!(domain.len(), MAX_DOMAIN_LEN);
        assert!(parse_address(&format!("a@{domain}")).is_ok());
        assert_eq!(
            parse_address(&format!("a@{domain}a")),
            Err(AddressError::DomainTooLong)
        );
    }

    #[test]
    fn plus_addressing() {
        assert_eq!(split_plus("user+tag"), ("user", Some("tag")));
        assert_eq!(split_plus("user+a+b"), ("user", Some("a+b")));
        assert_eq!(split_plus("user+"), ("user", Some("")));
        assert_eq!(split_plus("user"), ("user", None));
        assert_eq!(split_plus("+tag"), ("+tag", None));
        let a = Address::parse("User+News@X.org").unwrap();
        assert_eq!(a.split_plus(), ("user", Some("news")));
        assert_eq!(a.to_string(), "user+news@x.org");
    }

    #[test]
    fn atext_specials_accepted() {
        assert!(parse_address("a!#$%&'*+-/=?^_`{|}~.b@x.org").is_ok());
        assert!(parse_address("localhost@localhost").is_ok());
    }
}
