//! The socket driver under every protocol (SMTP, submission, LMTP, IMAP, POP3). It accepts
//! connections and, for each, admits it against the service's connection limits, performs the
//! implicit TLS handshake or the STARTTLS one when the session asks (both bounded in time), reads
//! under the deadline the session names, feeds what it read to the session, writes the session's
//! output in timed steps (a client that stops reading is cut like one that stops writing),
//! wraps the stream in DEFLATE on COMPRESS, wakes an IMAP IDLE when the store changes, and says
//! the last words: the session's timeout notice, or its shutdown notice when the server stops.
//!
//! A protocol plugs in through [`Protocol`]: its state machine takes bytes and returns bytes and
//! an [`Event`]; it never sees the socket. Output is bounded by the sessions (they stop answering
//! pipelined commands at a high-water mark and report [`Protocol::has_pending`]) and by the timed
//! writes here.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::accept::{admit, handshake, write_timed};
use crate::compress::MaybeDeflate;
use crate::limits::ConnLimiter;
use crate::shutdown::{Shutdown, ShutdownSignal};
use crate::stream::{MaybeTls, TlsInfo};
use crate::tls::TlsReloader;

/// Longest wait for the last words (a timeout or shutdown notice, the TLS close) to a client
/// that is not reading.
pub const FAREWELL_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed accept (e.g. out of file descriptors) rather than spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What the driver must do after writing a session's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Perform the TLS handshake now (STARTTLS, STLS).
    StartTls,
    /// Compress both directions with DEFLATE from now on (RFC 4978).
    Compress,
    Close,
}

/// Bytes for the client and what to do after writing them.
#[derive(Debug, Default)]
pub struct Output {
    pub bytes: Vec<u8>,
    pub event: Option<Event>,
}

/// By when the client must have sent (for a read) or taken (for each step of a write) more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// A fixed instant that activity does not push back: a login deadline from the connection's
    /// start, or the end of a command line from its first byte.
    At(Instant),
    /// This long from each time it is asked: an inactivity timer.
    After(Duration),
}

impl Deadline {
    pub fn instant(self) -> Instant {
        match self {
            Deadline::At(at) => at,
            Deadline::After(d) => Instant::now() + d,
        }
    }
}

/// About a connection, for the protocol's session.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// None for a Unix socket.
    pub peer: Option<IpAddr>,
    /// Implicit TLS is up.
    pub tls: Option<TlsInfo>,
    /// STARTTLS can be offered: plaintext TCP and a certificate is configured.
    pub starttls: bool,
    /// When the connection was accepted (deadlines that activity does not push back start here).
    pub accepted: Instant,
}

/// A protocol's session as the driver sees it. The futures must be `Send`: each connection runs
/// in its own task.
pub trait Protocol: Send {
    /// Whether the session hands over pieces of long answers while `feed` runs
    /// ([`Protocol::stream_to`]).
    const STREAMS: bool = false;

    /// The first words, once the connection is admitted (and TLS is up for implicit TLS).
    fn greeting(&mut self) -> Vec<u8>;
    /// Handles bytes from the client (none when [`Protocol::has_pending`] asked to go on).
    fn feed(&mut self, input: &[u8]) -> impl Future<Output = Output> + Send;
    /// The deadline that applies now, to the next read and to each step of the next write.
    fn deadline(&self) -> Deadline;
    /// Last words when the deadline passed.
    fn timeout(&mut self) -> Vec<u8>;
    /// Last words when the server stops (SIGTERM).
    fn shutdown(&mut self) -> Vec<u8>;
    /// The TLS handshake after [`Event::StartTls`] succeeded.
    fn tls_started(&mut self, info: TlsInfo);
    /// Size of the read buffer now (a session waiting long, as in IDLE, can take less).
    fn read_size(&self) -> usize;

    /// Commands are buffered that the last `feed` left for later (its output reached the
    /// high-water mark): the driver writes, then feeds nothing to go on, before reading more.
    fn has_pending(&self) -> bool {
        false
    }
    /// Checked after each `feed`: a reason to end the session now, with its last words (e.g.
    /// SMTP's minimum data rate).
    fn cut_off(&mut self) -> Option<Vec<u8>> {
        None
    }
    /// How long to wait before the greeting (a client that talks first is refused with
    /// [`Protocol::premature`]).
    fn greeting_delay(&self) -> Duration {
        Duration::ZERO
    }
    /// The refusal of a client that talked before the greeting.
    fn premature(&mut self) -> Vec<u8> {
        Vec::new()
    }
    /// Returns when the session has something to say unprompted (IMAP IDLE: the store changed);
    /// the driver then writes [`Protocol::wake`]'s output. Cancel-safe.
    fn wait_wake(&mut self) -> impl Future<Output = ()> + Send {
        std::future::pending()
    }
    /// What to say after [`Protocol::wait_wake`] returned.
    fn wake(&mut self) -> impl Future<Output = Output> + Send {
        async { Output::default() }
    }
    /// Where pieces of a long answer go while `feed` produces it (only when
    /// [`Protocol::STREAMS`]); the driver writes them, in order, before `feed`'s own output.
    fn stream_to(&mut self, _pieces: mpsc::Sender<Vec<u8>>) {}
}

