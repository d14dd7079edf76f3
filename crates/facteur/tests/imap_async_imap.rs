//! IMAP end to end with the Rust `async-imap` crate (a client we did not write) over implicit
//! TLS: LOGIN, SELECT, FETCH of exact bytes, STORE, and IDLE woken by an SMTP delivery.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use async_imap::extensions::idle::IdleResponse;
use async_imap::types::Flag;
use common::Server;
use futures_util::TryStreamExt;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const DOMAIN: &str = "example.com";
const USER: &str = "alice@example.com";
const PASS: &str = "alice-password-1";
/// Longest wait for the IDLE wake-up: generous for a loaded machine, short enough to fail.
const IDLE_WAIT: Duration = Duration::from_secs(20);

type Session = async_imap::Session<TlsStream<TcpStream>>;

async fn login(addr: SocketAddr) -> Session {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let tls = TlsConnector::from(common::raw::tls_config())
        .connect(ServerName::try_from("mx.example.com").expect("name"), tcp)
        .await
        .expect("TLS handshake");
    let mut client = async_imap::Client::new(tls);
    let greeting = client.read_response().await.expect("greeting");
    assert!(greeting.is_some());
    client
        .login(USER, PASS)
        .await
        .map_err(|(e, _)| e)
        .expect("login")
}

/// Delivers a message to alice over SMTP (a blocking client, off the runtime's threads).
async fn deliver(smtp: SocketAddr, subject: &str) {
    let message = format!("Subject: {subject}\r\n\r\nhello from {subject}\r\n");
    let r =
        tokio::task::spawn_blocking(move || common::raw_smtp(smtp, "bob@far.test", USER, &message))
            .await
            .expect("smtp task");
    assert!(r.starts_with("250"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_select_fetch_store_and_idle() {
    let server = Server::start(DOMAIN);
    server.add_account(USER, PASS);
    deliver(server.addr("smtp"), "first").await;

    let mut s = login(server.addr("imaps")).await;
    let mailbox = s.select("INBOX").await.expect("select");
    assert_eq!(mailbox.exists, 1);
    assert!(mailbox.uid_validity.is_some());

    let fetched: Vec<_> = s
        .fetch("1", "(UID FLAGS BODY.PEEK[])")
        .await
        .expect("fetch")
        .try_collect()
        .await
        .expect("fetch responses");
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].uid, Some(1));
    let body = fetched[0].body().expect("body");
    let stored = common::inbox(&server.store(), USER).await;
    assert_eq!(
        body,
        &stored[0][..],
        "BODY[] is the stored message, byte for byte"
    );
    assert!(body.windows(16).any(|w| w == b"hello from first"));
    assert!(!fetched[0].flags().any(|f| f == Flag::Seen));

    let stored: Vec<_> = s
        .store("1", "+FLAGS (\\Flagged \\Seen)")
        .await
        .expect("store")
        .try_collect()
        .await
        .expect("store responses");
    let flags: Vec<Flag<'_>> = stored[0].flags().collect();
    assert!(
        flags.contains(&Flag::Flagged) && flags.contains(&Flag::Seen),
        "{flags:?}"
    );

    // IDLE: a delivery during IDLE wakes the client.
    let mut idle = s.idle();
    idle.init().await.expect("IDLE");
    let (wait, _stop) = idle.wait_with_timeout(IDLE_WAIT);
    deliver(server.addr("smtp"), "second").await;
    match wait.await.expect("idle wait") {
        IdleResponse::NewData(_) => {}
        other => panic!("IDLE ended without news: {other:?}"),
    }
    let mut s = idle.done().await.expect("DONE");
    let fetched: Vec<_> = s
        .fetch("2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        .await
        .expect("fetch")
        .try_collect()
        .await
        .expect("fetch responses");
    assert_eq!(fetched[0].header(), Some(&b"Subject: second\r\n\r\n"[..]));
    s.logout().await.expect("logout");
}
