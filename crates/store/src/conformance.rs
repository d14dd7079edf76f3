//! The backend conformance suite: written once, run against every backend.
//!
//! A backend's test file implements [`Harness`] and invokes [`conformance_tests!`], which makes one
//! `#[tokio::test]` per check. Every check asserts what a protocol client would observe.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;

use crate::*;

/// Opens the backend under test. `open` may be called again after every handle from the previous
/// call was dropped, and must then see the same data (a restart).
#[async_trait]
pub trait Harness: Send + Sync {
    async fn open(&self) -> DynStore;
    /// Size above which the backend keeps blobs outside its metadata (0 if not applicable).
    fn large_blob_size(&self) -> usize {
        256 * 1024
    }
}

/// Generates one test per conformance check for a backend: `conformance_tests!(make_harness());`
/// where the expression evaluates to a value implementing `Harness`.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@tests $make;
            uids_strictly_increase_and_are_never_reused,
            uidvalidity_is_stable_and_never_reused,
            modseqs_strictly_increase,
            concurrent_appends_get_unique_uids,
            expunge_records_answer_vanished,
            copy_shares_the_blob_and_release_removes_it,
            quota_is_accounted_and_enforced,
            rename_keeps_uidvalidity_rules,
            rename_inbox_moves_messages,
            flags_and_keywords_bump_modseq,
            unchanged_since_reports_modified,
            blob_read_by_range_inline_and_large,
            bulk_reads_and_sparse_stores,
            change_feed_reports_committed_changes,
            mailbox_hierarchy_and_subscriptions,
            special_use_is_unique_per_account,
            directory_records_lifecycle,
            queue_entries_hold_their_blob,
            full_text_search_matches_substrings,
            batch_is_all_or_nothing,
            batch_over_quota_stores_nothing,
            move_is_atomic,
            account_delete_releases_everything,
            dkim_keys_lifecycle,
            recent_is_claimed_once,
            login_bans_lifecycle,
            login_sources_are_kept_per_account,
            send_as_grants_lifecycle,
            batch_per_account_quota_answers_each,
            given_analysis_is_cached_and_indexed,
            spam_models_learn_unlearn_and_stay_apart,
            greylist_defers_then_passes_and_whitelists,
            quarantine_and_sender_lists_lifecycle,
            sieve_scripts_lifecycle,
        );
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let harness = $make;
                $crate::conformance::$name(&harness).await;
            }
        )*
    };
}

/// Sets up a domain and an account with INBOX; returns (account, INBOX).
pub async fn account(store: &DynStore, local: &str) -> (AccountRecord, MailboxRecord) {
    let domain = match store.domain_get("example.test").await.expect("domain_get") {
        Some(d) => d,
        None => store
            .domain_create("example.test")
            .await
            .expect("domain_create"),
    };
    let acc = store
        .account_create(NewAccount {
            domain_id: domain.id,
            local_part: local.into(),
            display_name: local.into(),
            password_hash: "$argon2id$test".into(),
            quota_bytes: None,
            quota_messages: None,
            mailboxes: vec![
                (INBOX.into(), None),
                ("Trash".into(), Some(SpecialUse::Trash)),
            ],
        })
        .await
        .expect("account_create");
    let inbox = store
        .mailbox_get(acc.id, INBOX)
        .await
        .expect("mailbox_get")
        .expect("INBOX exists");
    (acc, inbox)
}

pub fn sample(n: usize, extra: &str) -> Arc<[u8]> {
    format!(
        "From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: message {n}\r\n\
         Message-ID: <{n}.{extra}@example.test>\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n\r\n\
         Hello number {n}. {extra}\r\n"
    )
    .into_bytes()
    .into()
}

pub async fn append(store: &DynStore, mailbox: MailboxId, raw: Arc<[u8]>) -> Result<Appended> {
    let r = store
        .commit(WriteBatch {
            appends: vec![AppendRequest {
                mailbox_id: mailbox,
                raw: raw.into(),
                flags: Flags::empty(),
                keywords: vec![],
                internal_date: 1_790_000_000,
            }],
            ..WriteBatch::default()
        })
        .await?;
    Ok(r.appended[0])
}

async fn assert_healthy(store: &DynStore) -> IntegrityReport {
    let report = store.check_integrity().await.expect("integrity check runs");
    assert!(
        report.problems.is_empty(),
        "integrity problems: {:?}",
        report.problems
    );
    report
}

async fn all(store: &DynStore, mailbox: MailboxId) -> Vec<MessageRecord> {
    store
        .messages(mailbox, 1..=Uid::MAX)
        .await
        .expect("messages")
}

pub async fn uids_strictly_increase_and_are_never_reused(h: &dyn Harness) {
    let mut seen = Vec::new();
    let inbox_id;
    {
        let store = h.open().await;
        let (_, inbox) = account(&store, "uids").await;
        inbox_id = inbox.id;
        for i in 0..10 {
            seen.push(
                append(&store, inbox.id, sample(i, "a"))
                    .await
                    .expect("append")
                    .uid,
            );
        }
        // Expunging the highest UIDs must not make them available again.
        store
            .expunge(inbox.id, ExpungeFilter::Uids(vec![seen[8], seen[9]]))
            .await
            .expect("expunge");
        seen.push(
            append(&store, inbox.id, sample(10, "a"))
                .await
                .expect("append")
                .uid,
        );
    }
    {
        let store = h.open().await;
        for i in 11..15 {
            seen.push(
                append(&store, inbox_id, sample(i, "b"))
                    .await
                    .expect("append after restart")
                    .uid,
            );
        }
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "UIDs not strictly increasing: {seen:?}"
        );
        let status = store.mailbox_status(inbox_id).await.expect("status");
        assert_eq!(status.uidnext, seen.last().copied().unwrap_or(0) + 1);
        assert_eq!(status.messages, 13);
        assert_healthy(&store).await;
    }
}

pub async fn uidvalidity_is_stable_and_never_reused(h: &dyn Harness) {
    let (acc, first) = {
        let store = h.open().await;
        let (acc, inbox) = account(&store, "validity").await;
        (acc, inbox)
    };
    let store = h.open().await;
    let again = store
        .mailbox_get(acc.id, "inbox")
        .await
        .expect("get")
        .expect("INBOX by any case");
    assert_eq!(
        again.uidvalidity, first.uidvalidity,
        "UIDVALIDITY changed across restart"
    );
    let mut values = HashSet::new();
    values.insert(first.uidvalidity);
    let a = store
        .mailbox_create(acc.id, "Projects", None)
        .await
        .expect("create");
    assert!(values.insert(a.uidvalidity), "UIDVALIDITY reused");
    store
        .mailbox_delete(acc.id, "Projects")
        .await
        .expect("delete");
    let b = store
        .mailbox_create(acc.id, "Projects", None)
        .await
        .expect("create again");
    assert!(
        values.insert(b.uidvalidity),
        "a recreated mailbox reused an old UIDVALIDITY"
    );
}

pub async fn modseqs_strictly_increase(h: &dyn Harness) {
    let store = h.open().await;
    let (_, inbox) = account(&store, "modseq").await;
    let mut last = inbox.highestmodseq;
    let mut step = |m: ModSeq, what: &str| {
        assert!(m > last, "{what}: MODSEQ {m} not above {last}");
        last = m;
    };
    let a = append(&store, inbox.id, sample(1, "m"))
        .await
        .expect("append");
    step(a.modseq, "append");
    let b = append(&store, inbox.id, sample(2, "m"))
        .await
        .expect("append");
    step(b.modseq, "append");
    let f = store
        .store_flags(inbox.id, &[a.uid], FlagOp::Add, Flags::SEEN, &[], None)
        .await
        .expect("store");
    step(f.updated[0].modseq, "store flags");
    let e = store
        .expunge(inbox.id, ExpungeFilter::Uids(vec![b.uid]))
        .await
        .expect("expunge");
    step(e.modseq, "expunge");
    let status = store.mailbox_status(inbox.id).await.expect("status");
    assert_eq!(status.highestmodseq, e.modseq);
    // A STORE that changes nothing does not bump MODSEQ.
    let none = store
        .store_flags(inbox.id, &[a.uid], FlagOp::Add, Flags::SEEN, &[], None)
        .await
        .expect("store");
    assert!(none.updated.is_empty());
    assert_eq!(
        store
            .mailbox_status(inbox.id)
            .await
            .expect("status")
            .highestmodseq,
        e.modseq
    );
}

pub async fn concurrent_appends_get_unique_uids(h: &dyn Harness) {
    const TASKS: usize = 50;
    const EACH: usize = 10;
    let store = h.open().await;
    let (_, inbox) = account(&store, "concurrent").await;
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut uids = Vec::new();
            for i in 0..EACH {
                uids.push(
                    append(&store, inbox.id, sample(t * EACH + i, "c"))
                        .await
                        .expect("append")
                        .uid,
                );
            }
            uids
        }));
    }
    let mut uids = Vec::new();
    for h in handles {
        uids.extend(h.await.expect("task"));
    }
    let unique: HashSet<Uid> = uids.iter().copied().collect();
    assert_eq!(unique.len(), TASKS * EACH, "duplicate UIDs handed out");
    let stored: Vec<Uid> = all(&store, inbox.id).await.iter().map(|m| m.uid).collect();
    let expected: Vec<Uid> = (1..=(TASKS * EACH) as Uid).collect();
    assert_eq!(stored, expected);
    assert_healthy(&store).await;
}

