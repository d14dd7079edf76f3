//! SORT (RFC 5256 §3, RFC 5957 SORT=DISPLAY) and THREAD (RFC 5256 §4: ORDEREDSUBJECT and
//! REFERENCES).

use std::sync::Arc;

use super::{fixture, run};
use crate::backend::MailBackend;
use crate::command::sort::Keys;
use crate::command::thread::{Msg, normalize_id, references};
use crate::session::Session;

/// Appends `msg` to INBOX with INTERNALDATE `date`.
async fn add(s: &mut Session<MailBackend>, date: &str, msg: &str) {
    let r = run(
        s,
        &format!(
            "ap APPEND INBOX () \"{date}\" {{{}+}}\r\n{msg}\r\n",
            msg.len()
        ),
    )
    .await;
    assert!(r.contains("ap OK"), "{r}");
}

/// The untagged response line of a command's output, after checking the command succeeded.
fn line<'a>(r: &'a str, tag: &str) -> &'a str {
    assert!(r.contains(&format!("{tag} OK")), "{r}");
    r.lines().next().unwrap_or_default()
}

/// Five messages whose keys disagree (see each key's expected order below); the padding makes
/// the body size decide SIZE whatever the header lengths.
async fn sort_fixture(s: &mut Session<MailBackend>) {
    let pad = |n: usize| "x".repeat(n);
    add(
        s,
        "01-Jan-2024 10:00:00 +0000",
        &format!(
            "From: \"Zed\" <carol@x.test>\r\nTo: bob@x.test\r\nCc: dave@x.test\r\n\
             Subject: Re: beta\r\nDate: Wed, 3 Jan 2024 00:00:00 +0000\r\n\r\n{}\r\n",
            pad(1000)
        ),
    )
    .await;
    add(
        s,
        "02-Jan-2024 10:00:00 +0000",
        &format!(
            "From: alice@x.test\r\nTo: \"Ann\" <zoe@x.test>\r\nSubject: alpha\r\n\r\n{}\r\n",
            pad(1600)
        ),
    )
    .await;
    add(
        s,
        "03-Jan-2024 10:00:00 +0000",
        &format!(
            "From: BOB@x.test\r\nTo: =?utf-8?q?Yves?= <amy@x.test>\r\nCc: aaron@x.test\r\n\
             Subject: [list] Gamma\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\n{}\r\n",
            pad(1300)
        ),
    )
    .await;
    add(
        s,
        "04-Jan-2024 10:00:00 +0000",
        &format!(
            "From: bob@x.test\r\nTo: bob@x.test\r\nSubject: ALPHA\r\n\
             Date: Mon, 1 Jan 2024 00:00:00 -0100\r\n\r\n{}\r\n",
            pad(700)
        ),
    )
    .await;
    add(
        s,
        "05-Jan-2024 10:00:00 +0000",
        &format!(
            "From: \"Adam\" <zack@x.test>\r\nDate: Sun, 31 Dec 2023 23:00:00 +0000\r\n\r\n{}\r\n",
            pad(1900)
        ),
    )
    .await;
}

#[tokio::test]
async fn capabilities_after_login() {
    let f = fixture().await;
    let mut s = f.session(true);
    let r = run(&mut s, "a CAPABILITY\r\n").await;
    assert!(!r.contains("SORT"), "{r}");
    let mut s = f.logged_in().await;
    let r = run(&mut s, "a CAPABILITY\r\n").await;
    assert!(
        r.contains(" SORT SORT=DISPLAY THREAD=ORDEREDSUBJECT THREAD=REFERENCES "),
        "{r}"
    );
}

