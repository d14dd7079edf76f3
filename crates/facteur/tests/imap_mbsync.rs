//! mbsync (isync, installed by scripts/test.sh) syncing an account both ways with a local Maildir,
//! then again after changes on the server: the sync client most sensitive to UID and flag semantics.

mod common;

use std::path::Path;
use std::process::Command;

fn mbsync(config: &Path) -> (bool, String) {
    let out = Command::new("mbsync")
        .args(["-c", config.to_str().expect("utf8"), "-a"])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "mbsync is not installed ({e}); scripts/test.sh installs it (Debian package isync)"
            )
        });
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for sub in ["cur", "new"] {
        if let Ok(rd) = std::fs::read_dir(dir.join(sub)) {
            out.extend(rd.flatten().map(|e| e.path()));
        }
    }
    out
}

#[tokio::test]
async fn mbsync_syncs_both_ways() {
    let server = common::Server::start("example.com");
    server.add_account("alice@example.com", "alice-password-1");
    let store = server.store();
    let acc = store
        .account_get("alice", "example.com")
        .await
        .expect("get")
        .expect("account");
    let inbox = store
        .mailbox_get(acc.id, "INBOX")
        .await
        .expect("get")
        .expect("INBOX");
    for i in 0..3 {
        store::conformance::append(&store, inbox.id, store::conformance::sample(i, "mbsync"))
            .await
            .expect("append");
    }
    let local = server.dir.path().join("maildir");
    std::fs::create_dir_all(&local).expect("mkdir");
    let config = server.dir.path().join("mbsyncrc");
    std::fs::write(
        &config,
        format!(
            "IMAPAccount facteur\nHost 127.0.0.1\nPort {port}\nUser alice@example.com\nPass alice-password-1\n\
             SSLType IMAPS\nCertificateFile {cert}\n\n\
             IMAPStore remote\nAccount facteur\n\n\
             MaildirStore local\nPath {local}/\nInbox {local}/INBOX\nSubFolders Verbatim\n\n\
             Channel sync\nFar :remote:\nNear :local:\nPatterns INBOX\nCreate Both\nExpunge Both\nSyncState *\n",
            port = server.addr("imaps").port(),
            cert = server.data.join("tls/cert.pem").display(),
            local = local.display(),
        ),
    )
    .expect("write config");

    let (ok, out) = mbsync(&config);
    assert!(ok, "first sync: {out}");
    let inbox_dir = local.join("INBOX");
    assert_eq!(files(&inbox_dir).len(), 3, "three messages pulled: {out}");

    // A message written locally is pushed to the server (APPEND).
    let new = inbox_dir.join("new").join("1790000000.local.host");
    std::fs::write(
        &new,
        b"From: me@example.com\r\nSubject: written offline\r\n\r\nlocal body\r\n",
    )
    .expect("write");
    // Changes on the server: one message flagged seen, one expunged, one delivered.
    let uids: Vec<u32> = store
        .messages(inbox.id, 1..=u32::MAX)
        .await
        .expect("messages")
        .iter()
        .map(|m| m.uid)
        .collect();
    store
        .store_flags(
            inbox.id,
            &[uids[0]],
            store::FlagOp::Add,
            store::Flags::SEEN,
            &[],
            None,
        )
        .await
        .expect("flag");
    store
        .expunge(inbox.id, store::ExpungeFilter::Uids(vec![uids[1]]))
        .await
        .expect("expunge");
    store::conformance::append(&store, inbox.id, store::conformance::sample(9, "after"))
        .await
        .expect("append");

    let (ok, out) = mbsync(&config);
    assert!(ok, "second sync: {out}");
    let local_files = files(&inbox_dir);
    assert_eq!(
        local_files.len(),
        4,
        "3 - 1 expunged + 1 new on the server + 1 written locally: {local_files:?}"
    );
    assert!(
        local_files
            .iter()
            .any(|p| p.to_string_lossy().contains(":2,S")),
        "the \\Seen flag reached the local copy: {local_files:?}"
    );
    let remote = common::inbox(&store, "alice@example.com").await;
    assert_eq!(remote.len(), 4);
    assert!(
        remote
            .iter()
            .any(|m| String::from_utf8_lossy(m).contains("Subject: written offline")),
        "local message pushed"
    );
    // A third sync with no change changes nothing.
    let (ok, out) = mbsync(&config);
    assert!(ok, "third sync: {out}");
    assert_eq!(files(&inbox_dir).len(), 4);
    assert_eq!(common::inbox(&store, "alice@example.com").await.len(), 4);
}
