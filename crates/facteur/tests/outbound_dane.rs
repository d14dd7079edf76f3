//! DANE for outbound mail (RFC 7672) against real DNSSEC: zones signed with ldns-signzone, served
//! by NSD, validated by unbound (which sets the AD bit), and two Facteur instances. The receiver's
//! self-signed certificate is published as a "3 1 1" TLSA record (hash computed with openssl):
//! - signed zone, matching record: delivered over TLS;
//! - signed zone, record matching nothing: not delivered (the message waits, reason logged);
//! - unsigned zone with the same wrong record: delivered (DANE applies only to secure records);
//! - signed zone with only unusable records (PKIX-EE): delivered, TLS still required.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use common::Server;
use common::dnssec::{SignedDns, Zone, spki_sha256_hex};
use common::mail::{submit, wait_inbox};

const PW: &str = "dane-password-1";
const WRONG: &str = "0000000000000000000000000000000000000000000000000000000000000000";

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

fn config(domain: &str, ip: &str, port: u16, dns: SocketAddr) -> String {
    format!(
        "[server]\nhostname = \"mx.{domain}\"\nprimary_domain = \"{domain}\"\n\
         [listeners]\nsmtp = [\"{ip}:{port}\"]\nsubmission = [\"{ip}:0\"]\nsubmissions = []\n\
         lmtp = []\nimap = []\nimaps = []\npop3 = []\npop3s = []\n\
         [auth]\nargon2_memory_kib = 1024\nargon2_iterations = 1\nmin_password_score = 0\n\
         [queue]\nremote_port = {port}\nretry_initial_secs = 1\nretry_max_secs = 2\n\
         [dns]\nnameservers = [\"{dns}\"]\n"
    )
}

fn zone<'a>(name: &'a str, port: u16, tlsa: &str, signed: bool) -> Zone<'a> {
    Zone {
        name,
        records: format!(
            "@ IN MX 10 mx.{name}.\nmx IN A 127.0.0.3\n_{port}._tcp.mx IN TLSA {tlsa}\n"
        ),
        signed,
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn dane_decides_where_mail_may_go() {
    let (ip_a, ip_b) = ("127.0.0.2", "127.0.0.3");
    let port = common_free_port(ip_a, ip_b);
    // The receiver first: its certificate (made at first start) is what the records publish.
    // It needs no DNS of its own (and, without one, no SPF/DKIM checks of what it receives).
    let b_config = config("dane.test", ip_b, port, "127.0.0.1:9".parse().unwrap())
        .replace("[queue]\n", "[smtp]\ninbound_auth = false\n[queue]\n");
    let b = Server::start_config("dane.test", &b_config);
    let hash = spki_sha256_hex(&b.data().join("tls/cert.pem"));
    for d in ["bad.test", "plain.test", "unusable.test"] {
        let out = b.admin(&["domain", "add", d]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    for d in ["dane.test", "bad.test", "plain.test", "unusable.test"] {
        b.add_account(&format!("bob@{d}"), PW);
    }

    let dns = SignedDns::start(&[
        zone("dane.test", port, &format!("3 1 1 {hash}"), true),
        zone("bad.test", port, &format!("3 1 1 {WRONG}"), true),
        zone("plain.test", port, &format!("3 1 1 {WRONG}"), false),
        zone("unusable.test", port, &format!("1 1 1 {WRONG}"), true),
    ]);
    assert!(dns.is_secure("mx.dane.test"), "the signed zone validates");
    assert!(
        !dns.is_secure("mx.plain.test"),
        "the unsigned zone is insecure"
    );

    let a = Server::start_config("a.test", &config("a.test", ip_a, port, dns.addr));
    a.add_account("alice@a.test", PW);
    for d in ["dane.test", "bad.test", "plain.test", "unusable.test"] {
        submit(
            &a,
            PW,
            "alice@a.test",
            &format!("bob@{d}"),
            &format!("to {d}"),
        )
        .await;
    }

    let got = wait_inbox(&b, "bob@dane.test", 1).await;
    assert_eq!(
        got.len(),
        1,
        "matching DANE-EE record: delivered; A's queue: {:?}",
        a.store().queue_list().await.unwrap()
    );
    assert!(text(&got[0]).contains("with ESMTPS"), "{}", text(&got[0]));

    let got = wait_inbox(&b, "bob@plain.test", 1).await;
    assert_eq!(
        got.len(),
        1,
        "unsigned zone: its TLSA record is not trusted, opportunistic TLS delivers"
    );

    let got = wait_inbox(&b, "bob@unusable.test", 1).await;
    assert_eq!(got.len(), 1, "only unusable records: delivered");
    assert!(
        text(&got[0]).contains("with ESMTPS"),
        "TLS was still required: {}",
        text(&got[0])
    );

    // The mismatching host never gets the message: it waits in A's queue with the reason.
    let deadline = Instant::now() + Duration::from_secs(20);
    let entry = loop {
        let q = a.store().queue_list().await.unwrap();
        if let Some(e) = q.iter().find(|e| e.recipients[0].address == "bob@bad.test")
            && e.attempts > 0
        {
            break e.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no failed attempt for bad.test: {q:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let reason = format!(
        "{:?} {:?}",
        entry.last_error, entry.recipients[0].last_reply
    );
    assert!(
        reason.to_ascii_lowercase().contains("certificate"),
        "the deferral names the certificate: {reason}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        common::inbox(&b.store(), "bob@bad.test").await.is_empty(),
        "nothing delivered to the host whose certificate does not match"
    );
    assert_eq!(
        a.store().queue_list().await.unwrap().len(),
        1,
        "only the bad.test message is left"
    );
}
