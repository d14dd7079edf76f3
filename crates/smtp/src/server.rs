//! SMTP, submission and LMTP on the shared socket driver (`net::driver`): the driver accepts,
//! admits, performs implicit TLS and STARTTLS and writes; this module tells it which deadline
//! applies and when to cut a session off.
//!
//! Deadlines (RFC 5321 §4.5.3.2 asks for at least 5 minutes per command and 10 for data
//! blocks; `limits.command_timeout_secs` and `smtp.data_timeout_secs`):
//! - between commands, `command_timeout` of silence;
//! - once a command line has begun, `command_timeout` from its first byte to its end, however
//!   the bytes trickle in: a client sending a byte now and then cannot hold the connection;
//! - during DATA or a BDAT chunk, `data_timeout` of silence, and the transfer is cut once it has
//!   run for a tenth of `data_timeout` at less than `smtp.min_data_rate` bytes per second.

use std::net::IpAddr;
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

use crate::backend::{Backend, Mode};
use crate::config::SmtpConfig;
use crate::reply;
use crate::session::{Event, Session, SessionInfo};

/// Read buffer per connection.
const READ_CHUNK: usize = 16 * 1024;
/// Sent to a connection over the service's limits (RFC 5321 §3.8: 421 and close).
const TOO_MANY: &[u8] = b"421 4.7.0 Too many connections, try later\r\n";
/// A data transfer is judged on its rate once it has run for this fraction of the data timeout.
const RATE_GRACE_DIVISOR: u32 = 10;

/// Everything the listeners of the SMTP family share. `config` is replaced by a reload; each
/// connection keeps the configuration it started with.
pub struct Service<B: Backend> {
    pub config: Live<SmtpConfig>,
    pub backend: Arc<B>,
    pub tls: Option<TlsReloader>,
}

fn endpoint<B: Backend>(
    svc: &Service<B>,
    mode: Mode,
    implicit_tls: bool,
    limiter: ConnLimiter,
    shutdown: Shutdown,
) -> Arc<Endpoint> {
    Arc::new(Endpoint {
        service: mode.name(),
        implicit_tls,
        tls: svc.tls.clone(),
        limiter,
        refusal: TOO_MANY,
        shutdown,
    })
}

fn session<B: Backend + 'static>(svc: &Service<B>, mode: Mode, info: &ConnInfo) -> Smtp<B> {
    let cfg = svc.config.get();
    let session = Session::new(
        cfg.clone(),
        svc.backend.clone(),
        SessionInfo {
            mode,
            peer: info.peer,
            tls: info.tls.clone(),
            starttls: info.starttls,
        },
    );
    Smtp {
        session,
        cfg,
        service: mode.name(),
        mode,
        peer: info.peer,
        line_started: None,
        transfer: None,
    }
}

/// Accepts connections of one listener until shutdown; `limiter` is the budget of its service.
pub async fn serve_tcp<B: Backend + 'static>(
    listener: TcpListener,
    mode: Mode,
    implicit_tls: bool,
    svc: Arc<Service<B>>,
    limiter: ConnLimiter,
    shutdown: Shutdown,
) {
    let ep = endpoint(&svc, mode, implicit_tls, limiter, shutdown);
    driver::serve_tcp(listener, ep, move |info| session(&svc, mode, info)).await;
}

/// LMTP over a Unix socket (no per-client limit: the peer is a local MTA).
#[cfg(unix)]
pub async fn serve_unix<B: Backend + 'static>(
    listener: tokio::net::UnixListener,
    svc: Arc<Service<B>>,
    limiter: ConnLimiter,
    shutdown: Shutdown,
) {
    let ep = endpoint(&svc, Mode::Lmtp, false, limiter, shutdown);
    driver::serve_unix(listener, ep, move |info| session(&svc, Mode::Lmtp, info)).await;
}

/// An SMTP session as the driver runs it.
struct Smtp<B: Backend> {
    session: Session<B>,
    cfg: Arc<SmtpConfig>,
    service: &'static str,
    mode: Mode,
    peer: Option<IpAddr>,
    /// When the first byte of the command line not yet complete arrived.
    line_started: Option<Instant>,
    /// The message transfer (DATA, or a BDAT chunk) under way: when it started, bytes since.
    transfer: Option<(Instant, u64)>,
}

impl<B: Backend + 'static> Protocol for Smtp<B> {
    fn greeting(&mut self) -> Vec<u8> {
        self.session.greeting()
    }

    async fn feed(&mut self, input: &[u8]) -> Output {
        let now = Instant::now();
        if let Some((_, bytes)) = &mut self.transfer {
            *bytes += input.len() as u64;
        }
        let out = self.session.feed(input).await;
        self.line_started = if !self.session.in_command_line() {
            None
        } else if input.contains(&b'\n') {
            // A line ended in this input: the one left open began in it too.
            Some(now)
        } else {
            self.line_started.or(Some(now))
        };
        self.transfer = match (self.session.in_data(), self.transfer) {
            (false, _) => None,
            (true, None) => Some((now, 0)),
            (true, t) => t,
        };
        Output {
            bytes: out.reply,
            event: out.event.map(|e| match e {
                Event::StartTls => DriverEvent::StartTls,
                Event::Close => DriverEvent::Close,
            }),
        }
    }

    fn deadline(&self) -> Deadline {
        if self.session.in_data() {
            Deadline::After(self.cfg.data_timeout)
        } else if let Some(started) = self.line_started {
            Deadline::At(started + self.cfg.command_timeout)
        } else {
            Deadline::After(self.cfg.command_timeout)
        }
    }

    fn timeout(&mut self) -> Vec<u8> {
        self.session.timeout()
    }

    fn shutdown(&mut self) -> Vec<u8> {
        tracing::info!(
            service = self.service,
            peer = self.peer.map(tracing::field::display),
            "closing the session: shutting down"
        );
        reply::shutting_down().to_bytes()
    }

    fn tls_started(&mut self, info: TlsInfo) {
        self.line_started = None;
        self.session.tls_started(info);
    }

    fn read_size(&self) -> usize {
        READ_CHUNK
    }

    /// Only on the MX port: submission and LMTP clients are our own users and MTA, and a pause
    /// would only slow them down.
    fn greeting_delay(&self) -> Duration {
        if self.mode == Mode::Mx {
            self.cfg.greeting_delay
        } else {
            Duration::ZERO
        }
    }

    fn premature(&mut self) -> Vec<u8> {
        b"554 5.5.0 Protocol error: talked before the greeting\r\n".to_vec()
    }

    /// A client trickling its message to hold the connection open is cut off.
    fn cut_off(&mut self) -> Option<Vec<u8>> {
        let (started, bytes) = self.transfer?;
        let elapsed = started.elapsed();
        if elapsed <= self.cfg.data_timeout / RATE_GRACE_DIVISOR
            || (bytes as f64) / elapsed.as_secs_f64() >= self.cfg.min_data_rate as f64
        {
            return None;
        }
        tracing::info!(
            service = self.service,
            peer = self.peer.map(tracing::field::display),
            bytes,
            "data rate too low"
        );
        Some(b"421 4.4.2 Data rate too low, closing connection\r\n".to_vec())
    }
}
