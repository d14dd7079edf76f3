//! The connection checks (crate `smtp`, module `conn`) over the server's shared resolver and
//! store: DNS lists, reverse DNS and HELO sanity, rate limits and greylisting on the MX port.

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use mailauth::Authenticator;
use smtp::conn::{AAnswer, ConnChecks, ConnResolver, LocalNames};
use store::DynStore;

/// Lookups through the resolver SPF, DKIM and DMARC use (one cache, one configuration).
struct SharedResolver(Authenticator);

#[async_trait]
impl ConnResolver for SharedResolver {
    async fn a(&self, name: &str) -> Result<AAnswer, String> {
        self.0
            .a_ttl(name)
            .await
            .map(|a| AAnswer {
                addrs: a.addrs,
                ttl: a.ttl,
            })
            .map_err(|e| e.to_string())
    }

    async fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, String> {
        self.0.ptr(ip).await.map_err(|e| e.to_string())
    }

    async fn ips(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        self.0.ips(host).await.map_err(|e| e.to_string())
    }
}

/// Our host name, primary domain and the domains of the directory.
struct OurNames {
    hostname: String,
    primary: String,
    store: DynStore,
}

#[async_trait]
impl LocalNames for OurNames {
    async fn is_ours(&self, name: &str) -> bool {
        if name.eq_ignore_ascii_case(&self.hostname) || name.eq_ignore_ascii_case(&self.primary) {
            return true;
        }
        matches!(
            self.store.domain_get(&name.to_ascii_lowercase()).await,
            Ok(Some(_))
        )
    }
}

/// The connection check stage of the MX listener, from `[connection]`, `[dnsbl]`, `[greylist]`.
pub fn check(
    cfg: &crate::config::Config,
    resolver: Authenticator,
    store: DynStore,
) -> Arc<ConnChecks> {
    Arc::new(ConnChecks::new(
        cfg.conn_checks(),
        Arc::new(SharedResolver(resolver)),
        Arc::new(OurNames {
            hostname: cfg.server.hostname.clone(),
            primary: cfg.server.primary_domain.clone(),
            store: store.clone(),
        }),
        Some(store),
    ))
}
