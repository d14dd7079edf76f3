//! Facteur's content classifier: statistical spam filtering over a message's headers, body text,
//! URLs and MIME structure.
//!
//! - [`features`] turns a message (raw bytes plus its `message::Analysis`, computed once by the
//!   caller) into a bounded set of hashed tokens, with orthogonal sparse bigrams over text.
//! - [`bayes`] combines the tokens' counts with Robinson's estimate and Fisher's chi-square
//!   method into a spam probability.
//! - [`Classifier`] holds the settings; [`Classifier::score`] gives a [`Verdict`] with its
//!   reasons from a global model and, once an account has learned enough, that account's own
//!   model, blended. [`Classifier::score_stored`], [`Classifier::learn`] and
//!   [`Classifier::unlearn`] do the same against the models kept in the store.
//!
//! The classifier never learns from its own verdicts: only explicit training (the CLI, and
//! later a user moving mail into or out of Junk) changes a model.

pub mod bayes;
pub mod features;
mod hash;
pub mod html;
pub mod lists;
pub mod tokens;
pub mod url;

use std::collections::HashMap;

use serde::Serialize;
use store::{DynStore, SpamCounts, SpamLearnOutcome, SpamModel, SpamSample};

pub use bayes::{Counts, MemoryModel, Params, TokenCounts, Totals};
pub use features::{Features, Limits, extract, extract_raw};
pub use store::{AccountId, SpamClass as Class};

/// Version of the features' definition (tokenisation, hashing, zones). Stored with each model:
/// a model trained with another version is ignored when scoring and refused when learning,
/// because its tokens would mean nothing to this code. Bump on any change to the tokens made.
pub const FEATURE_VERSION: u32 = 1;

/// Messages of each class the global model must have learned before it gives verdicts
/// (Rspamd's and SpamAssassin's default minimum is 200 as well).
pub const DEFAULT_MIN_LEARNED: u64 = 200;
/// Messages of each class an account's model must have learned before it is blended in.
pub const DEFAULT_MIN_ACCOUNT_LEARNED: u64 = 200;
/// Weight of an account's own model (once ready) against the global one.
pub const DEFAULT_ACCOUNT_WEIGHT: f64 = 0.5;
/// Spam probability from which a message is spam. Chosen by cross-validation on the training
/// groups of the SpamAssassin corpus (bench/spam-accuracy.sh; see docs/benchmarks.md): the
/// inner cross-validation of 9 folds out of 10 picked it (the lowest candidate above 0.5 whose
/// false-positive rate was at most 0.25%). Never 0.5 or below: 0.5 is "no evidence".
pub const DEFAULT_SPAM_THRESHOLD: f64 = 0.51;
/// Spam probability under which a message is ham; between the two it is "unsure".
pub const DEFAULT_HAM_THRESHOLD: f64 = 0.2;
/// Points of [`Verdict::score`] at probability 1 (and minus at 0), on SpamAssassin's scale
/// where 5 points is spam: the verdict adds to the other checks' scores in the pipeline.
pub const SCORE_SCALE: f64 = 5.0;

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub params: Params,
    pub limits: Limits,
    pub spam_threshold: f64,
    pub ham_threshold: f64,
    pub min_learned: u64,
    pub min_account_learned: u64,
    pub account_weight: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            params: Params::default(),
            limits: Limits::default(),
            spam_threshold: DEFAULT_SPAM_THRESHOLD,
            ham_threshold: DEFAULT_HAM_THRESHOLD,
            min_learned: DEFAULT_MIN_LEARNED,
            min_account_learned: DEFAULT_MIN_ACCOUNT_LEARNED,
            account_weight: DEFAULT_ACCOUNT_WEIGHT,
        }
    }
}

/// What the classifier thinks of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    Ham,
    Unsure,
    Spam,
    /// No model has learned enough yet: no opinion (probability 0.5, score 0).
    Untrained,
}

impl Label {
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Ham => "ham",
            Label::Unsure => "unsure",
            Label::Spam => "spam",
            Label::Untrained => "untrained",
        }
    }
}

/// One token's part in a verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    /// The token as printed ("subject:free money", "url-domain:example.com").
    pub token: String,
    /// "global" or "account".
    pub model: &'static str,
    /// The token's spam probability in that model.
    pub prob: f64,
    /// Log-odds of `prob`: positive pushes towards spam, negative towards ham.
    pub weight: f64,
    pub ham: u32,
    pub spam: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub label: Label,
    /// Spam probability in [0, 1] (0.5 when untrained).
    pub prob: f64,
    /// Points for the pipeline's total: `SCORE_SCALE * (2 * prob - 1)`.
    pub score: f64,
    /// Probability given by the global model, when it was ready.
    pub global: Option<f64>,
    /// Probability given by the account's model, when it was ready.
    pub account: Option<f64>,
    /// Every token that counted, strongest first.
    pub reasons: Vec<Reason>,
    /// Features of the message, and whether a limit cut them short.
    pub features: usize,
    pub truncated: bool,
}

/// Token counts fetched from the store for one message.
struct Fetched {
    totals: Totals,
    counts: HashMap<u64, Counts>,
}

impl TokenCounts for Fetched {
    fn totals(&self) -> Totals {
        self.totals
    }
    fn counts(&self, token: u64) -> Counts {
        self.counts.get(&token).copied().unwrap_or_default()
    }
}

