//! `facteur dkim generate|list|activate|remove|rotate`: the DKIM signing keys of our domains (stored
//! in the store, so every node of a cluster signs alike), with the DNS TXT record each needs.
//!
//! A key never signs before its record is in the DNS: a signature receivers cannot verify helps
//! nobody (RFC 6376 §6.1.2, no key means the signature fails) and can hurt under DMARC. So every
//! new key — made at first start, by `domain add`, `dkim generate` or `dkim rotate` — is *pending*;
//! it becomes *active* when its TXT record is seen with the right public key: by `facteur dns DOMAIN
//! --check`, by `facteur dkim activate` (which checks unless `--force`), or by the running server,
//! which looks at pending keys at start and then every hour. `dkim rotate DOMAIN --finish` then
//! *retires* the keys the new ones replace (keep their records a few days: mail signed with them
//! may still be in transit).

use std::sync::Arc;
use std::time::Duration;

use mailauth::{Authenticator, DkimAlgorithm};
use serde_json::{Value, json};
use store::{DkimKeyRecord, DkimKeyState, DynStore};

use crate::Failure;
use crate::admin::emit;
use crate::authn;
use crate::cli::{Cli, DkimCmd};
use crate::context::Context;

/// How often the running server looks for the DNS records of pending keys.
pub const PUBLICATION_CHECK_INTERVAL: Duration = Duration::from_secs(3600);

fn algorithms(choice: &str) -> Result<Vec<DkimAlgorithm>, Failure> {
    match choice {
        "both" => Ok(vec![DkimAlgorithm::Rsa, DkimAlgorithm::Ed25519]),
        "rsa" => Ok(vec![DkimAlgorithm::Rsa]),
        "ed25519" => Ok(vec![DkimAlgorithm::Ed25519]),
        other => Err(Failure::config(format!(
            "unknown algorithm {other:?} (rsa, ed25519 or both)"
        ))),
    }
}

/// The DNS name of a key's record.
pub fn dns_name(k: &DkimKeyRecord) -> String {
    format!("{}._domainkey.{}", k.selector, k.domain)
}

fn state_words(state: DkimKeyState) -> &'static str {
    match state {
        DkimKeyState::Pending => "pending: publish its record; it signs once the record is seen",
        DkimKeyState::Active => "active: signing",
        DkimKeyState::Retired => "retired: no longer signing; remove its record in a few days",
    }
}

pub(crate) fn key_json(k: &DkimKeyRecord) -> Value {
    json!({
        "domain": k.domain,
        "selector": k.selector,
        "algorithm": k.algorithm,
        "state": k.state.as_str(),
        "active": k.state.signs(),
        "created": k.created,
        "dns_name": dns_name(k),
        "dns_txt": authn::txt_record(k).unwrap_or_default(),
    })
}

fn key_text(k: &DkimKeyRecord) -> String {
    let record = match authn::txt_record(k) {
        Ok(txt) => format!(
            "{}. IN TXT {}",
            dns_name(k),
            crate::dns_cmd::zone_rdata("TXT", &txt)
        ),
        Err(e) => format!("unreadable key: {e}"),
    };
    format!(
        "{} {} ({}, {})\n  {record}",
        k.domain,
        k.selector,
        k.algorithm,
        state_words(k.state),
    )
}

async fn known_domain(ctx: &Context, domain: &str) -> Result<String, Failure> {
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    if ctx.store.domain_get(&d).await?.is_none() {
        return Err(Failure::op(format!("{d} is not a domain of this server")));
    }
    Ok(d)
}

/// The `p=` tag of a DKIM key record (RFC 6376 §3.6.1), white space removed.
pub fn public_key_tag(record: &str) -> Option<String> {
    record
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| k.trim() == "p")
        .map(|(_, v)| v.split_ascii_whitespace().collect::<String>())
        .filter(|p| !p.is_empty())
}

/// What the DNS says about a key's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publication {
    /// A record with this key's public key.
    Published,
    /// No DKIM record at the name.
    Missing,
    /// Records, none with this public key.
    Differs(Vec<String>),
    /// The lookup failed (resolver unreachable, timeout, SERVFAIL).
    Unknown(String),
}