#[tokio::test]
async fn sort_by_each_key() {
    let f = fixture().await;
    let mut s = f.logged_in().await;
    sort_fixture(&mut s).await;
    run(&mut s, "s SELECT INBOX\r\n").await;
    let cases = [
        ("ARRIVAL", "1 2 3 4 5"),
        ("REVERSE ARRIVAL", "5 4 3 2 1"),
        // Date: in UTC (message 4's -0100 is an hour after message 3), INTERNALDATE for 2.
        ("DATE", "5 3 4 2 1"),
        ("REVERSE DATE", "1 2 4 3 5"),
        // addr-mailbox, i;ascii-casemap: BOB and bob tie and stay in mailbox order.
        ("FROM", "2 3 4 1 5"),
        ("REVERSE FROM", "5 1 3 4 2"),
        // No To: the empty string, first.
        ("TO", "5 3 1 4 2"),
        ("CC", "2 4 5 3 1"),
        // Base subjects: "", alpha, ALPHA, beta ("Re:" removed), Gamma ("[list]" removed).
        ("SUBJECT", "5 2 4 1 3"),
        ("SIZE", "4 1 3 2 5"),
        ("REVERSE SIZE", "5 2 3 1 4"),
        // Display names (decoded) or addr-spec: Adam, alice@x.test, BOB@x.test, bob@x.test, Zed.
        ("DISPLAYFROM", "5 2 3 4 1"),
        // "", Ann, bob@x.test (1 and 4), Yves (an encoded word).
        ("DISPLAYTO", "5 2 1 4 3"),
        // Several keys: the second decides between equal first keys.
        ("SUBJECT REVERSE ARRIVAL", "5 4 2 1 3"),
        ("FROM REVERSE DATE", "2 4 3 1 5"),
        ("CC SUBJECT", "5 2 4 3 1"),
    ];
    for (keys, want) in cases {
        let r = run(&mut s, &format!("k SORT ({keys}) UTF-8 ALL\r\n")).await;
        assert_eq!(line(&r, "k"), format!("* SORT {want}"), "SORT ({keys})");
    }
    // Search criteria narrow the set first; US-ASCII is accepted too.
    let r = run(&mut s, "a SORT (REVERSE DATE) US-ASCII FROM bob\r\n").await;
    assert_eq!(line(&r, "a"), "* SORT 4 3");
    let r = run(&mut s, "b sort (date) utf-8 OR TO zoe CC dave\r\n").await;
    assert_eq!(line(&r, "b"), "* SORT 2 1");
}

#[tokio::test]
async fn uid_sort_and_thread_after_expunge() {
    let f = fixture().await;
    let mut s = f.logged_in().await;
    sort_fixture(&mut s).await;
    run(&mut s, "s SELECT INBOX\r\n").await;
    let r = run(&mut s, "e STORE 1 +FLAGS.SILENT (\\Deleted)\r\n").await;
    assert!(r.contains("e OK"), "{r}");
    let r = run(&mut s, "e EXPUNGE\r\n").await;
    assert!(r.contains("* 1 EXPUNGE"), "{r}");
    // Sequence numbers moved down by one; UIDs did not.
    let r = run(&mut s, "a SORT (DATE) UTF-8 ALL\r\n").await;
    assert_eq!(line(&r, "a"), "* SORT 4 2 3 1");
    let r = run(&mut s, "b UID SORT (DATE) UTF-8 ALL\r\n").await;
    assert_eq!(r, "* SORT 5 3 4 2\r\nb OK UID SORT completed\r\n");
    let r = run(&mut s, "c UID SORT (SIZE) UTF-8 UID 3:*\r\n").await;
    assert_eq!(line(&r, "c"), "* SORT 4 3 5");
    let r = run(&mut s, "d UID THREAD ORDEREDSUBJECT UTF-8 ALL\r\n").await;
    assert_eq!(r, "* THREAD (5)(3)(4 2)\r\nd OK UID THREAD completed\r\n");
    let r = run(&mut s, "d THREAD ORDEREDSUBJECT UTF-8 ALL\r\n").await;
    assert_eq!(line(&r, "d"), "* THREAD (4)(2)(3 1)");
}

