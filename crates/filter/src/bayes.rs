//! Token Bayes with Robinson's per-token estimate and Fisher's chi-square combination, as
//! SpamBayes and Rspamd do (Gary Robinson, "A Statistical Approach to the Spam Problem", 2003).
//!
//! For a token seen `s` times in `S` learned spam and `h` times in `H` learned ham:
//! `p = (s/S) / (s/S + h/H)`, shrunk towards 0.5 by how little it was seen:
//! `f = (STRENGTH * 0.5 + n * p) / (STRENGTH + n)` with `n = s + h`. The tokens whose `f` is
//! furthest from 0.5 (at most [`Params::max_discriminators`], each at least
//! [`Params::min_deviation`] away) are combined with Fisher's method twice, once for each
//! hypothesis; the two chi-square probabilities give the message's spam probability
//! `(1 + S - H) / 2`, which stays near 0.5 when the evidence is weak or contradictory.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

pub use store::SpamClass as Class;

/// Per-token counts: how many learned messages of each class contained the token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub ham: u32,
    pub spam: u32,
}

/// How many messages a model learned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub ham: u64,
    pub spam: u64,
}

/// What the combination needs from a model.
pub trait TokenCounts {
    fn totals(&self) -> Totals;
    fn counts(&self, token: u64) -> Counts;
}

/// Tunables of the combination (SpamBayes' names and defaults where they exist).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Weight of the 0.5 prior against a token's observations (`unknown_word_strength`).
    pub strength: f64,
    /// Tokens closer to 0.5 than this are left out (`minimum_prob_strength`).
    pub min_deviation: f64,
    /// At most this many tokens are combined, the strongest first (`max_discriminators`):
    /// OSB features are correlated, and combining thousands would overstate the evidence.
    pub max_discriminators: usize,
}

/// Defaults chosen by 10-fold cross-validation on the training groups of the SpamAssassin
/// corpus (`bench/spam-accuracy.sh`, docs/benchmarks.md).
pub const DEFAULT_PARAMS: Params = Params {
    strength: 0.45,
    min_deviation: 0.1,
    max_discriminators: 150,
};

impl Default for Params {
    fn default() -> Self {
        DEFAULT_PARAMS
    }
}

/// One token's part in a verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Contribution {
    /// Index of the token in the message's features.
    pub index: usize,
    pub token: u64,
    /// Robinson's estimate `f` of the probability that a message with this token is spam.
    pub prob: f64,
    pub counts: Counts,
}

/// The outcome of combining one model's evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Combined {
    /// Spam probability in [0, 1].
    pub prob: f64,
    /// The tokens used, strongest first.
    pub used: Vec<Contribution>,
}

/// Combines the evidence of `tokens` (a message's unique feature hashes) under `model`.
pub fn combine(tokens: &[u64], model: &dyn TokenCounts, p: &Params) -> Combined {
    let totals = model.totals();
    let (ns, nh) = (totals.spam.max(1) as f64, totals.ham.max(1) as f64);
    let mut used: Vec<Contribution> = Vec::new();
    for (index, &token) in tokens.iter().enumerate() {
        let c = model.counts(token);
        let n = f64::from(c.ham) + f64::from(c.spam);
        if n == 0.0 {
            continue;
        }
        let spam_ratio = f64::from(c.spam) / ns;
        let ham_ratio = f64::from(c.ham) / nh;
        let raw = spam_ratio / (spam_ratio + ham_ratio);
        let f = (p.strength * 0.5 + n * raw) / (p.strength + n);
        if (f - 0.5).abs() >= p.min_deviation {
            used.push(Contribution {
                index,
                token,
                prob: f,
                counts: c,
            });
        }
    }
    used.sort_by(|a, b| {
        (b.prob - 0.5)
            .abs()
            .total_cmp(&(a.prob - 0.5).abs())
            .then(a.index.cmp(&b.index))
    });
    used.truncate(p.max_discriminators);
    if used.is_empty() {
        return Combined { prob: 0.5, used };
    }
    // Fisher: -2 Σ ln p is chi-square with 2n degrees of freedom under the null hypothesis.
    let (mut ln_ham, mut ln_spam) = (0.0f64, 0.0f64);
    for c in &used {
        let f = c.prob.clamp(1e-12, 1.0 - 1e-12);
        ln_ham += f.ln();
        ln_spam += (1.0 - f).ln();
    }
    let n = used.len();
    let h = 1.0 - chi2_q(-2.0 * ln_ham, 2 * n);
    let s = 1.0 - chi2_q(-2.0 * ln_spam, 2 * n);
    Combined {
        prob: ((1.0 + s - h) / 2.0).clamp(0.0, 1.0),
        used,
    }
}

