//! Sieve (RFC 5228 and the extensions listed in [`OFFERED`]) over the `sieve-rs` interpreter:
//! compiling and checking scripts (errors name the line and column), the compiled form kept in
//! the store and in memory, and running a domain's and an account's active scripts over one
//! message, answering the interpreter's questions (includes, mailbox existence, duplicate and
//! vacation state) from the store. The result is an [`Outcome`]: what to store where, what to
//! forward, what to answer; the SMTP delivery turns it into one durable write.
//!
//! Limits: script size, nesting, string sizes and includes at compile time; instructions (CPU),
//! redirects and messages sent at run time. A run that fails (runtime error, CPU limit) reports
//! the error and its actions are dropped: the caller keeps the message in INBOX.

mod run;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sieve::compiler::grammar::Capability;
use sieve::{Compiler, Runtime, Sieve};

pub use run::{Copy, Envelope, Outcome, Reject, Reply, Verdict};

/// Extensions a script may require: the RFCs each comes from are listed in docs/rfc-status.md.
/// Others known to sieve-rs (notify, extlists, convert, mime/foreverypart, the DSN and deliver-by
/// variants, imapsieve, Stalwart's own) are refused at upload and at run time.
pub const OFFERED: &[&str] = &[
    "fileinto",
    "reject",
    "ereject",
    "envelope",
    "encoded-character",
    "comparator-i;octet",
    "comparator-i;ascii-casemap",
    "comparator-i;ascii-numeric",
    "body",
    "copy",
    "relational",
    "date",
    "index",
    "duplicate",
    "variables",
    "editheader",
    "environment",
    "subaddress",
    "vacation",
    "vacation-seconds",
    "mailbox",
    "special-use",
    "imap4flags",
    "ihave",
    "include",
    "regex",
    "spamtest",
    "spamtestplus",
    "virustest",
];

/// The identity of the compiled form: another interpreter version compiles again.
pub const COMPILED_FORMAT: &str = "sieve-rs-0.7.3/json-1";

/// Limits of scripts and of their runs. Defaults are conservative (Dovecot's order of size).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Bytes of one script (RFC 5804 quotas refuse bigger uploads).
    pub max_script_size: usize,
    /// Instructions one run may execute (the CPU limit; loops are bounded by it).
    pub max_instructions: usize,
    /// `redirect` actions one run may take (RFC 5228 §4.2: implementations may limit them).
    pub max_redirects: usize,
    /// Messages one run may send (redirects and vacation replies together).
    pub max_out_messages: usize,
    /// Nested blocks and tests.
    pub max_nesting: usize,
    /// Nested `include`s (RFC 6609 §3.2: loops are errors; the depth bounds chains).
    pub max_includes: usize,
    /// Compiled scripts kept in memory.
    pub cache_entries: usize,
}

pub const DEFAULT_MAX_SCRIPT_SIZE: usize = 64 * 1024;

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_script_size: DEFAULT_MAX_SCRIPT_SIZE,
            max_instructions: 20_000,
            max_redirects: 4,
            max_out_messages: 5,
            max_nesting: 16,
            max_includes: 3,
            cache_entries: 1024,
        }
    }
}

/// Why a script does not compile: the compiler's message with its line and column (1-based;
/// 0 when the error is about the whole script, e.g. its size).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ScriptError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl ScriptError {
    fn whole(message: impl Into<String>) -> ScriptError {
        ScriptError {
            line: 0,
            column: 0,
            message: message.into(),
        }
    }
}

/// A compiled script and its stored form.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub program: Arc<Sieve>,
    /// JSON of the program, for the store (`compiled` column, [`COMPILED_FORMAT`]).
    pub stored: Vec<u8>,
}

