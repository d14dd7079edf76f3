//! Schema upgrades: a database made by an older schema version, with data in it, opens with the
//! current code and keeps its data; a database from a newer version is refused untouched.

use std::sync::Arc;

use store::sqlite::{Sqlite, SqliteOptions, schema, testing};
use store::*;

const RAW: &str = "From: Old <old@example.test>\r\nTo: bob@example.test\r\nSubject: from schema one\r\n\
                   Message-ID: <v1@example.test>\r\n\r\nWritten before the upgrade: pelican.\r\n";

fn fill_v1(dir: &std::path::Path) {
    let mut analysis = message::analyze(RAW.as_bytes(), &message::Limits::default());
    analysis.search = message::SearchText::default();
    let json = serde_json::to_string(&analysis)
        .expect("json")
        .replace('\'', "''");
    let hash: String = blake3::hash(RAW.as_bytes()).to_hex().to_string();
    let sql = format!(
        "INSERT INTO domains(id, name, created) VALUES (1, 'example.test', 1);
         INSERT INTO accounts(id, domain_id, local_part, display_name, password_hash, quota_bytes, used_bytes, used_messages, created)
           VALUES (1, 1, 'bob', 'Bob', '$argon2id$v=19$old', 5000000, {size}, 1, 1);
         INSERT INTO aliases(domain_id, local_part, targets) VALUES (1, 'info', 'bob@example.test');
         INSERT INTO mailboxes(id, account_id, name, uidvalidity, uidnext, highestmodseq, special_use)
           VALUES (1, 1, 'INBOX', 1234567, 8, 20, NULL), (2, 1, 'Sent', 1234568, 1, 1, '\\Sent');
         INSERT INTO subscriptions VALUES (1, 'INBOX');
         INSERT INTO blobs(id, hash, size, refcount, data, analysis) VALUES (1, X'{hash}', {size}, 1, CAST('{raw}' AS BLOB), '{json}');
         INSERT INTO messages VALUES (1, 7, 19, 1, 'OldKeyword', 1700000000, {size}, 1);
         INSERT INTO expunged VALUES (1, 3, 18);",
        size = RAW.len(),
        raw = RAW.replace('\'', "''"),
    );
    testing::exec(dir, &sql).expect("fill v1 database");
}

#[tokio::test]
async fn version_one_database_upgrades_with_its_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    testing::create_at_version(dir.path(), 1).expect("create v1");
    assert_eq!(testing::version(dir.path()).expect("version"), 1);
    fill_v1(dir.path());

    let store: DynStore =
        Arc::new(Sqlite::open(dir.path(), SqliteOptions::default()).expect("open upgrades"));
    assert_eq!(
        testing::version(dir.path()).expect("version"),
        schema::SCHEMA_VERSION
    );

    let acc = store
        .account_get("bob", "example.test")
        .await
        .expect("get")
        .expect("account kept");
    assert_eq!(
        (
            acc.display_name.as_str(),
            acc.quota_bytes,
            acc.quota_messages
        ),
        ("Bob", Some(5_000_000), None)
    );
    assert_eq!(
        store
            .alias_get("info", "example.test")
            .await
            .expect("get")
            .expect("alias kept")
            .targets,
        vec!["bob@example.test"]
    );
    let inbox = store
        .mailbox_get(acc.id, "INBOX")
        .await
        .expect("get")
        .expect("INBOX kept");
    assert_eq!(
        (inbox.uidvalidity, inbox.uidnext, inbox.highestmodseq),
        (1_234_567, 8, 20)
    );
    // Mail from before the upgrade is not \Recent (schema 4 marks it claimed).
    assert_eq!(inbox.recent_uid, 7);
    assert_eq!(
        store.mailbox_status(inbox.id).await.expect("status").recent,
        0
    );
    let sent = store
        .mailbox_get(acc.id, "Sent")
        .await
        .expect("get")
        .expect("Sent kept");
    assert_eq!(sent.special_use, Some(SpecialUse::Sent));
    let msgs = store
        .messages(inbox.id, 1..=u32::MAX)
        .await
        .expect("messages");
    assert_eq!(msgs.len(), 1);
    assert_eq!(
        (
            msgs[0].uid,
            msgs[0].modseq,
            msgs[0].flags,
            msgs[0].keywords.clone()
        ),
        (7, 19, Flags::SEEN, vec!["OldKeyword".to_string()])
    );
    assert_eq!(
        store.blob_read(msgs[0].blob, None).await.expect("blob"),
        RAW.as_bytes()
    );
    assert_eq!(
        store
            .analysis(msgs[0].blob)
            .await
            .expect("analysis")
            .envelope
            .subject
            .as_deref(),
        Some("from schema one")
    );
    assert_eq!(
        store
            .search_text(inbox.id, TextField::Body, "pelican")
            .await
            .expect("search"),
        Some(vec![7])
    );
    assert_eq!(
        store.expunged_since(inbox.id, 17).await.expect("vanished"),
        vec![3]
    );
    assert_eq!(
        store.subscriptions(acc.id).await.expect("subs"),
        vec!["INBOX".to_string()]
    );

    // New features work on the upgraded data, and UIDs continue where they were.
    let new = conformance::append(&store, inbox.id, conformance::sample(1, "after"))
        .await
        .expect("append");
    assert_eq!(new.uid, 8);
    assert!(new.modseq > 20);
    store
        .account_set_quota(acc.id, Some(5_000_000), Some(10))
        .await
        .expect("message quota (v2 column)");
    let q = store
        .commit(WriteBatch {
            appends: vec![],
            enqueue: vec![NewQueueEntry {
                raw: conformance::sample(2, "queued").into(),
                sender: "bob@example.test".into(),
                recipients: vec![],
                envid: None,
                ret: None,
                next_attempt: 0,
                smtp_id: None,
            }],
            ..WriteBatch::default()
        })
        .await
        .expect("queue (v2 table)");
    assert_eq!(q.queued.len(), 1);
    let report = store.check_integrity().await.expect("integrity");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[tokio::test]
