//! IMAP COMPRESS=DEFLATE (RFC 4978) against the real binary over real sockets: a Python client
//! using zlib's raw DEFLATE (wbits -15) over TLS (implicit and STARTTLS) runs SELECT, APPEND and
//! FETCH of a large message, IDLE woken by an SMTP delivery, and LOGOUT; mbsync syncs with
//! compression on. Also the two-session case of RFC 2180 §3.3: DELETE of a mailbox another
//! session has selected ends that session with BYE (compressed, and during IDLE).

mod common;

use std::process::Command;

use common::Server;

/// Runs a Python script with the ports, credentials and a small raw IMAP client prepended.
fn python(server: &Server, body: &str) -> String {
    let prelude = format!(
        r#"
import socket, ssl, smtplib, re, zlib
IMAP = {imap}
IMAPS = {imaps}
SMTP = {smtp}
USER = "alice@example.com"
PASS = "alice-password-1"
CTX = ssl.create_default_context(); CTX.check_hostname = False; CTX.verify_mode = ssl.CERT_NONE

class Client:
    """Line and literal framing over a socket, inflating and deflating once compress() is on."""
    def __init__(self, implicit_tls=True):
        raw = socket.create_connection(("127.0.0.1", IMAPS if implicit_tls else IMAP), timeout=20)
        self.s = CTX.wrap_socket(raw) if implicit_tls else raw
        self.buf = b""
        self.deflate = self.inflate = None
        self.wire_in = 0   # bytes read from the socket
        self.n = 0
        greeting = self.line()
        assert greeting.startswith(b"* OK"), greeting
        if not implicit_tls:
            text, _ = self.cmd("STARTTLS")
            assert text.startswith(b"OK"), text
            assert self.buf == b"", self.buf
            self.s = CTX.wrap_socket(self.s)

    def send(self, data):
        if self.deflate:
            # Z_SYNC_FLUSH per burst, as RFC 4978 §4 recommends to clients too.
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.s.sendall(data)

    def fill(self):
        chunk = self.s.recv(65536)
        if not chunk:
            raise EOFError("connection closed by the server")
        self.wire_in += len(chunk)
        self.buf += self.inflate.decompress(chunk) if self.inflate else chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l

    def exact(self, n):
        while len(self.buf) < n:
            self.fill()
        r, self.buf = self.buf[:n], self.buf[n:]
        return r

    def response(self):
        """One response with its literals: (text, [literal bytes])."""
        l = self.line(); text = l; lits = []
        while True:
            m = re.search(rb"\{{(\d+)\}}$", l)
            if not m:
                return text, lits
            lits.append(self.exact(int(m.group(1))))
            l = self.line(); text += b" <literal> " + l

    def tag(self):
        self.n += 1
        return b"t%d" % self.n

    def until(self, tag):
        """Untagged responses up to the tagged one: (tagged text after the tag, [(text, lits)])."""
        untagged = []
        while True:
            text, lits = self.response()
            if text.startswith(tag + b" "):
                return text[len(tag) + 1:], untagged
            untagged.append((text, lits))

    def cmd(self, command):
        tag = self.tag()
        self.send(tag + b" " + command.encode() + b"\r\n")
        text, self.untagged = self.until(tag)
        return text, self.untagged

    def ok(self, command):
        text, untagged = self.cmd(command)
        assert text.startswith(b"OK"), (command, text, untagged)
        return untagged

    def login(self):
        text, _ = self.cmd('LOGIN "%s" "%s"' % (USER, PASS))
        assert text.startswith(b"OK") and b"COMPRESS=DEFLATE" in text, text

    def compress(self):
        text, _ = self.cmd("COMPRESS DEFLATE")
        assert text == b"OK DEFLATE active", text
        assert self.buf == b"", self.buf
        self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inflate = zlib.decompressobj(-15)

    def closed(self):
        """The server closed the connection (after its last response)."""
        try:
            self.fill()
            return False
        except EOFError:
            return True

def deliver(subject):
    m = smtplib.SMTP("127.0.0.1", SMTP)
    m.sendmail("bob@far.test", ["alice@example.com"], b"Subject: " + subject + b"\r\n\r\nhi\r\n")
    m.quit()
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
    let s = Server::start("example.com");
    s.add_account("alice@example.com", "alice-password-1");
    s
}

#[test]
fn compressed_session_select_append_fetch_idle_logout() {
    let s = server_with_alice();
    python(
        &s,
        r#"
c = Client()
text, _ = c.cmd("COMPRESS DEFLATE")
assert text.startswith(b"BAD"), text              # not before login
c.login()
text, _ = c.cmd("COMPRESS LZ4")
assert text.startswith(b"BAD"), text              # unknown mechanism
c.compress()
text, _ = c.cmd("COMPRESS DEFLATE")
assert text.startswith(b"NO [COMPRESSIONACTIVE]"), text
untagged = c.ok("SELECT INBOX")
assert any(t == b"* 0 EXISTS" for t, _ in untagged), untagged

# A large message (about 2.5 MB, text-like so it compresses) appended with a synchronizing literal.
lines = [b"Line %06d of a long report, with some repeated words in it.\r\n" % i for i in range(40000)]
MSG = b"From: bob@far.test\r\nTo: alice@example.com\r\nSubject: big\r\n\r\n" + b"".join(lines)
tag = c.tag()
c.send(tag + b" APPEND INBOX (\\Seen) {%d}\r\n" % len(MSG))
cont = c.line()
assert cont.startswith(b"+"), cont
c.send(MSG + b"\r\n")
text, untagged = c.until(tag)
assert text.startswith(b"OK [APPENDUID "), text
assert any(t == b"* 1 EXISTS" for t, _ in untagged), untagged

before = c.wire_in
untagged = c.ok("FETCH 1 (BODY.PEEK[] RFC822.SIZE)")
(t, lits), = [u for u in untagged if u[0].startswith(b"* 1 FETCH")]
assert lits == [MSG], (t, [len(l) for l in lits])
assert b"RFC822.SIZE %d" % len(MSG) in t, t
# The bytes on the wire were compressed (a ratio, not a timing).
assert c.wire_in - before < len(MSG) // 4, (c.wire_in - before, len(MSG))

# IDLE: the delivery is announced without the client sending anything (sync flush per burst).
tag = c.tag()
c.send(tag + b" IDLE\r\n")
cont = c.line()
assert cont.startswith(b"+"), cont
deliver(b"during compressed idle")
exists = c.line()
assert exists == b"* 2 EXISTS", exists
c.send(b"DONE\r\n")
text, _ = c.until(tag)
assert text.startswith(b"OK"), text
untagged = c.ok("FETCH 2 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
assert b"Subject: during compressed idle" in untagged[0][1][0], untagged

text, untagged = c.cmd("LOGOUT")
assert text.startswith(b"OK") and untagged[0][0].startswith(b"* BYE"), (text, untagged)
assert c.closed()
"#,
    );
}

#[test]
fn compress_after_starttls() {
    let s = server_with_alice();
    python(
        &s,
        r#"
c = Client(implicit_tls=False)
c.login()
c.compress()
c.ok("CREATE Projects")
untagged = c.ok('LIST "" *')
assert any(b'"Projects"' in t for t, _ in untagged), untagged
tag = c.tag()
body = b"Subject: small\r\n\r\nhello\r\n"
c.send(tag + b" APPEND Projects {%d+}\r\n" % len(body) + body + b"\r\n")
text, _ = c.until(tag)
assert text.startswith(b"OK [APPENDUID"), text
untagged = c.ok("STATUS Projects (MESSAGES SIZE)")
assert untagged[0][0] == b'* STATUS "Projects" (MESSAGES 1 SIZE %d)' % len(body), untagged
c.ok("LOGOUT")
"#,
    );
}

#[test]
fn delete_of_the_selected_mailbox_by_another_session() {
    let s = server_with_alice();
    python(
        &s,
        r#"
B = Client(); B.login()
B.ok("CREATE Work")
B.ok("CREATE Later")

# A, compressed, has Work selected; B deletes it: A's next command gets BYE, then the end.
A = Client(); A.login(); A.compress()
A.ok("SELECT Work")
B.ok("DELETE Work")
A.send(b"f1 FETCH 1:* (UID)\r\n")
assert A.line() == b"* BYE Selected mailbox was deleted, have to disconnect"
assert A.closed()

# C idles on Later; B deletes it: the BYE comes at once, during IDLE.
C = Client(); C.login(); C.compress()
C.ok("SELECT Later")
C.send(b"i1 IDLE\r\n")
assert C.line().startswith(b"+")
B.ok("DELETE Later")
assert C.line() == b"* BYE Selected mailbox was deleted, have to disconnect"
assert C.closed()

# RENAME instead: D keeps its mailbox under the new name.
B.ok("CREATE Old")
D = Client(); D.login()
D.ok("SELECT Old")
B.ok("RENAME Old New")
deliver(b"x")  # to INBOX: nothing for D
tag = B.tag()
body = b"Subject: renamed\r\n\r\nhi\r\n"
B.send(tag + b" APPEND New {%d+}\r\n" % len(body) + body + b"\r\n")
text, _ = B.until(tag)
assert text.startswith(b"OK"), text
untagged = D.ok("NOOP")
# D is the first session to hear of it: \Recent is D's (RFC 3501 §2.3.2).
assert [t for t, _ in untagged] == [b"* 1 EXISTS", b"* 1 RECENT"], untagged
untagged = D.ok("FETCH 1 (BODY.PEEK[])")
assert untagged[0][1] == [body], untagged
D.ok("LOGOUT"); B.ok("LOGOUT")
"#,
    );
}

fn mbsync(config: &std::path::Path) -> (bool, String) {
    let out = Command::new("mbsync")
        .args(["-D", "-c", config.to_str().expect("utf8"), "-a"])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "mbsync is not installed ({e}); scripts/test.sh installs it (Debian package isync)"
            )
        });
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// mbsync (isync 1.4) turns COMPRESS DEFLATE on by itself when the server offers it.
#[test]
fn mbsync_syncs_over_compression() {
    let s = server_with_alice();
    python(
        &s,
        r#"
for i in range(3):
    deliver(b"for mbsync %d" % i)
"#,
    );
    let local = s.dir.path().join("maildir");
    std::fs::create_dir_all(&local).expect("mkdir");
    let config = s.dir.path().join("mbsyncrc");
    std::fs::write(
        &config,
        format!(
            "IMAPAccount facteur\nHost 127.0.0.1\nPort {port}\nUser alice@example.com\nPass alice-password-1\n\
             SSLType IMAPS\nCertificateFile {cert}\n\n\
             IMAPStore remote\nAccount facteur\n\n\
             MaildirStore local\nPath {local}/\nInbox {local}/INBOX\nSubFolders Verbatim\n\n\
             Channel sync\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Both\nExpunge Both\nSyncState *\n",
            port = s.addr("imaps").port(),
            cert = s.data.join("tls/cert.pem").display(),
            local = local.display(),
        ),
    )
    .expect("write config");
    let (ok, out) = mbsync(&config);
    assert!(ok, "sync: {out}");
    assert!(
        out.contains("COMPRESS DEFLATE"),
        "compression not used:\n{out}"
    );
    let mut n = 0;
    for sub in ["cur", "new"] {
        if let Ok(rd) = std::fs::read_dir(local.join("INBOX").join(sub)) {
            n += rd.flatten().count();
        }
    }
    assert_eq!(n, 3, "{out}");
    // A second run over compression: nothing new, still a clean exit.
    let (ok, out) = mbsync(&config);
    assert!(ok, "second sync: {out}");
}
