//! MULTIAPPEND (RFC 3502) and BINARY (RFC 3516) end to end over a real TLS socket (a Python
//! client speaking raw IMAP): a batch of three messages (one sent as literal8 with NUL bytes, one
//! larger than the inline blob limit) is acknowledged, the server is killed with SIGKILL while the
//! client is still connected, restarted, and every message is there byte for byte with its flags;
//! a refused batch leaves nothing. BINARY then decodes a base64 part over the wire.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::Server;

const USER: &str = "alice@example.com";
const PASS: &str = "alice-password-1";

/// Helpers of every script: a TLS connection, commands, responses read with their literals.
const PRELUDE: &str = r#"
import socket, ssl, re, sys
CTX = ssl.create_default_context(); CTX.check_hostname = False; CTX.verify_mode = ssl.CERT_NONE
def connect():
    s = CTX.wrap_socket(socket.create_connection(("127.0.0.1", IMAPS), timeout=30))
    f = s.makefile("rb")
    assert f.readline().startswith(b"* OK"), "greeting"
    return s, f
def response(f, tag):
    # Lines up to the tagged one, literals (and literal8s) included.
    out = b""
    while True:
        line = f.readline()
        assert line, "connection closed after %r" % out
        out += line
        m = re.search(rb"\{(\d+)\}\r\n$", line)
        if m:
            out += f.read(int(m.group(1)))
            continue
        if line.startswith(tag.encode() + b" "):
            return out
def command(s, f, tag, text):
    s.sendall(("%s %s\r\n" % (tag, text)).encode())
    return response(f, tag)
def continuation(f):
    line = f.readline()
    assert line.startswith(b"+ "), line
def login():
    s, f = connect()
    r = command(s, f, "l", "LOGIN %s %s" % (USER, PASS))
    assert b"l OK" in r and b"MULTIAPPEND" in r and b"BINARY" in r, r
    return s, f
msgs = [open(p, "rb").read() for p in PATHS]
"#;

fn python(server: &Server, paths: &[String], body: &str) -> Command {
    let vars = format!(
        "IMAPS = {}\nUSER = {USER:?}\nPASS = {PASS:?}\nPATHS = {paths:?}\n",
        server.addr("imaps").port()
    );
    let mut c = Command::new("python3");
    c.arg("-c").arg(format!("{vars}{PRELUDE}\n{body}"));
    c
}

/// A text part and a base64 attachment whose content has NUL bytes.
fn with_attachment() -> Vec<u8> {
    b"From: bob@example.com\r\nTo: alice@example.com\r\nSubject: attachment\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n\
--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n\
AAECAwBoZWxsbw==\r\n--b1--\r\n"
        .to_vec()
}

/// Raw binary content (RFC 3516 §4.1: sent as literal8).
fn binary() -> Vec<u8> {
    let mut m = b"From: bob@example.com\r\nSubject: raw\r\nMIME-Version: 1.0\r\n\
Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        .to_vec();
    m.extend((0..=255u8).cycle().take(3000));
    m.extend_from_slice(b"\r\n");
    m
}

/// Larger than the store's inline blob limit (64 KiB): kept as a file, fsynced before the OK.
fn large() -> Vec<u8> {
    let mut m = b"From: bob@example.com\r\nSubject: large\r\n\r\n".to_vec();
    for i in 0..4000 {
        m.extend_from_slice(
            format!("line {i:05} of a message larger than an inline blob\r\n").as_bytes(),
        );
    }
    m
}

fn write_messages(dir: &Path) -> (Vec<Vec<u8>>, Vec<String>) {
    let msgs = vec![with_attachment(), binary(), large()];
    let paths = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let p = dir.join(format!("m{i}.eml"));
            std::fs::write(&p, m).expect("write message");
            p.to_string_lossy().into_owned()
        })
        .collect();
    (msgs, paths)
}

