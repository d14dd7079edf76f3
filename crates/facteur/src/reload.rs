//! SIGHUP: read `facteur.toml` again and apply what can change while the server runs.
//!
//! Applied at once ([`LIVE_KEYS`]): connection limits and protocol timeouts and limits (to new
//! connections; open sessions keep the settings they started with), login throttling, SMTP and
//! POP3 settings, and the host name in greetings; the TLS certificate files are read again, and a
//! self-signed certificate Facteur made for the old host name is remade for the new one. Every
//! other key (listener addresses, store paths, TLS file paths, DNS, the queue, logging, password
//! hashing, and keys this list does not know) needs a restart: a changed one is logged by name and
//! the running value stays. A file that does not load keeps the whole running configuration, and
//! the error is logged.

use std::collections::BTreeMap;
use std::path::PathBuf;

use net::tls::TlsReloader;

use crate::config::{self, Config};
use crate::listeners::Running;

/// Keys a reload applies without a restart.
pub const LIVE_KEYS: &[&str] = &[
    "server.hostname",
    "limits.max_message_size",
    "limits.max_recipients",
    "limits.smtp_line_length",
    "limits.text_line_length",
    "limits.imap_line_length",
    "limits.imap_search_keys",
    "limits.max_connections",
    "limits.max_connections_per_ip",
    "limits.max_connections_per_user",
    "limits.idle_timeout_secs",
    "limits.command_timeout_secs",
    "limits.max_bad_commands",
    "auth.max_failures_per_ip",
    "auth.max_failures_per_account",
    "auth.base_delay_ms",
    "auth.max_delay_ms",
    "auth.window_secs",
    "auth.ban_secs",
    "smtp.bare_newline",
    "smtp.greeting_delay_ms",
    "smtp.data_timeout_secs",
    "smtp.max_junk_commands",
    "smtp.min_data_rate",
    "pop3.expire",
    "pop3.login_delay_secs",
];

/// What a reload found in the file, compared with what runs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Changed keys that were applied.
    pub applied: Vec<String>,
    /// Changed keys that need a restart; their running values stay.
    pub restart: Vec<String>,
}

/// Re-reads the config file on SIGHUP and applies it to the running server.
pub struct Reloader {
    pub path: PathBuf,
    pub data: PathBuf,
    pub privileged: bool,
    /// The configuration in effect: the file as last loaded, with the values of keys that need a
    /// restart kept from the start.
    pub current: Config,
    pub running: Option<Running>,
    pub tls: TlsReloader,
}

impl Reloader {
    /// Loads the file and applies it; logs what changed, what was not applied and why.
    pub fn reload(&mut self) -> Option<Changes> {
        let new = match config::load_for(&self.path, self.privileged) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(
                    file = %self.path.display(),
                    error = %e,
                    "configuration reload refused; the running configuration stays"
                );
                self.reload_certificate();
                return None;
            }
        };
        let (effective, changes) = match merge(&self.current, &new) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "configuration reload failed; the running configuration stays");
                return None;
            }
        };
        let old_hostname = self.current.server.hostname.clone();
        if let Some(running) = &self.running {
            running.apply(&effective);
        }
        if effective.server.hostname != old_hostname {
            self.new_hostname(&old_hostname, &effective.server.hostname);
        }
        self.current = effective;
        self.reload_certificate();
        if changes.applied.is_empty() {
            tracing::info!("configuration reloaded: nothing to apply");
        } else {
            tracing::info!(
                keys = %changes.applied.join(", "),
                "configuration reloaded; applied: {}",
                changes.applied.join(", ")
            );
        }
        if !changes.restart.is_empty() {
            tracing::warn!(
                keys = %changes.restart.join(", "),
                "changed in the config file but NOT applied, a restart is needed: {}",
                changes.restart.join(", ")
            );
        }
        Some(changes)
    }

    /// A self-signed certificate Facteur made for the old name is remade for the new one; any
    /// other certificate is the operator's and stays.
    fn new_hostname(&self, old: &str, new: &str) {
        tracing::info!(
            old,
            new,
            "host name changed: new sessions greet with it; Received fields and outbound EHLO use it after a restart"
        );
        let cert = config::resolve_path(&self.data, &self.current.tls.cert);
        let key = config::resolve_path(&self.data, &self.current.tls.key);
        if !net::tls::is_own_self_signed(&cert, old) {
            return;
        }
        match net::tls::regenerate_self_signed(&cert, &key, new) {
            Ok(()) => tracing::info!(
                hostname = new,
                "self-signed certificate remade for the new host name"
            ),
            Err(e) => {
                tracing::error!(error = %e, "cannot remake the self-signed certificate; the old one stays")
            }
        }
    }

    fn reload_certificate(&self) {
        match self.tls.reload() {
            Ok(()) => tracing::info!("TLS certificate reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "TLS certificate reload failed; keeping the old one")
            }
        }
    }
}

