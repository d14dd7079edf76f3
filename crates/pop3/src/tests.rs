//! State-machine tests: a session fed bytes directly, over a real SQLite store in a temporary
//! folder (no sockets).

use std::sync::Arc;

use base64::Engine;
use directory::{Directory, DirectoryConfig, HashParams};
use net::throttle::{LoginThrottle, ThrottleConfig};
use store::{AppendRequest, DynStore, Flags, WriteBatch};

use crate::backend::MailBackend;
use crate::config::{Expire, Pop3Config};
use crate::session::{Event, Session, SessionInfo};

struct Fixture {
    _dir: tempfile::TempDir,
    backend: Arc<MailBackend>,
    cfg: Arc<Pop3Config>,
}

const USER: &str = "alice@example.com";
const PASS: &str = "alice-password-1";

async fn fixture(messages: &[&[u8]]) -> Fixture {
    fixture_with(messages, Pop3Config::default()).await
}

async fn fixture_with(messages: &[&[u8]], cfg: Pop3Config) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: DynStore = Arc::new(
        store::sqlite::Sqlite::open(dir.path(), store::sqlite::SqliteOptions::default())
            .expect("store"),
    );
    let directory = Directory::new(
        store.clone(),
        DirectoryConfig {
            hash_params: HashParams {
                memory_kib: 1024,
                iterations: 1,
                parallelism: 1,
            },
            default_domain: None,
            // A readable test password; the strength policy is tested in `directory`.
            min_password_score: 0,
        },
    )
    .expect("directory");
    directory.add_domain("example.com").await.expect("domain");
    directory
        .add_account(USER, Some(PASS), "Alice", None)
        .await
        .expect("account");
    let acc = store
        .account_get("alice", "example.com")
        .await
        .expect("get")
        .expect("exists");
    let inbox = store
        .mailbox_get(acc.id, "INBOX")
        .await
        .expect("mb")
        .expect("INBOX");
    for raw in messages {
        store
            .commit(WriteBatch {
                appends: vec![AppendRequest {
                    mailbox_id: inbox.id,
                    raw: Arc::<[u8]>::from(*raw).into(),
                    flags: Flags::default(),
                    keywords: Vec::new(),
                    internal_date: store::now_unix(),
                }],
                ..WriteBatch::default()
            })
            .await
            .expect("append");
    }
    let backend = Arc::new(MailBackend {
        store,
        directory,
        throttle: Arc::new(LoginThrottle::new(ThrottleConfig {
            base_delay: std::time::Duration::ZERO,
            ..ThrottleConfig::default()
        })),
        locks: Default::default(),
        login_times: Default::default(),
    });
    Fixture {
        _dir: dir,
        backend,
        cfg: Arc::new(cfg),
    }
}

impl Fixture {
    fn session(&self, tls: bool) -> Session<MailBackend> {
        Session::new(
            self.cfg.clone(),
            self.backend.clone(),
            SessionInfo {
                peer: None,
                tls,
                starttls: !tls,
            },
        )
    }

    async fn logged_in(&self) -> Session<MailBackend> {
        let mut s = self.session(true);
        let r = run(&mut s, &format!("USER {USER}\r\nPASS {PASS}\r\n")).await;
        assert!(r.starts_with("+OK Send PASS\r\n+OK Maildrop locked"), "{r}");
        s
    }
}

async fn run(s: &mut Session<MailBackend>, input: &str) -> String {
    let out = s.feed(input.as_bytes()).await;
    String::from_utf8_lossy(&out.bytes).into_owned()
}

const M1: &[u8] = b"Subject: one\r\n\r\nhello\r\n.dot line\r\nbye\r\n";
const M2: &[u8] = b"Subject: two\r\n\r\nsecond\r\n";

