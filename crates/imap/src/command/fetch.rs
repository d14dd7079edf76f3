//! FETCH and UID FETCH (RFC 9051 §6.4.5, §7.5.2; CONDSTORE CHANGEDSINCE, RFC 7162 §3.1.4; QRESYNC
//! VANISHED, RFC 7162 §3.2.6).
//! Structure comes from the analysis cached at append; body sections are cut from the blob with
//! the part byte ranges recorded there. BINARY, BINARY.PEEK and BINARY.SIZE (RFC 3516) decode the
//! section with `command::binary`.

use std::borrow::Cow;
use std::io::Write;
use std::num::NonZeroU32;

use imap_codec::imap_types::IntoStatic;
use imap_codec::imap_types::command::FetchModifier;
use imap_codec::imap_types::fetch::{
    MacroOrMessageDataItemNames, MessageDataItemName, Part, Section,
};
use imap_codec::imap_types::sequence::SequenceSet;
use message::{Analysis, BodyPart};
use store::{BlobId, FlagOp, Flags, MessageRecord, Uid};

use super::binary;
use crate::backend::Backend;
use crate::encode;
use crate::selected::Resolved;
use crate::session::{Session, Tagged, bad, no, ok, store_failure};

/// The part a section path names (RFC 9051 §6.4.5: part 1 of a non-multipart message is its body;
/// numbers after a message/rfc822 part index into the encapsulated message).
pub fn find_part<'a>(root: &'a BodyPart, path: &[NonZeroU32]) -> Option<&'a BodyPart> {
    let mut cur = root;
    for (i, n) in path.iter().enumerate() {
        let n = n.get() as usize;
        let ctx = if i == 0 {
            root
        } else if let Some(m) = &cur.message {
            &m.1
        } else if !cur.children.is_empty() {
            cur
        } else {
            return None;
        };
        cur = if !ctx.children.is_empty() {
            ctx.children.get(n - 1)?
        } else if n == 1 {
            ctx
        } else {
            return None;
        };
    }
    Some(cur)
}

fn slice(raw: &[u8], (a, b): (u64, u64)) -> &[u8] {
    let a = (a as usize).min(raw.len());
    let b = (b as usize).min(raw.len()).max(a);
    &raw[a..b]
}

