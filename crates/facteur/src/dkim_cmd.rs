//! `facteur dkim generate|list|rotate`: the DKIM signing keys of our domains (stored in the store,
//! so every node of a cluster signs alike), with the DNS TXT record each needs.
//!
//! Rotation in two steps, so no mail is ever signed with a key receivers cannot find yet:
//! `rotate DOMAIN` makes new keys, inactive, and prints their records; once they are published,
//! `rotate DOMAIN --finish` signs with them and retires the old ones (keep the old records in DNS
//! for a few days: mail signed with them may still be in transit).

use mailauth::DkimAlgorithm;
use serde_json::{Value, json};
use store::DkimKeyRecord;

use crate::Failure;
use crate::admin::emit;
use crate::authn;
use crate::cli::{Cli, DkimCmd};
use crate::context::Context;

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

fn key_json(k: &DkimKeyRecord) -> Value {
    json!({
        "domain": k.domain,
        "selector": k.selector,
        "algorithm": k.algorithm,
        "active": k.active,
        "created": k.created,
        "dns_name": format!("{}._domainkey.{}", k.selector, k.domain),
        "dns_txt": authn::txt_record(k).unwrap_or_default(),
    })
}

fn key_text(k: &DkimKeyRecord) -> String {
    format!(
        "{} {} ({}, {})\n  {}._domainkey.{}. TXT \"{}\"",
        k.domain,
        k.selector,
        k.algorithm,
        if k.active { "signing" } else { "not signing" },
        k.selector,
        k.domain,
        authn::txt_record(k).unwrap_or_else(|e| format!("unreadable key: {e}"))
    )
}

async fn known_domain(ctx: &Context, domain: &str) -> Result<String, Failure> {
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    if ctx.store.domain_get(&d).await?.is_none() {
        return Err(Failure::op(format!("{d} is not a domain of this server")));
    }
    Ok(d)
}

pub async fn run(cli: &Cli, cmd: &DkimCmd) -> Result<(), Failure> {
    let ctx = Context::open(cli).await?;
    match cmd {
        DkimCmd::Generate {
            domain,
            algorithm,
            selector,
        } => {
            let domain = known_domain(&ctx, domain).await?;
            let algs = algorithms(algorithm)?;
            if selector.is_some() && algs.len() > 1 {
                return Err(Failure::config(
                    "--selector names one key: give --algorithm rsa or ed25519 with it",
                ));
            }
            let mut made = Vec::new();
            for alg in algs {
                made.push(
                    authn::generate_key(&ctx.store, &domain, alg, selector.as_deref(), true)
                        .await
                        .map_err(Failure::op)?,
                );
            }
            emit(
                cli,
                json!(made.iter().map(key_json).collect::<Vec<_>>()),
                || made.iter().map(key_text).collect::<Vec<_>>().join("\n"),
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
        DkimCmd::Rotate { domain, finish } => {
            let domain = known_domain(&ctx, domain).await?;
            let keys = ctx.store.dkim_keys(Some(&domain)).await?;
            if !finish {
                let mut made = Vec::new();
                for alg in [DkimAlgorithm::Rsa, DkimAlgorithm::Ed25519] {
                    let mut selector = authn::new_selector(alg, store::now_unix());
                    // Two rotations on one day: keep selectors unique.
                    let mut n = 2;
                    while keys.iter().any(|k| k.selector == selector) {
                        selector = format!("{}{n}", authn::new_selector(alg, store::now_unix()));
                        n += 1;
                    }
                    made.push(
                        authn::generate_key(&ctx.store, &domain, alg, Some(&selector), false)
                            .await
                            .map_err(Failure::op)?,
                    );
                }
                emit(
                    cli,
                    json!(made.iter().map(key_json).collect::<Vec<_>>()),
                    || {
                        format!(
                            "New keys (not signing yet). Publish these records, then run \
                         `facteur dkim rotate {domain} --finish`:\n{}",
                            made.iter().map(key_text).collect::<Vec<_>>().join("\n")
                        )
                    },
                );
            } else {
                let newest_inactive: Vec<&DkimKeyRecord> = {
                    let newest = keys.iter().filter(|k| !k.active).map(|k| k.created).max();
                    keys.iter()
                        .filter(|k| !k.active && Some(k.created) == newest)
                        .collect()
                };
                if newest_inactive.is_empty() {
                    return Err(Failure::op(format!(
                        "no new keys for {domain}: run `facteur dkim rotate {domain}` first"
                    )));
                }
                for k in &newest_inactive {
                    ctx.store
                        .dkim_key_set_active(&domain, &k.selector, true)
                        .await?;
                }
                let retired: Vec<String> = keys
                    .iter()
                    .filter(|k| k.active)
                    .map(|k| k.selector.clone())
                    .collect();
                for s in &retired {
                    ctx.store.dkim_key_set_active(&domain, s, false).await?;
                }
                let now_signing: Vec<&str> = newest_inactive
                    .iter()
                    .map(|k| k.selector.as_str())
                    .collect();
                emit(
                    cli,
                    json!({ "domain": domain, "signing": now_signing, "retired": retired }),
                    || {
                        format!(
                            "{domain} now signs with {}; retired {} (keep their DNS records a few days)",
                            now_signing.join(", "),
                            retired.join(", ")
                        )
                    },
                );
            }
        }
    }
    Ok(())
}
