//! One delivery attempt for the entries of one destination domain: route, connect (trying the
//! next address or MX host when one fails), send every entry over the same connection, and report
//! what became of each recipient.

use std::sync::Arc;

use smtp::client::{
    ClientConfig, ClientError, Connection, OutEnvelope, OutRecipient, TlsMode,
    conn::MAX_RCPTS_PER_TRANSACTION,
};
use store::QueueEntry;

use crate::config::{QueueConfig, RelaySecurity};
use crate::dns::Resolver;
use crate::route::{self, RouteError, Target};

/// What became of one recipient in this attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptResult {
    /// The remote server took responsibility (its 250). `dsn` tells whether it announced DSN
    /// (else a success notification says "relayed").
    Delivered {
        reply: String,
        remote: String,
        dsn: bool,
    },
    /// Try again later.
    Deferred {
        reason: String,
        remote: Option<String>,
    },
    /// Will never work: the sender gets a DSN.
    Failed {
        status: String,
        reason: String,
        remote: Option<String>,
    },
    /// Not tried in this attempt (already done earlier).
    Untouched,
}

/// Everything the attempt needs besides the entries.
pub struct Deliverer {
    pub config: Arc<QueueConfig>,
    pub resolver: Arc<dyn Resolver>,
    pub mx_client: ClientConfig,
    pub relay_client: Option<ClientConfig>,
    /// TLS required with a certificate valid for the MX name (MTA-STS `enforce`).
    pub verified_client: ClientConfig,
    pub mta_sts: Option<Arc<crate::mta_sts::MtaSts>>,
}

impl Deliverer {
    /// A deliverer with the client configurations `config` asks for.
    pub fn new(config: Arc<QueueConfig>, resolver: Arc<dyn Resolver>) -> Deliverer {
        let (mx_client, relay_client) = client_configs(&config);
        let verified_client = ClientConfig {
            helo_name: config.hostname.clone(),
            tls_mode: TlsMode::Required,
            tls: net::client::verifying_with(&config.extra_ca),
            timeouts: config.timeouts.clone(),
        };
        let mta_sts = config.mta_sts.then(|| {
            Arc::new(crate::mta_sts::MtaSts::new(
                resolver.clone(),
                net::client::verifying_with(&config.extra_ca),
                config.mta_sts_port,
            ))
        });
        Deliverer {
            config,
            resolver,
            mx_client,
            relay_client,
            verified_client,
            mta_sts,
        }
    }
}

/// A recipient still to deliver ("delayed": pending, and its delay notice was sent).
pub fn is_pending(status: &str) -> bool {
    status == "pending" || status == "delayed"
}

fn from_route_error(e: &RouteError) -> RcptResult {
    if e.permanent {
        RcptResult::Failed {
            status: e.status.to_string(),
            reason: e.reason.clone(),
            remote: None,
        }
    } else {
        RcptResult::Deferred {
            reason: e.reason.clone(),
            remote: None,
        }
    }
}

