//! The delivery pipeline behind the SMTP state machine: authentication through the directory and
//! the shared login throttle, recipient resolution (aliases, catch-all, plus-addressing, quotas,
//! relay rules), and at the end of data, stage by stage: the message is read (from memory or its
//! spool file, within the processing budget) and analysed once into a [`Prepared`] message; the
//! content checks run over it (on submission the header From must be the sender's; then the
//! configured checks, SPF/DKIM/DMARC first); trace fields are added and submissions DKIM-signed
//! with the key of their checked From domain; and a [`StoreTarget`] stores every local copy and
//! queue entry in one group-committed write, so the final 250 means "on stable storage" for every
//! recipient. The store reuses the analysis and its search text instead of parsing again.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use directory::{Directory, DirectoryError, LoginOutcome};
use message::Prepared;
use net::throttle::LoginThrottle;
use store::{
    AppendRequest, DynStore, Flags, NewQueueEntry, QueueRecipient, RawMessage, StoreError,
    WriteBatch,
};

use crate::backend::{AuthOutcome, AuthUser, Backend, Envelope, Mode, RcptTarget};
use crate::pipeline::{CheckError, Disposition, Pipeline};
use crate::received;
use crate::reply::{self, Reply};
use crate::spool::{MessageData, ProcessingBudget};
pub use crate::target::StoreTarget;
use crate::verdict;

/// Messages up to this size are analysed on the async thread: a thread hop costs more than that.
const ANALYSE_INLINE_MAX: usize = 64 * 1024;

pub struct MailBackend {
    pub store: DynStore,
    pub directory: Directory,
    pub throttle: Arc<LoginThrottle>,
    pub hostname: String,
    /// Woken after a commit that queued outbound mail, so the queue sends it at once.
    pub queue_wake: Option<Arc<tokio::sync::Notify>>,
    /// Sender rewriting for mail forwarded to outside addresses (and its bounces coming back).
    pub srs: Option<Arc<crate::srs::Srs>>,
    /// The inbound check stages (SPF, DKIM, DMARC and ARC first, on the MX port).
    pub checks: Pipeline,
    /// DKIM signing of submitted mail and of the DSNs we make.
    pub signer: Option<Arc<dyn crate::checks::Signer>>,
    /// Memory of the messages being analysed, checked and stored, all deliveries together.
    pub processing: Arc<ProcessingBudget>,
    /// Score thresholds (verdicts on the MX port) and quarantine retention.
    pub verdicts: Arc<crate::verdict::Rules>,
    /// Sieve scripts of domains and accounts, run for each local recipient (none: keep).
    pub sieve: Option<crate::sieve::SieveSettings>,
}

fn relay_denied() -> Reply {
    // No relaying for unauthenticated clients, whatever the address looks like (%-hack, bang path,
    // source route, address literal): only recipients in our own domains are accepted.
    Reply::new(554, "5.7.1", "Relay access denied")
}

pub(crate) fn over_quota() -> Reply {
    Reply::new(452, "4.2.2", "Mailbox full")
}

pub(crate) fn store_reply(e: &StoreError) -> Reply {
    match e {
        StoreError::OverQuota { .. } => over_quota(),
        StoreError::Full(_) => reply::storage_full(),
        _ => reply::local_error(),
    }
}

impl MailBackend {
    /// Analyses the message once, off the async threads when it is large.
    async fn prepare(&self, raw: Vec<u8>) -> Prepared {
        let limits = self.store.mime_limits();
        let raw: Arc<[u8]> = raw.into();
        if raw.len() <= ANALYSE_INLINE_MAX {
            return Prepared::new(raw, &limits);
        }
        let r = raw.clone();
        match tokio::task::spawn_blocking(move || Prepared::new(r, &limits)).await {
            Ok(p) => p,
            // The analysis never panics (it contains its parser's panics); a lost thread is
            // not a reason to lose the message.
            Err(_) => Prepared::new(raw, &limits),
        }
    }