/// Header fields of a header block whose name is (or, with `not`, is not) in `names`, followed by
/// the blank line (RFC 9051 §6.4.5 HEADER.FIELDS).
pub fn header_fields(block: &[u8], names: &[String], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut fields: Vec<&[u8]> = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < block.len() {
        let end = block[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(block.len(), |p| i + p + 1);
        let line = &block[i..end];
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        let continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if !continuation && i > start {
            fields.push(&block[start..i]);
            start = i;
        }
        i = end;
    }
    if i > start {
        fields.push(&block[start..i]);
    }
    for f in fields {
        let name = f.split(|&b| b == b':').next().unwrap_or_default();
        let name = String::from_utf8_lossy(name);
        let name = name.trim();
        let listed = names.iter().any(|n| n.eq_ignore_ascii_case(name));
        if listed != not {
            out.extend_from_slice(f);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn part_spec(p: &Part) -> String {
    p.0.as_ref()
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(".")
}

fn section_spec(s: &Option<Section<'_>>, utf8: bool) -> Vec<u8> {
    let prefix = |p: &Option<Part>| {
        p.as_ref()
            .map(|p| format!("{}.", part_spec(p)))
            .unwrap_or_default()
    };
    let names = |list: &[imap_codec::imap_types::core::AString<'_>]| {
        let mut o = Vec::new();
        for (i, n) in list.iter().enumerate() {
            if i > 0 {
                o.push(b' ');
            }
            encode::string(&mut o, n.as_ref(), utf8);
        }
        o
    };
    match s {
        None => Vec::new(),
        Some(Section::Part(p)) => part_spec(p).into_bytes(),
        Some(Section::Header(p)) => format!("{}HEADER", prefix(p)).into_bytes(),
        Some(Section::Text(p)) => format!("{}TEXT", prefix(p)).into_bytes(),
        Some(Section::Mime(p)) => format!("{}.MIME", part_spec(p)).into_bytes(),
        Some(Section::HeaderFields(p, list)) => {
            let mut o = format!("{}HEADER.FIELDS (", prefix(p)).into_bytes();
            o.extend(names(list.as_ref()));
            o.push(b')');
            o
        }
        Some(Section::HeaderFieldsNot(p, list)) => {
            let mut o = format!("{}HEADER.FIELDS.NOT (", prefix(p)).into_bytes();
            o.extend(names(list.as_ref()));
            o.push(b')');
            o
        }
    }
}

/// The bytes of a section; empty when the section does not exist (RFC 9051 §6.4.5). Borrowed
/// from `raw` where the section is one range of it.
pub fn section_bytes<'r>(raw: &'r [u8], a: &Analysis, s: &Option<Section<'_>>) -> Cow<'r, [u8]> {
    // The message whose header/text a HEADER/TEXT section names: the root, or an encapsulated one.
    let inner = |p: &Option<Part>| -> Option<&BodyPart> {
        match p {
            None => Some(&a.body),
            Some(p) => find_part(&a.body, p.0.as_ref())
                .and_then(|part| part.message.as_ref())
                .map(|m| &m.1),
        }
    };
    let strings = |list: &[imap_codec::imap_types::core::AString<'_>]| -> Vec<String> {
        list.iter()
            .map(|n| String::from_utf8_lossy(n.as_ref()).into_owned())
            .collect()
    };
    let range = |r: Option<(u64, u64)>| Cow::Borrowed(r.map_or(&[][..], |r| slice(raw, r)));
    match s {
        None => Cow::Borrowed(raw),
        Some(Section::Part(p)) => {
            range(find_part(&a.body, p.0.as_ref()).map(|part| part.body_range))
        }
        Some(Section::Mime(p)) => {
            range(find_part(&a.body, p.0.as_ref()).map(|part| part.header_range))
        }
        Some(Section::Header(p)) => range(inner(p).map(|m| m.header_range)),
        Some(Section::Text(p)) => range(inner(p).map(|m| m.body_range)),
        Some(Section::HeaderFields(p, list)) => Cow::Owned(
            inner(p)
                .map(|m| header_fields(slice(raw, m.header_range), &strings(list.as_ref()), false))
                .unwrap_or_default(),
        ),
        Some(Section::HeaderFieldsNot(p, list)) => Cow::Owned(
            inner(p)
                .map(|m| header_fields(slice(raw, m.header_range), &strings(list.as_ref()), true))
                .unwrap_or_default(),
        ),
    }
}

fn partial(data: &[u8], p: Option<(u32, NonZeroU32)>) -> &[u8] {
    match p {
        None => data,
        Some((o, n)) => {
            let a = (o as usize).min(data.len());
            let b = a.saturating_add(n.get() as usize).min(data.len());
            &data[a..b]
        }
    }
}

impl<B: Backend> Session<B> {
    pub(crate) async fn fetch(
        &mut self,
        set: &SequenceSet,
        items: MacroOrMessageDataItemNames<'static>,
        uid: bool,
        modifiers: &[FetchModifier],
    ) -> Tagged {
        let mut items = match items {
            MacroOrMessageDataItemNames::Macro(m) => {
                m.expand().into_iter().map(|i| i.into_static()).collect()
            }
            MacroOrMessageDataItemNames::MessageDataItemNames(v) => v,
        };
        let mut changed_since = None;
        let mut vanished = false;
        for m in modifiers {
            match m {
                FetchModifier::ChangedSince(n) => changed_since = Some(n.get()),
                FetchModifier::Vanished => vanished = true,
            }
        }
        // RFC 7162 §3.2.6: VANISHED only in UID FETCH, with CHANGEDSINCE, after ENABLE QRESYNC.
        if vanished && !(uid && changed_since.is_some() && self.enabled.qresync) {
            return bad("VANISHED needs UID FETCH, CHANGEDSINCE and ENABLE QRESYNC");
        }
        if changed_since.is_some() || items.contains(&MessageDataItemName::ModSeq) {
            self.enable_condstore();
        }
        if changed_since.is_some() && !items.contains(&MessageDataItemName::ModSeq) {
            items.push(MessageDataItemName::ModSeq);
        }
        if uid && !items.contains(&MessageDataItemName::Uid) {
            items.insert(0, MessageDataItemName::Uid);
        }
        let Some(sel) = self.selected.as_ref() else {
            return bad("No mailbox selected");
        };
        let targets = match sel.resolve(set, uid) {
            Resolved::Messages(t) => t,
            Resolved::OutOfRange => return bad("Message sequence number out of range"),
        };
        if let (true, Some(since)) = (vanished, changed_since) {
            let store = self.backend.store().clone();
            let gone = match store.expunged_since(sel.id(), since).await {
                Ok(g) => g,
                Err(e) => return store_failure(&e),
            };
            // UIDs still in this session's view are left to the VANISHED announcement that
            // follows the command (RFC 7162 §3.2.10).
            let asked = sel.vanished_ranges(set);
            let gone: Vec<Uid> = gone
                .into_iter()
                .filter(|u| asked.iter().any(|(a, b)| (*a..=*b).contains(u)))
                .filter(|u| sel.msn_of(*u).is_none())
                .collect();
            if !gone.is_empty() {
                self.out.extend_from_slice(
                    format!("* VANISHED (EARLIER) {}\r\n", encode::sequence_set(&gone)).as_bytes(),
                );
            }
        }
        let targets: Vec<(u32, Uid)> = targets
            .into_iter()
            .filter(|(_, u)| !sel.is_expunged(*u))
            .collect();
        let (Some(lo), Some(hi)) = (targets.first(), targets.last()) else {
            return ok("FETCH completed");
        };
        let read_only = sel.read_only;
        let mailbox = sel.id();
        let store = self.backend.store().clone();
        let records = match store.messages(mailbox, lo.1..=hi.1).await {
            Ok(r) => r,
            Err(e) => return store_failure(&e),
        };
        // In UID order, as the targets are.
        let mut records = records;
        let find =
            |records: &[MessageRecord], u: Uid| records.binary_search_by_key(&u, |r| r.uid).ok();

        let sets_seen = items.iter().any(|i| {
            matches!(
                i,
                MessageDataItemName::BodyExt { peek: false, .. }
                    | MessageDataItemName::Binary { peek: false, .. }
                    | MessageDataItemName::Rfc822
                    | MessageDataItemName::Rfc822Text
            )
        });
        let needs_raw = items.iter().any(|i| {
            matches!(
                i,
                MessageDataItemName::BodyExt { .. }
                    | MessageDataItemName::Binary { .. }
                    | MessageDataItemName::BinarySize { .. }
                    | MessageDataItemName::Rfc822
                    | MessageDataItemName::Rfc822Text
                    | MessageDataItemName::Rfc822Header
            )
        });
        // The whole message (BODY[], RFC822) is the raw blob: no structure needed to cut it.
        let needs_analysis = items.iter().any(|i| {
            matches!(
                i,
                MessageDataItemName::Envelope
                    | MessageDataItemName::Body
                    | MessageDataItemName::BodyStructure
                    | MessageDataItemName::BodyExt {
                        section: Some(_),
                        ..
                    }
                    | MessageDataItemName::Binary { .. }
                    | MessageDataItemName::BinarySize { .. }
                    | MessageDataItemName::Rfc822Text
                    | MessageDataItemName::Rfc822Header
            )
        });
        let wants_flags = items.contains(&MessageDataItemName::Flags);

        // RFC 3516 §4.3: a section whose encoding we cannot remove fails the command with
        // UNKNOWN-CTE. Checked on the cached structure first, so such a FETCH sends nothing and
        // sets no \Seen.
        let binary_paths: Vec<&[NonZeroU32]> = items
            .iter()
            .filter_map(|i| match i {
                MessageDataItemName::Binary { section, .. }
                | MessageDataItemName::BinarySize { section } => Some(section.as_slice()),
                _ => None,
            })
            .collect();
        if !binary_paths.is_empty() {
            let found: Vec<(Uid, BlobId)> = targets
                .iter()
                .filter_map(|(_, u)| find(&records, *u).map(|i| (*u, records[i].blob)))
                .collect();
            for chunk in found.chunks(FETCH_BATCH) {
                let blobs: Vec<BlobId> = chunk.iter().map(|(_, b)| *b).collect();
                let analyses = match store.analyses(&blobs).await {
                    Ok(a) => a,
                    Err(e) => return store_failure(&e),
                };
                for ((u, _), a) in chunk.iter().zip(&analyses) {
                    if binary_paths.iter().any(|p| binary::check(a, p).is_err()) {
                        return no(
                            Some("UNKNOWN-CTE"),
                            format!(
                                "Cannot decode the content transfer encoding of message UID {u}"
                            ),
                        );
                    }
                }
            }
        }

        // RFC 9051 §6.4.5: BODY[...] without PEEK sets \Seen; the new flags are returned too.
        // In UID order (the store answers so), for binary search.
        let mut seen_now: Vec<Uid> = Vec::new();
        if sets_seen && !read_only {
            let unseen: Vec<Uid> = targets
                .iter()
                .filter(|(_, u)| {
                    find(&records, *u).is_some_and(|i| !records[i].flags.contains(Flags::SEEN))
                })
                .map(|(_, u)| *u)
                .collect();
            if !unseen.is_empty() {
                match store
                    .store_flags(mailbox, &unseen, FlagOp::Add, Flags::SEEN, &[], None)
                    .await
                {
                    Ok(upd) => {
                        for r in upd.updated {
                            if let Some(sel) = self.selected.as_mut() {
                                sel.set_known(&r);
                            }
                            seen_now.push(r.uid);
                            if let Some(i) = find(&records, r.uid) {
                                records[i] = r;
                            }
                        }
                        seen_now.sort_unstable();
                    }
                    Err(e) => return store_failure(&e),
                }
            }
        }

        // (MSN, index in `records`) of each message answered.
        let answered: Vec<(u32, usize)> = targets
            .iter()
            .filter_map(|(msn, u)| find(&records, *u).map(|i| (*msn, i)))
            .filter(|(_, i)| changed_since.is_none_or(|c| records[*i].modseq > c))
            .collect();
        let utf8 = self.utf8();
        let mut next = 0;
        while next < answered.len() {
            // A batch of messages read from the store in one go, bounded in count and, when the
            // raw messages are read, in bytes (one large message still makes a batch).
            let mut end = next;
            let mut bytes = 0u64;
            while end < answered.len()
                && end - next < FETCH_BATCH
                && (end == next || !needs_raw || bytes < FETCH_BATCH_BYTES)
            {
                bytes += records[answered[end].1].size;
                end += 1;
            }
            let batch = &answered[next..end];
            next = end;
            let blobs: Vec<BlobId> = batch.iter().map(|(_, i)| records[*i].blob).collect();
            let analyses = if needs_analysis {
                match store.analyses(&blobs).await {
                    Ok(a) => a,
                    Err(e) => return store_failure(&e),
                }
            } else {
                Vec::new()
            };
            let raws = if needs_raw {
                match store.blobs_read(&blobs).await {
                    Ok(r) => r,
                    Err(e) => return store_failure(&e),
                }
            } else {
                Vec::new()
            };
            for (k, (msn, i)) in batch.iter().enumerate() {
                let rec = &records[*i];
                // The client now knows these flags: the change need not be announced again.
                if wants_flags && let Some(sel) = self.selected.as_mut() {
                    sel.set_known(rec);
                }
                let msg = Msg {
                    msn: *msn,
                    rec,
                    analysis: analyses.get(k).map(|a| &**a),
                    raw: raws.get(k).map(|r| &r[..]),
                    seen_now: seen_now.binary_search(&rec.uid).is_ok(),
                    recent: self
                        .selected
                        .as_ref()
                        .is_some_and(|sel| sel.is_recent(rec.uid)),
                };
                if let Err(t) = write_message(&mut self.out, &msg, &items, wants_flags, utf8) {
                    return t;
                }
                // Long answers go out while the rest is read and encoded.
                self.flush_partial().await;
            }
        }
        ok(if uid {
            "UID FETCH completed"
        } else {
            "FETCH completed"
        })
    }
}

/// Messages read from the store in one go by FETCH (`MailStore::blobs_read`, `analyses`).
const FETCH_BATCH: usize = 256;
/// Raw bytes read in one go by FETCH; a larger message is read alone.
const FETCH_BATCH_BYTES: u64 = 4 * 1024 * 1024;

/// One message of a FETCH answer, with what the store gave for it.
struct Msg<'a> {
    msn: u32,
    rec: &'a MessageRecord,
    analysis: Option<&'a Analysis>,
    raw: Option<&'a [u8]>,
    /// This FETCH set \Seen on it: FLAGS go with the answer (RFC 9051 §6.4.5).
    seen_now: bool,
    /// `\Recent` in this session (RFC 3501 §2.3.2).
    recent: bool,
}

/// Appends one `* n FETCH (...)` response to `out`; on an error nothing of it stays in `out`.
fn write_message(
    out: &mut Vec<u8>,
    m: &Msg<'_>,
    items: &[MessageDataItemName<'_>],
    wants_flags: bool,
    utf8: bool,
) -> Result<(), Tagged> {
    let start = out.len();
    let r = write_items(out, m, items, wants_flags, utf8);
    if r.is_err() {
        out.truncate(start);
    }
    r
}

fn write_items(
    o: &mut Vec<u8>,
    m: &Msg<'_>,
    items: &[MessageDataItemName<'_>],
    wants_flags: bool,
    utf8: bool,
) -> Result<(), Tagged> {
    let rec = m.rec;
    let (raw, analysis) = (m.raw, m.analysis);
    // Writing into a Vec cannot fail.
    let _ = write!(o, "* {} FETCH (", m.msn);
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            o.push(b' ');
        }
        match item {
            MessageDataItemName::Uid => {
                let _ = write!(o, "UID {}", rec.uid);
            }
            MessageDataItemName::Flags => {
                o.extend_from_slice(b"FLAGS ");
                encode::flag_list(o, rec.flags, &rec.keywords, m.recent);
            }
            MessageDataItemName::InternalDate => {
                o.extend_from_slice(b"INTERNALDATE ");
                o.extend_from_slice(encode::internal_date(rec.internal_date).as_bytes());
            }
            MessageDataItemName::Rfc822Size => {
                let _ = write!(o, "RFC822.SIZE {}", rec.size);
            }
            MessageDataItemName::ModSeq => {
                let _ = write!(o, "MODSEQ ({})", rec.modseq);
            }
            MessageDataItemName::Envelope => {
                o.extend_from_slice(b"ENVELOPE ");
                if let Some(a) = analysis {
                    encode::envelope(o, &a.envelope, utf8);
                }
            }
            MessageDataItemName::Body => {
                o.extend_from_slice(b"BODY ");
                if let Some(a) = analysis {
                    encode::body_structure(o, &a.body, false, utf8);
                }
            }
            MessageDataItemName::BodyStructure => {
                o.extend_from_slice(b"BODYSTRUCTURE ");
                if let Some(a) = analysis {
                    encode::body_structure(o, &a.body, true, utf8);
                }
            }
            MessageDataItemName::BodyExt {
                section,
                partial: part,
                ..
            } => {
                let Some(raw) = raw else { continue };
                let data: Cow<'_, [u8]> = match (section, analysis) {
                    (None, _) => Cow::Borrowed(raw),
                    (Some(_), Some(a)) => section_bytes(raw, a, section),
                    (Some(_), None) => Cow::Borrowed(&[][..]),
                };
                o.extend_from_slice(b"BODY[");
                o.extend(section_spec(section, utf8));
                o.push(b']');
                if let Some((origin, _)) = part {
                    let _ = write!(o, "<{origin}>");
                }
                o.push(b' ');
                encode::literal(o, partial(&data, *part));
            }
            MessageDataItemName::Rfc822 => {
                o.extend_from_slice(b"RFC822 ");
                encode::literal(o, raw.unwrap_or_default());
            }
            MessageDataItemName::Rfc822Header => {
                o.extend_from_slice(b"RFC822.HEADER ");
                let data = match (raw, analysis) {
                    (Some(r), Some(a)) => slice(r, a.body.header_range),
                    _ => &[],
                };
                encode::literal(o, data);
            }
            MessageDataItemName::Rfc822Text => {
                o.extend_from_slice(b"RFC822.TEXT ");
                let data = match (raw, analysis) {
                    (Some(r), Some(a)) => slice(r, a.body.body_range),
                    _ => &[],
                };
                encode::literal(o, data);
            }
            MessageDataItemName::Binary {
                section,
                partial: part,
                ..
            } => {
                let (Some(raw), Some(a)) = (raw, analysis) else {
                    continue;
                };
                let Ok(data) = binary::content(raw, a, section) else {
                    return Err(no(Some("UNKNOWN-CTE"), "Cannot decode the section"));
                };
                // RFC 3516 §4.2 and RFC 9051 §7.5.2: a partial answer names its origin, as
                // BODY[]<origin> does (the ABNF of RFC 9051 §9 leaves it out, its prose and
                // Dovecot and the clients put it in).
                let _ = write!(o, "BINARY[{}]", binary::section_spec(section));
                if let Some((origin, _)) = part {
                    let _ = write!(o, "<{origin}>");
                }
                o.push(b' ');
                binary::literal(o, partial(&data, *part));
            }
            MessageDataItemName::BinarySize { section } => {
                let (Some(raw), Some(a)) = (raw, analysis) else {
                    continue;
                };
                let Ok(size) = binary::size(raw, a, section) else {
                    return Err(no(Some("UNKNOWN-CTE"), "Cannot decode the section"));
                };
                let _ = write!(o, "BINARY.SIZE[{}] {size}", binary::section_spec(section));
            }
        }
    }
    if m.seen_now && !wants_flags {
        o.extend_from_slice(b" FLAGS ");
        encode::flag_list(o, rec.flags, &rec.keywords, m.recent);
    }
    o.extend_from_slice(b")\r\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nz(v: &[u32]) -> Vec<NonZeroU32> {
        v.iter().map(|&n| NonZeroU32::new(n).unwrap()).collect()
    }

    const MULTI: &[u8] = b"From: a@x.org\r\nSubject: m\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\npre\r\n--b\r\nContent-Type: text/plain\r\n\r\none\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n--b--\r\n";

    #[test]
    fn parts_and_sections() {
        let a = message::analyze(MULTI, &message::Limits::default());
        let p1 = find_part(&a.body, &nz(&[1])).unwrap();
        assert_eq!(slice(MULTI, p1.body_range), b"one");
        let p2 = find_part(&a.body, &nz(&[2])).unwrap();
        let inner = &p2.message.as_ref().unwrap().1;
        assert_eq!(slice(MULTI, inner.header_range), b"Subject: inner\r\n\r\n");
        let p21 = find_part(&a.body, &nz(&[2, 1])).unwrap();
        assert_eq!(slice(MULTI, p21.body_range), b"inner body");
        assert!(find_part(&a.body, &nz(&[3])).is_none());
        assert!(find_part(&a.body, &nz(&[1, 1])).is_none());
        let single = b"Subject: s\r\n\r\nbody\r\n";
        let s = message::analyze(single, &message::Limits::default());
        assert_eq!(
            slice(single, find_part(&s.body, &nz(&[1])).unwrap().body_range),
            b"body\r\n"
        );
    }

    /// A FETCH answer longer than the session's high-water mark goes to the driver in pieces, in
    /// order, ahead of the rest and the tagged OK; the bytes are those of a session without a
    /// sink, which returns the whole answer at once.
    #[tokio::test]
    async fn long_answers_stream_in_order() {
        use crate::session::OUTPUT_HIGH_WATER;
        use crate::tests::{fixture, run};
        let f = fixture().await;
        let mut s = f.logged_in().await;
        let mut expected = Vec::new();
        let mut i = 0;
        while expected.len() < 3 * OUTPUT_HIGH_WATER {
            i += 1;
            let m = format!("Subject: m{i}\r\n\r\n{}\r\n", "body line ".repeat(350));
            let r = run(
                &mut s,
                &format!("ap APPEND INBOX {{{}+}}\r\n{m}\r\n", m.len()),
            )
            .await;
            assert!(r.contains("ap OK"), "{r}");
            expected.extend_from_slice(
                format!("* {i} FETCH (UID {i} BODY[] {{{}}}\r\n{m})\r\n", m.len()).as_bytes(),
            );
        }
        expected.extend_from_slice(b"f OK FETCH completed\r\n");
        let fetch = b"f FETCH 1:* (UID BODY.PEEK[])\r\n";

        let mut whole = f.logged_in().await;
        assert!(run(&mut whole, "s SELECT INBOX\r\n").await.contains("s OK"));
        assert_eq!(whole.feed(fetch).await.bytes, expected);

        assert!(run(&mut s, "s SELECT INBOX\r\n").await.contains("s OK"));
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        s.stream_to(tx);
        let rest = s.feed(fetch).await.bytes;
        let mut got = Vec::new();
        let mut pieces = 0;
        while let Ok(p) = rx.try_recv() {
            assert!(p.len() >= OUTPUT_HIGH_WATER);
            pieces += 1;
            got.extend(p);
        }
        assert!(pieces >= 2, "{pieces} pieces");
        assert!(rest.len() < 2 * OUTPUT_HIGH_WATER);
        got.extend(rest);
        assert!(got == expected, "streamed answer differs");
    }

    #[test]
    fn header_field_filter() {
        let block = b"From: a\r\nSubject: long\r\n folded\r\nTo: b\r\n\r\n";
        assert_eq!(
            header_fields(block, &["subject".into()], false),
            b"Subject: long\r\n folded\r\n\r\n"
        );
        assert_eq!(
            header_fields(block, &["subject".into()], true),
            b"From: a\r\nTo: b\r\n\r\n"
        );
    }
}
