//! The conformance suite against the SQLite backend.

use std::path::PathBuf;

use async_trait::async_trait;
use store::DynStore;
use store::conformance::Harness;
use store::sqlite::{Sqlite, SqliteOptions};

struct SqliteHarness {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn harness() -> SqliteHarness {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    SqliteHarness { _dir: dir, path }
}

#[async_trait]
impl Harness for SqliteHarness {
    async fn open(&self) -> DynStore {
        // A small inline threshold so the suite exercises file blobs too.
        let opts = SqliteOptions {
            inline_blob_max: 64 * 1024,
            ..SqliteOptions::default()
        };
        std::sync::Arc::new(Sqlite::open(&self.path, opts).expect("open sqlite store"))
    }
    fn large_blob_size(&self) -> usize {
        64 * 1024
    }
}

store::conformance_tests!(harness());
