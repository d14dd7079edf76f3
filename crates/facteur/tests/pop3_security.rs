//! POP3 security battery: the real server, attacked over loopback with raw sockets and a rustls
//! client. Each test asserts what the attacker sees and what is left in the store.
//!
//! Covered: STLS command injection (RFC 2595 §4: plaintext pipelined after STLS is discarded),
//! credentials refused before TLS and not advertised there (RFC 2595 §2.2), the limits (over-long
//! lines, too many bad commands or failed logins, idle timeouts before and after login), and the
//! RFC 2449 policies from the config (LOGIN-DELAY enforced, EXPIRE 0).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::Server;
use common::raw::{self, Conn, Tls};

const DOMAIN: &str = "example.com";
const HOSTNAME: &str = "mx.example.com";
const USER: &str = "alice@example.com";
const PASS: &str = "alice-password-1";
/// Longest wait for one reply: long enough for a loaded CI machine, short enough to fail clearly.
const IO_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// A small POP3 client over any byte stream.

impl<S: Read + Write> Conn<S> {
    fn reply(&mut self) -> String {
        self.line()
            .expect("server closed the connection instead of replying")
    }

    /// Sends a command and returns the first line of its reply.
    fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Sends a command, expects +OK and the lines of the multi-line body (up to ".").
    fn multi(&mut self, line: &str) -> Vec<String> {
        let first = self.cmd(line);
        assert!(first.starts_with("+OK"), "{line:?} answered {first:?}");
        let mut out = Vec::new();
        loop {
            let l = self.reply();
            if l == "." {
                return out;
            }
            out.push(l);
        }
    }

    fn expect_ok(&mut self, line: &str) -> String {
        let r = self.cmd(line);
        assert!(r.starts_with("+OK"), "{line:?} answered {r:?}");
        r
    }
}

fn tcp(addr: SocketAddr) -> TcpStream {
    raw::tcp(addr, None, IO_TIMEOUT)
}

/// Connects to the plaintext port and reads the +OK greeting.
fn greet(addr: SocketAddr) -> Conn<TcpStream> {
    let mut c = Conn::new(tcp(addr));
    let g = c.reply();
    assert!(g.starts_with("+OK "), "greeting: {g:?}");
    c
}

// ---------------------------------------------------------------------------------------------
// TLS client: rustls, accepting the server's self-signed certificate.

fn handshake(tcp: TcpStream) -> Tls {
    raw::handshake(tcp, HOSTNAME)
}

/// Upgrades a plaintext connection whose STLS was just answered with +OK.
fn stls(c: Conn<TcpStream>) -> Conn<Tls> {
    assert!(
        c.buf.is_empty(),
        "server sent plaintext after its +OK to STLS: {:?}",
        String::from_utf8_lossy(&c.buf)
    );
    Conn::new(handshake(c.s))
}

/// Implicit TLS (pop3s) and the greeting.
fn greet_tls(addr: SocketAddr) -> Conn<Tls> {
    let mut c = Conn::new(handshake(tcp(addr)));
    let g = c.reply();
    assert!(g.starts_with("+OK "), "greeting: {g:?}");
    c
}

fn login(c: &mut Conn<Tls>) -> String {
    c.expect_ok(&format!("USER {USER}"));
    c.cmd(&format!("PASS {PASS}"))
}

fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A server with POP3 and alice owning two messages (delivered over SMTP).
fn start(extra: &str) -> Server {
    let s = Server::start_pop3(DOMAIN, extra);
    s.add_account(USER, PASS);
    for subject in ["one", "two"] {
        let r = common::raw_smtp(
            s.addr("smtp"),
            "sender@far.test",
            USER,
            &format!("Subject: {subject}\r\n\r\nbody {subject}"),
        );
        assert!(r.starts_with("250"), "{r}");
    }
    s
}

async fn inbox_len(server: &Server) -> usize {
    common::inbox(&server.store(), USER).await.len()
}

/// Waits until the server closes the connection, and returns what it sent before and how long
/// that took.
fn until_closed<S: Read + Write>(c: &mut Conn<S>) -> (Vec<String>, Duration) {
    let t = Instant::now();
    let lines = c.rest();
    (lines, t.elapsed())
}

// ---------------------------------------------------------------------------------------------
// STLS injection.

