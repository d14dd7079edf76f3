//! `facteur serve`: first-start setup, then run until SIGINT/SIGTERM (reloading the config on
//! SIGHUP, see `reload.rs`), then stop politely: listeners close, each session finishes the
//! command it is running and gets its protocol's shutdown notice, and the process exits once all
//! have ended or [`SHUTDOWN_GRACE`] has passed.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::Failure;
use crate::cli::{Cli, ServeArgs};
use crate::config::{self, Config};
use crate::context::{self, Context};
use crate::logging;
use crate::reload::Reloader;

/// Longest wait, after SIGTERM, for sessions to finish their command and say goodbye; then the
/// process exits anyway (systemd's default stop timeout is 90 s).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// What the first start did, printed once.
struct FirstStart {
    created_config: bool,
    created_cert: bool,
    postmaster: Option<(String, String)>,
    /// Where the postmaster's password was written (first start only).
    password_file: Option<std::path::PathBuf>,
    /// Printed before "Ready." (also logged).
    warnings: Vec<String>,
    cert_path: std::path::PathBuf,
}

/// Creates the data folder and writes the default config if there is none.
fn ensure_data_folder(cli: &Cli) -> Result<bool, Failure> {
    let data = &cli.data;
    std::fs::create_dir_all(data).map_err(|e| {
        Failure::op(format!(
            "cannot create the data folder {}: {e}",
            data.display()
        ))
    })?;
    // Probe writability now rather than failing half-way through setup.
    let probe = data.join(".facteur-write-test");
    std::fs::write(&probe, b"ok").map_err(|e| {
        Failure::op(format!(
            "the data folder {} is not writable: {e}",
            data.display()
        ))
    })?;
    let _ = std::fs::remove_file(&probe);
    let path = context::config_path(cli);
    if path.exists() {
        return Ok(false);
    }
    let text = config::default_toml(context::privileged());
    write_durably(&path, text.as_bytes()).map_err(|e| {
        Failure::op(format!(
            "cannot write the default config {}: {e}",
            path.display()
        ))
    })?;
    Ok(true)
}

fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Creates the primary domain and its postmaster on a store without any domain.
async fn ensure_primary_domain(
    ctx: &Context,
    domain: &str,
) -> Result<Option<(String, String)>, Failure> {
    if !ctx.directory.list_domains().await?.is_empty() {
        return Ok(None);
    }
    ctx.directory.add_domain(domain).await?;
    let address = format!("postmaster@{domain}");
    let (_, password) = ctx
        .directory
        .add_account(&address, None, "Postmaster", None)
        .await?;
    let password =
        password.ok_or_else(|| Failure::op("no password was generated for the postmaster"))?;
    Ok(Some((address, password)))
}

