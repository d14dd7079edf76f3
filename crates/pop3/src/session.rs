//! The POP3 state machine (RFC 1939 §3): AUTHORIZATION → TRANSACTION → UPDATE. It is fed bytes
//! and returns reply bytes plus an event for the driver (start TLS, close); it holds no socket.

use std::net::IpAddr;
use std::sync::Arc;

use store::{BlobId, ExpungeFilter, MailboxId, StoreError, Uid};

use crate::backend::{AuthOutcome, Backend};
use crate::config::{Expire, Pop3Config};
use crate::lock::MaildropGuard;

/// What the driver must do after writing the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Perform the TLS handshake now (STLS was accepted).
    StartTls,
    Close,
}

#[derive(Debug, Default)]
pub struct Output {
    pub bytes: Vec<u8>,
    pub event: Option<Event>,
}

/// About the connection, from the driver.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub peer: Option<IpAddr>,
    /// The connection is already TLS (implicit TLS on 995, or after STLS).
    pub tls: bool,
    /// STLS can be offered (plaintext TCP and a certificate is configured).
    pub starttls: bool,
}

/// One message of the maildrop snapshot taken at login.
#[derive(Debug, Clone)]
struct Msg {
    uid: Uid,
    size: u64,
    blob: BlobId,
    deleted: bool,
    /// RETR sent it in this session (with EXPIRE 0 it is removed at QUIT).
    retrieved: bool,
}

/// The TRANSACTION state: a locked snapshot of the INBOX.
struct Maildrop {
    /// `None` when the account has no INBOX: an empty maildrop.
    mailbox: Option<MailboxId>,
    uidvalidity: u32,
    msgs: Vec<Msg>,
    _lock: MaildropGuard,
}

impl Maildrop {
    fn live(&self) -> impl Iterator<Item = (usize, &Msg)> {
        self.msgs
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.deleted)
            .map(|(i, m)| (i + 1, m))
    }

    fn stat(&self) -> (usize, u64) {
        self.live()
            .fold((0, 0), |(n, s), (_, m)| (n + 1, s + m.size))
    }

    /// The message numbered `arg` (RFC 1939 §5: 1-based, not marked deleted).
    fn get(&self, arg: &str) -> Result<usize, &'static str> {
        let n: usize = arg.parse().map_err(|_| "-ERR Invalid message number\r\n")?;
        match n.checked_sub(1).and_then(|i| self.msgs.get(i)) {
            Some(m) if !m.deleted => Ok(n - 1),
            Some(_) => Err("-ERR Message already deleted\r\n"),
            None => Err("-ERR No such message\r\n"),
        }
    }
}

enum State {
    Authorization {
        user: Option<String>,
    },
    /// AUTH PLAIN sent `+ `: waiting for the client's response line (RFC 5034 §4).
    AuthPlain,
    Transaction(Box<Maildrop>),
    Closed,
}

pub struct Session<B: Backend> {
    cfg: Arc<Pop3Config>,
    backend: Arc<B>,
    info: SessionInfo,
    buf: Vec<u8>,
    state: State,
    errors: u32,
    /// Command lines read, for the DEBUG line at the end of the session.
    commands: u64,
}

/// Output one `feed` may build before it stops answering pipelined commands: the rest wait in
/// the input buffer until the driver has written this much ([`Session::has_pending`]). Without
/// it, one read of pipelined `RETR`s (4 KiB: 500 of them) would build 500 copies of a message
/// in memory before the first was sent.
pub const OUTPUT_HIGH_WATER: usize = 256 * 1024;

const AUTH_FAILED: &str = "-ERR [AUTH] Authentication failed\r\n";
const TLS_REQUIRED: &str = "-ERR [AUTH] TLS required: use STLS first\r\n";
const TEMP_FAILURE: &str = "-ERR [SYS/TEMP] Temporary failure, try again later\r\n";

fn log_store(e: &StoreError) -> &'static str {
    tracing::warn!(error = %e, "pop3: store failure");
    TEMP_FAILURE
}

