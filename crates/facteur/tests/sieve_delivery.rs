//! Sieve at delivery (issue 14), end to end: scripts stored with `facteur sieve`, mail sent with
//! Python's smtplib (port 25 and LMTP), and where it landed read back with imaplib (mailboxes,
//! flags), the outbound queue with `facteur queue list --json`.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::Server;

const PW: &str = "sieve-password-1";

fn put_script(server: &Server, target: &str, name: &str, text: &str) {
    let mut c = Command::new(common::BIN)
        .arg("--data")
        .arg(server.data())
        .args(["sieve", "put", target, name, "-", "--activate"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run facteur");
    c.stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write script");
    let out = c.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "sieve put {target} {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn python(server: &Server, body: &str) {
    let prelude = format!(
        r#"
import imaplib, smtplib, email, ssl
CTX = ssl.create_default_context(); CTX.check_hostname = False; CTX.verify_mode = ssl.CERT_NONE
IMAP = {imap}
SMTP = {smtp}
LMTP = {lmtp}
PW = "{PW}"
def send(frm, to, msg, port=SMTP):
    s = smtplib.SMTP("127.0.0.1", port, timeout=30)
    try:
        s.sendmail(frm, to, msg)
        return (250, "")
    except smtplib.SMTPDataError as e:
        return (e.smtp_code, e.smtp_error.decode())
    except smtplib.SMTPRecipientsRefused as e:
        return (550, str(e))
    finally:
        try: s.quit()
        except Exception: pass
def lmtp(frm, to, msg):
    s = smtplib.LMTP("127.0.0.1", LMTP, timeout=30)
    s.ehlo_or_helo_if_needed()
    (code, _) = s.mail(frm)
    assert code == 250
    for t in to:
        (code, m) = s.rcpt(t)
        assert code == 250, (code, m)
    s.putcmd("data")
    (code, _) = s.getreply()
    assert code == 354
    from smtplib import quotedata
    q = quotedata(msg)
    if not q.endswith("\r\n"): q += "\r\n"
    s.send((q + ".\r\n").encode())
    replies = [s.getreply() for _ in to]
    s.quit()
    return [(c, m.decode()) for (c, m) in replies]
def folder(user, name):
    """(count, [flags of each message], [raw messages]) of a mailbox, or None when missing."""
    c = imaplib.IMAP4("127.0.0.1", IMAP)
    c.starttls(ssl_context=CTX)
    c.login(user, PW)
    typ, data = c.select('"' + name + '"', readonly=True)
    if typ != "OK":
        c.logout()
        return None
    n = int(data[0])
    flags, raws = [], []
    if n:
        typ, data = c.fetch("1:*", "(FLAGS BODY.PEEK[])")
        for item in data:
            if isinstance(item, tuple):
                flags.append(item[0].decode())
                raws.append(item[1].decode(errors="replace"))
    c.logout()
    return (n, flags, raws)
def msg(subject, body="Hello", extra=""):
    return f"From: Sender <x@far.test>\r\nTo: bob@example.test\r\nSubject: {{subject}}\r\n{{extra}}Message-ID: <{{abs(hash(subject + body + extra))}}@far.test>\r\n\r\n{{body}}\r\n"
"#,
        imap = server.addr("imap").port(),
        smtp = server.addr("smtp").port(),
        lmtp = server.addr("lmtp").port(),
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!("{prelude}\n{body}\nprint('python ok')\n"))
        .output()
        .expect("python3 is needed for these tests (scripts/test.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("python ok"), "{text}");
}

const BOB: &str = r#"require ["fileinto", "reject", "envelope", "body", "imap4flags", "mailbox", "spamtest"];
if header :contains "subject" "invoice" { fileinto :create :flags "\\Flagged" "Invoices"; stop; }
if envelope :is "from" "spam@bad.test" { discard; stop; }
if body :contains "rejectme" { reject "No thanks, said bob"; stop; }
if header :contains "subject" "missing" { fileinto "Nowhere"; stop; }
if header :contains "subject" "domain" { fileinto :create "Bob-first"; }
"#;

const DOMAIN: &str = r#"require ["fileinto", "mailbox"];
if header :is "X-Company" "urgent" { fileinto :create "Urgent"; }
"#;

/// fileinto (with :create, flags), discard, reject at SMTP time and per recipient under LMTP,
/// a DSN when only some recipients refuse, a missing mailbox and a failing script falling back
/// to INBOX, and the domain's script filing before the user's.
#[test]
fn fileinto_discard_reject_fallback_and_domain_order() {
    let server = Server::start("example.test");
    for a in ["bob", "carol", "dave"] {
        server.add_account(&format!("{a}@example.test"), PW);
    }
    put_script(&server, "bob@example.test", "main", BOB);
    put_script(&server, "example.test", "company", DOMAIN);
    // Compiles, fails at run time: the included script does not exist.
    put_script(
        &server,
        "carol@example.test",
        "broken",
        "require [\"include\", \"fileinto\"];\ninclude :personal \"nope\";\nfileinto \"Never\";\n",
    );
    python(
        &server,
        r#"
assert send("x@far.test", ["bob@example.test"], msg("Your invoice 42"))[0] == 250
assert send("spam@bad.test", ["bob@example.test"], msg("Buy now"))[0] == 250
code, text = send("x@far.test", ["bob@example.test"], msg("Hi", body="please rejectme"))
assert code == 550 and "No thanks, said bob" in text, (code, text)
assert send("x@far.test", ["bob@example.test"], msg("missing folder"))[0] == 250
assert send("x@far.test", ["bob@example.test"], msg("domain test", extra="X-Company: urgent\r\n"))[0] == 250
assert send("x@far.test", ["carol@example.test"], msg("to carol"))[0] == 250
# Only bob refuses: the message is accepted for carol, and the sender gets a DSN.
assert send("dave@example.test", ["bob@example.test", "carol@example.test"], msg("mixed", body="rejectme"))[0] == 250
# LMTP answers each recipient: bob refuses, carol accepts.
r = lmtp("x@far.test", ["bob@example.test", "carol@example.test"], msg("over lmtp", body="rejectme"))
assert r[0][0] == 550 and "No thanks" in r[0][1], r
assert r[1][0] == 250, r

n, flags, raws = folder("bob@example.test", "Invoices")
assert n == 1 and "\\Flagged" in flags[0] and "invoice 42" in raws[0], (n, flags)
n, flags, raws = folder("bob@example.test", "INBOX")
subjects = [email.message_from_string(r)["Subject"] for r in raws]
assert subjects == ["missing folder"], subjects
assert folder("bob@example.test", "Nowhere") is None
# The domain's script filed first; bob's never ran for it.
n, _, raws = folder("bob@example.test", "Urgent")
assert n == 1 and "domain test" in raws[0]
assert folder("bob@example.test", "Bob-first") is None
n, _, raws = folder("carol@example.test", "INBOX")
subjects = [email.message_from_string(r)["Subject"] for r in raws]
assert subjects == ["to carol", "mixed", "over lmtp"], subjects
n, _, raws = folder("dave@example.test", "INBOX")
assert n == 1 and "No thanks, said bob" in raws[0] and "multipart/report" in raws[0], raws
"#,
    );
    let log_check = server.admin(&["sieve", "list", "carol@example.test"]);
    assert!(String::from_utf8_lossy(&log_check.stdout).contains("broken\t"));
}

/// `facteur sieve check` names the line and column of an error (exit status 2); `facteur sieve
/// test` prints the actions a script would take; the CLI refuses to delete the active script.
#[test]
fn check_and_test_commands() {
    let server = Server::start("example.test");
    server.add_account("bob@example.test", PW);
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.sieve");
    std::fs::write(
        &bad,
        "require \"fileinto\";\nif true {\n  fileinto \"x\"\n}\n",
    )
    .expect("write");
    let out = server.admin(&["sieve", "check", bad.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 4, column"), "{err}");
    let script = dir.path().join("good.sieve");
    std::fs::write(
        &script,
        "require [\"fileinto\", \"imap4flags\"];\nif header :contains \"subject\" \"hi\" { fileinto :flags \"\\\\Seen\" \"Greetings\"; }\nredirect \"x@far.test\";\n",
    )
    .expect("write");
    let message = dir.path().join("m.eml");
    std::fs::write(
        &message,
        "From: a@far.test\r\nSubject: hi there\r\n\r\nbody\r\n",
    )
    .expect("write");
    let out = server.admin(&[
        "sieve",
        "test",
        script.to_str().expect("path"),
        message.to_str().expect("path"),
        "--to",
        "bob@example.test",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        vec!["fileinto \"Greetings\" flags \\Seen", "redirect x@far.test"],
        "{text}"
    );
    let out = server.admin(&[
        "sieve",
        "put",
        "bob@example.test",
        "main",
        script.to_str().expect("path"),
        "--activate",
    ]);
    assert!(out.status.success());
    let out = server.admin(&["sieve", "delete", "bob@example.test", "main"]);
    assert_eq!(out.status.code(), Some(1), "the active script stays");
    let out = server.admin(&["sieve", "get", "bob@example.test"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Greetings"));
}

/// Vacation answers once per sender, never to a list or an auto-reply, with
/// `Auto-Submitted: auto-replied` and the null sender; redirect :copy to a local account, and a
/// plain redirect to a remote address queued with an SRS sender.
#[test]
fn vacation_once_and_redirects() {
    let server = Server::start("example.test");
    for a in ["bob", "carol", "dave"] {
        server.add_account(&format!("{a}@example.test"), PW);
    }
    put_script(
        &server,
        "bob@example.test",
        "away",
        r#"require ["vacation", "copy"];
vacation :days 2 :subject "Away" "I am away until Monday.";
redirect :copy "carol@example.test";
"#,
    );
    put_script(
        &server,
        "carol@example.test",
        "fwd",
        "redirect \"someone@remote.test\";\n",
    );
    python(
        &server,
        r#"
assert send("dave@example.test", ["bob@example.test"], msg("first"))[0] == 250
assert send("dave@example.test", ["bob@example.test"], msg("second"))[0] == 250
assert send("dave@example.test", ["bob@example.test"], msg("news", extra="List-Id: <news.example.test>\r\n"))[0] == 250
assert send("dave@example.test", ["bob@example.test"], msg("auto", extra="Auto-Submitted: auto-replied\r\n"))[0] == 250
n, _, raws = folder("dave@example.test", "INBOX")
assert n == 1, n
r = raws[0]
assert "Auto-Submitted: auto-replied" in r and "I am away until Monday." in r and "Subject: Away" in r, r
assert r.startswith("Return-Path: <>"), r[:80]
n, _, raws = folder("bob@example.test", "INBOX")
assert n == 4, n
# carol got bob's :copy redirects, not run through her own script (no second forward).
n, _, raws = folder("carol@example.test", "INBOX")
assert n == 4 and all("Delivered-To: bob@example.test" in r for r in raws), n
# Sent to carol directly from outside: forwarded to the remote address.
assert send("alice@far.test", ["carol@example.test"], msg("for remote"))[0] == 250
n, _, _ = folder("carol@example.test", "INBOX")
assert n == 4, n
"#,
    );
    let out = server.admin(&["--json", "queue", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let entries: serde_json::Value = serde_json::from_str(&text).expect("queue list json");
    let forwarded: Vec<_> = entries
        .as_array()
        .expect("array")
        .iter()
        .filter(|e| e["recipients"][0]["address"] == "someone@remote.test")
        .collect();
    assert_eq!(forwarded.len(), 1, "{text}");
    let sender = forwarded[0]["sender"].as_str().expect("sender");
    assert!(sender.starts_with("SRS0="), "{sender}");
}
