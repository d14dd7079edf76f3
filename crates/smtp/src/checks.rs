//! Hooks of the delivery pipeline for mail authentication, implemented outside this crate (by the
//! binary, over the `mailauth` crate and the store's keys) so the SMTP crate stays testable:
//! inbound verification (SPF, DKIM, DMARC, ARC) on the MX path, DKIM signing on submission and of
//! the DSNs we generate.

use async_trait::async_trait;

use crate::backend::Envelope;

/// What to do with a message after its authentication was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    Accept,
    /// DMARC `p=quarantine`: deliver to the recipient's Junk folder.
    Quarantine,
    /// DMARC `p=reject`: refuse at the end of data with this text.
    Reject(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundVerdict {
    /// `Authentication-Results: ...\r\n` (RFC 8601) to add on top of the message.
    pub header: String,
    pub disposition: Disposition,
}

#[async_trait]
pub trait Verifier: Send + Sync {
    /// Checks a message received on the MX port. Temporary DNS failures must not reject.
    async fn verify(&self, envelope: &Envelope, message: &[u8]) -> InboundVerdict;
}

#[async_trait]
pub trait Signer: Send + Sync {
    /// The `DKIM-Signature: ...\r\n` header for an outgoing message, when one of our keys applies
    /// to its From domain (or, failing that, to `fallback_domain`).
    async fn sign(&self, message: &[u8], fallback_domain: &str) -> Option<String>;
}

/// Removes `Authentication-Results` fields that claim to come from us (RFC 8601 §5: a border MTA
/// must delete such fields from incoming mail, or they could forge our verdicts). `authserv_id` is
/// compared case-insensitively. Only the header section is touched.
pub fn strip_forged_results(message: &[u8], authserv_id: &str) -> Vec<u8> {
    let end = message::header_end(message);
    let (head, body) = message.split_at(end);
    let mut out = Vec::with_capacity(message.len());
    let mut i = 0;
    while i < head.len() {
        // One field: this line plus its continuation lines (starting with space or tab).
        let mut j = i;
        loop {
            match head[j..].iter().position(|&b| b == b'\n') {
                Some(nl) => j += nl + 1,
                None => {
                    j = head.len();
                    break;
                }
            }
            if j >= head.len() || !matches!(head[j], b' ' | b'\t') {
                break;
            }
        }
        let field = &head[i..j];
        if !is_ours(field, authserv_id) {
            out.extend_from_slice(field);
        }
        i = j;
    }
    out.extend_from_slice(body);
    out
}

fn is_ours(field: &[u8], authserv_id: &str) -> bool {
    let Some(colon) = field.iter().position(|&b| b == b':') else {
        return false;
    };
    if !field[..colon]
        .trim_ascii()
        .eq_ignore_ascii_case(b"Authentication-Results")
    {
        return false;
    }
    let value = String::from_utf8_lossy(&field[colon + 1..]);
    let id = value
        .trim_start()
        .split(|c: char| c == ';' || c.is_whitespace())
        .next()
        .unwrap_or_default();
    id.eq_ignore_ascii_case(authserv_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_only_our_forged_results() {
        let msg = b"Authentication-Results: mx.example.com;\r\n\tdkim=pass header.d=bank.test\r\n\
Authentication-Results: other.test; spf=fail\r\nSubject: hi\r\n\r\nAuthentication-Results: mx.example.com; body stays\r\n";
        let out = strip_forged_results(msg, "MX.example.com");
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("dkim=pass header.d=bank.test"), "{text}");
        assert!(
            text.starts_with("Authentication-Results: other.test; spf=fail\r\nSubject: hi\r\n\r\n")
        );
        assert!(text.ends_with("mx.example.com; body stays\r\n"));
    }
}
