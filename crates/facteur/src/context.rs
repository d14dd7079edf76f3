//! What every command needs: the config, the store and the directory, opened from the data folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use directory::{Directory, DirectoryConfig};
use store::DynStore;
use store::sqlite::{Sqlite, SqliteOptions};

use crate::Failure;
use crate::cli::Cli;
use crate::config::{self, Config, StoreBackend};

/// Standard ports need root or CAP_NET_BIND_SERVICE (as the systemd unit grants); without either
/// the unprivileged defaults apply.
pub fn privileged() -> bool {
    crate::privileges::can_bind_privileged_ports()
}

pub fn config_path(cli: &Cli) -> PathBuf {
    cli.config
        .clone()
        .unwrap_or_else(|| cli.data.join("facteur.toml"))
}

pub struct Context {
    pub data: PathBuf,
    pub config: Arc<Config>,
    pub store: DynStore,
    pub directory: Directory,
    /// Woken when outbound mail is queued (shared by the SMTP backends and the queue).
    pub queue_wake: Arc<tokio::sync::Notify>,
}

/// Loads the config of an existing data folder (admin commands never create one).
pub fn load_config(cli: &Cli) -> Result<Config, Failure> {
    let path = config_path(cli);
    if !cli.data.is_dir() {
        return Err(Failure::op(format!(
            "data folder {} does not exist (run `facteur serve --data {}` once to create it)",
            cli.data.display(),
            cli.data.display()
        )));
    }
    config::load_for(&path, privileged()).map_err(Failure::config)
}

pub fn open_store(data: &Path, cfg: &Config) -> Result<DynStore, Failure> {
    match cfg.store.backend {
        StoreBackend::Sqlite => {
            let opts = SqliteOptions {
                db_path: Some(config::resolve_path(data, &cfg.store.sqlite_path)),
                blobs_path: Some(config::resolve_path(data, &cfg.store.blobs_dir)),
                inline_blob_max: cfg.store.inline_blob_max,
                max_batch: cfg.store.max_batch,
                mime_limits: message::Limits {
                    max_depth: cfg.limits.mime_max_depth,
                    max_parts: cfg.limits.mime_max_parts,
                    ..message::Limits::default()
                },
            };
            let store = Sqlite::open(data, opts).map_err(|e| {
                Failure::op(format!("cannot open the store in {}: {e}", data.display()))
            })?;
            Ok(Arc::new(store))
        }
        StoreBackend::Postgres => Err(Failure::config(
            "store.backend = \"postgres\" is not available yet",
        )),
    }
}

pub fn directory_config(cfg: &Config) -> DirectoryConfig {
    DirectoryConfig {
        hash_params: directory::HashParams {
            memory_kib: cfg.auth.argon2_memory_kib,
            iterations: cfg.auth.argon2_iterations,
            parallelism: cfg.auth.argon2_parallelism,
        },
        default_domain: None,
        min_password_score: cfg.auth.min_password_score,
    }
}

impl Context {
    pub async fn open(cli: &Cli) -> Result<Context, Failure> {
        let cfg = load_config(cli)?;
        Context::with_config(cli.data.clone(), cfg)
    }

    pub fn with_config(data: PathBuf, cfg: Config) -> Result<Context, Failure> {
        let store = open_store(&data, &cfg)?;
        let directory =
            Directory::new(store.clone(), directory_config(&cfg)).map_err(Failure::op)?;
        Ok(Context {
            data,
            config: Arc::new(cfg),
            store,
            directory,
            queue_wake: Arc::new(tokio::sync::Notify::new()),
        })
    }
}
