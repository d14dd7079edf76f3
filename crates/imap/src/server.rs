//! The socket driver: accepts connections, enforces connection limits and timeouts (pre-login
//! and the 30-minute autologout), performs implicit TLS (993) and STARTTLS (143), and during IDLE
//! wakes the session when the store's change feed reports something.

use std::net::SocketAddr;
use std::sync::Arc;

use net::accept::write_all;
use net::limits::ConnLimiter;
use net::stream::MaybeTls;
use net::tls::TlsReloader;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::backend::Backend;
use crate::config::ImapConfig;
use crate::session::{Event, Session, SessionInfo};

/// Read buffer per connection.
const READ_CHUNK: usize = 16 * 1024;

/// Everything a listener needs, shared by its connections.
pub struct Service<B: Backend> {
    pub config: Arc<ImapConfig>,
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
    net::accept::accept_loop(listener, "imap", move |stream, peer| {
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
        "imap",
        b"* BYE Too many connections, try later\r\n",
        implicit_tls,
    )
    .await
    else {
        return;
    };
    if implicit_tls {
        let Some(tls) = &svc.tls else { return };
        match net::accept::handshake(stream, tls, Some(ip), "imap").await {
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
        let read = if session.idling() {
            tokio::select! {
                r = tokio::time::timeout(limit, stream.read(&mut buf)) => Some(r),
                _ = session.wait_change() => None,
            }
        } else {
            Some(tokio::time::timeout(limit, stream.read(&mut buf)).await)
        };
        let n = match read {
            None => {
                let upd = session.idle_updates().await;
                if !write_all(&mut stream, &upd).await {
                    break;
                }
                continue;
            }
            Some(Err(_)) => {
                let _ = write_all(&mut stream, &session.timeout()).await;
                break;
            }
            Some(Ok(Err(_))) | Some(Ok(Ok(0))) => break,
            Some(Ok(Ok(n))) => n,
        };
        let out = session.feed(&buf[..n]).await;
        if !write_all(&mut stream, &out.bytes).await {
            break;
        }
        match out.event {
            Some(Event::Close) => break,
            Some(Event::StartTls) => {
                let Some(tls) = &svc.tls else { break };
                match net::accept::handshake(stream, tls, Some(ip), "imap").await {
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