async fn version_two_database_upgrades_to_dkim_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    testing::create_at_version(dir.path(), 2).expect("create v2");
    testing::exec(
        dir.path(),
        "INSERT INTO domains(id, name, created) VALUES (1, 'example.test', 1);",
    )
    .expect("fill v2 database");

    let store: DynStore =
        Arc::new(Sqlite::open(dir.path(), SqliteOptions::default()).expect("open upgrades"));
    assert_eq!(
        testing::version(dir.path()).expect("version"),
        schema::SCHEMA_VERSION
    );
    assert!(
        store
            .domain_get("example.test")
            .await
            .expect("get")
            .is_some()
    );
    assert!(store.dkim_keys(None).await.expect("v3 table").is_empty());
    let key = DkimKeyRecord {
        domain: "example.test".into(),
        selector: "s1".into(),
        algorithm: "ed25519".into(),
        private_pem: "pem".into(),
        created: 1,
        state: DkimKeyState::Pending,
    };
    store.dkim_key_put(&key).await.expect("put");
    assert_eq!(store.dkim_keys(None).await.expect("list"), vec![key]);
}

/// Schema 5 adds the SMTP transaction id to queue entries: an entry queued before the upgrade
/// stays in the queue, without one, and new entries keep theirs.
#[tokio::test]
async fn version_four_queue_entries_upgrade_without_a_transaction_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    testing::create_at_version(dir.path(), 4).expect("create v4");
    let hash: String = blake3::hash(RAW.as_bytes()).to_hex().to_string();
    testing::exec(
        dir.path(),
        &format!(
            "INSERT INTO blobs(id, hash, size, refcount, data, analysis) \
               VALUES (1, X'{hash}', {size}, 1, CAST('{raw}' AS BLOB), '{{}}');
             INSERT INTO queue(id, blob_id, sender, recipients, created, next_attempt) \
               VALUES (7, 1, 'old@example.test', '[]', 1, 2);",
            size = RAW.len(),
            raw = RAW.replace('\'', "''"),
        ),
    )
    .expect("fill v4 database");
    let store: DynStore =
        Arc::new(Sqlite::open(dir.path(), SqliteOptions::default()).expect("open upgrades"));
    let old = store.queue_get(7).await.expect("get").expect("entry kept");
    assert_eq!(
        (old.sender.as_str(), old.smtp_id),
        ("old@example.test", None)
    );
    let q = store
        .commit(WriteBatch {
            appends: vec![],
            enqueue: vec![NewQueueEntry {
                raw: conformance::sample(3, "queued after").into(),
                sender: "new@example.test".into(),
                recipients: vec![],
                envid: None,
                ret: None,
                next_attempt: 0,
                smtp_id: Some("00063F0000000002".into()),
            }],
            quota: store::QuotaPolicy::AllOrNothing,
        })
        .await
        .expect("queue after the upgrade");
    let new = store
        .queue_get(q.queued[0])
        .await
        .expect("get")
        .expect("new entry");
    assert_eq!(new.smtp_id.as_deref(), Some("00063F0000000002"));
}

