//! The one configuration file, `facteur.toml`: its sections, their defaults, loading and
//! validation.
//!
//! Every key has a default, so an empty file is a valid configuration; unknown keys are refused so a
//! misspelt limit never silently falls back to its default. Errors name the key and its line.
//! `docs/config.md` documents every key; a test keeps the two in step.

mod conncheck;
mod error;
mod keys;
mod size;
#[cfg(test)]
mod tests;
mod threats;
pub mod verdict;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::de::{DeTable, DeValue};

pub use conncheck::{
    ConnectionSection, DnsblSection, GreylistSection, HeloAction, Score, ZoneAction, ZoneConfig,
    ZoneType, parse_network,
};
pub use error::{ConfigError, KeyHint};
pub use net::tls::TlsMin;
pub use size::parse_size;
pub use threats::{AntivirusSection, AttachmentsSection, PhishingSection};

/// The system user `serve` switches to when started as root (the Debian package creates it).
pub const DEFAULT_USER: &str = "facteur";
/// Longest user name accepted (the `ut_user` field of utmp, which most tools assume).
const MAX_USER_LEN: usize = 32;
/// Host name used when the machine's own cannot be read or is not a valid DNS name.
const FALLBACK_HOSTNAME: &str = "localhost";
/// RFC 1035 §2.3.4: 255 octets on the wire, i.e. 253 characters in dotted form.
const MAX_HOSTNAME_LEN: usize = 253;
/// RFC 1035 §2.3.4.
const MAX_LABEL_LEN: usize = 63;
/// RFC 5321 §4.5.3.1.4: a server must accept command lines of 512 octets.
const MIN_SMTP_LINE_LENGTH: usize = 512;
/// RFC 5321 §4.5.3.1.6: a server must accept text lines of 1000 octets.
const MIN_TEXT_LINE_LENGTH: usize = 1000;
/// RFC 7162 §4: servers should accept command lines of at least 8192 octets.
const MIN_IMAP_LINE_LENGTH: usize = 8192;
/// RFC 5321 §4.5.3.2.1 lets clients wait 5 minutes for the greeting; a longer delay loses mail.
const MAX_GREETING_DELAY_MS: u64 = 60_000;
/// SQLite's default SQLITE_MAX_LENGTH: no single value may be larger.
const MAX_INLINE_BLOB: u64 = 1_000_000_000;
/// Argon2 (RFC 9106 §3.1): memory must be at least 8 KiB per lane.
const ARGON2_MIN_MEMORY_KIB_PER_LANE: u32 = 8;
/// Memory spent on each login attempt; beyond this, a burst of logins could exhaust the machine.
const ARGON2_MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
/// zxcvbn scores go from 0 to 4.
const MAX_PASSWORD_SCORE: u8 = 4;
/// RFC 9106 §3.1: the degree of parallelism is at most 2^24 - 1.
const ARGON2_MAX_PARALLELISM: u32 = (1 << 24) - 1;

/// Most features read from one message: beyond this, scoring costs more store reads than the
/// per-message CPU budget allows (docs/benchmarks.md).
const MAX_CLASSIFIER_FEATURES: usize = 20_000;

/// The whole configuration. Pass it around as `Arc<Config>`; there is no global.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub listeners: ListenersConfig,
    pub tls: TlsConfig,
    pub store: StoreConfig,
    pub limits: LimitsConfig,
    pub auth: AuthConfig,
    pub smtp: SmtpSection,
    pub queue: QueueSection,
    pub pop3: Pop3Section,
    pub dns: DnsSection,
    pub classifier: ClassifierSection,
    pub connection: ConnectionSection,
    pub dnsbl: DnsblSection,
    pub greylist: GreylistSection,
    pub attachments: AttachmentsSection,
    pub antivirus: AntivirusSection,
    pub phishing: PhishingSection,
    pub verdict: verdict::VerdictSection,
    pub sieve: SieveSection,
    pub log: LogConfig,
}

/// What to do with a bare LF or CR in SMTP commands and message data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BareNewlinePolicy {
    #[default]
    Reject,
    Normalize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSection {
    /// `reject` (default) or `normalize`.
    pub bare_newline: BareNewlinePolicy,
    /// Milliseconds to wait before the greeting; clients that talk first are dropped.
    pub greeting_delay_ms: u64,
    pub data_timeout_secs: u64,
    /// NOOP, RSET, VRFY, EXPN and HELP allowed between accepted messages; further ones count as
    /// bad commands.
    pub max_junk_commands: u32,
    /// Bytes per second below which a DATA transfer is abandoned.
    pub min_data_rate: u64,
    /// SPF, DKIM, DMARC and ARC checks of mail received on port 25.
    pub inbound_auth: bool,
    /// Bytes past which a message being received goes to a spool file.
    pub spool_threshold: u64,
    /// Bytes of message data held in memory by all transfers together.
    pub data_memory: u64,
    /// Bytes of messages being analysed, checked and stored at once, all deliveries together.
    pub processing_memory: u64,
}

