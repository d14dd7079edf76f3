//! APPEND (RFC 9051 §6.3.12) with UIDPLUS APPENDUID (RFC 4315), APPENDLIMIT (RFC 7889), binary
//! messages sent as literal8 (RFC 3516 §4.1) and MULTIAPPEND (RFC 3502): several messages in one
//! command, stored in one store transaction (all or none) and acknowledged once that is durable.
//!
//! imap-codec parses an APPEND with one message. A command with several is cut into its messages
//! here; each message's options (flags, date) are checked by imap-codec on a rebuilt
//! one-message command, and its data is taken from the literal as sent.
//!
//! Before each continuation request, the message about to be sent is checked against the size
//! limits, the mailbox's existence and the quota ([`Session::append_precheck`]), so a batch that
//! will be refused is refused before its data is uploaded (RFC 3502 §6.3.11: the server MAY
//! reject before the last literal). The checks are repeated on the complete command.

use std::ops::Range;
use std::sync::Arc;

use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_codec::imap_types::IntoStatic;
use imap_codec::imap_types::command::CommandBody;
use imap_codec::imap_types::core::LiteralMode;
use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::flag::Flag;
use imap_codec::imap_types::mailbox::Mailbox;
use store::{AppendRequest, WriteBatch};

use super::update::split_flags;
use crate::backend::Backend;
use crate::encode;
use crate::session::{Session, Tagged, bad, no, ok_code, store_failure};

/// Most messages one MULTIAPPEND may carry (one store transaction holds them all).
pub const MAX_MULTIAPPEND_MESSAGES: usize = 1000;

/// One message of an APPEND.
pub(crate) struct NewMessage {
    pub flags: Vec<Flag<'static>>,
    pub date: Option<DateTime>,
    pub data: Vec<u8>,
}

/// An APPEND with several messages (RFC 3502), read by [`multiappend`].
pub(crate) enum Multi {
    Batch {
        tag: String,
        mailbox: Mailbox<'static>,
        messages: Vec<NewMessage>,
    },
    Bad {
        tag: String,
        why: &'static str,
    },
}

/// Where the pieces of an APPEND command are in its bytes.
struct Spans {
    tag: Range<usize>,
    mailbox: Range<usize>,
    messages: Vec<MessageSpans>,
    /// The bytes stop right after a literal's announcement, before its data.
    announced: Option<Announced>,
}

struct MessageSpans {
    /// Flag list and date-time as sent (possibly empty), without the surrounding spaces.
    opts: Range<usize>,
    /// Sent as literal8 (`~{n}`).
    binary: bool,
    data: Range<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Announced {
    /// The mailbox name is a literal.
    Mailbox,
    /// The data of the next message.
    Message,
}

/// A reader of the APPEND grammar (RFC 3502 §6.3.11, RFC 4466 §2.1):
/// `"APPEND" SP mailbox 1*(SP [flag-list SP] [date-time SP] (literal / literal8))`.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn at_end(&self) -> bool {
        self.i >= self.b.len()
    }

    fn eat(&mut self, s: &[u8]) -> bool {
        match self.b.get(self.i..self.i + s.len()) {
            Some(w) if w.eq_ignore_ascii_case(s) => {
                self.i += s.len();
                true
            }
            _ => false,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Up to the next byte that ends an atom.
    fn atom(&mut self) -> Option<Range<usize>> {
        let start = self.i;
        while let Some(c) = self.peek() {
            if matches!(c, b' ' | b'\r' | b'\n' | b'(' | b')' | b'{' | b'"') {
                break;
            }
            self.i += 1;
        }
        (self.i > start).then_some(start..self.i)
    }

    /// A quoted string, quotes included.
    fn quoted(&mut self) -> Option<Range<usize>> {
        let start = self.i;
        if !self.eat(b"\"") {
            return None;
        }
        loop {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return Some(start..self.i);
                }
                b'\\' => self.i += 2,
                b'\r' | b'\n' => return None,
                _ => self.i += 1,
            }
        }
    }

    /// A parenthesised list without nesting (a flag list), parentheses included.
    fn group(&mut self) -> Option<Range<usize>> {
        let start = self.i;
        if !self.eat(b"(") {
            return None;
        }
        loop {
            match self.peek()? {
                b')' => {
                    self.i += 1;
                    return Some(start..self.i);
                }
                b'\r' | b'\n' | b'(' | b'{' | b'"' => return None,
                _ => self.i += 1,
            }
        }
    }

    /// `["~"] "{" number ["+"] "}" CRLF`: whether it is a literal8, and its length.
    fn literal_header(&mut self) -> Option<(bool, usize)> {
        let binary = self.eat(b"~");
        if !self.eat(b"{") {
            return None;
        }
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        let len: usize = std::str::from_utf8(&self.b[start..self.i])
            .ok()?
            .parse()
            .ok()?;
        self.eat(b"+");
        self.eat(b"}\r\n").then_some((binary, len))
    }

    /// The data of a literal of `len` bytes, if all of it is there.
    fn take(&mut self, len: usize) -> Option<Range<usize>> {
        let end = self.i.checked_add(len)?;
        (end <= self.b.len()).then(|| {
            let r = self.i..end;
            self.i = end;
            r
        })
    }
}

