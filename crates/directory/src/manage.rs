//! Administration of domains, accounts and aliases (used by the CLI and the admin API).

use store::{AccountRecord, AliasRecord, DomainRecord, NewAccount, QuotaUsage, SpecialUse};

use crate::address::{self, Address};
use crate::password::{self, MAX_PASSWORD_LEN, MIN_PASSWORD_LEN};
use crate::{Directory, DirectoryError};

/// Mailboxes every new account starts with, with their RFC 6154 special-use attributes.
pub const DEFAULT_MAILBOXES: [(&str, Option<SpecialUse>); 6] = [
    (store::INBOX, None),
    ("Drafts", Some(SpecialUse::Drafts)),
    ("Sent", Some(SpecialUse::Sent)),
    ("Trash", Some(SpecialUse::Trash)),
    ("Junk", Some(SpecialUse::Junk)),
    ("Archive", Some(SpecialUse::Archive)),
];
/// Longest display name accepted, in octets.
pub const MAX_DISPLAY_NAME_LEN: usize = 256;
/// Most targets one alias may have.
pub const MAX_ALIAS_TARGETS: usize = 1000;

/// Words an attacker tries first against `address`: the address, its local part and domain and
/// their pieces, the display name and its words.
pub fn user_inputs(address: &Address, display_name: &str) -> Vec<String> {
    let mut words = vec![
        address.to_string(),
        address.local_part().to_string(),
        address.domain().to_string(),
        display_name.to_string(),
    ];
    let pieces = address
        .local_part()
        .split(['.', '-', '_', '+'])
        .chain(address.domain().split('.'))
        .chain(display_name.split_whitespace());
    words.extend(pieces.filter(|w| w.len() > 1).map(str::to_string));
    words.retain(|w| !w.is_empty());
    words.dedup();
    words
}

/// Checks the length policy of a password being set.
pub fn check_new_password(password: &str) -> Result<(), DirectoryError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(DirectoryError::PasswordTooShort);
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(DirectoryError::PasswordTooLong);
    }
    Ok(())
}

impl Directory {
    // ------------------------------------------------------------ domains

    pub async fn add_domain(&self, name: &str) -> Result<DomainRecord, DirectoryError> {
        let name = address::normalize_domain(name)?;
        Ok(self.store.domain_create(&name).await?)
    }

    pub async fn list_domains(&self) -> Result<Vec<DomainRecord>, DirectoryError> {
        Ok(self.store.domain_list().await?)
    }

    /// Removes a domain and its aliases. Without `force`, refuses while it has accounts; with
    /// `force`, deletes its accounts (and their mail) first.
    pub async fn remove_domain(&self, name: &str, force: bool) -> Result<(), DirectoryError> {
        let name = address::normalize_domain(name)?;
        self.domain(&name).await?;
        let accounts = self.store.account_list(Some(&name)).await?;
        if !accounts.is_empty() {
            if !force {
                return Err(DirectoryError::DomainNotEmpty {
                    domain: name,
                    accounts: accounts.len(),
                });
            }
            for account in &accounts {
                self.store.account_delete(account.id).await?;
                tracing::info!(account = %account.address(), "account removed with its domain");
            }
        }
        Ok(self.store.domain_delete(&name).await?)
    }

    /// Sets (or with `None` clears) the address receiving mail for unknown local parts of `domain`.
    pub async fn set_catchall(
        &self,
        domain: &str,
        target: Option<&str>,
    ) -> Result<(), DirectoryError> {
        let domain = address::normalize_domain(domain)?;
        let target = match target {
            Some(t) => {
                let t = self.normalize_target(t).await?;
                self.ensure_local_target_exists(&t).await?;
                Some(t)
            }
            None => None,
        };
        Ok(self
            .store
            .domain_set_catchall(&domain, target.as_deref())
            .await?)
    }

    // ------------------------------------------------------------ accounts

    /// Creates an account with its default mailboxes. Without `password`, one is generated and
    /// returned (the only time it is visible).
    pub async fn add_account(
        &self,
        address: &str,
        password: Option<&str>,
        display_name: &str,
        quota_bytes: Option<u64>,
    ) -> Result<(AccountRecord, Option<String>), DirectoryError> {
        let addr = Address::parse(address)?;
        check_display_name(display_name)?;
        let domain = self.domain(addr.domain()).await?;
        if self
            .store
            .alias_get(addr.local_part(), addr.domain())
            .await?
            .is_some()
        {
            return Err(DirectoryError::AlreadyExists(format!("alias {addr}")));
        }
        let (password, generated) = match password {
            Some(p) => {
                self.check_password(&addr, display_name, p)?;
                (p.to_string(), None)
            }
            None => {
                let p = self.generate_password_for(&addr, display_name)?;
                (p.clone(), Some(p))
            }
        };
        let password_hash = self.hash(password).await?;
        let account = self
            .store
            .account_create(NewAccount {
                domain_id: domain.id,
                local_part: addr.local_part().to_string(),
                display_name: display_name.to_string(),
                password_hash,
                quota_bytes,
                quota_messages: None,
                mailboxes: DEFAULT_MAILBOXES
                    .iter()
                    .map(|(n, u)| (n.to_string(), *u))
                    .collect(),
            })
            .await?;
        Ok((account, generated))
    }

