//! Backend-neutral records the `Store` trait takes and returns.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub type DomainId = i64;
pub type AccountId = i64;
pub type MailboxId = i64;
pub type Uid = u32;
pub type ModSeq = u64;
pub type QueueId = i64;

/// Content address of a blob: BLAKE3 of the raw message bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlobId(pub [u8; 32]);

impl BlobId {
    pub fn of(bytes: &[u8]) -> BlobId {
        BlobId(*blake3::hash(bytes).as_bytes())
    }
    /// The id of the concatenation of `parts`, without joining them.
    pub fn of_parts(parts: &[&[u8]]) -> BlobId {
        let mut h = blake3::Hasher::new();
        for p in parts {
            h.update(p);
        }
        BlobId(*h.finalize().as_bytes())
    }
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }
    pub fn from_hex(s: &str) -> Option<BlobId> {
        blake3::Hash::from_hex(s)
            .ok()
            .map(|h| BlobId(*h.as_bytes()))
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobId({})", &self.to_hex()[..16])
    }
}

// ---------------------------------------------------------------- directory records

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainRecord {
    pub id: DomainId,
    /// Lowercase ASCII (A-labels for IDNs).
    pub name: String,
    /// Address that receives mail for unknown local parts of this domain.
    pub catchall: Option<String>,
    pub created: i64,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    pub id: AccountId,
    pub domain_id: DomainId,
    /// Lowercase local part.
    pub local_part: String,
    pub domain: String,
    pub display_name: String,
    /// PHC string (Argon2id). Never logged: `Debug` redacts it.
    pub password_hash: String,
    /// Storage quota in bytes; `None` means unlimited.
    pub quota_bytes: Option<u64>,
    /// Message-count quota; `None` means unlimited.
    pub quota_messages: Option<u64>,
    pub enabled: bool,
    pub created: i64,
}

impl AccountRecord {
    pub fn address(&self) -> String {
        format!("{}@{}", self.local_part, self.domain)
    }
}

impl fmt::Debug for AccountRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountRecord")
            .field("id", &self.id)
            .field("address", &self.address())
            .field("display_name", &self.display_name)
            .field("password_hash", &"<redacted>")
            .field("quota_bytes", &self.quota_bytes)
            .field("quota_messages", &self.quota_messages)
            .field("enabled", &self.enabled)
            .finish()
    }
}

#[derive(Clone)]
pub struct NewAccount {
    pub domain_id: DomainId,
    pub local_part: String,
    pub display_name: String,
    pub password_hash: String,
    pub quota_bytes: Option<u64>,
    pub quota_messages: Option<u64>,
    /// Mailboxes created with the account, e.g. INBOX, Drafts (\Drafts), Sent (\Sent)...
    pub mailboxes: Vec<(String, Option<SpecialUse>)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasRecord {
    pub id: i64,
    pub domain_id: DomainId,
    pub domain: String,
    /// Lowercase local part.
    pub local_part: String,
    /// Full addresses, local or external.
    pub targets: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QuotaUsage {
    pub bytes: u64,
    pub messages: u64,
}

// ---------------------------------------------------------------- mailboxes

/// RFC 6154 special-use attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SpecialUse {
    All,
    Archive,
    Drafts,
    Flagged,
    Junk,
    Sent,
    Trash,
    Important,
}

impl SpecialUse {
    pub fn as_str(self) -> &'static str {
        match self {
            SpecialUse::All => "\\All",
            SpecialUse::Archive => "\\Archive",
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Flagged => "\\Flagged",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Trash => "\\Trash",
            SpecialUse::Important => "\\Important",
        }
    }
    pub fn parse(s: &str) -> Option<SpecialUse> {
        let all = [
            SpecialUse::All,
            SpecialUse::Archive,
            SpecialUse::Drafts,
            SpecialUse::Flagged,
            SpecialUse::Junk,
            SpecialUse::Sent,
            SpecialUse::Trash,
            SpecialUse::Important,
        ];
        all.into_iter().find(|u| u.as_str().eq_ignore_ascii_case(s))
    }
}

