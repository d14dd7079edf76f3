//! Stopping politely (SIGTERM): listeners stop accepting, every session says goodbye in its
//! protocol's words once the command it is running (an SMTP DATA being committed, an IMAP
//! APPEND) is done, and the process waits for them, up to a grace period, before it exits.

use tokio::sync::watch;

/// The server side: [`Shutdown::begin`] asks every holder of a [`ShutdownSignal`] to stop, and
/// [`Shutdown::drained`] waits until they all have. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
}

/// Held by each accept loop and each session for as long as it runs; dropping it tells
/// [`Shutdown::drained`] that this one is done.
#[derive(Debug)]
pub struct ShutdownSignal {
    rx: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    pub fn new() -> Shutdown {
        let (tx, _) = watch::channel(false);
        Shutdown { tx }
    }

    /// A signal for one more accept loop or session.
    pub fn signal(&self) -> ShutdownSignal {
        ShutdownSignal {
            rx: self.tx.subscribe(),
        }
    }

    /// Asks everyone to stop.
    pub fn begin(&self) {
        self.tx.send_replace(true);
    }

    pub fn begun(&self) -> bool {
        *self.tx.borrow()
    }

    /// Returns once every signal is dropped: the accept loops and sessions have all ended.
    pub async fn drained(&self) {
        self.tx.closed().await;
    }

    /// Accept loops and sessions still running.
    pub fn running(&self) -> usize {
        self.tx.receiver_count()
    }
}

impl ShutdownSignal {
    pub fn requested(&self) -> bool {
        *self.rx.borrow()
    }

    /// Returns once a shutdown is requested (at once if it already is). Cancel-safe.
    pub async fn wait(&mut self) {
        if self.rx.wait_for(|stop| *stop).await.is_err() {
            // The server side is gone without asking: nothing will ever ask.
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn signals_fire_and_drained_waits_for_every_holder() {
        let s = Shutdown::new();
        let mut a = s.signal();
        let b = s.signal();
        assert!(!a.requested());
        assert_eq!(s.running(), 2);
        let waiter = tokio::spawn(async move {
            a.wait().await;
            a.requested()
        });
        s.begin();
        assert!(waiter.await.expect("task"), "the waiting holder saw it");
        assert!(b.requested(), "a holder that was not waiting sees it too");
        assert!(s.signal().requested(), "a late holder sees it at once");
        let drained = tokio::time::timeout(Duration::from_millis(50), s.drained()).await;
        assert!(drained.is_err(), "one holder is left");
        drop(b);
        tokio::time::timeout(Duration::from_secs(5), s.drained())
            .await
            .expect("drained once every holder is gone");
    }
}