    /// Accounts of `domain`, or of every domain. `NotFound` for a domain that is not ours.
    pub async fn list_accounts(
        &self,
        domain: Option<&str>,
    ) -> Result<Vec<AccountRecord>, DirectoryError> {
        let domain = domain.map(address::normalize_domain).transpose()?;
        if let Some(d) = &domain {
            self.domain(d).await?;
        }
        Ok(self.store.account_list(domain.as_deref()).await?)
    }

    /// The account at exactly `address` (no plus-addressing, no aliases).
    pub async fn get_account(&self, address: &str) -> Result<AccountRecord, DirectoryError> {
        let addr = Address::parse(address)?;
        self.store
            .account_get(addr.local_part(), addr.domain())
            .await?
            .ok_or_else(|| DirectoryError::NotFound(format!("account {addr}")))
    }

    /// Sets a new password, which must pass the length and strength checks.
    pub async fn set_password(&self, address: &str, password: &str) -> Result<(), DirectoryError> {
        let account = self.get_account(address).await?;
        let addr = Address::parse(&account.address())?;
        self.check_password(&addr, &account.display_name, password)?;
        let hash = self.hash(password.to_string()).await?;
        Ok(self.store.account_set_password(account.id, &hash).await?)
    }

    /// Sets the storage and message-count quotas; `None` means unlimited.
    pub async fn set_quota(
        &self,
        address: &str,
        bytes: Option<u64>,
        messages: Option<u64>,
    ) -> Result<(), DirectoryError> {
        let account = self.get_account(address).await?;
        Ok(self
            .store
            .account_set_quota(account.id, bytes, messages)
            .await?)
    }

    /// A disabled account keeps its mail but can neither log in nor receive.
    pub async fn set_enabled(&self, address: &str, enabled: bool) -> Result<(), DirectoryError> {
        let account = self.get_account(address).await?;
        Ok(self.store.account_set_enabled(account.id, enabled).await?)
    }

    /// Removes the account with its mailboxes and messages.
    pub async fn remove_account(&self, address: &str) -> Result<(), DirectoryError> {
        let account = self.get_account(address).await?;
        Ok(self.store.account_delete(account.id).await?)
    }

    /// Storage used by the account's messages.
    pub async fn quota_usage(&self, address: &str) -> Result<QuotaUsage, DirectoryError> {
        let account = self.get_account(address).await?;
        Ok(self.store.quota_usage(account.id).await?)
    }

    // ------------------------------------------------------------ aliases

    /// Creates an alias forwarding to `targets` (local or external addresses). It may not shadow an
    /// account; a target in one of our domains must be an existing account or alias (a typo there
    /// would otherwise lose mail silently).
    pub async fn add_alias(
        &self,
        address: &str,
        targets: Vec<String>,
    ) -> Result<AliasRecord, DirectoryError> {
        let addr = Address::parse(address)?;
        let domain = self.domain(addr.domain()).await?;
        if targets.is_empty() {
            return Err(DirectoryError::Invalid(format!(
                "alias {addr} has no targets"
            )));
        }
        if targets.len() > MAX_ALIAS_TARGETS {
            return Err(DirectoryError::Invalid(format!(
                "alias {addr} has more than {MAX_ALIAS_TARGETS} targets"
            )));
        }
        if self
            .store
            .account_get(addr.local_part(), addr.domain())
            .await?
            .is_some()
        {
            return Err(DirectoryError::AlreadyExists(format!("account {addr}")));
        }
        let mut normalized: Vec<String> = Vec::with_capacity(targets.len());
        for t in &targets {
            let t = self.normalize_target(t).await?;
            if t == addr.to_string() {
                return Err(DirectoryError::Invalid(format!(
                    "alias {addr} targets itself"
                )));
            }
            self.ensure_local_target_exists(&t).await?;
            if !normalized.contains(&t) {
                normalized.push(t);
            }
        }
        Ok(self
            .store
            .alias_create(domain.id, addr.local_part(), &normalized)
            .await?)
    }

    pub async fn list_aliases(
        &self,
        domain: Option<&str>,
    ) -> Result<Vec<AliasRecord>, DirectoryError> {
        let domain = domain.map(address::normalize_domain).transpose()?;
        if let Some(d) = &domain {
            self.domain(d).await?;
        }
        Ok(self.store.alias_list(domain.as_deref()).await?)
    }

