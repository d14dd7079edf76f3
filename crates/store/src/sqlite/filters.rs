//! Messages held in quarantine, and the allow and block lists (schema 10: `quarantine`,
//! `quarantine_accounts`, `sender_lists`).

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Sqlite, db_err, exec, query_row};
use crate::*;

const COLUMNS: &str = "id, smtp_id, message_id, sender, recipients, accounts, remote, subject, \
                       score, reasons, length(raw), created, expires";

fn split_lines(s: String) -> Vec<String> {
    s.split('\n')
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<QuarantineRecord> {
    let accounts: String = r.get(5)?;
    let remote: String = r.get(6)?;
    Ok(QuarantineRecord {
        id: r.get(0)?,
        smtp_id: r.get(1)?,
        message_id: r.get(2)?,
        sender: r.get(3)?,
        recipients: split_lines(r.get(4)?),
        accounts: accounts.split(',').filter_map(|a| a.parse().ok()).collect(),
        remote: split_lines(remote)
            .into_iter()
            .filter_map(|l| {
                l.split_once('\t')
                    .map(|(s, a)| (s.to_string(), a.to_string()))
            })
            .collect(),
        subject: r.get(7)?,
        score: r.get(8)?,
        reasons: r.get(9)?,
        size: r.get::<_, i64>(10)?.max(0) as u64,
        created: r.get(11)?,
        expires: r.get(12)?,
    })
}

fn scope_key(s: &ListScope) -> String {
    match s {
        ListScope::Domain(d) => format!("d:{}", d.to_ascii_lowercase()),
        ListScope::Account(id) => format!("a:{id}"),
    }
}

fn scope_from_key(k: &str) -> Option<ListScope> {
    match k.split_once(':')? {
        ("d", d) => Some(ListScope::Domain(d.to_string())),
        ("a", id) => id.parse().ok().map(ListScope::Account),
        _ => None,
    }
}

fn kind_from(s: &str) -> ListKind {
    if s == "block" {
        ListKind::Block
    } else {
        ListKind::Allow
    }
}

/// Removes what belongs to an account (with the account).
pub(crate) fn delete_account(conn: &Connection, account: AccountId) -> Result<()> {
    exec(
        conn,
        "DELETE FROM sender_lists WHERE scope = ?1",
        [scope_key(&ListScope::Account(account))],
    )
    .map_err(db_err)?;
    exec(
        conn,
        "DELETE FROM quarantine_accounts WHERE account_id = ?1",
        [account],
    )
    .map_err(db_err)?;
    Ok(())
}

/// Removes a domain's lists (with the domain).
pub(crate) fn delete_domain(conn: &Connection, domain: &str) -> Result<()> {
    exec(
        conn,
        "DELETE FROM sender_lists WHERE scope = ?1",
        [scope_key(&ListScope::Domain(domain.to_string()))],
    )
    .map_err(db_err)?;
    Ok(())
}

#[async_trait]
impl FilterStore for Sqlite {
    async fn quarantine_add(&self, q: &NewQuarantine) -> Result<i64> {
        let q = q.clone();
        self.0
            .writer
            .write(move |tx| {
                let accounts: Vec<String> = q.accounts.iter().map(|a| a.to_string()).collect();
                let remote: Vec<String> =
                    q.remote.iter().map(|(s, a)| format!("{s}\t{a}")).collect();
                exec(
                    tx.conn,
                    "INSERT INTO quarantine(smtp_id, message_id, sender, recipients, accounts, \
                     remote, subject, score, reasons, raw, created, expires) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                    params![
                        q.smtp_id,
                        q.message_id,
                        q.sender,
                        q.recipients.join("\n"),
                        accounts.join(","),
                        remote.join("\n"),
                        q.subject,
                        q.score,
                        q.reasons,
                        q.raw,
                        q.created,
                        q.expires
                    ],
                )
                .map_err(db_err)?;
                let id = tx.conn.last_insert_rowid();
                for a in &q.accounts {
                    exec(
                        tx.conn,
                        "INSERT OR IGNORE INTO quarantine_accounts(account_id, quarantine_id) \
                         VALUES (?1, ?2)",
                        params![a, id],
                    )
                    .map_err(db_err)?;
                }
                Ok(id)
            })
            .await
    }

    async fn quarantine_list(&self, account: Option<AccountId>) -> Result<Vec<QuarantineRecord>> {
        self.0
            .read(move |c, _| {
                let sql = match account {
                    Some(_) => format!(
                        "SELECT {COLUMNS} FROM quarantine WHERE id IN \
                         (SELECT quarantine_id FROM quarantine_accounts WHERE account_id = ?1) \
                         ORDER BY id"
                    ),
                    None => {
                        format!("SELECT {COLUMNS} FROM quarantine WHERE ?1 IS NULL ORDER BY id")
                    }
                };
                let mut st = c.prepare_cached(&sql).map_err(db_err)?;
                st.query_map([account], from_row)
                    .map_err(db_err)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(db_err)
            })
            .await
    }

    async fn quarantine_get(&self, id: i64) -> Result<Option<(QuarantineRecord, Vec<u8>)>> {
        self.0
            .read(move |c, _| {
                query_row(
                    c,
                    &format!("SELECT {COLUMNS}, raw FROM quarantine WHERE id = ?1"),
                    [id],
                    |r| Ok((from_row(r)?, r.get::<_, Vec<u8>>(13)?)),
                )
                .optional()
                .map_err(db_err)
            })
            .await
    }

    async fn quarantine_delete(&self, id: i64) -> Result<()> {
        self.0
            .writer
            .write(move |tx| {
                exec(
                    tx.conn,
                    "DELETE FROM quarantine_accounts WHERE quarantine_id = ?1",
                    [id],
                )
                .map_err(db_err)?;
                let n =
                    exec(tx.conn, "DELETE FROM quarantine WHERE id = ?1", [id]).map_err(db_err)?;
                if n == 0 {
                    return Err(StoreError::NotFound(format!("quarantined message {id}")));
                }
                Ok(())
            })
            .await
    }

    async fn quarantine_expire(&self, now: i64) -> Result<u64> {
        self.0
            .writer
            .write(move |tx| {
                exec(
                    tx.conn,
                    "DELETE FROM quarantine_accounts WHERE quarantine_id IN \
                     (SELECT id FROM quarantine WHERE expires <= ?1)",
                    [now],
                )
                .map_err(db_err)?;
                let n = exec(tx.conn, "DELETE FROM quarantine WHERE expires <= ?1", [now])
                    .map_err(db_err)?;
                Ok(n as u64)
            })
            .await
    }

    async fn list_add(&self, scope: &ListScope, kind: ListKind, pattern: &str) -> Result<()> {
        let scope = scope.clone();
        let pattern = pattern.to_ascii_lowercase();
        self.0
            .writer
            .write(move |tx| {
                match &scope {
                    ListScope::Account(id) => {
                        let found: Option<i64> = query_row(
                            tx.conn,
                            "SELECT id FROM accounts WHERE id = ?1",
                            [id],
                            |r| r.get(0),
                        )
                        .optional()
                        .map_err(db_err)?;
                        if found.is_none() {
                            return Err(StoreError::NotFound(format!("account {id}")));
                        }
                    }
                    ListScope::Domain(d) => {
                        let found: Option<i64> = query_row(
                            tx.conn,
                            "SELECT id FROM domains WHERE name = ?1",
                            [d.to_ascii_lowercase()],
                            |r| r.get(0),
                        )
                        .optional()
                        .map_err(db_err)?;
                        if found.is_none() {
                            return Err(StoreError::NotFound(format!("domain {d}")));
                        }
                    }
                }
                let n = exec(
                    tx.conn,
                    "INSERT OR IGNORE INTO sender_lists(scope, kind, pattern, created) \
                     VALUES (?1, ?2, ?3, ?4)",
                    params![scope_key(&scope), kind.as_str(), pattern, now_unix()],
                )
                .map_err(db_err)?;
                if n == 0 {
                    return Err(StoreError::AlreadyExists(pattern));
                }
                Ok(())
            })
            .await
    }

    async fn list_remove(&self, scope: &ListScope, kind: ListKind, pattern: &str) -> Result<()> {
        let scope = scope_key(scope);
        let pattern = pattern.to_ascii_lowercase();
        self.0
            .writer
            .write(move |tx| {
                let n = exec(
                    tx.conn,
                    "DELETE FROM sender_lists WHERE scope = ?1 AND kind = ?2 AND pattern = ?3",
                    params![scope, kind.as_str(), pattern],
                )
                .map_err(db_err)?;
                if n == 0 {
                    return Err(StoreError::NotFound(pattern));
                }
                Ok(())
            })
            .await
    }

    async fn list_entries(&self, scopes: &[ListScope]) -> Result<Vec<ListEntry>> {
        let keys: Vec<String> = scopes.iter().map(scope_key).collect();
        self.0
            .read(move |c, _| {
                let mut st = c
                    .prepare_cached(
                        "SELECT scope, kind, pattern, created FROM sender_lists WHERE scope = ?1 \
                         ORDER BY kind, pattern",
                    )
                    .map_err(db_err)?;
                let mut out = Vec::new();
                for k in &keys {
                    let rows = st
                        .query_map([k], |r| {
                            Ok((
                                r.get::<_, String>(0)?,
                                r.get::<_, String>(1)?,
                                r.get::<_, String>(2)?,
                                r.get::<_, i64>(3)?,
                            ))
                        })
                        .map_err(db_err)?;
                    for row in rows {
                        let (scope, kind, pattern, created) = row.map_err(db_err)?;
                        if let Some(scope) = scope_from_key(&scope) {
                            out.push(ListEntry {
                                scope,
                                kind: kind_from(&kind),
                                pattern,
                                created,
                            });
                        }
                    }
                }
                Ok(out)
            })
            .await
    }
}
