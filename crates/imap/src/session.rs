//! The IMAP state machine (RFC 9051 §3): not authenticated → authenticated ⇄ selected → logout.
//! It is fed bytes and returns response bytes plus an event for the driver (start TLS, close); it
//! holds no socket. Command framing (lines and literals) is imap-codec's `Fragmentizer`, decoding
//! its `CommandCodec`; each command family lives in `command/`.

use std::net::IpAddr;
use std::sync::Arc;

use imap_codec::decode::Decoder;
use imap_codec::fragmentizer::{FragmentInfo, Fragmentizer, LiteralAnnouncement};
use imap_codec::imap_types::IntoStatic;
use imap_codec::imap_types::auth::{AuthMechanism, AuthenticateData};
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::LiteralMode;
use imap_codec::imap_types::extensions::enable::CapabilityEnable;
use imap_codec::imap_types::extensions::utf8::Utf8Kind;
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::{AuthenticateDataCodec, CommandCodec, IdleDoneCodec};
use store::{Change, ChangeKind, StoreError};
use tokio::sync::{broadcast, mpsc};

use crate::backend::{AuthOutcome, AuthUser, Backend};
use crate::command::append;
use crate::command::ext::{self, ListArgs, Pre, SearchReturn};
use crate::config::{ImapConfig, PRE_AUTH_MAX_LITERAL};
use crate::selected::{Phrasing, Selected};

/// What the driver must do after writing the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Perform the TLS handshake now (STARTTLS was accepted).
    StartTls,
    /// Compress both directions with DEFLATE from now on (RFC 4978, COMPRESS was accepted).
    Compress,
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
    /// The connection is already TLS (implicit TLS on 993).
    pub tls: bool,
    /// STARTTLS can be offered (plaintext TCP and a certificate is configured).
    pub starttls: bool,
}

/// Extensions the client turned on with ENABLE (RFC 5161) or by use (CONDSTORE).
#[derive(Debug, Clone, Copy, Default)]
pub struct Enabled {
    pub rev2: bool,
    pub condstore: bool,
    pub qresync: bool,
    pub utf8: bool,
}

/// A tagged completion.
pub(crate) struct Tagged {
    pub status: &'static str,
    pub code: Option<String>,
    pub text: String,
}

pub(crate) fn ok(text: impl Into<String>) -> Tagged {
    Tagged {
        status: "OK",
        code: None,
        text: text.into(),
    }
}
pub(crate) fn ok_code(code: impl Into<String>, text: impl Into<String>) -> Tagged {
    Tagged {
        status: "OK",
        code: Some(code.into()),
        text: text.into(),
    }
}
pub(crate) fn no(code: Option<&str>, text: impl Into<String>) -> Tagged {
    Tagged {
        status: "NO",
        code: code.map(str::to_string),
        text: text.into(),
    }
}
pub(crate) fn bad(text: impl Into<String>) -> Tagged {
    Tagged {
        status: "BAD",
        code: None,
        text: text.into(),
    }
}

/// RFC 5530 response code for a store failure; the detail goes to the log only.
pub(crate) fn store_failure(e: &StoreError) -> Tagged {
    match e {
        StoreError::OverQuota { .. } => no(Some("OVERQUOTA"), "Quota exceeded"),
        StoreError::NotFound(_) => no(Some("NONEXISTENT"), "No such mailbox"),
        StoreError::AlreadyExists(_) => no(Some("ALREADYEXISTS"), "Mailbox already exists"),
        // RFC 6154 §3: the special use cannot be assigned to this mailbox.
        StoreError::SpecialUseTaken(_) => no(
            Some("USEATTR"),
            "Another mailbox already has this special use",
        ),
        StoreError::Invalid(why) => no(Some("CANNOT"), why.clone()),
        _ => {
            tracing::warn!(error = %e, "imap: store failure");
            no(Some("UNAVAILABLE"), "Temporary failure, try again later")
        }
    }
}

/// Commands only `command::ext` parses.
enum ExtCommand {
    List(ListArgs),
    Create(Mailbox<'static>, Vec<String>),
}

/// What `command::ext` took out of the command being run.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Extra {
    /// SEARCH RETURN (...) options (RFC 4731, RFC 5182).
    pub search_return: Option<SearchReturn>,
    /// `$` was replaced by `ext::SAVED_RESULT` (RFC 5182).
    pub saved_result: bool,
}

enum Mode {
    Command,
    /// Waiting for the SASL response of AUTHENTICATE PLAIN.
    Authenticate(String),
    /// IDLE in progress (RFC 2177), waiting for DONE.
    Idle(String),
}

