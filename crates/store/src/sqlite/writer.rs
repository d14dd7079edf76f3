//! The single writer: a thread that owns the write connection and group-commits.
//!
//! Callers send jobs; the thread takes every job waiting (up to `max_batch`), runs each inside its own
//! SAVEPOINT of one `BEGIN IMMEDIATE` transaction, syncs the blob directories the batch wrote into,
//! commits once (one WAL fsync with `synchronous=FULL`), and only then answers each caller. A failing
//! job rolls back alone; a failing commit fails the whole batch, and nobody is told "done" for it.

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::{broadcast, oneshot};

use super::blobs::BlobDir;
use super::db_err;
use super::fts::IndexerHandle;
use crate::{Change, Result, StoreError};

/// What a job may do besides SQL: changes to publish and files to handle around the commit.
pub(crate) struct Tx<'a> {
    pub conn: &'a Connection,
    pub blobs: &'a BlobDir,
    pub changes: Vec<Change>,
    /// Directories holding files renamed by this job: fsynced before COMMIT.
    pub sync_dirs: BTreeSet<PathBuf>,
    /// Blob files whose last reference went: removed after COMMIT if still unreferenced.
    pub unlink: Vec<(Vec<u8>, PathBuf)>,
    /// Blob rows created (the indexer is woken for them after COMMIT).
    pub new_blobs: usize,
    /// Blob rows removed (their index entries are dropped after COMMIT).
    pub released: Vec<i64>,
}

impl<'a> Tx<'a> {
    fn new(conn: &'a Connection, blobs: &'a BlobDir) -> Tx<'a> {
        Tx {
            conn,
            blobs,
            changes: vec![],
            sync_dirs: BTreeSet::new(),
            unlink: vec![],
            new_blobs: 0,
            released: vec![],
        }
    }
}

type Completion = Box<dyn FnOnce(&Result<()>) + Send>;
/// A job gets `None` when its batch could not start: it then only builds its completion.
type Job = Box<dyn FnOnce(Option<&mut Tx<'_>>) -> (bool, Completion) + Send>;

/// Counters for benchmarks and tests.
#[derive(Default)]
pub(crate) struct WriterStats {
    pub commits: AtomicU64,
    pub jobs: AtomicU64,
}

pub(crate) struct Writer {
    /// `None` once shut down.
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub stats: Arc<WriterStats>,
}

impl Drop for Writer {
    /// Lets the writer finish the jobs it has, then waits for it: when a store is dropped, its
    /// database is closed (and the WAL checkpointed) before anyone else opens it again.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Writer {
    pub fn start(
        conn: Connection,
        blobs: BlobDir,
        max_batch: usize,
        feed: broadcast::Sender<Change>,
        indexer: IndexerHandle,
    ) -> Result<Writer> {
        let (tx, rx) = mpsc::channel::<Job>();
        let stats = Arc::new(WriterStats::default());
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                run(
                    conn,
                    blobs,
                    rx,
                    max_batch.max(1),
                    feed,
                    thread_stats,
                    indexer,
                )
            })
            .map_err(StoreError::from)?;
        Ok(Writer {
            tx: Some(tx),
            thread: Some(thread),
            stats,
        })
    }

    /// Runs `f` in the next group commit; returns its value once the batch is durable.
    pub async fn write<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<R> + Send + 'static,
    {
        let (done_tx, done_rx) = oneshot::channel::<Result<R>>();
        let job: Job = Box::new(move |tx: Option<&mut Tx<'_>>| {
            let outcome = match tx {
                None => Err(StoreError::Backend(
                    "the write transaction could not start".into(),
                )),
                Some(tx) => match catch_unwind(AssertUnwindSafe(|| f(tx))) {
                    Ok(r) => r.map_err(|e| super::refine(tx.conn, e)),
                    Err(_) => Err(StoreError::Backend("a storage job panicked".into())),
                },
            };
            let ok = outcome.is_ok();
            let completion: Completion = Box::new(move |commit: &Result<()>| {
                let answer = match (outcome, commit) {
                    (Err(e), _) => Err(e),
                    (Ok(_), Err(e)) => Err(clone_err(e)),
                    (Ok(v), Ok(())) => Ok(v),
                };
                let _ = done_tx.send(answer);
            });
            (ok, completion)
        });
        self.tx
            .as_ref()
            .ok_or(StoreError::Closed)?
            .send(job)
            .map_err(|_| StoreError::Closed)?;
        done_rx.await.map_err(|_| StoreError::Closed)?
    }
}

