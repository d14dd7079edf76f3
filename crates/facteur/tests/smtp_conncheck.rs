//! Connection and sender checks on the MX port, seen by Python's smtplib: DNS blocklists and
//! allowlists answered by a real dnsmasq started here (127.0.0.1, the test client, listed as
//! 1.0.0.127.<zone>), a list that never answers (time budget), forward-confirmed reverse DNS
//! (clients on other loopback addresses, 127.0.0.5),
//! HELO sanity, rate limits, greylisting round trip, and clients that talk before the greeting.

mod common;

use std::net::UdpSocket;
use std::process::Command;

use common::dnsmasq::{Dnsmasq, Record};
use common::{Server, test_config};

const DOMAIN: &str = "example.com";
const PW: &str = "alice-password-1";

const PRELUDE: &str = r#"
import os, smtplib, socket, time
MX = int(os.environ["P_MX"]); SUB = int(os.environ["P_SUB"])
RCPT = "alice@example.com"

def want(got, code, enh=None, what=""):
    c, m = got
    m = m.decode("utf-8", "replace") if isinstance(m, bytes) else str(m)
    assert c == code and (enh is None or m.startswith(enh)), \
        f"{what}: expected {code} {enh or ''}, got {c} {m!r}"

def mx(helo="client.far.test", source="127.0.0.1"):
    s = smtplib.SMTP("127.0.0.1", MX, timeout=30, source_address=(source, 0))
    want(s.ehlo(helo), 250, None, "EHLO")
    return s

def data(s, body):
    try:
        return s.data(body)
    except smtplib.SMTPDataError as e:
        return (e.smtp_code, e.smtp_error)

def deliver(s, frm, rcpt=RCPT, subject="hello"):
    want(s.mail(frm), 250, "2.1.0", f"MAIL FROM {frm}")
    want(s.rcpt(rcpt), 250, "2.1.5", f"RCPT TO {rcpt}")
    want(data(s, f"From: {frm}\r\nTo: {rcpt}\r\nSubject: {subject}\r\n\r\nbody\r\n"), 250, "2.0.0", "end of data")
"#;

fn python(server: &Server, script: &str) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!("{PRELUDE}\n{script}\nprint('python ok')\n"))
        .env("P_MX", server.addr("smtp").port().to_string())
        .env("P_SUB", server.addr("submission").port().to_string())
        .output()
        .expect("python3 is needed for these tests (scripts/test.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("python ok"),
        "smtplib script failed:\n{text}\n--- server log ---\n{}",
        server.log()
    );
}

/// A server resolving through `dns`, the test client (127.0.0.1) not trusted, with `extra`
/// sections; the log is kept for [`Server::log`].
fn start(dns: &Dnsmasq, extra: &str) -> Server {
    let config = test_config(
        DOMAIN,
        &format!(
            "[dns]\nnameservers = [\"{}\"]\n[smtp]\ninbound_auth = false\n{extra}",
            dns.addr
        ),
    );
    let server = Server::start_logged(DOMAIN, &config, "info");
    server.add_account(&format!("alice@{DOMAIN}"), PW);
    server
}

const UNTRUSTED: &str = "trusted_networks = []\n";

async fn inbox_len(server: &Server) -> usize {
    common::inbox(&server.store(), &format!("alice@{DOMAIN}"))
        .await
        .len()
}

#[tokio::test]
async fn blocklisted_client_is_refused_unless_allowlisted() {
    let dns = Dnsmasq::start(&[
        Record::Addr("1.0.0.127.bl.test", "127.0.0.2"),
        Record::Addr("1.0.0.127.wl.test", "127.0.10.1"),
    ]);
    let server = start(
        &dns,
        &format!(
            "[connection]\n{UNTRUSTED}[dnsbl]\nzones = [{{ zone = \"bl.test\", action = \"reject\" }}]\n"
        ),
    );
    python(
        &server,
        r#"
s = mx()
want(s.mail("a@far.test"), 554, "5.7.1", "listed client")
s.quit()
"#,
    );
    assert!(
        server
            .log()
            .contains("client address listed by bl.test (127.0.0.2)")
    );
    assert_eq!(inbox_len(&server).await, 0);
    drop(server);

    // The same client on an allowlist too: accepted, both lists' scores in the verdict.
    let server = start(
        &dns,
        &format!(
            "[connection]\n{UNTRUSTED}[dnsbl]\nzones = [{{ zone = \"bl.test\", action = \"reject\", score = 4.0 }}, \
             {{ zone = \"wl.test\", action = \"allow\", score = -3.0 }}]\n"
        ),
    );
    python(&server, "s = mx(); deliver(s, 'a@far.test'); s.quit()");
    assert_eq!(inbox_len(&server).await, 1);
    let log = server.log();
    assert!(
        log.contains("DNSBL:bl.test") && log.contains("DNSWL:wl.test"),
        "{log}"
    );
}

