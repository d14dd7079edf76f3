//! The steps of a connection the socket driver (`crate::driver`) takes: admission against the
//! connection limits, the TLS handshake under a timeout, and timed writes.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::stream::MaybeTls;

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
