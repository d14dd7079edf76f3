//! The `facteur` binary as an admin uses it: first start, admin commands (text and JSON), exit codes,
//! and clear errors for bad input. Each test has its own data folder.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_facteur");

fn facteur(data: &Path, args: &[&str]) -> Output {
    facteur_stdin(data, args, "")
}

fn facteur_stdin(data: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("FACTEUR_CONFIG")
        // Tests run as root without a `facteur` user: stay root (tests/safe_defaults.rs covers
        // the switch).
        .env("FACTEUR_USER", "root")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run facteur");
    if let Some(mut s) = child.stdin.take() {
        let _ = s.write_all(stdin.as_bytes());
    }
    child.wait_with_output().expect("wait facteur")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

/// Listeners on free loopback ports only (tests run in parallel, and as root the defaults would be
/// the standard ports).
const TEST_CONFIG: &str = "[listeners]\nsmtp = [\"127.0.0.1:0\"]\nsubmission = [\"127.0.0.1:0\"]\n\
submissions = [\"127.0.0.1:0\"]\nimap = []\nimaps = []\npop3 = []\npop3s = []\n\
[smtp]\ninbound_auth = false\n[dns]\nnameservers = [\"127.0.0.1:9\"]\n";

/// Runs the first start and returns the printed postmaster password.
fn init(data: &Path, domain: &str) -> String {
    std::fs::create_dir_all(data).expect("mkdir data");
    if !data.join("facteur.toml").exists() {
        std::fs::write(data.join("facteur.toml"), TEST_CONFIG).expect("write test config");
    }
    let o = facteur(data, &["serve", "--init-only", "--domain", domain]);
    assert!(o.status.success(), "first start failed: {}", stderr(&o));
    let out = stdout(&o);
    let line = out
        .lines()
        .find(|l| l.starts_with("Its password: "))
        .unwrap_or_else(|| panic!("no password in: {out}"));
    line.rsplit(' ').next().expect("password").to_string()
}

#[test]
fn first_start_sets_everything_up_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let password = init(&data, "example.com");
    assert!(password.len() >= 16, "weak generated password {password:?}");
    for f in ["facteur.db", "tls/cert.pem", "tls/key.pem"] {
        assert!(data.join(f).exists(), "{f} not created");
    }
    // The printed password is the postmaster's.
    let ok = facteur_stdin(
        &data,
        &["auth", "test", "postmaster@example.com"],
        &format!("{password}\n"),
    );
    assert!(
        ok.status.success(),
        "printed password rejected: {}",
        stderr(&ok)
    );
    let bad = facteur_stdin(
        &data,
        &["auth", "test", "postmaster@example.com"],
        "not-the-password\n",
    );
    assert_eq!(bad.status.code(), Some(1));
    // A second start changes nothing and prints no password.
    let again = facteur(&data, &["serve", "--init-only"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(!stdout(&again).contains("Its password"));
    let list = json(&facteur(&data, &["--json", "account", "list"]));
    assert_eq!(list.as_array().map(|a| a.len()), Some(1));
    assert_eq!(list[0]["address"], "postmaster@example.com");
    assert!(
        !stdout(&facteur(&data, &["--json", "account", "list"])).contains("argon2"),
        "hash leaked"
    );
    let domains = json(&facteur(&data, &["--json", "domain", "list"]));
    assert_eq!(domains[0]["domain"], "example.com");
}

#[test]
fn admin_commands_manage_domains_accounts_aliases() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    init(&data, "example.com");
    let run = |args: &[&str]| facteur(&data, args);

    let o = run(&["--json", "domain", "add", "Other.Example"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json(&o)["domain"], "other.example");
    let o = run(&["--json", "domain", "add", "other.example"]);
    assert_eq!(o.status.code(), Some(1), "duplicate domain must fail");
    let err: serde_json::Value = serde_json::from_slice(&o.stderr).expect("JSON error on stderr");
    assert!(
        err["error"].as_str().is_some_and(|e| e.contains("exists")),
        "{err}"
    );

    let o = facteur_stdin(
        &data,
        &[
            "--json",
            "account",
            "add",
            "Alice@Other.Example",
            "--name",
            "Alice",
            "--quota",
            "100M",
            "--password-stdin",
        ],
        "correct horse battery\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v = json(&o);
    assert_eq!(v["address"], "alice@other.example");
    assert_eq!(v["quota_bytes"], 100 * 1024 * 1024);
    assert!(
        v.get("password").is_none(),
        "a given password must not be echoed"
    );
    assert!(
        facteur_stdin(
            &data,
            &["auth", "test", "ALICE@other.example"],
            "correct horse battery\n"
        )
        .status
        .success()
    );
    let o = facteur_stdin(
        &data,
        &["account", "add", "bob@other.example", "--password-stdin"],
        "short\n",
    );
    assert_ne!(
        o.status.code(),
        Some(0),
        "a too-short password must be refused"
    );

    let o = run(&[
        "--json",
        "account",
        "passwd",
        "alice@other.example",
        "--generate",
    ]);
    let new_pw = json(&o)["password"]
        .as_str()
        .expect("generated password")
        .to_string();
    assert!(
        facteur_stdin(&data, &["auth", "test", "alice@other.example"], &new_pw)
            .status
            .success()
    );
    assert!(
        !facteur_stdin(
            &data,
            &["auth", "test", "alice@other.example"],
            "correct horse battery"
        )
        .status
        .success()
    );

    assert!(
        run(&["account", "quota", "alice@other.example", "2G"])
            .status
            .success()
    );
    let list = json(&run(&["--json", "account", "list", "other.example"]));
    assert_eq!(list[0]["quota_bytes"], 2u64 << 30);
    assert_eq!(
        run(&["account", "quota", "alice@other.example", "lots"])
            .status
            .code(),
        Some(2)
    );

    assert!(
        run(&["account", "disable", "alice@other.example"])
            .status
            .success()
    );
    assert_eq!(
        json(&run(&["--json", "account", "list", "other.example"]))[0]["enabled"],
        false
    );
    assert!(
        !facteur_stdin(&data, &["auth", "test", "alice@other.example"], &new_pw)
            .status
            .success(),
        "disabled account logged in"
    );
    assert!(
        run(&["account", "enable", "alice@other.example"])
            .status
            .success()
    );

    let o = run(&[
        "--json",
        "alias",
        "add",
        "sales@other.example",
        "alice@other.example",
        "partner@far.example",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json(&o)["targets"].as_array().map(|a| a.len()), Some(2));
    let aliases = json(&run(&["--json", "alias", "list"]));
    assert_eq!(aliases[0]["alias"], "sales@other.example");
    assert!(
        run(&["domain", "catchall", "other.example", "alice@other.example"])
            .status
            .success()
    );
    assert_eq!(
        json(&run(&["--json", "domain", "list"]))
            .as_array()
            .and_then(|a| a.iter().find(|d| d["domain"] == "other.example").cloned())
            .expect("domain")["catchall"],
        "alice@other.example"
    );

    let o = run(&["domain", "remove", "other.example"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "removing a domain with accounts needs --force"
    );
    assert!(
        run(&["alias", "remove", "sales@other.example"])
            .status
            .success()
    );
    assert_eq!(
        run(&["alias", "remove", "sales@other.example"])
            .status
            .code(),
        Some(1)
    );
    assert!(
        run(&["account", "remove", "alice@other.example"])
            .status
            .success()
    );
    assert_eq!(
        run(&["account", "remove", "alice@other.example"])
            .status
            .code(),
        Some(1)
    );
    assert!(run(&["domain", "remove", "other.example"]).status.success());
    assert!(run(&["check-store"]).status.success());
    let o = run(&["account", "add", "not an address"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("address"), "{}", stderr(&o));
}

#[test]
fn check_config_names_key_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[limits]\nmax_recipients = 50\n").expect("write");
    let o = facteur(dir.path(), &["check-config", good.to_str().expect("utf8")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[limits]\nmax_recipients = 50\nmax_conections = 3\n").expect("write");
    let o = facteur(dir.path(), &["check-config", bad.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("max_conections") && e.contains(":3"),
        "error should name the key and line 3: {e}"
    );
    let typed = dir.path().join("typed.toml");
    std::fs::write(&typed, "[store]\n\nmax_batch = \"many\"\n").expect("write");
    let e = stderr(&facteur(
        dir.path(),
        &["check-config", typed.to_str().expect("utf8")],
    ));
    assert!(e.contains("max_batch") && e.contains(":3"), "{e}");
    let o = facteur(dir.path(), &["check-config", "/nonexistent/facteur.toml"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn bad_starts_fail_clearly_without_damage() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Corrupt config: refused at start with the line, non-zero exit, nothing created.
    let data = dir.path().join("corrupt");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(data.join("facteur.toml"), "[server\nhostname = 1\n").expect("write");
    let o = facteur(&data, &["serve", "--init-only"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("facteur.toml:1"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"));
    assert!(
        !data.join("facteur.db").exists(),
        "a refused start created a database"
    );

    // Unusable data folder (a path under a regular file).
    let file = dir.path().join("plainfile");
    std::fs::write(&file, b"x").expect("write");
    let o = facteur(&file.join("data"), &["serve", "--init-only"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("data folder"), "{}", stderr(&o));

    // A database from a newer Facteur: refused, and left as it was.
    let newer = dir.path().join("newer");
    init(&newer, "example.com");
    let conn_sql = format!(
        "PRAGMA user_version = {}",
        store::sqlite::schema::SCHEMA_VERSION + 1
    );
    store::sqlite::testing::exec(&newer, &conn_sql).expect("bump version");
    let before = std::fs::read(newer.join("facteur.db")).expect("read");
    let o = facteur(&newer, &["serve", "--init-only"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("newer"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(newer.join("facteur.db")).expect("read"),
        before
    );
    let o = facteur(&newer, &["account", "list"]);
    assert_eq!(o.status.code(), Some(1));

    // Admin commands on a missing data folder say so instead of creating one.
    let missing = dir.path().join("missing");
    let o = facteur(&missing, &["domain", "list"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("does not exist") && !missing.exists());
}

#[test]
fn admin_commands_work_while_the_server_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    init(&data, "example.com");
    let mut server = Command::new(BIN)
        .arg("--data")
        .arg(&data)
        .arg("serve")
        .env("FACTEUR_USER", "root")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start server");
    let mut out = server.stdout.take().expect("stdout");
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("Ready.") {
        use std::io::Read;
        let n = out.read(&mut buf).expect("read server output");
        assert!(n > 0, "server exited early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    for i in 0..5 {
        let o = facteur(&data, &["account", "add", &format!("user{i}@example.com")]);
        assert!(
            o.status.success(),
            "account add while serving: {}",
            stderr(&o)
        );
    }
    assert_eq!(
        json(&facteur(&data, &["--json", "account", "list"]))
            .as_array()
            .map(|a| a.len()),
        Some(6)
    );
    // SIGTERM: a clean stop, exit status 0.
    // SAFETY: kill(2) on the PID of the child this test started.
    let rc = unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let status = server.wait().expect("wait server");
    assert!(status.success(), "server did not stop cleanly: {status:?}");
}

#[test]
fn first_start_on_an_empty_folder_writes_a_valid_default_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("fresh");
    let o = facteur(&data, &["serve", "--init-only"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("Wrote the default config") && out.contains("postmaster@localhost"),
        "{out}"
    );
    let text = std::fs::read_to_string(data.join("facteur.toml")).expect("config written");
    assert!(text.contains("[listeners]") && text.contains("[limits]") && text.contains("[smtp]"));
    let o = facteur(&data, &["check-config"]);
    assert!(
        o.status.success(),
        "default config does not validate: {}",
        stderr(&o)
    );
}

/// Test listeners with SMTP on `smtp` (e.g. "127.0.0.1:0"), and cheap Argon2.
fn serving_config(smtp: &str) -> String {
    format!(
        "[listeners]\nsmtp = [\"{smtp}\"]\nsubmission = []\nsubmissions = []\nimap = []\nimaps = []\n\
         pop3 = []\npop3s = []\n[smtp]\ninbound_auth = false\n[dns]\nnameservers = [\"127.0.0.1:9\"]\n\
         [auth]\nargon2_memory_kib = 1024\nargon2_iterations = 1\n"
    )
}

/// A running `facteur serve`, stopped (by PID) when dropped.
struct Serving {
    child: std::process::Child,
    banner: String,
}

impl Serving {
    /// Starts `serve` with `args` and reads its banner up to "Ready.".
    fn start(data: &Path, args: &[&str]) -> Serving {
        use std::io::BufRead;
        let mut child = Command::new(BIN)
            .arg("--data")
            .arg(data)
            .arg("serve")
            .args(args)
            .env("RUST_LOG", "warn")
            .env("FACTEUR_USER", "root")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start server");
        let mut reader = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut banner = String::new();
        loop {
            let mut line = String::new();
            let n = reader.read_line(&mut line).expect("read banner");
            assert!(n > 0, "server exited early:\n{banner}");
            banner.push_str(&line);
            if line.trim() == "Ready." {
                break;
            }
        }
        Serving { child, banner }
    }

    fn smtp_addr(&self) -> std::net::SocketAddr {
        self.banner
            .lines()
            .find_map(|l| {
                let mut parts = l.split_whitespace();
                (parts.next() == Some("smtp"))
                    .then(|| parts.next()?.parse().ok())
                    .flatten()
            })
            .unwrap_or_else(|| panic!("no smtp listener in:\n{}", self.banner))
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends SMTP commands one by one and returns each reply's last line.
fn smtp_dialogue(addr: std::net::SocketAddr, commands: &[&str]) -> Vec<String> {
    use std::io::BufRead;
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    let mut r = std::io::BufReader::new(s.try_clone().expect("clone"));
    let mut read_reply = || {
        let mut l = String::new();
        loop {
            l.clear();
            r.read_line(&mut l).expect("reply");
            if l.as_bytes().get(3) != Some(&b'-') {
                return l.trim_end().to_string();
            }
        }
    };
    let mut replies = vec![read_reply()];
    for c in commands {
        s.write_all(format!("{c}\r\n").as_bytes()).expect("write");
        replies.push(read_reply());
    }
    replies
}

#[test]
fn domain_and_hostname_given_at_first_start_go_into_the_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(data.join("facteur.toml"), serving_config("127.0.0.1:0")).expect("config");
    let server = Serving::start(
        &data,
        &[
            "--domain",
            "Example.TEST",
            "--hostname",
            "mail.example.test",
        ],
    );
    // The file says it, so every later start and admin command agrees.
    let cfg = std::fs::read_to_string(data.join("facteur.toml")).expect("config");
    assert!(
        cfg.contains("primary_domain = \"example.test\"")
            && cfg.contains("hostname = \"mail.example.test\""),
        "{cfg}"
    );
    assert!(
        cfg.contains("[listeners]"),
        "the admin's file is kept: {cfg}"
    );
    assert!(
        !server.banner.contains("fully qualified"),
        "{}",
        server.banner
    );

    // RFC 5321 §4.5.1: "postmaster" without a domain is the primary domain's postmaster, not
    // relaying.
    let replies = smtp_dialogue(
        server.smtp_addr(),
        &[
            "EHLO client.test",
            "MAIL FROM:<someone@far.test>",
            "RCPT TO:<postmaster>",
            "RCPT TO:<postmaster@example.test>",
            "QUIT",
        ],
    );
    assert!(
        replies[0].starts_with("220 mail.example.test"),
        "{replies:?}"
    );
    assert!(
        replies[3].starts_with("250"),
        "postmaster refused: {replies:?}"
    );
    assert!(replies[4].starts_with("250"), "{replies:?}");
    drop(server);

    // Later, --domain is ignored with a warning and the file keeps its value.
    let o = facteur(&data, &["serve", "--init-only", "--domain", "other.test"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("--domain other.test is ignored"),
        "{}",
        stdout(&o)
    );

    // A --domain that contradicts the admin's own file at first start is refused.
    let data2 = dir.path().join("data2");
    std::fs::create_dir_all(&data2).expect("mkdir");
    std::fs::write(
        data2.join("facteur.toml"),
        format!(
            "{}[server]\nprimary_domain = \"a.test\"\n",
            serving_config("127.0.0.1:0")
        ),
    )
    .expect("config");
    let o = facteur(&data2, &["serve", "--init-only", "--domain", "b.test"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("differs from server.primary_domain"),
        "{}",
        stderr(&o)
    );
    let o = facteur(&data2, &["serve", "--init-only", "--domain", "bad domain"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("not a valid DNS name"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn first_start_warns_about_a_short_host_name_and_says_what_next() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let o = facteur(
        &data,
        &[
            "serve",
            "--init-only",
            "--domain",
            "example.test",
            "--hostname",
            "vm",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let text = out.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in [
        "the host name \"vm\" is not a fully qualified domain name",
        "greeting",
        "MX record",
        "certificate",
        "set server.hostname",
        "Next steps:",
        &format!(
            "facteur --data {} account add alice@example.test",
            data.display()
        ),
        &format!("facteur --data {} dns example.test", data.display()),
        "dns example.test --check",
        "self-signed",
        "ACME",
    ] {
        assert!(text.contains(needle), "banner lacks {needle:?}:\n{out}");
    }
    let cfg = std::fs::read_to_string(data.join("facteur.toml")).expect("config");
    assert!(cfg.contains("hostname = \"vm\"") && cfg.contains("primary_domain = \"example.test\""));
    // The warning comes back at every start; the next steps do not.
    let o = facteur(&data, &["serve", "--init-only"]);
    assert!(stdout(&o).contains("not a fully qualified domain name"));
    assert!(!stdout(&o).contains("Next steps"));
}

/// A first start that fails (a port already taken) must not lose the postmaster's password. The
/// ports are bound before anything is created, so such a start creates no account at all; the
/// next start creates it and writes the password, before serving, to a file for the server's user
/// only.
#[test]
fn a_failed_first_start_keeps_the_postmaster_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    // Something else holds the SMTP port.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    std::fs::write(data.join("facteur.toml"), serving_config(&addr)).expect("config");
    let o = facteur(&data, &["serve", "--domain", "example.test"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "the start should fail: {}",
        stdout(&o)
    );
    assert!(stderr(&o).contains(&addr), "{}", stderr(&o));
    let file = data.join("initial-postmaster-password");
    assert!(
        !file.exists(),
        "the failed start wrote a password file although it should have created nothing"
    );
    let list = facteur(&data, &["account", "list"]);
    assert!(
        !stdout(&list).contains("postmaster@"),
        "a failed start created the postmaster, whose password nobody saw:\n{}",
        stdout(&list)
    );

    // Once the port is free the first start completes, and the password is in the file.
    drop(taken);
    let o = facteur(&data, &["serve", "--domain", "example.test", "--init-only"]);
    assert!(o.status.success(), "{}", stderr(&o));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file)
        .expect("password file")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the password file is for the server's user only"
    );
    let text = std::fs::read_to_string(&file).expect("read");
    assert!(text.contains("delete this file"), "{text}");
    let password = text
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .expect("password line");
    assert!(
        stdout(&o).contains(password),
        "the banner shows the password too"
    );
    let ok = facteur_stdin(
        &data,
        &["auth", "test", "postmaster@example.test"],
        &format!("{password}\n"),
    );
    assert!(ok.status.success(), "{}", stderr(&ok));

    // Later starts remind where the password is while the file exists.
    let o = facteur(&data, &["serve", "--init-only"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("first password is still in"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn weak_passwords_are_refused_and_passwd_asks_or_says_how() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    init(&data, "example.test");
    for weak in ["password", "Password1", "alice@example.test", "short"] {
        let o = facteur_stdin(
            &data,
            &["account", "add", "alice@example.test", "--password-stdin"],
            &format!("{weak}\n"),
        );
        assert_eq!(o.status.code(), Some(1), "{weak} accepted");
        let e = stderr(&o);
        assert!(
            e.contains("too easy to guess") || e.contains("shorter than 8"),
            "{weak}: {e}"
        );
    }
    let e = stderr(&facteur_stdin(
        &data,
        &["account", "add", "alice@example.test", "--password-stdin"],
        "Password1\n",
    ));
    assert!(e.contains("common"), "zxcvbn's reason is given: {e}");
    // The default for `add`: a generated password, printed once, that logs in.
    let o = facteur(&data, &["--json", "account", "add", "alice@example.test"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let generated = json(&o)["password"].as_str().expect("password").to_string();
    assert!(
        facteur_stdin(&data, &["auth", "test", "alice@example.test"], &generated)
            .status
            .success()
    );

    // `passwd` without a terminal and without a flag: a usage error naming both ways.
    let o = facteur(&data, &["account", "passwd", "alice@example.test"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--password-stdin") && stderr(&o).contains("--generate"),
        "{}",
        stderr(&o)
    );
    let o = facteur_stdin(
        &data,
        &[
            "account",
            "passwd",
            "alice@example.test",
            "--password-stdin",
        ],
        "Password1\n",
    );
    assert_eq!(o.status.code(), Some(1));
    let o = facteur(
        &data,
        &[
            "--json",
            "account",
            "passwd",
            "alice@example.test",
            "--generate",
        ],
    );
    let new_pw = json(&o)["password"].as_str().expect("password").to_string();
    assert!(
        facteur_stdin(&data, &["auth", "test", "alice@example.test"], &new_pw)
            .status
            .success()
    );

    // On a terminal, passwd asks twice without echo, and explains a refusal before asking again.
    let strong = "velvet-otter-quarry-93";
    let script = r#"
import os, pty, select, sys, termios, time
bin, data, addr, weak, strong = sys.argv[1:6]
pid, fd = pty.fork()
if pid == 0:
    os.execv(bin, [bin, "--data", data, "account", "passwd", addr])
out = b""
def until(pattern, count=1):
    global out
    deadline = time.time() + 60
    while out.count(pattern) < count:
        if not select.select([fd], [], [], 1)[0]:
            if time.time() > deadline:
                sys.exit("timeout waiting for %r in %r" % (pattern, out))
            continue
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            sys.exit("closed waiting for %r in %r" % (pattern, out))
        if not chunk:
            sys.exit("eof waiting for %r in %r" % (pattern, out))
        out += chunk
def type_hidden(text):
    # Like a person, type once the prompt has turned echo off (input typed before that would be
    # echoed by the terminal itself, whatever the program does).
    deadline = time.time() + 60
    while termios.tcgetattr(fd)[3] & termios.ECHO:
        if time.time() > deadline:
            sys.exit("echo never turned off: %r" % out)
        time.sleep(0.01)
    os.write(fd, text.encode() + b"\n")
until(b"New password for")
type_hidden(weak)
until(b"too easy to guess")
until(b"New password for", 2)
type_hidden(strong)
until(b"Again")
type_hidden(strong)
until(b"changed")
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let o = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(BIN)
        .arg(&data)
        .arg("alice@example.test")
        .arg("Password1")
        .arg(strong)
        .output()
        .expect("python3");
    let screen = stdout(&o);
    assert!(o.status.success(), "{screen}{}", stderr(&o));
    assert!(
        !screen.contains(strong) && !screen.contains("Password1"),
        "echoed: {screen}"
    );
    assert!(
        facteur_stdin(&data, &["auth", "test", "alice@example.test"], strong)
            .status
            .success()
    );
}

#[test]
fn directory_mistakes_are_refused_with_a_way_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    init(&data, "example.test");
    let run = |args: &[&str]| facteur(&data, args);
    assert!(
        run(&["account", "add", "bob@example.test", "--quota", "100M"])
            .status
            .success()
    );

    // A local target that does not exist (a typo) would lose mail.
    let o = run(&["alias", "add", "sales@example.test", "bbo@example.test"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("bbo@example.test")
            && stderr(&o).contains("neither an account nor an alias"),
        "{}",
        stderr(&o)
    );
    assert!(
        run(&[
            "alias",
            "add",
            "sales@example.test",
            "bob@example.test",
            "x@far.test"
        ])
        .status
        .success()
    );
    assert!(
        run(&["alias", "add", "team@example.test", "sales@example.test"])
            .status
            .success()
    );
    let o = run(&["domain", "catchall", "example.test", "nobody@example.test"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        run(&["domain", "catchall", "example.test", "sales@example.test"])
            .status
            .success()
    );

    // An unknown domain is an error, not an empty list.
    let o = run(&["account", "list", "nosuch.test"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("nosuch.test"), "{}", stderr(&o));
    assert_eq!(
        run(&["alias", "list", "nosuch.test"]).status.code(),
        Some(1)
    );

    // Removing a domain with accounts says how to force it and what that deletes.
    let o = run(&["domain", "remove", "example.test"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("--force") && e.contains("all their mail"), "{e}");

    // Quotas print one way; JSON gives bytes.
    let list = stdout(&run(&["account", "list", "example.test"]));
    assert!(list.contains("0 B of 100 MiB (0%)"), "{list}");
    assert!(list.contains("0 B of unlimited"), "{list}");
    let o = run(&["account", "quota", "bob@example.test", "2G"]);
    assert_eq!(stdout(&o).trim(), "quota of bob@example.test set to 2 GiB");
    let o = run(&["account", "quota", "bob@example.test", "unlimited"]);
    assert_eq!(
        stdout(&o).trim(),
        "quota of bob@example.test set to unlimited"
    );
    let v = json(&run(&["--json", "account", "list", "example.test"]));
    assert!(
        v[0]["quota_bytes"].is_null() && v[0]["used_bytes"] == 0,
        "{v}"
    );

    // auth test tells the admin an account is disabled.
    let password = {
        let o = run(&[
            "--json",
            "account",
            "passwd",
            "bob@example.test",
            "--generate",
        ]);
        json(&o)["password"].as_str().expect("password").to_string()
    };
    assert!(
        run(&["account", "disable", "bob@example.test"])
            .status
            .success()
    );
    let o = facteur_stdin(&data, &["auth", "test", "bob@example.test"], &password);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("account disabled"), "{}", stderr(&o));
}

#[test]
fn check_config_reports_every_error_in_words() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("f.toml");
    std::fs::write(
        &file,
        "[limits]\nmax_message_size = \"50M\"\nmax_conections = 10\n\
         [queue]\nrelay_prot = 587\nrelay_port = 70000\n",
    )
    .expect("write");
    let path = file.to_str().expect("utf8");
    let o = facteur(dir.path(), &["check-config", path]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    for needle in [
        "3 errors",
        ":3: unknown key `max_conections` in [limits]; did you mean `max_connections`?",
        ":5: unknown key `relay_prot` in [queue]; did you mean `relay_port`?",
        ":6: invalid value for queue.relay_port: expected a port number from 1 to 65535",
    ] {
        assert!(e.contains(needle), "{needle:?} not in {e}");
    }
    let o = facteur(dir.path(), &["--json", "check-config", path]);
    let v = json(&o);
    assert_eq!(v["ok"], false);
    let lines: Vec<u64> = v["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["line"].as_u64().expect("line"))
        .collect();
    assert_eq!(lines, [3, 5, 6]);
    // Sizes in words are valid, as for --quota.
    std::fs::write(
        &file,
        "[limits]\nmax_message_size = \"50M\"\n[store]\ninline_blob_max = \"512K\"\n",
    )
    .expect("write");
    let o = facteur(dir.path(), &["check-config", path]);
    assert!(o.status.success(), "{}", stderr(&o));
}
