//! The SMTP/LMTP session state machine: bytes in, replies and events out. It holds no socket; the
//! driver in `server.rs` reads and writes, performs STARTTLS and closes when told. Storage and users
//! are reached through [`Backend`].

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use net::stream::TlsInfo;

use crate::backend::{AuthOutcome, AuthUser, Backend, Envelope, Mode, Recipient};
use crate::command::{self, Command};
use crate::config::{BareNewline, SmtpConfig};
use crate::data::{ChunkChecker, DataError, DataReader};
use crate::pipeline::{CheckError, CheckState, ConnInfo};
use crate::reply::{self, Reply};
use crate::spool::{MessageData, Spool, SpoolError};

/// Longest SASL response line accepted (base64 of user and password).
const MAX_AUTH_LINE: usize = 12 * 1024;

/// Facts about the connection, set by the driver.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub mode: Mode,
    pub peer: Option<IpAddr>,
    pub tls: Option<TlsInfo>,
    /// STARTTLS can be offered (a TLS acceptor exists and the connection is plaintext TCP).
    pub starttls: bool,
}

/// What the driver must do after writing the replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Perform the TLS handshake now; pipelined plaintext has been discarded.
    StartTls,
    Close,
}

#[derive(Debug, Default)]
pub struct Output {
    pub reply: Vec<u8>,
    pub event: Option<Event>,
}

enum State {
    Command,
    Data(Box<DataReader>),
    Bdat { remaining: u64, last: bool },
    AuthPlain,
    AuthLoginUser,
    AuthLoginPass(String),
    Closed,
}

#[derive(Debug, Default)]
struct Transaction {
    from: Option<String>,
    smtputf8: bool,
    body_8bit: bool,
    ret: Option<String>,
    envid: Option<String>,
    recipients: Vec<Recipient>,
    /// What the inbound check stages said so far.
    checks: CheckState,
    /// The message being received (DATA or BDAT).
    spool: Option<Spool>,
    /// BDAT: octets announced so far, the line-ending check, and whether a chunk failed (the
    /// rest is read and discarded).
    bdat_len: u64,
    checker: Option<ChunkChecker>,
    chunk_error: Option<Reply>,
    chunking: bool,
    /// RCPT commands refused because the transaction already had `max_recipients`.
    overshoot: usize,
}

pub struct Session<B: Backend> {
    cfg: Arc<SmtpConfig>,
    backend: Arc<B>,
    info: SessionInfo,
    state: State,
    buf: Vec<u8>,
    /// After a too-long line: input is dropped up to the next LF.
    discarding: bool,
    helo: Option<String>,
    esmtp: bool,
    auth: Option<AuthUser>,
    tx: Option<Transaction>,
    errors: u32,
    /// NOOP, RSET, VRFY, EXPN and HELP since the last accepted message (see [`Session::junk`]).
    junk: u32,
    data_started: Option<std::time::Instant>,
    /// Command lines read (SASL responses included), for the summary at the end of the session.
    commands: u64,
    /// The command line being answered, made safe to log (see `note_command`).
    last_command: String,
    /// Refusals: the first few are logged, the rest counted for the summary (see `Drop`).
    refusals: net::log::RefusalLog,
    /// Outcome of the connection and HELO check stages, run at the first MAIL after EHLO.
    conn_checks: Option<Result<CheckState, CheckError>>,
}

impl<B: Backend> Session<B> {
    pub fn new(cfg: Arc<SmtpConfig>, backend: Arc<B>, info: SessionInfo) -> Session<B> {
        tracing::debug!(
            service = info.mode.name(),
            peer = info.peer.map(tracing::field::display),
            tls = info.tls.is_some(),
            "smtp session start"
        );
        Session {
            cfg,
            backend,
            info,
            state: State::Command,
            buf: Vec::new(),
            discarding: false,
            helo: None,
            esmtp: false,
            auth: None,
            tx: None,
            errors: 0,
            junk: 0,
            data_started: None,
            commands: 0,
            last_command: String::new(),
            refusals: net::log::RefusalLog::default(),
            conn_checks: None,
        }
    }

