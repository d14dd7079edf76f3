//! SMTP security battery: the real server, attacked over loopback with raw sockets and a rustls
//! client. Each test asserts the replies the attacker sees and what ended up in the store.
//!
//! Covered: SMTP smuggling (malformed end-of-data sequences), STARTTLS command injection
//! (RFC 3207 §5), open relay tricks (classic and those of nmap's smtp-open-relay script), AUTH
//! policy and brute force, resource limits, and the TLS versions offered (with `openssl s_client`).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Server;
use common::raw::{self, Conn, Tls};

const DOMAIN: &str = "example.com";
const HOSTNAME: &str = "mx.example.com";
/// Longest wait for one reply: long enough for a loaded CI machine, short enough to fail clearly.
const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// Peak resident memory the server may reach under any of these attacks.
const MAX_SERVER_RSS_KB: u64 = 200 * 1024;

// ---------------------------------------------------------------------------------------------
// A small SMTP client over any byte stream.

#[derive(Debug, Clone)]
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    /// Enhanced status code of the first line ("" when absent).
    fn enhanced(&self) -> &str {
        let first = &self.lines[0];
        let rest = first.get(4..).unwrap_or("");
        let token = rest.split(' ').next().unwrap_or("");
        if token.chars().next().is_some_and(|c| c.is_ascii_digit()) && token.contains('.') {
            token
        } else {
            ""
        }
    }
    fn text(&self) -> String {
        self.lines.join("\n")
    }
}

impl<S: Read + Write> Conn<S> {
    /// One (possibly multi-line) reply; None when the server closed the connection.
    fn try_reply(&mut self) -> Option<Reply> {
        let mut lines = Vec::new();
        loop {
            let l = self.line()?;
            let code = l
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .unwrap_or_else(|| panic!("not an SMTP reply line: {l:?}"));
            let more = l.as_bytes().get(3) == Some(&b'-');
            lines.push(l);
            if !more {
                return Some(Reply { code, lines });
            }
        }
    }

    fn reply(&mut self) -> Reply {
        self.try_reply()
            .expect("server closed the connection instead of replying")
    }

