use super::keys::{KEYS, SECTIONS};
use super::*;

const DOCS: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/config.md"));

fn err(text: &str) -> String {
    parse(text, "facteur.toml").unwrap_err().to_string()
}

#[test]
fn empty_file_is_the_default() {
    assert_eq!(parse("", "facteur.toml").unwrap(), Config::default());
    let config = Config::default();
    assert_eq!(config.listeners.smtp, vec!["[::]:2525".to_owned()]);
    assert_eq!(config.listeners.pop3s, vec!["[::]:2995".to_owned()]);
    assert_eq!(config.server.user, "facteur");
    assert!(config.listeners.lmtp.is_empty());
    assert_eq!(config.store.inline_blob_max, 65536);
    assert_eq!(config.limits.max_message_size, 52_428_800);
    assert_eq!(config.auth.argon2_memory_kib, 19456);
    assert!(is_valid_hostname(&config.server.hostname));
}

#[test]
fn standard_and_unprivileged_ports() {
    let standard = ListenersConfig::with_ports(true);
    let ports: Vec<_> = standard
        .services()
        .iter()
        .flat_map(|(_, l)| l.iter().cloned())
        .collect();
    assert_eq!(
        ports,
        [25, 587, 465, 143, 993, 110, 995].map(|p| format!("[::]:{p}"))
    );
    // Unprivileged unless both asked for and able to bind ports below 1024.
    assert_eq!(
        Config::default_for(false).listeners,
        ListenersConfig::with_ports(false)
    );
    let able = crate::privileges::can_bind_privileged_ports();
    assert_eq!(
        Config::default_for(true).listeners,
        ListenersConfig::with_ports(able)
    );
    if unsafe { libc::geteuid() } == 0 {
        assert!(able, "root can bind ports below 1024");
    }
}

#[test]
fn privileged_defaults_fill_only_missing_listeners() {
    let config = parse_for("[listeners]\nimap = [\"127.0.0.1:1143\"]\n", "t", true).unwrap();
    let expected = ListenersConfig::default_for(true);
    assert_eq!(config.listeners.imap, vec!["127.0.0.1:1143".to_owned()]);
    assert_eq!(config.listeners.smtp, expected.smtp);
}

#[test]
fn default_toml_round_trips() {
    for privileged in [false, true] {
        let text = default_toml(privileged);
        let parsed = parse_for(&text, "default", privileged).unwrap();
        assert_eq!(parsed, Config::default_for(privileged), "{text}");
        // Parsing without the flag still gives what the file says.
        assert_eq!(
            parse(&text, "default").unwrap(),
            Config::default_for(privileged)
        );
        // Every key is written, each after a comment.
        // (Several sections have a key of the same name, e.g. `enabled`: look in its section.)
        for doc in KEYS {
            let header = format!("\n[{}]\n", doc.section);
            let section = text
                .find(&header)
                .unwrap_or_else(|| panic!("[{}] missing", doc.section));
            let line = format!("\n{} = ", doc.key);
            let at = section
                + text[section..]
                    .find(&line)
                    .unwrap_or_else(|| panic!("{}.{} missing", doc.section, doc.key));
            assert!(
                text[..at].ends_with(&format!("# {}", doc.comment)),
                "{}.{}",
                doc.section,
                doc.key
            );
        }
    }
}

/// `section.key` for every key of the serialized default configuration.
fn serialized_keys() -> Vec<String> {
    let table = toml::Table::try_from(Config::default()).unwrap();
    let mut keys = Vec::new();
    for (section, values) in &table {
        for key in values.as_table().unwrap().keys() {
            keys.push(format!("{section}.{key}"));
        }
    }
    keys.sort();
    keys
}

#[test]
fn key_docs_cover_exactly_the_serialized_keys() {
    let mut documented: Vec<String> = KEYS
        .iter()
        .map(|k| format!("{}.{}", k.section, k.key))
        .collect();
    documented.sort();
    assert_eq!(documented, serialized_keys());
    let table = toml::Table::try_from(Config::default()).unwrap();
    let mut sections: Vec<_> = SECTIONS.iter().map(|s| s.name).collect();
    sections.sort();
    let mut serialized: Vec<_> = table.keys().map(String::as_str).collect();
    serialized.sort();
    assert_eq!(sections, serialized);
}

