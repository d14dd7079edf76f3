//! The delivery pipeline behind the SMTP state machine: authentication through the directory and
//! the shared login throttle, recipient resolution (aliases, catch-all, plus-addressing, quotas,
//! relay rules), and durable storage: one group-committed write holding every local copy and the
//! outbound queue entries, so the final 250 means "on stable storage" for every recipient.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use directory::{Directory, DirectoryError, LoginOutcome};
use net::throttle::LoginThrottle;
use store::{
    AppendRequest, DynStore, Flags, NewQueueEntry, QueueRecipient, StoreError, WriteBatch,
};

use crate::backend::{AuthOutcome, AuthUser, Backend, Envelope, Mode, RcptTarget};
use crate::received;
use crate::reply::{self, Reply};

pub struct MailBackend {
    pub store: DynStore,
    pub directory: Directory,
    pub throttle: Arc<LoginThrottle>,
    pub hostname: String,
    /// Woken after a commit that queued outbound mail, so the queue sends it at once.
    pub queue_wake: Option<Arc<tokio::sync::Notify>>,
    /// Sender rewriting for mail forwarded to outside addresses (and its bounces coming back).
    pub srs: Option<Arc<crate::srs::Srs>>,
    /// SPF, DKIM, DMARC and ARC checks of mail received on the MX port.
    pub verifier: Option<Arc<dyn crate::checks::Verifier>>,
    /// DKIM signing of submitted mail and of the DSNs we make.
    pub signer: Option<Arc<dyn crate::checks::Signer>>,
}

fn relay_denied() -> Reply {
    // No relaying for unauthenticated clients, whatever the address looks like (%-hack, bang path,
    // source route, address literal): only recipients in our own domains are accepted.
    Reply::new(554, "5.7.1", "Relay access denied")
}

fn over_quota() -> Reply {
    Reply::new(452, "4.2.2", "Mailbox full")
}

fn store_reply(e: &StoreError) -> Reply {
    match e {
        StoreError::OverQuota { .. } => over_quota(),
        StoreError::Full(_) => reply::storage_full(),
        _ => reply::local_error(),
    }
}

impl MailBackend {
    async fn over_quota(&self, account_id: i64, extra: u64) -> Result<bool, StoreError> {
        let Some(acc) = self.store.account_get_by_id(account_id).await? else {
            return Ok(false);
        };
        let usage = self.store.quota_usage(account_id).await?;
        Ok(acc.quota_bytes.is_some_and(|q| usage.bytes + extra > q)
            || acc
                .quota_messages
                .is_some_and(|q| usage.messages + u64::from(extra > 0) > q))
    }

    async fn owns(&self, auth: &AuthUser, from: &str) -> bool {
        let Ok(addr) = directory::Address::parse(from) else {
            return false;
        };
        let (base, _) = addr.split_plus();
        let plain = format!("{base}@{}", addr.domain());
        if plain.eq_ignore_ascii_case(&auth.address)
            || addr.to_string().eq_ignore_ascii_case(&auth.address)
        {
            return true;
        }
        // An alias the user receives through may be used as sender (not a catch-all).
        for candidate in [addr.local_part().to_string(), base.to_string()] {
            if let Ok(Some(alias)) = self.store.alias_get(&candidate, addr.domain()).await
                && alias
                    .targets
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(&auth.address))
            {
                return true;
            }
        }
        false
    }
}

#[async_trait]
impl Backend for MailBackend {
    async fn authenticate(&self, peer: Option<IpAddr>, user: &str, password: &str) -> AuthOutcome {
        match self
            .directory
            .login(&self.throttle, "smtp", peer, user, password)
            .await
        {
            LoginOutcome::Ok(acc) => AuthOutcome::Ok(AuthUser {
                account_id: acc.id,
                address: acc.address(),
            }),
            LoginOutcome::Failed => AuthOutcome::Failed,
            LoginOutcome::Held { retry_after } => AuthOutcome::Held { retry_after },
            LoginOutcome::Unavailable => AuthOutcome::Unavailable,
        }
    }

    async fn check_sender(
        &self,
        auth: Option<&AuthUser>,
        from: Option<&str>,
        mode: Mode,
    ) -> Result<(), Reply> {
        if mode != Mode::Submission {
            return Ok(());
        }
        let auth = auth.ok_or_else(|| Reply::new(530, "5.7.0", "Authentication required"))?;
        let from =
            from.ok_or_else(|| Reply::new(553, "5.7.1", "Null sender not allowed for submission"))?;
        if self.owns(auth, from).await {
            Ok(())
        } else {
            Err(Reply::new(
                553,
                "5.7.1",
                format!("Sender address not owned by {}", auth.address),
            ))
        }
    }

