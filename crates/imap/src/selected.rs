//! The session's view of its selected mailbox: the MSN ↔ UID map the client knows, the flags it
//! was last told, and the changes of other sessions waiting to be announced.
//!
//! Changes from the store's feed are queued and applied only at announcement points, so message
//! sequence numbers never move under a command. RFC 9051 §7.5.1: EXPUNGE is never sent while
//! answering FETCH, STORE or SEARCH by sequence number; those expunged messages keep their MSN
//! (and appear in `expunged`) until a later command may announce them.
//!
//! The mailbox itself may change under the session: renamed by another session it keeps its id
//! and the view follows the new name (RFC 2180 §3.4); deleted, the view is marked so that the
//! session can end with BYE (RFC 2180 §3.3, see `Session::selected_deleted`).

use std::collections::{BTreeSet, HashMap};
use std::num::NonZeroU32;

use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use store::{
    Change, ChangeKind, DynStore, Flags, MailboxId, MailboxRecord, MessageRecord, ModSeq, Uid,
};

use crate::command::ext::SAVED_RESULT;
use crate::encode;

/// What the client was last told about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub flags: Flags,
    pub keywords: Vec<String>,
    pub modseq: ModSeq,
}

impl Known {
    pub fn of(m: &MessageRecord) -> Known {
        Known {
            flags: m.flags,
            keywords: m.keywords.clone(),
            modseq: m.modseq,
        }
    }
}

/// How untagged updates are phrased for this client.
#[derive(Debug, Clone, Copy, Default)]
pub struct Phrasing {
    /// CONDSTORE is on: flag updates carry MODSEQ (RFC 7162 §3.2).
    pub condstore: bool,
    /// QRESYNC is on: VANISHED replaces EXPUNGE (RFC 7162 §3.2.10).
    pub qresync: bool,
}

pub struct Selected {
    pub mailbox: MailboxRecord,
    pub read_only: bool,
    /// UID of each MSN (index + 1), ascending.
    uids: Vec<Uid>,
    known: HashMap<Uid, Known>,
    /// Expunged in the store, not yet announced: they keep their MSN until then.
    expunged: BTreeSet<Uid>,
    /// Changes from the feed, applied at the next announcement point.
    queued: Vec<Change>,
    /// The feed lagged: the whole mailbox is re-read at the next announcement.
    resync: bool,
    /// Another session deleted the mailbox.
    deleted: bool,
    /// The mailbox (or a superior) was renamed: its name is re-read at the next announcement.
    renamed: bool,
    /// Keywords used in the mailbox, for the FLAGS response.
    pub keywords: BTreeSet<String>,
    pub highest_modseq: ModSeq,
    /// The saved search result of SEARCHRES (RFC 5182), as UIDs so expunges drop out by
    /// themselves; empty again when another mailbox is selected.
    pub saved: BTreeSet<Uid>,
    /// The running command wrote `$`, now [`SAVED_RESULT`] in its sequence sets.
    pub use_saved: bool,
    /// Messages of the view that are `\Recent` in this session (RFC 3501 §2.3.2).
    recent: BTreeSet<Uid>,
    /// UID ranges recent for this session above the last UID of the view: claimed before the
    /// session heard of those messages (they arrive by the feed later).
    recent_ahead: Vec<(Uid, Uid)>,
    /// This session takes `\Recent` from the store: read-write and IMAP4rev1.
    claims: bool,
    /// `\Recent` and RECENT responses are sent: not once IMAP4rev2 is enabled (RFC 9051
    /// Appendix E removes them).
    report_recent: bool,
}

/// A sequence set of a command resolved against the view.
pub enum Resolved {
    /// (MSN, UID) pairs in ascending order.
    Messages(Vec<(u32, Uid)>),
    /// A message sequence number beyond the mailbox (RFC 9051 §6.4: BAD).
    OutOfRange,
}

impl Selected {
    pub async fn open(
        store: &DynStore,
        mailbox: MailboxRecord,
        read_only: bool,
    ) -> store::Result<Selected> {
        let messages = store.messages(mailbox.id, 1..=Uid::MAX).await?;
        let mut s = Selected {
            highest_modseq: mailbox.highestmodseq,
            mailbox,
            read_only,
            uids: Vec::with_capacity(messages.len()),
            known: HashMap::with_capacity(messages.len()),
            expunged: BTreeSet::new(),
            queued: Vec::new(),
            resync: false,
            deleted: false,
            renamed: false,
            keywords: BTreeSet::new(),
            saved: BTreeSet::new(),
            use_saved: false,
            recent: BTreeSet::new(),
            recent_ahead: Vec::new(),
            claims: false,
            report_recent: false,
        };
        for m in &messages {
            s.insert(m);
        }
        Ok(s)
    }

