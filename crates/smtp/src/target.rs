//! The delivery target over the store (maddy's model): recipients are added one by one, the
//! message once, and `commit` is the one durable step before the reply.

use std::collections::BTreeMap;
use std::sync::Arc;

use message::Prepared;
use store::{
    AppendRequest, Flags, NewQueueEntry, QueueRecipient, QuotaPolicy, RawMessage, WriteBatch,
};

use crate::backend::{Envelope, Mode, Recipient};
use crate::delivery::{MailBackend, over_quota, store_reply};
use crate::pipeline::Disposition;
use crate::reply::Reply;
use crate::sieve::Plan;

/// Where an accepted message goes, maddy's delivery target over the store: recipients are added
/// one by one (each may fail on its own), the body once, and [`StoreTarget::commit`] is the one
/// durable step: one group-committed write holding every local copy (one blob shared by all)
/// and one queue entry per remote domain and sender. The store decides quota, per account under
/// LMTP. Nothing is written before `commit`, so dropping the target (or `abort`) leaves no trace.
pub struct StoreTarget<'a> {
    backend: &'a MailBackend,
    env: &'a Envelope,
    now: i64,
    results: Vec<Result<(), Reply>>,
    /// Local accounts in order of first appearance, with the recipients that reach each.
    accounts: Vec<(i64, Vec<usize>)>,
    /// Keyed by (destination domain, envelope sender): forwarded copies carry an SRS sender.
    remote: BTreeMap<(String, String), Vec<QueueRecipient>>,
    /// Looked up only when a recipient is reached through an alias (most messages have none).
    forwarded_sender: Option<String>,
    batch: WriteBatch,
    /// For each append of the batch, the account it is for.
    append_accounts: Vec<i64>,
    size: usize,
}