impl Default for SmtpSection {
    fn default() -> Self {
        SmtpSection {
            bare_newline: BareNewlinePolicy::Reject,
            greeting_delay_ms: 0,
            data_timeout_secs: 600,
            max_junk_commands: 100,
            min_data_rate: 1024,
            inbound_auth: true,
            spool_threshold: smtp::spool::DEFAULT_SPOOL_THRESHOLD,
            data_memory: smtp::spool::DEFAULT_DATA_MEMORY,
            processing_memory: smtp::spool::DEFAULT_PROCESSING_MEMORY,
        }
    }
}

/// TLS towards recipient MX hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboundTlsPolicy {
    /// STARTTLS when offered, any certificate (RFC 7435).
    #[default]
    Opportunistic,
    /// STARTTLS with a valid certificate, or the attempt is deferred.
    Required,
}

/// How the smarthost connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelaySecurityPolicy {
    /// STARTTLS required (port 587).
    #[default]
    Starttls,
    /// Implicit TLS (port 465).
    Tls,
}

/// Outbound delivery: retries, concurrency, TLS and the optional smarthost.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueSection {
    pub remote_port: u16,
    pub concurrency: usize,
    pub per_domain: usize,
    pub retry_initial_secs: u64,
    pub retry_max_secs: u64,
    pub max_age_secs: u64,
    pub delay_warning_secs: u64,
    pub tls: OutboundTlsPolicy,
    pub relay_host: String,
    pub relay_port: u16,
    pub relay_security: RelaySecurityPolicy,
    pub relay_verify_certificate: bool,
    pub relay_username: String,
    pub relay_password: String,
    pub mta_sts: bool,
    pub mta_sts_port: u16,
    pub dane: bool,
    pub ca_file: PathBuf,
}

impl std::fmt::Debug for QueueSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueSection")
            .field("remote_port", &self.remote_port)
            .field("concurrency", &self.concurrency)
            .field("per_domain", &self.per_domain)
            .field("retry_initial_secs", &self.retry_initial_secs)
            .field("retry_max_secs", &self.retry_max_secs)
            .field("max_age_secs", &self.max_age_secs)
            .field("delay_warning_secs", &self.delay_warning_secs)
            .field("tls", &self.tls)
            .field("relay_host", &self.relay_host)
            .field("relay_port", &self.relay_port)
            .field("relay_security", &self.relay_security)
            .field("relay_verify_certificate", &self.relay_verify_certificate)
            .field("relay_username", &self.relay_username)
            .field("relay_password", &"<redacted>")
            .field("mta_sts", &self.mta_sts)
            .field("mta_sts_port", &self.mta_sts_port)
            .field("dane", &self.dane)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl Default for QueueSection {
    fn default() -> Self {
        QueueSection {
            remote_port: 25,
            concurrency: 32,
            per_domain: 4,
            retry_initial_secs: 5 * 60,
            retry_max_secs: 4 * 3600,
            max_age_secs: 5 * 86_400,
            delay_warning_secs: 4 * 3600,
            tls: OutboundTlsPolicy::Opportunistic,
            relay_host: String::new(),
            relay_port: 587,
            relay_security: RelaySecurityPolicy::Starttls,
            relay_verify_certificate: true,
            relay_username: String::new(),
            relay_password: String::new(),
            mta_sts: true,
            mta_sts_port: 443,
            dane: true,
            ca_file: PathBuf::new(),
        }
    }
}

/// RFC 2449 §6.7 EXPIRE as written in the file: `"never"` or a number of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Pop3Expire {
    Days(u32),
    Never(NeverWord),
}

/// The one word `expire` accepts besides a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NeverWord {
    Never,
}

/// POP3 policies announced in CAPA (RFC 2449). Timeouts, line and error limits are in [limits].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pop3Section {
    /// Minimum days a retrieved message stays on the server; 0: retrieved messages are removed
    /// at QUIT.
    pub expire: Pop3Expire,
    /// Shortest time between two logins to one account; 0: no limit (not advertised).
    pub login_delay_secs: u64,
}

impl Default for Pop3Section {
    fn default() -> Self {
        Pop3Section {
            expire: Pop3Expire::Never(NeverWord::Never),
            login_delay_secs: 0,
        }
    }
}

/// The content classifier's models (crate `filter`; thresholds are the verdict stage's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClassifierSection {
    /// Messages of each class the global model must have learned before it gives verdicts.
    pub min_learned: u64,
    /// Messages of each class an account's own model must have learned before it counts.
    pub min_account_learned: u64,
    /// Weight of a ready account model against the global one, in percent.
    pub account_weight_percent: u8,
    /// Unique features read from one message.
    pub max_features: usize,
}

impl Default for ClassifierSection {
    fn default() -> Self {
        ClassifierSection {
            min_learned: filter::DEFAULT_MIN_LEARNED,
            min_account_learned: filter::DEFAULT_MIN_ACCOUNT_LEARNED,
            account_weight_percent: (filter::DEFAULT_ACCOUNT_WEIGHT * 100.0) as u8,
            max_features: filter::features::DEFAULT_MAX_FEATURES,
        }
    }
}

