//! Postfix as a peer: a throwaway Postfix instance (scripts/postfix-peer.sh, its own folders under
//! the test's temporary folder, loopback only) relays to Facteur's MX port and, in the second test,
//! delivers to Facteur's LMTP port. A message goes into Postfix with Python's smtplib and must come
//! out of Facteur's store with its trace headers and its body intact.
//!
//! Needs Postfix and root (CI runs scripts/test.sh as root, which installs it).

mod common;

use std::time::{Duration, Instant};

use common::Server;
use common::postfix::Postfix;

const DOMAIN: &str = "example.com";
/// Postfix retries every second or two (see the script); this covers a slow CI machine.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(60);

/// The body sent through Postfix: a leading dot (transparency both ways), a line that is only a
/// dot and a space, a long line, trailing spaces and 8-bit-free text.
const BODY: &str = "Hello Alice,\r\n\
                    .a line that starts with a dot\r\n\
                    ..two dots\r\n\
                    . \r\n\
                    trailing spaces   \r\n\
                    \r\n\
                    -- \r\n\
                    the end\r\n";

fn message(subject: &str, to: &str) -> String {
    format!(
        "From: Sender <sender@postfix-peer.test>\r\n\
         To: {to}\r\n\
         Subject: {subject}\r\n\
         Message-ID: <{subject}@postfix-peer.test>\r\n\
         Date: Mon, 2 Mar 2026 10:00:00 +0000\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n{BODY}"
    )
}

/// Waits until `address` has `n` messages; returns them.
async fn wait_for(server: &Server, postfix: &Postfix, address: &str, n: usize) -> Vec<Vec<u8>> {
    let store = server.store();
    let deadline = Instant::now() + ARRIVAL_TIMEOUT;
    loop {
        let msgs = common::inbox(&store, address).await;
        if msgs.len() >= n {
            return msgs;
        }
        assert!(
            Instant::now() < deadline,
            "{address} has {} of {n} message(s) after {ARRIVAL_TIMEOUT:?}\n--- postfix log ---\n{}",
            msgs.len(),
            postfix.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Splits a stored message at the blank line.
fn split(raw: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (h, b) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header/body separator: {text:?}"));
    (format!("{h}\r\n"), b.to_string())
}

#[tokio::test]
async fn postfix_relays_to_the_mx_port() {
    let server = Server::start(DOMAIN);
    server.add_account(&format!("alice@{DOMAIN}"), "alice-password-1");
    let postfix = Postfix::start("smtp", server.addr("smtp"));
    postfix.inject(
        "sender@postfix-peer.test",
        &["alice@example.com"],
        &message("relayed-by-postfix", "Alice <alice@example.com>"),
    );
    let msgs = wait_for(&server, &postfix, &format!("alice@{DOMAIN}"), 1).await;
    assert_eq!(msgs.len(), 1, "exactly one copy");
    let (head, body) = split(&msgs[0]);

    // Facteur's trace: Return-Path first, its spam verdict, then its Received naming Postfix (HELO name and IP); Postfix
    // used STARTTLS ("may") against Facteur's self-signed certificate, hence ESMTPS.
    assert!(
        head.starts_with(
            "Return-Path: <sender@postfix-peer.test>\r\nX-Spam-Status: No, score=0.0 required=5.0\r\n\
             \ttests=BAYES_UNTRAINED\r\nX-Spam-Score: 0.0\r\n\
             Received: from postfix-peer.test ([127.0.0.1])\r\n\tby mx.example.com (Facteur) with ESMTPS"
        ),
        "{head}"
    );
    // Postfix's own Received follows, then the original headers untouched.
    let postfix_received = head
        .find("by postfix-peer.test (Postfix) with ESMTP")
        .unwrap_or_else(|| panic!("no Received from Postfix: {head}"));
    let subject = head
        .find("Subject: relayed-by-postfix\r\n")
        .expect("Subject");
    assert!(postfix_received < subject, "{head}");
    assert!(
        head.contains("Message-ID: <relayed-by-postfix@postfix-peer.test>\r\n"),
        "{head}"
    );
    assert_eq!(body, BODY, "body changed on the way");

    let log = postfix.log();
    assert!(
        log.contains("status=sent (250 2.0.0 OK: queued as"),
        "Postfix log:\n{log}"
    );
    assert!(store_queue_empty(&server).await, "nothing queued for relay");
}

#[tokio::test]
async fn postfix_delivers_over_lmtp() {
    let server = Server::start(DOMAIN);
    server.add_account(&format!("alice@{DOMAIN}"), "alice-password-1");
    server.add_account(&format!("bob@{DOMAIN}"), "bob-password-1");
    let postfix = Postfix::start("lmtp", server.addr("lmtp"));
    postfix.inject(
        "sender@postfix-peer.test",
        &["alice@example.com", "bob@example.com", "nobody@example.com"],
        &message("delivered-over-lmtp", "alice@example.com, bob@example.com"),
    );
    let alice = wait_for(&server, &postfix, &format!("alice@{DOMAIN}"), 1).await;
    let bob = wait_for(&server, &postfix, &format!("bob@{DOMAIN}"), 1).await;
    assert_eq!((alice.len(), bob.len()), (1, 1), "one copy each");
    for (who, raw) in [("alice", &alice[0]), ("bob", &bob[0])] {
        let (head, body) = split(raw);
        assert!(
            head.starts_with(
                "Return-Path: <sender@postfix-peer.test>\r\nReceived: from postfix-peer.test ([127.0.0.1])\r\n\tby mx.example.com (Facteur) with LMTP"
            ),
            "{who}: {head}"
        );
        assert!(
            head.contains("by postfix-peer.test (Postfix) with ESMTP"),
            "{who}: {head}"
        );
        assert!(
            head.contains("Message-ID: <delivered-over-lmtp@postfix-peer.test>\r\n"),
            "{who}: {head}"
        );
        assert_eq!(body, BODY, "{who}: body changed on the way");
    }

    // RFC 2033: one reply per recipient; the unknown one is refused on its own (Postfix bounces it)
    // while the others are delivered.
    let deadline = Instant::now() + ARRIVAL_TIMEOUT;
    loop {
        let log = postfix.log();
        let sent = log
            .lines()
            .filter(|l| l.contains("status=sent") && l.contains("example.com>"))
            .count();
        let bounced = log
            .lines()
            .any(|l| l.contains("to=<nobody@example.com>") && l.contains("status=bounced"));
        if sent >= 2 && bounced {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "expected 2 sent and nobody@ bounced:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(store_queue_empty(&server).await);
}

async fn store_queue_empty(server: &Server) -> bool {
    server
        .store()
        .queue_list()
        .await
        .expect("queue_list")
        .is_empty()
}
