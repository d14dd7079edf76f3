//! Sieve at delivery: for each local account of a message, the domain's script and then the
//! account's run over the prepared message (`sievefilter`), and their outcome becomes part of
//! the one durable write: the copies to store (mailbox, flags, edited message), forwards into the
//! outbound queue (SRS, loop protection, a daily cap per account), vacation replies (RFC 5230,
//! null sender, DKIM-signed) and refusals (`reject`/`ereject`, RFC 5429: at SMTP time when every
//! recipient refuses, else a DSN). A script that fails keeps the message in INBOX.

use std::collections::HashMap;
use std::sync::Arc;

use message::Prepared;
use sievefilter::{Engine, Outcome};
use store::{AccountId, AppendRequest, Flags, NewQueueEntry, QueueRecipient, RawMessage};

use crate::backend::Envelope;
use crate::delivery::MailBackend;
use crate::pipeline::{CheckState, Disposition};
use crate::reply::Reply;

/// Settings of Sieve at delivery.
#[derive(Debug, Clone)]
pub struct SieveSettings {
    pub engine: Arc<Engine>,
    /// Redirects one account's scripts may send per day (UTC).
    pub redirects_per_day: u32,
}

/// A forwarded message carrying this many `Received:` fields is looping (RFC 5321 §6.3 suggests
/// counting hops): it is kept instead.
pub const MAX_HOPS: usize = 50;

/// One copy to store for an account.
pub(crate) struct PlannedCopy {
    pub mailbox: i64,
    pub flags: Flags,
    pub keywords: Vec<String>,
    /// The message edited by the script (editheader), trace fields included, instead of the
    /// original.
    pub edited: Option<Arc<[u8]>>,
}

/// What the scripts decided for every local account of one message.
#[derive(Default)]
pub(crate) struct Plan {
    /// Per account: the copies to store (none: discarded or refused).
    pub copies: HashMap<AccountId, Vec<PlannedCopy>>,
    /// Per account: refused by `reject`/`ereject`, with the reason.
    pub rejected: HashMap<AccountId, String>,
    /// Forwards and vacation replies: complete messages with their envelope.
    pub outgoing: Vec<Outgoing>,
}

pub(crate) struct Outgoing {
    pub sender: String,
    pub to: String,
    pub head: Arc<[u8]>,
    pub body: Arc<[u8]>,
}

/// Flags and keywords of `names` (RFC 5232): system flags by name, the rest as keywords when
/// they are valid IMAP atoms.
fn flags_of(names: &[String]) -> (Flags, Vec<String>) {
    let mut flags = Flags::empty();
    let mut keywords = Vec::new();
    for n in names.iter().flat_map(|n| n.split_whitespace()) {
        if let Some(f) = Flags::from_name(n) {
            flags = flags.union(f);
        } else if !n.starts_with('\\')
            && n.len() <= 64
            && n.bytes()
                .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b))
            && !keywords.iter().any(|k: &String| k.eq_ignore_ascii_case(n))
        {
            keywords.push(n.to_string());
        }
    }
    (flags, keywords)
}

/// The checks' verdict as Sieve sees it (spamtest, virustest).
fn verdict(state: &CheckState) -> sievefilter::Verdict {
    sievefilter::Verdict {
        tested: !state.reasons.is_empty() || state.disposition != Disposition::Accept,
        score: state.score,
        junk: state.disposition >= Disposition::Junk,
        virus: state
            .reasons
            .iter()
            .any(|r| r.name.to_ascii_uppercase().contains("VIRUS") && r.score > 0.0),
    }
}

