//! The embedded backend: SQLite (WAL, `synchronous=FULL`) for metadata and small blobs, files for
//! large blobs. One writer thread group-commits; readers use a small connection pool.

mod blobs;
mod directory;
mod dkim;
mod filters;
mod fts;
mod greylist;
mod logins;
mod mailbox;
mod messages;
mod queue;
pub mod schema;
mod sieve;
mod spam;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::broadcast;

use crate::{IntegrityReport, Result, Store, StoreError};
use blobs::BlobDir;
use writer::Writer;

/// Default size up to which a blob is kept inside the database (see `blobs`).
pub const DEFAULT_INLINE_BLOB_MAX: u64 = 64 * 1024;
/// Default maximum number of jobs in one group commit.
pub const DEFAULT_MAX_BATCH: usize = 256;
/// How long a write waits for another process (the CLI) holding the database lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes the WAL file is kept to after a checkpoint.
const JOURNAL_SIZE_LIMIT: i64 = 16 * 1024 * 1024;
/// Prepared statements cached per connection.
const STATEMENT_CACHE: usize = 64;
/// Reader connections kept open.
const READER_POOL: usize = 8;
/// Capacity of the change feed; a slower subscriber sees `Lagged` and must resynchronise.
const FEED_CAPACITY: usize = 4096;

#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Database file; default `<dir>/facteur.db`.
    pub db_path: Option<PathBuf>,
    /// Blob folder; default `<dir>/blobs`.
    pub blobs_path: Option<PathBuf>,
    pub inline_blob_max: u64,
    pub max_batch: usize,
    /// Options of MIME analysis done at append.
    pub mime_limits: message::Limits,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            db_path: None,
            blobs_path: None,
            inline_blob_max: DEFAULT_INLINE_BLOB_MAX,
            max_batch: DEFAULT_MAX_BATCH,
            mime_limits: message::Limits::default(),
        }
    }
}

/// Parsed analyses kept in memory (ENVELOPE, BODYSTRUCTURE for FETCH): blobs never change, so
/// entries never go stale. Bounded; when full, a random entry makes room. Random rather than the
/// oldest: a mailbox larger than the cache, fetched whole again and again (a client's full
/// resynchronisation), would otherwise lose every entry just before it is asked for again and
/// never hit; at random, about as many hits as the cache has room for.
pub(crate) struct AnalysisCache {
    inner: Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    map: std::collections::HashMap<crate::BlobId, Arc<crate::Analysis>>,
    /// The keys of `map`, for picking one at random.
    keys: Vec<crate::BlobId>,
    /// xorshift64 state (randomness for eviction only).
    rng: u64,
}

/// Analyses kept in memory (a few KiB each).
const ANALYSIS_CACHE_ENTRIES: usize = 50_000;

impl AnalysisCache {
    fn new() -> AnalysisCache {
        AnalysisCache {
            inner: Mutex::new(CacheState {
                rng: 0x9e37_79b9_7f4a_7c15,
                ..Default::default()
            }),
        }
    }
    pub(crate) fn get(&self, id: &crate::BlobId) -> Option<Arc<crate::Analysis>> {
        self.inner.lock().ok()?.map.get(id).cloned()
    }
    pub(crate) fn put(&self, id: crate::BlobId, a: Arc<crate::Analysis>) {
        let Ok(mut g) = self.inner.lock() else { return };
        let st = &mut *g;
        if st.map.contains_key(&id) {
            return;
        }
        if st.keys.len() >= ANALYSIS_CACHE_ENTRIES {
            st.rng ^= st.rng << 13;
            st.rng ^= st.rng >> 7;
            st.rng ^= st.rng << 17;
            let victim = (st.rng % st.keys.len() as u64) as usize;
            let old = st.keys.swap_remove(victim);
            st.map.remove(&old);
        }
        st.map.insert(id, a);
        st.keys.push(id);
    }
}

pub struct SqliteStore {
    analysis_cache: AnalysisCache,
    /// Search texts handed over at append, for the indexer.
    pending_text: Arc<fts::PendingText>,
    db_path: PathBuf,
    indexer: fts::IndexerHandle,
    indexer_thread: Option<std::thread::JoinHandle<()>>,
    blobs: BlobDir,
    writer: Writer,
    readers: Mutex<Vec<Connection>>,
    feed: broadcast::Sender<crate::Change>,
    mime_limits: message::Limits,
}

pub(crate) fn db_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ffi::ErrorCode;
    match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            ErrorCode::DiskFull => StoreError::Full(e.to_string()),
            ErrorCode::SystemIoFailure | ErrorCode::CannotOpen | ErrorCode::ReadOnly => {
                StoreError::Io(e.to_string())
            }
            ErrorCode::ConstraintViolation => StoreError::AlreadyExists(e.to_string()),
            _ => StoreError::Backend(e.to_string()),
        },
        _ => StoreError::Backend(e.to_string()),
    }
}

