//! Connection and sender checks on the MX port, as one [`Check`]: DNS blocklists and allowlists
//! (RFC 5782) for the client address, the HELO name and the sender's domain; forward-confirmed
//! reverse DNS; HELO sanity; per-client rate limits; and optional greylisting (RFC 6647).
//!
//! Submission and LMTP are never checked, nor clients in the trusted networks. Lookups go
//! through the server's shared resolver (behind [`ConnResolver`], implemented by the binary)
//! within a time budget per stage: a lookup that runs out of time, or fails, gives no verdict
//! (it is logged) and never refuses mail.

pub mod dnsbl;
pub mod greylist;
pub mod helo;
pub mod rate;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ipnet::IpNet;

use crate::backend::{Mode, Recipient};
use crate::pipeline::{Check, CheckError, CheckResult, ConnInfo, Reason, Verdict};
use dnsbl::{Cache, Listing, Zone, ZoneAction, ZoneKind};

/// Name of this check in logs and reasons.
pub const CHECK: &str = "connection";
/// PTR names of a client looked up forward at most (RFC 7208 §4.6.4 uses the same bound).
pub const MAX_PTR_NAMES: usize = 10;

/// An A lookup's answer: addresses (empty for NXDOMAIN or no data) and the smallest TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AAnswer {
    pub addrs: Vec<Ipv4Addr>,
    pub ttl: Option<u32>,
}

/// The DNS lookups these checks need; the binary implements it over its shared resolver.
/// Errors are temporary failures (timeouts, SERVFAIL), described for the log.
#[async_trait]
pub trait ConnResolver: Send + Sync {
    async fn a(&self, name: &str) -> Result<AAnswer, String>;
    async fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, String>;
    async fn ips(&self, host: &str) -> Result<Vec<IpAddr>, String>;
}

/// Whether a name is one of ours (our host name or a local domain), for the HELO check.
#[async_trait]
pub trait LocalNames: Send + Sync {
    async fn is_ours(&self, name: &str) -> bool;
}

/// What a problem found does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    Off,
    Score(f64),
    Reject,
}

#[derive(Debug, Clone)]
pub struct ConnConfig {
    /// Clients here skip every check of this module.
    pub trusted: Vec<IpNet>,
    /// Time for all DNS lookups of one stage together.
    pub dns_budget: Duration,
    pub zones: Vec<Zone>,
    pub cache_entries: usize,
    pub cache_max_ttl: Duration,
    pub cache_negative_ttl: Duration,
    /// Score of a client whose reverse DNS does not confirm (0: not looked up).
    pub fcrdns_score: f64,
    /// An address literal that is not the client's, or our own name.
    pub helo_forged: Action,
    pub helo_not_fqdn: Action,
    pub rate: rate::RateConfig,
    pub greylist: Option<greylist::GreylistConfig>,
}

impl Default for ConnConfig {
    fn default() -> Self {
        ConnConfig {
            trusted: vec![],
            dns_budget: Duration::from_secs(2),
            zones: vec![],
            cache_entries: 10_000,
            cache_max_ttl: Duration::from_secs(3600),
            cache_negative_ttl: Duration::from_secs(300),
            fcrdns_score: 0.0,
            helo_forged: Action::Off,
            helo_not_fqdn: Action::Off,
            rate: rate::RateConfig {
                window: Duration::from_secs(3600),
                messages: 0,
                recipients: 0,
                max_clients: rate::DEFAULT_MAX_CLIENTS,
            },
            greylist: None,
        }
    }
}

pub struct ConnChecks {
    cfg: ConnConfig,
    dns: Arc<dyn ConnResolver>,
    names: Arc<dyn LocalNames>,
    cache: Cache,
    rates: rate::RateLimiter,
    greylist: Option<greylist::Greylist>,
}

/// One zone's answer for one query.
struct ZoneResult<'z> {
    zone: &'z Zone,
    query: String,
    listing: Option<Listing>,
}

