//! Train, untrain and score on a small synthetic corpus that must separate, in memory and
//! through the SQLite store.

use super::*;

const SPAM_WORDS: &[&str] = &[
    "free",
    "money",
    "winner",
    "viagra",
    "cheap",
    "offer",
    "click",
    "guaranteed",
    "credit",
    "million",
    "urgent",
    "prize",
    "casino",
    "loan",
    "discount",
    "limited",
    "act",
    "now",
];
const HAM_WORDS: &[&str] = &[
    "meeting", "patch", "review", "kernel", "tomorrow", "thanks", "build", "release", "agenda",
    "lunch", "commit", "branch", "notes", "report", "draft", "schedule", "bug", "question",
];
const COMMON: &[&str] = &["the", "and", "you", "for", "this", "with", "have", "your"];

/// xorshift: deterministic and dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as usize
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.next() % v.len()]
    }
}

pub(crate) fn message(spam: bool, n: usize) -> Vec<u8> {
    let mut rng = Rng(0x1234_5678 ^ (n as u64 * 7919) ^ u64::from(spam));
    let words = if spam { SPAM_WORDS } else { HAM_WORDS };
    let mut body = String::new();
    for i in 0..60 {
        body.push_str(if i % 3 == 0 {
            rng.pick(COMMON)
        } else {
            rng.pick(words)
        });
        body.push(' ');
    }
    let subject = format!(
        "{} {} {}",
        rng.pick(words),
        rng.pick(COMMON),
        rng.pick(words)
    );
    if spam {
        format!(
            "From: Deals <promo{n}@offers{}.example>\r\nTo: you@example.com\r\n\
             Subject: {subject}\r\nMessage-ID: <{n}@offers.example>\r\n\
             Content-Type: text/html\r\n\r\n<html><body><p>{body}</p>\
             <a href=\"http://win{}.example/claim\">click</a></body></html>\r\n",
            n % 7,
            n % 5
        )
        .into_bytes()
    } else {
        format!(
            "From: Colleague <dev{}@work.example>\r\nTo: team@work.example\r\n\
             Subject: {subject}\r\nMessage-ID: <{n}@work.example>\r\nList-Id: <dev.work.example>\r\n\
             Content-Type: text/plain\r\n\r\n{body}\r\n",
            n % 9
        )
        .into_bytes()
    }
}

fn small_settings() -> Settings {
    Settings {
        min_learned: 10,
        min_account_learned: 10,
        ..Settings::default()
    }
}

#[test]
fn synthetic_corpus_separates_in_memory() {
    let c = Classifier::new(small_settings());
    let mut model = MemoryModel::default();
    for n in 0..40 {
        model.learn(
            &extract_raw(&message(true, n), &c.settings.limits).tokens(),
            Class::Spam,
        );
        model.learn(
            &extract_raw(&message(false, n), &c.settings.limits).tokens(),
            Class::Ham,
        );
    }
    for n in 40..60 {
        let s = c.score(
            &extract_raw(&message(true, n), &c.settings.limits),
            &model,
            None,
        );
        assert_eq!(s.label, Label::Spam, "spam {n}: {}", s.prob);
        assert!(s.score > 4.0);
        assert!(
            s.reasons
                .iter()
                .any(|r| r.weight > 0.0 && r.model == "global")
        );
        let h = c.score(
            &extract_raw(&message(false, n), &c.settings.limits),
            &model,
            None,
        );
        assert_eq!(h.label, Label::Ham, "ham {n}: {}", h.prob);
        assert!(h.score < -4.0);
        // Reasons are ordered by strength.
        assert!(
            h.reasons
                .windows(2)
                .all(|w| w[0].weight.abs() >= w[1].weight.abs())
        );
    }
}

#[test]
fn untrained_model_has_no_opinion() {
    let c = Classifier::new(small_settings());
    let mut model = MemoryModel::default();
    for n in 0..5 {
        model.learn(
            &extract_raw(&message(true, n), &c.settings.limits).tokens(),
            Class::Spam,
        );
    }
    let v = c.score(
        &extract_raw(&message(true, 50), &c.settings.limits),
        &model,
        None,
    );
    assert_eq!(v.label, Label::Untrained);
    assert_eq!((v.prob, v.score), (0.5, 0.0));
    assert!(v.reasons.is_empty());
}