#[tokio::test]
async fn lists_that_refuse_fail_or_stay_silent_give_no_verdict() {
    // A nameserver that never answers: queries under slow.test time out in dnsmasq's upstream.
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let dns = Dnsmasq::start(&[
        Record::Addr("1.0.0.127.refusing.test", "127.255.255.254"),
        Record::Addr("1.0.0.127.outside.test", "192.0.2.1"),
        Record::Forward("slow.test", silent.local_addr().expect("addr")),
    ]);
    let server = start(
        &dns,
        &format!(
            "[connection]\n{UNTRUSTED}dns_budget_ms = 500\n[dnsbl]\nzones = [\
             {{ zone = \"refusing.test\", action = \"reject\" }}, \
             {{ zone = \"outside.test\", action = \"reject\" }}, \
             {{ zone = \"slow.test\", action = \"reject\" }}, \
             {{ zone = \"notlisted.test\", action = \"reject\" }}]\n"
        ),
    );
    python(&server, "s = mx(); deliver(s, 'a@far.test'); s.quit()");
    assert_eq!(inbox_len(&server).await, 1);
    let log = server.log();
    assert!(
        log.contains("refused the query or answered outside 127.0.0.0/8"),
        "{log}"
    );
    assert!(
        log.contains("out of time") && log.contains("1.0.0.127.slow.test"),
        "{log}"
    );
}

/// The resolver answers reverse lookups in 127.0.0.0/8 itself with "localhost" (RFC 6761 §6.3,
/// as hickory does), which resolves to 127.0.0.1 only: a client on 127.0.0.1 is confirmed, one
/// on 127.0.0.5 is not. (A PTR naming a host that resolves elsewhere is tested in `smtp::conn`.)
#[tokio::test]
async fn sender_domain_lists_and_reverse_dns() {
    let dns = Dnsmasq::start(&[Record::Addr("spammer.test.dbl.test", "127.0.1.2")]);
    let server = start(
        &dns,
        &format!(
            "[connection]\n{UNTRUSTED}fcrdns_score = 1.5\n[dnsbl]\nzones = [\
             {{ zone = \"dbl.test\", type = \"domain\", action = \"reject\", codes = [\"127.0.1.2\"] }}]\n"
        ),
    );
    python(
        &server,
        r#"
s = mx(source="127.0.0.5")
want(s.mail("x@Spammer.Test"), 554, "5.7.1", "listed sender domain")
deliver(s, "x@fine.test")
s.quit()
"#,
    );
    assert_eq!(inbox_len(&server).await, 1);
    let log = server.log();
    assert!(log.contains("RDNS_NOT_CONFIRMED"), "{log}");
}

#[tokio::test]
async fn confirmed_reverse_dns_adds_nothing() {
    let dns = Dnsmasq::start(&[]);
    let server = start(
        &dns,
        &format!("[connection]\n{UNTRUSTED}fcrdns_score = 1.5\nhelo_not_fqdn_score = 0.5\n"),
    );
    python(
        &server,
        "s = mx('EXCHANGE01'); deliver(s, 'a@far.test'); s.quit()",
    );
    assert_eq!(inbox_len(&server).await, 1);
    let log = server.log();
    assert!(log.contains("HELO_NOT_FQDN"), "{log}");
    assert!(!log.contains("RDNS_NOT_CONFIRMED"), "{log}");
}

