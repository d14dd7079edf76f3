//! IMAP ENVELOPE (RFC 9051 §7.5.2, "ENVELOPE"): raw header strings and address lists
//! in IMAP's address-structure form, including RFC 5322 §3.4 group syntax.
//!
//! mail-parser decodes encoded words and flattens groups; IMAP wants neither, so the
//! address-list parser here works on the raw (unfolded) value.

use serde::{Deserialize, Serialize};

use crate::header::{Field, first, raw_value};

/// One IMAP address structure. Group syntax (RFC 9051 §7.5.2): a group start has
/// `mailbox` = group name and `host` = None; a group end has both None. A normal
/// mailbox always has `host` = Some (empty when the address had no domain).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Address {
    pub name: Option<String>,
    pub adl: Option<String>,
    pub mailbox: Option<String>,
    pub host: Option<String>,
}

/// RFC 9051 §7.5.2 ENVELOPE. Strings are raw header values: unfolded, trimmed, encoded
/// words left as they are (clients decode them).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Envelope {
    pub date: Option<String>,
    pub subject: Option<String>,
    pub from: Vec<Address>,
    pub sender: Vec<Address>,
    pub reply_to: Vec<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    pub bcc: Vec<Address>,
    pub in_reply_to: Option<String>,
    pub message_id: Option<String>,
}

pub(crate) fn from_fields(fields: &[Field<'_>]) -> Envelope {
    let addresses = |name: &str| -> Vec<Address> {
        first(fields, name)
            .map(|f| parse_address_list(&f.unfolded()))
            .unwrap_or_default()
    };
    let from = addresses("from");
    let mut sender = addresses("sender");
    let mut reply_to = addresses("reply-to");
    // RFC 9051 §7.5.2: "If the Sender or Reply-To header lines are absent in the
    // [RFC-5322] header, or are present but empty, the server sets the corresponding
    // member of the envelope to be the same value as the from member".
    if sender.is_empty() {
        sender = from.clone();
    }
    if reply_to.is_empty() {
        reply_to = from.clone();
    }
    Envelope {
        date: raw_value(fields, "date"),
        subject: raw_value(fields, "subject"),
        from,
        sender,
        reply_to,
        to: addresses("to"),
        cc: addresses("cc"),
        bcc: addresses("bcc"),
        in_reply_to: raw_value(fields, "in-reply-to"),
        message_id: raw_value(fields, "message-id"),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// Atom or domain literal, as written.
    Atom(String),
    /// Quoted-string content, quotes removed and quoted-pairs resolved.
    Quoted(String),
    Comment(String),
    Special(char),
}

fn tokenize(s: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' | '\n' => {}
            '"' => {
                let mut q = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(n) = chars.next() {
                                q.push(n);
                            }
                        }
                        _ => q.push(c),
                    }
                }
                out.push(Tok::Quoted(q));
            }
            '(' => {
                // RFC 5322 §3.2.2: comments nest.
                let mut depth = 1usize;
                let mut text = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                text.push(n);
                            }
                        }
                        '(' => {
                            depth += 1;
                            text.push(c);
                        }
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                            text.push(c);
                        }
                        _ => text.push(c),
                    }
                }
                out.push(Tok::Comment(text));
            }
            '[' => {
                let mut lit = String::from('[');
                for c in chars.by_ref() {
                    lit.push(c);
                    if c == ']' {
                        break;
                    }
                }
                out.push(Tok::Atom(lit));
            }
            '<' | '>' | '@' | ',' | ';' | ':' | '.' => out.push(Tok::Special(c)),
            _ => {
                let mut atom = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || "\"()<>@,;:.[]".contains(n) {
                        break;
                    }
                    atom.push(n);
                    chars.next();
                }
                out.push(Tok::Atom(atom));
            }
        }
    }
    out
}

