//! LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819), SPECIAL-USE selection and
//! CREATE-SPECIAL-USE (RFC 6154).

use super::{append_n, fixture, run};

/// The untagged lines of a response, without the tagged completion.
fn untagged(r: &str) -> Vec<&str> {
    r.lines().filter(|l| l.starts_with('*')).collect()
}

#[tokio::test]
async fn selection_and_return_options() {
    let f = fixture().await;
    let mut s = f.logged_in().await;
    // New accounts start with their default mailboxes subscribed; leave only ours.
    for name in ["INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"] {
        run(&mut s, &format!("u UNSUBSCRIBE {name}\r\n")).await;
    }
    for cmd in [
        "a CREATE Fruit/Apple\r\n",
        "a CREATE Fruit/Banana\r\n",
        "a CREATE Tofu\r\n",
        "a CREATE Vegetable/Broccoli\r\n",
        "a SUBSCRIBE Fruit/Banana\r\n",
        "a SUBSCRIBE Vegetable\r\n",
        "a SUBSCRIBE Vegetable/Broccoli\r\n",
        "a SUBSCRIBE Gone\r\n",
    ] {
        let r = run(&mut s, cmd).await;
        assert!(r.starts_with("a OK"), "{cmd}: {r}");
    }
    let r = run(&mut s, "b CAPABILITY\r\n").await;
    assert!(
        r.contains(" LIST-EXTENDED") && r.contains(" LIST-STATUS"),
        "{r}"
    );

    // RFC 5258 §3.1 SUBSCRIBED: subscribed names, existing or not.
    let r = run(&mut s, "c LIST (SUBSCRIBED) \"\" *\r\n").await;
    assert_eq!(
        untagged(&r),
        vec![
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" \"Fruit/Banana\"",
            "* LIST (\\NonExistent \\Subscribed) \"/\" \"Gone\"",
            "* LIST (\\HasChildren \\Subscribed) \"/\" \"Vegetable\"",
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" \"Vegetable/Broccoli\"",
        ],
        "{r}"
    );
    // RECURSIVEMATCH: parents of subscribed names the pattern misses get CHILDINFO.
    let r = run(
        &mut s,
        "d LIST (SUBSCRIBED RECURSIVEMATCH) \"\" % RETURN (CHILDREN)\r\n",
    )
    .await;
    assert_eq!(
        untagged(&r),
        vec![
            "* LIST (\\HasChildren) \"/\" \"Fruit\" (\"CHILDINFO\" (\"SUBSCRIBED\"))",
            "* LIST (\\NonExistent \\Subscribed) \"/\" \"Gone\"",
            "* LIST (\\HasChildren \\Subscribed) \"/\" \"Vegetable\" (\"CHILDINFO\" (\"SUBSCRIBED\"))",
        ],
        "{r}"
    );
    // Return SUBSCRIBED on a plain selection, and several patterns.
    let r = run(
        &mut s,
        "e LIST \"\" (Fruit/% Tofu) RETURN (SUBSCRIBED CHILDREN)\r\n",
    )
    .await;
    assert_eq!(
        untagged(&r),
        vec![
            "* LIST (\\HasNoChildren) \"/\" \"Fruit/Apple\"",
            "* LIST (\\HasNoChildren \\Subscribed) \"/\" \"Fruit/Banana\"",
            "* LIST (\\HasNoChildren) \"/\" \"Tofu\"",
        ],
        "{r}"
    );
    // RFC 6154 §5: SPECIAL-USE selects mailboxes with a special use only.
    let r = run(&mut s, "f LIST (SPECIAL-USE) \"\" *\r\n").await;
    let lines = untagged(&r);
    assert!(!lines.is_empty(), "{r}");
    assert!(
        lines.iter().all(|l| l.contains("\\Sent")
            || l.contains("\\Drafts")
            || l.contains("\\Trash")
            || l.contains("\\Junk")
            || l.contains("\\Archive")),
        "{r}"
    );
    for bad in [
        "g LIST (RECURSIVEMATCH) \"\" *\r\n",
        "g LIST (BOGUS) \"\" *\r\n",
        "g LIST \"\" * RETURN (BOGUS)\r\n",
    ] {
        let r = run(&mut s, bad).await;
        assert!(r.starts_with("g BAD"), "{bad}: {r}");
    }
    // Not logged in: refused like any other command.
    let mut anon = f.session(true);
    let r = run(&mut anon, "h LIST (SUBSCRIBED) \"\" *\r\n").await;
    assert!(r.starts_with("h BAD"), "{r}");
}

