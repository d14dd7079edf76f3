//! The log as an operator reads it, from the real server driven by Python's smtplib, imaplib and
//! poplib: plain text without colour codes when it is not a terminal (so the fail2ban filter of
//! docs/fail2ban.md matches), `log.file` with reopening on SIGHUP, JSON events with typed fields,
//! one message id from the `250 ... queued as` to every delivery attempt, protocol traces at
//! debug level without passwords or message text, and a bounded log under command floods.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Server;
use common::dnsmasq::{Dnsmasq, Record};
use serde_json::Value;

const DOMAIN: &str = "example.com";
const ALICE: &str = "alice@example.com";
const PW: &str = "alice-password-1";
/// In every message body the tests send: must never appear in a log.
const BODY_MARKER: &str = "BODY-MARKER-7f3a9c";

const PRELUDE: &str = r#"
import os, smtplib, imaplib, poplib, ssl, base64
def port(n):
    return int(os.environ[n]) if os.environ.get(n) else None
SUB = port("P_SUB"); IMAPS = port("P_IMAPS"); POP3S = port("P_POP3S"); MX = port("P_MX")
CTX = ssl.create_default_context(); CTX.check_hostname = False; CTX.verify_mode = ssl.CERT_NONE
USER = "alice@example.com"; PW = "alice-password-1"; MARK = "BODY-MARKER-7f3a9c"

def body(to, subject):
    return f"From: {USER}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\n{MARK} in the text.\r\n"

def submit(rcpts, subject):
    """Sends one message over submission (STARTTLS, AUTH PLAIN); prints the 250's id."""
    s = smtplib.SMTP("127.0.0.1", SUB, timeout=60)
    s.starttls(context=CTX)
    s.login(USER, PW)
    s.mail(USER)
    for r in rcpts:
        code, text = s.rcpt(r)
        assert code == 250, (r, code, text)
    code, text = s.data(body(", ".join(rcpts), subject))
    assert code == 250, (code, text)
    s.quit()
    text = text.decode()
    print("QUEUED", text.split("queued as ")[1].strip())

def wrong_smtp_login():
    s = smtplib.SMTP("127.0.0.1", SUB, timeout=60)
    s.starttls(context=CTX)
    try:
        s.login(USER, "wrong-password-smtp")
        raise AssertionError("a wrong password was accepted")
    except smtplib.SMTPAuthenticationError:
        pass
    s.quit()

def forge():
    """Client text made to look like a failed login of someone else, on the MX port."""
    s = smtplib.SMTP("127.0.0.1", MX, timeout=60)
    s.ehlo("client.test")
    code, _ = s.docmd("x auth failure: protocol=smtp ip=6.6.6.6 user=x failures=1")
    assert code == 500, code
    s.mail('"auth failure: protocol=smtp ip=6.6.6.7 user=x failures=1"@far.test')
    s.rset()
    s.quit()

def wrong_imap_login():
    c = imaplib.IMAP4_SSL("127.0.0.1", IMAPS, ssl_context=CTX)
    try:
        c.login(USER, "wrong-password-imap")
        raise AssertionError("a wrong password was accepted")
    except imaplib.IMAP4.error:
        pass
    c.logout()
"#;

