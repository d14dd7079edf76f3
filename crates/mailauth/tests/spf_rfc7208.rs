//! SPF against the openspf.org RFC 7208 test suite (tests/data/rfc7208-tests.jsonl, see its
//! header for origin and licence). Each scenario's zone is served by the loopback mock DNS server
//! and every case goes through `Authenticator::spf`, the same path as inbound mail.
//!
//! Cases where mail-auth 0.13.3 differs from the suite are listed in `KNOWN_DEVIATIONS` with the
//! reason; the test fails if any other case fails, and also if a listed case starts passing (so
//! the list stays true when mail-auth is upgraded).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use mailauth::Verdict;
use mailauth::mock::{MockDns, Zone};
use serde_json::Value;

const SUITE: &str = include_str!("data/rfc7208-tests.jsonl");

/// Cases where mail-auth 0.13.3 (with hickory 0.26) differs from the suite, as observed.
const SYNTAX: &str = "record syntax error not detected (RFC 7208 §4.6, §5.6: invalid CIDR, modifier or domain-spec should be permerror)";
const DNSNAME: &str = "a target name hickory cannot put in a query (':', '/', NUL, spaces, bad labels) gives temperror or permerror instead of the suite's result";
const MULTI: &str =
    "several SPF records: mail-auth uses the first instead of permerror (RFC 7208 §4.5)";
const NONASCII: &str =
    "non-ASCII or control characters in the record are not a permerror (RFC 7208 §3.1, §4.6.1)";
const V4V6: &str =
    "an IPv4 client matches an ip6: mechanism (RFC 7208 §5.6: IPv4 matches only ip4:)";
const PTR: &str =
    "ptr mechanism and %{p} macro find no validated name (fail, empty %{p}; RFC 7208 §5.5, §7.3)";
const EXP: &str = "explanation text differs (exp= expansion, RFC 7208 §6.2, §7.3)";
const INITIAL: &str = "initial processing: malformed domain or literal gives permerror instead of none (RFC 7208 §4.3)";
const LIMIT: &str = "void lookup limit not enforced (RFC 7208 §4.6.4)";
const REDIRECT: &str = "redirect= handling differs (RFC 7208 §6.1)";
const EXISTS: &str = "exists: matches AAAA records too (RFC 7208 §5.7: A lookup only)";
const KNOWN_DEVIATIONS: &[(&str, &str)] = &[
    ("a-bad-cidr4", SYNTAX),
    ("a-bad-cidr6", SYNTAX),
    ("a-bad-domain", DNSNAME),
    ("a-bad-toplabel", DNSNAME),
    ("a-colon-domain", DNSNAME),
    ("a-colon-domain-ip4mapped", DNSNAME),
    ("a-dual-cidr-ip4-err", SYNTAX),
    ("a-null", DNSNAME),
    ("a-numeric", SYNTAX),
    ("a-numeric-toplabel", SYNTAX),
    ("a-only-toplabel", SYNTAX),
    ("a-only-toplabel-trailing-dot", SYNTAX),
    ("cidr4-032", SYNTAX),
    ("cidr4-33", SYNTAX),
    ("cidr6-0-ip4", V4V6),
    ("cidr6-129", SYNTAX),
    ("cidr6-ip4", V4V6),
    ("control-char-policy", NONASCII),
    ("domain-literal", INITIAL),
    ("domain-name-truncation", EXP),
    ("empty-modifier-name", SYNTAX),
    ("emptylabel", INITIAL),
    ("exists-ip6only", EXISTS),
    ("exp-syntax-error", SYNTAX),
    ("hello-domain-literal", DNSNAME),
    ("helo-domain-literal", INITIAL),
    ("invalid-domain", SYNTAX),
    ("invalid-domain-empty-label", DNSNAME),
    ("invalid-domain-long", DNSNAME),
    ("invalid-domain-long-via-macro", DNSNAME),
    ("invalid-hello-macro", DNSNAME),
    ("invalid-modifier", SYNTAX),
    ("macro-mania-in-domain", DNSNAME),
    ("modifier-charset-good", SYNTAX),
    ("multitxt1", MULTI),
    ("multitxt2", MULTI),
    ("mx-bad-cidr4", SYNTAX),
    ("mx-bad-cidr6", SYNTAX),
    ("mx-bad-domain", DNSNAME),
    ("mx-bad-toplab", DNSNAME),
    ("mx-colon-domain", DNSNAME),
    ("mx-colon-domain-ip4mapped", DNSNAME),
    ("mx-null", DNSNAME),
    ("mx-numeric-top-label", SYNTAX),
    ("nolocalpart", EXP),
    ("non-ascii-mech", NONASCII),
    ("non-ascii-policy", NONASCII),
    ("p-macro-ip4-novalid", PTR),
    ("p-macro-ip4-valid", PTR),
    ("p-macro-ip6-novalid", PTR),
    ("p-macro-ip6-valid", PTR),
    ("p-macro-multiple", DNSNAME),
    ("ptr-match-implicit", PTR),
    ("ptr-match-ip6", PTR),
    ("redirect-after-mechanisms2", REDIRECT),
    ("redirect-syntax-error", SYNTAX),
    ("upper-macro", EXP),
    ("v-macro-ip6", EXP),
    ("void-over-limit", LIMIT),
];