    /// RFC 5322 §3.6.2 on submission: the header From (every address of it) and Sender must
    /// belong to the logged-in account: its own address, an alias it receives, or an address or
    /// domain an admin granted it (`facteur account send-as`). Else one hosted company could
    /// send DMARC-passing mail, signed by us, as another. Both address parsers we have must
    /// agree, so an address one of them misses cannot slip through. Returns the domain to sign
    /// with: the From domain, or the envelope sender's when the message has no From.
    async fn header_from_check(
        &self,
        env: &Envelope,
        msg: &Prepared,
    ) -> Result<String, CheckError> {
        const CHECK: &str = "submission-from";
        let Some(auth) = &env.auth else {
            return Err(CheckError::new(
                CHECK,
                530,
                "5.7.0",
                "Authentication required",
                "no login",
            ));
        };
        let (from_fields, sender_fields) = (msg.field_count("from"), msg.field_count("sender"));
        if from_fields > 1 || sender_fields > 1 {
            // RFC 5322 §3.6: one From, at most one Sender. Receivers disagree about which of
            // several to check, so none is signed.
            return Err(CheckError::new(
                CHECK,
                550,
                "5.7.1",
                "Message refused: it has more than one From or Sender header field",
                format!("{from_fields} From, {sender_fields} Sender"),
            ));
        }
        let a = msg.analysis();
        let mut addresses: Vec<String> = a.headers.from.clone();
        let env_addrs = |list: &[message::Address]| -> Vec<String> {
            list.iter()
                .filter_map(|x| Some(format!("{}@{}", x.mailbox.as_deref()?, x.host.as_deref()?)))
                .map(|s| s.to_lowercase())
                .collect()
        };
        if from_fields == 1 {
            addresses.extend(env_addrs(&a.envelope.from));
        }
        if sender_fields == 1 {
            addresses.extend(env_addrs(&a.envelope.sender));
        }
        addresses.sort();
        addresses.dedup();
        if from_fields == 1 && a.headers.from.is_empty() {
            return Err(CheckError::new(
                CHECK,
                550,
                "5.7.1",
                "Message refused: its From header field has no valid address",
                "unparsable From",
            ));
        }
        for addr in &addresses {
            if !self.may_send_as(auth, addr).await {
                return Err(CheckError::new(
                    CHECK,
                    550,
                    "5.7.1",
                    format!(
                        "Message refused: the From or Sender address <{addr}> does not belong to {}",
                        auth.address
                    ),
                    format!(
                        "header address {addr} not owned by account {}",
                        auth.account_id
                    ),
                ));
            }
        }
        let from_domain = a
            .headers
            .from
            .first()
            .and_then(|f| f.rsplit_once('@'))
            .map(|(_, d)| d.to_string());
        Ok(from_domain.unwrap_or_else(|| {
            env.from
                .rsplit_once('@')
                .map(|(_, d)| d.to_ascii_lowercase())
                .unwrap_or_default()
        }))
    }

    /// May this user send as `address`: theirs, an alias of theirs, or granted to them.
    async fn may_send_as(&self, auth: &AuthUser, address: &str) -> bool {
        if self.owns(auth, address).await {
            return true;
        }
        let Some((_, domain)) = address.rsplit_once('@') else {
            return false;
        };
        let domain_pattern = format!("@{}", domain.to_ascii_lowercase());
        match self.store.send_as_list(auth.account_id).await {
            Ok(grants) => grants
                .iter()
                .any(|g| g.eq_ignore_ascii_case(address) || *g == domain_pattern),
            Err(e) => {
                tracing::warn!(error = %e, "send-as grants could not be read");
                false
            }
        }
    }

