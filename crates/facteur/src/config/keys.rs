//! One line of documentation per key, in file order, and the commented default file built from
//! them. A test checks this list against the keys `Config` actually serializes.

use super::Config;

pub(crate) struct SectionDoc {
    pub name: &'static str,
    pub comment: &'static str,
}

pub(crate) struct KeyDoc {
    pub section: &'static str,
    pub key: &'static str,
    pub comment: &'static str,
}

pub(crate) const SECTIONS: &[SectionDoc] = &[
    SectionDoc {
        name: "server",
        comment: "Identity of this server.",
    },
    SectionDoc {
        name: "listeners",
        comment: "Socket addresses (\"IP:PORT\", IPv6 as \"[::]:PORT\") per service; [] disables a service. \"[::]\" also takes IPv4.",
    },
    SectionDoc {
        name: "tls",
        comment: "Certificate for all listeners. A self-signed one is made at first start if both files are missing.",
    },
    SectionDoc {
        name: "store",
        comment: "Where mail is stored. Relative paths are relative to the data folder.",
    },
    SectionDoc {
        name: "limits",
        comment: "Limits on what clients may send and hold open.",
    },
    SectionDoc {
        name: "auth",
        comment: "Login throttling and password hashing.",
    },
    SectionDoc {
        name: "smtp",
        comment: "SMTP, submission and LMTP behaviour (limits shared with other protocols are in [limits]).",
    },
    SectionDoc {
        name: "queue",
        comment: "Outbound delivery: retries, concurrency, TLS, and an optional smarthost (relay_*).",
    },
    SectionDoc {
        name: "pop3",
        comment: "POP3 policies announced to clients (RFC 2449); timeouts and limits are in [limits].",
    },
    SectionDoc {
        name: "dns",
        comment: "DNS resolution for outbound delivery and mail authentication.",
    },
    SectionDoc {
        name: "classifier",
        comment: "The content classifier's models (train with `facteur spam train`).",
    },
    SectionDoc {
        name: "sieve",
        comment: "Sieve filtering at delivery (scripts: `facteur sieve`).",
    },
    SectionDoc {
        name: "log",
        comment: "Logging.",
    },
];

const fn key(section: &'static str, key: &'static str, comment: &'static str) -> KeyDoc {
    KeyDoc {
        section,
        key,
        comment,
    }
}