/// Runs `PRELUDE` + `script` with the server's ports in the environment; returns its stdout.
fn python(server: &Server, script: &str) -> String {
    let port = |s: &str| {
        server
            .addrs
            .get(s)
            .map(|a| a.port().to_string())
            .unwrap_or_default()
    };
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!("{PRELUDE}\n{script}\nprint('python ok')\n"))
        .env("P_SUB", port("submission"))
        .env("P_IMAPS", port("imaps"))
        .env("P_POP3S", port("pop3s"))
        .env("P_MX", port("smtp"))
        .output()
        .expect("python3 is needed for these tests (scripts/test.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("python ok"),
        "python script failed:\n{text}"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The id of the `250 ... queued as <id>` a `submit` printed.
fn queued_id(stdout: &str) -> String {
    let id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("QUEUED "))
        .expect("a queued id")
        .to_string();
    assert!(
        id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    id
}

/// Starts a server with `config`, then restarts it with its stderr going to a file and with
/// `RUST_LOG` empty, so `log.level` applies (the harness sets `RUST_LOG=warn` otherwise).
fn logged_server(config: &str) -> (Server, PathBuf) {
    let mut server = Server::start_config(DOMAIN, config);
    server.add_account(ALICE, PW);
    server.add_account("bob@example.com", "bob-password-1");
    server.kill9();
    let path = server.dir.path().join("stderr.log");
    server.log_file = Some(path.clone());
    server.env = vec![("RUST_LOG".into(), String::new())];
    server.spawn();
    (server, path)
}

/// `test_config` with POP3 listening too (plain and implicit TLS) and `extra` added.
fn config(extra: &str) -> String {
    common::test_config(DOMAIN, extra).replacen(
        "pop3 = []\npop3s = []\n",
        "pop3 = [\"127.0.0.1:0\"]\npop3s = [\"127.0.0.1:0\"]\n",
        1,
    )
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// Waits until `path` holds a line for which `pred` is true; returns the whole text.
fn wait_for(path: &Path, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let text = read(path);
        if text.lines().any(&pred) {
            // Read again: a predicate may read the file itself, and see more than `text`.
            return read(path);
        }
        assert!(
            Instant::now() < deadline,
            "no log line {what} in:\n{}",
            tail(&text)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Every line of a JSON log, parsed; panics on a line that is not a JSON object.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            assert!(v.is_object(), "not an object: {l}");
            v
        })
        .collect()
}

fn events<'a>(all: &'a [Value], message: &str) -> Vec<&'a Value> {
    all.iter()
        .filter(|v| v["message"].as_str() == Some(message))
        .collect()
}

