//! The connection checks against an in-memory resolver (the real-DNS tests, with dnsmasq and
//! Python's smtplib, are in crates/facteur/tests/smtp_conncheck.rs).

use std::collections::HashMap;
use std::sync::Mutex;

use super::*;
use crate::backend::RcptTarget;

#[derive(Default)]
struct FakeDns {
    a: HashMap<String, Vec<Ipv4Addr>>,
    ptr: HashMap<IpAddr, Vec<String>>,
    hosts: HashMap<String, Vec<IpAddr>>,
    /// Names that never answer.
    hang: Vec<String>,
    asked: Mutex<Vec<String>>,
}

#[async_trait]
impl ConnResolver for FakeDns {
    async fn a(&self, name: &str) -> Result<AAnswer, String> {
        self.asked.lock().unwrap().push(name.to_string());
        if self.hang.iter().any(|h| name.ends_with(h.as_str())) {
            std::future::pending::<()>().await;
        }
        Ok(AAnswer {
            addrs: self.a.get(name).cloned().unwrap_or_default(),
            ttl: Some(60),
        })
    }
    async fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, String> {
        Ok(self.ptr.get(&ip).cloned().unwrap_or_default())
    }
    async fn ips(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        Ok(self.hosts.get(host).cloned().unwrap_or_default())
    }
}

struct Ours;

#[async_trait]
impl LocalNames for Ours {
    async fn is_ours(&self, name: &str) -> bool {
        name == "mx.example.com" || name == "example.com"
    }
}

fn zone(name: &str, kind: ZoneKind, action: ZoneAction, score: f64) -> Zone {
    Zone {
        zone: name.into(),
        kind,
        action,
        score,
        codes: vec![],
    }
}

const PEER: &str = "192.0.2.9";

fn conn<'a>(helo: &'a str) -> ConnInfo<'a> {
    ConnInfo {
        mode: Mode::Mx,
        peer: Some(PEER.parse().unwrap()),
        tls: None,
        auth: None,
        helo,
    }
}

fn checks(cfg: ConnConfig, dns: FakeDns) -> (ConnChecks, Arc<FakeDns>) {
    let dns = Arc::new(dns);
    (ConnChecks::new(cfg, dns.clone(), Arc::new(Ours), None), dns)
}

fn listed(dns: &mut FakeDns, name: &str, code: [u8; 4]) {
    dns.a.insert(name.into(), vec![Ipv4Addr::from(code)]);
}

#[tokio::test]
async fn blocklists_score_reject_and_allowlists_win() {
    let mut dns = FakeDns::default();
    listed(&mut dns, "9.2.0.192.score.test", [127, 0, 0, 2]);
    listed(&mut dns, "9.2.0.192.reject.test", [127, 0, 0, 2]);
    listed(&mut dns, "9.2.0.192.refused.test", [127, 255, 255, 254]);
    let cfg = ConnConfig {
        zones: vec![
            zone("score.test", ZoneKind::Ip, ZoneAction::Score, 2.5),
            zone("refused.test", ZoneKind::Ip, ZoneAction::Reject, 9.0),
            zone("empty.test", ZoneKind::Ip, ZoneAction::Reject, 9.0),
        ],
        ..ConnConfig::default()
    };
    let (c, dns_seen) = checks(cfg.clone(), dns);
    let v = c
        .connection(&conn("client.far.test"))
        .await
        .expect("accepted");
    assert_eq!(v.score, 2.5);
    assert_eq!(v.reasons[0].name, "DNSBL:score.test");
    // Cached: asking again does not query again.
    let before = dns_seen.asked.lock().unwrap().len();
    c.connection(&conn("client.far.test"))
        .await
        .expect("accepted");
    assert_eq!(dns_seen.asked.lock().unwrap().len(), before);

    let mut dns = FakeDns::default();
    listed(&mut dns, "9.2.0.192.reject.test", [127, 0, 0, 2]);
    let mut cfg = ConnConfig {
        zones: vec![zone("reject.test", ZoneKind::Ip, ZoneAction::Reject, 0.0)],
        ..ConnConfig::default()
    };
    let (c, _) = checks(cfg.clone(), dns);
    let e = c
        .connection(&conn("client.far.test"))
        .await
        .expect_err("refused");
    assert_eq!((e.reply.code, e.reply.enhanced), (554, "5.7.1"));

    // An allowlist listing turns the refusal into a score.
    let mut dns = FakeDns::default();
    listed(&mut dns, "9.2.0.192.reject.test", [127, 0, 0, 2]);
    listed(&mut dns, "9.2.0.192.wl.test", [127, 0, 10, 1]);
    cfg.zones
        .push(zone("wl.test", ZoneKind::Ip, ZoneAction::Allow, -1.0));
    let (c, _) = checks(cfg, dns);
    let v = c
        .connection(&conn("client.far.test"))
        .await
        .expect("allowed");
    assert_eq!(v.score, -1.0);

    // Submission and trusted clients are never checked.
    let mut sub = conn("x");
    sub.mode = Mode::Submission;
    assert_eq!(c.connection(&sub).await, Ok(Verdict::accept()));
}

