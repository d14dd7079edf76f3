//! SEARCH and UID SEARCH (RFC 9051 §6.4.4): flags, sizes, dates and sets from message metadata;
//! header keys from the analysis cached at append; BODY and TEXT from the store's full-text index,
//! with a scan of the cached search text when the index cannot answer (e.g. needles under three
//! characters). With IMAP4rev2 enabled the answer is an ESEARCH response (RFC 9051 §7.3.4).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use imap_codec::imap_types::core::{AString, Charset};
use imap_codec::imap_types::search::SearchKey;
use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};
use message::Analysis;
use store::{Flags, MessageRecord, TextField, Uid};

use super::ext::{SAVED_RESULT, SearchReturn};
use crate::backend::Backend;
use crate::config::MAX_SEARCH_DEPTH;
use crate::encode;
use crate::selected::ranges;
use crate::session::{Session, Tagged, bad, no, ok, store_failure};

const EPOCH_DAYS_FROM_CE: i64 = 719_163;

fn text(a: &AString<'_>) -> String {
    String::from_utf8_lossy(a.as_ref()).to_lowercase()
}

fn day_of(unix: i64) -> i64 {
    unix.div_euclid(86_400)
}

fn days(d: &imap_codec::imap_types::datetime::NaiveDate) -> i64 {
    use chrono::Datelike;
    i64::from(d.as_ref().num_days_from_ce()) - EPOCH_DAYS_FROM_CE
}

fn depth(k: &SearchKey<'_>) -> usize {
    match k {
        SearchKey::And(v) => 1 + v.as_ref().iter().map(depth).max().unwrap_or(0),
        SearchKey::Not(k) => 1 + depth(k),
        SearchKey::Or(a, b) => 1 + depth(a).max(depth(b)),
        _ => 1,
    }
}

/// Number of keys in `k`: every criterion, OR and NOT counts one; the parentheses of a
/// list do not.
fn count(k: &SearchKey<'_>) -> usize {
    match k {
        SearchKey::And(v) => v.as_ref().iter().map(count).sum(),
        SearchKey::Not(k) => 1 + count(k),
        SearchKey::Or(a, b) => 1 + count(a) + count(b),
        _ => 1,
    }
}

/// Messages whose metadata, analyses and header blocks are read from the store at once.
const SEARCH_BATCH: usize = 512;
/// Most bytes of message data (header blocks, or whole messages for a scan) read at once.
const SEARCH_BATCH_BYTES: u64 = 16 * 1024 * 1024;

/// Splits `0..sizes.len()` into consecutive runs of at most [`SEARCH_BATCH_BYTES`] in all (a
/// larger item alone), so reading a batch never holds many large messages in memory at once.
fn by_bytes(sizes: &[u64]) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let (mut start, mut total) = (0, 0u64);
    for (i, s) in sizes.iter().enumerate() {
        if i > start && total.saturating_add(*s) > SEARCH_BATCH_BYTES {
            runs.push(start..i);
            (start, total) = (i, 0);
        }
        total = total.saturating_add(*s);
    }
    if start < sizes.len() {
        runs.push(start..sizes.len());
    }
    runs
}

/// [`MailStore::blob_ranges_read`](store::MailStore::blob_ranges_read) of `reads` in runs of at
/// most [`SEARCH_BATCH_BYTES`], results in the same order.
async fn ranges_in_runs(
    store: &store::DynStore,
    reads: &[(store::BlobId, std::ops::Range<u64>)],
) -> Result<Vec<Vec<u8>>, Tagged> {
    let sizes: Vec<u64> = reads
        .iter()
        .map(|(_, r)| r.end.saturating_sub(r.start))
        .collect();
    let mut out = Vec::with_capacity(reads.len());
    for run in by_bytes(&sizes) {
        match store.blob_ranges_read(&reads[run]).await {
            Ok(got) => out.extend(got),
            Err(e) => return Err(store_failure(&e)),
        }
    }
    Ok(out)
}