/// The compiler and interpreter with their limits, and a cache of compiled scripts keyed by the
/// BLAKE3 digest of their text. Shared by every delivery.
pub struct Engine {
    limits: Limits,
    compiler: Compiler,
    runtime: Runtime,
    cache: Mutex<HashMap<[u8; 32], Arc<Sieve>>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// The SIEVE capability string (RFC 5804 §1.7): the offered extensions, space-separated.
pub fn capability_string() -> String {
    OFFERED.join(" ")
}

impl Engine {
    pub fn new(limits: Limits, hostname: &str) -> Engine {
        let compiler = Compiler::new()
            .with_max_script_size(limits.max_script_size)
            .with_max_nested_blocks(limits.max_nesting)
            .with_max_nested_tests(limits.max_nesting)
            .with_max_includes(limits.max_includes)
            .with_max_string_size(limits.max_script_size)
            .with_max_header_size(1024);
        let mut runtime = Runtime::new()
            .with_cpu_limit(limits.max_instructions)
            .with_max_redirects(limits.max_redirects)
            .with_max_out_messages(limits.max_out_messages)
            .with_max_nested_includes(limits.max_includes)
            .with_local_hostname(hostname.to_string())
            .with_env_variable("name", "Facteur")
            .with_env_variable("version", env!("CARGO_PKG_VERSION"))
            .with_env_variable("host", hostname.to_string())
            .with_env_variable("domain", hostname.to_string())
            .with_env_variable("phase", "during")
            .with_vacation_default_subject("Automatic reply")
            .with_vacation_subject_prefix("Auto: ");
        for c in Capability::all() {
            if !OFFERED.contains(&c.to_string().as_str()) {
                runtime.unset_capability(c.clone());
            }
        }
        Engine {
            limits,
            compiler,
            runtime,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Compiles `text`, refusing extensions that are not offered (with the line of the
    /// `require`), and gives the program with its stored form.
    pub fn compile(&self, text: &[u8]) -> Result<Compiled, ScriptError> {
        if text.len() > self.limits.max_script_size {
            return Err(ScriptError::whole(format!(
                "script of {} bytes is larger than the limit of {} bytes",
                text.len(),
                self.limits.max_script_size
            )));
        }
        let program = self.compiler.compile(text).map_err(|e| ScriptError {
            line: e.line_num(),
            column: e.line_pos(),
            message: e.to_string(),
        })?;
        let value = serde_json::to_value(&program)
            .map_err(|e| ScriptError::whole(format!("compiled script not serialisable: {e}")))?;
        if let Some(cap) = first_unoffered(&value) {
            return Err(ScriptError {
                line: require_line(text, &cap),
                column: 0,
                message: format!("extension {cap:?} is not supported by this server"),
            });
        }
        let stored = serde_json::to_vec(&value)
            .map_err(|e| ScriptError::whole(format!("compiled script not serialisable: {e}")))?;
        Ok(Compiled {
            program: Arc::new(program),
            stored,
        })
    }

    /// The program of a stored script: from memory, else its stored compiled form (when made by
    /// this compiler), else compiled again. Errors only when the text does not compile (a script
    /// stored by an older version with different rules).
    pub fn program(&self, script: &store::SieveScript) -> Result<Arc<Sieve>, ScriptError> {
        let digest = *blake3::hash(&script.content).as_bytes();
        if let Ok(cache) = self.cache.lock()
            && let Some(p) = cache.get(&digest)
        {
            return Ok(p.clone());
        }
        let stored = (script.compiled_format == COMPILED_FORMAT)
            .then_some(script.compiled.as_deref())
            .flatten()
            .and_then(|b| serde_json::from_slice::<Sieve>(b).ok())
            .map(Arc::new);
        let program = match stored {
            Some(p) => p,
            None => self.compile(&script.content)?.program,
        };
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= self.limits.cache_entries {
                cache.clear();
            }
            cache.insert(digest, program.clone());
        }
        Ok(program)
    }

    pub(crate) fn runtime(&self) -> &Runtime {
        &self.runtime
    }
}

/// The first capability a `require` of the compiled program names that is not offered.
fn first_unoffered(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map {
                if k == "Require"
                    && let serde_json::Value::Array(caps) = val
                {
                    for c in caps {
                        let name = serde_json::from_value::<Capability>(c.clone())
                            .map(|c| c.to_string())
                            .unwrap_or_else(|_| c.to_string());
                        if !OFFERED.contains(&name.as_str()) {
                            return Some(name);
                        }
                    }
                } else if let Some(found) = first_unoffered(val) {
                    return Some(found);
                }
            }
            None
        }
        serde_json::Value::Array(items) => items.iter().find_map(first_unoffered),
        _ => None,
    }
}

/// The line of the first `require` naming `cap` (1-based), 0 when not found.
fn require_line(text: &[u8], cap: &str) -> usize {
    let needle = format!("\"{cap}\"");
    String::from_utf8_lossy(text)
        .lines()
        .position(|l| l.to_ascii_lowercase().contains(&needle))
        .map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests;
