//! The directory: domains, accounts, aliases and catch-alls, credentials (Argon2id) and quotas, and
//! the two lookups every protocol needs — where mail for an address goes ([`Directory::resolve`]) and
//! who a login is ([`Directory::authenticate`]).
//!
//! Records live in the `store` crate; this crate owns the rules: normalisation of addresses, password
//! policy, alias expansion, and authentication that answers unknown users and wrong passwords alike.

pub mod address;
mod auth;
mod error;
pub mod login;
pub mod login_sync;
mod manage;
pub mod password;
mod resolve;

use std::sync::{Arc, OnceLock};

pub use address::{Address, AddressError, parse_address, split_plus};
pub use error::{AuthError, DirectoryError};
pub use login::LoginOutcome;
pub use password::{
    DEFAULT_MIN_PASSWORD_SCORE, HashParams, MIN_PASSWORD_LEN, Password, Weakness, generate_password,
};
pub use resolve::{MAX_ALIAS_DEPTH, Resolution};
pub use store::{AccountRecord, AliasRecord, DomainRecord, QuotaUsage};

/// Settings of the directory.
#[derive(Debug, Clone)]
pub struct DirectoryConfig {
    /// Argon2id cost of new password hashes.
    pub hash_params: HashParams,
    /// Domain appended to a login without `@` (`bob` → `bob@<default_domain>`). Without it, logins
    /// must be full addresses.
    pub default_domain: Option<String>,
    /// Lowest zxcvbn score (0 to 4) of a new password; 0 checks only the length.
    pub min_password_score: u8,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        DirectoryConfig {
            hash_params: HashParams::default(),
            default_domain: None,
            min_password_score: DEFAULT_MIN_PASSWORD_SCORE,
        }
    }
}

/// The directory API used by the protocols and the CLI. Cheap to clone.
#[derive(Clone)]
pub struct Directory {
    store: store::DynStore,
    hash_params: HashParams,
    default_domain: Option<String>,
    min_password_score: u8,
    /// Hash verified for unknown or disabled users so they cost the same as a wrong password.
    /// Built once, on the blocking pool, at the first authentication.
    dummy_hash: Arc<OnceLock<String>>,
}

impl Directory {
    /// Fails with `Invalid` if the Argon2 parameters or the default domain are invalid.
    pub fn new(
        store: store::DynStore,
        config: DirectoryConfig,
    ) -> Result<Directory, DirectoryError> {
        config
            .hash_params
            .validate()
            .map_err(|e| DirectoryError::Invalid(e.to_string()))?;
        if config.min_password_score > password::MAX_PASSWORD_SCORE {
            return Err(DirectoryError::Invalid(format!(
                "minimum password score {} is above {}",
                config.min_password_score,
                password::MAX_PASSWORD_SCORE
            )));
        }
        let default_domain = config
            .default_domain
            .as_deref()
            .map(address::normalize_domain)
            .transpose()
            .map_err(|e| DirectoryError::Invalid(format!("default domain: {e}")))?;
        Ok(Directory {
            store,
            hash_params: config.hash_params,
            default_domain,
            min_password_score: config.min_password_score,
            dummy_hash: Arc::new(OnceLock::new()),
        })
    }

    /// The underlying store.
    pub fn store(&self) -> &store::DynStore {
        &self.store
    }
}
