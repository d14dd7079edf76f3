//! Mailbox commands (RFC 9051 §6.3): SELECT, EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE,
//! UNSUBSCRIBE, LIST, LSUB, STATUS, and CLOSE / UNSELECT (§6.4.1, RFC 3691).

use std::collections::BTreeSet;

use imap_codec::imap_types::command::SelectParameter;
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_codec::imap_types::status::StatusDataItemName;
use store::{ExpungeFilter, Flags, INBOX, MAILBOX_DELIMITER, MailboxRecord, SpecialUse};

use super::{mailbox_name, normalize_inbox};
use crate::backend::Backend;
use crate::encode;
use crate::selected::{Selected, ranges};
use crate::session::{Session, Tagged, bad, no, ok, ok_code, store_failure};

/// `*` matches anything, `%` anything but the hierarchy delimiter (RFC 9051 §6.3.9).
/// Dynamic programming: linear in name × pattern, whatever the pattern.
pub fn wildcard_match(pattern: &[char], name: &[char]) -> bool {
    let n = name.len();
    // m[j] = pattern[..i] matches name[..j]
    let mut m = vec![false; n + 1];
    m[0] = true;
    for pc in pattern {
        let mut next = vec![false; n + 1];
        match *pc {
            '*' => {
                let mut any = false;
                for j in 0..=n {
                    any |= m[j];
                    next[j] = any;
                }
            }
            '%' => {
                let mut any = false;
                for j in 0..=n {
                    if j > 0 && name[j - 1] == MAILBOX_DELIMITER {
                        any = false;
                    }
                    any |= m[j];
                    next[j] = any;
                }
            }
            c => {
                for j in 1..=n {
                    next[j] = m[j - 1] && name[j - 1] == c;
                }
            }
        }
        m = next;
    }
    m[n]
}

fn raw_name(m: &Mailbox<'_>) -> String {
    match m {
        Mailbox::Inbox => INBOX.to_string(),
        Mailbox::Other(o) => String::from_utf8_lossy(o.as_ref()).into_owned(),
    }
}

impl<B: Backend> Session<B> {
    fn account(&self) -> i64 {
        self.user.as_ref().map(|u| u.account_id).unwrap_or(0)
    }

    pub(crate) async fn find_mailbox(&self, m: &Mailbox<'_>) -> Result<MailboxRecord, Tagged> {
        let Some(name) = mailbox_name(m) else {
            return Err(no(Some("NONEXISTENT"), "No such mailbox"));
        };
        match self
            .backend
            .store()
            .mailbox_get(self.account(), &name)
            .await
        {
            Ok(Some(mb)) => Ok(mb),
            Ok(None) => Err(no(Some("NONEXISTENT"), "No such mailbox")),
            Err(e) => Err(store_failure(&e)),
        }
    }