impl ClassifierSection {
    /// The classifier's settings from this section (the rest at their defaults).
    pub fn settings(&self) -> filter::Settings {
        let mut s = filter::Settings {
            min_learned: self.min_learned,
            min_account_learned: self.min_account_learned,
            account_weight: f64::from(self.account_weight_percent) / 100.0,
            ..filter::Settings::default()
        };
        s.limits.max_features = self.max_features;
        s
    }
}

/// Sieve filtering at delivery and the scripts users and admins upload (crate `sievefilter`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SieveSection {
    /// Run the domains' and accounts' active scripts at delivery.
    pub enabled: bool,
    /// Bytes of one script.
    pub max_script_size: usize,
    /// Scripts one account (or domain) may keep.
    pub max_scripts: usize,
    /// Instructions one run may execute (the CPU limit).
    pub max_instructions: usize,
    /// `redirect` actions one run may take.
    pub max_redirects: usize,
    /// Redirects one account's scripts may send per day (UTC).
    pub redirects_per_day: u32,
}

/// The largest script size an admin may allow.
const MAX_SIEVE_SCRIPT_SIZE: usize = 1024 * 1024;

impl Default for SieveSection {
    fn default() -> Self {
        let l = sievefilter::Limits::default();
        SieveSection {
            enabled: true,
            max_script_size: l.max_script_size,
            max_scripts: 20,
            max_instructions: l.max_instructions,
            max_redirects: l.max_redirects,
            redirects_per_day: 100,
        }
    }
}

impl SieveSection {
    pub fn limits(&self) -> sievefilter::Limits {
        sievefilter::Limits {
            max_script_size: self.max_script_size,
            max_instructions: self.max_instructions,
            max_redirects: self.max_redirects,
            ..sievefilter::Limits::default()
        }
    }
}

/// DNS resolution for outbound delivery and mail authentication.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsSection {
    /// "IP:PORT" of recursive resolvers; empty uses the system's (/etc/resolv.conf).
    pub nameservers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Name announced in greetings and EHLO; also the self-signed certificate's subject.
    pub hostname: String,
    /// Domain of the postmaster and of the first accounts.
    pub primary_domain: String,
    /// User the server runs as when started as root (after binding its ports); "root" keeps root.
    pub user: String,
}

/// Socket addresses per service; an empty list disables the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenersConfig {
    pub smtp: Vec<String>,
    pub submission: Vec<String>,
    pub submissions: Vec<String>,
    pub imap: Vec<String>,
    pub imaps: Vec<String>,
    pub pop3: Vec<String>,
    pub pop3s: Vec<String>,
    pub lmtp: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first; relative to the data folder.
    pub cert: PathBuf,
    /// PEM private key; relative to the data folder.
    pub key: PathBuf,
    pub min_version: TlsMin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    #[default]
    Sqlite,
    /// Parsed so the file format is stable, refused by validation until the backend exists.
    Postgres,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub backend: StoreBackend,
    /// Relative to the data folder.
    pub sqlite_path: PathBuf,
    /// Relative to the data folder.
    pub blobs_dir: PathBuf,
    /// Blobs up to this many bytes live inside the database, so they share the group commit's
    /// single fsync instead of costing a file write and fsync each.
    #[serde(deserialize_with = "size::bytes_u64")]
    pub inline_blob_max: u64,
    /// Most deliveries the single writer commits in one transaction.
    pub max_batch: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    #[serde(deserialize_with = "size::bytes_u64")]
    pub max_message_size: u64,
    pub max_recipients: usize,
    #[serde(deserialize_with = "size::bytes_usize")]
    pub smtp_line_length: usize,
    #[serde(deserialize_with = "size::bytes_usize")]
    pub text_line_length: usize,
    #[serde(deserialize_with = "size::bytes_usize")]
    pub imap_line_length: usize,
    pub imap_search_keys: usize,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_connections_per_user: usize,
    pub mime_max_depth: usize,
    pub mime_max_parts: usize,
    pub idle_timeout_secs: u64,
    pub command_timeout_secs: u64,
    pub max_bad_commands: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub max_failures_per_ip: u32,
    pub max_failures_per_account: u32,
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
    pub window_secs: u64,
    pub ban_secs: u64,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// Lowest zxcvbn strength score (0 to 4) of a new password; 0: length only.
    pub min_password_score: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// An `EnvFilter` directive string, e.g. `info` or `info,smtp=debug`.
    pub level: String,
    /// Append log lines to this file (relative to the data folder) instead of stderr; empty:
    /// stderr. Reopened on SIGHUP, for logrotate.
    pub file: PathBuf,
}