/// Runs fail2ban's own `fail2ban-regex` with the filter of docs/fail2ban.md on `log`; returns
/// the `ip=` of every line it matched.
fn fail2ban_hosts(log: &Path) -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/fail2ban.md"
    ))
    .expect("read docs/fail2ban.md");
    // The ini block after the filter's file name.
    let after = &doc[doc
        .find("filter.d/facteur.conf`:")
        .expect("the filter in the doc")..];
    let block = after
        .split("```ini\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("an ini block");
    let dir = tempfile::tempdir().expect("tempdir");
    let filter = dir.path().join("facteur.conf");
    std::fs::write(&filter, block).expect("write filter");
    // The filter includes fail2ban's common.conf, found next to it.
    std::fs::copy(
        "/etc/fail2ban/filter.d/common.conf",
        dir.path().join("common.conf"),
    )
    .expect("fail2ban is installed (scripts/test.sh installs it)");
    let out = Command::new("fail2ban-regex")
        .arg("--print-all-matched")
        .arg(log)
        .arg(&filter)
        .output()
        .expect("fail2ban-regex (scripts/test.sh installs fail2ban)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && !text.contains("ERROR"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let matched = text
        .split("|- Matched line(s):")
        .nth(1)
        .and_then(|m| m.split("`-").next())
        .unwrap_or_default();
    matched
        .lines()
        .filter_map(|l| l.split(" ip=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn a_log_that_is_not_a_terminal_has_no_colour_codes_and_fail2ban_matches_it() {
    let (server, log) = logged_server(&config(""));
    python(
        &server,
        "submit(['bob@example.com'], 'plain'); wrong_smtp_login(); wrong_imap_login(); forge()",
    );
    let text = wait_for(&log, "for the IMAP login failure", |l| {
        l.contains("auth failure: protocol=imap")
    });
    assert!(text.contains("message accepted"), "{}", tail(&text));
    assert!(
        !text.as_bytes().contains(&0x1b),
        "colour codes in a log file:\n{}",
        tail(&text)
    );
    // The filter docs/fail2ban.md gives matches each failed login, with the client's address
    // (smtplib tries PLAIN, then LOGIN: two failures for its one login), and none of the lines
    // where a client's text was made to look like one.
    assert!(
        text.contains("6.6.6.6"),
        "the forged line is logged: {}",
        tail(&text)
    );
    let failures = text
        .lines()
        .filter(|l| l.contains("WARN net::throttle: auth failure:"))
        .count();
    assert!(failures >= 2, "{}", tail(&text));
    assert_eq!(
        fail2ban_hosts(&log),
        vec!["127.0.0.1".to_string(); failures],
        "{}",
        tail(&text)
    );
}

#[test]
fn no_color_keeps_a_terminal_plain_too() {
    // A pseudo-terminal as stderr (util-linux `script`), with and without NO_COLOR.
    let run = |no_color: &str| -> Vec<u8> {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("mkdir");
        // An init-only first start logs "facteur started" at info and exits.
        std::fs::write(data.join("facteur.toml"), config("")).expect("config");
        let cmd = format!(
            "{} --data {} serve --init-only --domain {DOMAIN}",
            common::BIN,
            data.display()
        );
        let out = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .env("NO_COLOR", no_color)
            .env("RUST_LOG", "info")
            .env("FACTEUR_USER", common::ROOT_USER)
            .output()
            .expect("script (util-linux) runs a command on a pseudo-terminal");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("facteur started"),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        out.stdout
    };
    assert!(
        run("").contains(&0x1b),
        "a terminal without NO_COLOR gets colours"
    );
    assert!(!run("1").contains(&0x1b), "NO_COLOR=1 turns them off");
}

#[test]
fn log_file_receives_the_lines_and_is_reopened_on_sighup() {
    let (server, stderr) = logged_server(&config("[log]\nfile = \"facteur.log\"\n"));
    let file = server.data().join("facteur.log");
    let first = queued_id(&python(&server, "submit(['bob@example.com'], 'first')"));
    let text = wait_for(&file, "for the first message", |l| {
        l.contains("message accepted") && l.contains(&first)
    });
    assert!(!text.as_bytes().contains(&0x1b), "{}", tail(&text));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "log file mode {mode:o}");
    }
    assert!(
        !read(&stderr).contains("message accepted"),
        "with log.file, nothing goes to stderr"
    );

    // logrotate: move the file away, SIGHUP, and the next lines go to a new file.
    let rotated = server.data().join("facteur.log.1");
    std::fs::rename(&file, &rotated).expect("rotate");
    let pid = server.child.as_ref().expect("running").id() as i32;
    // SAFETY: kill(2) on the server process this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    wait_for(&file, "announcing the new file", |l| {
        l.contains("log file reopened")
    });
    let second = queued_id(&python(&server, "submit(['bob@example.com'], 'second')"));
    wait_for(&file, "for the second message", |l| {
        l.contains("message accepted") && l.contains(&second)
    });
    let old = read(&rotated);
    assert!(old.contains(&first) && !old.contains(&second), "{old}");
}

