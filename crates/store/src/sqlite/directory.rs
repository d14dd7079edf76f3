//! Directory records: domains, accounts, aliases.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::mailbox::{create_mailbox_in, delete_mailbox_in};
use super::{Sqlite, db_err, exec, query_row};
use crate::*;

const ACCOUNT_COLUMNS: &str = "a.id, a.domain_id, a.local_part, d.name, a.display_name, a.password_hash, \
     a.quota_bytes, a.quota_messages, a.enabled, a.created";

/// [`ACCOUNT_COLUMNS`] for `FROM accounts a` without a join: SQLite (3.54, with STAT4) re-prepares
/// a statement with a join each time its parameters are bound again, and these lookups run for
/// every recipient of every message (a full SQL compile each, 9% of SMTP ingest's CPU).
const ACCOUNT_COLUMNS_NO_JOIN: &str = "a.id, a.domain_id, a.local_part, \
     (SELECT d.name FROM domains d WHERE d.id = a.domain_id), a.display_name, a.password_hash, \
     a.quota_bytes, a.quota_messages, a.enabled, a.created";

fn account_from_row(r: &Row<'_>) -> rusqlite::Result<AccountRecord> {
    Ok(AccountRecord {
        id: r.get(0)?,
        domain_id: r.get(1)?,
        local_part: r.get(2)?,
        domain: r.get(3)?,
        display_name: r.get(4)?,
        password_hash: r.get(5)?,
        quota_bytes: r.get::<_, Option<i64>>(6)?.map(|v| v as u64),
        quota_messages: r.get::<_, Option<i64>>(7)?.map(|v| v as u64),
        enabled: r.get(8)?,
        created: r.get(9)?,
    })
}

fn domain_from_row(r: &Row<'_>) -> rusqlite::Result<DomainRecord> {
    Ok(DomainRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        catchall: r.get(2)?,
        created: r.get(3)?,
    })
}

