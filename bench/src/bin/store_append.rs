//! Durable append throughput of the store: 4 KiB messages from 1, 8 and 64 concurrent writers, with
//! group commit (the default) against a baseline in the same run that commits and fsyncs every message
//! on its own (`max_batch = 1`). Prints messages per second and fsyncs (commits) per message.
//!
//! Usage: cargo run --release -p facteur-bench --bin store_append -- [MESSAGES] [DIR]
//! DIR must be on the disk under test (default: a temporary folder under the current directory).

use std::sync::Arc;
use std::time::Instant;

use store::sqlite::{Sqlite, SqliteOptions};
use store::*;

const MESSAGE_SIZE: usize = 4096;

fn message(n: usize) -> Arc<[u8]> {
    let mut m = format!("From: bench@example.test\r\nTo: user@example.test\r\nSubject: bench {n}\r\nMessage-ID: <{n}@bench>\r\n\r\n").into_bytes();
    while m.len() < MESSAGE_SIZE - 2 {
        m.extend_from_slice(
            format!("line {n} {} lorem ipsum dolor sit amet\r\n", m.len()).as_bytes(),
        );
    }
    m.truncate(MESSAGE_SIZE - 2);
    m.extend_from_slice(b"\r\n");
    m.into()
}

struct Row {
    mode: &'static str,
    writers: usize,
    rate: f64,
    fsyncs_per_msg: f64,
}

async fn run(
    base: &std::path::Path,
    mode: &'static str,
    max_batch: usize,
    writers: usize,
    total: usize,
) -> anyhow::Result<Row> {
    let dir = tempfile::tempdir_in(base)?;
    let sqlite = Sqlite::open(
        dir.path(),
        SqliteOptions {
            max_batch,
            ..SqliteOptions::default()
        },
    )?;
    let store: DynStore = Arc::new(sqlite.clone());
    let (_, inbox) = conformance::account(&store, "bench").await;
    let msgs: Vec<Arc<[u8]>> = (0..total).map(message).collect();
    let (commits0, jobs0) = sqlite.commit_stats();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        let mine: Vec<Arc<[u8]>> = msgs.iter().skip(w).step_by(writers).cloned().collect();
        tasks.push(tokio::spawn(async move {
            for raw in mine {
                conformance::append(&store, inbox.id, raw).await?;
            }
            Ok::<_, StoreError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    let (commits1, jobs1) = sqlite.commit_stats();
    let appended = (jobs1 - jobs0) as f64;
    Ok(Row {
        mode,
        writers,
        rate: total as f64 / secs,
        fsyncs_per_msg: (commits1 - commits0) as f64 / appended,
    })
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let total: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(5000);
    let base = args
        .get(2)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("."));
    std::fs::create_dir_all(&base)?;
    println!(
        "store_append: {total} messages of {MESSAGE_SIZE} bytes per run, data under {}",
        base.display()
    );
    println!(
        "{:<28} {:>8} {:>12} {:>12} {:>8}",
        "mode", "writers", "msg/s", "fsync/msg", "ratio"
    );
    for writers in [1usize, 8, 64] {
        let baseline = run(&base, "one fsync per message", 1, writers, total).await?;
        let group = run(
            &base,
            "group commit",
            store::sqlite::DEFAULT_MAX_BATCH,
            writers,
            total,
        )
        .await?;
        for r in [&baseline, &group] {
            println!(
                "{:<28} {:>8} {:>12.0} {:>12.3} {:>8.2}",
                r.mode,
                r.writers,
                r.rate,
                r.fsyncs_per_msg,
                r.rate / baseline.rate
            );
        }
    }
    Ok(())
}