pub async fn run(cli: &Cli, args: &ServeArgs) -> Result<(), Failure> {
    let created_config = ensure_data_folder(cli)?;
    let config_path = context::config_path(cli);
    let mut cfg: Config =
        config::load_for(&config_path, context::privileged()).map_err(Failure::config)?;
    let format = if cli.json {
        config::LogFormat::Json
    } else {
        cfg.log.format
    };
    logging::init(format, &cfg.log, &cli.data).map_err(Failure::op)?;
    // Held until the server stops: a second `serve` on this folder is refused.
    let _lock = crate::lockfile::acquire(&cli.data)?;
    let prebound = bind_then_drop_root(cli, args, &cfg)?;
    tighten_data_folder(&cli.data)?;

    // First start (no domain yet): --domain and --hostname go into the config file, so every
    // later start and every admin command sees the same primary domain and host name.
    let first_start = context::open_store(&cli.data, &cfg)?
        .domain_list()
        .await?
        .is_empty();
    let mut warnings = crate::setup::apply_server_options(
        &config_path,
        &mut cfg,
        args,
        first_start,
        created_config,
        context::privileged(),
    )?;
    warnings.extend(crate::setup::hostname_warning(
        &cfg.server.hostname,
        &config_path,
    ));
    for w in &warnings {
        tracing::warn!("{w}");
    }

    let cert = config::resolve_path(&cli.data, &cfg.tls.cert);
    let key = config::resolve_path(&cli.data, &cfg.tls.key);
    let created_cert =
        net::tls::ensure_self_signed(&cert, &key, &cfg.server.hostname).map_err(Failure::op)?;
    // Loads the pair now, so a broken certificate stops the start with a clear error.
    let tls = net::tls::TlsReloader::new(&cert, &key, cfg.tls.min_version).map_err(Failure::op)?;

    let domain = cfg.server.primary_domain.clone();
    let ctx = Context::with_config(cli.data.clone(), cfg)?;
    let postmaster = ensure_primary_domain(&ctx, &domain).await?;
    // Kept in a file at once (the ports are already bound, so what can still fail is rare: a
    // disk that fills up); a start that fails from here on does not lose it.
    let password_file = match &postmaster {
        Some((address, password)) => Some(
            crate::setup::write_initial_password(&cli.data, address, password).map_err(|e| {
                Failure::op(format!(
                    "cannot write {}: {e}; the password of {address} is {password}",
                    cli.data.join(crate::setup::INITIAL_PASSWORD_FILE).display()
                ))
            })?,
        ),
        None => None,
    };
    // Every domain gets DKIM keys (RSA and Ed25519) the first time the server sees it without.
    // They are pending: they sign once their DNS records are seen (`facteur dns DOMAIN --check`,
    // `facteur dkim activate`, or the server's own hourly check).
    for d in ctx.directory.list_domains().await? {
        let made = crate::authn::ensure_keys(&ctx.store, &d.name)
            .await
            .map_err(|e| Failure::op(format!("cannot make DKIM keys for {}: {e}", d.name)))?;
        if !made.is_empty() {
            tracing::info!(domain = %d.name, "DKIM keys generated; publish them: facteur dns {}", d.name);
        }
    }
    let first = FirstStart {
        created_config,
        created_cert,
        postmaster,
        password_file,
        warnings,
        cert_path: cert,
    };
    let shutdown = net::shutdown::Shutdown::new();
    let (bound, running) = if args.init_only {
        (Vec::new(), None)
    } else {
        // One resolver (and one DNS cache) for the inbound checks and the outbound queue.
        let resolver = crate::outbound::resolver(&ctx.config)?;
        let (bound, running) =
            crate::listeners::start(&ctx, tls.clone(), resolver.clone(), prebound, &shutdown)
                .await?;
        let throttle = std::sync::Arc::new(net::throttle::LoginThrottle::new(
            crate::listeners::throttle_config(&ctx.config),
        ));
        crate::outbound::start(&ctx, throttle, resolver.clone())?;
        crate::dkim_cmd::start_publication_watch(&ctx, resolver);
        crate::quarantine_cmd::start_expiry(&ctx);
        (bound, Some(running))
    };
    print_banner(cli, &ctx, &first, &bound, args.init_only);
    tracing::info!(data = %cli.data.display(), backend = ctx.store.backend(), "facteur started");

    if args.init_only {
        return Ok(());
    }
    let mut reloader = Reloader {
        path: context::config_path(cli),
        data: cli.data.clone(),
        privileged: context::privileged(),
        current: (*ctx.config).clone(),
        running,
        tls,
    };
    wait_for_shutdown(&mut reloader).await;
    stop(&shutdown).await;
    Ok(())
}

/// Binds the listeners while still root, then switches to `server.user` (or `--user`) for good;
/// as root, the data folder is given to that user first. Without root, only binds.
fn bind_then_drop_root(
    cli: &Cli,
    args: &ServeArgs,
    cfg: &Config,
) -> Result<crate::listeners::Prebound, Failure> {
    use crate::privileges::{self, RunAs};
    let user = args.user.as_deref().unwrap_or(&cfg.server.user);
    let run_as = privileges::plan(user)?;
    if let RunAs::User(u) = &run_as {
        privileges::check_reachable(&cli.data, u)?;
        privileges::own_data_folder(&cli.data, u)?;
    }
    let prebound = if args.init_only {
        crate::listeners::Prebound::default()
    } else {
        crate::listeners::prebind(cfg)?
    };
    privileges::drop_root(&run_as)?;
    Ok(prebound)
}