pub struct Session<B: Backend> {
    pub(crate) cfg: Arc<ImapConfig>,
    pub(crate) backend: Arc<B>,
    info: SessionInfo,
    pub(crate) frag: Fragmentizer,
    /// Bytes enqueued in the fragmentizer and not yet returned as a fragment.
    unconsumed: usize,
    /// Length of the literal being received, if any (allowed on top of a line).
    literal_expected: usize,
    mode: Mode,
    pub(crate) user: Option<AuthUser>,
    /// This session's place in the per-user session count, from login to the end.
    user_slot: Option<net::limits::UserSessionGuard>,
    pub(crate) selected: Option<Selected>,
    pub(crate) enabled: Enabled,
    pub(crate) extra: Extra,
    changes: Option<broadcast::Receiver<Change>>,
    errors: u32,
    pub(crate) out: Vec<u8>,
    pub(crate) event: Option<Event>,
    /// COMPRESS DEFLATE is active (RFC 4978 §3: only once per connection).
    compressed: bool,
    /// The session ended (BYE sent): further input is ignored.
    closed: bool,
    /// The last `feed` stopped at [`OUTPUT_HIGH_WATER`] with commands still buffered.
    pending: bool,
    /// Where a long answer goes out while it is produced (see [`Session::stream_to`]).
    sink: Option<mpsc::Sender<Vec<u8>>>,
    /// Commands received, for the DEBUG line at the end of the session.
    commands: u64,
}

/// Output gathered by one `feed` before it stops answering pipelined commands, so the driver
/// sends it before more is answered (bounded memory however many commands arrive at once).
pub const OUTPUT_HIGH_WATER: usize = 256 * 1024;

/// Largest command before login, lines and literals together (LOGIN with two literals of
/// [`PRE_AUTH_MAX_LITERAL`] fits many times over).
pub const PRE_AUTH_MAX_COMMAND: usize = 64 * 1024;

/// A flag change the selected view already holds: this session's own STORE, echoed by the feed.
/// Queued, it would only make the next announcement re-read every message it touched.
fn already_known(sel: &Selected, c: &Change) -> bool {
    c.mailbox_id == sel.id()
        && matches!(&c.kind, ChangeKind::Flags(uids)
            if uids.iter().all(|u| sel.known(*u).is_none_or(|k| k.modseq >= c.modseq)))
}

fn new_fragmentizer(cfg: &ImapConfig) -> Fragmentizer {
    Fragmentizer::new(cfg.max_command_size() as u32)
}

impl<B: Backend> Session<B> {
    pub fn new(cfg: Arc<ImapConfig>, backend: Arc<B>, info: SessionInfo) -> Session<B> {
        tracing::debug!(
            peer = info.peer.map(tracing::field::display),
            tls = info.tls,
            "imap session start"
        );
        Session {
            commands: 0,
            closed: false,
            pending: false,
            sink: None,
            frag: new_fragmentizer(&cfg),
            cfg,
            backend,
            info,
            unconsumed: 0,
            literal_expected: 0,
            mode: Mode::Command,
            user: None,
            user_slot: None,
            selected: None,
            enabled: Enabled::default(),
            extra: Extra::default(),
            changes: None,
            errors: 0,
            out: Vec::new(),
            event: None,
            compressed: false,
        }
    }

    pub fn greeting(&self) -> Vec<u8> {
        format!(
            "* OK [CAPABILITY {}] {} Facteur IMAP ready\r\n",
            self.capabilities(),
            self.cfg.hostname
        )
        .into_bytes()
    }

    /// The untagged BYE sent when the driver's inactivity timer fires.
    pub fn timeout(&self) -> Vec<u8> {
        b"* BYE Autologout; idle for too long\r\n".to_vec()
    }

    pub fn authenticated(&self) -> bool {
        self.user.is_some()
    }

    pub fn idling(&self) -> bool {
        matches!(self.mode, Mode::Idle(_))
    }

    /// The TLS handshake after STARTTLS succeeded.
    pub fn tls_started(&mut self) {
        self.info.tls = true;
        self.info.starttls = false;
    }

    pub(crate) fn phrasing(&self) -> Phrasing {
        Phrasing {
            condstore: self.enabled.condstore,
            qresync: self.enabled.qresync,
        }
    }

    /// UTF-8 may be sent in quoted strings (RFC 9051 §4.3; RFC 6855).
    pub(crate) fn utf8(&self) -> bool {
        self.enabled.rev2 || self.enabled.utf8
    }

