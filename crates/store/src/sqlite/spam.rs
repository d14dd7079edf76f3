//! The spam classifier's token counts (schema 5: `spam_models`, `spam_tokens`, `spam_learned`).

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{Sqlite, db_err, exec, query_row};
use crate::*;

/// Row key of a model: 0 for the global one, the account id otherwise (ids start at 1).
fn key(m: SpamModel) -> i64 {
    match m {
        SpamModel::Global => 0,
        SpamModel::Account(id) => id,
    }
}

fn class_code(c: SpamClass) -> i64 {
    match c {
        SpamClass::Ham => 0,
        SpamClass::Spam => 1,
    }
}

fn totals(conn: &Connection, model: i64) -> Result<SpamTotals> {
    query_row(
        conn,
        "SELECT ham, spam, format FROM spam_models WHERE model = ?1",
        [model],
        |r| {
            Ok(SpamTotals {
                ham: r.get::<_, i64>(0)?.max(0) as u64,
                spam: r.get::<_, i64>(1)?.max(0) as u64,
                format: r.get::<_, i64>(2)?.clamp(0, i64::from(u32::MAX)) as u32,
            })
        },
    )
    .optional()
    .map_err(db_err)
    .map(Option::unwrap_or_default)
}

fn count(v: i64) -> u32 {
    v.clamp(0, i64::from(u32::MAX)) as u32
}

