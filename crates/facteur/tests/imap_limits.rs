//! IMAP resource limits (security battery, issue 3): the real server, attacked over loopback with
//! raw sockets and a rustls client. Each attack must end in an error or a disconnect, the server's
//! memory must stay bounded (its peak resident set, VmHWM, against VmRSS before the attack), and
//! other clients must keep being served.
//!
//! Covered: 10 MB without a line end (before and after login, and as chained literals before
//! login), `{4294967295}` literals (synchronizing and not), 100,000 nested parentheses (SEARCH,
//! FETCH) and NOTs, SEARCH with 100,000 keys, 2,000 idle sockets from one IP, a slowloris client,
//! a client that never logs in and one that never reads, too many bad commands, what is allowed
//! before login, 100,000 pipelined commands (the IMAP form of 100,000 RCPTs), and pipelined
//! FETCHes of a large message.
//!
//! Measured numbers are printed (`cargo test -p facteur --test imap_limits -- --nocapture`).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Server;
use common::limits::{Mem, raise_nofile};
use common::raw::{self, Conn, Tls};

const DOMAIN: &str = "example.com";
const HOSTNAME: &str = "mx.example.com";
const USER: &str = "alice@example.com";
const PASS: &str = "alice-password-1";
/// Longest wait for one reply: long enough for a loaded CI machine, short enough to fail clearly.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// How much the server's resident memory may grow during one attack.
const MAX_RSS_GROWTH_KB: u64 = 64 * 1024;
/// "10 MB without a line end".
const TEN_MB: usize = 10 * 1024 * 1024;
/// The loopback address the floods come from is 127.0.0.1; this one has its own per-IP count.
const OTHER_IP: [u8; 4] = [127, 0, 0, 2];
/// The messages every test server starts with, in INBOX of USER.
const SUBJECTS: [&str; 3] = ["limits one", "limits two", "limits three"];

// ---------------------------------------------------------------------------------------------
// A small IMAP client over any byte stream.

impl<S: Read + Write> Conn<S> {
    fn reply(&mut self) -> String {
        self.line()
            .expect("server closed the connection instead of responding")
    }

    /// Untagged lines and continuation requests up to the tagged completion of `tag`.
    fn tagged(&mut self, tag: &str) -> (Vec<String>, String) {
        let mut untagged = Vec::new();
        let prefix = format!("{tag} ");
        loop {
            let l = self.reply();
            if l.starts_with(&prefix) {
                return (untagged, l);
            }
            untagged.push(l);
        }
    }

    /// Sends `tag text` and returns the untagged lines and the tagged completion.
    fn cmd(&mut self, tag: &str, text: &str) -> (Vec<String>, String) {
        self.send(format!("{tag} {text}\r\n").as_bytes());
        self.tagged(tag)
    }

    fn expect_ok(&mut self, tag: &str, text: &str) -> Vec<String> {
        let (untagged, done) = self.cmd(tag, text);
        assert!(
            done.starts_with(&format!("{tag} OK")),
            "{text:?} answered {done:?} after {untagged:?}"
        );
        untagged
    }
}

/// A TCP connection to `addr`, from `from` when given (another loopback address).
async fn tcp(addr: SocketAddr, from: Option<[u8; 4]>) -> TcpStream {
    raw::tcp(addr, from.map(IpAddr::from), IO_TIMEOUT)
}

/// Connects to the plaintext port and reads the `* OK` greeting.
async fn greet(server: &Server, from: Option<[u8; 4]>) -> Conn<TcpStream> {
    let mut c = Conn::imap(tcp(server.addr("imap"), from).await);
    let g = c.reply();
    assert!(g.starts_with("* OK "), "greeting: {g:?}");
    c
}

// ---------------------------------------------------------------------------------------------
// TLS client: rustls, accepting the server's self-signed certificate.

fn handshake(tcp: TcpStream) -> Tls {
    raw::handshake(tcp, HOSTNAME)
}

/// Implicit TLS (imaps), the greeting, LOGIN and SELECT INBOX.
async fn selected(server: &Server, from: Option<[u8; 4]>) -> Conn<Tls> {
    let mut t = Conn::imap(handshake(tcp(server.addr("imaps"), from).await));
    let g = t.reply();
    assert!(g.starts_with("* OK "), "greeting: {g:?}");
    t.expect_ok("l1", &format!("LOGIN {USER} {PASS}"));
    t.expect_ok("l2", "SELECT INBOX");
    t
}

