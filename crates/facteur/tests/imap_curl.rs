//! IMAP with curl (another client we did not write): list a mailbox, fetch a message by UID over
//! implicit TLS and over STARTTLS, and refuse a wrong password.

mod common;

use std::process::Command;

fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "-k", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl");
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
async fn curl_lists_and_fetches() {
    let server = common::Server::start("example.com");
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
    let raw = b"From: a@far.test\r\nSubject: hello curl\r\n\r\nbody for curl\r\n";
    store::conformance::append(&store, inbox.id, raw.to_vec().into())
        .await
        .expect("append");
    let imaps = server.addr("imaps");
    let imap = server.addr("imap");
    let user = "alice@example.com:alice-password-1";

    // Mailboxes of the account (LIST).
    let (ok, out) = curl(&["-u", user, &format!("imaps://127.0.0.1:{}/", imaps.port())]);
    assert!(ok && out.contains("INBOX") && out.contains("Sent"), "{out}");
    // The message by UID, over 993 and over 143 with STARTTLS required.
    let (ok, out) = curl(&[
        "-u",
        user,
        &format!("imaps://127.0.0.1:{}/INBOX;UID=1", imaps.port()),
    ]);
    assert!(ok, "{out}");
    assert_eq!(out.as_bytes(), raw, "fetched bytes differ");
    let (ok, out) = curl(&[
        "--ssl-reqd",
        "-u",
        user,
        &format!("imap://127.0.0.1:{}/INBOX;UID=1", imap.port()),
    ]);
    assert!(ok && out.as_bytes() == raw, "{out}");
    // SEARCH through curl's custom request.
    let (ok, out) = curl(&[
        "-u",
        user,
        &format!("imaps://127.0.0.1:{}/INBOX", imaps.port()),
        "-X",
        "SEARCH SUBJECT curl",
    ]);
    assert!(ok && out.contains("SEARCH 1"), "{out}");
    let (ok, out) = curl(&[
        "-u",
        "alice@example.com:wrong",
        &format!("imaps://127.0.0.1:{}/", imaps.port()),
    ]);
    assert!(!ok, "wrong password accepted: {out}");
}
