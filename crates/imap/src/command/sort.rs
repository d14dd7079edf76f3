//! SORT and UID SORT (RFC 5256 §3), with the DISPLAYFROM and DISPLAYTO keys of SORT=DISPLAY
//! (RFC 5957). The messages are those the SEARCH evaluation matches (`search_matches`). What
//! SORT and THREAD compare is taken once per message from its cached analysis into [`Keys`], in
//! comparison form; the sort itself only compares columns built from them, so the store is read
//! at most once per message and never during the sort.
//!
//! Keys are kept in a process-wide cache by blob: a blob's bytes never change, so neither do its
//! keys, and every session (webmail clients reconnect for each page) shares them. A mailbox
//! re-sorted after the first time costs no store access for the messages already seen.

use std::cmp::Ordering;
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::{Arc, LazyLock, Mutex};

use imap_codec::imap_types::core::Charset;
use imap_codec::imap_types::extensions::sort::{SortCriterion, SortKey};
use imap_codec::imap_types::search::SearchKey;
use mail_parser::HeaderValue;
use mail_parser::parsers::MessageStream;
use message::{Address, Analysis};
use store::{BlobId, DynStore, StoreError};

use super::search::Matched;
use super::thread::{MAX_THREAD_REFERENCES, is_reply_or_forward, normalize_id};
use crate::backend::Backend;
use crate::session::{Session, Tagged, ok, store_failure};

/// Memory the key cache may use, in bytes (a typical message's keys take about 300). Past it the
/// oldest entries go, so a mailbox whose keys do not fit reads part of its analyses again on
/// every SORT or THREAD.
pub const MAX_CACHED_KEY_BYTES: usize = 64 * 1024 * 1024;

/// Concurrent store reads when keys are missing from the cache.
const KEY_READERS: usize = 4;

/// What SORT and THREAD read from one message, in comparison form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Keys {
    /// Date: in UTC (Unix seconds); `None` when missing or unparsable (RFC 5256 §2.2: then
    /// INTERNALDATE, which the message record has).
    pub date: Option<i64>,
    /// RFC 5256 §2.1 base subject (as cached at append), case-folded.
    pub subject: Box<str>,
    /// The subject had a subj-refwd part or a "(fwd)" trailer (RFC 5256 §4 step 5).
    pub reply: bool,
    /// RFC 5256 §3: addr-mailbox of the first From, To and Cc address, i;ascii-casemap form.
    pub from: Box<str>,
    pub to: Box<str>,
    pub cc: Box<str>,
    /// RFC 5957: display name (or addr-spec) of the first From and To address, case-folded.
    pub display_from: Box<str>,
    pub display_to: Box<str>,
    /// Message-ID, normalised (RFC 5256 §4).
    pub message_id: Option<Box<str>>,
    /// References, or the first In-Reply-To ID when there are none (RFC 5256 §4 step 1),
    /// normalised; the last [`MAX_THREAD_REFERENCES`] at most.
    pub refs: Box<[Box<str>]>,
}

impl Keys {
    /// Approximate heap and inline size, for the cache's bound.
    fn weight(&self) -> usize {
        let strings = [
            &self.subject,
            &self.from,
            &self.to,
            &self.cc,
            &self.display_from,
            &self.display_to,
        ];
        std::mem::size_of::<Keys>()
            + strings.iter().map(|s| s.len()).sum::<usize>()
            + self.message_id.as_ref().map_or(0, |m| m.len())
            + self
                .refs
                .iter()
                .map(|r| r.len() + std::mem::size_of::<Box<str>>())
                .sum::<usize>()
    }

    pub(crate) fn of(a: &Analysis) -> Keys {
        let h = &a.headers;
        let ids = if h.references.is_empty() {
            &h.in_reply_to[..h.in_reply_to.len().min(1)]
        } else {
            &h.references[..]
        };
        let skip = ids.len().saturating_sub(MAX_THREAD_REFERENCES);
        Keys {
            date: h.date,
            subject: fold(&h.base_subject).into(),
            reply: h.subject.as_deref().is_some_and(is_reply_or_forward),
            from: mailbox_key(&a.envelope.from).into(),
            to: mailbox_key(&a.envelope.to).into(),
            cc: mailbox_key(&a.envelope.cc).into(),
            display_from: display_key(&a.envelope.from).into(),
            display_to: display_key(&a.envelope.to).into(),
            message_id: h
                .message_id
                .as_deref()
                .map(normalize_id)
                .filter(|id| !id.is_empty())
                .map(Into::into),
            refs: ids[skip..]
                .iter()
                .map(|r| normalize_id(r))
                .filter(|r| !r.is_empty())
                .map(Into::into)
                .collect(),
        }
    }
}

