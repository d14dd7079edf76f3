//! `facteur sieve ...`: the Sieve scripts of accounts (`user@domain`) and domains (`domain`):
//! put, get, list, activate, deactivate, delete, rename; `check` a file (errors with line and
//! column) and `test` what a script would do with a message, without a server.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use store::{NewSieveScript, SieveOwner};

use crate::Failure;
use crate::admin::emit;
use crate::cli::{Cli, SieveCmd};
use crate::context::Context;

/// Longest script name (RFC 5804 §1.6 leaves it to the server).
pub const MAX_NAME_LEN: usize = 128;

/// A script name: 1 to 128 characters, no control characters, no `/` (RFC 5804 §1.6).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(format!("script names have 1 to {MAX_NAME_LEN} characters"));
    }
    if name.chars().any(|c| c.is_control() || c == '/') {
        return Err("script names may not contain control characters or '/'".into());
    }
    Ok(())
}

fn read_file(path: &Path) -> Result<Vec<u8>, Failure> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| Failure::op(format!("standard input: {e}")))?;
        return Ok(buf);
    }
    std::fs::read(path).map_err(|e| Failure::op(format!("{}: {e}", path.display())))
}

async fn owner(ctx: &Context, target: &str) -> Result<(SieveOwner, String), Failure> {
    if target.contains('@') {
        let acc = ctx.directory.get_account(target).await?;
        Ok((SieveOwner::Account(acc.id), acc.address()))
    } else {
        let d = target.trim().to_ascii_lowercase();
        match ctx.store.domain_get(&d).await? {
            Some(_) => Ok((SieveOwner::Domain(d.clone()), d)),
            None => Err(Failure::op(format!("domain {d} not found"))),
        }
    }
}

fn engine(ctx: &Context) -> sievefilter::Engine {
    sievefilter::Engine::new(ctx.config.sieve.limits(), &ctx.config.server.hostname)
}