/// Takes group and world access away from anything in the data folder that has it.
fn tighten_data_folder(data: &Path) -> Result<(), Failure> {
    crate::datadir::tighten_and_log(data).map_err(|e| {
        Failure::op(format!(
            "cannot check the permissions of the data folder {}: {e}",
            data.display()
        ))
    })
}

/// Closes the listeners, asks every session to end, and waits for them up to [`SHUTDOWN_GRACE`]
/// (a second SIGTERM or SIGINT stops waiting).
async fn stop(shutdown: &net::shutdown::Shutdown) {
    use tokio::signal::unix::{SignalKind, signal};
    tracing::info!("facteur stopping: closing the listeners and the sessions");
    shutdown.begin();
    let again = async {
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            },
            _ => std::future::pending().await,
        }
    };
    tokio::select! {
        r = tokio::time::timeout(SHUTDOWN_GRACE, shutdown.drained()) => match r {
            Ok(()) => tracing::info!("facteur stopped: every session has ended"),
            Err(_) => tracing::warn!(
                open = shutdown.running(),
                "facteur stopped with sessions still open after the grace period"
            ),
        },
        _ = again => tracing::warn!(
            open = shutdown.running(),
            "facteur stopped at a second signal with sessions still open"
        ),
    }
}

fn print_banner(
    cli: &Cli,
    ctx: &Context,
    first: &FirstStart,
    bound: &[crate::listeners::Bound],
    init_only: bool,
) {
    let mut out = String::new();
    out.push_str(&format!(
        "Facteur {} — data folder {}\n",
        env!("CARGO_PKG_VERSION"),
        cli.data.display()
    ));
    if first.created_config {
        out.push_str(&format!(
            "Wrote the default config to {}\n",
            context::config_path(cli).display()
        ));
    }
    if first.created_cert {
        out.push_str(&format!(
            "Made a self-signed TLS certificate for {}\n",
            ctx.config.server.hostname
        ));
    }
    if let Some((address, password)) = &first.postmaster {
        out.push_str(&format!("Created the postmaster account {address}\n"));
        out.push_str(&format!("Its password: {password}\n"));
        if let Some(file) = &first.password_file {
            out.push_str(&crate::setup::wrap(&format!(
                "It is also in {} (readable by this user only): delete that file once you have \
                 noted it.",
                file.display()
            )));
        }
    } else {
        let file = cli.data.join(crate::setup::INITIAL_PASSWORD_FILE);
        if file.exists() {
            out.push_str(&crate::setup::wrap(&format!(
                "The postmaster's first password is still in {}: delete that file once you have \
                 noted it.",
                file.display()
            )));
        }
    }
    for w in &first.warnings {
        out.push_str(&crate::setup::wrap(w));
    }
    if !init_only {
        out.push_str("Listening:\n");
        for b in bound {
            out.push_str(&format!(
                "  {:<12} {:<24} {}\n",
                b.service, b.address, b.note
            ));
        }
    }
    if first.postmaster.is_some() {
        let steps = crate::setup::NextSteps {
            cli,
            cfg: &ctx.config,
            domain: &ctx.config.server.primary_domain,
            self_signed: first.created_cert,
            cert_path: &first.cert_path,
        };
        out.push_str(&steps.render());
    }
    out.push_str("Ready.\n");
    print!("{out}");
    let _ = std::io::stdout().flush();
}

/// Runs until SIGINT or SIGTERM; SIGHUP reloads the configuration and the TLS certificate without
/// dropping sessions.
async fn wait_for_shutdown(reloader: &mut Reloader) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => {
                // logrotate moved the log file away: write to a new one.
                logging::reopen();
                reloader.reload();
            }
        }
    }
}
