//! Admin commands (`facteur domain|account|alias|auth|check-store`). They open the data folder
//! directly, so they work while the server runs (the store is multi-process safe).

use std::io::Read;

use serde_json::{Value, json};

use crate::Failure;
use crate::cli::{AccountCmd, AliasCmd, AuthCmd, Cli, DomainCmd};
use crate::context::Context;

/// Longest password accepted on standard input.
const MAX_PASSWORD_INPUT: u64 = 4096;

pub(crate) fn emit(cli: &Cli, value: Value, text: impl FnOnce() -> String) {
    if cli.json {
        println!("{value}");
    } else {
        let t = text();
        if !t.is_empty() {
            println!("{t}");
        }
    }
}

/// Parses a size such as `500M`, `2G`, `1024`, `10k`; `none`/`unlimited` mean no limit.
pub fn parse_size(s: &str) -> Result<Option<u64>, Failure> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("none") || t.eq_ignore_ascii_case("unlimited") {
        return Ok(None);
    }
    let bad = || {
        Failure::config(format!(
            "invalid size {s:?} (examples: 500M, 2G, 1048576, none)"
        ))
    };
    let (digits, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(bad()),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let n: u64 = digits.trim().parse().map_err(|_| bad())?;
    n.checked_mul(mult).map(Some).ok_or_else(bad)
}

fn read_password_stdin() -> Result<String, Failure> {
    let mut buf = String::new();
    std::io::stdin()
        .take(MAX_PASSWORD_INPUT)
        .read_to_string(&mut buf)
        .map_err(|e| Failure::op(format!("cannot read the password from standard input: {e}")))?;
    let pw = buf.trim_end_matches(['\r', '\n']).to_string();
    if pw.is_empty() {
        return Err(Failure::config("no password on standard input"));
    }
    Ok(pw)
}

fn account_json(a: &store::AccountRecord, usage: Option<store::QuotaUsage>) -> Value {
    // Never the password hash.
    let mut v = json!({
        "address": a.address(),
        "display_name": a.display_name,
        "quota_bytes": a.quota_bytes,
        "quota_messages": a.quota_messages,
        "enabled": a.enabled,
        "created": a.created,
    });
    if let Some(u) = usage {
        v["used_bytes"] = json!(u.bytes);
        v["used_messages"] = json!(u.messages);
    }
    v
}

fn human(bytes: Option<u64>) -> String {
    match bytes {
        None => "unlimited".into(),
        Some(b) if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{}G", b >> 30),
        Some(b) if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{}M", b >> 20),
        Some(b) => format!("{b}"),
    }
}

