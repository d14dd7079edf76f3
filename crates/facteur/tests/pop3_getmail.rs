//! POP3 with getmail6 (Debian package `getmail6`; scripts/test.sh installs it), downloading into
//! a Maildir in a temporary folder over implicit TLS (`SimplePOP3SSLRetriever`: getmail's POP3
//! retriever has no STLS, and we refuse credentials before TLS). Without `ca_certs` getmail does
//! not verify the certificate, so our self-signed one is accepted.
//!
//! `delete = false`: messages stay and a second run downloads only what is new (getmail's UIDL
//! "oldmail" file); `delete = true`: the server is empty afterwards (POP3 STAT 0).

mod common;

use std::process::Command;

use common::pop3::{PASS, USER, deliver, files, on_server, pop3_stat, server_with_mail};

struct Getmail {
    dir: tempfile::TempDir,
}

impl Getmail {
    fn new() -> Getmail {
        let dir = tempfile::tempdir().expect("tempdir");
        for sub in ["Maildir/cur", "Maildir/new", "Maildir/tmp", "state"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        if running_as_root() {
            // getmail refuses to write a Maildir as root; it delivers as `nobody` instead, who
            // needs to reach and write the folders.
            use std::os::unix::fs::PermissionsExt;
            for sub in ["", "Maildir", "Maildir/cur", "Maildir/new", "Maildir/tmp"] {
                std::fs::set_permissions(
                    dir.path().join(sub),
                    std::fs::Permissions::from_mode(0o777),
                )
                .expect("chmod");
            }
        }
        Getmail { dir }
    }

    /// One run against `port` (implicit TLS); `delete` is getmail's option of that name.
    fn run(&self, port: u16, delete: bool) -> String {
        let d = self.dir.path();
        let rc = d.join("getmailrc");
        std::fs::write(
            &rc,
            format!(
                "[retriever]\n\
                 type = SimplePOP3SSLRetriever\n\
                 server = 127.0.0.1\n\
                 port = {port}\n\
                 timeout = 20\n\
                 username = {USER}\n\
                 password = {PASS}\n\
                 [destination]\n\
                 type = Maildir\n\
                 path = {maildir}/\n\
                 {user}\
                 [options]\n\
                 verbose = 2\n\
                 read_all = false\n\
                 delete = {delete}\n\
                 delivered_to = false\n\
                 received = false\n",
                maildir = d.join("Maildir").display(),
                user = if running_as_root() {
                    "user = nobody\n"
                } else {
                    ""
                },
            ),
        )
        .expect("write rc");
        let out = Command::new("getmail")
            .arg("--getmaildir")
            .arg(d.join("state"))
            .arg("--rcfile")
            .arg(&rc)
            .env("HOME", d)
            .output()
            .expect("getmail (Debian package getmail6; scripts/test.sh installs it)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "getmail failed:\n{text}");
        text
    }

    /// The messages in the Maildir (new/), with line ends as LF, sorted.
    fn downloaded(&self) -> Vec<String> {
        let mut v: Vec<String> = files(&self.dir.path().join("Maildir/new"))
            .iter()
            .map(|p| {
                std::fs::read_to_string(p)
                    .expect("read")
                    .replace("\r\n", "\n")
            })
            .collect();
        v.sort();
        v
    }
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// getmail's Maildir destination writes a Return-Path line first; the rest is the message.
fn without_return_path(m: &str) -> &str {
    match m.strip_prefix("Return-Path: ") {
        Some(rest) if m.matches("Return-Path: ").count() > 1 => {
            &rest[rest.find('\n').map_or(0, |i| i + 1)..]
        }
        _ => m,
    }
}

fn same_messages(got: &[String], want: &[String]) {
    let mut got: Vec<&str> = got.iter().map(|m| without_return_path(m)).collect();
    got.sort();
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    assert_eq!(got, want, "downloaded messages differ from the stored ones");
}

#[tokio::test]
async fn getmail_keeps_then_downloads_only_new_mail() {
    let server = server_with_mail();
    let port = server.addr("pop3s").port();
    let gm = Getmail::new();
    let out = gm.run(port, false);
    let stored = on_server(&server).await;
    assert_eq!(stored.len(), 3, "delete = false: messages must stay");
    same_messages(&gm.downloaded(), &stored);
    assert!(
        gm.downloaded()
            .iter()
            .any(|m| m.contains("\nline 1\n.starts with a dot\nline 3")),
        "dot-stuffing not undone:\n{out}"
    );

    // Nothing new on the second run.
    gm.run(port, false);
    assert_eq!(files(&gm.dir.path().join("Maildir/new")).len(), 3);

    // A new message: only it is downloaded.
    deliver(&server, "four", "fourth body");
    gm.run(port, false);
    let stored = on_server(&server).await;
    assert_eq!(stored.len(), 4);
    same_messages(&gm.downloaded(), &stored);
    assert_eq!(pop3_stat(&server).0, 4);
}

#[tokio::test]
async fn getmail_deletes_from_the_server() {
    let server = server_with_mail();
    let port = server.addr("pop3s").port();
    let stored = on_server(&server).await;
    let gm = Getmail::new();
    gm.run(port, true);
    same_messages(&gm.downloaded(), &stored);
    assert_eq!(pop3_stat(&server), (0, 0), "messages left on the server");
    assert!(on_server(&server).await.is_empty());
}