    async fn check_recipient(
        &self,
        mode: Mode,
        auth: Option<&AuthUser>,
        local: &str,
        domain: &str,
        literal: bool,
    ) -> Result<RcptTarget, Reply> {
        let address = format!("{local}@{domain}");
        let may_relay = mode == Mode::Submission && auth.is_some();
        let non_local = || {
            if may_relay {
                Ok(RcptTarget {
                    local: vec![],
                    external: vec![address.clone()],
                })
            } else if mode == Mode::Lmtp {
                Err(Reply::new(550, "5.1.1", "Not a local domain"))
            } else {
                Err(relay_denied())
            }
        };
        if literal {
            return non_local();
        }
        if let Some(srs) = &self.srs
            && domain.eq_ignore_ascii_case(&srs.domain)
        {
            match srs.reverse(local, store::now_unix()) {
                Ok(Some(original)) => {
                    // A bounce (or reply) to an address we rewrote: it goes back to the original.
                    return Ok(RcptTarget {
                        local: vec![],
                        external: vec![original],
                    });
                }
                Ok(None) => {}
                Err(why) => {
                    tracing::info!(rcpt = %address, reason = why, "SRS address refused");
                    return Err(Reply::new(550, "5.1.1", "Invalid SRS address"));
                }
            }
        }
        match self.directory.resolve(&address).await {
            Ok(res) if res.is_empty() => Err(Reply::new(550, "5.1.1", "Mailbox unavailable")),
            Ok(res) => {
                let enabled: Vec<_> = res.local.iter().filter(|a| a.enabled).collect();
                if enabled.is_empty() && res.external.is_empty() {
                    return Err(Reply::new(550, "5.2.1", "Mailbox disabled"));
                }
                for acc in &enabled {
                    match self.over_quota(acc.id, 0).await {
                        Ok(true) => return Err(over_quota()),
                        Ok(false) => {}
                        Err(e) => return Err(store_reply(&e)),
                    }
                }
                Ok(RcptTarget {
                    local: enabled.iter().map(|a| a.id).collect(),
                    external: res.external,
                })
            }
            Err(DirectoryError::NotLocal(_)) => non_local(),
            Err(DirectoryError::InvalidAddress(_)) => {
                Err(Reply::new(553, "5.1.3", "Bad recipient address syntax"))
            }
            Err(DirectoryError::AliasTooDeep(_)) => {
                Err(Reply::new(554, "5.4.6", "Routing loop detected"))
            }
            Err(e) => {
                tracing::warn!(error = %e, "recipient lookup failed");
                Err(reply::local_error())
            }
        }
    }