#[tokio::test]
async fn list_status_follows_each_selectable_mailbox() {
    let f = fixture().await;
    let mut s = f.logged_in().await;
    append_n(&mut s, 2).await;
    run(&mut s, "a CREATE Deep/Down\r\n").await;
    run(&mut s, "a DELETE Deep\r\n").await;
    let r = run(
        &mut s,
        "b LIST \"\" (INBOX De% Deep/%) RETURN (STATUS (MESSAGES UNSEEN UIDNEXT SIZE))\r\n",
    )
    .await;
    let lines = untagged(&r);
    assert_eq!(
        lines[0], "* LIST (\\NonExistent \\HasChildren) \"/\" \"Deep\"",
        "{r}"
    );
    assert_eq!(
        lines[1], "* LIST (\\HasNoChildren) \"/\" \"Deep/Down\"",
        "{r}"
    );
    assert_eq!(
        lines[2], "* STATUS \"Deep/Down\" (MESSAGES 0 UNSEEN 0 UIDNEXT 1 SIZE 0)",
        "{r}"
    );
    assert_eq!(lines[3], "* LIST (\\HasNoChildren) \"/\" \"INBOX\"", "{r}");
    assert!(
        lines[4].starts_with("* STATUS \"INBOX\" (MESSAGES 2 UNSEEN 2 UIDNEXT 3 SIZE "),
        "{r}"
    );
    assert_eq!(lines.len(), 5, "{r}");
    assert!(r.ends_with("b OK LIST completed\r\n"), "{r}");
}

#[tokio::test]
async fn create_special_use() {
    let f = fixture().await;
    let mut s = f.logged_in().await;
    // A use no default mailbox has (Junk, Sent... are taken: see below).
    let r = run(&mut s, "a CREATE Starred (USE (\\Flagged))\r\n").await;
    assert!(r.starts_with("a OK"), "{r}");
    let r = run(&mut s, "b LIST \"\" Starred\r\n").await;
    assert!(
        r.contains("* LIST (\\HasNoChildren \\Flagged) \"/\" \"Starred\""),
        "{r}"
    );
    let r = run(&mut s, "c CREATE Other (USE (\\Bogus))\r\n").await;
    assert!(r.starts_with("c NO [USEATTR]"), "{r}");
    let r = run(&mut s, "d CREATE Both (USE (\\Sent \\Trash))\r\n").await;
    assert!(r.starts_with("d NO [USEATTR]"), "{r}");
    let r = run(&mut s, "e LIST \"\" (Other Both)\r\n").await;
    assert_eq!(r, "e OK LIST completed\r\n");
    let r = run(&mut s, "f CREATE Odd (FOO (x))\r\n").await;
    assert!(r.starts_with("f BAD"), "{r}");
}

#[tokio::test]
async fn mailbox_names_in_modified_utf7_for_rev1_clients() {
    let f = fixture().await;
    let mut rev1 = f.logged_in().await;
    let mut utf8 = f.logged_in().await;
    let r = run(&mut utf8, "e ENABLE UTF8=ACCEPT\r\n").await;
    assert!(r.starts_with("* ENABLED UTF8=ACCEPT"), "{r}");
    // RFC 3501 §5.1.3: "Été/Entwürfe" and "R&D" as an IMAP4rev1 client writes them.
    let r = run(&mut rev1, "a CREATE &AMk-t&AOk-/Entw&APw-rfe\r\n").await;
    assert!(r.starts_with("a OK"), "{r}");
    let r = run(&mut rev1, "a CREATE R&-D\r\n").await;
    assert!(r.starts_with("a OK"), "{r}");
    let r = run(&mut rev1, "b CREATE R&D2\r\n").await;
    assert!(r.starts_with("b NO"), "{r}");
    let r = run(&mut utf8, "c LIST \"\" (Été* R*)\r\n").await;
    assert_eq!(
        untagged(&r),
        vec![
            "* LIST (\\HasNoChildren) \"/\" \"R&D\"",
            "* LIST (\\HasChildren) \"/\" \"Été\"",
            "* LIST (\\HasNoChildren) \"/\" \"Été/Entwürfe\"",
        ],
        "{r}"
    );
    let r = run(&mut rev1, "d LIST \"\" (&AMk-t&AOk-* R*)\r\n").await;
    assert_eq!(
        untagged(&r),
        vec![
            "* LIST (\\HasNoChildren) \"/\" \"R&-D\"",
            "* LIST (\\HasChildren) \"/\" \"&AMk-t&AOk-\"",
            "* LIST (\\HasNoChildren) \"/\" \"&AMk-t&AOk-/Entw&APw-rfe\"",
        ],
        "{r}"
    );
    let r = run(
        &mut rev1,
        "e STATUS &AMk-t&AOk-/Entw&APw-rfe (MESSAGES)\r\n",
    )
    .await;
    assert!(
        r.starts_with("* STATUS \"&AMk-t&AOk-/Entw&APw-rfe\" (MESSAGES 0)\r\n"),
        "{r}"
    );
    let r = run(&mut rev1, "f SELECT &AMk-t&AOk-/Entw&APw-rfe\r\n").await;
    assert!(r.contains("f OK [READ-WRITE]"), "{r}");
    let r = run(&mut utf8, "g STATUS \"Été/Entwürfe\" (MESSAGES)\r\n").await;
    assert!(
        r.starts_with("* STATUS \"Été/Entwürfe\" (MESSAGES 0)"),
        "{r}"
    );
}

