//! IMAP SORT and THREAD (RFC 5256, RFC 5957 SORT=DISPLAY) end to end with Python's imaplib
//! against the real binary: messages appended over IMAP and one delivered over SMTP, sorted and
//! threaded by sequence number and by UID, with the saved search result as criterion and an
//! unsupported charset refused.

mod common;

use std::process::Command;

use common::Server;

const USER: &str = "alice@example.com";
const PASS: &str = "alice-password-1";

/// Runs a Python script with the IMAP and SMTP ports and the credentials prepended.
fn python(server: &Server, body: &str) -> String {
    let prelude = format!(
        r#"
import imaplib, ssl, smtplib, time
IMAP = {imap}
SMTP = {smtp}
USER = "{USER}"
PASS = "{PASS}"
CTX = ssl.create_default_context(); CTX.check_hostname = False; CTX.verify_mode = ssl.CERT_NONE
def login():
    c = imaplib.IMAP4("127.0.0.1", IMAP)
    c.starttls(ssl_context=CTX)
    c.login(USER, PASS)
    return c
def ok(r):
    typ, data = r
    assert typ == "OK", (typ, data)
    return data
"#,
        imap = server.addr("imap").port(),
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
fn sort_and_thread_with_imaplib() {
    let s = Server::start("example.com");
    s.add_account(USER, PASS);
    python(
        &s,
        r#"
c = login()
typ, data = c.capability()
caps = data[0].split()
for cap in (b"SORT", b"SORT=DISPLAY", b"THREAD=ORDEREDSUBJECT", b"THREAD=REFERENCES"):
    assert cap in caps, data

def msg(frm, subject, date, mid, extra=""):
    return ("From: %s\r\nTo: alice@example.com\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: %s\r\n%s\r\nbody\r\n"
            % (frm, subject, date, mid, extra)).encode()

# (INTERNALDATE, message): arrival order differs from the Date: order.
msgs = [
    (1704300000, msg("Carol <carol@far.test>", "Lunch", "Wed, 3 Jan 2024 09:00:00 +0000", "<l1@far.test>")),
    (1704200000, msg("alice@example.com", "Re: Lunch", "Wed, 3 Jan 2024 10:00:00 +0000", "<l2@example.com>",
                     "In-Reply-To: <l1@far.test>\r\n")),
    (1704100000, msg("Bob <bob@far.test>", "[team] Budget", "Mon, 1 Jan 2024 08:00:00 +0000", "<b1@far.test>")),
    (1704000000, msg("dave@far.test", "Fwd: Budget", "Tue, 2 Jan 2024 08:00:00 -0500", "<b2@far.test>")),
]
for when, m in msgs:
    typ, data = c.append("INBOX", None, imaplib.Time2Internaldate(when), m)
    assert typ == "OK", data
ok(c.select("INBOX"))

typ, data = c.sort("(DATE)", "UTF-8", "ALL")
assert typ == "OK" and data == [b"3 4 1 2"], (typ, data)
typ, data = c.sort("(ARRIVAL)", "UTF-8", "ALL")
assert data == [b"4 3 2 1"], data
typ, data = c.sort("(REVERSE FROM)", "US-ASCII", "ALL")
assert data == [b"4 1 3 2"], data
typ, data = c.sort("(SUBJECT DATE)", "UTF-8", "ALL")
assert data == [b"3 4 1 2"], data
typ, data = c.sort("(DISPLAYFROM)", "UTF-8", "ALL")
assert data == [b"2 3 1 4"], data
typ, data = c.sort("(DATE)", "UTF-8", "SUBJECT", "nothing-matches")
assert typ == "OK" and data in ([None], [b""]), (typ, data)

typ, data = c.thread("REFERENCES", "UTF-8", "ALL")
assert typ == "OK" and data == [b"(3 4)(1 2)"], (typ, data)
typ, data = c.thread("ORDEREDSUBJECT", "UTF-8", "ALL")
assert data == [b"(3 4)(1 2)"], data

# A charset the server does not have: NO with the supported ones (RFC 5256 §3).
typ, data = c.sort("(DATE)", "KOI8-R", "ALL")
assert typ == "NO" and b"BADCHARSET" in data[0], (typ, data)
typ, data = c.thread("REFERENCES", "ISO-8859-1", "ALL")
assert typ == "NO" and b"BADCHARSET" in data[0], (typ, data)

# UIDs differ from sequence numbers once the first message is gone.
ok(c.store("1", "+FLAGS.SILENT", "(\\Deleted)"))
ok(c.expunge())
typ, data = c.uid("SORT", "(DATE)", "UTF-8", "ALL")
assert typ == "OK" and data == [b"3 4 2"], (typ, data)
typ, data = c.sort("(DATE)", "UTF-8", "ALL")
assert data == [b"2 3 1"], data
typ, data = c.uid("THREAD", "REFERENCES", "UTF-8", "ALL")
assert data == [b"(3 4)(2)"], data

# A reply delivered over SMTP joins its thread.
m = smtplib.SMTP("127.0.0.1", SMTP)
m.sendmail("carol@far.test", [USER], msg("Carol <carol@far.test>", "Re: Lunch", "Wed, 3 Jan 2024 11:00:00 +0000",
           "<l3@far.test>", "References: <l1@far.test> <l2@example.com>\r\n"))
m.quit()
for _ in range(100):
    ok(c.noop())
    typ, data = c.search(None, "ALL")
    if len(data[0].split()) == 4:
        break
    time.sleep(0.1)
typ, data = c.uid("THREAD", "REFERENCES", "UTF-8", "ALL")
assert data == [b"(3 4)(2 5)"], data

# The saved result of SEARCH (RFC 5182) as the criteria.
typ, data = c._simple_command("SEARCH", "RETURN", "(SAVE)", "FROM", "carol")
assert typ == "OK", data
typ, data = c.uid("SORT", "(REVERSE DATE)", "UTF-8", "$")
assert data == [b"5"], data
c.logout()
"#,
    );
}
