//! `facteur spam allow|block add|remove|list`: the allow and block lists of a domain
//! (`--domain`) or an account (`--account`). Entries are a sender address, a sender domain
//! (`@example.com`, with its subdomains) or a client IP address or CIDR block. A running server
//! reads the lists from the store for each message, so a change counts at once.

use filter::lists::Pattern;
use serde_json::{Value, json};
use store::{ListEntry, ListKind, ListScope};

use crate::Failure;
use crate::admin::emit;
use crate::cli::{Cli, ListCmd};
use crate::context::Context;

async fn scope(
    ctx: &Context,
    domain: &Option<String>,
    account: &Option<String>,
) -> Result<Option<(ListScope, String)>, Failure> {
    match (domain, account) {
        (Some(_), Some(_)) => Err(Failure::config("give --domain or --account, not both")),
        (Some(d), None) => {
            let d = d.trim().trim_start_matches('@').to_ascii_lowercase();
            if ctx.store.domain_get(&d).await?.is_none() {
                return Err(Failure::op(format!("no domain {d}")));
            }
            Ok(Some((ListScope::Domain(d.clone()), d)))
        }
        (None, Some(a)) => {
            let acc = ctx.directory.get_account(a).await?;
            Ok(Some((ListScope::Account(acc.id), acc.address())))
        }
        (None, None) => Ok(None),
    }
}

fn entry_json(e: &ListEntry, owner: &str) -> Value {
    json!({
        "owner": owner,
        "list": e.kind.as_str(),
        "pattern": e.pattern,
        "created": e.created,
    })
}

pub async fn run(cli: &Cli, kind: ListKind, cmd: &ListCmd) -> Result<(), Failure> {
    let ctx = Context::open(cli).await?;
    let name = kind.as_str();
    match cmd {
        ListCmd::Add {
            pattern,
            domain,
            account,
        }
        | ListCmd::Remove {
            pattern,
            domain,
            account,
        } => {
            let Some((scope, owner)) = scope(&ctx, domain, account).await? else {
                return Err(Failure::config("give --domain DOMAIN or --account ADDRESS"));
            };
            let p = Pattern::parse(pattern)
                .map_err(|e| Failure::config(format!("{pattern:?}: {e}")))?
                .canonical();
            if matches!(cmd, ListCmd::Add { .. }) {
                ctx.store.list_add(&scope, kind, &p).await?;
                emit(
                    cli,
                    json!({ "owner": owner, "list": name, "added": p }),
                    || format!("{p} added to the {name} list of {owner}"),
                );
            } else {
                ctx.store.list_remove(&scope, kind, &p).await?;
                emit(
                    cli,
                    json!({ "owner": owner, "list": name, "removed": p }),
                    || format!("{p} removed from the {name} list of {owner}"),
                );
            }
        }
        ListCmd::List { domain, account } => {
            // Owners to show: the one asked for, or every domain and account.
            let owners: Vec<(ListScope, String)> = match scope(&ctx, domain, account).await? {
                Some(s) => vec![s],
                None => {
                    let mut v: Vec<(ListScope, String)> = ctx
                        .store
                        .domain_list()
                        .await?
                        .into_iter()
                        .map(|d| (ListScope::Domain(d.name.clone()), d.name))
                        .collect();
                    for a in ctx.store.account_list(None).await? {
                        v.push((ListScope::Account(a.id), a.address()));
                    }
                    v
                }
            };
            let scopes: Vec<ListScope> = owners.iter().map(|(s, _)| s.clone()).collect();
            let entries: Vec<(ListEntry, String)> = ctx
                .store
                .list_entries(&scopes)
                .await?
                .into_iter()
                .filter(|e| e.kind == kind)
                .map(|e| {
                    let owner = owners
                        .iter()
                        .find(|(s, _)| *s == e.scope)
                        .map(|(_, o)| o.clone())
                        .unwrap_or_default();
                    (e, owner)
                })
                .collect();
            emit(
                cli,
                Value::Array(entries.iter().map(|(e, o)| entry_json(e, o)).collect()),
                || {
                    if entries.is_empty() {
                        format!("the {name} list is empty")
                    } else {
                        entries
                            .iter()
                            .map(|(e, o)| format!("{o}\t{}", e.pattern))
                            .collect::<Vec<_>>()
                            .join("\n")
                    }
                },
            );
        }
    }
    Ok(())
}
