//! One outbound SMTP connection: greeting, EHLO, STARTTLS, AUTH, transactions, QUIT.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use net::client::ClientStream;
use net::stream::TlsInfo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::body;
use super::reply::{self, ParseError, RemoteReply};
use super::{ClientConfig, ClientError, OutEnvelope, TlsMode, TxOutcome};

/// Recipients sent in one transaction at most (RFC 5321 §4.5.3.1.8 requires servers to take 100).
pub const MAX_RCPTS_PER_TRANSACTION: usize = 100;
const READ_CHUNK: usize = 8192;

/// What the server announced in its EHLO reply (RFC 5321 §4.1.1.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ehlo {
    pub esmtp: bool,
    pub pipelining: bool,
    pub starttls: bool,
    /// RFC 1870: the announced limit; `Some(0)` means no fixed limit.
    pub size: Option<u64>,
    pub eightbitmime: bool,
    pub smtputf8: bool,
    pub dsn: bool,
    pub chunking: bool,
    pub auth: Vec<String>,
}

impl Ehlo {
    fn parse(reply: &RemoteReply) -> Ehlo {
        let mut e = Ehlo {
            esmtp: true,
            ..Ehlo::default()
        };
        for line in reply.lines().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            match keyword.to_ascii_uppercase().as_str() {
                "PIPELINING" => e.pipelining = true,
                "STARTTLS" => e.starttls = true,
                "SIZE" => e.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                "8BITMIME" => e.eightbitmime = true,
                "SMTPUTF8" => e.smtputf8 = true,
                "DSN" => e.dsn = true,
                "CHUNKING" => e.chunking = true,
                "AUTH" => e.auth = words.map(|w| w.to_ascii_uppercase()).collect(),
                _ => {}
            }
        }
        e
    }
}

pub struct Connection {
    stream: Option<ClientStream>,
    buf: Vec<u8>,
    ehlo: Ehlo,
    config: ClientConfig,
    server_name: String,
    /// The server's greeting name and address, for logs and DSNs ("remote-MTA").
    pub remote: String,
    pub peer: SocketAddr,
}

