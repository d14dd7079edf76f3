//! Messages: group-committed appends, flags with MODSEQ, copy, move, expunge, blobs and search.

use std::collections::{BTreeMap, HashMap};
use std::ops::RangeInclusive;
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};
use tokio::sync::broadcast;

use super::blobs::{BlobDir, TmpBlob};
use super::writer::Tx;
use super::{Sqlite, SqliteStore, db_err, exec, mailbox, query_row};
use crate::*;

/// Largest batch (in bytes, each blob kept in the database and already analysed) prepared
/// without leaving the caller's task.
const INLINE_PREPARE_MAX_BYTES: usize = 64 * 1024;

/// Shortest needle the trigram index can answer; shorter ones need a scan.
const MIN_INDEXED_NEEDLE: usize = 3;

const COLUMNS: &str = "m.uid, m.modseq, m.flags, m.keywords, m.internal_date, m.size, b.hash";

/// The columns of [`COLUMNS`] for `FROM messages m` without a join. The blob's hash comes from a
/// correlated subquery: SQLite (3.54, with STAT4) re-prepares a statement with a join every time
/// its parameters are bound again, which made each per-message lookup cost a full SQL compile.
const COLUMNS_NO_JOIN: &str = "m.uid, m.modseq, m.flags, m.keywords, m.internal_date, m.size, \
     (SELECT b.hash FROM blobs b WHERE b.id = m.blob_id)";

/// Largest gap between two wanted UIDs that one range scan reads through (STORE): a range read
/// row by row is much cheaper than a lookup per UID, and sparse sets still get point reads.
const SCAN_GAP: Uid = 64;

fn from_row(r: &Row<'_>) -> rusqlite::Result<MessageRecord> {
    let keywords: String = r.get(3)?;
    // NULL only without a blob row (a damaged store, reported by the integrity check).
    let hash: Option<Vec<u8>> = r.get(6)?;
    let hash = hash.unwrap_or_default();
    let mut id = [0u8; 32];
    if hash.len() == 32 {
        id.copy_from_slice(&hash);
    }
    Ok(MessageRecord {
        uid: r.get::<_, i64>(0)? as u32,
        modseq: r.get::<_, i64>(1)? as u64,
        flags: Flags(r.get::<_, i64>(2)? as u8),
        keywords: split_keywords(&keywords),
        internal_date: r.get(4)?,
        size: r.get::<_, i64>(5)? as u64,
        blob: BlobId(id),
    })
}

fn split_keywords(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect()
}

fn join_keywords(k: &[String]) -> String {
    let mut out: Vec<&str> = Vec::with_capacity(k.len());
    for kw in k {
        // Keywords are IMAP atoms; anything with a space or control char would corrupt the list.
        if !kw.is_empty()
            && !kw.chars().any(|c| c == ' ' || c.is_control())
            && !out.iter().any(|o| o.eq_ignore_ascii_case(kw))
        {
            out.push(kw);
        }
    }
    out.join(" ")
}

/// A blob ready to be recorded: hashed, analysed, and (if large) already written and fsynced.
struct PreparedBlob {
    id: BlobId,
    size: u64,
    analysis_json: String,
    inline: Option<Arc<[u8]>>,
    tmp: Option<TmpBlob>,
}

/// The blobs of a batch, and the blob id of each append and queue entry (in batch order).
struct Prepared {
    blobs: Vec<PreparedBlob>,
    append_ids: Vec<BlobId>,
    enqueue_ids: Vec<BlobId>,
}

fn prepare(store: &SqliteStore, batch: &WriteBatch) -> Result<Prepared> {
    let mut seen: HashMap<BlobId, ()> = HashMap::new();
    let mut blobs = Vec::new();
    let mut ids = Vec::with_capacity(batch.appends.len() + batch.enqueue.len());
    let raws = batch
        .appends
        .iter()
        .map(|a| &a.raw)
        .chain(batch.enqueue.iter().map(|q| &q.raw));
    for raw in raws {
        let id = raw.id();
        ids.push(id);
        if seen.insert(id, ()).is_some() {
            continue;
        }
        let given = raw.analysis().filter(|a| {
            // Only an analysis that fits these bytes' size is taken (a cheap sanity check).
            a.body.body_range.1 == raw.len() as u64
        });
        let mut analysis = match given {
            Some(a) => {
                // The indexer takes the search text from here instead of analysing again.
                store.pending_text.put(id, a.search.clone());
                (**a).clone()
            }
            None => message::analyze(&raw.to_arc(), &store.mime_limits),
        };
        // The search text is not cached with the analysis: the indexer derives it again off the
        // commit path (see `fts`).
        analysis.search = message::SearchText::default();
        let analysis_json =
            serde_json::to_string(&analysis).map_err(|e| StoreError::Backend(e.to_string()))?;
        let (inline, tmp) = if store.blobs.is_inline(raw.len()) {
            (Some(raw.to_arc()), None)
        } else {
            (None, Some(store.blobs.write_tmp(&raw.parts())?))
        };
        blobs.push(PreparedBlob {
            id,
            size: raw.len() as u64,
            analysis_json,
            inline,
            tmp,
        });
    }
    let enqueue_ids = ids.split_off(batch.appends.len());
    Ok(Prepared {
        blobs,
        append_ids: ids,
        enqueue_ids,
    })
}