#[test]
fn docs_mention_every_key() {
    for key in serialized_keys() {
        assert!(
            DOCS.contains(&format!("`{key}`")),
            "docs/config.md does not document `{key}`"
        );
    }
    assert!(DOCS.contains("nknown keys are refused"));
}

#[test]
fn unknown_key_names_key_section_and_line() {
    let text = "[server]\nhostname = \"mx.example.org\"\n\n[limits]\nmax_recipients = 5\nmax_conections = 10\n";
    assert_eq!(
        err(text),
        "facteur.toml:6: unknown key `max_conections` in [limits]; did you mean `max_connections`?"
    );
    // Nothing close: the keys of the section are listed.
    let e = err("[limits]\nzzz = 1\n");
    assert!(
        e.starts_with("facteur.toml:2: unknown key `zzz` in [limits] (expected one of max_message_size, max_recipients,"),
        "{e}"
    );
    // A known key in the wrong section says where it belongs.
    assert_eq!(
        err("[smtp]\nrelay_port = 587\n"),
        "facteur.toml:2: unknown key `relay_port` in [smtp]; it belongs in [queue]"
    );
    assert_eq!(
        err("[queue]\nrelay_prot = 587\n"),
        "facteur.toml:2: unknown key `relay_prot` in [queue]; did you mean `relay_port`?"
    );
}

#[test]
fn unknown_section_and_top_level_key() {
    assert_eq!(
        err("\n[limit]\nmax_recipients = 5\n"),
        "facteur.toml:2: unknown section [limit]; did you mean [limits]?"
    );
    assert_eq!(
        err("\n[zzz]\na = 5\n"),
        "facteur.toml:2: unknown section [zzz] (expected one of the sections server, listeners, tls, store, limits, auth, smtp, queue, pop3, dns, classifier, connection, dnsbl, greylist, attachments, antivirus, phishing, verdict, sieve, log)"
    );
    assert_eq!(
        err("hostname = \"x\"\n"),
        "facteur.toml:1: unknown top-level key `hostname`; `hostname` belongs in the section [server]"
    );
}

#[test]
fn unknown_key_with_dotted_and_inline_syntax() {
    let e = err("limits.max_conections = 10\n");
    assert!(
        e.starts_with("facteur.toml:1: unknown key `max_conections` in [limits]"),
        "{e}"
    );
    let e = err("\n\nauth = { ban_sec = 1 }\n");
    assert!(
        e.starts_with("facteur.toml:3: unknown key `ban_sec` in [auth]; did you mean `ban_secs`?"),
        "{e}"
    );
}

#[test]
fn every_error_of_a_file_is_reported() {
    let text = "[limits]\nmax_conections = 10\nmax_recipients = \"many\"\n\
                [queue]\nrelay_prot = 587\nrelay_port = 70000\nmta_sts = \"yes\"\n\
                [smtp]\ndata_timeout_secs = -5\n";
    let e = parse(text, "facteur.toml").unwrap_err();
    let lines: Vec<String> = e.errors().iter().map(|e| e.to_string()).collect();
    assert_eq!(
        lines,
        [
            "facteur.toml:2: unknown key `max_conections` in [limits]; did you mean `max_connections`?",
            "facteur.toml:3: wrong type for limits.max_recipients: expected a non-negative integer, found string \"many\"",
            "facteur.toml:5: unknown key `relay_prot` in [queue]; did you mean `relay_port`?",
            "facteur.toml:6: invalid value for queue.relay_port: expected a port number from 1 to 65535, found integer `70000`",
            "facteur.toml:7: wrong type for queue.mta_sts: expected true or false (without quotes), found string \"yes\"",
            "facteur.toml:9: invalid value for smtp.data_timeout_secs: expected a duration in seconds (a whole number, 0 or more), found integer `-5`",
        ]
    );
    assert_eq!(e.line(), Some(2));
    let shown = e.to_string();
    assert!(shown.starts_with("6 errors:\nfacteur.toml:2: "), "{shown}");
    assert_eq!(shown.lines().count(), 7);

    // Values that parse but fail the checks are all reported too.
    let e = parse(
        "[store]\nmax_batch = 0\n[limits]\nsmtp_line_length = 100\n[auth]\nmin_password_score = 5\n",
        "facteur.toml",
    )
    .unwrap_err();
    let lines: Vec<String> = e.errors().iter().map(|e| e.to_string()).collect();
    assert_eq!(
        lines,
        [
            "facteur.toml:2: invalid value for store.max_batch: 0 is below the minimum of 1",
            "facteur.toml:4: invalid value for limits.smtp_line_length: 100 is below the minimum of 512",
            "facteur.toml:6: invalid value for auth.min_password_score: 5 is above 4, the strongest score",
        ]
    );
}

