//! RFC 7162 §3.1: a CONDSTORE-enabling command sent while a mailbox is selected makes the server
//! report that mailbox's HIGHESTMODSEQ, once.

use super::{append_n, code_value, fixture, run};

/// Every way a command enables CONDSTORE, each on a fresh session with INBOX selected.
#[tokio::test]
async fn each_enabling_command_reports_highestmodseq_once() {
    let f = fixture().await;
    let mut a = f.logged_in().await;
    append_n(&mut a, 3).await;
    let status = run(&mut a, "s STATUS INBOX (HIGHESTMODSEQ)\r\n").await;
    let at = status.find("HIGHESTMODSEQ ").expect("STATUS") + "HIGHESTMODSEQ ".len();
    let highest: u64 = status[at..]
        .split(')')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("number");
    for (first, again) in [
        ("e ENABLE CONDSTORE", "e2 ENABLE CONDSTORE"),
        ("f FETCH 1 (MODSEQ)", "f2 FETCH 2 (MODSEQ)"),
        (
            "f FETCH 1:* (FLAGS) (CHANGEDSINCE 1)",
            "f2 FETCH 1 (MODSEQ)",
        ),
        ("h SEARCH MODSEQ 1", "h2 SEARCH MODSEQ 1"),
        (
            "t STORE 1 (UNCHANGEDSINCE 999999) +FLAGS.SILENT (\\Seen)",
            "t2 FETCH 1 (MODSEQ)",
        ),
        ("u STATUS INBOX (HIGHESTMODSEQ)", "u2 FETCH 1 (MODSEQ)"),
    ] {
        let mut s = f.logged_in().await;
        // SELECT reports HIGHESTMODSEQ anyway (RFC 7162 §3.1.2.1); the enabling command must
        // report it again, once.
        run(&mut s, "x SELECT INBOX\r\n").await;
        let r = run(&mut s, &format!("{first}\r\n")).await;
        assert!(r.contains("* OK [HIGHESTMODSEQ "), "{first}: {r}");
        let current = code_value(&r, "HIGHESTMODSEQ");
        // Earlier rounds' STOREs (and this one) raise the mailbox's HIGHESTMODSEQ.
        assert!(current >= highest, "{first}: {r}");
        assert_eq!(r.matches("[HIGHESTMODSEQ").count(), 1, "{first}: {r}");
        let r = run(&mut s, &format!("{again}\r\n")).await;
        assert!(
            !r.contains("* OK [HIGHESTMODSEQ"),
            "{again} after {first}: {r}"
        );
    }
    // Not selected: nothing to report.
    let mut s = f.logged_in().await;
    let r = run(&mut s, "e ENABLE CONDSTORE\r\n").await;
    assert!(!r.contains("HIGHESTMODSEQ"), "{r}");
    // SELECT (CONDSTORE) reports it in its own answer, once.
    let r = run(&mut s, "x SELECT INBOX (CONDSTORE)\r\n").await;
    assert_eq!(r.matches("[HIGHESTMODSEQ").count(), 1, "{r}");
}