#[tokio::test]
async fn charsets_errors_and_empty_results() {
    let f = fixture().await;
    let mut s = f.logged_in().await;
    let r = run(&mut s, "a SORT (DATE) UTF-8 ALL\r\n").await;
    assert!(r.starts_with("a BAD"), "{r}");
    let r = run(&mut s, "a THREAD REFERENCES UTF-8 ALL\r\n").await;
    assert!(r.starts_with("a BAD"), "{r}");
    sort_fixture(&mut s).await;
    run(&mut s, "s SELECT INBOX\r\n").await;
    let r = run(&mut s, "b SORT (DATE) KOI8-R ALL\r\n").await;
    assert!(r.starts_with("b NO [BADCHARSET ("), "{r}");
    assert!(r.contains("UTF-8") && r.contains("US-ASCII"), "{r}");
    let r = run(&mut s, "c THREAD REFERENCES \"ISO-8859-1\" ALL\r\n").await;
    assert!(r.starts_with("c NO [BADCHARSET ("), "{r}");
    let r = run(&mut s, "d SORT (DATE) UTF-8 SUBJECT nothing-like-this\r\n").await;
    assert_eq!(r, "* SORT\r\nd OK SORT completed\r\n");
    let r = run(
        &mut s,
        "e THREAD REFERENCES UTF-8 SUBJECT nothing-like-this\r\n",
    )
    .await;
    assert_eq!(r, "* THREAD\r\ne OK THREAD completed\r\n");
    let r = run(
        &mut s,
        "e THREAD ORDEREDSUBJECT UTF-8 SUBJECT nothing-like-this\r\n",
    )
    .await;
    assert_eq!(r, "* THREAD\r\ne OK THREAD completed\r\n");
    // Syntax: an unknown key, no criteria, an unknown algorithm.
    for bad in [
        "f SORT (COLOR) UTF-8 ALL\r\n",
        "f SORT () UTF-8 ALL\r\n",
        "f SORT (DATE) UTF-8\r\n",
        "f SORT DATE UTF-8 ALL\r\n",
        "f THREAD FANCY UTF-8 ALL\r\n",
    ] {
        let r = run(&mut s, bad).await;
        assert!(r.starts_with("f BAD"), "{bad}: {r}");
    }
    // With a MODSEQ criterion the SORT response carries the highest MODSEQ (RFC 7162 §3.1.5),
    // after the HIGHESTMODSEQ of the mailbox that this first CONDSTORE-enabling command reports
    // (§3.1).
    let r = run(&mut s, "g SORT (REVERSE ARRIVAL) UTF-8 MODSEQ 1\r\n").await;
    assert!(line(&r, "g").starts_with("* OK [HIGHESTMODSEQ "), "{r}");
    assert!(
        r.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("* SORT 5 4 3 2 1 (MODSEQ ")),
        "{r}"
    );
}

#[tokio::test]
async fn saved_result_as_criterion() {
    let f = fixture().await;
    let mut s = f.logged_in().await;
    sort_fixture(&mut s).await;
    run(&mut s, "s SELECT INBOX\r\n").await;
    let r = run(&mut s, "a SEARCH RETURN (SAVE) FROM bob\r\n").await;
    assert_eq!(r, "a OK SEARCH completed\r\n");
    let r = run(&mut s, "b SORT (REVERSE ARRIVAL) UTF-8 $\r\n").await;
    assert_eq!(line(&r, "b"), "* SORT 4 3");
    let r = run(&mut s, "c UID SORT (SUBJECT) UTF-8 OR $ UID 1\r\n").await;
    assert_eq!(line(&r, "c"), "* SORT 4 1 3");
    let r = run(&mut s, "d THREAD ORDEREDSUBJECT UTF-8 $\r\n").await;
    assert_eq!(line(&r, "d"), "* THREAD (3)(4)");
}

/// A set for threading: (Message-ID, References or In-Reply-To header, Subject). Dates
/// follow the order of the list (one second apart).
const THREAD_SET: &[(&str, &str, &str)] = &[
    ("<a@x>", "", "foo"),
    ("<b@x>", "In-Reply-To: <a@x>", "Re: foo"),
    // The parent of c is missing: the dummy goes and c hangs below a.
    ("<c@x>", "References: <a@x> <missing@x>", "Re: foo"),
    // A missing parent with one child at the top level: the child becomes a root.
    ("<d@x>", "References: <gone1@x>", "bar"),
    // A missing parent of two messages: a dummy at the top level.
    ("<e@x>", "References: <gone2@x>", "baz"),
    ("<f@x>", "References: <gone2@x>", "Re: baz"),
    // A reply to itself.
    ("<g@x>", "References: <g@x>", "self"),
    // The Message-ID of message 1 again: this one gets a unique ID.
    ("<a@x>", "", "dup"),
    // No references, but "Re: bar": grouped below d by subject.
    ("<h@x>", "", "Re: bar"),
    ("<i@x>", "In-Reply-To: <b@x>", "Re: foo"),
    // Each references the other: the second link would close a loop.
    ("<x@x>", "References: <y@x>", "loop"),
    ("<y@x>", "References: <x@x>", "loop"),
    // The reply comes first; the original still becomes the parent.
    ("<j@x>", "", "Re: qux"),
    ("<k@x>", "", "qux"),
    // Two originals with one subject: siblings below a dummy.
    ("<l@x>", "", "same"),
    ("<m@x>", "", "same"),
];

async fn thread_fixture(s: &mut Session<MailBackend>) {
    for (i, (id, refs, subject)) in THREAD_SET.iter().enumerate() {
        let refs = if refs.is_empty() {
            String::new()
        } else {
            format!("{refs}\r\n")
        };
        let msg = format!(
            "From: u@x.test\r\nMessage-ID: {id}\r\n{refs}Subject: {subject}\r\n\
             Date: Mon, 1 Jan 2024 00:00:{:02} +0000\r\n\r\nbody\r\n",
            i + 1
        );
        add(s, "01-Feb-2024 00:00:00 +0000", &msg).await;
    }
}