    /// Starts `\Recent` (RFC 3501 §2.3.2) once the view is read. A read-write IMAP4rev1 session
    /// claims what no session had; EXAMINE must not take it (RFC 3501 §6.3.2) and sees the
    /// unclaimed messages as recent without claiming them (§2.3.2: when it cannot tell, a message
    /// is recent). An IMAP4rev2 session neither claims nor reports it.
    pub async fn start_recent(&mut self, store: &DynStore, rev2: bool) -> store::Result<()> {
        self.report_recent = !rev2;
        self.claims = !rev2 && !self.read_only;
        if self.claims {
            self.claim(store).await?;
        } else if self.report_recent {
            self.add_recent(self.mailbox.recent_uid.saturating_add(1), Uid::MAX);
        }
        Ok(())
    }

    async fn claim(&mut self, store: &DynStore) -> store::Result<()> {
        if let Some(r) = store.claim_recent(self.mailbox.id).await? {
            self.add_recent(*r.start(), *r.end());
        }
        Ok(())
    }

    fn add_recent(&mut self, lo: Uid, hi: Uid) {
        if lo > hi {
            return;
        }
        let a = self.uids.partition_point(|&u| u < lo);
        let b = self.uids.partition_point(|&u| u <= hi);
        self.recent.extend(&self.uids[a..b]);
        let last = self.uids.last().copied().unwrap_or(0);
        if hi > last {
            self.recent_ahead.push((lo.max(last.saturating_add(1)), hi));
        }
    }

    /// IMAP4rev2 was enabled while selected: `\Recent` is neither reported nor claimed any more.
    pub fn rev2_enabled(&mut self) {
        self.report_recent = false;
        self.claims = false;
    }

    /// Whether the message is `\Recent` for this session (always false for IMAP4rev2).
    pub fn is_recent(&self, uid: Uid) -> bool {
        self.report_recent && self.recent.contains(&uid)
    }

    /// The count of the RECENT response (RFC 3501 §7.3.2).
    pub fn recent_count(&self) -> u32 {
        self.recent.len() as u32
    }

