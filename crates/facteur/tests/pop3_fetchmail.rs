//! POP3 with fetchmail (Debian package `fetchmail`; scripts/test.sh installs it): downloads into a
//! local folder through an MDA, over STLS (TLS required, `sslproto TLS1.2+`) and over implicit
//! TLS (`ssl`), accepting our self-signed certificate (`no sslcertck`).
//!
//! With `keep` and `uidl`, messages stay on the server and a second run downloads only what is
//! new; with `nokeep` (and `fetchall`) they are gone from the server afterwards (POP3 STAT 0).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::pop3::{PASS, USER, deliver, files, on_server, pop3_stat, server_with_mail};

/// One fetchmail home: its rc file, idfile, and the folder its MDA writes one file per message to.
struct Fetchmail {
    home: tempfile::TempDir,
}

impl Fetchmail {
    fn new() -> Fetchmail {
        let home = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(home.path().join("mail")).expect("mkdir");
        Fetchmail { home }
    }

    fn mail_dir(&self) -> PathBuf {
        self.home.path().join("mail")
    }

    /// Runs one poll; `tls` is the rc file's TLS part, `keep` the keep/nokeep part. Returns the
    /// exit code (0: mail retrieved, 1: no mail) and the output.
    fn run(&self, port: u16, tls: &str, keep: &str) -> (i32, String) {
        let home = self.home.path();
        let rc = home.join("fetchmailrc");
        // The MDA runs through /bin/sh: "$$" is that shell's PID, a new file per message.
        std::fs::write(
            &rc,
            format!(
                "set no syslog\n\
                 set idfile \"{idfile}\"\n\
                 poll 127.0.0.1 with proto POP3 port {port} uidl timeout 20\n\
                 \tuser \"{USER}\" there with password \"{PASS}\" is \"root\" here\n\
                 \t{tls} no sslcertck {keep}\n\
                 \tmda \"cat > {mail}/$$.eml\"\n",
                idfile = home.join("fetchids").display(),
                mail = self.mail_dir().display(),
            ),
        )
        .expect("write rc");
        set_mode_600(&rc);
        let out = Command::new("fetchmail")
            .arg("--fetchmailrc")
            .arg(&rc)
            .args(["--nodetach", "--invisible", "--norewrite", "-v"])
            // As root, fetchmail's lock file is /var/run/fetchmail.pid whatever FETCHMAILHOME
            // says: one per test, or parallel tests refuse to run ("another fetchmail is running").
            .arg("--pidfile")
            .arg(home.join("fetchmail.pid"))
            .env("HOME", home)
            .env("FETCHMAILHOME", home)
            .env("FETCHMAILUSER", "root")
            .output()
            .expect("fetchmail (Debian package fetchmail; scripts/test.sh installs it)");
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// The downloaded messages, with line ends as LF (fetchmail hands the MDA LF lines).
    fn downloaded(&self) -> Vec<String> {
        let mut v: Vec<String> = files(&self.mail_dir())
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

fn set_mode_600(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

#[tokio::test]
async fn fetchmail_keeps_then_downloads_only_new_mail_over_stls() {
    let server = server_with_mail();
    let port = server.addr("pop3").port();
    let fm = Fetchmail::new();
    // STLS: "sslproto TLS1.2+" without "ssl" makes STARTTLS mandatory.
    let tls = "sslproto 'TLS1.2+'";
    let (code, out) = fm.run(port, tls, "keep");
    assert_eq!(code, 0, "first run:\n{out}");
    assert!(out.contains("STLS"), "fetchmail did not use STLS:\n{out}");
    let stored = on_server(&server).await;
    assert_eq!(stored.len(), 3, "keep: messages must stay on the server");
    assert_eq!(fm.downloaded(), stored, "downloaded bytes differ:\n{out}");
    assert!(
        fm.downloaded()
            .iter()
            .any(|m| m.contains("\nline 1\n.starts with a dot\nline 3")),
        "dot-stuffing not undone"
    );

    // Nothing new: UIDL tells fetchmail it has seen everything.
    let (code, out) = fm.run(port, tls, "keep");
    assert_eq!(code, 1, "second run should find no new mail:\n{out}");
    assert_eq!(files(&fm.mail_dir()).len(), 3);

    // One new message: only that one is downloaded.
    deliver(&server, "four", "fourth body");
    let (code, out) = fm.run(port, tls, "keep");
    assert_eq!(code, 0, "third run:\n{out}");
    let stored = on_server(&server).await;
    assert_eq!(stored.len(), 4);
    assert_eq!(fm.downloaded(), stored);
    assert_eq!(pop3_stat(&server).0, 4);
}

#[tokio::test]
async fn fetchmail_deletes_from_the_server_over_implicit_tls() {
    let server = server_with_mail();
    let port = server.addr("pop3s").port();
    let stored = on_server(&server).await;
    let fm = Fetchmail::new();
    let (code, out) = fm.run(port, "ssl", "nokeep fetchall");
    assert_eq!(code, 0, "{out}");
    assert_eq!(fm.downloaded(), stored, "downloaded bytes differ:\n{out}");
    assert_eq!(pop3_stat(&server), (0, 0), "messages left on the server");
    assert!(on_server(&server).await.is_empty());
    let (code, out) = fm.run(port, "ssl", "nokeep fetchall");
    assert_eq!(code, 1, "{out}");
    assert_eq!(files(&fm.mail_dir()).len(), 3);
}
