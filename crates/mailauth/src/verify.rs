//! Inbound checks of one message: SPF, every DKIM signature, the ARC chain, and DMARC from those,
//! summed up as an `Authentication-Results` header field (RFC 8601) and a serialisable outcome
//! that can be kept with the message for later filtering.
//!
//! DNS failures give `temperror` results, never errors: what to do about them (accept, defer) is
//! the caller's policy.

use std::net::IpAddr;

use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    ArcOutput, AuthenticatedMessage, AuthenticationResults, DkimOutput, DkimResult, DmarcOutput,
    DmarcResult, SpfOutput, SpfResult,
};
use serde::{Deserialize, Serialize};

use crate::dns::Authenticator;

/// What the SMTP server knows about one received message.
#[derive(Debug, Clone, Copy)]
pub struct VerifyInput<'a> {
    /// The message as received (header and body, CRLF line ends).
    pub raw: &'a [u8],
    pub client_ip: IpAddr,
    /// The EHLO/HELO argument.
    pub helo: &'a str,
    /// The MAIL FROM address without brackets; empty for the null reverse-path.
    pub mail_from: &'a str,
    /// Our host name, the authserv-id of the Authentication-Results field (RFC 8601 §2.5).
    pub receiver_hostname: &'a str,
}

/// A method's result, as named in RFC 8601 §2.7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    SoftFail,
    Neutral,
    None,
    TempError,
    PermError,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::SoftFail => "softfail",
            Verdict::Neutral => "neutral",
            Verdict::None => "none",
            Verdict::TempError => "temperror",
            Verdict::PermError => "permerror",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<SpfResult> for Verdict {
    fn from(r: SpfResult) -> Verdict {
        match r {
            SpfResult::Pass => Verdict::Pass,
            SpfResult::Fail => Verdict::Fail,
            SpfResult::SoftFail => Verdict::SoftFail,
            SpfResult::Neutral => Verdict::Neutral,
            SpfResult::TempError => Verdict::TempError,
            SpfResult::PermError => Verdict::PermError,
            SpfResult::None => Verdict::None,
        }
    }
}

impl From<&DkimResult> for Verdict {
    fn from(r: &DkimResult) -> Verdict {
        match r {
            DkimResult::Pass => Verdict::Pass,
            DkimResult::Neutral(_) => Verdict::Neutral,
            DkimResult::Fail(_) => Verdict::Fail,
            DkimResult::PermError(_) => Verdict::PermError,
            DkimResult::TempError(_) => Verdict::TempError,
            DkimResult::None => Verdict::None,
        }
    }
}

impl From<&DmarcResult> for Verdict {
    fn from(r: &DmarcResult) -> Verdict {
        match r {
            DmarcResult::Pass => Verdict::Pass,
            DmarcResult::Fail(_) => Verdict::Fail,
            DmarcResult::TempError(_) => Verdict::TempError,
            DmarcResult::PermError(_) => Verdict::PermError,
            DmarcResult::None => Verdict::None,
        }
    }
}

