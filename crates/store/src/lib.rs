//! Facteur's storage layer: one `Store` trait for everything that must survive a restart — the
//! directory (domains, accounts, aliases), mailboxes and messages, content-addressed blobs, the
//! outbound queue, DKIM signing keys and login bans — with one conformance suite that every backend
//! passes.
//!
//! Durability contract: when a write method returns `Ok`, the change is on stable storage (it survives
//! `kill -9` and power loss). Concurrent writes are group-committed by the backend.
//!
//! Nothing here assumes a single process: the SQLite backend is shared by the server and the CLI, and
//! the PostgreSQL backend (later) by several nodes.

pub mod conformance;
mod error;
mod model;
pub mod sqlite;

use std::ops::RangeInclusive;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;

pub use error::{Result, StoreError};
pub use message::Analysis;
pub use model::*;

/// Records of the directory: domains, accounts (with credentials and quotas) and aliases.
/// Addresses and names passed in are expected already normalised (lowercase) by the `directory` crate.
#[async_trait]
pub trait DirectoryStore: Send + Sync {
    async fn domain_create(&self, name: &str) -> Result<DomainRecord>;
    async fn domain_get(&self, name: &str) -> Result<Option<DomainRecord>>;
    async fn domain_list(&self) -> Result<Vec<DomainRecord>>;
    /// Refuses with `Invalid` while accounts exist in the domain; removes its aliases.
    async fn domain_delete(&self, name: &str) -> Result<()>;
    async fn domain_set_catchall(&self, name: &str, target: Option<&str>) -> Result<()>;

    /// Creates the account and its initial mailboxes in one transaction.
    async fn account_create(&self, account: NewAccount) -> Result<AccountRecord>;
    async fn account_get(&self, local_part: &str, domain: &str) -> Result<Option<AccountRecord>>;
    async fn account_get_by_id(&self, id: AccountId) -> Result<Option<AccountRecord>>;
    async fn account_list(&self, domain: Option<&str>) -> Result<Vec<AccountRecord>>;
    async fn account_set_password(&self, id: AccountId, password_hash: &str) -> Result<()>;
    async fn account_set_quota(
        &self,
        id: AccountId,
        bytes: Option<u64>,
        messages: Option<u64>,
    ) -> Result<()>;
    async fn account_set_enabled(&self, id: AccountId, enabled: bool) -> Result<()>;
    /// Removes the account, its mailboxes and messages; blobs lose their references.
    async fn account_delete(&self, id: AccountId) -> Result<()>;
    async fn quota_usage(&self, id: AccountId) -> Result<QuotaUsage>;

    async fn alias_create(
        &self,
        domain_id: DomainId,
        local_part: &str,
        targets: &[String],
    ) -> Result<AliasRecord>;
    async fn alias_get(&self, local_part: &str, domain: &str) -> Result<Option<AliasRecord>>;
    async fn alias_list(&self, domain: Option<&str>) -> Result<Vec<AliasRecord>>;
    async fn alias_delete(&self, local_part: &str, domain: &str) -> Result<()>;

    /// Lets an account also send as `pattern` on submission: an address (`user@domain`) or a
    /// whole domain (`@domain`), stored lowercase. `AlreadyExists` when granted already,
    /// `NotFound` for an unknown account. Removed with the account.
    async fn send_as_add(&self, account: AccountId, pattern: &str) -> Result<()>;
    /// `NotFound` when the grant does not exist.
    async fn send_as_remove(&self, account: AccountId, pattern: &str) -> Result<()>;
    /// The account's grants, sorted.
    async fn send_as_list(&self, account: AccountId) -> Result<Vec<String>>;
}

