//! Mail authentication in the running server, over the `mailauth` crate: DKIM keys from the store
//! (generated per domain, cached), signing of outgoing mail and DSNs, and SPF/DKIM/DMARC/ARC
//! verification of mail received on the MX port.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mailauth::{Authenticator, DkimAlgorithm, DkimKey, DmarcPolicy, VerifyInput};
use smtp::backend::Envelope;
use smtp::checks::{AuthCheck, Disposition, InboundVerdict, Signer, Verifier};
use smtp::pipeline::Pipeline;
use store::{DkimKeyRecord, DkimKeyState, DynStore};

/// How long signing keys stay cached: a key activated (`facteur dkim activate`, `facteur dns
/// --check`) or retired (`facteur dkim rotate --finish`) takes effect within this time.
const KEY_CACHE_TTL: Duration = Duration::from_secs(60);
/// Longest the inbound checks may hold a message's final reply (rspamd's default task timeout is
/// 8 s): with DNS down, the message is accepted with `temperror` results instead.
pub const VERIFY_BUDGET: Duration = Duration::from_secs(10);

/// A selector for new keys: "f" + date + algorithm letter ("f20261128r", "f20261128e").
pub fn new_selector(algorithm: DkimAlgorithm, now: i64) -> String {
    let (year, month, day) = smtp::received::civil_date(now);
    let letter = match algorithm {
        DkimAlgorithm::Rsa => 'r',
        DkimAlgorithm::Ed25519 => 'e',
    };
    format!("f{year}{month:02}{day:02}{letter}")
}

/// Generates a key pair for `domain` and stores it in `state` (new keys are normally pending until
/// their DNS record is published).
pub async fn generate_key(
    store: &DynStore,
    domain: &str,
    algorithm: DkimAlgorithm,
    selector: Option<&str>,
    state: DkimKeyState,
) -> Result<DkimKeyRecord, String> {
    let now = store::now_unix();
    let selector = selector.map_or_else(|| new_selector(algorithm, now), str::to_string);
    // RSA key generation takes a moment of CPU: off the async threads.
    let key = tokio::task::spawn_blocking(move || DkimKey::generate(algorithm))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let record = DkimKeyRecord {
        domain: domain.to_ascii_lowercase(),
        selector,
        algorithm: algorithm.as_str().to_string(),
        private_pem: key.to_pkcs8_pem(),
        created: now,
        state,
    };
    store
        .dkim_key_put(&record)
        .await
        .map_err(|e| e.to_string())?;
    Ok(record)
}

/// Makes the usual pair (RSA-2048 for every receiver, Ed25519 for those that check it, RFC 8463)
/// for a domain that has no key yet. They are pending: they sign once their DNS records are seen.
pub async fn ensure_keys(store: &DynStore, domain: &str) -> Result<Vec<DkimKeyRecord>, String> {
    let existing = store
        .dkim_keys(Some(&domain.to_ascii_lowercase()))
        .await
        .map_err(|e| e.to_string())?;
    if !existing.is_empty() {
        return Ok(vec![]);
    }
    let mut made = Vec::new();
    for alg in [DkimAlgorithm::Rsa, DkimAlgorithm::Ed25519] {
        made.push(generate_key(store, domain, alg, None, DkimKeyState::Pending).await?);
    }
    Ok(made)
}

/// The TXT record value of a stored key.
pub fn txt_record(record: &DkimKeyRecord) -> Result<String, String> {
    DkimKey::from_pkcs8_pem(&record.private_pem)
        .map(|k| k.dns_txt_record())
        .map_err(|e| e.to_string())
}

type Keys = Vec<(String, Arc<DkimKey>)>;

/// Signs with the active keys of the message's From domain (or a parent of it, which DMARC's
/// relaxed alignment accepts), else of the fallback domain.
pub struct StoreSigner {
    store: DynStore,
    cache: Mutex<HashMap<String, (Instant, Arc<Keys>)>>,
}

impl StoreSigner {
    pub fn new(store: DynStore) -> StoreSigner {
        StoreSigner {
            store,
            cache: Mutex::new(HashMap::new()),
        }
    }

    async fn keys(&self, domain: &str) -> Arc<Keys> {
        if let Some((at, keys)) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(domain)
            && at.elapsed() < KEY_CACHE_TTL
        {
            return keys.clone();
        }
        let records = self.store.dkim_keys(Some(domain)).await.unwrap_or_default();
        let mut keys: Keys = Vec::new();
        for r in records.iter().filter(|r| r.state.signs()) {
            match DkimKey::from_pkcs8_pem(&r.private_pem) {
                Ok(k) => keys.push((r.selector.clone(), Arc::new(k))),
                Err(e) => {
                    tracing::error!(domain, selector = %r.selector, error = %e, "unusable DKIM key")
                }
            }
        }
        let keys = Arc::new(keys);
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(domain.to_string(), (Instant::now(), keys.clone()));
        keys
    }
}