/// Display-name phrase: words separated by one space; "." (obs-phrase) sticks to the
/// previous word. Encoded words stay encoded.
fn phrase(words: &[Tok]) -> Option<String> {
    let mut s = String::new();
    for t in words {
        match t {
            Tok::Atom(w) | Tok::Quoted(w) => {
                if !s.is_empty() && !s.ends_with('.') {
                    s.push(' ');
                }
                s.push_str(w);
            }
            Tok::Special('.') => s.push('.'),
            _ => {}
        }
    }
    let s = s.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn quote_local(q: &str) -> String {
    let mut s = String::from('"');
    for c in q.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// Splits addr-spec tokens at the last "@": (mailbox, host).
fn addr_spec(toks: &[Tok]) -> (String, String) {
    let at = toks.iter().rposition(|t| *t == Tok::Special('@'));
    let (local, domain) = match at {
        Some(i) => (&toks[..i], &toks[i + 1..]),
        None => (toks, &[][..]),
    };
    let render = |ts: &[Tok]| -> String {
        let mut s = String::new();
        for t in ts {
            match t {
                Tok::Atom(a) => s.push_str(a),
                Tok::Quoted(q) => s.push_str(&quote_local(q)),
                Tok::Special(c @ ('.' | '@')) => s.push(*c),
                _ => {}
            }
        }
        s
    };
    (render(local), render(domain))
}

fn mailbox(name: Option<String>, adl: Option<String>, spec: &[Tok]) -> Address {
    let (mailbox, host) = addr_spec(spec);
    Address {
        name,
        adl,
        mailbox: Some(mailbox),
        host: Some(host),
    }
}

struct AddrParser {
    toks: Vec<Tok>,
    pos: usize,
}

impl AddrParser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn at(&self, c: char) -> bool {
        self.peek() == Some(&Tok::Special(c))
    }

    /// One address, or a whole group when `in_group` is false.
    fn parse_one(&mut self, in_group: bool, out: &mut Vec<Address>) {
        let start = self.pos;
        while let Some(t) = self.peek() {
            match t {
                Tok::Special(',' | ';' | '<') => break,
                Tok::Special(':') if !in_group => break,
                _ => self.pos += 1,
            }
        }
        let words: Vec<Tok> = self.toks[start..self.pos].to_vec();
        if self.at(':') {
            // RFC 5322 §3.4: group = display-name ":" [group-list] ";"
            self.pos += 1;
            out.push(Address {
                name: None,
                adl: None,
                mailbox: Some(phrase(&words).unwrap_or_default()),
                host: None,
            });
            loop {
                while self.at(',') {
                    self.pos += 1;
                }
                if self.peek().is_none() {
                    break;
                }
                if self.at(';') {
                    self.pos += 1;
                    break;
                }
                let before = self.pos;
                self.parse_one(true, out);
                if self.pos == before {
                    self.pos += 1;
                }
            }
            out.push(Address::default());
        } else if self.at('<') {
            self.pos += 1;
            let inner_start = self.pos;
            while let Some(t) = self.peek() {
                if *t == Tok::Special('>') {
                    break;
                }
                self.pos += 1;
            }
            let mut inner: &[Tok] = &self.toks[inner_start..self.pos];
            if self.at('>') {
                self.pos += 1;
            }
            // RFC 5322 §4.4 obs-route: "@a,@b:" before the addr-spec becomes the adl.
            let mut adl = None;
            if inner.first() == Some(&Tok::Special('@'))
                && let Some(colon) = inner.iter().position(|t| *t == Tok::Special(':'))
            {
                let mut route = String::new();
                for t in &inner[..colon] {
                    match t {
                        Tok::Atom(a) => route.push_str(a),
                        Tok::Special(c) => route.push(*c),
                        _ => {}
                    }
                }
                adl = Some(route);
                inner = &inner[colon + 1..];
            }
            out.push(mailbox(phrase(&words), adl, inner));
            // Anything after the angle address up to the next separator is ignored.
            while let Some(t) = self.peek() {
                match t {
                    Tok::Special(',' | ';') => break,
                    _ => self.pos += 1,
                }
            }
        } else if words
            .iter()
            .any(|t| matches!(t, Tok::Atom(_) | Tok::Quoted(_)))
        {
            // Bare addr-spec; an old-style trailing comment is the display name.
            let name = words.iter().find_map(|t| match t {
                Tok::Comment(c) if !c.trim().is_empty() => Some(c.trim().to_string()),
                _ => None,
            });
            out.push(mailbox(name, None, &words));
        }
    }
}

/// Parses an RFC 5322 address-list into IMAP address structures (RFC 9051 §7.5.2).
pub fn parse_address_list(value: &str) -> Vec<Address> {
    let mut p = AddrParser {
        toks: tokenize(value),
        pos: 0,
    };
    let mut out = Vec::new();
    while p.peek().is_some() {
        if p.at(',') || p.at(';') || p.at('>') || p.at(':') {
            p.pos += 1;
            continue;
        }
        let before = p.pos;
        p.parse_one(false, &mut out);
        if p.pos == before {
            p.pos += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(name: Option<&str>, mailbox: &str, host: &str) -> Address {
        Address {
            name: name.map(str::to_string),
            adl: None,
            mailbox: Some(mailbox.into()),
            host: Some(host.into()),
        }
    }

    #[test]
    fn simple_forms() {
        assert_eq!(
            parse_address_list("John Doe <john@example.com>, jane@example.org (Jane R.)"),
            vec![
                a(Some("John Doe"), "john", "example.com"),
                a(Some("Jane R."), "jane", "example.org")
            ]
        );
        assert_eq!(
            parse_address_list("\"Doe, John\" <j@x.y>"),
            vec![a(Some("Doe, John"), "j", "x.y")]
        );
        assert_eq!(
            parse_address_list("=?utf-8?q?J=C3=B6rg?= <jorg@x.de>"),
            vec![a(Some("=?utf-8?q?J=C3=B6rg?="), "jorg", "x.de")]
        );
        assert_eq!(
            parse_address_list("\"odd local\"@x.y"),
            vec![a(None, "\"odd local\"", "x.y")]
        );
        assert_eq!(parse_address_list("nobody"), vec![a(None, "nobody", "")]);
        assert_eq!(parse_address_list(""), vec![]);
        assert_eq!(parse_address_list(" , ,"), vec![]);
    }

    #[test]
    fn groups_and_routes() {
        let got = parse_address_list("Friends: a@b.c, \"B\" <b@c.d>;, z@y.x");
        assert_eq!(
            got,
            vec![
                Address {
                    mailbox: Some("Friends".into()),
                    ..Default::default()
                },
                a(None, "a", "b.c"),
                a(Some("B"), "b", "c.d"),
                Address::default(),
                a(None, "z", "y.x"),
            ]
        );
        let got = parse_address_list("undisclosed-recipients:;");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].mailbox.as_deref(), Some("undisclosed-recipients"));
        assert_eq!(got[0].host, None);
        assert_eq!(got[1], Address::default());
        let got = parse_address_list("<@relay1.example,@relay2.example:joe@example.com>");
        assert_eq!(
            got[0].adl.as_deref(),
            Some("@relay1.example,@relay2.example")
        );
        assert_eq!(got[0].mailbox.as_deref(), Some("joe"));
    }

    #[test]
    fn unterminated_inputs_do_not_loop() {
        for s in [
            "\"abc", "(abc", "<abc", "G: a@b", "a@", "@", "<>", ":;", "[x",
        ] {
            let _ = parse_address_list(s);
        }
        assert_eq!(parse_address_list("<>"), vec![a(None, "", "")]);
    }
}
