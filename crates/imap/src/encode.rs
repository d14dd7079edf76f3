//! Serialisation of response data (RFC 9051 §9 formal syntax): strings as quoted or literal,
//! flag lists, dates, ENVELOPE and BODYSTRUCTURE from the message crate's cached analysis.
//!
//! Responses are written here rather than through imap-codec's response types: the cached
//! analysis maps directly onto the grammar, and building imap-types values for every
//! BODYSTRUCTURE node would only add a conversion layer. Every string goes through [`string`],
//! which picks a literal whenever a quoted string could not carry the bytes.

use message::{Address, BodyPart, Envelope};
use store::{Flags, Uid};

/// Longest value sent as a quoted string; longer ones go as literals.
const MAX_QUOTED: usize = 1024;

/// An IMAP `string`: quoted when safe, otherwise a literal. `utf8`: the client accepts UTF-8 in
/// quoted strings (IMAP4rev2 or UTF8=ACCEPT); otherwise 8-bit values are sent as literals.
pub fn string(out: &mut Vec<u8>, value: &[u8], utf8: bool) {
    let quotable = value.len() <= MAX_QUOTED
        && value
            .iter()
            .all(|&b| (0x20..0x7f).contains(&b) || (utf8 && b >= 0x80))
        && (!utf8 || std::str::from_utf8(value).is_ok());
    if quotable {
        out.push(b'"');
        for &b in value {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        literal(out, value);
    }
}

/// A literal (RFC 9051 §4.3). NUL bytes cannot be sent in a literal; they become spaces rather
/// than breaking the client's parser (BINARY is not offered).
pub fn literal(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", value.len()).as_bytes());
    if value.contains(&0) {
        out.extend(value.iter().map(|&b| if b == 0 { b' ' } else { b }));
    } else {
        out.extend_from_slice(value);
    }
}

/// `nstring`: NIL or a string.
pub fn nstring(out: &mut Vec<u8>, value: Option<&str>, utf8: bool) {
    match value {
        Some(v) => string(out, v.as_bytes(), utf8),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// The flag list of a message: system flags (`\Recent` for a message recent in this session,
/// RFC 3501 §2.3.2) then keywords.
pub fn flag_list(out: &mut Vec<u8>, flags: Flags, keywords: &[String], recent: bool) {
    out.push(b'(');
    let mut first = true;
    if recent {
        out.extend_from_slice(b"\\Recent");
        first = false;
    }
    for name in flags.names() {
        if !first {
            out.push(b' ');
        }
        first = false;
        out.extend_from_slice(name.as_bytes());
    }
    for k in keywords {
        if !first {
            out.push(b' ');
        }
        first = false;
        out.extend_from_slice(k.as_bytes());
    }
    out.push(b')');
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 to (year, month 1-12, day 1-31) (proleptic Gregorian calendar).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `date-time` of INTERNALDATE, in UTC: `"17-Jul-1996 02:44:25 +0000"`.
pub fn internal_date(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "\"{:02}-{}-{:04} {:02}:{:02}:{:02} +0000\"",
        d,
        MONTHS[(m - 1) as usize],
        y,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn address_list(out: &mut Vec<u8>, list: &[Address], utf8: bool) {
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for a in list {
        out.push(b'(');
        nstring(out, a.name.as_deref(), utf8);
        out.push(b' ');
        nstring(out, a.adl.as_deref(), utf8);
        out.push(b' ');
        nstring(out, a.mailbox.as_deref(), utf8);
        out.push(b' ');
        nstring(out, a.host.as_deref(), utf8);
        out.push(b')');
    }
    out.push(b')');
}

/// RFC 9051 §7.5.2 ENVELOPE.
pub fn envelope(out: &mut Vec<u8>, e: &Envelope, utf8: bool) {
    out.push(b'(');
    nstring(out, e.date.as_deref(), utf8);
    out.push(b' ');
    nstring(out, e.subject.as_deref(), utf8);
    for list in [&e.from, &e.sender, &e.reply_to, &e.to, &e.cc, &e.bcc] {
        out.push(b' ');
        address_list(out, list, utf8);
    }
    out.push(b' ');
    nstring(out, e.in_reply_to.as_deref(), utf8);
    out.push(b' ');
    nstring(out, e.message_id.as_deref(), utf8);
    out.push(b')');
}

fn params(out: &mut Vec<u8>, params: &[(String, String)], utf8: bool) {
    if params.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        string(out, k.as_bytes(), utf8);
        out.push(b' ');
        string(out, v.as_bytes(), utf8);
    }
    out.push(b')');
}

fn disposition(out: &mut Vec<u8>, d: &Option<(String, Vec<(String, String)>)>, utf8: bool) {
    match d {
        None => out.extend_from_slice(b"NIL"),
        Some((kind, p)) => {
            out.push(b'(');
            string(out, kind.as_bytes(), utf8);
            out.push(b' ');
            params(out, p, utf8);
            out.push(b')');
        }
    }
}

fn language(out: &mut Vec<u8>, tags: &[String], utf8: bool) {
    match tags {
        [] => out.extend_from_slice(b"NIL"),
        [one] => string(out, one.as_bytes(), utf8),
        many => {
            out.push(b'(');
            for (i, t) in many.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                string(out, t.as_bytes(), utf8);
            }
            out.push(b')');
        }
    }
}

/// RFC 9051 §7.5.2 BODYSTRUCTURE (`extended` = true, with extension data) or BODY.
pub fn body_structure(out: &mut Vec<u8>, p: &BodyPart, extended: bool, utf8: bool) {
    out.push(b'(');
    if !p.children.is_empty() {
        for c in &p.children {
            body_structure(out, c, extended, utf8);
        }
        out.push(b' ');
        string(out, p.subtype.as_bytes(), utf8);
        if extended {
            out.push(b' ');
            params(out, &p.params, utf8);
            out.push(b' ');
            disposition(out, &p.disposition, utf8);
            out.push(b' ');
            language(out, &p.language, utf8);
            out.push(b' ');
            nstring(out, p.location.as_deref(), utf8);
        }
        out.push(b')');
        return;
    }
    string(out, p.content_type.as_bytes(), utf8);
    out.push(b' ');
    string(out, p.subtype.as_bytes(), utf8);
    out.push(b' ');
    params(out, &p.params, utf8);
    out.push(b' ');
    nstring(out, p.id.as_deref(), utf8);
    out.push(b' ');
    nstring(out, p.description.as_deref(), utf8);
    out.push(b' ');
    string(out, p.encoding.as_bytes(), utf8);
    out.extend_from_slice(format!(" {}", p.size).as_bytes());
    if let Some(m) = &p.message {
        out.push(b' ');
        envelope(out, &m.0, utf8);
        out.push(b' ');
        body_structure(out, &m.1, extended, utf8);
        out.extend_from_slice(format!(" {}", p.lines.unwrap_or(0)).as_bytes());
    } else if p.content_type == "text" {
        out.extend_from_slice(format!(" {}", p.lines.unwrap_or(0)).as_bytes());
    }
    if extended {
        out.push(b' ');
        nstring(out, p.md5.as_deref(), utf8);
        out.push(b' ');
        disposition(out, &p.disposition, utf8);
        out.push(b' ');
        language(out, &p.language, utf8);
        out.push(b' ');
        nstring(out, p.location.as_deref(), utf8);
    }
    out.push(b')');
}

/// A compact sequence set (`1:3,7,9:10`) of sorted or unsorted numbers.
pub fn sequence_set(nums: &[u32]) -> String {
    let mut v: Vec<u32> = nums.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < v.len() {
        let start = v[i];
        let mut end = start;
        while i + 1 < v.len() && v[i + 1] == end + 1 {
            i += 1;
            end = v[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// UIDs as a sequence set (for COPYUID, VANISHED) keeping their order: RFC 4315 §3 pairs source
/// and destination sets by position, so ranges are only merged when both sides stay in step.
pub fn uid_list(uids: &[Uid]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end + 1 {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_quote_or_literal() {
        let mut o = Vec::new();
        string(&mut o, b"a \"b\" \\c", false);
        assert_eq!(o, b"\"a \\\"b\\\" \\\\c\"");
        o.clear();
        string(&mut o, b"line\r\nbreak", false);
        assert_eq!(o, b"{11}\r\nline\r\nbreak");
        o.clear();
        string(&mut o, "café".as_bytes(), false);
        assert!(o.starts_with(b"{5}\r\n"));
        o.clear();
        string(&mut o, "café".as_bytes(), true);
        assert_eq!(o, "\"café\"".as_bytes());
    }

    #[test]
    fn dates() {
        assert_eq!(internal_date(0), "\"01-Jan-1970 00:00:00 +0000\"");
        assert_eq!(
            internal_date(1_704_103_200),
            "\"01-Jan-2024 10:00:00 +0000\""
        );
        assert_eq!(internal_date(951_782_400), "\"29-Feb-2000 00:00:00 +0000\"");
    }

    #[test]
    fn sets() {
        assert_eq!(sequence_set(&[5, 1, 2, 3, 9]), "1:3,5,9");
        assert_eq!(uid_list(&[4, 5, 2]), "4:5,2");
    }

    #[test]
    fn bodystructure_of_simple_text() {
        let raw = b"Subject: x\r\n\r\nhello\r\n";
        let a = message::analyze(raw, &message::Limits::default());
        let mut o = Vec::new();
        body_structure(&mut o, &a.body, true, false);
        assert_eq!(
            String::from_utf8(o).unwrap(),
            "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 7 1 NIL NIL NIL NIL)"
        );
    }
}
