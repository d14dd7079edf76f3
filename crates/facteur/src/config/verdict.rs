//! `[verdict]`: what the total score of the inbound checks does to a message (see
//! `smtp::verdict`), per domain and account, the allow and block lists' effect, and how long
//! the quarantine keeps messages.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A score in points (SpamAssassin's scale: 5 is spam). Compared by value; NaN is refused by
/// validation.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Points(pub f64);

impl PartialEq for Points {
    fn eq(&self, o: &Points) -> bool {
        self.0.to_bits() == o.0.to_bits()
    }
}
impl Eq for Points {}

/// The one word a threshold accepts besides a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OffWord {
    Off,
}

/// A score from which an action applies, or `"off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Threshold {
    Score(Points),
    Off(OffWord),
}

impl Threshold {
    pub const OFF: Threshold = Threshold::Off(OffWord::Off);

    pub fn value(self) -> f64 {
        match self {
            Threshold::Score(p) => p.0,
            Threshold::Off(_) => smtp::verdict::Thresholds::OFF,
        }
    }
}

/// What a block list match does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockAction {
    /// `550 5.7.1` at the end of data.
    #[default]
    Reject,
    /// Delivered to Junk.
    Junk,
    /// Held in quarantine.
    Quarantine,
}

/// Thresholds of one domain or account; a missing key keeps the default's (a domain's for an
/// account of it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThresholdOverride {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub junk: Option<Threshold>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<Threshold>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reject: Option<Threshold>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerdictSection {
    /// The content classifier, the allow and block lists, the score's verdict and the
    /// `X-Spam-*` header fields on mail received on port 25.
    pub enabled: bool,
    pub junk: Threshold,
    pub quarantine: Threshold,
    pub reject: Threshold,
    /// Points an allow list match adds (it also stops the score from junking or refusing).
    pub allow_score: Points,
    pub block_action: BlockAction,
    /// Days a quarantined message is kept before it is deleted.
    pub quarantine_days: u32,
    /// Per recipient domain.
    pub domains: BTreeMap<String, ThresholdOverride>,
    /// Per account address.
    pub accounts: BTreeMap<String, ThresholdOverride>,
}

/// Points of an allow list match: far below any spam threshold.
pub const DEFAULT_ALLOW_SCORE: f64 = -20.0;

impl Default for VerdictSection {
    fn default() -> Self {
        VerdictSection {
            enabled: true,
            junk: Threshold::Score(Points(smtp::verdict::DEFAULT_JUNK)),
            quarantine: Threshold::OFF,
            reject: Threshold::OFF,
            allow_score: Points(DEFAULT_ALLOW_SCORE),
            block_action: BlockAction::Reject,
            quarantine_days: smtp::verdict::DEFAULT_RETENTION_DAYS,
            domains: BTreeMap::new(),
            accounts: BTreeMap::new(),
        }
    }
}

impl VerdictSection {
    /// The rules the SMTP delivery applies: overrides merged (account over its domain over the
    /// default).
    pub fn rules(&self) -> smtp::verdict::Rules {
        use smtp::verdict::Thresholds;
        let base = Thresholds {
            junk: self.junk.value(),
            quarantine: self.quarantine.value(),
            reject: self.reject.value(),
        };
        let over = |t: Thresholds, o: &ThresholdOverride| Thresholds {
            junk: o.junk.map_or(t.junk, Threshold::value),
            quarantine: o.quarantine.map_or(t.quarantine, Threshold::value),
            reject: o.reject.map_or(t.reject, Threshold::value),
        };
        let domains: std::collections::HashMap<String, Thresholds> = self
            .domains
            .iter()
            .map(|(d, o)| (d.to_ascii_lowercase(), over(base, o)))
            .collect();
        let accounts = self
            .accounts
            .iter()
            .map(|(a, o)| {
                let a = a.to_ascii_lowercase();
                let dom = a
                    .rsplit_once('@')
                    .and_then(|(_, d)| domains.get(d).copied())
                    .unwrap_or(base);
                (a, over(dom, o))
            })
            .collect();
        smtp::verdict::Rules {
            enabled: self.enabled,
            default: base,
            domains,
            accounts,
            retention_secs: i64::from(self.quarantine_days) * 86_400,
        }
    }

    /// Problems with the values, as (key, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut finite = |key: &'static str, t: Option<Threshold>| {
            if let Some(Threshold::Score(p)) = t
                && !p.0.is_finite()
            {
                out.push((key, format!("{} is not a number", p.0)));
            }
        };
        finite("verdict.junk", Some(self.junk));
        finite("verdict.quarantine", Some(self.quarantine));
        finite("verdict.reject", Some(self.reject));
        for o in self.domains.values().chain(self.accounts.values()) {
            finite("verdict.domains/accounts", o.junk);
            finite("verdict.domains/accounts", o.quarantine);
            finite("verdict.domains/accounts", o.reject);
        }
        if !self.allow_score.0.is_finite() {
            out.push(("verdict.allow_score", "not a number".into()));
        }
        if self.quarantine_days == 0 {
            out.push(("verdict.quarantine_days", "must be at least 1".into()));
        }
        for a in self.accounts.keys() {
            if !a.contains('@') {
                out.push((
                    "verdict.accounts",
                    format!("{a:?} is not an account address (user@domain)"),
                ));
            }
        }
        out
    }
}
