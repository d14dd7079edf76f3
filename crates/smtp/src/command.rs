//! SMTP command lines (RFC 5321 §4.1.1, §4.1.2) and their ESMTP parameters, parsed strictly: the
//! session decides what each command means in its state.

use crate::reply::{self, Reply};

/// A mailbox of a path: local part and domain (or address literal), as the client wrote them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub local: String,
    pub domain: String,
    /// `[1.2.3.4]` or `[IPv6:...]`: never one of our domains.
    pub literal: bool,
    /// The local part was a quoted string.
    pub quoted: bool,
}

impl Mailbox {
    pub fn address(&self) -> String {
        format!("{}@{}", self.local, self.domain)
    }
    pub fn is_ascii(&self) -> bool {
        self.local.is_ascii() && self.domain.is_ascii()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Helo(String),
    Ehlo(String),
    Lhlo(String),
    /// `None` is the null reverse-path `<>`.
    Mail {
        from: Option<Mailbox>,
        params: Vec<(String, Option<String>)>,
    },
    /// `Postmaster` without a domain is allowed (RFC 5321 §4.1.1.3): `domain` is then empty.
    Rcpt {
        to: Mailbox,
        params: Vec<(String, Option<String>)>,
    },
    Data,
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
    Vrfy(String),
    Expn(String),
    Help,
    StartTls,
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

fn check_utf8(s: &str, utf8: bool) -> Result<(), Reply> {
    if !utf8 && !s.is_ascii() {
        // RFC 6531 §3.4: UTF-8 addresses need the SMTPUTF8 parameter.
        return Err(Reply::new(
            553,
            "5.6.7",
            "Non-ASCII address requires SMTPUTF8",
        ));
    }
    Ok(())
}

/// Parses `<path>` at the start of `s`; returns the mailbox (None for `<>`) and the rest.
pub fn parse_path(s: &str, utf8: bool) -> Result<(Option<Mailbox>, &str), Reply> {
    let bad = || Reply::new(501, "5.1.7", "Bad address syntax");
    let s = s.strip_prefix('<').ok_or_else(bad)?;
    // Find the closing '>' outside a quoted string.
    let mut in_quote = false;
    let mut escaped = false;
    let mut end = None;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quote => escaped = true,
            '"' => in_quote = !in_quote,
            '>' if !in_quote => {
                end = Some(i);
                break;
            }
            _ => {}
        }
    }
    let end = end.ok_or_else(bad)?;
    let inner = &s[..end];
    let rest = &s[end + 1..];
    if inner.is_empty() {
        return Ok((None, rest));
    }
    // RFC 5321 §4.1.2 and §C: a source route (@a,@b:) must be accepted and ignored.
    let inner = if inner.starts_with('@') {
        let colon = inner.find(':').ok_or_else(bad)?;
        &inner[colon + 1..]
    } else {
        inner
    };
    check_utf8(inner, utf8)?;
    Ok((Some(parse_mailbox(inner).ok_or_else(bad)?), rest))
}

/// `local@domain` with a dot-string or quoted-string local part and a domain or address literal.
pub fn parse_mailbox(s: &str) -> Option<Mailbox> {
    let (local, domain, quoted) = if let Some(after) = s.strip_prefix('"') {
        let mut escaped = false;
        let mut close = None;
        for (i, c) in after.char_indices() {
            if escaped {
                escaped = false;
                continue;
            }
            match c {
                '\\' => escaped = true,
                '"' => {
                    close = Some(i);
                    break;
                }
                c if c.is_control() => return None,
                _ => {}
            }
        }
        let close = close?;
        let rest = after[close + 1..].strip_prefix('@')?;
        (format!("\"{}\"", &after[..close]), rest, true)
    } else {
        let at = s.rfind('@')?;
        let local = &s[..at];
        if local.is_empty()
            || local.starts_with('.')
            || local.ends_with('.')
            || local.contains("..")
        {
            return None;
        }
        if !local.chars().all(|c| is_atext(c) || c == '.') {
            return None;
        }
        (local.to_string(), &s[at + 1..], false)
    };
    if domain.is_empty() {
        return None;
    }
    let literal = domain.starts_with('[');
    if literal {
        if !domain.ends_with(']')
            || domain.len() < 3
            || domain[1..domain.len() - 1].contains(['[', ']', '\\'])
        {
            return None;
        }
    } else {
        for label in domain.split('.') {
            if label.is_empty()
                || label.starts_with('-')
                || label.ends_with('-')
                || !label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || !c.is_ascii())
            {
                return None;
            }
        }
    }
    Some(Mailbox {
        local,
        domain: domain.to_string(),
        literal,
        quoted,
    })
}

