//! Verdicts: after the content stage, the transaction's total score (every check's points added
//! up in the [`CheckState`]) is compared with thresholds (per recipient domain, overridden per
//! account) to decide what happens to the message: delivered to the INBOX with `X-Spam-*` header
//! fields (always added), delivered to Junk, held in quarantine, or refused at the end of data
//! with `550 5.7.1`. Nothing is dropped: a refusal is the client's to report, a quarantined
//! message is in the store until released, deleted or expired.
//!
//! A disposition a check asked for itself (DMARC `p=quarantine` sends to Junk, a malware check
//! quarantines) stands whatever the score: the verdict only ever makes it stricter. An allow list
//! entry ([`ALLOWLISTED`]) stops the score from junking, quarantining or refusing, but not a
//! check's own disposition or refusal (DMARC reject, malware).

use std::collections::HashMap;

use crate::pipeline::{CheckState, Disposition, Reason};

/// Reason name of an allow list match: the score alone no longer junks, quarantines or refuses.
pub const ALLOWLISTED: &str = "ALLOWLISTED";
/// Default score from which a message goes to Junk (SpamAssassin's `required_score`).
pub const DEFAULT_JUNK: f64 = 5.0;
/// Days a quarantined message is kept before the expiry job deletes it.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
/// Longest `tests=` list written into `X-Spam-Status` (reasons past it are in the log only).
const MAX_TESTS_IN_HEADER: usize = 40;

/// Scores from which each action applies; [`Thresholds::OFF`] turns an action off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub junk: f64,
    pub quarantine: f64,
    pub reject: f64,
}

impl Thresholds {
    pub const OFF: f64 = f64::INFINITY;

    /// The more lenient of two (each threshold the higher): a transaction's recipients share one
    /// verdict, and no recipient loses mail its own settings would have delivered.
    pub fn lenient(self, o: Thresholds) -> Thresholds {
        Thresholds {
            junk: self.junk.max(o.junk),
            quarantine: self.quarantine.max(o.quarantine),
            reject: self.reject.max(o.reject),
        }
    }

    /// The score from which a message is called spam in its headers: the lowest threshold on.
    pub fn required(self) -> Option<f64> {
        [self.junk, self.quarantine, self.reject]
            .into_iter()
            .filter(|t| t.is_finite())
            .reduce(f64::min)
    }
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            junk: DEFAULT_JUNK,
            quarantine: Thresholds::OFF,
            reject: Thresholds::OFF,
        }
    }
}

/// The verdict settings: thresholds per domain and account, and quarantine retention.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Verdicts (and `X-Spam-*` fields) on mail received on the MX port.
    pub enabled: bool,
    pub default: Thresholds,
    /// By recipient domain (lowercase), already merged over `default`.
    pub domains: HashMap<String, Thresholds>,
    /// By account address (lowercase), already merged over its domain's and `default`.
    pub accounts: HashMap<String, Thresholds>,
    /// Seconds a quarantined message is kept.
    pub retention_secs: i64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            enabled: false,
            default: Thresholds::default(),
            domains: HashMap::new(),
            accounts: HashMap::new(),
            retention_secs: i64::from(DEFAULT_RETENTION_DAYS) * 86_400,
        }
    }
}

impl Rules {
    /// One recipient's thresholds: its account's, else its domain's, else the default.
    pub fn for_recipient(&self, domain: &str, accounts: &[String]) -> Thresholds {
        let mut found: Option<Thresholds> = None;
        for a in accounts {
            if let Some(t) = self.accounts.get(&a.to_ascii_lowercase()) {
                found = Some(found.map_or(*t, |f| f.lenient(*t)));
            }
        }
        found.unwrap_or_else(|| {
            self.domains
                .get(&domain.to_ascii_lowercase())
                .copied()
                .unwrap_or(self.default)
        })
    }
}

