//! IMAP and POP3 on the same account at once, with Python's imaplib, poplib and smtplib against
//! the real binary: a POP3 session's maildrop is the snapshot taken at login (a delivery during
//! the session does not change its list, RFC 1939 §8), IMAP flag changes do not disturb it, and
//! its DELE + QUIT reach an IMAP session that has the INBOX selected as EXPUNGE.

mod common;

use std::process::Command;

use common::Server;

fn python(server: &Server, body: &str) -> String {
    let prelude = format!(
        r#"
import imaplib, poplib, smtplib, ssl
CTX = ssl.create_default_context(); CTX.check_hostname = False; CTX.verify_mode = ssl.CERT_NONE
USER = "alice@example.com"
PASS = "alice-password-1"
def pop3():
    c = poplib.POP3_SSL("127.0.0.1", {pop3s}, context=CTX)
    c.user(USER); c.pass_(PASS)
    return c
def imap():
    c = imaplib.IMAP4_SSL("127.0.0.1", {imaps}, ssl_context=CTX)
    c.login(USER, PASS)
    return c
def deliver(subject, body):
    m = smtplib.SMTP("127.0.0.1", {smtp})
    m.sendmail("sender@far.test", [USER], ("Subject: %s\r\n\r\n%s\r\n" % (subject, body)).encode())
    m.quit()
def untagged(c, name):
    return c.untagged_responses.pop(name, [])
"#,
        pop3s = server.addr("pop3s").port(),
        imaps = server.addr("imaps").port(),
        smtp = server.addr("smtp").port(),
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!("{prelude}\n{body}\nprint('ok')"))
        .output()
        .expect("python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "python failed:\n{text}");
    text
}

#[test]
fn imap_and_pop3_on_one_account() {
    let s = Server::start_pop3("example.com", "");
    s.add_account("alice@example.com", "alice-password-1");
    python(
        &s,
        r#"
for i in (1, 2, 3):
    deliver("message %d" % i, "body %d" % i)
im = imap()
typ, data = im.select("INBOX")
assert typ == "OK" and data == [b"3"], data

p = pop3()
count, size = p.stat()
assert count == 3, count
uidl = p.uidl()[1]
listing = p.list()[1]
first = p.retr(1)[1]

# A delivery during the POP3 session: IMAP sees it, the POP3 maildrop does not change.
deliver("message 4", "body 4")
im.noop()
assert untagged(im, "EXISTS")[-1:] == [b"4"], im.untagged_responses
assert p.stat() == (count, size), p.stat()
assert p.list()[1] == listing
assert p.uidl()[1] == uidl
try:
    p.retr(4)
    raise SystemExit("RETR 4 answered for a message delivered after login")
except poplib.error_proto as e:
    assert e.args[0].startswith(b"-ERR"), e

# IMAP flag changes (including \Deleted without EXPUNGE) do not disturb POP3.
typ, _ = im.store("1:3", "+FLAGS", "(\\Seen \\Flagged)")
assert typ == "OK"
typ, _ = im.store("3", "+FLAGS", "(\\Deleted)")
assert typ == "OK"
assert p.stat() == (count, size), p.stat()
assert p.retr(1)[1] == first
assert p.uidl()[1] == uidl
typ, _ = im.store("3", "-FLAGS", "(\\Deleted)")
assert typ == "OK"

# DELE + QUIT in POP3: the IMAP session sees EXPUNGE of that message (sequence number 2).
p.dele(2)
im.noop()
assert untagged(im, "EXPUNGE") == [], "EXPUNGE before POP3's QUIT"
assert p.quit().startswith(b"+OK")
im.noop()
assert untagged(im, "EXPUNGE") == [b"2"], im.untagged_responses
typ, data = im.search(None, "ALL")
assert data == [b"1 2 3"], data
typ, data = im.fetch("1:3", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
subjects = [x[1] for x in data if isinstance(x, tuple)]
assert [b"message 1" in x for x in subjects] == [True, False, False], subjects
assert b"message 3" in subjects[1] and b"message 4" in subjects[2], subjects
# The flags set over IMAP survived POP3's UPDATE.
assert b"\\Flagged" in data[0][0] and b"\\Flagged" in data[2][0], data

# A new POP3 session sees the new message and not the deleted one.
p = pop3()
assert p.stat()[0] == 3, p.stat()
assert p.uidl()[1][0] == uidl[0] and p.uidl()[1][1].split()[1] == uidl[2].split()[1]
p.quit()
im.logout()
"#,
    );
}