    pub(crate) fn capabilities(&self) -> String {
        let mut caps = vec!["IMAP4rev2", "IMAP4rev1", "LITERAL+", "ID", "ENABLE"];
        if self.user.is_none() {
            if self.info.tls {
                caps.extend(["AUTH=PLAIN", "SASL-IR"]);
            } else {
                // RFC 9051 §6.2.3 / §11.1: no password over plaintext; TLS first.
                if self.info.starttls {
                    caps.push("STARTTLS");
                }
                caps.push("LOGINDISABLED");
            }
            return caps.join(" ");
        }
        caps.extend([
            "IDLE",
            "NAMESPACE",
            "UIDPLUS",
            "MOVE",
            "UNSELECT",
            "CHILDREN",
            "SPECIAL-USE",
            "LIST-EXTENDED",
            "LIST-STATUS",
            "CONDSTORE",
            "QRESYNC",
            "ESEARCH",
            "SEARCHRES",
            "SORT",
            "SORT=DISPLAY",
            "THREAD=ORDEREDSUBJECT",
            "THREAD=REFERENCES",
            "QUOTA",
            "QUOTA=RES-STORAGE",
            "QUOTA=RES-MESSAGE",
            "STATUS=SIZE",
            "UTF8=ACCEPT",
            "BINARY",
            "MULTIAPPEND",
            "COMPRESS=DEFLATE",
        ]);
        let mut s = caps.join(" ");
        s.push_str(&format!(" APPENDLIMIT={}", self.cfg.max_message_size));
        s
    }

    /// Feeds bytes from the client; returns what to send back.
    pub async fn feed(&mut self, bytes: &[u8]) -> Output {
        // After BYE nothing more is read or answered, even if the driver feeds more.
        if self.closed {
            return Output::default();
        }
        self.frag.enqueue_bytes(bytes);
        self.unconsumed += bytes.len();
        self.pending = false;
        loop {
            if self.event.is_some() {
                break;
            }
            if self.out.len() >= OUTPUT_HIGH_WATER && self.unconsumed > 0 {
                self.pending = true;
                break;
            }
            let Some(info) = self.frag.progress() else {
                if self.unconsumed > self.cfg.line_length + self.literal_expected {
                    self.out
                        .extend_from_slice(b"* BYE Command line too long\r\n");
                    self.event = Some(Event::Close);
                }
                break;
            };
            self.unconsumed = self.unconsumed.saturating_sub(info.range().len());
            match info {
                FragmentInfo::Line {
                    announcement: Some(LiteralAnnouncement { mode, length }),
                    ..
                } => {
                    self.literal_announced(mode, length).await;
                    continue;
                }
                FragmentInfo::Literal { .. } => self.literal_expected = 0,
                FragmentInfo::Line { .. } => {}
            }
            if !self.frag.is_message_complete() {
                continue;
            }
            self.message().await;
        }
        if matches!(self.event, Some(Event::StartTls | Event::Compress)) {
            // RFC 9051 §6.2.1 (and RFC 3207 §5's lesson): plaintext pipelined after STARTTLS is
            // discarded, never executed inside the TLS session. Likewise bytes after COMPRESS:
            // the client must wait for the OK (RFC 4978 §3), and they could not be inflated.
            self.frag = new_fragmentizer(&self.cfg);
            self.unconsumed = 0;
            self.literal_expected = 0;
        }
        if self.event == Some(Event::Close) {
            self.closed = true;
        }
        Output {
            bytes: std::mem::take(&mut self.out),
            event: self.event.take(),
        }
    }

    /// Lets a long answer (FETCH of many messages) go out in pieces of about
    /// [`OUTPUT_HIGH_WATER`] while `feed` is still producing it: the driver writes what arrives
    /// on `tx`'s channel, in order, before `feed`'s own output. Without it, `feed` returns the
    /// whole answer at once.
    pub fn stream_to(&mut self, tx: mpsc::Sender<Vec<u8>>) {
        self.sink = Some(tx);
    }

    /// Hands the output gathered so far to the driver when it has grown past
    /// [`OUTPUT_HIGH_WATER`] (see [`Session::stream_to`]): the client reads the first messages
    /// while the rest is produced, and the session's buffer stays bounded.
    pub(crate) async fn flush_partial(&mut self) {
        if self.out.len() < OUTPUT_HIGH_WATER {
            return;
        }
        if let Some(tx) = &self.sink {
            let chunk = std::mem::replace(&mut self.out, Vec::with_capacity(2 * OUTPUT_HIGH_WATER));
            // A closed channel means the driver is gone; the connection ends anyway.
            let _ = tx.send(chunk).await;
        }
    }

    /// Commands are buffered that the last `feed` did not answer (its output reached
    /// [`OUTPUT_HIGH_WATER`]): the driver sends what it has, then feeds nothing to go on.
    pub fn has_pending(&self) -> bool {
        self.pending && !self.closed
    }