impl Connection {
    /// Connects, reads the greeting, says EHLO and negotiates TLS as the configuration asks.
    /// `server_name` is the host name the certificate is checked against (the MX name).
    pub async fn connect(
        addr: SocketAddr,
        server_name: &str,
        config: &ClientConfig,
    ) -> Result<Connection, ClientError> {
        let tcp = tokio::time::timeout(config.timeouts.connect, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout("connecting"))?
            .map_err(|e| ClientError::Connect(format!("{addr}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let mut conn = Connection {
            stream: Some(ClientStream::Plain(tcp)),
            buf: Vec::new(),
            ehlo: Ehlo::default(),
            config: config.clone(),
            server_name: server_name.to_string(),
            remote: server_name.to_string(),
            peer: addr,
        };
        if config.tls_mode == TlsMode::Implicit {
            conn.handshake().await?;
        }
        let greeting = conn.read_reply(conn.config.timeouts.command).await?;
        if greeting.code != 220 {
            return Err(ClientError::Refused {
                stage: "greeting",
                reply: greeting,
            });
        }
        if let Some(name) = greeting.text.split_ascii_whitespace().next() {
            conn.remote = format!("{name} ({addr})");
        }
        conn.hello().await?;
        let want_tls = match config.tls_mode {
            TlsMode::Implicit | TlsMode::Never => false,
            TlsMode::Required => true,
            TlsMode::Opportunistic => conn.ehlo.starttls,
        };
        if want_tls {
            if !conn.ehlo.starttls {
                conn.quit().await;
                return Err(ClientError::TlsUnavailable);
            }
            conn.trace_sent("STARTTLS");
            conn.write(b"STARTTLS\r\n").await?;
            let r = conn.read_reply(conn.config.timeouts.command).await?;
            if r.code != 220 {
                if config.tls_mode == TlsMode::Required {
                    return Err(ClientError::Refused {
                        stage: "STARTTLS",
                        reply: r,
                    });
                }
                // Opportunistic: a refused STARTTLS leaves a usable plaintext session.
                return Ok(conn);
            }
            // RFC 3207 §4.2 and CVE-2011-0411: anything the server sent after its 220 and before
            // the handshake could be an injected reply; it is dropped, never read as a reply.
            if !conn.buf.is_empty() {
                tracing::warn!(
                    peer = %addr,
                    bytes = conn.buf.len(),
                    "discarding data sent before the TLS handshake"
                );
                conn.buf.clear();
            }
            conn.handshake().await?;
            // RFC 3207 §4.2: forget what the server said before TLS and ask again.
            conn.hello().await?;
        }
        Ok(conn)
    }

    pub fn ehlo(&self) -> &Ehlo {
        &self.ehlo
    }

    pub fn tls_info(&self) -> Option<TlsInfo> {
        self.stream.as_ref().and_then(ClientStream::tls_info)
    }

    async fn handshake(&mut self) -> Result<(), ClientError> {
        let stream = self
            .stream
            .take()
            .ok_or_else(|| ClientError::Io("connection closed".into()))?;
        let tls = tokio::time::timeout(
            self.config.timeouts.command,
            stream.upgrade(self.config.tls.clone(), &self.server_name),
        )
        .await
        .map_err(|_| ClientError::Timeout("in the TLS handshake"))?
        .map_err(|e| ClientError::Tls(e.to_string()))?;
        self.stream = Some(tls);
        Ok(())
    }

    async fn hello(&mut self) -> Result<(), ClientError> {
        let cmd = format!("EHLO {}\r\n", self.config.helo_name);
        self.trace_sent(&cmd);
        self.write(cmd.as_bytes()).await?;
        let r = self.read_reply(self.config.timeouts.command).await?;
        if r.code == 250 {
            self.ehlo = Ehlo::parse(&r);
            return Ok(());
        }
        if !r.is_permanent() {
            return Err(ClientError::Refused {
                stage: "EHLO",
                reply: r,
            });
        }
        // RFC 5321 §3.2: a server that does not know EHLO gets HELO.
        let cmd = format!("HELO {}\r\n", self.config.helo_name);
        self.trace_sent(&cmd);
        self.write(cmd.as_bytes()).await?;
        let r = self.read_reply(self.config.timeouts.command).await?;
        if r.code != 250 {
            return Err(ClientError::Refused {
                stage: "HELO",
                reply: r,
            });
        }
        self.ehlo = Ehlo::default();
        Ok(())
    }

    /// AUTH PLAIN (RFC 4954, RFC 4616), only over TLS.
    pub async fn authenticate(&mut self, user: &str, password: &str) -> Result<(), ClientError> {
        if !self.stream.as_ref().is_some_and(ClientStream::is_tls) {
            return Err(ClientError::TlsUnavailable);
        }
        if !self.ehlo.auth.iter().any(|m| m == "PLAIN") {
            return Err(ClientError::Protocol(
                "the relay does not offer AUTH PLAIN".into(),
            ));
        }
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("\0{user}\0{password}").as_bytes());
        self.trace_sent("AUTH PLAIN <initial response redacted>");
        self.write(format!("AUTH PLAIN {token}\r\n").as_bytes())
            .await?;
        let r = self.read_reply(self.config.timeouts.command).await?;
        if r.code != 235 {
            return Err(ClientError::Refused {
                stage: "AUTH",
                reply: r,
            });
        }
        Ok(())
    }

    /// Sends one message to the envelope's recipients. A refusal of MAIL or of the data is an
    /// `Err` for the whole transaction; refusals of single recipients are in the outcome.
    pub async fn send(&mut self, env: &OutEnvelope, raw: &[u8]) -> Result<TxOutcome, ClientError> {
        let result = self.transaction(env, raw).await;
        if matches!(result, Err(ClientError::Refused { .. })) {
            // The session is still usable after a refused transaction: clear it for the next one.
            let _ = self.reset().await;
        }
        result
    }

    async fn transaction(
        &mut self,
        env: &OutEnvelope,
        raw: &[u8],
    ) -> Result<TxOutcome, ClientError> {
        let data = body::normalize(raw);
        let utf8 = !env.from.is_ascii()
            || env.recipients.iter().any(|r| !r.address.is_ascii())
            || body::headers_need_utf8(&data);
        if utf8 && !self.ehlo.smtputf8 {
            // RFC 6531 §3.2: without SMTPUTF8 on the receiving side this message cannot go.
            return Err(ClientError::Unsendable {
                enhanced: "5.6.7",
                reason: format!(
                    "{} does not support SMTPUTF8, needed for this message's internationalized addresses or headers",
                    self.remote
                ),
            });
        }
        if let Some(limit) = self.ehlo.size
            && limit > 0
            && data.len() as u64 > limit
        {
            return Err(ClientError::Unsendable {
                enhanced: "5.3.4",
                reason: format!(
                    "message of {} bytes is larger than the {} bytes {} accepts",
                    data.len(),
                    limit,
                    self.remote
                ),
            });
        }
        let mut mail = format!("MAIL FROM:<{}>", env.from);
        if self.ehlo.size.is_some() {
            mail.push_str(&format!(" SIZE={}", data.len()));
        }
        if self.ehlo.eightbitmime && body::is_8bit(&data) {
            mail.push_str(" BODY=8BITMIME");
        }
        if utf8 {
            mail.push_str(" SMTPUTF8");
        }
        if self.ehlo.dsn {
            if let Some(ret) = &env.ret {
                mail.push_str(&format!(" RET={ret}"));
            }
            if let Some(envid) = &env.envid {
                mail.push_str(&format!(" ENVID={envid}"));
            }
        }
        mail.push_str("\r\n");

        let mut rcpts = Vec::with_capacity(env.recipients.len());
        for r in &env.recipients {
            let mut line = format!("RCPT TO:<{}>", r.address);
            if self.ehlo.dsn {
                if let Some(n) = &r.notify {
                    line.push_str(&format!(" NOTIFY={n}"));
                }
                if let Some(o) = &r.orcpt {
                    line.push_str(&format!(" ORCPT={o}"));
                }
            }
            line.push_str("\r\n");
            rcpts.push(line);
        }

        let timeout = self.config.timeouts.command;
        let mut replies = Vec::with_capacity(rcpts.len());
        self.trace_sent(&mail);
        for l in &rcpts {
            self.trace_sent(l);
        }
        if self.ehlo.pipelining {
            // RFC 2920 §3.1: MAIL and RCPT may be sent in one group; replies come in order.
            let mut group = mail.into_bytes();
            for l in &rcpts {
                group.extend_from_slice(l.as_bytes());
            }
            self.write(&group).await?;
            let m = self.read_reply(timeout).await?;
            for _ in &rcpts {
                replies.push(self.read_reply(timeout).await?);
            }
            if !m.is_positive() {
                return Err(ClientError::Refused {
                    stage: "MAIL FROM",
                    reply: m,
                });
            }
        } else {
            self.write(mail.as_bytes()).await?;
            let m = self.read_reply(timeout).await?;
            if !m.is_positive() {
                return Err(ClientError::Refused {
                    stage: "MAIL FROM",
                    reply: m,
                });
            }
            for l in &rcpts {
                self.write(l.as_bytes()).await?;
                replies.push(self.read_reply(timeout).await?);
            }
        }
        let mut outcome: Vec<Result<RemoteReply, RemoteReply>> = replies
            .into_iter()
            .map(|r| if r.is_positive() { Ok(r) } else { Err(r) })
            .collect();
        if !outcome.iter().any(Result::is_ok) {
            self.reset().await?;
            return Ok(TxOutcome {
                recipients: outcome,
            });
        }

        let end = if self.ehlo.chunking {
            // RFC 3030: the whole message as one last chunk; no dot-stuffing.
            let mut out = format!("BDAT {} LAST\r\n", data.len()).into_bytes();
            self.trace_sent(&format!("BDAT {} LAST (the message)", data.len()));
            out.extend_from_slice(&data);
            drop(data);
            self.write(&out).await?;
            self.read_reply(self.config.timeouts.data_end).await?
        } else {
            self.trace_sent("DATA");
            self.write(b"DATA\r\n").await?;
            let go = self.read_reply(timeout).await?;
            if go.code != 354 {
                return Err(ClientError::Refused {
                    stage: "DATA",
                    reply: go,
                });
            }
            let stuffed = body::dot_stuff(&data);
            drop(data);
            self.trace_sent(&format!(
                "(the message, {} bytes, and the final dot)",
                stuffed.len()
            ));
            self.write(&stuffed).await?;
            self.read_reply(self.config.timeouts.data_end).await?
        };
        if !end.is_positive() {
            return Err(ClientError::Refused {
                stage: "end of data",
                reply: end,
            });
        }
        for r in outcome.iter_mut().flatten() {
            *r = end.clone();
        }
        Ok(TxOutcome {
            recipients: outcome,
        })
    }

    pub async fn reset(&mut self) -> Result<(), ClientError> {
        self.trace_sent("RSET");
        self.write(b"RSET\r\n").await?;
        let r = self.read_reply(self.config.timeouts.command).await?;
        if r.is_positive() {
            Ok(())
        } else {
            Err(ClientError::Refused {
                stage: "RSET",
                reply: r,
            })
        }
    }

    /// Says goodbye; errors are irrelevant at this point.
    pub async fn quit(mut self) {
        self.trace_sent("QUIT");
        if self.write(b"QUIT\r\n").await.is_ok() {
            let _ = self.read_reply(Duration::from_secs(5)).await;
        }
        if let Some(mut s) = self.stream.take() {
            let _ = s.shutdown().await;
        }
    }

    /// DEBUG protocol trace of what is sent (never a password or the message itself).
    fn trace_sent(&self, command: &str) {
        tracing::debug!(
            peer = %self.peer,
            command = %net::log::printable(command.trim_end().as_bytes(), net::log::MAX_TRACE_TEXT),
            "smtp client command"
        );
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| ClientError::Io("connection closed".into()))?;
        let timeout = self.config.timeouts.data_end;
        tokio::time::timeout(timeout, async {
            stream.write_all(bytes).await?;
            stream.flush().await
        })
        .await
        .map_err(|_| ClientError::Timeout("writing"))?
        .map_err(|e| ClientError::Io(e.to_string()))
    }

    async fn read_reply(&mut self, timeout: Duration) -> Result<RemoteReply, ClientError> {
        loop {
            match reply::parse(&self.buf) {
                Ok((r, used)) => {
                    self.buf.drain(..used);
                    tracing::debug!(
                        peer = %self.peer,
                        code = r.code,
                        enhanced = %r.enhanced,
                        text = %net::log::printable(
                            r.text.lines().next().unwrap_or_default().as_bytes(),
                            net::log::MAX_TRACE_TEXT
                        ),
                        "smtp client reply"
                    );
                    return Ok(r);
                }
                Err(ParseError::Malformed(why)) => return Err(ClientError::Protocol(why)),
                Err(ParseError::Incomplete) => {}
            }
            let stream = self
                .stream
                .as_mut()
                .ok_or_else(|| ClientError::Io("connection closed".into()))?;
            let mut chunk = [0u8; READ_CHUNK];
            let n = tokio::time::timeout(timeout, stream.read(&mut chunk))
                .await
                .map_err(|_| ClientError::Timeout("waiting for a reply"))?
                .map_err(|e| ClientError::Io(e.to_string()))?;
            if n == 0 {
                return Err(ClientError::Io("connection closed by the server".into()));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}