#[test]
fn untraining_restores_the_model() {
    let c = Classifier::new(small_settings());
    let mut model = MemoryModel::default();
    for n in 0..20 {
        model.learn(
            &extract_raw(&message(true, n), &c.settings.limits).tokens(),
            Class::Spam,
        );
        model.learn(
            &extract_raw(&message(false, n), &c.settings.limits).tokens(),
            Class::Ham,
        );
    }
    let before = model.clone();
    let extra = extract_raw(&message(false, 99), &c.settings.limits).tokens();
    model.learn(&extra, Class::Spam);
    model.unlearn(&extra, Class::Spam);
    assert_eq!(model.totals, before.totals);
    assert_eq!(model.tokens, before.tokens);
}

#[test]
fn account_model_is_blended_once_ready() {
    let c = Classifier::new(small_settings());
    let mut global = MemoryModel::default();
    let mut account = MemoryModel::default();
    for n in 0..20 {
        global.learn(
            &extract_raw(&message(true, n), &c.settings.limits).tokens(),
            Class::Spam,
        );
        global.learn(
            &extract_raw(&message(false, n), &c.settings.limits).tokens(),
            Class::Ham,
        );
    }
    // This user calls the "ham" kind spam and the "spam" kind ham.
    for n in 0..20 {
        account.learn(
            &extract_raw(&message(false, n), &c.settings.limits).tokens(),
            Class::Spam,
        );
        account.learn(
            &extract_raw(&message(true, n), &c.settings.limits).tokens(),
            Class::Ham,
        );
    }
    let f = extract_raw(&message(false, 30), &c.settings.limits);
    let v = c.score(&f, &global, Some(&account));
    let (g, a) = (v.global.expect("global"), v.account.expect("account"));
    assert!(g < 0.1 && a > 0.9, "{g} {a}");
    assert!((v.prob - (0.5 * g + 0.5 * a)).abs() < 1e-9);
    assert!(v.reasons.iter().any(|r| r.model == "account"));
    // Not ready: ignored.
    let mut young = MemoryModel::default();
    young.learn(&f.tokens(), Class::Spam);
    let v = c.score(&f, &global, Some(&young));
    assert_eq!(v.account, None);
    assert_eq!(v.prob, v.global.expect("global"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_backed_learn_score_unlearn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: DynStore = std::sync::Arc::new(
        store::sqlite::Sqlite::open(dir.path(), store::sqlite::SqliteOptions::default())
            .expect("open"),
    );
    let c = Classifier::new(small_settings());
    for n in 0..15 {
        for spam in [true, false] {
            let raw = message(spam, n);
            let f = extract_raw(&raw, &c.settings.limits);
            let class = if spam { Class::Spam } else { Class::Ham };
            let r = c.learn(&store, &raw, &f, class, None).await.expect("learn");
            assert_eq!(r.global, SpamLearnOutcome::Learned);
            let again = c.learn(&store, &raw, &f, class, None).await.expect("learn");
            assert_eq!(again.global, SpamLearnOutcome::AlreadyLearned);
        }
    }
    let raw = message(true, 40);
    let f = extract_raw(&raw, &c.settings.limits);
    let v = c.score_stored(&store, &f, None).await.expect("score");
    assert_eq!(v.label, Label::Spam, "{}", v.prob);
    // The same message in memory scores the same.
    let mut mem = MemoryModel::default();
    for n in 0..15 {
        mem.learn(
            &extract_raw(&message(true, n), &c.settings.limits).tokens(),
            Class::Spam,
        );
        mem.learn(
            &extract_raw(&message(false, n), &c.settings.limits).tokens(),
            Class::Ham,
        );
    }
    assert!((c.score(&f, &mem, None).prob - v.prob).abs() < 1e-12);

    // Learn a new spam, then take it back: the verdict on another message is unchanged.
    let probe = extract_raw(&message(false, 41), &c.settings.limits);
    let before = c.score_stored(&store, &probe, None).await.expect("score");
    let r = c
        .learn(&store, &raw, &f, Class::Spam, None)
        .await
        .expect("learn");
    assert_eq!(r.global, SpamLearnOutcome::Learned);
    let r = c.unlearn(&store, &raw, &f, None).await.expect("unlearn");
    assert_eq!(r.global, SpamLearnOutcome::Unlearned);
    let after = c.score_stored(&store, &probe, None).await.expect("score");
    assert_eq!(before.prob, after.prob);
}