    async fn literal_announced(&mut self, mode: LiteralMode, length: u32) {
        let max = if self.user.is_some() {
            self.cfg.max_message_size.min(u64::from(u32::MAX)) as u32
        } else {
            PRE_AUTH_MAX_LITERAL
        };
        // Before login, literals chained in one command add up: the whole command is bounded.
        let too_long_before_login = self.user.is_none()
            && self.frag.message_bytes().len() + length as usize > PRE_AUTH_MAX_COMMAND;
        let refusal = if length > max || too_long_before_login {
            no(Some("TOOBIG"), "Literal exceeds the size limit")
        } else if let Some(t) = self.append_precheck(mode, length).await {
            // RFC 3502: each message of an APPEND is checked before it is sent.
            t
        } else {
            if mode == LiteralMode::Sync {
                self.out.extend_from_slice(b"+ Ready for literal data\r\n");
            }
            self.literal_expected = length as usize;
            return;
        };
        let tag = self.frag.decode_tag().map(|t| t.inner().to_string());
        match (mode, tag) {
            // RFC 7889 / RFC 4469 §4: refuse before the client sends the data.
            (LiteralMode::Sync, Some(tag)) => {
                self.frag.skip_message();
                self.respond(&tag, refusal);
                self.count_error();
            }
            // A non-synchronizing literal is already on its way: the stream cannot be resynchronised.
            _ => {
                let code = refusal.code.unwrap_or_default();
                self.out
                    .extend_from_slice(format!("* BYE [{code}] {}\r\n", refusal.text).as_bytes());
                self.event = Some(Event::Close);
            }
        }
    }

    fn count_error(&mut self) {
        self.errors += 1;
        if self.errors >= self.cfg.max_errors {
            // Bad commands are not logged one by one (a client chooses how many it sends); this
            // line comes once per session.
            tracing::info!(
                peer = self.info.peer.map(tracing::field::display),
                user = self
                    .user
                    .as_ref()
                    .map(|u| tracing::field::display(&u.address)),
                errors = self.errors,
                "imap: too many bad commands, closing the connection"
            );
            self.out.extend_from_slice(b"* BYE Too many errors\r\n");
            self.event = Some(Event::Close);
        }
    }

    pub(crate) fn respond(&mut self, tag: &str, t: Tagged) {
        tracing::debug!(
            peer = self.info.peer.map(tracing::field::display),
            tag = %net::log::printable(tag.as_bytes(), net::log::MAX_TRACE_TEXT),
            status = t.status,
            code = t.code.as_deref(),
            text = %t.text,
            "imap response"
        );
        self.out.extend_from_slice(tag.as_bytes());
        self.out.push(b' ');
        self.out.extend_from_slice(t.status.as_bytes());
        self.out.push(b' ');
        if let Some(code) = &t.code {
            self.out.extend_from_slice(format!("[{code}] ").as_bytes());
        }
        self.out.extend_from_slice(t.text.as_bytes());
        self.out.extend_from_slice(b"\r\n");
        if t.status == "BAD" {
            self.count_error();
        }
    }

    /// DEBUG protocol trace of the message about to run: its first line (literals are not
    /// shown, so neither are appended messages), with the credentials of LOGIN and AUTHENTICATE
    /// and every SASL response replaced.
    fn trace_command(&self) {
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        let bytes = self.frag.message_bytes();
        let line = bytes
            .iter()
            .position(|&b| b == b'\r' || b == b'\n')
            .map_or(bytes, |end| &bytes[..end]);
        let shown = match &self.mode {
            Mode::Authenticate(_) => "<SASL response redacted>".to_string(),
            Mode::Idle(_) | Mode::Command => {
                let mut words = line.splitn(4, |&b| b == b' ');
                let (tag, verb, arg) = (words.next(), words.next(), words.next());
                let verb_is = |v: &str| verb.is_some_and(|w| w.eq_ignore_ascii_case(v.as_bytes()));
                let p = |b: &[u8]| net::log::printable(b, net::log::MAX_TRACE_TEXT);
                match (tag, verb, arg) {
                    (Some(tag), Some(verb), Some(_)) if verb_is("LOGIN") => {
                        format!("{} {} <credentials redacted>", p(tag), p(verb))
                    }
                    (Some(tag), Some(verb), Some(mech)) if verb_is("AUTHENTICATE") => {
                        let ir = if words.next().is_some() {
                            " <initial response redacted>"
                        } else {
                            ""
                        };
                        format!("{} {} {}{ir}", p(tag), p(verb), p(mech))
                    }
                    _ => p(line),
                }
            }
        };
        tracing::debug!(
            peer = self.info.peer.map(tracing::field::display),
            command = %shown,
            bytes = bytes.len(),
            "imap command"
        );
    }