#[tokio::test]
async fn version_four_database_upgrades_to_login_bans() {
    let dir = tempfile::tempdir().expect("tempdir");
    testing::create_at_version(dir.path(), 4).expect("create v4");
    let store: DynStore =
        Arc::new(Sqlite::open(dir.path(), SqliteOptions::default()).expect("open upgrades"));
    assert_eq!(
        testing::version(dir.path()).expect("version"),
        schema::SCHEMA_VERSION
    );
    assert!(store.bans_active(0).await.expect("v5 table").is_empty());
    let ban = store
        .ban_add(&NewLoginBan {
            source: Some("192.0.2.1".into()),
            account: None,
            failures: 10,
            created: 1,
            until: 100,
        })
        .await
        .expect("add");
    // The change sequence starts at 1 on an upgraded database.
    assert_eq!(ban.seq, 1);
    store
        .login_source_record("bob@example.test", "192.0.2.1", 1, 16)
        .await
        .expect("record");
    assert_eq!(store.login_sources().await.expect("list").len(), 1);
}

#[tokio::test]
async fn newer_database_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(Sqlite::open(dir.path(), SqliteOptions::default()).expect("create"));
    let future = schema::SCHEMA_VERSION + 5;
    testing::exec(dir.path(), &format!("PRAGMA user_version = {future}")).expect("set version");
    let before = std::fs::read(dir.path().join("facteur.db")).expect("read db");
    let err = Sqlite::open(dir.path(), SqliteOptions::default())
        .err()
        .expect("must refuse");
    assert!(
        matches!(err, StoreError::NewerSchema { found, .. } if found == future),
        "got {err}"
    );
    assert!(err.to_string().contains("newer"), "message: {err}");
    assert_eq!(
        std::fs::read(dir.path().join("facteur.db")).expect("read db"),
        before,
        "refused database was modified"
    );
}

#[tokio::test]
async fn unwritable_folder_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").expect("write");
    let err = Sqlite::open(&file.join("data"), SqliteOptions::default())
        .err()
        .expect("must fail");
    assert!(matches!(err, StoreError::Io(_)), "got {err:?}");
}

/// Version 5 gave DKIM keys a state: keys that signed go on signing, an inactive key newer than
/// its domain's active ones was waiting for `dkim rotate --finish` (pending), an older one had been
/// retired.
#[tokio::test]
async fn version_four_dkim_keys_get_their_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    testing::create_at_version(dir.path(), 4).expect("create v4");
    testing::exec(
        dir.path(),
        "INSERT INTO dkim_keys(domain, selector, algorithm, private_pem, created, active) VALUES
           ('a.test', 'old', 'rsa', 'pem', 100, 0),
           ('a.test', 'cur', 'rsa', 'pem', 200, 1),
           ('a.test', 'new', 'rsa', 'pem', 300, 0),
           ('b.test', 'only', 'ed25519', 'pem', 50, 1),
           ('c.test', 'waiting', 'ed25519', 'pem', 50, 0);",
    )
    .expect("fill v4 database");
    let store: DynStore =
        Arc::new(Sqlite::open(dir.path(), SqliteOptions::default()).expect("open upgrades"));
    let got: Vec<(String, DkimKeyState)> = store
        .dkim_keys(None)
        .await
        .expect("list")
        .into_iter()
        .map(|k| (k.selector, k.state))
        .collect();
    assert_eq!(
        got,
        vec![
            ("old".to_string(), DkimKeyState::Retired),
            ("cur".to_string(), DkimKeyState::Active),
            ("new".to_string(), DkimKeyState::Pending),
            ("only".to_string(), DkimKeyState::Active),
            ("waiting".to_string(), DkimKeyState::Pending),
        ]
    );
}
