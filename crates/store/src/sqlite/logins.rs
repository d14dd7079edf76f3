//! Login bans and the sources accounts log in from.

use async_trait::async_trait;
use rusqlite::{Connection, Row, params};

use super::{Sqlite, db_err, exec, query_row};
use crate::*;

const COLUMNS: &str = "id, source, account, failures, created, until, lifted, seq";

fn from_row(r: &Row<'_>) -> rusqlite::Result<LoginBanRecord> {
    Ok(LoginBanRecord {
        id: r.get(0)?,
        source: r.get(1)?,
        account: r.get(2)?,
        failures: u32::try_from(r.get::<_, i64>(3)?).unwrap_or(u32::MAX),
        created: r.get(4)?,
        until: r.get(5)?,
        lifted: r.get(6)?,
        seq: r.get(7)?,
    })
}

/// The next position in the sequence of ban changes. Inside the write transaction, which holds the
/// database's write lock: positions are handed out in commit order, across processes too.
fn next_seq(conn: &Connection) -> rusqlite::Result<i64> {
    exec(
        conn,
        "UPDATE meta SET value = value + 1 WHERE key = 'login_ban_seq'",
        [],
    )?;
    query_row(
        conn,
        "SELECT value FROM meta WHERE key = 'login_ban_seq'",
        [],
        |r| r.get(0),
    )
}

fn select(
    conn: &Connection,
    filter: &str,
    p: impl rusqlite::Params,
) -> Result<Vec<LoginBanRecord>> {
    let mut st = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM login_bans {filter}"))
        .map_err(db_err)?;
    let rows = st.query_map(p, from_row).map_err(db_err)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
}

#[async_trait]
impl LoginStore for Sqlite {
    async fn ban_add(&self, ban: &NewLoginBan) -> Result<LoginBanRecord> {
        let b = ban.clone();
        if b.source.is_none() && b.account.is_none() {
            return Err(StoreError::Invalid(
                "a ban needs a source or an account".into(),
            ));
        }
        self.0
            .writer
            .write(move |tx| {
                let seq = next_seq(tx.conn).map_err(db_err)?;
                exec(
                    tx.conn,
                    "INSERT INTO login_bans(source, account, failures, created, until, seq) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![b.source, b.account, b.failures, b.created, b.until, seq],
                )
                .map_err(db_err)?;
                Ok(LoginBanRecord {
                    id: tx.conn.last_insert_rowid(),
                    source: b.source,
                    account: b.account,
                    failures: b.failures,
                    created: b.created,
                    until: b.until,
                    lifted: None,
                    seq,
                })
            })
            .await
    }

    async fn bans_active(&self, now: i64) -> Result<Vec<LoginBanRecord>> {
        self.0
            .read(move |c, _| {
                select(
                    c,
                    "WHERE lifted IS NULL AND until > ?1 ORDER BY until, id",
                    [now],
                )
            })
            .await
    }

    async fn bans_changed_since(&self, seq: i64, limit: usize) -> Result<Vec<LoginBanRecord>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.0
            .read(move |c, _| select(c, "WHERE seq > ?1 ORDER BY seq LIMIT ?2", [seq, limit]))
            .await
    }

    async fn ban_lift(&self, target: &str, now: i64) -> Result<Vec<LoginBanRecord>> {
        let target = target.to_string();
        self.0
            .writer
            .write(move |tx| {
                let found = select(
                    tx.conn,
                    "WHERE lifted IS NULL AND until > ?1 AND (source = ?2 OR account = ?2) \
                     ORDER BY id",
                    params![now, target],
                )?;
                if found.is_empty() {
                    return Err(StoreError::NotFound(format!("login ban of {target}")));
                }
                let mut lifted = Vec::with_capacity(found.len());
                for mut b in found {
                    let seq = next_seq(tx.conn).map_err(db_err)?;
                    exec(
                        tx.conn,
                        "UPDATE login_bans SET lifted = ?1, seq = ?2 WHERE id = ?3",
                        params![now, seq, b.id],
                    )
                    .map_err(db_err)?;
                    b.lifted = Some(now);
                    b.seq = seq;
                    lifted.push(b);
                }
                Ok(lifted)
            })
            .await
    }

    async fn bans_purge(&self, before: i64) -> Result<u64> {
        self.0
            .writer
            .write(move |tx| {
                let n = exec(
                    tx.conn,
                    "DELETE FROM login_bans WHERE until < ?1 OR lifted < ?1",
                    [before],
                )
                .map_err(db_err)?;
                Ok(n as u64)
            })
            .await
    }

    async fn login_source_record(
        &self,
        account: &str,
        source: &str,
        now: i64,
        keep: usize,
    ) -> Result<()> {
        let (account, source) = (account.to_string(), source.to_string());
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        self.0
            .writer
            .write(move |tx| {
                exec(
                    tx.conn,
                    "INSERT INTO login_sources(account, source, last_success) VALUES (?1, ?2, ?3) \
                     ON CONFLICT(account, source) DO UPDATE SET last_success = \
                     MAX(last_success, excluded.last_success)",
                    params![account, source, now],
                )
                .map_err(db_err)?;
                exec(
                    tx.conn,
                    "DELETE FROM login_sources WHERE account = ?1 AND source NOT IN \
                     (SELECT source FROM login_sources WHERE account = ?1 \
                      ORDER BY last_success DESC, source LIMIT ?2)",
                    params![account, keep],
                )
                .map_err(db_err)?;
                Ok(())
            })
            .await
    }

    async fn login_sources(&self) -> Result<Vec<LoginSourceRecord>> {
        self.0
            .read(move |c, _| {
                let mut st = c
                    .prepare_cached(
                        "SELECT account, source, last_success FROM login_sources \
                         ORDER BY account, last_success DESC, source",
                    )
                    .map_err(db_err)?;
                let rows = st
                    .query_map([], |r| {
                        Ok(LoginSourceRecord {
                            account: r.get(0)?,
                            source: r.get(1)?,
                            last_success: r.get(2)?,
                        })
                    })
                    .map_err(db_err)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
            })
            .await
    }
}
