//! The scheduler: picks due entries from the durable queue, groups them by destination domain,
//! runs attempts within global and per-domain concurrency limits, and records the outcome —
//! delivered recipients are done for good, temporary failures are retried with growing back-off,
//! permanent failures and expiry produce one DSN to the sender.
//!
//! Order of durable steps: a DSN is injected (stored or queued) before the entry is updated, so a
//! crash in between can repeat a DSN but never lose one; a remote `250` is recorded right after the
//! attempt, so a restart does not send that recipient the message again unless the crash came in
//! that short window (the usual at-least-once of MTAs).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use store::{DynStore, QueueEntry, QueueId};
use tokio::sync::{Notify, Semaphore};

use crate::attempt::{Deliverer, RcptResult};
use crate::config::QueueConfig;
use crate::dsn::{Action, Dsn, RecipientReport};

/// Entries fetched per scheduling round.
pub const DUE_BATCH: usize = 1000;
/// Messages one worker holds in memory at once (bodies are read from the store per round).
pub const MAX_ROUND_BYTES: u64 = 64 * 1024 * 1024;
/// Most entries one worker sends over one connection before handing back.
pub const ENTRIES_PER_CONNECTION: usize = 500;

/// Where DSNs go: to a local mailbox or back into the queue, from the null sender.
#[async_trait]
pub trait Injector: Send + Sync {
    /// Durably delivers `raw` from the null reverse-path to `to`.
    async fn inject_dsn(&self, to: &str, raw: Vec<u8>) -> Result<(), String>;
}

pub struct Queue {
    store: DynStore,
    config: Arc<QueueConfig>,
    deliverer: Arc<Deliverer>,
    injector: Arc<dyn Injector>,
    in_flight: Mutex<HashSet<QueueId>>,
    per_domain: Mutex<HashMap<String, usize>>,
    permits: Arc<Semaphore>,
    wake: Arc<Notify>,
}

fn domain_of(entry: &QueueEntry) -> String {
    entry
        .recipients
        .first()
        .and_then(|r| r.address.rsplit_once('@'))
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default()
}

/// RFC 3461 §4.1: without NOTIFY the MTA decides; like Postfix we report failures and delays.
fn wants(notify: Option<&str>, what: &str) -> bool {
    match notify {
        None => what != "SUCCESS",
        Some(n) => n.split(',').any(|v| v.trim().eq_ignore_ascii_case(what)),
    }
}

impl Queue {
    pub fn new(
        store: DynStore,
        config: Arc<QueueConfig>,
        deliverer: Deliverer,
        injector: Arc<dyn Injector>,
        wake: Arc<Notify>,
    ) -> Arc<Queue> {
        Arc::new(Queue {
            store,
            permits: Arc::new(Semaphore::new(config.concurrency.max(1))),
            config,
            deliverer: Arc::new(deliverer),
            injector,
            in_flight: Mutex::new(HashSet::new()),
            per_domain: Mutex::new(HashMap::new()),
            wake,
        })
    }

    /// Asks the scheduler to look at the queue now (new entries, or `facteur queue flush`).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs the scheduler until the task is aborted.
    pub fn start(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let q = self.clone();
        tokio::spawn(async move {
            loop {
                q.dispatch().await;
                tokio::select! {
                    _ = q.wake.notified() => {}
                    _ = tokio::time::sleep(q.config.poll_interval) => {}
                }
            }
        })
    }

