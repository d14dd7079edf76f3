//! Crash test: a child process appends from several tasks and prints each acknowledged message; the
//! parent kills it with SIGKILL mid-stream, reopens the store, and checks that every acknowledged
//! message is intact and the store consistent. Repeated over several rounds on the same data.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use store::sqlite::{Sqlite, SqliteOptions};
use store::*;

const CHILD_ENV: &str = "FACTEUR_STORE_CRASH_CHILD";
const ROUNDS: usize = 4;
const WRITERS: usize = 8;

fn body(round: usize, n: usize) -> Arc<[u8]> {
    // Every seventh message is large, so blob files are exercised as well as inline blobs.
    let filler = if n.is_multiple_of(7) {
        "x".repeat(80 * 1024)
    } else {
        String::new()
    };
    format!("Subject: crash {round}-{n}\r\nMessage-ID: <{round}.{n}@crash.test>\r\n\r\nround {round} message {n}\r\n{filler}\r\n")
        .into_bytes()
        .into()
}

fn open(dir: &std::path::Path) -> DynStore {
    Arc::new(Sqlite::open(dir, SqliteOptions::default()).expect("open store"))
}

/// Runs only inside the child process the parent starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "child process of kill9_during_appends_loses_no_acknowledged_message"]
async fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.splitn(3, ':');
    let round: usize = parts.next().and_then(|s| s.parse().ok()).expect("round");
    let mailbox: i64 = parts.next().and_then(|s| s.parse().ok()).expect("mailbox");
    let dir = parts.next().expect("dir").to_string();
    let store = open(std::path::Path::new(&dir));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let n = i * WRITERS + w;
                let a = conformance::append(&store, mailbox, body(round, n))
                    .await
                    .expect("append");
                // Printed only after the store said the message is durable.
                println!("ACK {} {}", a.uid, n);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_appends_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mailbox = {
        let store = open(dir.path());
        conformance::account(&store, "crash").await.1.id
    };
    let exe = std::env::current_exe().expect("test binary");
    let mut acked_total = 0usize;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args([
                "crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(
                CHILD_ENV,
                format!("{round}:{mailbox}:{}", dir.path().display()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let mut acked = Vec::new();
        // Kill after a number of acknowledgements that varies by round, mid-stream.
        let kill_after = 40 + round * 37;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("ACK ") {
                let mut it = rest.split(' ');
                let uid: u32 = it.next().and_then(|s| s.parse().ok()).expect("uid");
                let n: usize = it.next().and_then(|s| s.parse().ok()).expect("n");
                acked.push((uid, n));
                if acked.len() >= kill_after {
                    child.kill().expect("SIGKILL child");
                    break;
                }
            }
        }
        let status = child.wait().expect("wait");
        assert!(!status.success(), "child should have been killed");
        acked_total += acked.len();

        let store = open(dir.path());
        let msgs = store
            .messages(mailbox, 1..=u32::MAX)
            .await
            .expect("messages");
        for (uid, n) in &acked {
            let m = msgs
                .iter()
                .find(|m| m.uid == *uid)
                .unwrap_or_else(|| panic!("acknowledged UID {uid} lost in round {round}"));
            let bytes = store
                .blob_read(m.blob, None)
                .await
                .expect("blob of an acknowledged message");
            assert_eq!(
                &bytes[..],
                &body(round, *n)[..],
                "acknowledged UID {uid} corrupt"
            );
            assert_eq!(m.size as usize, bytes.len());
        }
        let uids: Vec<u32> = msgs.iter().map(|m| m.uid).collect();
        assert!(uids.windows(2).all(|w| w[0] < w[1]));
        let report = store.check_integrity().await.expect("integrity");
        assert!(
            report.problems.is_empty(),
            "round {round}: {:?}",
            report.problems
        );
        let status = store.mailbox_status(mailbox).await.expect("status");
        assert!(status.uidnext > uids.last().copied().unwrap_or(0));
    }
    assert!(acked_total >= ROUNDS * 40);
}
