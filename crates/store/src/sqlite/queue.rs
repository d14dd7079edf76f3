//! The outbound queue's rows (worked by the queue crate in a later issue).

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Sqlite, db_err, exec, query_row};
use crate::*;

const COLUMNS: &str = "q.id, b.hash, b.size, q.sender, q.recipients, q.envid, q.ret, q.created, q.next_attempt, \
     q.attempts, q.last_error, q.smtp_id";

fn from_row(r: &Row<'_>) -> rusqlite::Result<QueueEntry> {
    let hash: Vec<u8> = r.get(1)?;
    let mut id = [0u8; 32];
    if hash.len() == 32 {
        id.copy_from_slice(&hash);
    }
    let recipients: String = r.get(4)?;
    Ok(QueueEntry {
        id: r.get(0)?,
        blob: BlobId(id),
        size: r.get::<_, i64>(2)? as u64,
        sender: r.get(3)?,
        recipients: serde_json::from_str(&recipients).unwrap_or_default(),
        envid: r.get(5)?,
        ret: r.get(6)?,
        created: r.get(7)?,
        next_attempt: r.get(8)?,
        attempts: r.get::<_, i64>(9)? as u32,
        last_error: r.get(10)?,
        smtp_id: r.get(11)?,
    })
}

fn select(conn: &Connection, filter: &str, p: impl rusqlite::Params) -> Result<Vec<QueueEntry>> {
    let mut st = conn
        .prepare(&format!(
            "SELECT {COLUMNS} FROM queue q JOIN blobs b ON b.id = q.blob_id {filter}"
        ))
        .map_err(db_err)?;
    let rows = st.query_map(p, from_row).map_err(db_err)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
}

#[async_trait]
impl QueueStore for Sqlite {
    async fn queue_list(&self) -> Result<Vec<QueueEntry>> {
        self.0.read(|c, _| select(c, "ORDER BY q.id", [])).await
    }

    async fn queue_get(&self, id: QueueId) -> Result<Option<QueueEntry>> {
        self.0
            .read(move |c, _| Ok(select(c, "WHERE q.id = ?1", [id])?.into_iter().next()))
            .await
    }

    async fn queue_due(&self, now: i64, limit: usize) -> Result<Vec<QueueEntry>> {
        self.0
            .read(move |c, _| {
                select(
                    c,
                    "WHERE q.next_attempt <= ?1 ORDER BY q.next_attempt, q.id LIMIT ?2",
                    params![now, limit as i64],
                )
            })
            .await
    }

    async fn queue_update(&self, entry: &QueueEntry) -> Result<()> {
        let e = entry.clone();
        self.0
            .writer
            .write(move |tx| {
                let recipients = serde_json::to_string(&e.recipients).map_err(|x| StoreError::Backend(x.to_string()))?;
                let n = exec(tx.conn,
                        "UPDATE queue SET recipients = ?1, next_attempt = ?2, attempts = ?3, last_error = ?4 WHERE id = ?5",
                        params![recipients, e.next_attempt, e.attempts, e.last_error, e.id],
                    )
                    .map_err(db_err)?;
                if n == 0 { Err(StoreError::NotFound(format!("queue entry {}", e.id))) } else { Ok(()) }
            })
            .await
    }

    async fn queue_delete(&self, id: QueueId) -> Result<()> {
        self.0
            .writer
            .write(move |tx| {
                let blob: i64 = query_row(
                    tx.conn,
                    "SELECT blob_id FROM queue WHERE id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err)?
                .ok_or_else(|| StoreError::NotFound(format!("queue entry {id}")))?;
                exec(tx.conn, "DELETE FROM queue WHERE id = ?1", [id]).map_err(db_err)?;
                super::messages::release_blob_pub(tx, blob)
            })
            .await
    }
}
