//! SMTP with third-party clients: the `lettre` crate (STARTTLS on 587, implicit TLS on 465) and
//! `swaks` (installed by scripts/test.sh), checked against what the store holds afterwards.

mod common;

use std::process::Command;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

const PW: &str = "alice-password-1";

fn tls_params(host: &str) -> TlsParameters {
    // The server's certificate is the self-signed one made at first start.
    TlsParameters::builder(host.to_string())
        .dangerous_accept_invalid_certs(true)
        .build_rustls()
        .expect("tls parameters")
}

fn transport(port: u16, tls: Tls) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .tls(tls)
        .credentials(Credentials::new("alice@example.com".into(), PW.into()))
        .build()
}

#[tokio::test]
async fn lettre_submits_over_starttls_and_implicit_tls() {
    let server = common::Server::start("example.com");
    server.add_account("alice@example.com", PW);
    server.add_account("bob@example.com", "bob-password-12");
    let attachment = (0..200_000u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect::<Vec<u8>>();
    let email = Message::builder()
        .from("Alice <alice@example.com>".parse().expect("from"))
        .to("Bob <bob@example.com>".parse().expect("to"))
        .subject("Rapport trimestriel — été")
        .message_id(Some("<rapport-2026@example.com>".into()))
        .date_now()
        .multipart(
            MultiPart::mixed()
                .multipart(
                    MultiPart::alternative()
                        .singlepart(SinglePart::plain(
                            "Bonjour Bob,\nle rapport est joint.\n".to_string(),
                        ))
                        .singlepart(SinglePart::html(
                            "<p>Bonjour Bob, le rapport est joint.</p>".to_string(),
                        )),
                )
                .singlepart(Attachment::new("rapport.bin".into()).body(
                    attachment.clone(),
                    ContentType::parse("application/octet-stream").expect("ct"),
                )),
        )
        .expect("message");
    let mut sent = email.formatted();
    // lettre writes CRLF "." CRLF after the data even when the data already ends with CRLF, so the
    // message as transmitted (and stored) has one more empty line than `formatted()`.
    sent.extend_from_slice(b"\r\n");
    let starttls = transport(
        server.addr("submission").port(),
        Tls::Required(tls_params("mx.example.com")),
    );
    let r = starttls
        .send(email.clone())
        .await
        .expect("send over STARTTLS");
    assert!(r.is_positive());
    let implicit = transport(
        server.addr("submissions").port(),
        Tls::Wrapper(tls_params("mx.example.com")),
    );
    implicit.send(email).await.expect("send over implicit TLS");

    let store = server.store();
    let msgs = common::inbox(&store, "bob@example.com").await;
    assert_eq!(msgs.len(), 2);
    for m in &msgs {
        let text = String::from_utf8_lossy(m);
        assert!(
            text.contains("with ESMTPSA") && text.contains("(authenticated as alice@example.com)"),
            "{text:.400}"
        );
        // A MIME message with a 200 KiB attachment arrives byte for byte (it carries Date and
        // Message-ID, so the submission service adds nothing but the trace headers).
        let body = common::strip_trace(m);
        let first_diff = body.iter().zip(sent.iter()).position(|(a, b)| a != b);
        assert!(
            body == &sent[..],
            "stored message ({} bytes) differs from the one sent ({} bytes) at {first_diff:?}: {:?} / {:?}",
            body.len(),
            sent.len(),
            first_diff.map(|i| String::from_utf8_lossy(
                &body[i.saturating_sub(40)..(i + 40).min(body.len())]
            )
            .into_owned()),
            first_diff.map(|i| String::from_utf8_lossy(
                &sent[i.saturating_sub(40)..(i + 40).min(sent.len())]
            )
            .into_owned()),
        );
    }
    let a = store
        .analysis(store::BlobId::of(&msgs[0]))
        .await
        .expect("analysis");
    assert_eq!(a.body.content_type.to_ascii_lowercase(), "multipart");
}

#[tokio::test]
async fn lettre_wrong_password_is_refused() {
    let server = common::Server::start("example.com");
    server.add_account("alice@example.com", PW);
    let t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(server.addr("submission").port())
        .tls(Tls::Required(tls_params("mx.example.com")))
        .credentials(Credentials::new(
            "alice@example.com".into(),
            "wrong-password".into(),
        ))
        .build();
    let email = Message::builder()
        .from("alice@example.com".parse().expect("from"))
        .to("alice@example.com".parse().expect("to"))
        .subject("x")
        .body("x".to_string())
        .expect("message");
    let err = t.send(email).await.expect_err("wrong password accepted");
    assert!(
        err.to_string().contains("535")
            || err.status().map(|c| c.to_string()).as_deref() == Some("535"),
        "{err}"
    );
}

fn swaks(args: &[&str]) -> (bool, String) {
    let out = Command::new("swaks")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "swaks is not installed ({e}); scripts/test.sh installs it (Debian package swaks)"
            )
        });
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn swaks_to_mx_and_submission() {
    let server = common::Server::start("example.com");
    server.add_account("alice@example.com", PW);
    let mx = server.addr("smtp").to_string();
    let sub = server.addr("submission").to_string();
    let (ok, out) = swaks(&[
        "--server",
        &mx,
        "--from",
        "someone@far.test",
        "--to",
        "alice@example.com",
        "--header",
        "Subject: via swaks mx",
        "--tls",
    ]);
    assert!(ok, "{out}");
    let (ok, out) = swaks(&[
        "--server",
        &sub,
        "--from",
        "alice@example.com",
        "--to",
        "alice@example.com",
        "--header",
        "Subject: via swaks submission",
        "--tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        "alice@example.com",
        "--auth-password",
        PW,
    ]);
    assert!(ok, "{out}");
    // Relaying is refused: swaks exits non-zero and shows 554 5.7.1.
    let (ok, out) = swaks(&[
        "--server",
        &mx,
        "--from",
        "someone@far.test",
        "--to",
        "victim@elsewhere.test",
    ]);
    assert!(!ok && out.contains("554 5.7.1"), "{out}");
    let msgs = common::inbox(&server.store(), "alice@example.com").await;
    let subjects: Vec<bool> = ["via swaks mx", "via swaks submission"]
        .iter()
        .map(|s| msgs.iter().any(|m| String::from_utf8_lossy(m).contains(s)))
        .collect();
    assert_eq!(subjects, vec![true, true]);
    assert!(
        String::from_utf8_lossy(&msgs[0]).contains("with ESMTPS"),
        "STARTTLS used on MX"
    );
}

