//! SMTP, submission and the MX port as Python's smtplib (a client we did not write) sees them:
//! capabilities per port, AUTH, sender ownership, size and recipient limits, SMTPUTF8, recipient
//! resolution (plus-addressing, aliases, catch-all, disabled accounts, quotas) and the small
//! commands. Each test checks the replies the client got and what the store holds afterwards.
//!
//! The Python scripts get the ports from the environment (P_MX, P_SUB, P_SUBS) and share the
//! helpers in `PRELUDE`; a failed Python `assert` prints the reply that was not expected.

mod common;

use std::path::Path;
use std::process::Command;

const PW: &str = "alice-password-1";

const PRELUDE: &str = r#"
import os, smtplib, ssl, socket
MX = int(os.environ["P_MX"]); SUB = int(os.environ["P_SUB"]); SUBS = int(os.environ["P_SUBS"])
CTX = ssl.create_default_context(); CTX.check_hostname = False; CTX.verify_mode = ssl.CERT_NONE

def want(got, code, enh=None, what=""):
    c, m = got
    m = m.decode("utf-8", "replace") if isinstance(m, bytes) else str(m)
    assert c == code and (enh is None or m.startswith(enh)), \
        f"{what}: expected {code} {enh or ''}, got {c} {m!r}"

def mx():
    s = smtplib.SMTP("127.0.0.1", MX, timeout=30)
    s.ehlo("client.test")
    return s

def sub(user=None, pw=None):
    s = smtplib.SMTP("127.0.0.1", SUB, timeout=30)
    s.ehlo("client.test")
    s.starttls(context=CTX)
    s.ehlo("client.test")
    if user:
        s.login(user, pw)
    return s

def subs(user=None, pw=None):
    s = smtplib.SMTP_SSL("127.0.0.1", SUBS, context=CTX, timeout=30)
    s.ehlo("client.test")
    if user:
        s.login(user, pw)
    return s

def data(s, body):
    """End-of-data reply as (code, text), without raising."""
    try:
        return s.data(body)
    except smtplib.SMTPDataError as e:
        return (e.smtp_code, e.smtp_error)

def send(s, frm, rcpts, body, opts=()):
    want(s.mail(frm, opts), 250, "2.1.0", f"MAIL FROM {frm}")
    for r in rcpts:
        want(s.rcpt(r), 250, "2.1.5", f"RCPT TO {r}")
    want(data(s, body), 250, "2.0.0", "end of data")
"#;

/// Runs `PRELUDE` + `script` against `server`; panics with Python's output when it fails.
fn python(server: &common::Server, script: &str) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!("{PRELUDE}\n{script}\nprint('python ok')\n"))
        .env("P_MX", server.addr("smtp").port().to_string())
        .env("P_SUB", server.addr("submission").port().to_string())
        .env("P_SUBS", server.addr("submissions").port().to_string())
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

