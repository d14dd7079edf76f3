//! The socket driver: accepts connections, enforces connection limits and timeouts (pre-login
//! and the RFC 1939 §3 ten-minute autologout), performs implicit TLS (995) and STLS (110).

use std::net::SocketAddr;
use std::sync::Arc;

use net::accept::write_all;
use net::limits::ConnLimiter;
use net::stream::MaybeTls;
use net::tls::TlsReloader;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::backend::Backend;
use crate::config::Pop3Config;
use crate::session::{Event, Session, SessionInfo};

/// Read buffer per connection.
const READ_CHUNK: usize = 4 * 1024;

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
    if !write_all(&mut stream, &session.greeting()).await {
        return;
    }
    loop {
        let limit = if session.authenticated() {
            cfg.idle_timeout
        } else {
            cfg.pre_auth_timeout
        };
        let n = match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Err(_) => {
                // RFC 1939 §3: an autologout timer expiry closes without entering UPDATE.
                let _ = write_all(&mut stream, &session.timeout()).await;
                break;
            }
            Ok(Err(_)) | Ok(Ok(0)) => break,
            Ok(Ok(n)) => n,
        };
        let out = session.feed(&buf[..n]).await;
        if !write_all(&mut stream, &out.bytes).await {
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
    let _ = stream.shutdown().await;
}
