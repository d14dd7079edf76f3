//! Binds every configured listener of the protocols that exist and starts their accept loops.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use net::limits::{ConnLimiter, UserSessions};
use net::live::Live;
use net::shutdown::Shutdown;
use net::throttle::{LoginThrottle, ThrottleConfig};
use net::tls::TlsReloader;
use smtp::delivery::MailBackend;
use smtp::server::{Service, serve_tcp};
use smtp::{BareNewline, Mode, SmtpConfig};

use crate::Failure;
use crate::config::{self, BareNewlinePolicy, Config, ListenersConfig};
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
        max_junk_commands: cfg.smtp.max_junk_commands,
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

/// Connections waiting to be accepted on one listening socket (tokio's default).
const LISTEN_BACKLOG: i32 = 1024;
/// Mode of an LMTP Unix socket: the MTA delivering over it runs as another user, which may
/// connect when it is in the server's group (the umask alone would make it 0600).
const LMTP_SOCKET_MODE: u32 = 0o660;

/// TCP listeners bound ahead of [`start`], by service in configuration order: `serve` binds them
/// before it drops root, so that ports below 1024 can be bound (see `privileges`).
#[derive(Debug, Default)]
pub struct Prebound {
    tcp: HashMap<&'static str, VecDeque<Option<std::net::TcpListener>>>,
}

/// Ports with an IPv4 address in the configuration: `[::]` on such a port is bound IPv6-only so
/// that both can be bound.
fn ipv4_ports(cfg: &Config) -> HashSet<u16> {
    cfg.listeners
        .services()
        .iter()
        .flat_map(|(_, list)| ListenersConfig::socket_addrs(list))
        .filter(|a| a.is_ipv4() && a.port() != 0)
        .map(|a| a.port())
        .collect()
}

/// Binds every TCP listener of the configuration (Unix sockets are bound by [`start`]).
pub fn prebind(cfg: &Config) -> Result<Prebound, Failure> {
    let v4_ports = ipv4_ports(cfg);
    let mut pre = Prebound::default();
    for (service, list) in cfg.listeners.services() {
        for addr in list.iter().filter(|a| !a.starts_with("unix:")) {
            let l = bind_tcp(addr, service, &v4_ports)?;
            pre.tcp.entry(service).or_default().push_back(l);
        }
    }
    Ok(pre)
}

impl Prebound {
    /// The next listener of `service` (bound now if it was not bound ahead); None when its
    /// address was left out (IPv6 missing, IPv4 configured on the same port).
    fn take(
        &mut self,
        service: &'static str,
        addr: &str,
        v4_ports: &HashSet<u16>,
    ) -> Result<Option<tokio::net::TcpListener>, Failure> {
        let l = match self.tcp.get_mut(service).and_then(VecDeque::pop_front) {
            Some(l) => l,
            None => bind_tcp(addr, service, v4_ports)?,
        };
        l.map(|l| {
            tokio::net::TcpListener::from_std(l)
                .map_err(|e| Failure::op(format!("cannot listen on {addr} for {service}: {e}")))
        })
        .transpose()
    }
}

/// Errors of an IPv6 socket on a system without IPv6 (kernel built or booted without it).
fn ipv6_unavailable(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAFNOSUPPORT | libc::EPROTONOSUPPORT | libc::EADDRNOTAVAIL)
    )
}

/// Binds one configured address. `[::]` is dual-stack (IPV6_V6ONLY off: IPv4 clients arrive as
/// IPv4-mapped addresses, which the accept loop turns back into IPv4) unless an IPv4 address is
/// configured on the same port; without IPv6 on the system it falls back to `0.0.0.0`, with a
/// log line.
fn bind_tcp(
    addr: &str,
    service: &'static str,
    v4_ports: &HashSet<u16>,
) -> Result<Option<std::net::TcpListener>, Failure> {
    let sa: SocketAddr = addr
        .parse()
        .map_err(|_| Failure::config(format!("listeners.{service}: bad address {addr:?}")))?;
    let any_v6 = sa.is_ipv6() && sa.ip().is_unspecified();
    let v4_on_port = sa.port() != 0 && v4_ports.contains(&sa.port());
    let only_v6 = sa.is_ipv6() && (!any_v6 || v4_on_port);
    let cannot =
        |e: std::io::Error| Failure::op(format!("cannot listen on {addr} for {service}: {e}"));
    match bind_std(sa, only_v6) {
        Ok(l) => Ok(Some(l)),
        Err(e) if any_v6 && ipv6_unavailable(&e) => {
            if v4_on_port {
                tracing::warn!(service, address = addr, error = %e, "IPv6 is not available: not listening on this address (IPv4 is configured on the same port)");
                return Ok(None);
            }
            let v4 = SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), sa.port());
            tracing::warn!(service, address = addr, fallback = %v4, error = %e, "IPv6 is not available: listening on IPv4 only");
            bind_std(v4, false).map(Some).map_err(cannot)
        }
        Err(e) => Err(cannot(e)),
    }
}