/// What the score decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Deliver(Disposition),
    Reject,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Deliver(Disposition::Accept) => "inbox",
            Action::Deliver(Disposition::Junk) => "junk",
            Action::Deliver(Disposition::Quarantine) => "quarantine",
            Action::Reject => "reject",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub action: Action,
    /// Whether the score reached the spam threshold (the `X-Spam-Status` Yes/No).
    pub spam: bool,
    pub allowlisted: bool,
    pub thresholds: Thresholds,
}

pub fn allowlisted(state: &CheckState) -> bool {
    state.reasons.iter().any(|r| r.name == ALLOWLISTED)
}

/// The decision for a transaction's total: the score's action (none when allow-listed), made
/// no milder than the disposition the checks asked for.
pub fn decide(state: &CheckState, t: Thresholds) -> Decision {
    let allow = allowlisted(state);
    let s = state.score;
    let by_score = if allow {
        Action::Deliver(Disposition::Accept)
    } else if s >= t.reject {
        Action::Reject
    } else if s >= t.quarantine {
        Action::Deliver(Disposition::Quarantine)
    } else if s >= t.junk {
        Action::Deliver(Disposition::Junk)
    } else {
        Action::Deliver(Disposition::Accept)
    };
    let action = match by_score {
        Action::Reject => Action::Reject,
        Action::Deliver(d) => Action::Deliver(d.max(state.disposition)),
    };
    Decision {
        action,
        spam: !allow && t.required().is_some_and(|r| s >= r),
        allowlisted: allow,
        thresholds: t,
    }
}

/// A reason's name as a header token: letters, digits and `_` (`DNSBL:bl.example` becomes
/// `DNSBL_bl_example`); other characters become `_`, whitespace and controls are dropped.
fn token(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_graphic())
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(64)
        .collect()
}

/// A reason's name for the log and the quarantine list: as the check named it (`DNSBL:bl.example`,
/// `ATTACH_EXECUTABLE`), printable ASCII without spaces or parentheses.
fn log_token(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_graphic() && *c != '(' && *c != ')')
        .take(64)
        .collect()
}

/// `X-Spam-Status`, `X-Spam-Score` and, for spam, `X-Spam-Flag: YES` (SpamAssassin's fields,
/// which mail clients and Sieve scripts already filter on), folded.
pub fn headers(state: &CheckState, d: &Decision) -> String {
    let required = d
        .thresholds
        .required()
        .map_or_else(|| "off".to_string(), |r| format!("{r:.1}"));
    let mut tests: Vec<String> = state
        .reasons
        .iter()
        .map(|r| token(&r.name))
        .filter(|t| !t.is_empty())
        .collect();
    tests.sort();
    tests.dedup();
    tests.truncate(MAX_TESTS_IN_HEADER);
    let mut out = format!(
        "X-Spam-Status: {}, score={:.1} required={required}\r\n\ttests={}",
        if d.spam { "Yes" } else { "No" },
        state.score,
        if tests.is_empty() {
            "none".to_string()
        } else {
            // Folded every few tests so no line grows past RFC 5322 §2.1.1's 78 characters.
            tests
                .chunks(4)
                .map(|c| c.join(","))
                .collect::<Vec<_>>()
                .join(",\r\n\t")
        }
    );
    out.push_str(&format!("\r\nX-Spam-Score: {:.1}\r\n", state.score));
    if d.spam {
        out.push_str("X-Spam-Flag: YES\r\n");
    }
    out
}

/// Header fields a sender must not set for us: removed from mail received on the MX port when
/// verdicts are on, so a spammer cannot pass a forged "No".
pub fn is_spam_field(name: &[u8]) -> bool {
    [&b"X-Spam-Status"[..], b"X-Spam-Score", b"X-Spam-Flag"]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n))
}

