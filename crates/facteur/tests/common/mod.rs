//! Test harness: runs the real `facteur` binary on its own data folder with listeners on free
//! loopback ports, and stops it (by PID) when dropped.
#![allow(dead_code)]

pub mod dnsmasq;
pub mod dnssec;
pub mod limits;
pub mod mail;
pub mod pop3;
pub mod postfix;
pub mod raw;
pub mod tmpfs;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_facteur");

/// A `[dns]` section whose resolver is a closed loopback port: no query leaves the machine.
pub const NO_DNS: &str = "[dns]\nnameservers = [\"127.0.0.1:9\"]\n";

/// Config for tests: free loopback ports, cheap Argon2 (tests hash many passwords), readable test
/// passwords (no strength check: `tests/cli.rs` tests the policy), no IMAP/POP3 listeners yet.
/// `extra` is appended (sections must not repeat those below).
pub fn test_config(domain: &str, extra: &str) -> String {
    // No test may reach the machine's resolver. Unless a test points [dns] at its own dnsmasq,
    // DNS goes to a closed loopback port (lookups fail, outbound mail waits in the queue) and the
    // inbound SPF/DKIM/DMARC checks, which would only wait for those lookups, are off. These
    // sections go before [auth], which `extra` may continue with bare keys.
    let own_dns = extra.contains("[dns]");
    let mut pre = String::new();
    let mut extra = extra.to_string();
    if !own_dns {
        pre.push_str(NO_DNS);
        if extra.contains("[smtp]\n") {
            extra = extra.replacen("[smtp]\n", "[smtp]\ninbound_auth = false\n", 1);
        } else {
            pre.push_str("[smtp]\ninbound_auth = false\n");
        }
    }
    format!(
        "[server]\nhostname = \"mx.{domain}\"\nprimary_domain = \"{domain}\"\n\
         [listeners]\nsmtp = [\"127.0.0.1:0\"]\nsubmission = [\"127.0.0.1:0\"]\nsubmissions = [\"127.0.0.1:0\"]\n\
         lmtp = [\"127.0.0.1:0\"]\nimap = [\"127.0.0.1:0\"]\nimaps = [\"127.0.0.1:0\"]\npop3 = []\npop3s = []\n\
         {pre}[auth]\nargon2_memory_kib = 1024\nargon2_iterations = 1\nmin_password_score = 0\n{extra}"
    )
}

/// `serve --user` of the tests: stay the user that runs the tests (root here).
pub const ROOT_USER: &str = "root";