impl Deliverer {
    /// Tries every entry (all for `domain`) and reports, per entry, a result per recipient in the
    /// entry's order, on `done` as soon as that entry is settled (so the caller records a remote
    /// `250` at once, not after the whole batch). `bodies[i]` is the message of `entries[i]`.
    pub async fn deliver(
        &self,
        domain: &str,
        entries: &[QueueEntry],
        bodies: &[Arc<[u8]>],
        done: tokio::sync::mpsc::UnboundedSender<(usize, Vec<RcptResult>)>,
    ) {
        let mut results: Vec<Vec<RcptResult>> = entries
            .iter()
            .map(|e| {
                e.recipients
                    .iter()
                    .map(|r| {
                        if is_pending(&r.status) {
                            RcptResult::Deferred {
                                reason: "not attempted".into(),
                                remote: None,
                            }
                        } else {
                            RcptResult::Untouched
                        }
                    })
                    .collect()
            })
            .collect();

        let targets = match self.targets(domain).await {
            Ok(t) => {
                tracing::debug!(
                    domain,
                    entries = entries.len(),
                    hosts = %t.iter().map(|(t, _)| t.name.as_str()).collect::<Vec<_>>().join(" "),
                    "routed"
                );
                t
            }
            Err(e) => {
                // Each recipient's deferral or bounce is logged with this reason when it is recorded.
                tracing::debug!(domain, entries = entries.len(), reason = %e.reason, permanent = e.permanent, "cannot route");
                for (entry, res) in entries.iter().zip(results.iter_mut()) {
                    for (r, out) in entry.recipients.iter().zip(res.iter_mut()) {
                        if is_pending(&r.status) {
                            *out = from_route_error(&e);
                        }
                    }
                }
                for (i, r) in results.into_iter().enumerate() {
                    let _ = done.send((i, r));
                }
                return;
            }
        };

        // Entries not yet settled by some server.
        let mut todo: Vec<usize> = (0..entries.len()).collect();
        let mut last_error: Option<ClientError> = None;
        'hosts: for (target, client) in &targets {
            let client = match client {
                Ok(c) => c,
                Err(e) => {
                    // DANE: the host's TLSA records are signed but could not be read.
                    tracing::warn!(domain, host = %target.name, error = %e, "DANE lookup failed, trying the next host");
                    last_error = Some(ClientError::Protocol(e.clone()));
                    continue;
                }
            };
            for addr in &target.addrs {
                if todo.is_empty() {
                    break 'hosts;
                }
                let mut conn = match Connection::connect(*addr, &target.name, client).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::info!(domain, host = %target.name, %addr, error = %e, "connection failed, trying the next host");
                        last_error = Some(e);
                        continue;
                    }
                };
                if let Some(relay) = self.config.relay.as_ref()
                    && let (Some(user), Some(pw)) = (&relay.username, &relay.password)
                    && let Err(e) = conn.authenticate(user, pw).await
                {
                    // A refused login is a configuration problem: defer, never bounce.
                    tracing::warn!(relay = %relay.host, error = %e, "relay authentication failed");
                    last_error = Some(ClientError::Protocol(format!(
                        "authentication to relay failed: {e}"
                    )));
                    conn.quit().await;
                    continue;
                }
                let remote = conn.remote.clone();
                let dsn = conn.ehlo().dsn;
                let tls_text = conn.tls_info().map_or("none".to_string(), |t| {
                    format!("{} {}", t.version, t.cipher)
                });
                tracing::debug!(domain, host = %target.name, remote = %remote, tls = %tls_text, "connected");
                let mut still: Vec<usize> = Vec::new();
                let mut broken = false;
                for &i in &todo {
                    if broken {
                        still.push(i);
                        continue;
                    }
                    let entry = &entries[i];
                    let pending: Vec<usize> = entry
                        .recipients
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| is_pending(&r.status))
                        .map(|(k, _)| k)
                        .collect();
                    for chunk in pending.chunks(MAX_RCPTS_PER_TRANSACTION) {
                        let env = OutEnvelope {
                            from: entry.sender.clone(),
                            recipients: chunk
                                .iter()
                                .map(|&k| OutRecipient {
                                    address: entry.recipients[k].address.clone(),
                                    notify: entry.recipients[k].notify.clone(),
                                    orcpt: entry.recipients[k].orcpt.clone(),
                                })
                                .collect(),
                            envid: entry.envid.clone(),
                            ret: entry.ret.clone(),
                        };
                        match conn.send(&env, &bodies[i]).await {
                            Ok(tx) => {
                                for (&k, r) in chunk.iter().zip(tx.recipients) {
                                    results[i][k] = match r {
                                        Ok(reply) => RcptResult::Delivered {
                                            reply: reply.to_string(),
                                            remote: remote.clone(),
                                            dsn,
                                        },
                                        Err(reply) if reply.is_permanent() => RcptResult::Failed {
                                            status: if reply.enhanced.is_empty() {
                                                "5.0.0".into()
                                            } else {
                                                reply.enhanced.clone()
                                            },
                                            reason: reply.to_string(),
                                            remote: Some(remote.clone()),
                                        },
                                        Err(reply) => RcptResult::Deferred {
                                            reason: reply.to_string(),
                                            remote: Some(remote.clone()),
                                        },
                                    };
                                }
                            }
                            Err(e @ ClientError::Refused { .. })
                            | Err(e @ ClientError::Unsendable { .. }) => {
                                for &k in chunk {
                                    results[i][k] = if e.is_permanent() {
                                        RcptResult::Failed {
                                            status: e.enhanced(),
                                            reason: e.to_string(),
                                            remote: Some(remote.clone()),
                                        }
                                    } else {
                                        RcptResult::Deferred {
                                            reason: e.to_string(),
                                            remote: Some(remote.clone()),
                                        }
                                    };
                                }
                            }
                            Err(e) => {
                                // The connection broke mid-transaction: nothing of this entry
                                // counts as delivered; it is tried again on the next host.
                                tracing::info!(domain, host = %target.name, error = %e, "connection lost during delivery");
                                last_error = Some(e);
                                broken = true;
                                break;
                            }
                        }
                    }
                    if broken {
                        still.push(i);
                    } else {
                        let _ = done.send((i, results[i].clone()));
                        // Each recipient's outcome is logged at INFO when it is recorded.
                        let count =
                            |f: fn(&RcptResult) -> bool| results[i].iter().filter(|r| f(r)).count();
                        tracing::debug!(
                            id = entry.smtp_id.as_deref(),
                            queue_id = entry.id,
                            domain,
                            remote = %remote,
                            tls = %tls_text,
                            delivered = count(|r| matches!(r, RcptResult::Delivered { .. })),
                            deferred = count(|r| matches!(r, RcptResult::Deferred { .. })),
                            failed = count(|r| matches!(r, RcptResult::Failed { .. })),
                            "delivery attempt"
                        );
                    }
                }
                if !broken {
                    conn.quit().await;
                }
                todo = still;
            }
        }
        if !todo.is_empty() {
            let reason =
                last_error.map_or("no host could be reached".to_string(), |e| e.to_string());
            for i in todo {
                for (k, r) in entries[i].recipients.iter().enumerate() {
                    if is_pending(&r.status) && matches!(results[i][k], RcptResult::Deferred { .. })
                    {
                        results[i][k] = RcptResult::Deferred {
                            reason: reason.clone(),
                            remote: None,
                        };
                    }
                }
                let _ = done.send((i, results[i].clone()));
            }
        }
    }

    /// The hosts to try in order, each with the client configuration its TLS policy asks for
    /// (or, for a DANE lookup that failed, why it must be skipped).
    async fn targets(&self, domain: &str) -> Result<Vec<(Target, HostClient)>, RouteError> {
        if let (Some(relay), Some(client)) = (&self.config.relay, &self.relay_client) {
            let target =
                route::relay_target(self.resolver.as_ref(), &relay.host, relay.port).await?;
            return Ok(vec![(target, Ok(client.clone()))]);
        }
        let mut targets =
            route::mx_targets(self.resolver.as_ref(), domain, self.config.remote_port).await?;
        let mut client = &self.mx_client;
        if let Some(sts) = &self.mta_sts
            && let Some(policy) = sts.policy(domain).await
        {
            match policy.mode {
                crate::mta_sts::Mode::Enforce => {
                    // RFC 8461 §4.1-4.2: only MX hosts the policy names, over TLS with a valid
                    // certificate for that name; otherwise the message waits.
                    targets.retain(|t| policy.allows(&t.name));
                    if targets.is_empty() {
                        return Err(RouteError {
                            permanent: false,
                            status: "4.7.5",
                            reason: format!("no MX host of {domain} matches its MTA-STS policy"),
                        });
                    }
                    client = &self.verified_client;
                }
                crate::mta_sts::Mode::Testing => {
                    for t in targets.iter().filter(|t| !policy.allows(&t.name)) {
                        tracing::warn!(domain, host = %t.name, "MX host not in the MTA-STS policy (testing mode: delivering anyway)");
                    }
                }
                crate::mta_sts::Mode::None => {}
            }
        }
        let mut out = Vec::with_capacity(targets.len());
        for target in targets {
            let host_client = if self.config.dane {
                self.dane_client(domain, &target.name, client).await
            } else {
                Ok(client.clone())
            };
            out.push((target, host_client));
        }
        Ok(out)
    }

    /// DANE (RFC 7672): with secure TLSA records, TLS is required and the certificate must match
    /// a usable record (DANE takes precedence over MTA-STS for that host, RFC 8461 §2); with only
    /// unusable records, TLS is required without authentication; without secure records, the
    /// domain's own policy (`fallback`) applies.
    async fn dane_client(&self, domain: &str, host: &str, fallback: &ClientConfig) -> HostClient {
        let records = match self.resolver.tlsa(host, self.config.remote_port).await {
            Ok(None) => return Ok(fallback.clone()),
            Ok(Some(records)) => records,
            Err(e) => {
                return Err(format!(
                    "DANE: TLSA records of {host} could not be read: {e}"
                ));
            }
        };
        let usable: Vec<net::dane::Tlsa> = records
            .into_iter()
            .filter(net::dane::Tlsa::is_usable)
            .collect();
        tracing::info!(
            domain,
            host,
            usable = usable.len(),
            "DANE: secure TLSA records"
        );
        let tls = if usable.is_empty() {
            net::client::opportunistic()
        } else {
            net::dane::client_config(usable, vec![host.to_string(), domain.to_string()])
        };
        Ok(ClientConfig {
            helo_name: self.config.hostname.clone(),
            tls_mode: TlsMode::Required,
            tls,
            timeouts: self.config.timeouts.clone(),
        })
    }
}