pub async fn expunge_records_answer_vanished(h: &dyn Harness) {
    let store = h.open().await;
    let (_, inbox) = account(&store, "vanished").await;
    let mut uids = Vec::new();
    for i in 0..6 {
        uids.push(
            append(&store, inbox.id, sample(i, "v"))
                .await
                .expect("append")
                .uid,
        );
    }
    let before = store
        .mailbox_status(inbox.id)
        .await
        .expect("status")
        .highestmodseq;
    store
        .store_flags(
            inbox.id,
            &uids[0..3],
            FlagOp::Add,
            Flags::DELETED,
            &[],
            None,
        )
        .await
        .expect("flag");
    // UID EXPUNGE only removes listed messages that have \Deleted.
    let e = store
        .expunge(inbox.id, ExpungeFilter::DeletedIn(vec![uids[0], uids[4]]))
        .await
        .expect("uid expunge");
    assert_eq!(e.uids, vec![uids[0]]);
    let e2 = store
        .expunge(inbox.id, ExpungeFilter::AllDeleted)
        .await
        .expect("expunge");
    assert_eq!(e2.uids, vec![uids[1], uids[2]]);
    assert_eq!(
        store.expunged_since(inbox.id, before).await.expect("since"),
        vec![uids[0], uids[1], uids[2]]
    );
    assert_eq!(
        store
            .expunged_since(inbox.id, e.modseq)
            .await
            .expect("since"),
        vec![uids[1], uids[2]]
    );
    assert!(
        store
            .expunged_since(inbox.id, e2.modseq)
            .await
            .expect("since")
            .is_empty()
    );
    let left: Vec<Uid> = all(&store, inbox.id).await.iter().map(|m| m.uid).collect();
    assert_eq!(left, uids[3..].to_vec());
}

