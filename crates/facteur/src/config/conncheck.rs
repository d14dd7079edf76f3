//! `[connection]`, `[dnsbl]` and `[greylist]`: the checks of MX clients before their message
//! (crate `smtp`, module `conn`).

use serde::{Deserialize, Serialize};

use super::{Config, Invalid, invalid};

/// Longest DNS budget: past it, a client waits on us longer than on most MTAs' command timeout.
const MAX_DNS_BUDGET_MS: u64 = 10_000;
/// Largest absolute score of one check (scores are summed against thresholds near 5-15).
const MAX_SCORE: f64 = 1000.0;
/// Most DNS lists configured: each costs a lookup per connection.
const MAX_ZONES: usize = 32;
/// Most answers cached.
const MAX_CACHE_ENTRIES: usize = 10_000_000;

/// A score added by a check (positive: more likely spam). Equal when bitwise equal: validation
/// refuses NaN and infinities, so this is a proper equivalence.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Score(pub f64);

impl Eq for Score {}

/// How a suspicious HELO is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeloAction {
    Off,
    Score,
    Reject,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionSection {
    /// Networks whose clients skip every connection check (and greylisting).
    pub trusted_networks: Vec<String>,
    /// Time for the DNS lookups of one check stage together.
    pub dns_budget_ms: u64,
    /// Score of a client without forward-confirmed reverse DNS (0: not looked up).
    pub fcrdns_score: Score,
    /// A HELO that is an address literal other than the client's, or our own name.
    pub helo_forged: HeloAction,
    pub helo_forged_score: Score,
    /// A HELO that is neither a fully qualified domain name nor an address literal.
    pub helo_not_fqdn: HeloAction,
    pub helo_not_fqdn_score: Score,
    pub rate_window_secs: u64,
    /// MAIL commands per client (IPv4 address or IPv6 /64) and window; 0: no limit.
    pub rate_messages: u32,
    /// Accepted recipients per client and window; 0: no limit.
    pub rate_recipients: u32,
}

impl Default for ConnectionSection {
    fn default() -> Self {
        ConnectionSection {
            trusted_networks: vec!["127.0.0.0/8".into(), "::1/128".into()],
            dns_budget_ms: 2000,
            fcrdns_score: Score(1.0),
            helo_forged: HeloAction::Reject,
            helo_forged_score: Score(3.0),
            helo_not_fqdn: HeloAction::Score,
            helo_not_fqdn_score: Score(1.0),
            rate_window_secs: 3600,
            rate_messages: 0,
            rate_recipients: 0,
        }
    }
}

/// What a DNS list lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZoneType {
    Ip,
    Domain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZoneAction {
    Score,
    Reject,
    Allow,
}

/// One DNS blocklist or allowlist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    pub zone: String,
    #[serde(rename = "type", default = "default_zone_type")]
    pub kind: ZoneType,
    #[serde(default = "default_zone_action")]
    pub action: ZoneAction,
    #[serde(default = "default_zone_score")]
    pub score: Score,
    /// Answers that count (e.g. "127.0.0.2"); empty: any listing.
    #[serde(default)]
    pub codes: Vec<String>,
}

