//! Errors of directory operations and of authentication.

use store::StoreError;

use crate::address::AddressError;

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("invalid address: {0}")]
    InvalidAddress(#[from] AddressError),
    #[error("password shorter than {min} characters", min = crate::password::MIN_PASSWORD_LEN)]
    PasswordTooShort,
    #[error("password longer than {max} octets", max = crate::password::MAX_PASSWORD_LEN)]
    PasswordTooLong,
    /// zxcvbn estimates the password easy to guess; the message says why.
    #[error("{0}")]
    WeakPassword(crate::password::Weakness),
    /// The domain is not one of ours: the caller decides whether to relay.
    #[error("domain {0} is not a local domain")]
    NotLocal(String),
    #[error(
        "domain {domain} still has {accounts} account(s): remove them first, or force the removal \
         (which deletes those accounts with all their mail, and the domain's aliases)"
    )]
    DomainNotEmpty { domain: String, accounts: usize },
    /// An alias or catch-all target in one of our domains that is neither an account nor an alias.
    #[error(
        "{0} is in a domain of this server but is neither an account nor an alias: create it \
         first (mail to it would be refused)"
    )]
    UnknownTarget(String),
    /// Alias expansion went deeper than `MAX_ALIAS_DEPTH` (RFC 3463 X.4.6, routing loop).
    #[error("alias expansion of {0} is too deep")]
    AliasTooDeep(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A failure of this process (e.g. a hashing task panicked), not of the request.
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for DirectoryError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => DirectoryError::NotFound(what),
            StoreError::AlreadyExists(what) => DirectoryError::AlreadyExists(what),
            other => DirectoryError::Store(other),
        }
    }
}

impl DirectoryError {
    /// A temporary failure (storage unavailable): the client should retry later.
    pub fn is_temporary(&self) -> bool {
        matches!(self, DirectoryError::Store(e) if e.is_temporary())
    }
}

/// Why a login failed. Unknown user, wrong password, disabled account and malformed login are all
/// `Invalid`, so a client cannot probe which accounts exist (as Dovecot does).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid credentials")]
    Invalid,
    /// Storage failed: answer with a temporary error (IMAP `NO [UNAVAILABLE]`, SMTP 454).
    #[error("authentication temporarily unavailable: {0}")]
    Unavailable(String),
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        AuthError::Unavailable(e.to_string())
    }
}