#[tokio::test]
async fn credentials_refused_before_tls_and_capa_follows_tls() {
    let f = fixture(&[]).await;
    let mut plain = f.session(false);
    let r = run(&mut plain, "CAPA\r\n").await;
    assert!(
        r.contains("\r\nSTLS\r\n") && !r.contains("USER") && !r.contains("SASL"),
        "{r}"
    );
    assert!(r.contains("IMPLEMENTATION Facteur\r\n.\r\n"), "{r}");
    let r = run(&mut plain, &format!("USER {USER}\r\n")).await;
    assert!(r.starts_with("-ERR [AUTH]"), "{r}");
    let r = run(&mut plain, "AUTH PLAIN\r\n").await;
    assert!(r.starts_with("-ERR [AUTH]"), "{r}");
    let mut tls = f.session(true);
    let r = run(&mut tls, "CAPA\r\n").await;
    assert!(
        r.contains("\r\nUSER\r\n") && r.contains("SASL PLAIN") && !r.contains("STLS"),
        "{r}"
    );
    let r = run(&mut tls, &format!("USER {USER}\r\nPASS wrong\r\n")).await;
    assert!(r.ends_with("-ERR [AUTH] Authentication failed\r\n"), "{r}");
    let r = run(&mut tls, "USER nobody@example.com\r\nPASS wrong\r\n").await;
    assert!(r.ends_with("-ERR [AUTH] Authentication failed\r\n"), "{r}");
}

#[tokio::test]
async fn stls_discards_pipelined_plaintext() {
    let f = fixture(&[]).await;
    let mut s = f.session(false);
    let out = s.feed(format!("STLS\r\nUSER {USER}\r\n").as_bytes()).await;
    assert_eq!(out.event, Some(Event::StartTls));
    assert_eq!(
        String::from_utf8_lossy(&out.bytes),
        "+OK Begin TLS negotiation\r\n"
    );
    s.tls_started();
    // The injected USER did not survive: PASS has no user to go with.
    let r = run(&mut s, &format!("PASS {PASS}\r\n")).await;
    assert!(r.starts_with("-ERR Send USER first"), "{r}");
}

#[tokio::test]
async fn auth_plain_with_and_without_initial_response() {
    let f = fixture(&[]).await;
    let cred = base64::engine::general_purpose::STANDARD.encode(format!("\0{USER}\0{PASS}"));
    let mut a = f.session(true);
    let r = run(&mut a, &format!("AUTH PLAIN {cred}\r\n")).await;
    assert!(r.starts_with("+OK Maildrop"), "{r}");
    let r = run(&mut a, "QUIT\r\n").await;
    assert!(r.starts_with("+OK"), "{r}");
    let mut b = f.session(true);
    let r = run(&mut b, "AUTH PLAIN\r\n").await;
    assert_eq!(r, "+ \r\n");
    let r = run(&mut b, &format!("{cred}\r\n")).await;
    assert!(r.starts_with("+OK Maildrop"), "{r}");
}

#[tokio::test]
async fn listing_retrieval_and_dot_stuffing() {
    let f = fixture(&[M1, M2]).await;
    let mut s = f.logged_in().await;
    let r = run(&mut s, "STAT\r\n").await;
    assert_eq!(r, format!("+OK 2 {}\r\n", M1.len() + M2.len()));
    let r = run(&mut s, "LIST\r\n").await;
    assert!(
        r.ends_with(&format!("1 {}\r\n2 {}\r\n.\r\n", M1.len(), M2.len())),
        "{r}"
    );
    let r = run(&mut s, "UIDL 2\r\n").await;
    assert!(r.starts_with("+OK 2 ") && r.ends_with(".2\r\n"), "{r}");
    let r = run(&mut s, "RETR 1\r\n").await;
    assert_eq!(
        r,
        format!(
            "+OK {} octets\r\nSubject: one\r\n\r\nhello\r\n..dot line\r\nbye\r\n.\r\n",
            M1.len()
        )
    );
    let r = run(&mut s, "TOP 1 1\r\n").await;
    assert_eq!(
        r,
        "+OK Top of message follows\r\nSubject: one\r\n\r\nhello\r\n.\r\n"
    );
    let r = run(&mut s, "RETR 3\r\n").await;
    assert!(r.starts_with("-ERR"), "{r}");
}