impl ConnChecks {
    pub fn new(
        cfg: ConnConfig,
        dns: Arc<dyn ConnResolver>,
        names: Arc<dyn LocalNames>,
        store: Option<store::DynStore>,
    ) -> ConnChecks {
        let greylist = match (&cfg.greylist, store) {
            (Some(g), Some(store)) => Some(greylist::Greylist::new(g.clone(), store)),
            _ => None,
        };
        ConnChecks {
            cache: Cache::new(cfg.cache_entries, cfg.cache_max_ttl, cfg.cache_negative_ttl),
            rates: rate::RateLimiter::new(cfg.rate),
            cfg,
            dns,
            names,
            greylist,
        }
    }

    /// Whether the client is checked at all, and its address.
    fn checked(&self, conn: &ConnInfo<'_>) -> Option<IpAddr> {
        if conn.mode != Mode::Mx || conn.auth.is_some() {
            return None;
        }
        let ip = helo::canonical(conn.peer?);
        (!self.cfg.trusted.iter().any(|n| n.contains(&ip))).then_some(ip)
    }

    /// Looks up `name` (cache first) before `deadline`. `None`: no answer in time, or a failure.
    async fn lookup(&self, name: &str, deadline: tokio::time::Instant) -> Option<Vec<Ipv4Addr>> {
        if let Some(a) = self.cache.get(name, Instant::now()) {
            return Some(a);
        }
        match tokio::time::timeout_at(deadline, self.dns.a(name)).await {
            Ok(Ok(answer)) => {
                self.cache
                    .put(name, answer.addrs.clone(), answer.ttl, Instant::now());
                Some(answer.addrs)
            }
            Ok(Err(e)) => {
                tracing::info!(query = name, error = %e, "DNS list lookup failed: no verdict");
                None
            }
            Err(_) => {
                tracing::info!(query = name, "DNS list lookup out of time: no verdict");
                None
            }
        }
    }