/// Reads an APPEND command, complete or cut right after a literal's announcement. `None` when the
/// bytes are not an APPEND in this grammar (imap-codec then has the last word).
fn scan(b: &[u8]) -> Option<Spans> {
    let mut c = Cursor { b, i: 0 };
    let tag = c.atom()?;
    if !c.eat(b" APPEND ") {
        return None;
    }
    let mut spans = Spans {
        tag,
        mailbox: 0..0,
        messages: Vec::new(),
        announced: None,
    };
    let start = c.i;
    spans.mailbox = match c.peek()? {
        b'"' => c.quoted()?,
        b'{' => {
            let (binary, len) = c.literal_header()?;
            if binary {
                return None;
            }
            if c.at_end() {
                spans.announced = Some(Announced::Mailbox);
                return Some(spans);
            }
            c.take(len)?;
            start..c.i
        }
        _ => c.atom()?,
    };
    loop {
        if c.eat(b"\r\n") {
            return (c.at_end() && !spans.messages.is_empty()).then_some(spans);
        }
        if !c.eat(b" ") {
            return None;
        }
        let opts_start = c.i;
        let mut opts_end = c.i;
        if c.peek() == Some(b'(') {
            opts_end = c.group()?.end;
            if !c.eat(b" ") {
                return None;
            }
        }
        if c.peek() == Some(b'"') {
            opts_end = c.quoted()?.end;
            if !c.eat(b" ") {
                return None;
            }
        }
        let (binary, len) = c.literal_header()?;
        if c.at_end() {
            spans.announced = Some(Announced::Message);
            return Some(spans);
        }
        let data = c.take(len)?;
        spans.messages.push(MessageSpans {
            opts: opts_start..opts_end,
            binary,
            data,
        });
    }
}

/// The mailbox, flags and date of a one-message APPEND rebuilt from `tag`, `mailbox` and `opts`
/// with an empty literal, as imap-codec reads them.
fn decode_options(
    b: &[u8],
    tag: &Range<usize>,
    mailbox: &Range<usize>,
    opts: &Range<usize>,
) -> Option<(Mailbox<'static>, Vec<Flag<'static>>, Option<DateTime>)> {
    let mut cmd = b[tag.clone()].to_vec();
    cmd.extend_from_slice(b" APPEND ");
    cmd.extend_from_slice(&b[mailbox.clone()]);
    if !opts.is_empty() {
        cmd.push(b' ');
        cmd.extend_from_slice(&b[opts.clone()]);
    }
    cmd.extend_from_slice(b" {0}\r\n\r\n");
    match CommandCodec::default().decode(&cmd) {
        Ok((b"", c)) => match c.body {
            CommandBody::Append {
                mailbox,
                flags,
                date,
                ..
            } => Some((
                mailbox.into_static(),
                flags.into_iter().map(|f| f.into_static()).collect(),
                date,
            )),
            _ => None,
        },
        _ => None,
    }
}

