//! What no library client here speaks, over a raw socket: BDAT/CHUNKING (RFC 3030; smtplib has no
//! BDAT) and LMTP's one reply per accepted recipient (RFC 2033 §4.2).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const PW: &str = "alice-password-1";

/// A line-oriented client: the test writes exact bytes and reads whole (multi-line) replies.
struct Raw {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut c = Raw {
            w: s.try_clone().expect("clone"),
            r: BufReader::new(s),
        };
        let greeting = c.reply();
        assert!(greeting.starts_with("220 "), "{greeting}");
        c
    }

    /// One reply, every line of it.
    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = self.r.read_line(&mut line).expect("read reply");
            assert!(n > 0, "connection closed; so far: {all:?}");
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).expect("write");
    }

    /// Sends `bytes` and checks that the reply starts with `want` (code and enhanced code).
    fn expect(&mut self, bytes: &[u8], want: &str) -> String {
        self.send(bytes);
        let r = self.reply();
        assert!(
            r.starts_with(want),
            "after {:?}: expected {want:?}, got {r:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
        );
        r
    }
}

fn text(m: &[u8]) -> String {
    String::from_utf8_lossy(m).into_owned()
}

#[tokio::test]
async fn bdat_chunks_are_stored_exactly() {
    let server = common::Server::start("example.com");
    server.add_account("alice@example.com", PW);
    let mut c = Raw::connect(server.addr("smtp"));
    let ehlo = c.expect(b"EHLO raw.test\r\n", "250");
    assert!(ehlo.contains("250-CHUNKING\r\n"), "{ehlo}");

    // BDAT without a transaction: refused, and its octets are still consumed (RFC 3030 §2).
    c.expect(b"BDAT 12 LAST\r\nNOOP\r\nNOOP\r\n", "503 5.5.1");
    c.expect(b"NOOP\r\n", "250 2.0.0");

    // No dot-stuffing in BDAT: a lone "." line and CRLF.CRLF are content. Chunks end mid-line.
    let message: &[u8] = b"From: <x@far.test>\r\nTo: <alice@example.com>\r\nSubject: chunked\r\n\
\r\n.\r\n..two dots stay two\r\n.\r\nline split across chunks\r\nend\r\n";
    let (a, rest) = message.split_at(37);
    let (b, last) = rest.split_at(45);
    c.expect(b"MAIL FROM:<x@far.test>\r\n", "250 2.1.0");
    c.expect(b"RCPT TO:<alice@example.com>\r\n", "250 2.1.5");
    let mut chunk = format!("BDAT {}\r\n", a.len()).into_bytes();
    chunk.extend_from_slice(a);
    c.expect(&chunk, "250 2.0.0");
    // DATA cannot follow BDAT in the same transaction.
    c.expect(b"DATA\r\n", "503 5.5.1");
    // Two chunks pipelined in one write (RFC 3030 §4.2 allows it).
    let mut two = format!("BDAT {}\r\n", b.len()).into_bytes();
    two.extend_from_slice(b);
    two.extend_from_slice(format!("BDAT {} LAST\r\n", last.len()).as_bytes());
    two.extend_from_slice(last);
    c.send(&two);
    let r = c.reply();
    assert!(r.starts_with("250 2.0.0"), "{r}");
    let r = c.reply();
    assert!(r.starts_with("250 2.0.0 OK"), "BDAT LAST: {r}");

    // A second transaction on the same connection: one BDAT 0 LAST after a full chunk.
    let second = b"Subject: second\r\n\r\nbody\r\n";
    c.expect(b"MAIL FROM:<y@far.test> BODY=BINARYMIME\r\n", "5");
    c.expect(b"MAIL FROM:<y@far.test>\r\n", "250 2.1.0");
    c.expect(b"RCPT TO:<alice@example.com>\r\n", "250 2.1.5");
    let mut chunk = format!("BDAT {}\r\n", second.len()).into_bytes();
    chunk.extend_from_slice(second);
    c.expect(&chunk, "250 2.0.0");
    c.expect(b"BDAT 0 LAST\r\n", "250 2.0.0 OK");
    c.expect(b"QUIT\r\n", "221 2.0.0");

    let msgs = common::inbox(&server.store(), "alice@example.com").await;
    assert_eq!(msgs.len(), 2);
    assert_eq!(common::strip_trace(&msgs[0]), message, "{}", text(&msgs[0]));
    assert!(
        text(&msgs[0]).starts_with("Return-Path: <x@far.test>\r\nX-Spam-Status: ")
            && text(&msgs[0]).contains("\r\nX-Spam-Score: 0.0\r\nReceived: from raw.test"),
        "{}",
        text(&msgs[0])
    );
    assert_eq!(common::strip_trace(&msgs[1]), second, "{}", text(&msgs[1]));
}