    async fn over_quota(&self, acc: &store::AccountRecord, extra: u64) -> Result<bool, StoreError> {
        let usage = self.store.quota_usage(acc.id).await?;
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
        if self.may_send_as(auth, from).await {
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
                // An early answer for a mailbox already full; the store decides for good at
                // commit. Accounts without quotas (the usual case) cost no read here.
                for acc in enabled
                    .iter()
                    .filter(|a| a.quota_bytes.is_some() || a.quota_messages.is_some())
                {
                    match self.over_quota(acc, 0).await {
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

    fn pipeline(&self) -> Option<&Pipeline> {
        (!self.checks.is_empty()).then_some(&self.checks)
    }

    async fn deliver(&self, env: &Envelope, data: MessageData) -> Vec<Result<(), Reply>> {
        let n = env.recipients.len();
        let refuse_all = |r: Reply| vec![Err(r); n];
        // Bytes being analysed, checked and stored are bounded, all deliveries together: a large
        // message waits for its turn rather than adding to the memory of the others.
        let _permit = self.processing.hold(data.len()).await;
        let raw = match data.into_bytes().await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(id = %env.id, error = %e, "spooled message could not be read");
                return refuse_all(reply::local_error());
            }
        };
        // RFC 8601 §5: a border MTA removes Authentication-Results fields that claim to be ours;
        // with verdicts on, so do the spam fields we write.
        let raw = match env.mode {
            Mode::Mx => {
                let spam_fields = self.verdicts.enabled;
                crate::checks::strip_fields(&raw, |f| {
                    crate::checks::is_ours(f, &self.hostname)
                        || (spam_fields
                            && crate::checks::field_name(f).is_some_and(verdict::is_spam_field))
                })
                .unwrap_or(raw)
            }
            _ => raw,
        };
        let prepared = self.prepare(raw).await;

        // The content stage: on submission the header From must be the sender's own; then the
        // configured checks (SPF/DKIM/DMARC first), over the one prepared message.
        let mut state = env.checks.clone();
        let sign_domain = if env.mode == Mode::Submission {
            match self.header_from_check(env, &prepared).await {
                Ok(d) => Some(d),
                Err(e) => {
                    tracing::info!(id = %env.id, check = e.check, reply = %e.reply, detail = %e.detail, "message refused");
                    return refuse_all(e.reply);
                }
            }
        } else {
            None
        };
        if let Err(e) = self.checks.content(env, &prepared, &mut state).await {
            log_decision(env, &prepared, &state, "reject", Some(&e));
            return refuse_all(e.reply);
        }
        // The verdict over the total score (MX only: submissions are our own users' mail).
        let decision = if env.mode == Mode::Mx && self.verdicts.enabled {
            let d = verdict::decide(&state, self.thresholds(env).await);
            if d.action == verdict::Action::Reject {
                let e = CheckError::new(
                    "verdict",
                    550,
                    "5.7.1",
                    "Message refused: it was classified as spam",
                    format!("score {:.2} >= {:.2}", state.score, d.thresholds.reject),
                );
                log_decision(env, &prepared, &state, "reject", Some(&e));
                return refuse_all(e.reply);
            }
            state.headers.push_str(&verdict::headers(&state, &d));
            if let verdict::Action::Deliver(disp) = d.action {
                state.disposition = disp;
            }
            Some(d)
        } else {
            None
        };

        let now = store::now_unix();
        // Trace fields: the checks' fields (Authentication-Results, RFC 8601 §5: above our
        // Received), Received, and on submission Message-ID/Date when missing.
        let mut head = std::mem::take(&mut state.headers);
        head.push_str(&received::received(env, &self.hostname, now));
        if env.mode == Mode::Submission {
            head.push_str(&received::submission_headers(
                prepared.raw(),
                &self.hostname,
                now,
                &env.id,
            ));
        }
        if let (Some(signer), Some(domain)) = (&self.signer, &sign_domain)
            && let Some(sig) = signer
                .sign(&[head.as_bytes(), prepared.raw()], domain)
                .await
        {
            head.insert_str(0, &sig);
        }

        let action = match state.disposition {
            Disposition::Accept => "inbox",
            Disposition::Junk => "junk",
            Disposition::Quarantine => "quarantine",
        };
        let results = if state.disposition == Disposition::Quarantine {
            // Held for an administrator: no script runs until it is released.
            self.quarantine(env, &prepared, head, &state, now).await
        } else {
            // Sieve, after the checks and the verdict (it sees their fields and spamtest sees
            // the score), before the one write.
            let mut plan = match &self.sieve {
                Some(s) if env.recipients.iter().any(|r| !r.target.local.is_empty()) => {
                    Some(self.sieve_plan(s, env, &prepared, &state, &head).await)
                }
                _ => None,
            };
            let mut late_rejects: Vec<(i64, String)> = Vec::new();
            if let Some(p) = &plan
                && !p.rejected.is_empty()
            {
                // RFC 5429 §2.1: refuse in the protocol when we can. Outside LMTP one reply
                // answers every recipient: possible when every recipient refuses.
                let every = env.recipients.iter().all(|r| {
                    r.target.external.is_empty()
                        && !r.target.local.is_empty()
                        && r.target.local.iter().all(|a| p.rejected.contains_key(a))
                });
                if env.mode != Mode::Lmtp && every {
                    let reason = p.rejected.values().next().cloned().unwrap_or_default();
                    tracing::info!(id = %env.id, reason = %reason, "refused by a Sieve reject");
                    return refuse_all(Self::reject_reply(&reason));
                }
                if env.mode != Mode::Lmtp {
                    late_rejects = p.rejected.iter().map(|(a, r)| (*a, r.clone())).collect();
                }
            }
            let outgoing = match &mut plan {
                Some(p) => std::mem::take(&mut p.outgoing),
                None => Vec::new(),
            };
            let mut target = StoreTarget::new(self, env, now);
            for (i, rcpt) in env.recipients.iter().enumerate() {
                target.add_rcpt(i, rcpt).await;
            }
            if !outgoing.is_empty() {
                let (appends, enqueue) = self.outgoing_batch(outgoing, &env.id, now).await;
                target.add_extra(appends, enqueue);
            }
            target
                .body(&prepared, head, state.disposition, plan.as_ref())
                .await;
            let results = target.commit().await;
            if results.iter().any(Result::is_ok) {
                for (acc, reason) in late_rejects {
                    let who = match self.store.account_get_by_id(acc).await {
                        Ok(Some(a)) => a.address(),
                        _ => continue,
                    };
                    self.reject_dsn(env, &who, &reason).await;
                }
            }
            results
        };
        if results.iter().any(Result::is_ok)
            && (decision.is_some()
                || !state.reasons.is_empty()
                || state.disposition != Disposition::Accept)
        {
            log_decision(env, &prepared, &state, action, None);
        }
        results
    }
}

/// The one log line of a message's verdict: ids, score, every reason with its points, and what
/// was done (`inbox`, `junk`, `quarantine`, `reject`, with the refusing check).
fn log_decision(
    env: &Envelope,
    msg: &Prepared,
    state: &crate::pipeline::CheckState,
    action: &str,
    refused: Option<&CheckError>,
) {
    tracing::info!(
        id = %env.id,
        message_id = msg.analysis().envelope.message_id.as_deref().unwrap_or(""),
        service = env.mode.name(),
        peer = env.peer.map(tracing::field::display),
        from = %env.from,
        score = format_args!("{:.2}", state.score),
        reasons = %verdict::reasons_text(&state.reasons),
        action,
        check = refused.map(|e| e.check),
        detail = refused.map(|e| tracing::field::display(&e.detail)),
        "verdict"
    );
}

impl MailBackend {
    /// The transaction's thresholds: each recipient's (account, else domain, else default),
    /// the most lenient of them (one verdict per transaction, see [`verdict::Thresholds::lenient`]).
    async fn thresholds(&self, env: &Envelope) -> verdict::Thresholds {
        let rules = &self.verdicts;
        let mut out: Option<verdict::Thresholds> = None;
        for rcpt in &env.recipients {
            let domain = rcpt
                .address
                .rsplit_once('@')
                .map(|(_, d)| d)
                .unwrap_or_default();
            let mut accounts = Vec::new();
            if !rules.accounts.is_empty() {
                for &id in &rcpt.target.local {
                    if let Ok(Some(acc)) = self.store.account_get_by_id(id).await {
                        accounts.push(acc.address());
                    }
                }
            }
            let t = rules.for_recipient(domain, &accounts);
            out = Some(out.map_or(t, |o| o.lenient(t)));
        }
        out.unwrap_or(rules.default)
    }

    /// Holds the message in the store's quarantine for every recipient (local accounts, and
    /// remote ones reached through an alias); one durable write, so the 250 that follows means
    /// the message is kept.
    async fn quarantine(
        &self,
        env: &Envelope,
        msg: &Prepared,
        head: String,
        state: &crate::pipeline::CheckState,
        now: i64,
    ) -> Vec<Result<(), Reply>> {
        let n = env.recipients.len();
        let mut accounts: Vec<i64> = Vec::new();
        let mut remote: Vec<(String, String)> = Vec::new();
        for rcpt in &env.recipients {
            for &a in &rcpt.target.local {
                if !accounts.contains(&a) {
                    accounts.push(a);
                }
            }
            for ext in &rcpt.target.external {
                let sender = if ext.eq_ignore_ascii_case(&rcpt.address) {
                    env.from.clone()
                } else {
                    self.forwarding_sender(&env.from, now).await
                };
                if !remote.iter().any(|(_, a)| a.eq_ignore_ascii_case(ext)) {
                    remote.push((sender, ext.clone()));
                }
            }
        }
        let a = msg.analysis();
        let mut raw = head.into_bytes();
        raw.extend_from_slice(msg.raw());
        let q = store::NewQuarantine {
            smtp_id: env.id.clone(),
            message_id: a.envelope.message_id.clone(),
            sender: env.from.clone(),
            recipients: env.recipients.iter().map(|r| r.address.clone()).collect(),
            accounts,
            remote,
            subject: a.envelope.subject.clone().unwrap_or_default(),
            score: state.score,
            reasons: verdict::reasons_text(&state.reasons),
            raw,
            created: now,
            expires: now.saturating_add(self.verdicts.retention_secs),
        };
        match self.store.quarantine_add(&q).await {
            Ok(qid) => {
                tracing::info!(id = %env.id, quarantine = qid, "message held in quarantine");
                vec![Ok(()); n]
            }
            Err(e) => {
                tracing::error!(id = %env.id, error = %e, "message not stored in quarantine");
                vec![Err(store_reply(&e)); n]
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
        let msg = Prepared::new(raw.into(), &self.store.mime_limits());
        // We wrote its From (MAILER-DAEMON@ our host name): sign with that domain or a parent.
        let domain = msg
            .analysis()
            .headers
            .from
            .first()
            .and_then(|f| f.rsplit_once('@'))
            .map_or_else(|| self.hostname.clone(), |(_, d)| d.to_string());
        if let Some(signer) = &self.signer
            && let Some(sig) = signer.sign(&[head.as_bytes(), raw], &domain).await
        {
            // Bounces are signed too, so they pass DMARC at the original sender's provider.
            head.insert_str(0, &sig);
        }
        let head: Arc<[u8]> = head.into_bytes().into();
        let relayed = RawMessage::new(head.clone(), msg.raw().clone())
            .with_analysis(Arc::new(msg.analysis_with_prefix(&head)));
        let final_head: Arc<[u8]> = [format!("Return-Path: <{from}>\r\n").as_bytes(), &head]
            .concat()
            .into();
        let final_copy = RawMessage::new(final_head.clone(), msg.raw().clone())
            .with_analysis(Arc::new(msg.analysis_with_prefix(&final_head)));
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
    pub(crate) async fn forwarding_sender(&self, from: &str, now: i64) -> String {
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
    pub(crate) async fn junk(&self, account: i64) -> Result<i64, StoreError> {
        let boxes = self.store.mailbox_list(account).await?;
        match boxes
            .iter()
            .find(|m| m.special_use == Some(store::SpecialUse::Junk))
        {
            Some(m) => Ok(m.id),
            None => self.inbox(account).await,
        }
    }

    pub(crate) async fn inbox(&self, account: i64) -> Result<i64, StoreError> {
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
