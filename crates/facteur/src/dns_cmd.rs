//! `facteur dns DOMAIN [--check]`: every DNS record a mail domain needs, printed in zone-file syntax
//! (RFC 1035 §5) that a zone takes as it is, and with `--check` what the DNS says about each: OK,
//! MISSING, WRONG with what to change, or UNKNOWN when the lookup failed. Small offices get this
//! step wrong more than any other, so the output says exactly what to type into the DNS provider's
//! form.
//!
//! Exit status of `--check`: 0 when every required record is right, 1 when one is missing or wrong
//! ([`crate::EXIT_FAILURE`]), 3 ([`EXIT_UNCHECKED`]) when none is known wrong but some could not be
//! looked up (resolver unreachable, timeout).

use std::net::IpAddr;
use std::time::Duration;

use mailauth::{Authenticator, DnsOptions, MxAnswer};
use serde_json::{Value, json};
use store::DkimKeyState;

use crate::Failure;
use crate::admin::emit;
use crate::cli::Cli;
use crate::config::Config;
use crate::context::Context;
use crate::dkim_cmd::{self, Publication};

/// Exit status of `dns --check` when some required record could not be looked up and none is
/// known to be missing or wrong.
pub const EXIT_UNCHECKED: u8 = 3;
/// Per-query timeout of `dns --check`: an admin waits at the terminal, and every lookup runs at
/// once, so an unreachable resolver is reported within about this long.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// Attempts per query of `dns --check` (the server's own resolver retries more).
pub const CHECK_ATTEMPTS: usize = 1;
/// TTL written on every record: an hour, so a mistake fixed is seen again soon.
const RECORD_TTL: u32 = 3600;
/// RFC 1035 §3.3: a character-string is at most 255 octets; longer TXT data is split into several
/// strings, which receivers concatenate (RFC 6376 §3.6.2.2, RFC 7208 §3.3).
const MAX_TXT_STRING: usize = 255;
/// `max_age` of the suggested MTA-STS policy: one week (RFC 8461 §3.2 allows up to a year).
const MTA_STS_MAX_AGE: u32 = 604_800;
/// Hex digits of the MTA-STS policy id (RFC 8461 §3.1: 1 to 32 alphanumeric characters).
const MTA_STS_ID_LEN: usize = 20;

/// How much a missing record matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Mail does not flow or is marked as spam without it.
    Required,
    /// Clients and other servers work better with it.
    Recommended,
}

/// One record to publish and how to judge what the DNS has.
#[derive(Clone)]
struct Wanted {
    what: String,
    name: String,
    kind: &'static str,
    value: String,
    need: Need,
    why: String,
    /// Extra comment lines printed before the record.
    notes: Vec<String>,
    /// Printed as a comment: a record for another zone or another party (the host's addresses).
    comment_only: bool,
    check: Check,
}

#[derive(Clone)]
enum Check {
    /// One of the MX hosts is ours.
    Mx,
    /// Exactly one TXT starting with `prefix`, judged by the function.
    Txt {
        prefix: &'static str,
        judge: fn(&str, &Wanted) -> Result<(), String>,
    },
    /// The DKIM record of a stored key: its public key must be there.
    Dkim(Box<store::DkimKeyRecord>),
    /// An SRV record equal to the value.
    Srv,
    /// The host name has at least one address.
    HostAddress,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Ok,
    Missing,
    Wrong(String),
    Unknown(String),
}

fn spf_judge(found: &str, _: &Wanted) -> Result<(), String> {
    let terms: Vec<String> = found
        .split_ascii_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    if terms
        .iter()
        .any(|t| t == "+all" || t == "all" || t == "?all")
    {
        return Err("it ends in a permissive \"all\": anyone may send as this domain".into());
    }
    let covers_us = terms.iter().any(|t| {
        t == "mx"
            || t == "+mx"
            || t.starts_with("a:")
            || t.starts_with("ip4:")
            || t.starts_with("ip6:")
            || t.starts_with("include:")
    });
    if !covers_us {
        return Err("it does not list this server (add \"mx\")".into());
    }
    Ok(())
}

fn dmarc_judge(found: &str, _: &Wanted) -> Result<(), String> {
    let p = found
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("p"))
        .map(|(_, v)| v.trim().to_ascii_lowercase());
    match p.as_deref() {
        Some("none" | "quarantine" | "reject") => Ok(()),
        Some(other) => Err(format!("unknown policy p={other}")),
        None => Err("no policy (p=)".into()),
    }
}