/// `a.b.example.com` -> itself, `b.example.com`, `example.com` (not the last label alone).
fn with_parents(domain: &str) -> Vec<String> {
    let mut out = vec![domain.to_string()];
    let mut rest = domain;
    while let Some((_, parent)) = rest.split_once('.') {
        if !parent.contains('.') {
            break;
        }
        out.push(parent.to_string());
        rest = parent;
    }
    out
}

#[async_trait]
impl Signer for StoreSigner {
    /// Only the domain the caller names (the message's checked From domain) or a parent of it:
    /// never a key chosen from anything the sender wrote that was not checked.
    async fn sign(&self, message: &[&[u8]], domain: &str) -> Option<String> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        if domain.is_empty() {
            return None;
        }
        for domain in with_parents(&domain) {
            let keys = self.keys(&domain).await;
            if keys.is_empty() {
                continue;
            }
            let mut headers = String::new();
            for (selector, key) in keys.iter() {
                match key.sign_parts(message, &domain, selector) {
                    Ok(h) => headers.push_str(&h),
                    Err(e) => tracing::error!(domain, selector, error = %e, "DKIM signing failed"),
                }
            }
            return (!headers.is_empty()).then_some(headers);
        }
        None
    }
}

/// The inbound check stages of the SMTP listeners, in order: the connection checks (DNS lists,
/// reverse DNS, HELO, rate limits, greylisting); at the end of data SPF, DKIM, DMARC and ARC (when
/// `smtp.inbound_auth` is on), the attachment, antivirus and phishing checks, then the allow and
/// block lists and the content classifier (when `verdict.enabled` is on), which see what the
/// earlier stages found.
pub fn inbound_checks(
    cfg: &crate::config::Config,
    resolver: Authenticator,
    store: &DynStore,
    directory: &directory::Directory,
) -> Pipeline {
    let mut checks = Pipeline::default();
    checks.push(crate::conncheck::check(
        cfg,
        resolver.clone(),
        store.clone(),
    ));
    if cfg.smtp.inbound_auth {
        checks.push(Arc::new(AuthCheck {
            verifier: Arc::new(MailAuthVerifier {
                auth: resolver,
                hostname: cfg.server.hostname.clone(),
            }),
        }));
    }
    crate::threats::add_checks(&mut checks, cfg, directory);
    for c in crate::content::checks(cfg, store) {
        checks.push(c);
    }
    checks
}

/// SPF, DKIM, DMARC and ARC on the MX path.
pub struct MailAuthVerifier {
    pub auth: Authenticator,
    pub hostname: String,
}

#[async_trait]
impl Verifier for MailAuthVerifier {
    async fn verify(&self, envelope: &Envelope, message: &[u8]) -> InboundVerdict {
        let input = VerifyInput {
            raw: message,
            client_ip: envelope.peer.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            helo: &envelope.helo,
            mail_from: &envelope.from,
            receiver_hostname: &self.hostname,
        };
        let outcome = self.auth.verify_within(&input, VERIFY_BUDGET).await;
        tracing::info!(
            id = %envelope.id,
            spf = outcome.spf.result.as_str(),
            dkim = %outcome.dkim.iter().map(|d| d.result.as_str()).collect::<Vec<_>>().join(" "),
            dmarc = outcome.dmarc.result.as_str(),
            "authentication results"
        );
        let disposition = match outcome.policy {
            DmarcPolicy::Reject => Disposition::Reject(format!(
                "Message rejected: it fails the DMARC policy of {} (p=reject)",
                outcome.dmarc.domain
            )),
            DmarcPolicy::Quarantine => Disposition::Quarantine,
            _ => Disposition::Accept,
        };
        InboundVerdict {
            header: outcome.header,
            disposition,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents() {
        assert_eq!(
            with_parents("a.b.example.com"),
            vec!["a.b.example.com", "b.example.com", "example.com"]
        );
        assert_eq!(with_parents("example.com"), vec!["example.com"]);
    }

    #[test]
    fn selector_names_date_and_algorithm() {
        assert_eq!(
            new_selector(DkimAlgorithm::Rsa, 1_795_824_000),
            "f20261128r"
        );
        assert_eq!(
            new_selector(DkimAlgorithm::Ed25519, 1_795_824_000),
            "f20261128e"
        );
    }
}