#[test]
fn sizes_take_units_or_bytes() {
    let c = parse(
        "[limits]\nmax_message_size = \"50M\"\nimap_line_length = \"64K\"\n[store]\ninline_blob_max = 1024\n",
        "t",
    )
    .unwrap();
    assert_eq!(c.limits.max_message_size, 50 << 20);
    assert_eq!(c.limits.imap_line_length, 64 << 10);
    assert_eq!(c.store.inline_blob_max, 1024);
    assert_eq!(
        parse("[limits]\nmax_message_size = \"2G\"\n", "t")
            .unwrap()
            .limits
            .max_message_size,
        2 << 30
    );
    assert_eq!(
        err("[limits]\nmax_message_size = \"50Q\"\n"),
        "facteur.toml:2: invalid value for limits.max_message_size: expected a size: a number of bytes, or a string such as \"50M\", \"2G\" or \"512K\", found string \"50Q\""
    );
    assert!(
        err("[limits]\nmax_message_size = -1\n").starts_with(
            "facteur.toml:2: invalid value for limits.max_message_size: expected a size"
        ),
        "{}",
        err("[limits]\nmax_message_size = -1\n")
    );
    // Checks apply to the size in bytes.
    assert_eq!(
        err("[limits]\nsmtp_line_length = \"0K\"\n"),
        "facteur.toml:2: invalid value for limits.smtp_line_length: 0 is below the minimum of 512"
    );
}

#[test]
fn wrong_type() {
    assert_eq!(
        err("[limits]\n\nmax_recipients = \"many\"\n"),
        "facteur.toml:3: wrong type for limits.max_recipients: expected a non-negative integer, found string \"many\""
    );
    let e = err("[listeners]\nsmtp = \"0.0.0.0:25\"\n");
    assert_eq!(
        e,
        "facteur.toml:2: wrong type for listeners.smtp: expected an array, found string \"0.0.0.0:25\""
    );
    let e = err("[listeners]\nsmtp = [\n  \"0.0.0.0:25\",\n  25,\n]\n");
    assert!(
        e.starts_with("facteur.toml:4: wrong type for listeners.smtp: expected a string"),
        "{e}"
    );
    let e = err("limits = 5\n");
    assert!(
        e.starts_with("facteur.toml:1: wrong type for limits: expected a table"),
        "{e}"
    );
    assert_eq!(
        err("[limits]\nmax_recipients = -1\n"),
        "facteur.toml:2: invalid value for limits.max_recipients: expected a non-negative integer, found integer `-1`"
    );
    assert_eq!(
        err("[auth]\nargon2_iterations = 5000000000\n"),
        "facteur.toml:2: invalid value for auth.argon2_iterations: expected an integer from 0 to 4294967295, found integer `5000000000`"
    );
}