/// Looks up the record of `key`.
pub async fn publication(resolver: &Authenticator, key: &DkimKeyRecord) -> Publication {
    let Some(want) = authn::txt_record(key).ok().and_then(|t| public_key_tag(&t)) else {
        return Publication::Unknown("the stored key is unreadable".into());
    };
    match resolver.txt(&dns_name(key)).await {
        Err(e) => Publication::Unknown(e.to_string()),
        Ok(all) => {
            let found: Vec<String> = all
                .into_iter()
                .filter(|t| t.to_ascii_lowercase().contains("p="))
                .collect();
            if found
                .iter()
                .any(|t| public_key_tag(t).as_deref() == Some(want.as_str()))
            {
                Publication::Published
            } else if found.is_empty() {
                Publication::Missing
            } else {
                Publication::Differs(found)
            }
        }
    }
}

/// Activates the pending keys of `domain` (or of every domain) whose record is published; returns
/// them.
pub async fn activate_published(
    store: &DynStore,
    resolver: &Authenticator,
    domain: Option<&str>,
) -> Result<Vec<DkimKeyRecord>, store::StoreError> {
    let mut activated = Vec::new();
    for k in store.dkim_keys(domain).await? {
        if k.state != DkimKeyState::Pending {
            continue;
        }
        if publication(resolver, &k).await == Publication::Published {
            store
                .dkim_key_set_state(&k.domain, &k.selector, DkimKeyState::Active)
                .await?;
            tracing::info!(domain = %k.domain, selector = %k.selector, "DKIM key published in the DNS: signing with it from now on");
            activated.push(DkimKeyRecord {
                state: DkimKeyState::Active,
                ..k
            });
        }
    }
    Ok(activated)
}

/// The running server's watch: at start and every [`PUBLICATION_CHECK_INTERVAL`], pending keys
/// whose records have appeared in the DNS start signing.
pub fn start_publication_watch(ctx: &Context, resolver: Authenticator) {
    let store = ctx.store.clone();
    let resolver = Arc::new(resolver);
    tokio::spawn(async move {
        loop {
            match activate_published(&store, &resolver, None).await {
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "DKIM publication check failed"),
            }
            tokio::time::sleep(PUBLICATION_CHECK_INTERVAL).await;
        }
    });
}

/// A selector not used yet by `domain`: the default one, with a counter on a second use the same
/// day.
fn unused_selector(keys: &[DkimKeyRecord], alg: DkimAlgorithm) -> String {
    let base = authn::new_selector(alg, store::now_unix());
    let mut selector = base.clone();
    let mut n = 2;
    while keys.iter().any(|k| k.selector == selector) {
        selector = format!("{base}{n}");
        n += 1;
    }
    selector
}

fn published_words(p: &Publication) -> String {
    match p {
        Publication::Published => "published".into(),
        Publication::Missing => "no record in the DNS yet".into(),
        Publication::Differs(found) => {
            format!("the DNS has another key there ({})", found.join(" | "))
        }
        Publication::Unknown(e) => format!("could not look it up: {e}"),
    }
}