    /// Queries every zone of `kind` for the client address or a domain, all at once.
    async fn query_zones(
        &self,
        subject: Subject<'_>,
        only_allow: bool,
        deadline: tokio::time::Instant,
    ) -> Vec<ZoneResult<'_>> {
        let wanted =
            self.cfg.zones.iter().filter(|z| {
                z.kind == subject.kind() && (!only_allow || z.action == ZoneAction::Allow)
            });
        let queries: Vec<(&Zone, String)> = wanted
            .filter_map(|z| {
                let q = match subject {
                    Subject::Ip(ip) => Some(dnsbl::ip_query(ip, &z.zone)),
                    Subject::Domain(d) => dnsbl::domain_query(d, &z.zone),
                };
                q.map(|q| (z, q))
            })
            .collect();
        let lookups = queries.iter().map(|(_, q)| self.lookup(q, deadline));
        let answers = join_all(lookups).await;
        queries
            .into_iter()
            .zip(answers)
            .map(|((zone, query), a)| {
                let listing = a.map(|a| dnsbl::interpret(zone, &a));
                if let Some(Listing::Refused(codes)) = &listing {
                    tracing::warn!(
                        zone = zone.zone,
                        query,
                        answers = ?codes,
                        "DNS list refused the query or answered outside 127.0.0.0/8: no verdict"
                    );
                }
                ZoneResult {
                    zone,
                    query,
                    listing,
                }
            })
            .collect()
    }

    /// Scores (and refusals) from zone results. A listing on an allowlist turns reject actions
    /// into scores.
    fn judge_zones(
        &self,
        results: &[ZoneResult<'_>],
        what: &str,
        allowed: bool,
    ) -> Result<Verdict, CheckError> {
        let allowed = allowed
            || results.iter().any(|r| {
                r.zone.action == ZoneAction::Allow && matches!(r.listing, Some(Listing::Listed(_)))
            });
        let mut v = Verdict::accept();
        for r in results {
            let Some(Listing::Listed(codes)) = &r.listing else {
                continue;
            };
            let detail = format!(
                "{what} listed by {} ({})",
                r.zone.zone,
                codes
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            if r.zone.action == ZoneAction::Reject && !allowed {
                return Err(CheckError::new(
                    CHECK,
                    554,
                    "5.7.1",
                    format!("Service refused: {what} is listed by {}", r.zone.zone),
                    format!("{detail}; query {}", r.query),
                ));
            }
            add(&mut v, symbol(r.zone), r.zone.score, detail);
        }
        Ok(v)
    }

    /// Whether an allowlist zone lists the client (cached after the connection stage).
    async fn dnswl(&self, ip: IpAddr) -> bool {
        if !self.cfg.zones.iter().any(|z| z.action == ZoneAction::Allow) {
            return false;
        }
        let deadline = tokio::time::Instant::now() + self.cfg.dns_budget;
        self.query_zones(Subject::Ip(ip), true, deadline)
            .await
            .iter()
            .any(|r| matches!(r.listing, Some(Listing::Listed(_))))
    }

    /// Forward-confirmed reverse DNS: a PTR name of the client resolves back to it. `None`
    /// when the lookups failed or ran out of time.
    async fn fcrdns(&self, ip: IpAddr, deadline: tokio::time::Instant) -> Option<bool> {
        let names = match tokio::time::timeout_at(deadline, self.dns.ptr(ip)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                tracing::info!(peer = %ip, error = %e, "PTR lookup failed: no verdict");
                return None;
            }
            Err(_) => {
                tracing::info!(peer = %ip, "PTR lookup out of time: no verdict");
                return None;
            }
        };
        let names: Vec<String> = names.into_iter().take(MAX_PTR_NAMES).collect();
        let forward = join_all(
            names
                .iter()
                .map(|n| tokio::time::timeout_at(deadline, self.dns.ips(n))),
        )
        .await;
        let mut failed = false;
        for r in forward {
            match r {
                Ok(Ok(addrs)) if addrs.iter().any(|a| helo::canonical(*a) == ip) => {
                    return Some(true);
                }
                Ok(Ok(_)) => {}
                _ => failed = true,
            }
        }
        (!failed).then_some(false)
    }
}

#[derive(Clone, Copy)]
enum Subject<'a> {
    Ip(IpAddr),
    Domain(&'a str),
}

impl Subject<'_> {
    fn kind(&self) -> ZoneKind {
        match self {
            Subject::Ip(_) => ZoneKind::Ip,
            Subject::Domain(_) => ZoneKind::Domain,
        }
    }
}

/// Runs futures concurrently and returns their outputs in order.
async fn join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in pinned.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

fn symbol(z: &Zone) -> String {
    let kind = match (z.kind, z.action) {
        (_, ZoneAction::Allow) => "DNSWL",
        (ZoneKind::Ip, _) => "DNSBL",
        (ZoneKind::Domain, _) => "RHSBL",
    };
    format!("{kind}:{}", z.zone)
}

fn add(v: &mut Verdict, name: impl Into<String>, score: f64, detail: String) {
    v.score += score;
    v.reasons.push(Reason {
        check: CHECK,
        name: name.into(),
        score,
        detail,
    });
}

fn apply(
    v: &mut Verdict,
    action: Action,
    problem: helo::HeloProblem,
    detail: String,
) -> Result<(), CheckError> {
    match action {
        Action::Off => Ok(()),
        Action::Score(s) => {
            add(v, problem.symbol(), s, detail);
            Ok(())
        }
        Action::Reject => Err(CheckError::new(
            CHECK,
            550,
            "5.7.1",
            "HELO/EHLO name refused",
            detail,
        )),
    }
}

