//! IMAP end to end with Python's imaplib (a client we did not write) against the real binary:
//! STARTTLS and implicit TLS logins, mailbox management, APPEND and FETCH of exact bytes,
//! ENVELOPE/BODYSTRUCTURE, flags seen from a second session, EXPUNGE, COPY/MOVE with COPYUID,
//! SEARCH, and an SMTP delivery announced during IDLE.

mod common;

use std::process::Command;

use common::Server;

/// The harness's config with IMAP listeners on free loopback ports.
fn imap_config(domain: &str) -> String {
    format!(
        "[server]\nhostname = \"mx.{domain}\"\nprimary_domain = \"{domain}\"\n\
         [listeners]\nsmtp = [\"127.0.0.1:0\"]\nsubmission = [\"127.0.0.1:0\"]\nsubmissions = [\"127.0.0.1:0\"]\n\
         lmtp = [\"127.0.0.1:0\"]\nimap = [\"127.0.0.1:0\"]\nimaps = [\"127.0.0.1:0\"]\npop3 = []\npop3s = []\n\
         [auth]\nargon2_memory_kib = 1024\nargon2_iterations = 1\nmin_password_score = 0\n\
         [smtp]\ninbound_auth = false\n\
         [dns]\nnameservers = [\"127.0.0.1:9\"]\n"
    )
}

fn start(domain: &str) -> Server {
    Server::start_config(domain, &imap_config(domain))
}

