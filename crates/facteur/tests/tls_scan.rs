//! Every TLS port, scanned with a real TLS scanner (Debian's `sslscan`, installed by
//! scripts/test.sh): only TLS 1.2 and 1.3 are accepted, on implicit-TLS ports (465, 993, 995) and
//! after STARTTLS/STLS (25, 143, 110).

mod common;

use std::process::Command;

use common::{NO_DNS, Server};

fn config() -> String {
    format!(
        "[server]\nhostname = \"mx.example.com\"\nprimary_domain = \"example.com\"\n\
         [listeners]\nsmtp = [\"127.0.0.1:0\"]\nsubmission = [\"127.0.0.1:0\"]\nsubmissions = [\"127.0.0.1:0\"]\n\
         lmtp = []\nimap = [\"127.0.0.1:0\"]\nimaps = [\"127.0.0.1:0\"]\n\
         pop3 = [\"127.0.0.1:0\"]\npop3s = [\"127.0.0.1:0\"]\n\
         [smtp]\ninbound_auth = false\n{NO_DNS}"
    )
}

/// The protocol lines of sslscan's report ("TLSv1.2   enabled").
fn protocols(service: &str, addr: std::net::SocketAddr) -> Vec<(String, bool)> {
    let mut cmd = Command::new("sslscan");
    cmd.args([
        "--no-colour",
        "--no-ciphersuites",
        "--no-groups",
        "--no-heartbleed",
        "--no-fallback",
        "--no-renegotiation",
        "--no-cipher-details",
        "--no-check-certificate",
    ]);
    match service {
        "smtp" | "submission" => {
            cmd.arg("--starttls-smtp");
        }
        "imap" => {
            cmd.arg("--starttls-imap");
        }
        "pop3" => {
            cmd.arg("--starttls-pop3");
        }
        _ => {}
    }
    let out = cmd
        .arg(addr.to_string())
        .output()
        .expect("sslscan is not installed (scripts/test.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let found: Vec<(String, bool)> = text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (p, state) = (w.next()?, w.next()?);
            (p.starts_with("SSLv") || p.starts_with("TLSv"))
                .then(|| (p.to_string(), state == "enabled"))
        })
        .collect();
    assert!(found.len() >= 4, "{service}: no protocol list in:\n{text}");
    found
}

#[test]
fn only_tls_1_2_and_1_3_on_every_tls_port() {
    let server = Server::start_config("example.com", &config());
    for service in [
        "smtp",
        "submission",
        "submissions",
        "imap",
        "imaps",
        "pop3",
        "pop3s",
    ] {
        let found = protocols(service, server.addr(service));
        for (p, enabled) in &found {
            let want = p == "TLSv1.2" || p == "TLSv1.3";
            assert_eq!(
                *enabled, want,
                "{service}: {p} enabled={enabled}; all: {found:?}"
            );
        }
        assert!(
            found.iter().any(|(p, e)| p == "TLSv1.3" && *e),
            "{service}: {found:?}"
        );
    }
}
