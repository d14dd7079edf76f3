//! QUOTA (RFC 9208): one quota root per account, named "", holding every mailbox. STORAGE is
//! reported in units of 1024 octets; MESSAGE only when the account has a message quota. Quotas
//! are set by the administrator, so SETQUOTA is refused.

use imap_codec::imap_types::core::AString;
use imap_codec::imap_types::mailbox::Mailbox;

use crate::backend::Backend;
use crate::session::{Session, Tagged, no, ok, store_failure};

/// The name of the account's quota root.
pub const QUOTA_ROOT: &str = "";
/// RFC 9208 §5.1: STORAGE counts units of this many octets.
const STORAGE_UNIT: u64 = 1024;

impl<B: Backend> Session<B> {
    /// `* QUOTA "" (...)` for the account, or `None` when it has no limit at all.
    async fn quota_response(&self) -> Result<Option<String>, Tagged> {
        let store = self.backend.store();
        let account = self.account();
        let acc = match store.account_get_by_id(account).await {
            Ok(Some(a)) => a,
            Ok(None) => return Err(no(Some("UNAVAILABLE"), "No such account")),
            Err(e) => return Err(store_failure(&e)),
        };
        let usage = match store.quota_usage(account).await {
            Ok(u) => u,
            Err(e) => return Err(store_failure(&e)),
        };
        let mut res = Vec::new();
        if let Some(limit) = acc.quota_bytes {
            res.push(format!(
                "STORAGE {} {}",
                usage.bytes.div_ceil(STORAGE_UNIT),
                limit / STORAGE_UNIT
            ));
        }
        if let Some(limit) = acc.quota_messages {
            res.push(format!("MESSAGE {} {limit}", usage.messages));
        }
        if res.is_empty() {
            return Ok(None);
        }
        Ok(Some(format!(
            "* QUOTA \"{QUOTA_ROOT}\" ({})\r\n",
            res.join(" ")
        )))
    }

    /// RFC 9208 §4.2 GETQUOTA.
    pub(crate) async fn get_quota(&mut self, root: &AString<'_>) -> Tagged {
        if root.as_ref() != QUOTA_ROOT.as_bytes() {
            return no(Some("NONEXISTENT"), "No such quota root");
        }
        match self.quota_response().await {
            Ok(Some(line)) => {
                self.out.extend_from_slice(line.as_bytes());
                ok("GETQUOTA completed")
            }
            Ok(None) => no(Some("NONEXISTENT"), "No quota on this account"),
            Err(t) => t,
        }
    }

    /// RFC 9208 §4.3 GETQUOTAROOT: the root of the mailbox, then its quota.
    pub(crate) async fn get_quota_root(&mut self, m: &Mailbox<'_>) -> Tagged {
        let mb = match self.find_mailbox(m).await {
            Ok(mb) => mb,
            Err(t) => return t,
        };
        let quota = match self.quota_response().await {
            Ok(q) => q,
            Err(t) => return t,
        };
        let mut o = b"* QUOTAROOT ".to_vec();
        self.mailbox_string(&mut o, &mb.name);
        // An account without limits has no quota root (RFC 9208 §4.3: none listed).
        if quota.is_some() {
            o.extend_from_slice(format!(" \"{QUOTA_ROOT}\"").as_bytes());
        }
        o.extend_from_slice(b"\r\n");
        if let Some(q) = quota {
            o.extend_from_slice(q.as_bytes());
        }
        self.out.extend_from_slice(&o);
        ok("GETQUOTAROOT completed")
    }
}
