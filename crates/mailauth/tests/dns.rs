//! The plain lookups outbound delivery uses, against the loopback mock DNS server.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use mailauth::mock::{MockDns, Zone};
use mailauth::{DnsError, MxAnswer};

async fn server() -> MockDns {
    let mut z = Zone::new();
    z.mx("example.org", 20, "backup.example.org")
        .mx("example.org", 10, "MX1.example.org.")
        .mx("example.org", 10, "mx2.example.org")
        .mx("example.org", 10, "mx3.example.org")
        .mx("nomail.example.org", 0, ".")
        .a("host-only.example.org", Ipv4Addr::new(192, 0, 2, 5))
        .a("dual.example.org", Ipv4Addr::new(192, 0, 2, 6))
        .aaaa("dual.example.org", "2001:db8::6".parse().unwrap())
        .txt("long.example.org", &"x".repeat(600))
        .txt("long.example.org", "second")
        .servfail("broken.example.org")
        .timeout("silent.example.org");
    MockDns::start(z).await.unwrap()
}

#[tokio::test]
async fn mx_sorted_by_preference_with_equals_shuffled() {
    let dns = server().await;
    let auth = dns.authenticator().unwrap();
    let mut first_hosts = HashSet::new();
    for _ in 0..40 {
        let MxAnswer::Hosts(hosts) = auth.mx("example.org").await.unwrap() else {
            panic!("hosts expected");
        };
        let prefs: Vec<u16> = hosts.iter().map(|(p, _)| *p).collect();
        assert_eq!(prefs, [10, 10, 10, 20]);
        assert_eq!(hosts[3].1, "backup.example.org");
        let equals: HashSet<&str> = hosts[..3].iter().map(|(_, h)| h.as_str()).collect();
        assert_eq!(
            equals,
            HashSet::from(["mx1.example.org", "mx2.example.org", "mx3.example.org"])
        );
        first_hosts.insert(hosts[0].1.clone());
    }
    assert!(first_hosts.len() > 1, "equal preferences never reordered");
}

#[tokio::test]
async fn mx_distinguishes_null_mx_no_mx_nxdomain_and_failures() {
    let dns = server().await;
    let auth = dns.authenticator().unwrap();
    assert_eq!(
        auth.mx("nomail.example.org").await.unwrap(),
        MxAnswer::NullMx
    );
    assert_eq!(
        auth.mx("host-only.example.org").await.unwrap(),
        MxAnswer::NoMx
    );
    assert_eq!(
        auth.mx("nowhere.example.org").await.unwrap(),
        MxAnswer::NoDomain
    );
    for name in ["broken.example.org", "silent.example.org"] {
        let err = auth.mx(name).await.unwrap_err();
        assert!(err.is_temporary(), "{name}: {err:?}");
    }
}

#[tokio::test]
async fn ips_returns_v6_then_v4_and_reports_failures() {
    let dns = server().await;
    let auth = dns.authenticator().unwrap();
    assert_eq!(
        auth.ips("dual.example.org").await.unwrap(),
        vec![
            IpAddr::V6("2001:db8::6".parse::<Ipv6Addr>().unwrap()),
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 6))
        ]
    );
    assert_eq!(
        auth.ips("host-only.example.org").await.unwrap(),
        vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 5))]
    );
    assert!(auth.ips("nowhere.example.org").await.unwrap().is_empty());
    assert!(matches!(
        auth.ips("broken.example.org").await,
        Err(DnsError::Temporary(_))
    ));
}

#[tokio::test]
async fn txt_joins_strings_of_each_record() {
    let dns = server().await;
    let auth = dns.authenticator().unwrap();
    let mut txt = auth.txt("long.example.org").await.unwrap();
    txt.sort();
    assert_eq!(txt, vec!["second".to_string(), "x".repeat(600)]);
    assert!(auth.txt("nowhere.example.org").await.unwrap().is_empty());
    assert!(auth.txt("host-only.example.org").await.unwrap().is_empty());
    assert!(
        auth.txt("broken.example.org")
            .await
            .unwrap_err()
            .is_temporary()
    );
}

#[tokio::test]
async fn invalid_names_are_permanent_errors() {
    let dns = server().await;
    let auth = dns.authenticator().unwrap();
    let long_label = format!("{}.example.org", "a".repeat(64));
    let err = auth.mx(&long_label).await.unwrap_err();
    assert!(!err.is_temporary(), "{err:?}");
}