impl Config {
    /// The defaults. With `privileged`, in a process that may bind ports below 1024, the listeners
    /// use the standard ports; otherwise unprivileged ones (2525, 2587, 2465, 2143, 2993, 2110, 2995).
    pub fn default_for(privileged: bool) -> Config {
        Config {
            server: ServerConfig::default(),
            listeners: ListenersConfig::default_for(privileged),
            tls: TlsConfig::default(),
            store: StoreConfig::default(),
            limits: LimitsConfig::default(),
            auth: AuthConfig::default(),
            smtp: SmtpSection::default(),
            queue: QueueSection::default(),
            pop3: Pop3Section::default(),
            dns: DnsSection::default(),
            classifier: ClassifierSection::default(),
            connection: ConnectionSection::default(),
            dnsbl: DnsblSection::default(),
            greylist: GreylistSection::default(),
            attachments: AttachmentsSection::default(),
            antivirus: AntivirusSection::default(),
            phishing: PhishingSection::default(),
            verdict: verdict::VerdictSection::default(),
            sieve: SieveSection::default(),
            log: LogConfig::default(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::default_for(false)
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            hostname: machine_hostname().unwrap_or_else(|| FALLBACK_HOSTNAME.to_owned()),
            primary_domain: "localhost".to_owned(),
            user: DEFAULT_USER.to_owned(),
        }
    }
}

/// Standard ports (RFC 5321, 6409, 8314, 9051, 1939) in [`ListenersConfig`] field order; lmtp has
/// no standard port and is off by default.
const STANDARD_PORTS: [u16; 7] = [25, 587, 465, 143, 993, 110, 995];
/// Ports any user can bind, used when not running as root: the standard port plus 2000 (2525 for
/// SMTP, as 2025 is often taken).
const UNPRIVILEGED_PORTS: [u16; 7] = [2525, 2587, 2465, 2143, 2993, 2110, 2995];
/// Every address, IPv6 and IPv4 alike: `[::]` is bound dual-stack (IPV6_V6ONLY off), and where the
/// system has no IPv6 the listener falls back to `0.0.0.0` (see `listeners::bind_std`).
const DEFAULT_BIND_IP: &str = "[::]";

impl ListenersConfig {
    /// Standard ports if `privileged` and the process may bind them (root, or a service given
    /// CAP_NET_BIND_SERVICE), else unprivileged ones.
    pub fn default_for(privileged: bool) -> ListenersConfig {
        ListenersConfig::with_ports(privileged && crate::privileges::can_bind_privileged_ports())
    }

    fn with_ports(standard: bool) -> ListenersConfig {
        let ports = if standard {
            STANDARD_PORTS
        } else {
            UNPRIVILEGED_PORTS
        };
        let at = |i: usize| vec![format!("{DEFAULT_BIND_IP}:{}", ports[i])];
        ListenersConfig {
            smtp: at(0),
            submission: at(1),
            submissions: at(2),
            imap: at(3),
            imaps: at(4),
            pop3: at(5),
            pop3s: at(6),
            lmtp: Vec::new(),
        }
    }

    /// Every service with its configured addresses, in file order.
    pub fn services(&self) -> [(&'static str, &[String]); 8] {
        [
            ("smtp", &self.smtp),
            ("submission", &self.submission),
            ("submissions", &self.submissions),
            ("imap", &self.imap),
            ("imaps", &self.imaps),
            ("pop3", &self.pop3),
            ("pop3s", &self.pop3s),
            ("lmtp", &self.lmtp),
        ]
    }

    fn services_mut(&mut self) -> [(&'static str, &mut Vec<String>); 8] {
        [
            ("smtp", &mut self.smtp),
            ("submission", &mut self.submission),
            ("submissions", &mut self.submissions),
            ("imap", &mut self.imap),
            ("imaps", &mut self.imaps),
            ("pop3", &mut self.pop3),
            ("pop3s", &mut self.pop3s),
            ("lmtp", &mut self.lmtp),
        ]
    }

    /// Parsed addresses of one service's list. Lists are validated at load, so in a loaded
    /// [`Config`] nothing is dropped.
    pub fn socket_addrs(list: &[String]) -> Vec<SocketAddr> {
        list.iter().filter_map(|a| a.parse().ok()).collect()
    }
}

impl Default for ListenersConfig {
    fn default() -> Self {
        ListenersConfig::with_ports(false)
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: PathBuf::from("tls/cert.pem"),
            key: PathBuf::from("tls/key.pem"),
            min_version: TlsMin::Tls12,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: StoreBackend::Sqlite,
            sqlite_path: PathBuf::from("facteur.db"),
            blobs_dir: PathBuf::from("blobs"),
            inline_blob_max: 64 * 1024,
            max_batch: 256,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_message_size: 50 * 1024 * 1024,
            // RFC 5321 §4.5.3.1.8: at least 100 recipients must be accepted.
            max_recipients: 100,
            smtp_line_length: MIN_SMTP_LINE_LENGTH,
            text_line_length: MIN_TEXT_LINE_LENGTH,
            imap_line_length: 64 * 1024,
            imap_search_keys: 1000,
            max_connections: 1000,
            max_connections_per_ip: 50,
            // Dovecot allows 10 per user and IP; a user with a few devices, each with a
            // client holding several connections, stays well under this.
            max_connections_per_user: 30,
            mime_max_depth: 50,
            mime_max_parts: 2000,
            // RFC 9051 §5.4: the autologout timer must be at least 30 minutes.
            idle_timeout_secs: 30 * 60,
            // RFC 5321 §4.5.3.2.7: the server timeout should be at least 5 minutes.
            command_timeout_secs: 5 * 60,
            max_bad_commands: 10,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            max_failures_per_ip: 10,
            max_failures_per_account: 20,
            base_delay_ms: 500,
            max_delay_ms: 8000,
            window_secs: 15 * 60,
            ban_secs: 60 * 60,
            // OWASP's Argon2id minimum: 19 MiB, 2 iterations, 1 lane.
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            min_password_score: directory::DEFAULT_MIN_PASSWORD_SCORE,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".to_owned(),
            file: PathBuf::new(),
        }
    }
}

/// Reads and validates the config file at `path`, with unprivileged listener defaults.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_for(path, false)
}

/// Like [`load`], with listeners missing from the file defaulting as in
/// [`Config::default_for`]`(privileged)`.
pub fn load_for(path: &Path, privileged: bool) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ConfigError::NotFound {
                path: path.to_owned(),
            }
        } else {
            ConfigError::Read {
                path: path.to_owned(),
                source,
            }
        }
    })?;
    parse_for(&text, &path.display().to_string(), privileged)
}