/// The suite's strings stand for bytes: code points up to U+00FF are single bytes.
fn bytes(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for c in s.chars() {
        match u8::try_from(u32::from(c)) {
            Ok(b) => out.push(b),
            Err(_) => out.extend_from_slice(c.to_string().as_bytes()),
        }
    }
    out
}

fn strings(v: &Value) -> Vec<Vec<u8>> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| bytes(i.as_str().unwrap_or_default()))
            .collect(),
        Value::String(s) => vec![bytes(s)],
        other => vec![other.to_string().into_bytes()],
    }
}

fn zone(zonedata: &Value) -> Zone {
    let mut z = Zone::new();
    for entry in zonedata.as_array().expect("zonedata") {
        let name = entry[0].as_str().expect("name");
        let records = entry[1].as_array().expect("records");
        let mut spf = Vec::new();
        let mut txt = Vec::new();
        let mut txt_none = false;
        for rec in records {
            let (kind, value) = (rec[0].as_str().expect("type"), &rec[1]);
            match kind {
                "SPF" => spf.push(strings(value)),
                "TXT" if value.as_str() == Some("NONE") => txt_none = true,
                "TXT" => txt.push(strings(value)),
                "TIMEOUT" => {
                    z.timeout_when_no_data(name);
                }
                "A" | "AAAA" => {
                    let ip: IpAddr = value.as_str().expect("ip").parse().expect("ip");
                    z.ip(name, ip);
                }
                "MX" => {
                    let pref = value[0].as_u64().expect("preference") as u16;
                    z.mx(name, pref, value[1].as_str().expect("exchange"));
                }
                "PTR" => {
                    z.ptr_at(name, value.as_str().expect("ptr"));
                }
                other => panic!("record type {other}"),
            }
        }
        // The drivers' convention: SPF records double as TXT unless TXT records are given.
        if txt.is_empty() && !txt_none {
            txt = spf;
        }
        for record in txt {
            let parts: Vec<&[u8]> = record.iter().map(Vec::as_slice).collect();
            z.txt_strings(name, &parts);
        }
    }
    z
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7208_test_suite() {
    let mut failures = BTreeMap::new();
    let mut cases = 0;
    for line in SUITE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let scenario: Value = serde_json::from_str(line).expect("scenario");
        let dns = MockDns::start(zone(&scenario["zonedata"]))
            .await
            .expect("mock dns");
        let auth = dns.authenticator().expect("authenticator");
        for t in scenario["tests"].as_array().expect("tests") {
            cases += 1;
            let name = t["name"].as_str().expect("name").to_string();
            let ip: IpAddr = t["host"].as_str().expect("host").parse().expect("host ip");
            let helo = t["helo"].as_str().expect("helo");
            let mail_from = t["mailfrom"].as_str().expect("mailfrom");
            let want: Vec<&str> = t["result"]
                .as_array()
                .expect("result")
                .iter()
                .map(|r| r.as_str().expect("result"))
                .collect();
            let out = auth.spf(ip, helo, mail_from, "localhost").await;
            let got = out.result.as_str();
            if !want.contains(&got) {
                failures.insert(name, format!("got {got}, want {}", want.join(" or ")));
                continue;
            }
            // "DEFAULT" means the implementation's own text; only domain-given ones are checked.
            if let Some(exp) = t["explanation"].as_str().filter(|e| *e != "DEFAULT")
                && out.result == Verdict::Fail
                && out.explanation.as_deref() != Some(exp)
            {
                failures.insert(
                    name,
                    format!("explanation {:?}, want {exp:?}", out.explanation),
                );
            }
        }
    }
    let known: BTreeSet<&str> = KNOWN_DEVIATIONS.iter().map(|(n, _)| *n).collect();
    let failed: BTreeSet<&str> = failures.keys().map(String::as_str).collect();
    let unexpected: Vec<String> = failures
        .iter()
        .filter(|(n, _)| !known.contains(n.as_str()))
        .map(|(n, why)| format!("{n}: {why}"))
        .collect();
    let fixed: Vec<&&str> = known.difference(&failed).collect();
    println!(
        "RFC 7208 suite: {} of {cases} cases pass, {} known deviations",
        cases - failures.len(),
        failures.len() - unexpected.len()
    );
    assert!(
        unexpected.is_empty(),
        "unexpected failures:\n{}",
        unexpected.join("\n")
    );
    assert!(
        fixed.is_empty(),
        "now passing, remove from KNOWN_DEVIATIONS: {fixed:?}"
    );
}