#[tokio::test]
async fn multiappend_survives_kill9_after_its_tagged_ok() {
    let mut server = Server::start("example.com");
    server.add_account(USER, PASS);
    let (msgs, paths) = write_messages(server.dir.path());

    // The client appends, reports the tagged OK, and stays connected: the kill comes while the
    // session is open, right after the acknowledgement.
    let mut client = python(
        &server,
        &paths,
        r#"
s, f = login()
# A batch refused at the end (a flag that cannot be stored): nothing of it may appear.
bad = b"r APPEND INBOX {%d+}\r\n" % len(msgs[0]) + msgs[0] + b" (\\Recent) {%d+}\r\n" % len(msgs[2]) + msgs[2] + b"\r\n"
s.sendall(bad)
r = response(f, "r")
assert r.startswith(b"r BAD"), r
# The batch: synchronizing literals, each sent after its continuation request.
s.sendall(b"a APPEND INBOX (\\Seen) {%d}\r\n" % len(msgs[0]))
continuation(f)
s.sendall(msgs[0] + b" (\\Flagged $Raw) \"05-Jan-2024 10:00:00 +0000\" ~{%d}\r\n" % len(msgs[1]))
continuation(f)
s.sendall(msgs[1] + b" {%d}\r\n" % len(msgs[2]))
continuation(f)
s.sendall(msgs[2] + b"\r\n")
r = response(f, "a")
print("APPENDED", r.decode().strip(), flush=True)
sys.stdin.read()
"#,
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit())
    .spawn()
    .expect("python3");
    let mut out = BufReader::new(client.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("client output");
    server.kill9();
    let _ = client.kill();
    let _ = client.wait();
    assert!(
        line.starts_with("APPENDED a OK [APPENDUID ") && line.contains(" 1:3] "),
        "client saw: {line:?}"
    );

    server.spawn();
    let store = server.store();
    let stored = common::inbox(&store, USER).await;
    assert_eq!(
        stored.len(),
        3,
        "the three messages of the batch, and nothing else"
    );
    for (i, (got, sent)) in stored.iter().zip(&msgs).enumerate() {
        assert!(got == sent, "message {i} differs after the restart");
    }

    // After the restart, over IMAP: flags, date, and BINARY decoding over the wire.
    let out = python(
        &server,
        &paths,
        r#"
s, f = login()
r = command(s, f, "s", "SELECT INBOX")
assert b"* 3 EXISTS" in r, r
# This session is the first to see them: \Recent (RFC 3501 §2.3.2).
assert b"* 3 RECENT" in r, r
r = command(s, f, "f", "UID FETCH 1:3 (FLAGS INTERNALDATE)")
assert b"* 1 FETCH (UID 1 FLAGS (\\Recent \\Seen)" in r, r
assert b"* 2 FETCH (UID 2 FLAGS (\\Recent \\Flagged $Raw) INTERNALDATE \"05-Jan-2024 10:00:00 +0000\")" in r, r
assert b"* 3 FETCH (UID 3 FLAGS (\\Recent)" in r, r
# The base64 attachment, decoded: NUL bytes, so a literal8.
r = command(s, f, "b", "FETCH 1 (BINARY.PEEK[2] BINARY.SIZE[2])")
assert b"* 1 FETCH (BINARY[2] ~{10}\r\n\x00\x01\x02\x03\x00hello BINARY.SIZE[2] 10)" in r, r
# The binary message back as sent.
r = command(s, f, "c", "FETCH 2 (BINARY.PEEK[])")
assert b"BINARY[] ~{%d}\r\n" % len(msgs[1]) + msgs[1] + b")" in r, r[:200]
# BINARY without PEEK sets \Seen.
r = command(s, f, "d", "FETCH 3 (BINARY[1]<0.4>)")
assert b"BINARY[1]<0> {4}\r\nline" in r and b"FLAGS (\\Recent \\Seen)" in r, r
command(s, f, "z", "LOGOUT")
print("ok")
"#,
    )
    .output()
    .expect("python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("ok"),
        "python failed:\n{text}"
    );
}
