//! Postfix as the receiving peer of our outbound queue: Facteur (a.test) looks up the MX of b.test
//! in a local dnsmasq, delivers to a throwaway Postfix over STARTTLS, and Postfix relays to a second
//! Facteur holding bob@b.test. Postfix's own log must show the TLS session our client opened.
//!
//! Needs Postfix, dnsmasq and root (scripts/test.sh installs them; CI runs as root).

mod common;

use common::Server;
use common::dnsmasq::{Dnsmasq, Record};
use common::mail::{submit, wait_inbox};
use common::postfix::Postfix;

const PW: &str = "postfix-outbound-1";

#[tokio::test(flavor = "multi_thread")]
async fn our_queue_delivers_to_postfix_over_starttls() {
    let b = Server::start("b.test");
    b.add_account("bob@b.test", PW);
    let postfix = Postfix::start("smtp", b.addr("smtp"));
    let dns = Dnsmasq::start(&[
        Record::Mx("b.test", "mx.b.test", 10),
        Record::Addr("mx.b.test", "127.0.0.1"),
    ]);
    let a = Server::start_with(
        "a.test",
        &format!(
            "[queue]\nremote_port = {}\nretry_initial_secs = 1\nretry_max_secs = 2\n\
             [dns]\nnameservers = [\"{}\"]\n",
            postfix.smtpd.port(),
            dns.addr
        ),
    );
    a.add_account("alice@a.test", PW);

    submit(&a, PW, "alice@a.test", "bob@b.test", "through postfix").await;
    let got = wait_inbox(&b, "bob@b.test", 1).await;
    let log = postfix.log();
    assert_eq!(
        got.len(),
        1,
        "bob got the message through Postfix\n--- postfix log ---\n{log}"
    );
    let m = String::from_utf8_lossy(&got[0]);
    assert!(m.contains("Subject: through postfix"), "{m}");
    // Postfix's Received line: it took the message from our queue (EHLO mx.a.test) over TLS.
    assert!(
        m.contains("from mx.a.test") && m.contains("by postfix-peer.test (Postfix) with ESMTPS"),
        "{m}"
    );
    assert!(
        log.contains("TLS connection established from"),
        "Postfix logs the TLS session our client opened:\n{log}"
    );
    assert!(a.store().queue_list().await.unwrap().is_empty());
}