#[test]
fn json_log_lines_parse_and_carry_typed_fields() {
    let (server, log) = logged_server(&config("[log]\nformat = \"json\"\n"));
    let out = python(
        &server,
        "submit(['bob@example.com', 'carol@far.test'], 'json'); wrong_imap_login(); wrong_smtp_login()",
    );
    let id = queued_id(&out);
    let text = wait_for(&log, "for the SMTP login failure", |l| {
        l.contains("auth failure: protocol=smtp")
    });
    let all = json_lines(&text);

    // No field anywhere is the Debug form of an Option or an address wrapper.
    for v in &all {
        for (k, f) in v.as_object().expect("object") {
            if let Some(s) = f.as_str() {
                assert!(
                    !s.starts_with("Some(") && s != "None",
                    "field {k} = {s:?} in {v}"
                );
            }
        }
    }

    let accepted = events(&all, "message accepted");
    let m = accepted
        .iter()
        .find(|v| v["id"] == id.as_str())
        .unwrap_or_else(|| panic!("no 'message accepted' with id {id}: {accepted:?}"));
    assert_eq!(m["peer"], "127.0.0.1", "{m}");
    assert_eq!(m["service"], "submission", "{m}");
    assert_eq!(m["from"], ALICE, "{m}");
    assert_eq!(m["recipients"], 2, "a number: {m}");
    assert_eq!(
        (m["stored"].as_u64(), m["queued"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(m["size"].as_u64().is_some_and(|n| n > 0), "{m}");
    assert_eq!(m["level"], "INFO");

    let f = all
        .iter()
        .find(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("auth failure: protocol=imap ip=127.0.0.1 user="))
        })
        .unwrap_or_else(|| panic!("no IMAP auth failure: {}", tail(&text)));
    assert_eq!(f["service"], "imap", "{f}");
    assert_eq!(f["peer"], "127.0.0.1", "{f}");
    assert_eq!(f["user"], ALICE, "{f}");
    assert_eq!(f["reason"], "invalid credentials", "{f}");
    assert!(f["failures"].as_u64().is_some_and(|n| n >= 1), "{f}");
    assert_eq!(f["level"], "WARN");
    let smtp = all
        .iter()
        .find(|v| v["service"] == "smtp" && v["reason"] == "invalid credentials")
        .unwrap_or_else(|| panic!("no SMTP auth failure event: {}", tail(&text)));
    assert_eq!(smtp["user"], ALICE, "{smtp}");

    // The queued copy for far.test (no DNS here) is deferred, with its id and the reason.
    let text = wait_for(&log, "deferring the far.test copy", |l| {
        l.contains("\"deferred\"") && l.contains(&id)
    });
    let all = json_lines(&text);
    let d = events(&all, "deferred")
        .into_iter()
        .find(|v| v["id"] == id.as_str())
        .expect("deferred event");
    assert_eq!(d["rcpt"], "carol@far.test", "{d}");
    assert!(d["queue_id"].as_i64().is_some(), "{d}");
    assert!(d["retry_in_secs"].as_i64().is_some_and(|s| s > 0), "{d}");
    assert!(
        d["reason"]
            .as_str()
            .is_some_and(|r| r.contains("MX lookup for far.test failed")),
        "a DNS failure is said: {d}"
    );
    assert!(!text.contains(BODY_MARKER), "message text in the log");
}

/// A free TCP port on 127.0.0.1 (also closed on 127.0.0.2, where nothing listens).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

#[test]
fn one_id_from_the_250_to_every_delivery_attempt() {
    // down.test: its MX answers in DNS but nothing listens there (127.0.0.2); refusing.test: its
    // MX is this server itself, which refuses to relay; nxdomain.test does not exist.
    let dns = Dnsmasq::start(&[
        Record::Mx("down.test", "mx.down.test", 10),
        Record::Addr("mx.down.test", "127.0.0.2"),
        Record::Mx("refusing.test", "mx.refusing.test", 10),
        Record::Addr("mx.refusing.test", "127.0.0.1"),
    ]);
    let port = free_port();
    let cfg = config(&format!(
        "[queue]\nremote_port = {port}\nretry_initial_secs = 600\n\
         [dns]\nnameservers = [\"{}\"]\n[log]\nformat = \"json\"\nlevel = \"info,queue=debug\"\n",
        dns.addr
    ))
    .replacen(
        "smtp = [\"127.0.0.1:0\"]",
        &format!("smtp = [\"127.0.0.1:{port}\"]"),
        1,
    );
    let (server, log) = logged_server(&cfg);
    let out = python(
        &server,
        "submit(['a@down.test', 'b@refusing.test', 'c@nxdomain.test'], 'attempts')",
    );
    let id = queued_id(&out);
    let text = wait_for(&log, "for every destination", |_| {
        let all = json_lines(&read(&log));
        let mine = |m: &str| {
            events(&all, m)
                .into_iter()
                .filter(|v| v["id"] == id.as_str())
                .count()
        };
        mine("deferred") >= 1 && mine("bounced") >= 2
    });
    let all = json_lines(&text);
    let by_rcpt = |msg: &str, rcpt: &str| -> Value {
        events(&all, msg)
            .into_iter()
            .find(|v| v["id"] == id.as_str() && v["rcpt"] == rcpt)
            .cloned()
            .unwrap_or_else(|| panic!("no {msg} for {rcpt} with id {id}:\n{}", tail(&text)))
    };
    let down = by_rcpt("deferred", "a@down.test");
    assert!(
        down["reason"]
            .as_str()
            .is_some_and(|r| r.contains("127.0.0.2")),
        "the connection failure is the reason: {down}"
    );
    let refused = by_rcpt("bounced", "b@refusing.test");
    assert_eq!(refused["status"], "5.7.1", "{refused}");
    assert!(
        refused["reason"]
            .as_str()
            .is_some_and(|r| r.contains("Relay access denied")),
        "{refused}"
    );
    assert!(refused["remote"].as_str().is_some(), "{refused}");
    let nx = by_rcpt("bounced", "c@nxdomain.test");
    assert!(
        nx["reason"]
            .as_str()
            .is_some_and(|r| r.contains("does not exist")),
        "{nx}"
    );
    // Three destination domains, three queue entries: each attempt line names the 250's id.
    let queue_ids: std::collections::BTreeSet<i64> = [&down, &refused, &nx]
        .iter()
        .map(|v| v["queue_id"].as_i64().expect("queue_id"))
        .collect();
    assert_eq!(queue_ids.len(), 3);
    // The bounces made a notification, sent under its own id (not the original's).
    let dsn = wait_for(&log, "for the notification", |l| {
        l.contains("notification accepted")
    });
    let dsn = json_lines(&dsn);
    let n = events(&dsn, "notification accepted")[0];
    assert_eq!(n["to"], ALICE, "{n}");
    assert_ne!(n["id"], id.as_str(), "{n}");
    assert!(
        events(&dsn, "delivery status notification sent")
            .iter()
            .any(|v| v["id"] == id.as_str()),
        "the notification line names the original message"
    );

    // `facteur queue list` and `show` name the same id for the deferred entry.
    let list = server.admin(&["queue", "list"]);
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(list.contains(&id) && list.contains("a@down.test"), "{list}");
    let qid = down["queue_id"].as_i64().expect("queue_id").to_string();
    let show = server.admin(&["--json", "queue", "show", &qid]);
    let show: Value = serde_json::from_slice(&show.stdout).expect("queue show --json");
    assert_eq!(show["smtp_id"], id.as_str(), "{show}");
}

/// Debug level: protocol traces of SMTP (both ways), IMAP and POP3, with no password, no SASL
/// response and no message text.
#[test]
fn debug_level_traces_protocols_without_secrets() {
    let (server, log) = logged_server(&config(
        "[log]\nlevel = \"info,smtp=debug,imap=debug,pop3=debug\"\n",
    ));
    python(
        &server,
        r#"
submit(['bob@example.com'], 'traced')
# AUTH LOGIN too: user and password each in their own SASL line.
s = smtplib.SMTP("127.0.0.1", SUB, timeout=60)
s.starttls(context=CTX); s.ehlo("client.test")
code, _ = s.docmd("AUTH", "LOGIN")
assert code == 334
code, _ = s.docmd(base64.b64encode(USER.encode()).decode())
assert code == 334
code, _ = s.docmd(base64.b64encode(PW.encode()).decode())
assert code == 235, code
s.quit()
c = imaplib.IMAP4_SSL("127.0.0.1", IMAPS, ssl_context=CTX)
c.login("bob@example.com", "bob-password-1")
c.select("INBOX")
typ, data = c.fetch("1", "(BODY[])")
assert MARK in data[0][1].decode()
c.logout()
c = imaplib.IMAP4_SSL("127.0.0.1", IMAPS, ssl_context=CTX)
c.authenticate("PLAIN", lambda _: b"\0bob@example.com\0bob-password-1")
c.logout()
p = poplib.POP3_SSL("127.0.0.1", POP3S, context=CTX)
p.user("bob@example.com"); p.pass_("bob-password-1")
assert MARK in b"\n".join(p.retr(1)[1]).decode()
p.quit()
"#,
    );
    let text = wait_for(&log, "for the end of the POP3 session", |l| {
        l.contains("pop3 session end")
    });
    for (what, needle) in [
        ("SMTP commands", "smtp command"),
        ("the MAIL command", "FROM:<alice@example.com>"),
        ("SMTP replies", "smtp reply"),
        (
            "AUTH without its response",
            "AUTH PLAIN <initial response redacted>",
        ),
        ("SASL responses", "<SASL response redacted>"),
        ("IMAP commands", "imap command"),
        ("the SELECT", "SELECT INBOX"),
        ("LOGIN without credentials", "LOGIN <credentials redacted>"),
        ("IMAP responses", "imap response"),
        ("POP3 commands", "pop3 command"),
        ("the RETR", "RETR 1"),
        ("PASS without password", "PASS <redacted>"),
        ("POP3 replies", "pop3 reply"),
    ] {
        assert!(
            text.contains(needle),
            "no {what} ({needle}) in:\n{}",
            tail(&text)
        );
    }
    // Base64 as a client sends it; `|` stands for NUL (which cannot go through argv).
    let b64 = |s: &str| {
        let out = Command::new("python3")
            .args([
                "-c",
                "import base64,sys; print(base64.b64encode(sys.argv[1].replace('|', chr(0)).encode()).decode())",
                s,
            ])
            .output()
            .expect("python3");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    for secret in [
        PW.to_string(),
        "bob-password-1".to_string(),
        b64(PW),
        b64(&format!("|{ALICE}|{PW}")),
        b64("|bob@example.com|bob-password-1"),
        BODY_MARKER.to_string(),
    ] {
        assert!(!text.contains(&secret), "{secret:?} in the log");
    }
}

/// Reads the greeting on a raw connection to `addr`, sends `hello` (if any) and reads its reply
/// (up to a line starting with `hello_end`), then pipelines `data` and reads until the server
/// closes; returns the number of reply lines to `data` and the last one.
fn flood(addr: SocketAddr, hello: Option<(&str, &str)>, data: Vec<u8>) -> (usize, String) {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut w = s.try_clone().expect("clone");
    let mut r = BufReader::new(s);
    let mut l = String::new();
    r.read_line(&mut l).expect("greeting");
    if let Some((cmd, end)) = hello {
        w.write_all(cmd.as_bytes()).expect("write");
        loop {
            let mut l = String::new();
            assert!(r.read_line(&mut l).expect("reply") > 0, "closed");
            if l.starts_with(end) {
                break;
            }
        }
    }
    let writer = std::thread::spawn(move || {
        // The server closes mid-way: that is the expected outcome.
        let _ = w.write_all(&data);
    });
    let (mut n, mut last) = (0, String::new());
    loop {
        let mut l = String::new();
        match r.read_line(&mut l) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                n += 1;
                last = l;
            }
        }
    }
    writer.join().expect("writer");
    (n, last)
}

