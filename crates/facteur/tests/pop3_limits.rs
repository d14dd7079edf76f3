//! POP3 resource limits (security battery, issue 3): the real server, attacked over loopback with
//! raw sockets and a rustls client. Each attack must end in an error or a disconnect, the server's
//! memory must stay bounded (its peak resident set, VmHWM, against VmRSS before the attack), and
//! other clients must keep being served.
//!
//! Covered here: 10 MB without a line end (before login, in an AUTH PLAIN exchange, after login),
//! 100,000 pipelined commands, pipelined RETRs of a large message, 2,000 idle sockets from one IP,
//! a slowloris client and a client that never logs in. Over-long lines that end, too many bad
//! commands or failed logins, and the idle timeouts are in `pop3_security.rs`. POP3 has no
//! literals and no nesting, so the IMAP cases `{4294967295}` and nested parentheses have no
//! POP3 form.
//!
//! Measured numbers are printed (`cargo test -p facteur --test pop3_limits -- --nocapture`).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
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
/// The messages every test server starts with, in the maildrop of USER.
const SUBJECTS: [&str; 2] = ["limits one", "limits two"];

// ---------------------------------------------------------------------------------------------
// A small POP3 client over any byte stream.

impl<S: Read + Write> Conn<S> {
    fn reply(&mut self) -> String {
        self.line()
            .expect("server closed the connection instead of replying")
    }

    fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    fn expect_ok(&mut self, line: &str) -> String {
        let r = self.cmd(line);
        assert!(r.starts_with("+OK"), "{line:?} answered {r:?}");
        r
    }

    /// The lines of a multi-line body, up to the "." line.
    fn body(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let l = self.reply();
            if l == "." {
                return out;
            }
            out.push(l);
        }
    }
}

/// A TCP connection to `addr`, from `from` when given (another loopback address).
async fn tcp(addr: SocketAddr, from: Option<[u8; 4]>) -> TcpStream {
    raw::tcp(addr, from.map(IpAddr::from), IO_TIMEOUT)
}

/// Connects to the plaintext port and reads the +OK greeting.
async fn greet(server: &Server, from: Option<[u8; 4]>) -> Conn<TcpStream> {
    let mut c = Conn::new(tcp(server.addr("pop3"), from).await);
    let g = c.reply();
    assert!(g.starts_with("+OK "), "greeting: {g:?}");
    c
}

// ---------------------------------------------------------------------------------------------
// TLS client: rustls, accepting the server's self-signed certificate.

fn handshake(tcp: TcpStream) -> Tls {
    raw::handshake(tcp, HOSTNAME)
}

/// Implicit TLS (pop3s) and the greeting.
async fn greet_tls(server: &Server, from: Option<[u8; 4]>) -> Conn<Tls> {
    let mut t = Conn::new(handshake(tcp(server.addr("pop3s"), from).await));
    let g = t.reply();
    assert!(g.starts_with("+OK "), "greeting: {g:?}");
    t
}

/// Implicit TLS, USER and PASS: in the TRANSACTION state.
async fn logged_in(server: &Server, from: Option<[u8; 4]>) -> Conn<Tls> {
    let mut t = greet_tls(server, from).await;
    t.expect_ok(&format!("USER {USER}"));
    t.expect_ok(&format!("PASS {PASS}"));
    t
}

// ---------------------------------------------------------------------------------------------
// The server: its start, its memory, and whether it still serves others.

/// A server with POP3, alice, and [`SUBJECTS`] in her maildrop (delivered over SMTP).
fn start(extra: &str) -> Server {
    let s = Server::start_pop3(DOMAIN, extra);
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
    Mem::start(server, "pop3_limits", MAX_RSS_GROWTH_KB)
}

/// Another client is served: CAPA on the plaintext port, and over implicit TLS a login, STAT and
/// the first message (the maildrop lock is free again at QUIT).
async fn assert_served(server: &Server, from: Option<[u8; 4]>) {
    let mut c = greet(server, from).await;
    c.expect_ok("CAPA");
    c.body();
    c.expect_ok("QUIT");
    let mut t = logged_in(server, from).await;
    t.expect_ok("STAT");
    t.expect_ok("RETR 1");
    let body = t.body();
    assert!(
        body.iter()
            .any(|l| l == &format!("Subject: {}", SUBJECTS[0])),
        "{body:?}"
    );
    t.expect_ok("QUIT");
}

