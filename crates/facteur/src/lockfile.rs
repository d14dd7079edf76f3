//! One `serve` per data folder: two servers on one folder would run two queue runners over the
//! same entries (double deliveries) and fight over the listeners.
//!
//! `serve` holds an exclusive `flock` on `facteur.lock` in the data folder for as long as it
//! runs, and writes its PID there for the refusal message. The kernel drops the lock when the
//! process ends in any way, so the file left behind by a `kill -9` or a crash never blocks a
//! restart. Admin commands do not take the lock: they work while the server runs.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::Failure;

/// Name of the lock file in the data folder.
pub const LOCK_FILE: &str = "facteur.lock";
/// Most bytes read from a lock file for the PID (a PID is at most 7 digits on Linux).
const MAX_PID_TEXT: u64 = 32;

/// The held lock; released when dropped or when the process ends.
#[derive(Debug)]
pub struct ServeLock {
    file: File,
    path: PathBuf,
}

impl ServeLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ServeLock {
    fn drop(&mut self) {
        // A clean stop leaves no PID that could be mistaken for a live server.
        let _ = self.file.set_len(0);
    }
}

/// Takes the data folder's lock, or says which process holds it.
pub fn acquire(data: &Path) -> Result<ServeLock, Failure> {
    let path = data.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Failure::op(format!("cannot open the lock file {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = (&mut file).take(MAX_PID_TEXT).read_to_string(&mut text);
            let pid = text.trim();
            let who = if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) {
                format!("PID {pid}")
            } else {
                "PID not known yet".to_owned()
            };
            return Err(Failure::op(format!(
                "another facteur serve ({who}) is already running on the data folder {}; \
                 stop it first (admin commands work while it runs)",
                data.display()
            )));
        }
        Err(TryLockError::Error(e)) => {
            return Err(Failure::op(format!("cannot lock {}: {e}", path.display())));
        }
    }
    let write = |f: &mut File| -> std::io::Result<()> {
        f.set_len(0)?;
        f.rewind()?;
        writeln!(f, "{}", std::process::id())?;
        f.sync_all()
    };
    write(&mut file).map_err(|e| {
        Failure::op(format!(
            "cannot write the lock file {}: {e}",
            path.display()
        ))
    })?;
    Ok(ServeLock { file, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_pid_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let lock = acquire(dir.path()).unwrap();
        let text = std::fs::read_to_string(lock.path()).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        // flock locks belong to the open file description: a second open conflicts even in the
        // same process, as a second server would.
        let err = acquire(dir.path()).unwrap_err();
        assert!(
            err.message.contains(&format!("PID {}", std::process::id())),
            "{}",
            err.message
        );
        drop(lock);
        let again = acquire(dir.path()).unwrap();
        drop(again);
    }
}