    async fn deliver(&self, env: &Envelope, msg: Vec<u8>) -> Vec<Result<(), Reply>> {
        let n = env.recipients.len();
        let now = store::now_unix();
        let mut head = received::received(env, &self.hostname, now);
        if env.mode == Mode::Submission {
            head.push_str(&received::submission_headers(
                &msg,
                &self.hostname,
                now,
                &env.id,
            ));
        }
        let mut quarantine = false;
        let mut msg = msg;
        if env.mode == Mode::Mx
            && let Some(verifier) = &self.verifier
        {
            msg = crate::checks::strip_forged_results(&msg, &self.hostname);
            let verdict = verifier.verify(env, &msg).await;
            match &verdict.disposition {
                crate::checks::Disposition::Reject(why) => {
                    tracing::info!(id = %env.id, peer = env.peer.map(tracing::field::display), from = %env.from, reason = %why, "message rejected by DMARC policy");
                    return vec![Err(Reply::new(550, "5.7.1", why.clone())); n];
                }
                crate::checks::Disposition::Quarantine => quarantine = true,
                crate::checks::Disposition::Accept => {}
            }
            // RFC 8601 §5: our verdict goes on top, above our Received field.
            head.insert_str(0, &verdict.header);
        }
        if env.mode == Mode::Submission
            && let Some(signer) = &self.signer
        {
            let domain = env
                .from
                .rsplit_once('@')
                .map(|(_, d)| d)
                .unwrap_or_default();
            let signed_part = [head.as_bytes(), &msg].concat();
            if let Some(sig) = signer.sign(&signed_part, domain).await {
                head.insert_str(0, &sig);
            }
        }
        let relayed: Arc<[u8]> = [head.as_bytes(), &msg].concat().into();
        // RFC 5321 §4.4: the final delivery adds Return-Path with the envelope sender.
        let final_copy: Arc<[u8]> = [
            format!("Return-Path: <{}>\r\n", env.from).as_bytes(),
            &relayed,
        ]
        .concat()
        .into();
        drop(msg);

        let mut results: Vec<Result<(), Reply>> = vec![Ok(()); n];
        // Quotas are checked again with the real size: outside LMTP one full mailbox refuses all.
        let mut inboxes: HashMap<i64, i64> = HashMap::new();
        for (i, rcpt) in env.recipients.iter().enumerate() {
            for &acc in &rcpt.target.local {
                match self.over_quota(acc, final_copy.len() as u64).await {
                    Ok(false) => {}
                    Ok(true) => results[i] = Err(over_quota()),
                    Err(e) => results[i] = Err(store_reply(&e)),
                }
                if results[i].is_ok() && !inboxes.contains_key(&acc) {
                    let target = if quarantine {
                        self.junk(acc).await
                    } else {
                        self.inbox(acc).await
                    };
                    match target {
                        Ok(id) => {
                            inboxes.insert(acc, id);
                        }
                        Err(e) => results[i] = Err(store_reply(&e)),
                    }
                }
            }
        }
        if env.mode != Mode::Lmtp
            && let Some(Err(r)) = results.iter().find(|r| r.is_err()).cloned()
        {
            return vec![Err(r); n];
        }
        let mut batch = WriteBatch::default();
        let mut accounts_done = std::collections::HashSet::new();
        // Keyed by (destination domain, envelope sender): forwarded copies carry an SRS sender.
        let mut remote: BTreeMap<(String, String), Vec<QueueRecipient>> = BTreeMap::new();
        // Looked up only when a recipient is reached through an alias (most messages have none).
        let mut forwarded_sender: Option<String> = None;
        for (i, rcpt) in env.recipients.iter().enumerate() {
            if results[i].is_err() {
                continue;
            }
            for acc in &rcpt.target.local {
                if accounts_done.insert(*acc)
                    && let Some(&mailbox_id) = inboxes.get(acc)
                {
                    batch.appends.push(AppendRequest {
                        mailbox_id,
                        raw: final_copy.clone(),
                        flags: Flags::empty(),
                        keywords: vec![],
                        internal_date: now,
                    });
                }
            }
            for ext in &rcpt.target.external {
                let domain = ext
                    .rsplit_once('@')
                    .map(|(_, d)| d.to_ascii_lowercase())
                    .unwrap_or_default();
                // An address reached through an alias is a forward: SPF at the next hop will
                // check us, not the original sender's domain.
                let sender = if ext.eq_ignore_ascii_case(&rcpt.address) {
                    env.from.clone()
                } else {
                    match &forwarded_sender {
                        Some(s) => s.clone(),
                        None => {
                            let s = self.forwarding_sender(&env.from, now).await;
                            forwarded_sender = Some(s.clone());
                            s
                        }
                    }
                };
                let list = remote.entry((domain, sender)).or_default();
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
        // One queue entry per destination domain and sender.
        for ((_, sender), recipients) in remote {
            batch.enqueue.push(NewQueueEntry {
                raw: relayed.clone(),
                sender,
                recipients,
                envid: env.envid.clone(),
                ret: env.ret.clone(),
                next_attempt: now,
                // [logs] the id of the `250 ... queued as`, named by every delivery attempt's log.
                smtp_id: Some(env.id.clone()),
            });
        }
        match self.store.commit(batch).await {
            Ok(done) => {
                if !done.queued.is_empty()
                    && let Some(w) = &self.queue_wake
                {
                    w.notify_one();
                }
                tracing::info!(
                    id = %env.id,
                    service = env.mode.name(),
                    peer = env.peer.map(tracing::field::display),
                    from = %env.from,
                    recipients = n,
                    stored = done.appended.len(),
                    queued = done.queued.len(),
                    size = final_copy.len(),
                    "message accepted"
                );
                results
            }
            Err(e) => {
                tracing::error!(id = %env.id, error = %e, "message not stored");
                let r = store_reply(&e);
                results.into_iter().map(|x| x.and(Err(r.clone()))).collect()
            }
        }
    }
}

impl MailBackend {
    /// Delivers a message made here (a delivery status notification) from `from` to `to`: into
    /// the INBOX of local recipients, or into the outbound queue, in one durable write. No quota
    /// check: a DSN must reach its sender even when their mailbox is full.
    pub async fn inject(&self, from: &str, to: &str, raw: &[u8]) -> Result<(), String> {
        let now = store::now_unix();
        // [logs] a DSN is a message of its own: its own id, never one an SMTP client was given.
        let id = crate::id::transaction_id();
        let head = format!(
            "Received: by {} (Facteur) with local;\r\n\t{}\r\n",
            self.hostname,
            received::rfc5322_date(now)
        );
        let mut head = head;
        if let Some(signer) = &self.signer
            && let Some(sig) = signer
                .sign(&[head.as_bytes(), raw].concat(), &self.hostname)
                .await
        {
            // Bounces are signed too, so they pass DMARC at the original sender's provider.
            head.insert_str(0, &sig);
        }
        let relayed: Arc<[u8]> = [head.as_bytes(), raw].concat().into();
        let final_copy: Arc<[u8]> = [format!("Return-Path: <{from}>\r\n").as_bytes(), &relayed]
            .concat()
            .into();
        let mut batch = WriteBatch::default();
        let mut external: Vec<String> = Vec::new();
        // A DSN for a forwarded message goes to its SRS sender: decode it back to the original.
        if let (Some(srs), Some((local, domain))) = (&self.srs, to.rsplit_once('@'))
            && domain.eq_ignore_ascii_case(&srs.domain)
            && let Ok(Some(original)) = srs.reverse(local, now)
        {
            return Box::pin(self.inject(from, &original, raw)).await;
        }
        match self.directory.resolve(to).await {
            Ok(res) if res.is_empty() => return Err(format!("{to}: no such local address")),
            Ok(res) => {
                for acc in res.local.iter().filter(|a| a.enabled) {
                    let mailbox_id = self.inbox(acc.id).await.map_err(|e| e.to_string())?;
                    batch.appends.push(AppendRequest {
                        mailbox_id,
                        raw: final_copy.clone(),
                        flags: Flags::empty(),
                        keywords: vec![],
                        internal_date: now,
                    });
                }
                external = res.external;
            }
            Err(DirectoryError::NotLocal(_)) => external.push(to.to_string()),
            Err(e) => return Err(e.to_string()),
        }
        let mut remote: BTreeMap<String, Vec<QueueRecipient>> = BTreeMap::new();
        for ext in external {
            let domain = ext
                .rsplit_once('@')
                .map(|(_, d)| d.to_ascii_lowercase())
                .unwrap_or_default();
            remote.entry(domain).or_default().push(QueueRecipient {
                address: ext,
                notify: None,
                orcpt: None,
                status: "pending".into(),
                last_reply: None,
            });
        }
        for (_, recipients) in remote {
            batch.enqueue.push(NewQueueEntry {
                raw: relayed.clone(),
                sender: from.to_string(),
                recipients,
                envid: None,
                ret: None,
                next_attempt: now,
                smtp_id: Some(id.clone()),
            });
        }
        if batch.appends.is_empty() && batch.enqueue.is_empty() {
            return Err(format!("{to}: every local recipient is disabled"));
        }
        let done = self.store.commit(batch).await.map_err(|e| e.to_string())?;
        if !done.queued.is_empty()
            && let Some(w) = &self.queue_wake
        {
            w.notify_one();
        }
        // [logs] where the DSN went, under its own id.
        tracing::info!(
            id = %id,
            from = %from,
            to = %to,
            stored = done.appended.len(),
            queued = done.queued.len(),
            "notification accepted"
        );
        Ok(())
    }

    /// The envelope sender for copies forwarded outside: SRS-rewritten unless it is empty or in
    /// one of our own domains (our SPF covers those already).
    async fn forwarding_sender(&self, from: &str, now: i64) -> String {
        let Some(srs) = &self.srs else {
            return from.to_string();
        };
        let Some((_, domain)) = from.rsplit_once('@') else {
            return from.to_string();
        };
        match self.store.domain_get(&domain.to_ascii_lowercase()).await {
            Ok(Some(_)) => from.to_string(),
            _ => srs.forward(from, now),
        }
    }

    /// The account's Junk folder (special-use \\Junk, RFC 6154), or INBOX when it has none.
    async fn junk(&self, account: i64) -> Result<i64, StoreError> {
        let boxes = self.store.mailbox_list(account).await?;
        match boxes
            .iter()
            .find(|m| m.special_use == Some(store::SpecialUse::Junk))
        {
            Some(m) => Ok(m.id),
            None => self.inbox(account).await,
        }
    }

    async fn inbox(&self, account: i64) -> Result<i64, StoreError> {
        match self.store.mailbox_get(account, store::INBOX).await? {
            Some(m) => Ok(m.id),
            None => match self.store.mailbox_create(account, store::INBOX, None).await {
                Ok(m) => Ok(m.id),
                Err(StoreError::AlreadyExists(_)) => self
                    .store
                    .mailbox_get(account, store::INBOX)
                    .await?
                    .map(|m| m.id)
                    .ok_or_else(|| StoreError::NotFound("INBOX".into())),
                Err(e) => Err(e),
            },
        }
    }
}