    /// One complete message from the fragmentizer.
    async fn message(&mut self) {
        self.commands += 1;
        self.trace_command();
        if self.selected_deleted().await {
            return;
        }
        match std::mem::replace(&mut self.mode, Mode::Command) {
            Mode::Command => {
                // RFC 3502 MULTIAPPEND: imap-codec reads an APPEND with one message only.
                if let Some(multi) = append::multiappend(self.frag.message_bytes()) {
                    return self.multiappend(multi).await;
                }
                let decoded = match ext::preparse(self.frag.message_bytes()) {
                    Pre::Untouched => self
                        .frag
                        .decode_message(&CommandCodec::default())
                        .map(|c| c.into_static())
                        .map_err(|_| ()),
                    Pre::Rewritten {
                        bytes,
                        search_return,
                        saved_result,
                    } => {
                        self.extra = Extra {
                            search_return,
                            saved_result,
                        };
                        CommandCodec::default()
                            .decode(&bytes)
                            .map(|(_, c)| c.into_static())
                            .map_err(|_| ())
                    }
                    Pre::List { tag, args } => {
                        return self.ext_command(tag, ExtCommand::List(args)).await;
                    }
                    Pre::Create { tag, mailbox, uses } => {
                        return self
                            .ext_command(tag, ExtCommand::Create(mailbox, uses))
                            .await;
                    }
                    Pre::Bad { tag, why } => return self.respond(&tag, bad(why)),
                };
                match decoded {
                    Ok(cmd) => {
                        self.command(cmd).await;
                        self.extra = Extra::default();
                    }
                    Err(_) => {
                        self.extra = Extra::default();
                        let tag = self
                            .frag
                            .decode_tag()
                            .map(|t| t.inner().to_string())
                            .unwrap_or_else(|| "*".into());
                        self.respond(&tag, bad("Syntax error or unknown command"));
                    }
                }
            }
            Mode::Authenticate(tag) => {
                let data = self
                    .frag
                    .decode_message(&AuthenticateDataCodec::default())
                    .map(|d| d.into_static());
                match data {
                    Ok(AuthenticateData::Continue(secret)) => {
                        let t = self.sasl_plain(secret.declassify()).await;
                        self.respond(&tag, t);
                    }
                    Ok(AuthenticateData::Cancel) => {
                        self.respond(&tag, bad("Authentication cancelled"))
                    }
                    Err(_) => self.respond(&tag, bad("Invalid base64 response")),
                }
            }
            Mode::Idle(tag) => {
                let done = self.frag.decode_message(&IdleDoneCodec::default()).is_ok();
                let upd = self.announce(true).await;
                self.out.extend_from_slice(&upd);
                if done {
                    self.respond(&tag, ok("IDLE terminated"));
                } else {
                    self.respond(&tag, bad("Expected DONE"));
                }
            }
        }
    }

