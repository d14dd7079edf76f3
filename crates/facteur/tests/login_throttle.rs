//! Login throttling end to end, attacked the way the security battery did: the real binary, clients
//! we did not write (Python's imaplib, poplib and smtplib) connecting from several loopback
//! addresses (127.0.0.2 and up: the client socket is bound to them), and `facteur ban list|remove`
//! run beside the server. Each test checks the answers the clients get and the log lines the server
//! writes (counted, never timed).
//!
//! - Twenty wrong passwords in parallel from twenty addresses do not lock the owner out: its known
//!   address still gets in (also after a restart); unknown addresses are refused without a check.
//! - An attacker interleaving logins to its own account with guesses at others is still banned; its
//!   right password then gets "try again in N minutes" on IMAP, POP3 and submission.
//! - Forty parallel LOGINs from one new address: exactly the limit (10) get their password checked.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::Server;
use serde_json::Value;

const DOMAIN: &str = "example.com";
const ALICE: &str = "alice@example.com";
const ALICE_PW: &str = "alice-password-1";
const MALLORY: &str = "mallory@example.com";
const MALLORY_PW: &str = "mallory-password-1";
/// What every refused or failed IMAP login gets.
const IMAP_FAILED: &str = "[AUTHENTICATIONFAILED] Authentication failed";
/// What a right password from a banned address the account logged in from gets, the minutes
/// left replaced by N (see [`minutes_as_n`]).
const IMAP_HELD: &str =
    "[UNAVAILABLE] Too many failed logins from your address; try again in N minutes";

