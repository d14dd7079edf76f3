//! Mailboxes: hierarchy with `/`, UIDVALIDITY, special-use, subscriptions.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::messages::release_messages;
use super::writer::Tx;
use super::{Sqlite, db_err, exec, query_row};
use crate::*;

/// Longest mailbox name accepted, in bytes (Dovecot uses a similar bound).
pub const MAX_MAILBOX_NAME: usize = 1024;
/// Deepest hierarchy accepted.
pub const MAX_MAILBOX_DEPTH: usize = 32;

const COLUMNS: &str =
    "id, account_id, name, uidvalidity, uidnext, highestmodseq, special_use, recent_uid";

fn from_row(r: &Row<'_>) -> rusqlite::Result<MailboxRecord> {
    let special: Option<String> = r.get(6)?;
    Ok(MailboxRecord {
        id: r.get(0)?,
        account_id: r.get(1)?,
        name: r.get(2)?,
        uidvalidity: r.get::<_, i64>(3)? as u32,
        uidnext: r.get::<_, i64>(4)? as u32,
        highestmodseq: r.get::<_, i64>(5)? as u64,
        special_use: special.as_deref().and_then(SpecialUse::parse),
        recent_uid: r.get::<_, i64>(7)? as u32,
    })
}

/// Validates a mailbox name and spells INBOX canonically (RFC 9051 §5.1: INBOX is case-insensitive).
pub fn normalize_name(name: &str) -> Result<String> {
    let invalid = |why: &str| StoreError::Invalid(format!("mailbox name {name:?}: {why}"));
    if name.is_empty() {
        return Err(invalid("empty"));
    }
    if name.len() > MAX_MAILBOX_NAME {
        return Err(invalid("too long"));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(invalid("control character"));
    }
    let parts: Vec<&str> = name.split(MAILBOX_DELIMITER).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(invalid("empty hierarchy level"));
    }
    if parts.len() > MAX_MAILBOX_DEPTH {
        return Err(invalid("hierarchy too deep"));
    }
    if parts[0].eq_ignore_ascii_case(INBOX) {
        let rest = &name[parts[0].len()..];
        return Ok(format!("{INBOX}{rest}"));
    }
    Ok(name.to_string())
}

fn next_uidvalidity(conn: &Connection) -> Result<u32> {
    // Never goes back, even if the clock does; starts from the creation time like Dovecot.
    let v: i64 = query_row(
        conn,
        "UPDATE meta SET value = max(value + 1, CAST(strftime('%s','now') AS INTEGER)) \
             WHERE key = 'uidvalidity_next' RETURNING value",
        [],
        |r| r.get(0),
    )
    .map_err(db_err)?;
    u32::try_from(v).map_err(|_| StoreError::Backend("UIDVALIDITY counter exhausted".into()))
}

pub(crate) fn get_by_name(
    conn: &Connection,
    account: AccountId,
    name: &str,
) -> Result<Option<MailboxRecord>> {
    query_row(
        conn,
        &format!("SELECT {COLUMNS} FROM mailboxes WHERE account_id = ?1 AND name = ?2"),
        params![account, name],
        from_row,
    )
    .optional()
    .map_err(db_err)
}

pub(crate) fn get_by_id(conn: &Connection, id: MailboxId) -> Result<Option<MailboxRecord>> {
    query_row(
        conn,
        &format!("SELECT {COLUMNS} FROM mailboxes WHERE id = ?1"),
        [id],
        from_row,
    )
    .optional()
    .map_err(db_err)
}

pub(crate) fn require(conn: &Connection, id: MailboxId) -> Result<MailboxRecord> {
    get_by_id(conn, id)?.ok_or_else(|| StoreError::NotFound(format!("mailbox {id}")))
}