fn default_zone_type() -> ZoneType {
    ZoneType::Ip
}
fn default_zone_action() -> ZoneAction {
    ZoneAction::Score
}
fn default_zone_score() -> Score {
    Score(1.0)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsblSection {
    /// None by default: an administrator opts into lists (most have usage terms).
    pub zones: Vec<ZoneConfig>,
    pub cache_entries: usize,
    pub cache_max_ttl_secs: u64,
    pub cache_negative_ttl_secs: u64,
}

impl Default for DnsblSection {
    fn default() -> Self {
        DnsblSection {
            zones: vec![],
            cache_entries: 10_000,
            cache_max_ttl_secs: 3600,
            cache_negative_ttl_secs: 300,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GreylistSection {
    pub enabled: bool,
    /// A retry is accepted this long after the first attempt.
    pub delay_secs: u64,
    /// An attempt never retried is forgotten after this long.
    pub retry_window_secs: u64,
    /// A triplet that passed is remembered this long after it was last used.
    pub pass_ttl_days: u64,
    /// Passed retries after which a client network is whitelisted (0: never).
    pub whitelist_after: u32,
    /// A whitelisted network stays so this long after it was last seen.
    pub whitelist_days: u64,
    /// Networks never greylisted (besides connection.trusted_networks and DNSWL-listed clients).
    pub allow_networks: Vec<String>,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
}

impl Default for GreylistSection {
    fn default() -> Self {
        GreylistSection {
            enabled: false,
            delay_secs: 300,
            retry_window_secs: 2 * 86400,
            pass_ttl_days: 35,
            whitelist_after: 3,
            whitelist_days: 35,
            allow_networks: vec![],
            ipv4_prefix: 24,
            ipv6_prefix: 64,
        }
    }
}

fn score_ok(s: Score) -> Result<(), String> {
    if !s.0.is_finite() || s.0.abs() > MAX_SCORE {
        return Err(format!(
            "{} is not a score between -{MAX_SCORE} and {MAX_SCORE}",
            s.0
        ));
    }
    Ok(())
}

fn networks_ok(list: &[String]) -> Result<(), (usize, String)> {
    for (i, n) in list.iter().enumerate() {
        parse_network(n).map_err(|m| (i, m))?;
    }
    Ok(())
}

/// "192.0.2.0/24", "2001:db8::/32", or a single address.
pub fn parse_network(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<ipnet::IpNet>() {
        return Ok(n.trunc());
    }
    s.parse::<std::net::IpAddr>()
        .map(ipnet::IpNet::from)
        .map_err(|_| {
            format!("{s:?} is not a network (\"192.0.2.0/24\", \"2001:db8::/32\") or an address")
        })
}

impl Config {
    pub(super) fn validate_conncheck(&self, errs: &mut Vec<Invalid>) {
        let c = &self.connection;
        for (key, list) in [
            ("connection.trusted_networks", &c.trusted_networks),
            ("greylist.allow_networks", &self.greylist.allow_networks),
        ] {
            if let Err((i, m)) = networks_ok(list) {
                errs.push(Invalid {
                    keys: vec![key.to_owned()],
                    index: Some(i),
                    message: m,
                });
            }
        }
        if c.dns_budget_ms == 0 || c.dns_budget_ms > MAX_DNS_BUDGET_MS {
            errs.push(invalid(
                "connection.dns_budget_ms",
                format!(
                    "{} is not between 1 and {MAX_DNS_BUDGET_MS}",
                    c.dns_budget_ms
                ),
            ));
        }
        for (key, s) in [
            ("connection.fcrdns_score", c.fcrdns_score),
            ("connection.helo_forged_score", c.helo_forged_score),
            ("connection.helo_not_fqdn_score", c.helo_not_fqdn_score),
        ] {
            if let Err(m) = score_ok(s) {
                errs.push(invalid(key, m));
            }
        }
        if c.rate_window_secs == 0 {
            errs.push(invalid("connection.rate_window_secs", "must be at least 1"));
        }
        let d = &self.dnsbl;
        if d.zones.len() > MAX_ZONES {
            errs.push(invalid(
                "dnsbl.zones",
                format!("{} lists; at most {MAX_ZONES}", d.zones.len()),
            ));
        }
        for (i, z) in d.zones.iter().enumerate() {
            let problem =
                if !smtp::conn::dnsbl::is_domain(z.zone.trim_end_matches('.')) {
                    Some(format!("{:?} is not a DNS zone name", z.zone))
                } else if let Err(m) = score_ok(z.score) {
                    Some(m)
                } else {
                    z.codes.iter().find_map(|code| match code.parse::<std::net::Ipv4Addr>() {
                    Ok(a) if a.octets()[0] == 127 => None,
                    _ => Some(format!(
                        "code {code:?} of {} is not an address in 127.0.0.0/8 (RFC 5782 §2.3)",
                        z.zone
                    )),
                })
                };
            if let Some(message) = problem {
                errs.push(Invalid {
                    keys: vec!["dnsbl.zones".to_owned()],
                    index: Some(i),
                    message,
                });
            }
        }
        if d.cache_entries > MAX_CACHE_ENTRIES {
            errs.push(invalid(
                "dnsbl.cache_entries",
                format!("{} is above {MAX_CACHE_ENTRIES}", d.cache_entries),
            ));
        }
        let g = &self.greylist;
        if g.ipv4_prefix == 0 || g.ipv4_prefix > 32 {
            errs.push(invalid("greylist.ipv4_prefix", "must be between 1 and 32"));
        }
        if g.ipv6_prefix == 0 || g.ipv6_prefix > 128 {
            errs.push(invalid("greylist.ipv6_prefix", "must be between 1 and 128"));
        }
        if g.retry_window_secs <= g.delay_secs {
            errs.push(Invalid {
                keys: vec![
                    "greylist.retry_window_secs".to_owned(),
                    "greylist.delay_secs".to_owned(),
                ],
                index: None,
                message: format!(
                    "{} leaves no time to retry after greylist.delay_secs ({})",
                    g.retry_window_secs, g.delay_secs
                ),
            });
        }
        for (key, days) in [
            ("greylist.pass_ttl_days", g.pass_ttl_days),
            ("greylist.whitelist_days", g.whitelist_days),
        ] {
            if days == 0 || days > 3650 {
                errs.push(invalid(key, "must be between 1 and 3650"));
            }
        }
    }

    /// The connection checks' settings, from validated sections.
    pub fn conn_checks(&self) -> smtp::conn::ConnConfig {
        use smtp::conn::{Action, dnsbl, greylist, rate};
        use std::time::Duration;
        let c = &self.connection;
        let nets = |list: &[String]| list.iter().filter_map(|n| parse_network(n).ok()).collect();
        let action = |a: HeloAction, s: Score| match a {
            HeloAction::Off => Action::Off,
            HeloAction::Score => Action::Score(s.0),
            HeloAction::Reject => Action::Reject,
        };
        let g = &self.greylist;
        let days = |d: u64| i64::try_from(d.saturating_mul(86400)).unwrap_or(i64::MAX);
        let secs = |s: u64| i64::try_from(s).unwrap_or(i64::MAX);
        smtp::conn::ConnConfig {
            trusted: nets(&c.trusted_networks),
            dns_budget: Duration::from_millis(c.dns_budget_ms),
            zones: self
                .dnsbl
                .zones
                .iter()
                .map(|z| dnsbl::Zone {
                    zone: z.zone.trim_end_matches('.').to_ascii_lowercase(),
                    kind: match z.kind {
                        ZoneType::Ip => dnsbl::ZoneKind::Ip,
                        ZoneType::Domain => dnsbl::ZoneKind::Domain,
                    },
                    action: match z.action {
                        ZoneAction::Score => dnsbl::ZoneAction::Score,
                        ZoneAction::Reject => dnsbl::ZoneAction::Reject,
                        ZoneAction::Allow => dnsbl::ZoneAction::Allow,
                    },
                    score: z.score.0,
                    codes: z.codes.iter().filter_map(|c| c.parse().ok()).collect(),
                })
                .collect(),
            cache_entries: self.dnsbl.cache_entries,
            cache_max_ttl: Duration::from_secs(self.dnsbl.cache_max_ttl_secs),
            cache_negative_ttl: Duration::from_secs(self.dnsbl.cache_negative_ttl_secs),
            fcrdns_score: c.fcrdns_score.0,
            helo_forged: action(c.helo_forged, c.helo_forged_score),
            helo_not_fqdn: action(c.helo_not_fqdn, c.helo_not_fqdn_score),
            rate: rate::RateConfig {
                window: Duration::from_secs(c.rate_window_secs),
                messages: c.rate_messages,
                recipients: c.rate_recipients,
                max_clients: smtp::conn::rate::DEFAULT_MAX_CLIENTS,
            },
            greylist: g.enabled.then(|| greylist::GreylistConfig {
                policy: store::GreylistPolicy {
                    delay: secs(g.delay_secs),
                    retry_window: secs(g.retry_window_secs),
                    pass_ttl: days(g.pass_ttl_days),
                    whitelist_after: g.whitelist_after,
                    whitelist_ttl: days(g.whitelist_days),
                },
                allow: nets(&g.allow_networks),
                v4_prefix: g.ipv4_prefix,
                v6_prefix: g.ipv6_prefix,
            }),
        }
    }
}
