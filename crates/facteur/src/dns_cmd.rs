//! `facteur dns DOMAIN [--check]`: every DNS record a mail domain needs, and with `--check` what the
//! DNS says about each: OK, MISSING or WRONG with what to change. Small offices get this step wrong
//! more than any other, so the output says exactly what to type into the DNS provider's form.

use mailauth::{Authenticator, MxAnswer};
use serde_json::{Value, json};

use crate::Failure;
use crate::admin::emit;
use crate::cli::Cli;
use crate::context::Context;

/// How much a missing record matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Mail does not flow or is marked as spam without it.
    Required,
    /// Clients and other servers work better with it.
    Recommended,
}

/// One record to publish and how to judge what the DNS has.
struct Wanted {
    what: &'static str,
    name: String,
    kind: &'static str,
    value: String,
    need: Need,
    why: &'static str,
    check: Check,
}

enum Check {
    /// One of the MX hosts is ours.
    Mx,
    /// Exactly one TXT starting with `prefix`, judged by the function.
    Txt {
        prefix: &'static str,
        judge: fn(&str, &Wanted) -> Result<(), String>,
    },
    /// An SRV record equal to the value.
    Srv,
    /// A CNAME to our host (or any address record: checked as "exists").
    Cname,
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

fn dkim_judge(found: &str, w: &Wanted) -> Result<(), String> {
    let key = |s: &str| {
        s.split(';')
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| k.trim() == "p")
            .map(|(_, v)| v.split_ascii_whitespace().collect::<String>())
    };
    if key(found).is_some() && key(found) == key(&w.value) {
        Ok(())
    } else {
        Err("the public key differs from this server's key".into())
    }
}

fn starts_judge(_: &str, _: &Wanted) -> Result<(), String> {
    Ok(())
}

/// DKIM records (selector, TXT value) to publish for `domain`: every stored key, signing or not
/// (new keys must be published before `dkim rotate --finish`, old ones stay a while after).
async fn dkim_records(ctx: &Context, domain: &str) -> Vec<(String, String)> {
    let keys = ctx.store.dkim_keys(Some(domain)).await.unwrap_or_default();
    keys.iter()
        .filter_map(|k| Some((k.selector.clone(), crate::authn::txt_record(k).ok()?)))
        .collect()
}