/// Hierarchy delimiter of mailbox names (RFC 9051 §5.1: we use `/`).
pub const MAILBOX_DELIMITER: char = '/';
/// The name of the inbox; matched case-insensitively (RFC 9051 §5.1).
pub const INBOX: &str = "INBOX";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxRecord {
    pub id: MailboxId,
    pub account_id: AccountId,
    pub name: String,
    pub uidvalidity: u32,
    pub uidnext: Uid,
    pub highestmodseq: ModSeq,
    pub special_use: Option<SpecialUse>,
    /// Highest UID already given out as `\Recent` (RFC 3501 §2.3.2) to some session; messages
    /// above it are recent for the next session that claims them ([`crate::MailStore::claim_recent`]).
    pub recent_uid: Uid,
}

/// Counters for STATUS / SELECT.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MailboxStatus {
    pub messages: u32,
    /// Messages no session has claimed as `\Recent` yet (STATUS RECENT, RFC 3501 §6.3.10).
    pub recent: u32,
    pub unseen: u32,
    pub deleted: u32,
    pub size: u64,
    pub uidnext: Uid,
    pub uidvalidity: u32,
    pub highestmodseq: ModSeq,
}

// ---------------------------------------------------------------- messages

/// The five system flags of RFC 9051 §2.3.2 as a bit set (`\Recent` is not stored: IMAP4rev2 drops it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, Serialize, Deserialize)]
pub struct Flags(pub u8);

impl Flags {
    pub const SEEN: Flags = Flags(1);
    pub const ANSWERED: Flags = Flags(2);
    pub const FLAGGED: Flags = Flags(4);
    pub const DELETED: Flags = Flags(8);
    pub const DRAFT: Flags = Flags(16);
    pub const ALL: [(Flags, &'static str); 5] = [
        (Flags::SEEN, "\\Seen"),
        (Flags::ANSWERED, "\\Answered"),
        (Flags::FLAGGED, "\\Flagged"),
        (Flags::DELETED, "\\Deleted"),
        (Flags::DRAFT, "\\Draft"),
    ];

    pub const fn empty() -> Flags {
        Flags(0)
    }
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
    pub fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
    pub fn minus(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// Parses a system flag name case-insensitively (`\Seen`).
    pub fn from_name(name: &str) -> Option<Flags> {
        Flags::ALL
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(f, _)| *f)
    }
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Flags::ALL
            .into_iter()
            .filter(move |(f, _)| self.contains(*f))
            .map(|(_, n)| n)
    }
}

/// How a STORE changes flags (RFC 9051 §6.4.6: FLAGS, +FLAGS, -FLAGS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    Replace,
    Add,
    Remove,
}

/// A message's bytes as handed to the store: header fields added on delivery (`head`, often
/// empty) followed by the message as received (`body`), kept apart so that the two are never
/// copied into one buffer, and shared (`Arc`) so one message delivered to many mailboxes is held
/// once. It may carry its analysis, made once upstream, which the store then caches as is and
/// hands to the full-text indexer instead of analysing the bytes again.
#[derive(Debug, Clone)]
pub struct RawMessage {
    head: Arc<[u8]>,
    body: Arc<[u8]>,
    analysis: Option<Arc<crate::Analysis>>,
}

impl RawMessage {
    pub fn new(head: Arc<[u8]>, body: Arc<[u8]>) -> RawMessage {
        RawMessage {
            head,
            body,
            analysis: None,
        }
    }

    /// Attaches the analysis of these bytes: it must be `message::analyze` of `head ++ body`
    /// with the store's [`crate::MailStore::mime_limits`] (for instance derived with
    /// `message::Prepared::analysis_with_prefix`), search text included.
    pub fn with_analysis(mut self, analysis: Arc<crate::Analysis>) -> RawMessage {
        self.analysis = Some(analysis);
        self
    }

