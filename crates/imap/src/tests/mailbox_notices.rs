//! What a session sees when another session deletes or renames its selected mailbox
//! (RFC 2180 §3.3 and §3.4), and STATUS DELETED-STORAGE (RFC 9208 §4.1.4).

use std::time::Duration;

use super::{Fixture, fixture, run};
use crate::backend::MailBackend;
use crate::session::{Event, Session};

const BYE: &str = "* BYE Selected mailbox was deleted, have to disconnect\r\n";

async fn append(s: &mut Session<MailBackend>, mailbox: &str, m: &str) {
    let r = run(
        s,
        &format!("ap APPEND {mailbox} {{{}+}}\r\n{m}\r\n", m.len()),
    )
    .await;
    assert!(r.contains("ap OK"), "{r}");
}

/// Two sessions; `a` has `Work` (one message) selected.
async fn two_sessions(f: &Fixture) -> (Session<MailBackend>, Session<MailBackend>) {
    let mut a = f.logged_in().await;
    let b = f.logged_in().await;
    let r = run(&mut a, "c CREATE Work\r\n").await;
    assert!(r.starts_with("c OK"), "{r}");
    append(&mut a, "Work", "Subject: one\r\n\r\nfirst\r\n").await;
    let r = run(&mut a, "s SELECT Work\r\n").await;
    assert!(r.contains("* 1 EXISTS") && r.contains("s OK"), "{r}");
    (a, b)
}

#[tokio::test]
async fn deleted_by_another_session_ends_with_bye_at_the_next_command() {
    let f = fixture().await;
    let (mut a, mut b) = two_sessions(&f).await;
    let r = run(&mut b, "d DELETE Work\r\n").await;
    assert_eq!(r, "d OK DELETE completed\r\n");
    // The command is not run: BYE instead of its answer, then the connection ends.
    let out = a.feed(b"f FETCH 1 (UID)\r\n").await;
    assert_eq!(String::from_utf8_lossy(&out.bytes), BYE);
    assert_eq!(out.event, Some(Event::Close));
    assert!(a.feed(b"g NOOP\r\n").await.bytes.is_empty());
}

#[tokio::test]
async fn deleted_during_idle_ends_with_bye_at_once() {
    let f = fixture().await;
    let (mut a, mut b) = two_sessions(&f).await;
    let r = run(&mut a, "i IDLE\r\n").await;
    assert_eq!(r, "+ idling\r\n");
    run(&mut b, "d DELETE Work\r\n").await;
    tokio::time::timeout(Duration::from_secs(5), a.wait_change())
        .await
        .expect("IDLE woken by the deletion");
    let out = a.idle_updates().await;
    assert_eq!(String::from_utf8_lossy(&out.bytes), BYE);
    assert_eq!(out.event, Some(Event::Close));
}

#[tokio::test]
async fn other_mailboxes_and_own_delete_are_not_announced() {
    let f = fixture().await;
    let (mut a, mut b) = two_sessions(&f).await;
    run(&mut b, "c CREATE Other\r\n").await;
    run(&mut b, "d DELETE Other\r\n").await;
    let r = run(&mut a, "n NOOP\r\n").await;
    assert_eq!(r, "n OK NOOP completed\r\n");
    // Deleting its own selected mailbox leaves the session unselected, not disconnected.
    let r = run(&mut a, "e DELETE Work\r\n").await;
    assert_eq!(r, "e OK DELETE completed\r\n");
    let out = a.feed(b"f FETCH 1 (UID)\r\n").await;
    assert!(String::from_utf8_lossy(&out.bytes).starts_with("f BAD"));
    assert_eq!(out.event, None);
}

#[tokio::test]
async fn renamed_by_another_session_is_followed() {
    let f = fixture().await;
    let (mut a, mut b) = two_sessions(&f).await;
    let r = run(&mut b, "r RENAME Work Projects\r\n").await;
    assert_eq!(r, "r OK RENAME completed\r\n");
    append(&mut b, "Projects", "Subject: two\r\n\r\nsecond\r\n").await;
    // Same mailbox, same UIDs: the new message is announced, nothing is expunged.
    let r = run(&mut a, "n NOOP\r\n").await;
    assert_eq!(r, "* 2 EXISTS\r\n* 2 RECENT\r\nn OK NOOP completed\r\n");
    let r = run(&mut a, "f FETCH 1:* (UID BODY.PEEK[TEXT])\r\n").await;
    assert!(
        r.contains("* 1 FETCH (UID 1 BODY[TEXT] {7}\r\nfirst\r\n)")
            && r.contains("* 2 FETCH (UID 2 BODY[TEXT] {8}\r\nsecond\r\n)"),
        "{r}"
    );
    let r = run(&mut a, "g STATUS Work (MESSAGES)\r\n").await;
    assert!(r.starts_with("g NO [NONEXISTENT]"), "{r}");
    // Renaming a superior renames the selected mailbox too.
    run(&mut b, "c CREATE Archive\r\n").await;
    let r = run(&mut b, "r RENAME Projects Archive/2024\r\n").await;
    assert!(r.starts_with("r OK"), "{r}");
    run(&mut b, "r RENAME Archive Old\r\n").await;
    let r = run(&mut a, "n NOOP\r\n").await;
    assert_eq!(r, "n OK NOOP completed\r\n");
    // Its own DELETE under the newest name unselects it quietly: the session knows the name.
    let r = run(&mut a, "e DELETE Old/2024\r\n").await;
    assert_eq!(r, "e OK DELETE completed\r\n");
    let out = a.feed(b"f FETCH 1 (UID)\r\n").await;
    assert!(String::from_utf8_lossy(&out.bytes).starts_with("f BAD"));
    assert_eq!(out.event, None);
}

#[tokio::test]
async fn status_deleted_storage() {
    let f = fixture().await;
    let mut a = f.logged_in().await;
    let small = "Subject: s\r\n\r\nsmall\r\n";
    let big = format!("Subject: b\r\n\r\n{}\r\n", "y".repeat(2000));
    append(&mut a, "INBOX", small).await;
    append(&mut a, "INBOX", &big).await;
    let r = run(&mut a, "a STATUS INBOX (DELETED DELETED-STORAGE)\r\n").await;
    assert!(
        r.starts_with("* STATUS \"INBOX\" (DELETED 0 DELETED-STORAGE 0)\r\n"),
        "{r}"
    );
    run(&mut a, "s SELECT INBOX\r\n").await;
    run(&mut a, "t STORE 2 +FLAGS.SILENT (\\Deleted)\r\n").await;
    // In octets, the sum of RFC822.SIZE of the \Deleted messages: what EXPUNGE frees.
    let r = run(&mut a, "b STATUS INBOX (DELETED-STORAGE MESSAGES)\r\n").await;
    assert!(
        r.starts_with(&format!(
            "* STATUS \"INBOX\" (DELETED-STORAGE {} MESSAGES 2)\r\n",
            big.len()
        )),
        "{r}"
    );
    let r = run(
        &mut a,
        "c LIST \"\" INBOX RETURN (STATUS (DELETED-STORAGE))\r\n",
    )
    .await;
    assert!(
        r.contains(&format!(
            "* STATUS \"INBOX\" (DELETED-STORAGE {})",
            big.len()
        )),
        "{r}"
    );
    run(&mut a, "e EXPUNGE\r\n").await;
    let r = run(&mut a, "d STATUS INBOX (DELETED-STORAGE)\r\n").await;
    assert!(
        r.starts_with("* STATUS \"INBOX\" (DELETED-STORAGE 0)\r\n"),
        "{r}"
    );
}