pub async fn run(cli: &Cli, cmd: &DkimCmd) -> Result<(), Failure> {
    let ctx = Context::open(cli).await?;
    match cmd {
        DkimCmd::Generate {
            domain,
            algorithm,
            selector,
            replace,
        } => {
            let domain = known_domain(&ctx, domain).await?;
            let algs = algorithms(algorithm)?;
            if selector.is_some() && algs.len() > 1 {
                return Err(Failure::config(
                    "--selector names one key: give --algorithm rsa or ed25519 with it",
                ));
            }
            let keys = ctx.store.dkim_keys(Some(&domain)).await?;
            if let Some(s) = selector
                && let Some(existing) = keys.iter().find(|k| &k.selector == s)
                && !replace
            {
                return Err(Failure::op(format!(
                    "{domain} already has a key with selector {s} ({}); choose another selector, \
                     or give --replace to replace it (mail signed with the old key will fail \
                     verification once the DNS has the new one)",
                    existing.state
                )));
            }
            let mut made = Vec::new();
            for alg in algs {
                let sel = match selector {
                    Some(s) => s.clone(),
                    None => unused_selector(&keys, alg),
                };
                made.push(
                    authn::generate_key(
                        &ctx.store,
                        &domain,
                        alg,
                        Some(&sel),
                        DkimKeyState::Pending,
                    )
                    .await
                    .map_err(Failure::op)?,
                );
            }
            emit(
                cli,
                json!(made.iter().map(key_json).collect::<Vec<_>>()),
                || {
                    format!(
                        "{}\nPublish the record(s), then run `facteur dns {domain} --check` \
                         (or wait: the server checks every hour).",
                        made.iter().map(key_text).collect::<Vec<_>>().join("\n")
                    )
                },
            );
        }
        DkimCmd::List { domain } => {
            let filter = match domain {
                Some(d) => Some(known_domain(&ctx, d).await?),
                None => None,
            };
            let keys = ctx.store.dkim_keys(filter.as_deref()).await?;
            emit(
                cli,
                json!(keys.iter().map(key_json).collect::<Vec<_>>()),
                || {
                    if keys.is_empty() {
                        "No DKIM keys.".to_string()
                    } else {
                        keys.iter().map(key_text).collect::<Vec<_>>().join("\n")
                    }
                },
            );
        }
        DkimCmd::Activate {
            domain,
            selector,
            force,
        } => {
            let domain = known_domain(&ctx, domain).await?;
            let keys = ctx.store.dkim_keys(Some(&domain)).await?;
            let chosen: Vec<&DkimKeyRecord> = match selector {
                Some(s) => vec![keys.iter().find(|k| &k.selector == s).ok_or_else(|| {
                    Failure::op(format!("{domain} has no DKIM key with selector {s}"))
                })?],
                None => keys
                    .iter()
                    .filter(|k| k.state == DkimKeyState::Pending)
                    .collect(),
            };
            if chosen.is_empty() {
                // Already done (by an earlier `dkim activate`, `dns --check` or the server's own
                // check): nothing to do is not a failure, as long as something signs.
                let active: Vec<String> = keys
                    .iter()
                    .filter(|k| k.state == DkimKeyState::Active)
                    .map(|k| k.selector.clone())
                    .collect();
                if active.is_empty() {
                    return Err(Failure::op(format!(
                        "{domain} has no pending DKIM key and none active (make one: facteur dkim generate {domain})"
                    )));
                }
                emit(
                    cli,
                    json!({ "domain": domain, "activated": active, "refused": [] }),
                    || {
                        format!(
                            "{domain}: no pending key; active already: {}",
                            active.join(", ")
                        )
                    },
                );
                return Ok(());
            }
            let resolver = if *force {
                None
            } else {
                Some(crate::dns_cmd::check_resolver(&ctx.config)?)
            };
            let mut activated = Vec::new();
            let mut refused = Vec::new();
            for k in chosen {
                if k.state == DkimKeyState::Active {
                    activated.push(k.selector.clone());
                    continue;
                }
                if let Some(r) = &resolver {
                    let p = publication(r, k).await;
                    if p != Publication::Published {
                        refused.push(format!("{}: {}", dns_name(k), published_words(&p)));
                        continue;
                    }
                }
                ctx.store
                    .dkim_key_set_state(&domain, &k.selector, DkimKeyState::Active)
                    .await?;
                activated.push(k.selector.clone());
            }
            emit(
                cli,
                json!({ "domain": domain, "activated": activated, "refused": refused }),
                || {
                    let mut s = String::new();
                    if !activated.is_empty() {
                        s.push_str(&format!(
                            "{domain} signs with {} (within a minute in the running server)",
                            activated.join(", ")
                        ));
                    }
                    s
                },
            );
            if !refused.is_empty() {
                return Err(Failure::op(format!(
                    "not activated, its record is not in the DNS as it should be (publish it, or \
                     give --force to sign before the DNS has it):\n  {}",
                    refused.join("\n  ")
                )));
            }
        }
        DkimCmd::Remove {
            domain,
            selector,
            force,
        } => {
            let domain = known_domain(&ctx, domain).await?;
            let keys = ctx.store.dkim_keys(Some(&domain)).await?;
            let key = keys
                .iter()
                .find(|k| &k.selector == selector)
                .ok_or_else(|| {
                    Failure::op(format!("{domain} has no DKIM key with selector {selector}"))
                })?;
            let other_active = keys
                .iter()
                .any(|k| k.selector != key.selector && k.state.signs());
            if key.state.signs() && !other_active && !force {
                return Err(Failure::op(format!(
                    "{selector} is the last key signing for {domain}: without it, mail from \
                     {domain} goes out unsigned and fails DMARC where DKIM is needed. Rotate first \
                     (`facteur dkim rotate {domain}`), or give --force to remove it anyway"
                )));
            }
            ctx.store.dkim_key_delete(&domain, selector).await?;
            emit(
                cli,
                json!({ "domain": domain, "selector": selector, "removed": true }),
                || {
                    format!(
                        "DKIM key {selector} of {domain} removed; its DNS record {}. can go too",
                        dns_name(key)
                    )
                },
            );
        }
        DkimCmd::Rotate {
            domain,
            finish,
            force,
        } => {
            let domain = known_domain(&ctx, domain).await?;
            if *finish {
                finish_rotation(cli, &ctx, &domain, *force).await?;
            } else {
                let keys = ctx.store.dkim_keys(Some(&domain)).await?;
                let mut made = Vec::new();
                for alg in [DkimAlgorithm::Rsa, DkimAlgorithm::Ed25519] {
                    let selector = unused_selector(&keys, alg);
                    made.push(
                        authn::generate_key(
                            &ctx.store,
                            &domain,
                            alg,
                            Some(&selector),
                            DkimKeyState::Pending,
                        )
                        .await
                        .map_err(Failure::op)?,
                    );
                }
                emit(
                    cli,
                    json!(made.iter().map(key_json).collect::<Vec<_>>()),
                    || {
                        format!(
                            "New keys, pending. Publish these records; they sign once the DNS has \
                             them (`facteur dns {domain} --check`, or the server's hourly check). \
                             Then run `facteur dkim rotate {domain} --finish` to retire the old \
                             keys:\n{}",
                            made.iter().map(key_text).collect::<Vec<_>>().join("\n")
                        )
                    },
                );
            }
        }
    }
    Ok(())
}

