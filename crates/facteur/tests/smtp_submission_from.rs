//! Submission checks the header From and Sender, not only MAIL FROM (issue 12, security battery):
//! logged in as alice, a message whose From is another hosted company's address is refused with
//! `550 5.7.1`, and what is accepted is DKIM-signed with the key of its (checked) From domain
//! only. An admin can grant an account another address or a whole domain
//! (`facteur account send-as`). Driven with Python's smtplib over 587 with STARTTLS; signatures
//! checked with dkimpy against the keys `facteur dkim list` publishes.

mod common;

use std::process::Command;

const PW: &str = "alice-password-1";

const PRELUDE: &str = r#"
import os, smtplib, ssl
SUB = int(os.environ["P_SUB"])
CTX = ssl.create_default_context(); CTX.check_hostname = False; CTX.verify_mode = ssl.CERT_NONE

def sub(user, pw):
    s = smtplib.SMTP("127.0.0.1", SUB, timeout=30)
    s.ehlo("client.test"); s.starttls(context=CTX); s.ehlo("client.test")
    s.login(user, pw)
    return s

def attempt(s, frm, body):
    """(code, text) of the end of data (or of MAIL when refused there)."""
    c, m = s.mail(frm)
    if c != 250:
        s.rset()
        return (c, m.decode())
    c, m = s.rcpt("bob@example.test")
    assert c == 250, (c, m)
    try:
        c, m = s.data(body)
    except smtplib.SMTPDataError as e:
        c, m = e.smtp_code, e.smtp_error
    return (c, m.decode() if isinstance(m, bytes) else m)

def refused(s, frm, body, what):
    c, m = attempt(s, frm, body)
    assert c == 550 and m.startswith("5.7.1"), f"{what}: expected 550 5.7.1, got {c} {m!r}"
    return m

def accepted(s, frm, body, what):
    c, m = attempt(s, frm, body)
    assert c == 250, f"{what}: expected 250, got {c} {m!r}"
"#;

fn python(server: &common::Server, script: &str) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!("{PRELUDE}\n{script}\nprint('python ok')\n"))
        .env("P_SUB", server.addr("submission").port().to_string())
        .output()
        .expect("python3 is needed for these tests (scripts/test.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("python ok"),
        "smtplib script failed:\n{text}"
    );
}