fn admin(server: &common::Server, args: &[&str]) {
    let out = server.admin(args);
    assert!(
        out.status.success(),
        "facteur {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Blob ids of the INBOX of `address`, in UID order.
async fn inbox_blobs(store: &store::DynStore, address: &str) -> Vec<store::BlobId> {
    let (local, domain) = address.split_once('@').expect("address");
    let acc = store
        .account_get(local, domain)
        .await
        .expect("account_get")
        .expect("account");
    let mb = store
        .mailbox_get(acc.id, "INBOX")
        .await
        .expect("mailbox_get")
        .expect("INBOX");
    store
        .messages(mb.id, 1..=u32::MAX)
        .await
        .expect("messages")
        .into_iter()
        .map(|m| m.blob)
        .collect()
}

/// Blob files on disk (blobs/xx/<hash>), not counting blobs/tmp.
fn blob_files(data: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for d in std::fs::read_dir(data.join("blobs"))
        .expect("blobs dir")
        .flatten()
    {
        if d.file_name() == "tmp" || !d.path().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(d.path()).expect("blob subdir").flatten() {
            out.push(f.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

fn text(m: &[u8]) -> String {
    String::from_utf8_lossy(m).into_owned()
}

#[tokio::test]
async fn ehlo_capabilities_on_each_port() {
    let server = common::Server::start("example.com");
    server.add_account("alice@example.com", PW);
    python(
        &server,
        r#"
s = smtplib.SMTP("127.0.0.1", MX, timeout=30)
code, text = s.ehlo("client.test")
assert code == 250, (code, text)
f = s.esmtp_features
for k in ["starttls", "pipelining", "size", "8bitmime", "smtputf8", "enhancedstatuscodes", "chunking", "dsn"]:
    assert k in f, ("MX EHLO lacks", k, text)
assert "auth" not in f, ("MX offers AUTH", text)
assert f["size"] == "52428800", ("default SIZE", f["size"])
want(s.docmd("AUTH", "PLAIN AGFsaWNlAHg="), 502, "5.5.1", "AUTH on MX")
s.starttls(context=CTX)
code, text = s.ehlo("client.test")
assert code == 250 and "starttls" not in s.esmtp_features and "auth" not in s.esmtp_features, text
s.quit()

t = smtplib.SMTP("127.0.0.1", SUB, timeout=30)
code, text = t.ehlo("client.test")
assert "starttls" in t.esmtp_features and "auth" not in t.esmtp_features, ("587 before TLS", text)
want(t.docmd("AUTH", "PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHg="), 538, "5.7.11", "AUTH before STARTTLS")
t.starttls(context=CTX)
code, text = t.ehlo("client.test")
assert "starttls" not in t.esmtp_features, ("587 after TLS still offers STARTTLS", text)
assert t.esmtp_features.get("auth", "").split() == ["PLAIN", "LOGIN"], ("587 after TLS", text)
t.quit()

u = smtplib.SMTP_SSL("127.0.0.1", SUBS, context=CTX, timeout=30)
code, text = u.ehlo("client.test")
assert u.esmtp_features.get("auth", "").split() == ["PLAIN", "LOGIN"], ("465", text)
assert "starttls" not in u.esmtp_features, ("465 offers STARTTLS inside TLS", text)
u.quit()
"#,
    );
}

#[tokio::test]
async fn auth_plain_and_login_succeed_and_fail_with_535() {
    let server = common::Server::start("example.com");
    server.add_account("alice@example.com", PW);
    python(
        &server,
        r#"
def auth(conn, mech, user, pw, initial=True):
    conn.user, conn.password = user, pw
    fn = {"PLAIN": conn.auth_plain, "LOGIN": conn.auth_login}[mech]
    try:
        return conn.auth(mech, fn, initial_response_ok=initial)
    except smtplib.SMTPAuthenticationError as e:
        return (e.smtp_code, e.smtp_error)

for mech, initial in [("PLAIN", True), ("PLAIN", False), ("LOGIN", True), ("LOGIN", False)]:
    s = sub()
    want(auth(s, mech, "alice@example.com", "alice-password-1", initial), 235, "2.7.0", f"{mech} initial={initial}")
    want(s.docmd("AUTH", "PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHg="), 503, "5.5.1", "second AUTH")
    send(s, "alice@example.com", ["alice@example.com"], f"Subject: {mech} {initial}\r\n\r\nx\r\n".encode())
    s.quit()

s = subs()
want(auth(s, "PLAIN", "alice@example.com", "alice-password-1"), 235, "2.7.0", "PLAIN on 465")
send(s, "alice@example.com", ["alice@example.com"], b"Subject: implicit TLS\r\n\r\nx\r\n")
s.quit()

# Wrong password and unknown user get the same answer.
s = sub()
want(auth(s, "PLAIN", "alice@example.com", "wrong-password"), 535, "5.7.8", "PLAIN wrong password")
want(auth(s, "LOGIN", "nobody@example.com", "alice-password-1"), 535, "5.7.8", "LOGIN unknown user")
want(s.mail("alice@example.com"), 530, "5.7.0", "MAIL after failed AUTH")
s.quit()
"#,
    );
    let msgs = common::inbox(&server.store(), "alice@example.com").await;
    assert_eq!(msgs.len(), 5, "four 587 logins and one 465 login sent");
    assert!(
        msgs.iter().all(|m| text(m).contains("with ESMTPSA")
            && text(m).contains("authenticated as alice@example.com")),
        "{:?}",
        msgs.iter().map(|m| text(m)).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn submission_sender_must_be_owned_or_an_alias_of_the_user() {
    let server = common::Server::start("example.com");
    server.add_account("alice@example.com", PW);
    server.add_account("bob@example.com", "bob-password-12");
    admin(
        &server,
        &[
            "alias",
            "add",
            "sales@example.com",
            "alice@example.com",
            "bob@example.com",
        ],
    );
    admin(
        &server,
        &["domain", "catchall", "example.com", "alice@example.com"],
    );
    python(
        &server,
        r#"
# Plaintext 587, and TLS without AUTH: no transaction.
p = smtplib.SMTP("127.0.0.1", SUB, timeout=30); p.ehlo("client.test")
want(p.mail("alice@example.com"), 530, "5.7.0", "MAIL on 587 before TLS")
p.quit()
s = sub()
want(s.mail("alice@example.com"), 530, "5.7.0", "MAIL before AUTH")
s.login("alice@example.com", "alice-password-1")
for frm in ["bob@example.com", "", "random@example.com", "alice@far.test", "postmaster@example.com"]:
    want(s.mail(frm), 553, "5.7.1", f"MAIL FROM <{frm}> as alice")
# An alias alice receives through, and her own address with a tag, in other case.
send(s, "sales@example.com", ["bob@example.com"], b"Subject: from the sales alias\r\n\r\nx\r\n")
send(s, "Alice+News@Example.com", ["bob@example.com"], b"Subject: tagged sender\r\n\r\nx\r\n")
s.quit()
"#,
    );
    let msgs = common::inbox(&server.store(), "bob@example.com").await;
    assert_eq!(msgs.len(), 2);
    assert!(
        text(&msgs[0]).starts_with("Return-Path: <sales@example.com>\r\n"),
        "{}",
        text(&msgs[0])
    );
    assert!(
        text(&msgs[1]).starts_with("Return-Path: <Alice+News@Example.com>\r\n"),
        "{}",
        text(&msgs[1])
    );
}

#[tokio::test]
async fn declared_and_actual_size_over_the_limit_get_552() {
    let server = common::Server::start_with("example.com", "[limits]\nmax_message_size = 10000\n");
    server.add_account("alice@example.com", PW);
    python(
        &server,
        r#"
s = mx()
assert s.esmtp_features["size"] == "10000", s.esmtp_features
want(s.mail("x@far.test", ["SIZE=10001"]), 552, "5.3.4", "declared SIZE over the limit")
# Declared small, sent big: refused at the end of data, and the session goes on.
want(s.mail("x@far.test", ["SIZE=5000"]), 250, "2.1.0", "MAIL SIZE=5000")
want(s.rcpt("alice@example.com"), 250, "2.1.5", "RCPT")
big = b"Subject: too big\r\n\r\n" + (b"0123456789" * 9 + b"\r\n") * 100
want(data(s, big * 2), 552, "5.3.4", "20 KB message")
# Also over the limit, with no SIZE declared.
want(s.mail("x@far.test"), 250, "2.1.0", "MAIL after 552")
want(s.rcpt("alice@example.com"), 250, "2.1.5", "RCPT")
want(data(s, big + b"x" * 900 + b"\r\n"), 552, "5.3.4", "10.9 KB message")
send(s, "x@far.test", ["alice@example.com"], b"Subject: small enough\r\n\r\n" + b"y" * 900 + b"\r\n")
s.quit()
"#,
    );
    let msgs = common::inbox(&server.store(), "alice@example.com").await;
    assert_eq!(msgs.len(), 1, "only the small message is stored");
    assert!(text(&msgs[0]).contains("Subject: small enough\r\n"));
}

#[tokio::test]
async fn recipients_past_max_recipients_get_452() {
    let server = common::Server::start_with("example.com", "[limits]\nmax_recipients = 3\n");
    for u in ["a1", "a2", "a3", "a4"] {
        server.add_account(&format!("{u}@example.com"), PW);
    }
    python(
        &server,
        r#"
s = mx()
want(s.mail("x@far.test"), 250, "2.1.0", "MAIL")
for r in ["a1@example.com", "a2@example.com", "a3@example.com"]:
    want(s.rcpt(r), 250, "2.1.5", r)
want(s.rcpt("a4@example.com"), 452, "4.5.3", "fourth recipient")
want(data(s, b"Subject: three of four\r\n\r\nx\r\n"), 250, "2.0.0", "end of data")
# The client sends the rest in a new transaction (RFC 5321 4.5.3.1.10).
send(s, "x@far.test", ["a4@example.com"], b"Subject: the fourth\r\n\r\nx\r\n")
s.quit()
"#,
    );
    let store = server.store();
    for u in ["a1", "a2", "a3"] {
        let m = common::inbox(&store, &format!("{u}@example.com")).await;
        assert_eq!(m.len(), 1, "{u}");
        assert!(text(&m[0]).contains("Subject: three of four"));
    }
    let m = common::inbox(&store, "a4@example.com").await;
    assert_eq!(m.len(), 1);
    assert!(text(&m[0]).contains("Subject: the fourth"));
}

#[tokio::test]
async fn smtputf8_addresses_and_utf8_headers_are_stored_intact() {
    let server = common::Server::start("example.com");
    server.add_account("josé@example.com", "jose-password-1");
    server.add_account("alice@example.com", PW);
    let dir = server.dir.path().to_path_buf();
    python(
        &server,
        &format!(
            r#"
out = {dir:?}
s = mx()
assert "smtputf8" in s.esmtp_features and "8bitmime" in s.esmtp_features
# Without SMTPUTF8 a UTF-8 address is refused (RFC 6531 3.4).
s.command_encoding = "utf-8"
want(s.docmd("MAIL", "FROM:<rené@far.test>"), 553, "5.6.7", "UTF-8 sender without SMTPUTF8")
s.command_encoding = "ascii"
m1 = "From: René <rené@far.test>\r\nTo: José <josé@example.com>\r\nSubject: Café ☕ résumé\r\n\r\nBonjour José — ça va ?\r\n".encode()
send(s, "rené@far.test", ["josé@example.com"], m1, ["SMTPUTF8", "BODY=8BITMIME"])
# The local part is matched case-insensitively, Unicode included.
send(s, "rené@far.test", ["JOSÉ@example.com"], m1, ["SMTPUTF8", "BODY=8BITMIME"])
# UTF-8 in headers and body to an ASCII account, 8BITMIME only.
m2 = "From: Zoë <zoe@far.test>\r\nSubject: Grüße aus Köln\r\n\r\nÜber 8 Bits.\r\n".encode()
send(s, "zoe@far.test", ["alice@example.com"], m2, ["BODY=8BITMIME"])
s.quit()
open(out + "/m1", "wb").write(m1); open(out + "/m2", "wb").write(m2)
"#
        ),
    );
    let m1 = std::fs::read(dir.join("m1")).expect("m1");
    let m2 = std::fs::read(dir.join("m2")).expect("m2");
    let store = server.store();
    let jose = common::inbox(&store, "josé@example.com").await;
    assert_eq!(jose.len(), 2, "both messages reached josé");
    for m in &jose {
        assert!(
            text(m).starts_with("Return-Path: <rené@far.test>\r\nX-Spam-Status: ")
                && text(m).contains("\r\nX-Spam-Score: 0.0\r\nReceived: from client.test"),
            "{}",
            text(m)
        );
        assert!(text(m).contains("with UTF8ESMTP"), "{}", text(m));
        assert_eq!(common::strip_trace(m), &m1[..], "{}", text(m));
    }
    let alice = common::inbox(&store, "alice@example.com").await;
    assert_eq!(alice.len(), 1);
    assert_eq!(
        common::strip_trace(&alice[0]),
        &m2[..],
        "{}",
        text(&alice[0])
    );
}

#[tokio::test]
async fn recipient_resolution_plus_catchall_alias_disabled_unknown() {
    let server = common::Server::start("example.com");
    server.add_account("alice@example.com", PW);
    server.add_account("bob@example.com", "bob-password-12");
    server.add_account("carol@example.com", "carol-password-1");
    admin(&server, &["account", "disable", "carol@example.com"]);
    admin(
        &server,
        &[
            "alias",
            "add",
            "team@example.com",
            "alice@example.com",
            "bob@example.com",
        ],
    );
    admin(&server, &["domain", "add", "other.test"]);
    admin(
        &server,
        &["domain", "catchall", "other.test", "alice@example.com"],
    );
    python(
        &server,
        r#"
s = mx()
want(s.mail("x@far.test"), 250, "2.1.0", "MAIL")
want(s.rcpt("nobody@example.com"), 550, "5.1.1", "unknown user")
want(s.rcpt("carol@example.com"), 550, "5.2.1", "disabled account")
want(s.rcpt("someone@elsewhere.test"), 554, "5.7.1", "foreign domain")
s.rset()
send(s, "x@far.test", ["alice+tag@example.com"], b"Subject: plus\r\n\r\nx\r\n")
send(s, "x@far.test", ["whoever@other.test"], b"Subject: catch-all\r\n\r\nx\r\n")
# Over 64 KiB, so the blob is a file: the alias must store it once for both accounts.
big = b"Subject: to the team\r\n\r\n" + (b"z" * 998 + b"\r\n") * 80
send(s, "x@far.test", ["team@example.com"], big)
s.quit()
"#,
    );
    let store = server.store();
    let alice = common::inbox(&store, "alice@example.com").await;
    assert_eq!(alice.len(), 3, "plus, catch-all, alias");
    assert!(
        text(&alice[0]).contains("\tfor <alice+tag@example.com>")
            && text(&alice[0]).contains("Subject: plus"),
        "{}",
        text(&alice[0])
    );
    assert!(text(&alice[1]).contains("Subject: catch-all"));
    assert!(text(&alice[2]).contains("Subject: to the team"));
    let bob = common::inbox(&store, "bob@example.com").await;
    assert_eq!(bob.len(), 1);
    assert_eq!(bob[0], alice[2]);
    let (a, b) = (
        inbox_blobs(&store, "alice@example.com").await,
        inbox_blobs(&store, "bob@example.com").await,
    );
    assert_eq!(a[2], b[0], "one blob for both copies");
    assert_eq!(
        blob_files(server.data()),
        vec![a[2].to_hex()],
        "exactly one blob file on disk"
    );
    assert!(
        common::inbox(&store, "carol@example.com").await.is_empty(),
        "disabled account got nothing"
    );
}

#[tokio::test]
async fn over_quota_gets_452_at_end_of_data_and_at_rcpt() {
    let server = common::Server::start("example.com");
    server.add_account("alice@example.com", PW);
    server.add_account("bob@example.com", "bob-password-12");
    admin(&server, &["account", "quota", "alice@example.com", "2k"]);
    let script = r#"
s = mx()
want(s.mail("x@far.test"), 250, "2.1.0", "MAIL")
want(s.rcpt("alice@example.com"), 250, "2.1.5", "RCPT while under quota")
want(s.rcpt("bob@example.com"), 250, "2.1.5", "RCPT bob")
# 4 KB does not fit in 2 KiB: outside LMTP the whole transaction is refused, temporarily.
want(data(s, b"Subject: too big for the quota\r\n\r\n" + (b"q" * 98 + b"\r\n") * 40), 452, "4.2.2", "over quota at end of data")
send(s, "x@far.test", ["alice@example.com"], b"Subject: fits\r\n\r\n" + b"f" * 600 + b"\r\n")
s.quit()
"#;
    python(&server, script);
    admin(&server, &["account", "quota", "alice@example.com", "500"]);
    python(
        &server,
        r#"
s = mx()
want(s.mail("x@far.test"), 250, "2.1.0", "MAIL")
want(s.rcpt("alice@example.com"), 452, "4.2.2", "RCPT when already over quota")
want(s.rcpt("bob@example.com"), 250, "2.1.5", "RCPT bob")
want(data(s, b"Subject: for bob\r\n\r\nx\r\n"), 250, "2.0.0", "bob's copy")
s.quit()
"#,
    );
    let store = server.store();
    let alice = common::inbox(&store, "alice@example.com").await;
    assert_eq!(alice.len(), 1);
    assert!(text(&alice[0]).contains("Subject: fits"));
    let bob = common::inbox(&store, "bob@example.com").await;
    assert_eq!(
        bob.len(),
        1,
        "the refused transaction stored nothing for bob"
    );
    assert!(text(&bob[0]).contains("Subject: for bob"));
}

#[tokio::test]
async fn rset_noop_vrfy_help_expn_quit() {
    let server = common::Server::start("example.com");
    server.add_account("alice@example.com", PW);
    python(
        &server,
        r#"
s = mx()
want(s.noop(), 250, "2.0.0", "NOOP")
# RFC 5321 3.5.3: 252 whether or not the user exists, so VRFY discloses nothing.
want(s.verify("alice@example.com"), 252, "2.5.0", "VRFY existing")
want(s.verify("nobody@example.com"), 252, "2.5.0", "VRFY unknown")
want(s.expn("staff"), 502, "5.5.1", "EXPN")
text = s.help()  # smtplib returns only the text of the 214
assert b"EHLO" in text and b"MAIL" in text, text
want(s.docmd("HELP"), 214, "2.0.0", "HELP")
want(s.mail("x@far.test"), 250, "2.1.0", "MAIL")
want(s.mail("y@far.test"), 503, "5.5.1", "nested MAIL")
want(s.rcpt("alice@example.com"), 250, "2.1.5", "RCPT")
want(s.rset(), 250, "2.0.0", "RSET")
want(s.rcpt("alice@example.com"), 503, "5.5.1", "RCPT after RSET")
want(s.docmd("DATA"), 503, "5.5.1", "DATA after RSET")
send(s, "x@far.test", ["alice@example.com"], b"Subject: after rset\r\n\r\nx\r\n")
want(s.docmd("FOO"), 500, "5.5.2", "unknown command")
want(s.docmd("QUIT"), 221, "2.0.0", "QUIT")
try:
    s.noop()
    raise SystemExit("connection still open after QUIT")
except (smtplib.SMTPServerDisconnected, ConnectionError):
    pass

# HELO (not EHLO): ESMTP parameters are refused.
h = smtplib.SMTP("127.0.0.1", MX, timeout=30)
want(h.helo("old.client.test"), 250, None, "HELO")
want(h.docmd("MAIL", "FROM:<x@far.test> SIZE=100"), 555, "5.5.4", "MAIL parameter after HELO")
h.quit()
"#,
    );
    let msgs = common::inbox(&server.store(), "alice@example.com").await;
    assert_eq!(msgs.len(), 1, "only the message sent after RSET");
    assert!(text(&msgs[0]).contains("Subject: after rset"));
}
