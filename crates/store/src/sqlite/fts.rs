//! The full-text index, kept in its own database file beside the main one and filled by its own
//! thread, so that indexing (trigram tokenising costs more CPU than the rest of an append together)
//! runs on another core and never delays a delivery's acknowledgement.
//!
//! The index is derived data: it is rebuilt from the blobs if lost (delete the file). Blob ids are
//! AUTOINCREMENT, so the indexer follows them with a watermark: every blob with an id at or below it
//! is indexed. A search answers from the index for those, and scans the few newer ones, so results
//! are exact at any moment — identical to a scan of every message.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::blobs::BlobDir;
use super::{db_err, open_conn};
use crate::{BlobId, Result, TextField, Uid};

/// Blobs indexed per transaction of the index.
const INDEX_CHUNK: i64 = 128;
/// Text indexed per transaction of the index, at most (one message may exceed it alone).
const INDEX_CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// The indexer also looks for work this often without being woken (writes by another process).
const POLL: Duration = Duration::from_secs(10);
/// Nice value of the indexer thread.
const INDEXER_NICE: libc::c_int = 10;
/// Search texts handed over at append and waiting for the indexer, at most (bytes).
const PENDING_TEXT_BYTES: usize = 32 * 1024 * 1024;

/// Search texts of blobs just appended, made by the caller's analysis (SMTP analyses each message
/// once), so the indexer does not read and analyse those blobs again. Keyed by content hash, so
/// an entry is right for any blob with that hash whether or not its commit went through; entries
/// of blobs never indexed (a failed commit, a blob that existed already) age out oldest first.
#[derive(Default)]
pub(crate) struct PendingText {
    inner: Mutex<PendingState>,
}

#[derive(Default)]
struct PendingState {
    map: HashMap<BlobId, message::SearchText>,
    order: VecDeque<BlobId>,
    bytes: usize,
}

fn text_size(t: &message::SearchText) -> usize {
    t.headers.len() + t.body.len()
}

impl PendingText {
    pub(crate) fn put(&self, id: BlobId, text: message::SearchText) {
        let size = text_size(&text);
        if size > PENDING_TEXT_BYTES {
            return;
        }
        let Ok(mut st) = self.inner.lock() else {
            return;
        };
        if st.map.contains_key(&id) {
            return;
        }
        while st.bytes + size > PENDING_TEXT_BYTES {
            let Some(old) = st.order.pop_front() else {
                break;
            };
            if let Some(t) = st.map.remove(&old) {
                st.bytes -= text_size(&t);
            }
        }
        st.bytes += size;
        st.map.insert(id, text);
        st.order.push_back(id);
    }

    /// The text of `id`, kept (a search of blobs the indexer has not reached yet).
    fn get(&self, id: &BlobId) -> Option<message::SearchText> {
        self.inner.lock().ok()?.map.get(id).cloned()
    }

    /// The text of `id`, removed (the indexer took it).
    fn take(&self, id: &BlobId) -> Option<message::SearchText> {
        let mut st = self.inner.lock().ok()?;
        let t = st.map.remove(id)?;
        st.bytes -= text_size(&t);
        if let Some(pos) = st.order.iter().position(|k| k == id) {
            st.order.remove(pos);
        }
        Some(t)
    }
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS state(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO state(key, value) VALUES ('watermark', 0);
-- Trigram tokens give substring matching, which is what IMAP SEARCH BODY/TEXT means.
CREATE VIRTUAL TABLE IF NOT EXISTS blob_text USING fts5(
    headers, body, content='', contentless_delete=1, tokenize='trigram'
);
"#;

pub(crate) enum Msg {
    Wake,
    Forget(Vec<i64>),
}

/// Tells the indexer about committed changes. Cheap to clone.
#[derive(Clone)]
pub(crate) struct IndexerHandle {
    tx: mpsc::Sender<Msg>,
    stop: Arc<AtomicBool>,
}

impl IndexerHandle {
    /// New blobs were committed (wake), and these blob rows were removed.
    pub fn notify(&self, released: Vec<i64>) {
        if !released.is_empty() {
            let _ = self.tx.send(Msg::Forget(released));
        }
        let _ = self.tx.send(Msg::Wake);
    }

    /// Asks the indexer to stop at its next chunk (the store is closing).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.tx.send(Msg::Wake);
    }
}

pub(crate) fn fts_path(db_path: &Path) -> PathBuf {
    db_path.with_extension("fts.db")
}

/// Creates the index database if needed and starts the indexer thread.
pub(crate) fn start(
    db_path: &Path,
    blobs: BlobDir,
    pending: Arc<PendingText>,
    limits: message::Limits,
) -> Result<(IndexerHandle, std::thread::JoinHandle<()>)> {
    let index_path = fts_path(db_path);
    let index = open_conn(
        &index_path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    )?;
    let _: String = index
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(db_err)?;
    // Derived data: a crash may lose the last index writes, and the watermark with them.
    index
        .pragma_update(None, "journal_size_limit", 16 * 1024 * 1024)
        .map_err(db_err)?;
    index
        .pragma_update(None, "synchronous", "NORMAL")
        .map_err(db_err)?;
    index.execute_batch(SCHEMA).map_err(db_err)?;
    let main = open_conn(db_path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    main.pragma_update(None, "query_only", "ON")
        .map_err(db_err)?;
    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = stop.clone();
    let thread = std::thread::Builder::new()
        .name("store-indexer".into())
        .spawn(move || {
            lower_priority();
            run(index, main, blobs, &pending, limits, rx, &thread_stop)
        })
        .map_err(crate::StoreError::from)?;
    let handle = IndexerHandle { tx, stop };
    handle.notify(vec![]);
    Ok((handle, thread))
}

/// Deliveries come first: on a busy machine the indexer lags and searches scan a little more.
fn lower_priority() {
    // On Linux, PRIO_PROCESS with 0 sets the nice value of the calling thread only.
    // SAFETY: setpriority has no memory-safety preconditions; failure is harmless.
    let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, INDEXER_NICE) };
}

