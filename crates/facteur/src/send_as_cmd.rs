//! `facteur account send-as ADDRESS add|remove|list [ADDRESS_OR_@DOMAIN]`: addresses and domains
//! an account may use as its header From, Sender and MAIL FROM on submission besides its own and
//! its aliases' (a shared `info@` address, or a whole domain for a hosting provider's staff).

use serde_json::json;

use crate::Failure;
use crate::admin::emit;
use crate::cli::Cli;
use crate::context::Context;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SendAsAction {
    Add,
    Remove,
    List,
}

/// `user@domain` or `@domain`, lowercase, checked.
fn pattern(target: &str) -> Result<String, Failure> {
    let t = target.trim().to_ascii_lowercase();
    if let Some(domain) = t.strip_prefix('@') {
        if domain.is_empty()
            || domain.contains('@')
            || !domain.contains('.') && domain != "localhost"
        {
            return Err(Failure::config(format!(
                "{target:?}: not a domain (write @example.com)"
            )));
        }
        return Ok(t);
    }
    match directory::Address::parse(&t) {
        Ok(a) => Ok(a.to_string().to_ascii_lowercase()),
        Err(_) => Err(Failure::config(format!(
            "{target:?}: not an address (user@domain) or a domain (@domain)"
        ))),
    }
}

pub async fn run(
    cli: &Cli,
    ctx: &Context,
    address: &str,
    action: SendAsAction,
    target: Option<&str>,
) -> Result<(), Failure> {
    let acc = ctx.directory.get_account(address).await?;
    let address = acc.address();
    match (action, target) {
        (SendAsAction::List, _) => {
            let grants = ctx.store.send_as_list(acc.id).await?;
            emit(
                cli,
                json!({ "address": address, "send_as": grants }),
                || grants.join("\n"),
            );
        }
        (_, None) => {
            return Err(Failure::config(
                "add and remove need an address (user@domain) or a domain (@domain)",
            ));
        }
        (SendAsAction::Add, Some(t)) => {
            let p = pattern(t)?;
            ctx.store.send_as_add(acc.id, &p).await?;
            emit(cli, json!({ "address": address, "added": p }), || {
                format!("{address} may now send as {p}")
            });
        }
        (SendAsAction::Remove, Some(t)) => {
            let p = pattern(t)?;
            ctx.store.send_as_remove(acc.id, &p).await?;
            emit(cli, json!({ "address": address, "removed": p }), || {
                format!("{address} may no longer send as {p}")
            });
        }
    }
    Ok(())
}
