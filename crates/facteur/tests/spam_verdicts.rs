//! Verdicts on the MX path as a user sees them (issue 13): the classifier's score tags every
//! message (`X-Spam-Status`, `X-Spam-Score`), sends spam to Junk, to quarantine or refuses it
//! with `550 5.7.1` according to per-account thresholds; a quarantined message is listed and
//! released with the CLI; allow and block lists; a message the classifier cannot make sense of is
//! still delivered; one log line per decision; and learning from users through real IMAP MOVEs
//! (Python's imaplib), changing the models' counts. Mail is sent with Python's smtplib.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::Server;
use serde_json::Value;

const PW: &str = "secret-password-1";

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

/// A synthetic spam or ham message, number `n`.
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

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &Output) -> Value {
    let text = ok(o);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Trains the global model with `count` spam and ham messages (the models' minimum is lowered
/// to 20 of each by [`config`]).
fn train(server: &Server, dir: &Path, count: usize) {
    let spam = dir.join("train-spam");
    let ham = dir.join("train-ham");
    std::fs::create_dir_all(&spam).expect("mkdir");
    std::fs::create_dir_all(&ham).expect("mkdir");
    for n in 0..count {
        std::fs::write(spam.join(format!("{n}.eml")), message(true, n)).expect("write");
        std::fs::write(ham.join(format!("{n}.eml")), message(false, n)).expect("write");
    }
    let v = json(&server.admin(&[
        "--json",
        "spam",
        "train",
        "--spam",
        spam.to_str().expect("path"),
        "--ham",
        ham.to_str().expect("path"),
    ]));
    assert_eq!(v["models"]["global"]["ready"], true, "{v}");
}

fn config(extra: &str) -> String {
    common::test_config(
        "example.com",
        &format!("[classifier]\nmin_learned = 20\nmin_account_learned = 20\n{extra}"),
    )
}

/// Runs Python with smtplib/imaplib helpers; `send(to, msg)` returns (code, text) of the end of
/// data (or of the refusal before it).
fn python(server: &Server, body: &str) -> String {
    let prelude = format!(
        r#"
import imaplib, smtplib, ssl
SMTP = {smtp}
IMAP = {imap}
CTX = ssl.create_default_context(); CTX.check_hostname = False; CTX.verify_mode = ssl.CERT_NONE
def send(to, msg, frm="sender@outside.test"):
    s = smtplib.SMTP("127.0.0.1", SMTP, timeout=30)
    s.ehlo("client.test")
    try:
        s.sendmail(frm, [to], msg)
        r = (250, "")
    except smtplib.SMTPDataError as e:
        r = (e.smtp_code, e.smtp_error.decode())
    except smtplib.SMTPRecipientsRefused as e:
        c, m = list(e.recipients.values())[0]
        r = (c, m.decode())
    s.quit()
    return r
def login(user):
    c = imaplib.IMAP4("127.0.0.1", IMAP)
    c.starttls(ssl_context=CTX)
    c.login(user, "{PW}")
    return c
def ok(r):
    typ, data = r
    assert typ == "OK", (typ, data)
    return data
"#,
        smtp = server.addr("smtp").port(),
        imap = server.addr("imap").port(),
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!("{prelude}\n{body}\nprint('python ok')"))
        .output()
        .expect("python3 is needed for these tests (scripts/test.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("python ok"),
        "python failed:\n{text}"
    );
    text
}

/// Raw bytes of every message in `mailbox` of `address`.
async fn folder(server: &Server, address: &str, mailbox: &str) -> Vec<String> {
    let store = server.store();
    let (local, domain) = address.split_once('@').expect("address");
    let acc = store
        .account_get(local, domain)
        .await
        .expect("account_get")
        .expect("account");
    let mb = store
        .mailbox_get(acc.id, mailbox)
        .await
        .expect("mailbox_get")
        .expect("mailbox");
    let mut out = Vec::new();
    for m in store.messages(mb.id, 1..=u32::MAX).await.expect("messages") {
        let raw = store.blob_read(m.blob, None).await.expect("blob");
        out.push(String::from_utf8_lossy(&raw).into_owned());
    }
    out
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    let end = msg.find("\r\n\r\n").unwrap_or(msg.len());
    msg[..end]
        .split("\r\n")
        .find(|l| {
            l.split_once(':')
                .is_some_and(|(n, _)| n.eq_ignore_ascii_case(name))
        })
        .map(|l| l.split_once(':').map_or("", |(_, v)| v.trim()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_junk_quarantine_reject_and_release() {
    // alice: the defaults (junk at 5); bob: quarantine from 5; carol: refused from 5.
    let server = Server::start_logged(
        "example.com",
        &config(
            "[verdict]\njunk = 5.0\n\
             [verdict.accounts.\"bob@example.com\"]\nquarantine = 5.0\n\
             [verdict.accounts.\"carol@example.com\"]\nreject = 5.0\n",
        ),
        "info",
    );
    for u in ["alice", "bob", "carol"] {
        server.add_account(&format!("{u}@example.com"), PW);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    train(&server, dir.path(), 30);

    let spam = message(true, 5000).replace("\r\n", "\n");
    let ham = message(false, 5000).replace("\r\n", "\n");
    let out = python(
        &server,
        &format!(
            r#"
SPAM = {spam:?}
HAM = {ham:?}
r = send("alice@example.com", SPAM); assert r == (250, ""), r
assert send("alice@example.com", HAM) == (250, ""), "alice ham"
assert send("bob@example.com", SPAM) == (250, ""), "bob spam"
c, m = send("carol@example.com", SPAM)
assert c == 550 and m.startswith("5.7.1 "), (c, m)
print("carol:", m)
# A message the classifier cannot make sense of (no header, binary junk): still delivered.
GARBAGE = b"\r\n".join(bytes((i * 7 + j * 13) % 94 + 33 for j in range(70)) for i in range(300)) + b"\r\n"
GARBAGE = b"\x01\x02 <<<>>> ==\r\n" + GARBAGE
assert send("alice@example.com", GARBAGE) == (250, ""), "garbage"
"#
        ),
    );
    assert!(
        out.contains("carol: 5.7.1 Message refused: it was classified as spam"),
        "{out}"
    );

    // alice: the spam in Junk, tagged Yes; the ham and the garbage in the INBOX, tagged.
    let junk = folder(&server, "alice@example.com", "Junk").await;
    assert_eq!(junk.len(), 1, "{junk:?}");
    let status = header(&junk[0], "X-Spam-Status").expect("X-Spam-Status");
    assert!(status.starts_with("Yes, score="), "{status}");
    assert!(status.contains("required=5.0"), "{status}");
    assert!(junk[0].contains("tests=BAYES_SPAM"), "{}", &junk[0][..400]);
    assert_eq!(header(&junk[0], "X-Spam-Flag"), Some("YES"));
    let score: f64 = header(&junk[0], "X-Spam-Score")
        .expect("X-Spam-Score")
        .parse()
        .expect("number");
    assert!(score >= 5.0, "{score}");
    let inbox = folder(&server, "alice@example.com", "INBOX").await;
    assert_eq!(inbox.len(), 2, "ham and garbage");
    for m in &inbox {
        let status = header(m, "X-Spam-Status").expect("X-Spam-Status");
        assert!(status.starts_with("No, score="), "{status}");
        assert_eq!(header(m, "X-Spam-Flag"), None);
    }
    assert!(inbox[0].contains("tests=BAYES_HAM"), "{}", &inbox[0][..400]);

    // bob: nothing delivered, one message held; carol: nothing at all.
    assert!(folder(&server, "bob@example.com", "INBOX").await.is_empty());
    assert!(folder(&server, "bob@example.com", "Junk").await.is_empty());
    assert!(
        folder(&server, "carol@example.com", "INBOX")
            .await
            .is_empty()
    );
    assert!(
        folder(&server, "carol@example.com", "Junk")
            .await
            .is_empty()
    );
    let list = json(&server.admin(&["--json", "quarantine", "list"]));
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["recipients"][0], "bob@example.com");
    assert!(
        list[0]["reasons"]
            .as_str()
            .is_some_and(|r| r.contains("BAYES_SPAM(+")),
        "{list:?}"
    );
    let id = list[0]["id"].as_i64().expect("id").to_string();
    let mine = json(&server.admin(&[
        "--json",
        "quarantine",
        "list",
        "--account",
        "alice@example.com",
    ]));
    assert_eq!(mine.as_array().map(Vec::len), Some(0));
    let shown = ok(&server.admin(&["quarantine", "show", &id]));
    assert!(shown.contains("X-Spam-Status: Yes"), "{shown}");
    // Released: in bob's INBOX, with its verdict header, and gone from the quarantine.
    let r = json(&server.admin(&["--json", "quarantine", "release", &id]));
    assert_eq!(r["delivered"], 1, "{r}");
    let bob = folder(&server, "bob@example.com", "INBOX").await;
    assert_eq!(bob.len(), 1);
    assert!(bob[0].starts_with("Return-Path: <sender@outside.test>\r\n"));
    assert!(bob[0].contains("X-Spam-Status: Yes"));
    assert!(bob[0].contains("Subject: "));
    let list = json(&server.admin(&["--json", "quarantine", "list"]));
    assert_eq!(list.as_array().map(Vec::len), Some(0));
    let again = server.admin(&["quarantine", "release", &id]);
    assert!(!again.status.success(), "released twice");
    assert!(
        !server
            .admin(&["quarantine", "delete", &id])
            .status
            .success()
    );

    // One log line per decision, with the message id, the score and the reasons.
    let log = server.log();
    let verdicts: Vec<&str> = log.lines().filter(|l| l.contains(": verdict ")).collect();
    assert_eq!(verdicts.len(), 5, "{log}");
    for (action, n) in [("junk", 1), ("inbox", 2), ("quarantine", 1), ("reject", 1)] {
        let lines: Vec<_> = verdicts
            .iter()
            .filter(|l| {
                l.contains(&format!("action=\"{action}\""))
                    || l.contains(&format!("action={action}"))
            })
            .collect();
        assert_eq!(lines.len(), n, "{action}: {verdicts:#?}");
        for l in lines {
            assert!(
                l.contains("id=") && l.contains("score=") && l.contains("reasons="),
                "{l}"
            );
        }
    }
    assert!(
        verdicts
            .iter()
            .any(|l| l.contains("message_id=\"<s5000@promo.example>\"")
                && l.contains("BAYES_SPAM(+")),
        "{verdicts:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_and_block_lists() {
    // Spam is refused from 5 points for everyone here.
    let server = Server::start_with(
        "example.com",
        "[classifier]\nmin_learned = 20\nmin_account_learned = 20\n[verdict]\nreject = 5.0\n",
    );
    server.add_account("alice@example.com", PW);
    server.add_account("bob@example.com", PW);
    let dir = tempfile::tempdir().expect("tempdir");
    train(&server, dir.path(), 30);

    // alice allows one spammy sender (by address) and a whole domain; the domain blocks another.
    let add = |args: &[&str]| ok(&server.admin(args));
    add(&[
        "spam",
        "allow",
        "add",
        "friend@outside.test",
        "--account",
        "alice@example.com",
    ]);
    add(&[
        "spam",
        "allow",
        "add",
        "@partner.test",
        "--account",
        "alice@example.com",
    ]);
    add(&[
        "spam",
        "block",
        "add",
        "@pest.test",
        "--domain",
        "example.com",
    ]);
    // An IP block on bob only: every test client comes from 127.0.0.1.
    add(&[
        "spam",
        "block",
        "add",
        "127.0.0.0/8",
        "--account",
        "bob@example.com",
    ]);
    let bad = server.admin(&[
        "spam",
        "block",
        "add",
        "1.2.3.4/40",
        "--domain",
        "example.com",
    ]);
    assert!(!bad.status.success());
    let listed = json(&server.admin(&[
        "--json",
        "spam",
        "allow",
        "list",
        "--account",
        "alice@example.com",
    ]));
    let patterns: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["pattern"].as_str())
        .collect();
    assert_eq!(patterns, ["@partner.test", "friend@outside.test"]);

    let spam = message(true, 6000).replace("\r\n", "\n");
    let ham = message(false, 6000).replace("\r\n", "\n");
    let out = python(
        &server,
        &format!(
            r#"
SPAM = {spam:?}
HAM = {ham:?}
# Allowed: the spam score no longer refuses (by envelope sender, by a subdomain).
assert send("alice@example.com", SPAM, "friend@outside.test") == (250, "")
assert send("alice@example.com", SPAM, "x@mail.partner.test") == (250, "")
# Not allowed: refused for its score.
c, m = send("alice@example.com", SPAM, "stranger@outside.test")
assert c == 550 and m.startswith("5.7.1"), (c, m)
# Blocked by the domain's list: refused even as ham, with a generic text.
c, m = send("alice@example.com", HAM, "someone@pest.test")
assert c == 550 and m == "5.7.1 Message refused by the recipient's policy", (c, m)
# bob's IP block.
c, m = send("bob@example.com", HAM, "someone@fine.test")
assert c == 550 and m.startswith("5.7.1"), (c, m)
assert send("alice@example.com", HAM, "someone@fine.test") == (250, "")
"#
        ),
    );
    assert!(out.contains("python ok"));
    let inbox = folder(&server, "alice@example.com", "INBOX").await;
    assert_eq!(inbox.len(), 3);
    assert!(inbox[0].contains("ALLOWLISTED"), "{}", &inbox[0][..500]);
    assert!(header(&inbox[0], "X-Spam-Status").is_some_and(|s| s.starts_with("No,")));
    assert!(folder(&server, "bob@example.com", "INBOX").await.is_empty());

    // Removed from the list: the same message is refused.
    add(&[
        "spam",
        "allow",
        "remove",
        "friend@outside.test",
        "--account",
        "alice@example.com",
    ]);
    python(
        &server,
        &format!(
            "c, m = send(\"alice@example.com\", {spam:?}, \"friend@outside.test\")\nassert c == 550, (c, m)\n"
        ),
    );
}

fn status(server: &Server, account: &str) -> Value {
    json(&server.admin(&["--json", "spam", "status", "--account", account]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learning_from_imap_moves() {
    let server = Server::start_with("example.com", "");
    server.add_account("alice@example.com", PW);
    let msgs: Vec<String> = (0..3).map(|n| message(n != 1, 7000 + n)).collect();
    let out = python(
        &server,
        &format!(
            r#"
for m in {msgs:?}:
    assert send("alice@example.com", m) == (250, "")
c = login("alice@example.com")
ok(c.select("INBOX"))
# The user files two messages into Junk: learned as spam.
ok(c.uid("MOVE", "1,3", "Junk"))
ok(c.select("Junk"))
n = ok(c.search(None, "ALL"))[0].split()
assert len(n) == 2, n
# ...then takes one back out to the INBOX: learned as ham instead.
ok(c.uid("MOVE", "1", "INBOX"))
print("after-ham")
# ...and deletes the other one from Junk: no learning.
ok(c.uid("MOVE", "2", "Trash"))
# A COPY from the INBOX into Junk is a spam report too.
ok(c.select("INBOX"))
ok(c.copy("1", "Junk"))
c.logout()
"#
        ),
    );
    assert!(out.contains("after-ham"));
    // alice's model and the global one: message 3 is spam, message 1 was moved back (ham),
    // message 2 (ham, copied to Junk from the INBOX) is spam.
    let v = status(&server, "alice@example.com");
    assert_eq!(v["account"]["spam"], 2, "{v}");
    assert_eq!(v["account"]["ham"], 1, "{v}");
    assert_eq!(v["global"]["spam"], 2, "{v}");
    assert_eq!(v["global"]["ham"], 1, "{v}");
}

/// A check's own quarantine (here a block list entry with `block_action = "quarantine"`, as a
/// malware scan would give) holds the message whatever its score, and `delete` removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checks_quarantine_holds_whatever_the_score() {
    let server = Server::start_with("example.com", "[verdict]\nblock_action = \"quarantine\"\n");
    server.add_account("alice@example.com", PW);
    ok(&server.admin(&[
        "spam",
        "block",
        "add",
        "pest.test",
        "--account",
        "alice@example.com",
    ]));
    let ham = message(false, 8000).replace("\r\n", "\n");
    python(
        &server,
        &format!("assert send(\"alice@example.com\", {ham:?}, \"a@pest.test\") == (250, \"\")\n"),
    );
    assert!(
        folder(&server, "alice@example.com", "INBOX")
            .await
            .is_empty()
    );
    assert!(
        folder(&server, "alice@example.com", "Junk")
            .await
            .is_empty()
    );
    let list = json(&server.admin(&[
        "--json",
        "quarantine",
        "list",
        "--account",
        "alice@example.com",
    ]));
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 1, "{list:?}");
    assert!(
        list[0]["reasons"]
            .as_str()
            .is_some_and(|r| r.contains("BLOCKLISTED"))
    );
    let id = list[0]["id"].as_i64().expect("id").to_string();
    ok(&server.admin(&["quarantine", "delete", &id]));
    let list = json(&server.admin(&["--json", "quarantine", "list"]));
    assert_eq!(list.as_array().map(Vec::len), Some(0));
    assert!(
        folder(&server, "alice@example.com", "INBOX")
            .await
            .is_empty()
    );
}