#[tokio::test]
async fn thread_references() {
    let f = fixture().await;
    let mut s = f.logged_in().await;
    thread_fixture(&mut s).await;
    run(&mut s, "s SELECT INBOX\r\n").await;
    let r = run(&mut s, "a THREAD REFERENCES UTF-8 ALL\r\n").await;
    assert_eq!(
        r,
        "* THREAD (1 (2 10)(3))(4 9)((5)(6))(7)(8)(12 11)(14 13)((15)(16))\r\n\
         a OK THREAD completed\r\n"
    );
    // Only part of the mailbox: b (2) is not searched, so i (10) has no parent among them.
    let r = run(&mut s, "b THREAD REFERENCES UTF-8 NOT 2\r\n").await;
    assert_eq!(
        line(&r, "b"),
        "* THREAD (1 (3)(10))(4 9)((5)(6))(7)(8)(12 11)(14 13)((15)(16))"
    );
    let r = run(&mut s, "c UID THREAD REFERENCES UTF-8 UID 1:3\r\n").await;
    assert_eq!(line(&r, "c"), "* THREAD (1 (2)(3))");
}

#[tokio::test]
async fn thread_ordered_subject() {
    let f = fixture().await;
    let mut s = f.logged_in().await;
    thread_fixture(&mut s).await;
    run(&mut s, "s SELECT INBOX\r\n").await;
    let r = run(&mut s, "a THREAD ORDEREDSUBJECT UTF-8 ALL\r\n").await;
    assert_eq!(
        r,
        "* THREAD (1 (2)(3)(10))(4 9)(5 6)(7)(8)(11 12)(13 14)(15 16)\r\n\
         a OK THREAD completed\r\n"
    );
}

fn msg(num: u32, id: &str, refs: &[&str], subject: &str) -> Msg {
    Msg {
        num,
        date: i64::from(num),
        keys: Arc::new(Keys {
            subject: subject.to_uppercase().into(),
            message_id: Some(normalize_id(id).into()),
            refs: refs.iter().map(|r| normalize_id(r).into()).collect(),
            ..Keys::default()
        }),
    }
}

