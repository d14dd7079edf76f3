//! Safe defaults of a running server (issue 12): a private data folder, one server per folder,
//! root only long enough to bind the ports, and IPv6 next to IPv4 on one port. Mail goes in with
//! Python's smtplib, a client we did not write.
//!
//! The tests run as root here (as CI does). The privilege tests create throwaway system users
//! with `useradd` and remove them when done; run as another user, they check instead that
//! `server.user` is ignored.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, Server, test_config};

/// Longest wait for a second `serve` to give up.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts at useradd while another process holds the user database's lock.
const USERADD_TRIES: u32 = 20;
/// A message above `store.inline_blob_max` (64 KiB by default), stored as a blob file.
const LARGE_BODY: usize = 200 * 1024;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Every entry under `root` (itself included), links not followed.
fn walk(root: &Path) -> Vec<(PathBuf, std::fs::Metadata)> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_owned()];
    while let Some(p) = todo.pop() {
        let m = std::fs::symlink_metadata(&p).expect("lstat");
        if m.is_dir() {
            for e in std::fs::read_dir(&p).expect("read_dir") {
                todo.push(e.expect("entry").path());
            }
        }
        out.push((p, m));
    }
    out
}

/// Folders and files that group or others could read, write or enter.
fn open_to_others(data: &Path) -> Vec<String> {
    walk(data)
        .into_iter()
        .filter(|(_, m)| !m.file_type().is_symlink() && m.permissions().mode() & 0o077 != 0)
        .map(|(p, m)| format!("{} {:o}", p.display(), m.permissions().mode() & 0o7777))
        .collect()
}

fn not_owned_by(data: &Path, uid: u32, gid: u32) -> Vec<String> {
    walk(data)
        .into_iter()
        .filter(|(_, m)| m.uid() != uid || m.gid() != gid)
        .map(|(p, m)| format!("{} {}:{}", p.display(), m.uid(), m.gid()))
        .collect()
}