#[tokio::test]
async fn forged_helo_is_refused() {
    let dns = Dnsmasq::start(&[]);
    let server = start(
        &dns,
        &format!("[connection]\n{UNTRUSTED}fcrdns_score = 0.0\nhelo_not_fqdn = \"reject\"\n"),
    );
    python(
        &server,
        r#"
for helo in ["[192.0.2.1]", "mx.example.com", "EXAMPLE.COM", "nodots"]:
    s = mx(helo)
    want(s.mail("a@far.test"), 550, "5.7.1", f"HELO {helo}")
    s.quit()
s = mx("[127.0.0.1]")
deliver(s, "a@far.test")
s.quit()
"#,
    );
    assert_eq!(inbox_len(&server).await, 1);
}

#[tokio::test]
async fn rate_limits_answer_451() {
    let dns = Dnsmasq::start(&[]);
    let server = start(
        &dns,
        &format!(
            "[connection]\n{UNTRUSTED}fcrdns_score = 0.0\nrate_messages = 2\nrate_recipients = 3\n"
        ),
    );
    python(
        &server,
        r#"
s = mx()
want(s.mail("a@far.test"), 250, "2.1.0")
for i in range(3):
    want(s.rcpt(RCPT), 250, "2.1.5", f"recipient {i}")
want(s.rcpt(RCPT), 451, "4.7.1", "fourth recipient")
want(data(s, "Subject: one\r\n\r\nbody\r\n"), 250, "2.0.0")
s.quit()
s = mx()
want(s.mail("a@far.test"), 250, "2.1.0", "second message")
s.rset()
want(s.mail("a@far.test"), 451, "4.7.1", "third message")
s.quit()
"#,
    );
    assert_eq!(inbox_len(&server).await, 1);
}

#[tokio::test]
async fn greylisting_round_trip() {
    let dns = Dnsmasq::start(&[]);
    let server = start(
        &dns,
        &format!(
            "[connection]\n{UNTRUSTED}fcrdns_score = 0.0\n\
             [greylist]\nenabled = true\ndelay_secs = 1\nwhitelist_after = 1\n"
        ),
    );
    python(
        &server,
        r#"
s = mx()
want(s.mail("first@far.test"), 250, "2.1.0")
want(s.rcpt(RCPT), 451, "4.7.1", "first attempt")
s.quit()
time.sleep(2.2)  # past delay_secs (times are whole seconds)
s = mx()
deliver(s, "first@far.test", subject="retried")
s.quit()
# The network retried properly: a new triplet from it is not greylisted.
s = mx()
deliver(s, "second@far.test", subject="whitelisted")
s.quit()
"#,
    );
    assert_eq!(inbox_len(&server).await, 2);
    let stats = server.store().greylist_stats().await.expect("stats");
    assert_eq!((stats.passed, stats.networks), (1, 1));

    // Submission is never greylisted.
    common::mail::submit(
        &server,
        PW,
        &format!("alice@{DOMAIN}"),
        &format!("alice@{DOMAIN}"),
        "submitted",
    )
    .await;
    assert_eq!(inbox_len(&server).await, 3);
}

#[tokio::test]
async fn greeting_pause_on_the_mx_port_only() {
    let dns = Dnsmasq::start(&[]);
    // A pause far longer than the test: the early talker is answered at once, and submission
    // (never paused) greets within smtplib's timeout.
    let config = test_config(
        DOMAIN,
        &format!(
            "[dns]\nnameservers = [\"{}\"]\n[smtp]\ninbound_auth = false\ngreeting_delay_ms = 60000\n",
            dns.addr
        ),
    );
    let server = Server::start_logged(DOMAIN, &config, "info");
    python(
        &server,
        r#"
c = socket.create_connection(("127.0.0.1", MX), timeout=30)
c.sendall(b"EHLO early.test\r\n")
got = c.recv(1000)
assert got.startswith(b"554 5.5.0"), got
c.close()
s = smtplib.SMTP("127.0.0.1", SUB, timeout=30)
want(s.ehlo("client.test"), 250)
s.quit()
"#,
    );
    assert!(server.log().contains("client talked before the greeting"));
}
