//! QRESYNC (RFC 7162 §3.2): UID FETCH with CHANGEDSINCE and VANISHED, and VANISHED replacing
//! EXPUNGE for sessions that enabled it.

use super::{append_n, code_value, fixture, run};

#[tokio::test]
async fn uid_fetch_vanished_reports_expunges_since_modseq() {
    let f = fixture().await;
    let mut a = f.logged_in().await;
    append_n(&mut a, 5).await;
    let r = run(&mut a, "e ENABLE QRESYNC\r\n").await;
    assert!(r.starts_with("* ENABLED QRESYNC\r\n"), "{r}");
    let r = run(&mut a, "s SELECT INBOX\r\n").await;
    let since = code_value(&r, "HIGHESTMODSEQ");
    run(&mut a, "t STORE 2:3 +FLAGS.SILENT (\\Deleted)\r\n").await;
    let r = run(&mut a, "x EXPUNGE\r\n").await;
    // §3.2.10: VANISHED, never EXPUNGE, once QRESYNC is on.
    assert!(r.starts_with("* VANISHED 2:3\r\nx OK"), "{r}");
    run(&mut a, "t STORE 2 +FLAGS.SILENT (\\Flagged)\r\n").await; // UID 4
    let r = run(
        &mut a,
        &format!("f UID FETCH 1:* (FLAGS) (CHANGEDSINCE {since} VANISHED)\r\n"),
    )
    .await;
    let lines: Vec<&str> = r.lines().collect();
    assert_eq!(lines[0], "* VANISHED (EARLIER) 2:3", "{r}");
    assert!(
        lines[1].starts_with("* 2 FETCH (UID 4 FLAGS (\\Recent \\Flagged) MODSEQ ("),
        "{r}"
    );
    assert_eq!(lines.len(), 3, "{r}");
    assert!(lines[2].starts_with("f OK"), "{r}");
    // Only UIDs of the set are reported; nothing changed since the current HIGHESTMODSEQ.
    let r = run(
        &mut a,
        &format!("g UID FETCH 3:5 (FLAGS) (CHANGEDSINCE {since} VANISHED)\r\n"),
    )
    .await;
    assert!(r.starts_with("* VANISHED (EARLIER) 3\r\n"), "{r}");
    let r = run(&mut a, "h STATUS INBOX (HIGHESTMODSEQ)\r\n").await;
    let now: u64 = r
        .split("HIGHESTMODSEQ ")
        .nth(1)
        .and_then(|v| v.split(')').next())
        .and_then(|v| v.parse().ok())
        .expect("modseq");
    let r = run(
        &mut a,
        &format!("i UID FETCH 1:* (FLAGS) (CHANGEDSINCE {now} VANISHED)\r\n"),
    )
    .await;
    assert!(r.starts_with("i OK"), "{r}");
}

#[tokio::test]
async fn vanished_modifier_needs_uid_changedsince_and_qresync() {
    let f = fixture().await;
    let mut a = f.logged_in().await;
    append_n(&mut a, 1).await;
    run(&mut a, "s SELECT INBOX\r\n").await;
    let r = run(
        &mut a,
        "a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)\r\n",
    )
    .await;
    assert!(r.starts_with("a BAD"), "{r}");
    run(&mut a, "e ENABLE QRESYNC\r\n").await;
    let r = run(&mut a, "b FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)\r\n").await;
    assert!(r.starts_with("b BAD"), "{r}");
    let r = run(&mut a, "c UID FETCH 1:* (FLAGS) (VANISHED)\r\n").await;
    assert!(r.starts_with("c BAD"), "{r}");
    let r = run(
        &mut a,
        "d UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)\r\n",
    )
    .await;
    assert!(
        r.starts_with("* 1 FETCH (UID 1 FLAGS (\\Recent) MODSEQ ("),
        "{r}"
    );
}