    /// Starts attempts for every due entry that is not already being worked on. Returns how many
    /// entries were handed to workers.
    pub async fn dispatch(self: &Arc<Self>) -> usize {
        let now = store::now_unix();
        let due = match self.store.queue_due(now, DUE_BATCH).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the queue");
                return 0;
            }
        };
        let mut by_domain: HashMap<String, Vec<QueueEntry>> = HashMap::new();
        {
            let in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            for e in due {
                if !in_flight.contains(&e.id) {
                    by_domain.entry(domain_of(&e)).or_default().push(e);
                }
            }
        }
        let mut started = 0;
        for (domain, entries) in by_domain {
            // Spread the domain's entries over the connections it may still open.
            let free = {
                let active = self.per_domain.lock().unwrap_or_else(|p| p.into_inner());
                self.config
                    .per_domain
                    .max(1)
                    .saturating_sub(active.get(&domain).copied().unwrap_or(0))
            };
            if free == 0 {
                continue;
            }
            let chunk = entries
                .len()
                .div_ceil(free)
                .clamp(1, ENTRIES_PER_CONNECTION);
            for batch in entries.chunks(chunk) {
                {
                    let mut active = self.per_domain.lock().unwrap_or_else(|p| p.into_inner());
                    let n = active.entry(domain.clone()).or_insert(0);
                    if *n >= self.config.per_domain.max(1) {
                        break;
                    }
                    *n += 1;
                    let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
                    for e in batch {
                        in_flight.insert(e.id);
                    }
                }
                started += batch.len();
                let q = self.clone();
                let domain = domain.clone();
                let batch = batch.to_vec();
                tokio::spawn(async move {
                    let ids: Vec<QueueId> = batch.iter().map(|e| e.id).collect();
                    if let Ok(_permit) = q.permits.clone().acquire_owned().await {
                        q.clone().work(&domain, batch).await;
                    }
                    {
                        let mut in_flight = q.in_flight.lock().unwrap_or_else(|p| p.into_inner());
                        for id in ids {
                            in_flight.remove(&id);
                        }
                        let mut active = q.per_domain.lock().unwrap_or_else(|p| p.into_inner());
                        if let Some(n) = active.get_mut(&domain) {
                            *n = n.saturating_sub(1);
                            if *n == 0 {
                                active.remove(&domain);
                            }
                        }
                    }
                    // More may be due for this domain now that a slot is free.
                    q.wake();
                });
            }
        }
        started
    }

    /// Number of entries being worked on right now.
    pub fn in_flight(&self) -> usize {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Works a worker's entries in rounds whose messages fit in [`MAX_ROUND_BYTES`] of memory
    /// (each round opens its own connection).
    async fn work(self: Arc<Self>, domain: &str, entries: Vec<QueueEntry>) {
        let mut round = Vec::new();
        let mut bytes = 0u64;
        for e in entries {
            if !round.is_empty() && bytes + e.size > MAX_ROUND_BYTES {
                self.clone()
                    .work_round(domain, std::mem::take(&mut round))
                    .await;
                bytes = 0;
            }
            bytes += e.size;
            round.push(e);
        }
        if !round.is_empty() {
            self.work_round(domain, round).await;
        }
    }

    async fn work_round(self: Arc<Self>, domain: &str, entries: Vec<QueueEntry>) {
        let mut ready = Vec::with_capacity(entries.len());
        let mut bodies: Vec<Arc<[u8]>> = Vec::with_capacity(entries.len());
        for e in entries {
            match self.store.blob_read(e.blob, None).await {
                Ok(b) => {
                    bodies.push(b.into());
                    ready.push(e);
                }
                Err(err) => {
                    tracing::error!(id = e.smtp_id.as_deref(), queue_id = e.id, error = %err, "cannot read a queued message; retrying later");
                    let mut e = e;
                    e.next_attempt = store::now_unix() + self.config.retry_initial.as_secs() as i64;
                    e.last_error = Some(format!("local error reading the message: {err}"));
                    let _ = self.store.queue_update(&e).await;
                }
            }
        }
        if ready.is_empty() {
            return;
        }
        // Each entry is recorded as soon as the remote side has answered for it; the records of
        // one connection go to the store concurrently and share its group commit.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let deliver = self.deliverer.deliver(domain, &ready, &bodies, tx);
        let record = async {
            let mut tasks = tokio::task::JoinSet::new();
            while let Some((i, res)) = rx.recv().await {
                let (q, entry, body) = (self.clone(), ready[i].clone(), bodies[i].clone());
                tasks.spawn(async move { q.settle(entry, &body, res).await });
            }
            while let Some(r) = tasks.join_next().await {
                if let Ok(Err(e)) = r {
                    tracing::error!(error = %e, "cannot record a delivery attempt");
                }
            }
        };
        tokio::join!(deliver, record);
    }

    /// Records an attempt's results: recipient states, DSNs, next attempt or removal.
    async fn settle(
        &self,
        mut entry: QueueEntry,
        body: &[u8],
        results: Vec<RcptResult>,
    ) -> Result<(), String> {
        let now = store::now_unix();
        let mut failed = Vec::new();
        let mut delivered_notice = Vec::new();
        let mut delayed = Vec::new();
        let mut last_error = None;
        // Logged once the next attempt's time is known.
        let mut deferred: Vec<(String, String, Option<String>)> = Vec::new();
        let id = entry.smtp_id.clone();
        let expired = now.saturating_sub(entry.created) >= self.config.max_age.as_secs() as i64;
        let warn_due = self
            .config
            .delay_warning
            .is_some_and(|d| now.saturating_sub(entry.created) >= d.as_secs() as i64);
        for (r, res) in entry.recipients.iter_mut().zip(results) {
            match res {
                RcptResult::Untouched => {}
                RcptResult::Delivered { reply, remote, dsn } => {
                    tracing::info!(
                        id = id.as_deref(),
                        queue_id = entry.id,
                        rcpt = %r.address,
                        remote = %remote,
                        reply = %reply,
                        "delivered"
                    );
                    r.status = "delivered".into();
                    r.last_reply = Some(reply.clone());
                    if wants(r.notify.as_deref(), "SUCCESS") {
                        delivered_notice.push(RecipientReport {
                            address: r.address.clone(),
                            orcpt: r.orcpt.clone(),
                            action: if dsn {
                                Action::Relayed
                            } else {
                                Action::Delivered
                            },
                            status: "2.0.0".into(),
                            remote_mta: Some(remote),
                            diagnostic: Some(reply),
                            last_attempt: now,
                        });
                    }
                }
                RcptResult::Failed {
                    status,
                    reason,
                    remote,
                } => {
                    r.status = "failed".into();
                    r.last_reply = Some(reason.clone());
                    tracing::info!(
                        id = id.as_deref(),
                        queue_id = entry.id,
                        rcpt = %r.address,
                        %status,
                        %reason,
                        remote = remote.as_deref(),
                        "bounced"
                    );
                    if wants(r.notify.as_deref(), "FAILURE") {
                        failed.push(RecipientReport {
                            address: r.address.clone(),
                            orcpt: r.orcpt.clone(),
                            action: Action::Failed,
                            status,
                            remote_mta: remote,
                            diagnostic: Some(reason),
                            last_attempt: now,
                        });
                    }
                }
                RcptResult::Deferred { reason, remote } => {
                    r.last_reply = Some(reason.clone());
                    last_error = Some(reason.clone());
                    if expired {
                        tracing::info!(
                            id = id.as_deref(),
                            queue_id = entry.id,
                            rcpt = %r.address,
                            status = "4.4.7",
                            %reason,
                            remote = remote.as_deref(),
                            "bounced: too long in the queue"
                        );
                        r.status = "failed".into();
                        if wants(r.notify.as_deref(), "FAILURE") {
                            failed.push(RecipientReport {
                                address: r.address.clone(),
                                orcpt: r.orcpt.clone(),
                                action: Action::Failed,
                                status: "4.4.7".into(),
                                remote_mta: remote,
                                diagnostic: Some(format!(
                                    "gave up after {} days: {reason}",
                                    self.config.max_age.as_secs() / 86_400
                                )),
                                last_attempt: now,
                            });
                        }
                    } else {
                        deferred.push((r.address.clone(), reason.clone(), remote.clone()));
                        if warn_due && r.status == "pending" {
                            r.status = "delayed".into();
                            if wants(r.notify.as_deref(), "DELAY") {
                                delayed.push(RecipientReport {
                                    address: r.address.clone(),
                                    orcpt: r.orcpt.clone(),
                                    action: Action::Delayed,
                                    status: "4.0.0".into(),
                                    remote_mta: remote,
                                    diagnostic: Some(reason),
                                    last_attempt: now,
                                });
                            }
                        }
                    }
                }
            }
        }
        // RFC 3461 §6.2 / RFC 5321 §6.1: never a notification about a message from the null sender.
        if !entry.sender.is_empty() {
            for reports in [failed, delayed, delivered_notice] {
                if !reports.is_empty() {
                    self.send_dsn(&entry, body, reports, now).await?;
                }
            }
        }
        entry.attempts += 1;
        if entry
            .recipients
            .iter()
            .all(|r| r.status == "delivered" || r.status == "failed")
        {
            self.store
                .queue_delete(entry.id)
                .await
                .map_err(|e| e.to_string())?;
            return Ok(());
        }
        entry.last_error = last_error;
        entry.next_attempt = now + self.config.backoff(entry.attempts).as_secs() as i64;
        if !expired {
            // Never schedule past the give-up time by much: the last attempt happens at expiry.
            let deadline = entry.created + self.config.max_age.as_secs() as i64;
            entry.next_attempt = entry.next_attempt.min(deadline.max(now + 1));
        }
        for (rcpt, reason, remote) in deferred {
            tracing::info!(
                id = id.as_deref(),
                queue_id = entry.id,
                rcpt = %rcpt,
                %reason,
                remote = remote.as_deref(),
                attempts = entry.attempts,
                retry_in_secs = entry.next_attempt.saturating_sub(now),
                "deferred"
            );
        }
        self.store
            .queue_update(&entry)
            .await
            .map_err(|e| e.to_string())
    }

    async fn send_dsn(
        &self,
        entry: &QueueEntry,
        body: &[u8],
        recipients: Vec<RecipientReport>,
        now: i64,
    ) -> Result<(), String> {
        let id: u64 = rand::random();
        let from = format!("MAILER-DAEMON@{}", self.config.hostname);
        let raw = Dsn {
            reporting_mta: &self.config.hostname,
            to: &entry.sender,
            from: &from,
            envid: entry.envid.as_deref(),
            ret: entry.ret.as_deref(),
            arrival: entry.created,
            now,
            message_id: format!("<dsn.{id:016x}@{}>", self.config.hostname),
            recipients,
            original: body,
        }
        .build();
        self.injector.inject_dsn(&entry.sender, raw).await?;
        tracing::info!(id = entry.smtp_id.as_deref(), queue_id = entry.id, to = %entry.sender, "delivery status notification sent");
        Ok(())
    }

    /// Waits until nothing is in flight (tests, shutdown).
    pub async fn idle(&self, timeout: Duration) -> bool {
        let start = tokio::time::Instant::now();
        while self.in_flight() > 0 {
            if start.elapsed() > timeout {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }
}
