//! Running as root, briefly: `serve` started as root binds its ports, then becomes `server.user`
//! for good; admin commands started as root become the data folder's owner.
//!
//! A mail server parses hostile input all day and needs no privilege once its ports are bound, so
//! it keeps none (Postfix and Dovecot do the same). The switch is checked to be permanent: the
//! real, effective and saved IDs all change, supplementary groups are those of the user, and
//! `setuid(0)` must fail afterwards.
//!
//! glibc's `setgroups`/`setgid`/`setuid` (which the `libc` crate calls) change the credentials of
//! every thread of the process, not only the caller's, so the switch is safe with the async
//! runtime's threads already running.

use std::ffi::{CStr, CString};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::Failure;
use crate::datadir;

/// Linux's capability number of CAP_NET_BIND_SERVICE (linux/capability.h).
const CAP_NET_BIND_SERVICE: u32 = 10;
/// First buffer size for getpwnam_r/getpwuid_r; doubled on ERANGE up to [`PASSWD_BUF_MAX`].
const PASSWD_BUF: usize = 1024;
const PASSWD_BUF_MAX: usize = 1 << 20;
/// The value of `server.user` that keeps root (documented as unsafe).
pub const ROOT: &str = "root";

/// The command that creates the server's user, in messages (as the Debian package does it).
fn create_user_hint(user: &str) -> String {
    format!(
        "useradd --system --user-group --home-dir /var/lib/facteur --no-create-home --shell /usr/sbin/nologin {user}"
    )
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Whether this process may bind ports below 1024: root, or a process given
/// CAP_NET_BIND_SERVICE (the systemd unit runs as `facteur` with it as an ambient capability).
pub fn can_bind_privileged_ports() -> bool {
    is_root() || has_effective_capability(CAP_NET_BIND_SERVICE)
}

/// Reads the effective capability set from /proc/self/status (Linux); false when unreadable.
fn has_effective_capability(cap: u32) -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|mask| mask & (1u64 << cap) != 0)
}

/// A user of the system's user database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

enum Key<'a> {
    Name(&'a CStr),
    Uid(u32),
}

/// Looks a user up in the system's user database (files, LDAP, ... through NSS).
fn lookup(key: Key<'_>) -> std::io::Result<Option<SystemUser>> {
    let mut size = PASSWD_BUF;
    loop {
        let mut buf = vec![0 as libc::c_char; size];
        // SAFETY: passwd is plain old data that getpw*_r fills in; all-zero is a valid value.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; `buf` holds `size` bytes and outlives the
        // use of `pwd`'s string fields below.
        let rc = unsafe {
            match key {
                Key::Name(name) => {
                    libc::getpwnam_r(name.as_ptr(), &mut pwd, buf.as_mut_ptr(), size, &mut result)
                }
                Key::Uid(uid) => {
                    libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), size, &mut result)
                }
            }
        };
        if rc == libc::ERANGE && size < PASSWD_BUF_MAX {
            size *= 2;
            continue;
        }
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        if result.is_null() {
            return Ok(None);
        }
        // SAFETY: on success pw_name points to a NUL-terminated string inside `buf`.
        let name = unsafe { CStr::from_ptr(pwd.pw_name) }
            .to_string_lossy()
            .into_owned();
        return Ok(Some(SystemUser {
            name,
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
        }));
    }
}

pub fn user_by_name(name: &str) -> std::io::Result<Option<SystemUser>> {
    let Ok(c) = CString::new(name) else {
        return Ok(None);
    };
    lookup(Key::Name(&c))
}

pub fn user_by_uid(uid: u32) -> Option<SystemUser> {
    lookup(Key::Uid(uid)).ok().flatten()
}

/// Who `serve` runs as once its ports are bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunAs {
    /// Not started as root: nothing to switch.
    Unchanged,
    /// Started as root, and `server.user = "root"`: stays root (unsafe, said in the log).
    Root,
    /// Started as root: becomes this user.
    User(SystemUser),
}

