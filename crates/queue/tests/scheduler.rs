//! The scheduler against scripted SMTP peers over real sockets, with a real SQLite store: retries
//! after 4xx, exactly one DSN after 5xx, several recipients in one transaction, connection reuse,
//! failover to the next MX, null MX, no DSN for the null sender, and entries surviving a restart.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use queue::{Deliverer, Injector, MxAnswer, Queue, QueueConfig, StaticResolver};
use store::sqlite::{Sqlite, SqliteOptions};
use store::{DynStore, NewQueueEntry, QueueRecipient, WriteBatch};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// What the scripted peer does with each RCPT: the reply to send.
type RcptRule = Arc<dyn Fn(&str, usize) -> String + Send + Sync>;

#[derive(Default)]
struct PeerLog {
    connections: usize,
    transactions: Vec<(String, Vec<String>, Vec<u8>)>,
}

/// A minimal ESMTP server: PIPELINING, 8BITMIME, DSN; no STARTTLS; replies to RCPT per `rule`
/// (called with the address and the count of RCPTs seen so far for that address).
async fn peer(rule: RcptRule) -> (SocketAddr, Arc<Mutex<PeerLog>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Mutex::new(PeerLog::default()));
    let seen: Arc<Mutex<std::collections::HashMap<String, usize>>> = Default::default();
    let l2 = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            l2.lock().unwrap().connections += 1;
            let log = l2.clone();
            let rule = rule.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                w.write_all(b"220 peer.test ESMTP\r\n").await.unwrap();
                let mut from = String::new();
                let mut rcpts = Vec::new();
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let up = line.to_ascii_uppercase();
                    let reply = if up.starts_with("EHLO") {
                        "250-peer.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 DSN\r\n".to_string()
                    } else if up.starts_with("MAIL FROM:") {
                        from = line[10..].trim().to_string();
                        rcpts.clear();
                        "250 2.1.0 ok\r\n".into()
                    } else if up.starts_with("RCPT TO:") {
                        let a = line[8..]
                            .split('>')
                            .next()
                            .unwrap()
                            .trim_start_matches('<')
                            .to_string();
                        let n = {
                            let mut s = seen.lock().unwrap();
                            let c = s.entry(a.clone()).or_insert(0);
                            *c += 1;
                            *c
                        };
                        let rep = rule(&a, n);
                        if rep.starts_with('2') {
                            rcpts.push(a);
                        }
                        rep
                    } else if up.starts_with("DATA") {
                        w.write_all(b"354 go\r\n").await.unwrap();
                        let mut data = Vec::new();
                        loop {
                            let mut l = Vec::new();
                            r.read_until(b'\n', &mut l).await.unwrap();
                            if l == b".\r\n" {
                                break;
                            }
                            // RFC 5321 §4.5.2: the receiver removes the stuffed dot.
                            let l = l.strip_prefix(b".").unwrap_or(&l);
                            data.extend_from_slice(l);
                        }
                        log.lock()
                            .unwrap()
                            .transactions
                            .push((from.clone(), rcpts.clone(), data));
                        "250 2.0.0 queued as X\r\n".into()
                    } else if up.starts_with("RSET") {
                        "250 2.0.0 ok\r\n".into()
                    } else if up.starts_with("QUIT") {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        "502 5.5.1 what\r\n".into()
                    };
                    w.write_all(reply.as_bytes()).await.unwrap();
                }
            });
        }
    });
    (addr, log)
}

#[derive(Default)]
struct Bounces(Mutex<Vec<(String, Vec<u8>)>>);

#[async_trait]
impl Injector for Bounces {
    async fn inject_dsn(&self, to: &str, raw: Vec<u8>) -> Result<(), String> {
        self.0.lock().unwrap().push((to.to_string(), raw));
        Ok(())
    }
}

fn resolver(domain: &str, mx: &[(&str, IpAddr)]) -> StaticResolver {
    let mut r = StaticResolver::default();
    r.mx.insert(
        domain.into(),
        MxAnswer::Hosts(
            mx.iter()
                .enumerate()
                .map(|(i, (h, _))| (10 * (i as u16 + 1), h.to_string()))
                .collect(),
        ),
    );
    for (h, ip) in mx {
        r.hosts.insert(h.to_string(), vec![*ip]);
    }
    r.mx.insert("null.test".into(), MxAnswer::NullMx);
    r
}

fn setup(
    dir: &std::path::Path,
    res: StaticResolver,
    port: u16,
) -> (DynStore, Arc<Queue>, Arc<Bounces>) {
    let store: DynStore = Arc::new(Sqlite::open(dir, SqliteOptions::default()).unwrap());
    let config = Arc::new(QueueConfig {
        hostname: "mx.local.test".into(),
        remote_port: port,
        retry_initial: Duration::from_secs(1),
        retry_max: Duration::from_secs(2),
        poll_interval: Duration::from_millis(100),
        // One connection per destination, so connection reuse is visible.
        per_domain: 1,
        ..QueueConfig::default()
    });
    let deliverer = Deliverer::new(config.clone(), Arc::new(res));
    let bounces = Arc::new(Bounces::default());
    let q = Queue::new(
        store.clone(),
        config,
        deliverer,
        bounces.clone(),
        Arc::new(tokio::sync::Notify::new()),
    );
    (store, q, bounces)
}

