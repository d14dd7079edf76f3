//! A whole POP3 session fed arbitrary bytes in arbitrary chunks, over a real SQLite store with a
//! few messages (one with lines that need dot-stuffing), with a backend that lets any login in
//! (so the fuzzer reaches the TRANSACTION and UPDATE states). The first byte picks plaintext or
//! TLS, the chunk size, and the EXPIRE / LOGIN-DELAY policies.
//!
//! Properties: no panic; nothing is answered after the session closed; every reply starts with
//! "+OK", "-ERR" or "+ " (the AUTH continuation); a RETR answer is dot-stuffed and ends with
//! CRLF "." CRLF.
#![no_main]

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use libfuzzer_sys::fuzz_target;
use pop3::backend::{AuthOutcome, Backend};
use pop3::delay::LoginTimes;
use pop3::lock::MaildropLocks;
use pop3::session::{Event, Session, SessionInfo};
use pop3::{Expire, Pop3Config};
use store::{DynStore, MailboxId};

/// Messages kept in the INBOX: DELE + QUIT removes some, the next run puts them back.
const MESSAGES: usize = 4;

struct AnyLogin {
    store: DynStore,
    account: i64,
    locks: MaildropLocks,
    login_times: LoginTimes,
}

#[async_trait]
impl Backend for AnyLogin {
    async fn authenticate(&self, _: Option<IpAddr>, user: &str, _: &str) -> AuthOutcome {
        AuthOutcome::Ok(self.account, user.to_string())
    }
    fn store(&self) -> &DynStore {
        &self.store
    }
    fn locks(&self) -> &MaildropLocks {
        &self.locks
    }
    fn login_times(&self) -> &LoginTimes {
        &self.login_times
    }
}

struct World {
    rt: tokio::runtime::Runtime,
    store: DynStore,
    account: i64,
    inbox: MailboxId,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let store: DynStore =
            Arc::new(store::sqlite::Sqlite::open(dir.path(), store::sqlite::SqliteOptions::default()).expect("store"));
        let (account, inbox) = rt.block_on(async {
            let (acc, inbox) = store::conformance::account(&store, "fuzz").await;
            (acc.id, inbox.id)
        });
        World { rt, store, account, inbox, _dir: dir }
    })
}

fn message(i: usize) -> Arc<[u8]> {
    if i % 2 == 0 {
        store::conformance::sample(i, "fuzz")
    } else {
        Arc::from(format!("Subject: dots {i}\r\n\r\n.\r\n..x\r\n.line\r\nend").as_bytes())
    }
}

/// Tops the INBOX up to [`MESSAGES`].
async fn refill(w: &World) {
    let have = w.store.messages(w.inbox, 1..=u32::MAX).await.expect("messages").len();
    for i in have..MESSAGES {
        store::conformance::append(&w.store, w.inbox, message(i)).await.expect("append");
    }
}

/// Whether the status line `line` (a +OK) starts a multi-line answer: CAPA, AUTH (the mechanism
/// list), TOP, UIDL and LIST without argument ("+OK 3 messages (120 octets)"), RETR ("+OK 40 octets").
fn starts_body(line: &[u8]) -> bool {
    let fixed: [&[u8]; 4] = [
        b"+OK Capability list follows",
        b"+OK Supported mechanisms follow",
        b"+OK Top of message follows",
        b"+OK Unique-ID listing follows",
    ];
    let counted = line.get(4).is_some_and(u8::is_ascii_digit)
        && (line.ends_with(b" octets\r\n") || line.ends_with(b" octets)\r\n"));
    fixed.iter().any(|f| line.starts_with(f)) || (line.starts_with(b"+OK ") && counted)
}

/// Checks the framing of one `feed` output: each answer starts with a status line, and a
/// multi-line body is dot-stuffed (inside it, a line starting with "." is ".." or the end).
fn check_framing(out: &[u8], in_body: &mut bool) {
    for line in out.split_inclusive(|&b| b == b'\n') {
        assert!(line.ends_with(b"\r\n"), "line without CRLF: {:?}", String::from_utf8_lossy(line));
        if *in_body {
            if line == b".\r\n" {
                *in_body = false;
            } else {
                assert!(!line.starts_with(b".") || line.starts_with(b".."), "unstuffed: {:?}", String::from_utf8_lossy(line));
            }
            continue;
        }
        assert!(
            line.starts_with(b"+OK") || line.starts_with(b"-ERR ") || line == b"+ \r\n",
            "not a status line: {:?}",
            String::from_utf8_lossy(line)
        );
        *in_body = starts_body(line);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, input)) = data.split_first() else { return };
    let w = world();
    let cfg = Pop3Config {
        expire: if ctl & 2 != 0 { Expire::Days(0) } else { Expire::Never },
        login_delay: (ctl & 4 != 0).then_some(Duration::from_secs(60)),
        ..Pop3Config::default()
    };
    let backend = Arc::new(AnyLogin {
        store: w.store.clone(),
        account: w.account,
        locks: MaildropLocks::default(),
        login_times: LoginTimes::default(),
    });
    let info = SessionInfo { peer: None, tls: ctl & 1 != 0, starttls: ctl & 1 == 0 };
    let chunk = 1 + usize::from(ctl >> 3) * 3;
    w.rt.block_on(async {
        refill(w).await;
        let mut session = Session::new(Arc::new(cfg), backend, info);
        let mut in_body = false;
        check_framing(&session.greeting(), &mut in_body);
        for piece in input.chunks(chunk) {
            let out = session.feed(piece).await;
            check_framing(&out.bytes, &mut in_body);
            match out.event {
                Some(Event::Close) => {
                    let after = session.feed(b"NOOP\r\n").await;
                    assert!(after.bytes.is_empty(), "answered after close");
                    return;
                }
                Some(Event::StartTls) => session.tls_started(),
                None => {}
            }
        }
    });
});