/// Mailboxes and messages of one account.
#[async_trait]
pub trait MailStore: Send + Sync {
    /// Creates a mailbox; missing parents of a hierarchical name are created too (RFC 9051 §6.3.4).
    async fn mailbox_create(
        &self,
        account: AccountId,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<MailboxRecord>;
    async fn mailbox_get(&self, account: AccountId, name: &str) -> Result<Option<MailboxRecord>>;
    async fn mailbox_get_by_id(&self, id: MailboxId) -> Result<Option<MailboxRecord>>;
    async fn mailbox_list(&self, account: AccountId) -> Result<Vec<MailboxRecord>>;
    /// Renames a mailbox and its children, keeping their UIDVALIDITY. Renaming INBOX moves its messages
    /// to a new mailbox and leaves INBOX empty (RFC 9051 §6.3.6).
    async fn mailbox_rename(&self, account: AccountId, from: &str, to: &str) -> Result<()>;
    /// Deletes a mailbox and its messages (not its children; INBOX cannot be deleted).
    async fn mailbox_delete(&self, account: AccountId, name: &str) -> Result<()>;
    async fn mailbox_set_special_use(
        &self,
        id: MailboxId,
        special_use: Option<SpecialUse>,
    ) -> Result<()>;
    async fn mailbox_status(&self, id: MailboxId) -> Result<MailboxStatus>;
    /// Claims the messages no session has had as `\Recent` yet (RFC 3501 §2.3.2: only one
    /// session gets it): moves the mailbox's recent mark to its highest UID, atomically, and
    /// returns the UIDs passed over (some may be expunged already), or `None` when nothing is new.
    /// Concurrent claims never return the same UID twice.
    async fn claim_recent(&self, mailbox: MailboxId) -> Result<Option<RangeInclusive<Uid>>>;

    /// Subscriptions are names, and may name mailboxes that do not exist (RFC 9051 §6.3.7).
    async fn subscribe(&self, account: AccountId, name: &str) -> Result<()>;
    async fn unsubscribe(&self, account: AccountId, name: &str) -> Result<()>;
    async fn subscriptions(&self, account: AccountId) -> Result<Vec<String>>;

    /// Appends and enqueues durably in one group-committed transaction; all or nothing, except
    /// appends left out for quota under [`QuotaPolicy::PerAccount`].
    async fn commit(&self, batch: WriteBatch) -> Result<BatchResult>;
    /// The limits the store analyses messages with: an analysis given with a [`RawMessage`] must
    /// have been made with these.
    fn mime_limits(&self) -> message::Limits {
        message::Limits::default()
    }

    /// Metadata of the messages whose UID is in `uids`, in UID order.
    async fn messages(
        &self,
        mailbox: MailboxId,
        uids: RangeInclusive<Uid>,
    ) -> Result<Vec<MessageRecord>>;
    /// Messages whose MODSEQ is above `modseq` (CONDSTORE CHANGEDSINCE), in UID order.
    async fn messages_changed_since(
        &self,
        mailbox: MailboxId,
        modseq: ModSeq,
    ) -> Result<Vec<MessageRecord>>;
    /// The cached analysis (ENVELOPE, BODYSTRUCTURE, headers) of a blob.
    async fn analysis(&self, blob: BlobId) -> Result<Arc<Analysis>>;
    /// Raw bytes of a blob, or of `range` of it (clamped to its length).
    async fn blob_read(&self, blob: BlobId, range: Option<std::ops::Range<u64>>)
    -> Result<Vec<u8>>;
    /// Raw bytes of each blob of `blobs`, in the same order (FETCH of many messages). A backend
    /// should read them in one go: one round trip to the database instead of one per message.
    async fn blobs_read(&self, blobs: &[BlobId]) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::with_capacity(blobs.len());
        for b in blobs {
            out.push(self.blob_read(*b, None).await?);
        }
        Ok(out)
    }
    /// The bytes of a range of each blob (clamped to its length, as [`MailStore::blob_read`]), in
    /// the same order: header blocks of many messages for SEARCH, in one go where it can.
    async fn blob_ranges_read(
        &self,
        reads: &[(BlobId, std::ops::Range<u64>)],
    ) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::with_capacity(reads.len());
        for (b, r) in reads {
            out.push(self.blob_read(*b, Some(r.clone())).await?);
        }
        Ok(out)
    }
    /// The cached analysis of each blob of `blobs`, in the same order (FETCH ENVELOPE or
    /// BODYSTRUCTURE of many messages); as [`MailStore::blobs_read`], in one go where it can.
    async fn analyses(&self, blobs: &[BlobId]) -> Result<Vec<Arc<Analysis>>> {
        let mut out = Vec::with_capacity(blobs.len());
        for b in blobs {
            out.push(self.analysis(*b).await?);
        }
        Ok(out)
    }

    /// Changes flags and keywords, bumping MODSEQ of each changed message. With `unchanged_since`
    /// (CONDSTORE), messages whose MODSEQ is higher are left alone and reported in `modified`.
    async fn store_flags(
        &self,
        mailbox: MailboxId,
        uids: &[Uid],
        op: FlagOp,
        flags: Flags,
        keywords: &[String],
        unchanged_since: Option<ModSeq>,
    ) -> Result<FlagUpdate>;
    /// Copies messages (sharing their blobs) into `to`; new UIDs in source UID order.
    async fn copy(&self, from: MailboxId, uids: &[Uid], to: MailboxId) -> Result<CopyResult>;
    /// Moves messages atomically: copy, then expunge from the source (RFC 6851).
    async fn move_messages(
        &self,
        from: MailboxId,
        uids: &[Uid],
        to: MailboxId,
    ) -> Result<(CopyResult, Expunged)>;
    async fn expunge(&self, mailbox: MailboxId, filter: ExpungeFilter) -> Result<Expunged>;
    /// UIDs expunged with a MODSEQ above `modseq` (QRESYNC VANISHED (EARLIER)).
    async fn expunged_since(&self, mailbox: MailboxId, modseq: ModSeq) -> Result<Vec<Uid>>;
    /// UIDs of messages whose text contains `needle` (case-insensitive), from the full-text index.
    /// `None` when the index cannot answer this needle (e.g. too short) and the caller must scan.
    async fn search_text(
        &self,
        mailbox: MailboxId,
        field: TextField,
        needle: &str,
    ) -> Result<Option<Vec<Uid>>>;

    /// Committed changes of every account, published once durable. Receivers filter by account.
    fn changes(&self) -> broadcast::Receiver<Change>;
}

