//! Logging with tracing: readable text by default, JSON with `log.format = "json"` or `--json`;
//! to stderr, or appended to `log.file`.
//!
//! Colour codes only go to a terminal: a log file, a pipe or the journal gets plain text, so
//! fail2ban and grep read the lines as written (and `NO_COLOR`, <https://no-color.org>, turns
//! them off on a terminal too). JSON puts the fields at the top level of each object (`"peer":
//! "192.0.2.1"`), next to `timestamp`, `level`, `target` and `message`.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogConfig, LogFormat};

/// Mode of a log file Facteur creates: it holds addresses, user names and peer IPs.
const LOG_FILE_MODE: u32 = 0o600;

/// The open log file, when `log.file` is set (for [`reopen`]).
static LOG_FILE: OnceLock<Arc<LogFile>> = OnceLock::new();

struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

impl LogFile {
    fn open(path: &Path) -> std::io::Result<File> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(LOG_FILE_MODE)
            .open(path)
    }

    fn lock(&self) -> MutexGuard<'_, File> {
        // A writer that panicked mid-line leaves a usable file handle.
        self.file.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Hands the subscriber the current file; each event is formatted first, then written with one
/// `write` on an `O_APPEND` descriptor, so lines from concurrent tasks never interleave.
#[derive(Clone)]
struct FileWriter(Arc<LogFile>);

struct FileGuard<'a>(MutexGuard<'a, File>);

impl Write for FileGuard<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl<'a> MakeWriter<'a> for FileWriter {
    type Writer = FileGuard<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        FileGuard(self.0.lock())
    }
}

/// Whether colour codes may be written to stderr: only to a terminal, and not with `NO_COLOR`
/// set to anything but the empty string.
fn stderr_ansi() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stderr().is_terminal()
}

/// The filter: `RUST_LOG` when it is set and not empty, else `level` (already validated with
/// the config).
fn filter(level: &str) -> EnvFilter {
    match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => {
            EnvFilter::try_new(&v).unwrap_or_else(|_| EnvFilter::new(level))
        }
        _ => EnvFilter::new(level),
    }
}

/// Installs the global subscriber. `format` may differ from `log.format` (`--json`); a relative
/// `log.file` is under `data`. Fails when the log file cannot be opened.
pub fn init(format: LogFormat, log: &LogConfig, data: &Path) -> Result<(), String> {
    let filter = filter(&log.level);
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if log.file.as_os_str().is_empty() {
        let builder = builder.with_writer(std::io::stderr);
        let _ = match format {
            LogFormat::Json => builder.json().flatten_event(true).try_init(),
            LogFormat::Text => builder.with_ansi(stderr_ansi()).try_init(),
        };
        return Ok(());
    }
    let path = crate::config::resolve_path(data, &log.file);
    let file = LogFile::open(&path)
        .map_err(|e| format!("cannot open the log file {}: {e}", path.display()))?;
    let shared = LOG_FILE
        .get_or_init(|| {
            Arc::new(LogFile {
                path,
                file: Mutex::new(file),
            })
        })
        .clone();
    let builder = builder.with_writer(FileWriter(shared));
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
    Ok(())
}

/// Opens `log.file` again (after logrotate moved it away, on SIGHUP). Lines go to the old file
/// until the new one is open; if it cannot be opened, they keep going to the old one and the
/// error is logged there. Without `log.file`, nothing to do.
pub fn reopen() {
    let Some(log) = LOG_FILE.get() else { return };
    match LogFile::open(&log.path) {
        Ok(new) => {
            *log.lock() = new;
            tracing::info!(path = %log.path.display(), "log file reopened");
        }
        Err(e) => {
            tracing::error!(path = %log.path.display(), error = %e, "cannot reopen the log file; still writing to the old one");
        }
    }
}