/// Sets a mode on a path the test made.
pub fn private(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

pub struct Server {
    pub dir: tempfile::TempDir,
    pub data: PathBuf,
    pub child: Option<Child>,
    /// Service name ("smtp", "submission", "submissions", "lmtp") to bound address.
    pub addrs: HashMap<String, SocketAddr>,
    pub domain: String,
    /// The postmaster's password printed at first start.
    pub password: String,
    /// Everything the server printed on stdout up to "Ready.".
    pub banner: String,
    /// Extra environment of the server process (e.g. a fault-injection LD_PRELOAD).
    pub env: Vec<(String, String)>,
    /// Where the server's log (stderr) goes, when not to the test's own stderr.
    pub log_file: Option<PathBuf>,
    /// `serve --user` (FACTEUR_USER): root by default, as the tests run as root on data folders
    /// of their own with no `facteur` user; None leaves server.user in charge.
    pub user: Option<String>,
}

impl Server {
    pub fn start(domain: &str) -> Server {
        Server::start_with(domain, "")
    }

    /// Starts a server whose config is `test_config(domain, extra)`.
    pub fn start_with(domain: &str, extra: &str) -> Server {
        Server::start_config(domain, &test_config(domain, extra))
    }

    /// Like [`Server::start_with`], with POP3 listening too (pop3 with STLS, and pop3s).
    pub fn start_pop3(domain: &str, extra: &str) -> Server {
        let config = test_config(domain, extra).replacen(
            "pop3 = []\npop3s = []\n",
            "pop3 = [\"127.0.0.1:0\"]\npop3s = [\"127.0.0.1:0\"]\n",
            1,
        );
        Server::start_config(domain, &config)
    }

    /// Starts a server with exactly `config` as its facteur.toml (own listeners and sections).
    pub fn start_config(domain: &str, config: &str) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        Server::start_at(dir, data, domain, config)
    }

    /// As [`Server::start_config`], with the data folder at `data` (on a test filesystem, say);
    /// `dir` lives as long as the server.
    pub fn start_at(dir: tempfile::TempDir, data: PathBuf, domain: &str, config: &str) -> Server {
        let mut s = Server::prepare_at(dir, data, domain, config);
        s.spawn();
        s
    }

    /// Starts a server with exactly `config`, logging at `level` (without colour) to a file that
    /// [`Server::log`] reads.
    pub fn start_logged(domain: &str, config: &str, level: &str) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let log = dir.path().join("server.log");
        let mut s = Server::prepare_at(dir, data, domain, config);
        s.env.push(("RUST_LOG".into(), level.into()));
        s.env.push(("NO_COLOR".into(), "1".into()));
        s.log_file = Some(log);
        s.spawn();
        s
    }

    /// As [`Server::start_at`] without starting the process: set fields, then [`Server::spawn`].
    pub fn prepare_at(dir: tempfile::TempDir, data: PathBuf, domain: &str, config: &str) -> Server {
        std::fs::create_dir_all(&data).expect("mkdir");
        std::fs::write(data.join("facteur.toml"), config).expect("write config");
        // As an admin following the docs would: the server only warns about (and fixes) a more
        // open folder, which tests/safe_defaults.rs covers.
        private(&data, 0o700);
        private(&data.join("facteur.toml"), 0o600);
        Server {
            dir,
            data,
            child: None,
            addrs: HashMap::new(),
            domain: domain.into(),
            password: String::new(),
            banner: String::new(),
            env: Vec::new(),
            log_file: None,
            user: Some(ROOT_USER.to_owned()),
        }
    }

    /// What the server logged so far (with [`Server::start_logged`]), colour codes removed.
    pub fn log(&self) -> String {
        let path = self.log_file.as_ref().expect("started with start_logged");
        let raw = std::fs::read_to_string(path).unwrap_or_default();
        // CSI sequences: ESC [ parameters, then a final byte in @..~.
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\x1b' && chars.peek() == Some(&'[') {
                chars.next();
                for f in chars.by_ref() {
                    if ('@'..='~').contains(&f) {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    /// Starts (or restarts) the process on the same data folder; ports change on every start.
    pub fn spawn(&mut self) {
        let stderr = match &self.log_file {
            Some(p) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .expect("open the server log"),
            ),
            None => Stdio::inherit(),
        };
        let mut cmd = Command::new(BIN);
        match &self.user {
            Some(u) => cmd.env("FACTEUR_USER", u),
            None => cmd.env_remove("FACTEUR_USER"),
        };
        let mut child = cmd
            .arg("--data")
            .arg(&self.data)
            .arg("serve")
            .arg("--domain")
            .arg(&self.domain)
            .env(
                "RUST_LOG",
                std::env::var("FACTEUR_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start facteur");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let mut banner = String::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        self.addrs.clear();
        loop {
            let mut line = String::new();
            let n = reader.read_line(&mut line).expect("read banner");
            assert!(n > 0, "facteur exited before it was ready:\n{banner}");
            assert!(Instant::now() < deadline, "facteur not ready in time");
            banner.push_str(&line);
            if let Some(pw) = line.strip_prefix("Its password: ") {
                self.password = pw.trim().to_string();
            }
            let t = line.trim();
            let mut parts = t.split_whitespace();
            if let (Some(service), Some(addr)) = (parts.next(), parts.next())
                && let Ok(a) = addr.parse::<SocketAddr>()
            {
                self.addrs.insert(service.to_string(), a);
            }
            if t == "Ready." {
                break;
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        self.banner = banner;
        self.child = Some(child);
    }

    pub fn addr(&self, service: &str) -> SocketAddr {
        *self
            .addrs
            .get(service)
            .unwrap_or_else(|| panic!("no {service} listener in:\n{}", self.banner))
    }

    /// SIGKILL, as a crash or power cut would stop it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs an admin command against this server's data folder.
    pub fn admin(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--data")
            .arg(&self.data)
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run facteur")
    }

    /// Adds an account with a known password.
    pub fn add_account(&self, address: &str, password: &str) {
        use std::io::Write;
        let mut c = Command::new(BIN)
            .arg("--data")
            .arg(&self.data)
            .args(["account", "add", address, "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run facteur");
        c.stdin
            .take()
            .expect("stdin")
            .write_all(password.as_bytes())
            .expect("write password");
        let out = c.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "account add {address}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Makes the (pending) DKIM keys of `domain` sign without their DNS records, for tests of
    /// signed mail that publish no DNS (`facteur dkim activate --force`). Call it before the
    /// first message: the server caches a domain's keys for a minute.
    pub fn activate_dkim(&self, domain: &str) {
        let out = self.admin(&["dkim", "activate", domain, "--force"]);
        assert!(
            out.status.success(),
            "dkim activate {domain}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Opens the store of the data folder (the server may be running: the store is multi-process).
    pub fn store(&self) -> store::DynStore {
        std::sync::Arc::new(
            store::sqlite::Sqlite::open(&self.data, store::sqlite::SqliteOptions::default())
                .expect("open store"),
        )
    }

    pub fn data(&self) -> &Path {
        &self.data
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Raw bytes of every message in the INBOX of `address`, in UID order.
pub async fn inbox(store: &store::DynStore, address: &str) -> Vec<Vec<u8>> {
    let (local, domain) = address.split_once('@').expect("address");
    let acc = store
        .account_get(local, domain)
        .await
        .expect("account_get")
        .expect("account exists");
    let mb = store
        .mailbox_get(acc.id, "INBOX")
        .await
        .expect("mailbox_get")
        .expect("INBOX");
    let mut out = Vec::new();
    for m in store.messages(mb.id, 1..=u32::MAX).await.expect("messages") {
        out.push(store.blob_read(m.blob, None).await.expect("blob"));
    }
    out
}

/// The message as the client sent it: the stored copy without what the server put in front —
/// Return-Path, then (on submission) our DKIM-Signature fields, (on port 25) our
/// Authentication-Results and X-Spam-* fields, and our Received field, each possibly folded.
pub fn strip_trace(stored: &[u8]) -> &[u8] {
    assert!(
        stored.starts_with(b"Return-Path: <"),
        "no Return-Path first: {:?}",
        String::from_utf8_lossy(&stored[..stored.len().min(200)])
    );
    let mut i = 0;
    loop {
        let line_end = stored[i..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|p| i + p + 2)
            .expect("header line");
        // The field runs to the next line that does not start with white space.
        let mut end = line_end;
        while stored[end..].starts_with(b" ") || stored[end..].starts_with(b"\t") {
            end += stored[end..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("line")
                + 2;
        }
        let field = &stored[i..end];
        let ours = field.starts_with(b"Return-Path:")
            || field.starts_with(b"DKIM-Signature:")
            || field.starts_with(b"Authentication-Results:")
            || field.starts_with(b"X-Spam-");
        if ours {
            i = end;
            continue;
        }
        if field.starts_with(b"Received: ") {
            // Our Received is the last field we add.
            return &stored[end..];
        }
        panic!(
            "no Received field of ours before {:?}",
            String::from_utf8_lossy(&field[..field.len().min(80)])
        );
    }
}

/// Sends one message over plain SMTP (EHLO, MAIL, RCPT, DATA) and returns the reply to the end of
/// data, or the first 4xx/5xx reply before it.
pub fn raw_smtp(addr: SocketAddr, from: &str, to: &str, message: &str) -> String {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let read_reply = |r: &mut BufReader<std::net::TcpStream>| {
        let mut l = String::new();
        loop {
            l.clear();
            r.read_line(&mut l).expect("reply");
            if l.as_bytes().get(3) != Some(&b'-') {
                return l.clone();
            }
        }
    };
    read_reply(&mut r);
    for cmd in [
        "EHLO client.test".to_string(),
        format!("MAIL FROM:<{from}>"),
        format!("RCPT TO:<{to}>"),
        "DATA".to_string(),
    ] {
        s.write_all(format!("{cmd}\r\n").as_bytes()).expect("write");
        let reply = read_reply(&mut r);
        if reply.starts_with('4') || reply.starts_with('5') {
            return reply;
        }
    }
    s.write_all(format!("{message}\r\n.\r\n").as_bytes())
        .expect("write");
    let end = read_reply(&mut r);
    let _ = s.write_all(b"QUIT\r\n");
    end
}
