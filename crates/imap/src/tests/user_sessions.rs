//! The limit on logged-in sessions per user (`limits.max_connections_per_user`; 3 in the fixture).

use super::{PASS, USER, fixture, run};

#[tokio::test]
async fn logins_past_the_per_user_limit_are_refused_until_one_ends() {
    let f = fixture().await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(f.logged_in().await);
    }
    let mut fourth = f.session(true);
    let r = run(&mut fourth, &format!("a LOGIN {USER} {PASS}\r\n")).await;
    assert!(r.starts_with("a NO [LIMIT]"), "{r}");
    // Other case of the same address: the same user.
    let r = run(
        &mut fourth,
        &format!("b LOGIN {} {PASS}\r\n", USER.to_uppercase()),
    )
    .await;
    assert!(r.starts_with("b NO [LIMIT]"), "{r}");
    // Not logged in: commands of the authenticated state are refused.
    let r = run(&mut fourth, "c SELECT INBOX\r\n").await;
    assert!(r.starts_with("c BAD") || r.starts_with("c NO"), "{r}");
    // A wrong password is still a plain authentication failure.
    let r = run(&mut fourth, &format!("d LOGIN {USER} wrong-password\r\n")).await;
    assert!(r.starts_with("d NO [AUTHENTICATIONFAILED]"), "{r}");
    // One session ends: its slot is free again.
    held.pop();
    let r = run(&mut fourth, &format!("e LOGIN {USER} {PASS}\r\n")).await;
    assert!(r.contains("e OK"), "{r}");
    let r = run(&mut fourth, "f SELECT INBOX\r\n").await;
    assert!(r.contains("f OK"), "{r}");
    // LOGOUT ends the session; dropping it releases the slot.
    drop(fourth);
    let mut fifth = f.session(true);
    let r = run(&mut fifth, &format!("g LOGIN {USER} {PASS}\r\n")).await;
    assert!(r.contains("g OK"), "{r}");
}
