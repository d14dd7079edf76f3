//! First start: the primary domain and host name given on the command line written into the config
//! file, the postmaster's password kept in a file as soon as it exists, warnings about a host
//! name that is not a fully qualified domain name, and the "next steps" printed at the end.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::Failure;
use crate::cli::{Cli, ServeArgs};
use crate::config::{self, Config};

/// The postmaster's first password, in the data folder (mode 0600) until the admin deletes it. It
/// is written as soon as the account exists; the ports are bound before it is created, so a first
/// start on a taken port creates no account at all.
pub const INITIAL_PASSWORD_FILE: &str = "initial-postmaster-password";
/// Mode of the password file: readable by the server's user only.
const PASSWORD_FILE_MODE: u32 = 0o600;

/// A `[server]` key that `serve` can set at first start from a command-line option.
struct ServerKey<'a> {
    key: &'static str,
    option: &'static str,
    wanted: &'a str,
}

/// Writes `--domain` and `--hostname` into the config file at first start (the store has no
/// domain yet) and into `cfg`. `fresh`: the file was just written with the defaults, so its values
/// are ours to replace; in a file the admin wrote, a key it already sets to another value is a
/// conflict the admin must settle. After the first start these options are ignored with a warning:
/// the file is then the one place these settings live.
pub fn apply_server_options(
    path: &Path,
    cfg: &mut Config,
    args: &ServeArgs,
    first_start: bool,
    fresh: bool,
    privileged: bool,
) -> Result<Vec<String>, Failure> {
    let mut keys = Vec::new();
    if let Some(d) = &args.domain {
        keys.push(ServerKey {
            key: "primary_domain",
            option: "--domain",
            wanted: d,
        });
    }
    if let Some(h) = &args.hostname {
        keys.push(ServerKey {
            key: "hostname",
            option: "--hostname",
            wanted: h,
        });
    }
    let mut warnings = Vec::new();
    let mut changes: Vec<(&'static str, String)> = Vec::new();
    for k in &keys {
        let wanted = k.wanted.trim().trim_end_matches('.').to_ascii_lowercase();
        if !config::is_valid_hostname(&wanted) {
            return Err(Failure::config(format!(
                "{} {:?}: not a valid DNS name (letters, digits, '-' and '.')",
                k.option, k.wanted
            )));
        }
        let current = match k.key {
            "primary_domain" => &cfg.server.primary_domain,
            _ => &cfg.server.hostname,
        };
        let same = current.eq_ignore_ascii_case(&wanted);
        if !first_start {
            if !same {
                warnings.push(format!(
                    "Warning: {} {wanted} is ignored: it applies at first start only, and {} \
                     sets server.{} = {current:?} (edit that file to change it)",
                    k.option,
                    path.display(),
                    k.key
                ));
            }
            continue;
        }
        // Written even when equal to the default (the machine's name may change later), unless
        // the file already says it. A fresh file lists every key.
        let in_file = fresh || sets_server_key(path, k.key)?;
        if in_file && same {
            continue;
        }
        if in_file && !fresh {
            return Err(Failure::config(format!(
                "{} {wanted} differs from server.{} = {current:?} in {}: change the file or drop {}",
                k.option,
                k.key,
                path.display(),
                k.option
            )));
        }
        changes.push((k.key, wanted));
    }
    if changes.is_empty() {
        return Ok(warnings);
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::op(format!("cannot read {}: {e}", path.display())))?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| Failure::config(format!("{}: {e}", path.display())))?;
    let server = doc
        .entry("server")
        .or_insert(toml_edit::table())
        .as_table_like_mut()
        .ok_or_else(|| Failure::config(format!("{}: `server` is not a table", path.display())))?;
    for (key, value) in &changes {
        server.insert(key, toml_edit::value(value.as_str()));
    }
    let new_text = doc.to_string();
    // The edited file must say exactly what was asked, or it is not written.
    let parsed = config::parse_for(&new_text, &path.display().to_string(), privileged)
        .map_err(Failure::config)?;
    for (key, value) in &changes {
        let got = match *key {
            "primary_domain" => &parsed.server.primary_domain,
            _ => &parsed.server.hostname,
        };
        if got != value {
            return Err(Failure::config(format!(
                "could not set server.{key} in {}: set it there yourself",
                path.display()
            )));
        }
    }
    write_keeping_mode(path, new_text.as_bytes())
        .map_err(|e| Failure::op(format!("cannot update {}: {e}", path.display())))?;
    *cfg = parsed;
    Ok(warnings)
}

/// Whether the file sets `server.<key>` itself (rather than leaving it to its default).
fn sets_server_key(path: &Path, key: &str) -> Result<bool, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::op(format!("cannot read {}: {e}", path.display())))?;
    let doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| Failure::config(format!("{}: {e}", path.display())))?;
    Ok(doc
        .get("server")
        .and_then(|s| s.as_table_like())
        .is_some_and(|t| t.contains_key(key)))
}

