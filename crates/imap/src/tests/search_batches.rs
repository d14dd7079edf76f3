//! SEARCH over more messages than one store batch, and the limit on search keys.

use super::{fixture, run};

/// Message `i` of the test mailbox: a few carry a rare subject, a display name, an encoded
/// subject or a two-letter body word (too short for the trigram index, so it is scanned).
fn message(i: usize) -> String {
    let subject = match i {
        5 | 600 | 1099 => "needle report".to_string(),
        777 => "=?UTF-8?Q?caf=C3=A9_needle?=".to_string(),
        _ => format!("message {i}"),
    };
    let from = if i % 500 == 3 {
        "Zed Zebra <zed@far.example>"
    } else {
        "<alice@example.com>"
    };
    let body = if i == 10 || i == 1000 { "qz" } else { "plain" };
    if i == 1050 {
        // A header block longer than what header keys read first (16 KiB): From and Subject
        // come after it, so only the analysis finds them.
        let long = format!("X-Long: {}\r\n", vec!["y".repeat(70); 300].join("\r\n "));
        return format!("{long}From: {from}\r\nSubject: needle long\r\n\r\n{body} text {i}\r\n");
    }
    format!("From: {from}\r\nSubject: {subject}\r\n\r\n{body} text {i}\r\n")
}

#[tokio::test]
async fn header_and_scanned_keys_across_batches() {
    // Room for 550 messages in one command (the fixture allows 4 KiB).
    let f = fixture().await;
    let f = super::Fixture {
        cfg: std::sync::Arc::new(crate::config::ImapConfig {
            max_message_size: 1 << 20,
            ..(*f.cfg).clone()
        }),
        ..f
    };
    let mut s = f.logged_in().await;
    // Two MULTIAPPENDs (at most 1,000 messages each), with LITERAL+.
    for half in [0..550, 550..1100] {
        let mut cmd = String::from("a APPEND INBOX");
        for i in half {
            let m = message(i);
            cmd.push_str(&format!(" {{{}+}}\r\n{m}", m.len()));
        }
        cmd.push_str("\r\n");
        let r = run(&mut s, &cmd).await;
        assert!(r.contains("a OK"), "{}", &r[..r.len().min(300)]);
    }
    let r = run(&mut s, "b SELECT INBOX\r\n").await;
    assert!(r.contains("* 1100 EXISTS"), "{r}");
    // Sequence numbers are 1-based: message i is i + 1.
    let r = run(&mut s, "c SEARCH SUBJECT needle\r\n").await;
    assert_eq!(
        r,
        "* SEARCH 6 601 778 1051 1100\r\nc OK SEARCH completed\r\n"
    );
    let r = run(&mut s, "d SEARCH FROM zebra\r\n").await;
    assert_eq!(r, "* SEARCH 4 504 1004\r\nd OK SEARCH completed\r\n");
    let r = run(&mut s, "e SEARCH CHARSET UTF-8 SUBJECT {5+}\r\ncafé\r\n").await;
    assert_eq!(r, "* SEARCH 778\r\ne OK SEARCH completed\r\n");
    let r = run(&mut s, "f SEARCH BODY qz\r\n").await;
    assert_eq!(r, "* SEARCH 11 1001\r\nf OK SEARCH completed\r\n");
    let r = run(&mut s, "g SEARCH RETURN (COUNT) NOT SUBJECT needle\r\n").await;
    assert!(r.contains(" COUNT 1095\r\n"), "{r}");
    let r = run(&mut s, "h SEARCH OR FROM zed BODY qz SUBJECT report\r\n").await;
    assert_eq!(r, "* SEARCH\r\nh OK SEARCH completed\r\n");
    let r = run(&mut s, "i SEARCH OR FROM zed BODY qz\r\n").await;
    assert_eq!(
        r,
        "* SEARCH 4 11 504 1001 1004\r\ni OK SEARCH completed\r\n"
    );
}

#[tokio::test]
async fn too_many_search_keys_are_refused_before_evaluation() {
    let f = fixture().await;
    let mut s = f.logged_in().await;
    let r = run(
        &mut s,
        "a APPEND INBOX {20+}\r\nSubject: k\r\n\r\nbody\r\n\r\n",
    )
    .await;
    assert!(r.contains("a OK"), "{r}");
    let r = run(&mut s, "b SELECT INBOX\r\n").await;
    assert!(r.contains("b OK"), "{r}");
    let limit = f.cfg.max_search_keys;
    let keys = |n: usize| vec!["UNDELETED"; n].join(" ");
    let r = run(&mut s, &format!("c SEARCH {}\r\n", keys(limit))).await;
    assert_eq!(r, "* SEARCH 1\r\nc OK SEARCH completed\r\n");
    let r = run(&mut s, &format!("d SEARCH {}\r\n", keys(limit + 1))).await;
    assert!(r.starts_with("d NO [LIMIT] Too many search keys"), "{r}");
    // OR and NOT count: 334 x "OR ALL ALL" is 1,002 keys.
    let ors = vec!["OR ALL ALL"; limit / 3 + 1].join(" ");
    let r = run(&mut s, &format!("e SEARCH {ors}\r\n")).await;
    assert!(r.starts_with("e NO [LIMIT]"), "{r}");
    let r = run(
        &mut s,
        &format!("e2 SEARCH NOT NOT {}\r\n", keys(limit - 1)),
    )
    .await;
    assert!(r.starts_with("e2 NO [LIMIT]"), "{r}");
    let r = run(
        &mut s,
        &format!("f SORT (ARRIVAL) UTF-8 {}\r\n", keys(limit + 1)),
    )
    .await;
    assert!(r.starts_with("f NO [LIMIT]"), "{r}");
    let r = run(
        &mut s,
        &format!("g THREAD REFERENCES UTF-8 {}\r\n", keys(limit + 1)),
    )
    .await;
    assert!(r.starts_with("g NO [LIMIT]"), "{r}");
    // The session goes on.
    let r = run(&mut s, "h SEARCH ALL\r\n").await;
    assert_eq!(r, "* SEARCH 1\r\nh OK SEARCH completed\r\n");
}
