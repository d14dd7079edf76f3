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
pub async fn write_all(stream: &mut MaybeTls, bytes: &[u8]) -> bool {
    if bytes.is_empty() {
        return true;
    }
    stream.write_all(bytes).await.is_ok() && stream.flush().await.is_ok()
}
