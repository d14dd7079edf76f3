//! Errors of the storage layer. They say what the caller needs to answer its client: whether the
//! failure is temporary (SMTP 4xx / IMAP NO [UNAVAILABLE]) or permanent, and whether a quota refused it.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// Another mailbox of the account already has this special use (RFC 6154): an account has
    /// at most one mailbox per special use.
    #[error("special use {0} already belongs to another mailbox")]
    SpecialUseTaken(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("quota exceeded for account {account}")]
    OverQuota { account: i64 },
    #[error(
        "the database has schema version {found}, newer than this Facteur supports ({supported}); upgrade Facteur"
    )]
    NewerSchema { found: i64, supported: i64 },
    #[error("storage is full: {0}")]
    Full(String),
    #[error("storage I/O error: {0}")]
    Io(String),
    #[error("storage backend error: {0}")]
    Backend(String),
    #[error("the storage writer has stopped")]
    Closed,
}

impl StoreError {
    /// A temporary failure: the client should retry later (SMTP 4xx, IMAP NO without a permanent code).
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            StoreError::Full(_) | StoreError::Io(_) | StoreError::Backend(_) | StoreError::Closed
        )
    }
}

impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> Self {
        // ENOSPC and EDQUOT: the disk is full. Kept distinct so protocols can say 452 / NO [OVERQUOTA]-less
        // "try later" and operators see the real cause in the log.
        match e.raw_os_error() {
            Some(code) if code == libc::ENOSPC || code == libc::EDQUOT => {
                StoreError::Full(e.to_string())
            }
            _ => StoreError::Io(e.to_string()),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
