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
        name: "connection",
        comment: "Checks of clients on the SMTP (MX) port before their message: reverse DNS, HELO, rate limits.",
    },
    SectionDoc {
        name: "dnsbl",
        comment: "DNS blocklists and allowlists (none by default). Each zone: { zone = \"list.example\", type = \"ip\"|\"domain\", action = \"score\"|\"reject\"|\"allow\", score = 1.0, codes = [\"127.0.0.2\"] }.",
    },
    SectionDoc {
        name: "greylist",
        comment: "Greylisting of unknown (client network, sender, recipient) triplets on the SMTP port (RFC 6647).",
    },
    SectionDoc {
        name: "attachments",
        comment: "Dangerous attachments (also inside zip archives): \"reject\", \"quarantine\", \"junk\" or \"tag\" per kind; per recipient domain in [attachments.domains.\"DOMAIN\"].",
    },
    SectionDoc {
        name: "antivirus",
        comment: "ClamAV: every message is streamed to clamd (INSTREAM) when `clamd` is set.",
    },
    SectionDoc {
        name: "phishing",
        comment: "Phishing heuristics on mail from outside: scores and reasons for the verdict.",
    },
    SectionDoc {
        name: "verdict",
        comment: "What the inbound checks' total score does to mail received on port 25 (thresholds are points; \"off\" turns an action off).",
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
        "max_junk_commands",
        "NOOP, RSET, VRFY, EXPN and HELP allowed between accepted messages; each further one counts as a bad command.",
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
        "connection",
        "trusted_networks",
        "Networks (\"192.0.2.0/24\", \"2001:db8::/32\") whose clients skip every connection check and greylisting.",
    ),
    key(
        "connection",
        "dns_budget_ms",
        "Time for the DNS lookups of one check stage together; a lookup out of time gives no verdict.",
    ),
    key(
        "connection",
        "fcrdns_score",
        "Score of a client whose reverse DNS name does not resolve back to it (0: not looked up).",
    ),
    key(
        "connection",
        "helo_forged",
        "A HELO naming an address other than the client's, or our own name: \"reject\", \"score\" or \"off\".",
    ),
    key(
        "connection",
        "helo_forged_score",
        "Score of a forged HELO when helo_forged = \"score\".",
    ),
    key(
        "connection",
        "helo_not_fqdn",
        "A HELO that is neither a full domain name nor an address literal: \"reject\", \"score\" or \"off\".",
    ),
    key(
        "connection",
        "helo_not_fqdn_score",
        "Score of such a HELO when helo_not_fqdn = \"score\".",
    ),
    key(
        "connection",
        "rate_window_secs",
        "Window of the per-client rate limits.",
    ),
    key(
        "connection",
        "rate_messages",
        "Messages (MAIL commands) per client address (IPv6: /64) and window; 0: no limit.",
    ),
    key(
        "connection",
        "rate_recipients",
        "Recipients per client address (IPv6: /64) and window; 0: no limit.",
    ),
    key("dnsbl", "zones", "DNS lists to query; [] queries none."),
    key("dnsbl", "cache_entries", "Answers cached at most."),
    key(
        "dnsbl",
        "cache_max_ttl_secs",
        "Longest time an answer is cached (its own TTL if shorter).",
    ),
    key(
        "dnsbl",
        "cache_negative_ttl_secs",
        "How long a \"not listed\" answer is cached.",
    ),
    key(
        "greylist",
        "enabled",
        "Greylist unknown triplets: the first attempt gets 451 4.7.1.",
    ),
    key(
        "greylist",
        "delay_secs",
        "A retry is accepted this long after the first attempt.",
    ),
    key(
        "greylist",
        "retry_window_secs",
        "An attempt never retried is forgotten after this long.",
    ),
    key(
        "greylist",
        "pass_ttl_days",
        "A triplet that passed is remembered this many days after it was last used.",
    ),
    key(
        "greylist",
        "whitelist_after",
        "Passed retries after which the client network is no longer greylisted (0: never).",
    ),
    key(
        "greylist",
        "whitelist_days",
        "A whitelisted network stays so this many days after it was last seen.",
    ),
    key(
        "greylist",
        "allow_networks",
        "Networks never greylisted (besides connection.trusted_networks and DNSWL-listed clients).",
    ),
    key(
        "greylist",
        "ipv4_prefix",
        "IPv4 prefix length of a client network.",
    ),
    key(
        "greylist",
        "ipv6_prefix",
        "IPv6 prefix length of a client network.",
    ),
    key(
        "attachments",
        "inspect",
        "Inspect attachments of mail from outside (port 25, LMTP).",
    ),
    key(
        "attachments",
        "executable",
        "Programs (PE, ELF, Mach-O by content; .exe, .scr, .msi, .jar, ... by name).",
    ),
    key(
        "attachments",
        "script",
        "Scripts and shortcuts Windows runs (.js, .vbs, .ps1, .bat, .hta, .lnk, ...).",
    ),
    key(
        "attachments",
        "disk_image",
        "Disk images (ISO, IMG, VHD, VHDX, DMG).",
    ),
    key(
        "attachments",
        "macros",
        "Office documents with VBA macros (OLE or OOXML with vbaProject.bin, .docm, .xlsm, ...).",
    ),
    key(
        "attachments",
        "disguised",
        "Names made to mislead: double extensions (invoice.pdf.exe), bidirectional control characters, code under a document's name.",
    ),
    key(
        "attachments",
        "credential_form",
        "HTML or SVG attachments with a password field.",
    ),
    key(
        "attachments",
        "unscannable",
        "What could not be inspected: encrypted or damaged archives, anything past the limits below (zip bombs).",
    ),
    key(
        "attachments",
        "max_attachments",
        "Attachments inspected per message; more are unscannable.",
    ),
    key(
        "attachments",
        "max_file_size",
        "Decoded bytes inspected per attachment or archive entry.",
    ),
    key(
        "attachments",
        "max_archive_depth",
        "Archives inside archives looked into (0: archives are unscannable).",
    ),
    key(
        "attachments",
        "max_archive_entries",
        "Entries inspected per archive; more make it unscannable.",
    ),
    key(
        "attachments",
        "max_archive_size",
        "Bytes decompressed from archives per message, all entries and levels together.",
    ),
    key(
        "attachments",
        "max_archive_ratio",
        "Largest decompressed-to-compressed ratio of an archive entry (beyond: a zip bomb).",
    ),
    key(
        "attachments",
        "domains",
        "Per recipient domain, the actions that differ, e.g. { \"lab.example\" = { executable = \"tag\" } }.",
    ),
    key(
        "antivirus",
        "clamd",
        "clamd's socket: an absolute path (LocalSocket) or \"HOST:PORT\" (TCPSocket); \"\": no antivirus.",
    ),
    key(
        "antivirus",
        "timeout_secs",
        "Time budget for one message: connect, send, answer.",
    ),
    key(
        "antivirus",
        "fail_open",
        "When clamd cannot answer: true delivers unscanned (logged), false answers 451 4.7.1 so the sender retries.",
    ),
    key(
        "antivirus",
        "max_size",
        "Messages larger than this are delivered unscanned (clamd's StreamMaxLength, 25M by default).",
    ),
    key(
        "phishing",
        "heuristics",
        "Score deceptive links, look-alike domains, impersonated staff names and password forms.",
    ),
    key(
        "phishing",
        "protected_names",
        "Display names that mail from outside may not use, besides the accounts' own (e.g. [\"Managing Director\"]).",
    ),
    key(
        "verdict",
        "enabled",
        "Run the classifier, the allow and block lists and the verdict on port 25, with X-Spam-* header fields.",
    ),
    key(
        "verdict",
        "junk",
        "Score from which a message goes to the Junk folder.",
    ),
    key(
        "verdict",
        "quarantine",
        "Score from which a message is held in quarantine (facteur quarantine list).",
    ),
    key(
        "verdict",
        "reject",
        "Score from which a message is refused at the end of data with 550 5.7.1.",
    ),
    key(
        "verdict",
        "allow_score",
        "Points an allow list match adds; the score then never junks, quarantines or refuses.",
    ),
    key(
        "verdict",
        "block_action",
        "What a block list match does: \"reject\", \"junk\" or \"quarantine\".",
    ),
    key(
        "verdict",
        "quarantine_days",
        "Days a quarantined message is kept before it is deleted.",
    ),
    key(
        "verdict",
        "domains",
        "Per recipient domain: [verdict.domains.\"example.com\"] with junk/quarantine/reject.",
    ),
    key(
        "verdict",
        "accounts",
        "Per account: [verdict.accounts.\"user@example.com\"] with junk/quarantine/reject.",
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