fn admin(server: &common::Server, args: &[&str]) -> String {
    let out = server.admin(args);
    assert!(
        out.status.success(),
        "facteur {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `d=` of every DKIM-Signature field of a stored message.
fn signing_domains(msg: &str) -> Vec<String> {
    let head = &msg[..msg.find("\r\n\r\n").unwrap_or(msg.len())];
    let unfolded = head.replace("\r\n\t", " ").replace("\r\n ", " ");
    unfolded
        .lines()
        .filter(|l| l.starts_with("DKIM-Signature:"))
        .filter_map(|l| {
            l.split(';')
                .map(str::trim)
                .find_map(|t| t.strip_prefix("d="))
                .map(str::to_string)
        })
        .collect()
}

/// Verifies every DKIM signature of `msg` with dkimpy, the DNS answered from our published keys.
fn dkimpy_verifies(server: &common::Server, msg: &[u8]) {
    let out = server.admin(&["--json", "dkim", "list"]);
    assert!(out.status.success());
    let keys: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let dns_map: String = keys
        .as_array()
        .expect("array")
        .iter()
        .map(|k| {
            format!(
                "{:?}: {:?}",
                format!("{}.", k["dns_name"].as_str().expect("name")),
                k["dns_txt"].as_str().expect("txt")
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let script = format!(
        "import dkim, sys\n\
         keys = {{{dns_map}}}\n\
         def dnsfunc(name, timeout=5):\n\
         \x20   name = name.decode() if isinstance(name, bytes) else name\n\
         \x20   return keys.get(name, '').encode()\n\
         msg = sys.stdin.buffer.read()\n\
         d = dkim.DKIM(msg)\n\
         n = msg.count(b'DKIM-Signature:')\n\
         ok = [d.verify(idx=i, dnsfunc=dnsfunc) for i in range(n)]\n\
         print(ok)\n\
         sys.exit(0 if n > 0 and all(ok) else 1)\n"
    );
    let mut py = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    py.stdin
        .take()
        .expect("stdin")
        .write_all(msg)
        .expect("write");
    let out = py.wait_with_output().expect("dkimpy");
    assert!(
        out.status.success(),
        "dkimpy: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn header_from_must_belong_to_the_sender_and_decides_the_signing_key() {
    let server = common::Server::start("example.test");
    admin(&server, &["domain", "add", "second.test"]);
    // New DKIM keys sign only once published; this test checks signatures without DNS.
    server.activate_dkim("example.test");
    server.activate_dkim("second.test");
    server.add_account("alice@example.test", PW);
    server.add_account("bob@example.test", "bob-password-12");
    server.add_account("carol@second.test", "carol-password-1");
    admin(
        &server,
        &["alias", "add", "sales@example.test", "alice@example.test"],
    );
    python(
        &server,
        r#"
s = sub("alice@example.test", "alice-password-1")
# The battery's case: her own envelope, another company's header From.
m = refused(s, "alice@example.test", b"From: Carol <carol@second.test>\r\nSubject: forged\r\n\r\nx\r\n", "forged From")
assert "carol@second.test" in m and "alice@example.test" in m, m
# Every address of From counts, as does Sender, and only one From field is allowed.
refused(s, "alice@example.test", b"From: alice@example.test, carol@second.test\r\nSubject: two\r\n\r\nx\r\n", "second From address")
refused(s, "alice@example.test", b"From: alice@example.test\r\nSender: carol@second.test\r\nSubject: s\r\n\r\nx\r\n", "forged Sender")
refused(s, "alice@example.test", b"From: alice@example.test\r\nFrom: carol@second.test\r\nSubject: d\r\n\r\nx\r\n", "two From fields")
refused(s, "alice@example.test", b'From: "alice@example.test" <carol@second.test>\r\nSubject: n\r\n\r\nx\r\n', "display name trick")
refused(s, "alice@example.test", b"From: Group: carol@second.test;\r\nSubject: g\r\n\r\nx\r\n", "group member")
# Her own address (any case, with a tag) and an alias she receives through are hers.
accepted(s, "alice@example.test", b"From: Alice <Alice+news@Example.TEST>\r\nSubject: own\r\n\r\nx\r\n", "own From")
accepted(s, "alice@example.test", b"From: Sales <sales@example.test>\r\nSender: alice@example.test\r\nSubject: alias\r\n\r\nx\r\n", "alias From")
s.quit()
"#,
    );

    // The admin grants alice the whole second.test domain, then takes it back.
    let out = admin(
        &server,
        &[
            "account",
            "send-as",
            "alice@example.test",
            "add",
            "@Second.test",
        ],
    );
    assert!(out.contains("@second.test"), "{out}");
    let out = admin(
        &server,
        &["account", "send-as", "alice@example.test", "list"],
    );
    assert_eq!(out.trim(), "@second.test");
    python(
        &server,
        r#"
s = sub("alice@example.test", "alice-password-1")
accepted(s, "alice@example.test", b"From: Carol <carol@second.test>\r\nSubject: granted\r\n\r\nx\r\n", "granted domain")
accepted(s, "info@second.test", b"From: info@second.test\r\nSubject: granted envelope\r\n\r\nx\r\n", "granted MAIL FROM")
s.quit()
"#,
    );
    admin(
        &server,
        &[
            "account",
            "send-as",
            "alice@example.test",
            "remove",
            "@second.test",
        ],
    );
    let bad = server.admin(&[
        "account",
        "send-as",
        "alice@example.test",
        "add",
        "not an address",
    ]);
    assert!(!bad.status.success(), "a malformed grant is refused");
    python(
        &server,
        r#"
s = sub("alice@example.test", "alice-password-1")
refused(s, "alice@example.test", b"From: carol@second.test\r\nSubject: revoked\r\n\r\nx\r\n", "grant removed")
c, m = s.mail("info@second.test")
assert c == 553, (c, m)
s.quit()
"#,
    );

    // Only the accepted messages arrived, each signed with the key of its From domain alone.
    let msgs = common::inbox(&server.store(), "bob@example.test").await;
    let texts: Vec<String> = msgs
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    let subjects: Vec<&str> = texts
        .iter()
        .filter_map(|t| t.lines().find_map(|l| l.strip_prefix("Subject: ")))
        .collect();
    assert_eq!(
        subjects,
        vec!["own", "alias", "granted", "granted envelope"],
        "exactly the accepted messages were delivered"
    );
    let domains: Vec<Vec<String>> = texts.iter().map(|t| signing_domains(t)).collect();
    for (subject, d) in subjects.iter().zip(&domains) {
        let want = if subject.starts_with("granted") {
            "second.test"
        } else {
            "example.test"
        };
        assert!(
            !d.is_empty() && d.iter().all(|x| x == want),
            "{subject}: signed with {d:?}, expected only d={want}"
        );
    }
    for m in &msgs {
        dkimpy_verifies(&server, m);
    }
}
