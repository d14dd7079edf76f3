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

/// Connections refused at a limit, and failed TLS handshakes: a client causes one per connection
/// it opens, so their lines are bounded (`crate::log::ConnEventLog`).
static REFUSED: crate::log::ConnEventLog = crate::log::ConnEventLog::new();
static HANDSHAKE_FAILED: crate::log::ConnEventLog = crate::log::ConnEventLog::new();

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
            let v = REFUSED.record(ip, std::time::Instant::now());
            if v.suppressed_before > 0 {
                tracing::info!(
                    not_logged = v.suppressed_before,
                    "connections refused at a limit in the last minute, not logged one by one"
                );
            }
            if v.log {
                tracing::info!(service, peer = %ip, limit = ?why, "connection refused: limit reached");
            }
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
    let failed = |what: &str, error: Option<String>| {
        let v = match ip {
            Some(ip) => HANDSHAKE_FAILED.record(ip, std::time::Instant::now()),
            None => crate::log::ConnEventVerdict {
                log: true,
                suppressed_before: 0,
            },
        };
        if v.suppressed_before > 0 {
            tracing::info!(
                not_logged = v.suppressed_before,
                "failed TLS handshakes in the last minute, not logged one by one"
            );
        }
        if v.log {
            tracing::info!(
                service,
                peer = ip.map(tracing::field::display),
                error = error.as_deref(),
                "{what}"
            );
        }
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.upgrade(&tls.acceptor())).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            failed("TLS handshake failed", Some(e.to_string()));
            None
        }
        Err(_) => {
            failed("TLS handshake timed out", None);
            None
        }
    }
}