/// Creates `name` (normalised) and any missing parents; returns the new mailbox.
pub(crate) fn create_mailbox_in(
    tx: &mut Tx<'_>,
    account: AccountId,
    name: &str,
    special: Option<SpecialUse>,
) -> Result<MailboxRecord> {
    let name = normalize_name(name)?;
    if get_by_name(tx.conn, account, &name)?.is_some() {
        return Err(StoreError::AlreadyExists(format!("mailbox {name}")));
    }
    // One mailbox per special use and account (RFC 6154 §3 lets CREATE refuse a use it cannot
    // assign; JMAP roles, RFC 8621 §2, are unique the same way). Checked in the write
    // transaction, so two concurrent CREATEs cannot both get it.
    if let Some(su) = special {
        let taken: bool = query_row(
            tx.conn,
            "SELECT EXISTS(SELECT 1 FROM mailboxes WHERE account_id = ?1 AND special_use = ?2)",
            params![account, su.as_str()],
            |r| r.get(0),
        )
        .map_err(db_err)?;
        if taken {
            return Err(StoreError::SpecialUseTaken(su.as_str().to_string()));
        }
    }
    // RFC 9051 §6.3.4: create the superior hierarchical names needed for the new name.
    let mut prefix = String::new();
    let parts: Vec<&str> = name.split(MAILBOX_DELIMITER).collect();
    for part in &parts[..parts.len() - 1] {
        if !prefix.is_empty() {
            prefix.push(MAILBOX_DELIMITER);
        }
        prefix.push_str(part);
        if get_by_name(tx.conn, account, &prefix)?.is_none() {
            insert_mailbox(tx, account, &prefix, None)?;
        }
    }
    insert_mailbox(tx, account, &name, special)
}

fn insert_mailbox(
    tx: &mut Tx<'_>,
    account: AccountId,
    name: &str,
    special: Option<SpecialUse>,
) -> Result<MailboxRecord> {
    let uidvalidity = next_uidvalidity(tx.conn)?;
    exec(
        tx.conn,
        "INSERT INTO mailboxes(account_id, name, uidvalidity, special_use) VALUES (?1, ?2, ?3, ?4)",
        params![account, name, uidvalidity, special.map(|s| s.as_str())],
    )
    .map_err(db_err)?;
    let id = tx.conn.last_insert_rowid();
    tx.changes.push(Change {
        account_id: account,
        mailbox_id: id,
        modseq: 1,
        kind: ChangeKind::MailboxCreated,
    });
    require(tx.conn, id)
}