/// The outbound queue (worked by the queue crate in a later issue).
#[async_trait]
pub trait QueueStore: Send + Sync {
    async fn queue_list(&self) -> Result<Vec<QueueEntry>>;
    async fn queue_get(&self, id: QueueId) -> Result<Option<QueueEntry>>;
    /// Entries whose next attempt is due at `now` (unix seconds), oldest first.
    async fn queue_due(&self, now: i64, limit: usize) -> Result<Vec<QueueEntry>>;
    /// Records an attempt: new recipient states, the next attempt time and the last error.
    async fn queue_update(&self, entry: &QueueEntry) -> Result<()>;
    async fn queue_delete(&self, id: QueueId) -> Result<()>;
}

/// DKIM signing keys, per domain and selector.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Adds the key, or replaces the one with the same domain and selector.
    async fn dkim_key_put(&self, key: &DkimKeyRecord) -> Result<()>;
    /// Keys of `domain`, or of every domain; by domain, then oldest first.
    async fn dkim_keys(&self, domain: Option<&str>) -> Result<Vec<DkimKeyRecord>>;
    /// `NotFound` when there is no such key.
    async fn dkim_key_set_state(
        &self,
        domain: &str,
        selector: &str,
        state: DkimKeyState,
    ) -> Result<()>;
    /// `NotFound` when there is no such key.
    async fn dkim_key_delete(&self, domain: &str, selector: &str) -> Result<()>;
}