#[tokio::test]
async fn stls_discards_pipelined_plaintext() {
    let server = start("");
    // Credentials and a command pipelined behind STLS in the plaintext are never executed
    // inside TLS: the first reply inside TLS answers our own CAPA.
    let mut c = greet(server.addr("pop3"));
    c.send(format!("STLS\r\nUSER {USER}\r\nPASS {PASS}\r\nDELE 1\r\nQUIT\r\n").as_bytes());
    let r = c.reply();
    assert!(r.starts_with("+OK"), "STLS: {r:?}");
    let mut t = stls(c);
    let caps = t.multi("CAPA");
    assert!(
        caps.iter().any(|l| l == "USER") && !caps.iter().any(|l| l == "STLS"),
        "CAPA inside TLS: {caps:?}"
    );
    // Not logged in: the injected USER/PASS did not survive, and neither did DELE.
    let r = t.cmd("STAT");
    assert!(r.starts_with("-ERR"), "STAT before login inside TLS: {r:?}");
    let r = t.cmd(&format!("PASS {PASS}"));
    assert!(r.starts_with("-ERR Send USER first"), "{r:?}");
    assert!(login(&mut t).starts_with("+OK"));
    let r = t.expect_ok("STAT");
    assert!(r.starts_with("+OK 2 "), "{r:?}");
    t.expect_ok("QUIT");
    assert_eq!(inbox_len(&server).await, 2, "the injected DELE + QUIT ran");

    // STLS inside TLS, and on the implicit-TLS port, is refused.
    let mut c = greet(server.addr("pop3"));
    c.expect_ok("STLS");
    let mut t = stls(c);
    let r = t.cmd("STLS");
    assert!(r.starts_with("-ERR"), "second STLS: {r:?}");
    let mut t = greet_tls(server.addr("pop3s"));
    let r = t.cmd("STLS");
    assert!(r.starts_with("-ERR"), "STLS on pop3s: {r:?}");
}

// ---------------------------------------------------------------------------------------------
// Plaintext credentials.

#[tokio::test]
async fn credentials_refused_before_tls_and_not_advertised() {
    let server = start("");
    let mut c = greet(server.addr("pop3"));
    let caps = c.multi("CAPA");
    assert!(caps.iter().any(|l| l == "STLS"), "{caps:?}");
    assert!(
        !caps
            .iter()
            .any(|l| l == "USER" || l.starts_with("SASL") || l.starts_with("APOP")),
        "credentials advertised before TLS: {caps:?}"
    );
    let plain = b64(format!("\0{USER}\0{PASS}").as_bytes());
    // Even with the right password, nothing is accepted over plaintext; each answer is the same
    // [AUTH] refusal, and the password is never checked (no failure counted).
    for cmd in [
        format!("USER {USER}"),
        format!("PASS {PASS}"),
        "AUTH".to_string(),
        "AUTH PLAIN".to_string(),
        format!("AUTH PLAIN {plain}"),
        format!("APOP {USER} 0123456789abcdef0123456789abcdef"),
    ] {
        let r = c.cmd(&cmd);
        assert!(
            r.starts_with("-ERR [AUTH] TLS required"),
            "{cmd:?} before TLS answered {r:?}"
        );
    }
    // After the refusals the session is still in AUTHORIZATION and can upgrade.
    let r = c.cmd("STAT");
    assert!(r.starts_with("-ERR"), "{r:?}");
    c.expect_ok("STLS");
    let mut t = stls(c);
    let caps = t.multi("CAPA");
    assert!(
        caps.iter().any(|l| l == "USER") && caps.iter().any(|l| l == "SASL PLAIN"),
        "{caps:?}"
    );
    let r = t.cmd(&format!("AUTH PLAIN {plain}"));
    assert!(r.starts_with("+OK"), "AUTH PLAIN inside TLS: {r:?}");
}

// ---------------------------------------------------------------------------------------------
// Limits.

#[tokio::test]
async fn overlong_lines_are_refused_and_an_endless_one_closes() {
    let server = start("");
    // A line over the limit that ends: refused, counted, the session goes on.
    let mut t = greet_tls(server.addr("pop3s"));
    let r = t.cmd(&format!("USER {}", "a".repeat(1000)));
    assert!(r.starts_with("-ERR Line too long"), "{r:?}");
    assert!(login(&mut t).starts_with("+OK"));
    t.expect_ok("QUIT");

    // No line end at all: refused and closed once the limit is passed, without waiting for more.
    // (Less than one read of the server, so it closes with nothing unread: no RST races the reply.)
    let mut c = greet(server.addr("pop3"));
    c.send(&[b'A'; 2000]);
    let (lines, _) = until_closed(&mut c);
    assert_eq!(lines, ["-ERR Line too long"], "{lines:?}");

    // The same inside TLS after login: nothing deleted, lock released.
    let mut t = greet_tls(server.addr("pop3s"));
    assert!(login(&mut t).starts_with("+OK"));
    t.expect_ok("DELE 1");
    t.send(&[b'x'; 2000]);
    let (lines, _) = until_closed(&mut t);
    assert_eq!(lines, ["-ERR Line too long"], "{lines:?}");
    let mut t = greet_tls(server.addr("pop3s"));
    assert!(login(&mut t).starts_with("+OK"), "lock not released");
    t.expect_ok("QUIT");
    assert_eq!(inbox_len(&server).await, 2);
}