    fn insert(&mut self, m: &MessageRecord) {
        // UIDs only grow: ranges wholly below this one can hold nothing more.
        self.recent_ahead.retain(|&(_, hi)| hi >= m.uid);
        if self
            .recent_ahead
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&m.uid))
        {
            self.recent.insert(m.uid);
        }
        self.uids.push(m.uid);
        self.keywords.extend(m.keywords.iter().cloned());
        self.highest_modseq = self.highest_modseq.max(m.modseq);
        self.known.insert(m.uid, Known::of(m));
    }

    pub fn id(&self) -> MailboxId {
        self.mailbox.id
    }

    /// Number of messages the client knows of (EXISTS).
    pub fn exists(&self) -> u32 {
        self.uids.len() as u32
    }

    pub fn uids(&self) -> &[Uid] {
        &self.uids
    }

    pub fn msn_of(&self, uid: Uid) -> Option<u32> {
        self.uids.binary_search(&uid).ok().map(|i| i as u32 + 1)
    }

    pub fn known(&self, uid: Uid) -> Option<&Known> {
        self.known.get(&uid)
    }

    pub fn is_expunged(&self, uid: Uid) -> bool {
        self.expunged.contains(&uid)
    }

    /// Records flags this session set itself (so the feed's echo is not announced twice).
    pub fn set_known(&mut self, m: &MessageRecord) {
        if self.known.contains_key(&m.uid) {
            self.keywords.extend(m.keywords.iter().cloned());
            self.highest_modseq = self.highest_modseq.max(m.modseq);
            self.known.insert(m.uid, Known::of(m));
        }
    }

    /// Resolves a sequence set: MSNs (`uid` false) or UIDs. `*` is the last message the client
    /// knows; a UID range `n:*` always includes the last message (RFC 9051 §6.4.9).
    pub fn resolve(&self, set: &SequenceSet, uid: bool) -> Resolved {
        if self.is_saved(set) {
            // RFC 5182 §2.1: `$` names the saved messages still in the mailbox, for UID and
            // sequence-number commands alike.
            return Resolved::Messages(
                self.saved
                    .iter()
                    .filter_map(|u| self.msn_of(*u).map(|m| (m, *u)))
                    .collect(),
            );
        }
        let ranges = ranges(
            set,
            if uid {
                self.uids.last().copied().unwrap_or(0)
            } else {
                self.exists()
            },
        );
        let mut out = BTreeSet::new();
        for (a, b) in ranges {
            if uid {
                let lo = self.uids.partition_point(|&u| u < a);
                let hi = self.uids.partition_point(|&u| u <= b);
                for i in lo..hi {
                    out.insert((i as u32 + 1, self.uids[i]));
                }
            } else {
                if a == 0 || b > self.exists() {
                    return Resolved::OutOfRange;
                }
                for msn in a..=b {
                    out.insert((msn, self.uids[(msn - 1) as usize]));
                }
            }
        }
        Resolved::Messages(out.into_iter().collect())
    }

    /// The largest UID the client can know of: UIDNEXT-1 as SELECT reported it, or the last UID
    /// announced since (an APPEND, COPY or another session's delivery).
    pub fn uid_horizon(&self) -> Uid {
        self.mailbox
            .uidnext
            .saturating_sub(1)
            .max(self.uids.last().copied().unwrap_or(0))
    }

    /// The UID ranges a VANISHED (EARLIER) answer covers for `set`, the UID set of UID FETCH
    /// (CHANGEDSINCE n VANISHED) or the known UIDs of SELECT (QRESYNC ...): RFC 7162 §3.2.6 and
    /// §3.2.5.2 report expunged UIDs of that set. `*` is [`Selected::uid_horizon`] rather than
    /// the last message (RFC 9051 §9 seq-number): a client resynchronising with `1:*` asks about
    /// every UID it knew, and the last ones may be exactly those expunged. Nothing above the
    /// horizon is ever named: those UIDs were never announced to this session (expunged before
    /// it heard of them, or not assigned at all).
    pub fn vanished_ranges(&self, set: &SequenceSet) -> Vec<(u32, u32)> {
        let horizon = self.uid_horizon();
        ranges(set, horizon)
            .into_iter()
            .filter(|(a, _)| *a <= horizon)
            .map(|(a, b)| (a, b.min(horizon)))
            .collect()
    }

    /// Whether `set` stands for the saved search result (`$` in the running command).
    pub fn is_saved(&self, set: &SequenceSet) -> bool {
        self.use_saved
            && matches!(
                set.0.as_ref(),
                [Sequence::Single(SeqOrUid::Value(v))] if v.get() == SAVED_RESULT
            )
    }

    /// Queues a change from the feed (already filtered to this account).
    pub fn queue(&mut self, change: Change) {
        if change.mailbox_id != self.mailbox.id {
            return;
        }
        match change.kind {
            ChangeKind::MailboxDeleted => self.deleted = true,
            ChangeKind::MailboxRenamed => self.renamed = true,
            _ => self.queued.push(change),
        }
    }

    /// Whether the mailbox no longer exists. After a lagged feed (a deletion may have been among
    /// the lost changes) the store is asked.
    pub async fn check_deleted(&mut self, store: &DynStore) -> store::Result<bool> {
        if !self.deleted && self.resync {
            self.deleted = store.mailbox_get_by_id(self.mailbox.id).await?.is_none();
        }
        Ok(self.deleted)
    }

    pub fn lagged(&mut self) {
        self.resync = true;
    }

    /// Removes messages this session expunged itself and returns their EXPUNGE/VANISHED lines.
    /// Other pending expunges are announced too (an expunge announcement point).
    pub fn expunged_now(&mut self, uids: &[Uid], phrasing: Phrasing) -> Vec<u8> {
        for u in uids {
            if self.known.contains_key(u) {
                self.expunged.insert(*u);
            }
        }
        self.flush_expunges(phrasing)
    }

    fn flush_expunges(&mut self, phrasing: Phrasing) -> Vec<u8> {
        let mut out = Vec::new();
        if self.expunged.is_empty() {
            return out;
        }
        let gone: Vec<Uid> = std::mem::take(&mut self.expunged).into_iter().collect();
        if phrasing.qresync {
            out.extend_from_slice(
                format!("* VANISHED {}\r\n", encode::sequence_set(&gone)).as_bytes(),
            );
        }
        // Descending MSN order: each EXPUNGE leaves the numbers still to be sent valid.
        for u in gone.iter().rev() {
            if let Ok(i) = self.uids.binary_search(u) {
                if !phrasing.qresync {
                    out.extend_from_slice(format!("* {} EXPUNGE\r\n", i + 1).as_bytes());
                }
                self.uids.remove(i);
            }
            self.known.remove(u);
            self.recent.remove(u);
        }
        out
    }

    /// Applies queued changes and returns the untagged responses announcing them. With
    /// `allow_expunge` false (FETCH, STORE, SEARCH by MSN) expunges stay pending.
    pub async fn announce(
        &mut self,
        store: &DynStore,
        allow_expunge: bool,
        phrasing: Phrasing,
    ) -> store::Result<Vec<u8>> {
        let mut out = Vec::new();
        let before = self.exists();
        let mut changed: BTreeSet<Uid> = BTreeSet::new();
        if self.renamed || self.resync {
            // RFC 2180 §3.4: same mailbox (id, UIDVALIDITY, messages) under its new name.
            if let Some(mb) = store.mailbox_get_by_id(self.mailbox.id).await? {
                self.mailbox.name = mb.name;
            }
            self.renamed = false;
        }
        if std::mem::take(&mut self.resync) {
            self.queued.clear();
            let all = store.messages(self.mailbox.id, 1..=Uid::MAX).await?;
            let present: BTreeSet<Uid> = all.iter().map(|m| m.uid).collect();
            for u in &self.uids {
                if !present.contains(u) {
                    self.expunged.insert(*u);
                }
            }
            let last = self.uids.last().copied().unwrap_or(0);
            for m in &all {
                if m.uid > last {
                    self.insert(m);
                } else if self.known.get(&m.uid).is_some_and(|k| k.modseq != m.modseq) {
                    changed.insert(m.uid);
                    self.known.insert(m.uid, Known::of(m));
                    self.keywords.extend(m.keywords.iter().cloned());
                }
            }
        }
        let queued = std::mem::take(&mut self.queued);
        for change in queued {
            self.highest_modseq = self.highest_modseq.max(change.modseq);
            match change.kind {
                ChangeKind::Appended(uids) => {
                    let last = self.uids.last().copied().unwrap_or(0);
                    let new: Vec<Uid> = uids.into_iter().filter(|u| *u > last).collect();
                    if let (Some(&lo), Some(&hi)) = (new.iter().min(), new.iter().max()) {
                        for m in store.messages(self.mailbox.id, lo..=hi).await? {
                            if m.uid > self.uids.last().copied().unwrap_or(0) {
                                self.insert(&m);
                            }
                        }
                    }
                }
                ChangeKind::Flags(uids) => {
                    let mine: BTreeSet<Uid> = uids
                        .into_iter()
                        .filter(|u| self.known.contains_key(u))
                        .collect();
                    if let (Some(&lo), Some(&hi)) = (mine.first(), mine.last()) {
                        for m in store.messages(self.mailbox.id, lo..=hi).await? {
                            let Some(k) = self.known.get(&m.uid) else {
                                continue;
                            };
                            if k.flags != m.flags || k.keywords != m.keywords {
                                changed.insert(m.uid);
                            }
                            if mine.contains(&m.uid) {
                                self.keywords.extend(m.keywords.iter().cloned());
                                self.known.insert(m.uid, Known::of(&m));
                            }
                        }
                    }
                }
                ChangeKind::Expunged(uids) => {
                    for u in uids {
                        if self.known.contains_key(&u) {
                            self.expunged.insert(u);
                        }
                    }
                }
                ChangeKind::MailboxCreated
                | ChangeKind::MailboxDeleted
                | ChangeKind::MailboxRenamed => {}
            }
        }
        for u in &changed {
            if self.expunged.contains(u) {
                continue;
            }
            let (Some(msn), Some(k)) = (self.msn_of(*u), self.known.get(u)) else {
                continue;
            };
            out.extend_from_slice(format!("* {msn} FETCH (FLAGS ").as_bytes());
            encode::flag_list(&mut out, k.flags, &k.keywords, self.is_recent(*u));
            out.extend_from_slice(format!(" UID {u}").as_bytes());
            if phrasing.condstore {
                out.extend_from_slice(format!(" MODSEQ ({})", k.modseq).as_bytes());
            }
            out.extend_from_slice(b")\r\n");
        }
        let grew = self.exists() > before;
        // RFC 3501 §2.3.2: the session that announces new messages first is the one to which
        // they are recent. A failed claim leaves them to another session; the EXISTS still goes.
        if grew
            && self.claims
            && let Err(e) = self.claim(store).await
        {
            tracing::warn!(error = %e, "imap: cannot claim recent messages");
        }
        if allow_expunge {
            out.extend_from_slice(&self.flush_expunges(phrasing));
        }
        // Announced after the expunges, so EXISTS is the final count.
        if grew {
            out.extend_from_slice(format!("* {} EXISTS\r\n", self.exists()).as_bytes());
            // RFC 3501 §7.3.2: RECENT goes with a change in the number of messages.
            if self.report_recent {
                out.extend_from_slice(format!("* {} RECENT\r\n", self.recent_count()).as_bytes());
            }
        }
        Ok(out)
    }
}

/// Sequence set to inclusive (low, high) ranges; `*` is `largest`.
pub fn ranges(set: &SequenceSet, largest: u32) -> Vec<(u32, u32)> {
    let val = |s: &SeqOrUid| match s {
        SeqOrUid::Value(v) => v.get(),
        SeqOrUid::Asterisk => largest,
    };
    set.0
        .as_ref()
        .iter()
        .map(|seq| match seq {
            Sequence::Single(a) => (val(a), val(a)),
            Sequence::Range(a, b) => {
                let (a, b) = (val(a), val(b));
                (a.min(b), a.max(b))
            }
        })
        .collect()
}

/// A non-zero number, for the few places imap-types wants one.
pub fn nz(n: u32) -> Option<NonZeroU32> {
    NonZeroU32::new(n)
}
