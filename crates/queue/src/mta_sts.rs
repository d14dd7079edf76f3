//! MTA-STS (RFC 8461): a recipient domain that publishes `_mta-sts.<domain>` TXT and a policy at
//! `https://mta-sts.<domain>/.well-known/mta-sts.txt` tells senders which MX hosts are genuine and
//! that TLS with a valid certificate is required. With `mode: enforce` we deliver only to matching
//! MX hosts over verified TLS (otherwise the attempt is deferred); `testing` only logs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::dns::Resolver;

/// RFC 8461 §3.3: senders should not follow redirects and limit the policy's size.
pub const MAX_POLICY_BYTES: usize = 64 * 1024;
/// Bound on the whole fetch (connect, TLS, request, response).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// RFC 8461 §3.2: max_age is at most 31557600 (about a year).
pub const MAX_AGE_LIMIT: u64 = 31_557_600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Testing,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    /// MX patterns: a host name, or `*.` and a domain (one label).
    pub mx: Vec<String>,
    pub max_age: u64,
}

/// Parses a policy (RFC 8461 §3.2): `key: value` lines, CRLF or LF.
pub fn parse(text: &str) -> Result<Policy, String> {
    let mut version = None;
    let mut mode = None;
    let mut mx = Vec::new();
    let mut max_age = None;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            return Err(format!("bad policy line {line:?}"));
        };
        let v = v.trim();
        match k.trim() {
            "version" => version = Some(v.to_string()),
            "mode" => {
                mode = Some(match v {
                    "enforce" => Mode::Enforce,
                    "testing" => Mode::Testing,
                    "none" => Mode::None,
                    other => return Err(format!("unknown mode {other:?}")),
                })
            }
            "mx" => mx.push(v.trim_end_matches('.').to_ascii_lowercase()),
            "max_age" => {
                max_age = Some(
                    v.parse::<u64>()
                        .map_err(|_| format!("bad max_age {v:?}"))?
                        .min(MAX_AGE_LIMIT),
                )
            }
            // §3.2: unknown keys are ignored.
            _ => {}
        }
    }
    if version.as_deref() != Some("STSv1") {
        return Err("not an STSv1 policy".into());
    }
    let mode = mode.ok_or("no mode")?;
    let max_age = max_age.ok_or("no max_age")?;
    if mode != Mode::None && mx.is_empty() {
        return Err("no mx patterns".into());
    }
    Ok(Policy { mode, mx, max_age })
}

impl Policy {
    /// §4.1: a pattern matches the host exactly, or `*.domain` matches one label more.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx.iter().any(|p| match p.strip_prefix("*.") {
            Some(suffix) => host
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
            None => *p == host,
        })
    }
}

struct Cached {
    id: String,
    policy: Option<Policy>,
    expires: i64,
}

/// Looks up and caches the policies of recipient domains.
pub struct MtaSts {
    resolver: Arc<dyn Resolver>,
    tls: Arc<rustls::ClientConfig>,
    /// 443, except in tests.
    port: u16,
    cache: Mutex<HashMap<String, Cached>>,
}

fn txt_id(records: &[String]) -> Option<String> {
    // §3.1: exactly one record starting with v=STSv1, with an id.
    let sts: Vec<&String> = records
        .iter()
        .filter(|r| r.trim_start().starts_with("v=STSv1"))
        .collect();
    if sts.len() != 1 {
        return None;
    }
    sts[0]
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| k.trim() == "id")
        .map(|(_, v)| v.trim().to_string())
        .filter(|id| !id.is_empty())
}

