//! What the queue needs to know: our name, the retry schedule, concurrency, TLS policy and an
//! optional smarthost. Filled from `[queue]` in facteur.toml by the binary.

use std::time::Duration;

use smtp::client::Timeouts;

/// How TLS is used towards recipient MX hosts (a smarthost has its own setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundTls {
    /// STARTTLS whenever offered, any certificate (RFC 7435); plaintext otherwise.
    Opportunistic,
    /// STARTTLS required with a certificate valid for the MX name; otherwise the attempt fails
    /// temporarily.
    Required,
}

/// How the connection to a smarthost is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelaySecurity {
    /// STARTTLS required (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Implicit,
}

#[derive(Clone)]
pub struct Relay {
    pub host: String,
    pub port: u16,
    pub security: RelaySecurity,
    /// Checks the relay's certificate against the public roots (on by default).
    pub verify_certificate: bool,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("verify_certificate", &self.verify_certificate)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// EHLO name and Reporting-MTA of DSNs.
    pub hostname: String,
    /// TCP port of recipient MX hosts. 25 on the Internet; tests point it at their peers.
    pub remote_port: u16,
    /// Delivery connections open at once, all destinations together.
    pub concurrency: usize,
    /// Connections open at once to one destination domain.
    pub per_domain: usize,
    /// First retry delay, doubled after each failed attempt up to `retry_max`.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// After this long in the queue, pending recipients fail and the sender gets a DSN.
    pub max_age: Duration,
    /// A "delayed" DSN is sent once after this long (RFC 3461 NOTIFY=DELAY); `None` sends none.
    pub delay_warning: Option<Duration>,
    /// How often the queue looks for due entries when nothing wakes it.
    pub poll_interval: Duration,
    pub tls: OutboundTls,
    pub relay: Option<Relay>,
    pub timeouts: Timeouts,
    /// Honour recipient domains' MTA-STS policies (RFC 8461).
    pub mta_sts: bool,
    /// HTTPS port of MTA-STS policy hosts: 443, except in tests.
    pub mta_sts_port: u16,
    /// Honour MX hosts' DNSSEC-secure TLSA records (DANE, RFC 7672).
    pub dane: bool,
    /// Certificate authorities trusted for verified TLS besides the public roots.
    pub extra_ca: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            hostname: "localhost".into(),
            remote_port: 25,
            concurrency: 32,
            per_domain: 4,
            retry_initial: Duration::from_secs(5 * 60),
            retry_max: Duration::from_secs(4 * 3600),
            max_age: Duration::from_secs(5 * 86_400),
            delay_warning: Some(Duration::from_secs(4 * 3600)),
            poll_interval: Duration::from_secs(1),
            tls: OutboundTls::Opportunistic,
            relay: None,
            timeouts: Timeouts::default(),
            mta_sts: true,
            mta_sts_port: 443,
            dane: true,
            extra_ca: Vec::new(),
        }
    }
}

impl QueueConfig {
    /// Delay before the next attempt after `attempts` failed ones (1 = the first failure).
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempts.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.retry_initial
            .checked_mul(factor)
            .map_or(self.retry_max, |d| d.min(self.retry_max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let c = QueueConfig::default();
        assert_eq!(c.backoff(1), Duration::from_secs(300));
        assert_eq!(c.backoff(2), Duration::from_secs(600));
        assert_eq!(c.backoff(4), Duration::from_secs(2400));
        assert_eq!(c.backoff(7), Duration::from_secs(4 * 3600));
        assert_eq!(c.backoff(500), Duration::from_secs(4 * 3600));
    }
}
