//! MULTIAPPEND (RFC 3502): several messages in one APPEND, all stored or none, one APPENDUID,
//! each message checked before its continuation.

use super::{USER, code_value, fixture, run};
use crate::backend::MailBackend;
use crate::session::Session;

/// Sends an APPEND of `messages` (options, data) with synchronizing literals, one continuation
/// at a time, as a client does. Returns the answer to the first announcement that got no `+`, or
/// the final answer.
async fn multi_sync(
    s: &mut Session<MailBackend>,
    tag: &str,
    messages: &[(&str, Vec<u8>)],
) -> String {
    let lit = |opts: &str, data: &[u8]| {
        let sep = if opts.is_empty() { "" } else { " " };
        format!("{opts}{sep}{{{}}}\r\n", data.len())
    };
    let (opts, _) = &messages[0];
    let mut next = format!("{tag} APPEND INBOX {}", lit(opts, &messages[0].1)).into_bytes();
    for i in 0..messages.len() {
        let r = String::from_utf8_lossy(&s.feed(&next).await.bytes).into_owned();
        if r != "+ Ready for literal data\r\n" {
            return r;
        }
        next = messages[i].1.clone();
        match messages.get(i + 1) {
            Some((opts, data)) => {
                next.extend_from_slice(format!(" {}", lit(opts, data)).as_bytes())
            }
            None => next.extend_from_slice(b"\r\n"),
        }
    }
    String::from_utf8_lossy(&s.feed(&next).await.bytes).into_owned()
}

fn msg(i: usize, size: usize) -> Vec<u8> {
    let mut m = format!("Subject: m{i}\r\n\r\n").into_bytes();
    m.resize(size.max(m.len() + 2), b'x');
    m.extend_from_slice(b"\r\n");
    m
}

async fn count(s: &mut Session<MailBackend>) -> u64 {
    let r = run(s, "st STATUS INBOX (MESSAGES)\r\n").await;
    let at = r.find("MESSAGES ").expect("MESSAGES") + "MESSAGES ".len();
    r[at..]
        .split(')')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("number")
}