/// Creates the default system user, as the Debian package's postinst does, so that a first start
/// as root (`cargo run -- serve` on a fresh machine) serves unprivileged without a manual step.
/// Only for the default name: a user an admin named must exist already (a typo must not create
/// accounts). Tries `useradd`, then Debian's `adduser`.
fn create_default_user(user: &str) -> Result<(), String> {
    let attempts: [(&str, Vec<&str>); 2] = [
        (
            "useradd",
            vec![
                "--system",
                "--user-group",
                "--home-dir",
                DEFAULT_HOME,
                "--no-create-home",
                "--shell",
                NOLOGIN_SHELL,
                user,
            ],
        ),
        (
            "adduser",
            vec![
                "--system",
                "--group",
                "--home",
                DEFAULT_HOME,
                "--no-create-home",
                "--shell",
                NOLOGIN_SHELL,
                user,
            ],
        ),
    ];
    let mut why = Vec::new();
    for (program, args) in attempts {
        match std::process::Command::new(program)
            .args(&args)
            .stdin(std::process::Stdio::null())
            .output()
        {
            Ok(out) if out.status.success() => return Ok(()),
            Ok(out) => why.push(format!(
                "{program}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => why.push(format!("{program}: {e}")),
        }
    }
    Err(why.join("; "))
}

/// Home folder of the system user created at first start (the Debian package's data folder).
const DEFAULT_HOME: &str = "/var/lib/facteur";
const NOLOGIN_SHELL: &str = "/usr/sbin/nologin";

/// Decides, before anything is created as root, who `serve` will run as. The default user
/// (`facteur`) is created when it does not exist yet; a user named in the config must exist.
pub fn plan(user: &str) -> Result<RunAs, Failure> {
    if !is_root() {
        return Ok(RunAs::Unchanged);
    }
    if user == ROOT {
        return Ok(RunAs::Root);
    }
    let lookup_user = || {
        user_by_name(user)
            .map_err(|e| Failure::op(format!("cannot look up the user {user:?}: {e}")))
    };
    let mut found = lookup_user()?;
    if found.is_none() && user == crate::config::DEFAULT_USER {
        match create_default_user(user) {
            Ok(()) => {
                tracing::info!(user, "created the system user the server runs as");
                found = lookup_user()?;
            }
            Err(why) => tracing::warn!(user, error = %why, "cannot create the system user"),
        }
    }
    let Some(found) = found else {
        return Err(Failure::op(format!(
            "Facteur does not serve mail as root, and server.user {user:?} does not exist. \
             Create it with `{}` (the Debian package does), or set server.user to an existing \
             unprivileged user, or start Facteur as that user; server.user = \"root\" keeps root \
             (unsafe: a flaw in any protocol would give the whole machine away)",
            create_user_hint(user)
        )));
    };
    if found.uid == 0 {
        return Ok(RunAs::Root);
    }
    if found.gid == 0 {
        return Err(Failure::op(format!(
            "server.user {user:?} has the root group (gid 0) as its primary group: give it a \
             group of its own (usermod -g {user} {user})"
        )));
    }
    Ok(RunAs::User(found))
}

/// Checks that `user` can reach `data`: every folder above it must let that user through
/// (search permission). A data folder under /root, say, would be given to the user and then be
/// out of its reach once root is dropped; better to say so before anything starts.
pub fn check_reachable(data: &Path, user: &SystemUser) -> Result<(), Failure> {
    let full = std::fs::canonicalize(data).map_err(|e| {
        Failure::op(format!(
            "cannot read the data folder {}: {e}",
            data.display()
        ))
    })?;
    for dir in full.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(dir) else {
            continue;
        };
        let mode = meta.mode();
        let through = if meta.uid() == user.uid {
            mode & 0o100 != 0
        } else if meta.gid() == user.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !through {
            return Err(Failure::op(format!(
                "the server would run as {name:?}, which cannot reach the data folder {data}: \
                 {dir} (mode {mode:04o}) is closed to it. Use a data folder it can reach (as root \
                 the default is {DEFAULT_HOME}: `facteur --data {DEFAULT_HOME} serve`), let it \
                 through (chmod o+x {dir}), or keep root with server.user = \"root\" (unsafe)",
                name = user.name,
                data = full.display(),
                dir = dir.display(),
                mode = mode & 0o7777,
            )));
        }
    }
    Ok(())
}

/// Makes `user` the owner of the data folder and its content, refusing a folder that belongs to a
/// third user (an operator's mistake that a silent chown would hide).
pub fn own_data_folder(data: &Path, user: &SystemUser) -> Result<(), Failure> {
    let meta = std::fs::metadata(data).map_err(|e| {
        Failure::op(format!(
            "cannot read the data folder {}: {e}",
            data.display()
        ))
    })?;
    if meta.uid() != 0 && meta.uid() != user.uid {
        let owner = user_by_uid(meta.uid())
            .map(|u| u.name)
            .unwrap_or_else(|| format!("uid {}", meta.uid()));
        return Err(Failure::op(format!(
            "the data folder {} belongs to {owner}, not to server.user {:?}: give it to that user \
             (chown -R {}: {}) or set server.user = {owner:?}",
            data.display(),
            user.name,
            user.name,
            data.display()
        )));
    }
    let given = datadir::give_to(data, user.uid, user.gid).map_err(|e| {
        Failure::op(format!(
            "cannot give the data folder {} to {}: {e}",
            data.display(),
            user.name
        ))
    })?;
    if given.changed > 0 {
        tracing::info!(user = %user.name, entries = given.changed, data = %data.display(), "data folder given to the server's user");
    }
    for path in &given.hard_linked {
        tracing::warn!(path = %path.display(), "file with several hard links left to its owner");
    }
    if let Some((path, why)) = given.failed.first() {
        return Err(Failure::op(format!(
            "cannot give {} to {} ({why}); {} entries could not be changed",
            path.display(),
            user.name,
            given.failed.len()
        )));
    }
    Ok(())
}

/// Becomes `uid`/`gid` with the supplementary groups of `name` (only `gid` without a name), for
/// good, and checks that it worked.
pub fn switch_to(uid: u32, gid: u32, name: Option<&str>) -> Result<(), Failure> {
    let fail = |what: &str| {
        Failure::op(format!(
            "cannot drop root privileges ({what}): {}",
            std::io::Error::last_os_error()
        ))
    };
    // Groups first: once the user ID is no longer 0 they cannot be changed any more.
    match name.map(CString::new) {
        Some(Ok(c)) => {
            // SAFETY: `c` is a valid NUL-terminated string; initgroups reads the group database.
            if unsafe { libc::initgroups(c.as_ptr(), gid) } != 0 {
                return Err(fail("initgroups"));
            }
        }
        _ => {
            // SAFETY: one valid gid_t read from a live local.
            if unsafe { libc::setgroups(1, &gid) } != 0 {
                return Err(fail("setgroups"));
            }
        }
    }
    // SAFETY: setgid/setuid take plain integers; as root they set the real, effective and saved IDs.
    if unsafe { libc::setgid(gid) } != 0 {
        return Err(fail("setgid"));
    }
    // SAFETY: as above.
    if unsafe { libc::setuid(uid) } != 0 {
        return Err(fail("setuid"));
    }
    verify_switched(uid, gid)
}

/// Checks that the process is `uid`/`gid` in every ID, has no root group, and cannot go back.
fn verify_switched(uid: u32, gid: u32) -> Result<(), Failure> {
    let (mut ru, mut eu, mut su) = (0, 0, 0);
    let (mut rg, mut eg, mut sg) = (0, 0, 0);
    // SAFETY: the pointers are to live locals.
    let ok = unsafe {
        libc::getresuid(&mut ru, &mut eu, &mut su) == 0
            && libc::getresgid(&mut rg, &mut eg, &mut sg) == 0
    };
    if !ok || [ru, eu, su] != [uid; 3] || [rg, eg, sg] != [gid; 3] {
        return Err(Failure::op(format!(
            "privileges not dropped: uid {ru}/{eu}/{su}, gid {rg}/{eg}/{sg}"
        )));
    }
    let groups = supplementary_groups();
    if uid != 0 && groups.contains(&0) {
        return Err(Failure::op(
            "privileges not dropped: still in the root group",
        ));
    }
    // SAFETY: plain integer arguments. Both calls must fail now that the saved IDs are gone.
    if uid != 0 && unsafe { libc::setuid(0) == 0 || libc::seteuid(0) == 0 } {
        return Err(Failure::op(
            "privileges not dropped: root could be regained",
        ));
    }
    Ok(())
}

fn supplementary_groups() -> Vec<libc::gid_t> {
    // SAFETY: a size of 0 asks for the count only.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    let Ok(len) = usize::try_from(n) else {
        return Vec::new();
    };
    let mut groups = vec![0; len];
    // SAFETY: `groups` has room for `n` entries.
    let got = unsafe { libc::getgroups(n, groups.as_mut_ptr()) };
    groups.truncate(usize::try_from(got).unwrap_or(0));
    groups
}

