//! Where message data waits while it is received: in memory up to a threshold, within one byte
//! budget shared by every transfer of the process, and past either in a file of the blob temp
//! folder. So 1,000 clients each sending 50 MB hold at most the budget in memory, not 50 GB.
//!
//! The data readers (DATA and BDAT) append to a small buffer; after each read from the socket
//! the session calls [`Spool::settle`], which keeps the buffer in memory while the threshold and
//! the budget allow, and otherwise writes it out (asynchronously) and continues in the file.
//! A complete message is a [`MessageData`]: its bytes, or its spool file (removed when dropped).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::AsyncWriteExt;

/// Default size past which a message being received goes to a file.
pub const DEFAULT_SPOOL_THRESHOLD: u64 = 1024 * 1024;
/// Default budget for the message data held in memory by all transfers together.
pub const DEFAULT_DATA_MEMORY: u64 = 64 * 1024 * 1024;
/// Bytes collected before a write to the spool file.
pub const SPOOL_WRITE_CHUNK: usize = 64 * 1024;

static SPOOL_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A byte budget shared by every transfer (and, for processing, every delivery) of the process.
#[derive(Debug)]
pub struct MemoryBudget {
    max: u64,
    used: AtomicU64,
}

impl MemoryBudget {
    pub fn new(max: u64) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget {
            max,
            used: AtomicU64::new(0),
        })
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    fn try_take(&self, n: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|&t| t <= self.max)
            })
            .is_ok()
    }

    fn give_back(&self, n: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(n))
            });
    }
}

/// Bytes held from a [`MemoryBudget`]; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Option<Arc<MemoryBudget>>,
    bytes: u64,
}

impl Reservation {
    pub fn none() -> Reservation {
        Reservation {
            budget: None,
            bytes: 0,
        }
    }

    pub fn new(budget: &Arc<MemoryBudget>) -> Reservation {
        Reservation {
            budget: Some(budget.clone()),
            bytes: 0,
        }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Holds `total` bytes in all (more, or fewer), if the budget allows.
    pub fn resize(&mut self, total: u64) -> bool {
        let Some(b) = &self.budget else {
            return total == 0;
        };
        if total > self.bytes {
            if !b.try_take(total - self.bytes) {
                return false;
            }
        } else {
            b.give_back(self.bytes - total);
        }
        self.bytes = total;
        true
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            b.give_back(self.bytes);
        }
    }
}

/// Settings of the spool, shared by a listener's sessions.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    /// Folder for spool files (the store's blob temp folder, cleaned at start); `None`: never
    /// spool, refuse (4xx) what the budget cannot hold.
    pub dir: Option<PathBuf>,
    /// Messages larger than this go to a file while they are received.
    pub threshold: u64,
    /// Message data held in memory by all transfers together.
    pub budget: Arc<MemoryBudget>,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            dir: None,
            threshold: DEFAULT_SPOOL_THRESHOLD,
            budget: MemoryBudget::new(DEFAULT_DATA_MEMORY),
        }
    }
}

/// A spool file; removed when dropped (a delivered message's bytes are in the store by then).
#[derive(Debug)]
pub struct SpoolFile {
    path: PathBuf,
    len: u64,
}