#[tokio::test]
async fn pipelined_retrievals_are_answered_a_high_water_mark_at_a_time() {
    use crate::session::OUTPUT_HIGH_WATER;
    let mut big = b"Subject: big\r\n\r\n".to_vec();
    while big.len() < 100 * 1024 {
        big.extend_from_slice(b"0123456789012345678901234567890123456789\r\n");
    }
    let f = fixture(&[&big]).await;
    let mut s = f.logged_in().await;
    // 500 RETRs in one read: one feed answers only up to the mark, the rest wait, unread.
    let out = s.feed("RETR 1\r\n".repeat(500).as_bytes()).await;
    assert!(
        out.bytes.len() >= OUTPUT_HIGH_WATER
            && out.bytes.len() < OUTPUT_HIGH_WATER + big.len() + 64,
        "{} octets in one feed",
        out.bytes.len()
    );
    assert!(s.has_pending());
    let mut retrieved = out.bytes.windows(4).filter(|w| w == b"+OK ").count();
    let mut feeds = 1;
    while s.has_pending() {
        let out = s.feed(b"").await;
        assert!(out.bytes.len() < OUTPUT_HIGH_WATER + big.len() + 64);
        retrieved += out.bytes.windows(4).filter(|w| w == b"+OK ").count();
        feeds += 1;
    }
    assert_eq!(retrieved, 500, "every RETR answered once, in {feeds} feeds");
    // Then the session reads again, and is in step.
    assert_eq!(
        run(&mut s, "STAT\r\n").await,
        format!("+OK 1 {}\r\n", big.len())
    );
}

#[tokio::test]
async fn dele_rset_quit_and_lock() {
    let f = fixture(&[M1, M2]).await;
    let mut s = f.logged_in().await;
    let mut other = f.session(true);
    let r = run(&mut other, &format!("USER {USER}\r\nPASS {PASS}\r\n")).await;
    assert!(
        r.ends_with("-ERR [IN-USE] Maildrop already in use by another session\r\n"),
        "{r}"
    );
    let r = run(&mut s, "DELE 1\r\nDELE 1\r\nSTAT\r\nRETR 1\r\n").await;
    assert!(
        r.contains("-ERR Message already deleted")
            && r.contains(&format!("+OK 1 {}\r\n", M2.len())),
        "{r}"
    );
    let r = run(&mut s, "RSET\r\nSTAT\r\n").await;
    assert!(
        r.ends_with(&format!("+OK 2 {}\r\n", M1.len() + M2.len())),
        "{r}"
    );
    // A dropped session deletes nothing and releases the lock.
    run(&mut s, "DELE 1\r\n").await;
    drop(s);
    let mut s = f.logged_in().await;
    let r = run(&mut s, "STAT\r\nDELE 2\r\n").await;
    assert!(
        r.starts_with(&format!("+OK 2 {}\r\n", M1.len() + M2.len())),
        "{r}"
    );
    let out = s.feed(b"QUIT\r\n").await;
    assert_eq!(out.event, Some(Event::Close));
    assert!(String::from_utf8_lossy(&out.bytes).contains("(1 messages left)"));
    let mut s = f.logged_in().await;
    let r = run(&mut s, "UIDL\r\n").await;
    assert!(r.ends_with(".1\r\n.\r\n") && !r.contains("2 "), "{r}");
}

#[tokio::test]
async fn too_many_errors_close() {
    let f = fixture(&[]).await;
    let mut s = f.session(true);
    let out = s.feed("BOGUS\r\n".repeat(12).as_bytes()).await;
    assert_eq!(out.event, Some(Event::Close));
    assert!(
        String::from_utf8_lossy(&out.bytes)
            .ends_with("-ERR Too many errors, closing connection\r\n")
    );
    let mut s = f.session(true);
    let long = format!("NOOP {}\r\n", "x".repeat(600));
    let r = run(&mut s, &long).await;
    assert!(r.starts_with("-ERR Line too long"), "{r}");
}

