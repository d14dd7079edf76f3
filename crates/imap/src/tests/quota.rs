//! QUOTA (RFC 9208): GETQUOTA, GETQUOTAROOT, SETQUOTA refused.

use super::{USER, fixture, run};

#[tokio::test]
async fn quota_roots_and_usage() {
    let f = fixture().await;
    let mut s = f.logged_in().await;
    let r = run(&mut s, "a CAPABILITY\r\n").await;
    assert!(
        r.contains(" QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE"),
        "{r}"
    );
    // No limits: no quota root.
    let r = run(&mut s, "b GETQUOTAROOT INBOX\r\n").await;
    assert_eq!(
        r,
        "* QUOTAROOT \"INBOX\"\r\nb OK GETQUOTAROOT completed\r\n"
    );
    let r = run(&mut s, "c GETQUOTA \"\"\r\n").await;
    assert!(r.starts_with("c NO [NONEXISTENT]"), "{r}");

    f.backend
        .directory
        .set_quota(USER, Some(10 * 1024 * 1024), None)
        .await
        .expect("quota");
    let m = "Subject: q\r\n\r\n".to_string() + &"x".repeat(1500) + "\r\n";
    let r = run(
        &mut s,
        &format!("d APPEND INBOX {{{}+}}\r\n{m}\r\n", m.len()),
    )
    .await;
    assert!(r.contains("d OK"), "{r}");
    let r = run(&mut s, "e GETQUOTAROOT Sent\r\n").await;
    assert_eq!(
        r,
        "* QUOTAROOT \"Sent\" \"\"\r\n* QUOTA \"\" (STORAGE 2 10240)\r\ne OK GETQUOTAROOT completed\r\n"
    );
    // MESSAGE appears once the account has a message quota.
    f.backend
        .directory
        .set_quota(USER, Some(10 * 1024 * 1024), Some(100))
        .await
        .expect("quota");
    let r = run(&mut s, "f GETQUOTA \"\"\r\n").await;
    assert_eq!(
        r,
        "* QUOTA \"\" (STORAGE 2 10240 MESSAGE 1 100)\r\nf OK GETQUOTA completed\r\n"
    );
    let r = run(&mut s, "g GETQUOTA \"#user/other\"\r\n").await;
    assert!(r.starts_with("g NO [NONEXISTENT]"), "{r}");
    let r = run(&mut s, "h GETQUOTAROOT Nowhere\r\n").await;
    assert!(r.starts_with("h NO [NONEXISTENT]"), "{r}");
    let r = run(&mut s, "i SETQUOTA \"\" (STORAGE 99999999)\r\n").await;
    assert!(r.starts_with("i NO [NOPERM]"), "{r}");
    let mut anon = f.session(true);
    let r = run(&mut anon, "j GETQUOTA \"\"\r\n").await;
    assert!(r.starts_with("j BAD"), "{r}");
}
