//! `facteur ban list|remove`: the login bans kept in the store. The CLI is another process than
//! the server: it reads and lifts the store's bans, and a running server applies a lift within
//! `directory::login_sync::SYNC_INTERVAL` (one log line).

use net::throttle::Source;
use serde_json::{Value, json};
use store::LoginBanRecord;

use crate::Failure;
use crate::admin::emit;
use crate::cli::{BanCmd, Cli};
use crate::context::Context;

pub async fn run(cli: &Cli, cmd: &BanCmd) -> Result<(), Failure> {
    let ctx = Context::open(cli).await?;
    let now = store::now_unix();
    match cmd {
        BanCmd::List => {
            let bans = ctx.store.bans_active(now).await?;
            let list: Vec<Value> = bans.iter().map(|b| ban_json(b, now)).collect();
            emit(cli, Value::Array(list), || table(&bans, now));
        }
        BanCmd::Remove { target } => {
            let key = target_key(&ctx, target);
            let lifted = match ctx.store.ban_lift(&key, now).await {
                Ok(l) => l,
                Err(store::StoreError::NotFound(_)) => {
                    return Err(Failure::op(format!("no login ban in force for {key}")));
                }
                Err(e) => return Err(e.into()),
            };
            let secs = directory::login_sync::SYNC_INTERVAL.as_secs();
            let list: Vec<Value> = lifted.iter().map(|b| ban_json(b, now)).collect();
            emit(cli, json!({ "lifted": list }), || {
                format!(
                    "Lifted {} login ban{} of {key}; a running server applies it within {secs} seconds.",
                    lifted.len(),
                    if lifted.len() == 1 { "" } else { "s" }
                )
            });
        }
    }
    Ok(())
}

/// What `ban remove` and `auth test --from` name: a source in the store's form (an IPv6 address
/// becomes its /64), or an account's normalised address.
pub fn target_key(ctx: &Context, target: &str) -> String {
    match Source::parse(target) {
        Some(s) => s.to_string(),
        None => ctx.directory.login_key(target.trim()),
    }
}

fn ban_json(b: &LoginBanRecord, now: i64) -> Value {
    json!({
        "id": b.id,
        "source": b.source,
        "account": b.account,
        "failures": b.failures,
        "created": b.created,
        "until": b.until,
        "seconds_left": (b.until - now).max(0),
    })
}

/// `59m 12s`, `2h 5m`, `40s`.
pub fn time_left(secs: i64) -> String {
    let s = secs.max(0);
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m {sec}s"),
        (h, m, _) => format!("{h}h {m}m"),
    }
}

/// One sentence on what a ban refuses, and how to lift it.
pub fn describe(b: &LoginBanRecord, now: i64) -> String {
    let left = time_left(b.until - now);
    match (&b.source, &b.account) {
        (Some(s), _) => format!(
            "logins from {s} are refused for every account for {left} more, after {} failed logins (lift: facteur ban remove {s})",
            b.failures
        ),
        (None, Some(a)) => format!(
            "logins to {a} from addresses it never logged in from are refused for {left} more, after {} failed logins (lift: facteur ban remove {a})",
            b.failures
        ),
        (None, None) => format!("ban {} (malformed)", b.id),
    }
}

fn table(bans: &[LoginBanRecord], now: i64) -> String {
    if bans.is_empty() {
        return "No login bans in force.".into();
    }
    let rows: Vec<[String; 4]> = bans
        .iter()
        .map(|b| {
            [
                b.source.clone().unwrap_or_else(|| "(new addresses)".into()),
                b.account
                    .clone()
                    .unwrap_or_else(|| "(every account)".into()),
                b.failures.to_string(),
                time_left(b.until - now),
            ]
        })
        .collect();
    let head = ["SOURCE", "ACCOUNT", "FAILURES", "TIME LEFT"];
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].len())
            .chain([head[i].len()])
            .max()
            .unwrap_or(0)
    };
    let (w0, w1, w2) = (width(0), width(1), width(2));
    let mut out = format!(
        "{:w0$}  {:w1$}  {:>w2$}  {}",
        head[0], head[1], head[2], head[3]
    );
    for r in rows {
        out.push_str(&format!(
            "\n{:w0$}  {:w1$}  {:>w2$}  {}",
            r[0], r[1], r[2], r[3]
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_reads_well() {
        assert_eq!(time_left(-5), "0s");
        assert_eq!(time_left(40), "40s");
        assert_eq!(time_left(59 * 60 + 12), "59m 12s");
        assert_eq!(time_left(2 * 3600 + 5 * 60 + 9), "2h 5m");
    }

    #[test]
    fn table_lines_up() {
        let b = |source: Option<&str>, account: Option<&str>, failures, until| LoginBanRecord {
            id: 1,
            source: source.map(str::to_string),
            account: account.map(str::to_string),
            failures,
            created: 0,
            until,
            lifted: None,
            seq: 1,
        };
        let t = table(
            &[
                b(Some("192.0.2.7"), None, 10, 3552),
                b(None, Some("bob@example.com"), 20, 7200),
            ],
            0,
        );
        assert_eq!(
            t,
            "SOURCE           ACCOUNT          FAILURES  TIME LEFT\n\
             192.0.2.7        (every account)        10  59m 12s\n\
             (new addresses)  bob@example.com        20  2h 0m"
        );
        assert_eq!(table(&[], 0), "No login bans in force.");
    }
}
