//! State-machine tests: a session fed bytes directly, over a real SQLite store in a temporary
//! folder (no sockets). One file per extension family; the fixture and helpers are here.

mod binary;
mod compress;
mod condstore_enable;
mod list;
mod mailbox_notices;
mod multiappend;
mod qresync;
mod quota;
mod recent;
mod search_batches;
mod searchres;
mod sort_thread;
mod user_sessions;

use std::sync::Arc;

use directory::{Directory, DirectoryConfig, HashParams};
use net::throttle::{LoginThrottle, ThrottleConfig};
use store::DynStore;

use crate::backend::MailBackend;
use crate::config::ImapConfig;
use crate::session::{Event, Session, SessionInfo};

pub struct Fixture {
    _dir: tempfile::TempDir,
    pub backend: Arc<MailBackend>,
    pub cfg: Arc<ImapConfig>,
}

pub const USER: &str = "alice@example.com";
pub const PASS: &str = "alice-password-1";

pub async fn fixture() -> Fixture {
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
    let backend = Arc::new(MailBackend {
        store,
        directory,
        throttle: Arc::new(LoginThrottle::new(ThrottleConfig {
            base_delay: std::time::Duration::ZERO,
            ..ThrottleConfig::default()
        })),
        user_sessions: net::limits::UserSessions::new(3),
        learner: None,
    });
    Fixture {
        _dir: dir,
        backend,
        cfg: Arc::new(ImapConfig {
            max_message_size: 4096,
            ..ImapConfig::default()
        }),
    }
}

impl Fixture {
    pub fn session(&self, tls: bool) -> Session<MailBackend> {
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

    pub async fn logged_in(&self) -> Session<MailBackend> {
        let mut s = self.session(true);
        let r = run(&mut s, &format!("a LOGIN {USER} {PASS}\r\n")).await;
        assert!(r.contains("a OK"), "{r}");
        s
    }
}

pub async fn run(s: &mut Session<MailBackend>, input: &str) -> String {
    let out = s.feed(input.as_bytes()).await;
    String::from_utf8_lossy(&out.bytes).into_owned()
}

#[tokio::test]
async fn capabilities_depend_on_tls_and_login() {
    let f = fixture().await;
    let mut plain = f.session(false);
    let g = String::from_utf8(plain.greeting()).unwrap();
    assert!(
        g.contains("STARTTLS") && g.contains("LOGINDISABLED") && !g.contains("AUTH=PLAIN"),
        "{g}"
    );
    let r = run(&mut plain, &format!("a LOGIN {USER} {PASS}\r\n")).await;
    assert!(r.starts_with("a NO [PRIVACYREQUIRED]"), "{r}");
    let r = run(&mut plain, "b AUTHENTICATE PLAIN\r\n").await;
    assert!(r.starts_with("b NO [PRIVACYREQUIRED]"), "{r}");
    let r = run(&mut plain, "c SELECT INBOX\r\n").await;
    assert!(r.starts_with("c BAD"), "{r}");
    let mut tls = f.session(true);
    let r = run(&mut tls, "a CAPABILITY\r\n").await;
    assert!(
        r.contains("AUTH=PLAIN SASL-IR") && !r.contains("STARTTLS"),
        "{r}"
    );
    let r = run(&mut tls, &format!("b LOGIN {USER} wrong\r\n")).await;
    assert!(r.starts_with("b NO [AUTHENTICATIONFAILED]"), "{r}");
    let r = run(&mut tls, &format!("c LOGIN {USER} {PASS}\r\n")).await;
    assert!(
        r.starts_with("c OK [CAPABILITY IMAP4rev2") && r.contains("IDLE"),
        "{r}"
    );
}

#[tokio::test]
async fn starttls_discards_pipelined_plaintext() {
    let f = fixture().await;
    let mut s = f.session(false);
    let out = s
        .feed(format!("a STARTTLS\r\nb LOGIN {USER} {PASS}\r\n").as_bytes())
        .await;
    assert_eq!(out.event, Some(Event::StartTls));
    assert_eq!(
        String::from_utf8_lossy(&out.bytes),
        "a OK Begin TLS negotiation now\r\n"
    );
    s.tls_started();
    // Nothing of the injected LOGIN survived: the session is still not authenticated.
    let r = run(&mut s, "c SELECT INBOX\r\n").await;
    assert!(r.starts_with("c BAD"), "{r}");
}

#[tokio::test]
async fn authenticate_plain_with_and_without_initial_response() {
    use base64::Engine;
    let f = fixture().await;
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("\0{USER}\0{PASS}"));
    let mut s = f.session(true);
    let r = run(&mut s, &format!("a AUTHENTICATE PLAIN {b64}\r\n")).await;
    assert!(r.starts_with("a OK"), "{r}");
    let mut s = f.session(true);
    let r = run(&mut s, "a AUTHENTICATE PLAIN\r\n").await;
    assert_eq!(r, "+ \r\n");
    let r = run(&mut s, &format!("{b64}\r\n")).await;
    assert!(r.starts_with("a OK"), "{r}");
    let mut s = f.session(true);
    run(&mut s, "a AUTHENTICATE PLAIN\r\n").await;
    let r = run(&mut s, "*\r\n").await;
    assert!(r.starts_with("a BAD"), "{r}");
}