/// Parses and validates config text; `origin` (usually the file name) starts every error message.
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    parse_for(text, origin, false)
}

/// Like [`parse`], with listeners missing from the text defaulting as in
/// [`Config::default_for`]`(privileged)`.
///
/// Reports every problem of the file, not only the first: all syntax errors; else every unknown
/// key and wrong value (each key is read on its own, so one bad key hides no other); else every
/// value the checks of [`Config::validate`] refuse.
pub fn parse_for(text: &str, origin: &str, privileged: bool) -> Result<Config, ConfigError> {
    let (doc, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        let mut errors: Vec<ConfigError> = Vec::new();
        for e in &syntax {
            let e = error::syntax(e, text, origin);
            // Recovery can report one mistake several times on its line.
            if errors.iter().all(|seen| seen.line() != e.line()) {
                errors.push(e);
            }
        }
        return Err(ConfigError::from_list(errors));
    }
    let span = doc.span();
    let doc = doc.into_inner();

    // Each key alone: a config of just that key shows exactly that key's problem.
    let mut errors: Vec<ConfigError> = Vec::new();
    for (section, value) in doc.iter() {
        let singles: Vec<DeTable<'_>> = match value.get_ref() {
            DeValue::Table(keys) if !keys.is_empty() => keys
                .iter()
                .map(|(k, v)| {
                    let mut one = DeTable::new();
                    one.insert(k.clone(), v.clone());
                    let mut top = DeTable::new();
                    top.insert(
                        section.clone(),
                        toml::Spanned::new(value.span(), DeValue::Table(one)),
                    );
                    top
                })
                .collect(),
            _ => {
                let mut top = DeTable::new();
                top.insert(section.clone(), value.clone());
                vec![top]
            }
        };
        for single in singles {
            let de = toml::de::Deserializer::from(toml::Spanned::new(span.clone(), single));
            if let Err(e) = Config::deserialize(de) {
                errors.push(error::deserialize(&e, &doc, text, origin));
            }
        }
    }
    if !errors.is_empty() {
        return Err(ConfigError::from_list(errors));
    }
    let de = toml::de::Deserializer::from(toml::Spanned::new(span, doc.clone()));
    let mut config =
        Config::deserialize(de).map_err(|e| error::deserialize(&e, &doc, text, origin))?;

    if privileged {
        let defaults = ListenersConfig::default_for(true);
        let defaults: HashMap<_, _> = defaults.services().into_iter().collect();
        for (service, list) in config.listeners.services_mut() {
            if error::lookup(&doc, &["listeners", service]).is_none()
                && let Some(default) = defaults.get(service)
            {
                *list = default.to_vec();
            }
        }
    }

    let mut invalid = Vec::new();
    config.validate(&mut invalid);
    if !invalid.is_empty() {
        return Err(ConfigError::from_list(
            invalid
                .into_iter()
                .map(|i| error::invalid(i, &doc, text, origin))
                .collect(),
        ));
    }
    Ok(config)
}

/// The commented default config file written at first start: every key with its default and a
/// one-line comment. It parses back to exactly [`Config::default_for`]`(privileged)`.
pub fn default_toml(privileged: bool) -> String {
    keys::render_default_toml(&Config::default_for(privileged))
}

/// `p` if absolute, else `p` under the data folder.
pub fn resolve_path(data_dir: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_owned()
    } else {
        data_dir.join(p)
    }
}