#[tokio::test]
async fn other_sessions_see_vanished_or_expunge_as_enabled() {
    let f = fixture().await;
    let mut a = f.logged_in().await;
    let mut old = f.logged_in().await;
    let mut q = f.logged_in().await;
    append_n(&mut a, 4).await;
    run(&mut q, "e ENABLE QRESYNC\r\n").await;
    for s in [&mut a, &mut old, &mut q] {
        run(s, "s SELECT INBOX\r\n").await;
    }
    run(&mut a, "t STORE 1,3 +FLAGS.SILENT (\\Deleted)\r\n").await;
    let r = run(&mut a, "x EXPUNGE\r\n").await;
    assert!(r.starts_with("* 3 EXPUNGE\r\n* 1 EXPUNGE\r\n"), "{r}");
    // A FETCH by sequence number is no announcement point for either (RFC 9051 §7.5.1).
    let r = run(&mut q, "f FETCH 1 (UID)\r\n").await;
    assert!(!r.contains("VANISHED"), "{r}");
    let r = run(&mut q, "n NOOP\r\n").await;
    assert!(
        r.contains("* VANISHED 1,3\r\n") && !r.contains("EXPUNGE"),
        "{r}"
    );
    let r = run(&mut old, "n NOOP\r\n").await;
    assert!(
        r.contains("* 3 EXPUNGE\r\n* 1 EXPUNGE\r\n") && !r.contains("VANISHED"),
        "{r}"
    );
    // A VANISHED (EARLIER) from UID FETCH leaves alone what the session still has to announce.
    run(&mut a, "t STORE 1 +FLAGS.SILENT (\\Deleted)\r\n").await; // UID 2
    run(&mut a, "x EXPUNGE\r\n").await;
    let r = run(
        &mut q,
        "g UID FETCH 1:* (UID) (CHANGEDSINCE 1 VANISHED)\r\n",
    )
    .await;
    assert!(r.starts_with("* VANISHED (EARLIER) 1,3\r\n"), "{r}");
    assert!(r.contains("* VANISHED 2\r\n"), "{r}");
    assert!(r.contains("FETCH (UID 4"), "{r}");
}

/// RFC 7162 §3.2.6: VANISHED (EARLIER) names expunged UIDs of the requested set only. `*` there
/// is the largest UID the session knows of (UIDNEXT-1 as SELECT reported it), so `n:*` with `n`
/// above it still covers the expunged tail, and nothing above it is ever named.
#[tokio::test]
async fn vanished_earlier_clamps_star_to_the_known_uidnext() {
    let f = fixture().await;
    let mut a = f.logged_in().await;
    let mut b = f.logged_in().await;
    append_n(&mut a, 3).await;
    run(&mut a, "e ENABLE QRESYNC\r\n").await;
    let r = run(&mut a, "s SELECT INBOX\r\n").await;
    assert!(r.contains("[UIDNEXT 4]"), "{r}");
    let since = code_value(&r, "HIGHESTMODSEQ");
    let validity = code_value(&r, "UIDVALIDITY");

    // Another session delivers UID 4 and expunges it before this one hears of it: UID 4 is
    // above the UIDNEXT-1 this session was given and is not reported.
    append_n(&mut b, 1).await;
    run(&mut b, "s SELECT INBOX\r\n").await;
    run(&mut b, "t UID STORE 4 +FLAGS.SILENT (\\Deleted)\r\n").await;
    let r = run(&mut b, "x UID EXPUNGE 4\r\n").await;
    assert!(r.contains("x OK"), "{r}");
    let r = run(
        &mut a,
        &format!("f UID FETCH 1:* (FLAGS) (CHANGEDSINCE {since} VANISHED)\r\n"),
    )
    .await;
    assert!(!r.contains("VANISHED"), "{r}");
    assert!(r.starts_with("f OK"), "{r}");

    // The last message goes: `5:*` is 3:5 here (RFC 9051 §9: a range is unordered), so UID 3
    // is reported though 5 is above every UID in use.
    run(&mut a, "t UID STORE 3 +FLAGS.SILENT (\\Deleted)\r\n").await;
    let r = run(&mut a, "x UID EXPUNGE 3\r\n").await;
    assert!(r.starts_with("* VANISHED 3\r\n"), "{r}");
    let r = run(
        &mut a,
        &format!("g UID FETCH 5:* (FLAGS) (CHANGEDSINCE {since} VANISHED)\r\n"),
    )
    .await;
    assert_eq!(r.lines().next(), Some("* VANISHED (EARLIER) 3"), "{r}");
    assert!(!r.contains("VANISHED (EARLIER) 3:4"), "{r}");

    // SELECT (QRESYNC): the same rule for the known UIDs; UIDNEXT is 5 by now.
    let r = run(
        &mut a,
        &format!("h SELECT INBOX (QRESYNC ({validity} {since} 1:9))\r\n"),
    )
    .await;
    assert!(r.contains("[UIDNEXT 5]"), "{r}");
    assert!(r.contains("* VANISHED (EARLIER) 3:4\r\n"), "{r}");
}