impl SpoolFile {
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for SpoolFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A complete message as received.
#[derive(Debug)]
pub enum MessageData {
    /// In memory, with the share of the data budget it holds.
    Memory(Vec<u8>, Reservation),
    Spooled(SpoolFile),
}

impl MessageData {
    pub fn len(&self) -> u64 {
        match self {
            MessageData::Memory(v, _) => v.len() as u64,
            MessageData::Spooled(f) => f.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes (one read of a spool file, off the async threads).
    pub async fn into_bytes(self) -> std::io::Result<Vec<u8>> {
        match self {
            MessageData::Memory(v, _) => Ok(v),
            MessageData::Spooled(f) => {
                let path = f.path.clone();
                let bytes = tokio::fs::read(&path).await?;
                drop(f);
                Ok(bytes)
            }
        }
    }
}

impl From<Vec<u8>> for MessageData {
    fn from(v: Vec<u8>) -> MessageData {
        MessageData::Memory(v, Reservation::none())
    }
}

/// Default budget for the bytes of messages being analysed, checked and stored at once.
pub const DEFAULT_PROCESSING_MEMORY: u64 = 256 * 1024 * 1024;
/// A message in process holds about this many times its size (its bytes, the analysis, the
/// copies the checks make).
const PROCESSING_FACTOR: u64 = 2;

/// Bounds the memory of deliveries in progress, all together: each holds a share of the budget
/// in proportion to its message's size while it is analysed, checked and stored; a message
/// larger than the whole budget holds all of it. Deliveries wait for their share, in order.
#[derive(Debug)]
pub struct ProcessingBudget {
    sem: tokio::sync::Semaphore,
    /// Permits in all; one permit is one KiB.
    permits: u32,
}

impl ProcessingBudget {
    pub fn new(bytes: u64) -> Arc<ProcessingBudget> {
        let permits = (bytes / 1024).clamp(1, u64::from(u32::MAX >> 4)) as u32;
        Arc::new(ProcessingBudget {
            sem: tokio::sync::Semaphore::new(permits as usize),
            permits,
        })
    }

    /// Waits for the share of a message of `len` bytes.
    pub async fn hold(&self, len: u64) -> Option<tokio::sync::SemaphorePermit<'_>> {
        let want = (len.saturating_mul(PROCESSING_FACTOR) / 1024 + 1).min(u64::from(self.permits));
        self.sem.acquire_many(want as u32).await.ok()
    }
}

impl Default for ProcessingBudget {
    fn default() -> Self {
        let permits = (DEFAULT_PROCESSING_MEMORY / 1024) as u32;
        ProcessingBudget {
            sem: tokio::sync::Semaphore::new(permits as usize),
            permits,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpoolError {
    /// The memory budget is spent and no spool folder is configured.
    NoMemory,
    /// The spool file could not be written (disk full, permissions).
    Io,
}

/// The message being received.
#[derive(Debug)]
pub struct Spool {
    cfg: Arc<SpoolConfig>,
    /// Bytes not yet written out (all of them while in memory).
    pending: Vec<u8>,
    reservation: Reservation,
    file: Option<(tokio::fs::File, SpoolFile)>,
    error: Option<SpoolError>,
}

impl Spool {
    pub fn new(cfg: Arc<SpoolConfig>) -> Spool {
        let reservation = Reservation::new(&cfg.budget);
        Spool {
            cfg,
            pending: Vec::new(),
            reservation,
            file: None,
            error: None,
        }
    }

    /// Where the data readers append.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.pending
    }

    /// Bytes received so far (written out and pending).
    pub fn len(&self) -> u64 {
        self.file.as_ref().map_or(0, |(_, f)| f.len) + self.pending.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn in_file(&self) -> bool {
        self.file.is_some()
    }

    pub fn error(&self) -> Option<SpoolError> {
        self.error
    }

    /// Drops everything received (the message will be refused); keeps refusing quietly.
    pub fn discard(&mut self) {
        self.pending = Vec::new();
        self.file = None;
        let _ = self.reservation.resize(0);
    }

    /// After new data was appended: keeps it in memory if the threshold and the budget allow,
    /// else writes it to the spool file.
    pub async fn settle(&mut self) {
        if self.error.is_some() {
            self.pending.clear();
            return;
        }
        if self.file.is_none() {
            let want = self.pending.len() as u64;
            if want <= self.cfg.threshold
                && self.reservation.resize(want.max(self.reservation.bytes()))
            {
                return;
            }
            if let Err(e) = self.open().await {
                self.fail(e);
                return;
            }
            // What was held in memory goes out now, and its share of the budget with it.
            if let Err(e) = self.write_pending().await {
                self.fail(e);
            }
            return;
        }
        if self.pending.len() >= SPOOL_WRITE_CHUNK
            && let Err(e) = self.write_pending().await
        {
            self.fail(e);
        }
    }

    fn fail(&mut self, e: SpoolError) {
        tracing::warn!(error = ?e, "message data could not be kept; the message will be refused");
        self.error = Some(e);
        self.discard();
    }

    async fn open(&mut self) -> Result<(), SpoolError> {
        let Some(dir) = &self.cfg.dir else {
            return Err(SpoolError::NoMemory);
        };
        let n = SPOOL_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("spool-{}-{n}.tmp", std::process::id()));
        let mut options = tokio::fs::OpenOptions::new();
        options.write(true).create_new(true);
        // Mail is readable by the server only.
        #[cfg(unix)]
        options.mode(0o600);
        let file = options.open(&path).await.map_err(|e| {
            tracing::warn!(path = %path.display(), error = %e, "cannot create a spool file");
            SpoolError::Io
        })?;
        self.file = Some((file, SpoolFile { path, len: 0 }));
        Ok(())
    }

    async fn write_pending(&mut self) -> Result<(), SpoolError> {
        let Some((file, spool)) = self.file.as_mut() else {
            return Ok(());
        };
        if self.pending.is_empty() {
            return Ok(());
        }
        file.write_all(&self.pending).await.map_err(|e| {
            tracing::warn!(path = %spool.path.display(), error = %e, "spool write failed");
            SpoolError::Io
        })?;
        spool.len += self.pending.len() as u64;
        self.pending.clear();
        if self.pending.capacity() > SPOOL_WRITE_CHUNK * 2 {
            self.pending.shrink_to(SPOOL_WRITE_CHUNK * 2);
        }
        let _ = self.reservation.resize(0);
        Ok(())
    }

    /// The complete message.
    pub async fn finish(mut self) -> Result<MessageData, SpoolError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.file.is_none() {
            let want = self.pending.len() as u64;
            if !self.reservation.resize(want.max(self.reservation.bytes())) {
                // Past the budget at the very end (a message smaller than the last settle saw
                // cannot get here; a zero-length write can): spool it.
                self.open().await?;
            } else {
                let bytes = std::mem::take(&mut self.pending);
                let reservation = std::mem::replace(&mut self.reservation, Reservation::none());
                return Ok(MessageData::Memory(bytes, reservation));
            }
        }
        self.write_pending().await?;
        let Some((mut file, spool)) = self.file.take() else {
            return Err(SpoolError::Io);
        };
        file.flush().await.map_err(|_| SpoolError::Io)?;
        Ok(MessageData::Spooled(spool))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn small_stays_in_memory_large_goes_to_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let budget = MemoryBudget::new(1000);
        let cfg = Arc::new(SpoolConfig {
            dir: Some(dir.path().to_path_buf()),
            threshold: 100,
            budget: budget.clone(),
        });
        let mut s = Spool::new(cfg.clone());
        s.buffer().extend_from_slice(&[b'a'; 50]);
        s.settle().await;
        assert!(!s.in_file());
        assert_eq!(budget.used(), 50);
        let data = s.finish().await.expect("ok");
        assert!(matches!(data, MessageData::Memory(ref v, _) if v.len() == 50));
        drop(data);
        assert_eq!(budget.used(), 0);

        let mut s = Spool::new(cfg.clone());
        for _ in 0..10 {
            s.buffer().extend_from_slice(&[b'b'; 30]);
            s.settle().await;
        }
        assert!(s.in_file());
        assert_eq!(budget.used(), 0, "a spooled transfer holds no budget");
        let data = s.finish().await.expect("ok");
        let MessageData::Spooled(f) = &data else {
            panic!("not spooled")
        };
        let path = f.path().to_path_buf();
        assert_eq!(std::fs::read(&path).expect("read"), vec![b'b'; 300]);
        assert_eq!(data.into_bytes().await.expect("bytes"), vec![b'b'; 300]);
        assert!(!path.exists(), "spool file removed");
    }

    #[tokio::test]
    async fn budget_spent_spools_or_refuses() {
        let dir = tempfile::tempdir().expect("tmp");
        let budget = MemoryBudget::new(60);
        let with_dir = Arc::new(SpoolConfig {
            dir: Some(dir.path().to_path_buf()),
            threshold: 100,
            budget: budget.clone(),
        });
        let mut a = Spool::new(with_dir.clone());
        a.buffer().extend_from_slice(&[1; 50]);
        a.settle().await;
        let mut b = Spool::new(with_dir);
        b.buffer().extend_from_slice(&[2; 50]);
        b.settle().await;
        assert!(!a.in_file());
        assert!(b.in_file(), "over the shared budget: to a file");
        let no_dir = Arc::new(SpoolConfig {
            dir: None,
            threshold: 100,
            budget: budget.clone(),
        });
        let mut c = Spool::new(no_dir);
        c.buffer().extend_from_slice(&[3; 50]);
        c.settle().await;
        assert_eq!(c.error(), Some(SpoolError::NoMemory));
        assert!(c.finish().await.is_err());
        drop(a);
        assert_eq!(budget.used(), 0);
    }
}