// ---------------------------------------------------------------------------------------------
// The server: its start, its memory, and whether it still serves others.

/// A server with IMAP, alice, and [`SUBJECTS`] in her INBOX (delivered over SMTP).
fn start(extra: &str) -> Server {
    let s = Server::start_with(DOMAIN, extra);
    s.add_account(USER, PASS);
    for subject in SUBJECTS {
        deliver(&s, &format!("Subject: {subject}\r\n\r\nbody of {subject}"));
    }
    s
}

fn deliver(server: &Server, message: &str) {
    let r = common::raw_smtp(server.addr("smtp"), "sender@far.test", USER, message);
    assert!(r.starts_with("250"), "{r}");
}

/// Watches the server's memory over one attack (growth bounded by [`MAX_RSS_GROWTH_KB`]).
fn mem_watch(server: &Server) -> Mem {
    Mem::start(server, "imap_limits", MAX_RSS_GROWTH_KB)
}

/// Another client is served: CAPABILITY on the plaintext port, and over implicit TLS a login,
/// SELECT and a FETCH of the first message's subject.
async fn assert_served(server: &Server, from: Option<[u8; 4]>) {
    let mut c = greet(server, from).await;
    c.expect_ok("s1", "CAPABILITY");
    c.expect_ok("s2", "LOGOUT");
    let mut t = selected(server, from).await;
    let untagged = t.expect_ok("s3", "FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
    assert!(
        untagged
            .iter()
            .any(|l| l.contains(&format!("Subject: {}", SUBJECTS[0]))),
        "{untagged:?}"
    );
    t.expect_ok("s4", "LOGOUT");
}

async fn inbox_len(server: &Server) -> usize {
    common::inbox(&server.store(), USER).await.len()
}

/// Concatenates `parts` into one command, going to a new line whenever the current line passes
/// `per_line` octets: `glue(part)` (given the part just written) is put there, and must end a
/// line in a literal announcement (e.g. `SUBJECT {1+}` CRLF `x`). No line is then over the
/// line-length limit, however long the command.
fn split_command(
    parts: &[String],
    per_line: usize,
    mut glue: impl FnMut(&str) -> String,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut line_start = 0;
    for (i, p) in parts.iter().enumerate() {
        out.extend_from_slice(p.as_bytes());
        if i + 1 < parts.len() && out.len() - line_start > per_line {
            out.extend_from_slice(glue(p).as_bytes());
            line_start = out.len();
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

// ---------------------------------------------------------------------------------------------
// 10 MB without a line end.

#[tokio::test]
async fn ten_megabytes_without_a_line_end_before_and_after_login() {
    let server = start("");
    assert_served(&server, None).await;
    let data = vec![b'A'; TEN_MB];

    let mem = mem_watch(&server);
    let mut c = greet(&server, None).await;
    let lines = c.flood_then_rest(&data);
    assert_eq!(lines, ["* BYE Command line too long"], "before login");
    mem.check("10 MB without a line end, before login");

    let mem = mem_watch(&server);
    let mut t = selected(&server, None).await;
    let lines = t.flood_then_rest(&data);
    assert_eq!(lines, ["* BYE Command line too long"], "after login");
    mem.check("10 MB without a line end, after login");

    assert_served(&server, None).await;
    assert_eq!(inbox_len(&server).await, SUBJECTS.len());
}

/// A line may end in a literal announcement, and the command goes on after the literal: 10 MB of
/// command made of 8 KiB non-synchronizing literals (the most allowed before login) has no line
/// over the limit and no line end that completes it. Before login nothing needs more than two
/// small literals (LOGIN), so such a command must be refused early, not buffered: eight clients
/// from one IP (well under the per-IP limit) must not grow the server by 80 MB.
#[tokio::test]
async fn chained_literals_before_login_are_not_buffered() {
    const CLIENTS: usize = 8;
    const LITERAL: usize = 8 * 1024;
    let server = start("");
    assert_served(&server, None).await;
    let mut data = format!("a LOGIN {{{LITERAL}+}}\r\n").into_bytes();
    while data.len() < TEN_MB {
        data.extend(std::iter::repeat_n(b'x', LITERAL));
        data.extend_from_slice(format!(" {{{LITERAL}+}}\r\n").as_bytes());
    }
    let data = Arc::new(data);
    let mem = mem_watch(&server);
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(greet(&server, None).await);
    }
    // All write at once, and hold their unfinished command until every one has been written (so
    // a server that buffers them holds them all at the same time). Then each ends its command (a
    // last literal and a line end) so that a server that kept reading answers.
    let written = Arc::new(std::sync::Barrier::new(CLIENTS + 1));
    let release = Arc::new(std::sync::Barrier::new(CLIENTS + 1));
    let threads: Vec<_> = clients
        .into_iter()
        .map(|mut c| {
            let (data, written, release) = (data.clone(), written.clone(), release.clone());
            std::thread::spawn(move || {
                let _ = c.s.write_all(&data);
                written.wait();
                release.wait();
                let _ = c.s.write_all(&[b'x'; LITERAL]);
                let _ = c.s.write_all(b"\r\nz LOGOUT\r\n");
                c.rest()
            })
        })
        .collect();
    written.wait();
    // What is still in socket buffers reaches the server (not a timing assertion: a settling pause).
    std::thread::sleep(Duration::from_millis(500));
    release.wait();
    let answers: Vec<Vec<String>> = threads
        .into_iter()
        .map(|t| t.join().expect("client thread"))
        .collect();
    eprintln!(
        "imap_limits: chained literals before login, first client's answer: {:?}",
        answers[0]
    );
    mem.check("8 clients x 10 MB of chained 8 KiB literals before login");
    assert_served(&server, None).await;
}

// ---------------------------------------------------------------------------------------------
// {4294967295}: the largest literal the syntax allows.

#[tokio::test]
async fn a_literal_of_4294967295_octets() {
    let server = start("");
    let mem = mem_watch(&server);

    // Synchronizing, before login: refused without a continuation request, and the session goes on
    // (RFC 7888 §4, RFC 9051 §7.5).
    let mut c = greet(&server, None).await;
    c.send(b"a LOGIN {4294967295}\r\n");
    let (untagged, done) = c.tagged("a");
    assert!(
        untagged.is_empty() && (done.starts_with("a NO") || done.starts_with("a BAD")),
        "before login: {untagged:?} {done:?}"
    );
    c.expect_ok("b", "NOOP");

    // Synchronizing, after login, in APPEND and in SEARCH.
    let mut t = selected(&server, None).await;
    for (tag, cmd) in [
        ("a", "APPEND INBOX {4294967295}"),
        ("b", "SEARCH TEXT {4294967295}"),
    ] {
        t.send(format!("{tag} {cmd}\r\n").as_bytes());
        let (untagged, done) = t.tagged(tag);
        assert!(
            !untagged.iter().any(|l| l.starts_with('+'))
                && (done.starts_with(&format!("{tag} NO"))
                    || done.starts_with(&format!("{tag} BAD"))),
            "{cmd}: {untagged:?} {done:?}"
        );
    }
    t.expect_ok("c", "NOOP");
    t.expect_ok("d", "LOGOUT");

    // Past u32 (the length does not parse as a literal): not a literal, a bad command.
    let mut c = greet(&server, None).await;
    for len in ["4294967296", "99999999999999999999999999"] {
        c.send(format!("a LOGIN {{{len}}}\r\n").as_bytes());
        let (untagged, done) = c.tagged("a");
        assert!(
            !untagged.iter().any(|l| l.starts_with('+'))
                && (done.starts_with("a NO") || done.starts_with("a BAD")),
            "{{{len}}}: {untagged:?} {done:?}"
        );
    }
    c.expect_ok("b", "NOOP");

    // Non-synchronizing: its octets are already on the way and the stream cannot be resynchronised,
    // so the connection closes; what follows is never run as commands.
    let mut c = greet(&server, None).await;
    c.send(b"a LOGIN {4294967295+}\r\nb CAPABILITY\r\nc NOOP\r\nd LOGOUT\r\n");
    let lines = c.rest();
    assert!(
        lines.len() == 1 && lines[0].starts_with("* BYE"),
        "before login: {lines:?}"
    );
    let mut t = selected(&server, None).await;
    let msg = "Subject: injected\r\n\r\nnot to be stored\r\n";
    t.send(
        format!(
            "a APPEND INBOX {{4294967295+}}\r\nb CREATE Injected\r\n\
             c APPEND INBOX {{{}+}}\r\n{msg}\r\nd NOOP\r\n",
            msg.len()
        )
        .as_bytes(),
    );
    let lines = t.rest();
    assert!(
        lines.len() == 1 && lines[0].starts_with("* BYE"),
        "after login: {lines:?}"
    );
    mem.check("{4294967295} literals");

    let store = server.store();
    let acc = store
        .account_get("alice", DOMAIN)
        .await
        .expect("account_get")
        .expect("alice");
    assert!(
        store
            .mailbox_get(acc.id, "Injected")
            .await
            .expect("mailbox_get")
            .is_none(),
        "the CREATE after the literal announcement was run"
    );
    assert_eq!(inbox_len(&server).await, SUBJECTS.len(), "APPEND was run");
    assert_served(&server, None).await;
}

// ---------------------------------------------------------------------------------------------
// 100,000 nested parentheses.

#[tokio::test]
async fn a_hundred_thousand_nested_parentheses() {
    const N: usize = 100_000;
    let server = start("");
    let mem = mem_watch(&server);
    let mut t = selected(&server, None).await;

    // On one line it is a 200 KB line: over the line-length limit.
    let line = format!("a SEARCH {}ALL{}\r\n", "(".repeat(N), ")".repeat(N));
    let lines = t.flood_then_rest(line.as_bytes());
    assert_eq!(lines, ["* BYE Command line too long"]);

    // Split over lines by literals, it reaches the parser: a tagged refusal, the session goes on.
    // `(SUBJECT x (` is a key beside the next group, `) SUBJECT x)` a key after the group.
    let mut t = selected(&server, None).await;
    let mut parts: Vec<String> = vec!["a SEARCH ".into()];
    parts.extend(std::iter::repeat_n("(".to_string(), N));
    parts.push("ALL".into());
    parts.extend(std::iter::repeat_n(")".to_string(), N));
    let search = split_command(&parts, 30_000, |p| {
        if p == "(" {
            "SUBJECT {1+}\r\nx ".to_string()
        } else {
            " SUBJECT {1+}\r\nx".to_string()
        }
    });
    t.send(&search);
    let (_, done) = t.tagged("a");
    assert!(
        done.starts_with("a BAD") || done.starts_with("a NO"),
        "SEARCH with {N} nested parentheses: {done:?}"
    );
    t.expect_ok("b", "NOOP");

    // The same in FETCH (whose syntax has no nesting at all).
    let mut parts: Vec<String> = vec!["c FETCH 1 ".into()];
    parts.extend(std::iter::repeat_n("(".to_string(), N));
    parts.push("FLAGS".into());
    parts.extend(std::iter::repeat_n(")".to_string(), N));
    let fetch = split_command(&parts, 30_000, |_| "{1+}\r\nx".to_string());
    t.send(&fetch);
    let (untagged, done) = t.tagged("c");
    assert!(
        done.starts_with("c BAD") && !untagged.iter().any(|l| l.contains("FETCH")),
        "FETCH with {N} nested parentheses: {untagged:?} {done:?}"
    );
    t.expect_ok("d", "NOOP");

    // And 100,000 nested NOTs (each NOT takes a key: the same recursion without parentheses);
    // `NOT (SUBJECT x NOT ...)` splits them.
    let mut parts: Vec<String> = vec!["e SEARCH".into()];
    parts.extend(std::iter::repeat_n(" NOT".to_string(), N));
    parts.push(" ALL".into());
    let mut groups = 0;
    let mut search = split_command(&parts, 30_000, |_| {
        groups += 1;
        " (SUBJECT {1+}\r\nx".to_string()
    });
    search.truncate(search.len() - 2);
    search.extend(std::iter::repeat_n(b')', groups));
    search.extend_from_slice(b"\r\n");
    t.send(&search);
    let (_, done) = t.tagged("e");
    assert!(
        done.starts_with("e BAD") || done.starts_with("e NO"),
        "SEARCH with {N} nested NOTs: {done:?}"
    );
    t.expect_ok("f", "NOOP");
    t.expect_ok("g", "LOGOUT");

    mem.check("100,000 nested parentheses and NOTs");
    assert_served(&server, None).await;
}

// ---------------------------------------------------------------------------------------------
// SEARCH with a huge number of keys.

#[tokio::test]
async fn a_search_with_a_hundred_thousand_keys() {
    const N: usize = 100_000;
    let server = start("");
    let mem = mem_watch(&server);
    let mut t = selected(&server, None).await;

    // 100,000 header keys that all match (so none is skipped): one literal each.
    let mut cmd = b"a SEARCH".to_vec();
    for _ in 0..N {
        cmd.extend_from_slice(b" SUBJECT {1+}\r\nl");
    }
    cmd.extend_from_slice(b"\r\n");
    let started = Instant::now();
    t.send(&cmd);
    let (untagged, done) = t.tagged("a");
    eprintln!(
        "imap_limits: SEARCH with {N} SUBJECT keys: {done:?} after {:?}",
        started.elapsed()
    );
    // Over `limits.imap_search_keys` (1,000): refused before any key is evaluated.
    assert!(
        done.starts_with("a NO [LIMIT] Too many search keys"),
        "{untagged:?} {done:?}"
    );
    assert!(untagged.is_empty(), "{untagged:?}");
    t.expect_ok("b", "NOOP");

    // 100,000 flag keys on one line are over the line-length limit.
    let line = format!("d SEARCH{}\r\n", " SEEN".repeat(N));
    let lines = t.flood_then_rest(line.as_bytes());
    assert_eq!(lines, ["* BYE Command line too long"]);

    mem.check("SEARCH with 100,000 keys");
    assert_served(&server, None).await;
}

/// 100,000 different BODY needles (one full-text lookup each if evaluated): refused by the limit
/// on search keys; others are served meanwhile and memory stays bounded.
#[tokio::test]
async fn a_search_with_a_hundred_thousand_body_keys() {
    const N: usize = 100_000;
    let server = start("");
    let mem = mem_watch(&server);
    let mut t = selected(&server, None).await;
    let mut cmd = b"c SEARCH".to_vec();
    for i in 0..N {
        cmd.extend_from_slice(format!(" BODY {{6+}}\r\nk{i:05}").as_bytes());
    }
    cmd.extend_from_slice(b"\r\n");
    let search = std::thread::spawn(move || {
        t.s.sock
            .set_read_timeout(Some(4 * IO_TIMEOUT))
            .expect("timeout");
        let started = Instant::now();
        t.send(&cmd);
        let (untagged, done) = t.tagged("c");
        (untagged, done, started.elapsed())
    });
    // Another client meanwhile.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    assert_served(&server, Some(OTHER_IP)).await;
    let served_in = started.elapsed();
    let (untagged, done, took) = search.join().expect("search thread");
    eprintln!(
        "imap_limits: SEARCH with {N} BODY keys: {done:?} after {took:?}; another client served \
         meanwhile in {served_in:?}"
    );
    assert!(
        done.starts_with("c NO [LIMIT] Too many search keys"),
        "{untagged:?} {done:?}"
    );
    mem.check("SEARCH with 100,000 BODY keys");
}

// ---------------------------------------------------------------------------------------------
// 2,000 idle sockets from one IP.

#[tokio::test]
async fn two_thousand_idle_sockets_from_one_ip() {
    const SOCKETS: usize = 2_000;
    const PER_IP: usize = 50;
    raise_nofile(SOCKETS as u64 + 500);
    // The total stays above the number of sockets, so the per-IP limit is the one that refuses.
    let server = start(&format!(
        "[limits]\nmax_connections = 5000\nmax_connections_per_ip = {PER_IP}\n"
    ));
    let mem = mem_watch(&server);
    let mut open = Vec::new();
    let (mut greeted, mut refused) = (0, 0);
    for _ in 0..SOCKETS {
        let mut c = Conn::imap(tcp(server.addr("imap"), None).await);
        let first = c.reply();
        if first.starts_with("* OK ") {
            greeted += 1;
        } else {
            assert_eq!(first, "* BYE Too many connections, try later");
            assert!(c.line().is_none(), "refused connection left open");
            refused += 1;
        }
        // Idle, and kept open (the refused ones too, as an attacker would).
        open.push(c);
    }
    assert_eq!((greeted, refused), (PER_IP, SOCKETS - PER_IP));

    // Implicit TLS shares the IMAP budget: refused without a plaintext word.
    let mut s = tcp(server.addr("imaps"), None).await;
    let mut tmp = [0u8; 64];
    let n = s.read(&mut tmp).unwrap_or(0);
    assert_eq!(n, 0, "imaps over the limit sent {:?}", &tmp[..n]);

    // Another client (another loopback address) is served meanwhile.
    assert_served(&server, Some(OTHER_IP)).await;
    mem.check("2,000 idle sockets from one IP");

    // Once the idle sockets go, the IP's slots come back.
    drop(open);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut c = Conn::imap(tcp(server.addr("imap"), None).await);
        if c.reply().starts_with("* OK ") {
            break;
        }
        assert!(Instant::now() < deadline, "slots not released");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_served(&server, None).await;
}

// ---------------------------------------------------------------------------------------------
// Slow clients and clients that never log in.

/// Timeout before login in these tests (`limits.command_timeout_secs`).
const PRE_LOGIN_SECS: u64 = 2;

fn short_timeout_server() -> Server {
    start(&format!(
        "[limits]\ncommand_timeout_secs = {PRE_LOGIN_SECS}\n"
    ))
}

/// Sends `bytes` one at a time, `every` apart, until the server closes the connection; returns
/// what it sent and how long the client lasted. Gives up (None) after `give_up`.
fn trickle(
    c: &mut Conn<TcpStream>,
    bytes: &[u8],
    every: Duration,
    give_up: Duration,
) -> Option<(Vec<String>, Duration)> {
    let started = Instant::now();
    c.s.set_read_timeout(Some(every)).expect("timeout");
    let mut received = Vec::new();
    for &b in bytes.iter().cycle() {
        if started.elapsed() > give_up {
            return None;
        }
        if c.s.write_all(&[b]).is_err() {
            break;
        }
        let mut tmp = [0u8; 1024];
        match c.s.read(&mut tmp) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&tmp[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&received).into_owned();
    Some((
        text.split("\r\n")
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        started.elapsed(),
    ))
}

#[tokio::test]
async fn a_silent_client_is_logged_out_before_login() {
    let server = short_timeout_server();
    let mut c = greet(&server, None).await;
    let started = Instant::now();
    let lines = c.rest();
    // rest() gives up after IO_TIMEOUT without a close: the lines then miss the BYE.
    assert_eq!(lines, ["* BYE Autologout; idle for too long"]);
    eprintln!(
        "imap_limits: silent client logged out after {:?}",
        started.elapsed()
    );
    assert_served(&server, None).await;
}

/// One byte a second, never a whole line: each byte is activity, but the client never logs in.
/// It must be cut by the pre-login timeout (counted from the connection, or at least per
/// command), not kept until the 64 KiB line limit (18 hours at this pace).
#[tokio::test]
async fn a_slowloris_client_is_cut_by_the_pre_login_timeout() {
    let server = short_timeout_server();
    let mem = mem_watch(&server);
    let mut c = greet(&server, None).await;
    let trickled = std::thread::spawn(move || {
        trickle(
            &mut c,
            b"a LOGIN alice@example.com aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            Duration::from_secs(1),
            Duration::from_secs(10 * PRE_LOGIN_SECS),
        )
    });
    // Others are served while it trickles.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_served(&server, None).await;
    let (lines, lasted) = trickled
        .join()
        .expect("trickle thread")
        .expect("the slowloris client was still connected after 10 pre-login timeouts");
    eprintln!("imap_limits: slowloris cut after {lasted:?}: {lines:?}");
    assert!(
        lines.iter().all(|l| l.starts_with("* BYE")),
        "slowloris: {lines:?}"
    );
    mem.check("slowloris before login");
}

/// Valid commands, one a second, and never a login: the pre-login timeout bounds how long an
/// unauthenticated client may hold a connection slot.
#[tokio::test]
async fn a_client_that_never_logs_in_is_cut_by_the_pre_login_timeout() {
    let server = short_timeout_server();
    let mut c = greet(&server, None).await;
    c.s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let started = Instant::now();
    let mut i = 0;
    let closed = loop {
        if started.elapsed() > Duration::from_secs(10 * PRE_LOGIN_SECS) {
            break false;
        }
        i += 1;
        let tag = format!("n{i}");
        if c.s.write_all(format!("{tag} NOOP\r\n").as_bytes()).is_err() {
            break true;
        }
        match c.line() {
            None => break true,
            Some(l) if l.starts_with("* BYE") => {
                assert!(c.line().is_none(), "left open after its BYE");
                break true;
            }
            Some(l) => assert_eq!(l, format!("{tag} OK NOOP completed")),
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!(
        "imap_limits: NOOP every 0.5 s before login: closed {closed} after {:?}",
        started.elapsed()
    );
    assert!(
        closed,
        "still connected without login after {:?}",
        started.elapsed()
    );
}

/// After filling the socket buffers without reading (so the server's writes block), keeps not
/// reading for `wait`, then reports whether the server still holds the connection: a write to it
/// still blocks (held), or fails because the server closed it (with our commands unread in its
/// buffer, it resets the connection).
fn held_while_not_reading(sock: &mut TcpStream, flood: &[u8], wait: Duration) -> bool {
    sock.set_write_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let started = Instant::now();
    while started.elapsed() < wait {
        if let Err(e) = sock.write_all(flood) {
            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
                break;
            }
            return false;
        }
    }
    std::thread::sleep(wait);
    for _ in 0..5 {
        match sock.write(b"x NOOP\r\n") {
            Ok(_) => std::thread::sleep(Duration::from_millis(200)),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return true;
            }
            Err(_) => return false,
        }
    }
    true
}

/// A client that sends commands and never reads the replies: once the socket buffers are full the
/// server can only wait to write, and that wait must be bounded like waiting to read (here the
/// pre-login timeout), or the client holds the connection and its socket buffers (megabytes of
/// kernel memory) forever.
#[tokio::test]
async fn a_client_that_never_reads_is_cut() {
    let server = short_timeout_server();
    let mem = mem_watch(&server);
    let mut c = greet(&server, None).await;
    assert!(
        !held_while_not_reading(
            &mut c.s,
            &b"a CAPABILITY\r\n".repeat(1000),
            Duration::from_secs(3 * PRE_LOGIN_SECS)
        ),
        "a client that does not read is kept past the pre-login timeout"
    );
    mem.check("a client that never reads");
    assert_served(&server, None).await;
}

// ---------------------------------------------------------------------------------------------
// Bad commands, and what may be done before login.

#[tokio::test]
async fn too_many_bad_commands_disconnect() {
    // Bare keys continue the harness's [auth] section: no throttle delay after a failed login.
    let server = start("base_delay_ms = 0\nmax_delay_ms = 0\n[limits]\nmax_bad_commands = 3\n");

    // Before login; what is pipelined after the third error is not answered.
    let mut c = greet(&server, None).await;
    assert!(c.cmd("a", "FOO").1.starts_with("a BAD"));
    assert!(c.cmd("b", "").1.starts_with("b BAD"));
    c.send(b"c XYZZY\r\nd NOOP\r\n");
    let lines = c.rest();
    assert_eq!(
        lines,
        [
            "c BAD Syntax error or unknown command",
            "* BYE Too many errors"
        ],
        "the NOOP after the third error must not be answered"
    );

    // Failed logins count too (inside TLS).
    let mut t = Conn::imap(handshake(tcp(server.addr("imaps"), None).await));
    t.reply();
    for tag in ["a", "b"] {
        let (_, done) = t.cmd(tag, &format!("LOGIN {USER} wrong-password"));
        assert!(
            done.starts_with(&format!("{tag} NO [AUTHENTICATIONFAILED]")),
            "{done}"
        );
    }
    t.send(format!("c LOGIN {USER} wrong-password\r\nd NOOP\r\n").as_bytes());
    let lines = t.rest();
    assert!(
        lines.iter().any(|l| l == "* BYE Too many errors")
            && !lines.iter().any(|l| l.starts_with("d ")),
        "{lines:?}"
    );

    // After login: still counted, and the connection closes.
    let mut t = selected(&server, None).await;
    t.send(b"a FETCH\r\nb STORE 1 +FLAGS\r\nc BOGUS\r\nd NOOP\r\n");
    let lines = t.rest();
    assert_eq!(
        lines.last().map(String::as_str),
        Some("* BYE Too many errors")
    );
    assert!(!lines.iter().any(|l| l.starts_with("d ")), "{lines:?}");
    assert_served(&server, None).await;
}

#[tokio::test]
async fn what_is_allowed_before_login() {
    let server = start("[limits]\nmax_bad_commands = 4\n");
    let mut c = greet(&server, None).await;
    // Commands of the authenticated state are refused, and each refusal counts as an error.
    for (tag, cmd) in [
        ("a", "SELECT INBOX"),
        ("b", "LIST \"\" *"),
        ("c", "APPEND INBOX {1+}\r\nx"),
    ] {
        let (_, done) = c.cmd(tag, cmd);
        assert!(done.starts_with(&format!("{tag} BAD")), "{cmd}: {done}");
    }
    // Over plaintext even LOGIN is refused (LOGINDISABLED), without checking the password.
    let (_, done) = c.cmd("d", &format!("LOGIN {USER} {PASS}"));
    assert!(done.starts_with("d NO [PRIVACYREQUIRED]"), "{done}");
    // Literals before login: at most 8 KiB (LOGIN arguments need no more).
    c.send(b"e LOGIN {8192}\r\n");
    assert_eq!(c.reply(), "+ Ready for literal data");
    c.send(&[b'u'; 8192]);
    c.send(b" p\r\n");
    let (_, done) = c.tagged("e");
    assert!(done.starts_with("e NO [PRIVACYREQUIRED]"), "{done}");
    c.send(b"f LOGIN {8193}\r\n");
    let (untagged, done) = c.tagged("f");
    assert!(
        untagged.is_empty() && done.starts_with("f NO [TOOBIG]"),
        "{untagged:?} {done}"
    );
    // That was the fourth error.
    assert_eq!(c.rest(), ["* BYE Too many errors"]);
    assert_served(&server, None).await;
}

// ---------------------------------------------------------------------------------------------
// 100,000 pipelined commands (the IMAP form of 100,000 RCPTs).

#[tokio::test]
async fn a_hundred_thousand_pipelined_commands() {
    const N: usize = 100_000;
    let server = start("");
    let mem = mem_watch(&server);
    let mut c = greet(&server, None).await;
    let mut data = Vec::new();
    for i in 0..N {
        data.extend_from_slice(format!("n{i} NOOP\r\n").as_bytes());
    }
    let mut w = c.s.try_clone().expect("clone socket");
    let writer = std::thread::spawn(move || w.write_all(&data).is_ok());
    // Exactly one tagged response per command, in order.
    for i in 0..N {
        assert_eq!(c.reply(), format!("n{i} OK NOOP completed"));
    }
    assert!(writer.join().expect("writer thread"), "write failed");
    c.expect_ok("z", "LOGOUT");
    mem.check("100,000 pipelined NOOPs");
    assert_served(&server, None).await;
}

/// Pipelining is allowed (RFC 9051 §5.5), but the responses to one read's worth of commands must
/// not all be built in memory before the first is written: 2,000 pipelined `FETCH BODY.PEEK[]`
/// of a 128 KiB message (about 600 of them arrive in one 16 KiB read), read as fast as the
/// server sends, must not grow the server by 600 x 128 KiB.
#[tokio::test]
async fn pipelined_fetches_of_a_large_message() {
    const N: usize = 2_000;
    const SIZE: usize = 128 * 1024;
    let server = start("");
    let mut body = String::from("Subject: large\r\n\r\n");
    while body.len() < SIZE {
        body.push_str(&"0123456789".repeat(7));
        body.push_str("\r\n");
    }
    deliver(&server, &body);
    let large = SUBJECTS.len() + 1;
    let mem = mem_watch(&server);
    let mut t = selected(&server, None).await;
    let mut cmds = Vec::new();
    for i in 0..N {
        cmds.extend_from_slice(format!("f{i} FETCH {large} BODY.PEEK[]\r\n").as_bytes());
    }
    // About 50 KB: it fits in the socket buffers, so it is all sent before reading starts.
    let started = Instant::now();
    t.send(&cmds);
    for i in 0..N {
        let (untagged, done) = t.tagged(&format!("f{i}"));
        assert!(done.starts_with(&format!("f{i} OK")), "{done}");
        assert!(
            untagged.len() == 1 && untagged[0].len() > SIZE,
            "FETCH {i}: {} lines",
            untagged.len()
        );
    }
    eprintln!(
        "imap_limits: {N} pipelined FETCH BODY[] of {SIZE} octets in {:?}",
        started.elapsed()
    );
    mem.check("2,000 pipelined FETCH BODY[] of a 128 KiB message");
    assert_served(&server, None).await;
}
