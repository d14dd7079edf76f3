//! `\Recent` and the RECENT response (RFC 3501 §2.3.2, §6.3.1, §7.3.2, §6.4.4, §6.3.10), and
//! their absence for IMAP4rev2 clients (RFC 9051 Appendix E).

use super::{fixture, run};

/// Delivers one message to INBOX from a session of its own (not selected anywhere).
async fn deliver(f: &super::Fixture, subject: &str) {
    let mut d = f.logged_in().await;
    let m = format!("Subject: {subject}\r\n\r\nbody\r\n");
    let r = run(
        &mut d,
        &format!("d APPEND INBOX {{{}+}}\r\n{m}\r\n", m.len()),
    )
    .await;
    assert!(r.contains("d OK"), "{r}");
}

#[tokio::test]
async fn first_select_takes_recent_and_the_second_gets_none() {
    let f = fixture().await;
    deliver(&f, "one").await;
    let mut a = f.logged_in().await;
    let mut b = f.logged_in().await;
    let r = run(&mut a, "a1 SELECT INBOX\r\n").await;
    assert!(r.contains("* 1 EXISTS\r\n* 1 RECENT\r\n"), "{r}");
    let r = run(&mut a, "a2 FETCH 1 FLAGS\r\n").await;
    assert!(r.contains("* 1 FETCH (FLAGS (\\Recent))"), "{r}");
    let r = run(&mut b, "b1 SELECT INBOX\r\n").await;
    assert!(r.contains("* 1 EXISTS\r\n* 0 RECENT\r\n"), "{r}");
    let r = run(&mut b, "b2 FETCH 1 FLAGS\r\n").await;
    assert!(r.contains("* 1 FETCH (FLAGS ())"), "{r}");
    // \Recent stays with the first session; STORE cannot set or remove it.
    let r = run(&mut a, "a3 STORE 1 +FLAGS (\\Seen)\r\n").await;
    assert!(
        r.contains("* 1 FETCH (FLAGS (\\Recent \\Seen) UID 1)"),
        "{r}"
    );
    let r = run(&mut a, "a4 STORE 1 -FLAGS (\\Recent)\r\n").await;
    assert!(!r.contains("a4 OK"), "{r}");
    let r = run(&mut b, "b3 STORE 1 +FLAGS (\\Recent)\r\n").await;
    assert!(!r.contains("b3 OK"), "{r}");
}

#[tokio::test]
async fn examine_claims_nothing() {
    let f = fixture().await;
    deliver(&f, "one").await;
    let mut e = f.logged_in().await;
    // RFC 3501 §6.3.2: EXAMINE must not make messages lose \Recent; not yet claimed, the message
    // counts as recent in the read-only session too (§2.3.2).
    let r = run(&mut e, "e1 EXAMINE INBOX\r\n").await;
    assert!(
        r.contains("* 1 RECENT\r\n") && r.contains("e1 OK [READ-ONLY]"),
        "{r}"
    );
    let r = run(&mut e, "e2 STATUS INBOX (RECENT)\r\n").await;
    assert!(r.contains("(RECENT 1)"), "{r}");
    let mut s = f.logged_in().await;
    let r = run(&mut s, "s1 SELECT INBOX\r\n").await;
    assert!(r.contains("* 1 RECENT\r\n"), "{r}");
    let r = run(&mut s, "s2 STATUS INBOX (RECENT)\r\n").await;
    assert!(r.contains("(RECENT 0)"), "{r}");
    // Claimed now: a new EXAMINE sees nothing recent.
    let mut e2 = f.logged_in().await;
    let r = run(&mut e2, "x EXAMINE INBOX\r\n").await;
    assert!(r.contains("* 0 RECENT\r\n"), "{r}");
}