/// Takes `n` references on a blob, recording it if new. Returns its row id.
fn acquire(tx: &mut Tx<'_>, p: &PreparedBlob, n: i64) -> Result<i64> {
    let existing: Option<i64> = query_row(
        tx.conn,
        "SELECT id FROM blobs WHERE hash = ?1",
        [&p.id.0[..]],
        |r| r.get(0),
    )
    .optional()
    .map_err(db_err)?;
    if let Some(id) = existing {
        exec(
            tx.conn,
            "UPDATE blobs SET refcount = refcount + ?1 WHERE id = ?2",
            params![n, id],
        )
        .map_err(db_err)?;
        return Ok(id);
    }
    if let Some(tmp) = &p.tmp {
        tx.blobs.install(tmp, &p.id, &mut tx.sync_dirs)?;
    }
    exec(
        tx.conn,
        "INSERT INTO blobs(hash, size, refcount, data, analysis) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            &p.id.0[..],
            p.size as i64,
            n,
            p.inline.as_deref(),
            p.analysis_json
        ],
    )
    .map_err(db_err)?;
    let id = tx.conn.last_insert_rowid();
    tx.new_blobs += 1;
    Ok(id)
}

/// Drops `n` references; the last one removes the row, its index entry, and (after commit) its file.
fn release_blob(tx: &mut Tx<'_>, blob_row: i64, n: i64) -> Result<()> {
    exec(
        tx.conn,
        "UPDATE blobs SET refcount = refcount - ?1 WHERE id = ?2",
        params![n, blob_row],
    )
    .map_err(db_err)?;
    let (refcount, hash, is_file): (i64, Vec<u8>, bool) = query_row(
        tx.conn,
        "SELECT refcount, hash, data IS NULL FROM blobs WHERE id = ?1",
        [blob_row],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .map_err(db_err)?;
    if refcount <= 0 {
        tx.released.push(blob_row);
        exec(tx.conn, "DELETE FROM blobs WHERE id = ?1", [blob_row]).map_err(db_err)?;
        if is_file && hash.len() == 32 {
            let mut id = [0u8; 32];
            id.copy_from_slice(&hash);
            let path = tx.blobs.path_of(&BlobId(id));
            tx.unlink.push((hash, path));
        }
    }
    Ok(())
}

/// Usage and limits of one account during a transaction.
struct QuotaState {
    used_bytes: i64,
    used_messages: i64,
    quota_bytes: Option<i64>,
    quota_messages: Option<i64>,
    delta_bytes: i64,
    delta_messages: i64,
}

impl QuotaState {
    fn load(conn: &Connection, account: AccountId) -> Result<QuotaState> {
        query_row(conn,
            "SELECT used_bytes, used_messages, quota_bytes, quota_messages FROM accounts WHERE id = ?1",
            [account],
            |r| {
                Ok(QuotaState {
                    used_bytes: r.get(0)?,
                    used_messages: r.get(1)?,
                    quota_bytes: r.get(2)?,
                    quota_messages: r.get(3)?,
                    delta_bytes: 0,
                    delta_messages: 0,
                })
            },
        )
        .optional()
        .map_err(db_err)?
        .ok_or_else(|| StoreError::NotFound(format!("account {account}")))
    }

    fn add(&mut self, account: AccountId, size: i64) -> Result<()> {
        let bytes = self.used_bytes + self.delta_bytes + size;
        let messages = self.used_messages + self.delta_messages + 1;
        if self.quota_bytes.is_some_and(|q| bytes > q)
            || self.quota_messages.is_some_and(|q| messages > q)
        {
            return Err(StoreError::OverQuota { account });
        }
        self.delta_bytes += size;
        self.delta_messages += 1;
        Ok(())
    }

    fn save(&self, conn: &Connection, account: AccountId) -> Result<()> {
        exec(conn,
            "UPDATE accounts SET used_bytes = used_bytes + ?1, used_messages = used_messages + ?2 WHERE id = ?3",
            params![self.delta_bytes, self.delta_messages, account],
        )
        .map_err(db_err)?;
        Ok(())
    }
}

fn next_uid(mb: &mut MailboxRecord) -> Result<Uid> {
    let uid = mb.uidnext;
    // RFC 9051 §2.3.1.1: UIDs are 32-bit and never reused; a full mailbox needs a new UIDVALIDITY.
    mb.uidnext = uid
        .checked_add(1)
        .ok_or_else(|| StoreError::Invalid(format!("mailbox {} has no UIDs left", mb.name)))?;
    Ok(uid)
}

fn save_mailbox(conn: &Connection, mb: &MailboxRecord) -> Result<()> {
    exec(
        conn,
        "UPDATE mailboxes SET uidnext = ?1, highestmodseq = ?2 WHERE id = ?3",
        params![mb.uidnext, mb.highestmodseq as i64, mb.id],
    )
    .map_err(db_err)?;
    Ok(())
}

fn apply(tx: &mut Tx<'_>, prepared: Prepared, batch: WriteBatch) -> Result<BatchResult> {
    // Appends left out for quota (per-account policy) take no reference: check them first.
    let mut mailboxes: BTreeMap<MailboxId, (MailboxRecord, Vec<Uid>)> = BTreeMap::new();
    let mut quotas: BTreeMap<AccountId, QuotaState> = BTreeMap::new();
    let mut result = BatchResult::default();
    let mut take = vec![true; batch.appends.len()];
    for (i, req) in batch.appends.iter().enumerate() {
        if let std::collections::btree_map::Entry::Vacant(e) = mailboxes.entry(req.mailbox_id) {
            let mb = mailbox::require(tx.conn, req.mailbox_id)?;
            e.insert((mb, Vec::new()));
        }
        let Some((mb, _)) = mailboxes.get(&req.mailbox_id) else {
            continue;
        };
        let quota = match quotas.entry(mb.account_id) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(QuotaState::load(tx.conn, mb.account_id)?)
            }
        };
        match quota.add(mb.account_id, req.raw.len() as i64) {
            Ok(()) => {}
            Err(e @ StoreError::OverQuota { .. }) => match batch.quota {
                QuotaPolicy::AllOrNothing => return Err(e),
                QuotaPolicy::PerAccount => {
                    take[i] = false;
                    result.over_quota.push(i);
                }
            },
            Err(e) => return Err(e),
        }
    }
    let mut refs: HashMap<BlobId, i64> = HashMap::new();
    for (i, id) in prepared.append_ids.iter().enumerate() {
        if take[i] {
            *refs.entry(*id).or_default() += 1;
        }
    }
    for id in &prepared.enqueue_ids {
        *refs.entry(*id).or_default() += 1;
    }
    let mut rows: HashMap<BlobId, i64> = HashMap::new();
    for p in &prepared.blobs {
        let n = refs.get(&p.id).copied().unwrap_or(0);
        if n > 0 {
            rows.insert(p.id, acquire(tx, p, n)?);
        }
    }
    for (i, req) in batch.appends.iter().enumerate() {
        if !take[i] {
            continue;
        }
        let blob = prepared.append_ids[i];
        let row = *rows
            .get(&blob)
            .ok_or_else(|| StoreError::Backend("blob not prepared".into()))?;
        if let std::collections::btree_map::Entry::Vacant(e) = mailboxes.entry(req.mailbox_id) {
            let mb = mailbox::require(tx.conn, req.mailbox_id)?;
            e.insert((mb, Vec::new()));
        }
        let Some((mb, uids)) = mailboxes.get_mut(&req.mailbox_id) else {
            continue;
        };
        let uid = next_uid(mb)?;
        mb.highestmodseq += 1;
        exec(tx.conn,
                "INSERT INTO messages(mailbox_id, uid, modseq, flags, keywords, internal_date, size, blob_id) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    mb.id,
                    uid,
                    mb.highestmodseq as i64,
                    req.flags.0,
                    join_keywords(&req.keywords),
                    req.internal_date,
                    req.raw.len() as i64,
                    row
                ],
            )
            .map_err(db_err)?;
        uids.push(uid);
        result.appended.push(Appended {
            mailbox_id: mb.id,
            uidvalidity: mb.uidvalidity,
            uid,
            modseq: mb.highestmodseq,
            blob,
        });
    }
    for (mb, uids) in mailboxes.values() {
        if uids.is_empty() {
            continue;
        }
        save_mailbox(tx.conn, mb)?;
        tx.changes.push(Change {
            account_id: mb.account_id,
            mailbox_id: mb.id,
            modseq: mb.highestmodseq,
            kind: ChangeKind::Appended(uids.clone()),
        });
    }
    for (account, q) in &quotas {
        q.save(tx.conn, *account)?;
    }
    for (q, id) in batch.enqueue.iter().zip(&prepared.enqueue_ids) {
        let row = *rows
            .get(id)
            .ok_or_else(|| StoreError::Backend("blob not prepared".into()))?;
        let recipients =
            serde_json::to_string(&q.recipients).map_err(|e| StoreError::Backend(e.to_string()))?;
        exec(
            tx.conn,
            "INSERT INTO queue(blob_id, sender, recipients, envid, ret, created, next_attempt, smtp_id) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                row,
                q.sender,
                recipients,
                q.envid,
                q.ret,
                now_unix(),
                q.next_attempt,
                q.smtp_id
            ],
        )
        .map_err(db_err)?;
        result.queued.push(tx.conn.last_insert_rowid());
    }
    Ok(result)
}

