//! Delivery status notifications (RFC 3464): a `multipart/report` (RFC 6522) with a human-readable
//! part, a `message/delivery-status` part and the original message or its headers (RFC 3461 RET).
//!
//! Built by hand rather than with a MIME builder: the structure is fixed by the RFC and every field
//! is plain ASCII we control; what comes from the network (diagnostics) is cleaned of line breaks.

use smtp::received::rfc5322_date;

/// At most this much of the original is attached with RET=FULL; larger originals get headers only
/// (RFC 3461 §4.3 lets the MTA return less than asked).
pub const MAX_RETURNED_MESSAGE: usize = 10 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Failed,
    Delayed,
    Delivered,
    Relayed,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
        }
    }
}

/// What happened to one recipient.
#[derive(Debug, Clone)]
pub struct RecipientReport {
    pub address: String,
    /// RFC 3461 ORCPT as received ("rfc822;user@example.com").
    pub orcpt: Option<String>,
    pub action: Action,
    /// RFC 3463 status "5.1.1".
    pub status: String,
    /// The remote server, when one answered.
    pub remote_mta: Option<String>,
    /// The remote reply ("550 5.1.1 no such user") or our own reason.
    pub diagnostic: Option<String>,
    pub last_attempt: i64,
}

pub struct Dsn<'a> {
    /// Our host name (Reporting-MTA).
    pub reporting_mta: &'a str,
    /// The envelope sender of the original: the DSN goes to it.
    pub to: &'a str,
    /// From: of the DSN ("MAILER-DAEMON@host").
    pub from: &'a str,
    pub envid: Option<&'a str>,
    /// RFC 3461 RET: "FULL" returns the message, anything else its headers.
    pub ret: Option<&'a str>,
    pub arrival: i64,
    pub now: i64,
    pub message_id: String,
    pub recipients: Vec<RecipientReport>,
    pub original: &'a [u8],
}

fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