/// A level that exists only as the parent of other mailboxes (here `a`, deleted after `a/b` was
/// created). RFC 9051 §6.3.9 and §7.3.1, §6.3.9.8 Examples 8 and 10 (RFC 5258 §3.5): for
/// LIST-EXTENDED syntax or an IMAP4rev2 client it is returned only for a pattern ending with `%`,
/// as \NonExistent \HasChildren; an IMAP4rev1 client's basic LIST gets \Noselect (RFC 3501
/// §6.3.8).
#[tokio::test]
async fn levels_without_a_mailbox() {
    let f = fixture().await;
    let mut rev1 = f.logged_in().await;
    let mut rev2 = f.logged_in().await;
    let r = run(&mut rev2, "e ENABLE IMAP4rev2\r\n").await;
    assert!(r.starts_with("* ENABLED IMAP4rev2"), "{r}");
    for cmd in ["a CREATE a/b\r\n", "a DELETE a\r\n", "a SUBSCRIBE a/b\r\n"] {
        let r = run(&mut rev1, cmd).await;
        assert!(r.starts_with("a OK"), "{cmd}: {r}");
    }
    let level = |attrs: &str| format!("* LIST ({attrs}) \"/\" \"a\"");

    // IMAP4rev1, basic syntax: as RFC 3501 had it.
    let r = run(&mut rev1, "b LIST \"\" %\r\n").await;
    assert!(
        untagged(&r).contains(&level("\\Noselect \\HasChildren").as_str()),
        "{r}"
    );
    let r = run(&mut rev1, "b LIST \"\" *\r\n").await;
    assert!(
        untagged(&r).contains(&level("\\Noselect \\HasChildren").as_str()),
        "{r}"
    );

    // LIST-EXTENDED syntax, or IMAP4rev2.
    for (is_rev2, cmd) in [
        (false, "c LIST () \"\" %\r\n"),
        (true, "c LIST \"\" %\r\n"),
        (true, "c LIST \"\" (%) RETURN (CHILDREN)\r\n"),
    ] {
        let r = run(if is_rev2 { &mut rev2 } else { &mut rev1 }, cmd).await;
        assert!(
            untagged(&r).contains(&level("\\NonExistent \\HasChildren").as_str()),
            "{cmd}: {r}"
        );
        assert!(!r.contains("Noselect"), "{cmd}: {r}");
    }
    for (is_rev2, cmd) in [
        (false, "d LIST () \"\" *\r\n"),
        (true, "d LIST \"\" *\r\n"),
        (true, "d LIST \"\" a\r\n"),
        (true, "d LIST \"\" a*\r\n"),
    ] {
        let r = run(if is_rev2 { &mut rev2 } else { &mut rev1 }, cmd).await;
        assert!(!r.contains("\"/\" \"a\"\r\n"), "{cmd}: {r}");
        assert!(r.contains("d OK"), "{cmd}: {r}");
    }
    let r = run(&mut rev2, "d LIST \"\" a*\r\n").await;
    assert_eq!(
        untagged(&r),
        vec!["* LIST (\\HasNoChildren) \"/\" \"a/b\""],
        "{r}"
    );

    // RECURSIVEMATCH: listed for its subscribed child, still \NonExistent (§6.3.9.6 Table 3).
    let r = run(&mut rev1, "e LIST (SUBSCRIBED RECURSIVEMATCH) \"\" %\r\n").await;
    assert!(
        r.contains(
            "* LIST (\\NonExistent \\HasChildren) \"/\" \"a\" (\"CHILDINFO\" (\"SUBSCRIBED\"))\r\n"
        ),
        "{r}"
    );
    // STATUS is never returned for it (RFC 5819 §2).
    let r = run(&mut rev2, "f LIST \"\" (a%) RETURN (STATUS (MESSAGES))\r\n").await;
    assert_eq!(
        untagged(&r),
        vec![level("\\NonExistent \\HasChildren").as_str()],
        "{r}"
    );
}