    pub fn greeting(&self) -> Vec<u8> {
        let service = if self.info.mode == Mode::Lmtp {
            "LMTP"
        } else {
            "ESMTP"
        };
        Reply::new(
            220,
            "",
            format!("{} {service} Facteur ready", self.cfg.hostname),
        )
        .to_bytes()
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// True while message data is being received (the driver applies the data timeout and rate).
    pub fn in_data(&self) -> bool {
        matches!(self.state, State::Data(_) | State::Bdat { .. })
    }

    /// Part of a command (or AUTH response) line is buffered, its end not yet received: the
    /// driver's per-line deadline runs from its first byte.
    pub fn in_command_line(&self) -> bool {
        matches!(
            self.state,
            State::Command | State::AuthPlain | State::AuthLoginUser | State::AuthLoginPass(_)
        ) && (!self.buf.is_empty() || self.discarding)
    }

    /// Bytes of the current DATA received and when it started, for the minimum data rate.
    pub fn data_progress(&self) -> Option<(u64, std::time::Instant)> {
        match (&self.state, self.data_started) {
            (State::Data(r), Some(t)) => Some((r.received(), t)),
            _ => None,
        }
    }

    /// The driver's read timed out: say why and close.
    pub fn timeout(&mut self) -> Vec<u8> {
        self.state = State::Closed;
        self.log_reply(&reply::timeout());
        reply::timeout().to_bytes()
    }

    /// The TLS handshake after STARTTLS succeeded: RFC 3207 §4.2, forget everything learned before.
    pub fn tls_started(&mut self, tls: TlsInfo) {
        self.info.tls = Some(tls);
        self.info.starttls = false;
        self.helo = None;
        self.esmtp = false;
        self.auth = None;
        self.tx = None;
        self.conn_checks = None;
        self.buf.clear();
        self.state = State::Command;
    }

    /// Logs a reply: a refusal at INFO while the session's budget lasts (a client decides how
    /// many it gets, so the rest are only counted, see `Drop`), everything else at DEBUG.
    fn log_reply(&mut self, r: &Reply) {
        // Multi-line replies (EHLO) are traced by their first line.
        let text = r.text.lines().next().unwrap_or_default();
        if r.code >= 400 && self.refusals.record(&r.code.to_string()) {
            tracing::info!(
                service = self.info.mode.name(),
                peer = self.info.peer.map(tracing::field::display),
                command = (!self.last_command.is_empty())
                    .then_some(tracing::field::display(&self.last_command)),
                code = r.code,
                enhanced = r.enhanced,
                text,
                "refused"
            );
        } else {
            tracing::debug!(
                service = self.info.mode.name(),
                peer = self.info.peer.map(tracing::field::display),
                code = r.code,
                enhanced = r.enhanced,
                text,
                "smtp reply"
            );
        }
    }

    fn push(&mut self, out: &mut Output, r: Reply) {
        self.log_reply(&r);
        r.write_to(&mut out.reply);
    }

    fn error(&mut self, out: &mut Output, r: Reply) {
        self.errors += 1;
        self.push(out, r);
        if self.errors >= self.cfg.max_errors {
            tracing::info!(
                service = self.info.mode.name(),
                peer = self.info.peer.map(tracing::field::display),
                errors = self.errors,
                "too many bad commands, closing the connection"
            );
            self.push(out, reply::too_many_errors());
            self.close(out);
        }
    }

    /// Answers a command that moves no mail (NOOP, RSET, VRFY, EXPN, HELP). A client that sends
    /// more than `max_junk_commands` of them without a message being accepted is holding a
    /// connection slot, not sending mail (a NOOP every 299 s would keep a session forever under
    /// the per-command timeout): each further one counts as a bad command, so the session ends at
    /// `max_errors`. Postfix's `smtpd_junk_command_limit` does the same.
    fn junk(&mut self, out: &mut Output, r: Reply) {
        self.junk = self.junk.saturating_add(1);
        if self.junk > self.cfg.max_junk_commands {
            self.error(out, r)
        } else {
            self.push(out, r)
        }
    }

    /// Notes the command line being run, for the DEBUG protocol trace and for the log line of a
    /// refusal, without secrets: SASL responses and the initial response of AUTH are replaced
    /// (they carry the password).
    fn note_command(&mut self, line: &str, sasl_response: bool) {
        self.commands += 1;
        self.last_command = if sasl_response {
            "<SASL response redacted>".to_string()
        } else {
            let mut words = line.splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some(verb), Some(mech), Some(_)) if verb.eq_ignore_ascii_case("AUTH") => {
                    let p = |w: &str| net::log::printable(w.as_bytes(), net::log::MAX_TRACE_TEXT);
                    format!("{} {} <initial response redacted>", p(verb), p(mech))
                }
                _ => net::log::printable(line.as_bytes(), net::log::MAX_TRACE_TEXT),
            }
        };
        tracing::debug!(
            service = self.info.mode.name(),
            peer = self.info.peer.map(tracing::field::display),
            command = %self.last_command,
            "smtp command"
        );
    }

    fn close(&mut self, out: &mut Output) {
        self.state = State::Closed;
        self.buf.clear();
        out.event = Some(Event::Close);
    }

    /// RFC 2920 §3.1: after a command that must end a pipelined group, nothing may be waiting.
    fn sync_point(&mut self, out: &mut Output) -> bool {
        if self.buf.is_empty() {
            return true;
        }
        self.push(
            out,
            Reply::new(
                554,
                "5.5.0",
                "SMTP synchronization error: do not pipeline past this command",
            ),
        );
        self.close(out);
        false
    }

    /// Processes received bytes.
    pub async fn feed(&mut self, input: &[u8]) -> Output {
        let mut out = Output::default();
        self.buf.extend_from_slice(input);
        loop {
            if out.event.is_some() {
                break;
            }
            match &mut self.state {
                State::Closed => {
                    self.buf.clear();
                    break;
                }
                State::Data(reader) => {
                    let Some(spool) = self.tx.as_mut().and_then(|t| t.spool.as_mut()) else {
                        self.state = State::Command;
                        continue;
                    };
                    let (used, done) = reader.feed(&self.buf, spool.buffer());
                    self.buf.drain(..used);
                    if reader.failed() {
                        spool.discard();
                    } else {
                        spool.settle().await;
                    }
                    if !done {
                        break;
                    }
                    let State::Data(reader) = std::mem::replace(&mut self.state, State::Command)
                    else {
                        break;
                    };
                    self.data_started = None;
                    let result = reader.finish();
                    self.end_of_message(&mut out, result).await;
                }
                State::Bdat { remaining, last } => {
                    let take = (*remaining).min(self.buf.len() as u64) as usize;
                    *remaining -= take as u64;
                    let (done, last) = (*remaining == 0, *last);
                    let chunk: Vec<u8> = self.buf.drain(..take).collect();
                    self.bdat_bytes(&chunk).await;
                    if !done {
                        break;
                    }
                    self.state = State::Command;
                    self.end_of_chunk(&mut out, last).await;
                }
                State::Command
                | State::AuthPlain
                | State::AuthLoginUser
                | State::AuthLoginPass(_) => {
                    let limit = if matches!(self.state, State::Command) {
                        self.cfg.line_length
                    } else {
                        MAX_AUTH_LINE
                    };
                    let Some(pos) = self.buf.iter().position(|&b| b == b'\n') else {
                        if self.discarding {
                            // Still inside the overlong line already answered: one reply per line.
                            self.buf.clear();
                        } else if self.buf.len() > limit {
                            self.buf.clear();
                            self.last_command.clear();
                            self.discarding = true;
                            self.state = State::Command;
                            self.error(&mut out, reply::line_too_long());
                        }
                        break;
                    };
                    let raw: Vec<u8> = self.buf.drain(..=pos).collect();
                    if std::mem::take(&mut self.discarding) {
                        continue;
                    }
                    self.line(&mut out, raw, limit).await;
                }
            }
        }
        out
    }

    async fn line(&mut self, out: &mut Output, raw: Vec<u8>, limit: usize) {
        // Refusals of a line that is not even read as a command name none.
        self.last_command.clear();
        let mut line = &raw[..raw.len() - 1];
        match line.last() {
            Some(b'\r') => line = &line[..line.len() - 1],
            _ if self.cfg.bare_newline == BareNewline::Reject => {
                self.state = State::Command;
                return self.error(out, reply::bare_newline());
            }
            _ => {}
        }
        if line.contains(&b'\r') {
            self.state = State::Command;
            return self.error(out, reply::bare_newline());
        }
        if line.len() + 2 > limit {
            self.state = State::Command;
            return self.error(out, reply::line_too_long());
        }
        let Ok(text) = std::str::from_utf8(line) else {
            self.state = State::Command;
            return self.error(out, Reply::new(500, "5.5.2", "Invalid UTF-8 in command"));
        };
        let text = text.to_string();
        self.note_command(&text, !matches!(self.state, State::Command));
        match std::mem::replace(&mut self.state, State::Command) {
            State::AuthPlain => self.auth_plain(out, &text).await,
            State::AuthLoginUser => {
                if text == "*" {
                    return self.error(out, Reply::new(501, "5.0.0", "Authentication cancelled"));
                }
                match decode_b64(&text) {
                    Some(user) => {
                        self.state = State::AuthLoginPass(user);
                        self.push(out, Reply::new(334, "", "UGFzc3dvcmQ6"));
                    }
                    None => self.error(out, Reply::new(501, "5.5.2", "Invalid base64")),
                }
            }
            State::AuthLoginPass(user) => {
                if text == "*" {
                    return self.error(out, Reply::new(501, "5.0.0", "Authentication cancelled"));
                }
                match decode_b64(&text) {
                    Some(pass) => self.verify(out, "LOGIN", &user, &pass).await,
                    None => self.error(out, Reply::new(501, "5.5.2", "Invalid base64")),
                }
            }
            _ => self.command(out, &text).await,
        }
    }

    async fn command(&mut self, out: &mut Output, line: &str) {
        let utf8 = self.tx.as_ref().is_some_and(|t| t.smtputf8);
        let cmd = match command::parse(line, utf8) {
            Ok(c) => c,
            Err(r) => return self.error(out, r),
        };
        let lmtp = self.info.mode == Mode::Lmtp;
        match cmd {
            Command::Helo(h) | Command::Ehlo(h) if lmtp => {
                let _ = h;
                self.error(out, Reply::new(500, "5.5.1", "This is LMTP: use LHLO"))
            }
            Command::Lhlo(_) if !lmtp => self.error(out, reply::unknown_command()),
            Command::Helo(h) => {
                self.reset(Some(h), false);
                let r = Reply::new(250, "", self.cfg.hostname.clone());
                self.push(out, r);
                self.sync_point(out);
            }
            Command::Ehlo(h) | Command::Lhlo(h) => {
                self.reset(Some(h), true);
                let r = self.ehlo_reply();
                self.push(out, r);
                self.sync_point(out);
            }
            Command::Mail { from, params } => self.mail(out, from, params).await,
            Command::Rcpt { to, params } => self.rcpt(out, to, params).await,
            Command::Data => self.data(out),
            Command::Bdat { size, last } => self.bdat(out, size, last).await,
            Command::Rset => {
                self.tx = None;
                self.junk(out, reply::ok("OK"));
            }
            Command::Noop => self.junk(out, reply::ok("OK")),
            Command::Quit => {
                self.push(out, Reply::new(221, "2.0.0", "Bye"));
                self.close(out);
            }
            // RFC 5321 §3.5.3 and §7.3: VRFY may answer 252 rather than disclose accounts.
            Command::Vrfy(_) => self.junk(
                out,
                Reply::new(
                    252,
                    "2.5.0",
                    "Cannot VRFY user, but will accept message and attempt delivery",
                ),
            ),
            Command::Expn(_) => self.junk(out, Reply::new(502, "5.5.1", "EXPN not available")),
            Command::Help => self.junk(
                out,
                Reply::new(
                    214,
                    "2.0.0",
                    "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY STARTTLS AUTH",
                ),
            ),
            Command::StartTls => self.starttls(out),
            Command::Auth { mechanism, initial } => self.auth(out, &mechanism, initial).await,
        }
    }

    fn reset(&mut self, helo: Option<String>, esmtp: bool) {
        self.helo = helo;
        self.esmtp = esmtp;
        self.tx = None;
        self.conn_checks = None;
    }

    /// Runs the connection and HELO stages once, then the sender stage, into `tx.checks`.
    async fn sender_checks(&mut self, tx: &mut Transaction) -> Result<(), CheckError> {
        let backend = self.backend.clone();
        let Some(pipeline) = backend.pipeline() else {
            return Ok(());
        };
        let (tls, auth, helo) = (self.info.tls.clone(), self.auth.clone(), self.helo.clone());
        let conn = ConnInfo {
            mode: self.info.mode,
            peer: self.info.peer,
            tls: tls.as_ref(),
            auth: auth.as_ref(),
            helo: helo.as_deref().unwrap_or(""),
        };
        if self.conn_checks.is_none() {
            let mut state = CheckState::default();
            let r = pipeline.connection(&conn, &mut state).await.map(|()| state);
            self.conn_checks = Some(r);
        }
        match &self.conn_checks {
            Some(Ok(state)) => tx.checks = state.clone(),
            Some(Err(e)) => return Err(e.clone()),
            None => {}
        }
        let from = tx.from.clone().unwrap_or_default();
        pipeline.sender(&conn, &from, &mut tx.checks).await
    }

    /// The recipient stage for one accepted recipient.
    async fn recipient_checks(&mut self, rcpt: &Recipient) -> Result<(), CheckError> {
        let backend = self.backend.clone();
        let Some(pipeline) = backend.pipeline() else {
            return Ok(());
        };
        let Some(tx) = self.tx.as_mut() else {
            return Ok(());
        };
        let conn = ConnInfo {
            mode: self.info.mode,
            peer: self.info.peer,
            tls: self.info.tls.as_ref(),
            auth: self.auth.as_ref(),
            helo: self.helo.as_deref().unwrap_or(""),
        };
        let from = tx.from.clone().unwrap_or_default();
        pipeline.recipient(&conn, &from, rcpt, &mut tx.checks).await
    }

    fn ehlo_reply(&self) -> Reply {
        let mut lines = vec![format!(
            "{} Hello {}",
            self.cfg.hostname,
            self.helo.as_deref().unwrap_or("")
        )];
        lines.push("PIPELINING".into());
        lines.push(format!("SIZE {}", self.cfg.max_message_size));
        lines.push("8BITMIME".into());
        lines.push("SMTPUTF8".into());
        lines.push("ENHANCEDSTATUSCODES".into());
        lines.push("CHUNKING".into());
        if self.info.mode != Mode::Lmtp {
            lines.push("DSN".into());
        }
        if self.info.starttls && self.info.tls.is_none() {
            lines.push("STARTTLS".into());
        }
        // RFC 4954 §4 / RFC 6409: AUTH only on submission and only once the connection is encrypted,
        // so a password never crosses the network in the clear.
        if self.info.mode == Mode::Submission && self.info.tls.is_some() && self.auth.is_none() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        Reply::new(250, "", lines.join("\n"))
    }

    async fn mail(
        &mut self,
        out: &mut Output,
        from: Option<command::Mailbox>,
        params: Vec<(String, Option<String>)>,
    ) {
        if self.helo.is_none() {
            return self.error(out, reply::bad_sequence("Send EHLO/HELO first"));
        }
        if self.tx.is_some() {
            return self.error(out, reply::bad_sequence("Nested MAIL command"));
        }
        if self.info.mode == Mode::Submission && self.auth.is_none() {
            return self.error(out, Reply::new(530, "5.7.0", "Authentication required"));
        }
        let mut tx = Transaction::default();
        for (k, v) in params {
            if !self.esmtp {
                return self.error(out, Reply::new(555, "5.5.4", "Parameters need EHLO"));
            }
            match (k.as_str(), v) {
                ("SIZE", Some(v)) => match v.parse::<u64>() {
                    // RFC 1870 §6: refuse at MAIL when the declared size is over the limit.
                    Ok(n) if n > self.cfg.max_message_size => {
                        return self.error(out, reply::too_big());
                    }
                    Ok(_) => {}
                    Err(_) => return self.error(out, Reply::new(501, "5.5.4", "Bad SIZE value")),
                },
                ("BODY", Some(v)) if v.eq_ignore_ascii_case("7BIT") => {}
                ("BODY", Some(v)) if v.eq_ignore_ascii_case("8BITMIME") => tx.body_8bit = true,
                ("SMTPUTF8", None) => tx.smtputf8 = true,
                ("RET", Some(v))
                    if (v.eq_ignore_ascii_case("FULL") || v.eq_ignore_ascii_case("HDRS"))
                        && self.info.mode != Mode::Lmtp =>
                {
                    tx.ret = Some(v.to_ascii_uppercase())
                }
                ("ENVID", Some(v)) if self.info.mode != Mode::Lmtp => {
                    match command::decode_xtext(&v) {
                        Some(_) if v.len() <= 100 => tx.envid = Some(v),
                        _ => return self.error(out, Reply::new(501, "5.5.4", "Bad ENVID value")),
                    }
                }
                // RFC 4954 §5: AUTH= on MAIL is accepted and not trusted.
                ("AUTH", Some(_)) => {}
                _ => {
                    return self.error(out, Reply::new(555, "5.5.4", "Unsupported MAIL parameter"));
                }
            }
        }
        let from = from.map(|m| m.address());
        if let Err(r) = self
            .backend
            .check_sender(self.auth.as_ref(), from.as_deref(), self.info.mode)
            .await
        {
            return self.error(out, r);
        }
        tx.from = from;
        if let Err(e) = self.sender_checks(&mut tx).await {
            return self.error(out, e.reply);
        }
        self.tx = Some(tx);
        self.push(out, Reply::new(250, "2.1.0", "Sender OK"));
    }

    async fn rcpt(
        &mut self,
        out: &mut Output,
        to: command::Mailbox,
        params: Vec<(String, Option<String>)>,
    ) {
        let Some(count) = self.tx.as_ref().map(|t| t.recipients.len()) else {
            return self.error(out, reply::bad_sequence("Need MAIL before RCPT"));
        };
        if count >= self.cfg.max_recipients {
            // RFC 5321 §4.5.3.1.10: 452 so the client sends the rest in another transaction. A
            // client may overshoot by as many again in one pipelined group (Postfix's
            // smtpd_recipient_overshoot_limit); past that each one is a bad command, so a flood
            // of RCPTs ends at max_bad_commands instead of running on.
            let overshoot = self.tx.as_mut().map_or(0, |t| {
                t.overshoot += 1;
                t.overshoot
            });
            let r = Reply::new(452, "4.5.3", "Too many recipients");
            return if overshoot > self.cfg.max_recipients {
                self.error(out, r)
            } else {
                self.push(out, r)
            };
        }
        let mut rcpt = Recipient::default();
        for (k, v) in params {
            if !self.esmtp {
                return self.error(out, Reply::new(555, "5.5.4", "Parameters need EHLO"));
            }
            match (k.as_str(), v) {
                ("NOTIFY", Some(v)) if valid_notify(&v) && self.info.mode != Mode::Lmtp => {
                    rcpt.notify = Some(v.to_ascii_uppercase())
                }
                ("ORCPT", Some(v)) if self.info.mode != Mode::Lmtp => match v.split_once(';') {
                    Some((kind, addr))
                        if !kind.is_empty()
                            && command::decode_xtext(addr).is_some()
                            && v.len() <= 500 =>
                    {
                        rcpt.orcpt = Some(v)
                    }
                    _ => return self.error(out, Reply::new(501, "5.5.4", "Bad ORCPT value")),
                },
                _ => {
                    return self.error(out, Reply::new(555, "5.5.4", "Unsupported RCPT parameter"));
                }
            }
        }
        let domain = if to.domain.is_empty() {
            self.cfg.primary_domain.clone()
        } else {
            to.domain.clone()
        };
        let target = match self
            .backend
            .check_recipient(
                self.info.mode,
                self.auth.as_ref(),
                &to.local,
                &domain,
                to.literal,
            )
            .await
        {
            Ok(t) => t,
            Err(r) => return self.error(out, r),
        };
        rcpt.address = format!("{}@{}", to.local, domain);
        rcpt.target = target;
        if let Err(e) = self.recipient_checks(&rcpt).await {
            return self.error(out, e.reply);
        }
        if let Some(tx) = self.tx.as_mut() {
            tx.recipients.push(rcpt);
        }
        self.push(out, Reply::new(250, "2.1.5", "Recipient OK"));
    }

    fn data(&mut self, out: &mut Output) {
        match &self.tx {
            None => return self.error(out, reply::bad_sequence("Need MAIL before DATA")),
            Some(t) if t.chunking => {
                return self.error(out, reply::bad_sequence("DATA not allowed after BDAT"));
            }
            // RFC 2920 §3.1: DATA with no accepted recipient gets 554.
            Some(t) if t.recipients.is_empty() => {
                return self.error(out, Reply::new(554, "5.5.1", "No valid recipients"));
            }
            Some(_) => {}
        }
        if !self.sync_point(out) {
            return;
        }
        self.push(out, Reply::new(354, "", "End data with <CR><LF>.<CR><LF>"));
        self.data_started = Some(std::time::Instant::now());
        if let Some(tx) = self.tx.as_mut() {
            tx.spool = Some(Spool::new(self.cfg.spool.clone()));
        }
        self.state = State::Data(Box::new(DataReader::new(
            self.cfg.max_message_size,
            self.cfg.text_line_length,
            self.cfg.bare_newline,
        )));
    }

    async fn bdat(&mut self, out: &mut Output, size: u64, last: bool) {
        // RFC 3030 §2: the chunk's octets follow whatever the reply, so they are always read.
        let problem = match &self.tx {
            None => Some(reply::bad_sequence("Need MAIL before BDAT")),
            Some(t) if t.recipients.is_empty() => {
                Some(Reply::new(554, "5.5.1", "No valid recipients"))
            }
            _ => None,
        };
        match (problem, self.tx.as_mut()) {
            (Some(r), _) => {
                // No transaction to keep the chunk in: read it into a throwaway transaction state.
                self.errors += 1;
                let mut tx = self.tx.take().unwrap_or_default();
                tx.chunking = true;
                tx.chunk_error = Some(r);
                self.tx = Some(tx);
            }
            (None, Some(tx)) => {
                if !tx.chunking {
                    tx.chunking = true;
                    tx.spool = Some(Spool::new(self.cfg.spool.clone()));
                    tx.checker = Some(ChunkChecker::new(
                        self.cfg.text_line_length,
                        self.cfg.bare_newline,
                    ));
                }
                tx.bdat_len = tx.bdat_len.saturating_add(size);
                if tx.bdat_len > self.cfg.max_message_size && tx.chunk_error.is_none() {
                    tx.chunk_error = Some(reply::too_big());
                    if let Some(s) = tx.spool.as_mut() {
                        s.discard();
                    }
                }
            }
            (None, None) => {}
        }
        self.state = State::Bdat {
            remaining: size,
            last,
        };
        if size == 0 {
            self.state = State::Command;
            self.end_of_chunk(out, last).await;
        }
    }

    async fn bdat_bytes(&mut self, chunk: &[u8]) {
        if let Some(tx) = self.tx.as_mut()
            && tx.chunk_error.is_none()
            && let (Some(spool), Some(checker)) = (tx.spool.as_mut(), tx.checker.as_mut())
        {
            checker.feed(chunk, spool.buffer());
            if checker.failed() {
                // Refused at the last chunk; nothing more needs keeping.
                spool.discard();
            } else {
                spool.settle().await;
            }
        }
    }

    async fn end_of_chunk(&mut self, out: &mut Output, last: bool) {
        let failed = self.tx.as_ref().and_then(|t| t.chunk_error.clone());
        if let Some(r) = failed {
            if last || r.code == 503 || r.code == 554 {
                self.tx = None;
            }
            return self.push(out, r);
        }
        if !last {
            let n = self.tx.as_ref().map(|t| t.bdat_len).unwrap_or(0);
            return self.push(
                out,
                Reply::new(250, "2.0.0", format!("{n} octets received")),
            );
        }
        let result = match self.tx.as_mut() {
            Some(tx) => match (tx.checker.take(), tx.spool.as_mut()) {
                (Some(checker), Some(spool)) => checker.finish(spool.buffer()),
                _ => Ok(()),
            },
            None => Ok(()),
        };
        self.end_of_message(out, result).await;
    }

    async fn end_of_message(&mut self, out: &mut Output, result: Result<(), DataError>) {
        let Some(mut tx) = self.tx.take() else { return };
        let n = tx.recipients.len();
        let refuse = |r: Reply| vec![r; n];
        let result = match (result, tx.spool.take()) {
            (Err(e), _) => Err(Some(e)),
            (Ok(()), None) => Ok(MessageData::from(Vec::new())),
            // Neither memory nor the spool folder could hold it: try again later.
            (Ok(()), Some(spool)) => spool.finish().await.map_err(|_: SpoolError| None),
        };
        let replies = match result {
            Err(None) => refuse(reply::storage_full()),
            Err(Some(e)) => refuse(data_error_reply(e)),
            Ok(msg) => {
                let envelope = Envelope {
                    mode: self.info.mode,
                    peer: self.info.peer,
                    helo: self.helo.clone().unwrap_or_default(),
                    esmtp: self.esmtp,
                    tls: self.info.tls.clone(),
                    auth: self.auth.clone(),
                    from: tx.from.clone().unwrap_or_default(),
                    recipients: tx.recipients.clone(),
                    smtputf8: tx.smtputf8,
                    body_8bit: tx.body_8bit,
                    ret: tx.ret.clone(),
                    envid: tx.envid.clone(),
                    id: crate::id::transaction_id(),
                    checks: std::mem::take(&mut tx.checks),
                };
                let results = self.backend.deliver(&envelope, msg).await;
                results
                    .into_iter()
                    .map(|r| match r {
                        Ok(()) => {
                            self.junk = 0;
                            Reply::new(250, "2.0.0", format!("OK: queued as {}", envelope.id))
                        }
                        Err(r) => r,
                    })
                    .collect()
            }
        };
        // RFC 2033 §4.2: LMTP answers once per accepted recipient, in order.
        if self.info.mode == Mode::Lmtp {
            for r in replies {
                self.push(out, r);
            }
        } else if let Some(r) = replies.into_iter().next() {
            self.push(out, r);
        }
    }

    fn starttls(&mut self, out: &mut Output) {
        if self.info.tls.is_some() {
            return self.error(out, reply::bad_sequence("Already using TLS"));
        }
        if !self.info.starttls {
            return self.error(out, Reply::new(502, "5.5.1", "STARTTLS not available"));
        }
        if self.tx.is_some() {
            return self.error(
                out,
                reply::bad_sequence("STARTTLS not allowed during a mail transaction"),
            );
        }
        if !self.buf.is_empty() {
            // RFC 3207 §5 (command injection): plaintext pipelined after STARTTLS is discarded,
            // never executed inside the TLS session.
            tracing::info!(
                peer = self.info.peer.map(tracing::field::display),
                bytes = self.buf.len(),
                "discarded plaintext pipelined after STARTTLS"
            );
            self.buf.clear();
        }
        self.push(out, Reply::new(220, "2.0.0", "Ready to start TLS"));
        out.event = Some(Event::StartTls);
    }

    async fn auth(&mut self, out: &mut Output, mechanism: &str, initial: Option<String>) {
        if self.info.mode != Mode::Submission {
            return self.error(
                out,
                Reply::new(502, "5.5.1", "AUTH not available on this service"),
            );
        }
        if self.info.tls.is_none() {
            // RFC 4954 §4: no plaintext password before TLS.
            return self.error(
                out,
                Reply::new(
                    538,
                    "5.7.11",
                    "Encryption required for requested authentication mechanism",
                ),
            );
        }
        if self.helo.is_none() {
            // RFC 4954 §4: AUTH follows EHLO (and, after STARTTLS, a new EHLO: RFC 3207 §4.2).
            return self.error(out, reply::bad_sequence("Send EHLO first"));
        }
        if self.auth.is_some() {
            return self.error(out, reply::bad_sequence("Already authenticated"));
        }
        if self.tx.is_some() {
            return self.error(
                out,
                reply::bad_sequence("AUTH not allowed during a mail transaction"),
            );
        }
        if !self.sync_point(out) {
            return;
        }
        match (mechanism, initial) {
            ("PLAIN", Some(resp)) => self.auth_plain(out, &resp).await,
            ("PLAIN", None) => {
                self.state = State::AuthPlain;
                self.push(out, Reply::new(334, "", ""));
            }
            ("LOGIN", Some(user)) => match decode_b64(&user) {
                Some(u) => {
                    self.state = State::AuthLoginPass(u);
                    self.push(out, Reply::new(334, "", "UGFzc3dvcmQ6"));
                }
                None => self.error(out, Reply::new(501, "5.5.2", "Invalid base64")),
            },
            ("LOGIN", None) => {
                self.state = State::AuthLoginUser;
                self.push(out, Reply::new(334, "", "VXNlcm5hbWU6"));
            }
            _ => self.error(
                out,
                Reply::new(504, "5.5.4", "Unrecognized authentication type"),
            ),
        }
    }

    async fn auth_plain(&mut self, out: &mut Output, response: &str) {
        if response == "*" {
            return self.error(out, Reply::new(501, "5.0.0", "Authentication cancelled"));
        }
        // RFC 4616 §2: [authzid] NUL authcid NUL passwd. "=" is an empty initial response.
        let creds = net::sasl::decode_response(response).and_then(|b| net::sasl::parse_plain(&b));
        let (user, pass) = match creds {
            Ok(c) => (c.authcid, c.password),
            Err(net::sasl::PlainError::Base64) => {
                return self.error(out, Reply::new(501, "5.5.2", "Invalid base64"));
            }
            // Acting as another user is not offered.
            Err(net::sasl::PlainError::Authz) => {
                return self.error(
                    out,
                    Reply::new(535, "5.7.8", "Authentication credentials invalid"),
                );
            }
            Err(_) => {
                return self.error(out, Reply::new(501, "5.5.2", "Malformed PLAIN response"));
            }
        };
        self.verify(out, "PLAIN", &user, &pass).await;
    }

    async fn verify(&mut self, out: &mut Output, mechanism: &str, user: &str, pass: &str) {
        match self.backend.authenticate(self.info.peer, user, pass).await {
            AuthOutcome::Ok(u) => {
                net::throttle::login_success(
                    self.info.mode.name(),
                    &u.address,
                    self.info.peer,
                    self.info.tls.is_some(),
                    mechanism,
                );
                self.auth = Some(u);
                self.push(out, Reply::new(235, "2.7.0", "Authentication successful"));
            }
            // A refusal without a password check (a ban) gets this answer too: no oracle.
            AuthOutcome::Failed => self.error(
                out,
                Reply::new(535, "5.7.8", "Authentication credentials invalid"),
            ),
            // RFC 4954 §6: 454 4.7.0 is a temporary authentication failure. Only a client whose
            // right password was checked from an address it logged in from before gets it.
            AuthOutcome::Held { retry_after } => self.push(
                out,
                Reply::new(
                    454,
                    "4.7.0",
                    format!(
                        "Too many failed logins from your address; try again in {} minutes",
                        net::throttle::minutes_left(retry_after)
                    ),
                ),
            ),
            AuthOutcome::Unavailable => self.push(
                out,
                Reply::new(454, "4.7.0", "Temporary authentication failure"),
            ),
        }
    }
}