/// Upper tail of the chi-square distribution with an even number `v` of degrees of freedom:
/// P(X >= x2), by the series for even `v` (exact, no special functions needed).
pub fn chi2_q(x2: f64, v: usize) -> f64 {
    let m = x2 / 2.0;
    let mut term = (-m).exp();
    let mut sum = term;
    for i in 1..v / 2 {
        term *= m / i as f64;
        sum += term;
    }
    sum.min(1.0)
}

/// A model held in memory: for tests, benchmarks and cross-validation.
#[derive(Debug, Clone, Default)]
pub struct MemoryModel {
    pub totals: Totals,
    pub tokens: HashMap<u64, Counts>,
}

impl MemoryModel {
    /// Learns one message (its unique tokens) as `class`.
    pub fn learn(&mut self, tokens: &[u64], class: Class) {
        match class {
            Class::Ham => self.totals.ham += 1,
            Class::Spam => self.totals.spam += 1,
        }
        for &t in tokens {
            let c = self.tokens.entry(t).or_default();
            match class {
                Class::Ham => c.ham = c.ham.saturating_add(1),
                Class::Spam => c.spam = c.spam.saturating_add(1),
            }
        }
    }

    /// Takes back a message learned as `class`; counts never go below zero, and tokens that
    /// reach zero in both classes are removed.
    pub fn unlearn(&mut self, tokens: &[u64], class: Class) {
        match class {
            Class::Ham => self.totals.ham = self.totals.ham.saturating_sub(1),
            Class::Spam => self.totals.spam = self.totals.spam.saturating_sub(1),
        }
        for &t in tokens {
            if let Some(c) = self.tokens.get_mut(&t) {
                match class {
                    Class::Ham => c.ham = c.ham.saturating_sub(1),
                    Class::Spam => c.spam = c.spam.saturating_sub(1),
                }
                if c.ham == 0 && c.spam == 0 {
                    self.tokens.remove(&t);
                }
            }
        }
    }
}

impl TokenCounts for MemoryModel {
    fn totals(&self) -> Totals {
        self.totals
    }
    fn counts(&self, token: u64) -> Counts {
        self.tokens.get(&token).copied().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chi2_known_values() {
        // P(X >= 2) with 2 dof = e^-1.
        assert!((chi2_q(2.0, 2) - (-1.0f64).exp()).abs() < 1e-12);
        // With 4 dof: e^-1 (1 + 1).
        assert!((chi2_q(2.0, 4) - 2.0 * (-1.0f64).exp()).abs() < 1e-12);
        assert_eq!(chi2_q(0.0, 10), 1.0);
        assert!(chi2_q(1e6, 300) < 1e-100);
    }

    #[test]
    fn learn_unlearn_restores() {
        let mut m = MemoryModel::default();
        m.learn(&[1, 2, 3], Class::Spam);
        m.learn(&[3, 4], Class::Ham);
        m.unlearn(&[1, 2, 3], Class::Spam);
        assert_eq!(m.totals, Totals { ham: 1, spam: 0 });
        assert_eq!(m.tokens.len(), 2);
        assert_eq!(m.counts(3), Counts { ham: 1, spam: 0 });
        assert_eq!(m.counts(1), Counts::default());
    }

    #[test]
    fn separates_and_stays_unsure_without_evidence() {
        let mut m = MemoryModel::default();
        for i in 0..50u64 {
            m.learn(&[1, 2, 100 + i], Class::Spam);
            m.learn(&[3, 4, 1000 + i], Class::Ham);
        }
        let p = Params::default();
        assert!(combine(&[1, 2], &m, &p).prob > 0.99);
        assert!(combine(&[3, 4], &m, &p).prob < 0.01);
        assert_eq!(combine(&[77, 78], &m, &p).prob, 0.5);
        let mixed = combine(&[1, 3], &m, &p).prob;
        assert!((0.3..0.7).contains(&mixed), "{mixed}");
    }
}
