//! A whole IMAP session fed arbitrary bytes in arbitrary chunks, over a real SQLite store with a
//! few messages, with a backend that lets any login in (so the fuzzer reaches the authenticated and
//! selected states). Properties: no panic; nothing is answered after the session closed.
#![no_main]

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use imap::backend::{AuthOutcome, AuthUser, Backend};
use imap::session::{Event, Session, SessionInfo};
use imap::ImapConfig;
use libfuzzer_sys::fuzz_target;
use store::DynStore;

struct AnyLogin {
    store: DynStore,
    account: i64,
}

#[async_trait]
impl Backend for AnyLogin {
    async fn authenticate(&self, _: Option<IpAddr>, user: &str, _: &str) -> AuthOutcome {
        AuthOutcome::Ok(AuthUser { account_id: self.account, address: user.to_string() })
    }
    fn store(&self) -> &DynStore {
        &self.store
    }
    async fn over_quota(&self, _: i64, _: u64, _: u64) -> bool {
        false
    }
}

struct World {
    rt: tokio::runtime::Runtime,
    backend: Arc<AnyLogin>,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let store: DynStore =
            Arc::new(store::sqlite::Sqlite::open(dir.path(), store::sqlite::SqliteOptions::default()).expect("store"));
        let account = rt.block_on(async {
            let (acc, inbox) = store::conformance::account(&store, "fuzz").await;
            for i in 0..5 {
                store::conformance::append(&store, inbox.id, store::conformance::sample(i, "fuzz")).await.expect("append");
            }
            acc.id
        });
        World { rt, backend: Arc::new(AnyLogin { store, account }), _dir: dir }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, input)) = data.split_first() else { return };
    let w = world();
    let cfg = ImapConfig { max_message_size: 4096, ..ImapConfig::default() };
    let info = SessionInfo { peer: None, tls: ctl & 1 != 0, starttls: ctl & 1 == 0 };
    let mut session = Session::new(Arc::new(cfg), w.backend.clone(), info);
    let _ = session.greeting();
    let chunk = 1 + usize::from(ctl >> 2) * 5;
    w.rt.block_on(async {
        for piece in input.chunks(chunk) {
            let mut out = session.feed(piece).await;
            // The driver drains what the session left for later before reading more.
            while out.event.is_none() && session.has_pending() {
                out = session.feed(&[]).await;
            }
            match out.event {
                Some(Event::Close) => {
                    let after = session.feed(b"z NOOP\r\n").await;
                    assert!(after.bytes.is_empty(), "answered after close");
                    return;
                }
                Some(Event::StartTls) => session.tls_started(),
                // The driver would inflate from here on; the fuzzer goes on with raw bytes.
                Some(Event::Compress) | None => {}
            }
        }
    });
});
