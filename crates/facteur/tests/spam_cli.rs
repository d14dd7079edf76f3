//! `facteur spam train|test|forget|status` as an admin uses them, on message files, a Maildir-
//! like folder and an mbox the tests write, and beside a running server (another process on the
//! same store).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_facteur");

fn facteur(data: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("FACTEUR_CONFIG")
        .env("FACTEUR_USER", "root")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run facteur")
}

fn json(o: &Output) -> Value {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)))
}

const SPAM_WORDS: &[&str] = &[
    "free",
    "money",
    "winner",
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
    "pharmacy",
    "bonus",
    "cash",
];
const HAM_WORDS: &[&str] = &[
    "meeting", "patch", "review", "kernel", "tomorrow", "thanks", "build", "release", "agenda",
    "lunch", "commit", "branch", "notes", "report", "draft", "schedule", "bug", "question",
];

fn pick<'a>(state: &mut u64, v: &[&'a str]) -> &'a str {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    v[(*state >> 11) as usize % v.len()]
}

fn message(spam: bool, n: usize) -> String {
    let mut st = 0x9e37_79b9 ^ (n as u64 * 2_654_435_761) ^ u64::from(spam);
    let words = if spam { SPAM_WORDS } else { HAM_WORDS };
    let body: Vec<&str> = (0..50).map(|_| pick(&mut st, words)).collect();
    let subject = format!("{} {}", pick(&mut st, words), pick(&mut st, words));
    if spam {
        format!(
            "From: Offers <deals{n}@promo{}.example>\r\nTo: you@example.com\r\n\
             Subject: {subject}\r\nMessage-ID: <s{n}@promo.example>\r\nContent-Type: text/html\r\n\r\n\
             <p>{}</p><a href=\"http://win{}.example/claim\">here</a>\r\n",
            n % 7,
            body.join(" "),
            n % 5
        )
    } else {
        format!(
            "From: Dev <dev{}@work.example>\r\nTo: team@work.example\r\nSubject: {subject}\r\n\
             Message-ID: <h{n}@work.example>\r\nList-Id: <dev.work.example>\r\n\r\n{}\r\n",
            n % 9,
            body.join(" ")
        )
    }
}