/// Sends one message per (host, recipient) to the SMTP listener at `port` with smtplib, the
/// `large` ones above the inline limit; fails the test unless every one is accepted.
fn smtplib_send(port: u16, sends: &[(&str, &str, bool)]) {
    let calls: Vec<String> = sends
        .iter()
        .map(|(host, rcpt, large)| {
            format!(
                "send({host:?}, {rcpt:?}, {})",
                if *large { "True" } else { "False" }
            )
        })
        .collect();
    let script = format!(
        r#"
import smtplib
def send(host, rcpt, large):
    body = ("x" * 70 + "\r\n") * ({LARGE_BODY} // 72) if large else "hello\r\n"
    s = smtplib.SMTP(host, {port}, timeout=30)
    s.ehlo("client.test")
    s.sendmail("sender@far.test", [rcpt], ("Subject: via " + host + "\r\n\r\n" + body).encode())
    s.quit()
{calls}
print("ok")
"#,
        calls = calls.join("\n")
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("python3");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ok"),
        "smtplib: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `facteur ARGS` on `data`, stdout and stderr captured; `user` is FACTEUR_USER (None: unset).
fn facteur(data: &Path, user: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    match user {
        Some(u) => cmd.env("FACTEUR_USER", u),
        None => cmd.env_remove("FACTEUR_USER"),
    };
    cmd.arg("--data")
        .arg(data)
        .args(args)
        .env_remove("FACTEUR_CONFIG")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run facteur")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn data_folder_and_files_are_private_after_first_start_and_mail() {
    let server = Server::start("example.com");
    // An admin command creates files too (the account's rows, maybe WAL and index files).
    server.add_account("alice@example.com", "alice-password-1");
    let port = server.addr("smtp").port();
    smtplib_send(
        port,
        &[
            ("127.0.0.1", "alice@example.com", false),
            ("127.0.0.1", "alice@example.com", true),
            ("127.0.0.1", "postmaster@example.com", true),
        ],
    );
    assert_eq!(
        common::mail::wait_inbox(&server, "alice@example.com", 2)
            .await
            .len(),
        2
    );
    let data = server.data();
    for f in [
        "facteur.toml",
        "facteur.db",
        "facteur.lock",
        "srs.key",
        "tls/key.pem",
        "tls/cert.pem",
    ] {
        assert!(data.join(f).exists(), "{f} missing");
    }
    let blob_files = walk(&data.join("blobs"))
        .into_iter()
        .filter(|(_, m)| m.is_file())
        .count();
    assert!(blob_files >= 2, "large messages were not stored as files");
    let open = open_to_others(data);
    assert!(open.is_empty(), "readable by others:\n{}", open.join("\n"));
}

#[test]
fn a_too_open_data_folder_is_fixed_at_start_with_a_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(data.join("facteur.toml"), test_config("example.com", "")).expect("config");
    let first = facteur(&data, Some("root"), &["serve", "--init-only"]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    // As an older version, a restore or a careless admin may have left them.
    for (rel, mode) in [
        ("", 0o755),
        ("facteur.toml", 0o644),
        ("facteur.db", 0o644),
        ("tls", 0o755),
        ("tls/key.pem", 0o640),
        ("blobs", 0o777),
    ] {
        common::private(&data.join(rel), mode);
    }
    let again = facteur(&data, Some("root"), &["serve", "--init-only"]);
    let log = text(&again.stderr);
    assert!(again.status.success(), "{log}");
    assert!(
        log.contains("open to other users") && log.contains("key.pem"),
        "no warning naming what was fixed:\n{log}"
    );
    let open = open_to_others(&data);
    assert!(
        open.is_empty(),
        "still readable by others:\n{}",
        open.join("\n")
    );
    // Nothing left to fix: no warning the next time.
    let third = facteur(&data, Some("root"), &["serve", "--init-only"]);
    assert!(
        !text(&third.stderr).contains("open to other users"),
        "{}",
        text(&third.stderr)
    );
}

#[tokio::test]
async fn a_second_serve_is_refused_and_a_killed_server_does_not_block_a_restart() {
    let mut server = Server::start("example.com");
    let pid = server.child.as_ref().expect("running").id();
    let lock = server.data().join("facteur.lock");
    assert_eq!(
        std::fs::read_to_string(&lock).expect("lock").trim(),
        pid.to_string()
    );

    let mut second = Command::new(BIN)
        .env("FACTEUR_USER", common::ROOT_USER)
        .arg("--data")
        .arg(server.data())
        .arg("serve")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("second serve");
    let deadline = Instant::now() + REFUSAL_TIMEOUT;
    while second.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = second.kill();
            panic!("a second serve on the same data folder kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = second.wait_with_output().expect("output");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("PID {pid}")) && err.contains("already running"),
        "the refusal does not name the running server: {err}"
    );

    // Admin commands keep working while the server runs.
    server.add_account("bob@example.com", "bob-password-1");
    let list = server.admin(&["--json", "account", "list"]);
    assert!(list.status.success() && text(&list.stdout).contains("bob@example.com"));

    // SIGKILL leaves the file with a dead PID; the kernel dropped the lock, so a restart works.
    server.kill9();
    assert_eq!(
        std::fs::read_to_string(&lock).expect("lock").trim(),
        pid.to_string()
    );
    server.spawn();
    let new_pid = server.child.as_ref().expect("restarted").id();
    assert_eq!(
        std::fs::read_to_string(&lock).expect("lock").trim(),
        new_pid.to_string()
    );
    smtplib_send(
        server.addr("smtp").port(),
        &[("127.0.0.1", "bob@example.com", false)],
    );
    assert_eq!(
        common::mail::wait_inbox(&server, "bob@example.com", 1)
            .await
            .len(),
        1
    );
}

/// A system user made for one test, removed (with its group) when dropped.
struct ThrowawayUser {
    name: String,
    uid: u32,
    gid: u32,
}

impl ThrowawayUser {
    fn create(tag: &str) -> ThrowawayUser {
        let name = format!("fct{}{tag}", std::process::id());
        // Tests run in parallel, and useradd gives up at once when another holds /etc/passwd.
        let mut tries = 0;
        loop {
            let out = Command::new("useradd")
                .args([
                    "--system",
                    "--user-group",
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    "/usr/sbin/nologin",
                    &name,
                ])
                .output()
                .expect("useradd");
            if out.status.success() {
                break;
            }
            tries += 1;
            assert!(tries < USERADD_TRIES, "useradd: {}", text(&out.stderr));
            std::thread::sleep(Duration::from_millis(200));
        }
        let id = |flag: &str| -> u32 {
            let o = Command::new("id").args([flag, &name]).output().expect("id");
            text(&o.stdout).trim().parse().expect("numeric id")
        };
        let (uid, gid) = (id("-u"), id("-g"));
        ThrowawayUser { name, uid, gid }
    }
}

impl Drop for ThrowawayUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).output();
        let _ = Command::new("groupdel").arg(&self.name).output();
    }
}