/// An APPEND with more than one message (RFC 3502), which imap-codec does not read; `None` for
/// anything else, including an APPEND with one message.
pub(crate) fn multiappend(b: &[u8]) -> Option<Multi> {
    let spans = scan(b)?;
    if spans.announced.is_some() || spans.messages.len() < 2 {
        return None;
    }
    let tag = String::from_utf8_lossy(&b[spans.tag.clone()]).into_owned();
    let bad = |why| {
        Some(Multi::Bad {
            tag: tag.clone(),
            why,
        })
    };
    if spans.messages.len() > MAX_MULTIAPPEND_MESSAGES {
        return bad("Too many messages in one APPEND");
    }
    let mut mailbox = None;
    let mut messages = Vec::with_capacity(spans.messages.len());
    for m in &spans.messages {
        let Some((mb, flags, date)) = decode_options(b, &spans.tag, &spans.mailbox, &m.opts) else {
            return bad("Syntax error in APPEND");
        };
        let data = &b[m.data.clone()];
        // RFC 9051 §4.3: a literal cannot hold NUL; literal8 (BINARY) can.
        if !m.binary && data.contains(&0) {
            return bad("NUL in a literal: send the message as literal8");
        }
        mailbox.get_or_insert(mb);
        messages.push(NewMessage {
            flags,
            date,
            data: data.to_vec(),
        });
    }
    let mailbox = mailbox?;
    Some(Multi::Batch {
        tag,
        mailbox,
        messages,
    })
}

