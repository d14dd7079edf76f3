//! `facteur dns DOMAIN [--check]` against a local dnsmasq holding a mix of right, wrong and missing
//! records: each is reported OK, WRONG (with the reason and the record to publish), MISSING, or
//! UNKNOWN when the resolver does not answer. The printed records are read back by a real zone
//! parser (ldns-read-zone). And the DKIM key life that `--check` drives: new keys wait, pending,
//! until their records are in the DNS, then sign.

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::Server;
use common::dnsmasq::{Dnsmasq, Record};
use common::mail::{submit, wait_inbox};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}{}", text(&o.stdout), text(&o.stderr)))
}

/// `status` of the record `what` (and `name`, when several have the same `what`).
fn status(report: &serde_json::Value, what: &str) -> String {
    report["records"]
        .as_array()
        .expect("records")
        .iter()
        .find(|r| r["what"] == what)
        .unwrap_or_else(|| panic!("no {what} in {report}"))["status"]
        .as_str()
        .expect("status")
        .to_string()
}

/// Parses `zone` with ldns-read-zone (installed by scripts/test.sh, package ldnsutils) under
/// `$ORIGIN origin`, as a zone file of that domain would, and returns its canonical records.
fn read_zone(zone: &str, origin: &str) -> Vec<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("zone");
    std::fs::write(&path, format!("$ORIGIN {origin}.\n{zone}\n")).expect("write zone");
    let out = std::process::Command::new("ldns-read-zone")
        .arg(&path)
        .output()
        .expect("ldns-read-zone is not installed (scripts/test.sh installs ldnsutils)");
    assert!(
        out.status.success(),
        "the zone does not parse: {}\n{zone}",
        text(&out.stderr)
    );
    text(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn dns_lists_and_checks_the_records_a_domain_needs() {
    let dns = Dnsmasq::start(&[
        Record::Mx("a.test", "mx.a.test", 10),
        Record::Addr("mx.a.test", "127.0.0.1"),
        // A permissive SPF record: wrong.
        Record::Txt("a.test", "v=spf1 +all"),
        // No DMARC, no TLS-RPT, no MTA-STS: missing.
        Record::Srv("_submissions._tcp.a.test", "mx.a.test", 465, 0, 1),
        // The IMAP SRV record points to the wrong port.
        Record::Srv("_imaps._tcp.a.test", "mx.a.test", 143, 0, 1),
    ]);
    let server = Server::start_with(
        "a.test",
        &format!("[dns]\nnameservers = [\"{}\"]\n", dns.addr),
    );

    // Without --check: what to publish, in zone-file syntax, exit 0.
    let out = server.admin(&["dns", "a.test"]);
    let zone = text(&out.stdout);
    assert!(out.status.success(), "{zone}{}", text(&out.stderr));
    assert!(zone.contains("a.test. 3600 IN MX 10 mx.a.test."), "{zone}");
    assert!(
        zone.contains("a.test. 3600 IN TXT \"v=spf1 mx -all\""),
        "{zone}"
    );
    assert!(
        zone.contains("_dmarc.a.test. 3600 IN TXT \"v=DMARC1; p=quarantine"),
        "{zone}"
    );
    assert!(
        zone.contains("_mta-sts.a.test. 3600 IN TXT \"v=STSv1; id="),
        "{zone}"
    );
    assert!(zone.contains("Facteur does not serve it yet"), "{zone}");
    // Reminders for what lives elsewhere: the host's addresses and reverse DNS.
    assert!(zone.contains("; mx.a.test. needs"), "{zone}");
    assert!(zone.contains("PTR"), "{zone}");
    // Nothing for what Facteur does not serve.
    assert!(!zone.contains("autoconfig"), "{zone}");

    // A zone takes it as it is: every target is absolute (no mx.a.test.a.test.), long TXT data
    // is split into strings of at most 255 octets, and every record is there.
    let records = read_zone(&zone, "a.test");
    assert!(
        records.iter().all(|r| !r.contains("a.test.a.test")),
        "{records:#?}"
    );
    assert!(
        records
            .iter()
            .any(|r| r.starts_with("_submissions._tcp.a.test.")
                && r.ends_with("SRV\t0 1 465 mx.a.test.")),
        "{records:#?}"
    );
    let printed = zone
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .count();
    assert_eq!(records.len(), printed, "{records:#?}");
    let rsa = zone
        .lines()
        .find(|l| l.contains("k=rsa"))
        .expect("an RSA DKIM record");
    assert!(
        rsa.matches("\" \"").count() >= 1,
        "long TXT not split: {rsa}"
    );

    // With --check: verdicts, exit 1 because required records are missing or wrong.
    let out = server.admin(&["--json", "dns", "a.test", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report = json(&out);
    assert_eq!(status(&report, "MX"), "OK");
    assert_eq!(status(&report, "host address"), "OK");
    assert_eq!(status(&report, "SPF"), "WRONG");
    assert_eq!(status(&report, "DKIM"), "MISSING");
    assert_eq!(status(&report, "DMARC"), "MISSING");
    assert_eq!(status(&report, "TLS-RPT"), "MISSING");
    assert_eq!(status(&report, "MTA-STS"), "MISSING");
    assert_eq!(status(&report, "SRV submissions"), "OK");
    assert_eq!(status(&report, "SRV imaps"), "WRONG");

    // The text report says what to change.
    let out = server.admin(&["dns", "a.test", "--check"]);
    let report = text(&out.stdout);
    assert!(report.contains("WRONG    SPF"), "{report}");
    assert!(report.contains("found:  v=spf1 +all"), "{report}");
    assert!(
        report.contains("a.test. 3600 IN TXT \"v=spf1 mx -all\""),
        "{report}"
    );
    assert!(report.contains("_dmarc.a.test. 3600 IN TXT"), "{report}");

    // A domain we do not serve is refused.
    let out = server.admin(&["dns", "other.test"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn an_unreachable_resolver_gives_unknown_not_missing() {
    // A "resolver" that never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("addr");
    let server = Server::start_with("a.test", &format!("[dns]\nnameservers = [\"{addr}\"]\n"));
    let out = server.admin(&["--json", "dns", "a.test", "--check"]);
    // 3: could not check (1 is kept for records known to be missing or wrong).
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("could not be checked"),
        "{}",
        text(&out.stderr)
    );
    let report = json(&out);
    let records = report["records"].as_array().expect("records");
    assert!(records.len() >= 9, "{report}");
    for r in records {
        assert_eq!(r["status"], "UNKNOWN", "{r}");
    }
    let out = server.admin(&["dns", "a.test", "--check"]);
    assert!(text(&out.stdout).contains("could not look it up"));
}

/// (selector, state, DNS name, TXT value) of every DKIM key of `domain`.
fn keys(server: &Server, domain: &str) -> Vec<(String, String, String, String)> {
    let out = server.admin(&["--json", "dkim", "list", domain]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    json(&out)
        .as_array()
        .expect("array")
        .iter()
        .map(|k| {
            let s = |f: &str| k[f].as_str().expect(f).to_string();
            (s("selector"), s("state"), s("dns_name"), s("dns_txt"))
        })
        .collect()
}

fn state_of(server: &Server, selector: &str) -> String {
    keys(server, "a.test")
        .into_iter()
        .find(|k| k.0 == selector)
        .unwrap_or_else(|| panic!("no key {selector}"))
        .1
}

fn dns_with(keys: &[(String, String, String, String)], port: u16) -> Dnsmasq {
    let mut records = vec![
        Record::Mx("a.test", "mx.a.test", 10),
        Record::Addr("mx.a.test", "127.0.0.1"),
    ];
    for (_, _, name, txt) in keys {
        records.push(Record::Txt(name, txt));
    }
    Dnsmasq::start_on(port, &records)
}

const PW: &str = "alice-password-1";

#[tokio::test(flavor = "multi_thread")]
async fn new_dkim_keys_sign_only_once_published() {
    // The DNS server's port is known before it runs: the first start makes the keys it will hold.
    let port = Dnsmasq::free_port();
    let mut server = Server::start_with(
        "a.test",
        &format!("[dns]\nnameservers = [\"127.0.0.1:{port}\"]\n[smtp]\ninbound_auth = false\n"),
    );
    server.add_account("alice@a.test", PW);
    let first = keys(&server, "a.test");
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(first.iter().all(|k| k.1 == "pending"), "{first:?}");

    // A pending key does not sign.
    submit(&server, PW, "alice@a.test", "alice@a.test", "before").await;
    let got = wait_inbox(&server, "alice@a.test", 1).await;
    assert!(
        !text(&got[0]).contains("DKIM-Signature"),
        "signed with an unpublished key"
    );

    // `dkim activate` checks the DNS first; there is nothing there yet.
    let out = server.admin(&["dkim", "activate", "a.test"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );

    // Published: `dns --check` sees the records and the keys start signing.
    let dns = dns_with(&first, port);
    let out = server.admin(&["--json", "dns", "a.test", "--check"]);
    let report = json(&out);
    let dkim: Vec<&serde_json::Value> = report["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["what"] == "DKIM")
        .collect();
    assert_eq!(dkim.len(), 2);
    for r in &dkim {
        assert_eq!(r["status"], "OK", "{r}");
        assert_eq!(r["activated"], true, "{r}");
    }
    assert!(keys(&server, "a.test").iter().all(|k| k.1 == "active"));
    // (A restart drops the server's one-minute key cache.)
    server.kill9();
    server.spawn();
    submit(&server, PW, "alice@a.test", "alice@a.test", "after").await;
    let got = wait_inbox(&server, "alice@a.test", 2).await;
    assert_eq!(text(&got[1]).matches("DKIM-Signature:").count(), 2);

    // An existing selector is not replaced by accident.
    let rsa = first
        .iter()
        .find(|k| k.0.ends_with('r'))
        .expect("rsa")
        .0
        .clone();
    let out = server.admin(&[
        "dkim",
        "generate",
        "a.test",
        "--algorithm",
        "rsa",
        "--selector",
        &rsa,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--replace"),
        "{}",
        text(&out.stderr)
    );

    // Rotation: new keys wait for the DNS too, and --finish refuses until they are there.
    let out = server.admin(&["--json", "dkim", "rotate", "a.test"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let all = keys(&server, "a.test");
    let new: Vec<_> = all.iter().filter(|k| k.1 == "pending").cloned().collect();
    assert_eq!(new.len(), 2, "{all:?}");
    let out = server.admin(&["dkim", "rotate", "a.test", "--finish"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not in the DNS"),
        "{}",
        text(&out.stderr)
    );

    // The running server notices publication by itself (at start, then every hour).
    drop(dns);
    let _dns = dns_with(&all, port);
    server.kill9();
    server.spawn();
    let deadline = Instant::now() + Duration::from_secs(30);
    while new.iter().any(|k| state_of(&server, &k.0) != "active") {
        assert!(Instant::now() < deadline, "{:?}", keys(&server, "a.test"));
        std::thread::sleep(Duration::from_millis(200));
    }

    // --finish retires the old keys; the new ones go on signing.
    let out = server.admin(&["--json", "dkim", "rotate", "a.test", "--finish"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for (selector, ..) in &first {
        assert_eq!(state_of(&server, selector), "retired");
    }

    // Removing keys: retired ones freely, the last active one only with --force.
    for (selector, ..) in &first {
        assert!(
            server
                .admin(&["dkim", "remove", "a.test", selector])
                .status
                .success()
        );
    }
    assert!(
        server
            .admin(&["dkim", "remove", "a.test", &new[0].0])
            .status
            .success()
    );
    let out = server.admin(&["dkim", "remove", "a.test", &new[1].0]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("last key signing"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        server
            .admin(&["dkim", "remove", "a.test", &new[1].0, "--force"])
            .status
            .success()
    );
    assert!(keys(&server, "a.test").is_empty());
}
