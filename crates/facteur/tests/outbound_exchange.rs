//! Two Facteur instances on different loopback addresses exchange mail both ways through a local
//! DNS server (dnsmasq) that serves their MX records: submission with lettre, outbound queue, MX
//! lookup, STARTTLS between the servers, delivery into the other's mailbox. Also: a recipient the
//! other side refuses gives exactly one DSN, a null-MX domain bounces at once, and `facteur queue`
//! shows and flushes deferred mail.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use common::Server;
use common::dnsmasq::{Dnsmasq, Record};
use common::mail::{submit, wait_inbox};

const PW: &str = "exchange-password-1";

/// A port free on both addresses, so each instance's MX listens on it and the other's queue
/// (`queue.remote_port`) connects to it.
fn common_free_port(a: &str, b: &str) -> u16 {
    for _ in 0..50 {
        let l = TcpListener::bind(format!("{a}:0")).expect("bind");
        let port = l.local_addr().expect("addr").port();
        if TcpListener::bind(format!("{b}:{port}")).is_ok() {
            return port;
        }
    }
    panic!("no common free port");
}

fn config(domain: &str, ip: &str, port: u16, dns: SocketAddr, extra: &str) -> String {
    format!(
        "[server]\nhostname = \"mx.{domain}\"\nprimary_domain = \"{domain}\"\n\
         [listeners]\nsmtp = [\"{ip}:{port}\"]\nsubmission = [\"{ip}:0\"]\nsubmissions = []\n\
         lmtp = []\nimap = []\nimaps = []\npop3 = []\npop3s = []\n\
         [auth]\nargon2_memory_kib = 1024\nargon2_iterations = 1\nmin_password_score = 0\n\
         [queue]\nremote_port = {port}\nretry_initial_secs = 1\nretry_max_secs = 2\n{extra}\n\
         [dns]\nnameservers = [\"{dns}\"]\n"
    )
}

struct Pair {
    _dns: Dnsmasq,
    a: Server,
    b: Server,
}

fn pair() -> Pair {
    pair_with("")
}