impl MailBackend {
    /// Runs the scripts of each local account of `env` and plans what to store and send.
    pub(crate) async fn sieve_plan(
        &self,
        settings: &SieveSettings,
        env: &Envelope,
        msg: &Prepared,
        state: &CheckState,
        trace: &str,
    ) -> Plan {
        let mut plan = Plan::default();
        let verdict = verdict(state);
        // Scripts see the message as it will be stored: the checks' fields (X-Spam-*,
        // Authentication-Results) and our Received on top.
        let full: Vec<u8> = [trace.as_bytes(), msg.raw()].concat();
        let mut seen: Vec<AccountId> = Vec::new();
        for rcpt in &env.recipients {
            for &acc in &rcpt.target.local {
                if seen.contains(&acc) {
                    continue;
                }
                seen.push(acc);
                let record = match self.store.account_get_by_id(acc).await {
                    Ok(Some(r)) => r,
                    _ => continue,
                };
                let user = record.address();
                let sieve_env = sievefilter::Envelope {
                    from: &env.from,
                    to: &rcpt.address,
                    user: &user,
                    user_name: &record.display_name,
                };
                let mut outcome = settings
                    .engine
                    .run(&self.store, acc, &record.domain, &full, &sieve_env, verdict)
                    .await;
                if let Some(e) = &outcome.error {
                    // Mail is never lost because of a script: keep in INBOX.
                    tracing::warn!(id = %env.id, account = %user, scripts = ?outcome.scripts, error = %e, "Sieve script failed; message kept in INBOX");
                    outcome = Outcome::keep();
                } else if !outcome.scripts.is_empty() {
                    tracing::info!(
                        id = %env.id,
                        account = %user,
                        scripts = ?outcome.scripts,
                        copies = outcome.copies.len(),
                        redirects = outcome.redirects.len(),
                        replies = outcome.replies.len(),
                        reject = outcome.reject.is_some(),
                        "Sieve filtered"
                    );
                }
                if let Some(r) = outcome.reject.take() {
                    plan.rejected.insert(acc, r.reason);
                    continue;
                }
                let copies = self
                    .plan_copies(acc, &outcome, state.disposition, &env.id)
                    .await;
                plan.copies.insert(acc, copies);
                self.plan_redirects(settings, env, msg, trace, acc, &user, &outcome, &mut plan)
                    .await;
                for reply in outcome.replies {
                    plan.outgoing.push(self.vacation_reply(reply).await);
                }
            }
        }
        plan
    }