/// Replaces `path` durably (temporary file, fsync, rename), keeping its permissions: the config
/// may hold a relay password.
fn write_keeping_mode(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let permissions = std::fs::metadata(path)?.permissions();
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.set_permissions(permissions)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Writes the postmaster's password to [`INITIAL_PASSWORD_FILE`] (mode 0600) and returns its path.
pub fn write_initial_password(
    data: &Path,
    address: &str,
    password: &str,
) -> std::io::Result<PathBuf> {
    let path = data.join(INITIAL_PASSWORD_FILE);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(PASSWORD_FILE_MODE)
        .open(&path)?;
    // An existing file keeps its mode through open(2): set it again.
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(std::fs::Permissions::from_mode(PASSWORD_FILE_MODE))?;
    writeln!(
        f,
        "# The first password of {address}, made at Facteur's first start.\n\
         # Note it (or change it: facteur account passwd {address}), then delete this file.\n\
         address: {address}\npassword: {password}"
    )?;
    f.sync_all()?;
    Ok(path)
}

/// Whether `name` is a fully qualified domain name other servers can find: at least two labels, and
/// not a name every machine has for itself.
pub fn is_fqdn(name: &str) -> bool {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    n.contains('.')
        && n != "localhost"
        && !n.ends_with(".localhost")
        && !n.ends_with(".localdomain")
        && !n.ends_with(".local")
}

/// The warning printed at every start while the host name is not a fully qualified domain name.
pub fn hostname_warning(hostname: &str, config_path: &Path) -> Option<String> {
    if is_fqdn(hostname) {
        return None;
    }
    Some(format!(
        "Warning: the host name {hostname:?} is not a fully qualified domain name. Other mail \
         servers see it in the greeting and EHLO (220 {hostname}), and many refuse or score such \
         mail as spam; the MX record `facteur dns` suggests would point to it, and the TLS \
         certificate is made for it, so clients cannot verify it. Fix: choose a name such as \
         mail.example.com with an A (and AAAA) record for this machine, set server.hostname in \
         {} (or give --hostname at first start), delete tls/cert.pem and tls/key.pem if they are \
         the self-signed pair, and restart.",
        config_path.display()
    ))
}

/// Width the banner's prose is wrapped to.
const BANNER_WIDTH: usize = 100;

/// Wraps each line of `text` to [`BANNER_WIDTH`] columns, continuation lines indented like the
/// line they continue (commands, which are indented lines, are short and stay whole).
pub fn wrap(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let pad = " ".repeat(indent);
        let mut current = pad.clone();
        for word in line.split_whitespace() {
            if current.trim().is_empty() {
                current.push_str(word);
            } else if current.chars().count() + 1 + word.chars().count() > BANNER_WIDTH {
                out.push_str(&current);
                out.push('\n');
                current = format!("{pad}{word}");
            } else {
                current.push(' ');
                current.push_str(word);
            }
        }
        out.push_str(&current);
        out.push('\n');
    }
    out
}

/// `path` as one shell word.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./:=@+,".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// `facteur` with the `--data`/`--config` options of this run, so the commands printed can be
/// pasted as they are.
pub fn command_prefix(cli: &Cli) -> String {
    let mut s = String::from("facteur");
    if cli.data != crate::cli::default_data_dir() {
        s.push_str(&format!(
            " --data {}",
            shell_word(&cli.data.display().to_string())
        ));
    }
    if let Some(c) = &cli.config {
        s.push_str(&format!(
            " --config {}",
            shell_word(&c.display().to_string())
        ));
    }
    s
}

/// What the first start tells the admin to do next.
pub struct NextSteps<'a> {
    pub cli: &'a Cli,
    pub cfg: &'a Config,
    pub domain: &'a str,
    /// The certificate was made now, self-signed.
    pub self_signed: bool,
    pub cert_path: &'a Path,
}

impl NextSteps<'_> {
    pub fn render(&self) -> String {
        let f = command_prefix(self.cli);
        let d = self.domain;
        let host = &self.cfg.server.hostname;
        let cert = if self.self_signed {
            format!(
                "   The TLS certificate for {host} is self-signed: mail clients will warn about it \
                 (servers sending to you accept it). For a real one (e.g. from Let's Encrypt with \
                 certbot; Facteur does not do ACME itself yet), put the chain in {} and the key \
                 next to it (or set [tls] cert and key), then send SIGHUP to the server to load \
                 it.\n",
                self.cert_path.display()
            )
        } else {
            format!(
                "   TLS uses the certificate in {}; after renewing it, send SIGHUP to the server to \
                 load it.\n",
                self.cert_path.display()
            )
        };
        wrap(&format!(
            "Next steps:\n\
             1. Add an account (a password is generated and printed; --password-stdin to give \
             one):\n      {f} account add alice@{d} --name \"Alice\"\n\
             2. Publish the DNS records of {d}, then check them; the DKIM keys start signing \
             once their records are seen:\n      {f} dns {d}\n      {f} dns {d} --check\n\
             3. Certificate:\n{cert}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fqdn() {
        assert!(is_fqdn("mail.example.com"));
        assert!(is_fqdn("mail.example.com."));
        for bad in [
            "vm",
            "localhost",
            "LOCALHOST",
            "vm.localdomain",
            "box.local",
            "a.localhost",
        ] {
            assert!(!is_fqdn(bad), "{bad}");
        }
        assert!(hostname_warning("vm", Path::new("f.toml")).is_some());
        assert!(hostname_warning("mx.example.org", Path::new("f.toml")).is_none());
    }

    #[test]
    fn wrapping_keeps_words_and_indents() {
        let long = format!("   {}", "word ".repeat(40));
        let wrapped = wrap(&long);
        assert!(wrapped.lines().count() > 1);
        assert!(
            wrapped
                .lines()
                .all(|l| l.chars().count() <= BANNER_WIDTH && l.starts_with("   "))
        );
        assert_eq!(wrapped.split_whitespace().count(), 40);
        assert_eq!(wrap("short\n  cmd x"), "short\n  cmd x\n");
    }

    #[test]
    fn shell_words() {
        assert_eq!(shell_word("/var/lib/facteur"), "/var/lib/facteur");
        assert_eq!(shell_word("my data"), "'my data'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }
}
