//! ESEARCH RETURN options (RFC 4731) and the saved search result (SEARCHRES, RFC 5182).

use super::{append_n, fixture, run};

#[tokio::test]
async fn esearch_return_options() {
    let f = fixture().await;
    let mut s = f.logged_in().await;
    append_n(&mut s, 6).await;
    run(&mut s, "s SELECT INBOX\r\n").await;
    run(&mut s, "t STORE 2,4:5 +FLAGS.SILENT (\\Flagged)\r\n").await;
    let r = run(&mut s, "a SEARCH RETURN (MIN MAX COUNT) FLAGGED\r\n").await;
    assert_eq!(
        r,
        "* ESEARCH (TAG \"a\") MIN 2 MAX 5 COUNT 3\r\na OK SEARCH completed\r\n"
    );
    let r = run(&mut s, "b UID SEARCH RETURN () FLAGGED\r\n").await;
    assert!(
        r.starts_with("* ESEARCH (TAG \"b\") UID ALL 2,4:5\r\n"),
        "{r}"
    );
    let r = run(
        &mut s,
        "c SEARCH RETURN (MIN MAX COUNT ALL) SUBJECT nothing\r\n",
    )
    .await;
    assert!(r.starts_with("* ESEARCH (TAG \"c\") COUNT 0\r\n"), "{r}");
    let r = run(
        &mut s,
        "d SEARCH RETURN (COUNT) CHARSET UTF-8 UNFLAGGED\r\n",
    )
    .await;
    assert!(r.starts_with("* ESEARCH (TAG \"d\") COUNT 3\r\n"), "{r}");
    // With CONDSTORE, MODSEQ of the messages returned; the search enables CONDSTORE, so the
    // selected mailbox's HIGHESTMODSEQ comes first (RFC 7162 §3.1).
    let r = run(&mut s, "e SEARCH RETURN (MAX) MODSEQ 1\r\n").await;
    let mut lines = r.lines();
    assert!(
        lines
            .next()
            .is_some_and(|l| l.starts_with("* OK [HIGHESTMODSEQ ")),
        "{r}"
    );
    assert!(
        lines
            .next()
            .is_some_and(|l| l.starts_with("* ESEARCH (TAG \"e\") MAX 6 MODSEQ ")),
        "{r}"
    );
    let r = run(&mut s, "f SEARCH RETURN (FIRST) ALL\r\n").await;
    assert!(r.starts_with("f BAD"), "{r}");
    // Without RETURN an IMAP4rev1 client still gets SEARCH.
    let r = run(&mut s, "g SEARCH FLAGGED\r\n").await;
    assert!(r.starts_with("* SEARCH 2 4 5\r\n"), "{r}");
}

#[tokio::test]
async fn saved_result_in_later_commands() {
    let f = fixture().await;
    let mut s = f.logged_in().await;
    append_n(&mut s, 6).await;
    run(&mut s, "s SELECT INBOX\r\n").await;
    // SAVE alone: no ESEARCH response (RFC 5182 §2.4).
    let r = run(&mut s, "a SEARCH RETURN (SAVE) SUBJECT m3\r\n").await;
    assert_eq!(r, "a OK SEARCH completed\r\n");
    let r = run(
        &mut s,
        "a UID SEARCH RETURN (SAVE ALL) OR SUBJECT m2 SUBJECT m5\r\n",
    )
    .await;
    assert!(
        r.starts_with("* ESEARCH (TAG \"a\") UID ALL 2,5\r\n"),
        "{r}"
    );
    let r = run(&mut s, "b FETCH $ (UID)\r\n").await;
    assert_eq!(
        r,
        "* 2 FETCH (UID 2)\r\n* 5 FETCH (UID 5)\r\nb OK FETCH completed\r\n"
    );
    let r = run(&mut s, "c STORE $ +FLAGS (\\Deleted)\r\n").await;
    assert!(
        r.contains("* 2 FETCH (FLAGS (\\Recent \\Deleted) UID 2)"),
        "{r}"
    );
    let r = run(&mut s, "d SEARCH $ DELETED\r\n").await;
    assert!(r.starts_with("* SEARCH 2 5\r\n"), "{r}");
    let r = run(&mut s, "d UID SEARCH NOT UID $\r\n").await;
    assert!(r.starts_with("* SEARCH 1 3 4 6\r\n"), "{r}");
    // Expunged messages leave the saved result; the rest keep being found by UID.
    run(&mut s, "e UID EXPUNGE 2\r\n").await;
    let r = run(&mut s, "f UID FETCH $ (FLAGS)\r\n").await;
    assert_eq!(
        r,
        "* 4 FETCH (UID 5 FLAGS (\\Recent \\Deleted))\r\nf OK UID FETCH completed\r\n"
    );
    run(&mut s, "g CREATE Kept\r\n").await;
    let r = run(&mut s, "g COPY $ Kept\r\n").await;
    assert!(r.starts_with("g OK [COPYUID "), "{r}");
    // MIN with SAVE saves only the first match.
    run(&mut s, "h SEARCH RETURN (SAVE MIN) ALL\r\n").await;
    let r = run(&mut s, "i FETCH $ (UID)\r\n").await;
    assert_eq!(r, "* 1 FETCH (UID 1)\r\ni OK FETCH completed\r\n");
    // A failed SEARCH ... SAVE empties it; FETCH $ then returns nothing, not BAD.
    let r = run(&mut s, "j SEARCH RETURN (SAVE) CHARSET KOI8-R ALL\r\n").await;
    assert!(r.starts_with("j NO [BADCHARSET"), "{r}");
    let r = run(&mut s, "k FETCH $ (UID)\r\n").await;
    assert_eq!(r, "k OK FETCH completed\r\n");
    // A new SELECT starts with an empty result too.
    run(&mut s, "l SEARCH RETURN (SAVE) ALL\r\n").await;
    run(&mut s, "m SELECT INBOX\r\n").await;
    let r = run(&mut s, "n UID SEARCH UID $\r\n").await;
    assert!(r.starts_with("* SEARCH\r\n"), "{r}");
    // `$` is no keyword, and inside a string it is text.
    let r = run(&mut s, "o SEARCH SUBJECT \"$\"\r\n").await;
    assert!(r.starts_with("* SEARCH\r\n"), "{r}");
    let mut other = f.logged_in().await;
    let r = run(&mut other, "p FETCH $ (UID)\r\n").await;
    assert!(r.starts_with("p BAD"), "{r}");
}

