//! A small tmpfs for full-disk tests: mounted on a fresh temporary directory, unmounted on drop
//! (even on panic). Mounting needs root; elsewhere `mount` says why and the test is skipped.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// A tmpfs mounted on a fresh temporary directory, unmounted on drop (even on panic).
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// None (after printing why) when not root or when mounting fails.
    pub fn mount(size_kib: u64) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            println!("SKIPPED: needs root to mount tmpfs");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_kib}k,mode=0700")])
            .arg("tmpfs")
            .arg(dir.path())
            .status();
        match status {
            Ok(s) if s.success() => Some(Tmpfs { dir }),
            other => {
                println!("SKIPPED: needs root to mount tmpfs (mount: {other:?})");
                None
            }
        }
    }

    /// Grows (or shrinks) the filesystem in place, as an operator freeing space would.
    pub fn resize(&self, size_kib: u64) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size_kib}k")])
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount tmpfs to {size_kib} KiB");
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// Writes zeros until the filesystem refuses: nothing is left for anyone else.
pub fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).expect("create filler");
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    // A last partial page may still fit.
    while f.write_all(&[0u8]).is_ok() {}
}