/// `rotate --finish`: for each algorithm, the newest key that is not retired signs (checked in the
/// DNS first unless `force`), and every other active key is retired.
async fn finish_rotation(
    cli: &Cli,
    ctx: &Context,
    domain: &str,
    force: bool,
) -> Result<(), Failure> {
    let keys = ctx.store.dkim_keys(Some(domain)).await?;
    let mut new: Vec<&DkimKeyRecord> = Vec::new();
    for k in keys.iter().filter(|k| k.state != DkimKeyState::Retired) {
        match new.iter_mut().find(|n| n.algorithm == k.algorithm) {
            // Oldest first: a later key of the same algorithm is newer.
            Some(n) => *n = k,
            None => new.push(k),
        }
    }
    let old_active: Vec<&DkimKeyRecord> = keys
        .iter()
        .filter(|k| k.state.signs() && !new.iter().any(|n| n.selector == k.selector))
        .collect();
    if old_active.is_empty() && new.iter().all(|k| k.state.signs()) {
        return Err(Failure::op(format!(
            "no rotation in progress for {domain}: run `facteur dkim rotate {domain}` first"
        )));
    }
    let pending: Vec<&&DkimKeyRecord> = new
        .iter()
        .filter(|k| k.state == DkimKeyState::Pending)
        .collect();
    if !pending.is_empty() && !force {
        let resolver = crate::dns_cmd::check_resolver(&ctx.config)?;
        let mut missing = Vec::new();
        for k in &pending {
            let p = publication(&resolver, k).await;
            if p != Publication::Published {
                missing.push(format!("{}: {}", dns_name(k), published_words(&p)));
            }
        }
        if !missing.is_empty() {
            return Err(Failure::op(format!(
                "the new keys are not in the DNS yet, so retiring the old ones would leave mail \
                 unverifiable (publish them, or give --force):\n  {}",
                missing.join("\n  ")
            )));
        }
    }
    for k in &new {
        if !k.state.signs() {
            ctx.store
                .dkim_key_set_state(domain, &k.selector, DkimKeyState::Active)
                .await?;
        }
    }
    for k in &old_active {
        ctx.store
            .dkim_key_set_state(domain, &k.selector, DkimKeyState::Retired)
            .await?;
    }
    let now_signing: Vec<&str> = new.iter().map(|k| k.selector.as_str()).collect();
    let retired: Vec<&str> = old_active.iter().map(|k| k.selector.as_str()).collect();
    emit(
        cli,
        json!({ "domain": domain, "signing": now_signing, "retired": retired }),
        || {
            format!(
                "{domain} now signs with {}; retired {} (keep their DNS records a few days, then \
                 `facteur dkim remove {domain} SELECTOR`)",
                now_signing.join(", "),
                if retired.is_empty() {
                    "none".to_string()
                } else {
                    retired.join(", ")
                }
            )
        },
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_key_tags() {
        assert_eq!(
            public_key_tag("v=DKIM1; k=rsa; p=MIIB AQAB").as_deref(),
            Some("MIIBAQAB")
        );
        assert_eq!(public_key_tag("v=DKIM1; p="), None);
        assert_eq!(public_key_tag("v=DKIM1; k=ed25519"), None);
    }
}