    pub async fn remove_alias(&self, address: &str) -> Result<(), DirectoryError> {
        let addr = Address::parse(address)?;
        Ok(self
            .store
            .alias_delete(addr.local_part(), addr.domain())
            .await?)
    }

    /// A generated password for the account at `address` (see [`Directory::generate_password_for`]),
    /// for `account passwd --generate`.
    pub async fn generate_password_for_account(
        &self,
        address: &str,
    ) -> Result<String, DirectoryError> {
        let account = self.get_account(address).await?;
        let addr = Address::parse(&account.address())?;
        self.generate_password_for(&addr, &account.display_name)
    }

    // ------------------------------------------------------------ helpers

    /// The password policy, the same for every way a password is set (CLI now, web later): at
    /// least [`MIN_PASSWORD_LEN`] characters, at most [`MAX_PASSWORD_LEN`] octets, and a zxcvbn
    /// score of at least the configured minimum, judged knowing the account's address and name.
    pub fn check_password(
        &self,
        address: &Address,
        display_name: &str,
        password: &str,
    ) -> Result<(), DirectoryError> {
        check_new_password(password)?;
        let inputs = user_inputs(address, display_name);
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        password::check_strength(password, &inputs, self.min_password_score)
            .map_err(DirectoryError::WeakPassword)
    }

    /// A random password that passes [`Directory::check_password`] for this account.
    pub fn generate_password_for(
        &self,
        address: &Address,
        display_name: &str,
    ) -> Result<String, DirectoryError> {
        let inputs = user_inputs(address, display_name);
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        password::generate_strong_password(&inputs, self.min_password_score).ok_or_else(|| {
            DirectoryError::Internal("no generated password passed the strength check".into())
        })
    }

    async fn domain(&self, name: &str) -> Result<DomainRecord, DirectoryError> {
        self.store
            .domain_get(name)
            .await?
            .ok_or_else(|| DirectoryError::NotFound(format!("domain {name}")))
    }

    /// A forwarding target as stored: fully normalised when its domain is local, otherwise with the
    /// remote local part kept as written (RFC 5321 §2.4: only the remote host interprets it).
    pub(crate) async fn normalize_target(&self, target: &str) -> Result<String, DirectoryError> {
        let (local, domain) = address::parse_preserving_case(target)?;
        if self.store.domain_get(&domain).await?.is_some() {
            Ok(Address::parse(target)?.to_string())
        } else {
            Ok(format!("{local}@{domain}"))
        }
    }

    /// A normalised target in one of our domains must name an account or an alias (with or without
    /// its `+tag`, as [`Directory::resolve`] finds them); a remote target is not checked.
    async fn ensure_local_target_exists(&self, target: &str) -> Result<(), DirectoryError> {
        let (local, domain) = address::parse_preserving_case(target)?;
        if self.store.domain_get(&domain).await?.is_none() {
            return Ok(());
        }
        let (base, _) = address::split_plus(&local);
        for candidate in [local.as_str(), base] {
            if self.store.account_get(candidate, &domain).await?.is_some()
                || self.store.alias_get(candidate, &domain).await?.is_some()
            {
                return Ok(());
            }
        }
        Err(DirectoryError::UnknownTarget(target.to_string()))
    }

    /// Hashes on the blocking pool: Argon2 takes tens of milliseconds of CPU.
    async fn hash(&self, password: String) -> Result<String, DirectoryError> {
        let params = self.hash_params;
        tokio::task::spawn_blocking(move || password::hash_password(&password, &params))
            .await
            .map_err(|e| DirectoryError::Internal(format!("hashing task failed: {e}")))?
            .map_err(|e| DirectoryError::Internal(e.to_string()))
    }
}

fn check_display_name(name: &str) -> Result<(), DirectoryError> {
    if name.len() > MAX_DISPLAY_NAME_LEN {
        return Err(DirectoryError::Invalid(format!(
            "display name longer than {MAX_DISPLAY_NAME_LEN} octets"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(DirectoryError::Invalid(
            "control character in display name".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_policy() {
        assert!(matches!(
            check_new_password("1234567"),
            Err(DirectoryError::PasswordTooShort)
        ));
        assert!(check_new_password("12345678").is_ok());
        // Counted in characters, not octets.
        assert!(matches!(
            check_new_password("ééééééé"),
            Err(DirectoryError::PasswordTooShort)
        ));
        assert!(matches!(
            check_new_password(&"x".repeat(MAX_PASSWORD_LEN + 1)),
            Err(DirectoryError::PasswordTooLong)
        ));
    }

    #[test]
    fn display_name_policy() {
        assert!(check_display_name("Élodie Dupont").is_ok());
        assert!(check_display_name("a\r\nBcc: x").is_err());
        assert!(check_display_name(&"x".repeat(MAX_DISPLAY_NAME_LEN + 1)).is_err());
    }
}