/// `$` is carried inside a command as the number 4294967295 (`command::ext::SAVED_RESULT`), which
/// is also a valid UID: a client writing that UID is never taken for `$`, and `$` outside a
/// sequence set (a keyword, a mailbox name, a search string) is not the saved result (RFC 5182
/// §2.1).
#[tokio::test]
async fn uid_4294967295_is_not_the_saved_result() {
    let f = fixture().await;
    let mut s = f.logged_in().await;
    append_n(&mut s, 3).await;
    run(&mut s, "s SELECT INBOX\r\n").await;
    run(&mut s, "a UID SEARCH RETURN (SAVE) UID 2:3\r\n").await;
    // The largest UID, alone or as `n:*` (which includes the last message, RFC 9051 §6.4.9).
    let r = run(&mut s, "b UID FETCH 4294967295 (FLAGS)\r\n").await;
    assert!(r.starts_with("b OK"), "{r}");
    let r = run(&mut s, "c UID FETCH 4294967295:* (FLAGS)\r\n").await;
    assert_eq!(
        r,
        "* 3 FETCH (UID 3 FLAGS (\\Recent))\r\nc OK UID FETCH completed\r\n"
    );
    // With `$` in the same command, each set keeps its own meaning.
    let r = run(&mut s, "d UID SEARCH $ UID 4294967295\r\n").await;
    assert!(r.starts_with("* SEARCH\r\n"), "{r}");
    let r = run(&mut s, "e UID SEARCH OR UID 4294967295 $\r\n").await;
    assert!(r.starts_with("* SEARCH 2 3\r\n"), "{r}");
    let r = run(&mut s, "f UID SEARCH NOT 04294967295 $\r\n").await;
    assert!(r.starts_with("* SEARCH 2 3\r\n"), "{r}");
    // `$` as a keyword and as a mailbox name.
    let r = run(&mut s, "g STORE 1 +FLAGS ($)\r\n").await;
    assert!(r.contains("* 1 FETCH (FLAGS (\\Recent $) UID 1)"), "{r}");
    let r = run(&mut s, "h UID SEARCH KEYWORD $ $\r\n").await;
    assert!(r.starts_with("* SEARCH\r\n"), "{r}");
    let r = run(&mut s, "h UID SEARCH KEYWORD $\r\n").await;
    assert!(r.starts_with("* SEARCH 1\r\n"), "{r}");
    run(&mut s, "i CREATE $\r\n").await;
    let r = run(&mut s, "j UID COPY $ $\r\n").await;
    assert!(r.starts_with("j OK [COPYUID "), "{r}");
    let r = run(&mut s, "k STATUS $ (MESSAGES)\r\n").await;
    assert!(r.starts_with("* STATUS \"$\" (MESSAGES 2)\r\n"), "{r}");
}
