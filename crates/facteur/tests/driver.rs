//! The socket driver under SMTP, IMAP and POP3, over real sockets against the real binary:
//! per-line SMTP deadlines (slowloris), per-service connection budgets, per-client counting on a
//! dual-stack listener, the polite stop on SIGTERM and the config reload on SIGHUP.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Server;
use common::raw::{self, Conn, Fill, Tls};

const DOMAIN: &str = "example.com";
const USER: &str = "alice@example.com";
const PASS: &str = "alice-password-1";
/// Longest wait for one reply: long enough for a loaded machine, short enough to fail clearly.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// A line client over any byte stream.

impl<S: Read + Write> Conn<S> {
    /// The last line of an SMTP reply (multi-line replies skipped to their end).
    fn reply(&mut self) -> Option<String> {
        loop {
            let l = self.line()?;
            if l.as_bytes().get(3) != Some(&b'-') {
                return Some(l);
            }
        }
    }

    fn expect(&mut self, command: &str, code: &str) -> String {
        assert!(
            self.try_send(format!("{command}\r\n").as_bytes()),
            "{command}"
        );
        let r = self
            .reply()
            .unwrap_or_else(|| panic!("closed after {command:?}"));
        assert!(r.starts_with(code), "{command:?} answered {r:?}");
        r
    }

    /// Lines up to the one starting with `tag ` (included).
    fn tagged(&mut self, tag: &str) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let l = self
                .line()
                .unwrap_or_else(|| panic!("closed before {tag}: {out:?}"));
            let done = l.starts_with(&format!("{tag} "));
            out.push(l);
            if done {
                return out;
            }
        }
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// A TCP connection to `addr` from the loopback address `from`.
fn tcp_from(addr: SocketAddr, from: IpAddr) -> std::io::Result<TcpStream> {
    raw::try_tcp(addr, Some(from), IO_TIMEOUT)
}

fn conn_from(addr: SocketAddr, from: &str) -> Conn<TcpStream> {
    Conn::new(
        tcp_from(addr, ip(from)).unwrap_or_else(|e| panic!("connect {addr} from {from}: {e}")),
    )
}

/// Connects from `from` and returns the greeting line with the connection.
fn greeted(addr: SocketAddr, from: &str) -> (Conn<TcpStream>, String) {
    let mut c = conn_from(addr, from);
    let g = c.reply().unwrap_or_default();
    (c, g)
}

// ---------------------------------------------------------------------------------------------
// TLS client: rustls, accepting the server's self-signed certificate.

fn tls(addr: SocketAddr) -> Conn<Tls> {
    let tcp = tcp_from(addr, ip("127.0.0.1")).expect("connect");
    Conn::new(raw::handshake(tcp, "mx.example.com"))
}

fn start(extra: &str) -> Server {
    let s = Server::start_with(DOMAIN, extra);
    s.add_account(USER, PASS);
    s
}

async fn inbox_subjects(server: &Server) -> Vec<String> {
    let mut out: Vec<String> = common::inbox(&server.store(), USER)
        .await
        .iter()
        .filter_map(|m| {
            String::from_utf8_lossy(m)
                .lines()
                .find_map(|l| l.strip_prefix("Subject: ").map(str::to_string))
        })
        .collect();
    out.sort();
    out
}

fn pid(server: &Server) -> i32 {
    server.child.as_ref().expect("running").id() as i32
}

fn signal(server: &Server, sig: i32) {
    // SAFETY: kill(2) on the PID of the server this test started.
    assert_eq!(unsafe { libc::kill(pid(server), sig) }, 0, "kill");
}

// ---------------------------------------------------------------------------------------------
// SMTP deadlines: per command line, not per read.

/// Sends `bytes` one at a time, `gap` apart, until the server answers; returns the answer and
/// how many bytes were sent by then (None if it never answered).
fn trickle(c: &mut Conn<TcpStream>, bytes: &[u8], gap: Duration) -> Option<(String, usize)> {
    c.s.set_read_timeout(Some(gap)).expect("timeout");
    for (i, b) in bytes.iter().enumerate() {
        if !c.try_send(&[*b]) {
            break;
        }
        match c.fill() {
            Fill::Data => {
                c.s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
                return c.reply().map(|r| (r, i + 1));
            }
            Fill::Closed => return None,
            Fill::TimedOut => {}
        }
    }
    c.s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    c.reply().map(|r| (r, bytes.len()))
}