    pub(crate) async fn select(
        &mut self,
        m: &Mailbox<'_>,
        params: &[SelectParameter],
        read_only: bool,
    ) -> Tagged {
        // RFC 9051 §6.3.2: a failed SELECT still leaves no mailbox selected.
        if self.selected.take().is_some() {
            self.out
                .extend_from_slice(b"* OK [CLOSED] Previous mailbox closed\r\n");
        }
        let mb = match self.find_mailbox(m).await {
            Ok(mb) => mb,
            Err(t) => return t,
        };
        let mut qresync = None;
        for p in params {
            match p {
                SelectParameter::CondStore => self.enabled.condstore = true,
                SelectParameter::QResync {
                    uid_validity,
                    mod_sequence_value,
                    known_uids,
                    ..
                } => {
                    if !self.enabled.qresync {
                        return bad("QRESYNC is not enabled");
                    }
                    qresync = Some((
                        uid_validity.get(),
                        mod_sequence_value.get(),
                        known_uids.clone(),
                    ));
                }
            }
        }
        // Changes already committed are in the snapshot `open` reads.
        self.drain_feed();
        let store = self.backend.store().clone();
        let sel = match Selected::open(&store, mb, read_only).await {
            Ok(s) => s,
            Err(e) => return store_failure(&e),
        };
        let utf8 = self.utf8();
        let mut o = Vec::new();
        o.extend_from_slice(b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft");
        for k in &sel.keywords {
            o.push(b' ');
            o.extend_from_slice(k.as_bytes());
        }
        o.extend_from_slice(b")\r\n");
        o.extend_from_slice(format!("* {} EXISTS\r\n", sel.exists()).as_bytes());
        if !self.enabled.rev2 {
            // IMAP4rev1 (RFC 3501 §6.3.1) requires RECENT; \Recent is not kept (RFC 9051 drops it).
            o.extend_from_slice(b"* 0 RECENT\r\n");
            if let Some(msn) = sel.uids().iter().position(|u| {
                sel.known(*u)
                    .is_some_and(|k| !k.flags.contains(Flags::SEEN))
            }) {
                o.extend_from_slice(
                    format!("* OK [UNSEEN {}] First unseen\r\n", msn + 1).as_bytes(),
                );
            }
        } else {
            o.extend_from_slice(b"* LIST () \"/\" ");
            encode::string(&mut o, sel.mailbox.name.as_bytes(), utf8);
            o.extend_from_slice(b"\r\n");
        }
        o.extend_from_slice(
            format!(
                "* OK [UIDVALIDITY {}] UIDs valid\r\n* OK [UIDNEXT {}] Predicted next UID\r\n",
                sel.mailbox.uidvalidity, sel.mailbox.uidnext
            )
            .as_bytes(),
        );
        if read_only {
            o.extend_from_slice(b"* OK [PERMANENTFLAGS ()] Read-only mailbox\r\n");
        } else {
            o.extend_from_slice(
                b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted\r\n",
            );
        }
        o.extend_from_slice(
            format!("* OK [HIGHESTMODSEQ {}] Highest\r\n", sel.highest_modseq).as_bytes(),
        );
        // RFC 7162 §3.2.5.2: QRESYNC resynchronisation within SELECT.
        if let Some((validity, modseq, known)) = qresync
            && validity == sel.mailbox.uidvalidity
        {
            let in_known = |u: u32| {
                known.as_ref().is_none_or(|k| {
                    ranges(k, u32::MAX)
                        .iter()
                        .any(|(a, b)| (*a..=*b).contains(&u))
                })
            };
            match store.expunged_since(sel.id(), modseq).await {
                Ok(gone) => {
                    let gone: Vec<u32> = gone.into_iter().filter(|u| in_known(*u)).collect();
                    if !gone.is_empty() {
                        o.extend_from_slice(
                            format!("* VANISHED (EARLIER) {}\r\n", encode::sequence_set(&gone))
                                .as_bytes(),
                        );
                    }
                }
                Err(e) => return store_failure(&e),
            }
            match store.messages_changed_since(sel.id(), modseq).await {
                Ok(changed) => {
                    for m in changed {
                        let Some(msn) = sel.msn_of(m.uid) else {
                            continue;
                        };
                        o.extend_from_slice(
                            format!("* {msn} FETCH (UID {} FLAGS ", m.uid).as_bytes(),
                        );
                        encode::flag_list(&mut o, m.flags, &m.keywords);
                        o.extend_from_slice(format!(" MODSEQ ({}))\r\n", m.modseq).as_bytes());
                    }
                }
                Err(e) => return store_failure(&e),
            }
        }
        self.out.extend_from_slice(&o);
        self.selected = Some(sel);
        if read_only {
            ok_code("READ-ONLY", "EXAMINE completed")
        } else {
            ok_code("READ-WRITE", "SELECT completed")
        }
    }

    pub(crate) async fn close(&mut self, expunge: bool) -> Tagged {
        let Some(sel) = self.selected.take() else {
            return bad("No mailbox selected");
        };
        // RFC 9051 §6.4.1: CLOSE expunges silently (not in a read-only mailbox).
        if expunge
            && !sel.read_only
            && let Err(e) = self
                .backend
                .store()
                .expunge(sel.id(), ExpungeFilter::AllDeleted)
                .await
        {
            return store_failure(&e);
        }
        ok(if expunge {
            "CLOSE completed"
        } else {
            "UNSELECT completed"
        })
    }

    pub(crate) async fn create(&mut self, m: &Mailbox<'_>) -> Tagged {
        let Some(name) = mailbox_name(m) else {
            return no(Some("CANNOT"), "Invalid mailbox name");
        };
        if name == INBOX || name.contains(['*', '%']) {
            return no(Some("CANNOT"), "Invalid mailbox name");
        }
        match self
            .backend
            .store()
            .mailbox_create(self.account(), &name, None)
            .await
        {
            Ok(_) => ok("CREATE completed"),
            Err(e) => store_failure(&e),
        }
    }

    pub(crate) async fn delete(&mut self, m: &Mailbox<'_>) -> Tagged {
        let Some(name) = mailbox_name(m) else {
            return no(Some("NONEXISTENT"), "No such mailbox");
        };
        if name == INBOX {
            return no(Some("CANNOT"), "INBOX cannot be deleted");
        }
        match self
            .backend
            .store()
            .mailbox_delete(self.account(), &name)
            .await
        {
            Ok(()) => {
                if self
                    .selected
                    .as_ref()
                    .is_some_and(|s| s.mailbox.name == name)
                {
                    self.selected = None;
                }
                ok("DELETE completed")
            }
            Err(e) => store_failure(&e),
        }
    }

    pub(crate) async fn rename(&mut self, from: &Mailbox<'_>, to: &Mailbox<'_>) -> Tagged {
        let (Some(from), Some(to)) = (mailbox_name(from), mailbox_name(to)) else {
            return no(Some("CANNOT"), "Invalid mailbox name");
        };
        if to == INBOX || to.contains(['*', '%']) {
            return no(Some("CANNOT"), "Invalid target name");
        }
        match self
            .backend
            .store()
            .mailbox_rename(self.account(), &from, &to)
            .await
        {
            Ok(()) => ok("RENAME completed"),
            Err(e) => store_failure(&e),
        }
    }

    pub(crate) async fn subscribe(&mut self, m: &Mailbox<'_>, on: bool) -> Tagged {
        let Some(name) = mailbox_name(m) else {
            return no(Some("CANNOT"), "Invalid mailbox name");
        };
        let store = self.backend.store();
        let r = if on {
            store.subscribe(self.account(), &name).await
        } else {
            store.unsubscribe(self.account(), &name).await
        };
        match r {
            Ok(()) => ok(if on {
                "SUBSCRIBE completed"
            } else {
                "UNSUBSCRIBE completed"
            }),
            Err(e) => store_failure(&e),
        }
    }

    pub(crate) async fn list(
        &mut self,
        reference: &Mailbox<'_>,
        pattern: &ListMailbox<'_>,
        lsub: bool,
    ) -> Tagged {
        let verb = if lsub { "LSUB" } else { "LIST" };
        let pattern = match pattern {
            ListMailbox::Token(t) => String::from_utf8_lossy(t.as_ref()).into_owned(),
            ListMailbox::String(s) => String::from_utf8_lossy(s.as_ref()).into_owned(),
        };
        let reference = raw_name(reference);
        if pattern.is_empty() {
            // RFC 9051 §6.3.9: the hierarchy delimiter and root of the reference.
            self.out
                .extend_from_slice(format!("* {verb} (\\Noselect) \"/\" \"\"\r\n").as_bytes());
            return ok(format!("{verb} completed"));
        }
        let full = normalize_inbox(&format!("{reference}{pattern}"));
        let pat: Vec<char> = full.chars().collect();
        let store = self.backend.store().clone();
        let boxes = match store.mailbox_list(self.account()).await {
            Ok(b) => b,
            Err(e) => return store_failure(&e),
        };
        let names: BTreeSet<&str> = boxes.iter().map(|b| b.name.as_str()).collect();
        let has_children = |n: &str| {
            let prefix = format!("{n}{MAILBOX_DELIMITER}");
            names.iter().any(|o| o.starts_with(&prefix))
        };
        let utf8 = self.utf8();
        let mut lines: Vec<(String, String)> = Vec::new();
        if lsub {
            let subs = match store.subscriptions(self.account()).await {
                Ok(s) => s,
                Err(e) => return store_failure(&e),
            };
            for s in subs {
                let chars: Vec<char> = s.chars().collect();
                if wildcard_match(&pat, &chars) {
                    let attrs = if names.contains(s.as_str()) {
                        ""
                    } else {
                        "\\Noselect"
                    };
                    lines.push((s.clone(), attrs.to_string()));
                }
            }
        } else {
            for b in &boxes {
                let chars: Vec<char> = b.name.chars().collect();
                if !wildcard_match(&pat, &chars) {
                    continue;
                }
                let mut attrs = vec![if has_children(&b.name) {
                    "\\HasChildren"
                } else {
                    "\\HasNoChildren"
                }];
                if let Some(u) = b.special_use {
                    attrs.push(SpecialUse::as_str(u));
                }
                lines.push((b.name.clone(), attrs.join(" ")));
            }
            // Levels that exist only as parents of other names (RFC 9051 §6.3.9, `%`).
            let mut virtual_parents = BTreeSet::new();
            for n in &names {
                let mut idx = 0;
                while let Some(pos) = n[idx..].find(MAILBOX_DELIMITER) {
                    let parent = &n[..idx + pos];
                    idx += pos + 1;
                    if !names.contains(parent)
                        && wildcard_match(&pat, &parent.chars().collect::<Vec<_>>())
                    {
                        virtual_parents.insert(parent.to_string());
                    }
                }
            }
            for p in virtual_parents {
                lines.push((p, "\\Noselect \\HasChildren".into()));
            }
        }
        for (name, attrs) in lines {
            self.out
                .extend_from_slice(format!("* {verb} ({attrs}) \"/\" ").as_bytes());
            encode::string(&mut self.out, name.as_bytes(), utf8);
            self.out.extend_from_slice(b"\r\n");
        }
        ok(format!("{verb} completed"))
    }

    pub(crate) async fn status(&mut self, m: &Mailbox<'_>, items: &[StatusDataItemName]) -> Tagged {
        let mb = match self.find_mailbox(m).await {
            Ok(mb) => mb,
            Err(t) => return t,
        };
        let st = match self.backend.store().mailbox_status(mb.id).await {
            Ok(s) => s,
            Err(e) => return store_failure(&e),
        };
        let mut parts = Vec::new();
        for i in items {
            parts.push(match i {
                StatusDataItemName::Messages => format!("MESSAGES {}", st.messages),
                StatusDataItemName::Recent => "RECENT 0".to_string(),
                StatusDataItemName::UidNext => format!("UIDNEXT {}", st.uidnext),
                StatusDataItemName::UidValidity => format!("UIDVALIDITY {}", st.uidvalidity),
                StatusDataItemName::Unseen => format!("UNSEEN {}", st.unseen),
                StatusDataItemName::Deleted => format!("DELETED {}", st.deleted),
                StatusDataItemName::Size => format!("SIZE {}", st.size),
                StatusDataItemName::HighestModSeq => {
                    self.enabled.condstore = true;
                    format!("HIGHESTMODSEQ {}", st.highestmodseq)
                }
                StatusDataItemName::DeletedStorage => continue,
            });
        }
        let utf8 = self.utf8();
        self.out.extend_from_slice(b"* STATUS ");
        encode::string(&mut self.out, mb.name.as_bytes(), utf8);
        self.out
            .extend_from_slice(format!(" ({})\r\n", parts.join(" ")).as_bytes());
        ok("STATUS completed")
    }
}

#[cfg(test)]
mod tests {
    use super::wildcard_match;

    fn m(p: &str, n: &str) -> bool {
        wildcard_match(
            &p.chars().collect::<Vec<_>>(),
            &n.chars().collect::<Vec<_>>(),
        )
    }

    #[test]
    fn wildcards() {
        assert!(m("*", "a/b/c"));
        assert!(m("%", "INBOX"));
        assert!(!m("%", "a/b"));
        assert!(m("a/%", "a/b"));
        assert!(!m("a/%", "a/b/c"));
        assert!(m("a*c", "a/b/c"));
        assert!(m("INBOX", "INBOX"));
        assert!(!m("INBOX", "INBOX/x"));
        assert!(m("%/%", "a/b"));
    }
}