/// Removes, when dropped, a user (and its group) that did not exist when it was noted.
struct RemoveUserIfNew {
    name: &'static str,
    existed: bool,
}

impl RemoveUserIfNew {
    fn note(name: &'static str) -> RemoveUserIfNew {
        let existed = Command::new("id")
            .arg(name)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(true);
        RemoveUserIfNew { name, existed }
    }
}

impl Drop for RemoveUserIfNew {
    fn drop(&mut self) {
        if self.existed {
            return;
        }
        // userdel gives up at once when a parallel test holds /etc/passwd: retry.
        for _ in 0..USERADD_TRIES {
            let gone = Command::new("userdel")
                .arg(self.name)
                .output()
                .map(|o| o.status.success() || o.status.code() == Some(6))
                .unwrap_or(false);
            if gone {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = Command::new("groupdel").arg(self.name).output();
    }
}

/// (real, effective, saved, filesystem) IDs of the `Uid:` or `Gid:` line, and the `Groups:` line.
fn proc_ids(pid: u32) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| -> Vec<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_default()
            .split_whitespace()
            .map(|n| n.parse().expect("id"))
            .collect()
    };
    (field("Uid:"), field("Gid:"), field("Groups:"))
}

/// A tempdir the throwaway user can pass through (tempdirs are 0700) to its data folder.
fn passable_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    common::private(dir.path(), 0o711);
    dir
}

