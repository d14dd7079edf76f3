//! Running the scripts of one recipient over one message.

use std::collections::HashMap;
use std::sync::Arc;

use sieve::compiler::grammar::actions::action_redirect::Notify;
use sieve::runtime::RuntimeError;
use sieve::{Event, Input, Mailbox, Recipient, Script, SpamStatus, VirusStatus};
use store::{AccountId, DynStore, SieveOwner, SpecialUse};

use crate::Engine;

/// Events one run may produce before it is stopped, whatever the CPU limit allows.
const MAX_EVENTS: usize = 1000;
/// Keys of the duplicate/vacation state are hashed above this length.
const MAX_SEEN_KEY: usize = 200;

/// The envelope of the delivery to one recipient.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    /// MAIL FROM (empty for the null reverse-path).
    pub from: &'a str,
    /// RCPT TO as given (with its plus tag: subaddress, RFC 5233).
    pub to: &'a str,
    /// The account's own address (vacation's own addresses, RFC 5230 §4.5).
    pub user: &'a str,
    pub user_name: &'a str,
}

/// What the inbound checks said (the pipeline's `CheckState`), for spamtest and virustest
/// (RFC 5235).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Verdict {
    /// Whether any content check ran (else spamtest answers 0, "not tested").
    pub tested: bool,
    /// The pipeline's total score in points.
    pub score: f64,
    /// The pipeline sent the message to Junk.
    pub junk: bool,
    /// A virus check found something.
    pub virus: bool,
}

/// The score at which spamtestplus says 100%; the Junk disposition says it too.
pub const SPAM_SCORE_FULL: f64 = 10.0;

impl Verdict {
    fn spam_status(&self) -> SpamStatus {
        if !self.tested {
            SpamStatus::Unknown
        } else if self.junk {
            SpamStatus::Spam
        } else if self.score <= 0.0 {
            SpamStatus::Ham
        } else {
            SpamStatus::MaybeSpam((self.score / SPAM_SCORE_FULL).clamp(0.0, 1.0))
        }
    }

    fn virus_status(&self) -> VirusStatus {
        match (self.tested, self.virus) {
            (_, true) => VirusStatus::Virus,
            (true, false) => VirusStatus::Clean,
            (false, false) => VirusStatus::Unknown,
        }
    }
}

/// A copy to store: `keep` (INBOX, `folder` None) or `fileinto`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub folder: Option<String>,
    /// RFC 8579: file into the mailbox with this special use when there is one.
    pub special_use: Option<SpecialUse>,
    /// RFC 5490 §3.2 (`:create`): create the mailbox when missing.
    pub create: bool,
    /// RFC 5232 flags and keywords of the copy.
    pub flags: Vec<String>,
    /// The edited message (editheader, RFC 5293) to store instead of the original.
    pub message: Option<Arc<[u8]>>,
}

/// A message the script sends itself (vacation, RFC 5230), with the null reverse-path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub to: String,
    pub raw: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub reason: String,
    /// `ereject` (RFC 5429 §2.1): refuse at the protocol level, never with a DSN if avoidable.
    pub extended: bool,
}

/// What the scripts of one recipient decided. When `error` is set, the caller ignores the rest
/// and keeps the message in INBOX (mail is never lost because of a script).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub copies: Vec<Copy>,
    /// Addresses to forward to (RFC 5228 §4.2), with the edited message when there is one.
    pub redirects: Vec<(String, Option<Arc<[u8]>>)>,
    pub replies: Vec<Reply>,
    pub reject: Option<Reject>,
    pub discarded: bool,
    /// Scripts that ran, by name (`domain:NAME`, `user:NAME`), for the log.
    pub scripts: Vec<String>,
    pub error: Option<String>,
}

impl Outcome {
    /// The outcome without scripts: keep in INBOX.
    pub fn keep() -> Outcome {
        Outcome {
            copies: vec![Copy {
                folder: None,
                special_use: None,
                create: false,
                flags: vec![],
                message: None,
            }],
            ..Outcome::default()
        }
    }
}

/// One script's result before it is merged.
#[derive(Default)]
struct ScriptRun {
    copies: Vec<Copy>,
    /// The keep (explicit, or implicit: sieve-rs reports it as a Keep event at the end).
    keep_copy: Option<Copy>,
    redirects: Vec<(String, Option<Arc<[u8]>>)>,
    replies: Vec<Reply>,
    reject: Option<Reject>,
    discarded: bool,
}

struct Ctx<'a> {
    store: &'a DynStore,
    account: AccountId,
    domain: &'a str,
    mailboxes: Option<Vec<store::MailboxRecord>>,
}