pub async fn copy_shares_the_blob_and_release_removes_it(h: &dyn Harness) {
    let store = h.open().await;
    let (acc, inbox) = account(&store, "copy").await;
    let other = store
        .mailbox_create(acc.id, "Archive", Some(SpecialUse::Archive))
        .await
        .expect("create");
    let raw = sample(1, "shared");
    let a = append(&store, inbox.id, raw.clone()).await.expect("append");
    let before = assert_healthy(&store).await.blobs;
    let c = store
        .copy(inbox.id, &[a.uid], other.id)
        .await
        .expect("copy");
    assert_eq!(c.uidvalidity, other.uidvalidity);
    assert_eq!(c.mapping.len(), 1);
    let copied = all(&store, other.id).await;
    assert_eq!(copied[0].blob, a.blob, "copy did not share the blob");
    assert_eq!(
        assert_healthy(&store).await.blobs,
        before,
        "copy stored the bytes twice"
    );
    // The same bytes appended again are stored once too.
    append(&store, other.id, raw.clone())
        .await
        .expect("append same bytes");
    assert_eq!(assert_healthy(&store).await.blobs, before);
    store
        .expunge(inbox.id, ExpungeFilter::Uids(vec![a.uid]))
        .await
        .expect("expunge");
    assert_eq!(
        &store
            .blob_read(a.blob, None)
            .await
            .expect("still referenced")[..],
        &raw[..]
    );
    let uids: Vec<Uid> = all(&store, other.id).await.iter().map(|m| m.uid).collect();
    store
        .expunge(other.id, ExpungeFilter::Uids(uids))
        .await
        .expect("expunge");
    assert_eq!(
        assert_healthy(&store).await.blobs,
        before - 1,
        "last reference gone but blob kept"
    );
    assert!(matches!(
        store.blob_read(a.blob, None).await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn quota_is_accounted_and_enforced(h: &dyn Harness) {
    let store = h.open().await;
    let (acc, inbox) = account(&store, "quota").await;
    let raw = sample(1, "q");
    let size = raw.len() as u64;
    let a = append(&store, inbox.id, raw).await.expect("append");
    assert_eq!(
        store.quota_usage(acc.id).await.expect("usage"),
        QuotaUsage {
            bytes: size,
            messages: 1
        }
    );
    let trash = store
        .mailbox_get(acc.id, "Trash")
        .await
        .expect("get")
        .expect("Trash");
    store
        .copy(inbox.id, &[a.uid], trash.id)
        .await
        .expect("copy");
    assert_eq!(
        store.quota_usage(acc.id).await.expect("usage"),
        QuotaUsage {
            bytes: 2 * size,
            messages: 2
        }
    );
    store
        .account_set_quota(acc.id, Some(2 * size + 10), None)
        .await
        .expect("set quota");
    let err = append(&store, inbox.id, sample(2, "q"))
        .await
        .expect_err("over quota must fail");
    assert!(matches!(err, StoreError::OverQuota { .. }), "got {err:?}");
    assert_eq!(
        all(&store, inbox.id).await.len(),
        1,
        "a refused append left a message"
    );
    store
        .account_set_quota(acc.id, None, Some(3))
        .await
        .expect("message quota");
    append(&store, inbox.id, sample(3, "q"))
        .await
        .expect("third message fits");
    assert!(matches!(
        append(&store, inbox.id, sample(4, "q")).await,
        Err(StoreError::OverQuota { .. })
    ));
    store
        .mailbox_delete(acc.id, "Trash")
        .await
        .expect("delete Trash");
    let after = store.quota_usage(acc.id).await.expect("usage");
    assert_eq!(after.messages, 2);
    assert_healthy(&store).await;
}

pub async fn rename_keeps_uidvalidity_rules(h: &dyn Harness) {
    let store = h.open().await;
    let (acc, _) = account(&store, "rename").await;
    let work = store
        .mailbox_create(acc.id, "Work", None)
        .await
        .expect("create");
    let child = store
        .mailbox_create(acc.id, "Work/2026", None)
        .await
        .expect("create child");
    let a = append(&store, child.id, sample(1, "r"))
        .await
        .expect("append");
    store
        .mailbox_rename(acc.id, "Work", "Old/Work")
        .await
        .expect("rename");
    let moved = store
        .mailbox_get(acc.id, "Old/Work")
        .await
        .expect("get")
        .expect("renamed exists");
    let moved_child = store
        .mailbox_get(acc.id, "Old/Work/2026")
        .await
        .expect("get")
        .expect("child renamed");
    assert!(
        store
            .mailbox_get(acc.id, "Old")
            .await
            .expect("get")
            .is_some(),
        "parent of the new name created"
    );
    assert!(
        store
            .mailbox_get(acc.id, "Work")
            .await
            .expect("get")
            .is_none()
    );
    // RFC 9051: the renamed mailbox keeps its UIDVALIDITY and its messages keep their UIDs.
    assert_eq!(moved.uidvalidity, work.uidvalidity);
    assert_eq!(moved_child.uidvalidity, child.uidvalidity);
    assert_eq!(all(&store, moved_child.id).await[0].uid, a.uid);
    // A new mailbox at the old name must not reuse the UIDVALIDITY that clients cached for it.
    let again = store
        .mailbox_create(acc.id, "Work", None)
        .await
        .expect("recreate");
    assert_ne!(again.uidvalidity, work.uidvalidity);
    assert!(matches!(
        store.mailbox_rename(acc.id, "Work", "Old/Work").await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store.mailbox_rename(acc.id, "Nope", "X").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.mailbox_rename(acc.id, "Old", "Old/Inside").await,
        Err(StoreError::Invalid(_))
    ));
}

pub async fn rename_inbox_moves_messages(h: &dyn Harness) {
    let store = h.open().await;
    let (acc, inbox) = account(&store, "inboxrename").await;
    let a = append(&store, inbox.id, sample(1, "i"))
        .await
        .expect("append");
    store
        .mailbox_rename(acc.id, "INBOX", "Saved")
        .await
        .expect("rename INBOX");
    let saved = store
        .mailbox_get(acc.id, "Saved")
        .await
        .expect("get")
        .expect("exists");
    assert_ne!(saved.uidvalidity, inbox.uidvalidity);
    assert_eq!(all(&store, saved.id).await.len(), 1);
    let inbox_now = store
        .mailbox_get(acc.id, "INBOX")
        .await
        .expect("get")
        .expect("INBOX stays");
    assert_eq!(inbox_now.uidvalidity, inbox.uidvalidity);
    assert!(all(&store, inbox.id).await.is_empty());
    assert_eq!(
        store
            .expunged_since(inbox.id, a.modseq)
            .await
            .expect("since"),
        vec![a.uid]
    );
    let b = append(&store, inbox.id, sample(2, "i"))
        .await
        .expect("append");
    assert!(b.uid > a.uid, "INBOX reused a UID after rename");
    assert_healthy(&store).await;
}

pub async fn flags_and_keywords_bump_modseq(h: &dyn Harness) {
    let store = h.open().await;
    let (_, inbox) = account(&store, "flags").await;
    let a = append(&store, inbox.id, sample(1, "f"))
        .await
        .expect("append");
    let kw = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let r = store
        .store_flags(
            inbox.id,
            &[a.uid],
            FlagOp::Add,
            Flags::SEEN.union(Flags::FLAGGED),
            &kw(&["$Label1", "Work"]),
            None,
        )
        .await
        .expect("add");
    assert_eq!(r.updated[0].flags, Flags::SEEN.union(Flags::FLAGGED));
    assert_eq!(r.updated[0].keywords, kw(&["$Label1", "Work"]));
    let r = store
        .store_flags(
            inbox.id,
            &[a.uid],
            FlagOp::Remove,
            Flags::FLAGGED,
            &kw(&["work"]),
            None,
        )
        .await
        .expect("remove");
    assert_eq!(r.updated[0].flags, Flags::SEEN);
    assert_eq!(r.updated[0].keywords, kw(&["$Label1"]));
    let r = store
        .store_flags(
            inbox.id,
            &[a.uid],
            FlagOp::Replace,
            Flags::ANSWERED,
            &kw(&["Done"]),
            None,
        )
        .await
        .expect("replace");
    assert_eq!(r.updated[0].flags, Flags::ANSWERED);
    let stored = &all(&store, inbox.id).await[0];
    assert_eq!(stored.flags, Flags::ANSWERED);
    assert_eq!(stored.keywords, kw(&["Done"]));
    assert_eq!(
        store
            .messages_changed_since(inbox.id, a.modseq)
            .await
            .expect("changed")
            .len(),
        1
    );
    let st = store.mailbox_status(inbox.id).await.expect("status");
    assert_eq!((st.messages, st.unseen), (1, 1));
}

pub async fn unchanged_since_reports_modified(h: &dyn Harness) {
    let store = h.open().await;
    let (_, inbox) = account(&store, "condstore").await;
    let a = append(&store, inbox.id, sample(1, "u"))
        .await
        .expect("append");
    let b = append(&store, inbox.id, sample(2, "u"))
        .await
        .expect("append");
    // b's MODSEQ is above a's: STORE (UNCHANGEDSINCE a.modseq) must leave b alone.
    let r = store
        .store_flags(
            inbox.id,
            &[a.uid, b.uid],
            FlagOp::Add,
            Flags::SEEN,
            &[],
            Some(a.modseq),
        )
        .await
        .expect("store");
    assert_eq!(r.modified, vec![b.uid]);
    assert_eq!(
        r.updated.iter().map(|m| m.uid).collect::<Vec<_>>(),
        vec![a.uid]
    );
    let msgs = all(&store, inbox.id).await;
    assert!(msgs[0].flags.contains(Flags::SEEN) && !msgs[1].flags.contains(Flags::SEEN));
}

pub async fn blob_read_by_range_inline_and_large(h: &dyn Harness) {
    let store = h.open().await;
    let (_, inbox) = account(&store, "blobs").await;
    let small = sample(1, "small");
    let a = append(&store, inbox.id, small.clone())
        .await
        .expect("append");
    assert_eq!(
        &store.blob_read(a.blob, None).await.expect("read")[..],
        &small[..]
    );
    assert_eq!(
        &store.blob_read(a.blob, Some(6..11)).await.expect("range")[..],
        &small[6..11]
    );
    assert!(
        store
            .blob_read(a.blob, Some(10_000..20_000))
            .await
            .expect("past end")
            .is_empty()
    );
    let mut big = b"Subject: big\r\n\r\n".to_vec();
    while big.len() < h.large_blob_size() + 1000 {
        big.extend_from_slice(format!("line {} of a large message\r\n", big.len()).as_bytes());
    }
    let big: Arc<[u8]> = big.into();
    let b = append(&store, inbox.id, big.clone())
        .await
        .expect("append large");
    assert_eq!(
        &store.blob_read(b.blob, None).await.expect("read large")[..],
        &big[..]
    );
    assert_eq!(
        &store
            .blob_read(b.blob, Some(60_000..60_100))
            .await
            .expect("range")[..],
        &big[60_000..60_100]
    );
    // Ranges of many blobs at once: the same bytes as one blob_read each, in the order asked.
    let asked = [
        (b.blob, 60_000..60_100),
        (a.blob, 6..11),
        (a.blob, 10_000..20_000),
        (b.blob, 0..16),
        (a.blob, 0..u64::MAX),
        (b.blob, 5..5),
    ];
    let got = store.blob_ranges_read(&asked).await.expect("ranges");
    assert_eq!(got.len(), asked.len());
    for ((blob, range), bytes) in asked.iter().zip(&got) {
        let one = store
            .blob_read(*blob, Some(range.clone()))
            .await
            .expect("one range");
        assert_eq!(bytes, &one, "range {range:?}");
    }
    assert_eq!(&got[0][..], &big[60_000..60_100]);
    assert_eq!(&got[3][..], b"Subject: big\r\n\r\n");
    assert_eq!(&got[4][..], &small[..]);
    assert!(got[2].is_empty() && got[5].is_empty());
    assert!(
        store
            .blob_ranges_read(&[(a.blob, 0..10), (BlobId([7; 32]), 0..10)])
            .await
            .is_err(),
        "an unknown blob is an error"
    );
    let msgs = all(&store, inbox.id).await;
    assert_eq!(msgs[1].size, big.len() as u64);
    let analysis = store.analysis(b.blob).await.expect("analysis");
    assert_eq!(analysis.envelope.subject.as_deref(), Some("big"));
    assert_healthy(&store).await;
}

/// Reads of many blobs at once answer as one read per blob, in the order asked; a STORE on a
/// sparse set of a larger mailbox changes exactly the messages named, under one MODSEQ.
pub async fn bulk_reads_and_sparse_stores(h: &dyn Harness) {
    let store = h.open().await;
    let (_, inbox) = account(&store, "bulk").await;
    let req = |raw: Arc<[u8]>| AppendRequest {
        mailbox_id: inbox.id,
        raw: raw.into(),
        flags: Flags::empty(),
        keywords: vec!["Old".into()],
        internal_date: 1_790_000_000,
    };
    let appended = store
        .commit(WriteBatch {
            appends: (0..300).map(|n| req(sample(n, "bulk"))).collect(),
            enqueue: vec![],
            quota: QuotaPolicy::AllOrNothing,
        })
        .await
        .expect("append 300")
        .appended;
    let mut big = b"Subject: bulk big\r\n\r\n".to_vec();
    while big.len() < h.large_blob_size() + 1000 {
        big.extend_from_slice(format!("line {} of a large message\r\n", big.len()).as_bytes());
    }
    let big = append(&store, inbox.id, big.into())
        .await
        .expect("append large");

    let asked = [
        big.blob,
        appended[5].blob,
        appended[1].blob,
        appended[5].blob,
    ];
    let raws = store.blobs_read(&asked).await.expect("blobs_read");
    let analyses = store.analyses(&asked).await.expect("analyses");
    assert_eq!((raws.len(), analyses.len()), (asked.len(), asked.len()));
    for ((id, raw), a) in asked.iter().zip(&raws).zip(&analyses) {
        assert_eq!(raw, &store.blob_read(*id, None).await.expect("read"));
        let one = store.analysis(*id).await.expect("analysis");
        assert_eq!(a.envelope.subject, one.envelope.subject);
    }
    let unknown = BlobId([7; 32]);
    assert!(matches!(
        store.blobs_read(&[asked[1], unknown]).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.analyses(&[unknown]).await,
        Err(StoreError::NotFound(_))
    ));

    // Gaps in the UIDs: 10..20 expunged.
    let gone: Vec<Uid> = appended[10..20].iter().map(|a| a.uid).collect();
    store
        .store_flags(inbox.id, &gone, FlagOp::Add, Flags::DELETED, &[], None)
        .await
        .expect("flag");
    store
        .expunge(inbox.id, ExpungeFilter::AllDeleted)
        .await
        .expect("expunge");
    let before = store.mailbox_status(inbox.id).await.expect("status");
    let uid = |i: usize| appended[i].uid;
    // Expunged and unknown UIDs are ignored; the rest, out of order and repeated, are changed.
    let wanted = vec![
        uid(299),
        uid(1),
        uid(2),
        uid(3),
        uid(12),
        uid(150),
        uid(151),
        uid(2),
        big.uid,
        99_999,
    ];
    let mut expect: Vec<Uid> = vec![
        uid(1),
        uid(2),
        uid(3),
        uid(150),
        uid(151),
        uid(299),
        big.uid,
    ];
    expect.sort_unstable();
    let r = store
        .store_flags(
            inbox.id,
            &wanted,
            FlagOp::Add,
            Flags::SEEN,
            &["New".into()],
            None,
        )
        .await
        .expect("sparse store");
    assert_eq!(r.updated.iter().map(|m| m.uid).collect::<Vec<_>>(), expect);
    assert!(
        r.updated
            .iter()
            .all(|m| m.modseq == before.highestmodseq + 1)
    );
    for m in all(&store, inbox.id).await {
        let hit = expect.contains(&m.uid);
        assert_eq!(m.flags.contains(Flags::SEEN), hit, "uid {}", m.uid);
        let kws: Vec<&str> = m.keywords.iter().map(String::as_str).collect();
        match (hit, m.uid == big.uid) {
            (true, true) => assert_eq!(kws, ["New"]),
            (true, false) => assert_eq!(kws, ["Old", "New"]),
            (false, _) => assert_eq!(kws, ["Old"]),
        }
    }
    // Nothing left to change: no update, no new MODSEQ.
    let again = store
        .store_flags(inbox.id, &wanted, FlagOp::Add, Flags::SEEN, &[], None)
        .await
        .expect("store again");
    assert!(again.updated.is_empty());
    assert_eq!(
        store
            .mailbox_status(inbox.id)
            .await
            .expect("status")
            .highestmodseq,
        before.highestmodseq + 1
    );
    assert_healthy(&store).await;
}

pub async fn change_feed_reports_committed_changes(h: &dyn Harness) {
    let store = h.open().await;
    let (acc, inbox) = account(&store, "feed").await;
    let mut rx = store.changes();
    let a = append(&store, inbox.id, sample(1, "feed"))
        .await
        .expect("append");
    let change = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            let c = rx.recv().await.expect("feed open");
            if c.mailbox_id == inbox.id {
                return c;
            }
        }
    })
    .await
    .expect("change published");
    assert_eq!(change.account_id, acc.id);
    assert_eq!(change.kind, ChangeKind::Appended(vec![a.uid]));
    assert_eq!(change.modseq, a.modseq);
    store
        .store_flags(inbox.id, &[a.uid], FlagOp::Add, Flags::SEEN, &[], None)
        .await
        .expect("store");
    let c = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
        .await
        .expect("published")
        .expect("open");
    assert_eq!(c.kind, ChangeKind::Flags(vec![a.uid]));
}