/// Runs a Python script with the IMAP/SMTP ports and credentials prepended as variables.
fn python(server: &Server, body: &str) -> String {
    let prelude = format!(
        r#"
import imaplib, ssl, smtplib, socket, re, time, base64
IMAP = {imap}
IMAPS = {imaps}
SMTP = {smtp}
USER = "alice@example.com"
PASS = "alice-password-1"
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

fn server_with_alice() -> Server {
    let s = start("example.com");
    s.add_account("alice@example.com", "alice-password-1");
    s
}

#[test]
fn login_over_starttls_and_implicit_tls() {
    let s = server_with_alice();
    python(
        &s,
        r#"
c = imaplib.IMAP4("127.0.0.1", IMAP)
caps = c.capabilities
assert "STARTTLS" in caps and "LOGINDISABLED" in caps and "AUTH=PLAIN" not in caps, caps
try:
    c.login(USER, PASS)
    raise SystemExit("LOGIN accepted before TLS")
except imaplib.IMAP4.error as e:
    assert "PRIVACYREQUIRED" in str(e), e
c.starttls(ssl_context=CTX)
assert "AUTH=PLAIN" in c.capabilities and "SASL-IR" in c.capabilities and "LOGINDISABLED" not in c.capabilities, c.capabilities
try:
    c.login(USER, "wrong-password")
    raise SystemExit("bad password accepted")
except imaplib.IMAP4.error as e:
    assert "AUTHENTICATIONFAILED" in str(e), e
c.login(USER, PASS)
typ, data = c.capability()
assert b"IDLE" in data[0] and b"MOVE" in data[0] and b"UIDPLUS" in data[0], data
ok(c.noop())
typ, data = c.xatom("ID", "NIL")
c.logout()

d = imaplib.IMAP4_SSL("127.0.0.1", IMAPS, ssl_context=CTX)
assert "AUTH=PLAIN" in d.capabilities, d.capabilities
d.authenticate("PLAIN", lambda _: ("\0%s\0%s" % (USER, PASS)).encode())
ok(d.select("INBOX"))
d.logout()

# SASL-IR: the initial response on the command line.
e = imaplib.IMAP4_SSL("127.0.0.1", IMAPS, ssl_context=CTX)
ir = base64.b64encode(("\0%s\0%s" % (USER, PASS)).encode()).decode()
typ, data = e._simple_command("AUTHENTICATE", "PLAIN", ir)
assert typ == "OK", (typ, data)
e.state = "AUTH"
ok(e.select("INBOX"))
e.logout()
"#,
    );
}

#[test]
fn mailbox_management() {
    let s = server_with_alice();
    python(
        &s,
        r#"
c = login()
typ, data = c.list('""', "*")
names = [l.decode() for l in data]
assert any(l.endswith('"INBOX"') or l.endswith(" INBOX") for l in names), names
assert any("\\Sent" in l for l in names), names
ok(c.create("Projects/2024"))
typ, data = c.list('""', "Projects/%")
assert len(data) == 1 and b"Projects/2024" in data[0] and b"\\HasNoChildren" in data[0], data
typ, data = c.list('""', "%")
proj = [l for l in data if b'Projects' in l]
assert proj and b"\\HasChildren" in proj[0], data
ok(c.rename("Projects/2024", "Projects/2025"))
typ, data = c.list('""', "Projects/*")
assert b"Projects/2025" in data[0], data
ok(c.subscribe("Projects/2025"))
typ, data = c.lsub('""', "*")
assert any(b"Projects/2025" in l for l in data), data
ok(c.unsubscribe("Projects/2025"))
ok(c.delete("Projects/2025"))
typ, data = c.list('""', "Projects/*")
assert data == [None] or data == [], data
typ, data = c.delete("INBOX")
assert typ == "NO", data
typ, data = c.status("INBOX", "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE HIGHESTMODSEQ)")
assert typ == "OK" and b"MESSAGES 0" in data[0] and b"HIGHESTMODSEQ" in data[0], data
typ, data = c.select("Nope")
assert typ == "NO", data
typ, data = c.select("INBOX")
assert typ == "OK" and data == [b"0"], data
assert c.untagged_responses.get("UIDVALIDITY"), c.untagged_responses
typ, data = c.select("INBOX", readonly=True)
assert typ == "OK" and c.untagged_responses.get("READ-ONLY") is not None, c.untagged_responses
typ, data = c.xatom("NAMESPACE")
ok(c.unselect()) if hasattr(c, "unselect") else None
c.logout()
"#,
    );
}

const MULTIPART: &str = "From: Bob <bob@far.test>\r\nTo: alice@example.com\r\nSubject: Report\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <r1@far.test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello Alice, the quarterly numbers.\r\n--XX\r\nContent-Type: application/pdf; name=\"r.pdf\"\r\nContent-Disposition: attachment; filename=\"r.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--XX--\r\n";

#[test]
fn append_then_fetch_exact_bytes_and_structure() {
    let s = server_with_alice();
    let script = format!(
        r#"
MSG = {msg:?}.encode()
c = login()
typ, data = c.append("INBOX", "(\\Flagged)", imaplib.Time2Internaldate(1704103200), MSG)
assert typ == "OK" and b"APPENDUID" in data[0], data
ok(c.select("INBOX"))
typ, data = c.fetch("1", "(BODY.PEEK[] RFC822.SIZE FLAGS INTERNALDATE UID)")
assert data[0][1] == MSG, data
meta = data[0][0] + data[1]
assert b"RFC822.SIZE %d" % len(MSG) in meta and b"\\Flagged" in meta and b"\\Seen" not in meta, meta
assert b"01-Jan-2024 10:00:00 +0000" in meta, meta
typ, data = c.fetch("1", "(ENVELOPE)")
env = data[0]
assert b'"Report"' in env and b'("Bob" NIL "bob" "far.test")' in env and b"<r1@far.test>" in env, env
typ, data = c.fetch("1", "(BODYSTRUCTURE)")
bs = data[0]
assert b'("text" "plain" ("charset" "utf-8") NIL NIL "7BIT"' in bs, bs
assert b'"mixed" ("boundary" "XX")' in bs and b'("attachment" ("filename" "r.pdf"))' in bs, bs
typ, data = c.fetch("1", "(BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT]<0.4>)")
items = data[0]
flat = b"".join(x if isinstance(x, bytes) else b"".join(x) for x in data)
assert b"Hello Alice, the quarterly numbers." in flat, data
assert b"Content-Disposition: attachment" in flat, data
assert b"Subject: Report\r\n\r\n" in flat, data
assert b"BODY[TEXT]<0> {{4}}" in flat and b"--XX" in flat, data
typ, data = c.fetch("1", "(FLAGS)")
assert b"\\Seen" not in data[0], data
typ, data = c.fetch("1", "(BODY[HEADER])")
assert data[0][1].startswith(b"From: Bob"), data
typ, data = c.fetch("1", "(FLAGS)")
assert b"\\Seen" in data[0], data
typ, data = c.uid("FETCH", "1:*", "(RFC822.HEADER)")
assert b"UID 1" in data[0][0] and data[0][1].endswith(b"\r\n\r\n"), data
typ, data = c.fetch("1:*", "(MODSEQ)")
assert b"MODSEQ (" in data[0], data
try:
    c.fetch("5", "(FLAGS)")
    raise SystemExit("FETCH beyond EXISTS accepted")
except imaplib.IMAP4.error as e:
    assert "out of range" in str(e), e
c.logout()
"#,
        msg = MULTIPART
    );
    python(&s, &script);
}

#[test]
fn flags_expunge_copy_move_search_and_second_session() {
    let s = server_with_alice();
    python(
        &s,
        r#"
a = login(); b = login()
for i in range(1, 6):
    ok(a.append("INBOX", None, None, ("From: n%d@far.test\r\nSubject: note %d\r\n\r\nbody number %d xyzzy\r\n" % (i, i, i)).encode()))
ok(a.select("INBOX")); ok(b.select("INBOX"))
typ, data = a.store("2", "+FLAGS", "(\\Flagged $Work)")
assert b"\\Flagged" in data[0] and b"$Work" in data[0], data
typ, data = b.noop()
fl = b.untagged_responses.get("FETCH", [])
assert any(b"\\Flagged" in x and b"$Work" in x for x in fl), b.untagged_responses
typ, data = a.search(None, "FLAGGED")
assert data == [b"2"], data
typ, data = a.search(None, "KEYWORD", "$Work")
assert data == [b"2"], data
typ, data = a.search(None, "SUBJECT", '"note 4"')
assert data == [b"4"], data
typ, data = a.search(None, "FROM", "n3@far")
assert data == [b"3"], data
typ, data = a.search(None, "BODY", "xyzzy", "NOT", "BODY", '"number 1"')
assert data == [b"2 3 4 5"], data
typ, data = a.search(None, "OR", "1", "5")
assert data == [b"1 5"], data
typ, data = a.uid("SEARCH", "UID", "3:*")
assert data == [b"3 4 5"], data
typ, data = a.search(None, "LARGER", "10", "SINCE", "1-Jan-2000", "UNSEEN")
assert data == [b"1 2 3 4 5"], data
# Conditional STORE.
typ, data = a._simple_command("STORE", "1", "(UNCHANGEDSINCE 1)", "+FLAGS", "(\\Seen)")
assert typ == "OK" and b"MODIFIED 1" in data[0], (typ, data)
# COPY and MOVE with COPYUID.
ok(a.create("Keep"))
typ, data = a.copy("1:2", "Keep")
assert typ == "OK" and b"COPYUID" in data[0] and b" 1:2 1:2" in data[0], data
typ, data = a.uid("MOVE", "3", "Keep")
assert typ == "OK", data
assert any(b"COPYUID" in x and b" 3 3" in x for x in a.untagged_responses.get("OK", [])), a.untagged_responses
typ, data = a.copy("1", "NoSuchBox")
assert typ == "NO" and b"TRYCREATE" in data[0], data
typ, data = a.status("Keep", "(MESSAGES)")
assert b"MESSAGES 3" in data[0], data
# EXPUNGE, seen by the other session.
ok(a.store("1", "+FLAGS", "(\\Deleted)"))
typ, data = a.expunge()
# imaplib keeps the EXPUNGE of the earlier MOVE (message 3) with this one.
assert data == [b"3", b"1"], data
b.untagged_responses.clear()
ok(b.noop())
assert b.untagged_responses.get("EXPUNGE") == [b"3", b"1"], b.untagged_responses
typ, data = b.fetch("1:*", "(UID)")
uids = [re.search(rb"UID (\d+)", x).group(1) for x in data]
assert uids == [b"2", b"4", b"5"], data
# A FETCH by sequence number must not carry EXPUNGE responses.
ok(a.store("1", "+FLAGS", "(\\Deleted)"))
ok(a.expunge())
b.untagged_responses.clear()
typ, data = b.fetch("1", "(UID)")
assert "EXPUNGE" not in b.untagged_responses, b.untagged_responses
ok(b.noop())
assert b.untagged_responses.get("EXPUNGE") == [b"1"], b.untagged_responses
a.logout(); b.logout()
"#,
    );
}

#[test]
fn idle_announces_an_smtp_delivery() {
    let s = server_with_alice();
    python(
        &s,
        r#"
c = login()
ok(c.select("INBOX"))
tag = c._new_tag()
c.send(tag + b" IDLE\r\n")
line = c.readline()
assert line.startswith(b"+"), line
m = smtplib.SMTP("127.0.0.1", SMTP)
m.sendmail("bob@far.test", ["alice@example.com"], b"Subject: during idle\r\n\r\nhi\r\n")
m.quit()
c.sock.settimeout(20)
line = c.readline()
assert line == b"* 1 EXISTS\r\n", line
# RFC 3501 §7.3.2: the session that announces the delivery has it as \Recent.
line = c.readline()
assert line == b"* 1 RECENT\r\n", line
c.send(b"DONE\r\n")
line = c.readline()
assert line.startswith(tag + b" OK"), line
typ, data = c.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
assert b"Subject: during idle" in data[0][1], data
c.logout()
"#,
    );
}

#[test]
fn qresync_uid_fetch_vanished_after_offline_changes() {
    let s = server_with_alice();
    python(
        &s,
        r#"
def qresync_session():
    c = login()
    typ, data = c._simple_command("ENABLE", "QRESYNC")
    assert typ == "OK" and c.untagged_responses.pop("ENABLED") == [b"QRESYNC"], (typ, c.untagged_responses)
    ok(c.select("INBOX"))
    return c
a = login()
for i in range(1, 6):
    ok(a.append("INBOX", None, None, ("Subject: q%d\r\n\r\nbody %d\r\n" % (i, i)).encode()))
a = qresync_session()
since = int(a.untagged_responses["HIGHESTMODSEQ"][-1])
a.logout()
live = qresync_session()
# Another client changes the mailbox while the first one is offline.
b = login(); ok(b.select("INBOX"))
ok(b.store("2,4", "+FLAGS", "(\\Deleted)"))
ok(b.expunge())
ok(b.store("1", "+FLAGS", "(\\Answered)"))
b.logout()
# RFC 7162 §3.2.6: the reconnecting client learns both kinds of change in one command.
c = qresync_session()
typ, data = c._simple_command("UID", "FETCH", "1:*", "(FLAGS)", "(CHANGEDSINCE %d VANISHED)" % since)
assert typ == "OK", (typ, data)
assert c.untagged_responses.pop("VANISHED") == [b"(EARLIER) 2,4"], c.untagged_responses
fetched = c.untagged_responses.pop("FETCH")
assert len(fetched) == 1 and b"UID 1 " in fetched[0] and b"\\Answered" in fetched[0], fetched
c.logout()
# §3.2.10: a connected QRESYNC session is told VANISHED, never EXPUNGE.
ok(live.noop())
assert live.untagged_responses.get("VANISHED") == [b"2,4"], live.untagged_responses
assert "EXPUNGE" not in live.untagged_responses, live.untagged_responses
live.logout()
"#,
    );
}

#[test]
fn list_extended_list_status_and_create_special_use() {
    let s = server_with_alice();
    python(
        &s,
        r#"
c = login()
caps = ok(c.capability())[0].split()
assert b"LIST-EXTENDED" in caps and b"LIST-STATUS" in caps, caps
ok(c.append("INBOX", None, None, b"Subject: one\r\n\r\nbody\r\n"))
ok(c.create("Lists/Rust"))
ok(c.subscribe("Lists/Rust"))
typ, data = c._simple_command("CREATE", "Starred", "(USE (\\Flagged))")
assert typ == "OK", (typ, data)
typ, data = c._simple_command("CREATE", "Weird", "(USE (\\Nope))")
assert typ == "NO" and b"USEATTR" in data[0], (typ, data)
# The account's Junk already has \Junk: one mailbox per special use.
typ, data = c._simple_command("CREATE", "Spam", "(USE (\\Junk))")
assert typ == "NO" and b"USEATTR" in data[0], (typ, data)
# Several patterns, return options, and a STATUS after each selectable mailbox.
typ, data = c._simple_command("LIST", '""', "(INBOX Lists/% Starred)", "RETURN", "(SUBSCRIBED SPECIAL-USE STATUS (MESSAGES UNSEEN))")
assert typ == "OK", (typ, data)
lists = c.untagged_responses.pop("LIST")
status = c.untagged_responses.pop("STATUS")
assert lists == [b'(\\HasNoChildren \\Subscribed) "/" "INBOX"', b'(\\HasNoChildren \\Subscribed) "/" "Lists/Rust"', b'(\\HasNoChildren \\Flagged) "/" "Starred"'], lists
assert status == [b'"INBOX" (MESSAGES 1 UNSEEN 1)', b'"Lists/Rust" (MESSAGES 0 UNSEEN 0)', b'"Starred" (MESSAGES 0 UNSEEN 0)'], status
typ, data = c._simple_command("LIST", "(SUBSCRIBED RECURSIVEMATCH)", '""', "Lists")
lists = c.untagged_responses.pop("LIST")
assert lists == [b'(\\HasChildren) "/" "Lists" ("CHILDINFO" ("SUBSCRIBED"))'], lists
typ, data = c._simple_command("LIST", "(SPECIAL-USE)", '""', "*")
lists = c.untagged_responses.pop("LIST")
assert any(b"\\Flagged" in l and b'"Starred"' in l for l in lists) and not any(b"INBOX" in l for l in lists), lists
c.logout()
"#,
    );
}

#[test]
fn esearch_return_options_and_searchres() {
    let s = server_with_alice();
    python(
        &s,
        r#"
c = login()
caps = ok(c.capability())[0].split()
assert b"ESEARCH" in caps and b"SEARCHRES" in caps, caps
for i in range(1, 6):
    ok(c.append("INBOX", None, None, ("Subject: s%d\r\n\r\n%s\r\n" % (i, "needle" if i % 2 else "hay")).encode()))
ok(c.select("INBOX"))
typ, data = c._simple_command("SEARCH", "RETURN", "(MIN MAX COUNT ALL)", "BODY", "needle")
assert typ == "OK", (typ, data)
es = c.untagged_responses.pop("ESEARCH")
assert len(es) == 1 and re.fullmatch(rb'\(TAG "[^"]+"\) MIN 1 MAX 5 COUNT 3 ALL 1,3,5', es[0]), es
typ, data = c._simple_command("UID", "SEARCH", "RETURN", "(SAVE)", "BODY", "needle")
assert typ == "OK" and "ESEARCH" not in c.untagged_responses, c.untagged_responses
typ, data = c.uid("FETCH", "$", "(UID)")
assert [re.search(rb"UID (\d+)", x).group(1) for x in data] == [b"1", b"3", b"5"], data
typ, data = c.store("$", "+FLAGS", "(\\Flagged)")
assert typ == "OK" and len(data) == 3, data
typ, data = c.search(None, "FLAGGED", "NOT", "$")
assert data == [b""], data
typ, data = c.search(None, "OR", "$", "SUBJECT", "s2")
assert data == [b"1 2 3 5"], data
c.logout()
"#,
    );
}

#[test]
fn quota_getquotaroot_and_getquota() {
    let s = server_with_alice();
    let out = s.admin(&["account", "quota", "alice@example.com", "1M"]);
    assert!(out.status.success(), "{out:?}");
    python(
        &s,
        r#"
c = login()
caps = ok(c.capability())[0].split()
assert b"QUOTA" in caps and b"QUOTA=RES-STORAGE" in caps, caps
ok(c.append("INBOX", None, None, b"Subject: big\r\n\r\n" + b"y" * 3000 + b"\r\n"))
typ, data = c.getquotaroot("INBOX")
assert typ == "OK" and data == [[b'"INBOX" ""'], [b'"" (STORAGE 3 1024)']], data
typ, data = c.getquota('""')
assert typ == "OK" and data == [b'"" (STORAGE 3 1024)'], data
typ, data = c.setquota('""', "(STORAGE 5)")
assert typ == "NO", (typ, data)
c.logout()
"#,
    );
}

#[test]
fn modified_utf7_mailbox_names() {
    let s = server_with_alice();
    python(
        &s,
        r#"
def mutf7(name):
    # RFC 3501 §5.1.3, as a client library would do it.
    out, run = "", ""
    def flush():
        nonlocal out, run
        if run:
            b = base64.b64encode(run.encode("utf-16-be")).decode().rstrip("=").replace("/", ",")
            out += "&" + b + "-"
            run = ""
    for ch in name:
        if " " <= ch <= "~":
            flush()
            out += "&-" if ch == "&" else ch
        else:
            run += ch
    flush()
    return out
c = login()
name = mutf7("Éléments envoyés")
ok(c.create('"%s"' % name))
typ, data = c.list('""', "*")
assert any(l.endswith(('"/" "%s"' % name).encode()) for l in data), data
ok(c.select('"%s"' % name))
c.logout()
"#,
    );
}

#[test]
fn logins_past_the_per_user_session_limit_are_refused() {
    let config = imap_config("example.com") + "[limits]\nmax_connections_per_user = 3\n";
    let s = Server::start_config("example.com", &config);
    s.add_account("alice@example.com", "alice-password-1");
    s.add_account("bob@example.com", "bob-password-1");
    python(
        &s,
        r#"
held = [login() for _ in range(3)]
c = imaplib.IMAP4_SSL("127.0.0.1", IMAPS, ssl_context=CTX)
try:
    c.login(USER, PASS)
    raise SystemExit("a fourth session was allowed")
except imaplib.IMAP4.error as e:
    assert "[LIMIT]" in str(e), e
# Another user is not affected.
b = imaplib.IMAP4_SSL("127.0.0.1", IMAPS, ssl_context=CTX)
b.login("bob@example.com", "bob-password-1")
ok(b.select("INBOX"))
# Once one session logs out, the refused client gets in on the same connection.
held.pop().logout()
deadline = time.time() + 10
while True:
    try:
        c.login(USER, PASS)
        break
    except imaplib.IMAP4.error as e:
        assert "[LIMIT]" in str(e) and time.time() < deadline, e
        time.sleep(0.1)
ok(c.select("INBOX"))
"#,
    );
}

#[test]
fn recent_goes_to_the_first_session_that_selects() {
    let s = server_with_alice();
    python(
        &s,
        r#"
a = login(); b = login()
for i in range(1, 3):
    ok(a.append("INBOX", None, None, ("Subject: fresh %d\r\n\r\nbody\r\n" % i).encode()))
typ, data = a.status("INBOX", "(RECENT)")
assert b"RECENT 2" in data[0], data
# RFC 3501 §6.3.1: SELECT reports RECENT; the first session to select takes \Recent.
ok(a.select("INBOX"))
assert a.untagged_responses.get("RECENT") == [b"2"], a.untagged_responses
typ, data = a.recent()
assert data == [b"2"], data
typ, data = a.fetch("1", "(FLAGS)")
assert b"\\Recent" in data[0], data
typ, data = a.search(None, "NEW")
assert data == [b"1 2"], data
ok(b.select("INBOX"))
assert b.untagged_responses.get("RECENT") == [b"0"], b.untagged_responses
typ, data = b.fetch("1", "(FLAGS)")
assert b"\\Recent" not in data[0], data
typ, data = b.status("INBOX", "(RECENT)")
assert b"RECENT 0" in data[0], data
a.logout(); b.logout()
"#,
    );
}
