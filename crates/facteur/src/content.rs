//! The spam filtering content checks of the MX path, wired here because they join the SMTP
//! pipeline to the classifier and the store: the allow and block lists of the recipients'
//! domains and accounts ([`ListCheck`]), and the content classifier ([`ClassifierCheck`]), whose
//! probability becomes points and reasons for the verdict (`smtp::verdict`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use filter::lists::Pattern;
use filter::{Classifier, Label};
use message::Prepared;
use smtp::backend::{Envelope, Mode};
use smtp::pipeline::{Check, CheckError, CheckResult, Disposition, Reason, Verdict};
use store::{DynStore, ListKind, ListScope};

use crate::config::verdict::BlockAction;

/// Longest the classifier may take for one message (feature extraction and the store reads);
/// past it the message goes on without the classifier's points (fail-open: never lost).
pub const CLASSIFIER_BUDGET: Duration = Duration::from_secs(5);
/// Messages up to this size are tokenised on the async thread; larger ones on the blocking pool.
const TOKENISE_INLINE_MAX: usize = 64 * 1024;
/// Points of a spam verdict at the spam threshold, and at probability 1.
const BAYES_SPAM_MIN: f64 = 5.0;
const BAYES_SPAM_MAX: f64 = 10.0;
/// Points of an "unsure" verdict, at most (just under the spam threshold).
const BAYES_UNSURE_MAX: f64 = 2.5;
/// Points of a ham verdict at probability 0.
const BAYES_HAM_MIN: f64 = -2.0;
/// Tokens named in a classifier reason's detail (for the log).
const REASON_TOKENS: usize = 3;

/// The classifier's probability as points on the verdict's scale, where 5 is spam: its spam
/// threshold maps to 5 (the default `verdict.junk`), probability 1 to 10, the unsure band to
/// 0..2.5 and the ham band to -2..0.
pub fn points(prob: f64, s: &filter::Settings) -> f64 {
    let (st, ht) = (s.spam_threshold, s.ham_threshold);
    if prob >= st {
        BAYES_SPAM_MIN + (BAYES_SPAM_MAX - BAYES_SPAM_MIN) * (prob - st) / (1.0 - st).max(1e-9)
    } else if prob >= ht {
        BAYES_UNSURE_MAX * (prob - ht) / (st - ht).max(1e-9)
    } else {
        BAYES_HAM_MIN * (ht - prob) / ht.max(1e-9)
    }
}

/// The single local account of a transaction, when there is exactly one: its own model is
/// blended in (per transaction, see docs/architecture.md).
fn single_account(env: &Envelope) -> Option<i64> {
    let accounts: BTreeSet<i64> = env
        .recipients
        .iter()
        .flat_map(|r| r.target.local.iter().copied())
        .collect();
    (accounts.len() == 1)
        .then(|| accounts.first().copied())
        .flatten()
}

fn reason(check: &'static str, name: &str, score: f64, detail: String) -> Reason {
    Reason {
        check,
        name: name.to_string(),
        score,
        detail,
    }
}

pub struct ClassifierCheck {
    pub store: DynStore,
    pub classifier: Classifier,
}

impl ClassifierCheck {
    async fn classify(&self, env: &Envelope, msg: &Prepared) -> Result<Verdict, String> {
        let features = if msg.len() <= TOKENISE_INLINE_MAX {
            self.classifier.features(msg.raw(), msg.analysis())
        } else {
            let (c, raw, a) = (
                self.classifier.clone(),
                msg.raw().clone(),
                msg.analysis().clone(),
            );
            tokio::task::spawn_blocking(move || c.features(&raw, &a))
                .await
                .map_err(|e| format!("tokeniser failed: {e}"))?
        };
        let v = self
            .classifier
            .score_stored(&self.store, &features, single_account(env))
            .await
            .map_err(|e| e.to_string())?;
        let name = match v.label {
            Label::Untrained => {
                return Ok(Verdict {
                    reasons: vec![reason(
                        "classifier",
                        "BAYES_UNTRAINED",
                        0.0,
                        "no model has learned enough yet".into(),
                    )],
                    ..Verdict::default()
                });
            }
            Label::Spam => "BAYES_SPAM",
            Label::Unsure => "BAYES_UNSURE",
            Label::Ham => "BAYES_HAM",
        };
        let score = points(v.prob, &self.classifier.settings);
        let tokens: Vec<String> = v
            .reasons
            .iter()
            .take(REASON_TOKENS)
            .map(|r| format!("{}({:+.1})", r.token.escape_debug(), r.weight))
            .collect();
        let detail = format!(
            "p={:.4} global={} account={} features={}{} top: {}",
            v.prob,
            v.global.map_or("-".into(), |p| format!("{p:.4}")),
            v.account.map_or("-".into(), |p| format!("{p:.4}")),
            v.features,
            if v.truncated { " (truncated)" } else { "" },
            tokens.join(" ")
        );
        Ok(Verdict {
            score,
            reasons: vec![reason("classifier", name, score, detail)],
            ..Verdict::default()
        })
    }
}