/// 50,000 pipelined RCPTs over the limit, 50,000 unknown SMTP commands, 50,000 IMAP BAD and POP3
/// -ERR commands: each session is closed at the bad-command limit, and the log grows by a few
/// lines per session, not per command.
#[test]
fn command_floods_close_the_session_and_write_a_bounded_log() {
    const N: usize = 50_000;
    let (server, log) = logged_server(&config(""));
    let before = std::fs::metadata(&log).map_or(0, |m| m.len());

    // EHLO ends a pipelined group (RFC 2920 §3.1): its reply comes first.
    let ehlo = Some(("EHLO flood.test\r\n", "250 "));
    let mut rcpts = b"MAIL FROM:<flood@far.test>\r\n".to_vec();
    for _ in 0..N {
        rcpts.extend_from_slice(b"RCPT TO:<bob@example.com>\r\n");
    }
    let (replies, last) = flood(server.addr("smtp"), ehlo, rcpts);
    assert!(last.starts_with("421"), "closed with 421, got {last:?}");
    // MAIL, then 100 accepted, 100 refused without counting, 10 counted, and the 421.
    assert_eq!(replies, 1 + 100 + 100 + 10 + 1, "the session ran on");

    let (replies, last) = flood(server.addr("smtp"), ehlo, b"FOO\r\n".repeat(N));
    assert!(
        last.starts_with("421") && replies <= 11,
        "{replies} {last:?}"
    );

    let (replies, last) = flood(server.addr("imap"), None, b"a FOO\r\n".repeat(N));
    assert!(
        last.starts_with("* BYE") && replies <= 11,
        "{replies} {last:?}"
    );

    let (replies, last) = flood(server.addr("pop3"), None, b"FOO\r\n".repeat(N));
    assert!(
        last.starts_with("-ERR Too many errors") && replies <= 11,
        "{replies} {last:?}"
    );

    // Both SMTP sessions end with a summary line (written when the session is dropped).
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = read(&log);
        if text.matches("refusals summarised").count() >= 2 {
            break text;
        }
        assert!(Instant::now() < deadline, "no summaries:\n{}", tail(&text));
        std::thread::sleep(Duration::from_millis(100));
    };
    let after = std::fs::metadata(&log).map_or(0, |m| m.len());
    let written = after - before;
    let lines = text.lines().count();
    assert!(
        written < 16 * 1024,
        "{written} bytes of log for four floods of {N} commands:\n{}",
        tail(&text)
    );
    assert!(
        text.contains("too many bad commands"),
        "the close is said: {}",
        tail(&text)
    );
    assert!(lines < 80, "{lines} lines:\n{}", tail(&text));
    println!("four floods of {N} commands wrote {written} bytes of log in {lines} lines");
}