#[tokio::test]
async fn started_as_root_it_binds_then_runs_as_server_user() {
    if !is_root() {
        // Not root: server.user is ignored, the server stays the user that started it.
        let config = test_config("example.com", "").replacen(
            "[server]\n",
            "[server]\nuser = \"nobody\"\n",
            1,
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let mut s = Server::prepare_at(dir, data, "example.com", &config);
        s.user = None;
        s.spawn();
        // SAFETY: getuid has no preconditions.
        let me = unsafe { libc::getuid() };
        assert_eq!(proc_ids(s.child.as_ref().expect("child").id()).0, [me; 4]);
        return;
    }
    let user = ThrowawayUser::create("a");
    let config = test_config("example.com", "").replacen(
        "[server]\n",
        &format!("[server]\nuser = \"{}\"\n", user.name),
        1,
    );
    let dir = passable_tempdir();
    let data = dir.path().join("data");
    let mut s = Server::prepare_at(dir, data, "example.com", &config);
    s.user = None;
    s.spawn();

    let pid = s.child.as_ref().expect("child").id();
    let (uids, gids, groups) = proc_ids(pid);
    assert_eq!(uids, [user.uid; 4], "real, effective, saved and fs uid");
    assert_eq!(gids, [user.gid; 4], "real, effective, saved and fs gid");
    assert!(!groups.contains(&0), "still in the root group: {groups:?}");
    let data = s.data().to_owned();
    let foreign = not_owned_by(&data, user.uid, user.gid);
    assert!(
        foreign.is_empty(),
        "not the server user's:\n{}",
        foreign.join("\n")
    );

    // An admin command run as root acts as the folder's owner: it leaves nothing of root's
    // behind, and the server can use what it made.
    s.add_account("bob@example.com", "bob-password-1");
    let foreign = not_owned_by(&data, user.uid, user.gid);
    assert!(
        foreign.is_empty(),
        "left by the admin command:\n{}",
        foreign.join("\n")
    );
    smtplib_send(
        s.addr("smtp").port(),
        &[("127.0.0.1", "bob@example.com", true)],
    );
    let check = s.admin(&["check-store"]);
    assert!(check.status.success(), "{}", text(&check.stderr));
    let foreign = not_owned_by(&data, user.uid, user.gid);
    assert!(
        foreign.is_empty(),
        "not the server user's:\n{}",
        foreign.join("\n")
    );
    let open = open_to_others(&data);
    assert!(open.is_empty(), "readable by others:\n{}", open.join("\n"));

    // Restarts (after a crash, too) find everything as the server user left it.
    s.kill9();
    s.spawn();
    let (uids, _, _) = proc_ids(s.child.as_ref().expect("child").id());
    assert_eq!(uids, [user.uid; 4]);
    assert_eq!(
        common::mail::wait_inbox(&s, "bob@example.com", 1)
            .await
            .len(),
        1
    );
}

#[test]
fn a_root_owned_data_folder_is_given_to_the_server_user() {
    if !is_root() {
        return;
    }
    let user = ThrowawayUser::create("b");
    let dir = passable_tempdir();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let config = test_config("example.com", "");
    std::fs::write(data.join("facteur.toml"), &config).expect("config");
    // A first start as root that stays root (the old behaviour): everything is root's.
    let o = facteur(&data, Some("root"), &["serve", "--init-only"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(!not_owned_by(&data, user.uid, user.gid).is_empty());
    // A link to a file outside the folder must not hand that file over.
    let outside = dir.path().join("outside");
    std::fs::write(&outside, "not facteur's").expect("write");
    std::os::unix::fs::symlink(&outside, data.join("link")).expect("symlink");
    let o = facteur(&data, Some(&user.name), &["serve", "--init-only"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let foreign = not_owned_by(&data, user.uid, user.gid);
    assert!(
        foreign.is_empty(),
        "not given away:\n{}",
        foreign.join("\n")
    );
    assert_eq!(
        std::fs::metadata(&outside).expect("outside").uid(),
        0,
        "followed a link out of the data folder"
    );
}

#[test]
fn started_as_root_without_the_user_it_refuses_and_says_how_to_create_it() {
    let missing = format!("fctnosuch{}", std::process::id());
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let config = test_config("example.com", "").replacen(
        "[server]\n",
        &format!("[server]\nuser = \"{missing}\"\n"),
        1,
    );
    std::fs::write(data.join("facteur.toml"), config).expect("config");
    let o = facteur(&data, None, &["serve", "--init-only"]);
    let err = text(&o.stderr);
    if !is_root() {
        assert!(o.status.success(), "server.user must be ignored: {err}");
        return;
    }
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&missing) && err.contains("useradd --system") && err.contains("\"root\""),
        "the refusal does not say how to go on: {err}"
    );
    assert!(
        !data.join("facteur.db").exists(),
        "a store was created as root"
    );
}

/// The README's first command, as root on a fresh machine: the default `server.user` ("facteur")
/// is created when it does not exist yet (on a machine where it exists, as after the Debian
/// package, it is used as it is), the data folder is given to it, and a data folder the user could
/// not reach once root is dropped is refused before anything is created.
#[test]
fn started_as_root_with_the_default_user_it_is_created_and_the_folder_must_be_reachable() {
    if !is_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let o = facteur(&dir.path().join("data"), None, &["serve", "--init-only"]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        return;
    }
    // A user this test makes (the refusal below may already make it) is removed at the end: the
    // Debian package test that follows in scripts/test.sh needs a machine without it.
    let _cleanup = RemoveUserIfNew::note("facteur");
    // A data folder below a folder closed to others (as /root is).
    let closed = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(closed.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let data = closed.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(data.join("facteur.toml"), test_config("example.com", "")).expect("config");
    let o = facteur(&data, None, &["serve", "--init-only"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot reach the data folder") && err.contains("/var/lib/facteur"),
        "{err}"
    );
    assert!(!data.join("facteur.db").exists(), "a store was created");

    // Reachable: the user exists (made now if it was missing), owns the folder and its files.
    let open = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let data = open.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(data.join("facteur.toml"), test_config("example.com", "")).expect("config");
    let o = facteur(&data, None, &["serve", "--init-only"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let id = Command::new("id")
        .args(["-u", "facteur"])
        .output()
        .expect("id");
    assert!(id.status.success(), "the facteur user does not exist");
    let uid: u32 = text(&id.stdout).trim().parse().expect("uid");
    assert_ne!(uid, 0);
    assert_eq!(
        std::fs::metadata(data.join("facteur.db"))
            .expect("db")
            .uid(),
        uid,
        "the store belongs to the server's user"
    );
}

#[tokio::test]
async fn one_dual_stack_port_takes_ipv6_and_ipv4_clients() {
    let config = test_config("example.com", "").replacen(
        "smtp = [\"127.0.0.1:0\"]",
        "smtp = [\"[::]:0\"]",
        1,
    );
    let server = Server::start_config("example.com", &config);
    let addr = server.addr("smtp");
    assert!(
        addr.is_ipv6() && addr.ip().is_unspecified(),
        "not listening on [::]: {}",
        server.banner
    );
    smtplib_send(
        addr.port(),
        &[
            ("::1", "postmaster@example.com", false),
            ("127.0.0.1", "postmaster@example.com", false),
        ],
    );
    let msgs = common::mail::wait_inbox(&server, "postmaster@example.com", 2).await;
    assert_eq!(msgs.len(), 2);
    let received: Vec<String> = msgs
        .iter()
        .map(|m| {
            let t = text(m);
            t.lines()
                .find(|l| l.starts_with("Received: from"))
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    // The IPv4 client is seen as 127.0.0.1, not as the mapped ::ffff:127.0.0.1 (which would
    // escape per-address limits, SPF and the loopback exceptions).
    assert!(received[0].contains("([::1])"), "{received:?}");
    assert!(received[1].contains("([127.0.0.1])"), "{received:?}");
}

#[tokio::test]
async fn an_lmtp_unix_socket_is_open_to_the_group_despite_the_umask() {
    let dir = passable_tempdir();
    let sock = dir.path().join("lmtp.sock");
    let config = test_config("example.com", "").replacen(
        "lmtp = [\"127.0.0.1:0\"]",
        &format!("lmtp = [\"unix:{}\"]", sock.display()),
        1,
    );
    let data = dir.path().join("data");
    let mut server = Server::prepare_at(dir, data, "example.com", &config);
    server.spawn();
    let meta = std::fs::symlink_metadata(&sock).expect("socket");
    use std::os::unix::fs::FileTypeExt;
    assert!(meta.file_type().is_socket());
    // A local MTA runs as another user: in the server's group, it may connect.
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    let script = format!(
        r#"
import smtplib
s = smtplib.LMTP({path:?})
s.sendmail("sender@far.test", ["postmaster@example.com"], b"Subject: over lmtp\r\n\r\nhi\r\n")
s.quit()
print("ok")
"#,
        path = sock.display().to_string()
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("python3");
    assert!(
        text(&out.stdout).contains("ok"),
        "smtplib.LMTP: {}",
        text(&out.stderr)
    );
    assert_eq!(
        common::mail::wait_inbox(&server, "postmaster@example.com", 1)
            .await
            .len(),
        1
    );
}