async fn maildrop_len(server: &Server) -> usize {
    common::inbox(&server.store(), USER).await.len()
}

// ---------------------------------------------------------------------------------------------
// 10 MB without a line end.

#[tokio::test]
async fn ten_megabytes_without_a_line_end() {
    let server = start("");
    let data = vec![b'A'; TEN_MB];

    let mem = mem_watch(&server);
    let mut c = greet(&server, None).await;
    assert_eq!(
        c.flood_then_rest(&data),
        ["-ERR Line too long"],
        "before login"
    );

    // As the response of an AUTH PLAIN exchange (RFC 5034 §4).
    let mut t = greet_tls(&server, None).await;
    assert_eq!(t.cmd("AUTH PLAIN"), "+ ");
    assert_eq!(
        t.flood_then_rest(&data),
        ["-ERR Line too long"],
        "in AUTH PLAIN"
    );

    // After login, with a message marked deleted: the session ends without UPDATE.
    let mut t = logged_in(&server, None).await;
    t.expect_ok("DELE 1");
    assert_eq!(
        t.flood_then_rest(&data),
        ["-ERR Line too long"],
        "after login"
    );
    mem.check("10 MB without a line end (before login, in AUTH, after login)");

    assert_served(&server, None).await;
    assert_eq!(maildrop_len(&server).await, SUBJECTS.len());
}

// ---------------------------------------------------------------------------------------------
// 100,000 pipelined commands (the POP3 form of 100,000 RCPTs).

#[tokio::test]
async fn a_hundred_thousand_pipelined_commands() {
    const N: usize = 100_000;
    let server = start("");
    let mem = mem_watch(&server);

    // Before login, over plaintext: CAPA, one whole reply each, in order.
    let mut c = greet(&server, None).await;
    let mut w = c.s.try_clone().expect("clone socket");
    let writer = std::thread::spawn(move || w.write_all(&b"CAPA\r\n".repeat(N)).is_ok());
    for i in 0..N {
        let first = c.reply();
        assert!(first.starts_with("+OK"), "CAPA {i}: {first:?}");
        let caps = c.body();
        assert!(caps.iter().any(|l| l == "STLS"), "CAPA {i}: {caps:?}");
    }
    assert!(writer.join().expect("writer thread"), "write failed");
    c.expect_ok("QUIT");

    // After login (TLS: one thread writes and reads, so in slices that fit in the socket buffers).
    let mut t = logged_in(&server, None).await;
    let slice = 5_000;
    for _ in 0..N / slice {
        t.send(&b"LIST 2\r\n".repeat(slice));
        for _ in 0..slice {
            let r = t.reply();
            assert!(r.starts_with("+OK 2 "), "{r:?}");
        }
    }
    t.expect_ok("QUIT");
    mem.check("100,000 pipelined CAPA before login and LIST after");
    assert_served(&server, None).await;
}