impl Dsn<'_> {
    /// The complete message, CRLF line endings.
    pub fn build(&self) -> Vec<u8> {
        let boundary = format!(
            "=_facteur_dsn_{}",
            self.message_id.replace(['<', '>', '@'], "")
        );
        let failed = self.recipients.iter().any(|r| r.action == Action::Failed);
        let delayed = self.recipients.iter().any(|r| r.action == Action::Delayed);
        let subject = if failed {
            "Undelivered Mail Returned to Sender"
        } else if delayed {
            "Delayed Mail (still being retried)"
        } else {
            "Successful Mail Delivery Report"
        };
        let mut m = String::new();
        m.push_str(&format!("From: Mail Delivery System <{}>\r\n", self.from));
        m.push_str(&format!("To: <{}>\r\n", self.to));
        m.push_str(&format!("Subject: {subject}\r\n"));
        m.push_str(&format!("Date: {}\r\n", rfc5322_date(self.now)));
        m.push_str(&format!("Message-ID: {}\r\n", self.message_id));
        // RFC 3834 §5: automatic replies are marked so they are never answered automatically.
        m.push_str("Auto-Submitted: auto-replied\r\n");
        m.push_str("MIME-Version: 1.0\r\n");
        m.push_str(&format!(
            "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n"
        ));
        m.push_str("\r\nThis is a MIME-encapsulated delivery status notification.\r\n");

        // 1. Human-readable part.
        m.push_str(&format!("\r\n--{boundary}\r\n"));
        m.push_str("Content-Type: text/plain; charset=utf-8\r\n");
        m.push_str("Content-Transfer-Encoding: 8bit\r\n\r\n");
        m.push_str(&format!(
            "This is the mail system at host {}.\r\n\r\n",
            self.reporting_mta
        ));
        if failed {
            m.push_str(
                "Your message could not be delivered to one or more recipients.\r\n\
                 It is attached below. The reason given for each recipient follows.\r\n\r\n",
            );
        } else if delayed {
            m.push_str(
                "Your message has not been delivered yet to the recipients below.\r\n\
                 The mail system will keep trying; you do not need to send it again.\r\n\r\n",
            );
        } else {
            m.push_str("Your message was delivered to the recipients below.\r\n\r\n");
        }
        for r in &self.recipients {
            let what = match r.action {
                Action::Failed => "delivery failed",
                Action::Delayed => "delivery delayed",
                Action::Delivered => "delivered",
                Action::Relayed => "relayed to a system that does not send reports",
            };
            m.push_str(&format!("<{}>: {what}", clean(&r.address)));
            if let Some(d) = &r.diagnostic {
                m.push_str(&format!(": {}", clean(d)));
            }
            m.push_str("\r\n");
        }

        // 2. message/delivery-status (RFC 3464 §2.2, §2.3).
        m.push_str(&format!("\r\n--{boundary}\r\n"));
        m.push_str("Content-Type: message/delivery-status\r\n\r\n");
        m.push_str(&format!("Reporting-MTA: dns; {}\r\n", self.reporting_mta));
        if let Some(envid) = self.envid {
            m.push_str(&format!("Original-Envelope-Id: {}\r\n", clean(envid)));
        }
        m.push_str(&format!("Arrival-Date: {}\r\n", rfc5322_date(self.arrival)));
        for r in &self.recipients {
            m.push_str("\r\n");
            if let Some(o) = &r.orcpt {
                m.push_str(&format!("Original-Recipient: {}\r\n", clean(o)));
            }
            m.push_str(&format!(
                "Final-Recipient: rfc822; {}\r\n",
                clean(&r.address)
            ));
            m.push_str(&format!("Action: {}\r\n", r.action.as_str()));
            m.push_str(&format!("Status: {}\r\n", clean(&r.status)));
            if let Some(mta) = &r.remote_mta {
                m.push_str(&format!("Remote-MTA: dns; {}\r\n", clean(mta)));
            }
            if let Some(d) = &r.diagnostic {
                let kind = if d.len() >= 3 && d.as_bytes()[..3].iter().all(u8::is_ascii_digit) {
                    "smtp"
                } else {
                    "x-facteur"
                };
                m.push_str(&format!("Diagnostic-Code: {kind}; {}\r\n", clean(d)));
            }
            m.push_str(&format!(
                "Last-Attempt-Date: {}\r\n",
                rfc5322_date(r.last_attempt)
            ));
        }

        // 3. The original: whole (RET=FULL, within bounds) or its header section.
        let full = self.ret.is_some_and(|r| r.eq_ignore_ascii_case("FULL"))
            && self.original.len() <= MAX_RETURNED_MESSAGE;
        let mut out = m.into_bytes();
        out.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
        if full {
            out.extend_from_slice(b"Content-Type: message/rfc822\r\n");
            out.extend_from_slice(b"Content-Disposition: attachment\r\n\r\n");
            out.extend_from_slice(self.original);
            if !self.original.ends_with(b"\r\n") {
                out.extend_from_slice(b"\r\n");
            }
        } else {
            let end = message::header_end(self.original);
            out.extend_from_slice(b"Content-Type: text/rfc822-headers\r\n\r\n");
            let headers = &self.original[..end];
            out.extend_from_slice(headers);
            if !headers.ends_with(b"\r\n\r\n") && !headers.ends_with(b"\n\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
        out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ret: Option<&'static str>) -> Vec<u8> {
        Dsn {
            reporting_mta: "mx.example.com",
            to: "alice@example.com",
            from: "MAILER-DAEMON@mx.example.com",
            envid: Some("QQ314159"),
            ret,
            arrival: 1_700_000_000,
            now: 1_700_000_100,
            message_id: "<dsn.1@mx.example.com>".into(),
            recipients: vec![RecipientReport {
                address: "bob@remote.test".into(),
                orcpt: Some("rfc822;bob+2Bx@remote.test".into()),
                action: Action::Failed,
                status: "5.1.1".into(),
                remote_mta: Some("mx.remote.test".into()),
                diagnostic: Some("550 5.1.1 no such user\r\ninjected: x".into()),
                last_attempt: 1_700_000_099,
            }],
            original: b"Subject: hello\r\nFrom: alice@example.com\r\n\r\nsecret body\r\n",
        }
        .build()
    }

    #[test]
    fn parses_as_a_multipart_report() {
        let raw = sample(Some("FULL"));
        use mail_parser::MimeHeaders;
        let msg = mail_parser::MessageParser::default().parse(&raw).unwrap();
        let ct = msg.content_type().unwrap();
        assert_eq!(msg.parts.len(), 4, "report, text, status, original");
        assert_eq!(ct.ctype(), "multipart");
        assert_eq!(ct.subtype(), Some("report"));
        assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
        let text = String::from_utf8_lossy(&raw);
        assert!(text.contains("Final-Recipient: rfc822; bob@remote.test\r\n"));
        assert!(text.contains("Original-Recipient: rfc822;bob+2Bx@remote.test\r\n"));
        assert!(text.contains("Action: failed\r\nStatus: 5.1.1\r\n"));
        assert!(text.contains("Diagnostic-Code: smtp; 550 5.1.1 no such user  injected: x\r\n"));
        assert!(text.contains("Original-Envelope-Id: QQ314159\r\n"));
        assert!(text.contains("secret body"), "RET=FULL returns the body");
        assert!(
            !text.contains("\r\ninjected:"),
            "no header injection from diagnostics"
        );
    }

    #[test]
    fn ret_hdrs_returns_headers_only() {
        let text = String::from_utf8(sample(Some("HDRS"))).unwrap();
        assert!(text.contains("text/rfc822-headers"));
        assert!(text.contains("Subject: hello"));
        assert!(!text.contains("secret body"));
        let default = String::from_utf8(sample(None)).unwrap();
        assert!(!default.contains("secret body"));
    }

    #[test]
    fn only_crlf_line_endings() {
        let raw = sample(Some("FULL"));
        for (i, &b) in raw.iter().enumerate() {
            if b == b'\n' {
                assert_eq!(raw[i - 1], b'\r', "bare LF at {i}");
            }
        }
    }
}