/// Runs a statement through the connection's prepared-statement cache (parsing SQL costs more than
/// executing these small statements).
pub(crate) fn exec<P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    p: P,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(p)
}

/// `query_row` through the prepared-statement cache.
pub(crate) fn query_row<T, P, F>(conn: &Connection, sql: &str, p: P, f: F) -> rusqlite::Result<T>
where
    P: rusqlite::Params,
    F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
{
    conn.prepare_cached(sql)?.query_row(p, f)
}

/// Free space under which an I/O error at open is taken for a full disk.
const NEARLY_FULL_BYTES: u64 = 256 * 1024;

fn nearly_full(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statvfs writes into the zeroed struct we own; `path` is a valid C string.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        libc::statvfs(path.as_ptr(), &mut st) == 0
            && (st.f_bavail as u64).saturating_mul(st.f_frsize as u64) < NEARLY_FULL_BYTES
    }
}

/// SQLite reports some failed writes on a full disk as a generic I/O error; the OS error it saw
/// tells them apart, so operators and clients get "storage is full" rather than "I/O error".
pub(crate) fn refine(conn: &Connection, e: StoreError) -> StoreError {
    match e {
        StoreError::Io(msg) => {
            // SAFETY: the handle is valid for the life of `conn`; the call only reads a field.
            let errno = unsafe { rusqlite::ffi::sqlite3_system_errno(conn.handle()) };
            if errno == libc::ENOSPC || errno == libc::EDQUOT {
                StoreError::Full(msg)
            } else {
                StoreError::Io(msg)
            }
        }
        other => other,
    }
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT).map_err(db_err)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(db_err)?;
    // FULL: the WAL is fsynced at every commit, so a committed transaction survives power loss.
    // The WAL is truncated back to this size after checkpoints instead of keeping its peak size.
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
        .map_err(db_err)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(db_err)?;
    Ok(())
}

fn open_conn(path: &Path, flags: OpenFlags) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| StoreError::Io(format!("cannot open database {}: {e}", path.display())))?;
    configure(&conn)?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `dir`, migrating an older schema. A database from a
    /// newer Facteur is refused before anything is written.
    pub fn open(dir: &Path, opts: SqliteOptions) -> Result<SqliteStore> {
        Self::open_at(dir, opts, schema::SCHEMA_VERSION).map_err(|e| match e {
            // Opening creates the WAL, its index and maybe the schema: on a full disk SQLite often
            // says only "disk I/O error", and no connection is left to ask for the OS error.
            StoreError::Io(msg) if nearly_full(dir) => StoreError::Full(msg),
            other => other,
        })
    }

    fn open_at(dir: &Path, opts: SqliteOptions, version: i64) -> Result<SqliteStore> {
        std::fs::create_dir_all(dir)?;
        let db_path = opts
            .db_path
            .clone()
            .unwrap_or_else(|| dir.join("facteur.db"));
        let blobs_path = opts.blobs_path.clone().unwrap_or_else(|| dir.join("blobs"));
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = open_conn(&db_path, flags)?;
        let found = schema::version(&conn)?;
        if found > schema::SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                found,
                supported: schema::SCHEMA_VERSION,
            });
        }
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(db_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!(
                "could not enable WAL (got {mode})"
            )));
        }
        schema::migrate_to(&mut conn, version)?;
        let blobs = BlobDir::open(blobs_path, opts.inline_blob_max)?;
        let (feed, _) = broadcast::channel(FEED_CAPACITY);
        let pending_text = Arc::new(fts::PendingText::default());
        let (indexer, indexer_thread) = fts::start(
            &db_path,
            blobs.clone(),
            pending_text.clone(),
            opts.mime_limits,
        )?;
        let writer = Writer::start(
            conn,
            blobs.clone(),
            opts.max_batch,
            feed.clone(),
            indexer.clone(),
        )?;
        Ok(SqliteStore {
            analysis_cache: AnalysisCache::new(),
            pending_text,
            db_path,
            indexer,
            indexer_thread: Some(indexer_thread),
            blobs,
            writer,
            readers: Mutex::new(Vec::new()),
            feed,
            mime_limits: opts.mime_limits,
        })
    }

    /// Number of group commits and of jobs they carried (for benchmarks: fsyncs per message).
    pub fn commit_stats(&self) -> (u64, u64) {
        (
            self.writer.stats.commits.load(Ordering::Relaxed),
            self.writer.stats.jobs.load(Ordering::Relaxed),
        )
    }

    fn take_reader(&self) -> Result<Connection> {
        if let Some(c) = self.readers.lock().ok().and_then(|mut v| v.pop()) {
            return Ok(c);
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = open_conn(&self.db_path, flags)?;
        conn.pragma_update(None, "query_only", "ON")
            .map_err(db_err)?;
        let index = fts::fts_path(&self.db_path);
        conn.execute("ATTACH DATABASE ?1 AS fts", [index.to_string_lossy()])
            .map_err(db_err)?;
        Ok(conn)
    }

    fn give_reader(&self, conn: Connection) {
        if let Ok(mut pool) = self.readers.lock()
            && pool.len() < READER_POOL
        {
            pool.push(conn);
        }
    }

    /// Runs a read on the blocking pool with a pooled connection.
    pub(crate) async fn read<R, F>(self: &Arc<Self>, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection, &BlobDir) -> Result<R> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = this.take_reader()?;
            let out = f(&conn, &this.blobs);
            this.give_reader(conn);
            out
        })
        .await
        .map_err(|e| StoreError::Backend(format!("read task failed: {e}")))?
    }
}