pub async fn mailbox_hierarchy_and_subscriptions(h: &dyn Harness) {
    let store = h.open().await;
    let (acc, _) = account(&store, "hier").await;
    store
        .mailbox_create(acc.id, "Clients/ACME/2026", None)
        .await
        .expect("create deep");
    let names: Vec<String> = store
        .mailbox_list(acc.id)
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.name)
        .collect();
    for n in [
        "Clients",
        "Clients/ACME",
        "Clients/ACME/2026",
        "INBOX",
        "Trash",
    ] {
        assert!(names.contains(&n.to_string()), "{n} missing from {names:?}");
    }
    assert!(matches!(
        store.mailbox_create(acc.id, "Clients", None).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store.mailbox_create(acc.id, "inbox", None).await,
        Err(StoreError::AlreadyExists(_))
    ));
    for bad in ["", "/x", "x/", "a//b", "a\u{7}b"] {
        assert!(
            matches!(
                store.mailbox_create(acc.id, bad, None).await,
                Err(StoreError::Invalid(_))
            ),
            "{bad:?} accepted"
        );
    }
    assert!(matches!(
        store.mailbox_delete(acc.id, "INBOX").await,
        Err(StoreError::Invalid(_))
    ));
    let trash = store
        .mailbox_get(acc.id, "Trash")
        .await
        .expect("get")
        .expect("Trash");
    assert_eq!(trash.special_use, Some(SpecialUse::Trash));
    store
        .mailbox_set_special_use(trash.id, Some(SpecialUse::Junk))
        .await
        .expect("set special use");
    assert_eq!(
        store
            .mailbox_get_by_id(trash.id)
            .await
            .expect("get")
            .expect("exists")
            .special_use,
        Some(SpecialUse::Junk)
    );
    store
        .subscribe(acc.id, "Clients/ACME")
        .await
        .expect("subscribe");
    store
        .subscribe(acc.id, "Does/Not/Exist")
        .await
        .expect("subscribe to a missing name");
    store
        .unsubscribe(acc.id, "Trash")
        .await
        .expect("unsubscribe");
    let subs = store.subscriptions(acc.id).await.expect("subscriptions");
    assert!(
        subs.contains(&"Clients/ACME".to_string()) && subs.contains(&"Does/Not/Exist".to_string())
    );
    assert!(subs.contains(&"INBOX".to_string()) && !subs.contains(&"Trash".to_string()));
    store
        .mailbox_delete(acc.id, "Clients/ACME")
        .await
        .expect("delete");
    assert!(
        store
            .mailbox_get(acc.id, "Clients/ACME/2026")
            .await
            .expect("get")
            .is_some(),
        "children survive"
    );
}

/// RFC 6154 §3 (CREATE ... USE): an account has at most one mailbox per special use; a CREATE
/// that would give a second one fails whole, missing parents included.
pub async fn special_use_is_unique_per_account(h: &dyn Harness) {
    let store = h.open().await;
    let (acc, _) = account(&store, "uses").await;
    let (other, _) = account(&store, "uses2").await;
    store
        .mailbox_create(acc.id, "Starred", Some(SpecialUse::Flagged))
        .await
        .expect("first \\Flagged");
    for name in ["Starred2", "New/Starred"] {
        assert!(
            matches!(
                store
                    .mailbox_create(acc.id, name, Some(SpecialUse::Flagged))
                    .await,
                Err(StoreError::SpecialUseTaken(_))
            ),
            "{name}"
        );
    }
    let names: Vec<String> = store
        .mailbox_list(acc.id)
        .await
        .expect("list")
        .into_iter()
        .filter(|m| m.special_use == Some(SpecialUse::Flagged) || m.name.starts_with("New"))
        .map(|m| m.name)
        .collect();
    assert_eq!(names, vec!["Starred".to_string()]);
    store
        .mailbox_create(other.id, "Starred", Some(SpecialUse::Flagged))
        .await
        .expect("another account has its own");
    store
        .mailbox_delete(acc.id, "Starred")
        .await
        .expect("delete");
    store
        .mailbox_create(acc.id, "Starred2", Some(SpecialUse::Flagged))
        .await
        .expect("free again once its holder is gone");
}

pub async fn directory_records_lifecycle(h: &dyn Harness) {
    let store = h.open().await;
    let d = store.domain_create("records.test").await.expect("domain");
    assert!(matches!(
        store.domain_create("records.test").await,
        Err(StoreError::AlreadyExists(_))
    ));
    let acc = store
        .account_create(NewAccount {
            domain_id: d.id,
            local_part: "alice".into(),
            display_name: "Alice".into(),
            password_hash: "h1".into(),
            quota_bytes: Some(1000),
            quota_messages: None,
            mailboxes: vec![(INBOX.into(), None)],
        })
        .await
        .expect("account");
    assert_eq!(acc.address(), "alice@records.test");
    assert!(format!("{acc:?}").contains("redacted") && !format!("{acc:?}").contains("h1"));
    let dup = NewAccount {
        domain_id: d.id,
        local_part: "alice".into(),
        display_name: String::new(),
        password_hash: "x".into(),
        quota_bytes: None,
        quota_messages: None,
        mailboxes: vec![],
    };
    assert!(matches!(
        store.account_create(dup).await,
        Err(StoreError::AlreadyExists(_))
    ));
    store
        .account_set_password(acc.id, "h2")
        .await
        .expect("passwd");
    store
        .account_set_enabled(acc.id, false)
        .await
        .expect("disable");
    let got = store
        .account_get("alice", "records.test")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        (got.password_hash.as_str(), got.enabled, got.quota_bytes),
        ("h2", false, Some(1000))
    );
    let al = store
        .alias_create(
            d.id,
            "sales",
            &["alice@records.test".into(), "bob@elsewhere.test".into()],
        )
        .await
        .expect("alias");
    assert_eq!(al.targets.len(), 2);
    assert_eq!(
        store
            .alias_get("sales", "records.test")
            .await
            .expect("get")
            .expect("exists"),
        al
    );
    assert_eq!(
        store
            .alias_list(Some("records.test"))
            .await
            .expect("list")
            .len(),
        1
    );
    store
        .domain_set_catchall("records.test", Some("alice@records.test"))
        .await
        .expect("catchall");
    assert_eq!(
        store
            .domain_get("records.test")
            .await
            .expect("get")
            .expect("exists")
            .catchall
            .as_deref(),
        Some("alice@records.test")
    );
    assert!(matches!(
        store.domain_delete("records.test").await,
        Err(StoreError::Invalid(_))
    ));
    store
        .alias_delete("sales", "records.test")
        .await
        .expect("alias delete");
    assert!(matches!(
        store.alias_delete("sales", "records.test").await,
        Err(StoreError::NotFound(_))
    ));
    store.account_delete(acc.id).await.expect("account delete");
    store
        .domain_delete("records.test")
        .await
        .expect("domain delete");
    assert!(
        store
            .domain_get("records.test")
            .await
            .expect("get")
            .is_none()
    );
}

pub async fn queue_entries_hold_their_blob(h: &dyn Harness) {
    let store = h.open().await;
    let (_, inbox) = account(&store, "queue").await;
    let raw = sample(1, "outbound");
    let r = store
        .commit(WriteBatch {
            appends: vec![AppendRequest {
                mailbox_id: inbox.id,
                raw: raw.clone().into(),
                flags: Flags::SEEN,
                keywords: vec![],
                internal_date: 0,
            }],
            enqueue: vec![NewQueueEntry {
                raw: raw.clone().into(),
                sender: "queue@example.test".into(),
                recipients: vec![QueueRecipient {
                    address: "far@remote.test".into(),
                    notify: Some("FAILURE".into()),
                    orcpt: None,
                    status: "pending".into(),
                    last_reply: None,
                }],
                envid: Some("ENV1".into()),
                ret: Some("HDRS".into()),
                next_attempt: 100,
                smtp_id: Some("0006433A1B2C3D4E".into()),
            }],
            quota: QuotaPolicy::AllOrNothing,
        })
        .await
        .expect("commit");
    let id = r.queued[0];
    assert!(
        store
            .queue_due(99, 10)
            .await
            .expect("due")
            .iter()
            .all(|e| e.id != id)
    );
    let mut entry = store
        .queue_due(100, 10)
        .await
        .expect("due")
        .into_iter()
        .find(|e| e.id == id)
        .expect("due at 100");
    assert_eq!(
        entry.blob, r.appended[0].blob,
        "local copy and queue entry share one blob"
    );
    assert_eq!(entry.envid.as_deref(), Some("ENV1"));
    // The SMTP transaction id stays with the entry (logs of every attempt name it).
    assert_eq!(entry.smtp_id.as_deref(), Some("0006433A1B2C3D4E"));
    entry.attempts = 1;
    entry.next_attempt = 500;
    entry.last_error = Some("451 4.7.0 try later".into());
    entry.recipients[0].last_reply = entry.last_error.clone();
    store.queue_update(&entry).await.expect("update");
    assert_eq!(
        store.queue_get(id).await.expect("get").expect("exists"),
        entry
    );
    let uid = r.appended[0].uid;
    store
        .expunge(inbox.id, ExpungeFilter::Uids(vec![uid]))
        .await
        .expect("expunge");
    assert_eq!(
        &store
            .blob_read(entry.blob, None)
            .await
            .expect("queue keeps blob")[..],
        &raw[..]
    );
    store.queue_delete(id).await.expect("delete");
    assert!(store.queue_get(id).await.expect("get").is_none());
    assert!(matches!(
        store.blob_read(entry.blob, None).await,
        Err(StoreError::NotFound(_))
    ));
    assert_healthy(&store).await;
}

pub async fn full_text_search_matches_substrings(h: &dyn Harness) {
    let store = h.open().await;
    let (_, inbox) = account(&store, "fts").await;
    let a = append(&store, inbox.id, sample(1, "The quarterly Zanzibar report"))
        .await
        .expect("append");
    append(&store, inbox.id, sample(2, "nothing to see"))
        .await
        .expect("append");
    let hit = store
        .search_text(inbox.id, TextField::Body, "zanzib")
        .await
        .expect("search");
    assert_eq!(
        hit,
        Some(vec![a.uid]),
        "case-insensitive substring of the body"
    );
    assert_eq!(
        store
            .search_text(inbox.id, TextField::Body, "message 1")
            .await
            .expect("search"),
        Some(vec![]),
        "subject is not body"
    );
    assert_eq!(
        store
            .search_text(inbox.id, TextField::Text, "message 1")
            .await
            .expect("search"),
        Some(vec![a.uid])
    );
    assert_eq!(
        store
            .search_text(inbox.id, TextField::Body, "ab")
            .await
            .expect("search"),
        None,
        "too short for the index"
    );
    assert_eq!(
        store
            .search_text(inbox.id, TextField::Body, "a \"quoted\" needle")
            .await
            .expect("search"),
        Some(vec![])
    );
}