fn bind_std(sa: SocketAddr, only_v6: bool) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    // Socket::new sets close-on-exec.
    let s = Socket::new(Domain::for_address(sa), Type::STREAM, Some(Protocol::TCP))?;
    if sa.is_ipv6() {
        s.set_only_v6(only_v6)?;
    }
    // As std and tokio do on Unix: a restart can bind while old connections are in TIME_WAIT.
    s.set_reuse_address(true)?;
    s.bind(&sa.into())?;
    s.listen(LISTEN_BACKLOG)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// The connection budget of each service (`limits.max_connections` each, per client
/// `limits.max_connections_per_ip`), so that a flood of one cannot take the slots of another.
pub struct Budgets {
    /// Port 25 (MX).
    pub smtp: ConnLimiter,
    /// 587 and 465 together.
    pub submission: ConnLimiter,
    /// LMTP over TCP (its Unix socket has no per-client limit).
    pub lmtp: ConnLimiter,
    /// 143 and 993 together.
    pub imap: ConnLimiter,
    /// 110 and 995 together.
    pub pop3: ConnLimiter,
}

impl Budgets {
    fn new(cfg: &Config) -> Budgets {
        let one = || {
            ConnLimiter::new(
                cfg.limits.max_connections,
                cfg.limits.max_connections_per_ip,
            )
        };
        Budgets {
            smtp: one(),
            submission: one(),
            lmtp: one(),
            imap: one(),
            pop3: one(),
        }
    }

    fn of(&self, mode: Mode) -> ConnLimiter {
        match mode {
            Mode::Mx => self.smtp.clone(),
            Mode::Submission => self.submission.clone(),
            Mode::Lmtp => self.lmtp.clone(),
        }
    }

    fn all(&self) -> [&ConnLimiter; 5] {
        [
            &self.smtp,
            &self.submission,
            &self.lmtp,
            &self.imap,
            &self.pop3,
        ]
    }
}

/// What a config reload (SIGHUP) can change in the running listeners.
pub struct Running {
    pub smtp: Live<SmtpConfig>,
    /// The SMTP data spool and its memory budget: kept by a reload (its keys need a restart).
    pub spool: Arc<smtp::spool::SpoolConfig>,
    pub imap: Live<imap::ImapConfig>,
    pub pop3: Live<pop3::Pop3Config>,
    pub budgets: Budgets,
    pub user_sessions: UserSessions,
    pub throttle: Arc<LoginThrottle>,
}

impl Running {
    /// Applies the keys of `cfg` that take effect without a restart: protocol settings for new
    /// sessions, connection limits for new connections, login throttling at once.
    pub fn apply(&self, cfg: &Config) {
        self.smtp.set(SmtpConfig {
            spool: self.spool.clone(),
            ..smtp_config(cfg)
        });
        self.imap.set(imap_config(cfg));
        self.pop3.set(pop3_config(cfg));
        for l in self.budgets.all() {
            l.set_limits(
                cfg.limits.max_connections,
                cfg.limits.max_connections_per_ip,
            );
        }
        self.user_sessions
            .set_max(cfg.limits.max_connections_per_user);
        self.throttle.set_config(throttle_config(cfg));
    }
}