impl<B: Backend> Session<B> {
    /// APPEND with one message, as imap-codec decoded it.
    pub(crate) async fn append(
        &mut self,
        m: &Mailbox<'_>,
        flags: &[Flag<'_>],
        date: Option<&DateTime>,
        message: LiteralOrLiteral8<'_>,
    ) -> Tagged {
        // RFC 3516 §4.1: literal8 carries binary content, stored as sent.
        let data: Vec<u8> = match message {
            LiteralOrLiteral8::Literal(l) => l.data().to_vec(),
            LiteralOrLiteral8::Literal8(l) => l.data.into_owned(),
        };
        let msg = NewMessage {
            flags: flags.iter().map(|f| f.clone().into_static()).collect(),
            date: date.cloned(),
            data,
        };
        self.append_messages(m, vec![msg]).await
    }

    /// A complete MULTIAPPEND command (from the state machine, which imap-codec could not serve).
    pub(crate) async fn multiappend(&mut self, multi: Multi) {
        let (tag, t) = match multi {
            Multi::Bad { tag, why } => (tag, bad(why)),
            Multi::Batch { tag, .. } if self.user.is_none() => (tag, bad("Log in first")),
            Multi::Batch {
                tag,
                mailbox,
                messages,
            } => {
                let t = self.append_messages(&mailbox, messages).await;
                (tag, t)
            }
        };
        let upd = self.announce(true).await;
        self.out.extend_from_slice(&upd);
        self.respond(&tag, t);
    }

    /// Stores `messages` in one transaction: all of them or none (RFC 3502 §6.3.11). The tagged OK
    /// carries one APPENDUID with every new UID (RFC 4315 §3).
    async fn append_messages(&mut self, m: &Mailbox<'_>, messages: Vec<NewMessage>) -> Tagged {
        let mut total: u64 = 0;
        let mut parsed = Vec::with_capacity(messages.len());
        for msg in &messages {
            if msg.data.len() as u64 > self.cfg.max_message_size {
                return no(Some("TOOBIG"), "Message too large");
            }
            if msg.data.is_empty() {
                return no(Some("CANNOT"), "Empty message");
            }
            match split_flags(&msg.flags) {
                Ok(v) => parsed.push(v),
                Err(why) => return bad(why),
            }
            total += msg.data.len() as u64;
        }
        let mb = match self.find_mailbox(m).await {
            Ok(mb) => mb,
            Err(t) => return trycreate(t),
        };
        let account = self.user.as_ref().map(|u| u.account_id).unwrap_or(0);
        if self
            .backend
            .over_quota(account, total, messages.len() as u64)
            .await
        {
            return no(Some("OVERQUOTA"), "Quota exceeded");
        }
        let appends = messages
            .into_iter()
            .zip(parsed)
            .map(|(msg, (flags, keywords))| AppendRequest {
                mailbox_id: mb.id,
                raw: Arc::<[u8]>::from(msg.data).into(),
                flags,
                keywords,
                internal_date: msg
                    .date
                    .map(|d| d.as_ref().timestamp())
                    .unwrap_or_else(store::now_unix),
            })
            .collect::<Vec<_>>();
        let n = appends.len();
        let batch = WriteBatch {
            appends,
            ..WriteBatch::default()
        };
        // `commit` returns once the transaction is on stable storage.
        match self.backend.store().commit(batch).await {
            Ok(res) if res.appended.len() == n => {
                let uids: Vec<u32> = res.appended.iter().map(|a| a.uid).collect();
                let uidvalidity = res.appended.first().map_or(0, |a| a.uidvalidity);
                ok_code(
                    format!("APPENDUID {uidvalidity} {}", encode::sequence_set(&uids)),
                    "APPEND completed",
                )
            }
            Ok(_) => no(Some("SERVERBUG"), "Not every message was appended"),
            Err(e) => store_failure(&e),
        }
    }

    /// Called when a literal of `length` bytes is announced, before the continuation request
    /// (`mode` Sync) or while a non-synchronizing literal arrives. For the data of an APPEND's
    /// message: `Some(refusal)` if the command cannot succeed. A non-synchronizing literal is only
    /// checked against the size of the whole command (its data is on its way regardless).
    pub(crate) async fn append_precheck(
        &mut self,
        mode: LiteralMode,
        length: u32,
    ) -> Option<Tagged> {
        self.user.as_ref()?;
        let sync = mode == LiteralMode::Sync;
        let (count, before, so_far, mailbox) = {
            let b = self.frag.message_bytes();
            let spans = scan(b)?;
            if spans.announced != Some(Announced::Message) {
                return None;
            }
            let before: u64 = spans.messages.iter().map(|m| m.data.len() as u64).sum();
            let mailbox = if sync && spans.messages.is_empty() {
                decode_options(b, &spans.tag, &spans.mailbox, &(0..0)).map(|(mb, _, _)| mb)
            } else {
                None
            };
            (
                spans.messages.len() as u64 + 1,
                before,
                b.len() as u64,
                mailbox,
            )
        };
        if count > MAX_MULTIAPPEND_MESSAGES as u64 {
            return Some(no(Some("LIMIT"), "Too many messages in one APPEND"));
        }
        // The whole command is held in memory, bounded like one message plus its command lines
        // (and room for the last line).
        let limit = self
            .cfg
            .max_command_size()
            .saturating_sub(self.cfg.line_length as u64);
        if so_far + u64::from(length) > limit {
            return Some(no(
                Some("LIMIT"),
                "The messages of one APPEND exceed the size limit: send fewer at a time",
            ));
        }
        if !sync {
            return None;
        }
        if let Some(mb) = mailbox
            && let Err(t) = self.find_mailbox(&mb).await
        {
            return Some(trycreate(t));
        }
        let account = self.user.as_ref().map(|u| u.account_id).unwrap_or(0);
        if self
            .backend
            .over_quota(account, before + u64::from(length), count)
            .await
        {
            return Some(no(Some("OVERQUOTA"), "Quota exceeded"));
        }
        None
    }
}

/// RFC 9051 §6.3.12: APPEND to a mailbox that does not exist answers TRYCREATE.
fn trycreate(t: Tagged) -> Tagged {
    if t.code.as_deref() == Some("NONEXISTENT") {
        no(Some("TRYCREATE"), "No such mailbox")
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(b: &[u8]) -> Vec<(String, bool, Vec<u8>)> {
        let s = scan(b).expect("scans");
        s.messages
            .iter()
            .map(|m| {
                (
                    String::from_utf8_lossy(&b[m.opts.clone()]).into_owned(),
                    m.binary,
                    b[m.data.clone()].to_vec(),
                )
            })
            .collect()
    }

    #[test]
    fn cuts_messages_with_and_without_options() {
        let b = b"a1 APPEND \"Sent Items\" (\\Seen) \"05-Jan-2024 10:00:00 +0000\" {3}\r\nabc (\\Draft) {2+}\r\nde \"05-Jan-2024 10:00:00 +0000\" ~{3}\r\nf\0g {1}\r\nh\r\n";
        let s = scan(b).expect("scans");
        assert_eq!(&b[s.mailbox.clone()], b"\"Sent Items\"");
        assert_eq!(
            messages(b),
            vec![
                (
                    "(\\Seen) \"05-Jan-2024 10:00:00 +0000\"".into(),
                    false,
                    b"abc".to_vec()
                ),
                ("(\\Draft)".into(), false, b"de".to_vec()),
                (
                    "\"05-Jan-2024 10:00:00 +0000\"".into(),
                    true,
                    b"f\0g".to_vec()
                ),
                (String::new(), false, b"h".to_vec()),
            ]
        );
        let Some(Multi::Batch { messages, .. }) = multiappend(b) else {
            panic!("not a batch");
        };
        assert_eq!(messages.len(), 4);
        assert_eq!(messages[0].flags, vec![Flag::Seen]);
        assert!(messages[0].date.is_some() && messages[1].date.is_none());
    }

    #[test]
    fn literal_mailbox_and_announcements() {
        assert_eq!(
            scan(b"t APPEND {5}\r\n").and_then(|s| s.announced),
            Some(Announced::Mailbox)
        );
        let b = b"t APPEND {5}\r\nINBOX {3}\r\nabc {2}\r\n";
        let s = scan(b).expect("scans");
        assert_eq!(s.announced, Some(Announced::Message));
        assert_eq!(s.messages.len(), 1);
        assert_eq!(&b[s.mailbox.clone()], b"{5}\r\nINBOX");
        let b = b"t APPEND {5}\r\nINBOX {3}\r\nabc {2}\r\nde\r\n";
        assert!(matches!(multiappend(b), Some(Multi::Batch { .. })));
    }

    #[test]
    fn one_message_and_other_commands_are_left_to_imap_codec() {
        assert!(multiappend(b"a APPEND INBOX {3}\r\nabc\r\n").is_none());
        assert!(multiappend(b"a NOOP\r\n").is_none());
        assert!(multiappend(b"a UID FETCH 1 BODY[]\r\n").is_none());
        // Garbage after a message: not this grammar.
        assert!(multiappend(b"a APPEND INBOX {1}\r\nx junk\r\n").is_none());
    }

    #[test]
    fn bad_options_or_nul_in_a_literal() {
        let b = b"a APPEND INBOX (\\Seen %x) {1}\r\nx {1}\r\ny\r\n";
        assert!(matches!(multiappend(b), Some(Multi::Bad { .. })));
        let b = b"a APPEND INBOX \"not a date\" {1}\r\nx {1}\r\ny\r\n";
        assert!(matches!(multiappend(b), Some(Multi::Bad { .. })));
        let b = b"a APPEND INBOX {1}\r\nx {1}\r\n\0\r\n";
        assert!(matches!(multiappend(b), Some(Multi::Bad { .. })));
    }
}