impl Engine {
    /// Runs the domain's active script, then (unless the domain's took a final action: fileinto,
    /// redirect, discard, reject) the account's active one. No script: keep. A script that
    /// fails: the error, and the caller keeps in INBOX.
    pub async fn run(
        &self,
        store: &DynStore,
        account: AccountId,
        domain: &str,
        raw: &[u8],
        env: &Envelope<'_>,
        verdict: Verdict,
    ) -> Outcome {
        let mut out = Outcome::default();
        let mut ctx = Ctx {
            store,
            account,
            domain,
            mailboxes: None,
        };
        let owners = [
            ("domain", SieveOwner::Domain(domain.to_ascii_lowercase())),
            ("user", SieveOwner::Account(account)),
        ];
        let mut final_keep: Option<Copy> = None;
        for (kind, owner) in owners {
            let script = match store.sieve_active(&owner).await {
                Ok(Some(s)) => s,
                Ok(None) => continue,
                Err(e) => {
                    out.error = Some(format!("{kind} script could not be read: {e}"));
                    return out;
                }
            };
            out.scripts.push(format!("{kind}:{}", script.name));
            let program = match self.program(&script) {
                Ok(p) => p,
                Err(e) => {
                    out.error = Some(format!("{kind} script {:?}: {e}", script.name));
                    return out;
                }
            };
            let name = match kind {
                "domain" => Script::Global(script.name.clone()),
                _ => Script::Personal(script.name.clone()),
            };
            let run = match self
                .run_one(&mut ctx, name, program, raw, env, verdict)
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    out.error = Some(format!("{kind} script {:?}: {e}", script.name));
                    return out;
                }
            };
            let final_action = !run.copies.is_empty()
                || run.discarded
                || run.reject.is_some()
                || (!run.redirects.is_empty() && run.keep_copy.is_none());
            out.copies.extend(run.copies);
            out.redirects.extend(run.redirects);
            out.replies.extend(run.replies);
            out.discarded |= run.discarded;
            if out.reject.is_none() {
                out.reject = run.reject;
            }
            // The domain's keep is the user's to decide when the user has a script.
            final_keep = run.keep_copy;
            if kind == "domain" && final_action {
                break;
            }
        }
        if out.scripts.is_empty() {
            return Outcome::keep();
        }
        if let Some(k) = final_keep {
            out.copies.insert(0, k);
        }
        dedup(&mut out.copies);
        out
    }

    async fn run_one(
        &self,
        ctx: &mut Ctx<'_>,
        name: Script,
        program: Arc<sieve::Sieve>,
        raw: &[u8],
        env: &Envelope<'_>,
        verdict: Verdict,
    ) -> Result<ScriptRun, String> {
        let mut instance = self
            .runtime()
            .filter(raw)
            .with_envelope(sieve::Envelope::From, env.from)
            .with_envelope(sieve::Envelope::To, env.to)
            .with_user_address(env.user)
            .with_user_full_name(env.user_name)
            .with_spam_status(verdict.spam_status())
            .with_virus_status(verdict.virus_status());
        let mut messages: HashMap<usize, Arc<[u8]>> = HashMap::new();
        let mut run = ScriptRun::default();
        let mut input = Input::script(name, program);
        let mut events = 0usize;
        while let Some(result) = instance.run(input) {
            events += 1;
            if events > MAX_EVENTS {
                return Err(format!("more than {MAX_EVENTS} actions"));
            }
            let event = match result {
                Ok(e) => e,
                Err(e) => return Err(runtime_error(&e)),
            };
            input = match event {
                Event::IncludeScript { name, optional } => {
                    let (owner, n) = match &name {
                        Script::Personal(n) => (SieveOwner::Account(ctx.account), n.clone()),
                        Script::Global(n) => {
                            (SieveOwner::Domain(ctx.domain.to_string()), n.clone())
                        }
                    };
                    match ctx.store.sieve_get(&owner, &n).await {
                        Ok(Some(s)) => match self.program(&s) {
                            Ok(p) => Input::script(name, p),
                            Err(e) => return Err(format!("included script {n:?}: {e}")),
                        },
                        Ok(None) if optional => Input::False,
                        Ok(None) => return Err(format!("included script {n:?} does not exist")),
                        Err(e) => return Err(format!("included script {n:?}: {e}")),
                    }
                }
                Event::MailboxExists {
                    mailboxes,
                    special_use,
                } => ctx.mailbox_exists(&mailboxes, &special_use).await?.into(),
                Event::DuplicateId { id, expiry, .. } => {
                    let now = store::now_unix();
                    let key = seen_key(&id);
                    let expires = now.saturating_add(i64::try_from(expiry).unwrap_or(i64::MAX));
                    ctx.store
                        .sieve_seen(ctx.account, &key, now, expires)
                        .await
                        .map_err(|e| format!("duplicate state: {e}"))?
                        .into()
                }
                Event::ListContains { .. } | Event::Function { .. } => Input::False,
                Event::SetEnvelope { .. } | Event::Notify { .. } => Input::True,
                Event::CreatedMessage {
                    message_id,
                    message,
                } => {
                    messages.insert(message_id, message.into());
                    Input::True
                }
                Event::Keep { flags, message_id } => {
                    run.keep_copy = Some(Copy {
                        folder: None,
                        special_use: None,
                        create: false,
                        flags,
                        message: messages.get(&message_id).cloned(),
                    });
                    Input::True
                }
                Event::Discard => {
                    run.discarded = true;
                    Input::True
                }
                Event::Reject { extended, reason } => {
                    run.reject = Some(Reject { reason, extended });
                    Input::True
                }
                Event::FileInto {
                    folder,
                    flags,
                    special_use,
                    create,
                    message_id,
                    ..
                } => {
                    run.copies.push(Copy {
                        folder: Some(folder),
                        special_use: special_use.as_deref().and_then(SpecialUse::parse),
                        create,
                        flags,
                        message: messages.get(&message_id).cloned(),
                    });
                    Input::True
                }
                Event::SendMessage {
                    recipient,
                    notify,
                    message_id,
                    ..
                } => {
                    let Recipient::Address(to) = recipient else {
                        return Err("lists and groups are not valid recipients".into());
                    };
                    let msg = messages.get(&message_id).cloned();
                    // Only vacation sends with NOTIFY=NEVER: redirect-dsn is not offered.
                    if notify == Notify::Never {
                        match msg {
                            Some(m) => run.replies.push(Reply {
                                to,
                                raw: m.to_vec(),
                            }),
                            None => return Err("vacation reply without a message".into()),
                        }
                    } else {
                        run.redirects.push((to, msg));
                    }
                    Input::True
                }
            };
        }
        Ok(run)
    }
}