/// RFC 8461 §3.1: `v=STSv1; id=<1 to 32 alphanumerics>`.
fn mta_sts_judge(found: &str, _: &Wanted) -> Result<(), String> {
    let id = found
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| k.trim() == "id")
        .map(|(_, v)| v.trim().to_string());
    match id {
        Some(id)
            if !id.is_empty()
                && id.len() <= 32
                && id.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            Ok(())
        }
        Some(id) => Err(format!("id={id} is not 1 to 32 letters and digits")),
        None => Err("no id=".into()),
    }
}

fn starts_judge(_: &str, _: &Wanted) -> Result<(), String> {
    Ok(())
}

/// The policy file Facteur suggests (RFC 8461 §3.2), in testing mode: reports without refusals
/// until the admin is sure.
fn mta_sts_policy(host: &str) -> String {
    format!("version: STSv1\nmode: testing\nmx: {host}\nmax_age: {MTA_STS_MAX_AGE}\n")
}

/// The policy's id: a hash of its text, so it changes exactly when the suggested policy does.
fn mta_sts_id(policy: &str) -> String {
    blake3::hash(policy.as_bytes()).to_hex()[..MTA_STS_ID_LEN].to_string()
}

/// Addresses other servers reach this one at, when known: the specific non-loopback addresses of
/// the SMTP listeners, else the machine's global addresses (none when it sits behind NAT).
fn server_addresses(cfg: &Config) -> Vec<IpAddr> {
    let public = |ip: &IpAddr| match ip {
        IpAddr::V4(v4) => {
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_documentation()
                // RFC 6598 shared address space (carrier-grade NAT).
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64))
        }
        IpAddr::V6(v6) => {
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_unique_local()
                || v6.is_unicast_link_local())
        }
    };
    let mut out: Vec<IpAddr> = crate::config::ListenersConfig::socket_addrs(&cfg.listeners.smtp)
        .into_iter()
        .map(|a| a.ip())
        .filter(public)
        .collect();
    if out.is_empty() {
        out = interface_addresses().into_iter().filter(public).collect();
    }
    out.sort();
    out.dedup();
    out
}

/// Addresses of the machine's interfaces (getifaddrs(3)).
fn interface_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not freed yet.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr whose family says which struct it is.
            let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
            if family == libc::AF_INET {
                // SAFETY: AF_INET: the sockaddr is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push(IpAddr::V4(std::net::Ipv4Addr::from(u32::from_be(
                    sin.sin_addr.s_addr,
                ))));
            } else if family == libc::AF_INET6 {
                // SAFETY: AF_INET6: the sockaddr is a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                out.push(IpAddr::V6(std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out
}

/// The reverse-DNS name of an address (RFC 1035 §3.5, RFC 3596 §2.5), with the final dot.
fn ptr_name(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::new();
            for byte in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            s.push_str("ip6.arpa.");
            s
        }
    }
}

