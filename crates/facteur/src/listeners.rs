//! Binds every configured listener of the protocols that exist and starts their accept loops.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use net::limits::ConnLimiter;
use net::throttle::{LoginThrottle, ThrottleConfig};
use net::tls::TlsReloader;
use smtp::delivery::MailBackend;
use smtp::server::{Service, serve_tcp};
use smtp::{BareNewline, Mode, SmtpConfig};

use crate::Failure;
use crate::config::{self, BareNewlinePolicy, Config};
use crate::context::Context;

/// One bound listener, for the banner and for tests (which bind port 0).
#[derive(Debug, Clone)]
pub struct Bound {
    pub service: &'static str,
    pub address: String,
    pub note: &'static str,
}

pub fn throttle_config(cfg: &Config) -> ThrottleConfig {
    ThrottleConfig {
        max_failures_per_ip: cfg.auth.max_failures_per_ip,
        max_failures_per_account: cfg.auth.max_failures_per_account,
        base_delay: Duration::from_millis(cfg.auth.base_delay_ms),
        max_delay: Duration::from_millis(cfg.auth.max_delay_ms),
        window: Duration::from_secs(cfg.auth.window_secs),
        ban: Duration::from_secs(cfg.auth.ban_secs),
        ..ThrottleConfig::default()
    }
}

pub fn imap_config(cfg: &Config) -> imap::ImapConfig {
    imap::ImapConfig {
        hostname: cfg.server.hostname.clone(),
        max_message_size: cfg.limits.max_message_size,
        line_length: cfg.limits.imap_line_length,
        max_errors: cfg.limits.max_bad_commands,
        pre_auth_timeout: Duration::from_secs(cfg.limits.command_timeout_secs),
        idle_timeout: Duration::from_secs(cfg.limits.idle_timeout_secs),
        max_search_keys: cfg.limits.imap_search_keys,
    }
}

pub fn pop3_config(cfg: &Config) -> pop3::Pop3Config {
    pop3::Pop3Config {
        hostname: cfg.server.hostname.clone(),
        max_errors: cfg.limits.max_bad_commands,
        pre_auth_timeout: Duration::from_secs(cfg.limits.command_timeout_secs),
        idle_timeout: Duration::from_secs(cfg.limits.idle_timeout_secs),
        expire: match cfg.pop3.expire {
            config::Pop3Expire::Never(_) => pop3::Expire::Never,
            config::Pop3Expire::Days(d) => pop3::Expire::Days(d),
        },
        login_delay: (cfg.pop3.login_delay_secs > 0)
            .then(|| Duration::from_secs(cfg.pop3.login_delay_secs)),
        ..pop3::Pop3Config::default()
    }
}

pub fn smtp_config(cfg: &Config) -> SmtpConfig {
    SmtpConfig {
        hostname: cfg.server.hostname.clone(),
        max_message_size: cfg.limits.max_message_size,
        max_recipients: cfg.limits.max_recipients,
        line_length: cfg.limits.smtp_line_length,
        text_line_length: cfg.limits.text_line_length,
        max_errors: cfg.limits.max_bad_commands,
        command_timeout: Duration::from_secs(cfg.limits.command_timeout_secs),
        data_timeout: Duration::from_secs(cfg.smtp.data_timeout_secs),
        min_data_rate: cfg.smtp.min_data_rate,
        bare_newline: match cfg.smtp.bare_newline {
            BareNewlinePolicy::Reject => BareNewline::Reject,
            BareNewlinePolicy::Normalize => BareNewline::Normalize,
        },
        vrfy: false,
        greeting_delay: Duration::from_millis(cfg.smtp.greeting_delay_ms),
        primary_domain: cfg.server.primary_domain.clone(),
        ..SmtpConfig::default()
    }
}

async fn bind(addr: &str, service: &str) -> Result<tokio::net::TcpListener, Failure> {
    let sa: SocketAddr = addr
        .parse()
        .map_err(|_| Failure::config(format!("listeners.{service}: bad address {addr:?}")))?;
    tokio::net::TcpListener::bind(sa)
        .await
        .map_err(|e| Failure::op(format!("cannot listen on {addr} for {service}: {e}")))
}

