//! The `facteur` binary on a real full disk (a small tmpfs): a first start that does not fit, and
//! an admin command on a data folder that filled up. The operator must get one clear error
//! line and a non-zero exit, never a panic, and everything must work again once space is freed.
//!
//! Mounting needs root: the tests are `#[ignore]`d and scripts/test.sh runs them as root.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::tmpfs::{Tmpfs, fill};

const BIN: &str = env!("CARGO_BIN_EXE_facteur");

/// tmpfs sizes (KiB) too small for a first start. Between them, the first start runs out of
/// space at different steps: config file, TLS key and certificate, database creation, schema
/// migration, full-text database, postmaster account.
const TOO_SMALL_KIB: &[u64] = &[4, 8, 12, 16, 32, 64, 96, 128, 160, 192, 224];
/// Repetitions of the strict admin test (which step fails first varies between runs).
const ROUNDS: usize = 5;
/// Enough for a first start with room to spare.
const ROOMY_KIB: u64 = 4096;

fn facteur(data: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("FACTEUR_CONFIG")
        // Tests run as root without a `facteur` user: stay root (tests/safe_defaults.rs covers
        // the switch).
        .env("FACTEUR_USER", "root")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run facteur")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The error lines the binary itself prints (log lines from `tracing` are separate).
fn error_lines(o: &Output) -> Vec<String> {
    stderr(o)
        .lines()
        .filter(|l| l.starts_with("facteur: "))
        .map(str::to_string)
        .collect()
}

/// Fails the test unless `o` is a clean failure: non-zero exit, no panic, exactly one error line.
fn assert_clean_failure(o: &Output, what: &str) -> String {
    let err = stderr(o);
    assert!(!o.status.success(), "{what}: succeeded on a full disk");
    assert!(!err.contains("panicked"), "{what}: panic: {err}");
    assert!(
        o.status.code().is_some(),
        "{what}: killed by a signal: {:?}\n{err}",
        o.status
    );
    let lines = error_lines(o);
    assert_eq!(lines.len(), 1, "{what}: not one error line:\n{err}");
    lines[0].clone()
}

fn names_full_disk(line: &str) -> bool {
    line.contains("storage is full") || line.contains("No space left on device")
}

#[test]
#[ignore = "needs root to mount tmpfs; scripts/test.sh runs it (as root) with --ignored"]
fn first_start_on_a_too_small_disk_fails_cleanly() {
    for &kib in TOO_SMALL_KIB {
        let fs = Tmpfs::mount(kib);
        let data = fs.path().join("data");
        let o = facteur(&data, &["serve", "--init-only"]);
        let line = assert_clean_failure(&o, &format!("first start on {kib} KiB"));
        println!("{kib} KiB: exit {:?}: {line}", o.status.code());
    }
}

/// Stricter: the error names the full disk at every step of the first start, and once space is
/// freed, running the first start again completes it.
#[test]
#[ignore = "needs root to mount tmpfs; scripts/test.sh runs it (as root) with --ignored"]
fn first_start_names_the_full_disk_and_resumes_after_freeing_space() {
    let mut problems = Vec::new();
    for &kib in TOO_SMALL_KIB {
        let fs = Tmpfs::mount(kib);
        let data = fs.path().join("data");
        let o = facteur(&data, &["serve", "--init-only"]);
        let line = assert_clean_failure(&o, &format!("first start on {kib} KiB"));
        if !names_full_disk(&line) {
            problems.push(format!(
                "{kib} KiB: error does not name the full disk: {line}"
            ));
        }
        fs.resize(ROOMY_KIB);
        let again = facteur(&data, &["serve", "--init-only"]);
        if !again.status.success() {
            problems.push(format!(
                "{kib} KiB: first start after freeing space failed: {}",
                stderr(&again).trim()
            ));
            continue;
        }
        let check = facteur(&data, &["check-store"]);
        if !check.status.success() {
            problems.push(format!("{kib} KiB: check-store: {}", stderr(&check).trim()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// An admin command on a data folder that filled up fails cleanly, says that storage is full,
/// creates nothing, and works once space is freed. Repeated: which step fails first (opening the
/// WAL index, the write itself) varies between runs.
#[test]
#[ignore = "needs root to mount tmpfs; scripts/test.sh runs it (as root) with --ignored"]
fn admin_command_on_a_full_disk_says_storage_is_full() {
    for _ in 0..ROUNDS {
        let line = admin_command_on_a_full_disk();
        assert!(
            line.contains("storage is full"),
            "the error does not say storage is full: {line}"
        );
    }
}

/// Sets up a data folder, fills the disk, runs `account add` (which must fail cleanly, with exit
/// status 1 and nothing created), frees the space, runs it again (which must work) and
/// `check-store`. Returns the error line of the refused command.
fn admin_command_on_a_full_disk() -> String {
    let fs = Tmpfs::mount(ROOMY_KIB);
    let data = fs.path().join("data");
    let init = facteur(&data, &["serve", "--init-only"]);
    assert!(init.status.success(), "first start: {}", stderr(&init));

    let filler = fs.path().join("filler");
    fill(&filler);
    let o = facteur(&data, &["account", "add", "x@localhost"]);
    let line = assert_clean_failure(&o, "account add on a full disk");
    assert_eq!(o.status.code(), Some(1), "exit status: {line}");

    std::fs::remove_file(&filler).expect("remove filler");
    // Nothing half-done: the refused account does not exist.
    let list = facteur(&data, &["account", "list"]);
    assert!(list.status.success(), "account list: {}", stderr(&list));
    assert!(
        !String::from_utf8_lossy(&list.stdout).contains("x@localhost"),
        "a refused account was created"
    );
    let o = facteur(&data, &["account", "add", "x@localhost"]);
    assert!(
        o.status.success(),
        "account add after freeing space: {}",
        stderr(&o)
    );
    let check = facteur(&data, &["check-store"]);
    assert!(
        check.status.success(),
        "check-store after the fault: {}{}",
        String::from_utf8_lossy(&check.stdout),
        stderr(&check)
    );
    line
}
