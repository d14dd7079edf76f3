//! `facteur quarantine list|show|release|delete|expire`: messages the inbound checks held back.
//! Works on the store directly, beside a running server. A release stores the message in the
//! INBOX of each local recipient (and queues it to remote ones reached through an alias) in
//! one durable write, then removes it from the quarantine: a crash between the two leaves it
//! in both places (released twice at worst, never lost).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};
use store::{
    AppendRequest, Flags, NewQueueEntry, QuarantineRecord, QueueRecipient, RawMessage, WriteBatch,
};

use crate::Failure;
use crate::admin::emit;
use crate::cli::{Cli, QuarantineCmd};
use crate::context::Context;

fn record_json(r: &QuarantineRecord) -> Value {
    json!({
        "id": r.id,
        "smtp_id": r.smtp_id,
        "message_id": r.message_id,
        "from": r.sender,
        "recipients": r.recipients,
        "subject": r.subject,
        "score": r.score,
        "reasons": r.reasons,
        "size": r.size,
        "created": r.created,
        "expires": r.expires,
    })
}

fn line(r: &QuarantineRecord) -> String {
    format!(
        "{:>6}  score {:>6.1}  {}  from <{}> to {}  {:?}",
        r.id,
        r.score,
        smtp::received::rfc5322_date(r.created),
        r.sender,
        r.recipients.join(", "),
        r.subject
    )
}

async fn get(ctx: &Context, id: i64) -> Result<(QuarantineRecord, Vec<u8>), Failure> {
    ctx.store
        .quarantine_get(id)
        .await?
        .ok_or_else(|| Failure::op(format!("no quarantined message {id}")))
}

/// Delivers a held message where it was going; returns (local copies, remote recipients).
async fn release(
    ctx: &Context,
    r: &QuarantineRecord,
    raw: Vec<u8>,
) -> Result<(usize, usize), Failure> {
    let now = store::now_unix();
    let body: Arc<[u8]> = raw.into();
    let mut batch = WriteBatch::default();
    let head: Arc<[u8]> = format!("Return-Path: <{}>\r\n", r.sender)
        .into_bytes()
        .into();
    for &acc in &r.accounts {
        let Some(inbox) = ctx.store.mailbox_get(acc, store::INBOX).await? else {
            eprintln!("facteur: account {acc} no longer exists: its copy is not delivered");
            continue;
        };
        batch.appends.push(AppendRequest {
            mailbox_id: inbox.id,
            raw: RawMessage::new(head.clone(), body.clone()),
            flags: Flags::empty(),
            keywords: vec![],
            internal_date: now,
        });
    }
    let mut remote: BTreeMap<(String, String), Vec<QueueRecipient>> = BTreeMap::new();
    for (sender, address) in &r.remote {
        let domain = address
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        remote
            .entry((domain, sender.clone()))
            .or_default()
            .push(QueueRecipient {
                address: address.clone(),
                notify: None,
                orcpt: None,
                status: "pending".into(),
                last_reply: None,
            });
    }
    let remote_count = r.remote.len();
    for ((_, sender), recipients) in remote {
        batch.enqueue.push(NewQueueEntry {
            raw: RawMessage::new(Arc::from(&b""[..]), body.clone()),
            sender,
            recipients,
            envid: None,
            ret: None,
            next_attempt: now,
            smtp_id: Some(r.smtp_id.clone()),
        });
    }
    let local = batch.appends.len();
    if local == 0 && batch.enqueue.is_empty() {
        return Err(Failure::op(format!(
            "quarantined message {} has no recipient left to deliver to",
            r.id
        )));
    }
    ctx.store.commit(batch).await?;
    Ok((local, remote_count))
}

/// How often the server deletes quarantined messages past their expiry.
pub const EXPIRY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// The periodic expiry job of the running server: at start, then every [`EXPIRY_INTERVAL`].
pub fn start_expiry(ctx: &Context) {
    let store = ctx.store.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EXPIRY_INTERVAL);
        loop {
            tick.tick().await;
            match store.quarantine_expire(store::now_unix()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "expired quarantined messages deleted"),
                Err(e) => tracing::warn!(error = %e, "quarantine expiry failed"),
            }
        }
    });
}

pub async fn run(cli: &Cli, cmd: &QuarantineCmd) -> Result<(), Failure> {
    let ctx = Context::open(cli).await?;
    match cmd {
        QuarantineCmd::List { account } => {
            let account = match account {
                Some(a) => Some(ctx.directory.get_account(a).await?.id),
                None => None,
            };
            let list = ctx.store.quarantine_list(account).await?;
            emit(
                cli,
                Value::Array(list.iter().map(record_json).collect()),
                || {
                    if list.is_empty() {
                        "no quarantined messages".into()
                    } else {
                        list.iter().map(line).collect::<Vec<_>>().join("\n")
                    }
                },
            );
        }
        QuarantineCmd::Show { id, raw } => {
            let (r, bytes) = get(&ctx, *id).await?;
            let mut v = record_json(&r);
            v["message"] = Value::String(String::from_utf8_lossy(&bytes).into_owned());
            emit(cli, v, || {
                if *raw {
                    return String::from_utf8_lossy(&bytes).into_owned();
                }
                let end = message::header_end(&bytes);
                format!(
                    "{}\nreasons: {}\nexpires: {}\n\n{}",
                    line(&r),
                    r.reasons,
                    smtp::received::rfc5322_date(r.expires),
                    String::from_utf8_lossy(&bytes[..end]).trim_end()
                )
            });
        }
        QuarantineCmd::Release { id } => {
            let (r, bytes) = get(&ctx, *id).await?;
            let (local, remote) = release(&ctx, &r, bytes).await?;
            ctx.store.quarantine_delete(r.id).await?;
            tracing::info!(quarantine = r.id, id = %r.smtp_id, local, remote, "quarantined message released");
            emit(
                cli,
                json!({ "released": r.id, "delivered": local, "queued": remote }),
                || {
                    format!(
                        "released message {}: {local} mailbox(es), {remote} remote recipient(s)",
                        r.id
                    )
                },
            );
        }
        QuarantineCmd::Delete { id } => {
            ctx.store.quarantine_delete(*id).await?;
            emit(cli, json!({ "deleted": id }), || {
                format!("deleted quarantined message {id}")
            });
        }
        QuarantineCmd::Expire => {
            let n = ctx.store.quarantine_expire(store::now_unix()).await?;
            emit(cli, json!({ "expired": n }), || {
                format!("{n} expired message(s) deleted")
            });
        }
    }
    Ok(())
}
