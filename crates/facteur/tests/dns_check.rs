//! `facteur dns DOMAIN [--check]` against a local dnsmasq holding a mix of right, wrong and missing
//! records: each is reported OK, WRONG (with the reason and the record to publish) or MISSING.

mod common;

use common::Server;
use common::dnsmasq::{Dnsmasq, Record};

#[test]
fn dns_lists_and_checks_the_records_a_domain_needs() {
    let dns = Dnsmasq::start(&[
        Record::Mx("a.test", "mx.a.test", 10),
        Record::Addr("mx.a.test", "127.0.0.1"),
        // A permissive SPF record: wrong.
        Record::Txt("a.test", "v=spf1 +all"),
        // No DMARC, no TLS-RPT: missing.
        Record::Srv("_submissions._tcp.a.test", "mx.a.test", 465, 0, 1),
        // The IMAP SRV record points to the wrong port.
        Record::Srv("_imaps._tcp.a.test", "mx.a.test", 143, 0, 1),
        Record::Cname("autoconfig.a.test", "mx.a.test"),
    ]);
    let server = Server::start_with(
        "a.test",
        &format!("[dns]\nnameservers = [\"{}\"]\n", dns.addr),
    );

    // Without --check: what to publish, exit 0.
    let out = server.admin(&["dns", "a.test"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("a.test. MX 10 mx.a.test."), "{text}");
    assert!(text.contains("a.test. TXT \"v=spf1 mx -all\""), "{text}");
    assert!(
        text.contains("_dmarc.a.test. TXT \"v=DMARC1; p=quarantine"),
        "{text}"
    );

    // With --check: verdicts, exit 1 because required records are not OK.
    let out = server.admin(&["--json", "dns", "a.test", "--check"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let status = |what: &str| -> String {
        report["records"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["what"] == what)
            .unwrap_or_else(|| panic!("no {what} in {report}"))["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(status("MX"), "OK");
    assert_eq!(status("SPF"), "WRONG");
    assert_eq!(status("DMARC"), "MISSING");
    assert_eq!(status("TLS-RPT"), "MISSING");
    assert_eq!(status("SRV submissions"), "OK");
    assert_eq!(status("SRV imaps"), "WRONG");
    assert_eq!(status("autoconfig"), "OK");

    // The text report says what to change.
    let out = server.admin(&["dns", "a.test", "--check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("WRONG    SPF"), "{text}");
    assert!(text.contains("found:  v=spf1 +all"), "{text}");
    assert!(
        text.contains("change: a.test. TXT \"v=spf1 mx -all\""),
        "{text}"
    );
    assert!(text.contains("add:    _dmarc.a.test. TXT"), "{text}");

    // A domain we do not serve is refused.
    let out = server.admin(&["dns", "other.test"]);
    assert_eq!(out.status.code(), Some(1));
}
