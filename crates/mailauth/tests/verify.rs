//! Inbound verification against records served by the loopback mock DNS server.

use std::net::{IpAddr, Ipv4Addr};

use mailauth::mock::{MockDns, Zone};
use mailauth::{
    AuthOutcome, DkimAlgorithm, DkimKey, DmarcPolicy, SpfIdentity, Verdict, VerifyInput,
};

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));

fn message(from: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Alice <{from}>\r\nTo: bob@example.net\r\nSubject: Lunch\r\n\
         Date: Mon, 6 Jan 2025 10:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    )
    .into_bytes()
}

fn signed(key: &DkimKey, domain: &str, raw: &[u8]) -> Vec<u8> {
    let mut out = key.sign(raw, domain, "sel").unwrap().into_bytes();
    out.extend_from_slice(raw);
    out
}

/// example.org: SPF allows CLIENT, DMARC with the given policy, DKIM key at sel._domainkey.
fn zone(key: &DkimKey, dmarc: &str) -> Zone {
    let mut z = Zone::new();
    z.txt("example.org", "v=spf1 ip4:192.0.2.1 -all")
        .a("example.org", Ipv4Addr::new(192, 0, 2, 10))
        .txt("sel._domainkey.example.org", &key.dns_txt_record())
        .txt("mail.example.org", "v=spf1 ip4:192.0.2.1 -all")
        .a("mail.example.org", Ipv4Addr::new(192, 0, 2, 1));
    if !dmarc.is_empty() {
        z.txt("_dmarc.example.org", dmarc);
    }
    z
}

async fn verify(dns: &MockDns, raw: &[u8], ip: IpAddr, mail_from: &str) -> AuthOutcome {
    let auth = dns.authenticator().unwrap();
    auth.verify(&VerifyInput {
        raw,
        client_ip: ip,
        helo: "mail.example.org",
        mail_from,
        receiver_hostname: "mx.example.net",
    })
    .await
}

#[tokio::test]
async fn dkim_round_trip_passes_for_both_algorithms() {
    for alg in [DkimAlgorithm::Ed25519, DkimAlgorithm::Rsa] {
        let key = DkimKey::generate(alg).unwrap();
        let dns = MockDns::start(zone(&key, "v=DMARC1; p=reject"))
            .await
            .unwrap();
        let raw = signed(
            &key,
            "example.org",
            &message("alice@example.org", "Noon?\r\n"),
        );
        let out = verify(&dns, &raw, CLIENT, "alice@example.org").await;
        assert_eq!(out.dkim.len(), 1, "{alg}: {out:?}");
        assert_eq!(out.dkim[0].result, Verdict::Pass, "{alg}: {out:?}");
        assert_eq!(out.dkim[0].domain.as_deref(), Some("example.org"));
        assert_eq!(out.dkim[0].selector.as_deref(), Some("sel"));
        assert_eq!(out.spf.result, Verdict::Pass);
        assert_eq!(out.dmarc.result, Verdict::Pass);
        assert!(out.dmarc.spf_aligned && out.dmarc.dkim_aligned, "{out:?}");
        assert_eq!(out.policy, DmarcPolicy::None);
        let h = &out.header;
        assert!(
            h.starts_with("Authentication-Results: mx.example.net;"),
            "{h}"
        );
        assert!(h.ends_with("\r\n") && !h.ends_with("\r\n\r\n"), "{h}");
        for part in [
            "spf=pass",
            "smtp.mailfrom=alice@example.org",
            "dkim=pass header.d=example.org header.s=sel",
            "arc=none",
            "dmarc=pass header.from=example.org",
        ] {
            assert!(h.contains(part), "{part} missing in {h}");
        }
    }
}