/// Whether a key compares the sent date (Date:, from the cached analysis).
fn needs_date(k: &SearchKey<'_>) -> bool {
    match k {
        SearchKey::And(v) => v.as_ref().iter().any(needs_date),
        SearchKey::Not(k) => needs_date(k),
        SearchKey::Or(a, b) => needs_date(a) || needs_date(b),
        SearchKey::SentBefore(_) | SearchKey::SentOn(_) | SearchKey::SentSince(_) => true,
        _ => false,
    }
}

/// Bytes read from the start of each message for header keys: most header blocks end within it.
const HEADER_PREFIX: u64 = 16 * 1024;

/// The length of the header block at the start of `prefix` (a message's first
/// [`HEADER_PREFIX`] bytes, or all of a shorter one) when header keys can be matched on its raw
/// text alone: it ends within the prefix and needs no decoding to compare as the decoded forms
/// would (ASCII, no RFC 2047 encoded words, no quoted pairs, no folds with a tab). Otherwise the
/// message's cached analysis is read as well.
fn plain_header_len(prefix: &[u8]) -> Option<usize> {
    let end = header_block_len(prefix)?;
    let block = &prefix[..end];
    let plain = block.is_ascii()
        && !block.contains(&b'\\')
        && !block.windows(2).any(|w| w == b"=?" || w == b"\n\t");
    plain.then_some(end)
}

/// Where the first empty line of `prefix` starts (the header block's length, its last line
/// break included); all of it when it has none and is shorter than [`HEADER_PREFIX`] (a message
/// without a body); `None` when the block may go on past the prefix.
fn header_block_len(prefix: &[u8]) -> Option<usize> {
    let mut pos = 0;
    while pos < prefix.len() {
        let rest = &prefix[pos..];
        if rest.starts_with(b"\r\n") || rest.starts_with(b"\n") {
            return Some(pos);
        }
        match rest.iter().position(|&b| b == b'\n') {
            Some(nl) => pos += nl + 1,
            None => break,
        }
    }
    ((prefix.len() as u64) < HEADER_PREFIX).then_some(prefix.len())
}

fn text_keys<'k>(k: &'k SearchKey<'k>, out: &mut Vec<(TextField, String)>) {
    match k {
        SearchKey::And(v) => v.as_ref().iter().for_each(|k| text_keys(k, out)),
        SearchKey::Not(k) => text_keys(k, out),
        SearchKey::Or(a, b) => {
            text_keys(a, out);
            text_keys(b, out);
        }
        SearchKey::Body(s) => out.push((TextField::Body, text(s))),
        SearchKey::Text(s) => out.push((TextField::Text, text(s))),
        _ => {}
    }
}

/// Unfolded values of the header fields named `name` in a raw header block.
fn raw_header_values(block: &[u8], name: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(block);
    let mut fields: Vec<String> = Vec::new();
    for line in text.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.push_str(line);
            }
        } else {
            fields.push(line.to_string());
        }
    }
    fields
        .into_iter()
        .filter_map(|f| {
            let (n, v) = f.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_lowercase())
        })
        .collect()
}

/// Whether the key needs the raw header block (header keys).
fn needs_header(k: &SearchKey<'_>) -> bool {
    match k {
        SearchKey::And(v) => v.as_ref().iter().any(needs_header),
        SearchKey::Not(k) => needs_header(k),
        SearchKey::Or(a, b) => needs_header(a) || needs_header(b),
        SearchKey::Bcc(_)
        | SearchKey::Cc(_)
        | SearchKey::From(_)
        | SearchKey::To(_)
        | SearchKey::Subject(_)
        | SearchKey::Header(..) => true,
        _ => false,
    }
}

struct Ctx<'a> {
    msn: u32,
    rec: &'a MessageRecord,
    analysis: Option<&'a Analysis>,
    /// Raw header block, for header keys.
    header: Option<&'a [u8]>,
    /// Text computed from the blob when the index could not answer.
    scanned: Option<&'a message::SearchText>,
    /// Results of BODY/TEXT from the index; `None` entries are scanned.
    text_hits: &'a HashMap<(u8, String), Option<HashSet<Uid>>>,
    exists: u32,
    last_uid: Uid,
    now: i64,
    /// The saved result when the command wrote `$` (RFC 5182).
    saved: Option<&'a BTreeSet<Uid>>,
    /// `\Recent` in this session (RFC 3501 §2.3.2; never for IMAP4rev2).
    recent: bool,
}

