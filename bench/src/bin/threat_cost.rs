//! CPU cost of the malicious-content checks per message of about 4 KiB: attachment inspection
//! (`malware::inspect_message`) and the phishing heuristics (`malware::phishing::analyze`), over
//! the message analysis the pipeline makes once (shown apart). clamd's cost is clamd's own.
//!
//! Usage: cargo run --release -p facteur-bench --bin threat_cost -- CORPUS [ROUNDS]
//! CORPUS holds easy-ham-1/, hard-ham-1/ and spam-1/ of .eml files (bench/spam-accuracy.sh
//! prepares them in bench/out/spam/corpus); the measured messages are those of 3 to 5 KiB.
//! Process CPU time.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use malware::phishing::{Identities, analyze};

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

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(corpus) = args.get(1) else {
        bail!("usage: threat_cost CORPUS [ROUNDS]");
    };
    let rounds: usize = args.get(2).map_or(Ok(3), |r| r.parse())?;
    let mut messages = Vec::new();
    let mut groups: Vec<&str> = Vec::new();
    for group in ["easy-ham-1", "hard-ham-1", "spam-1"] {
        let dir = Path::new(corpus).join(group);
        for e in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let raw = std::fs::read(e?.path())?;
            if (MIN_SIZE..=MAX_SIZE).contains(&raw.len()) {
                messages.push(raw);
                groups.push(group);
            }
        }
    }
    if messages.is_empty() {
        bail!("no message of 3 to 5 KiB under {corpus}");
    }
    let ours = Identities {
        domains: vec!["example.com".into(), "example.org".into()],
        names: vec!["Alice Martin".into(), "Robert Dupont".into()],
    };
    let limits = malware::Limits::default();
    let n = messages.len() * rounds;
    let avg = messages.iter().map(Vec::len).sum::<usize>() / messages.len();

    let (c0, w0) = (cpu_seconds(), Instant::now());
    let mut prepared = Vec::new();
    for _ in 0..rounds {
        prepared = messages
            .iter()
            .map(|m| message::Prepared::new(Arc::from(m.as_slice()), &message::Limits::default()))
            .collect();
    }
    let analysis = (
        (cpu_seconds() - c0) * 1e6 / n as f64,
        w0.elapsed().as_secs_f64() * 1e6 / n as f64,
    );

    let (c0, w0) = (cpu_seconds(), Instant::now());
    let mut findings = 0;
    for _ in 0..rounds {
        for p in &prepared {
            findings += malware::inspect_message(p, &limits).len();
        }
    }
    let inspect = (
        (cpu_seconds() - c0) * 1e6 / n as f64,
        w0.elapsed().as_secs_f64() * 1e6 / n as f64,
    );

    let (c0, w0) = (cpu_seconds(), Instant::now());
    let mut signals = 0;
    for _ in 0..rounds {
        for p in &prepared {
            signals += analyze(p, &ours).len();
        }
    }
    let phishing = (
        (cpu_seconds() - c0) * 1e6 / n as f64,
        w0.elapsed().as_secs_f64() * 1e6 / n as f64,
    );

    println!(
        "{} messages of 3-5 KiB (average {avg} bytes), {rounds} rounds",
        messages.len()
    );
    println!("| step | CPU per message | wall per message |");
    println!("|---|---|---|");
    for (what, (cpu, wall)) in [
        ("MIME analysis (shared by every stage)", analysis),
        ("attachment inspection", inspect),
        (
            "phishing heuristics (first call computes the URL list)",
            phishing,
        ),
    ] {
        println!("| {what} | {cpu:.0} µs | {wall:.0} µs |");
    }
    println!(
        "findings: {}, phishing signals: {}",
        findings / rounds,
        signals / rounds
    );
    // Which heuristics fire on which group (the score each adds is in malware::phishing).
    let mut fired: std::collections::BTreeMap<(&str, &str), usize> = Default::default();
    for (p, g) in prepared.iter().zip(&groups) {
        let mut seen: Vec<&str> = analyze(p, &ours).iter().map(|s| s.symbol).collect();
        seen.dedup();
        for s in seen {
            *fired.entry((*g, s)).or_default() += 1;
        }
    }
    for ((g, s), n) in fired {
        println!("{g}: {s} in {n} messages");
    }
    Ok(())
}
