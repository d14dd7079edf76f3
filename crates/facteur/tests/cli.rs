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
        .find(|l| l.contains("shown only this once"))
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
    assert!(!stdout(&again).contains("shown only this once"));
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

    let o = run(&["--json", "account", "passwd", "alice@other.example"]);
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
