//! The malicious-content checks of `[attachments]`, `[antivirus]` and `[phishing]` (crate
//! `malware`), added to the inbound pipeline after mail authentication. Built at start: a
//! configuration reload does not change them (restart to apply).

use std::sync::Arc;

use directory::Directory;
use smtp::pipeline::Pipeline;

use crate::config::Config;

/// Adds the configured checks: attachments first (a refusal by policy spares the scan), then
/// clamd, then the phishing heuristics.
pub fn add_checks(checks: &mut Pipeline, cfg: &Config, directory: &Directory) {
    let a = &cfg.attachments;
    if a.inspect {
        checks.push(Arc::new(malware::AttachmentCheck {
            policy: a.policy(),
            limits: a.limits(),
        }));
    }
    if let Some(clamd) = cfg.antivirus.clamd() {
        tracing::info!(clamd = %clamd.endpoint, fail_open = cfg.antivirus.fail_open, "antivirus: clamd");
        checks.push(Arc::new(malware::AntivirusCheck {
            clamd,
            fail_open: cfg.antivirus.fail_open,
            max_size: cfg.antivirus.max_size,
        }));
    }
    if cfg.phishing.heuristics {
        checks.push(Arc::new(malware::PhishingCheck::new(
            Arc::new(directory.clone()),
            cfg.phishing.protected_names.clone(),
        )));
    }
}
