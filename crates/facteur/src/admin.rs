//! Admin commands (`facteur domain|account|alias|auth|check-store`). They open the data folder
//! directly, so they work while the server runs (the store is multi-process safe).

use std::io::{IsTerminal, Read};

use directory::{Address, DirectoryError};
use serde_json::{Value, json};

use crate::Failure;
use crate::cli::{AccountCmd, AliasCmd, AuthCmd, Cli, DomainCmd};
use crate::context::Context;

/// Longest password accepted on standard input.
const MAX_PASSWORD_INPUT: u64 = 4096;
/// Tries at a password prompt (mismatch, too weak) before giving up.
const MAX_PROMPT_ATTEMPTS: usize = 3;
/// What a quota without limit is called, in output and (with "none") in input.
pub const UNLIMITED: &str = "unlimited";

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

/// Parses a quota such as `500M`, `2G`, `1024`, `10k` (see [`crate::config::parse_size`]);
/// `unlimited` or `none` mean no limit.
pub fn parse_size(s: &str) -> Result<Option<u64>, Failure> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("none") || t.eq_ignore_ascii_case(UNLIMITED) {
        return Ok(None);
    }
    crate::config::parse_size(t)
        .map(Some)
        .map_err(|e| Failure::config(format!("invalid quota {s:?}: {e} (or \"{UNLIMITED}\")")))
}

/// A size for people: bytes below 1 KiB, else binary units with one decimal ("12.3 MiB",
/// "500 MiB").
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let text = format!("{value:.1}");
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{text} {}", UNITS[unit])
}

/// The one way quotas are shown: "12.3 MiB of 500 MiB (2%)", "12.3 MiB of unlimited"; a limit
/// alone ("500 MiB", "unlimited") when the usage is not known.
pub fn format_quota(used: Option<u64>, limit: Option<u64>) -> String {
    match (used, limit) {
        (None, None) => UNLIMITED.to_string(),
        (None, Some(l)) => format_bytes(l),
        (Some(u), None) => format!("{} of {UNLIMITED}", format_bytes(u)),
        (Some(u), Some(l)) => {
            let percent = if l == 0 {
                100
            } else {
                (u as u128 * 100 / l as u128) as u64
            };
            format!("{} of {} ({percent}%)", format_bytes(u), format_bytes(l))
        }
    }
}

/// Asks for a new password twice without echo, until both agree and `check` accepts it (it
/// explains a refusal).
fn prompt_new_password(
    what: &str,
    check: impl Fn(&str) -> Result<(), DirectoryError>,
) -> Result<String, Failure> {
    for _ in 0..MAX_PROMPT_ATTEMPTS {
        let first = rpassword::prompt_password(format!("New password for {what}: "))
            .map_err(|e| Failure::op(format!("cannot read the password: {e}")))?;
        if let Err(e) = check(&first) {
            eprintln!("{e}");
            continue;
        }
        let again = rpassword::prompt_password("Again: ")
            .map_err(|e| Failure::op(format!("cannot read the password: {e}")))?;
        if again != first {
            eprintln!("The two passwords differ.");
            continue;
        }
        return Ok(first);
    }
    Err(Failure::op("no password set"))
}