pub async fn batch_is_all_or_nothing(h: &dyn Harness) {
    let store = h.open().await;
    let (_, inbox) = account(&store, "atomic").await;
    let req = |mailbox_id, n| AppendRequest {
        mailbox_id,
        raw: sample(n, "atomic").into(),
        flags: Flags::empty(),
        keywords: vec![],
        internal_date: 0,
    };
    let err = store
        .commit(WriteBatch {
            appends: vec![req(inbox.id, 1), req(i64::MAX, 2)],
            enqueue: vec![],
            quota: QuotaPolicy::AllOrNothing,
        })
        .await;
    assert!(matches!(err, Err(StoreError::NotFound(_))), "got {err:?}");
    assert!(
        all(&store, inbox.id).await.is_empty(),
        "part of a failed batch was stored"
    );
    assert_eq!(
        store
            .mailbox_status(inbox.id)
            .await
            .expect("status")
            .uidnext,
        1
    );
    assert_healthy(&store).await;
}

/// Quota is checked on a batch's total (IMAP MULTIAPPEND, RFC 3502 §6.3.11: all messages or
/// none): each message fits, the batch does not, and nothing of it is stored.
pub async fn batch_over_quota_stores_nothing(h: &dyn Harness) {
    let store = h.open().await;
    let (acc, inbox) = account(&store, "batchquota").await;
    let req = |n| AppendRequest {
        mailbox_id: inbox.id,
        raw: sample(n, "batch-quota").into(),
        flags: Flags::empty(),
        keywords: vec![],
        internal_date: 0,
    };
    let size = sample(1, "batch-quota").len() as u64;
    store
        .account_set_quota(acc.id, Some(2 * size + size / 2), None)
        .await
        .expect("set quota");
    let batch = || WriteBatch {
        appends: vec![req(1), req(2), req(3)],
        enqueue: vec![],
        quota: QuotaPolicy::AllOrNothing,
    };
    let err = store.commit(batch()).await;
    assert!(
        matches!(err, Err(StoreError::OverQuota { .. })),
        "got {err:?}"
    );
    store
        .account_set_quota(acc.id, None, Some(2))
        .await
        .expect("set quota");
    let err = store.commit(batch()).await;
    assert!(
        matches!(err, Err(StoreError::OverQuota { .. })),
        "got {err:?}"
    );
    assert!(
        all(&store, inbox.id).await.is_empty(),
        "part of a batch over quota was stored"
    );
    assert_eq!(
        store.quota_usage(acc.id).await.expect("usage"),
        QuotaUsage {
            bytes: 0,
            messages: 0
        }
    );
    assert_eq!(
        store
            .mailbox_status(inbox.id)
            .await
            .expect("status")
            .uidnext,
        1,
        "a refused batch used UIDs"
    );
    // Within the quota, the batch's UIDs are consecutive and in request order.
    store
        .account_set_quota(acc.id, None, Some(3))
        .await
        .expect("set quota");
    let res = store.commit(batch()).await.expect("batch fits");
    let uids: Vec<Uid> = res.appended.iter().map(|a| a.uid).collect();
    assert_eq!(uids, vec![1, 2, 3]);
    assert_healthy(&store).await;
}

pub async fn move_is_atomic(h: &dyn Harness) {
    let store = h.open().await;
    let (acc, inbox) = account(&store, "move").await;
    let trash = store
        .mailbox_get(acc.id, "Trash")
        .await
        .expect("get")
        .expect("Trash");
    let a = append(&store, inbox.id, sample(1, "mv"))
        .await
        .expect("append");
    let b = append(&store, inbox.id, sample(2, "mv"))
        .await
        .expect("append");
    let (copied, expunged) = store
        .move_messages(inbox.id, &[b.uid, a.uid, 999], trash.id)
        .await
        .expect("move");
    assert_eq!(
        copied.mapping.iter().map(|m| m.0).collect::<Vec<_>>(),
        vec![a.uid, b.uid]
    );
    assert_eq!(expunged.uids, vec![a.uid, b.uid]);
    assert!(all(&store, inbox.id).await.is_empty());
    assert_eq!(all(&store, trash.id).await.len(), 2);
    assert_eq!(store.quota_usage(acc.id).await.expect("usage").messages, 2);
    assert_healthy(&store).await;
}

pub async fn account_delete_releases_everything(h: &dyn Harness) {
    let store = h.open().await;
    let (acc, inbox) = account(&store, "gone").await;
    let before = assert_healthy(&store).await.blobs;
    append(&store, inbox.id, sample(1, "gone-unique"))
        .await
        .expect("append");
    store.account_delete(acc.id).await.expect("delete");
    assert!(
        store
            .account_get_by_id(acc.id)
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        store
            .mailbox_get_by_id(inbox.id)
            .await
            .expect("get")
            .is_none()
    );
    assert_eq!(assert_healthy(&store).await.blobs, before);
}

fn dkim_key(domain: &str, selector: &str, created: i64) -> DkimKeyRecord {
    DkimKeyRecord {
        domain: domain.into(),
        selector: selector.into(),
        algorithm: "ed25519".into(),
        private_pem: format!(
            "-----BEGIN PRIVATE KEY-----\n{selector}\n-----END PRIVATE KEY-----\n"
        ),
        created,
        state: DkimKeyState::Active,
    }
}

pub async fn dkim_keys_lifecycle(h: &dyn Harness) {
    let store = h.open().await;
    assert!(store.dkim_keys(None).await.expect("list").is_empty());
    let old = dkim_key("example.test", "s2025", 100);
    let new = dkim_key("example.test", "s2026", 200);
    let other = DkimKeyRecord {
        algorithm: "rsa".into(),
        ..dkim_key("other.test", "mail", 50)
    };
    for k in [&new, &other, &old] {
        store.dkim_key_put(k).await.expect("put");
    }
    assert_eq!(
        store.dkim_keys(None).await.expect("all"),
        vec![old.clone(), new.clone(), other.clone()]
    );
    assert_eq!(
        store
            .dkim_keys(Some("example.test"))
            .await
            .expect("one domain"),
        vec![old.clone(), new.clone()]
    );
    assert!(
        store
            .dkim_keys(Some("none.test"))
            .await
            .expect("none")
            .is_empty()
    );
    assert!(
        !format!("{old:?}").contains("s2025\n"),
        "Debug shows the key"
    );

    // Rotation: the old key stops signing but stays until its DNS record is gone.
    store
        .dkim_key_set_state("example.test", "s2025", DkimKeyState::Retired)
        .await
        .expect("retire");
    let states = |keys: Vec<DkimKeyRecord>| {
        keys.into_iter()
            .map(|k| (k.selector, k.state))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        states(store.dkim_keys(Some("example.test")).await.expect("list")),
        vec![
            ("s2025".to_string(), DkimKeyState::Retired),
            ("s2026".to_string(), DkimKeyState::Active)
        ]
    );

    // A new key waits, pending, for its DNS record; then it signs. Every state is kept as set.
    let pending = DkimKeyRecord {
        state: DkimKeyState::Pending,
        ..dkim_key("example.test", "s2027", 300)
    };
    store.dkim_key_put(&pending).await.expect("put pending");
    let got = store.dkim_keys(Some("example.test")).await.expect("list");
    assert_eq!(got.last(), Some(&pending));
    assert!(!got.last().expect("key").state.signs());
    for state in DkimKeyState::ALL {
        store
            .dkim_key_set_state("example.test", "s2027", state)
            .await
            .expect("set state");
        let got = store.dkim_keys(Some("example.test")).await.expect("list");
        assert_eq!(got.last().map(|k| k.state), Some(state));
    }
    store
        .dkim_key_delete("example.test", "s2027")
        .await
        .expect("delete the new key");

    // Put replaces the key with the same domain and selector.
    let replaced = DkimKeyRecord {
        private_pem: "replaced".into(),
        ..new.clone()
    };
    store.dkim_key_put(&replaced).await.expect("replace");
    store
        .dkim_key_delete("example.test", "s2025")
        .await
        .expect("delete");
    assert!(matches!(
        store.dkim_key_delete("example.test", "s2025").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .dkim_key_set_state("example.test", "nope", DkimKeyState::Active)
            .await,
        Err(StoreError::NotFound(_))
    ));

    // Kept across a restart.
    drop(store);
    let store = h.open().await;
    assert_eq!(
        store.dkim_keys(None).await.expect("after restart"),
        vec![replaced, other]
    );
}