/// Replaces the minutes of "try again in <m> minutes" by N, checking 1 <= m <= 60 (the ban lasts an
/// hour): the exact figure depends on how long the test took, which is not asserted.
fn minutes_as_n(answer: &str) -> String {
    const AT: &str = "try again in ";
    let Some(i) = answer.find(AT) else {
        return answer.to_string();
    };
    let rest = &answer[i + AT.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let m: u64 = digits.parse().unwrap_or(0);
    assert!((1..=60).contains(&m), "minutes left: {answer}");
    format!("{}{AT}N{}", &answer[..i], &rest[digits.len()..])
}
/// Longest wait for the server to apply a `ban remove` (it polls the store every 2 s).
const LIFT_DEADLINE: Duration = Duration::from_secs(30);

/// The harness config with POP3 too, no login delay (answers, not time, are checked), room for 40
/// connections from one address, and `argon2` as given (cheap unless a test needs slow checks).
fn config(argon2: &str) -> String {
    common::test_config(
        DOMAIN,
        "base_delay_ms = 0\nmax_delay_ms = 0\n[limits]\nmax_connections_per_ip = 100\n",
    )
    .replacen(
        "pop3 = []\npop3s = []\n",
        "pop3 = [\"127.0.0.1:0\"]\npop3s = [\"127.0.0.1:0\"]\n",
        1,
    )
    .replacen(
        "argon2_memory_kib = 1024\nargon2_iterations = 1\n",
        argon2,
        1,
    )
}

fn start(argon2: &str) -> Server {
    let s = Server::start_logged(DOMAIN, &config(argon2), "info");
    s.add_account(ALICE, ALICE_PW);
    s.add_account(MALLORY, MALLORY_PW);
    s
}

/// Runs a Python script with client helpers bound to a source address; returns what it printed
/// on its last line, parsed as JSON.
fn python(server: &Server, body: &str) -> Value {
    let prelude = format!(
        r#"
import imaplib, poplib, smtplib, socket, ssl, json, threading
IMAPS = {imaps}
POP3S = {pop3s}
SUBMISSIONS = {subs}
CTX = ssl.create_default_context(); CTX.check_hostname = False; CTX.verify_mode = ssl.CERT_NONE

class Imap(imaplib.IMAP4_SSL):
    """An IMAP client whose socket is bound to the loopback address `src`."""
    def __init__(self, src):
        self.src = src
        super().__init__("127.0.0.1", IMAPS, ssl_context=CTX, timeout=60)
    def _create_socket(self, timeout):
        s = socket.create_connection((self.host, self.port), timeout, source_address=(self.src, 0))
        return self.ssl_context.wrap_socket(s, server_hostname=self.host)

def text(e):
    a = e.args[0] if e.args else e
    return a.decode() if isinstance(a, bytes) else str(a)

def imap_login(src, user, pw, conn=None):
    c = conn or Imap(src)
    try:
        c.login(user, pw)
        c.logout()
        return "OK"
    except imaplib.IMAP4.error as e:
        return text(e)

class Pop3(poplib.POP3_SSL):
    """A POP3 client whose socket is bound to the loopback address `src`."""
    def __init__(self, src):
        self.src = src
        super().__init__("127.0.0.1", POP3S, context=CTX, timeout=60)
    def _create_socket(self, timeout):
        s = socket.create_connection((self.host, self.port), timeout, source_address=(self.src, 0))
        return self.context.wrap_socket(s, server_hostname=self.host)

def pop3(src, user, pw):
    c = Pop3(src)
    try:
        c.user(user)
        c.pass_(pw)
        c.quit()
        return "OK"
    except poplib.error_proto as e:
        return text(e)

def submission(src, user, pw):
    s = smtplib.SMTP_SSL("127.0.0.1", SUBMISSIONS, context=CTX, source_address=(src, 0), timeout=60)
    try:
        s.login(user, pw)
        s.quit()
        return "OK"
    except smtplib.SMTPAuthenticationError as e:
        return "%d %s" % (e.smtp_code, e.smtp_error.decode())

def parallel_imap(jobs):
    """Connects every (src, user, pw) first, then sends all the LOGINs at once."""
    conns = [Imap(src) for (src, _, _) in jobs]
    barrier = threading.Barrier(len(jobs))
    out = [None] * len(jobs)
    def run(i):
        barrier.wait()
        out[i] = imap_login(None, jobs[i][1], jobs[i][2], conns[i])
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads: t.start()
    for t in threads: t.join()
    return out
"#,
        imaps = server.addr("imaps").port(),
        pop3s = server.addr("pop3s").port(),
        subs = server.addr("submissions").port(),
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!("{prelude}\n{body}"))
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn imap_login(server: &Server, src: &str, user: &str, pw: &str) -> String {
    let v = python(
        server,
        &format!("print(json.dumps(imap_login({src:?}, {user:?}, {pw:?})))"),
    );
    v.as_str().unwrap_or_default().to_string()
}

/// `facteur --json ARGS` against the server's data folder: exit success and parsed output.
fn admin_json(server: &Server, args: &[&str]) -> (bool, Value) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = server.admin(&all);
    let text = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(text.trim()).unwrap_or(Value::Null);
    (out.status.success(), v)
}

/// Polls `ban list` until `pred` holds on its entries (bans are recorded in the background).
fn wait_for_bans(server: &Server, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + LIFT_DEADLINE;
    loop {
        let (ok, v) = admin_json(server, &["ban", "list"]);
        assert!(ok, "ban list failed");
        let list = v.as_array().cloned().unwrap_or_default();
        if pred(&list) {
            return list;
        }
        assert!(Instant::now() < deadline, "bans never became {list:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Retries an IMAP login until it is accepted: the server applies a lift within seconds. Until
/// then the answer must be `before`.
fn wait_for_login(server: &Server, src: &str, user: &str, pw: &str, before: &str) {
    let deadline = Instant::now() + LIFT_DEADLINE;
    loop {
        let r = minutes_as_n(&imap_login(server, src, user, pw));
        if r == "OK" {
            return;
        }
        assert_eq!(r, before, "before the lift is applied");
        assert!(Instant::now() < deadline, "the lift was never applied");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

#[test]
fn twenty_addresses_guessing_in_parallel_do_not_lock_the_owner_out() {
    let mut server = start("argon2_memory_kib = 1024\nargon2_iterations = 1\n");
    // The owner has logged in from 127.0.0.1 before.
    assert_eq!(imap_login(&server, "127.0.0.1", ALICE, ALICE_PW), "OK");

    let jobs: Vec<String> = (2..22)
        .map(|n| format!("(\"127.0.0.{n}\", {ALICE:?}, \"guess-{n}\")"))
        .collect();
    let answers = python(
        &server,
        &format!("print(json.dumps(parallel_imap([{}])))", jobs.join(", ")),
    );
    assert_eq!(
        answers,
        Value::Array(vec![Value::from(IMAP_FAILED); 20]),
        "every guess fails alike"
    );
    let log = server.log();
    assert_eq!(
        count(&log, "auth failure: protocol=imap ip=127.0.0."),
        20,
        "{log}"
    );
    assert_eq!(count(&log, "login ban: account refused"), 1, "{log}");

    // The owner, from its known address, gets in; an address new to the account is refused
    // with the ordinary answer even with the right password (no check: no oracle).
    assert_eq!(imap_login(&server, "127.0.0.1", ALICE, ALICE_PW), "OK");
    assert_eq!(
        imap_login(&server, "127.0.0.30", ALICE, ALICE_PW),
        IMAP_FAILED
    );
    // Other accounts are not affected.
    assert_eq!(imap_login(&server, "127.0.0.30", MALLORY, MALLORY_PW), "OK");

    // The CLI lists the ban, and `auth test` says why a login would be refused.
    let bans = wait_for_bans(&server, |l| l.len() == 1);
    assert_eq!(bans[0]["account"], ALICE);
    assert_eq!(bans[0]["source"], Value::Null);
    assert_eq!(bans[0]["failures"], 20);
    let left = bans[0]["seconds_left"].as_i64().unwrap_or(0);
    assert!(left > 0 && left <= 3600, "{bans:?}");
    let text = String::from_utf8_lossy(&server.admin(&["ban", "list"]).stdout).into_owned();
    assert!(
        text.contains("(new addresses)") && text.contains(ALICE),
        "{text}"
    );
    let out = common_auth_test(&server, ALICE, ALICE_PW);
    assert!(!out.0, "auth test passed during a ban: {}", out.1);
    assert!(
        out.1
            .contains("password OK, but the login would be refused")
            && out.1.contains("never logged in from"),
        "{}",
        out.1
    );

    // A restart keeps the ban and the owner's known address.
    server.kill9();
    server.spawn();
    assert_eq!(imap_login(&server, "127.0.0.1", ALICE, ALICE_PW), "OK");
    assert_eq!(
        imap_login(&server, "127.0.0.30", ALICE, ALICE_PW),
        IMAP_FAILED
    );

    // Lifted while the server runs: the new address gets in within seconds.
    let (ok, v) = admin_json(&server, &["ban", "remove", "ALICE@example.com"]);
    assert!(ok, "ban remove failed: {v}");
    assert_eq!(v["lifted"][0]["account"], ALICE);
    wait_for_login(&server, "127.0.0.30", ALICE, ALICE_PW, IMAP_FAILED);
    assert!(wait_for_bans(&server, |l| l.is_empty()).is_empty());
    let (ok, _) = admin_json(&server, &["ban", "remove", ALICE]);
    assert!(!ok, "removing a ban that is not there succeeded");
    let log = server.log();
    assert_eq!(count(&log, "login ban ended"), 1, "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("login ban ended") && l.contains("reason=lifted")),
        "{log}"
    );
}

/// `facteur auth test ADDRESS` with the password on standard input: (success, stdout + stderr).
fn common_auth_test(server: &Server, address: &str, pw: &str) -> (bool, String) {
    use std::io::Write;
    let mut c = Command::new(common::BIN)
        .arg("--data")
        .arg(server.data())
        .args(["auth", "test", address, "--from", "127.0.0.30"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run facteur");
    c.stdin
        .take()
        .expect("stdin")
        .write_all(pw.as_bytes())
        .expect("write");
    let out = c.wait_with_output().expect("wait");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn interleaving_successes_does_not_save_a_guesser_and_the_owner_is_told_to_wait() {
    let server = start("argon2_memory_kib = 1024\nargon2_iterations = 1\n");
    // Mallory holds an account and guesses at Alice's between its own logins, from one address.
    let rounds = python(
        &server,
        r#"
out = []
for i in range(10):
    out.append([imap_login("127.0.0.60", "mallory@example.com", "mallory-password-1"),
                imap_login("127.0.0.60", "alice@example.com", "guess-%d" % i)])
print(json.dumps(out))
"#,
    );
    let expected: Vec<Value> = (0..10)
        .map(|_| Value::from(vec!["OK", IMAP_FAILED]))
        .collect();
    assert_eq!(rounds, Value::Array(expected));
    let log = server.log();
    assert_eq!(
        count(
            &log,
            "auth failure: protocol=imap ip=127.0.0.60 user=alice@example.com"
        ),
        10,
        "{log}"
    );
    assert!(
        log.lines().any(|l| l.contains("login ban: source refused")
            && l.contains("source=127.0.0.60")
            && l.contains("failures=10")),
        "{log}"
    );

    // Banned. Mallory's right password, checked from an address it logged in from before, gets
    // an answer that says to wait, on each protocol...
    let held = python(
        &server,
        r#"
print(json.dumps([imap_login("127.0.0.60", "mallory@example.com", "mallory-password-1"),
                  pop3("127.0.0.60", "mallory@example.com", "mallory-password-1"),
                  submission("127.0.0.60", "mallory@example.com", "mallory-password-1"),
                  imap_login("127.0.0.60", "mallory@example.com", "wrong-password")]))
"#,
    );
    assert_eq!(
        held.as_array()
            .map(|v| v
                .iter()
                .map(|a| Value::from(minutes_as_n(a.as_str().unwrap_or_default())))
                .collect::<Vec<_>>())
            .map(Value::Array)
            .unwrap_or_default(),
        serde_json::json!([
            IMAP_HELD,
            "-ERR [SYS/TEMP] Too many failed logins from your address; try again in N minutes",
            "454 4.7.0 Too many failed logins from your address; try again in N minutes",
            IMAP_FAILED,
        ])
    );
    // ...while Alice's right password from there is refused like any failure, without a check.
    assert_eq!(
        imap_login(&server, "127.0.0.60", ALICE, ALICE_PW),
        IMAP_FAILED
    );
    let log = server.log();
    assert_eq!(
        count(
            &log,
            "auth failure: protocol=imap ip=127.0.0.60 user=alice@example.com"
        ),
        10,
        "a refused attempt was counted as checked: {log}"
    );
    // Alice from elsewhere is not affected; each protocol logs the success with its fields.
    let ok = python(
        &server,
        r#"
print(json.dumps([imap_login("127.0.0.1", "alice@example.com", "alice-password-1"),
                  pop3("127.0.0.1", "alice@example.com", "alice-password-1"),
                  submission("127.0.0.1", "alice@example.com", "alice-password-1")]))
"#,
    );
    assert_eq!(ok, serde_json::json!(["OK", "OK", "OK"]));
    let log = server.log();
    for line in [
        "login service=imap user=alice@example.com peer=127.0.0.1 tls=true mechanism=LOGIN",
        "login service=pop3 user=alice@example.com peer=127.0.0.1 tls=true mechanism=USER",
        "login service=submission user=alice@example.com peer=127.0.0.1 tls=true mechanism=PLAIN",
    ] {
        assert_eq!(count(&log, line), 1, "{line} in {log}");
    }
    assert_eq!(
        count(
            &log,
            "login service=imap user=mallory@example.com peer=127.0.0.60"
        ),
        10,
        "a held login was logged as a success: {log}"
    );

    // The source's ban is listed, lifted by address, and Mallory gets in again.
    let bans = wait_for_bans(&server, |l| l.len() == 1);
    assert_eq!(bans[0]["source"], "127.0.0.60");
    assert_eq!(bans[0]["account"], Value::Null);
    assert_eq!(bans[0]["failures"], 10);
    let (ok, _) = admin_json(&server, &["ban", "remove", "127.0.0.60"]);
    assert!(ok);
    // Until the server applies the lift, Mallory (known there) is told to wait.
    wait_for_login(&server, "127.0.0.60", MALLORY, MALLORY_PW, IMAP_HELD);
}

#[test]
fn forty_parallel_logins_from_one_new_address_get_ten_checks() {
    // Real Argon2 cost, so the forty LOGINs are all in flight together.
    let server = start("argon2_memory_kib = 19456\nargon2_iterations = 2\n");
    let jobs = vec![format!("(\"127.0.0.50\", {ALICE:?}, \"guess\")"); 40];
    let answers = python(
        &server,
        &format!("print(json.dumps(parallel_imap([{}])))", jobs.join(", ")),
    );
    assert_eq!(answers, Value::Array(vec![Value::from(IMAP_FAILED); 40]));
    let log = server.log();
    assert_eq!(
        count(&log, "auth failure: protocol=imap ip=127.0.0.50 "),
        10,
        "passwords checked beyond the limit: {log}"
    );
    assert_eq!(count(&log, "login ban: source refused"), 1, "{log}");
    let bans = wait_for_bans(&server, |l| l.len() == 1);
    assert_eq!(bans[0]["source"], "127.0.0.50");
}