fn alias_from_row(r: &Row<'_>) -> rusqlite::Result<AliasRecord> {
    let targets: String = r.get(4)?;
    Ok(AliasRecord {
        id: r.get(0)?,
        domain_id: r.get(1)?,
        domain: r.get(2)?,
        local_part: r.get(3)?,
        targets: targets
            .split('\n')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

pub(crate) fn get_account(conn: &Connection, id: AccountId) -> Result<Option<AccountRecord>> {
    query_row(
        conn,
        &format!("SELECT {ACCOUNT_COLUMNS_NO_JOIN} FROM accounts a WHERE a.id = ?1"),
        [id],
        account_from_row,
    )
    .optional()
    .map_err(db_err)
}

fn not_found(what: impl Into<String>) -> StoreError {
    StoreError::NotFound(what.into())
}

fn exists_err(e: rusqlite::Error, what: &str) -> StoreError {
    match db_err(e) {
        StoreError::AlreadyExists(_) => StoreError::AlreadyExists(what.to_string()),
        other => other,
    }
}

#[async_trait]
impl DirectoryStore for Sqlite {
    async fn domain_create(&self, name: &str) -> Result<DomainRecord> {
        let name = name.to_string();
        self.0
            .writer
            .write(move |tx| {
                let created = now_unix();
                exec(
                    tx.conn,
                    "INSERT INTO domains(name, created) VALUES (?1, ?2)",
                    params![name, created],
                )
                .map_err(|e| exists_err(e, &format!("domain {name}")))?;
                Ok(DomainRecord {
                    id: tx.conn.last_insert_rowid(),
                    name,
                    catchall: None,
                    created,
                })
            })
            .await
    }

    async fn domain_get(&self, name: &str) -> Result<Option<DomainRecord>> {
        let name = name.to_string();
        self.0
            .read(move |c, _| {
                query_row(
                    c,
                    "SELECT id, name, catchall, created FROM domains WHERE name = ?1",
                    [name],
                    domain_from_row,
                )
                .optional()
                .map_err(db_err)
            })
            .await
    }

    async fn domain_list(&self) -> Result<Vec<DomainRecord>> {
        self.0
            .read(|c, _| {
                let mut st = c
                    .prepare("SELECT id, name, catchall, created FROM domains ORDER BY name")
                    .map_err(db_err)?;
                let rows = st.query_map([], domain_from_row).map_err(db_err)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
            })
            .await
    }

    async fn domain_delete(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        self.0
            .writer
            .write(move |tx| {
                let id: i64 = query_row(
                    tx.conn,
                    "SELECT id FROM domains WHERE name = ?1",
                    [&name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err)?
                .ok_or_else(|| not_found(format!("domain {name}")))?;
                let accounts: i64 = query_row(
                    tx.conn,
                    "SELECT COUNT(*) FROM accounts WHERE domain_id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .map_err(db_err)?;
                if accounts > 0 {
                    return Err(StoreError::Invalid(format!(
                        "domain {name} still has {accounts} account(s)"
                    )));
                }
                exec(tx.conn, "DELETE FROM aliases WHERE domain_id = ?1", [id]).map_err(db_err)?;
                super::filters::delete_domain(tx.conn, &name)?;
                exec(tx.conn, "DELETE FROM domains WHERE id = ?1", [id]).map_err(db_err)?;
                Ok(())
            })
            .await
    }

    async fn domain_set_catchall(&self, name: &str, target: Option<&str>) -> Result<()> {
        let name = name.to_string();
        let target = target.map(str::to_string);
        self.0
            .writer
            .write(move |tx| {
                let n = exec(
                    tx.conn,
                    "UPDATE domains SET catchall = ?1 WHERE name = ?2",
                    params![target, name],
                )
                .map_err(db_err)?;
                if n == 0 {
                    Err(not_found(format!("domain {name}")))
                } else {
                    Ok(())
                }
            })
            .await
    }

    async fn account_create(&self, account: NewAccount) -> Result<AccountRecord> {
        self.0
            .writer
            .write(move |tx| {
                let created = now_unix();
                exec(tx.conn,
                        "INSERT INTO accounts(domain_id, local_part, display_name, password_hash, quota_bytes, \
                         quota_messages, enabled, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7)",
                        params![
                            account.domain_id,
                            account.local_part,
                            account.display_name,
                            account.password_hash,
                            account.quota_bytes.map(|v| v as i64),
                            account.quota_messages.map(|v| v as i64),
                            created
                        ],
                    )
                    .map_err(|e| match db_err(e) {
                        StoreError::AlreadyExists(_) => {
                            let domain: String = query_row(tx.conn, "SELECT name FROM domains WHERE id = ?1", [account.domain_id], |r| r.get(0))
                                .unwrap_or_default();
                            StoreError::AlreadyExists(format!("account {}@{domain}", account.local_part))
                        }
                        other => other,
                    })?;
                let id = tx.conn.last_insert_rowid();
                for (name, special) in &account.mailboxes {
                    create_mailbox_in(tx, id, name, *special)?;
                    exec(tx.conn, "INSERT OR IGNORE INTO subscriptions(account_id, name) VALUES (?1, ?2)", params![id, name])
                        .map_err(db_err)?;
                }
                get_account(tx.conn, id)?.ok_or_else(|| StoreError::Backend("account vanished".into()))
            })
            .await
    }

    async fn account_get(&self, local_part: &str, domain: &str) -> Result<Option<AccountRecord>> {
        let (l, d) = (local_part.to_string(), domain.to_string());
        self.0
            .read(move |c, _| {
                query_row(
                    c,
                    &format!(
                        "SELECT {ACCOUNT_COLUMNS_NO_JOIN} FROM accounts a WHERE a.local_part = ?1 \
                         AND a.domain_id = (SELECT d.id FROM domains d WHERE d.name = ?2)"
                    ),
                    params![l, d],
                    account_from_row,
                )
                .optional()
                .map_err(db_err)
            })
            .await
    }

    async fn account_get_by_id(&self, id: AccountId) -> Result<Option<AccountRecord>> {
        self.0.read(move |c, _| get_account(c, id)).await
    }

    async fn account_list(&self, domain: Option<&str>) -> Result<Vec<AccountRecord>> {
        let domain = domain.map(str::to_string);
        self.0
            .read(move |c, _| {
                let mut st = c
                    .prepare(&format!(
                        "SELECT {ACCOUNT_COLUMNS} FROM accounts a JOIN domains d ON d.id = a.domain_id \
                         WHERE ?1 IS NULL OR d.name = ?1 ORDER BY d.name, a.local_part"
                    ))
                    .map_err(db_err)?;
                let rows = st.query_map([domain], account_from_row).map_err(db_err)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
            })
            .await
    }

    async fn account_set_password(&self, id: AccountId, password_hash: &str) -> Result<()> {
        let h = password_hash.to_string();
        update_account(self, id, move |c| {
            exec(
                c,
                "UPDATE accounts SET password_hash = ?1 WHERE id = ?2",
                params![h, id],
            )
        })
        .await
    }

    async fn account_set_quota(
        &self,
        id: AccountId,
        bytes: Option<u64>,
        messages: Option<u64>,
    ) -> Result<()> {
        update_account(self, id, move |c| {
            exec(
                c,
                "UPDATE accounts SET quota_bytes = ?1, quota_messages = ?2 WHERE id = ?3",
                params![bytes.map(|v| v as i64), messages.map(|v| v as i64), id],
            )
        })
        .await
    }

    async fn account_set_enabled(&self, id: AccountId, enabled: bool) -> Result<()> {
        update_account(self, id, move |c| {
            exec(
                c,
                "UPDATE accounts SET enabled = ?1 WHERE id = ?2",
                params![enabled, id],
            )
        })
        .await
    }

    async fn account_delete(&self, id: AccountId) -> Result<()> {
        self.0
            .writer
            .write(move |tx| {
                let Some(account) = get_account(tx.conn, id)? else {
                    return Err(not_found(format!("account {id}")));
                };
                // A new account of the same address must not inherit the old one's known sources.
                exec(
                    tx.conn,
                    "DELETE FROM login_sources WHERE account = ?1",
                    [account.address()],
                )
                .map_err(db_err)?;
                let ids: Vec<i64> = {
                    let mut st = tx
                        .conn
                        .prepare("SELECT id FROM mailboxes WHERE account_id = ?1")
                        .map_err(db_err)?;
                    st.query_map([id], |r| r.get(0))
                        .map_err(db_err)?
                        .collect::<rusqlite::Result<_>>()
                        .map_err(db_err)?
                };
                for mb in ids {
                    delete_mailbox_in(tx, mb)?;
                }
                exec(
                    tx.conn,
                    "DELETE FROM subscriptions WHERE account_id = ?1",
                    [id],
                )
                .map_err(db_err)?;
                exec(tx.conn, "DELETE FROM send_as WHERE account_id = ?1", [id]).map_err(db_err)?;
                super::spam::delete_model(tx.conn, id)?;
                super::filters::delete_account(tx.conn, id)?;
                super::sieve::delete_account(tx.conn, id)?;
                exec(tx.conn, "DELETE FROM accounts WHERE id = ?1", [id]).map_err(db_err)?;
                Ok(())
            })
            .await
    }

    async fn quota_usage(&self, id: AccountId) -> Result<QuotaUsage> {
        self.0
            .read(move |c, _| {
                query_row(
                    c,
                    "SELECT used_bytes, used_messages FROM accounts WHERE id = ?1",
                    [id],
                    |r| {
                        Ok(QuotaUsage {
                            bytes: r.get::<_, i64>(0)? as u64,
                            messages: r.get::<_, i64>(1)? as u64,
                        })
                    },
                )
                .optional()
                .map_err(db_err)?
                .ok_or_else(|| not_found(format!("account {id}")))
            })
            .await
    }

    async fn alias_create(
        &self,
        domain_id: DomainId,
        local_part: &str,
        targets: &[String],
    ) -> Result<AliasRecord> {
        let local = local_part.to_string();
        let targets = targets.to_vec();
        self.0
            .writer
            .write(move |tx| {
                exec(
                    tx.conn,
                    "INSERT INTO aliases(domain_id, local_part, targets) VALUES (?1, ?2, ?3)",
                    params![domain_id, local, targets.join("\n")],
                )
                .map_err(|e| exists_err(e, &format!("alias {local}")))?;
                let id = tx.conn.last_insert_rowid();
                query_row(
                    tx.conn,
                    "SELECT a.id, a.domain_id, d.name, a.local_part, a.targets FROM aliases a \
                         JOIN domains d ON d.id = a.domain_id WHERE a.id = ?1",
                    [id],
                    alias_from_row,
                )
                .map_err(db_err)
            })
            .await
    }

    async fn send_as_add(&self, account: AccountId, pattern: &str) -> Result<()> {
        let pattern = pattern.to_ascii_lowercase();
        self.0
            .writer
            .write(move |tx| {
                if get_account(tx.conn, account)?.is_none() {
                    return Err(not_found(format!("account {account}")));
                }
                let n = exec(
                    tx.conn,
                    "INSERT OR IGNORE INTO send_as(account_id, pattern) VALUES (?1, ?2)",
                    params![account, pattern],
                )
                .map_err(db_err)?;
                if n == 0 {
                    return Err(StoreError::AlreadyExists(pattern));
                }
                Ok(())
            })
            .await
    }

    async fn send_as_remove(&self, account: AccountId, pattern: &str) -> Result<()> {
        let pattern = pattern.to_ascii_lowercase();
        self.0
            .writer
            .write(move |tx| {
                let n = exec(
                    tx.conn,
                    "DELETE FROM send_as WHERE account_id = ?1 AND pattern = ?2",
                    params![account, pattern],
                )
                .map_err(db_err)?;
                if n == 0 {
                    return Err(not_found(pattern));
                }
                Ok(())
            })
            .await
    }

    async fn send_as_list(&self, account: AccountId) -> Result<Vec<String>> {
        self.0
            .read(move |c, _| {
                let mut st = c
                    .prepare_cached(
                        "SELECT pattern FROM send_as WHERE account_id = ?1 ORDER BY pattern",
                    )
                    .map_err(db_err)?;
                st.query_map([account], |r| r.get(0))
                    .map_err(db_err)?
                    .collect::<rusqlite::Result<_>>()
                    .map_err(db_err)
            })
            .await
    }

    async fn alias_get(&self, local_part: &str, domain: &str) -> Result<Option<AliasRecord>> {
        let (l, d) = (local_part.to_string(), domain.to_string());
        self.0
            .read(move |c, _| {
                query_row(
                    c,
                    // Without a join (see ACCOUNT_COLUMNS_NO_JOIN): looked up per recipient.
                    "SELECT a.id, a.domain_id, ?2, a.local_part, a.targets FROM aliases a \
                     WHERE a.local_part = ?1 AND a.domain_id = (SELECT d.id FROM domains d WHERE d.name = ?2)",
                    params![l, d],
                    alias_from_row,
                )
                .optional()
                .map_err(db_err)
            })
            .await
    }

    async fn alias_list(&self, domain: Option<&str>) -> Result<Vec<AliasRecord>> {
        let domain = domain.map(str::to_string);
        self.0
            .read(move |c, _| {
                let mut st = c
                    .prepare(
                        "SELECT a.id, a.domain_id, d.name, a.local_part, a.targets FROM aliases a \
                         JOIN domains d ON d.id = a.domain_id WHERE ?1 IS NULL OR d.name = ?1 \
                         ORDER BY d.name, a.local_part",
                    )
                    .map_err(db_err)?;
                let rows = st.query_map([domain], alias_from_row).map_err(db_err)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
            })
            .await
    }

    async fn alias_delete(&self, local_part: &str, domain: &str) -> Result<()> {
        let (l, d) = (local_part.to_string(), domain.to_string());
        self.0
            .writer
            .write(move |tx| {
                let n = exec(tx.conn,
                        "DELETE FROM aliases WHERE local_part = ?1 AND domain_id = (SELECT id FROM domains WHERE name = ?2)",
                        params![l, d],
                    )
                    .map_err(db_err)?;
                if n == 0 { Err(not_found(format!("alias {l}@{d}"))) } else { Ok(()) }
            })
            .await
    }
}

async fn update_account<F>(store: &Sqlite, id: AccountId, f: F) -> Result<()>
where
    F: FnOnce(&Connection) -> rusqlite::Result<usize> + Send + 'static,
{
    store
        .0
        .writer
        .write(move |tx| {
            let n = f(tx.conn).map_err(db_err)?;
            if n == 0 {
                Err(not_found(format!("account {id}")))
            } else {
                Ok(())
            }
        })
        .await
}