/// `\Recent` (RFC 3501 §2.3.2): each message is claimed by one session only; STATUS RECENT counts
/// what is left to claim, expunged messages not included.
pub async fn recent_is_claimed_once(h: &dyn Harness) {
    let store = h.open().await;
    let (acc, inbox) = account(&store, "recent").await;
    let recent = |store: DynStore| async move {
        store.mailbox_status(inbox.id).await.expect("status").recent
    };
    assert_eq!(store.claim_recent(inbox.id).await.expect("claim"), None);

    // A new mailbox's first claim gets its messages; the next gets nothing.
    let mut uids = Vec::new();
    for i in 0..3 {
        uids.push(
            append(&store, inbox.id, sample(i, "r"))
                .await
                .expect("append")
                .uid,
        );
    }
    assert_eq!(recent(store.clone()).await, 3);
    assert_eq!(
        store.claim_recent(inbox.id).await.expect("claim"),
        Some(uids[0]..=uids[2])
    );
    assert_eq!(recent(store.clone()).await, 0);
    assert_eq!(store.claim_recent(inbox.id).await.expect("claim"), None);

    // A claim after an append gets exactly the new message.
    let new = append(&store, inbox.id, sample(3, "r"))
        .await
        .expect("append")
        .uid;
    assert_eq!(recent(store.clone()).await, 1);
    assert_eq!(
        store.claim_recent(inbox.id).await.expect("claim"),
        Some(new..=new)
    );

    // Expunged messages are not counted as unclaimed.
    let a = append(&store, inbox.id, sample(4, "r"))
        .await
        .expect("append")
        .uid;
    let b = append(&store, inbox.id, sample(5, "r"))
        .await
        .expect("append")
        .uid;
    store
        .store_flags(inbox.id, &[a], FlagOp::Add, Flags::DELETED, &[], None)
        .await
        .expect("flag");
    store
        .expunge(inbox.id, ExpungeFilter::AllDeleted)
        .await
        .expect("expunge");
    assert_eq!(recent(store.clone()).await, 1);
    let claimed = store
        .claim_recent(inbox.id)
        .await
        .expect("claim")
        .expect("something to claim");
    assert!(claimed.contains(&b) && !claimed.contains(&new));

    // Concurrent claims split the messages: every UID once, none twice.
    const EACH: usize = 20;
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..EACH {
                append(&store, inbox.id, sample(100 + i, "r"))
                    .await
                    .expect("append");
            }
        })
    };
    let mut claimers = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        claimers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..EACH {
                if let Some(r) = store.claim_recent(inbox.id).await.expect("claim") {
                    got.extend(r);
                }
            }
            got
        }));
    }
    writer.await.expect("writer");
    let mut got = Vec::new();
    for c in claimers {
        got.extend(c.await.expect("claimer"));
    }
    if let Some(r) = store.claim_recent(inbox.id).await.expect("claim") {
        got.extend(r);
    }
    got.sort_unstable();
    let expected: Vec<Uid> = all(&store, inbox.id)
        .await
        .iter()
        .map(|m| m.uid)
        .filter(|u| *u > b)
        .collect();
    assert_eq!(got, expected, "each new UID claimed exactly once");
    assert_eq!(recent(store.clone()).await, 0);

    // The mark survives a restart; another mailbox has its own.
    drop(store);
    let store = h.open().await;
    assert_eq!(store.claim_recent(inbox.id).await.expect("claim"), None);
    let other = store
        .mailbox_create(acc.id, "Other", None)
        .await
        .expect("create");
    let o = append(&store, other.id, sample(200, "r"))
        .await
        .expect("append")
        .uid;
    assert_eq!(recent(store.clone()).await, 0);
    assert_eq!(
        store.claim_recent(other.id).await.expect("claim"),
        Some(o..=o)
    );
}

fn ban(source: Option<&str>, account: Option<&str>, created: i64, until: i64) -> NewLoginBan {
    NewLoginBan {
        source: source.map(str::to_string),
        account: account.map(str::to_string),
        failures: 10,
        created,
        until,
    }
}

/// Login bans: added, listed while in force, lifted by source or account (by another process, for
/// the server that made them: it follows the change sequence), purged once over.
pub async fn login_bans_lifecycle(h: &dyn Harness) {
    let store = h.open().await;
    let now = 1_000_000;
    assert!(store.bans_active(now).await.expect("list").is_empty());
    assert!(
        store
            .bans_changed_since(0, 100)
            .await
            .expect("changes")
            .is_empty()
    );
    assert!(matches!(
        store.ban_add(&ban(None, None, now, now + 60)).await,
        Err(StoreError::Invalid(_))
    ));
    let ip = store
        .ban_add(&ban(Some("192.0.2.7"), None, now, now + 3600))
        .await
        .expect("add ip");
    let net = store
        .ban_add(&ban(Some("2001:db8:1:2::/64"), None, now, now + 60))
        .await
        .expect("add net");
    let acc = store
        .ban_add(&ban(None, Some("bob@example.test"), now, now + 1800))
        .await
        .expect("add account");
    let old = store
        .ban_add(&ban(Some("192.0.2.8"), None, now - 7200, now - 3600))
        .await
        .expect("add ended");
    assert_eq!(ip.source.as_deref(), Some("192.0.2.7"));
    assert_eq!(
        (ip.account.clone(), ip.failures, ip.lifted),
        (None, 10, None)
    );
    // Every change takes a new, higher position.
    assert!(ip.seq < net.seq && net.seq < acc.seq && acc.seq < old.seq);
    assert_eq!(
        store.bans_changed_since(0, 100).await.expect("changes"),
        vec![ip.clone(), net.clone(), acc.clone(), old.clone()]
    );
    assert_eq!(
        store.bans_changed_since(net.seq, 1).await.expect("changes"),
        vec![acc.clone()]
    );
    // In force: soonest end first, the ended one left out.
    assert_eq!(
        store.bans_active(now).await.expect("list"),
        vec![net.clone(), acc.clone(), ip.clone()]
    );
    assert_eq!(
        store.bans_active(now + 100).await.expect("later"),
        vec![acc.clone(), ip.clone()]
    );

    // Lifting by source or by account; nothing in force is NotFound.
    let lifted = store.ban_lift("192.0.2.7", now + 10).await.expect("lift");
    assert_eq!(lifted.len(), 1);
    assert_eq!(lifted[0].id, ip.id);
    assert_eq!(lifted[0].lifted, Some(now + 10));
    assert!(lifted[0].seq > old.seq);
    assert!(matches!(
        store.ban_lift("192.0.2.7", now + 11).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.ban_lift("192.0.2.8", now).await,
        Err(StoreError::NotFound(_))
    ));
    // A lift is seen by whoever follows the sequence (another process, after a restart).
    drop(store);
    let store = h.open().await;
    let changes = store
        .bans_changed_since(old.seq, 100)
        .await
        .expect("changes");
    assert_eq!(changes, lifted);
    let by_account = store
        .ban_lift("bob@example.test", now + 20)
        .await
        .expect("lift account");
    assert_eq!(by_account.len(), 1);
    assert_eq!(by_account[0].id, acc.id);
    assert_eq!(
        store.bans_active(now + 20).await.expect("list"),
        vec![net.clone()]
    );
    // A new ban of a lifted source is a new row in force.
    let again = store
        .ban_add(&ban(Some("192.0.2.7"), None, now + 30, now + 90))
        .await
        .expect("add again");
    assert_ne!(again.id, ip.id);
    assert!(again.seq > by_account[0].seq);

    // Purge forgets what ended (expired or lifted) before the cutoff, nothing in force.
    assert_eq!(store.bans_purge(now + 25).await.expect("purge"), 3);
    let left: Vec<i64> = store
        .bans_changed_since(0, 100)
        .await
        .expect("changes")
        .iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(left, vec![net.id, again.id]);
    // Positions never go back, even after the highest rows were purged.
    assert_eq!(store.bans_purge(now + 1000).await.expect("purge"), 2);
    let next = store
        .ban_add(&ban(Some("192.0.2.9"), None, now, now + 3600))
        .await
        .expect("add");
    assert!(next.seq > again.seq);
}

/// Known sources of an account: recorded at each successful login, the most recent `keep` kept,
/// forgotten with the account.
pub async fn login_sources_are_kept_per_account(h: &dyn Harness) {
    let store = h.open().await;
    assert!(store.login_sources().await.expect("list").is_empty());
    let (acc, _) = account(&store, "src").await;
    let address = acc.address();
    for (i, source) in ["192.0.2.1", "192.0.2.2", "192.0.2.3", "2001:db8::/64"]
        .iter()
        .enumerate()
    {
        store
            .login_source_record(&address, source, 100 + i as i64, 3)
            .await
            .expect("record");
    }
    store
        .login_source_record("other@example.test", "192.0.2.1", 50, 3)
        .await
        .expect("record other");
    // The oldest of four went; a repeated login refreshes its source and never moves it back.
    store
        .login_source_record(&address, "192.0.2.2", 200, 3)
        .await
        .expect("refresh");
    store
        .login_source_record(&address, "192.0.2.2", 10, 3)
        .await
        .expect("stale");
    let got: Vec<(String, String, i64)> = store
        .login_sources()
        .await
        .expect("list")
        .into_iter()
        .map(|r| (r.account, r.source, r.last_success))
        .collect();
    let row = |a: &str, s: &str, t: i64| (a.to_string(), s.to_string(), t);
    let mut expected = vec![
        row(&address, "192.0.2.2", 200),
        row(&address, "2001:db8::/64", 103),
        row(&address, "192.0.2.3", 102),
        row("other@example.test", "192.0.2.1", 50),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0).then(b.2.cmp(&a.2)));
    assert_eq!(got, expected);

    // Kept across a restart, and forgotten with the account.
    drop(store);
    let store = h.open().await;
    assert_eq!(store.login_sources().await.expect("list").len(), 4);
    store.account_delete(acc.id).await.expect("delete");
    assert_eq!(
        store.login_sources().await.expect("list"),
        vec![LoginSourceRecord {
            account: "other@example.test".into(),
            source: "192.0.2.1".into(),
            last_success: 50,
        }]
    );
}