#[tokio::test]
async fn delivery_while_selected_is_recent_in_that_session() {
    let f = fixture().await;
    deliver(&f, "old").await;
    let mut a = f.logged_in().await;
    let r = run(&mut a, "a1 SELECT INBOX\r\n").await;
    assert!(r.contains("* 1 RECENT\r\n"), "{r}");
    deliver(&f, "new").await;
    let r = run(&mut a, "a2 NOOP\r\n").await;
    assert!(r.contains("* 2 EXISTS\r\n* 2 RECENT\r\n"), "{r}");
    let r = run(&mut a, "a3 FETCH 2 FLAGS\r\n").await;
    assert!(r.contains("* 2 FETCH (FLAGS (\\Recent))"), "{r}");
    // Another session selecting now gets nothing recent.
    let mut b = f.logged_in().await;
    let r = run(&mut b, "b1 SELECT INBOX\r\n").await;
    assert!(r.contains("* 0 RECENT\r\n"), "{r}");
    // A delivery seen by two selected sessions is recent in the first to announce it only.
    deliver(&f, "third").await;
    let r = run(&mut b, "b2 NOOP\r\n").await;
    assert!(r.contains("* 3 EXISTS\r\n* 1 RECENT\r\n"), "{r}");
    let r = run(&mut a, "a4 NOOP\r\n").await;
    assert!(r.contains("* 3 EXISTS\r\n* 2 RECENT\r\n"), "{r}");
}

#[tokio::test]
async fn search_recent_new_old_and_status_recent() {
    let f = fixture().await;
    deliver(&f, "one").await;
    deliver(&f, "two").await;
    let mut a = f.logged_in().await;
    let r = run(&mut a, "a0 STATUS INBOX (MESSAGES RECENT)\r\n").await;
    assert!(r.contains("(MESSAGES 2 RECENT 2)"), "{r}");
    run(&mut a, "a1 SELECT INBOX\r\n").await;
    let r = run(&mut a, "a2 STORE 1 +FLAGS.SILENT (\\Seen)\r\n").await;
    assert!(r.contains("a2 OK"), "{r}");
    deliver(&f, "three").await;
    let mut b = f.logged_in().await;
    let r = run(&mut b, "b1 STATUS INBOX (RECENT)\r\n").await;
    assert!(r.contains("(RECENT 1)"), "{r}");
    // a announces message 3 and claims it.
    let r = run(&mut a, "a3 NOOP\r\n").await;
    assert!(r.contains("* 3 RECENT\r\n"), "{r}");
    let r = run(&mut b, "b2 STATUS INBOX (RECENT)\r\n").await;
    assert!(r.contains("(RECENT 0)"), "{r}");
    let r = run(&mut a, "a4 SEARCH RECENT\r\n").await;
    assert!(r.contains("* SEARCH 1 2 3\r\n"), "{r}");
    let r = run(&mut a, "a5 SEARCH NEW\r\n").await;
    assert!(r.contains("* SEARCH 2 3\r\n"), "{r}");
    let r = run(&mut a, "a6 SEARCH OLD\r\n").await;
    assert!(r.contains("* SEARCH\r\n"), "{r}");
    run(&mut b, "b3 SELECT INBOX\r\n").await;
    let r = run(&mut b, "b4 SEARCH OLD\r\n").await;
    assert!(r.contains("* SEARCH 1 2 3\r\n"), "{r}");
    let r = run(&mut b, "b5 SEARCH RECENT\r\n").await;
    assert!(r.contains("* SEARCH\r\n"), "{r}");
}

#[tokio::test]
async fn imap4rev2_session_gets_no_recent() {
    let f = fixture().await;
    deliver(&f, "one").await;
    let mut a = f.logged_in().await;
    let r = run(&mut a, "a0 ENABLE IMAP4rev2\r\n").await;
    assert!(r.contains("* ENABLED IMAP4rev2"), "{r}");
    let r = run(&mut a, "a1 SELECT INBOX\r\n").await;
    assert!(!r.contains("RECENT"), "{r}");
    let r = run(&mut a, "a2 FETCH 1 FLAGS\r\n").await;
    assert!(r.contains("FLAGS ()") && !r.contains("\\Recent"), "{r}");
    deliver(&f, "two").await;
    let r = run(&mut a, "a3 NOOP\r\n").await;
    assert!(r.contains("* 2 EXISTS\r\n") && !r.contains("RECENT"), "{r}");
    let r = run(&mut a, "a4 SEARCH RECENT\r\n").await;
    assert!(
        r.contains("a4 OK") && !r.contains(" 1") && !r.contains(" 2"),
        "{r}"
    );
    // The IMAP4rev2 session took nothing: an IMAP4rev1 session still gets both.
    let mut b = f.logged_in().await;
    let r = run(&mut b, "b1 SELECT INBOX\r\n").await;
    assert!(r.contains("* 2 RECENT\r\n"), "{r}");
}
