//! Sieve scripts and their state (schema 12: `sieve_scripts`, `sieve_seen`, `sieve_redirects`).

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{Sqlite, db_err, exec, query_row};
use crate::*;

/// Removes an account's scripts and state (with the account).
pub(crate) fn delete_account(conn: &Connection, id: AccountId) -> Result<()> {
    let owner = SieveOwner::Account(id).key();
    exec(conn, "DELETE FROM sieve_scripts WHERE owner = ?1", [owner]).map_err(db_err)?;
    exec(conn, "DELETE FROM sieve_seen WHERE account_id = ?1", [id]).map_err(db_err)?;
    exec(
        conn,
        "DELETE FROM sieve_redirects WHERE account_id = ?1",
        [id],
    )
    .map_err(db_err)?;
    Ok(())
}

const SELECT: &str =
    "SELECT name, content, compiled, compiled_format, active, updated FROM sieve_scripts";

fn row(owner: &SieveOwner, r: &rusqlite::Row<'_>) -> rusqlite::Result<SieveScript> {
    Ok(SieveScript {
        owner: owner.clone(),
        name: r.get(0)?,
        content: r.get(1)?,
        compiled: r.get(2)?,
        compiled_format: r.get(3)?,
        active: r.get(4)?,
        updated: r.get(5)?,
    })
}

#[async_trait]
impl SieveStore for Sqlite {
    async fn sieve_put(&self, script: &NewSieveScript, max_scripts: Option<usize>) -> Result<()> {
        let s = script.clone();
        self.0
            .writer
            .write(move |tx| {
                let key = s.owner.key();
                let exists: bool = query_row(
                    tx.conn,
                    "SELECT 1 FROM sieve_scripts WHERE owner = ?1 AND name = ?2",
                    params![key, s.name],
                    |_| Ok(true),
                )
                .optional()
                .map_err(db_err)?
                .unwrap_or(false);
                if !exists && let Some(max) = max_scripts {
                    let n: i64 = query_row(
                        tx.conn,
                        "SELECT COUNT(*) FROM sieve_scripts WHERE owner = ?1",
                        [&key],
                        |r| r.get(0),
                    )
                    .map_err(db_err)?;
                    if n as usize >= max {
                        return Err(StoreError::Invalid(format!(
                            "at most {max} scripts per owner"
                        )));
                    }
                }
                exec(
                    tx.conn,
                    "INSERT INTO sieve_scripts(owner, name, content, compiled, compiled_format, \
                     active, updated) VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6) \
                     ON CONFLICT(owner, name) DO UPDATE SET content = excluded.content, \
                     compiled = excluded.compiled, compiled_format = excluded.compiled_format, \
                     updated = excluded.updated",
                    params![key, s.name, s.content, s.compiled, s.compiled_format, s.now],
                )
                .map_err(db_err)?;
                Ok(())
            })
            .await
    }

    async fn sieve_get(&self, owner: &SieveOwner, name: &str) -> Result<Option<SieveScript>> {
        let (owner, name) = (owner.clone(), name.to_string());
        self.0
            .read(move |c, _| {
                query_row(
                    c,
                    &format!("{SELECT} WHERE owner = ?1 AND name = ?2"),
                    params![owner.key(), name],
                    |r| row(&owner, r),
                )
                .optional()
                .map_err(db_err)
            })
            .await
    }

    async fn sieve_active(&self, owner: &SieveOwner) -> Result<Option<SieveScript>> {
        let owner = owner.clone();
        self.0
            .read(move |c, _| {
                query_row(
                    c,
                    &format!("{SELECT} WHERE owner = ?1 AND active"),
                    params![owner.key()],
                    |r| row(&owner, r),
                )
                .optional()
                .map_err(db_err)
            })
            .await
    }

    async fn sieve_list(&self, owner: &SieveOwner) -> Result<Vec<SieveScriptInfo>> {
        let key = owner.key();
        self.0
            .read(move |c, _| {
                let mut st = c
                    .prepare_cached(
                        "SELECT name, length(content), active FROM sieve_scripts \
                         WHERE owner = ?1 ORDER BY name",
                    )
                    .map_err(db_err)?;
                st.query_map([key], |r| {
                    Ok(SieveScriptInfo {
                        name: r.get(0)?,
                        size: r.get::<_, i64>(1)?.max(0) as u64,
                        active: r.get(2)?,
                    })
                })
                .map_err(db_err)?
                .collect::<rusqlite::Result<_>>()
                .map_err(db_err)
            })
            .await
    }