    pub fn analysis(&self) -> Option<&Arc<crate::Analysis>> {
        self.analysis.as_ref()
    }

    pub fn len(&self) -> usize {
        self.head.len() + self.body.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn head(&self) -> &Arc<[u8]> {
        &self.head
    }

    pub fn body(&self) -> &Arc<[u8]> {
        &self.body
    }

    pub fn parts(&self) -> [&[u8]; 2] {
        [&self.head, &self.body]
    }

    pub fn id(&self) -> BlobId {
        BlobId::of_parts(&self.parts())
    }

    /// The bytes in one buffer (a copy; the body alone when there is no head).
    pub fn to_arc(&self) -> Arc<[u8]> {
        if self.head.is_empty() {
            self.body.clone()
        } else {
            [&self.head[..], &self.body[..]].concat().into()
        }
    }
}

impl From<Arc<[u8]>> for RawMessage {
    fn from(body: Arc<[u8]>) -> RawMessage {
        RawMessage::new(Arc::from(&[][..]), body)
    }
}

impl From<Vec<u8>> for RawMessage {
    fn from(body: Vec<u8>) -> RawMessage {
        RawMessage::from(Arc::<[u8]>::from(body))
    }
}

impl From<&[u8]> for RawMessage {
    fn from(body: &[u8]) -> RawMessage {
        RawMessage::from(Arc::<[u8]>::from(body))
    }
}

/// A message to append.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub mailbox_id: MailboxId,
    pub raw: RawMessage,
    pub flags: Flags,
    pub keywords: Vec<String>,
    /// Unix seconds (IMAP INTERNALDATE).
    pub internal_date: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appended {
    pub mailbox_id: MailboxId,
    pub uidvalidity: u32,
    pub uid: Uid,
    pub modseq: ModSeq,
    pub blob: BlobId,
}

/// Per-message metadata, as IMAP FETCH and SEARCH need it without reading the blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub uid: Uid,
    pub modseq: ModSeq,
    pub flags: Flags,
    pub keywords: Vec<String>,
    pub internal_date: i64,
    pub size: u64,
    pub blob: BlobId,
}

/// Which messages an expunge removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpungeFilter {
    /// RFC 9051 EXPUNGE / CLOSE: every message with `\Deleted`.
    AllDeleted,
    /// UIDPLUS `UID EXPUNGE`: only these UIDs, and only if they have `\Deleted`.
    DeletedIn(Vec<Uid>),
    /// These UIDs whatever their flags (POP3 UPDATE state, MOVE).
    Uids(Vec<Uid>),
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FlagUpdate {
    /// Messages whose flags changed, with their new state.
    pub updated: Vec<MessageRecord>,
    /// CONDSTORE (RFC 7162 §3.1.3): UIDs not changed because their MODSEQ was above UNCHANGEDSINCE.
    pub modified: Vec<Uid>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CopyResult {
    pub uidvalidity: u32,
    /// (source UID, destination UID) pairs in source UID order.
    pub mapping: Vec<(Uid, Uid)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Expunged {
    pub uids: Vec<Uid>,
    pub modseq: ModSeq,
}

/// Where a full-text search looks (IMAP SEARCH BODY / TEXT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextField {
    Body,
    /// Headers and body (IMAP TEXT).
    Text,
    Headers,
}

// ---------------------------------------------------------------- change feed

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    Appended(Vec<Uid>),
    Flags(Vec<Uid>),
    Expunged(Vec<Uid>),
    MailboxCreated,
    MailboxDeleted,
    MailboxRenamed,
}

/// One committed change, published after its transaction is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub account_id: AccountId,
    pub mailbox_id: MailboxId,
    pub modseq: ModSeq,
    pub kind: ChangeKind,
}

