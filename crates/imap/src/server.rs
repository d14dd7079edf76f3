//! The socket driver: accepts connections, enforces connection limits and timeouts (pre-login
//! and the 30-minute autologout), performs implicit TLS (993) and STARTTLS (143), wraps the stream
//! in DEFLATE after COMPRESS (RFC 4978), and during IDLE wakes the session when the store's change
//! feed reports something.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

// Each response burst is written and flushed: under COMPRESS, the flush is the sync flush that
// lets the client inflate the whole burst at once.
use net::accept::write_timed;
use net::limits::ConnLimiter;
use net::stream::MaybeTls;
use net::tls::TlsReloader;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::backend::Backend;
use crate::compress::MaybeDeflate;
use crate::config::ImapConfig;
use crate::session::{Event, Output, Session, SessionInfo};

/// Read buffer per connection.
const READ_CHUNK: usize = 16 * 1024;
/// Read buffer of a session in IDLE, which waits for `DONE`: thousands of clients sit there, so
/// the full buffer is given back meanwhile (a third of an idle session's memory).
const IDLE_READ_CHUNK: usize = 256;
/// Longest wait for the last words (the timeout notice, the TLS close) to a client not reading.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything a listener needs, shared by its connections.
pub struct Service<B: Backend> {
    pub config: Arc<ImapConfig>,
    pub backend: Arc<B>,
    pub tls: Option<TlsReloader>,
    pub limiter: ConnLimiter,
}

/// Runs `feed`, writing the pieces of a long answer as the session hands them over
/// ([`Session::stream_to`]); they precede `feed`'s own output. None when the client stopped
/// taking them.
async fn feed_streaming<B: Backend, S: AsyncWrite + Unpin>(
    session: &mut Session<B>,
    bytes: &[u8],
    pieces: &mut mpsc::Receiver<Vec<u8>>,
    stream: &mut S,
    idle_timeout: Duration,
) -> Option<Output> {
    // Pieces only come from commands of a logged-in session: the inactivity timer bounds them.
    let timer = || Instant::now() + idle_timeout;
    let out = {
        let feed = session.feed(bytes);
        tokio::pin!(feed);
        loop {
            tokio::select! {
                biased;
                Some(piece) = pieces.recv() => {
                    if !write_timed(stream, &piece, timer).await {
                        return None;
                    }
                }
                out = &mut feed => break out,
            }
        }
    };
    while let Ok(piece) = pieces.try_recv() {
        if !write_timed(stream, &piece, timer).await {
            return None;
        }
    }
    Some(out)
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
    let login_by = Instant::now() + svc.config.pre_auth_timeout;
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
    let (pieces_tx, mut pieces) = mpsc::channel(1);
    session.stream_to(pieces_tx);
    let mut stream = MaybeDeflate::Plain(stream);
    // Under COMPRESS, also the most inflated bytes one read hands the session (compress.rs).
    let mut buf = vec![0u8; READ_CHUNK];
    if !write_timed(&mut stream, &session.greeting(), || login_by).await {
        return;
    }
    let farewell = || Instant::now() + FAREWELL_TIMEOUT;
    loop {
        // Commands the session left for later (its output reached the high-water mark) are
        // answered before anything more is read.
        if !session.idling() && buf.len() < READ_CHUNK {
            buf = vec![0u8; READ_CHUNK];
        }
        let n = if session.has_pending() {
            0
        } else {
            // After login, the inactivity timer (RFC 9051 §5.4). Before it, a deadline from the
            // connection's start that activity does not push back: a byte now and then, or
            // commands that never log in, cannot keep a connection slot. Checked before reading
            // too, as input that is always ready would never let the timer fire.
            let deadline = if session.authenticated() {
                Some(Instant::now() + cfg.idle_timeout)
            } else if Instant::now() < login_by {
                Some(login_by)
            } else {
                None
            };
            let read = match deadline {
                None => Some(None),
                Some(at) if session.idling() => {
                    if buf.len() > IDLE_READ_CHUNK {
                        buf = vec![0u8; IDLE_READ_CHUNK];
                    }
                    tokio::select! {
                        r = tokio::time::timeout_at(at, stream.read(&mut buf)) => Some(r.ok()),
                        _ = session.wait_change() => None,
                    }
                }
                Some(at) => Some(
                    tokio::time::timeout_at(at, stream.read(&mut buf))
                        .await
                        .ok(),
                ),
            };
            match read {
                None => {
                    let upd = session.idle_updates().await;
                    let at = Instant::now() + cfg.idle_timeout;
                    if !write_timed(&mut stream, &upd.bytes, || at).await
                        || upd.event == Some(Event::Close)
                    {
                        break;
                    }
                    continue;
                }
                Some(None) => {
                    let _ = write_timed(&mut stream, &session.timeout(), farewell).await;
                    break;
                }
                Some(Some(Err(_))) | Some(Some(Ok(0))) => break,
                Some(Some(Ok(n))) => n,
            }
        };
        let Some(out) = feed_streaming(
            &mut session,
            &buf[..n],
            &mut pieces,
            &mut stream,
            cfg.idle_timeout,
        )
        .await
        else {
            break;
        };
        // Each reply is bound by the same timers: a client that never reads is cut like one that
        // never writes.
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
                // STARTTLS is refused after login, so compression cannot be on yet.
                let MaybeDeflate::Plain(plain) = stream else {
                    return;
                };
                match net::accept::handshake(plain, tls, Some(ip), "imap").await {
                    Some(s) => stream = MaybeDeflate::Plain(s),
                    None => return,
                }
                session.tls_started();
            }
            // RFC 4978 §3: the tagged OK above went out uncompressed; DEFLATE from here on.
            Some(Event::Compress) => stream = stream.start_deflate(),
            None => {}
        }
    }
    let _ = tokio::time::timeout_at(farewell(), stream.shutdown()).await;
}