/// Deletes message rows (without expunge records), releasing blobs and quota.
pub(crate) fn release_messages(tx: &mut Tx<'_>, mb: &MailboxRecord, uids: &[Uid]) -> Result<()> {
    let mut bytes = 0i64;
    let mut count = 0i64;
    for uid in uids {
        let row: Option<(i64, i64)> = query_row(
            tx.conn,
            "SELECT blob_id, size FROM messages WHERE mailbox_id = ?1 AND uid = ?2",
            params![mb.id, uid],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(db_err)?;
        let Some((blob_row, size)) = row else {
            continue;
        };
        exec(
            tx.conn,
            "DELETE FROM messages WHERE mailbox_id = ?1 AND uid = ?2",
            params![mb.id, uid],
        )
        .map_err(db_err)?;
        release_blob(tx, blob_row, 1)?;
        bytes += size;
        count += 1;
    }
    exec(tx.conn,
            "UPDATE accounts SET used_bytes = max(0, used_bytes - ?1), used_messages = max(0, used_messages - ?2) WHERE id = ?3",
            params![bytes, count, mb.account_id],
        )
        .map_err(db_err)?;
    Ok(())
}

fn expunge_in(tx: &mut Tx<'_>, mailbox: MailboxId, filter: ExpungeFilter) -> Result<Expunged> {
    let mut mb = mailbox::require(tx.conn, mailbox)?;
    let deleted = Flags::DELETED.0;
    let uids: Vec<Uid> = match &filter {
        ExpungeFilter::AllDeleted => {
            let mut st = tx
                .conn
                .prepare("SELECT uid FROM messages WHERE mailbox_id = ?1 AND (flags & ?2) != 0 ORDER BY uid")
                .map_err(db_err)?;
            st.query_map(params![mailbox, deleted], |r| r.get(0))
                .map_err(db_err)?
                .collect::<rusqlite::Result<_>>()
                .map_err(db_err)?
        }
        ExpungeFilter::DeletedIn(list) | ExpungeFilter::Uids(list) => {
            let need_deleted = matches!(filter, ExpungeFilter::DeletedIn(_));
            let mut sorted = list.clone();
            sorted.sort_unstable();
            sorted.dedup();
            let mut out = Vec::new();
            for uid in sorted {
                let flags: Option<i64> = query_row(
                    tx.conn,
                    "SELECT flags FROM messages WHERE mailbox_id = ?1 AND uid = ?2",
                    params![mailbox, uid],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err)?;
                if let Some(f) = flags
                    && (!need_deleted || (f as u8) & deleted != 0)
                {
                    out.push(uid);
                }
            }
            out
        }
    };
    if uids.is_empty() {
        return Ok(Expunged {
            uids,
            modseq: mb.highestmodseq,
        });
    }
    release_messages(tx, &mb, &uids)?;
    mb.highestmodseq += 1;
    for uid in &uids {
        exec(
            tx.conn,
            "INSERT OR REPLACE INTO expunged(mailbox_id, uid, modseq) VALUES (?1, ?2, ?3)",
            params![mailbox, uid, mb.highestmodseq as i64],
        )
        .map_err(db_err)?;
    }
    save_mailbox(tx.conn, &mb)?;
    tx.changes.push(Change {
        account_id: mb.account_id,
        mailbox_id: mailbox,
        modseq: mb.highestmodseq,
        kind: ChangeKind::Expunged(uids.clone()),
    });
    Ok(Expunged {
        uids,
        modseq: mb.highestmodseq,
    })
}

fn copy_in(tx: &mut Tx<'_>, from: MailboxId, uids: &[Uid], to: MailboxId) -> Result<CopyResult> {
    let src = mailbox::require(tx.conn, from)?;
    let mut dst = mailbox::require(tx.conn, to)?;
    if src.account_id != dst.account_id {
        return Err(StoreError::Invalid("copy across accounts".into()));
    }
    let mut quota = QuotaState::load(tx.conn, dst.account_id)?;
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut mapping = Vec::new();
    for uid in sorted {
        let row: Option<(i64, String, i64, i64, i64)> = query_row(tx.conn,
                "SELECT flags, keywords, internal_date, size, blob_id FROM messages WHERE mailbox_id = ?1 AND uid = ?2",
                params![from, uid],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()
            .map_err(db_err)?;
        let Some((flags, keywords, date, size, blob_row)) = row else {
            continue;
        };
        quota.add(dst.account_id, size)?;
        let new_uid = next_uid(&mut dst)?;
        dst.highestmodseq += 1;
        exec(tx.conn,
                "INSERT INTO messages(mailbox_id, uid, modseq, flags, keywords, internal_date, size, blob_id) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![to, new_uid, dst.highestmodseq as i64, flags, keywords, date, size, blob_row],
            )
            .map_err(db_err)?;
        exec(
            tx.conn,
            "UPDATE blobs SET refcount = refcount + 1 WHERE id = ?1",
            [blob_row],
        )
        .map_err(db_err)?;
        mapping.push((uid, new_uid));
    }
    if !mapping.is_empty() {
        save_mailbox(tx.conn, &dst)?;
        quota.save(tx.conn, dst.account_id)?;
        tx.changes.push(Change {
            account_id: dst.account_id,
            mailbox_id: to,
            modseq: dst.highestmodseq,
            kind: ChangeKind::Appended(mapping.iter().map(|m| m.1).collect()),
        });
    }
    Ok(CopyResult {
        uidvalidity: dst.uidvalidity,
        mapping,
    })
}

/// Splits sorted, deduplicated UIDs into runs whose neighbours are at most `gap` apart.
fn runs(sorted: &[Uid], gap: Uid) -> impl Iterator<Item = &[Uid]> {
    sorted.chunk_by(move |a, b| b - a <= gap)
}

/// The flags and keywords `op` gives a message that has `flags` and `keywords`; `None` when nothing
/// changes. `replace_keywords` is the normalised keyword list of a Replace.
fn new_flags(
    op: FlagOp,
    rec: &MessageRecord,
    flags: Flags,
    keywords: &[String],
    replace_keywords: &[String],
) -> Option<(Flags, Vec<String>)> {
    let (new_flags, new_keywords) = match op {
        FlagOp::Replace => (flags, replace_keywords.to_vec()),
        FlagOp::Add if keywords.is_empty() => (rec.flags.union(flags), rec.keywords.clone()),
        FlagOp::Add => {
            let mut k = rec.keywords.clone();
            k.extend(keywords.iter().cloned());
            (rec.flags.union(flags), split_keywords(&join_keywords(&k)))
        }
        FlagOp::Remove => {
            let k: Vec<String> = rec
                .keywords
                .iter()
                .filter(|x| !keywords.iter().any(|y| y.eq_ignore_ascii_case(x)))
                .cloned()
                .collect();
            (rec.flags.minus(flags), k)
        }
    };
    let same_keywords = new_keywords.len() == rec.keywords.len()
        && new_keywords
            .iter()
            .all(|k| rec.keywords.iter().any(|o| o.eq_ignore_ascii_case(k)));
    if new_flags == rec.flags && same_keywords {
        None
    } else {
        Some((new_flags, new_keywords))
    }
}

fn store_flags_in(
    tx: &mut Tx<'_>,
    mailbox: MailboxId,
    uids: &[Uid],
    op: FlagOp,
    flags: Flags,
    keywords: &[String],
    unchanged_since: Option<ModSeq>,
) -> Result<FlagUpdate> {
    let mut mb = mailbox::require(tx.conn, mailbox)?;
    // One MODSEQ for the whole operation (RFC 7162 §3.1.1 allows messages to share one).
    let modseq = mb.highestmodseq + 1;
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let replace_keywords = split_keywords(&join_keywords(keywords));
    let mut out = FlagUpdate::default();
    let mut select = tx
        .conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS_NO_JOIN} FROM messages m \
             WHERE m.mailbox_id = ?1 AND m.uid BETWEEN ?2 AND ?3 ORDER BY m.uid"
        ))
        .map_err(db_err)?;
    let mut update = tx
        .conn
        .prepare_cached(
            "UPDATE messages SET flags = ?1, keywords = ?2, modseq = ?3 \
             WHERE mailbox_id = ?4 AND uid = ?5",
        )
        .map_err(db_err)?;
    for run in runs(&sorted, SCAN_GAP) {
        let (Some(&lo), Some(&hi)) = (run.first(), run.last()) else {
            continue;
        };
        // Read the run first, then write: SQLite leaves a cursor undefined when its table changes
        // under it.
        let rows = select
            .query_map(params![mailbox, lo, hi], from_row)
            .map_err(db_err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db_err)?;
        let mut wanted = run.iter().peekable();
        for mut rec in rows {
            // Rows between wanted UIDs were read through, not asked for.
            while wanted.next_if(|u| **u < rec.uid).is_some() {}
            if wanted.next_if(|u| **u == rec.uid).is_none() {
                continue;
            }
            if let Some(since) = unchanged_since
                && rec.modseq > since
            {
                out.modified.push(rec.uid);
                continue;
            }
            let Some((new_flags, new_keywords)) =
                new_flags(op, &rec, flags, keywords, &replace_keywords)
            else {
                continue;
            };
            update
                .execute(params![
                    new_flags.0,
                    join_keywords(&new_keywords),
                    modseq as i64,
                    mailbox,
                    rec.uid
                ])
                .map_err(db_err)?;
            rec.flags = new_flags;
            rec.keywords = new_keywords;
            rec.modseq = modseq;
            out.updated.push(rec);
        }
    }
    drop((select, update));
    if !out.updated.is_empty() {
        mb.highestmodseq = modseq;
        save_mailbox(tx.conn, &mb)?;
        tx.changes.push(Change {
            account_id: mb.account_id,
            mailbox_id: mailbox,
            modseq,
            kind: ChangeKind::Flags(out.updated.iter().map(|r| r.uid).collect()),
        });
    }
    Ok(out)
}

