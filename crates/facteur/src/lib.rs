//! Facteur: the all-in-one mail server. The binary's `main` calls [`run_cli`]; the modules are public
//! so integration tests and later crates (admin API) can reuse config loading and setup.

pub mod admin;
pub mod authn;
pub mod ban_cmd;
pub mod cli;
pub mod config;
pub mod conncheck;
pub mod content;
pub mod context;
pub mod datadir;
pub mod dkim_cmd;
pub mod dns_cmd;
pub mod listeners;
pub mod lists_cmd;
pub mod lockfile;
pub mod logging;
pub mod outbound;
pub mod privileges;
pub mod quarantine_cmd;
pub mod queue_cmd;
pub mod reload;
pub mod send_as_cmd;
pub mod serve;
pub mod setup;
pub mod sieve_cmd;
pub mod spam_cmd;
pub mod threats;

use std::process::ExitCode;

use clap::Parser;

/// Exit status of an operation that failed (not found, already exists, store error).
pub const EXIT_FAILURE: u8 = 1;
/// Exit status of a usage or configuration error (as clap uses for bad arguments).
pub const EXIT_CONFIG: u8 = 2;

/// An error with the exit status it should produce.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn config(message: impl std::fmt::Display) -> Failure {
        Failure {
            code: EXIT_CONFIG,
            message: message.to_string(),
        }
    }
    pub fn op(message: impl std::fmt::Display) -> Failure {
        Failure {
            code: EXIT_FAILURE,
            message: message.to_string(),
        }
    }
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure::op(e)
    }
}

/// Allocations at least this large get their own mapping, returned to the system when freed.
const MMAP_THRESHOLD: i32 = 1 << 20;

/// Each login's Argon2 verification allocates `auth.argon2_memory_kib` (19 MiB by default). glibc
/// raises its mmap threshold after such a block is freed, so later ones come from the heap and stay
/// in the process: a burst of logins left ~13 MiB per session behind (bench/run-peers.sh, idle).
/// A fixed threshold keeps large blocks in their own mappings, which go back to the system.
fn limit_heap_retention() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator tunables; called before any thread is started.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Parses the command line, runs the command, and returns the process exit status.
pub fn run_cli() -> ExitCode {
    limit_heap_retention();
    // Before anything is created: files of the data folder are for the server's user only.
    datadir::set_umask();
    let cli = cli::Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("facteur: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let json = cli.json;
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if json {
                eprintln!("{}", serde_json::json!({ "error": f.message }));
            } else {
                eprintln!("facteur: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}

async fn run(cli: cli::Cli) -> Result<(), Failure> {
    use cli::Command;
    // Admin commands started as root act as the data folder's owner (see `privileges`);
    // check-config only reads the file it is given.
    if !matches!(cli.command, Command::Serve(_) | Command::CheckConfig { .. }) {
        privileges::become_data_owner(&cli.data)?;
    }
    match &cli.command {
        Command::Serve(args) => serve::run(&cli, args).await,
        Command::CheckConfig { file } => {
            let path = file.clone().unwrap_or_else(|| context::config_path(&cli));
            let cfg = match config::load_for(&path, context::privileged()) {
                Ok(cfg) => cfg,
                Err(e) if cli.json => {
                    let errors: Vec<serde_json::Value> = e
                        .errors()
                        .iter()
                        .map(|e| serde_json::json!({ "line": e.line(), "message": e.to_string() }))
                        .collect();
                    println!(
                        "{}",
                        serde_json::json!({ "ok": false, "file": path.display().to_string(), "errors": errors })
                    );
                    return Err(Failure::config(e));
                }
                Err(e) => return Err(Failure::config(e)),
            };
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({ "ok": true, "file": path.display().to_string() })
                );
            } else {
                println!("{}: OK", path.display());
            }
            drop(cfg);
            Ok(())
        }
        Command::Domain(cmd) => admin::domain(&cli, cmd).await,
        Command::Account(cmd) => admin::account(&cli, cmd).await,
        Command::Alias(cmd) => admin::alias(&cli, cmd).await,
        Command::Auth(cmd) => admin::auth(&cli, cmd).await,
        Command::Ban(cmd) => ban_cmd::run(&cli, cmd).await,
        Command::CheckStore => admin::check_store(&cli).await,
        Command::Queue(cmd) => queue_cmd::run(&cli, cmd).await,
        Command::Dkim(cmd) => dkim_cmd::run(&cli, cmd).await,
        Command::Spam(cmd) => spam_cmd::run(&cli, cmd).await,
        Command::Quarantine(cmd) => quarantine_cmd::run(&cli, cmd).await,
        Command::Sieve(cmd) => sieve_cmd::run(&cli, cmd).await,
        Command::Dns { domain, check } => dns_cmd::run(&cli, domain, *check).await,
    }
}