    async fn sieve_activate(&self, owner: &SieveOwner, name: Option<&str>) -> Result<()> {
        let (key, name) = (owner.key(), name.map(str::to_string));
        self.0
            .writer
            .write(move |tx| {
                if let Some(name) = &name {
                    let found = query_row(
                        tx.conn,
                        "SELECT 1 FROM sieve_scripts WHERE owner = ?1 AND name = ?2",
                        params![key, name],
                        |_| Ok(()),
                    )
                    .optional()
                    .map_err(db_err)?;
                    if found.is_none() {
                        return Err(StoreError::NotFound(format!("script {name:?}")));
                    }
                }
                exec(
                    tx.conn,
                    "UPDATE sieve_scripts SET active = 0 WHERE owner = ?1 AND active",
                    [&key],
                )
                .map_err(db_err)?;
                if let Some(name) = &name {
                    exec(
                        tx.conn,
                        "UPDATE sieve_scripts SET active = 1 WHERE owner = ?1 AND name = ?2",
                        params![key, name],
                    )
                    .map_err(db_err)?;
                }
                Ok(())
            })
            .await
    }

    async fn sieve_delete(&self, owner: &SieveOwner, name: &str) -> Result<()> {
        let (key, name) = (owner.key(), name.to_string());
        self.0
            .writer
            .write(move |tx| {
                let active: Option<bool> = query_row(
                    tx.conn,
                    "SELECT active FROM sieve_scripts WHERE owner = ?1 AND name = ?2",
                    params![key, name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err)?;
                match active {
                    None => Err(StoreError::NotFound(format!("script {name:?}"))),
                    Some(true) => Err(StoreError::Invalid(format!("script {name:?} is active"))),
                    Some(false) => {
                        exec(
                            tx.conn,
                            "DELETE FROM sieve_scripts WHERE owner = ?1 AND name = ?2",
                            params![key, name],
                        )
                        .map_err(db_err)?;
                        Ok(())
                    }
                }
            })
            .await
    }

    async fn sieve_rename(&self, owner: &SieveOwner, from: &str, to: &str) -> Result<()> {
        let (key, from, to) = (owner.key(), from.to_string(), to.to_string());
        self.0
            .writer
            .write(move |tx| {
                let exists = |name: &str| -> Result<bool> {
                    Ok(query_row(
                        tx.conn,
                        "SELECT 1 FROM sieve_scripts WHERE owner = ?1 AND name = ?2",
                        params![key, name],
                        |_| Ok(()),
                    )
                    .optional()
                    .map_err(db_err)?
                    .is_some())
                };
                if !exists(&from)? {
                    return Err(StoreError::NotFound(format!("script {from:?}")));
                }
                if exists(&to)? {
                    return Err(StoreError::AlreadyExists(format!("script {to:?}")));
                }
                exec(
                    tx.conn,
                    "UPDATE sieve_scripts SET name = ?3 WHERE owner = ?1 AND name = ?2",
                    params![key, from, to],
                )
                .map_err(db_err)?;
                Ok(())
            })
            .await
    }

    async fn sieve_seen(
        &self,
        account: AccountId,
        key: &str,
        now: i64,
        expires: i64,
    ) -> Result<bool> {
        let key = key.to_string();
        self.0
            .writer
            .write(move |tx| {
                let until: Option<i64> = query_row(
                    tx.conn,
                    "SELECT expires FROM sieve_seen WHERE account_id = ?1 AND key = ?2",
                    params![account, key],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err)?;
                if until.is_some_and(|u| u > now) {
                    return Ok(true);
                }
                // Expired entries of the account go while we are here, so the table stays small.
                exec(
                    tx.conn,
                    "DELETE FROM sieve_seen WHERE account_id = ?1 AND expires <= ?2",
                    params![account, now],
                )
                .map_err(db_err)?;
                exec(
                    tx.conn,
                    "INSERT OR REPLACE INTO sieve_seen(account_id, key, expires) VALUES (?1, ?2, ?3)",
                    params![account, key, expires],
                )
                .map_err(db_err)?;
                Ok(false)
            })
            .await
    }

    async fn sieve_redirects_take(
        &self,
        account: AccountId,
        day: i64,
        wanted: u32,
        cap: u32,
    ) -> Result<u32> {
        self.0
            .writer
            .write(move |tx| {
                let used: i64 = query_row(
                    tx.conn,
                    "SELECT count FROM sieve_redirects WHERE account_id = ?1 AND day = ?2",
                    params![account, day],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err)?
                .unwrap_or(0);
                let left = i64::from(cap).saturating_sub(used).max(0);
                let granted = i64::from(wanted).min(left);
                if granted > 0 {
                    exec(
                        tx.conn,
                        "DELETE FROM sieve_redirects WHERE account_id = ?1 AND day < ?2",
                        params![account, day],
                    )
                    .map_err(db_err)?;
                    exec(
                        tx.conn,
                        "INSERT INTO sieve_redirects(account_id, day, count) VALUES (?1, ?2, ?3) \
                         ON CONFLICT(account_id, day) DO UPDATE SET count = count + excluded.count",
                        params![account, day, granted],
                    )
                    .map_err(db_err)?;
                }
                Ok(granted as u32)
            })
            .await
    }
}