/// ESMTP parameters: `KEYWORD[=VALUE]` separated by spaces (RFC 5321 §4.1.2).
fn parse_params(s: &str) -> Result<Vec<(String, Option<String>)>, Reply> {
    let mut out = Vec::new();
    for p in s.split(' ').filter(|p| !p.is_empty()) {
        let (k, v) = match p.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (p, None),
        };
        if k.is_empty()
            || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            || !k.starts_with(|c: char| c.is_ascii_alphanumeric())
        {
            return Err(Reply::new(501, "5.5.4", "Bad parameter syntax"));
        }
        if let Some(v) = v
            && (v.is_empty() || v.chars().any(|c| c.is_control()))
        {
            return Err(Reply::new(501, "5.5.4", "Bad parameter value"));
        }
        out.push((k.to_ascii_uppercase(), v.map(str::to_string)));
    }
    Ok(out)
}

fn has_utf8_param(params_text: &str) -> bool {
    params_text
        .split(' ')
        .any(|p| p.eq_ignore_ascii_case("SMTPUTF8"))
}

/// Parses one command line (without its CRLF). `utf8` allows UTF-8 in addresses (SMTPUTF8 given on
/// MAIL, or for RCPT within such a transaction).
pub fn parse(line: &str, utf8_transaction: bool) -> Result<Command, Reply> {
    let (verb, args) = match line.split_once(' ') {
        Some((v, a)) => (v, a),
        None => (line, ""),
    };
    let no_args = |c: Command| {
        if args.trim().is_empty() {
            Ok(c)
        } else {
            Err(reply::syntax("Syntax error: no parameters allowed"))
        }
    };
    match verb.to_ascii_uppercase().as_str() {
        "HELO" | "EHLO" | "LHLO" => {
            let host = args.trim();
            if host.is_empty() || host.contains(' ') || host.chars().any(|c| c.is_control()) {
                return Err(reply::syntax("Syntax: EHLO hostname"));
            }
            Ok(match verb.to_ascii_uppercase().as_str() {
                "HELO" => Command::Helo(host.into()),
                "EHLO" => Command::Ehlo(host.into()),
                _ => Command::Lhlo(host.into()),
            })
        }
        "MAIL" => {
            let rest = strip_keyword(args, "FROM:")
                .ok_or_else(|| reply::syntax("Syntax: MAIL FROM:<address>"))?;
            let utf8 = has_utf8_param(rest);
            let (from, params) = parse_path(rest.trim_start(), utf8)?;
            Ok(Command::Mail {
                from,
                params: parse_params(params)?,
            })
        }
        "RCPT" => {
            let rest = strip_keyword(args, "TO:")
                .ok_or_else(|| reply::syntax("Syntax: RCPT TO:<address>"))?;
            let rest = rest.trim_start();
            // RFC 5321 §4.1.1.3: "<Postmaster>" without a domain must be accepted.
            if rest
                .get(..12)
                .is_some_and(|p| p.eq_ignore_ascii_case("<postmaster>"))
            {
                let to = Mailbox {
                    local: "postmaster".into(),
                    domain: String::new(),
                    literal: false,
                    quoted: false,
                };
                return Ok(Command::Rcpt {
                    to,
                    params: parse_params(&rest[12..])?,
                });
            }
            let (to, params) = parse_path(rest, utf8_transaction)?;
            let to = to.ok_or_else(|| Reply::new(501, "5.1.3", "Null recipient not allowed"))?;
            Ok(Command::Rcpt {
                to,
                params: parse_params(params)?,
            })
        }
        "DATA" => no_args(Command::Data),
        "BDAT" => {
            let mut it = args.split(' ').filter(|s| !s.is_empty());
            let size = it
                .next()
                .filter(|s| s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| reply::syntax("Syntax: BDAT size [LAST]"))?;
            let last = match it.next() {
                None => false,
                Some(l) if l.eq_ignore_ascii_case("LAST") => true,
                Some(_) => return Err(reply::syntax("Syntax: BDAT size [LAST]")),
            };
            if it.next().is_some() {
                return Err(reply::syntax("Syntax: BDAT size [LAST]"));
            }
            Ok(Command::Bdat { size, last })
        }
        "RSET" => no_args(Command::Rset),
        // RFC 5321 §4.1.1.9: NOOP may carry a string, which is ignored.
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_args(Command::Quit),
        "VRFY" => Ok(Command::Vrfy(args.trim().into())),
        "EXPN" => Ok(Command::Expn(args.trim().into())),
        "HELP" => Ok(Command::Help),
        "STARTTLS" => no_args(Command::StartTls),
        "AUTH" => {
            let mut it = args.split(' ').filter(|s| !s.is_empty());
            let mechanism = it
                .next()
                .ok_or_else(|| reply::syntax("Syntax: AUTH mechanism [initial-response]"))?
                .to_ascii_uppercase();
            let initial = it.next().map(str::to_string);
            if it.next().is_some() {
                return Err(reply::syntax("Syntax: AUTH mechanism [initial-response]"));
            }
            Ok(Command::Auth { mechanism, initial })
        }
        _ => Err(reply::unknown_command()),
    }
}

