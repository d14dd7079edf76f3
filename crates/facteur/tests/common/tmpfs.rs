//! A small tmpfs for full-disk tests: mounted on a fresh temporary directory, unmounted on drop
//! (even on panic). Mounting needs root: the tests using it are `#[ignore]`d and scripts/test.sh runs them as root.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// A tmpfs mounted on a fresh temporary directory, unmounted on drop (even on panic).
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Panics when it cannot mount (not root, or no mount permission in a container): the
    /// tests that call it are `#[ignore]`d and run explicitly, as root, by scripts/test.sh.
    pub fn mount(size_kib: u64) -> Tmpfs {
        // SAFETY: geteuid has no preconditions.
        assert!(
            unsafe { libc::geteuid() } == 0,
            "this test mounts a tmpfs and needs root"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_kib}k,mode=0700")])
            .arg("tmpfs")
            .arg(dir.path())
            .status();
        match status {
            Ok(s) if s.success() => Tmpfs { dir },
            other => panic!("cannot mount a tmpfs: {other:?}"),
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
