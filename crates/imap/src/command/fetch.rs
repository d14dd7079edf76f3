//! FETCH and UID FETCH (RFC 9051 §6.4.5, §7.5.2; CONDSTORE CHANGEDSINCE, RFC 7162 §3.1.4; QRESYNC
//! VANISHED, RFC 7162 §3.2.6).
//! Structure comes from the analysis cached at append; body sections are cut from the blob with
//! the part byte ranges recorded there. BINARY, BINARY.PEEK and BINARY.SIZE (RFC 3516) decode the
//! section with `command::binary`.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use imap_codec::imap_types::IntoStatic;
use imap_codec::imap_types::command::FetchModifier;
use imap_codec::imap_types::fetch::{
    MacroOrMessageDataItemNames, MessageDataItemName, Part, Section,
};
use imap_codec::imap_types::sequence::SequenceSet;
use message::{Analysis, BodyPart};
use store::{FlagOp, Flags, MessageRecord, Uid};

use super::binary;
use crate::backend::Backend;
use crate::encode;
use crate::selected::{Resolved, ranges};
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

/// The bytes of a section; empty when the section does not exist (RFC 9051 §6.4.5).
pub fn section_bytes(raw: &[u8], a: &Analysis, s: &Option<Section<'_>>) -> Vec<u8> {
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
    match s {
        None => raw.to_vec(),
        Some(Section::Part(p)) => find_part(&a.body, p.0.as_ref())
            .map(|part| slice(raw, part.body_range).to_vec())
            .unwrap_or_default(),
        Some(Section::Mime(p)) => find_part(&a.body, p.0.as_ref())
            .map(|part| slice(raw, part.header_range).to_vec())
            .unwrap_or_default(),
        Some(Section::Header(p)) => inner(p)
            .map(|m| slice(raw, m.header_range).to_vec())
            .unwrap_or_default(),
        Some(Section::Text(p)) => inner(p)
            .map(|m| slice(raw, m.body_range).to_vec())
            .unwrap_or_default(),
        Some(Section::HeaderFields(p, list)) => inner(p)
            .map(|m| header_fields(slice(raw, m.header_range), &strings(list.as_ref()), false))
            .unwrap_or_default(),
        Some(Section::HeaderFieldsNot(p, list)) => inner(p)
            .map(|m| header_fields(slice(raw, m.header_range), &strings(list.as_ref()), true))
            .unwrap_or_default(),
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
            self.enabled.condstore = true;
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
            // `*` stands for any UID here: the client asks about UIDs it knew, which may all be
            // above the mailbox's last one now. UIDs still in this session's view are left to
            // the VANISHED announcement that follows the command (RFC 7162 §3.2.10).
            let asked = ranges(set, Uid::MAX);
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
        let mut by_uid: BTreeMap<Uid, MessageRecord> =
            records.into_iter().map(|r| (r.uid, r)).collect();

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
        let needs_analysis = needs_raw
            || items.iter().any(|i| {
                matches!(
                    i,
                    MessageDataItemName::Envelope
                        | MessageDataItemName::Body
                        | MessageDataItemName::BodyStructure
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
            for (_, u) in &targets {
                let Some(rec) = by_uid.get(u) else { continue };
                let a = match store.analysis(rec.blob).await {
                    Ok(a) => a,
                    Err(e) => return store_failure(&e),
                };
                if binary_paths.iter().any(|p| binary::check(&a, p).is_err()) {
                    return no(
                        Some("UNKNOWN-CTE"),
                        format!("Cannot decode the content transfer encoding of message UID {u}"),
                    );
                }
            }
        }

        // RFC 9051 §6.4.5: BODY[...] without PEEK sets \Seen; the new flags are returned too.
        let mut seen_now = Vec::new();
        if sets_seen && !read_only {
            let unseen: Vec<Uid> = targets
                .iter()
                .filter(|(_, u)| {
                    by_uid
                        .get(u)
                        .is_some_and(|r| !r.flags.contains(Flags::SEEN))
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
                            by_uid.insert(r.uid, r);
                        }
                    }
                    Err(e) => return store_failure(&e),
                }
            }
        }

        let utf8 = self.utf8();
        for (msn, u) in targets {
            let Some(rec) = by_uid.get(&u) else { continue };
            if changed_since.is_some_and(|c| rec.modseq <= c) {
                continue;
            }
            // The client now knows these flags: the change need not be announced again.
            if wants_flags && let Some(sel) = self.selected.as_mut() {
                sel.set_known(rec);
            }
            let analysis: Option<Arc<Analysis>> = if needs_analysis {
                match store.analysis(rec.blob).await {
                    Ok(a) => Some(a),
                    Err(e) => return store_failure(&e),
                }
            } else {
                None
            };
            let raw = if needs_raw {
                match store.blob_read(rec.blob, None).await {
                    Ok(r) => Some(r),
                    Err(e) => return store_failure(&e),
                }
            } else {
                None
            };
            let mut o = format!("* {msn} FETCH (").into_bytes();
            let mut first = true;
            let mut sep = |o: &mut Vec<u8>| {
                if !first {
                    o.push(b' ');
                }
                first = false;
            };
            for item in &items {
                sep(&mut o);
                match item {
                    MessageDataItemName::Uid => o.extend_from_slice(format!("UID {u}").as_bytes()),
                    MessageDataItemName::Flags => {
                        o.extend_from_slice(b"FLAGS ");
                        encode::flag_list(&mut o, rec.flags, &rec.keywords);
                    }
                    MessageDataItemName::InternalDate => {
                        o.extend_from_slice(b"INTERNALDATE ");
                        o.extend_from_slice(encode::internal_date(rec.internal_date).as_bytes());
                    }
                    MessageDataItemName::Rfc822Size => {
                        o.extend_from_slice(format!("RFC822.SIZE {}", rec.size).as_bytes())
                    }
                    MessageDataItemName::ModSeq => {
                        o.extend_from_slice(format!("MODSEQ ({})", rec.modseq).as_bytes())
                    }
                    MessageDataItemName::Envelope => {
                        o.extend_from_slice(b"ENVELOPE ");
                        if let Some(a) = &analysis {
                            encode::envelope(&mut o, &a.envelope, utf8);
                        }
                    }
                    MessageDataItemName::Body => {
                        o.extend_from_slice(b"BODY ");
                        if let Some(a) = &analysis {
                            encode::body_structure(&mut o, &a.body, false, utf8);
                        }
                    }
                    MessageDataItemName::BodyStructure => {
                        o.extend_from_slice(b"BODYSTRUCTURE ");
                        if let Some(a) = &analysis {
                            encode::body_structure(&mut o, &a.body, true, utf8);
                        }
                    }
                    MessageDataItemName::BodyExt {
                        section,
                        partial: part,
                        ..
                    } => {
                        let (Some(raw), Some(a)) = (&raw, &analysis) else {
                            continue;
                        };
                        let data = section_bytes(raw, a, section);
                        o.extend_from_slice(b"BODY[");
                        o.extend(section_spec(section, utf8));
                        o.push(b']');
                        if let Some((origin, _)) = part {
                            o.extend_from_slice(format!("<{origin}>").as_bytes());
                        }
                        o.push(b' ');
                        encode::literal(&mut o, partial(&data, *part));
                    }
                    MessageDataItemName::Rfc822 => {
                        o.extend_from_slice(b"RFC822 ");
                        encode::literal(&mut o, raw.as_deref().unwrap_or_default());
                    }
                    MessageDataItemName::Rfc822Header => {
                        o.extend_from_slice(b"RFC822.HEADER ");
                        let data = match (&raw, &analysis) {
                            (Some(r), Some(a)) => slice(r, a.body.header_range),
                            _ => &[],
                        };
                        encode::literal(&mut o, data);
                    }
                    MessageDataItemName::Rfc822Text => {
                        o.extend_from_slice(b"RFC822.TEXT ");
                        let data = match (&raw, &analysis) {
                            (Some(r), Some(a)) => slice(r, a.body.body_range),
                            _ => &[],
                        };
                        encode::literal(&mut o, data);
                    }
                    MessageDataItemName::Binary {
                        section,
                        partial: part,
                        ..
                    } => {
                        let (Some(raw), Some(a)) = (&raw, &analysis) else {
                            continue;
                        };
                        let Ok(data) = binary::content(raw, a, section) else {
                            return no(Some("UNKNOWN-CTE"), "Cannot decode the section");
                        };
                        // RFC 9051 §9 (msg-att-static): the response names the section without
                        // the partial origin; the client knows which range it asked for.
                        o.extend_from_slice(
                            format!("BINARY[{}] ", binary::section_spec(section)).as_bytes(),
                        );
                        binary::literal(&mut o, partial(&data, *part));
                    }
                    MessageDataItemName::BinarySize { section } => {
                        let (Some(raw), Some(a)) = (&raw, &analysis) else {
                            continue;
                        };
                        let Ok(size) = binary::size(raw, a, section) else {
                            return no(Some("UNKNOWN-CTE"), "Cannot decode the section");
                        };
                        o.extend_from_slice(
                            format!("BINARY.SIZE[{}] {size}", binary::section_spec(section))
                                .as_bytes(),
                        );
                    }
                }
            }
            if seen_now.contains(&u) && !wants_flags {
                o.extend_from_slice(b" FLAGS ");
                encode::flag_list(&mut o, rec.flags, &rec.keywords);
            }
            o.extend_from_slice(b")\r\n");
            self.out.extend_from_slice(&o);
        }
        ok(if uid {
            "UID FETCH completed"
        } else {
            "FETCH completed"
        })
    }
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