/// Keys by blob, oldest first out.
#[derive(Default)]
struct KeyCache {
    map: HashMap<BlobId, Arc<Keys>>,
    order: VecDeque<BlobId>,
    /// Sum of the weights of the entries.
    bytes: usize,
}

impl KeyCache {
    fn insert(&mut self, blob: BlobId, keys: Arc<Keys>) {
        let weight = keys.weight();
        if self.map.insert(blob, keys).is_none() {
            self.order.push_back(blob);
            self.bytes += weight;
        }
        while self.bytes > MAX_CACHED_KEY_BYTES {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(k) = self.map.remove(&old) {
                self.bytes = self.bytes.saturating_sub(k.weight());
            }
        }
    }
}

static KEY_CACHE: LazyLock<Mutex<KeyCache>> = LazyLock::new(Mutex::default);

/// Analyses read from the store in one call when sort keys are computed.
const KEY_READ_BATCH: usize = 512;

/// The keys of each matched message, in the same order: from the cache, else from the analysis
/// the search already read, else from the store (batches of [`KEY_READ_BATCH`]; [`KEY_READERS`]
/// readers at a time, since each is mostly parsing the stored analyses).
pub(crate) async fn keys(
    store: &DynStore,
    matched: &[Matched],
) -> Result<Vec<Arc<Keys>>, StoreError> {
    let mut out: Vec<Option<Arc<Keys>>> = match KEY_CACHE.lock() {
        Ok(cache) => matched
            .iter()
            .map(|m| cache.map.get(&m.rec.blob).cloned())
            .collect(),
        Err(_) => vec![None; matched.len()],
    };
    let mut fresh: Vec<(usize, Keys)> = Vec::new();
    let mut to_read: Vec<Vec<(usize, BlobId)>> = vec![Vec::new(); KEY_READERS];
    for (i, (slot, m)) in out.iter().zip(matched).enumerate() {
        match (slot, &m.analysis) {
            (Some(_), _) => {}
            (None, Some(a)) => fresh.push((i, Keys::of(a))),
            (None, None) => to_read[i % KEY_READERS].push((i, m.rec.blob)),
        }
    }
    let mut readers = tokio::task::JoinSet::new();
    for part in to_read.into_iter().filter(|p| !p.is_empty()) {
        let store = store.clone();
        readers.spawn(async move {
            let mut got = Vec::with_capacity(part.len());
            // A batch of analyses per store call: one call per message costs a round trip each.
            for batch in part.chunks(KEY_READ_BATCH) {
                let blobs: Vec<BlobId> = batch.iter().map(|(_, b)| *b).collect();
                let analyses = store.analyses(&blobs).await?;
                got.extend(
                    batch
                        .iter()
                        .zip(analyses)
                        .map(|((i, _), a)| (*i, Keys::of(&a))),
                );
            }
            Ok::<_, StoreError>(got)
        });
    }
    while let Some(done) = readers.join_next().await {
        let got = done.map_err(|e| StoreError::Backend(format!("key reader: {e}")))??;
        fresh.extend(got);
    }
    let mut cache = KEY_CACHE.lock().ok();
    for (i, k) in fresh {
        let k = Arc::new(k);
        if let Some(cache) = cache.as_mut() {
            cache.insert(matched[i].rec.blob, k.clone());
        }
        out[i] = Some(k);
    }
    drop(cache);
    Ok(out.into_iter().map(Option::unwrap_or_default).collect())
}

/// RFC 5256 §2.2 sent date: the Date: field in UTC, or INTERNALDATE when the field is missing
/// or cannot be parsed.
pub(crate) fn sent_date(m: &Matched, k: &Keys) -> i64 {
    k.date.unwrap_or(m.rec.internal_date)
}

/// i;unicode-casemap (RFC 5051), approximated by Unicode upper-casing: exact for ASCII (where it
/// is i;ascii-casemap), without the canonical decomposition for the rest. For subjects and
/// display names (RFC 5256 §1 asks for I18NLEVEL=1 collation; RFC 5957 §3).
pub(crate) fn fold(s: &str) -> String {
    s.to_uppercase()
}

/// The first mailbox of an address list; group start and end markers (RFC 9051 §7.5.2: no
/// host) are skipped.
fn first_mailbox(list: &[Address]) -> Option<&Address> {
    list.iter().find(|a| a.host.is_some())
}

/// RFC 5256 §3: the addr-mailbox of the first address, for i;ascii-casemap comparison; the
/// empty string when there is none.
fn mailbox_key(list: &[Address]) -> String {
    first_mailbox(list)
        .and_then(|a| a.mailbox.as_deref())
        .unwrap_or_default()
        .to_ascii_uppercase()
}

