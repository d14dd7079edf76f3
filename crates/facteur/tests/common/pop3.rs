//! Shared by the POP3 tests with downloading clients (fetchmail, getmail6): an account with three
//! messages (one with a dot-stuffed line), delivery over SMTP, and what the server still holds.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::Server;

pub const USER: &str = "alice@example.com";
pub const PASS: &str = "alice-password-1";

pub fn files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .collect()
}

/// What the server holds, as LF text, sorted (as the tests sort what a client downloaded).
pub async fn on_server(server: &Server) -> Vec<String> {
    let mut v: Vec<String> = super::inbox(&server.store(), USER)
        .await
        .iter()
        .map(|m| String::from_utf8_lossy(m).replace("\r\n", "\n"))
        .collect();
    v.sort();
    v
}

/// POP3 STAT over implicit TLS with Python's poplib: (messages, octets).
pub fn pop3_stat(server: &Server) -> (u64, u64) {
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import poplib, ssl\n\
             ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n\
             c = poplib.POP3_SSL('127.0.0.1', {}, context=ctx)\n\
             c.user('{USER}'); c.pass_('{PASS}')\n\
             print(*c.stat()); c.quit()",
            server.addr("pop3s").port()
        ))
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut it = text.split_whitespace().map(|n| n.parse().expect("number"));
    (it.next().expect("count"), it.next().expect("size"))
}

pub fn deliver(server: &Server, subject: &str, body: &str) {
    let r = super::raw_smtp(
        server.addr("smtp"),
        "sender@far.test",
        USER,
        &format!("From: sender@far.test\r\nSubject: {subject}\r\n\r\n{body}"),
    );
    assert!(r.starts_with("250"), "{r}");
}

pub fn server_with_mail() -> Server {
    let s = Server::start_pop3("example.com", "");
    s.add_account(USER, PASS);
    deliver(&s, "one", "first body");
    deliver(&s, "two", "line 1\r\n..starts with a dot\r\nline 3");
    deliver(&s, "three", "third body");
    s
}