#[tokio::test]
async fn tampered_body_fails_dkim_and_dmarc_rejects() {
    let key = DkimKey::generate(DkimAlgorithm::Ed25519).unwrap();
    let dns = MockDns::start(zone(&key, "v=DMARC1; p=reject"))
        .await
        .unwrap();
    let raw = signed(
        &key,
        "example.org",
        &message("alice@example.org", "Noon?\r\n"),
    );
    let tampered = String::from_utf8(raw).unwrap().replace("Noon?", "Never");
    // From another address, so SPF fails too and nothing aligned passes.
    let out = verify(&dns, tampered.as_bytes(), OTHER, "alice@example.org").await;
    // Like Gmail, mail-auth reports a body hash mismatch as neutral (RFC 8601 §2.7.1).
    assert_eq!(out.dkim[0].result, Verdict::Neutral, "{out:?}");
    assert!(
        out.header
            .contains("dkim=neutral (body hash did not verify)"),
        "{}",
        out.header
    );
    assert_eq!(out.spf.result, Verdict::Fail);
    assert_eq!(out.dmarc.result, Verdict::Fail);
    assert_eq!(out.dmarc.published, DmarcPolicy::Reject);
    assert_eq!(out.policy, DmarcPolicy::Reject);
    assert!(out.header.contains("dmarc=fail"), "{}", out.header);

    // A changed signed header field breaks the signature itself.
    let raw = signed(
        &key,
        "example.org",
        &message("alice@example.org", "Noon?\r\n"),
    );
    let tampered = String::from_utf8(raw)
        .unwrap()
        .replace("Subject: Lunch", "Subject: Dinner");
    let out = verify(&dns, tampered.as_bytes(), CLIENT, "alice@example.org").await;
    assert_eq!(out.dkim[0].result, Verdict::Fail, "{out:?}");
    assert!(out.header.contains("dkim=fail"), "{}", out.header);
    // SPF still passes and aligns: DMARC passes, nothing to enforce.
    assert_eq!(out.dmarc.result, Verdict::Pass);
    assert_eq!(out.policy, DmarcPolicy::None);
}

#[tokio::test]
async fn dmarc_quarantine_and_none_policies() {
    let key = DkimKey::generate(DkimAlgorithm::Ed25519).unwrap();
    let unsigned = message("alice@example.org", "hi\r\n");
    for (record, want) in [
        ("v=DMARC1; p=quarantine", DmarcPolicy::Quarantine),
        ("v=DMARC1; p=none", DmarcPolicy::None),
        ("v=DMARC1; p=reject; t=y", DmarcPolicy::Quarantine),
    ] {
        let dns = MockDns::start(zone(&key, record)).await.unwrap();
        let out = verify(&dns, &unsigned, OTHER, "alice@example.org").await;
        assert_eq!(out.dmarc.result, Verdict::Fail, "{record}: {out:?}");
        assert_eq!(out.policy, want, "{record}");
        assert!(out.dkim.is_empty());
        assert!(out.header.contains("dkim=none"), "{}", out.header);
    }
}

#[tokio::test]
async fn dmarc_passes_on_spf_alone_and_is_none_without_a_record() {
    let key = DkimKey::generate(DkimAlgorithm::Ed25519).unwrap();
    let unsigned = message("alice@example.org", "hi\r\n");
    let dns = MockDns::start(zone(&key, "v=DMARC1; p=reject"))
        .await
        .unwrap();
    let out = verify(&dns, &unsigned, CLIENT, "alice@example.org").await;
    assert_eq!(out.dmarc.result, Verdict::Pass, "{out:?}");
    assert!(out.dmarc.spf_aligned && !out.dmarc.dkim_aligned);
    assert_eq!(out.policy, DmarcPolicy::None);

    // SPF passes for a domain that is not the From domain: not aligned.
    let mut z = zone(&key, "v=DMARC1; p=reject");
    z.txt("bounces.example.com", "v=spf1 ip4:198.51.100.7 -all");
    let dns = MockDns::start(z).await.unwrap();
    let out = verify(&dns, &unsigned, OTHER, "b@bounces.example.com").await;
    assert_eq!(out.spf.result, Verdict::Pass);
    assert_eq!(out.dmarc.result, Verdict::Fail, "{out:?}");
    assert_eq!(out.policy, DmarcPolicy::Reject);

    let dns = MockDns::start(zone(&key, "")).await.unwrap();
    let out = verify(&dns, &unsigned, OTHER, "alice@example.org").await;
    assert_eq!(out.dmarc.result, Verdict::None, "{out:?}");
    assert_eq!(out.policy, DmarcPolicy::None);
}

