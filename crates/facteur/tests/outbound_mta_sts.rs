//! MTA-STS (RFC 8461) on the sending side. Recipient domain b.test publishes `_mta-sts.b.test` in a
//! local dnsmasq and serves its policy over HTTPS from a test server; certificates come from a test
//! CA that the sender trusts through `queue.ca_file`. With `mode: enforce` our queue delivers only
//! to listed MX hosts with a certificate valid for their name: an unlisted MX or a self-signed
//! certificate keeps the message in the queue.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;

use std::time::{Duration, Instant};

use common::Server;
use common::dnsmasq::{Dnsmasq, Record};
use common::mail::{submit, wait_inbox};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PW: &str = "mta-sts-password-1";

struct Ca {
    cert: rcgen::Certificate,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

fn ca() -> Ca {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Facteur test CA");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        cert,
        issuer: rcgen::Issuer::new(params, key),
    }
}

/// Writes a certificate for `name` signed by the CA; returns (cert path, key path).
fn leaf(ca: &Ca, name: &str, dir: &Path) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    let (c, k) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c.display().to_string(), k.display().to_string())
}

/// Serves `policy` at /.well-known/mta-sts.txt over HTTPS (any path, HTTP/1.0 style).
async fn policy_server(cert: &str, key: &str, policy: &'static str) -> SocketAddr {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config =
        net::tls::load_server_config(Path::new(cert), Path::new(key), net::tls::TlsMin::Tls12)
            .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 2048];
                let _ = tls.read(&mut buf).await;
                let body = policy.replace('\n', "\r\n");
                let resp = format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

fn free_port(ip: &str) -> u16 {
    TcpListener::bind(format!("{ip}:0"))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Setup {
    _dns: Dnsmasq,
    _certs: tempfile::TempDir,
    a: Server,
    b: Server,
}

/// A (a.test, sender) and B (b.test, MX at 127.0.0.1 and `b_port`) with B's certificate either
/// from the CA or self-signed; the policy of b.test as given.
async fn setup(policy: &'static str, b_cert_from_ca: bool) -> Setup {
    let certs = tempfile::tempdir().unwrap();
    let ca = ca();
    let ca_path = certs.path().join("ca.pem");
    std::fs::write(&ca_path, ca.cert.pem()).unwrap();
    let (sts_cert, sts_key) = leaf(&ca, "mta-sts.b.test", certs.path());
    let policy_addr = policy_server(&sts_cert, &sts_key, policy).await;
    let b_port = free_port("127.0.0.1");
    let dns = Dnsmasq::start(&[
        Record::Mx("b.test", "mx.b.test", 10),
        Record::Addr("mx.b.test", "127.0.0.1"),
        Record::Txt("_mta-sts.b.test", "v=STSv1; id=20261128"),
        Record::Addr("mta-sts.b.test", "127.0.0.1"),
    ]);
    let b_tls = if b_cert_from_ca {
        let (c, k) = leaf(&ca, "mx.b.test", certs.path());
        format!("[tls]\ncert = \"{c}\"\nkey = \"{k}\"\n")
    } else {
        String::new()
    };
    let b = Server::start_config(
        "b.test",
        &format!(
            "[server]\nhostname = \"mx.b.test\"\nprimary_domain = \"b.test\"\n\
             [listeners]\nsmtp = [\"127.0.0.1:{b_port}\"]\nsubmission = []\nsubmissions = []\n\
             lmtp = []\nimap = []\nimaps = []\npop3 = []\npop3s = []\n\
             [auth]\nargon2_memory_kib = 1024\nargon2_iterations = 1\nmin_password_score = 0\n{b_tls}"
        ),
    );
    b.add_account("bob@b.test", PW);
    let a = Server::start_with(
        "a.test",
        &format!(
            "[queue]\nremote_port = {b_port}\nretry_initial_secs = 1\nretry_max_secs = 2\n\
             mta_sts_port = {}\nca_file = \"{}\"\n[dns]\nnameservers = [\"{}\"]\n",
            policy_addr.port(),
            ca_path.display(),
            dns.addr
        ),
    );
    a.add_account("alice@a.test", PW);
    Setup {
        _dns: dns,
        _certs: certs,
        a,
        b,
    }
}

/// Waits for a failed attempt and returns its error.
async fn deferred_error(a: &Server) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let q = a.store().queue_list().await.unwrap();
        if let Some(e) = q.first()
            && e.attempts > 0
        {
            return e.last_error.clone().unwrap_or_default();
        }
        assert!(Instant::now() < deadline, "no attempt recorded: {q:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn enforce_delivers_to_a_listed_mx_with_a_valid_certificate() {
    let s = setup(
        "version: STSv1\nmode: enforce\nmx: mx.b.test\nmax_age: 86400\n",
        true,
    )
    .await;
    submit(&s.a, PW, "alice@a.test", "bob@b.test", "sts ok").await;
    let got = wait_inbox(&s.b, "bob@b.test", 1).await;
    assert_eq!(got.len(), 1);
    assert!(String::from_utf8_lossy(&got[0]).contains("with ESMTPS"));
}

#[tokio::test(flavor = "multi_thread")]
async fn enforce_refuses_an_mx_the_policy_does_not_list() {
    let s = setup(
        "version: STSv1\nmode: enforce\nmx: other.b.test\nmax_age: 86400\n",
        true,
    )
    .await;
    submit(&s.a, PW, "alice@a.test", "bob@b.test", "sts wrong mx").await;
    let err = deferred_error(&s.a).await;
    assert!(err.contains("MTA-STS"), "{err}");
    assert!(common::inbox(&s.b.store(), "bob@b.test").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn enforce_refuses_a_certificate_that_does_not_verify() {
    let s = setup(
        "version: STSv1\nmode: enforce\nmx: *.b.test\nmax_age: 86400\n",
        false,
    )
    .await;
    submit(&s.a, PW, "alice@a.test", "bob@b.test", "sts self-signed").await;
    let err = deferred_error(&s.a).await;
    assert!(err.contains("TLS"), "{err}");
    assert!(common::inbox(&s.b.store(), "bob@b.test").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn testing_mode_delivers_anyway() {
    let s = setup(
        "version: STSv1\nmode: testing\nmx: other.b.test\nmax_age: 86400\n",
        false,
    )
    .await;
    submit(&s.a, PW, "alice@a.test", "bob@b.test", "sts testing").await;
    assert_eq!(wait_inbox(&s.b, "bob@b.test", 1).await.len(), 1);
}