/// A new password given by the admin: asked twice without echo on a terminal, else read from
/// standard input.
fn given_password(
    what: &str,
    check: impl Fn(&str) -> Result<(), DirectoryError>,
) -> Result<String, Failure> {
    if std::io::stdin().is_terminal() {
        prompt_new_password(what, check)
    } else {
        read_password_stdin()
    }
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
                        "domain {} added (DKIM keys {}, signing once their DNS records are seen); \
                         the DNS records to publish: facteur dns {}",
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
            dir.remove_domain(name, *force).await.map_err(|e| match e {
                DirectoryError::DomainNotEmpty { domain, accounts } => Failure::op(format!(
                    "domain {domain} still has {accounts} account(s): remove them first, or run \
                     `facteur domain remove {domain} --force`, which deletes those accounts with \
                     all their mail, and the domain's aliases"
                )),
                other => Failure::from(other),
            })?;
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
            generate: _,
        } => {
            let quota = match quota {
                Some(q) => parse_size(q)?,
                None => None,
            };
            // Generated unless given: what an admin creating accounts for staff hands out.
            let given = if *password_stdin {
                let addr = Address::parse(address)?;
                Some(given_password(address, |p| {
                    dir.check_password(&addr, name, p)
                })?)
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
            emit(cli, v, || {
                let mut t = format!(
                    "account {} added (quota {})",
                    acc.address(),
                    format_quota(None, acc.quota_bytes)
                );
                if let Some(p) = &generated {
                    t.push_str(&format!("\npassword (shown only this once): {p}"));
                }
                t
            });
        }
        AccountCmd::List { domain } => {
            // An unknown domain is an error, not an empty list (a typo must not look like "no
            // accounts").
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
                            "{}\t{}\t{}{}",
                            a.address(),
                            a.display_name,
                            format_quota(Some(u.bytes), a.quota_bytes),
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
            generate,
        } => {
            let (pw, generated) = if *generate {
                (dir.generate_password_for_account(address).await?, true)
            } else {
                if !*password_stdin && !std::io::stdin().is_terminal() {
                    return Err(Failure::config(
                        "no password given: run it in a terminal to be asked, or give \
                         --password-stdin (read from standard input) or --generate (a random \
                         one, printed)",
                    ));
                }
                let account = dir.get_account(address).await?;
                let addr = Address::parse(&account.address())?;
                let pw = given_password(address, |p| {
                    dir.check_password(&addr, &account.display_name, p)
                })?;
                (pw, false)
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
                || format!("quota of {address} set to {}", format_quota(None, bytes)),
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
        AuthCmd::Test { address, from } => {
            let pw = if std::io::stdin().is_terminal() {
                rpassword::prompt_password(format!("Password for {address}: "))
                    .map_err(|e| Failure::op(format!("cannot read the password: {e}")))?
            } else {
                read_password_stdin()?
            };
            let source =
                match from {
                    Some(ip) => Some(net::throttle::Source::parse(ip).ok_or_else(|| {
                        Failure::config(format!("--from {ip}: not an IP address"))
                    })?),
                    None => None,
                };
            // What the protocols would not say: the account is disabled, or a ban applies.
            let key = ctx.directory.login_key(address);
            let now = store::now_unix();
            let bans: Vec<_> = ctx
                .store
                .bans_active(now)
                .await?
                .into_iter()
                .filter(|b| {
                    b.account.as_deref() == Some(key.as_str())
                        || (b.source.is_some() && b.source == source.map(|s| s.to_string()))
                })
                .collect();
            let mut problems: Vec<String> = bans
                .iter()
                .map(|b| crate::ban_cmd::describe(b, now))
                .collect();
            if let Ok(acc) = ctx.directory.get_account(&key).await
                && !acc.enabled
            {
                // The protocols answer a disabled account like a wrong password (no oracle);
                // the admin is told.
                problems.insert(
                    0,
                    format!("account disabled (enable it with `facteur account enable {key}`)"),
                );
            }
            let verdict = match ctx.directory.authenticate(address, &pw).await {
                Ok(acc) if problems.is_empty() => {
                    emit(
                        cli,
                        json!({ "address": acc.address(), "ok": true, "bans": [] }),
                        || format!("{}: password OK", acc.address()),
                    );
                    return Ok(());
                }
                Ok(_) => "password OK, but the login would be refused",
                Err(directory::AuthError::Unavailable(e)) => {
                    return Err(Failure::op(format!("authentication unavailable: {e}")));
                }
                Err(_) => "authentication failed",
            };
            let mut msg = format!("{key}: {verdict}");
            for p in problems {
                msg.push_str(&format!("\n  - {p}"));
            }
            Err(Failure::op(msg))
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
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024").ok().flatten(), Some(1024));
        assert_eq!(parse_size("500M").ok().flatten(), Some(500 << 20));
        assert_eq!(parse_size("2g").ok().flatten(), Some(2 << 30));
        assert_eq!(parse_size("none").ok(), Some(None));
        assert_eq!(parse_size("Unlimited").ok(), Some(None));
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn quotas_print_one_way() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(1023), "1023 B");
        assert_eq!(format_bytes(1024), "1 KiB");
        assert_eq!(format_bytes(500 << 20), "500 MiB");
        assert_eq!(format_bytes(12_900_000), "12.3 MiB");
        assert_eq!(format_bytes(2 << 30), "2 GiB");
        assert_eq!(
            format_quota(Some(12_900_000), Some(500 << 20)),
            "12.3 MiB of 500 MiB (2%)"
        );
        assert_eq!(format_quota(Some(0), None), "0 B of unlimited");
        assert_eq!(format_quota(None, None), "unlimited");
        assert_eq!(format_quota(None, Some(1 << 30)), "1 GiB");
        assert_eq!(format_quota(Some(5), Some(0)), "5 B of 0 B (100%)");
        assert_eq!(format_bytes(u64::MAX), "16384 PiB");
        assert!(format_quota(Some(u64::MAX), Some(u64::MAX)).ends_with("(100%)"));
    }
}
