//! SASL PLAIN (RFC 4616) as every protocol receives it: a base64 response (RFC 4422 §5: "=" is an
//! empty response) holding `[authzid] NUL authcid NUL passwd`. One decoder for SMTP, IMAP and
//! POP3, so they refuse the same malformed input the same way.

use base64::Engine;

/// Longest decoded PLAIN message we look at: identities and passwords are far shorter.
pub const MAX_PLAIN_BYTES: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainError {
    /// Not base64.
    Base64,
    /// Not three NUL-separated fields, or too long.
    Malformed,
    /// A field is not UTF-8 (RFC 4616 §2).
    NotUtf8,
    /// An authorisation identity other than the user: acting as someone else is not offered.
    Authz,
}

pub struct PlainCredentials {
    pub authcid: String,
    pub password: String,
}

impl std::fmt::Debug for PlainCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainCredentials")
            .field("authcid", &self.authcid)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Decodes a base64 SASL response line ("=" is the empty response).
pub fn decode_response(response: &str) -> Result<Vec<u8>, PlainError> {
    let r = response.trim();
    if r == "=" {
        return Ok(Vec::new());
    }
    base64::engine::general_purpose::STANDARD
        .decode(r.as_bytes())
        .map_err(|_| PlainError::Base64)
}

/// Parses a decoded PLAIN message.
pub fn parse_plain(raw: &[u8]) -> Result<PlainCredentials, PlainError> {
    if raw.len() > MAX_PLAIN_BYTES {
        return Err(PlainError::Malformed);
    }
    let parts: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
    let [authz, authc, pass] = parts.as_slice() else {
        return Err(PlainError::Malformed);
    };
    let (Ok(authz), Ok(authc), Ok(pass)) = (
        std::str::from_utf8(authz),
        std::str::from_utf8(authc),
        std::str::from_utf8(pass),
    ) else {
        return Err(PlainError::NotUtf8);
    };
    if authc.is_empty() {
        return Err(PlainError::Malformed);
    }
    if !authz.is_empty() && !authz.eq_ignore_ascii_case(authc) {
        return Err(PlainError::Authz);
    }
    Ok(PlainCredentials {
        authcid: authc.to_string(),
        password: pass.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_forms() {
        let c = parse_plain(b"\0alice@example.com\0pw").unwrap();
        assert_eq!(
            (c.authcid.as_str(), c.password.as_str()),
            ("alice@example.com", "pw")
        );
        assert!(parse_plain(b"ALICE@example.com\0alice@example.com\0pw").is_ok());
        assert_eq!(
            parse_plain(b"bob\0alice\0pw").err(),
            Some(PlainError::Authz)
        );
        assert_eq!(parse_plain(b"\0alice").err(), Some(PlainError::Malformed));
        assert_eq!(parse_plain(b"\0\0pw").err(), Some(PlainError::Malformed));
        assert_eq!(parse_plain(b"\0a\0b\0c").err(), Some(PlainError::Malformed));
        assert_eq!(parse_plain(b"\0\xff\0pw").err(), Some(PlainError::NotUtf8));
        assert_eq!(decode_response("=").unwrap(), b"");
        assert_eq!(decode_response("AGEAYg==").unwrap(), b"\0a\0b");
        assert_eq!(decode_response("!!").err(), Some(PlainError::Base64));
        assert!(format!("{c:?}").contains("redacted") && !format!("{c:?}").contains("pw\""));
    }
}