/// Byte-exact round trip over a raw socket, where the test controls every byte: a MIME message
/// with a base64 attachment (stored as a blob file), dot-stuffed lines and trailing spaces.
#[tokio::test]
async fn raw_mime_message_round_trips_byte_for_byte() {
    use std::io::{BufRead, BufReader, Write};
    let server = common::Server::start("example.com");
    server.add_account("alice@example.com", PW);
    let mut msg = b"From: <x@far.test>\r\nTo: <alice@example.com>\r\nSubject: exact\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n\
.leading dot\r\n..two dots\r\ntrailing spaces   \r\n\r\n--b1\r\nContent-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: base64\r\n\r\n"
        .to_vec();
    for i in 0..2000 {
        msg.extend_from_slice(format!("{:076}\r\n", i).as_bytes());
    }
    msg.extend_from_slice(b"--b1--\r\n");
    let mut stuffed = Vec::new();
    for line in msg.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            stuffed.push(b'.');
        }
        stuffed.extend_from_slice(line);
    }
    let s = std::net::TcpStream::connect(server.addr("smtp")).expect("connect");
    let mut w = s.try_clone().expect("clone");
    let mut r = BufReader::new(s);
    let mut expect = |w: &mut std::net::TcpStream, send: &[u8], code: &str| {
        w.write_all(send).expect("write");
        loop {
            let mut l = String::new();
            r.read_line(&mut l).expect("read");
            assert!(l.starts_with(code), "expected {code}, got {l:?}");
            if l.as_bytes().get(3) == Some(&b' ') {
                break;
            }
        }
    };
    expect(&mut w, b"", "220");
    expect(&mut w, b"EHLO raw.test\r\n", "250");
    expect(&mut w, b"MAIL FROM:<x@far.test>\r\n", "250");
    expect(&mut w, b"RCPT TO:<alice@example.com>\r\n", "250");
    expect(&mut w, b"DATA\r\n", "354");
    stuffed.extend_from_slice(b".\r\n");
    expect(&mut w, &stuffed, "250");
    expect(&mut w, b"QUIT\r\n", "221");
    let stored = common::inbox(&server.store(), "alice@example.com").await;
    assert_eq!(stored.len(), 1);
    let body = common::strip_trace(&stored[0]);
    assert!(
        body == &msg[..],
        "stored {} bytes, sent {}",
        body.len(),
        msg.len()
    );
}
