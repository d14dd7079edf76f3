//! Wiring of the outbound queue: its configuration from `[queue]` and `[dns]`, DSNs delivered
//! through the SMTP delivery pipeline, and the scheduler started beside the listeners.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use net::throttle::LoginThrottle;
use queue::{Deliverer, Injector, OutboundTls, Queue, QueueConfig, Relay, RelaySecurity};
use smtp::delivery::MailBackend;

use crate::Failure;
use crate::config::{Config, OutboundTlsPolicy, RelaySecurityPolicy};
use crate::context::Context;

pub fn queue_config(cfg: &Config) -> QueueConfig {
    let q = &cfg.queue;
    QueueConfig {
        hostname: cfg.server.hostname.clone(),
        remote_port: q.remote_port,
        concurrency: q.concurrency,
        per_domain: q.per_domain,
        retry_initial: Duration::from_secs(q.retry_initial_secs),
        retry_max: Duration::from_secs(q.retry_max_secs),
        max_age: Duration::from_secs(q.max_age_secs),
        delay_warning: (q.delay_warning_secs > 0)
            .then(|| Duration::from_secs(q.delay_warning_secs)),
        tls: match q.tls {
            OutboundTlsPolicy::Opportunistic => OutboundTls::Opportunistic,
            OutboundTlsPolicy::Required => OutboundTls::Required,
        },
        relay: (!q.relay_host.is_empty()).then(|| Relay {
            host: q.relay_host.clone(),
            port: q.relay_port,
            security: match q.relay_security {
                RelaySecurityPolicy::Starttls => RelaySecurity::StartTls,
                RelaySecurityPolicy::Tls => RelaySecurity::Implicit,
            },
            verify_certificate: q.relay_verify_certificate,
            username: (!q.relay_username.is_empty()).then(|| q.relay_username.clone()),
            password: (!q.relay_password.is_empty()).then(|| q.relay_password.clone()),
        }),
        mta_sts: q.mta_sts,
        mta_sts_port: q.mta_sts_port,
        dane: q.dane,
        ..QueueConfig::default()
    }
}

pub fn nameservers(cfg: &Config) -> Vec<SocketAddr> {
    cfg.dns
        .nameservers
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// The one resolver of the server (outbound routing, MTA-STS, SPF/DKIM/DMARC, `facteur dns`):
/// the `[dns]` nameservers, or the system's when none are configured.
pub fn resolver(cfg: &Config) -> Result<mailauth::Authenticator, Failure> {
    let ns = nameservers(cfg);
    mailauth::Authenticator::new((!ns.is_empty()).then_some(ns))
        .map_err(|e| Failure::op(format!("cannot set up DNS resolution: {e}")))
}

/// The SRS secret, in the data folder (made at first use, readable by the server's user only).
pub const SRS_KEY_FILE: &str = "srs.key";
/// Bytes of randomness in a new SRS secret.
const SRS_KEY_BYTES: usize = 32;

/// The sender rewriting of this server: our primary domain and the secret kept in the data folder.
pub fn srs(ctx: &Context) -> Result<Arc<smtp::srs::Srs>, Failure> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = ctx.data.join(SRS_KEY_FILE);
    let secret = match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
        Ok(_) => return Err(Failure::op(format!("{} is empty", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let bytes: [u8; SRS_KEY_BYTES] = rand::random();
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(hex.as_bytes())
                        .and_then(|()| f.sync_all())
                        .map_err(|e| {
                            Failure::op(format!("cannot write {}: {e}", path.display()))
                        })?;
                    hex
                }
                // Another process (the CLI, a second start) made it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    std::fs::read_to_string(&path)
                        .map_err(|e| Failure::op(format!("cannot read {}: {e}", path.display())))?
                        .trim()
                        .to_string()
                }
                Err(e) => {
                    return Err(Failure::op(format!(
                        "cannot create {}: {e}",
                        path.display()
                    )));
                }
            }
        }
        Err(e) => return Err(Failure::op(format!("cannot read {}: {e}", path.display()))),
    };
    Ok(Arc::new(smtp::srs::Srs::new(
        secret.as_bytes(),
        &ctx.config.server.primary_domain,
    )))
}

/// DSNs go through the same pipeline as mail: local INBOX or the queue, from the null sender.
struct DsnInjector(MailBackend);

#[async_trait]
impl Injector for DsnInjector {
    async fn inject_dsn(&self, to: &str, raw: Vec<u8>) -> Result<(), String> {
        self.0.inject("", to, &raw).await
    }
}

/// Starts the scheduler; it runs until the process ends.
pub fn start(
    ctx: &Context,
    throttle: Arc<LoginThrottle>,
    resolver: mailauth::Authenticator,
) -> Result<Arc<Queue>, Failure> {
    let mut config = queue_config(&ctx.config);
    if !ctx.config.queue.ca_file.as_os_str().is_empty() {
        let path = crate::config::resolve_path(&ctx.data, &ctx.config.queue.ca_file);
        config.extra_ca = net::client::load_ca_file(&path)
            .map_err(|e| Failure::config(format!("queue.ca_file: {e}")))?;
    }
    let config = Arc::new(config);
    let deliverer = Deliverer::new(config.clone(), Arc::new(resolver));
    let injector = DsnInjector(MailBackend {
        store: ctx.store.clone(),
        directory: ctx.directory.clone(),
        throttle,
        hostname: ctx.config.server.hostname.clone(),
        queue_wake: Some(ctx.queue_wake.clone()),
        srs: Some(srs(ctx)?),
        checks: smtp::pipeline::Pipeline::default(),
        signer: Some(Arc::new(crate::authn::StoreSigner::new(ctx.store.clone()))),
        processing: smtp::spool::ProcessingBudget::new(ctx.config.smtp.processing_memory),
        verdicts: Default::default(),
        // DSNs are our own messages: no script runs on them.
        sieve: None,
    });
    let q = Queue::new(
        ctx.store.clone(),
        config,
        deliverer,
        Arc::new(injector),
        ctx.queue_wake.clone(),
    );
    q.start();
    Ok(q)
}
