//! STORE (RFC 9051 §6.4.6, CONDSTORE UNCHANGEDSINCE RFC 7162 §3.1.3), EXPUNGE and UID EXPUNGE
//! (RFC 4315), COPY (with COPYUID) and MOVE (RFC 6851).

use std::io::Write;

use imap_codec::imap_types::command::StoreModifier;
use imap_codec::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::sequence::SequenceSet;
use store::{ExpungeFilter, FlagOp, Flags, SpamClass, SpecialUse, StoreError, Uid};

use crate::backend::Backend;
use crate::encode;
use crate::selected::Resolved;
use crate::session::{Session, Tagged, bad, no, ok, ok_code, store_failure};

/// Longest keyword accepted, in bytes.
pub const MAX_KEYWORD_LEN: usize = 128;

/// System flags and keywords of a flag list; `\Recent` and unknown `\Extension` flags are not
/// storable (RFC 9051 §2.3.2) and are refused.
pub fn split_flags(flags: &[Flag<'_>]) -> Result<(Flags, Vec<String>), &'static str> {
    let mut sys = Flags::empty();
    let mut kws: Vec<String> = Vec::new();
    for f in flags {
        match f {
            Flag::Seen => sys = sys.union(Flags::SEEN),
            Flag::Answered => sys = sys.union(Flags::ANSWERED),
            Flag::Flagged => sys = sys.union(Flags::FLAGGED),
            Flag::Deleted => sys = sys.union(Flags::DELETED),
            Flag::Draft => sys = sys.union(Flags::DRAFT),
            Flag::Keyword(k) => {
                let k = k.inner();
                if k.len() > MAX_KEYWORD_LEN {
                    return Err("Keyword too long");
                }
                if !kws.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                    kws.push(k.to_string());
                }
            }
            Flag::Extension(_) => return Err("This flag cannot be stored"),
        }
    }
    Ok((sys, kws))
}

impl<B: Backend> Session<B> {
    pub(crate) async fn store(
        &mut self,
        set: &SequenceSet,
        kind: StoreType,
        response: StoreResponse,
        flags: &[Flag<'_>],
        uid: bool,
        modifiers: &[StoreModifier],
    ) -> Tagged {
        let (sys, kws) = match split_flags(flags) {
            Ok(v) => v,
            Err(why) => return bad(why),
        };
        let unchanged_since = modifiers
            .iter()
            .map(|StoreModifier::UnchangedSince(n)| *n)
            .next();
        if unchanged_since.is_some() {
            self.enable_condstore();
        }
        let condstore = self.enabled.condstore;
        let Some(sel) = self.selected.as_ref() else {
            return bad("No mailbox selected");
        };
        if sel.read_only {
            return no(Some("READ-ONLY"), "Mailbox is read-only");
        }
        let targets = match sel.resolve(set, uid) {
            Resolved::Messages(t) => t,
            Resolved::OutOfRange => return bad("Message sequence number out of range"),
        };
        let targets: Vec<(u32, Uid)> = targets
            .into_iter()
            .filter(|(_, u)| !sel.is_expunged(*u))
            .collect();
        let uids: Vec<Uid> = targets.iter().map(|(_, u)| *u).collect();
        let op = match kind {
            StoreType::Replace => FlagOp::Replace,
            StoreType::Add => FlagOp::Add,
            StoreType::Remove => FlagOp::Remove,
        };
        let mailbox = sel.id();
        let upd = if uids.is_empty() {
            Default::default()
        } else {
            match self
                .backend
                .store()
                .store_flags(mailbox, &uids, op, sys, &kws, unchanged_since)
                .await
            {
                Ok(u) => u,
                Err(e) => return store_failure(&e),
            }
        };
        let Some(sel) = self.selected.as_mut() else {
            return bad("No mailbox selected");
        };
        for r in &upd.updated {
            sel.set_known(r);
        }
        let silent = response == StoreResponse::Silent;
        // Sorted for binary search: a STORE on a whole mailbox checks every message.
        let mut changed: Vec<Uid> = upd.updated.iter().map(|r| r.uid).collect();
        changed.sort_unstable();
        let mut modified = upd.modified.clone();
        modified.sort_unstable();
        let is_in = |list: &[Uid], u: &Uid| list.binary_search(u).is_ok();
        let out = &mut self.out;
        for (msn, u) in &targets {
            if is_in(&modified, u) {
                continue;
            }
            // RFC 7162 §3.1.3: with CONDSTORE the new MODSEQ is reported even for .SILENT.
            if silent && !(condstore && is_in(&changed, u)) {
                continue;
            }
            let Some(k) = sel.known(*u) else { continue };
            // Writing into a Vec cannot fail.
            let _ = write!(out, "* {msn} FETCH (");
            if !silent {
                out.extend_from_slice(b"FLAGS ");
                encode::flag_list(out, k.flags, &k.keywords, sel.is_recent(*u));
                out.push(b' ');
            }
            let _ = write!(out, "UID {u}");
            if condstore {
                let _ = write!(out, " MODSEQ ({})", k.modseq);
            }
            out.extend_from_slice(b")\r\n");
        }
        if !upd.modified.is_empty() {
            let nums: Vec<u32> = if uid {
                upd.modified.clone()
            } else {
                upd.modified.iter().filter_map(|u| sel.msn_of(*u)).collect()
            };
            return ok_code(
                format!("MODIFIED {}", encode::sequence_set(&nums)),
                "Conditional STORE failed for some messages",
            );
        }
        ok(if uid {
            "UID STORE completed"
        } else {
            "STORE completed"
        })
    }

    pub(crate) async fn expunge(&mut self, set: Option<&SequenceSet>) -> Tagged {
        let phrasing = self.phrasing();
        let Some(sel) = self.selected.as_ref() else {
            return bad("No mailbox selected");
        };
        if sel.read_only {
            return no(Some("READ-ONLY"), "Mailbox is read-only");
        }
        let filter = match set {
            None => ExpungeFilter::AllDeleted,
            Some(set) => match sel.resolve(set, true) {
                Resolved::Messages(t) => {
                    ExpungeFilter::DeletedIn(t.into_iter().map(|(_, u)| u).collect())
                }
                Resolved::OutOfRange => return bad("Invalid UID set"),
            },
        };
        let mailbox = sel.id();
        let gone = match self.backend.store().expunge(mailbox, filter).await {
            Ok(g) => g,
            Err(e) => return store_failure(&e),
        };
        if let Some(sel) = self.selected.as_mut() {
            let lines = sel.expunged_now(&gone.uids, phrasing);
            self.out.extend_from_slice(&lines);
        }
        ok(if set.is_some() {
            "UID EXPUNGE completed"
        } else {
            "EXPUNGE completed"
        })
    }

    pub(crate) async fn copy(
        &mut self,
        set: &SequenceSet,
        to: &Mailbox<'_>,
        uid: bool,
        is_move: bool,
    ) -> Tagged {
        let phrasing = self.phrasing();
        let verb = match (uid, is_move) {
            (true, true) => "UID MOVE",
            (false, true) => "MOVE",
            (true, false) => "UID COPY",
            (false, false) => "COPY",
        };
        let dest = match self.find_mailbox(to).await {
            Ok(d) => d,
            // RFC 9051 §6.4.7: the client may create the mailbox and retry.
            Err(_) => return no(Some("TRYCREATE"), "No such mailbox"),
        };
        let Some(sel) = self.selected.as_ref() else {
            return bad("No mailbox selected");
        };
        if is_move && sel.read_only {
            return no(Some("READ-ONLY"), "Mailbox is read-only");
        }
        let uids: Vec<Uid> = match sel.resolve(set, uid) {
            Resolved::Messages(t) => t
                .into_iter()
                .map(|(_, u)| u)
                .filter(|u| !sel.is_expunged(*u))
                .collect(),
            Resolved::OutOfRange => return bad("Message sequence number out of range"),
        };
        if uids.is_empty() {
            // RFC 9051 §6.4.7 / RFC 4315: nothing to copy is not an error.
            return ok(format!("{verb} completed"));
        }
        let from = sel.id();
        let store = self.backend.store().clone();
        let (copied, expunged) = if is_move {
            match store.move_messages(from, &uids, dest.id).await {
                Ok((c, e)) => (c, Some(e)),
                Err(e) => return copy_failure(&e),
            }
        } else {
            match store.copy(from, &uids, dest.id).await {
                Ok(c) => (c, None),
                Err(e) => return copy_failure(&e),
            }
        };
        let src: Vec<Uid> = copied.mapping.iter().map(|(s, _)| *s).collect();
        let dst: Vec<Uid> = copied.mapping.iter().map(|(_, d)| *d).collect();
        // Learning from the user: into Junk is spam, out of Junk (not to Trash) is ham.
        if let Some(learner) = self.backend.learner()
            && !dst.is_empty()
        {
            let source_junk = self
                .selected
                .as_ref()
                .is_some_and(|s| s.mailbox.special_use == Some(SpecialUse::Junk));
            let class = match dest.special_use {
                Some(SpecialUse::Junk) if !source_junk => Some(SpamClass::Spam),
                Some(SpecialUse::Junk) | Some(SpecialUse::Trash) => None,
                _ if source_junk => Some(SpamClass::Ham),
                _ => None,
            };
            if let Some(class) = class {
                learner.learn(self.account(), dest.id, &dst, class).await;
            }
        }
        let code = format!(
            "COPYUID {} {} {}",
            copied.uidvalidity,
            encode::uid_list(&src),
            encode::uid_list(&dst)
        );
        match expunged {
            Some(gone) => {
                // RFC 6851 §4.3: COPYUID goes in an untagged OK before the expunges.
                if !copied.mapping.is_empty() {
                    self.out
                        .extend_from_slice(format!("* OK [{code}] Moved\r\n").as_bytes());
                }
                if let Some(sel) = self.selected.as_mut() {
                    let lines = sel.expunged_now(&gone.uids, phrasing);
                    self.out.extend_from_slice(&lines);
                }
                ok(format!("{verb} completed"))
            }
            None if copied.mapping.is_empty() => ok(format!("{verb} completed")),
            None => ok_code(code, format!("{verb} completed")),
        }
    }
}

fn copy_failure(e: &StoreError) -> Tagged {
    match e {
        StoreError::NotFound(_) => no(Some("TRYCREATE"), "No such mailbox"),
        other => store_failure(other),
    }
}