impl Drop for SqliteStore {
    /// Stops and waits for the indexer, then (when the fields drop) for the writer, so the database
    /// is closed when the store is gone.
    fn drop(&mut self) {
        self.indexer.stop();
        if let Some(t) = self.indexer_thread.take() {
            let _ = t.join();
        }
    }
}

/// The handle the rest of Facteur holds: cheap to clone, implements `Store`.
#[derive(Clone)]
pub struct Sqlite(pub(crate) Arc<SqliteStore>);

impl Sqlite {
    pub fn open(dir: &Path, opts: SqliteOptions) -> Result<Sqlite> {
        Ok(Sqlite(Arc::new(SqliteStore::open(dir, opts)?)))
    }
    pub fn commit_stats(&self) -> (u64, u64) {
        self.0.commit_stats()
    }
}

#[async_trait]
impl Store for Sqlite {
    async fn check_integrity(&self) -> Result<IntegrityReport> {
        self.0.read(messages::check_integrity).await
    }
    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

/// Hooks for the store's own tests (schema upgrades): not part of the API.
#[doc(hidden)]
pub mod testing {
    use super::*;

    /// Creates a database at an older schema `version` in `dir`.
    pub fn create_at_version(dir: &Path, version: i64) -> Result<()> {
        let store = SqliteStore::open_at(dir, SqliteOptions::default(), version)?;
        drop(store);
        Ok(())
    }

    /// Runs raw SQL on the database of `dir` (to fill an old-version database with data).
    pub fn exec(dir: &Path, sql: &str) -> Result<()> {
        let conn = open_conn(&dir.join("facteur.db"), OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        conn.execute_batch(sql).map_err(db_err)
    }

    /// Highest blob id the full-text indexer has reached.
    pub fn index_watermark(dir: &Path) -> Result<i64> {
        let conn = open_conn(
            &fts::fts_path(&dir.join("facteur.db")),
            OpenFlags::SQLITE_OPEN_READ_WRITE,
        )?;
        conn.query_row("SELECT value FROM state WHERE key = 'watermark'", [], |r| {
            r.get(0)
        })
        .map_err(db_err)
    }

    /// Highest blob id in the store.
    pub fn max_blob_id(dir: &Path) -> Result<i64> {
        let conn = open_conn(&dir.join("facteur.db"), OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        conn.query_row("SELECT COALESCE(MAX(id), 0) FROM blobs", [], |r| r.get(0))
            .map_err(db_err)
    }

    pub fn version(dir: &Path) -> Result<i64> {
        let conn = open_conn(&dir.join("facteur.db"), OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        schema::version(&conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analysis_cache_stays_bounded_and_keeps_the_newest() {
        let cache = AnalysisCache::new();
        let a = Arc::new(message::analyze(
            b"Subject: x\r\n\r\nx\r\n",
            &message::Limits::default(),
        ));
        let id = |n: u32| {
            let mut b = [0u8; 32];
            b[..4].copy_from_slice(&n.to_be_bytes());
            crate::BlobId(b)
        };
        let total = ANALYSIS_CACHE_ENTRIES as u32 + 1000;
        for n in 0..total {
            cache.put(id(n), a.clone());
            assert!(cache.get(&id(n)).is_some());
        }
        cache.put(id(0), a.clone());
        let g = cache.inner.lock().expect("lock");
        assert_eq!(g.map.len(), ANALYSIS_CACHE_ENTRIES);
        assert_eq!(g.keys.len(), ANALYSIS_CACHE_ENTRIES);
        assert!(g.keys.iter().all(|k| g.map.contains_key(k)));
    }
}