#[tokio::test]
async fn capa_advertises_expire_and_login_delay_as_configured() {
    let f = fixture(&[]).await;
    let r = run(&mut f.session(true), "CAPA\r\n").await;
    assert!(r.contains("\r\nEXPIRE NEVER\r\n"), "{r}");
    assert!(!r.contains("LOGIN-DELAY"), "{r}");
    let f = fixture_with(
        &[],
        Pop3Config {
            expire: Expire::Days(30),
            login_delay: Some(std::time::Duration::from_secs(900)),
            ..Pop3Config::default()
        },
    )
    .await;
    let r = run(&mut f.session(false), "CAPA\r\n").await;
    assert!(
        r.contains("\r\nEXPIRE 30\r\n") && r.contains("\r\nLOGIN-DELAY 900\r\n"),
        "{r}"
    );
    let mut s = f.logged_in().await;
    let r = run(&mut s, "CAPA\r\n").await;
    assert!(
        r.contains("EXPIRE 30") && r.contains("LOGIN-DELAY 900"),
        "{r}"
    );
}

#[tokio::test]
async fn login_delay_refuses_a_second_login_too_soon() {
    let f = fixture_with(
        &[M1],
        Pop3Config {
            login_delay: Some(std::time::Duration::from_secs(900)),
            ..Pop3Config::default()
        },
    )
    .await;
    let mut s = f.logged_in().await;
    run(&mut s, "QUIT\r\n").await;
    let mut s = f.session(true);
    let r = run(&mut s, &format!("USER {USER}\r\nPASS {PASS}\r\n")).await;
    assert!(r.contains("-ERR [LOGIN-DELAY] "), "{r}");
    // Refused logins leave the maildrop unlocked and the session in AUTHORIZATION.
    let r = run(&mut s, "STAT\r\n").await;
    assert!(r.starts_with("-ERR Command not valid"), "{r}");
}

#[tokio::test]
async fn expire_zero_removes_retrieved_messages_at_quit() {
    let f = fixture_with(
        &[M1, M2],
        Pop3Config {
            expire: Expire::Days(0),
            ..Pop3Config::default()
        },
    )
    .await;
    let mut s = f.logged_in().await;
    let r = run(&mut s, "RETR 2\r\nTOP 1 0\r\nQUIT\r\n").await;
    assert!(r.ends_with("(1 messages left)\r\n"), "{r}");
    let mut s = f.logged_in().await;
    let r = run(&mut s, "STAT\r\n").await;
    assert_eq!(r, format!("+OK 1 {}\r\n", M1.len()));
    // Without QUIT (a dropped connection) nothing is removed.
    run(&mut s, "RETR 1\r\n").await;
    drop(s);
    let mut s = f.logged_in().await;
    let r = run(&mut s, "STAT\r\n").await;
    assert_eq!(r, format!("+OK 1 {}\r\n", M1.len()));
}

#[test]
fn dot_stuffing_matches_line_by_line() {
    fn naive(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for line in data.split_inclusive(|&b| b == b'\n') {
            if line.first() == Some(&b'.') {
                out.push(b'.');
            }
            out.extend_from_slice(line);
        }
        if !data.is_empty() && !data.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        out
    }
    let cases: &[&[u8]] = &[
        b"",
        b".",
        b"..\r\n",
        b".a\r\n.b\r\nc\r\n.",
        b"a\r\n\r\n.\r\n",
        b"no newline",
        b"x\n.y\n..z",
        b"a\r\nb\r\n",
    ];
    for c in cases {
        let mut got = Vec::new();
        crate::session::push_stuffed(&mut got, c);
        assert_eq!(got, naive(c), "{:?}", String::from_utf8_lossy(c));
    }
}