/// Multiple copies to the same mailbox are one (RFC 5228 §2.10.3); flags are merged.
fn dedup(copies: &mut Vec<Copy>) {
    let mut out: Vec<Copy> = Vec::with_capacity(copies.len());
    for c in copies.drain(..) {
        let key = c
            .folder
            .as_deref()
            .map(|f| {
                if f.eq_ignore_ascii_case("INBOX") {
                    "INBOX".to_string()
                } else {
                    f.to_string()
                }
            })
            .unwrap_or_else(|| "INBOX".into());
        match out.iter_mut().find(|o| {
            o.folder
                .as_deref()
                .map(|f| {
                    if f.eq_ignore_ascii_case("INBOX") {
                        "INBOX".to_string()
                    } else {
                        f.to_string()
                    }
                })
                .unwrap_or_else(|| "INBOX".into())
                == key
        }) {
            Some(o) => {
                for f in c.flags {
                    if !o.flags.contains(&f) {
                        o.flags.push(f);
                    }
                }
            }
            None => out.push(c),
        }
    }
    *copies = out;
}

fn seen_key(id: &str) -> String {
    if id.len() <= MAX_SEEN_KEY {
        id.to_string()
    } else {
        format!("h:{}", blake3::hash(id.as_bytes()).to_hex())
    }
}

fn runtime_error(e: &RuntimeError) -> String {
    match e {
        RuntimeError::TooManyIncludes => "too many nested includes".into(),
        RuntimeError::InvalidInstruction(i) => format!(
            "invalid instruction {:?} at line {}, column {}",
            i.name(),
            i.line_num(),
            i.line_pos()
        ),
        RuntimeError::ScriptErrorMessage(m) => format!("script error: {m}"),
        RuntimeError::CapabilityNotAllowed(c) => format!("extension {c} is not allowed"),
        RuntimeError::CapabilityNotSupported(c) => format!("extension {c} is not supported"),
        RuntimeError::CPULimitReached => "CPU limit reached".into(),
    }
}

impl Ctx<'_> {
    async fn mailbox_exists(
        &mut self,
        names: &[Mailbox],
        special_use: &[String],
    ) -> Result<bool, String> {
        if self.mailboxes.is_none() {
            self.mailboxes = Some(
                self.store
                    .mailbox_list(self.account)
                    .await
                    .map_err(|e| format!("mailboxes: {e}"))?,
            );
        }
        let list = self.mailboxes.as_deref().unwrap_or_default();
        let named = names.iter().all(|m| match m {
            Mailbox::Name(n) => list
                .iter()
                .any(|b| b.name == *n || (n.eq_ignore_ascii_case("INBOX") && b.name == "INBOX")),
            Mailbox::Id(_) => false,
        });
        let used = special_use.iter().all(|u| {
            SpecialUse::parse(u).is_some_and(|su| list.iter().any(|b| b.special_use == Some(su)))
        });
        Ok(named && used)
    }
}