impl From<SpamCounts> for Fetched {
    fn from(c: SpamCounts) -> Fetched {
        let usable = c.totals.format == FEATURE_VERSION;
        Fetched {
            totals: if usable {
                Totals {
                    ham: c.totals.ham,
                    spam: c.totals.spam,
                }
            } else {
                Totals::default()
            },
            counts: if usable {
                c.tokens
                    .into_iter()
                    .map(|(t, ham, spam)| (t, Counts { ham, spam }))
                    .collect()
            } else {
                HashMap::new()
            },
        }
    }
}

/// What learning one message did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LearnReport {
    pub global: SpamLearnOutcome,
    pub account: Option<SpamLearnOutcome>,
    pub features: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Store(#[from] store::StoreError),
}

#[derive(Debug, Clone, Default)]
pub struct Classifier {
    pub settings: Settings,
}

impl Classifier {
    pub fn new(settings: Settings) -> Classifier {
        Classifier { settings }
    }

    /// Features of a message whose analysis the caller has.
    pub fn features(&self, raw: &[u8], analysis: &message::Analysis) -> Features {
        extract(raw, analysis, &self.settings.limits)
    }

    fn ready(&self, t: Totals, min: u64) -> bool {
        t.ham >= min && t.spam >= min
    }

    /// Scores `features` with the global model and, when given and ready, the account's.
    pub fn score(
        &self,
        features: &Features,
        global: &dyn TokenCounts,
        account: Option<&dyn TokenCounts>,
    ) -> Verdict {
        let s = &self.settings;
        let tokens = features.tokens();
        let mut reasons = Vec::new();
        let mut run = |model: &dyn TokenCounts, name: &'static str| {
            let c = bayes::combine(&tokens, model, &s.params);
            for u in &c.used {
                reasons.push(Reason {
                    token: features.describe(u.index),
                    model: name,
                    prob: u.prob,
                    weight: (u.prob / (1.0 - u.prob)).ln(),
                    ham: u.counts.ham,
                    spam: u.counts.spam,
                });
            }
            c.prob
        };
        let g = self
            .ready(global.totals(), s.min_learned)
            .then(|| run(global, "global"));
        let a = account
            .filter(|m| self.ready(m.totals(), s.min_account_learned))
            .map(|m| run(m, "account"));
        let prob = match (g, a) {
            (Some(g), Some(a)) => s.account_weight * a + (1.0 - s.account_weight) * g,
            (Some(p), None) | (None, Some(p)) => p,
            (None, None) => 0.5,
        };
        let label = if g.is_none() && a.is_none() {
            Label::Untrained
        } else if prob >= s.spam_threshold {
            Label::Spam
        } else if prob < s.ham_threshold {
            Label::Ham
        } else {
            Label::Unsure
        };
        reasons.sort_by(|x, y| y.weight.abs().total_cmp(&x.weight.abs()));
        Verdict {
            label,
            prob,
            score: SCORE_SCALE * (2.0 * prob - 1.0),
            global: g,
            account: a,
            reasons,
            features: features.len(),
            truncated: features.truncated,
        }
    }

    /// Scores against the models in the store: the global one, and `account`'s when given.
    pub async fn score_stored(
        &self,
        store: &DynStore,
        features: &Features,
        account: Option<AccountId>,
    ) -> Result<Verdict, Error> {
        let mut models = vec![SpamModel::Global];
        if let Some(a) = account {
            models.push(SpamModel::Account(a));
        }
        let mut counts = store.spam_counts(&models, &features.tokens()).await?;
        let account_model = (counts.len() > 1).then(|| Fetched::from(counts.remove(1)));
        let global = counts
            .pop()
            .map(Fetched::from)
            .unwrap_or_else(|| Fetched::from(empty_counts()));
        Ok(self.score(
            features,
            &global,
            account_model.as_ref().map(|m| m as &dyn TokenCounts),
        ))
    }

    /// Learns a message as `class` into the global model and, when given, `account`'s.
    /// Learning the same message again changes nothing; learning it as the other class moves
    /// it (a message taken out of Junk).
    pub async fn learn(
        &self,
        store: &DynStore,
        raw: &[u8],
        features: &Features,
        class: Class,
        account: Option<AccountId>,
    ) -> Result<LearnReport, Error> {
        let models = models(account);
        let out = store
            .spam_learn(&models, &sample(raw, features), class)
            .await?;
        Ok(report(out, features.len()))
    }

    /// Takes a message back out of the models that learned it.
    pub async fn unlearn(
        &self,
        store: &DynStore,
        raw: &[u8],
        features: &Features,
        account: Option<AccountId>,
    ) -> Result<LearnReport, Error> {
        let models = models(account);
        let out = store.spam_unlearn(&models, &sample(raw, features)).await?;
        Ok(report(out, features.len()))
    }
}

fn empty_counts() -> SpamCounts {
    SpamCounts {
        model: SpamModel::Global,
        totals: store::SpamTotals::default(),
        tokens: Vec::new(),
    }
}

fn models(account: Option<AccountId>) -> Vec<SpamModel> {
    let mut m = vec![SpamModel::Global];
    if let Some(a) = account {
        m.push(SpamModel::Account(a));
    }
    m
}

/// A message's identity for the store: the BLAKE3 of its bytes.
fn sample(raw: &[u8], features: &Features) -> SpamSample {
    SpamSample {
        digest: *blake3::hash(raw).as_bytes(),
        tokens: features.tokens(),
        format: FEATURE_VERSION,
    }
}

fn report(out: Vec<SpamLearnOutcome>, features: usize) -> LearnReport {
    let mut it = out.into_iter();
    LearnReport {
        global: it.next().unwrap_or(SpamLearnOutcome::NotLearned),
        account: it.next(),
        features,
    }
}

#[cfg(test)]
mod tests;