// ---------------------------------------------------------------- outbound queue

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRecipient {
    pub address: String,
    /// RFC 3461 NOTIFY, as given (e.g. "SUCCESS,FAILURE"), if any.
    pub notify: Option<String>,
    /// RFC 3461 ORCPT, as given (addr-type;xtext), if any.
    pub orcpt: Option<String>,
    /// "pending", "delivered", "failed".
    pub status: String,
    pub last_reply: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewQueueEntry {
    pub raw: RawMessage,
    /// Envelope sender; empty for the null reverse-path.
    pub sender: String,
    pub recipients: Vec<QueueRecipient>,
    /// RFC 3461 ENVID and RET (FULL / HDRS).
    pub envid: Option<String>,
    pub ret: Option<String>,
    pub next_attempt: i64,
    /// The SMTP transaction's identifier (the id of its `250 ... queued as`), so the logs of
    /// every delivery attempt name the message the client was told about.
    pub smtp_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    pub id: QueueId,
    pub blob: BlobId,
    pub size: u64,
    pub sender: String,
    pub recipients: Vec<QueueRecipient>,
    pub envid: Option<String>,
    pub ret: Option<String>,
    pub created: i64,
    pub next_attempt: i64,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// See [`NewQueueEntry::smtp_id`]; `None` for entries queued before schema 5.
    pub smtp_id: Option<String>,
}

/// One durable write: appends and queue entries committed together, so a message accepted for local
/// and remote recipients is either wholly stored or not at all.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    pub appends: Vec<AppendRequest>,
    pub enqueue: Vec<NewQueueEntry>,
    /// How a quota the batch would exceed is handled (the store is the one authority on quota).
    pub quota: QuotaPolicy,
}

/// What a commit does with appends that would put an account over its quota.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QuotaPolicy {
    /// The whole batch fails with `OverQuota` (SMTP: one answer for all recipients).
    #[default]
    AllOrNothing,
    /// Those appends are left out and listed in [`BatchResult::over_quota`]; the rest commits
    /// (LMTP: one answer per recipient, RFC 2033 §4.2).
    PerAccount,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchResult {
    /// One entry per append that was made, in request order.
    pub appended: Vec<Appended>,
    pub queued: Vec<QueueId>,
    /// Indexes (in `WriteBatch::appends`) of appends left out for quota under
    /// [`QuotaPolicy::PerAccount`].
    pub over_quota: Vec<usize>,
}

/// What an integrity check found. `problems` is empty on a healthy store.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IntegrityReport {
    pub messages: u64,
    pub blobs: u64,
    pub problems: Vec<String>,
    /// Blob files on disk that no row references (left by a crash between rename and commit).
    pub orphan_files: u64,
}

/// A DKIM signing key of a domain (RFC 6376). The store keeps the PEM text only; parsing and
/// signing belong to the `mailauth` crate.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DkimKeyRecord {
    /// Lowercase domain (the `d=` of signatures).
    pub domain: String,
    /// The `s=` selector: the key is published at `<selector>._domainkey.<domain>`.
    pub selector: String,
    /// "ed25519" or "rsa".
    pub algorithm: String,
    /// PKCS#8 private key, PEM.
    pub private_pem: String,
    /// Unix seconds.
    pub created: i64,
    /// Where the key is in its life: pending publication, signing, or retired.
    pub state: DkimKeyState,
}

/// The life of a DKIM key. A signature whose key receivers cannot find in the DNS verifies for
/// nobody (RFC 6376 §6.1.2: no key is a failure), so a new key waits, pending, until its record is
/// published; a retired key no longer signs but keeps its record a while, for mail still in
/// transit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DkimKeyState {
    /// Made, not signing yet: its DNS record has not been seen.
    Pending,
    /// Outbound mail of the domain is signed with it (several keys may be).
    Active,
    /// Signed once, not any more.
    Retired,
}

impl DkimKeyState {
    pub const ALL: [DkimKeyState; 3] = [
        DkimKeyState::Pending,
        DkimKeyState::Active,
        DkimKeyState::Retired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DkimKeyState::Pending => "pending",
            DkimKeyState::Active => "active",
            DkimKeyState::Retired => "retired",
        }
    }

    pub fn parse(s: &str) -> Option<DkimKeyState> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether outbound mail is signed with a key in this state.
    pub fn signs(self) -> bool {
        self == DkimKeyState::Active
    }
}

