//! Versioned schema migrations, recorded in `PRAGMA user_version`.
//!
//! Each migration runs in its own transaction and is never edited once released: an upgrade applies
//! the missing ones in order. A database from a newer Facteur is refused, never touched.

use rusqlite::Connection;

use crate::{Result, StoreError};

/// Migration N (1-based) brings the schema from version N-1 to N.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: directory, mailboxes, messages, content-addressed blobs, expunge records, full-text index.
    r#"
    CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
    -- UIDVALIDITY values come from one counter that never goes back, so a mailbox created again after
    -- a delete or a rename never reuses an old value (RFC 9051 §2.3.1.1).
    INSERT INTO meta(key, value) VALUES ('uidvalidity_next', CAST(strftime('%s','now') AS INTEGER));
    CREATE TABLE domains(
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        catchall TEXT,
        created INTEGER NOT NULL
    );
    CREATE TABLE accounts(
        id INTEGER PRIMARY KEY,
        domain_id INTEGER NOT NULL REFERENCES domains(id),
        local_part TEXT NOT NULL,
        display_name TEXT NOT NULL DEFAULT '',
        password_hash TEXT NOT NULL,
        quota_bytes INTEGER,
        enabled INTEGER NOT NULL DEFAULT 1,
        used_bytes INTEGER NOT NULL DEFAULT 0,
        used_messages INTEGER NOT NULL DEFAULT 0,
        created INTEGER NOT NULL,
        UNIQUE(domain_id, local_part)
    );
    CREATE TABLE aliases(
        id INTEGER PRIMARY KEY,
        domain_id INTEGER NOT NULL REFERENCES domains(id),
        local_part TEXT NOT NULL,
        targets TEXT NOT NULL,
        UNIQUE(domain_id, local_part)
    );
    CREATE TABLE mailboxes(
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        name TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        uidnext INTEGER NOT NULL DEFAULT 1,
        highestmodseq INTEGER NOT NULL DEFAULT 1,
        special_use TEXT,
        UNIQUE(account_id, name)
    );
    CREATE TABLE subscriptions(
        account_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        PRIMARY KEY(account_id, name)
    ) WITHOUT ROWID;
    -- data is NULL when the blob lives in a file of the blobs folder.
    CREATE TABLE blobs(
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        hash BLOB NOT NULL UNIQUE,
        size INTEGER NOT NULL,
        refcount INTEGER NOT NULL,
        data BLOB,
        analysis TEXT NOT NULL
    );
    CREATE TABLE messages(
        mailbox_id INTEGER NOT NULL,
        uid INTEGER NOT NULL,
        modseq INTEGER NOT NULL,
        flags INTEGER NOT NULL,
        keywords TEXT NOT NULL DEFAULT '',
        internal_date INTEGER NOT NULL,
        size INTEGER NOT NULL,
        blob_id INTEGER NOT NULL REFERENCES blobs(id),
        PRIMARY KEY(mailbox_id, uid)
    ) WITHOUT ROWID;
    CREATE INDEX messages_modseq ON messages(mailbox_id, modseq);
    CREATE INDEX messages_blob ON messages(blob_id);
    CREATE TABLE expunged(
        mailbox_id INTEGER NOT NULL,
        uid INTEGER NOT NULL,
        modseq INTEGER NOT NULL,
        PRIMARY KEY(mailbox_id, uid)
    ) WITHOUT ROWID;
    "#,
    // 2: message-count quotas and the outbound queue.
    r#"
    ALTER TABLE accounts ADD COLUMN quota_messages INTEGER;
    CREATE TABLE queue(
        id INTEGER PRIMARY KEY,
        blob_id INTEGER NOT NULL REFERENCES blobs(id),
        sender TEXT NOT NULL,
        recipients TEXT NOT NULL,
        envid TEXT,
        ret TEXT,
        created INTEGER NOT NULL,
        next_attempt INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT
    );
    CREATE INDEX queue_due ON queue(next_attempt);
    "#,
    // 3: DKIM signing keys (PEM text; the mailauth crate parses them).
    r#"
    CREATE TABLE dkim_keys(
        domain TEXT NOT NULL,
        selector TEXT NOT NULL,
        algorithm TEXT NOT NULL,
        private_pem TEXT NOT NULL,
        created INTEGER NOT NULL,
        active INTEGER NOT NULL,
        PRIMARY KEY(domain, selector)
    ) WITHOUT ROWID;
    "#,
    // 4: the highest UID each mailbox has given out as \Recent (RFC 3501 §2.3.2). Mail already
    // there counts as claimed, so an upgrade does not make old messages recent again.
    r#"
    ALTER TABLE mailboxes ADD COLUMN recent_uid INTEGER NOT NULL DEFAULT 0;
    UPDATE mailboxes SET recent_uid = uidnext - 1;
    "#,
    // 5: the SMTP transaction id of each queue entry, so a message keeps one id in the logs from
    // the `250 ... queued as` to its last delivery attempt. NULL for entries queued before.
    r#"
    ALTER TABLE queue ADD COLUMN smtp_id TEXT;
    "#,
    // 6: login bans (kept after they end until purged, so other processes see lifts through `seq`)
    // and the sources each account has logged in from.
    r#"
    INSERT INTO meta(key, value) VALUES ('login_ban_seq', 0);
    CREATE TABLE login_bans(
        id INTEGER PRIMARY KEY,
        source TEXT,
        account TEXT,
        failures INTEGER NOT NULL,
        created INTEGER NOT NULL,
        until INTEGER NOT NULL,
        lifted INTEGER,
        seq INTEGER NOT NULL
    );
    CREATE INDEX login_bans_seq ON login_bans(seq);
    CREATE INDEX login_bans_until ON login_bans(until);
    CREATE TABLE login_sources(
        account TEXT NOT NULL,
        source TEXT NOT NULL,
        last_success INTEGER NOT NULL,
        PRIMARY KEY(account, source)
    ) WITHOUT ROWID;
    "#,
    // 7: DKIM key states. A new key is 'pending' until its DNS record is seen; 'retired' keys no
    // longer sign. Keys that signed before the upgrade go on signing; an inactive key newer than
    // the domain's active ones was waiting for `dkim rotate --finish` (pending), an older one had
    // been retired by it.
    r#"
    ALTER TABLE dkim_keys ADD COLUMN state TEXT NOT NULL DEFAULT 'pending';
    UPDATE dkim_keys SET state = CASE
        WHEN active THEN 'active'
        WHEN created > COALESCE(
            (SELECT MAX(a.created) FROM dkim_keys a WHERE a.domain = dkim_keys.domain AND a.active),
            -1) THEN 'pending'
        ELSE 'retired'
    END;
    ALTER TABLE dkim_keys DROP COLUMN active;
    "#,
    // 8: addresses ("user@domain") and whole domains ("@domain") an account may also send as on
    // submission, besides its own address and its aliases (granted by an admin for shared
    // addresses). Lowercase.
    r#"
    CREATE TABLE send_as(
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        pattern TEXT NOT NULL,
        PRIMARY KEY(account_id, pattern)
    ) WITHOUT ROWID;
    "#,
    // 9: the spam classifier's models. `model` is 0 for the global model, else an account id.
    // Tokens are 64-bit hashes (stored as signed integers); a row is removed when both of its
    // counts reach zero, so untraining leaves nothing behind. `spam_learned` records which
    // messages (by digest) each model counted, and as what, so learning is idempotent and
    // can be taken back.
    r#"
    CREATE TABLE spam_models(
        model INTEGER PRIMARY KEY,
        format INTEGER NOT NULL,
        ham INTEGER NOT NULL DEFAULT 0,
        spam INTEGER NOT NULL DEFAULT 0,
        updated INTEGER NOT NULL
    );
    CREATE TABLE spam_tokens(
        model INTEGER NOT NULL,
        token INTEGER NOT NULL,
        ham INTEGER NOT NULL,
        spam INTEGER NOT NULL,
        PRIMARY KEY(model, token)
    ) WITHOUT ROWID;
    CREATE TABLE spam_learned(
        model INTEGER NOT NULL,
        digest BLOB NOT NULL,
        class INTEGER NOT NULL,
        learned INTEGER NOT NULL,
        PRIMARY KEY(model, digest)
    ) WITHOUT ROWID;
    "#,
    // 10: messages held in quarantine by the inbound checks (the bytes as they would have been
    // delivered; `accounts` and `remote` say where a release delivers them), and the allow and
    // block lists of domains (`scope` = 'd:' + name) and accounts ('a:' + id).
    r#"
    CREATE TABLE quarantine(
        id INTEGER PRIMARY KEY,
        smtp_id TEXT NOT NULL,
        message_id TEXT,
        sender TEXT NOT NULL,
        recipients TEXT NOT NULL,
        accounts TEXT NOT NULL,
        remote TEXT NOT NULL,
        subject TEXT NOT NULL,
        score REAL NOT NULL,
        reasons TEXT NOT NULL,
        raw BLOB NOT NULL,
        created INTEGER NOT NULL,
        expires INTEGER NOT NULL
    );
    CREATE INDEX quarantine_expires ON quarantine(expires);
    CREATE TABLE quarantine_accounts(
        account_id INTEGER NOT NULL,
        quarantine_id INTEGER NOT NULL REFERENCES quarantine(id) ON DELETE CASCADE,
        PRIMARY KEY(account_id, quarantine_id)
    ) WITHOUT ROWID;
    CREATE TABLE sender_lists(
        scope TEXT NOT NULL,
        kind TEXT NOT NULL,
        pattern TEXT NOT NULL,
        created INTEGER NOT NULL,
        PRIMARY KEY(scope, kind, pattern)
    ) WITHOUT ROWID;
    "#,
    // 11: greylisting (RFC 6647). A triplet is the client network (/24 or /64), the sender and
    // the recipient; `passed` is when a retry was accepted (NULL while pending). A network whose
    // triplets passed `whitelist_after` times is whitelisted (`whitelisted` = 1) while it keeps
    // sending; both kinds of record expire after `last_seen`.
    r#"
    CREATE TABLE greylist(
        network TEXT NOT NULL,
        sender TEXT NOT NULL,
        recipient TEXT NOT NULL,
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        passed INTEGER,
        PRIMARY KEY(network, sender, recipient)
    ) WITHOUT ROWID;
    CREATE INDEX greylist_last_seen ON greylist(last_seen);
    CREATE TABLE greylist_networks(
        network TEXT PRIMARY KEY,
        passes INTEGER NOT NULL,
        whitelisted INTEGER NOT NULL DEFAULT 0,
        last_seen INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 12: Sieve scripts (RFC 5228) per owner: 'a:<account id>' or 'd:<domain>'. At most one active
    // script per owner. `compiled` is the compiled form (JSON of sieve-rs's program) made at
    // upload, `compiled_format` the interpreter version that made it (recompiled when it differs).
    // `sieve_seen` keeps vacation (RFC 5230 §4.2) and duplicate (RFC 7352) state per account,
    // `sieve_redirects` counts redirects per account and day (the daily cap).
    r#"
    CREATE TABLE sieve_scripts(
        owner TEXT NOT NULL,
        name TEXT NOT NULL,
        content BLOB NOT NULL,
        compiled BLOB,
        compiled_format TEXT NOT NULL DEFAULT '',
        active INTEGER NOT NULL DEFAULT 0,
        updated INTEGER NOT NULL,
        PRIMARY KEY(owner, name)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX sieve_one_active ON sieve_scripts(owner) WHERE active;
    CREATE TABLE sieve_seen(
        account_id INTEGER NOT NULL,
        key TEXT NOT NULL,
        expires INTEGER NOT NULL,
        PRIMARY KEY(account_id, key)
    ) WITHOUT ROWID;
    CREATE TABLE sieve_redirects(
        account_id INTEGER NOT NULL,
        day INTEGER NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY(account_id, day)
    ) WITHOUT ROWID;
    "#,
];

pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub(crate) fn version(conn: &Connection) -> Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(crate::sqlite::db_err)
}

/// Applies the migrations after the database's version, up to `target`.
pub(crate) fn migrate_to(conn: &mut Connection, target: i64) -> Result<()> {
    let current = version(conn)?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    for v in current..target.min(SCHEMA_VERSION) {
        let sql = MIGRATIONS[v as usize];
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(crate::sqlite::db_err)?;
        // Re-check inside the write lock: another process may have migrated meanwhile.
        let now = version(&tx)?;
        if now > v {
            continue;
        }
        tx.execute_batch(sql).map_err(crate::sqlite::db_err)?;
        tx.pragma_update(None, "user_version", v + 1)
            .map_err(crate::sqlite::db_err)?;
        tx.commit().map_err(crate::sqlite::db_err)?;
        tracing::info!(version = v + 1, "database schema migrated");
    }
    Ok(())
}