/// A byte every 300 ms restarted the old per-read timer (2 s here) forever; the deadline now runs
/// from the first byte of a line to its end. Silence between commands is still allowed up to the
/// timeout each time, an overlong line being discarded is bound the same way, and so is a BDAT
/// chunk, by the minimum data rate.
#[tokio::test]
async fn a_command_line_trickled_byte_by_byte_is_cut_at_the_command_timeout() {
    let server = start(
        "[limits]\ncommand_timeout_secs = 2\n[smtp]\ndata_timeout_secs = 10\nmin_data_rate = 100\n",
    );
    let mx = server.addr("smtp");
    let gap = Duration::from_millis(300);

    let (mut c, g) = greeted(mx, "127.0.0.1");
    assert!(g.starts_with("220 "), "{g}");
    c.expect("EHLO client.test", "250");
    // Pauses between commands shorter than the timeout are fine, each time.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(1200));
        c.expect("NOOP", "250");
    }
    // 35 bytes at 300 ms each: 10 s in all, past the 2 s a line may take.
    let line = b"MAIL FROM:<slow-sender@far.example>\r\n";
    let (reply, sent) = trickle(&mut c, line, gap).expect("the server closed without a word");
    assert!(reply.starts_with("421 4.4.2"), "{reply:?}");
    assert!(
        sent < line.len(),
        "the whole line went through ({reply:?}): the deadline was not per line"
    );
    assert!(c.rest().is_empty(), "closed after the 421");

    // An overlong line: refused once, then its rest is discarded; trickling that rest is bound by
    // the same deadline.
    let (mut c, _) = greeted(mx, "127.0.0.1");
    c.expect("EHLO client.test", "250");
    assert!(c.try_send(&[b'A'; 600]));
    let r = c.reply().expect("reply to the overlong line");
    assert!(r.starts_with("500 5.5.6"), "{r:?}");
    let tail = [b'A'; 40];
    let (reply, sent) = trickle(&mut c, &tail, gap).expect("the server closed without a word");
    assert!(reply.starts_with("421 4.4.2"), "{reply:?}");
    assert!(sent < tail.len(), "not cut while discarding");

    // A BDAT chunk trickled: the minimum data rate (100 B/s after 1 s) cuts it.
    let (mut c, _) = greeted(mx, "127.0.0.1");
    let ehlo = {
        assert!(c.try_send(b"EHLO client.test\r\n"));
        let mut lines = Vec::new();
        loop {
            let l = c.line().expect("EHLO reply");
            let last = l.as_bytes().get(3) != Some(&b'-');
            lines.push(l);
            if last {
                break lines;
            }
        }
    };
    assert!(ehlo.iter().any(|l| l.ends_with("CHUNKING")), "{ehlo:?}");
    c.expect("MAIL FROM:<sender@far.example>", "250");
    c.expect(&format!("RCPT TO:<{USER}>"), "250");
    assert!(c.try_send(b"BDAT 1000 LAST\r\n"));
    let chunk = [b'x'; 60];
    let (reply, sent) = trickle(&mut c, &chunk, gap).expect("the server closed without a word");
    assert!(reply.starts_with("421 4.4.2"), "{reply:?}");
    assert!(sent < chunk.len(), "BDAT trickle not cut");

    // Nothing of theirs was stored, and an ordinary client is served.
    let r = common::raw_smtp(mx, "sender@far.example", USER, "Subject: after\r\n\r\nhi");
    assert!(r.starts_with("250"), "{r:?}");
    assert_eq!(inbox_subjects(&server).await, ["after"]);
}

// ---------------------------------------------------------------------------------------------
// Connection budgets: one per service.

/// Opens `n` connections from each of `ips` to `addr` and checks each is greeted with `ok`.
fn hold(addr: SocketAddr, ips: &[&str], n: usize, ok: &str) -> Vec<Conn<TcpStream>> {
    let mut held = Vec::new();
    for from in ips {
        for _ in 0..n {
            let (c, g) = greeted(addr, from);
            assert!(g.starts_with(ok), "from {from}: {g:?}");
            held.push(c);
        }
    }
    held
}

