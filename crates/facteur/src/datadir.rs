//! Who may read the data folder: its owner, nobody else.
//!
//! The folder holds password hashes, DKIM and TLS private keys, the SRS secret, every message and
//! possibly a smarthost password in `facteur.toml`. Every command sets the umask [`UMASK`] before
//! it creates anything, so new folders are 0700 and new files 0600; at start, `serve` walks the
//! folder and takes group and world access away from whatever an older version, a restore or
//! an admin left more open ([`tighten`]), and says so in the log.
//!
//! The walk never follows a symbolic link: each folder is opened relative to its parent's open
//! descriptor with `O_NOFOLLOW`, and each entry is looked at with `fstatat(AT_SYMLINK_NOFOLLOW)`.
//! The same walk gives the folder to the server's user when it starts as root
//! ([`give_to`]), where following a link planted in the folder would hand a system file over.

use std::ffi::{CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Dir, FileType, Gid, Mode, OFlags, Stat, Uid};

/// Umask of every Facteur process: what it creates is for its own user only.
pub const UMASK: libc::mode_t = 0o077;
/// Permission bits of group and others, which nothing in the data folder may have.
const GROUP_OTHER_BITS: u32 = 0o077;
/// Deepest folder the walks descend into (the store's layout is three levels deep); deeper
/// folders are reported, not walked, so a strange tree cannot exhaust file descriptors.
const MAX_DEPTH: usize = 16;
/// Paths named one by one in the log before the rest is only counted.
const LOGGED_PATHS: usize = 10;

/// Sets the process umask to [`UMASK`]; called first by every command.
pub fn set_umask() {
    // SAFETY: umask only replaces the process's file mode creation mask and cannot fail.
    unsafe {
        libc::umask(UMASK);
    }
}

/// One entry of the walk: its folder (open), name in it, path (for messages) and status.
pub struct Entry<'a> {
    pub dir: BorrowedFd<'a>,
    pub name: &'a CStr,
    pub path: &'a Path,
    pub stat: &'a Stat,
}

impl Entry<'_> {
    pub fn file_type(&self) -> FileType {
        FileType::from_raw_mode(self.stat.st_mode)
    }

    pub fn mode(&self) -> u32 {
        self.stat.st_mode & 0o7777
    }
}