fn run(
    index: Connection,
    main: Connection,
    blobs: BlobDir,
    pending: &PendingText,
    limits: message::Limits,
    rx: mpsc::Receiver<Msg>,
    stop: &AtomicBool,
) {
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let mut forget = Vec::new();
        let mut wake = false;
        match rx.recv_timeout(POLL) {
            Ok(Msg::Wake) => wake = true,
            Ok(Msg::Forget(ids)) => forget.extend(ids),
            Err(mpsc::RecvTimeoutError::Timeout) => wake = true,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        // Coalesce everything already queued.
        while let Ok(m) = rx.try_recv() {
            match m {
                Msg::Wake => wake = true,
                Msg::Forget(ids) => forget.extend(ids),
            }
        }
        if !forget.is_empty()
            && let Err(e) = drop_entries(&index, &forget)
        {
            tracing::warn!(error = %e, "could not drop index entries of removed messages");
        }
        if wake && let Err(e) = catch_up(&index, &main, &blobs, pending, &limits, stop) {
            tracing::warn!(error = %e, "full-text indexing failed; searches scan unindexed messages");
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

fn drop_entries(index: &Connection, ids: &[i64]) -> Result<()> {
    index.execute_batch("BEGIN").map_err(db_err)?;
    for id in ids {
        index
            .execute("DELETE FROM blob_text WHERE rowid = ?1", [id])
            .map_err(db_err)?;
    }
    index.execute_batch("COMMIT").map_err(db_err)
}

fn watermark(index: &Connection) -> Result<i64> {
    index
        .query_row("SELECT value FROM state WHERE key = 'watermark'", [], |r| {
            r.get(0)
        })
        .map_err(db_err)
}

fn catch_up(
    index: &Connection,
    main: &Connection,
    blobs: &BlobDir,
    pending: &PendingText,
    limits: &message::Limits,
    stop: &AtomicBool,
) -> Result<()> {
    while !stop.load(Ordering::Relaxed) {
        let mark = watermark(index)?;
        let rows: Vec<(i64, Vec<u8>, Option<Vec<u8>>)> = {
            let mut st = main
                .prepare_cached(
                    "SELECT id, hash, data FROM blobs WHERE id > ?1 ORDER BY id LIMIT ?2",
                )
                .map_err(db_err)?;
            st.query_map(params![mark, INDEX_CHUNK], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(db_err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(db_err)?
        };
        if rows.is_empty() {
            return Ok(());
        }
        let mut last = mark;
        let mut bytes = 0usize;
        index.execute_batch("BEGIN").map_err(db_err)?;
        for (id, hash, data) in rows {
            // Bounded transactions: the index's WAL and memory stay small however big the messages.
            if bytes >= INDEX_CHUNK_BYTES {
                break;
            }
            last = id;
            let Some(text) = search_text_of(blobs, pending, true, &hash, data, limits) else {
                continue;
            };
            bytes += text.headers.len() + text.body.len();
            index
                .execute(
                    "INSERT OR REPLACE INTO blob_text(rowid, headers, body) VALUES (?1, ?2, ?3)",
                    params![id, text.headers, text.body],
                )
                .map_err(db_err)?;
        }
        index
            .execute(
                "UPDATE state SET value = ?1 WHERE key = 'watermark'",
                [last],
            )
            .map_err(db_err)?;
        index.execute_batch("COMMIT").map_err(db_err)?;
    }
    Ok(())
}

fn search_text_of(
    blobs: &BlobDir,
    pending: &PendingText,
    take: bool,
    hash: &[u8],
    data: Option<Vec<u8>>,
    limits: &message::Limits,
) -> Option<message::SearchText> {
    if let Ok(h) = <[u8; 32]>::try_from(hash) {
        let id = BlobId(h);
        let handed = if take {
            pending.take(&id)
        } else {
            pending.get(&id)
        };
        if handed.is_some() {
            return handed;
        }
    }
    let raw = match data {
        Some(d) => d,
        None => {
            let id = BlobId(hash.try_into().ok()?);
            match blobs.read(&id, None) {
                Ok(d) => d,
                // Removed since (the message was expunged): nothing to index.
                Err(_) => return None,
            }
        }
    };
    Some(message::analyze(&raw, limits).search)
}

/// The FTS5 query for a substring: a quoted string (quotes doubled) matches as a substring with the
/// trigram tokenizer.
fn fts_query(field: TextField, needle: &str) -> String {
    let quoted = format!("\"{}\"", needle.replace('"', "\"\""));
    match field {
        TextField::Body => format!("body : {quoted}"),
        TextField::Headers => format!("headers : {quoted}"),
        TextField::Text => format!("{{headers body}} : {quoted}"),
    }
}

/// Case-insensitive substring test used for messages the index has not reached yet.
fn contains(text: &message::SearchText, field: TextField, needle_lower: &str) -> bool {
    let hit = |s: &str| s.to_lowercase().contains(needle_lower);
    match field {
        TextField::Body => hit(&text.body),
        TextField::Headers => hit(&text.headers),
        TextField::Text => hit(&text.headers) || hit(&text.body),
    }
}

/// Messages of `mailbox` whose text contains `needle`: index hits for indexed blobs, a scan of the rest.
/// `conn` is a reader with the index attached as `fts`.
pub(crate) fn search(
    conn: &Connection,
    blobs: &BlobDir,
    pending: &PendingText,
    limits: &message::Limits,
    mailbox: i64,
    field: TextField,
    needle: &str,
) -> Result<Vec<Uid>> {
    // One read transaction: the watermark and the index rows come from the same snapshot.
    conn.execute_batch("BEGIN").map_err(db_err)?;
    let out = search_in_snapshot(conn, blobs, pending, limits, mailbox, field, needle);
    let _ = conn.execute_batch("COMMIT");
    out
}

fn search_in_snapshot(
    conn: &Connection,
    blobs: &BlobDir,
    handed: &PendingText,
    limits: &message::Limits,
    mailbox: i64,
    field: TextField,
    needle: &str,
) -> Result<Vec<Uid>> {
    let mark: i64 = conn
        .query_row(
            "SELECT value FROM fts.state WHERE key = 'watermark'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_err)?
        .unwrap_or(0);
    let mut uids: Vec<Uid> = {
        let mut st = conn
            .prepare_cached(
                "SELECT m.uid FROM messages m WHERE m.mailbox_id = ?1 AND m.blob_id <= ?3 AND m.blob_id IN \
                 (SELECT rowid FROM fts.blob_text WHERE blob_text MATCH ?2)",
            )
            .map_err(db_err)?;
        st.query_map(params![mailbox, fts_query(field, needle), mark], |r| {
            r.get(0)
        })
        .map_err(db_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(db_err)?
    };
    let pending: Vec<(Uid, Vec<u8>, Option<Vec<u8>>)> = {
        let mut st = conn
            .prepare_cached(
                "SELECT m.uid, b.hash, b.data FROM messages m JOIN blobs b ON b.id = m.blob_id \
                 WHERE m.mailbox_id = ?1 AND m.blob_id > ?2",
            )
            .map_err(db_err)?;
        st.query_map(params![mailbox, mark], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .map_err(db_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(db_err)?
    };
    let lower = needle.to_lowercase();
    for (uid, hash, data) in pending {
        if search_text_of(blobs, handed, false, &hash, data, limits)
            .is_some_and(|t| contains(&t, field, &lower))
        {
            uids.push(uid);
        }
    }
    uids.sort_unstable();
    Ok(uids)
}
