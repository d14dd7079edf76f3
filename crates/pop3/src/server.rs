//! POP3 on the shared socket driver (`net::driver`): implicit TLS (995) and STLS (110),
//! connection limits, and the timers: a deadline for logging in from the connection's start that
//! activity does not push back, then RFC 1939 §3's ten-minute autologout, for reading commands
//! and writing replies alike.

use std::sync::Arc;
use std::time::Duration;

use net::driver::{self, ConnInfo, Deadline, Endpoint, Event as DriverEvent, Output, Protocol};
use net::limits::ConnLimiter;
use net::live::Live;
use net::shutdown::Shutdown;
use net::stream::TlsInfo;
use net::tls::TlsReloader;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::backend::Backend;
use crate::config::Pop3Config;
use crate::session::{Event, Session, SessionInfo};

/// Read buffer per connection.
const READ_CHUNK: usize = 4 * 1024;
/// Sent to a plaintext connection over the limits.
const TOO_MANY: &[u8] = b"-ERR [SYS/TEMP] Too many connections\r\n";

/// Everything the POP3 listeners share. `config` is replaced by a reload; each connection keeps
/// the configuration it started with.
pub struct Service<B: Backend> {
    pub config: Live<Pop3Config>,
    pub backend: Arc<B>,
    pub tls: Option<TlsReloader>,
}

/// Accepts connections of one listener until shutdown; 110 and 995 share `limiter`.
pub async fn serve_tcp<B: Backend + 'static>(
    listener: TcpListener,
    implicit_tls: bool,
    svc: Arc<Service<B>>,
    limiter: ConnLimiter,
    shutdown: Shutdown,
) {
    let ep = Arc::new(Endpoint {
        service: "pop3",
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
        Pop3 {
            session,
            login_by: info.accepted + cfg.pre_auth_timeout,
            idle_timeout: cfg.idle_timeout,
        }
    })
    .await;
}

/// A POP3 session as the driver runs it.
struct Pop3<B: Backend> {
    session: Session<B>,
    login_by: Instant,
    idle_timeout: Duration,
}

impl<B: Backend + 'static> Protocol for Pop3<B> {
    fn greeting(&mut self) -> Vec<u8> {
        self.session.greeting()
    }

    async fn feed(&mut self, input: &[u8]) -> Output {
        let out = self.session.feed(input).await;
        Output {
            bytes: out.bytes,
            event: out.event.map(|e| match e {
                Event::StartTls => DriverEvent::StartTls,
                Event::Close => DriverEvent::Close,
            }),
        }
    }

    fn deadline(&self) -> Deadline {
        if self.session.authenticated() {
            Deadline::After(self.idle_timeout)
        } else {
            Deadline::At(self.login_by)
        }
    }

    /// RFC 1939 §3: an autologout timer expiry closes without entering the UPDATE state.
    fn timeout(&mut self) -> Vec<u8> {
        self.session.timeout()
    }

    /// As for a timeout, nothing is deleted: messages marked in this session stay.
    fn shutdown(&mut self) -> Vec<u8> {
        b"-ERR [SYS/TEMP] Server shutting down\r\n".to_vec()
    }

    fn tls_started(&mut self, _info: TlsInfo) {
        self.session.tls_started();
    }

    fn read_size(&self) -> usize {
        READ_CHUNK
    }

    fn has_pending(&self) -> bool {
        self.session.has_pending()
    }
}