#[tokio::test]
async fn list_select_and_status() {
    let f = fixture().await;
    let mut s = f.logged_in().await;
    let r = run(&mut s, "a LIST \"\" *\r\n").await;
    assert!(
        r.contains("* LIST (\\HasNoChildren) \"/\" \"INBOX\""),
        "{r}"
    );
    let r = run(&mut s, "b LIST \"\" \"\"\r\n").await;
    assert!(r.contains("* LIST (\\Noselect) \"/\" \"\""), "{r}");
    let r = run(&mut s, "c CREATE a/b/c\r\n").await;
    assert!(r.starts_with("c OK"), "{r}");
    let r = run(&mut s, "d LIST \"\" a/%\r\n").await;
    assert!(r.contains("* LIST (\\HasChildren) \"/\" \"a/b\""), "{r}");
    assert!(!r.contains("a/b/c"), "{r}");
    let r = run(&mut s, "e SELECT inbox\r\n").await;
    assert!(
        r.contains("* 0 EXISTS") && r.contains("[UIDVALIDITY ") && r.contains("e OK [READ-WRITE]"),
        "{r}"
    );
    let r = run(
        &mut s,
        "f STATUS INBOX (MESSAGES UIDNEXT UNSEEN SIZE HIGHESTMODSEQ)\r\n",
    )
    .await;
    assert!(
        r.contains("* STATUS \"INBOX\" (MESSAGES 0 UIDNEXT 1 UNSEEN 0 SIZE 0 HIGHESTMODSEQ"),
        "{r}"
    );
}

#[tokio::test]
async fn literals_sync_nonsync_and_limits() {
    let f = fixture().await;
    let mut s = f.logged_in().await;
    let msg = "Subject: hi\r\n\r\nbody\r\n";
    let r = run(
        &mut s,
        &format!("a APPEND INBOX (\\Seen) {{{}}}\r\n", msg.len()),
    )
    .await;
    assert_eq!(r, "+ Ready for literal data\r\n");
    let r = run(&mut s, &format!("{msg}\r\n")).await;
    assert!(r.starts_with("a OK [APPENDUID "), "{r}");
    let r = run(
        &mut s,
        &format!("b APPEND INBOX {{{}+}}\r\n{msg}\r\n", msg.len()),
    )
    .await;
    assert!(
        r.starts_with("b OK [APPENDUID ") && r.ends_with(" 2] APPEND completed\r\n"),
        "{r}"
    );
    // Over the limit (4096 here): NO before the continuation, and the next command still works.
    let r = run(&mut s, "c APPEND INBOX {5000}\r\n").await;
    assert!(r.starts_with("c NO [TOOBIG]"), "{r}");
    let r = run(&mut s, "d NOOP\r\n").await;
    assert_eq!(r, "d OK NOOP completed\r\n");
    let out = s.feed(b"e APPEND INBOX {5000+}\r\n").await;
    assert_eq!(out.event, Some(Event::Close));
}

#[tokio::test]
async fn long_lines_and_errors_close_the_connection() {
    let f = fixture().await;
    let mut s = f.session(true);
    let out = s.feed(&vec![b'a'; 70 * 1024]).await;
    assert_eq!(out.event, Some(Event::Close));
    let mut s = f.session(true);
    let mut closed = false;
    for i in 0..20 {
        let out = s.feed(format!("x{i} FOO\r\n").as_bytes()).await;
        if out.event == Some(Event::Close) {
            closed = true;
            break;
        }
    }
    assert!(closed);
}