/// One listening service: what its connections share.
pub struct Endpoint {
    /// Name in logs ("smtp", "submission", "imap", ...).
    pub service: &'static str,
    /// TLS from the first byte (465, 993, 995).
    pub implicit_tls: bool,
    pub tls: Option<TlsReloader>,
    /// The service's connection budget.
    pub limiter: ConnLimiter,
    /// Sent (in plaintext only) to a connection over the limit before it is closed.
    pub refusal: &'static [u8],
    pub shutdown: Shutdown,
}

/// Accepts TCP connections until shutdown (or the listener fails); each runs in its own task
/// with the session `make` builds for it.
pub async fn serve_tcp<P, F>(listener: TcpListener, ep: Arc<Endpoint>, make: F)
where
    P: Protocol + 'static,
    F: Fn(&ConnInfo) -> P + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let mut stop = ep.shutdown.signal();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.wait() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((tcp, peer)) => {
                let _ = tcp.set_nodelay(true);
                // A dual-stack `[::]` listener sees IPv4 clients as ::ffff:a.b.c.d; everything
                // after this (limits, throttling, SPF, logs, Received) wants the IPv4 address.
                let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
                let (ep, make) = (ep.clone(), make.clone());
                let signal = ep.shutdown.signal();
                tokio::spawn(async move {
                    connection(MaybeTls::Plain(tcp), Some(peer), &ep, &*make, signal).await
                });
            }
            Err(e) => {
                tracing::warn!(service = ep.service, error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
    tracing::debug!(service = ep.service, "listener closed");
}

/// Like [`serve_tcp`] over a Unix socket (LMTP from a local MTA): no TLS, no per-client limit.
#[cfg(unix)]
pub async fn serve_unix<P, F>(listener: tokio::net::UnixListener, ep: Arc<Endpoint>, make: F)
where
    P: Protocol + 'static,
    F: Fn(&ConnInfo) -> P + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let mut stop = ep.shutdown.signal();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.wait() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((s, _)) => {
                let (ep, make) = (ep.clone(), make.clone());
                let signal = ep.shutdown.signal();
                tokio::spawn(async move {
                    connection(MaybeTls::Unix(s), None, &ep, &*make, signal).await
                });
            }
            Err(e) => {
                tracing::warn!(service = ep.service, error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// One connection from admission to close.
async fn connection<P: Protocol>(
    mut stream: MaybeTls,
    peer: Option<SocketAddr>,
    ep: &Endpoint,
    make: &(impl Fn(&ConnInfo) -> P + Sync),
    mut stop: ShutdownSignal,
) {
    let accepted = Instant::now();
    let ip = peer.map(|p| p.ip());
    let Ok(_slot) = admit(
        &ep.limiter,
        &mut stream,
        ip,
        ep.service,
        ep.refusal,
        ep.implicit_tls,
    )
    .await
    else {
        return;
    };
    if ep.implicit_tls {
        let Some(tls) = &ep.tls else { return };
        match handshake(stream, tls, ip, ep.service).await {
            Some(s) => stream = s,
            None => return,
        }
    }
    let info = ConnInfo {
        peer: ip,
        tls: stream.tls_info(),
        starttls: matches!(stream, MaybeTls::Plain(_)) && ep.tls.is_some(),
        accepted,
    };
    let mut session = make(&info);
    if let Some(mut stream) =
        run(MaybeDeflate::Plain(stream), &mut session, ep, ip, &mut stop).await
    {
        // The TLS close_notify, and the DEFLATE stream's end.
        let _ = tokio::time::timeout(FAREWELL_TIMEOUT, stream.shutdown()).await;
    }
}

/// Writes the last words under [`FAREWELL_TIMEOUT`].
async fn farewell<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) {
    let by = Instant::now() + FAREWELL_TIMEOUT;
    let _ = write_timed(stream, bytes, || by).await;
}

/// What ended a wait for the client.
enum Woken {
    Read(usize),
    Closed,
    TimedOut,
    Stop,
    Wake,
}

/// The session loop. Returns the stream when the connection is to be closed (None if a failed
/// TLS handshake took it).
async fn run<P: Protocol>(
    mut stream: MaybeDeflate<MaybeTls>,
    session: &mut P,
    ep: &Endpoint,
    ip: Option<IpAddr>,
    stop: &mut ShutdownSignal,
) -> Option<MaybeDeflate<MaybeTls>> {
    let mut buf = vec![0u8; session.read_size()];
    let delay = session.greeting_delay();
    if !delay.is_zero() {
        // RFC 5321 §4.3.1: the client waits for the greeting; one that talks first is not a
        // real MTA.
        let read = tokio::select! {
            biased;
            _ = stop.wait() => {
                farewell(&mut stream, &session.shutdown()).await;
                return Some(stream);
            }
            r = tokio::time::timeout(delay, stream.read(&mut buf)) => r,
        };
        match read {
            Err(_) => {}
            Ok(Ok(n)) if n > 0 => {
                tracing::info!(
                    service = ep.service,
                    peer = ip.map(tracing::field::display),
                    "client talked before the greeting"
                );
                farewell(&mut stream, &session.premature()).await;
                return Some(stream);
            }
            Ok(_) => return Some(stream),
        }
    }
    let greeting = session.greeting();
    let d = session.deadline();
    if !write_timed(&mut stream, &greeting, || d.instant()).await {
        return Some(stream);
    }
    let mut pieces = if P::STREAMS {
        let (tx, rx) = mpsc::channel(1);
        session.stream_to(tx);
        Some(rx)
    } else {
        None
    };
    loop {
        if stop.requested() {
            farewell(&mut stream, &session.shutdown()).await;
            return Some(stream);
        }
        let n = if session.has_pending() {
            0
        } else {
            // Checked before reading too: input that is always ready would never let the timer
            // of a fixed deadline fire.
            let at = session.deadline().instant();
            if Instant::now() >= at {
                farewell(&mut stream, &session.timeout()).await;
                return Some(stream);
            }
            let want = session.read_size();
            if buf.len() != want {
                buf = vec![0u8; want];
            }
            let woken = tokio::select! {
                biased;
                _ = stop.wait() => Woken::Stop,
                r = tokio::time::timeout_at(at, stream.read(&mut buf)) => match r {
                    Err(_) => Woken::TimedOut,
                    Ok(Ok(0)) | Ok(Err(_)) => Woken::Closed,
                    Ok(Ok(n)) => Woken::Read(n),
                },
                _ = session.wait_wake() => Woken::Wake,
            };
            match woken {
                Woken::Read(n) => n,
                Woken::Closed => return Some(stream),
                Woken::TimedOut => {
                    farewell(&mut stream, &session.timeout()).await;
                    return Some(stream);
                }
                Woken::Stop => {
                    farewell(&mut stream, &session.shutdown()).await;
                    return Some(stream);
                }
                Woken::Wake => {
                    let out = session.wake().await;
                    let d = session.deadline();
                    if !write_timed(&mut stream, &out.bytes, || d.instant()).await
                        || out.event == Some(Event::Close)
                    {
                        return Some(stream);
                    }
                    continue;
                }
            }
        };
        // The command runs to its end even if a shutdown is asked meanwhile (an SMTP DATA being
        // committed, an APPEND): its answer goes out, then the shutdown notice.
        let Some(out) = feed(session, &buf[..n], pieces.as_mut(), &mut stream).await else {
            return Some(stream);
        };
        let d = session.deadline();
        if !write_timed(&mut stream, &out.bytes, || d.instant()).await {
            return Some(stream);
        }
        match out.event {
            Some(Event::Close) => return Some(stream),
            Some(Event::StartTls) => {
                let Some(tls) = &ep.tls else {
                    return Some(stream);
                };
                // STARTTLS is refused once compression is on (it may only come before).
                let MaybeDeflate::Plain(plain) = stream else {
                    return None;
                };
                stream = MaybeDeflate::Plain(handshake(plain, tls, ip, ep.service).await?);
                match stream_tls_info(&stream) {
                    Some(info) => session.tls_started(info),
                    None => return Some(stream),
                }
            }
            // RFC 4978 §3: the tagged OK above went out uncompressed; DEFLATE from here on.
            Some(Event::Compress) => stream = stream.start_deflate(),
            None => {}
        }
        if let Some(last) = session.cut_off() {
            farewell(&mut stream, &last).await;
            return Some(stream);
        }
    }
}

fn stream_tls_info(stream: &MaybeDeflate<MaybeTls>) -> Option<TlsInfo> {
    match stream {
        MaybeDeflate::Plain(s) => s.tls_info(),
        MaybeDeflate::Deflate(_) => None,
    }
}

/// Runs `feed`, writing the pieces of a long answer as the session hands them over; they
/// precede `feed`'s own output. None when the client stopped taking them.
async fn feed<P: Protocol, S: AsyncWrite + Unpin>(
    session: &mut P,
    input: &[u8],
    pieces: Option<&mut mpsc::Receiver<Vec<u8>>>,
    stream: &mut S,
) -> Option<Output> {
    let Some(pieces) = pieces else {
        return Some(session.feed(input).await);
    };
    let d = session.deadline();
    let out = {
        let fed = session.feed(input);
        tokio::pin!(fed);
        loop {
            tokio::select! {
                biased;
                Some(piece) = pieces.recv() => {
                    if !write_timed(stream, &piece, || d.instant()).await {
                        return None;
                    }
                }
                out = &mut fed => break out,
            }
        }
    };
    while let Ok(piece) = pieces.try_recv() {
        if !write_timed(stream, &piece, || d.instant()).await {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::net::TcpStream;

    /// Echoes each line in upper case; `QUIT` closes.
    struct Echo {
        buf: Vec<u8>,
        deadline: Deadline,
    }

    impl Protocol for Echo {
        fn greeting(&mut self) -> Vec<u8> {
            b"HELLO\r\n".to_vec()
        }
        async fn feed(&mut self, input: &[u8]) -> Output {
            self.buf.extend_from_slice(input);
            let mut out = Output::default();
            while let Some(p) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=p).collect();
                if line.starts_with(b"QUIT") {
                    out.bytes.extend_from_slice(b"BYE\r\n");
                    out.event = Some(Event::Close);
                    break;
                }
                out.bytes.extend(line.to_ascii_uppercase());
            }
            out
        }
        fn deadline(&self) -> Deadline {
            self.deadline
        }
        fn timeout(&mut self) -> Vec<u8> {
            b"TIMEOUT\r\n".to_vec()
        }
        fn shutdown(&mut self) -> Vec<u8> {
            b"SHUTDOWN\r\n".to_vec()
        }
        fn tls_started(&mut self, _info: TlsInfo) {}
        fn read_size(&self) -> usize {
            64
        }
    }

    /// An echo service on loopback whose sessions must end `within` of connecting.
    async fn echo(limit: usize, within: Duration) -> (SocketAddr, Shutdown) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = Shutdown::new();
        let ep = Arc::new(Endpoint {
            service: "echo",
            implicit_tls: false,
            tls: None,
            limiter: ConnLimiter::new(limit, limit),
            refusal: b"FULL\r\n",
            shutdown: shutdown.clone(),
        });
        tokio::spawn(serve_tcp(listener, ep, move |info: &ConnInfo| Echo {
            buf: Vec::new(),
            deadline: Deadline::At(info.accepted + within),
        }));
        (addr, shutdown)
    }

    async fn lines(s: TcpStream) -> Vec<String> {
        let mut out = Vec::new();
        let mut r = BufReader::new(s).lines();
        while let Ok(Ok(Some(l))) =
            tokio::time::timeout(Duration::from_secs(10), r.next_line()).await
        {
            out.push(l);
        }
        out
    }

    #[tokio::test]
    async fn a_fixed_deadline_is_not_pushed_back_by_activity() {
        let (addr, _stop) = echo(10, Duration::from_millis(400)).await;
        let mut s = TcpStream::connect(addr).await.expect("connect");
        // A line every 50 ms for 2 s: far past the deadline, which must still end the session.
        let writer = async {
            for _ in 0..40 {
                if s.write_all(b"x\r\n").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            s
        };
        let s = writer.await;
        let got = lines(s).await;
        assert_eq!(got.first().map(String::as_str), Some("HELLO"));
        assert_eq!(got.last().map(String::as_str), Some("TIMEOUT"), "{got:?}");
        assert!(got.len() < 40, "every line was answered: {got:?}");
    }

    #[tokio::test]
    async fn over_the_limit_is_refused_and_a_close_event_closes() {
        let (addr, _stop) = echo(1, Duration::from_secs(30)).await;
        let mut first = TcpStream::connect(addr).await.expect("connect");
        let second = TcpStream::connect(addr).await.expect("connect");
        assert_eq!(lines(second).await, ["FULL"]);
        first.write_all(b"hi\r\nQUIT\r\n").await.expect("write");
        assert_eq!(lines(first).await, ["HELLO", "HI", "BYE"]);
    }

    #[tokio::test]
    async fn shutdown_closes_the_listener_and_every_session_says_goodbye() {
        let (addr, stop) = echo(10, Duration::from_secs(30)).await;
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"one\r\n").await.expect("write");
        let mut r = BufReader::new(s).lines();
        assert_eq!(r.next_line().await.expect("line").as_deref(), Some("HELLO"));
        assert_eq!(r.next_line().await.expect("line").as_deref(), Some("ONE"));
        stop.begin();
        assert_eq!(
            r.next_line().await.expect("line").as_deref(),
            Some("SHUTDOWN")
        );
        assert_eq!(r.next_line().await.expect("eof").as_deref(), None);
        tokio::time::timeout(Duration::from_secs(10), stop.drained())
            .await
            .expect("every session and the accept loop ended");
        assert!(TcpStream::connect(addr).await.is_err(), "still listening");
    }
}