async fn wanted(ctx: &Context, domain: &str) -> Vec<Wanted> {
    let host = ctx.config.server.hostname.to_ascii_lowercase();
    let addrs = server_addresses(&ctx.config);
    let record =
        |what: &str, name: String, kind: &'static str, value: String, need, why: &str| Wanted {
            what: what.to_string(),
            name,
            kind,
            value,
            need,
            why: why.to_string(),
            notes: Vec::new(),
            comment_only: false,
            check: Check::Mx,
        };
    let mut w = vec![Wanted {
        check: Check::Mx,
        ..record(
            "MX",
            domain.to_string(),
            "MX",
            format!("10 {host}."),
            Need::Required,
            "other servers find this server through it",
        )
    }];

    // The host name's own records: in its zone (perhaps another) and at the network's owner.
    let mut notes = Vec::new();
    if addrs.is_empty() {
        notes.push(format!(
            "{host}. needs an A record (and AAAA for IPv6) with this server's public address(es); \
             they were not found here (behind NAT?)"
        ));
    } else {
        notes.push(format!(
            "{host}. needs these address records (in its own zone if it is not under {domain}):"
        ));
        for ip in &addrs {
            let kind = if ip.is_ipv4() { "A" } else { "AAAA" };
            notes.push(format!("  {host}. {RECORD_TTL} IN {kind} {ip}"));
        }
    }
    notes.push(format!(
        "Reverse DNS: each address's PTR record must name {host}. (receivers check it); it is set \
         by whoever runs the network, usually in the hosting provider's panel:"
    ));
    if addrs.is_empty() {
        notes.push(format!("  <reverse name of the address> IN PTR {host}."));
    }
    for ip in &addrs {
        notes.push(format!("  {} IN PTR {host}.", ptr_name(ip)));
    }
    w.push(Wanted {
        notes,
        comment_only: true,
        check: Check::HostAddress,
        ..record(
            "host address",
            host.clone(),
            "A/AAAA",
            addrs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            Need::Required,
            "the MX target must have an address",
        )
    });

    w.push(Wanted {
        check: Check::Txt {
            prefix: "v=spf1",
            judge: spf_judge,
        },
        ..record(
            "SPF",
            domain.to_string(),
            "TXT",
            "v=spf1 mx -all".into(),
            Need::Required,
            "receivers check that this server may send for the domain (RFC 7208)",
        )
    });
    // Every stored key: pending ones must be published to start signing, retired ones stay a
    // few days for mail in transit.
    let keys = ctx.store.dkim_keys(Some(domain)).await.unwrap_or_default();
    for k in keys {
        let Ok(value) = crate::authn::txt_record(&k) else {
            continue;
        };
        let (need, why) = match k.state {
            DkimKeyState::Active => (
                Need::Required,
                "receivers verify the signatures of this key (RFC 6376); it is signing",
            ),
            DkimKeyState::Pending => (
                Need::Required,
                "a new key (RFC 6376): it starts signing once this record is seen",
            ),
            DkimKeyState::Retired => (
                Need::Recommended,
                "a retired key: keep it a few days for mail still in transit, then remove it",
            ),
        };
        w.push(Wanted {
            check: Check::Dkim(Box::new(k.clone())),
            ..record("DKIM", dkim_cmd::dns_name(&k), "TXT", value, need, why)
        });
    }
    w.push(Wanted {
        check: Check::Txt {
            prefix: "v=DMARC1",
            judge: dmarc_judge,
        },
        ..record(
            "DMARC",
            format!("_dmarc.{domain}"),
            "TXT",
            format!("v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}"),
            Need::Required,
            "Gmail and Outlook require it from bulk senders and trust domains that have it (RFC 7489)",
        )
    });
    w.push(Wanted {
        check: Check::Txt {
            prefix: "v=TLSRPTv1",
            judge: starts_judge,
        },
        ..record(
            "TLS-RPT",
            format!("_smtp._tls.{domain}"),
            "TXT",
            format!("v=TLSRPTv1; rua=mailto:postmaster@{domain}"),
            Need::Recommended,
            "other servers report TLS problems with your mail (RFC 8460)",
        )
    });
    let policy = mta_sts_policy(&host);
    let mut notes = vec![format!(
        "Publish it once this policy file is served at https://mta-sts.{domain}/.well-known/mta-sts.txt \
         with a valid certificate (Facteur does not serve it yet: use any web server). Until then \
         senders ignore the record (RFC 8461 §5)."
    )];
    notes.extend(policy.lines().map(|l| format!("  {l}")));
    w.push(Wanted {
        notes,
        check: Check::Txt {
            prefix: "v=STSv1",
            judge: mta_sts_judge,
        },
        ..record(
            "MTA-STS",
            format!("_mta-sts.{domain}"),
            "TXT",
            format!("v=STSv1; id={}", mta_sts_id(&policy)),
            Need::Recommended,
            "other servers then insist on TLS to this server (RFC 8461)",
        )
    });
    for (what, service, prio, port, why) in [
        (
            "SRV submissions",
            "_submissions._tcp",
            0,
            465,
            "mail clients find the sending server (RFC 6186, RFC 8314)",
        ),
        (
            "SRV imaps",
            "_imaps._tcp",
            0,
            993,
            "mail clients find the IMAP server (RFC 6186)",
        ),
        (
            "SRV pop3s",
            "_pop3s._tcp",
            10,
            995,
            "mail clients that use POP3 find the server (RFC 6186)",
        ),
    ] {
        w.push(Wanted {
            check: Check::Srv,
            ..record(
                what,
                format!("{service}.{domain}"),
                "SRV",
                format!("{prio} 1 {port} {host}."),
                Need::Recommended,
                why,
            )
        });
    }
    w
}