/// The client configuration for one host, or why the host must be skipped for now.
type HostClient = Result<ClientConfig, String>;

/// The client configurations for MX delivery and for the relay, from the queue configuration.
pub fn client_configs(config: &QueueConfig) -> (ClientConfig, Option<ClientConfig>) {
    let mx = ClientConfig {
        helo_name: config.hostname.clone(),
        tls_mode: match config.tls {
            crate::config::OutboundTls::Opportunistic => TlsMode::Opportunistic,
            crate::config::OutboundTls::Required => TlsMode::Required,
        },
        tls: match config.tls {
            crate::config::OutboundTls::Opportunistic => net::client::opportunistic(),
            crate::config::OutboundTls::Required => net::client::verifying_with(&config.extra_ca),
        },
        timeouts: config.timeouts.clone(),
    };
    let relay = config.relay.as_ref().map(|r| ClientConfig {
        helo_name: config.hostname.clone(),
        tls_mode: match r.security {
            RelaySecurity::StartTls => TlsMode::Required,
            RelaySecurity::Implicit => TlsMode::Implicit,
        },
        tls: if r.verify_certificate {
            net::client::verifying_with(&config.extra_ca)
        } else {
            net::client::opportunistic()
        },
        timeouts: config.timeouts.clone(),
    });
    (mx, relay)
}
