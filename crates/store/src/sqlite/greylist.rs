//! Greylisting triplets and whitelisted client networks (RFC 6647).

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{Sqlite, db_err, exec};
use crate::*;

/// A passing triplet or whitelisted network seen again within this many seconds is not written
/// again: most accepted mail then costs a read, not a commit.
const REFRESH_SECS: i64 = 3600;

/// What is known before deciding (read in the same snapshot).
struct Seen {
    /// (whitelisted, last_seen) of the network.
    network: Option<(bool, i64)>,
    /// (first_seen, last_seen, passed) of the triplet.
    triplet: Option<(i64, i64, Option<i64>)>,
}

fn seen(c: &Connection, network: &str, sender: &str, recipient: &str) -> rusqlite::Result<Seen> {
    let network_row = c
        .prepare_cached("SELECT whitelisted, last_seen FROM greylist_networks WHERE network = ?1")?
        .query_row([network], |r| {
            Ok((r.get::<_, bool>(0)?, r.get::<_, i64>(1)?))
        })
        .optional()?;
    let triplet = c
        .prepare_cached(
            "SELECT first_seen, last_seen, passed FROM greylist \
             WHERE network = ?1 AND sender = ?2 AND recipient = ?3",
        )?
        .query_row(params![network, sender, recipient], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    Ok(Seen {
        network: network_row,
        triplet,
    })
}

/// The decision needing no write, if there is one: a live whitelist entry or passed triplet
/// seen recently.
fn without_write(s: &Seen, now: i64, p: &GreylistPolicy) -> Option<GreylistDecision> {
    if let Some((true, last)) = s.network
        && last + p.whitelist_ttl >= now
        && now - last < REFRESH_SECS
    {
        return Some(GreylistDecision::NetworkWhitelisted);
    }
    if let Some((_, last, Some(_))) = s.triplet
        && last + p.pass_ttl >= now
        && now - last < REFRESH_SECS
    {
        return Some(GreylistDecision::Passed);
    }
    None
}

fn decide(
    c: &Connection,
    network: &str,
    sender: &str,
    recipient: &str,
    now: i64,
    p: &GreylistPolicy,
) -> rusqlite::Result<GreylistDecision> {
    let s = seen(c, network, sender, recipient)?;
    if let Some((true, last)) = s.network
        && last + p.whitelist_ttl >= now
    {
        exec(
            c,
            "UPDATE greylist_networks SET last_seen = MAX(last_seen, ?2) WHERE network = ?1",
            params![network, now],
        )?;
        return Ok(GreylistDecision::NetworkWhitelisted);
    }
    let touch = |passed: Option<i64>| {
        exec(
            c,
            "UPDATE greylist SET last_seen = MAX(last_seen, ?4), passed = COALESCE(passed, ?5) \
             WHERE network = ?1 AND sender = ?2 AND recipient = ?3",
            params![network, sender, recipient, now, passed],
        )
    };
    match s.triplet {
        // RFC 6647 §2.2: a triplet that passed stays accepted while it keeps being used.
        Some((_, last, Some(_))) if last + p.pass_ttl >= now => {
            touch(None)?;
            Ok(GreylistDecision::Passed)
        }
        Some((first, _, None)) if first + p.retry_window >= now => {
            if now < first + p.delay {
                touch(None)?;
                return Ok(GreylistDecision::Deferred {
                    retry_in: first + p.delay - now,
                });
            }
            // A proper retry: the triplet passes, and the network earns a pass (RFC 6647 §4.2.1
            // suggests whitelisting clients that retry correctly).
            touch(Some(now))?;
            exec(
                c,
                "INSERT INTO greylist_networks(network, passes, whitelisted, last_seen) \
                 VALUES (?1, 1, ?2 <= 1 AND ?2 > 0, ?3) \
                 ON CONFLICT(network) DO UPDATE SET passes = passes + 1, \
                 whitelisted = (?2 > 0 AND passes + 1 >= ?2), last_seen = MAX(last_seen, ?3)",
                params![network, p.whitelist_after, now],
            )?;
            Ok(GreylistDecision::Passed)
        }
        // First sight, or a record that expired: start again.
        _ => {
            exec(
                c,
                "INSERT OR REPLACE INTO greylist(network, sender, recipient, first_seen, \
                 last_seen, passed) VALUES (?1, ?2, ?3, ?4, ?4, NULL)",
                params![network, sender, recipient, now],
            )?;
            Ok(GreylistDecision::Deferred { retry_in: p.delay })
        }
    }
}

#[async_trait]
impl GreylistStore for Sqlite {
    async fn greylist_check(
        &self,
        network: &str,
        sender: &str,
        recipient: &str,
        now: i64,
        policy: &GreylistPolicy,
    ) -> Result<GreylistDecision> {
        let (n, s, r, p) = (
            network.to_string(),
            sender.to_string(),
            recipient.to_string(),
            *policy,
        );
        let (n2, s2, r2) = (n.clone(), s.clone(), r.clone());
        let quick = self
            .0
            .read(move |c, _| {
                let seen = seen(c, &n2, &s2, &r2).map_err(db_err)?;
                Ok(without_write(&seen, now, &p))
            })
            .await?;
        if let Some(d) = quick {
            return Ok(d);
        }
        self.0
            .writer
            .write(move |tx| decide(tx.conn, &n, &s, &r, now, &p).map_err(db_err))
            .await
    }

    async fn greylist_purge(&self, now: i64, policy: &GreylistPolicy) -> Result<u64> {
        let p = *policy;
        self.0
            .writer
            .write(move |tx| {
                let a = exec(
                    tx.conn,
                    "DELETE FROM greylist WHERE (passed IS NULL AND first_seen < ?1) \
                     OR (passed IS NOT NULL AND last_seen < ?2)",
                    params![now - p.retry_window, now - p.pass_ttl],
                )
                .map_err(db_err)?;
                let b = exec(
                    tx.conn,
                    "DELETE FROM greylist_networks WHERE last_seen < ?1",
                    params![now - p.whitelist_ttl.max(p.pass_ttl)],
                )
                .map_err(db_err)?;
                Ok((a + b) as u64)
            })
            .await
    }

    async fn greylist_stats(&self) -> Result<GreylistStats> {
        self.0
            .read(move |c, _| {
                let q = |sql: &str| -> Result<u64> {
                    c.query_row(sql, [], |r| r.get::<_, i64>(0))
                        .map(|n| u64::try_from(n).unwrap_or(0))
                        .map_err(db_err)
                };
                Ok(GreylistStats {
                    pending: q("SELECT COUNT(*) FROM greylist WHERE passed IS NULL")?,
                    passed: q("SELECT COUNT(*) FROM greylist WHERE passed IS NOT NULL")?,
                    networks: q("SELECT COUNT(*) FROM greylist_networks WHERE whitelisted")?,
                })
            })
            .await
    }
}