/// Adds `ham`/`spam` (each -1, 0 or +1) to every token of the sample in `model`, removing rows
/// that reach zero in both classes.
fn apply(conn: &Connection, model: i64, tokens: &[u64], ham: i64, spam: i64) -> Result<()> {
    if ham >= 0 && spam >= 0 {
        let mut st = conn
            .prepare_cached(
                "INSERT INTO spam_tokens(model, token, ham, spam) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT(model, token) DO UPDATE SET ham = ham + excluded.ham, \
                 spam = spam + excluded.spam",
            )
            .map_err(db_err)?;
        for &t in tokens {
            st.execute(params![model, t as i64, ham, spam])
                .map_err(db_err)?;
        }
        return Ok(());
    }
    let mut update = conn
        .prepare_cached(
            "UPDATE spam_tokens SET ham = max(ham + ?3, 0), spam = max(spam + ?4, 0) \
             WHERE model = ?1 AND token = ?2 RETURNING ham, spam",
        )
        .map_err(db_err)?;
    let mut delete = conn
        .prepare_cached("DELETE FROM spam_tokens WHERE model = ?1 AND token = ?2")
        .map_err(db_err)?;
    for &t in tokens {
        let left: Option<(i64, i64)> = update
            .query_row(params![model, t as i64, ham, spam], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(db_err)?;
        match left {
            Some((0, 0)) => {
                delete.execute(params![model, t as i64]).map_err(db_err)?;
            }
            Some(_) => {}
            // A relearn (one count down, the other up) of a token the row of which is gone:
            // only possible if the tokens changed since; count the new class afresh.
            None if ham > 0 || spam > 0 => {
                exec(
                    conn,
                    "INSERT INTO spam_tokens(model, token, ham, spam) VALUES (?1, ?2, ?3, ?4)",
                    params![model, t as i64, ham.max(0), spam.max(0)],
                )
                .map_err(db_err)?;
            }
            None => {}
        }
    }
    Ok(())
}

fn check_format(conn: &Connection, model: i64, format: u32) -> Result<()> {
    let t = totals(conn, model)?;
    if (t.ham > 0 || t.spam > 0) && t.format != format {
        return Err(StoreError::Invalid(format!(
            "the spam model holds tokens of feature format {} (this version makes format {format}): \
             retrain it",
            t.format
        )));
    }
    Ok(())
}

fn add_totals(conn: &Connection, model: i64, format: u32, ham: i64, spam: i64) -> Result<()> {
    exec(
        conn,
        "INSERT INTO spam_models(model, format, ham, spam, updated) \
         VALUES (?1, ?2, max(?3, 0), max(?4, 0), ?5) \
         ON CONFLICT(model) DO UPDATE SET format = excluded.format, \
         ham = max(ham + ?3, 0), spam = max(spam + ?4, 0), updated = excluded.updated",
        params![model, format, ham, spam, now_unix()],
    )
    .map_err(db_err)?;
    Ok(())
}

fn learned(conn: &Connection, model: i64, digest: &[u8; 32]) -> Result<Option<SpamClass>> {
    let code: Option<i64> = query_row(
        conn,
        "SELECT class FROM spam_learned WHERE model = ?1 AND digest = ?2",
        params![model, &digest[..]],
        |r| r.get(0),
    )
    .optional()
    .map_err(db_err)?;
    Ok(code.map(|c| {
        if c == 1 {
            SpamClass::Spam
        } else {
            SpamClass::Ham
        }
    }))
}

/// Signed (ham, spam) deltas of learning one message as `class`.
fn delta(class: SpamClass) -> (i64, i64) {
    match class {
        SpamClass::Ham => (1, 0),
        SpamClass::Spam => (0, 1),
    }
}

fn learn_one(
    conn: &Connection,
    model: i64,
    sample: &SpamSample,
    class: SpamClass,
) -> Result<SpamLearnOutcome> {
    check_format(conn, model, sample.format)?;
    let before = learned(conn, model, &sample.digest)?;
    if before == Some(class) {
        return Ok(SpamLearnOutcome::AlreadyLearned);
    }
    let (h, s) = delta(class);
    let outcome = match before {
        Some(old) => {
            let (oh, os) = delta(old);
            // Move each token's count from the old class to the new one in one statement.
            apply(conn, model, &sample.tokens, h - oh, s - os)?;
            add_totals(conn, model, sample.format, h - oh, s - os)?;
            SpamLearnOutcome::Relearned
        }
        None => {
            apply(conn, model, &sample.tokens, h, s)?;
            add_totals(conn, model, sample.format, h, s)?;
            SpamLearnOutcome::Learned
        }
    };
    exec(
        conn,
        "INSERT OR REPLACE INTO spam_learned(model, digest, class, learned) VALUES (?1, ?2, ?3, ?4)",
        params![model, &sample.digest[..], class_code(class), now_unix()],
    )
    .map_err(db_err)?;
    Ok(outcome)
}

fn unlearn_one(conn: &Connection, model: i64, sample: &SpamSample) -> Result<SpamLearnOutcome> {
    let Some(old) = learned(conn, model, &sample.digest)? else {
        return Ok(SpamLearnOutcome::NotLearned);
    };
    check_format(conn, model, sample.format)?;
    let (oh, os) = delta(old);
    apply(conn, model, &sample.tokens, -oh, -os)?;
    add_totals(conn, model, sample.format, -oh, -os)?;
    exec(
        conn,
        "DELETE FROM spam_learned WHERE model = ?1 AND digest = ?2",
        params![model, &sample.digest[..]],
    )
    .map_err(db_err)?;
    Ok(SpamLearnOutcome::Unlearned)
}

/// Removes an account's model (with the account).
pub(crate) fn delete_model(conn: &Connection, account: AccountId) -> Result<()> {
    for sql in [
        "DELETE FROM spam_tokens WHERE model = ?1",
        "DELETE FROM spam_learned WHERE model = ?1",
        "DELETE FROM spam_models WHERE model = ?1",
    ] {
        exec(conn, sql, [account]).map_err(db_err)?;
    }
    Ok(())
}

#[async_trait]
impl SpamStore for Sqlite {
    async fn spam_counts(&self, models: &[SpamModel], tokens: &[u64]) -> Result<Vec<SpamCounts>> {
        let models = models.to_vec();
        let tokens = tokens.to_vec();
        self.0
            .read(move |c, _| {
                // One read transaction: the totals and the token counts of one snapshot.
                c.execute_batch("BEGIN").map_err(db_err)?;
                let out = (|| {
                    let mut out = Vec::with_capacity(models.len());
                    let mut st = c
                        .prepare_cached(
                            "SELECT ham, spam FROM spam_tokens WHERE model = ?1 AND token = ?2",
                        )
                        .map_err(db_err)?;
                    for m in &models {
                        let k = key(*m);
                        let totals = totals(c, k)?;
                        let mut found = Vec::new();
                        if totals.ham > 0 || totals.spam > 0 {
                            for &t in &tokens {
                                let row: Option<(i64, i64)> = st
                                    .query_row(params![k, t as i64], |r| Ok((r.get(0)?, r.get(1)?)))
                                    .optional()
                                    .map_err(db_err)?;
                                if let Some((h, s)) = row {
                                    found.push((t, count(h), count(s)));
                                }
                            }
                        }
                        out.push(SpamCounts {
                            model: *m,
                            totals,
                            tokens: found,
                        });
                    }
                    Ok(out)
                })();
                let _ = c.execute_batch("COMMIT");
                out
            })
            .await
    }

    async fn spam_learn(
        &self,
        models: &[SpamModel],
        sample: &SpamSample,
        class: SpamClass,
    ) -> Result<Vec<SpamLearnOutcome>> {
        let models = models.to_vec();
        let sample = sample.clone();
        self.0
            .writer
            .write(move |tx| {
                models
                    .iter()
                    .map(|m| learn_one(tx.conn, key(*m), &sample, class))
                    .collect()
            })
            .await
    }

    async fn spam_unlearn(
        &self,
        models: &[SpamModel],
        sample: &SpamSample,
    ) -> Result<Vec<SpamLearnOutcome>> {
        let models = models.to_vec();
        let sample = sample.clone();
        self.0
            .writer
            .write(move |tx| {
                models
                    .iter()
                    .map(|m| unlearn_one(tx.conn, key(*m), &sample))
                    .collect()
            })
            .await
    }
}