/// A data folder with a small readiness minimum (the default needs 200 of each class).
fn init(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(
        data.join("facteur.toml"),
        "[listeners]\nsmtp = [\"127.0.0.1:0\"]\nsubmission = []\nsubmissions = []\n\
         imap = []\nimaps = []\npop3 = []\npop3s = []\nlmtp = []\n\
         [dns]\nnameservers = [\"127.0.0.1:9\"]\n[classifier]\nmin_learned = 20\n\
         min_account_learned = 20\n",
    )
    .expect("config");
    let o = facteur(&data, &["serve", "--init-only", "--domain", "example.com"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    data
}

/// `count` spam messages as .eml files in a folder (with a Maildir's cur/ for some), and
/// `count` ham messages in one mbox (with a ">From " quoted line).
fn write_corpus(dir: &Path, count: usize) -> (std::path::PathBuf, std::path::PathBuf) {
    let spam = dir.join("spam");
    std::fs::create_dir_all(spam.join("cur")).expect("mkdir");
    for n in 0..count {
        let sub = if n % 4 == 0 {
            spam.join("cur")
        } else {
            spam.clone()
        };
        std::fs::write(sub.join(format!("{n}.eml")), message(true, n)).expect("write");
    }
    let mut mbox = String::new();
    for n in 0..count {
        mbox.push_str(&format!(
            "From dev@work.example Mon Jan  1 00:00:{:02} 2024\n",
            n % 60
        ));
        mbox.push_str(&message(false, n).replace("\r\n", "\n"));
        mbox.push_str(">From the notes\n\n");
    }
    let ham = dir.join("ham.mbox");
    std::fs::write(&ham, mbox).expect("write mbox");
    (spam, ham)
}

#[test]
fn train_test_forget_and_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = init(dir.path());
    let (spam, ham) = write_corpus(dir.path(), 40);
    let (spam_s, ham_s) = (spam.to_str().expect("path"), ham.to_str().expect("path"));

    // Untrained: no opinion.
    let probe_spam = dir.path().join("probe-spam.eml");
    std::fs::write(&probe_spam, message(true, 1000)).expect("write");
    let probe = probe_spam.to_str().expect("path");
    let v = json(&facteur(&data, &["--json", "spam", "test", probe]));
    assert_eq!(v["verdict"], "untrained");
    assert_eq!(v["score"], 0.0);

    let t = json(&facteur(
        &data,
        &["--json", "spam", "train", "--spam", spam_s, "--ham", ham_s],
    ));
    assert_eq!(t["spam"]["learned"], 40, "{t}");
    assert_eq!(t["ham"]["learned"], 40, "{t}");
    assert_eq!(t["models"]["global"]["spam"], 40);
    assert_eq!(t["models"]["global"]["ham"], 40);
    assert_eq!(t["models"]["global"]["ready"], true);

    // Learning the same mail again counts nothing; learning it as the other class moves it.
    let again = json(&facteur(
        &data,
        &["--json", "spam", "train", "--spam", spam_s],
    ));
    assert_eq!(again["spam"]["already_learned"], 40);
    assert_eq!(again["models"]["global"]["spam"], 40);

    let v = json(&facteur(&data, &["--json", "spam", "test", probe]));
    assert_eq!(v["verdict"], "spam", "{v}");
    assert!(v["probability"].as_f64().expect("prob") > 0.9, "{v}");
    assert!(v["score"].as_f64().expect("score") > 4.0);
    assert!(v["global"].as_f64().is_some());
    assert!(v["account"].is_null());
    let reasons = v["reasons"].as_array().expect("reasons");
    assert!(!reasons.is_empty());
    for r in reasons {
        for k in ["token", "model", "prob", "weight", "ham", "spam"] {
            assert!(!r[k].is_null(), "reason without {k}: {r}");
        }
    }
    assert!(
        reasons
            .iter()
            .any(|r| r["weight"].as_f64().is_some_and(|w| w > 0.0)),
        "{v}"
    );

    let probe_ham = dir.path().join("probe-ham.eml");
    std::fs::write(&probe_ham, message(false, 1000)).expect("write");
    let v = json(&facteur(
        &data,
        &["--json", "spam", "test", probe_ham.to_str().expect("path")],
    ));
    assert_eq!(v["verdict"], "ham", "{v}");

    // Text output names the verdict and the reasons.
    let o = facteur(&data, &["spam", "test", probe]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.starts_with("verdict: spam"), "{text}");
    assert!(text.contains("reasons ("), "{text}");

    // Forgetting the spam takes it back out.
    let f = json(&facteur(&data, &["--json", "spam", "forget", spam_s]));
    assert_eq!(f["forgotten"], 40, "{f}");
    assert_eq!(f["models"]["global"]["spam"], 0);
    assert_eq!(f["models"]["global"]["ready"], false);
    let v = json(&facteur(&data, &["--json", "spam", "test", probe]));
    assert_eq!(v["verdict"], "untrained");
}

#[test]
fn account_models_and_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = init(dir.path());
    let (spam, ham) = write_corpus(dir.path(), 25);
    let (spam_s, ham_s) = (spam.to_str().expect("path"), ham.to_str().expect("path"));

    let o = facteur(
        &data,
        &[
            "spam",
            "train",
            "--spam",
            spam_s,
            "--account",
            "nobody@example.com",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "unknown account must fail");
    assert!(String::from_utf8_lossy(&o.stderr).contains("no account"));
    let o = facteur(&data, &["spam", "train"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "nothing to learn is a usage error"
    );

    let t = json(&facteur(
        &data,
        &[
            "--json",
            "spam",
            "train",
            "--spam",
            spam_s,
            "--ham",
            ham_s,
            "--account",
            "postmaster@example.com",
        ],
    ));
    assert_eq!(t["models"]["account"]["spam"], 25, "{t}");
    assert_eq!(t["models"]["account"]["ready"], true);
    let s = json(&facteur(
        &data,
        &[
            "--json",
            "spam",
            "status",
            "--account",
            "postmaster@example.com",
        ],
    ));
    assert_eq!(s["global"]["ham"], 25);
    assert_eq!(s["account"]["ham"], 25);

    let probe = dir.path().join("probe.eml");
    std::fs::write(&probe, message(true, 777)).expect("write");
    let v = json(&facteur(
        &data,
        &[
            "--json",
            "spam",
            "test",
            probe.to_str().expect("path"),
            "--account",
            "postmaster@example.com",
        ],
    ));
    assert!(v["account"].as_f64().is_some(), "{v}");
    assert!(
        v["reasons"]
            .as_array()
            .expect("reasons")
            .iter()
            .any(|r| r["model"] == "account")
    );

    // Binary garbage and an empty file still get a verdict, not a crash.
    let garbage: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let g = dir.path().join("garbage.bin");
    std::fs::write(&g, garbage).expect("write");
    let e = dir.path().join("empty.eml");
    std::fs::write(&e, b"").expect("write");
    for p in [&g, &e] {
        let v = json(&facteur(
            &data,
            &["--json", "spam", "test", p.to_str().expect("path")],
        ));
        assert!(v["verdict"].is_string(), "{v}");
    }
    // A missing file is an error with a message.
    let o = facteur(&data, &["spam", "test", "/nonexistent/message.eml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read"));
}

/// The CLI trains the store of a running server (another process), as an admin would.
#[test]
fn trains_beside_a_running_server() {
    let server = common::Server::start("example.com");
    let dir = tempfile::tempdir().expect("tempdir");
    let (spam, ham) = write_corpus(dir.path(), 10);
    let t = json(&facteur(
        &server.data,
        &[
            "--json",
            "spam",
            "train",
            "--spam",
            spam.to_str().expect("path"),
            "--ham",
            ham.to_str().expect("path"),
        ],
    ));
    assert_eq!(t["spam"]["learned"], 10, "{t}");
    assert_eq!(t["models"]["global"]["ham"], 10);
    // Default minimum: not ready with 10 of each.
    assert_eq!(t["models"]["global"]["ready"], false);
    assert_eq!(t["models"]["global"]["needs_each"], 200);
}