/// RDATA of a record in zone-file syntax: TXT data quoted, in strings of at most 255 octets.
pub(crate) fn zone_rdata(kind: &str, value: &str) -> String {
    if kind != "TXT" {
        return value.to_string();
    }
    let escaped = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut parts = Vec::new();
    let mut rest = value;
    while !rest.is_empty() {
        let mut end = rest.len().min(MAX_TXT_STRING);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        parts.push(format!("\"{}\"", escaped(&rest[..end])));
        rest = &rest[end..];
    }
    if parts.is_empty() {
        parts.push("\"\"".into());
    }
    parts.join(" ")
}

fn zone_line(w: &Wanted) -> String {
    format!(
        "{}. {RECORD_TTL} IN {} {}",
        w.name,
        w.kind,
        zone_rdata(w.kind, &w.value)
    )
}

/// MX hosts as "preference host"; "." for a null MX; empty when there are none.
async fn mx_hosts(
    r: &Authenticator,
    domain: &str,
) -> Result<Vec<(u16, String)>, mailauth::DnsError> {
    Ok(match r.mx(domain).await? {
        MxAnswer::Hosts(h) => h,
        MxAnswer::NullMx => vec![(0, ".".into())],
        MxAnswer::NoMx | MxAnswer::NoDomain => vec![],
    })
}

async fn judge(r: &Authenticator, w: &Wanted, host: &str) -> (Verdict, Vec<String>) {
    match &w.check {
        Check::Mx => match mx_hosts(r, &w.name).await {
            Err(e) => (Verdict::Unknown(e.to_string()), vec![]),
            Ok(hosts) if hosts.is_empty() => (Verdict::Missing, vec![]),
            Ok(hosts) => {
                let found: Vec<String> = hosts.iter().map(|(p, h)| format!("{p} {h}")).collect();
                if hosts.iter().any(|(_, h)| h == host) {
                    (Verdict::Ok, found)
                } else {
                    (Verdict::Wrong(format!("no MX points to {host}")), found)
                }
            }
        },
        Check::HostAddress => match r.ips(host).await {
            Err(e) => (Verdict::Unknown(e.to_string()), vec![]),
            Ok(ips) if ips.is_empty() => (Verdict::Missing, vec![]),
            Ok(ips) => (Verdict::Ok, ips.iter().map(ToString::to_string).collect()),
        },
        Check::Dkim(key) => match dkim_cmd::publication(r, key).await {
            Publication::Published => (Verdict::Ok, vec![]),
            Publication::Missing => (Verdict::Missing, vec![]),
            Publication::Differs(found) => (
                Verdict::Wrong("the public key differs from this server's key".into()),
                found,
            ),
            Publication::Unknown(e) => (Verdict::Unknown(e), vec![]),
        },
        Check::Txt { prefix, judge } => match r.txt(&w.name).await {
            Err(e) => (Verdict::Unknown(e.to_string()), vec![]),
            Ok(all) => {
                let found: Vec<String> = all
                    .into_iter()
                    .filter(|t| {
                        t.trim_start()
                            .to_ascii_lowercase()
                            .starts_with(&prefix.to_ascii_lowercase())
                    })
                    .collect();
                match found.len() {
                    0 => (Verdict::Missing, found),
                    // RFC 7208 §4.5, RFC 7489 §6.6.3, RFC 8461 §3.1: several records are an
                    // error, not a choice.
                    1 => match judge(&found[0], w) {
                        Ok(()) => (Verdict::Ok, found),
                        Err(why) => (Verdict::Wrong(why), found),
                    },
                    n => (
                        Verdict::Wrong(format!("{n} records where exactly one is allowed")),
                        found,
                    ),
                }
            }
        },
        Check::Srv => match r.srv(&w.name).await {
            Err(e) => (Verdict::Unknown(e.to_string()), vec![]),
            Ok(found) if found.is_empty() => (Verdict::Missing, found),
            Ok(found) => {
                let want_tail: Vec<&str> = w.value.split_ascii_whitespace().skip(2).collect();
                let want_port = want_tail.first().copied().unwrap_or_default();
                let ok = found.iter().any(|f| {
                    let tail: Vec<&str> = f.split_ascii_whitespace().skip(2).collect();
                    tail.len() == 2
                        && tail[0] == want_port
                        && tail[1].trim_end_matches('.').eq_ignore_ascii_case(host)
                });
                if ok {
                    (Verdict::Ok, found)
                } else {
                    (
                        Verdict::Wrong(format!("should point to port {want_port} on {host}")),
                        found,
                    )
                }
            }
        },
    }
}

