//! Mailbox commands (RFC 9051 §6.3): SELECT, EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE,
//! UNSUBSCRIBE, STATUS, and CLOSE / UNSELECT (§6.4.1, RFC 3691). LIST and LSUB are in `list`.

use imap_codec::imap_types::command::SelectParameter;
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::status::StatusDataItemName;
use store::{ExpungeFilter, Flags, INBOX, MAILBOX_DELIMITER, MailboxRecord, SpecialUse, Uid};

use super::{decode_name, mailbox_name};
use crate::backend::Backend;
use crate::encode;
use crate::selected::Selected;
use crate::session::{Event, Session, Tagged, bad, no, ok, ok_code, store_failure};

impl<B: Backend> Session<B> {
    pub(crate) fn account(&self) -> i64 {
        self.user.as_ref().map(|u| u.account_id).unwrap_or(0)
    }

    pub(crate) async fn find_mailbox(&self, m: &Mailbox<'_>) -> Result<MailboxRecord, Tagged> {
        let Some(name) = mailbox_name(m, self.utf8()) else {
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

    /// RFC 2180 §3.3, as Dovecot does: when another session deleted the selected mailbox, the
    /// session is told with an untagged BYE and closed, at its next command or at once during
    /// IDLE. RFC 9051 has no response that unselects a mailbox otherwise (`[CLOSED]` belongs to
    /// SELECT/EXAMINE), and commands on the vanished mailbox could only fail.
    pub(crate) async fn selected_deleted(&mut self) -> bool {
        self.drain_feed();
        let store = self.backend.store().clone();
        let Some(sel) = self.selected.as_mut() else {
            return false;
        };
        match sel.check_deleted(&store).await {
            Ok(true) => {}
            Ok(false) => return false,
            Err(e) => {
                tracing::warn!(error = %e, "imap: cannot check the selected mailbox");
                return false;
            }
        }
        self.selected = None;
        self.out
            .extend_from_slice(b"* BYE Selected mailbox was deleted, have to disconnect\r\n");
        self.event = Some(Event::Close);
        true
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
        let mut sel = match Selected::open(&store, mb, read_only).await {
            Ok(s) => s,
            Err(e) => return store_failure(&e),
        };
        if let Err(e) = sel.start_recent(&store, self.enabled.rev2).await {
            return store_failure(&e);
        }
        let mut o = Vec::new();
        o.extend_from_slice(b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft");
        for k in &sel.keywords {
            o.push(b' ');
            o.extend_from_slice(k.as_bytes());
        }
        o.extend_from_slice(b")\r\n");
        o.extend_from_slice(format!("* {} EXISTS\r\n", sel.exists()).as_bytes());
        if !self.enabled.rev2 {
            // RFC 3501 §6.3.1 and §7.3.2: the messages recent in this session (none taken by
            // EXAMINE, which reports those no session has claimed yet, §6.3.2).
            o.extend_from_slice(format!("* {} RECENT\r\n", sel.recent_count()).as_bytes());
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
            self.mailbox_string(&mut o, &sel.mailbox.name);
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
            // RFC 7162 §3.2.5.2: expunged UIDs among the known ones (all UIDs if none are
            // given), never above the UIDNEXT-1 just reported.
            let known = known.map(|k| sel.vanished_ranges(&k));
            let horizon = sel.uid_horizon();
            let in_known = |u: u32| {
                u <= horizon
                    && known
                        .as_ref()
                        .is_none_or(|k| k.iter().any(|(a, b)| (*a..=*b).contains(&u)))
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
                        encode::flag_list(&mut o, m.flags, &m.keywords, sel.is_recent(m.uid));
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
        self.create_with(m, None).await
    }

    /// CREATE name (USE (...)) (RFC 6154 §3). The store keeps one special use per mailbox.
    pub(crate) async fn create_special_use(&mut self, m: &Mailbox<'_>, uses: &[String]) -> Tagged {
        let mut special = None;
        for u in uses {
            let Some(su) = SpecialUse::parse(u) else {
                return no(Some("USEATTR"), "Unsupported special-use attribute");
            };
            if special.is_some_and(|s| s != su) {
                return no(
                    Some("USEATTR"),
                    "Only one special-use attribute per mailbox",
                );
            }
            special = Some(su);
        }
        self.create_with(m, special).await
    }

    async fn create_with(&mut self, m: &Mailbox<'_>, special: Option<SpecialUse>) -> Tagged {
        let Some(name) = mailbox_name(m, self.utf8()) else {
            return no(Some("CANNOT"), "Invalid mailbox name");
        };
        if name == INBOX || name.contains(['*', '%']) {
            return no(Some("CANNOT"), "Invalid mailbox name");
        }
        match self
            .backend
            .store()
            .mailbox_create(self.account(), &name, special)
            .await
        {
            Ok(_) => ok("CREATE completed"),
            Err(e) => store_failure(&e),
        }
    }

    pub(crate) async fn delete(&mut self, m: &Mailbox<'_>) -> Tagged {
        let Some(name) = mailbox_name(m, self.utf8()) else {
            return no(Some("NONEXISTENT"), "No such mailbox");
        };
        if name == INBOX {
            return no(Some("CANNOT"), "INBOX cannot be deleted");
        }
        // By id: the selected mailbox may have been renamed by another session since SELECT.
        let target = match self
            .backend
            .store()
            .mailbox_get(self.account(), &name)
            .await
        {
            Ok(mb) => mb.map(|m| m.id),
            Err(e) => return store_failure(&e),
        };
        match self
            .backend
            .store()
            .mailbox_delete(self.account(), &name)
            .await
        {
            Ok(()) => {
                if target.is_some() && self.selected.as_ref().map(|s| s.id()) == target {
                    self.selected = None;
                }
                ok("DELETE completed")
            }
            Err(e) => store_failure(&e),
        }
    }

    pub(crate) async fn rename(&mut self, from_arg: &Mailbox<'_>, to: &Mailbox<'_>) -> Tagged {
        let (Some(from), Some(to)) = (
            mailbox_name(from_arg, self.utf8()),
            mailbox_name(to, self.utf8()),
        ) else {
            return no(Some("CANNOT"), "Invalid mailbox name");
        };
        if to == INBOX || to.contains(['*', '%']) {
            return no(Some("CANNOT"), "Invalid target name");
        }
        if let Err(e) = self
            .backend
            .store()
            .mailbox_rename(self.account(), &from, &to)
            .await
        {
            return store_failure(&e);
        }
        if self.enabled.rev2 {
            // RFC 9051 §6.3.6 and §6.3.9.7: the new name with the OLDNAME extended data item,
            // the old name as the client supplied it. A SHOULD where the server normalised a name
            // (INBOX's case, a trailing delimiter); sent after every RENAME so that the client
            // always learns the name as stored, with its attributes.
            let supplied = match from_arg {
                Mailbox::Inbox => INBOX.to_string(),
                Mailbox::Other(o) => {
                    decode_name(o.as_ref(), self.utf8()).unwrap_or_else(|| from.clone())
                }
            };
            self.list_oldname(&to, &supplied).await;
        }
        ok("RENAME completed")
    }

    /// `* LIST (attributes) "/" name ("OLDNAME" (old))` for a renamed mailbox. The rename is
    /// done: if the store cannot be read now, the line is left out rather than the command failed.
    async fn list_oldname(&mut self, name: &str, old: &str) {
        let boxes = match self.backend.store().mailbox_list(self.account()).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "imap: cannot list the renamed mailbox");
                return;
            }
        };
        let Some(mb) = boxes.iter().find(|b| b.name == name) else {
            return;
        };
        let prefix = format!("{name}{MAILBOX_DELIMITER}");
        let mut attrs = vec![if boxes.iter().any(|b| b.name.starts_with(&prefix)) {
            "\\HasChildren"
        } else {
            "\\HasNoChildren"
        }];
        if let Some(u) = mb.special_use {
            attrs.push(SpecialUse::as_str(u));
        }
        let mut o = format!("* LIST ({}) \"/\" ", attrs.join(" ")).into_bytes();
        self.mailbox_string(&mut o, name);
        o.extend_from_slice(b" (\"OLDNAME\" (");
        self.mailbox_string(&mut o, old);
        o.extend_from_slice(b"))\r\n");
        self.out.extend_from_slice(&o);
    }

    pub(crate) async fn subscribe(&mut self, m: &Mailbox<'_>, on: bool) -> Tagged {
        let Some(name) = mailbox_name(m, self.utf8()) else {
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

    pub(crate) async fn status(&mut self, m: &Mailbox<'_>, items: &[StatusDataItemName]) -> Tagged {
        let mb = match self.find_mailbox(m).await {
            Ok(mb) => mb,
            Err(t) => return t,
        };
        match self.status_response(&mb, items).await {
            Ok(line) => {
                self.out.extend_from_slice(&line);
                ok("STATUS completed")
            }
            Err(t) => t,
        }
    }

    /// The untagged STATUS response of a mailbox (STATUS, and LIST-STATUS, RFC 5819).
    pub(crate) async fn status_response(
        &mut self,
        mb: &MailboxRecord,
        items: &[StatusDataItemName],
    ) -> Result<Vec<u8>, Tagged> {
        let st = match self.backend.store().mailbox_status(mb.id).await {
            Ok(s) => s,
            Err(e) => return Err(store_failure(&e)),
        };
        let mut parts = Vec::new();
        for i in items {
            parts.push(match i {
                StatusDataItemName::Messages => format!("MESSAGES {}", st.messages),
                // RFC 3501 §6.3.10: messages no session has claimed as \Recent yet.
                StatusDataItemName::Recent => format!("RECENT {}", st.recent),
                StatusDataItemName::UidNext => format!("UIDNEXT {}", st.uidnext),
                StatusDataItemName::UidValidity => format!("UIDVALIDITY {}", st.uidvalidity),
                StatusDataItemName::Unseen => format!("UNSEEN {}", st.unseen),
                StatusDataItemName::Deleted => format!("DELETED {}", st.deleted),
                StatusDataItemName::Size => format!("SIZE {}", st.size),
                StatusDataItemName::HighestModSeq => {
                    self.enable_condstore();
                    format!("HIGHESTMODSEQ {}", st.highestmodseq)
                }
                StatusDataItemName::DeletedStorage => {
                    format!(
                        "DELETED-STORAGE {}",
                        self.deleted_storage(mb, st.deleted).await?
                    )
                }
            });
        }
        let mut o = b"* STATUS ".to_vec();
        self.mailbox_string(&mut o, &mb.name);
        o.extend_from_slice(format!(" ({})\r\n", parts.join(" ")).as_bytes());
        Ok(o)
    }

    /// RFC 9208 §4.1.4 DELETED-STORAGE: the storage EXPUNGE would reclaim, in octets. The store
    /// frees a message's size from the account's usage in the expunge transaction itself
    /// (`release_messages`), so the exact figure is the sum of RFC822.SIZE of the \Deleted
    /// messages. Read only when the mailbox has some (`deleted`, from the status counters).
    async fn deleted_storage(&self, mb: &MailboxRecord, deleted: u32) -> Result<u64, Tagged> {
        if deleted == 0 {
            return Ok(0);
        }
        match self.backend.store().messages(mb.id, 1..=Uid::MAX).await {
            Ok(msgs) => Ok(msgs
                .iter()
                .filter(|m| m.flags.contains(Flags::DELETED))
                .map(|m| m.size)
                .sum()),
            Err(e) => Err(store_failure(&e)),
        }
    }
}