/// `serve` started as root: switches to the user [`plan`] chose, once the ports are bound.
pub fn drop_root(run_as: &RunAs) -> Result<(), Failure> {
    match run_as {
        RunAs::Unchanged => Ok(()),
        RunAs::Root => {
            tracing::warn!(
                "running as root (server.user = \"root\"): unsafe, a flaw in any protocol would give the whole machine away"
            );
            Ok(())
        }
        RunAs::User(u) => {
            switch_to(u.uid, u.gid, Some(&u.name))?;
            tracing::info!(user = %u.name, uid = u.uid, gid = u.gid, "root privileges dropped");
            Ok(())
        }
    }
}

/// An admin command started as root becomes the owner of the data folder (when that is not root),
/// so the files it creates (the database's WAL and shared-memory files, the SRS key, blobs) stay
/// readable and writable by the server.
pub fn become_data_owner(data: &Path) -> Result<(), Failure> {
    if !is_root() {
        return Ok(());
    }
    // A missing folder is reported by the command itself.
    let Ok(meta) = std::fs::metadata(data) else {
        return Ok(());
    };
    if meta.uid() == 0 {
        return Ok(());
    }
    match user_by_uid(meta.uid()) {
        Some(u) => switch_to(u.uid, u.gid, Some(&u.name)),
        None => switch_to(meta.uid(), meta.gid(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_users_up_by_name_and_uid() {
        let root = user_by_name("root").unwrap().expect("root exists");
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(user_by_uid(0).map(|u| u.name), Some("root".to_owned()));
        assert_eq!(user_by_name("no-such-user-facteur-test").unwrap(), None);
        assert_eq!(user_by_name("nul\0inside").unwrap(), None);
    }

    #[test]
    fn reachability_follows_the_folders_above() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inner = dir.path().join("closed").join("data");
        std::fs::create_dir_all(&inner).expect("mkdir");
        let nobody = SystemUser {
            name: "nobody-test".into(),
            uid: 65_000,
            gid: 65_000,
        };
        use std::os::unix::fs::PermissionsExt;
        let closed = dir.path().join("closed");
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let err = check_reachable(&inner, &nobody).expect_err("closed folder above");
        assert!(err.message.contains("closed"), "{}", err.message);
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o711)).expect("chmod");
        // The folders above the temporary one (/tmp, /) let everybody through.
        check_reachable(&inner, &nobody).expect("reachable once o+x");
    }

    #[test]
    fn a_missing_user_is_refused_as_root_and_ignored_otherwise() {
        match plan("no-such-user-facteur-test") {
            Ok(RunAs::Unchanged) => assert!(!is_root()),
            Err(f) => {
                assert!(is_root());
                assert!(
                    f.message.contains("useradd --system") && f.message.contains("server.user"),
                    "{}",
                    f.message
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        let expected = if is_root() {
            RunAs::Root
        } else {
            RunAs::Unchanged
        };
        assert_eq!(plan(ROOT).unwrap(), expected);
    }
}