#[async_trait]
impl Check for ClassifierCheck {
    fn name(&self) -> &'static str {
        "classifier"
    }

    async fn content(&self, env: &Envelope, msg: &Prepared) -> CheckResult {
        if env.mode != Mode::Mx {
            return Ok(Verdict::accept());
        }
        let outcome = tokio::time::timeout(CLASSIFIER_BUDGET, self.classify(env, msg)).await;
        let why = match outcome {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => e,
            Err(_) => format!("took longer than {CLASSIFIER_BUDGET:?}"),
        };
        // Fail-open: the message goes on with the other checks' points; the reason says why.
        tracing::warn!(id = %env.id, error = %why, "content classifier gave no verdict");
        Ok(Verdict {
            reasons: vec![reason("classifier", "BAYES_ERROR", 0.0, why)],
            ..Verdict::default()
        })
    }
}

/// The allow and block lists of the recipients' domains and accounts, matched against the
/// envelope sender, the header From addresses and the client's IP address.
pub struct ListCheck {
    pub store: DynStore,
    pub allow_score: f64,
    pub block_action: BlockAction,
}

/// What one recipient's lists say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Said {
    Nothing,
    Allow,
    Block,
}

#[async_trait]
impl Check for ListCheck {
    fn name(&self) -> &'static str {
        "lists"
    }

    async fn content(&self, env: &Envelope, msg: &Prepared) -> CheckResult {
        if env.mode != Mode::Mx || env.recipients.is_empty() {
            return Ok(Verdict::accept());
        }
        let mut scopes: Vec<ListScope> = Vec::new();
        for r in &env.recipients {
            if let Some((_, d)) = r.address.rsplit_once('@') {
                scopes.push(ListScope::Domain(d.to_ascii_lowercase()));
            }
            scopes.extend(r.target.local.iter().map(|&a| ListScope::Account(a)));
        }
        scopes.sort_by_key(|s| format!("{s:?}"));
        scopes.dedup();
        let entries = match self.store.list_entries(&scopes).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(id = %env.id, error = %e, "allow and block lists could not be read");
                return Ok(Verdict::accept());
            }
        };
        if entries.is_empty() {
            return Ok(Verdict::accept());
        }
        let mut senders: Vec<String> = msg.analysis().headers.from.clone();
        if !env.from.is_empty() {
            senders.push(env.from.to_ascii_lowercase());
        }
        // Which entries match, by scope: allow wins within a scope, an account's lists over its
        // domain's.
        let said = |scope: &ListScope| -> (Said, Option<String>) {
            let mut out = (Said::Nothing, None);
            for e in entries.iter().filter(|e| &e.scope == scope) {
                let Ok(p) = Pattern::parse(&e.pattern) else {
                    continue;
                };
                if p.matches(&senders, env.peer) {
                    match e.kind {
                        ListKind::Allow => return (Said::Allow, Some(e.pattern.clone())),
                        ListKind::Block => out = (Said::Block, Some(e.pattern.clone())),
                    }
                }
            }
            out
        };
        // One transaction, one verdict (the most lenient): allowed if any recipient allows the
        // sender, blocked only if every recipient blocks it.
        let mut any_allow: Option<String> = None;
        let mut all_block = true;
        let mut block_pattern = None;
        for r in &env.recipients {
            let mut this = (Said::Nothing, None);
            for &a in &r.target.local {
                let s = said(&ListScope::Account(a));
                if s.0 != Said::Nothing && this.0 != Said::Allow {
                    this = s;
                }
            }
            if this.0 == Said::Nothing
                && let Some((_, d)) = r.address.rsplit_once('@')
            {
                this = said(&ListScope::Domain(d.to_ascii_lowercase()));
            }
            match this {
                (Said::Allow, p) => {
                    any_allow = any_allow.or(p);
                    all_block = false;
                }
                (Said::Block, p) => block_pattern = block_pattern.or(p),
                (Said::Nothing, _) => all_block = false,
            }
        }
        if let Some(p) = any_allow {
            return Ok(Verdict {
                score: self.allow_score,
                reasons: vec![reason(
                    "lists",
                    smtp::verdict::ALLOWLISTED,
                    self.allow_score,
                    format!("allow list entry {p}"),
                )],
                ..Verdict::default()
            });
        }
        let Some(p) = block_pattern.filter(|_| all_block) else {
            return Ok(Verdict::accept());
        };
        let detail = format!("block list entry {p}");
        match self.block_action {
            BlockAction::Reject => Err(CheckError::new(
                "lists",
                550,
                "5.7.1",
                "Message refused by the recipient's policy",
                detail,
            )),
            BlockAction::Junk | BlockAction::Quarantine => Ok(Verdict {
                reasons: vec![reason("lists", "BLOCKLISTED", 0.0, detail)],
                disposition: if self.block_action == BlockAction::Junk {
                    Disposition::Junk
                } else {
                    Disposition::Quarantine
                },
                ..Verdict::default()
            }),
        }
    }
}