pub async fn run(cli: &Cli, cmd: &SieveCmd) -> Result<(), Failure> {
    if let SieveCmd::Check { file } = cmd {
        let cfg = crate::context::load_config(cli)?;
        let e = sievefilter::Engine::new(cfg.sieve.limits(), &cfg.server.hostname);
        let text = read_file(file)?;
        return match e.compile(&text) {
            Ok(_) => {
                emit(cli, json!({ "ok": true }), || {
                    format!("{}: OK", file.display())
                });
                Ok(())
            }
            Err(err) => {
                if cli.json {
                    println!(
                        "{}",
                        json!({ "ok": false, "line": err.line, "column": err.column, "message": err.message })
                    );
                }
                Err(Failure::config(format!("{}: {err}", file.display())))
            }
        };
    }
    if let SieveCmd::Test {
        file,
        message,
        from,
        to,
    } = cmd
    {
        return test(cli, file, message, from, to).await;
    }
    let ctx = Context::open(cli).await?;
    match cmd {
        SieveCmd::Put {
            target,
            name,
            file,
            activate,
        } => {
            check_name(name).map_err(Failure::config)?;
            let (owner, who) = owner(&ctx, target).await?;
            let text = read_file(file)?;
            let compiled = engine(&ctx)
                .compile(&text)
                .map_err(|e| Failure::config(format!("{}: {e}", file.display())))?;
            ctx.store
                .sieve_put(
                    &NewSieveScript {
                        owner: owner.clone(),
                        name: name.clone(),
                        content: text,
                        compiled: Some(compiled.stored),
                        compiled_format: sievefilter::COMPILED_FORMAT.into(),
                        now: store::now_unix(),
                    },
                    Some(ctx.config.sieve.max_scripts),
                )
                .await?;
            if *activate {
                ctx.store.sieve_activate(&owner, Some(name)).await?;
            }
            emit(
                cli,
                json!({ "target": who, "name": name, "active": activate }),
                || {
                    format!(
                        "script {name:?} stored for {who}{}",
                        if *activate { " and active" } else { "" }
                    )
                },
            );
        }
        SieveCmd::Get { target, name } => {
            let (owner, who) = owner(&ctx, target).await?;
            let s = match name {
                Some(n) => ctx.store.sieve_get(&owner, n).await?,
                None => ctx.store.sieve_active(&owner).await?,
            }
            .ok_or_else(|| Failure::op(format!("no such script for {who}")))?;
            if cli.json {
                println!(
                    "{}",
                    json!({ "target": who, "name": s.name, "active": s.active,
                            "script": String::from_utf8_lossy(&s.content) })
                );
            } else {
                print!("{}", String::from_utf8_lossy(&s.content));
            }
        }
        SieveCmd::List { target } => {
            let (owner, who) = owner(&ctx, target).await?;
            let list = ctx.store.sieve_list(&owner).await?;
            let rows: Vec<_> = list
                .iter()
                .map(|s| json!({ "name": s.name, "size": s.size, "active": s.active }))
                .collect();
            emit(cli, json!({ "target": who, "scripts": rows }), || {
                list.iter()
                    .map(|s| {
                        format!(
                            "{}\t{}\t{}",
                            s.name,
                            s.size,
                            if s.active { "active" } else { "" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        SieveCmd::Activate { target, name } => {
            let (owner, who) = owner(&ctx, target).await?;
            ctx.store.sieve_activate(&owner, Some(name)).await?;
            emit(cli, json!({ "target": who, "active": name }), || {
                format!("script {name:?} is now active for {who}")
            });
        }
        SieveCmd::Deactivate { target } => {
            let (owner, who) = owner(&ctx, target).await?;
            ctx.store.sieve_activate(&owner, None).await?;
            emit(cli, json!({ "target": who, "active": null }), || {
                format!("no script is active for {who}")
            });
        }
        SieveCmd::Delete { target, name } => {
            let (owner, who) = owner(&ctx, target).await?;
            ctx.store.sieve_delete(&owner, name).await?;
            emit(cli, json!({ "target": who, "deleted": name }), || {
                format!("script {name:?} of {who} deleted")
            });
        }
        SieveCmd::Rename { target, from, to } => {
            check_name(to).map_err(Failure::config)?;
            let (owner, who) = owner(&ctx, target).await?;
            ctx.store.sieve_rename(&owner, from, to).await?;
            emit(
                cli,
                json!({ "target": who, "renamed": from, "to": to }),
                || format!("script {from:?} of {who} renamed to {to:?}"),
            );
        }
        SieveCmd::Check { .. } | SieveCmd::Test { .. } => {}
    }
    Ok(())
}

/// Runs `file` over `message` in a throwaway store (nothing of the real one is read or
/// changed) and prints what the script would do.
async fn test(cli: &Cli, file: &Path, message: &Path, from: &str, to: &str) -> Result<(), Failure> {
    let cfg = crate::context::load_config(cli)?;
    let e = sievefilter::Engine::new(cfg.sieve.limits(), &cfg.server.hostname);
    let text = read_file(file)?;
    let compiled = e
        .compile(&text)
        .map_err(|err| Failure::config(format!("{}: {err}", file.display())))?;
    let raw = read_file(message)?;
    let addr = directory::Address::parse(to)
        .map_err(|_| Failure::config(format!("--to {to:?}: not an address")))?;
    let (base, _) = addr.split_plus();
    let dir = tempfile::tempdir()?;
    let st: store::DynStore =
        Arc::new(store::sqlite::Sqlite::open(dir.path(), Default::default())?);
    let d = st
        .domain_create(&addr.domain().to_ascii_lowercase())
        .await?;
    let acc = st
        .account_create(store::NewAccount {
            domain_id: d.id,
            local_part: base.to_ascii_lowercase(),
            display_name: String::new(),
            password_hash: String::new(),
            quota_bytes: None,
            quota_messages: None,
            mailboxes: vec![("INBOX".into(), None)],
        })
        .await?;
    let owner = SieveOwner::Account(acc.id);
    st.sieve_put(
        &NewSieveScript {
            owner: owner.clone(),
            name: "test".into(),
            content: text,
            compiled: Some(compiled.stored),
            compiled_format: sievefilter::COMPILED_FORMAT.into(),
            now: store::now_unix(),
        },
        None,
    )
    .await?;
    st.sieve_activate(&owner, Some("test")).await?;
    let user = acc.address();
    let env = sievefilter::Envelope {
        from,
        to,
        user: &user,
        user_name: "",
    };
    let out = e
        .run(
            &st,
            acc.id,
            &d.name,
            &raw,
            &env,
            sievefilter::Verdict::default(),
        )
        .await;
    let mut actions: Vec<String> = Vec::new();
    if let Some(err) = &out.error {
        actions.push(format!("error: {err} (the message would be kept in INBOX)"));
    }
    for c in &out.copies {
        let folder = c.folder.clone().unwrap_or_else(|| "INBOX".into());
        let mut line = match &c.folder {
            None => "keep".to_string(),
            Some(_) => format!("fileinto {folder:?}"),
        };
        if !c.flags.is_empty() {
            line.push_str(&format!(" flags {}", c.flags.join(" ")));
        }
        if c.message.is_some() {
            line.push_str(" (edited)");
        }
        actions.push(line);
    }
    for (to, _) in &out.redirects {
        actions.push(format!("redirect {to}"));
    }
    for r in &out.replies {
        actions.push(format!("vacation reply to {}", r.to));
    }
    if let Some(r) = &out.reject {
        actions.push(format!(
            "{} {:?}",
            if r.extended { "ereject" } else { "reject" },
            r.reason
        ));
    }
    if out.discarded && out.copies.is_empty() {
        actions.push("discard".into());
    }
    emit(cli, json!({ "actions": actions }), || actions.join("\n"));
    Ok(())
}
