//! Mail authentication in the delivery pipeline, behind two traits implemented outside this crate
//! (by the binary, over the `mailauth` crate and the store's keys) so the SMTP crate stays
//! testable: inbound verification (SPF, DKIM, DMARC, ARC) on the MX path, run as the first content
//! check stage ([`AuthCheck`]), and DKIM signing on submission and of the DSNs we generate.

use std::sync::Arc;

use async_trait::async_trait;
use message::Prepared;

use crate::backend::{Envelope, Mode};
use crate::pipeline::{Check, CheckError, CheckResult, Disposition as Placement, Reason, Verdict};

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
    /// The `DKIM-Signature: ...\r\n` header fields for an outgoing message (given as pieces to be
    /// read one after the other), when one of our keys applies to `domain` or a parent of it.
    /// The caller names the domain: the message's checked header From domain.
    async fn sign(&self, message: &[&[u8]], domain: &str) -> Option<String>;
}

/// SPF, DKIM, DMARC and ARC as the first content stage, on the MX port only: the verdict's
/// `Authentication-Results` field goes on top of the message; DMARC `p=quarantine` sends it to
/// Junk and `p=reject` refuses it (RFC 7489 §6.3).
pub struct AuthCheck {
    pub verifier: Arc<dyn Verifier>,
}

#[async_trait]
impl Check for AuthCheck {
    fn name(&self) -> &'static str {
        "mailauth"
    }

    async fn content(&self, envelope: &Envelope, message: &Prepared) -> CheckResult {
        if envelope.mode != Mode::Mx {
            return Ok(Verdict::accept());
        }
        let verdict = self.verifier.verify(envelope, message.raw()).await;
        match verdict.disposition {
            Disposition::Reject(why) => Err(CheckError::new(
                "mailauth",
                550,
                "5.7.1",
                why.clone(),
                format!("DMARC p=reject: {why}"),
            )),
            Disposition::Quarantine => Ok(Verdict {
                reasons: vec![Reason {
                    check: "mailauth",
                    name: "DMARC_QUARANTINE".into(),
                    score: 0.0,
                    detail: "fails DMARC, the domain asks for quarantine".into(),
                }],
                headers: verdict.header,
                disposition: Placement::Junk,
                ..Verdict::default()
            }),
            Disposition::Accept => Ok(Verdict {
                headers: verdict.header,
                ..Verdict::default()
            }),
        }
    }
}

/// Removes `Authentication-Results` fields that claim to come from us (RFC 8601 §5: a border MTA
/// must delete such fields from incoming mail, or they could forge our verdicts). `authserv_id` is
/// compared case-insensitively. Only the header section is touched. `None` when there is none to
/// remove (the message needs no copy).
pub fn strip_forged_results(message: &[u8], authserv_id: &str) -> Option<Vec<u8>> {
    strip_fields(message, |f| is_ours(f, authserv_id))
}

/// Removes the header fields (each given whole, with its continuation lines) for which `remove`
/// is true. Only the header section is touched. `None` when none matched (no copy is made).
pub fn strip_fields(message: &[u8], remove: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    let end = message::header_end(message);
    let (head, body) = message.split_at(end);
    let mut fields = Vec::new();
    let mut dropped = false;
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
        if remove(field) {
            dropped = true;
        } else {
            fields.push(field);
        }
        i = j;
    }
    if !dropped {
        return None;
    }
    let mut out = Vec::with_capacity(message.len());
    for f in fields {
        out.extend_from_slice(f);
    }
    out.extend_from_slice(body);
    Some(out)
}

/// The name of a header field given whole (`Name: value...`), trimmed.
pub fn field_name(field: &[u8]) -> Option<&[u8]> {
    let colon = field.iter().position(|&b| b == b':')?;
    Some(field[..colon].trim_ascii())
}

pub(crate) fn is_ours(field: &[u8], authserv_id: &str) -> bool {
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
        let out = strip_forged_results(msg, "MX.example.com").expect("one to strip");
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("dkim=pass header.d=bank.test"), "{text}");
        assert!(
            text.starts_with("Authentication-Results: other.test; spf=fail\r\nSubject: hi\r\n\r\n")
        );
        assert!(text.ends_with("mx.example.com; body stays\r\n"));
        assert_eq!(
            strip_forged_results(b"Subject: x\r\n\r\nb", "mx.example.com"),
            None
        );
    }
}
