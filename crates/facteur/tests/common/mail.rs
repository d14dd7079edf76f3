//! Sending and waiting for mail in end-to-end tests: submission with lettre (STARTTLS + AUTH on
//! the submission port, the self-signed certificate accepted), and polling an INBOX.

use std::time::{Duration, Instant};

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::Server;

pub async fn submit(server: &Server, password: &str, user: &str, to: &str, subject: &str) {
    let tls = TlsParameters::builder(format!("mx.{}", server.domain))
        .dangerous_accept_invalid_certs(true)
        .build_rustls()
        .expect("tls parameters");
    let sub = server.addr("submission");
    let t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(sub.ip().to_string())
        .port(sub.port())
        .tls(Tls::Required(tls))
        .credentials(Credentials::new(user.into(), password.into()))
        .build();
    let msg = Message::builder()
        .from(user.parse().expect("from"))
        .to(to.parse().expect("to"))
        .subject(subject)
        .body(format!("This is {subject}.\r\n"))
        .expect("message");
    t.send(msg).await.expect("submission accepted");
}

/// Waits until the INBOX of `address` holds `n` messages.
pub async fn wait_inbox(server: &Server, address: &str, n: usize) -> Vec<Vec<u8>> {
    let store = server.store();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let msgs = super::inbox(&store, address).await;
        if msgs.len() >= n || Instant::now() > deadline {
            return msgs;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