/// Login bans and the sources each account logs in from, shared by every process using the store:
/// the server records bans, `facteur ban list|remove` reads and lifts them while it runs.
#[async_trait]
pub trait LoginStore: Send + Sync {
    /// Records a ban; it takes the next position in the change sequence.
    async fn ban_add(&self, ban: &NewLoginBan) -> Result<LoginBanRecord>;
    /// Bans in force at `now` (unix seconds): not lifted and not yet over; soonest end first.
    async fn bans_active(&self, now: i64) -> Result<Vec<LoginBanRecord>>;
    /// Bans added or lifted after position `seq`, in sequence order, at most `limit` of them.
    async fn bans_changed_since(&self, seq: i64, limit: usize) -> Result<Vec<LoginBanRecord>>;
    /// Lifts, at `now`, every ban in force whose source or account is exactly `target`, and
    /// returns them (each with its new position). `NotFound` when none is in force.
    async fn ban_lift(&self, target: &str, now: i64) -> Result<Vec<LoginBanRecord>>;
    /// Forgets bans that ended (expired or lifted) before `before`; returns how many.
    async fn bans_purge(&self, before: i64) -> Result<u64>;
    /// Records a successful login of `account` from `source` at `now`, keeping only the `keep`
    /// most recent sources of that account.
    async fn login_source_record(
        &self,
        account: &str,
        source: &str,
        now: i64,
        keep: usize,
    ) -> Result<()>;
    /// Every recorded source of every account, by account then most recent first.
    async fn login_sources(&self) -> Result<Vec<LoginSourceRecord>>;
}

/// Token counts of the spam classifier's models (the global one and per-account ones). The
/// classifier (`filter` crate) makes the tokens; the store only counts them, durably, so that the
/// server and the CLI (another process) share the models and a later PostgreSQL backend too.
#[async_trait]
pub trait SpamStore: Send + Sync {
    /// Totals of each model of `models`, with the counts of those of `tokens` it has seen, all
    /// read in one snapshot. A model that learned nothing has zero totals.
    async fn spam_counts(&self, models: &[SpamModel], tokens: &[u64]) -> Result<Vec<SpamCounts>>;
    /// Learns `sample` as `class` into each of `models`, in one transaction: counted once per
    /// model however often it is learned; learned as the other class before, that is taken
    /// back first. `Invalid` when a model holds tokens of another format (nothing changes).
    async fn spam_learn(
        &self,
        models: &[SpamModel],
        sample: &SpamSample,
        class: SpamClass,
    ) -> Result<Vec<SpamLearnOutcome>>;
    /// Takes `sample` back out of each of `models` that learned it, in one transaction.
    async fn spam_unlearn(
        &self,
        models: &[SpamModel],
        sample: &SpamSample,
    ) -> Result<Vec<SpamLearnOutcome>>;
}

/// Greylisting state (RFC 6647): triplets seen and client networks whitelisted after they
/// retried, shared by every process and node using the store.
#[async_trait]
pub trait GreylistStore: Send + Sync {
    /// Records an attempt of `sender` to `recipient` from `network` at `now` and says whether it
    /// passes. A network is a client /24 or /64 in text form; sender and recipient are stored as
    /// given (callers lowercase them).
    async fn greylist_check(
        &self,
        network: &str,
        sender: &str,
        recipient: &str,
        now: i64,
        policy: &GreylistPolicy,
    ) -> Result<GreylistDecision>;
    /// Forgets what `policy` says has expired at `now`; returns how many records went.
    async fn greylist_purge(&self, now: i64, policy: &GreylistPolicy) -> Result<u64>;
    async fn greylist_stats(&self) -> Result<GreylistStats>;
}