/// Starts every listener (those in `pre`, and binds the others); returns what is listening where,
/// and the handles a reload uses. Accept loops stop, and sessions say goodbye, when `shutdown` begins.
pub async fn start(
    ctx: &Context,
    tls: TlsReloader,
    resolver: mailauth::Authenticator,
    mut pre: Prebound,
    shutdown: &Shutdown,
) -> Result<(Vec<Bound>, Running), Failure> {
    let cfg = &ctx.config;
    let v4_ports = ipv4_ports(cfg);
    let throttle = Arc::new(LoginThrottle::new(throttle_config(cfg)));
    // Bans and known sources from the store; then `facteur ban remove` reaches this process.
    directory::login_sync::start(ctx.store.clone(), throttle.clone())
        .await
        .map_err(|e| Failure::op(format!("cannot load login bans: {e}")))?;
    let backend = Arc::new(MailBackend {
        store: ctx.store.clone(),
        directory: ctx.directory.clone(),
        throttle: throttle.clone(),
        hostname: cfg.server.hostname.clone(),
        queue_wake: Some(ctx.queue_wake.clone()),
        srs: Some(crate::outbound::srs(ctx)?),
        checks: crate::authn::inbound_checks(cfg, resolver, &ctx.store, &ctx.directory),
        signer: Some(Arc::new(crate::authn::StoreSigner::new(ctx.store.clone()))),
        processing: smtp::spool::ProcessingBudget::new(cfg.smtp.processing_memory),
        verdicts: Arc::new(cfg.verdict.rules()),
        sieve: cfg.sieve.enabled.then(|| smtp::sieve::SieveSettings {
            engine: Arc::new(sievefilter::Engine::new(
                cfg.sieve.limits(),
                &cfg.server.hostname,
            )),
            redirects_per_day: cfg.sieve.redirects_per_day,
        }),
    });
    let budgets = Budgets::new(cfg);
    let user_sessions = UserSessions::new(cfg.limits.max_connections_per_user);
    // Message data past the threshold or the shared budget waits in the blob temp folder. The
    // same spool (and its memory budget) stays across config reloads.
    let spool = Arc::new(smtp::spool::SpoolConfig {
        dir: Some(config::resolve_path(&ctx.data, &cfg.store.blobs_dir).join("tmp")),
        threshold: cfg.smtp.spool_threshold,
        budget: smtp::spool::MemoryBudget::new(cfg.smtp.data_memory),
    });
    let service = Arc::new(Service {
        config: Live::new(SmtpConfig {
            spool: spool.clone(),
            ..smtp_config(cfg)
        }),
        backend,
        tls: Some(tls.clone()),
    });
    let imap_service = Arc::new(imap::server::Service {
        config: Live::new(imap_config(cfg)),
        backend: Arc::new(imap::MailBackend {
            store: ctx.store.clone(),
            directory: ctx.directory.clone(),
            throttle: throttle.clone(),
            user_sessions: user_sessions.clone(),
            learner: Some(Arc::new(crate::content::UserLearner {
                store: ctx.store.clone(),
                classifier: filter::Classifier::new(cfg.classifier.settings()),
            })),
        }),
        tls: Some(tls.clone()),
    });
    // POP3 has its own maildrop locks (one session per account).
    let pop3_service = Arc::new(pop3::server::Service {
        config: Live::new(pop3_config(cfg)),
        backend: Arc::new(pop3::MailBackend {
            store: ctx.store.clone(),
            directory: ctx.directory.clone(),
            throttle: throttle.clone(),
            locks: pop3::lock::MaildropLocks::default(),
            login_times: pop3::delay::LoginTimes::default(),
        }),
        tls: Some(tls),
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
            let Some(l) = pre.take(name, addr, &v4_ports)? else {
                continue;
            };
            let local = l
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| addr.clone());
            tokio::spawn(serve_tcp(
                l,
                mode,
                implicit,
                service.clone(),
                budgets.of(mode),
                shutdown.clone(),
            ));
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
            let Some(l) = pre.take(name, addr, &v4_ports)? else {
                continue;
            };
            let local = l
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| addr.clone());
            tokio::spawn(imap::server::serve_tcp(
                l,
                implicit,
                imap_service.clone(),
                budgets.imap.clone(),
                shutdown.clone(),
            ));
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
            let Some(l) = pre.take(name, addr, &v4_ports)? else {
                continue;
            };
            let local = l
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| addr.clone());
            tokio::spawn(pop3::server::serve_tcp(
                l,
                implicit,
                pop3_service.clone(),
                budgets.pop3.clone(),
                shutdown.clone(),
            ));
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
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(LMTP_SOCKET_MODE))
                    .map_err(|e| {
                        Failure::op(format!("cannot set the mode of {}: {e}", path.display()))
                    })?;
            }
            tokio::spawn(smtp::server::serve_unix(
                l,
                service.clone(),
                budgets.lmtp.clone(),
                shutdown.clone(),
            ));
            bound.push(Bound {
                service: "lmtp",
                address: format!("unix:{}", path.display()),
                note: "LMTP",
            });
        } else {
            let Some(l) = pre.take("lmtp", addr, &v4_ports)? else {
                continue;
            };
            let local = l
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| addr.clone());
            tokio::spawn(serve_tcp(
                l,
                Mode::Lmtp,
                false,
                service.clone(),
                budgets.lmtp.clone(),
                shutdown.clone(),
            ));
            bound.push(Bound {
                service: "lmtp",
                address: local,
                note: "LMTP",
            });
        }
    }
    let running = Running {
        smtp: service.config.clone(),
        spool,
        imap: imap_service.config.clone(),
        pop3: pop3_service.config.clone(),
        budgets,
        user_sessions,
        throttle,
    };
    Ok((bound, running))
}
