//! More real clients than `smtp_clients.rs` covers: swaks with AUTH LOGIN, implicit TLS (465),
//! PIPELINING, an attachment it builds itself and a wrong password; lettre on the MX port without
//! credentials and with a connection pool reusing one session for several messages.

mod common;

use std::process::Command;

use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

const PW: &str = "alice-password-1";

fn swaks(args: &[&str]) -> (bool, String) {
    let out = Command::new("swaks")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "swaks is not installed ({e}): run scripts/test.sh as root, or apt-get install swaks"
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

fn text(m: &[u8]) -> String {
    String::from_utf8_lossy(m).into_owned()
}

#[tokio::test]
async fn swaks_login_implicit_tls_pipelining_and_attachment() {
    let server = common::Server::start("example.com");
    server.add_account("alice@example.com", PW);
    server.add_account("bob@example.com", "bob-password-12");
    let sub = server.addr("submission").to_string();
    let subs = server.addr("submissions").to_string();
    let mx = server.addr("smtp").to_string();
    let dir = server.dir.path().to_path_buf();
    let attachment: Vec<u8> = (0..30_000u32).map(|i| (i * 13 % 256) as u8).collect();
    let att_path = dir.join("report.bin");
    std::fs::write(&att_path, &attachment).expect("write attachment");
    let att = att_path.display().to_string();

    let auth = |port: &str, mech: &str, pw: &str, extra: &[&str], subject: &str| {
        let mut args = vec![
            "--server",
            port,
            "--from",
            "alice@example.com",
            "--to",
            "bob@example.com",
            "--auth",
            mech,
            "--auth-user",
            "alice@example.com",
            "--auth-password",
            pw,
            "--header",
        ];
        let h = format!("Subject: {subject}");
        args.push(&h);
        args.extend_from_slice(extra);
        swaks(&args)
    };
    let (ok, out) = auth(&sub, "LOGIN", PW, &["--tls"], "swaks login 587");
    assert!(ok, "{out}");
    assert!(out.contains("235 2.7.0"), "{out}");
    let (ok, out) = auth(&subs, "PLAIN", PW, &["--tls-on-connect"], "swaks plain 465");
    assert!(ok, "{out}");
    let (ok, out) = auth(&sub, "PLAIN", "wrong-password", &["--tls"], "never sent");
    assert!(!ok && out.contains("535 5.7.8"), "{out}");
    // Without TLS swaks cannot authenticate: the server does not offer AUTH in plaintext.
    let (ok, out) = auth(&sub, "PLAIN", PW, &[], "never sent either");
    assert!(!ok, "{out}");

    let (ok, out) = swaks(&[
        "--server",
        &mx,
        "--from",
        "someone@far.test",
        "--to",
        "bob@example.com,alice@example.com",
        "--pipeline",
        "--header",
        "Subject: swaks pipelined with attachment",
        "--attach-type",
        "application/octet-stream",
        "--attach",
        &format!("@{att}"),
    ]);
    assert!(ok, "{out}");

    let store = server.store();
    let bob = common::inbox(&store, "bob@example.com").await;
    assert_eq!(
        bob.len(),
        3,
        "{:?}",
        bob.iter().map(|m| text(m)).collect::<Vec<_>>()
    );
    assert!(text(&bob[0]).contains("Subject: swaks login 587"));
    assert!(text(&bob[0]).contains("with ESMTPSA"));
    assert!(text(&bob[1]).contains("Subject: swaks plain 465"));
    assert!(text(&bob[1]).contains("with ESMTPSA"));
    let piped = text(&bob[2]);
    assert!(piped.contains("Subject: swaks pipelined with attachment"));
    // The attachment decodes back to the file: base64 lines as swaks wrote them.
    let b64: String = piped
        .split("Content-Transfer-Encoding: BASE64")
        .nth(1)
        .or_else(|| piped.split("Content-Transfer-Encoding: base64").nth(1))
        .expect("base64 part")
        .split("\r\n\r\n")
        .nth(1)
        .expect("part body")
        .lines()
        .take_while(|l| !l.starts_with("--") && !l.is_empty())
        .collect();
    assert_eq!(decode_b64(&b64), attachment);
    let alice = common::inbox(&store, "alice@example.com").await;
    assert_eq!(alice.len(), 1);
    assert_eq!(
        alice[0], bob[2],
        "one copy, same bytes, for both recipients"
    );
}

fn decode_b64(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let clean: Vec<u8> = s
        .bytes()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::new();
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[tokio::test]
async fn lettre_on_mx_and_with_a_pooled_submission_connection() {
    let server = common::Server::start("example.com");
    server.add_account("alice@example.com", PW);
    server.add_account("bob@example.com", "bob-password-12");
    let mx = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(server.addr("smtp").port())
        .build();
    let email = Message::builder()
        .from("Someone <someone@far.test>".parse().expect("from"))
        .to("bob@example.com".parse().expect("to"))
        .subject("lettre to MX")
        .body("plain MX delivery\n".to_string())
        .expect("message");
    let r = mx.send(email).await.expect("MX send");
    assert!(r.is_positive() && r.code().to_string() == "250", "{r:?}");
    // An AUTH attempt on MX is refused: lettre reports it instead of sending.
    let mx_auth = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(server.addr("smtp").port())
        .credentials(Credentials::new("alice@example.com".into(), PW.into()))
        .build();
    let email = Message::builder()
        .from("alice@example.com".parse().expect("from"))
        .to("bob@example.com".parse().expect("to"))
        .subject("never")
        .body("x".to_string())
        .expect("message");
    assert!(mx_auth.send(email).await.is_err(), "AUTH accepted on MX");

    let tls = TlsParameters::builder("mx.example.com".into())
        .dangerous_accept_invalid_certs(true)
        .build_rustls()
        .expect("tls");
    let pooled = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(server.addr("submission").port())
        .tls(Tls::Required(tls))
        .credentials(Credentials::new("alice@example.com".into(), PW.into()))
        .pool_config(PoolConfig::new().max_size(1))
        .build();
    for i in 0..3 {
        let email = Message::builder()
            .from("alice@example.com".parse().expect("from"))
            .to("bob@example.com".parse().expect("to"))
            .subject(format!("pooled {i}"))
            .body(format!("message {i}\n"))
            .expect("message");
        pooled
            .send(email)
            .await
            .unwrap_or_else(|e| panic!("pooled {i}: {e}"));
    }
    // A sender alice does not own is refused with 553 through lettre too.
    let email = Message::builder()
        .from("bob@example.com".parse().expect("from"))
        .to("bob@example.com".parse().expect("to"))
        .subject("forged")
        .body("x".to_string())
        .expect("message");
    let err = pooled
        .send(email)
        .await
        .expect_err("forged sender accepted");
    assert!(err.to_string().contains("553"), "{err}");

    let bob = common::inbox(&server.store(), "bob@example.com").await;
    let subjects: Vec<String> = bob
        .iter()
        .map(|m| {
            text(m)
                .lines()
                .find_map(|l| l.strip_prefix("Subject: ").map(str::to_string))
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        subjects,
        ["lettre to MX", "pooled 0", "pooled 1", "pooled 2"],
        "{subjects:?}"
    );
    assert!(bob[1..].iter().all(|m| text(m).contains("with ESMTPSA")));
    assert!(
        text(&bob[0]).contains("with ESMTP") && !text(&bob[0]).contains("authenticated"),
        "{}",
        text(&bob[0])
    );
}