/// Calls `visit` on `root` (named ".") and then on everything below it, parents before children,
/// without following symbolic links. Errors reading a sub-folder are returned as (path, error) in
/// the list; only failing to open `root` itself is an error.
pub fn walk(
    root: &Path,
    visit: &mut dyn FnMut(&Entry<'_>),
) -> std::io::Result<Vec<(PathBuf, std::io::Error)>> {
    // The root itself is the path the operator chose, so it may be a link (e.g. to another disk).
    let fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let stat = rustix::fs::fstat(&fd)?;
    visit(&Entry {
        dir: fd.as_fd(),
        name: c".",
        path: root,
        stat: &stat,
    });
    let mut problems = Vec::new();
    walk_below(&fd, root, 1, visit, &mut problems);
    Ok(problems)
}

fn walk_below(
    dir: &OwnedFd,
    path: &Path,
    depth: usize,
    visit: &mut dyn FnMut(&Entry<'_>),
    problems: &mut Vec<(PathBuf, std::io::Error)>,
) {
    let names = match read_names(dir) {
        Ok(n) => n,
        Err(e) => {
            problems.push((path.to_owned(), e));
            return;
        }
    };
    for name in names {
        let child = path.join(OsStr::from_bytes(name.to_bytes()));
        let stat = match rustix::fs::statat(dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(s) => s,
            // Removed since the folder was read (a blob temp file, say): nothing to do.
            Err(rustix::io::Errno::NOENT) => continue,
            Err(e) => {
                problems.push((child, e.into()));
                continue;
            }
        };
        let entry = Entry {
            dir: dir.as_fd(),
            name: name.as_c_str(),
            path: &child,
            stat: &stat,
        };
        visit(&entry);
        if entry.file_type() != FileType::Directory {
            continue;
        }
        if depth >= MAX_DEPTH {
            problems.push((
                child,
                std::io::Error::other(format!("deeper than {MAX_DEPTH} levels: not walked")),
            ));
            continue;
        }
        // O_NOFOLLOW: if the folder was swapped for a link since fstatat, the open fails.
        match rustix::fs::openat(
            dir,
            name.as_c_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(sub) => walk_below(&sub, &child, depth + 1, visit, problems),
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => problems.push((child, e.into())),
        }
    }
}

/// The names in an open folder, without "." and "..".
fn read_names(dir: &OwnedFd) -> std::io::Result<Vec<std::ffi::CString>> {
    let mut names = Vec::new();
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// What [`tighten`] changed and what it could not.
#[derive(Debug, Default)]
pub struct Tightened {
    /// (path, mode before) of each folder or file whose group and world bits were removed.
    pub fixed: Vec<(PathBuf, u32)>,
    /// Entries still open to others, with the reason (typically: owned by another user).
    pub failed: Vec<(PathBuf, String)>,
}

/// Removes group and world permissions from the data folder and every folder and regular file in
/// it. Symbolic links are left alone (their own mode means nothing), and so are sockets (an LMTP
/// socket's mode is set where it is made) and other special files.
pub fn tighten(data: &Path) -> std::io::Result<Tightened> {
    let mut out = Tightened::default();
    let problems = walk(data, &mut |e| {
        let kind = e.file_type();
        if !matches!(kind, FileType::Directory | FileType::RegularFile) {
            return;
        }
        let mode = e.mode();
        if mode & GROUP_OTHER_BITS == 0 {
            return;
        }
        let tightened = Mode::from_raw_mode(mode & !GROUP_OTHER_BITS);
        // Follows links, but the entry was just seen not to be one; only the folder's owner,
        // who is this process, could have swapped it since.
        match rustix::fs::chmodat(e.dir, e.name, tightened, AtFlags::empty()) {
            Ok(()) => out.fixed.push((e.path.to_owned(), mode)),
            Err(err) => out.failed.push((e.path.to_owned(), err.to_string())),
        }
    })?;
    out.failed
        .extend(problems.into_iter().map(|(p, e)| (p, e.to_string())));
    Ok(out)
}

/// [`tighten`], with one log line per change (the first [`LOGGED_PATHS`]) and a summary.
pub fn tighten_and_log(data: &Path) -> std::io::Result<()> {
    let t = tighten(data)?;
    for (path, mode) in t.fixed.iter().take(LOGGED_PATHS) {
        tracing::warn!(
            path = %path.display(),
            mode = %format!("{mode:o}"),
            "data folder entry was open to other users; group and world permissions removed"
        );
    }
    if t.fixed.len() > LOGGED_PATHS {
        tracing::warn!(
            count = t.fixed.len(),
            data = %data.display(),
            "data folder entries were open to other users; group and world permissions removed"
        );
    }
    for (path, why) in t.failed.iter().take(LOGGED_PATHS) {
        tracing::warn!(path = %path.display(), error = %why, "cannot restrict permissions in the data folder");
    }
    if t.failed.len() > LOGGED_PATHS {
        tracing::warn!(
            count = t.failed.len(),
            "entries of the data folder could not be restricted"
        );
    }
    Ok(())
}

/// What [`give_to`] changed and left alone.
#[derive(Debug, Default)]
pub struct GivenAway {
    pub changed: usize,
    /// Regular files with more than one name: one of them may be outside the folder (a hard link
    /// to a system file planted by whoever could write here), so they keep their owner.
    pub hard_linked: Vec<PathBuf>,
    pub failed: Vec<(PathBuf, String)>,
}

/// Makes `uid:gid` the owner of the data folder and everything in it (run as root, before
/// switching to that user). Links are changed themselves (`AT_SYMLINK_NOFOLLOW`), never what
/// they point to.
pub fn give_to(data: &Path, uid: u32, gid: u32) -> std::io::Result<GivenAway> {
    let mut out = GivenAway::default();
    let problems = walk(data, &mut |e| {
        if e.stat.st_uid == uid && e.stat.st_gid == gid {
            return;
        }
        if e.file_type() == FileType::RegularFile && e.stat.st_nlink > 1 {
            out.hard_linked.push(e.path.to_owned());
            return;
        }
        match rustix::fs::chownat(
            e.dir,
            e.name,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        ) {
            Ok(()) => out.changed += 1,
            Err(err) => out.failed.push((e.path.to_owned(), err.to_string())),
        }
    })?;
    out.failed
        .extend(problems.into_iter().map(|(p, e)| (p, e.to_string())));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn tighten_removes_group_and_world_bits_and_leaves_links_alone() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("blobs/ab")).unwrap();
        std::fs::write(data.join("facteur.toml"), "x").unwrap();
        std::fs::write(data.join("blobs/ab/abcd"), "y").unwrap();
        // A file outside the folder, reachable through a link inside it: must stay as it is.
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "z").unwrap();
        symlink(&outside, data.join("link")).unwrap();
        for (p, m) in [
            (data.clone(), 0o755),
            (data.join("blobs"), 0o775),
            (data.join("blobs/ab"), 0o750),
            (data.join("facteur.toml"), 0o644),
            (data.join("blobs/ab/abcd"), 0o666),
            (outside.clone(), 0o644),
        ] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
        }
        let t = tighten(&data).unwrap();
        assert!(t.failed.is_empty(), "{:?}", t.failed);
        assert_eq!(t.fixed.len(), 5, "{:?}", t.fixed);
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("blobs")), 0o700);
        assert_eq!(mode(&data.join("blobs/ab")), 0o700);
        assert_eq!(mode(&data.join("facteur.toml")), 0o600);
        assert_eq!(mode(&data.join("blobs/ab/abcd")), 0o600);
        assert_eq!(mode(&outside), 0o644, "a link was followed");
        // Nothing left to do the second time.
        let again = tighten(&data).unwrap();
        assert!(again.fixed.is_empty() && again.failed.is_empty());
    }

    #[test]
    fn walk_visits_everything_once_without_following_links() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("a/b")).unwrap();
        std::fs::write(data.join("a/b/f"), "").unwrap();
        std::fs::create_dir_all(dir.path().join("elsewhere/deep")).unwrap();
        symlink(dir.path().join("elsewhere"), data.join("a/l")).unwrap();
        let mut seen = Vec::new();
        let problems = walk(&data, &mut |e| {
            seen.push(e.path.strip_prefix(&data).unwrap().to_owned())
        })
        .unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        seen.sort();
        let expect: Vec<PathBuf> = ["", "a", "a/b", "a/b/f", "a/l"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(seen, expect);
    }
}
