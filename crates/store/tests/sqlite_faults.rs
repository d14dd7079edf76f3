//! Fault injection with a real full disk: the store runs on a small tmpfs, appends until the
//! filesystem refuses to grow, and must then (1) say so with `StoreError::Full`, (2) have lost
//! nothing it acknowledged, (3) stay consistent, (4) work again once space is freed, without
//! being reopened, and (5) reopen cleanly.
//!
//! Mounting needs root: the tests are `#[ignore]`d and scripts/test.sh runs them as root.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use store::sqlite::{Sqlite, SqliteOptions};
use store::*;

/// Size of the tmpfs the store runs on.
const TMPFS_MIB: u64 = 16;
/// Space held by a filler file created before the store, freed to test recovery.
const FILLER_BYTES: usize = 6 * 1024 * 1024;
/// The text-only scenario's index backlog needs much more room once space is freed: the trigram
/// index and its write-ahead log took up to ~4.6 times the text in this test (16 MiB for 3.5 MiB).
const TEXT_TMPFS_MIB: u64 = 32;
const TEXT_FILLER_BYTES: usize = 26 * 1024 * 1024;
/// Large messages are above the default inline threshold (64 KiB), so they are blob files.
const LARGE_BYTES: usize = 100 * 1024;
/// Small messages stay inline in the database.
const SMALL_BYTES: usize = 2 * 1024;
/// Rounds of the strict full-text index test (its failure is timing-dependent).
const FTS_ROUNDS: usize = 5;
/// Consecutive refused appends (large and small) after which the disk counts as full.
const FULL_AFTER_FAILURES: usize = 6;
/// Safety stop: 8 MiB cannot hold this many messages of these sizes.
const MAX_APPENDS: usize = 5000;