#[tokio::test]
async fn three_messages_one_appenduid() {
    let f = fixture().await;
    let mut s = f.logged_in().await;
    super::append_n(&mut s, 1).await;
    let r = multi_sync(
        &mut s,
        "a",
        &[
            ("(\\Seen)", msg(1, 100)),
            (
                "(\\Flagged $Work) \"05-Jan-2024 10:00:00 +0000\"",
                msg(2, 200),
            ),
            ("\"06-Jan-2024 11:30:00 +0100\"", msg(3, 300)),
        ],
    )
    .await;
    assert!(r.starts_with("a OK [APPENDUID "), "{r}");
    assert!(r.contains(" 2:4] APPEND completed\r\n"), "{r}");
    let uidvalidity: u64 = r["a OK [APPENDUID ".len()..]
        .split(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("uidvalidity");
    let r = run(&mut s, "s SELECT INBOX\r\n").await;
    assert!(r.contains("* 4 EXISTS"), "{r}");
    assert_eq!(code_value(&r, "UIDVALIDITY"), uidvalidity);
    let r = run(
        &mut s,
        "f UID FETCH 2:4 (FLAGS INTERNALDATE RFC822.SIZE)\r\n",
    )
    .await;
    assert!(
        r.contains("* 2 FETCH (UID 2 FLAGS (\\Recent \\Seen) INTERNALDATE ")
            && r.contains("RFC822.SIZE 102)"),
        "{r}"
    );
    assert!(
        r.contains("* 3 FETCH (UID 3 FLAGS (\\Recent \\Flagged $Work) INTERNALDATE \"05-Jan-2024 10:00:00 +0000\" RFC822.SIZE 202)"),
        "{r}"
    );
    // Dates are kept as instants (shown in UTC).
    assert!(
        r.contains(
            "* 4 FETCH (UID 4 FLAGS (\\Recent) INTERNALDATE \"06-Jan-2024 10:30:00 +0000\" RFC822.SIZE 302)"
        ),
        "{r}"
    );
    let r = run(&mut s, "g FETCH 4 (BODY.PEEK[HEADER.FIELDS (Subject)])\r\n").await;
    assert!(r.contains("Subject: m3"), "{r}");
}

#[tokio::test]
async fn non_synchronizing_batch_and_exists_in_the_selected_mailbox() {
    let f = fixture().await;
    let mut s = f.logged_in().await;
    run(&mut s, "s SELECT INBOX\r\n").await;
    let (a, b) = (msg(1, 50), msg(2, 60));
    let mut cmd = format!("a APPEND INBOX {{{}+}}\r\n", a.len()).into_bytes();
    cmd.extend_from_slice(&a);
    cmd.extend_from_slice(format!(" (\\Draft) ~{{{}+}}\r\n", b.len()).as_bytes());
    cmd.extend_from_slice(&b);
    cmd.extend_from_slice(b"\r\n");
    let r = String::from_utf8_lossy(&s.feed(&cmd).await.bytes).into_owned();
    assert!(r.starts_with("* 2 EXISTS\r\n"), "{r}");
    assert!(
        r.contains("a OK [APPENDUID ") && r.contains(" 1:2] "),
        "{r}"
    );
    let r = run(&mut s, "b FETCH 2 (FLAGS)\r\n").await;
    assert!(r.contains("FLAGS (\\Recent \\Draft)"), "{r}");
}

#[tokio::test]
async fn a_too_big_message_refuses_the_batch_before_its_data() {
    let f = fixture().await;
    let mut s = f.logged_in().await;
    // The fixture's limit is 4096 bytes per message.
    let r = multi_sync(
        &mut s,
        "a",
        &[("", msg(1, 100)), ("", msg(2, 5000)), ("", msg(3, 100))],
    )
    .await;
    assert!(r.starts_with("a NO [TOOBIG]"), "{r}");
    let r = run(&mut s, "b NOOP\r\n").await;
    assert_eq!(r, "b OK NOOP completed\r\n");
    assert_eq!(count(&mut s).await, 0);
}

#[tokio::test]
async fn a_batch_over_quota_stores_nothing() {
    let f = fixture().await;
    let mut s = f.logged_in().await;
    // Each message fits; the three together do not.
    f.backend
        .directory
        .set_quota(USER, Some(2500), None)
        .await
        .expect("quota");
    let batch = [("", msg(1, 1000)), ("", msg(2, 1000)), ("", msg(3, 1000))];
    let r = multi_sync(&mut s, "a", &batch).await;
    assert!(r.starts_with("a NO [OVERQUOTA]"), "{r}");
    assert_eq!(count(&mut s).await, 0);

    // Non-synchronizing: the data is all there; refused at the end, still nothing stored.
    let mut cmd = b"b APPEND INBOX".to_vec();
    for (_, m) in &batch {
        cmd.extend_from_slice(format!(" {{{}+}}\r\n", m.len()).as_bytes());
        cmd.extend_from_slice(m);
    }
    cmd.extend_from_slice(b"\r\n");
    let r = String::from_utf8_lossy(&s.feed(&cmd).await.bytes).into_owned();
    assert!(r.starts_with("b NO [OVERQUOTA]"), "{r}");
    assert_eq!(count(&mut s).await, 0);

    // A message quota counts every message of the batch.
    f.backend
        .directory
        .set_quota(USER, None, Some(2))
        .await
        .expect("quota");
    let r = multi_sync(&mut s, "c", &batch).await;
    assert!(r.starts_with("c NO [OVERQUOTA]"), "{r}");
    assert_eq!(count(&mut s).await, 0);
    let r = multi_sync(&mut s, "d", &batch[..2]).await;
    assert!(
        r.starts_with("d OK [APPENDUID ") && r.contains(" 1:2] "),
        "{r}"
    );
    assert_eq!(count(&mut s).await, 2);
}

#[tokio::test]
async fn missing_mailbox_bad_options_and_batch_limits() {
    let f = fixture().await;
    let mut s = f.logged_in().await;
    // No such mailbox: TRYCREATE before the first message is sent.
    let r = run(&mut s, "a APPEND Nowhere (\\Seen) {10}\r\n").await;
    assert!(r.starts_with("a NO [TRYCREATE]"), "{r}");
    let r = run(&mut s, "b NOOP\r\n").await;
    assert_eq!(r, "b OK NOOP completed\r\n");

    // An invalid date in the second message: BAD, and the first is not stored either.
    let r = multi_sync(
        &mut s,
        "c",
        &[
            ("", msg(1, 100)),
            ("\"31-Foo-2024 10:00:00 +0000\"", msg(2, 100)),
        ],
    )
    .await;
    assert!(r.starts_with("c BAD"), "{r}");
    // A flag that cannot be stored.
    let r = multi_sync(
        &mut s,
        "d",
        &[("", msg(1, 100)), ("(\\Recent)", msg(2, 100))],
    )
    .await;
    assert!(r.starts_with("d BAD"), "{r}");
    assert_eq!(count(&mut s).await, 0);

    // The batch is held in memory: bounded like one command (4096 + slack here).
    let batch: Vec<(&str, Vec<u8>)> = (0..40).map(|i| ("", msg(i, 4000))).collect();
    let r = multi_sync(&mut s, "e", &batch).await;
    assert!(r.starts_with("e NO [LIMIT]"), "{r}");
    let r = run(&mut s, "f NOOP\r\n").await;
    assert_eq!(r, "f OK NOOP completed\r\n");
    assert_eq!(count(&mut s).await, 0);
}

#[tokio::test]
async fn literal_mailbox_name_and_not_logged_in() {
    let f = fixture().await;
    let mut s = f.logged_in().await;
    let (a, b) = (msg(1, 40), msg(2, 40));
    let r = run(&mut s, "a APPEND {5}\r\n").await;
    assert_eq!(r, "+ Ready for literal data\r\n");
    let mut next = format!("INBOX {{{}}}\r\n", a.len()).into_bytes();
    let r = String::from_utf8_lossy(&s.feed(&next).await.bytes).into_owned();
    assert_eq!(r, "+ Ready for literal data\r\n");
    next = a.clone();
    next.extend_from_slice(format!(" {{{}}}\r\n", b.len()).as_bytes());
    let r = String::from_utf8_lossy(&s.feed(&next).await.bytes).into_owned();
    assert_eq!(r, "+ Ready for literal data\r\n");
    next = b.clone();
    next.extend_from_slice(b"\r\n");
    let r = String::from_utf8_lossy(&s.feed(&next).await.bytes).into_owned();
    assert!(
        r.starts_with("a OK [APPENDUID ") && r.contains(" 1:2] "),
        "{r}"
    );

    let mut anon = f.session(true);
    let mut cmd = format!("b APPEND INBOX {{{}+}}\r\n", a.len()).into_bytes();
    cmd.extend_from_slice(&a);
    cmd.extend_from_slice(format!(" {{{}+}}\r\n", b.len()).as_bytes());
    cmd.extend_from_slice(&b);
    cmd.extend_from_slice(b"\r\n");
    let r = String::from_utf8_lossy(&anon.feed(&cmd).await.bytes).into_owned();
    assert!(r.starts_with("b BAD"), "{r}");
}
