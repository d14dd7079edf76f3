//! Command-line interface: `facteur serve` and the admin commands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Where the data lives when `--data` is not given: a system service's folder for root (the
/// Debian package's), the current folder otherwise (trying Facteur out as oneself).
pub fn default_data_dir() -> PathBuf {
    if crate::privileges::is_root() {
        PathBuf::from(SYSTEM_DATA_DIR)
    } else {
        PathBuf::from(USER_DATA_DIR)
    }
}

/// The data folder of a server started as root (and of the Debian package).
pub const SYSTEM_DATA_DIR: &str = "/var/lib/facteur";
/// The data folder of a server started as another user, relative to the current folder.
pub const USER_DATA_DIR: &str = "facteur-data";

#[derive(Debug, Parser)]
#[command(
    name = "facteur",
    version,
    about = "Facteur: an all-in-one mail server"
)]
pub struct Cli {
    /// Data folder: database, blobs, TLS files and the default config live here (default:
    /// ./facteur-data, or /var/lib/facteur when run as root, as the Debian package does).
    #[arg(
        long,
        global = true,
        env = "FACTEUR_DATA",
        default_value_os_t = default_data_dir()
    )]
    pub data: PathBuf,
    /// Config file (default: <data>/facteur.toml).
    #[arg(long, global = true, env = "FACTEUR_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print results as JSON (admin commands) and log as JSON (serve).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server; on an empty data folder, set everything up first.
    Serve(ServeArgs),
    /// Validate a config file and exit (0 when valid, 2 when not).
    CheckConfig {
        /// File to check (default: the --config or <data>/facteur.toml).
        file: Option<PathBuf>,
    },
    /// Manage domains.
    #[command(subcommand)]
    Domain(DomainCmd),
    /// Manage accounts.
    #[command(subcommand)]
    Account(AccountCmd),
    /// Manage aliases.
    #[command(subcommand)]
    Alias(AliasCmd),
    /// Authentication checks.
    #[command(subcommand)]
    Auth(AuthCmd),
    /// Login bans: list them, or lift one (a running server applies it within seconds).
    #[command(subcommand)]
    Ban(BanCmd),
    /// Check the store's integrity (database, blob references, files).
    CheckStore,
    /// Inspect and act on the outbound queue.
    #[command(subcommand)]
    Queue(QueueCmd),
    /// DKIM signing keys of our domains.
    #[command(subcommand)]
    Dkim(DkimCmd),
    /// Sieve scripts of accounts (user@domain) and domains (the admin's, run first).
    #[command(subcommand)]
    Sieve(SieveCmd),
    /// The content classifier: train it on your mail, test a message, see its models.
    #[command(subcommand)]
    Spam(SpamCmd),
    /// Messages held back by the inbound checks: list, show, release to the INBOX, delete.
    #[command(subcommand)]
    Quarantine(QuarantineCmd),
    /// Print the DNS records a mail domain needs, in zone-file syntax; with --check, compare them
    /// with the DNS.
    Dns {
        domain: String,
        /// Look each record up and report OK, MISSING, WRONG or UNKNOWN (exit status 1 if a
        /// required record is missing or wrong, 3 if one could not be looked up); pending DKIM
        /// keys whose records are seen start signing.
        #[arg(long)]
        check: bool,
    },
}