impl<'a> StoreTarget<'a> {
    pub fn new(backend: &'a MailBackend, env: &'a Envelope, now: i64) -> StoreTarget<'a> {
        let quota = if env.mode == Mode::Lmtp {
            QuotaPolicy::PerAccount
        } else {
            QuotaPolicy::AllOrNothing
        };
        StoreTarget {
            backend,
            env,
            now,
            results: vec![Ok(()); env.recipients.len()],
            accounts: Vec::new(),
            remote: BTreeMap::new(),
            forwarded_sender: None,
            batch: WriteBatch {
                quota,
                ..WriteBatch::default()
            },
            append_accounts: Vec::new(),
            size: 0,
        }
    }

    /// Adds recipient number `index` of the envelope (already resolved at RCPT).
    pub async fn add_rcpt(&mut self, index: usize, rcpt: &Recipient) {
        for &acc in &rcpt.target.local {
            match self.accounts.iter_mut().find(|(a, _)| *a == acc) {
                Some((_, rcpts)) => rcpts.push(index),
                None => self.accounts.push((acc, vec![index])),
            }
        }
        for ext in &rcpt.target.external {
            let domain = ext
                .rsplit_once('@')
                .map(|(_, d)| d.to_ascii_lowercase())
                .unwrap_or_default();
            // An address reached through an alias is a forward: SPF at the next hop will check
            // us, not the original sender's domain.
            let sender = if ext.eq_ignore_ascii_case(&rcpt.address) {
                self.env.from.clone()
            } else {
                match &self.forwarded_sender {
                    Some(s) => s.clone(),
                    None => {
                        let s = self
                            .backend
                            .forwarding_sender(&self.env.from, self.now)
                            .await;
                        self.forwarded_sender = Some(s.clone());
                        s
                    }
                }
            };
            let list = self.remote.entry((domain, sender)).or_default();
            if !list.iter().any(|q| q.address.eq_ignore_ascii_case(ext)) {
                list.push(QueueRecipient {
                    address: ext.clone(),
                    notify: rcpt.notify.clone(),
                    orcpt: rcpt.orcpt.clone(),
                    status: "pending".into(),
                    last_reply: None,
                });
            }
        }
    }

    /// The message: `trace` goes on top of every copy, `Return-Path:` on top of local ones
    /// (RFC 5321 §4.4); local copies go to INBOX, or Junk for [`Disposition::Junk`].
    /// With a Sieve `plan`, each account's copies are the ones its scripts chose (none when they
    /// discarded or refused it); under LMTP a refusal answers that account's recipients.
    pub(crate) async fn body(
        &mut self,
        msg: &Prepared,
        trace: String,
        disposition: Disposition,
        plan: Option<&Plan>,
    ) {
        let trace: Arc<[u8]> = trace.into_bytes().into();
        if !self.accounts.is_empty() {
            let head: Arc<[u8]> = [
                format!("Return-Path: <{}>\r\n", self.env.from).as_bytes(),
                &trace,
            ]
            .concat()
            .into();
            let analysis = Arc::new(msg.analysis_with_prefix(&head));
            let raw = RawMessage::new(head, msg.raw().clone()).with_analysis(analysis);
            self.size = raw.len();
            let accounts = std::mem::take(&mut self.accounts);
            for (acc, rcpts) in &accounts {
                if let Some(plan) = plan {
                    if let Some(reason) = plan.rejected.get(acc) {
                        if self.env.mode == Mode::Lmtp {
                            for &i in rcpts {
                                self.results[i] = Err(MailBackend::reject_reply(reason));
                            }
                        }
                        continue;
                    }
                    if let Some(copies) = plan.copies.get(acc) {
                        for c in copies {
                            let raw = match &c.edited {
                                Some(edited) => RawMessage::new(
                                    format!("Return-Path: <{}>\r\n", self.env.from)
                                        .into_bytes()
                                        .into(),
                                    edited.clone(),
                                ),
                                None => raw.clone(),
                            };
                            self.batch.appends.push(AppendRequest {
                                mailbox_id: c.mailbox,
                                raw,
                                flags: c.flags,
                                keywords: c.keywords.clone(),
                                internal_date: self.now,
                            });
                            self.append_accounts.push(*acc);
                        }
                        continue;
                    }
                }
                let folder = match disposition {
                    // Quarantined messages never reach a target (delivery holds them); were one
                    // to, Junk is the safe place.
                    Disposition::Junk | Disposition::Quarantine => self.backend.junk(*acc).await,
                    Disposition::Accept => self.backend.inbox(*acc).await,
                };
                match folder {
                    Ok(mailbox_id) => {
                        self.batch.appends.push(AppendRequest {
                            mailbox_id,
                            raw: raw.clone(),
                            flags: Flags::empty(),
                            keywords: vec![],
                            internal_date: self.now,
                        });
                        self.append_accounts.push(*acc);
                    }
                    Err(e) => {
                        tracing::error!(id = %self.env.id, account = acc, error = %e, "no mailbox to deliver to");
                        for &i in rcpts {
                            self.results[i] = Err(store_reply(&e));
                        }
                    }
                }
            }
            self.accounts = accounts;
        }
        if !self.remote.is_empty() {
            let analysis = Arc::new(msg.analysis_with_prefix(&trace));
            let raw = RawMessage::new(trace, msg.raw().clone()).with_analysis(analysis);
            self.size = self.size.max(raw.len());
            for ((_, sender), recipients) in std::mem::take(&mut self.remote) {
                self.batch.enqueue.push(NewQueueEntry {
                    raw: raw.clone(),
                    sender,
                    recipients,
                    envid: self.env.envid.clone(),
                    ret: self.env.ret.clone(),
                    next_attempt: self.now,
                    // The id of the `250 ... queued as`, named by every delivery attempt's log.
                    smtp_id: Some(self.env.id.clone()),
                });
            }
        }
    }

    /// Messages the recipients' scripts send (forwards, vacation replies), stored and queued in
    /// the same durable write as the message.
    pub(crate) fn add_extra(&mut self, appends: Vec<AppendRequest>, enqueue: Vec<NewQueueEntry>) {
        self.batch.appends.extend(appends);
        // Not any recipient's copy: no account for quota answers.
        self.append_accounts.extend(std::iter::repeat_n(
            -1,
            self.batch.appends.len() - self.append_accounts.len(),
        ));
        self.batch.enqueue.extend(enqueue);
    }

    /// Nothing is stored; the replies say why.
    pub fn abort(self, why: Reply) -> Vec<Result<(), Reply>> {
        vec![Err(why); self.results.len()]
    }

    /// Stores everything in one durable write and returns one result per recipient; outside
    /// LMTP all results are equal (all delivered, or none).
    pub async fn commit(mut self) -> Vec<Result<(), Reply>> {
        let env = self.env;
        if env.mode != Mode::Lmtp
            && let Some(Err(r)) = self.results.iter().find(|r| r.is_err()).cloned()
        {
            return self.abort(r);
        }
        if self.batch.appends.is_empty() && self.batch.enqueue.is_empty() {
            return self.results;
        }
        let batch = std::mem::take(&mut self.batch);
        match self.backend.store.commit(batch).await {
            Ok(done) => {
                for &i in &done.over_quota {
                    let acc = self.append_accounts.get(i).copied();
                    if let Some((_, rcpts)) = self.accounts.iter().find(|(a, _)| Some(*a) == acc) {
                        for &r in rcpts {
                            self.results[r] = Err(over_quota());
                        }
                    }
                }
                if !done.queued.is_empty()
                    && let Some(w) = &self.backend.queue_wake
                {
                    w.notify_one();
                }
                tracing::info!(
                    id = %env.id,
                    service = env.mode.name(),
                    peer = env.peer.map(tracing::field::display),
                    from = %env.from,
                    recipients = env.recipients.len(),
                    stored = done.appended.len(),
                    queued = done.queued.len(),
                    size = self.size,
                    "message accepted"
                );
                self.results
            }
            Err(e) => {
                tracing::error!(id = %env.id, error = %e, "message not stored");
                let r = store_reply(&e);
                self.results
                    .into_iter()
                    .map(|x| x.and(Err(r.clone())))
                    .collect()
            }
        }
    }
}