/// Pipelining is announced (RFC 2449 §6.6), but the replies to one read's worth of commands must
/// not all be built in memory before the first is written: 500 `RETR 3` (4,000 octets) arrive in
/// one 4 KiB read, and with a 160 KiB message would be 80 MiB of output.
#[tokio::test]
async fn pipelined_retrievals_of_a_large_message() {
    const N: usize = 500;
    const SIZE: usize = 160 * 1024;
    let server = start("");
    let mut body = String::from("Subject: large\r\n\r\n");
    while body.len() < SIZE {
        body.push_str(&"0123456789".repeat(7));
        body.push_str("\r\n");
    }
    deliver(&server, &body);
    let large = SUBJECTS.len() + 1;
    let mem = mem_watch(&server);
    let mut t = logged_in(&server, None).await;
    // 4,000 octets of commands, in one write: one read of the server's.
    let started = Instant::now();
    t.send(format!("RETR {large}\r\n").repeat(N).as_bytes());
    for i in 0..N {
        let first = t.reply();
        assert!(first.starts_with("+OK "), "RETR {i}: {first:?}");
        let lines = t.body();
        assert!(lines.iter().any(|l| l == "Subject: large"), "RETR {i}");
    }
    eprintln!(
        "pop3_limits: {N} pipelined RETR of {SIZE} octets in {:?}",
        started.elapsed()
    );
    t.expect_ok("QUIT");
    mem.check("500 pipelined RETR of a 160 KiB message");
    assert_served(&server, None).await;
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
        let mut c = Conn::new(tcp(server.addr("pop3"), None).await);
        let first = c.reply();
        if first.starts_with("+OK ") {
            greeted += 1;
        } else {
            assert_eq!(first, "-ERR [SYS/TEMP] Too many connections");
            assert!(c.line().is_none(), "refused connection left open");
            refused += 1;
        }
        // Idle, and kept open (the refused ones too, as an attacker would).
        open.push(c);
    }
    assert_eq!((greeted, refused), (PER_IP, SOCKETS - PER_IP));

    // Implicit TLS shares the POP3 budget: refused without a plaintext word.
    let mut s = tcp(server.addr("pop3s"), None).await;
    let mut tmp = [0u8; 64];
    let n = s.read(&mut tmp).unwrap_or(0);
    assert_eq!(n, 0, "pop3s over the limit sent {:?}", &tmp[..n]);

    // Another client (another loopback address) is served meanwhile.
    assert_served(&server, Some(OTHER_IP)).await;
    mem.check("2,000 idle sockets from one IP");

    // Once the idle sockets go, the IP's slots come back.
    drop(open);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut c = Conn::new(tcp(server.addr("pop3"), None).await);
        if c.reply().starts_with("+OK ") {
            break;
        }
        assert!(Instant::now() < deadline, "slots not released");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_served(&server, None).await;
}

// ---------------------------------------------------------------------------------------------
// Slow clients and clients that never log in.

/// Time allowed to log in, in these tests (`limits.command_timeout_secs`).
const PRE_LOGIN_SECS: u64 = 2;

fn short_timeout_server() -> Server {
    start(&format!(
        "[limits]\ncommand_timeout_secs = {PRE_LOGIN_SECS}\n"
    ))
}