async fn enqueue(store: &DynStore, from: &str, rcpts: &[&str], body: &[u8]) {
    let batch = WriteBatch {
        appends: vec![],
        enqueue: vec![NewQueueEntry {
            raw: body.into(),
            sender: from.into(),
            recipients: rcpts
                .iter()
                .map(|a| QueueRecipient {
                    address: a.to_string(),
                    notify: None,
                    orcpt: None,
                    status: "pending".into(),
                    last_reply: None,
                })
                .collect(),
            envid: None,
            ret: Some("HDRS".into()),
            next_attempt: 0,
            smtp_id: Some("00063F0000000001".into()),
        }],
        ..WriteBatch::default()
    };
    store.commit(batch).await.unwrap();
}

async fn drain(store: &DynStore, q: &Arc<Queue>, max: Duration) {
    let start = std::time::Instant::now();
    while start.elapsed() < max {
        q.dispatch().await;
        q.idle(Duration::from_secs(30)).await;
        if store.queue_list().await.unwrap().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

const MSG: &[u8] =
    b"From: a@local.test\r\nTo: b@remote.test\r\nSubject: hi\r\n\r\n.leading dot\r\nbody\r\n";

#[tokio::test]
async fn several_recipients_in_one_transaction_and_dot_stuffing() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, log) = peer(Arc::new(|_, _| "250 2.1.5 ok\r\n".into())).await;
    let (store, q, bounces) = setup(
        dir.path(),
        resolver("remote.test", &[("mx.remote.test", addr.ip())]),
        addr.port(),
    );
    enqueue(
        &store,
        "a@local.test",
        &["b@remote.test", "c@remote.test"],
        MSG,
    )
    .await;
    enqueue(&store, "a@local.test", &["d@remote.test"], MSG).await;
    drain(&store, &q, Duration::from_secs(10)).await;
    assert!(store.queue_list().await.unwrap().is_empty());
    let log = log.lock().unwrap();
    assert_eq!(log.connections, 1, "both entries over one connection");
    assert_eq!(log.transactions.len(), 2);
    assert_eq!(
        log.transactions[0].1,
        vec!["b@remote.test", "c@remote.test"]
    );
    assert_eq!(
        log.transactions[0].2, MSG,
        "dot-stuffing undone by the peer gives the original bytes"
    );
    assert!(bounces.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn temporary_failure_is_retried_then_delivered_once() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, log) = peer(Arc::new(|_, n| {
        if n == 1 {
            "451 4.3.0 try later\r\n".into()
        } else {
            "250 2.1.5 ok\r\n".into()
        }
    }))
    .await;
    let (store, q, bounces) = setup(
        dir.path(),
        resolver("remote.test", &[("mx.remote.test", addr.ip())]),
        addr.port(),
    );
    enqueue(&store, "a@local.test", &["b@remote.test"], MSG).await;
    q.dispatch().await;
    q.idle(Duration::from_secs(30)).await;
    let entries = store.queue_list().await.unwrap();
    assert_eq!(entries.len(), 1, "still queued after 451");
    assert_eq!(entries[0].attempts, 1);
    assert!(entries[0].last_error.as_deref().unwrap().contains("451"));
    drain(&store, &q, Duration::from_secs(15)).await;
    assert!(store.queue_list().await.unwrap().is_empty());
    assert_eq!(
        log.lock().unwrap().transactions.len(),
        1,
        "delivered exactly once"
    );
    assert!(bounces.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn permanent_failure_gives_exactly_one_dsn_and_partial_success() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, log) = peer(Arc::new(|a, _| {
        if a.starts_with("nobody") {
            "550 5.1.1 no such user\r\n".into()
        } else {
            "250 2.1.5 ok\r\n".into()
        }
    }))
    .await;
    let (store, q, bounces) = setup(
        dir.path(),
        resolver("remote.test", &[("mx.remote.test", addr.ip())]),
        addr.port(),
    );
    enqueue(
        &store,
        "a@local.test",
        &["nobody@remote.test", "b@remote.test"],
        MSG,
    )
    .await;
    drain(&store, &q, Duration::from_secs(10)).await;
    assert!(store.queue_list().await.unwrap().is_empty());
    assert_eq!(log.lock().unwrap().transactions[0].1, vec!["b@remote.test"]);
    let b = bounces.0.lock().unwrap();
    assert_eq!(b.len(), 1, "exactly one DSN");
    assert_eq!(b[0].0, "a@local.test");
    let text = String::from_utf8_lossy(&b[0].1);
    assert!(text.contains("Final-Recipient: rfc822; nobody@remote.test"));
    assert!(text.contains("Status: 5.1.1"));
    assert!(text.contains("550 5.1.1 no such user"));
    assert!(!text.contains("Final-Recipient: rfc822; b@remote.test"));
}

