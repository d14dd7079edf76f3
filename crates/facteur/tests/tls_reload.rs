//! SIGHUP reloads the TLS certificate without a restart: new handshakes see the new certificate,
//! and a session opened before the reload keeps working.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

/// The SHA-256 fingerprint of the certificate a TLS port presents, via openssl s_client.
fn served_fingerprint(port: u16) -> String {
    let mut c = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_client (scripts/test.sh installs openssl)");
    let _ = c.stdin.take().expect("stdin").write_all(b"QUIT\r\n");
    let out = c.wait_with_output().expect("s_client");
    let mut x = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl x509");
    x.stdin
        .take()
        .expect("stdin")
        .write_all(&out.stdout)
        .expect("pipe");
    let fp = String::from_utf8_lossy(&x.wait_with_output().expect("x509").stdout)
        .trim()
        .to_string();
    assert!(
        fp.contains("Fingerprint"),
        "no certificate served on {port}"
    );
    fp
}

#[test]
fn sighup_reloads_the_certificate() {
    let server = common::Server::start("example.com");
    let port = server.addr("submissions").port();
    let before = served_fingerprint(port);
    // A session opened before the reload.
    let mut old = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-connect",
            &format!("127.0.0.1:{port}"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("s_client");
    std::thread::sleep(std::time::Duration::from_millis(500));
    // Replace the pair with a new self-signed one, as an operator renewing a certificate would.
    let tls = server.data.join("tls");
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=renewed.example.com",
        ])
        .arg("-keyout")
        .arg(tls.join("key.pem"))
        .arg("-out")
        .arg(tls.join("cert.pem"))
        .stderr(Stdio::null())
        .status()
        .expect("openssl req");
    assert!(st.success());
    let pid = server.child.as_ref().expect("running").id() as i32;
    // SAFETY: kill(2) on the PID of the server this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    let mut after = before.clone();
    for _ in 0..50 {
        after = served_fingerprint(port);
        if after != before {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_ne!(
        after, before,
        "the new certificate is not served after SIGHUP"
    );
    // The old session still answers.
    old.stdin
        .take()
        .expect("stdin")
        .write_all(b"EHLO still.here\r\n")
        .expect("write");
    // s_client keeps the session open after its input ends: give the reply time, then stop it.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let _ = old.kill();
    let out = old.wait_with_output().expect("old session");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("250-mx.example.com Hello still.here"),
        "old session broken: {text}"
    );
}
