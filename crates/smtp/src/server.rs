//! The socket driver: accepts connections, enforces connection limits and timeouts, performs
//! implicit TLS and STARTTLS, and shuttles bytes between the socket and the session state machine.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use net::accept::write_all;
use net::limits::ConnLimiter;
use net::stream::MaybeTls;
use net::tls::TlsReloader;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::backend::{Backend, Mode};
use crate::config::SmtpConfig;
use crate::session::{Event, Session, SessionInfo};

/// Read buffer per connection.
const READ_CHUNK: usize = 16 * 1024;

/// Everything a listener needs, shared by its connections.
pub struct Service<B: Backend> {
    pub config: Arc<SmtpConfig>,
    pub backend: Arc<B>,
    pub tls: Option<TlsReloader>,
    pub limiter: ConnLimiter,
}

/// Accepts connections until the listener fails; each connection runs in its own task.
pub async fn serve_tcp<B: Backend + 'static>(
    listener: TcpListener,
    mode: Mode,
    implicit_tls: bool,
    svc: Arc<Service<B>>,
) {
    net::accept::accept_loop(listener, mode.name(), move |stream, peer| {
        handle(stream, Some(peer), mode, implicit_tls, svc.clone())
    })
    .await;
}

/// LMTP over a Unix socket.
#[cfg(unix)]
pub async fn serve_unix<B: Backend + 'static>(
    listener: tokio::net::UnixListener,
    svc: Arc<Service<B>>,
) {
    loop {
        match listener.accept().await {
            Ok((s, _)) => {
                let svc = svc.clone();
                tokio::spawn(async move {
                    handle(MaybeTls::Unix(s), None, Mode::Lmtp, false, svc).await
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle<B: Backend + 'static>(
    mut stream: MaybeTls,
    peer: Option<SocketAddr>,
    mode: Mode,
    implicit_tls: bool,
    svc: Arc<Service<B>>,
) {
    let ip = peer.map(|p| p.ip());
    let Ok(_guard) = net::accept::admit(
        &svc.limiter,
        &mut stream,
        ip,
        mode.name(),
        b"421 4.7.0 Too many connections, try later\r\n",
        implicit_tls,
    )
    .await
    else {
        return;
    };
    if implicit_tls {
        let Some(tls) = &svc.tls else { return };
        match net::accept::handshake(stream, tls, ip, mode.name()).await {
            Some(s) => stream = s,
            None => return,
        }
    }
    let plain_tcp = matches!(stream, MaybeTls::Plain(_));
    let info = SessionInfo {
        mode,
        peer: ip,
        tls: stream.tls_info(),
        starttls: plain_tcp && svc.tls.is_some(),
    };
    let cfg = svc.config.clone();
    let mut session = Session::new(cfg.clone(), svc.backend.clone(), info);
    let mut buf = vec![0u8; READ_CHUNK];

    // RFC 5321 §4.3.1: the client waits for the greeting. One that talks first is not a real MTA.
    if !cfg.greeting_delay.is_zero()
        && let Ok(Ok(n)) = tokio::time::timeout(cfg.greeting_delay, stream.read(&mut buf)).await
    {
        if n > 0 {
            tracing::info!(
                service = mode.name(),
                peer = ip.map(tracing::field::display),
                "client talked before the greeting"
            );
            let _ = write_all(
                &mut stream,
                b"554 5.5.0 Protocol error: talked before the greeting\r\n",
            )
            .await;
        }
        return;
    }
    if !write_all(&mut stream, &session.greeting()).await {
        return;
    }
    loop {
        let limit = if session.in_data() {
            cfg.data_timeout
        } else {
            cfg.command_timeout
        };
        let n = match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Err(_) => {
                let _ = write_all(&mut stream, &session.timeout()).await;
                break;
            }
            Ok(Err(_)) | Ok(Ok(0)) => break,
            Ok(Ok(n)) => n,
        };
        let out = session.feed(&buf[..n]).await;
        if !write_all(&mut stream, &out.reply).await {
            break;
        }
        match out.event {
            Some(Event::Close) => break,
            Some(Event::StartTls) => {
                let Some(tls) = &svc.tls else { break };
                match net::accept::handshake(stream, tls, ip, mode.name()).await {
                    Some(s) => stream = s,
                    None => return,
                }
                match stream.tls_info() {
                    Some(info) => session.tls_started(info),
                    None => break,
                }
            }
            None => {}
        }
        // A client trickling its message to hold the connection open is cut off.
        if let Some((bytes, started)) = session.data_progress() {
            let elapsed = started.elapsed();
            if elapsed > cfg.data_timeout / 10
                && (bytes as f64) / elapsed.as_secs_f64() < cfg.min_data_rate as f64
            {
                tracing::info!(
                    service = mode.name(),
                    peer = ip.map(tracing::field::display),
                    bytes,
                    "data rate too low"
                );
                let _ = write_all(
                    &mut stream,
                    b"421 4.4.2 Data rate too low, closing connection\r\n",
                )
                .await;
                break;
            }
        }
    }
    let _ = stream.shutdown().await;
}