/// What the inbound filters keep: messages held in quarantine, and the allow and block lists
/// of domains and accounts. Shared with the CLI (another process) like everything here.
#[async_trait]
pub trait FilterStore: Send + Sync {
    /// Holds a message durably; returns its id.
    async fn quarantine_add(&self, q: &NewQuarantine) -> Result<i64>;
    /// Held messages, oldest first; only those for `account` when given.
    async fn quarantine_list(&self, account: Option<AccountId>) -> Result<Vec<QuarantineRecord>>;
    /// A held message and its bytes.
    async fn quarantine_get(&self, id: i64) -> Result<Option<(QuarantineRecord, Vec<u8>)>>;
    /// `NotFound` when there is no such message.
    async fn quarantine_delete(&self, id: i64) -> Result<()>;
    /// Deletes the messages whose expiry is at or before `now`; returns how many.
    async fn quarantine_expire(&self, now: i64) -> Result<u64>;

    /// `AlreadyExists` when the entry is there already; `NotFound` for an unknown account.
    async fn list_add(&self, scope: &ListScope, kind: ListKind, pattern: &str) -> Result<()>;
    /// `NotFound` when the entry does not exist.
    async fn list_remove(&self, scope: &ListScope, kind: ListKind, pattern: &str) -> Result<()>;
    /// The entries of every scope of `scopes` (both kinds), sorted by scope, kind, pattern.
    async fn list_entries(&self, scopes: &[ListScope]) -> Result<Vec<ListEntry>>;
}

/// Sieve scripts (RFC 5228) of accounts and domains, and the state scripts keep between
/// deliveries: vacation replies sent (RFC 5230 §4.2), duplicate ids (RFC 7352), redirects per day.
#[async_trait]
pub trait SieveStore: Send + Sync {
    /// Adds or replaces a script (keeping whether it is active). With `max_scripts`, a new name
    /// beyond that many scripts of the owner is refused with `Invalid`.
    async fn sieve_put(&self, script: &NewSieveScript, max_scripts: Option<usize>) -> Result<()>;
    async fn sieve_get(&self, owner: &SieveOwner, name: &str) -> Result<Option<SieveScript>>;
    /// The owner's active script, if any.
    async fn sieve_active(&self, owner: &SieveOwner) -> Result<Option<SieveScript>>;
    /// Names, sizes and which is active, by name.
    async fn sieve_list(&self, owner: &SieveOwner) -> Result<Vec<SieveScriptInfo>>;
    /// Makes `name` the active script (RFC 5804 §2.8), or none with `None`. `NotFound`.
    async fn sieve_activate(&self, owner: &SieveOwner, name: Option<&str>) -> Result<()>;
    /// `NotFound`; `Invalid` for the active script (RFC 5804 §2.10).
    async fn sieve_delete(&self, owner: &SieveOwner, name: &str) -> Result<()>;
    /// `NotFound`, `AlreadyExists` (RFC 5804 §2.11.1).
    async fn sieve_rename(&self, owner: &SieveOwner, from: &str, to: &str) -> Result<()>;
    /// Records `key` for the account until `expires` and returns `false`, or returns `true` when
    /// it is recorded already and not expired at `now` (then nothing changes). Atomic, so two
    /// deliveries at once answer one vacation only.
    async fn sieve_seen(
        &self,
        account: AccountId,
        key: &str,
        now: i64,
        expires: i64,
    ) -> Result<bool>;
    /// Takes up to `wanted` redirects from the account's allowance of `cap` for `day`; returns
    /// how many were granted (and counted).
    async fn sieve_redirects_take(
        &self,
        account: AccountId,
        day: i64,
        wanted: u32,
        cap: u32,
    ) -> Result<u32>;
}

/// Everything a backend provides.
#[async_trait]
pub trait Store:
    DirectoryStore
    + MailStore
    + QueueStore
    + KeyStore
    + LoginStore
    + SpamStore
    + GreylistStore
    + FilterStore
    + SieveStore
{
    /// Checks the database and blob references; a healthy store reports no problems.
    async fn check_integrity(&self) -> Result<IntegrityReport>;
    /// Name of the backend, for logs ("sqlite", "postgres").
    fn backend(&self) -> &'static str;
}

/// Shared handle used by protocols and the CLI.
pub type DynStore = Arc<dyn Store>;

/// Unix time now, in seconds.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