#[tokio::test]
async fn bdat_over_the_size_limit_is_refused_and_stores_nothing() {
    let server = common::Server::start_with("example.com", "[limits]\nmax_message_size = 10000\n");
    server.add_account("alice@example.com", PW);
    let mut c = Raw::connect(server.addr("smtp"));
    c.expect(b"EHLO raw.test\r\n", "250");
    c.expect(b"MAIL FROM:<x@far.test>\r\n", "250 2.1.0");
    c.expect(b"RCPT TO:<alice@example.com>\r\n", "250 2.1.5");
    let body = b"Subject: big\r\n\r\n".iter().copied().chain(
        std::iter::repeat_n(
            b"0123456789012345678901234567890123456789\r\n".to_vec(),
            300,
        )
        .flatten(),
    );
    let body: Vec<u8> = body.collect();
    let (a, b) = body.split_at(6000);
    let mut chunk = format!("BDAT {}\r\n", a.len()).into_bytes();
    chunk.extend_from_slice(a);
    c.expect(&chunk, "250 2.0.0");
    let mut chunk = format!("BDAT {} LAST\r\n", b.len()).into_bytes();
    chunk.extend_from_slice(b);
    c.expect(&chunk, "552 5.3.4");
    // The session goes on.
    c.expect(b"MAIL FROM:<x@far.test>\r\n", "250 2.1.0");
    c.expect(b"RCPT TO:<alice@example.com>\r\n", "250 2.1.5");
    let small = b"Subject: ok\r\n\r\nsmall\r\n";
    let mut chunk = format!("BDAT {} LAST\r\n", small.len()).into_bytes();
    chunk.extend_from_slice(small);
    c.expect(&chunk, "250 2.0.0");
    let msgs = common::inbox(&server.store(), "alice@example.com").await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(common::strip_trace(&msgs[0]), small);
}

#[tokio::test]
async fn lmtp_answers_once_per_accepted_recipient() {
    let server = common::Server::start("example.com");
    server.add_account("alice@example.com", PW);
    server.add_account("bob@example.com", "bob-password-12");
    server.add_account("carol@example.com", "carol-password-1");
    let out = server.admin(&["account", "quota", "bob@example.com", "1k"]);
    assert!(out.status.success());
    let mut c = Raw::connect(server.addr("lmtp"));
    c.expect(b"EHLO front.test\r\n", "500 5.5.1");
    let lhlo = c.expect(b"LHLO front.test\r\n", "250");
    assert!(
        lhlo.contains("PIPELINING") && lhlo.contains("ENHANCEDSTATUSCODES"),
        "{lhlo}"
    );
    let message = format!(
        "From: <x@far.test>\r\nSubject: lmtp\r\n\r\n{}",
        "0123456789012345678901234567890123456789\r\n".repeat(50)
    );
    c.expect(b"MAIL FROM:<x@far.test>\r\n", "250 2.1.0");
    c.expect(b"RCPT TO:<alice@example.com>\r\n", "250 2.1.5");
    c.expect(b"RCPT TO:<nobody@example.com>\r\n", "550 5.1.1");
    c.expect(b"RCPT TO:<someone@far.test>\r\n", "550 5.1.1");
    // bob's quota (1 KiB) cannot take 2 KB: accepted at RCPT, refused at delivery.
    c.expect(b"RCPT TO:<bob@example.com>\r\n", "250 2.1.5");
    c.expect(b"RCPT TO:<carol@example.com>\r\n", "250 2.1.5");
    c.expect(b"DATA\r\n", "354");
    c.send(message.as_bytes());
    c.send(b".\r\n");
    // Three accepted recipients, three replies, in RCPT order.
    let replies = [c.reply(), c.reply(), c.reply()];
    assert!(replies[0].starts_with("250 2.0.0"), "alice: {replies:?}");
    assert!(replies[1].starts_with("452 4.2.2"), "bob: {replies:?}");
    assert!(replies[2].starts_with("250 2.0.0"), "carol: {replies:?}");
    // Nothing more is pending: the next reply is the NOOP's.
    c.expect(b"NOOP\r\n", "250 2.0.0");
    // BDAT in LMTP (RFC 3030 + RFC 2033): the LAST chunk also gets one reply per recipient.
    let small = b"Subject: lmtp bdat\r\n\r\nx\r\n";
    c.expect(b"MAIL FROM:<y@far.test>\r\n", "250 2.1.0");
    c.expect(b"RCPT TO:<alice@example.com>\r\n", "250 2.1.5");
    c.expect(b"RCPT TO:<carol@example.com>\r\n", "250 2.1.5");
    let mut chunk = format!("BDAT {} LAST\r\n", small.len()).into_bytes();
    chunk.extend_from_slice(small);
    c.send(&chunk);
    let replies = [c.reply(), c.reply()];
    assert!(
        replies.iter().all(|r| r.starts_with("250 2.0.0")),
        "{replies:?}"
    );
    c.expect(b"NOOP\r\n", "250 2.0.0");
    c.expect(b"QUIT\r\n", "221");

    let store = server.store();
    for who in ["alice", "carol"] {
        let m = common::inbox(&store, &format!("{who}@example.com")).await;
        assert_eq!(m.len(), 2, "{who}");
        assert!(text(&m[0]).contains("with LMTP"), "{}", text(&m[0]));
        assert_eq!(common::strip_trace(&m[0]), message.as_bytes());
        assert_eq!(common::strip_trace(&m[1]), small);
    }
    assert!(common::inbox(&store, "bob@example.com").await.is_empty());
}