impl fmt::Display for DkimKeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for DkimKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DkimKeyRecord")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm)
            .field("private_pem", &"<redacted>")
            .field("created", &self.created)
            .field("state", &self.state)
            .finish()
    }
}

/// A login ban to record: a source (an IP, or an IPv6 /64 written as a prefix) refused from every
/// account, or an account refused to the sources it has never logged in from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLoginBan {
    /// `"203.0.113.9"` or `"2001:db8:1:2::/64"`; `None` for an account's ban.
    pub source: Option<String>,
    /// Normalised address of the account; `None` for a source's ban.
    pub account: Option<String>,
    /// Failed logins that led to the ban.
    pub failures: u32,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds: the ban ends then.
    pub until: i64,
}

/// A recorded login ban. Rows stay after a ban ends (expired or lifted) until purged, so every
/// server sharing the store sees a lift through [`LoginStore::bans_changed_since`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoginBanRecord {
    pub id: i64,
    pub source: Option<String>,
    pub account: Option<String>,
    pub failures: u32,
    pub created: i64,
    pub until: i64,
    /// When an administrator lifted it (unix seconds); `None` while it runs its course.
    pub lifted: Option<i64>,
    /// Position in the store's sequence of ban changes: each add and each lift takes the next one.
    pub seq: i64,
}

impl LoginBanRecord {
    /// Whether the ban refuses logins at `now` (unix seconds).
    pub fn in_force(&self, now: i64) -> bool {
        self.lifted.is_none() && self.until > now
    }
}

/// A source an account has logged in from successfully.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginSourceRecord {
    pub account: String,
    pub source: String,
    /// Unix seconds of the last successful login recorded.
    pub last_success: i64,
}

// ---------------------------------------------------------------- spam classifier models

/// A statistical spam model: the server-wide one, or one account's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SpamModel {
    Global,
    Account(AccountId),
}

/// The class a message is learned as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpamClass {
    Ham,
    Spam,
}

/// How many messages a model has learned, and the feature format it was trained with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpamTotals {
    pub ham: u64,
    pub spam: u64,
    /// Feature format of the model (the classifier's version of its tokens); 0 while empty.
    pub format: u32,
}

/// One model's totals and the counts of the tokens asked for (tokens it never saw are left out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpamCounts {
    pub model: SpamModel,
    pub totals: SpamTotals,
    /// (token, ham count, spam count).
    pub tokens: Vec<(u64, u32, u32)>,
}

/// What learning or unlearning one message did to one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpamLearnOutcome {
    /// Counted as the class asked for.
    Learned,
    /// It had been learned as the other class: that was taken back first.
    Relearned,
    /// Already learned as this class: nothing changed.
    AlreadyLearned,
    /// Unlearning: the message's counts were taken back.
    Unlearned,
    /// Unlearning a message this model never learned: nothing changed.
    NotLearned,
}

/// One message to learn or unlearn: its identity and its tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpamSample {
    /// Identifies the message, so learning it twice counts once (BLAKE3 of its bytes).
    pub digest: [u8; 32],
    /// Its unique feature hashes.
    pub tokens: Vec<u64>,
    /// Feature format the tokens were made with; a model refuses tokens of another format.
    pub format: u32,
}

// ---------------------------------------------------------------- greylisting

/// How greylisting treats a (client network, sender, recipient) triplet (RFC 6647 §2.1). Times
/// are in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GreylistPolicy {
    /// A retry is accepted this long after the first attempt, not sooner.
    pub delay: i64,
    /// A triplet never retried is forgotten this long after its first attempt.
    pub retry_window: i64,
    /// A triplet that passed is remembered this long after it was last seen.
    pub pass_ttl: i64,
    /// A client network whose triplets passed this many times is whitelisted as a whole (0: never).
    pub whitelist_after: u32,
    /// How long a whitelisted network stays whitelisted after it was last seen.
    pub whitelist_ttl: i64,
}