/// One byte a second, never a whole line: each byte is activity, but the client never logs in.
/// It is cut by the login deadline, not kept until the 512-octet line limit (8.5 minutes at this
/// pace), and others are served meanwhile.
#[tokio::test]
async fn a_slowloris_client_is_cut_by_the_login_deadline() {
    let server = short_timeout_server();
    let mem = mem_watch(&server);
    let mut c = greet(&server, None).await;
    let trickled = std::thread::spawn(move || {
        let started = Instant::now();
        c.s.set_read_timeout(Some(Duration::from_secs(1)))
            .expect("timeout");
        let mut received = Vec::new();
        for &b in b"USER alice@example.com and more and more and more"
            .iter()
            .cycle()
        {
            if started.elapsed() > Duration::from_secs(10 * PRE_LOGIN_SECS) {
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
        Some((
            String::from_utf8_lossy(&received).into_owned(),
            started.elapsed(),
        ))
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_served(&server, None).await;
    let (text, lasted) = trickled
        .join()
        .expect("trickle thread")
        .expect("the slowloris client was still connected after 10 login deadlines");
    eprintln!("pop3_limits: slowloris cut after {lasted:?}: {text:?}");
    assert_eq!(text, "-ERR Autologout; idle for too long\r\n");
    mem.check("slowloris before login");
}

/// Valid commands, twice a second, and never a login: the login deadline bounds how long an
/// unauthenticated client may hold a connection slot.
#[tokio::test]
async fn a_client_that_never_logs_in_is_cut_by_the_login_deadline() {
    let server = short_timeout_server();
    let mut c = greet(&server, None).await;
    let started = Instant::now();
    let closed = loop {
        if started.elapsed() > Duration::from_secs(10 * PRE_LOGIN_SECS) {
            break false;
        }
        if c.s.write_all(b"CAPA\r\n").is_err() {
            break true;
        }
        match c.line() {
            None => break true,
            Some(l) if l.starts_with("-ERR") => {
                assert_eq!(l, "-ERR Autologout; idle for too long");
                assert!(c.line().is_none(), "left open after the timeout");
                break true;
            }
            Some(l) => {
                assert!(l.starts_with("+OK"), "{l:?}");
                c.body();
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!(
        "pop3_limits: CAPA every 0.5 s before login: closed {closed} after {:?}",
        started.elapsed()
    );
    assert!(
        closed,
        "still connected without login after {:?}",
        started.elapsed()
    );
    // Nor does a flood of commands, answered as fast as they come (input always ready).
    let mut c = greet(&server, None).await;
    let mut w = c.s.try_clone().expect("clone socket");
    let started = Instant::now();
    let writer = std::thread::spawn(move || {
        let flood = b"CAPA\r\n".repeat(1000);
        while started.elapsed() < Duration::from_secs(10 * PRE_LOGIN_SECS) {
            if w.write_all(&flood).is_err() {
                return true;
            }
        }
        false
    });
    // Reply lines (the CAPA bodies included) until the server closes, possibly mid-reply.
    let mut replies = 0;
    let last = loop {
        match c.line() {
            None => break None,
            Some(l) if l.starts_with("-ERR") => break Some(l),
            Some(l) if l.starts_with("+OK") => replies += 1,
            Some(_) => {}
        }
    };
    drop(c);
    let cut = writer.join().expect("writer thread");
    eprintln!(
        "pop3_limits: CAPA flood before login: {replies} answered, then {last:?}, after {:?}",
        started.elapsed()
    );
    assert!(
        cut,
        "a CAPA flood kept the connection for {:?}",
        started.elapsed()
    );
    // Closing with our flood unread in its buffer, the server resets the connection, which may
    // discard its notice before it reaches us.
    assert!(
        last.is_none() || last.as_deref() == Some("-ERR Autologout; idle for too long"),
        "{last:?}"
    );

    // Logging in within the deadline still works, and after login the idle timer applies.
    let mut t = logged_in(&server, None).await;
    std::thread::sleep(Duration::from_secs(PRE_LOGIN_SECS + 1));
    t.expect_ok("STAT");
    t.expect_ok("QUIT");
}

/// After filling the socket buffers without reading (so the server's writes block), keeps not
/// reading for three timeouts, then reports whether the server still holds the connection: a
/// write to it still blocks (held), or fails because the server closed it (with our commands
/// unread in its buffer, it resets the connection).
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
        match sock.write(b"NOOP\r\n") {
            Ok(_) => std::thread::sleep(Duration::from_millis(200)),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return true;
            }
            Err(_) => return false,
        }
    }
    // Writes still accepted after the server's timeouts: it still reads, so it holds it too.
    true
}

/// A client that sends commands and never reads the replies: once the socket buffers are full the
/// server can only wait to write, and that wait is bounded by the same timers as reading (the
/// login deadline, then the idle timeout).
#[tokio::test]
async fn a_client_that_never_reads_is_cut() {
    const SIZE: usize = 160 * 1024;
    let server = start(&format!(
        "[limits]\ncommand_timeout_secs = {PRE_LOGIN_SECS}\nidle_timeout_secs = {PRE_LOGIN_SECS}\n"
    ));
    let mut body = String::from("Subject: large\r\n\r\n");
    while body.len() < SIZE {
        body.push_str(&"0123456789".repeat(7));
        body.push_str("\r\n");
    }
    deliver(&server, &body);
    let mem = mem_watch(&server);
    let wait = Duration::from_secs(3 * PRE_LOGIN_SECS);

    // Before login: CAPA.
    let mut c = greet(&server, None).await;
    assert!(
        !held_while_not_reading(&mut c.s, &b"CAPA\r\n".repeat(1000), wait),
        "before login, a client that does not read is kept"
    );
    // After login: RETR of the large message.
    let mut t = logged_in(&server, None).await;
    let large = SUBJECTS.len() + 1;
    let retr = format!("RETR {large}\r\n").repeat(100);
    t.send(retr.as_bytes());
    assert!(
        !held_while_not_reading(&mut t.s.sock, retr.as_bytes(), wait),
        "after login, a client that does not read is kept"
    );
    mem.check("clients that never read");
    assert_served(&server, None).await;
}