fn verdict_str(v: &Verdict) -> &'static str {
    match v {
        Verdict::Ok => "OK",
        Verdict::Missing => "MISSING",
        Verdict::Wrong(_) => "WRONG",
        Verdict::Unknown(_) => "UNKNOWN",
    }
}

/// The resolver of `dns --check` and `dkim activate`: the configured one with a short timeout and
/// one attempt, so an unreachable resolver is reported within seconds.
pub fn check_resolver(cfg: &Config) -> Result<Authenticator, Failure> {
    let ns = crate::outbound::nameservers(cfg);
    Authenticator::with_options(
        (!ns.is_empty()).then_some(ns),
        DnsOptions {
            timeout: CHECK_TIMEOUT,
            attempts: CHECK_ATTEMPTS,
            udp_only: false,
        },
    )
    .map_err(|e| Failure::op(format!("cannot set up DNS resolution: {e}")))
}

pub async fn run(cli: &Cli, domain: &str, check: bool) -> Result<(), Failure> {
    let ctx = Context::open(cli).await?;
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if ctx.store.domain_get(&domain).await?.is_none() {
        return Err(Failure::op(format!(
            "{domain} is not a domain of this server (add it with `facteur domain add {domain}`)"
        )));
    }
    let host = ctx.config.server.hostname.to_ascii_lowercase();
    let list = wanted(&ctx, &domain).await;
    let has_dkim = list.iter().any(|w| w.what == "DKIM");
    let verdicts: Vec<Option<(Verdict, Vec<String>)>> = if check {
        let resolver = check_resolver(&ctx.config)?;
        // All at once: with an unreachable resolver the whole check takes one timeout.
        let mut set = tokio::task::JoinSet::new();
        for (i, w) in list.iter().enumerate() {
            let (r, w, host) = (resolver.clone(), w.clone(), host.clone());
            set.spawn(async move { (i, judge(&r, &w, &host).await) });
        }
        let mut out: Vec<Option<(Verdict, Vec<String>)>> = vec![None; list.len()];
        while let Some(done) = set.join_next().await {
            let (i, v) = done.map_err(|e| Failure::op(format!("DNS check failed: {e}")))?;
            out[i] = Some(v);
        }
        out
    } else {
        vec![None; list.len()]
    };

    let mut rows: Vec<Value> = Vec::new();
    let mut text = format!(
        "; DNS records for {domain} (mail server {host}), in zone-file syntax.\n\
         ; In a DNS provider's form: the name, the type, and the value (a TXT value without its\n\
         ; quotes, as one string).\n"
    );
    if check {
        text = format!("DNS check of {domain} (mail server {host}):\n");
    }
    let (mut wrong, mut unknown) = (false, false);
    for (w, verdict) in list.iter().zip(&verdicts) {
        let need = match w.need {
            Need::Required => "required",
            Need::Recommended => "recommended",
        };
        let line = zone_line(w);
        let mut row = json!({
            "what": w.what, "name": format!("{}.", w.name), "type": w.kind, "value": w.value,
            "zone": if w.comment_only { Value::Null } else { json!(line) },
            "need": need, "why": w.why,
        });
        if let Check::Dkim(k) = &w.check {
            row["dkim_state"] = json!(k.state.as_str());
        }
        match verdict {
            None => {
                text.push_str(&format!("\n; {} ({need}): {}\n", w.what, w.why));
                for n in &w.notes {
                    for l in crate::setup::wrap(n).lines() {
                        text.push_str(&format!("; {l}\n"));
                    }
                }
                if !w.comment_only {
                    text.push_str(&format!("{line}\n"));
                }
            }
            Some((v, found)) => {
                if w.need == Need::Required {
                    match v {
                        Verdict::Missing | Verdict::Wrong(_) => wrong = true,
                        Verdict::Unknown(_) => unknown = true,
                        Verdict::Ok => {}
                    }
                }
                row["status"] = json!(verdict_str(v));
                row["found"] = json!(found);
                text.push_str(&format!(
                    "\n{:<8} {} ({need}) {}\n",
                    verdict_str(v),
                    w.what,
                    w.name
                ));
                let fix = if w.comment_only {
                    w.notes.iter().map(|n| format!("  {n}\n")).collect()
                } else {
                    format!("  {line}\n")
                };
                match v {
                    Verdict::Ok => {}
                    Verdict::Missing => text.push_str(&format!("  add:\n{fix}")),
                    Verdict::Wrong(why) => {
                        for f in found {
                            text.push_str(&format!("  found:  {f}\n"));
                        }
                        text.push_str(&format!("  why:    {why}\n  change to:\n{fix}"));
                    }
                    Verdict::Unknown(e) => {
                        text.push_str(&format!("  could not look it up: {e}\n"));
                    }
                }
                if let Verdict::Wrong(why) = v {
                    row["problem"] = json!(why);
                }
                if let Verdict::Unknown(e) = v {
                    row["problem"] = json!(e);
                }
                // A pending key whose record is published starts signing now.
                if let (Verdict::Ok, Check::Dkim(k)) = (v, &w.check)
                    && k.state == DkimKeyState::Pending
                {
                    ctx.store
                        .dkim_key_set_state(&k.domain, &k.selector, DkimKeyState::Active)
                        .await?;
                    tracing::info!(domain = %k.domain, selector = %k.selector, "DKIM key published in the DNS: signing with it from now on");
                    row["dkim_state"] = json!("active");
                    row["activated"] = json!(true);
                    text.push_str(&format!(
                        "  key {} is published: it signs from now on\n",
                        k.selector
                    ));
                }
            }
        }
        rows.push(row);
    }
    if !has_dkim {
        text.push_str(&format!(
            "\n; DKIM: no key for {domain} yet, so there is no DKIM record to publish \
             (make one: facteur dkim generate {domain}).\n"
        ));
        wrong = wrong || check;
    }
    let value = json!({ "domain": domain, "host": host, "records": rows, "dkim_key": has_dkim });
    emit(cli, value, || text.trim_end().to_string());
    if wrong {
        return Err(Failure::op(format!(
            "{domain}: some required records are missing or wrong"
        )));
    }
    if unknown {
        return Err(Failure {
            code: EXIT_UNCHECKED,
            message: format!(
                "{domain}: some required records could not be checked (DNS lookups failed)"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_txt_is_split_into_strings() {
        let long = "v=DKIM1; k=rsa; p=".to_string() + &"A".repeat(400);
        let rdata = zone_rdata("TXT", &long);
        let strings: Vec<&str> = rdata.split("\" \"").collect();
        assert_eq!(strings.len(), 2, "{rdata}");
        assert_eq!(
            rdata.replace("\" \"", "").trim_matches('"'),
            long,
            "concatenated, the strings give the value back"
        );
        assert!(strings.iter().all(|s| s.trim_matches('"').len() <= 255));
        assert_eq!(zone_rdata("TXT", "a\"b"), "\"a\\\"b\"");
        assert_eq!(zone_rdata("MX", "10 mx.a.test."), "10 mx.a.test.");
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            ptr_name(&"192.0.2.5".parse().unwrap()),
            "5.2.0.192.in-addr.arpa."
        );
        assert_eq!(
            ptr_name(&"2001:db8::1".parse().unwrap()),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
        );
    }

    #[test]
    fn mta_sts_ids() {
        let id = mta_sts_id(&mta_sts_policy("mx.a.test"));
        assert_eq!(id.len(), MTA_STS_ID_LEN);
        assert!(mta_sts_judge(&format!("v=STSv1; id={id}"), &dummy()).is_ok());
        assert_ne!(id, mta_sts_id(&mta_sts_policy("mx.b.test")));
        assert!(mta_sts_judge("v=STSv1;", &dummy()).is_err());
        assert!(mta_sts_judge("v=STSv1; id=a-b", &dummy()).is_err());
    }

    fn dummy() -> Wanted {
        Wanted {
            what: String::new(),
            name: String::new(),
            kind: "TXT",
            value: String::new(),
            need: Need::Recommended,
            why: String::new(),
            notes: vec![],
            comment_only: false,
            check: Check::Srv,
        }
    }
}
