//! Smarthost mode end to end: every outbound message of instance A goes through a relay that
//! requires TLS and a login. The relay is a second Facteur instance's submission service (what an
//! office's provider offers on 587/465): STARTTLS on one port, implicit TLS on the other, AUTH
//! PLAIN, and its own rule that the sender must be the logged-in account. Also: a wrong relay
//! password and an unverifiable relay certificate keep the mail queued (never bounced).

mod common;

use std::time::{Duration, Instant};

use common::Server;
use common::mail::{submit, wait_inbox};

const PW: &str = "smarthost-password-1";
const RELAY_PW: &str = "relay-login-password-1";

/// The relay: b.test, with an account for A's sender (its login at the relay).
fn relay() -> Server {
    let b = Server::start("b.test");
    assert!(b.admin(&["domain", "add", "a.test"]).status.success());
    b.add_account("alice@a.test", RELAY_PW);
    b.add_account("bob@b.test", PW);
    b
}

/// A, relaying everything through `port` of the relay with `security` and `password`.
fn sender(port: u16, security: &str, password: &str, verify: bool) -> Server {
    let a = Server::start_with(
        "a.test",
        &format!(
            "[queue]\nretry_initial_secs = 1\nretry_max_secs = 2\nrelay_host = \"127.0.0.1\"\n\
             relay_port = {port}\nrelay_security = \"{security}\"\n\
             relay_verify_certificate = {verify}\nrelay_username = \"alice@a.test\"\n\
             relay_password = \"{password}\"\n"
        ),
    );
    a.add_account("alice@a.test", PW);
    // No DNS here to publish the DKIM keys in; the tests check that mail is signed.
    a.activate_dkim("a.test");
    a
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn wait_attempted(a: &Server) -> store::QueueEntry {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let q = a.store().queue_list().await.unwrap();
        if let Some(e) = q.first()
            && e.attempts > 0
        {
            return e.clone();
        }
        assert!(Instant::now() < deadline, "no attempt recorded: {q:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn relays_over_starttls_with_login() {
    let b = relay();
    let a = sender(b.addr("submission").port(), "starttls", RELAY_PW, false);
    submit(&a, PW, "alice@a.test", "bob@b.test", "via the smarthost").await;
    let got = wait_inbox(&b, "bob@b.test", 1).await;
    assert_eq!(got.len(), 1, "delivered through the relay");
    let m = text(&got[0]);
    assert!(m.contains("Subject: via the smarthost"), "{m}");
    // RFC 3848: ESMTPSA = ESMTP + STARTTLS + AUTH, written by the relay's submission service.
    assert!(
        m.contains("with ESMTPSA"),
        "TLS and login at the relay: {m}"
    );
    assert!(
        m.contains("DKIM-Signature:") && m.contains("d=a.test"),
        "{m}"
    );
    assert!(a.store().queue_list().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn relays_over_implicit_tls_with_login() {
    let b = relay();
    let a = sender(b.addr("submissions").port(), "tls", RELAY_PW, false);
    submit(&a, PW, "alice@a.test", "bob@b.test", "via port 465").await;
    let got = wait_inbox(&b, "bob@b.test", 1).await;
    assert_eq!(
        got.len(),
        1,
        "delivered through the relay's implicit-TLS port"
    );
    assert!(text(&got[0]).contains("with ESMTPSA"), "{}", text(&got[0]));
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_login_keeps_the_mail_queued() {
    let b = relay();
    let a = sender(
        b.addr("submission").port(),
        "starttls",
        "wrong-password",
        false,
    );
    submit(&a, PW, "alice@a.test", "bob@b.test", "wrong login").await;
    let entry = wait_attempted(&a).await;
    let why = format!("{:?}", entry.last_error);
    assert!(why.contains("authentication"), "{why}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(common::inbox(&b.store(), "bob@b.test").await.is_empty());
    assert!(
        common::inbox(&a.store(), "alice@a.test").await.is_empty(),
        "a refused relay login is a configuration problem: no bounce"
    );
    assert_eq!(
        a.store().queue_list().await.unwrap().len(),
        1,
        "still queued"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unverifiable_relay_certificate_keeps_the_mail_queued() {
    let b = relay();
    // Certificate checks are on by default; the relay's self-signed certificate is not trusted.
    let a = sender(b.addr("submission").port(), "starttls", RELAY_PW, true);
    submit(&a, PW, "alice@a.test", "bob@b.test", "untrusted relay").await;
    let entry = wait_attempted(&a).await;
    let why = format!("{:?}", entry.last_error).to_ascii_lowercase();
    assert!(why.contains("certificate"), "{why}");
    assert!(common::inbox(&b.store(), "bob@b.test").await.is_empty());
}
