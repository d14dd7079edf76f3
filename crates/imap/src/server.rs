//! IMAP on the shared socket driver (`net::driver`): implicit TLS (993) and STARTTLS (143),
//! COMPRESS=DEFLATE (RFC 4978), connection limits and timers, and during IDLE a wake-up when the
//! store's change feed reports something.
//!
//! Timers: before login, a deadline from the connection's start (`limits.command_timeout_secs`)
//! that activity does not push back (a byte now and then, or commands that never log in, cannot
//! keep a connection slot); after login, the inactivity timer (RFC 9051 §5.4). Each reply is
//! written under the same timer, so a client that never reads is cut like one that never writes.

use std::sync::Arc;
use std::time::Duration;

use net::driver::{self, ConnInfo, Deadline, Endpoint, Event as DriverEvent, Output, Protocol};
use net::limits::ConnLimiter;
use net::live::Live;
use net::shutdown::Shutdown;
use net::stream::TlsInfo;
use net::tls::TlsReloader;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::backend::Backend;
use crate::config::ImapConfig;
use crate::session::{self, Event, Session, SessionInfo};

/// Read buffer per connection. Under COMPRESS, also the most inflated bytes one read hands the
/// session (`net::compress`).
const READ_CHUNK: usize = 16 * 1024;
/// Read buffer of a session in IDLE, which waits for `DONE`: thousands of clients sit there, so
/// the full buffer is given back meanwhile (a third of an idle session's memory).
const IDLE_READ_CHUNK: usize = 256;
/// Sent to a plaintext connection over the limits.
const TOO_MANY: &[u8] = b"* BYE Too many connections, try later\r\n";

/// Everything the IMAP listeners share. `config` is replaced by a reload; each connection keeps
/// the configuration it started with.
pub struct Service<B: Backend> {
    pub config: Live<ImapConfig>,
    pub backend: Arc<B>,
    pub tls: Option<TlsReloader>,
}

/// Accepts connections of one listener until shutdown; 143 and 993 share `limiter`.
pub async fn serve_tcp<B: Backend + 'static>(
    listener: TcpListener,
    implicit_tls: bool,
    svc: Arc<Service<B>>,
    limiter: ConnLimiter,
    shutdown: Shutdown,
) {
    let ep = Arc::new(Endpoint {
        service: "imap",
        implicit_tls,
        tls: svc.tls.clone(),
        limiter,
        refusal: TOO_MANY,
        shutdown,
    });
    driver::serve_tcp(listener, ep, move |info: &ConnInfo| {
        let cfg = svc.config.get();
        let session = Session::new(
            cfg.clone(),
            svc.backend.clone(),
            SessionInfo {
                peer: info.peer,
                tls: info.tls.is_some(),
                starttls: info.starttls,
            },
        );
        Imap {
            session,
            login_by: info.accepted + cfg.pre_auth_timeout,
            idle_timeout: cfg.idle_timeout,
        }
    })
    .await;
}

/// An IMAP session as the driver runs it.
struct Imap<B: Backend> {
    session: Session<B>,
    login_by: Instant,
    idle_timeout: Duration,
}

fn output(out: session::Output) -> Output {
    Output {
        bytes: out.bytes,
        event: out.event.map(|e| match e {
            Event::StartTls => DriverEvent::StartTls,
            Event::Compress => DriverEvent::Compress,
            Event::Close => DriverEvent::Close,
        }),
    }
}

impl<B: Backend + 'static> Protocol for Imap<B> {
    const STREAMS: bool = true;

    fn greeting(&mut self) -> Vec<u8> {
        self.session.greeting()
    }

    async fn feed(&mut self, input: &[u8]) -> Output {
        output(self.session.feed(input).await)
    }

    fn deadline(&self) -> Deadline {
        if self.session.authenticated() {
            Deadline::After(self.idle_timeout)
        } else {
            Deadline::At(self.login_by)
        }
    }

    fn timeout(&mut self) -> Vec<u8> {
        self.session.timeout()
    }

    fn shutdown(&mut self) -> Vec<u8> {
        b"* BYE Server shutting down\r\n".to_vec()
    }

    fn tls_started(&mut self, _info: TlsInfo) {
        self.session.tls_started();
    }

    fn read_size(&self) -> usize {
        if self.session.idling() {
            IDLE_READ_CHUNK
        } else {
            READ_CHUNK
        }
    }

    fn has_pending(&self) -> bool {
        self.session.has_pending()
    }

    async fn wait_wake(&mut self) {
        if self.session.idling() {
            self.session.wait_change().await;
        } else {
            std::future::pending::<()>().await;
        }
    }

    async fn wake(&mut self) -> Output {
        output(self.session.idle_updates().await)
    }

    fn stream_to(&mut self, pieces: mpsc::Sender<Vec<u8>>) {
        self.session.stream_to(pieces);
    }
}
