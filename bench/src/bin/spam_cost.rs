//! CPU cost of the content classifier per message of about 4 KiB: MIME analysis (shared with the
//! rest of the pipeline, shown apart), feature extraction, scoring against an in-memory model
//! and against the SQLite store (the server's path: one read of the message's token counts),
//! and learning into the store (the CLI's and later IMAP's path, one durable write).
//!
//! Usage: cargo run --release -p facteur-bench --bin spam_cost -- CORPUS [ROUNDS]
//! CORPUS holds easy-ham-1/, hard-ham-1/ and spam-1/ of .eml files (bench/spam-accuracy.sh
//! prepares them in bench/out/spam/corpus): the models are trained on all of it, and the
//! measured messages are its messages of 3 to 5 KiB. Process CPU time (all threads), so work
//! the store's threads do counts too.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use filter::{Class, Classifier, MemoryModel, Settings};
use store::DynStore;
use store::sqlite::{Sqlite, SqliteOptions};

const MIN_SIZE: usize = 3 * 1024;
const MAX_SIZE: usize = 5 * 1024;

fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe {
        libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts);
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn read_group(dir: &Path) -> Result<Vec<Vec<u8>>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read(p).map_err(Into::into))
        .collect()
}

struct Row {
    what: &'static str,
    cpu_us: f64,
    wall_us: f64,
}

fn measure(what: &'static str, n: usize, f: impl FnOnce()) -> Row {
    let (c0, w0) = (cpu_seconds(), Instant::now());
    f();
    Row {
        what,
        cpu_us: (cpu_seconds() - c0) * 1e6 / n as f64,
        wall_us: w0.elapsed().as_secs_f64() * 1e6 / n as f64,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(corpus) = args.get(1).map(Path::new) else {
        bail!("usage: spam_cost CORPUS [ROUNDS]");
    };
    let rounds: usize = args.get(2).map(|r| r.parse()).transpose()?.unwrap_or(3);
    let mut train: Vec<(Vec<u8>, Class)> = Vec::new();
    for (g, c) in [
        ("easy-ham-1", Class::Ham),
        ("hard-ham-1", Class::Ham),
        ("spam-1", Class::Spam),
    ] {
        for m in read_group(&corpus.join(g))? {
            train.push((m, c));
        }
    }
    let sample: Vec<&[u8]> = train
        .iter()
        .map(|(m, _)| m.as_slice())
        .filter(|m| (MIN_SIZE..=MAX_SIZE).contains(&m.len()))
        .collect();
    if sample.is_empty() {
        bail!("no message of 3-5 KiB in {}", corpus.display());
    }
    let avg = sample.iter().map(|m| m.len()).sum::<usize>() / sample.len();
    let c = Classifier::new(Settings::default());
    let limits = message::Limits::default();

    // Models: in memory, and in a store on disk (the current directory's filesystem).
    let mut mem = MemoryModel::default();
    for (m, class) in &train {
        mem.learn(&filter::extract_raw(m, &c.settings.limits).tokens(), *class);
    }
    let dir = tempfile::tempdir_in(".")?;
    let store: DynStore = Arc::new(Sqlite::open(dir.path(), SqliteOptions::default())?);
    let t0 = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for (m, class) in train.iter().cloned() {
        let (c, store) = (c.clone(), store.clone());
        set.spawn(async move {
            let f = filter::extract_raw(&m, &c.settings.limits);
            c.learn(&store, &m, &f, class, None).await
        });
        while set.len() > 32 {
            set.join_next().await.context("join")???;
        }
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    println!(
        "trained {} messages into the store in {:.1} s (32 at a time, group-committed); \
         measuring {} messages of 3-5 KiB (average {} bytes), {rounds} rounds",
        train.len(),
        t0.elapsed().as_secs_f64(),
        sample.len(),
        avg
    );

    let n = sample.len() * rounds;
    let analyses: Vec<_> = sample
        .iter()
        .map(|m| message::analyze(m, &limits))
        .collect();
    let mut rows = vec![
        measure(
            "MIME analysis (message::analyze, done once per message for the whole pipeline)",
            n,
            || {
                for _ in 0..rounds {
                    for m in &sample {
                        std::hint::black_box(message::analyze(m, &limits));
                    }
                }
            },
        ),
        measure("feature extraction (from the analysis)", n, || {
            for _ in 0..rounds {
                for (m, a) in sample.iter().zip(&analyses) {
                    std::hint::black_box(c.features(m, a));
                }
            }
        }),
    ];
    let features: Vec<_> = sample
        .iter()
        .zip(&analyses)
        .map(|(m, a)| c.features(m, a))
        .collect();
    rows.push(measure("score, in-memory model", n, || {
        for _ in 0..rounds {
            for f in &features {
                std::hint::black_box(c.score(f, &mem, None));
            }
        }
    }));
    let (c0, w0) = (cpu_seconds(), Instant::now());
    for _ in 0..rounds {
        for f in &features {
            std::hint::black_box(c.score_stored(&store, f, None).await?);
        }
    }
    rows.push(Row {
        what: "score, SQLite store (global model: one read of the tokens' counts)",
        cpu_us: (cpu_seconds() - c0) * 1e6 / n as f64,
        wall_us: w0.elapsed().as_secs_f64() * 1e6 / n as f64,
    });
    // Learning: each message learned then forgotten (so every round does real work), one at a
    // time (durable each: the group commit has nothing to group).
    let (c0, w0) = (cpu_seconds(), Instant::now());
    for (m, f) in sample.iter().zip(&features) {
        c.learn(&store, m, f, Class::Spam, None).await?;
        c.unlearn(&store, m, f, None).await?;
    }
    rows.push(Row {
        what: "learn + forget, SQLite store, one message at a time (per message: both)",
        cpu_us: (cpu_seconds() - c0) * 1e6 / sample.len() as f64,
        wall_us: w0.elapsed().as_secs_f64() * 1e6 / sample.len() as f64,
    });
    println!("| step | CPU per message | wall per message |");
    println!("|---|---|---|");
    for r in &rows {
        println!("| {} | {:.0} µs | {:.0} µs |", r.what, r.cpu_us, r.wall_us);
    }
    let total = rows[1].cpu_us + rows[3].cpu_us;
    println!(
        "classifier on the server's path (features + store score): {:.0} µs CPU per message; with the MIME analysis: {:.0} µs",
        total,
        total + rows[0].cpu_us
    );
    Ok(())
}
