//! The full-text index answers exactly what a scan of every message answers, whether the indexer has
//! caught up or not, and forgets expunged messages.

use std::sync::Arc;
use std::time::Duration;

use store::sqlite::{Sqlite, SqliteOptions, testing};
use store::*;

const WORDS: &[&str] = &[
    "apple",
    "Banana",
    "cherry",
    "Dürer",
    "elderberry",
    "fig",
    "grape",
    "ÉCOLE",
    "kiwi",
    "lemon",
];

fn message(i: usize) -> (Arc<[u8]>, String) {
    let body: Vec<&str> = (0..4)
        .map(|k| WORDS[(i * 7 + k * 3) % WORDS.len()])
        .collect();
    let body = body.join(" ");
    let raw = format!(
        "Subject: note {i}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n"
    );
    (raw.into_bytes().into(), body)
}

fn expected(bodies: &[(Uid, String)], needle: &str) -> Vec<Uid> {
    let n = needle.to_lowercase();
    bodies
        .iter()
        .filter(|(_, b)| b.to_lowercase().contains(&n))
        .map(|(u, _)| *u)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_and_scan_agree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: DynStore =
        Arc::new(Sqlite::open(dir.path(), SqliteOptions::default()).expect("open"));
    let (_, inbox) = conformance::account(&store, "search").await;
    let mut bodies = Vec::new();
    for i in 0..60 {
        let (raw, body) = message(i);
        let a = conformance::append(&store, inbox.id, raw)
            .await
            .expect("append");
        bodies.push((a.uid, body));
    }
    let needles = [
        "APPLE",
        "anan",
        "dürer",
        "école",
        "err",
        "kiwi lemon",
        "zzz",
        "rape",
    ];
    // Straight away: some messages may not be indexed yet; results must already be exact.
    for n in needles {
        let got = store
            .search_text(inbox.id, TextField::Body, n)
            .await
            .expect("search")
            .expect("indexable");
        assert_eq!(
            got,
            expected(&bodies, n),
            "before indexing caught up, needle {n:?}"
        );
    }
    let target = testing::max_blob_id(dir.path()).expect("max id");
    let mut waited = 0;
    while testing::index_watermark(dir.path()).expect("watermark") < target {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
        assert!(waited < 400, "indexer did not catch up");
    }
    for n in needles {
        let got = store
            .search_text(inbox.id, TextField::Body, n)
            .await
            .expect("search")
            .expect("indexable");
        assert_eq!(got, expected(&bodies, n), "from the index, needle {n:?}");
    }
    let gone: Vec<Uid> = bodies.iter().take(20).map(|b| b.0).collect();
    store
        .expunge(inbox.id, ExpungeFilter::Uids(gone))
        .await
        .expect("expunge");
    bodies.drain(..20);
    for n in needles {
        let got = store
            .search_text(inbox.id, TextField::Body, n)
            .await
            .expect("search")
            .expect("indexable");
        assert_eq!(got, expected(&bodies, n), "after expunge, needle {n:?}");
    }
    let subject = store
        .search_text(inbox.id, TextField::Text, "note 45")
        .await
        .expect("search")
        .expect("indexable");
    assert_eq!(
        subject,
        vec![
            bodies
                .iter()
                .find(|b| b.0 == 46)
                .map(|b| b.0)
                .expect("uid 46")
        ]
    );
}