impl MtaSts {
    pub fn new(resolver: Arc<dyn Resolver>, tls: Arc<rustls::ClientConfig>, port: u16) -> MtaSts {
        MtaSts {
            resolver,
            tls,
            port,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The policy in force for `domain`, if it publishes one. A policy that cannot be fetched while
    /// a cached one is still valid keeps the cached one (§5.1: an attacker who blocks the fetch must
    /// not switch enforcement off).
    pub async fn policy(&self, domain: &str) -> Option<Policy> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let now = store::now_unix();
        let txt = self.resolver.txt(&format!("_mta-sts.{domain}")).await;
        let id = match &txt {
            Ok(records) => txt_id(records),
            Err(_) => None,
        };
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = cache.get(&domain)
                && c.expires > now
                && (id.is_none() || id.as_deref() == Some(c.id.as_str()))
            {
                return c.policy.clone();
            }
        }
        let id = id?;
        match self.fetch(&domain).await {
            Ok(policy) => {
                let expires = now + policy.max_age as i64;
                tracing::info!(domain, mode = ?policy.mode, mx = %policy.mx.join(" "), "MTA-STS policy fetched");
                self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(
                    domain.clone(),
                    Cached {
                        id,
                        policy: Some(policy.clone()),
                        expires,
                    },
                );
                Some(policy)
            }
            Err(e) => {
                tracing::warn!(domain, error = %e, "MTA-STS policy fetch failed");
                let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                cache
                    .get(&domain)
                    .filter(|c| c.expires > now)
                    .and_then(|c| c.policy.clone())
            }
        }
    }

    async fn fetch(&self, domain: &str) -> Result<Policy, String> {
        let host = format!("mta-sts.{domain}");
        tokio::time::timeout(FETCH_TIMEOUT, self.fetch_inner(&host))
            .await
            .map_err(|_| format!("{host}: timed out"))?
    }

    async fn fetch_inner(&self, host: &str) -> Result<Policy, String> {
        let ips = self.resolver.ips(host).await.map_err(|e| e.to_string())?;
        let ip = ips
            .first()
            .ok_or_else(|| format!("{host} has no address"))?;
        let tcp = TcpStream::connect(SocketAddr::new(*ip, self.port))
            .await
            .map_err(|e| format!("{host}: {e}"))?;
        let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
        // §3.3: the policy host's certificate must be valid for its name (PKIX).
        let mut tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("{host}: TLS: {e}"))?;
        // HTTP/1.0 keeps the response unchunked; §3.3 forbids following redirects.
        let req = format!(
            "GET /.well-known/mta-sts.txt HTTP/1.0\r\nHost: {host}\r\nUser-Agent: Facteur\r\n\r\n"
        );
        tls.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = match tls.read(&mut chunk).await {
                Ok(n) => n,
                // Servers often close without close_notify after an HTTP/1.0 response.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                Err(e) => return Err(e.to_string()),
            };
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.len() > MAX_POLICY_BYTES + 8192 {
                return Err("policy too large".into());
            }
        }
        let text = String::from_utf8_lossy(&buf);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .or_else(|| text.split_once("\n\n"))
            .ok_or("no HTTP header")?;
        let status = head.lines().next().unwrap_or_default();
        if status.split_whitespace().nth(1) != Some("200") {
            return Err(format!("HTTP status {status:?}"));
        }
        parse(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_rfc_example() {
        let p = parse("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n").unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.max_age, 604_800);
        assert!(p.allows("mail.example.com"));
        assert!(p.allows("MAIL.example.com."));
        assert!(p.allows("mx1.example.net"));
        assert!(!p.allows("a.b.example.net"), "wildcard covers one label");
        assert!(!p.allows("example.net"));
        assert!(!p.allows("evil.example.com"));
    }

    #[test]
    fn refuses_bad_policies() {
        assert!(parse("version: STSv2\nmode: enforce\nmx: a\nmax_age: 1\n").is_err());
        assert!(parse("version: STSv1\nmode: enforce\nmax_age: 1\n").is_err());
        assert!(parse("version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n").is_err());
        assert!(parse("version: STSv1\nmode: none\nmax_age: 1\n").is_ok());
        let p = parse("version: STSv1\nmode: testing\nmx: a\nmax_age: 99999999999\nextra: x\n")
            .unwrap();
        assert_eq!(p.max_age, MAX_AGE_LIMIT);
    }

    #[test]
    fn txt_record_needs_exactly_one_with_an_id() {
        assert_eq!(
            txt_id(&["v=STSv1; id=20240101".into()]).as_deref(),
            Some("20240101")
        );
        assert_eq!(
            txt_id(&["v=STSv1; id=1".into(), "v=STSv1; id=2".into()]),
            None
        );
        assert_eq!(txt_id(&["v=spf1 -all".into()]), None);
        assert_eq!(txt_id(&["v=STSv1;".into()]), None);
    }
}
