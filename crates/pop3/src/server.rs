//! The socket driver: accepts connections, enforces connection limits and timeouts (a deadline
//! for logging in, and the RFC 1939 §3 ten-minute autologout, for reading commands and for
//! writing replies alike), performs implicit TLS (995) and STLS (110).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use net::accept::write_timed;
use net::limits::ConnLimiter;
use net::stream::MaybeTls;
use net::tls::TlsReloader;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::backend::Backend;
use crate::config::Pop3Config;
use crate::session::{Event, Session, SessionInfo};

/// Read buffer per connection.
const READ_CHUNK: usize = 4 * 1024;
/// Longest wait for the last words (the timeout notice, the TLS close) to a client not reading.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything a listener needs, shared by its connections.
pub struct Service<B: Backend> {
    pub config: Arc<Pop3Config>,
    pub backend: Arc<B>,
    pub tls: Option<TlsReloader>,
    pub limiter: ConnLimiter,
}

/// Accepts connections until the listener fails; each connection runs in its own task.
pub async fn serve_tcp<B: Backend + 'static>(
    listener: TcpListener,
    implicit_tls: bool,
    svc: Arc<Service<B>>,
) {
    net::accept::accept_loop(listener, "pop3", move |stream, peer| {
        handle(stream, peer, implicit_tls, svc.clone())
    })
    .await;
}

async fn handle<B: Backend + 'static>(
    mut stream: MaybeTls,
    peer: SocketAddr,
    implicit_tls: bool,
    svc: Arc<Service<B>>,
) {
    let ip = peer.ip();
    let login_by = Instant::now() + svc.config.pre_auth_timeout;
    let Ok(_guard) = net::accept::admit(
        &svc.limiter,
        &mut stream,
        Some(ip),
        "pop3",
        b"-ERR [SYS/TEMP] Too many connections\r\n",
        implicit_tls,
    )
    .await
    else {
        return;
    };
    if implicit_tls {
        let Some(tls) = &svc.tls else { return };
        match net::accept::handshake(stream, tls, Some(ip), "pop3").await {
            Some(s) => stream = s,
            None => return,
        }
    }
    let info = SessionInfo {
        peer: Some(ip),
        tls: stream.is_tls(),
        starttls: !stream.is_tls() && svc.tls.is_some(),
    };
    let cfg = svc.config.clone();
    let mut session = Session::new(cfg.clone(), svc.backend.clone(), info);
    let mut buf = vec![0u8; READ_CHUNK];
    if !write_timed(&mut stream, &session.greeting(), || login_by).await {
        return;
    }
    let farewell = || Instant::now() + FAREWELL_TIMEOUT;
    loop {
        // Pipelined commands the session left for later (its output reached the high-water
        // mark) are answered before anything more is read.
        let n = if session.has_pending() {
            0
        } else {
            // After login, RFC 1939 §3's inactivity timer. Before it, a deadline from the
            // connection's start that activity does not push back: a client sending a byte now
            // and then, or commands that never log in, cannot keep a connection slot forever.
            // Checked before reading too, as input that is always ready would never let the
            // timer fire.
            let read = if session.authenticated() {
                tokio::time::timeout(cfg.idle_timeout, stream.read(&mut buf))
                    .await
                    .ok()
            } else if Instant::now() < login_by {
                tokio::time::timeout_at(login_by, stream.read(&mut buf))
                    .await
                    .ok()
            } else {
                None
            };
            match read {
                None => {
                    // RFC 1939 §3: an autologout timer expiry closes without entering UPDATE.
                    let _ = write_timed(&mut stream, &session.timeout(), farewell).await;
                    break;
                }
                Some(Err(_)) | Some(Ok(0)) => break,
                Some(Ok(n)) => n,
            }
        };
        let out = session.feed(&buf[..n]).await;
        let authenticated = session.authenticated();
        let timer = || {
            if authenticated {
                Instant::now() + cfg.idle_timeout
            } else {
                login_by
            }
        };
        if !write_timed(&mut stream, &out.bytes, timer).await {
            break;
        }
        match out.event {
            Some(Event::Close) => break,
            Some(Event::StartTls) => {
                let Some(tls) = &svc.tls else { break };
                match net::accept::handshake(stream, tls, Some(ip), "pop3").await {
                    Some(s) => stream = s,
                    None => return,
                }
                session.tls_started();
            }
            None => {}
        }
    }
    let _ = tokio::time::timeout_at(farewell(), stream.shutdown()).await;
}
