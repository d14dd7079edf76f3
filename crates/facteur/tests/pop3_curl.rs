//! POP3 with curl (another client we did not write): LIST, UIDL, RETR of the exact stored bytes
//! (a dot-stuffed line included) and DELE through `-X`, over pop3:// with STLS required
//! (`--ssl-reqd`) and over pop3:// implicit TLS (pop3s://); a wrong password is refused.

mod common;

use std::process::Command;

const USER: &str = "alice@example.com:alice-password-1";

fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "-k", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl (Debian package curl; scripts/test.sh installs it)");
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
async fn curl_lists_retrieves_and_deletes() {
    let server = common::Server::start_pop3("example.com", "");
    server.add_account("alice@example.com", "alice-password-1");
    let store = server.store();
    let acc = store
        .account_get("alice", "example.com")
        .await
        .expect("get")
        .expect("account");
    let inbox = store
        .mailbox_get(acc.id, "INBOX")
        .await
        .expect("get")
        .expect("INBOX");
    let first: &[u8] = b"From: a@far.test\r\nSubject: hello curl\r\n\r\nbody for curl\r\n";
    let second: &[u8] =
        b"From: b@far.test\r\nSubject: dots\r\n\r\nline 1\r\n.starts with a dot\r\n..two\r\n.\r\nend\r\n";
    for raw in [first, second] {
        store::conformance::append(&store, inbox.id, raw.to_vec().into())
            .await
            .expect("append");
    }
    let pop3 = format!("pop3://127.0.0.1:{}", server.addr("pop3").port());
    let pop3s = format!("pop3s://127.0.0.1:{}", server.addr("pop3s").port());

    for (base, tls) in [(&pop3, &["--ssl-reqd"][..]), (&pop3s, &[][..])] {
        // LIST: message numbers and exact sizes.
        let (ok, out) = curl(&[tls, &["-u", USER, &format!("{base}/")]].concat());
        assert!(ok, "{base} LIST: {out}");
        assert_eq!(
            out,
            format!("1 {}\r\n2 {}\r\n", first.len(), second.len()),
            "{base} LIST"
        );
        // UIDL through a custom request.
        let (ok, out) = curl(&[tls, &["-u", USER, "-X", "UIDL", &format!("{base}/")]].concat());
        assert!(ok && out.lines().count() == 2, "{base} UIDL: {out}");
        // RETR: the stored bytes exactly, dot-stuffing undone by curl.
        for (n, raw) in [(1, first), (2, second)] {
            let (ok, out) = curl(&[tls, &["-u", USER, &format!("{base}/{n}")]].concat());
            assert!(ok, "{base} RETR {n}: {out}");
            assert_eq!(
                out.as_bytes(),
                raw,
                "{base} RETR {n} bytes differ:\n{out:?}"
            );
        }
    }

    // DELE through -X (-I: no body expected), then QUIT applies it: gone for the next session.
    let (ok, out) = curl(&[
        "--ssl-reqd",
        "-u",
        USER,
        "-X",
        "DELE",
        "-I",
        &format!("{pop3}/1"),
    ]);
    assert!(ok, "DELE: {out}");
    let (ok, out) = curl(&["-u", USER, &format!("{pop3s}/")]);
    assert!(ok, "{out}");
    assert_eq!(out, format!("1 {}\r\n", second.len()));
    let left = common::inbox(&store, "alice@example.com").await;
    assert_eq!(left, vec![second.to_vec()]);

    // A wrong password, and plaintext without --ssl-reqd (curl then does not upgrade, and the
    // server refuses credentials before TLS).
    let (ok, out) = curl(&["-u", "alice@example.com:wrong", &format!("{pop3s}/")]);
    assert!(!ok, "wrong password accepted: {out}");
    let (ok, out) = curl(&["-u", USER, &format!("{pop3}/")]);
    assert!(!ok, "credentials accepted over plaintext: {out}");
}
