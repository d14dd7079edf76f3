//! `facteur queue list|show|retry|delete|flush`: the outbound queue as an admin sees it. Works on
//! the store directly, so it runs beside the server; the server's scheduler notices changed
//! attempt times on its next poll (about a second).

use serde_json::{Value, json};
use store::QueueEntry;

use crate::Failure;
use crate::admin::emit;
use crate::cli::{Cli, QueueCmd};
use crate::context::Context;

/// Header fields shown by `queue show`.
const SHOWN_HEADERS: [&str; 5] = ["from", "to", "cc", "subject", "message-id"];

fn entry_json(e: &QueueEntry) -> Value {
    json!({
        "id": e.id,
        "smtp_id": e.smtp_id,
        "sender": e.sender,
        "size": e.size,
        "created": e.created,
        "next_attempt": e.next_attempt,
        "attempts": e.attempts,
        "last_error": e.last_error,
        "envid": e.envid,
        "ret": e.ret,
        "recipients": e.recipients.iter().map(|r| json!({
            "address": r.address,
            "status": r.status,
            "notify": r.notify,
            "orcpt": r.orcpt,
            "last_reply": r.last_reply,
        })).collect::<Vec<_>>(),
    })
}

fn age(now: i64, t: i64) -> String {
    let s = now.saturating_sub(t).max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

fn line(now: i64, e: &QueueEntry) -> String {
    let pending: Vec<&str> = e
        .recipients
        .iter()
        .filter(|r| queue::is_pending(&r.status))
        .map(|r| r.address.as_str())
        .collect();
    let sender = if e.sender.is_empty() {
        "<>"
    } else {
        e.sender.as_str()
    };
    let next = if e.next_attempt <= now {
        "now".to_string()
    } else {
        format!("in {}", age(e.next_attempt, now))
    };
    // The SMTP id is the one of the `250 ... queued as` and of every log line about the message.
    let mut out = format!(
        "{:>6}  {:<16}  {:>5}  {:>2} tries  {} -> {}  next {}",
        e.id,
        e.smtp_id.as_deref().unwrap_or("-"),
        age(now, e.created),
        e.attempts,
        sender,
        pending.join(", "),
        next
    );
    if let Some(err) = &e.last_error {
        out.push_str(&format!("\n        last error: {err}"));
    }
    out
}

async fn get(ctx: &Context, id: i64) -> Result<QueueEntry, Failure> {
    ctx.store
        .queue_get(id)
        .await?
        .ok_or_else(|| Failure::op(format!("no queued message with id {id}")))
}

pub async fn run(cli: &Cli, cmd: &QueueCmd) -> Result<(), Failure> {
    let ctx = Context::open(cli).await?;
    let now = store::now_unix();
    match cmd {
        QueueCmd::List => {
            let entries = ctx.store.queue_list().await?;
            emit(
                cli,
                json!(entries.iter().map(entry_json).collect::<Vec<_>>()),
                || {
                    if entries.is_empty() {
                        "The queue is empty.".to_string()
                    } else {
                        entries
                            .iter()
                            .map(|e| line(now, e))
                            .collect::<Vec<_>>()
                            .join("\n")
                    }
                },
            );
        }
        QueueCmd::Show { id } => {
            let e = get(&ctx, *id).await?;
            let raw = ctx.store.blob_read(e.blob, None).await?;
            let end = message::header_end(&raw);
            let headers: Vec<String> = String::from_utf8_lossy(&raw[..end])
                .replace("\r\n\t", " ")
                .replace("\r\n ", " ")
                .lines()
                .filter(|l| {
                    l.split_once(':').is_some_and(|(n, _)| {
                        SHOWN_HEADERS.contains(&n.trim().to_ascii_lowercase().as_str())
                    })
                })
                .map(str::to_string)
                .collect();
            let mut v = entry_json(&e);
            v["headers"] = json!(headers);
            emit(cli, v, || {
                let mut out = line(now, &e);
                for r in &e.recipients {
                    out.push_str(&format!(
                        "\n  {} [{}]{}",
                        r.address,
                        r.status,
                        r.last_reply
                            .as_ref()
                            .map(|x| format!(" {x}"))
                            .unwrap_or_default()
                    ));
                }
                for h in &headers {
                    out.push_str(&format!("\n  | {h}"));
                }
                out
            });
        }
        QueueCmd::Retry { id } => {
            let mut e = get(&ctx, *id).await?;
            e.next_attempt = now;
            ctx.store.queue_update(&e).await?;
            emit(cli, json!({ "id": id, "next_attempt": now }), || {
                format!("Message {id} will be attempted now.")
            });
        }
        QueueCmd::Delete { id } => {
            get(&ctx, *id).await?;
            ctx.store.queue_delete(*id).await?;
            emit(cli, json!({ "id": id, "deleted": true }), || {
                format!("Message {id} removed from the queue (its sender was not notified).")
            });
        }
        QueueCmd::Flush => {
            let entries = ctx.store.queue_list().await?;
            let mut n = 0;
            for mut e in entries {
                if e.next_attempt > now {
                    e.next_attempt = now;
                    ctx.store.queue_update(&e).await?;
                }
                n += 1;
            }
            emit(cli, json!({ "flushed": n }), || {
                format!("{n} queued message(s) will be attempted now.")
            });
        }
    }
    Ok(())
}