#[async_trait]
impl Check for ConnChecks {
    fn name(&self) -> &'static str {
        CHECK
    }

    async fn connection(&self, conn: &ConnInfo<'_>) -> CheckResult {
        let Some(ip) = self.checked(conn) else {
            return Ok(Verdict::accept());
        };
        let deadline = tokio::time::Instant::now() + self.cfg.dns_budget;
        let zones = self.query_zones(Subject::Ip(ip), false, deadline);
        let fcrdns = async {
            if self.cfg.fcrdns_score != 0.0 {
                self.fcrdns(ip, deadline).await
            } else {
                Some(true)
            }
        };
        let (results, confirmed) = tokio::join!(zones, fcrdns);
        let mut v = self.judge_zones(&results, "client address", false)?;
        if confirmed == Some(false) {
            add(
                &mut v,
                "RDNS_NOT_CONFIRMED",
                self.cfg.fcrdns_score,
                format!("no reverse DNS name of {ip} resolves back to it"),
            );
        }
        Ok(v)
    }

    async fn helo(&self, conn: &ConnInfo<'_>) -> CheckResult {
        let Some(ip) = self.checked(conn) else {
            return Ok(Verdict::accept());
        };
        let mut v = Verdict::accept();
        let parsed = helo::parse(conn.helo);
        let ours = match &parsed {
            helo::Helo::Fqdn(n) => self.names.is_ours(n).await,
            _ => false,
        };
        if let Some(problem) = helo::judge(conn.helo, ip, |_| ours) {
            let action = match problem {
                helo::HeloProblem::NotFqdn => self.cfg.helo_not_fqdn,
                _ => self.cfg.helo_forged,
            };
            let shown: String = conn.helo.chars().take(helo::MAX_HELO).collect();
            apply(&mut v, action, problem, format!("HELO {shown:?} from {ip}"))?;
        }
        if let helo::Helo::Fqdn(name) = &parsed
            && !ours
        {
            let deadline = tokio::time::Instant::now() + self.cfg.dns_budget;
            let results = self
                .query_zones(Subject::Domain(name), false, deadline)
                .await;
            let allowed = self.dnswl(ip).await;
            let z = self.judge_zones(&results, "HELO name", allowed)?;
            v.score += z.score;
            v.reasons.extend(z.reasons);
        }
        Ok(v)
    }

    async fn sender(&self, conn: &ConnInfo<'_>, from: &str) -> CheckResult {
        let Some(ip) = self.checked(conn) else {
            return Ok(Verdict::accept());
        };
        if !self
            .rates
            .allow(ip, rate::Counter::Messages, Instant::now())
        {
            return Err(CheckError::new(
                CHECK,
                451,
                "4.7.1",
                "Too many messages from your address, try again later",
                format!("{ip} over {} messages per window", self.cfg.rate.messages),
            ));
        }
        let Some((_, domain)) = from.rsplit_once('@') else {
            return Ok(Verdict::accept());
        };
        if !self.cfg.zones.iter().any(|z| z.kind == ZoneKind::Domain) {
            return Ok(Verdict::accept());
        }
        let deadline = tokio::time::Instant::now() + self.cfg.dns_budget;
        let results = self
            .query_zones(Subject::Domain(domain), false, deadline)
            .await;
        let allowed = self.dnswl(ip).await;
        self.judge_zones(&results, "sender domain", allowed)
    }

    async fn recipient(&self, conn: &ConnInfo<'_>, from: &str, rcpt: &Recipient) -> CheckResult {
        let Some(ip) = self.checked(conn) else {
            return Ok(Verdict::accept());
        };
        if !self
            .rates
            .allow(ip, rate::Counter::Recipients, Instant::now())
        {
            return Err(CheckError::new(
                CHECK,
                451,
                "4.7.1",
                "Too many recipients from your address, try again later",
                format!(
                    "{ip} over {} recipients per window",
                    self.cfg.rate.recipients
                ),
            ));
        }
        let Some(g) = &self.greylist else {
            return Ok(Verdict::accept());
        };
        if g.skips(ip) || self.dnswl(ip).await {
            return Ok(Verdict::accept());
        }
        g.check(ip, from, &rcpt.address).await
    }
}

#[cfg(test)]
mod tests;