/// Deletes a mailbox row and everything in it.
pub(crate) fn delete_mailbox_in(tx: &mut Tx<'_>, id: MailboxId) -> Result<()> {
    let mb = require(tx.conn, id)?;
    let uids: Vec<Uid> = {
        let mut st = tx
            .conn
            .prepare("SELECT uid FROM messages WHERE mailbox_id = ?1")
            .map_err(db_err)?;
        st.query_map([id], |r| r.get(0))
            .map_err(db_err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(db_err)?
    };
    release_messages(tx, &mb, &uids)?;
    exec(tx.conn, "DELETE FROM expunged WHERE mailbox_id = ?1", [id]).map_err(db_err)?;
    exec(tx.conn, "DELETE FROM mailboxes WHERE id = ?1", [id]).map_err(db_err)?;
    tx.changes.push(Change {
        account_id: mb.account_id,
        mailbox_id: id,
        modseq: mb.highestmodseq,
        kind: ChangeKind::MailboxDeleted,
    });
    Ok(())
}

fn rename_in(tx: &mut Tx<'_>, account: AccountId, from: &str, to: &str) -> Result<()> {
    let from = normalize_name(from)?;
    let to = normalize_name(to)?;
    let src = get_by_name(tx.conn, account, &from)?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox {from}")))?;
    if get_by_name(tx.conn, account, &to)?.is_some() {
        return Err(StoreError::AlreadyExists(format!("mailbox {to}")));
    }
    let child_prefix = format!("{from}{MAILBOX_DELIMITER}");
    if to.starts_with(&child_prefix) {
        return Err(StoreError::Invalid(format!(
            "cannot rename {from} into its own child {to}"
        )));
    }
    if from == INBOX {
        // RFC 9051 §6.3.6: renaming INBOX moves its messages to a new mailbox and leaves INBOX empty
        // (its children are not renamed). The new mailbox gets a fresh UIDVALIDITY, so the UIDs can stay.
        let dest = create_mailbox_in(tx, account, &to, None)?;
        let modseq = src.highestmodseq + 1;
        let moved: Vec<Uid> = {
            let mut st = tx
                .conn
                .prepare("SELECT uid FROM messages WHERE mailbox_id = ?1 ORDER BY uid")
                .map_err(db_err)?;
            st.query_map([src.id], |r| r.get(0))
                .map_err(db_err)?
                .collect::<rusqlite::Result<_>>()
                .map_err(db_err)?
        };
        exec(
            tx.conn,
            "UPDATE messages SET mailbox_id = ?1 WHERE mailbox_id = ?2",
            params![dest.id, src.id],
        )
        .map_err(db_err)?;
        exec(
            tx.conn,
            // The moved messages keep the recent state they had (same UIDs, same mark).
            "UPDATE mailboxes SET uidnext = ?1, highestmodseq = ?2, recent_uid = ?3 WHERE id = ?4",
            params![
                src.uidnext,
                src.highestmodseq as i64,
                src.recent_uid,
                dest.id
            ],
        )
        .map_err(db_err)?;
        for uid in &moved {
            exec(
                tx.conn,
                "INSERT OR REPLACE INTO expunged(mailbox_id, uid, modseq) VALUES (?1, ?2, ?3)",
                params![src.id, uid, modseq as i64],
            )
            .map_err(db_err)?;
        }
        exec(
            tx.conn,
            "UPDATE mailboxes SET highestmodseq = ?1 WHERE id = ?2",
            params![modseq as i64, src.id],
        )
        .map_err(db_err)?;
        if !moved.is_empty() {
            tx.changes.push(Change {
                account_id: account,
                mailbox_id: src.id,
                modseq,
                kind: ChangeKind::Expunged(moved),
            });
        }
        return Ok(());
    }
    // The mailbox and its children keep their ids, hence their UIDVALIDITY and UIDs.
    let children: Vec<(MailboxId, String)> = {
        let mut st = tx
            .conn
            .prepare(
                "SELECT id, name FROM mailboxes WHERE account_id = ?1 AND substr(name, 1, ?2) = ?3",
            )
            .map_err(db_err)?;
        st.query_map(
            params![account, child_prefix.len() as i64, child_prefix],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(db_err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(db_err)?
    };
    let mut renames = vec![(src.id, to.clone())];
    for (id, name) in children {
        renames.push((id, format!("{to}{}", &name[from.len()..])));
    }
    for (_, new_name) in &renames {
        normalize_name(new_name)?;
        if get_by_name(tx.conn, account, new_name)?.is_some() {
            return Err(StoreError::AlreadyExists(format!("mailbox {new_name}")));
        }
    }
    for (id, new_name) in &renames {
        exec(
            tx.conn,
            "UPDATE mailboxes SET name = ?1 WHERE id = ?2",
            params![new_name, id],
        )
        .map_err(db_err)?;
        tx.changes.push(Change {
            account_id: account,
            mailbox_id: *id,
            modseq: 0,
            kind: ChangeKind::MailboxRenamed,
        });
    }
    // Superiors of the new name that do not exist yet are created, as for CREATE.
    let parts: Vec<&str> = to.split(MAILBOX_DELIMITER).collect();
    let mut prefix = String::new();
    for part in &parts[..parts.len() - 1] {
        if !prefix.is_empty() {
            prefix.push(MAILBOX_DELIMITER);
        }
        prefix.push_str(part);
        if get_by_name(tx.conn, account, &prefix)?.is_none() {
            insert_mailbox(tx, account, &prefix, None)?;
        }
    }
    Ok(())
}

pub(crate) fn status(conn: &Connection, id: MailboxId) -> Result<MailboxStatus> {
    let mb = require(conn, id)?;
    let (messages, unseen, deleted, size, recent): (i64, i64, i64, i64, i64) = query_row(
        conn,
        "SELECT COUNT(*), COALESCE(SUM((flags & ?2) = 0), 0), COALESCE(SUM((flags & ?3) != 0), 0), \
             COALESCE(SUM(size), 0), COALESCE(SUM(uid > ?4), 0) FROM messages WHERE mailbox_id = ?1",
        params![id, Flags::SEEN.0, Flags::DELETED.0, mb.recent_uid],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )
    .map_err(db_err)?;
    Ok(MailboxStatus {
        messages: messages as u32,
        recent: recent as u32,
        unseen: unseen as u32,
        deleted: deleted as u32,
        size: size as u64,
        uidnext: mb.uidnext,
        uidvalidity: mb.uidvalidity,
        highestmodseq: mb.highestmodseq,
    })
}

/// The mark and the highest UID in the mailbox: what a claim would take.
fn recent_bounds(conn: &Connection, id: MailboxId) -> Result<(Uid, Option<Uid>)> {
    query_row(
        conn,
        "SELECT recent_uid, (SELECT MAX(uid) FROM messages WHERE mailbox_id = ?1) \
             FROM mailboxes WHERE id = ?1",
        [id],
        |r| {
            Ok((
                r.get::<_, i64>(0)? as Uid,
                r.get::<_, Option<i64>>(1)?.map(|u| u as Uid),
            ))
        },
    )
    .optional()
    .map_err(db_err)?
    .ok_or_else(|| StoreError::NotFound(format!("mailbox {id}")))
}

fn unclaimed(bounds: (Uid, Option<Uid>)) -> Option<std::ops::RangeInclusive<Uid>> {
    match bounds {
        (mark, Some(max)) if max > mark => Some(mark + 1..=max),
        _ => None,
    }
}

/// Moves the mailbox's recent mark to its highest UID and returns the UIDs passed over. Read first:
/// a SELECT with nothing new costs no write (and no fsync); the claim itself is decided again in
/// the writer's transaction, so two sessions never get the same UID.
pub(crate) async fn claim_recent(
    store: &Sqlite,
    id: MailboxId,
) -> Result<Option<std::ops::RangeInclusive<Uid>>> {
    if unclaimed(store.0.read(move |c, _| recent_bounds(c, id)).await?).is_none() {
        return Ok(None);
    }
    store
        .0
        .writer
        .write(move |tx| {
            let claimed = unclaimed(recent_bounds(tx.conn, id)?);
            if let Some(r) = &claimed {
                exec(
                    tx.conn,
                    "UPDATE mailboxes SET recent_uid = ?1 WHERE id = ?2",
                    params![r.end(), id],
                )
                .map_err(db_err)?;
            }
            Ok(claimed)
        })
        .await
}

pub(crate) async fn create(
    store: &Sqlite,
    account: AccountId,
    name: &str,
    special: Option<SpecialUse>,
) -> Result<MailboxRecord> {
    let name = name.to_string();
    store
        .0
        .writer
        .write(move |tx| create_mailbox_in(tx, account, &name, special))
        .await
}

pub(crate) async fn get(
    store: &Sqlite,
    account: AccountId,
    name: &str,
) -> Result<Option<MailboxRecord>> {
    let name = normalize_name(name)?;
    store
        .0
        .read(move |c, _| get_by_name(c, account, &name))
        .await
}

pub(crate) async fn list(store: &Sqlite, account: AccountId) -> Result<Vec<MailboxRecord>> {
    store
        .0
        .read(move |c, _| {
            let mut st = c
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM mailboxes WHERE account_id = ?1 ORDER BY name"
                ))
                .map_err(db_err)?;
            let rows = st.query_map([account], from_row).map_err(db_err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
        })
        .await
}

pub(crate) async fn rename(store: &Sqlite, account: AccountId, from: &str, to: &str) -> Result<()> {
    let (from, to) = (from.to_string(), to.to_string());
    store
        .0
        .writer
        .write(move |tx| rename_in(tx, account, &from, &to))
        .await
}

pub(crate) async fn delete(store: &Sqlite, account: AccountId, name: &str) -> Result<()> {
    let name = normalize_name(name)?;
    if name == INBOX {
        return Err(StoreError::Invalid("INBOX cannot be deleted".into()));
    }
    store
        .0
        .writer
        .write(move |tx| {
            let mb = get_by_name(tx.conn, account, &name)?
                .ok_or_else(|| StoreError::NotFound(format!("mailbox {name}")))?;
            delete_mailbox_in(tx, mb.id)
        })
        .await
}

pub(crate) async fn set_special_use(
    store: &Sqlite,
    id: MailboxId,
    special: Option<SpecialUse>,
) -> Result<()> {
    store
        .0
        .writer
        .write(move |tx| {
            let n = exec(
                tx.conn,
                "UPDATE mailboxes SET special_use = ?1 WHERE id = ?2",
                params![special.map(|s| s.as_str()), id],
            )
            .map_err(db_err)?;
            if n == 0 {
                Err(StoreError::NotFound(format!("mailbox {id}")))
            } else {
                Ok(())
            }
        })
        .await
}

pub(crate) async fn subscription(
    store: &Sqlite,
    account: AccountId,
    name: &str,
    on: bool,
) -> Result<()> {
    let name = normalize_name(name)?;
    store
        .0
        .writer
        .write(move |tx| {
            let sql = if on {
                "INSERT OR IGNORE INTO subscriptions(account_id, name) VALUES (?1, ?2)"
            } else {
                "DELETE FROM subscriptions WHERE account_id = ?1 AND name = ?2"
            };
            exec(tx.conn, sql, params![account, name]).map_err(db_err)?;
            Ok(())
        })
        .await
}

pub(crate) async fn subscriptions(store: &Sqlite, account: AccountId) -> Result<Vec<String>> {
    store
        .0
        .read(move |c, _| {
            let mut st = c
                .prepare("SELECT name FROM subscriptions WHERE account_id = ?1 ORDER BY name")
                .map_err(db_err)?;
            let rows = st.query_map([account], |r| r.get(0)).map_err(db_err)?;
            rows.collect::<rusqlite::Result<Vec<String>>>()
                .map_err(db_err)
        })
        .await
}