fn data_error_reply(e: DataError) -> Reply {
    match e {
        DataError::TooBig => reply::too_big(),
        DataError::LineTooLong => {
            Reply::new(550, "5.6.0", "Message has a line longer than 1000 octets")
        }
        DataError::Nul => Reply::new(550, "5.5.2", "NUL character in message data"),
        DataError::BareNewline => Reply::new(
            550,
            "5.5.2",
            "Bare CR or LF in message data; lines must end with CRLF",
        ),
    }
}

fn decode_b64(s: &str) -> Option<String> {
    B64.decode(s.trim().as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
}

/// RFC 3461 §4.1: NEVER, or a comma list of SUCCESS, FAILURE, DELAY.
fn valid_notify(v: &str) -> bool {
    if v.eq_ignore_ascii_case("NEVER") {
        return true;
    }
    !v.is_empty()
        && v.split(',').all(|p| {
            ["SUCCESS", "FAILURE", "DELAY"]
                .iter()
                .any(|k| k.eq_ignore_ascii_case(p))
        })
}

/// One summary line per session that had refusals it did not log one by one (a client that
/// floods refused commands); a DEBUG line for the others.
impl<B: Backend> Drop for Session<B> {
    fn drop(&mut self) {
        if self.refusals.suppressed() > 0 {
            tracing::info!(
                service = self.info.mode.name(),
                peer = self.info.peer.map(tracing::field::display),
                commands = self.commands,
                errors = self.errors,
                refused = self.refusals.total(),
                unlogged = self.refusals.suppressed(),
                by_code = %self.refusals.summary(),
                "smtp session end: refusals summarised"
            );
        } else {
            tracing::debug!(
                service = self.info.mode.name(),
                peer = self.info.peer.map(tracing::field::display),
                commands = self.commands,
                errors = self.errors,
                refused = self.refusals.total(),
                "smtp session end"
            );
        }
    }
}