/// What greylisting says about one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GreylistDecision {
    /// The client network retried properly before: accepted without looking at the triplet.
    NetworkWhitelisted,
    /// The triplet passed (now or earlier).
    Passed,
    /// First sight, or a retry too early: try again in `retry_in` seconds.
    Deferred { retry_in: i64 },
}

/// Counts of the greylisting state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GreylistStats {
    pub pending: u64,
    pub passed: u64,
    pub networks: u64,
}

// ---------------------------------------------------------------- quarantine and sender lists

/// A message held back by the inbound checks (quarantined), as it would have been delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct NewQuarantine {
    /// The SMTP transaction id (the `queued as` of the reply), for logs.
    pub smtp_id: String,
    /// The header Message-ID, when the message has one.
    pub message_id: Option<String>,
    /// Envelope sender (empty for the null reverse-path).
    pub sender: String,
    /// Recipients as the client gave them, for listing.
    pub recipients: Vec<String>,
    /// Local accounts the message was for: release puts a copy in each one's INBOX.
    pub accounts: Vec<AccountId>,
    /// Remote recipients (forwards through an alias) as (envelope sender, address): release
    /// queues the message to them.
    pub remote: Vec<(String, String)>,
    pub subject: String,
    /// Total score of the checks, and the reasons ("NAME(score) ...").
    pub score: f64,
    pub reasons: String,
    /// The message with its trace fields, without `Return-Path` (added per local copy).
    pub raw: Vec<u8>,
    pub created: i64,
    /// Unix seconds after which the expiry job deletes it.
    pub expires: i64,
}

/// A held message, without its bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantineRecord {
    pub id: i64,
    pub smtp_id: String,
    pub message_id: Option<String>,
    pub sender: String,
    pub recipients: Vec<String>,
    pub accounts: Vec<AccountId>,
    pub remote: Vec<(String, String)>,
    pub subject: String,
    pub score: f64,
    pub reasons: String,
    pub size: u64,
    pub created: i64,
    pub expires: i64,
}

/// Allow or block list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListKind {
    Allow,
    Block,
}

impl ListKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ListKind::Allow => "allow",
            ListKind::Block => "block",
        }
    }
}

/// Who a Sieve script belongs to: an account (its personal scripts) or a domain (the admin's
/// scripts, run before every account's of the domain).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SieveOwner {
    Account(AccountId),
    /// Lowercase domain name.
    Domain(String),
}

impl SieveOwner {
    /// The key the store files scripts under.
    pub fn key(&self) -> String {
        match self {
            SieveOwner::Account(id) => format!("a:{id}"),
            SieveOwner::Domain(d) => format!("d:{}", d.to_ascii_lowercase()),
        }
    }
}

/// Whose list an entry is on: a domain's (every account of it) or one account's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListScope {
    /// A domain name, lowercase.
    Domain(String),
    Account(AccountId),
}

/// One entry of an allow or block list: a sender address (`user@domain`), a sender domain
/// (`@domain`, matching its subdomains too) or an IP address or CIDR block. Stored lowercase;
/// the checks parse it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    pub scope: ListScope,
    pub kind: ListKind,
    pub pattern: String,
    pub created: i64,
}

/// A script to store: its text and, when the caller compiled it, the compiled form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSieveScript {
    pub owner: SieveOwner,
    pub name: String,
    pub content: Vec<u8>,
    pub compiled: Option<Vec<u8>>,
    /// Which compiler made `compiled` (it is ignored when another one reads it).
    pub compiled_format: String,
    pub now: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SieveScript {
    pub owner: SieveOwner,
    pub name: String,
    pub content: Vec<u8>,
    pub compiled: Option<Vec<u8>>,
    pub compiled_format: String,
    pub active: bool,
    pub updated: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SieveScriptInfo {
    pub name: String,
    pub size: u64,
    pub active: bool,
}