/// The reasons for the log and the quarantine list: `NAME(+1.20) OTHER(-3.00)`.
pub fn reasons_text(reasons: &[Reason]) -> String {
    reasons
        .iter()
        .map(|r| format!("{}({:+.2})", log_token(&r.name), r.score))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(score: f64, names: &[&str], disposition: Disposition) -> CheckState {
        CheckState {
            score,
            reasons: names
                .iter()
                .map(|n| Reason {
                    check: "t",
                    name: n.to_string(),
                    score: 0.0,
                    detail: String::new(),
                })
                .collect(),
            headers: String::new(),
            disposition,
        }
    }

    const T: Thresholds = Thresholds {
        junk: 5.0,
        quarantine: 10.0,
        reject: 15.0,
    };

    #[test]
    fn thresholds_pick_the_action() {
        let a = |s: f64| decide(&state(s, &[], Disposition::Accept), T).action;
        assert_eq!(a(-3.0), Action::Deliver(Disposition::Accept));
        assert_eq!(a(4.9), Action::Deliver(Disposition::Accept));
        assert_eq!(a(5.0), Action::Deliver(Disposition::Junk));
        assert_eq!(a(12.0), Action::Deliver(Disposition::Quarantine));
        assert_eq!(a(15.0), Action::Reject);
        // Off thresholds never apply.
        let off = Thresholds::default();
        assert_eq!(
            decide(&state(1e9, &[], Disposition::Accept), off).action,
            Action::Deliver(Disposition::Junk)
        );
    }

    #[test]
    fn checks_dispositions_stand_and_allow_only_cancels_the_score() {
        // A malware quarantine with a low score stays a quarantine.
        let d = decide(&state(0.0, &[], Disposition::Quarantine), T);
        assert_eq!(d.action, Action::Deliver(Disposition::Quarantine));
        // Allow-listed: a spam score delivers to the INBOX...
        let d = decide(&state(20.0, &[ALLOWLISTED], Disposition::Accept), T);
        assert_eq!(d.action, Action::Deliver(Disposition::Accept));
        assert!(!d.spam);
        // ...but not past a check's own quarantine.
        let d = decide(&state(20.0, &[ALLOWLISTED], Disposition::Quarantine), T);
        assert_eq!(d.action, Action::Deliver(Disposition::Quarantine));
    }

    #[test]
    fn lenient_rule_for_several_recipients() {
        let mut r = Rules {
            default: T,
            ..Rules::default()
        };
        let strict = Thresholds { junk: 2.0, ..T };
        r.domains.insert("strict.test".into(), strict);
        r.accounts.insert(
            "boss@strict.test".into(),
            Thresholds {
                reject: Thresholds::OFF,
                ..strict
            },
        );
        assert_eq!(r.for_recipient("Strict.TEST", &[]), strict);
        assert_eq!(r.for_recipient("other.test", &[]), T);
        let boss = r.for_recipient("strict.test", &["BOSS@strict.test".into()]);
        assert_eq!(boss.reject, Thresholds::OFF);
        assert_eq!(boss.lenient(T).junk, 5.0);
    }

    #[test]
    fn header_fields() {
        let s = state(
            7.3,
            &["BAYES_SPAM", "BAD\r\nX-Evil: 1", "DMARC_QUARANTINE"],
            Disposition::Accept,
        );
        let d = decide(&s, T);
        let h = headers(&s, &d);
        assert!(
            h.starts_with("X-Spam-Status: Yes, score=7.3 required=5.0\r\n\ttests="),
            "{h}"
        );
        assert!(h.contains("BADX_Evil_1"), "{h}");
        assert!(!h.contains("X-Evil:"), "{h}");
        assert!(h.contains("X-Spam-Score: 7.3\r\n"));
        assert!(h.ends_with("X-Spam-Flag: YES\r\n"));
        let s = state(-1.0, &[], Disposition::Accept);
        let h = headers(&s, &decide(&s, T));
        assert_eq!(
            h,
            "X-Spam-Status: No, score=-1.0 required=5.0\r\n\ttests=none\r\nX-Spam-Score: -1.0\r\n"
        );
        assert!(is_spam_field(b"x-spam-flag"));
        assert!(!is_spam_field(b"X-Spam-Other"));
    }
}