fn strip_keyword<'a>(args: &'a str, kw: &str) -> Option<&'a str> {
    // `get` rather than indexing: the line is UTF-8 and `kw.len()` may fall inside a character.
    let head = args.get(..kw.len())?;
    head.eq_ignore_ascii_case(kw).then(|| &args[kw.len()..])
}

/// Decodes RFC 3461 xtext (`+XX` hex escapes).
pub fn decode_xtext(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            c if (33..=126).contains(&c) && c != b'=' => {
                out.push(c);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(s: &str) -> Mailbox {
        parse_mailbox(s).unwrap_or_else(|| panic!("{s} should parse"))
    }

    #[test]
    fn paths() {
        let (m, rest) = parse_path("<a@b.example> SIZE=10", false).expect("path");
        assert_eq!(m.map(|m| m.address()), Some("a@b.example".into()));
        assert_eq!(rest, " SIZE=10");
        assert_eq!(parse_path("<>", false).expect("null").0, None);
        let (m, _) =
            parse_path("<@relay.example,@other.example:user@dest.example>", false).expect("route");
        assert_eq!(m.map(|m| m.address()), Some("user@dest.example".into()));
        assert!(parse_path("a@b", false).is_err());
        assert!(parse_path("<a@b", false).is_err());
        assert!(parse_path("<jörg@b.example>", false).is_err());
        assert!(parse_path("<jörg@b.example>", true).is_ok());
        assert_eq!(
            parse_path("<\"a>b\"@x.example>", false)
                .expect("quoted")
                .0
                .map(|m| m.local),
            Some("\"a>b\"".into())
        );
    }

    #[test]
    fn mailboxes() {
        assert!(mb("user@[192.0.2.1]").literal);
        assert!(mb("\"john doe\"@x.example").quoted);
        assert_eq!(mb("a%b@local.example").local, "a%b");
        assert_eq!(mb("b!a@local.example").local, "b!a");
        for bad in [
            "@x", "a@", "a..b@x", ".a@x", "a@-x", "a@x..y", "a b@x", "a@[x",
        ] {
            assert!(parse_mailbox(bad).is_none(), "{bad} accepted");
        }
    }

    #[test]
    fn commands() {
        assert_eq!(
            parse("ehlo client.example", false),
            Ok(Command::Ehlo("client.example".into()))
        );
        assert!(parse("EHLO", false).is_err());
        let Ok(Command::Mail { from, params }) =
            parse("MAIL FROM:<a@b.example> SIZE=100 BODY=8BITMIME", false)
        else {
            panic!("mail")
        };
        assert_eq!(from.map(|m| m.address()), Some("a@b.example".into()));
        assert_eq!(
            params,
            vec![
                ("SIZE".into(), Some("100".into())),
                ("BODY".into(), Some("8BITMIME".into()))
            ]
        );
        assert!(matches!(
            parse("MAIL FROM: <a@b.example>", false),
            Ok(Command::Mail { .. })
        ));
        assert!(matches!(
            parse("mail from:<jörg@b.example> SMTPUTF8", false),
            Ok(Command::Mail { .. })
        ));
        assert!(matches!(
            parse("RCPT TO:<Postmaster>", false),
            Ok(Command::Rcpt { .. })
        ));
        assert_eq!(
            parse("BDAT 100 LAST", false),
            Ok(Command::Bdat {
                size: 100,
                last: true
            })
        );
        assert!(parse("BDAT 99999999999999999999", false).is_err());
        assert!(parse("DATA now", false).is_err());
        // Found by fuzzing: slicing inside a multi-byte character.
        assert!(parse("RCPT TO:<@r.e  leȊ@]d>", false).is_err());
        assert!(parse("MAIL FRȊ:<a@b>", false).is_err());
        assert_eq!(parse("FOO", false).err().map(|r| r.code), Some(500));
        assert_eq!(
            parse("AUTH plain dGVzdA==", false),
            Ok(Command::Auth {
                mechanism: "PLAIN".into(),
                initial: Some("dGVzdA==".into())
            })
        );
    }

    #[test]
    fn xtext() {
        assert_eq!(
            decode_xtext("rfc822;a+2Bb@c").as_deref(),
            Some("rfc822;a+b@c")
        );
        assert_eq!(decode_xtext("bad+4"), None);
    }
}