/// Messages learned from one COPY or MOVE at most; past it the rest is skipped (and logged), so
/// a user filing a whole folder into Junk does not hold their session for minutes.
pub const MAX_LEARN_PER_COMMAND: usize = 1000;

/// Learning from users (IMAP): a message filed into Junk is learned as spam, one taken out of
/// Junk as ham, into the account's model and the global one. Our own `X-Spam-*` fields are
/// left out, so the classifier never learns its own verdicts.
pub struct UserLearner {
    pub store: DynStore,
    pub classifier: Classifier,
}

#[async_trait]
impl imap::backend::Learner for UserLearner {
    async fn learn(
        &self,
        account: store::AccountId,
        mailbox: store::MailboxId,
        uids: &[store::Uid],
        class: store::SpamClass,
    ) {
        let (Some(&first), Some(&last)) = (uids.iter().min(), uids.iter().max()) else {
            return;
        };
        if uids.len() > MAX_LEARN_PER_COMMAND {
            tracing::warn!(
                account,
                messages = uids.len(),
                learned = MAX_LEARN_PER_COMMAND,
                "too many messages moved at once: only the first are learned"
            );
        }
        let records = match self.store.messages(mailbox, first..=last).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(account, error = %e, "messages to learn could not be read");
                return;
            }
        };
        let (mut learned, mut failed) = (0usize, 0usize);
        for m in records
            .iter()
            .filter(|m| uids.contains(&m.uid))
            .take(MAX_LEARN_PER_COMMAND)
        {
            let raw = match self.store.blob_read(m.blob, None).await {
                Ok(r) => r,
                Err(_) => {
                    failed += 1;
                    continue;
                }
            };
            let raw = smtp::checks::strip_fields(&raw, |f| {
                smtp::checks::field_name(f).is_some_and(smtp::verdict::is_spam_field)
            })
            .unwrap_or(raw);
            let c = self.classifier.clone();
            let features = if raw.len() <= TOKENISE_INLINE_MAX {
                filter::extract_raw(&raw, &c.settings.limits)
            } else {
                let r = raw.clone();
                match tokio::task::spawn_blocking(move || {
                    filter::extract_raw(&r, &c.settings.limits)
                })
                .await
                {
                    Ok(f) => f,
                    Err(_) => {
                        failed += 1;
                        continue;
                    }
                }
            };
            match self
                .classifier
                .learn(&self.store, &raw, &features, class, Some(account))
                .await
            {
                Ok(_) => learned += 1,
                Err(e) => {
                    failed += 1;
                    tracing::warn!(account, error = %e, "learning a message failed");
                }
            }
        }
        tracing::info!(
            account,
            class = ?class,
            learned,
            failed,
            "learned from messages filed by the user"
        );
    }
}

/// The spam filtering checks of `[verdict]`, after the authentication checks.
pub fn checks(cfg: &crate::config::Config, store: &DynStore) -> Vec<Arc<dyn Check>> {
    if !cfg.verdict.enabled {
        return Vec::new();
    }
    let lists: Arc<dyn Check> = Arc::new(ListCheck {
        store: store.clone(),
        allow_score: cfg.verdict.allow_score.0,
        block_action: cfg.verdict.block_action,
    });
    let classifier: Arc<dyn Check> = Arc::new(ClassifierCheck {
        store: store.clone(),
        classifier: Classifier::new(cfg.classifier.settings()),
    });
    vec![lists, classifier]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_follow_the_thresholds() {
        let s = filter::Settings::default();
        assert!((points(s.spam_threshold, &s) - 5.0).abs() < 1e-9);
        assert!((points(1.0, &s) - 10.0).abs() < 1e-9);
        assert!((points(0.0, &s) + 2.0).abs() < 1e-9);
        assert!(points(0.5, &s) > 0.0 && points(0.5, &s) < 5.0);
        assert!(points(s.ham_threshold - 0.01, &s) < 0.0);
    }
}