#[tokio::test]
async fn too_many_bad_commands_or_failed_logins_disconnect() {
    // Bare keys continue the harness's [auth] section: no throttle delay, so three failures are quick.
    let server = start("base_delay_ms = 0\nmax_delay_ms = 0\n[limits]\nmax_bad_commands = 3\n");
    let mut c = greet(server.addr("pop3"));
    assert!(c.cmd("BOGUS").starts_with("-ERR"));
    assert!(c.cmd("RETR 1").starts_with("-ERR"));
    c.send(b"XYZZY\r\nNOOP\r\n");
    let (lines, _) = until_closed(&mut c);
    assert_eq!(
        lines,
        [
            "-ERR Unknown command",
            "-ERR Too many errors, closing connection"
        ],
        "the NOOP after the third error must not be answered"
    );

    // Failed logins count as well (inside TLS).
    let mut t = greet_tls(server.addr("pop3s"));
    for _ in 0..2 {
        t.expect_ok(&format!("USER {USER}"));
        let r = t.cmd("PASS wrong-password");
        assert!(r.starts_with("-ERR [AUTH] Authentication failed"), "{r:?}");
    }
    t.expect_ok(&format!("USER {USER}"));
    t.send(b"PASS wrong-password\r\n");
    let (lines, _) = until_closed(&mut t);
    assert_eq!(
        lines,
        [
            "-ERR [AUTH] Authentication failed",
            "-ERR Too many errors, closing connection"
        ]
    );

    // Bad commands after login: the session closes without entering UPDATE.
    let mut t = greet_tls(server.addr("pop3s"));
    assert!(login(&mut t).starts_with("+OK"));
    t.expect_ok("DELE 1");
    t.send(b"RETR 1\r\nLIST 99\r\nFOO\r\n");
    let (lines, _) = until_closed(&mut t);
    assert_eq!(
        lines.last().map(String::as_str),
        Some("-ERR Too many errors, closing connection")
    );
    assert_eq!(inbox_len(&server).await, 2);
}

#[tokio::test]
async fn idle_timeouts_before_and_after_login_are_configurable() {
    let server = start("[limits]\ncommand_timeout_secs = 1\nidle_timeout_secs = 2\n");
    // Before login: limits.command_timeout_secs.
    let mut c = greet(server.addr("pop3"));
    let (lines, took) = until_closed(&mut c);
    assert_eq!(lines, ["-ERR Autologout; idle for too long"]);
    assert!(
        took >= Duration::from_millis(900),
        "closed before the timeout: {took:?}"
    );
    // After login: limits.idle_timeout_secs, and a timeout is not a QUIT (RFC 1939 §3): the
    // message marked deleted stays.
    let mut t = greet_tls(server.addr("pop3s"));
    assert!(login(&mut t).starts_with("+OK"));
    t.expect_ok("DELE 2");
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_millis(1200));
    // Activity resets the timer. (Only lower bounds are asserted: a loaded machine can close late,
    // never early; a session that is not closed at all fails on its lines.)
    t.expect_ok("NOOP");
    let (lines, took) = until_closed(&mut t);
    assert_eq!(lines, ["-ERR Autologout; idle for too long"]);
    assert!(
        took >= Duration::from_millis(1900) && t0.elapsed() >= Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(inbox_len(&server).await, 2);
}

// ---------------------------------------------------------------------------------------------
// RFC 2449 policies from the config.

#[tokio::test]
async fn login_delay_from_config_is_advertised_and_enforced() {
    let server = start("[pop3]\nlogin_delay_secs = 3600\n");
    let mut c = greet(server.addr("pop3"));
    let caps = c.multi("CAPA");
    assert!(
        caps.iter().any(|l| l == "LOGIN-DELAY 3600") && caps.iter().any(|l| l == "EXPIRE NEVER"),
        "{caps:?}"
    );
    let mut t = greet_tls(server.addr("pop3s"));
    assert!(login(&mut t).starts_with("+OK"));
    t.expect_ok("QUIT");
    let mut t = greet_tls(server.addr("pop3s"));
    let r = login(&mut t);
    assert!(r.starts_with("-ERR [LOGIN-DELAY] "), "second login: {r:?}");
    // Still in AUTHORIZATION, and the maildrop is not locked by the refused login.
    assert!(t.cmd("STAT").starts_with("-ERR"));
}

#[tokio::test]
async fn expire_zero_removes_what_was_retrieved() {
    let server = start("[pop3]\nexpire = 0\n");
    let mut t = greet_tls(server.addr("pop3s"));
    let caps = t.multi("CAPA");
    assert!(caps.iter().any(|l| l == "EXPIRE 0"), "{caps:?}");
    assert!(
        !caps.iter().any(|l| l.starts_with("LOGIN-DELAY")),
        "{caps:?}"
    );
    assert!(login(&mut t).starts_with("+OK"));
    let body = t.multi("RETR 1");
    assert!(body.iter().any(|l| l == "Subject: one"), "{body:?}");
    t.multi("TOP 2 0");
    let r = t.expect_ok("QUIT");
    assert!(r.contains("(1 messages left)"), "{r:?}");
    let left = common::inbox(&server.store(), USER).await;
    assert_eq!(left.len(), 1);
    assert!(String::from_utf8_lossy(&left[0]).contains("Subject: two"));
}