/// The 20-addresses attack: port 25 full (every address at its per-client limit, the service at
/// its total) while submission, IMAP and POP3 are served; then submission full while port 25 is
/// served. Each service has its own `limits.max_connections`.
#[tokio::test]
async fn a_full_port_25_leaves_submission_its_slots_and_the_reverse() {
    let mut server = Server::start_pop3(
        DOMAIN,
        "[limits]\nmax_connections = 6\nmax_connections_per_ip = 3\n",
    );
    server.add_account(USER, PASS);
    let (mx, sub, subs) = (
        server.addr("smtp"),
        server.addr("submission"),
        server.addr("submissions"),
    );

    let flood = hold(mx, &["127.0.0.1", "127.0.0.2"], 3, "220 ");
    let (mut c, g) = greeted(mx, "127.0.0.3");
    assert!(g.starts_with("421 4.7.0"), "port 25 over its budget: {g:?}");
    assert!(c.rest().is_empty(), "refused connection left open");

    // Submission has its own budget, and counts 127.0.0.1 afresh.
    let (mut c, g) = greeted(sub, "127.0.0.1");
    assert!(
        g.starts_with("220 "),
        "submission while port 25 is full: {g:?}"
    );
    c.expect("EHLO client.test", "250");
    c.expect("QUIT", "221");
    submit_with_smtplib(&server, "submitted while port 25 was full");
    for (service, ok) in [("imap", "* OK"), ("pop3", "+OK")] {
        let (_, g) = greeted(server.addr(service), "127.0.0.1");
        assert!(g.starts_with(ok), "{service} while port 25 is full: {g:?}");
    }

    // Now submission full (587 and 465 share it), port 25 free again and served. Slots of the
    // sessions just ended are released as the server sees them close: retried briefly.
    drop(flood);
    let mut sub_flood = Vec::new();
    for from in ["127.0.0.4", "127.0.0.5"] {
        for _ in 0..3 {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let (c, g) = greeted(sub, from);
                if g.starts_with("220 ") {
                    sub_flood.push(c);
                    break;
                }
                assert!(Instant::now() < deadline, "from {from}: {g:?}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    let (mut c, g) = greeted(sub, "127.0.0.3");
    assert!(
        g.starts_with("421 4.7.0"),
        "submission over its budget: {g:?}"
    );
    assert!(c.rest().is_empty());
    // Implicit TLS: no plaintext word may be sent, the connection is just closed.
    let mut s = tcp_from(subs, ip("127.0.0.3")).expect("connect 465");
    let mut tmp = [0u8; 64];
    assert_eq!(
        s.read(&mut tmp).unwrap_or(0),
        0,
        "465 over the submission budget"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let reply = loop {
        // The flood's slots are released as the server notices the closed sockets.
        let r = common::raw_smtp(mx, "sender@far.example", USER, "Subject: mx\r\n\r\nhi");
        if r.starts_with("250") || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        reply.starts_with("250"),
        "port 25 while submission is full: {reply:?}"
    );
    drop(sub_flood);
    assert_eq!(
        inbox_subjects(&server).await,
        ["mx", "submitted while port 25 was full"]
    );
    server.kill9();
}

/// Submits one message with Python's smtplib over implicit TLS (465) and AUTH, then QUIT.
fn submit_with_smtplib(server: &Server, subject: &str) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import smtplib, ssl\n\
             ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n\
             c = smtplib.SMTP_SSL('127.0.0.1', {}, context=ctx, timeout=30)\n\
             c.login('{USER}', '{PASS}')\n\
             c.sendmail('{USER}', ['{USER}'], 'From: {USER}\\r\\nTo: {USER}\\r\\nSubject: {subject}\\r\\n\\r\\nhello\\r\\n')\n\
             c.quit()",
            server.addr("submissions").port()
        ))
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "smtplib: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A dual-stack listener (`[::]`) sees IPv4 clients as IPv4-mapped IPv6 addresses; they are
/// counted per IPv4 address, not all together as one IPv6 /64.
#[tokio::test]
async fn ipv4_clients_of_a_dual_stack_listener_are_counted_per_address() {
    let config = common::test_config(DOMAIN, "[limits]\nmax_connections_per_ip = 2\n").replacen(
        "smtp = [\"127.0.0.1:0\"]",
        "smtp = [\"[::]:0\"]",
        1,
    );
    let server = Server::start_config(DOMAIN, &config);
    let port = server.addr("smtp").port();
    let v4: SocketAddr = SocketAddr::new(ip("127.0.0.1"), port);
    let _held = hold(v4, &["127.0.0.1"], 2, "220 ");
    let (_, g) = greeted(v4, "127.0.0.1");
    assert!(g.starts_with("421 4.7.0"), "third from 127.0.0.1: {g:?}");
    let (_, g) = greeted(v4, "127.0.0.2");
    assert!(
        g.starts_with("220 "),
        "127.0.0.2 counted with 127.0.0.1 (one /64 for all IPv4 clients?): {g:?}"
    );
    let (_, g) = greeted(SocketAddr::new(ip("::1"), port), "::1");
    assert!(g.starts_with("220 "), "IPv6 client: {g:?}");
}

// ---------------------------------------------------------------------------------------------
// SIGTERM.

/// What one SMTP sender saw: the subjects acknowledged with 250, the last reply.
struct Sent {
    acked: Vec<String>,
    last: Option<String>,
    five: Vec<String>,
}

/// Sends messages over one connection until the server says goodbye or goes away.
fn send_until_stopped(mx: SocketAddr, id: usize) -> Sent {
    let mut sent = Sent {
        acked: Vec::new(),
        last: None,
        five: Vec::new(),
    };
    let Ok(s) = tcp_from(mx, ip("127.0.0.1")) else {
        return sent;
    };
    let mut c = Conn::new(s);
    let step = |c: &mut Conn<TcpStream>, bytes: &[u8], sent: &mut Sent| -> Option<String> {
        if !bytes.is_empty() && !c.try_send(bytes) {
            return None;
        }
        let r = c.reply()?;
        if r.starts_with('5') {
            sent.five.push(r.clone());
        }
        sent.last = Some(r.clone());
        Some(r)
    };
    if step(&mut c, b"", &mut sent).is_none_or(|r| !r.starts_with("220")) {
        return sent;
    }
    if step(&mut c, b"EHLO sender.test\r\n", &mut sent).is_none_or(|r| !r.starts_with("250")) {
        return sent;
    }
    for i in 0.. {
        let subject = format!("m-{id}-{i}");
        for cmd in [
            "MAIL FROM:<sender@far.example>\r\n".to_string(),
            format!("RCPT TO:<{USER}>\r\n"),
            "DATA\r\n".to_string(),
        ] {
            match step(&mut c, cmd.as_bytes(), &mut sent) {
                Some(r) if r.starts_with('2') || r.starts_with('3') => {}
                _ => return sent,
            }
        }
        let body = format!(
            "Subject: {subject}\r\n\r\n{}.\r\n",
            "a line of the body\r\n".repeat(100)
        );
        match step(&mut c, body.as_bytes(), &mut sent) {
            Some(r) if r.starts_with("250") => sent.acked.push(subject),
            _ => return sent,
        }
    }
    sent
}

/// The process's exit status, waiting up to `within`.
fn exit_status(server: &mut Server, within: Duration) -> std::process::ExitStatus {
    let child = server.child.as_mut().expect("running");
    let deadline = Instant::now() + within;
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            server.child = None;
            return st;
        }
        assert!(Instant::now() < deadline, "still running after {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM: the listeners close first; a command in flight (here a LOGIN held by the login
/// throttle's delay) finishes and is answered, then its session gets the notice; every open
/// session gets its protocol's notice; every message acknowledged with 250 is stored and no other
/// is; the process exits 0.
#[tokio::test]
async fn sigterm_closes_every_session_politely_and_loses_nothing() {
    let mut server = Server::start_pop3(
        DOMAIN,
        "base_delay_ms = 6000\nmax_delay_ms = 6000\n[limits]\nmax_connections_per_ip = 100\n",
    );
    server.add_account(USER, PASS);
    let (mx, imap, imaps, pop3) = (
        server.addr("smtp"),
        server.addr("imap"),
        server.addr("imaps"),
        server.addr("pop3"),
    );

    // Sessions waiting for their client.
    let (mut smtp_idle, g) = greeted(mx, "127.0.0.1");
    assert!(g.starts_with("220"), "{g}");
    smtp_idle.expect("EHLO client.test", "250");
    smtp_idle.expect("MAIL FROM:<sender@far.example>", "250");
    smtp_idle.expect(&format!("RCPT TO:<{USER}>"), "250");
    let (mut imap_plain, g) = greeted(imap, "127.0.0.1");
    assert!(g.starts_with("* OK"), "{g}");
    let (mut pop_plain, g) = greeted(pop3, "127.0.0.1");
    assert!(g.starts_with("+OK"), "{g}");
    let mut idle = tls(imaps);
    assert!(idle.line().expect("greeting").starts_with("* OK"));
    assert!(
        idle.try_send(
            format!("a LOGIN {USER} {PASS}\r\na2 SELECT INBOX\r\na3 IDLE\r\n").as_bytes()
        )
    );
    idle.tagged("a");
    idle.tagged("a2");
    assert!(idle.line().expect("IDLE").starts_with("+ "));

    // A LOGIN in flight: the second failure from this address waits 6 s (auth.base_delay_ms).
    let mut login = tls(imaps);
    assert!(login.line().expect("greeting").starts_with("* OK"));
    assert!(login.try_send(b"b1 LOGIN nobody@example.com wrong\r\n"));
    assert!(login.tagged("b1").last().expect("b1").starts_with("b1 NO"));
    assert!(login.try_send(b"b2 LOGIN nobody@example.com wrong\r\n"));

    // Mail being sent and committed as the signal comes.
    let senders: Vec<_> = (0..4)
        .map(|id| std::thread::spawn(move || send_until_stopped(mx, id)))
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    signal(&server, libc::SIGTERM);

    // Once the sessions are told, the listeners are closed, while the LOGIN is still in flight.
    assert_eq!(
        smtp_idle.rest(),
        ["421 4.3.2 Service shutting down"],
        "SMTP session"
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match tcp_from(mx, ip("127.0.0.1")) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => break,
            // Reset as the listening socket closed with it in its queue: not served either.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Err(e) => panic!("connect after SIGTERM: {e}"),
            Ok(s) => {
                let mut c = Conn::new(s);
                let g = c.reply();
                assert!(
                    !g.as_deref().is_some_and(|g| g.starts_with("220")),
                    "greeted after SIGTERM: {g:?}"
                );
            }
        }
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    login
        .s
        .sock
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    assert_eq!(
        login.fill(),
        Fill::TimedOut,
        "the LOGIN in flight was answered before its delay ended"
    );
    login
        .s
        .sock
        .set_read_timeout(Some(IO_TIMEOUT))
        .expect("timeout");

    assert_eq!(imap_plain.rest(), ["* BYE Server shutting down"], "IMAP");
    // IDLE announced the mail arriving meanwhile, then the notice.
    let idled = idle.rest();
    assert_eq!(
        idled.last().map(String::as_str),
        Some("* BYE Server shutting down"),
        "IMAP in IDLE"
    );
    assert!(
        idled[..idled.len() - 1]
            .iter()
            .all(|l| l.ends_with(" EXISTS") || l.ends_with(" RECENT")),
        "{idled:?}"
    );
    assert_eq!(
        pop_plain.rest(),
        ["-ERR [SYS/TEMP] Server shutting down"],
        "POP3"
    );
    let answered = login.rest();
    assert_eq!(answered.len(), 2, "{answered:?}");
    assert!(answered[0].starts_with("b2 NO"), "{answered:?}");
    assert_eq!(answered[1], "* BYE Server shutting down");

    let mut acked = Vec::new();
    for s in senders {
        let sent = s.join().expect("sender");
        assert!(sent.five.is_empty(), "5xx during shutdown: {:?}", sent.five);
        if let Some(last) = &sent.last {
            assert!(
                last.starts_with("421 4.3.2") || last.starts_with("250"),
                "last reply {last:?}"
            );
        }
        acked.extend(sent.acked);
    }
    assert!(!acked.is_empty(), "no message went through before SIGTERM");
    let status = exit_status(&mut server, Duration::from_secs(60));
    assert!(status.success(), "exit status {status:?}");
    acked.sort();
    assert_eq!(
        inbox_subjects(&server).await,
        acked,
        "stored messages are exactly the acknowledged ones"
    );
}

// ---------------------------------------------------------------------------------------------
// SIGHUP.

/// Waits until the log holds `n` lines containing `what`; returns the whole log.
fn wait_log(log: &Path, what: &str, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.lines().filter(|l| l.contains(what)).count() >= n {
            return text;
        }
        assert!(Instant::now() < deadline, "no {what:?} in the log:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The subject of the certificate served on `port` (openssl s_client).
fn served_subject(port: u16) -> String {
    let mut c = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_client (scripts/test.sh installs openssl)");
    drop(c.stdin.take());
    let out = c.wait_with_output().expect("s_client");
    let mut x = Command::new("openssl")
        .args(["x509", "-noout", "-subject"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl x509");
    x.stdin
        .take()
        .expect("stdin")
        .write_all(&out.stdout)
        .expect("pipe");
    String::from_utf8_lossy(&x.wait_with_output().expect("x509").stdout)
        .trim()
        .to_string()
}

/// SIGHUP applies what can change live (here the per-client limit and the host name, and with
/// it a new self-signed certificate), names what needs a restart (a listener address) and keeps
/// it, and a file that does not load changes nothing.
#[tokio::test]
async fn sighup_applies_live_keys_names_the_others_and_survives_a_bad_file() {
    let base = common::test_config(DOMAIN, "[log]\nformat = \"json\"\n");
    let server = Server::start_logged(DOMAIN, &base, "info");
    let log = server.log_file.clone().expect("a log file");
    let mx = server.addr("smtp");
    let subs = server.addr("submissions").port();
    assert!(served_subject(subs).contains("mx.example.com"));

    let mut open = hold(mx, &["127.0.0.1"], 3, "220 mx.example.com ");
    let changed = base
        .replacen(
            "hostname = \"mx.example.com\"",
            "hostname = \"mx2.example.com\"",
            1,
        )
        .replacen("smtp = [\"127.0.0.1:0\"]", "smtp = [\"127.0.0.2:0\"]", 1)
        + "[limits]\nmax_connections_per_ip = 3\n";
    std::fs::write(server.data.join("facteur.toml"), &changed).expect("write config");
    signal(&server, libc::SIGHUP);
    let text = wait_log(&log, "configuration reloaded", 1);

    let applied = text
        .lines()
        .find(|l| l.contains("configuration reloaded"))
        .expect("line");
    assert!(
        applied.contains("limits.max_connections_per_ip") && applied.contains("server.hostname"),
        "{applied}"
    );
    let restart = text
        .lines()
        .find(|l| l.contains("NOT applied"))
        .unwrap_or_else(|| panic!("no restart warning:\n{text}"));
    assert!(restart.contains("listeners.smtp"), "{restart}");
    assert!(
        !restart.contains("limits.max_connections_per_ip"),
        "{restart}"
    );

    // The new per-client limit counts the connections already open; the listener is unchanged.
    let (mut c, g) = greeted(mx, "127.0.0.1");
    assert!(
        g.starts_with("421 4.7.0"),
        "fourth from 127.0.0.1 after the reload: {g:?}"
    );
    assert!(c.rest().is_empty());
    // New sessions greet with the new name; open ones keep theirs.
    let (mut c, g) = greeted(mx, "127.0.0.2");
    assert!(g.starts_with("220 mx2.example.com "), "{g}");
    c.expect("QUIT", "221");
    let r = open[0].expect("EHLO client.test", "250");
    assert!(r.starts_with("250 "), "{r}");
    assert!(
        served_subject(subs).contains("mx2.example.com"),
        "certificate not remade"
    );

    // A file that does not load: nothing changes, the server runs on.
    std::fs::write(server.data.join("facteur.toml"), "[limits\nbroken").expect("write");
    signal(&server, libc::SIGHUP);
    let text = wait_log(&log, "configuration reload refused", 1);
    assert!(
        text.contains("facteur.toml"),
        "the error names the file:\n{text}"
    );
    let (_, g) = greeted(mx, "127.0.0.1");
    assert!(
        g.starts_with("421 4.7.0"),
        "limit lost after a bad reload: {g:?}"
    );
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, g) = greeted(mx, "127.0.0.1");
        if g.starts_with("220 mx2.example.com ") {
            break;
        }
        assert!(Instant::now() < deadline, "slot not released: {g:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
