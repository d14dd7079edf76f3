//! POP3 end to end with Python's poplib (a client we did not write) against the real binary:
//! STLS on the pop3 port and implicit TLS on pop3s, STAT/LIST/UIDL, RETR of exact bytes (with a
//! dot-stuffed line), TOP, DELE with RSET and QUIT, a dropped connection that deletes nothing,
//! the one-session-per-maildrop lock, and credentials refused before TLS or when wrong.

mod common;

use std::process::Command;

use common::Server;

fn start(domain: &str) -> Server {
    Server::start_pop3(domain, "")
}

/// Runs a Python script with the POP3/SMTP ports and credentials prepended as variables.
fn python(server: &Server, body: &str) -> String {
    let prelude = format!(
        r#"
import poplib, ssl, smtplib, socket, time
POP3 = {pop3}
POP3S = {pop3s}
SMTP = {smtp}
USER = "alice@example.com"
PASS = "alice-password-1"
CTX = ssl.create_default_context(); CTX.check_hostname = False; CTX.verify_mode = ssl.CERT_NONE
def stls():
    c = poplib.POP3("127.0.0.1", POP3)
    c.stls(context=CTX)
    c.user(USER); c.pass_(PASS)
    return c
def ssl_login():
    c = poplib.POP3_SSL("127.0.0.1", POP3S, context=CTX)
    c.user(USER); c.pass_(PASS)
    return c
def refused(f, code):
    try:
        f()
    except poplib.error_proto as e:
        assert code.encode() in e.args[0], e
        return
    raise SystemExit("accepted: expected " + code)
"#,
        pop3 = server.addr("pop3").port(),
        pop3s = server.addr("pop3s").port(),
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

/// A server with alice and three messages delivered over SMTP, the second with a line that
/// starts with "." (dot-stuffed on the wire, both in SMTP DATA and in POP3 RETR).
fn server_with_mail() -> Server {
    let s = start("example.com");
    s.add_account("alice@example.com", "alice-password-1");
    python(
        &s,
        r#"
m = smtplib.SMTP("127.0.0.1", SMTP)
m.ehlo("client.test")
m.sendmail("a@far.test", [USER], b"Subject: one\r\n\r\nfirst body\r\n")
m.sendmail("b@far.test", [USER], b"Subject: two\r\n\r\nline 1\r\n.starts with a dot\r\n..two dots\r\nline 4\r\n")
m.sendmail("c@far.test", [USER], b"Subject: three\r\n\r\nthird body\r\n")
m.quit()
"#,
    );
    s
}

fn inbox(s: &Server) -> Vec<Vec<u8>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = s.store();
    rt.block_on(common::inbox(&store, "alice@example.com"))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn stat_list_uidl_retr_top_over_stls_and_implicit_tls() {
    let s = server_with_mail();
    let stored = inbox(&s);
    assert_eq!(stored.len(), 3);
    let sizes: Vec<String> = stored.iter().map(|m| m.len().to_string()).collect();
    let total: usize = stored.iter().map(Vec::len).sum();
    let out = python(
        &s,
        &format!(
            r#"
SIZES = [{sizes}]
for mk in (stls, ssl_login):
    c = mk()
    caps = c.capa()
    assert "TOP" in caps and "UIDL" in caps and "RESP-CODES" in caps and "PIPELINING" in caps, caps
    assert "STLS" not in caps and caps["IMPLEMENTATION"] == ["Facteur"], caps
    assert c.stat() == (3, {total}), c.stat()
    resp, lines, _ = c.list()
    assert [l.decode() for l in lines] == ["%d %d" % (i + 1, n) for i, n in enumerate(SIZES)], lines
    assert c.list(2).decode() == "+OK 2 %d" % SIZES[1]
    resp, uids, _ = c.uidl()
    uids = [u.decode().split()[1] for u in uids]
    assert len(set(uids)) == 3 and all(u.count(".") == 1 for u in uids), uids
    assert c.uidl(3).decode().split()[2] == uids[2]
    for i in range(3):
        resp, lines, _ = c.retr(i + 1)
        assert resp.decode() == "+OK %d octets" % SIZES[i], resp
        print("MSG%d %s" % (i, (b"\r\n".join(lines) + b"\r\n").hex()))
    resp, lines, _ = c.top(2, 2)
    assert lines[-3:] == [b"", b"line 1", b".starts with a dot"], lines
    assert lines[0].startswith(b"Return-Path:"), lines
    c.quit()
"#,
            sizes = sizes.join(", "),
        ),
    );
    for (i, m) in stored.iter().enumerate() {
        let want = format!("MSG{i} {}", hex(m));
        assert_eq!(
            out.matches(&want).count(),
            2,
            "message {i} bytes differ over STLS or pop3s:\n{out}"
        );
    }
    assert!(
        String::from_utf8_lossy(&stored[1]).contains("\r\n.starts with a dot\r\n..two dots\r\n")
    );
}

#[test]
fn dele_rset_quit_drop_and_lock() {
    let s = server_with_mail();
    python(
        &s,
        r#"
c = stls()
# One session per maildrop: the second gets IN-USE, on either port.
refused(lambda: stls(), "[IN-USE]")
refused(lambda: ssl_login(), "[IN-USE]")
c.dele(1)
assert c.stat()[0] == 2
refused(lambda: c.retr(1), "-ERR")
c.rset()
assert c.stat()[0] == 3
uids = [u.decode().split()[1] for u in c.uidl()[1]]
c.dele(1); c.dele(3)
# Dropped without QUIT: nothing is deleted, and the lock is released.
c.sock.shutdown(socket.SHUT_RDWR); c.file.close(); c.sock.close()
# The server notices the drop asynchronously: retry while it still holds the lock.
for _ in range(50):
    try:
        d = ssl_login()
        break
    except poplib.error_proto as err:
        assert b"[IN-USE]" in err.args[0], err
        time.sleep(0.1)
assert d.stat()[0] == 3, d.stat()
d.dele(1); d.dele(3)
assert d.quit().startswith(b"+OK")
e = stls()
assert e.stat()[0] == 1, e.stat()
left = [u.decode().split()[1] for u in e.uidl()[1]]
assert left == [uids[1]], (left, uids)
e.quit()
"#,
    );
    let stored = inbox(&s);
    assert_eq!(stored.len(), 1);
    assert!(String::from_utf8_lossy(&stored[0]).contains("Subject: two"));
}

#[test]
fn credentials_refused_before_tls_and_when_wrong() {
    let s = server_with_mail();
    python(
        &s,
        r#"
c = poplib.POP3("127.0.0.1", POP3)
caps = c.capa()
assert "STLS" in caps and "USER" not in caps and "SASL" not in caps, caps
refused(lambda: c.user(USER), "[AUTH]")
refused(lambda: c._shortcmd("AUTH PLAIN"), "[AUTH]")
c.stls(context=CTX)
caps = c.capa()
assert "USER" in caps and caps.get("SASL") == ["PLAIN"] and "STLS" not in caps, caps
c.user(USER)
refused(lambda: c.pass_("wrong-password"), "[AUTH] Authentication failed")
c.user("nobody@example.com")
refused(lambda: c.pass_(PASS), "[AUTH] Authentication failed")
c.quit()
d = poplib.POP3_SSL("127.0.0.1", POP3S, context=CTX)
d.user(USER)
refused(lambda: d.pass_("wrong-password"), "[AUTH] Authentication failed")
d.user(USER); d.pass_(PASS)
assert d.stat()[0] == 3
d.quit()
# RFC 5034 SASL PLAIN: with a "+ " continuation, then with an initial response.
import base64
cred = base64.b64encode(("\0%s\0%s" % (USER, PASS)).encode()).decode()
e = poplib.POP3_SSL("127.0.0.1", POP3S, context=CTX)
assert e._shortcmd("AUTH PLAIN") == b"+ "
assert e._shortcmd(cred).startswith(b"+OK")
assert e.stat()[0] == 3
e.quit()
f = poplib.POP3("127.0.0.1", POP3)
f.stls(context=CTX)
assert f._shortcmd("AUTH PLAIN " + cred).startswith(b"+OK")
f.quit()
"#,
    );
}
