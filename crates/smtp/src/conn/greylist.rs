//! Greylisting (RFC 6647): the first attempt of a (client network, sender, recipient) triplet
//! gets `451 4.7.1`; a retry after the delay passes, and a network whose retries passed is
//! whitelisted. State lives in the store (shared by processes and nodes); a store failure lets
//! the mail through (logged), as greylisting only ever delays.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use store::{DynStore, GreylistDecision, GreylistPolicy};

use super::CHECK;
use crate::pipeline::{CheckError, CheckResult, Verdict};

/// Expired records are purged at most this often (by the check that finds the time has come).
const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// Longest sender or recipient address kept (RFC 5321 §4.5.3.1.3: a path is at most 256).
const MAX_ADDRESS: usize = 256;

#[derive(Debug, Clone)]
pub struct GreylistConfig {
    pub policy: GreylistPolicy,
    /// Client networks never greylisted (besides the trusted networks and DNSWL-listed clients).
    pub allow: Vec<IpNet>,
    /// Prefix lengths of a client network: IPv4 /24 and IPv6 /64 by default (RFC 6647 §4.1:
    /// a sender's retries often come from another address of the same pool).
    pub v4_prefix: u8,
    pub v6_prefix: u8,
}

pub struct Greylist {
    cfg: GreylistConfig,
    store: DynStore,
    last_purge: Mutex<Option<Instant>>,
}

/// The network of a client, in text form (`192.0.2.0/24`, `2001:db8::/64`).
pub fn network(ip: IpAddr, v4_prefix: u8, v6_prefix: u8) -> String {
    let prefix = match ip {
        IpAddr::V4(_) => v4_prefix.min(32),
        IpAddr::V6(_) => v6_prefix.min(128),
    };
    match IpNet::new(ip, prefix) {
        Ok(n) => n.trunc().to_string(),
        Err(_) => ip.to_string(),
    }
}

/// Lower case, at most [`MAX_ADDRESS`] bytes (on a character boundary).
fn key(address: &str) -> String {
    let mut end = address.len().min(MAX_ADDRESS);
    while !address.is_char_boundary(end) {
        end -= 1;
    }
    address[..end].to_lowercase()
}

impl Greylist {
    pub fn new(cfg: GreylistConfig, store: DynStore) -> Greylist {
        Greylist {
            cfg,
            store,
            last_purge: Mutex::new(None),
        }
    }

    pub fn skips(&self, ip: IpAddr) -> bool {
        self.cfg.allow.iter().any(|n| n.contains(&ip))
    }

    pub async fn check(&self, ip: IpAddr, from: &str, rcpt: &str) -> CheckResult {
        let net = network(ip, self.cfg.v4_prefix, self.cfg.v6_prefix);
        let (sender, recipient) = (key(from), key(rcpt));
        let now = store::now_unix();
        self.purge_if_due(now);
        match self
            .store
            .greylist_check(&net, &sender, &recipient, now, &self.cfg.policy)
            .await
        {
            Ok(GreylistDecision::Deferred { retry_in }) => Err(CheckError::new(
                CHECK,
                451,
                "4.7.1",
                "Greylisted, please try again later",
                format!(
                    "greylisted {net} <{sender}> -> <{recipient}>, retry in {retry_in}s or later"
                ),
            )),
            Ok(d) => {
                tracing::debug!(network = net, decision = ?d, "greylisting passed");
                Ok(Verdict::accept())
            }
            Err(e) => {
                tracing::warn!(error = %e, "greylisting store failure: accepted without it");
                Ok(Verdict::accept())
            }
        }
    }

    fn purge_if_due(&self, now: i64) {
        {
            let mut last = self.last_purge.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < PURGE_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        let (store, policy) = (self.store.clone(), self.cfg.policy);
        tokio::spawn(async move {
            match store.greylist_purge(now, &policy).await {
                Ok(n) => tracing::debug!(removed = n, "greylisting records expired"),
                Err(e) => tracing::warn!(error = %e, "greylisting purge failed"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_and_keys() {
        assert_eq!(
            network("192.0.2.77".parse().unwrap(), 24, 64),
            "192.0.2.0/24"
        );
        assert_eq!(
            network("2001:db8:1:2:3:4:5:6".parse().unwrap(), 24, 64),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            network("192.0.2.77".parse().unwrap(), 32, 64),
            "192.0.2.77/32"
        );
        assert_eq!(key("A@B.Test"), "a@b.test");
        let long = "é".repeat(200);
        assert!(key(&long).len() <= MAX_ADDRESS);
    }
}
