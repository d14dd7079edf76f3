//! COMPRESS=DEFLATE (RFC 4978) in the state machine: when it is offered and accepted, and what
//! the driver is told. The DEFLATE stream itself is tested in `compress.rs` and end to end in
//! crates/facteur/tests/imap_compress.rs.

use super::{fixture, run};
use crate::session::Event;

#[tokio::test]
async fn offered_after_login_only() {
    let f = fixture().await;
    let mut s = f.session(true);
    let g = String::from_utf8(s.greeting()).expect("utf8");
    assert!(!g.contains("COMPRESS"), "{g}");
    // RFC 4978 §3: COMPRESS is a command of the authenticated state.
    let r = run(&mut s, "a COMPRESS DEFLATE\r\n").await;
    assert!(r.starts_with("a BAD"), "{r}");
    let mut s = f.logged_in().await;
    let r = run(&mut s, "b CAPABILITY\r\n").await;
    assert!(r.contains(" COMPRESS=DEFLATE"), "{r}");
}

#[tokio::test]
async fn accepted_once_then_compressionactive() {
    let f = fixture().await;
    let mut s = f.logged_in().await;
    // Other mechanisms are not in the grammar imap-codec accepts: BAD, and nothing changes.
    let out = s.feed(b"a COMPRESS LZ4\r\n").await;
    assert!(String::from_utf8_lossy(&out.bytes).starts_with("a BAD"));
    assert_eq!(out.event, None);
    let out = s.feed(b"b compress deflate\r\n").await;
    assert_eq!(
        String::from_utf8_lossy(&out.bytes),
        "b OK DEFLATE active\r\n"
    );
    assert_eq!(out.event, Some(Event::Compress));
    let r = run(&mut s, "c COMPRESS DEFLATE\r\n").await;
    assert!(r.starts_with("c NO [COMPRESSIONACTIVE]"), "{r}");
    // The session goes on as before (the driver does the compressing).
    let r = run(&mut s, "d SELECT INBOX\r\n").await;
    assert!(r.contains("d OK [READ-WRITE]"), "{r}");
    let r = run(&mut s, "e COMPRESS DEFLATE\r\n").await;
    assert!(r.starts_with("e NO [COMPRESSIONACTIVE]"), "{r}");
}

#[tokio::test]
async fn bytes_pipelined_after_compress_are_discarded() {
    let f = fixture().await;
    let mut s = f.logged_in().await;
    // RFC 4978 §3: the client waits for the OK; anything sent with the command was meant to be
    // compressed (or is an injection) and cannot be read as plaintext.
    let out = s.feed(b"a COMPRESS DEFLATE\r\nb CREATE Injected\r\n").await;
    assert_eq!(
        String::from_utf8_lossy(&out.bytes),
        "a OK DEFLATE active\r\n"
    );
    assert_eq!(out.event, Some(Event::Compress));
    let r = run(&mut s, "c LIST \"\" Injected\r\n").await;
    assert_eq!(r, "c OK LIST completed\r\n");
}

/// The session's limits see the inflated bytes: a long line still ends the connection.
#[tokio::test]
async fn line_limit_applies_after_compress() {
    let f = fixture().await;
    let mut s = f.logged_in().await;
    assert_eq!(
        s.feed(b"a COMPRESS DEFLATE\r\n").await.event,
        Some(Event::Compress)
    );
    let chunk = vec![b'x'; 16 * 1024];
    let mut closed = false;
    for _ in 0..8 {
        let out = s.feed(&chunk).await;
        if out.event == Some(Event::Close) {
            assert!(String::from_utf8_lossy(&out.bytes).contains("* BYE Command line too long"));
            closed = true;
            break;
        }
    }
    assert!(closed);
}
