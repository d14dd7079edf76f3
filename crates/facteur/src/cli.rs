//! Command-line interface: `facteur serve` and the admin commands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "facteur",
    version,
    about = "Facteur: an all-in-one mail server"
)]
pub struct Cli {
    /// Data folder: database, blobs, TLS files and the default config live here.
    #[arg(
        long,
        global = true,
        env = "FACTEUR_DATA",
        default_value = "facteur-data"
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
    /// Check the store's integrity (database, blob references, files).
    CheckStore,
    /// Inspect and act on the outbound queue.
    #[command(subcommand)]
    Queue(QueueCmd),
    /// DKIM signing keys of our domains.
    #[command(subcommand)]
    Dkim(DkimCmd),
    /// The content classifier: train it on your mail, test a message, see its models.
    #[command(subcommand)]
    Spam(SpamCmd),
    /// Print the DNS records a mail domain needs; with --check, compare them with the DNS.
    Dns {
        domain: String,
        /// Look each record up and report OK, MISSING or WRONG (exit status 1 if a required
        /// record is not OK).
        #[arg(long)]
        check: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DkimCmd {
    /// Make a new signing key (active at once) and print its DNS record.
    Generate {
        domain: String,
        /// rsa (2048 bits), ed25519 (RFC 8463) or both.
        #[arg(long, default_value = "both")]
        algorithm: String,
        /// Selector (default: f<date><r|e>); only with a single algorithm.
        #[arg(long)]
        selector: Option<String>,
    },
    /// List keys with their DNS records.
    List { domain: Option<String> },
    /// Make new keys (not signing yet) to publish; with --finish, sign with them and retire the
    /// old ones.
    Rotate {
        domain: String,
        #[arg(long)]
        finish: bool,
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
    /// Primary domain created at first start (default: server.primary_domain, i.e. localhost).
    #[arg(long)]
    pub domain: Option<String>,
    /// Set up the data folder, print what would listen, and exit without serving.
    #[arg(long)]
    pub init_only: bool,
}

#[derive(Debug, Subcommand)]
pub enum DomainCmd {
    /// Add a domain.
    Add { name: String },
    /// List domains.
    List,
    /// Remove a domain (refused while it has accounts, unless --force).
    Remove {
        name: String,
        /// Also remove its accounts and their mail.
        #[arg(long)]
        force: bool,
    },
    /// Set or clear (with no address) the catch-all of a domain.
    Catchall {
        domain: String,
        target: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountCmd {
    /// Add an account; prints a generated password unless --password-stdin.
    Add {
        address: String,
        /// Display name.
        #[arg(long, default_value = "")]
        name: String,
        /// Storage quota, e.g. 500M, 2G, or bytes.
        #[arg(long)]
        quota: Option<String>,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts, optionally of one domain.
    List { domain: Option<String> },
    /// Set a new password (read from standard input, or generated and printed).
    Passwd {
        address: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set the storage quota ("none" for unlimited).
    Quota { address: String, quota: String },
    /// Disable an account: it can no longer log in or receive mail.
    Disable { address: String },
    /// Enable a disabled account.
    Enable { address: String },
    /// Remove an account and all its mail.
    Remove { address: String },
}

#[derive(Debug, Subcommand)]
pub enum AliasCmd {
    /// Add an alias delivering to one or more addresses (local or external).
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
    /// Check a password (read from standard input) the way the protocols do.
    Test { address: String },
}