/// Two instances; `extra_a` is added to A's [queue] section.
fn pair_with(extra_a: &str) -> Pair {
    let (ip_a, ip_b) = ("127.0.0.2", "127.0.0.3");
    let port = common_free_port(ip_a, ip_b);
    let dns = Dnsmasq::start(&[
        Record::Mx("a.test", "mx.a.test", 10),
        Record::Addr("mx.a.test", ip_a),
        Record::Mx("b.test", "mx.b.test", 10),
        Record::Addr("mx.b.test", ip_b),
        Record::Mx("null.test", ".", 0),
    ]);
    let a = Server::start_config("a.test", &config("a.test", ip_a, port, dns.addr, extra_a));
    let b = Server::start_config("b.test", &config("b.test", ip_b, port, dns.addr, ""));
    a.add_account("alice@a.test", PW);
    b.add_account("bob@b.test", PW);
    // New keys wait for their DNS records; this DNS has none, and the DSN tests check signatures.
    a.activate_dkim("a.test");
    b.activate_dkim("b.test");
    Pair { _dns: dns, a, b }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_exchange_mail_both_ways_over_starttls() {
    let p = pair();
    submit(&p.a, PW, "alice@a.test", "bob@b.test", "hello from a").await;
    let got = wait_inbox(&p.b, "bob@b.test", 1).await;
    assert_eq!(got.len(), 1, "bob received alice's message");
    let m = text(&got[0]);
    assert!(m.contains("Subject: hello from a"), "{m}");
    // B's Received line records the TLS that A's queue negotiated (RFC 3848 ESMTPS).
    assert!(m.contains("from mx.a.test"), "{m}");
    assert!(
        m.contains("with ESMTPS"),
        "delivery between the servers used STARTTLS: {m}"
    );
    assert!(m.contains("Return-Path: <alice@a.test>"), "{m}");

    submit(&p.b, PW, "bob@b.test", "alice@a.test", "reply from b").await;
    let got = wait_inbox(&p.a, "alice@a.test", 1).await;
    assert_eq!(got.len(), 1, "alice received bob's reply");
    assert!(text(&got[0]).contains("Subject: reply from b"));
    assert!(text(&got[0]).contains("with ESMTPS"));

    // Nothing left in either queue.
    assert!(p.a.store().queue_list().await.unwrap().is_empty());
    assert!(p.b.store().queue_list().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_recipient_gives_exactly_one_dsn() {
    let p = pair();
    submit(&p.a, PW, "alice@a.test", "nobody@b.test", "to nobody").await;
    let got = wait_inbox(&p.a, "alice@a.test", 1).await;
    assert_eq!(got.len(), 1, "one DSN in alice's INBOX");
    let dsn = text(&got[0]);
    assert!(
        dsn.contains("Content-Type: multipart/report; report-type=delivery-status"),
        "{dsn}"
    );
    assert!(
        dsn.contains("Final-Recipient: rfc822; nobody@b.test"),
        "{dsn}"
    );
    assert!(dsn.contains("Action: failed"), "{dsn}");
    assert!(dsn.contains("Status: 5.1.1"), "{dsn}");
    assert!(dsn.contains("Remote-MTA: dns; mx.b.test"), "{dsn}");
    assert!(
        dsn.contains("Return-Path: <>"),
        "a DSN comes from the null sender: {dsn}"
    );
    assert!(
        dsn.contains("DKIM-Signature:") && dsn.contains("d=a.test"),
        "DSNs are signed with the domain's key: {dsn}"
    );
    assert!(
        dsn.contains("Subject: to nobody"),
        "the original's headers are returned: {dsn}"
    );
    // Give the queue time to (wrongly) send a second one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        common::inbox(&p.a.store(), "alice@a.test").await.len(),
        1,
        "exactly one DSN"
    );
    assert!(p.a.store().queue_list().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn null_mx_bounces_at_once() {
    let p = pair();
    submit(&p.a, PW, "alice@a.test", "someone@null.test", "to null").await;
    let got = wait_inbox(&p.a, "alice@a.test", 1).await;
    assert_eq!(got.len(), 1);
    let dsn = text(&got[0]);
    assert!(dsn.contains("Status: 5.1.10"), "{dsn}");
    assert!(dsn.contains("null MX"), "{dsn}");
}

#[tokio::test(flavor = "multi_thread")]
async fn deferred_mail_is_listed_flushed_and_delivered_after_the_peer_returns() {
    let mut p = pair();
    // B is down: A's attempts fail and the message waits in the queue.
    p.b.kill9();
    submit(&p.a, PW, "alice@a.test", "bob@b.test", "while b is down").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let entry = loop {
        let q = p.a.store().queue_list().await.unwrap();
        if let Some(e) = q.first()
            && e.attempts > 0
        {
            break e.clone();
        }
        assert!(Instant::now() < deadline, "no failed attempt recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(entry.last_error.is_some());

    let out = p.a.admin(&["--json", "queue", "list"]);
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(list[0]["recipients"][0]["address"], "bob@b.test");
    assert_eq!(list[0]["recipients"][0]["status"], "pending");
    let out = p.a.admin(&["queue", "show", &entry.id.to_string()]);
    assert!(
        text(&out.stdout).contains("Subject: while b is down"),
        "{}",
        text(&out.stdout)
    );

    // B comes back on the same address and port; a flush sends at once.
    p.b.spawn();
    let out = p.a.admin(&["queue", "flush"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got = wait_inbox(&p.b, "bob@b.test", 1).await;
    assert_eq!(got.len(), 1, "delivered after the peer returned");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        common::inbox(&p.b.store(), "bob@b.test").await.len(),
        1,
        "delivered once"
    );
    assert!(
        common::inbox(&p.a.store(), "alice@a.test").await.is_empty(),
        "no DSN"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_mid_queue_delivers_everything_once_after_restart() {
    let mut p = pair();
    p.b.kill9();
    const N: usize = 10;
    for i in 0..N {
        submit(
            &p.a,
            PW,
            "alice@a.test",
            "bob@b.test",
            &format!("queued {i}"),
        )
        .await;
    }
    // Wait until every entry has failed at least once, then crash A.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let q = p.a.store().queue_list().await.unwrap();
        if q.len() == N && q.iter().all(|e| e.attempts > 0) {
            break;
        }
        assert!(Instant::now() < deadline, "entries not attempted: {q:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    p.a.kill9();
    p.b.spawn();
    p.a.spawn();
    let got = wait_inbox(&p.b, "bob@b.test", N).await;
    assert_eq!(
        got.len(),
        N,
        "every queued message delivered after the restart"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = common::inbox(&p.b.store(), "bob@b.test").await;
    let mut subjects: Vec<String> = got
        .iter()
        .map(|m| {
            text(m)
                .lines()
                .find_map(|l| l.strip_prefix("Subject: ").map(str::to_string))
                .unwrap_or_default()
        })
        .collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), N, "each exactly once: {subjects:?}");
    assert_eq!(got.len(), N);
    assert!(p.a.store().queue_list().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_delay_sends_one_delayed_notice() {
    let mut p = pair_with("delay_warning_secs = 1");
    p.b.kill9();
    submit(&p.a, PW, "alice@a.test", "bob@b.test", "slow one").await;
    let got = wait_inbox(&p.a, "alice@a.test", 1).await;
    assert_eq!(got.len(), 1, "a delay notice");
    let dsn = text(&got[0]);
    assert!(dsn.contains("Action: delayed"), "{dsn}");
    assert!(dsn.contains("Final-Recipient: rfc822; bob@b.test"), "{dsn}");
    // Later attempts do not repeat it; the message is still queued.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(common::inbox(&p.a.store(), "alice@a.test").await.len(), 1);
    let q = p.a.store().queue_list().await.unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].recipients[0].status, "delayed");
    // When B returns, the message goes through and no failure notice follows.
    p.b.spawn();
    p.a.admin(&["queue", "flush"]);
    assert_eq!(wait_inbox(&p.b, "bob@b.test", 1).await.len(), 1);
    assert_eq!(common::inbox(&p.a.store(), "alice@a.test").await.len(), 1);
}

fn return_path(m: &[u8]) -> String {
    text(m)
        .lines()
        .find_map(|l| l.strip_prefix("Return-Path: ").map(str::to_string))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_uses_srs_and_bounces_find_their_way_back() {
    let p = pair();
    p.a.add_account("carol@a.test", PW);
    for (alias, target) in [
        ("fwd@b.test", "carol@a.test"),
        ("lost@b.test", "nobody@a.test"),
    ] {
        let out = p.b.admin(&["alias", "add", alias, target]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }

    // alice@a.test -> fwd@b.test, which B forwards to carol@a.test with an SRS sender.
    submit(&p.a, PW, "alice@a.test", "fwd@b.test", "forward me").await;
    let got = wait_inbox(&p.a, "carol@a.test", 1).await;
    assert_eq!(got.len(), 1, "carol got the forwarded copy");
    let rp = return_path(&got[0]);
    assert!(
        rp.starts_with("<SRS0=") && rp.ends_with("=a.test=alice@b.test>"),
        "the forward's envelope sender is rewritten: {rp}"
    );

    // alice@a.test -> lost@b.test -> nobody@a.test: A refuses, B's DSN goes to the SRS address,
    // which B decodes and sends on to alice.
    submit(&p.a, PW, "alice@a.test", "lost@b.test", "forward to nobody").await;
    let got = wait_inbox(&p.a, "alice@a.test", 1).await;
    assert_eq!(
        got.len(),
        1,
        "the bounce of the forward reached the original sender"
    );
    let dsn = text(&got[0]);
    assert!(
        dsn.contains("Final-Recipient: rfc822; nobody@a.test"),
        "{dsn}"
    );
    assert!(dsn.contains("Status: 5.1.1"), "{dsn}");

    // A forged SRS address is refused at RCPT (no open relay through SRS).
    let mut s = std::net::TcpStream::connect(p.b.addr("smtp")).unwrap();
    use std::io::{BufRead, BufReader, Write};
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    for cmd in [
        "EHLO x.test",
        "MAIL FROM:<>",
        "RCPT TO:<SRS0=AAAA=AA=victim.test=v@b.test>",
    ] {
        s.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        loop {
            l.clear();
            r.read_line(&mut l).unwrap();
            if l.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
    }
    assert!(l.starts_with("550 5.1.1"), "{l}");
}

/// (DNS name, TXT value) of every DKIM key of a server, from `facteur --json dkim list`.
fn dkim_records(server: &Server) -> Vec<(String, String)> {
    let out = server.admin(&["--json", "dkim", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let keys: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    keys.as_array()
        .expect("array")
        .iter()
        .map(|k| {
            (
                k["dns_name"].as_str().unwrap().to_string(),
                k["dns_txt"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn dkim_spf_and_dmarc_pass_between_instances_and_spoofing_is_rejected() {
    let (ip_a, ip_b) = ("127.0.0.2", "127.0.0.3");
    let port = common_free_port(ip_a, ip_b);
    // The servers make their DKIM keys at first start; the DNS then publishes them.
    let dns_port = Dnsmasq::free_port();
    let dns_addr: SocketAddr = format!("127.0.0.1:{dns_port}").parse().unwrap();
    let a = Server::start_config("a.test", &config("a.test", ip_a, port, dns_addr, ""));
    let b = Server::start_config("b.test", &config("b.test", ip_b, port, dns_addr, ""));
    a.add_account("alice@a.test", PW);
    b.add_account("bob@b.test", PW);
    let keys = dkim_records(&a);
    assert_eq!(keys.len(), 2, "an RSA and an Ed25519 key: {keys:?}");
    let mut records = vec![
        Record::Mx("a.test", "mx.a.test", 10),
        Record::Addr("mx.a.test", ip_a),
        Record::Mx("b.test", "mx.b.test", 10),
        Record::Addr("mx.b.test", ip_b),
        // Our queue connects from the loopback source address the kernel picks.
        Record::Txt("a.test", "v=spf1 ip4:127.0.0.0/8 -all"),
        Record::Txt("_dmarc.a.test", "v=DMARC1; p=reject"),
    ];
    for (name, txt) in &keys {
        records.push(Record::Txt(name, txt));
    }
    let _dns = Dnsmasq::start_on(dns_port, &records);
    // The keys sign once their records are seen: `dkim activate` looks them up.
    let out = a.admin(&["dkim", "activate", "a.test"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    submit(&a, PW, "alice@a.test", "bob@b.test", "signed and checked").await;
    let got = wait_inbox(&b, "bob@b.test", 1).await;
    assert_eq!(got.len(), 1);
    let m = text(&got[0]);
    let ar: String = m
        .split("\r\n")
        .skip_while(|l| !l.starts_with("Authentication-Results: mx.b.test"))
        .take_while(|l| {
            l.starts_with("Authentication-Results") || l.starts_with('\t') || l.starts_with(' ')
        })
        .collect::<Vec<_>>()
        .join(" ");
    assert!(ar.contains("spf=pass"), "{ar}");
    assert!(
        ar.contains("dkim=pass") && ar.contains("header.d=a.test"),
        "{ar}"
    );
    assert!(ar.contains("dmarc=pass"), "{ar}");
    assert_eq!(
        m.matches("DKIM-Signature:").count(),
        2,
        "RSA and Ed25519 signatures"
    );

    // An independent verifier (dkimpy) agrees, with our published keys.
    let dns_map: String = keys
        .iter()
        .map(|(n, t)| format!("{:?}: {:?}", format!("{n}."), t))
        .collect::<Vec<_>>()
        .join(", ");
    let script = format!(
        "import dkim, sys\n\
         keys = {{{dns_map}}}\n\
         def dnsfunc(name, timeout=5):\n\
         \x20   name = name.decode() if isinstance(name, bytes) else name\n\
         \x20   return keys.get(name, '').encode()\n\
         msg = sys.stdin.buffer.read()\n\
         d = dkim.DKIM(msg)\n\
         ok = [d.verify(idx=i, dnsfunc=dnsfunc) for i in range(2)]\n\
         print(ok)\n\
         sys.exit(0 if all(ok) else 1)\n"
    );
    let mut py = std::process::Command::new("python3")
        .arg("-c")
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    py.stdin.take().unwrap().write_all(&got[0]).unwrap();
    let out = py.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "dkimpy: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    // Someone else's server claiming to be a.test in From: refused by DMARC p=reject.
    let spoof = "From: <boss@a.test>\r\nTo: <bob@b.test>\r\nSubject: wire money\r\n\r\nNow.";
    let reply = common::raw_smtp(b.addr("smtp"), "x@evil.test", "bob@b.test", spoof);
    assert!(reply.starts_with("550 5.7.1"), "{reply}");
    assert!(reply.contains("DMARC"), "{reply}");
    assert_eq!(common::inbox(&b.store(), "bob@b.test").await.len(), 1);
}