/// TARGET is an account (`user@domain`) or a domain (`example.com`: the admin's scripts, whose
/// active one runs before each account's).
#[derive(Debug, Subcommand)]
pub enum SieveCmd {
    /// Store a script (FILE, or - for standard input) after checking it; replaces one of the
    /// same name.
    Put {
        target: String,
        name: String,
        file: PathBuf,
        /// Make it the active script too.
        #[arg(long)]
        activate: bool,
    },
    /// Print a script (the active one without NAME).
    Get {
        target: String,
        name: Option<String>,
    },
    /// The scripts with their sizes; the active one is marked.
    List { target: String },
    /// Make NAME the active script (the one that runs at delivery).
    Activate { target: String, name: String },
    /// Leave no script active.
    Deactivate { target: String },
    /// Delete a script (not the active one).
    Delete { target: String, name: String },
    Rename {
        target: String,
        from: String,
        to: String,
    },
    /// Check a script file: errors with line and column (exit status 2).
    Check { file: PathBuf },
    /// Print what a script would do with a message (nothing is stored or sent).
    Test {
        file: PathBuf,
        message: PathBuf,
        /// Envelope sender.
        #[arg(long, default_value = "sender@example.net")]
        from: String,
        /// Envelope recipient (the script's account).
        #[arg(long, default_value = "user@example.com")]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DkimCmd {
    /// Make a new signing key, pending until its DNS record is published, and print the record.
    Generate {
        domain: String,
        /// rsa (2048 bits), ed25519 (RFC 8463) or both.
        #[arg(long, default_value = "both")]
        algorithm: String,
        /// Selector (default: f<date><r|e>); only with a single algorithm.
        #[arg(long)]
        selector: Option<String>,
        /// Replace the key that already has this selector.
        #[arg(long)]
        replace: bool,
    },
    /// List keys with their state (pending, active, retired) and DNS records.
    List { domain: Option<String> },
    /// Sign with a pending key (all pending keys of the domain without SELECTOR) once the DNS has
    /// its record.
    Activate {
        domain: String,
        selector: Option<String>,
        /// Do not check the DNS first.
        #[arg(long)]
        force: bool,
    },
    /// Remove a key (refused for the last active key of a domain unless --force).
    Remove {
        domain: String,
        selector: String,
        #[arg(long)]
        force: bool,
    },
    /// Make new keys (pending) to publish; with --finish, once they are in the DNS, sign with them
    /// and retire the old ones.
    Rotate {
        domain: String,
        #[arg(long)]
        finish: bool,
        /// With --finish: do not check the DNS for the new keys first.
        #[arg(long, requires = "finish")]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SpamCmd {
    /// Learn messages as spam and/or ham: each PATH is a directory of message files (.eml,
    /// .txt, a Maildir), one message file, or an mbox file. Learning a message twice counts it
    /// once; learning it as the other class moves it.
    Train {
        #[arg(long, value_name = "PATH")]
        spam: Vec<PathBuf>,
        #[arg(long, value_name = "PATH")]
        ham: Vec<PathBuf>,
        /// Also learn into this account's own model (the global model always learns).
        #[arg(long, value_name = "ADDRESS")]
        account: Option<String>,
    },
    /// Take learned messages back out of the models (as a message moved out of Junk).
    Forget {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        #[arg(long, value_name = "ADDRESS")]
        account: Option<String>,
    },
    /// Score one message: verdict, probability, score and every token that counted.
    Test {
        file: PathBuf,
        /// Blend in this account's model (when it has learned enough).
        #[arg(long, value_name = "ADDRESS")]
        account: Option<String>,
    },
    /// How much the global model (and an account's) has learned, and whether it is ready.
    Status {
        #[arg(long, value_name = "ADDRESS")]
        account: Option<String>,
    },
    /// Senders (user@domain, @domain) and client IPs or CIDR blocks whose mail is never junked,
    /// quarantined or refused for its score (DMARC reject and malware still apply).
    #[command(subcommand)]
    Allow(ListCmd),
    /// Senders and client IPs or CIDR blocks whose mail is refused (or junked or quarantined,
    /// see verdict.block_action).
    #[command(subcommand)]
    Block(ListCmd),
}

#[derive(Debug, Subcommand)]
pub enum ListCmd {
    /// Add an entry to the list of a domain or an account.
    Add {
        /// user@domain, @domain, an IP address or a CIDR block.
        pattern: String,
        #[arg(long, value_name = "DOMAIN")]
        domain: Option<String>,
        #[arg(long, value_name = "ADDRESS")]
        account: Option<String>,
    },
    /// Remove an entry.
    Remove {
        pattern: String,
        #[arg(long, value_name = "DOMAIN")]
        domain: Option<String>,
        #[arg(long, value_name = "ADDRESS")]
        account: Option<String>,
    },
    /// The entries of a domain or an account (of all without either).
    List {
        #[arg(long, value_name = "DOMAIN")]
        domain: Option<String>,
        #[arg(long, value_name = "ADDRESS")]
        account: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum QuarantineCmd {
    /// Held messages, oldest first (those for one account with --account).
    List {
        #[arg(long, value_name = "ADDRESS")]
        account: Option<String>,
    },
    /// A held message's details and header (the whole message with --raw).
    Show {
        id: i64,
        #[arg(long)]
        raw: bool,
    },
    /// Deliver a held message to its recipients' INBOX (and remote forwards), then forget it.
    Release { id: i64 },
    /// Delete a held message.
    Delete { id: i64 },
    /// Delete the messages past their expiry now (the server does it every hour).
    Expire,
}

#[derive(Debug, Subcommand)]
pub enum QueueCmd {
    /// List queued messages: id, age, attempts, sender, recipients, next attempt, last error.
    List,
    /// Show one queued message: envelope, recipient states and its headers.
    Show { id: i64 },
    /// Attempt delivery of one queued message now (the running server picks it up within seconds).
    Retry { id: i64 },
    /// Remove a queued message without notifying its sender.
    Delete { id: i64 },
    /// Attempt delivery of every queued message now.
    Flush,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// First start only: the primary domain, created with its postmaster@ account and written to
    /// the config as server.primary_domain (default: the config's value, "localhost").
    #[arg(long)]
    pub domain: Option<String>,
    /// First start only: this server's fully qualified host name (greeting, MX target, certificate),
    /// written to the config as server.hostname (default: the machine's host name).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Set up the data folder, print what would listen, and exit without serving.
    #[arg(long)]
    pub init_only: bool,
    /// User to run as when started as root, instead of server.user ("root" keeps root: unsafe).
    #[arg(long, env = "FACTEUR_USER")]
    pub user: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum DomainCmd {
    /// Add a domain.
    Add { name: String },
    /// List domains.
    List,
    /// Remove a domain and its aliases (refused while it has accounts, unless --force).
    Remove {
        name: String,
        /// Also remove its accounts and all their mail.
        #[arg(long)]
        force: bool,
    },
    /// Set or clear (with no address) the catch-all of a domain; a target in one of our domains
    /// must be an existing account or alias.
    Catchall {
        domain: String,
        target: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountCmd {
    /// Add an account. Its password is generated and printed once, unless --password-stdin
    /// (asked twice without echo on a terminal, else read from standard input). Weak passwords
    /// are refused with the reason.
    Add {
        address: String,
        /// Display name.
        #[arg(long, default_value = "")]
        name: String,
        /// Storage quota, e.g. 500M, 2G, or bytes; "unlimited" (or "none") for no limit.
        #[arg(long)]
        quota: Option<String>,
        /// Give the password: asked without echo on a terminal, else read from standard input.
        #[arg(long, conflicts_with = "generate")]
        password_stdin: bool,
        /// Generate a random password and print it (the default).
        #[arg(long)]
        generate: bool,
    },
    /// List accounts, optionally of one domain.
    List { domain: Option<String> },
    /// Set a new password: asked twice without echo on a terminal; otherwise --password-stdin or
    /// --generate is required.
    Passwd {
        address: String,
        /// Read the password from standard input (asked without echo on a terminal).
        #[arg(long, conflicts_with = "generate")]
        password_stdin: bool,
        /// Generate a random password and print it.
        #[arg(long)]
        generate: bool,
    },
    /// Set the storage quota, e.g. 500M or 2G; "unlimited" (or "none") for no limit.
    Quota { address: String, quota: String },
    /// Disable an account: it can no longer log in or receive mail.
    Disable { address: String },
    /// Enable a disabled account.
    Enable { address: String },
    /// Remove an account and all its mail.
    Remove { address: String },
    /// Let an account also send (header From, Sender, MAIL FROM) as another address or a whole
    /// domain (`@domain`) on submission, besides its own address and its aliases.
    SendAs {
        address: String,
        action: crate::send_as_cmd::SendAsAction,
        /// `user@domain` or `@domain` (not for list).
        target: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AliasCmd {
    /// Add an alias delivering to one or more addresses (external ones, or existing accounts and
    /// aliases of our domains).
    Add {
        address: String,
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// List aliases, optionally of one domain.
    List { domain: Option<String> },
    /// Remove an alias.
    Remove { address: String },
}

#[derive(Debug, Subcommand)]
pub enum AuthCmd {
    /// Check a password the way the protocols do (asked without echo on a terminal, else read
    /// from standard input); also says when the account is disabled or a login ban applies.
    Test {
        address: String,
        /// The client's IP address, to check the bans of that source too.
        #[arg(long)]
        from: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum BanCmd {
    /// List the login bans in force: source, account, failures, time left.
    List,
    /// Lift the bans of an IP address (an IPv6 address lifts its /64), or of an account.
    Remove { target: String },
}