/// RFC 1939 §3: a multi-line response is byte-stuffed (a line starting with "." gets another
/// ".") and ends with CRLF "." CRLF. Stored messages are CRLF already. Copies the runs between
/// stuffed dots whole: most messages have none, and are one copy.
pub(crate) fn push_stuffed(out: &mut Vec<u8>, data: &[u8]) {
    out.reserve(data.len() + 5);
    let mut start = 0;
    if data.first() == Some(&b'.') {
        out.push(b'.');
    }
    let mut from = 0;
    while let Some(p) = data[from..].iter().position(|&b| b == b'\n') {
        let next = from + p + 1;
        if data.get(next) == Some(&b'.') {
            out.extend_from_slice(&data[start..next]);
            out.push(b'.');
            start = next;
        }
        from = next;
    }
    out.extend_from_slice(&data[start..]);
    if !data.is_empty() && !data.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

/// RFC 1939 §7 TOP: the header, the blank line, and the first `lines` lines of the body.
fn top(raw: &[u8], lines: usize) -> &[u8] {
    let Some(hdr_end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return raw;
    };
    let body_start = hdr_end + 4;
    let mut end = body_start;
    for _ in 0..lines {
        match raw[end..].iter().position(|&b| b == b'\n') {
            Some(p) => end += p + 1,
            None => {
                end = raw.len();
                break;
            }
        }
    }
    &raw[..end]
}

impl<B: Backend> Session<B> {
    pub fn new(cfg: Arc<Pop3Config>, backend: Arc<B>, info: SessionInfo) -> Session<B> {
        tracing::debug!(
            peer = info.peer.map(tracing::field::display),
            tls = info.tls,
            "pop3 session start"
        );
        Session {
            commands: 0,
            cfg,
            backend,
            info,
            buf: Vec::new(),
            state: State::Authorization { user: None },
            errors: 0,
        }
    }

    /// RFC 1939 §4. No APOP timestamp: APOP is not offered.
    pub fn greeting(&self) -> Vec<u8> {
        format!("+OK {} Facteur POP3 ready\r\n", self.cfg.hostname).into_bytes()
    }

    pub fn timeout(&self) -> Vec<u8> {
        b"-ERR Autologout; idle for too long\r\n".to_vec()
    }

    pub fn authenticated(&self) -> bool {
        matches!(self.state, State::Transaction(_))
    }

    /// The TLS handshake after STLS succeeded.
    pub fn tls_started(&mut self) {
        self.info.tls = true;
        self.info.starttls = false;
    }

    /// A complete command line is waiting: the driver calls `feed` with no new input before
    /// reading more (the previous `feed` stopped at [`OUTPUT_HIGH_WATER`]).
    pub fn has_pending(&self) -> bool {
        !matches!(self.state, State::Closed) && self.buf.contains(&b'\n')
    }

    pub async fn feed(&mut self, input: &[u8]) -> Output {
        let mut out = Output::default();
        if matches!(self.state, State::Closed) {
            out.event = Some(Event::Close);
            return out;
        }
        self.buf.extend_from_slice(input);
        loop {
            if out.bytes.len() >= OUTPUT_HIGH_WATER {
                break;
            }
            let Some(nl) = self.buf.iter().position(|&b| b == b'\n') else {
                if self.buf.len() > self.cfg.line_length {
                    out.bytes.extend_from_slice(b"-ERR Line too long\r\n");
                    self.close(&mut out);
                }
                break;
            };
            let line: Vec<u8> = self.buf.drain(..=nl).collect();
            if line.len() > self.cfg.line_length {
                out.bytes.extend_from_slice(b"-ERR Line too long\r\n");
                self.trace_reply(b"-ERR Line too long");
                self.error(&mut out);
            } else {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\r', '\n']).to_string();
                self.command(&text, &mut out).await;
            }
            match out.event {
                Some(Event::StartTls) => {
                    // RFC 2595 §4 (and RFC 3207 §5's lesson): plaintext pipelined after STLS is
                    // discarded, never executed inside the TLS session.
                    self.buf.clear();
                    break;
                }
                Some(Event::Close) => break,
                None => {}
            }
        }
        out
    }

    fn close(&mut self, out: &mut Output) {
        self.state = State::Closed;
        self.buf.clear();
        out.event = Some(Event::Close);
    }

    /// Counts a bad command; too many close the connection.
    fn error(&mut self, out: &mut Output) {
        self.errors += 1;
        if self.errors >= self.cfg.max_errors {
            // Bad commands are not logged one by one (a client chooses how many it sends); this
            // line comes once per session.
            tracing::info!(
                peer = self.info.peer.map(tracing::field::display),
                errors = self.errors,
                "pop3: too many bad commands, closing the connection"
            );
            out.bytes
                .extend_from_slice(b"-ERR Too many errors, closing connection\r\n");
            self.close(out);
        }
    }

    fn reply_err(&mut self, out: &mut Output, text: &str) {
        out.bytes.extend_from_slice(text.as_bytes());
        self.error(out);
    }

    /// RFC 2449 §5 CAPA; what is offered depends on the state and on TLS.
    fn capabilities(&self) -> String {
        let mut caps = vec!["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"];
        if !self.authenticated() {
            if self.info.tls {
                caps.push("USER");
                caps.push("SASL PLAIN");
            } else if self.info.starttls {
                caps.push("STLS");
            }
        }
        // RFC 2449 §6.5, §6.7: one value for every user, so announced in both states.
        let expire = match self.cfg.expire {
            Expire::Never => "EXPIRE NEVER".to_string(),
            Expire::Days(d) => format!("EXPIRE {d}"),
        };
        let login_delay = self
            .cfg
            .login_delay
            .map(|d| format!("LOGIN-DELAY {}", d.as_secs()));
        let mut s = String::from("+OK Capability list follows\r\n");
        for c in caps
            .into_iter()
            .chain([expire.as_str()])
            .chain(login_delay.as_deref())
            .chain(["IMPLEMENTATION Facteur"])
        {
            s.push_str(c);
            s.push_str("\r\n");
        }
        s.push_str(".\r\n");
        s
    }

    /// DEBUG protocol trace of a command line, with the password of PASS, the initial response
    /// of AUTH and every SASL response replaced.
    fn trace_command(&self, line: &str) {
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        let mut words = line.splitn(3, ' ');
        let (verb, arg) = (words.next().unwrap_or_default(), words.next());
        let shown = if matches!(self.state, State::AuthPlain) {
            "<SASL response redacted>".to_string()
        } else if verb.eq_ignore_ascii_case("PASS") && arg.is_some() {
            "PASS <redacted>".to_string()
        } else if verb.eq_ignore_ascii_case("AUTH") && words.next().is_some() {
            format!(
                "AUTH {} <initial response redacted>",
                net::log::printable(arg.unwrap_or_default().as_bytes(), net::log::MAX_TRACE_TEXT)
            )
        } else {
            net::log::printable(line.as_bytes(), net::log::MAX_TRACE_TEXT)
        };
        tracing::debug!(
            peer = self.info.peer.map(tracing::field::display),
            command = %shown,
            "pop3 command"
        );
    }

    /// DEBUG trace of the first line of the reply to a command (never message text).
    fn trace_reply(&self, reply: &[u8]) {
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        let first = reply
            .iter()
            .position(|&b| b == b'\r' || b == b'\n')
            .map_or(reply, |end| &reply[..end]);
        tracing::debug!(
            peer = self.info.peer.map(tracing::field::display),
            reply = %net::log::printable(first, net::log::MAX_TRACE_TEXT),
            bytes = reply.len(),
            "pop3 reply"
        );
    }

    async fn command(&mut self, line: &str, out: &mut Output) {
        self.commands += 1;
        self.trace_command(line);
        let start = out.bytes.len();
        self.run(line, out).await;
        self.trace_reply(&out.bytes[start.min(out.bytes.len())..]);
    }

    async fn run(&mut self, line: &str, out: &mut Output) {
        if matches!(self.state, State::AuthPlain) {
            self.state = State::Authorization { user: None };
            // RFC 5034 §4: "*" cancels the exchange.
            if line == "*" {
                return self.reply_err(out, "-ERR Authentication cancelled\r\n");
            }
            return self.auth_plain(line, out).await;
        }
        let (verb, rest) = match line.split_once(' ') {
            Some((v, r)) => (v, r),
            None => (line, ""),
        };
        let verb = verb.to_ascii_uppercase();
        let args: Vec<&str> = rest.split(' ').filter(|a| !a.is_empty()).collect();
        match verb.as_str() {
            "CAPA" => out.bytes.extend_from_slice(self.capabilities().as_bytes()),
            "NOOP" if self.authenticated() => out.bytes.extend_from_slice(b"+OK\r\n"),
            "QUIT" => self.quit(out).await,
            _ if self.authenticated() => self.transaction(&verb, &args, out).await,
            _ => self.authorization(&verb, rest, &args, out).await,
        }
    }

    async fn authorization(&mut self, verb: &str, rest: &str, args: &[&str], out: &mut Output) {
        let needs_tls = matches!(verb, "USER" | "PASS" | "AUTH" | "APOP");
        if needs_tls && !self.info.tls {
            // RFC 2595 §2.2 / RFC 3206 §4: no credentials over plaintext.
            return self.reply_err(out, TLS_REQUIRED);
        }
        match verb {
            "STLS" => {
                if self.info.tls {
                    self.reply_err(out, "-ERR Already using TLS\r\n");
                } else if !self.info.starttls {
                    self.reply_err(out, "-ERR STLS not available\r\n");
                } else {
                    out.bytes
                        .extend_from_slice(b"+OK Begin TLS negotiation\r\n");
                    out.event = Some(Event::StartTls);
                }
            }
            "USER" => {
                if rest.is_empty() {
                    return self.reply_err(out, "-ERR Missing user name\r\n");
                }
                // The same answer whether the user exists or not (RFC 1939 §7 allows this).
                self.state = State::Authorization {
                    user: Some(rest.to_string()),
                };
                out.bytes.extend_from_slice(b"+OK Send PASS\r\n");
            }
            "PASS" => {
                let user = match &mut self.state {
                    State::Authorization { user } => user.take(),
                    _ => None,
                };
                let Some(user) = user else {
                    return self.reply_err(out, "-ERR Send USER first\r\n");
                };
                // RFC 1939 §7: the password is the rest of the line and may contain spaces.
                self.login("USER", &user, rest, out).await;
            }
            "AUTH" => match args.first().map(|m| m.to_ascii_uppercase()) {
                None => out
                    .bytes
                    .extend_from_slice(b"+OK Supported mechanisms follow\r\nPLAIN\r\n.\r\n"),
                Some(m) if m == "PLAIN" => match args.get(1) {
                    Some(ir) => self.auth_plain(ir, out).await,
                    None => {
                        self.state = State::AuthPlain;
                        out.bytes.extend_from_slice(b"+ \r\n");
                    }
                },
                Some(_) => self.reply_err(out, "-ERR Unsupported authentication mechanism\r\n"),
            },
            "APOP" => self.reply_err(out, "-ERR APOP not supported\r\n"),
            "STAT" | "LIST" | "RETR" | "DELE" | "NOOP" | "RSET" | "TOP" | "UIDL" => {
                self.reply_err(out, "-ERR Command not valid in this state\r\n")
            }
            _ => self.reply_err(out, "-ERR Unknown command\r\n"),
        }
    }

    /// RFC 4616 PLAIN: [authzid] NUL authcid NUL passwd, base64 ("=" is an empty response).
    async fn auth_plain(&mut self, response: &str, out: &mut Output) {
        // No proxy authorisation: an authzid, if given, must name the same user (net::sasl).
        let creds = match net::sasl::decode_response(response) {
            Ok(raw) => net::sasl::parse_plain(&raw),
            Err(_) => return self.reply_err(out, "-ERR Invalid base64\r\n"),
        };
        match creds {
            Ok(c) => self.login("PLAIN", &c.authcid, &c.password, out).await,
            Err(_) => self.reply_err(out, AUTH_FAILED),
        }
    }

    async fn login(&mut self, mechanism: &str, user: &str, password: &str, out: &mut Output) {
        let (account, address) = match self
            .backend
            .authenticate(self.info.peer, user, password)
            .await
        {
            AuthOutcome::Ok(a, address) => (a, address),
            // RFC 3206 §4: AUTH, the same text for an unknown user and a wrong password (and for
            // a refusal without a password check: no oracle).
            AuthOutcome::Failed => return self.reply_err(out, AUTH_FAILED),
            // RFC 3206 §4: SYS/TEMP, a temporary problem: the client should not ask for another
            // password. Only a client whose right password was checked from an address it logged
            // in from before gets it (see docs/config.md).
            AuthOutcome::Held { retry_after } => {
                out.bytes.extend_from_slice(
                    format!(
                        "-ERR [SYS/TEMP] Too many failed logins from your address; try again in {} minutes\r\n",
                        net::throttle::minutes_left(retry_after)
                    )
                    .as_bytes(),
                );
                return;
            }
            AuthOutcome::Unavailable => {
                out.bytes.extend_from_slice(TEMP_FAILURE.as_bytes());
                return;
            }
        };
        // RFC 1939 §8 and RFC 2449 §8.1.1: one session per maildrop; IN-USE for the others.
        let Some(lock) = self.backend.locks().try_lock(account) else {
            out.bytes
                .extend_from_slice(b"-ERR [IN-USE] Maildrop already in use by another session\r\n");
            return;
        };
        // RFC 2449 §6.5 and §8.1.2: a login sooner than LOGIN-DELAY after the previous one is
        // refused. Only logins that got the maildrop count (not IN-USE ones).
        if let Some(delay) = self.cfg.login_delay
            && let Err(wait) =
                self.backend
                    .login_times()
                    .try_login(account, delay, std::time::Instant::now())
        {
            out.bytes.extend_from_slice(
                format!(
                    "-ERR [LOGIN-DELAY] Logged in too recently; wait {} more seconds\r\n",
                    wait.as_secs().max(1)
                )
                .as_bytes(),
            );
            return;
        }
        let store = self.backend.store().clone();
        let mailbox = match store.mailbox_get(account, "INBOX").await {
            Ok(m) => m,
            Err(e) => return out.bytes.extend_from_slice(log_store(&e).as_bytes()),
        };
        let (msgs, uidvalidity, mailbox) = match mailbox {
            Some(mb) => match store.messages(mb.id, 1..=u32::MAX).await {
                Ok(list) => (list, mb.uidvalidity, Some(mb.id)),
                Err(e) => return out.bytes.extend_from_slice(log_store(&e).as_bytes()),
            },
            None => (Vec::new(), 0, None),
        };
        let drop = Maildrop {
            mailbox,
            uidvalidity,
            msgs: msgs
                .into_iter()
                .map(|m| Msg {
                    uid: m.uid,
                    size: m.size,
                    blob: m.blob,
                    deleted: false,
                    retrieved: false,
                })
                .collect(),
            _lock: lock,
        };
        let (n, size) = drop.stat();
        net::throttle::login_success("pop3", &address, self.info.peer, self.info.tls, mechanism);
        self.state = State::Transaction(Box::new(drop));
        out.bytes.extend_from_slice(
            format!("+OK Maildrop locked and ready, {n} messages ({size} octets)\r\n").as_bytes(),
        );
    }

    async fn transaction(&mut self, verb: &str, args: &[&str], out: &mut Output) {
        let State::Transaction(md) = &mut self.state else {
            return;
        };
        let reply: Result<Vec<u8>, &'static str> = match (verb, args) {
            ("STAT", []) => {
                let (n, s) = md.stat();
                Ok(format!("+OK {n} {s}\r\n").into_bytes())
            }
            ("LIST", []) => {
                let (n, s) = md.stat();
                let mut r = format!("+OK {n} messages ({s} octets)\r\n");
                for (i, m) in md.live() {
                    r.push_str(&format!("{i} {}\r\n", m.size));
                }
                r.push_str(".\r\n");
                Ok(r.into_bytes())
            }
            ("LIST", [n]) => md
                .get(n)
                .map(|i| format!("+OK {} {}\r\n", i + 1, md.msgs[i].size).into_bytes()),
            ("UIDL", []) => {
                let mut r = String::from("+OK Unique-ID listing follows\r\n");
                for (i, m) in md.live() {
                    r.push_str(&format!("{i} {}.{}\r\n", md.uidvalidity, m.uid));
                }
                r.push_str(".\r\n");
                Ok(r.into_bytes())
            }
            ("UIDL", [n]) => md.get(n).map(|i| {
                format!("+OK {} {}.{}\r\n", i + 1, md.uidvalidity, md.msgs[i].uid).into_bytes()
            }),
            ("DELE", [n]) => md.get(n).map(|i| {
                md.msgs[i].deleted = true;
                format!("+OK Message {} deleted\r\n", i + 1).into_bytes()
            }),
            ("RSET", []) => {
                for m in &mut md.msgs {
                    m.deleted = false;
                }
                let (n, s) = md.stat();
                Ok(format!("+OK Maildrop has {n} messages ({s} octets)\r\n").into_bytes())
            }
            ("RETR", [n]) => match md.get(n) {
                Ok(i) => {
                    let m = &mut md.msgs[i];
                    match self.backend.store().blob_read(m.blob, None).await {
                        Ok(raw) => {
                            m.retrieved = true;
                            // Straight into the output: one copy of the message, no second buffer.
                            out.bytes.reserve(raw.len() + 32);
                            out.bytes
                                .extend_from_slice(format!("+OK {} octets\r\n", m.size).as_bytes());
                            push_stuffed(&mut out.bytes, &raw);
                            Ok(Vec::new())
                        }
                        Err(e) => Err(log_store(&e)),
                    }
                }
                Err(e) => Err(e),
            },
            ("TOP", [n, lines]) => match (md.get(n), lines.parse::<usize>()) {
                (Ok(i), Ok(lines)) => {
                    match self.backend.store().blob_read(md.msgs[i].blob, None).await {
                        Ok(raw) => {
                            let mut r = b"+OK Top of message follows\r\n".to_vec();
                            push_stuffed(&mut r, top(&raw, lines));
                            Ok(r)
                        }
                        Err(e) => Err(log_store(&e)),
                    }
                }
                (Err(e), _) => Err(e),
                (_, Err(_)) => Err("-ERR Invalid line count\r\n"),
            },
            ("STAT" | "LIST" | "UIDL" | "DELE" | "RSET" | "RETR" | "TOP", _) => {
                Err("-ERR Wrong number of arguments\r\n")
            }
            ("USER" | "PASS" | "AUTH" | "APOP" | "STLS", _) => {
                Err("-ERR Command not valid in this state\r\n")
            }
            _ => Err("-ERR Unknown command\r\n"),
        };
        match reply {
            Ok(bytes) => out.bytes.extend_from_slice(&bytes),
            Err(e) => self.reply_err(out, e),
        }
    }

    /// RFC 1939 §6: QUIT from TRANSACTION enters UPDATE and removes the marked messages, in one
    /// store call; QUIT from AUTHORIZATION just closes.
    async fn quit(&mut self, out: &mut Output) {
        let state = std::mem::replace(&mut self.state, State::Closed);
        if let State::Transaction(md) = state {
            // RFC 2449 §6.7: with EXPIRE 0 mail may not stay on the server once retrieved.
            let expire_now = self.cfg.expire == Expire::Days(0);
            let uids: Vec<Uid> = md
                .msgs
                .iter()
                .filter(|m| m.deleted || (expire_now && m.retrieved))
                .map(|m| m.uid)
                .collect();
            let left = md.msgs.len() - uids.len();
            if let (Some(mb), false) = (md.mailbox, uids.is_empty())
                && let Err(e) = self
                    .backend
                    .store()
                    .expunge(mb, ExpungeFilter::Uids(uids))
                    .await
            {
                tracing::warn!(error = %e, "pop3: expunge at QUIT failed");
                out.bytes
                    .extend_from_slice(b"-ERR [SYS/TEMP] Some deleted messages not removed\r\n");
                return self.close(out);
            }
            out.bytes.extend_from_slice(
                format!("+OK Facteur POP3 signing off ({left} messages left)\r\n").as_bytes(),
            );
        } else {
            out.bytes
                .extend_from_slice(b"+OK Facteur POP3 signing off\r\n");
        }
        self.close(out);
    }
}

/// A DEBUG line when a session ends, with its counts (bad commands are counted, not logged).
impl<B: Backend> Drop for Session<B> {
    fn drop(&mut self) {
        tracing::debug!(
            peer = self.info.peer.map(tracing::field::display),
            commands = self.commands,
            errors = self.errors,
            "pop3 session end"
        );
    }
}