pub async fn domain(cli: &Cli, cmd: &DomainCmd) -> Result<(), Failure> {
    let ctx = Context::open(cli).await?;
    let dir = &ctx.directory;
    match cmd {
        DomainCmd::Add { name } => {
            let d = dir.add_domain(name).await?;
            let keys = crate::authn::ensure_keys(&ctx.store, &d.name)
                .await
                .map_err(|e| Failure::op(format!("domain added, but DKIM keys failed: {e}")))?;
            let selectors: Vec<&str> = keys.iter().map(|k| k.selector.as_str()).collect();
            emit(
                cli,
                json!({ "domain": d.name, "created": true, "dkim_selectors": selectors }),
                || {
                    format!(
                        "domain {} added (DKIM keys {}); the DNS records to publish: facteur dns {}",
                        d.name,
                        selectors.join(", "),
                        d.name
                    )
                },
            );
        }
        DomainCmd::List => {
            let list = dir.list_domains().await?;
            let v: Vec<Value> = list
                .iter()
                .map(|d| json!({ "domain": d.name, "catchall": d.catchall }))
                .collect();
            emit(cli, Value::Array(v), || {
                list.iter()
                    .map(|d| match &d.catchall {
                        Some(c) => format!("{}\tcatch-all -> {c}", d.name),
                        None => d.name.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        DomainCmd::Remove { name, force } => {
            dir.remove_domain(name, *force).await?;
            emit(cli, json!({ "domain": name, "removed": true }), || {
                format!("domain {name} removed")
            });
        }
        DomainCmd::Catchall { domain, target } => {
            dir.set_catchall(domain, target.as_deref()).await?;
            emit(
                cli,
                json!({ "domain": domain, "catchall": target }),
                || match target {
                    Some(t) => format!("catch-all of {domain} -> {t}"),
                    None => format!("catch-all of {domain} removed"),
                },
            );
        }
    }
    Ok(())
}

pub async fn account(cli: &Cli, cmd: &AccountCmd) -> Result<(), Failure> {
    let ctx = Context::open(cli).await?;
    let dir = &ctx.directory;
    match cmd {
        AccountCmd::Add {
            address,
            name,
            quota,
            password_stdin,
        } => {
            let quota = match quota {
                Some(q) => parse_size(q)?,
                None => None,
            };
            let given = if *password_stdin {
                Some(read_password_stdin()?)
            } else {
                None
            };
            let (acc, generated) = dir
                .add_account(address, given.as_deref(), name, quota)
                .await?;
            let mut v = account_json(&acc, None);
            if let Some(p) = &generated {
                v["password"] = json!(p);
            }
            emit(cli, v, || match &generated {
                Some(p) => format!(
                    "account {} added\npassword (shown only this once): {p}",
                    acc.address()
                ),
                None => format!("account {} added", acc.address()),
            });
        }
        AccountCmd::List { domain } => {
            let list = dir.list_accounts(domain.as_deref()).await?;
            let mut rows = Vec::new();
            for a in &list {
                let usage = ctx.store.quota_usage(a.id).await?;
                rows.push((a, usage));
            }
            let v: Vec<Value> = rows
                .iter()
                .map(|(a, u)| account_json(a, Some(*u)))
                .collect();
            emit(cli, Value::Array(v), || {
                rows.iter()
                    .map(|(a, u)| {
                        format!(
                            "{}\t{}\tused {} of {}{}",
                            a.address(),
                            a.display_name,
                            u.bytes,
                            human(a.quota_bytes),
                            if a.enabled { "" } else { "\tdisabled" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        AccountCmd::Passwd {
            address,
            password_stdin,
        } => {
            let (pw, generated) = if *password_stdin {
                (read_password_stdin()?, false)
            } else {
                (directory::generate_password(), true)
            };
            dir.set_password(address, &pw).await?;
            let mut v = json!({ "address": address, "password_changed": true });
            if generated {
                v["password"] = json!(pw);
            }
            emit(cli, v, || {
                if generated {
                    format!(
                        "password of {address} changed\nnew password (shown only this once): {pw}"
                    )
                } else {
                    format!("password of {address} changed")
                }
            });
        }
        AccountCmd::Quota { address, quota } => {
            let bytes = parse_size(quota)?;
            dir.set_quota(address, bytes, None).await?;
            emit(
                cli,
                json!({ "address": address, "quota_bytes": bytes }),
                || format!("quota of {address} set to {}", human(bytes)),
            );
        }
        AccountCmd::Disable { address } | AccountCmd::Enable { address } => {
            let enable = matches!(cmd, AccountCmd::Enable { .. });
            dir.set_enabled(address, enable).await?;
            emit(
                cli,
                json!({ "address": address, "enabled": enable }),
                || {
                    format!(
                        "account {address} {}",
                        if enable { "enabled" } else { "disabled" }
                    )
                },
            );
        }
        AccountCmd::SendAs {
            address,
            action,
            target,
        } => crate::send_as_cmd::run(cli, &ctx, address, *action, target.as_deref()).await?,
        AccountCmd::Remove { address } => {
            dir.remove_account(address).await?;
            emit(cli, json!({ "address": address, "removed": true }), || {
                format!("account {address} removed")
            });
        }
    }
    Ok(())
}

pub async fn alias(cli: &Cli, cmd: &AliasCmd) -> Result<(), Failure> {
    let ctx = Context::open(cli).await?;
    let dir = &ctx.directory;
    match cmd {
        AliasCmd::Add { address, targets } => {
            let a = dir.add_alias(address, targets.clone()).await?;
            let addr = format!("{}@{}", a.local_part, a.domain);
            emit(cli, json!({ "alias": addr, "targets": a.targets }), || {
                format!("alias {addr} -> {}", a.targets.join(", "))
            });
        }
        AliasCmd::List { domain } => {
            let list = dir.list_aliases(domain.as_deref()).await?;
            let v: Vec<Value> = list
                .iter()
                .map(|a| json!({ "alias": format!("{}@{}", a.local_part, a.domain), "targets": a.targets }))
                .collect();
            emit(cli, Value::Array(v), || {
                list.iter()
                    .map(|a| format!("{}@{}\t{}", a.local_part, a.domain, a.targets.join(", ")))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        AliasCmd::Remove { address } => {
            dir.remove_alias(address).await?;
            emit(cli, json!({ "alias": address, "removed": true }), || {
                format!("alias {address} removed")
            });
        }
    }
    Ok(())
}

pub async fn auth(cli: &Cli, cmd: &AuthCmd) -> Result<(), Failure> {
    let ctx = Context::open(cli).await?;
    match cmd {
        AuthCmd::Test { address } => {
            let pw = read_password_stdin()?;
            match ctx.directory.authenticate(address, &pw).await {
                Ok(acc) => {
                    emit(cli, json!({ "address": acc.address(), "ok": true }), || {
                        format!("{}: password OK", acc.address())
                    });
                    Ok(())
                }
                Err(e) => Err(Failure::op(format!("authentication failed: {e}"))),
            }
        }
    }
}

pub async fn check_store(cli: &Cli) -> Result<(), Failure> {
    let ctx = Context::open(cli).await?;
    let report = ctx.store.check_integrity().await?;
    let ok = report.problems.is_empty();
    emit(
        cli,
        json!({ "ok": ok, "messages": report.messages, "blobs": report.blobs, "orphan_files": report.orphan_files, "problems": report.problems }),
        || {
            let mut s = format!(
                "{} messages, {} blobs, {} orphan blob files\n",
                report.messages, report.blobs, report.orphan_files
            );
            if ok {
                s.push_str("store OK");
            } else {
                for p in &report.problems {
                    s.push_str(&format!("problem: {p}\n"));
                }
            }
            s
        },
    );
    if ok {
        Ok(())
    } else {
        Err(Failure::op(format!(
            "{} integrity problem(s)",
            report.problems.len()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024").ok().flatten(), Some(1024));
        assert_eq!(parse_size("500M").ok().flatten(), Some(500 << 20));
        assert_eq!(parse_size("2g").ok().flatten(), Some(2 << 30));
        assert_eq!(parse_size("none").ok(), Some(None));
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