#[test]
fn bad_values() {
    assert_eq!(
        err("[store]\nbackend = \"mysql\"\n"),
        "facteur.toml:2: invalid value for store.backend: \"mysql\" is not accepted, expected \"sqlite\" or \"postgres\""
    );
    assert_eq!(
        err("[store]\nbackend = \"postgres\"\n"),
        "facteur.toml:2: invalid value for store.backend: \"postgres\" is not available yet (only \"sqlite\" is)"
    );
    assert_eq!(
        err("[tls]\nmin_version = \"1.0\"\n"),
        "facteur.toml:2: invalid value for tls.min_version: \"1.0\" is not accepted, expected \"1.2\" or \"1.3\""
    );
    assert_eq!(
        err("[listeners]\nimap = [\n  \"[::]:143\",\n  \"localhost:143\",\n]\n"),
        "facteur.toml:4: invalid value for listeners.imap: \"localhost:143\" is not a socket address (expected IP:PORT, e.g. \"0.0.0.0:25\" or \"[::]:25\")"
    );
    assert_eq!(
        err("[store]\nmax_batch = 0\n"),
        "facteur.toml:2: invalid value for store.max_batch: 0 is below the minimum of 1"
    );
    assert_eq!(
        err("[limits]\nsmtp_line_length = 100\n"),
        "facteur.toml:2: invalid value for limits.smtp_line_length: 100 is below the minimum of 512"
    );
    let e = err("[log]\nformat = \"xml\"\n");
    assert!(
        e.starts_with("facteur.toml:2: invalid value for log.format:"),
        "{e}"
    );
    let e = err("[log]\nlevel = \"debgu\"\n");
    assert!(
        e.starts_with("facteur.toml:2: invalid value for log.level: \"debgu\" is not a level"),
        "{e}"
    );
    assert!(parse("[log]\nlevel = \"info,smtp=debug\"\n", "t").is_ok());
    let e = err("[server]\nhostname = \"mx example\"\n");
    assert!(
        e.starts_with("facteur.toml:2: invalid value for server.hostname:"),
        "{e}"
    );
}

#[test]
fn cross_key_errors_point_at_a_key_in_the_file() {
    // The per-IP limit keeps its default (50); the line is the one that was set.
    assert_eq!(
        err("[limits]\nmax_recipients = 10\nmax_connections = 10\n"),
        "facteur.toml:3: invalid value for limits.max_connections_per_ip: 50 is above limits.max_connections (10)"
    );
    let e = err("[listeners]\nsmtp = [\"0.0.0.0:2525\"]\nsubmission = [\"0.0.0.0:2525\"]\n");
    assert_eq!(
        e,
        "facteur.toml:3: invalid value for listeners.submission: 0.0.0.0:2525 is already used by listeners.smtp"
    );
    let e = err("[auth]\nbase_delay_ms = 9000\n");
    assert!(e.starts_with("facteur.toml:2: invalid value for auth.base_delay_ms: 9000 is above auth.max_delay_ms (8000)"), "{e}");
}

#[test]
fn syntax_error_names_line_and_column() {
    let e = err("[limits]\nmax_recipients = 10\nmax_connections = = 5\n");
    assert!(
        e.starts_with("facteur.toml:3: TOML syntax error at column "),
        "{e}"
    );
    let e = err("[limits\n");
    assert!(e.starts_with("facteur.toml:1: TOML syntax error"), "{e}");
    let e = err("[limits]\nmax_recipients = 1\nmax_recipients = 2\n");
    assert!(e.starts_with("facteur.toml:3: TOML syntax error"), "{e}");
    assert!(!e.contains('\n'), "one line: {e}");
}

#[test]
fn missing_and_unreadable_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("facteur.toml");
    let e = load(&path).unwrap_err();
    assert!(matches!(e, ConfigError::NotFound { .. }));
    assert_eq!(
        e.to_string(),
        format!("{}: config file not found", path.display())
    );

    // A directory cannot be read as a file, even by root.
    let e = load(dir.path()).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }), "{e}");
    assert!(
        e.to_string().starts_with(&format!(
            "{}: cannot read config file: ",
            dir.path().display()
        )),
        "{e}"
    );

    std::fs::write(&path, b"[server]\nhostname = \"\xff\"\n").unwrap();
    let e = load(&path).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }), "{e}");

    std::fs::write(&path, "[limits]\nmax_bad_commands = 3\n").unwrap();
    assert_eq!(load(&path).unwrap().limits.max_bad_commands, 3);
    std::fs::write(&path, "[limits]\nmax_bad_commands = 0\n").unwrap();
    let e = load(&path).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}:2: ", path.display())), "{e}");
}

