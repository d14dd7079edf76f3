//! One raw-protocol test client for the tests that speak SMTP, IMAP or POP3 bytes themselves
//! (floods, slow clients, pipelining, limits): a line reader over any byte stream, TCP connections
//! from a chosen loopback address, and a TLS client that accepts the server's self-signed
//! certificate. Each test file adds its protocol's commands (`impl Conn<S> { fn reply ... }`).

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

/// A TLS client stream over a blocking TCP socket.
pub type Tls = StreamOwned<ClientConnection, TcpStream>;

/// What one read gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    Data,
    /// The server closed (or reset) the connection.
    Closed,
    /// Nothing within the socket's read timeout.
    TimedOut,
}

/// A line client over any byte stream.
pub struct Conn<S> {
    pub s: S,
    /// Bytes received and not yet consumed.
    pub buf: Vec<u8>,
    /// IMAP: a line that ends with a literal announcement (`{n}`) carries the literal inline.
    literals: bool,
}

impl<S: Read + Write> Conn<S> {
    pub fn new(s: S) -> Conn<S> {
        Conn {
            s,
            buf: Vec::new(),
            literals: false,
        }
    }

    /// An IMAP client: [`Conn::line`] reads the literals a line announces (RFC 9051 §4.3).
    pub fn imap(s: S) -> Conn<S> {
        Conn {
            literals: true,
            ..Conn::new(s)
        }
    }

    /// Writes everything; panics when the server is gone.
    pub fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("write to server");
        self.s.flush().expect("flush");
    }

    /// Writes everything; false when the server is gone.
    pub fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.s.write_all(bytes).is_ok() && self.s.flush().is_ok()
    }

    /// Reads once more into the buffer.
    pub fn fill(&mut self) -> Fill {
        let mut tmp = [0u8; 16 * 1024];
        match self.s.read(&mut tmp) {
            Ok(0) => Fill::Closed,
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                Fill::Data
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Fill::TimedOut
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset
                        | ErrorKind::ConnectionAborted
                        | ErrorKind::UnexpectedEof
                        | ErrorKind::BrokenPipe
                ) =>
            {
                Fill::Closed
            }
            Err(e) => panic!(
                "reading from the server: {e} (received so far: {:?})",
                self.received()
            ),
        }
    }

    /// Reads more; false when the server closed the connection. A read timeout fails the test:
    /// the server neither answered nor closed.
    fn more(&mut self) -> bool {
        match self.fill() {
            Fill::Data => true,
            Fill::Closed => false,
            Fill::TimedOut => panic!(
                "nothing within the read timeout (received so far: {:?})",
                self.received()
            ),
        }
    }

    /// The start of what is buffered, for failure messages.
    fn received(&self) -> String {
        String::from_utf8_lossy(&self.buf[..self.buf.len().min(500)]).into_owned()
    }

    /// A complete line already received, if any (without its CRLF).
    pub fn buffered_line(&mut self) -> Option<String> {
        let p = self.buf.windows(2).position(|w| w == b"\r\n")?;
        let l: Vec<u8> = self.buf.drain(..p + 2).collect();
        Some(String::from_utf8_lossy(&l[..p]).into_owned())
    }

    /// One CRLF-terminated line (for an IMAP client, with the literals it announces read in full
    /// and kept inline); None when the server closed the connection.
    pub fn line(&mut self) -> Option<String> {
        let mut out = Vec::new();
        let mut from = 0;
        loop {
            let p = loop {
                if let Some(p) = self.buf[from..].windows(2).position(|w| w == b"\r\n") {
                    break from + p;
                }
                from = self.buf.len().saturating_sub(1);
                if !self.more() {
                    return None;
                }
            };
            from = 0;
            let l: Vec<u8> = self.buf.drain(..p + 2).collect();
            let l = &l[..p];
            out.extend_from_slice(l);
            let n = match literal_len(l) {
                Some(n) if self.literals => n,
                _ => return Some(String::from_utf8_lossy(&out).into_owned()),
            };
            while self.buf.len() < n {
                if !self.more() {
                    return None;
                }
            }
            out.extend(self.buf.drain(..n));
        }
    }

    /// Every line until the server closes the connection.
    pub fn rest(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(l) = self.line() {
            out.push(l);
        }
        out
    }

    /// Writes `data`, stopping quietly when the server closes mid-way (an accepted outcome).
    pub fn flood(&mut self, data: &[u8]) {
        for chunk in data.chunks(64 * 1024) {
            if !self.try_send(chunk) {
                break;
            }
        }
    }
}

impl Conn<TcpStream> {
    /// Writes `data` (see [`Conn::flood`]), then reads every line until the server closes.
    pub fn flood_then_rest(&mut self, data: &[u8]) -> Vec<String> {
        self.flood(data);
        self.rest()
    }
}

impl Conn<Tls> {
    /// Like the plaintext one. After a failed write rustls would retry its pending write before
    /// every read (and fail again), so what the server sent before closing is read from the
    /// socket directly.
    pub fn flood_then_rest(&mut self, data: &[u8]) -> Vec<String> {
        self.flood(data);
        loop {
            match self.s.conn.read_tls(&mut self.s.sock) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let state = self.s.conn.process_new_packets();
            let mut tmp = Vec::new();
            let _ = self.s.conn.reader().read_to_end(&mut tmp);
            self.buf.extend_from_slice(&tmp);
            if state.is_err() {
                break;
            }
        }
        let text = String::from_utf8_lossy(&self.buf).into_owned();
        self.buf.clear();
        text.split_terminator("\r\n").map(str::to_string).collect()
    }
}

/// The length of the literal a response line announces at its end (`... {123}`).
pub fn literal_len(line: &[u8]) -> Option<usize> {
    let body = line.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&body[open + 1..]).ok()?.parse().ok()
}

/// A TCP connection to `addr`, from the loopback address `from` when given (each address has its
/// own per-IP counts), with read and write timeouts.
pub fn try_tcp(
    addr: SocketAddr,
    from: Option<IpAddr>,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let s = match from {
        None => TcpStream::connect(addr)?,
        Some(from) => {
            let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
            sock.bind(&SocketAddr::new(from, 0).into())?;
            sock.connect_timeout(&addr.into(), timeout)?;
            sock.into()
        }
    };
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    Ok(s)
}

/// [`try_tcp`], failing the test when the connection cannot be made.
pub fn tcp(addr: SocketAddr, from: Option<IpAddr>, timeout: Duration) -> TcpStream {
    try_tcp(addr, from, timeout).unwrap_or_else(|e| panic!("connect {addr} from {from:?}: {e}"))
}

/// Accepts any server certificate: the test servers present the self-signed one made at first
/// start.
#[derive(Debug)]
struct AnyCert;

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS client configuration (TLS 1.2 and 1.3, ring) that accepts the test server's certificate.
pub fn tls_config() -> Arc<ClientConfig> {
    let cfg =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert))
            .with_no_client_auth();
    Arc::new(cfg)
}

/// The TLS handshake over `tcp`, as a client asking for `server_name`.
pub fn handshake(mut tcp: TcpStream, server_name: &str) -> Tls {
    let name = ServerName::try_from(server_name.to_string()).expect("server name");
    let mut conn = ClientConnection::new(tls_config(), name).expect("client connection");
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).expect("TLS handshake");
    }
    StreamOwned::new(conn, tcp)
}