/// A tmpfs mounted on a fresh temporary directory, unmounted on drop (even on panic).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Panics when it cannot mount (not root, or no mount permission in a container): the
    /// tests that call it are `#[ignore]`d and run explicitly, as root, by scripts/test.sh.
    fn mount(size_mib: u64) -> Tmpfs {
        // SAFETY: geteuid has no preconditions.
        assert!(
            unsafe { libc::geteuid() } == 0,
            "this test mounts a tmpfs and needs root"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m,mode=0700")])
            .arg("tmpfs")
            .arg(dir.path())
            .status();
        match status {
            Ok(s) if s.success() => Tmpfs { dir },
            other => panic!("cannot mount a tmpfs: {other:?}"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Still busy (a thread of a panicking test holds a file): detach it.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

fn write_filler(path: &Path, bytes: usize) {
    let mut f = std::fs::File::create(path).expect("create filler");
    let chunk = vec![0xA5u8; 64 * 1024];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        f.write_all(&chunk[..n]).expect("write filler");
        left -= n;
    }
    f.sync_all().expect("sync filler");
}

fn open(dir: &Path) -> DynStore {
    Arc::new(Sqlite::open(dir, SqliteOptions::default()).expect("open store"))
}

/// Message `n`, large (a blob file) or small (inline in the database), unique so no two messages
/// share a blob. Like most mail, it is a short text (full-text indexed) and an attachment (not
/// indexed): the index's backlog stays small, so catching up after the fault does not eat the
/// space that was freed.
fn message(tag: &str, n: usize, large: bool) -> Arc<[u8]> {
    attachment_message(tag, n, if large { LARGE_BYTES } else { SMALL_BYTES })
}

fn attachment_message(tag: &str, n: usize, size: usize) -> Arc<[u8]> {
    let mut s = format!(
        "From: fill@example.test\r\nSubject: {tag} {n}\r\nMessage-ID: <{tag}.{n}@faults.test>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nHello, this is {tag} number {n}; the file is attached.\r\n\
         --b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    );
    // Pseudo-random content, so neither SQLite nor the filesystem can store it compactly.
    let mut x = (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ tag.len() as u64;
    while s.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(&format!("{x:016x}{:016x}{x:08X}\r\n", x.rotate_left(29)));
    }
    s.push_str("--b--\r\n");
    s.into_bytes().into()
}

/// A plain-text message of about `size` bytes: all of it goes to the full-text index.
fn text_message(tag: &str, n: usize, size: usize) -> Arc<[u8]> {
    let mut s = format!(
        "From: fill@example.test\r\nSubject: {tag} {n}\r\nMessage-ID: <{tag}.{n}@faults.test>\r\n\r\n"
    );
    let mut x = (n as u64 + 7).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ tag.len() as u64;
    let mut words = 0u32;
    while s.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(&format!("{tag}{n}w{x:x} "));
        words += 1;
        if words.is_multiple_of(8) {
            s.push_str("\r\n");
        }
    }
    s.push_str("\r\n");
    s.into_bytes().into()
}

struct Acked {
    uid: Uid,
    blob: BlobId,
    raw: Arc<[u8]>,
}

/// Sizes in KiB of the top-level entries of the data folder, for the test's output.
fn usage(data: &Path) -> String {
    fn size(p: &Path) -> u64 {
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => std::fs::read_dir(p)
                .map(|d| d.flatten().map(|e| size(&e.path())).sum())
                .unwrap_or(0),
            Ok(m) => m.len(),
            Err(_) => 0,
        }
    }
    let mut entries: Vec<String> = std::fs::read_dir(data)
        .map(|d| {
            d.flatten()
                .map(|e| {
                    format!(
                        "{}={}K",
                        e.file_name().to_string_lossy(),
                        size(&e.path()) / 1024
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    entries.sort();
    entries.join(" ")
}

/// Every acknowledged message is there with its bytes, and there is no other message.
async fn verify(store: &DynStore, mailbox: MailboxId, acked: &[Acked], data: &Path, when: &str) {
    let records = store
        .messages(mailbox, 1..=Uid::MAX)
        .await
        .unwrap_or_else(|e| panic!("{when}: list messages: {e}"));
    let uids: Vec<Uid> = records.iter().map(|r| r.uid).collect();
    let expected: Vec<Uid> = acked.iter().map(|a| a.uid).collect();
    assert_eq!(
        uids, expected,
        "{when}: stored UIDs differ from acknowledged ones"
    );
    for a in acked {
        let got = store
            .blob_read(a.blob, None)
            .await
            .unwrap_or_else(|e| panic!("{when}: read UID {}: {e}", a.uid));
        assert!(
            got[..] == a.raw[..],
            "{when}: UID {} differs from what was sent",
            a.uid
        );
    }
    let report = store
        .check_integrity()
        .await
        .unwrap_or_else(|e| panic!("{when}: integrity check: {e}"));
    let (index_problems, problems): (Vec<&String>, Vec<&String>) =
        report.problems.iter().partition(|p| p.contains("fts5:"));
    assert!(
        problems.is_empty(),
        "{when}: integrity problems: {problems:?}"
    );
    assert!(
        index_problems.is_empty(),
        "{when}: full-text index problems: {index_problems:?}"
    );
    assert_eq!(report.messages, acked.len() as u64, "{when}: message count");
    println!(
        "{when}: {} messages intact, {} blobs, {} orphan blob files",
        report.messages, report.blobs, report.orphan_files
    );
    println!("{when}: {}", usage(data));
}

/// Mixed sizes: the disk usually fills on a blob file write (ENOSPC from the filesystem).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root to mount tmpfs; scripts/test.sh runs it (as root) with --ignored"]
async fn full_disk_with_large_and_small_messages() {
    full_disk_scenario(TMPFS_MIB, FILLER_BYTES, |tag, n| {
        message(tag, n, n.is_multiple_of(3))
    })
    .await;
}

/// Small messages only: the disk fills inside SQLite (SQLITE_FULL from the WAL or database).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root to mount tmpfs; scripts/test.sh runs it (as root) with --ignored"]
async fn full_disk_with_small_messages() {
    full_disk_scenario(TMPFS_MIB, FILLER_BYTES, |tag, n| message(tag, n, false)).await;
}

/// Text only, large and small: the full-text indexer runs out of space too. Its backlog
/// (indexing is asynchronous) is written once space is freed, so more is freed here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root to mount tmpfs; scripts/test.sh runs it (as root) with --ignored"]
async fn full_disk_with_text_messages() {
    full_disk_scenario(TEXT_TMPFS_MIB, TEXT_FILLER_BYTES, text_mix).await;
}

fn text_mix(tag: &str, n: usize) -> Arc<[u8]> {
    text_message(
        tag,
        n,
        if n.is_multiple_of(3) {
            LARGE_BYTES
        } else {
            SMALL_BYTES
        },
    )
}

/// The full-text index must come out of a disk-full episode intact, as `check_integrity()` sees
/// it (a pooled reader's stale view of the index once gave false "fts5: corruption" reports;
/// the check now runs on the main database only). Repeated, as such failures are timing-dependent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root to mount tmpfs; scripts/test.sh runs it (as root) with --ignored"]
async fn full_disk_leaves_the_full_text_index_intact() {
    for _ in 0..FTS_ROUNDS {
        full_disk_scenario(TMPFS_MIB, FILLER_BYTES, |tag, n| message(tag, n, false)).await;
        full_disk_scenario(TEXT_TMPFS_MIB, TEXT_FILLER_BYTES, text_mix).await;
    }
}

/// Fills the disk with `make(tag, n)` messages, then checks the refusals, the acknowledged
/// messages, recovery without reopening, and a reopen.
async fn full_disk_scenario(
    tmpfs_mib: u64,
    filler_bytes: usize,
    make: fn(&str, usize) -> Arc<[u8]>,
) {
    let fs = Tmpfs::mount(tmpfs_mib);
    let filler = fs.path().join("filler");
    write_filler(&filler, filler_bytes);
    let data: PathBuf = fs.path().join("data");

    let store = open(&data);
    let (_, inbox) = conformance::account(&store, "full").await;

    // Fill: append until both large and small messages are refused several times in a row.
    let mut acked = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut consecutive = 0;
    let mut first_failure: Option<usize> = None;
    let mut ok_after_failure = 0;
    for n in 0..MAX_APPENDS {
        let raw = make("fill", n);
        match conformance::append(&store, inbox.id, raw.clone()).await {
            Ok(a) => {
                consecutive = 0;
                if first_failure.is_some() {
                    ok_after_failure += 1;
                }
                acked.push(Acked {
                    uid: a.uid,
                    blob: a.blob,
                    raw,
                });
            }
            Err(e) => {
                first_failure.get_or_insert(n);
                assert!(
                    matches!(e, StoreError::Full(_)),
                    "append {n} on a full disk failed with {e:?}, not StoreError::Full"
                );
                assert!(e.is_temporary(), "a full disk is a temporary failure");
                errors.push(e.to_string());
                consecutive += 1;
                if consecutive >= FULL_AFTER_FAILURES {
                    break;
                }
            }
        }
    }
    let first_failure = first_failure.expect("the disk never filled up");
    assert_eq!(consecutive, FULL_AFTER_FAILURES, "appends kept succeeding");
    println!(
        "full after {} acknowledged appends (first refusal at append {first_failure}, \
         {ok_after_failure} smaller ones fitted afterwards); errors: {:?}",
        acked.len(),
        errors
    );

    // Still full: a further attempt of each size is refused, never acknowledged.
    for i in 0..2 {
        let r = conformance::append(&store, inbox.id, make("still-full", i)).await;
        assert!(
            matches!(r, Err(StoreError::Full(_))),
            "append on a still-full disk gave {r:?}"
        );
    }

    verify(&store, inbox.id, &acked, &data, "while full").await;

    // Recovery without reopening: free the filler, and appends succeed again.
    std::fs::remove_file(&filler).expect("remove filler");
    for n in 0..6 {
        let raw = make("after", n);
        let a = conformance::append(&store, inbox.id, raw.clone())
            .await
            .unwrap_or_else(|e| panic!("append {n} after freeing space: {e}"));
        acked.push(Acked {
            uid: a.uid,
            blob: a.blob,
            raw,
        });
    }
    verify(&store, inbox.id, &acked, &data, "after freeing space").await;

    // Reopen: the same messages, still consistent, and still writable.
    drop(store);
    let store = open(&data);
    verify(&store, inbox.id, &acked, &data, "after reopening").await;
    let raw = make("reopened", 0);
    let a = conformance::append(&store, inbox.id, raw.clone())
        .await
        .expect("append after reopening");
    acked.push(Acked {
        uid: a.uid,
        blob: a.blob,
        raw,
    });
    verify(
        &store,
        inbox.id,
        &acked,
        &data,
        "after reopening and appending",
    )
    .await;
    drop(store);
    drop(fs);
}
