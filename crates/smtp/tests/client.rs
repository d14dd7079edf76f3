//! The outbound SMTP client against scripted servers over real sockets: STARTTLS with a reply
//! injected before the handshake (must be discarded), required TLS refused when not offered,
//! implicit TLS with AUTH PLAIN (smarthost), CHUNKING, SMTPUTF8 refusal, SIZE, and the bytes on
//! the wire (dot-stuffing, never a bare CR or LF).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use smtp::client::{
    ClientConfig, ClientError, Connection, OutEnvelope, OutRecipient, Timeouts, TlsMode,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

fn acceptor(dir: &std::path::Path) -> TlsAcceptor {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    net::tls::ensure_self_signed(&cert, &key, "mx.peer.test").unwrap();
    TlsAcceptor::from(net::tls::load_server_config(&cert, &key, net::tls::TlsMin::Tls12).unwrap())
}

fn config(mode: TlsMode) -> ClientConfig {
    let _ = rustls::crypto::ring::default_provider().install_default();
    ClientConfig {
        helo_name: "client.test".into(),
        tls_mode: mode,
        tls: net::client::opportunistic(),
        timeouts: Timeouts {
            connect: Duration::from_secs(5),
            command: Duration::from_secs(5),
            data_end: Duration::from_secs(5),
        },
    }
}

fn env(to: &[&str]) -> OutEnvelope {
    OutEnvelope {
        from: "a@client.test".into(),
        recipients: to
            .iter()
            .map(|a| OutRecipient {
                address: a.to_string(),
                notify: None,
                orcpt: None,
            })
            .collect(),
        envid: None,
        ret: None,
    }
}

/// Reads one line (up to LF) from the stream.
async fn line<S: AsyncRead + Unpin>(s: &mut S) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    while s.read(&mut b).await.unwrap_or(0) == 1 {
        out.push(b[0]);
        if b[0] == b'\n' {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Serves one transaction after EHLO on any stream: records every byte received after DATA/BDAT.
async fn transaction<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    ehlo: &str,
    wire: Arc<Mutex<Vec<u8>>>,
) {
    loop {
        let l = line(s).await;
        if l.is_empty() {
            return;
        }
        let up = l.to_ascii_uppercase();
        if up.starts_with("EHLO") {
            s.write_all(ehlo.as_bytes()).await.unwrap();
        } else if up.starts_with("AUTH PLAIN ") {
            // "\0user\0pass" = AHVzZXIAcGFzcw==
            let ok = l.trim_end() == "AUTH PLAIN AHVzZXIAcGFzcw==";
            s.write_all(if ok {
                b"235 2.7.0 ok\r\n"
            } else {
                b"535 5.7.8 no\r\n"
            })
            .await
            .unwrap();
        } else if up.starts_with("MAIL") || up.starts_with("RCPT") || up.starts_with("RSET") {
            wire.lock().unwrap().extend_from_slice(l.as_bytes());
            s.write_all(b"250 2.0.0 ok\r\n").await.unwrap();
        } else if up.starts_with("DATA") {
            s.write_all(b"354 go\r\n").await.unwrap();
            loop {
                let l = line(s).await;
                wire.lock().unwrap().extend_from_slice(l.as_bytes());
                if l == ".\r\n" || l.is_empty() {
                    break;
                }
            }
            s.write_all(b"250 2.0.0 queued\r\n").await.unwrap();
        } else if up.starts_with("BDAT ") {
            let n: usize = l.split_whitespace().nth(1).unwrap().parse().unwrap();
            let mut buf = vec![0u8; n];
            s.read_exact(&mut buf).await.unwrap();
            wire.lock().unwrap().extend_from_slice(l.as_bytes());
            wire.lock().unwrap().extend_from_slice(&buf);
            s.write_all(b"250 2.0.0 queued\r\n").await.unwrap();
        } else if up.starts_with("QUIT") {
            let _ = s.write_all(b"221 bye\r\n").await;
            return;
        } else {
            s.write_all(b"502 5.5.1 no\r\n").await.unwrap();
        }
    }
}

#[tokio::test]
async fn starttls_discards_a_reply_injected_before_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let acc = acceptor(dir.path());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let wire = Arc::new(Mutex::new(Vec::new()));
    let w2 = wire.clone();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        s.write_all(b"220 mx.peer.test ESMTP\r\n").await.unwrap();
        assert!(line(&mut s).await.starts_with("EHLO"));
        s.write_all(b"250-mx.peer.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
            .await
            .unwrap();
        assert_eq!(line(&mut s).await, "STARTTLS\r\n");
        // The 220 and, in the same packet, a forged reply a man in the middle slipped in.
        s.write_all(b"220 2.0.0 go ahead\r\n250 2.1.0 injected\r\n")
            .await
            .unwrap();
        let mut tls = acc.accept(s).await.unwrap();
        transaction(&mut tls, "250-mx.peer.test\r\n250 PIPELINING\r\n", w2).await;
    });
    let mut c = Connection::connect(addr, "mx.peer.test", &config(TlsMode::Opportunistic))
        .await
        .unwrap();
    assert!(c.tls_info().is_some(), "TLS negotiated");
    let out = c
        .send(&env(&["b@peer.test"]), b"Subject: x\r\n\r\nhi\r\n")
        .await
        .unwrap();
    assert!(out.recipients[0].is_ok());
    // Had the injected "250" been read as the reply to EHLO/MAIL, replies would be off by one and
    // the DATA reply would not be "queued".
    assert!(out.recipients[0].as_ref().unwrap().text.contains("queued"));
    c.quit().await;
    let w = String::from_utf8(wire.lock().unwrap().clone()).unwrap();
    assert!(w.starts_with("MAIL FROM:<a@client.test>"), "{w}");
}