/// A value that parsed but is not acceptable. `keys` lists the key to blame first, then keys to
/// point at instead when the first is not in the file (it may hold its default).
#[derive(Debug)]
pub(crate) struct Invalid {
    pub keys: Vec<String>,
    pub index: Option<usize>,
    pub message: String,
}

fn invalid(key: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        keys: vec![key.to_owned()],
        index: None,
        message: message.into(),
    }
}

fn at_least<T: PartialOrd + std::fmt::Display>(
    key: &'static str,
    value: T,
    min: T,
) -> Result<(), Invalid> {
    if value < min {
        return Err(invalid(
            key,
            format!("{value} is below the minimum of {min}"),
        ));
    }
    Ok(())
}

fn not_empty(key: &'static str, path: &Path) -> Result<(), Invalid> {
    if path.as_os_str().is_empty() {
        return Err(invalid(key, "must not be empty"));
    }
    Ok(())
}

/// Records the error of one check and goes on, so a file's every problem is reported at once.
macro_rules! check {
    ($errs:expr, $result:expr) => {
        if let Err(e) = $result {
            $errs.push(e);
        }
    };
}

impl Config {
    /// Checks what types cannot: ranges, allowed values, consistency between keys.
    fn validate(&self, errs: &mut Vec<Invalid>) {
        for (key, name) in [
            ("server.hostname", &self.server.hostname),
            ("server.primary_domain", &self.server.primary_domain),
        ] {
            if !is_valid_hostname(name) {
                errs.push(invalid(
                    key,
                    format!("{name:?} is not a valid DNS name (letters, digits, '-' and '.')"),
                ));
            }
        }

        check!(
            errs,
            validate_user(&self.server.user).map_err(|m| invalid("server.user", m))
        );
        self.validate_listeners(errs);
        self.validate_queue(errs);
        self.validate_conncheck(errs);
        self.attachments.validate(errs);
        self.antivirus.validate(errs);
        let c = &self.classifier;
        check!(errs, at_least("classifier.min_learned", c.min_learned, 1));
        check!(
            errs,
            at_least("classifier.min_account_learned", c.min_account_learned, 1)
        );
        if c.account_weight_percent > 100 {
            errs.push(invalid(
                "classifier.account_weight_percent",
                format!("{} is above 100", c.account_weight_percent),
            ));
        }
        check!(
            errs,
            at_least("classifier.max_features", c.max_features, 16)
        );
        if c.max_features > MAX_CLASSIFIER_FEATURES {
            errs.push(invalid(
                "classifier.max_features",
                format!(
                    "{} is above the maximum of {MAX_CLASSIFIER_FEATURES}",
                    c.max_features
                ),
            ));
        }

        for (key, message) in self.verdict.problems() {
            errs.push(invalid(key, message));
        }
        let sv = &self.sieve;
        check!(
            errs,
            at_least("sieve.max_script_size", sv.max_script_size, 64)
        );
        if sv.max_script_size > MAX_SIEVE_SCRIPT_SIZE {
            errs.push(invalid(
                "sieve.max_script_size",
                format!(
                    "{} is above the maximum of {MAX_SIEVE_SCRIPT_SIZE}",
                    sv.max_script_size
                ),
            ));
        }
        check!(errs, at_least("sieve.max_scripts", sv.max_scripts, 1));
        check!(
            errs,
            at_least("sieve.max_instructions", sv.max_instructions, 100)
        );

        check!(errs, not_empty("tls.cert", &self.tls.cert));
        check!(errs, not_empty("tls.key", &self.tls.key));

        let store = &self.store;
        if store.backend == StoreBackend::Postgres {
            errs.push(invalid(
                "store.backend",
                "\"postgres\" is not available yet (only \"sqlite\" is)",
            ));
        }
        check!(errs, not_empty("store.sqlite_path", &store.sqlite_path));
        check!(errs, not_empty("store.blobs_dir", &store.blobs_dir));
        if store.inline_blob_max > MAX_INLINE_BLOB {
            errs.push(invalid(
                "store.inline_blob_max",
                format!(
                    "{} is above SQLite's value size limit of {MAX_INLINE_BLOB}",
                    store.inline_blob_max
                ),
            ));
        }
        check!(errs, at_least("store.max_batch", store.max_batch, 1));

        let l = &self.limits;
        check!(
            errs,
            at_least("limits.max_message_size", l.max_message_size, 1)
        );
        check!(errs, at_least("limits.max_recipients", l.max_recipients, 1));
        check!(
            errs,
            at_least(
                "limits.smtp_line_length",
                l.smtp_line_length,
                MIN_SMTP_LINE_LENGTH,
            )
        );
        check!(
            errs,
            at_least(
                "limits.text_line_length",
                l.text_line_length,
                MIN_TEXT_LINE_LENGTH,
            )
        );
        check!(
            errs,
            at_least(
                "limits.imap_line_length",
                l.imap_line_length,
                MIN_IMAP_LINE_LENGTH,
            )
        );
        check!(
            errs,
            at_least("limits.imap_search_keys", l.imap_search_keys, 1)
        );
        check!(
            errs,
            at_least("limits.max_connections", l.max_connections, 1)
        );
        check!(
            errs,
            at_least("limits.max_connections_per_ip", l.max_connections_per_ip, 1)
        );
        check!(
            errs,
            at_least(
                "limits.max_connections_per_user",
                l.max_connections_per_user,
                1,
            )
        );
        if l.max_connections_per_ip > l.max_connections {
            errs.push(Invalid {
                keys: vec![
                    "limits.max_connections_per_ip".to_owned(),
                    "limits.max_connections".to_owned(),
                ],
                index: None,
                message: format!(
                    "{} is above limits.max_connections ({})",
                    l.max_connections_per_ip, l.max_connections
                ),
            });
        }
        check!(errs, at_least("limits.mime_max_depth", l.mime_max_depth, 1));
        check!(errs, at_least("limits.mime_max_parts", l.mime_max_parts, 1));
        check!(
            errs,
            at_least("limits.idle_timeout_secs", l.idle_timeout_secs, 1)
        );
        check!(
            errs,
            at_least("smtp.data_timeout_secs", self.smtp.data_timeout_secs, 1)
        );
        check!(
            errs,
            at_least("smtp.spool_threshold", self.smtp.spool_threshold, 1)
        );
        check!(errs, at_least("smtp.data_memory", self.smtp.data_memory, 1));
        check!(
            errs,
            at_least("smtp.processing_memory", self.smtp.processing_memory, 1024)
        );
        if self.smtp.greeting_delay_ms > MAX_GREETING_DELAY_MS {
            errs.push(invalid(
                "smtp.greeting_delay_ms",
                format!(
                    "{} is above {MAX_GREETING_DELAY_MS}",
                    self.smtp.greeting_delay_ms
                ),
            ));
        }
        check!(
            errs,
            at_least("limits.command_timeout_secs", l.command_timeout_secs, 1)
        );
        check!(
            errs,
            at_least("limits.max_bad_commands", l.max_bad_commands, 1)
        );

        let a = &self.auth;
        check!(
            errs,
            at_least("auth.max_failures_per_ip", a.max_failures_per_ip, 1)
        );
        check!(
            errs,
            at_least(
                "auth.max_failures_per_account",
                a.max_failures_per_account,
                1,
            )
        );
        if a.base_delay_ms > a.max_delay_ms {
            errs.push(Invalid {
                keys: vec![
                    "auth.base_delay_ms".to_owned(),
                    "auth.max_delay_ms".to_owned(),
                ],
                index: None,
                message: format!(
                    "{} is above auth.max_delay_ms ({})",
                    a.base_delay_ms, a.max_delay_ms
                ),
            });
        }
        check!(errs, at_least("auth.window_secs", a.window_secs, 1));
        check!(
            errs,
            at_least("auth.argon2_iterations", a.argon2_iterations, 1)
        );
        check!(
            errs,
            at_least("auth.argon2_parallelism", a.argon2_parallelism, 1)
        );
        if a.argon2_parallelism > ARGON2_MAX_PARALLELISM {
            errs.push(invalid(
                "auth.argon2_parallelism",
                format!(
                    "{} is above Argon2's maximum of {ARGON2_MAX_PARALLELISM}",
                    a.argon2_parallelism
                ),
            ));
        }
        let min_memory = a
            .argon2_parallelism
            .saturating_mul(ARGON2_MIN_MEMORY_KIB_PER_LANE);
        if a.argon2_memory_kib < min_memory {
            errs.push(Invalid {
                keys: vec![
                    "auth.argon2_memory_kib".to_owned(),
                    "auth.argon2_parallelism".to_owned(),
                ],
                index: None,
                message: format!(
                    "{} is below Argon2's minimum of {ARGON2_MIN_MEMORY_KIB_PER_LANE} KiB per lane ({min_memory} for auth.argon2_parallelism = {})",
                    a.argon2_memory_kib, a.argon2_parallelism
                ),
            });
        }
        if a.argon2_memory_kib > ARGON2_MAX_MEMORY_KIB {
            errs.push(invalid(
                "auth.argon2_memory_kib",
                format!(
                    "{} is above the maximum of {ARGON2_MAX_MEMORY_KIB}",
                    a.argon2_memory_kib
                ),
            ));
        }

        if a.min_password_score > MAX_PASSWORD_SCORE {
            errs.push(invalid(
                "auth.min_password_score",
                format!(
                    "{} is above {MAX_PASSWORD_SCORE}, the strongest score",
                    a.min_password_score
                ),
            ));
        }

        check!(
            errs,
            validate_log_level(&self.log.level).map_err(|m| invalid("log.level", m))
        );
    }

