//! `[attachments]`, `[antivirus]` and `[phishing]`: the malicious-content checks (crate
//! `malware`).

use std::collections::BTreeMap;
use std::time::Duration;

use malware::{Action, Overrides};
use serde::{Deserialize, Serialize};

use super::{Invalid, at_least, invalid, size};

/// Longest time clamd may take for one message: past this, SMTP clients give up on the end of
/// data (RFC 5321 §4.5.3.2.6 gives them 10 minutes, with everything else to do too).
const MAX_CLAMD_TIMEOUT_SECS: u64 = 300;
/// Highest archive nesting looked into.
const MAX_ARCHIVE_DEPTH: usize = 10;

/// Dangerous attachments: what to do with each kind, for all domains and per domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttachmentsSection {
    /// Inspect attachments at all.
    pub inspect: bool,
    pub executable: Action,
    pub script: Action,
    pub disk_image: Action,
    pub macros: Action,
    pub disguised: Action,
    pub credential_form: Action,
    pub unscannable: Action,
    pub max_attachments: usize,
    #[serde(deserialize_with = "size::bytes_usize")]
    pub max_file_size: usize,
    pub max_archive_depth: usize,
    pub max_archive_entries: usize,
    #[serde(deserialize_with = "size::bytes_u64")]
    pub max_archive_size: u64,
    pub max_archive_ratio: u64,
    /// Per recipient domain, the actions that differ from the ones above.
    pub domains: BTreeMap<String, Overrides>,
}

impl Default for AttachmentsSection {
    fn default() -> Self {
        let a = malware::Actions::default();
        let l = malware::Limits::default();
        AttachmentsSection {
            inspect: true,
            executable: a.executable,
            script: a.script,
            disk_image: a.disk_image,
            macros: a.macros,
            disguised: a.disguised,
            credential_form: a.credential_form,
            unscannable: a.unscannable,
            max_attachments: l.max_attachments,
            max_file_size: l.max_file_size,
            max_archive_depth: l.max_depth,
            max_archive_entries: l.max_entries,
            max_archive_size: l.max_uncompressed,
            max_archive_ratio: l.max_ratio,
            domains: BTreeMap::new(),
        }
    }
}

impl AttachmentsSection {
    pub fn policy(&self) -> malware::Policy {
        malware::Policy {
            actions: malware::Actions {
                executable: self.executable,
                script: self.script,
                disk_image: self.disk_image,
                macros: self.macros,
                disguised: self.disguised,
                credential_form: self.credential_form,
                unscannable: self.unscannable,
            },
            domains: self
                .domains
                .iter()
                .map(|(d, o)| (d.trim_end_matches('.').to_ascii_lowercase(), *o))
                .collect(),
        }
    }

    pub fn limits(&self) -> malware::Limits {
        malware::Limits {
            max_attachments: self.max_attachments,
            max_file_size: self.max_file_size,
            max_depth: self.max_archive_depth,
            max_entries: self.max_archive_entries,
            max_uncompressed: self.max_archive_size,
            max_ratio: self.max_archive_ratio,
        }
    }

    pub(super) fn validate(&self, errs: &mut Vec<Invalid>) {
        let results = [
            at_least("attachments.max_attachments", self.max_attachments, 1),
            at_least("attachments.max_file_size", self.max_file_size, 1024),
            at_least(
                "attachments.max_archive_entries",
                self.max_archive_entries,
                1,
            ),
            at_least("attachments.max_archive_ratio", self.max_archive_ratio, 2),
            if self.max_archive_depth > MAX_ARCHIVE_DEPTH {
                Err(invalid(
                    "attachments.max_archive_depth",
                    format!(
                        "{} is above the maximum of {MAX_ARCHIVE_DEPTH}",
                        self.max_archive_depth
                    ),
                ))
            } else {
                Ok(())
            },
        ];
        errs.extend(results.into_iter().filter_map(Result::err));
        for d in self.domains.keys() {
            if !super::is_valid_hostname(d.trim_end_matches('.')) {
                errs.push(invalid(
                    "attachments.domains",
                    format!("{d:?} is not a valid domain name"),
                ));
            }
        }
    }
}

/// ClamAV's daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AntivirusSection {
    /// clamd's socket: an absolute path, or "HOST:PORT"; empty: no antivirus.
    pub clamd: String,
    pub timeout_secs: u64,
    pub fail_open: bool,
    #[serde(deserialize_with = "size::bytes_usize")]
    pub max_size: usize,
}

impl Default for AntivirusSection {
    fn default() -> Self {
        AntivirusSection {
            clamd: String::new(),
            timeout_secs: 30,
            fail_open: false,
            // clamd's own default StreamMaxLength.
            max_size: 25 * 1024 * 1024,
        }
    }
}

impl AntivirusSection {
    /// The clamd client, when one is configured.
    pub fn clamd(&self) -> Option<malware::clamd::Clamd> {
        if self.clamd.trim().is_empty() {
            return None;
        }
        let endpoint = malware::clamd::Endpoint::parse(&self.clamd).ok()?;
        Some(malware::clamd::Clamd {
            endpoint,
            timeout: Duration::from_secs(self.timeout_secs),
        })
    }

    pub(super) fn validate(&self, errs: &mut Vec<Invalid>) {
        if !self.clamd.trim().is_empty()
            && let Err(e) = malware::clamd::Endpoint::parse(&self.clamd)
        {
            errs.push(invalid("antivirus.clamd", e));
        }
        if let Err(e) = at_least("antivirus.timeout_secs", self.timeout_secs, 1) {
            errs.push(e);
        }
        if self.timeout_secs > MAX_CLAMD_TIMEOUT_SECS {
            errs.push(invalid(
                "antivirus.timeout_secs",
                format!(
                    "{} is above the maximum of {MAX_CLAMD_TIMEOUT_SECS}",
                    self.timeout_secs
                ),
            ));
        }
        if let Err(e) = at_least("antivirus.max_size", self.max_size, 1024) {
            errs.push(e);
        }
    }
}

/// Phishing heuristics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PhishingSection {
    /// Run the heuristics at all.
    pub heuristics: bool,
    /// Display names protected besides the accounts' own (e.g. "Managing Director").
    pub protected_names: Vec<String>,
}

impl Default for PhishingSection {
    fn default() -> Self {
        PhishingSection {
            heuristics: true,
            protected_names: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use malware::Action;

    use super::super::parse;

    #[test]
    fn domains_and_antivirus_keys() {
        let c = parse(
            "[attachments]\nmacros = \"reject\"\n\
             domains = { \"Lab.Example\" = { executable = \"tag\" } }\n\
             [antivirus]\nclamd = \"/run/clamav/clamd.ctl\"\nmax_size = \"10M\"\n",
            "t",
        )
        .unwrap();
        let p = c.attachments.policy();
        assert_eq!(p.for_domain("lab.example").executable, Action::Tag);
        assert_eq!(p.for_domain("lab.example").macros, Action::Reject);
        assert_eq!(p.for_domain("other.example").executable, Action::Reject);
        assert_eq!(c.antivirus.max_size, 10 << 20);
        assert!(c.antivirus.clamd().is_some());
        assert!(c.antivirus.clone().fail_open.eq(&false));

        let e = parse("[antivirus]\nclamd = \"clamd\"\n", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("antivirus.clamd") || e.contains("clamd"), "{e}");
        let e = parse("[attachments]\nexecutable = \"drop\"\n", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("executable"), "{e}");
        let e = parse(
            "[attachments]\ndomains = { \"x\" = { executabel = \"tag\" } }\n",
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("executabel"), "{e}");
    }
}