/// RFC 5957 §2: the display name of the first address, RFC 2047-decoded, or its addr-spec when
/// it has none; the empty string when there is no address.
fn display_key(list: &[Address]) -> String {
    let Some(a) = first_mailbox(list) else {
        return String::new();
    };
    let name = a
        .name
        .as_deref()
        .map(decode_words)
        .filter(|n| !n.trim().is_empty());
    let key = match name {
        Some(n) => n,
        None => {
            let mailbox = a.mailbox.as_deref().unwrap_or_default();
            match a.host.as_deref() {
                Some(h) if !h.is_empty() => format!("{mailbox}@{h}"),
                _ => mailbox.to_string(),
            }
        }
    };
    fold(key.trim())
}

/// Decodes RFC 2047 encoded words of a display name (the envelope keeps them as sent).
fn decode_words(raw: &str) -> String {
    if !raw.contains("=?") {
        return raw.to_string();
    }
    let line = format!("{raw}\n");
    match MessageStream::new(line.as_bytes()).parse_unstructured() {
        HeaderValue::Text(t) => t.into_owned(),
        HeaderValue::TextList(l) => l.join(" "),
        _ => raw.to_string(),
    }
}

/// One sort key, for every message.
enum Column<'a> {
    Number(Vec<i64>),
    Text(Vec<&'a str>),
}

impl Column<'_> {
    fn cmp(&self, a: usize, b: usize) -> Ordering {
        match self {
            Column::Number(v) => v[a].cmp(&v[b]),
            Column::Text(v) => v[a].cmp(v[b]),
        }
    }
}

fn column<'a>(key: &SortKey, matched: &[Matched], keys: &'a [Arc<Keys>]) -> Column<'a> {
    let text = |f: fn(&Keys) -> &str| Column::Text(keys.iter().map(|k| f(k)).collect());
    match key {
        SortKey::Arrival => Column::Number(matched.iter().map(|m| m.rec.internal_date).collect()),
        SortKey::Date => Column::Number(
            matched
                .iter()
                .zip(keys)
                .map(|(m, k)| sent_date(m, k))
                .collect(),
        ),
        SortKey::Size => Column::Number(
            matched
                .iter()
                .map(|m| i64::try_from(m.rec.size).unwrap_or(i64::MAX))
                .collect(),
        ),
        SortKey::Subject => text(|k| &k.subject),
        SortKey::From => text(|k| &k.from),
        SortKey::To => text(|k| &k.to),
        SortKey::Cc => text(|k| &k.cc),
        SortKey::DisplayFrom => text(|k| &k.display_from),
        SortKey::DisplayTo => text(|k| &k.display_to),
    }
}

/// Indexes into `matched` (in mailbox order) in the order the criteria give.
pub(crate) fn sort_order(
    matched: &[Matched],
    keys: &[Arc<Keys>],
    criteria: &[SortCriterion],
) -> Vec<usize> {
    let columns: Vec<(Column<'_>, bool)> = criteria
        .iter()
        .map(|c| (column(&c.key, matched, keys), c.reverse))
        .collect();
    let mut order: Vec<usize> = (0..matched.len()).collect();
    order.sort_unstable_by(|&a, &b| {
        for (col, reverse) in &columns {
            let o = col.cmp(a, b);
            let o = if *reverse { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        // RFC 5256 §3: messages that compare equal stay in mailbox (sequence number) order.
        a.cmp(&b)
    });
    order
}

impl<B: Backend> Session<B> {
    pub(crate) async fn sort(
        &mut self,
        criteria: &[SortCriterion],
        charset: &Charset<'_>,
        search: &[SearchKey<'static>],
        uid: bool,
    ) -> Tagged {
        let (matched, with_modseq) = match self.search_matches(Some(charset), search).await {
            Ok(m) => m,
            Err(t) => return t,
        };
        let keys = match keys(self.backend.store(), &matched).await {
            Ok(k) => k,
            Err(e) => return store_failure(&e),
        };
        let order = sort_order(&matched, &keys, criteria);
        let mut o = Vec::with_capacity(8 + order.len() * 7);
        o.extend_from_slice(b"* SORT");
        for i in &order {
            let m = &matched[*i];
            let n = if uid { m.rec.uid } else { m.msn };
            let _ = write!(o, " {n}");
        }
        // RFC 7162 §3.1.5: with a MODSEQ criterion, the highest MODSEQ of the matches.
        if let (true, Some(m)) = (with_modseq, matched.iter().map(|m| m.rec.modseq).max()) {
            o.extend_from_slice(format!(" (MODSEQ {m})").as_bytes());
        }
        o.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(&o);
        ok(if uid {
            "UID SORT completed"
        } else {
            "SORT completed"
        })
    }
}