    fn cmd(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Sends a command and checks the reply code.
    fn expect(&mut self, line: &str, code: u16) -> Reply {
        let r = self.cmd(line);
        assert_eq!(r.code, code, "{line:?} answered {:?}", r.lines);
        r
    }

    /// Every reply until the server closes the connection.
    fn replies(&mut self) -> Vec<Reply> {
        let mut out = Vec::new();
        while let Some(r) = self.try_reply() {
            out.push(r);
        }
        out
    }
}

fn tcp(addr: SocketAddr) -> TcpStream {
    raw::tcp(addr, None, IO_TIMEOUT)
}

fn connect(addr: SocketAddr) -> Conn<TcpStream> {
    Conn::new(tcp(addr))
}

/// Connects and reads the 220 greeting.
fn greet(addr: SocketAddr) -> Conn<TcpStream> {
    let mut c = connect(addr);
    let r = c.reply();
    assert_eq!(r.code, 220, "greeting: {:?}", r.lines);
    c
}

/// A client connection from another loopback address (127.0.0.2), which has its own per-IP count.
async fn greet_from_other_ip(addr: SocketAddr) -> Conn<TcpStream> {
    let mut c = Conn::new(raw::tcp(addr, Some([127, 0, 0, 2].into()), IO_TIMEOUT));
    let r = c.reply();
    assert_eq!(r.code, 220, "greeting: {:?}", r.lines);
    c
}

// ---------------------------------------------------------------------------------------------
// TLS client: rustls, accepting the server's self-signed certificate.

fn handshake(tcp: TcpStream) -> Tls {
    raw::handshake(tcp, HOSTNAME)
}

/// Upgrades a plaintext connection whose STARTTLS was just answered with 220.
fn starttls(c: Conn<TcpStream>) -> Conn<Tls> {
    assert!(
        c.buf.is_empty(),
        "server sent plaintext after its 220 to STARTTLS: {:?}",
        String::from_utf8_lossy(&c.buf)
    );
    Conn::new(handshake(c.s))
}

/// Implicit TLS (port 465) and the greeting.
fn greet_tls(addr: SocketAddr) -> Conn<Tls> {
    let mut c = Conn::new(handshake(tcp(addr)));
    let r = c.reply();
    assert_eq!(r.code, 220, "greeting: {:?}", r.lines);
    c
}

fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn plain(user: &str, pass: &str) -> String {
    b64(format!("\0{user}\0{pass}").as_bytes())
}

// ---------------------------------------------------------------------------------------------
// Store and process helpers.

async fn inbox_len(server: &Server, address: &str) -> usize {
    common::inbox(&server.store(), address).await.len()
}

async fn assert_queue_empty(server: &Server) {
    let q = server.store().queue_list().await.expect("queue_list");
    assert!(
        q.is_empty(),
        "something was queued for relay: {:?}",
        q.iter()
            .map(|e| (
                &e.sender,
                e.recipients.iter().map(|r| &r.address).collect::<Vec<_>>()
            ))
            .collect::<Vec<_>>()
    );
}

/// Peak resident set size of the server process (VmHWM), in KiB.
fn server_peak_rss_kb(server: &Server) -> u64 {
    let pid = server.child.as_ref().expect("server running").id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

fn assert_server_alive(server: &Server) {
    let pid = server.child.as_ref().expect("server running").id();
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the server process died"
    );
}

/// A full, ordinary delivery from a fresh connection: the server still serves others.
async fn deliver_ok(server: &Server, c: &mut Conn<TcpStream>, subject: &str) {
    let before = inbox_len(server, &format!("alice@{DOMAIN}")).await;
    c.expect("EHLO other.test", 250);
    c.expect("MAIL FROM:<someone@far.test>", 250);
    c.expect(&format!("RCPT TO:<alice@{DOMAIN}>"), 250);
    c.expect("DATA", 354);
    c.send(format!("Subject: {subject}\r\n\r\nstill serving\r\n.\r\n").as_bytes());
    let r = c.reply();
    assert_eq!(r.code, 250, "end of data: {:?}", r.lines);
    c.expect("QUIT", 221);
    assert_eq!(
        inbox_len(server, &format!("alice@{DOMAIN}")).await,
        before + 1
    );
}

fn start_with_accounts(extra: &str) -> Server {
    let server = Server::start_with(DOMAIN, extra);
    server.add_account(&format!("alice@{DOMAIN}"), "alice-password-1");
    server.add_account(&format!("bob@{DOMAIN}"), "bob-password-1");
    server
}

// ---------------------------------------------------------------------------------------------
// SMTP smuggling.

/// What follows the malformed end of data: a whole second transaction, then the real CRLF.CRLF.
const SMUGGLED: &str = "MAIL FROM:<smuggler@far.test>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n\
                        Subject: smuggled\r\n\r\nsmuggled body\r\n";

/// Malformed end-of-data sequences (SEC Consult, 2023; Postfix's and Sendmail's lists).
const ENDINGS: &[(&str, &[u8])] = &[
    ("\\n.\\n", b"\n.\n"),
    ("\\n.\\r\\n", b"\n.\r\n"),
    ("\\r.\\r", b"\r.\r"),
    ("\\r.\\n", b"\r.\n"),
    ("\\n.\\r", b"\n.\r"),
    ("\\r.\\r\\n", b"\r.\r\n"),
    ("\\r\\n.\\r", b"\r\n.\r"),
    ("\\r\\n.\\n", b"\r\n.\n"),
    ("\\n\\n.\\n\\n", b"\n\n.\n\n"),
    ("bare LF lines", b"\nbare LF line\nanother one\n"),
];

/// NUL before the dot: harmless here, but a next hop that drops NULs (several MTAs do) would see
/// CRLF.CRLF, so a relayed copy would smuggle. Refused like the bare CR/LF cases.
const NUL_ENDING: (&str, &[u8]) = ("\\r\\n\\0.\\r\\n", b"\r\n\0.\r\n");

/// Sends one message whose text holds `ending` + a smuggled transaction; returns every reply
/// after the 354 (including the one to QUIT).
fn smuggle(addr: SocketAddr, ending: &[u8]) -> Vec<Reply> {
    let mut c = greet(addr);
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<sender@far.test>", 250);
    c.expect(&format!("RCPT TO:<alice@{DOMAIN}>"), 250);
    c.expect("DATA", 354);
    let mut msg = b"Subject: first\r\n\r\nfirst body".to_vec();
    msg.extend_from_slice(ending);
    msg.extend_from_slice(SMUGGLED.as_bytes());
    msg.extend_from_slice(b".\r\n");
    c.send(&msg);
    c.send(b"QUIT\r\n");
    c.replies()
}

fn describe(replies: &[Reply]) -> Vec<String> {
    replies.iter().map(|r| r.text()).collect()
}

/// Runs every ending against a default (`reject`) server and checks the refusal and the store.
async fn assert_smuggling_refused(endings: &[(&str, &[u8])]) {
    let server = start_with_accounts("");
    let mx = server.addr("smtp");
    let mut failures = Vec::new();
    for (name, ending) in endings {
        let replies = smuggle(mx, ending);
        let codes: Vec<u16> = replies.iter().map(|r| r.code).collect();
        // Exactly one reply to the end of data (a refusal), then QUIT's: the smuggled MAIL, RCPT
        // and DATA never got a reply because they were never executed.
        let ok = codes.len() == 2
            && codes[0] == 550
            && replies[0].enhanced().starts_with("5.5.")
            && codes[1] == 221;
        if !ok {
            failures.push(format!("{name}: {:?}", describe(&replies)));
        }
    }
    let alice = common::inbox(&server.store(), &format!("alice@{DOMAIN}")).await;
    let bob = inbox_len(&server, &format!("bob@{DOMAIN}")).await;
    assert_queue_empty(&server).await;
    assert_eq!(bob, 0, "a smuggled message was delivered to bob");
    assert!(
        failures.is_empty() && alice.is_empty(),
        "malformed end of data not refused with 550 5.5.x:\n{}\n{} message(s) stored for alice:\n{}",
        failures.join("\n"),
        alice.len(),
        alice
            .iter()
            .map(|m| format!("{:?}", String::from_utf8_lossy(m)))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test]
async fn smuggling_is_refused_with_reject_policy() {
    assert_smuggling_refused(ENDINGS).await;
}

#[tokio::test]
async fn smuggling_with_nul_before_the_dot_is_refused() {
    assert_smuggling_refused(&[NUL_ENDING]).await;
}

#[tokio::test]
async fn smuggling_with_normalize_policy_stores_at_most_one_message() {
    let server = start_with_accounts("[smtp]\nbare_newline = \"normalize\"\n");
    let mx = server.addr("smtp");
    let alice = format!("alice@{DOMAIN}");
    for (name, ending) in ENDINGS.iter().chain([&NUL_ENDING]) {
        let before = inbox_len(&server, &alice).await;
        let replies = smuggle(mx, ending);
        assert!(
            replies.len() == 2 && replies[1].code == 221,
            "{name}: expected one reply to the end of data, then 221; got {:?}",
            describe(&replies)
        );
        let stored = common::inbox(&server.store(), &alice).await;
        match replies[0].code {
            250 => {
                assert_eq!(stored.len(), before + 1, "{name}: one message stored");
                let m = String::from_utf8_lossy(stored.last().expect("message"));
                assert!(
                    m.contains("first body")
                        && m.contains("MAIL FROM:<smuggler@far.test>")
                        && m.contains("smuggled body"),
                    "{name}: the smuggled text must be part of the one message: {m:?}"
                );
            }
            c if c >= 500 => assert_eq!(stored.len(), before, "{name}: refused yet stored"),
            _ => panic!("{name}: unexpected reply {:?}", describe(&replies)),
        }
        assert_eq!(
            inbox_len(&server, &format!("bob@{DOMAIN}")).await,
            0,
            "{name}: smuggled message delivered"
        );
    }
    assert_queue_empty(&server).await;
}

// ---------------------------------------------------------------------------------------------
// STARTTLS command injection (RFC 3207 §5; CVE-2011-0411 and its 2021 siblings).

#[tokio::test]
async fn starttls_discards_pipelined_plaintext() {
    let server = start_with_accounts("");
    for service in ["smtp", "submission"] {
        let mut c = greet(server.addr(service));
        c.expect("EHLO client.test", 250);
        c.send(b"STARTTLS\r\nNOOP injected\r\n");
        let r = c.reply();
        assert_eq!(r.code, 220, "{service} STARTTLS: {:?}", r.lines);
        let mut t = starttls(c);
        let r = t.cmd("EHLO inside.test");
        assert!(
            r.code == 250 && r.lines[0].contains("Hello inside.test"),
            "{service}: the first reply inside TLS must answer our EHLO, not the injected NOOP: {:?}",
            r.lines
        );
        assert!(
            !r.text().contains("STARTTLS"),
            "{service}: STARTTLS offered again inside TLS: {:?}",
            r.lines
        );
        t.expect("NOOP", 250);
        t.expect("QUIT", 221);
        assert!(t.try_reply().is_none(), "{service}: reply after 221");
    }

    // An injected transaction is not executed, and EHLO is needed again after TLS.
    let mut c = greet(server.addr("smtp"));
    c.expect("EHLO client.test", 250);
    c.send(b"STARTTLS\r\nMAIL FROM:<attacker@far.test>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n");
    assert_eq!(c.reply().code, 220);
    let mut t = starttls(c);
    let r = t.cmd("MAIL FROM:<sender@far.test>");
    assert_eq!(
        r.code, 503,
        "MAIL right after the TLS handshake must need a new EHLO: {:?}",
        r.lines
    );
    t.expect("EHLO inside.test", 250);
    // 250 and not 503 "nested MAIL": the injected MAIL did not open a transaction.
    t.expect("MAIL FROM:<sender@far.test>", 250);
    t.expect(&format!("RCPT TO:<alice@{DOMAIN}>"), 250);
    t.expect("DATA", 354);
    t.send(b"Subject: inside\r\n\r\nsent inside TLS\r\n.\r\n");
    assert_eq!(t.reply().code, 250);
    t.expect("QUIT", 221);

    let alice = common::inbox(&server.store(), &format!("alice@{DOMAIN}")).await;
    assert_eq!(alice.len(), 1);
    let m = String::from_utf8_lossy(&alice[0]);
    assert!(
        m.starts_with("Return-Path: <sender@far.test>\r\n") && m.contains("with ESMTPS"),
        "{m}"
    );
    assert!(!m.contains("attacker"), "{m}");
    assert_eq!(inbox_len(&server, &format!("bob@{DOMAIN}")).await, 0);

    // Submission: injected AUTH is discarded too; after TLS the session is unauthenticated.
    let mut c = greet(server.addr("submission"));
    c.expect("EHLO client.test", 250);
    c.send(
        format!(
            "STARTTLS\r\nAUTH PLAIN {}\r\n",
            plain(&format!("alice@{DOMAIN}"), "alice-password-1")
        )
        .as_bytes(),
    );
    assert_eq!(c.reply().code, 220);
    let mut t = starttls(c);
    t.expect("EHLO inside.test", 250);
    let r = t.cmd(&format!("MAIL FROM:<alice@{DOMAIN}>"));
    assert_eq!(
        r.code, 530,
        "injected AUTH must not authenticate the TLS session: {:?}",
        r.lines
    );
}

// ---------------------------------------------------------------------------------------------
// Open relay.

/// (MAIL FROM, RCPT TO) pairs that must never lead to a relayed message. The first group is the
/// classic list; the second reproduces the combinations of nmap's smtp-open-relay script with
/// to = relaytest, domain = far.test, server name = mx.example.com, ip = 127.0.0.1.
fn relay_attempts() -> Vec<(String, String)> {
    let from = "<sender@far.test>".to_string();
    let mut v: Vec<(String, String)> = [
        "<user@far.test>",
        "<user%far.test@example.com>",
        "<far.test!user@example.com>",
        "<\"user@far.test\"@example.com>",
        "<@example.com:user@far.test>",
        "<@mx.example.com,@example.com:user@far.test>",
        "<user@[127.0.0.1]>",
        "<user@far.test@example.com>",
        "<user@far.test>  ",
        "<USER@FAR.TEST>",
        "<user@far.test.>",
        "<user@example.com.far.test>",
    ]
    .into_iter()
    .map(|to| (from.clone(), to.to_string()))
    .collect();
    let (to, domain, srv, ip) = ("relaytest", "far.test", HOSTNAME, "127.0.0.1");
    let froms = [
        "<>".to_string(),
        format!("<antispam@{domain}>"),
        format!("<antispam@{srv}>"),
        format!("<antispam@[{ip}]>"),
    ];
    for f in &froms {
        v.push((f.clone(), format!("<{to}@{domain}>")));
    }
    let f = &froms[3];
    for t in [
        format!("<{to}%{domain}@[{ip}]>"),
        format!("<{to}%{domain}@{srv}>"),
        format!("<\"{to}@{domain}\">"),
        format!("<\"{to}%{domain}\">"),
        format!("<{to}@{domain}@[{ip}]>"),
        format!("<\"{to}@{domain}\"@[{ip}]>"),
        format!("<{to}@{domain}@{srv}>"),
        format!("<@[{ip}]:{to}@{domain}>"),
        format!("<@{srv}:{to}@{domain}>"),
        format!("<{domain}!{to}>"),
        format!("<{domain}!{to}@[{ip}]>"),
        format!("<{domain}!{to}@{srv}>"),
    ] {
        v.push((f.clone(), t));
    }
    v
}

#[tokio::test]
async fn mx_is_not_an_open_relay() {
    let server = start_with_accounts("");
    let mx = server.addr("smtp");
    let mut relayed = Vec::new();
    for (from, to) in relay_attempts() {
        let mut c = greet(mx);
        c.expect("EHLO relay-test.far.test", 250);
        let r = c.cmd(&format!("MAIL FROM:{from}"));
        if r.code != 250 {
            assert!(r.code >= 500, "MAIL FROM:{from}: {:?}", r.lines);
            continue;
        }
        let r = c.cmd(&format!("RCPT TO:{to}"));
        // 554 5.7.1, 550/553, or 501 for an address the parser rejects: all permanent refusals.
        let refused = (500..600).contains(&r.code);
        if !refused {
            relayed.push(format!("MAIL FROM:{from} -> RCPT TO:{to}: {}", r.text()));
            // Follow through, so the assertion below sees what an attacker would have achieved.
            if r.code == 250 {
                c.expect("DATA", 354);
                c.send(b"Subject: relay test\r\n\r\nrelay\r\n.\r\n");
                c.reply();
            }
        }
        c.expect("QUIT", 221);
    }
    assert!(
        relayed.is_empty(),
        "recipients accepted without authentication:\n{}",
        relayed.join("\n")
    );
    assert_queue_empty(&server).await;
    assert_eq!(inbox_len(&server, &format!("alice@{DOMAIN}")).await, 0);
}

#[tokio::test]
async fn relay_refusal_uses_relay_denied_for_foreign_domains() {
    // The plain case gets the specific code, so senders see why.
    let server = start_with_accounts("");
    let mut c = greet(server.addr("smtp"));
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<sender@far.test>", 250);
    let r = c.cmd("RCPT TO:<user@far.test>");
    assert_eq!((r.code, r.enhanced()), (554, "5.7.1"), "{:?}", r.lines);
    let r = c.cmd("RCPT TO:<user@[127.0.0.1]>");
    assert_eq!((r.code, r.enhanced()), (554, "5.7.1"), "{:?}", r.lines);
    let r = c.cmd("RCPT TO:<@example.com:user@far.test>");
    assert_eq!((r.code, r.enhanced()), (554, "5.7.1"), "{:?}", r.lines);
    assert_queue_empty(&server).await;
}

// ---------------------------------------------------------------------------------------------
// Authentication.

#[tokio::test]
async fn auth_only_on_submission_and_only_inside_tls() {
    let server = start_with_accounts("");
    let creds = plain(&format!("alice@{DOMAIN}"), "alice-password-1");

    // Submission before TLS: AUTH not offered, refused with 538, and MAIL needs authentication.
    let mut c = greet(server.addr("submission"));
    let r = c.expect("EHLO client.test", 250);
    assert!(
        !r.text().contains("AUTH"),
        "AUTH offered in plaintext: {:?}",
        r.lines
    );
    assert!(r.text().contains("STARTTLS"), "{:?}", r.lines);
    let r = c.cmd(&format!("AUTH PLAIN {creds}"));
    assert_eq!((r.code, r.enhanced()), (538, "5.7.11"), "{:?}", r.lines);
    let r = c.cmd("AUTH LOGIN");
    assert_eq!((r.code, r.enhanced()), (538, "5.7.11"), "{:?}", r.lines);
    let r = c.cmd(&format!("MAIL FROM:<alice@{DOMAIN}>"));
    assert_eq!(r.code, 530, "{:?}", r.lines);
    c.expect("QUIT", 221);

    // MX: never AUTH, before or after TLS.
    let mut c = greet(server.addr("smtp"));
    let r = c.expect("EHLO client.test", 250);
    assert!(!r.text().contains("AUTH"), "{:?}", r.lines);
    let r = c.cmd(&format!("AUTH PLAIN {creds}"));
    assert_eq!(r.code, 502, "{:?}", r.lines);
    c.expect("STARTTLS", 220);
    let mut t = starttls(c);
    let r = t.expect("EHLO client.test", 250);
    assert!(!r.text().contains("AUTH"), "{:?}", r.lines);
    let r = t.cmd(&format!("AUTH PLAIN {creds}"));
    assert_eq!(r.code, 502, "{:?}", r.lines);
    t.expect("QUIT", 221);

    // Submission after STARTTLS: offered and working.
    let mut c = greet(server.addr("submission"));
    c.expect("EHLO client.test", 250);
    c.expect("STARTTLS", 220);
    let mut t = starttls(c);
    let r = t.expect("EHLO client.test", 250);
    assert!(r.text().contains("AUTH PLAIN LOGIN"), "{:?}", r.lines);
    t.expect(&format!("AUTH PLAIN {creds}"), 235);
    t.expect("QUIT", 221);
}

#[tokio::test]
async fn brute_force_is_banned_and_leaks_nothing() {
    // Delays are the throttle's unit tests' business (crates/net); here: answers and the ban.
    let server =
        start_with_accounts("base_delay_ms = 0\nmax_delay_ms = 0\nmax_failures_per_ip = 3\n");
    let alice = format!("alice@{DOMAIN}");
    let mut t = greet_tls(server.addr("submissions"));
    t.expect("EHLO client.test", 250);

    let unknown = t.cmd(&format!(
        "AUTH PLAIN {}",
        plain(&format!("nobody@{DOMAIN}"), "guess-1")
    ));
    let wrong = t.cmd(&format!("AUTH PLAIN {}", plain(&alice, "guess-2")));
    assert_eq!(unknown.code, 535, "{:?}", unknown.lines);
    assert_eq!(
        unknown.lines, wrong.lines,
        "an unknown user and a wrong password must get the identical reply"
    );

    // The third failure (max_failures_per_ip = 3) bans the address; the answer does not say so.
    t.send(b"AUTH LOGIN\r\n");
    assert_eq!(t.reply().code, 334);
    t.send(format!("{}\r\n", b64(b"nobody@example.com")).as_bytes());
    assert_eq!(t.reply().code, 334);
    let r = t.cmd(&b64(b"guess-3"));
    assert_eq!(r.lines, wrong.lines);

    // Banned: alice never logged in from here, so even her right password gets the ordinary
    // failure, without a check, on every submission port.
    let r = t.cmd(&format!("AUTH PLAIN {}", plain(&alice, "alice-password-1")));
    assert_eq!(r.lines, wrong.lines);
    let mut c = greet(server.addr("submission"));
    c.expect("EHLO client.test", 250);
    c.expect("STARTTLS", 220);
    let mut t = starttls(c);
    t.expect("EHLO client.test", 250);
    let r = t.cmd(&format!("AUTH PLAIN {}", plain(&alice, "alice-password-1")));
    assert_eq!(r.lines, wrong.lines);

    // Another IP is not affected, and inbound mail from the banned IP still flows.
    let mut c = greet_from_other_ip(server.addr("submission")).await;
    c.expect("EHLO client.test", 250);
    c.expect("STARTTLS", 220);
    let mut t = starttls(c);
    t.expect("EHLO client.test", 250);
    t.expect(
        &format!("AUTH PLAIN {}", plain(&alice, "alice-password-1")),
        235,
    );
    let mut c = greet(server.addr("smtp"));
    deliver_ok(&server, &mut c, "after the ban").await;
}

// ---------------------------------------------------------------------------------------------
// Resource limits.

/// Writes `data` from another thread while this one reads every reply until the server closes
/// (or `stop_after` replies arrived), so neither side blocks on full socket buffers.
fn pump(c: &mut Conn<TcpStream>, data: Vec<u8>, stop_after: Option<usize>) -> Vec<Reply> {
    let mut w = c.s.try_clone().expect("clone socket");
    let writer = std::thread::spawn(move || {
        // The server may close mid-way: that is an acceptable outcome, not a test failure.
        let _ = w.write_all(&data);
    });
    let mut replies = Vec::new();
    while stop_after.is_none_or(|n| replies.len() < n) {
        match c.try_reply() {
            Some(r) => replies.push(r),
            None => break,
        }
    }
    writer.join().expect("writer thread");
    replies
}

#[tokio::test]
async fn ten_megabytes_without_a_line_end() {
    let server = start_with_accounts("");
    let mx = server.addr("smtp");

    // In the command phase.
    let mut c = greet(mx);
    c.expect("EHLO client.test", 250);
    let mut data = vec![b'A'; 10 * 1024 * 1024];
    data.extend_from_slice(b"\r\nNOOP\r\n");
    // Exactly one reply to the overlong line (a pipelining client must be able to match replies to
    // commands), then the NOOP's.
    let replies = pump(&mut c, data, Some(2));
    let got: Vec<(u16, String)> = replies
        .iter()
        .map(|r| (r.code, r.enhanced().to_string()))
        .collect();
    assert_eq!(
        got,
        vec![(500, "5.5.6".to_string()), (250, "2.0.0".to_string())],
        "{replies:?}"
    );

    // In DATA: refused at the end, nothing stored.
    let mut c = greet(mx);
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<sender@far.test>", 250);
    c.expect(&format!("RCPT TO:<alice@{DOMAIN}>"), 250);
    c.expect("DATA", 354);
    let mut data = b"Subject: long\r\n\r\n".to_vec();
    data.extend(std::iter::repeat_n(b'B', 10 * 1024 * 1024));
    data.extend_from_slice(b"\r\n.\r\n");
    let replies = pump(&mut c, data, Some(1));
    assert_eq!(replies.len(), 1, "one reply to the end of data");
    assert_eq!(replies[0].code, 550, "{:?}", replies[0].lines);
    c.expect("NOOP", 250);
    c.expect("QUIT", 221);

    assert_server_alive(&server);
    assert_eq!(inbox_len(&server, &format!("alice@{DOMAIN}")).await, 0);
    let rss = server_peak_rss_kb(&server);
    assert!(rss < MAX_SERVER_RSS_KB, "server peak RSS {rss} KiB");
    deliver_ok(&server, &mut greet(mx), "after 10 MB").await;
}

#[tokio::test]
async fn an_overlong_line_gets_exactly_one_reply() {
    // A line longer than the limit that arrives over several reads must still get one reply, or a
    // pipelining client pairs the following replies with the wrong commands.
    let server = start_with_accounts("");
    let mut c = greet(server.addr("smtp"));
    c.expect("EHLO client.test", 250);
    c.send(&vec![b'A'; 2000]);
    std::thread::sleep(Duration::from_millis(200));
    c.send(&vec![b'A'; 2000]);
    std::thread::sleep(Duration::from_millis(200));
    c.send(b"\r\nNOOP\r\n");
    let first = c.reply();
    assert_eq!(
        (first.code, first.enhanced()),
        (500, "5.5.6"),
        "{:?}",
        first.lines
    );
    let second = c.reply();
    assert_eq!(
        second.code, 250,
        "the NOOP after one overlong line must get 250, got {:?}",
        second.lines
    );
}

#[tokio::test]
async fn a_hundred_thousand_pipelined_recipients() {
    const N: usize = 100_000;
    const MAX_RCPT: usize = 100; // limits.max_recipients default
    const MAX_BAD: usize = 10; // limits.max_bad_commands default
    let server = start_with_accounts("");
    let mut c = greet(server.addr("smtp"));
    let r = c.expect("EHLO client.test", 250);
    assert!(r.text().contains("PIPELINING"));
    let mut data = b"MAIL FROM:<sender@far.test>\r\n".to_vec();
    for _ in 0..N {
        data.extend_from_slice(format!("RCPT TO:<alice@{DOMAIN}>\r\n").as_bytes());
    }
    // Read until the server closes the connection.
    let replies = pump(&mut c, data, None);
    assert_eq!(replies[0].code, 250);
    let accepted = replies[1..].iter().filter(|r| r.code == 250).count();
    let over = replies[1..]
        .iter()
        .filter(|r| (r.code, r.enhanced()) == (452, "4.5.3"))
        .count();
    // As many again as the limit are refused without counting (a client may overshoot in one
    // pipelined group); each further one is a bad command, and the session ends at the limit.
    assert_eq!(
        (accepted, over),
        (MAX_RCPT, MAX_RCPT + MAX_BAD),
        "the first {MAX_RCPT} accepted, then 452 4.5.3 until the bad-command limit"
    );
    let last = replies.last().expect("replies");
    assert_eq!(last.code, 421, "closed with 421: {:?}", last.lines);
    assert_eq!(replies.len(), 1 + 2 * MAX_RCPT + MAX_BAD + 1);
    assert_server_alive(&server);
    // The next session delivers (one copy per account, however many times it was named).
    let mut c = greet(server.addr("smtp"));
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<sender@far.test>", 250);
    for _ in 0..MAX_RCPT {
        c.expect(&format!("RCPT TO:<alice@{DOMAIN}>"), 250);
    }
    c.expect("DATA", 354);
    c.send(b"Subject: many\r\n\r\nmany recipients\r\n.\r\n");
    assert_eq!(c.reply().code, 250);
    c.expect("QUIT", 221);
    assert_eq!(inbox_len(&server, &format!("alice@{DOMAIN}")).await, 1);
    let rss = server_peak_rss_kb(&server);
    assert!(rss < MAX_SERVER_RSS_KB, "server peak RSS {rss} KiB");
}

#[tokio::test]
async fn three_hundred_idle_sockets_from_one_ip() {
    const PER_IP: usize = 50;
    let server = start_with_accounts(&format!("[limits]\nmax_connections_per_ip = {PER_IP}\n"));
    let mx = server.addr("smtp");
    let mut open = Vec::new();
    let (mut greeted, mut refused) = (0, 0);
    for _ in 0..300 {
        let mut c = connect(mx);
        let r = c.reply();
        match (r.code, r.enhanced()) {
            (220, _) => {
                greeted += 1;
                open.push(c);
            }
            (421, "4.7.0") => {
                refused += 1;
                assert!(c.try_reply().is_none(), "refused connection left open");
            }
            _ => panic!("unexpected greeting {:?}", r.lines),
        }
    }
    assert_eq!((greeted, refused), (PER_IP, 300 - PER_IP));
    assert_server_alive(&server);
    let rss = server_peak_rss_kb(&server);
    assert!(rss < MAX_SERVER_RSS_KB, "server peak RSS {rss} KiB");

    // Another client (another loopback address) is served meanwhile.
    let mut other = greet_from_other_ip(mx).await;
    deliver_ok(&server, &mut other, "while flooded").await;

    // Once the idle sockets go, the IP's slots come back.
    drop(open);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = connect(mx);
        let r = c.reply();
        if r.code == 220 {
            deliver_ok(&server, &mut c, "after the flood").await;
            break;
        }
        assert!(
            Instant::now() < deadline,
            "slots not released: {:?}",
            r.lines
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn a_trickling_client_is_cut_off() {
    let server = start_with_accounts("[smtp]\ndata_timeout_secs = 60\nmin_data_rate = 100\n");
    let mut c = greet(server.addr("smtp"));
    c.expect("EHLO client.test", 250);
    c.expect("MAIL FROM:<sender@far.test>", 250);
    c.expect(&format!("RCPT TO:<alice@{DOMAIN}>"), 250);
    c.expect("DATA", 354);
    c.s.set_read_timeout(Some(Duration::from_millis(1000)))
        .expect("timeout");
    let started = Instant::now();
    let mut cut = None;
    for &b in b"Subject: slow\r\n\r\none byte a second, forever".iter() {
        if c.s.write_all(&[b]).is_err() {
            break;
        }
        let mut tmp = [0u8; 512];
        match c.s.read(&mut tmp) {
            Ok(0) => break,
            Ok(n) => {
                cut = Some((
                    started.elapsed(),
                    String::from_utf8_lossy(&tmp[..n]).into_owned(),
                ));
                break;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "still connected after 40 s"
        );
    }
    // A 421 before the client gives up (40 s) comes from the rate rule (grace = data_timeout / 10
    // = 6 s): the 60 s data timeout cannot have run out yet.
    let (when, text) = cut.expect("the server closed without a 421");
    assert!(text.starts_with("421 4.4.2"), "{text:?}");
    eprintln!("smtp_security: trickling client cut after {when:?}");
    assert_eq!(inbox_len(&server, &format!("alice@{DOMAIN}")).await, 0);
    deliver_ok(
        &server,
        &mut greet(server.addr("smtp")),
        "after the trickler",
    )
    .await;
}

#[tokio::test]
async fn talking_before_the_greeting_is_refused() {
    let server = start_with_accounts("[smtp]\ngreeting_delay_ms = 300\n");
    let mx = server.addr("smtp");
    let mut c = connect(mx);
    c.send(b"EHLO early.test\r\n");
    let r = c.reply();
    assert_eq!((r.code, r.enhanced()), (554, "5.5.0"), "{:?}", r.lines);
    assert!(c.try_reply().is_none(), "connection left open");

    // A patient client gets the greeting after the delay.
    let mut c = greet(mx);
    deliver_ok(&server, &mut c, "patient").await;
}

#[tokio::test]
async fn data_pipelined_with_its_body_is_refused() {
    let server = start_with_accounts("");
    let mx = server.addr("smtp");
    let mut c = greet(mx);
    c.expect("EHLO client.test", 250);
    c.send(
        format!(
            "MAIL FROM:<sender@far.test>\r\nRCPT TO:<alice@{DOMAIN}>\r\nDATA\r\n\
             Subject: too early\r\n\r\nbody before 354\r\n.\r\n"
        )
        .as_bytes(),
    );
    let replies = c.replies();
    let codes: Vec<(u16, String)> = replies
        .iter()
        .map(|r| (r.code, r.enhanced().to_string()))
        .collect();
    assert_eq!(
        codes,
        vec![
            (250, "2.1.0".to_string()),
            (250, "2.1.5".to_string()),
            (554, "5.5.0".to_string())
        ],
        "{:?}",
        describe(&replies)
    );
    assert_eq!(inbox_len(&server, &format!("alice@{DOMAIN}")).await, 0);
    deliver_ok(&server, &mut greet(mx), "after the pipelining error").await;
}

// ---------------------------------------------------------------------------------------------
// TLS versions, checked with a client we did not write.

fn s_client(args: &[&str], input: &[&[u8]]) -> (bool, String) {
    let mut child = Command::new("openssl")
        .arg("s_client")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is needed (scripts/test.sh installs it)");
    let mut stdin = child.stdin.take().expect("stdin");
    for chunk in input {
        // The server refuses commands pipelined after EHLO: give each line its own moment.
        std::thread::sleep(Duration::from_millis(700));
        let _ = stdin.write_all(chunk);
        let _ = stdin.flush();
    }
    drop(stdin);
    let pid = child.id();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(30));
        // Only our own child, by its PID, if it hangs.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    });
    let out = child.wait_with_output().expect("openssl");
    drop(killer);
    (
        out.status.success(),
        format!(
            "{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn tls_versions_with_openssl_s_client() {
    let server = start_with_accounts("");
    let implicit = server.addr("submissions").to_string();
    let connect = ["-connect", implicit.as_str(), "-servername", HOSTNAME];

    // SECLEVEL=0 so that the client really offers TLS 1.1 and the refusal is the server's.
    let (ok, out) = s_client(
        &[&connect[..], &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]].concat(),
        &[],
    );
    assert!(
        !ok && out.contains("alert")
            && !out.contains("New, TLSv1.1")
            && !out.contains("no protocols available"),
        "TLS 1.1 must fail in the server's handshake:\n{out}"
    );
    for (flag, proto) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let (ok, out) = s_client(&[&connect[..], &[flag]].concat(), &[]);
        assert!(
            ok && out.contains(&format!("New, {proto}")),
            "{proto} on port 465:\n{out}"
        );
    }

    let mx = server.addr("smtp").to_string();
    let (ok, out) = s_client(
        &[
            "-connect",
            mx.as_str(),
            "-starttls",
            "smtp",
            "-name",
            "openssl.test",
            "-crlf",
            "-ign_eof",
        ],
        &[b"EHLO inside.test\n", b"QUIT\n"],
    );
    assert!(ok, "STARTTLS on the MX port:\n{out}");
    assert!(out.contains("New, TLSv1.3"), "{out}");
    assert!(
        out.contains(&format!("250-{HOSTNAME} Hello inside.test")),
        "EHLO inside TLS:\n{out}"
    );
    assert!(out.contains("221 2.0.0"), "QUIT inside TLS:\n{out}");
}

/// A client that only keeps its connection alive (NOOP just under every command timeout would
/// hold a slot forever): past `smtp.max_junk_commands` NOOP/RSET/VRFY/HELP without a message,
/// each one counts as a bad command and the session ends at `limits.max_bad_commands`. An
/// accepted message starts the count again.
#[tokio::test]
async fn keep_alive_commands_without_mail_end_the_session() {
    let server =
        start_with_accounts("[smtp]\nmax_junk_commands = 5\n[limits]\nmax_bad_commands = 3\n");
    let mut c = greet(server.addr("smtp"));
    c.expect("EHLO client.test", 250);
    for verb in ["NOOP", "RSET", "VRFY alice", "HELP", "NOOP"] {
        let r = c.cmd(verb);
        assert!(r.code < 400, "{verb} answered {:?}", r.lines);
    }
    // A message: the count starts again.
    c.expect("MAIL FROM:<someone@far.test>", 250);
    c.expect(&format!("RCPT TO:<alice@{DOMAIN}>"), 250);
    c.expect("DATA", 354);
    c.send(b"Subject: between keep-alives\r\n\r\nreal mail\r\n.\r\n");
    assert_eq!(c.reply().code, 250);
    for _ in 0..5 {
        c.expect("NOOP", 250);
    }
    // Three more are three bad commands: the third is answered, then the session closes.
    c.expect("NOOP", 250);
    c.expect("NOOP", 250);
    c.expect("NOOP", 250);
    let closing = c.replies();
    assert_eq!(closing.len(), 1, "{closing:?}");
    assert_eq!(
        (closing[0].code, closing[0].enhanced()),
        (421, "4.7.0"),
        "{:?}",
        closing[0].lines
    );
    assert_eq!(inbox_len(&server, &format!("alice@{DOMAIN}")).await, 1);
}
