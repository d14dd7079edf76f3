//! Login: one answer (`AuthError::Invalid`) and one cost for every kind of failure.

use subtle::{Choice, ConstantTimeEq};

use crate::address::Address;
use crate::password::{self, MAX_PASSWORD_LEN};
use crate::{AccountRecord, AuthError, Directory};

/// Used only if hashing the dummy at first use fails (impossible with validated parameters): a valid
/// Argon2id hash of a random, forgotten password, so the dummy still costs a real verification.
const FALLBACK_DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$LKuHgU1JITz1PcJld+TdDQ$oFBqFKRFlgPWMaBfyzS7bNQRS7TEZ4UWHmIuFvDvP3s";

impl Directory {
    /// Checks a login. `user` is a full address, or a bare local part when a default domain is
    /// configured. Unknown users, disabled accounts, malformed logins and wrong passwords all return
    /// `AuthError::Invalid` after one Argon2 verification with the same parameters, so neither the
    /// answer nor its timing tells which accounts exist. Argon2 runs on the blocking pool.
    pub async fn authenticate(
        &self,
        user: &str,
        password: &str,
    ) -> Result<AccountRecord, AuthError> {
        let account = match self.login_address(user) {
            Some(addr) => {
                self.store
                    .account_get(addr.local_part(), addr.domain())
                    .await?
            }
            None => None,
        };
        let dummy = self.dummy_hash.clone();
        let params = self.hash_params;
        let password = password.to_string();
        let (phc, is_real) = match &account {
            Some(a) if a.enabled && password.len() <= MAX_PASSWORD_LEN => {
                (Some(a.password_hash.clone()), 1u8)
            }
            _ => (None, 0u8),
        };
        let ok = tokio::task::spawn_blocking(move || {
            // Built before the branch so the first call costs the same whoever logs in.
            let dummy = dummy.get_or_init(|| {
                password::hash_password(&password::generate_password(), &params)
                    .unwrap_or_else(|_| FALLBACK_DUMMY_HASH.to_string())
            });
            let phc = phc.as_deref().unwrap_or(dummy);
            let verified = Choice::from(u8::from(password::verify(phc, &password)));
            bool::from(verified & is_real.ct_eq(&1))
        })
        .await
        .map_err(|e| AuthError::Unavailable(format!("verification task failed: {e}")))?;
        match account {
            Some(account) if ok => Ok(account),
            _ => Err(AuthError::Invalid),
        }
    }

    /// The account address a login names, if it is well-formed.
    pub(crate) fn login_address(&self, user: &str) -> Option<Address> {
        if user.contains('@') {
            return Address::parse(user).ok();
        }
        let domain = self.default_domain.as_deref()?;
        Address::parse(&format!("{user}@{domain}")).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_dummy_is_a_real_hash() {
        use argon2::PasswordHash;
        let parsed = PasswordHash::new(FALLBACK_DUMMY_HASH).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert!(!password::verify(FALLBACK_DUMMY_HASH, ""));
    }
}