/// A client that opens connections in a loop past its limit, and one that breaks TLS handshakes
/// in a loop, cause one refusal each per connection; the log keeps a few lines per client, not one
/// per connection.
#[test]
fn connection_floods_write_a_bounded_log() {
    const N: usize = 300;
    let (server, log) = logged_server(&config("[limits]\nmax_connections_per_ip = 1\n"));
    let before = read(&log).len();
    let smtp = server.addr("smtp");
    // The one connection allowed, held open.
    let _held = std::net::TcpStream::connect(smtp).expect("connect");
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..N {
        if let Ok(mut s) = std::net::TcpStream::connect(smtp) {
            use std::io::Read;
            let mut b = [0u8; 256];
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.read(&mut b);
        }
    }
    // Garbage instead of a TLS ClientHello on the implicit TLS port, once per connection.
    let imaps = server.addr("imaps");
    for _ in 0..N {
        if let Ok(mut s) = std::net::TcpStream::connect(imaps) {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
            let mut b = [0u8; 64];
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.read(&mut b);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let text = read(&log);
    let new = &text[before.min(text.len())..];
    let refused = new.matches("connection refused: limit reached").count();
    let handshakes = new.matches("TLS handshake failed").count();
    assert!(
        (1..=5).contains(&refused),
        "{refused} refusal lines for {N} refused connections:\n{}",
        tail(new)
    );
    assert!(
        (1..=5).contains(&handshakes),
        "{handshakes} handshake lines for {N} broken handshakes:\n{}",
        tail(new)
    );
}
