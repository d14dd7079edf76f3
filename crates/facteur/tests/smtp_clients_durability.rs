//! Durability as a client sees it: the server is killed with SIGKILL right after each 250 it gave
//! (raw MX sessions, and lettre over implicit TLS with a remote recipient that goes to the queue),
//! restarted, and every acknowledged message is there exactly once, byte for byte.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

const PW: &str = "alice-password-1";
const ROUNDS: usize = 6;

fn reply(r: &mut BufReader<TcpStream>) -> String {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        assert!(r.read_line(&mut line).expect("read") > 0, "closed: {all}");
        all.push_str(&line);
        if line.as_bytes().get(3) != Some(&b'-') {
            return all;
        }
    }
}

/// One MX transaction; returns the final reply without sending QUIT (the kill comes first).
fn send_mx(addr: std::net::SocketAddr, body: &str) -> String {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut w = s.try_clone().expect("clone");
    let mut r = BufReader::new(s);
    assert!(reply(&mut r).starts_with("220"));
    for (cmd, want) in [
        ("EHLO durable.test\r\n", "250"),
        ("MAIL FROM:<x@far.test>\r\n", "250"),
        ("RCPT TO:<alice@example.com>\r\n", "250"),
        ("DATA\r\n", "354"),
    ] {
        w.write_all(cmd.as_bytes()).expect("write");
        let got = reply(&mut r);
        assert!(got.starts_with(want), "{cmd:?}: {got}");
    }
    w.write_all(body.as_bytes()).expect("write");
    w.write_all(b".\r\n").expect("write");
    reply(&mut r)
}

fn body(i: usize) -> String {
    format!(
        "Subject: durable {i}\r\nMessage-ID: <durable-{i}@example.com>\r\nDate: Thu, 1 Jan 2026 00:00:00 +0000\r\n\r\n{}",
        format!("line {i} of a message that must survive\r\n").repeat(40 * (i + 1))
    )
}

#[tokio::test]
async fn every_acknowledged_message_survives_kill9_after_its_250() {
    let mut server = common::Server::start("example.com");
    server.add_account("alice@example.com", PW);
    for i in 0..ROUNDS {
        if i % 2 == 0 {
            let r = send_mx(server.addr("smtp"), &body(i));
            assert!(r.starts_with("250 2.0.0"), "message {i}: {r}");
        } else {
            let tls = TlsParameters::builder("mx.example.com".into())
                .dangerous_accept_invalid_certs(true)
                .build_rustls()
                .expect("tls");
            let t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
                .port(server.addr("submissions").port())
                .tls(Tls::Wrapper(tls))
                .credentials(Credentials::new("alice@example.com".into(), PW.into()))
                .build();
            let from: Mailbox = "alice@example.com".parse().expect("from");
            let envelope = lettre::address::Envelope::new(
                Some(from.email.clone()),
                vec![
                    "alice@example.com".parse().expect("to"),
                    "friend@far.test".parse().expect("to"),
                ],
            )
            .expect("envelope");
            let r = t
                .send_raw(&envelope, body(i).as_bytes())
                .await
                .unwrap_or_else(|e| panic!("message {i}: {e}"));
            assert!(r.is_positive(), "message {i}: {r:?}");
        }
        server.kill9();
        server.spawn();
    }

    let store = server.store();
    let msgs = common::inbox(&store, "alice@example.com").await;
    assert_eq!(msgs.len(), ROUNDS, "every acknowledged message, once");
    for (i, m) in msgs.iter().enumerate() {
        // Received header, then the body exactly as sent (nothing is added on submission because
        // Message-ID and Date are present). lettre always writes CRLF "." CRLF after the data, so
        // its messages carry one more empty line.
        let text = String::from_utf8_lossy(m);
        let mut sent = body(i);
        if i % 2 == 1 {
            sent.push_str("\r\n");
        }
        assert!(text.ends_with(&sent), "message {i} damaged:\n{text:.600}");
        let header_end = text.find("\r\n\r\n").expect("header end");
        assert!(
            text[..header_end].ends_with(&format!("Subject: durable {i}\r\nMessage-ID: <durable-{i}@example.com>\r\nDate: Thu, 1 Jan 2026 00:00:00 +0000")),
            "message {i}: {text:.600}"
        );
    }
    let queue = store.queue_list().await.expect("queue");
    assert_eq!(
        queue.len(),
        ROUNDS / 2,
        "one queue entry per submitted message"
    );
    assert!(
        queue
            .iter()
            .all(|q| q.recipients.len() == 1 && q.recipients[0].address == "friend@far.test")
    );
    let check = server.admin(&["check-store"]);
    assert!(
        check.status.success(),
        "check-store: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}