    /// Pending changes as untagged responses (an announcement point).
    pub(crate) async fn announce(&mut self, allow_expunge: bool) -> Vec<u8> {
        self.drain_feed();
        let phrasing = self.phrasing();
        let store = self.backend.store().clone();
        let Some(sel) = self.selected.as_mut() else {
            return Vec::new();
        };
        match sel.announce(&store, allow_expunge, phrasing).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "imap: cannot read mailbox changes");
                Vec::new()
            }
        }
    }

    /// Moves changes of this account from the feed into the selected view.
    pub(crate) fn drain_feed(&mut self) {
        let Some(rx) = self.changes.as_mut() else {
            return;
        };
        let account = self.user.as_ref().map(|u| u.account_id);
        loop {
            match rx.try_recv() {
                Ok(c) => {
                    if Some(c.account_id) == account
                        && let Some(sel) = self.selected.as_mut()
                        && !already_known(sel, &c)
                    {
                        sel.queue(c);
                    }
                }
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    if let Some(sel) = self.selected.as_mut() {
                        sel.lagged();
                    }
                }
                Err(_) => break,
            }
        }
    }

    /// Waits until the feed has a change for the selected mailbox (used by the driver during
    /// IDLE). Cancel-safe: a received change is queued before this returns.
    pub async fn wait_change(&mut self) {
        let account = self.user.as_ref().map(|u| u.account_id);
        loop {
            let (Some(rx), Some(sel)) = (self.changes.as_mut(), self.selected.as_mut()) else {
                std::future::pending::<()>().await;
                return;
            };
            match rx.recv().await {
                Ok(c) => {
                    if Some(c.account_id) == account && c.mailbox_id == sel.id() {
                        sel.queue(c);
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    sel.lagged();
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => {
                    self.changes = None;
                }
            }
        }
    }

    /// Untagged updates to send during IDLE, after [`Session::wait_change`] returned (a BYE and
    /// [`Event::Close`] if the selected mailbox was deleted).
    pub async fn idle_updates(&mut self) -> Output {
        if !self.selected_deleted().await {
            let upd = self.announce(true).await;
            self.out.extend_from_slice(&upd);
        }
        if self.event == Some(Event::Close) {
            self.closed = true;
        }
        Output {
            bytes: std::mem::take(&mut self.out),
            event: self.event.take(),
        }
    }

    /// A command in a form only `command::ext` parses (authenticated state).
    async fn ext_command(&mut self, tag: String, cmd: ExtCommand) {
        if self.user.is_none() {
            return self.respond(&tag, bad("Log in first"));
        }
        let t = match cmd {
            ExtCommand::List(args) => self.list(&args).await,
            ExtCommand::Create(mailbox, uses) => self.create_special_use(&mailbox, &uses).await,
        };
        let upd = self.announce(true).await;
        self.out.extend_from_slice(&upd);
        self.respond(&tag, t);
    }

    async fn command(&mut self, cmd: Command<'static>) {
        let tag = cmd.tag.inner().to_string();
        // Announcement rule of RFC 9051 §7.5.1 for what follows the command.
        let mut allow_expunge = true;
        let needs_auth = !matches!(
            cmd.body,
            CommandBody::Capability
                | CommandBody::Noop
                | CommandBody::Logout
                | CommandBody::StartTLS
                | CommandBody::Authenticate { .. }
                | CommandBody::Login { .. }
                | CommandBody::Id { .. }
        );
        let needs_selected = matches!(
            cmd.body,
            CommandBody::Check
                | CommandBody::Close
                | CommandBody::Unselect
                | CommandBody::Expunge
                | CommandBody::ExpungeUid { .. }
                | CommandBody::Search { .. }
                | CommandBody::Sort { .. }
                | CommandBody::Thread { .. }
                | CommandBody::Fetch { .. }
                | CommandBody::Store { .. }
                | CommandBody::Copy { .. }
                | CommandBody::Move { .. }
        );
        if needs_auth && self.user.is_none() {
            return self.respond(&tag, bad("Log in first"));
        }
        if needs_selected && self.selected.is_none() {
            return self.respond(&tag, bad("No mailbox selected"));
        }
        if self.extra.saved_result {
            // RFC 5182 §2.1: `$` only in commands that take a sequence set of the selected mailbox.
            match self.selected.as_mut() {
                Some(sel) if needs_selected => sel.use_saved = true,
                _ => return self.respond(&tag, bad("$ needs a selected mailbox")),
            }
        }
        let t: Option<Tagged> = match cmd.body {
            CommandBody::Capability => {
                let line = format!("* CAPABILITY {}\r\n", self.capabilities());
                self.out.extend_from_slice(line.as_bytes());
                Some(ok("CAPABILITY completed"))
            }
            CommandBody::Noop | CommandBody::Check => Some(ok("NOOP completed")),
            CommandBody::Logout => {
                self.out.extend_from_slice(b"* BYE Logging out\r\n");
                self.respond(&tag, ok("LOGOUT completed"));
                self.event = Some(Event::Close);
                return;
            }
            CommandBody::StartTLS => {
                if self.info.tls || !self.info.starttls {
                    Some(bad("TLS is already active or not available"))
                } else if self.user.is_some() {
                    Some(bad("Already authenticated"))
                } else {
                    self.respond(&tag, ok("Begin TLS negotiation now"));
                    self.event = Some(Event::StartTls);
                    return;
                }
            }
            CommandBody::Login { username, password } => {
                let user = String::from_utf8_lossy(username.as_ref()).into_owned();
                let pass = String::from_utf8_lossy(password.declassify().as_ref()).into_owned();
                Some(self.login("LOGIN", &user, &pass).await)
            }
            CommandBody::Authenticate {
                mechanism,
                initial_response,
            } => {
                if self.user.is_some() {
                    Some(bad("Already authenticated"))
                } else if mechanism != AuthMechanism::Plain {
                    Some(no(Some("CANNOT"), "Unsupported mechanism"))
                } else if !self.info.tls {
                    Some(no(Some("PRIVACYREQUIRED"), "Use STARTTLS first"))
                } else if let Some(ir) = initial_response {
                    Some(self.sasl_plain(ir.declassify()).await)
                } else {
                    self.out.extend_from_slice(b"+ \r\n");
                    self.mode = Mode::Authenticate(tag);
                    return;
                }
            }
            CommandBody::Id { .. } => {
                self.out.extend_from_slice(
                    format!(
                        "* ID (\"name\" \"Facteur\" \"version\" \"{}\")\r\n",
                        env!("CARGO_PKG_VERSION")
                    )
                    .as_bytes(),
                );
                Some(ok("ID completed"))
            }
            CommandBody::Enable { capabilities } => Some(self.enable(capabilities.as_ref())),
            // RFC 4978 §3: DEFLATE is the only algorithm imap-codec parses (others are BAD).
            CommandBody::Compress { .. } => {
                if self.compressed {
                    Some(no(Some("COMPRESSIONACTIVE"), "DEFLATE is already active"))
                } else {
                    self.respond(&tag, ok("DEFLATE active"));
                    self.compressed = true;
                    self.event = Some(Event::Compress);
                    return;
                }
            }
            CommandBody::Idle => {
                self.out.extend_from_slice(b"+ idling\r\n");
                let upd = self.announce(true).await;
                self.out.extend_from_slice(&upd);
                self.mode = Mode::Idle(tag);
                return;
            }
            CommandBody::Namespace => {
                self.out
                    .extend_from_slice(b"* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
                Some(ok("NAMESPACE completed"))
            }
            CommandBody::Select {
                mailbox,
                parameters,
            } => Some(self.select(&mailbox, &parameters, false).await),
            CommandBody::Examine {
                mailbox,
                parameters,
            } => Some(self.select(&mailbox, &parameters, true).await),
            CommandBody::Create { mailbox } => Some(self.create(&mailbox).await),
            CommandBody::Delete { mailbox } => Some(self.delete(&mailbox).await),
            CommandBody::Rename { from, to } => Some(self.rename(&from, &to).await),
            CommandBody::Subscribe { mailbox } => Some(self.subscribe(&mailbox, true).await),
            CommandBody::Unsubscribe { mailbox } => Some(self.subscribe(&mailbox, false).await),
            CommandBody::List {
                reference,
                mailbox_wildcard,
            } => Some(self.list_basic(&reference, &mailbox_wildcard).await),
            CommandBody::Lsub {
                reference,
                mailbox_wildcard,
            } => Some(self.lsub(&reference, &mailbox_wildcard).await),
            CommandBody::Status {
                mailbox,
                item_names,
            } => Some(self.status(&mailbox, item_names.as_ref()).await),
            CommandBody::Append {
                mailbox,
                flags,
                date,
                message,
            } => Some(self.append(&mailbox, &flags, date.as_ref(), message).await),
            CommandBody::Close => Some(self.close(true).await),
            CommandBody::Unselect => Some(self.close(false).await),
            CommandBody::Expunge => Some(self.expunge(None).await),
            CommandBody::ExpungeUid { sequence_set } => {
                Some(self.expunge(Some(&sequence_set)).await)
            }
            CommandBody::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                modifiers,
            } => {
                allow_expunge = uid;
                Some(
                    self.fetch(&sequence_set, macro_or_item_names, uid, &modifiers)
                        .await,
                )
            }
            CommandBody::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
                modifiers,
            } => {
                allow_expunge = uid;
                Some(
                    self.store(&sequence_set, kind, response, &flags, uid, &modifiers)
                        .await,
                )
            }
            CommandBody::Copy {
                sequence_set,
                mailbox,
                uid,
            } => Some(self.copy(&sequence_set, &mailbox, uid, false).await),
            CommandBody::Move {
                sequence_set,
                mailbox,
                uid,
            } => Some(self.copy(&sequence_set, &mailbox, uid, true).await),
            CommandBody::Search {
                charset,
                criteria,
                uid,
            } => {
                allow_expunge = uid;
                Some(
                    self.search(&tag, charset.as_ref(), criteria.as_ref(), uid)
                        .await,
                )
            }
            CommandBody::Sort {
                sort_criteria,
                charset,
                search_criteria,
                uid,
            } => {
                allow_expunge = uid;
                Some(
                    self.sort(
                        sort_criteria.as_ref(),
                        &charset,
                        search_criteria.as_ref(),
                        uid,
                    )
                    .await,
                )
            }
            CommandBody::Thread {
                algorithm,
                charset,
                search_criteria,
                uid,
            } => {
                allow_expunge = uid;
                Some(
                    self.thread(&algorithm, &charset, search_criteria.as_ref(), uid)
                        .await,
                )
            }
            CommandBody::GetQuota { root } => Some(self.get_quota(&root).await),
            CommandBody::GetQuotaRoot { mailbox } => Some(self.get_quota_root(&mailbox).await),
            // RFC 9208 §4.1.3: limits are set with the admin CLI, not by IMAP clients.
            CommandBody::SetQuota { .. } => {
                Some(no(Some("NOPERM"), "Quotas are set by the administrator"))
            }
            _ => Some(bad("Command not supported")),
        };
        if let Some(sel) = self.selected.as_mut() {
            sel.use_saved = false;
        }
        let upd = self.announce(allow_expunge).await;
        self.out.extend_from_slice(&upd);
        if let Some(t) = t {
            self.respond(&tag, t);
        }
    }

    async fn login(&mut self, mechanism: &str, user: &str, password: &str) -> Tagged {
        if self.user.is_some() {
            return bad("Already authenticated");
        }
        if !self.info.tls {
            // RFC 9051 §6.2.3: LOGINDISABLED is advertised until TLS is active.
            return no(Some("PRIVACYREQUIRED"), "Use STARTTLS first");
        }
        match self
            .backend
            .authenticate(self.info.peer, user, password)
            .await
        {
            AuthOutcome::Ok(u) => {
                if let Some(sessions) = self.backend.user_sessions() {
                    match sessions.try_acquire(&u.address) {
                        Some(slot) => self.user_slot = Some(slot),
                        None => {
                            tracing::warn!(
                                user = %u.address,
                                peer = self.info.peer.map(tracing::field::display),
                                limit = sessions.max(),
                                "imap: login refused, too many sessions for this user"
                            );
                            return no(
                                Some("LIMIT"),
                                "Too many connections for this user; close some and retry",
                            );
                        }
                    }
                }
                net::throttle::login_success(
                    "imap",
                    &u.address,
                    self.info.peer,
                    self.info.tls,
                    mechanism,
                );
                self.changes = Some(self.backend.store().changes());
                self.user = Some(u);
                ok_code(format!("CAPABILITY {}", self.capabilities()), "Logged in")
            }
            AuthOutcome::Failed => {
                self.count_error();
                no(Some("AUTHENTICATIONFAILED"), "Authentication failed")
            }
            // RFC 5530 §3 UNAVAILABLE: a temporary failure. Only a client whose right password was
            // checked from an address it logged in from before gets it (see docs/config.md).
            AuthOutcome::Held { retry_after } => no(
                Some("UNAVAILABLE"),
                format!(
                    "Too many failed logins from your address; try again in {} minutes",
                    net::throttle::minutes_left(retry_after)
                ),
            ),
            AuthOutcome::Unavailable => no(Some("UNAVAILABLE"), "Try again later"),
        }
    }

    /// RFC 4616 PLAIN: `authzid NUL authcid NUL passwd`; only authzid = authcid (or empty).
    async fn sasl_plain(&mut self, data: &[u8]) -> Tagged {
        // imap-codec has decoded the base64; the PLAIN message itself goes through net::sasl.
        match net::sasl::parse_plain(data) {
            Ok(c) => self.login("PLAIN", &c.authcid, &c.password).await,
            Err(net::sasl::PlainError::Authz) => no(
                Some("AUTHORIZATIONFAILED"),
                "Authorization identity refused",
            ),
            Err(net::sasl::PlainError::NotUtf8) => {
                no(Some("AUTHENTICATIONFAILED"), "Authentication failed")
            }
            Err(_) => bad("Malformed PLAIN response"),
        }
    }

    /// Turns CONDSTORE on (ENABLE, or a CONDSTORE-enabling command: FETCH MODSEQ or
    /// CHANGEDSINCE, SEARCH MODSEQ, STORE UNCHANGEDSINCE, STATUS HIGHESTMODSEQ, ENABLE QRESYNC).
    /// RFC 7162 §3.1: when that happens while a mailbox is selected, the client learns the
    /// mailbox's HIGHESTMODSEQ once, in an untagged OK (SELECT/EXAMINE already send it).
    pub(crate) fn enable_condstore(&mut self) {
        if self.enabled.condstore {
            return;
        }
        self.enabled.condstore = true;
        if let Some(sel) = self.selected.as_ref() {
            self.out.extend_from_slice(
                format!("* OK [HIGHESTMODSEQ {}] Highest\r\n", sel.highest_modseq).as_bytes(),
            );
        }
    }

    fn enable(&mut self, caps: &[CapabilityEnable<'static>]) -> Tagged {
        let mut newly = Vec::new();
        for c in caps {
            match c {
                CapabilityEnable::CondStore
                    if !self.enabled.condstore && !newly.contains(&"CONDSTORE") =>
                {
                    newly.push("CONDSTORE");
                }
                CapabilityEnable::Utf8(Utf8Kind::Accept) if !self.enabled.utf8 => {
                    self.enabled.utf8 = true;
                    newly.push("UTF8=ACCEPT");
                }
                CapabilityEnable::Other(_) => {
                    let name = c.to_string();
                    if name.eq_ignore_ascii_case("IMAP4rev2") && !self.enabled.rev2 {
                        self.enabled.rev2 = true;
                        // RFC 9051 Appendix E: no \Recent or RECENT for an IMAP4rev2 client.
                        if let Some(sel) = self.selected.as_mut() {
                            sel.rev2_enabled();
                        }
                        newly.push("IMAP4rev2");
                    } else if name.eq_ignore_ascii_case("QRESYNC") && !self.enabled.qresync {
                        // RFC 7162 §3.2.3: enabling QRESYNC implies CONDSTORE.
                        self.enabled.qresync = true;
                        newly.push("QRESYNC");
                    }
                }
                _ => {}
            }
        }
        if !newly.is_empty() {
            self.out
                .extend_from_slice(format!("* ENABLED {}\r\n", newly.join(" ")).as_bytes());
        } else {
            self.out.extend_from_slice(b"* ENABLED\r\n");
        }
        if newly.iter().any(|n| *n == "CONDSTORE" || *n == "QRESYNC") {
            self.enable_condstore();
        }
        ok("ENABLE completed")
    }
}

/// A DEBUG line when a session ends, with its counts (bad commands are counted, not logged).
impl<B: Backend> Drop for Session<B> {
    fn drop(&mut self) {
        tracing::debug!(
            peer = self.info.peer.map(tracing::field::display),
            user = self
                .user
                .as_ref()
                .map(|u| tracing::field::display(&u.address)),
            commands = self.commands,
            errors = self.errors,
            "imap session end"
        );
    }
}