#[tokio::test]
async fn null_sender_never_gets_a_dsn() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _log) = peer(Arc::new(|_, _| "550 5.1.1 no\r\n".into())).await;
    let (store, q, bounces) = setup(
        dir.path(),
        resolver("remote.test", &[("mx.remote.test", addr.ip())]),
        addr.port(),
    );
    enqueue(&store, "", &["x@remote.test"], MSG).await;
    drain(&store, &q, Duration::from_secs(10)).await;
    assert!(store.queue_list().await.unwrap().is_empty());
    assert!(bounces.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn null_mx_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (store, q, bounces) = setup(dir.path(), resolver("remote.test", &[]), 9);
    enqueue(&store, "a@local.test", &["x@null.test"], MSG).await;
    drain(&store, &q, Duration::from_secs(10)).await;
    assert!(store.queue_list().await.unwrap().is_empty());
    let b = bounces.0.lock().unwrap();
    assert_eq!(b.len(), 1);
    assert!(String::from_utf8_lossy(&b[0].1).contains("Status: 5.1.10"));
}

#[tokio::test]
async fn unreachable_first_mx_falls_over_to_the_second() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, log) = peer(Arc::new(|_, _| "250 ok\r\n".into())).await;
    // The first MX is an address where nothing listens on the peer's port.
    let dead: IpAddr = "127.0.0.254".parse().unwrap();
    let (store, q, _b) = setup(
        dir.path(),
        resolver(
            "remote.test",
            &[("mx1.remote.test", dead), ("mx2.remote.test", addr.ip())],
        ),
        addr.port(),
    );
    enqueue(&store, "a@local.test", &["b@remote.test"], MSG).await;
    drain(&store, &q, Duration::from_secs(10)).await;
    assert!(store.queue_list().await.unwrap().is_empty());
    assert_eq!(log.lock().unwrap().transactions.len(), 1);
}

#[tokio::test]
async fn entries_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, log) = peer(Arc::new(|_, _| "250 ok\r\n".into())).await;
    {
        let (store, _q, _b) = setup(
            dir.path(),
            resolver("remote.test", &[("mx.remote.test", addr.ip())]),
            addr.port(),
        );
        enqueue(&store, "a@local.test", &["b@remote.test"], MSG).await;
    }
    let (store, q, _b) = setup(
        dir.path(),
        resolver("remote.test", &[("mx.remote.test", addr.ip())]),
        addr.port(),
    );
    assert_eq!(store.queue_list().await.unwrap().len(), 1);
    drain(&store, &q, Duration::from_secs(10)).await;
    assert_eq!(log.lock().unwrap().transactions.len(), 1);
}

/// DANE (RFC 7672 §2.2): secure TLSA records make TLS mandatory. The scripted peer offers no
/// STARTTLS, so nothing may be sent to it: the entry waits, with the reason recorded.
#[tokio::test]
async fn dane_host_without_starttls_gets_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, log) = peer(Arc::new(|_, _| "250 ok\r\n".into())).await;
    let mut res = resolver("remote.test", &[("mx1.remote.test", addr.ip())]);
    res.tlsa.insert(
        format!("mx1.remote.test:{}", addr.port()),
        vec![net::dane::Tlsa {
            usage: 3,
            selector: 1,
            matching: 1,
            data: vec![7; 32],
        }],
    );
    let (store, q, _b) = setup(dir.path(), res, addr.port());
    enqueue(&store, "a@local.test", &["b@remote.test"], MSG).await;
    drain(&store, &q, Duration::from_secs(3)).await;
    let left = store.queue_list().await.unwrap();
    assert_eq!(left.len(), 1, "the message waits");
    let reply = left[0].recipients[0].last_reply.clone().unwrap_or_default();
    assert!(
        reply.to_ascii_lowercase().contains("tls"),
        "the deferral names the missing TLS: {reply}"
    );
    assert!(log.lock().unwrap().transactions.is_empty());
}

/// A host whose TLSA records are signed but cannot be read (SERVFAIL) is skipped; the next MX,
/// without DANE, gets the message.
#[tokio::test]
async fn dane_lookup_failure_skips_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, log) = peer(Arc::new(|_, _| "250 ok\r\n".into())).await;
    let mut res = resolver(
        "remote.test",
        &[
            ("mx1.remote.test", addr.ip()),
            ("mx2.remote.test", addr.ip()),
        ],
    );
    res.failing
        .push(format!("_{}._tcp.mx1.remote.test", addr.port()));
    let (store, q, _b) = setup(dir.path(), res, addr.port());
    enqueue(&store, "a@local.test", &["b@remote.test"], MSG).await;
    drain(&store, &q, Duration::from_secs(10)).await;
    assert!(store.queue_list().await.unwrap().is_empty());
    let log = log.lock().unwrap();
    assert_eq!(log.transactions.len(), 1);
    assert_eq!(log.connections, 1, "mx1 was never contacted");
}