/// Send-as grants: added once, listed sorted and lowercase, removed, gone with the account.
pub async fn send_as_grants_lifecycle(h: &dyn Harness) {
    let store = h.open().await;
    let (acc, _) = account(&store, "sendas").await;
    store
        .send_as_add(acc.id, "Shared@Example.test")
        .await
        .expect("grant");
    store
        .send_as_add(acc.id, "@other.test")
        .await
        .expect("grant domain");
    assert!(matches!(
        store.send_as_add(acc.id, "shared@example.test").await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store.send_as_add(999_999, "x@example.test").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.send_as_list(acc.id).await.expect("list"),
        vec!["@other.test".to_string(), "shared@example.test".to_string()]
    );
    store
        .send_as_remove(acc.id, "@OTHER.test")
        .await
        .expect("remove");
    assert!(matches!(
        store.send_as_remove(acc.id, "@other.test").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.send_as_list(acc.id).await.expect("list"),
        vec!["shared@example.test".to_string()]
    );
    store.account_delete(acc.id).await.expect("delete");
    assert!(store.send_as_list(acc.id).await.expect("list").is_empty());
    assert_healthy(&store).await;
}

/// Under `QuotaPolicy::PerAccount` an account over quota loses only its own append, which the
/// result names; the others commit, and nothing of the refused one is counted or kept.
pub async fn batch_per_account_quota_answers_each(h: &dyn Harness) {
    let store = h.open().await;
    let (full, full_inbox) = account(&store, "perquota-full").await;
    let (_, ok_inbox) = account(&store, "perquota-ok").await;
    store
        .account_set_quota(full.id, Some(10), None)
        .await
        .expect("set quota");
    let raw = sample(1, "per-account");
    let req = |mailbox_id| AppendRequest {
        mailbox_id,
        raw: raw.clone().into(),
        flags: Flags::empty(),
        keywords: vec![],
        internal_date: 0,
    };
    let batch = WriteBatch {
        appends: vec![req(ok_inbox.id), req(full_inbox.id)],
        enqueue: vec![],
        quota: QuotaPolicy::PerAccount,
    };
    let res = store.commit(batch).await.expect("commits the rest");
    assert_eq!(res.over_quota, vec![1]);
    assert_eq!(res.appended.len(), 1);
    assert_eq!(res.appended[0].mailbox_id, ok_inbox.id);
    assert_eq!(all(&store, ok_inbox.id).await.len(), 1);
    assert!(all(&store, full_inbox.id).await.is_empty());
    assert_eq!(
        store.quota_usage(full.id).await.expect("usage"),
        QuotaUsage {
            bytes: 0,
            messages: 0
        }
    );
    // Everyone over quota: nothing is stored, and the batch still succeeds with its refusals.
    let res = store
        .commit(WriteBatch {
            appends: vec![req(full_inbox.id)],
            enqueue: vec![],
            quota: QuotaPolicy::PerAccount,
        })
        .await
        .expect("commit");
    assert_eq!(res.over_quota, vec![0]);
    assert!(res.appended.is_empty());
    assert_healthy(&store).await;
}

/// A message given as head + body with its analysis made upstream: the stored bytes are the two
/// joined, the cached analysis is that of the joined bytes, and full-text search finds its text.
pub async fn given_analysis_is_cached_and_indexed(h: &dyn Harness) {
    let store = h.open().await;
    let (_, inbox) = account(&store, "prepared").await;
    let limits = store.mime_limits();
    for size in [100usize, h.large_blob_size()] {
        let body = format!(
            "From: a@example.test\r\nSubject: prepared {size}\r\n\r\nquixotic-{size} {}\r\n",
            "x".repeat(size)
        );
        let prepared = message::Prepared::new(body.into_bytes().into(), &limits);
        let head: Arc<[u8]> =
            Arc::from(&b"Received: by mx.example.test; Sat, 28 Nov 2026 10:00:00 +0000\r\n"[..]);
        let analysis = Arc::new(prepared.analysis_with_prefix(&head));
        let raw = RawMessage::new(head.clone(), prepared.raw().clone()).with_analysis(analysis);
        let done = store
            .commit(WriteBatch {
                appends: vec![AppendRequest {
                    mailbox_id: inbox.id,
                    raw,
                    flags: Flags::empty(),
                    keywords: vec![],
                    internal_date: 0,
                }],
                ..WriteBatch::default()
            })
            .await
            .expect("append");
        let blob = done.appended[0].blob;
        let joined = [&head[..], &prepared.raw()[..]].concat();
        assert_eq!(blob, BlobId::of(&joined));
        assert_eq!(store.blob_read(blob, None).await.expect("read"), joined);
        let mut expected = message::analyze(&joined, &limits);
        expected.search = message::SearchText::default();
        assert_eq!(*store.analysis(blob).await.expect("analysis"), expected);
        let hits = store
            .search_text(inbox.id, TextField::Body, &format!("quixotic-{size}"))
            .await
            .expect("search");
        if let Some(hits) = hits {
            assert_eq!(hits, vec![done.appended[0].uid]);
        }
    }
    assert_healthy(&store).await;
}
fn spam_sample(seed: u8, tokens: &[u64]) -> SpamSample {
    SpamSample {
        digest: [seed; 32],
        tokens: tokens.to_vec(),
        format: 1,
    }
}

async fn spam_one(store: &DynStore, model: SpamModel, tokens: &[u64]) -> SpamCounts {
    let mut v = store.spam_counts(&[model], tokens).await.expect("counts");
    assert_eq!(v.len(), 1);
    let mut c = v.remove(0);
    c.tokens.sort_unstable();
    c
}

/// The classifier's models: learning is counted once per message and model, relearning as the
/// other class moves the counts, unlearning takes them back to nothing, the global and account
/// models stay apart, a model refuses tokens of another format, and deleting an account
/// deletes its model. Token hashes use the whole u64 range.
pub async fn spam_models_learn_unlearn_and_stay_apart(h: &dyn Harness) {
    use SpamLearnOutcome::*;
    let store = h.open().await;
    let (acc, _) = account(&store, "spammy").await;
    let both = [SpamModel::Global, SpamModel::Account(acc.id)];
    let big = u64::MAX - 1;
    let empty = spam_one(&store, SpamModel::Global, &[1, 2]).await;
    assert_eq!(empty.totals, SpamTotals::default());
    assert!(empty.tokens.is_empty());

    let spam = spam_sample(1, &[1, 2, big]);
    let ham = spam_sample(2, &[2, 3]);
    assert_eq!(
        store
            .spam_learn(&both, &spam, SpamClass::Spam)
            .await
            .expect("learn"),
        vec![Learned, Learned]
    );
    assert_eq!(
        store
            .spam_learn(&both, &spam, SpamClass::Spam)
            .await
            .expect("again"),
        vec![AlreadyLearned, AlreadyLearned]
    );
    assert_eq!(
        store
            .spam_learn(&[SpamModel::Global], &ham, SpamClass::Ham)
            .await
            .expect("ham"),
        vec![Learned]
    );
    let g = spam_one(&store, SpamModel::Global, &[1, 2, 3, 4, big]).await;
    assert_eq!(
        g.totals,
        SpamTotals {
            ham: 1,
            spam: 1,
            format: 1
        }
    );
    assert_eq!(g.tokens, vec![(1, 0, 1), (2, 1, 1), (3, 1, 0), (big, 0, 1)]);
    // The account model only learned the spam.
    let a = spam_one(&store, SpamModel::Account(acc.id), &[1, 2, 3]).await;
    assert_eq!(
        a.totals,
        SpamTotals {
            ham: 0,
            spam: 1,
            format: 1
        }
    );
    assert_eq!(a.tokens, vec![(1, 0, 1), (2, 0, 1)]);

    // Moved out of Junk: the spam is relearned as ham.
    assert_eq!(
        store
            .spam_learn(&both, &spam, SpamClass::Ham)
            .await
            .expect("relearn"),
        vec![Relearned, Relearned]
    );
    let g = spam_one(&store, SpamModel::Global, &[1, 2, 3, big]).await;
    assert_eq!(
        g.totals,
        SpamTotals {
            ham: 2,
            spam: 0,
            format: 1
        }
    );
    assert_eq!(g.tokens, vec![(1, 1, 0), (2, 2, 0), (3, 1, 0), (big, 1, 0)]);

    // Unlearning takes everything back: no row is left with zero counts.
    assert_eq!(
        store.spam_unlearn(&both, &spam).await.expect("unlearn"),
        vec![Unlearned, Unlearned]
    );
    assert_eq!(
        store
            .spam_unlearn(&both, &spam)
            .await
            .expect("unlearn again"),
        vec![NotLearned, NotLearned]
    );
    let g = spam_one(&store, SpamModel::Global, &[1, 2, 3, big]).await;
    assert_eq!(g.totals.ham, 1);
    assert_eq!(g.tokens, vec![(2, 1, 0), (3, 1, 0)]);
    let a = spam_one(&store, SpamModel::Account(acc.id), &[1, 2, 3, big]).await;
    assert_eq!((a.totals.ham, a.totals.spam), (0, 0));
    assert!(a.tokens.is_empty());

    // Tokens of another feature format are refused, and nothing changes.
    let other = SpamSample {
        format: 2,
        ..spam_sample(3, &[9])
    };
    let err = store
        .spam_learn(&both, &other, SpamClass::Spam)
        .await
        .expect_err("other format");
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert!(
        spam_one(&store, SpamModel::Global, &[9])
            .await
            .tokens
            .is_empty()
    );

    // The account's model goes with the account.
    store
        .spam_learn(&both, &spam, SpamClass::Spam)
        .await
        .expect("learn");
    store.account_delete(acc.id).await.expect("delete");
    let a = spam_one(&store, SpamModel::Account(acc.id), &[1, 2]).await;
    assert_eq!(a.totals, SpamTotals::default());
    assert!(a.tokens.is_empty());
    assert_eq!(
        spam_one(&store, SpamModel::Global, &[1]).await.tokens,
        vec![(1, 0, 1)]
    );
}

/// Greylisting: first sight deferred, an early retry deferred, a retry after the delay passes,
/// the network is whitelisted after enough passes, and everything expires (RFC 6647).
pub async fn greylist_defers_then_passes_and_whitelists(h: &dyn Harness) {
    let store = h.open().await;
    let p = GreylistPolicy {
        delay: 300,
        retry_window: 3600,
        pass_ttl: 86400,
        whitelist_after: 2,
        whitelist_ttl: 7 * 86400,
    };
    let net = "192.0.2.0/24";
    let check = |s: &'static str, r: &'static str, now: i64| {
        let store = store.clone();
        async move {
            store
                .greylist_check(net, s, r, now, &p)
                .await
                .expect("greylist check")
        }
    };
    let t = 1_000_000;
    assert_eq!(
        check("a@far.test", "u@here.test", t).await,
        GreylistDecision::Deferred { retry_in: 300 }
    );
    assert_eq!(
        check("a@far.test", "u@here.test", t + 100).await,
        GreylistDecision::Deferred { retry_in: 200 },
        "too early"
    );
    assert_eq!(
        check("a@far.test", "u@here.test", t + 300).await,
        GreylistDecision::Passed
    );
    assert_eq!(
        check("a@far.test", "u@here.test", t + 400).await,
        GreylistDecision::Passed,
        "remembered"
    );
    // One pass is not enough to whitelist the network here: a new triplet is deferred.
    assert_eq!(
        check("b@far.test", "u@here.test", t + 400).await,
        GreylistDecision::Deferred { retry_in: 300 }
    );
    assert_eq!(
        check("b@far.test", "u@here.test", t + 800).await,
        GreylistDecision::Passed
    );
    // Two passes: the whole network is whitelisted, across a restart.
    drop(store);
    let store = h.open().await;
    assert_eq!(
        store
            .greylist_check(net, "c@far.test", "v@here.test", t + 900, &p)
            .await
            .expect("check"),
        GreylistDecision::NetworkWhitelisted
    );
    // Another network is not.
    assert!(matches!(
        store
            .greylist_check("198.51.100.0/24", "c@far.test", "v@here.test", t + 900, &p)
            .await
            .expect("check"),
        GreylistDecision::Deferred { .. }
    ));
    let stats = store.greylist_stats().await.expect("stats");
    assert_eq!((stats.pending, stats.passed, stats.networks), (1, 2, 1));
    // A pending triplet never retried is forgotten after the retry window; a retry that comes
    // too late starts again.
    assert_eq!(
        store
            .greylist_check(
                "198.51.100.0/24",
                "c@far.test",
                "v@here.test",
                t + 900 + 3601,
                &p
            )
            .await
            .expect("check"),
        GreylistDecision::Deferred { retry_in: 300 }
    );
    // Purging long after: everything went.
    let later = t + 30 * 86400;
    assert!(store.greylist_purge(later, &p).await.expect("purge") >= 4);
    assert_eq!(
        store.greylist_stats().await.expect("stats"),
        GreylistStats::default()
    );
    assert!(matches!(
        store
            .greylist_check(net, "a@far.test", "u@here.test", later, &p)
            .await
            .expect("check"),
        GreylistDecision::Deferred { .. }
    ));
}

/// Quarantine: held messages keep their bytes and destinations, are listed per account, deleted
/// once, and expire; allow and block lists per domain and account, removed with their owner.
pub async fn quarantine_and_sender_lists_lifecycle(h: &dyn Harness) {
    let store = h.open().await;
    let (acc, _) = account(&store, "held").await;
    let q = NewQuarantine {
        smtp_id: "abc".into(),
        message_id: Some("<m@x.test>".into()),
        sender: "s@x.test".into(),
        recipients: vec!["held@example.com".into(), "fwd@example.com".into()],
        accounts: vec![acc.id],
        remote: vec![("srs@example.com".into(), "out@else.test".into())],
        subject: "hi".into(),
        score: 12.5,
        reasons: "BAYES_SPAM(10.0)".into(),
        raw: b"Subject: hi\r\n\r\nbody\r\n".to_vec(),
        created: 100,
        expires: 200,
    };
    let id = store.quarantine_add(&q).await.expect("add");
    let id2 = store
        .quarantine_add(&NewQuarantine {
            accounts: vec![],
            expires: 300,
            ..q.clone()
        })
        .await
        .expect("add");
    let (rec, raw) = store.quarantine_get(id).await.expect("get").expect("found");
    assert_eq!(raw, q.raw);
    assert_eq!(rec.size, q.raw.len() as u64);
    assert_eq!(rec.accounts, vec![acc.id]);
    assert_eq!(rec.remote, q.remote);
    assert_eq!(rec.recipients, q.recipients);
    assert_eq!(rec.message_id.as_deref(), Some("<m@x.test>"));
    assert_eq!(store.quarantine_list(None).await.expect("list").len(), 2);
    let mine = store.quarantine_list(Some(acc.id)).await.expect("list");
    assert_eq!(mine.iter().map(|r| r.id).collect::<Vec<_>>(), vec![id]);
    assert_eq!(store.quarantine_expire(199).await.expect("expire"), 0);
    assert_eq!(store.quarantine_expire(200).await.expect("expire"), 1);
    assert!(store.quarantine_get(id).await.expect("get").is_none());
    store.quarantine_delete(id2).await.expect("delete");
    assert!(matches!(
        store.quarantine_delete(id2).await,
        Err(StoreError::NotFound(_))
    ));

    let dom = ListScope::Domain("example.test".into());
    let mine = ListScope::Account(acc.id);
    store
        .list_add(&dom, ListKind::Block, "@Spam.test")
        .await
        .expect("add");
    store
        .list_add(&mine, ListKind::Allow, "friend@spam.test")
        .await
        .expect("add");
    store
        .list_add(&mine, ListKind::Block, "192.0.2.0/24")
        .await
        .expect("add");
    assert!(matches!(
        store.list_add(&dom, ListKind::Block, "@spam.test").await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert!(matches!(
        store
            .list_add(
                &ListScope::Account(acc.id + 1000),
                ListKind::Allow,
                "a@b.test"
            )
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .list_add(
                &ListScope::Domain("nowhere.test".into()),
                ListKind::Allow,
                "a@b.test"
            )
            .await,
        Err(StoreError::NotFound(_))
    ));
    let all = store
        .list_entries(&[dom.clone(), mine.clone()])
        .await
        .expect("entries");
    let got: Vec<_> = all
        .iter()
        .map(|e| (e.scope.clone(), e.kind, e.pattern.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (dom.clone(), ListKind::Block, "@spam.test"),
            (mine.clone(), ListKind::Allow, "friend@spam.test"),
            (mine.clone(), ListKind::Block, "192.0.2.0/24"),
        ]
    );
    store
        .list_remove(&mine, ListKind::Block, "192.0.2.0/24")
        .await
        .expect("remove");
    assert!(matches!(
        store
            .list_remove(&mine, ListKind::Block, "192.0.2.0/24")
            .await,
        Err(StoreError::NotFound(_))
    ));
    store.account_delete(acc.id).await.expect("delete account");
    let left = store.list_entries(&[dom, mine]).await.expect("entries");
    assert_eq!(left.len(), 1, "the account's lists went with it");
}

/// Sieve scripts: put, replace, one active per owner, delete/rename rules, quotas on the count,
/// owners apart; vacation/duplicate state answers once until it expires; the redirect cap.
pub async fn sieve_scripts_lifecycle(h: &dyn Harness) {
    let store = h.open().await;
    let (acc, _) = account(&store, "sifter").await;
    let me = SieveOwner::Account(acc.id);
    let dom = SieveOwner::Domain("example.test".into());
    let put = |owner: &SieveOwner, name: &str, text: &str| NewSieveScript {
        owner: owner.clone(),
        name: name.into(),
        content: text.as_bytes().to_vec(),
        compiled: Some(b"c".to_vec()),
        compiled_format: "f1".into(),
        now: 100,
    };
    store
        .sieve_put(&put(&me, "a", "keep;"), Some(2))
        .await
        .expect("put a");
    store
        .sieve_put(&put(&me, "b", "discard;"), Some(2))
        .await
        .expect("put b");
    assert!(matches!(
        store.sieve_put(&put(&me, "c", "keep;"), Some(2)).await,
        Err(StoreError::Invalid(_))
    ));
    // Replacing an existing name is not a new script.
    store
        .sieve_put(&put(&me, "b", "stop;"), Some(2))
        .await
        .expect("replace b");
    store
        .sieve_put(&put(&dom, "a", "fileinto \"x\";"), None)
        .await
        .expect("put dom");
    assert!(store.sieve_active(&me).await.expect("active").is_none());
    store
        .sieve_activate(&me, Some("b"))
        .await
        .expect("activate");
    let active = store.sieve_active(&me).await.expect("active").expect("one");
    assert_eq!(
        (active.name.as_str(), active.content.as_slice()),
        ("b", &b"stop;"[..])
    );
    assert_eq!(active.compiled.as_deref(), Some(&b"c"[..]));
    assert!(
        store
            .sieve_active(&dom)
            .await
            .expect("dom active")
            .is_none()
    );
    store.sieve_activate(&me, Some("a")).await.expect("switch");
    let list = store.sieve_list(&me).await.expect("list");
    assert_eq!(
        list.iter()
            .map(|s| (s.name.as_str(), s.size, s.active))
            .collect::<Vec<_>>(),
        vec![("a", 5, true), ("b", 5, false)]
    );
    assert!(matches!(
        store.sieve_activate(&me, Some("zz")).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.sieve_delete(&me, "a").await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.sieve_rename(&me, "b", "a").await,
        Err(StoreError::AlreadyExists(_))
    ));
    store
        .sieve_rename(&me, "a", "main")
        .await
        .expect("rename active");
    assert_eq!(
        store.sieve_active(&me).await.expect("a").expect("a").name,
        "main"
    );
    store.sieve_delete(&me, "b").await.expect("delete");
    assert!(matches!(
        store.sieve_delete(&me, "b").await,
        Err(StoreError::NotFound(_))
    ));
    store.sieve_activate(&me, None).await.expect("deactivate");
    assert!(store.sieve_active(&me).await.expect("none").is_none());
    assert_eq!(
        store
            .sieve_get(&dom, "a")
            .await
            .expect("get")
            .expect("dom a")
            .content,
        b"fileinto \"x\";"
    );

    assert!(
        !store
            .sieve_seen(acc.id, "v:x@y", 10, 20)
            .await
            .expect("first")
    );
    assert!(
        store
            .sieve_seen(acc.id, "v:x@y", 15, 30)
            .await
            .expect("again")
    );
    assert!(
        !store
            .sieve_seen(acc.id, "v:x@y", 20, 30)
            .await
            .expect("expired")
    );
    assert!(
        !store
            .sieve_seen(acc.id, "v:z@y", 20, 30)
            .await
            .expect("other key")
    );

    assert_eq!(
        store
            .sieve_redirects_take(acc.id, 7, 2, 3)
            .await
            .expect("take"),
        2
    );
    assert_eq!(
        store
            .sieve_redirects_take(acc.id, 7, 2, 3)
            .await
            .expect("take"),
        1
    );
    assert_eq!(
        store
            .sieve_redirects_take(acc.id, 7, 1, 3)
            .await
            .expect("take"),
        0
    );
    assert_eq!(
        store
            .sieve_redirects_take(acc.id, 8, 1, 3)
            .await
            .expect("next day"),
        1
    );

    store.account_delete(acc.id).await.expect("delete account");
    assert!(store.sieve_list(&me).await.expect("list").is_empty());
    assert_eq!(store.sieve_list(&dom).await.expect("dom list").len(), 1);
}
