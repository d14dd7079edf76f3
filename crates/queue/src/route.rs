//! Where mail for a domain goes: the smarthost when one is configured, else the domain's MX hosts
//! by preference (RFC 5321 §5.1), random among equals, falling back to the domain's own addresses
//! when it has no MX; a null MX (RFC 7505) or a missing domain fails at once.

use std::net::{IpAddr, SocketAddr};

use rand::seq::SliceRandom;

use crate::dns::{MxAnswer, Resolver};

/// One host to try, with its addresses in the order to try them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The name the TLS certificate is checked against.
    pub name: String,
    pub addrs: Vec<SocketAddr>,
}

/// Why a domain cannot be routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteError {
    pub permanent: bool,
    /// RFC 3463 status.
    pub status: &'static str,
    pub reason: String,
}

/// RFC 5321 §5.1: "a sender MUST NOT use more than" a sensible number of MX hosts; we try this many.
pub const MAX_MX_HOSTS: usize = 10;

pub async fn mx_targets(
    resolver: &dyn Resolver,
    domain: &str,
    port: u16,
) -> Result<Vec<Target>, RouteError> {
    // RFC 5321 §4.1.3: a domain literal names the host directly.
    if let Some(lit) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        let ip = lit.strip_prefix("IPv6:").unwrap_or(lit);
        return match ip.parse::<IpAddr>() {
            Ok(ip) => Ok(vec![Target {
                name: ip.to_string(),
                addrs: vec![SocketAddr::new(ip, port)],
            }]),
            Err(_) => Err(RouteError {
                permanent: true,
                status: "5.1.2",
                reason: format!("bad address literal {domain}"),
            }),
        };
    }
    let answer = resolver.mx(domain).await.map_err(|e| RouteError {
        permanent: false,
        status: "4.4.3",
        reason: format!("MX lookup for {domain} failed: {e}"),
    })?;
    let hosts: Vec<String> = match answer {
        MxAnswer::NullMx => {
            return Err(RouteError {
                permanent: true,
                status: "5.1.10",
                reason: format!("{domain} does not accept mail (null MX, RFC 7505)"),
            });
        }
        MxAnswer::NoDomain => {
            return Err(RouteError {
                permanent: true,
                status: "5.1.2",
                reason: format!("domain {domain} does not exist"),
            });
        }
        MxAnswer::NoMx => vec![domain.to_string()],
        MxAnswer::Hosts(mut list) => {
            list.sort_by_key(|(pref, _)| *pref);
            // Shuffle within each preference level (RFC 5321 §5.1: spread load among equals).
            let mut rng = rand::rng();
            let mut out = Vec::with_capacity(list.len());
            let mut i = 0;
            while i < list.len() {
                let pref = list[i].0;
                let mut j = i;
                while j < list.len() && list[j].0 == pref {
                    j += 1;
                }
                let mut level: Vec<String> = list[i..j].iter().map(|(_, h)| h.clone()).collect();
                level.shuffle(&mut rng);
                out.extend(level);
                i = j;
            }
            out.truncate(MAX_MX_HOSTS);
            out
        }
    };
    let mut targets = Vec::new();
    let mut last_error = None;
    for host in hosts {
        match resolver.ips(&host).await {
            Ok(ips) if !ips.is_empty() => targets.push(Target {
                name: host.trim_end_matches('.').to_string(),
                addrs: ips
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, port))
                    .collect(),
            }),
            Ok(_) => last_error = Some((true, format!("{host} has no address"))),
            Err(e) => last_error = Some((false, format!("{host}: {e}"))),
        }
    }
    if targets.is_empty() {
        let (permanent, reason) =
            last_error.unwrap_or((true, format!("no mail host for {domain}")));
        return Err(RouteError {
            permanent,
            status: if permanent { "5.4.4" } else { "4.4.3" },
            reason,
        });
    }
    Ok(targets)
}

/// The smarthost as a target (a literal address or a name to resolve).
pub async fn relay_target(
    resolver: &dyn Resolver,
    host: &str,
    port: u16,
) -> Result<Target, RouteError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Target {
            name: host.to_string(),
            addrs: vec![SocketAddr::new(ip, port)],
        });
    }
    match resolver.ips(host).await {
        Ok(ips) if !ips.is_empty() => Ok(Target {
            name: host.to_string(),
            addrs: ips
                .into_iter()
                .map(|ip| SocketAddr::new(ip, port))
                .collect(),
        }),
        // A misconfigured or unreachable relay defers mail; it never bounces it.
        Ok(_) => Err(RouteError {
            permanent: false,
            status: "4.4.4",
            reason: format!("relay {host} has no address"),
        }),
        Err(e) => Err(RouteError {
            permanent: false,
            status: "4.4.3",
            reason: format!("relay {host}: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::StaticResolver;

    fn resolver() -> StaticResolver {
        let mut r = StaticResolver::default();
        r.mx.insert(
            "a.test".into(),
            MxAnswer::Hosts(vec![(20, "mx2.a.test".into()), (10, "mx1.a.test".into())]),
        );
        r.mx.insert("null.test".into(), MxAnswer::NullMx);
        r.hosts
            .insert("mx1.a.test".into(), vec!["127.0.0.2".parse().unwrap()]);
        r.hosts
            .insert("mx2.a.test".into(), vec!["::1".parse().unwrap()]);
        r.hosts
            .insert("plain.test".into(), vec!["127.0.0.3".parse().unwrap()]);
        r.failing.push("broken.test".into());
        r
    }

    #[tokio::test]
    async fn mx_by_preference() {
        let t = mx_targets(&resolver(), "a.test", 2525).await.unwrap();
        assert_eq!(t[0].name, "mx1.a.test");
        assert_eq!(t[0].addrs, vec!["127.0.0.2:2525".parse().unwrap()]);
        assert_eq!(t[1].addrs, vec!["[::1]:2525".parse().unwrap()]);
    }

    #[tokio::test]
    async fn implicit_mx_null_mx_and_missing_domain() {
        let r = resolver();
        let t = mx_targets(&r, "plain.test", 25).await.unwrap();
        assert_eq!(t[0].name, "plain.test");
        let e = mx_targets(&r, "null.test", 25).await.unwrap_err();
        assert!(e.permanent);
        assert_eq!(e.status, "5.1.10");
        let e = mx_targets(&r, "nowhere.test", 25).await.unwrap_err();
        assert!(e.permanent);
        let e = mx_targets(&r, "broken.test", 25).await.unwrap_err();
        assert!(!e.permanent, "SERVFAIL is retried");
        let t = mx_targets(&r, "[127.0.0.9]", 25).await.unwrap();
        assert_eq!(t[0].addrs, vec!["127.0.0.9:25".parse().unwrap()]);
    }

    #[tokio::test]
    async fn equal_preferences_are_shuffled() {
        let mut r = StaticResolver::default();
        let hosts: Vec<(u16, String)> = (0..6).map(|i| (10, format!("mx{i}.t"))).collect();
        r.mx.insert("t".into(), MxAnswer::Hosts(hosts.clone()));
        for (_, h) in &hosts {
            r.hosts
                .insert(h.clone(), vec!["127.0.0.1".parse().unwrap()]);
        }
        let mut firsts = std::collections::HashSet::new();
        for _ in 0..50 {
            firsts.insert(mx_targets(&r, "t", 25).await.unwrap()[0].name.clone());
        }
        assert!(firsts.len() > 1, "always the same first host: {firsts:?}");
    }
}