/// The keys of a config, flattened to `section.key`, with their values.
fn flatten(cfg: &Config) -> Result<BTreeMap<String, toml::Value>, String> {
    let value = toml::Value::try_from(cfg).map_err(|e| e.to_string())?;
    let mut keys = BTreeMap::new();
    if let toml::Value::Table(sections) = value {
        for (section, v) in sections {
            match v {
                toml::Value::Table(t) => {
                    for (key, v) in t {
                        keys.insert(format!("{section}.{key}"), v);
                    }
                }
                other => {
                    keys.insert(section, other);
                }
            }
        }
    }
    Ok(keys)
}

/// The configuration to run after a reload from `current` to `new`: `new`, except that keys that
/// need a restart keep their value in `current`; and the changed keys, sorted into both kinds.
pub fn merge(current: &Config, new: &Config) -> Result<(Config, Changes), String> {
    let old = flatten(current)?;
    let fresh = flatten(new)?;
    let mut changes = Changes::default();
    let mut table = toml::Table::new();
    let all: std::collections::BTreeSet<&String> = old.keys().chain(fresh.keys()).collect();
    for key in all {
        let (before, after) = (old.get(key), fresh.get(key));
        let keep = if before == after {
            after
        } else if LIVE_KEYS.contains(&key.as_str()) {
            changes.applied.push(key.clone());
            after
        } else {
            changes.restart.push(key.clone());
            before
        };
        let Some(value) = keep else { continue };
        match key.split_once('.') {
            Some((section, name)) => {
                let entry = table
                    .entry(section.to_owned())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                if let toml::Value::Table(t) = entry {
                    t.insert(name.to_owned(), value.clone());
                }
            }
            None => {
                table.insert(key.clone(), value.clone());
            }
        }
    }
    let merged: Config = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| e.to_string())?;
    Ok((merged, changes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_keys_are_applied_and_the_others_kept() {
        let current = Config::default();
        let mut new = current.clone();
        new.limits.max_connections_per_ip = 3;
        new.smtp.data_timeout_secs = 42;
        new.server.hostname = "mx2.example.com".into();
        new.listeners.smtp = vec!["127.0.0.1:2626".into()];
        new.store.max_batch = 7;
        new.log.level = "debug".into();
        let (merged, changes) = merge(&current, &new).expect("merge");
        assert_eq!(
            changes.applied,
            [
                "limits.max_connections_per_ip",
                "server.hostname",
                "smtp.data_timeout_secs"
            ]
        );
        assert_eq!(
            changes.restart,
            ["listeners.smtp", "log.level", "store.max_batch"]
        );
        assert_eq!(merged.limits.max_connections_per_ip, 3);
        assert_eq!(merged.smtp.data_timeout_secs, 42);
        assert_eq!(merged.server.hostname, "mx2.example.com");
        assert_eq!(merged.listeners.smtp, current.listeners.smtp);
        assert_eq!(merged.store.max_batch, current.store.max_batch);
        assert_eq!(merged.log.level, current.log.level);
        let (again, none) = merge(&merged, &merged).expect("merge");
        assert_eq!(again, merged);
        assert_eq!(none, Changes::default());
    }

    #[test]
    fn every_live_key_exists() {
        let keys = flatten(&Config::default()).expect("flatten");
        for k in LIVE_KEYS {
            assert!(keys.contains_key(*k), "{k} is not a config key");
        }
    }
}