/// RFC 6154 §3: a special use already held by another mailbox of the account cannot be given
/// to a new one: NO [USEATTR], and nothing is created.
#[tokio::test]
async fn create_special_use_already_taken() {
    let f = fixture().await;
    let mut s = f.logged_in().await;
    let r = run(&mut s, "a LIST (SPECIAL-USE) \"\" *\r\n").await;
    assert!(
        r.contains("* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\""),
        "{r}"
    );
    let r = run(&mut s, "b CREATE \"Sent Items\" (USE (\\Sent))\r\n").await;
    assert!(r.starts_with("b NO [USEATTR]"), "{r}");
    let r = run(&mut s, "c LIST \"\" \"Sent*\"\r\n").await;
    assert_eq!(
        untagged(&r),
        vec!["* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent\""],
        "{r}"
    );
    // Once the holder is gone, the use can be given again.
    run(&mut s, "d DELETE Sent\r\n").await;
    let r = run(&mut s, "e CREATE \"Sent Items\" (USE (\\Sent))\r\n").await;
    assert!(r.starts_with("e OK"), "{r}");
    let r = run(&mut s, "f LIST (SPECIAL-USE) \"\" *\r\n").await;
    let sent: Vec<&str> = untagged(&r)
        .into_iter()
        .filter(|l| l.contains("\\Sent"))
        .collect();
    assert_eq!(
        sent,
        vec!["* LIST (\\HasNoChildren \\Sent) \"/\" \"Sent Items\""],
        "{r}"
    );
}

/// RFC 9051 §6.3.6 and §6.3.9.7: after RENAME an IMAP4rev2 client gets the new name with the
/// OLDNAME extended data item (the old name as it supplied it); an IMAP4rev1 client, which has not
/// said it reads extended LIST data, gets nothing but the tagged OK.
#[tokio::test]
async fn rename_announces_oldname_to_rev2_clients() {
    let f = fixture().await;
    let mut rev2 = f.logged_in().await;
    let mut rev1 = f.logged_in().await;
    run(&mut rev2, "e ENABLE IMAP4rev2\r\n").await;
    let r = run(&mut rev2, "a CREATE \"Projects/Été\"\r\n").await;
    assert!(r.starts_with("a OK"), "{r}");
    let r = run(&mut rev2, "b RENAME Projects Archive2026\r\n").await;
    assert_eq!(
        r,
        "* LIST (\\HasChildren) \"/\" \"Archive2026\" (\"OLDNAME\" (\"Projects\"))\r\n\
         b OK RENAME completed\r\n"
    );
    // The special use goes with the mailbox. Names the server normalised (INBOX's case, a
    // trailing delimiter): the new one as stored, the old one as supplied (§6.3.6).
    let r = run(&mut rev2, "c RENAME Junk inbox/Spam/\r\n").await;
    assert_eq!(
        r,
        "* LIST (\\HasNoChildren \\Junk) \"/\" \"INBOX/Spam\" (\"OLDNAME\" (\"Junk\"))\r\n\
         c OK RENAME completed\r\n"
    );
    let r = run(&mut rev2, "c RENAME inbox/Spam/ Spam\r\n").await;
    assert_eq!(
        r,
        "* LIST (\\HasNoChildren \\Junk) \"/\" \"Spam\" (\"OLDNAME\" (\"inbox/Spam/\"))\r\n\
         c OK RENAME completed\r\n"
    );
    let r = run(&mut rev2, "d RENAME \"Archive2026/Été\" \"Été\"\r\n").await;
    assert_eq!(
        r,
        "* LIST (\\HasNoChildren) \"/\" \"Été\" (\"OLDNAME\" (\"Archive2026/Été\"))\r\n\
         d OK RENAME completed\r\n"
    );
    let r = run(&mut rev1, "f RENAME Archive2026 Old\r\n").await;
    assert_eq!(r, "f OK RENAME completed\r\n");
}