async fn wanted(ctx: &Context, domain: &str) -> Vec<Wanted> {
    let host = ctx.config.server.hostname.to_ascii_lowercase();
    let mut w = vec![
        Wanted {
            what: "MX",
            name: domain.to_string(),
            kind: "MX",
            value: format!("10 {host}."),
            need: Need::Required,
            why: "other servers find this server through it",
            check: Check::Mx,
        },
        Wanted {
            what: "SPF",
            name: domain.to_string(),
            kind: "TXT",
            value: "v=spf1 mx -all".into(),
            need: Need::Required,
            why: "receivers check that this server may send for the domain (RFC 7208)",
            check: Check::Txt {
                prefix: "v=spf1",
                judge: spf_judge,
            },
        },
    ];
    let dkim = dkim_records(ctx, domain).await;
    for (selector, value) in dkim {
        w.push(Wanted {
            what: "DKIM",
            name: format!("{selector}._domainkey.{domain}"),
            kind: "TXT",
            value,
            need: Need::Required,
            why: "receivers verify the signature this server adds (RFC 6376)",
            check: Check::Txt {
                prefix: "v=DKIM1",
                judge: dkim_judge,
            },
        });
    }
    w.extend([
        Wanted {
            what: "DMARC",
            name: format!("_dmarc.{domain}"),
            kind: "TXT",
            value: format!("v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}"),
            need: Need::Required,
            why: "Gmail and Outlook require it from bulk senders and trust domains that have it (RFC 7489)",
            check: Check::Txt {
                prefix: "v=DMARC1",
                judge: dmarc_judge,
            },
        },
        Wanted {
            what: "TLS-RPT",
            name: format!("_smtp._tls.{domain}"),
            kind: "TXT",
            value: format!("v=TLSRPTv1; rua=mailto:postmaster@{domain}"),
            need: Need::Recommended,
            why: "other servers report TLS problems with your mail (RFC 8460)",
            check: Check::Txt {
                prefix: "v=TLSRPTv1",
                judge: starts_judge,
            },
        },
        Wanted {
            what: "SRV submissions",
            name: format!("_submissions._tcp.{domain}"),
            kind: "SRV",
            value: format!("0 1 465 {host}"),
            need: Need::Recommended,
            why: "mail clients find the sending server (RFC 6186, RFC 8314)",
            check: Check::Srv,
        },
        Wanted {
            what: "SRV imaps",
            name: format!("_imaps._tcp.{domain}"),
            kind: "SRV",
            value: format!("0 1 993 {host}"),
            need: Need::Recommended,
            why: "mail clients find the IMAP server (RFC 6186)",
            check: Check::Srv,
        },
        Wanted {
            what: "SRV pop3s",
            name: format!("_pop3s._tcp.{domain}"),
            kind: "SRV",
            value: format!("10 1 995 {host}"),
            need: Need::Recommended,
            why: "mail clients that use POP3 find the server (RFC 6186)",
            check: Check::Srv,
        },
        Wanted {
            what: "autoconfig",
            name: format!("autoconfig.{domain}"),
            kind: "CNAME",
            value: format!("{host}."),
            need: Need::Recommended,
            why: "Thunderbird-style automatic account setup (served by the web interface, not yet built)",
            check: Check::Cname,
        },
    ]);
    w
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
                    // RFC 7208 §4.5, RFC 7489 §6.6.3: several records are an error, not a choice.
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
                let ok = found.iter().any(|f| {
                    let tail: Vec<&str> = f.split_ascii_whitespace().skip(2).collect();
                    tail.len() == 2
                        && tail[0] == want_tail[0]
                        && tail[1].eq_ignore_ascii_case(want_tail[1])
                });
                if ok {
                    (Verdict::Ok, found)
                } else {
                    (
                        Verdict::Wrong(format!("should point to port {} on {host}", want_tail[0])),
                        found,
                    )
                }
            }
        },
        Check::Cname => match r.cname(&w.name).await {
            Err(e) => (Verdict::Unknown(e.to_string()), vec![]),
            Ok(found) if found.is_empty() => (Verdict::Missing, found),
            Ok(found) => {
                if found.iter().any(|f| f.eq_ignore_ascii_case(host)) {
                    (Verdict::Ok, found)
                } else {
                    (Verdict::Wrong(format!("should point to {host}")), found)
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
    let resolver = if check {
        Some(crate::outbound::resolver(&ctx.config)?)
    } else {
        None
    };
    let mut rows: Vec<Value> = Vec::new();
    let mut text = format!("DNS records for {domain} (mail server {host}):\n");
    let mut failed = false;
    for w in &list {
        let fqdn = format!("{}.", w.name);
        let shown = if w.kind == "TXT" {
            format!("\"{}\"", w.value)
        } else {
            w.value.clone()
        };
        let need = match w.need {
            Need::Required => "required",
            Need::Recommended => "recommended",
        };
        let mut row = json!({
            "what": w.what, "name": fqdn, "type": w.kind, "value": w.value, "need": need, "why": w.why,
        });
        match &resolver {
            None => {
                text.push_str(&format!(
                    "\n{} ({need}: {})\n  {fqdn} {} {shown}\n",
                    w.what, w.why, w.kind
                ));
            }
            Some(r) => {
                let (v, found) = judge(r, w, &host).await;
                if v != Verdict::Ok && w.need == Need::Required {
                    failed = true;
                }
                row["status"] = json!(verdict_str(&v));
                row["found"] = json!(found);
                text.push_str(&format!("\n{:<8} {} ({need})\n", verdict_str(&v), w.what));
                match &v {
                    Verdict::Ok => {}
                    Verdict::Missing => {
                        text.push_str(&format!("  add:    {fqdn} {} {shown}\n", w.kind))
                    }
                    Verdict::Wrong(why) => {
                        for f in &found {
                            text.push_str(&format!("  found:  {f}\n"));
                        }
                        text.push_str(&format!(
                            "  why:    {why}\n  change: {fqdn} {} {shown}\n",
                            w.kind
                        ));
                    }
                    Verdict::Unknown(e) => text.push_str(&format!("  lookup failed: {e}\n")),
                }
                if let Verdict::Wrong(why) = &v {
                    row["problem"] = json!(why);
                }
            }
        }
        rows.push(row);
    }
    if !has_dkim {
        text.push_str(&format!(
            "\nDKIM: no signing key for {domain} yet, so there is no DKIM record to publish.\n"
        ));
        failed = failed || check;
    }
    let value = json!({ "domain": domain, "host": host, "records": rows, "dkim_key": has_dkim });
    emit(cli, value, || text.trim_end().to_string());
    if failed {
        return Err(Failure::op(format!(
            "{domain}: some required records are missing or wrong"
        )));
    }
    Ok(())
}