/// Whether a sequence set of a key is `$`, as `command::ext` rewrote it.
fn saved_marker(set: &SequenceSet) -> bool {
    matches!(
        set.0.as_ref(),
        [Sequence::Single(SeqOrUid::Value(v))] if v.get() == SAVED_RESULT
    )
}

fn field_code(f: TextField) -> u8 {
    match f {
        TextField::Body => 0,
        TextField::Text => 1,
        TextField::Headers => 2,
    }
}

fn matches(k: &SearchKey<'_>, c: &Ctx<'_>) -> bool {
    let flags = c.rec.flags;
    // Raw (unfolded) values, plus the decoded forms the analysis cached (RFC 2047 subjects,
    // display names), so both "=?utf-8?...?=" and "café" find a message.
    let header_has = |name: &str, needle: &str| {
        let raw = c.header.is_some_and(|h| {
            raw_header_values(h, name)
                .iter()
                .any(|v| v.contains(needle))
        });
        let decoded = c.analysis.is_some_and(|a| {
            let h = &a.headers;
            match name {
                "subject" => h
                    .subject
                    .as_ref()
                    .is_some_and(|s| s.to_lowercase().contains(needle)),
                "from" => {
                    h.from.iter().any(|x| x.contains(needle))
                        || h.from_display
                            .as_ref()
                            .is_some_and(|d| d.to_lowercase().contains(needle))
                }
                "to" => h.to.iter().any(|x| x.contains(needle)),
                "cc" => h.cc.iter().any(|x| x.contains(needle)),
                _ => false,
            }
        });
        raw || decoded
    };
    let text_has = |field: TextField, needle: &String| match c
        .text_hits
        .get(&(field_code(field), needle.clone()))
    {
        Some(Some(hits)) => hits.contains(&c.rec.uid),
        _ => c.scanned.is_some_and(|t| {
            let body = t.body.to_lowercase().contains(needle.as_str());
            match field {
                TextField::Body => body,
                _ => body || t.headers.to_lowercase().contains(needle.as_str()),
            }
        }),
    };
    let sent_day = || c.analysis.and_then(|a| a.headers.date).map(day_of);
    match k {
        SearchKey::And(v) => v.as_ref().iter().all(|k| matches(k, c)),
        SearchKey::Not(k) => !matches(k, c),
        SearchKey::Or(a, b) => matches(a, c) || matches(b, c),
        SearchKey::All => true,
        // RFC 3501 §6.4.4: NEW is RECENT UNSEEN, OLD is NOT RECENT.
        SearchKey::Recent => c.recent,
        SearchKey::New => c.recent && !c.rec.flags.contains(Flags::SEEN),
        SearchKey::Old => !c.recent,
        SearchKey::SequenceSet(set) | SearchKey::Uid(set)
            if c.saved.is_some() && saved_marker(set) =>
        {
            c.saved.is_some_and(|s| s.contains(&c.rec.uid))
        }
        SearchKey::SequenceSet(set) => ranges(set, c.exists)
            .iter()
            .any(|(a, b)| (*a..=*b).contains(&c.msn)),
        SearchKey::Uid(set) => ranges(set, c.last_uid)
            .iter()
            .any(|(a, b)| (*a..=*b).contains(&c.rec.uid)),
        SearchKey::Answered => flags.contains(Flags::ANSWERED),
        SearchKey::Unanswered => !flags.contains(Flags::ANSWERED),
        SearchKey::Deleted => flags.contains(Flags::DELETED),
        SearchKey::Undeleted => !flags.contains(Flags::DELETED),
        SearchKey::Draft => flags.contains(Flags::DRAFT),
        SearchKey::Undraft => !flags.contains(Flags::DRAFT),
        SearchKey::Flagged => flags.contains(Flags::FLAGGED),
        SearchKey::Unflagged => !flags.contains(Flags::FLAGGED),
        SearchKey::Seen => flags.contains(Flags::SEEN),
        SearchKey::Unseen => !flags.contains(Flags::SEEN),
        SearchKey::Keyword(kw) => c
            .rec
            .keywords
            .iter()
            .any(|k| k.eq_ignore_ascii_case(kw.inner())),
        SearchKey::Unkeyword(kw) => !c
            .rec
            .keywords
            .iter()
            .any(|k| k.eq_ignore_ascii_case(kw.inner())),
        SearchKey::Larger(n) => c.rec.size > u64::from(*n),
        SearchKey::Smaller(n) => c.rec.size < u64::from(*n),
        // RFC 9051 §6.4.4: dates compare days, disregarding time (internal dates are in UTC).
        SearchKey::Before(d) => day_of(c.rec.internal_date) < days(d),
        SearchKey::On(d) => day_of(c.rec.internal_date) == days(d),
        SearchKey::Since(d) => day_of(c.rec.internal_date) >= days(d),
        SearchKey::SentBefore(d) => sent_day().is_some_and(|s| s < days(d)),
        SearchKey::SentOn(d) => sent_day().is_some_and(|s| s == days(d)),
        SearchKey::SentSince(d) => sent_day().is_some_and(|s| s >= days(d)),
        SearchKey::Older(n) => c.now - c.rec.internal_date >= i64::from(n.get()),
        SearchKey::Younger(n) => c.now - c.rec.internal_date <= i64::from(n.get()),
        SearchKey::From(s) => header_has("from", &text(s)),
        SearchKey::To(s) => header_has("to", &text(s)),
        SearchKey::Cc(s) => header_has("cc", &text(s)),
        SearchKey::Bcc(s) => header_has("bcc", &text(s)),
        SearchKey::Subject(s) => header_has("subject", &text(s)),
        SearchKey::Header(name, value) => {
            header_has(&String::from_utf8_lossy(name.as_ref()), &text(value))
        }
        SearchKey::Body(s) => text_has(TextField::Body, &text(s)),
        SearchKey::Text(s) => text_has(TextField::Text, &text(s)),
        SearchKey::ModSequence { modseq, .. } => c.rec.modseq >= *modseq,
    }
}