/// Raw bytes of `ids`, in order, in one read transaction (one lock and snapshot for all).
fn read_blobs(conn: &Connection, blobs: &BlobDir, ids: &[BlobId]) -> Result<Vec<Vec<u8>>> {
    let tx = conn.unchecked_transaction().map_err(db_err)?;
    let mut st = tx
        .prepare_cached("SELECT data FROM blobs WHERE hash = ?1")
        .map_err(db_err)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let data: Option<Vec<u8>> = st
            .query_row([&id.0[..]], |r| r.get(0))
            .optional()
            .map_err(db_err)?
            .ok_or_else(|| StoreError::NotFound(format!("{id:?}")))?;
        out.push(match data {
            Some(d) => d,
            None => blobs.read(id, None)?,
        });
    }
    Ok(out)
}

/// A range of each blob of `reads`, in order, in one read transaction. Inline blobs are cut in
/// SQL (`substr` counts bytes on a BLOB, from 1), so only the range leaves the database.
fn read_blob_ranges(
    conn: &Connection,
    blobs: &BlobDir,
    reads: &[(BlobId, std::ops::Range<u64>)],
) -> Result<Vec<Vec<u8>>> {
    let tx = conn.unchecked_transaction().map_err(db_err)?;
    let mut st = tx
        .prepare_cached(
            "SELECT CASE WHEN data IS NULL THEN NULL ELSE substr(data, ?2, ?3) END, \
             data IS NULL FROM blobs WHERE hash = ?1",
        )
        .map_err(db_err)?;
    let mut out = Vec::with_capacity(reads.len());
    for (id, range) in reads {
        let start = range.start.min(i64::MAX as u64 - 1);
        let len = range.end.saturating_sub(range.start).min(i64::MAX as u64);
        let (data, in_file): (Option<Vec<u8>>, bool) = st
            .query_row(params![&id.0[..], start as i64 + 1, len as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(db_err)?
            .ok_or_else(|| StoreError::NotFound(format!("{id:?}")))?;
        out.push(match (data, in_file) {
            (_, true) => blobs.read(id, Some(range.clone()))?,
            (Some(d), false) => d,
            (None, false) => Vec::new(),
        });
    }
    Ok(out)
}

/// Parsed analyses of `ids`, in order, in one read transaction.
fn read_analyses(conn: &Connection, ids: &[BlobId]) -> Result<Vec<Analysis>> {
    let tx = conn.unchecked_transaction().map_err(db_err)?;
    let mut st = tx
        .prepare_cached("SELECT analysis FROM blobs WHERE hash = ?1")
        .map_err(db_err)?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let json: String = st
            .query_row([&id.0[..]], |r| r.get(0))
            .optional()
            .map_err(db_err)?
            .ok_or_else(|| StoreError::NotFound(format!("{id:?}")))?;
        out.push(
            serde_json::from_str(&json)
                .map_err(|e| StoreError::Backend(format!("cached analysis: {e}")))?,
        );
    }
    Ok(out)
}

pub(crate) fn check_integrity(conn: &Connection, blobs: &BlobDir) -> Result<IntegrityReport> {
    let mut report = IntegrityReport::default();
    let check: String =
        query_row(conn, "PRAGMA main.integrity_check", [], |r| r.get(0)).map_err(db_err)?;
    if check != "ok" {
        report
            .problems
            .push(format!("sqlite integrity_check: {check}"));
    }
    report.messages = query_row(conn, "SELECT COUNT(*) FROM messages", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(db_err)? as u64;
    report.blobs = query_row(conn, "SELECT COUNT(*) FROM blobs", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(db_err)? as u64;
    let mut push_rows = |sql: &str, what: &str| -> Result<()> {
        let mut st = conn.prepare(sql).map_err(db_err)?;
        let rows = st
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(db_err)?;
        for row in rows {
            report
                .problems
                .push(format!("{what}: {}", row.map_err(db_err)?));
        }
        Ok(())
    };
    push_rows(
        "SELECT hex(b.hash) || ' refcount ' || b.refcount || ' but ' || \
           ((SELECT COUNT(*) FROM messages m WHERE m.blob_id = b.id) + (SELECT COUNT(*) FROM queue q WHERE q.blob_id = b.id)) \
           || ' references' FROM blobs b WHERE b.refcount != \
           (SELECT COUNT(*) FROM messages m WHERE m.blob_id = b.id) + (SELECT COUNT(*) FROM queue q WHERE q.blob_id = b.id)",
        "blob reference count",
    )?;
    push_rows(
        "SELECT 'mailbox ' || m.mailbox_id || ' uid ' || m.uid FROM messages m LEFT JOIN blobs b ON b.id = m.blob_id WHERE b.id IS NULL",
        "message without blob",
    )?;
    push_rows(
        "SELECT 'mailbox ' || mb.id || ' uidnext ' || mb.uidnext || ' <= max uid ' || MAX(m.uid) FROM mailboxes mb \
         JOIN messages m ON m.mailbox_id = mb.id GROUP BY mb.id HAVING MAX(m.uid) >= mb.uidnext",
        "uidnext",
    )?;
    push_rows(
        "SELECT 'account ' || a.id || ' used ' || a.used_bytes || '/' || a.used_messages || ' actual ' || \
         COALESCE(SUM(m.size), 0) || '/' || COUNT(m.uid) FROM accounts a LEFT JOIN mailboxes mb ON mb.account_id = a.id \
         LEFT JOIN messages m ON m.mailbox_id = mb.id GROUP BY a.id \
         HAVING a.used_bytes != COALESCE(SUM(m.size), 0) OR a.used_messages != COUNT(m.uid)",
        "quota usage",
    )?;
    // Every file blob must have its file, with the right size.
    let files: Vec<(Vec<u8>, i64)> = {
        let mut st = conn
            .prepare("SELECT hash, size FROM blobs WHERE data IS NULL")
            .map_err(db_err)?;
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(db_err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(db_err)?
    };
    let mut known = std::collections::HashSet::new();
    for (hash, size) in files {
        if hash.len() != 32 {
            report.problems.push("blob with a malformed hash".into());
            continue;
        }
        let mut id = [0u8; 32];
        id.copy_from_slice(&hash);
        let id = BlobId(id);
        known.insert(id);
        match std::fs::metadata(blobs.path_of(&id)) {
            Ok(m) if m.len() == size as u64 => {}
            Ok(m) => report.problems.push(format!(
                "blob file {} has {} bytes, expected {size}",
                id.to_hex(),
                m.len()
            )),
            Err(_) => report
                .problems
                .push(format!("blob file {} is missing", id.to_hex())),
        }
    }
    report.orphan_files = blobs
        .list()?
        .into_iter()
        .filter(|id| !known.contains(id))
        .count() as u64;
    Ok(report)
}

#[async_trait]
impl MailStore for Sqlite {
    async fn mailbox_create(
        &self,
        account: AccountId,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<MailboxRecord> {
        mailbox::create(self, account, name, special_use).await
    }
    async fn mailbox_get(&self, account: AccountId, name: &str) -> Result<Option<MailboxRecord>> {
        mailbox::get(self, account, name).await
    }
    async fn mailbox_get_by_id(&self, id: MailboxId) -> Result<Option<MailboxRecord>> {
        self.0.read(move |c, _| mailbox::get_by_id(c, id)).await
    }
    async fn mailbox_list(&self, account: AccountId) -> Result<Vec<MailboxRecord>> {
        mailbox::list(self, account).await
    }
    async fn mailbox_rename(&self, account: AccountId, from: &str, to: &str) -> Result<()> {
        mailbox::rename(self, account, from, to).await
    }
    async fn mailbox_delete(&self, account: AccountId, name: &str) -> Result<()> {
        mailbox::delete(self, account, name).await
    }
    async fn mailbox_set_special_use(
        &self,
        id: MailboxId,
        special_use: Option<SpecialUse>,
    ) -> Result<()> {
        mailbox::set_special_use(self, id, special_use).await
    }
    async fn mailbox_status(&self, id: MailboxId) -> Result<MailboxStatus> {
        self.0.read(move |c, _| mailbox::status(c, id)).await
    }
    async fn claim_recent(&self, id: MailboxId) -> Result<Option<RangeInclusive<Uid>>> {
        mailbox::claim_recent(self, id).await
    }
    async fn subscribe(&self, account: AccountId, name: &str) -> Result<()> {
        mailbox::subscription(self, account, name, true).await
    }
    async fn unsubscribe(&self, account: AccountId, name: &str) -> Result<()> {
        mailbox::subscription(self, account, name, false).await
    }
    async fn subscriptions(&self, account: AccountId) -> Result<Vec<String>> {
        mailbox::subscriptions(self, account).await
    }

    fn mime_limits(&self) -> message::Limits {
        self.0.mime_limits
    }

    async fn commit(&self, batch: WriteBatch) -> Result<BatchResult> {
        if batch.appends.is_empty() && batch.enqueue.is_empty() {
            return Ok(BatchResult::default());
        }
        // Hashing, MIME analysis and large-blob writes happen here, in parallel across callers;
        // only the short SQL part goes through the single writer. A small batch whose blobs all
        // live in the database and come analysed (SMTP deliveries) is prepared in place: a
        // thread hop would cost more than hashing a few KiB.
        let store = self.0.clone();
        let small = batch
            .appends
            .iter()
            .map(|a| &a.raw)
            .chain(batch.enqueue.iter().map(|q| &q.raw))
            .try_fold(0usize, |total, r| {
                (r.analysis().is_some() && store.blobs.is_inline(r.len()))
                    .then_some(total + r.len())
            })
            .is_some_and(|total| total <= INLINE_PREPARE_MAX_BYTES);
        let (prepared, batch) = if small {
            (prepare(&store, &batch)?, batch)
        } else {
            tokio::task::spawn_blocking(move || prepare(&store, &batch).map(|p| (p, batch)))
                .await
                .map_err(|e| StoreError::Backend(format!("prepare task failed: {e}")))??
        };
        self.0
            .writer
            .write(move |tx| apply(tx, prepared, batch))
            .await
    }

    async fn messages(
        &self,
        mailbox: MailboxId,
        uids: RangeInclusive<Uid>,
    ) -> Result<Vec<MessageRecord>> {
        let (lo, hi) = (*uids.start(), *uids.end());
        self.0
            .read(move |c, _| {
                let mut st = c
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM messages m JOIN blobs b ON b.id = m.blob_id \
                         WHERE m.mailbox_id = ?1 AND m.uid BETWEEN ?2 AND ?3 ORDER BY m.uid"
                    ))
                    .map_err(db_err)?;
                let rows = st
                    .query_map(params![mailbox, lo, hi], from_row)
                    .map_err(db_err)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
            })
            .await
    }

    async fn messages_changed_since(
        &self,
        mailbox: MailboxId,
        modseq: ModSeq,
    ) -> Result<Vec<MessageRecord>> {
        self.0
            .read(move |c, _| {
                let mut st = c
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM messages m JOIN blobs b ON b.id = m.blob_id \
                         WHERE m.mailbox_id = ?1 AND m.modseq > ?2 ORDER BY m.uid"
                    ))
                    .map_err(db_err)?;
                let rows = st
                    .query_map(params![mailbox, modseq as i64], from_row)
                    .map_err(db_err)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
            })
            .await
    }

    async fn analysis(&self, blob: BlobId) -> Result<Arc<Analysis>> {
        self.analyses(&[blob])
            .await?
            .pop()
            .ok_or_else(|| StoreError::NotFound(format!("{blob:?}")))
    }

    async fn blob_read(
        &self,
        blob: BlobId,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<Vec<u8>> {
        let read = match range {
            None => self.blobs_read(&[blob]).await?,
            Some(r) => self.blob_ranges_read(&[(blob, r)]).await?,
        };
        read.into_iter()
            .next()
            .ok_or_else(|| StoreError::NotFound(format!("{blob:?}")))
    }

    async fn blobs_read(&self, ids: &[BlobId]) -> Result<Vec<Vec<u8>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = ids.to_vec();
        self.0
            .read(move |c, blobs| read_blobs(c, blobs, &ids))
            .await
    }

    async fn blob_ranges_read(
        &self,
        reads: &[(BlobId, std::ops::Range<u64>)],
    ) -> Result<Vec<Vec<u8>>> {
        if reads.is_empty() {
            return Ok(Vec::new());
        }
        let reads = reads.to_vec();
        self.0
            .read(move |c, blobs| read_blob_ranges(c, blobs, &reads))
            .await
    }

    async fn analyses(&self, ids: &[BlobId]) -> Result<Vec<Arc<Analysis>>> {
        let mut out: Vec<Option<Arc<Analysis>>> =
            ids.iter().map(|id| self.0.analysis_cache.get(id)).collect();
        let missing: Vec<BlobId> = ids
            .iter()
            .zip(&out)
            .filter(|(_, a)| a.is_none())
            .map(|(id, _)| *id)
            .collect();
        if !missing.is_empty() {
            let store = self.0.clone();
            let loaded = self
                .0
                .read(move |c, _| {
                    let parsed = read_analyses(c, &missing)?;
                    Ok(missing
                        .into_iter()
                        .zip(parsed)
                        .map(|(id, a)| {
                            let a = Arc::new(a);
                            store.analysis_cache.put(id, a.clone());
                            (id, a)
                        })
                        .collect::<HashMap<BlobId, Arc<Analysis>>>())
                })
                .await?;
            for (slot, id) in out.iter_mut().zip(ids) {
                if slot.is_none() {
                    *slot = loaded.get(id).cloned();
                }
            }
        }
        out.into_iter()
            .zip(ids)
            .map(|(a, id)| a.ok_or_else(|| StoreError::NotFound(format!("{id:?}"))))
            .collect()
    }

    async fn store_flags(
        &self,
        mailbox: MailboxId,
        uids: &[Uid],
        op: FlagOp,
        flags: Flags,
        keywords: &[String],
        unchanged_since: Option<ModSeq>,
    ) -> Result<FlagUpdate> {
        let uids = uids.to_vec();
        let keywords = keywords.to_vec();
        self.0
            .writer
            .write(move |tx| {
                store_flags_in(tx, mailbox, &uids, op, flags, &keywords, unchanged_since)
            })
            .await
    }

    async fn copy(&self, from: MailboxId, uids: &[Uid], to: MailboxId) -> Result<CopyResult> {
        let uids = uids.to_vec();
        self.0
            .writer
            .write(move |tx| copy_in(tx, from, &uids, to))
            .await
    }

    async fn move_messages(
        &self,
        from: MailboxId,
        uids: &[Uid],
        to: MailboxId,
    ) -> Result<(CopyResult, Expunged)> {
        let uids = uids.to_vec();
        self.0
            .writer
            .write(move |tx| {
                let copied = copy_in(tx, from, &uids, to)?;
                let moved: Vec<Uid> = copied.mapping.iter().map(|m| m.0).collect();
                let expunged = expunge_in(tx, from, ExpungeFilter::Uids(moved))?;
                Ok((copied, expunged))
            })
            .await
    }

    async fn expunge(&self, mailbox: MailboxId, filter: ExpungeFilter) -> Result<Expunged> {
        self.0
            .writer
            .write(move |tx| expunge_in(tx, mailbox, filter))
            .await
    }

    async fn expunged_since(&self, mailbox: MailboxId, modseq: ModSeq) -> Result<Vec<Uid>> {
        self.0
            .read(move |c, _| {
                let mut st = c
                    .prepare_cached("SELECT uid FROM expunged WHERE mailbox_id = ?1 AND modseq > ?2 ORDER BY uid")
                    .map_err(db_err)?;
                let rows = st.query_map(params![mailbox, modseq as i64], |r| r.get(0)).map_err(db_err)?;
                rows.collect::<rusqlite::Result<Vec<Uid>>>().map_err(db_err)
            })
            .await
    }

    async fn search_text(
        &self,
        mailbox: MailboxId,
        field: TextField,
        needle: &str,
    ) -> Result<Option<Vec<Uid>>> {
        if needle.chars().count() < MIN_INDEXED_NEEDLE {
            return Ok(None);
        }
        let needle = needle.to_string();
        let store = self.0.clone();
        self.0
            .read(move |c, blobs| {
                super::fts::search(
                    c,
                    blobs,
                    &store.pending_text,
                    &store.mime_limits,
                    mailbox,
                    field,
                    &needle,
                )
                .map(Some)
            })
            .await
    }

    fn changes(&self) -> broadcast::Receiver<Change> {
        self.0.feed.subscribe()
    }
}

/// Releases the queue's single reference on a blob.
pub(crate) fn release_blob_pub(tx: &mut Tx<'_>, blob_row: i64) -> Result<()> {
    release_blob(tx, blob_row, 1)
}
