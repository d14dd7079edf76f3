//! Trace and submission headers: `Received:` (RFC 5321 §4.4, with the RFC 3848 protocol keyword),
//! `Return-Path:` at final delivery, and `Message-ID:`/`Date:` added on submission when missing
//! (RFC 6409 §8.2, §8.3).

use crate::backend::{Envelope, Mode};

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// (year, month 1-12, day 1-31) in UTC of a Unix time (H. Hinnant's civil-from-days algorithm).
pub fn civil_date(unix: i64) -> (i64, u32, u32) {
    let z = unix.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

/// RFC 5322 §3.3 date-time in UTC for a Unix time.
pub fn rfc5322_date(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (year, month, day) = civil_date(unix);
    format!(
        "{}, {} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[days.rem_euclid(7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// RFC 3848 "with" keyword.
fn protocol(env: &Envelope) -> String {
    let mut p = String::new();
    if env.smtputf8 {
        p.push_str("UTF8");
    }
    p.push_str(match env.mode {
        Mode::Lmtp => "LMTP",
        _ if env.esmtp => "ESMTP",
        _ => "SMTP",
    });
    if env.esmtp && env.mode != Mode::Lmtp {
        if env.tls.is_some() {
            p.push('S');
        }
        if env.auth.is_some() {
            p.push('A');
        }
    }
    p
}

/// Characters that would break a header line are replaced (the HELO name comes from the client).
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || c == '(' || c == ')' {
                '_'
            } else {
                c
            }
        })
        .take(255)
        .collect()
}

pub fn received(env: &Envelope, hostname: &str, now: i64) -> String {
    let peer = env
        .peer
        .map(|ip| format!("[{ip}]"))
        .unwrap_or_else(|| "local".into());
    let mut h = format!(
        "Received: from {} ({peer})\r\n\tby {hostname} (Facteur) with {}",
        clean(&env.helo),
        protocol(env)
    );
    if let Some(tls) = &env.tls {
        h.push_str(&format!(
            "\r\n\t(version={} cipher={})",
            tls.version, tls.cipher
        ));
    }
    if let Some(a) = &env.auth {
        h.push_str(&format!("\r\n\t(authenticated as {})", clean(&a.address)));
    }
    h.push_str(&format!(" id {}", env.id));
    // A "for" clause only for a single recipient, so one stored copy serves every recipient.
    if let [one] = env.recipients.as_slice() {
        h.push_str(&format!("\r\n\tfor <{}>", clean(&one.address)));
    }
    h.push_str(&format!(";\r\n\t{}\r\n", rfc5322_date(now)));
    h
}

/// The header section of `msg` (up to the blank line), for presence checks.
fn header_section(msg: &[u8]) -> &[u8] {
    let end = message::header_end(msg);
    &msg[..end.min(msg.len())]
}

/// True when a header field named `name` is present in the header section.
pub fn has_header(msg: &[u8], name: &str) -> bool {
    let headers = header_section(msg);
    headers.split(|&b| b == b'\n').any(|line| {
        line.len() > name.len()
            && line[..name.len()].eq_ignore_ascii_case(name.as_bytes())
            && line[name.len()] == b':'
    })
}

/// Headers a submission adds when the client did not (RFC 6409 §8.2, §8.3).
pub fn submission_headers(msg: &[u8], hostname: &str, now: i64, id: &str) -> String {
    let mut h = String::new();
    if !has_header(msg, "Message-ID") {
        h.push_str(&format!("Message-ID: <{}.{}@{}>\r\n", id, now, hostname));
    }
    if !has_header(msg, "Date") {
        h.push_str(&format!("Date: {}\r\n", rfc5322_date(now)));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_795_880_383),
            "Sat, 28 Nov 2026 15:39:43 +0000"
        );
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[test]
    fn headers_found() {
        let m = b"From: a\r\nMessage-ID: <x>\r\n\r\nDate: in body\r\n";
        assert!(has_header(m, "message-id"));
        assert!(!has_header(m, "Date"));
        let added = submission_headers(m, "mx.example", 0, "ID");
        assert!(added.starts_with("Date: Thu, 1 Jan 1970"));
    }
}