/// Binds and starts every listener; returns what is listening where.
pub async fn start(
    ctx: &Context,
    tls: TlsReloader,
    resolver: mailauth::Authenticator,
) -> Result<Vec<Bound>, Failure> {
    let cfg = &ctx.config;
    let throttle = Arc::new(LoginThrottle::new(throttle_config(cfg)));
    let backend = Arc::new(MailBackend {
        store: ctx.store.clone(),
        directory: ctx.directory.clone(),
        throttle: throttle.clone(),
        hostname: cfg.server.hostname.clone(),
        queue_wake: Some(ctx.queue_wake.clone()),
        srs: Some(crate::outbound::srs(ctx)?),
        checks: crate::authn::inbound_checks(cfg, resolver),
        signer: Some(Arc::new(crate::authn::StoreSigner::new(ctx.store.clone()))),
        processing: smtp::spool::ProcessingBudget::new(cfg.smtp.processing_memory),
    });
    // One connection budget for all SMTP-family listeners.
    let limiter = ConnLimiter::new(
        cfg.limits.max_connections,
        cfg.limits.max_connections_per_ip,
    );
    // Message data past the threshold or the shared budget waits in the blob temp folder.
    let spool = Arc::new(smtp::spool::SpoolConfig {
        dir: Some(config::resolve_path(&ctx.data, &cfg.store.blobs_dir).join("tmp")),
        threshold: cfg.smtp.spool_threshold,
        budget: smtp::spool::MemoryBudget::new(cfg.smtp.data_memory),
    });
    let service = Arc::new(Service {
        config: Arc::new(SmtpConfig {
            spool,
            ..smtp_config(cfg)
        }),
        backend,
        tls: Some(tls.clone()),
        limiter,
    });
    // IMAP has its own connection budget: long-lived IDLE sessions must not starve SMTP.
    let imap_service = Arc::new(imap::server::Service {
        config: Arc::new(imap_config(cfg)),
        backend: Arc::new(imap::MailBackend {
            store: ctx.store.clone(),
            directory: ctx.directory.clone(),
            throttle: throttle.clone(),
            user_sessions: net::limits::UserSessions::new(cfg.limits.max_connections_per_user),
        }),
        tls: Some(tls.clone()),
        limiter: ConnLimiter::new(
            cfg.limits.max_connections,
            cfg.limits.max_connections_per_ip,
        ),
    });
    // POP3 has its own connection budget too, and its own maildrop locks (one session per account).
    let pop3_service = Arc::new(pop3::server::Service {
        config: Arc::new(pop3_config(cfg)),
        backend: Arc::new(pop3::MailBackend {
            store: ctx.store.clone(),
            directory: ctx.directory.clone(),
            throttle: throttle.clone(),
            locks: pop3::lock::MaildropLocks::default(),
            login_times: pop3::delay::LoginTimes::default(),
        }),
        tls: Some(tls),
        limiter: ConnLimiter::new(
            cfg.limits.max_connections,
            cfg.limits.max_connections_per_ip,
        ),
    });
    let mut bound = Vec::new();
    let plan: [(&'static str, &[String], Mode, bool, &'static str); 3] = [
        (
            "smtp",
            &cfg.listeners.smtp,
            Mode::Mx,
            false,
            "SMTP, STARTTLS",
        ),
        (
            "submission",
            &cfg.listeners.submission,
            Mode::Submission,
            false,
            "submission, STARTTLS + AUTH",
        ),
        (
            "submissions",
            &cfg.listeners.submissions,
            Mode::Submission,
            true,
            "submission, implicit TLS + AUTH",
        ),
    ];
    for (name, addrs, mode, implicit, note) in plan {
        for addr in addrs {
            let l = bind(addr, name).await?;
            let local = l
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| addr.clone());
            tokio::spawn(serve_tcp(l, mode, implicit, service.clone()));
            bound.push(Bound {
                service: name,
                address: local,
                note,
            });
        }
    }
    let imap_plan: [(&'static str, &[String], bool, &'static str); 2] = [
        ("imap", &cfg.listeners.imap, false, "IMAP, STARTTLS"),
        ("imaps", &cfg.listeners.imaps, true, "IMAP, implicit TLS"),
    ];
    for (name, addrs, implicit, note) in imap_plan {
        for addr in addrs {
            let l = bind(addr, name).await?;
            let local = l
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| addr.clone());
            tokio::spawn(imap::server::serve_tcp(l, implicit, imap_service.clone()));
            bound.push(Bound {
                service: name,
                address: local,
                note,
            });
        }
    }
    let pop3_plan: [(&'static str, &[String], bool, &'static str); 2] = [
        ("pop3", &cfg.listeners.pop3, false, "POP3, STLS"),
        ("pop3s", &cfg.listeners.pop3s, true, "POP3, implicit TLS"),
    ];
    for (name, addrs, implicit, note) in pop3_plan {
        for addr in addrs {
            let l = bind(addr, name).await?;
            let local = l
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| addr.clone());
            tokio::spawn(pop3::server::serve_tcp(l, implicit, pop3_service.clone()));
            bound.push(Bound {
                service: name,
                address: local,
                note,
            });
        }
    }
    for addr in &cfg.listeners.lmtp {
        if let Some(path) = addr.strip_prefix("unix:") {
            let path = config::resolve_path(&ctx.data, std::path::Path::new(path));
            let _ = std::fs::remove_file(&path);
            let l = tokio::net::UnixListener::bind(&path).map_err(|e| {
                Failure::op(format!("cannot listen on {} for lmtp: {e}", path.display()))
            })?;
            tokio::spawn(smtp::server::serve_unix(l, service.clone()));
            bound.push(Bound {
                service: "lmtp",
                address: format!("unix:{}", path.display()),
                note: "LMTP",
            });
        } else {
            let l = bind(addr, "lmtp").await?;
            let local = l
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| addr.clone());
            tokio::spawn(serve_tcp(l, Mode::Lmtp, false, service.clone()));
            bound.push(Bound {
                service: "lmtp",
                address: local,
                note: "LMTP",
            });
        }
    }
    Ok(bound)
}
