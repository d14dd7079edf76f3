//! A running server whose disk fills up (its data folder on a small tmpfs, filled by another
//! file): SMTP answers 451/452 to the message and IMAP APPEND answers NO, never a success; the
//! server keeps running; once space is freed both work again without a restart, nothing that was
//! refused shows up, and the store's integrity check passes.
//!
//! Mounting needs root: the test is `#[ignore]`d and scripts/test.sh runs it as root.

mod common;

use std::process::Command;

use common::tmpfs::{Tmpfs, fill};
use common::{Server, raw_smtp, test_config};

/// Room for the first start and a few messages.
const TMPFS_KIB: u64 = 48 * 1024;
const PW: &str = "correct-horse-battery-9";

/// One IMAP APPEND over implicit TLS with Python's imaplib: the tagged status and its text.
fn imap_append(server: &Server, subject: &str) -> String {
    let script = format!(
        r#"
import imaplib, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
c = imaplib.IMAP4_SSL("127.0.0.1", {port}, ssl_context=ctx)
c.login("bob@full.test", "{PW}")
try:
    typ, data = c.append("INBOX", None, None, b"Subject: {subject}\r\n\r\nappended while testing\r\n")
    print(typ, data)
except imaplib.IMAP4.error as e:
    print("ERROR", e)
c.logout()
"#,
        port = server.addr("imaps").port()
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .expect("python3");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn message(subject: &str) -> String {
    format!(
        "From: <alice@elsewhere.test>\r\nTo: <bob@full.test>\r\nSubject: {subject}\r\n\r\n{}\r\n",
        "a line of text to take some room.\r\n".repeat(200)
    )
}

#[test]
#[ignore = "needs root to mount tmpfs; scripts/test.sh runs it (as root) with --ignored"]
fn a_full_disk_is_refused_with_temporary_errors_and_recovered_from() {
    let fs = Tmpfs::mount(TMPFS_KIB);
    let mut server = Server::start_at(
        tempfile::tempdir().expect("tempdir"),
        fs.path().join("data"),
        "full.test",
        &test_config("full.test", ""),
    );
    server.add_account("bob@full.test", PW);
    let smtp = server.addr("smtp");

    let before = raw_smtp(
        smtp,
        "alice@elsewhere.test",
        "bob@full.test",
        &message("before"),
    );
    assert!(before.starts_with("250"), "{before}");

    let filler = fs.path().join("filler");
    fill(&filler);
    for n in 0..5 {
        let subject = format!("while full {n}");
        let reply = raw_smtp(
            smtp,
            "alice@elsewhere.test",
            "bob@full.test",
            &message(&subject),
        );
        assert!(
            reply.starts_with("451") || reply.starts_with("452"),
            "SMTP on a full disk must be a temporary failure: {reply}"
        );
        assert!(
            reply.contains(" 4.3."),
            "with an enhanced status code: {reply}"
        );
    }
    let appended = imap_append(&server, "append while full");
    assert!(
        appended.contains("NO") && !appended.contains("OK [APPENDUID"),
        "APPEND on a full disk must be NO: {appended}"
    );
    let child = server.child.as_mut().expect("child");
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "the server must keep running"
    );

    std::fs::remove_file(&filler).expect("free space");
    let after = raw_smtp(
        smtp,
        "alice@elsewhere.test",
        "bob@full.test",
        &message("after"),
    );
    assert!(after.starts_with("250"), "after freeing space: {after}");
    let appended = imap_append(&server, "append after");
    assert!(
        appended.contains("OK"),
        "APPEND after freeing space: {appended}"
    );

    server.kill9();
    let check = server.admin(&["check-store"]);
    assert!(
        check.status.success(),
        "check-store: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let inbox = rt.block_on(common::inbox(&server.store(), "bob@full.test"));
    let subjects: Vec<String> = inbox
        .iter()
        .map(|m| {
            let t = String::from_utf8_lossy(m);
            t.lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .collect();
    assert_eq!(
        subjects,
        ["before", "after", "append after"],
        "exactly what was acknowledged, nothing refused"
    );
    drop(server);
    drop(fs);
}