pub(crate) const KEYS: &[KeyDoc] = &[
    key(
        "server",
        "hostname",
        "Host name announced in greetings and EHLO, and the self-signed certificate's name.",
    ),
    key(
        "server",
        "primary_domain",
        "Mail domain of the postmaster and of the first accounts.",
    ),
    key(
        "server",
        "user",
        "When started as root: the user to switch to once the ports are bound (\"root\" stays root: unsafe).",
    ),
    key(
        "listeners",
        "smtp",
        "Inbound SMTP from other servers (RFC 5321).",
    ),
    key(
        "listeners",
        "submission",
        "Message submission with STARTTLS and AUTH (RFC 6409).",
    ),
    key(
        "listeners",
        "submissions",
        "Message submission over implicit TLS (RFC 8314).",
    ),
    key("listeners", "imap", "IMAP with STARTTLS (RFC 9051)."),
    key("listeners", "imaps", "IMAP over implicit TLS (RFC 8314)."),
    key("listeners", "pop3", "POP3 with STLS (RFC 1939, RFC 2595)."),
    key("listeners", "pop3s", "POP3 over implicit TLS (RFC 8314)."),
    key(
        "listeners",
        "lmtp",
        "LMTP from a local MTA (RFC 2033); no standard port, off by default.",
    ),
    key("tls", "cert", "PEM certificate chain, leaf first."),
    key("tls", "key", "PEM private key (PKCS#8, PKCS#1 or SEC1)."),
    key(
        "tls",
        "min_version",
        "Lowest TLS version accepted: \"1.2\" or \"1.3\".",
    ),
    key(
        "store",
        "backend",
        "Storage backend: \"sqlite\" (\"postgres\" is not available yet).",
    ),
    key("store", "sqlite_path", "SQLite database file."),
    key(
        "store",
        "blobs_dir",
        "Folder of message files larger than inline_blob_max.",
    ),
    key(
        "store",
        "inline_blob_max",
        "Messages up to this many bytes are kept inside the database, sharing its group commit's fsync.",
    ),
    key(
        "store",
        "max_batch",
        "Most deliveries committed together in one transaction and one fsync.",
    ),
    key(
        "limits",
        "max_message_size",
        "Largest message accepted, in bytes (advertised as SIZE, RFC 1870).",
    ),
    key("limits", "max_recipients", "Most recipients per message."),
    key(
        "limits",
        "smtp_line_length",
        "Longest SMTP command line, in bytes with CRLF (at least 512).",
    ),
    key(
        "limits",
        "text_line_length",
        "Longest line of message text, in bytes with CRLF (at least 1000).",
    ),
    key(
        "limits",
        "imap_line_length",
        "Longest IMAP command line, literals excluded, in bytes (at least 8192).",
    ),
    key(
        "limits",
        "imap_search_keys",
        "Most search keys in one IMAP SEARCH, SORT or THREAD (each criterion, OR and NOT count).",
    ),
    key(
        "limits",
        "max_connections",
        "Most simultaneous connections to each service: smtp (port 25), submission (587 and 465), lmtp, imap (143 and 993) and pop3 (110 and 995) each have a budget of this size, so a flood of one cannot take the slots of another.",
    ),
    key(
        "limits",
        "max_connections_per_ip",
        "Most simultaneous connections to one service from one client: an IPv4 address, or an IPv6 /64.",
    ),
    key(
        "limits",
        "max_connections_per_user",
        "Most logged-in IMAP sessions of one user at once, from all addresses.",
    ),
    key("limits", "mime_max_depth", "Deepest MIME nesting parsed."),
    key(
        "limits",
        "mime_max_parts",
        "Most MIME parts parsed per message.",
    ),
    key(
        "limits",
        "idle_timeout_secs",
        "Seconds an idle IMAP or POP3 session is kept (IMAP requires at least 1800).",
    ),
    key(
        "limits",
        "command_timeout_secs",
        "Seconds to wait for the next SMTP command or data.",
    ),
    key(
        "limits",
        "max_bad_commands",
        "Invalid commands tolerated before the connection is closed.",
    ),
    key(
        "auth",
        "max_failures_per_ip",
        "Failed logins from one IP (or IPv6 /64) within window_secs before it is banned from every account.",
    ),
    key(
        "auth",
        "max_failures_per_account",
        "Failed logins on one account from addresses that never logged in to it, within window_secs, before such addresses are refused for it.",
    ),
    key(
        "auth",
        "base_delay_ms",
        "Delay after the first failed login of an address on an account, doubled at each further failure.",
    ),
    key(
        "auth",
        "max_delay_ms",
        "Longest delay after a failed login.",
    ),
    key(
        "auth",
        "window_secs",
        "Seconds over which failures are counted.",
    ),
    key(
        "auth",
        "ban_secs",
        "Seconds a ban lasts (of an address, or of an account for new addresses).",
    ),
    key(
        "auth",
        "argon2_memory_kib",
        "Argon2id memory per password hash, in KiB.",
    ),
    key("auth", "argon2_iterations", "Argon2id passes over memory."),
    key("auth", "argon2_parallelism", "Argon2id lanes."),
    key(
        "auth",
        "min_password_score",
        "Lowest zxcvbn strength (0 to 4) of a new password; 3 refuses common words, names and keyboard walks; 0 checks only the length.",
    ),
    key(
        "smtp",
        "bare_newline",
        "\"reject\" refuses a bare CR or LF in commands and data (no SMTP smuggling); \"normalize\" reads a bare LF as CRLF.",
    ),
    key(
        "smtp",
        "greeting_delay_ms",
        "Wait before the greeting; a client that talks first is dropped (0: no wait).",
    ),
    key(
        "smtp",
        "data_timeout_secs",
        "Longest wait for more message data.",
    ),
    key(
        "smtp",
        "min_data_rate",
        "Bytes per second below which a message transfer is abandoned.",
    ),
    key(
        "smtp",
        "inbound_auth",
        "Check SPF, DKIM, DMARC and ARC of mail received on port 25, add Authentication-Results, apply DMARC policies.",
    ),
    key(
        "smtp",
        "spool_threshold",
        "Bytes past which a message being received is written to a spool file in the blob temp folder.",
    ),
    key(
        "smtp",
        "data_memory",
        "Bytes of message data all transfers together may hold in memory; past it, data goes to spool files.",
    ),
    key(
        "smtp",
        "processing_memory",
        "Bytes of messages being analysed, checked and stored at once; further messages wait their turn.",
    ),
    key(
        "queue",
        "remote_port",
        "TCP port of recipient MX hosts (25; other values are for tests).",
    ),
    key("queue", "concurrency", "Delivery connections open at once."),
    key(
        "queue",
        "per_domain",
        "Delivery connections open at once to one destination domain.",
    ),
    key(
        "queue",
        "retry_initial_secs",
        "First retry delay, doubled after each failed attempt.",
    ),
    key(
        "queue",
        "retry_max_secs",
        "Longest delay between two attempts.",
    ),
    key(
        "queue",
        "max_age_secs",
        "Give up and return the message to its sender after this long.",
    ),
    key(
        "queue",
        "delay_warning_secs",
        "Send the sender one \"delayed\" notice after this long (0: never).",
    ),
    key(
        "queue",
        "tls",
        "\"opportunistic\": STARTTLS when offered; \"required\": STARTTLS with a valid certificate or no delivery.",
    ),
    key(
        "queue",
        "relay_host",
        "Smarthost for all outbound mail (\"\": deliver to MX hosts directly).",
    ),
    key("queue", "relay_port", "Smarthost port."),
    key(
        "queue",
        "relay_security",
        "\"starttls\" (port 587) or \"tls\" (implicit TLS, port 465).",
    ),
    key(
        "queue",
        "relay_verify_certificate",
        "Check the smarthost's certificate against the public roots.",
    ),
    key(
        "queue",
        "relay_username",
        "Login at the smarthost (AUTH PLAIN, only over TLS); \"\": none.",
    ),
    key("queue", "relay_password", "Password at the smarthost."),
    key(
        "queue",
        "mta_sts",
        "Honour recipient domains' MTA-STS policies (RFC 8461): enforce means verified TLS to listed MX hosts only.",
    ),
    key(
        "queue",
        "mta_sts_port",
        "HTTPS port of MTA-STS policy hosts (443; other values are for tests).",
    ),
    key(
        "queue",
        "dane",
        "Honour DANE TLSA records (RFC 7672) of MX hosts whose records DNSSEC validates: verified TLS matching the records, or the mail waits.",
    ),
    key(
        "queue",
        "ca_file",
        "PEM file of extra certificate authorities trusted for verified outbound TLS (\"\": public roots only).",
    ),
    key(
        "pop3",
        "expire",
        "EXPIRE: \"never\", or the minimum days a retrieved message stays (0: retrieved messages are removed at QUIT).",
    ),
    key(
        "pop3",
        "login_delay_secs",
        "LOGIN-DELAY: shortest time between two logins to one account (0: no limit).",
    ),
    key(
        "dns",
        "nameservers",
        "Resolvers as \"IP:PORT\"; [] uses the system's (/etc/resolv.conf).",
    ),
    key(
        "classifier",
        "min_learned",
        "Messages of each class (ham, spam) the global model must learn before it gives verdicts.",
    ),
    key(
        "classifier",
        "min_account_learned",
        "Messages of each class an account's own model must learn before it is blended in.",
    ),
    key(
        "classifier",
        "account_weight_percent",
        "Weight of a ready account model against the global one (0-100).",
    ),
    key(
        "classifier",
        "max_features",
        "Unique features (tokens) read from one message; more costs more store reads.",
    ),
    key(
        "sieve",
        "enabled",
        "Run the domains' and accounts' active scripts at delivery.",
    ),
    key("sieve", "max_script_size", "Bytes of one script."),
    key(
        "sieve",
        "max_scripts",
        "Scripts one account or domain may keep.",
    ),
    key(
        "sieve",
        "max_instructions",
        "Instructions one run may execute (the CPU limit).",
    ),
    key(
        "sieve",
        "max_redirects",
        "Redirect actions one run may take.",
    ),
    key(
        "sieve",
        "redirects_per_day",
        "Redirects one account's scripts may send per day (UTC).",
    ),
    key(
        "log",
        "format",
        "\"text\" for people, \"json\" for log collectors.",
    ),
    key(
        "log",
        "level",
        "Filter such as \"info\" or \"info,smtp=debug\" (tracing EnvFilter syntax).",
    ),
    key(
        "log",
        "file",
        "Append log lines to this file (mode 0600, reopened on SIGHUP) instead of stderr; \"\": stderr.",
    ),
];

/// `config` as a TOML file with a comment before every section and key.
pub(super) fn render_default_toml(config: &Config) -> String {
    // Infallible for this type: plain strings, integers and arrays of strings.
    let table = toml::Table::try_from(config).expect("Config serializes to a TOML table");
    let mut out = String::from(
        "# facteur.toml: Facteur's configuration. Reference: docs/config.md\n\
         # Every key is listed with its default. Unknown keys are refused.\n\
         # Relative paths are relative to the data folder.\n",
    );
    for section in SECTIONS {
        out.push_str(&format!("\n# {}\n[{}]\n", section.comment, section.name));
        let Some(values) = table.get(section.name).and_then(|v| v.as_table()) else {
            continue;
        };
        for doc in KEYS.iter().filter(|k| k.section == section.name) {
            if let Some(value) = values.get(doc.key) {
                out.push_str(&format!("# {}\n{} = {value}\n", doc.comment, doc.key));
            }
        }
    }
    out
}