    async fn plan_copies(
        &self,
        acc: AccountId,
        outcome: &Outcome,
        disposition: Disposition,
        id: &str,
    ) -> Vec<PlannedCopy> {
        let mut out = Vec::new();
        for c in &outcome.copies {
            let mailbox = match self.copy_mailbox(acc, c, disposition).await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(id = %id, account = acc, folder = ?c.folder, error = %e, "Sieve folder unavailable; filed into INBOX");
                    match self.inbox(acc).await {
                        Ok(m) => m,
                        Err(_) => continue,
                    }
                }
            };
            if out.iter().any(|p: &PlannedCopy| p.mailbox == mailbox) {
                continue;
            }
            let (flags, keywords) = flags_of(&c.flags);
            out.push(PlannedCopy {
                mailbox,
                flags,
                keywords,
                edited: c.message.clone(),
            });
        }
        out
    }

    /// The mailbox of a copy: keep goes where the checks said (INBOX or Junk); fileinto by
    /// special use (RFC 8579) when the account has one, else by name, created with `:create`
    /// (RFC 5490 §3.2); a missing mailbox without `:create` is an error (the caller files into
    /// INBOX, RFC 5228 §4.1 lets the implementation decide).
    async fn copy_mailbox(
        &self,
        acc: AccountId,
        c: &sievefilter::Copy,
        disposition: Disposition,
    ) -> Result<i64, String> {
        let Some(folder) = &c.folder else {
            return match disposition {
                // (A quarantined message never reaches Sieve; Junk is the nearest if it did.)
                Disposition::Junk | Disposition::Quarantine => self.junk(acc).await,
                Disposition::Accept => self.inbox(acc).await,
            }
            .map_err(|e| e.to_string());
        };
        if let Some(su) = c.special_use {
            let boxes = self
                .store
                .mailbox_list(acc)
                .await
                .map_err(|e| e.to_string())?;
            if let Some(m) = boxes.iter().find(|m| m.special_use == Some(su)) {
                return Ok(m.id);
            }
        }
        if folder.eq_ignore_ascii_case("INBOX") {
            return self.inbox(acc).await.map_err(|e| e.to_string());
        }
        match self.store.mailbox_get(acc, folder).await {
            Ok(Some(m)) => Ok(m.id),
            Ok(None) if c.create => match self.store.mailbox_create(acc, folder, None).await {
                Ok(m) => Ok(m.id),
                Err(store::StoreError::AlreadyExists(_)) => self
                    .store
                    .mailbox_get(acc, folder)
                    .await
                    .ok()
                    .flatten()
                    .map(|m| m.id)
                    .ok_or_else(|| format!("{folder}: vanished")),
                Err(e) => Err(e.to_string()),
            },
            Ok(None) => Err(format!("{folder}: no such mailbox")),
            Err(e) => Err(e.to_string()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn plan_redirects(
        &self,
        settings: &SieveSettings,
        env: &Envelope,
        msg: &Prepared,
        trace: &str,
        acc: AccountId,
        user: &str,
        outcome: &Outcome,
        plan: &mut Plan,
    ) {
        if outcome.redirects.is_empty() {
            return;
        }
        let keep_instead = |plan: &mut Plan, why: &str| {
            tracing::warn!(id = %env.id, account = %user, reason = why, "Sieve redirect not sent; message kept");
            plan.copies.entry(acc).or_default();
        };
        // Loop protection: a message that went through this account already (its
        // Delivered-To), or through too many hops, is not forwarded again.
        let fields = msg.header_fields();
        let hops = fields
            .iter()
            .filter(|f| f.name.eq_ignore_ascii_case("received"))
            .count();
        let looped = fields.iter().any(|f| {
            f.name.eq_ignore_ascii_case("delivered-to") && f.value.trim().eq_ignore_ascii_case(user)
        });
        let mut inbox_fallback = false;
        if looped || hops >= MAX_HOPS {
            keep_instead(plan, if looped { "loop" } else { "too many hops" });
            inbox_fallback = true;
        } else {
            let day = store::now_unix().div_euclid(86_400);
            let wanted = u32::try_from(outcome.redirects.len()).unwrap_or(u32::MAX);
            let granted = self
                .store
                .sieve_redirects_take(acc, day, wanted, settings.redirects_per_day)
                .await
                .unwrap_or(0);
            if granted < wanted {
                keep_instead(plan, "daily redirect limit reached");
                inbox_fallback = true;
            }
            let sender = if env.from.is_empty() {
                String::new()
            } else {
                self.forwarding_sender(&env.from, store::now_unix()).await
            };
            // An edited message already holds the trace fields (the script saw them).
            let delivered: Arc<[u8]> = format!("Delivered-To: {user}\r\n").into_bytes().into();
            let traced: Arc<[u8]> = format!("Delivered-To: {user}\r\n{trace}")
                .into_bytes()
                .into();
            for (to, edited) in outcome.redirects.iter().take(granted as usize) {
                let (head, body) = match edited {
                    Some(e) => (delivered.clone(), e.clone()),
                    None => (traced.clone(), msg.raw().clone()),
                };
                plan.outgoing.push(Outgoing {
                    sender: sender.clone(),
                    to: to.clone(),
                    head,
                    body,
                });
            }
        }
        if inbox_fallback
            && plan.copies.get(&acc).is_none_or(Vec::is_empty)
            && let Ok(inbox) = self.inbox(acc).await
        {
            plan.copies.entry(acc).or_default().push(PlannedCopy {
                mailbox: inbox,
                flags: Flags::empty(),
                keywords: vec![],
                edited: None,
            });
        }
    }

    /// A vacation reply: null reverse-path (RFC 5230 §5.1... RFC 3834 §3.3), signed with the
    /// key of its From domain.
    async fn vacation_reply(&self, reply: sievefilter::Reply) -> Outgoing {
        let now = store::now_unix();
        let mut head = format!(
            "Received: by {} (Facteur) with local;\r\n\t{}\r\n",
            self.hostname,
            crate::received::rfc5322_date(now)
        );
        let msg = Prepared::new(reply.raw.into(), &self.store.mime_limits());
        let domain = msg
            .analysis()
            .headers
            .from
            .first()
            .and_then(|f| f.rsplit_once('@'))
            .map_or_else(|| self.hostname.clone(), |(_, d)| d.to_string());
        if let Some(signer) = &self.signer
            && let Some(sig) = signer.sign(&[head.as_bytes(), msg.raw()], &domain).await
        {
            head.insert_str(0, &sig);
        }
        Outgoing {
            sender: String::new(),
            to: reply.to,
            head: head.into_bytes().into(),
            body: msg.raw().clone(),
        }
    }

    /// Turns the planned outgoing messages into appends (local addresses, without running
    /// their scripts again) and queue entries (remote ones).
    pub(crate) async fn outgoing_batch(
        &self,
        outgoing: Vec<Outgoing>,
        id: &str,
        now: i64,
    ) -> (Vec<AppendRequest>, Vec<NewQueueEntry>) {
        let mut appends = Vec::new();
        let mut enqueue = Vec::new();
        for o in outgoing {
            let raw = RawMessage::new(o.head.clone(), o.body.clone());
            let remote = |to: String| NewQueueEntry {
                raw: raw.clone(),
                sender: o.sender.clone(),
                recipients: vec![QueueRecipient {
                    address: to,
                    notify: None,
                    orcpt: None,
                    status: "pending".into(),
                    last_reply: None,
                }],
                envid: None,
                ret: None,
                next_attempt: now,
                smtp_id: Some(id.to_string()),
            };
            match self.directory.resolve(&o.to).await {
                Ok(res) if !res.is_empty() => {
                    let head: Arc<[u8]> = [
                        format!("Return-Path: <{}>\r\n", o.sender).as_bytes(),
                        &o.head,
                    ]
                    .concat()
                    .into();
                    for a in res.local.iter().filter(|a| a.enabled) {
                        if let Ok(mailbox_id) = self.inbox(a.id).await {
                            appends.push(AppendRequest {
                                mailbox_id,
                                raw: RawMessage::new(head.clone(), o.body.clone()),
                                flags: Flags::empty(),
                                keywords: vec![],
                                internal_date: now,
                            });
                        }
                    }
                    for ext in res.external {
                        enqueue.push(remote(ext));
                    }
                }
                Ok(_) => tracing::warn!(id = %id, to = %o.to, "Sieve: no such local address"),
                Err(directory::DirectoryError::NotLocal(_)) => enqueue.push(remote(o.to)),
                Err(e) => {
                    tracing::warn!(id = %id, to = %o.to, error = %e, "Sieve: address refused")
                }
            }
        }
        (appends, enqueue)
    }

    /// The refusal of `reject`/`ereject` (RFC 5429 §2.1), sent as the SMTP reply.
    pub(crate) fn reject_reply(reason: &str) -> Reply {
        let text: String = reason
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(200)
            .collect();
        let text = if text.trim().is_empty() {
            "Message refused by the recipient's filter".to_string()
        } else {
            text
        };
        Reply::new(550, "5.7.1", text)
    }

    /// A DSN for a refusal that could not be given at SMTP time (other recipients accepted the
    /// message): RFC 3464 with the reason, to the sender (never to the null sender).
    pub(crate) async fn reject_dsn(&self, env: &Envelope, account: &str, reason: &str) {
        if env.from.is_empty() {
            return;
        }
        let now = store::now_unix();
        let boundary = format!("=_facteur_{}", env.id);
        let from = format!("MAILER-DAEMON@{}", self.hostname);
        let body = format!(
            "From: Mail Delivery System <{from}>\r\nTo: <{to}>\r\nSubject: Message refused by {account}\r\n\
             Date: {date}\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=\"{boundary}\"\r\n\r\n\
             --{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
             Your message {id} was refused by {account}:\r\n\r\n{reason}\r\n\r\n\
             --{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n\
             Reporting-MTA: dns; {host}\r\n\r\nFinal-Recipient: rfc822; {account}\r\nAction: failed\r\n\
             Status: 5.7.1\r\n\r\n--{boundary}--\r\n",
            to = env.from,
            date = crate::received::rfc5322_date(now),
            id = env.id,
            host = self.hostname,
            reason = reason.replace(['\r', '\n'], " "),
        );
        if let Err(e) = self.inject("", &env.from, body.as_bytes()).await {
            tracing::warn!(id = %env.id, error = %e, "Sieve reject notice not sent");
        }
    }
}