#[tokio::test]
async fn dns_failures_are_temperror_not_rejections() {
    let key = DkimKey::generate(DkimAlgorithm::Ed25519).unwrap();
    let mut z = Zone::new();
    z.servfail("example.org")
        .servfail("_dmarc.example.org")
        .timeout("sel._domainkey.example.org");
    let dns = MockDns::start(z).await.unwrap();
    let raw = signed(&key, "example.org", &message("alice@example.org", "hi\r\n"));
    let out = verify(&dns, &raw, CLIENT, "alice@example.org").await;
    assert_eq!(out.spf.result, Verdict::TempError, "{out:?}");
    assert_eq!(out.dkim[0].result, Verdict::TempError, "{out:?}");
    assert_eq!(out.dmarc.result, Verdict::TempError, "{out:?}");
    assert_eq!(out.policy, DmarcPolicy::None);
    assert!(out.header.contains("spf=temperror"), "{}", out.header);
    assert!(out.header.contains("dkim=temperror"), "{}", out.header);
}

#[tokio::test]
async fn null_sender_checks_helo() {
    let key = DkimKey::generate(DkimAlgorithm::Ed25519).unwrap();
    let dns = MockDns::start(zone(&key, "")).await.unwrap();
    let raw = message("mailer-daemon@mail.example.org", "bounce\r\n");
    let out = verify(&dns, &raw, CLIENT, "").await;
    assert_eq!(out.spf.identity, SpfIdentity::Helo);
    assert_eq!(out.spf.domain, "mail.example.org");
    assert_eq!(out.spf.result, Verdict::Pass, "{out:?}");
    assert!(
        out.header.contains("smtp.helo=mail.example.org"),
        "{}",
        out.header
    );
}

#[tokio::test]
async fn outcome_serialises_and_survives_unparsable_input() {
    let key = DkimKey::generate(DkimAlgorithm::Ed25519).unwrap();
    let dns = MockDns::start(zone(&key, "v=DMARC1; p=reject"))
        .await
        .unwrap();
    let raw = signed(&key, "example.org", &message("alice@example.org", "x\r\n"));
    let out = verify(&dns, &raw, CLIENT, "alice@example.org").await;
    let json = serde_json::to_string(&out).unwrap();
    assert!(json.contains("\"result\":\"pass\""), "{json}");
    let back: AuthOutcome = serde_json::from_str(&json).unwrap();
    assert_eq!(back, out);

    let out = verify(&dns, b"", CLIENT, "alice@example.org").await;
    assert!(out.dkim.is_empty());
    assert_eq!(out.dmarc.result, Verdict::None);
    assert!(
        out.header
            .starts_with("Authentication-Results: mx.example.net;")
    );
}

/// A nameserver that never answers: the checks give up after the budget with temperror results
/// instead of waiting out every lookup's timeout.
#[tokio::test]
async fn unanswered_dns_gives_temperror_within_the_budget() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let auth = mailauth::Authenticator::with_options(
        Some(vec![silent.local_addr().unwrap()]),
        mailauth::DnsOptions {
            timeout: std::time::Duration::from_secs(5),
            attempts: 2,
            udp_only: true,
        },
    )
    .unwrap();
    let raw = message("alice@example.org", "hello");
    let input = VerifyInput {
        raw: &raw,
        client_ip: CLIENT,
        helo: "mail.example.org",
        mail_from: "alice@example.org",
        receiver_hostname: "mx.example.net",
    };
    let out = auth
        .verify_within(&input, std::time::Duration::from_millis(500))
        .await;
    assert_eq!(out.spf.result, Verdict::TempError);
    assert_eq!(out.spf.domain, "example.org");
    assert_eq!(out.dmarc.result, Verdict::TempError);
    assert_eq!(out.policy, DmarcPolicy::None, "a temperror never rejects");
    assert!(
        out.header
            .starts_with("Authentication-Results: mx.example.net;\r\n\tspf=temperror"),
        "{}",
        out.header
    );
    assert!(out.header.contains("smtp.mailfrom=alice@example.org"));
    drop(silent);
}