#[test]
fn resolve_relative_and_absolute_paths() {
    let data = Path::new("/var/lib/facteur");
    assert_eq!(
        resolve_path(data, Path::new("tls/cert.pem")),
        PathBuf::from("/var/lib/facteur/tls/cert.pem")
    );
    assert_eq!(
        resolve_path(data, Path::new("/etc/ssl/c.pem")),
        PathBuf::from("/etc/ssl/c.pem")
    );
}

#[test]
fn socket_addrs_of_a_loaded_config() {
    let config = parse(
        "[listeners]\nimaps = [\"0.0.0.0:993\", \"[::]:993\"]\n",
        "t",
    )
    .unwrap();
    let addrs = ListenersConfig::socket_addrs(&config.listeners.imaps);
    assert_eq!(addrs.len(), 2);
    assert!(addrs[1].is_ipv6());
}

#[test]
fn pop3_expire_is_never_or_days() {
    let c = parse("", "t").unwrap();
    assert_eq!(c.pop3.expire, Pop3Expire::Never(NeverWord::Never));
    assert_eq!(c.pop3.login_delay_secs, 0);
    let c = parse("[pop3]\nexpire = 0\nlogin_delay_secs = 900\n", "t").unwrap();
    assert_eq!(c.pop3.expire, Pop3Expire::Days(0));
    assert_eq!(c.pop3.login_delay_secs, 900);
    let c = parse("[pop3]\nexpire = \"never\"\n", "t").unwrap();
    assert_eq!(c.pop3.expire, Pop3Expire::Never(NeverWord::Never));
    let e = err("[pop3]\nexpire = \"sometimes\"\n");
    assert!(e.starts_with("facteur.toml:2:"), "{e}");
    let e = err("[pop3]\nexpire = -1\n");
    assert!(e.starts_with("facteur.toml:2:"), "{e}");
}

#[test]
fn server_user_must_be_a_user_name() {
    assert_eq!(
        parse("[server]\nuser = \"mail\"\n", "t")
            .unwrap()
            .server
            .user,
        "mail"
    );
    assert_eq!(
        parse("[server]\nuser = \"root\"\n", "t")
            .unwrap()
            .server
            .user,
        "root"
    );
    for bad in ["", "a b", "x:y", "-rf", "../etc", "a\\u0000b"] {
        let e = err(&format!("[server]\nuser = \"{bad}\"\n"));
        assert!(
            e.starts_with("facteur.toml:2: invalid value for server.user"),
            "{bad:?}: {e}"
        );
    }
}

#[test]
fn connection_checks_sections() {
    let c = parse(
        "[connection]\ntrusted_networks = [\"10.0.0.0/8\", \"2001:db8::1\"]\nhelo_forged = \"score\"\n\
         [dnsbl]\nzones = [{ zone = \"zen.example.\", action = \"reject\", codes = [\"127.0.0.2\"] },\n\
         { zone = \"wl.example\", type = \"ip\", action = \"allow\", score = -2.5 }]\n\
         [greylist]\nenabled = true\n",
        "t",
    )
    .unwrap();
    let cc = c.conn_checks();
    assert_eq!(cc.trusted.len(), 2);
    assert_eq!(cc.zones[0].zone, "zen.example");
    assert_eq!(cc.zones[1].score, -2.5);
    assert_eq!(cc.helo_forged, smtp::conn::Action::Score(3.0));
    assert!(cc.greylist.is_some());
    assert!(Config::default().conn_checks().greylist.is_none());
    assert!(Config::default().conn_checks().zones.is_empty());

    let e = err("[dnsbl]\nzones = [{ zone = \"bl.example\", codes = [\"10.0.0.2\"] }]\n");
    assert!(
        e.contains("dnsbl.zones") && e.contains("127.0.0.0/8"),
        "{e}"
    );
    let e = err("[connection]\ntrusted_networks = [\"10.0.0.0/33\"]\n");
    assert!(e.contains("connection.trusted_networks"), "{e}");
    let e = err("[greylist]\ndelay_secs = 600\nretry_window_secs = 60\n");
    assert!(e.contains("greylist.retry_window_secs"), "{e}");
    let e = err("[connection]\nfcrdns_score = nan\n");
    assert!(e.contains("connection.fcrdns_score"), "{e}");
}