#[tokio::test]
async fn required_tls_is_not_given_up_when_starttls_is_missing() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        s.write_all(b"220 mx ESMTP\r\n").await.unwrap();
        let _ = line(&mut s).await;
        s.write_all(b"250-mx\r\n250 PIPELINING\r\n").await.unwrap();
        let _ = line(&mut s).await;
        let _ = s.write_all(b"221 bye\r\n").await;
    });
    let e = Connection::connect(addr, "mx.peer.test", &config(TlsMode::Required))
        .await
        .err()
        .expect("no plaintext fallback");
    assert!(matches!(e, ClientError::TlsUnavailable), "{e}");
    assert!(!e.is_permanent(), "deferred, not bounced");
}

#[tokio::test]
async fn implicit_tls_auth_and_chunking_to_a_smarthost() {
    let dir = tempfile::tempdir().unwrap();
    let acc = acceptor(dir.path());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let wire = Arc::new(Mutex::new(Vec::new()));
    let w2 = wire.clone();
    tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let mut tls = acc.accept(s).await.unwrap();
        tls.write_all(b"220 relay.test ESMTP\r\n").await.unwrap();
        transaction(
            &mut tls,
            "250-relay.test\r\n250-AUTH PLAIN LOGIN\r\n250-CHUNKING\r\n250-SIZE 1000000\r\n250 8BITMIME\r\n",
            w2,
        )
        .await;
    });
    let mut c = Connection::connect(addr, "relay.test", &config(TlsMode::Implicit))
        .await
        .unwrap();
    assert!(c.tls_info().is_some());
    c.authenticate("user", "pass").await.unwrap();
    let body = b"Subject: caf\xc3\xa9\r\n\r\n.dot\r\nbare\nlf\r\n";
    let mut e = env(&["b@peer.test"]);
    e.from = "a@client.test".into();
    // UTF-8 in headers needs SMTPUTF8, which this relay lacks: refused with 5.6.7, not sent.
    let err = c.send(&e, body).await.unwrap_err();
    assert!(err.is_permanent());
    assert_eq!(err.enhanced(), "5.6.7");
    let body = b"Subject: plain\r\n\r\n.dot\r\nbare\nlf\r\n\xc3\xa9\r\n";
    let out = c.send(&e, body).await.unwrap();
    assert!(out.recipients[0].is_ok());
    c.quit().await;
    let w = wire.lock().unwrap().clone();
    let text = String::from_utf8_lossy(&w);
    assert!(
        text.contains("MAIL FROM:<a@client.test> SIZE=38 BODY=8BITMIME\r\n"),
        "{text}"
    );
    // BDAT carries the bytes as they are (no dot-stuffing), with the bare LF made CRLF.
    assert!(
        w.ends_with(b"BDAT 38 LAST\r\nSubject: plain\r\n\r\n.dot\r\nbare\r\nlf\r\n\xc3\xa9\r\n"),
        "{text}"
    );
}

#[tokio::test]
async fn data_is_dot_stuffed_and_never_has_a_bare_newline() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let wire = Arc::new(Mutex::new(Vec::new()));
    let w2 = wire.clone();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        s.write_all(b"220 mx ESMTP\r\n").await.unwrap();
        transaction(&mut s, "250-mx\r\n250 PIPELINING\r\n", w2).await;
    });
    let mut c = Connection::connect(addr, "mx", &config(TlsMode::Opportunistic))
        .await
        .unwrap();
    // A smuggling attempt inside the message: "\n.\n" and "\r.\r" must not end the data early.
    let body = b"Subject: s\r\n\r\nline\n.\nMAIL FROM:<evil@x>\r\nx\r.\rend\r\n.\r\n";
    c.send(&env(&["b@peer.test"]), body).await.unwrap();
    c.quit().await;
    let w = wire.lock().unwrap().clone();
    let data_start = w.windows(6).position(|x| x == b"RCPT T").unwrap();
    let data = &w[data_start..];
    let data = &data[data.iter().position(|&b| b == b'\n').unwrap() + 1..];
    assert_eq!(
        data,
        b"Subject: s\r\n\r\nline\r\n..\r\nMAIL FROM:<evil@x>\r\nx\r\n..\r\nend\r\n..\r\n.\r\n"
    );
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' {
            assert_eq!(data[i - 1], b'\r', "bare LF at {i}");
        }
        if b == b'\r' {
            assert_eq!(data[i + 1], b'\n', "bare CR at {i}");
        }
    }
}