/// Which identity SPF checked (RFC 7208 §2.3, §2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpfIdentity {
    MailFrom,
    Helo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpfOutcome {
    pub result: Verdict,
    pub identity: SpfIdentity,
    /// The domain whose policy was evaluated.
    pub domain: String,
    /// The domain's explanation for a fail (`exp=`, RFC 7208 §6.2), for the SMTP reply.
    pub explanation: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DkimOutcome {
    pub result: Verdict,
    /// `d=` and `s=` of the signature, when it could be parsed.
    pub domain: Option<String>,
    pub selector: Option<String>,
    /// Why it did not pass.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArcOutcome {
    pub result: Verdict,
    /// ARC sets in the chain.
    pub sets: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmarcOutcome {
    pub result: Verdict,
    /// The RFC 5322.From domain; empty when DMARC did not apply (no or several From domains).
    pub domain: String,
    /// The policy the domain publishes for this message (p=, sp= or np=, lowered by t=y).
    pub published: DmarcPolicy,
    pub spf_aligned: bool,
    pub dkim_aligned: bool,
}

/// What to do with the message according to DMARC (RFC 7489 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DmarcPolicy {
    #[default]
    None,
    Quarantine,
    Reject,
}

impl From<Policy> for DmarcPolicy {
    fn from(p: Policy) -> DmarcPolicy {
        match p {
            Policy::Quarantine => DmarcPolicy::Quarantine,
            Policy::Reject => DmarcPolicy::Reject,
            Policy::None | Policy::Unspecified => DmarcPolicy::None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthOutcome {
    pub spf: SpfOutcome,
    pub dkim: Vec<DkimOutcome>,
    pub arc: ArcOutcome,
    pub dmarc: DmarcOutcome,
    /// The disposition DMARC asks for: the published policy when DMARC fails, else none.
    pub policy: DmarcPolicy,
    /// `Authentication-Results: ...\r\n`, ready to prepend.
    pub header: String,
}

impl Authenticator {
    /// [`Authenticator::verify`] within `budget`: when DNS is slow or unreachable, every check
    /// is a `temperror` after `budget` instead of holding the SMTP client for minutes (each of
    /// the dozen lookups may otherwise wait the resolver's timeout times its attempts).
    pub async fn verify_within(
        &self,
        input: &VerifyInput<'_>,
        budget: std::time::Duration,
    ) -> AuthOutcome {
        match tokio::time::timeout(budget, self.verify(input)).await {
            Ok(outcome) => outcome,
            Err(_) => timed_out(input, budget),
        }
    }

    pub async fn verify(&self, input: &VerifyInput<'_>) -> AuthOutcome {
        let ip = input.client_ip.to_canonical();
        let helo = input.helo;
        let host = input.receiver_hostname;

        let (spf, identity) = self.spf_output(ip, helo, input.mail_from, host).await;
        let spf_part = match identity {
            SpfIdentity::Helo => {
                AuthenticationResults::new(host).with_spf_ehlo_result(&spf, ip, helo)
            }
            SpfIdentity::MailFrom => AuthenticationResults::new(host).with_spf_mailfrom_result(
                &spf,
                ip,
                input.mail_from,
                helo,
            ),
        }
        .to_string();
        let spf_outcome = spf_outcome(&spf, identity);

        let Some(message) = AuthenticatedMessage::parse(input.raw) else {
            // No header section to speak of: nothing but SPF can be checked.
            let header = format!(
                "Authentication-Results: {spf_part};\r\n\tdkim=none;\r\n\tarc=none;\r\n\tdmarc=none\r\n"
            );
            return AuthOutcome {
                spf: spf_outcome,
                dkim: vec![],
                arc: ArcOutcome {
                    result: Verdict::None,
                    sets: 0,
                },
                dmarc: no_dmarc(),
                policy: DmarcPolicy::None,
                header,
            };
        };

        let dkim = self.inner.verify_dkim(&message).await;
        let arc = self.inner.verify_arc(&message).await;
        // RFC 7489 §3.1.2: SPF alignment is with the domain SPF checked (HELO for <>).
        let dmarc = self
            .inner
            .verify_dmarc(DmarcParameters::new(&message, &dkim, spf.domain(), &spf))
            .await;

        let header_from = message.from.first().map(String::as_str).unwrap_or("");
        let dkim_part = if dkim.is_empty() {
            ";\r\n\tdkim=none".to_string()
        } else {
            AuthenticationResults::new("")
                .with_dkim_results(&dkim, header_from)
                .to_string()
        };
        let arc_part = AuthenticationResults::new("")
            .with_arc_result(&arc, ip)
            .to_string();
        let dmarc_part = if dmarc.domain().is_empty() {
            ";\r\n\tdmarc=none".to_string()
        } else {
            AuthenticationResults::new("")
                .with_dmarc_result(&dmarc)
                .to_string()
        };
        let header =
            format!("Authentication-Results: {spf_part}{dkim_part}{arc_part}{dmarc_part}\r\n");

        let dmarc_outcome = dmarc_outcome(&dmarc);
        // RFC 7489 §6.6.2: the policy applies only when DMARC fails; temperror asks for nothing.
        let policy = if dmarc_outcome.result == Verdict::Fail {
            dmarc_outcome.published
        } else {
            DmarcPolicy::None
        };
        AuthOutcome {
            spf: spf_outcome,
            dkim: dkim.iter().map(dkim_outcome).collect(),
            arc: arc_outcome(&arc),
            dmarc: dmarc_outcome,
            policy,
            header,
        }
    }
}

impl Authenticator {
    /// SPF alone (RFC 7208), e.g. at MAIL FROM time: the MAIL FROM identity, or the HELO
    /// identity for the null reverse-path. `receiver_hostname` is what the `%{r}` macro expands to.
    pub async fn spf(
        &self,
        client_ip: IpAddr,
        helo: &str,
        mail_from: &str,
        receiver_hostname: &str,
    ) -> SpfOutcome {
        let (out, identity) = self
            .spf_output(client_ip, helo, mail_from, receiver_hostname)
            .await;
        spf_outcome(&out, identity)
    }

    async fn spf_output(
        &self,
        ip: IpAddr,
        helo: &str,
        mail_from: &str,
        host: &str,
    ) -> (SpfOutput, SpfIdentity) {
        // RFC 7208 §5: an IPv4-mapped IPv6 address (a dual-stack listener's view of an IPv4
        // client) is an IPv4 address.
        let ip = ip.to_canonical();
        // RFC 7208 §2.4: the MAIL FROM identity; for the null reverse-path, the HELO identity
        // (as postmaster@helo).
        if mail_from.is_empty() {
            let out = self
                .inner
                .verify_spf(SpfParameters::verify_ehlo(ip, helo, host))
                .await;
            (out, SpfIdentity::Helo)
        } else {
            let out = self
                .inner
                .verify_spf(SpfParameters::verify_mail_from(ip, helo, host, mail_from))
                .await;
            (out, SpfIdentity::MailFrom)
        }
    }
}

fn spf_outcome(out: &SpfOutput, identity: SpfIdentity) -> SpfOutcome {
    SpfOutcome {
        result: out.result().into(),
        identity,
        domain: out.domain().to_string(),
        explanation: out.explanation().map(str::to_string),
    }
}

/// Every check a `temperror` (RFC 8601 §2.7: a transient error such as a DNS timeout).
fn timed_out(input: &VerifyInput<'_>, budget: std::time::Duration) -> AuthOutcome {
    let (identity, domain) = if input.mail_from.is_empty() {
        (SpfIdentity::Helo, input.helo.to_ascii_lowercase())
    } else {
        (
            SpfIdentity::MailFrom,
            input
                .mail_from
                .rsplit_once('@')
                .map_or(input.mail_from, |(_, d)| d)
                .to_ascii_lowercase(),
        )
    };
    let spf_property = match identity {
        SpfIdentity::Helo => format!("smtp.helo={}", input.helo),
        SpfIdentity::MailFrom => format!("smtp.mailfrom={}", input.mail_from),
    };
    let header = format!(
        "Authentication-Results: {host};\r\n\tspf=temperror (checks did not finish within {secs} s) {spf_property};\r\n\tdkim=temperror;\r\n\tarc=none;\r\n\tdmarc=temperror\r\n",
        host = input.receiver_hostname,
        secs = budget.as_secs(),
    );
    AuthOutcome {
        spf: SpfOutcome {
            result: Verdict::TempError,
            identity,
            domain,
            explanation: None,
        },
        dkim: vec![],
        arc: ArcOutcome {
            result: Verdict::None,
            sets: 0,
        },
        dmarc: DmarcOutcome {
            result: Verdict::TempError,
            ..no_dmarc()
        },
        policy: DmarcPolicy::None,
        header,
    }
}

fn no_dmarc() -> DmarcOutcome {
    DmarcOutcome {
        result: Verdict::None,
        domain: String::new(),
        published: DmarcPolicy::None,
        spf_aligned: false,
        dkim_aligned: false,
    }
}

fn dkim_outcome(out: &DkimOutput<'_>) -> DkimOutcome {
    let reason = match out.result() {
        DkimResult::Neutral(e)
        | DkimResult::Fail(e)
        | DkimResult::PermError(e)
        | DkimResult::TempError(e) => Some(e.to_string()),
        DkimResult::Pass | DkimResult::None => None,
    };
    DkimOutcome {
        result: out.result().into(),
        domain: out.signature().map(|s| s.d.clone()),
        selector: out.signature().map(|s| s.s.clone()),
        reason,
    }
}

fn arc_outcome(out: &ArcOutput<'_>) -> ArcOutcome {
    ArcOutcome {
        result: out.result().into(),
        sets: out.sets().len(),
    }
}

fn dmarc_outcome(out: &DmarcOutput) -> DmarcOutcome {
    if out.domain().is_empty() {
        return no_dmarc();
    }
    DmarcOutcome {
        result: (&out.result()).into(),
        domain: out.domain().to_string(),
        published: out.policy().into(),
        spf_aligned: *out.spf_result() == DmarcResult::Pass,
        dkim_aligned: *out.dkim_result() == DmarcResult::Pass,
    }
}

/// The header text of an outcome without the final CRLF, for logs.
impl std::fmt::Display for AuthOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.header.trim_end())
    }
}