    fn validate_queue(&self, errs: &mut Vec<Invalid>) {
        let q = &self.queue;
        check!(errs, at_least("queue.remote_port", q.remote_port, 1));
        check!(errs, at_least("queue.mta_sts_port", q.mta_sts_port, 1));
        check!(errs, at_least("queue.concurrency", q.concurrency, 1));
        check!(errs, at_least("queue.per_domain", q.per_domain, 1));
        check!(
            errs,
            at_least("queue.retry_initial_secs", q.retry_initial_secs, 1)
        );
        check!(
            errs,
            at_least(
                "queue.retry_max_secs",
                q.retry_max_secs,
                q.retry_initial_secs,
            )
        );
        check!(
            errs,
            at_least("queue.max_age_secs", q.max_age_secs, q.retry_initial_secs)
        );
        if !q.relay_host.is_empty() {
            check!(errs, at_least("queue.relay_port", q.relay_port, 1));
            if q.relay_host.parse::<std::net::IpAddr>().is_err()
                && !is_valid_hostname(&q.relay_host)
            {
                errs.push(invalid(
                    "queue.relay_host",
                    format!("{:?} is neither an IP address nor a DNS name", q.relay_host),
                ));
            }
        }
        if q.relay_username.is_empty() != q.relay_password.is_empty() {
            errs.push(invalid(
                "queue.relay_password",
                "relay_username and relay_password go together",
            ));
        }
        for (index, ns) in self.dns.nameservers.iter().enumerate() {
            if ns.parse::<SocketAddr>().is_err() {
                errs.push(Invalid {
                    keys: vec!["dns.nameservers".into()],
                    index: Some(index),
                    message: format!("{ns:?} is not IP:PORT"),
                });
            }
        }
    }