#[tokio::test]
async fn a_zone_out_of_time_gives_no_verdict() {
    let mut dns = FakeDns::default();
    listed(&mut dns, "9.2.0.192.fast.test", [127, 0, 0, 2]);
    dns.hang.push("slow.test".into());
    let cfg = ConnConfig {
        zones: vec![
            zone("slow.test", ZoneKind::Ip, ZoneAction::Reject, 0.0),
            zone("fast.test", ZoneKind::Ip, ZoneAction::Score, 1.0),
        ],
        // The silent zone never answers: the check must end when the budget does.
        dns_budget: Duration::from_millis(200),
        ..ConnConfig::default()
    };
    let (c, _) = checks(cfg, dns);
    let v = c
        .connection(&conn("client.far.test"))
        .await
        .expect("accepted");
    assert_eq!(
        v.score, 1.0,
        "the zone that answered counts, the silent one does not"
    );
}

#[tokio::test]
async fn sender_domain_and_helo_on_domain_lists() {
    let mut dns = FakeDns::default();
    listed(&mut dns, "spammy.test.dbl.test", [127, 0, 1, 2]);
    listed(&mut dns, "bad-helo.test.dbl.test", [127, 0, 1, 2]);
    let cfg = ConnConfig {
        zones: vec![zone("dbl.test", ZoneKind::Domain, ZoneAction::Score, 3.0)],
        ..ConnConfig::default()
    };
    let (c, _) = checks(cfg, dns);
    let v = c
        .sender(&conn("h.test"), "x@Spammy.Test")
        .await
        .expect("ok");
    assert_eq!(v.score, 3.0);
    assert_eq!(v.reasons[0].name, "RHSBL:dbl.test");
    let v = c.sender(&conn("h.test"), "x@fine.test").await.expect("ok");
    assert_eq!(v.score, 0.0);
    let v = c.sender(&conn("h.test"), "").await.expect("null sender");
    assert_eq!(v.score, 0.0);
    let v = c.helo(&conn("bad-helo.test")).await.expect("ok");
    assert_eq!(v.score, 3.0);
}

#[tokio::test]
async fn reverse_dns_must_confirm() {
    let peer: IpAddr = PEER.parse().unwrap();
    let mut dns = FakeDns::default();
    dns.ptr
        .insert(peer, vec!["liar.test".into(), "mail.far.test".into()]);
    dns.hosts.insert("mail.far.test".into(), vec![peer]);
    dns.hosts
        .insert("liar.test".into(), vec!["198.51.100.1".parse().unwrap()]);
    let cfg = ConnConfig {
        fcrdns_score: 1.5,
        ..ConnConfig::default()
    };
    let (c, _) = checks(cfg.clone(), dns);
    assert_eq!(c.connection(&conn("h.test")).await.expect("ok").score, 0.0);

    let mut dns = FakeDns::default();
    dns.ptr.insert(peer, vec!["liar.test".into()]);
    dns.hosts
        .insert("liar.test".into(), vec!["198.51.100.1".parse().unwrap()]);
    let (c, _) = checks(cfg.clone(), dns);
    let v = c.connection(&conn("h.test")).await.expect("ok");
    assert_eq!(
        (v.score, v.reasons[0].name.as_str()),
        (1.5, "RDNS_NOT_CONFIRMED")
    );

    // No PTR at all.
    let (c, _) = checks(cfg, FakeDns::default());
    assert_eq!(c.connection(&conn("h.test")).await.expect("ok").score, 1.5);
}

#[tokio::test]
async fn helo_sanity() {
    let cfg = ConnConfig {
        helo_forged: Action::Reject,
        helo_not_fqdn: Action::Score(1.0),
        ..ConnConfig::default()
    };
    let (c, _) = checks(cfg, FakeDns::default());
    assert_eq!(
        c.helo(&conn("client.far.test")).await.expect("ok").score,
        0.0
    );
    assert_eq!(
        c.helo(&conn(&format!("[{PEER}]"))).await.expect("ok").score,
        0.0
    );
    assert_eq!(c.helo(&conn("EXCHANGE01")).await.expect("ok").score, 1.0);
    for forged in ["[198.51.100.1]", "mx.example.com", "EXAMPLE.com"] {
        let e = c.helo(&conn(forged)).await.expect_err(forged);
        assert_eq!((e.reply.code, e.reply.enhanced), (550, "5.7.1"));
    }
}

#[tokio::test]
async fn rate_limits_are_temporary() {
    let cfg = ConnConfig {
        rate: rate::RateConfig {
            window: Duration::from_secs(3600),
            messages: 2,
            recipients: 3,
            max_clients: 10,
        },
        ..ConnConfig::default()
    };
    let (c, _) = checks(cfg, FakeDns::default());
    let k = conn("h.test");
    assert!(c.sender(&k, "a@far.test").await.is_ok());
    assert!(c.sender(&k, "a@far.test").await.is_ok());
    let e = c.sender(&k, "a@far.test").await.expect_err("third message");
    assert_eq!((e.reply.code, e.reply.enhanced), (451, "4.7.1"));
    let rcpt = Recipient {
        address: "u@example.com".into(),
        target: RcptTarget::default(),
        notify: None,
        orcpt: None,
    };
    for _ in 0..3 {
        assert!(c.recipient(&k, "a@far.test", &rcpt).await.is_ok());
    }
    let e = c
        .recipient(&k, "a@far.test", &rcpt)
        .await
        .expect_err("fourth recipient");
    assert!(e.is_temporary());
}
