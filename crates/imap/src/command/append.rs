//! APPEND (RFC 9051 §6.3.12) with UIDPLUS APPENDUID (RFC 4315) and APPENDLIMIT (RFC 7889). The
//! literal size was already checked against the limit before the continuation was sent.

use std::sync::Arc;

use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::flag::Flag;
use imap_codec::imap_types::mailbox::Mailbox;
use store::{AppendRequest, WriteBatch};

use super::update::split_flags;
use crate::backend::Backend;
use crate::session::{Session, Tagged, bad, no, ok_code, store_failure};

impl<B: Backend> Session<B> {
    pub(crate) async fn append(
        &mut self,
        m: &Mailbox<'_>,
        flags: &[Flag<'_>],
        date: Option<&DateTime>,
        message: LiteralOrLiteral8<'_>,
    ) -> Tagged {
        let data: Vec<u8> = match message {
            LiteralOrLiteral8::Literal(l) => l.data().to_vec(),
            LiteralOrLiteral8::Literal8(_) => return no(Some("CANNOT"), "BINARY is not supported"),
        };
        if data.len() as u64 > self.cfg.max_message_size {
            return no(Some("TOOBIG"), "Message too large");
        }
        if data.is_empty() {
            return no(Some("CANNOT"), "Empty message");
        }
        let (sys, kws) = match split_flags(flags) {
            Ok(v) => v,
            Err(why) => return bad(why),
        };
        let mb = match self.find_mailbox(m).await {
            Ok(mb) => mb,
            Err(_) => return no(Some("TRYCREATE"), "No such mailbox"),
        };
        let account = self.user.as_ref().map(|u| u.account_id).unwrap_or(0);
        if self.backend.over_quota(account, data.len() as u64).await {
            return no(Some("OVERQUOTA"), "Quota exceeded");
        }
        let internal_date = date
            .map(|d| d.as_ref().timestamp())
            .unwrap_or_else(store::now_unix);
        let batch = WriteBatch {
            appends: vec![AppendRequest {
                mailbox_id: mb.id,
                raw: Arc::from(data),
                flags: sys,
                keywords: kws,
                internal_date,
            }],
            enqueue: Vec::new(),
        };
        match self.backend.store().commit(batch).await {
            Ok(res) => match res.appended.first() {
                Some(a) => ok_code(
                    format!("APPENDUID {} {}", a.uidvalidity, a.uid),
                    "APPEND completed",
                ),
                None => no(Some("SERVERBUG"), "Nothing was appended"),
            },
            Err(e) => store_failure(&e),
        }
    }
}
