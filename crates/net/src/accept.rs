//! The accept loop every TCP listener runs: accept, set TCP_NODELAY, run the protocol's handler in
//! its own task, and back off (rather than spin) when accept fails, e.g. out of file descriptors.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::stream::MaybeTls;

/// Pause after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts connections forever; `handle` gets each one as a plaintext stream and its peer address.
pub async fn accept_loop<F, Fut>(listener: TcpListener, service: &'static str, handle: F)
where
    F: Fn(MaybeTls, SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                let _ = tcp.set_nodelay(true);
                // A dual-stack `[::]` listener sees IPv4 clients as ::ffff:a.b.c.d; everything
                // after this (limits, throttling, SPF, logs, Received) wants the IPv4 address.
                let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
                tokio::spawn(handle(MaybeTls::Plain(tcp), peer));
            }
            Err(e) => {
                tracing::warn!(service, error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Writes and flushes; false when the peer is gone.
pub async fn write_all<S: tokio::io::AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> bool {
    if bytes.is_empty() {
        return true;
    }
    stream.write_all(bytes).await.is_ok() && stream.flush().await.is_ok()
}

/// Most octets of one timed write: the client must take each piece before its timer fires.
pub const WRITE_STEP: usize = 64 * 1024;

/// Writes `bytes` in pieces of [`WRITE_STEP`], each of which the client must take before
/// `deadline()` (asked afresh for every piece): a client that stops reading is bound by the same
/// timers as one that stops writing, instead of holding the connection (and its socket buffers)
/// forever. False when the peer is gone or too slow.
pub async fn write_timed<S: tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    deadline: impl Fn() -> tokio::time::Instant,
) -> bool {
    if bytes.is_empty() {
        return true;
    }
    for piece in bytes.chunks(WRITE_STEP) {
        let written = tokio::time::timeout_at(deadline(), write_all(stream, piece)).await;
        if written != Ok(true) {
            return false;
        }
    }
    true
}

/// Longest TLS handshake allowed (implicit TLS or after STARTTLS/STLS).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Takes a connection slot for `ip` (no limit for Unix sockets, `ip` None). When a limit is
/// reached, writes `refusal` unless the connection is implicit TLS (no plaintext may be sent
/// there), logs, and returns `Err(())`: the caller just closes.
pub async fn admit(
    limiter: &crate::limits::ConnLimiter,
    stream: &mut MaybeTls,
    ip: Option<std::net::IpAddr>,
    service: &'static str,
    refusal: &[u8],
    implicit_tls: bool,
) -> Result<Option<crate::limits::ConnGuard>, ()> {
    let Some(ip) = ip else {
        return Ok(None);
    };
    match limiter.try_acquire(ip) {
        Ok(g) => Ok(Some(g)),
        Err(why) => {
            tracing::info!(service, peer = %ip, limit = ?why, "connection refused: limit reached");
            if !implicit_tls {
                let _ = write_all(stream, refusal).await;
            }
            Err(())
        }
    }
}

/// The TLS handshake of a plaintext connection, bounded by [`HANDSHAKE_TIMEOUT`]; `None` (after a
/// log line) when it fails or times out.
pub async fn handshake(
    stream: MaybeTls,
    tls: &crate::tls::TlsReloader,
    ip: Option<std::net::IpAddr>,
    service: &'static str,
) -> Option<MaybeTls> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.upgrade(&tls.acceptor())).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            tracing::info!(service, peer = ip.map(tracing::field::display), error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::info!(
                service,
                peer = ip.map(tracing::field::display),
                "TLS handshake timed out"
            );
            None
        }
    }
}