fn encoded(msgs: &[Msg]) -> String {
    let mut out = Vec::new();
    references(msgs).encode(msgs, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

#[tokio::test]
async fn thread_ids_differing_in_quoting_are_one() {
    // RFC 5256 §4: msg-ids are normalised before they are compared.
    let f = fixture().await;
    let mut s = f.logged_in().await;
    for (id, refs) in [("<\"a.b\"@x>", ""), ("<c@x>", "In-Reply-To: <a.b@x>\r\n")] {
        let msg = format!("Message-ID: {id}\r\n{refs}Subject: s\r\n\r\nbody\r\n");
        add(&mut s, "01-Feb-2024 00:00:00 +0000", &msg).await;
    }
    run(&mut s, "s SELECT INBOX\r\n").await;
    let r = run(&mut s, "a THREAD REFERENCES UTF-8 ALL\r\n").await;
    assert_eq!(line(&r, "a"), "* THREAD (1 2)");
}

#[test]
fn references_truncated_and_missing() {
    // Message 2's References say c's parent is q (a truncated chain); c's own References
    // (a, b) win, and the dummy q, left without children, goes.
    let msgs = [
        msg(1, "a@x", &[], "s"),
        msg(2, "z@x", &["q@x", "c@x"], "t"),
        msg(3, "b@x", &["a@x"], "u"),
        msg(4, "c@x", &["a@x", "b@x"], "v"),
    ];
    assert_eq!(encoded(&msgs), "* THREAD (1 3 4 2)\r\n");
    // A message without references loses the parent other messages gave it.
    let msgs = [
        msg(1, "r@x", &["p@x", "q@x"], "s"),
        msg(2, "q@x", &[], "t"),
        msg(3, "p@x", &[], "u"),
    ];
    assert_eq!(encoded(&msgs), "* THREAD (2 1)(3)\r\n");
}

#[test]
fn deep_chains_do_not_exhaust_the_stack() {
    const N: u32 = 50_000;
    // Each message answers the previous one.
    let msgs: Vec<Msg> = (1..=N)
        .map(|i| {
            let parent = format!("m{}@x", i - 1);
            let refs: Vec<&str> = if i > 1 { vec![&parent] } else { vec![] };
            msg(i, &format!("m{i}@x"), &refs, "chain")
        })
        .collect();
    let out = encoded(&msgs);
    assert!(out.starts_with("* THREAD (1 2 3 "), "{}", &out[..40]);
    assert!(out.ends_with(" 49999 50000)\r\n"));
    // Each message answers the next one and also has a second, leafless reply: every level
    // branches, so the output nests N levels of parentheses.
    let mut msgs = Vec::new();
    for i in 1..=N {
        let parent = format!("n{}@x", i + 1);
        msgs.push(msg(i, &format!("n{i}@x"), &[&parent], "deep"));
    }
    for i in 1..=N {
        let parent = format!("n{i}@x");
        msgs.push(msg(N + i, &format!("leaf{i}@x"), &[&parent], "deep"));
    }
    let out = encoded(&msgs);
    assert_eq!(out.matches('(').count(), out.matches(')').count());
    assert!(
        out.starts_with("* THREAD (50000 (49999 (49998 "),
        "{}",
        &out[..40]
    );
    assert!(out.contains(" (3 (2 (1 50001)(50002))(50003))(50004))"));
}

/// Timing on a large mailbox, run by hand (timings are not asserted):
/// `cargo test --release -p imap large_mailbox_timing -- --ignored --nocapture`
/// (`SORT_THREAD_MESSAGES` sets the size, 100,000 by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a timing run by hand (docs/benchmarks.md); it asserts results, not time"]
async fn large_mailbox_timing() {
    use std::time::Instant;

    use store::{AppendRequest, Flags, INBOX, WriteBatch};

    let n: usize = std::env::var("SORT_THREAD_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let f = fixture().await;
    let store = f.backend.store.clone();
    let account = store
        .account_get("alice", "example.com")
        .await
        .expect("account_get")
        .expect("account");
    let inbox = store
        .mailbox_get(account.id, INBOX)
        .await
        .expect("mailbox_get")
        .expect("INBOX");
    let started = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let appends = chunk
            .iter()
            .map(|&i| {
                // Threads of 10: the first message starts one, the others answer it.
                let root = i - i % 10;
                let refs = if i == root {
                    String::new()
                } else {
                    format!("References: <m{root}@x.test> <m{}@x.test>\r\n", i - 1)
                };
                let re = if i == root { "" } else { "Re: " };
                let raw = format!(
                    "From: \"User {u}\" <user{u}@x.test>\r\nTo: list{l}@x.test\r\n\
                     Subject: {re}topic {root}\r\nMessage-ID: <m{i}@x.test>\r\n{refs}\
                     Date: Mon, 1 Jan 2024 {h:02}:{m:02}:{s:02} +0000\r\n\r\nbody {i}\r\n",
                    u = (i * 7919) % 1000,
                    l = i % 50,
                    h = (i / 3600) % 24,
                    m = (i / 60) % 60,
                    s = i % 60,
                );
                AppendRequest {
                    mailbox_id: inbox.id,
                    raw: Arc::<[u8]>::from(raw.into_bytes()).into(),
                    flags: Flags::empty(),
                    keywords: vec![],
                    internal_date: 1_700_000_000 + i as i64,
                }
            })
            .collect();
        store
            .commit(WriteBatch {
                appends,
                ..WriteBatch::default()
            })
            .await
            .expect("commit");
    }
    println!("appended {n} messages in {:.1?}", started.elapsed());
    let mut s = f.logged_in().await;
    let t = Instant::now();
    let r = run(&mut s, "s SELECT INBOX\r\n").await;
    assert!(r.contains(&format!("* {n} EXISTS")), "{r}");
    println!("SELECT: {:.3?}", t.elapsed());
    for cmd in [
        "SORT (ARRIVAL) UTF-8 ALL",
        "SORT (DATE) UTF-8 ALL",
        "SORT (DATE) UTF-8 ALL",
        "SORT (REVERSE DATE) UTF-8 ALL",
        "SORT (SUBJECT DATE) UTF-8 ALL",
        "SORT (FROM) UTF-8 ALL",
        "SORT (DISPLAYFROM) UTF-8 ALL",
        "UID SORT (SIZE) UTF-8 UNSEEN",
        "SEARCH ALL",
        "SEARCH FROM user7",
        "THREAD ORDEREDSUBJECT UTF-8 ALL",
        "THREAD REFERENCES UTF-8 ALL",
        "THREAD REFERENCES UTF-8 ALL",
    ] {
        let t = Instant::now();
        let r = run(&mut s, &format!("t {cmd}\r\n")).await;
        let took = t.elapsed();
        assert!(r.contains("t OK"), "{}", &r[r.len().saturating_sub(200)..]);
        println!("{cmd}: {took:.3?} ({} bytes)", r.len());
    }
}