fn uses_modseq(k: &SearchKey<'_>) -> bool {
    match k {
        SearchKey::And(v) => v.as_ref().iter().any(uses_modseq),
        SearchKey::Not(k) => uses_modseq(k),
        SearchKey::Or(a, b) => uses_modseq(a) || uses_modseq(b),
        SearchKey::ModSequence { .. } => true,
        _ => false,
    }
}

/// A message a search matched.
pub(crate) struct Matched {
    pub msn: u32,
    pub rec: MessageRecord,
    /// Its cached analysis, when the criteria needed it (SORT and THREAD then use it too).
    pub analysis: Option<Arc<Analysis>>,
}

impl<B: Backend> Session<B> {
    pub(crate) async fn search(
        &mut self,
        tag: &str,
        charset: Option<&Charset<'_>>,
        criteria: &[SearchKey<'static>],
        uid: bool,
    ) -> Tagged {
        let ret = self.extra.search_return;
        let t = self.search_inner(tag, charset, criteria, uid, ret).await;
        // RFC 5182 §2.1: a failed SEARCH (RETURN (SAVE)) leaves an empty saved result.
        if t.status != "OK"
            && ret.is_some_and(|r| r.save)
            && let Some(sel) = self.selected.as_mut()
        {
            sel.saved.clear();
        }
        t
    }

    /// Evaluates SEARCH criteria (RFC 9051 §6.4.4) over the selected mailbox: the matches in
    /// sequence order, and whether a MODSEQ criterion was used (RFC 7162 §3.1.5). Also the
    /// message set of SORT and THREAD (RFC 5256). The error is the tagged reply to send.
    pub(crate) async fn search_matches(
        &mut self,
        charset: Option<&Charset<'_>>,
        criteria: &[SearchKey<'static>],
    ) -> Result<(Vec<Matched>, bool), Tagged> {
        if let Some(cs) = charset {
            let name = match cs {
                Charset::Atom(a) => a.inner().to_string(),
                Charset::Quoted(q) => q.inner().to_string(),
            };
            if !name.eq_ignore_ascii_case("UTF-8") && !name.eq_ignore_ascii_case("US-ASCII") {
                return Err(no(
                    Some("BADCHARSET (US-ASCII UTF-8)"),
                    "Unsupported charset",
                ));
            }
        }
        let key = SearchKey::And(match criteria.to_vec().try_into() {
            Ok(v) => v,
            Err(_) => return Err(bad("Empty search")),
        });
        if depth(&key) > MAX_SEARCH_DEPTH {
            return Err(bad("Search nested too deeply"));
        }
        let keys_used = count(&key);
        if keys_used > self.cfg.max_search_keys {
            tracing::info!(
                keys = keys_used,
                limit = self.cfg.max_search_keys,
                "IMAP search refused: too many keys"
            );
            return Err(no(
                Some("LIMIT"),
                format!(
                    "Too many search keys ({keys_used}, at most {})",
                    self.cfg.max_search_keys
                ),
            ));
        }
        let with_modseq = uses_modseq(&key);
        if with_modseq {
            self.enable_condstore();
        }
        let Some(sel) = self.selected.as_ref() else {
            return Err(bad("No mailbox selected"));
        };
        let mailbox = sel.id();
        let store = self.backend.store().clone();
        let records = match store.messages(mailbox, 1..=Uid::MAX).await {
            Ok(r) => r,
            Err(e) => return Err(store_failure(&e)),
        };
        let mut by_uid: BTreeMap<Uid, MessageRecord> =
            records.into_iter().map(|r| (r.uid, r)).collect();
        let mut keys = Vec::new();
        text_keys(&key, &mut keys);
        let mut text_hits = HashMap::new();
        let wants_date = needs_date(&key);
        let wants_header = needs_header(&key);
        let mut scan = false;
        for (field, needle) in keys {
            let hits = match store.search_text(mailbox, field, &needle).await {
                Ok(Some(uids)) => Some(uids.into_iter().collect::<HashSet<_>>()),
                Ok(None) => {
                    scan = true;
                    None
                }
                Err(e) => return Err(store_failure(&e)),
            };
            text_hits.insert((field_code(field), needle), hits);
        }
        let exists = sel.exists();
        let last_uid = sel.uids().last().copied().unwrap_or(0);
        let now = store::now_unix();
        let view: Vec<(u32, Uid)> = sel
            .uids()
            .iter()
            .enumerate()
            .filter(|(_, u)| !sel.is_expunged(**u))
            .map(|(i, u)| (i as u32 + 1, *u))
            .collect();
        let mut found: Vec<Matched> = Vec::new();
        for chunk in view.chunks(SEARCH_BATCH) {
            // Metadata, analyses and header blocks of a batch in one store call each: one
            // read per message would cost a round trip per message (seconds on 100,000).
            let recs: Vec<(u32, MessageRecord)> = chunk
                .iter()
                .filter_map(|(msn, u)| by_uid.remove(u).map(|r| (*msn, r)))
                .collect();
            let blobs: Vec<store::BlobId> = recs.iter().map(|(_, r)| r.blob).collect();
            let mut analyses: Vec<Option<Arc<Analysis>>> = vec![None; recs.len()];
            let mut headers: Vec<Option<Vec<u8>>> = vec![None; recs.len()];
            // Messages that need their analysis: all of them for a sent-date key; for header
            // keys only those whose header block cannot be matched raw (most can: read the
            // start of each message instead of parsing its stored analysis).
            let mut need: Vec<usize> = if wants_date {
                (0..recs.len()).collect()
            } else {
                Vec::new()
            };
            if wants_header && !wants_date {
                let reads: Vec<_> = blobs.iter().map(|b| (*b, 0..HEADER_PREFIX)).collect();
                for (i, mut prefix) in ranges_in_runs(&store, &reads)
                    .await?
                    .into_iter()
                    .enumerate()
                {
                    match plain_header_len(&prefix) {
                        Some(len) => {
                            prefix.truncate(len);
                            headers[i] = Some(prefix);
                        }
                        None => need.push(i),
                    }
                }
            }
            if !need.is_empty() {
                let wanted: Vec<store::BlobId> = need.iter().map(|&i| blobs[i]).collect();
                match store.analyses(&wanted).await {
                    Ok(got) => {
                        for (&i, a) in need.iter().zip(got) {
                            analyses[i] = Some(a);
                        }
                    }
                    Err(e) => return Err(store_failure(&e)),
                }
                if wants_header {
                    let reads: Vec<_> = need
                        .iter()
                        .map(|&i| {
                            let (s, e) =
                                analyses[i].as_ref().map_or((0, 0), |a| a.body.header_range);
                            (blobs[i], s..e)
                        })
                        .collect();
                    for (&i, block) in need.iter().zip(ranges_in_runs(&store, &reads).await?) {
                        headers[i] = Some(block);
                    }
                }
            }
            // The cached analysis keeps no search text: recompute it from the blob.
            let scanned: Vec<Option<message::SearchText>> = if scan {
                let sizes: Vec<u64> = recs.iter().map(|(_, r)| r.size).collect();
                let mut out = Vec::with_capacity(recs.len());
                for run in by_bytes(&sizes) {
                    match store.blobs_read(&blobs[run]).await {
                        Ok(raws) => out.extend(raws.iter().map(|raw| {
                            Some(message::analyze(raw, &message::Limits::default()).search)
                        })),
                        Err(e) => return Err(store_failure(&e)),
                    }
                }
                out
            } else {
                vec![None; recs.len()]
            };
            for ((((msn, rec), analysis), header), scanned) in
                recs.into_iter().zip(analyses).zip(headers).zip(scanned)
            {
                let ctx = Ctx {
                    msn,
                    rec: &rec,
                    analysis: analysis.as_deref(),
                    header: header.as_deref(),
                    scanned: scanned.as_ref(),
                    text_hits: &text_hits,
                    exists,
                    last_uid,
                    now,
                    saved: sel.use_saved.then_some(&sel.saved),
                    recent: sel.is_recent(rec.uid),
                };
                if matches(&key, &ctx) {
                    found.push(Matched { msn, rec, analysis });
                }
            }
        }
        Ok((found, with_modseq))
    }

    async fn search_inner(
        &mut self,
        tag: &str,
        charset: Option<&Charset<'_>>,
        criteria: &[SearchKey<'static>],
        uid: bool,
        ret: Option<SearchReturn>,
    ) -> Tagged {
        let (matched, with_modseq) = match self.search_matches(charset, criteria).await {
            Ok(m) => m,
            Err(t) => return t,
        };
        let found: Vec<(u32, Uid, u64)> = matched
            .iter()
            .map(|m| (m.msn, m.rec.uid, m.rec.modseq))
            .collect();
        let nums: Vec<u32> = found
            .iter()
            .map(|(m, u, _)| if uid { *u } else { *m })
            .collect();
        let max_modseq = found.iter().map(|f| f.2).max();
        let o = match ret {
            Some(r) => {
                if r.save {
                    // RFC 5182 §2.4: with MIN and/or MAX only, just those messages are saved.
                    let saved: BTreeSet<Uid> = if r.all || r.count || !(r.min || r.max) {
                        found.iter().map(|f| f.1).collect()
                    } else {
                        let ends = [r.min.then(|| found.first()), r.max.then(|| found.last())];
                        ends.into_iter().flatten().flatten().map(|f| f.1).collect()
                    };
                    if let Some(sel) = self.selected.as_mut() {
                        sel.saved = saved;
                    }
                }
                esearch(tag, uid, r, &found, &nums, with_modseq)
            }
            None if self.enabled.rev2 => {
                let all = SearchReturn {
                    all: true,
                    ..SearchReturn::default()
                };
                esearch(tag, uid, all, &found, &nums, with_modseq)
            }
            None => {
                let mut o = b"* SEARCH".to_vec();
                for n in &nums {
                    o.extend_from_slice(format!(" {n}").as_bytes());
                }
                // RFC 7162 §3.1.5: the highest MODSEQ of the matches.
                if let (true, Some(m)) = (with_modseq, max_modseq) {
                    o.extend_from_slice(format!(" (MODSEQ {m})").as_bytes());
                }
                o.extend_from_slice(b"\r\n");
                o
            }
        };
        self.out.extend_from_slice(&o);
        ok(if uid {
            "UID SEARCH completed"
        } else {
            "SEARCH completed"
        })
    }
}

/// The ESEARCH response (RFC 4731 §3.2) for RETURN options `r`; nothing when SAVE is the only
/// option (RFC 5182 §2.4). `found` is (MSN, UID, MODSEQ) in order, `nums` the numbers returned.
fn esearch(
    tag: &str,
    uid: bool,
    r: SearchReturn,
    found: &[(u32, Uid, u64)],
    nums: &[u32],
    with_modseq: bool,
) -> Vec<u8> {
    if r.save && !(r.min || r.max || r.count || r.all) {
        return Vec::new();
    }
    let mut o = b"* ESEARCH (TAG ".to_vec();
    encode::string(&mut o, tag.as_bytes(), false);
    o.push(b')');
    if uid {
        o.extend_from_slice(b" UID");
    }
    // RFC 4731 §3.1: MIN, MAX and ALL are left out when nothing matched; COUNT is 0.
    if let (true, Some(n)) = (r.min, nums.first()) {
        o.extend_from_slice(format!(" MIN {n}").as_bytes());
    }
    if let (true, Some(n)) = (r.max, nums.last()) {
        o.extend_from_slice(format!(" MAX {n}").as_bytes());
    }
    if r.count {
        o.extend_from_slice(format!(" COUNT {}", nums.len()).as_bytes());
    }
    if r.all && !nums.is_empty() {
        o.extend_from_slice(format!(" ALL {}", encode::sequence_set(nums)).as_bytes());
    }
    // RFC 7162 §3.1.5: the highest MODSEQ of the messages returned (only MIN/MAX: those two).
    if with_modseq {
        let modseq = if r.all || r.count {
            found.iter().map(|f| f.2).max()
        } else {
            let ends = [r.min.then(|| found.first()), r.max.then(|| found.last())];
            ends.into_iter().flatten().flatten().map(|f| f.2).max()
        };
        if let Some(m) = modseq {
            o.extend_from_slice(format!(" MODSEQ {m}").as_bytes());
        }
    }
    o.extend_from_slice(b"\r\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_blocks_matched_raw_only_when_no_decoding_could_differ() {
        let full = HEADER_PREFIX as usize;
        assert_eq!(header_block_len(b"A: b\r\nC: d\r\n\r\nbody"), Some(12));
        assert_eq!(header_block_len(b"A: b\nC: d\n\nbody\n\n"), Some(10));
        assert_eq!(header_block_len(b"\r\nbody"), Some(0));
        assert_eq!(header_block_len(b"A: b\r\n"), Some(6), "no body");
        let mut long = b"X: ".to_vec();
        long.resize(full, b'x');
        assert_eq!(header_block_len(&long), None, "may go on past the prefix");
        long.truncate(full - 1);
        assert_eq!(header_block_len(&long), Some(full - 1));
        assert_eq!(plain_header_len(b"From: A <a@x>\r\n\r\n"), Some(15));
        for needs_decoding in [
            &b"Subject: =?utf-8?q?caf=C3=A9?=\r\n\r\n"[..],
            "Subject: café\r\n\r\n".as_bytes(),
            b"From: \"O\\\"Brien\" <o@x>\r\n\r\n",
            b"Subject: a\r\n\tb\r\n\r\n",
        ] {
            assert_eq!(plain_header_len(needs_decoding), None, "{needs_decoding:?}");
        }
        // Only the header block counts: the body may hold anything.
        assert_eq!(plain_header_len(b"A: b\r\n\r\n=?\\ caf\xc3\xa9"), Some(6));
    }

    #[test]
    fn byte_runs_cover_everything_in_order_and_stay_bounded() {
        assert!(by_bytes(&[]).is_empty());
        let m = SEARCH_BATCH_BYTES;
        assert_eq!(by_bytes(&[1, 2, 3]), vec![0..3]);
        assert_eq!(by_bytes(&[m, 1]), vec![0..1, 1..2]);
        assert_eq!(by_bytes(&[1, m * 3, 1]), vec![0..1, 1..2, 2..3]);
        assert_eq!(by_bytes(&[m / 2, m / 2, 1]), vec![0..2, 2..3]);
        assert_eq!(by_bytes(&[u64::MAX, u64::MAX]), vec![0..1, 1..2]);
    }
}