    fn validate_listeners(&self, errs: &mut Vec<Invalid>) {
        let mut seen: HashMap<SocketAddr, String> = HashMap::new();
        for (service, list) in self.listeners.services() {
            let key = format!("listeners.{service}");
            for (index, text) in list.iter().enumerate() {
                // LMTP may listen on a Unix socket, as a front MTA's delivery agent usually does.
                if service == "lmtp" && text.starts_with("unix:") {
                    if text.len() <= "unix:".len() {
                        errs.push(Invalid {
                            keys: vec![key.clone()],
                            index: Some(index),
                            message: "unix: needs a socket path".into(),
                        });
                    }
                    continue;
                }
                let Ok(addr) = text.parse::<SocketAddr>() else {
                    errs.push(Invalid {
                        keys: vec![key.clone()],
                        index: Some(index),
                        message: format!(
                            "{text:?} is not a socket address (expected IP:PORT, e.g. \"0.0.0.0:25\" or \"[::]:25\")"
                        ),
                    });
                    continue;
                };
                // Port 0 asks the system for a free port: never a clash.
                if addr.port() == 0 {
                    continue;
                }
                if let Some(other) = seen.insert(addr, key.clone()) {
                    errs.push(Invalid {
                        keys: vec![key.clone()],
                        index: Some(index),
                        message: format!("{addr} is already used by {other}"),
                    });
                }
            }
        }
    }
}

/// A name `getpwnam` can look up: not empty, no separator of /etc/passwd, no space or control
/// character (the name goes into error messages and log lines).
fn validate_user(user: &str) -> Result<(), String> {
    if user.is_empty() {
        return Err("must not be empty (\"facteur\", or \"root\" to keep root)".to_owned());
    }
    if user.len() > MAX_USER_LEN
        || user.starts_with('-')
        || !user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$'))
    {
        return Err(format!(
            "{user:?} is not a user name (letters, digits, '_', '-', '.', at most {MAX_USER_LEN})"
        ));
    }
    Ok(())
}

/// Accepts what `EnvFilter` accepts, except a bare word that is not a level: `EnvFilter` would
/// read a misspelt level such as `debgu` as a target name and silently log nothing.
fn validate_log_level(level: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    if level.trim().is_empty() {
        return Err("must not be empty (e.g. \"info\")".to_owned());
    }
    for directive in level.split(',').map(str::trim) {
        let bare = !directive.contains('=') && !directive.contains('[');
        if bare && !LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "{directive:?} is not a level (expected one of {}, or target=level)",
                LEVELS.join(", ")
            ));
        }
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(level)
        .map(|_| ())
        .map_err(|e| format!("{level:?} is not a valid filter: {e}"))
}

/// A DNS name: dot-separated labels of letters, digits and inner hyphens (RFC 1123 §2.1).
pub fn is_valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_HOSTNAME_LEN
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL_LEN
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The machine's host name, if it is a valid DNS name.
fn machine_hostname() -> Option<String> {
    // Linux's HOST_NAME_MAX is 64; POSIX allows up to 255 plus the NUL.
    let mut buf = [0u8; 256];
    // SAFETY: the pointer and length describe `buf`, which is valid for writes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    // No NUL means the name was truncated.
    let end = buf.iter().position(|&b| b == 0)?;
    let name = std::str::from_utf8(&buf[..end]).ok()?;
    is_valid_hostname(name).then(|| name.to_owned())
}