fn clone_err(e: &StoreError) -> StoreError {
    match e {
        StoreError::Full(s) => StoreError::Full(s.clone()),
        StoreError::Io(s) => StoreError::Io(s.clone()),
        other => StoreError::Backend(other.to_string()),
    }
}

fn run(
    conn: Connection,
    blobs: BlobDir,
    rx: mpsc::Receiver<Job>,
    max_batch: usize,
    feed: broadcast::Sender<Change>,
    stats: Arc<WriterStats>,
    indexer: IndexerHandle,
) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < max_batch {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        stats.jobs.fetch_add(jobs.len() as u64, Ordering::Relaxed);
        stats.commits.fetch_add(1, Ordering::Relaxed);
        run_batch(&conn, &blobs, jobs, &feed, &indexer);
    }
}

fn run_batch(
    conn: &Connection,
    blobs: &BlobDir,
    jobs: Vec<Job>,
    feed: &broadcast::Sender<Change>,
    indexer: &IndexerHandle,
) {
    let mut completions: Vec<Completion> = Vec::with_capacity(jobs.len());
    let mut changes = Vec::new();
    let mut sync_dirs = BTreeSet::new();
    let mut unlink = Vec::new();
    let mut new_blobs = 0;
    let mut released = Vec::new();

    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE").map_err(db_err) {
        // Could not even start: every job fails without running.
        tracing::error!(error = %e, "could not start a write transaction; batch refused");
        let err: Result<()> = Err(e);
        for job in jobs {
            let (_, completion) = job(None);
            completion(&err);
        }
        return;
    }

    for job in jobs {
        let mut tx = Tx::new(conn, blobs);
        let started = conn.execute_batch("SAVEPOINT job").map_err(db_err);
        if let Err(e) = started {
            let fail: Result<()> = Err(e);
            let (_, completion) = job(None);
            completion(&fail);
            continue;
        }
        let (ok, completion) = job(Some(&mut tx));
        if ok && conn.execute_batch("RELEASE job").is_ok() {
            changes.append(&mut tx.changes);
            sync_dirs.append(&mut tx.sync_dirs);
            unlink.append(&mut tx.unlink);
            new_blobs += tx.new_blobs;
            released.append(&mut tx.released);
        } else {
            let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
        }
        completions.push(completion);
    }

    // Renamed blob files must be durable before the rows that name them are.
    let mut result: Result<()> = Ok(());
    for dir in &sync_dirs {
        if let Err(e) = super::blobs::fsync_dir(dir) {
            result = Err(e);
            break;
        }
    }
    if result.is_ok() {
        result = conn
            .execute_batch("COMMIT")
            .map_err(|e| super::refine(conn, db_err(e)));
    }
    if result.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
        tracing::error!(error = %result.as_ref().err().map(|e| e.to_string()).unwrap_or_default(), "group commit failed; batch refused");
    }
    // Publish before answering, so a caller that returns from a write finds it already in the feed.
    if result.is_ok() {
        for change in changes {
            let _ = feed.send(change);
        }
    }
    for completion in completions {
        completion(&result);
    }
    if result.is_ok() {
        if new_blobs > 0 || !released.is_empty() {
            indexer.notify(released);
        }
        if !unlink.is_empty() {
            remove_unreferenced(conn, unlink);
        }
    }
}

/// Removes blob files whose rows are gone. Runs under the database write lock so that no other
/// process can be re-adding the same blob between the check and the unlink.
fn remove_unreferenced(conn: &Connection, files: Vec<(Vec<u8>, PathBuf)>) {
    if conn.execute_batch("BEGIN IMMEDIATE").is_err() {
        return; // Left as orphans; the integrity check reports them.
    }
    for (hash, path) in files {
        let exists: bool = conn
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM blobs WHERE hash = ?1)",
                [&hash],
                |r| r.get(0),
            )
            .unwrap_or(true);
        if !exists
            && let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "could not remove unreferenced blob file");
        }
    }
    let _ = conn.execute_batch("COMMIT");
}