#[tokio::test]
async fn fetch_store_and_pending_expunge_rules() {
    let f = fixture().await;
    let mut a = f.logged_in().await;
    let mut b = f.logged_in().await;
    for i in 1..=3 {
        let m = format!("Subject: m{i}\r\n\r\nbody {i}\r\n");
        let r = run(
            &mut a,
            &format!("a APPEND INBOX {{{}+}}\r\n{m}\r\n", m.len()),
        )
        .await;
        assert!(r.contains("OK"), "{r}");
    }
    run(&mut a, "s SELECT INBOX\r\n").await;
    let r = run(&mut b, "s SELECT INBOX\r\n").await;
    assert!(r.contains("* 3 EXISTS"), "{r}");
    let r = run(&mut a, "t STORE 2 +FLAGS (\\Deleted)\r\n").await;
    assert!(
        r.contains("* 2 FETCH (FLAGS (\\Recent \\Deleted) UID 2)"),
        "{r}"
    );
    let r = run(&mut a, "u EXPUNGE\r\n").await;
    assert!(r.contains("* 2 EXPUNGE\r\nu OK"), "{r}");
    // b: FETCH by MSN sees the flag change but not the expunge; message 2 keeps its number.
    let r = run(&mut b, "v FETCH 3 (UID)\r\n").await;
    assert!(
        !r.contains("EXPUNGE") && r.contains("* 3 FETCH (UID 3)"),
        "{r}"
    );
    let r = run(&mut b, "w NOOP\r\n").await;
    assert!(r.contains("* 2 EXPUNGE"), "{r}");
    let r = run(&mut b, "x FETCH 2 (UID BODY.PEEK[TEXT])\r\n").await;
    assert!(
        r.contains("* 2 FETCH (UID 3 BODY[TEXT] {8}\r\nbody 3\r\n)"),
        "{r}"
    );
    let r = run(&mut b, "y FETCH 3 (UID)\r\n").await;
    assert!(r.starts_with("y BAD"), "{r}");
    // New mail appears at the next announcement point.
    let m = "Subject: m4\r\n\r\nx\r\n";
    run(
        &mut a,
        &format!("z APPEND INBOX {{{}+}}\r\n{m}\r\n", m.len()),
    )
    .await;
    let r = run(&mut b, "z NOOP\r\n").await;
    assert!(r.contains("* 3 EXISTS"), "{r}");
}

#[tokio::test]
async fn search_by_keys_and_esearch_after_enable() {
    let f = fixture().await;
    let mut a = f.logged_in().await;
    for (i, subj) in ["apple pie", "banana split", "cherry tart"]
        .iter()
        .enumerate()
    {
        let m = format!("From: u{i}@far.test\r\nSubject: {subj}\r\n\r\nrecipe number {i}\r\n");
        run(
            &mut a,
            &format!("a APPEND INBOX {{{}+}}\r\n{m}\r\n", m.len()),
        )
        .await;
    }
    run(&mut a, "s SELECT INBOX\r\n").await;
    let r = run(&mut a, "b SEARCH SUBJECT banana\r\n").await;
    assert!(r.starts_with("* SEARCH 2\r\n"), "{r}");
    let r = run(&mut a, "c SEARCH OR FROM u0 BODY \"number 2\"\r\n").await;
    assert!(r.starts_with("* SEARCH 1 3\r\n"), "{r}");
    let r = run(&mut a, "c SEARCH NOT 2\r\n").await;
    assert!(r.starts_with("* SEARCH 1 3\r\n"), "{r}");
    let r = run(&mut a, "d UID SEARCH TEXT cherry\r\n").await;
    assert!(r.starts_with("* SEARCH 3\r\n"), "{r}");
    // Two characters: below the trigram index, answered by scanning.
    let r = run(&mut a, "d SEARCH BODY \"r 1\"\r\n").await;
    assert!(r.starts_with("* SEARCH 2\r\n"), "{r}");
    let r = run(&mut a, "d SEARCH HEADER Subject \"PIE\"\r\n").await;
    assert!(r.starts_with("* SEARCH 1\r\n"), "{r}");
    let r = run(&mut a, "e ENABLE IMAP4rev2\r\n").await;
    assert!(r.starts_with("* ENABLED IMAP4rev2"), "{r}");
    let r = run(&mut a, "f UID SEARCH ALL\r\n").await;
    assert!(
        r.starts_with("* ESEARCH (TAG \"f\") UID ALL 1:3\r\n"),
        "{r}"
    );
    let r = run(&mut a, "g SEARCH SUBJECT nothing\r\n").await;
    assert!(r.starts_with("* ESEARCH (TAG \"g\")\r\n"), "{r}");
}

/// Appends `n` small messages to INBOX (subjects `m1`…).
pub async fn append_n(s: &mut Session<MailBackend>, n: usize) {
    for i in 1..=n {
        let m = format!("Subject: m{i}\r\n\r\nbody {i}\r\n");
        let r = run(s, &format!("ap APPEND INBOX {{{}+}}\r\n{m}\r\n", m.len())).await;
        assert!(r.contains("ap OK"), "{r}");
    }
}

/// The number in `[NAME n]` of a response.
pub fn code_value(r: &str, name: &str) -> u64 {
    let at = r.find(&format!("[{name} ")).expect(name) + name.len() + 2;
    r[at..]
        .split(']')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("number")
}
